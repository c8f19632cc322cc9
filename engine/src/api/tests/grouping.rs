//! Grouping at ingest: the issue of an event comes from any of its hashes seen before, per
//! project rules from the config apply, and the grouping cost is exported.

use axum::http::StatusCode;
use faultline_config::Config;
use faultline_protocol::grouping::{hash_values, issue_id};
use serde_json::{Value, json};

use super::{harness, harness_with};

fn python_error(context_line: &str, value: &str) -> String {
    json!({
        "platform": "python",
        "exception": {"values": [{"type": "ValueError", "value": value,
            "stacktrace": {"frames": [
                {"module": "shop.views", "function": "checkout", "filename": "shop/views.py",
                 "lineno": 10, "in_app": true, "context_line": context_line}
            ]}}]}
    })
    .to_string()
}

fn issues(rows: &Value) -> Vec<i64> {
    let mut ids: Vec<i64> = rows
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["issue_id"].as_i64().unwrap())
        .collect();
    ids.sort_unstable();
    ids.dedup();
    ids
}

#[tokio::test]
async fn python_errors_from_other_source_lines_are_other_issues_as_in_sentry() {
    // Sentry counts Python source lines: the same KeyError raised by another line of code is
    // another issue, even though faultline's earlier hash (module and function only) is the
    // same; that earlier hash links only to issues stored before the upgrade.
    let h = harness().await;
    for (line, value) in [
        ("price = int(text)", "bad"),
        ("price = int(text)", "worse"),
        ("price = int(text.strip())", "bad"),
    ] {
        assert_eq!(
            h.store(python_error(line, value)).await.status,
            StatusCode::OK
        );
    }
    let rows = h.sql("SELECT issue_id, fingerprint FROM events").await;
    assert_eq!(rows.as_array().unwrap().len(), 3);
    assert_eq!(issues(&rows).len(), 2, "{rows}");
}

#[tokio::test]
async fn fingerprint_rules_from_the_config_set_the_issue_of_new_events() {
    let h = harness_with(|config: &mut Config| {
        config.projects[0].fingerprinting_rules =
            Some("error.type:DatabaseUnavailable -> system-down".into());
    })
    .await;
    for value in ["primary down", "replica down at 10.0.0.7"] {
        let event = json!({"platform": "python", "exception": {"values": [
            {"type": "DatabaseUnavailable", "value": value}]}});
        assert_eq!(h.store(event.to_string()).await.status, StatusCode::OK);
    }
    let rows = h.sql("SELECT issue_id, fingerprint FROM events").await;
    let hash = hash_values(["system-down"]);
    assert_eq!(issues(&rows), [issue_id(1, &hash)]);
    assert_eq!(rows[0]["fingerprint"], hash);
}

#[tokio::test]
async fn why_an_event_was_grouped_is_one_sql_function_away() {
    let h = harness_with(|config: &mut Config| {
        config.projects[0].fingerprinting_rules =
            Some("error.type:DatabaseUnavailable -> system-down".into());
    })
    .await;
    let ruled = json!({"platform": "python", "exception": {"values": [
        {"type": "DatabaseUnavailable", "value": "primary down"}]}});
    assert_eq!(h.store(ruled.to_string()).await.status, StatusCode::OK);
    assert_eq!(
        h.store(python_error("price = int(text)", "bad"))
            .await
            .status,
        StatusCode::OK
    );
    let rows = h
        .sql(
            "SELECT exception_type, fingerprint, grouping_explain(project_id, event) AS why \
             FROM events ORDER BY exception_type",
        )
        .await;
    let rows = rows.as_array().unwrap();
    assert_eq!(rows.len(), 2);
    let why =
        |row: &Value| -> Value { serde_json::from_str(row["why"].as_str().unwrap()).unwrap() };

    // the rule decided the first: its variant names the rule and the values hashed
    let first = why(&rows[0]);
    assert_eq!(rows[0]["exception_type"], "DatabaseUnavailable");
    assert_eq!(first["config"], "newstyle:2026-01-20");
    assert_eq!(first["method"], "fingerprint");
    assert_eq!(first["hash"], rows[0]["fingerprint"]);
    let custom = first["variants"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["matched_rule"].is_string())
        .unwrap_or_else(|| panic!("no variant names the rule: {first}"));
    assert_eq!(
        custom["matched_rule"],
        "error.type:DatabaseUnavailable -> system-down"
    );
    assert_eq!(custom["fingerprint"], json!(["system-down"]));

    // the exception decided the second: the app variant's tree shows what counted
    let second = why(&rows[1]);
    assert_eq!(second["method"], "exception");
    assert_eq!(second["hash"], rows[1]["fingerprint"]);
    let app = second["variants"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["name"] == "app")
        .unwrap_or_else(|| panic!("no app variant: {second}"));
    assert_eq!(app["hash"], rows[1]["fingerprint"]);
    let tree = app["component"].to_string();
    for part in [
        "\"exception\"",
        "\"stacktrace\"",
        "\"type\"",
        "ValueError",
        "\"context-line\"",
        "price = int(text)",
        "ignored because stacktrace takes precedence",
    ] {
        assert!(tree.contains(part), "{part} missing from {tree}");
    }

    // JSON functions read it like any JSON text
    let methods = h
        .sql(
            "SELECT json_get_str(grouping_explain(project_id, event), 'method') AS method, \
             count(*) AS n FROM events GROUP BY 1 ORDER BY 1",
        )
        .await;
    assert_eq!(
        methods,
        json!([{"method": "exception", "n": 1}, {"method": "fingerprint", "n": 1}])
    );

    // a session that may not read the project groups with the built-in rules only: another
    // tenant's rules are not learned by passing its project id
    let stored = h
        .sql("SELECT event FROM events WHERE exception_type = 'DatabaseUnavailable'")
        .await;
    let text = stored[0]["event"].as_str().unwrap().replace('\'', "''");
    let other = crate::query::ProjectFilter::Only(std::sync::Arc::new([2].into_iter().collect()));
    let output = h
        .node
        .query
        .run(
            &other,
            &format!("SELECT grouping_explain(1, '{text}') AS why"),
        )
        .await
        .unwrap();
    let bytes = crate::query::format::encode(&output, crate::query::format::Format::Json).unwrap();
    let answer: Value = serde_json::from_slice(&bytes).unwrap();
    let why: Value = serde_json::from_str(answer[0]["why"].as_str().unwrap()).unwrap();
    assert_eq!(why["method"], "exception", "{why}");
    assert!(!why.to_string().contains("system-down"), "{why}");
}

#[tokio::test]
async fn invalid_rules_in_the_config_name_project_field_line_and_column() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::default();
    config.storage.data_dir = dir.path().to_owned();
    config.projects.push(faultline_config::ProjectConfig {
        id: 1,
        name: "shop".into(),
        keys: vec![super::KEY.into()],
        quotas: Vec::new(),
        rate_limit: None,
        retention_days: None,
        grouping_enhancements: Some("path:**/vendor/** -app\nfamily:javascript +frobnicate".into()),
        fingerprinting_rules: None,
        privacy: None,
    });
    let err = crate::node::Node::open(config)
        .await
        .err()
        .expect("refused");
    let text = err.to_string();
    assert!(
        text.contains("project \"shop\": grouping_enhancements is not valid at line 2, column 19"),
        "{text}"
    );
    assert!(text.contains("unknown flag `frobnicate`"), "{text}");
}

#[tokio::test]
async fn the_grouping_cost_is_exported() {
    let h = harness().await;
    assert_eq!(
        h.store(python_error("x = 1", "v")).await.status,
        StatusCode::OK
    );
    let reply = h
        .send(
            axum::http::Request::builder()
                .uri("/metrics")
                .body(axum::body::Body::empty())
                .unwrap(),
        )
        .await;
    let text = reply.body.as_str().unwrap().to_owned();
    assert!(
        super::metrics::sample(&text, "faultline_grouped_events") >= 1.0,
        "{text}"
    );
    assert!(
        super::metrics::sample(&text, "faultline_grouping_seconds") > 0.0,
        "{text}"
    );
}

#[tokio::test]
async fn issues_stored_before_the_upgrade_keep_receiving_their_events() {
    // A row as faultline wrote it before Sentry's grouping: its `fingerprint` is the earlier
    // hash and its issue id derives from that hash.
    let h = harness().await;
    let payload = python_error("price = int(text)", "bad");
    let ctx = faultline_protocol::normalize::NormalizeContext {
        received: chrono::Utc::now(),
        client_ip: None,
        event_id: None,
    };
    let old = faultline_protocol::normalize::normalize_event(payload.as_bytes(), &ctx).unwrap();
    let legacy = faultline_protocol::grouping::legacy_hash(&old);
    let old_issue = issue_id(1, &legacy);
    h.node.buffer.append(&[crate::events::StoredEvent {
        project_id: 1,
        project: "shop".into(),
        issue_id: old_issue,
        grouping_hash: legacy.clone(),
        event: old,
    }]);
    // the same error now: its primary hash is Sentry's, its issue the old one
    assert_eq!(
        h.store(python_error("price = int(text)", "again"))
            .await
            .status,
        StatusCode::OK
    );
    let rows = h
        .sql(&format!(
            "SELECT issue_id, fingerprint FROM events WHERE fingerprint <> '{legacy}'"
        ))
        .await;
    assert_eq!(rows.as_array().unwrap().len(), 1);
    assert_eq!(issues(&rows), [old_issue]);
}

async fn project_call(
    h: &super::Harness,
    method: axum::http::Method,
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
async fn grouping_rules_set_through_the_api_apply_to_new_events() {
    use axum::http::Method;
    let h = harness().await;
    let admin = h.token(&["projects:admin"], None).await;
    let reader = h.token(&["events:read"], None).await;
    let event = || {
        json!({"platform": "python", "exception": {"values": [
            {"type": "DatabaseUnavailable", "value": "primary down"}]}})
        .to_string()
    };
    assert_eq!(h.store(event()).await.status, StatusCode::OK);

    // Reading a project needs project:read (as Sentry's project details); changing its rules
    // needs project:write.
    let reply = project_call(&h, Method::GET, &reader, None).await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    assert_eq!(reply.body["slug"], "shop");
    let reply = project_call(
        &h,
        Method::PUT,
        &reader,
        Some(json!({"fingerprintingRules": "error.type:X -> x"})),
    )
    .await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN, "{:?}", reply.body);
    let reply = project_call(&h, Method::GET, &admin, None).await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    assert_eq!(reply.body["groupingConfig"], "newstyle:2026-01-20");
    assert_eq!(reply.body["fingerprintingRules"], "");

    // a rule that does not parse: 400 naming the field, line and column
    let reply = project_call(
        &h,
        Method::PUT,
        &admin,
        Some(json!({"fingerprintingRules": "error.type:X\nerror.type:DatabaseUnavailable system-down"})),
    )
    .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{:?}", reply.body);
    let detail = reply.body["detail"].as_str().unwrap();
    assert!(
        detail.contains("fingerprintingRules is not valid at line 1"),
        "{detail}"
    );
    // an unknown field is named (as for every JSON body: 422)
    let reply = project_call(&h, Method::PUT, &admin, Some(json!({"colour": "red"}))).await;
    assert_eq!(
        reply.status,
        StatusCode::UNPROCESSABLE_ENTITY,
        "{:?}",
        reply.body
    );
    assert!(
        reply.body.to_string().contains("unknown field `colour`"),
        "{:?}",
        reply.body
    );

    let rules = "error.type:DatabaseUnavailable -> system-down";
    let reply = project_call(
        &h,
        Method::PUT,
        &admin,
        Some(json!({"fingerprintingRules": rules})),
    )
    .await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    assert_eq!(reply.body["fingerprintingRules"], rules);
    assert_eq!(h.store(event()).await.status, StatusCode::OK);

    // the first event kept its issue; the new one is grouped by the rule
    let rows = h.sql("SELECT issue_id FROM events").await;
    let ids = issues(&rows);
    assert_eq!(ids.len(), 2, "{rows}");
    assert!(ids.contains(&issue_id(1, &hash_values(["system-down"]))));
    // a node that starts now reads the rules from the store
    h.node.projects.reload_now().await.unwrap();
    assert!(h.node.projects.grouping(1).is_some());
}

#[tokio::test]
async fn rules_declared_in_the_config_are_changed_there() {
    let h = harness_with(|config: &mut Config| {
        config.projects[0].grouping_enhancements = Some("path:**/vendor/** -app".into());
    })
    .await;
    let admin = h.token(&["projects:admin"], None).await;
    let reply = project_call(&h, axum::http::Method::GET, &admin, None).await;
    assert_eq!(reply.body["groupingEnhancements"], "path:**/vendor/** -app");
    assert_eq!(reply.body["groupingRulesFromConfig"], true);
    let reply = project_call(
        &h,
        axum::http::Method::PUT,
        &admin,
        Some(json!({"groupingEnhancements": ""})),
    )
    .await;
    assert_eq!(reply.status, StatusCode::CONFLICT, "{:?}", reply.body);
}
