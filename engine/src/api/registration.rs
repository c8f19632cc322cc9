//! Projects declared by an administrator or the Kubernetes operator:
//! `PUT /api/0/organizations/{org}/projects/{project}/` creates the project of the
//! organization or brings it to the declared state (platform, retention, rate limit, DSN keys,
//! grouping and data scrubbing settings), and answers `200` with the same body for the same
//! declaration; `DELETE` on the same path removes the project's DSN keys (its events follow
//! its retention). Both need a token with the `project:admin` scope for the whole organization
//! (not one limited to some projects), such as the admin token file. A faultline path: Sentry
//! creates projects under a team instead.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use faultline_config::RateLimit;
use serde::{Deserialize, Serialize};

use super::error::ApiError;
use super::keys::KeysState;
use crate::tenancy::projects::dsn;
use crate::tenancy::{DeclaredKey, Project, ProjectRules, Registration, Scope};

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

/// The declared state; absent fields leave a setting as it is.
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
    keys: Option<Vec<KeyDeclaration>>,
    #[serde(default)]
    grouping_enhancements: Option<String>,
    #[serde(default)]
    fingerprinting_rules: Option<String>,
    #[serde(default)]
    data_scrubber: Option<bool>,
    #[serde(default)]
    data_scrubber_defaults: Option<bool>,
    #[serde(default)]
    sensitive_fields: Option<Vec<String>>,
    #[serde(default)]
    safe_fields: Option<Vec<String>>,
    #[serde(default, rename = "scrubIPAddresses")]
    scrub_ip_addresses: Option<bool>,
    /// `""` clears the advanced rules.
    #[serde(default)]
    relay_pii_config: Option<String>,
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
    keys: Vec<KeyAnswer>,
}

impl KeysState {
    /// The caller, when it may create and remove projects of `org`.
    async fn registrar(&self, headers: &HeaderMap, org: &str) -> Result<(), ApiError> {
        let who = self.auth.caller(headers).await?;
        let caller = &who.principal;
        caller.require(Scope::ProjectAdmin)?;
        if caller.org.as_deref().is_some_and(|o| o != org) || caller.projects.is_some() {
            return Err(ApiError::Forbidden(format!(
                "registering projects needs a token for all of organization {org:?}"
            )));
        }
        Ok(())
    }

    fn answer(&self, project: &Project) -> ProjectAnswer {
        ProjectAnswer {
            id: project.id.to_string(),
            slug: project.name.clone(),
            organization: project.org.clone(),
            platform: project.platform.clone(),
            retention_days: project.retention_days,
            rate_limit: project.rate_limit.as_ref().map(LimitBody::of),
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
    headers: HeaderMap,
    Json(declared): Json<Declaration>,
) -> Result<Json<ProjectAnswer>, ApiError> {
    state.registrar(&headers, &org).await?;
    let registration = Registration {
        id: declared.id,
        platform: declared.platform,
        retention_days: declared.retention_days,
        rate_limit: declared.rate_limit.as_ref().map(LimitBody::limit),
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
    let (stored, _created) = state
        .projects
        .register(&org, &project, registration)
        .await?;
    if declared.grouping_enhancements.is_some() || declared.fingerprinting_rules.is_some() {
        let (current, _) = state.projects.grouping_rules(stored.id);
        let rules = ProjectRules {
            grouping_enhancements: declared
                .grouping_enhancements
                .unwrap_or_else(|| current.grouping_enhancements.clone()),
            fingerprinting_rules: declared
                .fingerprinting_rules
                .unwrap_or_else(|| current.fingerprinting_rules.clone()),
        };
        if rules != current {
            state
                .projects
                .set_grouping_rules(&org, &project, rules)
                .await?;
        }
    }
    let (current, _) = state.projects.privacy_settings(stored.id);
    let mut privacy = current.clone();
    if let Some(on) = declared.data_scrubber {
        privacy.scrub_data = on;
    }
    if let Some(on) = declared.data_scrubber_defaults {
        privacy.scrub_defaults = on;
    }
    if let Some(fields) = declared.sensitive_fields {
        privacy.sensitive_fields = fields;
    }
    if let Some(fields) = declared.safe_fields {
        privacy.safe_fields = fields;
    }
    if let Some(on) = declared.scrub_ip_addresses {
        privacy.scrub_ip_addresses = on;
    }
    if let Some(config) = declared.relay_pii_config {
        privacy.pii_config = Some(config).filter(|c| !c.trim().is_empty());
    }
    if privacy != current {
        state
            .projects
            .set_privacy_settings(&org, &project, privacy)
            .await?;
    }
    Ok(Json(state.answer(&stored)))
}

pub(super) async fn delete(
    State(state): State<KeysState>,
    Path((org, project)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<StatusCode, ApiError> {
    state.registrar(&headers, &org).await?;
    state.projects.unregister(&org, &project).await?;
    Ok(StatusCode::NO_CONTENT)
}
