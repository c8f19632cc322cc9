//! Arrow results as PostgreSQL rows, in the text or binary format each column was asked for.
//!
//! Integers, floats, booleans, dates and timestamps keep their PostgreSQL types (int2/4/8,
//! float4/8, bool, date, timestamp, timestamptz), so a driver decodes them as numbers and times;
//! everything else (strings, maps, lists) is `text`, maps, lists and structs as JSON text.

use std::sync::Arc;

use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};
use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Date32Array, Float32Array, Float64Array, Int16Array,
    Int32Array, Int64Array, RecordBatch, TimestampMicrosecondArray,
};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{
    DataType, Date32Type, Field, Float32Type, Float64Type, Int16Type, Int32Type, Int64Type, Schema,
    TimeUnit, TimestampMicrosecondType,
};
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use futures::stream;
use pgwire::api::Type;
use pgwire::api::portal::Format;
use pgwire::api::results::{DataRowEncoder, FieldInfo, QueryResponse};
use pgwire::error::PgWireResult;
use pgwire::messages::data::DataRow;

use super::error::internal;
use crate::query::format;

/// The PostgreSQL type a column of `data_type` is announced (and encoded) as.
pub(super) fn pg_type(data_type: &DataType) -> Type {
    match data_type {
        DataType::Int8 | DataType::Int16 | DataType::UInt8 => Type::INT2,
        DataType::Int32 | DataType::UInt16 => Type::INT4,
        DataType::Int64 | DataType::UInt32 | DataType::UInt64 => Type::INT8,
        DataType::Float16 | DataType::Float32 => Type::FLOAT4,
        DataType::Float64 => Type::FLOAT8,
        DataType::Boolean => Type::BOOL,
        DataType::Date32 | DataType::Date64 => Type::DATE,
        DataType::Timestamp(_, Some(_)) => Type::TIMESTAMPTZ,
        DataType::Timestamp(_, None) => Type::TIMESTAMP,
        DataType::Dictionary(_, value) => pg_type(value),
        _ => Type::TEXT,
    }
}

/// The Arrow type a value of PostgreSQL type `ty` is held in (the inverse of [`pg_type`]).
pub(super) fn arrow_type(ty: &Type) -> Option<DataType> {
    Some(match *ty {
        Type::INT2 => DataType::Int16,
        Type::INT4 | Type::OID => DataType::Int32,
        Type::INT8 => DataType::Int64,
        Type::FLOAT4 => DataType::Float32,
        Type::FLOAT8 | Type::NUMERIC => DataType::Float64,
        Type::BOOL => DataType::Boolean,
        Type::DATE => DataType::Date32,
        Type::TIMESTAMP => DataType::Timestamp(TimeUnit::Microsecond, None),
        Type::TIMESTAMPTZ => DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
        Type::TEXT | Type::VARCHAR | Type::NAME | Type::BPCHAR | Type::CHAR => DataType::Utf8,
        _ => return None,
    })
}

/// The row description of `schema`, each column in the format `format` asks for.
pub(super) fn fields(schema: &Schema, format: &Format) -> Vec<FieldInfo> {
    schema
        .fields()
        .iter()
        .enumerate()
        .map(|(i, f)| {
            FieldInfo::new(
                f.name().clone(),
                None,
                None,
                pg_type(f.data_type()),
                format.format_for(i),
            )
        })
        .collect()
}

/// The rows of `batches` encoded as `fields` describe them (type and format per column).
pub(super) fn rows(fields: Vec<FieldInfo>, batches: &[RecordBatch]) -> PgWireResult<QueryResponse> {
    let fields = Arc::new(fields);
    let mut encoder = DataRowEncoder::new(Arc::clone(&fields));
    let mut rows = Vec::new();
    for batch in batches {
        let columns = batch
            .columns()
            .iter()
            .zip(fields.iter())
            .map(|(column, field)| Column::new(column, field.datatype()))
            .collect::<PgWireResult<Vec<_>>>()?;
        for row in 0..batch.num_rows() {
            for column in &columns {
                column.encode(row, &mut encoder)?;
            }
            rows.push(encoder.take_row());
        }
    }
    Ok(QueryResponse::new(
        fields,
        stream::iter(rows.into_iter().map(Ok::<DataRow, _>)),
    ))
}

/// One result column converted to the Rust values its PostgreSQL type is encoded from.
enum Column {
    Int2(Int16Array),
    Int4(Int32Array),
    Int8(Int64Array),
    Float4(Float32Array),
    Float8(Float64Array),
    Bool(BooleanArray),
    Date(Date32Array),
    Timestamp(TimestampMicrosecondArray),
    TimestampTz(TimestampMicrosecondArray),
    Text(Vec<Option<String>>),
}

impl Column {
    fn new(array: &ArrayRef, ty: &Type) -> PgWireResult<Self> {
        let to = |data_type: DataType| cast(array, &data_type).map_err(internal);
        Ok(match *ty {
            Type::INT2 => Self::Int2(to(DataType::Int16)?.as_primitive::<Int16Type>().clone()),
            Type::INT4 => Self::Int4(to(DataType::Int32)?.as_primitive::<Int32Type>().clone()),
            Type::INT8 => Self::Int8(to(DataType::Int64)?.as_primitive::<Int64Type>().clone()),
            Type::FLOAT4 => {
                Self::Float4(to(DataType::Float32)?.as_primitive::<Float32Type>().clone())
            }
            Type::FLOAT8 => {
                Self::Float8(to(DataType::Float64)?.as_primitive::<Float64Type>().clone())
            }
            Type::BOOL => Self::Bool(to(DataType::Boolean)?.as_boolean().clone()),
            Type::DATE => Self::Date(to(DataType::Date32)?.as_primitive::<Date32Type>().clone()),
            Type::TIMESTAMP => Self::Timestamp(
                to(DataType::Timestamp(TimeUnit::Microsecond, None))?
                    .as_primitive::<TimestampMicrosecondType>()
                    .clone(),
            ),
            Type::TIMESTAMPTZ => Self::TimestampTz(
                to(DataType::Timestamp(
                    TimeUnit::Microsecond,
                    Some("UTC".into()),
                ))?
                .as_primitive::<TimestampMicrosecondType>()
                .clone(),
            ),
            _ => Self::Text(text(array)?),
        })
    }

    fn encode(&self, row: usize, encoder: &mut DataRowEncoder) -> PgWireResult<()> {
        fn value<A: Array, T>(array: &A, row: usize, get: impl Fn(&A) -> T) -> Option<T> {
            (!array.is_null(row)).then(|| get(array))
        }
        match self {
            Self::Int2(a) => encoder.encode_field(&value(a, row, |a| a.value(row))),
            Self::Int4(a) => encoder.encode_field(&value(a, row, |a| a.value(row))),
            Self::Int8(a) => encoder.encode_field(&value(a, row, |a| a.value(row))),
            Self::Float4(a) => encoder.encode_field(&value(a, row, |a| a.value(row))),
            Self::Float8(a) => encoder.encode_field(&value(a, row, |a| a.value(row))),
            Self::Bool(a) => encoder.encode_field(&value(a, row, |a| a.value(row))),
            Self::Date(a) => {
                let date: Option<NaiveDate> = value(a, row, |a| a.value_as_date(row)).flatten();
                encoder.encode_field(&date)
            }
            Self::Timestamp(a) => {
                let ts: Option<NaiveDateTime> =
                    value(a, row, |a| DateTime::from_timestamp_micros(a.value(row)))
                        .flatten()
                        .map(|t| t.naive_utc());
                encoder.encode_field(&ts)
            }
            Self::TimestampTz(a) => {
                let ts: Option<DateTime<Utc>> =
                    value(a, row, |a| DateTime::from_timestamp_micros(a.value(row))).flatten();
                encoder.encode_field(&ts)
            }
            Self::Text(values) => encoder.encode_field(&values[row]),
        }
    }
}

/// A column in its display form; `None` for nulls.
fn text(array: &ArrayRef) -> PgWireResult<Vec<Option<String>>> {
    if let Some(strings) = array.as_string_opt::<i32>() {
        return Ok(strings.iter().map(|s| s.map(str::to_owned)).collect());
    }
    if format::is_nested(array.data_type()) {
        // Maps, lists and structs as JSON text, as in CSV over HTTP.
        let field = Arc::new(Field::new("value", array.data_type().clone(), true));
        let json = format::json_text(&field, array).map_err(internal)?;
        return text(&json);
    }
    let options = FormatOptions::default().with_display_error(true);
    let formatter = ArrayFormatter::try_new(array.as_ref(), &options).map_err(internal)?;
    // Logical nulls: a `NullArray` (the type of a bare `NULL`) has no null buffer.
    let nulls = array.logical_nulls();
    Ok((0..array.len())
        .map(|i| {
            let null = nulls.as_ref().is_some_and(|n| n.is_null(i));
            (!null).then(|| formatter.value(i).to_string())
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use datafusion::arrow::array::{Int64Array, StringArray, TimestampMicrosecondArray};
    use datafusion::arrow::datatypes::{Field, Schema};
    use futures::StreamExt;

    use super::*;

    #[tokio::test]
    async fn binary_and_text_columns_carry_their_values() {
        let schema = Arc::new(Schema::new(vec![
            Field::new("n", DataType::Int64, true),
            Field::new("title", DataType::Utf8, true),
            Field::new(
                "at",
                DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
                true,
            ),
        ]));
        let batch = RecordBatch::try_new(
            Arc::clone(&schema),
            vec![
                Arc::new(Int64Array::from(vec![Some(7), None])),
                Arc::new(StringArray::from(vec![Some("shop broke"), Some("x")])),
                Arc::new(
                    TimestampMicrosecondArray::from(vec![Some(1_000_000), None])
                        .with_timezone("UTC"),
                ),
            ],
        )
        .unwrap();
        let format = Format::Individual(vec![1, 0, 0]);
        let fields = fields(&schema, &format);
        assert_eq!(fields[0].datatype(), &Type::INT8);
        assert_eq!(fields[2].datatype(), &Type::TIMESTAMPTZ);
        let mut response = rows(fields, &[batch]).unwrap();
        let rows: Vec<DataRow> = response
            .data_rows()
            .map(|r| r.unwrap())
            .collect::<Vec<_>>()
            .await;
        assert_eq!(rows.len(), 2);
        // int8 in binary: length 8, big-endian 7; text as UTF-8; timestamptz in text form.
        let first = &rows[0].data;
        assert_eq!(&first[..12], &[0, 0, 0, 8, 0, 0, 0, 0, 0, 0, 0, 7]);
        assert_eq!(&first[12..26], b"\0\0\0\x0ashop broke");
        assert_eq!(&first[30..], b"1970-01-01 00:00:01.000000+00");
        // Nulls are length -1.
        assert_eq!(&rows[1].data[..4], &[0xff, 0xff, 0xff, 0xff]);
    }
}
