//! Writing buffered events as Parquet, one file per (project, date, hour) partition.
//!
//! Files are sorted by (issue id, timestamp) within their project, compressed with zstd, with
//! dictionaries on low-cardinality strings (not on ids, timestamps or the event JSON), bloom
//! filters on id-like columns, and statistics truncated to 64 bytes. Rows of item tables
//! (`crate::items`) are written one file per (project, date), in time order.

use std::sync::Arc;

use bytes::Bytes;
use chrono::{DateTime, Timelike};
use datafusion::arrow::array::{AsArray, RecordBatch};
use datafusion::arrow::compute::interleave_record_batch;
use datafusion::arrow::datatypes::{Int64Type, SchemaRef, TimestampMillisecondType};
use datafusion::arrow::error::ArrowError;
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::parquet::basic::{Compression, ZstdLevel};
use datafusion::parquet::file::metadata::SortingColumn;
use datafusion::parquet::file::properties::WriterProperties;
use datafusion::parquet::schema::types::ColumnPath;
use object_store::path::Path as ObjectPath;

use super::manifest::DataFile;
use super::{Error, Result, Store};
use crate::events::{column_index, int64_column, time_column};
use crate::items::ItemTable;

fn sorting(name: &str) -> SortingColumn {
    SortingColumn {
        column_idx: column_index(name) as i32,
        descending: false,
        nulls_first: false,
    }
}

/// Rows per row group at most.
const MAX_ROW_GROUP_ROWS: usize = 100_000;

/// Event JSON per data page in files written by a flush. Every buffer the Parquet writer
/// allocates for a page (values, page, compressed page) then stays within mimalloc's size
/// classes for reused memory (at most 512 KiB); 2 MiB pages made each of them a fresh
/// allocation that is paged in and purged again, about half of all page faults of ingest and
/// 40-60 MB of peak RSS (docs/benchmarks.md, 96e6018). Costs about 60 bytes per event on disk
/// until compaction rewrites the files with [`COMPACTED_EVENT_PAGE_BYTES`].
pub const FLUSH_EVENT_PAGE_BYTES: usize = 512 * 1024;

/// Event JSON per data page in compacted files: large pages let zstd see many similar events
/// at once (the event JSON of one issue repeats most of its bytes); each page starts a new
/// zstd frame, about 3 KB for its first event.
pub const COMPACTED_EVENT_PAGE_BYTES: usize = 2 * 1024 * 1024;

/// Writer settings for an event file of `rows` rows. Bloom filters are sized for the rows of
/// one row group: parquet-rs would otherwise allocate (and then fold) a filter for a million
/// distinct values per column and file.
pub fn writer_properties(
    zstd_level: i32,
    rows: usize,
    event_page_bytes: usize,
) -> WriterProperties {
    let level = ZstdLevel::try_new(zstd_level).unwrap_or_default();
    let col = |name: &str| ColumnPath::from(name);
    let mut builder = WriterProperties::builder()
        .set_compression(Compression::ZSTD(level))
        .set_max_row_group_row_count(Some(MAX_ROW_GROUP_ROWS))
        .set_statistics_truncate_length(Some(64))
        .set_column_index_truncate_length(Some(64))
        .set_column_data_page_size_limit(col("event"), event_page_bytes)
        .set_write_batch_size(256)
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
    let distinct = rows.clamp(1, MAX_ROW_GROUP_ROWS) as u64;
    for name in ["event_id", "trace_id", "user_id"] {
        builder = builder
            .set_column_bloom_filter_enabled(col(name), true)
            .set_column_bloom_filter_max_ndv(col(name), distinct);
    }
    builder.build()
}

/// Partition key of a row: project and the hour (UTC) of its timestamp.
type PartitionKey = (i64, i64);

const HOUR_MS: i64 = 3_600_000;

/// Rows copied into one chunk while encoding: small enough that a flush never holds a second
/// copy of the buffer, large enough for Parquet pages to fill.
const CHUNK_ROWS: usize = 256;

/// The rows of one file: a project and an hour, in write order.
#[derive(Debug)]
pub struct Partition {
    pub key: PartitionKey,
    /// (batch, row) positions, sorted by (issue id, timestamp).
    pub rows: Vec<(usize, usize)>,
    pub min_timestamp_ms: i64,
    pub max_timestamp_ms: i64,
}

/// Groups the rows of `batches` by (project, hour) and orders each group by (issue id,
/// timestamp), with one sort of small keys; no event data is copied.
pub fn plan_partitions(batches: &[RecordBatch]) -> Vec<Partition> {
    let mut keys: Vec<(i64, i64, i64, i64, usize, usize)> =
        Vec::with_capacity(batches.iter().map(RecordBatch::num_rows).sum());
    for (b, batch) in batches.iter().enumerate() {
        let projects = int64_column(batch, "project_id");
        let issues = int64_column(batch, "issue_id");
        let timestamps = time_column(batch, "timestamp");
        for row in 0..batch.num_rows() {
            let ts = timestamps.value(row);
            keys.push((
                projects.value(row),
                ts.div_euclid(HOUR_MS),
                issues.value(row),
                ts,
                b,
                row,
            ));
        }
    }
    keys.sort_unstable();
    let mut out: Vec<Partition> = Vec::new();
    for (project, hour, _, ts, b, row) in keys {
        match out.last_mut() {
            Some(p) if p.key == (project, hour) => {
                p.rows.push((b, row));
                p.min_timestamp_ms = p.min_timestamp_ms.min(ts);
                p.max_timestamp_ms = p.max_timestamp_ms.max(ts);
            }
            _ => out.push(Partition {
                key: (project, hour),
                rows: vec![(b, row)],
                min_timestamp_ms: ts,
                max_timestamp_ms: ts,
            }),
        }
    }
    out
}

/// Copies the given rows into one batch.
pub fn take_rows(batches: &[RecordBatch], rows: &[(usize, usize)]) -> Result<RecordBatch> {
    let refs: Vec<&RecordBatch> = batches.iter().collect();
    interleave_record_batch(&refs, rows).map_err(arrow_error)
}

fn arrow_error(err: datafusion::arrow::error::ArrowError) -> Error {
    Error::Parquet(Box::new(err.into()))
}

/// Encodes one partition as a Parquet file in memory, a chunk of rows at a time.
pub fn encode(
    batches: &[RecordBatch],
    rows: &[(usize, usize)],
    props: WriterProperties,
) -> Result<Vec<u8>> {
    let parquet = |e| Error::Parquet(Box::new(e));
    let mut buffer = Vec::new();
    let mut writer =
        ArrowWriter::try_new(&mut buffer, crate::events::schema(), Some(props)).map_err(parquet)?;
    for chunk in rows.chunks(CHUNK_ROWS) {
        writer.write(&take_rows(batches, chunk)?).map_err(parquet)?;
    }
    writer.close().map_err(parquet)?;
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
        for part in plan_partitions(&batches) {
            let data = encode(
                &batches,
                &part.rows,
                writer_properties(zstd_level, part.rows.len(), FLUSH_EVENT_PAGE_BYTES),
            )?;
            let (project, hour) = part.key;
            files.push((
                project,
                hour,
                part.rows.len(),
                part.min_timestamp_ms,
                part.max_timestamp_ms,
                data,
            ));
        }
        Ok(files)
    })
    .await
    .expect("parquet encoding does not panic")?;

    let mut described = Vec::with_capacity(encoded.len());
    for (project, hour, rows, min, max, data) in encoded {
        let at = DateTime::from_timestamp_millis(hour * HOUR_MS).unwrap_or_default();
        let date = at.format("%Y-%m-%d").to_string();
        let path = super::keys::event_file(project as u64, &date, at.hour(), ulid::Ulid::new());
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

/// Writer settings for a file of an item table: zstd, rows in time order, bloom filters on
/// the id columns the table has.
fn item_writer_properties(schema: &SchemaRef, zstd_level: i32, rows: usize) -> WriterProperties {
    let level = ZstdLevel::try_new(zstd_level).unwrap_or_default();
    let mut builder = WriterProperties::builder()
        .set_compression(Compression::ZSTD(level))
        .set_max_row_group_row_count(Some(MAX_ROW_GROUP_ROWS))
        .set_statistics_truncate_length(Some(64))
        .set_column_index_truncate_length(Some(64));
    if let Ok(index) = schema.index_of("timestamp") {
        builder = builder.set_sorting_columns(Some(vec![SortingColumn {
            column_idx: index as i32,
            descending: false,
            nulls_first: false,
        }]));
    }
    let distinct = rows.clamp(1, MAX_ROW_GROUP_ROWS) as u64;
    for name in ["trace_id", "event_id", "span_id"] {
        if schema.index_of(name).is_ok() {
            let col = ColumnPath::from(name);
            builder = builder
                .set_column_bloom_filter_enabled(col.clone(), true)
                .set_column_bloom_filter_max_ndv(col, distinct);
        }
    }
    builder.build()
}

const DAY_MS: i64 = 24 * HOUR_MS;

/// Writes rows of an item table as Parquet files (durably), one per project and day (UTC, of
/// the `timestamp` column), rows in time order, and describes them for the manifest.
pub async fn write_item_files(
    store: &Store,
    table: &'static ItemTable,
    batches: &[RecordBatch],
    zstd_level: i32,
) -> Result<Vec<DataFile>> {
    let batches = batches.to_vec();
    let schema = table.schema();
    let encoded = tokio::task::spawn_blocking(move || -> Result<Vec<_>> {
        let mut keys: Vec<(i64, i64, i64, usize, usize)> = Vec::new();
        for (b, batch) in batches.iter().enumerate() {
            let projects = batch
                .column_by_name("project_id")
                .and_then(|c| c.as_primitive_opt::<Int64Type>());
            let times = batch
                .column_by_name("timestamp")
                .and_then(|c| c.as_primitive_opt::<TimestampMillisecondType>());
            let (Some(projects), Some(times)) = (projects, times) else {
                return Err(arrow_error(ArrowError::SchemaError(
                    "an item batch without project_id or timestamp".into(),
                )));
            };
            for row in 0..batch.num_rows() {
                let ts = times.value(row);
                keys.push((projects.value(row), ts.div_euclid(DAY_MS), ts, b, row));
            }
        }
        keys.sort_unstable();
        let mut files = Vec::new();
        for group in keys.chunk_by(|a, b| (a.0, a.1) == (b.0, b.1)) {
            let rows: Vec<(usize, usize)> = group.iter().map(|k| (k.3, k.4)).collect();
            let props = item_writer_properties(&schema, zstd_level, rows.len());
            let mut data = Vec::new();
            let mut writer = ArrowWriter::try_new(&mut data, Arc::clone(&schema), Some(props))
                .map_err(|e| Error::Parquet(Box::new(e)))?;
            for chunk in rows.chunks(CHUNK_ROWS) {
                writer
                    .write(&take_rows(&batches, chunk)?)
                    .map_err(|e| Error::Parquet(Box::new(e)))?;
            }
            writer.close().map_err(|e| Error::Parquet(Box::new(e)))?;
            let (first, last) = (group[0], group[group.len() - 1]);
            files.push((first.0, first.1, rows.len(), first.2, last.2, data));
        }
        Ok(files)
    })
    .await
    .expect("parquet encoding does not panic")?;

    let mut described = Vec::with_capacity(encoded.len());
    for (project, day, rows, min, max, data) in encoded {
        let date = DateTime::from_timestamp_millis(day * DAY_MS)
            .unwrap_or_default()
            .format("%Y-%m-%d")
            .to_string();
        let path = super::keys::item_file(table.name, project as u64, &date, ulid::Ulid::new());
        let bytes = data.len() as u64;
        store
            .put_durable(&ObjectPath::from(path.as_str()), Bytes::from(data))
            .await?;
        described.push(DataFile {
            path,
            project_id: project as u64,
            date,
            hour: 0,
            rows: rows as u64,
            bytes,
            min_timestamp_ms: min,
            max_timestamp_ms: max,
        });
    }
    Ok(described)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::{EventBuilder, StoredEvent};
    use datafusion::arrow::array::AsArray;
    use datafusion::arrow::datatypes::{Int64Type, TimestampMillisecondType};
    use datafusion::parquet::file::properties::ReaderProperties;
    use datafusion::parquet::file::reader::FileReader;
    use datafusion::parquet::file::serialized_reader::{ReadOptionsBuilder, SerializedFileReader};

    fn event(project: u64, issue: i64, at: &str) -> StoredEvent {
        StoredEvent::for_test(
            project,
            issue,
            &format!(r#"{{"message":"m","timestamp":"{at}"}}"#),
        )
    }

    fn column(batch: &RecordBatch, name: &str) -> Vec<i64> {
        batch
            .column(column_index(name))
            .as_primitive::<Int64Type>()
            .values()
            .to_vec()
    }

    #[test]
    fn partitions_by_project_and_hour_sorted_by_issue_then_time() {
        let mut a = EventBuilder::new();
        let mut b = EventBuilder::new();
        a.append(&event(2, 9, "2026-11-24T10:30:00Z"));
        a.append(&event(1, 7, "2026-11-24T10:59:00Z"));
        b.append(&event(1, 3, "2026-11-24T10:10:00Z"));
        b.append(&event(1, 7, "2026-11-24T10:05:00Z"));
        b.append(&event(1, 3, "2026-11-24T11:00:00Z"));
        let batches = [a.finish(), b.finish()];
        let parts: Vec<_> = plan_partitions(&batches)
            .into_iter()
            .map(|p| (p.key, take_rows(&batches, &p.rows).unwrap()))
            .collect();
        let hour = |h: i64| {
            (DateTime::parse_from_rfc3339("2026-11-24T00:00:00Z")
                .unwrap()
                .timestamp_millis()
                / HOUR_MS)
                + h
        };
        let keys: Vec<_> = parts.iter().map(|(k, _)| *k).collect();
        assert_eq!(keys, [(1, hour(10)), (1, hour(11)), (2, hour(10))]);
        assert_eq!(column(&parts[0].1, "issue_id"), [3, 7, 7]);
        let ts = parts[0]
            .1
            .column(column_index("timestamp"))
            .as_primitive::<TimestampMillisecondType>();
        assert!(ts.value(1) < ts.value(2), "same issue sorted by time");
        assert_eq!(parts[1].1.num_rows(), 1);
        assert_eq!(column(&parts[2].1, "project_id"), [2]);
    }

    /// `n` events of one issue, each with about 3 KB of JSON (a message that differs per
    /// event, as real events do).
    fn large_events(n: usize) -> RecordBatch {
        let mut builder = EventBuilder::new();
        for i in 0..n {
            let text: String = (0..1000)
                .map(|j| format!("{:x}", (i * 7919 + j) % 4093))
                .collect();
            builder.append(&event_with_message(&text));
        }
        builder.finish()
    }

    fn event_with_message(text: &str) -> StoredEvent {
        StoredEvent::for_test(
            1,
            3,
            &format!(r#"{{"message":"{text}","timestamp":"2026-11-24T10:10:00Z"}}"#),
        )
    }

    /// The rows of `batch` written as one file, read back with its page index and bloom filters.
    fn written(
        batch: &RecordBatch,
        zstd_level: i32,
        event_page_bytes: usize,
    ) -> SerializedFileReader<Bytes> {
        let rows: Vec<_> = (0..batch.num_rows()).map(|r| (0, r)).collect();
        let props = writer_properties(zstd_level, rows.len(), event_page_bytes);
        let data = encode(std::slice::from_ref(batch), &rows, props).unwrap();
        let options = ReadOptionsBuilder::new()
            .with_page_index()
            .with_reader_properties(
                ReaderProperties::builder()
                    .set_read_bloom_filter(true)
                    .build(),
            )
            .build();
        SerializedFileReader::new_with_options(Bytes::from(data), options).unwrap()
    }

    /// Pages of the event column in the first row group of `file`.
    fn event_pages(file: &SerializedFileReader<Bytes>) -> usize {
        // A Parquet leaf index: the tags map has two leaves, so it differs from the Arrow one.
        let leaf = file
            .metadata()
            .file_metadata()
            .schema_descr()
            .columns()
            .iter()
            .position(|c| c.path().string() == "event")
            .expect("an event column");
        let index = file.metadata().offset_index().expect("page index read");
        index[0][leaf].page_locations().len()
    }

    #[test]
    fn flushed_files_use_smaller_event_pages_than_compacted_ones() {
        let batch = large_events(1600);
        let json_bytes: usize = batch
            .column(column_index("event"))
            .as_string::<i32>()
            .iter()
            .map(|v| v.unwrap().len())
            .sum();
        assert!(json_bytes > 4 * 1024 * 1024, "{json_bytes} bytes of JSON");
        let flushed = written(&batch, 1, FLUSH_EVENT_PAGE_BYTES);
        let compacted = written(&batch, 6, COMPACTED_EVENT_PAGE_BYTES);
        // A page closes at the first mini-batch that takes it past its limit: between one and
        // two limits of JSON per page.
        for (file, limit) in [
            (&flushed, FLUSH_EVENT_PAGE_BYTES),
            (&compacted, COMPACTED_EVENT_PAGE_BYTES),
        ] {
            let pages = event_pages(file);
            assert!(
                (json_bytes / (2 * limit)..=json_bytes.div_ceil(limit)).contains(&pages),
                "{pages} pages of at most {limit} bytes for {json_bytes} bytes of JSON"
            );
        }
        for file in [&flushed, &compacted] {
            assert_eq!(file.metadata().file_metadata().num_rows(), 1600);
        }
    }

    #[test]
    fn bloom_filters_are_sized_for_the_rows_of_the_file_and_find_their_ids() {
        let batch = large_events(50);
        let file = written(&batch, 1, FLUSH_EVENT_PAGE_BYTES);
        let id_column = column_index("event_id");
        let length = file
            .metadata()
            .row_group(0)
            .column(id_column)
            .bloom_filter_length()
            .expect("event_id has a bloom filter");
        // The parquet-rs default (a million distinct values) writes about 1 MiB per column
        // before folding; 50 ids need a few hundred bytes.
        assert!(length <= 4096, "bloom filter of {length} bytes for 50 ids");
        let group = file.get_row_group(0).unwrap();
        let filter = group.get_column_bloom_filter(id_column).unwrap();
        let ids = batch.column(id_column).as_string::<i32>();
        for id in ids.iter().flatten() {
            assert!(filter.check(&id), "{id} is in the file");
        }
    }

    #[test]
    fn encoded_file_is_zstd_with_sorting_metadata() {
        let mut a = EventBuilder::new();
        a.append(&event(1, 3, "2026-11-24T10:10:00Z"));
        let batches = [a.finish()];
        let data = encode(
            &batches,
            &[(0, 0)],
            writer_properties(3, 1, FLUSH_EVENT_PAGE_BYTES),
        )
        .unwrap();
        let reader = SerializedFileReader::new(Bytes::from(data)).unwrap();
        let meta = reader.metadata().row_group(0);
        assert_eq!(meta.num_rows(), 1);
        let event_col = meta.column(column_index("event"));
        assert!(matches!(event_col.compression(), Compression::ZSTD(_)));
        assert_eq!(meta.sorting_columns().unwrap().len(), 3);
    }
}
