//! Restore: a backup into an empty data location, optionally stopping at a point in time.
//!
//! Every object read from the backup is checked against its recorded checksum. Data files are
//! copied to the same paths; WAL segments carried by the backup become Parquet files (so the
//! restored location needs no WAL and any node can start on it). Manifests are written as
//! version 1 of each node with no WAL position, since the new nodes' WAL starts afresh. At the
//! end the restored files are read back and their events counted per project and day, which
//! must equal the backup's counts (or, with `until`, the counts kept). Last, a marker object
//! `_restore.json` records what was restored: running the same restore again is a no-op, so an
//! init container can run it before every start, and several pods sharing one S3 location take
//! turns through a lease, the later ones finding the marker. A restore that was killed midway
//! (its `_restore.pending.json` is there, no marker) is started over by the same command.
//!
//! Point in time (`until`): the events faultline *received* up to that time. A data file whose
//! ULID (its creation time) is not after `until` holds only such events and is copied as is;
//! a later file (a later flush, or a compacted one) is rewritten with only the events received
//! up to `until`. WAL events are filtered the same way. With `latest`, the oldest backup that
//! finished at or after `until` is used (the newest if none did).
//!
//! Issue rollups summarize events, so they must match the restored events exactly: without
//! `until` the backed-up rollup files are restored as they are and only the events of the carried
//! WAL get new ones; with `until` every rollup is rebuilt from the events kept (a backed-up
//! rollup file cannot be cut at `until`, and compaction moves events into later files).
//!
//! Files of the item tables (transactions, spans, logs, feedback) are restored like event
//! files: as they are, or with `until` cut to the rows received by then; their rows in the
//! carried WAL become files of their tables.

use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use datafusion::arrow::array::{AsArray, BooleanArray, RecordBatch};
use datafusion::arrow::compute::filter_record_batch;
use datafusion::arrow::datatypes::TimestampMillisecondType;
use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use faultline_config::Config;
use object_store::path::Path as ObjectPath;
use serde::{Deserialize, Serialize};

use super::{BackupRecord, Copied, Destination, Error, Result, sha256, wal_events, with_lease};
use crate::events::{EventBuilder, time_column};
use crate::maintenance::progress::Progress;
use crate::store::manifest::DataFile;
use crate::store::parquet::{
    COMPACTED_EVENT_PAGE_BYTES, encode, plan_partitions, write_partitions, writer_properties,
};
use crate::store::{self, Store};

/// The marker a finished restore leaves in the data location.
pub const MARKER_PATH: &str = "_restore.json";
/// Written when a restore starts: a rerun of the same restore may resume a location it left
/// half-written (the pod was killed), instead of refusing it as not empty.
pub const PENDING_PATH: &str = "_restore.pending.json";
const RESTORE_LEASE: &str = "_leases/restore.json";
/// How long a pod waits for another pod's restore of the same location.
const WAIT_FOR_OTHERS: Duration = Duration::from_secs(6 * 3600);

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Marker {
    pub source: String,
    /// What was asked for (`latest` or an id) and what it resolved to.
    pub requested: String,
    pub backup_id: String,
    pub until: Option<DateTime<Utc>>,
    pub finished: DateTime<Utc>,
}

impl Marker {
    /// A restore of `backup_id` (empty while it is not chosen yet) from `source`, stamped now.
    fn new(source: &str, requested: &str, backup_id: &str, until: Option<DateTime<Utc>>) -> Self {
        Self {
            source: source.to_owned(),
            requested: requested.to_owned(),
            backup_id: backup_id.to_owned(),
            until,
            finished: Utc::now(),
        }
    }

    fn matches(&self, source: &str, requested: &str, until: Option<DateTime<Utc>>) -> bool {
        self.source == source
            && self.until == until
            && (requested == "latest" || requested == self.backup_id || requested == self.requested)
    }
}

/// Events per project and day.
pub type Counts = BTreeMap<(u64, String), u64>;

/// What a restore did.
#[derive(Debug, Clone, Serialize)]
pub enum RestoreOutcome {
    /// This location already holds this restore; nothing was done.
    AlreadyRestored(Marker),
    Restored {
        marker: Marker,
        files: usize,
        events: u64,
        /// Verified counts per project and day.
        counts: Vec<super::DayCount>,
    },
}

async fn read_marker(target: &Store) -> Result<Option<Marker>> {
    read_json(target, MARKER_PATH).await
}

async fn read_json(target: &Store, path: &str) -> Result<Option<Marker>> {
    match target.get_json(&ObjectPath::from(path)).await {
        Ok(marker) => Ok(Some(marker)),
        Err(store::Error::Request {
            source: object_store::Error::NotFound { .. },
            ..
        }) => Ok(None),
        Err(err) => Err(err.into()),
    }
}

fn check_marker(
    marker: Option<Marker>,
    target: &Store,
    source: &str,
    requested: &str,
    until: Option<DateTime<Utc>>,
) -> Result<Option<Marker>> {
    match marker {
        None => Ok(None),
        Some(m) if m.matches(source, requested, until) => Ok(Some(m)),
        Some(m) => Err(Error::OtherRestore {
            location: target.location.clone(),
            other: format!("{} from {} (until {:?})", m.backup_id, m.source, m.until),
        }),
    }
}

/// Restores backup `requested` (an id or `latest`) from `dest` into the configured data
/// location.
pub async fn restore(
    config: &Config,
    dest: &Destination,
    requested: &str,
    until: Option<DateTime<Utc>>,
    interactive: bool,
) -> Result<RestoreOutcome> {
    let target = Store::open(config)?;
    if let Some(done) = check_marker(
        read_marker(&target).await?,
        &target,
        &dest.url,
        requested,
        until,
    )? {
        return Ok(RestoreOutcome::AlreadyRestored(done));
    }
    // Unique per attempt: pods of one StatefulSet may share a pid (1) and a config.
    let holder = format!(
        "restore-{}-{:08x}",
        config.storage.node_id,
        rand::random::<u32>()
    );
    with_lease(&target, RESTORE_LEASE, &holder, WAIT_FOR_OTHERS, async {
        // Another pod may have finished while we waited for the lease.
        if let Some(done) = check_marker(
            read_marker(&target).await?,
            &target,
            &dest.url,
            requested,
            until,
        )? {
            return Ok(RestoreOutcome::AlreadyRestored(done));
        }
        let resuming = read_json(&target, PENDING_PATH)
            .await?
            .is_some_and(|p| p.matches(&dest.url, requested, until));
        if resuming {
            tracing::info!(location = %target.location, "resuming an interrupted restore");
            for old in target.list(&ObjectPath::from("manifest")).await? {
                target.delete(&old.location).await?;
            }
        } else {
            ensure_empty(config, &target).await?;
            let pending = Marker::new(&dest.url, requested, "", until);
            target
                .put_durable(
                    &ObjectPath::from(PENDING_PATH),
                    Bytes::from(serde_json::to_vec(&pending).expect("marker serializes")),
                )
                .await?;
        }
        let record = choose(dest, requested, until).await?;
        restore_record(
            config,
            &target,
            dest,
            &record,
            requested,
            until,
            interactive,
        )
        .await
    })
    .await
}

async fn choose(
    dest: &Destination,
    requested: &str,
    until: Option<DateTime<Utc>>,
) -> Result<BackupRecord> {
    match (requested, until) {
        ("latest", Some(until)) => {
            let records = dest.records().await?;
            let covering = records.iter().rev().find(|r| r.finished >= until).cloned();
            match covering.or_else(|| records.into_iter().next()) {
                Some(record) => Ok(record),
                None => dest.record("latest").await,
            }
        }
        _ => dest.record(requested).await,
    }
}

async fn ensure_empty(config: &Config, target: &Store) -> Result<()> {
    for prefix in ["manifest", "events", "rollups", crate::store::keys::ITEMS] {
        if let Some(object) = target.list(&ObjectPath::from(prefix)).await?.first() {
            return Err(Error::NotEmpty {
                location: target.location.clone(),
                found: object.location.to_string(),
            });
        }
    }
    if let Some((_, path)) = crate::wal::list_segments(&config.wal_dir())?.first() {
        return Err(Error::NotEmpty {
            location: config.wal_dir().display().to_string(),
            found: path.display().to_string(),
        });
    }
    Ok(())
}

/// Reads an object of the backup and checks it against its record.
async fn fetch(dest: &Destination, path: &str, expected: &Copied) -> Result<Bytes> {
    let data = dest.store.get(&ObjectPath::from(path)).await?;
    if data.len() as u64 != expected.bytes || sha256(&data) != expected.sha256 {
        return Err(Error::Verify {
            id: path.to_owned(),
            problems: vec![format!("{path} does not match its recorded checksum")],
        });
    }
    Ok(data)
}

fn created_ms(path: &str) -> Option<i64> {
    let name = path.rsplit('/').next()?.strip_suffix(".parquet")?;
    ulid::Ulid::from_string(name)
        .ok()
        .map(|u| u.timestamp_ms() as i64)
}

fn parquet_error(path: &str, e: impl ToString) -> Error {
    Error::Parquet {
        path: path.to_owned(),
        message: e.to_string(),
    }
}

/// Keeps the rows received up to `until_ms`; `None` when none are left.
fn filter_file(
    path: &str,
    data: Bytes,
    until_ms: i64,
    level: i32,
) -> Result<Option<(Vec<u8>, u64)>> {
    let reader = ParquetRecordBatchReaderBuilder::try_new(data)
        .and_then(|b| b.build())
        .map_err(|e| parquet_error(path, e))?;
    let mut kept = Vec::new();
    for batch in reader {
        let batch = batch.map_err(|e| parquet_error(path, e))?;
        let received = time_column(&batch, "received");
        let mask: BooleanArray = received.iter().map(|v| v.map(|v| v <= until_ms)).collect();
        let batch = filter_record_batch(&batch, &mask).map_err(|e| parquet_error(path, e))?;
        if batch.num_rows() > 0 {
            kept.push(batch);
        }
    }
    let rows: usize = kept.iter().map(RecordBatch::num_rows).sum();
    if rows == 0 {
        return Ok(None);
    }
    let mut data = Vec::new();
    for part in plan_partitions(&kept) {
        data = encode(
            &kept,
            &part.rows,
            writer_properties(level, part.rows.len(), COMPACTED_EVENT_PAGE_BYTES),
        )
        .map_err(|e| parquet_error(path, e))?;
    }
    Ok(Some((data, rows as u64)))
}

fn read_batches(path: &str, data: Bytes) -> Result<Vec<RecordBatch>> {
    ParquetRecordBatchReaderBuilder::try_new(data)
        .and_then(|b| b.build())
        .map_err(|e| parquet_error(path, e))?
        .map(|batch| batch.map_err(|e| parquet_error(path, e)))
        .collect()
}

/// Summarizes restored events into rollup files, as the flusher does for the events it writes.
async fn rollups_of(target: &Store, batches: &[RecordBatch], level: i32) -> Result<Vec<DataFile>> {
    let rows = crate::issues::rollup::compute(batches)?;
    if rows.iter().all(|b| b.num_rows() == 0) {
        return Ok(Vec::new());
    }
    Ok(crate::issues::rollup::write(target, &rows, level).await?)
}

fn footer_rows(path: &str, data: Bytes) -> Result<u64> {
    let builder =
        ParquetRecordBatchReaderBuilder::try_new(data).map_err(|e| parquet_error(path, e))?;
    Ok(builder.metadata().file_metadata().num_rows() as u64)
}

async fn restore_record(
    config: &Config,
    target: &Store,
    dest: &Destination,
    record: &BackupRecord,
    requested: &str,
    until: Option<DateTime<Utc>>,
    interactive: bool,
) -> Result<RestoreOutcome> {
    let until_ms = until.map(|t| t.timestamp_millis());
    let level = config.compaction.zstd_level;
    let checksums: BTreeMap<&str, &Copied> =
        record.files.iter().map(|f| (f.path.as_str(), f)).collect();
    let progress = Progress::new(
        "restore",
        record.total_files(),
        record.total_bytes(),
        interactive,
    );
    let mut expected: Counts = BTreeMap::new();
    let mut manifests: BTreeMap<String, Vec<DataFile>> = BTreeMap::new();
    // Rollups written by this restore, per node (see the module docs).
    let mut rollups: BTreeMap<String, Vec<DataFile>> = BTreeMap::new();
    // Item table files restored, per node and table.
    let mut tables: BTreeMap<String, BTreeMap<String, Vec<DataFile>>> = BTreeMap::new();
    for manifest in &record.manifests {
        let restored =
            restore_item_files(target, dest, record, manifest, until_ms, level, &progress).await?;
        tables.insert(manifest.node.clone(), restored);
        // Other listed objects than event and item files (issue rollups) are copied as they are.
        let event_paths: std::collections::HashSet<&str> = manifest
            .files
            .iter()
            .chain(manifest.item_files())
            .map(|f| f.path.as_str())
            .collect();
        for other in manifest
            .live_files()
            .filter(|f| until_ms.is_none() && !event_paths.contains(f.path.as_str()))
        {
            let copied = checksums
                .get(other.path.as_str())
                .ok_or_else(|| Error::Verify {
                    id: record.id.clone(),
                    problems: vec![format!("{} is not in the backup", other.path)],
                })?;
            let data = fetch(dest, &format!("files/{}", other.path), copied).await?;
            progress.file_done(copied.bytes);
            target
                .put_durable(&ObjectPath::from(other.path.as_str()), data)
                .await?;
        }
        let files = manifests.entry(manifest.node.clone()).or_default();
        for file in &manifest.files {
            let copied = checksums
                .get(file.path.as_str())
                .ok_or_else(|| Error::Verify {
                    id: record.id.clone(),
                    problems: vec![format!(
                        "{} is in a manifest but not in the backup",
                        file.path
                    )],
                })?;
            let data = fetch(dest, &format!("files/{}", file.path), copied).await?;
            progress.file_done(copied.bytes);
            let whole = match (until_ms, created_ms(&file.path)) {
                (None, _) => true,
                (Some(until), Some(created)) => created <= until,
                (Some(_), None) => false,
            };
            let mut restored = file.clone();
            if whole {
                if until_ms.is_some() {
                    let batches = read_batches(&file.path, data.clone())?;
                    rollups
                        .entry(manifest.node.clone())
                        .or_default()
                        .extend(rollups_of(target, &batches, level).await?);
                }
                target
                    .put_durable(&ObjectPath::from(file.path.as_str()), data)
                    .await?;
            } else {
                let path = file.path.clone();
                let until = until_ms.unwrap_or(i64::MAX);
                let filtered =
                    tokio::task::spawn_blocking(move || filter_file(&path, data, until, level))
                        .await
                        .expect("filtering does not panic")?;
                let Some((data, rows)) = filtered else {
                    continue;
                };
                let batches = read_batches(&file.path, Bytes::from(data.clone()))?;
                rollups
                    .entry(manifest.node.clone())
                    .or_default()
                    .extend(rollups_of(target, &batches, level).await?);
                restored.rows = rows;
                restored.bytes = data.len() as u64;
                target
                    .put_durable(&ObjectPath::from(file.path.as_str()), Bytes::from(data))
                    .await?;
            }
            *expected
                .entry((restored.project_id, restored.date.clone()))
                .or_default() += restored.rows;
            files.push(restored);
        }
    }

    // Attachments' bytes, as they were (a row restored names its object; an object whose
    // rows a point-in-time restore leaves out is harmless and goes with its day).
    for copied in record.files.iter().filter(|f| {
        f.path
            .strip_prefix(crate::store::keys::ATTACHMENTS)
            .is_some_and(|rest| rest.starts_with('/'))
    }) {
        let data = fetch(dest, &format!("files/{}", copied.path), copied).await?;
        progress.file_done(copied.bytes);
        target
            .put_durable(&ObjectPath::from(copied.path.as_str()), data)
            .await?;
    }

    // The carried WAL segments become Parquet files of the node that wrote them.
    let mut events = Vec::new();
    for segment in &record.wal {
        let path = format!("backups/{}/{}", record.id, segment.object.path);
        let data = fetch(dest, &path, &segment.object).await?;
        progress.file_done(segment.object.bytes);
        let logged = wal_events(&data)?;
        events.extend(
            logged.events.into_iter().filter(|e| {
                until_ms.is_none_or(|until| e.event.received.timestamp_millis() <= until)
            }),
        );
        for item in logged.items {
            let batch = received_until(&path, item.batch, until_ms)?;
            if batch.num_rows() == 0 {
                continue;
            }
            let written = store::parquet::write_item_files(
                target,
                item.table,
                &[batch],
                config.flush.zstd_level,
            )
            .await?;
            tables
                .entry(record.node.clone())
                .or_default()
                .entry(item.table.name.to_owned())
                .or_default()
                .extend(written);
        }
    }
    if !events.is_empty() {
        let mut builder = EventBuilder::new();
        for event in &events {
            builder.append(event);
            *expected
                .entry((
                    event.project_id,
                    event.event.timestamp.format("%Y-%m-%d").to_string(),
                ))
                .or_default() += 1;
        }
        let batch = builder.finish();
        rollups
            .entry(record.node.clone())
            .or_default()
            .extend(rollups_of(target, std::slice::from_ref(&batch), level).await?);
        let written = write_partitions(target, &[batch], config.flush.zstd_level).await?;
        manifests
            .entry(record.node.clone())
            .or_default()
            .extend(written);
    }

    for object in &record.meta {
        let data = fetch(
            dest,
            &format!("backups/{}/{}", record.id, object.path),
            object,
        )
        .await?;
        progress.file_done(object.bytes);
        target
            .put_durable(&ObjectPath::from(object.path.as_str()), data)
            .await?;
    }
    progress.finish();

    // Read back what was written and count it.
    let mut found: Counts = BTreeMap::new();
    let mut total_files = 0;
    for files in manifests.values() {
        for file in files {
            let data = target.get(&ObjectPath::from(file.path.as_str())).await?;
            let rows = footer_rows(&file.path, data)?;
            *found
                .entry((file.project_id, file.date.clone()))
                .or_default() += rows;
            total_files += 1;
        }
    }
    if until.is_none() {
        let recorded: Counts = record
            .counts
            .iter()
            .map(|c| ((c.project_id, c.date.clone()), c.events))
            .collect();
        if recorded != expected {
            return Err(count_mismatch(&record.id, &recorded, &expected));
        }
    }
    if found != expected {
        return Err(count_mismatch(&record.id, &expected, &found));
    }

    for (node, files) in manifests {
        // From the backed-up manifest, so other listed objects (issue rollups) stay listed.
        let mut restored = record
            .manifests
            .iter()
            .find(|m| m.node == node)
            .cloned()
            .unwrap_or_default();
        restored.node = node;
        restored.version = 1;
        restored.wal_upto = None;
        restored.files = files;
        restored.tables = tables.remove(&restored.node).unwrap_or_default();
        restored.tables.retain(|_, files| !files.is_empty());
        restored.retired.clear();
        let rebuilt = rollups.remove(&restored.node).unwrap_or_default();
        if until.is_some() {
            restored.rollups = rebuilt;
        } else {
            restored.rollups.extend(rebuilt);
        }
        restored.commit(target).await?;
    }
    let marker = Marker::new(&dest.url, requested, &record.id, until);
    target
        .create_durable(
            &ObjectPath::from(MARKER_PATH),
            Bytes::from(serde_json::to_vec_pretty(&marker).expect("marker serializes")),
        )
        .await?;
    target.delete(&ObjectPath::from(PENDING_PATH)).await?;
    let events = found.values().sum();
    tracing::info!(
        backup = record.id,
        files = total_files,
        events,
        "restore done and verified"
    );
    Ok(RestoreOutcome::Restored {
        marker,
        files: total_files,
        events,
        counts: found
            .into_iter()
            .map(|((project_id, date), events)| super::DayCount {
                project_id,
                date,
                events,
            })
            .collect(),
    })
}

/// The rows of `batch` received up to `until_ms` (all of them without it).
fn received_until(path: &str, batch: RecordBatch, until_ms: Option<i64>) -> Result<RecordBatch> {
    let Some(until) = until_ms else {
        return Ok(batch);
    };
    let Some(received) = batch
        .column_by_name("received")
        .and_then(|c| c.as_primitive_opt::<TimestampMillisecondType>())
    else {
        return Err(parquet_error(path, "no received column"));
    };
    let mask: BooleanArray = received.iter().map(|v| v.map(|v| v <= until)).collect();
    filter_record_batch(&batch, &mask).map_err(|e| parquet_error(path, e))
}

/// Restores the item table files of one backed-up manifest: copied as they are, or with
/// `until_ms` cut to the rows received by then (see the module docs). Returns the restored
/// files per table.
async fn restore_item_files(
    target: &Store,
    dest: &Destination,
    record: &BackupRecord,
    manifest: &crate::store::manifest::Manifest,
    until_ms: Option<i64>,
    level: i32,
    progress: &Progress,
) -> Result<BTreeMap<String, Vec<DataFile>>> {
    let mut restored: BTreeMap<String, Vec<DataFile>> = BTreeMap::new();
    let copies: std::collections::HashMap<&str, &Copied> =
        record.files.iter().map(|f| (f.path.as_str(), f)).collect();
    for (name, files) in &manifest.tables {
        let Some(table) = crate::items::by_name(name) else {
            return Err(Error::Verify {
                id: record.id.clone(),
                problems: vec![format!(
                    "unknown item table {name} (a newer version's backup?)"
                )],
            });
        };
        for file in files {
            let copied = copies
                .get(file.path.as_str())
                .ok_or_else(|| Error::Verify {
                    id: record.id.clone(),
                    problems: vec![format!(
                        "{} is in a manifest but not in the backup",
                        file.path
                    )],
                })?;
            let data = fetch(dest, &format!("files/{}", file.path), copied).await?;
            progress.file_done(copied.bytes);
            let whole = match (until_ms, created_ms(&file.path)) {
                (None, _) => true,
                (Some(until), Some(created)) => created <= until,
                (Some(_), None) => false,
            };
            let out = restored.entry(name.clone()).or_default();
            if whole {
                target
                    .put_durable(&ObjectPath::from(file.path.as_str()), data)
                    .await?;
                out.push(file.clone());
                continue;
            }
            let mut kept = Vec::new();
            for batch in read_batches(&file.path, data)? {
                let batch = received_until(&file.path, batch, until_ms)?;
                if batch.num_rows() > 0 {
                    kept.push(batch);
                }
            }
            if !kept.is_empty() {
                out.extend(store::parquet::write_item_files(target, table, &kept, level).await?);
            }
        }
    }
    Ok(restored)
}

fn count_mismatch(id: &str, expected: &Counts, found: &Counts) -> Error {
    let mut problems = Vec::new();
    for key in expected.keys().chain(found.keys()) {
        let (e, f) = (expected.get(key), found.get(key));
        if e != f {
            problems.push(format!(
                "project {} on {}: expected {} events, found {}",
                key.0,
                key.1,
                e.copied().unwrap_or(0),
                f.copied().unwrap_or(0)
            ));
        }
    }
    problems.dedup();
    Error::Verify {
        id: id.to_owned(),
        problems,
    }
}
