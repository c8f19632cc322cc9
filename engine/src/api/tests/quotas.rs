//! Quotas per data category: items over a project's quota are dropped while the rest of their
//! envelope is kept, the SDK is told which categories to hold back (`X-Sentry-Rate-Limits` on
//! the 200), a request with nothing left is refused with 429, and every drop is an outcome.

use std::time::Duration;

use axum::http::StatusCode;
use faultline_config::{Quota, RateLimit};
use serde_json::json;

use super::{Reply, harness_with, post};

fn quota(categories: &[&str], limit: u64) -> Quota {
    Quota {
        categories: categories.iter().map(|c| c.to_string()).collect(),
        limit,
        window: Duration::from_secs(3600),
    }
}

/// An envelope of `items` (type, payload).
fn envelope(items: &[(&str, serde_json::Value)]) -> String {
    let mut body = "{}\n".to_owned();
    for (ty, payload) in items {
        body.push_str(&format!("{{\"type\":\"{ty}\"}}\n{payload}\n"));
    }
    body
}

fn transaction(name: &str) -> serde_json::Value {
    let now = chrono::Utc::now().timestamp() as f64;
    json!({"event_id": uuid::Uuid::new_v4().simple().to_string(), "transaction": name,
           "start_timestamp": now - 0.2, "timestamp": now,
           "contexts": {"trace": {"trace_id": "0af7651916cd43dd8448eb211c80319c",
                                  "span_id": "b7ad6b7169203331", "op": "http.server"}}})
}

fn log(body: &str) -> serde_json::Value {
    json!({"items": [{"timestamp": chrono::Utc::now().timestamp(), "level": "info", "body": body}]})
}

fn limits_header(reply: &Reply) -> Option<&str> {
    reply
        .headers
        .get("x-sentry-rate-limits")
        .map(|v| v.to_str().unwrap())
}

/// `42:transaction;span:project` -> (42, "transaction;span:project").
fn split_retry(entry: &str) -> (u64, &str) {
    let (secs, rest) = entry.split_once(':').unwrap();
    (secs.parse().unwrap(), rest)
}

#[tokio::test]
async fn items_over_a_quota_are_dropped_and_the_sdk_told_while_the_rest_is_kept() {
    let h = harness_with(|c| c.projects[0].quotas = vec![quota(&["transaction", "span"], 2)]).await;
    for i in 0..2 {
        let reply = h
            .envelope(envelope(&[("transaction", transaction(&format!("t{i}")))]))
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
        assert_eq!(limits_header(&reply), None);
    }
    // the third transaction is over the quota; the event and the log beside it are kept
    let reply = h
        .envelope(envelope(&[
            ("event", json!({"message": "checkout failed"})),
            ("transaction", transaction("t2")),
            ("log", log("payment declined")),
        ]))
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    let (retry, limited) = split_retry(limits_header(&reply).expect("a rate limits header"));
    assert_eq!(limited, "transaction;span:project");
    assert!((3590..=3600).contains(&retry), "{retry}");
    assert_eq!(
        h.sql(
            "SELECT (SELECT count(*) FROM transactions) AS transactions, \
             (SELECT count(*) FROM events) AS events, (SELECT count(*) FROM logs) AS logs"
        )
        .await,
        json!([{"transactions": 2, "events": 1, "logs": 1}])
    );
    // nothing else in the request: refused as a whole, with Retry-After
    let reply = h
        .envelope(envelope(&[("transaction", transaction("t3"))]))
        .await;
    assert_eq!(reply.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(
        split_retry(limits_header(&reply).unwrap()).1,
        "transaction;span:project"
    );
    let detail = reply.body["detail"].as_str().unwrap();
    assert!(
        detail.starts_with(
            "project 1 is over the project quota of 2 transaction, span items per 3600s"
        ),
        "{detail}"
    );
    let retry: u64 = reply.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((3590..=3600).contains(&retry), "{retry}");
    // where did they go: two transactions rate limited by the project's quota
    h.node.flush_with_outcomes().await.unwrap();
    assert_eq!(
        h.sql(
            "SELECT category, outcome, reason, sum(quantity) AS n FROM outcomes \
             WHERE category = 'transaction' GROUP BY category, outcome, reason ORDER BY outcome"
        )
        .await,
        json!([
            {"category": "transaction", "outcome": "accepted", "reason": null, "n": 2},
            {"category": "transaction", "outcome": "rate_limited", "reason": "project_quota", "n": 2},
        ])
    );
}

#[tokio::test]
async fn a_quota_without_categories_counts_every_item_and_events_over_it_keep_their_envelope() {
    let h = harness_with(|c| c.projects[0].quotas = vec![quota(&[], 2)]).await;
    let reply = h
        .envelope(envelope(&[
            ("log", log("one")),
            ("event", json!({"message": "first"})),
        ]))
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    assert_eq!(limits_header(&reply), None);
    // the quota is used up: an event alone is refused, and the header names all categories
    let reply = h.store(r#"{"message":"second"}"#).await;
    assert_eq!(reply.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(split_retry(limits_header(&reply).unwrap()).1, ":project");
    assert_eq!(
        h.sql("SELECT count(*) AS n FROM events").await,
        json!([{"n": 1}])
    );
}

#[tokio::test]
async fn events_over_their_rate_limit_do_not_take_the_envelopes_other_items_with_them() {
    const LIMITED: &str = "fedcba9876543210fedcba9876543210";
    let h = harness_with(|c| {
        c.projects[0].keys.push(faultline_config::KeyConfig {
            rate_limit: Some(RateLimit {
                events: 1,
                window: Duration::from_secs(3600),
            }),
            ..faultline_config::KeyConfig::new(LIMITED)
        });
        c.projects[0].quotas = vec![quota(&["error"], 2), quota(&["log_item"], 1)];
    })
    .await;
    let with_key = |key: &str, body: String| {
        h.send(
            post(&format!(
                "/api/1/{}/",
                if body.starts_with("{}") {
                    "envelope"
                } else {
                    "store"
                }
            ))
            .header("x-sentry-auth", format!("Sentry sentry_key={key}"))
            .body(body.into())
            .unwrap(),
        )
    };
    let one = with_key(LIMITED, r#"{"message":"one"}"#.to_owned()).await;
    assert_eq!(one.status, StatusCode::OK, "{:?}", one.body);
    // the key's rate limit refuses the event; the log beside it is kept
    let reply = with_key(
        LIMITED,
        envelope(&[("event", json!({"message": "two"})), ("log", log("kept"))]),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    assert_eq!(split_retry(limits_header(&reply).unwrap()).1, "error:key");
    assert_eq!(
        h.sql(
            "SELECT (SELECT count(*) FROM events) AS events, (SELECT count(*) FROM logs) AS logs"
        )
        .await,
        json!([{"events": 1, "logs": 1}])
    );
    // an event over the key's limit and a log over its quota: nothing left, one 429 naming both
    let reply = with_key(
        LIMITED,
        envelope(&[("event", json!({"message": "again"})), ("log", log("over"))]),
    )
    .await;
    assert_eq!(
        reply.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{:?}",
        reply.body
    );
    let header = limits_header(&reply).unwrap();
    let limited: Vec<&str> = header.split(", ").map(|e| split_retry(e).1).collect();
    assert_eq!(limited, ["log_item:project", "error:key"], "{header}");
    // the refused event used none of the project's quota of 2: the other key has room for one
    let three = h.store(r#"{"message":"three"}"#).await;
    assert_eq!(three.status, StatusCode::OK, "{:?}", three.body);
    let four = h.store(r#"{"message":"four"}"#).await;
    assert_eq!(four.status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(
        split_retry(limits_header(&four).unwrap()).1,
        "error:project"
    );
    assert!(
        four.body["detail"]
            .as_str()
            .unwrap()
            .contains("quota of 2 error items"),
        "{:?}",
        four.body
    );
}

/// An envelope of an event and an attachment of `bytes` bytes.
fn event_with_attachment(bytes: usize) -> String {
    let id = uuid::Uuid::new_v4().simple().to_string();
    let data = "x".repeat(bytes);
    format!(
        "{{\"event_id\":\"{id}\"}}\n{{\"type\":\"event\"}}\n\
         {{\"event_id\":\"{id}\",\"message\":\"upload failed\"}}\n\
         {{\"type\":\"attachment\",\"length\":{bytes},\"filename\":\"dump.txt\"}}\n{data}\n"
    )
}

#[tokio::test]
async fn an_attachment_quota_counts_bytes_as_relay_counts_them() {
    let h = harness_with(|c| c.projects[0].quotas = vec![quota(&["attachment"], 1_000)]).await;
    let reply = h.envelope(event_with_attachment(600)).await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    assert_eq!(limits_header(&reply), None);
    // 600 more bytes do not fit: the attachment is dropped, its event kept
    let reply = h.envelope(event_with_attachment(600)).await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    assert_eq!(
        split_retry(limits_header(&reply).expect("a rate limits header")).1,
        "attachment:project"
    );
    // 400 still do
    let reply = h.envelope(event_with_attachment(400)).await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    assert_eq!(limits_header(&reply), None);
    assert_eq!(
        h.sql(
            "SELECT (SELECT count(*) FROM events) AS events, \
             (SELECT count(*) FROM attachments) AS attachments, \
             (SELECT sum(size) FROM attachments) AS bytes"
        )
        .await,
        json!([{"events": 3, "attachments": 2, "bytes": 1000}])
    );
    // outcomes count attachments in bytes and as items, as Sentry's do
    h.node.flush_with_outcomes().await.unwrap();
    assert_eq!(
        h.sql(
            "SELECT category, outcome, sum(quantity) AS n FROM outcomes \
             WHERE category LIKE 'attachment%' GROUP BY category, outcome \
             ORDER BY category, outcome"
        )
        .await,
        json!([
            {"category": "attachment", "outcome": "accepted", "n": 1000},
            {"category": "attachment", "outcome": "rate_limited", "n": 600},
            {"category": "attachment_item", "outcome": "accepted", "n": 2},
            {"category": "attachment_item", "outcome": "rate_limited", "n": 1},
        ])
    );
}

#[tokio::test]
async fn an_attachment_item_quota_counts_attachments_whatever_their_size() {
    let h = harness_with(|c| c.projects[0].quotas = vec![quota(&["attachment_item"], 1)]).await;
    let reply = h.envelope(event_with_attachment(100_000)).await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    assert_eq!(limits_header(&reply), None);
    let reply = h.envelope(event_with_attachment(1)).await;
    assert_eq!(
        split_retry(limits_header(&reply).expect("a rate limits header")).1,
        "attachment_item:project"
    );
    assert_eq!(
        h.sql("SELECT count(*) AS n FROM attachments").await,
        json!([{"n": 1}])
    );
}

/// A log container of `n` records with its `item_count`, as the SDKs send logs.
fn logs_item(n: usize, body: &str) -> String {
    let now = chrono::Utc::now().timestamp();
    let records: Vec<serde_json::Value> = (0..n)
        .map(|i| json!({"timestamp": now, "level": "info", "body": format!("{body} {i}")}))
        .collect();
    let payload = json!({ "items": records });
    format!("{{\"type\":\"log\",\"item_count\":{n}}}\n{payload}\n")
}

#[tokio::test]
async fn logs_are_counted_per_record_in_quotas_and_outcomes_as_relay_counts_them() {
    let h = harness_with(|c| c.projects[0].quotas = vec![quota(&["log_item"], 5)]).await;
    // 3 records of 5: stored; 3 more would make 6: the container is refused as a whole
    let first = h.envelope(format!("{{}}\n{}", logs_item(3, "paid"))).await;
    assert_eq!(first.status, StatusCode::OK, "{:?}", first.body);
    let over = h
        .envelope(format!("{{}}\n{}", logs_item(3, "refunded")))
        .await;
    assert_eq!(
        over.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{:?}",
        over.body
    );
    assert_eq!(
        split_retry(limits_header(&over).unwrap()).1,
        "log_item:project"
    );
    // 2 fit exactly
    let last = h
        .envelope(format!("{{}}\n{}", logs_item(2, "shipped")))
        .await;
    assert_eq!(last.status, StatusCode::OK, "{:?}", last.body);
    assert_eq!(
        h.sql("SELECT count(*) AS n FROM logs").await,
        json!([{"n": 5}])
    );
    assert_eq!(
        h.where_items_went().await,
        json!([
            {"category": "log_item", "outcome": "accepted", "reason": null, "n": 5},
            {"category": "log_item", "outcome": "rate_limited", "reason": "project_quota", "n": 3},
        ])
    );
}

#[tokio::test]
async fn an_envelope_refused_for_one_items_size_counts_every_item_it_held() {
    let h = harness_with(|c| c.limits.max_event_size = faultline_config::ByteSize::kib(2)).await;
    // an event, a log container over max_event_size and a transaction: 413, nothing stored
    let body = format!(
        "{{}}\n{{\"type\":\"event\"}}\n{}\n{}{{\"type\":\"transaction\"}}\n{}\n",
        json!({"message": "checkout failed"}),
        logs_item(100, "a long log line that makes the container pass two KiB"),
        transaction("checkout"),
    );
    let reply = h.envelope(body).await;
    assert_eq!(
        reply.status,
        StatusCode::PAYLOAD_TOO_LARGE,
        "{:?}",
        reply.body
    );
    assert!(
        reply
            .body
            .to_string()
            .contains("item 2 (log) exceeds max_event_size"),
        "{:?}",
        reply.body
    );
    // each item in its own category with its records: not "1 error"
    assert_eq!(
        h.where_items_went().await,
        json!([
            {"category": "error", "outcome": "too_large", "reason": "max_item_size", "n": 1},
            {"category": "log_item", "outcome": "too_large", "reason": "max_item_size", "n": 100},
            {"category": "transaction", "outcome": "too_large", "reason": "max_item_size", "n": 1},
        ])
    );
    assert_eq!(
        h.sql("SELECT (SELECT count(*) FROM events) + (SELECT count(*) FROM logs) AS n")
            .await,
        json!([{"n": 0}])
    );
}
