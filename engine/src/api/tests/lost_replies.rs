//! Manifest commits whose reply was lost: every event is stored once, also after a restart.

use std::sync::Arc;

use super::*;
use crate::store::Store;
use crate::store::faults::LoseReplies;

fn config(dir: &std::path::Path) -> Config {
    let mut config = Config::default();
    config.storage.data_dir = dir.to_owned();
    config.projects.push(super::shop());
    config
}

/// A node whose object store loses the replies `faults` chooses to lose.
async fn harness_on(dir: tempfile::TempDir, faults: Option<Arc<LoseReplies>>) -> Harness {
    let config = config(dir.path());
    let mut store = Store::open(&config).unwrap();
    if let Some(faults) = faults {
        store = store.with_objects(faults);
    }
    Harness::of(
        dir,
        Arc::new(Node::open_with_store(config, store).await.unwrap()),
    )
}

fn faults_on(dir: &tempfile::TempDir) -> Arc<LoseReplies> {
    let store = Store::open(&config(dir.path())).unwrap();
    Arc::new(LoseReplies::new(store.objects, "manifest/", 0))
}

async fn send_events(h: &Harness, messages: &[&str]) {
    for message in messages {
        let reply = h.store(format!(r#"{{"message":"{message}"}}"#)).await;
        assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    }
}

/// Events per message and the issues' event counts, as a user's queries show them.
async fn counts(h: &Harness) -> (Value, Value) {
    let events = h
        .sql("SELECT message, count(*) AS n FROM events GROUP BY message ORDER BY message")
        .await;
    let issues = h
        .sql("SELECT title, event_count FROM issues ORDER BY title")
        .await;
    (events, issues)
}

fn expected(pairs: &[(&str, i64)], key: &str, count: &str) -> Value {
    Value::Array(
        pairs
            .iter()
            .map(|(m, n)| serde_json::json!({ key: m, count: n }))
            .collect(),
    )
}

#[tokio::test]
async fn a_manifest_put_whose_reply_was_lost_is_recognised_by_its_retry() {
    let dir = tempfile::tempdir().unwrap();
    let faults = faults_on(&dir);
    let h = harness_on(dir, Some(Arc::clone(&faults))).await;
    send_events(&h, &["a", "a", "b"]).await;
    faults.lose_next(1);
    assert_eq!(h.node.flush().await.unwrap(), 3);
    assert_eq!(faults.lost(), 1, "the manifest PUT lost its reply");
    let manifest = h.node.buffer.manifest();
    assert_eq!(manifest.version, 1, "one version, not a second copy");
    assert_eq!(manifest.files.iter().map(|f| f.rows).sum::<u64>(), 3);
    let want_events = expected(&[("a", 2), ("b", 1)], "message", "n");
    let want_issues = expected(&[("a", 2), ("b", 1)], "title", "event_count");
    assert_eq!(counts(&h).await, (want_events.clone(), want_issues.clone()));

    // After a restart, from the store alone.
    let Harness {
        _dir: dir,
        node,
        router,
    } = h;
    drop((node, router));
    let h = harness_on(dir, None).await;
    assert_eq!(counts(&h).await, (want_events, want_issues));
}

#[tokio::test]
async fn a_flush_that_failed_after_its_manifest_landed_is_not_stored_twice() {
    let dir = tempfile::tempdir().unwrap();
    let faults = faults_on(&dir);
    let h = harness_on(dir, Some(Arc::clone(&faults))).await;
    send_events(&h, &["a", "b", "b"]).await;
    // The reply is lost and the store stays unreachable for the checks: the flush fails
    // although its manifest version is in the store.
    faults.lose_next(1);
    faults.fail_next_lists(10);
    let err = h.node.flush().await.unwrap_err();
    assert!(err.to_string().contains("connection refused"), "{err}");
    assert_eq!(faults.lost(), 1);
    faults.fail_next_lists(0);
    // Still exactly once while the flush is pending (the events are read from memory).
    let want_events = expected(&[("a", 1), ("b", 2)], "message", "n");
    let want_issues = expected(&[("a", 1), ("b", 2)], "title", "event_count");
    assert_eq!(counts(&h).await, (want_events, want_issues));

    send_events(&h, &["c"]).await;
    assert_eq!(
        h.node.flush().await.unwrap(),
        4,
        "the retry and the new event"
    );
    let manifest = h.node.buffer.manifest();
    assert_eq!(manifest.files.iter().map(|f| f.rows).sum::<u64>(), 4);
    assert_eq!(manifest.version, 2);
    let want_events = expected(&[("a", 1), ("b", 2), ("c", 1)], "message", "n");
    let want_issues = expected(&[("a", 1), ("b", 2), ("c", 1)], "title", "event_count");
    assert_eq!(counts(&h).await, (want_events.clone(), want_issues.clone()));

    let Harness {
        _dir: dir,
        node,
        router,
    } = h;
    drop((node, router));
    let h = harness_on(dir, None).await;
    assert_eq!(counts(&h).await, (want_events, want_issues));
}
