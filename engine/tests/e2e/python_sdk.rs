//! Events from the official Python `sentry-sdk`, checked through SQL.

use serde_json::Value;

use crate::harness::{RowExt, Setup, by_event_id, in_list, lit, run_python, run_python_with};

const EVENT_COLUMNS: &str = "event_id, issue_id, project, level, platform, release, environment, \
    server_name, message, exception_type, exception_value, culprit, frame_count, user_id, \
    user_email, user_ip, user_username, tags['browser'] AS browser, tags['region'] AS region, \
    tags['component'] AS component, sdk_name, event";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_sdk_events_are_stored_grouped_and_queryable() -> anyhow::Result<()> {
    let tmp = tempfile::tempdir()?;
    let setup = Setup::new(tmp.path(), "data", "");
    let server = setup.start()?;
    let dsn = setup.create_project("shop")?;

    let sent = run_python(
        &dsn,
        &["exception", "message", "types", "lines", "fingerprint"],
    )?;
    assert_eq!(sent.len(), 9, "the client sends 9 events: {sent:?}");

    // The CLI reads the data directory: every acknowledged event is there, before any flush.
    let ids: Vec<&str> = sent.values().map(|s| s.id.as_str()).collect();
    let rows = setup.query(&format!(
        "SELECT {EVENT_COLUMNS} FROM events WHERE event_id IN ({}) ORDER BY event_id",
        in_list(ids.iter().copied())
    ))?;
    let events = by_event_id(rows);
    assert_eq!(
        events.len(),
        sent.len(),
        "every event the SDK sent is queryable; missing: {:?}\nserver log:\n{}",
        sent.iter()
            .filter(|(_, s)| !events.contains_key(&s.id))
            .map(|(l, _)| l)
            .collect::<Vec<_>>(),
        server.log_text()
    );

    // The exception: type, value, stack and where it happened in the app.
    let exception = &sent["exception"];
    let row = &events[&exception.id];
    assert_eq!(row.str("project"), Some("shop"));
    assert_eq!(exception.ty.as_deref(), Some("JSONDecodeError"));
    assert_eq!(row.str("exception_type"), exception.ty.as_deref());
    assert_eq!(row.str("exception_value"), exception.value.as_deref());
    assert_eq!(
        row.int("frame_count"),
        exception.frames,
        "frames of the main exception"
    );
    let culprit = row.str("culprit").unwrap_or_default();
    assert!(
        culprit.contains("parse_coupon"),
        "the culprit is the innermost in-app frame (shop.parse_coupon), not the json module: {culprit:?}"
    );
    assert_eq!(row.str("level"), Some("error"));
    assert_eq!(row.str("platform"), Some("python"));
    assert_eq!(row.str("release"), Some("shop@1.4.2"));
    assert_eq!(row.str("environment"), Some("staging"));
    assert_eq!(row.str("server_name"), Some("shop-web-1"));
    // `sentry.python`, or `sentry.python.flask` etc. when an integration is active (moto brings Flask).
    let sdk = row.str("sdk_name").unwrap_or_default();
    assert!(sdk.starts_with("sentry.python"), "{sdk}");
    assert_eq!(row.str("browser"), Some("firefox"));
    assert_eq!(row.str("region"), Some("eu-west"));
    assert_eq!(row.str("user_id"), Some("u-1001"));
    assert_eq!(row.str("user_email"), Some("ada@example.com"));
    assert_eq!(row.str("user_username"), Some("ada"));
    assert_eq!(row.str("user_ip"), Some("10.1.2.3"));

    // The full event keeps what the detail view shows: breadcrumbs and the locals of each frame.
    let event: Value = serde_json::from_str(row.str("event").expect("event JSON"))?;
    let crumbs = event["breadcrumbs"]
        .get("values")
        .unwrap_or(&event["breadcrumbs"]);
    let crumb_messages: Vec<&str> = crumbs
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|c| c["message"].as_str())
        .collect();
    assert!(
        crumb_messages.contains(&"user logged in")
            && crumb_messages.contains(&"/cart -> /checkout"),
        "breadcrumbs kept: {crumb_messages:?}"
    );
    let values = event["exception"]
        .get("values")
        .unwrap_or(&event["exception"]);
    let frames = values
        .as_array()
        .and_then(|v| v.last())
        .map(|e| &e["stacktrace"]["frames"]);
    let parse_coupon = frames
        .and_then(Value::as_array)
        .and_then(|frames| frames.iter().find(|f| f["function"] == "parse_coupon"))
        .expect("the parse_coupon frame is in the stored stack trace");
    assert!(
        parse_coupon["vars"].get("attempt").is_some(),
        "locals kept: {}",
        parse_coupon["vars"]
    );
    assert_eq!(parse_coupon["in_app"], Value::Bool(true));

    // The message event.
    let row = &events[&sent["message"].id];
    assert_eq!(row.str("message"), Some("payment provider slow: 2500 ms"));
    assert_eq!(row.str("level"), Some("warning"));
    assert_eq!(row.str("component"), Some("payments"));
    assert_eq!(row.str("exception_type"), None);

    let declined = &events[&sent["declined"].id];
    assert_eq!(declined.str("exception_type"), Some("PaymentDeclined"));
    assert_eq!(
        declined.str("exception_value"),
        sent["declined"].value.as_deref()
    );
    assert!(
        declined
            .str("culprit")
            .unwrap_or_default()
            .contains("charge_card")
    );

    // Grouping as Sentry's: the same KeyError raised again by the same code is one issue; raised
    // by another line of code (Python source lines count) it is another.
    let issue = |label: &str| events[&sent[label].id].int("issue_id").expect("issue_id");
    let lines = issue("lines_legacy_0");
    let current = issue("lines_current_0");
    assert_eq!(
        issue("lines_legacy_1"),
        lines,
        "the same raise, another SKU"
    );
    assert_eq!(
        issue("lines_current_1"),
        current,
        "the same raise, another SKU"
    );
    assert_eq!(
        issue("fingerprint_refused"),
        issue("fingerprint_timeout"),
        "two exception types with one custom fingerprint are one issue"
    );
    let distinct = [
        issue("exception"),
        issue("message"),
        issue("declined"),
        lines,
        current,
        issue("fingerprint_refused"),
    ];
    for (i, a) in distinct.iter().enumerate() {
        for b in &distinct[i + 1..] {
            assert_ne!(a, b, "different errors are different issues: {distinct:?}");
        }
    }

    // The same through the HTTP API, authenticated by a token made with the CLI.
    let token = setup.create_token()?;
    let issues = server
        .sql(
            &token,
            "SELECT issue_id, title, culprit, event_count, status FROM issues \
             WHERE project = 'shop' ORDER BY event_count DESC, issue_id",
        )
        .await?;
    assert_eq!(issues.len(), 6, "six issues: {issues:?}");
    // three issues of two events each, ordered by issue id
    let pairs: Vec<i64> = issues[..3]
        .iter()
        .filter_map(|r| r.int("issue_id"))
        .collect();
    let mut expected = vec![lines, current, issue("fingerprint_refused")];
    expected.sort_unstable();
    assert_eq!(pairs, expected);
    let keyerror = issues
        .iter()
        .position(|r| r.int("issue_id") == Some(lines))
        .expect("the KeyError issue");
    assert_eq!(issues[keyerror].int("event_count"), Some(2));
    assert!(
        issues[keyerror]
            .str("title")
            .unwrap_or_default()
            .contains("KeyError"),
        "{:?}",
        issues[keyerror]
    );
    assert!(
        issues[keyerror]
            .str("culprit")
            .unwrap_or_default()
            .contains("lookup_price"),
        "{:?}",
        issues[keyerror]
    );
    assert_eq!(issues[keyerror].str("status"), Some("unresolved"));
    assert!(
        issues[..3].iter().all(|r| r.int("event_count") == Some(2)),
        "{issues:?}"
    );
    let total: i64 = issues.iter().filter_map(|r| r.int("event_count")).sum();
    assert_eq!(total, 9);

    let counted = server
        .sql(
            &token,
            &format!(
                "SELECT count(*) AS n FROM events WHERE release = {}",
                lit("shop@1.4.2")
            ),
        )
        .await?;
    assert_eq!(counted[0].int("n"), Some(9));

    // Without a token the query API refuses.
    let status = reqwest::Client::new()
        .post(format!("{}/api/sql", setup.base_url()))
        .json(&serde_json::json!({ "sql": "SELECT 1" }))
        .send()
        .await?
        .status();
    assert_eq!(status, 401);
    Ok(())
}

/// The SDK compresses with brotli when it can, with gzip otherwise, or not at all when told so;
/// each body is decoded and stored the same way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_sdk_bodies_in_every_compression_are_stored() -> anyhow::Result<()> {
    let tmp = tempfile::tempdir()?;
    let setup = Setup::new(tmp.path(), "data", "");
    let server = setup.start()?;
    let dsn = setup.create_project("shop")?;
    let mut issues = Vec::new();
    for compression in ["br", "gzip", "none"] {
        let sent = run_python_with(
            &dsn,
            &["exception", "message"],
            &[("FAULTLINE_TEST_COMPRESSION", compression)],
        )?;
        let rows = by_event_id(setup.query(&format!(
            "SELECT event_id, issue_id, exception_type, message FROM events WHERE event_id IN ({})",
            in_list(sent.values().map(|s| s.id.as_str()))
        ))?);
        assert_eq!(
            rows.len(),
            2,
            "{compression}: both events stored\n{}",
            server.log_text()
        );
        let exception = &rows[&sent["exception"].id];
        assert_eq!(
            exception.str("exception_type"),
            Some("JSONDecodeError"),
            "{compression}"
        );
        let message = &rows[&sent["message"].id];
        assert_eq!(
            message.str("message"),
            Some("payment provider slow: 2500 ms"),
            "{compression}"
        );
        issues.push((exception.int("issue_id"), message.int("issue_id")));
    }
    assert!(
        issues.windows(2).all(|w| w[0] == w[1]),
        "the same errors group into the same issues whatever the encoding: {issues:?}"
    );
    Ok(())
}
