//! Items other than error events: every type with a table is stored and queryable at once,
//! survives a crash (WAL replay) and a flush, and a malformed item is skipped alone.

use axum::http::StatusCode;
use serde_json::json;

use super::{Harness, harness};

const TRACE: &str = "0af7651916cd43dd8448eb211c80319c";

/// One envelope with an error event and a transaction of the same trace, streamed spans, logs,
/// feedback about the event, a legacy user report, a malformed transaction and a session.
fn envelope() -> String {
    let now = chrono::Utc::now().timestamp() as f64;
    let event_id = "9ec79c33ec9942ab8353589fcb2e04dc";
    let items = [
        (
            "event",
            json!({"event_id": event_id, "message": "checkout failed",
                   "contexts": {"trace": {"trace_id": TRACE, "span_id": "b7ad6b7169203331"}}}),
        ),
        (
            "transaction",
            json!({"event_id": "11111111111111111111111111111111", "transaction": "checkout",
                   "start_timestamp": now - 0.5, "timestamp": now, "release": "shop@1.0",
                   "contexts": {"trace": {"trace_id": TRACE, "span_id": "b7ad6b7169203331", "op": "http.server", "status": "internal_error"}},
                   "spans": [
                       {"trace_id": TRACE, "span_id": "c000000000000001", "parent_span_id": "b7ad6b7169203331",
                        "op": "db", "description": "SELECT cart", "start_timestamp": now - 0.4, "timestamp": now - 0.3},
                       {"trace_id": TRACE, "span_id": "c000000000000002", "parent_span_id": "b7ad6b7169203331",
                        "op": "http.client", "description": "POST /pay", "start_timestamp": now - 0.3, "timestamp": now - 0.1}]}),
        ),
        (
            "span",
            json!({"items": [{"trace_id": "1af7651916cd43dd8448eb211c80319c", "span_id": "d000000000000001",
                              "name": "GET /health", "status": "ok", "is_segment": true,
                              "start_timestamp": now - 0.01, "end_timestamp": now,
                              "attributes": {"sentry.op": {"type": "string", "value": "http.server"}}}]}),
        ),
        (
            "log",
            json!({"items": [
                {"timestamp": now, "trace_id": TRACE, "level": "error", "severity_number": 17, "body": "payment declined"},
                {"timestamp": now, "trace_id": TRACE, "level": "info", "body": "retrying"}]}),
        ),
        (
            "feedback",
            json!({"event_id": "22222222222222222222222222222222",
                   "contexts": {"feedback": {"message": "I could not pay", "contact_email": "ann@example.com",
                                             "associated_event_id": event_id}}}),
        ),
        (
            "user_report",
            json!({"event_id": event_id, "name": "Bo", "email": "bo@example.com", "comments": "same here"}),
        ),
        ("transaction", json!({"transaction": "no end"})),
        ("session", json!({"sid": "x", "status": "ok"})),
    ];
    let mut envelope = "{}\n".to_owned();
    for (ty, payload) in items {
        envelope.push_str(&format!("{{\"type\":\"{ty}\"}}\n{payload}\n"));
    }
    envelope
}

const COUNTS: &str = "SELECT (SELECT count(*) FROM transactions) AS transactions, \
     (SELECT count(*) FROM spans) AS spans, (SELECT count(*) FROM logs) AS logs, \
     (SELECT count(*) FROM feedback) AS feedback, (SELECT count(*) FROM events) AS events";

fn expected_counts() -> serde_json::Value {
    json!([{"transactions": 1, "spans": 4, "logs": 2, "feedback": 2, "events": 1}])
}

async fn assert_rows(h: &Harness) {
    assert_eq!(h.sql(COUNTS).await, expected_counts());
    let joined = h
        .sql(
            "SELECT e.title, t.transaction, t.op, t.status, t.duration_ms > 400 AS slow, t.span_count \
             FROM events e JOIN transactions t ON e.trace_id = t.trace_id",
        )
        .await;
    assert_eq!(
        joined,
        json!([{"title": "checkout failed", "transaction": "checkout", "op": "http.server",
                "status": "internal_error", "slow": true, "span_count": 2}])
    );
    let spans = h
        .sql(
            "SELECT op, description, is_segment, transaction, duration_ms > 0 AS timed \
             FROM spans ORDER BY start_timestamp",
        )
        .await;
    assert_eq!(
        spans,
        json!([
            {"op": "http.server", "description": "checkout", "is_segment": true, "transaction": "checkout", "timed": true},
            {"op": "db", "description": "SELECT cart", "is_segment": false, "transaction": "checkout", "timed": true},
            {"op": "http.client", "description": "POST /pay", "is_segment": false, "transaction": "checkout", "timed": true},
            {"op": "http.server", "description": "GET /health", "is_segment": true, "transaction": null, "timed": true},
        ])
    );
    let logs = h
        .sql(&format!(
            "SELECT level, severity_number, body FROM logs WHERE trace_id = '{TRACE}' ORDER BY body"
        ))
        .await;
    assert_eq!(
        logs,
        json!([{"level": "error", "severity_number": 17, "body": "payment declined"},
               {"level": "info", "severity_number": null, "body": "retrying"}])
    );
    let feedback = h
        .sql(
            "SELECT f.source, f.message, e.title FROM feedback f \
             JOIN events e ON f.associated_event_id = e.event_id ORDER BY f.source",
        )
        .await;
    assert_eq!(
        feedback,
        json!([{"source": "feedback", "message": "I could not pay", "title": "checkout failed"},
               {"source": "user_report", "message": "same here", "title": "checkout failed"}])
    );
}

#[tokio::test]
async fn items_are_stored_queryable_and_survive_a_crash_and_a_flush() {
    let h = harness().await;
    let reply = h.envelope(envelope()).await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    assert_rows(&h).await;

    // A crash: the node goes away without a flush; its WAL is all there is.
    let h = h.reopened().await;
    assert_rows(&h).await;

    // A flush: the rows move to Parquet files of their tables, listed in the manifest.
    assert_eq!(h.node.flush().await.unwrap(), 10);
    let manifest = h.node.buffer.manifest();
    let tables: Vec<&str> = manifest.tables.keys().map(String::as_str).collect();
    assert_eq!(tables, ["feedback", "logs", "spans", "transactions"]);
    for file in manifest.item_files() {
        assert!(file.path.starts_with("items/"), "{}", file.path);
        assert!(
            h.node
                .store
                .get(&object_store::path::Path::from(file.path.as_str()))
                .await
                .is_ok()
        );
    }
    assert!(h.node.buffer.snapshot().items.is_empty());
    assert_rows(&h).await;
}

#[tokio::test]
async fn an_envelope_of_only_malformed_or_unstored_items_is_accepted_and_stores_nothing() {
    let h = harness().await;
    let body = "{}\n{\"type\":\"log\"}\n{\"items\":[{\"body\":\"no time\"}]}\n\
                {\"type\":\"span\"}\nnot json\n{\"type\":\"check_in\"}\n{\"check_in_id\":\"x\"}\n";
    let reply = h.envelope(body).await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    assert_eq!(
        h.sql(COUNTS).await,
        json!([{"transactions": 0, "spans": 0, "logs": 0, "feedback": 0, "events": 0}])
    );
}

#[tokio::test]
async fn a_retried_transaction_or_feedback_is_stored_once() {
    let h = harness().await;
    for _ in 0..2 {
        let reply = h.envelope(envelope()).await;
        assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    }
    let counts = h
        .sql(
            "SELECT (SELECT count(*) FROM transactions) AS transactions, \
             (SELECT count(*) FROM spans WHERE transaction_id IS NOT NULL) AS transaction_spans, \
             (SELECT count(*) FROM feedback WHERE source = 'feedback') AS feedback, \
             (SELECT count(*) FROM events) AS events",
        )
        .await;
    assert_eq!(
        counts,
        json!([{"transactions": 1, "transaction_spans": 3, "feedback": 1, "events": 1}])
    );
}

#[tokio::test]
async fn a_bad_log_record_costs_itself_and_the_records_beside_it_are_stored() {
    let h = harness().await;
    let now = chrono::Utc::now().timestamp();
    let payload = json!({"items": [
        {"timestamp": now, "level": "info", "body": "order placed"},
        {"level": "info", "body": "no time given"},
        {"timestamp": now, "level": "info", "body": "order shipped"}]});
    let body = format!("{{}}\n{{\"type\":\"log\",\"item_count\":3}}\n{payload}\n");
    let reply = h.envelope(body).await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    assert_eq!(
        h.sql("SELECT body FROM logs ORDER BY body").await,
        json!([{"body": "order placed"}, {"body": "order shipped"}])
    );
    assert_eq!(
        h.where_items_went().await,
        json!([
            {"category": "log_item", "outcome": "accepted", "reason": null, "n": 2},
            {"category": "log_item", "outcome": "invalid", "reason": "invalid_item", "n": 1},
        ])
    );
}
