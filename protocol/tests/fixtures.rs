//! Event payloads from files: every one is accepted, normalized idempotently and grouped.
//!
//! - `tests/fixtures/events/`: payloads we wrote from the documented event schema, one per shape
//!   SDKs send (see its README.md); one snapshot each of the extracted columns and the grouping.
//! - `tests/fixtures/sdk/`: events captured from the official Python and Node SDKs
//!   (`scripts/capture-sdk-fixtures`); snapshots too, and when those SDKs are installed (as
//!   `scripts/test` does) a fresh capture must normalize and group like the committed one.
//! - A larger set of third-party payloads, when present beside the repository
//!   (`../shared/fixtures/events`, or `FAULTLINE_SHARED_FIXTURES`): the same checks without
//!   snapshots. A fresh clone does not have it; the test then says so and passes.

use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};
use std::process::Command;

use chrono::{DateTime, Utc};
use faultline_protocol::Event;
use faultline_protocol::grouping::{Grouping, group, issue_id};
use faultline_protocol::normalize::{NormalizeContext, normalize_event};
use serde_json::{Value, json};
use uuid::Uuid;

const EVENTS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/events");
const SDK: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/sdk");

/// The repository root (the workspace).
fn workspace() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("the protocol crate is inside the workspace")
}

/// A fixed date in 2024: the payloads' own timestamps lie in the 30 days before it, so they
/// are kept, while the deliberately old and future ones (and every SDK capture, which carries
/// the time it was made) are clamped to it.
pub(crate) fn received() -> DateTime<Utc> {
    "2024-05-20T10:00:00.123Z".parse().unwrap()
}

pub(crate) fn ctx() -> NormalizeContext {
    NormalizeContext {
        received: received(),
        client_ip: Some(IpAddr::V4(Ipv4Addr::new(203, 0, 113, 7))),
        event_id: Some(Uuid::from_u128(0x0123_4567_89ab_cdef_0123_4567_89ab_cdef)),
    }
}

/// What WAL replay does: no client IP, no envelope id, the same received time.
fn replay_ctx() -> NormalizeContext {
    NormalizeContext {
        received: received(),
        client_ip: None,
        event_id: None,
    }
}

/// The `.json` files of `dir` as (file stem, bytes), sorted by name.
fn read_dir(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.unwrap().path())
        .filter(|p: &PathBuf| p.extension().is_some_and(|e| e == "json"))
        .map(|p| {
            let name = p.file_stem().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read(&p).unwrap())
        })
        .collect();
    out.sort();
    out
}

/// Our own payloads and the committed SDK captures; SDK captures are named `sdk-<file>`.
fn in_repo() -> Vec<(String, Vec<u8>)> {
    let events = read_dir(Path::new(EVENTS));
    assert!(
        events.len() >= 38,
        "expected the event fixtures, found {}",
        events.len()
    );
    let sdk = read_dir(Path::new(SDK));
    assert!(
        sdk.len() >= 10,
        "expected the SDK captures, found {}",
        sdk.len()
    );
    let sdk = sdk
        .into_iter()
        .map(|(name, bytes)| (format!("sdk-{name}"), bytes));
    events.into_iter().chain(sdk).collect()
}

/// The third-party set beside the repository, or `None` (with a note on stderr) when absent.
fn shared() -> Option<Vec<(String, Vec<u8>)>> {
    let dir = std::env::var_os("FAULTLINE_SHARED_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            let beside = workspace().parent().unwrap_or_else(|| Path::new("/"));
            beside.join("shared/fixtures/events")
        });
    if !dir.is_dir() {
        eprintln!(
            "skipped: no third-party fixture set at {} (set FAULTLINE_SHARED_FIXTURES to a \
             directory of event payloads to run this test)",
            dir.display()
        );
        return None;
    }
    let fixtures = read_dir(&dir);
    assert!(
        !fixtures.is_empty(),
        "{}: no .json payloads in the fixture directory",
        dir.display()
    );
    eprintln!(
        "checking {} payloads from {}",
        fixtures.len(),
        dir.display()
    );
    Some(fixtures)
}

/// What a snapshot shows of an event: the columns the engine stores, and the grouping.
fn summary(event: &Event, grouping: &Grouping) -> Value {
    json!({
        "event_id": event.event_id.simple().to_string(),
        "timestamp": event.timestamp.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
        "level": event.level,
        "platform": event.platform,
        "release": event.release,
        "environment": event.environment,
        "server_name": event.server_name,
        "transaction": event.transaction,
        "message": event.message,
        "title": event.title,
        "exception_type": event.exception_type,
        "exception_value": event.exception_value,
        "culprit": event.culprit,
        "frame_count": event.frame_count,
        "user": [event.user_id, event.user_email, event.user_ip, event.user_username],
        "tags": event.tags,
        "fingerprint": event.fingerprint,
        "sdk": [event.sdk_name, event.sdk_version],
        "trace_id": event.trace_id,
        "grouping": {
            "method": grouping.method,
            "hash": grouping.hash,
            "hashes": grouping.hashes,
            "legacy_hash": grouping.legacy_hash,
            "components": grouping.components,
        },
    })
}

#[test]
fn every_fixture_normalizes_and_groups() {
    for (name, payload) in in_repo() {
        let event = normalize_event(&payload, &ctx()).unwrap_or_else(|e| panic!("{name}: {e}"));
        let grouping = group(&event);
        insta::assert_json_snapshot!(name, summary(&event, &grouping));
    }
}

/// Normalizes, normalizes the result again as WAL replay does, and checks both agree.
fn check_idempotent(fixtures: &[(String, Vec<u8>)]) {
    for (name, payload) in fixtures {
        let first = normalize_event(payload, &ctx()).unwrap_or_else(|e| panic!("{name}: {e}"));
        let second = normalize_event(first.json.as_bytes(), &replay_ctx())
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(first, second, "{name}: normalization is not idempotent");
        assert_eq!(group(&first), group(&second), "{name}");
    }
}

fn check_well_formed(fixtures: &[(String, Vec<u8>)]) {
    for (name, payload) in fixtures {
        let event = normalize_event(payload, &ctx()).unwrap_or_else(|e| panic!("{name}: {e}"));
        let grouping = group(&event);
        // ingest's grouping (only the deciding strategy, no trees) has the same hashes
        let at_ingest = faultline_protocol::grouping::grouping_of(&event);
        assert_eq!(
            (&at_ingest.hash, &at_ingest.hashes, at_ingest.method),
            (&grouping.hash, &grouping.hashes, grouping.method),
            "{name}"
        );
        assert_eq!(grouping.hash.len(), 32, "{name}");
        assert!(
            grouping
                .hash
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)),
            "{name}: {}",
            grouping.hash
        );
        assert!(issue_id(1, &grouping.hash) > 0, "{name}");
        assert!(!event.title.is_empty(), "{name}");
    }
}

#[test]
fn normalizing_the_normalized_json_gives_the_same_event() {
    check_idempotent(&in_repo());
}

#[test]
fn hashes_and_issue_ids_are_well_formed() {
    check_well_formed(&in_repo());
}

#[test]
fn odd_values_anywhere_are_never_fatal_and_normalization_stays_idempotent() {
    let checked = check_odd_values(&in_repo());
    assert!(checked > 1000, "{checked}");
}

#[test]
fn the_third_party_fixture_set_normalizes_groups_and_survives_odd_values() {
    let Some(fixtures) = shared() else {
        return;
    };
    check_well_formed(&fixtures);
    check_idempotent(&fixtures);
    print_grouping_change(&fixtures);
    let checked = check_odd_values(&fixtures);
    assert!(checked > 0, "{checked}");
}

/// Prints (does not assert) how the set groups under Sentry's grouping and under faultline's
/// earlier one: issues (distinct hashes), pairs of payloads that share an issue, and how many of
/// those pairs both agree on.
fn print_grouping_change(fixtures: &[(String, Vec<u8>)]) {
    let groupings: Vec<Grouping> = fixtures
        .iter()
        .map(|(_, payload)| group(&normalize_event(payload, &ctx()).unwrap()))
        .collect();
    let pairs = |key: &dyn Fn(&Grouping) -> &str| {
        let mut out = Vec::new();
        for i in 0..groupings.len() {
            for j in i + 1..groupings.len() {
                if key(&groupings[i]) == key(&groupings[j]) {
                    out.push((i, j));
                }
            }
        }
        out
    };
    let before = pairs(&|g| g.legacy_hash.as_deref().unwrap_or_default());
    let after = pairs(&|g| g.hash.as_str());
    let distinct = |key: &dyn Fn(&Grouping) -> &str| {
        let mut hashes: Vec<&str> = groupings.iter().map(key).collect();
        hashes.sort_unstable();
        hashes.dedup();
        hashes.len()
    };
    let common = before.iter().filter(|p| after.contains(p)).count();
    eprintln!(
        "grouping of {} payloads: {} issues before (faultline's first grouping), {} after \
         (Sentry's newstyle:2026-01-20); pairs in one issue: {} before, {} after, {} in both",
        groupings.len(),
        distinct(&|g| g.legacy_hash.as_deref().unwrap_or_default()),
        distinct(&|g| g.hash.as_str()),
        before.len(),
        after.len(),
        common
    );
    for (i, j) in &before {
        if !after.contains(&(*i, *j)) {
            eprintln!("  split now: {} / {}", fixtures[*i].0, fixtures[*j].0);
        }
    }
    for (i, j) in &after {
        if !before.contains(&(*i, *j)) {
            eprintln!("  together now: {} / {}", fixtures[*i].0, fixtures[*j].0);
        }
    }
}

/// Every path of `value` (object keys, the first few array elements) down to `depth`.
fn paths(value: &Value, depth: usize, prefix: &mut Vec<PathPart>, out: &mut Vec<Vec<PathPart>>) {
    if depth == 0 {
        return;
    }
    match value {
        Value::Object(map) => {
            for (key, child) in map {
                prefix.push(PathPart::Key(key.clone()));
                out.push(prefix.clone());
                paths(child, depth - 1, prefix, out);
                prefix.pop();
            }
        }
        Value::Array(items) => {
            for (i, child) in items.iter().enumerate().take(2) {
                prefix.push(PathPart::Index(i));
                out.push(prefix.clone());
                paths(child, depth - 1, prefix, out);
                prefix.pop();
            }
        }
        _ => {}
    }
}

#[derive(Clone, Debug)]
enum PathPart {
    Key(String),
    Index(usize),
}

fn get_mut<'a>(value: &'a mut Value, path: &[PathPart]) -> &'a mut Value {
    path.iter().fold(value, |v, part| match part {
        PathPart::Key(k) => &mut v[k.as_str()],
        PathPart::Index(i) => &mut v[*i],
    })
}

/// Sentry's promise: invalid fields are dropped or fixed, never fatal. Replaces values all
/// over the fixtures by values of the wrong type and checks that the event is still accepted
/// and that normalization stays idempotent. Returns how many variants were checked.
fn check_odd_values(fixtures: &[(String, Vec<u8>)]) -> usize {
    let odd = [
        json!(null),
        json!(-1),
        json!(1e300),
        json!("x"),
        json!([]),
        json!({}),
        json!([{}]),
    ];
    let mut checked = 0;
    for (name, payload) in fixtures {
        if payload.len() > 16 * 1024 {
            continue;
        }
        let original: Value = serde_json::from_slice(payload).unwrap();
        let mut all = Vec::new();
        paths(&original, 5, &mut Vec::new(), &mut all);
        // a spread of at most 30 paths per fixture keeps the test quick in debug builds
        let step = all.len().div_ceil(30).max(1);
        for path in all.iter().step_by(step) {
            for value in &odd {
                let mut mutated = original.clone();
                *get_mut(&mut mutated, path) = value.clone();
                let bytes = mutated.to_string();
                let first = normalize_event(bytes.as_bytes(), &ctx())
                    .unwrap_or_else(|e| panic!("{name} {path:?}: {e}"));
                let second = normalize_event(first.json.as_bytes(), &replay_ctx()).unwrap();
                assert_eq!(first, second, "{name} {path:?} = {value}");
                checked += 1;
            }
        }
    }
    checked
}

/// Runs the capture scripts with the SDKs the test command installs, into a fresh directory.
/// `None` (with a note on stderr) when neither SDK is installed here. A location given in
/// `FAULTLINE_TEST_PYTHON` or `FAULTLINE_TEST_NODE_MODULES` (as `scripts/test` does) must hold
/// its SDK: only the defaults may be missing.
fn capture_now(dir: &Path) -> Option<Vec<String>> {
    let root = workspace();
    let configured = |var: &str, default: &str| match std::env::var_os(var) {
        Some(path) => (PathBuf::from(path), true),
        None => (root.join(default), false),
    };
    let (python, python_required) = configured("FAULTLINE_TEST_PYTHON", ".venv/bin/python");
    let (node_modules, node_required) =
        configured("FAULTLINE_TEST_NODE_MODULES", "tests/node/node_modules");
    assert!(
        !python_required || python.exists(),
        "FAULTLINE_TEST_PYTHON is {}, which does not exist",
        python.display()
    );
    assert!(
        !node_required || node_modules.join("@sentry/node").exists(),
        "FAULTLINE_TEST_NODE_MODULES is {}, which has no @sentry/node",
        node_modules.display()
    );
    let mut captured = Vec::new();
    if python.exists() {
        let mut cmd = Command::new(&python);
        cmd.arg(root.join("tests/clients/python/capture_events.py"))
            .arg(dir);
        run(cmd, "python capture_events.py");
        captured.push("python".to_owned());
    } else {
        eprintln!(
            "skipped the Python SDK: no Python at {} (scripts/test installs it)",
            python.display()
        );
    }
    if node_modules.join("@sentry/node").exists() {
        let mut cmd = Command::new("node");
        cmd.arg(root.join("tests/node/capture_events.js"))
            .arg(dir)
            .env("NODE_PATH", &node_modules);
        run(cmd, "node capture_events.js");
        captured.push("node".to_owned());
    } else {
        eprintln!(
            "skipped the Node SDK: @sentry/node is not installed in {} (scripts/test installs it)",
            node_modules.display()
        );
    }
    (!captured.is_empty()).then_some(captured)
}

fn run(mut cmd: Command, what: &str) {
    let output = cmd
        .output()
        .unwrap_or_else(|e| panic!("cannot run {what}: {e}"));
    assert!(
        output.status.success(),
        "{what} failed ({}):\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
}

/// The committed captures are what the installed SDKs send today: a fresh capture of every
/// scenario gives the same files, and each normalizes to the same title, exception, culprit,
/// level, platform and grouping as the committed one. After an SDK upgrade that changes them,
/// `scripts/capture-sdk-fixtures` refreshes the captures (then review the snapshots).
#[test]
fn the_committed_sdk_captures_match_what_the_installed_sdks_send() {
    let dir = tempfile::tempdir().unwrap();
    let Some(sdks) = capture_now(dir.path()) else {
        return;
    };
    let fresh = read_dir(dir.path());
    let committed: Vec<(String, Vec<u8>)> = read_dir(Path::new(SDK))
        .into_iter()
        .filter(|(name, _)| sdks.iter().any(|sdk| name.starts_with(&format!("{sdk}-"))))
        .collect();
    let names = |set: &[(String, Vec<u8>)]| set.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>();
    assert_eq!(
        names(&fresh),
        names(&committed),
        "the capture scripts wrote other files than the committed ones: run scripts/capture-sdk-fixtures"
    );
    for ((name, now), (_, then)) in fresh.iter().zip(&committed) {
        let now = normalize_event(now, &ctx()).unwrap_or_else(|e| panic!("{name}: {e}"));
        let then = normalize_event(then, &ctx()).unwrap();
        let seen = |e: &Event| {
            json!([
                e.title,
                e.exception_type,
                e.exception_value,
                e.culprit,
                e.level,
                e.platform,
                e.sdk_name,
                group(e),
            ])
        };
        assert_eq!(
            seen(&now),
            seen(&then),
            "{name}: the installed SDK sends something else than the committed capture: \
             run scripts/capture-sdk-fixtures and review the snapshots"
        );
    }
}
