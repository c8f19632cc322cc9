//! An acknowledged event survives SIGKILL: a burst from concurrent senders, the server killed right
//! after the acknowledgements (with requests still in flight), then every acknowledged id is found.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::{Context, Result};
use parking_lot::Mutex;
use serde_json::json;
use tokio::sync::Notify;

use crate::harness::{RowExt, Setup};

const SENDERS: usize = 8;
const MAX_PER_SENDER: usize = 400;
/// The server is killed as soon as this many events are acknowledged.
const KILL_AFTER: usize = 1_000;

/// The ingest URL and key of a DSN `http://KEY@HOST/PROJECT`.
pub(crate) fn parse_dsn(dsn: &str) -> Result<(String, String)> {
    let url = url::Url::parse(dsn)?;
    let key = url.username().to_owned();
    let project = url.path().trim_matches('/').to_owned();
    let host = url.host_str().context("host")?;
    let port = url.port().context("port")?;
    Ok((format!("http://{host}:{port}/api/{project}/envelope/"), key))
}

/// One envelope with one error event, as an SDK would write it.
pub(crate) fn envelope(event_id: &str, n: usize) -> Vec<u8> {
    let header = json!({ "event_id": event_id, "sent_at": chrono::Utc::now().to_rfc3339() });
    let event = json!({
        "event_id": event_id,
        "timestamp": chrono::Utc::now().timestamp_millis() as f64 / 1000.0,
        "platform": "python",
        "level": "error",
        "release": "burst@1.0.0",
        "environment": "test",
        "tags": { "sender": (n % SENDERS).to_string() },
        "exception": { "values": [{
            "type": "RuntimeError",
            "value": format!("burst failure {n}"),
            "stacktrace": { "frames": [
                { "function": "main", "module": "burst", "filename": "burst.py", "lineno": 10, "in_app": true },
                { "function": "work", "module": "burst", "filename": "burst.py", "lineno": 20, "in_app": true },
            ]},
        }]},
    });
    let payload = serde_json::to_vec(&event).expect("json");
    let mut body = serde_json::to_vec(&header).expect("json");
    body.push(b'\n');
    body.extend_from_slice(
        &serde_json::to_vec(&json!({ "type": "event", "length": payload.len() })).expect("json"),
    );
    body.push(b'\n');
    body.extend_from_slice(&payload);
    body.push(b'\n');
    body
}

pub(crate) fn auth_header(key: &str) -> String {
    format!("Sentry sentry_version=7, sentry_key={key}, sentry_client=faultline-e2e/1.0")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_events_survive_sigkill() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let setup = Setup::new(tmp.path(), "data", "");
    let server = setup.start()?;
    let dsn = setup.create_project("durable")?;
    let (url, key) = parse_dsn(&dsn)?;

    let acked = Arc::new(Mutex::new(Vec::<(String, Vec<u8>)>::new()));
    let enough = Arc::new(Notify::new());
    let stop = Arc::new(AtomicBool::new(false));
    let client = reqwest::Client::new();
    let mut senders = Vec::new();
    for sender in 0..SENDERS {
        let (client, url, key) = (client.clone(), url.clone(), key.clone());
        let (acked, enough, stop) = (Arc::clone(&acked), Arc::clone(&enough), Arc::clone(&stop));
        senders.push(tokio::spawn(async move {
            for i in 0..MAX_PER_SENDER {
                if stop.load(Ordering::SeqCst) {
                    break;
                }
                let id = uuid::Uuid::new_v4().simple().to_string();
                let body = envelope(&id, sender * MAX_PER_SENDER + i);
                let response = client
                    .post(&url)
                    .header("X-Sentry-Auth", auth_header(&key))
                    .header("Content-Type", "application/x-sentry-envelope")
                    .body(body.clone())
                    .send()
                    .await;
                // After the kill, connections fail: the sender stops.
                let Ok(response) = response else { break };
                if response.status() != 200 {
                    continue; // back-pressure answers (429/503) are not acknowledgements
                }
                let Ok(text) = response.text().await else {
                    break;
                };
                let answered: serde_json::Value =
                    serde_json::from_str(&text).expect("200 body is JSON");
                assert_eq!(answered["id"], id.as_str(), "the 200 names the event id");
                let mut acked = acked.lock();
                acked.push((id, body));
                if acked.len() >= KILL_AFTER {
                    enough.notify_one();
                }
            }
        }));
    }
    let all_done = futures::future::join_all(senders);
    tokio::pin!(all_done);
    tokio::select! {
        _ = enough.notified() => {}
        _ = &mut all_done => {}
    }
    let pid = server.pid();
    server.kill()?;
    stop.store(true, Ordering::SeqCst);
    for result in all_done.await {
        result?;
    }
    let acked = std::mem::take(&mut *acked.lock());
    eprintln!(
        "killed faultline (pid {pid}) after {} acknowledgements",
        acked.len()
    );
    assert!(
        acked.len() >= KILL_AFTER,
        "the burst got {} acknowledgements, wanted {KILL_AFTER}",
        acked.len()
    );

    // The CLI, with the server dead: replays the log.
    let stored: BTreeSet<String> = setup
        .query("SELECT event_id FROM events WHERE project = 'durable'")?
        .iter()
        .map(|r| r.str("event_id").expect("event_id").to_owned())
        .collect();
    let lost: Vec<&str> = acked
        .iter()
        .map(|(id, _)| id.as_str())
        .filter(|id| !stored.contains(*id))
        .collect();
    assert!(
        lost.is_empty(),
        "{} of {} acknowledged events lost after SIGKILL: {:?}",
        lost.len(),
        acked.len(),
        &lost[..lost.len().min(10)]
    );

    // A restarted server has them too, once each; SDK retries of acknowledged events add nothing.
    let server = setup.start()?;
    let token = setup.create_token()?;
    for (_, body) in acked.iter().take(20) {
        let response = client
            .post(&url)
            .header("X-Sentry-Auth", auth_header(&key))
            .body(body.clone())
            .send()
            .await?;
        assert_eq!(response.status(), 200, "a retried event is answered 200");
    }
    let counts = server
        .sql(&token, "SELECT count(*) AS n, count(DISTINCT event_id) AS d FROM events WHERE project = 'durable'")
        .await?;
    assert_eq!(
        counts[0].int("n"),
        counts[0].int("d"),
        "each event stored once"
    );
    assert_eq!(
        counts[0].int("n"),
        Some(stored.len() as i64),
        "nothing lost or added by the restart"
    );
    let served: BTreeSet<String> = server
        .sql(
            &token,
            "SELECT event_id FROM events WHERE project = 'durable'",
        )
        .await?
        .iter()
        .map(|r| r.str("event_id").expect("event_id").to_owned())
        .collect();
    assert_eq!(
        served, stored,
        "the restarted server serves the same events the CLI found"
    );
    Ok(())
}
