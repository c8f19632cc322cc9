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
