//! Rung 2, continued: every `ErrorTracker` (and `Backup`, `FaultlineProject`) in `examples/` is read by the Rust type without
//! losing a field (a misspelt field would be silently pruned by the API server), passes the
//! CEL rules and the operator's own checks, and builds into objects. No API server runs here.

use faultline_operator::{Backup, ErrorTracker, FaultlineProject};
use serde::Deserialize;
use serde_json::Value;

/// Paths in `original` that are missing from `parsed`.
fn lost_fields(original: &Value, parsed: &Value, path: &str, out: &mut Vec<String>) {
    match (original, parsed) {
        (Value::Object(a), Value::Object(b)) => {
            for (key, value) in a {
                match b.get(key) {
                    Some(other) => lost_fields(value, other, &format!("{path}.{key}"), out),
                    None => out.push(format!("{path}.{key}")),
                }
            }
        }
        (Value::Array(a), Value::Array(b)) => {
            for (i, (x, y)) in a.iter().zip(b).enumerate() {
                lost_fields(x, y, &format!("{path}[{i}]"), out);
            }
        }
        _ => {}
    }
}

#[test]
fn examples_parse_validate_and_build() {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples");
    let mut seen = 0;
    let mut backups = 0;
    let mut projects = 0;
    let mut paths: Vec<_> = std::fs::read_dir(dir)
        .expect("examples/ exists")
        .map(|e| e.unwrap().path())
        .collect();
    paths.sort();
    for path in paths
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
    {
        let text = std::fs::read_to_string(&path).unwrap();
        for doc in serde_yaml::Deserializer::from_str(&text) {
            let original = Value::deserialize(doc).unwrap();
            if original["kind"] == "Backup" {
                let what = format!("{} {}", path.display(), original["metadata"]["name"]);
                let backup: Backup = serde_json::from_value(original.clone())
                    .unwrap_or_else(|e| panic!("{what}: {e}"));
                let mut lost = Vec::new();
                let parsed = serde_json::to_value(&backup).unwrap();
                lost_fields(&original, &parsed, "", &mut lost);
                assert!(lost.is_empty(), "{what}: unknown fields {lost:?}");
                if let Err(errors) = backup.validate_cel() {
                    panic!("{what}: {errors:?}");
                }
                backups += 1;
                continue;
            }
            if original["kind"] == "FaultlineProject" {
                let what = format!("{} {}", path.display(), original["metadata"]["name"]);
                let project: FaultlineProject = serde_json::from_value(original.clone())
                    .unwrap_or_else(|e| panic!("{what}: {e}"));
                let mut lost = Vec::new();
                let parsed = serde_json::to_value(&project).unwrap();
                lost_fields(&original, &parsed, "", &mut lost);
                assert!(lost.is_empty(), "{what}: unknown fields {lost:?}");
                if let Err(errors) = project.validate_cel() {
                    panic!("{what}: {errors:?}");
                }
                assert!(
                    project.spec.tracker_ref().is_some(),
                    "{what}: tracker is namespace/name"
                );
                faultline_operator::builders::project::check(&project.spec)
                    .unwrap_or_else(|e| panic!("{what}: {e}"));
                projects += 1;
                continue;
            }
            if original["kind"] != "ErrorTracker" {
                continue;
            }
            let what = format!("{} {}", path.display(), original["metadata"]["name"]);
            let mut tracker: ErrorTracker =
                serde_json::from_value(original.clone()).unwrap_or_else(|e| panic!("{what}: {e}"));
            let mut lost = Vec::new();
            lost_fields(
                &original,
                &serde_json::to_value(&tracker).unwrap(),
                "",
                &mut lost,
            );
            assert!(
                lost.is_empty(),
                "{what}: fields the schema does not know: {lost:?}"
            );
            if let Err(errors) = tracker.validate_cel() {
                panic!("{what}: {errors:?}");
            }
            tracker
                .metadata
                .namespace
                .get_or_insert_with(|| "default".into());
            tracker.metadata.uid = Some("uid".into());
            let credentials = faultline_operator::builders::Credentials::generate(&tracker);
            faultline_operator::builders::build(&tracker, &credentials)
                .unwrap_or_else(|e| panic!("{what}: {e}"));
            seen += 1;
        }
    }
    assert!(
        seen >= 3,
        "expected the examples to hold at least 3 ErrorTrackers, found {seen}"
    );
    assert!(backups >= 1, "expected a Backup among the examples");
    assert!(
        projects >= 2,
        "expected FaultlineProjects among the examples"
    );
}
