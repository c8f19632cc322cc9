//! Hourly issue rollups: one row per (project, issue, hour) with the count, first and last seen,
//! the latest title, culprit and level, the distinct users and the first and last release.
//!
//! The flusher writes them next to the event files they summarize, one Parquet file per
//! (project, day): `rollups/project=<id>/date=<YYYY-MM-DD>/<ulid>.parquet`, in the manifest's
//! `rollups`. Partitioned like the events, retention drops a day of both together. The same SQL
//! summarizes the rows still in memory when a query runs, so `issues` never scans event files.

use std::collections::BTreeMap;
use std::sync::Arc;

use bytes::Bytes;
use chrono::DateTime;
use datafusion::arrow::array::{AsArray, BooleanArray, RecordBatch};
use datafusion::arrow::compute::filter_record_batch;
use datafusion::arrow::datatypes::{Int64Type, TimestampMillisecondType};
use datafusion::datasource::MemTable;
use datafusion::error::DataFusionError;
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::parquet::basic::{Compression, ZstdLevel};
use datafusion::parquet::file::properties::WriterProperties;
use datafusion::prelude::SessionContext;
use object_store::path::Path as ObjectPath;

use super::{Error, Result};
use crate::store::Store;
use crate::store::manifest::DataFile;

const HOUR_MS: i64 = 3_600_000;

/// The user behind an event, by the first identifying field it has.
const USER_KEY: &str = "coalesce(user_id, user_email, user_username, user_ip)";

/// The rollup of the events in `source`, grouped by project, issue and hour.
pub fn rollup_sql(source: &str) -> String {
    format!(
        "SELECT project_id, project, issue_id, date_trunc('hour', timestamp) AS hour, \
         count(*) AS events, min(timestamp) AS first_seen, max(timestamp) AS last_seen, \
         max(received) AS last_received, \
         last_value(title ORDER BY timestamp) AS title, \
         last_value(culprit ORDER BY timestamp) AS culprit, \
         last_value(level ORDER BY timestamp) AS level, \
         array_agg(DISTINCT {USER_KEY}) FILTER (WHERE {USER_KEY} IS NOT NULL) AS users, \
         first_value(release ORDER BY timestamp) FILTER (WHERE release IS NOT NULL) AS first_release, \
         last_value(release ORDER BY timestamp) FILTER (WHERE release IS NOT NULL) AS last_release \
         FROM {source} \
         GROUP BY project_id, project, issue_id, date_trunc('hour', timestamp)"
    )
}

fn df(err: DataFusionError) -> Error {
    Error::Rollup(Box::new(err))
}

/// Summarizes event batches (what one flush writes) into rollup rows.
pub async fn compute(batches: &[RecordBatch]) -> Result<Vec<RecordBatch>> {
    let ctx = SessionContext::new();
    let table = MemTable::try_new(crate::events::schema(), vec![batches.to_vec()]).map_err(df)?;
    ctx.register_table("flushed", Arc::new(table)).map_err(df)?;
    let frame = ctx.sql(&rollup_sql("flushed")).await.map_err(df)?;
    frame.collect().await.map_err(df)
}

/// Writes rollup rows as one Parquet file per (project, day), durably, and describes them.
pub async fn write(
    store: &Store,
    batches: &[RecordBatch],
    zstd_level: i32,
) -> Result<Vec<DataFile>> {
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
    let props = WriterProperties::builder()
        .set_compression(Compression::ZSTD(
            ZstdLevel::try_new(zstd_level).unwrap_or_default(),
        ))
        .build();
    let mut files = Vec::with_capacity(parts.len());
    for ((project, day), masks) in parts {
        let mut data = Vec::new();
        let mut rows = 0u64;
        let (mut min, mut max) = (i64::MAX, i64::MIN);
        {
            let schema = batches[0].schema();
            let mut writer = ArrowWriter::try_new(&mut data, schema, Some(props.clone()))
                .map_err(|e| Error::Parquet(Box::new(e)))?;
            for (batch, mask) in batches.iter().zip(masks) {
                let part = filter_record_batch(batch, &BooleanArray::from(mask))
                    .map_err(|e| df(e.into()))?;
                if part.num_rows() == 0 {
                    continue;
                }
                let hours = part.column(3).as_primitive::<TimestampMillisecondType>();
                for h in hours.iter().flatten() {
                    min = min.min(h);
                    max = max.max(h + HOUR_MS - 1);
                }
                rows += part.num_rows() as u64;
                writer
                    .write(&part)
                    .map_err(|e| Error::Parquet(Box::new(e)))?;
            }
            writer.close().map_err(|e| Error::Parquet(Box::new(e)))?;
        }
        let date = DateTime::from_timestamp_millis(day * 24 * HOUR_MS)
            .unwrap_or_default()
            .format("%Y-%m-%d")
            .to_string();
        let path = format!(
            "rollups/project={project}/date={date}/{}.parquet",
            ulid::Ulid::new()
        );
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

    #[tokio::test]
    async fn rollups_count_per_hour_and_land_in_project_day_files() {
        let mut b = EventBuilder::new();
        b.append(&event(1, 7, "2026-11-23T23:10:00Z", "ann", "1.0"));
        b.append(&event(1, 7, "2026-11-24T10:05:00Z", "bob", "1.1"));
        b.append(&event(1, 7, "2026-11-24T10:50:00Z", "bob", "1.2"));
        b.append(&event(2, 9, "2026-11-24T10:30:00Z", "cid", "2.0"));
        let rollups = compute(&[b.finish()]).await.unwrap();
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
                ("rollups/project=1/date=2026-11-23".to_owned(), 1),
                ("rollups/project=1/date=2026-11-24".to_owned(), 1),
                ("rollups/project=2/date=2026-11-24".to_owned(), 1),
            ]
        );
    }
}
