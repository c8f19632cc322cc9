//! The ingest pipeline, below HTTP: authenticate, decode, parse, normalize, group, deduplicate,
//! log durably, and answer with the event id.
//!
//! [`Ingest::submit`] returns only after the events and item rows are fsynced in the WAL and
//! visible to SQL. A request that fails leaves nothing behind: what it carried is logged all
//! together or not at all. Every envelope item type is handled by name in one `match`
//! ([`decode_envelope_item`]): events are normalized and grouped, the item types with a table
//! (`crate::items`) become rows, and the others are counted and logged as not stored. An item
//! that cannot be read is counted as invalid and the envelope's other items are kept.

use std::collections::{HashMap, HashSet, VecDeque};
use std::hash::BuildHasher;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use chrono::Utc;
use faultline_config::LimitsConfig;
use faultline_protocol::auth::{AuthInput, parse_auth, parse_dsn};
use faultline_protocol::decode::{
    complete_first_line, decode_body, decode_first_line, decode_store_body,
};
use faultline_protocol::envelope::{
    Envelope, EnvelopeError, EnvelopeLimits, ItemType, parse_header_line,
};
use faultline_protocol::grouping;
use faultline_protocol::normalize::{NormalizeContext, Processing, process_event};
use faultline_protocol::scrub::Scrubber;
use parking_lot::Mutex;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use uuid::Uuid;

use crate::events::StoredEvent;
use crate::grouphash::GroupHashes;
use crate::items::{self, ItemBatch, ItemRow, RowContext};
use crate::outcomes::{Outcome, Outcomes};
use crate::quotas::{QuotaWindows, Refusal, Refusals, Scope};
use crate::store::{Store, keys};
use crate::tenancy::{self, Authorized, Project, Projects};
use crate::wal::{self, Logged, Wal};

/// Which endpoint a request came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    Envelope,
    Store,
}

/// What is known of an ingest request before its body: the HTTP layer passes it to
/// [`Ingest::admit`] and reads the body only if that succeeds.
#[derive(Debug)]
pub struct RequestHead<'a> {
    pub endpoint: Endpoint,
    /// The `{project_id}` path segment as sent.
    pub project_id: &'a str,
    pub auth: AuthInput<'a>,
    pub content_encoding: Option<&'a str>,
    pub client_ip: Option<IpAddr>,
}

/// A request let in by [`Ingest::admit`]: within the concurrency limit and, when it carried a
/// key in its headers or query, authenticated. Holds its place among the in-flight requests
/// until dropped.
#[derive(Debug)]
pub struct Admitted {
    _permit: OwnedSemaphorePermit,
    endpoint: Endpoint,
    project_id: u64,
    /// `None` when the only credential can be the envelope header's `dsn`.
    project: Option<Arc<Authorized>>,
    content_encoding: Option<String>,
    client_ip: Option<IpAddr>,
    received: chrono::DateTime<Utc>,
}

impl Admitted {
    /// True once the request's key has been checked (always, for a key sent in the headers).
    pub fn is_authenticated(&self) -> bool {
        self.project.is_some()
    }
}

/// Longest envelope header line read to find a `dsn` before the key is checked. SDKs send a
/// few hundred bytes.
const MAX_HEADER_LINE: usize = 64 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("invalid project id {0:?} in the URL: it must be a positive number")]
    BadProjectId(String),
    #[error(
        "missing authorization: send the DSN key in X-Sentry-Auth, Authorization or ?sentry_key="
    )]
    MissingAuth,
    #[error("{0}")]
    Auth(#[from] faultline_protocol::auth::AuthError),
    #[error("the DSN names project {dsn} but the URL names project {url}")]
    ProjectMismatch { dsn: String, url: u64 },
    #[error(transparent)]
    Tenancy(#[from] tenancy::Error),
    #[error("{0}")]
    Decode(#[from] faultline_protocol::decode::DecodeError),
    #[error("{0}")]
    Envelope(#[from] faultline_protocol::envelope::EnvelopeError),
    #[error("{0}")]
    Normalize(#[from] faultline_protocol::normalize::NormalizeError),
    #[error("event of {size} bytes exceeds max_event_size of {limit} bytes")]
    EventTooLarge { size: usize, limit: usize },
    #[error(
        "{} is over its rate limit of {events} events per {window:?}",
        if *per_key { format!("the DSN key of project {project_id}") } else { format!("project {project_id}") }
    )]
    RateLimited {
        project_id: u64,
        /// The limit is the key's own, not the project's.
        per_key: bool,
        events: u64,
        window: Duration,
        retry_after: Duration,
    },
    #[error("project {project_id} is {refusals}")]
    OverQuota { project_id: u64, refusals: Refusals },
    #[error("the server is behind on writing events to storage; retry later")]
    Backpressure { retry_after: Duration },
    #[error(
        "the server is already handling its limit of {limit} concurrent ingest requests \
         (limits.max_concurrent_requests); retry shortly"
    )]
    Busy { limit: usize },
    #[error("decoding the request failed unexpectedly: {0}")]
    Worker(String),
    #[error("cannot log events: {0}")]
    Wal(#[from] wal::Error),
    #[error("cannot store an attachment: {0}")]
    Attachment(#[source] crate::store::Error),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// What a rate limit or quota refused, for `X-Sentry-Rate-Limits`; empty for other errors.
    pub fn refusals(&self) -> Refusals {
        match self {
            Self::RateLimited {
                per_key,
                events,
                window,
                retry_after,
                ..
            } => Refusal {
                categories: vec!["error".to_owned()],
                scope: if *per_key { Scope::Key } else { Scope::Project },
                limit: *events,
                window: *window,
                retry_after: *retry_after,
            }
            .into(),
            Self::OverQuota { refusals, .. } => refusals.clone(),
            _ => Refusals::default(),
        }
    }

    /// True for errors caused by a body over a size limit (HTTP 413).
    pub fn is_too_large(&self) -> bool {
        match self {
            Self::EventTooLarge { .. } => true,
            Self::Decode(e) => e.is_too_large(),
            Self::Envelope(e) => e.is_too_large(),
            _ => false,
        }
    }
}

/// Remembers recently accepted event ids per project so SDK retries are stored once.
/// Bounded: the oldest ids are forgotten first.
///
/// It keeps a 64-bit keyed hash of (project, event id), not the 24 bytes themselves: about
/// 26 MB at its capacity of a million ids instead of about 100 MB. Two different ids share a
/// hash with a probability of about 3e-8 over a full window (birthday bound), and the key is
/// random per process, so a client cannot aim for a collision.
struct Dedup {
    inner: Mutex<(HashSet<u64>, VecDeque<u64>)>,
    hasher: std::hash::RandomState,
    capacity: usize,
}

impl Dedup {
    fn new(capacity: usize) -> Self {
        Self {
            inner: Mutex::new((HashSet::new(), VecDeque::new())),
            hasher: std::hash::RandomState::new(),
            capacity,
        }
    }

    fn key(&self, project: u64, id: Uuid) -> u64 {
        self.hasher.hash_one((project, id.as_u128()))
    }

    /// Reserves an id; false if it was seen already.
    fn insert(&self, project: u64, id: Uuid) -> bool {
        let key = self.key(project, id);
        let mut guard = self.inner.lock();
        let (set, order) = &mut *guard;
        if !set.insert(key) {
            return false;
        }
        order.push_back(key);
        if order.len() > self.capacity
            && let Some(old) = order.pop_front()
        {
            set.remove(&old);
        }
        true
    }

    fn forget(&self, project: u64, id: Uuid) {
        let key = self.key(project, id);
        self.inner.lock().0.remove(&key);
    }
}

/// Fixed-window event counters per project and per DSN key (Sentry's `project` and `key`
/// quota scopes). Events count against both; either limit refuses them.
#[derive(Default)]
struct RateLimiter {
    windows: Mutex<HashMap<u64, (Instant, u64)>>,
    key_windows: Mutex<HashMap<String, (Instant, u64)>>,
    /// Projects' quotas per data category.
    quotas: QuotaWindows,
}

/// Advances one fixed window; the time to wait when `events` more do not fit.
fn take(
    window: &mut (Instant, u64),
    limit: &faultline_config::RateLimit,
    events: u64,
    now: Instant,
) -> std::result::Result<(), Duration> {
    let (start, count) = window;
    if now.duration_since(*start) >= limit.window {
        *start = now;
        *count = 0;
    }
    if *count + events > limit.events {
        let retry_after = limit.window.saturating_sub(now.duration_since(*start));
        return Err(retry_after.max(Duration::from_secs(1)));
    }
    *count += events;
    Ok(())
}

impl RateLimiter {
    fn check(&self, granted: &Authorized, events: u64) -> Result<()> {
        let now = Instant::now();
        let refused = |limit: &faultline_config::RateLimit, per_key, retry_after| {
            crate::metrics::events_rate_limited(events, per_key);
            Error::RateLimited {
                project_id: granted.id,
                per_key,
                events: limit.events,
                window: limit.window,
                retry_after,
            }
        };
        let key = granted.key();
        if let Some(limit) = &key.rate_limit {
            let mut windows = self.key_windows.lock();
            let window = match windows.get_mut(&key.public) {
                Some(window) => window,
                None => windows.entry(key.public.clone()).or_insert((now, 0)),
            };
            take(window, limit, events, now).map_err(|after| refused(limit, true, after))?;
        }
        if let Some(limit) = &granted.rate_limit {
            let mut windows = self.windows.lock();
            let window = windows.entry(granted.id).or_insert((now, 0));
            if let Err(after) = take(window, limit, events, now) {
                // The key's window gave these events up front: give them back.
                if key.rate_limit.is_some()
                    && let Some((_, count)) = self.key_windows.lock().get_mut(&key.public)
                {
                    *count = count.saturating_sub(events);
                }
                return Err(refused(limit, false, after));
            }
        }
        Ok(())
    }
}

/// The ingest service shared by every request.
pub struct Ingest {
    projects: Arc<Projects>,
    wal: Wal,
    limits: LimitsConfig,
    max_unflushed: u64,
    dedup: Dedup,
    rate: Arc<RateLimiter>,
    in_flight: Arc<Semaphore>,
    /// Bodies being decompressed, parsed and normalized (on the blocking pool).
    decoding: Arc<Semaphore>,
    /// Which logged events the alert worker must look at.
    alerts: Arc<crate::alerts::Watch>,
    /// Which issue each grouping hash belongs to.
    hashes: Arc<GroupHashes>,
    /// Resolves minified JavaScript frames before grouping, once set.
    sourcemaps: std::sync::OnceLock<Arc<crate::sourcemaps::SourceMaps>>,
    /// Where attachments' bytes are written, before their rows are logged.
    store: Store,
    /// What became of the items, counted until the next flush logs them.
    outcomes: Arc<Outcomes>,
}

/// Ids of recently accepted events remembered for de-duplication.
const DEDUP_CAPACITY: usize = 1_000_000;

impl Ingest {
    pub fn new(
        projects: Arc<Projects>,
        wal: Wal,
        limits: LimitsConfig,
        max_unflushed: u64,
        alerts: Arc<crate::alerts::Watch>,
        hashes: Arc<GroupHashes>,
        store: Store,
    ) -> Self {
        Self {
            store,
            outcomes: Arc::default(),
            alerts,
            hashes,
            projects,
            wal,
            max_unflushed,
            dedup: Dedup::new(DEDUP_CAPACITY),
            rate: Arc::default(),
            in_flight: Arc::new(Semaphore::new(limits.max_concurrent_requests.max(1))),
            decoding: Arc::new(Semaphore::new(limits.max_concurrent_decodes.max(1))),
            limits,
            sourcemaps: std::sync::OnceLock::new(),
        }
    }

    /// Resolves JavaScript frames with uploaded source maps before grouping from now on.
    pub fn set_sourcemaps(&self, sourcemaps: Arc<crate::sourcemaps::SourceMaps>) {
        let _ = self.sourcemaps.set(sourcemaps);
    }

    /// Marks an event id as already stored (used when replaying the WAL).
    pub fn remember(&self, project_id: u64, event_id: Uuid) {
        self.dedup.insert(project_id, event_id);
    }

    /// Largest request body accepted on the wire (`limits.max_request_size`), in bytes.
    pub fn max_request_size(&self) -> usize {
        usize::try_from(self.limits.max_request_size.as_u64()).unwrap_or(usize::MAX)
    }

    /// Lets a request in before its body is read: takes a place among the in-flight requests
    /// and checks a key sent in the headers or the query string, so a request with a wrong key
    /// is refused without reading (or buffering, or decompressing) its body.
    pub async fn admit(&self, head: RequestHead<'_>) -> Result<Admitted> {
        let permit = Arc::clone(&self.in_flight)
            .try_acquire_owned()
            .map_err(|_| Error::Busy {
                limit: self.limits.max_concurrent_requests.max(1),
            })?;
        let project_id: u64 = head
            .project_id
            .parse()
            .ok()
            .filter(|id| *id > 0)
            .ok_or_else(|| Error::BadProjectId(head.project_id.to_owned()))?;
        let received = Utc::now();
        let project = match parse_auth(&head.auth)? {
            Some(auth) => Some(Arc::new(
                self.projects
                    .authorize(project_id, &auth.public_key)
                    .await?,
            )),
            None if head.endpoint == Endpoint::Store => return Err(Error::MissingAuth),
            None => None,
        };
        Ok(Admitted {
            _permit: permit,
            endpoint: head.endpoint,
            project_id,
            project,
            content_encoding: head.content_encoding.map(str::to_owned),
            client_ip: head.client_ip,
            received,
        })
    }

    /// Accepts the body of an admitted request. Returns the id of its event, if it carried one,
    /// and what quotas or rate limits refused while the rest was kept.
    ///
    /// Without a key in the request, the envelope header's `dsn` is the credential: only the
    /// header line is decompressed before the key is checked. Small bodies are decoded on the
    /// calling thread; anything larger than [`INLINE_DECODE_BYTES`] on the wire or once
    /// decompressed is decompressed, parsed and normalized on the blocking pool, at most
    /// `limits.max_concurrent_decodes` at a time, so no body keeps the threads that serve
    /// connections (and `/health/live`) busy for long.
    #[tracing::instrument(level = "debug", skip_all, fields(project = admitted.project_id))]
    pub async fn submit(&self, mut admitted: Admitted, body: Bytes) -> Result<Submitted> {
        let project = match admitted.project.take() {
            Some(project) => project,
            None => self.authorize_by_dsn(&admitted, &body).await?,
        };
        let max_event = usize::try_from(self.limits.max_event_size.as_u64()).unwrap_or(usize::MAX);
        let limits = DecodeLimits {
            max_event,
            max_envelope: usize::try_from(self.limits.max_envelope_size.as_u64())
                .unwrap_or(usize::MAX),
            max_attachment: usize::try_from(self.limits.max_attachment_size.as_u64())
                .unwrap_or(usize::MAX),
            max_attachments: usize::try_from(self.limits.max_attachments_size.as_u64())
                .unwrap_or(usize::MAX),
        };
        if self.wal.unflushed_bytes() > self.max_unflushed {
            return Err(Error::Backpressure {
                retry_after: Duration::from_secs(5),
            });
        }
        let request = DecodeRequest {
            endpoint: admitted.endpoint,
            encoding: admitted.content_encoding.clone(),
            received: admitted.received,
            client_ip: admitted.client_ip,
            rate: Arc::clone(&self.rate),
            scrubber: self.projects.scrubber(project.id),
            project: Arc::clone(&project),
            outcomes: Arc::clone(&self.outcomes),
        };
        // Nearly every SDK request is a few KiB: decoding it here costs less than handing it to
        // the blocking pool. Here, decompression stops at INLINE_DECODE_BYTES; a body that
        // decompresses further (or a large one) is decoded on the pool with the real limits.
        let inline = (body.len() <= INLINE_DECODE_BYTES)
            .then(|| request.decode(&body, &limits.capped(INLINE_DECODE_BYTES)));
        let decoded = match inline {
            Some(Err(e)) if e.is_too_large() => None,
            other => other
                .transpose()
                .inspect_err(|err| self.count_refused(&project, admitted.received, err))?,
        };
        let mut decoded = match decoded {
            Some(decoded) => decoded,
            None => self
                .off_thread(move || request.decode(&body, &limits))
                .await?
                .inspect_err(|err| self.count_refused(&project, admitted.received, err))?,
        };
        let refused = std::mem::take(&mut decoded.refused);
        if decoded.events.is_empty() && decoded.rows.is_empty() {
            if !refused.is_empty() {
                // nothing left to keep: the request is refused as a whole (429)
                return Err(Error::OverQuota {
                    project_id: project.project.id,
                    refusals: refused,
                });
            }
            return Ok(Submitted {
                id: decoded.header_event_id,
                refused,
            });
        }
        let header_event_id = decoded.header_event_id;
        let first = self.log(&project.project, decoded).await?;
        Ok(Submitted {
            id: first.or(header_event_id),
            refused,
        })
    }

    /// Counts a request refused as a whole (too large, unreadable) as an outcome of its
    /// project. Rate limits are counted where they are checked, with their quantity.
    fn count_refused(&self, project: &Authorized, received: chrono::DateTime<Utc>, err: &Error) {
        if let Error::Envelope(EnvelopeError::ItemTooLarge { items, .. }) = err {
            // the envelope was read: each of its items is counted in its own category, with
            // its records and bytes (a refused log container is its logs, not one error)
            for item in items {
                self.outcomes.add_items(
                    project.project.id,
                    &project.project.name,
                    received,
                    &item.ty,
                    Outcome::TooLarge,
                    "max_item_size",
                    item.records(),
                    item.len() as u64,
                );
            }
            return;
        }
        let (outcome, reason) = match err {
            Error::EventTooLarge { .. } => (Outcome::TooLarge, "max_event_size"),
            Error::Decode(e) if e.is_too_large() => (Outcome::TooLarge, "max_envelope_size"),
            Error::Decode(_) => (Outcome::Invalid, "payload"),
            Error::Envelope(_) => (Outcome::Invalid, "envelope"),
            Error::Normalize(_) => (Outcome::Invalid, "event"),
            _ => return,
        };
        self.outcomes.add(
            project.project.id,
            &project.project.name,
            received,
            "error",
            outcome,
            reason,
            1,
        );
    }

    /// Logs the outcomes counted since the last call as rows of the `outcomes` table (called
    /// before every scheduled flush and the one at shutdown, `Node::flush_with_outcomes`, so
    /// they reach storage with the rows logged before them). Returns the number of rows; on
    /// failure the counts are kept for the next call.
    pub async fn log_outcomes(&self) -> Result<usize> {
        let counted = self.outcomes.take();
        if counted.is_empty() {
            return Ok(0);
        }
        let now = Utc::now();
        let rows: Vec<ItemRow> = counted.iter().map(|c| c.row(now)).collect();
        let mut data = Vec::new();
        for (row, counted) in rows.iter().zip(&counted) {
            wal::encode(&mut data, row.wal_fields(&counted.project));
        }
        let logged = match batches_of(&rows) {
            Ok(items) => Logged {
                events: Vec::new(),
                items,
            },
            Err(err) => {
                // cannot happen for rows built here; dropping them beats stopping flushes
                tracing::error!(cause = %err, "outcome rows do not fit their table; dropped");
                return Ok(0);
            }
        };
        if let Err(err) = self.wal.append(data, logged).await {
            self.outcomes.put_back(counted);
            return Err(err.into());
        }
        Ok(rows.len())
    }

    /// The project of an envelope whose only credential is its header's `dsn`.
    async fn authorize_by_dsn(&self, admitted: &Admitted, body: &Bytes) -> Result<Arc<Authorized>> {
        let encoding = admitted.content_encoding.clone();
        let line = if body.len() <= INLINE_DECODE_BYTES {
            // at most MAX_HEADER_LINE bytes of output from a small input: cheap
            decode_first_line(encoding.as_deref(), body, MAX_HEADER_LINE)?
        } else {
            let body = body.clone(); // a reference count, not a copy
            self.off_thread(move || decode_first_line(encoding.as_deref(), &body, MAX_HEADER_LINE))
                .await??
        };
        self.project_of_header(admitted, &line).await
    }

    /// While the body of a request without a key in its headers arrives: tries to authenticate
    /// by the `dsn` of the envelope header in `prefix`, the bytes received so far. `Ok(true)`
    /// once the request is authenticated, `Ok(false)` while more of the body is needed; a
    /// wrong key fails at once, so the rest of the body is never read.
    pub async fn authorize_early(&self, admitted: &mut Admitted, prefix: Bytes) -> Result<bool> {
        if admitted.project.is_some() {
            return Ok(true);
        }
        let encoding = admitted.content_encoding.clone();
        let line = self
            .off_thread(move || complete_first_line(encoding.as_deref(), &prefix, MAX_HEADER_LINE))
            .await??;
        let Some(line) = line else {
            return Ok(false);
        };
        admitted.project = Some(self.project_of_header(admitted, &line).await?);
        Ok(true)
    }

    /// The project named by the `dsn` of an envelope header line, if its key is valid.
    async fn project_of_header(&self, admitted: &Admitted, line: &[u8]) -> Result<Arc<Authorized>> {
        let headers = parse_header_line(line)?;
        let Some(dsn) = &headers.dsn else {
            return Err(Error::MissingAuth);
        };
        let (key, dsn_project) = parse_dsn(dsn)?;
        if dsn_project != admitted.project_id.to_string() {
            return Err(Error::ProjectMismatch {
                dsn: dsn_project,
                url: admitted.project_id,
            });
        }
        Ok(Arc::new(
            self.projects.authorize(admitted.project_id, &key).await?,
        ))
    }

    /// Runs CPU-bound work on the blocking pool, at most `limits.max_concurrent_decodes` at once.
    async fn off_thread<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T> {
        let permit = Arc::clone(&self.decoding)
            .acquire_owned()
            .await
            .map_err(|e| Error::Worker(e.to_string()))?;
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            work()
        })
        .await
        .map_err(|e| Error::Worker(e.to_string()))
    }

    /// Deduplicates and logs the normalized events of `project` with the item rows of the same
    /// request; returns the first event's id.
    async fn log(&self, project: &Project, decoded: Decoded) -> Result<Option<Uuid>> {
        let Decoded {
            events: normalized,
            rows,
            item_batches,
            item_counts,
            item_scrubbed,
            attachments,
            received,
            ..
        } = decoded;
        let total = normalized.len() as u64;
        let mut first_id = None;
        let mut data = Vec::new();
        let mut events = Vec::with_capacity(normalized.len());
        let mut reserved = Vec::with_capacity(normalized.len());
        // one lookup per request: the project's hash index (loaded on its first event) and
        // its own rules, if any
        let index = self.hashes.project_for_ingest(project.id).await;
        let rules = self.projects.grouping(project.id);
        let mut scrubbed = item_scrubbed;
        for event in normalized {
            first_id.get_or_insert(event.event_id);
            if !self.dedup.insert(project.id, event.event_id) {
                tracing::debug!(event_id = %event.event_id.simple(), "duplicate event dropped");
                continue;
            }
            reserved.push(event.event_id);
            scrubbed.count("error", &event.scrubbed_by);
            // before grouping, so the same bug in two builds is one issue
            let event = match self.sourcemaps.get() {
                Some(maps) => maps.resolve_event(&project.org, &project.name, event).await,
                None => event,
            };
            let own;
            let grouping = match &rules {
                Some(rules) => {
                    own = grouping::group_with(&event, rules);
                    &own
                }
                None => grouping::grouping_of(&event),
            };
            let issue_id = self.hashes.assign(project.id, &index, grouping, || {
                Some(grouping::legacy_hash(&event))
            });
            let grouping_hash = grouping.hash.clone();
            let stored = StoredEvent {
                project_id: project.id,
                project: project.name.clone(),
                issue_id,
                grouping_hash,
                event,
            };
            wal::encode(
                &mut data,
                wal::Fields {
                    kind: wal::EVENT,
                    project_id: stored.project_id,
                    issue_id: stored.issue_id,
                    received_ms: stored.event.received.timestamp_millis(),
                    grouping_hash: &stored.grouping_hash,
                    project: &stored.project,
                    json: stored.event.json.as_bytes(),
                },
            );
            events.push(stored);
        }
        let accepted = reserved.len() as u64;
        // Transactions and feedback an SDK sends again (a retry) are stored once, like events.
        let mut item_batches = item_batches;
        let mut rows = rows;
        let mut item_ids: Vec<Uuid> = rows.iter().filter_map(|r| r.item_id).collect();
        item_ids.sort_unstable();
        item_ids.dedup();
        let repeated: Vec<Uuid> = item_ids
            .into_iter()
            .filter(|id| {
                if self.dedup.insert(project.id, *id) {
                    reserved.push(*id);
                    false
                } else {
                    true
                }
            })
            .collect();
        if !repeated.is_empty() {
            tracing::debug!(items = repeated.len(), "duplicate items dropped");
            rows.retain(|r| r.item_id.is_none_or(|id| !repeated.contains(&id)));
            // What is left decoded before, as part of the whole.
            item_batches = batches_of(&rows).map(merge_batches).unwrap_or_default();
        }
        // Attachments' bytes are durable objects before their rows are logged: a row in the
        // WAL always has its object. An object whose row is not logged after all (the WAL
        // failed) is named by an id only a retry of the same envelope produces, and goes with
        // its day's partition.
        let attachments: Vec<Blob> = attachments
            .into_iter()
            .filter(|a| !repeated.contains(&a.id))
            .collect();
        let stored_attachments = attachments.len() as u64;
        let stored_bytes: u64 = attachments.iter().map(|a| a.data.len() as u64).sum();
        if let Err(err) = self.write_attachments(attachments).await {
            self.release(project.id, &reserved);
            return Err(err);
        }
        for row in &rows {
            wal::encode(&mut data, row.wal_fields(&project.name));
        }
        // An in-memory lookup per event; candidates go to the alert worker once logged.
        let candidates = self.alerts.candidates(&events);
        let logged = Logged {
            events,
            items: item_batches,
        };
        if logged.rows() > 0
            && let Err(err) = self.wal.append(data, logged).await
        {
            self.release(project.id, &reserved);
            return Err(err.into());
        }
        self.alerts.commit(candidates);
        let accepted_as = |category, quantity| {
            self.outcomes.add(
                project.id,
                &project.name,
                received,
                category,
                Outcome::Accepted,
                "",
                quantity,
            );
        };
        if total > 0 {
            crate::metrics::ingest_items(&ItemType::Event, "accepted", accepted);
            crate::metrics::ingest_items(&ItemType::Event, "duplicate", total - accepted);
            accepted_as("error", accepted);
        }
        for (ty, count) in &item_counts {
            crate::metrics::ingest_items(ty, "accepted", *count);
            if *ty != ItemType::ClientReport {
                accepted_as(crate::outcomes::category(ty), *count);
            }
        }
        for (category, rule, items) in scrubbed.0 {
            self.outcomes.add(
                project.id,
                &project.name,
                received,
                category,
                Outcome::Scrubbed,
                rule,
                items,
            );
        }
        if stored_attachments > 0 {
            crate::metrics::ingest_items(&ItemType::Attachment, "accepted", stored_attachments);
            self.outcomes.add_items(
                project.id,
                &project.name,
                received,
                &ItemType::Attachment,
                Outcome::Accepted,
                "",
                stored_attachments,
                stored_bytes,
            );
        }
        Ok(first_id)
    }

    /// Writes the bytes of attachments as durable objects, a few at a time.
    async fn write_attachments(&self, attachments: Vec<Blob>) -> Result<()> {
        use futures::{StreamExt, TryStreamExt};
        futures::stream::iter(attachments)
            .map(|blob| async move { self.store.create_durable(&blob.key, blob.data).await })
            .buffer_unordered(4)
            .try_collect::<Vec<()>>()
            .await
            .map_err(Error::Attachment)?;
        Ok(())
    }

    fn release(&self, project_id: u64, ids: &[Uuid]) {
        for id in ids {
            self.dedup.forget(project_id, *id);
        }
    }
}

/// Size limits of one request's decoding.
#[derive(Debug, Clone, Copy)]
struct DecodeLimits {
    max_event: usize,
    max_envelope: usize,
    max_attachment: usize,
    /// The attachments of one envelope together.
    max_attachments: usize,
}

impl DecodeLimits {
    /// These limits, none above `bytes`.
    fn capped(&self, bytes: usize) -> Self {
        Self {
            max_event: self.max_event.min(bytes),
            max_envelope: self.max_envelope.min(bytes),
            max_attachment: self.max_attachment.min(bytes),
            max_attachments: self.max_attachments.min(bytes),
        }
    }
}

/// Bodies up to this size (on the wire and decompressed) are decoded on the thread that read
/// them rather than on the blocking pool: at most a few milliseconds of work.
const INLINE_DECODE_BYTES: usize = 256 * 1024;

/// What decoding one request's body needs besides the body.
struct DecodeRequest {
    endpoint: Endpoint,
    encoding: Option<String>,
    received: chrono::DateTime<Utc>,
    client_ip: Option<IpAddr>,
    rate: Arc<RateLimiter>,
    project: Arc<Authorized>,
    /// The project's data scrubbing rules, applied before anything is written.
    scrubber: Arc<Scrubber>,
    outcomes: Arc<Outcomes>,
}

impl DecodeRequest {
    fn decode(&self, body: &[u8], limits: &DecodeLimits) -> Result<Decoded> {
        decode_events(
            self.endpoint,
            self.encoding.as_deref(),
            body,
            limits,
            RowContext {
                project_id: self.project.project.id,
                project: &self.project.project.name,
                received: self.received,
                scrubber: Some(&self.scrubber),
            },
            &Origin {
                received: self.received,
                client_ip: self.client_ip,
                scrubber: &self.scrubber,
                outcomes: &self.outcomes,
            },
            &|ty, quantity, bytes| self.admit(ty, quantity, bytes),
        )
    }

    /// Counts `quantity` items of type `ty`, `bytes` long in all, against the project's quotas
    /// (in the categories [`crate::outcomes::charges`] names) and, for events, the project's
    /// and its key's rate limits: once the items are found and before they are parsed or
    /// normalized, so items over a limit cost no more work. A refusal is counted as an
    /// outcome; events a rate limit refuses give their quota count back.
    fn admit(&self, ty: &ItemType, quantity: u64, bytes: u64) -> Result<()> {
        let project = &self.project.project;
        let charges = crate::outcomes::charges(ty, quantity, bytes);
        let quotas = &self.rate.quotas;
        let refused = |reason| {
            self.outcomes.add_items(
                project.id,
                &project.name,
                self.received,
                ty,
                Outcome::RateLimited,
                reason,
                quantity,
                bytes,
            );
        };
        if let Err(refusal) = quotas.take(
            project.id,
            &project.quotas,
            charges.as_slice(),
            Instant::now(),
        ) {
            crate::metrics::ingest_items(ty, "rate_limited", quantity);
            refused("project_quota");
            return Err(Error::OverQuota {
                project_id: project.id,
                refusals: refusal.into(),
            });
        }
        if *ty != ItemType::Event {
            return Ok(());
        }
        self.rate.check(&self.project, quantity).inspect_err(|err| {
            quotas.give_back(project.id, &project.quotas, charges.as_slice());
            if let Error::RateLimited { per_key, .. } = err {
                refused(if *per_key {
                    "key_quota"
                } else {
                    "project_quota"
                });
            }
        })
    }
}

/// What [`Ingest::submit`] kept of a request.
#[derive(Debug, Default)]
pub struct Submitted {
    /// The id of its (first) event, if it carried one.
    pub id: Option<Uuid>,
    /// What quotas and rate limits refused while the rest was kept (for
    /// `X-Sentry-Rate-Limits` on the 200).
    pub refused: Refusals,
}

/// The events of one request, normalized, and its item rows.
#[derive(Default)]
struct Decoded {
    header_event_id: Option<Uuid>,
    events: Vec<faultline_protocol::Event>,
    /// Item rows as the WAL logs them.
    rows: Vec<ItemRow>,
    /// The same rows as batches, one per table.
    item_batches: Vec<ItemBatch>,
    /// Items turned into rows, per type (counted as accepted once logged).
    item_counts: Vec<(ItemType, u64)>,
    /// Items in which a scrubbing rule changed something, per data category and rule
    /// (counted as `scrubbed` once logged).
    item_scrubbed: Scrubbed,
    /// Attachments to write before their rows (which are in `rows`) are logged.
    attachments: Vec<Blob>,
    /// When the request arrived.
    received: chrono::DateTime<Utc>,
    /// What quotas and rate limits refused of it.
    refused: Refusals,
}

/// Items in which scrubbing changed something, per data category and the rules that did
/// (sorted, joined by `, `): each item is counted once, as every outcome counts it.
#[derive(Default)]
struct Scrubbed(Vec<(&'static str, String, u64)>);

impl Scrubbed {
    /// Counts one item of `category` in which `rules` (sorted, each once) changed something;
    /// nothing when there are none.
    fn count<'r>(&mut self, category: &'static str, rules: impl IntoIterator<Item = &'r String>) {
        let mut reason = String::new();
        for rule in rules {
            if !reason.is_empty() {
                reason.push_str(", ");
            }
            reason.push_str(rule);
        }
        if reason.is_empty() {
            return;
        }
        match self
            .0
            .iter_mut()
            .find(|(c, r, _)| *c == category && *r == reason)
        {
            Some((_, _, n)) => *n += 1,
            None => self.0.push((category, reason, 1)),
        }
    }
}

/// The bytes of one attachment and the object they go to.
struct Blob {
    id: Uuid,
    key: object_store::path::Path,
    data: Bytes,
}

/// What one envelope item is, for the request it came in.
enum Handled {
    /// An event: normalized and grouped with the request's other events.
    Event,
    /// An item of a type with a table: its rows, as logged and as batches, and the records of
    /// a container left out as invalid.
    Rows(Vec<ItemRow>, Vec<ItemBatch>, u64),
    /// An attachment: its bytes become an object, its headers a row (needs the item's headers
    /// and the envelope's event id, see [`decode_events`]).
    Attachment,
    /// A type faultline does not store (yet).
    NotStored,
}

/// Handles one envelope item by its type. Every type is named, so a new `ItemType` does not
/// compile until it is handled here.
fn decode_envelope_item(
    ty: &ItemType,
    payload: &[u8],
    ctx: RowContext<'_>,
) -> Result<Handled, items::Error> {
    use crate::items::{check_ins, feedback, logs, outcomes, sessions, spans, transactions};
    let kept = |records: items::Records| {
        let batches = batches_of(&records.rows)?;
        Ok::<_, items::Error>(Handled::Rows(records.rows, batches, records.invalid))
    };
    let rows = |rows: Vec<ItemRow>| kept(rows.into());
    Ok(match ty {
        ItemType::Event => Handled::Event,
        ItemType::Transaction => rows(transactions::rows(payload, ctx)?)?,
        ItemType::Span => kept(spans::rows(payload, ctx)?)?,
        ItemType::Log => kept(logs::rows(payload, ctx)?)?,
        ItemType::Feedback => rows(feedback::feedback_rows(payload, ctx)?)?,
        ItemType::UserReport => rows(feedback::user_report_rows(payload, ctx)?)?,
        ItemType::ClientReport => rows(outcomes::client_report_rows(payload, ctx)?)?,
        ItemType::Attachment => Handled::Attachment,
        ItemType::Session => rows(sessions::session_rows(payload, ctx)?)?,
        ItemType::Sessions => rows(sessions::aggregate_rows(payload, ctx)?)?,
        ItemType::CheckIn => rows(check_ins::rows(payload, ctx)?)?,
        ItemType::Profile
        | ItemType::ReplayEvent
        | ItemType::ReplayRecording
        | ItemType::Security
        | ItemType::FormData
        | ItemType::RawSecurity
        | ItemType::Other(_) => Handled::NotStored,
    })
}

/// The rows of one item as batches of their tables: proves they fit the schemas before they
/// are logged.
fn batches_of(rows: &[ItemRow]) -> Result<Vec<ItemBatch>, items::Error> {
    let mut tables: Vec<&'static items::ItemTable> = Vec::new();
    for row in rows {
        if !tables.contains(&row.table) {
            tables.push(row.table);
        }
    }
    tables
        .into_iter()
        .map(|table| {
            let json = rows
                .iter()
                .filter(|r| r.table == table)
                .map(|r| r.json.as_slice());
            Ok(ItemBatch {
                table,
                batch: table.decode(json)?,
            })
        })
        .collect()
}

/// The batches of a request, one per table.
fn merge_batches(batches: Vec<ItemBatch>) -> Vec<ItemBatch> {
    let mut merged: Vec<(
        &'static items::ItemTable,
        Vec<datafusion::arrow::array::RecordBatch>,
    )> = Vec::new();
    for ItemBatch { table, batch } in batches {
        match merged.iter_mut().find(|(t, _)| *t == table) {
            Some((_, list)) => list.push(batch),
            None => merged.push((table, vec![batch])),
        }
    }
    merged
        .into_iter()
        .flat_map(|(table, list)| {
            match datafusion::arrow::compute::concat_batches(&table.schema(), &list) {
                Ok(batch) => vec![ItemBatch { table, batch }],
                Err(_) => list
                    .into_iter()
                    .map(|batch| ItemBatch { table, batch })
                    .collect(),
            }
        })
        .collect()
}

/// Where and when a request came from, and how its project wants its events scrubbed.
struct Origin<'a> {
    received: chrono::DateTime<Utc>,
    client_ip: Option<IpAddr>,
    scrubber: &'a Scrubber,
    outcomes: &'a Outcomes,
}

/// Decompresses, parses, normalizes and scrubs a request body (CPU-bound: runs off the async
/// threads).
fn decode_events(
    endpoint: Endpoint,
    content_encoding: Option<&str>,
    body: &[u8],
    limits: &DecodeLimits,
    rows_ctx: RowContext<'_>,
    origin: &Origin<'_>,
    admit: &dyn Fn(&ItemType, u64, u64) -> Result<()>,
) -> Result<Decoded> {
    let mut decoded = Decoded {
        received: origin.received,
        ..Decoded::default()
    };
    // one item of `records` records and `bytes`
    let count = |ty: &ItemType, outcome, reason, records: u64, bytes: usize| {
        origin.outcomes.add_items(
            rows_ctx.project_id,
            rows_ctx.project,
            origin.received,
            ty,
            outcome,
            reason,
            records,
            bytes as u64,
        );
    };
    let (body, mut ranges, header_event_id, sent_at) = match endpoint {
        Endpoint::Store => {
            let body = decode_body(content_encoding, body, limits.max_event)?;
            let body = Bytes::from(decode_store_body(&body, limits.max_event)?.into_owned());
            let whole = 0..body.len();
            (body, vec![whole], None, None)
        }
        Endpoint::Envelope => {
            let body = decode_body(content_encoding, body, limits.max_envelope)?;
            let envelope = Envelope::parse(
                &body,
                &EnvelopeLimits {
                    max_event_size: limits.max_event,
                    max_attachment_size: limits.max_attachment,
                },
            )?;
            let mut ranges = Vec::new();
            let mut batches = Vec::new();
            let mut attachments = Vec::new();
            let mut attachments_size = 0usize;
            for (index, item) in envelope.items.iter().enumerate() {
                let payload = &body[item.range.clone()];
                // events are admitted together below, with their rate limits
                if item.ty != ItemType::Event
                    && let Err(err) = admit(&item.ty, item.records(), payload.len() as u64)
                {
                    tracing::debug!(item_type = %item.ty, cause = %err, "item refused");
                    decoded.refused.merge(err.refusals());
                    continue;
                }
                match decode_envelope_item(&item.ty, payload, rows_ctx) {
                    Ok(Handled::Event) => ranges.push(item.range.clone()),
                    Ok(Handled::Attachment) => {
                        let size = payload.len();
                        let over = if size > limits.max_attachment {
                            Some(("max_attachment_size", limits.max_attachment))
                        } else if attachments_size + size > limits.max_attachments {
                            Some(("max_attachments_size", limits.max_attachments))
                        } else {
                            None
                        };
                        if let Some((limit_name, limit)) = over {
                            tracing::info!(
                                project = rows_ctx.project_id,
                                filename = item.header_str("filename").unwrap_or_default(),
                                bytes = size,
                                "attachment refused: over limits.{limit_name} of {limit} bytes; \
                                 the envelope's other items are kept"
                            );
                            crate::metrics::ingest_items(&item.ty, "too_large", 1);
                            count(&item.ty, Outcome::TooLarge, limit_name, 1, size);
                            continue;
                        }
                        match items::attachments::attachment(
                            envelope.headers.event_id,
                            index,
                            &item.headers,
                            payload,
                            rows_ctx,
                        ) {
                            Ok(attachment) => {
                                attachments_size += size;
                                attachments.push((attachment, item.range.clone()));
                            }
                            Err(err) => {
                                tracing::debug!(item_type = %item.ty, cause = %err, "invalid item skipped");
                                crate::metrics::ingest_items(&item.ty, "invalid", 1);
                                count(&item.ty, Outcome::Invalid, "invalid_item", 1, size);
                            }
                        }
                    }
                    Ok(Handled::Rows(rows, item_batches, invalid)) => {
                        if invalid > 0 {
                            crate::metrics::ingest_items(&item.ty, "invalid", invalid);
                            count(&item.ty, Outcome::Invalid, "invalid_item", invalid, 0);
                        }
                        // a log or span container counts the records it stored, one row each
                        // (Relay's `log_item` and `span` quantities); any other item once
                        let per_record = item.ty.counts_records();
                        let stored = if per_record { rows.len() as u64 } else { 1 };
                        match decoded.item_counts.iter_mut().find(|(t, _)| *t == item.ty) {
                            Some((_, count)) => *count += stored,
                            None => decoded.item_counts.push((item.ty.clone(), stored)),
                        }
                        let category = crate::outcomes::category(&item.ty);
                        if per_record {
                            for row in &rows {
                                decoded.item_scrubbed.count(category, &row.scrubbed_by);
                            }
                        } else if rows.iter().any(|r| !r.scrubbed_by.is_empty()) {
                            let mut rules: Vec<&String> =
                                rows.iter().flat_map(|r| &r.scrubbed_by).collect();
                            rules.sort_unstable();
                            rules.dedup();
                            decoded.item_scrubbed.count(category, rules);
                        }
                        decoded.rows.extend(rows);
                        batches.extend(item_batches);
                    }
                    Ok(Handled::NotStored) => {
                        tracing::debug!(item_type = %item.ty, bytes = payload.len(), "item not stored");
                        crate::metrics::ingest_items(&item.ty, "not_stored", 1);
                        count(
                            &item.ty,
                            Outcome::Filtered,
                            "item_type_not_stored",
                            item.records(),
                            payload.len(),
                        );
                    }
                    Err(err) => {
                        tracing::debug!(item_type = %item.ty, cause = %err, "invalid item skipped");
                        crate::metrics::ingest_items(&item.ty, "invalid", item.records());
                        count(
                            &item.ty,
                            Outcome::Invalid,
                            "invalid_item",
                            item.records(),
                            payload.len(),
                        );
                    }
                }
            }
            let sent_at = envelope.headers.sent_at;
            let event_id = envelope.headers.event_id;
            drop(envelope);
            let body = Bytes::from(body.into_owned());
            if !attachments.is_empty() {
                let date = rows_ctx.received.format("%Y-%m-%d").to_string();
                for (attachment, range) in attachments {
                    let rows = vec![attachment.row];
                    match batches_of(&rows) {
                        Ok(item_batches) => batches.extend(item_batches),
                        Err(err) => {
                            tracing::debug!(cause = %err, "invalid attachment skipped");
                            count(
                                &ItemType::Attachment,
                                Outcome::Invalid,
                                "invalid_item",
                                1,
                                range.len(),
                            );
                            continue;
                        }
                    }
                    decoded.rows.extend(rows);
                    decoded.attachments.push(Blob {
                        id: attachment.id,
                        key: keys::attachment_object(
                            rows_ctx.project_id,
                            &date,
                            &attachment.event_id,
                            &attachment.id,
                        ),
                        data: body.slice(range),
                    });
                }
            }
            decoded.item_batches = merge_batches(batches);
            (body, ranges, event_id, sent_at)
        }
    };
    if let Some(size) = ranges
        .iter()
        .map(|r| r.len())
        .find(|size| *size > limits.max_event)
    {
        return Err(Error::EventTooLarge {
            size,
            limit: limits.max_event,
        });
    }
    if !ranges.is_empty()
        && let Err(err) = admit(
            &ItemType::Event,
            ranges.len() as u64,
            ranges.iter().map(|r| r.len() as u64).sum(),
        )
    {
        if decoded.rows.is_empty() && decoded.refused.is_empty() {
            // the request's only refusal: answered 429 with the limit's own message
            return Err(err);
        }
        // the envelope's other items are kept; the SDK is told to hold events back (or, with
        // nothing left, `submit` refuses the request naming every limit)
        decoded.refused.merge(err.refusals());
        tracing::debug!(cause = %err, "events refused, the envelope's other items kept");
        ranges.clear();
    }
    let ctx = NormalizeContext {
        received: origin.received,
        client_ip: origin.client_ip,
        event_id: header_event_id,
    };
    // scrubbed here, before the events reach the WAL: nothing unscrubbed is ever written
    let processing = Processing {
        scrubber: Some(origin.scrubber),
        sent_at,
    };
    let mut events = Vec::with_capacity(ranges.len());
    for range in ranges {
        events.push(process_event(&body[range], &ctx, &processing)?);
    }
    decoded.header_event_id = header_event_id;
    decoded.events = events;
    Ok(decoded)
}

/// Groups a normalized event of `project` by its primary hash alone (no index of the hashes
/// seen before: for tools and tests; ingest assigns issues through [`GroupHashes`]).
pub fn stored_event(project: &Project, event: faultline_protocol::Event) -> StoredEvent {
    let hash = grouping::grouping_of(&event).hash.clone();
    StoredEvent {
        project_id: project.id,
        project: project.name.clone(),
        issue_id: grouping::issue_id(project.id, &hash),
        grouping_hash: hash,
        event,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dedup_forgets_oldest_when_full() {
        let dedup = Dedup::new(2);
        let ids: Vec<Uuid> = (0..3).map(|_| Uuid::new_v4()).collect();
        assert!(dedup.insert(1, ids[0]));
        assert!(!dedup.insert(1, ids[0]));
        assert!(dedup.insert(2, ids[0]), "ids are per project");
        assert!(dedup.insert(1, ids[1]));
        assert!(dedup.insert(1, ids[0]), "evicted after capacity");
    }
}
