//! Projects and their DSN keys.
//!
//! Projects come from two places: the config file (`[[project]]`, what the operator writes) and
//! the object store (`meta/projects/<id>.json`, what `faultline project create` writes, created
//! with a conditional PUT so two creators never get the same id). A server looks a project up in
//! memory and re-reads the store when a request names a project or key it does not know, so a
//! project created by the CLI works at once, without a restart. A running server also re-reads
//! the store every few seconds ([`Projects::refresh`]), so a key disabled by the CLI is refused
//! within [`REFRESH_INTERVAL`].
//!
//! A project's keys are managed in [`super::keys`].

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use faultline_config::{Config, KeyConfig, ProjectConfig, Quota, RateLimit};
use faultline_protocol::grouping::GroupingConfig;
use object_store::path::Path as ObjectPath;
use parking_lot::RwLock;
use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;

use super::keys::{KEYS_PREFIX, KeyRecord, find_key, new_key};
use super::{DEFAULT_ORG, Error, Principal, Result};
use crate::store::{self, Store};

/// Re-reading the store on a miss happens at most this often.
const RELOAD_INTERVAL: Duration = Duration::from_millis(250);

/// A running server re-reads projects and keys this often, so changes made by another process
/// (the CLI, another node) take effect without a restart.
pub const REFRESH_INTERVAL: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Project {
    pub id: u64,
    pub name: String,
    #[serde(default = "default_org")]
    pub org: String,
    /// Its DSN keys: strings (active, no limit of their own) or tables, as in the config.
    /// After loading, also the keys stored under `meta/keys/<id>/`.
    pub keys: Vec<KeyConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<RateLimit>,
    /// Limits on items per data category and window (`faultline_config::Quota`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub quotas: Vec<Quota>,
    /// Sentry's platform name (`python`, `javascript-react`), as registered.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<String>,
    /// Days its events are kept; unset: the config's `retention` applies.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention_days: Option<u32>,
}

impl From<&ProjectConfig> for Project {
    fn from(p: &ProjectConfig) -> Self {
        Self {
            id: p.id,
            name: p.name.clone(),
            org: DEFAULT_ORG.to_owned(),
            keys: p.keys.clone(),
            rate_limit: p.rate_limit.clone(),
            quotas: p.quotas.clone(),
            platform: None,
            retention_days: p.retention_days,
        }
    }
}

impl Project {
    /// The DSN an SDK is configured with: the first active key. `None` when every key is
    /// disabled.
    pub fn dsn(&self, public_url: &str) -> Option<String> {
        let key = self.keys.iter().find(|k| k.enabled)?;
        Some(dsn(public_url, &key.public, self.id))
    }
}

/// The DSN of `key` for project `id` at `public_url`.
pub fn dsn(public_url: &str, key: &str, id: u64) -> String {
    let url = public_url.trim_end_matches('/');
    let (scheme, host) = url.split_once("://").unwrap_or(("http", url));
    format!("{scheme}://{key}@{host}/{id}")
}

/// A project whose key was accepted, and which of its keys it was.
#[derive(Debug, Clone)]
pub struct Authorized {
    pub project: Arc<Project>,
    key: usize,
}

impl Authorized {
    /// The key the request was sent with.
    pub fn key(&self) -> &KeyConfig {
        &self.project.keys[self.key]
    }
}

impl std::ops::Deref for Authorized {
    type Target = Project;

    fn deref(&self) -> &Project {
        &self.project
    }
}

fn default_org() -> String {
    DEFAULT_ORG.to_owned()
}

/// Where the grouping rules set through the API are kept.
const GROUPING_PREFIX: &str = "meta/grouping";

fn grouping_path(id: u64) -> ObjectPath {
    ObjectPath::from(format!("{GROUPING_PREFIX}/{id}.json"))
}

/// A project's own grouping rules, in Sentry's syntax (empty: none).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProjectRules {
    #[serde(default)]
    pub grouping_enhancements: String,
    #[serde(default)]
    pub fingerprinting_rules: String,
}

pub(super) fn project_path(id: u64) -> ObjectPath {
    ObjectPath::from(format!("meta/projects/{id}.json"))
}

/// Every project this node serves.
pub struct Projects {
    pub(super) store: Store,
    from_config: Vec<Project>,
    /// The grouping rule texts of the config file, by project id.
    config_projects: Vec<(u64, ProjectRules)>,
    /// Grouping rules of the projects that declare their own in the config file, by id.
    grouping: HashMap<u64, Arc<GroupingConfig>>,
    /// Grouping rules set through the API (`meta/grouping/<id>.json`), by id.
    grouping_api: RwLock<HashMap<u64, (ProjectRules, Arc<GroupingConfig>)>>,
    by_id: RwLock<Arc<HashMap<u64, Arc<Project>>>>,
    last_reload: Mutex<Instant>,
    /// Data scrubbing settings of the config file and of the API, by project id.
    pub(super) privacy: super::privacy::PrivacyRules,
}

impl Projects {
    pub async fn load(store: Store, config: &Config) -> Result<Self> {
        let mut grouping = HashMap::new();
        for p in &config.projects {
            if p.grouping_enhancements.is_none() && p.fingerprinting_rules.is_none() {
                continue;
            }
            let rules = GroupingConfig::for_project(
                p.grouping_enhancements.as_deref().unwrap_or(""),
                p.fingerprinting_rules.as_deref().unwrap_or(""),
            )
            .map_err(|(field, source)| Error::GroupingRules {
                project: p.name.clone(),
                field,
                source,
            })?;
            grouping.insert(p.id, Arc::new(rules));
        }
        let config_projects = config
            .projects
            .iter()
            .map(|p| {
                (
                    p.id,
                    ProjectRules {
                        grouping_enhancements: p.grouping_enhancements.clone().unwrap_or_default(),
                        fingerprinting_rules: p.fingerprinting_rules.clone().unwrap_or_default(),
                    },
                )
            })
            .collect();
        let privacy = super::privacy::PrivacyRules::load(&config.projects)?;
        let projects = Self {
            privacy,
            store,
            grouping,
            grouping_api: RwLock::new(HashMap::new()),
            config_projects,
            from_config: config.projects.iter().map(Project::from).collect(),
            by_id: RwLock::new(Arc::new(HashMap::new())),
            last_reload: Mutex::new(Instant::now()),
        };
        projects.reload().await?;
        Ok(projects)
    }

    async fn read_stored(store: &Store) -> Result<Vec<Project>> {
        let mut out = Vec::new();
        for meta in store.list(&ObjectPath::from("meta/projects")).await? {
            out.push(store.get_json(&meta.location).await?);
        }
        Ok(out)
    }

    async fn read_keys(store: &Store) -> Result<Vec<KeyRecord>> {
        let mut out = Vec::new();
        for meta in store.list(&ObjectPath::from(KEYS_PREFIX)).await? {
            out.push(store.get_json(&meta.location).await?);
        }
        // Oldest first, so keys are tried and listed in the order they were made.
        out.sort_by(|a: &KeyRecord, b| (a.created, &a.public).cmp(&(b.created, &b.public)));
        Ok(out)
    }

    async fn reload(&self) -> Result<()> {
        let mut map: HashMap<u64, Project> = HashMap::new();
        for project in Self::read_stored(&self.store).await? {
            map.insert(project.id, project);
        }
        // The config wins over the store for the same id.
        for project in &self.from_config {
            map.insert(project.id, project.clone());
        }
        for record in Self::read_keys(&self.store).await? {
            let Some(project) = map.get_mut(&record.project_id) else {
                continue;
            };
            if self.config_has_key(record.project_id, &record.public) {
                continue;
            }
            match project.keys.iter_mut().find(|k| k.public == record.public) {
                Some(key) => *key = record.config(),
                None => project.keys.push(record.config()),
            }
        }
        let map = map.into_iter().map(|(id, p)| (id, Arc::new(p))).collect();
        *self.by_id.write() = Arc::new(map);
        self.read_grouping().await?;
        self.privacy.read(&self.store).await?;
        Ok(())
    }

    /// Re-reads the store now.
    pub async fn reload_now(&self) -> Result<()> {
        let mut last = self.last_reload.lock().await;
        self.reload().await?;
        *last = Instant::now();
        Ok(())
    }

    /// Re-reads the store every [`REFRESH_INTERVAL`] until `shutdown`; failures are logged and
    /// the last known projects stay in use.
    pub async fn refresh(self: Arc<Self>, shutdown: tokio_util::sync::CancellationToken) {
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(REFRESH_INTERVAL) => {}
            }
            if let Err(err) = self.reload_now().await {
                tracing::warn!(cause = %err, "cannot re-read projects and keys");
            }
        }
    }

    /// True if the config file declares project `id`.
    pub(super) fn config_has_project(&self, id: u64) -> bool {
        self.from_config.iter().any(|p| p.id == id)
    }

    /// True if the config file declares `public` as a key of project `id`.
    pub(super) fn config_has_key(&self, id: u64, public: &str) -> bool {
        self.from_config
            .iter()
            .any(|p| p.id == id && p.keys.iter().any(|k| k.public == public))
    }

    /// The DSN of project `id` at `public_url`, from the store's current state.
    pub async fn project_dsn(&self, id: u64, public_url: &str) -> Result<Option<String>> {
        self.reload_now().await?;
        let map = Arc::clone(&self.by_id.read());
        Ok(map.get(&id).and_then(|p| p.dsn(public_url)))
    }

    /// Re-reads the store unless that happened very recently.
    async fn reload_if_stale(&self) -> Result<()> {
        let mut last = self.last_reload.lock().await;
        if last.elapsed() >= RELOAD_INTERVAL {
            self.reload().await?;
            *last = Instant::now();
        }
        Ok(())
    }

    /// Re-reads the store after a lookup missed: at once if the last read is older than
    /// [`RELOAD_INTERVAL`], else once that much time has passed, so a project created just
    /// after the last read is still found (its SDK's first events are not refused). Misses that
    /// wait together share one read.
    async fn reload_on_miss(&self) -> Result<()> {
        let arrived = Instant::now();
        let mut last = self.last_reload.lock().await;
        if *last >= arrived {
            return Ok(());
        }
        let elapsed = last.elapsed();
        if elapsed < RELOAD_INTERVAL {
            tokio::time::sleep(RELOAD_INTERVAL - elapsed).await;
        }
        self.reload().await?;
        *last = Instant::now();
        Ok(())
    }

    fn lookup(&self, id: u64, key: &str) -> Option<std::result::Result<Authorized, ()>> {
        let map = Arc::clone(&self.by_id.read());
        let project = map.get(&id)?;
        Some(match find_key(&project.keys, key) {
            Some(index) => Ok(Authorized {
                project: Arc::clone(project),
                key: index,
            }),
            None => Err(()),
        })
    }

    /// The project `id` if `key` is one of its active DSN keys. Keys are compared in constant
    /// time.
    pub async fn authorize(&self, id: u64, key: &str) -> Result<Authorized> {
        let found = match self.lookup(id, key) {
            Some(Ok(found)) => found,
            _ => {
                self.reload_on_miss().await?;
                match self.lookup(id, key) {
                    Some(Ok(found)) => found,
                    Some(Err(())) => return Err(Error::BadKey { project_id: id }),
                    None => return Err(Error::UnknownProject { project_id: id }),
                }
            }
        };
        if !found.key().enabled {
            return Err(Error::DisabledKey {
                project_id: id,
                label: found.key().label.clone(),
            });
        }
        Ok(found)
    }

    /// The grouping rules of project `id`, when it has its own (else the built-in ones apply):
    /// those of the config file, else those set through the API.
    pub fn grouping(&self, id: u64) -> Option<Arc<GroupingConfig>> {
        if let Some(found) = self.grouping.get(&id) {
            return Some(Arc::clone(found));
        }
        self.grouping_api
            .read()
            .get(&id)
            .map(|(_, config)| Arc::clone(config))
    }

    /// The rule texts of project `id` and whether they come from the config file.
    pub fn grouping_rules(&self, id: u64) -> (ProjectRules, bool) {
        if let Some(p) = self.config_rules(id) {
            return (p, true);
        }
        let api = self.grouping_api.read();
        (
            api.get(&id).map(|(r, _)| r.clone()).unwrap_or_default(),
            false,
        )
    }

    fn config_rules(&self, id: u64) -> Option<ProjectRules> {
        self.grouping.contains_key(&id).then(|| {
            let p = self.config_projects.iter().find(|p| p.0 == id);
            p.map(|(_, rules)| rules.clone()).unwrap_or_default()
        })
    }

    /// Sets the grouping rules of project `name` of `org` (applied to new events from now on).
    /// Refused for rules declared in the config file.
    pub async fn set_grouping_rules(
        &self,
        org: &str,
        name: &str,
        rules: ProjectRules,
    ) -> Result<ProjectRules> {
        let id = self.ids_by_name(org, &[name.to_owned()]).await?[0];
        let config = self.check_grouping_rules(id, name, &rules)?;
        let body = serde_json::to_vec(&rules).unwrap_or_default();
        self.store
            .put_durable(&grouping_path(id), Bytes::from(body))
            .await?;
        self.grouping_api
            .write()
            .insert(id, (rules.clone(), Arc::new(config)));
        Ok(rules)
    }

    /// Whether `rules` may become the grouping rules of project `id` named `name` (they parse,
    /// and the project's rules are not the config file's), without changing anything: what
    /// [`Self::set_grouping_rules`] would refuse. `id` is `None` for a project yet to be created.
    pub fn check_grouping_rules(
        &self,
        id: impl Into<Option<u64>>,
        name: &str,
        rules: &ProjectRules,
    ) -> Result<GroupingConfig> {
        if id.into().is_some_and(|id| self.grouping.contains_key(&id)) {
            return Err(Error::ConfigGrouping {
                project: name.to_owned(),
            });
        }
        GroupingConfig::for_project(&rules.grouping_enhancements, &rules.fingerprinting_rules)
            .map_err(|(field, source)| Error::GroupingRules {
                project: name.to_owned(),
                field: match field {
                    "grouping_enhancements" => "groupingEnhancements",
                    _ => "fingerprintingRules",
                },
                source,
            })
    }

    async fn read_grouping(&self) -> Result<()> {
        let mut map = HashMap::new();
        for meta in self.store.list(&ObjectPath::from(GROUPING_PREFIX)).await? {
            let id = meta
                .location
                .filename()
                .and_then(|f| f.strip_suffix(".json"))
                .and_then(|id| id.parse::<u64>().ok());
            let Some(id) = id else {
                continue;
            };
            let rules: ProjectRules = self.store.get_json(&meta.location).await?;
            match GroupingConfig::for_project(
                &rules.grouping_enhancements,
                &rules.fingerprinting_rules,
            ) {
                Ok(config) => {
                    map.insert(id, (rules, Arc::new(config)));
                }
                Err((field, err)) => {
                    tracing::warn!(project_id = id, field, cause = %err, "stored grouping rules do not parse; the built-in rules apply");
                }
            }
        }
        *self.grouping_api.write() = map;
        Ok(())
    }

    /// Every project, by id.
    pub async fn list(&self) -> Result<Vec<Arc<Project>>> {
        self.reload().await?;
        let map = Arc::clone(&self.by_id.read());
        let mut list: Vec<_> = map.values().cloned().collect();
        list.sort_by_key(|p| p.id);
        Ok(list)
    }

    /// Every project this node knows now, by id, without reading the store (the background
    /// refresh keeps it within [`REFRESH_INTERVAL`]): for reports that must answer while the
    /// object store does not.
    pub fn known(&self) -> Vec<Arc<Project>> {
        let map = Arc::clone(&self.by_id.read());
        let mut list: Vec<_> = map.values().cloned().collect();
        list.sort_by_key(|p| p.id);
        list
    }

    /// The projects a token may read, by id. Re-reads the store (at most every 250 ms) so a
    /// project created meanwhile is included.
    pub async fn readable(&self, principal: &Principal) -> Result<Vec<Arc<Project>>> {
        self.reload_if_stale().await?;
        let map = Arc::clone(&self.by_id.read());
        let mut list: Vec<_> = map
            .values()
            .filter(|p| principal.covers(&p.org, p.id))
            .cloned()
            .collect();
        list.sort_by_key(|p| p.id);
        Ok(list)
    }

    /// Resolves project names of `org` to ids.
    pub async fn ids_by_name(&self, org: &str, names: &[String]) -> Result<Vec<u64>> {
        let all = self.list().await?;
        names
            .iter()
            .map(|name| {
                all.iter()
                    .find(|p| p.org == org && &p.name == name)
                    .map(|p| p.id)
                    .ok_or_else(|| Error::UnknownProjectName {
                        org: org.to_owned(),
                        name: name.clone(),
                    })
            })
            .collect()
    }

    /// Creates a project of organization `org` with a fresh DSN key in the store.
    pub async fn create(&self, name: &str, org: &str) -> Result<Project> {
        for name in [name, org] {
            if !faultline_config::is_slug(name) {
                return Err(Error::InvalidName {
                    name: name.to_owned(),
                });
            }
        }
        loop {
            let existing = self.list().await?;
            if existing.iter().any(|p| p.name == name) {
                return Err(Error::NameTaken {
                    name: name.to_owned(),
                });
            }
            // ids of erased projects are never given again
            let erased = self.erasures().await?;
            let id = existing
                .iter()
                .map(|p| p.id)
                .chain(erased.iter().map(|e| e.project_id))
                .max()
                .unwrap_or(0)
                + 1;
            let project = Project {
                id,
                name: name.to_owned(),
                org: org.to_owned(),
                keys: vec![KeyConfig::new(new_key())],
                rate_limit: None,
                quotas: Vec::new(),
                platform: None,
                retention_days: None,
            };
            let data = serde_json::to_vec_pretty(&project).expect("project serializes");
            match self
                .store
                .create_durable(&project_path(id), Bytes::from(data))
                .await
            {
                Ok(()) => {
                    let mut map = HashMap::clone(&self.by_id.read());
                    map.insert(id, Arc::new(project.clone()));
                    *self.by_id.write() = Arc::new(map);
                    return Ok(project);
                }
                // Another creator took this id first: pick the next one.
                Err(store::Error::AlreadyExists { .. }) => continue,
                Err(err) => return Err(err.into()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn created_project_is_found_by_a_running_server() {
        let store = Store::memory();
        let config = Config::default();
        let server = Projects::load(store.clone(), &config).await.unwrap();
        let cli = Projects::load(store, &config).await.unwrap();
        let shop = cli.create("shop", DEFAULT_ORG).await.unwrap();
        assert_eq!(shop.id, 1);
        assert_eq!(shop.keys[0].public.len(), 32);
        tokio::time::sleep(RELOAD_INTERVAL).await;
        let found = server.authorize(1, &shop.keys[0].public).await.unwrap();
        assert_eq!(found.name, "shop");
        let err = server.authorize(1, "0000").await.unwrap_err();
        assert!(matches!(err, Error::BadKey { project_id: 1 }), "{err}");
        let err = server.authorize(9, &shop.keys[0].public).await.unwrap_err();
        assert!(
            matches!(err, Error::UnknownProject { project_id: 9 }),
            "{err}"
        );
        let err = cli.create("shop", DEFAULT_ORG).await.unwrap_err();
        assert!(err.to_string().contains("already exists"), "{err}");
        assert_eq!(cli.create("web", DEFAULT_ORG).await.unwrap().id, 2);
    }

    #[tokio::test]
    async fn a_project_created_right_after_a_reload_is_found_on_its_first_event() {
        let store = Store::memory();
        let config = Config::default();
        let server = Projects::load(store.clone(), &config).await.unwrap();
        let cli = Projects::load(store, &config).await.unwrap();
        let shop = cli.create("shop", DEFAULT_ORG).await.unwrap();
        // No pause: the server read the store moments ago.
        let found = server
            .authorize(shop.id, &shop.keys[0].public)
            .await
            .unwrap();
        assert_eq!(found.name, "shop");
    }

    #[test]
    fn dsn_has_key_host_and_id() {
        let project = Project {
            id: 3,
            name: "shop".into(),
            org: DEFAULT_ORG.into(),
            keys: vec![
                KeyConfig {
                    enabled: false,
                    ..KeyConfig::new("cd".repeat(16))
                },
                KeyConfig::new("ab".repeat(16)),
            ],
            rate_limit: None,
            quotas: Vec::new(),
            platform: None,
            retention_days: None,
        };
        assert_eq!(
            project.dsn("https://errors.example.com/"),
            Some(format!("https://{}@errors.example.com/3", "ab".repeat(16)))
        );
    }
}
