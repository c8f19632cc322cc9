//! The triggers, filters and anti-flood of the alert worker on a real node: events sent through
//! the ingest endpoint, issue states set as people set them, and the outbox read back.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::Router;
use axum::body::Body;
use axum::extract::connect_info::MockConnectInfo;
use axum::http::{Method, Request, StatusCode};
use faultline_config::{Config, ProjectConfig};
use http_body_util::BodyExt;
use object_store::path::Path as ObjectPath;
use tower::ServiceExt;

use super::outbox::{Attempt, Delivery, Status};
use super::{Candidate, Trigger};
use crate::issues::{self, Change};
use crate::node::Node;
use crate::query::ProjectFilter;

const KEY: &str = "0123456789abcdef0123456789abcdef";

struct Harness {
    _dir: tempfile::TempDir,
    node: Arc<Node>,
    router: Router,
}

/// A node with project `shop` (id 1), one webhook channel `hook` posting to `url`, and the
/// alert rules given as TOML.
async fn harness(url: &str, extra: &str) -> Harness {
    harness_config(&format!(
        "[alerts]\nallow_private_targets = true\n\n\
         [[alerts.channels]]\nname = \"hook\"\nkind = \"webhook\"\nurl = \"{url}\"\n\n{extra}"
    ))
    .await
}

/// A node with project `shop` (id 1) and the config file `text`.
async fn harness_config(text: &str) -> Harness {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::parse(text).unwrap();
    config.storage.data_dir = dir.path().to_owned();
    config.projects.push(ProjectConfig {
        id: 1,
        name: "shop".into(),
        keys: vec![KEY.into()],
        quotas: Vec::new(),
        rate_limit: None,
        retention_days: None,
        grouping_enhancements: None,
        fingerprinting_rules: None,
        privacy: None,
    });
    let node = Arc::new(Node::open(config).await.unwrap());
    let router =
        crate::api::router(&node).layer(MockConnectInfo(SocketAddr::from(([10, 1, 2, 3], 5000))));
    Harness {
        _dir: dir,
        node,
        router,
    }
}

impl Harness {
    async fn ingest(&self, event: serde_json::Value) {
        let id = uuid::Uuid::new_v4().simple().to_string();
        let body = format!("{{\"event_id\":\"{id}\"}}\n{{\"type\":\"event\"}}\n{event}\n");
        let request = Request::builder()
            .method(Method::POST)
            .uri("/api/1/envelope/")
            .header(
                "x-sentry-auth",
                format!("Sentry sentry_key={KEY}, sentry_version=7, sentry_client=test/1.0"),
            )
            .body(Body::from(body))
            .unwrap();
        let response = self.router.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(
            status,
            StatusCode::OK,
            "{}",
            String::from_utf8_lossy(&bytes)
        );
    }

    /// The issue id of the one issue whose title contains `title`.
    async fn issue(&self, title: &str) -> i64 {
        let out = self
            .node
            .query
            .run(
                &ProjectFilter::All,
                &format!("SELECT issue_id FROM issues WHERE title LIKE '%{title}%'"),
            )
            .await
            .unwrap();
        let batch = out.batches.iter().find(|b| b.num_rows() > 0).unwrap();
        use datafusion::arrow::array::AsArray;
        batch
            .column(0)
            .as_primitive::<datafusion::arrow::datatypes::Int64Type>()
            .value(0)
    }

    /// Every delivery in the outbox, by trigger and rule.
    async fn deliveries(&self) -> Vec<Delivery> {
        let mut out = Vec::new();
        for meta in self
            .node
            .store
            .list(&ObjectPath::from("alerts/project=1/outbox"))
            .await
            .unwrap()
        {
            out.push(self.node.store.get_json(&meta.location).await.unwrap());
        }
        out.sort_by(|a: &Delivery, b| a.context.rule.cmp(&b.context.rule));
        out
    }

    async fn attempts(&self) -> Vec<Attempt> {
        super::table::read_attempts(&self.node.store, &ProjectFilter::All)
            .await
            .unwrap()
    }

    async fn candidate(
        &self,
        title: &str,
        tags: &[(&str, &str)],
        release: Option<&str>,
    ) -> Candidate {
        let issue_id = self.issue(title).await;
        Candidate {
            project_id: 1,
            project: "shop".into(),
            issue_id,
            event_id: "0".repeat(32),
            timestamp_ms: 0,
            received_ms: chrono::Utc::now().timestamp_millis(),
            level: "error".into(),
            environment: None,
            release: release.map(str::to_owned),
            title: title.into(),
            culprit: None,
            tags: tags
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        }
    }
}

fn rule(name: &str, trigger: &str, filters: &str) -> String {
    format!(
        "[[alerts.rules]]\nname = \"{name}\"\nchannels = [\"hook\"]\n{filters}\ntriggers = [{trigger}]\n\n"
    )
}

fn event(message: &str, user: Option<&str>, tags: serde_json::Value) -> serde_json::Value {
    // One issue per message (grouping by message alone would merge "error 1" and "error 2").
    let mut event = serde_json::json!({
        "message": message, "level": "error", "tags": tags, "fingerprint": [message],
    });
    if let Some(user) = user {
        event["user"] = serde_json::json!({"id": user});
    }
    event
}

#[tokio::test]
async fn the_users_trigger_fires_above_its_count_of_distinct_users() {
    let rules = [
        rule(
            "two-users",
            "{ type = \"users\", count = 2, window = \"1h\" }",
            "",
        ),
        rule(
            "three-users",
            "{ type = \"users\", count = 3, window = \"1h\" }",
            "",
        ),
        // Only events tagged browser=Chrome count: two users.
        rule(
            "chrome-users",
            "{ type = \"users\", count = 1, window = \"1h\" }",
            "tags = [\"browser=Chrome\"]",
        ),
        rule(
            "firefox-users",
            "{ type = \"users\", count = 1, window = \"1h\" }",
            "tags = [\"browser=Firefox\"]",
        ),
    ]
    .concat();
    let h = harness("http://127.0.0.1:9/hook", &rules).await;
    for (user, browser) in [
        (Some("u1"), "Chrome"),
        (Some("u2"), "Chrome"),
        (Some("u2"), "Firefox"),
        (Some("u3"), "Safari"),
        (None, "Chrome"),
    ] {
        h.ingest(event(
            "checkout failed",
            user,
            serde_json::json!({"browser": browser}),
        ))
        .await;
    }
    h.node.alerts.check_windows().await.unwrap();
    let fired: Vec<(String, Trigger, Option<u64>)> = h
        .deliveries()
        .await
        .into_iter()
        .map(|d| (d.context.rule, d.context.trigger, d.context.user_count))
        .collect();
    assert_eq!(
        fired,
        [
            ("chrome-users".to_owned(), Trigger::Users, Some(2)),
            ("two-users".to_owned(), Trigger::Users, Some(3)),
        ]
    );
    // The next tick decides the same: no second delivery.
    h.node.alerts.check_windows().await.unwrap();
    assert_eq!(h.deliveries().await.len(), 2);
}

#[tokio::test]
async fn an_ignore_that_ran_out_fires_the_unmuted_trigger_once() {
    let rules = [
        rule("back", "{ type = \"unmuted\" }", ""),
        rule(
            "back-in-1.0",
            "{ type = \"unmuted\" }",
            "releases = [\"shop@1.0\"]",
        ),
        rule(
            "back-in-2.0",
            "{ type = \"unmuted\" }",
            "releases = [\"shop@2.0\"]",
        ),
        rule("new-only", "{ type = \"new_issue\" }", ""),
    ]
    .concat();
    let h = harness("http://127.0.0.1:9/hook", &rules).await;
    let mut first = event("queue stalled", None, serde_json::json!({}));
    first["release"] = "shop@1.0".into();
    h.ingest(first.clone()).await;
    let issue_id = h.issue("queue stalled").await;
    issues::change(
        &h.node.query,
        &ProjectFilter::All,
        issue_id,
        Change::Ignore {
            until: None,
            count: Some(2),
        },
        "test",
    )
    .await
    .unwrap();
    h.ingest(first.clone()).await;
    h.node.alerts.check_unmuted().await.unwrap();
    assert!(h.deliveries().await.is_empty(), "one of two events came");
    h.ingest(first).await;
    h.node.alerts.check_unmuted().await.unwrap();
    h.node.alerts.check_unmuted().await.unwrap();
    let fired: Vec<(String, Trigger, i64)> = h
        .deliveries()
        .await
        .into_iter()
        .map(|d| (d.context.rule, d.context.trigger, d.context.issue_id))
        .collect();
    assert_eq!(
        fired,
        [
            ("back".to_owned(), Trigger::Unmuted, issue_id),
            ("back-in-1.0".to_owned(), Trigger::Unmuted, issue_id),
        ]
    );
}

#[tokio::test]
async fn an_ignore_until_a_date_fires_only_with_an_event_after_the_date() {
    let h = harness(
        "http://127.0.0.1:9/hook",
        &rule("back", "{ type = \"unmuted\" }", ""),
    )
    .await;
    let hour_ago = chrono::Utc::now() - chrono::Duration::hours(1);
    let mut old = event("disk full", None, serde_json::json!({}));
    old["timestamp"] = hour_ago.timestamp().into();
    h.ingest(old).await;
    let issue_id = h.issue("disk full").await;
    issues::change(
        &h.node.query,
        &ProjectFilter::All,
        issue_id,
        Change::Ignore {
            until: Some(chrono::Utc::now() - chrono::Duration::minutes(30)),
            count: None,
        },
        "test",
    )
    .await
    .unwrap();
    // The date passed, but no event came after it.
    h.node.alerts.check_unmuted().await.unwrap();
    assert!(h.deliveries().await.is_empty());
    h.ingest(event("disk full", None, serde_json::json!({})))
        .await;
    h.node.alerts.check_unmuted().await.unwrap();
    let fired = h.deliveries().await;
    assert_eq!(fired.len(), 1);
    assert_eq!(fired[0].context.trigger, Trigger::Unmuted);
    assert!(fired[0].trigger_key.starts_with("unmuted:"));
}

#[tokio::test]
async fn a_new_issue_fires_only_the_rules_whose_filters_let_it_through() {
    let rules = [
        rule("any", "{ type = \"new_issue\" }", ""),
        rule(
            "chrome",
            "{ type = \"new_issue\" }",
            "tags = [\"browser=Chrome\"]",
        ),
        rule(
            "firefox",
            "{ type = \"new_issue\" }",
            "tags = [\"browser=Firefox\"]",
        ),
        rule(
            "release-1",
            "{ type = \"new_issue\" }",
            "releases = [\"shop@1\"]",
        ),
        rule(
            "release-2",
            "{ type = \"new_issue\" }",
            "releases = [\"shop@2\"]",
        ),
        rule(
            "young",
            "{ type = \"new_issue\" }",
            "issue_newer_than = \"1h\"",
        ),
        rule(
            "old",
            "{ type = \"new_issue\" }",
            "issue_older_than = \"1h\"",
        ),
        rule("busy", "{ type = \"new_issue\" }", "min_events = 2"),
        rule("quiet", "{ type = \"new_issue\" }", "min_events = 1"),
    ]
    .concat();
    let h = harness("http://127.0.0.1:9/hook", &rules).await;
    h.ingest(event(
        "payment declined",
        None,
        serde_json::json!({"browser": "Chrome"}),
    ))
    .await;
    let candidate = h
        .candidate("payment declined", &[("browser", "Chrome")], Some("shop@1"))
        .await;
    h.node.alerts.decide(&[candidate]).await.unwrap();
    let fired: Vec<String> = h
        .deliveries()
        .await
        .into_iter()
        .map(|d| d.context.rule)
        .collect();
    assert_eq!(fired, ["any", "chrome", "quiet", "release-1", "young"]);
}

/// A receiver on loopback answering 200 and counting the requests.
async fn receiver() -> (String, Arc<AtomicUsize>) {
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&hits);
    let app = Router::new().route(
        "/hook",
        axum::routing::post(move || {
            let counter = Arc::clone(&counter);
            async move {
                counter.fetch_add(1, Ordering::SeqCst);
                StatusCode::OK
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, hits)
}

/// Runs every queued attempt now.
async fn deliver_queued(h: &Harness) {
    loop {
        let due: Vec<super::Queued> = std::mem::take(&mut *h.node.alerts.queue.lock());
        if due.is_empty() {
            return;
        }
        for queued in due {
            h.node.alerts.attempt(queued).await;
        }
    }
}

#[tokio::test]
async fn twenty_alerts_to_a_channel_of_five_an_hour_send_five_and_record_fifteen_suppressed() {
    let (url, hits) = receiver().await;
    let h = harness_config(&format!(
        "[alerts]\nallow_private_targets = true\n\n[[alerts.channels]]\nname = \"hook\"\n\
         kind = \"webhook\"\nurl = \"{url}\"\nmax_per_hour = 5\n\n{}",
        rule("new", "{ type = \"new_issue\" }", "")
    ))
    .await;
    let mut candidates = Vec::new();
    for i in 0..20 {
        let title = format!("error number {i:02}");
        h.ingest(event(&title, None, serde_json::json!({}))).await;
        candidates.push(h.candidate(&title, &[], None).await);
    }
    h.node.alerts.decide(&candidates).await.unwrap();
    assert_eq!(h.deliveries().await.len(), 20);
    deliver_queued(&h).await;
    assert_eq!(hits.load(Ordering::SeqCst), 5);
    let attempts = h.attempts().await;
    let count = |status| attempts.iter().filter(|a| a.status == status).count();
    assert_eq!(count(Status::Delivered), 5);
    assert_eq!(count(Status::Suppressed), 15);
    assert_eq!(attempts.len(), 20);
    let suppressed = attempts
        .iter()
        .find(|a| a.status == Status::Suppressed)
        .unwrap();
    assert_eq!(suppressed.attempt, 0);
    assert_eq!(
        suppressed.error.as_deref(),
        Some("channel \"hook\" sent its max_per_hour of 5 alerts within the last hour")
    );
    // Nothing of them is resumed after a restart: each has its final row.
    h.node.alerts.resume(false).await.unwrap();
    assert!(h.node.alerts.queue.lock().is_empty());
}

#[tokio::test]
async fn a_name_resolving_to_loopback_is_refused_at_send_time_and_given_up() {
    let (url, hits) = receiver().await;
    let port = url
        .trim_start_matches("http://127.0.0.1:")
        .trim_end_matches("/hook");
    // Without allow_private_targets, a config channel naming a host that resolves to
    // loopback, and one naming the loopback address itself.
    let h = harness_config(&format!(
        "[[alerts.channels]]\nname = \"hook\"\nkind = \"webhook\"\nurl = \"http://localhost:{port}/hook\"\n\n\
         [[alerts.channels]]\nname = \"literal\"\nkind = \"webhook\"\nurl = \"{url}\"\n\n\
         [[alerts.rules]]\nname = \"new\"\nchannels = [\"hook\", \"literal\"]\n\
         triggers = [{{ type = \"new_issue\" }}]\n"
    ))
    .await;
    h.ingest(event("out of memory", None, serde_json::json!({})))
        .await;
    let candidate = h.candidate("out of memory", &[], None).await;
    h.node.alerts.decide(&[candidate]).await.unwrap();
    deliver_queued(&h).await;
    assert_eq!(
        hits.load(Ordering::SeqCst),
        0,
        "nothing reached the receiver"
    );
    let attempts = h.attempts().await;
    assert_eq!(attempts.len(), 2);
    for attempt in &attempts {
        assert_eq!(attempt.status, Status::GaveUp, "{attempt:?}");
        let error = attempt.error.as_deref().unwrap_or_default();
        assert!(
            error.contains("a loopback address") && error.contains("alerts.allow_private_targets"),
            "{error}"
        );
    }
}

#[tokio::test]
async fn a_channel_to_a_private_address_is_refused_when_made_naming_the_field() {
    let dir = tempfile::tempdir().unwrap();
    let url_file = dir.path().join("url");
    std::fs::write(&url_file, "http://localhost:1/hook\n").unwrap();
    let h = harness_config("").await;
    let token = h
        .node
        .tokens
        .create(crate::tenancy::NewToken {
            name: "test".into(),
            org: crate::tenancy::DEFAULT_ORG.into(),
            scopes: crate::tenancy::Scope::expand_all(&["alerts:write"]).unwrap(),
            projects: None,
            owner: None,
        })
        .await
        .unwrap()
        .0;
    let create = |body: serde_json::Value| {
        Request::builder()
            .method(Method::POST)
            .uri("/api/0/organizations/default/alert-channels/")
            .header("authorization", format!("Bearer {token}"))
            .header("content-type", "application/json")
            .body(Body::from(body.to_string()))
            .unwrap()
    };
    let send = |request: Request<Body>| async {
        let response = h.router.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        (status, String::from_utf8_lossy(&bytes).into_owned())
    };
    let (status, body) = send(create(serde_json::json!({
        "name": "metadata", "kind": "webhook", "url": "http://169.254.169.254/latest/meta-data/",
    })))
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        body.contains("url: 169.254.169.254 resolves to 169.254.169.254, a link-local address"),
        "{body}"
    );
    let (status, body) = send(create(serde_json::json!({
        "name": "local", "kind": "slack", "url_file": url_file,
    })))
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(
        body.contains("url_file: localhost resolves to") && body.contains("loopback"),
        "{body}"
    );
    // Neither was stored.
    assert!(h.node.alerts.ruleset().channels.is_empty());
}

/// A minimal SMTP server on loopback keeping each message: (recipients, text).
async fn smtp_sink() -> (u16, Arc<parking_lot::Mutex<Vec<(Vec<String>, String)>>>) {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    let mails = Arc::new(parking_lot::Mutex::new(Vec::new()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let kept = Arc::clone(&mails);
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            let kept = Arc::clone(&kept);
            tokio::spawn(async move {
                let (read, mut write) = socket.into_split();
                let mut lines = BufReader::new(read).lines();
                write.write_all(b"220 sink\r\n").await.ok()?;
                let mut rcpt = Vec::new();
                while let Some(line) = lines.next_line().await.ok()? {
                    let verb = line.get(..4).unwrap_or_default().to_ascii_uppercase();
                    let reply: &[u8] = match verb.as_str() {
                        "RCPT" => {
                            rcpt.push(line[8..].trim().to_owned());
                            b"250 ok\r\n"
                        }
                        "DATA" => {
                            write.write_all(b"354 go on\r\n").await.ok()?;
                            let mut text = String::new();
                            while let Some(l) = lines.next_line().await.ok()? {
                                if l == "." {
                                    break;
                                }
                                text.push_str(&l);
                                text.push('\n');
                            }
                            kept.lock().push((std::mem::take(&mut rcpt), text));
                            b"250 kept\r\n"
                        }
                        "QUIT" => {
                            write.write_all(b"221 bye\r\n").await.ok()?;
                            return Some(());
                        }
                        _ => b"250 ok\r\n",
                    };
                    write.write_all(reply).await.ok()?;
                }
                Some(())
            });
        }
    });
    (port, mails)
}

#[tokio::test]
async fn alerts_within_the_digest_window_reach_each_recipient_as_one_mail() {
    let (port, mails) = smtp_sink().await;
    let h = harness_config(&format!(
        "[smtp]\nhost = \"127.0.0.1\"\nport = {port}\ntls = \"none\"\nfrom = \"faultline@example.test\"\n\n\
         [alerts]\ndigest_window = \"5m\"\n\n\
         [[alerts.channels]]\nname = \"mail\"\nkind = \"email\"\nto = [\"ada@example.test\", \"bob@example.test\"]\n\n\
         [[alerts.rules]]\nname = \"new\"\nchannels = [\"mail\"]\ntriggers = [{{ type = \"new_issue\" }}]\n"
    ))
    .await;
    let mut candidates = Vec::new();
    for title in ["first failure", "second failure", "third failure"] {
        h.ingest(event(title, None, serde_json::json!({}))).await;
        candidates.push(h.candidate(title, &[], None).await);
    }
    // The first alert is mailed at once; the two after it wait for the digest.
    h.node.alerts.decide(&candidates[..1]).await.unwrap();
    deliver_queued(&h).await;
    h.node.alerts.decide(&candidates[1..]).await.unwrap();
    deliver_queued(&h).await;
    assert_eq!(mails.lock().len(), 2, "one mail per recipient");
    let delivered = |attempts: &[Attempt]| {
        attempts
            .iter()
            .filter(|a| a.status == Status::Delivered)
            .count()
    };
    assert_eq!(delivered(&h.attempts().await), 1);
    // Not due yet: nothing is sent.
    h.node.alerts.flush_digests().await;
    assert_eq!(mails.lock().len(), 2);
    // The window has passed (moved back instead of waited for).
    for digest in h.node.alerts.digests.lock().values_mut() {
        digest.last_sent_ms -= 5 * 60_000;
    }
    h.node.alerts.flush_digests().await;
    let mails = mails.lock().clone();
    assert_eq!(mails.len(), 4, "one digest per recipient");
    let mut digest_to: Vec<&str> = Vec::new();
    for (to, text) in &mails[2..] {
        assert!(
            text.contains("2 alerts since the last mail")
                && text.contains("second failure")
                && text.contains("third failure")
                && !text.contains("first failure"),
            "{text}"
        );
        digest_to.extend(to.iter().map(String::as_str));
    }
    digest_to.sort_unstable();
    assert_eq!(digest_to, ["<ada@example.test>", "<bob@example.test>"]);
    assert_eq!(delivered(&h.attempts().await), 3);
    assert!(h.node.alerts.held.lock().is_empty());
}

#[tokio::test]
async fn a_secret_typed_in_once_is_used_kept_and_never_shown() {
    let (url, hits) = receiver().await;
    let h = harness("http://127.0.0.1:9/unused", "").await;
    let token = h
        .node
        .tokens
        .create(crate::tenancy::NewToken {
            name: "test".into(),
            org: crate::tenancy::DEFAULT_ORG.into(),
            scopes: crate::tenancy::Scope::expand_all(&["alerts:read", "alerts:write"]).unwrap(),
            projects: None,
            owner: None,
        })
        .await
        .unwrap()
        .0;
    let call = |method: Method, path: &str, body: Option<serde_json::Value>| {
        let mut request = Request::builder()
            .method(method)
            .uri(format!(
                "/api/0/organizations/default/alert-channels/{path}"
            ))
            .header("authorization", format!("Bearer {token}"));
        if body.is_some() {
            request = request.header("content-type", "application/json");
        }
        let request = request
            .body(Body::from(body.map(|b| b.to_string()).unwrap_or_default()))
            .unwrap();
        let router = h.router.clone();
        async move {
            let response = router.oneshot(request).await.unwrap();
            let status = response.status();
            let bytes = response.into_body().collect().await.unwrap().to_bytes();
            (status, String::from_utf8_lossy(&bytes).into_owned())
        }
    };
    let (status, body) = call(
        Method::POST,
        "",
        Some(serde_json::json!({"name": "team-slack", "kind": "slack", "url_secret": url})),
    )
    .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert!(body.contains("\"stored_secrets\":[\"url\"]"), "{body}");
    assert!(!body.contains(&url), "{body}");
    let (_, listed) = call(Method::GET, "", None).await;
    assert!(
        listed.contains("team-slack") && !listed.contains(&url),
        "{listed}"
    );
    // the stored URL is where the channel posts
    let (status, tested) = call(Method::POST, "team-slack/test/", None).await;
    assert_eq!(status, StatusCode::OK, "{tested}");
    assert!(tested.contains("\"status\":\"delivered\""), "{tested}");
    assert_eq!(hits.load(Ordering::SeqCst), 1);
    // a change without it keeps it; every node reads it back
    let (status, body) = call(
        Method::PUT,
        "team-slack/",
        Some(serde_json::json!({"name": "team-slack", "kind": "slack", "max_per_hour": 10})),
    )
    .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    h.node.alerts.reload().await.unwrap();
    let (_, tested) = call(Method::POST, "team-slack/test/", None).await;
    assert!(tested.contains("\"status\":\"delivered\""), "{tested}");
    assert_eq!(hits.load(Ordering::SeqCst), 2);
    // given twice, or not as text: refused naming the field
    let (status, body) = call(
        Method::PUT,
        "team-slack/",
        Some(serde_json::json!({"name": "team-slack", "kind": "slack",
            "url_secret": url, "url_env": "SLACK_URL"})),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body.contains("url_secret: give this secret once"), "{body}");
    let (status, body) = call(
        Method::PUT,
        "team-slack/",
        Some(serde_json::json!({"name": "team-slack", "kind": "slack", "url_secret": 5})),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body.contains("url_secret: must be a non-empty string"),
        "{body}"
    );
    // a Slack channel without any URL is refused as before
    let (status, body) = call(
        Method::POST,
        "",
        Some(serde_json::json!({"name": "no-url", "kind": "slack"})),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(body.contains("url_file: required"), "{body}");
    // deleted with its channel
    let (status, _) = call(Method::DELETE, "team-slack/", None).await;
    assert_eq!(status, StatusCode::NO_CONTENT);
    assert!(
        super::declared::load_secrets(&h.node.store)
            .await
            .unwrap()
            .is_empty()
    );
}
