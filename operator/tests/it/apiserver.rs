//! A small Kubernetes API server on loopback, enough for `Controller::run`: typed paths for
//! core and grouped resources, list with label selectors and pagination (pages are capped at
//! two items, so every list of more continues), watch with bookmarks, create, replace, JSON
//! patch, merge patch, server-side apply (single manager: the applied object defines the
//! fields, server-owned metadata is kept), the status subresource, generations, finalizers,
//! deletion timestamps and owner-reference garbage collection.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// Largest page a list returns, whatever `limit` asks.
const PAGE: usize = 2;

type Key = (String, String, String); // (collection, namespace, name)

/// Counters a test can check to see the protocol features were used.
#[derive(Debug, Default, Clone)]
pub(crate) struct Stats {
    pub(crate) continued_lists: usize,
    pub(crate) watches: usize,
    pub(crate) bookmarks: usize,
    pub(crate) applies: usize,
    pub(crate) json_patches: usize,
    pub(crate) status_applies: usize,
    pub(crate) field_managers: Vec<String>,
}

#[derive(Default)]
struct Store {
    rv: u64,
    objects: BTreeMap<Key, Value>,
    events: Vec<(u64, Key, &'static str, Value)>,
    stats: Stats,
}

/// The server's state, shared with the test.
pub(crate) struct ApiServer {
    store: Mutex<Store>,
    changed: tokio::sync::watch::Sender<u64>,
}

impl ApiServer {
    /// Starts the server on 127.0.0.1:0; returns it and its base URL.
    pub(crate) async fn start() -> (Arc<ApiServer>, String) {
        let (changed, _) = tokio::sync::watch::channel(0);
        let server = Arc::new(ApiServer {
            store: Mutex::new(Store::default()),
            changed,
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let app = Router::new()
            .fallback(handle)
            .with_state(Arc::clone(&server));
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        (server, url)
    }

    pub(crate) fn stats(&self) -> Stats {
        self.store.lock().unwrap().stats.clone()
    }

    /// The stored object, if any.
    pub(crate) fn get(&self, collection: &str, namespace: &str, name: &str) -> Option<Value> {
        let key = (collection.to_owned(), namespace.to_owned(), name.to_owned());
        self.store.lock().unwrap().objects.get(&key).cloned()
    }

    /// Stores an object as another controller would create it.
    pub(crate) fn seed(&self, collection: &str, object: Value) {
        let mut store = self.store.lock().unwrap();
        let ns = object["metadata"]["namespace"]
            .as_str()
            .unwrap_or("")
            .to_owned();
        let name = object["metadata"]["name"].as_str().unwrap().to_owned();
        store.write(self, (collection.to_owned(), ns, name), object, "ADDED");
    }

    /// Waits until `check` holds for the store; panics after a minute (a hang guard, not a
    /// timing assertion).
    pub(crate) async fn wait_until(&self, what: &str, check: impl Fn(&ApiServer) -> bool) {
        let mut changed = self.changed.subscribe();
        let wait = async {
            while !check(self) {
                changed.changed().await.unwrap();
            }
        };
        if tokio::time::timeout(std::time::Duration::from_secs(60), wait)
            .await
            .is_err()
        {
            panic!("gave up waiting until {what}");
        }
    }
}

impl Store {
    /// Stores `object` under `key` with a new resourceVersion and records the event; removes
    /// it instead when it is being deleted and has no finalizers left.
    fn write(
        &mut self,
        server: &ApiServer,
        key: Key,
        mut object: Value,
        kind: &'static str,
    ) -> Value {
        self.rv += 1;
        object["metadata"]["resourceVersion"] = json!(self.rv.to_string());
        let deleting = object["metadata"]
            .get("deletionTimestamp")
            .is_some_and(|t| !t.is_null());
        let finalizers = object["metadata"]["finalizers"]
            .as_array()
            .is_some_and(|f| !f.is_empty());
        if deleting && !finalizers {
            self.remove(&key);
        } else {
            self.objects.insert(key.clone(), object.clone());
            self.events.push((self.rv, key, kind, object.clone()));
        }
        server.changed.send_replace(self.rv);
        object
    }

    /// Removes an object and, by owner references, everything it owns.
    fn remove(&mut self, key: &Key) {
        let Some(object) = self.objects.remove(key) else {
            return;
        };
        self.rv += 1;
        let uid = object["metadata"]["uid"].clone();
        self.events.push((self.rv, key.clone(), "DELETED", object));
        let owned: Vec<Key> = self
            .objects
            .iter()
            .filter(|(_, o)| {
                o["metadata"]["ownerReferences"]
                    .as_array()
                    .is_some_and(|refs| refs.iter().any(|r| r["uid"] == uid))
            })
            .map(|(k, _)| k.clone())
            .collect();
        for key in owned {
            self.remove(&key);
        }
    }
}

struct Route {
    collection: String,
    api_version: String,
    namespace: Option<String>,
    name: Option<String>,
    status: bool,
}

fn route(path: &str) -> Option<Route> {
    let parts: Vec<&str> = path.trim_matches('/').split('/').collect();
    let (api_version, prefix, rest) = match parts.as_slice() {
        ["api", v, rest @ ..] => ((*v).to_owned(), format!("api/{v}"), rest),
        ["apis", g, v, rest @ ..] => (format!("{g}/{v}"), format!("apis/{g}/{v}"), rest),
        _ => return None,
    };
    let (namespace, rest) = match rest {
        ["namespaces", ns, rest @ ..] if !rest.is_empty() => (Some((*ns).to_owned()), rest),
        rest => (None, rest),
    };
    let (plural, name, status) = match rest {
        [plural] => (*plural, None, false),
        [plural, name] => (*plural, Some((*name).to_owned()), false),
        [plural, name, "status"] => (*plural, Some((*name).to_owned()), true),
        _ => return None,
    };
    Some(Route {
        collection: format!("{prefix}/{plural}"),
        api_version,
        namespace,
        name,
        status,
    })
}

fn kind_of(collection: &str) -> &'static str {
    match collection.rsplit('/').next().unwrap() {
        "errortrackers" => "ErrorTracker",
        "backups" => "Backup",
        "statefulsets" => "StatefulSet",
        "secrets" => "Secret",
        "configmaps" => "ConfigMap",
        "services" => "Service",
        "serviceaccounts" => "ServiceAccount",
        "persistentvolumeclaims" => "PersistentVolumeClaim",
        "poddisruptionbudgets" => "PodDisruptionBudget",
        "networkpolicies" => "NetworkPolicy",
        "ingresses" => "Ingress",
        "leases" => "Lease",
        "faultlineprojects" => "FaultlineProject",
        "namespaces" => "Namespace",
        "events" => "Event",
        _ => "Unknown",
    }
}

fn status(code: u16, reason: &str, message: String) -> Response {
    let body = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
                      "message": message, "reason": reason, "code": code});
    (StatusCode::from_u16(code).unwrap(), axum::Json(body)).into_response()
}

fn query(uri: &Uri) -> BTreeMap<String, String> {
    uri.query()
        .unwrap_or("")
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .map(|(k, v)| (k.to_owned(), urlencoding::decode(v).unwrap().into_owned()))
        .collect()
}

fn matches(object: &Value, selector: Option<&String>) -> bool {
    let Some(selector) = selector.filter(|s| !s.is_empty()) else {
        return true;
    };
    let labels = &object["metadata"]["labels"];
    selector.split(',').all(|term| match term.split_once("!=") {
        Some((k, v)) => labels[k] != v,
        None => match term.split_once('=') {
            Some((k, v)) => labels[k] == v,
            None => !labels[term].is_null(),
        },
    })
}

async fn handle(
    State(server): State<Arc<ApiServer>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let Some(route) = route(uri.path()) else {
        return status(404, "NotFound", format!("no route {}", uri.path()));
    };
    let query = query(&uri);
    let content_type = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let body: Value = if body.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&body).unwrap()
    };
    match (method, route.name.clone()) {
        (Method::GET, None) if query.get("watch").is_some_and(|w| w == "true" || w == "1") => {
            watch(server, route, query)
        }
        (Method::GET, None) => list(&server, &route, &query),
        (Method::GET, Some(name)) => {
            match server.get(
                &route.collection,
                route.namespace.as_deref().unwrap_or(""),
                &name,
            ) {
                Some(object) => axum::Json(object).into_response(),
                None => status(
                    404,
                    "NotFound",
                    format!("{} {name} not found", kind_of(&route.collection)),
                ),
            }
        }
        (Method::POST, None) => create(&server, &route, body),
        (Method::PUT, Some(name)) => update(&server, &route, &name, |_| Ok(body.clone())),
        (Method::PATCH, Some(name)) => patch(&server, &route, &name, &content_type, &query, body),
        (Method::DELETE, Some(name)) => delete(&server, &route, &name),
        (method, _) => status(405, "MethodNotAllowed", format!("{method} {}", uri.path())),
    }
}

fn list(server: &ApiServer, route: &Route, query: &BTreeMap<String, String>) -> Response {
    let mut store = server.store.lock().unwrap();
    let items: Vec<Value> = store
        .objects
        .iter()
        .filter(|((c, ns, _), o)| {
            *c == route.collection
                && route.namespace.as_ref().is_none_or(|n| n == ns)
                && matches(o, query.get("labelSelector"))
        })
        .map(|(_, o)| o.clone())
        .collect();
    let offset: usize = query
        .get("continue")
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    if offset > 0 {
        store.stats.continued_lists += 1;
    }
    let limit = query
        .get("limit")
        .and_then(|l| l.parse().ok())
        .unwrap_or(usize::MAX)
        .min(PAGE);
    let page: Vec<Value> = items.iter().skip(offset).take(limit).cloned().collect();
    let mut metadata = json!({"resourceVersion": store.rv.to_string()});
    if offset + page.len() < items.len() {
        metadata["continue"] = json!((offset + page.len()).to_string());
    }
    let kind = format!("{}List", kind_of(&route.collection));
    axum::Json(
        json!({"apiVersion": route.api_version, "kind": kind, "metadata": metadata, "items": page}),
    )
    .into_response()
}

fn watch(server: Arc<ApiServer>, route: Route, query: BTreeMap<String, String>) -> Response {
    let since: u64 = query
        .get("resourceVersion")
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    let bookmarks = query
        .get("allowWatchBookmarks")
        .is_some_and(|b| b == "true");
    let selector = query.get("labelSelector").cloned();
    server.store.lock().unwrap().stats.watches += 1;
    let changed = server.changed.subscribe();
    // State: (server, route, selector, last delivered rv, first batch still to send, changes).
    let state = (server, route, selector, since, true, changed);
    let stream = futures::stream::unfold(
        state,
        move |(server, route, selector, since, first, mut changed)| async move {
            loop {
                let (chunk, rv) = {
                    let mut store = server.store.lock().unwrap();
                    let mut chunk = String::new();
                    for (rv, (c, ns, _), kind, object) in &store.events {
                        let wanted = *c == route.collection
                            && route.namespace.as_ref().is_none_or(|n| n == ns)
                            && matches(object, selector.as_ref());
                        if *rv > since && wanted {
                            chunk.push_str(&json!({"type": kind, "object": object}).to_string());
                            chunk.push('\n');
                        }
                    }
                    if bookmarks && (first || !chunk.is_empty()) {
                        let bookmark = json!({"type": "BOOKMARK", "object": {
                        "apiVersion": route.api_version, "kind": kind_of(&route.collection),
                        "metadata": {"resourceVersion": store.rv.to_string()}}});
                        chunk.push_str(&bookmark.to_string());
                        chunk.push('\n');
                        store.stats.bookmarks += 1;
                    }
                    (chunk, store.rv)
                };
                if !chunk.is_empty() {
                    let next = (server, route, selector, rv, false, changed);
                    return Some((Ok::<_, std::convert::Infallible>(Bytes::from(chunk)), next));
                }
                if changed.changed().await.is_err() {
                    return None;
                }
            }
        },
    );
    Response::builder()
        .header("content-type", "application/json")
        .body(Body::from_stream(stream))
        .unwrap()
}

fn create(server: &ApiServer, route: &Route, mut object: Value) -> Response {
    let ns = route.namespace.clone().unwrap_or_default();
    let name = object["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let key = (route.collection.clone(), ns.clone(), name.clone());
    let mut store = server.store.lock().unwrap();
    if store.objects.contains_key(&key) {
        return status(409, "AlreadyExists", format!("{name} already exists"));
    }
    init_metadata(&mut object, &ns, &name, store.rv);
    let stored = store.write(server, key, object, "ADDED");
    (StatusCode::CREATED, axum::Json(stored)).into_response()
}

fn init_metadata(object: &mut Value, ns: &str, name: &str, rv: u64) {
    let meta = &mut object["metadata"];
    meta["name"] = json!(name);
    if !ns.is_empty() {
        meta["namespace"] = json!(ns);
    }
    meta["uid"] = json!(format!("00000000-0000-4000-8000-{:012}", rv + 1));
    meta["creationTimestamp"] = json!("2026-01-01T00:00:00Z");
    meta["generation"] = json!(1);
}

/// Replaces an object with `change(old)`, keeping what the server owns.
fn update(
    server: &ApiServer,
    route: &Route,
    name: &str,
    change: impl FnOnce(&Value) -> Result<Value, Box<Response>>,
) -> Response {
    let ns = route.namespace.clone().unwrap_or_default();
    let key = (route.collection.clone(), ns, name.to_owned());
    let mut store = server.store.lock().unwrap();
    let Some(old) = store.objects.get(&key).cloned() else {
        return status(404, "NotFound", format!("{name} not found"));
    };
    let mut new = match change(&old) {
        Ok(new) => new,
        Err(response) => return *response,
    };
    let sent_rv = new["metadata"]["resourceVersion"].as_str();
    if sent_rv.is_some_and(|rv| rv != old["metadata"]["resourceVersion"]) {
        return status(
            409,
            "Conflict",
            "the object has been modified; please apply your changes to the latest version".into(),
        );
    }
    for owned in [
        "uid",
        "creationTimestamp",
        "generation",
        "deletionTimestamp",
    ] {
        new["metadata"][owned] = old["metadata"][owned].clone();
    }
    if route.status {
        let status = new["status"].clone();
        new = old.clone();
        new["status"] = status;
    } else {
        new["status"] = old["status"].clone();
        if new.get("spec") != old.get("spec") {
            new["metadata"]["generation"] =
                json!(old["metadata"]["generation"].as_i64().unwrap_or(0) + 1);
        }
    }
    let stored = store.write(server, key, new, "MODIFIED");
    axum::Json(stored).into_response()
}

fn patch(
    server: &ApiServer,
    route: &Route,
    name: &str,
    content_type: &str,
    query: &BTreeMap<String, String>,
    body: Value,
) -> Response {
    match content_type {
        "application/apply-patch+yaml" => {
            let Some(manager) = query.get("fieldManager") else {
                return status(
                    400,
                    "BadRequest",
                    "fieldManager is required for apply requests".into(),
                );
            };
            {
                let mut store = server.store.lock().unwrap();
                store.stats.applies += 1;
                if route.status {
                    store.stats.status_applies += 1;
                }
                if !store.stats.field_managers.contains(manager) {
                    store.stats.field_managers.push(manager.clone());
                }
            }
            let ns = route.namespace.clone().unwrap_or_default();
            if server.get(&route.collection, &ns, name).is_none() && !route.status {
                return create(server, route, body);
            }
            update(server, route, name, |old| {
                let mut new = body.clone();
                new["metadata"]["resourceVersion"] = old["metadata"]["resourceVersion"].clone();
                if new["metadata"].get("finalizers").is_none() {
                    new["metadata"]["finalizers"] = old["metadata"]["finalizers"].clone();
                }
                Ok(new)
            })
        }
        "application/json-patch+json" => {
            server.store.lock().unwrap().stats.json_patches += 1;
            update(server, route, name, |old| {
                let mut new = old.clone();
                // A `test` of a missing field against null passes on the API server.
                let mut ops: Vec<Value> = body.as_array().cloned().unwrap_or_default();
                ops.retain(|op| {
                    !(op["op"] == "test"
                        && op["value"].is_null()
                        && new.pointer(op["path"].as_str().unwrap()).is_none())
                });
                let patch: json_patch::Patch = serde_json::from_value(Value::Array(ops)).unwrap();
                json_patch::patch(&mut new, &patch)
                    .map_err(|e| Box::new(status(422, "Invalid", e.to_string())))?;
                Ok(new)
            })
        }
        "application/merge-patch+json" => update(server, route, name, |old| {
            let mut new = old.clone();
            json_patch::merge(&mut new, &body);
            Ok(new)
        }),
        other => status(415, "UnsupportedMediaType", format!("content type {other}")),
    }
}

fn delete(server: &ApiServer, route: &Route, name: &str) -> Response {
    let ns = route.namespace.clone().unwrap_or_default();
    let key = (route.collection.clone(), ns, name.to_owned());
    let mut store = server.store.lock().unwrap();
    let Some(mut object) = store.objects.get(&key).cloned() else {
        return status(404, "NotFound", format!("{name} not found"));
    };
    if object["metadata"]["finalizers"]
        .as_array()
        .is_some_and(|f| !f.is_empty())
    {
        object["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:01Z");
        let stored = store.write(server, key, object, "MODIFIED");
        return axum::Json(stored).into_response();
    }
    store.remove(&key);
    server.changed.send_replace(store.rv);
    axum::Json(json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success"}))
        .into_response()
}
