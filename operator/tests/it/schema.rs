//! Rung 2: the schema. The generated CRD is structural (what the API server demands of a
//! `apiextensions.k8s.io/v1` CRD), `crds/` holds exactly what `faultline-operator crd` prints,
//! and the CEL `x-kubernetes-validations` accept the good specs and reject the bad ones with
//! their message. The CEL rules are evaluated client-side by kube's `cel` feature (kube-cel),
//! on the object with schema defaults filled as the API server would; no API server runs here.

use faultline_operator::ErrorTracker;
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinitionVersion;
use kube::CustomResourceExt;
use kube::core::cel::ErrorKind;
use serde_json::Value;

use crate::common::tracker;

#[test]
fn crds_directory_and_chart_match_the_generated_crds() {
    let generated = faultline_operator::crd_files();
    assert_eq!(
        generated.iter().map(|(f, _)| *f).collect::<Vec<_>>(),
        ["errortracker.yaml", "backup.yaml", "faultlineproject.yaml"]
    );
    for dir in ["crds", "charts/faultline-operator/crds"] {
        for (file, yaml) in &generated {
            let path = format!("{}/../{dir}/{file}", env!("CARGO_MANIFEST_DIR"));
            let committed = std::fs::read_to_string(path).unwrap_or_default();
            assert!(
                &committed == yaml,
                "{dir}/{file} differs from the CRD generated from the Rust types; regenerate both copies with\n  \
                 cargo run -p faultline-operator -- crd --out-dir crds && cp crds/*.yaml charts/faultline-operator/crds/"
            );
        }
    }
}

#[test]
fn crd_names_versions_and_printer_columns() {
    let crd = ErrorTracker::crd();
    assert_eq!(
        crd.metadata.name.as_deref(),
        Some("errortrackers.faultline.dev")
    );
    assert_eq!(crd.spec.scope, "Namespaced");
    assert_eq!(
        crd.spec.names.short_names.as_deref(),
        Some(&["et".to_owned()][..])
    );
    let version = &crd.spec.versions[0];
    assert_eq!(version.name, "v1alpha1");
    assert!(version.subresources.as_ref().unwrap().status.is_some());
    let columns: Vec<_> = version
        .additional_printer_columns
        .as_ref()
        .unwrap()
        .iter()
        .map(|c| c.name.as_str())
        .collect();
    assert_eq!(
        columns,
        [
            "Replicas",
            "Ready",
            "Status",
            "Ingest",
            "Object Store",
            "Last Backup",
            "Age"
        ]
    );
}

fn schema() -> Value {
    schema_of(&ErrorTracker::crd().spec.versions[0])
}

/// The OpenAPI schema of one version of a CRD, as JSON.
fn schema_of(version: &CustomResourceDefinitionVersion) -> Value {
    serde_json::to_value(
        version
            .schema
            .as_ref()
            .unwrap()
            .open_api_v3_schema
            .as_ref()
            .unwrap(),
    )
    .unwrap()
}

/// Checks the structural-schema rules of the API server on one node and its children.
fn check_structural(node: &Value, path: &str, problems: &mut Vec<String>) {
    let Some(object) = node.as_object() else {
        return;
    };
    for forbidden in ["$ref", "definitions", "$defs", "$schema"] {
        if object.contains_key(forbidden) {
            problems.push(format!("{path}: has {forbidden}"));
        }
    }
    let escape = object.contains_key("x-kubernetes-int-or-string")
        || object.contains_key("x-kubernetes-preserve-unknown-fields");
    if !escape && !object.contains_key("type") {
        problems.push(format!("{path}: no type"));
    }
    for junction in ["anyOf", "oneOf", "allOf"] {
        for (i, branch) in object
            .get(junction)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .enumerate()
        {
            // Inside value validations, types, descriptions and defaults are not allowed.
            for key in [
                "type",
                "description",
                "default",
                "nullable",
                "additionalProperties",
            ] {
                if branch.get(key).is_some() {
                    problems.push(format!("{path}.{junction}[{i}]: has {key}"));
                }
            }
        }
    }
    if let Some(properties) = object.get("properties").and_then(Value::as_object) {
        for (name, child) in properties {
            check_structural(child, &format!("{path}.{name}"), problems);
        }
    }
    if let Some(items) = object.get("items") {
        check_structural(items, &format!("{path}[]"), problems);
    }
    if let Some(extra) = object.get("additionalProperties").filter(|v| v.is_object()) {
        check_structural(extra, &format!("{path}{{}}"), problems);
    }
}

#[test]
fn crd_is_structural() {
    let mut problems = Vec::new();
    check_structural(&schema(), "", &mut problems);
    assert!(
        problems.is_empty(),
        "not structural:\n{}",
        problems.join("\n")
    );
    // and the checker does catch a violation
    let mut broken = schema();
    broken["properties"]["spec"]["properties"]["replicas"]
        .as_object_mut()
        .unwrap()
        .remove("type");
    let mut problems = Vec::new();
    check_structural(&broken, "", &mut problems);
    assert_eq!(problems, [".spec.replicas: no type"]);
}

#[test]
fn schema_fills_defaults() {
    let spec = &schema()["properties"]["spec"]["properties"];
    assert_eq!(spec["replicas"]["default"], 1);
    assert_eq!(
        spec["retention"]["properties"]["defaultDays"]["default"],
        90
    );
    assert_eq!(
        spec["security"]["properties"]["readOnlyRootFilesystem"]["default"],
        true
    );
    assert_eq!(
        spec["networkPolicy"]["properties"]["enabled"]["default"],
        true
    );
    assert_eq!(
        spec["storage"]["properties"]["wal"]["properties"]["size"]["default"],
        "10Gi"
    );
    assert!(
        spec["replicas"]["description"]
            .as_str()
            .unwrap()
            .contains("Number of engine pods")
    );
}

/// Both kinds of project limit their quotas in the schema as the engine does: the categories
/// it counts (an enum, so a typo is refused by the API server), at most 20 quotas, a limit of 0
/// or more, a window of 1 s to a day (60 s unset).
#[test]
fn the_schema_limits_quotas_as_the_engine_does() {
    let project_schema = schema_of(&faultline_operator::FaultlineProject::crd().spec.versions[0]);
    let tracker_schema = schema();
    for (kind, quotas) in [
        (
            "ErrorTracker",
            &tracker_schema["properties"]["spec"]["properties"]["projects"]["items"]["properties"]
                ["quotas"],
        ),
        (
            "FaultlineProject",
            &project_schema["properties"]["spec"]["properties"]["quotas"],
        ),
    ] {
        assert_eq!(quotas["type"], "array", "{kind}");
        assert_eq!(quotas["maxItems"], 20, "{kind}");
        assert!(
            quotas["description"]
                .as_str()
                .unwrap()
                .contains("X-Sentry-Rate-Limits"),
            "{kind}"
        );
        let quota = &quotas["items"]["properties"];
        assert_eq!(
            quota["categories"]["items"]["enum"],
            serde_json::json!(faultline_config::QUOTA_CATEGORIES),
            "{kind}"
        );
        assert_eq!(quota["limit"]["minimum"], 0.0, "{kind}");
        let window = &quota["windowSeconds"];
        assert_eq!(
            (&window["minimum"], &window["maximum"], &window["default"]),
            (
                &serde_json::json!(1.0),
                &serde_json::json!(86400.0),
                &serde_json::json!(60)
            ),
            "{kind}"
        );
        assert_eq!(
            quotas["items"]["required"],
            serde_json::json!(["limit"]),
            "{kind}"
        );
    }
}

/// The messages of the rules `tracker` breaks (every failure must be a rule evaluating to
/// false, not a rule the evaluator could not compile or run).
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
fn cel_rules_accept_the_fixtures() {
    for fixture in [
        "minimal.yaml",
        "s3-ha.yaml",
        "scheduled.yaml",
        "bootstrap.yaml",
        "oidc.yaml",
    ] {
        assert_eq!(
            broken_rules(&tracker(fixture)),
            Vec::<String>::new(),
            "{fixture}"
        );
    }
}

#[test]
fn cel_rules_reject_what_they_should() {
    type Edit = fn(&mut ErrorTracker);
    let cases: [(&str, &str, Edit); 6] = [
        ("s3-ha.yaml", "set either local or s3, not both", |t| {
            t.spec.storage.object_store.local = Some(Default::default());
        }),
        (
            "minimal.yaml",
            "replicas above 1 need storage.objectStore.s3",
            |t| {
                t.spec.replicas = 2;
            },
        ),
        ("s3-ha.yaml", "each name must be unique", |t| {
            let copy = t.spec.projects[0].clone();
            t.spec.projects.push(copy);
        }),
        ("s3-ha.yaml", "each explicit id must be unique", |t| {
            t.spec.projects[0].id = Some(42);
        }),
        ("s3-ha.yaml", "backup: set keepLast or keepDays", |t| {
            t.spec.backup.as_mut().unwrap().keep_last = None;
        }),
        (
            "minimal.yaml",
            "metadata.name must be at most 40 characters",
            |t| {
                t.metadata.name = Some("x".repeat(41));
            },
        ),
    ];
    for (fixture, message, edit) in cases {
        let mut tracker = tracker(fixture);
        edit(&mut tracker);
        let broken = broken_rules(&tracker);
        assert_eq!(broken.len(), 1, "{fixture} / {message}: {broken:?}");
        assert!(
            broken[0].contains(message),
            "{fixture}: expected {message:?}, got {broken:?}"
        );
    }
}

#[test]
fn cel_rules_allow_the_neighbouring_good_cases() {
    // one pod on local storage, scaled to zero, or backups pruned by age only: all fine
    let mut t = tracker("minimal.yaml");
    t.spec.replicas = 0;
    assert!(broken_rules(&t).is_empty());
    let mut t = tracker("s3-ha.yaml");
    let backup = t.spec.backup.as_mut().unwrap();
    backup.keep_last = None;
    backup.keep_days = Some(30);
    assert!(broken_rules(&t).is_empty());
    // two projects without explicit ids do not count as a duplicate id
    let mut t = tracker("s3-ha.yaml");
    t.spec.projects[1].id = None;
    assert!(broken_rules(&t).is_empty());
}

/// The messages of the transition rules an update from `old` to `new` breaks.
fn broken_on_update(new: &ErrorTracker, old: &ErrorTracker) -> Vec<String> {
    match new.validate_cel_update(old) {
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
fn volume_layout_cannot_change_after_creation() {
    let old = tracker("minimal.yaml");
    let mut grown = old.clone();
    grown.spec.storage.wal.size = "20Gi".into();
    assert_eq!(broken_on_update(&grown, &old).len(), 1);
    assert!(broken_on_update(&grown, &old)[0].contains("storage.wal is immutable"));

    let mut to_s3 = tracker("s3-ha.yaml");
    to_s3.spec.replicas = 1;
    to_s3.spec.storage.wal = old.spec.storage.wal.clone();
    let broken = broken_on_update(&to_s3, &old);
    assert!(
        broken
            .iter()
            .any(|m| m.contains("cannot switch between local and s3")),
        "{broken:?}"
    );

    let mut bigger_objects = old.clone();
    bigger_objects.spec.storage.object_store.local = Some(faultline_operator::crd::VolumeSpec {
        size: "50Gi".into(),
        storage_class_name: None,
    });
    let broken = broken_on_update(&bigger_objects, &old);
    assert!(
        broken
            .iter()
            .any(|m| m.contains("storage.objectStore.local is immutable")),
        "{broken:?}"
    );

    // what may change: replicas, projects, retention, the S3 endpoint...
    let s3 = tracker("s3-ha.yaml");
    let mut edited = s3.clone();
    edited.spec.replicas = 5;
    edited.spec.projects.pop();
    edited.spec.retention.default_days = 7;
    edited
        .spec
        .storage
        .object_store
        .s3
        .as_mut()
        .unwrap()
        .endpoint = Some("https://s3.example.com".into());
    assert_eq!(broken_on_update(&edited, &s3), Vec::<String>::new());
    assert_eq!(broken_on_update(&old, &old), Vec::<String>::new());
}

#[test]
fn backup_destination_and_bootstrap_source_are_one_of_s3_or_volume() {
    let both = serde_json::json!({
        "s3": {"bucket": "faultline-backups", "credentialsSecret": {"name": "creds"}},
        "volume": {"claimName": "backups"},
    });
    let mut t = tracker("s3-ha.yaml");
    t.spec.backup.as_mut().unwrap().destination = serde_json::from_value(both.clone()).unwrap();
    assert_eq!(
        broken_rules(&t),
        ["backup.destination: set exactly one of s3 or volume"]
    );
    let mut t = tracker("bootstrap.yaml");
    t.spec.bootstrap.as_mut().unwrap().backup.source =
        serde_json::from_value(serde_json::json!({})).unwrap();
    assert_eq!(
        broken_rules(&t),
        ["bootstrap.backup.source: set exactly one of s3 or volume"]
    );
    // the neighbours: a volume alone, s3 alone
    let mut t = tracker("bootstrap.yaml");
    t.spec.bootstrap.as_mut().unwrap().backup.source =
        serde_json::from_value(serde_json::json!({"volume": {"claimName": "old"}})).unwrap();
    assert_eq!(broken_rules(&t), Vec::<String>::new());
    assert_eq!(
        broken_rules(&tracker("bootstrap.yaml")),
        Vec::<String>::new()
    );
}

#[test]
fn bootstrap_cannot_be_added_changed_or_dropped_after_creation() {
    let restored = tracker("bootstrap.yaml");
    let immutable = "bootstrap is immutable: it applies only when the tracker is created";

    let mut later = restored.clone();
    later.spec.bootstrap = None;
    assert_eq!(broken_on_update(&restored, &later), [immutable], "added");
    assert_eq!(broken_on_update(&later, &restored), [immutable], "dropped");
    let mut other_time = restored.clone();
    other_time.spec.bootstrap.as_mut().unwrap().backup.until = Some("2026-11-25T00:00:00Z".into());
    assert_eq!(broken_on_update(&other_time, &restored), [immutable]);

    // the rest of a restored tracker stays editable
    let mut edited = restored.clone();
    edited.spec.retention.default_days = 7;
    edited.spec.projects.clear();
    assert_eq!(broken_on_update(&edited, &restored), Vec::<String>::new());
}

#[test]
fn backup_crd_is_structural_and_its_spec_immutable() {
    use faultline_operator::crd::{Backup, BackupSpec};
    let crd = Backup::crd();
    assert_eq!(crd.metadata.name.as_deref(), Some("backups.faultline.dev"));
    assert_eq!(crd.spec.scope, "Namespaced");
    let version = &crd.spec.versions[0];
    assert!(version.subresources.as_ref().unwrap().status.is_some());
    let columns: Vec<_> = version
        .additional_printer_columns
        .iter()
        .flatten()
        .map(|c| c.name.as_str())
        .collect();
    assert_eq!(columns, ["Tracker", "Phase", "Backup", "Age"]);
    let schema = schema_of(version);
    let mut problems = Vec::new();
    check_structural(&schema, "", &mut problems);
    assert!(problems.is_empty(), "{problems:?}");
    assert_eq!(
        schema["properties"]["status"]["properties"]["phase"]["enum"],
        serde_json::json!(["Pending", "Running", "Succeeded", "Failed"])
    );

    let mut old = Backup::new(
        "before-upgrade",
        BackupSpec {
            tracker: "errors".into(),
        },
    );
    old.metadata.namespace = Some("default".into());
    assert!(old.validate_cel().is_ok());
    let mut new = old.clone();
    new.spec.tracker = "other".into();
    let errors = new.validate_cel_update(&old).unwrap_err();
    let messages: Vec<_> = errors
        .as_slice()
        .iter()
        .map(|e| e.message.clone())
        .collect();
    assert_eq!(messages.len(), 1);
    assert!(messages[0].contains("spec is immutable"), "{messages:?}");
    // a status change is not a spec change
    let mut progressed = old.clone();
    progressed.status = Some(Default::default());
    assert!(progressed.validate_cel_update(&old).is_ok());
}
