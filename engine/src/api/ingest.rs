//! Sentry's ingest endpoints: `POST /api/{project_id}/envelope/` and `/store/` (the HTTP
//! check-in endpoint of cron monitors is in cron.rs).
//!
//! The body is taken as a stream: the request is admitted (concurrency limit, key from the
//! headers or query string) before a byte of it is read, so a request with a wrong key costs
//! nothing however large its body. The body is then read up to `limits.max_request_size` and
//! within `server.body_read_timeout`.
//!
//! `X-Forwarded-For` is trusted for the client IP (`{{auto}}` user IPs): faultline is meant to
//! run behind an ingress that sets it.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderName, header};
use axum::response::{IntoResponse, Response};
use bytes::BytesMut;
use faultline_protocol::auth::AuthInput;
use futures::StreamExt;
use serde_json::json;

use super::error::ApiError;
use crate::ingest::{Admitted, Endpoint, Ingest, RequestHead};

/// What the ingest handlers share.
#[derive(Clone)]
pub(super) struct IngestState {
    pub(super) ingest: Arc<Ingest>,
    pub(super) body_read_timeout: Duration,
}

pub(super) fn header_str(headers: &HeaderMap, name: impl header::AsHeaderName) -> Option<&str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// The client's address: the first of `X-Forwarded-For`, else the peer's.
pub(super) fn client_ip(headers: &HeaderMap, peer: SocketAddr) -> std::net::IpAddr {
    header_str(headers, "x-forwarded-for")
        .and_then(|v| v.split(',').next())
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(peer.ip())
}

/// `POST /api/{project_id}/{envelope|store}/`.
pub(super) async fn ingest(
    State(state): State<IngestState>,
    Path((project_id, endpoint)): Path<(String, String)>,
    RawQuery(query): RawQuery,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Body,
) -> Result<Response, ApiError> {
    let (endpoint, name) = match endpoint.as_str() {
        "envelope" => (Endpoint::Envelope, "envelope"),
        "store" => (Endpoint::Store, "store"),
        other => return Err(ApiError::NotFound(format!("no ingest endpoint {other:?}"))),
    };
    let head = RequestHead {
        endpoint,
        project_id: &project_id,
        auth: AuthInput {
            x_sentry_auth: header_str(&headers, "x-sentry-auth"),
            authorization: header_str(&headers, header::AUTHORIZATION),
            query: query.as_deref(),
        },
        content_encoding: header_str(&headers, header::CONTENT_ENCODING),
        client_ip: Some(client_ip(&headers, peer)),
    };
    let result = async {
        let mut admitted = state.ingest.admit(head).await?;
        let declared = header_str(&headers, header::CONTENT_LENGTH).and_then(|v| v.parse().ok());
        let body = read_body(&state, &mut admitted, body, declared).await?;
        Ok::<_, ApiError>(state.ingest.submit(admitted, body).await?)
    }
    .await;
    let status = result
        .as_ref()
        .map_or_else(|e| e.status().as_u16(), |_| 200);
    crate::metrics::ingest_request(name, crate::metrics::ingest_outcome(status));
    let submitted = result?;
    let body = Json(match submitted.id {
        Some(id) => json!({ "id": id.simple().to_string() }),
        None => json!({}),
    });
    // items a quota or rate limit refused while the rest was kept: the SDK holds them back
    Ok(match submitted.refused.header() {
        Some(limits) => (
            [(HeaderName::from_static("x-sentry-rate-limits"), limits)],
            body,
        )
            .into_response(),
        None => body.into_response(),
    })
}

/// How much of a body without a key in the headers is searched for the envelope header's `dsn`
/// while it arrives; past this, the whole body is read and then decoded as far as its first line.
const EARLY_AUTH_PREFIX: usize = 1024 * 1024;
/// How many more bytes must arrive before the next attempt to find the envelope header.
const EARLY_AUTH_STEP: usize = 4096;

/// Reads a request body of at most `max_request_size` bytes within `body_read_timeout`. A body
/// declared larger by its `Content-Length` is refused before any of it is read. A request not
/// yet authenticated is authenticated by its envelope header as soon as that has arrived, so a
/// wrong `dsn` stops the reading.
pub(super) async fn read_body(
    state: &IngestState,
    admitted: &mut Admitted,
    body: Body,
    declared: Option<u64>,
) -> Result<Bytes, ApiError> {
    let limit = state.ingest.max_request_size();
    let timeout = state.body_read_timeout;
    let too_large = || ApiError::BodyTooLarge {
        limit_name: "max_request_size",
        limit,
    };
    if declared.is_some_and(|len| len > limit as u64) {
        return Err(too_large());
    }
    let mut chunks = body.into_data_stream();
    let mut data = BytesMut::with_capacity(
        declared
            .and_then(|len| usize::try_from(len).ok())
            .unwrap_or(0)
            .min(limit),
    );
    let mut authenticated = admitted.is_authenticated();
    let mut next_try = 0;
    let read = async {
        while let Some(chunk) = chunks.next().await {
            let chunk = chunk
                .map_err(|e| ApiError::BadRequest(format!("cannot read the request body: {e}")))?;
            if data.len() + chunk.len() > limit {
                return Err(too_large());
            }
            data.extend_from_slice(&chunk);
            if !authenticated && data.len() >= next_try && next_try <= EARLY_AUTH_PREFIX {
                let prefix = Bytes::copy_from_slice(&data[..data.len().min(EARLY_AUTH_PREFIX)]);
                authenticated = state.ingest.authorize_early(admitted, prefix).await?;
                next_try = data.len() + EARLY_AUTH_STEP;
            }
        }
        Ok::<_, ApiError>(())
    };
    match tokio::time::timeout(timeout, read).await {
        Ok(result) => result?,
        Err(_) => return Err(ApiError::BodyTimeout { timeout }),
    }
    Ok(data.freeze())
}
