//! The functions sessions have beyond DataFusion's defaults: JSON over the stored event JSON,
//! from `datafusion-functions-json` (`json_get`, `json_get_str`, `json_get_int`,
//! `json_get_float`, `json_get_bool`, `json_get_json`, `json_as_text`, `json_contains`,
//! `json_length`, `json_object_keys`, ...) and the operators `->`, `->>`, `?`, `#>`, `#>>`.
//!
//! Statements parse with PostgreSQL's grammar and operator precedence on every protocol.
//!
//! `->` (and `json_get`) return a JSON value as an Arrow union. Where it is cast
//! (`(event->'x')::int`) or read on with `->>`, the crate's rewriter reads the typed value
//! directly; where it is a column of the result, [`json_results_as_text`] makes it JSON text,
//! so every protocol and format shows `{"name":"Linux"}` as PostgreSQL shows a `json` value.

use std::sync::Arc;

use datafusion::arrow::datatypes::DataType;
use datafusion::common::Column;
use datafusion::common::config::Dialect;
use datafusion::error::Result;
use datafusion::execution::SessionState;
use datafusion::logical_expr::{Expr, LogicalPlan, LogicalPlanBuilder, cast};
use datafusion_functions_json::JSON_UNION_DATA_TYPE;
use datafusion_functions_json::udfs::json_union_to_text_udf;

/// Adds the JSON functions, their operators and their rewriter to `state`, and parses SQL as
/// PostgreSQL does: its precedence puts `->` / `->>` above comparisons, so
/// `event->'contexts'->'os'->>'name' = 'Linux'` compares the name (DataFusion's generic
/// dialect would read it as `->> ('name' = 'Linux')`), over every protocol alike.
pub(super) fn register(state: &mut SessionState) -> Result<()> {
    state.config_mut().options_mut().sql_parser.dialect = Dialect::PostgreSQL;
    datafusion_functions_json::register_all(state)
}

fn is_json_value(data_type: &DataType) -> bool {
    *data_type == *JSON_UNION_DATA_TYPE
}

/// `plan` with each result column holding JSON values (from `->` or `json_get`) as JSON text;
/// other plans unchanged.
pub(super) fn json_results_as_text(plan: LogicalPlan) -> Result<LogicalPlan> {
    let schema = Arc::clone(plan.schema());
    if !schema.fields().iter().any(|f| is_json_value(f.data_type())) {
        return Ok(plan);
    }
    let columns: Vec<Expr> = schema
        .iter()
        .map(|(qualifier, field)| {
            let column = Expr::Column(Column::from((qualifier, field)));
            if is_json_value(field.data_type()) {
                cast(json_union_to_text_udf().call(vec![column]), DataType::Utf8)
                    .alias_qualified(qualifier.cloned(), field.name())
            } else {
                column
            }
        })
        .collect();
    LogicalPlanBuilder::from(plan).project(columns)?.build()
}
