//! `/api/tokens`: create, list and revoke API tokens of the caller's organization. Needs the
//! `org:write` scope (which `projects:admin` grants); a token never creates one with more rights than it has itself.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use serde::{Deserialize, Serialize};

use super::auth::{ClientInfo, caller_entry};
use super::error::ApiError;
use super::query::QueryState;
use crate::tenancy::{DEFAULT_ORG, NewToken, Principal, Scope, TokenRecord};

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct CreateBody {
    name: String,
    /// Sentry's scope names; `events:read` and `projects:admin` are expanded.
    #[serde(deserialize_with = "crate::tenancy::tokens::deserialize_scopes")]
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
    ClientInfo(client): ClientInfo,
    headers: HeaderMap,
    Json(body): Json<CreateBody>,
) -> Result<(StatusCode, Json<Created>), ApiError> {
    let who = state.auth.caller(&headers).await?;
    let caller = &who.principal;
    caller.require(Scope::OrgWrite)?;
    let org = acting_org(caller, body.org)?;
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
    let people = &state.auth.people;
    people
        .audit
        .record(caller_entry(
            people,
            &who,
            &record.org,
            &client,
            "api-key.create",
            Some(("token", &record.id)),
            serde_json::json!({"name": record.name, "scopes": record.scopes, "projects": record.projects}),
        ))
        .await;
    Ok((StatusCode::CREATED, Json(Created { token, record })))
}

pub(super) async fn list(
    State(state): State<QueryState>,
    Query(param): Query<OrgParam>,
    headers: HeaderMap,
) -> Result<Json<Vec<TokenRecord>>, ApiError> {
    let caller = state.auth.principal(&headers).await?;
    caller.require(Scope::OrgWrite)?;
    let org = match (&caller.org, param.org) {
        (None, None) => None,
        (_, named) => Some(acting_org(&caller, named)?),
    };
    Ok(Json(state.tokens.list(org.as_deref()).await?))
}

pub(super) async fn revoke(
    State(state): State<QueryState>,
    Path(id): Path<String>,
    ClientInfo(client): ClientInfo,
    headers: HeaderMap,
) -> Result<Json<TokenRecord>, ApiError> {
    let who = state.auth.caller(&headers).await?;
    who.principal.require(Scope::OrgWrite)?;
    let record = state
        .tokens
        .revoke(who.principal.org.as_deref(), &id)
        .await?;
    let people = &state.auth.people;
    people
        .audit
        .record(caller_entry(
            people,
            &who,
            &record.org,
            &client,
            "api-key.remove",
            Some(("token", &record.id)),
            serde_json::json!({"name": record.name}),
        ))
        .await;
    Ok(Json(record))
}
