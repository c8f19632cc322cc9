//! `spec.auth`: people's login settings and single sign-on. Rung 1 (the built config, the
//! mounted client secret, the annotation that rolls the pods, the refusals naming the field),
//! rung 2 (the CEL rules on the issuer and on password login) and rung 5 (on
//! `kube-fake-client`: a missing Secret or key marks the tracker Degraded with a message naming
//! it and applies nothing; the Secret's arrival and every change of it roll the pods).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use faultline_config::Config;
use faultline_operator::builders::{
    self, CONFIG_FILE, Credentials, Desired, OIDC_SECRET_DIR, OIDC_SECRET_FILE,
    OIDC_SECRET_VERSION_ANNOTATION, parse_duration,
};
use faultline_operator::crd::OidcSpec;
use faultline_operator::metrics::Metrics;
use faultline_operator::tracker::{error_policy, reconcile, trackers_naming};
use faultline_operator::{Context, ErrorTracker};
use k8s_openapi::ByteString;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{ConfigMap, PodSpec, Secret};
use kube::api::{Api, ObjectMeta, PostParams};
use kube::core::cel::ErrorKind;
use kube::runtime::controller::Action;
use kube::{Client, ResourceExt};
use kube_fake_client::ClientBuilder;

use crate::common::{credentials, tracker};

fn build_with(tracker: &ErrorTracker, version: Option<&str>) -> builders::Result<Desired> {
    let mut credentials = credentials(tracker);
    credentials.oidc_secret_version = version.map(str::to_owned);
    builders::build(tracker, &credentials)
}

fn engine_config(desired: &Desired) -> Config {
    let text = &desired.config_map.data.as_ref().unwrap()[CONFIG_FILE];
    Config::parse(text).unwrap_or_else(|e| panic!("{e}\n{text}"))
}

fn pod(sts: &StatefulSet) -> &PodSpec {
    sts.spec.as_ref().unwrap().template.spec.as_ref().unwrap()
}

fn annotations(sts: &StatefulSet) -> BTreeMap<String, String> {
    let template = &sts.spec.as_ref().unwrap().template;
    template
        .metadata
        .as_ref()
        .unwrap()
        .annotations
        .clone()
        .unwrap()
}

/// The error of building `tracker`, as the user reads it in the `Degraded` condition.
fn refusal(tracker: &ErrorTracker) -> String {
    match build_with(tracker, None) {
        Ok(_) => panic!(
            "built a tracker that should be refused: {:?}",
            tracker.spec.auth
        ),
        Err(err) => err.to_string(),
    }
}

#[test]
fn auth_settings_reach_the_engine_config() {
    let desired = build_with(&tracker("oidc.yaml"), Some("7")).unwrap();
    let auth = engine_config(&desired).auth;
    assert_eq!(auth.session_idle_timeout, Duration::from_secs(30 * 60));
    assert_eq!(
        auth.session_absolute_timeout,
        Duration::from_secs(7 * 86_400)
    );
    assert_eq!(auth.invite_ttl, Duration::from_secs(2 * 86_400));
    assert_eq!(auth.setup_link_ttl, Duration::from_secs(3_600));
    assert_eq!(auth.login_max_failures, 5);
    assert_eq!(auth.login_failure_window, Duration::from_secs(600));
    assert!(!auth.password_login);
    assert!(auth.require_mfa);
    let oidc = auth.oidc.expect("[auth.oidc] is rendered");
    assert_eq!(oidc.issuer, "https://login.example.com/realms/main");
    assert_eq!(oidc.client_id, "faultline");
    assert_eq!(
        oidc.client_secret_file.as_deref(),
        Some(std::path::Path::new("/etc/faultline-oidc/client-secret"))
    );
    assert_eq!(oidc.name, "Example SSO");
    assert_eq!(oidc.scopes, ["email", "profile", "groups"]);
    assert!(oidc.auto_provision);
    assert_eq!(oidc.default_role, "member");
    assert_eq!(oidc.default_team.as_deref(), Some("backend"));
    // the admin token stays where it was
    assert_eq!(
        auth.admin_token_file.as_deref(),
        Some(std::path::Path::new("/etc/faultline-admin/token"))
    );
}

#[test]
fn unset_auth_fields_keep_the_engine_defaults() {
    // no spec.auth at all: nothing of [auth] but the admin token is written
    let desired = build_with(&tracker("minimal.yaml"), None).unwrap();
    let text = &desired.config_map.data.as_ref().unwrap()[CONFIG_FILE];
    assert!(
        !text.contains("session_") && !text.contains("oidc"),
        "{text}"
    );
    let auth = engine_config(&desired).auth;
    let expected = faultline_config::AuthConfig {
        admin_token_file: auth.admin_token_file.clone(),
        ..faultline_config::AuthConfig::default()
    };
    assert_eq!(auth, expected);

    // an OIDC provider with only issuer and client id: the engine's defaults for the rest, a
    // public client without a secret file or a mount
    let mut t = tracker("minimal.yaml");
    t.spec.auth.session_idle_timeout = Some("1h".into());
    t.spec.auth.oidc = Some(OidcSpec {
        issuer: "http://localhost:5556/dex".into(),
        client_id: "faultline".into(),
        client_secret_ref: None,
        name: None,
        scopes: None,
        auto_provision: false,
        default_role: None,
        default_team: None,
    });
    let desired = build_with(&t, None).unwrap();
    let auth = engine_config(&desired).auth;
    assert_eq!(auth.session_idle_timeout, Duration::from_secs(3_600));
    assert_eq!(
        auth.session_absolute_timeout,
        faultline_config::AuthConfig::default().session_absolute_timeout
    );
    let oidc = auth.oidc.unwrap();
    assert_eq!(oidc.client_secret_file, None);
    assert_eq!(
        (oidc.name.as_str(), oidc.default_role.as_str()),
        ("single sign-on", "member")
    );
    assert_eq!(oidc.scopes, ["email", "profile"]);
    let pod = pod(&desired.stateful_set);
    assert!(
        pod.volumes
            .as_ref()
            .unwrap()
            .iter()
            .all(|v| v.name != "oidc-client-secret")
    );
    assert!(!annotations(&desired.stateful_set).contains_key(OIDC_SECRET_VERSION_ANNOTATION));
}

#[test]
fn the_client_secret_is_mounted_read_only_and_never_in_the_config_map() {
    let desired = build_with(&tracker("oidc.yaml"), Some("7")).unwrap();
    let pod = pod(&desired.stateful_set);
    let volume = pod
        .volumes
        .as_ref()
        .unwrap()
        .iter()
        .find(|v| v.name == "oidc-client-secret")
        .expect("a volume for the client secret");
    let secret = volume.secret.as_ref().unwrap();
    assert_eq!(secret.secret_name.as_deref(), Some("faultline-oidc"));
    assert_eq!(secret.optional, Some(false));
    let items = secret.items.as_ref().unwrap();
    assert_eq!(items.len(), 1, "only the referenced key is projected");
    assert_eq!(
        (items[0].key.as_str(), items[0].path.as_str()),
        ("client-secret", OIDC_SECRET_FILE)
    );
    let mount = pod.containers[0]
        .volume_mounts
        .as_ref()
        .unwrap()
        .iter()
        .find(|m| m.name == "oidc-client-secret")
        .unwrap();
    assert_eq!(
        (mount.mount_path.as_str(), mount.read_only),
        (OIDC_SECRET_DIR, Some(true))
    );
    let text = &desired.config_map.data.as_ref().unwrap()[CONFIG_FILE];
    assert!(
        text.contains(&format!(
            "client_secret_file = \"{OIDC_SECRET_DIR}/{OIDC_SECRET_FILE}\""
        )),
        "{text}"
    );
    assert!(
        !text.contains("faultline-oidc\""),
        "the Secret is referenced by the pod, not by the config: {text}"
    );
}

#[test]
fn a_changed_client_secret_rolls_the_pods() {
    let t = tracker("oidc.yaml");
    let first = build_with(&t, Some("100")).unwrap().stateful_set;
    let same = build_with(&t, Some("100")).unwrap().stateful_set;
    let changed = build_with(&t, Some("101")).unwrap().stateful_set;
    assert_eq!(annotations(&first)[OIDC_SECRET_VERSION_ANNOTATION], "100");
    assert_eq!(first.spec, same.spec);
    assert_ne!(
        first.spec.as_ref().unwrap().template,
        changed.spec.as_ref().unwrap().template
    );
    // a spec change of the login settings changes the config checksum
    let mut edited = t.clone();
    edited.spec.auth.require_mfa = false;
    let edited = build_with(&edited, Some("100")).unwrap().stateful_set;
    assert_ne!(
        annotations(&first)[builders::CONFIG_CHECKSUM_ANNOTATION],
        annotations(&edited)[builders::CONFIG_CHECKSUM_ANNOTATION]
    );
}

#[test]
fn issuers_must_be_https_or_local_http() {
    let with_issuer = |issuer: &str| {
        let mut t = tracker("oidc.yaml");
        t.spec.auth.oidc.as_mut().unwrap().issuer = issuer.to_owned();
        t
    };
    for good in [
        "https://login.example.com",
        "https://login.example.com/realms/main",
        "http://localhost:5556/dex",
        "http://127.0.0.1:8080",
        "http://localhost",
    ] {
        assert!(build_with(&with_issuer(good), None).is_ok(), "{good}");
    }
    for bad in [
        "http://login.example.com",
        "http://localhost.example.com",
        "http://127.0.0.1.example.com/",
        "http://localhost:port",
        "https://",
        "ftp://login.example.com",
        "https://login.example.com/ x",
    ] {
        let message = refusal(&with_issuer(bad));
        assert!(
            message.starts_with("spec.auth.oidc.issuer: ")
                && message
                    .contains("must be an https:// URL (http:// only for localhost or 127.0.0.1)"),
            "{bad}: {message}"
        );
    }
}

#[test]
fn bad_durations_and_limits_are_refused_naming_the_field() {
    let mut t = tracker("oidc.yaml");
    t.spec.auth.session_idle_timeout = Some("0m".into());
    assert_eq!(
        refusal(&t),
        "spec.auth.sessionIdleTimeout: \"0m\" must be longer than zero"
    );
    let mut t = tracker("oidc.yaml");
    t.spec.auth.login_failure_window = Some("15 minutes".into());
    assert_eq!(
        refusal(&t),
        "spec.auth.loginFailureWindow: \"15 minutes\" is not a duration such as 30m, 12h, 14d or 1h30m"
    );
    let mut t = tracker("oidc.yaml");
    t.spec.auth.login_max_failures = Some(0);
    assert_eq!(
        refusal(&t),
        "spec.auth.loginMaxFailures: must be at least 1"
    );
    let mut t = tracker("minimal.yaml");
    t.spec.auth.password_login = false;
    assert_eq!(
        refusal(&t),
        "spec.auth.passwordLogin: false needs auth.oidc, or nobody can log in"
    );
}

#[test]
fn durations_parse_as_the_schema_pattern_allows() {
    let secs = |text: &str| parse_duration(text).map(|d| d.as_secs());
    assert_eq!(secs("90s"), Ok(90));
    assert_eq!(secs("1h30m"), Ok(5_400));
    assert_eq!(secs("14d"), Ok(14 * 86_400));
    assert_eq!(secs("1d1h1m1s"), Ok(90_061));
    for bad in ["", "h", "12", "1m1h", "1h1h", "1w", "-1h", "1.5h", " 1h"] {
        assert!(parse_duration(bad).is_err(), "{bad:?}");
    }
    assert_eq!(
        parse_duration("99999999999999999999d"),
        Err("\"99999999999999999999d\" is not a duration such as 30m, 12h, 14d or 1h30m".into())
    );
    assert_eq!(
        parse_duration("999999999999999999d"),
        Err("\"999999999999999999d\" is too long".into())
    );
}

/// The messages of the CEL rules `tracker` breaks.
fn broken_rules(tracker: &ErrorTracker) -> Vec<String> {
    match tracker.validate_cel() {
        Ok(()) => Vec::new(),
        Err(errors) => errors
            .as_slice()
            .iter()
            .map(|e| {
                assert_eq!(e.kind, ErrorKind::ValidationFailure, "{e:?}");
                e.message.clone()
            })
            .collect(),
    }
}

#[test]
fn cel_rules_check_the_issuer_and_password_login() {
    assert_eq!(broken_rules(&tracker("oidc.yaml")), Vec::<String>::new());
    for (issuer, broken) in [
        ("https://login.example.com", false),
        ("http://localhost:5556/dex", false),
        ("http://127.0.0.1", false),
        ("http://login.example.com", true),
        ("http://localhost.example.com", true),
    ] {
        let mut t = tracker("oidc.yaml");
        t.spec.auth.oidc.as_mut().unwrap().issuer = issuer.into();
        let messages = broken_rules(&t);
        if broken {
            assert_eq!(
                messages,
                [
                    "auth.oidc.issuer must be an https:// URL (http:// only for localhost or 127.0.0.1)"
                ],
                "{issuer}"
            );
        } else {
            assert!(messages.is_empty(), "{issuer}: {messages:?}");
        }
    }
    let mut t = tracker("minimal.yaml");
    t.spec.auth.password_login = false;
    assert_eq!(
        broken_rules(&t),
        ["auth.passwordLogin: false needs auth.oidc, or nobody can log in"]
    );
    // password login off is fine with a provider
    let mut t = tracker("oidc.yaml");
    t.spec.auth.password_login = false;
    assert!(broken_rules(&t).is_empty());
}

// ---- rung 5: the reconciler on kube-fake-client ------------------------------------------

async fn fake(secrets: Vec<Secret>) -> Client {
    fake_with("oidc.yaml", secrets).await
}

async fn fake_with(fixture: &str, secrets: Vec<Secret>) -> Client {
    let mut tracker = tracker(fixture);
    tracker.metadata.uid = None;
    tracker.metadata.finalizers = Some(vec!["example.com/other".to_owned()]);
    let mut builder = ClientBuilder::new()
        .with_resource::<ErrorTracker>()
        .with_status_subresource::<ErrorTracker>()
        .with_status_subresource::<StatefulSet>()
        .with_object(tracker);
    for secret in secrets {
        builder = builder.with_object(secret);
    }
    builder.build().await.expect("fake client")
}

fn oidc_secret(data: &[(&str, &str)]) -> Secret {
    Secret {
        metadata: ObjectMeta {
            name: Some("faultline-oidc".into()),
            namespace: Some("team-a".into()),
            ..ObjectMeta::default()
        },
        data: Some(
            data.iter()
                .map(|(k, v)| ((*k).to_owned(), ByteString(v.as_bytes().to_vec())))
                .collect(),
        ),
        ..Secret::default()
    }
}

async fn current(client: &Client) -> Arc<ErrorTracker> {
    Arc::new(
        Api::<ErrorTracker>::namespaced(client.clone(), "team-a")
            .get("errors")
            .await
            .unwrap(),
    )
}

/// Runs reconciles until one gets past adding the finalizer; returns its result.
async fn reconcile_once(
    client: &Client,
    ctx: &Arc<Context>,
) -> Result<Action, faultline_operator::tracker::Error> {
    loop {
        let result = reconcile(current(client).await, Arc::clone(ctx)).await;
        if !matches!(result, Ok(ref a) if *a == Action::await_change()) {
            return result;
        }
    }
}

fn degraded(tracker: &ErrorTracker) -> (String, String, String) {
    let status = tracker.status.as_ref().expect("a status is written");
    let c = status
        .conditions
        .iter()
        .find(|c| c.type_ == "Degraded")
        .unwrap();
    (c.status.clone(), c.reason.clone(), c.message.clone())
}

async fn pod_annotations(client: &Client) -> BTreeMap<String, String> {
    let sts = Api::<StatefulSet>::namespaced(client.clone(), "team-a")
        .get("errors")
        .await
        .unwrap();
    annotations(&sts)
}

#[tokio::test]
async fn a_missing_secret_or_key_is_named_and_nothing_is_applied() {
    let client = fake(Vec::new()).await;
    let ctx = Arc::new(Context::new(client.clone(), Arc::new(Metrics::default())));
    let err = reconcile_once(&client, &ctx).await.unwrap_err();
    let tracker = current(&client).await;
    let (status, reason, message) = degraded(&tracker);
    assert_eq!(
        (status.as_str(), reason.as_str()),
        ("True", "SecretMissing")
    );
    assert_eq!(
        message,
        "Secret \"faultline-oidc\" named by spec.auth.oidc.clientSecretRef does not exist in namespace \"team-a\": the pods keep their current config until it does"
    );
    assert_eq!(
        error_policy(Arc::clone(&tracker), &err, Arc::clone(&ctx)),
        Action::requeue(Duration::from_secs(5))
    );
    assert!(
        ctx.metrics
            .encode()
            .contains("reconcile_errors_total{error=\"secret\"} 1")
    );
    // nothing was applied: no config, no pods that would fail to mount the secret
    assert!(
        Api::<ConfigMap>::namespaced(client.clone(), "team-a")
            .get_opt("errors-config")
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        Api::<StatefulSet>::namespaced(client.clone(), "team-a")
            .get_opt("errors")
            .await
            .unwrap()
            .is_none()
    );

    // the Secret appears, without the key
    let secrets: Api<Secret> = Api::namespaced(client.clone(), "team-a");
    secrets
        .create(&PostParams::default(), &oidc_secret(&[("other", "x")]))
        .await
        .unwrap();
    reconcile_once(&client, &ctx).await.unwrap_err();
    let (_, reason, message) = degraded(&*current(&client).await);
    assert_eq!(reason, "SecretMissing");
    assert_eq!(
        message,
        "Secret \"faultline-oidc\" named by spec.auth.oidc.clientSecretRef has no key \"client-secret\" (or it is empty): the pods keep their current config until it does"
    );

    // an empty value is no secret either
    secrets
        .replace(
            "faultline-oidc",
            &PostParams::default(),
            &with_version(&secrets, oidc_secret(&[("client-secret", " \n")])).await,
        )
        .await
        .unwrap();
    reconcile_once(&client, &ctx).await.unwrap_err();
    assert_eq!(degraded(&*current(&client).await).1, "SecretMissing");

    // with the key, the tracker is applied and the pods carry the Secret's version
    let stored = secrets
        .replace(
            "faultline-oidc",
            &PostParams::default(),
            &with_version(&secrets, oidc_secret(&[("client-secret", "s3cr3t")])).await,
        )
        .await
        .unwrap();
    reconcile_once(&client, &ctx).await.unwrap();
    let (status, reason, _) = degraded(&*current(&client).await);
    assert_eq!((status.as_str(), reason.as_str()), ("False", "Reconciled"));
    assert_eq!(
        pod_annotations(&client).await[OIDC_SECRET_VERSION_ANNOTATION],
        stored.resource_version().unwrap()
    );
    let config_map = Api::<ConfigMap>::namespaced(client.clone(), "team-a")
        .get("errors-config")
        .await
        .unwrap();
    let text = &config_map.data.unwrap()[CONFIG_FILE];
    assert!(!text.contains("s3cr3t"), "{text}");
}

/// `secret` with the resourceVersion of the stored one, for a replace.
async fn with_version(api: &Api<Secret>, mut secret: Secret) -> Secret {
    let stored = api.get(&secret.name_any()).await.unwrap();
    secret.metadata.resource_version = stored.metadata.resource_version;
    secret
}

#[tokio::test]
async fn a_changed_secret_rolls_the_pods_and_a_deleted_one_rolls_nothing() {
    let client = fake(vec![oidc_secret(&[("client-secret", "first")])]).await;
    let ctx = Arc::new(Context::new(client.clone(), Arc::new(Metrics::default())));
    reconcile_once(&client, &ctx).await.unwrap();
    let before = pod_annotations(&client).await;

    // reconciling again with the same Secret changes nothing
    reconcile_once(&client, &ctx).await.unwrap();
    assert_eq!(pod_annotations(&client).await, before);

    // a rotated secret: the pod template changes, so the StatefulSet rolls the pods
    let secrets: Api<Secret> = Api::namespaced(client.clone(), "team-a");
    let rotated = secrets
        .replace(
            "faultline-oidc",
            &PostParams::default(),
            &with_version(&secrets, oidc_secret(&[("client-secret", "second")])).await,
        )
        .await
        .unwrap();
    reconcile_once(&client, &ctx).await.unwrap();
    let after = pod_annotations(&client).await;
    assert_eq!(
        after[OIDC_SECRET_VERSION_ANNOTATION],
        rotated.resource_version().unwrap()
    );
    assert_ne!(
        after[OIDC_SECRET_VERSION_ANNOTATION],
        before[OIDC_SECRET_VERSION_ANNOTATION]
    );
    assert_eq!(
        after[builders::CONFIG_CHECKSUM_ANNOTATION],
        before[builders::CONFIG_CHECKSUM_ANNOTATION],
        "the config itself did not change"
    );

    // the Secret is deleted: the tracker says so, the running pods are left as they are
    secrets
        .delete("faultline-oidc", &Default::default())
        .await
        .unwrap();
    reconcile_once(&client, &ctx).await.unwrap_err();
    assert_eq!(degraded(&*current(&client).await).1, "SecretMissing");
    assert_eq!(pod_annotations(&client).await, after);
}

#[test]
fn credentials_from_render_carry_no_secret_version() {
    assert_eq!(
        Credentials::generate(&tracker("oidc.yaml")).oidc_secret_version,
        None
    );
}

#[test]
fn a_secret_wakes_only_the_trackers_that_name_it() {
    let named = Arc::new(tracker("oidc.yaml")); // team-a/errors names faultline-oidc
    let mut elsewhere = tracker("oidc.yaml");
    elsewhere.metadata.namespace = Some("team-b".into());
    let mut public_client = tracker("oidc.yaml");
    public_client.metadata.name = Some("public".into());
    public_client
        .spec
        .auth
        .oidc
        .as_mut()
        .unwrap()
        .client_secret_ref = None;
    let without_oidc = tracker("s3-ha.yaml"); // team-a/errors, no auth.oidc
    let trackers = [
        Arc::clone(&named),
        Arc::new(elsewhere),
        Arc::new(public_client),
        Arc::new(without_oidc),
    ];
    let woken = trackers_naming(&oidc_secret(&[]), &trackers);
    assert_eq!(
        woken,
        [kube::runtime::reflector::ObjectRef::from_obj(&*named)]
    );
    let mut other = oidc_secret(&[]);
    other.metadata.name = Some("s3-creds".into());
    assert!(trackers_naming(&other, &trackers).is_empty());
}

fn secret_named(name: &str, data: &[(&str, &str)]) -> Secret {
    let mut secret = oidc_secret(data);
    secret.metadata.name = Some(name.to_owned());
    secret
}

#[tokio::test]
async fn alert_secrets_must_exist_before_anything_is_applied() {
    let client = fake_with("alerts.yaml", Vec::new()).await;
    let ctx = Arc::new(Context::new(client.clone(), Arc::new(Metrics::default())));
    reconcile_once(&client, &ctx).await.unwrap_err();
    let (_, reason, message) = degraded(&*current(&client).await);
    assert_eq!(reason, "SecretMissing");
    assert_eq!(
        message,
        "Secret \"alert-hooks\" named by spec.alerts does not exist in namespace \"team-a\": the pods keep their current config until it does"
    );
    assert!(
        Api::<StatefulSet>::namespaced(client.clone(), "team-a")
            .get_opt("errors")
            .await
            .unwrap()
            .is_none()
    );
    let secrets: Api<Secret> = Api::namespaced(client.clone(), "team-a");
    let hooks = [
        ("slack-url", "https://hooks.example.com/slack"),
        ("webhook-url", "https://hooks.example.com/in"),
    ];
    for secret in [
        secret_named("alert-hooks", &hooks),
        secret_named("pagerduty", &[("routing-key", "R0UT1NG")]),
        secret_named("smtp", &[("password", "pw")]),
    ] {
        secrets
            .create(&PostParams::default(), &secret)
            .await
            .unwrap();
    }
    // one key is still missing
    reconcile_once(&client, &ctx).await.unwrap_err();
    let (_, reason, message) = degraded(&*current(&client).await);
    assert_eq!(reason, "SecretMissing");
    assert!(
        message.contains("\"alert-hooks\" named by spec.alerts has no key \"webhook-secret\""),
        "{message}"
    );
    let mut complete = hooks.to_vec();
    complete.push(("webhook-secret", "whsec_c2VjcmV0"));
    secrets
        .replace(
            "alert-hooks",
            &PostParams::default(),
            &with_version(&secrets, secret_named("alert-hooks", &complete)).await,
        )
        .await
        .unwrap();
    reconcile_once(&client, &ctx).await.unwrap();
    let (status, reason, _) = degraded(&*current(&client).await);
    assert_eq!((status.as_str(), reason.as_str()), ("False", "Reconciled"));
    let text = &Api::<ConfigMap>::namespaced(client.clone(), "team-a")
        .get("errors-config")
        .await
        .unwrap()
        .data
        .unwrap()[CONFIG_FILE];
    assert!(
        !text.contains("hooks.example.com") && !text.contains("R0UT1NG"),
        "{text}"
    );
    // a change of one of them wakes this tracker
    let trackers = [current(&client).await];
    assert_eq!(
        trackers_naming(&secret_named("pagerduty", &[]), &trackers).len(),
        1
    );
    assert!(trackers_naming(&secret_named("unrelated", &[]), &trackers).is_empty());
}
