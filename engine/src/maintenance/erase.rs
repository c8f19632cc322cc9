//! Erasing deleted issues: the rows of their events are taken out of the stored files.
//!
//! Deleting an issue ([`crate::issues::delete`]) writes its state (`deleted`, which hides it at
//! once) and a marker `meta/deletions/project=<id>/issue=<id>.json`. Once every event
//! acknowledged before the deletion can have been flushed (two flush intervals and a margin
//! later), maintenance rewrites each (node, project, day) that holds rows of the issue: event
//! files with such rows are written again without them (or dropped when nothing is left), and
//! the day's issue rollups and tag rollups are made anew from the remaining events, all in one
//! manifest edit that applies only if every input is still live (otherwise the next run tries
//! again). The old files are retired as compaction retires its inputs, so they are deleted
//! after `retention.delete_after`. The issue's state then records `erased_at`, and the marker
//! goes.
//!
//! Events received after the deletion are kept: the issue starts afresh with them.

use std::collections::{BTreeSet, HashSet};

use bytes::Bytes;
use chrono::{DateTime, Duration as ChronoDuration, Utc};
use datafusion::arrow::array::{AsArray, RecordBatch};
use datafusion::arrow::datatypes::{Int64Type, TimestampMillisecondType};
use object_store::path::Path as ObjectPath;
use serde::Serialize;

use crate::issues::Deletion;

use super::compaction::decode;
use super::{Error, Maintenance, Result};
use crate::issues::state::{self, Status};
use crate::store::manifest::{DataFile, Manifest, Retired};
use crate::store::parquet::{COMPACTED_EVENT_PAGE_BYTES, encode, writer_properties};
use crate::store::{self, keys};

/// What an erase run did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct EraseReport {
    /// Deletions whose events were erased by this run.
    pub erased: usize,
    /// Deletions still waiting for events to be flushed.
    pub waiting: usize,
    /// Event rows taken out.
    pub rows: u64,
}

impl Maintenance {
    /// How long after a deletion its events are erased: by then every event acknowledged
    /// before it has been flushed by its node.
    fn settle(&self) -> ChronoDuration {
        let flush = self.config.flush.interval;
        ChronoDuration::from_std(flush * 2 + std::time::Duration::from_secs(5))
            .unwrap_or(ChronoDuration::seconds(60))
    }

    /// Erases the events of deleted issues whose deletion has settled (see the module docs).
    pub async fn erase_deleted(&self) -> Result<EraseReport> {
        self.erase_deleted_as_of(Utc::now()).await
    }

    /// [`Self::erase_deleted`] as if it were `now`.
    pub(crate) async fn erase_deleted_as_of(&self, now: DateTime<Utc>) -> Result<EraseReport> {
        let mut report = EraseReport::default();
        let markers = self
            .store
            .list(&ObjectPath::from(keys::ISSUE_DELETIONS))
            .await?;
        for marker in markers {
            let data = match self.store.get(&marker.location).await {
                Ok(data) => data,
                // done by another run meanwhile
                Err(store::Error::Request {
                    source: object_store::Error::NotFound { .. },
                    ..
                }) => continue,
                Err(err) => return Err(err.into()),
            };
            let deletion: Deletion = match serde_json::from_slice(&data) {
                Ok(deletion) => deletion,
                Err(err) => {
                    tracing::warn!(path = %marker.location, cause = %err, "unreadable issue deletion marker; left as it is");
                    continue;
                }
            };
            if deletion.at + self.settle() > now {
                report.waiting += 1;
                continue;
            }
            report.rows += self.erase(&deletion).await?;
            report.erased += 1;
            for issue in &deletion.issues {
                let failed = |source: crate::issues::Error| Error::Erase {
                    what: marker.location.to_string(),
                    source: Box::new(source),
                };
                let Some(current) = state::current(&self.store, deletion.project_id, *issue)
                    .await
                    .map_err(failed)?
                else {
                    continue;
                };
                if current.status == Status::Deleted && current.changed == deletion.at {
                    let mut next = current.clone();
                    next.erased_at = Some(Utc::now());
                    next.action = Some("erase".to_owned());
                    state::save_after(&self.store, next, Some(&current))
                        .await
                        .map_err(failed)?;
                }
            }
            self.store.delete(&marker.location).await?;
            tracing::info!(
                project_id = deletion.project_id,
                issues = ?deletion.issues,
                "erased the events of deleted issues"
            );
        }
        Ok(report)
    }

    /// Erases one deletion's events from every node's files; returns the rows taken out.
    async fn erase(&self, deletion: &Deletion) -> Result<u64> {
        let ids: HashSet<i64> = deletion.issues.iter().copied().collect();
        let mut rows = 0;
        for manifest in Manifest::load_all(&self.store).await? {
            // the days with rows of the issues, from the day's rollups (small files)
            let mut days = BTreeSet::new();
            for file in manifest
                .rollups
                .iter()
                .filter(|f| f.project_id == deletion.project_id)
            {
                if days.contains(&file.date) {
                    continue;
                }
                let batches = self.read(file).await?;
                if batches.iter().any(|b| has_issue(b, &ids)) {
                    days.insert(file.date.clone());
                }
            }
            // days whose events have no rollup file (written before rollups existed)
            for file in &manifest.files {
                if file.project_id == deletion.project_id
                    && !manifest
                        .rollups
                        .iter()
                        .any(|r| r.project_id == file.project_id && r.date == file.date)
                {
                    days.insert(file.date.clone());
                }
            }
            for day in days {
                rows += self.erase_day(&manifest.node, deletion, &ids, &day).await?;
            }
        }
        Ok(rows)
    }

    async fn read(&self, file: &DataFile) -> Result<Vec<RecordBatch>> {
        let data = self
            .store
            .get(&ObjectPath::from(file.path.as_str()))
            .await?;
        let path = file.path.clone();
        tokio::task::spawn_blocking(move || decode(&path, data))
            .await
            .expect("decoding does not panic")
    }

    /// Rewrites one day of one project of one node without the deleted issues' rows.
    async fn erase_day(
        &self,
        node: &str,
        deletion: &Deletion,
        ids: &HashSet<i64>,
        day: &str,
    ) -> Result<u64> {
        let project_id = deletion.project_id;
        let cutoff = deletion.at.timestamp_millis();
        let manifest = Manifest::load_latest(&self.store, node).await?;
        let of_day = |f: &&DataFile| f.project_id == project_id && f.date == day;
        let files: Vec<DataFile> = manifest.files.iter().filter(of_day).cloned().collect();
        let level = self.config.compaction.zstd_level;
        let mut kept_batches: Vec<RecordBatch> = Vec::new();
        let mut replaced: Vec<DataFile> = Vec::new();
        let mut written: Vec<DataFile> = Vec::new();
        let mut removed = 0u64;
        for file in &files {
            let batches = self.read(file).await?;
            let keep: Vec<(usize, usize)> = batches
                .iter()
                .enumerate()
                .flat_map(|(b, batch)| {
                    let issues = batch
                        .column_by_name("issue_id")
                        .map(|c| c.as_primitive::<Int64Type>());
                    let received = batch
                        .column_by_name("received")
                        .map(|c| c.as_primitive::<TimestampMillisecondType>());
                    (0..batch.num_rows())
                        .filter(move |row| match (issues, received) {
                            (Some(issues), Some(received)) => {
                                !(ids.contains(&issues.value(*row))
                                    && received.value(*row) <= cutoff)
                            }
                            _ => true,
                        })
                        .map(move |row| (b, row))
                })
                .collect();
            let total: usize = batches.iter().map(RecordBatch::num_rows).sum();
            if keep.len() == total {
                kept_batches.extend(batches);
                continue;
            }
            removed += (total - keep.len()) as u64;
            replaced.push(file.clone());
            if keep.is_empty() {
                continue;
            }
            let path = keys::event_file(project_id, day, u32::from(file.hour), ulid::Ulid::new());
            let encoded = {
                let (batches, keep, path) = (batches.clone(), keep.clone(), path.clone());
                tokio::task::spawn_blocking(move || {
                    encode(
                        &batches,
                        &keep,
                        writer_properties(level, keep.len(), COMPACTED_EVENT_PAGE_BYTES),
                    )
                    .map_err(|e| Error::Compact {
                        path,
                        message: e.to_string(),
                    })
                })
                .await
                .expect("encoding does not panic")?
            };
            let bytes = encoded.len() as u64;
            self.store
                .put_durable(&ObjectPath::from(path.as_str()), Bytes::from(encoded))
                .await?;
            written.push(DataFile {
                path,
                rows: keep.len() as u64,
                bytes,
                ..file.clone()
            });
            let kept =
                crate::store::parquet::take_rows(&batches, &keep).map_err(|e| Error::Compact {
                    path: file.path.clone(),
                    message: e.to_string(),
                })?;
            kept_batches.push(kept);
        }
        if replaced.is_empty() {
            return Ok(0);
        }
        // the day's rollups and tag rollups, made anew from the events that stay
        let failed = |source: crate::issues::Error| Error::Erase {
            what: format!("the rollups of project {project_id} on {day}"),
            source: Box::new(source),
        };
        let rollups = crate::issues::rollup::compute(&kept_batches).map_err(failed)?;
        let rollup_files = crate::issues::rollup::write(&self.store, &rollups, level)
            .await
            .map_err(failed)?;
        let tags = crate::issues::tag_rollup::compute(&rollups).map_err(failed)?;
        let tag_files = crate::issues::tag_rollup::write(&self.store, &tags, level, &rollup_files)
            .await
            .map_err(failed)?;
        let old_rollups: Vec<DataFile> = manifest.rollups.iter().filter(of_day).cloned().collect();
        let old_tags: Vec<DataFile> = manifest
            .tag_rollups
            .iter()
            .filter(of_day)
            .cloned()
            .collect();
        let inputs: HashSet<&str> = replaced
            .iter()
            .chain(&old_rollups)
            .chain(&old_tags)
            .map(|f| f.path.as_str())
            .collect();
        let now_ms = Utc::now().timestamp_millis();
        let edited = self
            .edit(node, |current| {
                let live = current
                    .files
                    .iter()
                    .chain(&current.rollups)
                    .chain(&current.tag_rollups)
                    .filter(|f| inputs.contains(f.path.as_str()))
                    .count();
                // a file of the day added meanwhile (a flush) or gone (compaction): next run
                let day_now = current
                    .rollups
                    .iter()
                    .chain(&current.tag_rollups)
                    .filter(of_day)
                    .count();
                if live != inputs.len() || day_now != old_rollups.len() + old_tags.len() {
                    return None;
                }
                let mut next = current.clone();
                next.files.retain(|f| !inputs.contains(f.path.as_str()));
                next.files.extend(written.iter().cloned());
                next.rollups.retain(|f| !inputs.contains(f.path.as_str()));
                next.rollups.extend(rollup_files.iter().cloned());
                next.tag_rollups
                    .retain(|f| !inputs.contains(f.path.as_str()));
                next.tag_rollups.extend(tag_files.iter().cloned());
                next.retired
                    .extend(
                        replaced
                            .iter()
                            .chain(&old_rollups)
                            .chain(&old_tags)
                            .map(|f| Retired {
                                path: f.path.clone(),
                                project_id: f.project_id,
                                date: f.date.clone(),
                                since_ms: now_ms,
                            }),
                    );
                Some(next)
            })
            .await?;
        if edited.is_none() {
            tracing::info!(
                node,
                project_id,
                day,
                "files changed while erasing a deleted issue; trying again at the next run"
            );
            for file in written.iter().chain(&rollup_files).chain(&tag_files) {
                self.store
                    .delete(&ObjectPath::from(file.path.as_str()))
                    .await?;
            }
            return Err(Error::Compact {
                path: format!("{}/proj={project_id}/date={day}", keys::EVENTS),
                message: "files changed meanwhile; the erase is retried".to_owned(),
            });
        }
        self.retire_files(
            replaced
                .iter()
                .chain(&old_rollups)
                .chain(&old_tags)
                .map(|f| f.path.as_str()),
        )
        .await;
        Ok(removed)
    }
}

fn has_issue(batch: &RecordBatch, ids: &HashSet<i64>) -> bool {
    batch
        .column_by_name("issue_id")
        .map(|c| c.as_primitive::<Int64Type>())
        .is_some_and(|issues| issues.values().iter().any(|id| ids.contains(id)))
}
