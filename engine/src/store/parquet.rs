//! Writing buffered events as Parquet, one file per (project, date, hour) partition.
//!
//! Files are sorted by (issue id, timestamp) within their project, compressed with zstd, with
//! dictionaries on low-cardinality strings (not on ids, timestamps or the event JSON), bloom
//! filters on id-like columns, and statistics truncated to 64 bytes.

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use chrono::{DateTime, Timelike};
use datafusion::arrow::array::{AsArray, RecordBatch, UInt32Array};
use datafusion::arrow::compute::{
    SortColumn, concat_batches, lexsort_to_indices, take_record_batch,
};
use datafusion::arrow::datatypes::{Int64Type, TimestampMillisecondType};
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::parquet::basic::{Compression, ZstdLevel};
use datafusion::parquet::file::metadata::SortingColumn;
use datafusion::parquet::file::properties::WriterProperties;
use datafusion::parquet::schema::types::ColumnPath;
use object_store::path::Path as ObjectPath;

use super::manifest::DataFile;
use super::{Error, Result, Store};
use crate::events::{self, column_index};

fn sorting(name: &str) -> SortingColumn {
    SortingColumn {
        column_idx: column_index(name) as i32,
        descending: false,
        nulls_first: false,
    }
}

/// Writer settings for event files.
pub fn writer_properties(zstd_level: i32) -> WriterProperties {
    let level = ZstdLevel::try_new(zstd_level).unwrap_or_default();
    let col = |name: &str| ColumnPath::from(name);
    let mut builder = WriterProperties::builder()
        .set_compression(Compression::ZSTD(level))
        .set_max_row_group_row_count(Some(100_000))
        .set_statistics_truncate_length(Some(64))
        .set_column_index_truncate_length(Some(64))
        // Large pages let zstd see many similar events at once: the event JSON of one issue
        // repeats most of its bytes.
        .set_column_data_page_size_limit(col("event"), 8 * 1024 * 1024)
        .set_sorting_columns(Some(vec![
            sorting("project_id"),
            sorting("issue_id"),
            sorting("timestamp"),
        ]));
    for name in [
        "event_id",
        "timestamp",
        "received",
        "event",
        "trace_id",
        "user_ip",
    ] {
        builder = builder.set_column_dictionary_enabled(col(name), false);
    }
    for name in ["event_id", "trace_id", "user_id"] {
        builder = builder.set_column_bloom_filter_enabled(col(name), true);
    }
    builder.build()
}

/// Partition key of a row: project and the hour (UTC) of its timestamp.
type PartitionKey = (i64, i64);

const HOUR_MS: i64 = 3_600_000;

/// Splits batches into partitions, each sorted by (issue id, timestamp).
pub fn partition(batches: &[RecordBatch]) -> Result<Vec<(PartitionKey, RecordBatch)>> {
    if batches.is_empty() {
        return Ok(Vec::new());
    }
    let all = concat_batches(&events::schema(), batches).map_err(arrow_error)?;
    let projects = all
        .column(column_index("project_id"))
        .as_primitive::<Int64Type>();
    let timestamps = all
        .column(column_index("timestamp"))
        .as_primitive::<TimestampMillisecondType>();
    let mut groups: BTreeMap<PartitionKey, Vec<u32>> = BTreeMap::new();
    for row in 0..all.num_rows() {
        let key = (
            projects.value(row),
            timestamps.value(row).div_euclid(HOUR_MS),
        );
        groups.entry(key).or_default().push(row as u32);
    }
    let mut out = Vec::with_capacity(groups.len());
    for (key, rows) in groups {
        let part = take_record_batch(&all, &UInt32Array::from(rows)).map_err(arrow_error)?;
        let order = lexsort_to_indices(
            &[
                SortColumn {
                    values: Arc::clone(part.column(column_index("issue_id"))),
                    options: None,
                },
                SortColumn {
                    values: Arc::clone(part.column(column_index("timestamp"))),
                    options: None,
                },
            ],
            None,
        )
        .map_err(arrow_error)?;
        out.push((key, take_record_batch(&part, &order).map_err(arrow_error)?));
    }
    Ok(out)
}

fn arrow_error(err: datafusion::arrow::error::ArrowError) -> Error {
    Error::Parquet(Box::new(err.into()))
}

/// Encodes one partition as a Parquet file in memory.
pub fn encode(batch: &RecordBatch, props: WriterProperties) -> Result<Vec<u8>> {
    let mut buffer = Vec::with_capacity(batch.get_array_memory_size() / 4);
    let mut writer = ArrowWriter::try_new(&mut buffer, batch.schema(), Some(props))
        .map_err(|e| Error::Parquet(Box::new(e)))?;
    writer
        .write(batch)
        .map_err(|e| Error::Parquet(Box::new(e)))?;
    writer.close().map_err(|e| Error::Parquet(Box::new(e)))?;
    Ok(buffer)
}

/// Writes the batches as Parquet files (durably) and describes them for the manifest.
pub async fn write_partitions(
    store: &Store,
    batches: &[RecordBatch],
    zstd_level: i32,
) -> Result<Vec<DataFile>> {
    let batches = batches.to_vec();
    let encoded = tokio::task::spawn_blocking(move || -> Result<Vec<_>> {
        let mut files = Vec::new();
        for ((project, hour), batch) in partition(&batches)? {
            let timestamps = batch
                .column(column_index("timestamp"))
                .as_primitive::<TimestampMillisecondType>();
            let min = datafusion::arrow::compute::min(timestamps).unwrap_or_default();
            let max = datafusion::arrow::compute::max(timestamps).unwrap_or_default();
            let data = encode(&batch, writer_properties(zstd_level))?;
            files.push((project, hour, batch.num_rows(), min, max, data));
        }
        Ok(files)
    })
    .await
    .expect("parquet encoding does not panic")?;

    let mut described = Vec::with_capacity(encoded.len());
    for (project, hour, rows, min, max, data) in encoded {
        let at = DateTime::from_timestamp_millis(hour * HOUR_MS).unwrap_or_default();
        let date = at.format("%Y-%m-%d").to_string();
        let path = format!(
            "events/project={project}/date={date}/hour={:02}/{}.parquet",
            at.hour(),
            ulid::Ulid::new()
        );
        let bytes = data.len() as u64;
        store
            .put_durable(&ObjectPath::from(path.as_str()), Bytes::from(data))
            .await?;
        described.push(DataFile {
            path,
            project_id: project as u64,
            date,
            hour: at.hour() as u8,
            rows: rows as u64,
            bytes,
            min_timestamp_ms: min,
            max_timestamp_ms: max,
        });
    }
    Ok(described)
}
