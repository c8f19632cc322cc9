//! Cron monitors: what each monitor expects, and the `missed` and `timeout` check-ins of the
//! runs that did not report.
//!
//! A check-in that carries a `monitor_config` creates or updates its monitor (project and
//! slug). The checker ([`check`]) runs on the node holding the maintenance lease, so on exactly
//! one node: it reads the check-ins that arrived since its last run from the `check_ins` table,
//! updates each monitor (last check-in, open `in_progress` runs, the next expected time), then
//! adds a `missed` check-in (at the expected time) for every expected run that has not reported
//! within `checkin_margin`, and a `timeout` check-in (at the deadline) for every `in_progress`
//! run not closed within `max_runtime`. Those rows are logged in this node's WAL like any other
//! row; the monitors are saved as objects under `meta/monitors/` (see `store/keys.rs`), which
//! only the lease holder writes, and which backups carry with the rest of `meta/`.
//!
//! Rows of other nodes become visible to the checker once those nodes flush: with more than one
//! node, the checker looks `flush.interval` (plus a little) into the past, so a run is never
//! called missed or timed out while its check-in sits in another node's memory. On one node a
//! row becomes visible a moment after its `received` time is stamped, and two check-ins sent
//! together (an SDK's start and end of a short run) may become visible in the other order, so
//! the checker reads again a window before its cursor and skips the rows it has applied already.

pub mod config;
pub mod table;

use std::collections::{BTreeMap, BTreeSet, HashMap};

use bytes::Bytes;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use self::config::MonitorConfig;
use crate::items::check_ins::{self, Synthetic};
use crate::items::{ItemBatch, ItemRow, RowContext};
use crate::node::Node;
use crate::query::ProjectFilter;
use crate::store::manifest::Manifest;
use crate::store::{self, Store, keys};
use crate::wal;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Store(#[from] store::Error),
    #[error("cannot read the new check-ins: {0}")]
    Query(#[from] crate::query::Error),
    #[error("cannot read the new check-ins: {0}")]
    Rows(String),
    #[error("cannot log the missed and timed-out check-ins: {0}")]
    Wal(#[from] wal::Error),
    #[error(transparent)]
    Items(#[from] crate::items::Error),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The empty check-in id, as stored (`check_in_id` of the `check_ins` table).
const NIL_ID: &str = "00000000000000000000000000000000";
/// `in_progress` runs kept open per monitor at most (the oldest are let go).
const MAX_OPEN: usize = 100;
/// Ids of closed runs remembered per monitor, so a late `in_progress` does not reopen them.
const MAX_CLOSED: usize = 200;
/// Missed check-ins one run adds per monitor at most; a longer backlog continues next run.
pub const MAX_MISSED_PER_RUN: usize = 60;
/// Check-ins one run reads at most; the rest are read by the next run.
const MAX_READ: usize = 10_000;
/// How much further than `flush.interval` the checker looks back with several nodes.
const FLUSH_SLACK: chrono::Duration = chrono::Duration::seconds(10);
/// How long after its `received` time a row of this node may still be on its way to the
/// buffer: runs due within it are decided on the next run.
pub const SETTLE: chrono::Duration = chrono::Duration::seconds(2);

/// An `in_progress` run not closed yet.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OpenRun {
    pub check_in_id: String,
    pub started: DateTime<Utc>,
}

/// One monitor as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Monitor {
    pub project_id: u64,
    pub project: String,
    pub slug: String,
    /// The normalized `monitor_config` ([`MonitorConfig::json`]).
    pub config: Value,
    /// When the check-in that set `config` arrived.
    pub config_at: DateTime<Utc>,
    pub created: DateTime<Utc>,
    pub updated: DateTime<Utc>,
    /// `ok`, `error`, `in_progress` (from the latest check-in), `missed` or `timeout`.
    pub status: String,
    pub status_at: DateTime<Utc>,
    pub last_check_in: Option<DateTime<Utc>>,
    pub last_check_in_status: Option<String>,
    pub next_expected: Option<DateTime<Utc>>,
    /// The latest expected time a `missed` check-in was added for.
    pub last_missed: Option<DateTime<Utc>>,
    pub environment: Option<String>,
    pub release: Option<String>,
    pub open: Vec<OpenRun>,
    pub closed: Vec<String>,
}

/// A check-in as the checker reads it from `check_ins`.
#[derive(Debug, Clone, Deserialize)]
pub struct SeenCheckIn {
    pub project_id: u64,
    pub project: String,
    pub monitor_slug: String,
    pub check_in_id: String,
    pub status: String,
    pub at_ms: i64,
    pub received_ms: i64,
    pub environment: Option<String>,
    pub release: Option<String>,
    pub monitor_config: Option<String>,
}

/// A check-in the checker adds, with the monitor it belongs to.
#[derive(Debug, Clone, PartialEq)]
pub struct Added {
    pub project_id: u64,
    pub project: String,
    pub slug: String,
    pub status: &'static str,
    pub check_in_id: uuid::Uuid,
    pub at: DateTime<Utc>,
    pub expected: Option<DateTime<Utc>>,
    pub duration: Option<f64>,
    pub environment: Option<String>,
    pub release: Option<String>,
}

impl Monitor {
    fn config(&self) -> Option<MonitorConfig> {
        MonitorConfig::parse(&self.config).ok()
    }

    /// The next expected time after the latest check-in or missed run.
    fn reschedule(&mut self, config: &MonitorConfig) {
        let base = self.last_check_in.max(self.last_missed);
        self.next_expected = base.and_then(|t| config.next_after(t));
    }

    /// Takes `status` if it is at least as recent; at the same time, a run's end (or the
    /// checker's verdict) wins over its start, whatever order they are read in.
    fn set_status(&mut self, status: &str, at: DateTime<Utc>) {
        let starts = |s: &str| s == "in_progress" || s == "active";
        if at > self.status_at
            || (at == self.status_at && (starts(&self.status) || !starts(status)))
        {
            self.status = status.to_owned();
            self.status_at = at;
        }
    }

    fn close(&mut self, id: &str) {
        self.open.retain(|r| r.check_in_id != id);
        if !self.closed.iter().any(|c| c == id) {
            self.closed.push(id.to_owned());
            if self.closed.len() > MAX_CLOSED {
                self.closed.remove(0);
            }
        }
    }
}

/// The monitors by project and slug.
pub type Monitors = BTreeMap<(u64, String), Monitor>;

/// The monitor config a check-in brings, if any.
fn config_of(seen: &SeenCheckIn) -> Option<MonitorConfig> {
    seen.monitor_config
        .as_deref()
        .and_then(|c| serde_json::from_str::<Value>(c).ok())
        .and_then(|c| MonitorConfig::parse(&c).ok())
}

/// Creates the monitor of a check-in that brings a config, if there is none yet; true when it
/// did. Its check-ins are then [`apply`]'d in the order they were received, also those
/// received before this one.
pub fn create(monitors: &mut Monitors, seen: &SeenCheckIn, now: DateTime<Utc>) -> bool {
    match (config_of(seen), DateTime::from_timestamp_millis(seen.at_ms)) {
        (Some(config), Some(at)) => insert_new(monitors, seen, &config, at, now),
        _ => false,
    }
}

/// [`create`] with the check-in's config and time worked out already.
fn insert_new(
    monitors: &mut Monitors,
    seen: &SeenCheckIn,
    config: &MonitorConfig,
    at: DateTime<Utc>,
    now: DateTime<Utc>,
) -> bool {
    let key = (seen.project_id, seen.monitor_slug.clone());
    if monitors.contains_key(&key) {
        return false;
    }
    monitors.insert(
        key,
        Monitor {
            project_id: seen.project_id,
            project: seen.project.clone(),
            slug: seen.monitor_slug.clone(),
            config: config.json.clone(),
            config_at: at,
            created: now,
            updated: now,
            status: "active".to_owned(),
            status_at: DateTime::<Utc>::MIN_UTC,
            last_check_in: None,
            last_check_in_status: None,
            next_expected: None,
            last_missed: None,
            environment: None,
            release: None,
            open: Vec::new(),
            closed: Vec::new(),
        },
    );
    true
}

/// Takes one check-in into the monitors: creates or updates its monitor when it has a config;
/// a check-in of a slug without a monitor is only kept as a row. Applying a check-in twice
/// changes nothing, whatever the order. Returns whether a monitor changed.
pub fn apply(monitors: &mut Monitors, seen: &SeenCheckIn, now: DateTime<Utc>) -> bool {
    let Some(at) = DateTime::from_timestamp_millis(seen.at_ms) else {
        return false;
    };
    let parsed = config_of(seen);
    let created = parsed
        .as_ref()
        .is_some_and(|config| insert_new(monitors, seen, config, at, now));
    let key = (seen.project_id, seen.monitor_slug.clone());
    let before = monitors.get(&key).cloned().filter(|_| !created);
    let Some(monitor) = monitors.get_mut(&key) else {
        return false;
    };
    if let Some(config) = &parsed
        && at >= monitor.config_at
    {
        monitor.config = config.json.clone();
        monitor.config_at = at;
    }
    // the end of a run comes after its start, whatever times the two were stamped with (an SDK
    // sends them without waiting, so the end may be received first)
    let closes = match seen.status.as_str() {
        "in_progress" => None,
        _ if seen.check_in_id == NIL_ID => monitor.open.last(),
        _ => monitor
            .open
            .iter()
            .find(|r| r.check_in_id == seen.check_in_id),
    };
    let at = closes.map_or(at, |run| at.max(run.started));
    // the start of a run already closed says nothing new about the monitor
    let stale_start = seen.status == "in_progress" && monitor.closed.contains(&seen.check_in_id);
    let later = !stale_start
        && monitor.last_check_in.is_none_or(|last| {
            at > last
                || (at == last && monitor.last_check_in_status.as_deref() == Some("in_progress"))
        });
    if later {
        monitor.last_check_in = Some(at);
        monitor.last_check_in_status = Some(seen.status.clone());
        monitor.environment = seen.environment.clone();
        monitor.release = seen.release.clone();
    }
    match seen.status.as_str() {
        "in_progress" => {
            let known = monitor.closed.contains(&seen.check_in_id)
                || monitor
                    .open
                    .iter()
                    .any(|r| r.check_in_id == seen.check_in_id);
            if !known {
                monitor.open.push(OpenRun {
                    check_in_id: seen.check_in_id.clone(),
                    started: at,
                });
                monitor.open.sort_by_key(|r| r.started);
                if monitor.open.len() > MAX_OPEN {
                    monitor.open.remove(0);
                }
            }
        }
        // the empty id closes the latest open run (Sentry's rule for SDKs and for HTTP
        // check-ins sent without an id)
        _ if seen.check_in_id == NIL_ID => {
            if let Some(run) = monitor.open.pop() {
                monitor.close(&run.check_in_id);
            }
        }
        _ => monitor.close(&seen.check_in_id),
    }
    if !stale_start {
        monitor.set_status(&seen.status, at);
    }
    if let Some(config) = monitor.config() {
        monitor.reschedule(&config);
    }
    let changed = before.as_ref() != Some(monitor);
    if changed {
        monitor.updated = now;
    }
    changed
}

/// The `timeout` and `missed` check-ins due by `until` (the checker's now, less how far it
/// cannot see yet), and the monitor after them.
pub fn due(monitor: &mut Monitor, until: DateTime<Utc>) -> Vec<Added> {
    let Some(config) = monitor.config() else {
        return Vec::new();
    };
    let mut added = Vec::new();
    let max_runtime = chrono::Duration::minutes(i64::from(config.max_runtime));
    let timed_out: Vec<OpenRun> = monitor
        .open
        .iter()
        .filter(|r| r.started + max_runtime <= until)
        .cloned()
        .collect();
    for run in timed_out {
        let deadline = run.started + max_runtime;
        monitor.close(&run.check_in_id);
        monitor.set_status("timeout", deadline);
        added.push(Added {
            project_id: monitor.project_id,
            project: monitor.project.clone(),
            slug: monitor.slug.clone(),
            status: "timeout",
            check_in_id: uuid::Uuid::parse_str(&run.check_in_id)
                .unwrap_or_else(|_| derived_id(monitor, deadline)),
            at: deadline,
            expected: None,
            duration: Some(max_runtime.num_seconds() as f64),
            environment: monitor.environment.clone(),
            release: monitor.release.clone(),
        });
    }
    let margin = chrono::Duration::minutes(i64::from(config.checkin_margin));
    let mut missed = 0;
    while let Some(expected) = monitor.next_expected
        && expected + margin <= until
        && missed < MAX_MISSED_PER_RUN
    {
        monitor.last_missed = Some(expected);
        monitor.set_status("missed", expected);
        monitor.reschedule(&config);
        missed += 1;
        added.push(Added {
            project_id: monitor.project_id,
            project: monitor.project.clone(),
            slug: monitor.slug.clone(),
            status: "missed",
            check_in_id: derived_id(monitor, expected),
            at: expected,
            expected: Some(expected),
            duration: None,
            environment: monitor.environment.clone(),
            release: monitor.release.clone(),
        });
    }
    added
}

/// The id of a check-in the checker adds at `at`: the same for the same monitor and time, so a
/// run repeated after a failure writes a row a query can recognise as the same.
fn derived_id(monitor: &Monitor, at: DateTime<Utc>) -> uuid::Uuid {
    let digest = Sha256::digest(
        format!(
            "{}/{}/{}",
            monitor.project_id,
            monitor.slug,
            at.timestamp_millis()
        )
        .as_bytes(),
    );
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    uuid::Builder::from_random_bytes(bytes).into_uuid()
}

/// Where the checker stopped reading `check_ins`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Cursor {
    /// The latest `received` read (milliseconds).
    received_ms: i64,
    /// The rows applied whose `received` is within the window read again, so they are not
    /// applied twice (a check-in closing the latest run must close one run, not two).
    #[serde(default)]
    applied: Vec<Applied>,
}

/// A check-in the checker has applied, as it recognises it when read again.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
struct Applied {
    received_ms: i64,
    key: String,
}

impl Applied {
    fn of(seen: &SeenCheckIn) -> Self {
        Applied {
            received_ms: seen.received_ms,
            key: format!(
                "{}/{}/{}/{}/{}",
                seen.project_id, seen.monitor_slug, seen.check_in_id, seen.status, seen.at_ms
            ),
        }
    }
}

/// Every monitor of the store, and the checker's cursor.
async fn load(store: &Store) -> Result<(Monitors, Cursor)> {
    let mut monitors = Monitors::new();
    let mut cursor = Cursor::default();
    let cursor_path = keys::monitors_cursor();
    for object in store.list(&keys::monitors_prefix()).await? {
        if object.location == cursor_path {
            cursor = store.get_json(&object.location).await?;
            continue;
        }
        match store.get_json::<Monitor>(&object.location).await {
            Ok(monitor) => {
                monitors.insert((monitor.project_id, monitor.slug.clone()), monitor);
            }
            Err(err) => {
                tracing::warn!(path = %object.location, cause = %err, "a monitor object cannot be read; skipped")
            }
        }
    }
    Ok((monitors, cursor))
}

/// The monitors `projects` may see, by project and slug.
pub async fn list(store: &Store, projects: &ProjectFilter) -> Result<Vec<Monitor>> {
    let (monitors, _) = load(store).await?;
    Ok(monitors
        .into_values()
        .filter(|m| projects.allows(m.project_id))
        .collect())
}

/// What one run of the checker did.
#[derive(Debug, Default, Clone, PartialEq)]
pub struct Report {
    /// Check-ins read and applied (a row read again is not counted again).
    pub read: usize,
    pub monitors_changed: usize,
    pub added: Vec<Added>,
}

/// One run of the checker at `now` (see the module's description). Runs on the lease holder.
pub async fn check(node: &Node, now: DateTime<Utc>) -> Result<Report> {
    let store = &node.store;
    let (mut monitors, mut cursor) = load(store).await?;
    let other_nodes = Manifest::load_all(store)
        .await?
        .iter()
        .any(|m| m.node != node.config.storage.node_id);
    let lag = if other_nodes {
        chrono::Duration::from_std(node.config.flush.interval).unwrap_or_default() + FLUSH_SLACK
    } else {
        SETTLE
    };
    let from = cursor.received_ms - (lag + FLUSH_SLACK).num_milliseconds();
    let sql = format!(
        "SELECT project_id, project, monitor_slug, check_in_id, status, \
                CAST(timestamp AS BIGINT) AS at_ms, CAST(received AS BIGINT) AS received_ms, \
                environment, release, monitor_config \
         FROM check_ins WHERE NOT synthetic AND received >= to_timestamp_millis({from}) \
         ORDER BY received LIMIT {limit}",
        // the rows applied already are read again: room for them and `MAX_READ` new ones
        limit = MAX_READ + cursor.applied.len()
    );
    let output = node.query.run(&ProjectFilter::All, &sql).await?;
    let applied: std::collections::HashSet<Applied> = cursor.applied.iter().cloned().collect();
    let seen: Vec<SeenCheckIn> = rows_of(&output.batches)?
        .into_iter()
        .filter(|s| !applied.contains(&Applied::of(s)))
        .collect();
    let mut changed: Vec<(u64, String)> = Vec::new();
    let mut read = 0;
    // the end of a run may be received before the start that brings its monitor's config: the
    // monitors of the rows read are created first, then the rows are applied in the order they
    // were received; a check-in of a monitor not known yet is read again (and applied then)
    // while it is within the window read again
    let limit = node.config.limits.max_monitors_per_project;
    let mut per_project: HashMap<u64, usize> = HashMap::new();
    for (project_id, _) in monitors.keys() {
        *per_project.entry(*project_id).or_default() += 1;
    }
    // project -> (name, slugs refused), to warn once per project and run
    let mut over_limit: BTreeMap<u64, (String, BTreeSet<String>)> = BTreeMap::new();
    // in the order received, rows received together by slug: which monitors a limit leaves
    // out does not depend on the order the query returned them in
    let mut by_arrival: Vec<&SeenCheckIn> = seen.iter().collect();
    by_arrival
        .sort_by(|a, b| (a.received_ms, &a.monitor_slug).cmp(&(b.received_ms, &b.monitor_slug)));
    for check_in in by_arrival {
        let count = per_project.entry(check_in.project_id).or_default();
        let key = (check_in.project_id, check_in.monitor_slug.clone());
        if *count >= limit && !monitors.contains_key(&key) {
            if check_in.monitor_config.is_some() {
                over_limit
                    .entry(check_in.project_id)
                    .or_insert_with(|| (check_in.project.clone(), BTreeSet::new()))
                    .1
                    .insert(check_in.monitor_slug.clone());
            }
            continue;
        }
        if create(&mut monitors, check_in, now) {
            *count += 1;
            changed.push(key);
        }
    }
    for (project, slugs) in over_limit.values() {
        tracing::warn!(
            project = %project,
            limit,
            refused = slugs.len(),
            first = %slugs.first().map(String::as_str).unwrap_or_default(),
            "check-ins of new cron monitors kept without a monitor: the project has \
             limits.max_monitors_per_project monitors"
        );
    }
    for check_in in &seen {
        cursor.received_ms = cursor.received_ms.max(check_in.received_ms);
        if !monitors.contains_key(&(check_in.project_id, check_in.monitor_slug.clone())) {
            continue;
        }
        if apply(&mut monitors, check_in, now) {
            changed.push((check_in.project_id, check_in.monitor_slug.clone()));
        }
        cursor.applied.push(Applied::of(check_in));
        read += 1;
    }
    let window = cursor.received_ms - (lag + FLUSH_SLACK).num_milliseconds();
    cursor.applied.retain(|a| a.received_ms >= window);
    let until = now - lag;
    let mut added = Vec::new();
    for (key, monitor) in &mut monitors {
        let due = due(monitor, until);
        if !due.is_empty() {
            monitor.updated = now;
            changed.push(key.clone());
            added.extend(due);
        }
    }
    // Logged before the monitors are saved: a failure in between adds the same rows (same ids)
    // again on the next run rather than losing them.
    log_added(node, &added, now).await?;
    changed.sort();
    changed.dedup();
    for key in &changed {
        if let Some(monitor) = monitors.get(key) {
            let json = serde_json::to_vec(monitor).unwrap_or_default();
            store
                .put_durable(
                    &keys::monitor(monitor.project_id, &monitor.slug),
                    Bytes::from(json),
                )
                .await?;
        }
    }
    if !seen.is_empty() {
        let json = serde_json::to_vec(&cursor).unwrap_or_default();
        store
            .put_durable(&keys::monitors_cursor(), Bytes::from(json))
            .await?;
    }
    for added in &added {
        tracing::info!(project = %added.project, monitor = %added.slug, status = added.status,
            at = %added.at, "a monitored job did not report in time");
    }
    Ok(Report {
        read,
        monitors_changed: changed.len(),
        added,
    })
}

/// The rows of the checker's query.
fn rows_of(batches: &[datafusion::arrow::array::RecordBatch]) -> Result<Vec<SeenCheckIn>> {
    let mut writer = datafusion::arrow::json::ArrayWriter::new(Vec::new());
    for batch in batches {
        writer
            .write(batch)
            .map_err(|e| Error::Rows(e.to_string()))?;
    }
    writer.finish().map_err(|e| Error::Rows(e.to_string()))?;
    let json = writer.into_inner();
    if json.is_empty() {
        return Ok(Vec::new());
    }
    serde_json::from_slice(&json).map_err(|e| Error::Rows(e.to_string()))
}

/// Logs the added check-ins in this node's WAL (and so its buffer).
async fn log_added(node: &Node, added: &[Added], now: DateTime<Utc>) -> Result<()> {
    if added.is_empty() {
        return Ok(());
    }
    let mut rows: Vec<ItemRow> = Vec::with_capacity(added.len());
    for a in added {
        rows.extend(check_ins::synthetic_row(
            &Synthetic {
                slug: &a.slug,
                status: a.status,
                check_in_id: a.check_in_id,
                at: a.at,
                expected: a.expected,
                duration: a.duration,
                environment: a.environment.as_deref(),
                release: a.release.as_deref(),
            },
            RowContext {
                project_id: a.project_id,
                project: &a.project,
                received: now,
                scrubber: None,
            },
        ));
    }
    let mut data = Vec::new();
    for (row, a) in rows.iter().zip(added) {
        wal::encode(&mut data, row.wal_fields(&a.project));
    }
    let batch = check_ins::TABLE.decode(rows.iter().map(|r| r.json.as_slice()))?;
    let logged = wal::Logged {
        events: Vec::new(),
        items: vec![ItemBatch {
            table: &check_ins::TABLE,
            batch,
        }],
    };
    node.wal.append(data, logged).await?;
    Ok(())
}

#[cfg(test)]
mod tests;
