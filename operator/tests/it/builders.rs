//! Rung 1: pure builders. Every object built for several specs is snapshot-tested with
//! `insta`, and the properties a user relies on are asserted one by one: the hardened security
//! context, the probes, owner references, labels, the config checksum and the engine config
//! that the engine's own parser reads back. No API server is involved (none runs here).

use std::collections::BTreeMap;

use faultline_config::KeyConfig;
use faultline_operator::builders::{
    self, CONFIG_CHECKSUM_ANNOTATION, CONFIG_FILE, Credentials, Desired, derived_project_id,
};
use faultline_operator::crd::ProjectSpec;
use k8s_openapi::api::apps::v1::StatefulSet;
use serde_json::Value;

use crate::common::{UID, credentials, tracker};

/// The pod template's spec of the built StatefulSet.
fn pod_spec(desired: &Desired) -> &k8s_openapi::api::core::v1::PodSpec {
    desired
        .stateful_set
        .spec
        .as_ref()
        .unwrap()
        .template
        .spec
        .as_ref()
        .unwrap()
}

fn build(fixture: &str) -> Desired {
    let tracker = tracker(fixture);
    builders::build(&tracker, &credentials(&tracker)).expect("builds")
}

fn engine_container(sts: &StatefulSet) -> &k8s_openapi::api::core::v1::Container {
    &sts.spec
        .as_ref()
        .unwrap()
        .template
        .spec
        .as_ref()
        .unwrap()
        .containers[0]
}

fn checksum(sts: &StatefulSet) -> String {
    sts.spec
        .as_ref()
        .unwrap()
        .template
        .metadata
        .as_ref()
        .unwrap()
        .annotations
        .as_ref()
        .unwrap()[CONFIG_CHECKSUM_ANNOTATION]
        .clone()
}

#[test]
fn snapshots_of_every_object() {
    for fixture in [
        "minimal.yaml",
        "s3-ha.yaml",
        "scheduled.yaml",
        "bootstrap.yaml",
        "oidc.yaml",
    ] {
        let objects = build(fixture).to_values();
        insta::assert_yaml_snapshot!(fixture.trim_end_matches(".yaml"), objects);
    }
}

#[test]
fn every_object_is_owned_and_labelled() {
    for fixture in [
        "minimal.yaml",
        "s3-ha.yaml",
        "scheduled.yaml",
        "bootstrap.yaml",
        "oidc.yaml",
    ] {
        let tracker = tracker(fixture);
        for object in build(fixture).to_values() {
            let what = format!(
                "{fixture}: {} {}",
                object["kind"], object["metadata"]["name"]
            );
            let owners = object["metadata"]["ownerReferences"]
                .as_array()
                .expect(&what);
            assert_eq!(owners.len(), 1, "{what}");
            assert_eq!(owners[0]["uid"], UID, "{what}");
            assert_eq!(owners[0]["kind"], "ErrorTracker", "{what}");
            assert_eq!(owners[0]["controller"], true, "{what}");
            let labels = &object["metadata"]["labels"];
            assert_eq!(labels["app.kubernetes.io/name"], "faultline", "{what}");
            assert_eq!(
                labels["app.kubernetes.io/instance"],
                tracker.metadata.name.as_deref().unwrap(),
                "{what}"
            );
            assert_eq!(
                labels["app.kubernetes.io/managed-by"], "faultline-operator",
                "{what}"
            );
            assert_eq!(
                object["metadata"]["namespace"],
                tracker.metadata.namespace.as_deref().unwrap(),
                "{what}"
            );
        }
    }
}

#[test]
fn pods_are_hardened() {
    for fixture in ["minimal.yaml", "s3-ha.yaml", "scheduled.yaml", "oidc.yaml"] {
        let desired = build(fixture);
        let pod = pod_spec(&desired);
        let pod_sc = pod.security_context.as_ref().unwrap();
        assert_eq!(pod_sc.run_as_non_root, Some(true));
        assert_eq!(
            pod_sc.seccomp_profile.as_ref().unwrap().type_,
            "RuntimeDefault"
        );
        assert_eq!(pod.automount_service_account_token, Some(false));
        let sc = engine_container(&desired.stateful_set)
            .security_context
            .as_ref()
            .unwrap();
        assert_eq!(sc.allow_privilege_escalation, Some(false), "{fixture}");
        assert_eq!(sc.read_only_root_filesystem, Some(true), "{fixture}");
        assert_eq!(sc.run_as_non_root, Some(true), "{fixture}");
        assert_ne!(sc.run_as_user, Some(0), "{fixture}");
        assert_eq!(
            sc.capabilities.as_ref().unwrap().drop.as_deref(),
            Some(&["ALL".to_owned()][..])
        );
        assert_eq!(sc.seccomp_profile.as_ref().unwrap().type_, "RuntimeDefault");
    }
    let scheduled = build("scheduled.yaml");
    let sc = engine_container(&scheduled.stateful_set)
        .security_context
        .clone()
        .unwrap();
    assert_eq!((sc.run_as_user, sc.run_as_group), (Some(2000), Some(3000)));
}

#[test]
fn probes_hit_the_engine_health_endpoints() {
    let desired = build("minimal.yaml");
    let container = engine_container(&desired.stateful_set);
    let path = |p: &Option<k8s_openapi::api::core::v1::Probe>| {
        let get = p.as_ref().unwrap().http_get.as_ref().unwrap();
        (
            get.path.clone().unwrap(),
            serde_json::to_value(&get.port).unwrap(),
        )
    };
    assert_eq!(
        path(&container.liveness_probe),
        ("/health/live".into(), Value::from("ingest"))
    );
    assert_eq!(
        path(&container.readiness_probe),
        ("/health/ready".into(), Value::from("ingest"))
    );
    assert_eq!(
        container.args.as_deref().unwrap(),
        ["serve", "--config", "/etc/faultline/faultline.toml"]
    );
    assert_eq!(container.command.as_deref().unwrap(), ["faultline"]);
    assert_eq!(
        container.image.as_deref(),
        Some(concat!(
            "ghcr.io/faultline/faultline:",
            env!("CARGO_PKG_VERSION")
        ))
    );
}

#[test]
fn engine_config_is_read_back_by_the_engine_parser() {
    let tracker = tracker("s3-ha.yaml");
    let creds = credentials(&tracker);
    let keys = &creds.dsn_keys;
    let desired = builders::build(&tracker, &creds).unwrap();
    let text = &desired.config_map.data.as_ref().unwrap()[CONFIG_FILE];
    let config = faultline_config::Config::parse(text).expect("the engine accepts the config");
    assert_eq!(config.server.listen.to_string(), "0.0.0.0:8000");
    assert_eq!(
        config.server.admin_listen.unwrap().to_string(),
        "0.0.0.0:8001"
    );
    assert_eq!(
        config.server.public_url.as_deref(),
        Some("https://errors.example.com")
    );
    assert_eq!(
        config.storage.object_store.as_deref(),
        Some("s3://faultline-events/team-a")
    );
    assert_eq!(
        config.storage.s3.endpoint.as_deref(),
        Some("http://minio.storage:9000")
    );
    assert!(config.storage.s3.allow_http && config.storage.s3.force_path_style);
    assert_eq!(config.retention.default_days, 30);
    assert_eq!(config.backup.schedule.as_deref(), Some("0 3 * * *"));
    assert_eq!(
        config.backup.destination.as_deref(),
        Some("s3://faultline-backups/team-a")
    );
    assert_eq!(config.backup.keep_last, Some(7));
    let shop = config.projects.iter().find(|p| p.name == "shop").unwrap();
    assert_eq!(shop.id, derived_project_id("shop"));
    assert_eq!(shop.keys, vec![KeyConfig::new(keys["shop"].as_str())]);
    assert_eq!(shop.rate_limit.as_ref().unwrap().events, 1000);
    // quotas in order, the window in seconds, 60 when unset
    let quotas: Vec<_> = shop
        .quotas
        .iter()
        .map(|q| (q.categories.join(","), q.limit, q.window.as_secs()))
        .collect();
    assert_eq!(
        quotas,
        [
            ("transaction,span".to_owned(), 5000, 60),
            ("log_item".to_owned(), 0, 3600)
        ]
    );
    let api = config.projects.iter().find(|p| p.name == "api").unwrap();
    assert!(api.quotas.is_empty());
    assert_eq!(config.retention_days("shop"), 14);
    // the grouping rules and scrubbing settings reach the engine as written
    assert_eq!(
        shop.grouping_enhancements.as_deref(),
        Some("family:javascript path:**/vendor/** -app\n")
    );
    assert_eq!(
        shop.fingerprinting_rules.as_deref(),
        Some("error.type:DatabaseUnavailable -> system-down\n")
    );
    let privacy = shop.privacy.as_ref().unwrap();
    assert!(privacy.scrub_data && privacy.scrub_defaults && privacy.scrub_ip_addresses);
    assert_eq!(privacy.sensitive_fields, ["order_token"]);
    assert!(
        privacy
            .pii_config
            .as_deref()
            .unwrap()
            .contains("@email:mask")
    );
    let api = config.projects.iter().find(|p| p.name == "api").unwrap();
    assert_eq!(
        (api.grouping_enhancements.as_ref(), api.privacy.as_ref()),
        (None, None)
    );
    assert_eq!(
        (api.id, api.keys.clone()),
        (42, vec![KeyConfig::new(keys["api"].as_str())])
    );
    assert_eq!(config.retention_days("api"), 30);

    let local = builders::build(&self::tracker("minimal.yaml"), &creds_for("web")).unwrap();
    let config =
        faultline_config::Config::parse(&local.config_map.data.unwrap()[CONFIG_FILE]).unwrap();
    assert_eq!(
        config.storage.object_store.as_deref(),
        Some("file:///var/lib/faultline/objects")
    );
    assert_eq!(config.wal_dir().to_str(), Some("/var/lib/faultline/wal"));
}

fn creds_for(project: &str) -> Credentials {
    Credentials {
        dsn_keys: BTreeMap::from([(
            project.to_owned(),
            "0123456789abcdef0123456789abcdef".to_owned(),
        )]),
        admin_token: "0".repeat(64),
        operator_namespace: None,
        ..Credentials::default()
    }
}

#[test]
fn node_id_and_s3_credentials_come_from_the_environment() {
    let desired = build("s3-ha.yaml");
    let env = serde_json::to_value(&engine_container(&desired.stateful_set).env).unwrap();
    assert_eq!(env[0]["name"], "FAULTLINE_NODE_ID");
    assert_eq!(
        env[0]["valueFrom"]["fieldRef"]["fieldPath"],
        "metadata.name"
    );
    assert_eq!(env[1]["name"], "AWS_ACCESS_KEY_ID");
    assert_eq!(
        env[1]["valueFrom"]["secretKeyRef"],
        serde_json::json!({"name": "s3-creds", "key": "AWS_ACCESS_KEY_ID", "optional": false})
    );
    assert_eq!(
        env[2]["valueFrom"]["secretKeyRef"]["key"],
        "AWS_SECRET_ACCESS_KEY"
    );
    // The ConfigMap never carries the S3 credentials.
    let text = &desired.config_map.data.as_ref().unwrap()[CONFIG_FILE];
    assert!(
        !text.contains("s3-creds") && !text.to_lowercase().contains("secret"),
        "{text}"
    );
}

#[test]
fn config_changes_roll_the_pods_and_nothing_else_does() {
    let base = tracker("minimal.yaml");
    let keys = credentials(&base);
    let before = checksum(&builders::build(&base, &keys).unwrap().stateful_set);
    assert_eq!(
        before,
        checksum(&builders::build(&base, &keys).unwrap().stateful_set)
    );

    let mut scaled = base.clone();
    scaled.spec.replicas = 0;
    assert_eq!(
        before,
        checksum(&builders::build(&scaled, &keys).unwrap().stateful_set)
    );

    let mut retained = base.clone();
    retained.spec.retention.default_days = 7;
    assert_ne!(
        before,
        checksum(&builders::build(&retained, &keys).unwrap().stateful_set)
    );

    let mut rekeyed = keys.clone();
    rekeyed
        .dsn_keys
        .insert("web".into(), "ffffffffffffffffffffffffffffffff".into());
    assert_ne!(
        before,
        checksum(&builders::build(&base, &rekeyed).unwrap().stateful_set)
    );
}

#[test]
fn dsn_secrets_hold_a_working_dsn_per_project() {
    let tracker = tracker("s3-ha.yaml");
    let creds = credentials(&tracker);
    let keys = &creds.dsn_keys;
    let desired = builders::build(&tracker, &creds).unwrap();
    let names: Vec<_> = desired
        .dsn_secrets
        .iter()
        .map(|s| s.metadata.name.clone().unwrap())
        .collect();
    assert_eq!(names, ["errors-dsn-shop", "errors-dsn-api"]);
    let api = &desired.dsn_secrets[1];
    let get = |k: &str| String::from_utf8(api.data.as_ref().unwrap()[k].0.clone()).unwrap();
    assert_eq!(
        get("dsn"),
        format!("http://{}@errors.team-a.svc:8000/42", keys["api"])
    );
    assert_eq!(
        get("publicDsn"),
        format!("https://{}@errors.example.com/42", keys["api"])
    );
    assert_eq!(get("projectId"), "42");
}

#[test]
fn project_ids_are_stable_and_collisions_are_refused() {
    assert_eq!(derived_project_id("shop"), derived_project_id("shop"));
    assert_ne!(derived_project_id("shop"), derived_project_id("shop2"));
    assert!((1..=i64::from(i32::MAX) as u64).contains(&derived_project_id("shop")));
    let projects = vec![
        ProjectSpec {
            name: "shop".into(),
            id: None,
            rate_limit: None,
            quotas: Vec::new(),
            retention_days: None,
            keys: Vec::new(),
            grouping_enhancements: None,
            fingerprinting_rules: None,
            privacy: None,
        },
        ProjectSpec {
            name: "other".into(),
            id: Some(derived_project_id("shop")),
            rate_limit: None,
            quotas: Vec::new(),
            retention_days: None,
            keys: Vec::new(),
            grouping_enhancements: None,
            fingerprinting_rules: None,
            privacy: None,
        },
    ];
    let err = builders::resolve_projects(&projects)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("\"shop\"") && err.contains("\"other\""),
        "{err}"
    );
}

#[test]
fn network_policy_keeps_the_admin_port_to_allowed_namespaces() {
    let desired = build("s3-ha.yaml");
    let policy = serde_json::to_value(desired.network_policy.unwrap()).unwrap();
    let rules = policy["spec"]["ingress"].as_array().unwrap();
    assert_eq!(rules[0]["ports"][0]["port"], 8000);
    assert!(
        rules[0].get("from").is_none(),
        "ingest is open to every peer"
    );
    assert_eq!(rules[1]["ports"][0]["port"], 8001);
    assert_eq!(
        rules[1]["from"][0]["namespaceSelector"]["matchExpressions"][0]["values"],
        serde_json::json!(["faultline-system", "monitoring", "team-a"]),
        "the tracker's namespace, the operator's (it calls the admin API for backups) and adminNamespaces"
    );
    assert!(build("scheduled.yaml").network_policy.is_none());
    assert!(build("minimal.yaml").ingress.is_none());
}

#[test]
fn the_web_ui_is_routed_through_the_ingress_when_asked() {
    let paths =
        |tracker: &faultline_operator::crd::ErrorTracker| -> Vec<(String, String, String, String)> {
            let desired = builders::build(tracker, &credentials(tracker)).expect("builds");
            let ingress = desired.ingress.expect("an Ingress");
            ingress.spec.unwrap().rules.unwrap()[0]
                .http
                .as_ref()
                .unwrap()
                .paths
                .iter()
                .map(|p| {
                    let service = p.backend.service.as_ref().unwrap();
                    (
                        p.path.clone().unwrap(),
                        p.path_type.clone(),
                        service.name.clone(),
                        service.port.as_ref().unwrap().name.clone().unwrap(),
                    )
                })
                .collect()
        };
    let mut tracker = tracker("oidc.yaml");
    tracker.spec.ingress.as_mut().unwrap().web_ui = false;
    let ingest_only = paths(&tracker);
    assert_eq!(ingest_only.len(), 1, "{ingest_only:?}");
    assert_eq!(ingest_only[0].0, "/api/");
    tracker.spec.ingress.as_mut().unwrap().web_ui = true;
    let routed = paths(&tracker);
    let to = |path: &str| {
        routed
            .iter()
            .find(|p| p.0 == path)
            .map(|p| (p.1.as_str(), p.3.as_str()))
    };
    assert_eq!(to("/api/"), Some(("Prefix", "ingest")), "the SDKs' paths");
    for path in [
        "/api/0/",
        "/api/sql",
        "/auth/",
        "/login",
        "/organizations/",
        "/static/",
    ] {
        assert_eq!(to(path), Some(("Prefix", "admin")), "{path}: {routed:?}");
    }
    assert_eq!(to("/"), Some(("Exact", "admin")), "the home page only");
    // the admin listener's metrics and health checks stay inside the cluster
    assert!(
        routed
            .iter()
            .all(|p| !["/metrics", "/health/"].contains(&p.0.as_str())),
        "{routed:?}"
    );
    assert!(
        routed
            .iter()
            .all(|p| p.3 != "admin" || p.2.ends_with("-admin"))
    );
}

#[test]
fn local_storage_gets_an_object_volume_and_s3_does_not() {
    let claims = |d: &Desired| -> Vec<String> {
        d.stateful_set
            .spec
            .as_ref()
            .unwrap()
            .volume_claim_templates
            .as_ref()
            .unwrap()
            .iter()
            .map(|c| c.metadata.name.clone().unwrap())
            .collect()
    };
    assert_eq!(claims(&build("minimal.yaml")), ["data", "objects"]);
    assert_eq!(claims(&build("s3-ha.yaml")), ["data"]);
}

#[test]
fn admin_token_is_mounted_and_named_in_the_config() {
    let desired = build("minimal.yaml");
    let secret = &desired.admin_token_secret;
    assert_eq!(secret.metadata.name.as_deref(), Some("errors-admin-token"));
    assert_eq!(
        secret.data.as_ref().unwrap()["token"].0,
        "c".repeat(64).into_bytes()
    );
    let config =
        faultline_config::Config::parse(&desired.config_map.data.as_ref().unwrap()[CONFIG_FILE])
            .unwrap();
    assert_eq!(
        config.auth.admin_token_file.unwrap().to_str(),
        Some("/etc/faultline-admin/token")
    );
    let pod = pod_spec(&desired);
    let volume = pod
        .volumes
        .as_ref()
        .unwrap()
        .iter()
        .find(|v| v.name == "admin-token")
        .unwrap();
    assert_eq!(
        volume.secret.as_ref().unwrap().secret_name.as_deref(),
        Some("errors-admin-token")
    );
    let mount = pod.containers[0]
        .volume_mounts
        .as_ref()
        .unwrap()
        .iter()
        .find(|m| m.name == "admin-token")
        .unwrap();
    assert_eq!(
        (mount.mount_path.as_str(), mount.read_only),
        ("/etc/faultline-admin", Some(true))
    );
    // the token is not in the ConfigMap
    assert!(!desired.config_map.data.as_ref().unwrap()[CONFIG_FILE].contains(&"c".repeat(64)));
}

#[test]
fn only_the_ingest_port_leaves_the_cluster() {
    let desired = build("scheduled.yaml");
    let ports = |svc: &k8s_openapi::api::core::v1::Service| -> Vec<(String, i32)> {
        let spec = svc.spec.as_ref().unwrap();
        spec.ports
            .as_ref()
            .unwrap()
            .iter()
            .map(|p| (p.name.clone().unwrap(), p.port))
            .collect()
    };
    assert_eq!(
        desired.service.spec.as_ref().unwrap().type_.as_deref(),
        Some("LoadBalancer")
    );
    assert_eq!(ports(&desired.service), [("ingest".to_owned(), 8000)]);
    assert_eq!(
        desired.admin_service.metadata.name.as_deref(),
        Some("tracker-admin")
    );
    assert_eq!(
        desired
            .admin_service
            .spec
            .as_ref()
            .unwrap()
            .type_
            .as_deref(),
        Some("ClusterIP")
    );
    assert_eq!(ports(&desired.admin_service), [("admin".to_owned(), 8001)]);
    assert_eq!(ports(&desired.headless_service).len(), 2);
    // the chart's engine ServiceMonitor selects the admin Service by this label, and not the
    // headless one, which has the admin port too
    let label = |service: &k8s_openapi::api::core::v1::Service| {
        service
            .metadata
            .labels
            .as_ref()
            .and_then(|l| l.get(faultline_operator::builders::METRICS_LABEL))
            .cloned()
    };
    assert_eq!(label(&desired.admin_service).as_deref(), Some("true"));
    assert_eq!(label(&desired.headless_service), None);
}

#[test]
fn listed_keys_reach_the_engine_config_and_the_dsn_secret() {
    use faultline_operator::crd::{ProjectKeySpec, RateLimitSpec};
    let mut tracker = tracker("minimal.yaml");
    let project = &mut tracker.spec.projects[0];
    let name = project.name.clone();
    project.keys = vec![
        ProjectKeySpec {
            name: "default".into(),
            enabled: false,
            rate_limit: None,
        },
        ProjectKeySpec {
            name: "v2".into(),
            enabled: true,
            rate_limit: Some(RateLimitSpec {
                events: 50,
                window_seconds: 10,
            }),
        },
    ];
    let old = "1".repeat(32);
    let new = "2".repeat(32);
    let mut credentials = credentials(&tracker);
    credentials.named_keys = BTreeMap::from([(
        name.clone(),
        BTreeMap::from([
            ("default".to_owned(), old.clone()),
            ("v2".to_owned(), new.clone()),
        ]),
    )]);
    // What applications read is the first enabled key.
    credentials.dsn_keys.insert(
        name.clone(),
        builders::primary_key(&tracker.spec.projects[0], credentials.named_keys.get(&name))
            .unwrap(),
    );
    let desired = builders::build(&tracker, &credentials).unwrap();
    let config =
        faultline_config::Config::parse(&desired.config_map.data.unwrap()[CONFIG_FILE]).unwrap();
    let keys = &config.projects[0].keys;
    assert_eq!(keys.len(), 2);
    assert_eq!(
        (keys[0].public.as_str(), keys[0].enabled),
        (old.as_str(), false)
    );
    assert_eq!(keys[0].label.as_deref(), Some("default"));
    assert_eq!(
        (keys[1].public.as_str(), keys[1].enabled),
        (new.as_str(), true)
    );
    let limit = keys[1].rate_limit.as_ref().unwrap();
    assert_eq!((limit.events, limit.window.as_secs()), (50, 10));

    let secret = &desired.dsn_secrets[0];
    let data: BTreeMap<String, String> = secret
        .data
        .as_ref()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), String::from_utf8(v.0.clone()).unwrap()))
        .collect();
    assert_eq!(data["key"], new);
    assert!(
        data["dsn"].starts_with(&format!("http://{new}@")),
        "{}",
        data["dsn"]
    );
    assert_eq!(data["key-default"], old);
    assert_eq!(data["key-v2"], new);
    assert_eq!(data["dsn-v2"], data["dsn"]);
    assert!(
        !data.contains_key("dsn-default"),
        "a disabled key has no DSN"
    );

    // A listed key without a value is a build error, not a key silently left out.
    credentials.named_keys.get_mut(&name).unwrap().remove("v2");
    let err = builders::build(&tracker, &credentials)
        .unwrap_err()
        .to_string();
    assert!(err.contains("v2"), "{err}");
}

#[test]
fn prometheus_scrapes_the_admin_port_of_service_and_pods() {
    let desired = build("minimal.yaml");
    let expected = BTreeMap::from([
        ("prometheus.io/scrape".to_owned(), "true".to_owned()),
        ("prometheus.io/port".to_owned(), "8001".to_owned()),
        ("prometheus.io/path".to_owned(), "/metrics".to_owned()),
    ]);
    let service = desired.admin_service.metadata.annotations.clone().unwrap();
    assert_eq!(service, expected);
    let pod = desired
        .stateful_set
        .spec
        .as_ref()
        .unwrap()
        .template
        .metadata
        .as_ref()
        .unwrap()
        .annotations
        .clone()
        .unwrap();
    for (key, value) in &expected {
        assert_eq!(pod.get(key), Some(value), "pod annotation {key}");
    }
    assert!(pod.contains_key(CONFIG_CHECKSUM_ANNOTATION));
    // The port named there is the one the engine serves /metrics on: its admin listener.
    let config = faultline_config::Config::parse(
        desired.config_map.data.as_ref().unwrap()[CONFIG_FILE].as_str(),
    )
    .unwrap();
    assert_eq!(
        config.server.admin_listen.map(|a| a.port().to_string()),
        Some(expected["prometheus.io/port"].clone())
    );
    // The ingest Service, which a LoadBalancer may expose, is not annotated for scraping.
    assert!(
        desired
            .service
            .metadata
            .annotations
            .as_ref()
            .is_none_or(|a| !a.contains_key("prometheus.io/scrape"))
    );
}

fn env_names(container: &k8s_openapi::api::core::v1::Container) -> Vec<(String, String)> {
    container
        .env
        .iter()
        .flatten()
        .map(|e| {
            let source = e.value_from.as_ref().unwrap();
            let from = match (&source.secret_key_ref, &source.field_ref) {
                (Some(secret), _) => format!("secret {}/{}", secret.name, secret.key),
                (_, Some(field)) => format!("field {}", field.field_path),
                _ => "?".into(),
            };
            (e.name.clone(), from)
        })
        .collect()
}

#[test]
fn backups_to_s3_get_their_own_credentials() {
    let desired = build("s3-ha.yaml");
    let env = env_names(engine_container(&desired.stateful_set));
    assert_eq!(
        env[1..],
        [
            (
                "AWS_ACCESS_KEY_ID".into(),
                "secret s3-creds/AWS_ACCESS_KEY_ID".into()
            ),
            (
                "AWS_SECRET_ACCESS_KEY".into(),
                "secret s3-creds/AWS_SECRET_ACCESS_KEY".into()
            ),
            (
                "FAULTLINE_BACKUP_AWS_ACCESS_KEY_ID".into(),
                "secret backup-creds/key-id".into()
            ),
            (
                "FAULTLINE_BACKUP_AWS_SECRET_ACCESS_KEY".into(),
                "secret backup-creds/secret-key".into()
            ),
        ]
    );
    let text = &desired.config_map.data.as_ref().unwrap()[CONFIG_FILE];
    let config = faultline_config::Config::parse(text).unwrap();
    assert_eq!(
        config.backup.s3.endpoint.as_deref(),
        Some("http://minio.storage:9000")
    );
    assert!(config.backup.s3.allow_http && config.backup.s3.force_path_style);
    assert!(
        pod_spec(&desired).init_containers.is_none(),
        "no restore without spec.bootstrap"
    );
    assert!(
        !text.contains("AWS") && !text.contains("backup-creds"),
        "no credential in the config"
    );
}

#[test]
fn bootstrap_restores_before_the_engine_starts() {
    let desired = build("bootstrap.yaml");
    let pod = pod_spec(&desired);
    let [init] = pod.init_containers.as_deref().unwrap() else {
        panic!("one init container");
    };
    let engine = &pod.containers[0];
    assert_eq!(init.name, "restore");
    assert_eq!(init.image, engine.image);
    assert_eq!(init.command.as_deref().unwrap(), ["faultline"]);
    assert_eq!(
        init.args.as_deref().unwrap(),
        [
            "--config",
            "/etc/faultline/restore.toml",
            "backup",
            "restore",
            "20261124T031500Z-ab12",
            "--from=s3://faultline-backups/team-a",
            "--until=2026-11-24T02:00:00Z",
        ]
    );
    // the same hardening and the same data volumes as the engine
    assert_eq!(init.security_context, engine.security_context);
    let mounts = |c: &k8s_openapi::api::core::v1::Container| {
        c.volume_mounts
            .iter()
            .flatten()
            .map(|m| (m.name.clone(), m.mount_path.clone()))
            .collect::<Vec<_>>()
    };
    let init_mounts = mounts(init);
    for wanted in ["data", "objects", "config", "tmp"] {
        assert!(
            init_mounts.iter().any(|(name, _)| name == wanted),
            "{wanted}: {init_mounts:?}"
        );
    }
    assert!(
        !init_mounts.iter().any(|(name, _)| name == "backups"),
        "the restore does not need the backup destination"
    );
    // the source's credentials, not the destination's (a volume here)
    assert_eq!(
        env_names(init)[1..],
        [
            (
                "FAULTLINE_BACKUP_AWS_ACCESS_KEY_ID".into(),
                "secret old-backups/AWS_ACCESS_KEY_ID".into()
            ),
            (
                "FAULTLINE_BACKUP_AWS_SECRET_ACCESS_KEY".into(),
                "secret old-backups/AWS_SECRET_ACCESS_KEY".into()
            ),
        ]
    );
    // restore.toml is the engine's config with the source in [backup], and the engine reads it
    let data = desired.config_map.data.as_ref().unwrap();
    let engine_config = faultline_config::Config::parse(&data[CONFIG_FILE]).unwrap();
    let restore = faultline_config::Config::parse(&data[builders::RESTORE_CONFIG_FILE]).unwrap();
    assert_eq!(restore.storage, engine_config.storage);
    assert_eq!(
        restore.backup.destination.as_deref(),
        Some("s3://faultline-backups/team-a")
    );
    assert_eq!(
        restore.backup.s3.endpoint.as_deref(),
        Some("https://s3.example.com")
    );
    assert_eq!(restore.backup.s3.region.as_deref(), Some("eu-west-1"));
    assert_eq!(
        restore.backup.schedule, None,
        "the restore schedules nothing"
    );
    // and the engine backs up into a directory of the shared volume
    assert_eq!(
        engine_config.backup.destination.as_deref(),
        Some("file:///var/lib/faultline-backups/team-b")
    );
    assert!(mounts(engine).contains(&("backups".into(), "/var/lib/faultline-backups".into())));
    let claim = pod
        .volumes
        .iter()
        .flatten()
        .find(|v| v.name == "backups")
        .and_then(|v| v.persistent_volume_claim.as_ref())
        .unwrap();
    assert_eq!(claim.claim_name, "faultline-backups");
    assert!(
        !build("s3-ha.yaml")
            .config_map
            .data
            .unwrap()
            .contains_key(builders::RESTORE_CONFIG_FILE)
    );
}

#[test]
fn a_bootstrap_from_a_volume_mounts_it_read_only_and_restores_latest() {
    let mut tracker = tracker("bootstrap.yaml");
    let bootstrap = tracker.spec.bootstrap.as_mut().unwrap();
    bootstrap.backup.source = serde_json::from_value(serde_json::json!({
        "volume": {"claimName": "old-backups", "subPath": "team-a"}
    }))
    .unwrap();
    bootstrap.backup.id = "latest".into();
    bootstrap.backup.until = None;
    let desired = builders::build(&tracker, &credentials(&tracker)).unwrap();
    let pod = pod_spec(&desired);
    let init = &pod.init_containers.as_ref().unwrap()[0];
    assert_eq!(
        init.args.as_deref().unwrap()[4..],
        ["latest", "--from=file:///var/lib/faultline-restore/team-a"]
    );
    let mount = init
        .volume_mounts
        .iter()
        .flatten()
        .find(|m| m.name == "restore-source")
        .unwrap();
    assert_eq!(
        (mount.mount_path.as_str(), mount.read_only),
        ("/var/lib/faultline-restore", Some(true))
    );
    assert!(
        env_names(init)
            .iter()
            .all(|(name, _)| !name.starts_with("FAULTLINE_BACKUP_")),
        "no S3 credentials for a volume"
    );
    let source = pod
        .volumes
        .iter()
        .flatten()
        .find(|v| v.name == "restore-source")
        .and_then(|v| v.persistent_volume_claim.as_ref())
        .unwrap();
    assert_eq!(
        (source.claim_name.as_str(), source.read_only),
        ("old-backups", Some(true))
    );
}

#[test]
fn alert_channels_get_their_secrets_as_mounted_files_and_nothing_else() {
    let desired = build("alerts.yaml");
    let text = &desired.config_map.data.as_ref().unwrap()[CONFIG_FILE];
    let config = faultline_config::Config::parse(text).expect("the engine accepts the config");
    let alerts = &config.alerts;
    assert_eq!(alerts.max_per_hour, 30);
    assert!(!alerts.allow_private_targets);
    let file = |channel: usize| {
        let c = &alerts.channels[channel];
        (
            c.url_file.as_ref().map(|p| p.display().to_string()),
            c.routing_key_file.as_ref().map(|p| p.display().to_string()),
            c.secret_file.as_ref().map(|p| p.display().to_string()),
        )
    };
    let path = |p: &str| Some(format!("/etc/faultline-alerts/channels/{p}"));
    assert_eq!(file(0), (path("ops-slack/url"), None, None));
    assert_eq!(file(1), (None, path("on-call/routing-key"), None));
    assert_eq!(
        file(2),
        (
            path("audit-hook/url"),
            None,
            path("audit-hook/signing-secret")
        )
    );
    assert_eq!(file(3), (None, None, None));
    assert_eq!(alerts.channels[1].max_per_hour, Some(0));
    assert_eq!(alerts.channels[3].to, ["oncall@example.com"]);
    assert_eq!(
        alerts.channels[2].format,
        faultline_config::WebhookFormat::Sentry
    );
    // no URL or key is in the ConfigMap, only where the pod finds it
    assert!(
        !text.lines().any(|l| l.starts_with("url =")) && !text.contains("hooks."),
        "{text}"
    );
    let busy = &alerts.rules[1];
    assert_eq!(
        busy.triggers,
        [
            faultline_config::TriggerConfig::Frequency {
                count: 100,
                window: std::time::Duration::from_secs(300)
            },
            faultline_config::TriggerConfig::Users {
                count: 20,
                window: std::time::Duration::from_secs(3600)
            },
        ]
    );
    assert_eq!(
        busy.issue_older_than,
        Some(std::time::Duration::from_secs(86_400))
    );
    assert_eq!(busy.interval, std::time::Duration::from_secs(3600));
    assert_eq!(alerts.rules[0].tags, ["region=eu"]);
    assert_eq!(
        alerts.rules[0].interval,
        std::time::Duration::from_secs(1800)
    );
    let smtp = config.smtp.as_ref().unwrap();
    assert_eq!(
        smtp.password_file.as_ref().map(|p| p.display().to_string()),
        Some("/etc/faultline-alerts/smtp/password".to_owned())
    );

    // exactly the referenced keys are projected, read-only
    let pod = pod_spec(&desired);
    let volume = pod
        .volumes
        .as_ref()
        .unwrap()
        .iter()
        .find(|v| v.name == "alert-secrets")
        .expect("an alert-secrets volume");
    let projected: Vec<(String, String, String)> = volume
        .projected
        .as_ref()
        .unwrap()
        .sources
        .as_ref()
        .unwrap()
        .iter()
        .map(|s| {
            let secret = s.secret.as_ref().unwrap();
            let item = &secret.items.as_ref().unwrap()[0];
            (secret.name.clone(), item.key.clone(), item.path.clone())
        })
        .collect();
    let row = |a: &str, b: &str, c: &str| (a.to_owned(), b.to_owned(), c.to_owned());
    assert_eq!(
        projected,
        [
            row("alert-hooks", "slack-url", "channels/ops-slack/url"),
            row("pagerduty", "routing-key", "channels/on-call/routing-key"),
            row("alert-hooks", "webhook-url", "channels/audit-hook/url"),
            row(
                "alert-hooks",
                "webhook-secret",
                "channels/audit-hook/signing-secret"
            ),
            row("smtp", "password", "smtp/password"),
        ]
    );
    let mount = engine_container(&desired.stateful_set)
        .volume_mounts
        .as_ref()
        .unwrap()
        .iter()
        .find(|m| m.name == "alert-secrets")
        .unwrap();
    assert_eq!(mount.mount_path, "/etc/faultline-alerts");
    assert_eq!(mount.read_only, Some(true));
    // a tracker without alerts mounts none
    assert!(
        pod_spec(&build("minimal.yaml"))
            .volumes
            .as_ref()
            .unwrap()
            .iter()
            .all(|v| v.name != "alert-secrets")
    );
}

#[test]
fn a_bad_alerts_spec_is_refused_naming_the_field() {
    let mut tracker = tracker("alerts.yaml");
    let alerts = tracker.spec.alerts.as_mut().unwrap();
    alerts.rules[1].triggers[0].window = Some("soon".into());
    let err = builders::build(&tracker, &credentials(&tracker))
        .unwrap_err()
        .to_string();
    assert!(err.starts_with("spec.alerts.rules[1]: "), "{err}");

    let mut tracker = self::tracker("alerts.yaml");
    let alerts = tracker.spec.alerts.as_mut().unwrap();
    alerts.channels[0].url_secret_ref = None;
    let err = builders::build(&tracker, &credentials(&tracker))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("alerts.channels[0].url_file") && err.contains("required"),
        "{err}"
    );
}

#[test]
fn a_bad_quota_is_refused_naming_the_field() {
    use faultline_operator::tracker::Error as ReconcileError;
    // the schema's enum stops this at the API server; a spec read from a file still gets here
    let mut tracker = tracker("s3-ha.yaml");
    tracker.spec.projects[0].quotas[0].categories[1] = "spans".into();
    let err = builders::build(&tracker, &credentials(&tracker)).unwrap_err();
    let message = err.to_string();
    assert!(
        message.starts_with("spec.projects[0].quotas[0].categories[1]: ")
            && message.contains("\"spans\"")
            && message.contains("log_item"),
        "{message}"
    );
    // the tracker shows it as Degraded with reason InvalidSpec, for the user to fix
    assert_eq!(ReconcileError::Build(err).reason(), "InvalidSpec");

    let mut tracker = self::tracker("s3-ha.yaml");
    tracker.spec.projects[0].quotas[1].window_seconds = 0;
    let err = builders::build(&tracker, &credentials(&tracker))
        .unwrap_err()
        .to_string();
    assert!(
        err.starts_with("spec.projects[0].quotas[1].windowSeconds: "),
        "{err}"
    );
}

/// The engine's report as the tracker's status shows it, for each kind of answer.
#[test]
fn the_engine_report_in_the_tracker_status() {
    use faultline_operator::ErrorTrackerStatus;
    use faultline_operator::engine_api::EngineStatus;
    use faultline_operator::engine_status::{Answer, report};
    let engine: EngineStatus = serde_json::from_value(serde_json::json!({
        "checkedAt": "2026-12-05T18:00:00Z", "node": "node-0",
        "objectStore": {"ok": false, "error": "s3://events: connection refused"},
        "wal": {"ok": true},
        "projects": [
            {"id": "3", "organization": "shop", "slug": "web", "eventsLastHour": 0, "lastEventSeen": null},
            {"id": "2", "organization": "shop", "slug": "api", "eventsLastHour": 12,
             "lastEventSeen": "2026-12-05T17:59:01Z"},
            {"id": "1", "organization": "default", "slug": "web", "eventsLastHour": null}
        ]
    }))
    .unwrap();
    let at = k8s_openapi::jiff::Timestamp::from_second(1_796_493_600).unwrap();
    let mut answered = ErrorTrackerStatus::default();
    report(
        &ErrorTrackerStatus::default(),
        Some(4),
        &Answer::Answered(engine, at),
        &mut answered,
    );
    let mut unavailable = ErrorTrackerStatus::default();
    report(
        &answered,
        Some(5),
        &Answer::Unavailable("the engine did not answer within 10s".into()),
        &mut unavailable,
    );
    insta::assert_yaml_snapshot!(
        "engine_report",
        serde_json::json!({"answered": answered, "unavailable": unavailable}),
        {".**.lastTransitionTime" => "[time]"}
    );
}
