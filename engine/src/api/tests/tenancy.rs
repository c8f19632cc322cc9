//! Tenancy over HTTP: tokens are managed through `/api/tokens`, and a token limited to one
//! project tries every way out of it. Each attempt asserts exactly what the caller sees.

use axum::body::Body;
use axum::http::{Method, Request, StatusCode};
use serde_json::{Value, json};

use super::{Harness, KEY, harness_with, post};
use crate::tenancy::{NewToken, Scope};

const WEB_KEY: &str = "fedcba9876543210fedcba9876543210";

/// `shop` (id 1) and `web` (id 2) of the default organization from the config, `ledger` (id 3)
/// of organization `acme` from the store; one event each, plus an older one in `web`.
async fn tenants(edit: impl FnOnce(&mut faultline_config::Config)) -> (Harness, String) {
    let h = harness_with(|config| {
        config.projects.push(faultline_config::ProjectConfig {
            id: 2,
            name: "web".into(),
            keys: vec![WEB_KEY.into()],
            quotas: Vec::new(),
            rate_limit: None,
            retention_days: None,
            grouping_enhancements: None,
            fingerprinting_rules: None,
            privacy: None,
        });
        edit(config);
    })
    .await;
    let ledger = h.node.projects.create("ledger", "acme").await.unwrap();
    assert_eq!(ledger.id, 3);
    for (id, key, message) in [
        (1, KEY, "shop broke"),
        (2, WEB_KEY, "web secret one"),
        (2, WEB_KEY, "web secret two"),
        (3, ledger.keys[0].public.as_str(), "acme secret"),
    ] {
        let reply = h
            .send(
                post(&format!("/api/{id}/store/"))
                    .header("x-sentry-auth", format!("Sentry sentry_key={key}"))
                    .body(Body::from(format!(r#"{{"message":"{message}"}}"#)))
                    .unwrap(),
            )
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
        let reply = h
            .send(
                post(&format!("/api/{id}/envelope/"))
                    .header("x-sentry-auth", format!("Sentry sentry_key={key}"))
                    .body(Body::from(items_envelope(message)))
                    .unwrap(),
            )
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    }
    // the monitors of every project's check-ins (the checker's query fails under the tiny
    // memory limit one test sets; that test reads no monitors)
    if let Err(err) = crate::monitors::check(&h.node, chrono::Utc::now()).await {
        eprintln!("no monitors: {err}");
    }
    let token = h.token(&["events:read"], Some(vec![1])).await;
    (h, token)
}

/// An envelope with a row for every item table, each naming `message`.
fn items_envelope(message: &str) -> String {
    let now = chrono::Utc::now().timestamp() as f64;
    let items = [
        (
            "transaction",
            json!({"transaction": message, "start_timestamp": now - 1.0, "timestamp": now,
                   "contexts": {"trace": {"trace_id": "0af7651916cd43dd8448eb211c80319c",
                                          "span_id": "b7ad6b7169203331", "op": "task"}}}),
        ),
        (
            "span",
            json!({"items": [{"trace_id": "0af7651916cd43dd8448eb211c80319c", "span_id": "c7ad6b7169203331",
                              "name": message, "start_timestamp": now - 1.0, "end_timestamp": now}]}),
        ),
        (
            "log",
            json!({"items": [{"timestamp": now, "level": "info", "body": message}]}),
        ),
        (
            "feedback",
            json!({"contexts": {"feedback": {"message": message}}}),
        ),
        (
            "client_report",
            json!({"discarded_events": [{"reason": message, "category": "error", "quantity": 1}]}),
        ),
        (
            "session",
            json!({"sid": uuid::Uuid::new_v4().to_string(), "did": message, "started": now,
                   "status": "crashed", "attrs": {"release": message}}),
        ),
        (
            "check_in",
            json!({"check_in_id": uuid::Uuid::new_v4().to_string(), "monitor_slug": message,
                   "status": "ok", "release": message,
                   "monitor_config": {"schedule": {"type": "crontab", "value": "@hourly"}}}),
        ),
    ];
    let mut envelope = "{}\n".to_owned();
    for (ty, payload) in items {
        envelope.push_str(&format!("{{\"type\":\"{ty}\"}}\n{payload}\n"));
    }
    envelope
}

enum Expect {
    Rows(Value),
    Refused(StatusCode, &'static str),
}

#[tokio::test]
async fn a_token_limited_to_one_project_cannot_escape_it() {
    let (h, token) = tenants(|c| c.query.max_rows = 20).await;
    for _ in 0..3 {
        assert_eq!(
            h.store(r#"{"message":"shop broke"}"#).await.status,
            StatusCode::OK
        );
    }
    use Expect::{Refused, Rows};
    let bad = StatusCode::BAD_REQUEST;
    let attempts: Vec<(&str, Expect)> = vec![
        (
            "SELECT DISTINCT project, title FROM events",
            Rows(json!([{"project": "shop", "title": "shop broke"}])),
        ),
        (
            "SELECT count(*) AS n FROM events WHERE project_id = 2 OR project = 'ledger'",
            Rows(json!([{"n": 0}])),
        ),
        (
            "SELECT project FROM issues ORDER BY 1",
            Rows(json!([{"project": "shop"}])),
        ),
        (
            "SELECT title FROM events UNION SELECT title FROM issues WHERE project_id <> 1",
            Rows(json!([{"title": "shop broke"}])),
        ),
        (
            "SELECT count(*) AS n FROM events a JOIN events b ON a.project_id <> b.project_id",
            Rows(json!([{"n": 0}])),
        ),
        (
            "SELECT (SELECT count(*) FROM events WHERE project_id = 3) AS n",
            Rows(json!([{"n": 0}])),
        ),
        (
            "SELECT count(*) AS n FROM events WHERE issue_id IN (SELECT issue_id FROM issues WHERE project <> 'shop')",
            Rows(json!([{"n": 0}])),
        ),
        (
            "WITH other AS (SELECT * FROM events WHERE project_id = 2) SELECT count(*) AS n FROM other",
            Rows(json!([{"n": 0}])),
        ),
        (
            "SELECT transaction AS t FROM transactions UNION ALL SELECT description FROM spans \
             UNION ALL SELECT body FROM logs UNION ALL SELECT message FROM feedback ORDER BY 1",
            Rows(
                json!([{"t": "shop broke"}, {"t": "shop broke"}, {"t": "shop broke"},
                        {"t": "shop broke"}, {"t": "shop broke"}]),
            ),
        ),
        (
            "SELECT count(*) AS n FROM spans s JOIN transactions t ON s.project_id <> t.project_id \
             WHERE s.project_id = 2 OR t.project = 'ledger'",
            Rows(json!([{"n": 0}])),
        ),
        (
            "SELECT (SELECT count(*) FROM logs WHERE project_id = 3) + \
             (SELECT count(*) FROM feedback WHERE project_id <> 1) AS n",
            Rows(json!([{"n": 0}])),
        ),
        (
            "SELECT reason FROM outcomes UNION ALL SELECT reason FROM outcomes \
             WHERE project_id <> 1 OR project = 'ledger'",
            Rows(json!([{"reason": "shop broke"}])),
        ),
        (
            "SELECT release AS r FROM sessions UNION ALL SELECT release FROM check_ins \
             UNION ALL SELECT slug FROM monitors UNION ALL SELECT release FROM release_health \
             UNION ALL SELECT release FROM release_health_hourly ORDER BY 1",
            Rows(
                json!([{"r": "shop broke"}, {"r": "shop broke"}, {"r": "shop broke"},
                        {"r": "shop broke"}, {"r": "shop-broke"}]),
            ),
        ),
        (
            "SELECT (SELECT count(*) FROM sessions WHERE project_id <> 1) + \
             (SELECT count(*) FROM check_ins WHERE project = 'ledger') + \
             (SELECT count(*) FROM monitors WHERE project_id = 2) + \
             (SELECT count(*) FROM release_health WHERE project_id = 3) AS n",
            Rows(json!([{"n": 0}])),
        ),
        (
            "SELECT table_name FROM information_schema.tables ORDER BY 1",
            Rows(json!([
                {"table_name": "alert_deliveries"},
                {"table_name": "attachments"},
                {"table_name": "check_ins"},
                {"table_name": "events"},
                {"table_name": "feedback"},
                {"table_name": "issue_hours"},
                {"table_name": "issue_tags"},
                {"table_name": "issues"},
                {"table_name": "logs"},
                {"table_name": "monitors"},
                {"table_name": "outcomes"},
                {"table_name": "release_health"},
                {"table_name": "release_health_hourly"},
                {"table_name": "sessions"},
                {"table_name": "spans"},
                {"table_name": "transactions"},
            ])),
        ),
        (
            "SELECT DISTINCT table_name FROM information_schema.columns ORDER BY 1",
            Rows(json!([
                {"table_name": "alert_deliveries"},
                {"table_name": "attachments"},
                {"table_name": "check_ins"},
                {"table_name": "events"},
                {"table_name": "feedback"},
                {"table_name": "issue_hours"},
                {"table_name": "issue_tags"},
                {"table_name": "issues"},
                {"table_name": "logs"},
                {"table_name": "monitors"},
                {"table_name": "outcomes"},
                {"table_name": "release_health"},
                {"table_name": "release_health_hourly"},
                {"table_name": "sessions"},
                {"table_name": "spans"},
                {"table_name": "transactions"},
            ])),
        ),
        (
            "SELECT DISTINCT project FROM issue_hours UNION SELECT project FROM issue_hours \
             WHERE project_id = 2 ORDER BY 1",
            Rows(json!([{"project": "shop"}])),
        ),
        (
            "SELECT * FROM information_schema.df_settings",
            Refused(
                bad,
                "table 'faultline.information_schema.df_settings' not found",
            ),
        ),
        (
            "SELECT * FROM faultline.public.events_project_2",
            Refused(bad, "table 'faultline.public.events_project_2' not found"),
        ),
        (
            "SELECT * FROM '/etc/passwd'",
            Refused(bad, "table 'faultline.public./etc/passwd' not found"),
        ),
        (
            "SELECT * FROM read_parquet('/etc/hosts')",
            Refused(bad, "table function 'read_parquet' not found"),
        ),
        (
            "SELECT * FROM read_csv('https://example.com/x.csv')",
            Refused(bad, "table function 'read_csv' not found"),
        ),
        (
            "SELECT * FROM generate_series(1, 1000000000)",
            Refused(bad, "table function 'generate_series' not found"),
        ),
        (
            "CREATE EXTERNAL TABLE leak STORED AS PARQUET LOCATION '/'",
            Refused(bad, "DDL not supported: CreateExternalTable"),
        ),
        (
            "CREATE VIEW v AS SELECT * FROM events",
            Refused(bad, "DDL not supported: CreateView"),
        ),
        (
            "DROP TABLE events",
            Refused(bad, "DDL not supported: DropTable"),
        ),
        (
            "INSERT INTO events (project_id) VALUES (2)",
            Refused(bad, "DML not supported: Insert Into"),
        ),
        (
            "DELETE FROM events",
            Refused(bad, "DML not supported: Delete"),
        ),
        (
            "COPY events TO '/tmp/leak.parquet'",
            Refused(bad, "DML not supported: COPY"),
        ),
        (
            "SET datafusion.catalog.information_schema = true",
            Refused(bad, "Statement not supported: SetVariable"),
        ),
        (
            "SELECT cardinality(range(1, 10000000000)) AS n",
            Refused(bad, "Invalid function 'range'.\nDid you mean 'rand'?"),
        ),
        (
            "SELECT length(repeat('x', 3000000000)) AS n",
            Refused(bad, "Invalid function 'repeat'.\nDid you mean 'replace'?"),
        ),
        (
            "SELECT a.title FROM events a, events b, events c, events d, events e",
            Refused(
                StatusCode::PAYLOAD_TOO_LARGE,
                "the query returned more than the row limit of 20 rows; add a LIMIT or narrow it",
            ),
        ),
    ];
    // Then flush: the same attempts must hold against Parquet files too.
    for flushed in [false, true] {
        if flushed {
            h.node.flush().await.unwrap();
            assert_eq!(h.node.buffer.manifest().files.len(), 3);
        }
        let mut wrong = Vec::new();
        for (sql, expect) in &attempts {
            let reply = h.sql_as(&token, sql).await;
            let (status, body) = match expect {
                Rows(rows) => (StatusCode::OK, rows.clone()),
                Refused(status, detail) => (*status, json!({ "detail": detail })),
            };
            if reply.status != status || reply.body != body {
                wrong.push(format!("{sql}\n  got {} {}", reply.status, reply.body));
            }
        }
        assert!(wrong.is_empty(), "flushed={flushed}:\n{}", wrong.join("\n"));
    }
}

#[tokio::test]
async fn each_token_sees_its_organization_and_projects() {
    let (h, _) = tenants(|_| {}).await;
    let count = "SELECT project, count(*) AS n FROM events GROUP BY 1 ORDER BY 1";
    let default_org = h.token(&["events:read"], None).await;
    let reply = h.sql_as(&default_org, count).await;
    assert_eq!(
        reply.body,
        json!([{"project": "shop", "n": 1}, {"project": "web", "n": 2}])
    );
    let acme = h
        .node
        .tokens
        .create(NewToken {
            name: "acme".into(),
            org: "acme".into(),
            scopes: Scope::expand_all(&["events:read"]).unwrap(),
            projects: None,
            owner: None,
        })
        .await
        .unwrap()
        .0;
    let reply = h.sql_as(&acme, count).await;
    assert_eq!(reply.body, json!([{"project": "ledger", "n": 1}]));
    let admin_only = h.token(&["projects:admin"], None).await;
    let reply = h.sql_as(&admin_only, count).await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
    assert_eq!(
        reply.body,
        json!({"detail": "the API token lacks the scope event:read"})
    );
}

#[tokio::test]
async fn memory_and_time_limits_give_clear_errors() {
    let (h, token) = tenants(|c| {
        c.query.memory_limit = faultline_config::ByteSize::kib(256);
    })
    .await;
    for i in 0..40 {
        let message = format!("{i} {}", "x".repeat(2000));
        let reply = h.store(format!(r#"{{"message":"{message}"}}"#)).await;
        assert_eq!(reply.status, StatusCode::OK);
    }
    // Sorting a cross join needs far more than 256 KiB, and there is no disk to spill to.
    let reply = h
        .sql_as(
            &token,
            "SELECT a.message, b.message FROM events a, events b ORDER BY a.message, b.message LIMIT 1",
        )
        .await;
    assert_eq!(
        reply.status,
        StatusCode::PAYLOAD_TOO_LARGE,
        "{:?}",
        reply.body
    );
    let detail = reply.body["detail"].as_str().unwrap();
    assert!(
        detail.starts_with("the query used more than the memory limit of 262144 bytes: "),
        "{detail}"
    );

    let (h, token) = tenants(|c| c.query.timeout = std::time::Duration::from_millis(300)).await;
    for i in 0..30 {
        h.store(format!(r#"{{"message":"{i}"}}"#)).await;
    }
    // 31^5 (almost 29 million) strings to build and compare: far beyond 300 ms.
    let reply = h
        .sql_as(
            &token,
            "SELECT max(a.message || b.message || c.message || d.message || e.message) AS m \
             FROM events a, events b, events c, events d, events e",
        )
        .await;
    assert_eq!(
        reply.status,
        StatusCode::REQUEST_TIMEOUT,
        "{:?}",
        reply.body
    );
    assert_eq!(
        reply.body,
        json!({"detail": "the query ran longer than the time limit of 300ms"})
    );
}

fn request(method: Method, uri: &str, token: &str, body: Value) -> Request<Body> {
    Request::builder()
        .method(method)
        .uri(uri)
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", "application/json")
        .body(Body::from(body.to_string()))
        .unwrap()
}

#[tokio::test]
async fn tokens_are_managed_over_http_and_shown_once() {
    let (h, reader) = tenants(|_| {}).await;
    let admin = h.token(&["events:read", "projects:admin"], None).await;

    let body = json!({"name": "grafana", "scopes": ["events:read"], "projects": ["web"]});
    let created = h
        .send(request(Method::POST, "/api/tokens", &admin, body.clone()))
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{:?}", created.body);
    let token = created.body["token"].as_str().unwrap().to_owned();
    assert!(token.starts_with("flt_"));
    assert_eq!(created.body["org"], "default");
    assert_eq!(
        created.body["scopes"],
        json!(["org:read", "project:read", "event:read"])
    );
    assert_eq!(created.body["projects"], json!([2]));
    let id = created.body["id"].as_str().unwrap().to_owned();

    let rows = h
        .sql_as(&token, "SELECT DISTINCT project FROM events")
        .await;
    assert_eq!(rows.body, json!([{"project": "web"}]));

    let listed = h
        .send(request(Method::GET, "/api/tokens", &admin, json!(null)))
        .await;
    assert_eq!(listed.status, StatusCode::OK);
    let listed = listed.body.as_array().unwrap().clone();
    assert_eq!(listed.len(), 3, "{listed:?}");
    assert!(listed.iter().all(|t| t.get("token").is_none()));
    assert!(
        !serde_json::to_string(&listed)
            .unwrap()
            .contains(&token[4..])
    );

    // A reader cannot manage tokens; an admin cannot grant what it does not hold, nor reach
    // another organization's projects.
    let refused = h
        .send(request(Method::POST, "/api/tokens", &reader, body))
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert_eq!(
        refused.body,
        json!({"detail": "the API token lacks the scope org:write"})
    );
    let admin_only = h.token(&["projects:admin"], None).await;
    let refused = h
        .send(request(
            Method::POST,
            "/api/tokens",
            &admin_only,
            json!({"name": "x", "scopes": ["events:read"]}),
        ))
        .await;
    assert_eq!(
        refused.body,
        json!({"detail": "cannot grant the scope event:read: the API token does not hold it"})
    );
    let refused = h
        .send(request(
            Method::POST,
            "/api/tokens",
            &admin,
            json!({"name": "x", "scopes": ["events:read"], "projects": ["ledger"]}),
        ))
        .await;
    assert_eq!(refused.status, StatusCode::NOT_FOUND);
    assert_eq!(
        refused.body,
        json!({"detail": "no project named \"ledger\" in organization \"default\""})
    );

    let revoked = h
        .send(request(
            Method::DELETE,
            &format!("/api/tokens/{id}"),
            &admin,
            json!(null),
        ))
        .await;
    assert_eq!(revoked.status, StatusCode::OK, "{:?}", revoked.body);
    assert_eq!(revoked.body["name"], "grafana");
    let gone = h.sql_as(&token, "SELECT 1").await;
    assert_eq!(gone.status, StatusCode::UNAUTHORIZED);
    assert_eq!(gone.body, json!({"detail": "invalid API token"}));
}
