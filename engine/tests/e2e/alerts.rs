//! Alerts end to end: the Python SDK sends errors, HTTP receivers on loopback (an axum server in
//! the test) record what faultline posts, and `alert_deliveries` tells what was attempted.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use base64::Engine as _;
use hmac::{Hmac, Mac};
use serde_json::Value;
use sha2::Sha256;

use crate::harness::{PATIENCE, Rows, Server, Setup, run_python, store_message};

/// One request a receiver got.
#[derive(Debug, Clone)]
struct Received {
    path: String,
    headers: HashMap<String, String>,
    raw: Vec<u8>,
    body: Value,
}

/// HTTP receivers on one loopback port: every path records what it gets and answers the next
/// status queued for it (200 once the queue is empty).
#[derive(Clone, Default)]
struct Receiver {
    got: Arc<Mutex<Vec<Received>>>,
    replies: Arc<Mutex<HashMap<String, VecDeque<u16>>>>,
    base: String,
}

async fn record(
    State(receiver): State<Receiver>,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let path = uri.path().to_owned();
    receiver.got.lock().expect("receiver lock").push(Received {
        path: path.clone(),
        headers: headers
            .iter()
            .map(|(k, v)| {
                (
                    k.as_str().to_owned(),
                    v.to_str().unwrap_or_default().to_owned(),
                )
            })
            .collect(),
        raw: body.to_vec(),
        body: serde_json::from_slice(&body).unwrap_or(Value::Null),
    });
    let status = receiver
        .replies
        .lock()
        .expect("receiver lock")
        .get_mut(&path)
        .and_then(VecDeque::pop_front)
        .unwrap_or(200);
    StatusCode::from_u16(status).unwrap_or(StatusCode::OK)
}

impl Receiver {
    async fn start() -> Result<Self> {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let mut receiver = Self {
            base: format!("http://{}", listener.local_addr()?),
            ..Self::default()
        };
        let app = Router::new().fallback(record).with_state(receiver.clone());
        tokio::spawn(async move { axum::serve(listener, app).await });
        receiver.base = receiver.base.clone();
        Ok(receiver)
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    fn reply(&self, path: &str, statuses: &[u16]) {
        self.replies
            .lock()
            .expect("receiver lock")
            .entry(path.to_owned())
            .or_default()
            .extend(statuses);
    }

    fn on(&self, path: &str) -> Vec<Received> {
        self.got
            .lock()
            .expect("receiver lock")
            .iter()
            .filter(|r| r.path == path)
            .cloned()
            .collect()
    }

    /// Waits until `path` got at least `n` requests; returns them all.
    async fn wait(&self, path: &str, n: usize) -> Result<Vec<Received>> {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let got = self.on(path);
            if got.len() >= n {
                return Ok(got);
            }
            if Instant::now() > deadline {
                bail!(
                    "{path} got {} requests, waited for {n}: {got:#?}",
                    got.len()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// A `whsec_` secret for the webhook channel.
const SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";

/// Checks a Standard Webhooks signature with its own HMAC computation.
fn verify_standard(received: &Received) -> Result<()> {
    let id = &received.headers["webhook-id"];
    let timestamp = &received.headers["webhook-timestamp"];
    let key = base64::engine::general_purpose::STANDARD.decode(&SECRET["whsec_".len()..])?;
    let mut mac = Hmac::<Sha256>::new_from_slice(&key)?;
    mac.update(format!("{id}.{timestamp}.").as_bytes());
    mac.update(&received.raw);
    let expected = format!(
        "v1,{}",
        base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
    );
    ensure!(
        received.headers["webhook-signature"] == expected,
        "signature {} is not {expected}",
        received.headers["webhook-signature"]
    );
    Ok(())
}

/// A config with every HTTP channel pointing at `receiver`, secrets in files under `dir`, and
/// one rule for new issues and regressions of project `shop`.
fn config(dir: &std::path::Path, receiver: &Receiver, extra: &str) -> Result<String> {
    std::fs::write(dir.join("whsec"), SECRET)?;
    std::fs::write(dir.join("slack-url"), receiver.url("/slack"))?;
    std::fs::write(dir.join("discord-url"), receiver.url("/discord"))?;
    std::fs::write(dir.join("pd-key"), "R0UT1NGKEY0000000000000000000000\n")?;
    let file = |name: &str| format!("{:?}", dir.join(name).display().to_string());
    Ok(format!(
        r#"
[alerts]
allow_private_targets = true
check_interval = "200ms"
min_backoff = "100ms"
max_backoff = "1s"

[[alerts.channels]]
name = "hook"
kind = "webhook"
url = "{hook}"
secret_file = {whsec}

[[alerts.channels]]
name = "slack"
kind = "slack"
url_file = {slack}

[[alerts.channels]]
name = "discord"
kind = "discord"
url_file = {discord}

[[alerts.channels]]
name = "teams"
kind = "teams"
url_env = "FAULTLINE_TEST_TEAMS_URL"

[[alerts.channels]]
name = "pd"
kind = "pagerduty"
url = "{pd}"
routing_key_file = {pd_key}

[[alerts.rules]]
name = "shop-errors"
projects = ["shop"]
triggers = [
    {{ type = "new_issue" }},
    {{ type = "regression" }},
    {{ type = "frequency", count = 50, window = "1h" }},
]
levels = ["error"]
environments = ["staging"]
channels = ["hook", "slack", "discord", "teams", "pd"]
{extra}"#,
        hook = receiver.url("/hook"),
        whsec = file("whsec"),
        slack = file("slack-url"),
        discord = file("discord-url"),
        pd = receiver.url("/pd"),
        pd_key = file("pd-key"),
    ))
}

fn setup_with(dir: &std::path::Path, receiver: &Receiver, extra: &str) -> Result<Setup> {
    let mut setup = Setup::new(dir, "data", &config(dir, receiver, extra)?);
    setup
        .env
        .push(("FAULTLINE_TEST_TEAMS_URL".into(), receiver.url("/teams")));
    Ok(setup)
}

/// A token that may read events, change issues and manage alerts.
fn token(setup: &Setup) -> Result<String> {
    Ok(setup
        .token_with(
            "alerts",
            &["event:read", "event:write", "alerts:read", "alerts:write"],
        )?
        .trim()
        .to_owned())
}

fn int(row: &Rows, column: &str) -> Option<i64> {
    row.get(column).and_then(Value::as_i64)
}

fn text<'a>(row: &'a Rows, column: &str) -> Option<&'a str> {
    row.get(column).and_then(Value::as_str)
}

/// Runs `sql` until it gives at least `n` rows.
async fn wait_rows(server: &Server, token: &str, sql: &str, n: usize) -> Result<Vec<Rows>> {
    let deadline = Instant::now() + PATIENCE;
    loop {
        let rows = server.sql(token, sql).await?;
        if rows.len() >= n {
            return Ok(rows);
        }
        if Instant::now() > deadline {
            bail!("{sql} gave {} rows, waited for {n}: {rows:?}", rows.len());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn resolve(setup: &Setup, token: &str, issue_id: &str) -> Result<()> {
    let response = reqwest::Client::new()
        .post(format!(
            "{}/api/issues/{issue_id}/resolve",
            setup.base_url()
        ))
        .bearer_auth(token)
        .send()
        .await?;
    ensure!(
        response.status() == 200,
        "resolve answered {}: {}",
        response.status(),
        response.text().await?
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_new_issue_alerts_once_and_a_regression_again_after_a_resolve() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let receiver = Receiver::start().await?;
    let setup = setup_with(tmp.path(), &receiver, "")?;
    let dsn = setup.create_project("shop")?;
    let server = setup.start()?;
    let token = token(&setup)?;

    // The first error opens an issue: one message on every channel.
    let first = run_python(&dsn, &["same:1"])?;
    let hook = receiver.wait("/hook", 1).await?;
    verify_standard(&hook[0])?;
    let alert = &hook[0].body;
    assert_eq!(alert["type"], "issue.new_issue");
    assert_eq!(alert["id"], hook[0].headers["webhook-id"]);
    assert_eq!(alert["data"]["project"], "shop");
    assert_eq!(alert["data"]["level"], "error");
    assert_eq!(alert["data"]["environment"], "staging");
    assert_eq!(alert["data"]["rule"], "shop-errors");
    assert_eq!(
        alert["data"]["event_id"],
        first["same_0"].id.replace('-', "")
    );
    assert_eq!(
        alert["data"]["title"],
        "ZeroDivisionError: division by zero"
    );
    let issue_id = alert["data"]["issue_id"]
        .as_str()
        .context("issue id")?
        .to_owned();
    assert_eq!(
        alert["data"]["url"],
        format!(
            "{}/organizations/default/issues/{issue_id}/",
            setup.base_url()
        )
    );
    let slack = receiver.wait("/slack", 1).await?;
    assert_eq!(
        slack[0].body["text"],
        "New issue in shop: ZeroDivisionError: division by zero"
    );
    assert_eq!(slack[0].body["blocks"][0]["type"], "header");
    let discord = receiver.wait("/discord", 1).await?;
    assert_eq!(
        discord[0].body["embeds"][0]["title"],
        "ZeroDivisionError: division by zero"
    );
    let teams = receiver.wait("/teams", 1).await?;
    assert_eq!(
        teams[0].body["attachments"][0]["contentType"],
        "application/vnd.microsoft.card.adaptive"
    );
    let pd = receiver.wait("/pd", 1).await?;
    assert_eq!(pd[0].body["event_action"], "trigger");
    assert_eq!(
        pd[0].body["routing_key"],
        "R0UT1NGKEY0000000000000000000000"
    );
    let dedup_key = pd[0].body["dedup_key"].clone();

    // 100 more events of the issue: no further alert. A second new issue afterwards is the
    // fence: once its alert arrived, any alert the 100 events caused would have too.
    run_python(&dsn, &["same:100"])?;
    run_python(&dsn, &["types"])?;
    let hook = receiver.wait("/hook", 2).await?;
    assert_eq!(hook.len(), 2, "{hook:#?}");
    assert_eq!(
        hook[1].body["data"]["title"]
            .as_str()
            .map(|t| t.starts_with("PaymentDeclined")),
        Some(true)
    );
    assert_ne!(hook[1].body["data"]["issue_id"], issue_id.as_str());

    // The frequency trigger (more than 50 events) fired too, within the interval of the
    // new-issue alert: suppressed, and a row says so on every channel.
    let suppressed = wait_rows(
        &server,
        &token,
        &format!(
            "SELECT channel, trigger, attempt, error FROM alert_deliveries \
             WHERE issue_id = {issue_id} AND status = 'suppressed' ORDER BY channel"
        ),
        5,
    )
    .await?;
    let channels: Vec<&str> = suppressed
        .iter()
        .filter_map(|r| text(r, "channel"))
        .collect();
    assert_eq!(channels, ["discord", "hook", "pd", "slack", "teams"]);
    assert!(
        suppressed
            .iter()
            .all(|r| text(r, "trigger") == Some("frequency")
                && int(r, "attempt") == Some(0)
                && text(r, "error") == Some("the rule alerted on this issue less than 30m ago")),
        "{suppressed:?}"
    );
    assert_eq!(receiver.on("/hook").len(), 2);

    // Resolved, then a new event: PagerDuty's incident is resolved first, then one regression.
    resolve(&setup, &token, &issue_id).await?;
    let pd = receiver.wait("/pd", 3).await?;
    assert_eq!(pd[2].body["event_action"], "resolve", "{pd:#?}");
    assert_eq!(pd[2].body["dedup_key"], dedup_key);
    run_python(&dsn, &["same:1"])?;
    let hook = receiver
        .wait("/hook", 3)
        .await
        .with_context(|| server.log_text())?;
    assert_eq!(hook[2].body["type"], "issue.regression");
    assert_eq!(hook[2].body["data"]["issue_id"], issue_id.as_str());
    verify_standard(&hook[2])?;
    let pd = receiver.wait("/pd", 4).await?;
    assert_eq!(pd[3].body["event_action"], "trigger");
    assert_eq!(pd[3].body["payload"]["class"], "regression");
    assert_eq!(pd[3].body["dedup_key"], dedup_key);

    // Every attempt is a row: 3 alerts on 4 channels, 2 on PagerDuty plus the resolve.
    let rows = server
        .sql(
            &token,
            &format!(
                "SELECT channel, trigger, status, response_code, attempt FROM alert_deliveries \
                 WHERE issue_id = {issue_id} AND status <> 'suppressed' ORDER BY channel, ts"
            ),
        )
        .await?;
    let seen: Vec<(String, String, String, Option<i64>)> = rows
        .iter()
        .map(|r| {
            (
                text(r, "channel").unwrap_or_default().to_owned(),
                text(r, "trigger").unwrap_or_default().to_owned(),
                text(r, "status").unwrap_or_default().to_owned(),
                int(r, "response_code"),
            )
        })
        .collect();
    let row = |channel: &str, trigger: &str| {
        (
            channel.to_owned(),
            trigger.to_owned(),
            "delivered".to_owned(),
            Some(200),
        )
    };
    assert_eq!(
        seen,
        vec![
            row("discord", "new_issue"),
            row("discord", "regression"),
            row("hook", "new_issue"),
            row("hook", "regression"),
            row("pd", "new_issue"),
            row("pd", "resolved"),
            row("pd", "regression"),
            row("slack", "new_issue"),
            row("slack", "regression"),
            row("teams", "new_issue"),
            row("teams", "regression"),
        ]
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_that_fails_once_gets_the_alert_on_the_retry() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let receiver = Receiver::start().await?;
    receiver.reply("/hook", &[500]);
    let setup = setup_with(tmp.path(), &receiver, "")?;
    let dsn = setup.create_project("shop")?;
    let server = setup.start()?;
    let token = token(&setup)?;
    run_python(&dsn, &["same:1"])?;
    let hook = receiver.wait("/hook", 2).await?;
    assert_eq!(
        hook[0].headers["webhook-id"], hook[1].headers["webhook-id"],
        "a retry keeps the delivery id"
    );
    assert_eq!(hook[0].raw, hook[1].raw, "a retry sends the same body");
    verify_standard(&hook[1])?;
    let rows = server
        .sql(
            &token,
            "SELECT attempt, status, response_code, error FROM alert_deliveries \
             WHERE channel = 'hook' ORDER BY attempt",
        )
        .await?;
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert_eq!(int(&rows[0], "attempt"), Some(1));
    assert_eq!(text(&rows[0], "status"), Some("failed"));
    assert_eq!(int(&rows[0], "response_code"), Some(500));
    assert!(
        text(&rows[0], "error").is_some_and(|e| e.contains("answered 500")),
        "{rows:?}"
    );
    assert_eq!(int(&rows[1], "attempt"), Some(2));
    assert_eq!(text(&rows[1], "status"), Some("delivered"));
    assert_eq!(int(&rows[1], "response_code"), Some(200));
    assert_eq!(receiver.on("/hook").len(), 2);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_alert_decided_before_a_sigkill_goes_out_once_after_the_restart() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let receiver = Receiver::start().await?;
    // The message rule: any level, any environment (the raw store request sets neither).
    let setup = setup_with(
        tmp.path(),
        &receiver,
        r#"
[[alerts.rules]]
name = "messages"
triggers = [{ type = "new_issue" }]
channels = ["hook"]
"#,
    )?;
    let dsn = setup.create_project("shop")?;
    let server = setup.start()?;
    // Acknowledged, then killed at once: the alert is decided from the WAL after the restart
    // if it was not before the kill.
    store_message(&setup, &dsn, "the disk is on fire").await?;
    server.kill()?;
    let server = setup.start()?;
    let hook = receiver.wait("/hook", 1).await?;
    assert_eq!(hook[0].body["data"]["title"], "the disk is on fire");
    // A second new issue is the fence: once its alert came, a duplicate of the first would
    // have come before it.
    store_message(&setup, &dsn, "the fire is out").await?;
    let hook = receiver.wait("/hook", 2).await?;
    let titles: Vec<&str> = hook
        .iter()
        .filter_map(|r| r.body["data"]["title"].as_str())
        .collect();
    assert_eq!(titles, ["the disk is on fire", "the fire is out"]);
    drop(server);
    Ok(())
}

/// A request to the alerts API: the status and the JSON answer.
async fn api(
    setup: &Setup,
    token: &str,
    method: reqwest::Method,
    path: &str,
    body: Option<Value>,
) -> Result<(u16, Value)> {
    let mut request = reqwest::Client::new()
        .request(
            method,
            format!("{}/api/0/organizations/default/{path}", setup.base_url()),
        )
        .bearer_auth(token);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await?;
    let status = response.status().as_u16();
    let text = response.text().await?;
    Ok((
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rules_and_channels_made_through_the_api_mail_the_alert_and_are_audited() -> Result<()> {
    use reqwest::Method;
    let tmp = tempfile::tempdir()?;
    let receiver = Receiver::start().await?;
    let smtp_port = crate::harness::free_port();
    let inbox = tmp.path().join("inbox.jsonl");
    let _sink = crate::mail::Sink::start(smtp_port, &inbox)?;
    let setup = setup_with(
        tmp.path(),
        &receiver,
        &format!(
            "\n[smtp]\nhost = \"127.0.0.1\"\nport = {smtp_port}\ntls = \"none\"\n\
             from = \"faultline <faultline@example.test>\"\ntimeout = \"3s\"\n"
        ),
    )?;
    let dsn = setup.create_project("shop")?;
    let server = setup.start()?;
    let token = setup
        .token_with(
            "platform",
            &["alerts:read", "alerts:write", "org:admin", "event:read"],
        )?
        .trim()
        .to_owned();

    // A mail channel and a rule using it, made through the API.
    let (status, channel) = api(
        &setup,
        &token,
        Method::POST,
        "alert-channels/",
        Some(serde_json::json!({"name": "oncall-mail", "kind": "email", "to": ["oncall@example.test"]})),
    )
    .await?;
    assert_eq!(status, 201, "{channel}");
    assert_eq!(channel["source"], "api");
    let (status, rule) = api(
        &setup,
        &token,
        Method::POST,
        "alert-rules/",
        Some(serde_json::json!({
            "name": "mail-new", "projects": ["shop"], "triggers": [{"type": "new_issue"}],
            "channels": ["oncall-mail"], "interval": "1h",
        })),
    )
    .await?;
    assert_eq!(status, 201, "{rule}");
    assert_eq!(rule["interval"], "1h");
    assert_eq!(rule["org"], "default");

    // Bad requests name the field; the config file's declarations cannot be changed here.
    let (status, answer) = api(
        &setup,
        &token,
        Method::POST,
        "alert-rules/",
        Some(serde_json::json!({"name": "x", "triggers": [{"type": "new_issue"}], "channels": ["nowhere"]})),
    )
    .await?;
    assert_eq!(
        (status, answer["detail"].as_str()),
        (400, Some("channels: no channel is named \"nowhere\""))
    );
    let (status, answer) = api(
        &setup,
        &token,
        Method::POST,
        "alert-channels/",
        Some(serde_json::json!({"name": "leaky", "kind": "slack", "url": "https://hooks.slack.com/services/T/B/X"})),
    )
    .await?;
    assert_eq!(status, 400, "{answer}");
    assert!(
        answer["detail"]
            .as_str()
            .is_some_and(|d| d.starts_with("url: this webhook URL is a secret")),
        "{answer}"
    );
    let (status, answer) = api(
        &setup,
        &token,
        Method::PUT,
        "alert-rules/shop-errors/",
        Some(serde_json::json!({"name": "shop-errors", "triggers": [{"type": "new_issue"}], "channels": ["hook"]})),
    )
    .await?;
    assert_eq!(status, 409, "{answer}");
    let (status, answer) = api(
        &setup,
        &token,
        Method::DELETE,
        "alert-channels/oncall-mail/",
        None,
    )
    .await?;
    assert_eq!(
        (status, answer["detail"].as_str()),
        (
            409,
            Some(
                "alert channel \"oncall-mail\" is used by rule \"mail-new\": remove it from the rule first"
            )
        )
    );

    // Channels are listed without their secrets.
    let (status, channels) = api(&setup, &token, Method::GET, "alert-channels/", None).await?;
    assert_eq!(status, 200);
    let listed = channels.to_string();
    assert!(
        !listed.contains(&receiver.url("/slack")) && !listed.contains(SECRET),
        "{listed}"
    );
    let names: Vec<(&str, &str)> = channels
        .as_array()
        .context("channels")?
        .iter()
        .filter_map(|c| Some((c["name"].as_str()?, c["source"].as_str()?)))
        .collect();
    assert_eq!(
        names,
        [
            ("discord", "config"),
            ("hook", "config"),
            ("oncall-mail", "api"),
            ("pd", "config"),
            ("slack", "config"),
            ("teams", "config")
        ]
    );
    let (_, rules) = reqwest::Client::new()
        .get(format!(
            "{}/api/0/projects/default/shop/rules/",
            setup.base_url()
        ))
        .bearer_auth(&token)
        .send()
        .await?
        .json::<Value>()
        .await
        .map(|v| (200, v))?;
    let rule_names: Vec<&str> = rules
        .as_array()
        .context("rules")?
        .iter()
        .filter_map(|r| r["name"].as_str())
        .collect();
    assert_eq!(rule_names, ["shop-errors", "mail-new"]);

    // "Send test notification": delivered, and the receiver got it.
    let (status, tested) = api(
        &setup,
        &token,
        Method::POST,
        "alert-channels/hook/test/",
        None,
    )
    .await?;
    assert_eq!(status, 200, "{tested}");
    assert_eq!(tested["status"], "delivered");
    assert_eq!(tested["response_code"], 200);
    let hook = receiver.wait("/hook", 1).await?;
    assert_eq!(hook[0].body["type"], "issue.test");
    verify_standard(&hook[0])?;

    // A new issue: the rule made through the API mails it.
    run_python(&dsn, &["same:1"])?;
    let deadline = Instant::now() + PATIENCE;
    let mail: Value = loop {
        let text = std::fs::read_to_string(&inbox).unwrap_or_default();
        if let Some(line) = text.lines().next() {
            break serde_json::from_str(line)?;
        }
        ensure!(
            Instant::now() < deadline,
            "no mail arrived:\n{}",
            server.log_text()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(mail["to"], serde_json::json!(["oncall@example.test"]));
    let data = mail["data"].as_str().context("mail text")?;
    assert!(
        data.contains(
            "Subject: [faultline] New issue in shop: ZeroDivisionError: division by zero"
        ),
        "{data}"
    );

    // Every change is in the audit log.
    let rows = server
        .sql(
            &token,
            "SELECT event, target_id FROM audit_log WHERE event LIKE 'alert%' ORDER BY ts",
        )
        .await?;
    let events: Vec<(&str, &str)> = rows
        .iter()
        .filter_map(|r| Some((text(r, "event")?, text(r, "target_id")?)))
        .collect();
    assert_eq!(
        events,
        [
            ("alert_channel.create", "oncall-mail"),
            ("alert_rule.create", "mail-new"),
            ("alert_channel.test", "hook"),
        ]
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_on_one_s3_store_send_one_alert_per_new_issue() -> Result<()> {
    use crate::s3::{Moto, s3_setup};
    let moto = Moto::start()?;
    moto.create_bucket().await?;
    let tmp = tempfile::tempdir()?;
    let receiver = Receiver::start().await?;
    let node = |name: &str| -> Result<Setup> {
        let setup = s3_setup(tmp.path(), name, &moto);
        std::fs::write(
            &setup.config,
            format!(
                "[storage]\nnode_id = \"{name}\"\n\n[flush]\ninterval = \"1s\"\n\n\
                 [storage.s3]\nregion = \"us-east-1\"\nallow_http = true\nforce_path_style = true\n\n\
                 [alerts]\nallow_private_targets = true\ncheck_interval = \"200ms\"\n\n\
                 [[alerts.channels]]\nname = \"hook\"\nkind = \"webhook\"\nurl = \"{}\"\n\n\
                 [[alerts.rules]]\nname = \"everything-new\"\ntriggers = [{{ type = \"new_issue\" }}]\n\
                 channels = [\"hook\"]\n",
                receiver.url("/hook")
            ),
        )?;
        Ok(setup)
    };
    let (a, b) = (node("node-a")?, node("node-b")?);
    let dsn_a = a.create_project("shop")?;
    let server_a = a.start()?;
    let server_b = b.start()?;
    let dsn_b = dsn_a.replace(&format!(":{}/", a.port), &format!(":{}/", b.port));

    // The same new error reaches both nodes at once.
    let (da, db) = (dsn_a.clone(), dsn_b.clone());
    let sender_a = std::thread::spawn(move || run_python(&da, &["same:3"]));
    let sender_b = std::thread::spawn(move || run_python(&db, &["same:3"]));
    sender_a
        .join()
        .map_err(|_| anyhow::anyhow!("sender a panicked"))??;
    sender_b
        .join()
        .map_err(|_| anyhow::anyhow!("sender b panicked"))??;
    // A new issue on each node afterwards: once both alerts came, each node has decided the
    // error before it.
    store_message(&a, &dsn_a, "fence on a").await?;
    store_message(&b, &dsn_b, "fence on b").await?;
    let deadline = Instant::now() + PATIENCE;
    let titles = loop {
        let titles: Vec<String> = receiver
            .on("/hook")
            .iter()
            .filter_map(|r| r.body["data"]["title"].as_str().map(str::to_owned))
            .collect();
        if titles.iter().any(|t| t == "fence on a") && titles.iter().any(|t| t == "fence on b") {
            break titles;
        }
        ensure!(
            Instant::now() < deadline,
            "alerts so far: {titles:?}\nnode a:\n{}\nnode b:\n{}",
            server_a.log_text(),
            server_b.log_text()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let mut sorted = titles.clone();
    sorted.sort();
    assert_eq!(
        sorted,
        [
            "ZeroDivisionError: division by zero",
            "fence on a",
            "fence on b"
        ],
        "one alert per new issue: {titles:?}"
    );
    let token = b.create_token()?;
    let rows = server_b
        .sql(
            &token,
            "SELECT status, count(*) AS n FROM alert_deliveries GROUP BY status",
        )
        .await?;
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(
        (text(&rows[0], "status"), int(&rows[0], "n")),
        (Some("delivered"), Some(3))
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_alerts_neither_known_issues_nor_old_regressions_again() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let receiver = Receiver::start().await?;
    let setup = setup_with(tmp.path(), &receiver, "")?;
    let dsn = setup.create_project("shop")?;
    let server = setup.start()?;
    let token = token(&setup)?;
    run_python(&dsn, &["same:1"])?;
    let hook = receiver.wait("/hook", 1).await?;
    let issue_id = hook[0].body["data"]["issue_id"]
        .as_str()
        .context("issue id")?
        .to_owned();
    resolve(&setup, &token, &issue_id).await?;
    receiver.wait("/pd", 2).await?;
    run_python(&dsn, &["same:1"])?;
    let hook = receiver.wait("/hook", 2).await?;
    assert_eq!(hook[1].body["type"], "issue.regression");

    // After a restart (the WAL replayed or flushed), the issue's next event is no news.
    let status = server.terminate()?;
    ensure!(status.success(), "SIGTERM exits 0, got {status}");
    let _server = setup.start()?;
    run_python(&dsn, &["same:2"])?;
    run_python(&dsn, &["types"])?;
    let hook = receiver.wait("/hook", 3).await?;
    let seen: Vec<(&str, &str)> = hook
        .iter()
        .filter_map(|r| Some((r.body["type"].as_str()?, r.body["data"]["title"].as_str()?)))
        .collect();
    assert_eq!(
        seen,
        [
            ("issue.new_issue", "ZeroDivisionError: division by zero"),
            ("issue.regression", "ZeroDivisionError: division by zero"),
            (
                "issue.new_issue",
                "PaymentDeclined: card ************4242 declined for 12345 cents"
            ),
        ]
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frequency_rule_fires_once_the_threshold_is_crossed() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let receiver = Receiver::start().await?;
    let setup = setup_with(
        tmp.path(),
        &receiver,
        r#"
[[alerts.rules]]
name = "busy"
triggers = [{ type = "frequency", count = 50, window = "1h" }]
levels = ["error"]
channels = ["hook"]
"#,
    )?;
    let dsn = setup.create_project("shop")?;
    let server = setup.start()?;
    let token = token(&setup)?;
    run_python(&dsn, &["same:60"])?;
    let rows = wait_rows(
        &server,
        &token,
        "SELECT status, trigger, issue_id FROM alert_deliveries WHERE rule = 'busy'",
        1,
    )
    .await?;
    assert_eq!(text(&rows[0], "trigger"), Some("frequency"));
    assert_eq!(text(&rows[0], "status"), Some("delivered"));
    let busy: Vec<Received> = receiver
        .on("/hook")
        .into_iter()
        .filter(|r| r.body["data"]["rule"] == "busy")
        .collect();
    assert_eq!(busy.len(), 1, "{busy:#?}");
    assert_eq!(busy[0].body["type"], "issue.frequency");
    // Counted when the rule's timer ran: past the threshold, at most all that were sent.
    let count = busy[0].body["data"]["event_count"]
        .as_i64()
        .context("event_count")?;
    assert!((51..=60).contains(&count), "{count}");
    assert_eq!(
        busy[0].body["data"]["title"],
        "ZeroDivisionError: division by zero"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delivery_of_a_node_that_is_gone_is_taken_over_by_another() -> Result<()> {
    use crate::s3::{Moto, s3_setup};
    let moto = Moto::start()?;
    moto.create_bucket().await?;
    let tmp = tempfile::tempdir()?;
    let receiver = Receiver::start().await?;
    // The receiver fails while node a tries; node a is gone before its retry is due.
    receiver.reply("/hook", &[503]);
    let node = |name: &str, backoff: &str| -> Result<Setup> {
        let setup = s3_setup(tmp.path(), name, &moto);
        std::fs::write(
            &setup.config,
            format!(
                "[storage]\nnode_id = \"{name}\"\n\n\
                 [storage.s3]\nregion = \"us-east-1\"\nallow_http = true\nforce_path_style = true\n\n\
                 [alerts]\nallow_private_targets = true\ncheck_interval = \"200ms\"\ntakeover_after = \"1s\"\n\
                 min_backoff = \"{backoff}\"\nmax_backoff = \"{backoff}\"\n\n\
                 [[alerts.channels]]\nname = \"hook\"\nkind = \"webhook\"\nurl = \"{}\"\n\n\
                 [[alerts.rules]]\nname = \"everything-new\"\ntriggers = [{{ type = \"new_issue\" }}]\n\
                 channels = [\"hook\"]\n",
                receiver.url("/hook")
            ),
        )?;
        Ok(setup)
    };
    let a = node("node-a", "2s")?;
    let dsn = a.create_project("shop")?;
    let server_a = a.start()?;
    let token = a.create_token()?;
    store_message(&a, &dsn, "left behind").await?;
    receiver.wait("/hook", 1).await?;
    wait_rows(
        &server_a,
        &token,
        "SELECT status FROM alert_deliveries WHERE status = 'failed'",
        1,
    )
    .await?;
    server_a.kill()?;

    // Node b finds the delivery untouched for longer than takeover_after and sends it.
    let b = node("node-b", "100ms")?;
    let server_b = b.start()?;
    let hook = receiver
        .wait("/hook", 2)
        .await
        .with_context(|| server_b.log_text())?;
    assert_eq!(hook[1].headers["webhook-id"], hook[0].headers["webhook-id"]);
    assert_eq!(hook[1].body["data"]["title"], "left behind");
    let rows = server_b
        .sql(
            &token,
            "SELECT attempt, status, response_code FROM alert_deliveries ORDER BY attempt",
        )
        .await?;
    let seen: Vec<(Option<i64>, Option<&str>, Option<i64>)> = rows
        .iter()
        .map(|r| {
            (
                int(r, "attempt"),
                text(r, "status"),
                int(r, "response_code"),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            (Some(1), Some("failed"), Some(503)),
            (Some(2), Some("delivered"), Some(200))
        ]
    );
    Ok(())
}
