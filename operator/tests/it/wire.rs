//! Rung 4: the wire contract. Each test runs `reconcile` (and `error_policy`) against a
//! `tower-test` mock standing in for the API server and checks the exact requests: the
//! finalizer JSON patch, server-side apply with the field manager and `force`, deletes of
//! orphans, and the status written with `force` on the status subresource. Scenarios: first
//! creation, replicas changed, a project added and one removed, deletion with the finalizer,
//! and an API error that requeues with backoff and counts a metric; a Backup reads its tracker
//! and the admin token and applies its status. No API server runs here.

use std::sync::Arc;
use std::time::Duration;

use faultline_operator::metrics::Metrics;
use faultline_operator::tracker::{error_policy, reconcile};
use faultline_operator::{ErrorTracker, FINALIZER};
use k8s_openapi::jiff::Timestamp;
use kube::runtime::controller::Action;
use serde_json::{Value, json};

use crate::common::tracker;
use crate::mock_api::{self, Recorded, Script};

const APPLY: &str = "application/apply-patch+yaml";

fn with_finalizer(mut tracker: ErrorTracker) -> ErrorTracker {
    tracker.metadata.finalizers = Some(vec![FINALIZER.to_owned()]);
    tracker
}

fn lines(recorded: &[Recorded]) -> Vec<String> {
    recorded.iter().map(Recorded::line).collect()
}

fn applied<'a>(recorded: &'a [Recorded], kind: &str, name: &str) -> &'a Value {
    &recorded
        .iter()
        .find(|r| {
            r.method == "PATCH" && r.body["kind"] == kind && r.body["metadata"]["name"] == name
        })
        .unwrap_or_else(|| panic!("no apply of {kind} {name}"))
        .body
}

fn status_patch(recorded: &[Recorded]) -> &Recorded {
    recorded
        .iter()
        .find(|r| r.uri.contains("/status?"))
        .expect("a status patch")
}

fn secret_key(secret: &Value) -> String {
    let encoded = secret["data"]["key"].as_str().unwrap();
    let bytes: Vec<u8> = serde_json::from_value(json!(encoded))
        .map(|k: k8s_openapi::ByteString| k.0)
        .unwrap();
    String::from_utf8(bytes).unwrap()
}

fn stored_secret(tracker: &str, project: &str, key: &str) -> Value {
    serde_json::to_value(k8s_openapi::api::core::v1::Secret {
        metadata: kube::api::ObjectMeta {
            name: Some(format!("{tracker}-dsn-{project}")),
            namespace: Some("default".into()),
            ..Default::default()
        },
        data: Some(
            [(
                "key".to_owned(),
                k8s_openapi::ByteString(key.as_bytes().to_vec()),
            )]
            .into(),
        ),
        ..Default::default()
    })
    .unwrap()
}

#[tokio::test]
async fn first_creation_adds_the_finalizer_then_applies_everything() {
    let tracker = tracker("minimal.yaml");
    let metrics = Arc::new(Metrics::default());
    let (action, first) = mock_api::run(&tracker, Script::default(), Arc::clone(&metrics), |ctx| {
        reconcile(Arc::new(tracker.clone()), ctx)
    })
    .await;
    assert_eq!(action.unwrap(), Action::await_change());
    assert_eq!(first.len(), 1, "{:#?}", lines(&first));
    assert_eq!(first[0].content_type, "application/json-patch+json");
    assert_eq!(
        first[0].body,
        json!([{"op": "test", "path": "/metadata/finalizers", "value": null},
               {"op": "add", "path": "/metadata/finalizers", "value": [FINALIZER]}])
    );

    let tracker = with_finalizer(tracker);
    let script = Script {
        stateful_set_status: Some(
            json!({"replicas": 1, "readyReplicas": 0, "observedGeneration": 1}),
        ),
        ..Script::default()
    };
    let (action, second) = mock_api::run(&tracker, script, metrics, |ctx| {
        reconcile(Arc::new(tracker.clone()), ctx)
    })
    .await;
    assert_eq!(
        action.unwrap(),
        Action::requeue(Duration::from_secs(15)),
        "not ready yet: look again soon"
    );
    insta::assert_yaml_snapshot!("first_creation", lines(&second));
    for r in second.iter().filter(|r| r.method == "PATCH") {
        assert_eq!(r.content_type, APPLY, "{}", r.line());
        assert!(
            r.uri.contains("fieldManager=faultline-operator") && r.uri.contains("force=true"),
            "{}",
            r.line()
        );
    }
    let key = secret_key(applied(&second, "Secret", "errors-dsn-web"));
    assert_eq!(key.len(), 32, "a fresh key is generated");
    let token = applied(&second, "Secret", "errors-admin-token")["data"]["token"]
        .as_str()
        .unwrap();
    assert!(!token.is_empty(), "an admin token is generated");
    let status = &status_patch(&second).body["status"];
    assert_eq!(status["observedGeneration"], 1);
    assert_eq!(
        status["dsnSecrets"],
        json!([{"project": "web", "secretName": "errors-dsn-web"}])
    );
    assert_eq!(status["ingestUrl"], "http://errors.default.svc:8000");
    assert_eq!(status["adminTokenSecret"], "errors-admin-token");
    let ready = status["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "Ready")
        .unwrap();
    assert_eq!(
        (
            ready["status"].as_str(),
            ready["observedGeneration"].as_i64()
        ),
        (Some("False"), Some(1))
    );
}

#[tokio::test]
async fn replicas_change_is_applied_and_keys_are_kept() {
    let mut tracker = with_finalizer(tracker("s3-ha.yaml"));
    tracker.metadata.namespace = Some("default".into());
    tracker.spec.replicas = 5;
    tracker.metadata.generation = Some(2);
    let shop_key = "0123456789abcdef0123456789abcdef";
    let api_key = "fedcba9876543210fedcba9876543210";
    let script = Script {
        lists: [(
            "secrets",
            vec![
                stored_secret("errors", "shop", shop_key),
                stored_secret("errors", "api", api_key),
            ],
        )]
        .into(),
        stateful_set_status: Some(
            json!({"replicas": 5, "readyReplicas": 5, "updatedReplicas": 5, "observedGeneration": 1}),
        ),
        ..Script::default()
    };
    let (action, recorded) = mock_api::run(&tracker, script, Arc::new(Metrics::default()), |ctx| {
        reconcile(Arc::new(tracker.clone()), ctx)
    })
    .await;
    assert_eq!(action.unwrap(), Action::requeue(Duration::from_secs(300)));
    insta::assert_yaml_snapshot!("replicas_changed", lines(&recorded));
    assert_eq!(
        applied(&recorded, "StatefulSet", "errors")["spec"]["replicas"],
        5
    );
    assert_eq!(
        secret_key(applied(&recorded, "Secret", "errors-dsn-shop")),
        shop_key
    );
    assert_eq!(
        secret_key(applied(&recorded, "Secret", "errors-dsn-api")),
        api_key
    );
    let config = applied(&recorded, "ConfigMap", "errors-config")["data"]["faultline.toml"]
        .as_str()
        .unwrap();
    assert!(
        config.contains(shop_key) && config.contains(api_key),
        "{config}"
    );
    let status = &status_patch(&recorded).body["status"];
    assert_eq!(status["readyReplicas"], 5);
    assert_eq!(status["observedGeneration"], 2);
    assert!(
        recorded.iter().all(|r| r.method != "DELETE"),
        "nothing to delete"
    );
}

fn secret_value(secret: &Value, key: &str) -> Option<String> {
    let encoded = secret["data"][key].as_str()?;
    let bytes: Vec<u8> = serde_json::from_value(json!(encoded))
        .map(|k: k8s_openapi::ByteString| k.0)
        .ok()?;
    String::from_utf8(bytes).ok()
}

#[tokio::test]
async fn listed_keys_keep_the_existing_key_as_default_and_add_new_ones() {
    use faultline_operator::crd::ProjectKeySpec;
    let mut tracker = with_finalizer(tracker("s3-ha.yaml"));
    tracker.metadata.namespace = Some("default".into());
    let shop = tracker
        .spec
        .projects
        .iter_mut()
        .find(|p| p.name == "shop")
        .unwrap();
    shop.keys = ["default", "v2"]
        .into_iter()
        .map(|name| ProjectKeySpec {
            name: name.into(),
            enabled: name == "v2",
            rate_limit: None,
        })
        .collect();
    let shop_key = "0123456789abcdef0123456789abcdef";
    let api_key = "fedcba9876543210fedcba9876543210";
    let script = Script {
        lists: [(
            "secrets",
            vec![
                stored_secret("errors", "shop", shop_key),
                stored_secret("errors", "api", api_key),
            ],
        )]
        .into(),
        ..Script::default()
    };
    let (_, recorded) = mock_api::run(&tracker, script, Arc::new(Metrics::default()), |ctx| {
        reconcile(Arc::new(tracker.clone()), ctx)
    })
    .await;
    let secret = applied(&recorded, "Secret", "errors-dsn-shop");
    assert_eq!(
        secret_value(secret, "key-default").as_deref(),
        Some(shop_key)
    );
    let v2 = secret_value(secret, "key-v2").expect("a generated v2 key");
    assert!(v2.len() == 32 && v2 != shop_key, "{v2}");
    // Applications follow the first enabled key; the disabled one has no DSN.
    assert_eq!(secret_key(secret), v2);
    assert!(secret_value(secret, "dsn-v2").is_some());
    assert!(secret_value(secret, "dsn-default").is_none());
    let config = applied(&recorded, "ConfigMap", "errors-config")["data"]["faultline.toml"]
        .as_str()
        .unwrap();
    let config = faultline_config::Config::parse(config).unwrap();
    let shop = config.projects.iter().find(|p| p.name == "shop").unwrap();
    let keys: Vec<_> = shop
        .keys
        .iter()
        .map(|k| (k.public.as_str(), k.enabled))
        .collect();
    assert_eq!(keys, [(shop_key, false), (v2.as_str(), true)]);
    assert_eq!(
        secret_key(applied(&recorded, "Secret", "errors-dsn-api")),
        api_key
    );
}

#[tokio::test]
async fn project_added_and_removed() {
    let tracker = with_finalizer(tracker("minimal.yaml"));
    let mut tracker = tracker;
    tracker
        .spec
        .projects
        .push(faultline_operator::crd::ProjectSpec {
            name: "mobile".into(),
            id: None,
            rate_limit: None,
            quotas: Vec::new(),
            retention_days: None,
            keys: Vec::new(),
            grouping_enhancements: None,
            fingerprinting_rules: None,
            privacy: None,
        });
    let web_key = "0123456789abcdef0123456789abcdef";
    let script = Script {
        lists: [(
            "secrets",
            vec![
                stored_secret("errors", "web", web_key),
                stored_secret("errors", "legacy", web_key),
            ],
        )]
        .into(),
        ..Script::default()
    };
    let (action, recorded) = mock_api::run(&tracker, script, Arc::new(Metrics::default()), |ctx| {
        reconcile(Arc::new(tracker.clone()), ctx)
    })
    .await;
    action.unwrap();
    insta::assert_yaml_snapshot!("project_added_and_removed", lines(&recorded));
    assert_eq!(
        secret_key(applied(&recorded, "Secret", "errors-dsn-web")),
        web_key
    );
    let mobile = secret_key(applied(&recorded, "Secret", "errors-dsn-mobile"));
    assert!(mobile.len() == 32 && mobile != web_key);
    let deletes: Vec<_> = recorded
        .iter()
        .filter(|r| r.method == "DELETE")
        .map(Recorded::line)
        .collect();
    assert_eq!(
        deletes,
        ["DELETE /api/v1/namespaces/default/secrets/errors-dsn-legacy? [application/json]"]
    );
}

#[tokio::test]
async fn deletion_runs_cleanup_then_removes_the_finalizer() {
    let mut tracker = with_finalizer(tracker("minimal.yaml"));
    tracker.spec.storage.delete_volumes_on_delete = true;
    tracker.metadata.deletion_timestamp = Some(
        k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(Timestamp::now()),
    );
    let pvc = |name: &str| json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": name, "namespace": "default"}});
    let script = Script {
        lists: [(
            "persistentvolumeclaims",
            vec![pvc("data-errors-0"), pvc("objects-errors-0")],
        )]
        .into(),
        ..Script::default()
    };
    let metrics = Arc::new(Metrics::default());
    let (action, recorded) = mock_api::run(&tracker, script, Arc::clone(&metrics), |ctx| {
        reconcile(Arc::new(tracker.clone()), ctx)
    })
    .await;
    assert_eq!(action.unwrap(), Action::await_change());
    insta::assert_yaml_snapshot!("deletion", lines(&recorded));
    let last = recorded.last().unwrap();
    assert_eq!(last.content_type, "application/json-patch+json");
    assert_eq!(
        last.body,
        json!([{"op": "test", "path": "/metadata/finalizers/0", "value": FINALIZER},
               {"op": "remove", "path": "/metadata/finalizers/0"}])
    );
    assert!(
        metrics
            .encode()
            .contains("faultline_operator_cleanups_total 1")
    );
}

#[tokio::test]
async fn api_error_marks_degraded_requeues_with_backoff_and_counts() {
    let tracker = with_finalizer(tracker("minimal.yaml"));
    let metrics = Arc::new(Metrics::default());
    let script = Script {
        fail: Some("PATCH /apis/apps/v1/namespaces/default/statefulsets/errors".into()),
        ..Script::default()
    };
    let shared = Arc::new(tracker.clone());
    let (actions, recorded) =
        mock_api::run(&tracker, script, Arc::clone(&metrics), |ctx| async move {
            let mut actions = Vec::new();
            for _ in 0..3 {
                let err = reconcile(Arc::clone(&shared), Arc::clone(&ctx))
                    .await
                    .unwrap_err();
                assert!(err.to_string().contains("StatefulSet errors"), "{err}");
                actions.push(error_policy(Arc::clone(&shared), &err, Arc::clone(&ctx)));
            }
            actions
        })
        .await;
    assert_eq!(
        actions,
        [5, 10, 20].map(|s| Action::requeue(Duration::from_secs(s))),
        "exponential backoff"
    );
    let text = metrics.encode();
    assert!(
        text.contains("faultline_operator_reconcile_errors_total{error=\"apply\"} 3"),
        "{text}"
    );
    assert!(
        text.contains("faultline_operator_reconciles_total 3"),
        "{text}"
    );
    let status = &status_patch(&recorded).body["status"];
    let degraded = status["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "Degraded")
        .unwrap();
    assert_eq!(degraded["status"], "True");
    assert_eq!(degraded["reason"], "ReconcileFailed");
    assert!(
        degraded["message"]
            .as_str()
            .unwrap()
            .contains("etcdserver: request timed out")
    );
    // nothing after the failed StatefulSet is applied
    assert!(
        recorded
            .iter()
            .all(|r| r.body["kind"] != "PodDisruptionBudget")
    );
}

#[tokio::test]
async fn a_backup_reads_its_tracker_and_token_then_applies_its_status() {
    // `engine_stub` stands in for the engine's admin API (no engine runs in these tests).
    let mut tracker = tracker("s3-ha.yaml");
    tracker.status = Some(faultline_operator::ErrorTrackerStatus {
        ready_replicas: 1,
        ..Default::default()
    });
    let token = "c".repeat(64);
    let (engine, url) = crate::engine_stub::EngineStub::start(&token).await;
    let mut backup = faultline_operator::Backup::new(
        "before-upgrade",
        faultline_operator::crd::BackupSpec {
            tracker: "errors".into(),
        },
    );
    backup.metadata.namespace = Some("team-a".into());
    backup.metadata.generation = Some(1);
    let encoded =
        serde_json::to_value(k8s_openapi::ByteString(token.clone().into_bytes())).unwrap();
    let secret = json!({"apiVersion": "v1", "kind": "Secret",
                        "metadata": {"name": "errors-admin-token", "namespace": "team-a"},
                        "data": {"token": encoded}});
    let script = Script {
        lists: [("secrets", vec![secret])].into(),
        backup: Some(serde_json::to_value(&backup).unwrap()),
        admin_url: Some(url),
        ..Script::default()
    };
    let backup = Arc::new(backup);
    let (action, recorded) = mock_api::run(&tracker, script, Arc::new(Metrics::default()), |ctx| {
        faultline_operator::backup::reconcile(Arc::clone(&backup), ctx)
    })
    .await;
    assert_eq!(action.unwrap(), Action::requeue(Duration::from_secs(10)));
    assert_eq!(
        lines(&recorded),
        [
            "GET /apis/faultline.dev/v1alpha1/namespaces/team-a/errortrackers/errors",
            "GET /api/v1/namespaces/team-a/secrets?&labelSelector=app.kubernetes.io/name=faultline,app.kubernetes.io/instance=errors,app.kubernetes.io/managed-by=faultline-operator",
            "PATCH /apis/faultline.dev/v1alpha1/namespaces/team-a/backups/before-upgrade/status?&force=true&fieldManager=faultline-operator [application/apply-patch+yaml]",
        ]
    );
    let status = &status_patch(&recorded).body;
    assert_eq!(status["apiVersion"], "faultline.dev/v1alpha1");
    assert_eq!(status["kind"], "Backup");
    assert_eq!(status["status"]["phase"], "Running");
    assert_eq!(status["status"]["backupId"], "20261124T162000Z-ab12");
    assert_eq!(
        status["status"]["message"],
        Value::Null,
        "written as null: clears an old message"
    );
    assert_eq!(status["status"]["conditions"][0]["observedGeneration"], 1);
    assert_eq!(engine.requests(), ["POST /api/0/backups"]);
}

#[tokio::test]
async fn a_project_reads_its_tracker_namespace_and_claims_then_registers_and_writes_its_secret() {
    let token = "c".repeat(64);
    let (engine, url) = crate::engine_stub::EngineStub::start(&token).await;
    let mut tracker = tracker("minimal.yaml");
    tracker.metadata.namespace = Some("platform".into());
    tracker.spec.project_namespace_selector = Some(Default::default());
    // the figures the tracker's reconciler got from the engine
    tracker.status = Some(
        serde_json::from_value(json!({"projects": [
            {"name": "checkout", "organization": "other-team", "eventsLastHour": 99},
            {"name": "checkout", "organization": "shop", "eventsLastHour": 7,
             "lastEventSeen": "2026-12-05T17:59:01Z"}
        ]}))
        .unwrap(),
    );
    let mut project: faultline_operator::FaultlineProject = serde_json::from_value(json!({
        "apiVersion": "faultline.dev/v1alpha1", "kind": "FaultlineProject",
        "metadata": {"name": "checkout", "namespace": "shop", "uid": "uid-checkout",
                     "generation": 2, "creationTimestamp": "2026-01-01T00:00:00Z",
                     "finalizers": [faultline_operator::PROJECT_FINALIZER]},
        "spec": {"tracker": "platform/errors", "platform": "python"}
    }))
    .unwrap();
    let project_json = serde_json::to_value(&project).unwrap();
    let encoded = serde_json::to_value(k8s_openapi::ByteString(token.into_bytes())).unwrap();
    let secret = json!({"apiVersion": "v1", "kind": "Secret",
                        "metadata": {"name": "errors-admin-token", "namespace": "platform"},
                        "data": {"token": encoded}});
    let script = Script {
        lists: [
            ("secrets", vec![secret]),
            ("faultlineprojects", vec![project_json.clone()]),
        ]
        .into(),
        objects: [(
            "/api/v1/namespaces/shop".to_owned(),
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "shop"}}),
        )]
        .into(),
        project: Some(project_json),
        admin_url: Some(url),
        ..Script::default()
    };
    project.metadata.namespace = Some("shop".into());
    let project = Arc::new(project);
    let (action, recorded) = mock_api::run(&tracker, script, Arc::new(Metrics::default()), |ctx| {
        faultline_operator::project::reconcile(Arc::clone(&project), ctx)
    })
    .await;
    assert_eq!(
        action.unwrap(),
        Action::requeue(faultline_operator::project::REGISTERED_RETRY)
    );
    let lines = lines(&recorded);
    let managed = "app.kubernetes.io/name=faultline,app.kubernetes.io/instance=errors,app.kubernetes.io/managed-by=faultline-operator";
    assert_eq!(
        lines[..7],
        [
            "GET /apis/faultline.dev/v1alpha1/namespaces/platform/errortrackers/errors".to_owned(),
            "GET /api/v1/namespaces/shop".to_owned(),
            "GET /apis/faultline.dev/v1alpha1/faultlineprojects?".to_owned(),
            format!("GET /api/v1/namespaces/platform/secrets?&labelSelector={managed}"),
            "GET /api/v1/namespaces/shop/secrets/checkout-dsn".to_owned(),
            "PATCH /api/v1/namespaces/shop/secrets/checkout-dsn?&force=true&fieldManager=faultline-operator [application/apply-patch+yaml]".to_owned(),
            "PATCH /apis/faultline.dev/v1alpha1/namespaces/shop/faultlineprojects/checkout/status?&force=true&fieldManager=faultline-operator [application/apply-patch+yaml]".to_owned(),
        ]
    );
    // then the Normal Event of the first registration
    assert_eq!(
        lines[7..],
        ["POST /apis/events.k8s.io/v1/namespaces/shop/events? [application/json]".to_owned()]
    );
    assert_eq!(
        engine.requests(),
        ["PUT /api/0/organizations/shop/projects/checkout/"]
    );
    let secret = applied(&recorded, "Secret", "checkout-dsn");
    assert_eq!(
        secret["metadata"]["ownerReferences"][0]["kind"],
        "FaultlineProject"
    );
    assert_eq!(
        secret["metadata"]["ownerReferences"][0]["uid"],
        "uid-checkout"
    );
    let status = &status_patch(&recorded).body["status"];
    assert_eq!(status["conditions"][0]["reason"], "Registered");
    assert_eq!(status["conditions"][0]["observedGeneration"], 2);
    assert_eq!(status["organization"], "shop");
    assert_eq!(status["projectId"], 100);
    assert_eq!(status["dsnSecret"], "checkout-dsn");
    assert_eq!(status["ingestUrl"], "http://errors.platform.svc:8000");
    assert_eq!(
        status["eventsLastHour"], 7,
        "from the tracker's status: {status}"
    );
    assert_eq!(status["lastEventSeen"], "2026-12-05T17:59:01Z");
}

/// A tracker with a ready pod, its stored admin token and the engine stand-in at `url`.
fn ready_tracker_script(token: &str, url: String) -> Script {
    let encoded = serde_json::to_value(k8s_openapi::ByteString(token.as_bytes().to_vec())).unwrap();
    let secret = json!({"apiVersion": "v1", "kind": "Secret",
                        "metadata": {"name": "errors-admin-token", "namespace": "default"},
                        "data": {"token": encoded}});
    Script {
        lists: [("secrets", vec![secret])].into(),
        stateful_set_status: Some(
            json!({"replicas": 1, "readyReplicas": 1, "updatedReplicas": 1, "observedGeneration": 1}),
        ),
        admin_url: Some(url),
        ..Script::default()
    }
}

fn condition_of<'a>(status: &'a Value, type_: &str) -> &'a Value {
    status["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == type_)
        .unwrap_or_else(|| panic!("no condition {type_} in {status}"))
}

#[tokio::test]
async fn the_engine_status_sets_object_store_reachable_and_the_projects_figures() {
    let token = "c".repeat(64);
    let (engine, url) = crate::engine_stub::EngineStub::start(&token).await;
    let admin = faultline_operator::engine_api::AdminApi::new(url.clone(), token.clone());
    admin
        .register_project("shop", "api", &Default::default())
        .await
        .unwrap();
    engine.set_figures("shop", "api", 12, "2026-12-05T17:59:01Z");
    engine.set_store_error(Some("s3://events: connection refused"));
    let mut tracker = with_finalizer(tracker("minimal.yaml"));
    let (action, recorded) = mock_api::run(
        &tracker,
        ready_tracker_script(&token, url.clone()),
        Arc::new(Metrics::default()),
        |ctx| reconcile(Arc::new(tracker.clone()), ctx),
    )
    .await;
    assert_eq!(action.unwrap(), Action::requeue(Duration::from_secs(300)));
    assert_eq!(
        engine.requests(),
        [
            "PUT /api/0/organizations/shop/projects/api/",
            "GET /api/0/status/"
        ],
        "the stand-in records only requests with the admin token"
    );
    let status = status_patch(&recorded).body["status"].clone();
    let reachable = condition_of(&status, "ObjectStoreReachable");
    assert_eq!(reachable["status"], "False");
    assert_eq!(reachable["reason"], "Unreachable");
    assert_eq!(
        reachable["message"],
        "the engine cannot reach the object store: s3://events: connection refused"
    );
    assert_eq!(reachable["observedGeneration"], 1);
    assert_eq!(
        status["projects"],
        json!([{"name": "api", "organization": "shop", "eventsLastHour": 12,
                "lastEventSeen": "2026-12-05T17:59:01Z"}])
    );
    assert!(status["engineCheckedAt"].is_string(), "{status}");
    let events: Vec<&Recorded> = recorded
        .iter()
        .filter(|r| r.uri.contains("/events"))
        .collect();
    assert_eq!(events.len(), 1, "{:#?}", lines(&recorded));
    assert_eq!(events[0].body["type"], "Warning");
    assert_eq!(events[0].body["reason"], "ObjectStoreUnreachable");
    assert_eq!(
        events[0].body["note"],
        "the engine cannot reach the object store: s3://events: connection refused"
    );
    // the Ready condition is not the object store's business
    assert_eq!(condition_of(&status, "Ready")["status"], "True");

    // The status write wakes the controller again at once: the fresh report stands, the
    // engine is not asked and no second Event is published.
    tracker.status = Some(serde_json::from_value(status.clone()).unwrap());
    engine.set_store_error(None);
    let (_, recorded) = mock_api::run(
        &tracker,
        ready_tracker_script(&token, url.clone()),
        Arc::new(Metrics::default()),
        |ctx| reconcile(Arc::new(tracker.clone()), ctx),
    )
    .await;
    assert_eq!(engine.requests().len(), 2, "{:?}", engine.requests());
    assert!(!recorded.iter().any(|r| r.uri.contains("/events")));
    let again = &status_patch(&recorded).body["status"];
    assert_eq!(again["projects"], status["projects"]);
    assert_eq!(
        condition_of(again, "ObjectStoreReachable")["reason"],
        "Unreachable"
    );

    // A minute later the engine is asked again; the store answers, a Normal Event says so.
    let mut old = tracker.status.clone().unwrap();
    old.engine_checked_at = Some(k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
        Timestamp::now() - k8s_openapi::jiff::SignedDuration::from_secs(61),
    ));
    tracker.status = Some(old);
    let (_, recorded) = mock_api::run(
        &tracker,
        ready_tracker_script(&token, url),
        Arc::new(Metrics::default()),
        |ctx| reconcile(Arc::new(tracker.clone()), ctx),
    )
    .await;
    assert_eq!(engine.requests().len(), 3, "{:?}", engine.requests());
    let status = &status_patch(&recorded).body["status"];
    let reachable = condition_of(status, "ObjectStoreReachable");
    assert_eq!(
        (reachable["status"].as_str(), reachable["reason"].as_str()),
        (Some("True"), Some("Reachable"))
    );
    let event = recorded
        .iter()
        .find(|r| r.uri.contains("/events"))
        .expect("an Event");
    assert_eq!(
        (event.body["type"].as_str(), event.body["reason"].as_str()),
        (Some("Normal"), Some("ObjectStoreReachable"))
    );
}

#[tokio::test]
async fn an_engine_that_cannot_be_asked_leaves_object_store_reachable_unknown() {
    let token = "c".repeat(64);
    let (engine, url) = crate::engine_stub::EngineStub::start(&token).await;
    engine.fail_with(Some(http::StatusCode::SERVICE_UNAVAILABLE));
    let tracker = with_finalizer(tracker("minimal.yaml"));
    let (_, recorded) = mock_api::run(
        &tracker,
        ready_tracker_script(&token, url),
        Arc::new(Metrics::default()),
        |ctx| reconcile(Arc::new(tracker.clone()), ctx),
    )
    .await;
    let status = &status_patch(&recorded).body["status"];
    let reachable = condition_of(status, "ObjectStoreReachable");
    assert_eq!(reachable["status"], "Unknown");
    assert_eq!(reachable["reason"], "EngineUnavailable");
    assert!(
        reachable["message"]
            .as_str()
            .unwrap()
            .contains("503 Service Unavailable"),
        "{reachable}"
    );
    assert!(status.get("engineCheckedAt").is_none(), "{status}");
    assert!(!recorded.iter().any(|r| r.uri.contains("/events")));

    // without a ready pod the engine is not asked at all
    let (_, recorded) = mock_api::run(
        &tracker,
        Script {
            stateful_set_status: Some(json!({"replicas": 1, "readyReplicas": 0})),
            ..Script::default()
        },
        Arc::new(Metrics::default()),
        |ctx| reconcile(Arc::new(tracker.clone()), ctx),
    )
    .await;
    let status = &status_patch(&recorded).body["status"];
    let reachable = condition_of(status, "ObjectStoreReachable");
    assert_eq!(reachable["reason"], "EngineUnavailable");
    assert_eq!(
        reachable["message"],
        "the engine cannot be asked: no engine pod is ready"
    );
}

/// A registered `checkout` project of organization `shop` being deleted, with this policy.
fn deleted_project(policy: &str) -> faultline_operator::FaultlineProject {
    serde_json::from_value(json!({
        "apiVersion": "faultline.dev/v1alpha1", "kind": "FaultlineProject",
        "metadata": {"name": "checkout", "namespace": "shop", "uid": "uid-checkout",
                     "generation": 1, "creationTimestamp": "2026-01-01T00:00:00Z",
                     "deletionTimestamp": "2026-12-05T18:00:00Z",
                     "finalizers": [faultline_operator::PROJECT_FINALIZER]},
        "spec": {"tracker": "platform/errors", "deletionPolicy": policy},
        "status": {"organization": "shop", "project": "checkout", "projectId": 100}
    }))
    .unwrap()
}

#[tokio::test]
async fn deleting_a_project_erases_it_with_delete_and_removes_its_keys_with_retain() {
    let token = "c".repeat(64);
    let mut tracker = tracker("minimal.yaml");
    tracker.metadata.namespace = Some("platform".into());
    let encoded =
        serde_json::to_value(k8s_openapi::ByteString(token.clone().into_bytes())).unwrap();
    let secret = json!({"apiVersion": "v1", "kind": "Secret",
                        "metadata": {"name": "errors-admin-token", "namespace": "platform"},
                        "data": {"token": encoded}});
    for (policy, request, reason) in [
        (
            "Delete",
            "POST /api/0/organizations/shop/projects/checkout/erase/",
            "ProjectErased",
        ),
        (
            "Retain",
            "DELETE /api/0/organizations/shop/projects/checkout/",
            "KeysRemoved",
        ),
    ] {
        let (engine, url) = crate::engine_stub::EngineStub::start(&token).await;
        let admin = faultline_operator::engine_api::AdminApi::new(url.clone(), token.clone());
        admin
            .register_project("shop", "checkout", &Default::default())
            .await
            .unwrap();
        let project = deleted_project(policy);
        let script = Script {
            lists: [("secrets", vec![secret.clone()])].into(),
            project: Some(serde_json::to_value(&project).unwrap()),
            admin_url: Some(url),
            ..Script::default()
        };
        let project = Arc::new(project);
        let (action, recorded) =
            mock_api::run(&tracker, script, Arc::new(Metrics::default()), |ctx| {
                faultline_operator::project::reconcile(Arc::clone(&project), ctx)
            })
            .await;
        assert_eq!(action.unwrap(), Action::await_change(), "{policy}");
        assert_eq!(
            engine.requests(),
            ["PUT /api/0/organizations/shop/projects/checkout/", request],
            "{policy}"
        );
        let event = recorded
            .iter()
            .find(|r| r.uri.contains("/events"))
            .unwrap_or_else(|| panic!("{policy}: an Event in {:#?}", lines(&recorded)));
        assert_eq!(event.body["reason"], reason, "{policy}");
        assert_eq!(event.body["type"], "Normal");
        let last = recorded.last().unwrap();
        assert_eq!(
            (last.method.as_str(), last.content_type.as_str()),
            ("PATCH", "application/json-patch+json"),
            "{policy}: the finalizer is removed last: {:#?}",
            lines(&recorded)
        );
        if policy == "Delete" {
            assert!(engine.projects().is_empty(), "the engine erased it");
        }
    }
}
