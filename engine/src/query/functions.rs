//! Limits inside scalar functions.
//!
//! Every scalar function of a session is wrapped ([`limit`]) so that, for each batch of rows:
//! - the call does not start once the query's time is up or its caller gave up ([`Budget`]):
//!   a query stuck in a long series of calls stops at the next one;
//! - functions whose output size is one of their arguments (`array_resize`) are refused before
//!   the call when that size would exceed `query.max_function_output`;
//! - functions whose work grows with the product of their input lengths (`levenshtein`) are
//!   refused values longer than `query.max_quadratic_input`, and are called on slices of the
//!   batch of bounded work ([`QUADRATIC_SLICE_WORK`]), with the time checked between slices;
//! - the output's memory size is checked after the call against `query.max_function_output`,
//!   so output that grows with each nesting level (`replace(replace(...))`, `regexp_replace`,
//!   `concat`) is stopped one level past the limit.
//!
//! One call that is already running is not interrupted (DataFusion's functions have no
//! cancellation points); the input caps bound how long one call can take, and the caller gets
//! the timeout error at the deadline whatever the query threads are doing.

use std::hash::{Hash, Hasher};
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray};
use datafusion::arrow::compute::kernels::aggregate::max;
use datafusion::arrow::compute::{cast, concat};
use datafusion::arrow::datatypes::{DataType, FieldRef, Int64Type};
use datafusion::common::config::ConfigOptions;
use datafusion::common::{ExprSchema, ScalarValue};
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::interval_arithmetic::Interval;
use datafusion::logical_expr::preimage::PreimageResult;
use datafusion::logical_expr::simplify::{ExprSimplifyResult, SimplifyContext};
use datafusion::logical_expr::sort_properties::{ExprProperties, SortProperties};
use datafusion::logical_expr::udf_eq::UdfEq;
use datafusion::logical_expr::{
    ColumnarValue, Documentation, Expr, ExpressionPlacement, ReturnFieldArgs, ScalarFunctionArgs,
    ScalarUDF, ScalarUDFImpl, Signature, StructFieldMapping,
};

use super::runtime::Budget;

/// Functions whose output length is an argument: (name, index of that argument).
const SIZE_ARGUMENTS: [(&str, usize); 1] = [("array_resize", 1)];

/// Functions whose work is the product of their string arguments' lengths.
const QUADRATIC: [&str; 1] = ["levenshtein"];

/// Work (product of the input lengths, summed over rows) of one call of a [`QUADRATIC`]
/// function: about a tenth of a second of CPU, so that a timeout or a gone client stops it soon.
const QUADRATIC_SLICE_WORK: u64 = 50_000_000;

/// A function that went over a limit, or a query whose time is up.
#[derive(Debug, thiserror::Error)]
pub(crate) enum LimitError {
    #[error(
        "function {function} produced {bytes} bytes for one batch, more than \
         query.max_function_output ({limit} bytes)"
    )]
    Output {
        function: String,
        bytes: usize,
        limit: usize,
    },
    #[error(
        "function {function} was asked for {requested} elements per row, more than \
         query.max_function_output ({limit} bytes) allows"
    )]
    Size {
        function: String,
        requested: i64,
        limit: usize,
    },
    #[error(
        "function {function} was given a value of {length} bytes, more than \
         query.max_quadratic_input ({limit} bytes)"
    )]
    Input {
        function: String,
        length: usize,
        limit: usize,
    },
    #[error("the query was cancelled (time limit reached or client gone)")]
    Cancelled,
}

/// The caps a session's functions run under.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Caps {
    pub(crate) max_output: usize,
    pub(crate) max_quadratic_input: usize,
}

/// `udf` wrapped to run within `caps` and `budget`.
pub(crate) fn limit(udf: &ScalarUDF, caps: Caps, budget: &Arc<Budget>) -> ScalarUDF {
    ScalarUDF::new_from_impl(Limited {
        inner: Arc::clone(udf.inner()).into(),
        caps,
        budget: Arc::clone(budget),
    })
}

#[derive(Debug)]
struct Limited {
    inner: UdfEq<Arc<dyn ScalarUDFImpl>>,
    caps: Caps,
    budget: Arc<Budget>,
}

impl PartialEq for Limited {
    fn eq(&self, other: &Self) -> bool {
        self.inner == other.inner
    }
}

impl Eq for Limited {}

impl Hash for Limited {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.inner.hash(state);
    }
}

fn external(err: LimitError) -> DataFusionError {
    DataFusionError::External(Box::new(err))
}

/// The largest integer in `value` (null and non-integer values count as 0).
fn max_integer(value: &ColumnarValue) -> i64 {
    match value {
        ColumnarValue::Scalar(scalar) => scalar
            .cast_to(&DataType::Int64)
            .ok()
            .and_then(|v| match v {
                ScalarValue::Int64(n) => n,
                _ => None,
            })
            .unwrap_or(0),
        ColumnarValue::Array(array) => cast(array, &DataType::Int64)
            .ok()
            .and_then(|a| max(a.as_primitive::<Int64Type>()))
            .unwrap_or(0),
    }
}

/// The longest string in `value`, in bytes (0 for other types).
fn longest_string(value: &ColumnarValue) -> usize {
    match value {
        ColumnarValue::Scalar(
            ScalarValue::Utf8(Some(s))
            | ScalarValue::LargeUtf8(Some(s))
            | ScalarValue::Utf8View(Some(s)),
        ) => s.len(),
        ColumnarValue::Scalar(_) => 0,
        ColumnarValue::Array(array) => longest_in(array),
    }
}

fn longest_in(array: &ArrayRef) -> usize {
    match array.data_type() {
        DataType::Utf8 => array
            .as_string::<i32>()
            .iter()
            .flatten()
            .map(str::len)
            .max(),
        DataType::LargeUtf8 => array
            .as_string::<i64>()
            .iter()
            .flatten()
            .map(str::len)
            .max(),
        DataType::Utf8View => array.as_string_view().iter().flatten().map(str::len).max(),
        _ => None,
    }
    .unwrap_or(0)
}

/// The memory a function's output takes: only the rows it holds, so a function that passes on
/// a slice of a larger batch (`coalesce`) is not charged for the whole batch.
fn output_bytes(value: &ColumnarValue) -> usize {
    match value {
        ColumnarValue::Array(array) => super::slice_bytes(array.as_ref()),
        ColumnarValue::Scalar(scalar) => scalar.size(),
    }
}

impl Limited {
    /// The checks before a call.
    fn admit(&self, args: &ScalarFunctionArgs) -> Result<()> {
        if self.budget.is_over() {
            return Err(external(LimitError::Cancelled));
        }
        let name = self.inner.name();
        let limit = self.caps.max_output;
        if let Some((_, index)) = SIZE_ARGUMENTS.iter().find(|(n, _)| *n == name)
            && let Some(size) = args.args.get(*index)
        {
            // At least a byte per element, for every row of the batch.
            let requested = max_integer(size);
            let rows = args.number_rows.max(1) as u128;
            if requested > 0 && requested as u128 * rows > limit as u128 {
                return Err(external(LimitError::Size {
                    function: name.to_owned(),
                    requested,
                    limit,
                }));
            }
        }
        if QUADRATIC.contains(&name) {
            let cap = self.caps.max_quadratic_input;
            for arg in &args.args {
                let length = longest_string(arg);
                if length > cap {
                    return Err(external(LimitError::Input {
                        function: name.to_owned(),
                        length,
                        limit: cap,
                    }));
                }
            }
        }
        Ok(())
    }
}

/// The length in bytes of row `row` of a string argument (0 for other values).
fn length_at(value: &ColumnarValue, row: usize) -> u64 {
    let length = match value {
        ColumnarValue::Scalar(_) => longest_string(value),
        ColumnarValue::Array(array) => match array.data_type() {
            DataType::Utf8 => array.as_string::<i32>().value(row).len(),
            DataType::LargeUtf8 => array.as_string::<i64>().value(row).len(),
            DataType::Utf8View => array.as_string_view().value(row).len(),
            _ => 0,
        },
    };
    length as u64
}

impl Limited {
    /// Calls the function on consecutive slices of the batch, each of about
    /// [`QUADRATIC_SLICE_WORK`], checking the time before each.
    fn invoke_in_slices(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let rows = args.number_rows;
        if rows == 0
            || args
                .args
                .iter()
                .all(|a| matches!(a, ColumnarValue::Scalar(_)))
        {
            return self.inner.invoke_with_args(args);
        }
        let mut outputs: Vec<ArrayRef> = Vec::new();
        let mut start = 0;
        while start < rows {
            if self.budget.is_over() {
                return Err(external(LimitError::Cancelled));
            }
            let mut end = start;
            let mut work = 0u64;
            while end < rows && (end == start || work < QUADRATIC_SLICE_WORK) {
                work += args
                    .args
                    .iter()
                    .map(|a| length_at(a, end).max(1))
                    .product::<u64>();
                end += 1;
            }
            let slice = ScalarFunctionArgs {
                args: args
                    .args
                    .iter()
                    .map(|a| match a {
                        ColumnarValue::Array(array) => {
                            ColumnarValue::Array(array.slice(start, end - start))
                        }
                        scalar => scalar.clone(),
                    })
                    .collect(),
                arg_fields: args.arg_fields.clone(),
                number_rows: end - start,
                return_field: Arc::clone(&args.return_field),
                config_options: Arc::clone(&args.config_options),
            };
            outputs.push(
                self.inner
                    .invoke_with_args(slice)?
                    .into_array(end - start)?,
            );
            start = end;
        }
        let parts: Vec<&dyn Array> = outputs.iter().map(|a| a.as_ref()).collect();
        Ok(ColumnarValue::Array(concat(&parts)?))
    }
}

// Every method delegates to the wrapped function; only `invoke_with_args` adds the checks.
impl ScalarUDFImpl for Limited {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn display_name(&self, args: &[Expr]) -> Result<String> {
        #[expect(deprecated)]
        self.inner.display_name(args)
    }

    fn schema_name(&self, args: &[Expr]) -> Result<String> {
        self.inner.schema_name(args)
    }

    fn signature(&self) -> &Signature {
        self.inner.signature()
    }

    fn return_type(&self, arg_types: &[DataType]) -> Result<DataType> {
        self.inner.return_type(arg_types)
    }

    fn return_field_from_args(&self, args: ReturnFieldArgs) -> Result<FieldRef> {
        self.inner.return_field_from_args(args)
    }

    fn is_nullable(&self, args: &[Expr], schema: &dyn ExprSchema) -> bool {
        #[expect(deprecated)]
        self.inner.is_nullable(args, schema)
    }

    fn is_strict(&self) -> bool {
        self.inner.is_strict()
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        self.admit(&args)?;
        let output = if QUADRATIC.contains(&self.inner.name()) {
            self.invoke_in_slices(args)?
        } else {
            self.inner.invoke_with_args(args)?
        };
        let bytes = output_bytes(&output);
        if bytes > self.caps.max_output {
            return Err(external(LimitError::Output {
                function: self.inner.name().to_owned(),
                bytes,
                limit: self.caps.max_output,
            }));
        }
        Ok(output)
    }

    fn with_updated_config(&self, config: &ConfigOptions) -> Option<ScalarUDF> {
        let updated = self.inner.with_updated_config(config)?;
        Some(limit(&updated, self.caps, &self.budget))
    }

    fn aliases(&self) -> &[String] {
        self.inner.aliases()
    }

    fn simplify(&self, args: Vec<Expr>, info: &SimplifyContext) -> Result<ExprSimplifyResult> {
        self.inner.simplify(args, info)
    }

    fn preimage(
        &self,
        args: &[Expr],
        lit_expr: &Expr,
        info: &SimplifyContext,
    ) -> Result<PreimageResult> {
        self.inner.preimage(args, lit_expr, info)
    }

    fn conditional_arguments<'a>(
        &self,
        args: &'a [Expr],
    ) -> Option<(Vec<&'a Expr>, Vec<&'a Expr>)> {
        self.inner.conditional_arguments(args)
    }

    fn short_circuits(&self) -> bool {
        self.inner.short_circuits()
    }

    fn evaluate_bounds(&self, input: &[&Interval]) -> Result<Interval> {
        self.inner.evaluate_bounds(input)
    }

    fn propagate_constraints(
        &self,
        interval: &Interval,
        inputs: &[&Interval],
    ) -> Result<Option<Vec<Interval>>> {
        self.inner.propagate_constraints(interval, inputs)
    }

    fn struct_field_mapping(
        &self,
        literal_args: &[Option<ScalarValue>],
    ) -> Option<StructFieldMapping> {
        self.inner.struct_field_mapping(literal_args)
    }

    fn output_ordering(&self, inputs: &[ExprProperties]) -> Result<SortProperties> {
        self.inner.output_ordering(inputs)
    }

    fn preserves_lex_ordering(&self, inputs: &[ExprProperties]) -> Result<bool> {
        self.inner.preserves_lex_ordering(inputs)
    }

    fn strictly_order_preserving(&self, inputs: &[ExprProperties]) -> Result<bool> {
        self.inner.strictly_order_preserving(inputs)
    }

    fn coerce_types(&self, arg_types: &[DataType]) -> Result<Vec<DataType>> {
        self.inner.coerce_types(arg_types)
    }

    fn documentation(&self) -> Option<&Documentation> {
        self.inner.documentation()
    }

    fn placement(&self, args: &[ExpressionPlacement]) -> ExpressionPlacement {
        self.inner.placement(args)
    }
}
