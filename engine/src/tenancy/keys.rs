//! DSN keys, as Sentry's project keys: a project has one or more keys, each can be disabled,
//! given its own rate limit, rotated (a new key next to the old one, which keeps working until
//! it is disabled or deleted) and deleted.
//!
//! Where keys live:
//! - keys in the config file (`[[project]] keys`, what the operator writes) are changed only
//!   there; the commands below refuse to touch them;
//! - the first key of a project created by `faultline project create` is written in the
//!   project's object (`meta/projects/<id>.json`), as before keys could be managed;
//! - every other key, and every change to a key of a stored project, is one object
//!   `meta/keys/<project id>/<public key>.json`, which overrides the key of the same name in
//!   the project's object. Two admins changing the same key at once: the last write wins.
//!
//! Keys are public (they are in every browser page that reports errors), so they appear in
//! object names; they are still compared in constant time at ingest.

use bytes::Bytes;
use chrono::{DateTime, Utc};
use faultline_config::{KeyConfig, RateLimit};
use object_store::path::Path as ObjectPath;
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

use super::projects::{Project, Projects, project_path};
use super::{Error, Result};

/// The stored form of a key managed through the CLI or the API.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct KeyRecord {
    pub(crate) project_id: u64,
    pub(crate) public: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) label: Option<String>,
    pub(crate) enabled: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) rate_limit: Option<RateLimit>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(crate) created: Option<DateTime<Utc>>,
}

impl KeyRecord {
    pub(crate) fn config(&self) -> KeyConfig {
        KeyConfig {
            public: self.public.clone(),
            label: self.label.clone(),
            enabled: self.enabled,
            rate_limit: self.rate_limit.clone(),
        }
    }
}

/// Prefix of every stored key object.
pub(crate) const KEYS_PREFIX: &str = "meta/keys";

fn key_path(project_id: u64, public: &str) -> ObjectPath {
    ObjectPath::from(format!("{KEYS_PREFIX}/{project_id}/{public}.json"))
}

/// Where a key is managed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum KeySource {
    /// The config file (the operator); change it there.
    Config,
    /// The object store (CLI and API).
    Store,
}

/// One key of a project, as listed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct KeyInfo {
    pub project_id: u64,
    pub project: String,
    pub public: String,
    pub label: Option<String>,
    pub enabled: bool,
    pub rate_limit: Option<RateLimit>,
    pub created: Option<DateTime<Utc>>,
    pub source: KeySource,
}

/// A change to one key; `None` leaves a setting as it is.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct KeyUpdate {
    pub enabled: Option<bool>,
    pub label: Option<String>,
    /// `Some(None)` removes the key's own limit.
    pub rate_limit: Option<Option<RateLimit>>,
}

/// A new DSN public key: 32 lowercase hex characters.
pub(crate) fn new_key() -> String {
    hex::encode(rand::random::<[u8; 16]>())
}

/// The index of `key` among `keys`, comparing every key in constant time (and all of them,
/// so the time does not tell which one matched either).
pub(crate) fn find_key(keys: &[KeyConfig], key: &str) -> Option<usize> {
    let mut found = None;
    for (i, candidate) in keys.iter().enumerate() {
        if bool::from(candidate.public.as_bytes().ct_eq(key.as_bytes())) {
            found = Some(i);
        }
    }
    found
}

fn check_limit(limit: Option<&RateLimit>) -> Result<()> {
    match limit {
        Some(limit) if !limit.is_valid() => Err(Error::InvalidRateLimit),
        _ => Ok(()),
    }
}

impl Projects {
    /// The project `name` of `org`, fresh from the store.
    async fn named(&self, org: &str, name: &str) -> Result<std::sync::Arc<Project>> {
        self.list()
            .await?
            .into_iter()
            .find(|p| p.org == org && p.name == name)
            .ok_or_else(|| Error::UnknownProjectName {
                org: org.to_owned(),
                name: name.to_owned(),
            })
    }

    fn info(&self, project: &Project, key: &KeyConfig, created: Option<DateTime<Utc>>) -> KeyInfo {
        KeyInfo {
            project_id: project.id,
            project: project.name.clone(),
            public: key.public.clone(),
            label: key.label.clone(),
            enabled: key.enabled,
            rate_limit: key.rate_limit.clone(),
            created,
            source: if self.config_has_key(project.id, &key.public) {
                KeySource::Config
            } else {
                KeySource::Store
            },
        }
    }

    async fn created_at(&self, project_id: u64, public: &str) -> Option<DateTime<Utc>> {
        self.store
            .get_json::<KeyRecord>(&key_path(project_id, public))
            .await
            .ok()
            .and_then(|r| r.created)
    }

    /// Every key of project `name` of `org`, in the order they are tried.
    pub async fn keys(&self, org: &str, name: &str) -> Result<Vec<KeyInfo>> {
        let project = self.named(org, name).await?;
        let mut out = Vec::with_capacity(project.keys.len());
        for key in &project.keys {
            let created = self.created_at(project.id, &key.public).await;
            out.push(self.info(&project, key, created));
        }
        Ok(out)
    }

    /// Adds a new active key to project `name` of `org`.
    pub async fn create_key(
        &self,
        org: &str,
        name: &str,
        label: Option<String>,
        rate_limit: Option<RateLimit>,
    ) -> Result<KeyInfo> {
        check_limit(rate_limit.as_ref())?;
        let project = self.named(org, name).await?;
        let record = KeyRecord {
            project_id: project.id,
            public: new_key(),
            label,
            enabled: true,
            rate_limit,
            created: Some(Utc::now()),
        };
        self.write_record(&record, true).await?;
        tracing::info!(project = %project.name, key = %record.public, "dsn key created");
        Ok(self.info(&project, &record.config(), record.created))
    }

    /// Creates a key with the label and rate limit of `old`; `old` keeps working until it is
    /// disabled or deleted. Returns the new key.
    pub async fn rotate_key(&self, org: &str, name: &str, old: &str) -> Result<KeyInfo> {
        let project = self.named(org, name).await?;
        let current = self.key_of(&project, old)?;
        self.create_key(org, name, current.label.clone(), current.rate_limit.clone())
            .await
    }

    /// Changes one key of project `name` of `org`.
    pub async fn update_key(
        &self,
        org: &str,
        name: &str,
        public: &str,
        update: KeyUpdate,
    ) -> Result<KeyInfo> {
        let project = self.named(org, name).await?;
        let current = self.key_of(&project, public)?;
        self.refuse_config_key(&project, public)?;
        if let Some(Some(limit)) = &update.rate_limit {
            check_limit(Some(limit))?;
        }
        if update.enabled == Some(false) && current.enabled {
            self.keep_one_active(&project, public)?;
        }
        let created = self.created_at(project.id, public).await;
        let record = KeyRecord {
            project_id: project.id,
            public: current.public.clone(),
            label: update.label.or_else(|| current.label.clone()),
            enabled: update.enabled.unwrap_or(current.enabled),
            rate_limit: update
                .rate_limit
                .unwrap_or_else(|| current.rate_limit.clone()),
            created,
        };
        self.write_record(&record, false).await?;
        tracing::info!(project = %project.name, key = %public, enabled = record.enabled, "dsn key changed");
        Ok(self.info(&project, &record.config(), created))
    }

    /// Deletes one key of project `name` of `org`; SDKs that still send it get 401.
    pub async fn delete_key(&self, org: &str, name: &str, public: &str) -> Result<KeyInfo> {
        let project = self.named(org, name).await?;
        let current = self.key_of(&project, public)?.clone();
        self.refuse_config_key(&project, public)?;
        if current.enabled {
            self.keep_one_active(&project, public)?;
        }
        let created = self.created_at(project.id, public).await;
        // A key written in the project's own object (its first key) leaves it by rewriting it.
        if let Ok(mut stored) = self
            .store
            .get_json::<Project>(&project_path(project.id))
            .await
            && stored.keys.iter().any(|k| k.public == public)
        {
            stored.keys.retain(|k| k.public != public);
            let data = serde_json::to_vec_pretty(&stored).expect("project serializes");
            self.store
                .put_durable(&project_path(project.id), Bytes::from(data))
                .await?;
        }
        self.store.delete(&key_path(project.id, public)).await?;
        self.reload_now().await?;
        tracing::info!(project = %project.name, key = %public, "dsn key deleted");
        Ok(self.info(&project, &current, created))
    }

    fn key_of<'p>(&self, project: &'p Project, public: &str) -> Result<&'p KeyConfig> {
        project
            .keys
            .iter()
            .find(|k| k.public == public)
            .ok_or_else(|| Error::UnknownKey {
                project: project.name.clone(),
                key: public.to_owned(),
            })
    }

    fn refuse_config_key(&self, project: &Project, public: &str) -> Result<()> {
        if self.config_has_key(project.id, public) {
            return Err(Error::ConfigKey {
                project: project.name.clone(),
                key: public.to_owned(),
            });
        }
        Ok(())
    }

    /// Refuses to leave a project without an active key (its SDKs could send nothing).
    fn keep_one_active(&self, project: &Project, public: &str) -> Result<()> {
        if project.keys.iter().any(|k| k.enabled && k.public != public) {
            Ok(())
        } else {
            Err(Error::LastActiveKey {
                project: project.name.clone(),
            })
        }
    }

    async fn write_record(&self, record: &KeyRecord, create: bool) -> Result<()> {
        let data = Bytes::from(serde_json::to_vec_pretty(record).expect("key record serializes"));
        let path = key_path(record.project_id, &record.public);
        if create {
            self.store.create_durable(&path, data).await?;
        } else {
            self.store.put_durable(&path, data).await?;
        }
        self.reload_now().await
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use faultline_config::{Config, ProjectConfig};

    use super::*;
    use crate::store::Store;
    use crate::tenancy::DEFAULT_ORG;

    const CONFIG_KEY: &str = "0123456789abcdef0123456789abcdef";

    fn config() -> Config {
        let mut config = Config::default();
        config.projects.push(ProjectConfig {
            id: 7,
            name: "ops".into(),
            keys: vec![CONFIG_KEY.into()],
            quotas: Vec::new(),
            rate_limit: None,
            retention_days: None,
            grouping_enhancements: None,
            fingerprinting_rules: None,
            privacy: None,
        });
        config
    }

    #[test]
    fn the_matching_key_is_found_among_several() {
        let keys: Vec<KeyConfig> = ["a".repeat(32), "b".repeat(32)]
            .iter()
            .map(|k| KeyConfig::new(k.as_str()))
            .collect();
        assert_eq!(find_key(&keys, &"b".repeat(32)), Some(1));
        assert_eq!(find_key(&keys, &"a".repeat(32)), Some(0));
        assert_eq!(find_key(&keys, &"a".repeat(31)), None);
        assert_eq!(find_key(&keys, ""), None);
    }

    #[tokio::test]
    async fn rotation_keeps_the_old_key_until_it_is_disabled() {
        let store = Store::memory();
        let server = Projects::load(store.clone(), &config()).await.unwrap();
        let cli = Projects::load(store, &config()).await.unwrap();
        let shop = cli.create("shop", DEFAULT_ORG).await.unwrap();
        let old = shop.keys[0].public.clone();
        let new = cli.rotate_key(DEFAULT_ORG, "shop", &old).await.unwrap();
        assert_ne!(new.public, old);
        server.reload_now().await.unwrap();
        server.authorize(shop.id, &old).await.unwrap();
        let granted = server.authorize(shop.id, &new.public).await.unwrap();
        assert_eq!(granted.key().public, new.public);

        let disabled = cli
            .update_key(
                DEFAULT_ORG,
                "shop",
                &old,
                KeyUpdate {
                    enabled: Some(false),
                    ..KeyUpdate::default()
                },
            )
            .await
            .unwrap();
        assert!(!disabled.enabled);
        server.reload_now().await.unwrap();
        let err = server.authorize(shop.id, &old).await.unwrap_err();
        assert!(matches!(err, Error::DisabledKey { .. }), "{err}");
        assert!(err.to_string().contains("disabled"), "{err}");
        server.authorize(shop.id, &new.public).await.unwrap();
        assert_eq!(
            cli.project_dsn(shop.id, "http://h:1").await.unwrap(),
            Some(format!("http://{}@h:1/{}", new.public, shop.id))
        );

        // The new key is now the only active one: it cannot go.
        let err = cli
            .delete_key(DEFAULT_ORG, "shop", &new.public)
            .await
            .unwrap_err();
        assert!(matches!(err, Error::LastActiveKey { .. }), "{err}");
        // The old one can, from the project's own object.
        cli.delete_key(DEFAULT_ORG, "shop", &old).await.unwrap();
        let keys = cli.keys(DEFAULT_ORG, "shop").await.unwrap();
        assert_eq!(
            keys.iter().map(|k| k.public.as_str()).collect::<Vec<_>>(),
            vec![new.public.as_str()]
        );
        server.reload_now().await.unwrap();
        let err = server.authorize(shop.id, &old).await.unwrap_err();
        assert!(matches!(err, Error::BadKey { .. }), "{err}");
    }

    #[tokio::test]
    async fn config_keys_are_changed_only_in_the_config() {
        let projects = Projects::load(Store::memory(), &config()).await.unwrap();
        let err = projects
            .update_key(
                DEFAULT_ORG,
                "ops",
                CONFIG_KEY,
                KeyUpdate {
                    enabled: Some(false),
                    ..KeyUpdate::default()
                },
            )
            .await
            .unwrap_err();
        assert!(err.to_string().contains("config file"), "{err}");
        // A key added next to it is managed in the store.
        let extra = projects
            .create_key(
                DEFAULT_ORG,
                "ops",
                Some("batch".into()),
                Some(RateLimit {
                    events: 5,
                    window: Duration::from_secs(60),
                }),
            )
            .await
            .unwrap();
        assert_eq!(extra.source, KeySource::Store);
        let keys = projects.keys(DEFAULT_ORG, "ops").await.unwrap();
        assert_eq!(keys.len(), 2);
        assert_eq!(keys[0].source, KeySource::Config);
        assert_eq!(keys[1].label.as_deref(), Some("batch"));
        assert_eq!(keys[1].rate_limit.as_ref().map(|l| l.events), Some(5));
        assert!(keys[1].created.is_some());
        let err = projects
            .create_key(
                DEFAULT_ORG,
                "ops",
                None,
                Some(RateLimit {
                    events: 0,
                    window: Duration::from_secs(1),
                }),
            )
            .await
            .unwrap_err();
        assert!(err.to_string().contains("rate limit"), "{err}");
        let err = projects
            .update_key(DEFAULT_ORG, "ops", &"f".repeat(32), KeyUpdate::default())
            .await
            .unwrap_err();
        assert!(matches!(err, Error::UnknownKey { .. }), "{err}");
    }
}
