//! Pure builders of a `FaultlineProject`: the checks its spec must pass beyond the schema,
//! which keys it has (kept from its DSN Secret, generated once), the declaration the engine's
//! admin API receives, and the DSN Secret in the project's namespace.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::{Resource, ResourceExt};

use super::quota::engine_quotas;
use super::{INGEST_PORT, MANAGER, Result, generate_key, ingest_url, is_valid_key};
use crate::crd::{ErrorTracker, FaultlineProject, FaultlineProjectSpec, RateLimitSpec};
use crate::engine_api::{DeclaredKey, DeclaredQuota, ProjectDeclaration, RateLimit};

/// Name of the key of a project that lists none.
pub const DEFAULT_KEY: &str = "default";

/// Name of the DSN Secret of a `FaultlineProject`: `<resource>-dsn`, in its namespace.
pub fn project_secret_name(resource: &str) -> String {
    format!("{resource}-dsn")
}

/// Refuses what the schema cannot (for a spec that did not pass an API server) and the engine
/// would, naming the field: the quotas, by the engine's own check.
pub fn check(spec: &FaultlineProjectSpec) -> Result<()> {
    engine_quotas(&spec.quotas, "")?;
    Ok(())
}

/// One DSN key of a project, its value resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct ResolvedKey {
    pub name: String,
    pub public: String,
    pub enabled: bool,
    pub rate_limit: Option<RateLimitSpec>,
}

/// The project's keys: each listed key (or one `default` key) with the value stored in the
/// DSN Secret `existing` as `key-<name>`, else a fresh one.
pub fn resolve_keys(spec: &FaultlineProjectSpec, existing: Option<&Secret>) -> Vec<ResolvedKey> {
    let stored = |name: &str| {
        existing
            .and_then(|s| s.data.as_ref()?.get(&format!("key-{name}")))
            .and_then(|value| String::from_utf8(value.0.clone()).ok())
            .filter(|key| is_valid_key(key))
    };
    if spec.keys.is_empty() {
        return vec![ResolvedKey {
            name: DEFAULT_KEY.to_owned(),
            public: stored(DEFAULT_KEY).unwrap_or_else(generate_key),
            enabled: true,
            rate_limit: None,
        }];
    }
    spec.keys
        .iter()
        .map(|k| ResolvedKey {
            name: k.name.clone(),
            public: stored(&k.name).unwrap_or_else(generate_key),
            enabled: k.enabled,
            rate_limit: k.rate_limit.clone(),
        })
        .collect()
}

fn limit(spec: &RateLimitSpec) -> RateLimit {
    RateLimit {
        count: spec.events,
        window: spec.window_seconds,
    }
}

/// What the engine's `PUT /api/0/organizations/{org}/projects/{project}/` receives (of a spec
/// that passed [`check`]). The quotas are always declared, so quotas dropped from the spec
/// are dropped in the engine.
pub fn declaration(spec: &FaultlineProjectSpec, keys: &[ResolvedKey]) -> ProjectDeclaration {
    let privacy = spec.privacy.as_ref();
    ProjectDeclaration {
        platform: spec.platform.clone(),
        retention_days: spec.retention_days,
        rate_limit: spec.rate_limit.as_ref().map(limit),
        quotas: spec
            .quotas
            .iter()
            .map(|q| DeclaredQuota {
                categories: q.categories.clone(),
                limit: q.limit,
                window: q.window_seconds,
            })
            .collect(),
        keys: keys
            .iter()
            .map(|k| DeclaredKey {
                name: k.name.clone(),
                public: k.public.clone(),
                is_active: k.enabled,
                rate_limit: k.rate_limit.as_ref().map(limit),
            })
            .collect(),
        grouping_enhancements: spec.grouping_enhancements.clone(),
        fingerprinting_rules: spec.fingerprinting_rules.clone(),
        data_scrubber: privacy.map(|p| p.scrub_data),
        data_scrubber_defaults: privacy.map(|p| p.scrub_defaults),
        sensitive_fields: privacy.map(|p| p.sensitive_fields.clone()),
        safe_fields: privacy.map(|p| p.safe_fields.clone()),
        scrub_ip_addresses: privacy.map(|p| p.scrub_ip_addresses),
        relay_pii_config: privacy.map(|p| p.pii_config.clone().unwrap_or_default()),
    }
}

/// The DSN Secret of `project` (registered as `id` in `tracker`), in the project's namespace
/// and owned by it: `dsn` (in-cluster URL) and `publicDsn` (through the tracker's Ingress when
/// there is one) of the first enabled key, `key`, `projectId`, `key-<name>` of every key and
/// `dsn-<name>` of every enabled key.
pub fn dsn_secret(
    project: &FaultlineProject,
    tracker: &ErrorTracker,
    id: u64,
    keys: &[ResolvedKey],
) -> Result<Secret> {
    let name = project.name_any();
    let owner = project
        .controller_owner_ref(&())
        .ok_or_else(|| super::Error::MissingProjectUid(name.clone()))?;
    let host = format!(
        "{}.{}.svc:{INGEST_PORT}",
        tracker.name_any(),
        tracker.namespace().unwrap_or_default()
    );
    let dsn_of = |key: &str| format!("http://{key}@{host}/{id}");
    let public = ingest_url(tracker);
    let (scheme, public_host) = public
        .split_once("://")
        .unwrap_or(("http", public.as_str()));
    let primary = keys.iter().find(|k| k.enabled).or(keys.first());
    let mut data: Vec<(String, String)> = vec![("projectId".into(), id.to_string())];
    if let Some(key) = primary {
        data.push(("dsn".into(), dsn_of(&key.public)));
        data.push((
            "publicDsn".into(),
            format!("{scheme}://{}@{public_host}/{id}", key.public),
        ));
        data.push(("key".into(), key.public.clone()));
    }
    for key in keys {
        data.push((format!("key-{}", key.name), key.public.clone()));
        if key.enabled {
            data.push((format!("dsn-{}", key.name), dsn_of(&key.public)));
        }
    }
    let labels = BTreeMap::from([
        ("app.kubernetes.io/name".to_owned(), "faultline".to_owned()),
        ("app.kubernetes.io/component".to_owned(), "dsn".to_owned()),
        (
            "app.kubernetes.io/managed-by".to_owned(),
            MANAGER.to_owned(),
        ),
        (
            "app.kubernetes.io/part-of".to_owned(),
            "faultline".to_owned(),
        ),
        ("faultline.dev/project".to_owned(), name.clone()),
    ]);
    Ok(Secret {
        metadata: ObjectMeta {
            name: Some(project_secret_name(&name)),
            namespace: project.namespace(),
            labels: Some(labels),
            owner_references: Some(vec![owner]),
            ..ObjectMeta::default()
        },
        type_: Some("Opaque".into()),
        data: Some(
            data.into_iter()
                .map(|(k, v)| (k, ByteString(v.into_bytes())))
                .collect(),
        ),
        ..Secret::default()
    })
}
