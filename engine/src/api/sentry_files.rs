//! Source map uploads as sentry-cli 3.x makes them: the chunk upload options, the chunks
//! themselves (multipart, named by their SHA-1, plain or gzip) and the assembly of an artifact
//! bundle from them. Uploading needs scope `project:releases` or `project:write`.

use std::io::Read;

use axum::Json;
use axum::extract::{Multipart, Path, State};
use axum::http::{HeaderMap, StatusCode};
use bytes::Bytes;
use serde::Deserialize;
use serde_json::{Value, json};

use super::auth::Caller;
use super::error::ApiError;
use super::query::QueryState;
use super::sentry::checked_projects;
use crate::sourcemaps::{self, AssembleRequest};
use crate::tenancy::Scope;

/// Size of one chunk sentry-cli cuts a bundle into.
pub(super) const CHUNK_SIZE: u64 = 8 * 1024 * 1024;
/// Chunks sent in one request.
const CHUNKS_PER_REQUEST: u64 = 4;
/// Largest chunk upload request (the route's body limit adds room for the multipart framing).
pub(super) const MAX_REQUEST_SIZE: u64 = CHUNK_SIZE * CHUNKS_PER_REQUEST;
/// How long sentry-cli should wait for an assembly (seconds); bundles assemble within the
/// request here.
const MAX_WAIT: u64 = 60;

/// An organization slug as faultline names organizations; anything else names none.
fn check_org(org: &str) -> Result<(), ApiError> {
    let valid = !org.is_empty()
        && org.len() <= 64
        && org
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if valid {
        Ok(())
    } else {
        Err(ApiError::NotFound(format!("no organization {org:?}")))
    }
}

/// The caller, if it may upload source maps to `org`.
async fn uploader(state: &QueryState, headers: &HeaderMap, org: &str) -> Result<Caller, ApiError> {
    check_org(org)?;
    let caller = state.auth.caller(headers).await?;
    if caller.principal.org.as_deref().is_some_and(|o| o != org) {
        return Err(ApiError::NotFound(format!("no organization {org:?}")));
    }
    let scopes = &caller.principal.scopes;
    if !scopes.contains(&Scope::ProjectReleases) && !scopes.contains(&Scope::ProjectWrite) {
        return Err(ApiError::Forbidden(
            "uploading source maps needs scope project:releases (or project:write)".to_owned(),
        ));
    }
    Ok(caller)
}

/// `GET /api/0/organizations/{org}/chunk-upload/`: how sentry-cli should upload.
pub(super) async fn chunk_upload_options(
    State(state): State<QueryState>,
    Path(org): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    uploader(&state, &headers, &org).await?;
    Ok(Json(json!({
        // relative to the API root, as sentry-cli resolves it (and authenticates it)
        "url": format!("/organizations/{org}/chunk-upload/"),
        "chunkSize": CHUNK_SIZE,
        "chunksPerRequest": CHUNKS_PER_REQUEST,
        "maxRequestSize": MAX_REQUEST_SIZE,
        "maxFileSize": state.sourcemaps.config().max_bundle_size.as_u64(),
        "maxWait": MAX_WAIT,
        "hashAlgorithm": "sha1",
        "compression": ["gzip"],
        "concurrency": 4,
        "accept": ["artifact_bundles", "release_files", "sources"],
    })))
}

/// `POST /api/0/organizations/{org}/chunk-upload/`: multipart, one part per chunk, field
/// `file` (or `file_gzip`, gzip-compressed), the part's file name the chunk's SHA-1. Every
/// chunk is checked before any is stored.
pub(super) async fn upload_chunks(
    State(state): State<QueryState>,
    Path(org): Path<String>,
    headers: HeaderMap,
    mut multipart: Multipart,
) -> Result<StatusCode, ApiError> {
    uploader(&state, &headers, &org).await?;
    let mut chunks: Vec<(String, Bytes)> = Vec::new();
    while let Some(field) = multipart
        .next_field()
        .await
        .map_err(|e| ApiError::BadRequest(format!("invalid multipart body: {e}")))?
    {
        let gzip = match field.name() {
            Some("file") => false,
            Some("file_gzip") => true,
            other => {
                return Err(ApiError::BadRequest(format!(
                    "unexpected multipart field {:?}: send chunks as `file` or `file_gzip`",
                    other.unwrap_or_default()
                )));
            }
        };
        let name = field.file_name().unwrap_or_default().to_owned();
        let data = field
            .bytes()
            .await
            .map_err(|e| ApiError::BadRequest(format!("chunk {name:?}: {e}")))?;
        let data = if gzip { gunzip(&name, &data)? } else { data };
        if data.len() as u64 > CHUNK_SIZE {
            return Err(sourcemaps::Error::ChunkTooLarge {
                name,
                size: data.len() as u64,
                limit: CHUNK_SIZE,
            }
            .into());
        }
        let expected = name.to_ascii_lowercase();
        if !sourcemaps::bundles::is_sha1(&expected) {
            return Err(sourcemaps::Error::ChunkName { name }.into());
        }
        let actual = sourcemaps::bundles::sha1_hex(&data);
        if actual != expected {
            return Err(sourcemaps::Error::ChunkChecksum { name, actual }.into());
        }
        chunks.push((name, data));
    }
    for (name, data) in chunks {
        sourcemaps::bundles::put_chunk(state.sourcemaps.store(), &org, &name, data).await?;
    }
    Ok(StatusCode::OK)
}

fn gunzip(name: &str, data: &[u8]) -> Result<Bytes, ApiError> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(data)
        .take(CHUNK_SIZE + 1)
        .read_to_end(&mut out)
        .map_err(|e| sourcemaps::Error::Gzip {
            name: name.to_owned(),
            message: e.to_string(),
        })?;
    Ok(Bytes::from(out))
}

#[derive(Debug, Deserialize)]
pub(super) struct AssembleBody {
    checksum: Option<String>,
    #[serde(default)]
    chunks: Vec<String>,
    #[serde(default)]
    projects: Vec<String>,
    version: Option<String>,
    dist: Option<String>,
}

/// `POST /api/0/organizations/{org}/artifactbundle/assemble/` with `{checksum, chunks,
/// projects, version?, dist?}`: `not_found` and the missing chunks, until all are uploaded;
/// then the bundle is assembled within the request and the answer is `ok` (or `error` with
/// the reason in `detail`).
pub(super) async fn assemble_bundle(
    State(state): State<QueryState>,
    Path(org): Path<String>,
    headers: HeaderMap,
    bytes: Bytes,
) -> Result<Json<Value>, ApiError> {
    let caller = uploader(&state, &headers, &org).await?;
    let body: AssembleBody = serde_json::from_slice(&bytes).map_err(|e| {
        ApiError::BadRequest(format!(
            "invalid JSON body (expected {{\"checksum\": \"<sha1>\", \"chunks\": [...], \
             \"projects\": [...]}}): {e}"
        ))
    })?;
    let checksum = body
        .checksum
        .ok_or_else(|| ApiError::BadRequest("checksum: the bundle's SHA-1 is required".into()))?;
    let (projects, _) = checked_projects(&state, &caller, &org, &body.projects).await?;
    let answer = sourcemaps::bundles::assemble(
        state.sourcemaps.store(),
        &org,
        AssembleRequest {
            checksum,
            chunks: body.chunks,
            projects,
            release: body.version,
            dist: body.dist,
        },
        state.sourcemaps.config().max_bundle_size.as_u64(),
    )
    .await?;
    if answer.state == "ok" {
        state.sourcemaps.uploaded();
    }
    Ok(Json(serde_json::to_value(answer).unwrap_or_default()))
}

/// Largest release-file upload request (the file itself is checked against
/// `sourcemaps.max_file_size`).
pub(super) const MAX_RELEASE_FILE_REQUEST: u64 = 64 * 1024 * 1024;

/// `POST /api/0/projects/{org}/{project}/releases/{version}/files/`: the older upload of one
/// file of a release (multipart: `file`, `name` such as `~/static/app.min.js`, optional
/// `dist` and `header` fields `Name: value`) → 201. The release must exist.
pub(super) async fn upload_release_file(
    State(state): State<QueryState>,
    Path((org, project, version)): Path<(String, String, String)>,
    headers: HeaderMap,
    mut multipart: Multipart,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let caller = uploader(&state, &headers, &org).await?;
    checked_projects(&state, &caller, &org, std::slice::from_ref(&project)).await?;
    if crate::releases::get(state.sourcemaps.store(), &org, &version)
        .await?
        .is_none_or(|r| !r.projects.contains(&project))
    {
        return Err(crate::releases::Error::Unknown { version }.into());
    }
    let mut content = None;
    let mut file_name = None;
    let mut name = None;
    let mut dist = None;
    let mut file_headers = Vec::new();
    while let Some(field) = multipart
        .next_field()
        .await
        .map_err(|e| ApiError::BadRequest(format!("invalid multipart body: {e}")))?
    {
        let field_name = field.name().unwrap_or_default().to_owned();
        if field_name == "file" {
            file_name = field.file_name().map(str::to_owned);
        }
        let data = field
            .bytes()
            .await
            .map_err(|e| ApiError::BadRequest(format!("{field_name}: {e}")))?;
        let text = || String::from_utf8_lossy(&data).trim().to_owned();
        match field_name.as_str() {
            "file" => content = Some(data.clone()),
            "name" => name = Some(text()),
            "dist" => dist = Some(text()).filter(|d| !d.is_empty()),
            "header" => {
                let header = text();
                let (key, value) = header.split_once(':').ok_or_else(|| {
                    ApiError::BadRequest(format!(
                        "header: {header:?} is not `Name: value` (e.g. `Sourcemap: app.js.map`)"
                    ))
                })?;
                file_headers.push((key.trim().to_owned(), value.trim().to_owned()));
            }
            _ => {}
        }
    }
    let content = content
        .ok_or_else(|| ApiError::BadRequest("file: the request has no `file` part".into()))?;
    let name = name
        .or_else(|| file_name.map(|f| format!("~/{f}")))
        .filter(|n| !n.is_empty())
        .ok_or_else(|| ApiError::BadRequest("name: the file's URL (e.g. ~/app.min.js)".into()))?;
    let sha1 = sourcemaps::bundles::sha1_hex(&content);
    let size = content.len();
    let record = sourcemaps::bundles::put_release_file(
        state.sourcemaps.store(),
        &org,
        &project,
        &version,
        sourcemaps::bundles::ReleaseFile {
            name: name.clone(),
            dist: dist.clone(),
            headers: file_headers.clone(),
            content,
        },
        state.sourcemaps.config().max_file_size.as_u64(),
    )
    .await?;
    state.sourcemaps.uploaded();
    let headers: serde_json::Map<String, Value> = file_headers
        .into_iter()
        .map(|(k, v)| (k, Value::String(v)))
        .collect();
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "id": record.checksum,
            "name": name,
            "dist": dist,
            "headers": headers,
            "size": size,
            "sha1": sha1,
            "dateCreated": record.created.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        })),
    ))
}
