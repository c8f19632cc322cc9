//! Ingest that no event or request can take down: nesting limits, replay of a poisoned WAL,
//! authentication before the body, bounded decompression, and the messages of each refusal.

use axum::body::Body;
use axum::http::StatusCode;
use serde_json::Value;

use super::{ID, auth, envelope, harness, harness_with, post};
use crate::wal;

/// An event whose `extra.x` holds arrays nested so that the event is `depth` levels deep.
fn nested_event(depth: usize) -> String {
    let inner = depth - 2;
    format!(
        r#"{{"message":"deep","extra":{{"x":{}1{}}}}}"#,
        "[".repeat(inner),
        "]".repeat(inner)
    )
}

#[tokio::test]
async fn events_nested_to_the_limit_are_stored_and_deeper_ones_refused_naming_the_limit() {
    let h = harness().await;
    let reply = h.envelope(envelope(ID, &nested_event(64))).await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    let reply = h.store(nested_event(64)).await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    // 119 levels aborted the dev build's server; 250 were answered 200 and broke replay.
    for depth in [65, 119, 250, 5000] {
        for reply in [
            h.envelope(envelope(ID, &nested_event(depth))).await,
            h.store(nested_event(depth)).await,
        ] {
            assert_eq!(
                reply.status,
                StatusCode::BAD_REQUEST,
                "{depth}: {:?}",
                reply.body
            );
            let detail = reply.body["detail"].as_str().unwrap();
            assert!(
                detail.contains("max_json_depth of 64 levels"),
                "{depth}: {detail}"
            );
        }
    }
    // the envelope header line is bounded too
    let deep_header = format!(
        "{{\"x\":{}1{}}}\n{{\"type\":\"event\"}}\n{{}}\n",
        "[".repeat(300),
        "]".repeat(300)
    );
    let reply = h.envelope(deep_header).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{:?}", reply.body);
    assert!(
        reply.body["detail"]
            .as_str()
            .unwrap()
            .starts_with("envelope header JSON nests deeper than max_json_depth of 64"),
        "{:?}",
        reply.body
    );
    let rows = h.sql("SELECT count(*) AS n FROM events").await;
    assert_eq!(rows[0]["n"], 2);
}

/// Writes one WAL record of project 1 ("shop") with `json` as its stored event.
fn record(out: &mut Vec<u8>, json: &str) {
    wal::encode(
        out,
        wal::Fields {
            kind: wal::EVENT,
            project_id: 1,
            issue_id: 42,
            received_ms: chrono::Utc::now().timestamp_millis(),
            grouping_hash: &"ab".repeat(16),
            project: "shop",
            json: json.as_bytes(),
        },
    );
}

#[tokio::test]
async fn a_record_replay_cannot_read_is_quarantined_and_the_node_starts_with_the_others() {
    // What an older version accepted: an event nested deeper than replay reads, and a record
    // that is no JSON at all, between good events of the same segment.
    let deep = nested_event(300);
    let mut segment = Vec::new();
    record(
        &mut segment,
        r#"{"event_id":"00000000000000000000000000000001","message":"one"}"#,
    );
    let deep_offset = segment.len() as u64;
    record(&mut segment, &deep);
    let broken_offset = segment.len() as u64;
    record(&mut segment, "{\"message\": ");
    record(
        &mut segment,
        r#"{"event_id":"00000000000000000000000000000002","message":"two"}"#,
    );
    let mut wal_dir = None;
    let h = harness_with(|c| {
        let dir = c.wal_dir();
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(format!("{:020}.wal", 3)), &segment).unwrap();
        wal_dir = Some(dir);
    })
    .await;
    let wal_dir = wal_dir.unwrap();

    let rows = h.sql("SELECT message FROM events ORDER BY message").await;
    assert_eq!(
        rows,
        serde_json::json!([{"message": "one"}, {"message": "two"}])
    );
    assert_eq!(h.node.quarantined_records(), 2);

    let listed = wal::quarantine::list(&wal_dir).unwrap();
    let places: Vec<_> = listed.iter().map(|q| (q.segment, q.offset)).collect();
    assert_eq!(places, vec![(3, deep_offset), (3, broken_offset)]);
    assert!(
        listed[0].reason.contains("max_json_depth"),
        "{:?}",
        listed[0]
    );
    assert!(
        listed[1].reason.contains("not valid JSON"),
        "{:?}",
        listed[1]
    );
    let (entry, stored) = wal::quarantine::show(&wal_dir, &listed[0].id).unwrap();
    assert_eq!(entry.project, "shop");
    assert_eq!(stored.json, deep.as_bytes(), "kept byte for byte");

    // The segment goes with the next flush; the quarantined copies stay.
    h.node.flush().await.unwrap();
    assert!(!wal_dir.join(format!("{:020}.wal", 3)).exists());
    assert_eq!(wal::quarantine::list(&wal_dir).unwrap().len(), 2);
    let rows = h.sql("SELECT count(*) AS n FROM events").await;
    assert_eq!(rows[0]["n"], 2);
}

#[tokio::test]
async fn a_json_null_sent_to_store_is_named_as_such() {
    let h = harness().await;
    for (body, found) in [("null", "null"), ("42", "number"), ("\"text\"", "string")] {
        let reply = h.store(body).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{body}");
        assert_eq!(
            reply.body["detail"],
            Value::from(format!(
                "event payload is a JSON {found}, expected an object"
            )),
            "{body}"
        );
    }
}

#[tokio::test]
async fn an_event_sent_with_the_dsn_header_only_is_stored() {
    let h = harness().await;
    let body = format!(
        "{{\"event_id\":\"{ID}\",\"dsn\":\"http://{}@localhost/1\"}}\n{{\"type\":\"event\"}}\n{{\"message\":\"by dsn\"}}\n",
        super::KEY
    );
    let reply = h
        .send(
            post("/api/1/envelope/")
                .header("content-encoding", "gzip")
                .body(Body::from(super::gzip(body.as_bytes())))
                .unwrap(),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    let rows = h.sql("SELECT message FROM events").await;
    assert_eq!(rows, serde_json::json!([{"message": "by dsn"}]));
}

/// A request body that records whether the server ever asked for a byte of it.
fn watched_body(size: usize) -> (Body, std::sync::Arc<std::sync::atomic::AtomicBool>) {
    let polled = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = std::sync::Arc::clone(&polled);
    let stream = futures::stream::once(async move {
        flag.store(true, std::sync::atomic::Ordering::SeqCst);
        Ok::<_, std::io::Error>(bytes::Bytes::from(vec![b'x'; size]))
    });
    (Body::from_stream(stream), polled)
}

#[tokio::test]
async fn a_wrong_key_is_refused_without_reading_the_body() {
    let h = harness().await;
    for request in [
        post("/api/1/envelope/").header(
            "x-sentry-auth",
            "Sentry sentry_key=ffffffffffffffffffffffffffffffff",
        ),
        post("/api/1/envelope/?sentry_key=ffffffffffffffffffffffffffffffff"),
        post("/api/1/store/").header(
            "authorization",
            "Sentry sentry_key=ffffffffffffffffffffffffffffffff",
        ),
        post("/api/1/store/"),
    ] {
        let (body, polled) = watched_body(1024 * 1024);
        let reply = h.send(request.body(body).unwrap()).await;
        assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{:?}", reply.body);
        assert!(
            !polled.load(std::sync::atomic::Ordering::SeqCst),
            "body was read"
        );
    }
    // the right key reads it (and finds it is no envelope)
    let (body, polled) = watched_body(100);
    let reply = h
        .send(
            post("/api/1/envelope/")
                .header("x-sentry-auth", auth())
                .body(body)
                .unwrap(),
        )
        .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{:?}", reply.body);
    assert!(polled.load(std::sync::atomic::Ordering::SeqCst));
}

#[tokio::test]
async fn an_over_size_body_gets_json_naming_the_limit() {
    let h = harness_with(|c| c.limits.max_request_size = faultline_config::ByteSize::b(1024)).await;
    let event = r#"{"message":"fits"}"#;
    let mut at_limit = format!(r#"{{"event_id":"{ID}"}}"#).into_bytes();
    at_limit.push(b'\n');
    at_limit.extend_from_slice(b"{\"type\":\"event\"}\n");
    at_limit.extend_from_slice(event.as_bytes());
    at_limit.push(b'\n');
    at_limit.resize(1024, b'\n'); // trailing blank lines are allowed
    let reply = h.envelope(at_limit.clone()).await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    at_limit.push(b'\n');
    // declared by Content-Length, and streamed without one
    let reply = h.envelope(at_limit.clone()).await;
    assert_eq!(reply.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(
        reply.body["detail"],
        "request body exceeds max_request_size of 1024 bytes"
    );
    let (body, _) = watched_body(1025);
    let reply = h
        .send(
            post("/api/1/envelope/")
                .header("x-sentry-auth", auth())
                .body(body)
                .unwrap(),
        )
        .await;
    assert_eq!(reply.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert_eq!(
        reply.body["detail"],
        "request body exceeds max_request_size of 1024 bytes"
    );
    assert_eq!(reply.headers["content-type"], "application/json");
}

#[tokio::test]
async fn a_compression_bomb_with_a_bad_dsn_is_refused_after_its_first_line() {
    let h = harness_with(|c| c.limits.max_envelope_size = faultline_config::ByteSize::mib(1)).await;
    // 64 MiB after the header: a full decode would stop at the 1 MiB limit with a 413
    let mut body =
        b"{\"dsn\":\"http://ffffffffffffffffffffffffffffffff@localhost/1\"}\n{\"type\":\"event\"}\n"
            .to_vec();
    body.resize(64 * 1024 * 1024, b' ');
    for (encoding, bomb) in [
        ("gzip", super::gzip(&body)),
        ("br", super::brotli(&body)),
        ("zstd", zstd::encode_all(&body[..], 3).unwrap()),
    ] {
        assert!(bomb.len() < 200 * 1024, "{encoding}: {}", bomb.len());
        let reply = h
            .send(
                post("/api/1/envelope/")
                    .header("content-encoding", encoding)
                    .body(Body::from(bomb))
                    .unwrap(),
            )
            .await;
        assert_eq!(
            reply.status,
            StatusCode::UNAUTHORIZED,
            "{encoding}: {:?}",
            reply.body
        );
        assert!(
            reply.body["detail"]
                .as_str()
                .unwrap()
                .contains("not valid for project 1"),
            "{encoding}: {:?}",
            reply.body
        );
    }
    // the same bomb with no newline at all: only 64 KiB are decoded looking for the header
    let bomb = super::gzip(&vec![b' '; 64 * 1024 * 1024]);
    let reply = h
        .send(
            post("/api/1/envelope/")
                .header("content-encoding", "gzip")
                .body(Body::from(bomb))
                .unwrap(),
        )
        .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{:?}", reply.body);
    assert!(
        reply.body["detail"]
            .as_str()
            .unwrap()
            .contains("longer than 65536 bytes"),
        "{:?}",
        reply.body
    );
}

#[tokio::test]
async fn the_concurrency_limit_names_itself() {
    let h = harness_with(|c| c.limits.max_concurrent_requests = 1).await;
    let held = h
        .node
        .ingest
        .admit(crate::ingest::RequestHead {
            endpoint: crate::ingest::Endpoint::Envelope,
            project_id: "1",
            auth: Default::default(),
            content_encoding: None,
            client_ip: None,
        })
        .await
        .unwrap();
    let reply = h.envelope(envelope(ID, r#"{"message":"m"}"#)).await;
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        reply.body["detail"],
        "the server is already handling its limit of 1 concurrent ingest requests \
         (limits.max_concurrent_requests); retry shortly"
    );
    assert_eq!(reply.headers["retry-after"], "1");
    drop(held);
    let reply = h.envelope(envelope(ID, r#"{"message":"m"}"#)).await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
}

async fn ready(h: &super::Harness) -> (StatusCode, String) {
    let response = h
        .send(
            axum::http::Request::builder()
                .uri("/health/ready")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    (
        response.status,
        response.body.as_str().unwrap_or_default().to_owned(),
    )
}

#[tokio::test]
async fn a_full_disk_is_reported_once_without_paths_and_readiness_follows_it() {
    let h = harness().await;
    let wal_dir = h.node.config.wal_dir();
    // The next segment and the readiness probe land on a device that is always full.
    let (seq, _) = wal::list_segments(&wal_dir).unwrap().pop().unwrap();
    std::os::unix::fs::symlink("/dev/full", wal_dir.join(format!("{:020}.wal", seq + 1))).unwrap();
    h.node.flush().await.unwrap();
    std::os::unix::fs::symlink("/dev/full", wal_dir.join("write-probe.tmp")).unwrap();

    let reply = h.envelope(envelope(ID, r#"{"message":"no room"}"#)).await;
    assert_eq!(reply.status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(
        reply.body["detail"],
        "the server cannot write events to its disk right now (no space left on device); \
         retry later"
    );
    assert_eq!(reply.headers["retry-after"], "30");
    assert_eq!(
        ready(&h).await,
        (
            StatusCode::SERVICE_UNAVAILABLE,
            "not ready: events cannot be written to disk (no space left on device)\n".to_owned()
        )
    );
    // Room again (the probe is a real file now): ready, and a new segment takes events.
    assert_eq!(ready(&h).await, (StatusCode::OK, "ready\n".to_owned()));
    h.node.flush().await.unwrap();
    let reply = h
        .envelope(envelope(ID, r#"{"message":"room again"}"#))
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    assert_eq!(
        h.sql("SELECT message FROM events").await,
        serde_json::json!([{"message": "room again"}])
    );
}

#[tokio::test]
async fn a_wrong_dsn_stops_the_body_at_the_envelope_header() {
    let h = harness().await;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    std::io::Write::write_all(
        &mut gz,
        b"{\"dsn\":\"http://ffffffffffffffffffffffffffffffff@localhost/1\"}\n",
    )
    .unwrap();
    std::io::Write::flush(&mut gz).unwrap(); // a sync flush: the header decodes on its own
    let head = bytes::Bytes::from(std::mem::take(gz.get_mut()));
    let polled = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = std::sync::Arc::clone(&polled);
    let rest = futures::stream::once(async move {
        flag.store(true, std::sync::atomic::Ordering::SeqCst);
        Ok::<_, std::io::Error>(bytes::Bytes::from(vec![0u8; 1024]))
    });
    let body = futures::StreamExt::chain(
        futures::stream::once(async move { Ok::<_, std::io::Error>(head) }),
        rest,
    );
    let reply = h
        .send(
            post("/api/1/envelope/")
                .header("content-encoding", "gzip")
                .body(Body::from_stream(body))
                .unwrap(),
        )
        .await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{:?}", reply.body);
    assert!(
        reply.body["detail"]
            .as_str()
            .unwrap()
            .contains("not valid for project 1"),
        "{:?}",
        reply.body
    );
    assert!(
        !polled.load(std::sync::atomic::Ordering::SeqCst),
        "the rest was read"
    );
}
