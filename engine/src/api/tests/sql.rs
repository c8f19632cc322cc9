//! `POST /api/sql` as a user meets it: every column of `events` and `issues` in every format,
//! JSON functions over the stored event, the catalog (`SHOW TABLES`, `information_schema`), and
//! SQL mistakes answered 400 with DataFusion's message.

use axum::body::Body;
use axum::http::StatusCode;
use datafusion::arrow::ipc::reader::StreamReader;
use http_body_util::BodyExt;
use serde_json::{Value, json};
use tower::ServiceExt;

use super::{Harness, harness, post};

/// An event with tags, contexts, request headers, breadcrumbs and an exception with frames.
const RICH_EVENT: &str = r#"{
    "message": "checkout failed",
    "tags": {"browser": "Firefox", "region": "eu, west"},
    "contexts": {"os": {"name": "Linux", "version": "6.1"}, "runtime": {"name": "CPython"}},
    "request": {"url": "https://shop.example/cart", "method": "post",
                "headers": {"User-Agent": "curl/8.5", "Accept": "*/*"}},
    "breadcrumbs": {"values": [
        {"category": "http", "message": "GET /cart"},
        {"category": "ui.click", "message": "button#pay"}
    ]},
    "exception": {"values": [{"type": "ValueError", "value": "bad card",
        "stacktrace": {"frames": [
            {"function": "main", "filename": "app.py", "lineno": 3},
            {"function": "pay", "filename": "shop/pay.py", "lineno": 42}
        ]}}]}
}"#;

impl Harness {
    /// `POST /api/sql?format=FORMAT` with a token: status, content type and raw body.
    async fn sql_bytes(
        &self,
        token: &str,
        format: &str,
        sql: &str,
    ) -> (StatusCode, String, Vec<u8>) {
        let request = post(&format!("/api/sql?format={format}"))
            .header("authorization", format!("Bearer {token}"))
            .body(Body::from(sql.to_owned()))
            .unwrap();
        let response = self.router.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let content_type = response
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        (status, content_type, bytes.to_vec())
    }

    async fn rich(&self) -> String {
        let reply = self.store(RICH_EVENT).await;
        assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
        self.token(&["events:read"], None).await
    }

    /// The rows of a query that must succeed, as JSON.
    async fn rows(&self, token: &str, sql: &str) -> Value {
        let reply = self.sql_as(token, sql).await;
        assert_eq!(reply.status, StatusCode::OK, "{sql}: {:?}", reply.body);
        reply.body
    }
}

#[tokio::test]
async fn every_format_encodes_every_column_of_events_and_issues() {
    let h = harness().await;
    let token = h.rich().await;
    for table in ["events", "issues"] {
        let sql = format!("SELECT * FROM {table}");
        for format in ["json", "csv", "table", "arrow"] {
            let (status, content_type, body) = h.sql_bytes(&token, format, &sql).await;
            assert_eq!(
                status,
                StatusCode::OK,
                "{sql} as {format}: {}",
                String::from_utf8_lossy(&body)
            );
            match format {
                "json" => {
                    let rows: Value = serde_json::from_slice(&body).unwrap();
                    assert_eq!(rows.as_array().unwrap().len(), 1, "{rows}");
                    assert!(rows.to_string().contains("bad card"), "{rows}");
                }
                "arrow" => {
                    assert_eq!(content_type, "application/vnd.apache.arrow.stream");
                    let reader = StreamReader::try_new(std::io::Cursor::new(body), None).unwrap();
                    let rows: usize = reader.map(|b| b.unwrap().num_rows()).sum();
                    assert_eq!(rows, 1);
                }
                _ => {
                    let text = String::from_utf8(body).unwrap();
                    assert!(text.contains("bad card"), "{format}: {text}");
                }
            }
        }
    }

    // The tags map is JSON text in CSV (quoted as CSV quotes), and an object in JSON.
    let (_, content_type, body) = h
        .sql_bytes(&token, "csv", "SELECT title, tags FROM events")
        .await;
    assert_eq!(content_type, "text/csv; charset=utf-8");
    assert_eq!(
        String::from_utf8(body).unwrap(),
        "title,tags\nValueError: bad card,\"{\"\"browser\"\":\"\"Firefox\"\",\"\"region\"\":\"\"eu, west\"\"}\"\n"
    );
    let rows = h.rows(&token, "SELECT tags FROM events").await;
    assert_eq!(
        rows,
        json!([{"tags": {"browser": "Firefox", "region": "eu, west"}}])
    );
    let (_, _, body) = h
        .sql_bytes(&token, "table", "SELECT tags FROM events")
        .await;
    let table = String::from_utf8(body).unwrap();
    assert!(
        table.contains(r#"| {"browser":"Firefox","region":"eu, west"} |"#),
        "{table}"
    );
}

#[tokio::test]
async fn json_operators_and_functions_read_the_stored_event() {
    let h = harness().await;
    let token = h.rich().await;
    let rows = h
        .rows(
            &token,
            "SELECT event->'contexts'->'os'->>'name' AS os, \
                    event->'request'->'headers'->>'User-Agent' AS agent, \
                    json_length(event, 'breadcrumbs', 'values') AS crumbs, \
                    event->'breadcrumbs'->'values'-> -1->>'message' AS last_crumb, \
                    event->'exception'->'values'->0->'stacktrace'->'frames'-> -1->>'function' AS top, \
                    json_get_int(event, 'exception', 'values', 0, 'stacktrace', 'frames', 1, 'lineno') AS line, \
                    json_contains(event, 'user') AS has_user \
             FROM events",
        )
        .await;
    assert_eq!(
        rows,
        json!([{"os": "Linux", "agent": "curl/8.5", "crumbs": 2, "last_crumb": "button#pay",
                "top": "pay", "line": 42, "has_user": false}])
    );

    // `->` as a result column is JSON text; cast, it is the typed value.
    let rows = h
        .rows(
            &token,
            "SELECT event->'contexts'->'os' AS os, event->'request'->'method' AS method, \
                    (event->'exception'->'values'->0->'stacktrace'->'frames'->0->'lineno')::int AS first \
             FROM events",
        )
        .await;
    let os: Value = serde_json::from_str(rows[0]["os"].as_str().unwrap()).unwrap();
    assert_eq!(os, json!({"name": "Linux", "type": "os", "version": "6.1"}));
    assert_eq!(rows[0]["method"], "\"POST\"");
    assert_eq!(rows[0]["first"], 3);

    // In a filter, and in CSV.
    let rows = h
        .rows(
            &token,
            "SELECT count(*) AS n FROM events WHERE event->'contexts'->'os'->>'name' = 'Linux'",
        )
        .await;
    assert_eq!(rows, json!([{"n": 1}]));
    let (status, _, body) = h
        .sql_bytes(
            &token,
            "csv",
            "SELECT event->'contexts'->'runtime' AS runtime FROM events",
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        String::from_utf8(body).unwrap(),
        "runtime\n\"{\"\"name\"\":\"\"CPython\"\",\"\"type\"\":\"\"runtime\"\"}\"\n"
    );
}

#[tokio::test]
async fn show_tables_and_information_schema_list_only_the_tables_of_a_session() {
    let h = harness().await;
    let token = h.rich().await;
    let rows = h.rows(&token, "SHOW TABLES").await;
    assert_eq!(
        rows,
        json!([
            {"table_catalog": "faultline", "table_schema": "public", "table_name": "events", "table_type": "BASE TABLE"},
            {"table_catalog": "faultline", "table_schema": "public", "table_name": "issues", "table_type": "BASE TABLE"},
            {"table_catalog": "faultline", "table_schema": "public", "table_name": "issue_hours", "table_type": "BASE TABLE"},
            {"table_catalog": "faultline", "table_schema": "public", "table_name": "issue_tags", "table_type": "BASE TABLE"},
            {"table_catalog": "faultline", "table_schema": "public", "table_name": "alert_deliveries", "table_type": "BASE TABLE"},
            {"table_catalog": "faultline", "table_schema": "public", "table_name": "monitors", "table_type": "BASE TABLE"},
            {"table_catalog": "faultline", "table_schema": "public", "table_name": "transactions", "table_type": "BASE TABLE"},
            {"table_catalog": "faultline", "table_schema": "public", "table_name": "spans", "table_type": "BASE TABLE"},
            {"table_catalog": "faultline", "table_schema": "public", "table_name": "logs", "table_type": "BASE TABLE"},
            {"table_catalog": "faultline", "table_schema": "public", "table_name": "feedback", "table_type": "BASE TABLE"},
            {"table_catalog": "faultline", "table_schema": "public", "table_name": "attachments", "table_type": "BASE TABLE"},
            {"table_catalog": "faultline", "table_schema": "public", "table_name": "outcomes", "table_type": "BASE TABLE"},
            {"table_catalog": "faultline", "table_schema": "public", "table_name": "sessions", "table_type": "BASE TABLE"},
            {"table_catalog": "faultline", "table_schema": "public", "table_name": "check_ins", "table_type": "BASE TABLE"},
            {"table_catalog": "faultline", "table_schema": "public", "table_name": "release_health", "table_type": "BASE TABLE"},
            {"table_catalog": "faultline", "table_schema": "public", "table_name": "release_health_hourly", "table_type": "BASE TABLE"},
        ])
    );
    let rows = h.rows(&token, "SHOW COLUMNS FROM events").await;
    let columns: Vec<&str> = rows
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["column_name"].as_str().unwrap())
        .collect();
    assert_eq!(columns.len(), crate::events::schema().fields().len());
    assert_eq!(&columns[..3], ["event_id", "project_id", "project"]);
    assert_eq!(rows[1]["data_type"], "bigint");
    assert_eq!(rows[1]["is_nullable"], "NO");
    let rows = h
        .rows(
            &token,
            "SELECT table_schema, table_name FROM information_schema.tables ORDER BY table_name",
        )
        .await;
    assert_eq!(
        rows,
        json!([{"table_schema": "public", "table_name": "alert_deliveries"},
               {"table_schema": "public", "table_name": "attachments"},
               {"table_schema": "public", "table_name": "check_ins"},
               {"table_schema": "public", "table_name": "events"},
               {"table_schema": "public", "table_name": "feedback"},
               {"table_schema": "public", "table_name": "issue_hours"},
               {"table_schema": "public", "table_name": "issue_tags"},
               {"table_schema": "public", "table_name": "issues"},
               {"table_schema": "public", "table_name": "logs"},
               {"table_schema": "public", "table_name": "monitors"},
               {"table_schema": "public", "table_name": "outcomes"},
               {"table_schema": "public", "table_name": "release_health"},
               {"table_schema": "public", "table_name": "release_health_hourly"},
               {"table_schema": "public", "table_name": "sessions"},
               {"table_schema": "public", "table_name": "spans"},
               {"table_schema": "public", "table_name": "transactions"}])
    );
    let rows = h
        .rows(
            &token,
            "SELECT count(*) AS n FROM information_schema.columns WHERE table_name = 'issues'",
        )
        .await;
    assert_eq!(
        rows,
        json!([{"n": crate::issues::summary::issues_schema().fields().len()}])
    );

    // The server's settings stay out of reach, and SHOW of a setting says what there is.
    for sql in [
        "SELECT * FROM information_schema.df_settings",
        "SHOW ALL",
        "SHOW datafusion.execution.batch_size",
        "SHOW FUNCTIONS",
    ] {
        let reply = h.sql_as(&token, sql).await;
        assert_eq!(
            reply.status,
            StatusCode::BAD_REQUEST,
            "{sql}: {:?}",
            reply.body
        );
        let detail = reply.body["detail"].as_str().unwrap();
        assert!(!detail.contains("enabled"), "{sql}: {detail}");
        assert!(!detail.contains("batch_size"), "{sql}: {detail}");
    }
    let reply = h.sql_as(&token, "SHOW ALL").await;
    assert!(
        reply.body["detail"]
            .as_str()
            .unwrap()
            .contains("SHOW TABLES, SHOW COLUMNS FROM <table>"),
        "{:?}",
        reply.body
    );
}

#[tokio::test]
async fn mistakes_in_the_sql_are_400_with_the_reason() {
    let h = harness().await;
    let token = h.rich().await;
    for (sql, says) in [
        ("SELEC 1", "Expected"),
        ("SELECT nope FROM events", "nope"),
        ("SELECT * FROM secrets", "secrets"),
        ("SELECT no_such_function(1)", "no_such_function"),
        ("SELECT CAST('x' AS INT)", "Cannot cast"),
        ("SELECT 1 / 0", "Divide by zero"),
        ("SELECT json_length() FROM events", "json_length"),
        ("SELECT count(*) FROM events GROUP BY nope", "nope"),
    ] {
        let reply = h.sql_as(&token, sql).await;
        assert_eq!(
            reply.status,
            StatusCode::BAD_REQUEST,
            "{sql}: {:?}",
            reply.body
        );
        let detail = reply.body["detail"].as_str().unwrap();
        assert!(detail.contains(says), "{sql}: {detail}");
    }
}

#[tokio::test]
async fn the_documented_json_examples_run() {
    let h = harness().await;
    let token = h.rich().await;
    let rows = h
        .rows(
            &token,
            "SELECT event->'contexts'->'os'->>'name' AS os, event->'contexts'->'os'->>'version' AS os_version, \
                    event->'contexts'->'runtime'->>'name' AS runtime, count(*) AS n \
             FROM events GROUP BY 1, 2, 3 ORDER BY 4 DESC",
        )
        .await;
    assert_eq!(
        rows,
        json!([{"os": "Linux", "os_version": "6.1", "runtime": "CPython", "n": 1}])
    );
    let rows = h
        .rows(
            &token,
            "SELECT event->'request'->>'url' AS url, event->'request'->>'method' AS method, \
                    event->'request'->'headers'->>'User-Agent' AS user_agent FROM events LIMIT 20",
        )
        .await;
    assert_eq!(
        rows,
        json!([{"url": "https://shop.example/cart", "method": "POST", "user_agent": "curl/8.5"}])
    );
    let rows = h
        .rows(
            &token,
            "SELECT json_length(event, 'breadcrumbs', 'values') AS crumbs, \
                    event->'breadcrumbs'->'values'-> -1 ->>'category' AS last_category, \
                    event->'breadcrumbs'->'values'-> -1 ->>'message' AS last_message \
             FROM events ORDER BY timestamp DESC LIMIT 20",
        )
        .await;
    assert_eq!(
        rows,
        json!([{"crumbs": 2, "last_category": "ui.click", "last_message": "button#pay"}])
    );
    let rows = h
        .rows(
            &token,
            "SELECT event->'exception'->'values'-> -1 ->'stacktrace'->'frames'-> -1 ->>'function' AS function, \
                    event->'exception'->'values'-> -1 ->'stacktrace'->'frames'-> -1 ->>'filename' AS file, \
                    (event->'exception'->'values'-> -1 ->'stacktrace'->'frames'-> -1 ->>'lineno')::int AS line, \
                    count(*) AS n \
             FROM events GROUP BY 1, 2, 3 ORDER BY 4 DESC LIMIT 20",
        )
        .await;
    assert_eq!(
        rows,
        json!([{"function": "pay", "file": "shop/pay.py", "line": 42, "n": 1}])
    );
    let rows = h
        .rows(
            &token,
            "SELECT count(*) FILTER (WHERE event ? 'user') AS with_user, \
                    count(*) FILTER (WHERE event ? 'request') AS with_request, \
                    event #>> array['contexts', 'os', 'name'] AS os \
             FROM events GROUP BY 3",
        )
        .await;
    assert_eq!(
        rows,
        json!([{"with_user": 0, "with_request": 1, "os": "Linux"}])
    );
    let rows = h
        .rows(
            &token,
            "SELECT json_get_json(event, 'contexts', 'os') AS os, \
                    json_object_keys(event, 'request', 'headers') AS headers FROM events",
        )
        .await;
    let os: Value = serde_json::from_str(rows[0]["os"].as_str().unwrap()).unwrap();
    assert_eq!(os["name"], "Linux");
    assert_eq!(rows[0]["headers"], json!(["Accept", "User-Agent"]));
}
