//! `FaultlineProject`s, rungs 1, 2 and 5 (no API server runs here): the DSN Secret and the
//! engine declaration built from a spec; the CRD's CEL rules; and convergence on
//! `kube-fake-client` with two trackers in two platform namespaces and three app namespaces —
//! one allowed, one the tracker does not select, one claiming a project name another
//! namespace of the same organization holds — against `engine_stub` standing in for the
//! engine's admin API.

use std::collections::BTreeMap;
use std::sync::Arc;

use faultline_operator::builders::project::{check, declaration, dsn_secret, resolve_keys};
use faultline_operator::metrics::Metrics;
use faultline_operator::project::{reconcile, winner};
use faultline_operator::{Context, ErrorTracker, FaultlineProject, PROJECT_FINALIZER};
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{Namespace, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, DeleteParams, ObjectMeta};
use kube::runtime::controller::Action;
use kube::{Client, ResourceExt};
use kube_fake_client::ClientBuilder;
use serde_json::{Value, json};

use crate::engine_stub::EngineStub;

const TOKEN: &str = "cccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccccc";

fn project(namespace: &str, name: &str, spec: Value, created: i64) -> FaultlineProject {
    let mut p: FaultlineProject = serde_json::from_value(json!({
        "apiVersion": "faultline.dev/v1alpha1",
        "kind": "FaultlineProject",
        "metadata": {"name": name, "namespace": namespace},
        "spec": spec,
    }))
    .expect("project parses");
    p.metadata.creation_timestamp = Some(Time(Timestamp::from_second(created).unwrap()));
    p.metadata.uid = Some(format!("uid-{namespace}-{name}"));
    p.metadata.generation = Some(1);
    p
}

fn tracker(namespace: &str, spec: Value) -> ErrorTracker {
    let mut t: ErrorTracker = serde_json::from_value(json!({
        "apiVersion": "faultline.dev/v1alpha1",
        "kind": "ErrorTracker",
        "metadata": {"name": "errors", "namespace": namespace, "uid": format!("uid-{namespace}")},
        "spec": spec,
    }))
    .expect("tracker parses");
    t.metadata.generation = Some(1);
    t
}

fn namespace(name: &str, labels: &[(&str, &str)]) -> Namespace {
    Namespace {
        metadata: ObjectMeta {
            name: Some(name.into()),
            labels: Some(
                labels
                    .iter()
                    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                    .collect(),
            ),
            ..ObjectMeta::default()
        },
        ..Namespace::default()
    }
}

/// The admin token Secret the tracker reconciler writes.
fn admin_token(namespace: &str) -> Secret {
    Secret {
        metadata: ObjectMeta {
            name: Some("errors-admin-token".into()),
            namespace: Some(namespace.into()),
            labels: Some(faultline_operator::builders::labels("errors", "admin")),
            ..ObjectMeta::default()
        },
        data: Some(BTreeMap::from([(
            "token".to_owned(),
            ByteString(TOKEN.as_bytes().to_vec()),
        )])),
        ..Secret::default()
    }
}

#[test]
fn the_dsn_secret_and_the_declaration_follow_the_spec() {
    let p = project(
        "shop",
        "checkout",
        json!({"tracker": "platform-a/errors", "platform": "python", "retentionDays": 30,
               "keys": [{"name": "web"}, {"name": "old", "enabled": false}],
               "quotas": [{"categories": ["transaction", "span"], "limit": 1000},
                          {"limit": 0, "windowSeconds": 3600}],
               "privacy": {"scrubIpAddresses": true}}),
        100,
    );
    let t = tracker("platform-a", json!({}));
    // keys are kept from the Secret, generated when missing
    let stored = Secret {
        data: Some(BTreeMap::from([(
            "key-web".to_owned(),
            ByteString("ab".repeat(16).into_bytes()),
        )])),
        ..Secret::default()
    };
    let keys = resolve_keys(&p.spec, Some(&stored));
    assert_eq!(keys[0].public, "ab".repeat(16));
    assert_eq!(keys[1].public.len(), 32);
    assert_ne!(keys[1].public, keys[0].public);
    let keys = vec![
        keys[0].clone(),
        faultline_operator::builders::project::ResolvedKey {
            public: "cd".repeat(16),
            ..keys[1].clone()
        },
    ];
    let secret = dsn_secret(&p, &t, 107, &keys).unwrap();
    let mut shown = serde_json::to_value(&secret).unwrap();
    // the data as text, for a readable snapshot
    let data: BTreeMap<String, String> = secret
        .data
        .unwrap()
        .into_iter()
        .map(|(k, v)| (k, String::from_utf8(v.0).unwrap()))
        .collect();
    shown["data"] = json!(data);
    insta::assert_json_snapshot!("project_dsn_secret", shown);
    insta::assert_json_snapshot!(
        "project_declaration",
        serde_json::to_value(declaration(&p.spec, &keys)).unwrap()
    );
    // without listed keys: one `default` key
    let plain = project("shop", "api", json!({"tracker": "platform-a/errors"}), 100);
    let keys = resolve_keys(&plain.spec, None);
    assert_eq!(
        keys.iter().map(|k| k.name.as_str()).collect::<Vec<_>>(),
        ["default"]
    );
    // without quotas: an empty list, so quotas dropped from the spec go in the engine too
    let declared = serde_json::to_value(declaration(&plain.spec, &keys)).unwrap();
    assert_eq!(declared["quotas"], json!([]));
}

#[test]
fn a_quota_the_engine_would_refuse_is_refused_naming_the_field() {
    let spec = |quotas: Value| {
        project(
            "shop",
            "api",
            json!({"tracker": "platform-a/errors", "quotas": quotas}),
            100,
        )
        .spec
    };
    check(&spec(
        json!([{"categories": ["error", "log_item"], "limit": 5}]),
    ))
    .unwrap();
    let err = check(&spec(json!([
        {"categories": ["span"], "limit": 5},
        {"categories": ["error", "logs"], "limit": 5}
    ])))
    .unwrap_err()
    .to_string();
    assert!(
        err.starts_with("spec.quotas[1].categories[1]: ") && err.contains("\"logs\""),
        "{err}"
    );
    let err = check(&spec(json!([{"limit": 5, "windowSeconds": 0}])))
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("spec.quotas[0].windowSeconds: "), "{err}");
}

#[test]
fn the_crd_rules_refuse_what_would_lose_events() {
    let old = project("shop", "api", json!({"tracker": "platform-a/errors"}), 1);
    let moved = project("shop", "api", json!({"tracker": "platform-b/errors"}), 1);
    let errors = moved.validate_cel_update(&old).unwrap_err();
    assert!(
        format!("{errors:?}").contains("tracker is immutable"),
        "{errors:?}"
    );
    let renamed = project(
        "shop",
        "api",
        json!({"tracker": "platform-a/errors", "project": "web"}),
        1,
    );
    let errors = renamed.validate_cel_update(&old).unwrap_err();
    assert!(
        format!("{errors:?}").contains("project is immutable"),
        "{errors:?}"
    );
    let twice = project(
        "shop",
        "api",
        json!({"tracker": "platform-a/errors", "keys": [{"name": "a"}, {"name": "a"}]}),
        1,
    );
    let errors = twice.validate_cel().unwrap_err();
    assert!(
        format!("{errors:?}").contains("each name must be unique"),
        "{errors:?}"
    );
    let elsewhere = project(
        "shop",
        "api",
        json!({"tracker": "platform-a/errors", "alerts": {"rules": [
            {"name": "all", "projects": ["billing"], "triggers": [{"type": "new_issue"}],
             "channels": ["slack"]}]}}),
        1,
    );
    let errors = elsewhere.validate_cel().unwrap_err();
    assert!(
        format!("{errors:?}").contains("org and projects are this project's"),
        "{errors:?}"
    );
    let fine = project(
        "shop",
        "api",
        json!({"tracker": "platform-a/errors", "retentionDays": 7}),
        1,
    );
    fine.validate_cel_update(&old).unwrap();
    project("shop", "api", alerting_spec(), 1)
        .validate_cel()
        .unwrap();
}

async fn fake(projects: Vec<FaultlineProject>) -> Client {
    let mut builder = ClientBuilder::new()
        .with_resource::<ErrorTracker>()
        .with_resource::<FaultlineProject>()
        .with_status_subresource::<FaultlineProject>()
        .with_object(tracker(
            "platform-a",
            json!({"projectNamespaceSelector": {"matchLabels": {"faultline.dev/tenant": "true"}},
                   "organizationLabel": "team"}),
        ))
        // tracker b serves every namespace, organization = namespace name
        .with_object(tracker(
            "platform-b",
            json!({"projectNamespaceSelector": {}}),
        ))
        .with_object(admin_token("platform-a"))
        .with_object(admin_token("platform-b"));
    for mut p in projects {
        // the fake's JSON patch cannot add a first finalizer (see convergence.rs)
        p.metadata.finalizers = Some(vec!["example.com/other".to_owned()]);
        builder = builder.with_object(p);
    }
    let fake = builder.build().await.expect("fake client");
    let namespaces: Arc<BTreeMap<String, Value>> = Arc::new(
        [
            namespace("platform-a", &[]),
            namespace("platform-b", &[]),
            // allowed by tracker a (tenant label), organization "shop" from its team label
            namespace(
                "shop",
                &[("faultline.dev/tenant", "true"), ("team", "shop")],
            ),
            // same organization as `shop`: its `api` claim clashes
            namespace(
                "shop-batch",
                &[("faultline.dev/tenant", "true"), ("team", "shop")],
            ),
            // not a tenant
            namespace("sandbox", &[("team", "lab")]),
        ]
        .into_iter()
        .map(|n| (n.name_any(), serde_json::to_value(n).unwrap()))
        .collect(),
    );
    // kube-fake-client cannot serve cluster-scoped Namespaces (it reads `/api/v1/namespaces/x`
    // as a namespaced path), so a GET of one is answered here and the rest goes to the fake
    let service = tower::service_fn(move |request: http::Request<kube::client::Body>| {
        let fake = fake.clone();
        let namespaces = Arc::clone(&namespaces);
        async move {
            let path = request.uri().path().to_owned();
            if let Some(name) = path
                .strip_prefix("/api/v1/namespaces/")
                .filter(|n| !n.contains('/'))
            {
                let (code, body) = match namespaces.get(name) {
                    Some(found) => (200, found.clone()),
                    None => (
                        404,
                        json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                               "reason": "NotFound", "code": 404, "message": "not found"}),
                    ),
                };
                let response = http::Response::builder()
                    .status(code)
                    .header("content-type", "application/json")
                    .body(kube::client::Body::from(serde_json::to_vec(&body).unwrap()))
                    .unwrap();
                return Ok::<_, kube::Error>(response);
            }
            fake.send(request).await
        }
    });
    Client::new(service, "default")
}

async fn get(client: &Client, ns: &str, name: &str) -> Arc<FaultlineProject> {
    Arc::new(
        Api::<FaultlineProject>::namespaced(client.clone(), ns)
            .get(name)
            .await
            .unwrap(),
    )
}

/// Reconciles until the finalizer is on and one full pass ran; returns the action.
async fn converge(client: &Client, ctx: &Arc<Context>, ns: &str, name: &str) -> Action {
    for _ in 0..3 {
        let current = get(client, ns, name).await;
        let action = reconcile(current, Arc::clone(ctx)).await;
        match action {
            Ok(action) if action != Action::await_change() => return action,
            Ok(_) => {}
            Err(err) => panic!("{ns}/{name}: {err}"),
        }
    }
    panic!("{ns}/{name}: no fixed point after 3 reconciles");
}

fn ready(p: &FaultlineProject) -> (String, String, String) {
    let c = p
        .status
        .as_ref()
        .and_then(|s| s.conditions.iter().find(|c| c.type_ == "Ready"))
        .expect("a Ready condition");
    (c.status.clone(), c.reason.clone(), c.message.clone())
}

async fn secret(client: &Client, ns: &str, name: &str) -> Option<BTreeMap<String, String>> {
    let found = Api::<Secret>::namespaced(client.clone(), ns)
        .get_opt(name)
        .await
        .unwrap()?;
    Some(
        found
            .data
            .unwrap_or_default()
            .into_iter()
            .map(|(k, v)| (k, String::from_utf8(v.0).unwrap()))
            .collect(),
    )
}

#[tokio::test]
async fn projects_of_two_trackers_converge_and_refusals_say_why() {
    let client = fake(vec![
        project("shop", "api", json!({"tracker": "platform-a/errors"}), 100),
        project(
            "shop-batch",
            "api-copy",
            json!({"tracker": "platform-a/errors", "project": "api"}),
            200,
        ),
        project(
            "sandbox",
            "exp",
            json!({"tracker": "platform-a/errors"}),
            100,
        ),
        project("shop", "lost", json!({"tracker": "platform-a/nope"}), 100),
        project(
            "sandbox",
            "other",
            json!({"tracker": "platform-b/errors"}),
            100,
        ),
        project(
            "shop",
            "spans",
            json!({"tracker": "platform-a/errors",
                   "quotas": [{"categories": ["spans"], "limit": 10}]}),
            100,
        ),
    ])
    .await;
    let (engine, url) = EngineStub::start(TOKEN).await;
    let mut ctx = Context::new(client.clone(), Arc::new(Metrics::default()));
    ctx.admin_url = Some(url);
    let ctx = Arc::new(ctx);

    let cases = [
        ("shop", "api", "True", "Registered", "is registered"),
        (
            "shop-batch",
            "api-copy",
            "False",
            "NameConflict",
            "already claimed by FaultlineProject shop/api",
        ),
        (
            "sandbox",
            "exp",
            "False",
            "NamespaceNotAllowed",
            "namespace \"sandbox\" is not selected",
        ),
        (
            "shop",
            "lost",
            "False",
            "TrackerNotFound",
            "ErrorTracker platform-a/nope does not exist",
        ),
        (
            "sandbox",
            "other",
            "True",
            "Registered",
            "organization \"sandbox\"",
        ),
        (
            "shop",
            "spans",
            "False",
            "InvalidSpec",
            "spec.quotas[0].categories[0]: \"spans\" is not a data category",
        ),
    ];
    for (ns, name, status, reason, words) in cases {
        let action = converge(&client, &ctx, ns, name).await;
        let p = get(&client, ns, name).await;
        let (s, r, m) = ready(&p);
        assert_eq!(
            (s.as_str(), r.as_str()),
            (status, reason),
            "{ns}/{name}: {m}"
        );
        assert!(m.contains(words), "{ns}/{name}: {m}");
        assert_eq!(
            p.status.as_ref().unwrap().observed_generation,
            p.metadata.generation,
            "{ns}/{name}"
        );
        assert!(p.finalizers().iter().any(|f| f == PROJECT_FINALIZER));
        let dsn = secret(&client, ns, &format!("{name}-dsn")).await;
        if status == "True" {
            assert_eq!(
                action,
                Action::requeue(faultline_operator::project::REGISTERED_RETRY)
            );
            let dsn = dsn.unwrap_or_else(|| panic!("{ns}/{name} has its DSN Secret"));
            let id = p.status.as_ref().unwrap().project_id.unwrap();
            assert!(
                dsn["dsn"].ends_with(&format!(
                    "@errors.{}.svc:8000/{id}",
                    if ns == "shop" {
                        "platform-a"
                    } else {
                        "platform-b"
                    }
                )),
                "{dsn:?}"
            );
            assert_eq!(dsn["key"], dsn["key-default"]);
        } else {
            assert_eq!(
                action,
                Action::requeue(faultline_operator::project::REFUSED_RETRY)
            );
            assert!(
                dsn.is_none(),
                "{ns}/{name}: no DSN Secret for a refused project"
            );
        }
    }
    // the engine knows exactly the two admitted projects, each in its organization
    let registered: Vec<(String, String)> = engine.projects().into_keys().collect();
    assert_eq!(
        registered,
        [
            ("sandbox".to_owned(), "other".to_owned()),
            ("shop".to_owned(), "api".to_owned())
        ]
    );

    // a second pass changes nothing: same key, same status
    let before = secret(&client, "shop", "api-dsn").await;
    let status_before = get(&client, "shop", "api").await.status.clone();
    converge(&client, &ctx, "shop", "api").await;
    assert_eq!(secret(&client, "shop", "api-dsn").await, before);
    let status_after = get(&client, "shop", "api").await.status.clone();
    assert_eq!(
        status_after.as_ref().map(|s| &s.conditions),
        status_before.as_ref().map(|s| &s.conditions)
    );
    let key = &before.as_ref().unwrap()["key"];
    let declared = &engine.projects()[&("shop".to_owned(), "api".to_owned())].1;
    assert_eq!(&declared["keys"][0]["public"], key);
    assert_eq!(declared["quotas"], json!([]), "no quotas, declared as none");

    // the tracker's reconciler put the engine's figures in the tracker's status; a project
    // takes its own (same organization and name), nothing of a namesake elsewhere
    let trackers = Api::<ErrorTracker>::namespaced(client.clone(), "platform-a");
    let mut shared = trackers.get("errors").await.unwrap();
    shared.status = Some(
        serde_json::from_value(json!({"projects": [
            {"name": "api", "organization": "lab", "eventsLastHour": 99},
            {"name": "api", "organization": "shop", "eventsLastHour": 5,
             "lastEventSeen": "2026-12-05T17:00:00Z"}
        ]}))
        .unwrap(),
    );
    trackers
        .replace("errors", &Default::default(), &shared)
        .await
        .unwrap();
    converge(&client, &ctx, "shop", "api").await;
    let figures = get(&client, "shop", "api").await.status.clone().unwrap();
    assert_eq!(figures.events_last_hour, Some(5));
    assert_eq!(
        figures.last_event_seen.map(|t| t.0.to_string()),
        Some("2026-12-05T17:00:00Z".to_owned())
    );
    let other = get(&client, "sandbox", "other")
        .await
        .status
        .clone()
        .unwrap();
    assert_eq!(other.events_last_hour, None, "tracker b reported nothing");

    // the winner is deleted: its keys go, and the other claim takes the name over.
    // kube-fake-client deletes at once whatever the finalizers, so the reconcile sees the
    // deletion timestamp the API server would have set, then the object goes.
    let mut deleting = (*get(&client, "shop", "api").await).clone();
    deleting.metadata.deletion_timestamp = Some(Time(Timestamp::now()));
    reconcile(Arc::new(deleting), Arc::clone(&ctx))
        .await
        .unwrap();
    let declared = &engine.projects()[&("shop".to_owned(), "api".to_owned())].1;
    assert_eq!(declared["keys"], json!([]), "the keys were removed");
    assert!(
        engine
            .requests()
            .contains(&"DELETE /api/0/organizations/shop/projects/api/".to_owned())
    );
    let left = get(&client, "shop", "api").await;
    assert!(
        !left.finalizers().iter().any(|f| f == PROJECT_FINALIZER),
        "the operator let go"
    );
    Api::<FaultlineProject>::namespaced(client.clone(), "shop")
        .delete("api", &DeleteParams::default())
        .await
        .unwrap();
    converge(&client, &ctx, "shop-batch", "api-copy").await;
    let p = get(&client, "shop-batch", "api-copy").await;
    assert_eq!(ready(&p).1, "Registered", "{:?}", ready(&p));
    let first_id = engine.projects()[&("shop".to_owned(), "api".to_owned())].0;
    assert_eq!(
        p.status.as_ref().unwrap().project_id,
        Some(first_id),
        "the same project of the organization"
    );
    assert!(
        secret(&client, "shop-batch", "api-copy-dsn")
            .await
            .is_some()
    );
}

#[test]
fn the_oldest_claim_wins_whatever_the_order() {
    let a = project("x", "a", json!({"tracker": "p/t"}), 300);
    let b = project("y", "b", json!({"tracker": "p/t"}), 100);
    assert_eq!(winner(&[&a, &b]).unwrap().name_any(), "b");
    assert_eq!(winner(&[&b, &a]).unwrap().name_any(), "b");
}

fn alerting_spec() -> Value {
    json!({"tracker": "platform-a/errors", "alerts": {
        "channels": [{"name": "slack", "kind": "slack",
                      "urlSecretRef": {"name": "alerting", "key": "slack-url"}}],
        "rules": [{"name": "new-issues", "triggers": [{"type": "new_issue"}],
                   "channels": ["slack"]},
                  {"name": "bursts", "triggers": [{"type": "frequency", "count": 100, "window": "5m"}],
                   "channels": ["slack"], "levels": ["error"]}]
    }})
}

#[tokio::test]
async fn a_projects_alerts_are_declared_under_its_namespace_once_and_removed_with_it() {
    let client = fake(vec![project("shop", "api", alerting_spec(), 100)]).await;
    let (engine, url) = EngineStub::start(TOKEN).await;
    let mut ctx = Context::new(client.clone(), Arc::new(Metrics::default()));
    ctx.admin_url = Some(url);
    let ctx = Arc::new(ctx);

    // the Secret is not there yet: refused, naming it, and nothing is declared
    converge(&client, &ctx, "shop", "api").await;
    let (status, reason, message) = ready(&*get(&client, "shop", "api").await);
    assert_eq!(
        (status.as_str(), reason.as_str()),
        ("False", "SecretMissing")
    );
    assert!(
        message.contains("Secret \"alerting\"") && message.contains("\"shop\""),
        "{message}"
    );
    assert!(engine.requests().is_empty(), "{:?}", engine.requests());

    let secrets = Api::<Secret>::namespaced(client.clone(), "shop");
    let mut alerting = Secret {
        metadata: ObjectMeta {
            name: Some("alerting".into()),
            namespace: Some("shop".into()),
            ..ObjectMeta::default()
        },
        data: Some(BTreeMap::from([(
            "other".to_owned(),
            ByteString(b"x".to_vec()),
        )])),
        ..Secret::default()
    };
    secrets
        .create(&Default::default(), &alerting)
        .await
        .unwrap();
    converge(&client, &ctx, "shop", "api").await;
    let (_, reason, message) = ready(&*get(&client, "shop", "api").await);
    assert_eq!(reason, "SecretMissing");
    assert!(message.contains("has no key \"slack-url\""), "{message}");

    alerting.data = Some(BTreeMap::from([(
        "slack-url".to_owned(),
        ByteString(b"https://hooks.slack.com/services/T0/B0/x\n".to_vec()),
    )]));
    alerting.metadata.resource_version = None;
    secrets
        .replace("alerting", &Default::default(), &alerting)
        .await
        .unwrap();
    converge(&client, &ctx, "shop", "api").await;
    let p = get(&client, "shop", "api").await;
    assert_eq!(ready(&p).1, "Registered", "{:?}", ready(&p));
    let declared = engine.alerts();
    let key = |c: &str, n: &str| (c.to_owned(), "shop".to_owned(), n.to_owned());
    let channel = &declared[&key("alert-channels", "shop.slack")];
    assert_eq!(channel["kind"], "slack");
    assert_eq!(
        channel["url_secret"], "https://hooks.slack.com/services/T0/B0/x",
        "the Secret's value, typed in"
    );
    let rule = &declared[&key("alert-rules", "shop.bursts")];
    assert_eq!(rule["org"], "shop");
    assert_eq!(rule["projects"], json!(["api"]), "the project only");
    assert_eq!(rule["channels"], json!(["shop.slack"]));
    assert_eq!(rule["triggers"][0]["count"], 100);
    assert_eq!(declared.len(), 3);
    let status = p.status.clone().unwrap();
    assert_eq!(status.alert_channels, ["shop.slack"]);
    assert_eq!(status.alert_rules, ["shop.new-issues", "shop.bursts"]);

    // the same spec again: nothing is sent
    let before = engine.requests().len();
    converge(&client, &ctx, "shop", "api").await;
    assert_eq!(
        engine.requests()[before..],
        ["PUT /api/0/organizations/shop/projects/api/"]
    );

    // a rule dropped from the spec is deleted, the rest replaced in place
    let api = Api::<FaultlineProject>::namespaced(client.clone(), "shop");
    let mut edited = (*get(&client, "shop", "api").await).clone();
    edited.spec.alerts.as_mut().unwrap().rules.pop();
    api.replace("api", &Default::default(), &edited)
        .await
        .unwrap();
    let before = engine.requests().len();
    converge(&client, &ctx, "shop", "api").await;
    assert_eq!(
        engine.requests()[before..],
        [
            "PUT /api/0/organizations/shop/projects/api/",
            "PUT /api/0/organizations/shop/alert-channels/shop.slack/",
            "PUT /api/0/organizations/shop/alert-rules/shop.new-issues/",
            "DELETE /api/0/organizations/shop/alert-rules/shop.bursts/",
        ]
    );

    // deleting the resource removes its rules, then its channels
    let mut deleting = (*get(&client, "shop", "api").await).clone();
    deleting.metadata.deletion_timestamp = Some(Time(Timestamp::now()));
    reconcile(Arc::new(deleting), Arc::clone(&ctx))
        .await
        .unwrap();
    assert!(engine.alerts().is_empty(), "{:?}", engine.alerts());
}
