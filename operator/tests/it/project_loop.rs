//! Rung 6 for `FaultlineProject`s, with the engine running for real: the operator's controller
//! loop (`faultline_operator::controller::run_with`) against the loopback API server of
//! `apiserver.rs`, and the `faultline` engine binary on 127.0.0.1 as the tracker's admin API.
//! A `FaultlineProject` applied in an app namespace yields a DSN Secret there; an event sent
//! with that DSN's key is stored, and seen by a token of the project's organization only; the
//! tracker reports the engine's object store and the project's figures, which the project
//! copies; deleting it with `deletionPolicy: Delete` erases it in the engine.
//! No kube-apiserver runs here; the engine binary is built on first use (as `tests/k8s` builds
//! the operator) unless `FAULTLINE_ENGINE_BIN` names one.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use faultline_operator::metrics::Metrics;
use serde_json::{Value, json};

use crate::apiserver::ApiServer;

const TOKEN: &str = "dddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddddd";
const SECRETS: &str = "api/v1/secrets";
const PROJECTS: &str = "apis/faultline.dev/v1alpha1/faultlineprojects";

/// The engine binary: `FAULTLINE_ENGINE_BIN`, else built with cargo into this build's target
/// directory.
fn engine_binary() -> PathBuf {
    if let Ok(path) = std::env::var("FAULTLINE_ENGINE_BIN") {
        return path.into();
    }
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let status = Command::new(cargo)
        .args([
            "build",
            "-q",
            "-p",
            "faultline-engine",
            "--bin",
            "faultline",
        ])
        .current_dir(&root)
        .status()
        .expect("cargo runs");
    assert!(status.success(), "building the engine failed");
    let target = std::env::var("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|_| root.join("target"));
    target.join("debug").join("faultline")
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The engine process; killed when dropped.
struct Engine {
    child: Child,
    ingest: String,
    admin: String,
    _dir: tempfile::TempDir,
}

impl Drop for Engine {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn start_engine() -> Engine {
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("admin-token");
    std::fs::write(&token_file, TOKEN).unwrap();
    let (ingest, admin) = (free_port(), free_port());
    let config = format!(
        "[server]\nlisten = \"127.0.0.1:{ingest}\"\nadmin_listen = \"127.0.0.1:{admin}\"\n\
         [storage]\ndata_dir = {:?}\n[auth]\nadmin_token_file = {:?}\n\
         [alerts]\nallow_private_targets = true\n",
        dir.path().join("data"),
        token_file
    );
    let config_file = dir.path().join("faultline.toml");
    std::fs::write(&config_file, config).unwrap();
    let child = Command::new(engine_binary())
        .arg("--config")
        .arg(&config_file)
        .arg("serve")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("the engine starts");
    let engine = Engine {
        child,
        ingest: format!("http://127.0.0.1:{ingest}"),
        admin: format!("http://127.0.0.1:{admin}"),
        _dir: dir,
    };
    let client = reqwest_like::Client::new();
    for _ in 0..600 {
        if client
            .get(&format!("{}/health/ready", engine.ingest))
            .await
            .is_ok_and(|(status, _)| status == 200)
        {
            return engine;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the engine did not become ready within a minute");
}

/// A small HTTP client on hyper (the operator's own dependency).
mod reqwest_like {
    use http_body_util::{BodyExt, Full};
    use hyper::body::Bytes;
    use hyper_util::client::legacy::Client as Hyper;
    use hyper_util::client::legacy::connect::HttpConnector;
    use hyper_util::rt::TokioExecutor;

    pub(crate) struct Client(Hyper<HttpConnector, Full<Bytes>>);

    impl Client {
        pub(crate) fn new() -> Self {
            Self(Hyper::builder(TokioExecutor::new()).build(HttpConnector::new()))
        }

        pub(crate) async fn get(&self, url: &str) -> Result<(u16, String), String> {
            self.send("GET", url, &[], String::new()).await
        }

        pub(crate) async fn send(
            &self,
            method: &str,
            url: &str,
            headers: &[(&str, String)],
            body: String,
        ) -> Result<(u16, String), String> {
            let mut request = http::Request::builder().method(method).uri(url);
            for (name, value) in headers {
                request = request.header(*name, value);
            }
            let request = request
                .body(Full::new(Bytes::from(body)))
                .map_err(|e| e.to_string())?;
            let response = self.0.request(request).await.map_err(|e| e.to_string())?;
            let status = response.status().as_u16();
            let bytes = response
                .into_body()
                .collect()
                .await
                .map_err(|e| e.to_string())?
                .to_bytes();
            Ok((status, String::from_utf8_lossy(&bytes).into_owned()))
        }
    }
}

fn base64_of(text: &str) -> String {
    serde_json::to_value(k8s_openapi::ByteString(text.as_bytes().to_vec()))
        .unwrap()
        .as_str()
        .unwrap()
        .to_owned()
}

fn decoded(secret: &Value, key: &str) -> String {
    let value: k8s_openapi::ByteString = serde_json::from_value(secret["data"][key].clone())
        .unwrap_or_else(|e| panic!("{key}: {e}"));
    String::from_utf8(value.0).unwrap()
}

#[tokio::test]
async fn a_project_applied_in_an_app_namespace_gets_a_dsn_that_stores_into_its_organization() {
    faultline_operator::install_crypto_provider();
    let engine = start_engine().await;
    let (server, url) = ApiServer::start().await;
    let client = kube::Client::try_from(kube::Config::new(url.parse().unwrap())).unwrap();

    // the platform team's tracker serves namespaces labelled as tenants; the team label names
    // the organization
    server.seed(
        "api/v1/namespaces",
        json!({"apiVersion": "v1", "kind": "Namespace",
               "metadata": {"name": "shop", "labels": {"tenant": "yes", "team": "shop-team"}}}),
    );
    server.seed(
        "api/v1/namespaces",
        json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "platform"}}),
    );
    server.seed(
        "apis/faultline.dev/v1alpha1/errortrackers",
        json!({"apiVersion": "faultline.dev/v1alpha1", "kind": "ErrorTracker",
               "metadata": {"name": "errors", "namespace": "platform", "uid": "uid-tracker", "generation": 1},
               "spec": {"projectNamespaceSelector": {"matchLabels": {"tenant": "yes"}},
                        "organizationLabel": "team"}}),
    );
    // the admin token the tracker reconciler keeps (and the engine reads as its token file)
    server.seed(
        SECRETS,
        json!({"apiVersion": "v1", "kind": "Secret",
               "metadata": {"name": "errors-admin-token", "namespace": "platform",
                            "labels": faultline_operator::builders::labels("errors", "admin")},
               "data": {"token": base64_of(TOKEN)}}),
    );

    let mut ctx = faultline_operator::Context::new(client.clone(), Arc::new(Metrics::default()));
    ctx.admin_url = Some(engine.admin.clone());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let controller = tokio::spawn(faultline_operator::controller::run_with(ctx, async move {
        let _ = stopped.await;
    }));

    // the app team applies its project
    let projects: kube::Api<faultline_operator::FaultlineProject> =
        kube::Api::namespaced(client.clone(), "shop");
    // the team's webhook, in its own namespace (a loopback receiver: no DNS here, and the
    // engine resolves a channel's host when it is declared)
    server.seed(
        SECRETS,
        json!({"apiVersion": "v1", "kind": "Secret",
               "metadata": {"name": "alerting", "namespace": "shop"},
               "data": {"slack-url": base64_of("http://127.0.0.1:9/hook")}}),
    );
    let project: faultline_operator::FaultlineProject = serde_json::from_value(json!({
        "apiVersion": "faultline.dev/v1alpha1", "kind": "FaultlineProject",
        "metadata": {"name": "checkout", "namespace": "shop"},
        "spec": {"tracker": "platform/errors", "platform": "python", "retentionDays": 14,
                 "alerts": {
                     "channels": [{"name": "slack", "kind": "slack",
                                   "urlSecretRef": {"name": "alerting", "key": "slack-url"}}],
                     "rules": [{"name": "new-issues", "triggers": [{"type": "new_issue"}],
                                "channels": ["slack"]}]}}
    }))
    .unwrap();
    projects
        .create(&kube::api::PostParams::default(), &project)
        .await
        .unwrap();
    server
        .wait_until("the DSN Secret is in the app namespace", |s| {
            s.get(SECRETS, "shop", "checkout-dsn").is_some()
        })
        .await;
    server
        .wait_until("the project is Ready", |s| {
            s.get(PROJECTS, "shop", "checkout").is_some_and(|p| {
                p["status"]["conditions"].as_array().is_some_and(|c| {
                    c.iter()
                        .any(|c| c["type"] == "Ready" && c["status"] == "True")
                })
            })
        })
        .await;
    let status = server.get(PROJECTS, "shop", "checkout").unwrap()["status"].clone();
    assert_eq!(status["organization"], "shop-team");
    assert_eq!(status["alertRules"], json!(["shop.new-issues"]), "{status}");
    assert_eq!(status["dsnSecret"], "checkout-dsn");
    let secret = server.get(SECRETS, "shop", "checkout-dsn").unwrap();
    let key = decoded(&secret, "key");
    let id = decoded(&secret, "projectId");
    assert_eq!(id, status["projectId"].to_string());
    assert!(
        decoded(&secret, "dsn").ends_with(&format!("@errors.platform.svc:8000/{id}")),
        "{}",
        decoded(&secret, "dsn")
    );

    // an SDK sends with that DSN (to the engine's address instead of the Service's)
    let http = reqwest_like::Client::new();
    let (status_code, body) = http
        .send(
            "POST",
            &format!("{}/api/{id}/store/", engine.ingest),
            &[
                (
                    "x-sentry-auth",
                    format!("Sentry sentry_key={key}, sentry_version=7"),
                ),
                ("content-type", "application/json".to_owned()),
            ],
            r#"{"message":"checkout failed","level":"error"}"#.to_owned(),
        )
        .await
        .unwrap();
    assert_eq!(status_code, 200, "{body}");

    // the event belongs to the organization: its token sees it, another organization's not
    let auth = [
        ("authorization", format!("Bearer {TOKEN}")),
        ("content-type", "application/json".to_owned()),
    ];
    let count_as = |org: &'static str| {
        let http = &http;
        let auth = &auth;
        let admin = engine.admin.clone();
        async move {
            let (code, created) = http
                .send(
                    "POST",
                    &format!("{admin}/api/tokens"),
                    auth,
                    json!({"name": "reader", "org": org, "scopes": ["event:read"]}).to_string(),
                )
                .await
                .unwrap();
            assert_eq!(code, 201, "{created}");
            let token: Value = serde_json::from_str(&created).unwrap();
            let (code, rows) = http
                .send(
                    "POST",
                    &format!("{admin}/api/sql"),
                    &[
                        (
                            "authorization",
                            format!("Bearer {}", token["token"].as_str().unwrap()),
                        ),
                        ("content-type", "application/json".to_owned()),
                    ],
                    json!({"sql": "SELECT count(*) AS n FROM events"}).to_string(),
                )
                .await
                .unwrap();
            assert_eq!(code, 200, "{rows}");
            rows
        }
    };
    let own = count_as("shop-team").await;
    assert!(own.contains("\"n\":1"), "{own}");
    // the project's alert rule is in the engine, limited to the project, using its channel
    let rules_url = format!(
        "{}/api/0/organizations/shop-team/alert-rules/shop.new-issues/",
        engine.admin
    );
    let (code, rule) = http
        .send("GET", &rules_url, &auth, String::new())
        .await
        .unwrap();
    assert_eq!(code, 200, "{rule}");
    let rule: Value = serde_json::from_str(&rule).unwrap();
    assert_eq!(rule["projects"], json!(["checkout"]), "{rule}");
    assert_eq!(rule["channels"], json!(["shop.slack"]), "{rule}");
    let other = count_as("default").await;
    assert!(other.contains("\"n\":0"), "{other}");

    // The engine's pod turns ready: the tracker asks the engine for its status, and shows the
    // object store reachable and the project's figures; the project copies its own.
    server
        .wait_until("the tracker's StatefulSet exists", |s| {
            s.get("apis/apps/v1/statefulsets", "platform", "errors")
                .is_some()
        })
        .await;
    let sts_api: kube::Api<k8s_openapi::api::apps::v1::StatefulSet> =
        kube::Api::namespaced(client.clone(), "platform");
    let ready = json!({"status": {"replicas": 1, "readyReplicas": 1, "updatedReplicas": 1}});
    sts_api
        .patch_status(
            "errors",
            &kube::api::PatchParams::default(),
            &kube::api::Patch::Merge(&ready),
        )
        .await
        .unwrap();
    server
        .wait_until("the tracker reports the object store reachable", |s| {
            s.get(
                "apis/faultline.dev/v1alpha1/errortrackers",
                "platform",
                "errors",
            )
            .is_some_and(|t| {
                t["status"]["conditions"].as_array().is_some_and(|c| {
                    c.iter().any(|c| {
                        c["type"] == "ObjectStoreReachable"
                            && c["status"] == "True"
                            && c["reason"] == "Reachable"
                    })
                })
            })
        })
        .await;
    let tracker = server
        .get(
            "apis/faultline.dev/v1alpha1/errortrackers",
            "platform",
            "errors",
        )
        .unwrap();
    let listed = &tracker["status"]["projects"];
    assert_eq!(listed[0]["name"], "checkout", "{listed}");
    assert_eq!(listed[0]["organization"], "shop-team", "{listed}");
    assert!(listed[0]["lastEventSeen"].is_string(), "{listed}");
    server
        .wait_until("the project shows its last event", |s| {
            s.get(PROJECTS, "shop", "checkout")
                .is_some_and(|p| p["status"]["lastEventSeen"].is_string())
        })
        .await;
    let status = server.get(PROJECTS, "shop", "checkout").unwrap()["status"].clone();
    assert_eq!(status["lastEventSeen"], listed[0]["lastEventSeen"]);
    assert!(status["eventsLastHour"].is_u64(), "{status}");

    // With deletionPolicy Delete, deleting the resource erases the project in the engine: its
    // key is refused and its organization's token reads none of its events.
    let mut erased = projects.get("checkout").await.unwrap();
    erased.spec.deletion_policy = faultline_operator::crd::DeletionPolicy::Delete;
    projects
        .replace("checkout", &kube::api::PostParams::default(), &erased)
        .await
        .unwrap();
    projects
        .delete("checkout", &kube::api::DeleteParams::default())
        .await
        .unwrap();
    server
        .wait_until("the project resource is gone", |s| {
            s.get(PROJECTS, "shop", "checkout").is_none()
        })
        .await;
    let (status_code, body) = http
        .send(
            "POST",
            &format!("{}/api/{id}/store/", engine.ingest),
            &[
                (
                    "x-sentry-auth",
                    format!("Sentry sentry_key={key}, sentry_version=7"),
                ),
                ("content-type", "application/json".to_owned()),
            ],
            r#"{"message":"after the erase"}"#.to_owned(),
        )
        .await
        .unwrap();
    assert_eq!(status_code, 403, "{body}");
    let own = count_as("shop-team").await;
    assert!(own.contains("\"n\":0"), "{own}");
    let (code, gone) = http
        .send("GET", &rules_url, &auth, String::new())
        .await
        .unwrap();
    assert_eq!(code, 404, "the finalizer removed the alert rule: {gone}");

    stop.send(()).unwrap();
    controller.await.unwrap();
}
