//! `POST /api/issues/{issue_id}/resolve | ignore | reopen | assign | merge | unmerge`: change
//! an issue's state. `DELETE /api/issues/{issue_id}` (scope `event:admin`): delete it and erase
//! its events.
//! Needs the `event:write` scope and an issue in a project the token covers; answers with the
//! issue's row of `issues` as it reads afterwards.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::Deserialize;

use super::auth::{Caller, ClientInfo, caller_entry};
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

/// Changes an issue's state for `who` (who must hold `event:write`; `projects` are the ones
/// it may change) and records the change in the organization's audit log: the one way the API,
/// the web UI and their bulk actions change issues.
pub(crate) async fn change_audited(
    query: &crate::query::QueryService,
    people: &crate::people::People,
    who: &Caller,
    projects: &ProjectFilter,
    client: &crate::people::Client,
    issue_id: i64,
    change: Change,
) -> Result<crate::query::QueryOutput, ApiError> {
    let caller = &who.principal;
    caller.require(Scope::EventWrite)?;
    let event = change.audit_event();
    let details = match &change {
        Change::Assign(assignee) => serde_json::json!({ "assignee": assignee }),
        Change::ResolveInNextRelease => serde_json::json!({ "inNextRelease": true }),
        Change::Merge { into } => serde_json::json!({ "into": into }),
        _ => serde_json::json!({}),
    };
    let by = who
        .actor
        .as_ref()
        .map_or(caller.name.as_str(), |a| a.email.as_str());
    let output = issues::change(query, projects, issue_id, change, by).await?;
    people
        .audit
        .record(caller_entry(
            people,
            who,
            caller.org.as_deref().unwrap_or(crate::tenancy::DEFAULT_ORG),
            client,
            event,
            Some(("issue", &issue_id.to_string())),
            details,
        ))
        .await;
    Ok(output)
}

/// Deletes an issue for `who` (who must hold `event:admin`) with the issues merged into it,
/// and records it in the organization's audit log: the one way the API and the web UI delete.
pub(crate) async fn delete_audited(
    query: &crate::query::QueryService,
    people: &crate::people::People,
    who: &Caller,
    projects: &ProjectFilter,
    client: &crate::people::Client,
    issue_id: i64,
) -> Result<issues::Deletion, ApiError> {
    let caller = &who.principal;
    caller.require(Scope::EventAdmin)?;
    let by = who
        .actor
        .as_ref()
        .map_or(caller.name.as_str(), |a| a.email.as_str());
    let deletion = issues::delete(query, projects, issue_id, by).await?;
    people
        .audit
        .record(caller_entry(
            people,
            who,
            caller.org.as_deref().unwrap_or(crate::tenancy::DEFAULT_ORG),
            client,
            "issue.delete",
            Some(("issue", &issue_id.to_string())),
            serde_json::json!({ "issues": deletion.issues }),
        ))
        .await;
    Ok(deletion)
}

/// `DELETE /api/issues/{issue_id}`: `202 Accepted` with the deleted issues; their events are
/// erased by maintenance shortly after.
pub(super) async fn delete(
    State(state): State<QueryState>,
    Path(issue_id): Path<i64>,
    ClientInfo(client): ClientInfo,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let who = state.auth.caller(&headers).await?;
    who.principal.require(Scope::EventAdmin)?;
    let projects = ProjectFilter::covering(&state.projects, &who.principal).await?;
    let deletion = delete_audited(
        &state.query,
        &state.auth.people,
        &who,
        &projects,
        &client,
        issue_id,
    )
    .await?;
    Ok((
        axum::http::StatusCode::ACCEPTED,
        Json(serde_json::json!({
            "project_id": deletion.project_id,
            "deleted": deletion.issues,
            "at": deletion.at,
        })),
    )
        .into_response())
}

async fn apply(
    state: &QueryState,
    headers: &HeaderMap,
    client: &crate::people::Client,
    issue_id: i64,
    change: Change,
) -> Result<Response, ApiError> {
    let who = state.auth.caller(headers).await?;
    who.principal.require(Scope::EventWrite)?;
    let projects = ProjectFilter::covering(&state.projects, &who.principal).await?;
    let output = change_audited(
        &state.query,
        &state.auth.people,
        &who,
        &projects,
        client,
        issue_id,
        change,
    )
    .await?;
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

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct AssignBody {
    /// A member's email address, `#<team slug>`, `me`, or null / "" to unassign.
    assignee: Option<String>,
}

/// Body: `{"assignee": "ada@example.com" | "#backend" | "me" | null}`.
pub(super) async fn assign(
    State(state): State<QueryState>,
    Path(issue_id): Path<i64>,
    ClientInfo(client): ClientInfo,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let body: AssignBody = serde_json::from_slice(&body).map_err(|e| {
        ApiError::BadRequest(format!(
            "invalid JSON body (expected {{\"assignee\": \"<email>\" | \"#<team>\" | \"me\" | null}}): {e}"
        ))
    })?;
    let who = state.auth.caller(&headers).await?;
    let org = who
        .principal
        .org
        .clone()
        .unwrap_or_else(|| crate::tenancy::DEFAULT_ORG.to_owned());
    let assignee = assignee(
        &state.auth.people,
        &org,
        who.actor.as_ref(),
        body.assignee.as_deref(),
    )
    .await?;
    apply(
        &state,
        &headers,
        &client,
        issue_id,
        Change::Assign(assignee),
    )
    .await
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct MergeBody {
    /// The issue to merge into (same project, not merged itself).
    into: i64,
}

/// Body: `{"into": <issue id>}`: this issue's events then count for that issue.
pub(super) async fn merge(
    State(state): State<QueryState>,
    Path(issue_id): Path<i64>,
    ClientInfo(client): ClientInfo,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let body: MergeBody = serde_json::from_slice(&body).map_err(|e| {
        ApiError::BadRequest(format!(
            "invalid JSON body (expected {{\"into\": <issue id>}}): {e}"
        ))
    })?;
    apply(
        &state,
        &headers,
        &client,
        issue_id,
        Change::Merge { into: body.into },
    )
    .await
}

pub(super) async fn unmerge(
    State(state): State<QueryState>,
    Path(issue_id): Path<i64>,
    ClientInfo(client): ClientInfo,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    apply(&state, &headers, &client, issue_id, Change::Unmerge).await
}

/// What an assignment names, checked: `None` for "" (unassign); `#slug` a team of `org`; `me`
/// the caller (a person); otherwise the email address of an enabled member of `org`.
pub(crate) async fn assignee(
    people: &crate::people::People,
    org: &str,
    me: Option<&crate::people::Actor>,
    raw: Option<&str>,
) -> Result<Option<String>, ApiError> {
    let raw = raw.map(str::trim).unwrap_or_default();
    if raw.is_empty() {
        return Ok(None);
    }
    if let Some(slug) = raw.strip_prefix('#') {
        people
            .team(org, slug)
            .await
            .map_err(|_| ApiError::BadRequest(format!("assignee: no team {slug:?} in {org}")))?;
        return Ok(Some(format!("#{slug}")));
    }
    let email = if raw == "me" {
        me.map(|a| a.email.clone()).ok_or_else(|| {
            ApiError::BadRequest("assignee: \"me\" needs a person, not an API token".into())
        })?
    } else {
        raw.to_owned()
    };
    let user = people
        .user_by_email(&email)
        .await
        .map_err(|e| ApiError::BadRequest(format!("assignee: {e}")))?;
    match user {
        Some(user) if user.org == org && !user.disabled => Ok(Some(user.email)),
        _ => Err(ApiError::BadRequest(format!(
            "assignee: {email:?} is not an active member of {org}"
        ))),
    }
}
