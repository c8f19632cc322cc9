//! A scripted API server on a `tower-test` mock: records every request the operator sends and
//! answers as the API server would (server-side apply echoes the applied object, lists return
//! the objects the test seeds, a GET of a tracker returns the tracker, a chosen request can
//! fail with 500).

use std::collections::BTreeMap;
use std::sync::Arc;

use faultline_operator::metrics::Metrics;
use faultline_operator::{Context, ErrorTracker};
use http::{Request, Response};
use kube::client::Body;
use serde_json::{Value, json};

/// One request as sent on the wire.
#[derive(Debug, Clone)]
pub(crate) struct Recorded {
    pub(crate) method: String,
    /// Path and query, e.g. `/api/v1/namespaces/default/secrets?&labelSelector=...`.
    pub(crate) uri: String,
    pub(crate) content_type: String,
    pub(crate) body: Value,
}

impl Recorded {
    /// `METHOD uri [content-type]`, the line the snapshots list.
    pub(crate) fn line(&self) -> String {
        let uri = urlencoding::decode(&self.uri)
            .map(|u| u.into_owned())
            .unwrap_or_else(|_| self.uri.clone());
        if self.content_type.is_empty() {
            format!("{} {uri}", self.method)
        } else {
            format!("{} {uri} [{}]", self.method, self.content_type)
        }
    }
}

/// What the mock answers.
#[derive(Default, Clone)]
pub(crate) struct Script {
    /// Items returned by list requests, by resource plural (`secrets`, `persistentvolumeclaims`).
    pub(crate) lists: BTreeMap<&'static str, Vec<Value>>,
    /// Requests whose `METHOD uri` contains this text fail with 500.
    pub(crate) fail: Option<String>,
    /// `status` of an applied StatefulSet.
    pub(crate) stateful_set_status: Option<Value>,
    /// The `Backup` whose status patches are answered (with the patched status).
    pub(crate) backup: Option<Value>,
    /// Base URL of the admin API the operator calls (a stand-in for the engine).
    pub(crate) admin_url: Option<String>,
    /// Single objects a GET returns, by path (`/api/v1/namespaces/shop`); other single GETs
    /// of Secrets answer 404.
    pub(crate) objects: BTreeMap<String, Value>,
    /// The `FaultlineProject` whose patches are answered.
    pub(crate) project: Option<Value>,
}

/// Runs `body` against a mock API server; returns its result and every request it sent.
pub(crate) async fn run<F, Fut, T>(
    tracker: &ErrorTracker,
    script: Script,
    metrics: Arc<Metrics>,
    body: F,
) -> (T, Vec<Recorded>)
where
    F: FnOnce(Arc<Context>) -> Fut,
    Fut: std::future::Future<Output = T>,
{
    let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let client = kube::Client::new(service, "default");
    let tracker_json = serde_json::to_value(tracker).unwrap();
    let admin_url = script.admin_url.clone();
    let server = tokio::spawn(async move {
        let mut recorded = Vec::new();
        while let Some((request, send)) = handle.next_request().await {
            let method = request.method().to_string();
            let uri = request
                .uri()
                .path_and_query()
                .map(|p| p.to_string())
                .unwrap_or_default();
            let content_type = request
                .headers()
                .get(http::header::CONTENT_TYPE)
                .map(|v| v.to_str().unwrap().to_owned())
                .unwrap_or_default();
            let bytes = request.into_body().collect_bytes().await.unwrap();
            let body: Value = if bytes.is_empty() {
                Value::Null
            } else {
                serde_json::from_slice(&bytes).unwrap()
            };
            let entry = Recorded {
                method,
                uri,
                content_type,
                body,
            };
            let (code, reply) = answer(&entry, &script, &tracker_json);
            recorded.push(entry);
            let response = Response::builder()
                .status(code)
                .header("content-type", "application/json")
                .body(Body::from(serde_json::to_vec(&reply).unwrap()))
                .unwrap();
            send.send_response(response);
        }
        recorded
    });
    let mut ctx = Context::new(client, metrics);
    ctx.admin_url = admin_url;
    let result = body(Arc::new(ctx)).await;
    let recorded = server.await.unwrap();
    (result, recorded)
}

fn answer(request: &Recorded, script: &Script, tracker: &Value) -> (u16, Value) {
    let line = format!("{} {}", request.method, request.uri);
    if script
        .fail
        .as_ref()
        .is_some_and(|f| line.contains(f.as_str()))
    {
        return (
            500,
            json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                   "message": "etcdserver: request timed out", "reason": "InternalError", "code": 500}),
        );
    }
    let path = request.uri.split('?').next().unwrap();
    let plural = path.rsplit('/').next().unwrap();
    match request.method.as_str() {
        "GET" if script.objects.contains_key(path) => (200, script.objects[path].clone()),
        "GET" if path.contains("/secrets/") => (
            404,
            json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                   "message": "not found", "reason": "NotFound", "code": 404}),
        ),
        // a single object: the tracker a Backup names
        "GET" if path.contains("/errortrackers/") => (200, tracker.clone()),
        "GET" => {
            let items = script.lists.get(plural).cloned().unwrap_or_default();
            (
                200,
                json!({"apiVersion": "v1", "kind": "List", "metadata": {"resourceVersion": "100"}, "items": items}),
            )
        }
        "DELETE" => (
            200,
            json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success"}),
        ),
        "POST" if path.ends_with("/events") => (201, request.body.clone()),
        "PATCH" if path.contains("/faultlineprojects/") => {
            let mut object = script.project.clone().expect("Script::project");
            if request.content_type == "application/json-patch+json" {
                if object["metadata"].get("finalizers").is_none() {
                    object["metadata"]["finalizers"] = Value::Null;
                }
                let patch: json_patch::Patch =
                    serde_json::from_value(request.body.clone()).unwrap();
                json_patch::patch(&mut object, &patch).unwrap();
            } else if path.ends_with("/status") {
                object["status"] = request.body["status"].clone();
            }
            (200, object)
        }
        "PATCH" if path.contains("/backups/") => {
            let mut object = script.backup.clone().expect("Script::backup");
            object["status"] = request.body["status"].clone();
            (200, object)
        }
        "PATCH" if path.contains("/errortrackers/") => {
            let mut object = tracker.clone();
            if request.content_type == "application/json-patch+json" {
                // The API server's JSON patch treats a missing field as null in `test`.
                if object["metadata"].get("finalizers").is_none() {
                    object["metadata"]["finalizers"] = Value::Null;
                }
                let patch: json_patch::Patch =
                    serde_json::from_value(request.body.clone()).unwrap();
                json_patch::patch(&mut object, &patch).unwrap();
            } else if path.ends_with("/status") {
                object["status"] = request.body["status"].clone();
            }
            (200, object)
        }
        "PATCH" => {
            let mut object = request.body.clone();
            object["metadata"]["uid"] = json!(format!(
                "uid-{}",
                object["metadata"]["name"].as_str().unwrap()
            ));
            object["metadata"]["resourceVersion"] = json!("101");
            if object["kind"] == "StatefulSet" {
                object["metadata"]["generation"] = json!(1);
                if let Some(status) = &script.stateful_set_status {
                    object["status"] = status.clone();
                }
            }
            (200, object)
        }
        other => panic!("unexpected {other} {}", request.uri),
    }
}
