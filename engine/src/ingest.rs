//! The ingest pipeline, below HTTP: authenticate, decode, parse, normalize, group, deduplicate,
//! log durably, and answer with the event id.
//!
//! [`Ingest::submit`] returns only after the events are fsynced in the WAL and visible to SQL.
//! A request that fails leaves nothing behind: events are logged all together or not at all.

use std::collections::{HashMap, HashSet, VecDeque};
use std::hash::BuildHasher;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Utc;
use faultline_config::LimitsConfig;
use faultline_protocol::auth::{AuthInput, parse_auth, parse_dsn};
use faultline_protocol::decode::{decode_body, decode_store_body};
use faultline_protocol::envelope::{Envelope, EnvelopeLimits, ItemType};
use faultline_protocol::grouping;
use faultline_protocol::normalize::{NormalizeContext, normalize_event};
use parking_lot::Mutex;
use uuid::Uuid;

use crate::events::StoredEvent;
use crate::tenancy::{self, Authorized, Project, Projects};
use crate::wal::{self, Record, Wal};

/// Which endpoint a request came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Endpoint {
    Envelope,
    Store,
}

/// One ingest request, already taken apart by the HTTP layer.
#[derive(Debug)]
pub struct Submission<'a> {
    pub endpoint: Endpoint,
    /// The `{project_id}` path segment as sent.
    pub project_id: &'a str,
    pub auth: AuthInput<'a>,
    pub content_encoding: Option<&'a str>,
    pub body: &'a [u8],
    pub client_ip: Option<IpAddr>,
}

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
    #[error("the server is behind on writing events to storage; retry later")]
    Backpressure { retry_after: Duration },
    #[error("cannot log events: {0}")]
    Wal(#[from] wal::Error),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
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
    rate: RateLimiter,
    in_flight: tokio::sync::Semaphore,
}

/// Ids of recently accepted events remembered for de-duplication.
const DEDUP_CAPACITY: usize = 1_000_000;

impl Ingest {
    pub fn new(
        projects: Arc<Projects>,
        wal: Wal,
        limits: LimitsConfig,
        max_unflushed: u64,
    ) -> Self {
        Self {
            projects,
            wal,
            max_unflushed,
            dedup: Dedup::new(DEDUP_CAPACITY),
            rate: RateLimiter::default(),
            in_flight: tokio::sync::Semaphore::new(limits.max_concurrent_requests.max(1)),
            limits,
        }
    }

    /// Marks an event id as already stored (used when replaying the WAL).
    pub fn remember(&self, project_id: u64, event_id: Uuid) {
        self.dedup.insert(project_id, event_id);
    }

    /// Accepts one request. Returns the id of its event, if it carried one.
    #[tracing::instrument(level = "debug", skip_all, fields(project = sub.project_id))]
    pub async fn submit(&self, sub: Submission<'_>) -> Result<Option<Uuid>> {
        let _permit = self
            .in_flight
            .try_acquire()
            .map_err(|_| Error::Backpressure {
                retry_after: Duration::from_secs(1),
            })?;
        let project_id: u64 = sub
            .project_id
            .parse()
            .ok()
            .filter(|id| *id > 0)
            .ok_or_else(|| Error::BadProjectId(sub.project_id.to_owned()))?;
        let max_event = self.limits.max_event_size.as_u64() as usize;
        let received = Utc::now();

        // A key sent with the request is checked before any decompression or parsing, so a
        // request with a bad key costs almost nothing.
        let request_project = match parse_auth(&sub.auth)? {
            Some(auth) => Some(
                self.projects
                    .authorize(project_id, &auth.public_key)
                    .await?,
            ),
            None if sub.endpoint == Endpoint::Store => return Err(Error::MissingAuth),
            None => None,
        };
        let (dsn_key, body, ranges, header_event_id) = match sub.endpoint {
            Endpoint::Store => {
                let body = decode_body(sub.content_encoding, sub.body, max_event)?;
                let body = decode_store_body(&body, max_event)?.into_owned();
                let whole = 0..body.len();
                (None, body, vec![whole], None)
            }
            Endpoint::Envelope => {
                let limit = self.limits.max_envelope_size.as_u64() as usize;
                let body = decode_body(sub.content_encoding, sub.body, limit)?;
                let envelope = Envelope::parse(
                    &body,
                    &EnvelopeLimits {
                        max_event_size: max_event,
                        max_attachment_size: self.limits.max_attachment_size.as_u64() as usize,
                    },
                )?;
                let mut key = None;
                if request_project.is_none()
                    && let Some(dsn) = &envelope.headers.dsn
                {
                    let (dsn_key, dsn_project) = parse_dsn(dsn)?;
                    if dsn_project != project_id.to_string() {
                        return Err(Error::ProjectMismatch {
                            dsn: dsn_project,
                            url: project_id,
                        });
                    }
                    key = Some(dsn_key);
                }
                for item in envelope.items.iter().filter(|i| i.ty != ItemType::Event) {
                    crate::metrics::ingest_items(&item.ty, "discarded", 1);
                }
                let ranges: Vec<_> = envelope
                    .items
                    .iter()
                    .filter(|item| item.ty == ItemType::Event)
                    .map(|item| item.range.clone())
                    .collect();
                (key, body.into_owned(), ranges, envelope.headers.event_id)
            }
        };
        let payloads: Vec<&[u8]> = ranges.into_iter().map(|r| &body[r]).collect();
        let project = match (request_project, dsn_key) {
            (Some(project), _) => project,
            (None, Some(key)) => self.projects.authorize(project_id, &key).await?,
            (None, None) => return Err(Error::MissingAuth),
        };
        if payloads.is_empty() {
            return Ok(header_event_id);
        }
        for payload in &payloads {
            if payload.len() > max_event {
                return Err(Error::EventTooLarge {
                    size: payload.len(),
                    limit: max_event,
                });
            }
        }
        if self.wal.unflushed_bytes() > self.max_unflushed {
            return Err(Error::Backpressure {
                retry_after: Duration::from_secs(5),
            });
        }
        self.rate.check(&project, payloads.len() as u64)?;

        let ctx = NormalizeContext {
            received,
            client_ip: sub.client_ip,
            event_id: header_event_id,
        };
        let mut first_id = None;
        let mut data = Vec::new();
        let mut events = Vec::with_capacity(payloads.len());
        let mut reserved = Vec::with_capacity(payloads.len());
        for payload in &payloads {
            let event = match normalize_event(payload, &ctx) {
                Ok(event) => event,
                Err(err) => {
                    self.release(project.id, &reserved);
                    return Err(err.into());
                }
            };
            first_id.get_or_insert(event.event_id);
            if !self.dedup.insert(project.id, event.event_id) {
                tracing::debug!(event_id = %event.event_id.simple(), "duplicate event dropped");
                continue;
            }
            reserved.push(event.event_id);
            let stored = stored_event(&project, event);
            wal::encode(
                &mut data,
                wal::Fields {
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
        if !events.is_empty()
            && let Err(err) = self.wal.append(data, events).await
        {
            self.release(project.id, &reserved);
            return Err(err.into());
        }
        crate::metrics::ingest_items(&ItemType::Event, "accepted", events_len(&reserved));
        crate::metrics::ingest_items(
            &ItemType::Event,
            "duplicate",
            events_len(&payloads) - events_len(&reserved),
        );
        Ok(first_id.or(header_event_id))
    }

    fn release(&self, project_id: u64, ids: &[Uuid]) {
        for id in ids {
            self.dedup.forget(project_id, *id);
        }
    }
}

fn events_len<T>(items: &[T]) -> u64 {
    items.len() as u64
}

/// Groups a normalized event of `project`.
pub fn stored_event(project: &Project, event: faultline_protocol::Event) -> StoredEvent {
    let grouping = grouping::group(&event);
    StoredEvent {
        project_id: project.id,
        project: project.name.clone(),
        issue_id: grouping::issue_id(project.id, &grouping.hash),
        grouping_hash: grouping.hash,
        event,
    }
}

/// Rebuilds a stored event from a WAL record (normalizing an already normalized event is a
/// no-op, so the row is the one that was acknowledged).
pub fn replay_record(record: &Record) -> Result<StoredEvent> {
    let received = chrono::DateTime::from_timestamp_millis(record.received_ms).unwrap_or_default();
    let event = normalize_event(
        &record.json,
        &NormalizeContext {
            received,
            client_ip: None,
            event_id: None,
        },
    )?;
    Ok(StoredEvent {
        project_id: record.project_id,
        project: record.project.clone(),
        issue_id: record.issue_id,
        grouping_hash: record.grouping_hash.clone(),
        event,
    })
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
