//! The `ErrorTracker` reconciler: one place that talks to the API server on behalf of a
//! tracker.
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
//!    Secret names, the backups and the engine's own report: see [`crate::backup`] and
//!    [`crate::engine_status`]) by server-side apply on the status subresource.
//!
//! On deletion the cleanup deletes the pods' volumes when `storage.deleteVolumesOnDelete` is
//! set (owner references cannot: PersistentVolumeClaims of a StatefulSet are not owned by it),
//! then the finalizer is removed. A failed reconcile marks the tracker `Degraded`, counts the
//! error in the metrics and is retried with exponential backoff.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{PersistentVolumeClaim, Secret};
use k8s_openapi::api::networking::v1::{Ingress, NetworkPolicy};
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::runtime::finalizer::{Event, finalizer};
use kube::runtime::reflector::ObjectRef;
use kube::{Resource, ResourceExt};
use serde_json::json;
use tracing::{info, instrument, warn};

use crate::builders::{
    self, ADMIN_TOKEN_KEY, Credentials, admin_token_secret_name, dsn_secret_name, generate_key,
    generate_token, is_valid_key, is_valid_token,
};
use crate::cluster::{self, apply_one, delete_orphans, list};
use crate::conditions::{condition, is_true};
use crate::context::Context;
use crate::crd::{DsnSecretRef, ErrorTracker, ErrorTrackerStatus};
use crate::{FIELD_MANAGER, FINALIZER};

/// Errors of one reconcile.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot build objects: {0}")]
    Build(#[from] builders::Error),
    #[error(transparent)]
    Cluster(#[from] cluster::Error),
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
            Error::Cluster(e) => e.metric_label(),
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
                builders::Error::InvalidSpec { .. }
                | builders::Error::InvalidAlerts { .. }
                | builders::Error::InvalidQuotas { .. },
            ) => "InvalidSpec",
            Error::SecretMissing { .. } | Error::SecretKeyMissing { .. } => "SecretMissing",
            _ => "ReconcileFailed",
        }
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
            crate::engine_status::report_engine(tracker, ctx, &admin_token, &mut status).await;
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
            let mut status = status(tracker, None, Some(&err));
            // what the engine said last stands until it can be asked again
            crate::engine_status::report(
                &tracker.status.clone().unwrap_or_default(),
                tracker.metadata.generation,
                &crate::engine_status::Answer::Fresh,
                &mut status,
            );
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
    let Some(alerts) = &tracker.spec.alerts else {
        return Ok(());
    };
    for (reference, _) in builders::alert_secret_files(alerts) {
        secret_with_value(
            tracker,
            secrets_api,
            "alerts",
            &reference.name,
            &reference.key,
        )
        .await?;
    }
    Ok(())
}

/// The resourceVersion of the Secret named by `auth.oidc.clientSecretRef` (None without one),
/// after checking that it exists and holds a non-empty value under the key.
async fn oidc_secret_version(
    tracker: &ErrorTracker,
    secrets_api: &Api<Secret>,
) -> Result<Option<String>> {
    let Some(reference) = oidc_secret_ref(tracker) else {
        return Ok(None);
    };
    let secret = secret_with_value(
        tracker,
        secrets_api,
        "auth.oidc.clientSecretRef",
        &reference.name,
        &reference.key,
    )
    .await?;
    Ok(Some(secret.resource_version().unwrap_or_default()))
}

/// The Secret `name` of the tracker's namespace, named by the spec's `field`, when it holds a
/// non-empty value under `key` (the engine trims the file's content: a value of only
/// whitespace is no secret).
async fn secret_with_value(
    tracker: &ErrorTracker,
    secrets_api: &Api<Secret>,
    field: &'static str,
    name: &str,
    key: &str,
) -> Result<Secret> {
    let secret = secrets_api
        .get_opt(name)
        .await
        .map_err(|source| Error::ReadSecret {
            name: name.to_owned(),
            source,
        })?
        .ok_or_else(|| Error::SecretMissing {
            field,
            name: name.to_owned(),
            namespace: tracker.namespace().unwrap_or_default(),
        })?;
    let has_value = secret
        .data
        .as_ref()
        .and_then(|d| d.get(key))
        .is_some_and(|v| !v.0.iter().all(u8::is_ascii_whitespace));
    if !has_value {
        return Err(Error::SecretKeyMissing {
            field,
            name: name.to_owned(),
            key: key.to_owned(),
        });
    }
    Ok(secret)
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
        engine_checked_at: None,
        projects: Vec::new(),
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

#[cfg(test)]
mod tests {
    use k8s_openapi::api::apps::v1::StatefulSetStatus;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
    use k8s_openapi::jiff::Timestamp;
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
