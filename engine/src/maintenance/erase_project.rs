//! Erasing erased projects' stored rows (see `tenancy::erasure`): every live file of such a
//! project (events, issue rollups and tag rollups, every item table) leaves every node's
//! manifest and is retired, so it is deleted after `retention.delete_after` as retention's
//! files are; the project's issue states, attachment objects, cron monitors and issue
//! deletion markers are deleted.
//!
//! It runs when the erase is asked for and on every maintenance tick after, because rows of
//! the project still in some node's buffer reach a file only at that node's next flush (a
//! restart's replay leaves them out, see `node.rs`). The files are looked for in every tick
//! for as long as the marker exists; the other objects for a day after the erase (nothing adds
//! to them once the project is gone).

use std::collections::HashSet;

use chrono::{DateTime, Duration as ChronoDuration, Utc};
use object_store::path::Path as ObjectPath;
use serde::Serialize;

use super::{Maintenance, Result};
use crate::store::keys;
use crate::store::manifest::Manifest;

/// How long after an erase the project's other objects are looked for again.
const OBJECTS_FOR: ChronoDuration = ChronoDuration::days(1);

/// What one run did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ProjectEraseReport {
    /// Erased projects looked at.
    pub projects: usize,
    /// Files retired from the manifests.
    pub files: usize,
    /// Other objects deleted.
    pub objects: usize,
}

impl Maintenance {
    /// Takes the stored rows of every erased project out (see the module documentation).
    pub async fn erase_projects(&self) -> Result<ProjectEraseReport> {
        self.erase_projects_as_of(Utc::now()).await
    }

    /// [`Self::erase_projects`] as if it were `now`.
    pub(crate) async fn erase_projects_as_of(
        &self,
        now: DateTime<Utc>,
    ) -> Result<ProjectEraseReport> {
        let mut report = ProjectEraseReport::default();
        let erased = crate::tenancy::erasure::erasures(&self.store).await?;
        if erased.is_empty() {
            return Ok(report);
        }
        report.projects = erased.len();
        let ids: HashSet<u64> = erased.iter().map(|e| e.project_id).collect();
        let now_ms = now.timestamp_millis();
        for manifest in Manifest::load_all(&self.store).await? {
            if manifest.retire_projects(&ids, now_ms).is_none() {
                continue;
            }
            let before = manifest.retired.len();
            let edited = self
                .edit(&manifest.node, |current| {
                    current.retire_projects(&ids, now_ms)
                })
                .await?;
            if let Some(edited) = edited {
                report.files += edited.retired.len().saturating_sub(before);
                let gone = edited
                    .retired
                    .iter()
                    .filter(|r| ids.contains(&r.project_id))
                    .map(|r| r.path.as_str());
                self.retire_files(gone).await;
            }
        }
        for erasure in erased.iter().filter(|e| e.at + OBJECTS_FOR > now) {
            let id = erasure.project_id;
            for prefix in [
                format!("meta/issues/project={id}"),
                format!("{}/{}={id}", keys::ATTACHMENTS, keys::PROJECT_KEY),
                format!("{}/{}={id}", keys::MONITORS, keys::PROJECT_KEY),
                format!("{}/project={id}", keys::ISSUE_DELETIONS),
            ] {
                for object in self.store.list(&ObjectPath::from(prefix)).await? {
                    self.store.delete(&object.location).await?;
                    report.objects += 1;
                }
            }
        }
        if report.files > 0 || report.objects > 0 {
            tracing::info!(
                files = report.files,
                objects = report.objects,
                "erased the rows of erased projects"
            );
        }
        Ok(report)
    }
}
