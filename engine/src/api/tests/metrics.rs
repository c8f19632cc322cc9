//! `GET /metrics` after ingesting, flushing and querying: the counters a dashboard reads move.
//! Metrics are process-wide and other tests run in parallel, so each assertion is on how much
//! a counter grew at least.

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};

use super::{Harness, envelope, harness};

impl Harness {
    async fn scrape(&self) -> String {
        let reply = self
            .send(
                Request::builder()
                    .method(Method::GET)
                    .uri("/metrics")
                    .body(Body::empty())
                    .unwrap(),
            )
            .await;
        assert_eq!(reply.status, StatusCode::OK);
        assert!(
            reply.headers["content-type"]
                .to_str()
                .unwrap()
                .starts_with("application/openmetrics-text"),
        );
        reply.body.as_str().unwrap().to_owned()
    }
}

/// The value of the sample whose line starts with `series` (0 when absent).
pub(super) fn sample(text: &str, series: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test]
async fn metrics_move_with_ingest_flush_and_queries() {
    let h = harness().await;
    let before = h.scrape().await;
    let event = r#"{"message":"disk full"}"#;
    let id = "0123456789abcdef0123456789abcd01";
    let mut body = envelope(id, event);
    body.extend_from_slice(b"{\"type\":\"profile\"}\n{}\n");
    body.extend_from_slice(b"{\"type\":\"session\"}\n{\"sid\":\"x\"}\n");
    assert_eq!(h.envelope(body).await.status, StatusCode::OK);
    assert_eq!(h.envelope(envelope(id, event)).await.status, StatusCode::OK);
    let refused = h
        .send(
            super::post("/api/1/store/")
                .header(
                    "x-sentry-auth",
                    "Sentry sentry_key=ffffffffffffffffffffffffffffffff",
                )
                .body(Body::from("{}"))
                .unwrap(),
        )
        .await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED);
    let during = h.scrape().await;
    assert!(
        sample(&during, "faultline_buffer_rows") >= 1.0,
        "the event waits in the buffer: {during}"
    );
    h.node.flush().await.unwrap();
    let token = h.token(&["events:read"], None).await;
    assert_eq!(
        h.sql_as(&token, "SELECT count(*) FROM events").await.status,
        StatusCode::OK
    );
    assert_eq!(
        h.sql_as(&token, "SELECT nope FROM events").await.status,
        StatusCode::BAD_REQUEST
    );
    let after = h.scrape().await;

    let grew = |series: &str| sample(&after, series) - sample(&before, series);
    for (series, at_least) in [
        (
            r#"faultline_ingest_requests_total{endpoint="envelope",outcome="accepted"}"#,
            2.0,
        ),
        (
            r#"faultline_ingest_requests_total{endpoint="store",outcome="unauthorized"}"#,
            1.0,
        ),
        (
            r#"faultline_ingest_items_total{item_type="event",outcome="accepted"}"#,
            1.0,
        ),
        (
            r#"faultline_ingest_items_total{item_type="event",outcome="duplicate"}"#,
            1.0,
        ),
        (
            r#"faultline_ingest_items_total{item_type="profile",outcome="not_stored"}"#,
            1.0,
        ),
        (
            r#"faultline_ingest_items_total{item_type="session",outcome="invalid"}"#,
            1.0,
        ),
        ("faultline_wal_commits_total", 1.0),
        ("faultline_wal_written_bytes_total", event.len() as f64),
        ("faultline_flush_duration_seconds_count", 1.0),
        ("faultline_flushed_rows_total", 1.0),
        (
            r#"faultline_object_store_requests_total{operation="put",outcome="ok"}"#,
            2.0,
        ),
        (
            r#"faultline_object_store_request_duration_seconds_count{operation="put"}"#,
            2.0,
        ),
        (
            r#"faultline_queries_total{protocol="http",outcome="ok"}"#,
            1.0,
        ),
        (
            r#"faultline_queries_total{protocol="http",outcome="invalid"}"#,
            1.0,
        ),
    ] {
        assert!(
            grew(series) >= at_least,
            "{series} grew by {}:\n{after}",
            grew(series)
        );
    }
    for name in [
        "faultline_compaction_duration_seconds",
        "faultline_ingest_rate_limited_events",
        "faultline_wal_unflushed_bytes",
        "faultline_buffer_bytes",
    ] {
        assert!(
            after.contains(&format!("# HELP {name} ")),
            "{name} missing:\n{after}"
        );
    }
}
