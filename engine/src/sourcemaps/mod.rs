//! Source maps: artifact bundles uploaded by sentry-cli ([`bundles`]) and the resolution of
//! minified JavaScript frames with them ([`resolve`]), at ingest before grouping and again when
//! an event is viewed (for maps uploaded after the event).
//!
//! Parsed maps are kept in memory, least recently used first out, within
//! `sourcemaps.cache_size`. A lookup that found nothing (or a broken map) is remembered for
//! [`NEGATIVE_TTL`], so events without maps cost no object store request each.

pub mod bundles;
pub mod resolve;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{NaiveDate, Utc};
use faultline_config::SourcemapsConfig;
use faultline_protocol::Event;
use faultline_protocol::normalize::{NormalizeContext, normalize_stored};
use parking_lot::Mutex;
use serde_json::{Map, Value};

use crate::store::{self, Store};

pub use bundles::{AssembleRequest, Assembled, BundleRecord, Expired};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Store(#[from] store::Error),
    #[error("chunk {name:?}: the file name must be the chunk's SHA-1 (40 hex digits)")]
    ChunkName { name: String },
    #[error("chunk {name}: its content's SHA-1 is {actual}")]
    ChunkChecksum { name: String, actual: String },
    #[error("chunk {name}: {size} bytes exceeds the chunk size of {limit} bytes")]
    ChunkTooLarge { name: String, size: u64, limit: u64 },
    #[error("chunk {name}: cannot decompress gzip: {message}")]
    Gzip { name: String, message: String },
    #[error("checksum: {0:?} is not a SHA-1 (40 hex digits)")]
    BadChecksum(String),
    #[error("projects: name at least one project of the organization")]
    NoProjects,
    #[error("the bundle's SHA-1 is {actual}, not the checksum {expected} it was announced with")]
    BundleChecksum { expected: String, actual: String },
    #[error("the bundle of {size} bytes exceeds sourcemaps.max_bundle_size of {limit} bytes")]
    BundleTooLarge { size: u64, limit: u64 },
    #[error("the bundle is not a valid artifact bundle: {0}")]
    BadBundle(String),
    #[error("{path}: {size} bytes exceeds sourcemaps.max_file_size of {limit} bytes")]
    FileTooLarge { path: String, size: u64, limit: u64 },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// How long a lookup that found no map (or a broken one) is remembered.
pub const NEGATIVE_TTL: Duration = Duration::from_secs(30);

/// Uploaded bundles and resolution with them, shared by the API and ingest.
pub struct SourceMaps {
    store: Store,
    config: SourcemapsConfig,
    cache: Mutex<Cache>,
    /// The day each bundle was last marked as used, so it is written at most daily.
    touched: Mutex<HashMap<String, NaiveDate>>,
    /// Per organization: whether it has uploaded any bundle, and when that was checked (a
    /// "no" is checked again after [`NEGATIVE_TTL`]).
    orgs: Mutex<HashMap<String, (bool, Instant)>>,
}

impl std::fmt::Debug for SourceMaps {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SourceMaps").finish_non_exhaustive()
    }
}

impl SourceMaps {
    pub fn new(store: Store, config: SourcemapsConfig) -> Self {
        let capacity = usize::try_from(config.cache_size.as_u64()).unwrap_or(usize::MAX);
        Self {
            store,
            config,
            cache: Mutex::new(Cache::new(capacity)),
            touched: Mutex::new(HashMap::new()),
            orgs: Mutex::new(HashMap::new()),
        }
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    pub fn config(&self) -> &SourcemapsConfig {
        &self.config
    }

    /// Resolves the minified frames of a normalized event of `project` (in `org`) and
    /// normalizes it again, so grouping sees the original frames. An event with nothing to
    /// resolve comes back unchanged; one whose maps are missing or broken comes back with
    /// the reason in `errors`.
    pub async fn resolve_event(&self, org: &str, project: &str, event: Event) -> Event {
        if !resolve::is_candidate(&event) || !self.has_uploads(org).await {
            return event;
        }
        let Ok(Value::Object(mut root)) = serde_json::from_str::<Value>(&event.json) else {
            return event;
        };
        if !self.resolve_value(org, project, &mut root).await {
            return event;
        }
        let Ok(json) = serde_json::to_vec(&root) else {
            return event;
        };
        let ctx = NormalizeContext {
            received: event.received,
            client_ip: None,
            event_id: None,
        };
        match normalize_stored(&json, &ctx) {
            Ok(resolved) => resolved,
            Err(err) => {
                tracing::warn!(event_id = %event.event_id.simple(), cause = %err,
                    "a resolved event did not normalize again; stored as sent");
                event
            }
        }
    }

    /// A stored event's JSON with the frames still minified resolved (for display, when the
    /// map came after the event); `None` when nothing changed. `project_id` is looked up in
    /// `projects` for its organization and name.
    pub async fn resolve_stored(
        &self,
        projects: &crate::tenancy::Projects,
        project_id: u64,
        json: &str,
    ) -> Option<String> {
        let list = projects.list().await.ok()?;
        let project = list.iter().find(|p| p.id == project_id)?;
        if !self.has_uploads(&project.org).await {
            return None;
        }
        let Ok(Value::Object(mut root)) = serde_json::from_str::<Value>(json) else {
            return None;
        };
        if !self
            .resolve_value(&project.org, &project.name, &mut root)
            .await
        {
            return None;
        }
        serde_json::to_string(&root).ok()
    }

    /// Resolves the frames of a stored or normalized event's JSON in place; true if it
    /// changed (frames rewritten or errors recorded).
    pub async fn resolve_value(
        &self,
        org: &str,
        project: &str,
        root: &mut Map<String, Value>,
    ) -> bool {
        let wanted = resolve::wanted(root);
        if wanted.is_empty() {
            return false;
        }
        let mut found = HashMap::with_capacity(wanted.len());
        let deadline = tokio::time::Instant::now() + self.config.resolve_timeout;
        for key in wanted {
            let lookup =
                match tokio::time::timeout_at(deadline, self.lookup(org, project, &key)).await {
                    Ok(lookup) => lookup,
                    Err(_) => Lookup::TimedOut,
                };
            found.insert(key, lookup);
        }
        resolve::apply(root, &found)
    }

    /// Whether `org` ever uploaded a bundle: an organization that never did has its events
    /// stored as sent, without a second parse and normalization each (nor `js_no_source`
    /// errors on every event).
    async fn has_uploads(&self, org: &str) -> bool {
        if let Some((known, at)) = self.orgs.lock().get(org).copied()
            && (known || at.elapsed() < NEGATIVE_TTL)
        {
            return known;
        }
        let known = match self
            .store
            .get(&crate::store::keys::sourcemap_uploads(org))
            .await
        {
            Ok(_) => true,
            Err(store::Error::Request {
                source: object_store::Error::NotFound { .. },
                ..
            }) => false,
            // the store may answer next time; resolution handles its errors itself
            Err(_) => return true,
        };
        let mut orgs = self.orgs.lock();
        if orgs.len() > 100_000 {
            orgs.clear();
        }
        orgs.insert(org.to_owned(), (known, Instant::now()));
        known
    }

    /// The map of `key`, from the cache or the store.
    async fn lookup(&self, org: &str, project: &str, key: &resolve::Key) -> Lookup {
        let cache_key = format!("{org}\u{0}{project}\u{0}{}", key.cache_key());
        if let Some(lookup) = self.cache.lock().get(&cache_key) {
            if let Lookup::Found(map) = &lookup {
                self.touch(org, &map.bundle);
            }
            return lookup;
        }
        let lookup = match resolve::load(self, org, project, key).await {
            Ok(Some(map)) => Lookup::Found(Arc::new(map)),
            Ok(None) => Lookup::Missing,
            Err(err @ Error::Store(_)) => {
                // not remembered: the store may answer next time
                tracing::warn!(org, cause = %err, "cannot read a source map");
                return Lookup::Unavailable;
            }
            Err(err @ Error::FileTooLarge { .. }) => Lookup::TooLarge(err.to_string()),
            Err(err) => Lookup::Invalid(err.to_string()),
        };
        if let Lookup::Found(map) = &lookup {
            self.touch(org, &map.bundle);
        }
        self.cache.lock().insert(cache_key, lookup.clone());
        lookup
    }

    /// Marks a bundle as used today, at most once a day per bundle (in the background).
    fn touch(&self, org: &str, bundle: &str) {
        let today = Utc::now().date_naive();
        let key = format!("{org}/{bundle}");
        {
            let mut touched = self.touched.lock();
            if touched.get(&key) == Some(&today) {
                return;
            }
            if touched.len() > 100_000 {
                touched.clear();
            }
            touched.insert(key, today);
        }
        let store = self.store.clone();
        let (org, bundle) = (org.to_owned(), bundle.to_owned());
        tokio::spawn(async move {
            if let Err(err) = bundles::touch(&store, &org, &bundle, today).await {
                tracing::warn!(org, bundle, cause = %err, "cannot mark an artifact bundle as used");
            }
        });
    }

    /// Forgets the lookups that found nothing, after a bundle was uploaded: the next event
    /// (or view) looks again.
    pub fn uploaded(&self) {
        self.orgs.lock().retain(|_, (known, _)| *known);
        self.cache.lock().forget_negative();
    }

    /// Deletes unused bundles and stale chunks (the retention job).
    pub async fn expire(&self) -> Result<Expired> {
        bundles::expire(&self.store, self.config.unused_days, Utc::now()).await
    }
}

/// What a lookup found.
#[derive(Clone)]
pub(crate) enum Lookup {
    Found(Arc<resolve::Loaded>),
    /// No bundle has this file (for this project).
    Missing,
    /// The bundle's map could not be read or parsed.
    Invalid(String),
    /// The file is over `sourcemaps.max_file_size`.
    TooLarge(String),
    /// `sourcemaps.resolve_timeout` passed first.
    TimedOut,
    /// The object store did not answer.
    Unavailable,
}

impl Lookup {
    fn weight(&self) -> usize {
        match self {
            Self::Found(map) => map.weight,
            _ => 256,
        }
    }
}

struct CacheEntry {
    lookup: Lookup,
    inserted: Instant,
    used: u64,
}

/// Lookups by key, bounded by the estimated bytes of the parsed maps; the least recently used
/// go first. Negative answers expire after [`NEGATIVE_TTL`].
struct Cache {
    entries: HashMap<String, CacheEntry>,
    bytes: usize,
    capacity: usize,
    tick: u64,
}

impl Cache {
    fn new(capacity: usize) -> Self {
        Self {
            entries: HashMap::new(),
            bytes: 0,
            capacity,
            tick: 0,
        }
    }

    fn get(&mut self, key: &str) -> Option<Lookup> {
        self.tick += 1;
        let tick = self.tick;
        let entry = self.entries.get_mut(key)?;
        if !matches!(entry.lookup, Lookup::Found(_)) && entry.inserted.elapsed() > NEGATIVE_TTL {
            let weight = entry.lookup.weight();
            self.entries.remove(key);
            self.bytes = self.bytes.saturating_sub(weight);
            return None;
        }
        entry.used = tick;
        Some(entry.lookup.clone())
    }

    fn forget_negative(&mut self) {
        let mut freed = 0;
        self.entries.retain(|_, e| {
            let keep = matches!(e.lookup, Lookup::Found(_));
            if !keep {
                freed += e.lookup.weight();
            }
            keep
        });
        self.bytes = self.bytes.saturating_sub(freed);
    }

    fn insert(&mut self, key: String, lookup: Lookup) {
        let weight = lookup.weight();
        if weight > self.capacity {
            return;
        }
        self.tick += 1;
        if let Some(old) = self.entries.remove(&key) {
            self.bytes = self.bytes.saturating_sub(old.lookup.weight());
        }
        while self.bytes + weight > self.capacity {
            let Some(oldest) = self
                .entries
                .iter()
                .min_by_key(|(_, e)| e.used)
                .map(|(k, _)| k.clone())
            else {
                break;
            };
            if let Some(old) = self.entries.remove(&oldest) {
                self.bytes = self.bytes.saturating_sub(old.lookup.weight());
            }
        }
        self.bytes += weight;
        self.entries.insert(
            key,
            CacheEntry {
                lookup,
                inserted: Instant::now(),
                used: self.tick,
            },
        );
    }
}

#[cfg(test)]
pub(crate) mod tests;
