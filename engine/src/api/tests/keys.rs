//! DSN keys over HTTP (Sentry's `/api/0/projects/{org}/{project}/keys/` shape) and what an SDK
//! sees at ingest: a rotated key keeps working until disabled, a disabled or deleted key gets
//! 401, a key's own limit answers 429 with the `key` scope.

use axum::body::Body;
use axum::http::{Method, StatusCode};
use serde_json::{Value, json};

use super::{Harness, KEY, harness, post};

const KEYS: &str = "/api/0/projects/default/shop/keys/";

impl Harness {
    /// A store request for project 1 sent with `key`.
    async fn store_with(&self, key: &str, message: &str) -> super::Reply {
        self.send(
            post("/api/1/store/")
                .header("x-sentry-auth", format!("Sentry sentry_key={key}"))
                .body(Body::from(format!(r#"{{"message":"{message}"}}"#)))
                .unwrap(),
        )
        .await
    }
}

fn public(reply: &super::Reply) -> String {
    reply.body["public"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn keys_are_created_rotated_disabled_and_deleted_over_the_api() {
    let h = harness().await;
    let admin = h.token(&["projects:admin"], None).await;
    let reader = h.token(&["events:read"], None).await;

    let reply = h.call_as(Method::GET, KEYS, &reader, None).await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN, "{:?}", reply.body);
    let reply = h.call_as(Method::GET, KEYS, &admin, None).await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    assert_eq!(reply.body[0]["public"], KEY);
    assert_eq!(reply.body[0]["isActive"], true);
    assert_eq!(reply.body[0]["source"], "config");

    let created = h
        .call_as(Method::POST, KEYS, &admin, Some(json!({"name": "backend"})))
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{:?}", created.body);
    let first = public(&created);
    assert_eq!(
        created.body["dsn"]["public"],
        format!("http://{first}@127.0.0.1:8000/1")
    );
    assert_eq!(h.store_with(&first, "one").await.status, StatusCode::OK);

    let rotated = h
        .call_as(
            Method::POST,
            &format!("{KEYS}{first}/rotate/"),
            &admin,
            None,
        )
        .await;
    assert_eq!(rotated.status, StatusCode::CREATED, "{:?}", rotated.body);
    let second = public(&rotated);
    assert_eq!(rotated.body["name"], "backend");
    // Both work until the old one is disabled.
    assert_eq!(h.store_with(&first, "two").await.status, StatusCode::OK);
    assert_eq!(h.store_with(&second, "three").await.status, StatusCode::OK);

    let disabled = h
        .call_as(
            Method::PUT,
            &format!("{KEYS}{first}/"),
            &admin,
            Some(json!({"isActive": false})),
        )
        .await;
    assert_eq!(disabled.status, StatusCode::OK, "{:?}", disabled.body);
    assert_eq!(disabled.body["isActive"], false);
    let refused = h.store_with(&first, "four").await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        refused.body["detail"],
        "the DSN key \"backend\" of project 1 is disabled: configure the SDK with an active key of the project"
    );
    assert_eq!(h.store_with(&second, "five").await.status, StatusCode::OK);

    // A key from the config file is changed only there.
    let reply = h
        .call_as(
            Method::PUT,
            &format!("{KEYS}{KEY}/"),
            &admin,
            Some(json!({"isActive": false})),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CONFLICT, "{:?}", reply.body);
    assert!(
        reply.body["detail"]
            .as_str()
            .unwrap()
            .contains("config file"),
        "{:?}",
        reply.body
    );

    let gone = h
        .call_as(Method::DELETE, &format!("{KEYS}{first}/"), &admin, None)
        .await;
    assert_eq!(gone.status, StatusCode::NO_CONTENT, "{:?}", gone.body);
    let refused = h.store_with(&first, "six").await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED);
    assert_eq!(
        refused.body["detail"],
        "the DSN key is not valid for project 1"
    );
    let reply = h
        .call_as(Method::GET, &format!("{KEYS}{first}/"), &admin, None)
        .await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);

    let listed = h.call_as(Method::GET, KEYS, &admin, None).await;
    let keys: Vec<_> = listed
        .body
        .as_array()
        .unwrap()
        .iter()
        .map(|k| k["public"].clone())
        .collect();
    assert_eq!(keys, vec![json!(KEY), json!(second)]);
    assert_eq!(
        h.sql("SELECT count(*) AS n FROM events").await[0]["n"],
        4,
        "one, two, three, five"
    );
}

#[tokio::test]
async fn a_key_over_its_own_limit_gets_429_with_the_key_scope() {
    let h = harness().await;
    let admin = h.token(&["projects:admin"], None).await;
    let reply = h
        .call_as(
            Method::POST,
            KEYS,
            &admin,
            Some(json!({"name": "batch", "rateLimit": {"count": 2, "window": 60}})),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CREATED, "{:?}", reply.body);
    assert_eq!(reply.body["rateLimit"], json!({"count": 2, "window": 60}));
    let limited = public(&reply);
    let mut statuses = Vec::new();
    for i in 0..3 {
        statuses.push(h.store_with(&limited, &format!("n{i}")).await);
    }
    assert_eq!(
        statuses.iter().map(|r| r.status).collect::<Vec<_>>(),
        [
            StatusCode::OK,
            StatusCode::OK,
            StatusCode::TOO_MANY_REQUESTS
        ]
    );
    let last = &statuses[2];
    let limits = last.headers["x-sentry-rate-limits"].to_str().unwrap();
    assert!(limits.ends_with(":error:key"), "{limits}");
    assert!(last.headers.contains_key("retry-after"));
    assert_eq!(
        last.body["detail"],
        "the DSN key of project 1 is over its rate limit of 2 events per 60s"
    );
    // The project's other key has no limit of its own.
    assert_eq!(h.store_with(KEY, "other key").await.status, StatusCode::OK);

    // The limit is lifted with `rateLimit: null`.
    let reply = h
        .call_as(
            Method::PUT,
            &format!("{KEYS}{limited}/"),
            &admin,
            Some(json!({"rateLimit": null})),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    assert_eq!(reply.body["rateLimit"], Value::Null);
    assert_eq!(h.store_with(&limited, "again").await.status, StatusCode::OK);

    let reply = h
        .call_as(
            Method::POST,
            KEYS,
            &admin,
            Some(json!({"rateLimit": {"count": 0, "window": 60}})),
        )
        .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert!(
        reply.body["detail"].as_str().unwrap().contains("rateLimit"),
        "{:?}",
        reply.body
    );
}
