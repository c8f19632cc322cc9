//! Maintenance of the stored files: retention, compaction, and deleting what they retired.
//!
//! Both jobs change manifests only by optimistic create-only commits ([`Manifest::edit`]), so
//! they are safe next to the flushers of every node, and both cover every node's manifest (a
//! node that was scaled away still has its data expired). A file leaving a manifest is first
//! *retired* (kept, listed under `retired` with the time) and deleted once
//! `retention.delete_after` has passed: queries that planned with the old file list still find
//! their files, and other nodes pick up the new manifest version on their next flush tick.
//!
//! In a server, [`schedule`] runs the jobs on the node holding the maintenance lease; the CLI
//! (`faultline retention run`, `faultline compact run`) runs them once, without the lease.

pub mod compaction;
pub mod erase;
pub mod erase_project;
pub mod progress;
pub mod retention;
pub mod schedule;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::Arc;

use chrono::Utc;
use faultline_config::Config;
use object_store::path::Path as ObjectPath;
use serde::Serialize;

use crate::node::Node;
use crate::store::manifest::Manifest;
use crate::store::{self, Store, keys};
use crate::tenancy::{self, Projects};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Store(#[from] store::Error),
    #[error(transparent)]
    Tenancy(#[from] tenancy::Error),
    #[error("cannot compact {path}: {message}")]
    Compact { path: String, message: String },
    #[error("cannot erase the events of deleted issues ({what}): {source}")]
    Erase {
        what: String,
        #[source]
        source: Box<crate::issues::Error>,
    },
    #[error("cannot write the issue tag rollups of {path}: {source}")]
    TagRollups {
        path: String,
        #[source]
        source: Box<crate::issues::Error>,
    },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What a retention run dropped (or, dry, would drop).
#[derive(Debug, Clone, Default, Serialize)]
pub struct RetentionReport {
    pub dry_run: bool,
    pub dropped: Vec<retention::Dropped>,
    /// Objects deleted by this run (retired files past `delete_after` and their siblings).
    pub deleted: usize,
    /// Alert delivery records older than `alerts.retention` deleted by this run.
    pub alerts_expired: crate::alerts::outbox::Expired,
    /// Artifact bundles unused for `sourcemaps.unused_days` and stale chunks deleted by this run.
    pub sourcemaps_expired: crate::sourcemaps::Expired,
}

/// Runs the maintenance jobs against one object store.
pub struct Maintenance {
    config: Config,
    store: Store,
    /// The node of this process, when run inside a server: its manifest is changed through it.
    node: Option<Arc<Node>>,
}

impl Maintenance {
    pub fn new(config: Config, store: Store, node: Option<Arc<Node>>) -> Self {
        Self {
            config,
            store,
            node,
        }
    }

    pub fn for_node(node: &Arc<Node>) -> Self {
        Self::new(
            node.config.clone(),
            node.store.clone(),
            Some(Arc::clone(node)),
        )
    }

    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Changes one node's manifest (through the local node when it is this process's).
    async fn edit(
        &self,
        node_id: &str,
        change: impl FnMut(&Manifest) -> Option<Manifest>,
    ) -> Result<Option<Manifest>> {
        Ok(match &self.node {
            Some(node) if node.config.storage.node_id == node_id => {
                node.edit_manifest(change).await?
            }
            _ => Manifest::edit(&self.store, node_id, None, change).await?,
        })
    }

    async fn policy(&self) -> Result<(retention::Policy, BTreeMap<u64, String>)> {
        let projects = Projects::load(self.store.clone(), &self.config).await?;
        let mut names = BTreeMap::new();
        let mut days = BTreeMap::new();
        for project in projects.list().await? {
            let stored = project.retention_days;
            let days_of = stored.unwrap_or_else(|| self.config.retention_days(&project.name));
            days.insert(project.id, days_of);
            names.insert(project.id, project.name.clone());
        }
        let policy = retention::Policy {
            default_days: self.config.retention.default_days,
            days,
            max_events_per_project: self.config.retention.max_events_per_project,
        };
        Ok((policy, names))
    }

    /// Writes the tag rollups (the `issue_tags` table) of rollup files written before they
    /// existed, in every node's manifest, so a tag search also finds the issues of those days.
    /// Returns how many files it added. A rollup file without any tag count has no tag file
    /// and is read again by the next run.
    pub async fn backfill_tag_rollups(&self) -> Result<usize> {
        let mut added = 0;
        for manifest in Manifest::load_all(&self.store).await? {
            let have: HashSet<&str> = manifest
                .tag_rollups
                .iter()
                .map(|f| f.path.as_str())
                .collect();
            let mut written = Vec::new();
            for file in &manifest.rollups {
                if keys::tag_rollup_of(&file.path).is_none_or(|t| have.contains(t.as_str())) {
                    continue;
                }
                let failed = |e: crate::issues::Error| Error::TagRollups {
                    path: file.path.clone(),
                    source: Box::new(e),
                };
                let data = self
                    .store
                    .get(&ObjectPath::from(file.path.as_str()))
                    .await?;
                let rows = crate::issues::tag_rollup::of_rollup_file(data).map_err(failed)?;
                written.extend(
                    crate::issues::tag_rollup::write(
                        &self.store,
                        &rows,
                        self.config.flush.zstd_level,
                        std::slice::from_ref(file),
                    )
                    .await
                    .map_err(failed)?,
                );
            }
            if written.is_empty() {
                continue;
            }
            let committed = self
                .edit(&manifest.node, |current| {
                    // Only for rollup files still live, and once.
                    let live: HashSet<String> = current
                        .rollups
                        .iter()
                        .filter_map(|f| keys::tag_rollup_of(&f.path))
                        .collect();
                    let listed: HashSet<&str> = current
                        .tag_rollups
                        .iter()
                        .map(|f| f.path.as_str())
                        .collect();
                    let new: Vec<_> = written
                        .iter()
                        .filter(|f| live.contains(&f.path) && !listed.contains(f.path.as_str()))
                        .cloned()
                        .collect();
                    if new.is_empty() {
                        return None;
                    }
                    let mut next = current.clone();
                    next.tag_rollups.extend(new);
                    Some(next)
                })
                .await?;
            if committed.is_some() {
                tracing::info!(
                    node = manifest.node,
                    files = written.len(),
                    "wrote the issue tag rollups of older rollup files"
                );
                added += written.len();
            }
        }
        Ok(added)
    }

    /// Drops expired `date=` partitions from every manifest and deletes what is due.
    #[tracing::instrument(level = "info", skip(self))]
    pub async fn retention(&self, dry_run: bool) -> Result<RetentionReport> {
        let (policy, names) = self.policy().await?;
        let manifests = Manifest::load_all(&self.store).await?;
        let today = Utc::now().date_naive();
        let dropped = retention::plan(&manifests, &policy, &names, today);
        let mut report = RetentionReport {
            dry_run,
            dropped,
            deleted: 0,
            alerts_expired: Default::default(),
            sourcemaps_expired: Default::default(),
        };
        if dry_run {
            return Ok(report);
        }
        let expired: HashSet<(u64, String)> = report
            .dropped
            .iter()
            .map(|d| (d.project_id, d.date.clone()))
            .collect();
        let now_ms = Utc::now().timestamp_millis();
        for manifest in &manifests {
            if manifest.retire_partitions(&expired, now_ms).is_some() {
                let edited = self
                    .edit(&manifest.node, |current| {
                        current.retire_partitions(&expired, now_ms)
                    })
                    .await?;
                if let Some(edited) = edited {
                    self.retire_files(edited.retired.iter().map(|r| r.path.as_str()))
                        .await;
                }
            }
        }
        for dropped in &report.dropped {
            tracing::info!(project = %dropped.project, date = %dropped.date, files = dropped.files,
                events = dropped.events, reason = dropped.reason, "retention dropped a partition");
        }
        report.deleted = self.purge().await?;
        let keep = chrono::Duration::from_std(self.config.alerts.retention)
            .unwrap_or(chrono::Duration::MAX);
        let cutoff = Utc::now()
            .checked_sub_signed(keep)
            .unwrap_or(chrono::DateTime::<Utc>::MIN_UTC);
        report.alerts_expired = crate::alerts::outbox::expire(&self.store, cutoff).await?;
        match crate::sourcemaps::bundles::expire(
            &self.store,
            self.config.sourcemaps.unused_days,
            Utc::now(),
        )
        .await
        {
            Ok(expired) => report.sourcemaps_expired = expired,
            // the events' retention is done; the next run deletes what is left
            Err(err) => tracing::warn!(cause = %err, "cannot expire unused artifact bundles"),
        }
        if report.alerts_expired != Default::default() {
            tracing::info!(
                deliveries = report.alerts_expired.deliveries,
                markers = report.alerts_expired.markers,
                "retention removed alert delivery records older than alerts.retention"
            );
        }
        Ok(report)
    }

    /// Moves files that left the manifests out of the live prefixes (see
    /// [`Store::retire`]). A failure is logged, not returned: the manifest change is done, and
    /// the next purge moves what is left.
    async fn retire_files(&self, paths: impl Iterator<Item = &str>) {
        for path in paths {
            if let Err(err) = self.store.retire(path).await {
                tracing::warn!(path, cause = %err, "cannot move a retired file out of the live prefix yet");
            }
        }
    }

    /// Deletes retired files whose `delete_after` has passed, and with them every other object
    /// under a `date=` partition prefix that no manifest holds a live file in any more
    /// (live and retired, e.g. issue rollups; see [`keys::partition_prefixes`]). Retired files
    /// still under a live prefix (a process stopped between the commit and the move) are moved
    /// first. Returns the number of objects deleted.
    pub async fn purge(&self) -> Result<usize> {
        let now_ms = Utc::now().timestamp_millis();
        let cutoff = now_ms - self.config.retention.delete_after.as_millis() as i64;
        let manifests = Manifest::load_all(&self.store).await?;
        let live: HashSet<&str> = manifests
            .iter()
            .flat_map(|m| m.live_files().map(|f| f.path.as_str()))
            .collect();
        self.retire_files(
            manifests
                .iter()
                .flat_map(|m| m.retired.iter())
                .map(|r| r.path.as_str())
                .filter(|p| !live.contains(p)),
        )
        .await;
        let live_partitions: HashSet<(u64, &str)> = manifests
            .iter()
            .flat_map(|m| m.live_files().map(|f| (f.project_id, f.date.as_str())))
            .collect();
        let mut deleted = 0;
        let mut emptied = BTreeSet::new();
        for manifest in &manifests {
            let due: HashSet<&str> = manifest
                .retired
                .iter()
                .filter(|r| r.since_ms <= cutoff)
                .map(|r| r.path.as_str())
                .collect();
            if due.is_empty() {
                continue;
            }
            for retired in manifest
                .retired
                .iter()
                .filter(|r| due.contains(r.path.as_str()))
            {
                if !live.contains(retired.path.as_str()) {
                    self.store
                        .delete(&ObjectPath::from(retired.path.as_str()))
                        .await?;
                    if let Some(moved) = keys::retired(&retired.path) {
                        self.store.delete(&ObjectPath::from(moved)).await?;
                    }
                    deleted += 1;
                }
                if !live_partitions.contains(&(retired.project_id, retired.date.as_str())) {
                    emptied.insert((retired.project_id, retired.date.clone()));
                }
            }
            self.edit(&manifest.node, |current| {
                if !current
                    .retired
                    .iter()
                    .any(|r| due.contains(r.path.as_str()))
                {
                    return None;
                }
                let mut next = current.clone();
                next.retired.retain(|r| !due.contains(r.path.as_str()));
                Some(next)
            })
            .await?;
        }
        for (project, date) in emptied {
            for prefix in keys::partition_prefixes(project, &date, crate::items::names()) {
                for object in self.store.list(&prefix).await? {
                    if !live.contains(object.location.as_ref())
                        && object.last_modified.timestamp_millis() <= cutoff
                    {
                        self.store.delete(&object.location).await?;
                        deleted += 1;
                    }
                }
            }
        }
        Ok(deleted)
    }
}
