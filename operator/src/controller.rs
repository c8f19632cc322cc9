//! The reconciler: one place that talks to the API server on behalf of an `ErrorTracker`.
//!
//! Per reconcile, inside the `finalizer` helper:
//! 1. list the tracker's Secrets and keep the DSN keys and the admin token they hold (a key is
//!    generated only for a project that has none yet); read the Secret named by
//!    `auth.oidc.clientSecretRef` and stop, applying nothing, when it or its key is missing;
//! 2. build every object with [`crate::builders`] and apply each by server-side apply under the
//!    field manager [`crate::FIELD_MANAGER`], with `force` (the operator owns these fields);
//! 3. delete the objects the spec no longer asks for (DSN Secrets of removed projects, a dropped
//!    Ingress or NetworkPolicy), found by their labels;
//! 4. write the status (conditions with `observedGeneration`, ready replicas, ingest URL, DSN
//!    Secret names) by server-side apply on the status subresource.
//!
//! On deletion the cleanup deletes the pods' volumes when `storage.deleteVolumesOnDelete` is
//! set (owner references cannot: PersistentVolumeClaims of a StatefulSet are not owned by it),
//! then the finalizer is removed. A failed reconcile marks the tracker `Degraded`, counts the
//! error in the metrics and is retried with exponential backoff.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Debug;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Secret};
use k8s_openapi::api::networking::v1::{Ingress, NetworkPolicy};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;
use kube::api::DynamicObject;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::finalizer::{Event, finalizer};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Client, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::json;
use tracing::{info, instrument, warn};

use crate::builders::{
    self, ADMIN_TOKEN_KEY, Credentials, admin_token_secret_name, dsn_secret_name, generate_key,
    generate_token, is_valid_key, is_valid_token, managed_selector,
};
use crate::crd::{Backup, DsnSecretRef, ErrorTracker, ErrorTrackerStatus};
use crate::metrics::Metrics;
use crate::{FIELD_MANAGER, FINALIZER};

/// Errors of one reconcile.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot build objects: {0}")]
    Build(#[from] builders::Error),
    #[error("cannot list {kind}: {source}")]
    List {
        kind: &'static str,
        #[source]
        source: kube::Error,
    },
    #[error("cannot apply {kind} {name}: {source}")]
    Apply {
        kind: &'static str,
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error("cannot delete {kind} {name}: {source}")]
    Delete {
        kind: &'static str,
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error("cannot write status: {0}")]
    WriteStatus(#[source] kube::Error),
    #[error("ErrorTracker {0} has no namespace")]
    MissingNamespace(String),
    #[error(
        "Secret {name:?} named by spec.{field} does not exist in namespace {namespace:?}: the pods keep their current config until it does"
    )]
    SecretMissing {
        field: &'static str,
        name: String,
        namespace: String,
    },
    #[error(
        "Secret {name:?} named by spec.{field} has no key {key:?} (or it is empty): the pods keep their current config until it does"
    )]
    SecretKeyMissing {
        field: &'static str,
        name: String,
        key: String,
    },
    #[error("cannot read Secret {name}: {source}")]
    ReadSecret {
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error("finalizer: {0}")]
    Finalizer(#[source] Box<kube::runtime::finalizer::Error<Error>>),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Short label of the error for metrics.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Error::Build(_) => "build",
            Error::List { .. } => "list",
            Error::Apply { .. } => "apply",
            Error::Delete { .. } => "delete",
            Error::WriteStatus(_) => "status",
            Error::MissingNamespace(_) => "namespace",
            Error::SecretMissing { .. } | Error::SecretKeyMissing { .. } => "secret",
            Error::ReadSecret { .. } => "get",
            Error::Finalizer(inner) => match &**inner {
                kube::runtime::finalizer::Error::ApplyFailed(e)
                | kube::runtime::finalizer::Error::CleanupFailed(e) => e.metric_label(),
                _ => "finalizer",
            },
        }
    }

    /// Reason of the `Degraded` condition this error sets: `InvalidSpec` and `SecretMissing`
    /// are for the user to fix, `ReconcileFailed` is everything else.
    pub fn reason(&self) -> &'static str {
        match self {
            Error::Build(
                builders::Error::InvalidSpec { .. } | builders::Error::InvalidAlerts { .. },
            ) => "InvalidSpec",
            Error::SecretMissing { .. } | Error::SecretKeyMissing { .. } => "SecretMissing",
            _ => "ReconcileFailed",
        }
    }
}

/// Requeue delays.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    /// Delay after the first failure; doubled on each further failure.
    pub base: Duration,
    /// Longest delay.
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            base: Duration::from_secs(5),
            max: Duration::from_secs(300),
        }
    }
}

impl Backoff {
    /// The delay after `failures` consecutive failures (1 = first failure).
    pub fn delay(&self, failures: u32) -> Duration {
        let factor = 2u32.saturating_pow(failures.saturating_sub(1).min(16));
        self.base.saturating_mul(factor).min(self.max)
    }
}

/// What every reconcile shares.
pub struct Context {
    pub client: Client,
    pub metrics: Arc<Metrics>,
    pub backoff: Backoff,
    /// Namespace the operator runs in (the trackers' NetworkPolicies admit it to the admin
    /// port).
    pub operator_namespace: String,
    /// Base URL of every tracker's admin API instead of its pods' addresses: each tracker is
    /// then one endpoint, asked once (tests point it at a stand-in for the engine).
    pub admin_url: Option<String>,
    /// How often a running `Backup` is polled (10 s) and a pending one looked at again (15 s).
    pub backup_intervals: crate::backup::Intervals,
    failures: Mutex<HashMap<ObjectRef<DynamicObject>, u32>>,
    /// Backup id the engine gave, by `Backup` uid, until the backup is over.
    started_backups: Mutex<HashMap<String, String>>,
}

impl Context {
    pub fn new(client: Client, metrics: Arc<Metrics>) -> Self {
        Self {
            client,
            metrics,
            backoff: Backoff::default(),
            operator_namespace: builders::DEFAULT_OPERATOR_NAMESPACE.to_owned(),
            admin_url: None,
            backup_intervals: crate::backup::Intervals::default(),
            failures: Mutex::new(HashMap::new()),
            started_backups: Mutex::new(HashMap::new()),
        }
    }

    /// Remembers (`Some`) or forgets (`None`) the id of the backup the engine started for the
    /// `Backup` with `uid`: if writing the status fails, or the next reconcile sees a cached
    /// object older than that write, it polls that backup instead of starting another.
    pub(crate) fn set_started_backup(&self, uid: &str, id: Option<String>) {
        let mut started = self.started_backups.lock().expect("started backups lock");
        match id {
            Some(id) => started.insert(uid.to_owned(), id),
            None => started.remove(uid),
        };
    }

    /// The id remembered by [`Context::set_started_backup`].
    pub(crate) fn started_backup(&self, uid: &str) -> Option<String> {
        self.started_backups
            .lock()
            .expect("started backups lock")
            .get(uid)
            .cloned()
    }

    /// Base URL of the admin API of pod `ordinal` of tracker `name` in `namespace`, through
    /// the headless Service (`<tracker>-<ordinal>.<tracker>-pods`). One pod, not the
    /// load-balanced `<tracker>-admin` Service: an engine keeps its running and failed backup
    /// jobs in memory, so a backup is polled on the pod that started it.
    pub fn admin_base(&self, namespace: &str, name: &str, ordinal: i32) -> String {
        match &self.admin_url {
            Some(url) => url.clone(),
            None => format!(
                "http://{name}-{ordinal}.{}.{namespace}.svc:{}",
                builders::headless_service_name(name),
                builders::ADMIN_PORT
            ),
        }
    }

    pub(crate) fn reset_failures<K: Resource<DynamicType = ()>>(&self, object: &K) {
        self.failures
            .lock()
            .expect("failures lock")
            .remove(&ObjectRef::from_obj(object).erase());
    }

    pub(crate) fn record_failure<K: Resource<DynamicType = ()>>(&self, object: &K) -> u32 {
        let mut failures = self.failures.lock().expect("failures lock");
        let count = failures
            .entry(ObjectRef::from_obj(object).erase())
            .or_insert(0);
        *count += 1;
        *count
    }
}

/// Reconciles one tracker (the `Controller`'s reconcile function).
#[instrument(skip(tracker, ctx), fields(tracker = %tracker.name_any(), namespace = tracker.namespace().as_deref().unwrap_or("")))]
pub async fn reconcile(tracker: Arc<ErrorTracker>, ctx: Arc<Context>) -> Result<Action> {
    ctx.metrics.reconciles.inc();
    let namespace = tracker
        .namespace()
        .ok_or_else(|| Error::MissingNamespace(tracker.name_any()))?;
    let api: Api<ErrorTracker> = Api::namespaced(ctx.client.clone(), &namespace);
    let action = finalizer(&api, FINALIZER, Arc::clone(&tracker), |event| async {
        match event {
            Event::Apply(tracker) => apply(&tracker, &ctx).await,
            Event::Cleanup(tracker) => cleanup(&tracker, &ctx).await,
        }
    })
    .await
    .map_err(|err| Error::Finalizer(Box::new(err)))?;
    ctx.reset_failures(&*tracker);
    Ok(action)
}

/// Requeues a failed reconcile with exponential backoff and counts the failure.
pub fn error_policy(tracker: Arc<ErrorTracker>, error: &Error, ctx: Arc<Context>) -> Action {
    let failures = ctx.record_failure(&*tracker);
    let delay = ctx.backoff.delay(failures);
    ctx.metrics.record_error(error.metric_label());
    warn!(
        tracker = %tracker.name_any(),
        cause = %error,
        failures,
        retry_in_s = delay.as_secs(),
        "reconcile failed"
    );
    Action::requeue(delay)
}

async fn apply(tracker: &ErrorTracker, ctx: &Context) -> Result<Action> {
    match apply_objects(tracker, ctx).await {
        Ok((stateful_set, admin_token)) => {
            let mut status = status(tracker, Some(&stateful_set), None);
            crate::backup::report_backups(tracker, ctx, &admin_token, &mut status).await;
            let ready = is_true(&status.conditions, "Ready");
            patch_status(tracker, ctx, &status).await?;
            info!(ready, "reconciled");
            Ok(Action::requeue(if ready {
                Duration::from_secs(300)
            } else {
                Duration::from_secs(15)
            }))
        }
        Err(err) => {
            let status = status(tracker, None, Some(&err));
            if let Err(status_err) = patch_status(tracker, ctx, &status).await {
                warn!(cause = %status_err, "cannot mark tracker degraded");
            }
            Err(err)
        }
    }
}

/// Applies every object and removes orphans; returns the applied StatefulSet and the admin
/// token.
async fn apply_objects(tracker: &ErrorTracker, ctx: &Context) -> Result<(StatefulSet, String)> {
    let namespace = tracker.namespace().unwrap_or_default();
    let name = tracker.name_any();
    let client = &ctx.client;
    let secrets_api: Api<Secret> = Api::namespaced(client.clone(), &namespace);
    let existing = list(&secrets_api, &name, "Secret").await?;
    let mut credentials = resolve_credentials(tracker, &existing);
    credentials.operator_namespace = Some(ctx.operator_namespace.clone());
    // Checked before anything is applied: a config pointing at a secret the pods cannot mount
    // would roll them into a crash loop.
    credentials.oidc_secret_version = oidc_secret_version(tracker, &secrets_api).await?;
    check_alert_secrets(tracker, &secrets_api).await?;
    let desired = builders::build(tracker, &credentials)?;

    apply_one(client, &namespace, &desired.service_account).await?;
    apply_one(client, &namespace, &desired.config_map).await?;
    apply_one(client, &namespace, &desired.admin_token_secret).await?;
    for secret in &desired.dsn_secrets {
        apply_one(client, &namespace, secret).await?;
    }
    apply_one(client, &namespace, &desired.service).await?;
    apply_one(client, &namespace, &desired.admin_service).await?;
    apply_one(client, &namespace, &desired.headless_service).await?;
    let stateful_set = apply_one(client, &namespace, &desired.stateful_set).await?;
    apply_one(client, &namespace, &desired.pod_disruption_budget).await?;
    if let Some(policy) = &desired.network_policy {
        apply_one(client, &namespace, policy).await?;
    }
    if let Some(ingress) = &desired.ingress {
        apply_one(client, &namespace, ingress).await?;
    }

    let keep: Vec<String> = desired
        .dsn_secrets
        .iter()
        .chain([&desired.admin_token_secret])
        .map(|s| s.name_any())
        .collect();
    delete_orphans(&secrets_api, existing, &keep).await?;
    let keep: Vec<String> = desired
        .network_policy
        .iter()
        .map(|p| p.name_any())
        .collect();
    let api: Api<NetworkPolicy> = Api::namespaced(client.clone(), &namespace);
    let existing = list(&api, &name, "NetworkPolicy").await?;
    delete_orphans(&api, existing, &keep).await?;
    let keep: Vec<String> = desired.ingress.iter().map(|i| i.name_any()).collect();
    let api: Api<Ingress> = Api::namespaced(client.clone(), &namespace);
    let existing = list(&api, &name, "Ingress").await?;
    delete_orphans(&api, existing, &keep).await?;
    Ok((stateful_set, credentials.admin_token))
}

/// Checks that every Secret key `spec.alerts` references exists and holds a value: a pod
/// cannot start with a projected key missing.
async fn check_alert_secrets(tracker: &ErrorTracker, secrets_api: &Api<Secret>) -> Result<()> {
    const FIELD: &str = "alerts";
    let Some(alerts) = &tracker.spec.alerts else {
        return Ok(());
    };
    for (reference, _) in builders::alert_secret_files(alerts) {
        let secret = secrets_api
            .get_opt(&reference.name)
            .await
            .map_err(|source| Error::ReadSecret {
                name: reference.name.clone(),
                source,
            })?
            .ok_or_else(|| Error::SecretMissing {
                field: FIELD,
                name: reference.name.clone(),
                namespace: tracker.namespace().unwrap_or_default(),
            })?;
        let has_value = secret
            .data
            .as_ref()
            .and_then(|d| d.get(&reference.key))
            .is_some_and(|v| !v.0.iter().all(u8::is_ascii_whitespace));
        if !has_value {
            return Err(Error::SecretKeyMissing {
                field: FIELD,
                name: reference.name.clone(),
                key: reference.key.clone(),
            });
        }
    }
    Ok(())
}

/// The resourceVersion of the Secret named by `auth.oidc.clientSecretRef` (None without one),
/// after checking that it exists and holds a non-empty value under the key.
async fn oidc_secret_version(
    tracker: &ErrorTracker,
    secrets_api: &Api<Secret>,
) -> Result<Option<String>> {
    const FIELD: &str = "auth.oidc.clientSecretRef";
    let Some(reference) = oidc_secret_ref(tracker) else {
        return Ok(None);
    };
    let secret = secrets_api
        .get_opt(&reference.name)
        .await
        .map_err(|source| Error::ReadSecret {
            name: reference.name.clone(),
            source,
        })?
        .ok_or_else(|| Error::SecretMissing {
            field: FIELD,
            name: reference.name.clone(),
            namespace: tracker.namespace().unwrap_or_default(),
        })?;
    // The engine trims the file's content; a value of only whitespace is no secret.
    let has_value = secret
        .data
        .as_ref()
        .and_then(|d| d.get(&reference.key))
        .is_some_and(|v| !v.0.iter().all(u8::is_ascii_whitespace));
    if !has_value {
        return Err(Error::SecretKeyMissing {
            field: FIELD,
            name: reference.name.clone(),
            key: reference.key.clone(),
        });
    }
    Ok(Some(secret.resource_version().unwrap_or_default()))
}

/// The trackers among `trackers` whose `auth.oidc.clientSecretRef` or `spec.alerts` names
/// `secret` (same namespace and name): those a change of the Secret must reconcile.
pub fn trackers_naming(
    secret: &Secret,
    trackers: &[Arc<ErrorTracker>],
) -> Vec<ObjectRef<ErrorTracker>> {
    let namespace = secret.namespace();
    let name = secret.name_any();
    trackers
        .iter()
        .filter(|t| {
            let alerts = t.spec.alerts.as_ref().is_some_and(|a| {
                builders::alert_secret_files(a)
                    .iter()
                    .any(|(r, _)| r.name == name)
            });
            t.namespace() == namespace
                && (oidc_secret_ref(t).is_some_and(|r| r.name == name) || alerts)
        })
        .map(|t| ObjectRef::from_obj(&**t))
        .collect()
}

/// The Secret reference of a tracker's OIDC client secret.
fn oidc_secret_ref(tracker: &ErrorTracker) -> Option<&crate::crd::SecretKeyRef> {
    tracker
        .spec
        .auth
        .oidc
        .as_ref()
        .and_then(|o| o.client_secret_ref.as_ref())
}

/// Keeps the key stored in each project's Secret and the stored admin token; generates what
/// is missing (or malformed).
fn resolve_credentials(tracker: &ErrorTracker, existing: &[Secret]) -> Credentials {
    let name = tracker.name_any();
    let stored = |secret_name: &str, key: &str| {
        existing
            .iter()
            .find(|s| s.name_any() == secret_name)
            .and_then(|s| s.data.as_ref()?.get(key))
            .and_then(|value| String::from_utf8(value.0.clone()).ok())
    };
    let stored_key = |project: &str, key: &str| {
        stored(&dsn_secret_name(&name, project), key).filter(|key| is_valid_key(key))
    };
    // Listed keys keep their stored value; `default` takes over the project's existing key.
    let named_keys: BTreeMap<String, BTreeMap<String, String>> = tracker
        .spec
        .projects
        .iter()
        .filter(|p| !p.keys.is_empty())
        .map(|project| {
            let keys = project.keys.iter().map(|k| {
                let value = stored_key(&project.name, &format!("key-{}", k.name))
                    .or_else(|| {
                        (k.name == "default")
                            .then(|| stored_key(&project.name, "key"))
                            .flatten()
                    })
                    .unwrap_or_else(generate_key);
                (k.name.clone(), value)
            });
            (project.name.clone(), keys.collect())
        })
        .collect();
    let dsn_keys = tracker
        .spec
        .projects
        .iter()
        .map(|project| {
            let key = builders::primary_key(project, named_keys.get(&project.name))
                .or_else(|| stored_key(&project.name, "key"))
                .unwrap_or_else(generate_key);
            (project.name.clone(), key)
        })
        .collect();
    let admin_token = stored(&admin_token_secret_name(&name), ADMIN_TOKEN_KEY)
        .filter(|token| is_valid_token(token))
        .unwrap_or_else(generate_token);
    Credentials {
        dsn_keys,
        named_keys,
        admin_token,
        operator_namespace: None,
        oidc_secret_version: None,
    }
}

pub(crate) async fn list<K>(api: &Api<K>, tracker_name: &str, kind: &'static str) -> Result<Vec<K>>
where
    K: Resource + Clone + DeserializeOwned + Debug,
{
    let params = ListParams::default().labels(&managed_selector(tracker_name));
    api.list(&params)
        .await
        .map(|list| list.items)
        .map_err(|source| Error::List { kind, source })
}

async fn apply_one<K>(client: &Client, namespace: &str, object: &K) -> Result<K>
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + k8s_openapi::Resource
        + Clone
        + DeserializeOwned
        + Serialize
        + Debug,
{
    let api: Api<K> = Api::namespaced(client.clone(), namespace);
    let name = object.name_any();
    api.patch(
        &name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(object),
    )
    .await
    .map_err(|source| Error::Apply {
        kind: kind_of::<K>(),
        name,
        source,
    })
}

async fn delete_orphans<K>(api: &Api<K>, existing: Vec<K>, keep: &[String]) -> Result<()>
where
    K: Resource<DynamicType = ()> + k8s_openapi::Resource + Clone + DeserializeOwned + Debug,
{
    for object in existing {
        let name = object.name_any();
        if keep.contains(&name) {
            continue;
        }
        info!(
            kind = kind_of::<K>(),
            name, "deleting object the spec no longer asks for"
        );
        match api.delete(&name, &DeleteParams::default()).await {
            Ok(_) => {}
            Err(kube::Error::Api(status)) if status.code == 404 => {}
            Err(source) => {
                return Err(Error::Delete {
                    kind: kind_of::<K>(),
                    name,
                    source,
                });
            }
        }
    }
    Ok(())
}

fn kind_of<K: k8s_openapi::Resource>() -> &'static str {
    K::KIND
}

async fn cleanup(tracker: &ErrorTracker, ctx: &Context) -> Result<Action> {
    let namespace = tracker.namespace().unwrap_or_default();
    let name = tracker.name_any();
    if tracker.spec.storage.delete_volumes_on_delete {
        let api: Api<PersistentVolumeClaim> = Api::namespaced(ctx.client.clone(), &namespace);
        let claims = list(&api, &name, "PersistentVolumeClaim").await?;
        delete_orphans(&api, claims, &[]).await?;
        info!("deleted the tracker's volumes");
    } else {
        info!("tracker deleted; its volumes are kept (storage.deleteVolumesOnDelete is off)");
    }
    ctx.metrics.cleanups.inc();
    Ok(Action::await_change())
}

async fn patch_status(
    tracker: &ErrorTracker,
    ctx: &Context,
    status: &ErrorTrackerStatus,
) -> Result<()> {
    let namespace = tracker.namespace().unwrap_or_default();
    let api: Api<ErrorTracker> = Api::namespaced(ctx.client.clone(), &namespace);
    let patch = json!({
        "apiVersion": ErrorTracker::api_version(&()),
        "kind": ErrorTracker::kind(&()),
        "status": status,
    });
    api.patch_status(
        &tracker.name_any(),
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&patch),
    )
    .await
    .map_err(Error::WriteStatus)?;
    Ok(())
}

/// The status for a tracker whose StatefulSet is `stateful_set` (None when applying failed
/// with `error`).
pub fn status(
    tracker: &ErrorTracker,
    stateful_set: Option<&StatefulSet>,
    error: Option<&Error>,
) -> ErrorTrackerStatus {
    let previous = tracker.status.clone().unwrap_or_default();
    let generation = tracker.metadata.generation;
    let name = tracker.name_any();
    let want = tracker.spec.replicas;
    let sts_status = stateful_set.and_then(|s| s.status.clone());
    let ready_replicas = match (&sts_status, error) {
        (Some(s), _) => s.ready_replicas.unwrap_or(0),
        (None, Some(_)) => previous.ready_replicas,
        (None, None) => 0,
    };
    let updated = sts_status
        .as_ref()
        .and_then(|s| s.updated_replicas)
        .unwrap_or(0);
    let sts_current = match (
        stateful_set.and_then(|s| s.metadata.generation),
        &sts_status,
    ) {
        (Some(gen_), Some(s)) => s.observed_generation.unwrap_or(0) >= gen_,
        _ => false,
    };
    let ready = ready_replicas >= want;
    let rolled_out = sts_current && updated >= want && ready;
    let mut conditions = Vec::new();
    let mut set = |type_: &str, status: bool, reason: &str, message: String| {
        conditions.push(condition(
            &previous.conditions,
            generation,
            type_,
            status,
            reason,
            message,
        ));
    };
    match error {
        Some(err) => {
            let reason = err.reason();
            set("Degraded", true, reason, err.to_string());
            set(
                "Progressing",
                false,
                reason,
                "the operator cannot apply the spec".into(),
            );
            set(
                "Ready",
                ready && is_true(&previous.conditions, "Ready"),
                reason,
                format!("{ready_replicas}/{want} replicas ready"),
            );
        }
        None => {
            set(
                "Degraded",
                false,
                "Reconciled",
                "every object is applied".into(),
            );
            if rolled_out {
                set(
                    "Progressing",
                    false,
                    "RolledOut",
                    "the pods run the current spec".into(),
                );
            } else {
                set(
                    "Progressing",
                    true,
                    "RollingOut",
                    format!("{updated}/{want} replicas updated, {ready_replicas}/{want} ready"),
                );
            }
            set(
                "Ready",
                ready,
                if ready {
                    "ReplicasReady"
                } else {
                    "ReplicasNotReady"
                },
                format!("{ready_replicas}/{want} replicas ready"),
            );
        }
    }
    ErrorTrackerStatus {
        conditions,
        observed_generation: generation,
        ready_replicas,
        ingest_url: Some(builders::ingest_url(tracker)),
        admin_token_secret: Some(admin_token_secret_name(&name)),
        last_backup: None,
        dsn_secrets: tracker
            .spec
            .projects
            .iter()
            .map(|p| DsnSecretRef {
                project: p.name.clone(),
                secret_name: dsn_secret_name(&name, &p.name),
            })
            .collect(),
    }
}

fn condition(
    previous: &[Condition],
    generation: Option<i64>,
    type_: &str,
    status: bool,
    reason: &str,
    message: String,
) -> Condition {
    let status = if status { "True" } else { "False" };
    condition_with(previous, generation, type_, status, reason, message)
}

/// A condition with status `True`, `False` or `Unknown`; its `lastTransitionTime` is the
/// previous one while the status stays the same.
pub(crate) fn condition_with(
    previous: &[Condition],
    generation: Option<i64>,
    type_: &str,
    status: &str,
    reason: &str,
    message: String,
) -> Condition {
    let status = status.to_owned();
    let last_transition_time = previous
        .iter()
        .find(|c| c.type_ == type_ && c.status == status)
        .map(|c| c.last_transition_time.clone())
        .unwrap_or_else(|| Time(Timestamp::now()));
    Condition {
        type_: type_.to_owned(),
        status,
        reason: reason.to_owned(),
        message,
        observed_generation: generation,
        last_transition_time,
    }
}

fn is_true(conditions: &[Condition], type_: &str) -> bool {
    conditions
        .iter()
        .any(|c| c.type_ == type_ && c.status == "True")
}

/// Runs the controllers (`ErrorTracker` and `Backup`) until `shutdown` resolves.
pub async fn run(
    client: Client,
    metrics: Arc<Metrics>,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) {
    run_with(Context::new(client, metrics), shutdown).await;
}

/// [`run`] with a prepared context.
pub async fn run_with(
    ctx: Context,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) {
    let client = ctx.client.clone();
    let ctx = Arc::new(ctx);
    let owned =
        watcher::Config::default().labels("app.kubernetes.io/managed-by=faultline-operator");
    let (stop_backups, backups_shutdown) = tokio::sync::watch::channel(false);
    let controller = Controller::new(
        Api::<ErrorTracker>::all(client.clone()),
        watcher::Config::default(),
    );
    let known = controller.store();
    let trackers = controller
        .owns(Api::<StatefulSet>::all(client.clone()), owned.clone())
        .owns(Api::<Secret>::all(client.clone()), owned)
        // a Secret the user keeps (the OIDC client secret) wakes the trackers that name it, so a
        // created or changed Secret is picked up at once
        .watches(
            Api::<Secret>::all(client.clone()),
            watcher::Config::default(),
            move |secret| trackers_naming(&secret, &known.state()),
        )
        // a finished Backup refreshes its tracker's lastBackup at once
        .watches(
            Api::<Backup>::all(client.clone()),
            watcher::Config::default(),
            |backup| {
                let namespace = backup.namespace()?;
                Some(ObjectRef::new(&backup.spec.tracker).within(&namespace))
            },
        )
        .graceful_shutdown_on(async move {
            shutdown.await;
            let _ = stop_backups.send(true);
        })
        .run(reconcile, error_policy, Arc::clone(&ctx))
        .for_each(|result| async move {
            if let Err(err) = result {
                tracing::debug!(cause = %err, "reconcile event");
            }
        });
    let mut backups_shutdown = backups_shutdown;
    let backups = Controller::new(Api::<Backup>::all(client), watcher::Config::default())
        .graceful_shutdown_on(async move {
            let _ = backups_shutdown.wait_for(|stop| *stop).await;
        })
        .run(crate::backup::reconcile, crate::backup::error_policy, ctx)
        .for_each(|result| async move {
            if let Err(err) = result {
                tracing::debug!(cause = %err, "backup reconcile event");
            }
        });
    futures::join!(trackers, backups);
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::apps::v1::StatefulSetStatus;
    use kube::api::ObjectMeta;

    use super::*;
    use crate::crd::ErrorTrackerSpec;

    fn tracker(generation: i64, replicas: i32) -> ErrorTracker {
        let mut tracker = ErrorTracker::new(
            "errors",
            ErrorTrackerSpec {
                replicas,
                ..ErrorTrackerSpec::default()
            },
        );
        tracker.metadata = ObjectMeta {
            name: Some("errors".into()),
            namespace: Some("default".into()),
            generation: Some(generation),
            ..ObjectMeta::default()
        };
        tracker
    }

    fn sts(generation: i64, observed: i64, ready: i32, updated: i32) -> StatefulSet {
        StatefulSet {
            metadata: ObjectMeta {
                generation: Some(generation),
                ..ObjectMeta::default()
            },
            spec: None,
            status: Some(StatefulSetStatus {
                observed_generation: Some(observed),
                ready_replicas: Some(ready),
                updated_replicas: Some(updated),
                ..StatefulSetStatus::default()
            }),
        }
    }

    fn get<'a>(status: &'a ErrorTrackerStatus, type_: &str) -> &'a Condition {
        status.conditions.iter().find(|c| c.type_ == type_).unwrap()
    }

    #[test]
    fn backoff_doubles_and_is_capped() {
        let backoff = Backoff::default();
        let delays: Vec<u64> = (1..=8).map(|n| backoff.delay(n).as_secs()).collect();
        assert_eq!(delays, [5, 10, 20, 40, 80, 160, 300, 300]);
        assert_eq!(backoff.delay(u32::MAX).as_secs(), 300);
    }

    #[test]
    fn conditions_follow_the_stateful_set() {
        let t = tracker(3, 2);
        let rolling = status(&t, Some(&sts(4, 3, 2, 1)), None);
        assert_eq!(get(&rolling, "Progressing").status, "True");
        assert_eq!(
            get(&rolling, "Ready").status,
            "True",
            "the old pods still serve"
        );
        assert_eq!(get(&rolling, "Degraded").status, "False");
        assert!(
            rolling
                .conditions
                .iter()
                .all(|c| c.observed_generation == Some(3))
        );

        let done = status(&t, Some(&sts(4, 4, 2, 2)), None);
        assert_eq!(get(&done, "Progressing").reason, "RolledOut");
        let short = status(&t, Some(&sts(4, 4, 1, 2)), None);
        assert_eq!(get(&short, "Ready").status, "False");
        assert_eq!(get(&short, "Ready").message, "1/2 replicas ready");
    }

    #[test]
    fn transition_time_changes_only_with_the_condition_status() {
        let mut t = tracker(1, 1);
        let mut first = status(&t, Some(&sts(1, 1, 0, 1)), None);
        let past = Time(Timestamp::from_second(1_000_000_000).unwrap());
        for c in &mut first.conditions {
            c.last_transition_time = past.clone();
        }
        t.status = Some(first);
        let same = status(&t, Some(&sts(1, 1, 0, 1)), None);
        assert!(
            same.conditions
                .iter()
                .all(|c| c.last_transition_time == past)
        );
        let ready = status(&t, Some(&sts(1, 1, 1, 1)), None);
        assert_ne!(get(&ready, "Ready").last_transition_time, past);
        assert_eq!(get(&ready, "Degraded").last_transition_time, past);
    }

    #[test]
    fn a_failure_keeps_the_last_known_readiness() {
        let mut t = tracker(2, 1);
        t.status = Some(status(&t, Some(&sts(1, 1, 1, 1)), None));
        let err = Error::MissingNamespace("x".into());
        let failed = status(&t, None, Some(&err));
        assert_eq!(get(&failed, "Degraded").status, "True");
        assert_eq!(get(&failed, "Ready").status, "True");
        assert_eq!(failed.ready_replicas, 1);
    }
}
