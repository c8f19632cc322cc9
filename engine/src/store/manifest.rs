//! Manifests: the list of live Parquet files of one writer node.
//!
//! Each version is a create-only object `manifest/<node>/<inverted version>.json`; the inverted,
//! zero-padded number makes the newest version sort first in a listing. A version is never
//! overwritten, so a reader always sees a complete file list, and a writer that lost a race
//! (two processes with one node name) fails instead of silently dropping the other's files.
//!
//! Commits are idempotent. Every change carries a commit id, and each version lists the ids of
//! the last [`KEEP_COMMIT_IDS`] changes it contains. A PUT whose reply was lost (a timeout, a
//! reset connection, a retry of the client that meets its own first attempt as "already
//! exists") is resolved by reading the newest version back: if it names the change's id, the
//! change is in and is not applied again. A flush keeps its commit id across its retries, so a
//! flush whose manifest landed while its caller saw an error is recognised on the next attempt
//! instead of adding the same files a second time.

use std::collections::BTreeMap;

use bytes::Bytes;
use object_store::path::Path as ObjectPath;
use serde::{Deserialize, Serialize};

use super::{Result, Store};

/// How many old manifest versions are kept after a commit (for debugging and backups).
const KEEP_VERSIONS: usize = 5;

/// How many commit ids a version remembers. A change is recognised as committed as long as
/// fewer than this many later changes were committed on top of it, far more than can happen
/// between a lost reply and its retry.
pub const KEEP_COMMIT_IDS: usize = 256;

/// How many times one edit re-reads the store after a request whose outcome is unknown.
const AMBIGUOUS_RETRIES: u32 = 3;

/// A fresh commit id.
pub fn new_commit_id() -> String {
    ulid::Ulid::new().to_string()
}

/// The live files of one node.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub node: String,
    pub version: u64,
    /// WAL segments up to and including this sequence number are contained in `files`.
    pub wal_upto: Option<u64>,
    pub files: Vec<DataFile>,
    /// Files no longer live (dropped by retention, replaced by compaction) that stay in the
    /// object store until `retention.delete_after` has passed, for queries already planned.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub retired: Vec<Retired>,
    /// Hourly issue rollups (`rollups/proj=<id>/date=<day>/<ulid>.parquet`), written with the
    /// event files they summarize; `hour` is 0.
    #[serde(default)]
    pub rollups: Vec<DataFile>,
    /// Issue tag rollups (`issue-tags/proj=<id>/date=<day>/<ulid>.parquet`), written with the
    /// rollups; `hour` is 0. Versions written before they existed have none.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tag_rollups: Vec<DataFile>,
    /// Files of the item tables (`items/<table>/proj=<id>/date=<day>/<ulid>.parquet`) by table
    /// name; `hour` is 0. Versions written before item tables existed have none.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tables: BTreeMap<String, Vec<DataFile>>,
    /// Ids of the newest changes contained in this version, oldest first (at most
    /// [`KEEP_COMMIT_IDS`]); how a retried commit recognises that it is already in.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub commits: Vec<String>,
}

/// A file that left the manifest at `since_ms` and is deleted later.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Retired {
    pub path: String,
    pub project_id: u64,
    pub date: String,
    pub since_ms: i64,
}

/// One Parquet file of events.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DataFile {
    /// Path relative to the store root.
    pub path: String,
    pub project_id: u64,
    /// `YYYY-MM-DD` of the partition (event timestamp, UTC).
    pub date: String,
    pub hour: u8,
    pub rows: u64,
    pub bytes: u64,
    pub min_timestamp_ms: i64,
    pub max_timestamp_ms: i64,
}

use super::keys::{
    MANIFESTS, manifest_prefix as node_prefix, manifest_version as version_path,
    manifest_version_of as version_of,
};

impl Manifest {
    /// The newest manifest of `node`, or an empty one.
    pub async fn load_latest(store: &Store, node: &str) -> Result<Self> {
        let mut listing = store.list(&node_prefix(node)).await?;
        listing.sort_by(|a, b| a.location.cmp(&b.location));
        match listing
            .iter()
            .find(|meta| version_of(&meta.location).is_some())
        {
            Some(meta) => store.get_json(&meta.location).await,
            None => Ok(Self {
                node: node.to_owned(),
                ..Self::default()
            }),
        }
    }

    /// The newest manifest of every node that has written one.
    pub async fn load_all(store: &Store) -> Result<Vec<Self>> {
        let listing = store.list(&ObjectPath::from(MANIFESTS)).await?;
        let mut newest: BTreeMap<String, ObjectPath> = BTreeMap::new();
        for meta in listing {
            let parts: Vec<_> = meta.location.parts().collect();
            if parts.len() != 3 || version_of(&meta.location).is_none() {
                continue;
            }
            let node = parts[1].as_ref().to_owned();
            let entry = newest.entry(node).or_insert_with(|| meta.location.clone());
            if meta.location < *entry {
                *entry = meta.location.clone();
            }
        }
        let mut manifests = Vec::with_capacity(newest.len());
        for path in newest.values() {
            manifests.push(store.get_json(path).await?);
        }
        Ok(manifests)
    }

    /// Writes this manifest as version `self.version` (create-only, durable), then removes
    /// versions older than the last few.
    pub async fn commit(&self, store: &Store) -> Result<()> {
        let data = serde_json::to_vec(self).expect("manifest serializes");
        store
            .create_durable(&version_path(&self.node, self.version), Bytes::from(data))
            .await?;
        let mut listing = store.list(&node_prefix(&self.node)).await?;
        listing.sort_by(|a, b| a.location.cmp(&b.location));
        for old in listing.iter().skip(KEEP_VERSIONS) {
            if version_of(&old.location).is_some() {
                store.delete(&old.location).await?;
            }
        }
        Ok(())
    }

    /// The next version with `added` files and the WAL position they cover.
    pub fn with_files(&self, added: Vec<DataFile>, wal_upto: u64) -> Self {
        let mut files = self.files.clone();
        files.extend(added);
        Self {
            node: self.node.clone(),
            version: self.version + 1,
            wal_upto: Some(wal_upto.max(self.wal_upto.unwrap_or(0))),
            files,
            rollups: self.rollups.clone(),
            tag_rollups: self.tag_rollups.clone(),
            tables: self.tables.clone(),
            retired: self.retired.clone(),
            commits: self.commits.clone(),
        }
    }

    /// Whether the change with this commit id is contained in this version.
    pub fn contains_commit(&self, commit_id: &str) -> bool {
        self.commits.iter().any(|c| c == commit_id)
    }

    /// Every object this manifest keeps alive. Retention, purging and backups go through this
    /// (and [`Self::retire_partitions`]), so a new kind of listed file (issue rollups) only
    /// needs adding here.
    pub fn live_files(&self) -> impl Iterator<Item = &DataFile> {
        self.files
            .iter()
            .chain(&self.rollups)
            .chain(&self.tag_rollups)
            .chain(self.item_files())
    }

    /// The live files of every item table.
    pub fn item_files(&self) -> impl Iterator<Item = &DataFile> {
        self.tables.values().flatten()
    }

    /// The next content with every live file of the given (project, date) partitions moved to
    /// `retired`; `None` when there is none.
    pub fn retire_partitions(
        &self,
        expired: &std::collections::HashSet<(u64, String)>,
        now_ms: i64,
    ) -> Option<Self> {
        self.retire_where(
            |f: &DataFile| expired.contains(&(f.project_id, f.date.clone())),
            now_ms,
        )
    }

    /// The next content with every live file of the given projects moved to `retired`;
    /// `None` when there is none.
    pub fn retire_projects(
        &self,
        projects: &std::collections::HashSet<u64>,
        now_ms: i64,
    ) -> Option<Self> {
        self.retire_where(|f: &DataFile| projects.contains(&f.project_id), now_ms)
    }

    /// The next content with every live file `gone` selects moved to `retired`; `None` when
    /// it selects none.
    fn retire_where(&self, gone: impl Fn(&DataFile) -> bool, now_ms: i64) -> Option<Self> {
        let gone = &gone;
        if !self.live_files().any(gone) {
            return None;
        }
        let mut next = self.clone();
        let (mut retired, kept): (Vec<_>, Vec<_>) = next.files.drain(..).partition(gone);
        next.files = kept;
        let (retired_rollups, kept_rollups): (Vec<_>, Vec<_>) =
            next.rollups.drain(..).partition(gone);
        next.rollups = kept_rollups;
        retired.extend(retired_rollups);
        let (retired_tags, kept_tags): (Vec<_>, Vec<_>) =
            next.tag_rollups.drain(..).partition(gone);
        next.tag_rollups = kept_tags;
        retired.extend(retired_tags);
        for files in next.tables.values_mut() {
            let (gone_files, kept): (Vec<_>, Vec<_>) = files.drain(..).partition(gone);
            *files = kept;
            retired.extend(gone_files);
        }
        next.tables.retain(|_, files| !files.is_empty());
        next.retired.extend(retired.into_iter().map(|f| Retired {
            path: f.path,
            project_id: f.project_id,
            date: f.date,
            since_ms: now_ms,
        }));
        Some(next)
    }

    /// The version number of the newest manifest of `node` in the store (0 when none).
    pub async fn latest_version(store: &Store, node: &str) -> Result<u64> {
        let mut listing = store.list(&node_prefix(node)).await?;
        listing.sort_by(|a, b| a.location.cmp(&b.location));
        Ok(listing
            .iter()
            .find_map(|meta| version_of(&meta.location))
            .unwrap_or(0))
    }

    /// Commits a change to `node`'s manifest optimistically: `change` turns version n into the
    /// content of version n + 1, starting from `base` (or the newest version in the store). When
    /// another writer created n + 1 first (the flusher of that node, or maintenance elsewhere),
    /// the newest version is reloaded and `change` applied to it again. `change` returning
    /// `None` means there is nothing to do. Returns the committed manifest.
    pub async fn edit(
        store: &Store,
        node: &str,
        base: Option<Self>,
        change: impl FnMut(&Self) -> Option<Self>,
    ) -> Result<Option<Self>> {
        Self::edit_once(store, node, base, &new_commit_id(), change).await
    }

    /// [`Self::edit`] for a change identified by `commit_id`, which the caller keeps across
    /// its own retries: when a version in the store already contains the change (an earlier
    /// attempt whose reply was lost), that version is returned and `change` is not applied.
    pub async fn edit_once(
        store: &Store,
        node: &str,
        base: Option<Self>,
        commit_id: &str,
        mut change: impl FnMut(&Self) -> Option<Self>,
    ) -> Result<Option<Self>> {
        let mut current = match base {
            Some(base) => base,
            None => Self::load_latest(store, node).await?,
        };
        let mut unknown_outcomes = 0;
        loop {
            if current.contains_commit(commit_id) {
                tracing::info!(
                    node,
                    version = current.version,
                    commit = commit_id,
                    "manifest change already committed (a retry after a lost reply)"
                );
                return Ok(Some(current));
            }
            let Some(mut next) = change(&current) else {
                return Ok(None);
            };
            next.node = node.to_owned();
            next.version = current.version + 1;
            next.wal_upto = next.wal_upto.max(current.wal_upto);
            next.commits = current.commits.clone();
            next.commits.push(commit_id.to_owned());
            let excess = next.commits.len().saturating_sub(KEEP_COMMIT_IDS);
            next.commits.drain(..excess);
            match next.commit(store).await {
                Ok(()) => return Ok(Some(next)),
                Err(super::Error::AlreadyExists { .. }) => {
                    tracing::debug!(
                        node,
                        version = next.version,
                        "manifest changed meanwhile; reapplying"
                    );
                }
                Err(err) if unknown_outcomes < AMBIGUOUS_RETRIES => {
                    // The version may or may not have been written: the newest version says.
                    unknown_outcomes += 1;
                    tracing::warn!(node, version = next.version, cause = %err,
                        "manifest commit failed; checking whether it landed");
                }
                Err(err) => return Err(err),
            }
            // The newest version is at least the base, so a version that only the base's
            // caller has not seen yet is never skipped.
            let latest = Self::load_latest(store, node).await?;
            if latest.version >= current.version {
                current = latest;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(path: &str) -> DataFile {
        DataFile {
            path: path.into(),
            project_id: 1,
            date: "2026-11-24".into(),
            hour: 12,
            rows: 3,
            bytes: 100,
            min_timestamp_ms: 0,
            max_timestamp_ms: 1,
        }
    }

    #[tokio::test]
    async fn newest_version_wins_and_old_ones_are_pruned() {
        let store = Store::memory();
        let mut manifest = Manifest::load_latest(&store, "node-0").await.unwrap();
        assert!(manifest.files.is_empty());
        for i in 0..12 {
            manifest = manifest.with_files(vec![file(&format!("f{i}"))], i);
            manifest.commit(&store).await.unwrap();
        }
        let latest = Manifest::load_latest(&store, "node-0").await.unwrap();
        assert_eq!(latest.version, 12);
        assert_eq!(latest.files.len(), 12);
        assert_eq!(latest.wal_upto, Some(11));
        let kept = store.list(&node_prefix("node-0")).await.unwrap();
        assert_eq!(kept.len(), KEEP_VERSIONS);
    }

    #[tokio::test]
    async fn a_version_is_never_overwritten() {
        let store = Store::memory();
        let first = Manifest::default().with_files(vec![file("a")], 1);
        first.commit(&store).await.unwrap();
        let rival = Manifest::default().with_files(vec![file("b")], 1);
        let err = rival.commit(&store).await.unwrap_err();
        assert!(err.to_string().contains("already exists"), "{err}");
    }

    #[tokio::test]
    async fn readers_union_every_node() {
        let store = Store::memory();
        for node in ["a", "b"] {
            let m = Manifest {
                node: node.into(),
                ..Manifest::default()
            };
            m.with_files(vec![file(node)], 0)
                .commit(&store)
                .await
                .unwrap();
        }
        let all = Manifest::load_all(&store).await.unwrap();
        let nodes: Vec<_> = all.iter().map(|m| m.node.as_str()).collect();
        assert_eq!(nodes, ["a", "b"]);
    }

    #[tokio::test]
    async fn an_edit_that_loses_a_race_is_reapplied_to_the_winner() {
        let store = Store::memory();
        let base = Manifest {
            node: "n".into(),
            ..Manifest::default()
        }
        .with_files(vec![file("a"), file("b")], 1);
        base.commit(&store).await.unwrap();
        // The flusher adds "c" as version 2 while maintenance still holds version 1.
        base.with_files(vec![file("c")], 2)
            .commit(&store)
            .await
            .unwrap();
        let mut attempts = 0;
        let edited = Manifest::edit(&store, "n", Some(base), |m| {
            attempts += 1;
            let mut next = m.clone();
            next.files.retain(|f| f.path != "a");
            Some(next)
        })
        .await
        .unwrap()
        .unwrap();
        assert_eq!(attempts, 2, "the first attempt collided with version 2");
        assert_eq!(edited.version, 3);
        let paths: Vec<_> = edited.files.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(paths, ["b", "c"], "the flusher's file survives the edit");
        assert_eq!(edited.wal_upto, Some(2));
        assert_eq!(Manifest::latest_version(&store, "n").await.unwrap(), 3);
    }
}
