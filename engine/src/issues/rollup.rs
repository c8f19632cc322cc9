//! Hourly issue rollups: one row per (project, issue, hour) with the count, first and last seen,
//! the latest title, culprit and level, the distinct users, the first and last release, and how
//! many events carried each tag value (environment and release count as tags).
//!
//! Tag counts keep at most [`TAG_VALUES`] values per tag and hour (the most frequent); the
//! events of the others are counted under a null value, so every tag's total stays exact.
//!
//! The flusher writes them next to the event files they summarize, one Parquet file per
//! (project, day): `rollups/project=<id>/date=<YYYY-MM-DD>/<ulid>.parquet`, in the manifest's
//! `rollups`. Partitioned like the events, retention drops a day of both together. The same
//! code summarizes the rows still in memory when a query runs, so `issues` never scans event
//! files. It is plain Rust over the Arrow arrays, not a SQL query: it runs with every flush.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::{Arc, LazyLock};

use bytes::Bytes;
use chrono::DateTime;
use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, BooleanArray, Int64Builder, ListBuilder, RecordBatch, StringArray,
    StringBuilder, StructBuilder, TimestampMillisecondBuilder,
};
use datafusion::arrow::compute::{
    SortColumn, SortOptions, concat_batches, filter_record_batch, lexsort_to_indices,
    take_record_batch,
};
use datafusion::arrow::datatypes::{
    DataType, Field, Fields, Int64Type, Schema, SchemaRef, TimeUnit, TimestampMillisecondType,
};
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::parquet::basic::{Compression, ZstdLevel};
use datafusion::parquet::file::metadata::SortingColumn;
use datafusion::parquet::file::properties::WriterProperties;
use object_store::path::Path as ObjectPath;

use super::{Error, Result};
use crate::events::{column_index, int64_column, time_column};
use crate::store::Store;
use crate::store::manifest::DataFile;

pub(crate) const HOUR_MS: i64 = 3_600_000;

/// Values of one tag kept per (issue, hour); the rest are counted under a null value.
pub const TAG_VALUES: usize = 100;

/// The fields of one tag count: the tag, its value (null: the values beyond [`TAG_VALUES`]),
/// and the events that carried it.
fn tag_fields() -> Fields {
    vec![
        Field::new("key", DataType::Utf8, false),
        Field::new("value", DataType::Utf8, true),
        Field::new("events", DataType::Int64, false),
    ]
    .into()
}

/// The columns of a rollup file, in order.
pub fn schema() -> SchemaRef {
    static SCHEMA: LazyLock<SchemaRef> = LazyLock::new(|| {
        let ts = || DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into()));
        let text = |name: &str| Field::new(name, DataType::Utf8, true);
        Arc::new(Schema::new(vec![
            Field::new("project_id", DataType::Int64, false),
            Field::new("project", DataType::Utf8, false),
            Field::new("issue_id", DataType::Int64, false),
            Field::new("hour", ts(), false),
            Field::new("events", DataType::Int64, false),
            Field::new("first_seen", ts(), false),
            Field::new("last_seen", ts(), false),
            Field::new("last_received", ts(), false),
            text("title"),
            text("culprit"),
            text("level"),
            Field::new(
                "users",
                DataType::List(Arc::new(Field::new("item", DataType::Utf8, true))),
                true,
            ),
            text("first_release"),
            text("last_release"),
            Field::new(
                "tags",
                DataType::List(Arc::new(Field::new(
                    "item",
                    DataType::Struct(tag_fields()),
                    true,
                ))),
                true,
            ),
        ]))
    });
    Arc::clone(&SCHEMA)
}

/// `batch` sorted by the columns `sorting` names (ascending, nulls last).
fn sort_batch(
    batch: &RecordBatch,
    sorting: &[SortingColumn],
) -> std::result::Result<RecordBatch, datafusion::arrow::error::ArrowError> {
    let columns: Vec<SortColumn> = sorting
        .iter()
        .map(|s| SortColumn {
            values: Arc::clone(batch.column(s.column_idx as usize)),
            options: Some(SortOptions {
                descending: false,
                nulls_first: false,
            }),
        })
        .collect();
    if columns.is_empty() {
        return Ok(batch.clone());
    }
    let indices = lexsort_to_indices(&columns, None)?;
    take_record_batch(batch, &indices)
}

/// One (project, issue, hour) while it is being summed up. Text borrows from the event batches.
struct Hour<'a> {
    project: &'a str,
    events: i64,
    first_seen: i64,
    last_seen: i64,
    last_received: i64,
    /// Title, culprit and level of the newest event.
    title: Option<&'a str>,
    culprit: Option<&'a str>,
    level: Option<&'a str>,
    /// The user behind each event, by the first identifying field it has.
    users: BTreeSet<&'a str>,
    /// (timestamp, release) of the oldest and the newest event that names a release.
    first_release: Option<(i64, &'a str)>,
    last_release: Option<(i64, &'a str)>,
    /// Events per (tag, value).
    tags: HashMap<(&'a str, &'a str), i64>,
}

fn text<'a>(batch: &'a RecordBatch, name: &str) -> &'a StringArray {
    batch.column(column_index(name)).as_string::<i32>()
}

fn value(array: &StringArray, row: usize) -> Option<&str> {
    array.is_valid(row).then(|| array.value(row))
}

/// Summarizes event batches (what one flush writes, or the rows still in memory) into rollup
/// rows of [`schema`]: one per (project, issue, hour of the event's timestamp), in that order.
pub fn compute(batches: &[RecordBatch]) -> Result<Vec<RecordBatch>> {
    let mut hours: HashMap<(i64, i64, i64), Hour<'_>> = HashMap::new();
    for batch in batches {
        let projects = int64_column(batch, "project_id");
        let issues = int64_column(batch, "issue_id");
        let times = time_column(batch, "timestamp");
        let received = time_column(batch, "received");
        let project_names = text(batch, "project");
        let (titles, culprits, levels) = (
            text(batch, "title"),
            text(batch, "culprit"),
            text(batch, "level"),
        );
        let releases = text(batch, "release");
        let environments = text(batch, "environment");
        let tags = batch.column(column_index("tags")).as_map();
        let (tag_keys, tag_values) = (
            tags.keys().as_string::<i32>(),
            tags.values().as_string::<i32>(),
        );
        let tag_offsets = tags.value_offsets();
        let user_columns =
            ["user_id", "user_email", "user_username", "user_ip"].map(|c| text(batch, c));
        for row in 0..batch.num_rows() {
            let at = times.value(row);
            let key = (
                projects.value(row),
                issues.value(row),
                at.div_euclid(HOUR_MS) * HOUR_MS,
            );
            let hour = hours.entry(key).or_insert_with(|| Hour {
                project: project_names.value(row),
                events: 0,
                first_seen: at,
                last_seen: at,
                last_received: received.value(row),
                title: None,
                culprit: None,
                level: None,
                users: BTreeSet::new(),
                first_release: None,
                last_release: None,
                tags: HashMap::new(),
            });
            hour.events += 1;
            hour.first_seen = hour.first_seen.min(at);
            hour.last_received = hour.last_received.max(received.value(row));
            if at >= hour.last_seen || hour.title.is_none() {
                hour.last_seen = hour.last_seen.max(at);
                hour.title = value(titles, row);
                hour.culprit = value(culprits, row);
                hour.level = value(levels, row);
            }
            if let Some(user) = user_columns.iter().find_map(|c| value(c, row)) {
                hour.users.insert(user);
            }
            if let Some(environment) = value(environments, row) {
                *hour.tags.entry(("environment", environment)).or_default() += 1;
            }
            let entries = tag_offsets[row] as usize..tag_offsets[row + 1] as usize;
            for entry in entries {
                if let Some(v) = value(tag_values, entry) {
                    *hour.tags.entry((tag_keys.value(entry), v)).or_default() += 1;
                }
            }
            if let Some(release) = value(releases, row) {
                *hour.tags.entry(("release", release)).or_default() += 1;
                if hour.first_release.is_none_or(|(t, _)| at < t) {
                    hour.first_release = Some((at, release));
                }
                if hour.last_release.is_none_or(|(t, _)| at >= t) {
                    hour.last_release = Some((at, release));
                }
            }
        }
    }
    let mut keys: Vec<_> = hours.keys().copied().collect();
    keys.sort_unstable();
    let n = keys.len();
    let ts = || TimestampMillisecondBuilder::with_capacity(n).with_timezone("UTC");
    let (mut project_id, mut issue_id, mut events) = (
        Int64Builder::with_capacity(n),
        Int64Builder::with_capacity(n),
        Int64Builder::with_capacity(n),
    );
    let (mut hour_col, mut first_seen, mut last_seen, mut last_received) = (ts(), ts(), ts(), ts());
    let mut strings: [StringBuilder; 6] = std::array::from_fn(|_| StringBuilder::new());
    let mut users = ListBuilder::new(StringBuilder::new()).with_field(Arc::new(Field::new(
        "item",
        DataType::Utf8,
        true,
    )));
    let mut tags = ListBuilder::new(StructBuilder::from_fields(tag_fields(), 0)).with_field(
        Arc::new(Field::new("item", DataType::Struct(tag_fields()), true)),
    );
    for key in keys {
        let h = &hours[&key];
        project_id.append_value(key.0);
        issue_id.append_value(key.1);
        hour_col.append_value(key.2);
        events.append_value(h.events);
        first_seen.append_value(h.first_seen);
        last_seen.append_value(h.last_seen);
        last_received.append_value(h.last_received);
        let texts = [
            Some(h.project),
            h.title,
            h.culprit,
            h.level,
            h.first_release.map(|(_, r)| r),
            h.last_release.map(|(_, r)| r),
        ];
        for (builder, text) in strings.iter_mut().zip(texts) {
            builder.append_option(text);
        }
        if h.users.is_empty() {
            users.append_null();
        } else {
            users.values().extend(h.users.iter().map(|u| Some(*u)));
            users.append(true);
        }
        append_tags(&mut tags, &h.tags);
    }
    let [
        mut project,
        mut title,
        mut culprit,
        mut level,
        mut first_release,
        mut last_release,
    ] = strings;
    let batch = RecordBatch::try_new(
        schema(),
        vec![
            Arc::new(project_id.finish()),
            Arc::new(project.finish()),
            Arc::new(issue_id.finish()),
            Arc::new(hour_col.finish()),
            Arc::new(events.finish()),
            Arc::new(first_seen.finish()),
            Arc::new(last_seen.finish()),
            Arc::new(last_received.finish()),
            Arc::new(title.finish()),
            Arc::new(culprit.finish()),
            Arc::new(level.finish()),
            Arc::new(users.finish()),
            Arc::new(first_release.finish()),
            Arc::new(last_release.finish()),
            Arc::new(tags.finish()) as ArrayRef,
        ],
    )
    .map_err(|e| Error::Rollup(Box::new(e.into())))?;
    Ok(if n == 0 { Vec::new() } else { vec![batch] })
}

/// Appends one hour's tag counts, sorted by tag and then by count (most first), with at most
/// [`TAG_VALUES`] values per tag and the rest under a null value.
fn append_tags(builder: &mut ListBuilder<StructBuilder>, counts: &HashMap<(&str, &str), i64>) {
    if counts.is_empty() {
        builder.append_null();
        return;
    }
    let mut sorted: Vec<(&str, &str, i64)> = counts.iter().map(|(&(k, v), &n)| (k, v, n)).collect();
    sorted.sort_unstable_by(|a, b| a.0.cmp(b.0).then(b.2.cmp(&a.2)).then(a.1.cmp(b.1)));
    let entries = builder.values();
    let mut push = |key: &str, value: Option<&str>, events: i64| {
        entries
            .field_builder::<StringBuilder>(0)
            .expect("key field")
            .append_value(key);
        entries
            .field_builder::<StringBuilder>(1)
            .expect("value field")
            .append_option(value);
        entries
            .field_builder::<Int64Builder>(2)
            .expect("events field")
            .append_value(events);
        entries.append(true);
    };
    for group in sorted.chunk_by(|a, b| a.0 == b.0) {
        for &(key, value, events) in group.iter().take(TAG_VALUES) {
            push(key, Some(value), events);
        }
        let rest: i64 = group.iter().skip(TAG_VALUES).map(|(_, _, n)| n).sum();
        if rest > 0 {
            push(group[0].0, None, rest);
        }
    }
    builder.append(true);
}

/// Rows per row group of a rollup file. Rows are sorted by issue, so the statistics of
/// `issue_id` let a read of one issue skip all other groups (a day of a busy project holds
/// thousands of rows, one group would make every issue page decode all of them).
pub(crate) const ROW_GROUP_ROWS: usize = 512;

/// Writes rollup rows as one Parquet file per (project, day), durably, and describes them.
pub async fn write(
    store: &Store,
    batches: &[RecordBatch],
    zstd_level: i32,
) -> Result<Vec<DataFile>> {
    write_files(
        store,
        batches,
        zstd_level,
        ROW_GROUP_ROWS,
        &["issue_id", "hour"],
        &|project, date| crate::store::keys::rollup_file(project, date, ulid::Ulid::new()),
    )
    .await
}

/// Writes `batches` (project id in the first column, the hour in the fourth) as one Parquet
/// file per (project, day) at the key `path` gives it, in row groups of `group_rows` rows,
/// marked as sorted by project and then by `sorted_by`.
pub(crate) async fn write_files(
    store: &Store,
    batches: &[RecordBatch],
    zstd_level: i32,
    group_rows: usize,
    sorted_by: &[&str],
    path: &(dyn Fn(u64, &str) -> String + Send + Sync),
) -> Result<Vec<DataFile>> {
    let Some(first) = batches.first() else {
        return Ok(Vec::new());
    };
    // (project, day) -> per batch, which rows belong to it.
    let mut parts: BTreeMap<(i64, i64), Vec<Vec<bool>>> = BTreeMap::new();
    for (b, batch) in batches.iter().enumerate() {
        let projects = batch.column(0).as_primitive::<Int64Type>();
        let hours = batch.column(3).as_primitive::<TimestampMillisecondType>();
        for row in 0..batch.num_rows() {
            let day = hours.value(row).div_euclid(24 * HOUR_MS);
            let masks = parts
                .entry((projects.value(row), day))
                .or_insert_with(|| batches.iter().map(|b| vec![false; b.num_rows()]).collect());
            masks[b][row] = true;
        }
    }
    let schema = first.schema();
    let sorting: Vec<SortingColumn> = std::iter::once("project_id")
        .chain(sorted_by.iter().copied())
        .filter_map(|name| schema.index_of(name).ok())
        .map(|i| SortingColumn {
            column_idx: i as i32,
            descending: false,
            nulls_first: false,
        })
        .collect();
    let props = WriterProperties::builder()
        .set_compression(Compression::ZSTD(
            ZstdLevel::try_new(zstd_level).unwrap_or_default(),
        ))
        .set_max_row_group_row_count(Some(group_rows))
        .set_statistics_truncate_length(Some(64))
        .set_sorting_columns(Some(sorting.clone()))
        .build();
    let mut files = Vec::with_capacity(parts.len());
    for ((project, day), masks) in parts {
        let mut data = Vec::new();
        let mut rows = 0u64;
        let (mut min, mut max) = (i64::MAX, i64::MIN);
        {
            let mut parts = Vec::new();
            for (batch, mask) in batches.iter().zip(masks) {
                let part = filter_record_batch(batch, &BooleanArray::from(mask))
                    .map_err(|e| Error::Rollup(Box::new(e.into())))?;
                if part.num_rows() > 0 {
                    parts.push(part);
                }
            }
            // Several batches (e.g. of different hours) hold sorted runs each: the file is
            // sorted as a whole, so the statistics of each row group cover a narrow range.
            let part = concat_batches(&schema, &parts)
                .and_then(|all| sort_batch(&all, &sorting))
                .map_err(|e| Error::Rollup(Box::new(e.into())))?;
            let hours = part.column(3).as_primitive::<TimestampMillisecondType>();
            for h in hours.iter().flatten() {
                min = min.min(h);
                max = max.max(h + HOUR_MS - 1);
            }
            rows += part.num_rows() as u64;
            let mut writer =
                ArrowWriter::try_new(&mut data, Arc::clone(&schema), Some(props.clone()))
                    .map_err(|e| Error::Parquet(Box::new(e)))?;
            writer
                .write(&part)
                .map_err(|e| Error::Parquet(Box::new(e)))?;
            writer.close().map_err(|e| Error::Parquet(Box::new(e)))?;
        }
        let date = DateTime::from_timestamp_millis(day * 24 * HOUR_MS)
            .unwrap_or_default()
            .format("%Y-%m-%d")
            .to_string();
        let path = path(project as u64, &date);
        let bytes = data.len() as u64;
        store
            .put_durable(&ObjectPath::from(path.as_str()), Bytes::from(data))
            .await?;
        files.push(DataFile {
            path,
            project_id: project as u64,
            date,
            hour: 0,
            rows,
            bytes,
            min_timestamp_ms: min,
            max_timestamp_ms: max,
        });
    }
    Ok(files)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::events::{EventBuilder, StoredEvent};

    fn event(project: u64, issue: i64, at: &str, user: &str, release: &str) -> StoredEvent {
        StoredEvent::for_test(
            project,
            issue,
            &format!(
                r#"{{"message":"m {issue}","timestamp":"{at}","user":{{"id":"{user}"}},"release":"{release}"}}"#
            ),
        )
    }

    /// The tag counts of the single rollup row `compute` makes of `events`, as
    /// `key=value:events` (a null value as `key=*`).
    fn tag_counts(events: &[StoredEvent]) -> Vec<String> {
        let mut b = EventBuilder::new();
        for e in events {
            b.append(e);
        }
        let rollups = compute(&[b.finish()]).unwrap();
        assert_eq!(rollups[0].num_rows(), 1);
        let list = rollups[0].column_by_name("tags").unwrap().as_list::<i32>();
        let entries = list.value(0);
        let entries = entries.as_struct();
        let (keys, values, counts) = (
            entries.column(0).as_string::<i32>(),
            entries.column(1).as_string::<i32>(),
            entries.column(2).as_primitive::<Int64Type>(),
        );
        (0..entries.len())
            .map(|i| {
                let value = if values.is_null(i) {
                    "*"
                } else {
                    values.value(i)
                };
                format!("{}={value}:{}", keys.value(i), counts.value(i))
            })
            .collect()
    }

    #[test]
    fn tags_environment_and_release_are_counted_per_hour() {
        let event = |browser: &str, env: &str| {
            StoredEvent::for_test(
                1,
                7,
                &format!(
                    r#"{{"message":"m","timestamp":"2026-11-24T10:05:00Z","release":"1.0","environment":"{env}","tags":{{"browser":"{browser}"}}}}"#
                ),
            )
        };
        assert_eq!(
            tag_counts(&[
                event("Firefox", "prod"),
                event("Chrome", "prod"),
                event("Firefox", "staging")
            ]),
            [
                "browser=Firefox:2",
                "browser=Chrome:1",
                "environment=prod:2",
                "environment=staging:1",
                "release=1.0:3",
            ]
        );
    }

    #[test]
    fn values_beyond_the_kept_ones_count_under_a_null_value() {
        // TAG_VALUES + 2 distinct values, the first of them twice.
        let mut events: Vec<StoredEvent> = (0..TAG_VALUES + 2)
            .map(|i| {
                StoredEvent::for_test(
                    1,
                    7,
                    &format!(
                        r#"{{"message":"m","timestamp":"2026-11-24T10:05:00Z","tags":{{"url":"/p/{i:03}"}}}}"#
                    ),
                )
            })
            .collect();
        events.push(events[0].clone());
        let counts = tag_counts(&events);
        assert_eq!(counts.len(), TAG_VALUES + 1, "{counts:?}");
        assert_eq!(counts[0], "url=/p/000:2");
        // Ties sort by value: the last two values are the ones beyond the cap.
        assert_eq!(counts[TAG_VALUES], "url=*:2");
        let total: i64 = counts
            .iter()
            .map(|c| c.rsplit(':').next().unwrap().parse::<i64>().unwrap())
            .sum();
        assert_eq!(total, TAG_VALUES as i64 + 3, "every event is counted");
    }

    /// Rollups of separate hours computed one by one (as the query benchmark's generator does)
    /// still make a file sorted by issue, so row group statistics prune by issue.
    #[tokio::test]
    async fn a_file_of_several_batches_is_sorted_by_issue_then_hour() {
        let hour = |at: &str, issues: &[i64]| {
            let mut b = EventBuilder::new();
            for issue in issues {
                b.append(&event(1, *issue, at, "ann", "1.0"));
            }
            compute(&[b.finish()]).unwrap().remove(0)
        };
        let batches = [
            hour("2026-11-24T11:05:00Z", &[9, 7]),
            hour("2026-11-24T10:05:00Z", &[8, 7]),
        ];
        let store = Store::memory();
        let files = write(&store, &batches, 1).await.unwrap();
        assert_eq!(files.len(), 1);
        let data = store
            .get(&ObjectPath::from(files[0].path.as_str()))
            .await
            .unwrap();
        let reader =
            datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(
                data,
            )
            .unwrap()
            .build()
            .unwrap();
        let mut rows = Vec::new();
        for batch in reader {
            let batch = batch.unwrap();
            let issues = batch.column(2).as_primitive::<Int64Type>();
            let hours = batch.column(3).as_primitive::<TimestampMillisecondType>();
            for r in 0..batch.num_rows() {
                rows.push((issues.value(r), hours.value(r) % (24 * HOUR_MS) / HOUR_MS));
            }
        }
        assert_eq!(rows, [(7, 10), (7, 11), (8, 10), (9, 11)]);
    }

    #[tokio::test]
    async fn rollups_count_per_hour_and_land_in_project_day_files() {
        let mut b = EventBuilder::new();
        b.append(&event(1, 7, "2026-11-23T23:10:00Z", "ann", "1.0"));
        b.append(&event(1, 7, "2026-11-24T10:05:00Z", "bob", "1.1"));
        b.append(&event(1, 7, "2026-11-24T10:50:00Z", "bob", "1.2"));
        b.append(&event(2, 9, "2026-11-24T10:30:00Z", "cid", "2.0"));
        let rollups = compute(&[b.finish()]).unwrap();
        let text = datafusion::arrow::util::pretty::pretty_format_batches(&rollups)
            .unwrap()
            .to_string();
        let mut lines: Vec<_> = text
            .lines()
            .filter(|l| l.starts_with("| "))
            .skip(1)
            .map(|l| {
                let cells: Vec<_> = l.split('|').map(str::trim).collect();
                // project_id, issue_id, hour, events, users, first_release, last_release
                format!(
                    "{} {} {} {} {} {} {}",
                    cells[1], cells[3], cells[4], cells[5], cells[12], cells[13], cells[14]
                )
            })
            .collect();
        lines.sort();
        assert_eq!(
            lines,
            [
                "1 7 2026-11-23T23:00:00Z 1 [ann] 1.0 1.0",
                "1 7 2026-11-24T10:00:00Z 2 [bob] 1.1 1.2",
                "2 9 2026-11-24T10:00:00Z 1 [cid] 2.0 2.0",
            ]
        );
        let store = Store::memory();
        let files = write(&store, &rollups, 1).await.unwrap();
        let mut paths: Vec<_> = files
            .iter()
            .map(|f| (f.path.rsplit_once('/').unwrap().0.to_owned(), f.rows))
            .collect();
        paths.sort();
        assert_eq!(
            paths,
            [
                ("rollups/proj=1/date=2026-11-23".to_owned(), 1),
                ("rollups/proj=1/date=2026-11-24".to_owned(), 1),
                ("rollups/proj=2/date=2026-11-24".to_owned(), 1),
            ]
        );
    }
}
