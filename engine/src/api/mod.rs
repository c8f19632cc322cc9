//! HTTP: the only module that knows axum. One router per listener; handlers take the request
//! apart, call one domain function and turn its result into a response.

mod error;
mod ingest;
mod issues;
mod keys;
pub mod listener;
mod maintenance;
mod metrics;
mod query;
#[cfg(test)]
mod tests;
mod tokens;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderName, Method, StatusCode};
use axum::routing::{delete, get, post};
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::timeout::RequestBodyTimeoutLayer;

pub use error::ApiError;

use crate::node::Node;

/// Browser SDKs send from any origin with these headers.
fn ingest_cors() -> CorsLayer {
    CorsLayer::new()
        .allow_origin(AllowOrigin::mirror_request())
        .allow_methods([Method::POST, Method::OPTIONS])
        .allow_headers([
            HeaderName::from_static("x-sentry-auth"),
            HeaderName::from_static("content-type"),
            HeaderName::from_static("content-encoding"),
            HeaderName::from_static("authorization"),
            HeaderName::from_static("baggage"),
            HeaderName::from_static("sentry-trace"),
        ])
        .expose_headers([
            HeaderName::from_static("x-sentry-error"),
            HeaderName::from_static("x-sentry-rate-limits"),
            HeaderName::from_static("retry-after"),
        ])
        .max_age(Duration::from_secs(3600))
}

/// Everything on one listener: ingest, the query API, the web UI, metrics and health checks.
pub fn router(node: &Arc<Node>) -> Router {
    ingest_routes(node)
        .merge(query_routes(node))
        .merge(crate::web::router(node))
        .merge(metrics_routes(node))
        .merge(health_routes(node))
}

/// The ingest listener when the query API has its own: ingest and health checks.
pub fn ingest_router(node: &Arc<Node>) -> Router {
    ingest_routes(node).merge(health_routes(node))
}

/// The separate query/admin listener: the query API, the web UI, metrics and health checks.
pub fn admin_router(node: &Arc<Node>) -> Router {
    query_routes(node)
        .merge(crate::web::router(node))
        .merge(metrics_routes(node))
        .merge(health_routes(node))
}

/// `GET /metrics`: Prometheus text format, without authentication (like the health checks;
/// on the admin listener when there is one, which a NetworkPolicy keeps inside the cluster).
fn metrics_routes(node: &Arc<Node>) -> Router {
    Router::new()
        .route("/metrics", get(metrics::metrics))
        .with_state(Arc::clone(node))
}

fn ingest_routes(node: &Arc<Node>) -> Router {
    // The handler reads the body itself, after authentication, with its own size and time
    // limits (and answers over-size bodies with the limit's name).
    let state = ingest::IngestState {
        ingest: Arc::clone(&node.ingest),
        body_read_timeout: node.config.server.body_read_timeout,
    };
    Router::new()
        .route("/api/{project_id}/{endpoint}/", post(ingest::ingest))
        .route("/api/{project_id}/{endpoint}", post(ingest::ingest))
        .layer(ingest_cors())
        .with_state(state)
}

fn query_routes(node: &Arc<Node>) -> Router {
    let body_timeout = RequestBodyTimeoutLayer::new(node.config.server.body_read_timeout);
    let state = query::QueryState {
        query: Arc::clone(&node.query),
        tokens: Arc::clone(&node.tokens),
        projects: Arc::clone(&node.projects),
    };
    let admin = maintenance::AdminState {
        node: Arc::clone(node),
    };
    let keys = keys::KeysState {
        tokens: Arc::clone(&node.tokens),
        projects: Arc::clone(&node.projects),
        public_url: node
            .config
            .server
            .public_url
            .clone()
            .unwrap_or_else(|| format!("http://{}", node.config.server.listen)),
    };
    let key_list = get(keys::list).post(keys::create);
    let key_one = get(keys::get_key).put(keys::update).delete(keys::delete);
    Router::new()
        .route("/api/sql", post(query::sql))
        .route("/api/tokens", post(tokens::create).get(tokens::list))
        .route("/api/tokens/{id}", delete(tokens::revoke))
        .route("/api/issues/{issue_id}/resolve", post(issues::resolve))
        .route("/api/issues/{issue_id}/ignore", post(issues::ignore))
        .route("/api/issues/{issue_id}/reopen", post(issues::reopen))
        .with_state(state)
        .merge(
            Router::new()
                .route(
                    "/api/0/backups",
                    post(maintenance::create_backup).get(maintenance::list_backups),
                )
                .route("/api/0/backups/{id}", get(maintenance::get_backup))
                .route("/api/0/retention/run", post(maintenance::run_retention))
                .with_state(admin),
        )
        .merge(
            Router::new()
                .route("/api/0/projects/{org}/{project}/keys/", key_list.clone())
                .route("/api/0/projects/{org}/{project}/keys", key_list)
                .route(
                    "/api/0/projects/{org}/{project}/keys/{key}/",
                    key_one.clone(),
                )
                .route("/api/0/projects/{org}/{project}/keys/{key}", key_one)
                .route(
                    "/api/0/projects/{org}/{project}/keys/{key}/rotate/",
                    post(keys::rotate),
                )
                .route(
                    "/api/0/projects/{org}/{project}/keys/{key}/rotate",
                    post(keys::rotate),
                )
                .with_state(keys),
        )
        .layer(body_timeout)
}

fn health_routes(node: &Arc<Node>) -> Router {
    Router::new()
        .route("/health/live", get(|| async { (StatusCode::OK, "ok\n") }))
        .route("/health/ready", get(ready))
        .with_state(Arc::clone(node))
}

/// `GET /health/ready`: `503` with the reason while events cannot be written (e.g. the WAL's
/// disk is full), so a load balancer sends them to another node meanwhile.
async fn ready(State(node): State<Arc<Node>>) -> (StatusCode, String) {
    let wal = node.wal.clone();
    let writable = tokio::task::spawn_blocking(move || wal.check_writable())
        .await
        .unwrap_or_else(|e| Err(e.to_string()));
    match writable {
        Ok(()) => (StatusCode::OK, "ready\n".to_owned()),
        Err(reason) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: events cannot be written to disk ({reason})\n"),
        ),
    }
}
