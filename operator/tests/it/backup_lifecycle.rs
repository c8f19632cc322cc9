//! Rung 5 for backups: the `Backup` reconciler and the tracker's backup status converge on
//! `kube-fake-client`, against `engine_stub`, an in-process HTTP server that stands in for the
//! engine's admin API (the real engine cannot run in these tests). A Backup goes Pending ->
//! Running -> Succeeded or Failed, is left alone once finished, keeps its phase and backs off
//! while the engine is unreachable; the tracker shows `lastBackup` and `BackupSucceeded`.
//! No API server runs here.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use axum::http::StatusCode;
use faultline_operator::backup::{self, BACKUP_SUCCEEDED, SUCCEEDED};
use faultline_operator::builders::{self, admin_token_secret_name};
use faultline_operator::crd::{Backup, BackupPhase, BackupSpec, BackupStatus};
use faultline_operator::metrics::Metrics;
use faultline_operator::{Context, ErrorTracker, ErrorTrackerStatus};
use k8s_openapi::ByteString;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::api::{Api, ObjectMeta, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::{Client, ResourceExt};
use kube_fake_client::{ClientBuilder, interceptor};
use serde_json::json;

use crate::common::tracker;
use crate::engine_stub::EngineStub;

/// The admin token stored in the tracker's Secret, which the stand-in engine expects.
const TOKEN: &str = "cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc";

struct Setup {
    client: Client,
    ctx: Arc<Context>,
    engine: EngineStub,
    namespace: String,
}

/// A fake cluster holding the fixture tracker (its admin-token Secret already stored) and
/// `backups` of it; the context points the operator at the stand-in engine.
async fn setup(fixture: &str, backups: &[(&str, &str)]) -> Setup {
    setup_with(fixture, backups, None).await
}

/// [`setup`] with interceptors on the fake API.
async fn setup_with(
    fixture: &str,
    backups: &[(&str, &str)],
    interceptors: Option<interceptor::Funcs>,
) -> Setup {
    let mut tracker = tracker(fixture);
    tracker.metadata.uid = None;
    tracker.metadata.finalizers = Some(vec!["example.com/other".to_owned()]);
    let namespace = tracker.namespace().unwrap();
    let name = tracker.name_any();
    let secret = Secret {
        metadata: ObjectMeta {
            name: Some(admin_token_secret_name(&name)),
            namespace: Some(namespace.clone()),
            labels: Some(builders::labels(&name, "admin")),
            ..ObjectMeta::default()
        },
        data: Some(BTreeMap::from([(
            "token".to_owned(),
            ByteString(TOKEN.as_bytes().to_vec()),
        )])),
        ..Secret::default()
    };
    let mut builder = ClientBuilder::new()
        .with_resource::<ErrorTracker>()
        .with_status_subresource::<ErrorTracker>()
        .with_resource::<Backup>()
        .with_status_subresource::<Backup>()
        .with_status_subresource::<StatefulSet>()
        .with_object(tracker)
        .with_object(secret);
    for (backup, of) in backups {
        let mut object = Backup::new(
            backup,
            BackupSpec {
                tracker: (*of).to_owned(),
            },
        );
        object.metadata.namespace = Some(namespace.clone());
        builder = builder.with_object(object);
    }
    if let Some(funcs) = interceptors {
        builder = builder.with_interceptor_funcs(funcs);
    }
    let client = builder.build().await.expect("fake client");
    let (engine, url) = EngineStub::start(TOKEN).await;
    let mut ctx = Context::new(client.clone(), Arc::new(Metrics::default()));
    ctx.admin_url = Some(url);
    Setup {
        client,
        ctx: Arc::new(ctx),
        engine,
        namespace,
    }
}

impl Setup {
    async fn tracker(&self) -> Arc<ErrorTracker> {
        let api = Api::<ErrorTracker>::namespaced(self.client.clone(), &self.namespace);
        Arc::new(api.get("errors").await.unwrap())
    }

    async fn tracker_status(&self) -> ErrorTrackerStatus {
        self.tracker().await.status.clone().unwrap()
    }

    /// Reconciles the tracker until one full apply ran.
    async fn reconcile_tracker(&self) {
        for _ in 0..3 {
            let action =
                faultline_operator::tracker::reconcile(self.tracker().await, Arc::clone(&self.ctx))
                    .await
                    .expect("tracker reconcile");
            if action != Action::await_change() {
                return;
            }
        }
        panic!("the tracker did not converge");
    }

    /// The StatefulSet controller reports `ready` pods; the tracker picks them up.
    async fn pods_ready(&self, ready: i32) {
        let api = Api::<StatefulSet>::namespaced(self.client.clone(), &self.namespace);
        let status = json!({"status": {"replicas": ready, "readyReplicas": ready}});
        api.patch_status("errors", &PatchParams::default(), &Patch::Merge(&status))
            .await
            .unwrap();
        self.reconcile_tracker().await;
    }

    async fn backup(&self, name: &str) -> Arc<Backup> {
        let api = Api::<Backup>::namespaced(self.client.clone(), &self.namespace);
        Arc::new(api.get(name).await.unwrap())
    }

    async fn reconcile_backup(&self, name: &str) -> Result<Action, backup::Error> {
        backup::reconcile(self.backup(name).await, Arc::clone(&self.ctx)).await
    }

    /// Reconciles a backup that is over: the controller waits for a change (no requeue) and
    /// the status is returned.
    async fn reconcile_finished_backup(&self, name: &str) -> BackupStatus {
        assert_eq!(
            self.reconcile_backup(name).await.unwrap(),
            Action::await_change(),
            "a finished backup is not polled again"
        );
        self.backup_status(name).await
    }

    async fn backup_status(&self, name: &str) -> BackupStatus {
        self.backup(name).await.status.clone().unwrap()
    }
}

fn condition<'a>(conditions: &'a [Condition], type_: &str) -> &'a Condition {
    conditions
        .iter()
        .find(|c| c.type_ == type_)
        .unwrap_or_else(|| panic!("no {type_} condition in {conditions:?}"))
}

#[tokio::test]
async fn a_backup_runs_to_success_and_the_tracker_reports_it() {
    let s = setup("s3-ha.yaml", &[("before-upgrade", "errors")]).await;
    s.reconcile_tracker().await;
    s.pods_ready(3).await;
    let status = s.tracker_status().await;
    let waiting = condition(&status.conditions, BACKUP_SUCCEEDED);
    assert_eq!(
        (waiting.status.as_str(), waiting.reason.as_str()),
        ("Unknown", "NoBackupYet")
    );
    assert_eq!(status.last_backup, None);
    assert_eq!(s.engine.backup_requests(), ["GET /api/0/backups"]);

    // the operator asks the engine for a backup and records its id
    let action = s.reconcile_backup("before-upgrade").await.unwrap();
    assert_eq!(action, Action::requeue(Duration::from_secs(10)));
    let running = s.backup_status("before-upgrade").await;
    assert_eq!(running.phase, BackupPhase::Running);
    let id = running.backup_id.clone().expect("the engine's id");
    assert_eq!(id, "20261124T162000Z-ab12");
    assert!(running.started_at.is_some());
    let generation = s.backup("before-upgrade").await.metadata.generation;
    let cond = condition(&running.conditions, SUCCEEDED);
    assert_eq!(
        (cond.status.as_str(), cond.reason.as_str()),
        ("Unknown", "Running")
    );
    assert_eq!(cond.observed_generation, generation);
    assert_eq!(running.observed_generation, generation);

    // while it runs, the operator polls it and never starts a second one
    s.reconcile_backup("before-upgrade").await.unwrap();
    assert_eq!(
        s.backup_status("before-upgrade").await.phase,
        BackupPhase::Running
    );
    s.engine.finish(&id, None);
    let done = s.reconcile_finished_backup("before-upgrade").await;
    assert_eq!(done.phase, BackupPhase::Succeeded);
    assert_eq!(
        done.finished_at.as_ref().unwrap().0.to_string(),
        "2026-11-24T16:20:05Z"
    );
    assert_eq!((done.files, done.bytes), (Some(12), Some(34_567)));
    assert_eq!(done.message, None);
    assert_eq!(condition(&done.conditions, SUCCEEDED).status, "True");
    let path = format!("GET /api/0/backups/{id}");
    assert_eq!(
        s.engine.backup_requests(),
        [
            "GET /api/0/backups",
            "POST /api/0/backups",
            path.as_str(),
            path.as_str()
        ]
    );

    // a finished Backup is left alone
    let before = s.engine.requests().len();
    let again = s.reconcile_finished_backup("before-upgrade").await;
    assert_eq!(s.engine.requests().len(), before);
    assert_eq!(again, done);

    // the tracker shows it
    s.reconcile_tracker().await;
    let status = s.tracker_status().await;
    let last = status.last_backup.expect("lastBackup");
    assert_eq!(last.id, id);
    assert_eq!(
        last.finished_at.unwrap().0.to_string(),
        "2026-11-24T16:20:05Z"
    );
    let ok = condition(&status.conditions, BACKUP_SUCCEEDED);
    assert_eq!(
        (ok.status.as_str(), ok.reason.as_str()),
        ("True", "BackupSucceeded")
    );
    assert_eq!(
        ok.observed_generation,
        s.tracker().await.metadata.generation
    );
}

#[tokio::test]
async fn a_failed_backup_is_reported_on_the_backup_and_the_tracker() {
    let s = setup("s3-ha.yaml", &[("manual", "errors")]).await;
    s.reconcile_tracker().await;
    s.pods_ready(1).await;
    s.reconcile_backup("manual").await.unwrap();
    let id = s.backup_status("manual").await.backup_id.unwrap();
    s.engine
        .finish(&id, Some("destination bucket faultline-backups not found"));
    s.reconcile_backup("manual").await.unwrap();
    let failed = s.backup_status("manual").await;
    assert_eq!(failed.phase, BackupPhase::Failed);
    assert_eq!(
        failed.message.as_deref(),
        Some("destination bucket faultline-backups not found")
    );
    let cond = condition(&failed.conditions, SUCCEEDED);
    assert_eq!(
        (cond.status.as_str(), cond.reason.as_str()),
        ("False", "BackupFailed")
    );

    s.reconcile_tracker().await;
    let status = s.tracker_status().await;
    let cond = condition(&status.conditions, BACKUP_SUCCEEDED);
    assert_eq!(
        (cond.status.as_str(), cond.reason.as_str()),
        ("False", "BackupFailed")
    );
    assert!(
        cond.message.contains(&id) && cond.message.contains("not found"),
        "{}",
        cond.message
    );
    assert_eq!(status.last_backup, None, "no backup ever succeeded");
}

#[tokio::test]
async fn a_backup_waits_for_its_tracker_and_a_ready_pod() {
    let s = setup(
        "s3-ha.yaml",
        &[("of-nothing", "nope"), ("too-early", "errors")],
    )
    .await;
    s.reconcile_tracker().await;
    for (backup, message) in [
        ("of-nothing", "ErrorTracker nope not found"),
        (
            "too-early",
            "waiting for a ready pod of ErrorTracker errors",
        ),
    ] {
        assert_eq!(
            s.reconcile_backup(backup).await.unwrap(),
            Action::requeue(Duration::from_secs(15))
        );
        let status = s.backup_status(backup).await;
        assert_eq!(status.phase, BackupPhase::Pending, "{backup}");
        assert_eq!(status.message.as_deref(), Some(message));
        assert_eq!(condition(&status.conditions, SUCCEEDED).reason, "Pending");
    }
    assert!(
        s.engine.backup_requests().is_empty(),
        "nothing asked of a tracker without ready pods"
    );

    // once a pod is ready, the same Backup starts
    s.pods_ready(1).await;
    s.reconcile_backup("too-early").await.unwrap();
    let status = s.backup_status("too-early").await;
    assert_eq!(status.phase, BackupPhase::Running);
    assert_eq!(status.message, None);
}

#[tokio::test]
async fn a_tracker_without_a_backup_destination_keeps_the_backup_pending() {
    let s = setup("minimal.yaml", &[("manual", "errors")]).await;
    s.reconcile_tracker().await;
    s.pods_ready(1).await;
    s.reconcile_backup("manual").await.unwrap();
    let status = s.backup_status("manual").await;
    assert_eq!(status.phase, BackupPhase::Pending);
    assert!(
        status.message.unwrap().contains("has no spec.backup"),
        "the user learns what to set"
    );
    let tracker = s.tracker_status().await;
    assert!(
        tracker
            .conditions
            .iter()
            .all(|c| c.type_ != BACKUP_SUCCEEDED),
        "no backup condition without spec.backup"
    );
    assert!(s.engine.backup_requests().is_empty());
}

#[tokio::test]
async fn an_unreachable_engine_keeps_the_phase_and_backs_off() {
    let s = setup("s3-ha.yaml", &[("manual", "errors")]).await;
    s.reconcile_tracker().await;
    s.pods_ready(1).await;
    s.reconcile_backup("manual").await.unwrap();
    let id = s.backup_status("manual").await.backup_id.unwrap();

    s.engine.fail_with(Some(StatusCode::SERVICE_UNAVAILABLE));
    let err = s.reconcile_backup("manual").await.unwrap_err();
    assert!(err.to_string().contains("503"), "{err}");
    let action = backup::error_policy(s.backup("manual").await, &err, Arc::clone(&s.ctx));
    assert_eq!(action, Action::requeue(Duration::from_secs(5)));
    let err = s.reconcile_backup("manual").await.unwrap_err();
    let action = backup::error_policy(s.backup("manual").await, &err, Arc::clone(&s.ctx));
    assert_eq!(action, Action::requeue(Duration::from_secs(10)));
    assert!(
        s.ctx
            .metrics
            .encode()
            .contains("reconcile_errors_total{error=\"engine\"} 2")
    );
    let status = s.backup_status("manual").await;
    assert_eq!(
        (status.phase, status.backup_id.as_deref()),
        (BackupPhase::Running, Some(id.as_str()))
    );
    assert!(status.message.unwrap().contains("503"));

    // the tracker's reconcile does not fail on it, and keeps what it knew
    let before = condition(&s.tracker_status().await.conditions, BACKUP_SUCCEEDED).clone();
    s.reconcile_tracker().await;
    let after = s.tracker_status().await;
    assert_eq!(condition(&after.conditions, BACKUP_SUCCEEDED), &before);
    assert_eq!(condition(&after.conditions, "Degraded").status, "False");

    // the engine is back: the same backup completes, the message is gone
    s.engine.fail_with(None);
    s.engine.finish(&id, None);
    s.reconcile_backup("manual").await.unwrap();
    let status = s.backup_status("manual").await;
    assert_eq!(status.phase, BackupPhase::Succeeded);
    assert_eq!(status.message, None);
    let posts = s
        .engine
        .requests()
        .iter()
        .filter(|r| r.starts_with("POST"))
        .count();
    assert_eq!(posts, 1);
}

#[tokio::test]
async fn a_backup_the_engine_forgot_fails_with_a_reason() {
    let s = setup("s3-ha.yaml", &[("manual", "errors")]).await;
    s.reconcile_tracker().await;
    s.pods_ready(1).await;
    s.reconcile_backup("manual").await.unwrap();
    s.engine.forget();
    let status = s.reconcile_finished_backup("manual").await;
    assert_eq!(status.phase, BackupPhase::Failed);
    assert!(
        status
            .message
            .unwrap()
            .contains("the engine does not know backup 20261124T162000Z-ab12")
    );
}

#[tokio::test]
async fn the_admin_token_from_the_trackers_secret_is_sent() {
    // The stand-in expects another token than the Secret holds: the engine's 401 is shown.
    let s = setup("s3-ha.yaml", &[("manual", "errors")]).await;
    let (_other, url) = EngineStub::start(&"d".repeat(64)).await;
    let mut ctx = Context::new(s.client.clone(), Arc::new(Metrics::default()));
    ctx.admin_url = Some(url);
    let s = Setup {
        ctx: Arc::new(ctx),
        ..s
    };
    s.reconcile_tracker().await;
    s.pods_ready(1).await;
    let err = s.reconcile_backup("manual").await.unwrap_err();
    assert!(err.to_string().contains("401"), "{err}");
    assert_eq!(
        s.backup_status("manual").await.phase,
        BackupPhase::Pending,
        "nothing started"
    );
}

#[tokio::test]
async fn a_backup_whose_tracker_is_deleted_while_it_runs_fails() {
    let s = setup("s3-ha.yaml", &[("manual", "errors")]).await;
    s.reconcile_tracker().await;
    s.pods_ready(1).await;
    s.reconcile_backup("manual").await.unwrap();
    Api::<ErrorTracker>::namespaced(s.client.clone(), &s.namespace)
        .delete("errors", &Default::default())
        .await
        .unwrap();
    // the fake keeps a tracker with finalizers until they are removed: take them off
    let api = Api::<ErrorTracker>::namespaced(s.client.clone(), &s.namespace);
    if api.get_opt("errors").await.unwrap().is_some() {
        let patch = json!({"metadata": {"finalizers": null}});
        api.patch("errors", &PatchParams::default(), &Patch::Merge(&patch))
            .await
            .unwrap();
    }
    assert!(api.get_opt("errors").await.unwrap().is_none());
    let status = s.reconcile_finished_backup("manual").await;
    assert_eq!(status.phase, BackupPhase::Failed);
    assert_eq!(
        status.message.as_deref(),
        Some("ErrorTracker errors was deleted while backup 20261124T162000Z-ab12 ran")
    );
}

#[tokio::test]
async fn in_a_cluster_the_operator_addresses_single_pods_through_the_headless_service() {
    let client = ClientBuilder::new().build().await.unwrap();
    let ctx = Context::new(client, Arc::new(Metrics::default()));
    assert_eq!(
        ctx.admin_base("team-a", "errors", 0),
        "http://errors-0.errors-pods.team-a.svc:8001"
    );
    assert_eq!(
        ctx.admin_base("team-a", "errors", 2),
        "http://errors-2.errors-pods.team-a.svc:8001"
    );
}

#[tokio::test]
async fn a_failed_status_write_after_the_start_does_not_start_a_second_backup() {
    let failed_once = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let seen = Arc::clone(&failed_once);
    let funcs = interceptor::Funcs::new().patch_status(move |ctx| {
        let running = ctx.patch["status"]["phase"] == "Running";
        if ctx.name == "manual" && running && !seen.swap(true, std::sync::atomic::Ordering::SeqCst)
        {
            return Err(kube_fake_client::Error::Conflict("etcd timed out".into()));
        }
        Ok(None)
    });
    let s = setup_with("s3-ha.yaml", &[("manual", "errors")], Some(funcs)).await;
    s.reconcile_tracker().await;
    s.pods_ready(1).await;
    let err = s.reconcile_backup("manual").await.unwrap_err();
    assert!(err.to_string().contains("cannot write status"), "{err}");
    assert!(failed_once.load(std::sync::atomic::Ordering::SeqCst));
    s.reconcile_backup("manual").await.unwrap();
    let status = s.backup_status("manual").await;
    assert_eq!(status.phase, BackupPhase::Running);
    assert_eq!(status.backup_id.as_deref(), Some("20261124T162000Z-ab12"));
    let posts = s
        .engine
        .requests()
        .iter()
        .filter(|r| r.starts_with("POST"))
        .count();
    assert_eq!(posts, 1, "{:?}", s.engine.requests());
}

#[tokio::test]
async fn a_stale_copy_of_a_running_backup_does_not_start_another() {
    // A watch event can lag behind the operator's own status write: the next reconcile may
    // see the Backup as it was before the engine gave it an id.
    let s = setup("s3-ha.yaml", &[("manual", "errors")]).await;
    s.reconcile_tracker().await;
    s.pods_ready(1).await;
    let before = s.backup("manual").await;
    s.reconcile_backup("manual").await.unwrap();
    backup::reconcile(before, Arc::clone(&s.ctx)).await.unwrap();
    let posts = s
        .engine
        .requests()
        .iter()
        .filter(|r| r.starts_with("POST"))
        .count();
    assert_eq!(posts, 1, "{:?}", s.engine.requests());
    let status = s.backup_status("manual").await;
    assert_eq!(status.backup_id.as_deref(), Some("20261124T162000Z-ab12"));
}
