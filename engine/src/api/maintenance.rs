//! Admin endpoints for backups and retention (JSON, `Authorization: Bearer <token>`):
//! `POST/GET /api/0/backups`, `GET /api/0/backups/{id}`, `POST /api/0/retention/run`.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;

use super::error::ApiError;
use super::query::bearer;
use crate::maintenance::Maintenance;
use crate::node::Node;

#[derive(Clone)]
pub(super) struct AdminState {
    pub(super) node: Arc<Node>,
}

async fn authorize(state: &AdminState, headers: &HeaderMap) -> Result<(), ApiError> {
    let token = bearer(headers).ok_or(ApiError::MissingToken)?;
    let principal = state.node.tokens.verify(token).await?;
    // Backups and retention cover every organization, so an organization's token may not run them.
    if principal.org.is_some() {
        return Err(ApiError::Forbidden(
            "backups and retention cover every organization: only the admin token \
             (auth.admin_token_file) may run them"
                .to_owned(),
        ));
    }
    Ok(())
}

pub(super) async fn create_backup(
    State(state): State<AdminState>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    authorize(&state, &headers).await?;
    let job = state.node.backups().start()?;
    Ok((
        StatusCode::ACCEPTED,
        Json(serde_json::json!({ "id": job.id, "state": job.state })),
    )
        .into_response())
}

pub(super) async fn list_backups(
    State(state): State<AdminState>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    authorize(&state, &headers).await?;
    Ok(Json(state.node.backups().list().await?).into_response())
}

pub(super) async fn get_backup(
    State(state): State<AdminState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    authorize(&state, &headers).await?;
    match state.node.backups().get(&id).await? {
        Some(job) => Ok(Json(job).into_response()),
        None => Err(ApiError::NotFound(format!("no backup {id:?}"))),
    }
}

#[derive(Debug, Default, Deserialize)]
pub(super) struct RetentionParams {
    #[serde(default)]
    dry_run: bool,
}

pub(super) async fn run_retention(
    State(state): State<AdminState>,
    Query(params): Query<RetentionParams>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    authorize(&state, &headers).await?;
    let report = Maintenance::for_node(&state.node)
        .retention(params.dry_run)
        .await?;
    Ok(Json(report).into_response())
}
