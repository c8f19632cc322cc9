//! Issue state: unresolved, resolved or ignored (until a date or a number of further events).
//!
//! Each change is a new create-only object
//! `meta/issues/project=<id>/issue=<issue id>/<u64::MAX - version, 20 digits>.json`, like the
//! manifests: the newest version sorts first, a version is never overwritten, and two writers
//! racing for one version make the loser re-read and retry. The store is written only when a
//! person changes a state; what events do to it (a resolved issue that gets a new event is
//! unresolved again and a regression; an ignore that expired) is derived when `issues` is read,
//! so ingest never writes state.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use datafusion::arrow::array::{Int64Array, RecordBatch, StringArray, TimestampMillisecondArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use object_store::path::Path as ObjectPath;
use serde::{Deserialize, Serialize};

use super::Result;
use crate::query::ProjectFilter;
use crate::store::{self, Store};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    Unresolved,
    Resolved,
    Ignored,
    /// Merged into another issue (see [`IssueState::merged_into`]).
    Merged,
    /// Deleted: the issue is gone from every list, and maintenance erases its events received
    /// up to [`IssueState::changed`] (see [`IssueState::erased_at`]). Events after that start
    /// it afresh.
    Deleted,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unresolved => "unresolved",
            Self::Resolved => "resolved",
            Self::Ignored => "ignored",
            Self::Merged => "merged",
            Self::Deleted => "deleted",
        }
    }
}

/// One version of an issue's state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IssueState {
    pub project_id: u64,
    pub issue_id: i64,
    pub version: u64,
    pub status: Status,
    pub changed: DateTime<Utc>,
    /// Who changed it (the token's name).
    pub by: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ignore_until: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ignore_until_count: Option<u64>,
    /// The issue's event count when the state was set (for `ignore_until_count`).
    pub count_at_change: u64,
    /// Who works on it: a member's email address, or `#<team slug>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub assignee: Option<String>,
    /// Resolved "in the next release": events of this release (the newest one the issue had
    /// when it was resolved) do not reopen it; an event of another release does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolved_in_release: Option<String>,
    /// What this version changed, as the issue's activity shows it (e.g. `resolve`, `assign`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub action: Option<String>,
    /// The issue this one is merged into (status [`Status::Merged`]): its events count for
    /// that issue until it is unmerged. Events are never rewritten, so unmerging is exact.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub merged_into: Option<i64>,
    /// Deleted issues: when maintenance erased the events received up to the deletion.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub erased_at: Option<DateTime<Utc>>,
}

fn issue_prefix(project_id: u64, issue_id: i64) -> ObjectPath {
    ObjectPath::from(format!("meta/issues/project={project_id}/issue={issue_id}"))
}

fn version_path(project_id: u64, issue_id: i64, version: u64) -> ObjectPath {
    ObjectPath::from(format!(
        "meta/issues/project={project_id}/issue={issue_id}/{:020}.json",
        u64::MAX - version
    ))
}

/// The newest state of every issue of the projects `filter` allows.
pub async fn load(store: &Store, filter: &ProjectFilter) -> Result<Vec<IssueState>> {
    StateCache::default().load(store, filter).await
}

/// The states read so far, by issue, with the object each came from. A state version never
/// changes once written, so only issues whose newest version is new since are read again: a
/// session lists the states (one listing per project) but reads only what changed.
#[derive(Debug, Default)]
pub struct StateCache {
    states: parking_lot::Mutex<HashMap<IssueKey, (ObjectPath, Arc<IssueState>)>>,
}

/// (project id, issue id).
type IssueKey = (u64, i64);

impl StateCache {
    /// The newest state of every issue of the projects `filter` allows.
    pub async fn load(&self, store: &Store, filter: &ProjectFilter) -> Result<Vec<IssueState>> {
        // A token's session lists only its own projects' prefixes, not every tenant's state.
        let listing = match filter {
            ProjectFilter::All => store.list(&ObjectPath::from("meta/issues")).await?,
            ProjectFilter::Only(ids) => {
                let mut listing = Vec::new();
                for id in ids.iter() {
                    let prefix = ObjectPath::from(format!("meta/issues/project={id}"));
                    listing.extend(store.list(&prefix).await?);
                }
                listing
            }
        };
        let mut newest: BTreeMap<(u64, i64), ObjectPath> = BTreeMap::new();
        for meta in listing {
            let parts: Vec<String> = meta
                .location
                .parts()
                .map(|p| p.as_ref().to_owned())
                .collect();
            let [_, _, project, issue, _] = parts.as_slice() else {
                continue;
            };
            let (Some(project), Some(issue)) = (
                project
                    .strip_prefix("project=")
                    .and_then(|p| p.parse::<u64>().ok()),
                issue
                    .strip_prefix("issue=")
                    .and_then(|i| i.parse::<i64>().ok()),
            ) else {
                continue;
            };
            if !filter.allows(project) {
                continue;
            }
            let entry = newest
                .entry((project, issue))
                .or_insert_with(|| meta.location.clone());
            if meta.location < *entry {
                *entry = meta.location.clone();
            }
        }
        let mut out = Vec::with_capacity(newest.len());
        for (key, path) in newest {
            let cached = self
                .states
                .lock()
                .get(&key)
                .filter(|(at, _)| *at == path)
                .map(|(_, state)| Arc::clone(state));
            let state = match cached {
                Some(state) => state,
                None => {
                    let state: Arc<IssueState> = Arc::new(store.get_json(&path).await?);
                    self.states.lock().insert(key, (path, Arc::clone(&state)));
                    state
                }
            };
            out.push(IssueState::clone(&state));
        }
        Ok(out)
    }
}

/// The newest state of one issue.
pub(crate) async fn current(
    store: &Store,
    project_id: u64,
    issue_id: i64,
) -> Result<Option<IssueState>> {
    Ok(history(store, project_id, issue_id, 1).await?.pop())
}

/// The newest `limit` versions of one issue's state, newest first.
pub async fn history(
    store: &Store,
    project_id: u64,
    issue_id: i64,
    limit: usize,
) -> Result<Vec<IssueState>> {
    let mut listing = store.list(&issue_prefix(project_id, issue_id)).await?;
    // Newer versions have smaller names.
    listing.sort_by(|a, b| a.location.cmp(&b.location));
    let mut out = Vec::with_capacity(limit.min(listing.len()));
    for meta in listing.iter().take(limit) {
        out.push(store.get_json(&meta.location).await?);
    }
    Ok(out)
}

/// Stores `state` as the issue's next version (its `version` is set here).
pub async fn save(store: &Store, state: IssueState) -> Result<IssueState> {
    let previous = current(store, state.project_id, state.issue_id).await?;
    save_after(store, state, previous.as_ref()).await
}

/// [`save`] for a caller that has just read the issue's newest version, `previous`: it is not
/// read again unless another writer took the next version first.
pub async fn save_after(
    store: &Store,
    mut state: IssueState,
    previous: Option<&IssueState>,
) -> Result<IssueState> {
    let mut next = previous.map_or(1, |p| p.version + 1);
    loop {
        state.version = next;
        let data = serde_json::to_vec_pretty(&state).expect("issue state serializes");
        let path = version_path(state.project_id, state.issue_id, state.version);
        match store.create_durable(&path, Bytes::from(data)).await {
            Ok(()) => return Ok(state),
            // Someone else wrote this version first: theirs stays, ours goes on top.
            Err(store::Error::AlreadyExists { .. }) => {
                next = current(store, state.project_id, state.issue_id)
                    .await?
                    .map_or(1, |p| p.version + 1);
            }
            Err(err) => return Err(err.into()),
        }
    }
}

/// The schema of the state table joined into `issues`.
pub fn schema() -> SchemaRef {
    let ts = DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into()));
    Arc::new(Schema::new(vec![
        Field::new("project_id", DataType::Int64, false),
        Field::new("issue_id", DataType::Int64, false),
        Field::new("state", DataType::Utf8, false),
        Field::new("changed", ts.clone(), false),
        Field::new("ignore_until", ts, true),
        Field::new("ignore_until_count", DataType::Int64, true),
        Field::new("count_at_change", DataType::Int64, false),
        Field::new("assignee", DataType::Utf8, true),
    ]))
}

/// States as one batch of [`schema`].
pub fn to_batch(states: &[IssueState]) -> RecordBatch {
    let ms = |t: &DateTime<Utc>| t.timestamp_millis();
    RecordBatch::try_new(
        schema(),
        vec![
            Arc::new(Int64Array::from_iter_values(
                states.iter().map(|s| s.project_id as i64),
            )),
            Arc::new(Int64Array::from_iter_values(
                states.iter().map(|s| s.issue_id),
            )),
            Arc::new(StringArray::from_iter_values(
                states.iter().map(|s| s.status.as_str()),
            )),
            Arc::new(
                TimestampMillisecondArray::from_iter_values(states.iter().map(|s| ms(&s.changed)))
                    .with_timezone("UTC"),
            ),
            Arc::new(
                TimestampMillisecondArray::from_iter(
                    states.iter().map(|s| s.ignore_until.as_ref().map(ms)),
                )
                .with_timezone("UTC"),
            ),
            Arc::new(Int64Array::from_iter(
                states
                    .iter()
                    .map(|s| s.ignore_until_count.map(|c| c as i64)),
            )),
            Arc::new(Int64Array::from_iter_values(
                states.iter().map(|s| s.count_at_change as i64),
            )),
            Arc::new(StringArray::from_iter(
                states.iter().map(|s| s.assignee.as_deref()),
            )),
        ],
    )
    .expect("issue state batch matches its schema")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(project_id: u64, issue_id: i64, status: Status) -> IssueState {
        IssueState {
            project_id,
            issue_id,
            version: 0,
            status,
            changed: Utc::now(),
            by: "test".into(),
            ignore_until: None,
            ignore_until_count: None,
            count_at_change: 0,
            assignee: None,
            resolved_in_release: None,
            action: None,
            merged_into: None,
            erased_at: None,
        }
    }

    #[tokio::test]
    async fn newest_version_wins_and_filters_apply() {
        let store = Store::memory();
        assert_eq!(
            save(&store, state(1, 7, Status::Resolved))
                .await
                .unwrap()
                .version,
            1
        );
        assert_eq!(
            save(&store, state(1, 7, Status::Unresolved))
                .await
                .unwrap()
                .version,
            2
        );
        save(&store, state(2, 9, Status::Ignored)).await.unwrap();
        let all = load(&store, &ProjectFilter::All).await.unwrap();
        let seen: Vec<_> = all
            .iter()
            .map(|s| (s.issue_id, s.version, s.status))
            .collect();
        assert_eq!(seen, [(7, 2, Status::Unresolved), (9, 1, Status::Ignored)]);
        let only = ProjectFilter::Only(Arc::new([2].into_iter().collect()));
        let seen: Vec<_> = load(&store, &only)
            .await
            .unwrap()
            .iter()
            .map(|s| s.issue_id)
            .collect();
        assert_eq!(seen, [9]);
        assert_eq!(to_batch(&all).num_rows(), 2);
    }

    #[tokio::test]
    async fn the_cache_reads_only_states_that_changed() {
        let store = Store::memory();
        let cache = StateCache::default();
        save(&store, state(1, 7, Status::Resolved)).await.unwrap();
        save(&store, state(1, 8, Status::Ignored)).await.unwrap();
        assert_eq!(
            cache.load(&store, &ProjectFilter::All).await.unwrap().len(),
            2
        );
        // A cached state is not read again: one made unreadable still loads from the cache.
        let (path8, _) = cache.states.lock()[&(1, 8)].clone();
        store.put_durable(&path8, "not json".into()).await.unwrap();
        let again = cache.load(&store, &ProjectFilter::All).await.unwrap();
        assert_eq!(again[1].status, Status::Ignored);
        assert!(
            StateCache::default()
                .load(&store, &ProjectFilter::All)
                .await
                .is_err()
        );
        // A new version is read.
        save(&store, state(1, 7, Status::Unresolved)).await.unwrap();
        let after = cache.load(&store, &ProjectFilter::All).await.unwrap();
        let seven = after.iter().find(|s| s.issue_id == 7).unwrap();
        assert_eq!((seven.version, seven.status), (2, Status::Unresolved));
    }

    #[tokio::test]
    async fn a_stale_previous_version_goes_on_top_of_the_newer_one() {
        let store = Store::memory();
        let first = save(&store, state(1, 7, Status::Resolved)).await.unwrap();
        save(&store, state(1, 7, Status::Ignored)).await.unwrap();
        // written by a caller that read version 1 before version 2 appeared
        let stale = save_after(&store, state(1, 7, Status::Unresolved), Some(&first))
            .await
            .unwrap();
        assert_eq!(stale.version, 3);
        let newest = current(&store, 1, 7).await.unwrap().unwrap();
        assert_eq!((newest.version, newest.status), (3, Status::Unresolved));
    }
}
