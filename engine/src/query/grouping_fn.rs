//! `grouping_explain(project_id, event)`: "why grouped" in SQL. For each row, the stored event
//! JSON is grouped again under its project's rules, and the answer is the JSON the issue page
//! renders: the grouping config, the method that decided (`exception`, `fingerprint`, ...),
//! every hash kept, and each variant (`app`, `system`, `custom_fingerprint`, ...) with its hash
//! or the hint why it does not count, and its component tree (`contributes` per component).
//!
//! Normalized events group the same way every time, so this is the grouping the event was
//! given, as long as the project's rules did not change since (docs/grouping.md). A project
//! the session may not read is grouped with the built-in rules only, so a query never learns
//! another tenant's rules.

use std::hash::{Hash, Hasher};
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, StringBuilder};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Int64Type};
use datafusion::common::{Result, ScalarValue, exec_err};
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, TypeSignature,
    Volatility,
};
use faultline_protocol::grouping::{self, GroupingConfig};

use super::ProjectFilter;

/// A project's own grouping rules, when it has some.
pub type GroupingRules = Arc<dyn Fn(u64) -> Option<Arc<GroupingConfig>> + Send + Sync>;

/// The function's name in SQL.
pub(super) const NAME: &str = "grouping_explain";

/// The function for a session that may read `projects`.
pub(super) fn udf(rules: Option<GroupingRules>, projects: ProjectFilter) -> ScalarUDF {
    ScalarUDF::new_from_impl(GroupingExplain {
        signature: Signature::one_of(
            vec![
                TypeSignature::Exact(vec![DataType::Int64, DataType::Utf8]),
                TypeSignature::Exact(vec![DataType::Int64, DataType::Utf8View]),
                TypeSignature::Exact(vec![DataType::Int64, DataType::LargeUtf8]),
            ],
            Volatility::Stable,
        ),
        rules,
        projects,
    })
}

struct GroupingExplain {
    signature: Signature,
    rules: Option<GroupingRules>,
    projects: ProjectFilter,
}

impl std::fmt::Debug for GroupingExplain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GroupingExplain").finish_non_exhaustive()
    }
}

// One per session: two are the same function when they answer for the same projects.
impl PartialEq for GroupingExplain {
    fn eq(&self, other: &Self) -> bool {
        self.projects == other.projects
    }
}

impl Eq for GroupingExplain {}

impl Hash for GroupingExplain {
    fn hash<H: Hasher>(&self, state: &mut H) {
        NAME.hash(state);
    }
}

impl GroupingExplain {
    fn config(&self, project_id: i64) -> Option<Arc<GroupingConfig>> {
        let id = u64::try_from(project_id).ok()?;
        if !self.projects.allows(id) {
            return None;
        }
        self.rules.as_ref().and_then(|rules| rules(id))
    }

    fn explain(&self, project_id: Option<i64>, event: Option<&str>) -> Option<String> {
        let event = event?;
        let own = project_id.and_then(|id| self.config(id));
        let config = own.as_deref().unwrap_or(grouping::default_config());
        grouping::explain_stored(event, config).map(|value| value.to_string())
    }
}

fn as_array(value: &ColumnarValue, rows: usize, to: &DataType) -> Result<ArrayRef> {
    let array = value.to_array(rows)?;
    Ok(cast(&array, to)?)
}

impl ScalarUDFImpl for GroupingExplain {
    fn name(&self) -> &str {
        NAME
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let [project, event] = args.args.as_slice() else {
            return exec_err!("{NAME} takes two arguments: project_id and event");
        };
        if let (ColumnarValue::Scalar(project), ColumnarValue::Scalar(event)) = (project, event) {
            let project = match project.cast_to(&DataType::Int64)? {
                ScalarValue::Int64(id) => id,
                _ => None,
            };
            let event = match event.cast_to(&DataType::Utf8)? {
                ScalarValue::Utf8(text) => text,
                _ => None,
            };
            let out = self.explain(project, event.as_deref());
            return Ok(ColumnarValue::Scalar(ScalarValue::Utf8(out)));
        }
        let rows = args.number_rows;
        let projects = as_array(project, rows, &DataType::Int64)?;
        let events = as_array(event, rows, &DataType::Utf8)?;
        let projects = projects.as_primitive::<Int64Type>();
        let events = events.as_string::<i32>();
        let mut out = StringBuilder::with_capacity(rows, rows * 512);
        for row in 0..rows {
            let project = projects.is_valid(row).then(|| projects.value(row));
            let event = events.is_valid(row).then(|| events.value(row));
            out.append_option(self.explain(project, event));
        }
        Ok(ColumnarValue::Array(Arc::new(out.finish())))
    }
}
