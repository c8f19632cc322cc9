//! DSN keys over HTTP, in the shape of Sentry's project keys API:
//! `GET|POST /api/0/projects/{org}/{project}/keys/`,
//! `GET|PUT|DELETE /api/0/projects/{org}/{project}/keys/{key}/` and
//! `POST /api/0/projects/{org}/{project}/keys/{key}/rotate/`. Needs a token with the
//! `project:write` scope (which `projects:admin` grants) that covers the project.

use std::sync::Arc;
use std::time::Duration;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use chrono::{DateTime, Utc};
use faultline_config::RateLimit;
use serde::{Deserialize, Serialize};

use super::auth::{Caller, ClientInfo, caller_entry};
use super::error::ApiError;
use crate::tenancy::projects::dsn;
use crate::tenancy::{KeyInfo, KeySource, KeyUpdate, Projects, Scope};

#[derive(Clone)]
pub(super) struct KeysState {
    pub(super) auth: super::auth::Auth,
    pub(super) projects: Arc<Projects>,
    /// Base URL of the DSNs in responses.
    pub(super) public_url: String,
}

/// Sentry's `rateLimit`: `count` events per `window` seconds.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RateLimitBody {
    count: u64,
    window: u64,
}

impl RateLimitBody {
    fn limit(&self) -> Result<RateLimit, ApiError> {
        let limit = RateLimit {
            events: self.count,
            window: Duration::from_secs(self.window),
        };
        if limit.is_valid() {
            Ok(limit)
        } else {
            Err(ApiError::BadRequest(
                "rateLimit: count and window (seconds) must be greater than zero".to_owned(),
            ))
        }
    }
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct DsnUrls {
    public: String,
}

/// A key as Sentry's API shows it (no secret key: faultline's DSNs have none).
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct KeyBody {
    id: String,
    name: Option<String>,
    label: Option<String>,
    public: String,
    project_id: u64,
    is_active: bool,
    rate_limit: Option<RateLimitBody>,
    dsn: DsnUrls,
    date_created: Option<DateTime<Utc>>,
    /// `config` keys are managed in the config file (the operator) and cannot be changed here.
    source: KeySource,
}

impl KeysState {
    fn body(&self, key: KeyInfo) -> KeyBody {
        KeyBody {
            id: key.public.clone(),
            name: key.label.clone(),
            label: key.label,
            dsn: DsnUrls {
                public: dsn(&self.public_url, &key.public, key.project_id),
            },
            public: key.public,
            project_id: key.project_id,
            is_active: key.enabled,
            rate_limit: key.rate_limit.map(|l| RateLimitBody {
                count: l.events,
                window: l.window.as_secs().max(1),
            }),
            date_created: key.created,
            source: key.source,
        }
    }

    /// The caller, if it may manage the keys (and settings) of `project` of `org`.
    pub(super) async fn admin(
        &self,
        headers: &HeaderMap,
        org: &str,
        project: &str,
    ) -> Result<Caller, ApiError> {
        self.member(headers, org, project, Scope::ProjectWrite)
            .await
    }

    /// The caller, when it holds `scope` and covers `project` of `org`.
    pub(super) async fn member(
        &self,
        headers: &HeaderMap,
        org: &str,
        project: &str,
        scope: Scope,
    ) -> Result<Caller, ApiError> {
        let who = self.auth.caller(headers).await?;
        let caller = &who.principal;
        caller.require(scope)?;
        let id = self
            .projects
            .ids_by_name(org, &[project.to_owned()])
            .await?;
        if !id.iter().all(|id| caller.covers(org, *id)) {
            return Err(ApiError::Forbidden(format!(
                "the API token does not cover project {project:?} of organization {org:?}"
            )));
        }
        Ok(who)
    }

    /// Records a key change in the audit log (Sentry's `projectkey.*` names).
    async fn audit(
        &self,
        caller: &Caller,
        client: &crate::people::Client,
        org: &str,
        event: &str,
        project: &str,
        key: &str,
    ) {
        let people = &self.auth.people;
        people
            .audit
            .record(caller_entry(
                people,
                caller,
                org,
                client,
                event,
                Some(("projectkey", key)),
                serde_json::json!({"project": project}),
            ))
            .await;
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct CreateBody {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    rate_limit: Option<RateLimitBody>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct UpdateBody {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    is_active: Option<bool>,
    /// `null` removes the key's own limit; absent leaves it.
    #[serde(default, deserialize_with = "serde_with_null::deserialize")]
    rate_limit: Option<Option<RateLimitBody>>,
}

/// Tells an absent field (`None`) from an explicit `null` (`Some(None)`).
mod serde_with_null {
    use serde::{Deserialize, Deserializer};

    pub(super) fn deserialize<'de, D, T>(d: D) -> Result<Option<Option<T>>, D::Error>
    where
        D: Deserializer<'de>,
        T: Deserialize<'de>,
    {
        Option::<T>::deserialize(d).map(Some)
    }
}

pub(super) async fn list(
    State(state): State<KeysState>,
    Path((org, project)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Json<Vec<KeyBody>>, ApiError> {
    state.admin(&headers, &org, &project).await?;
    let keys = state.projects.keys(&org, &project).await?;
    Ok(Json(keys.into_iter().map(|k| state.body(k)).collect()))
}

pub(super) async fn create(
    State(state): State<KeysState>,
    Path((org, project)): Path<(String, String)>,
    ClientInfo(client): ClientInfo,
    headers: HeaderMap,
    body: Option<Json<CreateBody>>,
) -> Result<(StatusCode, Json<KeyBody>), ApiError> {
    let caller = state.admin(&headers, &org, &project).await?;
    let body = body.map(|Json(b)| b).unwrap_or_default();
    let limit = body
        .rate_limit
        .as_ref()
        .map(RateLimitBody::limit)
        .transpose()?;
    let key = state
        .projects
        .create_key(&org, &project, body.name, limit)
        .await?;
    state
        .audit(
            &caller,
            &client,
            &org,
            "projectkey.create",
            &project,
            &key.public,
        )
        .await;
    Ok((StatusCode::CREATED, Json(state.body(key))))
}

async fn find(
    state: &KeysState,
    org: &str,
    project: &str,
    public: &str,
) -> Result<KeyInfo, ApiError> {
    state
        .projects
        .keys(org, project)
        .await?
        .into_iter()
        .find(|k| k.public == public)
        .ok_or_else(|| ApiError::NotFound(format!("project {project:?} has no DSN key {public:?}")))
}

pub(super) async fn get_key(
    State(state): State<KeysState>,
    Path((org, project, key)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> Result<Json<KeyBody>, ApiError> {
    state.admin(&headers, &org, &project).await?;
    Ok(Json(state.body(find(&state, &org, &project, &key).await?)))
}

pub(super) async fn update(
    State(state): State<KeysState>,
    Path((org, project, key)): Path<(String, String, String)>,
    ClientInfo(client): ClientInfo,
    headers: HeaderMap,
    Json(body): Json<UpdateBody>,
) -> Result<Json<KeyBody>, ApiError> {
    let caller = state.admin(&headers, &org, &project).await?;
    let rate_limit = match body.rate_limit {
        None => None,
        Some(None) => Some(None),
        Some(Some(limit)) => Some(Some(limit.limit()?)),
    };
    let update = KeyUpdate {
        enabled: body.is_active,
        label: body.name,
        rate_limit,
    };
    let key = state
        .projects
        .update_key(&org, &project, &key, update)
        .await?;
    state
        .audit(
            &caller,
            &client,
            &org,
            "projectkey.edit",
            &project,
            &key.public,
        )
        .await;
    Ok(Json(state.body(key)))
}

pub(super) async fn delete(
    State(state): State<KeysState>,
    Path((org, project, key)): Path<(String, String, String)>,
    ClientInfo(client): ClientInfo,
    headers: HeaderMap,
) -> Result<StatusCode, ApiError> {
    let caller = state.admin(&headers, &org, &project).await?;
    state.projects.delete_key(&org, &project, &key).await?;
    state
        .audit(&caller, &client, &org, "projectkey.remove", &project, &key)
        .await;
    Ok(StatusCode::NO_CONTENT)
}

pub(super) async fn rotate(
    State(state): State<KeysState>,
    Path((org, project, key)): Path<(String, String, String)>,
    ClientInfo(client): ClientInfo,
    headers: HeaderMap,
) -> Result<(StatusCode, Json<KeyBody>), ApiError> {
    let caller = state.admin(&headers, &org, &project).await?;
    let new = state.projects.rotate_key(&org, &project, &key).await?;
    state
        .audit(
            &caller,
            &client,
            &org,
            "projectkey.change",
            &project,
            &new.public,
        )
        .await;
    Ok((StatusCode::CREATED, Json(state.body(new))))
}
