//! Events from the official `@sentry/node` SDK (chunked request bodies, session items mixed in).

use crate::harness::{RowExt, Setup, by_event_id, in_list, run_node};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_sdk_events_are_stored_grouped_and_queryable() -> anyhow::Result<()> {
    let tmp = tempfile::tempdir()?;
    let setup = Setup::new(tmp.path(), "data", "");
    let server = setup.start()?;
    let dsn = setup.create_project("storefront")?;

    let sent = run_node(&dsn, &["exception", "message", "types", "fingerprint"])?;
    assert_eq!(sent.len(), 5, "the client sends 5 events: {sent:?}");

    let token = setup.create_token()?;
    let rows = server
        .sql(
            &token,
            &format!(
                "SELECT event_id, issue_id, level, platform, release, environment, message, \
                 exception_type, exception_value, culprit, frame_count, user_id, user_email, \
                 tags['region'] AS region, sdk_name FROM events WHERE event_id IN ({})",
                in_list(sent.values().map(|s| s.id.as_str()))
            ),
        )
        .await?;
    let events = by_event_id(rows);
    assert_eq!(
        events.len(),
        sent.len(),
        "every event is queryable\nserver log:\n{}",
        server.log_text()
    );

    let exception = &sent["exception"];
    let row = &events[&exception.id];
    assert_eq!(exception.ty.as_deref(), Some("TypeError"));
    assert_eq!(row.str("exception_type"), exception.ty.as_deref());
    assert_eq!(row.str("exception_value"), exception.value.as_deref());
    assert!(
        exception.frames.is_some(),
        "the script recorded the frames it sent"
    );
    assert_eq!(row.int("frame_count"), exception.frames);
    let culprit = row.str("culprit").unwrap_or_default();
    assert!(
        culprit.contains("formatAddress"),
        "innermost in-app frame: {culprit:?}"
    );
    assert_eq!(row.str("platform"), Some("node"));
    assert_eq!(row.str("release"), Some("shop-node@2.0.1"));
    assert_eq!(row.str("environment"), Some("production"));
    assert_eq!(row.str("region"), Some("us-east"));
    assert_eq!(row.str("user_id"), Some("u-2002"));
    assert_eq!(row.str("user_email"), Some("grace@example.com"));
    assert_eq!(row.str("sdk_name"), Some("sentry.javascript.node"));

    let message = &events[&sent["message"].id];
    assert_eq!(
        message.str("message"),
        Some("inventory sync lagging by 120 s")
    );
    assert_eq!(message.str("level"), Some("warning"));

    let range = &events[&sent["range"].id];
    assert_eq!(range.str("exception_type"), Some("RangeError"));
    assert!(
        range
            .str("culprit")
            .unwrap_or_default()
            .contains("reserveStock")
    );

    let issue = |label: &str| events[&sent[label].id].int("issue_id").expect("issue_id");
    assert_eq!(
        issue("fingerprint_open"),
        issue("fingerprint_publish"),
        "custom fingerprint honoured"
    );
    assert_ne!(
        issue("exception"),
        issue("range"),
        "different types are different issues"
    );
    assert_ne!(issue("exception"), issue("fingerprint_open"));
    assert_ne!(issue("range"), issue("fingerprint_open"));

    // The CLI sees the same project through the data directory.
    let counted = setup.query("SELECT count(*) AS n FROM events WHERE project = 'storefront'")?;
    assert_eq!(counted[0].int("n"), Some(5));
    let issues = setup.query("SELECT count(*) AS n FROM issues WHERE project = 'storefront'")?;
    assert_eq!(issues[0].int("n"), Some(4));
    Ok(())
}
