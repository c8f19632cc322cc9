//! `POST /api/sql`: SQL over events and issues for holders of an API token or a session.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::auth::Auth;
use super::error::ApiError;
use crate::query::format::{self, Format};
use crate::query::{AuditView, ProjectFilter, QueryService};
use crate::tenancy::{Projects, Tokens};

#[derive(Clone)]
pub(super) struct QueryState {
    pub(super) query: Arc<QueryService>,
    pub(super) tokens: Arc<Tokens>,
    pub(super) projects: Arc<Projects>,
    pub(super) auth: Auth,
    /// The server's public base URL, for absolute links (`permalink`).
    pub(super) public_url: String,
    /// Uploaded source maps (uploads, and resolving events when they are viewed).
    pub(super) sourcemaps: Arc<crate::sourcemaps::SourceMaps>,
}

#[derive(Debug, Deserialize)]
struct SqlBody {
    sql: String,
}

/// The statement from a JSON body `{"sql": "..."}` (any content type), or a plain-text body.
fn statement(body: &[u8]) -> Result<String, ApiError> {
    let text = std::str::from_utf8(body)
        .map_err(|_| ApiError::BadRequest("the request body is not UTF-8".to_owned()))?;
    if text.trim_start().starts_with('{') {
        let parsed: SqlBody = serde_json::from_str(text).map_err(|e| {
            ApiError::BadRequest(format!(
                "invalid JSON body (expected {{\"sql\": \"...\"}}): {e}"
            ))
        })?;
        return Ok(parsed.sql);
    }
    if text.trim().is_empty() {
        return Err(ApiError::BadRequest(
            "the request body holds no SQL".to_owned(),
        ));
    }
    Ok(text.to_owned())
}

#[derive(Debug, Default, Deserialize)]
pub(super) struct SqlParams {
    format: Option<String>,
}

pub(super) fn bearer(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// Picks the format from `?format=`, else the Accept header, else JSON.
fn negotiate(params: &SqlParams, headers: &HeaderMap) -> Result<Format, ApiError> {
    if let Some(name) = &params.format {
        return name.parse().map_err(ApiError::BadRequest);
    }
    let accept = headers
        .get(header::ACCEPT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    Ok(if accept.contains("text/csv") {
        Format::Csv
    } else if accept.contains("application/vnd.apache.arrow.stream") {
        Format::Arrow
    } else {
        Format::Json
    })
}

pub(super) async fn sql(
    State(state): State<QueryState>,
    Query(params): Query<SqlParams>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let principal = state.auth.principal(&headers).await?;
    let projects = ProjectFilter::for_principal(&state.projects, &principal).await?;
    let format = negotiate(&params, &headers)?;
    let sql = statement(&body)?;
    let output = state
        .query
        .run_with(
            Some(&principal.token_id),
            &projects,
            AuditView::for_principal(&principal),
            &sql,
        )
        .await;
    crate::metrics::record_query("http", &output);
    let output = output?;
    let bytes = format::encode(&output, format)?;
    let mut response = bytes.into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(format.content_type()),
    );
    Ok(response)
}
