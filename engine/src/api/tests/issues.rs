//! Issues as a product over HTTP: the rollup-backed `issues` table and state changes
//! (resolve, ignore until a count or a date, reopen, regressions).

use axum::body::Body;
use axum::http::StatusCode;
use serde_json::{Value, json};

use super::{Harness, harness, post};

impl Harness {
    async fn issue_action(
        &self,
        token: &str,
        issue_id: &Value,
        action: &str,
        body: &str,
    ) -> super::Reply {
        self.send(
            post(&format!("/api/issues/{issue_id}/{action}"))
                .header("authorization", format!("Bearer {token}"))
                .body(Body::from(body.to_owned()))
                .unwrap(),
        )
        .await
    }

    async fn issue_row(&self, token: &str) -> Value {
        let reply = self
            .sql_as(
                token,
                "SELECT status, regressed, event_count, events_24h, events_14d, users, \
                 first_release, last_release FROM issues",
            )
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
        reply.body[0].clone()
    }

    async fn crash(&self, user: &str, release: &str) {
        let body = format!(
            r#"{{"message":"payment failed","user":{{"id":"{user}"}},"release":"{release}"}}"#
        );
        assert_eq!(self.store(body).await.status, StatusCode::OK);
    }
}

#[tokio::test]
async fn resolve_ignore_reopen_and_regressions() {
    let h = harness().await;
    let admin = h.token(&["events:read", "projects:admin"], None).await;
    h.crash("ann", "1.0").await;
    let issue = h.sql_as(&admin, "SELECT issue_id FROM issues").await.body[0]["issue_id"].clone();

    let reply = h.issue_action(&admin, &issue, "resolve", "").await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    assert_eq!(reply.body["status"], "resolved");
    assert_eq!(reply.body["regressed"], false);
    assert_eq!(reply.body["issue_id"], issue);

    // Received times have millisecond resolution: make the next event strictly later.
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    h.crash("bob", "1.1").await;
    assert_eq!(
        h.issue_row(&admin).await,
        json!({"status": "unresolved", "regressed": true, "event_count": 2, "events_24h": 2,
               "events_14d": 2, "users": 2, "first_release": "1.0", "last_release": "1.1"})
    );

    let reply = h
        .issue_action(&admin, &issue, "ignore", r#"{"count": 2}"#)
        .await;
    assert_eq!(reply.body["status"], "ignored");
    assert_eq!(reply.body["ignore_until_count"], 2);
    h.crash("bob", "1.1").await;
    assert_eq!(h.issue_row(&admin).await["status"], "ignored");
    h.crash("cid", "1.2").await;
    let row = h.issue_row(&admin).await;
    assert_eq!(
        (&row["status"], &row["regressed"]),
        (&json!("unresolved"), &json!(false))
    );

    let reply = h
        .issue_action(
            &admin,
            &issue,
            "ignore",
            r#"{"until": "2000-01-01T00:00:00Z"}"#,
        )
        .await;
    assert_eq!(
        reply.body["status"], "unresolved",
        "an ignore that already expired"
    );
    let reply = h.issue_action(&admin, &issue, "ignore", "").await;
    assert_eq!(reply.body["status"], "ignored");
    let reply = h.issue_action(&admin, &issue, "reopen", "").await;
    assert_eq!(reply.body["status"], "unresolved");

    let both = h
        .issue_action(
            &admin,
            &issue,
            "ignore",
            r#"{"count": 1, "until": "2030-01-01T00:00:00Z"}"#,
        )
        .await;
    assert_eq!(both.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        both.body["detail"],
        "ignore takes at most one of \"until\" (a date) and \"count\" (a number of events)"
    );
    let missing = h.issue_action(&admin, &json!(42), "resolve", "").await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    assert_eq!(
        missing.body["detail"],
        "issue 42 does not exist or is not in a project the token may read"
    );
    let other_project = h.token(&["projects:admin"], Some(vec![2])).await;
    let reply = h.issue_action(&other_project, &issue, "resolve", "").await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    let reader = h.token(&["events:read"], None).await;
    let reply = h.issue_action(&reader, &issue, "resolve", "").await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
    assert_eq!(
        reply.body["detail"],
        "the API token lacks the scope event:write"
    );
}

#[tokio::test]
async fn issues_read_rollups_not_event_files() {
    let h = harness().await;
    let token = h.token(&["events:read"], None).await;
    let old = (chrono::Utc::now() - chrono::Duration::days(20)).to_rfc3339();
    for message in ["a", "a", "b"] {
        h.store(format!(r#"{{"message":"{message}"}}"#)).await;
    }
    h.store(format!(r#"{{"message":"a","timestamp":"{old}"}}"#))
        .await;
    assert_eq!(h.node.flush().await.unwrap(), 4);
    let manifest = h.node.buffer.manifest();
    assert!(!manifest.rollups.is_empty());
    assert!(
        manifest
            .rollups
            .iter()
            .all(|f| f.path.starts_with("rollups/proj=1/date="))
    );

    // Remove every event file: `issues` must not notice, `events` must.
    for file in &manifest.files {
        h.node
            .store
            .delete(&object_store::path::Path::from(file.path.as_str()))
            .await
            .unwrap();
    }
    h.store(r#"{"message":"b"}"#).await;
    let issues = "SELECT title, event_count, events_24h, events_14d FROM issues ORDER BY title";
    let reply = h.sql_as(&token, issues).await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    assert_eq!(
        reply.body,
        json!([
            {"title": "a", "event_count": 3, "events_24h": 2, "events_14d": 2},
            {"title": "b", "event_count": 2, "events_24h": 2, "events_14d": 2},
        ])
    );
    let events = h
        .sql_as(&token, "SELECT count(*) FROM events WHERE message = 'a'")
        .await;
    assert_ne!(events.status, StatusCode::OK, "{:?}", events.body);
}
