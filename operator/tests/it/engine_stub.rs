//! A stand-in for the faultline engine's admin API, in process, on 127.0.0.1:0.
//!
//! The real engine cannot run in the operator's tests (the operator does not depend on the
//! engine crate, and no pod runs here), so this server implements the backup part of the
//! admin API contract (`docs/operator.md`, "Backups"): `POST /api/0/backups` -> 202
//! `{"id","state":"running"}`, `GET /api/0/backups` (newest first) and
//! `GET /api/0/backups/{id}` (404 for an unknown id), and the project part:
//! `PUT /api/0/organizations/{org}/projects/{project}/` (creates or updates, the same id for
//! the same org and name, 200 with `{"id","slug","organization"}`) and `DELETE` on it (the
//! keys are gone, 204; 404 for an unknown project), `POST .../erase/` (the project is
//! forgotten, 202; 404 for an unknown one), the alert API (`POST {org}/alert-channels/` and
//! `alert-rules/` create, 409 when the name exists; `PUT` and `DELETE` on one, 404 when
//! unknown), and `GET /api/0/status/` (the object store
//! check the test chooses, and every registered project with the figures the test sets);
//! every route behind
//! `Authorization: Bearer <admin token>` (401 otherwise). The test decides when a backup
//! finishes, and reads back the requests the operator made.

use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use serde_json::{Value, json};

#[derive(Default)]
struct Inner {
    /// Newest last.
    backups: Vec<Value>,
    /// `METHOD path` of every authorized request.
    requests: Vec<String>,
    /// Answer every request with this status instead (an engine in trouble).
    fail_with: Option<StatusCode>,
    /// Registered projects by (org, name): their id and the last declaration received.
    projects: std::collections::BTreeMap<(String, String), (u64, Value)>,
    /// The object store error `GET /api/0/status/` reports (None: reachable).
    store_error: Option<String>,
    /// Alert channels and rules by (collection, org, name): the last body received.
    alerts: std::collections::BTreeMap<(String, String, String), Value>,
    /// Figures by (org, name): events in the last hour, last event seen.
    figures: std::collections::BTreeMap<(String, String), (u64, String)>,
}

/// The stand-in engine; clones share state.
#[derive(Clone)]
pub(crate) struct EngineStub {
    token: String,
    inner: Arc<Mutex<Inner>>,
}

impl EngineStub {
    /// Starts the server; returns it and its base URL.
    pub(crate) async fn start(token: &str) -> (EngineStub, String) {
        let stub = EngineStub {
            token: token.to_owned(),
            inner: Arc::default(),
        };
        let app = Router::new()
            .route("/api/0/backups", get(list).post(create))
            .route("/api/0/backups/{id}", get(one))
            .route("/api/0/status/", get(status))
            .route(
                "/api/0/organizations/{org}/{collection}/",
                axum::routing::post(create_alert),
            )
            .route(
                "/api/0/organizations/{org}/{collection}/{name}/",
                axum::routing::put(replace_alert).delete(delete_alert),
            )
            .route(
                "/api/0/organizations/{org}/projects/{project}/erase/",
                axum::routing::post(erase),
            )
            .route(
                "/api/0/organizations/{org}/projects/{project}/",
                axum::routing::put(register).delete(unregister),
            )
            .with_state(stub.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (stub, url)
    }

    /// The requests the operator made so far, as `METHOD path`.
    pub(crate) fn requests(&self) -> Vec<String> {
        self.inner.lock().unwrap().requests.clone()
    }

    /// The requests of the backup API so far (without the status calls every tracker
    /// reconcile with a ready pod makes).
    pub(crate) fn backup_requests(&self) -> Vec<String> {
        self.requests()
            .into_iter()
            .filter(|r| r != "GET /api/0/status/")
            .collect()
    }

    /// The registered projects: (org, name) -> (id, last declaration; `keys` empty once
    /// unregistered).
    pub(crate) fn projects(&self) -> std::collections::BTreeMap<(String, String), (u64, Value)> {
        self.inner.lock().unwrap().projects.clone()
    }

    /// Ends the backup `id` as the engine would.
    pub(crate) fn finish(&self, id: &str, error: Option<&str>) {
        let mut inner = self.inner.lock().unwrap();
        let backup = inner
            .backups
            .iter_mut()
            .find(|b| b["id"] == id)
            .expect("a backup the operator started");
        backup["state"] = json!(if error.is_some() {
            "failed"
        } else {
            "succeeded"
        });
        backup["finished"] = json!("2026-11-24T16:20:05Z");
        backup["files"] = json!(12);
        backup["bytes"] = json!(34_567);
        backup["error"] = json!(error);
    }

    /// Forgets every backup (an engine restarted mid-backup).
    pub(crate) fn forget(&self) {
        self.inner.lock().unwrap().backups.clear();
    }

    /// Makes `GET /api/0/status/` report the object store unreachable with `error` (None:
    /// reachable).
    pub(crate) fn set_store_error(&self, error: Option<&str>) {
        self.inner.lock().unwrap().store_error = error.map(str::to_owned);
    }

    /// Sets the figures `GET /api/0/status/` reports for project `name` of `org`.
    pub(crate) fn set_figures(&self, org: &str, name: &str, events: u64, last_seen: &str) {
        self.inner.lock().unwrap().figures.insert(
            (org.to_owned(), name.to_owned()),
            (events, last_seen.to_owned()),
        );
    }

    /// The alert channels and rules declared: (collection, org, name) -> body.
    pub(crate) fn alerts(&self) -> std::collections::BTreeMap<(String, String, String), Value> {
        self.inner.lock().unwrap().alerts.clone()
    }

    /// Makes every request fail with `status` (None: back to normal).
    pub(crate) fn fail_with(&self, status: Option<StatusCode>) {
        self.inner.lock().unwrap().fail_with = status;
    }

    /// Authorizes and records a request; the error is the answer to send instead.
    fn check(
        &self,
        headers: &HeaderMap,
        request: String,
    ) -> Result<(), (StatusCode, &'static str)> {
        let authorized = headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v == format!("Bearer {}", self.token));
        if !authorized {
            return Err((StatusCode::UNAUTHORIZED, "missing or wrong API token"));
        }
        let mut inner = self.inner.lock().unwrap();
        inner.requests.push(request);
        if let Some(status) = inner.fail_with {
            return Err((status, "engine unavailable"));
        }
        Ok(())
    }
}

async fn create(State(stub): State<EngineStub>, headers: HeaderMap) -> Response {
    if let Err(response) = stub.check(&headers, "POST /api/0/backups".into()) {
        return response.into_response();
    }
    let mut inner = stub.inner.lock().unwrap();
    let id = format!("20261124T1620{:02}Z-ab12", inner.backups.len());
    inner.backups.push(json!({
        "id": id, "state": "running", "started": "2026-11-24T16:20:00Z",
        "finished": null, "files": 0, "bytes": 0, "error": null,
    }));
    (
        StatusCode::ACCEPTED,
        axum::Json(json!({"id": id, "state": "running"})),
    )
        .into_response()
}

async fn list(State(stub): State<EngineStub>, headers: HeaderMap) -> Response {
    if let Err(response) = stub.check(&headers, "GET /api/0/backups".into()) {
        return response.into_response();
    }
    let inner = stub.inner.lock().unwrap();
    let newest_first: Vec<Value> = inner.backups.iter().rev().cloned().collect();
    axum::Json(newest_first).into_response()
}

async fn one(
    State(stub): State<EngineStub>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    if let Err(response) = stub.check(&headers, format!("GET /api/0/backups/{id}")) {
        return response.into_response();
    }
    let inner = stub.inner.lock().unwrap();
    match inner.backups.iter().find(|b| b["id"] == id.as_str()) {
        Some(backup) => axum::Json(backup.clone()).into_response(),
        None => (StatusCode::NOT_FOUND, "unknown backup").into_response(),
    }
}

async fn register(
    State(stub): State<EngineStub>,
    Path((org, project)): Path<(String, String)>,
    headers: HeaderMap,
    axum::Json(declared): axum::Json<Value>,
) -> Response {
    let request = format!("PUT /api/0/organizations/{org}/projects/{project}/");
    if let Err(response) = stub.check(&headers, request) {
        return response.into_response();
    }
    let mut inner = stub.inner.lock().unwrap();
    let next = 100 + inner.projects.len() as u64;
    let entry = inner
        .projects
        .entry((org.clone(), project.clone()))
        .or_insert((next, Value::Null));
    entry.1 = declared;
    let id = entry.0;
    axum::Json(json!({"id": id.to_string(), "slug": project, "organization": org})).into_response()
}

async fn unregister(
    State(stub): State<EngineStub>,
    Path((org, project)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let request = format!("DELETE /api/0/organizations/{org}/projects/{project}/");
    if let Err(response) = stub.check(&headers, request) {
        return response.into_response();
    }
    let mut inner = stub.inner.lock().unwrap();
    match inner.projects.get_mut(&(org, project)) {
        Some((_, declared)) => {
            declared["keys"] = json!([]);
            StatusCode::NO_CONTENT.into_response()
        }
        None => (StatusCode::NOT_FOUND, "unknown project").into_response(),
    }
}

async fn status(State(stub): State<EngineStub>, headers: HeaderMap) -> Response {
    if let Err(response) = stub.check(&headers, "GET /api/0/status/".into()) {
        return response.into_response();
    }
    let inner = stub.inner.lock().unwrap();
    let projects: Vec<Value> = inner
        .projects
        .iter()
        .map(|((org, name), (id, _))| {
            let (events, seen) = inner
                .figures
                .get(&(org.clone(), name.clone()))
                .map(|(e, s)| (json!(e), json!(s)))
                .unwrap_or((json!(0), Value::Null));
            json!({"id": id.to_string(), "organization": org, "slug": name,
                   "eventsLastHour": events, "lastEventSeen": seen})
        })
        .collect();
    let object_store = match &inner.store_error {
        None => json!({"ok": true}),
        Some(error) => json!({"ok": false, "error": error}),
    };
    axum::Json(json!({
        "checkedAt": "2026-12-05T18:00:00Z", "node": "stub",
        "objectStore": object_store, "wal": {"ok": true}, "projects": projects,
    }))
    .into_response()
}

async fn erase(
    State(stub): State<EngineStub>,
    Path((org, project)): Path<(String, String)>,
    headers: HeaderMap,
) -> Response {
    let request = format!("POST /api/0/organizations/{org}/projects/{project}/erase/");
    if let Err(response) = stub.check(&headers, request) {
        return response.into_response();
    }
    let mut inner = stub.inner.lock().unwrap();
    match inner.projects.remove(&(org, project)) {
        Some((id, _)) => (
            StatusCode::ACCEPTED,
            axum::Json(json!({"id": id.to_string()})),
        )
            .into_response(),
        None => (StatusCode::NOT_FOUND, "unknown project").into_response(),
    }
}

fn alert_collection(collection: &str) -> bool {
    matches!(collection, "alert-channels" | "alert-rules")
}

async fn create_alert(
    State(stub): State<EngineStub>,
    Path((org, collection)): Path<(String, String)>,
    headers: HeaderMap,
    axum::Json(body): axum::Json<Value>,
) -> Response {
    if !alert_collection(&collection) {
        return StatusCode::NOT_FOUND.into_response();
    }
    let request = format!("POST /api/0/organizations/{org}/{collection}/");
    if let Err(response) = stub.check(&headers, request) {
        return response.into_response();
    }
    let name = body["name"].as_str().unwrap_or_default().to_owned();
    let mut inner = stub.inner.lock().unwrap();
    let key = (collection, org, name);
    if inner.alerts.contains_key(&key) {
        return (StatusCode::CONFLICT, "exists").into_response();
    }
    inner.alerts.insert(key, body.clone());
    (StatusCode::CREATED, axum::Json(body)).into_response()
}

async fn replace_alert(
    State(stub): State<EngineStub>,
    Path((org, collection, name)): Path<(String, String, String)>,
    headers: HeaderMap,
    axum::Json(body): axum::Json<Value>,
) -> Response {
    if !alert_collection(&collection) {
        return StatusCode::NOT_FOUND.into_response();
    }
    let request = format!("PUT /api/0/organizations/{org}/{collection}/{name}/");
    if let Err(response) = stub.check(&headers, request) {
        return response.into_response();
    }
    let mut inner = stub.inner.lock().unwrap();
    match inner.alerts.get_mut(&(collection, org, name)) {
        Some(stored) => {
            *stored = body.clone();
            axum::Json(body).into_response()
        }
        None => (StatusCode::NOT_FOUND, "unknown").into_response(),
    }
}

async fn delete_alert(
    State(stub): State<EngineStub>,
    Path((org, collection, name)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> Response {
    if !alert_collection(&collection) {
        return StatusCode::NOT_FOUND.into_response();
    }
    let request = format!("DELETE /api/0/organizations/{org}/{collection}/{name}/");
    if let Err(response) = stub.check(&headers, request) {
        return response.into_response();
    }
    let mut inner = stub.inner.lock().unwrap();
    match inner.alerts.remove(&(collection, org, name)) {
        Some(_) => StatusCode::NO_CONTENT.into_response(),
        None => (StatusCode::NOT_FOUND, "unknown").into_response(),
    }
}
