//! Rung 5: convergence. `reconcile` runs against `kube-fake-client` (an in-memory API with
//! resourceVersions, server-side apply field ownership, label selectors and status
//! subresources) until it reaches a fixed point: applying twice changes nothing, objects the
//! spec drops are deleted, a resourceVersion conflict requeues and the next run converges, and
//! every condition carries the generation it describes. No API server runs here.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use faultline_operator::metrics::Metrics;
use faultline_operator::tracker::{error_policy, reconcile};
use faultline_operator::{Context, ErrorTracker};
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{ConfigMap, Secret, Service, ServiceAccount};
use k8s_openapi::api::networking::v1::{Ingress, NetworkPolicy};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::{Client, Resource};
use kube_fake_client::{ClientBuilder, interceptor};
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

use crate::common::tracker;

async fn fake(tracker: ErrorTracker, interceptors: Option<interceptor::Funcs>) -> Client {
    let mut tracker = tracker;
    tracker.metadata.uid = None; // the fake API assigns one
    // The fake's JSON patch, unlike the API server's, fails a `test` of a missing field
    // against null, which is how kube adds a first finalizer. Another controller's finalizer
    // is already there, so ours is appended after it (and must not replace it).
    tracker.metadata.finalizers = Some(vec!["example.com/other".to_owned()]);
    let mut builder = ClientBuilder::new()
        .with_resource::<ErrorTracker>()
        .with_status_subresource::<ErrorTracker>()
        .with_status_subresource::<StatefulSet>()
        .with_object(tracker);
    if let Some(funcs) = interceptors {
        builder = builder.with_interceptor_funcs(funcs);
    }
    builder.build().await.expect("fake client")
}

fn context(client: &Client) -> Arc<Context> {
    Arc::new(Context::new(client.clone(), Arc::new(Metrics::default())))
}

async fn current(client: &Client, ns: &str) -> Arc<ErrorTracker> {
    Arc::new(
        Api::<ErrorTracker>::namespaced(client.clone(), ns)
            .get("errors")
            .await
            .unwrap(),
    )
}

/// Reconciles until the tracker has its finalizer and one full apply ran.
async fn converge(client: &Client, ctx: &Arc<Context>, ns: &str) -> Action {
    for _ in 0..3 {
        let action = reconcile(current(client, ns).await, Arc::clone(ctx))
            .await
            .expect("reconcile");
        if action != Action::await_change() {
            return action;
        }
    }
    panic!("no fixed point after 3 reconciles");
}

/// Every object the operator manages, with the fields the server owns stripped.
async fn state(client: &Client, ns: &str) -> Vec<Value> {
    async fn kind<K>(client: &Client, ns: &str, out: &mut Vec<Value>)
    where
        K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
            + Clone
            + DeserializeOwned
            + serde::Serialize
            + std::fmt::Debug,
    {
        let api: Api<K> = Api::namespaced(client.clone(), ns);
        let mut items = api.list(&ListParams::default()).await.unwrap().items;
        items.sort_by_key(|o| o.meta().name.clone());
        for object in items {
            let mut value = serde_json::to_value(&object).unwrap();
            let meta = value["metadata"].as_object_mut().unwrap();
            for server_owned in [
                "resourceVersion",
                "managedFields",
                "creationTimestamp",
                "generation",
                "uid",
            ] {
                meta.remove(server_owned);
            }
            out.push(value);
        }
    }
    let mut out = Vec::new();
    kind::<ServiceAccount>(client, ns, &mut out).await;
    kind::<ConfigMap>(client, ns, &mut out).await;
    kind::<Secret>(client, ns, &mut out).await;
    kind::<Service>(client, ns, &mut out).await;
    kind::<StatefulSet>(client, ns, &mut out).await;
    kind::<PodDisruptionBudget>(client, ns, &mut out).await;
    kind::<NetworkPolicy>(client, ns, &mut out).await;
    kind::<Ingress>(client, ns, &mut out).await;
    out
}

fn names(state: &[Value]) -> Vec<String> {
    state
        .iter()
        .map(|v| {
            format!(
                "{}/{}",
                v["kind"].as_str().unwrap(),
                v["metadata"]["name"].as_str().unwrap()
            )
        })
        .collect()
}

#[tokio::test]
async fn applying_twice_changes_nothing() {
    let client = fake(tracker("s3-ha.yaml"), None).await;
    let ctx = context(&client);
    converge(&client, &ctx, "team-a").await;
    let first = state(&client, "team-a").await;
    assert_eq!(
        names(&first),
        [
            "ServiceAccount/errors",
            "ConfigMap/errors-config",
            "Secret/errors-admin-token",
            "Secret/errors-dsn-api",
            "Secret/errors-dsn-shop",
            "Service/errors",
            "Service/errors-admin",
            "Service/errors-pods",
            "StatefulSet/errors",
            "PodDisruptionBudget/errors",
            "NetworkPolicy/errors",
            "Ingress/errors",
        ]
    );
    let finalizers = current(&client, "team-a").await.metadata.finalizers.clone();
    assert_eq!(
        finalizers.unwrap(),
        ["example.com/other", faultline_operator::FINALIZER]
    );
    let status_before = current(&client, "team-a").await.status.clone().unwrap();
    converge(&client, &ctx, "team-a").await;
    let second = state(&client, "team-a").await;
    assert_eq!(first, second, "a second reconcile changed the cluster");
    let status_after = current(&client, "team-a").await.status.clone().unwrap();
    assert_eq!(
        status_before, status_after,
        "a second reconcile changed the status (transition times included)"
    );
}

#[tokio::test]
async fn objects_the_spec_drops_are_removed() {
    let client = fake(tracker("s3-ha.yaml"), None).await;
    let ctx = context(&client);
    converge(&client, &ctx, "team-a").await;
    let key_before = secret_key(&client, "errors-dsn-shop").await;

    let api: Api<ErrorTracker> = Api::namespaced(client.clone(), "team-a");
    let mut edited = (*current(&client, "team-a").await).clone();
    edited.spec.projects.retain(|p| p.name == "shop");
    edited.spec.ingress = None;
    edited.spec.network_policy.enabled = false;
    api.replace("errors", &Default::default(), &edited)
        .await
        .unwrap();
    converge(&client, &ctx, "team-a").await;

    let after = names(&state(&client, "team-a").await);
    for gone in [
        "Secret/errors-dsn-api",
        "Ingress/errors",
        "NetworkPolicy/errors",
    ] {
        assert!(
            !after.contains(&gone.to_owned()),
            "{gone} still there: {after:?}"
        );
    }
    assert!(after.contains(&"Secret/errors-dsn-shop".to_owned()));
    assert_eq!(
        secret_key(&client, "errors-dsn-shop").await,
        key_before,
        "the kept project's DSN did not change"
    );
    let status = current(&client, "team-a").await.status.clone().unwrap();
    let projects: Vec<_> = status
        .dsn_secrets
        .iter()
        .map(|s| (s.project.as_str(), s.secret_name.as_str()))
        .collect();
    assert_eq!(projects, [("shop", "errors-dsn-shop")]);
}

async fn secret_key(client: &Client, name: &str) -> String {
    let secret = Api::<Secret>::namespaced(client.clone(), "team-a")
        .get(name)
        .await
        .unwrap();
    String::from_utf8(secret.data.unwrap()["key"].0.clone()).unwrap()
}

#[tokio::test]
async fn a_conflict_requeues_and_the_next_run_converges() {
    let conflicts = Arc::new(AtomicUsize::new(0));
    let seen = Arc::clone(&conflicts);
    let funcs = interceptor::Funcs::new().patch(move |ctx| {
        if ctx.name == "errors-config" && seen.fetch_add(1, Ordering::SeqCst) == 0 {
            return Err(kube_fake_client::Error::Conflict(
                "the object has been modified; please apply your changes to the latest version"
                    .into(),
            ));
        }
        Ok(None)
    });
    let client = fake(tracker("minimal.yaml"), Some(funcs)).await;
    let ctx = context(&client);
    // first run adds the finalizer, second hits the conflict
    reconcile(current(&client, "default").await, Arc::clone(&ctx))
        .await
        .unwrap();
    let tracker = current(&client, "default").await;
    let err = reconcile(Arc::clone(&tracker), Arc::clone(&ctx))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("ConfigMap errors-config"), "{err}");
    assert_eq!(
        error_policy(tracker, &err, Arc::clone(&ctx)),
        Action::requeue(Duration::from_secs(5))
    );
    assert!(
        ctx.metrics
            .encode()
            .contains("reconcile_errors_total{error=\"apply\"} 1")
    );
    let degraded = current(&client, "default").await.status.clone().unwrap();
    assert!(
        degraded
            .conditions
            .iter()
            .any(|c| c.type_ == "Degraded" && c.status == "True")
    );

    converge(&client, &ctx, "default").await;
    assert!(
        Api::<ConfigMap>::namespaced(client.clone(), "default")
            .get("errors-config")
            .await
            .is_ok()
    );
    let status = current(&client, "default").await.status.clone().unwrap();
    assert!(
        status
            .conditions
            .iter()
            .any(|c| c.type_ == "Degraded" && c.status == "False")
    );
}

#[tokio::test]
async fn conditions_carry_the_observed_generation() {
    let client = fake(tracker("minimal.yaml"), None).await;
    let ctx = context(&client);
    converge(&client, &ctx, "default").await;
    let api: Api<ErrorTracker> = Api::namespaced(client.clone(), "default");
    let tracker = current(&client, "default").await;
    let generation = tracker.metadata.generation.unwrap();
    let status = tracker.status.clone().unwrap();
    assert_eq!(status.observed_generation, Some(generation));
    assert!(
        status
            .conditions
            .iter()
            .all(|c| c.observed_generation == Some(generation))
    );
    let ready = status
        .conditions
        .iter()
        .find(|c| c.type_ == "Ready")
        .unwrap();
    assert_eq!(ready.status, "False", "no pod is ready yet");

    // The StatefulSet controller reports the pod ready; the tracker becomes Ready.
    let sts: Api<StatefulSet> = Api::namespaced(client.clone(), "default");
    let sts_generation = sts.get("errors").await.unwrap().metadata.generation;
    let pod_ready = json!({"status": {"replicas": 1, "readyReplicas": 1, "updatedReplicas": 1, "observedGeneration": sts_generation}});
    sts.patch_status("errors", &PatchParams::default(), &Patch::Merge(&pod_ready))
        .await
        .unwrap();
    assert_eq!(
        converge(&client, &ctx, "default").await,
        Action::requeue(Duration::from_secs(300))
    );
    let status = current(&client, "default").await.status.clone().unwrap();
    let ready = status
        .conditions
        .iter()
        .find(|c| c.type_ == "Ready")
        .unwrap();
    assert_eq!((ready.status.as_str(), status.ready_replicas), ("True", 1));

    // A spec edit bumps the generation; the conditions follow it.
    let mut edited = (*current(&client, "default").await).clone();
    edited.spec.retention.default_days = 7;
    let edited = api
        .replace("errors", &Default::default(), &edited)
        .await
        .unwrap();
    let new_generation = edited.metadata.generation.unwrap();
    assert!(
        new_generation > generation,
        "the fake API bumps the generation on a spec change"
    );
    converge(&client, &ctx, "default").await;
    let status = current(&client, "default").await.status.clone().unwrap();
    assert!(
        status
            .conditions
            .iter()
            .all(|c| c.observed_generation == Some(new_generation)),
        "{status:?}"
    );
}
