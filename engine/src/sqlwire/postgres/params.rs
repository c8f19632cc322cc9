//! Bound parameters (`$1`, `$2`, ...) of the extended protocol as DataFusion values.
//!
//! A parameter's type is the one the client declared in `Parse`, else the one DataFusion
//! inferred from where it is used (`project_id = $1` is int8), else text. Text-format values
//! are parsed by casting the string to that type; binary values are decoded for the types
//! drivers send in binary (int2/4/8, float4/8, bool, text, date, timestamp[tz]).

use datafusion::arrow::datatypes::DataType;
use datafusion::common::ParamValues;
use datafusion::logical_expr::LogicalPlan;
use datafusion::scalar::ScalarValue;
use pgwire::api::Type;
use pgwire::api::portal::Format;
use pgwire::error::PgWireResult;

use super::encode::{arrow_type, pg_type};
use super::error::user_error;

/// Microseconds from the Unix epoch to PostgreSQL's (2000-01-01).
const PG_EPOCH_MICROS: i64 = 946_684_800_000_000;
/// Days from the Unix epoch to PostgreSQL's.
const PG_EPOCH_DAYS: i32 = 10_957;

/// The types DataFusion inferred for `$1..$n` of `plan`, in order (`None`: not inferable).
pub(super) fn inferred(plan: &LogicalPlan) -> PgWireResult<Vec<Option<DataType>>> {
    crate::sqlwire::parameter_types(plan).map_err(|e| user_error("42P18", e))
}

/// The types announced in `ParameterDescription`: declared by the client, else inferred,
/// else text.
pub(super) fn wire_types(declared: &[Option<Type>], inferred: &[Option<DataType>]) -> Vec<Type> {
    (0..declared.len().max(inferred.len()))
        .map(|i| {
            declared
                .get(i)
                .cloned()
                .flatten()
                .filter(|t| *t != Type::UNKNOWN)
                .or_else(|| inferred.get(i).cloned().flatten().map(|t| pg_type(&t)))
                .unwrap_or(Type::TEXT)
        })
        .collect()
}

/// Decodes the bound `values` (in `format`) as the parameters of a statement whose parameters
/// have `wire` types and DataFusion types `inferred`.
pub(super) fn decode(
    values: &[Option<bytes::Bytes>],
    format: &Format,
    wire: &[Type],
    inferred: &[Option<DataType>],
) -> PgWireResult<ParamValues> {
    // More values than the plan has placeholders is fine: a catalog rewrite (see `rewrite`) may
    // have dropped the subquery that used some. Fewer is not.
    if values.len() < inferred.len() {
        return Err(user_error(
            "08P01",
            format!(
                "bind message supplies {} parameters, but the statement requires {}",
                values.len(),
                inferred.len()
            ),
        ));
    }
    let mut scalars = Vec::with_capacity(values.len());
    for (i, value) in values.iter().enumerate() {
        let ty = wire.get(i).cloned().unwrap_or(Type::TEXT);
        let target = inferred
            .get(i)
            .cloned()
            .flatten()
            .or_else(|| arrow_type(&ty))
            .unwrap_or(DataType::Utf8);
        let scalar = match value {
            None => ScalarValue::try_from(&target).unwrap_or(ScalarValue::Null),
            Some(bytes) if format.is_binary(i) => binary(&ty, bytes)
                .ok_or_else(|| invalid(i, &format!("binary {} value", ty.name())))?,
            Some(bytes) => ScalarValue::Utf8(Some(
                std::str::from_utf8(bytes)
                    .map_err(|_| invalid(i, "UTF-8 text"))?
                    .to_owned(),
            )),
        };
        let scalar = if scalar.data_type() == target {
            scalar
        } else {
            scalar
                .cast_to(&target)
                .map_err(|e| invalid(i, &format!("{target} value ({e})")))?
        };
        scalars.push(scalar);
    }
    Ok(ParamValues::from(scalars))
}

fn invalid(i: usize, what: &str) -> pgwire::error::PgWireError {
    // invalid_text_representation
    user_error(
        "22P02",
        format!("parameter ${} is not a valid {what}", i + 1),
    )
}

/// A binary-format value of type `ty`; `None` when it is malformed or of a type not decoded.
fn binary(ty: &Type, bytes: &[u8]) -> Option<ScalarValue> {
    let fixed = |n: usize| (bytes.len() == n).then_some(bytes);
    Some(match *ty {
        Type::INT2 => ScalarValue::Int16(Some(i16::from_be_bytes(fixed(2)?.try_into().ok()?))),
        Type::INT4 | Type::OID => {
            ScalarValue::Int32(Some(i32::from_be_bytes(fixed(4)?.try_into().ok()?)))
        }
        Type::INT8 => ScalarValue::Int64(Some(i64::from_be_bytes(fixed(8)?.try_into().ok()?))),
        Type::FLOAT4 => ScalarValue::Float32(Some(f32::from_be_bytes(fixed(4)?.try_into().ok()?))),
        Type::FLOAT8 => ScalarValue::Float64(Some(f64::from_be_bytes(fixed(8)?.try_into().ok()?))),
        Type::BOOL => ScalarValue::Boolean(Some(fixed(1)?[0] != 0)),
        Type::DATE => ScalarValue::Date32(Some(
            i32::from_be_bytes(fixed(4)?.try_into().ok()?) + PG_EPOCH_DAYS,
        )),
        Type::TIMESTAMP | Type::TIMESTAMPTZ => {
            let micros = i64::from_be_bytes(fixed(8)?.try_into().ok()?) + PG_EPOCH_MICROS;
            let tz = (*ty == Type::TIMESTAMPTZ).then(|| "UTC".into());
            ScalarValue::TimestampMicrosecond(Some(micros), tz)
        }
        Type::TEXT | Type::VARCHAR | Type::NAME | Type::BPCHAR | Type::UNKNOWN => {
            ScalarValue::Utf8(Some(std::str::from_utf8(bytes).ok()?.to_owned()))
        }
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_and_binary_values_become_the_inferred_type() {
        let inferred = vec![Some(DataType::Int64), Some(DataType::Utf8), None];
        let wire = wire_types(&[Some(Type::INT4)], &inferred);
        assert_eq!(wire, vec![Type::INT4, Type::TEXT, Type::TEXT]);
        let values = vec![
            Some(bytes::Bytes::from_static(&[0, 0, 0, 42])),
            Some(bytes::Bytes::from_static(b"shop")),
            None,
        ];
        let params = decode(&values, &Format::UnifiedBinary, &wire, &inferred).unwrap();
        let ParamValues::List(list) = params else {
            panic!("positional")
        };
        assert_eq!(list[0].value(), &ScalarValue::Int64(Some(42)));
        assert_eq!(list[1].value(), &ScalarValue::Utf8(Some("shop".to_owned())));
        assert_eq!(list[2].value(), &ScalarValue::Utf8(None));

        let text = vec![Some(bytes::Bytes::from_static(b"x1")), None, None];
        let err = decode(&text, &Format::UnifiedText, &wire, &inferred).unwrap_err();
        assert!(err.to_string().contains("parameter $1"), "{err}");
    }
}
