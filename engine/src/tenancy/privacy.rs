//! Each project's data scrubbing settings (docs/privacy.md): from the config file
//! (`[project.privacy]`), else set through the project API (`meta/privacy/<id>.json`), else the
//! defaults. Compiled once into a [`Scrubber`] that ingest applies to every event.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::Bytes;
use faultline_config::{PrivacyConfig, ProjectConfig};
use faultline_protocol::scrub::{ScrubSettings, Scrubber};
use object_store::path::Path as ObjectPath;
use parking_lot::RwLock;

use super::{Error, Projects, Result};
use crate::store::Store;

/// Where the settings changed through the API are kept.
const PRIVACY_PREFIX: &str = "meta/privacy";

fn privacy_path(id: u64) -> ObjectPath {
    ObjectPath::from(format!("{PRIVACY_PREFIX}/{id}.json"))
}

/// The settings of the config file, in the protocol's terms.
pub(super) fn settings(config: &PrivacyConfig) -> ScrubSettings {
    ScrubSettings {
        scrub_data: config.scrub_data,
        scrub_defaults: config.scrub_defaults,
        scrub_ip_addresses: config.scrub_ip_addresses,
        sensitive_fields: config.sensitive_fields.clone(),
        safe_fields: config.safe_fields.clone(),
        pii_config: config.pii_config.clone(),
    }
}

type Compiled = (ScrubSettings, Arc<Scrubber>);

pub(super) struct PrivacyRules {
    default: Compiled,
    from_config: HashMap<u64, Compiled>,
    from_api: RwLock<HashMap<u64, Compiled>>,
}

fn compile(project: &str, settings: ScrubSettings) -> Result<Compiled> {
    let scrubber = Scrubber::new(&settings).map_err(|source| Error::PrivacyRules {
        project: project.to_owned(),
        source,
    })?;
    Ok((settings, Arc::new(scrubber)))
}

impl PrivacyRules {
    pub(super) fn load(projects: &[ProjectConfig]) -> Result<Self> {
        let mut from_config = HashMap::new();
        for p in projects {
            if let Some(privacy) = &p.privacy {
                from_config.insert(p.id, compile(&p.name, settings(privacy))?);
            }
        }
        Ok(Self {
            default: compile("", ScrubSettings::default())?,
            from_config,
            from_api: RwLock::new(HashMap::new()),
        })
    }

    /// Re-reads the settings set through the API; ones that no longer compile are logged and
    /// the defaults apply.
    pub(super) async fn read(&self, store: &Store) -> Result<()> {
        let mut map = HashMap::new();
        for meta in store.list(&ObjectPath::from(PRIVACY_PREFIX)).await? {
            let Some(id) = meta
                .location
                .filename()
                .and_then(|f| f.strip_suffix(".json"))
                .and_then(|id| id.parse::<u64>().ok())
            else {
                continue;
            };
            let settings: ScrubSettings = store.get_json(&meta.location).await?;
            match compile("", settings) {
                Ok(compiled) => {
                    map.insert(id, compiled);
                }
                Err(err) => {
                    tracing::warn!(project_id = id, cause = %err, "stored data scrubbing settings do not compile; the defaults apply");
                }
            }
        }
        *self.from_api.write() = map;
        Ok(())
    }

    fn get(&self, id: u64) -> (Compiled, bool) {
        if let Some(found) = self.from_config.get(&id) {
            return (found.clone(), true);
        }
        let api = self.from_api.read();
        (
            api.get(&id)
                .cloned()
                .unwrap_or_else(|| self.default.clone()),
            false,
        )
    }
}

impl Projects {
    /// The compiled scrubbing rules of project `id`, applied to its events at ingest.
    pub fn scrubber(&self, id: u64) -> Arc<Scrubber> {
        Arc::clone(&self.privacy.get(id).0.1)
    }

    /// The data scrubbing settings of project `id` and whether they come from the config file.
    pub fn privacy_settings(&self, id: u64) -> (ScrubSettings, bool) {
        let ((settings, _), from_config) = self.privacy.get(id);
        (settings, from_config)
    }

    /// Sets the data scrubbing settings of project `name` of `org` (applied to new events from
    /// now on). Refused for settings declared in the config file.
    pub async fn set_privacy_settings(
        &self,
        org: &str,
        name: &str,
        settings: ScrubSettings,
    ) -> Result<ScrubSettings> {
        let id = self.ids_by_name(org, &[name.to_owned()]).await?[0];
        let compiled = self.check_privacy_settings(id, name, settings)?;
        let body = serde_json::to_vec(&compiled.0).unwrap_or_default();
        self.store
            .put_durable(&privacy_path(id), Bytes::from(body))
            .await?;
        let settings = compiled.0.clone();
        self.privacy.from_api.write().insert(id, compiled);
        Ok(settings)
    }

    /// Whether `settings` may become the data scrubbing settings of project `id` named `name`
    /// (the rules compile, and the project's settings are not the config file's), without
    /// changing anything: what [`Self::set_privacy_settings`] would refuse. `id` is `None` for
    /// a project yet to be created.
    pub fn check_privacy_settings(
        &self,
        id: impl Into<Option<u64>>,
        name: &str,
        settings: ScrubSettings,
    ) -> Result<(ScrubSettings, Arc<Scrubber>)> {
        if id
            .into()
            .is_some_and(|id| self.privacy.from_config.contains_key(&id))
        {
            return Err(Error::ConfigPrivacy {
                project: name.to_owned(),
            });
        }
        compile(name, settings)
    }
}
