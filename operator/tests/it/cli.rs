//! The binary as a user runs it: `crd` prints (or writes with `--out-dir`) what `crds/` holds, `render -f` prints every
//! object of a tracker as YAML documents with the placeholder uid. No API server involved.

use std::process::Command;

use serde::Deserialize;
use serde_json::Value;

fn operator(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_faultline-operator"))
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn crd_prints_the_committed_crds() {
    let committed = |file: &str| {
        std::fs::read_to_string(format!("{}/../crds/{file}", env!("CARGO_MANIFEST_DIR"))).unwrap()
    };
    let tracker = committed("errortracker.yaml");
    let backup = committed("backup.yaml");
    let project = committed("faultlineproject.yaml");
    assert_eq!(
        operator(&["crd"]),
        format!("{tracker}---\n{backup}---\n{project}")
    );

    let dir = tempfile::tempdir().unwrap();
    operator(&["crd", "--out-dir", dir.path().to_str().unwrap()]);
    for (file, want) in [
        ("errortracker.yaml", &tracker),
        ("backup.yaml", &backup),
        ("faultlineproject.yaml", &project),
    ] {
        let written = std::fs::read_to_string(dir.path().join(file)).unwrap();
        assert_eq!(&written, want, "{file}");
    }
}

#[test]
fn render_prints_every_object_as_yaml_documents() {
    let fixture = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/s3-ha.yaml");
    let text = operator(&["render", "-f", fixture]);
    let docs: Vec<Value> = serde_yaml::Deserializer::from_str(&text)
        .map(|d| Value::deserialize(d).unwrap())
        .collect();
    let kinds: Vec<String> = docs
        .iter()
        .map(|d| {
            format!(
                "{}/{}",
                d["kind"].as_str().unwrap(),
                d["metadata"]["name"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(
        kinds,
        [
            "ServiceAccount/errors",
            "ConfigMap/errors-config",
            "Secret/errors-admin-token",
            "Secret/errors-dsn-shop",
            "Secret/errors-dsn-api",
            "Service/errors",
            "Service/errors-admin",
            "Service/errors-pods",
            "StatefulSet/errors",
            "PodDisruptionBudget/errors",
            "NetworkPolicy/errors",
            "Ingress/errors",
        ]
    );
    for doc in &docs {
        assert_eq!(
            doc["metadata"]["ownerReferences"][0]["uid"],
            faultline_operator::render::PLACEHOLDER_UID
        );
        assert_eq!(doc["metadata"]["namespace"], "team-a");
        assert!(doc["apiVersion"].is_string());
    }
}

#[test]
fn render_reports_a_bad_file() {
    let out = Command::new(env!("CARGO_BIN_EXE_faultline-operator"))
        .args(["render", "-f", "/nonexistent/tracker.yaml"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("/nonexistent/tracker.yaml"));
}

#[test]
fn render_takes_every_tracker_of_a_multi_document_file() {
    let example = concat!(env!("CARGO_MANIFEST_DIR"), "/../examples/multi-tenant.yaml");
    let text = operator(&["render", "-f", example]);
    let docs: Vec<Value> = serde_yaml::Deserializer::from_str(&text)
        .map(|d| Value::deserialize(d).unwrap())
        .collect();
    let statefulsets: Vec<String> = docs
        .iter()
        .filter(|d| d["kind"] == "StatefulSet")
        .map(|d| {
            format!(
                "{}/{}",
                d["metadata"]["namespace"].as_str().unwrap(),
                d["metadata"]["name"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(statefulsets.len(), 2, "{statefulsets:?}");
    assert_eq!(
        docs.iter().filter(|d| d["kind"] == "Namespace").count(),
        0,
        "namespaces are not echoed"
    );
}

#[test]
fn render_refuses_a_file_without_a_tracker() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("ns.yaml");
    std::fs::write(
        &path,
        "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: x\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_faultline-operator"))
        .args(["render", "-f", path.to_str().unwrap()])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no document of kind ErrorTracker"));
}
