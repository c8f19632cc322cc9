//! Query results as JSON (an array of row objects), CSV, Arrow IPC or a text table.
//!
//! Every column type encodes in every format. JSON writes maps as objects, lists as arrays and
//! structs as objects; CSV and the text table, which hold one text per cell, write those values
//! as JSON text ([`json_text`]), so `tags` reads `{"browser":"Firefox"}` in all three.

use std::str::FromStr;
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, RecordBatch, StringBuilder};
use datafusion::arrow::csv::WriterBuilder as CsvWriterBuilder;
use datafusion::arrow::datatypes::{DataType, Field, FieldRef, Schema, SchemaRef};
use datafusion::arrow::error::ArrowError;
use datafusion::arrow::ipc::writer::StreamWriter;
use datafusion::arrow::json::WriterBuilder as JsonWriterBuilder;
use datafusion::arrow::json::writer::JsonArray;
use datafusion::arrow::json::writer::{EncoderOptions, make_encoder};
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use datafusion::arrow::util::pretty::pretty_format_batches;

use super::{Error, QueryOutput, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    #[default]
    Json,
    Csv,
    Arrow,
    Table,
}

impl FromStr for Format {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "json" => Ok(Self::Json),
            "csv" => Ok(Self::Csv),
            "arrow" => Ok(Self::Arrow),
            "table" => Ok(Self::Table),
            other => Err(format!(
                "unknown format {other:?}: use json, csv, arrow or table"
            )),
        }
    }
}

impl Format {
    pub fn content_type(self) -> &'static str {
        match self {
            Self::Json => "application/json",
            Self::Csv => "text/csv; charset=utf-8",
            Self::Arrow => "application/vnd.apache.arrow.stream",
            Self::Table => "text/plain; charset=utf-8",
        }
    }
}

fn encode_error(err: impl std::fmt::Display) -> Error {
    Error::Encode(err.to_string())
}

/// True for types whose values have parts (maps, lists, structs, unions): one cell of CSV or of
/// the text table shows them as JSON text.
pub fn is_nested(data_type: &DataType) -> bool {
    match data_type {
        DataType::Map(..)
        | DataType::List(_)
        | DataType::LargeList(_)
        | DataType::ListView(_)
        | DataType::LargeListView(_)
        | DataType::FixedSizeList(..)
        | DataType::Struct(_)
        | DataType::Union(..) => true,
        DataType::Dictionary(_, value) => is_nested(value),
        _ => false,
    }
}

/// The values of `array` as JSON text, nulls as nulls: a map is an object (`{"k":"v"}`), a list
/// an array, a struct an object of its fields. A type the JSON encoder does not know (a union)
/// is written in Arrow's display form instead.
pub fn json_text(field: &FieldRef, array: &ArrayRef) -> Result<ArrayRef, ArrowError> {
    let nulls = array.logical_nulls();
    let is_null = |i: usize| nulls.as_ref().is_some_and(|n| n.is_null(i));
    let mut builder = StringBuilder::with_capacity(array.len(), array.len() * 16);
    let options = EncoderOptions::default().with_explicit_nulls(true);
    match make_encoder(field, array.as_ref(), &options) {
        Ok(mut encoder) => {
            let mut buffer = Vec::new();
            for i in 0..array.len() {
                if is_null(i) {
                    builder.append_null();
                    continue;
                }
                buffer.clear();
                encoder.encode(i, &mut buffer);
                builder.append_value(String::from_utf8_lossy(&buffer));
            }
        }
        Err(_) => {
            let options = FormatOptions::default().with_display_error(true);
            let formatter = ArrayFormatter::try_new(array.as_ref(), &options)?;
            for i in 0..array.len() {
                if is_null(i) {
                    builder.append_null();
                } else {
                    builder.append_value(formatter.value(i).to_string());
                }
            }
        }
    }
    Ok(Arc::new(builder.finish()))
}

/// `schema` with its nested columns as text (see [`text_batch`]).
fn text_schema(schema: &SchemaRef) -> SchemaRef {
    if !schema.fields().iter().any(|f| is_nested(f.data_type())) {
        return Arc::clone(schema);
    }
    let fields: Vec<Field> = schema
        .fields()
        .iter()
        .map(|f| {
            if is_nested(f.data_type()) {
                Field::new(f.name(), DataType::Utf8, true)
            } else {
                f.as_ref().clone()
            }
        })
        .collect();
    Arc::new(Schema::new_with_metadata(fields, schema.metadata().clone()))
}

/// `batch` with its nested columns (maps, lists, structs) as JSON text, for formats with one
/// text per cell.
fn text_batch(schema: &SchemaRef, batch: &RecordBatch) -> Result<RecordBatch, ArrowError> {
    let columns = batch
        .schema()
        .fields()
        .iter()
        .zip(batch.columns())
        .map(|(field, column)| {
            if is_nested(field.data_type()) {
                json_text(field, column)
            } else {
                Ok(Arc::clone(column))
            }
        })
        .collect::<Result<Vec<_>, _>>()?;
    RecordBatch::try_new(Arc::clone(schema), columns)
}

/// `batch` with the columns the JSON encoder has no encoding for (unions, also inside lists)
/// as text, so a result always encodes as JSON.
fn json_batch(batch: &RecordBatch) -> Result<RecordBatch, ArrowError> {
    let options = EncoderOptions::default();
    let schema = batch.schema();
    let encodable = |field: &FieldRef, column: &ArrayRef| {
        make_encoder(field, column.as_ref(), &options).is_ok()
    };
    if schema
        .fields()
        .iter()
        .zip(batch.columns())
        .all(|(f, c)| encodable(f, c))
    {
        return Ok(batch.clone());
    }
    let mut fields = Vec::with_capacity(schema.fields().len());
    let mut columns = Vec::with_capacity(fields.capacity());
    for (field, column) in schema.fields().iter().zip(batch.columns()) {
        if encodable(field, column) {
            fields.push(Arc::clone(field));
            columns.push(Arc::clone(column));
        } else {
            fields.push(Arc::new(Field::new(field.name(), DataType::Utf8, true)));
            columns.push(json_text(field, column)?);
        }
    }
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)
}

/// The result with nested columns as JSON text, at least one (empty) batch.
fn text_batches(output: &QueryOutput) -> Result<Vec<RecordBatch>> {
    let schema = text_schema(&output.schema);
    if output.batches.is_empty() {
        return Ok(vec![RecordBatch::new_empty(schema)]);
    }
    output
        .batches
        .iter()
        .map(|batch| text_batch(&schema, batch).map_err(encode_error))
        .collect()
}

/// Encodes a result in the given format.
pub fn encode(output: &QueryOutput, format: Format) -> Result<Vec<u8>> {
    match format {
        Format::Json => {
            // Null columns are written as `null`, so every row object has every column.
            let mut writer = JsonWriterBuilder::new()
                .with_explicit_nulls(true)
                .build::<_, JsonArray>(Vec::new());
            for batch in &output.batches {
                writer
                    .write(&json_batch(batch).map_err(encode_error)?)
                    .map_err(encode_error)?;
            }
            writer.finish().map_err(encode_error)?;
            let mut out = writer.into_inner();
            if out.is_empty() {
                out.extend_from_slice(b"[]");
            }
            out.push(b'\n');
            Ok(out)
        }
        Format::Csv => {
            let mut out = Vec::new();
            {
                let mut writer = CsvWriterBuilder::new().with_header(true).build(&mut out);
                for batch in text_batches(output)? {
                    writer.write(&batch).map_err(encode_error)?;
                }
            }
            Ok(out)
        }
        Format::Arrow => {
            let mut writer =
                StreamWriter::try_new(Vec::new(), &output.schema).map_err(encode_error)?;
            for batch in &output.batches {
                writer.write(batch).map_err(encode_error)?;
            }
            writer.finish().map_err(encode_error)?;
            writer.into_inner().map_err(encode_error)
        }
        Format::Table => {
            let text = pretty_format_batches(&text_batches(output)?).map_err(encode_error)?;
            Ok(format!("{text}\n").into_bytes())
        }
    }
}

#[cfg(test)]
mod tests {
    use datafusion::arrow::array::{
        Int64Array, ListBuilder, MapBuilder, StringArray, StringBuilder, StructArray,
    };
    use datafusion::arrow::ipc::reader::StreamReader;

    use super::*;

    /// One row with a tags map, a list, a struct and a plain column; one row of nulls / empties.
    fn nested_output() -> QueryOutput {
        let mut tags = MapBuilder::new(None, StringBuilder::new(), StringBuilder::new());
        tags.keys().append_value("browser");
        tags.values().append_value("Firefox, 120");
        tags.keys().append_value("quote");
        tags.values().append_value("say \"hi\"");
        tags.append(true).unwrap();
        tags.append(true).unwrap();
        let mut list = ListBuilder::new(StringBuilder::new());
        list.values().append_value("a");
        list.values().append_value("b");
        list.append(true);
        list.append(false);
        let point = StructArray::from(vec![(
            Arc::new(Field::new("x", DataType::Int64, true)),
            Arc::new(Int64Array::from(vec![Some(1), None])) as ArrayRef,
        )]);
        let columns: Vec<ArrayRef> = vec![
            Arc::new(StringArray::from(vec!["one", "two"])),
            Arc::new(tags.finish()),
            Arc::new(list.finish()),
            Arc::new(point),
        ];
        let fields: Vec<Field> = ["title", "tags", "list", "point"]
            .iter()
            .zip(&columns)
            .map(|(name, c)| Field::new(*name, c.data_type().clone(), true))
            .collect();
        let schema = Arc::new(Schema::new(fields));
        let batch = RecordBatch::try_new(Arc::clone(&schema), columns).unwrap();
        QueryOutput {
            schema,
            batches: vec![batch],
        }
    }

    fn text(bytes: Vec<u8>) -> String {
        String::from_utf8(bytes).unwrap()
    }

    #[test]
    fn csv_writes_maps_lists_and_structs_as_json_text() {
        let csv = text(encode(&nested_output(), Format::Csv).unwrap());
        let expected = concat!(
            "title,tags,list,point\n",
            r#"one,"{""browser"":""Firefox, 120"",""quote"":""say \""hi\""""}","[""a"",""b""]","{""x"":1}""#,
            "\n",
            r#"two,{},,"{""x"":null}""#,
            "\n",
        );
        assert_eq!(csv, expected);
    }

    #[test]
    fn json_writes_maps_as_objects_and_lists_as_arrays() {
        let json: serde_json::Value =
            serde_json::from_slice(&encode(&nested_output(), Format::Json).unwrap()).unwrap();
        assert_eq!(
            json,
            serde_json::json!([
                {"title": "one", "tags": {"browser": "Firefox, 120", "quote": "say \"hi\""},
                 "list": ["a", "b"], "point": {"x": 1}},
                {"title": "two", "tags": {}, "list": null, "point": {"x": null}},
            ])
        );
    }

    #[test]
    fn the_table_shows_nested_values_as_json_text() {
        let table = text(encode(&nested_output(), Format::Table).unwrap());
        assert!(
            table.contains(r#"| one   | {"browser":"Firefox, 120","quote":"say \"hi\""} | ["a","b"] | {"x":1}    |"#),
            "{table}"
        );
        assert!(table.contains(r#"| two   | {}"#), "{table}");
    }

    #[test]
    fn arrow_keeps_the_types() {
        let output = nested_output();
        let bytes = encode(&output, Format::Arrow).unwrap();
        let reader = StreamReader::try_new(std::io::Cursor::new(bytes), None).unwrap();
        assert_eq!(reader.schema(), output.schema);
        let batches: Vec<RecordBatch> = reader.collect::<Result<_, _>>().unwrap();
        assert_eq!(batches, output.batches);
    }

    #[test]
    fn an_empty_result_has_its_header_in_every_text_format() {
        let full = nested_output();
        let empty = QueryOutput {
            schema: Arc::clone(&full.schema),
            batches: vec![],
        };
        assert_eq!(
            text(encode(&empty, Format::Csv).unwrap()),
            "title,tags,list,point\n"
        );
        assert_eq!(text(encode(&empty, Format::Json).unwrap()), "[]\n");
        assert!(text(encode(&empty, Format::Table).unwrap()).contains("| title | tags |"));
    }
}
