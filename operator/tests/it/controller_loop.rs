//! Rung 6: the controller loop. The real `faultline_operator::run` (kube's `Controller` with
//! its watches on ErrorTrackers, StatefulSets and Secrets) runs against the small API server in
//! `apiserver.rs` on 127.0.0.1, over HTTP. It shows that creating a tracker brings up its
//! objects, that editing the spec rolls the StatefulSet (new config checksum in the pod
//! template), that the StatefulSet turning ready makes the tracker Ready, and that deleting the
//! tracker runs the cleanup (volumes deleted, finalizer removed, owned objects collected).
//! Two replicas elected through a Lease on the same server: only the holder reconciles. And
//! the shipped binary (`faultline-operator run` with a kubeconfig) does the same and exits
//! cleanly on SIGTERM, releasing its Lease. A `Backup` created by a user is carried out through
//! the engine's admin API (an in-process stand-in) and its tracker then reports it.
//! This is the closest rung to a cluster; no kube-apiserver runs here.

use std::sync::Arc;

use faultline_operator::builders::CONFIG_CHECKSUM_ANNOTATION;
use faultline_operator::leader::LeaseLock;
use faultline_operator::metrics::Metrics;
use faultline_operator::{ErrorTracker, FIELD_MANAGER, FINALIZER};
use kube::api::{Api, DeleteParams, Patch, PatchParams, PostParams};
use serde_json::{Value, json};

use crate::apiserver::ApiServer;
use crate::common::tracker;

const TRACKERS: &str = "apis/faultline.dev/v1alpha1/errortrackers";
const STATEFULSETS: &str = "apis/apps/v1/statefulsets";
const PVCS: &str = "api/v1/persistentvolumeclaims";

fn checksum(server: &ApiServer) -> Option<String> {
    let sts = server.get(STATEFULSETS, "default", "errors")?;
    sts["spec"]["template"]["metadata"]["annotations"][CONFIG_CHECKSUM_ANNOTATION]
        .as_str()
        .map(str::to_owned)
}

fn tracker_status(server: &ApiServer) -> Value {
    server
        .get(TRACKERS, "default", "errors")
        .map(|t| t["status"].clone())
        .unwrap_or(Value::Null)
}

fn condition(server: &ApiServer, type_: &str) -> Option<(String, i64)> {
    let status = tracker_status(server);
    let c = status["conditions"]
        .as_array()?
        .iter()
        .find(|c| c["type"] == type_)?
        .clone();
    Some((
        c["status"].as_str()?.to_owned(),
        c["observedGeneration"].as_i64()?,
    ))
}

#[tokio::test]
async fn controller_rolls_on_spec_edits_and_cleans_up_on_delete() {
    faultline_operator::install_crypto_provider();
    let (server, url) = ApiServer::start().await;
    let client = kube::Client::try_from(kube::Config::new(url.parse().unwrap())).unwrap();
    // Pods' volumes, as the StatefulSet controller would have made them, plus unrelated ones.
    let labels = json!({"app.kubernetes.io/name": "faultline", "app.kubernetes.io/instance": "errors",
                        "app.kubernetes.io/managed-by": "faultline-operator"});
    for name in ["data-errors-0", "objects-errors-0"] {
        server.seed(PVCS, json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                                 "metadata": {"name": name, "namespace": "default", "labels": labels}}));
    }
    server.seed(
        PVCS,
        json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim",
                             "metadata": {"name": "someone-elses", "namespace": "default"}}),
    );
    // Other trackers exist, so the initial list of ErrorTrackers spans several pages.
    for other in ["alpha", "beta", "gamma"] {
        server.seed(TRACKERS, json!({"apiVersion": "faultline.dev/v1alpha1", "kind": "ErrorTracker",
            "metadata": {"name": other, "namespace": "elsewhere", "uid": format!("uid-{other}"), "generation": 1,
                         "finalizers": [FINALIZER]},
            "spec": serde_json::to_value(faultline_operator::ErrorTrackerSpec::default()).unwrap()}));
    }

    let mut new = tracker("minimal.yaml");
    new.metadata.uid = None;
    new.metadata.generation = None;
    new.spec.storage.delete_volumes_on_delete = true;
    let trackers: Api<ErrorTracker> = Api::namespaced(client.clone(), "default");
    trackers.create(&PostParams::default(), &new).await.unwrap();

    let metrics = Arc::new(Metrics::default());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let controller = tokio::spawn(faultline_operator::run(
        client.clone(),
        Arc::clone(&metrics),
        async move {
            let _ = stopped.await;
        },
    ));

    // Creation: finalizer, objects, status for generation 1.
    server
        .wait_until("the tracker is reconciled", |s| {
            checksum(s).is_some() && condition(s, "Progressing").is_some_and(|(_, g)| g == 1)
        })
        .await;
    let stored = server.get(TRACKERS, "default", "errors").unwrap();
    assert_eq!(stored["metadata"]["finalizers"], json!([FINALIZER]));
    assert_eq!(
        condition(&server, "Ready"),
        Some(("False".into(), 1)),
        "no pod is ready yet"
    );
    assert!(
        server
            .get("api/v1/secrets", "default", "errors-dsn-web")
            .is_some()
    );
    let first = checksum(&server).unwrap();
    let sts_generation =
        server.get(STATEFULSETS, "default", "errors").unwrap()["metadata"]["generation"]
            .as_i64()
            .unwrap();

    // Editing the spec rolls the StatefulSet.
    let edit = json!({"spec": {"retention": {"defaultDays": 7}}});
    let edited = trackers
        .patch("errors", &PatchParams::default(), &Patch::Merge(&edit))
        .await
        .unwrap();
    assert_eq!(edited.metadata.generation, Some(2));
    server
        .wait_until("the StatefulSet has the new config", |s| {
            checksum(s).is_some_and(|c| c != first)
                && condition(s, "Progressing").is_some_and(|(_, g)| g == 2)
        })
        .await;
    let sts = server.get(STATEFULSETS, "default", "errors").unwrap();
    assert!(
        sts["metadata"]["generation"].as_i64().unwrap() > sts_generation,
        "the pod template changed"
    );
    let config = server
        .get("api/v1/configmaps", "default", "errors-config")
        .unwrap();
    assert!(
        config["data"]["faultline.toml"]
            .as_str()
            .unwrap()
            .contains("default_days = 7")
    );

    // The StatefulSet controller reports the pod ready: the owned-object watch triggers a
    // reconcile and the tracker turns Ready.
    let sts_api: Api<k8s_openapi::api::apps::v1::StatefulSet> =
        Api::namespaced(client.clone(), "default");
    let generation = sts["metadata"]["generation"].clone();
    let ready = json!({"status": {"replicas": 1, "readyReplicas": 1, "updatedReplicas": 1, "observedGeneration": generation}});
    sts_api
        .patch_status("errors", &PatchParams::default(), &Patch::Merge(&ready))
        .await
        .unwrap();
    server
        .wait_until("the tracker is Ready", |s| {
            condition(s, "Ready").is_some_and(|(st, g)| st == "True" && g == 2)
        })
        .await;
    assert_eq!(tracker_status(&server)["readyReplicas"], 1);

    // Deleting the tracker runs the cleanup, then the API server collects the owned objects.
    trackers
        .delete("errors", &DeleteParams::default())
        .await
        .unwrap();
    server
        .wait_until("the tracker is gone", |s| {
            s.get(TRACKERS, "default", "errors").is_none()
        })
        .await;
    for pvc in ["data-errors-0", "objects-errors-0"] {
        assert!(
            server.get(PVCS, "default", pvc).is_none(),
            "{pvc} was not deleted"
        );
    }
    assert!(
        server.get(PVCS, "default", "someone-elses").is_some(),
        "an unrelated volume was deleted"
    );
    assert!(server.get(STATEFULSETS, "default", "errors").is_none());
    assert!(
        server
            .get("api/v1/secrets", "default", "errors-dsn-web")
            .is_none()
    );

    stop.send(()).unwrap();
    controller.await.unwrap();

    let stats = server.stats();
    assert!(stats.continued_lists > 0, "no paginated list: {stats:?}");
    assert!(stats.watches >= 3 && stats.bookmarks > 0, "{stats:?}");
    assert!(
        stats.json_patches >= 2,
        "finalizer added and removed: {stats:?}"
    );
    assert!(stats.status_applies >= 3, "{stats:?}");
    assert_eq!(stats.field_managers, [FIELD_MANAGER], "one field manager");
    assert!(
        metrics
            .encode()
            .contains("faultline_operator_cleanups_total 1")
    );
}

#[tokio::test]
async fn of_two_replicas_only_the_lease_holder_reconciles() {
    faultline_operator::install_crypto_provider();
    let (server, url) = ApiServer::start().await;
    let client = kube::Client::try_from(kube::Config::new(url.parse().unwrap())).unwrap();
    let mut new = tracker("minimal.yaml");
    new.metadata.uid = None;
    new.metadata.generation = None;
    Api::<ErrorTracker>::namespaced(client.clone(), "default")
        .create(&PostParams::default(), &new)
        .await
        .unwrap();

    let (stop, shutdown) = tokio::sync::watch::channel(false);
    let mut replicas = Vec::new();
    for identity in ["operator-a", "operator-b"] {
        let metrics = Arc::new(Metrics::default());
        let lock = LeaseLock::new(client.clone(), "ops", "faultline-operator", identity);
        let ctx = faultline_operator::Context::new(client.clone(), Arc::clone(&metrics));
        let task = tokio::spawn(faultline_operator::run_elected(ctx, lock, shutdown.clone()));
        replicas.push((identity, metrics, task));
    }
    server
        .wait_until("the tracker is reconciled", |s| checksum(s).is_some())
        .await;
    let lease = server
        .get(
            "apis/coordination.k8s.io/v1/leases",
            "ops",
            "faultline-operator",
        )
        .unwrap();
    let holder = lease["spec"]["holderIdentity"].as_str().unwrap().to_owned();
    for (identity, metrics, _) in &replicas {
        let text = metrics.encode();
        let reconciled = !text
            .lines()
            .any(|l| l == "faultline_operator_reconciles_total 0");
        let leader = text.lines().any(|l| l == "faultline_operator_leader 1");
        assert_eq!(
            (reconciled, leader),
            (*identity == holder, *identity == holder),
            "{identity}: {text}"
        );
    }
    stop.send(true).unwrap();
    for (identity, _, task) in replicas {
        assert!(
            task.await.unwrap().is_ok(),
            "{identity} did not stop cleanly"
        );
    }
}

#[tokio::test]
async fn the_binary_runs_the_controller_and_stops_on_sigterm() {
    let (server, url) = ApiServer::start().await;
    let dir = tempfile::tempdir().unwrap();
    let kubeconfig = dir.path().join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        format!(
            "apiVersion: v1\nkind: Config\ncurrent-context: loop\n\
             clusters: [{{name: loop, cluster: {{server: \"{url}\"}}}}]\n\
             users: [{{name: nobody, user: {{}}}}]\n\
             contexts: [{{name: loop, context: {{cluster: loop, user: nobody, namespace: default}}}}]\n"
        ),
    )
    .unwrap();
    let mut tracker = serde_json::to_value(tracker("minimal.yaml")).unwrap();
    tracker["metadata"]["uid"] = json!("uid-errors");
    server.seed(TRACKERS, tracker);

    let child = std::process::Command::new(env!("CARGO_BIN_EXE_faultline-operator"))
        .arg("run")
        .env("KUBECONFIG", &kubeconfig)
        .env("FAULTLINE_OPERATOR_METRICS_ADDR", "127.0.0.1:0")
        .env("FAULTLINE_OPERATOR_NAMESPACE", "ops")
        .env("POD_NAME", "operator-0")
        .env("RUST_LOG", "warn")
        .spawn()
        .unwrap();
    let mut guard = KillOnDrop(Some(child));
    server
        .wait_until("the binary reconciled the tracker", |s| {
            checksum(s).is_some()
        })
        .await;
    let lease = server
        .get(
            "apis/coordination.k8s.io/v1/leases",
            "ops",
            "faultline-operator",
        )
        .unwrap();
    assert_eq!(lease["spec"]["holderIdentity"], "operator-0");

    let pid = guard.0.as_ref().unwrap().id().to_string();
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(killed.success());
    // Poll for the exit (a hang guard of a minute; the guard kills the process on failure).
    let mut status = None;
    for _ in 0..600 {
        status = guard.0.as_mut().unwrap().try_wait().unwrap();
        if status.is_some() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let status = status.expect("the operator did not exit within a minute of SIGTERM");
    guard.0 = None;
    assert!(status.success(), "exit status {status:?}");
    let lease = server
        .get(
            "apis/coordination.k8s.io/v1/leases",
            "ops",
            "faultline-operator",
        )
        .unwrap();
    assert!(
        lease["spec"]["holderIdentity"].is_null(),
        "the lease was released: {lease}"
    );
}

/// Kills the operator process if the test fails before stopping it.
struct KillOnDrop(Option<std::process::Child>);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Some(child) = &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

const BACKUPS: &str = "apis/faultline.dev/v1alpha1/backups";

fn backup_phase(server: &ApiServer) -> Option<String> {
    let backup = server.get(BACKUPS, "team-a", "before-upgrade")?;
    backup["status"]["phase"].as_str().map(str::to_owned)
}

#[tokio::test]
async fn a_backup_resource_is_carried_out_and_its_tracker_reports_it() {
    // `engine_stub` stands in for the engine's admin API: no engine runs in these tests.
    faultline_operator::install_crypto_provider();
    let (server, url) = ApiServer::start().await;
    let client = kube::Client::try_from(kube::Config::new(url.parse().unwrap())).unwrap();
    let token = "e".repeat(64);
    let labels = faultline_operator::builders::labels("errors", "admin");
    server.seed(
        "api/v1/secrets",
        json!({"apiVersion": "v1", "kind": "Secret",
               "metadata": {"name": "errors-admin-token", "namespace": "team-a", "labels": labels},
               "data": {"token": base64_of(&token)}}),
    );
    let (engine, engine_url) = crate::engine_stub::EngineStub::start(&token).await;

    let mut new = tracker("s3-ha.yaml");
    new.metadata.uid = None;
    new.metadata.generation = None;
    let trackers: Api<ErrorTracker> = Api::namespaced(client.clone(), "team-a");
    trackers.create(&PostParams::default(), &new).await.unwrap();

    let mut ctx = faultline_operator::Context::new(client.clone(), Arc::new(Metrics::default()));
    ctx.admin_url = Some(engine_url);
    ctx.backup_intervals = faultline_operator::backup::Intervals {
        poll: std::time::Duration::from_millis(100),
        wait: std::time::Duration::from_millis(100),
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let controller = tokio::spawn(faultline_operator::controller::run_with(ctx, async move {
        let _ = stopped.await;
    }));

    // the tracker's pods come up
    server
        .wait_until("the tracker is reconciled", |s| {
            s.get(STATEFULSETS, "team-a", "errors").is_some()
        })
        .await;
    let sts_api: Api<k8s_openapi::api::apps::v1::StatefulSet> =
        Api::namespaced(client.clone(), "team-a");
    let ready = json!({"status": {"replicas": 3, "readyReplicas": 3}});
    sts_api
        .patch_status("errors", &PatchParams::default(), &Patch::Merge(&ready))
        .await
        .unwrap();

    // a user asks for a backup
    let backups: Api<faultline_operator::Backup> = Api::namespaced(client.clone(), "team-a");
    let mut backup = faultline_operator::Backup::new(
        "before-upgrade",
        faultline_operator::crd::BackupSpec {
            tracker: "errors".into(),
        },
    );
    backup.metadata.namespace = Some("team-a".into());
    backups
        .create(&PostParams::default(), &backup)
        .await
        .unwrap();
    server
        .wait_until("the engine runs the backup", |s| {
            backup_phase(s).as_deref() == Some("Running")
        })
        .await;
    let id = server.get(BACKUPS, "team-a", "before-upgrade").unwrap()["status"]["backupId"]
        .as_str()
        .unwrap()
        .to_owned();
    engine.finish(&id, None);
    server
        .wait_until("the backup succeeded", |s| {
            backup_phase(s).as_deref() == Some("Succeeded")
        })
        .await;
    // the finished Backup wakes its tracker up, which lists the engine's backups
    server
        .wait_until("the tracker shows the backup", |s| {
            let status = s.get(TRACKERS, "team-a", "errors").unwrap()["status"].clone();
            status["lastBackup"]["id"] == id.as_str()
        })
        .await;
    let status = server.get(TRACKERS, "team-a", "errors").unwrap()["status"].clone();
    let cond = status["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "BackupSucceeded")
        .unwrap()
        .clone();
    assert_eq!(cond["status"], "True");
    let posts = engine
        .requests()
        .iter()
        .filter(|r| r.starts_with("POST"))
        .count();
    assert_eq!(posts, 1, "one backup for one Backup");

    stop.send(()).unwrap();
    controller.await.unwrap();
}

fn base64_of(text: &str) -> String {
    use k8s_openapi::ByteString;
    serde_json::to_value(ByteString(text.as_bytes().to_vec()))
        .unwrap()
        .as_str()
        .unwrap()
        .to_owned()
}
