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
use serde::{Deserialize, Serialize};

use super::error::ApiError;
use super::keys::KeysState;
use crate::tenancy::ProjectRules;

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

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(super) struct UpdateBody {
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
    /// `null` or `""` clears the advanced rules.
    #[serde(default, deserialize_with = "some_nullable")]
    relay_pii_config: Option<Option<String>>,
}

/// A field that may be absent (`None`), `null` (`Some(None)`) or set.
fn some_nullable<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(deserializer).map(Some)
}

impl UpdateBody {
    fn changes_grouping(&self) -> bool {
        self.grouping_enhancements.is_some() || self.fingerprinting_rules.is_some()
    }

    fn changes_privacy(&self) -> bool {
        self.data_scrubber.is_some()
            || self.data_scrubber_defaults.is_some()
            || self.sensitive_fields.is_some()
            || self.safe_fields.is_some()
            || self.scrub_ip_addresses.is_some()
            || self.relay_pii_config.is_some()
    }
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
    Json(update): Json<UpdateBody>,
) -> Result<Json<ProjectBody>, ApiError> {
    state.admin(&headers, &org, &project).await?;
    let id = state
        .projects
        .ids_by_name(&org, std::slice::from_ref(&project))
        .await?[0];
    let (changes_grouping, changes_privacy) = (update.changes_grouping(), update.changes_privacy());
    if changes_privacy {
        let (mut privacy, _) = state.projects.privacy_settings(id);
        if let Some(on) = update.data_scrubber {
            privacy.scrub_data = on;
        }
        if let Some(on) = update.data_scrubber_defaults {
            privacy.scrub_defaults = on;
        }
        if let Some(fields) = update.sensitive_fields {
            privacy.sensitive_fields = fields;
        }
        if let Some(fields) = update.safe_fields {
            privacy.safe_fields = fields;
        }
        if let Some(on) = update.scrub_ip_addresses {
            privacy.scrub_ip_addresses = on;
        }
        if let Some(config) = update.relay_pii_config {
            privacy.pii_config = config.filter(|c| !c.trim().is_empty());
        }
        state
            .projects
            .set_privacy_settings(&org, &project, privacy)
            .await?;
    }
    // a body without any field changes the grouping rules to what they are, as before
    if changes_grouping || !changes_privacy {
        let (current, _) = state.projects.grouping_rules(id);
        let rules = ProjectRules {
            grouping_enhancements: update
                .grouping_enhancements
                .unwrap_or(current.grouping_enhancements),
            fingerprinting_rules: update
                .fingerprinting_rules
                .unwrap_or(current.fingerprinting_rules),
        };
        state
            .projects
            .set_grouping_rules(&org, &project, rules)
            .await?;
    }
    Ok(Json(body(&state, &org, &project).await?))
}
