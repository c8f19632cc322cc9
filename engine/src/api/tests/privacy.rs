//! Data scrubbing at ingest: secrets never reach the WAL or the tables, `_meta` says what was
//! removed, and the project API reads and changes the settings (Sentry's field names).

use axum::http::{Method, StatusCode};
use faultline_config::{Config, PrivacyConfig};
use serde_json::{Value, json};

use super::{harness, harness_with};

fn secret_event() -> String {
    json!({
        "platform": "python",
        "message": "card 4111 1111 1111 1111 declined",
        "request": {
            "url": "https://shop.example/pay?api_key=SECRETQUERY&page=2",
            "headers": {"Authorization": "Bearer SECRETBEARER", "User-Agent":
                "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36"},
            "cookies": "sessionid=SECRETCOOKIE; theme=dark"
        },
        "user": {"ip_address": "{{auto}}"},
        "extra": {"settings": {"password": "SECRETPASSWORD"}},
        "breadcrumbs": [{"message": "login", "data": {"token": "SECRETCRUMB"}}]
    })
    .to_string()
}

const SECRETS: [&str; 6] = [
    "4111 1111 1111 1111",
    "SECRETQUERY",
    "SECRETBEARER",
    "SECRETCOOKIE",
    "SECRETPASSWORD",
    "SECRETCRUMB",
];

fn wal_bytes(dir: &std::path::Path) -> Vec<u8> {
    let mut out = Vec::new();
    for entry in walkdir(dir) {
        out.extend(std::fs::read(entry).unwrap_or_default());
    }
    out
}

fn walkdir(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(walkdir(&path));
        } else {
            out.push(path);
        }
    }
    out
}

fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

#[tokio::test]
async fn secrets_are_scrubbed_before_the_wal_and_meta_says_what_was_removed() {
    let h = harness().await;
    let reply = h.store(secret_event()).await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    let on_disk = wal_bytes(h._dir.path());
    assert!(!on_disk.is_empty(), "the WAL is on disk");
    for secret in SECRETS {
        assert!(!contains(&on_disk, secret), "{secret} reached the disk");
    }
    let rows = h
        .sql("SELECT message, user_ip, tags['browser'] AS browser, event AS json FROM events")
        .await;
    let row = &rows[0];
    assert_eq!(row["message"], "card [creditcard] declined");
    assert_eq!(
        row["user_ip"], "10.1.2.3",
        "{{auto}} is the connection's address"
    );
    assert_eq!(row["browser"], "Chrome 120.0.0.0");
    let stored: Value = serde_json::from_str(row["json"].as_str().unwrap()).unwrap();
    for secret in SECRETS {
        assert!(!stored.to_string().contains(secret), "{secret} is stored");
    }
    let meta = &stored["_meta"];
    assert_eq!(
        meta["extra"]["settings"]["password"][""],
        json!({"rem": [["@password:filter", "s", 0, 10]], "len": 14})
    );
    assert_eq!(
        meta["request"]["headers"]["Authorization"][""]["rem"],
        json!([["@password:filter", "s", 0, 10]])
    );
    assert_eq!(
        stored["request"]["cookies"],
        "sessionid=[Filtered]; theme=dark"
    );
}

#[tokio::test]
async fn outcomes_count_the_items_each_rule_scrubbed() {
    let h = harness().await;
    assert_eq!(h.store(secret_event()).await.status, StatusCode::OK);
    // a clean event: accepted, not scrubbed
    let clean = json!({"message": "all good"}).to_string();
    assert_eq!(h.store(clean).await.status, StatusCode::OK);
    let logs = json!({"items": [
        {"timestamp": 1796464800, "level": "info", "body": "paying",
         "attributes": {"db_password": {"type": "string", "value": "SECRETLOG"}}},
        {"timestamp": 1796464801, "level": "info", "body": "paid",
         "attributes": {"auth_token": {"type": "string", "value": "SECRETLOG2"}}},
        {"timestamp": 1796464802, "level": "info", "body": "receipt sent"}]});
    let body = format!(
        "{{}}\n{{\"type\":\"log\",\"item_count\":3,\"content_type\":\"application/vnd.sentry.items.log+json\"}}\n{logs}\n"
    );
    assert_eq!(h.envelope(body).await.status, StatusCode::OK);
    assert_eq!(
        h.where_items_went().await,
        json!([
            {"category": "error", "outcome": "accepted", "reason": null, "n": 2},
            // one event, counted once with the rules that changed something in it: the card
            // in the message is replaced, the password, token and cookie filtered
            {"category": "error", "outcome": "scrubbed",
             "reason": "@creditcard:replace, @password:filter", "n": 1},
            // logs count per record, as Relay and the SDKs' client reports count them: three
            // stored, two of them with a secret removed by the same rule
            {"category": "log_item", "outcome": "accepted", "reason": null, "n": 3},
            {"category": "log_item", "outcome": "scrubbed", "reason": "@password:filter", "n": 2},
        ])
    );
}

#[tokio::test]
async fn ip_addresses_are_removed_when_the_config_says_so() {
    let h = harness_with(|config: &mut Config| {
        config.projects[0].privacy = Some(PrivacyConfig {
            scrub_ip_addresses: true,
            sensitive_fields: vec!["theme".into()],
            ..PrivacyConfig::default()
        });
    })
    .await;
    assert_eq!(h.store(secret_event()).await.status, StatusCode::OK);
    let rows = h.sql("SELECT user_ip, event AS json FROM events").await;
    assert_eq!(rows[0]["user_ip"], Value::Null);
    let stored: Value = serde_json::from_str(rows[0]["json"].as_str().unwrap()).unwrap();
    assert_eq!(
        stored["request"]["cookies"],
        "sessionid=[Filtered]; theme=[Filtered]"
    );
    assert_eq!(
        stored["_meta"]["user"]["ip_address"][""]["rem"],
        json!([["@anything:remove", "x"]])
    );
}

async fn project_call(
    h: &super::Harness,
    method: Method,
    token: &str,
    body: Option<Value>,
) -> super::Reply {
    let request = axum::http::Request::builder()
        .method(method)
        .uri("/api/0/projects/default/shop/")
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", "application/json");
    let body = body.map_or_else(axum::body::Body::empty, |b| {
        axum::body::Body::from(b.to_string())
    });
    h.send(request.body(body).unwrap()).await
}

#[tokio::test]
async fn the_project_api_reads_and_changes_the_scrubbing_settings() {
    let h = harness().await;
    let admin = h.token(&["projects:admin"], None).await;
    let reader = h.token(&["project:read"], None).await;
    let reply = project_call(&h, Method::GET, &reader, None).await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    assert_eq!(reply.body["dataScrubber"], true);
    assert_eq!(reply.body["dataScrubberDefaults"], true);
    assert_eq!(reply.body["scrubIPAddresses"], false);
    assert_eq!(reply.body["sensitiveFields"], json!([]));
    assert_eq!(reply.body["relayPiiConfig"], Value::Null);

    // changing them needs project:write
    let change = json!({"dataScrubberDefaults": false, "safeFields": ["password"]});
    let reply = project_call(&h, Method::PUT, &reader, Some(change.clone())).await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN, "{:?}", reply.body);

    // advanced rules that do not compile: 400 naming the rule
    let bad = json!({"relayPiiConfig": "{\"applications\": {\"$string\": [\"@nope\"]}}"});
    let reply = project_call(&h, Method::PUT, &admin, Some(bad)).await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{:?}", reply.body);
    assert!(
        reply.body["detail"].as_str().unwrap().contains("\"@nope\""),
        "{:?}",
        reply.body
    );

    let rules = json!({"rules": {"orders": {"type": "pattern", "pattern": "ORD-\\d+",
        "redaction": {"method": "replace", "text": "[order]"}}},
        "applications": {"$string": ["orders"]}})
    .to_string();
    let reply = project_call(
        &h,
        Method::PUT,
        &admin,
        Some(json!({"dataScrubber": false, "relayPiiConfig": rules})),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    assert_eq!(reply.body["dataScrubber"], false);
    assert_eq!(reply.body["relayPiiConfig"], rules);

    let event = json!({"message": "order ORD-77 failed", "extra": {"password": "kept"}});
    assert_eq!(h.store(event.to_string()).await.status, StatusCode::OK);
    let rows = h.sql("SELECT message, event AS json FROM events").await;
    assert_eq!(rows[0]["message"], "order [order] failed");
    assert!(
        rows[0]["json"]
            .as_str()
            .unwrap()
            .contains("\"password\":\"kept\"")
    );

    // a node that starts now reads the settings from the store
    h.node.projects.reload_now().await.unwrap();
    let reply = project_call(&h, Method::GET, &reader, None).await;
    assert_eq!(reply.body["dataScrubber"], false);
    // clearing the advanced rules
    let reply = project_call(
        &h,
        Method::PUT,
        &admin,
        Some(json!({"relayPiiConfig": null, "dataScrubber": true})),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    assert_eq!(reply.body["relayPiiConfig"], Value::Null);
}

#[tokio::test]
async fn settings_from_the_config_cannot_be_changed_through_the_api() {
    let h = harness_with(|config: &mut Config| {
        config.projects[0].privacy = Some(PrivacyConfig::default());
    })
    .await;
    let admin = h.token(&["projects:admin"], None).await;
    let reply = project_call(
        &h,
        Method::PUT,
        &admin,
        Some(json!({"dataScrubber": false})),
    )
    .await;
    assert_eq!(reply.status, StatusCode::CONFLICT, "{:?}", reply.body);
    assert!(
        reply.body["detail"]
            .as_str()
            .unwrap()
            .contains("declared in the config file"),
        "{:?}",
        reply.body
    );
}
