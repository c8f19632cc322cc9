//! The alerts page of an organization: its rules, the channels with each one's last delivery,
//! the recent deliveries, and forms to create, change and delete rules and channels made here
//! and to send a test notification.
//!
//! Reading needs `alerts:read` (every member), acting `alerts:write` (admins and owners). The
//! forms call the functions the HTTP API's handlers call ([`crate::api::alerts`]), so the same
//! checks answer and the same audit events are written. A channel's secrets are named by file
//! or environment variable as in the config file, or typed into the form once: the server
//! stores a typed secret and the page only says that it is stored, never shows it (its field
//! stays blank; left blank on a change, the stored one is kept). Recent deliveries come from the reader of the `alert_deliveries` table,
//! scoped to the projects the caller may read.

use std::sync::Arc;

use askama::Template;
use axum::Extension;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use faultline_config::{ChannelConfig, RuleConfig, TriggerConfig};
use serde_json::{Value, json};

use super::{Layout, OrgCtx, WebError, WebState, encode_path, html, stream};
use crate::alerts::declared::{ChannelSecrets, Kind};
use crate::api::alerts::{self as api, AlertsState};
use crate::api::{ApiError, Caller, ClientInfo};
use crate::people::Actor;
use crate::query::ProjectFilter;
use crate::tenancy::{Principal, Scope};

/// Deliveries listed, newest first.
const RECENT: usize = 50;

/// Channel kinds offered by the form.
const KINDS: [&str; 6] = ["webhook", "slack", "discord", "teams", "pagerduty", "email"];

struct RuleRow {
    name: String,
    source: &'static str,
    projects: String,
    triggers: String,
    filters: String,
    channels: String,
    interval: String,
}

struct ChannelRow {
    name: String,
    kind: &'static str,
    source: &'static str,
    /// Where it posts or mails: a plain URL, the names of the file or variable holding the
    /// secret one, or the recipients.
    target: String,
    max_per_hour: String,
    last_status: String,
    last_at: String,
    last_error: String,
    failing: bool,
}

struct DeliveryRow {
    at: String,
    rule: String,
    channel: String,
    project: String,
    issue_id: i64,
    trigger: String,
    attempt: u32,
    status: &'static str,
    code: String,
    error: String,
}

/// The rule form's fields, as entered (or as the rule being edited has them).
#[derive(Default)]
struct RuleForm {
    /// The rule being changed (empty: a new one).
    editing: String,
    name: String,
    projects: String,
    new_issue: bool,
    regression: bool,
    unmuted: bool,
    frequency_count: String,
    frequency_window: String,
    users_count: String,
    users_window: String,
    levels: String,
    environments: String,
    releases: String,
    tags: String,
    issue_older_than: String,
    issue_newer_than: String,
    min_events: String,
    /// Every channel, and whether the rule uses it.
    channels: Vec<(String, bool)>,
    interval: String,
}

/// The channel form's fields.
#[derive(Default)]
struct ChannelForm {
    editing: String,
    name: String,
    kind: String,
    url: String,
    url_file: String,
    url_env: String,
    routing_key_file: String,
    routing_key_env: String,
    secret_file: String,
    secret_env: String,
    sentry_format: bool,
    to: String,
    max_per_hour: String,
    /// Secrets typed in: never filled in again (a blank field keeps the stored one).
    url_secret: String,
    routing_key_secret: String,
    signing_secret: String,
    /// Which secrets the server stores for the channel being edited.
    stored: Vec<&'static str>,
}

#[derive(Template)]
#[template(path = "alerts.html")]
struct AlertsPage {
    layout: Layout,
    rules: Vec<RuleRow>,
    channels: Vec<ChannelRow>,
    deliveries: Vec<DeliveryRow>,
    can_write: bool,
    notice: Option<String>,
    error: Option<String>,
    rule_form: RuleForm,
    channel_form: ChannelForm,
    kinds: [&'static str; 6],
}

fn caller_of(principal: Arc<Principal>, actor: Option<Extension<Actor>>) -> Caller {
    Caller {
        principal,
        actor: actor.map(|Extension(a)| a),
    }
}

fn list(items: &[String]) -> String {
    items.join(", ")
}

fn duration(d: std::time::Duration) -> String {
    humantime::format_duration(d).to_string()
}

fn triggers_text(rule: &RuleConfig) -> String {
    rule.triggers
        .iter()
        .map(|t| match t {
            TriggerConfig::NewIssue => "new issue".to_owned(),
            TriggerConfig::Regression => "regression".to_owned(),
            TriggerConfig::Unmuted => "ignore ran out".to_owned(),
            TriggerConfig::Frequency { count, window } => {
                format!("more than {count} events in {}", duration(*window))
            }
            TriggerConfig::Users { count, window } => {
                format!("more than {count} users in {}", duration(*window))
            }
            TriggerConfig::CronMonitor { monitors } if monitors.is_empty() => {
                "cron monitor (any)".to_owned()
            }
            TriggerConfig::CronMonitor { monitors } => {
                format!("cron monitor {}", list(monitors))
            }
        })
        .collect::<Vec<_>>()
        .join("; ")
}

fn filters_text(rule: &RuleConfig) -> String {
    let mut parts = Vec::new();
    for (name, values) in [
        ("level", &rule.levels),
        ("environment", &rule.environments),
        ("release", &rule.releases),
        ("tags", &rule.tags),
    ] {
        if !values.is_empty() {
            parts.push(format!("{name}: {}", list(values)));
        }
    }
    if let Some(d) = rule.issue_older_than {
        parts.push(format!("issue older than {}", duration(d)));
    }
    if let Some(d) = rule.issue_newer_than {
        parts.push(format!("issue newer than {}", duration(d)));
    }
    if let Some(n) = rule.min_events {
        parts.push(format!("at least {n} events"));
    }
    if parts.is_empty() {
        "none".to_owned()
    } else {
        parts.join("; ")
    }
}

fn channel_target(c: &ChannelConfig, stored: &[&'static str]) -> String {
    let mut parts = Vec::new();
    for name in stored {
        parts.push(format!("{} stored by the server", name.replace('_', " ")));
    }
    if let Some(url) = &c.url {
        parts.push(url.clone());
    }
    for (what, file, env) in [
        ("URL", &c.url_file, &c.url_env),
        ("routing key", &c.routing_key_file, &c.routing_key_env),
        ("signing secret", &c.secret_file, &c.secret_env),
    ] {
        if let Some(file) = file {
            parts.push(format!("{what} from file {}", file.display()));
        }
        if let Some(env) = env {
            parts.push(format!("{what} from ${env}"));
        }
    }
    if !c.to.is_empty() {
        parts.push(format!("to {}", list(&c.to)));
    }
    parts.join("; ")
}

impl RuleForm {
    fn of(rule: &RuleConfig, channels: &[String]) -> Self {
        let mut form = Self {
            editing: rule.name.clone(),
            name: rule.name.clone(),
            projects: list(&rule.projects),
            levels: list(&rule.levels),
            environments: list(&rule.environments),
            releases: list(&rule.releases),
            tags: list(&rule.tags),
            issue_older_than: rule.issue_older_than.map(duration).unwrap_or_default(),
            issue_newer_than: rule.issue_newer_than.map(duration).unwrap_or_default(),
            min_events: rule.min_events.map(|n| n.to_string()).unwrap_or_default(),
            channels: channels
                .iter()
                .map(|c| (c.clone(), rule.channels.contains(c)))
                .collect(),
            interval: duration(rule.interval),
            ..Self::default()
        };
        for trigger in &rule.triggers {
            match trigger {
                TriggerConfig::NewIssue => form.new_issue = true,
                TriggerConfig::Regression => form.regression = true,
                TriggerConfig::Unmuted => form.unmuted = true,
                TriggerConfig::Frequency { count, window } => {
                    form.frequency_count = count.to_string();
                    form.frequency_window = duration(*window);
                }
                TriggerConfig::Users { count, window } => {
                    form.users_count = count.to_string();
                    form.users_window = duration(*window);
                }
                TriggerConfig::CronMonitor { .. } => {}
            }
        }
        form
    }

    fn blank(channels: &[String]) -> Self {
        Self {
            new_issue: true,
            regression: true,
            interval: "30m".to_owned(),
            channels: channels.iter().map(|c| (c.clone(), false)).collect(),
            ..Self::default()
        }
    }

    fn from_fields(fields: &[(String, String)], channels: &[String]) -> Self {
        let text = |name: &str| field(fields, name).trim().to_owned();
        let chosen: Vec<&str> = fields
            .iter()
            .filter(|(k, _)| k == "channel")
            .map(|(_, v)| v.as_str())
            .collect();
        Self {
            editing: text("editing"),
            name: text("name"),
            projects: text("projects"),
            new_issue: !field(fields, "new_issue").is_empty(),
            regression: !field(fields, "regression").is_empty(),
            unmuted: !field(fields, "unmuted").is_empty(),
            frequency_count: text("frequency_count"),
            frequency_window: text("frequency_window"),
            users_count: text("users_count"),
            users_window: text("users_window"),
            levels: text("levels"),
            environments: text("environments"),
            releases: text("releases"),
            tags: text("tags"),
            issue_older_than: text("issue_older_than"),
            issue_newer_than: text("issue_newer_than"),
            min_events: text("min_events"),
            channels: channels
                .iter()
                .map(|c| (c.clone(), chosen.contains(&c.as_str())))
                .collect(),
            interval: text("interval"),
        }
    }

    /// The rule the form describes, in the shape of the API's body; errors name the field.
    fn to_rule(&self) -> Result<RuleConfig, ApiError> {
        let mut triggers = Vec::new();
        for (flag, kind) in [
            (self.new_issue, "new_issue"),
            (self.regression, "regression"),
            (self.unmuted, "unmuted"),
        ] {
            if flag {
                triggers.push(json!({ "type": kind }));
            }
        }
        for (kind, count, window) in [
            ("frequency", &self.frequency_count, &self.frequency_window),
            ("users", &self.users_count, &self.users_window),
        ] {
            if count.is_empty() && window.is_empty() {
                continue;
            }
            let count: u64 = count.parse().map_err(|_| {
                ApiError::BadRequest(format!("{kind}_count: {count:?} is not a whole number"))
            })?;
            triggers.push(json!({ "type": kind, "count": count, "window": window }));
        }
        let mut body = json!({
            "name": self.name,
            "projects": split(&self.projects),
            "triggers": triggers,
            "levels": split(&self.levels),
            "environments": split(&self.environments),
            "releases": split(&self.releases),
            "tags": split(&self.tags),
            "channels": self.channels.iter().filter(|(_, on)| *on).map(|(c, _)| c).collect::<Vec<_>>(),
            "interval": if self.interval.is_empty() { "30m" } else { &self.interval },
        });
        for name in ["issue_older_than", "issue_newer_than"] {
            let value = match name {
                "issue_older_than" => &self.issue_older_than,
                _ => &self.issue_newer_than,
            };
            if !value.is_empty() {
                body[name] = json!(value);
            }
        }
        if !self.min_events.is_empty() {
            let n: u64 = self.min_events.parse().map_err(|_| {
                ApiError::BadRequest(format!(
                    "min_events: {:?} is not a whole number",
                    self.min_events
                ))
            })?;
            body["min_events"] = json!(n);
        }
        serde_json::from_value(body)
            .map_err(|e| ApiError::BadRequest(format!("invalid alert rule: {e}")))
    }
}

impl ChannelForm {
    fn of(c: &ChannelConfig, stored: &[&'static str]) -> Self {
        let path = |p: &Option<std::path::PathBuf>| {
            p.as_ref()
                .map(|p| p.display().to_string())
                .unwrap_or_default()
        };
        Self {
            editing: c.name.clone(),
            name: c.name.clone(),
            kind: c.kind.as_str().to_owned(),
            url: c.url.clone().unwrap_or_default(),
            url_file: path(&c.url_file),
            url_env: c.url_env.clone().unwrap_or_default(),
            routing_key_file: path(&c.routing_key_file),
            routing_key_env: c.routing_key_env.clone().unwrap_or_default(),
            secret_file: path(&c.secret_file),
            secret_env: c.secret_env.clone().unwrap_or_default(),
            sentry_format: c.format == faultline_config::WebhookFormat::Sentry,
            to: list(&c.to),
            max_per_hour: c.max_per_hour.map(|n| n.to_string()).unwrap_or_default(),
            stored: stored.to_vec(),
            ..Self::default()
        }
    }

    fn from_fields(fields: &[(String, String)]) -> Self {
        let text = |name: &str| field(fields, name).trim().to_owned();
        Self {
            editing: text("editing"),
            name: text("name"),
            kind: text("kind"),
            url: text("url"),
            url_file: text("url_file"),
            url_env: text("url_env"),
            routing_key_file: text("routing_key_file"),
            routing_key_env: text("routing_key_env"),
            secret_file: text("secret_file"),
            secret_env: text("secret_env"),
            sentry_format: !field(fields, "sentry_format").is_empty(),
            to: text("to"),
            max_per_hour: text("max_per_hour"),
            url_secret: text("url_secret"),
            routing_key_secret: text("routing_key_secret"),
            signing_secret: text("signing_secret"),
            stored: Vec::new(),
        }
    }

    /// The secrets typed in (blank fields: none given).
    fn secrets(&self) -> ChannelSecrets {
        let given = |v: &String| Some(v.clone()).filter(|v| !v.is_empty());
        ChannelSecrets {
            url: given(&self.url_secret),
            routing_key: given(&self.routing_key_secret),
            signing_secret: given(&self.signing_secret),
        }
    }

    /// The form as shown again after a refusal: what was typed, but no secret.
    fn without_secrets(mut self) -> Self {
        self.url_secret.clear();
        self.routing_key_secret.clear();
        self.signing_secret.clear();
        self
    }

    fn to_channel(&self) -> Result<ChannelConfig, ApiError> {
        let mut body = json!({
            "name": self.name,
            "kind": self.kind,
            "to": split(&self.to),
            "format": if self.sentry_format { "sentry" } else { "faultline" },
        });
        for (name, value) in [
            ("url", &self.url),
            ("url_file", &self.url_file),
            ("url_env", &self.url_env),
            ("routing_key_file", &self.routing_key_file),
            ("routing_key_env", &self.routing_key_env),
            ("secret_file", &self.secret_file),
            ("secret_env", &self.secret_env),
        ] {
            if !value.is_empty() {
                body[name] = Value::String(value.clone());
            }
        }
        if !self.max_per_hour.is_empty() {
            let n: u32 = self.max_per_hour.parse().map_err(|_| {
                ApiError::BadRequest(format!(
                    "max_per_hour: {:?} is not a whole number",
                    self.max_per_hour
                ))
            })?;
            body["max_per_hour"] = json!(n);
        }
        serde_json::from_value(body)
            .map_err(|e| ApiError::BadRequest(format!("invalid alert channel: {e}")))
    }
}

/// `a, b` as a list, blanks left out.
fn split(text: &str) -> Vec<String> {
    text.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect()
}

fn field<'a>(fields: &'a [(String, String)], name: &str) -> &'a str {
    fields
        .iter()
        .find(|(k, _)| k == name)
        .map_or("", |(_, v)| v.as_str())
}

#[derive(Default)]
struct Extra {
    notice: Option<String>,
    error: Option<String>,
    rule_form: Option<RuleForm>,
    channel_form: Option<ChannelForm>,
    edit_rule: Option<String>,
    edit_channel: Option<String>,
}

async fn render(
    state: &WebState,
    caller: &Caller,
    org: &str,
    extra: Extra,
) -> Result<Response, WebError> {
    api::check(caller, org, Scope::AlertsRead)?;
    let alerts = &state.node.alerts;
    let ruleset = alerts.ruleset();
    let channel_names: Vec<String> = ruleset.channels.keys().cloned().collect();
    let rules: Vec<&RuleConfig> = ruleset.rules.iter().filter(|r| r.org == org).collect();
    let last = alerts.last_attempts().await.map_err(ApiError::from)?;
    let now = chrono::Utc::now();
    let channels = ruleset
        .channels
        .values()
        .map(|channel| {
            let c = &channel.config;
            let last = last.get(&c.name);
            ChannelRow {
                name: c.name.clone(),
                kind: c.kind.as_str(),
                source: alerts.source(Kind::Channel, &c.name),
                target: channel_target(c, &channel.stored),
                max_per_hour: match c.max_per_hour {
                    Some(0) => "no limit".to_owned(),
                    Some(n) => n.to_string(),
                    None => format!("{} (default)", state.node.config.alerts.max_per_hour),
                },
                last_status: last
                    .map_or_else(|| "never sent".to_owned(), |a| a.status.as_str().to_owned()),
                last_at: last.map_or_else(String::new, |a| super::relative(a.at, now)),
                last_error: last.and_then(|a| a.error.clone()).unwrap_or_default(),
                failing: last.is_some_and(|a| a.error.is_some()),
            }
        })
        .collect();
    let ctx = OrgCtx::new(state, Arc::clone(&caller.principal), org.to_owned()).await;
    let (layout, filter) = match ctx {
        Ok(ctx) => (ctx.layout("Alerts".to_owned(), "alerts", ""), ctx.filter),
        Err(_) => {
            let mut layout = Layout::bare("Alerts");
            layout.user = caller.principal.name.clone();
            (layout, ProjectFilter::Only(Arc::new(Default::default())))
        }
    };
    let attempts = crate::alerts::table::read_attempts(&state.node.store, &filter)
        .await
        .map_err(|e| ApiError::from(crate::alerts::Error::from(e)))?;
    let deliveries = attempts
        .iter()
        .rev()
        .filter(|a| a.org == org)
        .take(RECENT)
        .map(|a| DeliveryRow {
            at: super::relative(a.at, now),
            rule: a.rule.clone(),
            channel: a.channel.clone(),
            project: a.project.clone(),
            issue_id: a.issue_id,
            trigger: a.trigger.clone(),
            attempt: a.attempt,
            status: a.status.as_str(),
            code: a.response_code.map(|c| c.to_string()).unwrap_or_default(),
            error: a.error.clone().unwrap_or_default(),
        })
        .collect();
    let rule_form = match (extra.rule_form, &extra.edit_rule) {
        (Some(form), _) => form,
        (None, Some(name)) => rules
            .iter()
            .find(|r| &r.name == name && alerts.source(Kind::Rule, name) == "api")
            .map_or_else(
                || RuleForm::blank(&channel_names),
                |r| RuleForm::of(r, &channel_names),
            ),
        (None, None) => RuleForm::blank(&channel_names),
    };
    let channel_form = match (extra.channel_form, &extra.edit_channel) {
        (Some(form), _) => form,
        (None, Some(name)) => ruleset
            .channels
            .get(name)
            .filter(|_| alerts.source(Kind::Channel, name) == "api")
            .map_or_else(ChannelForm::default, |c| {
                ChannelForm::of(&c.config, &c.stored)
            }),
        (None, None) => ChannelForm::default(),
    };
    let rule_rows = rules
        .iter()
        .map(|r| RuleRow {
            name: r.name.clone(),
            source: alerts.source(Kind::Rule, &r.name),
            projects: if r.projects.is_empty() {
                "all".to_owned()
            } else {
                list(&r.projects)
            },
            triggers: triggers_text(r),
            filters: filters_text(r),
            channels: list(&r.channels),
            interval: duration(r.interval),
        })
        .collect();
    html(&AlertsPage {
        layout,
        rules: rule_rows,
        channels,
        deliveries,
        can_write: api::check(caller, org, Scope::AlertsWrite).is_ok(),
        notice: extra.notice,
        error: extra.error,
        rule_form,
        channel_form,
        kinds: KINDS,
    })
}

#[derive(Debug, serde::Deserialize)]
pub(crate) struct PageParams {
    done: Option<String>,
    edit_rule: Option<String>,
    edit_channel: Option<String>,
}

/// `GET /organizations/{org}/alerts/`.
pub(crate) async fn page(
    State(state): State<WebState>,
    Extension(principal): Extension<Arc<Principal>>,
    actor: Option<Extension<Actor>>,
    Path(org): Path<String>,
    Query(params): Query<PageParams>,
) -> Result<Response, WebError> {
    let caller = caller_of(principal, actor);
    let notice = params.done.as_deref().map(|done| {
        match done {
            "rule" => "The rule was saved.",
            "rule-deleted" => "The rule was deleted.",
            "channel" => "The channel was saved.",
            "channel-deleted" => "The channel was deleted.",
            _ => "Done.",
        }
        .to_owned()
    });
    render(
        &state,
        &caller,
        &org,
        Extra {
            notice,
            edit_rule: params.edit_rule,
            edit_channel: params.edit_channel,
            ..Extra::default()
        },
    )
    .await
}

/// A form post's end: `303` back to the page saying what was done, or the page again with
/// the API's message under the API's status (and the form as entered).
async fn finish(
    state: &WebState,
    caller: &Caller,
    org: &str,
    result: Result<&str, ApiError>,
    extra: Extra,
) -> Result<Response, WebError> {
    let err = match result {
        Ok(done) => {
            return Ok(Redirect::to(&format!(
                "/organizations/{}/alerts/?done={done}",
                encode_path(org)
            ))
            .into_response());
        }
        Err(err) => err,
    };
    let status = err.status();
    if !status.is_client_error() || api::check(caller, org, Scope::AlertsRead).is_err() {
        return Err(err.into());
    }
    let mut response = render(
        state,
        caller,
        org,
        Extra {
            error: Some(err.to_string()),
            ..extra
        },
    )
    .await?;
    *response.status_mut() = status;
    Ok(response)
}

/// `POST /organizations/{org}/alerts/rules/`: creates a rule, or (with `editing`) replaces it.
pub(crate) async fn save_rule(
    State(state): State<WebState>,
    Extension(principal): Extension<Arc<Principal>>,
    actor: Option<Extension<Actor>>,
    ClientInfo(client): ClientInfo,
    Path(org): Path<String>,
    body: Bytes,
) -> Result<Response, WebError> {
    let caller = caller_of(principal, actor);
    let fields = stream::form(&body);
    let channels: Vec<String> = state
        .node
        .alerts
        .ruleset()
        .channels
        .keys()
        .cloned()
        .collect();
    let form = RuleForm::from_fields(&fields, &channels);
    let alerts = crate::api::alerts_state(&state.node);
    let result = match form.to_rule() {
        Ok(rule) => {
            let editing = Some(form.editing.as_str()).filter(|e| !e.is_empty());
            save(&alerts, &caller, &client, &org, editing, rule).await
        }
        Err(err) => Err(err),
    };
    finish(
        &state,
        &caller,
        &org,
        result.map(|()| "rule"),
        Extra {
            rule_form: Some(form),
            ..Extra::default()
        },
    )
    .await
}

async fn save(
    alerts: &AlertsState,
    caller: &Caller,
    client: &crate::people::Client,
    org: &str,
    editing: Option<&str>,
    rule: RuleConfig,
) -> Result<(), ApiError> {
    api::save_rule(alerts, caller, client, org, editing, rule).await?;
    Ok(())
}

/// `POST /organizations/{org}/alerts/channels/`: creates a channel, or (with `editing`)
/// replaces it.
pub(crate) async fn save_channel(
    State(state): State<WebState>,
    Extension(principal): Extension<Arc<Principal>>,
    actor: Option<Extension<Actor>>,
    ClientInfo(client): ClientInfo,
    Path(org): Path<String>,
    body: Bytes,
) -> Result<Response, WebError> {
    let caller = caller_of(principal, actor);
    let form = ChannelForm::from_fields(&stream::form(&body));
    let alerts = crate::api::alerts_state(&state.node);
    let result = match form.to_channel() {
        Ok(channel) => {
            let editing = Some(form.editing.as_str()).filter(|e| !e.is_empty());
            api::save_channel(
                &alerts,
                &caller,
                &client,
                &org,
                editing,
                channel,
                form.secrets(),
            )
            .await
            .map(|_| "channel")
        }
        Err(err) => Err(err),
    };
    finish(
        &state,
        &caller,
        &org,
        result,
        Extra {
            channel_form: Some(form.without_secrets()),
            ..Extra::default()
        },
    )
    .await
}

/// `POST /organizations/{org}/alerts/rules/{name}/delete/`.
pub(crate) async fn delete_rule(
    State(state): State<WebState>,
    Extension(principal): Extension<Arc<Principal>>,
    actor: Option<Extension<Actor>>,
    ClientInfo(client): ClientInfo,
    Path((org, name)): Path<(String, String)>,
) -> Result<Response, WebError> {
    let caller = caller_of(principal, actor);
    let alerts = crate::api::alerts_state(&state.node);
    let result = api::remove(&alerts, &caller, &client, &org, Kind::Rule, &name).await;
    finish(
        &state,
        &caller,
        &org,
        result.map(|()| "rule-deleted"),
        Extra::default(),
    )
    .await
}

/// `POST /organizations/{org}/alerts/channels/{name}/delete/`.
pub(crate) async fn delete_channel(
    State(state): State<WebState>,
    Extension(principal): Extension<Arc<Principal>>,
    actor: Option<Extension<Actor>>,
    ClientInfo(client): ClientInfo,
    Path((org, name)): Path<(String, String)>,
) -> Result<Response, WebError> {
    let caller = caller_of(principal, actor);
    let alerts = crate::api::alerts_state(&state.node);
    let result = api::remove(&alerts, &caller, &client, &org, Kind::Channel, &name).await;
    finish(
        &state,
        &caller,
        &org,
        result.map(|()| "channel-deleted"),
        Extra::default(),
    )
    .await
}

/// `POST /organizations/{org}/alerts/channels/{name}/test/`: sends a test notification now and
/// shows how it went.
pub(crate) async fn test_channel(
    State(state): State<WebState>,
    Extension(principal): Extension<Arc<Principal>>,
    actor: Option<Extension<Actor>>,
    ClientInfo(client): ClientInfo,
    Path((org, name)): Path<(String, String)>,
) -> Result<Response, WebError> {
    let caller = caller_of(principal, actor);
    let alerts = crate::api::alerts_state(&state.node);
    match api::test(&alerts, &caller, &client, &org, &name).await {
        Ok(attempt) => {
            let outcome = match (&attempt.error, attempt.response_code) {
                (None, Some(code)) => format!("delivered (the receiver answered {code})"),
                (None, None) => "delivered".to_owned(),
                (Some(error), _) => format!("{}: {error}", attempt.status.as_str()),
            };
            let (notice, error) = if attempt.error.is_none() {
                (
                    Some(format!("Test notification to {name}: {outcome}.")),
                    None,
                )
            } else {
                (
                    None,
                    Some(format!("Test notification to {name}: {outcome}")),
                )
            };
            render(
                &state,
                &caller,
                &org,
                Extra {
                    notice,
                    error,
                    ..Extra::default()
                },
            )
            .await
        }
        Err(err) => finish(&state, &caller, &org, Err(err), Extra::default()).await,
    }
}
