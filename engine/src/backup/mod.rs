//! Backups: a snapshot of every node's manifest plus the immutable files it names, copied to
//! another object store or prefix (S3 or a directory), incrementally and with checksums.
//!
//! Layout at the destination:
//! ```text
//! files/<path in the source>             data files, copied once and shared by every backup
//! backups/<id>/meta/...                  projects and API tokens at the time of the backup
//! backups/<id>/wal/<node>/<seq>.wal      the creating node's acknowledged, unflushed events
//! backups/<id>/backup.json               the record, written last: a backup exists iff it does
//! _leases/backup.json                    one writer at a time (create, prune)
//! ```
//! Data files never change once written (their names are ULIDs), so a file already at the
//! destination is not copied again. An interrupted backup leaves files but no record: earlier
//! backups are untouched and the next run reuses what was copied. Pruning deletes a record
//! first, then only the files that no kept record names.
//!
//! Point in time: a backup also carries the WAL segments of the creating node that its
//! manifest does not cover yet (a server flushes first, so these are only the events accepted
//! during the backup). The segments are read *before* the manifests and kept only past the
//! manifest's `wal_upto`, so an event flushed in between is in exactly one of the two. A
//! restore can stop at a time `T`: it keeps the events faultline received up to `T`.

pub mod restore;
pub mod service;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use faultline_config::Config;
use futures::{StreamExt, TryStreamExt};
use object_store::ObjectStoreExt;
use object_store::path::Path as ObjectPath;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub use service::Backups;

use crate::maintenance::progress::Progress;
use crate::store::lease::{self, Lease};
use crate::store::manifest::Manifest;
use crate::store::{self, Store};
use crate::wal;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Store(#[from] store::Error),
    #[error(transparent)]
    Wal(#[from] wal::Error),
    #[error("cannot replay a backed-up WAL record: {0}")]
    Replay(String),
    #[error("no backup destination: set backup.destination or pass --to/--from")]
    NoDestination,
    #[error("the server is shutting down")]
    ShuttingDown,
    #[error("no backup {id:?} at {destination}")]
    NotFound { id: String, destination: String },
    #[error("backup {id} failed verification: {}", problems.join("; "))]
    Verify { id: String, problems: Vec<String> },
    #[error("the data location {location} is not empty ({found}); restore needs an empty one")]
    NotEmpty { location: String, found: String },
    #[error("the data location {location} already holds a restore of {other}")]
    OtherRestore { location: String, other: String },
    #[error("{holder} holds the lease {name} at {location}; gave up after {waited:?}")]
    LeaseBusy {
        name: String,
        location: String,
        holder: String,
        waited: Duration,
    },
    #[error("cannot read or write Parquet {path}: {message}")]
    Parquet { path: String, message: String },
    #[error("cannot rebuild the issue rollups of the restored events: {0}")]
    Rollups(#[from] crate::issues::Error),
    #[error("cannot use a temporary file: {0}")]
    Temp(#[source] std::io::Error),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// One copied object and its checksum.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Copied {
    /// For data files, the path in the source (`files/<path>` at the destination); for meta
    /// and WAL objects, the path under `backups/<id>/`.
    pub path: String,
    pub bytes: u64,
    pub sha256: String,
}

/// A WAL segment carried by a backup.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WalCopy {
    pub node: String,
    pub seq: u64,
    pub object: Copied,
}

/// Events of one project and day (by event timestamp).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct DayCount {
    pub project_id: u64,
    pub date: String,
    pub events: u64,
}

/// `backups/<id>/backup.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct BackupRecord {
    pub id: String,
    /// The source object store.
    pub source: String,
    /// The node that made it (whose WAL it carries).
    pub node: String,
    pub started: DateTime<Utc>,
    pub finished: DateTime<Utc>,
    /// Every node's manifest at the time (live files only).
    pub manifests: Vec<Manifest>,
    pub files: Vec<Copied>,
    pub meta: Vec<Copied>,
    pub wal: Vec<WalCopy>,
    /// Events per project and day in the files and the WAL segments together.
    pub counts: Vec<DayCount>,
    /// Files and bytes this backup copied (the rest were at the destination already).
    pub copied_files: u64,
    pub copied_bytes: u64,
}

impl BackupRecord {
    pub fn total_files(&self) -> u64 {
        (self.files.len() + self.meta.len() + self.wal.len()) as u64
    }

    pub fn total_bytes(&self) -> u64 {
        self.files.iter().map(|f| f.bytes).sum::<u64>()
            + self.meta.iter().map(|f| f.bytes).sum::<u64>()
            + self.wal.iter().map(|w| w.object.bytes).sum::<u64>()
    }
}

/// Where backups go (or come from).
#[derive(Debug, Clone)]
pub struct Destination {
    pub store: Store,
    pub url: String,
}

/// Environment variables with the destination's own S3 credentials (the operator sets them
/// from the destination's Secret); without them the usual `AWS_*` variables apply.
pub const ACCESS_KEY_ENV: &str = "FAULTLINE_BACKUP_AWS_ACCESS_KEY_ID";
pub const SECRET_KEY_ENV: &str = "FAULTLINE_BACKUP_AWS_SECRET_ACCESS_KEY";

impl Destination {
    /// `url`, else `backup.destination`, with `[backup.s3]` settings.
    pub fn open(config: &Config, url: Option<&str>) -> Result<Self> {
        let url = url
            .or(config.backup.destination.as_deref())
            .ok_or(Error::NoDestination)?;
        let credentials = match (
            std::env::var(ACCESS_KEY_ENV).ok(),
            std::env::var(SECRET_KEY_ENV).ok(),
        ) {
            (Some(key), Some(secret)) => Some((key, secret)),
            _ => None,
        };
        let mut s3 = config.backup.s3.clone();
        if s3.endpoint.is_none() {
            s3.endpoint = config.storage.s3.endpoint.clone();
            s3.allow_http |= config.storage.s3.allow_http;
        }
        if s3.region.is_none() {
            s3.region = config.storage.s3.region.clone();
        }
        Ok(Self {
            store: Store::open_url(url, &s3, credentials)?,
            url: url.to_owned(),
        })
    }

    fn record_path(id: &str) -> ObjectPath {
        ObjectPath::from(format!("backups/{id}/backup.json"))
    }

    /// Every complete backup, newest first.
    pub async fn records(&self) -> Result<Vec<BackupRecord>> {
        let mut records = Vec::new();
        for meta in self.store.list(&ObjectPath::from("backups")).await? {
            let parts: Vec<_> = meta.location.parts().collect();
            if parts.len() == 3 && parts[2].as_ref() == "backup.json" {
                records.push(self.store.get_json::<BackupRecord>(&meta.location).await?);
            }
        }
        // Ids sort by time to the second; `started` orders backups of the same second.
        records.sort_by(|a, b| (b.started, &b.id).cmp(&(a.started, &a.id)));
        Ok(records)
    }

    /// The backup `id`, or the newest for `latest`.
    pub async fn record(&self, id: &str) -> Result<BackupRecord> {
        let not_found = || Error::NotFound {
            id: id.to_owned(),
            destination: self.url.clone(),
        };
        if id == "latest" {
            return self
                .records()
                .await?
                .into_iter()
                .next()
                .ok_or_else(not_found);
        }
        match self.store.get_json(&Self::record_path(id)).await {
            Ok(record) => Ok(record),
            Err(store::Error::Request {
                source: object_store::Error::NotFound { .. },
                ..
            }) => Err(not_found()),
            Err(err) => Err(err.into()),
        }
    }
}

pub(crate) fn sha256(data: &[u8]) -> String {
    hex::encode(Sha256::digest(data))
}

/// A new backup id: the UTC time and 4 random hex digits, e.g. `20261124T161500Z-ab12`;
/// ids sort by time.
pub fn new_id(now: DateTime<Utc>) -> String {
    format!(
        "{}-{:04x}",
        now.format("%Y%m%dT%H%M%SZ"),
        rand::random::<u16>()
    )
}

/// Holds a lease on a store while `work` runs, renewing it; waits up to `wait` to get it.
pub(crate) async fn with_lease<T>(
    store: &Store,
    name: &str,
    holder: &str,
    wait: Duration,
    work: impl Future<Output = Result<T>>,
) -> Result<T> {
    // A killed holder blocks the next writer until this passes; renewed every third of it.
    const TTL: Duration = Duration::from_secs(30);
    let started = std::time::Instant::now();
    loop {
        match lease::acquire(store, name, holder, TTL).await? {
            Lease::Held { .. } => break,
            Lease::Busy { holder: other, .. } => {
                if started.elapsed() >= wait {
                    return Err(Error::LeaseBusy {
                        name: name.to_owned(),
                        location: store.location.clone(),
                        holder: other,
                        waited: wait,
                    });
                }
                tracing::info!(holder = other, lease = name, "waiting for the lease");
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
        }
    }
    let renew = {
        let store = store.clone();
        let (name, holder) = (name.to_owned(), holder.to_owned());
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(TTL / 3).await;
                if let Err(err) = lease::acquire(&store, &name, &holder, TTL).await {
                    tracing::warn!(cause = %err, lease = name, "cannot renew the lease");
                }
            }
        })
    };
    let result = work.await;
    renew.abort();
    let _ = lease::release(store, name, holder).await;
    result
}

/// The lease guarding a destination against a prune during a backup.
pub const DESTINATION_LEASE: &str = "_leases/backup.json";

/// What to back up from: the source store, and the node whose WAL directory to include.
pub struct Source<'a> {
    pub store: &'a Store,
    pub node: &'a str,
    pub wal_dir: &'a Path,
}

/// Reads the unflushed WAL segments of a node: (seq, bytes).
fn read_wal(dir: &Path) -> Result<Vec<(u64, Vec<u8>)>> {
    let mut out = Vec::new();
    for (seq, path) in wal::list_segments(dir)? {
        match std::fs::read(&path) {
            Ok(data) => out.push((seq, data)),
            // Trimmed by a flush meanwhile: the manifest read next covers it.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(source) => return Err(wal::Error::OpenDir { path, source }.into()),
        }
    }
    Ok(out)
}

/// Decodes a backed-up WAL segment into events and item rows (through a temporary file, the
/// WAL reader's input).
pub(crate) fn wal_events(data: &[u8]) -> Result<wal::Logged> {
    let mut file = tempfile::NamedTempFile::new().map_err(Error::Temp)?;
    std::io::Write::write_all(&mut file, data).map_err(Error::Temp)?;
    let contents = wal::read_segment(file.path())?;
    wal::replay::rebuild(&contents.records, |_, err| {
        Err(Error::Replay(err.to_string()))
    })
}

/// Copies one data file unless the destination has it; returns its checksum and whether it
/// was copied.
async fn copy_file(
    source: &Store,
    dest: &Store,
    path: &str,
    known: &HashMap<String, String>,
) -> Result<(Copied, bool)> {
    let target = ObjectPath::from(format!("files/{path}"));
    match dest.objects.head(&target).await {
        Ok(meta) => {
            let sha256 = match known.get(path) {
                Some(sum) => sum.clone(),
                // Copied by an interrupted backup: no record has its checksum yet.
                None => self::sha256(&dest.get(&target).await?),
            };
            return Ok((
                Copied {
                    path: path.to_owned(),
                    bytes: meta.size,
                    sha256,
                },
                false,
            ));
        }
        Err(object_store::Error::NotFound { .. }) => {}
        Err(source) => {
            return Err(store::Error::Request {
                path: target.to_string(),
                source,
            }
            .into());
        }
    }
    let data = source.get(&ObjectPath::from(path)).await?;
    let copied = Copied {
        path: path.to_owned(),
        bytes: data.len() as u64,
        sha256: sha256(&data),
    };
    dest.put_durable(&target, data).await?;
    Ok((copied, true))
}

/// Makes backup `id` of `source` at `dest`. The caller holds the destination lease.
pub async fn create(
    id: &str,
    source: &Source<'_>,
    dest: &Destination,
    interactive: bool,
) -> Result<BackupRecord> {
    let started = Utc::now();
    // The WAL before the manifests: see the module docs.
    let mut segments = read_wal(source.wal_dir)?;
    let mut manifests = Manifest::load_all(source.store).await?;
    let own_upto = manifests
        .iter()
        .find(|m| m.node == source.node)
        .and_then(|m| m.wal_upto);
    segments.retain(|(seq, _)| own_upto.is_none_or(|upto| *seq > upto));
    for manifest in &mut manifests {
        manifest.retired.clear();
    }
    let known: HashMap<String, String> = dest
        .records()
        .await?
        .into_iter()
        .flat_map(|r| r.files.into_iter().map(|f| (f.path, f.sha256)))
        .collect();
    // Attachments' bytes are objects no manifest lists (their rows are in item files): copied
    // with the data files, once each (their keys never change).
    let attachments: Vec<(String, u64)> = source
        .store
        .list(&ObjectPath::from(crate::store::keys::ATTACHMENTS))
        .await?
        .into_iter()
        .map(|o| (o.location.to_string(), o.size))
        .collect();
    let mut paths: BTreeMap<&str, u64> = BTreeMap::new();
    for file in manifests.iter().flat_map(|m| m.live_files()) {
        paths.insert(&file.path, file.bytes);
    }
    for (path, bytes) in &attachments {
        paths.insert(path, *bytes);
    }
    let progress = Progress::new(
        "backup",
        paths.len() as u64,
        paths.values().sum(),
        interactive,
    );
    let owned: Vec<String> = paths.keys().map(|p| (*p).to_owned()).collect();
    let known = &known;
    let progress_ref = &progress;
    let results: Vec<(Copied, bool)> = futures::stream::iter(owned)
        .map(move |path: String| async move {
            let result = copy_file(source.store, &dest.store, &path, known).await?;
            progress_ref.file_done(result.0.bytes);
            Ok::<_, Error>(result)
        })
        .buffered(4)
        .try_collect()
        .await?;
    progress.finish();
    let copied_files = results.iter().filter(|(_, c)| *c).count() as u64;
    let copied_bytes = results
        .iter()
        .filter(|(_, c)| *c)
        .map(|(f, _)| f.bytes)
        .sum();
    let files: Vec<Copied> = results.into_iter().map(|(f, _)| f).collect();

    let mut meta = Vec::new();
    for object in source.store.list(&ObjectPath::from("meta")).await? {
        let data = source.store.get(&object.location).await?;
        let path = object.location.to_string();
        meta.push(Copied {
            path: path.clone(),
            bytes: data.len() as u64,
            sha256: sha256(&data),
        });
        dest.store
            .put_durable(&ObjectPath::from(format!("backups/{id}/{path}")), data)
            .await?;
    }

    let mut counts: BTreeMap<(u64, String), u64> = BTreeMap::new();
    for file in manifests.iter().flat_map(|m| &m.files) {
        *counts
            .entry((file.project_id, file.date.clone()))
            .or_default() += file.rows;
    }
    let mut wal_copies = Vec::new();
    for (seq, data) in segments {
        for event in wal_events(&data)?.events {
            let date = event.event.timestamp.format("%Y-%m-%d").to_string();
            *counts.entry((event.project_id, date)).or_default() += 1;
        }
        let path = format!("wal/{}/{seq:020}.wal", source.node);
        let copy = WalCopy {
            node: source.node.to_owned(),
            seq,
            object: Copied {
                path: path.clone(),
                bytes: data.len() as u64,
                sha256: sha256(&data),
            },
        };
        dest.store
            .put_durable(
                &ObjectPath::from(format!("backups/{id}/{path}")),
                Bytes::from(data),
            )
            .await?;
        wal_copies.push(copy);
    }
    let record = BackupRecord {
        id: id.to_owned(),
        source: source.store.location.clone(),
        node: source.node.to_owned(),
        started,
        finished: Utc::now(),
        manifests,
        files,
        meta,
        wal: wal_copies,
        counts: counts
            .into_iter()
            .map(|((project_id, date), events)| DayCount {
                project_id,
                date,
                events,
            })
            .collect(),
        copied_files,
        copied_bytes,
    };
    let data = serde_json::to_vec_pretty(&record).expect("record serializes");
    dest.store
        .create_durable(&Destination::record_path(id), Bytes::from(data))
        .await?;
    tracing::info!(
        id,
        files = record.files.len(),
        copied = copied_files,
        copied_bytes,
        wal_segments = record.wal.len(),
        "backup created"
    );
    Ok(record)
}

/// What `verify` checked.
#[derive(Debug, Clone, Serialize)]
pub struct VerifyReport {
    pub id: String,
    pub objects: usize,
    pub bytes: u64,
}

/// Reads every object a backup names and compares sizes and checksums.
pub async fn verify(dest: &Destination, id: &str, interactive: bool) -> Result<VerifyReport> {
    let record = dest.record(id).await?;
    let mut objects: Vec<(String, &Copied)> = record
        .files
        .iter()
        .map(|f| (format!("files/{}", f.path), f))
        .collect();
    objects.extend(
        record
            .meta
            .iter()
            .map(|f| (format!("backups/{}/{}", record.id, f.path), f)),
    );
    objects.extend(record.wal.iter().map(|w| {
        (
            format!("backups/{}/{}", record.id, w.object.path),
            &w.object,
        )
    }));
    let progress = Progress::new(
        "verify",
        objects.len() as u64,
        record.total_bytes(),
        interactive,
    );
    let mut problems = Vec::new();
    for (path, expected) in &objects {
        match dest.store.get(&ObjectPath::from(path.as_str())).await {
            Ok(data) => {
                if data.len() as u64 != expected.bytes {
                    problems.push(format!(
                        "{path}: {} bytes, expected {}",
                        data.len(),
                        expected.bytes
                    ));
                } else if sha256(&data) != expected.sha256 {
                    problems.push(format!("{path}: checksum mismatch"));
                }
            }
            Err(err) => problems.push(format!("{path}: {err}")),
        }
        progress.file_done(expected.bytes);
    }
    progress.finish();
    if !problems.is_empty() {
        return Err(Error::Verify {
            id: record.id,
            problems,
        });
    }
    Ok(VerifyReport {
        id: record.id.clone(),
        objects: objects.len(),
        bytes: record.total_bytes(),
    })
}

/// What `prune` removed (or, dry, would remove).
#[derive(Debug, Clone, Default, Serialize)]
pub struct PruneReport {
    pub dry_run: bool,
    pub kept: Vec<String>,
    pub removed: Vec<String>,
    /// Objects deleted: shared files no kept backup names, and the removed backups' own.
    pub deleted_objects: usize,
}

/// Applies `keep_last` / `keep_days` (a backup is kept if either keeps it; with neither set,
/// all are kept). Deletes a removed backup's record first, then files no kept record names,
/// and leftovers of interrupted backups. The caller holds the destination lease.
pub async fn prune(
    dest: &Destination,
    keep_last: Option<u32>,
    keep_days: Option<u32>,
    dry_run: bool,
) -> Result<PruneReport> {
    let records = dest.records().await?;
    let now = Utc::now();
    let (kept, removed): (Vec<_>, Vec<_>) =
        records.into_iter().enumerate().partition(|(i, record)| {
            (keep_last.is_none() && keep_days.is_none())
                || keep_last.is_some_and(|n| (*i as u64) < u64::from(n))
                || keep_days.is_some_and(|days| {
                    record.finished > now - chrono::Duration::days(i64::from(days))
                })
        });
    let mut report = PruneReport {
        dry_run,
        kept: kept.iter().map(|(_, r)| r.id.clone()).collect(),
        removed: removed.iter().map(|(_, r)| r.id.clone()).collect(),
        deleted_objects: 0,
    };
    if dry_run {
        return Ok(report);
    }
    for (_, record) in &removed {
        dest.store
            .delete(&Destination::record_path(&record.id))
            .await?;
        report.deleted_objects += 1;
        tracing::info!(id = record.id, "backup removed");
    }
    let kept_ids: std::collections::HashSet<&str> =
        kept.iter().map(|(_, r)| r.id.as_str()).collect();
    // Objects of removed or interrupted backups (no record among the kept ones).
    for object in dest.store.list(&ObjectPath::from("backups")).await? {
        let id = object.location.parts().nth(1);
        if id.is_some_and(|id| !kept_ids.contains(id.as_ref())) {
            dest.store.delete(&object.location).await?;
            report.deleted_objects += 1;
        }
    }
    let needed: std::collections::HashSet<String> = kept
        .iter()
        .flat_map(|(_, r)| r.files.iter().map(|f| format!("files/{}", f.path)))
        .collect();
    for object in dest.store.list(&ObjectPath::from("files")).await? {
        if !needed.contains(object.location.as_ref()) {
            dest.store.delete(&object.location).await?;
            report.deleted_objects += 1;
        }
    }
    Ok(report)
}
