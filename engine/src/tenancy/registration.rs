//! Projects registered by a declaration (what the Kubernetes operator sends for each
//! `FaultlineProject`): [`Projects::register`] creates the project of an organization or
//! brings it to the declared state, [`Projects::unregister`] removes its DSN keys.
//!
//! Both are idempotent: the same declaration leaves the same stored state and gives the same
//! answer, so a caller may repeat it as often as it likes (the operator does, on every
//! reconcile). A registered project is a stored project (`meta/projects/<id>.json`), so other
//! nodes see it within [`super::projects::REFRESH_INTERVAL`], and at once when an SDK sends
//! with one of its keys. Projects of the config file are changed there and refused here.
//!
//! Declared keys replace the project's keys: the project's object holds exactly them, and the
//! key objects of that project (`meta/keys/<id>/`, from the key API) are removed, so the
//! declaration is the whole truth about the keys.

use bytes::Bytes;
use faultline_config::{KeyConfig, Quota, RateLimit};
use object_store::path::Path as ObjectPath;

use super::keys::{KEYS_PREFIX, new_key};
use super::projects::{Project, Projects, project_path};
use super::{Error, Result};
use crate::store;

/// Most keys one declaration may hold.
pub(crate) const MAX_KEYS: usize = 100;
/// Longest retention a declaration may ask for, in days.
pub(crate) const MAX_RETENTION_DAYS: u32 = 3650;

/// One DSN key of a declaration.
#[derive(Debug, Clone, PartialEq)]
pub struct DeclaredKey {
    /// Shown in key lists (Sentry's key name).
    pub name: Option<String>,
    /// The public key: 32 hexadecimal characters, chosen by the caller.
    pub public: String,
    pub enabled: bool,
    pub rate_limit: Option<RateLimit>,
}

/// The declared state of one project; `None` leaves a setting as it is (a new project: unset,
/// with one fresh key).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Registration {
    /// The numeric id (the DSN's last path segment). Unset: the project keeps its id, a new
    /// one gets the next free id.
    pub id: Option<u64>,
    pub platform: Option<String>,
    pub retention_days: Option<u32>,
    pub rate_limit: Option<RateLimit>,
    /// Replaces the project's quotas when set (empty: none).
    pub quotas: Option<Vec<Quota>>,
    pub keys: Option<Vec<DeclaredKey>>,
}

/// What [`Projects::register`] did.
#[derive(Debug, Clone, PartialEq)]
pub struct Registered {
    /// The project as stored.
    pub project: Project,
    pub created: bool,
    /// The declaration's fields whose stored value changed (`platform`, `retentionDays`,
    /// `rateLimit`, `quotas`, `keys`), in that order; for a created project, those it set. Empty when
    /// the declaration changed nothing.
    pub changed: Vec<&'static str>,
}

fn invalid(field: &str, reason: impl Into<String>) -> Error {
    Error::InvalidRegistration {
        field: field.to_owned(),
        reason: reason.into(),
    }
}

impl Registration {
    /// Refuses what cannot be stored, naming the field.
    fn check(&self) -> Result<()> {
        if self.id == Some(0) {
            return Err(invalid("id", "must be at least 1"));
        }
        if let Some(platform) = &self.platform {
            let ok = !platform.is_empty()
                && platform.len() <= 64
                && platform
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "-_.".contains(c));
            if !ok {
                return Err(invalid(
                    "platform",
                    "use 1-64 lowercase letters, digits, '-', '_' or '.'",
                ));
            }
        }
        if let Some(days) = self.retention_days
            && !(1..=MAX_RETENTION_DAYS).contains(&days)
        {
            return Err(invalid(
                "retentionDays",
                format!("must be 1 to {MAX_RETENTION_DAYS}"),
            ));
        }
        if self.rate_limit.as_ref().is_some_and(|l| !l.is_valid()) {
            return Err(invalid(
                "rateLimit",
                "count and window (seconds) must be greater than zero",
            ));
        }
        if let Some((field, problem)) = self
            .quotas
            .as_deref()
            .and_then(faultline_config::quotas_problem)
        {
            return Err(invalid(&field, problem));
        }
        let Some(keys) = &self.keys else {
            return Ok(());
        };
        if keys.is_empty() || keys.len() > MAX_KEYS {
            return Err(invalid("keys", format!("declare 1 to {MAX_KEYS} keys")));
        }
        for (i, key) in keys.iter().enumerate() {
            if !faultline_config::is_dsn_key(&key.public) {
                return Err(invalid(
                    &format!("keys[{i}].public"),
                    "must be 32 hexadecimal characters",
                ));
            }
            if keys[..i]
                .iter()
                .any(|k| k.public.eq_ignore_ascii_case(&key.public))
            {
                return Err(invalid(&format!("keys[{i}].public"), "declared twice"));
            }
            if key.rate_limit.as_ref().is_some_and(|l| !l.is_valid()) {
                return Err(invalid(
                    &format!("keys[{i}].rateLimit"),
                    "count and window (seconds) must be greater than zero",
                ));
            }
            if key
                .name
                .as_ref()
                .is_some_and(|n| n.is_empty() || n.chars().count() > 200)
            {
                return Err(invalid(
                    &format!("keys[{i}].name"),
                    "must be 1-200 characters",
                ));
            }
        }
        Ok(())
    }
}

impl Projects {
    /// Creates project `name` of `org`, or brings it to `declared`; returns it as stored,
    /// whether it was created and which fields changed.
    pub async fn register(
        &self,
        org: &str,
        name: &str,
        declared: Registration,
    ) -> Result<Registered> {
        for slug in [name, org] {
            if !faultline_config::is_slug(slug) {
                return Err(Error::InvalidName {
                    name: slug.to_owned(),
                });
            }
        }
        declared.check()?;
        let keys = declared.keys.as_ref().map(|keys| {
            keys.iter()
                .map(|k| KeyConfig {
                    public: k.public.to_ascii_lowercase(),
                    label: k.name.clone(),
                    enabled: k.enabled,
                    rate_limit: k.rate_limit.clone(),
                })
                .collect::<Vec<_>>()
        });
        loop {
            let all = self.list().await?;
            let existing = all.iter().find(|p| p.org == org && p.name == name);
            if let Some(current) = existing {
                if self.config_has_project(current.id) {
                    return Err(Error::ConfigProject {
                        name: name.to_owned(),
                    });
                }
                if let Some(wanted) = declared.id.filter(|id| *id != current.id) {
                    return Err(Error::IdChange {
                        org: org.to_owned(),
                        name: name.to_owned(),
                        current: current.id,
                        wanted,
                    });
                }
                let stored: Project = self.store.get_json(&project_path(current.id)).await?;
                let updated = Project {
                    keys: keys.clone().unwrap_or_else(|| stored.keys.clone()),
                    rate_limit: declared.rate_limit.clone().or(stored.rate_limit.clone()),
                    quotas: declared
                        .quotas
                        .clone()
                        .unwrap_or_else(|| stored.quotas.clone()),
                    platform: declared.platform.clone().or(stored.platform.clone()),
                    retention_days: declared.retention_days.or(stored.retention_days),
                    ..stored.clone()
                };
                let removed_records = if keys.is_some() {
                    self.remove_key_records(current.id).await?
                } else {
                    0
                };
                let mut changed = changed_fields(&stored, &updated);
                if removed_records > 0 && !changed.contains(&"keys") {
                    changed.push("keys");
                }
                if updated != stored {
                    let data = serde_json::to_vec_pretty(&updated).expect("project serializes");
                    self.store
                        .put_durable(&project_path(current.id), Bytes::from(data))
                        .await?;
                    tracing::info!(org, project = name, id = current.id, "project updated");
                }
                self.reload_now().await?;
                return Ok(Registered {
                    project: updated,
                    created: false,
                    changed,
                });
            }
            // ids of erased projects are never given again
            let erased = self.erasures().await?;
            let id = match declared.id {
                Some(id) => {
                    if let Some(holder) = all.iter().find(|p| p.id == id) {
                        return Err(Error::IdTaken {
                            id,
                            holder: holder.name.clone(),
                            org: holder.org.clone(),
                        });
                    }
                    if let Some(holder) = erased.iter().find(|e| e.project_id == id) {
                        return Err(Error::IdTaken {
                            id,
                            holder: format!("{} (erased)", holder.name),
                            org: holder.org.clone(),
                        });
                    }
                    id
                }
                None => {
                    all.iter()
                        .map(|p| p.id)
                        .chain(erased.iter().map(|e| e.project_id))
                        .max()
                        .unwrap_or(0)
                        + 1
                }
            };
            let project = Project {
                id,
                name: name.to_owned(),
                org: org.to_owned(),
                keys: keys
                    .clone()
                    .unwrap_or_else(|| vec![KeyConfig::new(new_key())]),
                rate_limit: declared.rate_limit.clone(),
                quotas: declared.quotas.clone().unwrap_or_default(),
                platform: declared.platform.clone(),
                retention_days: declared.retention_days,
            };
            let data = serde_json::to_vec_pretty(&project).expect("project serializes");
            match self
                .store
                .create_durable(&project_path(id), Bytes::from(data))
                .await
            {
                Ok(()) => {
                    // keys left behind by an earlier project of this id would override these
                    self.remove_key_records(id).await?;
                    self.reload_now().await?;
                    tracing::info!(org, project = name, id, "project registered");
                    let mut changed: Vec<&'static str> = Vec::new();
                    for (field, set) in [
                        ("platform", declared.platform.is_some()),
                        ("retentionDays", declared.retention_days.is_some()),
                        ("rateLimit", declared.rate_limit.is_some()),
                        (
                            "quotas",
                            declared.quotas.as_ref().is_some_and(|q| !q.is_empty()),
                        ),
                        ("keys", true),
                    ] {
                        if set {
                            changed.push(field);
                        }
                    }
                    return Ok(Registered {
                        project,
                        created: true,
                        changed,
                    });
                }
                // Another creator took this id first: look again (an explicit id is then
                // refused as taken, or found as this very project).
                Err(store::Error::AlreadyExists { .. }) => continue,
                Err(err) => return Err(err.into()),
            }
        }
    }

    /// Removes every DSN key of project `name` of `org`: SDKs sending with them get 401 from
    /// now on. The project itself stays (its id, settings and events, which follow its
    /// retention), so registering it again gives it the same id back. Returns the project as
    /// stored, and whether it had keys to remove.
    pub async fn unregister(&self, org: &str, name: &str) -> Result<(Project, bool)> {
        let current = self
            .list()
            .await?
            .into_iter()
            .find(|p| p.org == org && p.name == name)
            .ok_or_else(|| Error::UnknownProjectName {
                org: org.to_owned(),
                name: name.to_owned(),
            })?;
        if self.config_has_project(current.id) {
            return Err(Error::ConfigProject {
                name: name.to_owned(),
            });
        }
        let mut stored: Project = self.store.get_json(&project_path(current.id)).await?;
        let had_keys = !stored.keys.is_empty();
        if had_keys {
            stored.keys.clear();
            let data = serde_json::to_vec_pretty(&stored).expect("project serializes");
            self.store
                .put_durable(&project_path(current.id), Bytes::from(data))
                .await?;
        }
        let removed_records = self.remove_key_records(current.id).await?;
        self.reload_now().await?;
        tracing::info!(org, project = name, id = current.id, "project keys removed");
        Ok((stored, had_keys || removed_records > 0))
    }

    /// Deletes the key objects of project `id` (`meta/keys/<id>/`); returns how many there
    /// were.
    async fn remove_key_records(&self, id: u64) -> Result<usize> {
        let prefix = ObjectPath::from(format!("{KEYS_PREFIX}/{id}"));
        let found = self.store.list(&prefix).await?;
        for meta in &found {
            self.store.delete(&meta.location).await?;
        }
        Ok(found.len())
    }
}

/// The declaration's fields whose value differs between `before` and `after`.
fn changed_fields(before: &Project, after: &Project) -> Vec<&'static str> {
    let mut changed = Vec::new();
    if before.platform != after.platform {
        changed.push("platform");
    }
    if before.retention_days != after.retention_days {
        changed.push("retentionDays");
    }
    if before.rate_limit != after.rate_limit {
        changed.push("rateLimit");
    }
    if before.quotas != after.quotas {
        changed.push("quotas");
    }
    if before.keys != after.keys {
        changed.push("keys");
    }
    changed
}

#[cfg(test)]
mod tests {
    use faultline_config::Config;

    use super::*;
    use crate::store::Store;

    fn key(public: &str) -> DeclaredKey {
        DeclaredKey {
            name: Some("default".into()),
            public: public.into(),
            enabled: true,
            rate_limit: None,
        }
    }

    #[tokio::test]
    async fn a_registered_project_is_found_by_another_node_and_its_keys_can_be_removed() {
        let store = Store::memory();
        let config = Config::default();
        let operator_side = Projects::load(store.clone(), &config).await.unwrap();
        let other_node = Projects::load(store, &config).await.unwrap();
        let declared = Registration {
            keys: Some(vec![key(&"ab".repeat(16))]),
            retention_days: Some(7),
            ..Registration::default()
        };
        let registered = operator_side
            .register("team-a", "api", declared.clone())
            .await
            .unwrap();
        assert!(registered.created);
        assert_eq!(registered.changed, ["retentionDays", "keys"]);
        let first = registered.project;
        let again = operator_side
            .register("team-a", "api", declared)
            .await
            .unwrap();
        assert!(!again.created);
        assert!(again.changed.is_empty(), "{:?}", again.changed);
        assert_eq!(
            first, again.project,
            "the same declaration, the same project"
        );
        let found = other_node
            .authorize(first.id, &"ab".repeat(16))
            .await
            .unwrap();
        assert_eq!(
            (found.org.as_str(), found.retention_days),
            ("team-a", Some(7))
        );

        // the same name in another organization is another project
        let other = operator_side
            .register("team-b", "api", Registration::default())
            .await
            .unwrap()
            .project;
        assert_ne!(other.id, first.id);

        let (_, removed) = operator_side.unregister("team-a", "api").await.unwrap();
        assert!(removed);
        let (_, removed) = operator_side.unregister("team-a", "api").await.unwrap();
        assert!(!removed, "nothing left to remove");
        // what the other node's periodic refresh does
        other_node.reload_now().await.unwrap();
        let err = other_node
            .authorize(first.id, &"ab".repeat(16))
            .await
            .unwrap_err();
        assert!(matches!(err, Error::BadKey { .. }), "{err}");
    }

    #[tokio::test]
    async fn bad_declarations_name_the_field() {
        let projects = Projects::load(Store::memory(), &Config::default())
            .await
            .unwrap();
        let cases = [
            (
                Registration {
                    keys: Some(vec![key("nothex")]),
                    ..Registration::default()
                },
                "keys[0].public",
            ),
            (
                Registration {
                    retention_days: Some(MAX_RETENTION_DAYS + 1),
                    ..Registration::default()
                },
                "retentionDays",
            ),
            (
                Registration {
                    keys: Some(vec![key(&"ab".repeat(16)), key(&"AB".repeat(16))]),
                    ..Registration::default()
                },
                "keys[1].public",
            ),
            (
                Registration {
                    keys: Some(Vec::new()),
                    ..Registration::default()
                },
                "keys",
            ),
            (
                Registration {
                    quotas: Some(vec![Quota {
                        categories: vec!["logs".into()],
                        limit: 5,
                        window: std::time::Duration::from_secs(60),
                    }]),
                    ..Registration::default()
                },
                "quotas[0].categories[0]",
            ),
        ];
        for (declared, field) in cases {
            let err = projects.register("org", "p", declared).await.unwrap_err();
            assert!(
                err.to_string().starts_with(&format!("invalid {field}:")),
                "{err}"
            );
        }
    }
}
