//! Projects registered over HTTP (`PUT|DELETE /api/0/organizations/{org}/projects/{slug}/`),
//! as the Kubernetes operator does for each `FaultlineProject`: idempotent, refused without
//! `project:admin` for the whole organization, and what an SDK then sees at ingest.

use axum::body::Body;
use axum::http::{Method, StatusCode};
use serde_json::{Value, json};

use super::{Harness, harness, post};
use crate::tenancy::{NewToken, Scope};

const KEY_A: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
const KEY_B: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

impl Harness {
    /// A token of organization `org` with these scopes.
    async fn org_token(&self, org: &str, scopes: &[&str]) -> String {
        let new = NewToken {
            name: "registrar".into(),
            org: org.into(),
            scopes: Scope::expand_all(scopes).unwrap(),
            projects: None,
            owner: None,
        };
        self.node.tokens.create(new).await.unwrap().0
    }

    async fn store_to(&self, project_id: &str, key: &str, message: &str) -> super::Reply {
        self.send(
            post(&format!("/api/{project_id}/store/"))
                .header("x-sentry-auth", format!("Sentry sentry_key={key}"))
                .body(Body::from(format!(r#"{{"message":"{message}"}}"#)))
                .unwrap(),
        )
        .await
    }

    /// An envelope of one transaction, sent to `project_id` with `key`.
    async fn transaction_to(&self, project_id: &str, key: &str) -> super::Reply {
        let now = chrono::Utc::now().timestamp();
        let transaction = json!({"transaction": "checkout", "start_timestamp": now - 1,
            "timestamp": now, "contexts": {"trace": {"trace_id": "0af7651916cd43dd8448eb211c80319c",
            "span_id": "b7ad6b7169203331"}}});
        self.send(
            post(&format!("/api/{project_id}/envelope/"))
                .header("x-sentry-auth", format!("Sentry sentry_key={key}"))
                .body(Body::from(format!(
                    "{{}}\n{{\"type\":\"transaction\"}}\n{transaction}\n"
                )))
                .unwrap(),
        )
        .await
    }
}

/// The message of an answer: Relay's `detail`, or the plain text of a rejection.
fn message(reply: &super::Reply) -> String {
    match &reply.body {
        Value::String(text) => text.clone(),
        body => body["detail"].as_str().unwrap_or_default().to_owned(),
    }
}

fn declaration() -> Value {
    json!({
        "platform": "python",
        "retentionDays": 30,
        "rateLimit": {"count": 1000, "window": 60},
        "quotas": [{"categories": ["transaction"], "limit": 0, "window": 60}],
        "keys": [
            {"name": "default", "public": KEY_A},
            {"name": "old", "public": KEY_B, "isActive": false, "rateLimit": {"count": 5, "window": 60}}
        ],
        "fingerprintingRules": "error.type:Timeout -> timeouts",
        "scrubIPAddresses": true
    })
}

const PATH: &str = "/api/0/organizations/team-a/projects/api/";

#[tokio::test]
async fn a_declared_project_is_created_once_and_the_same_answer_comes_back() {
    let h = harness().await;
    let admin = h
        .org_token("team-a", &["project:admin", "project:read"])
        .await;

    let first = h
        .call_as(Method::PUT, PATH, &admin, Some(declaration()))
        .await;
    assert_eq!(first.status, StatusCode::OK, "{:?}", first.body);
    assert_eq!(first.body["slug"], "api");
    assert_eq!(first.body["organization"], "team-a");
    assert_eq!(first.body["platform"], "python");
    assert_eq!(first.body["retentionDays"], 30);
    assert_eq!(first.body["keys"][0]["public"], KEY_A);
    assert_eq!(first.body["keys"][1]["isActive"], false);
    assert_eq!(
        first.body["quotas"],
        json!([{"categories": ["transaction"], "limit": 0, "window": 60}])
    );
    let id = first.body["id"].as_str().unwrap().to_owned();
    assert_ne!(id, "1", "project 1 is the config file's shop");
    assert!(
        first.body["keys"][0]["dsn"]
            .as_str()
            .unwrap()
            .ends_with(&format!("/{id}")),
        "{:?}",
        first.body
    );

    let again = h
        .call_as(Method::PUT, PATH, &admin, Some(declaration()))
        .await;
    assert_eq!(again.status, StatusCode::OK);
    assert_eq!(again.body, first.body, "same declaration, same answer");

    // the settings reach the project's other views
    let details = h
        .call_as(Method::GET, "/api/0/projects/team-a/api/", &admin, None)
        .await;
    assert_eq!(details.status, StatusCode::OK, "{:?}", details.body);
    assert_eq!(
        details.body["fingerprintingRules"],
        "error.type:Timeout -> timeouts"
    );
    assert_eq!(details.body["scrubIPAddresses"], true);

    // the active key sends, the disabled one is refused
    let sent = h.store_to(&id, KEY_A, "hello from team a").await;
    assert_eq!(sent.status, StatusCode::OK, "{:?}", sent.body);
    let refused = h.store_to(&id, KEY_B, "old key").await;
    assert_eq!(
        refused.status,
        StatusCode::UNAUTHORIZED,
        "{:?}",
        refused.body
    );

    // the quota of no transactions refuses them, naming the category for the SDK
    let refused = h.transaction_to(&id, KEY_A).await;
    assert_eq!(
        refused.status,
        StatusCode::TOO_MANY_REQUESTS,
        "{:?}",
        refused.body
    );
    let limits = refused.headers["x-sentry-rate-limits"].to_str().unwrap();
    assert!(limits.ends_with(":transaction:project"), "{limits}");

    // a changed declaration changes the project, same id
    let mut changed = declaration();
    changed["retentionDays"] = json!(7);
    changed["quotas"] = json!([]);
    changed["keys"] = json!([{"name": "default", "public": KEY_B}]);
    let updated = h.call_as(Method::PUT, PATH, &admin, Some(changed)).await;
    assert_eq!(updated.status, StatusCode::OK, "{:?}", updated.body);
    assert_eq!(updated.body["id"], id.as_str());
    assert_eq!(updated.body["retentionDays"], 7);
    assert_eq!(updated.body["keys"].as_array().unwrap().len(), 1);
    assert_eq!(updated.body["quotas"], json!([]));
    let sent = h.transaction_to(&id, KEY_B).await;
    assert_eq!(
        sent.status,
        StatusCode::OK,
        "quotas removed: {:?}",
        sent.body
    );
    let refused = h.store_to(&id, KEY_A, "dropped key").await;
    assert_eq!(refused.status, StatusCode::UNAUTHORIZED);
    let sent = h.store_to(&id, KEY_B, "new key").await;
    assert_eq!(sent.status, StatusCode::OK, "{:?}", sent.body);
}

#[tokio::test]
async fn delete_removes_the_keys_and_a_new_declaration_gets_the_same_id_back() {
    let h = harness().await;
    let admin = h.org_token("team-a", &["project:admin"]).await;
    let first = h
        .call_as(Method::PUT, PATH, &admin, Some(declaration()))
        .await;
    let id = first.body["id"].as_str().unwrap().to_owned();

    let gone = h.call_as(Method::DELETE, PATH, &admin, None).await;
    assert_eq!(gone.status, StatusCode::NO_CONTENT, "{:?}", gone.body);
    let refused = h.store_to(&id, KEY_A, "after delete").await;
    assert_eq!(
        refused.status,
        StatusCode::UNAUTHORIZED,
        "{:?}",
        refused.body
    );
    let missing = h
        .call_as(
            Method::DELETE,
            "/api/0/organizations/team-a/projects/nope/",
            &admin,
            None,
        )
        .await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND, "{:?}", missing.body);

    let back = h
        .call_as(Method::PUT, PATH, &admin, Some(declaration()))
        .await;
    assert_eq!(back.status, StatusCode::OK);
    assert_eq!(back.body["id"], id.as_str());
    let sent = h.store_to(&id, KEY_A, "back again").await;
    assert_eq!(sent.status, StatusCode::OK, "{:?}", sent.body);
}

#[tokio::test]
async fn registering_needs_project_admin_for_the_whole_organization() {
    let h = harness().await;
    let writer = h.org_token("team-a", &["project:write"]).await;
    let other_org = h.org_token("team-b", &["project:admin"]).await;
    let limited = h.token(&["project:admin"], Some(vec![1])).await;
    for (token, what) in [
        (&writer, "lacks the scope project:admin"),
        (&other_org, "all of organization \"team-a\""),
    ] {
        let reply = h
            .call_as(Method::PUT, PATH, token, Some(declaration()))
            .await;
        assert_eq!(reply.status, StatusCode::FORBIDDEN, "{:?}", reply.body);
        assert!(message(&reply).contains(what), "{:?}", reply.body);
        let reply = h.call_as(Method::DELETE, PATH, token, None).await;
        assert_eq!(reply.status, StatusCode::FORBIDDEN, "{:?}", reply.body);
    }
    let reply = h
        .call_as(
            Method::PUT,
            "/api/0/organizations/default/projects/web/",
            &limited,
            Some(json!({})),
        )
        .await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN, "{:?}", reply.body);
    let reply = h
        .call_as(Method::PUT, PATH, "flt_nonsense", Some(json!({})))
        .await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{:?}", reply.body);
}

#[tokio::test]
async fn bad_declarations_are_refused_naming_the_field() {
    let h = harness().await;
    let admin = h.token(&["project:admin"], None).await;
    let cases = [
        (json!({"keys": [{"public": "xyz"}]}), "keys[0].public"),
        (json!({"retentionDays": 0}), "retentionDays"),
        (
            json!({"rateLimit": {"count": 0, "window": 60}}),
            "rateLimit",
        ),
        (json!({"platform": "Python 3"}), "platform"),
        (
            json!({"quotas": [{"categories": ["spans"], "limit": 1, "window": 60}]}),
            "quotas[0].categories[0]",
        ),
        (json!({"keys": []}), "keys"),
        (json!({"retention": 3}), "unknown field `retention`"),
    ];
    for (body, field) in cases {
        let reply = h
            .call_as(
                Method::PUT,
                "/api/0/organizations/default/projects/web/",
                &admin,
                Some(body),
            )
            .await;
        assert!(
            reply.status == StatusCode::BAD_REQUEST
                || reply.status == StatusCode::UNPROCESSABLE_ENTITY,
            "{field}: {} {:?}",
            reply.status,
            reply.body
        );
        assert!(message(&reply).contains(field), "{field}: {:?}", reply.body);
    }
    // rules that do not parse are refused before anything is written: no project "web" now
    let bad_rules = [
        (
            json!({"platform": "python", "fingerprintingRules": "error.type:Timeout"}),
            "fingerprintingRules is not valid",
        ),
        (
            json!({"platform": "python", "relayPiiConfig": "{\"applications\": {\"$string\": [\"@nope\"]}}"}),
            "\"@nope\"",
        ),
    ];
    for (body, detail) in &bad_rules {
        let reply = h
            .call_as(
                Method::PUT,
                "/api/0/organizations/default/projects/web/",
                &admin,
                Some(body.clone()),
            )
            .await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{:?}", reply.body);
        assert!(message(&reply).contains(detail), "{:?}", reply.body);
    }
    let projects = h.node.projects.list().await.unwrap();
    assert!(
        !projects.iter().any(|p| p.name == "web"),
        "a refused declaration created the project"
    );
    // nor is an existing project changed in part
    let team_a = h
        .org_token("team-a", &["project:admin", "project:read"])
        .await;
    let created = h
        .call_as(Method::PUT, PATH, &team_a, Some(declaration()))
        .await;
    assert_eq!(created.status, StatusCode::OK, "{:?}", created.body);
    for (body, _) in bad_rules {
        let mut changed = declaration();
        changed["retentionDays"] = json!(7);
        changed["keys"] = json!([{"public": KEY_B}]);
        for (field, value) in body.as_object().unwrap() {
            changed[field] = value.clone();
        }
        let reply = h.call_as(Method::PUT, PATH, &team_a, Some(changed)).await;
        assert_eq!(reply.status, StatusCode::BAD_REQUEST, "{:?}", reply.body);
    }
    let projects = h.node.projects.list().await.unwrap();
    let api = projects.iter().find(|p| p.name == "api").unwrap();
    assert_eq!(
        api.retention_days,
        Some(30),
        "a refused change changed the project"
    );
    assert_eq!(api.keys.len(), 2, "{:?}", api.keys);
    let details = h
        .call_as(Method::GET, "/api/0/projects/team-a/api/", &team_a, None)
        .await;
    assert_eq!(
        details.body["fingerprintingRules"], "error.type:Timeout -> timeouts",
        "{:?}",
        details.body
    );
    assert_eq!(details.body["relayPiiConfig"], Value::Null);
    // the config file's project is changed there
    let reply = h
        .call_as(
            Method::PUT,
            "/api/0/organizations/default/projects/shop/",
            &admin,
            Some(json!({"retentionDays": 3})),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CONFLICT, "{:?}", reply.body);
    assert!(message(&reply).contains("config file"), "{:?}", reply.body);
    // an id another project holds
    let reply = h
        .call_as(
            Method::PUT,
            "/api/0/organizations/default/projects/web/",
            &admin,
            Some(json!({"id": 1})),
        )
        .await;
    assert_eq!(reply.status, StatusCode::CONFLICT, "{:?}", reply.body);
    assert!(
        message(&reply).contains("taken by project \"shop\""),
        "{:?}",
        reply.body
    );
}

#[tokio::test]
async fn declarations_that_change_something_are_audited_once() {
    let h = harness().await;
    let admin = h
        .org_token("team-a", &["project:admin", "project:read"])
        .await;
    let audit = || async {
        h.sql(
            "SELECT event, org, actor_type, actor_label, target_type, target_id, data \
             FROM audit_log WHERE event LIKE 'project.%' ORDER BY ts",
        )
        .await
    };

    let created = h
        .call_as(Method::PUT, PATH, &admin, Some(declaration()))
        .await;
    assert_eq!(created.status, StatusCode::OK, "{:?}", created.body);
    let id = created.body["id"].as_str().unwrap().to_owned();
    // the same declaration again: nothing changed, nothing audited
    let again = h
        .call_as(Method::PUT, PATH, &admin, Some(declaration()))
        .await;
    assert_eq!(again.status, StatusCode::OK);
    let rows = audit().await;
    assert_eq!(rows.as_array().unwrap().len(), 1, "{rows}");
    assert_eq!(rows[0]["event"], "project.register");
    assert_eq!(rows[0]["org"], "team-a");
    assert_eq!(rows[0]["actor_type"], "token");
    assert_eq!(rows[0]["actor_label"], "registrar");
    assert_eq!(
        (
            rows[0]["target_type"].as_str(),
            rows[0]["target_id"].as_str()
        ),
        (Some("project"), Some(id.as_str()))
    );
    let data: Value = serde_json::from_str(rows[0]["data"].as_str().unwrap()).unwrap();
    assert_eq!(
        data,
        json!({"project": "api", "changed": ["platform", "retentionDays", "rateLimit", "quotas",
                                              "keys", "groupingRules", "privacy"]})
    );
    assert!(
        !rows.to_string().contains(KEY_A),
        "no key values in the audit log"
    );

    // one field changed: one entry naming it
    let mut changed = declaration();
    changed["platform"] = json!("node");
    let reply = h.call_as(Method::PUT, PATH, &admin, Some(changed)).await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    let rows = audit().await;
    assert_eq!(rows.as_array().unwrap().len(), 2, "{rows}");
    let data: Value = serde_json::from_str(rows[1]["data"].as_str().unwrap()).unwrap();
    assert_eq!(data, json!({"project": "api", "changed": ["platform"]}));

    // removing the keys is audited once; removing them again is not
    for _ in 0..2 {
        let reply = h.call_as(Method::DELETE, PATH, &admin, None).await;
        assert_eq!(reply.status, StatusCode::NO_CONTENT, "{:?}", reply.body);
    }
    let rows = audit().await;
    assert_eq!(rows.as_array().unwrap().len(), 3, "{rows}");
    assert_eq!(rows[2]["event"], "project.unregister");
    let data: Value = serde_json::from_str(rows[2]["data"].as_str().unwrap()).unwrap();
    assert_eq!(data, json!({"project": "api", "changed": ["keys"]}));
}

/// The same node, stopped and opened again on its data directory (its WAL replayed).
async fn reopen(h: Harness) -> Harness {
    let Harness {
        _dir: dir,
        node,
        router,
    } = h;
    let config = node.config.clone();
    drop((node, router));
    let node = std::sync::Arc::new(crate::node::Node::open(config).await.unwrap());
    let router = crate::api::router(&node).layer(axum::extract::connect_info::MockConnectInfo(
        std::net::SocketAddr::from(([10, 1, 2, 3], 5000)),
    ));
    Harness {
        _dir: dir,
        node,
        router,
    }
}

#[tokio::test]
async fn erasing_a_project_takes_out_its_rows_also_after_a_flush_and_a_restart() {
    let h = harness().await;
    let admin = h
        .org_token("team-a", &["project:admin", "project:read", "event:read"])
        .await;
    let declared = h
        .call_as(Method::PUT, PATH, &admin, Some(declaration()))
        .await;
    assert_eq!(declared.status, StatusCode::OK, "{:?}", declared.body);
    let id = declared.body["id"].as_str().unwrap().to_owned();
    for message in ["flushed one", "flushed two"] {
        let reply = h.store_to(&id, KEY_A, message).await;
        assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    }
    h.node.flush_with_outcomes().await.unwrap();
    let reply = h.store_to(&id, KEY_A, "still in the WAL").await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    // an item row (a log) also still in the WAL
    let now = chrono::Utc::now().timestamp();
    let log = h
        .send(
            post(&format!("/api/{id}/envelope/"))
                .header("x-sentry-auth", format!("Sentry sentry_key={KEY_A}"))
                .body(Body::from(format!(
                    "{{}}\n{{\"type\":\"log\"}}\n{{\"items\":[{{\"timestamp\":{now},\"level\":\"info\",\"body\":\"erase me\"}}]}}\n"
                )))
                .unwrap(),
        )
        .await;
    assert_eq!(log.status, StatusCode::OK, "{:?}", log.body);
    // another organization's project keeps its rows
    assert_eq!(
        h.store(r#"{"message":"shop"}"#).await.status,
        StatusCode::OK
    );
    let counted = h
        .sql_as(&admin, "SELECT count(*) AS n FROM events")
        .await
        .body;
    assert_eq!(counted, json!([{"n": 3}]));

    let erase = format!("{PATH}erase/");
    let other_org = h.org_token("team-b", &["project:admin"]).await;
    let refused = h.call_as(Method::POST, &erase, &other_org, None).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{:?}", refused.body);
    let reply = h.call_as(Method::POST, &erase, &admin, None).await;
    assert_eq!(reply.status, StatusCode::ACCEPTED, "{:?}", reply.body);
    assert_eq!(reply.body["id"], id.as_str());
    assert_eq!(reply.body["slug"], "api");
    assert!(
        reply.body["files"].as_u64().unwrap() >= 2,
        "the flushed events and their rollups: {:?}",
        reply.body
    );
    // the project is gone: its SDKs are refused, its rows are read by nobody
    let refused = h.store_to(&id, KEY_A, "after").await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{:?}", refused.body);
    let counted = h
        .sql_as(&admin, "SELECT count(*) AS n FROM events")
        .await
        .body;
    assert_eq!(counted, json!([{"n": 0}]));
    let again = h.call_as(Method::POST, &erase, &admin, None).await;
    assert_eq!(again.status, StatusCode::ACCEPTED, "idempotent");
    assert_eq!(again.body["erasedAt"], reply.body["erasedAt"]);

    // Until the node flushes, what is in its memory is there for a reader of every project
    // (the CLI's view); no token reads it.
    let of_project = format!(
        "SELECT (SELECT count(*) FROM events WHERE project_id = {id}) AS events, \
                (SELECT count(*) FROM logs WHERE project_id = {id}) AS logs, \
                (SELECT count(*) FROM issues WHERE project_id = {id}) AS issues, \
                (SELECT count(*) FROM outcomes WHERE project_id = {id}) AS outcomes"
    );
    let in_memory = h.sql(&of_project).await;
    assert_eq!(in_memory[0]["events"], 1, "{in_memory}");
    assert_eq!(in_memory[0]["logs"], 1, "{in_memory}");

    // A restart replays the WAL, leaving out the erased project's rows: they do not come back,
    // neither after the restart nor after the next flush and maintenance run.
    let h = reopen(h).await;
    let nothing = json!([{"events": 0, "logs": 0, "issues": 0, "outcomes": 0}]);
    assert_eq!(h.sql(&of_project).await, nothing);
    h.node.flush_with_outcomes().await.unwrap();
    let report = crate::maintenance::Maintenance::for_node(&h.node)
        .erase_projects()
        .await
        .unwrap();
    assert_eq!(report.projects, 1);
    assert_eq!(h.sql(&of_project).await, nothing);
    let shop = h
        .sql("SELECT count(*) AS n FROM events WHERE project_id = 1")
        .await;
    assert_eq!(
        shop,
        json!([{"n": 1}]),
        "other projects keep their rows, replayed too"
    );
    let counted = h
        .sql_as(&admin, "SELECT count(*) AS n FROM events")
        .await
        .body;
    assert_eq!(counted, json!([{"n": 0}]));

    // one audit entry; a new declaration of the name is a new project with a new id
    let audit = h
        .sql("SELECT event, target_id FROM audit_log WHERE event = 'project.erase'")
        .await;
    assert_eq!(audit, json!([{"event": "project.erase", "target_id": id}]));
    let declared = h
        .call_as(Method::PUT, PATH, &admin, Some(declaration()))
        .await;
    assert_eq!(declared.status, StatusCode::OK, "{:?}", declared.body);
    assert_ne!(
        declared.body["id"],
        id.as_str(),
        "an erased id is not given again"
    );
    let unknown = h
        .call_as(
            Method::POST,
            "/api/0/organizations/team-a/projects/never/erase/",
            &admin,
            None,
        )
        .await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND, "{:?}", unknown.body);
}
