//! What each receiver gets: the JSON bodies (Slack Block Kit, Discord embed, Teams Adaptive
//! Card, PagerDuty Events v2, faultline's own and Sentry's webhook body), the mail text, and the
//! Standard Webhooks signature.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::Sha256;

use super::rules::Trigger;

/// Everything a message says about one alert; stored in the outbox entry, so every attempt
/// sends the same body.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AlertContext {
    pub org: String,
    pub project_id: u64,
    pub project: String,
    pub issue_id: i64,
    pub trigger: Trigger,
    pub rule: String,
    pub title: String,
    #[serde(default)]
    pub culprit: Option<String>,
    pub level: String,
    #[serde(default)]
    pub environment: Option<String>,
    #[serde(default)]
    pub release: Option<String>,
    /// The event that decided it (none for frequency, resolve and test alerts).
    #[serde(default)]
    pub event_id: Option<String>,
    /// Events in the window (frequency alerts).
    #[serde(default)]
    pub event_count: Option<u64>,
    /// Distinct users in the window (distinct-users alerts).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_count: Option<u64>,
    /// The issue's page.
    pub url: String,
    /// When it was decided (RFC 3339).
    pub at: String,
}

impl AlertContext {
    /// One line: "New issue in api: ZeroDivisionError: division by zero".
    pub fn summary(&self) -> String {
        format!(
            "{} in {}: {}",
            self.trigger.headline(),
            self.project,
            self.title
        )
    }

    fn facts(&self) -> Vec<(&'static str, String)> {
        let mut facts = vec![
            ("Project", self.project.clone()),
            ("Level", self.level.clone()),
        ];
        if let Some(env) = &self.environment {
            facts.push(("Environment", env.clone()));
        }
        if let Some(release) = &self.release {
            facts.push(("Release", release.clone()));
        }
        if let Some(count) = self.event_count {
            facts.push(("Events", count.to_string()));
        }
        if let Some(count) = self.user_count {
            facts.push(("Users", count.to_string()));
        }
        facts.push(("Rule", self.rule.clone()));
        facts
    }
}

/// Cuts `text` to at most `max` characters, marking the cut with an ellipsis.
pub fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let mut out: String = text.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// Escapes Slack mrkdwn control characters.
fn slack_escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

/// A Slack incoming webhook message (Block Kit, with the summary as notification text).
pub fn slack(ctx: &AlertContext) -> Value {
    let fields: Vec<Value> = ctx
        .facts()
        .into_iter()
        .map(|(name, value)| {
            json!({"type": "mrkdwn", "text": format!("*{name}*\n{}", slack_escape(&value))})
        })
        .collect();
    let mut blocks = vec![
        json!({"type": "header", "text": {"type": "plain_text", "text": truncate(&ctx.title, 150)}}),
        json!({"type": "section", "text": {"type": "mrkdwn", "text": format!(
            "*{}* in *{}*{}",
            ctx.trigger.headline(),
            slack_escape(&ctx.project),
            ctx.culprit.as_deref().map(|c| format!("\n`{}`", slack_escape(c))).unwrap_or_default()
        )}}),
        json!({"type": "section", "fields": fields}),
    ];
    blocks.push(json!({"type": "actions", "elements": [{
        "type": "button",
        "text": {"type": "plain_text", "text": "Open in faultline"},
        "url": ctx.url,
    }]}));
    json!({"text": truncate(&ctx.summary(), 3000), "blocks": blocks})
}

/// Embed colours by trigger.
fn discord_color(trigger: Trigger) -> u32 {
    match trigger {
        Trigger::NewIssue => 0xE7_4C_3C,
        Trigger::Regression | Trigger::Frequency | Trigger::Unmuted | Trigger::Users => 0xE6_7E_22,
        Trigger::Resolved => 0x2E_CC_71,
        Trigger::Test => 0x34_98_DB,
    }
}

/// A Discord webhook message: one embed within Discord's limits.
pub fn discord(ctx: &AlertContext) -> Value {
    let fields: Vec<Value> = ctx
        .facts()
        .into_iter()
        .map(|(name, value)| json!({"name": name, "value": truncate(&value, 1024), "inline": true}))
        .collect();
    json!({
        "username": "faultline",
        "embeds": [{
            "title": truncate(&ctx.title, 256),
            "description": truncate(&format!(
                "{} in {}{}",
                ctx.trigger.headline(),
                ctx.project,
                ctx.culprit.as_deref().map(|c| format!("\n{c}")).unwrap_or_default()
            ), 4096),
            "url": ctx.url,
            "color": discord_color(ctx.trigger),
            "fields": fields,
            "timestamp": ctx.at,
        }]
    })
}

/// A Microsoft Teams Workflows message: an Adaptive Card in a message envelope.
pub fn teams(ctx: &AlertContext) -> Value {
    let facts: Vec<Value> = ctx
        .facts()
        .into_iter()
        .map(|(name, value)| json!({"title": name, "value": value}))
        .collect();
    let mut body = vec![
        json!({"type": "TextBlock", "text": ctx.trigger.headline(), "weight": "Bolder", "size": "Medium"}),
        json!({"type": "TextBlock", "text": ctx.title, "wrap": true}),
    ];
    if let Some(culprit) = &ctx.culprit {
        body.push(json!({"type": "TextBlock", "text": culprit, "wrap": true, "isSubtle": true}));
    }
    body.push(json!({"type": "FactSet", "facts": facts}));
    json!({
        "type": "message",
        "attachments": [{
            "contentType": "application/vnd.microsoft.card.adaptive",
            "contentUrl": null,
            "content": {
                "$schema": "http://adaptivecards.io/schemas/adaptive-card.json",
                "type": "AdaptiveCard",
                "version": "1.4",
                "body": body,
                "actions": [{"type": "Action.OpenUrl", "title": "Open in faultline", "url": ctx.url}],
            }
        }]
    })
}

/// PagerDuty's severity for an event level.
fn severity(level: &str) -> &'static str {
    match level {
        "fatal" => "critical",
        "error" => "error",
        "warning" => "warning",
        _ => "info",
    }
}

/// The PagerDuty `dedup_key` of an issue: a trigger and the resolve after it name one incident.
pub fn pagerduty_dedup_key(ctx: &AlertContext) -> String {
    format!("faultline-{}-{}", ctx.project_id, ctx.issue_id)
}

/// A PagerDuty Events API v2 event: `trigger`, or `resolve` for a resolved issue.
pub fn pagerduty(ctx: &AlertContext, routing_key: &str) -> Value {
    let dedup_key = pagerduty_dedup_key(ctx);
    if ctx.trigger == Trigger::Resolved {
        return json!({
            "routing_key": routing_key,
            "event_action": "resolve",
            "dedup_key": dedup_key,
        });
    }
    let mut details = serde_json::Map::new();
    for (name, value) in ctx.facts() {
        details.insert(name.to_ascii_lowercase(), Value::String(value));
    }
    if let Some(culprit) = &ctx.culprit {
        details.insert("culprit".into(), Value::String(culprit.clone()));
    }
    json!({
        "routing_key": routing_key,
        "event_action": "trigger",
        "dedup_key": dedup_key,
        "payload": {
            "summary": truncate(&ctx.summary(), 1024),
            "source": format!("faultline/{}", ctx.project),
            "severity": severity(&ctx.level),
            "timestamp": ctx.at,
            "component": ctx.project,
            "class": ctx.trigger.as_str(),
            "custom_details": details,
        },
        "links": [{"href": ctx.url, "text": "Issue in faultline"}],
        "client": "faultline",
        "client_url": ctx.url,
    })
}

/// faultline's own webhook body.
pub fn webhook(ctx: &AlertContext, delivery_id: &str) -> Value {
    json!({
        "id": delivery_id,
        "type": format!("issue.{}", ctx.trigger.as_str()),
        "timestamp": ctx.at,
        "data": {
            "org": ctx.org,
            "project_id": ctx.project_id,
            "project": ctx.project,
            "issue_id": ctx.issue_id.to_string(),
            "title": ctx.title,
            "culprit": ctx.culprit,
            "level": ctx.level,
            "environment": ctx.environment,
            "release": ctx.release,
            "event_id": ctx.event_id,
            "event_count": ctx.event_count,
            "user_count": ctx.user_count,
            "rule": ctx.rule,
            "url": ctx.url,
        }
    })
}

/// Sentry's issue-alert webhook body (`Sentry-Hook-Resource: event_alert`).
pub fn sentry_webhook(ctx: &AlertContext) -> Value {
    json!({
        "action": "triggered",
        "actor": {"id": "sentry", "name": "Sentry", "type": "application"},
        "data": {
            "event": {
                "event_id": ctx.event_id,
                "issue_id": ctx.issue_id.to_string(),
                "project": ctx.project_id,
                "title": ctx.title,
                "culprit": ctx.culprit,
                "level": ctx.level,
                "environment": ctx.environment,
                "release": ctx.release,
                "url": ctx.url,
                "web_url": ctx.url,
                "issue_url": ctx.url,
            },
            "triggered_rule": ctx.rule,
            "issue_alert": {"title": ctx.rule, "settings": []},
        },
        "installation": {"uuid": "faultline"},
    })
}

#[derive(Debug, thiserror::Error)]
#[error("the webhook secret is not \"whsec_\" followed by base64")]
pub struct BadSecret;

/// The Standard Webhooks signature header value for one message:
/// `v1,` + base64(HMAC-SHA256(key, "{id}.{timestamp}.{body}")), the key being the base64
/// after `whsec_`.
pub fn standard_signature(
    secret: &str,
    id: &str,
    timestamp: i64,
    body: &[u8],
) -> Result<String, BadSecret> {
    let key = BASE64
        .decode(secret.strip_prefix("whsec_").unwrap_or(secret))
        .map_err(|_| BadSecret)?;
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).map_err(|_| BadSecret)?;
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    Ok(format!("v1,{}", BASE64.encode(mac.finalize().into_bytes())))
}

/// Sentry's `Sentry-Hook-Signature`: hex HMAC-SHA256 of the body with the client secret.
pub fn sentry_signature(secret: &str, body: &[u8]) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("HMAC takes keys of any size");
    mac.update(body);
    hex::encode(mac.finalize().into_bytes())
}

/// The subject and text of an alert mail.
pub fn email(ctx: &AlertContext) -> (String, String) {
    let subject = truncate(&format!("[faultline] {}", ctx.summary()), 200);
    let mut text = format!("{}\n\n{}\n", ctx.summary(), ctx.title);
    if let Some(culprit) = &ctx.culprit {
        text.push_str(&format!("{culprit}\n"));
    }
    text.push('\n');
    for (name, value) in ctx.facts() {
        text.push_str(&format!("{name}: {value}\n"));
    }
    text.push_str(&format!("\n{}\n", ctx.url));
    (subject, text)
}

/// One mail for several alerts to one recipient (a digest): the subject counts them, the body
/// lists each as [`email`] would, oldest first.
pub fn email_digest(alerts: &[&AlertContext]) -> (String, String) {
    if let [one] = alerts {
        return email(one);
    }
    let subject = truncate(
        &format!(
            "[faultline] {} alerts: {}",
            alerts.len(),
            alerts
                .iter()
                .map(|a| a.summary())
                .collect::<Vec<_>>()
                .join("; ")
        ),
        200,
    );
    let mut text = format!("{} alerts since the last mail:\n", alerts.len());
    for (i, ctx) in alerts.iter().enumerate() {
        let (_, body) = email(ctx);
        text.push_str(&format!("\n--- {} of {} ---\n{body}", i + 1, alerts.len()));
    }
    (subject, text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_digest_lists_every_alert_in_one_mail() {
        let new = context(Trigger::NewIssue);
        let mut regression = context(Trigger::Regression);
        regression.title = "KeyError: 'cart'".into();
        let (subject, text) = email_digest(&[&new, &regression]);
        assert_eq!(
            subject,
            "[faultline] 2 alerts: New issue in api: ZeroDivisionError: division by zero; \
             Regression in api: KeyError: 'cart'"
        );
        assert!(
            text.starts_with("2 alerts since the last mail:\n"),
            "{text}"
        );
        assert!(text.contains("--- 1 of 2 ---\nNew issue in api"), "{text}");
        assert!(text.contains("--- 2 of 2 ---\nRegression in api"), "{text}");
        // A digest of one is the plain mail.
        assert_eq!(email_digest(&[&new]), email(&new));
    }

    pub(crate) fn context(trigger: Trigger) -> AlertContext {
        AlertContext {
            org: "default".into(),
            project_id: 1,
            project: "api".into(),
            issue_id: 42,
            trigger,
            rule: "new-errors".into(),
            title: "ZeroDivisionError: division by zero".into(),
            culprit: Some("app.views in divide".into()),
            level: "error".into(),
            environment: Some("production".into()),
            release: None,
            event_id: Some("0123456789abcdef0123456789abcdef".into()),
            event_count: None,
            user_count: None,
            url: "http://faultline.test/organizations/default/issues/42/".into(),
            at: "2026-01-02T03:04:05Z".into(),
        }
    }

    #[test]
    fn slack_body_is_block_kit() {
        let body = slack(&context(Trigger::NewIssue));
        assert_eq!(
            body,
            json!({
                "text": "New issue in api: ZeroDivisionError: division by zero",
                "blocks": [
                    {"type": "header", "text": {"type": "plain_text", "text": "ZeroDivisionError: division by zero"}},
                    {"type": "section", "text": {"type": "mrkdwn", "text": "*New issue* in *api*\n`app.views in divide`"}},
                    {"type": "section", "fields": [
                        {"type": "mrkdwn", "text": "*Project*\napi"},
                        {"type": "mrkdwn", "text": "*Level*\nerror"},
                        {"type": "mrkdwn", "text": "*Environment*\nproduction"},
                        {"type": "mrkdwn", "text": "*Rule*\nnew-errors"},
                    ]},
                    {"type": "actions", "elements": [{
                        "type": "button",
                        "text": {"type": "plain_text", "text": "Open in faultline"},
                        "url": "http://faultline.test/organizations/default/issues/42/",
                    }]},
                ]
            })
        );
    }

    #[test]
    fn discord_body_stays_within_limits() {
        let mut ctx = context(Trigger::Regression);
        ctx.title = "x".repeat(300);
        let body = discord(&ctx);
        let embed = &body["embeds"][0];
        assert_eq!(embed["title"].as_str().unwrap().chars().count(), 256);
        assert!(embed["title"].as_str().unwrap().ends_with('…'));
        assert_eq!(embed["color"], 0xE67E22);
        assert_eq!(
            embed["description"],
            "Regression in api\napp.views in divide"
        );
        assert_eq!(
            embed["fields"][0],
            json!({"name": "Project", "value": "api", "inline": true})
        );
        assert_eq!(embed["url"], ctx.url);
    }

    #[test]
    fn teams_body_is_an_adaptive_card() {
        let body = teams(&context(Trigger::NewIssue));
        assert_eq!(body["type"], "message");
        let attachment = &body["attachments"][0];
        assert_eq!(
            attachment["contentType"],
            "application/vnd.microsoft.card.adaptive"
        );
        let card = &attachment["content"];
        assert_eq!(card["type"], "AdaptiveCard");
        assert_eq!(card["version"], "1.4");
        assert_eq!(
            card["body"][0],
            json!({"type": "TextBlock", "text": "New issue", "weight": "Bolder", "size": "Medium"})
        );
        assert_eq!(
            card["body"][3]["facts"][2],
            json!({"title": "Environment", "value": "production"})
        );
        assert_eq!(card["actions"][0]["type"], "Action.OpenUrl");
    }

    #[test]
    fn pagerduty_triggers_and_resolves_one_incident() {
        let trigger = pagerduty(&context(Trigger::NewIssue), "R0UT1NGKEY");
        assert_eq!(
            trigger,
            json!({
                "routing_key": "R0UT1NGKEY",
                "event_action": "trigger",
                "dedup_key": "faultline-1-42",
                "payload": {
                    "summary": "New issue in api: ZeroDivisionError: division by zero",
                    "source": "faultline/api",
                    "severity": "error",
                    "timestamp": "2026-01-02T03:04:05Z",
                    "component": "api",
                    "class": "new_issue",
                    "custom_details": {
                        "project": "api", "level": "error", "environment": "production",
                        "rule": "new-errors", "culprit": "app.views in divide",
                    },
                },
                "links": [{"href": "http://faultline.test/organizations/default/issues/42/", "text": "Issue in faultline"}],
                "client": "faultline",
                "client_url": "http://faultline.test/organizations/default/issues/42/",
            })
        );
        let resolve = pagerduty(&context(Trigger::Resolved), "R0UT1NGKEY");
        assert_eq!(
            resolve,
            json!({"routing_key": "R0UT1NGKEY", "event_action": "resolve", "dedup_key": "faultline-1-42"})
        );
        let mut fatal = context(Trigger::NewIssue);
        fatal.level = "fatal".into();
        assert_eq!(pagerduty(&fatal, "k")["payload"]["severity"], "critical");
    }

    #[test]
    fn webhook_bodies() {
        let ctx = context(Trigger::NewIssue);
        let body = webhook(&ctx, "d1");
        assert_eq!(body["id"], "d1");
        assert_eq!(body["type"], "issue.new_issue");
        assert_eq!(body["data"]["issue_id"], "42");
        assert_eq!(body["data"]["event_id"], "0123456789abcdef0123456789abcdef");
        let sentry = sentry_webhook(&ctx);
        assert_eq!(sentry["action"], "triggered");
        assert_eq!(sentry["data"]["triggered_rule"], "new-errors");
        assert_eq!(sentry["data"]["event"]["issue_id"], "42");
        assert_eq!(sentry["data"]["issue_alert"]["title"], "new-errors");
    }

    #[test]
    fn standard_webhooks_signature_verifies_independently() {
        // The example of the Standard Webhooks specification's reference libraries.
        let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let id = "msg_p5jXN8AQM9LWM0D4loKWxJek";
        let body = br#"{"test": 2432232314}"#;
        let signature = standard_signature(secret, id, 1614265330, body).unwrap();
        assert_eq!(signature, "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
        assert!(standard_signature("whsec_not base64!", id, 1, body).is_err());
    }

    #[test]
    fn sentry_signature_is_hex_hmac_of_the_body() {
        // RFC 4231 test case 2.
        assert_eq!(
            sentry_signature("Jefe", b"what do ya want for nothing?"),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn email_names_the_issue_and_links_it() {
        let (subject, text) = email(&context(Trigger::Regression));
        assert_eq!(
            subject,
            "[faultline] Regression in api: ZeroDivisionError: division by zero"
        );
        assert!(text.contains("Environment: production\n"), "{text}");
        assert!(text.ends_with("http://faultline.test/organizations/default/issues/42/\n"));
    }
}
