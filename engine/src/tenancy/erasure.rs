//! Erasing a project (what `deletionPolicy: Delete` of a `FaultlineProject` asks for):
//! [`Projects::erase`] writes the marker `meta/erasures/proj=<id>.json`, removes the project's
//! DSN keys and then the project itself, so from then on no SDK can send to it and no token
//! can read it (queries see only existing projects). Its stored rows are taken out of every
//! node's files by maintenance (`maintenance::erase`), at once when the erase is asked for
//! over HTTP and again on every maintenance tick, so rows that were still in a node's buffer or
//! WAL and are flushed later (also after a restart) are erased too. The marker stays: the id
//! is never given to another project, so no later project can see the old rows. A node's
//! start-up replay of its WAL leaves out rows of erased projects, so they do not come back
//! after a restart.

use bytes::Bytes;
use chrono::{DateTime, Utc};
use object_store::path::Path as ObjectPath;
use serde::{Deserialize, Serialize};

use super::projects::{Projects, project_path};
use super::{Error, Result};
use crate::store::{self, Store, keys};

/// The marker of an erased project.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Erasure {
    pub project_id: u64,
    pub org: String,
    pub name: String,
    /// When the erase was asked for.
    pub at: DateTime<Utc>,
}

impl Projects {
    /// Erases project `name` of `org` (see the module documentation); returns the marker and
    /// whether this call erased it (`false`: it was erased before, nothing changed). A project
    /// of the config file is refused.
    pub async fn erase(&self, org: &str, name: &str) -> Result<(Erasure, bool)> {
        let current = self
            .list()
            .await?
            .into_iter()
            .find(|p| p.org == org && p.name == name);
        let Some(current) = current else {
            // erased before: the same answer again
            return self
                .erasures()
                .await?
                .into_iter()
                .filter(|e| e.org == org && e.name == name)
                .max_by_key(|e| e.at)
                .map(|e| (e, false))
                .ok_or_else(|| Error::UnknownProjectName {
                    org: org.to_owned(),
                    name: name.to_owned(),
                });
        };
        if self.config_has_project(current.id) {
            return Err(Error::ConfigProject {
                name: name.to_owned(),
            });
        }
        let erasure = Erasure {
            project_id: current.id,
            org: org.to_owned(),
            name: name.to_owned(),
            at: Utc::now(),
        };
        let data = serde_json::to_vec_pretty(&erasure).expect("erasure serializes");
        match self
            .store
            .create_durable(&keys::project_erasure(current.id), Bytes::from(data))
            .await
        {
            // a retry after a failure below finds its own marker
            Ok(()) | Err(store::Error::AlreadyExists { .. }) => {}
            Err(err) => return Err(err.into()),
        }
        self.unregister(org, name).await?;
        self.store.delete(&project_path(current.id)).await?;
        self.reload_now().await?;
        tracing::info!(org, project = name, id = current.id, "project erased");
        Ok((erasure, true))
    }

    /// Every erased project's marker.
    pub async fn erasures(&self) -> Result<Vec<Erasure>> {
        erasures(&self.store).await
    }
}

/// Every erased project's marker in `store` (an unreadable one is logged and left out).
pub async fn erasures(store: &Store) -> Result<Vec<Erasure>> {
    let mut out = Vec::new();
    for meta in store
        .list(&ObjectPath::from(keys::PROJECT_ERASURES))
        .await?
    {
        match store.get_json::<Erasure>(&meta.location).await {
            Ok(erasure) => out.push(erasure),
            Err(err) => {
                tracing::warn!(path = %meta.location, cause = %err, "unreadable project erasure marker");
            }
        }
    }
    Ok(out)
}
