//! Every real SDK payload in `shared/fixtures/events` is accepted, normalized idempotently
//! and grouped; one snapshot per fixture of the extracted columns and the grouping.

use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;

use chrono::{DateTime, Utc};
use faultline_protocol::grouping::{group, issue_id};
use faultline_protocol::normalize::{NormalizeContext, normalize_event};
use serde_json::{Value, json};
use uuid::Uuid;

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../shared/fixtures/events");

/// Close to most fixtures' own timestamps would hide the clamping rule, so: a fixed date in
/// 2024 (fixtures from 2024-04 keep their time, older ones are clamped to this).
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

fn fixtures() -> Vec<(String, Vec<u8>)> {
    let mut out: Vec<(String, Vec<u8>)> = std::fs::read_dir(FIXTURES)
        .expect("shared/fixtures/events beside the repository")
        .map(|entry| entry.unwrap().path())
        .filter(|p: &PathBuf| p.extension().is_some_and(|e| e == "json"))
        .map(|p| {
            let name = p.file_stem().unwrap().to_string_lossy().into_owned();
            (name, std::fs::read(&p).unwrap())
        })
        .collect();
    out.sort();
    assert!(
        out.len() >= 50,
        "expected the fixture set, found {}",
        out.len()
    );
    out
}

#[test]
fn every_fixture_normalizes_and_groups() {
    for (name, payload) in fixtures() {
        let event = normalize_event(&payload, &ctx()).unwrap_or_else(|e| panic!("{name}: {e}"));
        let grouping = group(&event);
        let snapshot = json!({
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
                "components": grouping.components,
            },
        });
        insta::assert_json_snapshot!(name, snapshot);
    }
}

#[test]
fn normalizing_the_normalized_json_gives_the_same_event() {
    for (name, payload) in fixtures() {
        let first = normalize_event(&payload, &ctx()).unwrap();
        // what WAL replay does: no client IP, no envelope id, the same received time
        let replay_ctx = NormalizeContext {
            received: received(),
            client_ip: None,
            event_id: None,
        };
        let second = normalize_event(first.json.as_bytes(), &replay_ctx)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(first, second, "{name}: normalization is not idempotent");
        assert_eq!(group(&first), group(&second), "{name}");
    }
}

#[test]
fn hashes_and_issue_ids_are_well_formed() {
    for (name, payload) in fixtures() {
        let event = normalize_event(&payload, &ctx()).unwrap();
        let grouping = group(&event);
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
/// and that normalization stays idempotent.
#[test]
fn odd_values_anywhere_are_never_fatal_and_normalization_stays_idempotent() {
    let odd = [
        json!(null),
        json!(-1),
        json!(1e300),
        json!("x"),
        json!([]),
        json!({}),
        json!([{}]),
    ];
    let replay_ctx = NormalizeContext {
        received: received(),
        client_ip: None,
        event_id: None,
    };
    let mut checked = 0;
    for (name, payload) in fixtures() {
        if payload.len() > 16 * 1024 {
            continue;
        }
        let original: Value = serde_json::from_slice(&payload).unwrap();
        let mut all = Vec::new();
        paths(&original, 5, &mut Vec::new(), &mut all);
        // a spread of at most 30 paths per fixture keeps the test quick in debug builds (all
        // paths of depth 5 were checked once by hand: 13 s)
        let step = all.len().div_ceil(30).max(1);
        for path in all.iter().step_by(step) {
            for value in &odd {
                let mut mutated = original.clone();
                *get_mut(&mut mutated, path) = value.clone();
                let bytes = mutated.to_string();
                let first = normalize_event(bytes.as_bytes(), &ctx())
                    .unwrap_or_else(|e| panic!("{name} {path:?}: {e}"));
                let second = normalize_event(first.json.as_bytes(), &replay_ctx).unwrap();
                assert_eq!(first, second, "{name} {path:?} = {value}");
                checked += 1;
            }
        }
    }
    assert!(checked > 1000, "{checked}");
}
