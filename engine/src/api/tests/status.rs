//! `GET /api/0/status/`: what the operator reads on every tracker reconcile. The admin token
//! file's token reads it; an organization's token, even with `project:admin`, does not.

use std::sync::Arc;

use super::*;
use crate::store::Store;
use crate::store::faults::LoseReplies;

const ADMIN: &str = "status-admin-token-0123456789abcdef";

/// A node with the config file's project `shop` (id 1) and the admin token [`ADMIN`], whose
/// object store fails listings when `faults` says so.
async fn harness_with_admin() -> (Harness, Arc<LoseReplies>) {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::default();
    config.storage.data_dir = dir.path().to_owned();
    let token_file = dir.path().join("admin-token");
    std::fs::write(&token_file, format!("{ADMIN}\n")).unwrap();
    config.auth.admin_token_file = Some(token_file);
    config.projects.push(super::shop());
    let store = Store::open(&config).unwrap();
    let faults = Arc::new(LoseReplies::new(Arc::clone(&store.objects), "none/", 0));
    let store = store.with_objects(Arc::clone(&faults) as Arc<dyn object_store::ObjectStore>);
    let node = Arc::new(Node::open_with_store(config, store).await.unwrap());
    (Harness::of(dir, node), faults)
}

impl Harness {
    async fn status_as(&self, token: Option<&str>) -> Reply {
        let mut request = Request::builder().method(Method::GET).uri("/api/0/status/");
        if let Some(token) = token {
            request = request.header("authorization", format!("Bearer {token}"));
        }
        self.send(request.body(Body::empty()).unwrap()).await
    }
}

fn project<'a>(body: &'a Value, slug: &str) -> &'a Value {
    body["projects"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["slug"] == slug)
        .unwrap_or_else(|| panic!("no project {slug} in {body}"))
}

#[tokio::test]
async fn the_admin_token_sees_the_checks_and_every_projects_figures() {
    let (h, _faults) = harness_with_admin().await;
    // a second project, of another organization, without events
    let declared = h
        .send(
            Request::builder()
                .method(Method::PUT)
                .uri("/api/0/organizations/team-a/projects/api/")
                .header("authorization", format!("Bearer {ADMIN}"))
                .header("content-type", "application/json")
                .body(Body::from("{}"))
                .unwrap(),
        )
        .await;
    assert_eq!(declared.status, StatusCode::OK, "{:?}", declared.body);

    let before = h.status_as(Some(ADMIN)).await;
    assert_eq!(before.status, StatusCode::OK, "{:?}", before.body);
    assert_eq!(before.body["objectStore"], serde_json::json!({"ok": true}));
    assert_eq!(before.body["wal"], serde_json::json!({"ok": true}));
    let shop = project(&before.body, "shop");
    assert_eq!(shop["id"], "1");
    assert_eq!(shop["organization"], DEFAULT_ORG);
    assert_eq!(shop["eventsLastHour"], 0);
    assert_eq!(shop["lastEventSeen"], Value::Null);

    for message in ["one", "two", "three"] {
        let reply = h.store(format!(r#"{{"message":"{message}"}}"#)).await;
        assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    }
    // accepted counts reach the outcomes table when the node flushes
    h.node.flush_with_outcomes().await.unwrap();

    let after = h.status_as(Some(ADMIN)).await;
    assert_eq!(after.status, StatusCode::OK, "{:?}", after.body);
    let shop = project(&after.body, "shop");
    assert_eq!(shop["eventsLastHour"], 3, "{}", after.body);
    let seen: chrono::DateTime<chrono::Utc> = shop["lastEventSeen"]
        .as_str()
        .unwrap_or_else(|| panic!("no lastEventSeen in {shop}"))
        .parse()
        .unwrap();
    let checked: chrono::DateTime<chrono::Utc> =
        after.body["checkedAt"].as_str().unwrap().parse().unwrap();
    assert!(seen <= checked, "{seen} after {checked}");
    assert!(checked - seen < chrono::TimeDelta::hours(1), "{seen}");
    let api = project(&after.body, "api");
    assert_eq!(api["organization"], "team-a");
    assert_eq!(api["eventsLastHour"], 0);
    assert_eq!(api["lastEventSeen"], Value::Null);
    assert_eq!(after.body["projects"].as_array().unwrap().len(), 2);
}

#[tokio::test]
async fn an_unreachable_object_store_is_reported_with_the_error() {
    let (h, faults) = harness_with_admin().await;
    faults.fail_delimited_lists(true);
    let reply = h.status_as(Some(ADMIN)).await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    assert_eq!(reply.body["objectStore"]["ok"], false);
    let error = reply.body["objectStore"]["error"].as_str().unwrap();
    assert!(error.contains("connection refused"), "{error}");
    assert_eq!(reply.body["wal"]["ok"], true);
    assert_eq!(
        project(&reply.body, "shop")["id"],
        "1",
        "projects still listed"
    );

    faults.fail_delimited_lists(false);
    let reply = h.status_as(Some(ADMIN)).await;
    assert_eq!(reply.body["objectStore"], serde_json::json!({"ok": true}));
}

#[tokio::test]
async fn tokens_of_one_organization_are_refused() {
    let (h, _faults) = harness_with_admin().await;
    let missing = h.status_as(None).await;
    assert_eq!(missing.status, StatusCode::UNAUTHORIZED);
    let org_admin = h.token(&["project:admin", "org:admin"], None).await;
    let refused = h.status_as(Some(&org_admin)).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{:?}", refused.body);
    assert!(
        refused.body.to_string().contains("admin_token_file"),
        "{:?}",
        refused.body
    );
    let reader = h.token(&["event:read"], None).await;
    let refused = h.status_as(Some(&reader)).await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{:?}", refused.body);
}
