//! Pure builders: every Kubernetes object of an `ErrorTracker`, as a function of its spec.
//!
//! Nothing here talks to the API server. The reconciler resolves the inputs that live in the
//! cluster (the DSN keys and admin token already stored in Secrets) and hands them in as
//! [`Credentials`], so a builder's output depends on its arguments alone and is
//! snapshot-tested.

mod config;
mod network;
pub mod project;
mod quota;
mod secrets;
mod workload;

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service, ServiceAccount};
use k8s_openapi::api::networking::v1::{Ingress, NetworkPolicy};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::{Resource, ResourceExt};
use sha2::{Digest, Sha256};

use crate::crd::{ErrorTracker, ProjectSpec};

pub(crate) use config::alert_secret_files;
use config::engine_config;
pub use config::{
    CONFIG_FILE, CONFIG_MOUNT, DATA_DIR, OIDC_SECRET_DIR, OIDC_SECRET_FILE, RESTORE_CONFIG_FILE,
    check_issuer, parse_duration,
};
pub use network::scrape_annotations;
pub use network::{METRICS_LABEL, admin_service_name, headless_service_name};
pub use secrets::{
    ADMIN_TOKEN_DIR, ADMIN_TOKEN_KEY, admin_token_secret_name, dsn_secret_name, generate_key,
    generate_token, is_valid_key, is_valid_token,
};
pub use workload::{CONFIG_CHECKSUM_ANNOTATION, OIDC_SECRET_VERSION_ANNOTATION};

/// Port of the ingest listener (Sentry endpoints and health checks).
pub const INGEST_PORT: i32 = 8000;
/// Port of the query and admin listener.
pub const ADMIN_PORT: i32 = 8001;
/// Value of `app.kubernetes.io/managed-by` on every object the operator owns.
pub const MANAGER: &str = "faultline-operator";

/// Errors of the builders: specs the schema cannot reject on its own.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("ErrorTracker {0} has no namespace")]
    MissingNamespace(String),
    #[error("ErrorTracker {0} has no uid (it was not read from the API server)")]
    MissingUid(String),
    #[error("FaultlineProject {0} has no uid (it was not read from the API server)")]
    MissingProjectUid(String),
    #[error(
        "projects {first:?} and {second:?} both have id {id}: set an explicit id on one of them"
    )]
    ProjectIdCollision {
        first: String,
        second: String,
        id: u64,
    },
    #[error("no DSN key was resolved for project {0:?}")]
    MissingKey(String),
    #[error("the engine config built from the spec is invalid: {0}")]
    InvalidConfig(#[source] faultline_config::Error),
    #[error("spec.{field}: {message}")]
    InvalidSpec {
        field: &'static str,
        message: String,
    },
    #[error("spec.{field}: {message}")]
    InvalidAlerts { field: String, message: String },
    #[error("spec.{field}: {message}")]
    InvalidQuotas { field: String, message: String },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything the operator keeps in the cluster for one tracker.
#[derive(Debug, Clone, PartialEq)]
pub struct Desired {
    pub service_account: ServiceAccount,
    pub config_map: ConfigMap,
    pub admin_token_secret: Secret,
    pub dsn_secrets: Vec<Secret>,
    pub service: Service,
    pub admin_service: Service,
    pub headless_service: Service,
    pub stateful_set: StatefulSet,
    pub pod_disruption_budget: PodDisruptionBudget,
    pub network_policy: Option<NetworkPolicy>,
    pub ingress: Option<Ingress>,
}

impl Desired {
    /// Every object as JSON, in the order the reconciler applies them.
    pub fn to_values(&self) -> Vec<serde_json::Value> {
        let mut out = vec![
            to_value(&self.service_account),
            to_value(&self.config_map),
            to_value(&self.admin_token_secret),
        ];
        out.extend(self.dsn_secrets.iter().map(to_value));
        out.push(to_value(&self.service));
        out.push(to_value(&self.admin_service));
        out.push(to_value(&self.headless_service));
        out.push(to_value(&self.stateful_set));
        out.push(to_value(&self.pod_disruption_budget));
        out.extend(self.network_policy.iter().map(to_value));
        out.extend(self.ingress.iter().map(to_value));
        out
    }
}

fn to_value<T: serde::Serialize>(object: &T) -> serde_json::Value {
    // k8s-openapi's Serialize writes apiVersion and kind, so each value is a complete document.
    serde_json::to_value(object).expect("kubernetes objects serialize")
}

/// A project with its resolved numeric id.
#[derive(Debug, Clone, PartialEq)]
pub struct ResolvedProject {
    pub spec: ProjectSpec,
    pub id: u64,
}

/// Secrets the operator generates once and then reads back from the cluster.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Credentials {
    /// DSN key (32 hex characters) per project name: the project's only key, or, for a
    /// project that lists `keys`, its first enabled one.
    pub dsn_keys: BTreeMap<String, String>,
    /// For projects that list `keys`: each key's value by project and key name.
    pub named_keys: BTreeMap<String, BTreeMap<String, String>>,
    /// API token of the admin/query API (64 hex characters).
    pub admin_token: String,
    /// Namespace the operator runs in: the NetworkPolicy lets it reach the admin port (it
    /// calls the engine's admin API for backups). Not a secret, but like the keys it comes
    /// from outside the spec; `None` leaves it out.
    pub operator_namespace: Option<String>,
    /// resourceVersion of the Secret named by `auth.oidc.clientSecretRef`, as the reconciler
    /// read it: put on the pod template so that a changed secret rolls the pods. `None`
    /// (nothing read, as in `render`) leaves the annotation out.
    pub oidc_secret_version: Option<String>,
}

impl Credentials {
    /// Fresh credentials for every project of `tracker`, as on a first reconcile.
    pub fn generate(tracker: &ErrorTracker) -> Self {
        let named_keys: BTreeMap<String, BTreeMap<String, String>> = tracker
            .spec
            .projects
            .iter()
            .filter(|p| !p.keys.is_empty())
            .map(|p| {
                let keys = p.keys.iter().map(|k| (k.name.clone(), generate_key()));
                (p.name.clone(), keys.collect())
            })
            .collect();
        Self {
            dsn_keys: tracker
                .spec
                .projects
                .iter()
                .map(|p| {
                    let key = primary_key(p, named_keys.get(&p.name)).unwrap_or_else(generate_key);
                    (p.name.clone(), key)
                })
                .collect(),
            named_keys,
            admin_token: generate_token(),
            operator_namespace: Some(DEFAULT_OPERATOR_NAMESPACE.to_owned()),
            oidc_secret_version: None,
        }
    }
}

/// The key applications use: the first enabled of the project's listed keys (or the first
/// listed), from `named`; `None` for a project that lists no keys.
pub fn primary_key(
    project: &ProjectSpec,
    named: Option<&BTreeMap<String, String>>,
) -> Option<String> {
    let named = named?;
    project
        .keys
        .iter()
        .find(|k| k.enabled)
        .or(project.keys.first())
        .and_then(|k| named.get(&k.name).cloned())
}

/// Namespace the chart installs the operator into by default.
pub const DEFAULT_OPERATOR_NAMESPACE: &str = "faultline-system";

/// Builds every object for `tracker` with the given credentials.
pub fn build(tracker: &ErrorTracker, credentials: &Credentials) -> Result<Desired> {
    let keys = &credentials.dsn_keys;
    let ctx = Ctx::new(tracker)?;
    let projects = resolve_projects(&tracker.spec.projects)?;
    for project in &projects {
        if !keys.contains_key(&project.spec.name) {
            return Err(Error::MissingKey(project.spec.name.clone()));
        }
        let named = credentials.named_keys.get(&project.spec.name);
        for key in &project.spec.keys {
            if !named.is_some_and(|n| n.contains_key(&key.name)) {
                return Err(Error::MissingKey(format!(
                    "{} (key {})",
                    project.spec.name, key.name
                )));
            }
        }
    }
    let engine = engine_config(&ctx, &projects, credentials)?;
    let config_text = config::minimal_toml(&engine);
    let restore_text = config::restore_config(&ctx, &engine)?.map(|c| config::minimal_toml(&c));
    Ok(Desired {
        service_account: workload::service_account(&ctx),
        config_map: config::config_map(&ctx, &config_text, restore_text.as_deref()),
        admin_token_secret: secrets::admin_token_secret(&ctx, &credentials.admin_token),
        dsn_secrets: projects
            .iter()
            .map(|p| {
                secrets::dsn_secret(
                    &ctx,
                    p,
                    &keys[&p.spec.name],
                    credentials.named_keys.get(&p.spec.name),
                )
            })
            .collect(),
        service: network::service(&ctx),
        admin_service: network::admin_service(&ctx),
        headless_service: network::headless_service(&ctx),
        stateful_set: workload::stateful_set(
            &ctx,
            &config_text,
            credentials.oidc_secret_version.as_deref(),
        ),
        pod_disruption_budget: network::pod_disruption_budget(&ctx),
        network_policy: network::network_policy(&ctx, credentials.operator_namespace.as_deref()),
        ingress: network::ingress(&ctx),
    })
}

/// Stable project id derived from the name: the first 31 bits of SHA-256 of the name, never 0.
pub fn derived_project_id(name: &str) -> u64 {
    let digest = Sha256::digest(format!("faultline-project:{name}").as_bytes());
    let id = u32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]]) & 0x7fff_ffff;
    u64::from(id.max(1))
}

/// Gives every project its id (explicit or derived) and rejects collisions.
pub fn resolve_projects(projects: &[ProjectSpec]) -> Result<Vec<ResolvedProject>> {
    let mut seen: BTreeMap<u64, &str> = BTreeMap::new();
    let mut out = Vec::with_capacity(projects.len());
    for project in projects {
        let id = project
            .id
            .unwrap_or_else(|| derived_project_id(&project.name));
        if let Some(first) = seen.insert(id, &project.name) {
            return Err(Error::ProjectIdCollision {
                first: first.to_owned(),
                second: project.name.clone(),
                id,
            });
        }
        out.push(ResolvedProject {
            spec: project.clone(),
            id,
        });
    }
    Ok(out)
}

/// Labels on every object of a tracker.
pub fn labels(tracker_name: &str, component: &str) -> BTreeMap<String, String> {
    let mut labels = selector_labels(tracker_name);
    labels.insert("app.kubernetes.io/component".into(), component.into());
    labels.insert("app.kubernetes.io/managed-by".into(), MANAGER.into());
    labels.insert("app.kubernetes.io/part-of".into(), "faultline".into());
    labels
}

/// The labels that select a tracker's objects (stable: they are in immutable selectors).
pub fn selector_labels(tracker_name: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        ("app.kubernetes.io/name".to_owned(), "faultline".to_owned()),
        (
            "app.kubernetes.io/instance".to_owned(),
            tracker_name.to_owned(),
        ),
    ])
}

/// Label selector string of everything the operator manages for one tracker.
pub fn managed_selector(tracker_name: &str) -> String {
    format!(
        "app.kubernetes.io/name=faultline,app.kubernetes.io/instance={tracker_name},app.kubernetes.io/managed-by={MANAGER}"
    )
}

/// What every builder needs to know about the tracker.
pub(crate) struct Ctx<'a> {
    pub(crate) tracker: &'a ErrorTracker,
    pub(crate) name: String,
    pub(crate) namespace: String,
    pub(crate) owner: OwnerReference,
}

impl<'a> Ctx<'a> {
    fn new(tracker: &'a ErrorTracker) -> Result<Self> {
        let name = tracker.name_any();
        let namespace = tracker
            .namespace()
            .ok_or_else(|| Error::MissingNamespace(name.clone()))?;
        let owner = tracker
            .controller_owner_ref(&())
            .ok_or_else(|| Error::MissingUid(name.clone()))?;
        Ok(Self {
            tracker,
            name,
            namespace,
            owner,
        })
    }

    pub(crate) fn meta(&self, name: String, component: &str) -> ObjectMeta {
        ObjectMeta {
            name: Some(name),
            namespace: Some(self.namespace.clone()),
            labels: Some(labels(&self.name, component)),
            owner_references: Some(vec![self.owner.clone()]),
            ..ObjectMeta::default()
        }
    }

    /// In-cluster DNS name of the Service.
    pub(crate) fn service_host(&self) -> String {
        format!("{}.{}.svc", self.name, self.namespace)
    }

    /// Base URL SDKs send to: the Ingress host when there is one, else the Service.
    pub(crate) fn ingest_url(&self) -> String {
        ingest_url(self.tracker)
    }
}

/// Base URL SDKs send to: the Ingress host when there is one, else the in-cluster Service.
pub fn ingest_url(tracker: &ErrorTracker) -> String {
    match &tracker.spec.ingress {
        Some(ingress) if ingress.tls_secret_name.is_some() => format!("https://{}", ingress.host),
        Some(ingress) => format!("http://{}", ingress.host),
        None => format!(
            "http://{}.{}.svc:{INGEST_PORT}",
            tracker.name_any(),
            tracker.namespace().unwrap_or_default()
        ),
    }
}
