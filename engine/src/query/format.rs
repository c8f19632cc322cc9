//! Query results as JSON (an array of row objects), CSV, Arrow IPC or a text table.

use std::str::FromStr;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::csv::WriterBuilder as CsvWriterBuilder;
use datafusion::arrow::ipc::writer::StreamWriter;
use datafusion::arrow::json::WriterBuilder as JsonWriterBuilder;
use datafusion::arrow::json::writer::JsonArray;
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

/// Encodes a result in the given format.
pub fn encode(output: &QueryOutput, format: Format) -> Result<Vec<u8>> {
    let batches: Vec<&RecordBatch> = output.batches.iter().collect();
    match format {
        Format::Json => {
            // Null columns are written as `null`, so every row object has every column.
            let mut writer = JsonWriterBuilder::new()
                .with_explicit_nulls(true)
                .build::<_, JsonArray>(Vec::new());
            writer.write_batches(&batches).map_err(encode_error)?;
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
                if batches.is_empty() {
                    let empty = RecordBatch::new_empty(std::sync::Arc::clone(&output.schema));
                    writer.write(&empty).map_err(encode_error)?;
                }
                for batch in batches {
                    writer.write(batch).map_err(encode_error)?;
                }
            }
            Ok(out)
        }
        Format::Arrow => {
            let mut writer =
                StreamWriter::try_new(Vec::new(), &output.schema).map_err(encode_error)?;
            for batch in batches {
                writer.write(batch).map_err(encode_error)?;
            }
            writer.finish().map_err(encode_error)?;
            writer.into_inner().map_err(encode_error)
        }
        Format::Table => {
            let text = if output.batches.is_empty() {
                pretty_format_batches(&[RecordBatch::new_empty(std::sync::Arc::clone(
                    &output.schema,
                ))])
            } else {
                pretty_format_batches(&output.batches)
            }
            .map_err(encode_error)?;
            Ok(format!("{text}\n").into_bytes())
        }
    }
}
