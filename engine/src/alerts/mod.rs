//! Alerts: rules decide, an outbox in the object store remembers, a worker delivers.
//!
//! The ingest path only looks each event's issue up in [`Watch`], an in-memory map of the
//! issues this process knows, and hands the first event of an issue it does not know (or the
//! first event after a resolve) to the worker as a [`Candidate`]. The worker decides with the
//! `issues` table, turns each decision into deliveries whose ids are derived from the decision
//! (so replays and other nodes write the same create-only objects), and sends them with retries.
//! docs/alerts.md describes the design and what users see.

pub mod declared;
pub mod flood;
pub mod guard;
#[cfg(test)]
mod node_tests;
pub mod outbox;
pub mod payload;
pub mod rules;
pub(crate) mod table;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use chrono::{SecondsFormat, Utc};
use datafusion::arrow::array::{Array, AsArray, RecordBatch};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Int64Type};
use faultline_config::{AlertsConfig, ChannelKind, RuleConfig, WebhookFormat};
use parking_lot::{Mutex, RwLock};
use tokio::sync::{Notify, mpsc};
use tokio_util::sync::CancellationToken;

use crate::events::StoredEvent;
use crate::mail::Mailer;
use crate::query::{ProjectFilter, QueryService};
use crate::store::{self, Store};
use crate::tenancy::Projects;
use outbox::{Attempt, Delivery, Fired, Status};
use payload::AlertContext;
pub use rules::{Channel, Ruleset, Trigger};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("alert channel {channel}: {field}: {message}")]
    Secret {
        channel: String,
        field: String,
        message: String,
    },
    #[error(transparent)]
    Store(#[from] store::Error),
    #[error("cannot read issues for alerts: {0}")]
    Query(#[from] Box<crate::query::Error>),
    #[error("cannot read projects for alerts: {0}")]
    Tenancy(#[from] crate::tenancy::Error),
    #[error("cannot read the issues query's answer: column {0} is missing or of another type")]
    Column(&'static str),
    #[error("no alert {kind} is named {name:?}")]
    NotFound { kind: &'static str, name: String },
    #[error("alert {kind} {name:?} is declared in the config file: change it there")]
    Declared { kind: &'static str, name: String },
    #[error("an alert {kind} named {name:?} exists already")]
    Exists { kind: &'static str, name: String },
    #[error("alert channel {channel:?} is used by rule {rule:?}: remove it from the rule first")]
    InUse { channel: String, rule: String },
    #[error("{field}: {message}")]
    Invalid { field: String, message: String },
    #[error("cannot set up the HTTP client for alerts: {0}")]
    Client(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl From<crate::query::Error> for Error {
    fn from(err: crate::query::Error) -> Self {
        Self::Query(Box::new(err))
    }
}

/// An event the worker must look at: the first one of an issue this process did not know, or
/// the first one of a resolved issue received after it was resolved.
#[derive(Debug, Clone)]
pub struct Candidate {
    pub project_id: u64,
    pub project: String,
    pub issue_id: i64,
    pub event_id: String,
    pub timestamp_ms: i64,
    pub received_ms: i64,
    pub level: String,
    pub environment: Option<String>,
    pub release: Option<String>,
    pub title: String,
    pub culprit: Option<String>,
    /// The event's tags (for the rules' tag filters).
    pub tags: Vec<(String, String)>,
}

impl Candidate {
    fn of(event: &StoredEvent) -> Self {
        let e = &event.event;
        Self {
            project_id: event.project_id,
            project: event.project.clone(),
            issue_id: event.issue_id,
            event_id: e.event_id.simple().to_string(),
            timestamp_ms: e.timestamp.timestamp_millis(),
            received_ms: e.received.timestamp_millis(),
            level: e.level.clone(),
            environment: e.environment.clone(),
            release: e.release.clone(),
            title: e.title.clone(),
            culprit: e.culprit.clone(),
            tags: e.tags.clone(),
        }
    }
}

/// What the filters need beyond an [`AlertContext`]: the event's tags and the issue's age and
/// size.
#[derive(Debug, Clone, Copy, Default)]
struct IssueFacts<'a> {
    tags: &'a [(String, String)],
    first_seen_ms: Option<i64>,
    event_count: Option<u64>,
}

/// What this process knows of an issue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Known {
    Open,
    /// Resolved at this time (ms).
    Resolved(i64),
}

/// Candidates waiting for the worker at most; beyond, a new issue is decided with its next
/// event (memory stays bounded when every event opens an issue).
const MAX_WAITING: usize = 100_000;

/// Known issues per project.
type KnownMap = HashMap<u64, HashMap<i64, Known>>;

/// The ingest side: which events are candidates. Cheap: a read lock and a hash lookup per
/// event; a candidate costs a few string copies and a channel send.
pub struct Watch {
    enabled: std::sync::atomic::AtomicBool,
    known: RwLock<KnownMap>,
    tx: mpsc::Sender<Candidate>,
    rx: Mutex<Option<mpsc::Receiver<Candidate>>>,
    /// Candidates refused because the worker was [`MAX_WAITING`] behind.
    refused: std::sync::atomic::AtomicU64,
}

impl Watch {
    /// A watch that sends candidates only when `enabled` (some rule exists).
    pub fn new(enabled: bool) -> Self {
        let (tx, rx) = mpsc::channel(MAX_WAITING);
        Self {
            enabled: std::sync::atomic::AtomicBool::new(enabled),
            known: RwLock::new(HashMap::new()),
            tx,
            rx: Mutex::new(Some(rx)),
            refused: std::sync::atomic::AtomicU64::new(0),
        }
    }

    fn is_candidate(known: &KnownMap, event: &StoredEvent) -> bool {
        match known
            .get(&event.project_id)
            .and_then(|issues| issues.get(&event.issue_id))
        {
            Some(Known::Open) => false,
            Some(Known::Resolved(at)) => event.event.received.timestamp_millis() > *at,
            None => true,
        }
    }

    /// The candidates among events about to be logged (nothing is marked yet: see
    /// [`Self::commit`]). Allocates only when there is one.
    pub fn candidates(&self, events: &[StoredEvent]) -> Vec<Candidate> {
        if !self.enabled.load(std::sync::atomic::Ordering::Relaxed) {
            return Vec::new();
        }
        let known = self.known.read();
        events
            .iter()
            .filter(|e| Self::is_candidate(&known, e))
            .map(Candidate::of)
            .collect()
    }

    /// Hands the candidates of logged events to the worker and marks their issues open, so
    /// the next events of the same issue are not candidates.
    pub fn commit(&self, candidates: Vec<Candidate>) {
        if candidates.is_empty() {
            return;
        }
        let mut known = self.known.write();
        for candidate in candidates {
            let issues = known.entry(candidate.project_id).or_default();
            match issues.get(&candidate.issue_id) {
                Some(Known::Open) => continue,
                Some(Known::Resolved(at)) if candidate.received_ms <= *at => continue,
                _ => {}
            }
            let issue_id = candidate.issue_id;
            match self.tx.try_send(candidate) {
                // Marked only once handed over: a refused one is a candidate again with the
                // issue's next event.
                Ok(()) => {
                    issues.insert(issue_id, Known::Open);
                }
                Err(mpsc::error::TrySendError::Full(_)) => {
                    let refused = self
                        .refused
                        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    if refused.is_multiple_of(10_000) {
                        tracing::warn!(
                            waiting = MAX_WAITING,
                            refused = refused + 1,
                            "the alert worker is behind: new issues wait for their next event"
                        );
                    }
                }
                // The worker is gone (shutting down): the WAL replay decides at the next start.
                Err(mpsc::error::TrySendError::Closed(_)) => {}
            }
        }
    }

    /// Both steps at once, for events already logged (the WAL replay).
    pub fn observe(&self, events: &[StoredEvent]) {
        let candidates = self.candidates(events);
        self.commit(candidates);
    }
}

/// A delivery waiting for its next attempt.
struct Queued {
    delivery: Arc<Delivery>,
    attempt: u32,
    due: tokio::time::Instant,
}

/// What sending once gave.
#[derive(Debug, Default)]
struct Outcome {
    code: Option<u16>,
    error: Option<String>,
    retry_after: Option<Duration>,
    /// The error cannot go away by retrying (e.g. a target the SSRF guard refuses).
    permanent: bool,
}

/// The alert worker and the rules in force.
pub struct Alerts {
    watch: Arc<Watch>,
    ruleset: RwLock<Arc<Ruleset>>,
    config: AlertsConfig,
    store: Store,
    query: Arc<QueryService>,
    projects: Arc<Projects>,
    mailer: Option<Arc<Mailer>>,
    node: String,
    public_url: String,
    http: reqwest::Client,
    queue: Mutex<Vec<Queued>>,
    queued: Mutex<HashSet<String>>,
    wake: Notify,
    /// Projects whose issues are loaded into the watch.
    loaded: Mutex<HashSet<u64>>,
    /// Regressions already handled: (project, issue, time it was resolved).
    regressions: Mutex<HashSet<(u64, i64, i64)>>,
    /// Ignores that ran out and were handled: (project, issue, time the ignore was set).
    unmuted: Mutex<HashSet<(u64, i64, i64)>>,
    /// Sends per channel in the last hour (`max_per_hour`), of this node.
    budgets: Mutex<flood::Budgets>,
    /// Email digests by recipient.
    digests: Mutex<HashMap<String, Digest>>,
    /// Email deliveries waiting for digests, by delivery id.
    held: Mutex<HashMap<String, Held>>,
}

/// One recipient's email digest.
#[derive(Debug, Default)]
struct Digest {
    /// When the last mail to them went out (ms; 0: never).
    last_sent_ms: i64,
    /// Deliveries held for the next digest.
    held: Vec<String>,
}

/// An email delivery some recipients get by digest.
struct Held {
    delivery: Arc<Delivery>,
    attempt: u32,
    /// Digests still to send.
    remaining: usize,
    /// The first error of its mails.
    error: Option<String>,
}

/// Deliveries sent at once.
const CONCURRENT_SENDS: usize = 8;
/// Candidates decided together.
const DECIDE_BATCH: usize = 1000;

/// Everything an [`Alerts`] is built from.
pub struct AlertsParts {
    pub watch: Arc<Watch>,
    pub ruleset: Ruleset,
    pub config: AlertsConfig,
    pub store: Store,
    pub query: Arc<QueryService>,
    pub projects: Arc<Projects>,
    pub mailer: Option<Arc<Mailer>>,
    pub node: String,
    pub public_url: String,
}

impl Alerts {
    pub fn new(parts: AlertsParts) -> Result<Self> {
        // Redirects are not followed: a receiver answers, or the attempt fails.
        let mut http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(parts.config.timeout)
            .user_agent(concat!("faultline/", env!("CARGO_PKG_VERSION")));
        if !parts.config.allow_private_targets {
            // Every name is resolved, checked and connected to by the guard.
            http = http.dns_resolver(Arc::new(guard::GuardedResolver));
        }
        let http = http.build().map_err(|e| Error::Client(error_chain(&e)))?;
        Ok(Self {
            watch: parts.watch,
            ruleset: RwLock::new(Arc::new(parts.ruleset)),
            config: parts.config,
            store: parts.store,
            query: parts.query,
            projects: parts.projects,
            mailer: parts.mailer,
            node: parts.node,
            public_url: parts.public_url.trim_end_matches('/').to_owned(),
            http,
            queue: Mutex::new(Vec::new()),
            queued: Mutex::new(HashSet::new()),
            wake: Notify::new(),
            loaded: Mutex::new(HashSet::new()),
            regressions: Mutex::new(HashSet::new()),
            unmuted: Mutex::new(HashSet::new()),
            budgets: Mutex::new(flood::Budgets::default()),
            digests: Mutex::new(HashMap::new()),
            held: Mutex::new(HashMap::new()),
        })
    }

    /// The rules and channels in force.
    pub fn ruleset(&self) -> Arc<Ruleset> {
        Arc::clone(&self.ruleset.read())
    }

    /// Resumes this node's unfinished deliveries, then decides, delivers and evaluates the
    /// timed rules until `shutdown`.
    pub async fn run(self: Arc<Self>, shutdown: CancellationToken) {
        let Some(mut rx) = self.watch.rx.lock().take() else {
            return;
        };
        let mut failures = 0u32;
        while let Err(err) = self.resume(false).await {
            failures += 1;
            tracing::error!(cause = %err, attempt = failures, "cannot read the alert outbox; retrying");
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(retry_pause(failures)) => {}
            }
        }
        let deliver = tokio::spawn(Arc::clone(&self).deliver_loop(shutdown.clone()));
        let tick = tokio::spawn(Arc::clone(&self).tick_loop(shutdown.clone()));
        loop {
            let first = tokio::select! {
                () = shutdown.cancelled() => break,
                c = rx.recv() => match c { Some(c) => c, None => break },
            };
            let mut batch = vec![first];
            while batch.len() < DECIDE_BATCH {
                match rx.try_recv() {
                    Ok(c) => batch.push(c),
                    Err(_) => break,
                }
            }
            let mut failures = 0u32;
            while let Err(err) = self.decide(&batch).await {
                failures += 1;
                tracing::error!(cause = %err, attempt = failures, candidates = batch.len(),
                    "cannot decide alerts; retrying");
                tokio::select! {
                    () = shutdown.cancelled() => return,
                    () = tokio::time::sleep(retry_pause(failures)) => {}
                }
            }
        }
        let _ = deliver.await;
        let _ = tick.await;
    }

    /// Queues every delivery this node created that has no final attempt yet; with
    /// `takeover`, also those of other nodes untouched for `alerts.takeover_after` (a node that
    /// is gone). Deliveries already queued here are left alone.
    async fn resume(&self, takeover: bool) -> Result<()> {
        let listing = self
            .store
            .list(&object_store::path::Path::from("alerts"))
            .await?;
        // Per delivery: the last attempt's number, whether one was final, when it was touched.
        let mut attempts: HashMap<String, (u32, bool, chrono::DateTime<Utc>)> = HashMap::new();
        let mut entries = Vec::new();
        for meta in &listing {
            let owned: Vec<String> = meta
                .location
                .parts()
                .map(|p| p.as_ref().to_owned())
                .collect();
            let parts: Vec<&str> = owned.iter().map(String::as_str).collect();
            match parts.as_slice() {
                ["alerts", _, "outbox", _] => entries.push(meta.location.clone()),
                ["alerts", _, "attempts", id, _] => {
                    let attempt: Attempt = self.store.get_json(&meta.location).await?;
                    if !takeover
                        && attempt.attempt == 1
                        && attempt.trigger != Trigger::Resolved.as_str()
                        && attempt.at > Utc::now() - chrono::Duration::hours(1)
                    {
                        // A send of the last hour: it counts against the channel's budget.
                        self.budgets
                            .lock()
                            .seed(&attempt.channel, attempt.at.timestamp_millis());
                    }
                    let touched = attempt.next_attempt.unwrap_or(attempt.at);
                    let seen = attempts
                        .entry((*id).to_owned())
                        .or_insert((0, false, touched));
                    seen.0 = seen.0.max(attempt.attempt);
                    seen.1 |= attempt.status.is_final();
                    seen.2 = seen.2.max(touched);
                }
                _ => {}
            }
        }
        let stale = Utc::now()
            - chrono::Duration::from_std(self.config.takeover_after)
                .unwrap_or(chrono::Duration::MAX);
        let mut resumed = 0;
        for path in entries {
            let delivery: Delivery = self.store.get_json(&path).await?;
            let (last, done, touched) =
                attempts
                    .get(&delivery.id)
                    .copied()
                    .unwrap_or((0, false, delivery.created));
            let ours = delivery.node == self.node;
            let abandoned = takeover && touched.max(delivery.created) < stale;
            if done || !(ours || abandoned) {
                continue;
            }
            if !ours {
                tracing::warn!(delivery = %delivery.id, node = %delivery.node,
                    "taking over an alert delivery its node left unattempted");
            }
            if self.enqueue(Arc::new(delivery), last + 1) {
                resumed += 1;
            }
        }
        if resumed > 0 {
            tracing::info!(deliveries = resumed, "resumed unfinished alert deliveries");
        }
        Ok(())
    }

    /// Queues a delivery not queued here yet; false if it is.
    fn enqueue(&self, delivery: Arc<Delivery>, attempt: u32) -> bool {
        if !self.queued.lock().insert(delivery.id.clone()) {
            return false;
        }
        self.requeue(delivery, attempt, tokio::time::Instant::now());
        true
    }

    /// Queues the next attempt of a delivery that is queued here.
    fn requeue(&self, delivery: Arc<Delivery>, attempt: u32, due: tokio::time::Instant) {
        self.queue.lock().push(Queued {
            delivery,
            attempt,
            due,
        });
        self.wake.notify_one();
    }

    /// Loads the issues of `project_id` into the watch, once.
    async fn ensure_loaded(&self, project_id: u64) -> Result<()> {
        if self.loaded.lock().contains(&project_id) {
            return Ok(());
        }
        let rows = self
            .issue_rows(&format!(
                "SELECT issue_id, status, regressed, status_changed FROM issues \
                 WHERE project_id = {project_id}"
            ))
            .await?;
        {
            let mut known = self.watch.known.write();
            let issues = known.entry(project_id).or_default();
            let mut regressions = self.regressions.lock();
            for row in &rows {
                let state = match (row.status.as_deref(), row.changed) {
                    (Some("resolved"), Some(at)) => Known::Resolved(at),
                    _ => Known::Open,
                };
                issues.entry(row.issue_id).or_insert(state);
                if row.regressed
                    && let Some(at) = row.changed
                {
                    regressions.insert((project_id, row.issue_id, at));
                }
            }
        }
        self.loaded.lock().insert(project_id);
        Ok(())
    }

    /// Runs a query over `issues` and reads the columns alerts use (those it selects).
    async fn issue_rows(&self, sql: &str) -> Result<Vec<IssueRow>> {
        let output = self.query.run(&ProjectFilter::All, sql).await?;
        let mut rows = Vec::new();
        for batch in &output.batches {
            rows.extend(IssueRow::read(batch)?);
        }
        Ok(rows)
    }

    /// Decides what a batch of candidates fires.
    async fn decide(&self, batch: &[Candidate]) -> Result<()> {
        let mut by_project: BTreeMap<u64, Vec<&Candidate>> = BTreeMap::new();
        for candidate in batch {
            by_project
                .entry(candidate.project_id)
                .or_default()
                .push(candidate);
        }
        let projects = self.projects.list().await?;
        for (project_id, candidates) in by_project {
            let Some(project) = projects.iter().find(|p| p.id == project_id) else {
                continue;
            };
            let ruleset = self.ruleset();
            let covered = ruleset.rules.iter().any(|r| {
                r.org == project.org
                    && (r.projects.is_empty() || r.projects.contains(&project.name))
            });
            if !covered {
                continue;
            }
            self.ensure_loaded(project_id).await?;
            let ids: Vec<String> = candidates
                .iter()
                .map(|c| c.issue_id.to_string())
                .collect::<HashSet<_>>()
                .into_iter()
                .collect();
            let rows: HashMap<i64, IssueRow> = self
                .issue_rows(&format!(
                    "SELECT issue_id, first_seen, regressed, status_changed, event_count \
                     FROM issues WHERE project_id = {project_id} AND issue_id IN ({})",
                    ids.join(", ")
                ))
                .await?
                .into_iter()
                .map(|row| (row.issue_id, row))
                .collect();
            for candidate in candidates {
                let Some(row) = rows.get(&candidate.issue_id) else {
                    continue;
                };
                let decision = if row
                    .first_seen
                    .is_some_and(|first| first >= candidate.timestamp_ms)
                {
                    Some((Trigger::NewIssue, "new".to_owned()))
                } else {
                    match row.changed {
                        Some(at)
                            if row.regressed
                                && candidate.received_ms > at
                                && self
                                    .first_after(project_id, candidate.issue_id, at)
                                    .await?
                                    .is_some_and(|first| first >= candidate.received_ms) =>
                        {
                            self.regressions
                                .lock()
                                .insert((project_id, candidate.issue_id, at));
                            Some((Trigger::Regression, format!("regression:{at}")))
                        }
                        _ => None,
                    }
                };
                let Some((trigger, key)) = decision else {
                    continue;
                };
                let ctx = AlertContext {
                    org: project.org.clone(),
                    project_id,
                    project: project.name.clone(),
                    issue_id: candidate.issue_id,
                    trigger,
                    rule: String::new(),
                    title: candidate.title.clone(),
                    culprit: candidate.culprit.clone(),
                    level: candidate.level.clone(),
                    environment: candidate.environment.clone(),
                    release: candidate.release.clone(),
                    event_id: Some(candidate.event_id.clone()),
                    event_count: None,
                    user_count: None,
                    url: self.issue_url(&project.org, candidate.issue_id),
                    at: now_text(),
                };
                let facts = IssueFacts {
                    tags: &candidate.tags,
                    first_seen_ms: row.first_seen,
                    event_count: row.event_count.map(|n| n.max(0) as u64),
                };
                self.fire_matching(&ctx, &key, facts).await?;
            }
        }
        Ok(())
    }

    /// When the first event of an issue received after `after_ms` was received: a regression
    /// is decided on that event only (not on a later one after a restart, whose issue read as
    /// regressed long before).
    async fn first_after(
        &self,
        project_id: u64,
        issue_id: i64,
        after_ms: i64,
    ) -> Result<Option<i64>> {
        let rows = self
            .issue_rows(&format!(
                "SELECT issue_id, min(received) AS first_seen FROM events \
                 WHERE project_id = {project_id} AND issue_id = {issue_id} \
                 AND received > to_timestamp_millis({after_ms}) GROUP BY issue_id"
            ))
            .await?;
        Ok(rows.first().and_then(|row| row.first_seen))
    }

    fn issue_url(&self, org: &str, issue_id: i64) -> String {
        format!("{}/organizations/{org}/issues/{issue_id}/", self.public_url)
    }

    /// Fires every rule that has `ctx.trigger` and whose filters let `ctx` through.
    async fn fire_matching(
        &self,
        ctx: &AlertContext,
        key: &str,
        issue: IssueFacts<'_>,
    ) -> Result<()> {
        let ruleset = self.ruleset();
        let now_ms = Utc::now().timestamp_millis();
        for rule in &ruleset.rules {
            let facts = rules::EventFacts {
                org: &ctx.org,
                project: &ctx.project,
                level: &ctx.level,
                environment: ctx.environment.as_deref(),
                release: ctx.release.as_deref(),
                tags: issue.tags,
                first_seen_ms: issue.first_seen_ms,
                event_count: issue.event_count,
                now_ms,
            };
            if rules::has_trigger(rule, ctx.trigger) && rules::matches(rule, &facts) {
                let mut ctx = ctx.clone();
                ctx.rule.clone_from(&rule.name);
                self.fire(&ruleset, rule, ctx, key).await?;
            }
        }
        Ok(())
    }

    /// One rule fires for one issue: suppressed within its interval, else one delivery per
    /// channel.
    async fn fire(
        &self,
        ruleset: &Ruleset,
        rule: &RuleConfig,
        ctx: AlertContext,
        key: &str,
    ) -> Result<()> {
        let now = Utc::now();
        let prefix = outbox::fired_prefix(&rule.name, ctx.project_id, ctx.issue_id);
        let mut markers = self.store.list(&prefix).await?;
        markers.sort_by(|a, b| a.location.cmp(&b.location));
        let last: Option<Fired> = match markers.first() {
            Some(meta) => Some(self.store.get_json(&meta.location).await?),
            None => None,
        };
        let channels: Vec<&Arc<Channel>> = ruleset.channels_of(rule).collect();
        // A resolve starts afresh: alerts from before it do not hold back its regression.
        let resolved_at = key
            .strip_prefix("regression:")
            .and_then(|at| at.parse::<i64>().ok());
        let recent = last
            .as_ref()
            .filter(|f| resolved_at.is_none_or(|at| f.at_ms > at));
        if rules::throttled(
            recent.map(|f| (f.at_ms, f.trigger_key.as_str())),
            now.timestamp_millis(),
            rule.interval,
            key,
        ) {
            tracing::info!(rule = %rule.name, issue = ctx.issue_id, trigger = key,
                "alert suppressed: the rule alerted on this issue within its interval");
            for channel in channels {
                let id = outbox::delivery_id(
                    &rule.name,
                    channel.name(),
                    ctx.project_id,
                    ctx.issue_id,
                    key,
                );
                let attempt = attempt_row(
                    &ctx,
                    channel,
                    &id,
                    0,
                    Status::Suppressed,
                    &Outcome {
                        error: Some(format!(
                            "the rule alerted on this issue less than {} ago",
                            humantime::format_duration(rule.interval)
                        )),
                        ..Outcome::default()
                    },
                    None,
                );
                self.record(&attempt).await?;
            }
            return Ok(());
        }
        if last.as_ref().is_none_or(|f| f.trigger_key != key) {
            let marker = Fired {
                at_ms: now.timestamp_millis(),
                trigger_key: key.to_owned(),
            };
            let path = outbox::fired_path(&rule.name, ctx.project_id, ctx.issue_id, marker.at_ms);
            match self.store.create_durable(&path, json_bytes(&marker)).await {
                Ok(()) | Err(store::Error::AlreadyExists { .. }) => {}
                Err(err) => return Err(err.into()),
            }
        }
        for channel in channels {
            self.create_delivery(channel, &ctx, key).await?;
        }
        Ok(())
    }

    /// Writes a delivery to the outbox and queues it, unless it exists already (a replay, or
    /// another node decided the same).
    async fn create_delivery(
        &self,
        channel: &Channel,
        ctx: &AlertContext,
        key: &str,
    ) -> Result<()> {
        let id = outbox::delivery_id(&ctx.rule, channel.name(), ctx.project_id, ctx.issue_id, key);
        let delivery = Delivery {
            id,
            channel: channel.name().to_owned(),
            trigger_key: key.to_owned(),
            node: self.node.clone(),
            created: Utc::now(),
            context: ctx.clone(),
        };
        let path = outbox::outbox_path(ctx.project_id, &delivery.id);
        match self
            .store
            .create_durable(&path, json_bytes(&delivery))
            .await
        {
            Ok(()) => {
                tracing::info!(rule = %ctx.rule, channel = %delivery.channel, issue = ctx.issue_id,
                    trigger = key, delivery = %delivery.id, "alert queued");
                self.enqueue(Arc::new(delivery), 1);
                Ok(())
            }
            Err(store::Error::AlreadyExists { .. }) => Ok(()),
            Err(err) => Err(err.into()),
        }
    }

    async fn record(&self, attempt: &Attempt) -> Result<()> {
        let path = outbox::attempt_path(attempt.project_id, &attempt.delivery_id, attempt.attempt);
        match self.store.create_durable(&path, json_bytes(attempt)).await {
            Ok(()) | Err(store::Error::AlreadyExists { .. }) => Ok(()),
            Err(err) => Err(err.into()),
        }
    }

    /// Sends what is due, retrying failures later, until `shutdown`.
    async fn deliver_loop(self: Arc<Self>, shutdown: CancellationToken) {
        use futures::StreamExt;
        loop {
            let next = self.queue.lock().iter().map(|q| q.due).min();
            let digest = self.next_digest().map(|at_ms| {
                let wait = at_ms.saturating_sub(Utc::now().timestamp_millis()).max(0);
                tokio::time::Instant::now() + Duration::from_millis(wait as u64)
            });
            let next = match (next, digest) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            let wait =
                next.unwrap_or_else(|| tokio::time::Instant::now() + Duration::from_secs(3600));
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep_until(wait) => {}
                () = self.wake.notified() => {}
            }
            let now = tokio::time::Instant::now();
            let due: Vec<Queued> = {
                let mut queue = self.queue.lock();
                let (due, later) = std::mem::take(&mut *queue)
                    .into_iter()
                    .partition(|q| q.due <= now);
                *queue = later;
                due
            };
            futures::stream::iter(due)
                .for_each_concurrent(CONCURRENT_SENDS, |queued| {
                    let this = Arc::clone(&self);
                    async move { this.attempt(queued).await }
                })
                .await;
            self.flush_digests().await;
        }
    }

    /// When (ms) the next digest is due, if any alert is held for one.
    fn next_digest(&self) -> Option<i64> {
        let window = i64::try_from(self.config.digest_window.as_millis()).unwrap_or(i64::MAX);
        self.digests
            .lock()
            .values()
            .filter(|d| !d.held.is_empty())
            .map(|d| d.last_sent_ms.saturating_add(window))
            .min()
    }

    /// Email: mails `delivery` at once to the recipients whose last mail is older than the
    /// digest window, and holds it for the digest of the others. `Some` outcome when every
    /// recipient was mailed now; `None` when the digests finish it.
    async fn mail_or_hold(
        &self,
        channel: &Channel,
        delivery: &Arc<Delivery>,
        attempt: u32,
    ) -> Option<Outcome> {
        let Some(mailer) = &self.mailer else {
            return Some(self.send_mail(channel, delivery).await);
        };
        let now_ms = Utc::now().timestamp_millis();
        let window = i64::try_from(self.config.digest_window.as_millis()).unwrap_or(i64::MAX);
        let (mut now, mut held) = (Vec::new(), Vec::new());
        {
            let mut digests = self.digests.lock();
            for to in &channel.config.to {
                let digest = digests.entry(to.clone()).or_default();
                if digest.last_sent_ms > 0 && now_ms - digest.last_sent_ms < window {
                    digest.held.push(delivery.id.clone());
                    held.push(to.clone());
                } else {
                    digest.last_sent_ms = now_ms;
                    now.push(to.clone());
                }
            }
            if !held.is_empty() {
                self.held.lock().insert(
                    delivery.id.clone(),
                    Held {
                        delivery: Arc::clone(delivery),
                        attempt,
                        remaining: held.len(),
                        error: None,
                    },
                );
            }
        }
        let (subject, text) = payload::email(&delivery.context);
        let mut error = None;
        for to in &now {
            if let Err(err) = mailer.send(to, &subject, text.clone()).await {
                error.get_or_insert_with(|| err.to_string());
            }
        }
        if held.is_empty() {
            return Some(Outcome {
                error,
                ..Outcome::default()
            });
        }
        tracing::info!(delivery = %delivery.id, recipients = held.len(),
            "alert held for the recipients' email digest");
        if let Some(error) = error
            && let Some(entry) = self.held.lock().get_mut(&delivery.id)
        {
            entry.error.get_or_insert(error);
        }
        None
    }

    /// Sends the digests that are due: one mail per recipient listing the alerts held for
    /// them; a held delivery is recorded once every recipient's mail went out.
    async fn flush_digests(&self) {
        let Some(mailer) = &self.mailer else {
            return;
        };
        let now_ms = Utc::now().timestamp_millis();
        let window = i64::try_from(self.config.digest_window.as_millis()).unwrap_or(i64::MAX);
        let due: Vec<(String, Vec<String>)> = {
            let mut digests = self.digests.lock();
            digests
                .iter_mut()
                .filter(|(_, d)| {
                    !d.held.is_empty() && d.last_sent_ms.saturating_add(window) <= now_ms
                })
                .map(|(to, d)| {
                    d.last_sent_ms = now_ms;
                    (to.clone(), std::mem::take(&mut d.held))
                })
                .collect()
        };
        for (to, ids) in due {
            let contexts: Vec<AlertContext> = {
                let held = self.held.lock();
                ids.iter()
                    .filter_map(|id| held.get(id).map(|h| h.delivery.context.clone()))
                    .collect()
            };
            let refs: Vec<&AlertContext> = contexts.iter().collect();
            let (subject, text) = payload::email_digest(&refs);
            let sent = mailer.send(&to, &subject, text).await;
            tracing::info!(alerts = ids.len(), ok = sent.is_ok(), "email digest sent");
            let finished: Vec<Held> = {
                let mut held = self.held.lock();
                let mut finished = Vec::new();
                for id in &ids {
                    let Some(entry) = held.get_mut(id) else {
                        continue;
                    };
                    entry.remaining = entry.remaining.saturating_sub(1);
                    if let Err(err) = &sent {
                        entry.error.get_or_insert_with(|| err.to_string());
                    }
                    if entry.remaining == 0
                        && let Some(done) = held.remove(id)
                    {
                        finished.push(done);
                    }
                }
                finished
            };
            for done in finished {
                let channel = self.ruleset().channels.get(&done.delivery.channel).cloned();
                let outcome = Outcome {
                    error: done.error,
                    ..Outcome::default()
                };
                self.finish(done.delivery, done.attempt, channel, outcome)
                    .await;
            }
        }
    }

    /// One attempt of one delivery, recorded; a failure is queued again.
    async fn attempt(&self, queued: Queued) {
        let Queued {
            delivery, attempt, ..
        } = queued;
        let ruleset = self.ruleset();
        let channel = ruleset.channels.get(&delivery.channel).cloned();
        if attempt == 1
            && delivery.context.trigger != Trigger::Resolved
            && let Some(channel) = &channel
        {
            let limit = channel
                .config
                .max_per_hour
                .unwrap_or(self.config.max_per_hour);
            if !self
                .budgets
                .lock()
                .take(channel.name(), limit, Utc::now().timestamp_millis())
            {
                self.suppress_over_budget(channel, &delivery, limit).await;
                return;
            }
        }
        let outcome = match &channel {
            Some(channel) if channel.kind() == ChannelKind::Email => {
                match self.mail_or_hold(channel, &delivery, attempt).await {
                    Some(outcome) => outcome,
                    // Held for a digest: recorded when it goes out.
                    None => return,
                }
            }
            Some(channel) => self.send(channel, &delivery).await,
            None => Outcome {
                error: Some(format!("channel {:?} no longer exists", delivery.channel)),
                ..Outcome::default()
            },
        };
        self.finish(delivery, attempt, channel, outcome).await;
    }

    /// Records the outcome of an attempt; a failure is queued again.
    async fn finish(
        &self,
        delivery: Arc<Delivery>,
        attempt: u32,
        channel: Option<Arc<Channel>>,
        outcome: Outcome,
    ) {
        let mut status = match (outcome.code, &outcome.error, &channel) {
            (_, _, None) => Status::GaveUp,
            (Some(code), _, _) => outbox::classify(code),
            (None, Some(_), _) if outcome.permanent => Status::GaveUp,
            (None, Some(_), _) => Status::Failed,
            (None, None, _) => Status::Delivered,
        };
        if status == Status::Failed && attempt >= self.config.max_attempts {
            status = Status::GaveUp;
        }
        let wait = (status == Status::Failed).then(|| {
            outbox::backoff(
                attempt,
                self.config.min_backoff,
                self.config.max_backoff,
                outcome.retry_after,
                &delivery.id,
            )
        });
        let kind = channel.as_ref().map_or("unknown", |c| c.kind().as_str());
        let row = Attempt {
            kind: kind.to_owned(),
            ..attempt_row_raw(
                &delivery.context,
                &delivery.channel,
                &delivery.id,
                attempt,
                status,
                &outcome,
                wait,
            )
        };
        match status {
            Status::Delivered => {
                tracing::info!(delivery = %delivery.id, channel = %delivery.channel,
                attempt, code = ?outcome.code, "alert delivered")
            }
            _ => tracing::warn!(delivery = %delivery.id, channel = %delivery.channel, attempt,
                status = status.as_str(), code = ?outcome.code, error = ?outcome.error,
                "alert delivery failed"),
        }
        let mut failures = 0u32;
        while let Err(err) = self.record(&row).await {
            failures += 1;
            tracing::error!(cause = %err, delivery = %delivery.id, "cannot record an alert attempt; retrying");
            if failures >= 5 {
                break;
            }
            tokio::time::sleep(retry_pause(failures)).await;
        }
        match wait {
            Some(wait) => self.requeue(delivery, attempt + 1, tokio::time::Instant::now() + wait),
            None => {
                self.queued.lock().remove(&delivery.id);
            }
        }
    }

    /// Records a delivery the channel's hourly budget held back (attempt 0, `suppressed`).
    async fn suppress_over_budget(&self, channel: &Channel, delivery: &Delivery, limit: u32) {
        tracing::warn!(delivery = %delivery.id, channel = %delivery.channel, limit,
            "alert suppressed: the channel reached its max_per_hour");
        let row = attempt_row(
            &delivery.context,
            channel,
            &delivery.id,
            0,
            Status::Suppressed,
            &Outcome {
                error: Some(format!(
                    "channel {:?} sent its max_per_hour of {limit} alerts within the last hour",
                    channel.name()
                )),
                ..Outcome::default()
            },
            None,
        );
        let mut failures = 0u32;
        while let Err(err) = self.record(&row).await {
            failures += 1;
            tracing::error!(cause = %err, delivery = %delivery.id, "cannot record a suppressed alert; retrying");
            if failures >= 5 {
                break;
            }
            tokio::time::sleep(retry_pause(failures)).await;
        }
        self.queued.lock().remove(&delivery.id);
    }

    /// Sends one delivery once.
    async fn send(&self, channel: &Channel, delivery: &Delivery) -> Outcome {
        let ctx = &delivery.context;
        let body = match channel.kind() {
            ChannelKind::Email => return self.send_mail(channel, delivery).await,
            ChannelKind::Slack => payload::slack(ctx),
            ChannelKind::Discord => payload::discord(ctx),
            ChannelKind::Teams => payload::teams(ctx),
            ChannelKind::Pagerduty => {
                let key = channel.routing_key.as_ref().map_or("", |k| k.expose());
                payload::pagerduty(ctx, key)
            }
            ChannelKind::Webhook => match channel.config.format {
                WebhookFormat::Faultline => payload::webhook(ctx, &delivery.id),
                WebhookFormat::Sentry => payload::sentry_webhook(ctx),
            },
        };
        let Some(url) = &channel.url else {
            return Outcome {
                error: Some("the channel has no URL".to_owned()),
                ..Outcome::default()
            };
        };
        if !self.config.allow_private_targets
            && let Err(refused) = guard::check_literal(url.expose())
        {
            return Outcome {
                error: Some(refused.to_string()),
                permanent: true,
                ..Outcome::default()
            };
        }
        let body = serde_json::to_vec(&body).unwrap_or_default();
        let mut request = self
            .http
            .post(url.expose())
            .header(reqwest::header::CONTENT_TYPE, "application/json");
        if channel.kind() == ChannelKind::Webhook {
            let timestamp = Utc::now().timestamp();
            match channel.config.format {
                WebhookFormat::Faultline => {
                    request = request
                        .header("webhook-id", &delivery.id)
                        .header("webhook-timestamp", timestamp.to_string());
                    if let Some(secret) = &channel.signing_secret {
                        match payload::standard_signature(
                            secret.expose(),
                            &delivery.id,
                            timestamp,
                            &body,
                        ) {
                            Ok(signature) => {
                                request = request.header("webhook-signature", signature)
                            }
                            Err(err) => {
                                return Outcome {
                                    error: Some(format!("channel {}: {err}", channel.name())),
                                    ..Outcome::default()
                                };
                            }
                        }
                    }
                }
                WebhookFormat::Sentry => {
                    request = request
                        .header("Request-ID", &delivery.id)
                        .header("Sentry-Hook-Resource", "event_alert")
                        .header("Sentry-Hook-Timestamp", timestamp.to_string());
                    if let Some(secret) = &channel.signing_secret {
                        request = request.header(
                            "Sentry-Hook-Signature",
                            payload::sentry_signature(secret.expose(), &body),
                        );
                    }
                }
            }
        }
        match request.body(body).send().await {
            Ok(response) => {
                let code = response.status().as_u16();
                let retry_after = response
                    .headers()
                    .get(reqwest::header::RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| outbox::parse_retry_after(v, Utc::now()));
                let error = if response.status().is_success() {
                    None
                } else {
                    let text = response.text().await.unwrap_or_default();
                    Some(format!(
                        "the receiver answered {code}: {}",
                        payload::truncate(text.trim(), 200)
                    ))
                };
                Outcome {
                    code: Some(code),
                    error,
                    retry_after,
                    permanent: false,
                }
            }
            Err(err) if guard::is_refusal(&err) => Outcome {
                error: Some(format!("refused: {}", error_chain(&err))),
                permanent: true,
                ..Outcome::default()
            },
            Err(err) => Outcome {
                error: Some(format!("cannot reach the receiver: {}", error_chain(&err))),
                ..Outcome::default()
            },
        }
    }

    async fn send_mail(&self, channel: &Channel, delivery: &Delivery) -> Outcome {
        let Some(mailer) = &self.mailer else {
            return Outcome {
                error: Some("email channels need the [smtp] section".to_owned()),
                ..Outcome::default()
            };
        };
        let (subject, text) = payload::email(&delivery.context);
        for to in &channel.config.to {
            if let Err(err) = mailer.send(to, &subject, text.clone()).await {
                return Outcome {
                    error: Some(err.to_string()),
                    ..Outcome::default()
                };
            }
        }
        Outcome::default()
    }

    /// Reads the rules and channels made through the API again and puts them in force beside
    /// the config file's.
    pub async fn reload(&self) -> Result<()> {
        let (channels, rules) = declared::load(&self.store).await?;
        let secrets = declared::load_secrets(&self.store).await?;
        let ruleset = Ruleset::assemble(&self.config, channels, rules, &secrets);
        self.watch
            .enabled
            .store(!ruleset.is_empty(), std::sync::atomic::Ordering::Relaxed);
        let changed = self.ruleset().rules != ruleset.rules;
        *self.ruleset.write() = Arc::new(ruleset);
        if changed {
            // Projects a new rule covers were never loaded: start over. Every issue is a
            // candidate once more, and the `issues` table tells that it is not new.
            self.loaded.lock().clear();
            self.watch.known.write().clear();
        }
        Ok(())
    }

    /// True when the config file declares a channel (or rule) of that name.
    fn declared_in_config(&self, kind: declared::Kind, name: &str) -> bool {
        match kind {
            declared::Kind::Channel => self.config.channels.iter().any(|c| c.name == name),
            declared::Kind::Rule => self.config.rules.iter().any(|r| r.name == name),
        }
    }

    /// Refuses names the config file holds, and (for a change) names the API never made.
    async fn check_writable(&self, kind: declared::Kind, name: &str, create: bool) -> Result<()> {
        if self.declared_in_config(kind, name) {
            return Err(Error::Declared {
                kind: kind.as_str(),
                name: name.to_owned(),
            });
        }
        if !create && !declared::exists(&self.store, kind, name).await? {
            return Err(Error::NotFound {
                kind: kind.as_str(),
                name: name.to_owned(),
            });
        }
        Ok(())
    }

    async fn save<T: serde::Serialize>(
        &self,
        kind: declared::Kind,
        name: &str,
        value: &T,
        create: bool,
    ) -> Result<()> {
        self.check_writable(kind, name, create).await?;
        match declared::save(&self.store, kind, name, value, create).await {
            Ok(()) => self.reload().await,
            Err(store::Error::AlreadyExists { .. }) => Err(Error::Exists {
                kind: kind.as_str(),
                name: name.to_owned(),
            }),
            Err(err) => Err(err.into()),
        }
    }

    /// Creates (or, without `create`, replaces) a channel made through the API. Its secrets
    /// must be readable now. `given` holds secrets typed in (stored by the server, never
    /// shown); on a change, a secret not given again is kept unless the declaration now
    /// names a file, variable or URL for it. Returns the names of the stored secrets.
    pub async fn put_channel(
        &self,
        channel: faultline_config::ChannelConfig,
        given: declared::ChannelSecrets,
        create: bool,
    ) -> Result<Vec<&'static str>> {
        let invalid = |field: &str, message: &str| Error::Invalid {
            field: field.to_owned(),
            message: message.to_owned(),
        };
        let names_url =
            channel.url.is_some() || channel.url_file.is_some() || channel.url_env.is_some();
        let names_key = channel.routing_key_file.is_some() || channel.routing_key_env.is_some();
        let names_signing = channel.secret_file.is_some() || channel.secret_env.is_some();
        for (typed, named, field) in [
            (given.url.is_some(), names_url, "url_secret"),
            (given.routing_key.is_some(), names_key, "routing_key_secret"),
            (
                given.signing_secret.is_some(),
                names_signing,
                "signing_secret",
            ),
        ] {
            if typed && named {
                return Err(invalid(
                    field,
                    "give this secret once: typed in, or as a file or environment variable",
                ));
            }
        }
        let mut secrets = if create {
            declared::ChannelSecrets::default()
        } else {
            declared::load_secrets(&self.store)
                .await?
                .remove(&channel.name)
                .unwrap_or_default()
        };
        for (typed, slot, named) in [
            (given.url, &mut secrets.url, names_url),
            (given.routing_key, &mut secrets.routing_key, names_key),
            (
                given.signing_secret,
                &mut secrets.signing_secret,
                names_signing,
            ),
        ] {
            match typed {
                Some(value) => *slot = Some(value.trim().to_owned()),
                None if named => *slot = None,
                None => {}
            }
        }
        if secrets.url.is_some() && channel.kind == ChannelKind::Email {
            return Err(invalid("url_secret", "an email channel has no URL"));
        }
        faultline_config::check_channel_stored(
            &channel,
            faultline_config::StoredSecrets {
                url: secrets.url.is_some(),
                routing_key: secrets.routing_key.is_some(),
            },
        )
        .map_err(|(field, message)| Error::Invalid { field, message })?;
        let loaded = Channel::load_with(&channel, Some(&secrets))?;
        if !self.config.allow_private_targets
            && channel.kind != ChannelKind::Email
            && let Some(url) = &loaded.url
            && (channel.kind != ChannelKind::Pagerduty || url.expose() != rules::PAGERDUTY_URL)
            && let Err(refused) = guard::check_url(url.expose()).await
        {
            let field = if channel.url_file.is_some() {
                "url_file"
            } else if channel.url_env.is_some() {
                "url_env"
            } else if secrets.url.is_some() {
                "url_secret"
            } else {
                "url"
            };
            return Err(Error::Invalid {
                field: field.to_owned(),
                message: refused.to_string(),
            });
        }
        let name = channel.name.clone();
        // The secrets go first (the declaration's reload reads them), and only for a name
        // this call may write.
        self.check_writable(declared::Kind::Channel, &name, create)
            .await?;
        if create && declared::exists(&self.store, declared::Kind::Channel, &name).await? {
            return Err(Error::Exists {
                kind: declared::Kind::Channel.as_str(),
                name,
            });
        }
        declared::save_secrets(&self.store, &name, &secrets).await?;
        self.save(declared::Kind::Channel, &name, &channel, create)
            .await?;
        Ok(secrets.names())
    }

    /// Creates (or replaces) a rule made through the API.
    pub async fn put_rule(&self, rule: RuleConfig, create: bool) -> Result<()> {
        let ruleset = self.ruleset();
        faultline_config::check_rule(&rule, |c| ruleset.channels.contains_key(c))
            .map_err(|(field, message)| Error::Invalid { field, message })?;
        self.save(declared::Kind::Rule, &rule.name.clone(), &rule, create)
            .await
    }

    /// Deletes a rule or channel made through the API (a channel only when no rule uses it).
    pub async fn remove(&self, kind: declared::Kind, name: &str) -> Result<()> {
        self.check_writable(kind, name, false).await?;
        if kind == declared::Kind::Channel
            && let Some(rule) = self
                .ruleset()
                .rules
                .iter()
                .find(|r| r.channels.iter().any(|c| c == name))
        {
            return Err(Error::InUse {
                channel: name.to_owned(),
                rule: rule.name.clone(),
            });
        }
        declared::remove(&self.store, kind, name).await?;
        self.reload().await
    }

    /// Where a declaration comes from: `config` or `api`.
    pub fn source(&self, kind: declared::Kind, name: &str) -> &'static str {
        if self.declared_in_config(kind, name) {
            "config"
        } else {
            "api"
        }
    }

    /// The newest attempt of each channel (for "a failing channel shows its last error").
    pub async fn last_attempts(&self) -> Result<HashMap<String, Attempt>> {
        let mut last: HashMap<String, Attempt> = HashMap::new();
        for attempt in table::read_attempts(&self.store, &ProjectFilter::All).await? {
            if attempt.status == Status::Suppressed {
                continue;
            }
            // Oldest first: the newest stays.
            last.insert(attempt.channel.clone(), attempt);
        }
        Ok(last)
    }

    /// Sends a test notification through `channel` now; the attempt is recorded (project 0).
    pub async fn test_channel(&self, channel: &str) -> Result<Attempt> {
        let ruleset = self.ruleset();
        let channel = ruleset
            .channels
            .get(channel)
            .ok_or_else(|| Error::NotFound {
                kind: "channel",
                name: channel.to_owned(),
            })?;
        let ctx = AlertContext {
            org: crate::tenancy::DEFAULT_ORG.to_owned(),
            project_id: 0,
            project: "test".to_owned(),
            issue_id: 0,
            trigger: Trigger::Test,
            rule: "test".to_owned(),
            title: format!("Test notification from faultline to {}", channel.name()),
            culprit: None,
            level: "info".to_owned(),
            environment: None,
            release: None,
            event_id: None,
            event_count: None,
            user_count: None,
            url: self.public_url.clone(),
            at: now_text(),
        };
        let delivery = Delivery {
            id: uuid::Uuid::new_v4().simple().to_string(),
            channel: channel.name().to_owned(),
            trigger_key: "test".to_owned(),
            node: self.node.clone(),
            created: Utc::now(),
            context: ctx,
        };
        let outcome = self.send(channel, &delivery).await;
        let status = match (outcome.code, &outcome.error) {
            (Some(code), _) if outbox::classify(code) == Status::Delivered => Status::Delivered,
            (None, None) => Status::Delivered,
            _ => Status::GaveUp,
        };
        let row = attempt_row(
            &delivery.context,
            channel,
            &delivery.id,
            1,
            status,
            &outcome,
            None,
        );
        self.record(&row).await?;
        Ok(row)
    }

    /// Evaluates frequency rules and picks up state changes made elsewhere, every
    /// `alerts.check_interval`.
    async fn tick_loop(self: Arc<Self>, shutdown: CancellationToken) {
        let mut interval = tokio::time::interval(self.config.check_interval);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let scan_every = (self.config.takeover_after / 2).max(self.config.check_interval);
        let mut scanned = tokio::time::Instant::now();
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                _ = interval.tick() => {}
            }
            if scanned.elapsed() >= scan_every {
                scanned = tokio::time::Instant::now();
                if let Err(err) = self.resume(true).await {
                    tracing::warn!(cause = %err, "cannot look for alert deliveries to take over");
                }
            }
            if let Err(err) = self.reload().await {
                tracing::warn!(cause = %err, "cannot read the alert rules and channels made through the API");
            }
            if let Err(err) = self.refresh_states().await {
                tracing::warn!(cause = %err, "cannot refresh issue states for alerts");
            }
            if let Err(err) = self.check_windows().await {
                tracing::warn!(cause = %err, "cannot evaluate frequency and distinct-user alert rules");
            }
            if let Err(err) = self.check_unmuted().await {
                tracing::warn!(cause = %err, "cannot evaluate alert rules on ignored issues");
            }
        }
    }

    /// Resolved issues: marks them in the watch (so their next event is a candidate) and
    /// closes their PagerDuty incidents; regressions the candidates did not show (an event
    /// that reached this node before it saw the resolve) are decided here.
    async fn refresh_states(&self) -> Result<()> {
        let loaded: Vec<String> = self.loaded.lock().iter().map(u64::to_string).collect();
        if loaded.is_empty() {
            return Ok(());
        }
        let rows = self
            .issue_rows(&format!(
                "SELECT issue_id, project_id, project, title, culprit, level, status, regressed, \
                 status_changed FROM issues WHERE project_id IN ({}) \
                 AND (status = 'resolved' OR regressed)",
                loaded.join(", ")
            ))
            .await?;
        let projects = self.projects.list().await?;
        for row in rows {
            let (Some(project_id), Some(at)) = (row.project_id, row.changed) else {
                continue;
            };
            let Some(project) = projects.iter().find(|p| p.id == project_id) else {
                continue;
            };
            let previous = self
                .watch
                .known
                .read()
                .get(&project_id)
                .and_then(|issues| issues.get(&row.issue_id).copied());
            let newly_resolved = match previous {
                Some(Known::Resolved(known_at)) => known_at < at,
                Some(Known::Open) | None => true,
            };
            let mut ctx = AlertContext {
                org: project.org.clone(),
                project_id,
                project: project.name.clone(),
                issue_id: row.issue_id,
                trigger: Trigger::Resolved,
                rule: String::new(),
                title: row.title.clone().unwrap_or_default(),
                culprit: row.culprit.clone(),
                level: row.level.clone().unwrap_or_else(|| "error".to_owned()),
                environment: None,
                release: None,
                event_id: None,
                event_count: None,
                user_count: None,
                url: self.issue_url(&project.org, row.issue_id),
                at: now_text(),
            };
            if newly_resolved {
                self.fire_resolved(&ctx, at).await?;
            }
            if row.status.as_deref() == Some("resolved") {
                if newly_resolved {
                    self.watch
                        .known
                        .write()
                        .entry(project_id)
                        .or_default()
                        .insert(row.issue_id, Known::Resolved(at));
                }
            } else if self
                .regressions
                .lock()
                .insert((project_id, row.issue_id, at))
            {
                ctx.trigger = Trigger::Regression;
                self.fire_matching(&ctx, &format!("regression:{at}"), IssueFacts::default())
                    .await?;
            }
        }
        Ok(())
    }

    /// A resolved issue: PagerDuty channels of rules covering it get a `resolve`.
    async fn fire_resolved(&self, ctx: &AlertContext, at: i64) -> Result<()> {
        let ruleset = self.ruleset();
        let key = format!("resolved:{at}");
        for rule in &ruleset.rules {
            let covers = rule.org == ctx.org
                && (rule.projects.is_empty() || rule.projects.contains(&ctx.project));
            if !covers {
                continue;
            }
            for channel in ruleset.channels_of(rule) {
                if channel.kind() == ChannelKind::Pagerduty {
                    let mut ctx = ctx.clone();
                    ctx.rule.clone_from(&rule.name);
                    self.create_delivery(channel, &ctx, &key).await?;
                }
            }
        }
        Ok(())
    }

    /// Window rules: issues with more than N events (frequency) or N distinct users (users)
    /// received within the window, among the events the rule's filters let through.
    async fn check_windows(&self) -> Result<()> {
        let ruleset = self.ruleset();
        let projects = self.projects.list().await?;
        let now_ms = Utc::now().timestamp_millis();
        for rule in &ruleset.rules {
            for (trigger, threshold) in [
                (Trigger::Frequency, rules::frequency(rule)),
                (Trigger::Users, rules::users(rule)),
            ] {
                let Some((count, window)) = threshold else {
                    continue;
                };
                let ids: Vec<String> = projects
                    .iter()
                    .filter(|p| {
                        p.org == rule.org
                            && (rule.projects.is_empty() || rule.projects.contains(&p.name))
                    })
                    .map(|p| p.id.to_string())
                    .collect();
                if ids.is_empty() {
                    continue;
                }
                let sql = window_sql(rule, trigger, &ids, count, window);
                let interval_ms = i64::try_from(rule.interval.as_millis())
                    .unwrap_or(i64::MAX)
                    .max(1);
                let key = format!("{}:{}", trigger.as_str(), now_ms / interval_ms);
                for row in self.issue_rows(&sql).await? {
                    let Some(project) = row
                        .project_id
                        .and_then(|id| projects.iter().find(|p| p.id == id))
                    else {
                        continue;
                    };
                    let counted = row.event_count.map(|n| n.max(0) as u64);
                    let ctx = AlertContext {
                        org: project.org.clone(),
                        project_id: project.id,
                        project: project.name.clone(),
                        issue_id: row.issue_id,
                        trigger,
                        rule: rule.name.clone(),
                        title: row.title.clone().unwrap_or_default(),
                        culprit: row.culprit.clone(),
                        level: row.level.clone().unwrap_or_else(|| "error".to_owned()),
                        environment: row.environment.clone(),
                        release: None,
                        event_id: None,
                        event_count: counted.filter(|_| trigger == Trigger::Frequency),
                        user_count: counted.filter(|_| trigger == Trigger::Users),
                        url: self.issue_url(&project.org, row.issue_id),
                        at: now_text(),
                    };
                    self.fire(&ruleset, rule, ctx, &key).await?;
                }
            }
        }
        Ok(())
    }

    /// Ignored issues whose ignore ran out (the date passed and an event came after it, or the
    /// number of events it was ignored for arrived): rules with the `unmuted` trigger fire once
    /// per ignore, their filters applied to the issue's newest event.
    async fn check_unmuted(&self) -> Result<()> {
        let ruleset = self.ruleset();
        if !ruleset
            .rules
            .iter()
            .any(|r| rules::has_trigger(r, Trigger::Unmuted))
        {
            return Ok(());
        }
        let projects = self.projects.list().await?;
        let ids: Vec<String> = projects
            .iter()
            .filter(|p| {
                ruleset.rules.iter().any(|r| {
                    rules::has_trigger(r, Trigger::Unmuted)
                        && r.org == p.org
                        && (r.projects.is_empty() || r.projects.contains(&p.name))
                })
            })
            .map(|p| p.id.to_string())
            .collect();
        if ids.is_empty() {
            return Ok(());
        }
        let rows = self
            .issue_rows(&format!(
                "SELECT issue_id, project_id, title, culprit, level, first_seen, event_count, \
                 status_changed FROM issues WHERE project_id IN ({}) \
                 AND status = 'unresolved' AND (ignore_until_count IS NOT NULL \
                 OR (ignore_until IS NOT NULL AND last_seen > ignore_until))",
                ids.join(", ")
            ))
            .await?;
        for row in rows {
            let (Some(project_id), Some(at)) = (row.project_id, row.changed) else {
                continue;
            };
            if self
                .unmuted
                .lock()
                .contains(&(project_id, row.issue_id, at))
            {
                continue;
            }
            let Some(project) = projects.iter().find(|p| p.id == project_id) else {
                continue;
            };
            let newest = self.newest_event(project_id, row.issue_id).await?;
            let ctx = AlertContext {
                org: project.org.clone(),
                project_id,
                project: project.name.clone(),
                issue_id: row.issue_id,
                trigger: Trigger::Unmuted,
                rule: String::new(),
                title: row.title.clone().unwrap_or_default(),
                culprit: row.culprit.clone(),
                level: newest
                    .level
                    .clone()
                    .or_else(|| row.level.clone())
                    .unwrap_or_else(|| "error".to_owned()),
                environment: newest.environment.clone(),
                release: newest.release.clone(),
                event_id: newest.event_id.clone(),
                event_count: None,
                user_count: None,
                url: self.issue_url(&project.org, row.issue_id),
                at: now_text(),
            };
            let facts = IssueFacts {
                tags: &newest.tags,
                first_seen_ms: row.first_seen,
                event_count: row.event_count.map(|n| n.max(0) as u64),
            };
            // Once per ignore: the key is the time the ignore was set.
            self.fire_matching(&ctx, &format!("unmuted:{at}"), facts)
                .await?;
            self.unmuted.lock().insert((project_id, row.issue_id, at));
        }
        Ok(())
    }

    /// The newest event of an issue: what the filters of an `unmuted` rule look at.
    async fn newest_event(&self, project_id: u64, issue_id: i64) -> Result<NewestEvent> {
        let output = self
            .query
            .run(
                &ProjectFilter::All,
                &format!(
                    "SELECT event_id, level, environment, release, tags FROM events \
                     WHERE project_id = {project_id} AND issue_id = {issue_id} \
                     ORDER BY received DESC LIMIT 1"
                ),
            )
            .await?;
        Ok(output
            .batches
            .iter()
            .find(|b| b.num_rows() > 0)
            .map(NewestEvent::read)
            .transpose()?
            .unwrap_or_default())
    }
}

/// The query of a window trigger: per issue of the projects `ids`, the events (frequency) or
/// distinct users (users) received within `window` that the rule's filters let through, as
/// `event_count`, where there are more than `count`. Unresolved issues only, and of a
/// regressed one only the events since its resolve.
fn window_sql(
    rule: &RuleConfig,
    trigger: Trigger,
    ids: &[String],
    count: u64,
    window: Duration,
) -> String {
    let mut filters = String::new();
    for (column, list) in [
        ("e.level", &rule.levels),
        ("e.environment", &rule.environments),
        ("e.release", &rule.releases),
    ] {
        if !list.is_empty() {
            filters.push_str(&format!(" AND {column} IN ({})", sql_list(list)));
        }
    }
    for (key, values) in rules::tag_filters(rule) {
        filters.push_str(&format!(
            " AND e.tags[{}] IN ({})",
            sql_list(std::slice::from_ref(&key)),
            sql_list(&values)
        ));
    }
    if let Some(older) = rule.issue_older_than {
        filters.push_str(&format!(
            " AND i.first_seen <= now() - INTERVAL '{} milliseconds'",
            older.as_millis()
        ));
    }
    if let Some(newer) = rule.issue_newer_than {
        filters.push_str(&format!(
            " AND i.first_seen > now() - INTERVAL '{} milliseconds'",
            newer.as_millis()
        ));
    }
    if let Some(min) = rule.min_events {
        filters.push_str(&format!(" AND i.event_count >= {min}"));
    }
    let measure = match trigger {
        Trigger::Users => {
            "count(DISTINCT coalesce(e.user_id, e.user_email, e.user_username, e.user_ip))"
        }
        _ => "count(*)",
    };
    format!(
        "SELECT e.project_id AS project_id, e.issue_id AS issue_id, \
         {measure} AS event_count, max(e.title) AS title, max(e.culprit) AS culprit, \
         max(e.level) AS level, max(e.environment) AS environment \
         FROM events e JOIN issues i \
         ON e.project_id = i.project_id AND e.issue_id = i.issue_id \
         WHERE e.project_id IN ({}) AND i.status = 'unresolved' \
         AND (i.status_changed IS NULL OR e.received > i.status_changed) \
         AND e.received > now() - INTERVAL '{} milliseconds'{filters} \
         GROUP BY e.project_id, e.issue_id HAVING {measure} > {count}",
        ids.join(", "),
        window.as_millis()
    )
}

/// The newest event of an issue, as [`Alerts::newest_event`] reads it.
#[derive(Debug, Default)]
struct NewestEvent {
    event_id: Option<String>,
    level: Option<String>,
    environment: Option<String>,
    release: Option<String>,
    tags: Vec<(String, String)>,
}

impl NewestEvent {
    fn read(batch: &RecordBatch) -> Result<Self> {
        let text = |name: &'static str| -> Result<Option<String>> {
            let column = batch.column_by_name(name).ok_or(Error::Column(name))?;
            let column = cast(column, &DataType::Utf8).map_err(|_| Error::Column(name))?;
            let column = column.as_string::<i32>();
            Ok(column.is_valid(0).then(|| column.value(0).to_owned()))
        };
        let map = batch
            .column_by_name("tags")
            .and_then(|c| c.as_map_opt())
            .ok_or(Error::Column("tags"))?;
        let entries = map.value(0);
        let keys = cast(entries.column(0), &DataType::Utf8).map_err(|_| Error::Column("tags"))?;
        let values = cast(entries.column(1), &DataType::Utf8).map_err(|_| Error::Column("tags"))?;
        let (keys, values) = (keys.as_string::<i32>(), values.as_string::<i32>());
        let tags = (0..keys.len())
            .filter(|&i| keys.is_valid(i) && values.is_valid(i))
            .map(|i| (keys.value(i).to_owned(), values.value(i).to_owned()))
            .collect();
        Ok(Self {
            event_id: text("event_id")?,
            level: text("level")?,
            environment: text("environment")?,
            release: text("release")?,
            tags,
        })
    }
}

/// The attempt row for a delivery of `ctx` to `channel`.
fn attempt_row(
    ctx: &AlertContext,
    channel: &Channel,
    id: &str,
    attempt: u32,
    status: Status,
    outcome: &Outcome,
    wait: Option<Duration>,
) -> Attempt {
    Attempt {
        kind: channel.kind().as_str().to_owned(),
        ..attempt_row_raw(ctx, channel.name(), id, attempt, status, outcome, wait)
    }
}

fn attempt_row_raw(
    ctx: &AlertContext,
    channel: &str,
    id: &str,
    attempt: u32,
    status: Status,
    outcome: &Outcome,
    wait: Option<Duration>,
) -> Attempt {
    let at = Utc::now();
    Attempt {
        delivery_id: id.to_owned(),
        attempt,
        at,
        status,
        response_code: outcome.code,
        error: outcome.error.clone(),
        next_attempt: wait
            .and_then(|w| chrono::Duration::from_std(w).ok())
            .map(|w| at + w),
        org: ctx.org.clone(),
        project_id: ctx.project_id,
        project: ctx.project.clone(),
        rule: ctx.rule.clone(),
        channel: channel.to_owned(),
        kind: String::new(),
        issue_id: ctx.issue_id,
        trigger: ctx.trigger.as_str().to_owned(),
    }
}

fn now_text() -> String {
    Utc::now().to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn json_bytes<T: serde::Serialize>(value: &T) -> Bytes {
    Bytes::from(serde_json::to_vec(value).expect("alert records serialize"))
}

/// `'a', 'b'` with quotes doubled.
fn sql_list(items: &[String]) -> String {
    items
        .iter()
        .map(|s| format!("'{}'", s.replace('\'', "''")))
        .collect::<Vec<_>>()
        .join(", ")
}

/// 0.5 s doubling to 30 s.
fn retry_pause(failures: u32) -> Duration {
    Duration::from_millis(500 << failures.min(6)).min(Duration::from_secs(30))
}

fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// The columns of an `issues` (or `events` aggregate) row alerts read; absent ones are `None`.
#[derive(Debug, Default)]
struct IssueRow {
    issue_id: i64,
    project_id: Option<u64>,
    first_seen: Option<i64>,
    changed: Option<i64>,
    regressed: bool,
    status: Option<String>,
    title: Option<String>,
    culprit: Option<String>,
    level: Option<String>,
    environment: Option<String>,
    event_count: Option<i64>,
}

impl IssueRow {
    fn read(batch: &RecordBatch) -> Result<Vec<Self>> {
        let ints = |name: &'static str| -> Result<Option<Vec<Option<i64>>>> {
            let Some(column) = batch.column_by_name(name) else {
                return Ok(None);
            };
            let column = cast(column, &DataType::Int64).map_err(|_| Error::Column(name))?;
            let column = column.as_primitive::<Int64Type>();
            Ok(Some(
                (0..column.len())
                    .map(|i| column.is_valid(i).then(|| column.value(i)))
                    .collect(),
            ))
        };
        let texts = |name: &'static str| -> Result<Option<Vec<Option<String>>>> {
            let Some(column) = batch.column_by_name(name) else {
                return Ok(None);
            };
            let column = cast(column, &DataType::Utf8).map_err(|_| Error::Column(name))?;
            let column = column.as_string::<i32>();
            Ok(Some(
                (0..column.len())
                    .map(|i| column.is_valid(i).then(|| column.value(i).to_owned()))
                    .collect(),
            ))
        };
        let issue_ids = ints("issue_id")?.ok_or(Error::Column("issue_id"))?;
        let project_ids = ints("project_id")?;
        let first_seen = ints("first_seen")?;
        let changed = ints("status_changed")?;
        let counts = ints("event_count")?;
        let regressed = match batch.column_by_name("regressed") {
            Some(column) => Some(
                column
                    .as_boolean_opt()
                    .ok_or(Error::Column("regressed"))?
                    .clone(),
            ),
            None => None,
        };
        let (status, title, culprit, level, environment) = (
            texts("status")?,
            texts("title")?,
            texts("culprit")?,
            texts("level")?,
            texts("environment")?,
        );
        let pick = |v: &Option<Vec<Option<i64>>>, i: usize| v.as_ref().and_then(|v| v[i]);
        let text =
            |v: &Option<Vec<Option<String>>>, i: usize| v.as_ref().and_then(|v| v[i].clone());
        let mut rows = Vec::with_capacity(issue_ids.len());
        for (i, issue_id) in issue_ids.iter().enumerate() {
            let Some(issue_id) = *issue_id else { continue };
            rows.push(Self {
                issue_id,
                project_id: pick(&project_ids, i).map(|p| p as u64),
                first_seen: pick(&first_seen, i),
                changed: pick(&changed, i),
                regressed: regressed
                    .as_ref()
                    .is_some_and(|r| r.is_valid(i) && r.value(i)),
                status: text(&status, i),
                title: text(&title, i),
                culprit: text(&culprit, i),
                level: text(&level, i),
                environment: text(&environment, i),
                event_count: pick(&counts, i),
            });
        }
        Ok(rows)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(project: u64, issue: i64) -> StoredEvent {
        StoredEvent::for_test(project, issue, r#"{"message":"m","level":"error"}"#)
    }

    #[test]
    fn only_the_first_event_of_an_unknown_issue_is_a_candidate() {
        let watch = Watch::new(true);
        let mut rx = watch.rx.lock().take().unwrap();
        let batch = [event(1, 7), event(1, 7), event(1, 8), event(2, 7)];
        let candidates = watch.candidates(&batch);
        assert_eq!(candidates.len(), 4, "nothing is marked before the commit");
        watch.commit(candidates);
        let mut sent = Vec::new();
        while let Ok(c) = rx.try_recv() {
            sent.push((c.project_id, c.issue_id));
        }
        assert_eq!(sent, [(1, 7), (1, 8), (2, 7)]);
        // Known and open now: more events are no candidates and allocate nothing.
        let later = watch.candidates(&[event(1, 7), event(2, 7)]);
        assert!(later.is_empty() && later.capacity() == 0);
    }

    #[test]
    fn a_resolved_issue_is_a_candidate_again_for_an_event_received_after_the_resolve() {
        let watch = Watch::new(true);
        let mut rx = watch.rx.lock().take().unwrap();
        let e = event(1, 7);
        let received = e.event.received.timestamp_millis();
        watch
            .known
            .write()
            .entry(1)
            .or_default()
            .insert(7, Known::Resolved(received));
        assert!(
            watch.candidates(std::slice::from_ref(&e)).is_empty(),
            "received at the resolve"
        );
        watch
            .known
            .write()
            .entry(1)
            .or_default()
            .insert(7, Known::Resolved(received - 1));
        watch.observe(&[e.clone(), e]);
        assert_eq!(rx.try_recv().map(|c| c.issue_id).ok(), Some(7));
        assert!(rx.try_recv().is_err(), "one candidate per regression");
    }

    #[test]
    fn without_rules_nothing_is_a_candidate() {
        let watch = Watch::new(false);
        assert!(watch.candidates(&[event(1, 7)]).is_empty());
    }
}
