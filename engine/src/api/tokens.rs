//! `/api/tokens`: create, list and revoke API tokens of the caller's organization. Needs the
//! `projects:admin` scope; a token never creates one with more rights than it has itself.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use serde::{Deserialize, Serialize};

use super::error::ApiError;
use super::query::{QueryState, principal};
use crate::tenancy::{DEFAULT_ORG, NewToken, Principal, Scope, TokenRecord};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct CreateBody {
    name: String,
    scopes: Vec<Scope>,
    /// Project names; omitted means every project of the organization.
    #[serde(default)]
    projects: Option<Vec<String>>,
    /// Only for the admin token, which belongs to no organization.
    #[serde(default)]
    org: Option<String>,
}

#[derive(Debug, Serialize)]
pub(super) struct Created {
    /// The token itself: shown only in this response.
    token: String,
    #[serde(flatten)]
    record: TokenRecord,
}

#[derive(Debug, Default, Deserialize)]
pub(super) struct OrgParam {
    org: Option<String>,
}

/// The organization the caller acts in: its own, or for the admin token the one it names.
fn acting_org(principal: &Principal, named: Option<String>) -> Result<String, ApiError> {
    match (&principal.org, named) {
        (Some(own), Some(named)) if *own != named => Err(ApiError::Forbidden(format!(
            "the API token belongs to organization {own:?}, not {named:?}"
        ))),
        (Some(own), _) => Ok(own.clone()),
        (None, named) => Ok(named.unwrap_or_else(|| DEFAULT_ORG.to_owned())),
    }
}

pub(super) async fn create(
    State(state): State<QueryState>,
    headers: HeaderMap,
    Json(body): Json<CreateBody>,
) -> Result<(StatusCode, Json<Created>), ApiError> {
    let caller = principal(&state.tokens, &headers).await?;
    caller.require(Scope::ProjectsAdmin)?;
    let org = acting_org(&caller, body.org)?;
    if let Some(scope) = body.scopes.iter().find(|s| !caller.scopes.contains(s)) {
        return Err(ApiError::Forbidden(format!(
            "cannot grant the scope {scope}: the API token does not hold it"
        )));
    }
    let projects = match body.projects {
        Some(names) => Some(state.projects.ids_by_name(&org, &names).await?),
        None => None,
    };
    let within = |ids: &[u64]| ids.iter().all(|id| caller.covers(&org, *id));
    if caller.projects.is_some() && !projects.as_deref().is_some_and(within) {
        return Err(ApiError::Forbidden(
            "the API token is limited to some projects; list projects within them".to_owned(),
        ));
    }
    let (token, record) = state
        .tokens
        .create(NewToken {
            name: body.name,
            org,
            scopes: body.scopes,
            projects,
        })
        .await?;
    Ok((StatusCode::CREATED, Json(Created { token, record })))
}

pub(super) async fn list(
    State(state): State<QueryState>,
    Query(param): Query<OrgParam>,
    headers: HeaderMap,
) -> Result<Json<Vec<TokenRecord>>, ApiError> {
    let caller = principal(&state.tokens, &headers).await?;
    caller.require(Scope::ProjectsAdmin)?;
    let org = match (&caller.org, param.org) {
        (None, None) => None,
        (_, named) => Some(acting_org(&caller, named)?),
    };
    Ok(Json(state.tokens.list(org.as_deref()).await?))
}

pub(super) async fn revoke(
    State(state): State<QueryState>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<Json<TokenRecord>, ApiError> {
    let caller = principal(&state.tokens, &headers).await?;
    caller.require(Scope::ProjectsAdmin)?;
    Ok(Json(state.tokens.revoke(caller.org.as_deref(), &id).await?))
}
