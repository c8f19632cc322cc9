//! `/api/tokens`: create, list and revoke API tokens of the caller's organization. Needs the
//! `org:write` scope (which `projects:admin` grants); a token never creates one with more rights than it has itself.
//!
//! `/api/0/api-tokens/` (Sentry's path): a logged-in person's own tokens. `GET` lists them,
//! `POST {name, scopes}` creates one (the secret is in this answer only; a scope the person
//! does not hold is a 403 naming it), `DELETE {tokenId}` or `DELETE /api/0/api-tokens/{id}/`
//! revokes one. Such a token acts with the person's current rights (see
//! [`crate::tenancy::tokens`]).

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::auth::{Auth, Caller, ClientInfo, caller_entry};
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
            owner: None,
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

/// What `/api/0/api-tokens/` shows of a person's token.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct PersonalToken {
    id: String,
    name: String,
    scopes: Vec<Scope>,
    date_created: DateTime<Utc>,
    /// The token itself: only in the answer that created it.
    #[serde(skip_serializing_if = "Option::is_none")]
    token: Option<String>,
}

impl PersonalToken {
    fn of(record: TokenRecord, token: Option<String>) -> Self {
        Self {
            id: record.id,
            name: record.name,
            scopes: record.scopes,
            date_created: record.created,
            token,
        }
    }
}

/// A logged-in person (not an API token: a token cannot mint or revoke tokens of its owner).
async fn person(auth: &Auth, headers: &HeaderMap) -> Result<(Caller, String), ApiError> {
    let caller = auth.caller(headers).await?;
    match caller.actor.as_ref().map(|a| a.user_id.clone()) {
        Some(user_id) => Ok((caller, user_id)),
        None => Err(ApiError::Forbidden(
            "personal API tokens are managed by the logged-in person they belong to, not with \
             an API token"
                .to_owned(),
        )),
    }
}

pub(super) async fn list_personal(
    State(state): State<QueryState>,
    headers: HeaderMap,
) -> Result<Json<Vec<PersonalToken>>, ApiError> {
    let (_, user_id) = person(&state.auth, &headers).await?;
    let tokens = state.tokens.list_owned(&user_id).await?;
    Ok(Json(
        tokens
            .into_iter()
            .map(|r| PersonalToken::of(r, None))
            .collect(),
    ))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct PersonalBody {
    name: String,
    /// Sentry's scope names; `events:read` and `projects:admin` are expanded.
    #[serde(deserialize_with = "crate::tenancy::tokens::deserialize_scopes")]
    scopes: Vec<Scope>,
}

pub(super) async fn create_personal(
    State(state): State<QueryState>,
    ClientInfo(client): ClientInfo,
    headers: HeaderMap,
    Json(body): Json<PersonalBody>,
) -> Result<Response, ApiError> {
    let (caller, user_id) = person(&state.auth, &headers).await?;
    let (token, record) = state
        .tokens
        .create_personal(&user_id, &caller.principal, &body.name, body.scopes)
        .await?;
    audit_personal(&state.auth, &caller, &client, "api-token.create", &record).await;
    let mut response = (
        StatusCode::CREATED,
        Json(PersonalToken::of(record, Some(token))),
    )
        .into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

/// The audit entry of a person's token created or revoked.
async fn audit_personal(
    auth: &Auth,
    caller: &Caller,
    client: &crate::people::Client,
    event: &str,
    record: &TokenRecord,
) {
    let people = &auth.people;
    people
        .audit
        .record(caller_entry(
            people,
            caller,
            &record.org,
            client,
            event,
            Some(("token", &record.id)),
            serde_json::json!({"name": record.name, "scopes": record.scopes}),
        ))
        .await;
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct RevokeBody {
    /// The token's id (Sentry's clients send a number; ours are text).
    token_id: serde_json::Value,
}

pub(super) async fn revoke_personal(
    State(state): State<QueryState>,
    ClientInfo(client): ClientInfo,
    headers: HeaderMap,
    Json(body): Json<RevokeBody>,
) -> Result<StatusCode, ApiError> {
    let id = match body.token_id {
        serde_json::Value::String(s) => s,
        serde_json::Value::Number(n) => n.to_string(),
        _ => {
            return Err(ApiError::BadRequest(
                "tokenId must be the token's id".to_owned(),
            ));
        }
    };
    revoke_own(&state, &client, &headers, &id).await
}

pub(super) async fn revoke_personal_id(
    State(state): State<QueryState>,
    Path(id): Path<String>,
    ClientInfo(client): ClientInfo,
    headers: HeaderMap,
) -> Result<StatusCode, ApiError> {
    revoke_own(&state, &client, &headers, &id).await
}

async fn revoke_own(
    state: &QueryState,
    client: &crate::people::Client,
    headers: &HeaderMap,
    id: &str,
) -> Result<StatusCode, ApiError> {
    let (caller, user_id) = person(&state.auth, headers).await?;
    let record = state.tokens.revoke_owned(&user_id, id).await?;
    audit_personal(&state.auth, &caller, client, "api-token.remove", &record).await;
    Ok(StatusCode::NO_CONTENT)
}
