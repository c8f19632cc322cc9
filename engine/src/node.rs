//! One engine node: the parts wired together, start-up recovery, and the flusher.
//!
//! Start-up: open the object store, load this node's newest manifest, replay the WAL segments
//! the manifest does not cover into the buffer, then start the WAL writer on a fresh segment.
//! The flusher turns the buffer into Parquet every `flush.interval` (or sooner when the buffer
//! passes its size thresholds), commits a new manifest, and only then deletes the WAL segments
//! the manifest now covers.

use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use faultline_config::Config;
use tokio_util::sync::CancellationToken;

use crate::alerts::{self, Alerts, AlertsParts, Ruleset, Watch};
use crate::backup::Backups;
use crate::buffer::{Buffer, FlushThresholds};
use crate::grouphash::GroupHashes;
use crate::ingest::Ingest;
use crate::issues;
use crate::lock::WriterLock;
use crate::mail::{self, Mailer};
use crate::people::People;
use crate::people::sso::{self, Sso};
use crate::query::QueryService;
use crate::store::manifest::{self, DataFile, Manifest};
use crate::store::{self, Store};
use crate::tenancy::{self, Projects, Tokens};
use crate::wal::{self, Rotation, Wal, WalOptions};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Store(#[from] store::Error),
    #[error(transparent)]
    Wal(#[from] wal::Error),
    #[error(transparent)]
    Tenancy(#[from] tenancy::Error),
    #[error(transparent)]
    Rollup(#[from] issues::Error),
    #[error(transparent)]
    Lock(#[from] crate::lock::Error),
    #[error(transparent)]
    Query(#[from] crate::query::Error),
    #[error(transparent)]
    Sso(#[from] sso::Error),
    #[error(transparent)]
    Mail(#[from] mail::Error),
    #[error(transparent)]
    Alerts(#[from] alerts::Error),
    #[error(
        "no faultline data in {path}: pass the server's --data-dir (or FAULTLINE_DATA_DIR), or --server to ask a running server"
    )]
    NoData { path: std::path::PathBuf },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What is acknowledged but not yet in the object store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Unflushed {
    /// Events and item rows in memory that no manifest covers yet.
    pub events: usize,
    /// WAL bytes logged but not flushed.
    pub bytes: u64,
}

/// A flush id no rotation uses: `complete_flush` with it only swaps the manifest.
const NO_FLUSH: u64 = u64::MAX;

/// Everything a running node shares between requests and background tasks.
pub struct Node {
    pub config: Config,
    pub store: Store,
    pub projects: Arc<Projects>,
    pub tokens: Arc<Tokens>,
    pub people: Arc<People>,
    /// Single sign-on, when `[auth.oidc]` is set.
    pub sso: Option<Arc<Sso>>,
    /// Outgoing mail, when `[smtp]` is set.
    pub mailer: Option<Arc<Mailer>>,
    pub buffer: Arc<Buffer>,
    pub wal: Wal,
    pub ingest: Arc<Ingest>,
    pub query: Arc<QueryService>,
    /// Alert rules, channels and the delivery worker.
    pub alerts: Arc<Alerts>,
    /// Which issue each grouping hash belongs to, per project.
    pub hashes: Arc<GroupHashes>,
    /// Uploaded source maps, used at ingest and when events are viewed.
    pub sourcemaps: Arc<crate::sourcemaps::SourceMaps>,
    unfinished_flushes: tokio::sync::Mutex<Vec<PendingFlush>>,
    backups: std::sync::OnceLock<Arc<Backups>>,
    /// This process's exclusive hold on the WAL directory.
    _lock: WriterLock,
    /// WAL records quarantined by this node's start-up replay.
    quarantined: AtomicU64,
}

/// A rotation on its way to the manifest. What an attempt wrote and the commit id are kept for
/// the next attempt: a retry reuses the Parquet files and recognises a manifest version that an
/// attempt committed although its caller saw an error (a lost reply), so no event is stored
/// twice.
struct PendingFlush {
    rotation: Rotation,
    commit_id: String,
    /// What an earlier attempt wrote.
    written: Option<Written>,
}

/// The files one flush writes.
#[derive(Debug, Clone, Default)]
struct Written {
    events: Vec<DataFile>,
    rollups: Vec<DataFile>,
    tag_rollups: Vec<DataFile>,
    /// Item files per table name.
    tables: std::collections::BTreeMap<String, Vec<DataFile>>,
}

impl PendingFlush {
    fn new(rotation: Rotation) -> Self {
        Self {
            rotation,
            commit_id: manifest::new_commit_id(),
            written: None,
        }
    }
}

fn thresholds(config: &Config) -> FlushThresholds {
    FlushThresholds {
        max_events: config.flush.max_events,
        max_bytes: config.flush.max_bytes.as_u64() as usize,
    }
}

/// What to do with a record that cannot be replayed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Unreadable {
    /// Copy it to the quarantine directory (the node will delete its segment after a flush).
    Quarantine,
    /// Leave everything as it is (read-only views of a data directory).
    Skip,
}

/// What a replay found.
#[derive(Debug, Default)]
struct Replayed {
    /// (project, event id) of every replayed event.
    ids: Vec<(u64, uuid::Uuid)>,
    /// Item rows replayed.
    rows: usize,
    /// Records that could not be replayed (quarantined or skipped).
    unreadable: u64,
}

/// Replays the WAL segments after `wal_upto` into `buffer`. With `trim`, segments the manifest
/// already covers are deleted. A record that cannot be rebuilt (which ingest's limits should
/// never let through) does not stop the replay: it is handled as `unreadable` says and logged
/// at error level, and every other record is replayed.
#[allow(clippy::too_many_arguments)]
fn replay(
    dir: &Path,
    wal_upto: Option<u64>,
    buffer: &Buffer,
    trim: bool,
    unreadable: Unreadable,
    alerts: Option<&Watch>,
    hashes: Option<&GroupHashes>,
    erased: &HashSet<u64>,
) -> Result<Replayed> {
    let mut replayed = Replayed::default();
    for (seq, path) in wal::replay::pending_segments(dir, wal_upto, trim)? {
        let contents = wal::read_segment(&path)?;
        if contents.torn {
            tracing::warn!(segment = %path.display(), valid_bytes = contents.valid_len,
                "wal segment ends in a torn record (an unacknowledged write); ignoring the tail");
        }
        let mut logged = wal::replay::rebuild(&contents.records, |i, err| {
            replayed.unreadable += 1;
            set_aside(
                dir,
                seq,
                contents.offsets[i],
                &contents.records[i],
                err,
                unreadable,
            )
        })?;
        if !erased.is_empty() {
            leave_out_erased(&mut logged, erased);
        }
        for event in &logged.events {
            replayed.ids.push((event.project_id, event.event.event_id));
            if let Some(hashes) = hashes {
                let grouping = faultline_protocol::grouping::grouping_of(&event.event);
                hashes.observe(event.project_id, event.issue_id, grouping);
            }
        }
        replayed.rows += logged.rows() - logged.events.len();
        buffer.append_logged(&logged);
        if let Some(watch) = alerts {
            // Decided again after a crash: the worker's deliveries are idempotent.
            watch.observe(&logged.events);
        }
    }
    Ok(replayed)
}

/// The ids of erased projects (`tenancy::erasure`), whose rows a replay leaves out.
async fn erased_ids(store: &Store) -> Result<HashSet<u64>> {
    Ok(tenancy::erasure::erasures(store)
        .await?
        .iter()
        .map(|e| e.project_id)
        .collect())
}

/// Drops the rows of erased projects (`tenancy::erasure`) from replayed records.
fn leave_out_erased(logged: &mut wal::replay::Logged, erased: &HashSet<u64>) {
    use datafusion::arrow::array::{Array, BooleanArray, Int64Array};
    logged.events.retain(|e| !erased.contains(&e.project_id));
    for item in &mut logged.items {
        let Ok(column) = item.batch.schema().index_of("project_id") else {
            continue;
        };
        let Some(ids) = item
            .batch
            .column(column)
            .as_any()
            .downcast_ref::<Int64Array>()
        else {
            continue;
        };
        let keep: BooleanArray = ids
            .iter()
            .map(|id| Some(!id.is_some_and(|id| erased.contains(&(id as u64)))))
            .collect();
        if keep.true_count() == keep.len() {
            continue;
        }
        match datafusion::arrow::compute::filter_record_batch(&item.batch, &keep) {
            Ok(kept) => item.batch = kept,
            Err(err) => {
                tracing::warn!(table = item.table.name, cause = %err, "cannot leave out rows of erased projects");
            }
        }
    }
    logged.items.retain(|item| item.batch.num_rows() > 0);
}

/// Quarantines (or, read-only, skips) one record that replay could not read.
fn set_aside(
    dir: &Path,
    seq: u64,
    offset: u64,
    record: &wal::Record,
    err: &wal::ReplayError,
    unreadable: Unreadable,
) -> Result<()> {
    match unreadable {
        Unreadable::Quarantine => {
            let entry = wal::quarantine::quarantine(dir, seq, offset, record, &err.to_string())?;
            tracing::error!(
                segment = seq,
                offset,
                project = record.project_id,
                cause = %err,
                quarantined = %wal::quarantine::dir(dir).display(),
                id = %entry.id,
                "wal record cannot be replayed; quarantined it and replaying the others \
                 (inspect with `faultline wal quarantine show`)"
            );
        }
        Unreadable::Skip => {
            tracing::error!(
                segment = seq,
                offset,
                project = record.project_id,
                cause = %err,
                "wal record cannot be replayed; skipping it"
            );
        }
    }
    Ok(())
}

impl Node {
    /// Opens the node: recovers from the WAL and starts the WAL writer.
    pub async fn open(config: Config) -> Result<Self> {
        let store = Store::open(&config)?;
        Self::open_with_store(config, store).await
    }

    /// Opens the node on an already opened object store.
    pub async fn open_with_store(config: Config, store: Store) -> Result<Self> {
        let lock = WriterLock::acquire(&config.wal_dir(), &config.storage.node_id)?;
        let node_id = config.storage.node_id.clone();
        let manifest = Manifest::load_latest(&store, &node_id).await?;
        let wal_upto = manifest.wal_upto;
        let buffer = Arc::new(Buffer::new(manifest, thresholds(&config)));
        let wal_dir = config.wal_dir();
        // Every secret of the config file's channels must be readable; those of channels made
        // through the API are checked when they are made.
        Ruleset::load(&config.alerts)?;
        let (api_channels, api_rules) = alerts::declared::load(&store).await?;
        let secrets = alerts::declared::load_secrets(&store).await?;
        let ruleset = Ruleset::assemble(&config.alerts, api_channels, api_rules, &secrets);
        let watch = Arc::new(Watch::new(!ruleset.is_empty()));
        let hashes = Arc::new(GroupHashes::new(store.clone(), &node_id));
        let erased = erased_ids(&store).await?;
        let replayed = replay(
            &wal_dir,
            wal_upto,
            &buffer,
            true,
            Unreadable::Quarantine,
            Some(&watch),
            Some(&hashes),
            &erased,
        )?;
        if !replayed.ids.is_empty() || replayed.rows > 0 {
            tracing::info!(
                events = replayed.ids.len(),
                item_rows = replayed.rows,
                "replayed events from the wal"
            );
        }
        let wal = Wal::start(
            &wal_dir,
            WalOptions {
                commit_window: config.wal.commit_window,
                max_batch_bytes: config.wal.max_batch.as_u64() as usize,
                segment_size: config.wal.segment_size.as_u64(),
            },
            Arc::clone(&buffer),
        )?;
        let projects = Arc::new(Projects::load(store.clone(), &config).await?);
        let tokens = Arc::new(Tokens::new(
            store.clone(),
            config.auth.admin_token_file.as_deref(),
        )?);
        let mut people = People::new(store.clone(), config.auth.clone());
        let listen = config.server.admin_listen.unwrap_or(config.server.listen);
        match crate::people::passkeys::relying_party(
            config.server.public_url.as_deref(),
            listen.port(),
        ) {
            Ok(rp) => people.set_relying_party(rp),
            Err(err) => tracing::warn!(cause = %err, "passkeys are off"),
        }
        let people = Arc::new(people);
        tokens.set_owner_rights(owner_rights(&people));
        let sso = match &config.auth.oidc {
            Some(oidc) => Some(Arc::new(Sso::new(
                oidc,
                &config.public_url(),
                store.clone(),
            )?)),
            None => None,
        };
        let mailer = match &config.smtp {
            Some(smtp) => Some(Arc::new(Mailer::new(smtp)?)),
            None => None,
        };
        let ingest = Arc::new(Ingest::new(
            Arc::clone(&projects),
            wal.clone(),
            config.limits.clone(),
            config.wal.max_unflushed.as_u64(),
            Arc::clone(&watch),
            Arc::clone(&hashes),
            store.clone(),
        ));
        let sourcemaps = Arc::new(crate::sourcemaps::SourceMaps::new(
            store.clone(),
            config.sourcemaps.clone(),
        ));
        ingest.set_sourcemaps(Arc::clone(&sourcemaps));
        for (project, id) in replayed.ids {
            ingest.remember(project, id);
        }
        let query = Arc::new(QueryService::new(
            store.clone(),
            Arc::clone(&buffer),
            node_id,
            config.query.clone(),
        )?);
        hashes.set_query(Arc::clone(&query));
        let rules = Arc::clone(&projects);
        query.set_grouping_rules(Arc::new(move |id| rules.grouping(id)));
        let alerts = Arc::new(Alerts::new(AlertsParts {
            watch,
            ruleset,
            config: config.alerts.clone(),
            store: store.clone(),
            query: Arc::clone(&query),
            projects: Arc::clone(&projects),
            mailer: mailer.clone(),
            node: config.storage.node_id.clone(),
            public_url: config.public_url(),
        })?);
        Ok(Self {
            config,
            store,
            projects,
            tokens,
            people,
            sso,
            mailer,
            buffer,
            wal,
            ingest,
            query,
            alerts,
            hashes,
            sourcemaps,
            unfinished_flushes: tokio::sync::Mutex::new(Vec::new()),
            backups: std::sync::OnceLock::new(),
            _lock: lock,
            quarantined: AtomicU64::new(replayed.unreadable),
        })
    }

    /// The events not flushed yet, and the WAL that holds them (for the shutdown log).
    pub fn unflushed(&self) -> Unflushed {
        let snapshot = self.buffer.snapshot();
        let events = snapshot.batches.iter().map(|b| b.num_rows()).sum::<usize>()
            + snapshot
                .items
                .values()
                .flatten()
                .map(|b| b.num_rows())
                .sum::<usize>();
        Unflushed {
            events,
            bytes: self.wal.unflushed_bytes(),
        }
    }

    /// How many WAL records the start-up replay could not read and quarantined (they are
    /// listed by `faultline wal quarantine list`).
    pub fn quarantined_records(&self) -> u64 {
        self.quarantined.load(Ordering::Relaxed)
    }

    /// The backups this node makes (on demand and on schedule).
    pub fn backups(self: &Arc<Self>) -> Arc<Backups> {
        Arc::clone(self.backups.get_or_init(|| Arc::new(Backups::new(self))))
    }

    /// Writes every buffered event to Parquet, commits a manifest and trims the WAL.
    /// Returns the number of events flushed. A flush that failed is retried first, so WAL
    /// segments are only ever trimmed up to a point whose events are all in the manifest.
    /// With nothing to flush, picks up a newer manifest version written by maintenance
    /// (retention or compaction run by another process).
    pub async fn flush(&self) -> Result<usize> {
        let mut stuck = self.unfinished_flushes.lock().await;
        let rotation = self.wal.rotate().await?;
        stuck.push(PendingFlush::new(rotation));
        let mut rows = 0;
        while let Some(pending) = stuck.first_mut() {
            rows += self.write_rotation(pending).await?;
            stuck.remove(0);
        }
        if rows == 0 {
            self.refresh_manifest().await?;
        }
        Ok(rows)
    }

    async fn write_rotation(&self, pending: &mut PendingFlush) -> Result<usize> {
        let rotation = &pending.rotation;
        let rows: usize = rotation.batches.iter().map(|b| b.num_rows()).sum::<usize>()
            + rotation
                .items
                .iter()
                .map(|i| i.batch.num_rows())
                .sum::<usize>();
        let started = std::time::Instant::now();
        if rows > 0 {
            let written = match &pending.written {
                Some(written) => written.clone(),
                None => {
                    let written = self.write_files(rotation).await?;
                    pending.written = Some(written.clone());
                    written
                }
            };
            let base = (*self.buffer.manifest()).clone();
            // Maintenance may have committed a version meanwhile: the edit then reapplies the
            // new files to it, so neither change is lost. An earlier attempt of this flush that
            // landed is recognised by its commit id and not applied again.
            let next = Manifest::edit_once(
                &self.store,
                &self.config.storage.node_id,
                Some(base),
                &pending.commit_id,
                |current| {
                    let mut next = current.with_files(written.events.clone(), rotation.upto);
                    next.rollups.extend(written.rollups.iter().cloned());
                    next.tag_rollups.extend(written.tag_rollups.iter().cloned());
                    for (table, files) in &written.tables {
                        next.tables
                            .entry(table.clone())
                            .or_default()
                            .extend(files.iter().cloned());
                    }
                    Some(next)
                },
            )
            .await?
            .expect("adding files is always a change");
            self.buffer.complete_flush(rotation.flush_id, next);
            crate::metrics::flushed(rows, started);
        }
        self.wal.remove_upto(rotation.upto)?;
        Ok(rows)
    }

    /// Writes the Parquet files of a rotation: events with their issue rollups, and each item
    /// table's rows.
    async fn write_files(&self, rotation: &Rotation) -> Result<Written> {
        let level = self.config.flush.zstd_level;
        let mut written = Written::default();
        if rotation.batches.iter().any(|b| b.num_rows() > 0) {
            written.events =
                store::parquet::write_partitions(&self.store, &rotation.batches, level).await?;
            let rollups = issues::rollup::compute(&rotation.batches)?;
            written.rollups = issues::rollup::write(&self.store, &rollups, level).await?;
            let tags = issues::tag_rollup::compute(&rollups)?;
            written.tag_rollups =
                issues::tag_rollup::write(&self.store, &tags, level, &written.rollups).await?;
        }
        for item in &rotation.items {
            let files = store::parquet::write_item_files(
                &self.store,
                item.table,
                std::slice::from_ref(&item.batch),
                level,
            )
            .await?;
            written
                .tables
                .entry(item.table.name.to_owned())
                .or_default()
                .extend(files);
        }
        Ok(written)
    }

    /// Swaps in the newest version of this node's manifest if another process committed one.
    /// The caller holds the flush lock.
    async fn refresh_manifest(&self) -> Result<()> {
        let node = &self.config.storage.node_id;
        let current = self.buffer.manifest();
        if Manifest::latest_version(&self.store, node).await? > current.version {
            let latest = Manifest::load_latest(&self.store, node).await?;
            tracing::info!(version = latest.version, "manifest changed by maintenance");
            self.buffer.complete_flush(NO_FLUSH, latest);
        }
        Ok(())
    }

    /// Changes this node's manifest outside a flush (retention, compaction), serialized with
    /// the flusher so the buffer's manifest only moves forward. See [`Manifest::edit`].
    pub async fn edit_manifest(
        &self,
        change: impl FnMut(&Manifest) -> Option<Manifest>,
    ) -> store::Result<Option<Manifest>> {
        let _flushes = self.unfinished_flushes.lock().await;
        let base = (*self.buffer.manifest()).clone();
        let edited = Manifest::edit(
            &self.store,
            &self.config.storage.node_id,
            Some(base),
            change,
        )
        .await?;
        if let Some(manifest) = &edited {
            self.buffer.complete_flush(NO_FLUSH, manifest.clone());
        }
        Ok(edited)
    }

    /// Logs the outcomes counted since the last call (as rows of `outcomes`, see
    /// `crate::outcomes`), then flushes: what the scheduled flushes and shutdown run. Returns
    /// the rows flushed.
    pub async fn flush_with_outcomes(&self) -> Result<usize> {
        if let Err(err) = self.ingest.log_outcomes().await {
            tracing::warn!(cause = %err, "cannot log outcomes yet; they are kept for the next flush");
        }
        self.flush().await
    }

    /// Flushes on the configured interval or when the buffer asks, until `shutdown`.
    pub async fn run_flusher(self: Arc<Self>, shutdown: CancellationToken) {
        let interval = self.config.flush.interval;
        let mut failures = 0u32;
        let mut due = tokio::time::Instant::now() + interval;
        loop {
            if failures == 0 {
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    () = tokio::time::sleep_until(due) => {}
                    () = self.buffer.flush_wanted.notified() => {
                        // Appends that arrived while the previous flush ran leave a wake-up
                        // behind; flushing those few rows at once would double the files.
                        if !self.buffer.over_threshold() {
                            continue;
                        }
                    }
                }
            } else {
                // The object store is failing: back off (0.5 s doubling to 30 s) and ignore the
                // buffer's requests meanwhile, or every append would trigger another attempt.
                // The WAL keeps every event; ingest answers 503 once it passes its limit.
                let backoff =
                    Duration::from_millis(500 << failures.min(6)).min(Duration::from_secs(30));
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    () = tokio::time::sleep(backoff) => {}
                }
            }
            match self.flush_with_outcomes().await {
                Ok(0) => failures = 0,
                Ok(rows) => {
                    failures = 0;
                    tracing::debug!(events = rows, "flushed to parquet");
                }
                Err(err) => {
                    failures += 1;
                    tracing::error!(cause = %err, attempt = failures, "flush failed; events stay in the wal");
                }
            }
            due = tokio::time::Instant::now() + interval;
        }
    }
}

/// A read-only view of a data directory for `faultline query`: the manifests plus every
/// acknowledged event still in the WAL. Nothing is written or deleted.
pub async fn open_reader(config: &Config) -> Result<QueryService> {
    let local_objects = config.storage.data_dir.join("objects");
    if config.storage.object_store.is_none()
        && !local_objects.exists()
        && !config.wal_dir().exists()
    {
        return Err(Error::NoData {
            path: config.storage.data_dir.clone(),
        });
    }
    let store = Store::open(config)?;
    let manifest = Manifest::load_latest(&store, &config.storage.node_id).await?;
    let wal_upto = manifest.wal_upto;
    let buffer = Arc::new(Buffer::new(manifest, thresholds(config)));
    let erased = erased_ids(&store).await?;
    replay(
        &config.wal_dir(),
        wal_upto,
        &buffer,
        false,
        Unreadable::Skip,
        None,
        None,
        &erased,
    )?;
    Ok(QueryService::new(
        store,
        buffer,
        config.storage.node_id.clone(),
        config.query.clone(),
    )?)
}

/// A person's API token is checked against what the person may do now (see
/// [`crate::tenancy::tokens`]).
fn owner_rights(people: &Arc<People>) -> crate::tenancy::tokens::OwnerRights {
    let people = Arc::clone(people);
    Arc::new(move |user_id: String| {
        let people = Arc::clone(&people);
        Box::pin(async move {
            match people.current_rights(&user_id).await {
                Ok(rights) => Ok(rights),
                Err(crate::people::Error::Store(e)) => Err(crate::tenancy::Error::Store(e)),
                Err(e) => {
                    tracing::warn!(user = %user_id, error = %e, "cannot read the rights of a token's owner");
                    Err(crate::tenancy::Error::BadToken)
                }
            }
        })
    })
}
