//! Alert rules and channels over HTTP:
//! `GET|POST /api/0/organizations/{org}/alert-rules/`,
//! `GET|PUT|DELETE /api/0/organizations/{org}/alert-rules/{name}/`,
//! `GET|POST /api/0/organizations/{org}/alert-channels/`,
//! `GET|PUT|DELETE /api/0/organizations/{org}/alert-channels/{name}/`,
//! `POST /api/0/organizations/{org}/alert-channels/{name}/test/` and, in the place of Sentry's
//! project rules, `GET /api/0/projects/{org}/{project}/rules/`.
//!
//! Reading needs `alerts:read`, changing `alerts:write`. Bodies have the shape of the config
//! file's `[[alerts.rules]]` and `[[alerts.channels]]` entries, so secrets are named by file or
//! environment variable and never travel. Those of the config file are listed with
//! `"source": "config"` and cannot be changed here. Every change is in the audit log.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use faultline_config::{ChannelConfig, RuleConfig};
use serde_json::{Value, json};

use super::auth::{Caller, ClientInfo, caller_entry};
use super::error::ApiError;
use crate::alerts::Alerts;
use crate::alerts::declared::{ChannelSecrets, Kind};
use crate::tenancy::{Projects, Scope};

#[derive(Clone)]
pub(crate) struct AlertsState {
    pub(super) auth: super::auth::Auth,
    pub(super) alerts: Arc<Alerts>,
    pub(super) projects: Arc<Projects>,
}

/// Refuses a caller without `scope`, or of another organization than `org`.
pub(crate) fn check(caller: &Caller, org: &str, scope: Scope) -> Result<(), ApiError> {
    caller.principal.require(scope)?;
    if caller.principal.org.as_deref().is_some_and(|o| o != org) {
        return Err(ApiError::Forbidden(format!(
            "the API token is not one of organization {org:?}"
        )));
    }
    Ok(())
}

impl AlertsState {
    /// The caller, if it holds `scope` in organization `org`.
    async fn caller(
        &self,
        headers: &HeaderMap,
        org: &str,
        scope: Scope,
    ) -> Result<Caller, ApiError> {
        let who = self.auth.caller(headers).await?;
        check(&who, org, scope)?;
        Ok(who)
    }

    async fn audit(
        &self,
        caller: &Caller,
        client: &crate::people::Client,
        org: &str,
        event: &str,
        target: (&str, &str),
        data: Value,
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
                Some(target),
                data,
            ))
            .await;
    }

    fn rule_body(&self, rule: &RuleConfig) -> Value {
        let mut body = serde_json::to_value(rule).unwrap_or_default();
        body["interval"] = json!(humantime::format_duration(rule.interval).to_string());
        body["source"] = json!(self.alerts.source(Kind::Rule, &rule.name));
        body
    }

    async fn channel_bodies(&self) -> Result<Vec<Value>, ApiError> {
        let ruleset = self.alerts.ruleset();
        let last = self.alerts.last_attempts().await?;
        Ok(ruleset
            .channels
            .values()
            .map(|channel| {
                let mut body = serde_json::to_value(&channel.config).unwrap_or_default();
                body["source"] = json!(self.alerts.source(Kind::Channel, channel.name()));
                body["stored_secrets"] = json!(channel.stored);
                body["last_attempt"] = match last.get(channel.name()) {
                    Some(a) => json!({
                        "at": a.at,
                        "status": a.status.as_str(),
                        "response_code": a.response_code,
                        "error": a.error,
                    }),
                    None => Value::Null,
                };
                body
            })
            .collect())
    }
}

fn parse<T: serde::de::DeserializeOwned>(body: &[u8], what: &str) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| ApiError::BadRequest(format!("invalid {what}: {e}")))
}

fn same_name(path: &str, body: &str) -> Result<(), ApiError> {
    if path == body {
        Ok(())
    } else {
        Err(ApiError::BadRequest(format!(
            "name: {body:?} differs from {path:?} in the URL (a name cannot change)"
        )))
    }
}

pub(super) async fn list_rules(
    State(state): State<AlertsState>,
    Path(org): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Vec<Value>>, ApiError> {
    state.caller(&headers, &org, Scope::AlertsRead).await?;
    let ruleset = state.alerts.ruleset();
    Ok(Json(
        ruleset
            .rules
            .iter()
            .filter(|r| r.org == org)
            .map(|r| state.rule_body(r))
            .collect(),
    ))
}

pub(super) async fn get_rule(
    State(state): State<AlertsState>,
    Path((org, name)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    state.caller(&headers, &org, Scope::AlertsRead).await?;
    let ruleset = state.alerts.ruleset();
    let rule = ruleset
        .rules
        .iter()
        .find(|r| r.org == org && r.name == name)
        .ok_or_else(|| ApiError::NotFound(format!("no alert rule is named {name:?}")))?;
    Ok(Json(state.rule_body(rule)))
}

async fn put_rule(
    state: &AlertsState,
    headers: &HeaderMap,
    client: &crate::people::Client,
    org: &str,
    path_name: Option<&str>,
    body: &[u8],
) -> Result<Json<Value>, ApiError> {
    let caller = state.caller(headers, org, Scope::AlertsWrite).await?;
    let rule: RuleConfig = parse(body, "alert rule")?;
    let rule = save_rule(state, &caller, client, org, path_name, rule).await?;
    Ok(Json(state.rule_body(&rule)))
}

/// Creates (`path_name` none) or replaces a rule of `org` for `caller`, audited.
pub(crate) async fn save_rule(
    state: &AlertsState,
    caller: &Caller,
    client: &crate::people::Client,
    org: &str,
    path_name: Option<&str>,
    mut rule: RuleConfig,
) -> Result<RuleConfig, ApiError> {
    check(caller, org, Scope::AlertsWrite)?;
    if let Some(name) = path_name {
        same_name(name, &rule.name)?;
    }
    org.clone_into(&mut rule.org);
    let create = path_name.is_none();
    state.alerts.put_rule(rule.clone(), create).await?;
    let event = if create {
        "alert_rule.create"
    } else {
        "alert_rule.update"
    };
    state
        .audit(
            caller,
            client,
            org,
            event,
            ("alert_rule", &rule.name),
            serde_json::to_value(&rule).unwrap_or_default(),
        )
        .await;
    Ok(rule)
}

pub(super) async fn create_rule(
    State(state): State<AlertsState>,
    Path(org): Path<String>,
    ClientInfo(client): ClientInfo,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let created = put_rule(&state, &headers, &client, &org, None, &body).await?;
    Ok((StatusCode::CREATED, created))
}

pub(super) async fn update_rule(
    State(state): State<AlertsState>,
    Path((org, name)): Path<(String, String)>,
    ClientInfo(client): ClientInfo,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Json<Value>, ApiError> {
    put_rule(&state, &headers, &client, &org, Some(&name), &body).await
}

pub(super) async fn delete_rule(
    State(state): State<AlertsState>,
    Path((org, name)): Path<(String, String)>,
    ClientInfo(client): ClientInfo,
    headers: HeaderMap,
) -> Result<StatusCode, ApiError> {
    let caller = state.caller(&headers, &org, Scope::AlertsWrite).await?;
    remove(&state, &caller, &client, &org, Kind::Rule, &name).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Deletes a rule of `org` (or a channel) made through the API, for `caller`, audited.
pub(crate) async fn remove(
    state: &AlertsState,
    caller: &Caller,
    client: &crate::people::Client,
    org: &str,
    kind: Kind,
    name: &str,
) -> Result<(), ApiError> {
    check(caller, org, Scope::AlertsWrite)?;
    if kind == Kind::Rule {
        let ruleset = state.alerts.ruleset();
        if !ruleset.rules.iter().any(|r| r.org == org && r.name == name) {
            return Err(ApiError::NotFound(format!(
                "no alert rule is named {name:?}"
            )));
        }
    }
    state.alerts.remove(kind, name).await?;
    let (event, target) = match kind {
        Kind::Rule => ("alert_rule.delete", "alert_rule"),
        Kind::Channel => ("alert_channel.delete", "alert_channel"),
    };
    state
        .audit(caller, client, org, event, (target, name), json!({}))
        .await;
    Ok(())
}

pub(super) async fn project_rules(
    State(state): State<AlertsState>,
    Path((org, project)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Json<Vec<Value>>, ApiError> {
    let caller = state.caller(&headers, &org, Scope::AlertsRead).await?;
    let ids = state
        .projects
        .ids_by_name(&org, std::slice::from_ref(&project))
        .await?;
    if !ids.iter().all(|id| caller.principal.covers(&org, *id)) {
        return Err(ApiError::Forbidden(format!(
            "the API token does not cover project {project:?} of organization {org:?}"
        )));
    }
    let ruleset = state.alerts.ruleset();
    Ok(Json(
        ruleset
            .rules
            .iter()
            .filter(|r| r.org == org && (r.projects.is_empty() || r.projects.contains(&project)))
            .map(|r| state.rule_body(r))
            .collect(),
    ))
}

pub(super) async fn list_channels(
    State(state): State<AlertsState>,
    Path(org): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Vec<Value>>, ApiError> {
    state.caller(&headers, &org, Scope::AlertsRead).await?;
    Ok(Json(state.channel_bodies().await?))
}

pub(super) async fn get_channel(
    State(state): State<AlertsState>,
    Path((org, name)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    state.caller(&headers, &org, Scope::AlertsRead).await?;
    state
        .channel_bodies()
        .await?
        .into_iter()
        .find(|c| c["name"] == name.as_str())
        .map(Json)
        .ok_or_else(|| ApiError::NotFound(format!("no alert channel is named {name:?}")))
}

async fn put_channel(
    state: &AlertsState,
    headers: &HeaderMap,
    client: &crate::people::Client,
    org: &str,
    path_name: Option<&str>,
    body: &[u8],
) -> Result<Json<Value>, ApiError> {
    let caller = state.caller(headers, org, Scope::AlertsWrite).await?;
    let (channel, secrets) = parse_channel(body)?;
    let (channel, stored) =
        save_channel(state, &caller, client, org, path_name, channel, secrets).await?;
    let mut body = serde_json::to_value(&channel).unwrap_or_default();
    body["source"] = json!("api");
    body["stored_secrets"] = json!(stored);
    Ok(Json(body))
}

/// A channel's body: the declaration, plus the secrets typed in (`url_secret`,
/// `routing_key_secret`, `signing_secret`), which the server stores and never shows.
fn parse_channel(body: &[u8]) -> Result<(ChannelConfig, ChannelSecrets), ApiError> {
    let mut value: Value = parse(body, "alert channel")?;
    let mut secrets = ChannelSecrets::default();
    if let Some(object) = value.as_object_mut() {
        for (field, slot) in [
            ("url_secret", &mut secrets.url),
            ("routing_key_secret", &mut secrets.routing_key),
            ("signing_secret", &mut secrets.signing_secret),
        ] {
            match object.remove(field) {
                None | Some(Value::Null) => {}
                Some(Value::String(text)) if !text.trim().is_empty() => *slot = Some(text),
                Some(_) => {
                    return Err(ApiError::BadRequest(format!(
                        "{field}: must be a non-empty string"
                    )));
                }
            }
        }
    }
    let channel = serde_json::from_value(value)
        .map_err(|e| ApiError::BadRequest(format!("invalid alert channel: {e}")))?;
    Ok((channel, secrets))
}

/// Creates (`path_name` none) or replaces a channel for `caller`, audited; returns it with the
/// names of its stored secrets.
pub(crate) async fn save_channel(
    state: &AlertsState,
    caller: &Caller,
    client: &crate::people::Client,
    org: &str,
    path_name: Option<&str>,
    channel: ChannelConfig,
    secrets: ChannelSecrets,
) -> Result<(ChannelConfig, Vec<&'static str>), ApiError> {
    check(caller, org, Scope::AlertsWrite)?;
    if let Some(name) = path_name {
        same_name(name, &channel.name)?;
    }
    let create = path_name.is_none();
    let typed = secrets.names();
    let stored = state
        .alerts
        .put_channel(channel.clone(), secrets, create)
        .await?;
    let event = if create {
        "alert_channel.create"
    } else {
        "alert_channel.update"
    };
    state
        .audit(
            caller,
            client,
            org,
            event,
            ("alert_channel", &channel.name),
            json!({"kind": channel.kind.as_str(), "secrets_typed": typed}),
        )
        .await;
    Ok((channel, stored))
}

pub(super) async fn create_channel(
    State(state): State<AlertsState>,
    Path(org): Path<String>,
    ClientInfo(client): ClientInfo,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let created = put_channel(&state, &headers, &client, &org, None, &body).await?;
    Ok((StatusCode::CREATED, created))
}

pub(super) async fn update_channel(
    State(state): State<AlertsState>,
    Path((org, name)): Path<(String, String)>,
    ClientInfo(client): ClientInfo,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Result<Json<Value>, ApiError> {
    put_channel(&state, &headers, &client, &org, Some(&name), &body).await
}

pub(super) async fn delete_channel(
    State(state): State<AlertsState>,
    Path((org, name)): Path<(String, String)>,
    ClientInfo(client): ClientInfo,
    headers: HeaderMap,
) -> Result<StatusCode, ApiError> {
    let caller = state.caller(&headers, &org, Scope::AlertsWrite).await?;
    remove(&state, &caller, &client, &org, Kind::Channel, &name).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Sends a test notification now and answers with the attempt (recorded in
/// `alert_deliveries` too): `status` `delivered` or `gave_up`, the receiver's code and error.
pub(super) async fn test_channel(
    State(state): State<AlertsState>,
    Path((org, name)): Path<(String, String)>,
    ClientInfo(client): ClientInfo,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let caller = state.caller(&headers, &org, Scope::AlertsWrite).await?;
    let attempt = test(&state, &caller, &client, &org, &name).await?;
    Ok(Json(json!({
        "channel": attempt.channel,
        "kind": attempt.kind,
        "delivery_id": attempt.delivery_id,
        "status": attempt.status.as_str(),
        "response_code": attempt.response_code,
        "error": attempt.error,
    })))
}

/// Sends a test notification through channel `name` for `caller`, audited.
pub(crate) async fn test(
    state: &AlertsState,
    caller: &Caller,
    client: &crate::people::Client,
    org: &str,
    name: &str,
) -> Result<crate::alerts::outbox::Attempt, ApiError> {
    check(caller, org, Scope::AlertsWrite)?;
    let attempt = state.alerts.test_channel(name).await?;
    state
        .audit(
            caller,
            client,
            org,
            "alert_channel.test",
            ("alert_channel", name),
            json!({"status": attempt.status.as_str()}),
        )
        .await;
    Ok(attempt)
}
