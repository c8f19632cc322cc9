//! Projects declared by an administrator or the Kubernetes operator:
//! `PUT /api/0/organizations/{org}/projects/{project}/` creates the project of the
//! organization or brings it to the declared state (platform, retention, rate limit, DSN keys,
//! grouping and data scrubbing settings), and answers `200` with the same body for the same
//! declaration; `DELETE` on the same path removes the project's DSN keys (its events follow
//! its retention). Both need a token with the `project:admin` scope for the whole organization
//! (not one limited to some projects), such as the admin token file. A faultline path: Sentry
//! creates projects under a team instead.
//!
//! A declaration that changes something, and a removal of keys, is in the organization's audit
//! log (`project.register`, `project.unregister`, with the caller and the changed fields'
//! names, never key values); repeating a declaration writes no entry.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use faultline_config::{Quota, RateLimit};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::auth::{Caller, ClientInfo, caller_entry};
use super::error::ApiError;
use super::keys::KeysState;
use super::settings::SettingsChange;
use crate::tenancy::projects::dsn;
use crate::tenancy::{DeclaredKey, Project, Registration, Scope};

/// Sentry's `rateLimit`: `count` events per `window` seconds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct LimitBody {
    count: u64,
    window: u64,
}

impl LimitBody {
    fn limit(&self) -> RateLimit {
        RateLimit {
            events: self.count,
            window: std::time::Duration::from_secs(self.window),
        }
    }

    fn of(limit: &RateLimit) -> Self {
        Self {
            count: limit.events,
            window: limit.window.as_secs(),
        }
    }
}

/// A quota: at most `limit` items of `categories` (all, when empty) per `window` seconds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct QuotaBody {
    #[serde(default)]
    categories: Vec<String>,
    limit: u64,
    window: u64,
}

impl QuotaBody {
    fn quota(&self) -> Quota {
        Quota {
            categories: self.categories.clone(),
            limit: self.limit,
            window: std::time::Duration::from_secs(self.window),
        }
    }

    fn of(quota: &Quota) -> Self {
        Self {
            categories: quota.categories.clone(),
            limit: quota.limit,
            window: quota.window.as_secs(),
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct KeyDeclaration {
    #[serde(default)]
    name: Option<String>,
    public: String,
    #[serde(default = "active")]
    is_active: bool,
    #[serde(default)]
    rate_limit: Option<LimitBody>,
}

fn active() -> bool {
    true
}

/// The declared project itself; absent fields leave a setting as it is. The rest of a
/// declaration are the grouping and data scrubbing fields of [`SettingsChange`].
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct Declaration {
    #[serde(default)]
    id: Option<u64>,
    #[serde(default)]
    platform: Option<String>,
    #[serde(default)]
    retention_days: Option<u32>,
    #[serde(default)]
    rate_limit: Option<LimitBody>,
    #[serde(default)]
    quotas: Option<Vec<QuotaBody>>,
    #[serde(default)]
    keys: Option<Vec<KeyDeclaration>>,
}

/// The fields of [`Declaration`], as a declaration names them.
const DECLARATION_FIELDS: [&str; 6] = [
    "id",
    "platform",
    "retentionDays",
    "rateLimit",
    "quotas",
    "keys",
];

impl Declaration {
    /// Splits a declaration into the project and its settings, each parsed strictly, so an
    /// unknown or misspelt field is refused by name.
    fn parse(body: serde_json::Map<String, Value>) -> Result<(Self, SettingsChange), ApiError> {
        let (own, settings): (serde_json::Map<_, _>, serde_json::Map<_, _>) = body
            .into_iter()
            .partition(|(field, _)| DECLARATION_FIELDS.contains(&field.as_str()));
        let invalid = |e: serde_json::Error| {
            ApiError::BadRequest(format!("invalid project declaration: {e}"))
        };
        Ok((
            serde_json::from_value(Value::Object(own)).map_err(invalid)?,
            serde_json::from_value(Value::Object(settings)).map_err(invalid)?,
        ))
    }
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct KeyAnswer {
    name: Option<String>,
    public: String,
    is_active: bool,
    rate_limit: Option<LimitBody>,
    dsn: String,
}

/// The project as stored after the declaration.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct ProjectAnswer {
    id: String,
    slug: String,
    organization: String,
    platform: Option<String>,
    retention_days: Option<u32>,
    rate_limit: Option<LimitBody>,
    quotas: Vec<QuotaBody>,
    keys: Vec<KeyAnswer>,
}

impl KeysState {
    /// The caller, when it may create and remove projects of `org`.
    async fn registrar(&self, headers: &HeaderMap, org: &str) -> Result<Caller, ApiError> {
        let who = self.auth.caller(headers).await?;
        let caller = &who.principal;
        caller.require(Scope::ProjectAdmin)?;
        if caller.org.as_deref().is_some_and(|o| o != org) || caller.projects.is_some() {
            return Err(ApiError::Forbidden(format!(
                "registering projects needs a token for all of organization {org:?}"
            )));
        }
        Ok(who)
    }

    /// Records a change of project `project` in `org`'s audit log.
    async fn audit_change(
        &self,
        caller: &Caller,
        client: &crate::people::Client,
        org: &str,
        event: &str,
        project: &Project,
        changed: &[&str],
    ) {
        let people = &self.auth.people;
        let id = project.id.to_string();
        people
            .audit
            .record(caller_entry(
                people,
                caller,
                org,
                client,
                event,
                Some(("project", &id)),
                serde_json::json!({"project": project.name, "changed": changed}),
            ))
            .await;
    }

    fn answer(&self, project: &Project) -> ProjectAnswer {
        ProjectAnswer {
            id: project.id.to_string(),
            slug: project.name.clone(),
            organization: project.org.clone(),
            platform: project.platform.clone(),
            retention_days: project.retention_days,
            rate_limit: project.rate_limit.as_ref().map(LimitBody::of),
            quotas: project.quotas.iter().map(QuotaBody::of).collect(),
            keys: project
                .keys
                .iter()
                .map(|k| KeyAnswer {
                    name: k.label.clone(),
                    public: k.public.clone(),
                    is_active: k.enabled,
                    rate_limit: k.rate_limit.as_ref().map(LimitBody::of),
                    dsn: dsn(&self.public_url, &k.public, project.id),
                })
                .collect(),
        }
    }
}

pub(super) async fn put(
    State(state): State<KeysState>,
    Path((org, project)): Path<(String, String)>,
    ClientInfo(client): ClientInfo,
    headers: HeaderMap,
    Json(body): Json<serde_json::Map<String, Value>>,
) -> Result<Json<ProjectAnswer>, ApiError> {
    let caller = state.registrar(&headers, &org).await?;
    let (declared, settings) = Declaration::parse(body)?;
    // everything is checked before the project is written, so a refusal changes nothing
    let existing = state
        .projects
        .list()
        .await?
        .into_iter()
        .find(|p| p.org == org && p.name == project)
        .map(|p| p.id);
    let settings = settings.check(&state.projects, existing, &project, false)?;
    let registration = Registration {
        id: declared.id,
        platform: declared.platform,
        retention_days: declared.retention_days,
        rate_limit: declared.rate_limit.as_ref().map(LimitBody::limit),
        quotas: declared
            .quotas
            .map(|quotas| quotas.iter().map(QuotaBody::quota).collect()),
        keys: declared.keys.map(|keys| {
            keys.into_iter()
                .map(|k| DeclaredKey {
                    name: k.name,
                    public: k.public,
                    enabled: k.is_active,
                    rate_limit: k.rate_limit.as_ref().map(LimitBody::limit),
                })
                .collect()
        }),
    };
    let registered = state
        .projects
        .register(&org, &project, registration)
        .await?;
    let settings = settings.unchanged_left_out(&state.projects, registered.project.id);
    let mut changed = registered.changed.clone();
    changed.extend(settings.changed_fields());
    settings.apply(&state.projects, &org, &project).await?;
    if !changed.is_empty() {
        state
            .audit_change(
                &caller,
                &client,
                &org,
                "project.register",
                &registered.project,
                &changed,
            )
            .await;
    }
    Ok(Json(state.answer(&registered.project)))
}

pub(super) async fn delete(
    State(state): State<KeysState>,
    Path((org, project)): Path<(String, String)>,
    ClientInfo(client): ClientInfo,
    headers: HeaderMap,
) -> Result<StatusCode, ApiError> {
    let caller = state.registrar(&headers, &org).await?;
    let (stored, removed) = state.projects.unregister(&org, &project).await?;
    if removed {
        state
            .audit_change(
                &caller,
                &client,
                &org,
                "project.unregister",
                &stored,
                &["keys"],
            )
            .await;
    }
    Ok(StatusCode::NO_CONTENT)
}

/// What `POST .../erase/` needs: the registrar's checks and the node whose maintenance takes
/// the rows out.
#[derive(Clone)]
pub(super) struct EraseState {
    pub(super) keys: KeysState,
    pub(super) node: std::sync::Arc<crate::node::Node>,
}

/// The answer to an erase.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct EraseAnswer {
    id: String,
    slug: String,
    organization: String,
    /// When the erase was first asked for.
    erased_at: chrono::DateTime<chrono::Utc>,
    /// Stored files taken out by this call (rows flushed later are taken out by maintenance).
    files: usize,
}

/// `POST /api/0/organizations/{org}/projects/{project}/erase/`: erases the project (keys,
/// project and every stored row; see `tenancy::erasure`). `202`, also when it was erased
/// before (idempotent); `404` for a project that never existed.
pub(super) async fn erase(
    State(state): State<EraseState>,
    Path((org, project)): Path<(String, String)>,
    ClientInfo(client): ClientInfo,
    headers: HeaderMap,
) -> Result<(StatusCode, Json<EraseAnswer>), ApiError> {
    let caller = state.keys.registrar(&headers, &org).await?;
    let (erasure, erased_now) = state.keys.projects.erase(&org, &project).await?;
    if erased_now {
        let people = &state.keys.auth.people;
        let id = erasure.project_id.to_string();
        people
            .audit
            .record(caller_entry(
                people,
                &caller,
                &org,
                &client,
                "project.erase",
                Some(("project", &id)),
                serde_json::json!({"project": project}),
            ))
            .await;
    }
    let report = crate::maintenance::Maintenance::for_node(&state.node)
        .erase_projects()
        .await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(EraseAnswer {
            id: erasure.project_id.to_string(),
            slug: erasure.name,
            organization: erasure.org,
            erased_at: erasure.at,
            files: report.files,
        }),
    ))
}
