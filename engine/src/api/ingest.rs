//! Sentry's ingest endpoints: `POST /api/{project_id}/envelope/` and `/store/`.
//!
//! `X-Forwarded-For` is trusted for the client IP (`{{auto}}` user IPs): faultline is meant to
//! run behind an ingress that sets it.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, Path, RawQuery, State};
use axum::http::{HeaderMap, header};
use faultline_protocol::auth::AuthInput;
use serde_json::{Value, json};

use super::error::ApiError;
use crate::ingest::{Endpoint, Ingest, Submission};

fn header_str(headers: &HeaderMap, name: impl header::AsHeaderName) -> Option<&str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// `POST /api/{project_id}/{envelope|store}/`.
pub(super) async fn ingest(
    State(ingest): State<Arc<Ingest>>,
    Path((project_id, endpoint)): Path<(String, String)>,
    RawQuery(query): RawQuery,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let (endpoint, name) = match endpoint.as_str() {
        "envelope" => (Endpoint::Envelope, "envelope"),
        "store" => (Endpoint::Store, "store"),
        other => return Err(ApiError::NotFound(format!("no ingest endpoint {other:?}"))),
    };
    let client_ip = header_str(&headers, "x-forwarded-for")
        .and_then(|v| v.split(',').next())
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(peer.ip());
    let submission = Submission {
        endpoint,
        project_id: &project_id,
        auth: AuthInput {
            x_sentry_auth: header_str(&headers, "x-sentry-auth"),
            authorization: header_str(&headers, header::AUTHORIZATION),
            query: query.as_deref(),
        },
        content_encoding: header_str(&headers, header::CONTENT_ENCODING),
        body: &body,
        client_ip: Some(client_ip),
    };
    let result = ingest.submit(submission).await.map_err(ApiError::from);
    let status = result
        .as_ref()
        .map_or_else(|e| e.status().as_u16(), |_| 200);
    crate::metrics::ingest_request(name, crate::metrics::ingest_outcome(status));
    let id = result?;
    Ok(Json(match id {
        Some(id) => json!({ "id": id.simple().to_string() }),
        None => json!({}),
    }))
}
