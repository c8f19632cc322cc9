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

/// Merging adds one issue's events, users and times to another's; the merged one reads as
/// `merged` and takes no other change until it is unmerged, which is exact (events are never
/// rewritten). Every merge and unmerge is in the audit log.
#[tokio::test]
async fn merge_and_unmerge_issues() {
    let h = harness().await;
    let admin = h.token(&["events:read", "projects:admin"], None).await;
    h.crash("ann", "1.0").await;
    h.crash("bob", "1.0").await;
    let other = r#"{"message":"card declined","user":{"id":"cid"},"release":"1.1"}"#;
    assert_eq!(h.store(other).await.status, StatusCode::OK);
    let ids = h
        .sql_as(
            &admin,
            "SELECT issue_id, title FROM issues ORDER BY event_count DESC",
        )
        .await
        .body;
    let (payment, declined) = (ids[0]["issue_id"].clone(), ids[1]["issue_id"].clone());
    assert_eq!(ids[0]["title"], "payment failed");

    let reply = h
        .issue_action(
            &admin,
            &declined,
            "merge",
            &format!(r#"{{"into": {payment}}}"#),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    assert_eq!(reply.body["status"], "merged");
    assert_eq!(reply.body["merged_into"], payment);
    let rows = h
        .sql_as(
            &admin,
            "SELECT issue_id, title, status, merged_into, event_count, users, last_release \
             FROM issues ORDER BY event_count DESC",
        )
        .await
        .body;
    assert_eq!(
        rows,
        json!([
            {"issue_id": payment, "title": "payment failed", "status": "unresolved",
             "merged_into": null, "event_count": 3, "users": 3, "last_release": "1.1"},
            {"issue_id": declined, "title": "card declined", "status": "merged",
             "merged_into": payment, "event_count": 1, "users": 1, "last_release": "1.1"},
        ])
    );

    // Refusals name the issue and the way out.
    let reply = h.issue_action(&admin, &declined, "resolve", "").await;
    assert_eq!(reply.status, StatusCode::CONFLICT);
    assert_eq!(
        reply.body["detail"],
        format!(
            "issue {declined} is merged into issue {payment}: change {payment}, or unmerge {declined} first"
        )
    );
    let reply = h
        .issue_action(
            &admin,
            &payment,
            "merge",
            &format!(r#"{{"into": {declined}}}"#),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CONFLICT, "{:?}", reply.body);
    let reply = h
        .issue_action(
            &admin,
            &payment,
            "merge",
            &format!(r#"{{"into": {payment}}}"#),
        )
        .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_eq!(
        reply.body["detail"],
        format!("issue {payment} cannot be merged into itself")
    );
    let reply = h
        .issue_action(&admin, &payment, "merge", r#"{"into": 42}"#)
        .await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND);
    let reply = h.issue_action(&admin, &payment, "merge", "{}").await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert!(
        reply.body["detail"]
            .as_str()
            .unwrap()
            .contains(r#"expected {"into": <issue id>}"#),
        "{:?}",
        reply.body
    );
    let reply = h.issue_action(&admin, &payment, "unmerge", "").await;
    assert_eq!(reply.status, StatusCode::CONFLICT);
    assert_eq!(
        reply.body["detail"],
        format!("issue {payment} is not merged into another issue")
    );

    // A new event of the merged issue counts for the one it is merged into.
    assert_eq!(h.store(other).await.status, StatusCode::OK);
    let row = h
        .sql_as(
            &admin,
            &format!("SELECT event_count FROM issues WHERE issue_id = {payment}"),
        )
        .await
        .body;
    assert_eq!(row[0]["event_count"], 4);

    let reply = h.issue_action(&admin, &declined, "unmerge", "").await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    assert_eq!(reply.body["status"], "unresolved");
    assert_eq!(reply.body["merged_into"], Value::Null);
    let rows = h
        .sql_as(
            &admin,
            "SELECT status, event_count FROM issues ORDER BY issue_id",
        )
        .await
        .body;
    let mut counts: Vec<i64> = rows
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["event_count"].as_i64().unwrap())
        .collect();
    counts.sort_unstable();
    assert_eq!(counts, [2, 2]);
    let audit = h
        .sql("SELECT event, data FROM audit_log WHERE event LIKE 'issue.%merge' ORDER BY ts")
        .await;
    assert_eq!(audit[0]["event"], "issue.merge");
    assert_eq!(
        serde_json::from_str::<Value>(audit[0]["data"].as_str().unwrap()).unwrap(),
        json!({"into": payment})
    );
    assert_eq!(audit[1]["event"], "issue.unmerge");
}

/// Deleting an issue takes it (and the issues merged into it) out of every list at once; only
/// `event:admin` may; the audit log says who; its events are erased once the deletion settles,
/// and an event after it starts the issue afresh.
#[tokio::test]
async fn delete_an_issue_with_its_events() {
    let h = harness().await;
    let admin = h.token(&["events:read", "projects:admin"], None).await;
    let reader = h.token(&["events:read"], None).await;
    h.crash("ann", "1.0").await;
    h.crash("bob", "1.0").await;
    let other = r#"{"message":"card declined","user":{"id":"cid"},"release":"1.1"}"#;
    assert_eq!(h.store(other).await.status, StatusCode::OK);
    let kept = r#"{"message":"stock low"}"#;
    assert_eq!(h.store(kept).await.status, StatusCode::OK);
    let id_of = |title: &str| {
        let h = &h;
        let admin = &admin;
        let sql = format!("SELECT issue_id FROM issues WHERE title = '{title}'");
        async move { h.sql_as(admin, &sql).await.body[0]["issue_id"].clone() }
    };
    let (payment, declined) = (id_of("payment failed").await, id_of("card declined").await);
    let reply = h
        .issue_action(
            &admin,
            &declined,
            "merge",
            &format!(r#"{{"into": {payment}}}"#),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    assert_eq!(h.node.flush().await.unwrap(), 4);

    let delete = |token: &str, id: &Value| {
        axum::http::Request::builder()
            .method("DELETE")
            .uri(format!("/api/issues/{id}"))
            .header("authorization", format!("Bearer {token}"))
            .body(Body::empty())
            .unwrap()
    };
    let reply = h.send(delete(&reader, &payment)).await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN, "{:?}", reply.body);
    // a merged issue goes with the one it is merged into, not on its own
    let reply = h.send(delete(&admin, &declined)).await;
    assert_eq!(reply.status, StatusCode::CONFLICT, "{:?}", reply.body);

    let reply = h.send(delete(&admin, &payment)).await;
    assert_eq!(reply.status, StatusCode::ACCEPTED, "{:?}", reply.body);
    assert_eq!(reply.body["deleted"], json!([payment, declined]));
    let titles = h.sql_as(&admin, "SELECT title FROM issues").await.body;
    assert_eq!(titles, json!([{"title": "stock low"}]));
    let reply = h.send(delete(&admin, &payment)).await;
    assert_eq!(reply.status, StatusCode::NOT_FOUND, "{:?}", reply.body);
    let audit = h
        .sql("SELECT event, data FROM audit_log WHERE event = 'issue.delete'")
        .await;
    assert_eq!(
        serde_json::from_str::<Value>(audit[0]["data"].as_str().unwrap()).unwrap(),
        json!({"issues": [payment, declined]})
    );

    let maintenance = crate::maintenance::Maintenance::for_node(&h.node);
    let later = chrono::Utc::now() + chrono::Duration::hours(1);
    let report = maintenance.erase_deleted_as_of(later).await.unwrap();
    assert_eq!((report.erased, report.rows), (1, 3));
    let left = h
        .sql_as(&admin, "SELECT message FROM events ORDER BY message")
        .await
        .body;
    assert_eq!(left, json!([{"message": "stock low"}]));

    // the same error again: a fresh issue with only the new event
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    h.crash("cy", "1.2").await;
    let row = h
        .sql_as(
            &admin,
            &format!("SELECT status, event_count, users FROM issues WHERE issue_id = {payment}"),
        )
        .await
        .body;
    assert_eq!(
        row,
        json!([{"status": "unresolved", "event_count": 1, "users": 1}])
    );
}
