//! A project's settings over HTTP, in the shape of Sentry's project details API:
//! `GET|PUT /api/0/projects/{org}/{project}/` with the grouping fields Sentry names
//! `groupingEnhancements` (stack trace rules) and `fingerprintingRules`, and the data scrubbing
//! fields `dataScrubber`, `dataScrubberDefaults`, `sensitiveFields`, `safeFields`,
//! `scrubIPAddresses` and `relayPiiConfig` (docs/privacy.md). Needs a token with the
//! `project:write` scope that covers the project to change them (`project:read` to read). New
//! rules apply to new events only. The answer also carries the fields Sentry's clients read of
//! a project (`platform`, `dateCreated`, `isMember`, `hasAccess`, `status`, ...).

use axum::Json;
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use faultline_protocol::grouping::CONFIG_ID;
use serde::Serialize;

use super::error::ApiError;
use super::keys::KeysState;
use super::settings::SettingsChange;

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct ProjectBody {
    id: String,
    slug: String,
    name: String,
    grouping_config: &'static str,
    grouping_enhancements: String,
    fingerprinting_rules: String,
    /// Whether the rules come from the config file (then they are changed there).
    grouping_rules_from_config: bool,
    /// Sentry's "Data Scrubber".
    data_scrubber: bool,
    /// Sentry's "Use Default Scrubbers".
    data_scrubber_defaults: bool,
    sensitive_fields: Vec<String>,
    safe_fields: Vec<String>,
    #[serde(rename = "scrubIPAddresses")]
    scrub_ip_addresses: bool,
    /// Advanced rules, Relay's PII config as JSON text.
    relay_pii_config: Option<String>,
    /// Whether the data scrubbing settings come from the config file.
    privacy_from_config: bool,
    platform: Option<String>,
    date_created: &'static str,
    is_member: bool,
    has_access: bool,
    status: &'static str,
    environments: Vec<String>,
    features: Vec<String>,
    organization: serde_json::Value,
}

async fn body(state: &KeysState, org: &str, project: &str) -> Result<ProjectBody, ApiError> {
    let id = state
        .projects
        .ids_by_name(org, &[project.to_owned()])
        .await?[0];
    let (rules, from_config) = state.projects.grouping_rules(id);
    let (privacy, privacy_from_config) = state.projects.privacy_settings(id);
    Ok(ProjectBody {
        data_scrubber: privacy.scrub_data,
        data_scrubber_defaults: privacy.scrub_defaults,
        sensitive_fields: privacy.sensitive_fields,
        safe_fields: privacy.safe_fields,
        scrub_ip_addresses: privacy.scrub_ip_addresses,
        relay_pii_config: privacy.pii_config,
        privacy_from_config,
        id: id.to_string(),
        slug: project.to_owned(),
        name: project.to_owned(),
        grouping_config: CONFIG_ID,
        grouping_enhancements: rules.grouping_enhancements,
        fingerprinting_rules: rules.fingerprinting_rules,
        grouping_rules_from_config: from_config,
        platform: None,
        date_created: "1970-01-01T00:00:00.000Z",
        is_member: true,
        has_access: true,
        status: "active",
        environments: Vec::new(),
        features: Vec::new(),
        organization: serde_json::json!({"id": org, "slug": org, "name": org}),
    })
}

pub(super) async fn get_project(
    State(state): State<KeysState>,
    Path((org, project)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Json<ProjectBody>, ApiError> {
    state
        .member(&headers, &org, &project, crate::tenancy::Scope::ProjectRead)
        .await?;
    Ok(Json(body(&state, &org, &project).await?))
}

pub(super) async fn put_project(
    State(state): State<KeysState>,
    Path((org, project)): Path<(String, String)>,
    headers: HeaderMap,
    Json(change): Json<SettingsChange>,
) -> Result<Json<ProjectBody>, ApiError> {
    state.admin(&headers, &org, &project).await?;
    let id = state
        .projects
        .ids_by_name(&org, std::slice::from_ref(&project))
        .await?[0];
    // a body without any field sets the grouping rules to what they are, as before
    let grouping = !change.changes_privacy();
    change
        .check(&state.projects, Some(id), &project, grouping)?
        .apply(&state.projects, &org, &project)
        .await?;
    Ok(Json(body(&state, &org, &project).await?))
}
