//! Attachments and outcomes over HTTP: an attachment's bytes are stored before the answer and
//! downloaded as sent, the size limits refuse one attachment and keep the rest, another
//! tenant sees nothing, and what became of every item is in `outcomes`.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;

use super::{Harness, harness, harness_with};

const EVENT: &str = "9ec79c33ec9942ab8353589fcb2e04dc";

/// An envelope about [`EVENT`] with an error event and the attachments `(filename, headers,
/// bytes)`.
fn envelope(attachments: &[(&str, &str, &[u8])]) -> Vec<u8> {
    let mut body =
        format!("{{\"event_id\":\"{EVENT}\"}}\n{{\"type\":\"event\"}}\n{{\"message\":\"checkout failed\"}}\n")
            .into_bytes();
    for (filename, extra, bytes) in attachments {
        body.extend_from_slice(
            format!(
                "{{\"type\":\"attachment\",\"length\":{},\"filename\":\"{filename}\"{extra}}}\n",
                bytes.len()
            )
            .as_bytes(),
        );
        body.extend_from_slice(bytes);
        body.push(b'\n');
    }
    body
}

/// A GET with a bearer token: status, headers and raw bytes.
async fn get(h: &Harness, token: &str, uri: &str) -> (StatusCode, axum::http::HeaderMap, Vec<u8>) {
    let request = Request::builder()
        .uri(uri)
        .header("authorization", format!("Bearer {token}"))
        .body(Body::empty())
        .unwrap();
    let response = h.router.clone().oneshot(request).await.unwrap();
    let status = response.status();
    let headers = response.headers().clone();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (status, headers, bytes.to_vec())
}

fn list_uri(project: &str) -> String {
    format!("/api/0/projects/default/{project}/events/{EVENT}/attachments/")
}

const BINARY: &[u8] = b"MDMP\x00\x01\xff\n\r\nend";

/// Lists the attachments of [`EVENT`] and downloads each.
async fn assert_listed_and_downloaded(h: &Harness, token: &str, round: &str) {
    let (status, _, body) = get(h, token, &list_uri("shop")).await;
    assert_eq!(status, StatusCode::OK, "{round}");
    let list: Value = serde_json::from_slice(&body).unwrap();
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 2, "{round}: {list:?}");
    assert_eq!(list[0]["name"], "crash.dmp", "{round}");
    assert_eq!(list[0]["type"], "event.minidump");
    assert_eq!(list[0]["mimetype"], "application/octet-stream");
    assert_eq!(list[0]["size"], 13);
    assert_eq!(list[0]["event_id"], EVENT);
    assert_eq!(list[1]["name"], "log.txt");
    assert_eq!(list[1]["headers"], json!({"Content-Type": "text/plain"}));
    assert_eq!(
        list[1]["sha1"], "490b249f017534b54d34b98ff0491d8d4754f01d",
        "SHA-1 of the bytes"
    );
    let id = list[1]["id"].as_str().unwrap();
    let (status, headers, body) =
        get(h, token, &format!("{}{id}/?download=1", list_uri("shop"))).await;
    assert_eq!(status, StatusCode::OK, "{round}");
    assert_eq!(body, b"line one\nline two", "{round}");
    assert_eq!(headers["content-type"], "text/plain");
    assert_eq!(
        headers["content-disposition"],
        "attachment; filename=\"log.txt\"; filename*=UTF-8''log.txt"
    );
    let id = list[0]["id"].as_str().unwrap();
    let (status, _, body) = get(h, token, &format!("{}{id}/?download=1", list_uri("shop"))).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, BINARY, "{round}: bytes as sent");
    // without ?download, the attachment's details
    let (status, _, body) = get(h, token, &format!("{}{id}/", list_uri("shop"))).await;
    assert_eq!(status, StatusCode::OK);
    let one: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(one["name"], "crash.dmp");
}

#[tokio::test]
async fn attachments_are_stored_listed_and_downloaded_as_sent() {
    let h = harness().await;
    let reply = h
        .envelope(envelope(&[
            (
                "log.txt",
                ",\"content_type\":\"text/plain\"",
                b"line one\nline two",
            ),
            (
                "crash.dmp",
                ",\"attachment_type\":\"event.minidump\"",
                BINARY,
            ),
        ]))
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    assert_eq!(reply.body, json!({"id": EVENT}));
    let rows = h
        .sql(
            "SELECT project, event_id, filename, content_type, attachment_type, size \
             FROM attachments ORDER BY filename",
        )
        .await;
    assert_eq!(
        rows,
        json!([
            {"project": "shop", "event_id": EVENT, "filename": "crash.dmp",
             "content_type": "application/octet-stream", "attachment_type": "event.minidump", "size": 13},
            {"project": "shop", "event_id": EVENT, "filename": "log.txt",
             "content_type": "text/plain", "attachment_type": "event.attachment", "size": 17},
        ])
    );
    let token = h.token(&["event:read"], None).await;
    assert_listed_and_downloaded(&h, &token, "acknowledged").await;

    // A crash: the rows come back from the WAL, the bytes were in the store already.
    let h = h.reopened().await;
    assert_listed_and_downloaded(&h, &token, "after a restart").await;

    h.node.flush().await.unwrap();
    assert!(h.node.buffer.manifest().tables.contains_key("attachments"));
    assert_listed_and_downloaded(&h, &token, "after a flush").await;

    // the objects sit under the project and the day they were received
    let day = chrono::Utc::now().format("%Y-%m-%d").to_string();
    let objects = h
        .node
        .store
        .list(&object_store::path::Path::from(format!(
            "attachments/proj=1/date={day}/{EVENT}"
        )))
        .await
        .unwrap();
    assert_eq!(objects.len(), 2);
}

#[tokio::test]
async fn a_retried_attachment_is_stored_once() {
    let h = harness().await;
    for _ in 0..2 {
        let reply = h.envelope(envelope(&[("a.txt", "", b"abc")])).await;
        assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    }
    assert_eq!(
        h.sql("SELECT count(*) AS n FROM attachments").await,
        json!([{"n": 1}])
    );
}

#[tokio::test]
async fn an_attachment_over_a_limit_is_refused_alone_at_the_boundary() {
    let h = harness_with(|c| {
        c.limits.max_attachment_size = faultline_config::ByteSize::b(10);
        c.limits.max_attachments_size = faultline_config::ByteSize::b(15);
    })
    .await;
    let reply = h
        .envelope(envelope(&[
            ("at-limit.txt", "", b"0123456789"),
            ("one-over.txt", "", b"0123456789X"),
            ("fills-the-envelope.txt", "", b"abcde"),
            ("one-over-the-envelope.txt", "", b"z"),
        ]))
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    assert_eq!(
        h.sql("SELECT filename, size FROM attachments ORDER BY filename")
            .await,
        json!([{"filename": "at-limit.txt", "size": 10},
               {"filename": "fills-the-envelope.txt", "size": 5}])
    );
    assert_eq!(
        h.sql("SELECT title FROM events").await,
        json!([{"title": "checkout failed"}]),
        "the event is kept"
    );
    assert_eq!(
        h.where_items_went().await,
        json!([
            // attachments count in bytes, and once each as `attachment_item`
            {"category": "attachment", "outcome": "accepted", "reason": null, "n": 15},
            {"category": "attachment", "outcome": "too_large", "reason": "max_attachment_size", "n": 11},
            {"category": "attachment", "outcome": "too_large", "reason": "max_attachments_size", "n": 1},
            {"category": "attachment_item", "outcome": "accepted", "reason": null, "n": 2},
            {"category": "attachment_item", "outcome": "too_large", "reason": "max_attachment_size", "n": 1},
            {"category": "attachment_item", "outcome": "too_large", "reason": "max_attachments_size", "n": 1},
            {"category": "error", "outcome": "accepted", "reason": null, "n": 1},
        ])
    );
}

#[tokio::test]
async fn another_tenant_gets_404_and_sees_no_rows() {
    let h = harness_with(|config| {
        config.projects.push(faultline_config::ProjectConfig {
            id: 2,
            name: "web".into(),
            keys: vec!["fedcba9876543210fedcba9876543210".into()],
            quotas: Vec::new(),
            rate_limit: None,
            retention_days: None,
            grouping_enhancements: None,
            fingerprinting_rules: None,
            privacy: None,
        });
    })
    .await;
    let reply = h.envelope(envelope(&[("secret.txt", "", b"s3cret")])).await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    let own = h.token(&["event:read"], Some(vec![1])).await;
    let (_, _, body) = get(&h, &own, &list_uri("shop")).await;
    let list: Value = serde_json::from_slice(&body).unwrap();
    let id = list[0]["id"].as_str().unwrap().to_owned();
    let download = format!("{}{id}/?download=1", list_uri("shop"));
    assert_eq!(get(&h, &own, &download).await.0, StatusCode::OK);

    // a token of the same organization for another project
    let web = h.token(&["event:read"], Some(vec![2])).await;
    let (status, _, body) = get(&h, &web, &download).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(
        serde_json::from_slice::<Value>(&body).unwrap(),
        json!({"detail": "no project \"shop\" in \"default\""})
    );
    assert_eq!(
        get(&h, &web, &list_uri("shop")).await.0,
        StatusCode::NOT_FOUND
    );
    // its own project's URL with the other project's ids: nothing there
    let (status, _, body) = get(&h, &web, &list_uri("web")).await;
    assert_eq!((status, body), (StatusCode::OK, b"[]".to_vec()));
    let (status, _, _) = get(
        &h,
        &web,
        &format!("/api/0/projects/default/web/events/{EVENT}/attachments/{id}/?download=1"),
    )
    .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let reply = h
        .sql_as(&web, "SELECT count(*) AS n FROM attachments")
        .await;
    assert_eq!(reply.body, json!([{"n": 0}]));

    // another organization's token
    let acme = h.node.projects.create("ledger", "acme").await.unwrap();
    let other = h
        .node
        .tokens
        .create(crate::tenancy::NewToken {
            name: "acme".into(),
            org: "acme".into(),
            scopes: crate::tenancy::Scope::expand_all(&["event:read"]).unwrap(),
            projects: None,
            owner: None,
        })
        .await
        .unwrap()
        .0;
    assert_eq!(acme.org, "acme");
    let (status, _, _) = get(&h, &other, &download).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let reply = h
        .sql_as(&other, "SELECT count(*) AS n FROM attachments")
        .await;
    assert_eq!(reply.body, json!([{"n": 0}]));

    // no token, or one without event:read
    let (status, _, _) = get(&h, "nope", &download).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let writer = h.token(&["project:read"], Some(vec![1])).await;
    assert_eq!(get(&h, &writer, &download).await.0, StatusCode::FORBIDDEN);
    // ids that are no ids
    assert_eq!(
        get(
            &h,
            &own,
            &format!("{}x'%20OR%20'1'='1/?download=1", list_uri("shop"))
        )
        .await
        .0,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn client_reports_and_decisions_are_outcomes() {
    let h = harness_with(|c| {
        c.projects[0].rate_limit = Some(faultline_config::RateLimit {
            events: 1,
            window: std::time::Duration::from_secs(3600),
        });
    })
    .await;
    let report = json!({"timestamp": chrono::Utc::now().timestamp(),
        "discarded_events": [{"reason": "before_send", "category": "error", "quantity": 2}]});
    let body = format!(
        "{{}}\n{{\"type\":\"client_report\"}}\n{report}\n{{\"type\":\"profile\"}}\n{{\"version\":\"1\"}}\n\
         {{\"type\":\"log\"}}\nnot json\n"
    );
    let reply = h.envelope(body).await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    // a client report's rows are logged with the request: queryable at once
    assert_eq!(
        h.sql("SELECT project, category, outcome, reason, quantity FROM outcomes")
            .await,
        json!([{"project": "shop", "category": "error", "outcome": "client_discard",
                "reason": "before_send", "quantity": 2}])
    );
    assert_eq!(h.store(r#"{"message":"one"}"#).await.status, StatusCode::OK);
    let refused = h.store(r#"{"message":"two"}"#).await;
    assert_eq!(refused.status, StatusCode::TOO_MANY_REQUESTS);
    // faultline's own decisions are counted and logged when the server flushes
    h.node.flush_with_outcomes().await.unwrap();
    h.store(r#"{"message":"three"}"#).await;
    h.node.flush_with_outcomes().await.unwrap();
    let where_did_they_go = "SELECT category, outcome, reason, sum(quantity) AS n FROM outcomes \
         WHERE timestamp >= now() - INTERVAL '1 day' \
         GROUP BY category, outcome, reason ORDER BY category, outcome, reason";
    assert_eq!(
        h.sql(where_did_they_go).await,
        json!([
            {"category": "error", "outcome": "accepted", "reason": null, "n": 1},
            {"category": "error", "outcome": "client_discard", "reason": "before_send", "n": 2},
            {"category": "error", "outcome": "rate_limited", "reason": "project_quota", "n": 2},
            {"category": "log_item", "outcome": "invalid", "reason": "invalid_item", "n": 1},
            {"category": "profile", "outcome": "filtered", "reason": "item_type_not_stored", "n": 1},
        ])
    );
    // two flushes, two rows of the same hour for the rate limited events: sum() adds them
    assert_eq!(
        h.sql("SELECT count(*) AS n FROM outcomes WHERE outcome = 'rate_limited'")
            .await,
        json!([{"n": 2}])
    );
}
