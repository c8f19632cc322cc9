//! Issue tag rollups: the tag counts of the hourly rollups turned inside out, one row per
//! (project, tag, value, hour, issue), sorted by tag and value.
//!
//! The rollup files are sorted by issue, which serves "the tags of this issue" but not "the
//! issues with this tag value": that question would decode the tag counts of every issue of the
//! period. These files answer it from a few row groups: sorted by (tag, value, issue, hour) in
//! small row groups, the Parquet statistics of `key` and `value` skip everything else. They are
//! written with the rollups at flush time, one file per (project, day) under `issue-tags/`, in
//! the manifest's `tag_rollups`, and read as the `issue_tags` table.
//!
//! Each row carries exactly what the rollup's tag count says, including the null value that
//! stands for the values beyond [`rollup::TAG_VALUES`] in that hour: a search that meets one
//! knows the issue may hold the value and has to ask the events.

use std::sync::{Arc, LazyLock};

use datafusion::arrow::array::{
    Array, AsArray, Int64Builder, RecordBatch, StringBuilder, TimestampMillisecondBuilder,
};
use datafusion::arrow::datatypes::{
    DataType, Field, Int64Type, Schema, SchemaRef, TimeUnit, TimestampMillisecondType,
};

use super::rollup;
use super::{Error, Result};
use crate::store::manifest::DataFile;
use crate::store::{Store, keys};

/// Rows per row group: a common value of one day spans a few of them, a rare one sits in one.
pub(crate) const ROW_GROUP_ROWS: usize = 2048;

/// The columns of a tag rollup file, in order. `hour` is the fourth column as in the rollups,
/// so both are partitioned by the same code.
pub fn schema() -> SchemaRef {
    static SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
        Arc::new(Schema::new(vec![
            Field::new("project_id", DataType::Int64, false),
            Field::new("key", DataType::Utf8, false),
            Field::new("value", DataType::Utf8, true),
            Field::new(
                "hour",
                DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
                false,
            ),
            Field::new("issue_id", DataType::Int64, false),
            Field::new("events", DataType::Int64, false),
        ]))
    });
    Arc::clone(&SCHEMA)
}

/// One tag count of a rollup row, borrowed from the rollup batch.
struct Row<'a> {
    project: i64,
    key: &'a str,
    value: Option<&'a str>,
    hour: i64,
    issue: i64,
    events: i64,
}

/// The tag rows of rollup batches (as [`rollup::compute`] makes them), sorted by project, tag,
/// value (the null value last), issue and hour.
pub fn compute(rollups: &[RecordBatch]) -> Result<Vec<RecordBatch>> {
    let mut rows: Vec<Row<'_>> = Vec::new();
    for batch in rollups {
        let column = |name: &str| {
            batch
                .column_by_name(name)
                .ok_or_else(|| Error::BadRollup(format!("no column {name}")))
        };
        let projects = column("project_id")?.as_primitive::<Int64Type>();
        let issues = column("issue_id")?.as_primitive::<Int64Type>();
        let hours = column("hour")?.as_primitive::<TimestampMillisecondType>();
        let tags = column("tags")?.as_list::<i32>();
        let entries = tags.values().as_struct();
        let (keys, values, events) = (
            entries.column(0).as_string::<i32>(),
            entries.column(1).as_string::<i32>(),
            entries.column(2).as_primitive::<Int64Type>(),
        );
        let offsets = tags.value_offsets();
        for row in 0..batch.num_rows() {
            if tags.is_null(row) {
                continue;
            }
            for entry in offsets[row] as usize..offsets[row + 1] as usize {
                rows.push(Row {
                    project: projects.value(row),
                    key: keys.value(entry),
                    value: (!values.is_null(entry)).then(|| values.value(entry)),
                    hour: hours.value(row),
                    issue: issues.value(row),
                    events: events.value(entry),
                });
            }
        }
    }
    if rows.is_empty() {
        return Ok(Vec::new());
    }
    rows.sort_unstable_by(|a, b| {
        (
            a.project,
            a.key,
            a.value.is_none(),
            a.value,
            a.issue,
            a.hour,
        )
            .cmp(&(
                b.project,
                b.key,
                b.value.is_none(),
                b.value,
                b.issue,
                b.hour,
            ))
    });
    let n = rows.len();
    let (mut project, mut key, mut value) = (
        Int64Builder::with_capacity(n),
        StringBuilder::with_capacity(n, n * 8),
        StringBuilder::with_capacity(n, n * 8),
    );
    let mut hour = TimestampMillisecondBuilder::with_capacity(n).with_timezone("UTC");
    let (mut issue, mut events) = (
        Int64Builder::with_capacity(n),
        Int64Builder::with_capacity(n),
    );
    for row in &rows {
        project.append_value(row.project);
        key.append_value(row.key);
        value.append_option(row.value);
        hour.append_value(row.hour);
        issue.append_value(row.issue);
        events.append_value(row.events);
    }
    let batch = RecordBatch::try_new(
        schema(),
        vec![
            Arc::new(project.finish()),
            Arc::new(key.finish()),
            Arc::new(value.finish()),
            Arc::new(hour.finish()),
            Arc::new(issue.finish()),
            Arc::new(events.finish()),
        ],
    )
    .map_err(|e| Error::Rollup(Box::new(e.into())))?;
    Ok(vec![batch])
}

/// Writes tag rows as one Parquet file per (project, day), durably, and describes them. The
/// file of a (project, day) that one of `rollups` covers takes that rollup file's name (see
/// [`keys::tag_rollup_of`]), which is how one knows later which rollup files have theirs.
pub async fn write(
    store: &Store,
    batches: &[RecordBatch],
    zstd_level: i32,
    rollups: &[DataFile],
) -> Result<Vec<DataFile>> {
    let name = |project: u64, date: &str| {
        rollups
            .iter()
            .find(|f| f.project_id == project && f.date == date)
            .and_then(|f| keys::tag_rollup_of(&f.path))
            .unwrap_or_else(|| keys::tag_rollup_file(project, date, ulid::Ulid::new()))
    };
    rollup::write_files(
        store,
        batches,
        zstd_level,
        ROW_GROUP_ROWS,
        &["key", "value", "issue_id", "hour"],
        &name,
    )
    .await
}

/// The tag rollups of one rollup file (its Parquet bytes), for files written before tag
/// rollups existed.
pub fn of_rollup_file(data: bytes::Bytes) -> Result<Vec<RecordBatch>> {
    use datafusion::parquet::arrow::ProjectionMask;
    use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    let builder =
        ParquetRecordBatchReaderBuilder::try_new(data).map_err(|e| Error::Parquet(Box::new(e)))?;
    let wanted: Vec<usize> = (0..builder.schema().fields().len())
        .filter(|&i| {
            ["project_id", "issue_id", "hour", "tags"]
                .contains(&builder.schema().field(i).name().as_str())
        })
        .collect();
    let mask = ProjectionMask::roots(builder.parquet_schema(), wanted);
    let reader = builder
        .with_projection(mask)
        .build()
        .map_err(|e| Error::Parquet(Box::new(e)))?;
    let batches = reader
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| Error::Rollup(Box::new(e.into())))?;
    compute(&batches)
}

#[cfg(test)]
mod tests {
    use object_store::ObjectStoreExt as _;

    use super::*;
    use crate::events::{EventBuilder, StoredEvent};

    fn event(issue: i64, at: &str, browser: &str) -> StoredEvent {
        StoredEvent::for_test(
            1,
            issue,
            &format!(
                r#"{{"message":"m","timestamp":"{at}","environment":"prod","tags":{{"browser":"{browser}"}}}}"#
            ),
        )
    }

    fn lines(batches: &[RecordBatch]) -> Vec<String> {
        let text = datafusion::arrow::util::pretty::pretty_format_batches(batches)
            .unwrap()
            .to_string();
        text.lines()
            .filter(|l| l.starts_with("| "))
            .skip(1)
            .map(|l| {
                l.split('|')
                    .map(str::trim)
                    .filter(|c| !c.is_empty())
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .collect()
    }

    #[test]
    fn tag_counts_turn_into_rows_sorted_by_tag_value_issue_and_hour() {
        let mut b = EventBuilder::new();
        b.append(&event(9, "2026-11-24T11:05:00Z", "Firefox"));
        b.append(&event(7, "2026-11-24T10:05:00Z", "Firefox"));
        b.append(&event(7, "2026-11-24T10:06:00Z", "Firefox"));
        b.append(&event(7, "2026-11-24T10:07:00Z", "Chrome"));
        let rollups = rollup::compute(&[b.finish()]).unwrap();
        let tags = compute(&rollups).unwrap();
        assert_eq!(
            lines(&tags),
            [
                "1 browser Chrome 2026-11-24T10:00:00Z 7 1",
                "1 browser Firefox 2026-11-24T10:00:00Z 7 2",
                "1 browser Firefox 2026-11-24T11:00:00Z 9 1",
                "1 environment prod 2026-11-24T10:00:00Z 7 3",
                "1 environment prod 2026-11-24T11:00:00Z 9 1",
            ]
        );
    }

    #[test]
    fn values_beyond_the_kept_ones_stay_a_null_row_after_the_others() {
        let mut b = EventBuilder::new();
        for i in 0..rollup::TAG_VALUES + 1 {
            b.append(&event(7, "2026-11-24T10:05:00Z", &format!("b{i:03}")));
        }
        let rollups = rollup::compute(&[b.finish()]).unwrap();
        let tags = compute(&rollups).unwrap();
        let rows = lines(&tags);
        let browser: Vec<_> = rows.iter().filter(|r| r.contains(" browser ")).collect();
        assert_eq!(browser.len(), rollup::TAG_VALUES + 1);
        // The last browser row has no value (printed as nothing between the key and the hour).
        assert_eq!(
            browser[rollup::TAG_VALUES],
            "1 browser 2026-11-24T10:00:00Z 7 1"
        );
        let values = tags[0].column(2);
        assert_eq!(values.null_count(), 1);
        assert!(values.is_null(rollup::TAG_VALUES));
    }

    #[tokio::test]
    async fn files_are_per_project_and_day_in_small_row_groups() {
        let mut b = EventBuilder::new();
        for i in 0..3000 {
            b.append(&StoredEvent::for_test(
                1,
                i,
                &format!(
                    r#"{{"message":"m","timestamp":"2026-11-24T10:05:00Z","tags":{{"t":"v{}"}}}}"#,
                    i % 3
                ),
            ));
        }
        let rollups = rollup::compute(&[b.finish()]).unwrap();
        let store = Store::memory();
        let rollup_files = rollup::write(&store, &rollups, 1).await.unwrap();
        let files = write(&store, &compute(&rollups).unwrap(), 1, &rollup_files)
            .await
            .unwrap();
        assert_eq!(files.len(), 1);
        assert!(
            files[0]
                .path
                .starts_with("issue-tags/proj=1/date=2026-11-24/"),
            "{}",
            files[0].path
        );
        assert_eq!(files[0].rows, 3000);
        // Named after the rollup file of the same day.
        assert_eq!(
            files[0].path.rsplit('/').next(),
            rollup_files[0].path.rsplit('/').next()
        );
        let data = store
            .objects
            .get(&object_store::path::Path::from(files[0].path.as_str()))
            .await
            .unwrap()
            .bytes()
            .await
            .unwrap();
        let reader =
            datafusion::parquet::file::serialized_reader::SerializedFileReader::new(data).unwrap();
        use datafusion::parquet::file::reader::FileReader;
        let meta = reader.metadata();
        assert_eq!(
            meta.num_row_groups(),
            2,
            "3000 rows in groups of {ROW_GROUP_ROWS}"
        );
        // Sorted by value: the second group holds only v2, so a search for v0 or v1 skips it.
        let stats = meta.row_group(1).column(2).statistics().unwrap();
        assert_eq!(stats.min_bytes_opt(), Some(&b"v2"[..]));
        assert_eq!(stats.max_bytes_opt(), Some(&b"v2"[..]));
    }
}
