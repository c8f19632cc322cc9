//! An event's attachments, in the shape of Sentry's API (a token with `event:read` covering the
//! project):
//!
//! - `GET /api/0/projects/{org}/{project}/events/{event_id}/attachments/`: the list;
//! - `GET .../attachments/{attachment_id}/`: one, and with `?download=1` its bytes, with its
//!   `Content-Type` and a `Content-Disposition` naming the file.
//!
//! A project the caller cannot see, an event or attachment of another project: 404, as for an
//! attachment that does not exist.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::{Value, json};

use super::auth::Auth;
use super::error::ApiError;
use crate::attachments::{self, Stored};
use crate::query::{ProjectFilter, QueryService};
use crate::store::Store;
use crate::tenancy::{Projects, Scope};

#[derive(Clone)]
pub(super) struct AttachmentsState {
    pub(super) auth: Auth,
    pub(super) projects: Arc<Projects>,
    pub(super) query: Arc<QueryService>,
    pub(super) store: Store,
}

#[derive(Debug, Default, Deserialize)]
pub(super) struct DownloadParams {
    download: Option<String>,
}

/// The one project `org/project` as a filter, if the caller may read its events.
async fn project_filter(
    state: &AttachmentsState,
    headers: &HeaderMap,
    org: &str,
    project: &str,
) -> Result<ProjectFilter, ApiError> {
    let caller = state.auth.caller(headers).await?;
    super::members::check_in(&caller, org, Scope::EventRead)?;
    let found = state
        .projects
        .readable(&caller.principal)
        .await?
        .into_iter()
        .find(|p| p.org == org && p.name == project)
        .ok_or_else(|| ApiError::NotFound(format!("no project {project:?} in {org:?}")))?;
    Ok(ProjectFilter::Only(Arc::new([found.id].into())))
}

fn date(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// Sentry's shape of an event attachment.
fn listed(a: &Stored) -> Value {
    let content_type = a
        .content_type
        .as_deref()
        .unwrap_or(crate::items::attachments::DEFAULT_CONTENT_TYPE);
    json!({
        "id": a.attachment_id,
        "event_id": a.event_id,
        "type": a.attachment_type.as_deref().unwrap_or(crate::items::attachments::DEFAULT_TYPE),
        "name": a.filename,
        "mimetype": content_type,
        "dateCreated": date(a.ms),
        "size": a.size,
        "headers": {"Content-Type": content_type},
        "sha1": a.sha1,
    })
}

pub(super) async fn list(
    State(state): State<AttachmentsState>,
    Path((org, project, event_id)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let projects = project_filter(&state, &headers, &org, &project).await?;
    let found = match attachments::list(&state.query, &projects, &event_id).await {
        Err(attachments::Error::BadId { .. }) => Vec::new(),
        other => other?,
    };
    Ok(Json(Value::Array(found.iter().map(listed).collect())))
}

pub(super) async fn get(
    State(state): State<AttachmentsState>,
    Path((org, project, event_id, id)): Path<(String, String, String, String)>,
    Query(params): Query<DownloadParams>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let projects = project_filter(&state, &headers, &org, &project).await?;
    let download = params
        .download
        .as_deref()
        .is_some_and(|v| !matches!(v, "" | "0" | "false"));
    if !download {
        let found = attachments::get(&state.query, &projects, &event_id, &id).await?;
        return Ok(Json(listed(&found)).into_response());
    }
    let (found, data) =
        attachments::open(&state.query, &state.store, &projects, &event_id, &id).await?;
    let content_type = found
        .content_type
        .as_deref()
        .and_then(|t| HeaderValue::from_str(t).ok())
        .unwrap_or(HeaderValue::from_static(
            crate::items::attachments::DEFAULT_CONTENT_TYPE,
        ));
    let mut response = (StatusCode::OK, data).into_response();
    let out = response.headers_mut();
    out.insert(header::CONTENT_TYPE, content_type);
    if let Ok(value) = HeaderValue::from_str(&content_disposition(&found.filename)) {
        out.insert(header::CONTENT_DISPOSITION, value);
    }
    // the bytes are whatever an SDK sent: never let a browser take them for a page
    out.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    Ok(response)
}

/// `attachment; filename="..."` with a plain-ASCII fallback name and the exact name in
/// `filename*` (RFC 6266, RFC 5987).
fn content_disposition(filename: &str) -> String {
    let fallback: String = filename
        .chars()
        .map(|c| {
            if c.is_ascii_graphic() && c != '"' && c != '\\' || c == ' ' {
                c
            } else {
                '_'
            }
        })
        .collect();
    let mut encoded = String::with_capacity(filename.len());
    for byte in filename.bytes() {
        if byte.is_ascii_alphanumeric() || b"!#$&+-.^_`|~".contains(&byte) {
            encoded.push(byte as char);
        } else {
            encoded.push_str(&format!("%{byte:02X}"));
        }
    }
    format!("attachment; filename=\"{fallback}\"; filename*=UTF-8''{encoded}")
}

#[cfg(test)]
mod tests {
    use super::content_disposition;

    #[test]
    fn file_names_are_quoted_and_encoded() {
        assert_eq!(
            content_disposition("log.txt"),
            "attachment; filename=\"log.txt\"; filename*=UTF-8''log.txt"
        );
        assert_eq!(
            content_disposition("a \"b\"\r\né.txt"),
            "attachment; filename=\"a _b____.txt\"; filename*=UTF-8''a%20%22b%22%0D%0A%C3%A9.txt"
        );
    }
}
