//! Ingest that no request can take down, against the real (dev build) server: deep events,
//! a poisoned WAL, wrong keys with huge bodies, compression bombs, slow and endless requests.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use anyhow::{Context, Result, ensure};
use serde_json::Value;

use crate::durability::parse_dsn;
use crate::harness::{PATIENCE, Setup};

const WRONG_KEY: &str = "ffffffffffffffffffffffffffffffff";

fn nested_event(depth: usize) -> String {
    let inner = depth - 2;
    format!(
        r#"{{"message":"deep {depth}","extra":{{"x":{}1{}}}}}"#,
        "[".repeat(inner),
        "]".repeat(inner)
    )
}

fn envelope(event: &str) -> Vec<u8> {
    format!("{{}}\n{{\"type\":\"event\"}}\n{event}\n").into_bytes()
}

fn connect(setup: &Setup) -> Result<TcpStream> {
    let stream = TcpStream::connect(("127.0.0.1", setup.port))?;
    stream.set_read_timeout(Some(PATIENCE))?;
    Ok(stream)
}

/// Reads what the server sends until it closes the connection or `PATIENCE` passes.
fn read_reply(stream: &mut TcpStream) -> String {
    let mut reply = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                reply.extend_from_slice(&buf[..n]);
                if reply.windows(4).any(|w| w == b"\r\n\r\n") && reply.ends_with(b"}") {
                    break;
                }
            }
        }
    }
    String::from_utf8_lossy(&reply).into_owned()
}

async fn post(
    url: &str,
    key: Option<&str>,
    encoding: Option<&str>,
    body: Vec<u8>,
) -> Result<(u16, Value)> {
    let mut request = reqwest::Client::new().post(url).body(body);
    if let Some(key) = key {
        request = request.header("x-sentry-auth", format!("Sentry sentry_key={key}"));
    }
    if let Some(encoding) = encoding {
        request = request.header("content-encoding", encoding);
    }
    let response = request.send().await?;
    let status = response.status().as_u16();
    let body = response.text().await?;
    Ok((
        status,
        serde_json::from_str(&body).unwrap_or(Value::String(body)),
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poisoned_wal_is_quarantined_and_deep_events_are_refused() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let setup = Setup::new(tmp.path(), "data", "");
    let dsn = setup.create_project("shop")?;
    let (url, key) = parse_dsn(&dsn)?;
    // What an older version acknowledged: an event nested past what replay reads, between two
    // good events of one segment.
    let mut segment = Vec::new();
    for json in [
        r#"{"message":"before"}"#.to_owned(),
        nested_event(250),
        r#"{"message":"after"}"#.to_owned(),
    ] {
        faultline_engine::wal::encode(
            &mut segment,
            faultline_engine::wal::Fields {
                kind: faultline_engine::wal::EVENT,
                project_id: 1,
                issue_id: 1,
                received_ms: chrono::Utc::now().timestamp_millis(),
                grouping_hash: &"0".repeat(32),
                project: "shop",
                json: json.as_bytes(),
            },
        );
    }
    let wal_dir = setup.data_dir.join("wal");
    std::fs::create_dir_all(&wal_dir)?;
    std::fs::write(wal_dir.join(format!("{:020}.wal", 1)), &segment)?;

    let server = setup.start()?;
    let log = server.log_text();
    ensure!(
        log.contains("quarantined it"),
        "no error line in the log:\n{log}"
    );
    let listed: Value =
        serde_json::from_str(&setup.cli(&["wal", "quarantine", "list", "--format", "json"])?)?;
    let entries = listed.as_array().context("a list")?;
    ensure!(entries.len() == 1, "{listed}");
    ensure!(entries[0]["segment"] == 1, "{listed}");
    let id = entries[0]["id"].as_str().context("id")?;
    let shown = setup.cli(&["wal", "quarantine", "show", id])?;
    ensure!(shown.contains("max_json_depth of 64"), "{shown}");
    ensure!(shown.contains("deep 250"), "{shown}");
    let table = setup.cli(&["wal", "quarantine", "list"])?;
    ensure!(table.contains(id) && table.contains("shop (1)"), "{table}");

    let rows = setup.query("SELECT message FROM events ORDER BY message")?;
    let messages: Vec<_> = rows.iter().map(|r| r["message"].clone()).collect();
    ensure!(
        messages == vec![Value::from("after"), Value::from("before")],
        "{messages:?}"
    );

    // At the limit: stored. Past it (119 levels aborted the dev build before): 400.
    let (status, body) = post(&url, Some(&key), None, envelope(&nested_event(64))).await?;
    ensure!(status == 200, "{status} {body}");
    for depth in [65, 119, 250, 20_000] {
        let (status, body) = post(&url, Some(&key), None, envelope(&nested_event(depth))).await?;
        ensure!(status == 400, "{depth}: {status} {body}");
        ensure!(
            body["detail"]
                .as_str()
                .unwrap_or_default()
                .contains("max_json_depth of 64 levels"),
            "{depth}: {body}"
        );
    }
    // Everything accepted replays: the node restarts with all of it.
    server.terminate()?;
    let _server = setup.start()?;
    let rows = setup.query("SELECT count(*) AS n FROM events")?;
    ensure!(rows[0]["n"] == 3, "{rows:?}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_key_is_answered_before_the_body_is_sent() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let setup = Setup::new(tmp.path(), "data", "");
    setup.create_project("shop")?;
    let _server = setup.start()?;
    let mut stream = connect(&setup)?;
    // 90 MiB announced; only the headers and 64 KiB are ever sent.
    write!(
        stream,
        "POST /api/1/envelope/ HTTP/1.1\r\nHost: x\r\nX-Sentry-Auth: Sentry sentry_key={WRONG_KEY}\r\n\
         Content-Length: {}\r\n\r\n",
        90 * 1024 * 1024
    )?;
    stream.write_all(&vec![b' '; 64 * 1024])?;
    let reply = read_reply(&mut stream);
    ensure!(reply.starts_with("HTTP/1.1 401"), "{reply}");
    ensure!(reply.contains("not valid for project 1"), "{reply}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn liveness_answers_while_compression_bombs_are_decoded() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let setup = Setup::new(tmp.path(), "data", "");
    let dsn = setup.create_project("shop")?;
    let (url, key) = parse_dsn(&dsn)?;
    let server = setup.start()?;
    // a few KB of zstd that decodes to one byte over 100 MiB, after a header naming a wrong key or
    // none at all; and for the right key (decoded up to max_envelope_size, then 413).
    let mut plain = format!("{{\"dsn\":\"http://{WRONG_KEY}@localhost/1\"}}\n").into_bytes();
    plain.resize(100 * 1024 * 1024 + 1, b' ');
    let bomb = zstd::encode_all(&plain[..], 19)?;
    ensure!(bomb.len() < 20 * 1024, "{}", bomb.len());
    let mut senders = Vec::new();
    for n in 0..32 {
        let (url, key, bomb) = (url.clone(), key.clone(), bomb.clone());
        senders.push(tokio::spawn(async move {
            let key = (n % 2 == 0).then_some(key);
            post(&url, key.as_deref(), Some("zstd"), bomb).await
        }));
    }
    let live = format!("{}/health/live", setup.base_url());
    for _ in 0..5 {
        let status = reqwest::get(&live).await?.status();
        ensure!(status == 200, "liveness answered {status}");
    }
    for (n, sender) in senders.into_iter().enumerate() {
        let (status, body) = sender.await??;
        let expected = if n % 2 == 0 { 413 } else { 401 };
        ensure!(status == expected, "bomb {n}: {status} {body}");
    }
    drop(server);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_headers_and_endless_bodies_are_cut_off() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let setup = Setup::new(
        tmp.path(),
        "data",
        "[server]\nheader_read_timeout = \"1s\"\nbody_read_timeout = \"2s\"\n",
    );
    let dsn = setup.create_project("shop")?;
    let (_, key) = parse_dsn(&dsn)?;
    let _server = setup.start()?;

    // 200 connections whose headers never end: each is closed (without an answer).
    let mut slow = Vec::new();
    for _ in 0..200 {
        let mut stream = connect(&setup)?;
        stream.write_all(b"POST /api/1/envelope/ HTTP/1.1\r\nHost: x\r\n")?;
        slow.push(stream);
    }
    for stream in &mut slow {
        let mut buf = [0u8; 256];
        let n = stream
            .read(&mut buf)
            .context("the server keeps a slow connection open")?;
        ensure!(
            n == 0 || buf.starts_with(b"HTTP/1.1 408"),
            "{:?}",
            String::from_utf8_lossy(&buf[..n])
        );
    }

    // A chunked body that never ends: 408 naming the limit.
    let mut stream = connect(&setup)?;
    write!(
        stream,
        "POST /api/1/envelope/ HTTP/1.1\r\nHost: x\r\nX-Sentry-Auth: Sentry sentry_key={key}\r\n\
         Transfer-Encoding: chunked\r\n\r\n"
    )?;
    let mut writer = stream.try_clone()?;
    let trickle = std::thread::spawn(move || {
        while writer.write_all(b"1\r\n \r\n").is_ok() {
            std::thread::sleep(Duration::from_millis(100));
        }
    });
    let reply = read_reply(&mut stream);
    ensure!(reply.starts_with("HTTP/1.1 408"), "{reply}");
    ensure!(reply.contains("server.body_read_timeout of 2s"), "{reply}");
    stream.shutdown(std::net::Shutdown::Both).ok();
    trickle.join().ok();
    Ok(())
}
