//! `GET /api/0/status/`: the node's object store and WAL checks and every project's figures
//! (events accepted in the last hour, last event seen), what the Kubernetes operator puts in
//! its resources' status on each reconcile. Covers every organization, so only a token for all
//! of them with `project:admin` may read it (the admin token file). A faultline path.

use std::sync::Arc;

use axum::Json;
use axum::extract::State;
use axum::http::HeaderMap;

use super::auth::Auth;
use super::error::ApiError;
use crate::node::Node;
use crate::status::{self, Report};
use crate::tenancy::Scope;

#[derive(Clone)]
pub(super) struct StatusState {
    pub(super) auth: Auth,
    pub(super) node: Arc<Node>,
}

pub(super) async fn get(
    State(state): State<StatusState>,
    headers: HeaderMap,
) -> Result<Json<Report>, ApiError> {
    let who = state.auth.caller(&headers).await?;
    let caller = &who.principal;
    caller.require(Scope::ProjectAdmin)?;
    if caller.org.is_some() || caller.projects.is_some() {
        return Err(ApiError::Forbidden(
            "the status covers every organization: only the admin token \
             (auth.admin_token_file) may read it"
                .to_owned(),
        ));
    }
    Ok(Json(status::report(&state.node, chrono::Utc::now()).await))
}
