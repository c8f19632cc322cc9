//! Which issue a grouping hash belongs to, per project: the in-memory index the ingest path
//! consults for every event, as Sentry's `GroupHash` table.
//!
//! An event joins the issue of the first of its hashes (primary, secondary, then faultline's
//! earlier hash) that the project has seen; otherwise it opens the issue whose id derives from
//! its primary hash ([`faultline_protocol::grouping::issue_id`]), and all its hashes point there
//! from then on.
//!
//! - Loaded lazily per project: the first event of a project in this process lists
//!   `meta/grouphashes/project=<id>/` and reads its segments.
//! - Persisted off the ack path: new hashes are collected and written every second as one
//!   create-only segment per project (`<millis>-<node>-<seq>.json`, a list of `[hash, issue]`).
//!   An event acknowledged before its segment was written is in the WAL; replaying the WAL
//!   records its hashes again ([`GroupHashes::observe`]).
//! - Deterministic: where two nodes recorded one hash for different issues (both saw it first
//!   at the same moment), the smallest issue id wins when the segments are read.
//! - Installations from before Sentry's grouping: the first time a project's index is loaded,
//!   the hash stored with each existing event (faultline's earlier hash) is recorded for its
//!   issue, once (`legacy.json`), so those issues keep receiving their events. New events do
//!   not record their earlier hash: it would merge errors Sentry keeps apart.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};

use bytes::Bytes;
use datafusion::arrow::array::{Array, AsArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Int64Type};
use faultline_protocol::grouping::{self, Grouping};
use object_store::path::Path as ObjectPath;
use parking_lot::{Mutex, RwLock};
use tokio_util::sync::CancellationToken;

use crate::query::{ProjectFilter, QueryService};
use crate::store::{self, Store};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Store(#[from] store::Error),
    #[error("grouping index segment {path} is not valid: {message}")]
    Decode { path: String, message: String },
    #[error("cannot read the hashes of existing events of project {project_id}: {message}")]
    Legacy { project_id: u64, message: String },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The hashes of one project and their issues.
#[derive(Debug, Default)]
pub struct ProjectHashes {
    map: RwLock<HashMap<Box<str>, i64>>,
    /// Whether the project has issues from before Sentry's grouping (a non-empty
    /// `legacy.json`): only then is an event's earlier hash worked out and looked up.
    legacy: AtomicBool,
}

impl ProjectHashes {
    /// The issue of the first known hash of `grouping`, if any: its own hashes first, then
    /// faultline's earlier hash (from `legacy`, asked only when the project has issues from
    /// before the upgrade and none of the event's own hashes is known).
    pub fn known_issue(
        &self,
        grouping: &Grouping,
        legacy: impl FnOnce() -> Option<String>,
    ) -> Option<i64> {
        let found = {
            let map = self.map.read();
            grouping.all_hashes().find_map(|h| map.get(h).copied())
        };
        if found.is_some() || !self.legacy.load(Ordering::Relaxed) {
            return found;
        }
        let legacy = legacy()?;
        self.map.read().get(legacy.as_str()).copied()
    }

    /// Whether the project has issues from before Sentry's grouping.
    pub fn has_legacy(&self) -> bool {
        self.legacy.load(Ordering::Relaxed)
    }

    fn insert_smallest(&self, hash: &str, issue: i64) {
        let mut map = self.map.write();
        map.entry(hash.into())
            .and_modify(|known| *known = (*known).min(issue))
            .or_insert(issue);
    }

    pub fn len(&self) -> usize {
        self.map.read().len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.read().is_empty()
    }
}

/// Hashes waiting to be written: (project, hash, issue).
type Pending = Vec<(u64, Box<str>, i64)>;

/// Per project whose index is not loaded: the last attempt, and what was recorded since.
type Failed = HashMap<u64, (Option<std::time::Instant>, Arc<ProjectHashes>)>;

/// Hashes recorded per project before the project was loaded.
type Early = HashMap<u64, Vec<(Box<str>, i64)>>;

/// The index of every project this process has seen.
pub struct GroupHashes {
    store: Store,
    node: String,
    projects: RwLock<HashMap<u64, Arc<ProjectHashes>>>,
    /// Serializes loads, so one project is listed once.
    loading: tokio::sync::Mutex<()>,
    /// Recorded before the project was loaded (WAL replay at start).
    early: Mutex<Early>,
    pending: Mutex<Pending>,
    seq: AtomicU64,
    query: OnceLock<Arc<QueryService>>,
    /// Projects whose index could not be loaded: when, and what was recorded since.
    failed: Mutex<Failed>,
}

/// How long after a failed load of a project's index ingest tries again.
const RETRY_LOAD: std::time::Duration = std::time::Duration::from_secs(10);

/// Segments of a project beyond which loading it merges them into one.
const MERGE_SEGMENTS: usize = 64;

fn prefix(project_id: u64) -> String {
    format!("meta/grouphashes/project={project_id}")
}

impl GroupHashes {
    pub fn new(store: Store, node: &str) -> Self {
        Self {
            store,
            node: node.to_owned(),
            projects: RwLock::new(HashMap::new()),
            loading: tokio::sync::Mutex::new(()),
            early: Mutex::new(HashMap::new()),
            pending: Mutex::new(Vec::new()),
            seq: AtomicU64::new(0),
            query: OnceLock::new(),
            failed: Mutex::new(HashMap::new()),
        }
    }

    /// The query service that reads the hashes of existing events (set once the node has one;
    /// without it, projects load without that migration and try it again later).
    pub fn set_query(&self, query: Arc<QueryService>) {
        let _ = self.query.set(query);
    }

    /// The index of `project_id` for ingest: loaded on first use; while the store cannot be
    /// read (an outage), a provisional index that holds what this process records meanwhile,
    /// with a new attempt to load at most every [`RETRY_LOAD`]. Events keep being accepted: an
    /// issue then comes from the primary hash, or from a hash recorded since.
    pub async fn project_for_ingest(&self, project_id: u64) -> Arc<ProjectHashes> {
        if let Some(found) = self.projects.read().get(&project_id) {
            return Arc::clone(found);
        }
        // one attempt at a time per project: the others meanwhile use the provisional index
        let retry = {
            let mut failed = self.failed.lock();
            let entry = failed
                .entry(project_id)
                .or_insert_with(|| (None, Arc::default()));
            let due = entry.0.is_none_or(|at| at.elapsed() >= RETRY_LOAD);
            if due {
                entry.0 = Some(std::time::Instant::now());
            }
            due
        };
        if retry {
            match self.project(project_id).await {
                Ok(index) => return index,
                Err(err) => {
                    tracing::warn!(project_id, cause = %err,
                        "grouping index not loaded; events are grouped by their own hashes until it is");
                    let mut failed = self.failed.lock();
                    let entry = failed
                        .entry(project_id)
                        .or_insert_with(|| (None, Arc::default()));
                    entry.0 = Some(std::time::Instant::now());
                    return Arc::clone(&entry.1);
                }
            }
        }
        let failed = self.failed.lock();
        failed
            .get(&project_id)
            .map(|(_, index)| Arc::clone(index))
            .unwrap_or_default()
    }

    /// The index of `project_id`, loaded on first use.
    pub async fn project(&self, project_id: u64) -> Result<Arc<ProjectHashes>> {
        if let Some(found) = self.projects.read().get(&project_id) {
            return Ok(Arc::clone(found));
        }
        let _guard = self.loading.lock().await;
        if let Some(found) = self.projects.read().get(&project_id) {
            return Ok(Arc::clone(found));
        }
        let loaded = Arc::new(self.load(project_id).await?);
        // what was recorded while the index could not be loaded
        if let Some((_, provisional)) = self.failed.lock().remove(&project_id) {
            for (hash, issue) in provisional.map.read().iter() {
                if loaded.map.read().get(hash).is_none() {
                    loaded.insert_smallest(hash, *issue);
                }
            }
        }
        if let Some(early) = self.early.lock().remove(&project_id) {
            for (hash, issue) in early {
                if loaded.map.read().get(&hash).is_none() {
                    loaded.insert_smallest(&hash, issue);
                }
            }
        }
        self.projects
            .write()
            .insert(project_id, Arc::clone(&loaded));
        Ok(loaded)
    }

    async fn load(&self, project_id: u64) -> Result<ProjectHashes> {
        let index = ProjectHashes::default();
        let listed = self
            .store
            .list(&ObjectPath::from(prefix(project_id)))
            .await?;
        let mut migrated = false;
        let mut merged = Vec::new();
        for meta in &listed {
            let name = meta.location.filename().unwrap_or_default();
            migrated |= name == "legacy.json";
            let bytes = match self.store.get(&meta.location).await {
                Ok(bytes) => bytes,
                // merged into a newer segment by another node meanwhile (see below)
                Err(store::Error::Request {
                    source: object_store::Error::NotFound { .. },
                    ..
                }) => continue,
                Err(err) => return Err(err.into()),
            };
            let pairs: Vec<(String, i64)> =
                serde_json::from_slice(&bytes).map_err(|e| Error::Decode {
                    path: meta.location.to_string(),
                    message: e.to_string(),
                })?;
            if name == "legacy.json" && !pairs.is_empty() {
                index.legacy.store(true, Ordering::Relaxed);
            }
            for (hash, issue) in pairs {
                index.insert_smallest(&hash, issue);
            }
            if name != "legacy.json" {
                merged.push(meta.location.clone());
            }
        }
        if merged.len() > MERGE_SEGMENTS {
            self.merge(project_id, &index, &merged).await;
        }
        if !migrated && let Some(query) = self.query.get() {
            // Not fatal: without it, issues from before keep only the events that also share a
            // new hash; the next start of the process tries again.
            match legacy_pairs(query, project_id).await {
                Ok(pairs) => {
                    if !pairs.is_empty() {
                        index.legacy.store(true, Ordering::Relaxed);
                    }
                    for (hash, issue) in &pairs {
                        index.insert_smallest(hash, *issue);
                    }
                    let path = ObjectPath::from(format!("{}/legacy.json", prefix(project_id)));
                    let body = serde_json::to_vec(&pairs).unwrap_or_default();
                    match self.store.create_durable(&path, Bytes::from(body)).await {
                        Ok(()) | Err(store::Error::AlreadyExists { .. }) => {}
                        Err(err) => return Err(err.into()),
                    }
                    tracing::info!(
                        project_id,
                        hashes = pairs.len(),
                        "recorded the grouping hashes of existing issues"
                    );
                }
                Err(err) => tracing::warn!(
                    project_id,
                    cause = %err,
                    "the grouping hashes of existing issues were not read; retrying at the next start"
                ),
            }
        }
        Ok(index)
    }

    /// Replaces many small segments by one: writes every pair known (create-only), then deletes
    /// the segments it covers. Failures only leave the segments as they were.
    async fn merge(&self, project_id: u64, index: &ProjectHashes, segments: &[ObjectPath]) {
        let pairs: Vec<(String, i64)> = index
            .map
            .read()
            .iter()
            .map(|(hash, issue)| (hash.to_string(), *issue))
            .collect();
        let seq = self.seq.fetch_add(1, Ordering::Relaxed);
        let millis = chrono::Utc::now().timestamp_millis();
        let path = ObjectPath::from(format!(
            "{}/{millis:015}-{}-{seq}.json",
            prefix(project_id),
            self.node
        ));
        let body = serde_json::to_vec(&pairs).unwrap_or_default();
        if let Err(err) = self.store.create_durable(&path, Bytes::from(body)).await {
            tracing::warn!(project_id, cause = %err, "grouping index segments not merged");
            return;
        }
        for segment in segments {
            if let Err(err) = self.store.delete(segment).await {
                tracing::warn!(project_id, cause = %err, "a merged grouping index segment stays");
            }
        }
        tracing::info!(
            project_id,
            segments = segments.len(),
            hashes = pairs.len(),
            "merged the grouping index segments"
        );
    }

    /// The issue of an event of `project` with `grouping`: the issue of its first known hash,
    /// else a new one from its primary hash. Records every hash of the event that the project
    /// did not know yet (in memory at once; in the store with the next segment).
    pub fn assign(
        &self,
        project_id: u64,
        index: &ProjectHashes,
        grouping: &Grouping,
        legacy: impl FnOnce() -> Option<String>,
    ) -> i64 {
        let known = index.known_issue(grouping, legacy);
        let issue = known.unwrap_or_else(|| grouping::issue_id(project_id, &grouping.hash));
        // Only Sentry's hashes are recorded: the earlier hash is coarser (no source lines, for
        // one), so recording it for new events would merge what Sentry keeps apart.
        let missing: Vec<&str> = {
            let map = index.map.read();
            grouping
                .hashes
                .iter()
                .map(String::as_str)
                .filter(|h| !map.contains_key(*h))
                .collect()
        };
        if !missing.is_empty() {
            let mut pending = self.pending.lock();
            let mut map = index.map.write();
            for hash in missing {
                if map.get(hash).is_none() {
                    map.insert(hash.into(), issue);
                    pending.push((project_id, hash.into(), issue));
                }
            }
        }
        issue
    }

    /// Records the hashes of events already logged (WAL replay): their issue is the one they
    /// were acknowledged with.
    pub fn observe(&self, project_id: u64, issue: i64, grouping: &Grouping) {
        let loaded = self.projects.read().get(&project_id).map(Arc::clone);
        match loaded {
            Some(index) => {
                let mut pending = self.pending.lock();
                let mut map = index.map.write();
                for hash in &grouping.hashes {
                    if map.get(hash.as_str()).is_none() {
                        map.insert(hash.as_str().into(), issue);
                        pending.push((project_id, hash.as_str().into(), issue));
                    }
                }
            }
            None => {
                let mut early = self.early.lock();
                let mut pending = self.pending.lock();
                let list = early.entry(project_id).or_default();
                for hash in &grouping.hashes {
                    list.push((hash.as_str().into(), issue));
                    pending.push((project_id, hash.as_str().into(), issue));
                }
            }
        }
    }

    /// Writes the hashes recorded since the last call, one create-only segment per project.
    /// On failure they are kept for the next call.
    pub async fn persist(&self) -> Result<usize> {
        let pending = std::mem::take(&mut *self.pending.lock());
        if pending.is_empty() {
            return Ok(0);
        }
        let mut by_project: HashMap<u64, Vec<(Box<str>, i64)>> = HashMap::new();
        for (project, hash, issue) in pending {
            by_project.entry(project).or_default().push((hash, issue));
        }
        let mut written = 0;
        let mut failed: Option<Error> = None;
        for (project, pairs) in by_project {
            let seq = self.seq.fetch_add(1, Ordering::Relaxed);
            let millis = chrono::Utc::now().timestamp_millis();
            let path = ObjectPath::from(format!(
                "{}/{millis:015}-{}-{seq}.json",
                prefix(project),
                self.node
            ));
            let body = serde_json::to_vec(&pairs).unwrap_or_default();
            match self.store.create_durable(&path, Bytes::from(body)).await {
                Ok(()) => written += pairs.len(),
                Err(err) => {
                    let mut pending = self.pending.lock();
                    pending.extend(pairs.into_iter().map(|(h, i)| (project, h, i)));
                    failed = Some(err.into());
                }
            }
        }
        match failed {
            Some(err) => Err(err),
            None => Ok(written),
        }
    }

    /// Persists every second until `shutdown`, then once more.
    pub async fn persist_loop(self: Arc<Self>, shutdown: CancellationToken) {
        let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                () = shutdown.cancelled() => break,
            }
            if let Err(err) = self.persist().await {
                tracing::warn!(cause = %err, "grouping hashes not written yet; retrying");
            }
        }
        if let Err(err) = self.persist().await {
            tracing::warn!(cause = %err, "grouping hashes not written at shutdown; the WAL replay records them again");
        }
    }
}

/// The (hash, issue) pairs of the events already stored for the project: before Sentry's
/// grouping, the `fingerprint` column held faultline's earlier hash.
async fn legacy_pairs(query: &QueryService, project_id: u64) -> Result<Vec<(String, i64)>> {
    let filter = ProjectFilter::Only(Arc::new(std::iter::once(project_id).collect()));
    let decode = |message: String| Error::Legacy {
        project_id,
        message,
    };
    let mut pairs = Vec::new();
    // in pages, each within the query row limit
    let page = query.limits().max_rows.clamp(1, 50_000);
    loop {
        let sql = format!(
            "SELECT DISTINCT fingerprint, issue_id FROM events \
             ORDER BY fingerprint, issue_id LIMIT {page} OFFSET {}",
            pairs.len()
        );
        let output = query
            .run(&filter, &sql)
            .await
            .map_err(|e| decode(e.to_string()))?;
        let before = pairs.len();
        read_pairs(&output, &mut pairs).map_err(decode)?;
        if pairs.len() - before < page {
            return Ok(pairs);
        }
    }
}

/// Appends the (string, integer) rows of a two-column result.
fn read_pairs(
    output: &crate::query::QueryOutput,
    pairs: &mut Vec<(String, i64)>,
) -> std::result::Result<(), String> {
    for batch in &output.batches {
        let hashes = cast(batch.column(0), &DataType::Utf8).map_err(|e| e.to_string())?;
        let issues = cast(batch.column(1), &DataType::Int64).map_err(|e| e.to_string())?;
        let hashes = hashes.as_string::<i32>();
        let issues = issues.as_primitive::<Int64Type>();
        for row in 0..batch.num_rows() {
            if hashes.is_valid(row) && issues.is_valid(row) {
                pairs.push((hashes.value(row).to_owned(), issues.value(row)));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use faultline_protocol::normalize::{NormalizeContext, normalize_event};

    fn grouping_of(payload: &str) -> Grouping {
        let event = normalize_event(
            payload.as_bytes(),
            &NormalizeContext {
                received: chrono::Utc::now(),
                client_ip: None,
                event_id: None,
            },
        )
        .unwrap();
        grouping::group(&event)
    }

    #[tokio::test]
    async fn events_join_the_issue_of_any_known_hash_and_the_index_survives_a_restart() {
        let store = Store::memory();
        let hashes = GroupHashes::new(store.clone(), "n1");
        let index = hashes.project(7).await.unwrap();
        let first = grouping_of(r#"{"exception":{"values":[{"type":"E","value":"x"}]}}"#);
        let issue = hashes.assign(7, &index, &first, || None);
        assert_eq!(
            issue,
            grouping::issue_id(7, &first.hash),
            "a new issue from the primary hash"
        );
        // a new event's earlier faultline hash is not recorded: sharing it opens no link
        let mut other = grouping_of(r#"{"exception":{"values":[{"type":"F","value":"y"}]}}"#);
        other.legacy_hash = first.legacy_hash.clone();
        assert_ne!(
            hashes.assign(7, &index, &other, || other.legacy_hash.clone()),
            issue
        );
        // a secondary hash in common does link
        let mut third = grouping_of(r#"{"exception":{"values":[{"type":"G","value":"z"}]}}"#);
        third.hashes.push(first.hash.clone());
        assert_eq!(hashes.assign(7, &index, &third, || None), issue);
        assert_eq!(hashes.persist().await.unwrap(), index.len());
        // another process reads the same index
        let again = GroupHashes::new(store, "n2");
        let index = again.project(7).await.unwrap();
        assert_eq!(index.known_issue(&first, || None), Some(issue));
        assert_eq!(index.known_issue(&third, || None), Some(issue));
    }

    #[tokio::test]
    async fn conflicting_segments_resolve_to_the_smallest_issue() {
        let store = Store::memory();
        let g = grouping_of(r#"{"logentry":{"formatted":"m"}}"#);
        for (node, issue) in [("a", 9_i64), ("b", 4)] {
            let path = ObjectPath::from(format!("{}/1-{node}-0.json", prefix(3)));
            let body = serde_json::to_vec(&[(g.hash.clone(), issue)]).unwrap();
            store
                .create_durable(&path, Bytes::from(body))
                .await
                .unwrap();
        }
        let hashes = GroupHashes::new(store, "c");
        let index = hashes.project(3).await.unwrap();
        assert_eq!(hashes.assign(3, &index, &g, || None), 4);
    }

    #[tokio::test]
    async fn many_segments_are_merged_into_one_on_load() {
        let store = Store::memory();
        let writer = GroupHashes::new(store.clone(), "w");
        let index = writer.project(9).await.unwrap();
        let mut seen = Vec::new();
        for n in 0..(MERGE_SEGMENTS + 6) {
            let g = grouping_of(&format!(r#"{{"logentry":{{"formatted":"m{n}x"}}}}"#));
            seen.push((writer.assign(9, &index, &g, || None), g));
            writer.persist().await.unwrap();
        }
        let listed = |store: Store| async move {
            store
                .list(&ObjectPath::from(prefix(9)))
                .await
                .unwrap()
                .len()
        };
        assert!(listed(store.clone()).await > MERGE_SEGMENTS);
        let total = index.len();
        let reader = GroupHashes::new(store.clone(), "r");
        let index = reader.project(9).await.unwrap();
        for (issue, g) in &seen {
            assert_eq!(index.known_issue(g, || None), Some(*issue));
        }
        // one segment (no legacy.json without a query service)
        assert_eq!(listed(store.clone()).await, 1);
        let again = GroupHashes::new(store, "s");
        let index = again.project(9).await.unwrap();
        assert_eq!(index.len(), total);
    }

    #[tokio::test]
    async fn without_the_store_events_are_grouped_by_their_own_hashes_and_recorded_later() {
        // an object store that refuses every request
        let broken = Store::memory().with_objects(Arc::new(Refusing));
        let hashes = GroupHashes::new(broken, "n");
        let g = grouping_of(r#"{"logentry":{"formatted":"m"}}"#);
        let index = hashes.project_for_ingest(4).await;
        assert_eq!(
            hashes.assign(4, &index, &g, || None),
            grouping::issue_id(4, &g.hash)
        );
        // the next request does not wait for the store again, and knows the hash
        let again = hashes.project_for_ingest(4).await;
        assert_eq!(
            again.known_issue(&g, || None),
            Some(grouping::issue_id(4, &g.hash))
        );
        assert!(hashes.persist().await.is_err(), "kept for the next attempt");
    }

    #[derive(Debug)]
    struct Refusing;

    impl std::fmt::Display for Refusing {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("Refusing")
        }
    }

    fn refused<T>() -> object_store::Result<T> {
        Err(object_store::Error::Generic {
            store: "refusing",
            source: "the store is down".into(),
        })
    }

    #[async_trait::async_trait]
    impl object_store::ObjectStore for Refusing {
        async fn put_opts(
            &self,
            _: &ObjectPath,
            _: object_store::PutPayload,
            _: object_store::PutOptions,
        ) -> object_store::Result<object_store::PutResult> {
            refused()
        }
        async fn put_multipart_opts(
            &self,
            _: &ObjectPath,
            _: object_store::PutMultipartOptions,
        ) -> object_store::Result<Box<dyn object_store::MultipartUpload>> {
            refused()
        }
        async fn get_opts(
            &self,
            _: &ObjectPath,
            _: object_store::GetOptions,
        ) -> object_store::Result<object_store::GetResult> {
            refused()
        }
        fn delete_stream(
            &self,
            _: futures::stream::BoxStream<'static, object_store::Result<ObjectPath>>,
        ) -> futures::stream::BoxStream<'static, object_store::Result<ObjectPath>> {
            Box::pin(futures::stream::once(async { refused() }))
        }
        fn list(
            &self,
            _: Option<&ObjectPath>,
        ) -> futures::stream::BoxStream<'static, object_store::Result<object_store::ObjectMeta>>
        {
            Box::pin(futures::stream::once(async { refused() }))
        }
        async fn list_with_delimiter(
            &self,
            _: Option<&ObjectPath>,
        ) -> object_store::Result<object_store::ListResult> {
            refused()
        }
        async fn copy_opts(
            &self,
            _: &ObjectPath,
            _: &ObjectPath,
            _: object_store::CopyOptions,
        ) -> object_store::Result<()> {
            refused()
        }
    }

    #[tokio::test]
    async fn replayed_hashes_are_known_once_the_project_loads() {
        let hashes = GroupHashes::new(Store::memory(), "n");
        let g = grouping_of(r#"{"logentry":{"formatted":"m"}}"#);
        hashes.observe(5, 1234, &g);
        let index = hashes.project(5).await.unwrap();
        assert_eq!(index.known_issue(&g, || None), Some(1234));
        assert!(hashes.persist().await.unwrap() > 0);
    }

    #[tokio::test]
    async fn the_earlier_hash_is_worked_out_only_for_projects_with_issues_from_before() {
        let store = Store::memory();
        let old = grouping_of(r#"{"logentry":{"formatted":"before"}}"#);
        let earlier = old.legacy_hash.clone().unwrap();
        let path = ObjectPath::from(format!("{}/legacy.json", prefix(2)));
        let body = serde_json::to_vec(&[(earlier.clone(), 77_i64)]).unwrap();
        store.put_durable(&path, Bytes::from(body)).await.unwrap();
        let hashes = GroupHashes::new(store, "n");
        let asked = std::cell::Cell::new(0);
        let ask = || {
            asked.set(asked.get() + 1);
            Some(earlier.clone())
        };
        // project 2 has an issue from before: an event whose own hashes are new finds it
        let index = hashes.project(2).await.unwrap();
        assert!(index.has_legacy());
        // as ingest has it: without the earlier hash, which is asked for
        let mut g = grouping_of(r#"{"logentry":{"formatted":"before"}}"#);
        g.legacy_hash = None;
        assert_eq!(hashes.assign(2, &index, &g, ask), 77);
        assert_eq!(asked.get(), 1);
        // its own hashes now point there, so the next event needs no earlier hash
        assert_eq!(hashes.assign(2, &index, &g, ask), 77);
        assert_eq!(asked.get(), 1);
        // a project without issues from before never works it out
        let fresh = hashes.project(3).await.unwrap();
        assert!(!fresh.has_legacy());
        let issue = hashes.assign(3, &fresh, &g, ask);
        assert_eq!(issue, grouping::issue_id(3, &g.hash));
        assert_eq!(asked.get(), 1);
    }
}
