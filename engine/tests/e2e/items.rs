//! Transactions, spans, logs and feedback from the official SDKs, as a user queries them.

use anyhow::Context;
use serde_json::Value;

use crate::harness::{RowExt, Rows, Setup, node_client, python_client};

/// What a client script printed.
fn printed(out: &str) -> anyhow::Result<Value> {
    serde_json::from_str(out).with_context(|| format!("no JSON: {out}"))
}

/// The rows of `sql`, waiting until there are at least `min` (an SDK may deliver its
/// envelopes after its flush returns).
async fn rows_at_least(
    server: &crate::harness::Server,
    token: &str,
    sql: &str,
    min: usize,
) -> anyhow::Result<Vec<Rows>> {
    for _ in 0..50 {
        let rows = server.sql(token, sql).await?;
        if rows.len() >= min {
            return Ok(rows);
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    server.sql(token, sql).await
}

fn float(row: &Rows, column: &str) -> f64 {
    row.get(column).and_then(Value::as_f64).unwrap_or(-1.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_sdk_streamed_spans_logs_and_user_reports() -> anyhow::Result<()> {
    let tmp = tempfile::tempdir()?;
    let setup = Setup::new(tmp.path(), "data", "");
    let server = setup.start()?;
    let dsn = setup.create_project("reports")?;
    let sent = printed(&python_client("send_items.py", &[&dsn])?)?;
    let trace = sent["trace_id"].as_str().context("trace_id")?;
    let event_id = sent["event_id"].as_str().context("event_id")?;
    let token = setup.create_token()?;

    // sentry-sdk 3 streams spans (`span` items) and sends no transaction: the trace's root is
    // its segment span, and the error joins it on the trace id
    let joined = rows_at_least(
        &server,
        &token,
        "SELECT s.transaction, s.op, s.duration_ms, s.release, e.exception_type \
         FROM spans s JOIN events e ON e.trace_id = s.trace_id WHERE s.is_segment",
        1,
    )
    .await?;
    assert_eq!(
        joined.len(),
        1,
        "{joined:?}\nserver log:\n{}",
        server.log_text()
    );
    let row = &joined[0];
    assert_eq!(row.str("transaction"), Some("nightly-report"));
    assert_eq!(row.str("op"), Some("task"));
    assert_eq!(row.str("release"), Some("shop@1.4.2"));
    assert_eq!(row.str("exception_type"), Some("KeyError"));
    assert!(float(row, "duration_ms") >= 50.0, "{row:?}");

    // the spans the script made (`origin` manual); the SDK also traces its own HTTP requests
    // to the server when they start inside the trace, with origin `auto.http.stdlib.httplib`
    let spans = rows_at_least(
        &server,
        &token,
        &format!(
            "SELECT op, description, is_segment, duration_ms, transaction FROM spans \
             WHERE trace_id = '{trace}' AND origin = 'manual' \
             ORDER BY start_timestamp, is_segment DESC"
        ),
        3,
    )
    .await?;
    let ops: Vec<(Option<&str>, Option<&str>)> = spans
        .iter()
        .map(|r| (r.str("op"), r.str("description")))
        .collect();
    assert_eq!(
        ops,
        [
            (Some("task"), Some("nightly-report")),
            (Some("db"), Some("SELECT orders")),
            (Some("http.client"), Some("POST /render")),
        ]
    );
    assert!(
        spans.iter().all(
            |r| float(r, "duration_ms") > 0.0 && r.str("transaction") == Some("nightly-report")
        ),
        "{spans:?}"
    );

    let logs = rows_at_least(
        &server,
        &token,
        "SELECT level, body, template, release FROM logs ORDER BY timestamp",
        2,
    )
    .await?;
    let bodies: Vec<_> = logs
        .iter()
        .map(|r| (r.str("level"), r.str("body"), r.str("template")))
        .collect();
    assert_eq!(
        bodies,
        [
            (
                Some("info"),
                Some("report nightly rendered"),
                Some("report {name} rendered")
            ),
            (
                Some("warn"),
                Some("report took 3 s"),
                Some("report took {seconds} s")
            ),
        ]
    );

    let feedback = rows_at_least(
        &server,
        &token,
        "SELECT f.source, f.name, f.contact_email, f.message, e.exception_type \
         FROM feedback f JOIN events e ON e.event_id = f.associated_event_id",
        1,
    )
    .await?;
    assert_eq!(feedback.len(), 1, "{feedback:?}");
    assert_eq!(feedback[0].str("source"), Some("user_report"));
    assert_eq!(feedback[0].str("message"), Some("the report is empty"));
    assert_eq!(feedback[0].str("contact_email"), Some("ann@example.com"));
    assert_eq!(feedback[0].str("exception_type"), Some("KeyError"));
    assert_eq!(event_id.len(), 32);
    Ok(())
}

/// The Node SDK's trace as a `transaction` item (`static`) or as `span` items (`stream`):
/// the same rows in `spans`, its logs, and feedback linked to the error.
async fn node_sdk_items(lifecycle: &str) -> anyhow::Result<()> {
    let tmp = tempfile::tempdir()?;
    let setup = Setup::new(tmp.path(), "data", "");
    let server = setup.start()?;
    let dsn = setup.create_project("storefront")?;
    let sent = printed(&node_client("send_items.js", &[&dsn, lifecycle])?)?;
    let trace = sent["trace_id"].as_str().context("trace_id")?;
    let token = setup.create_token()?;

    let spans = rows_at_least(
        &server,
        &token,
        &format!(
            "SELECT op, description, is_segment, duration_ms, transaction, release FROM spans \
             WHERE trace_id = '{trace}' ORDER BY start_timestamp, is_segment DESC"
        ),
        3,
    )
    .await?;
    let ops: Vec<(Option<&str>, Option<&str>)> = spans
        .iter()
        .map(|r| (r.str("op"), r.str("description")))
        .collect();
    assert_eq!(
        ops,
        [
            (Some("task"), Some("checkout")),
            (Some("db"), Some("SELECT cart")),
            (Some("http.client"), Some("POST /pay")),
        ],
        "server log:\n{}",
        server.log_text()
    );
    assert_eq!(spans[0].get("is_segment"), Some(&Value::Bool(true)));
    assert!(
        spans.iter().all(|r| float(r, "duration_ms") > 0.0),
        "{spans:?}"
    );
    assert!(float(&spans[1], "duration_ms") >= 15.0, "{spans:?}");

    let errors = server
        .sql(
            &token,
            &format!("SELECT exception_value FROM events WHERE trace_id = '{trace}'"),
        )
        .await?;
    assert_eq!(errors.len(), 1, "the error joins its trace: {errors:?}");
    assert_eq!(errors[0].str("exception_value"), Some("payment declined"));
    let transactions = server
        .sql(
            &token,
            &format!("SELECT transaction, span_count FROM transactions WHERE trace_id = '{trace}'"),
        )
        .await?;
    if lifecycle == "static" {
        assert_eq!(transactions.len(), 1, "{transactions:?}");
        assert_eq!(transactions[0].str("transaction"), Some("checkout"));
        assert_eq!(transactions[0].int("span_count"), Some(2));
    } else {
        assert!(transactions.is_empty(), "streamed spans are no transaction");
    }

    let logs = rows_at_least(
        &server,
        &token,
        "SELECT level, body, release FROM logs ORDER BY timestamp, body",
        2,
    )
    .await?;
    let bodies: Vec<_> = logs
        .iter()
        .map(|r| (r.str("level"), r.str("body"), r.str("release")))
        .collect();
    assert_eq!(
        bodies,
        [
            (
                Some("info"),
                Some("cart 42 checked out"),
                Some("shop-node@2.0.1")
            ),
            (
                Some("warn"),
                Some("payment provider slow"),
                Some("shop-node@2.0.1")
            ),
        ]
    );

    let feedback = rows_at_least(
        &server,
        &token,
        "SELECT f.source, f.message, f.contact_email, e.exception_value \
         FROM feedback f JOIN events e ON e.event_id = f.associated_event_id",
        1,
    )
    .await?;
    assert_eq!(feedback.len(), 1, "{feedback:?}");
    assert_eq!(feedback[0].str("source"), Some("feedback"));
    assert_eq!(
        feedback[0].str("message"),
        Some("the pay button does nothing")
    );
    assert_eq!(feedback[0].str("contact_email"), Some("ann@example.com"));
    assert_eq!(feedback[0].str("exception_value"), Some("payment declined"));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_sdk_transaction_spans_logs_and_feedback() -> anyhow::Result<()> {
    node_sdk_items("static").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_sdk_streamed_spans_logs_and_feedback() -> anyhow::Result<()> {
    node_sdk_items("stream").await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_items_survive_sigkill() -> anyhow::Result<()> {
    // transactions, spans, logs, feedback: Node's transaction; Python's three spans and
    // Node's three; two logs and one user report or feedback from each SDK
    const EXPECTED: (usize, usize, usize, usize) = (1, 6, 4, 2);
    let tmp = tempfile::tempdir()?;
    let setup = Setup::new(tmp.path(), "data", "");
    let server = setup.start()?;
    let dsn = setup.create_project("reports")?;
    let token = setup.create_token()?;
    // sentry-sdk 3 streams its spans; @sentry/node's `static` lifecycle sends a transaction
    printed(&python_client("send_items.py", &[&dsn])?)?;
    printed(&node_client("send_items.js", &[&dsn, "static"])?)?;
    // the spans the scripts made (origin `manual`): what the SDKs trace of their own HTTP
    // requests depends on timing
    let counts = "SELECT (SELECT count(*) FROM transactions) AS transactions, \
                  (SELECT count(*) FROM spans WHERE origin = 'manual') AS spans, \
                  (SELECT count(*) FROM logs) AS logs, (SELECT count(*) FROM feedback) AS feedback";
    // An SDK may deliver its last envelope after its flush returns: wait for all of it.
    rows_at_least(
        &server,
        &token,
        "SELECT 1 FROM logs UNION ALL SELECT 1 FROM feedback UNION ALL SELECT 1 FROM transactions \
         UNION ALL SELECT 1 FROM spans WHERE origin = 'manual'",
        EXPECTED.0 + EXPECTED.1 + EXPECTED.2 + EXPECTED.3,
    )
    .await?;
    let before = server.sql(&token, counts).await?;
    server.kill()?;
    let server = setup.start()?;
    let after = server.sql(&token, counts).await?;
    assert_eq!(after, before, "server log:\n{}", server.log_text());
    let row = &after[0];
    assert_eq!(
        (
            row.int("transactions"),
            row.int("spans"),
            row.int("logs"),
            row.int("feedback")
        ),
        (
            Some(EXPECTED.0 as i64),
            Some(EXPECTED.1 as i64),
            Some(EXPECTED.2 as i64),
            Some(EXPECTED.3 as i64)
        )
    );
    Ok(())
}
