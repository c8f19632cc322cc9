//! `POST /api/issues/{issue_id}/resolve | ignore | reopen`: change an issue's state. Needs the
//! `event:write` scope and an issue in a project the token covers; answers with the issue's
//! row of `issues` as it reads afterwards.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::Deserialize;

use super::auth::{ClientInfo, caller_entry};
use super::error::ApiError;
use super::query::QueryState;
use crate::issues::{self, Change};
use crate::query::ProjectFilter;
use crate::query::format::{self, Format};
use crate::tenancy::Scope;

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct IgnoreBody {
    /// Ignore until this time (RFC 3339).
    until: Option<DateTime<Utc>>,
    /// Ignore until this many more events arrived.
    count: Option<u64>,
}

async fn apply(
    state: &QueryState,
    headers: &HeaderMap,
    client: &crate::people::Client,
    issue_id: i64,
    change: Change,
) -> Result<Response, ApiError> {
    let who = state.auth.caller(headers).await?;
    let caller = &who.principal;
    caller.require(Scope::EventWrite)?;
    let projects = ProjectFilter::covering(&state.projects, caller).await?;
    let event = match &change {
        Change::Resolve => "issue.resolve",
        Change::Reopen => "issue.reopen",
        Change::Ignore { .. } => "issue.ignore",
    };
    let output = issues::change(&state.query, &projects, issue_id, change, &caller.name).await?;
    let people = &state.auth.people;
    people
        .audit
        .record(caller_entry(
            people,
            &who,
            caller.org.as_deref().unwrap_or(crate::tenancy::DEFAULT_ORG),
            client,
            event,
            Some(("issue", &issue_id.to_string())),
            serde_json::json!({}),
        ))
        .await;
    // One row: answer with the object, not an array of one.
    let rows: serde_json::Value =
        serde_json::from_slice(&format::encode(&output, Format::Json)?)
            .map_err(|e| ApiError::Query(crate::query::Error::Encode(e.to_string())))?;
    let mut response = Json(rows[0].clone()).into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    Ok(response)
}

pub(super) async fn resolve(
    State(state): State<QueryState>,
    Path(issue_id): Path<i64>,
    ClientInfo(client): ClientInfo,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    apply(&state, &headers, &client, issue_id, Change::Resolve).await
}

pub(super) async fn reopen(
    State(state): State<QueryState>,
    Path(issue_id): Path<i64>,
    ClientInfo(client): ClientInfo,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    apply(&state, &headers, &client, issue_id, Change::Reopen).await
}

/// Body: nothing (ignore for good), `{"until": "<RFC 3339>"}` or `{"count": N}`.
pub(super) async fn ignore(
    State(state): State<QueryState>,
    Path(issue_id): Path<i64>,
    ClientInfo(client): ClientInfo,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let body: IgnoreBody = if body.iter().all(u8::is_ascii_whitespace) {
        IgnoreBody::default()
    } else {
        serde_json::from_slice(&body).map_err(|e| {
            ApiError::BadRequest(format!(
                "invalid JSON body (expected {{\"until\": \"<RFC 3339 time>\"}} or {{\"count\": N}}): {e}"
            ))
        })?
    };
    let change = Change::Ignore {
        until: body.until,
        count: body.count,
    };
    apply(&state, &headers, &client, issue_id, change).await
}
