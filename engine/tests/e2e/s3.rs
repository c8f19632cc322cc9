//! `--object-store s3://bucket/prefix` against a real S3-compatible server (moto), events flushed to
//! Parquet objects there and read back by a node with an empty data directory.

use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};

use crate::harness::{PATIENCE, RowExt, Setup, free_port, python, run_python};

pub(crate) const BUCKET: &str = "faultline-e2e";
pub(crate) const PREFIX: &str = "tenant-a";

/// `moto_server` from the test venv, killed when dropped.
pub(crate) struct Moto {
    child: Child,
    pub(crate) endpoint: String,
}

impl Moto {
    pub(crate) fn start() -> Result<Self> {
        let bin = python()
            .parent()
            .context("venv bin dir")?
            .join("moto_server");
        assert!(
            bin.exists(),
            "no moto_server at {} (pip install 'moto[server]', as scripts/test does)",
            bin.display()
        );
        // A free port can be taken by a server another test starts before moto binds it; then
        // moto exits and a new port is tried. Readiness is moto's own S3 answer, not just a
        // connection, so a stranger on the port is never taken for moto.
        for _ in 0..5 {
            let port = free_port();
            let child = Command::new(&bin)
                .args(["-H", "127.0.0.1", "-p", &port.to_string()])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .with_context(|| format!("spawn {}", bin.display()))?;
            let mut moto = Self {
                child,
                endpoint: format!("http://127.0.0.1:{port}"),
            };
            if moto.wait_ready(port)? {
                return Ok(moto);
            }
        }
        bail!("moto_server could not bind a free port in 5 tries")
    }

    /// True once moto answers S3's ListBuckets on `port`; false if it exited (port taken).
    fn wait_ready(&mut self, port: u16) -> Result<bool> {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if self.child.try_wait()?.is_some() {
                return Ok(false);
            }
            if TcpStream::connect(("127.0.0.1", port)).is_ok()
                && crate::harness::http_get(&format!("{}/", self.endpoint))
                    .is_ok_and(|body| body.contains("ListAllMyBucketsResult"))
                && self.child.try_wait()?.is_none()
            {
                return Ok(true);
            }
            ensure!(
                Instant::now() < deadline,
                "moto_server did not answer within {PATIENCE:?}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// moto accepts unsigned requests, so the S3 REST API is plain HTTP here.
    pub(crate) async fn create_bucket(&self) -> Result<()> {
        let response = reqwest::Client::new()
            .put(format!("{}/{BUCKET}", self.endpoint))
            .send()
            .await?;
        ensure!(
            response.status().is_success(),
            "create bucket: {}",
            response.status()
        );
        Ok(())
    }

    /// Keys under a prefix (ListObjectsV2, following continuation tokens).
    pub(crate) async fn list(&self, prefix: &str) -> Result<Vec<(String, u64)>> {
        let client = reqwest::Client::new();
        let mut keys = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let mut query = vec![("list-type", "2".to_owned()), ("prefix", prefix.to_owned())];
            if let Some(t) = &token {
                query.push(("continuation-token", t.clone()));
            }
            let xml = client
                .get(format!("{}/{BUCKET}", self.endpoint))
                .query(&query)
                .send()
                .await?
                .error_for_status()?
                .text()
                .await?;
            for contents in xml.split("<Contents>").skip(1) {
                let key = between(contents, "<Key>", "</Key>").context("Key")?;
                let size = between(contents, "<Size>", "</Size>")
                    .context("Size")?
                    .parse()?;
                keys.push((key.to_owned(), size));
            }
            token = between(&xml, "<NextContinuationToken>", "</NextContinuationToken>")
                .map(str::to_owned);
            if token.is_none() {
                return Ok(keys);
            }
        }
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn between<'a>(s: &'a str, start: &str, end: &str) -> Option<&'a str> {
    let from = s.find(start)? + start.len();
    let to = s[from..].find(end)? + from;
    Some(&s[from..to])
}

pub(crate) fn s3_setup(root: &std::path::Path, name: &str, moto: &Moto) -> Setup {
    let mut setup = Setup::new(
        root,
        name,
        "[flush]\ninterval = \"1s\"\n\n[storage.s3]\nregion = \"us-east-1\"\nallow_http = true\nforce_path_style = true\n",
    );
    setup.object_store = Some(format!("s3://{BUCKET}/{PREFIX}"));
    setup.env = [
        ("AWS_ENDPOINT_URL", moto.endpoint.as_str()),
        ("AWS_REGION", "us-east-1"),
        ("AWS_ACCESS_KEY_ID", "testing"),
        ("AWS_SECRET_ACCESS_KEY", "testing"),
        ("AWS_ALLOW_HTTP", "true"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect();
    setup
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_flush_to_parquet_in_s3_and_come_back() -> Result<()> {
    let moto = Moto::start()?;
    moto.create_bucket().await?;
    let tmp = tempfile::tempdir()?;
    let setup = s3_setup(tmp.path(), "node-a", &moto);
    let server = setup.start()?;
    let dsn = setup.create_project("shop")?;
    let sent = run_python(&dsn, &["exception", "message", "lines"])?;
    let ids: Vec<String> = sent.values().map(|s| s.id.clone()).collect();

    // The periodic flush (interval 1 s) writes Parquet objects under the prefix.
    let events_prefix = format!("{PREFIX}/events/");
    let deadline = Instant::now() + PATIENCE;
    let parquet = loop {
        let parquet: Vec<(String, u64)> = moto
            .list(&events_prefix)
            .await?
            .into_iter()
            .filter(|(k, _)| k.ends_with(".parquet"))
            .collect();
        if !parquet.is_empty() {
            break parquet;
        }
        ensure!(
            Instant::now() < deadline,
            "no Parquet object under s3://{BUCKET}/{events_prefix} after {PATIENCE:?}; objects: {:?}\nserver log:\n{}",
            moto.list("").await?,
            server.log_text()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert!(parquet.iter().all(|(_, size)| *size > 0), "{parquet:?}");
    assert!(
        parquet
            .iter()
            .all(|(k, _)| k.contains("/proj=") && k.contains("/date=") && k.contains("/hour=")),
        "partitioned as events/proj=/date=/hour=: {parquet:?}"
    );

    // Graceful shutdown flushes and exits 0.
    let status = server.terminate()?;
    assert!(status.success(), "SIGTERM exits 0, got {status}");
    let manifests = moto.list(&format!("{PREFIX}/manifest/")).await?;
    assert!(!manifests.is_empty(), "a manifest lists the live files");

    // Another node with an empty data directory sees every event from the bucket alone.
    let fresh = s3_setup(tmp.path(), "node-b", &moto);
    let rows = fresh
        .query("SELECT event_id, exception_type, release FROM events WHERE project = 'shop'")?;
    let found: Vec<&str> = rows.iter().filter_map(|r| r.str("event_id")).collect();
    for id in &ids {
        assert!(
            found.contains(&id.as_str()),
            "event {id} readable from S3; found {found:?}"
        );
    }
    assert_eq!(rows.len(), ids.len(), "each event once");
    assert!(rows.iter().all(|r| r.str("release") == Some("shop@1.4.2")));

    // And a restarted server on that empty directory answers SQL over them.
    let server = fresh.start()?;
    let token = fresh.create_token()?;
    let issues = server
        .sql(
            &token,
            "SELECT event_count FROM issues WHERE project = 'shop' ORDER BY event_count DESC",
        )
        .await?;
    let counts: Vec<i64> = issues.iter().filter_map(|r| r.int("event_count")).collect();
    assert_eq!(
        counts,
        vec![2, 2, 1, 1],
        "the KeyError raised by each of two lines of code is one issue of 2 events (Python \
         source lines count, as in Sentry), the others 1: {issues:?}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn during_an_outage_queries_fail_with_the_store_named_ingest_answers_and_shutdown_is_bounded()
-> Result<()> {
    let moto = Moto::start()?;
    moto.create_bucket().await?;
    let tmp = tempfile::tempdir()?;
    let mut setup = s3_setup(tmp.path(), "node-a", &moto);
    std::fs::write(
        &setup.config,
        "[server]\nshutdown_flush_timeout = \"3s\"\n\n[flush]\ninterval = \"1h\"\n\n\
         [storage.s3]\nregion = \"us-east-1\"\nallow_http = true\nforce_path_style = true\n\
         retry_timeout = \"2s\"\n",
    )?;
    setup.port = free_port();
    let server = setup.start()?;
    let dsn = setup.create_project("shop")?;
    let token = setup.create_token()?;
    crate::harness::store_message(&setup, &dsn, "before the outage").await?;
    assert_eq!(
        server
            .sql(&token, "SELECT count(*) AS n FROM events")
            .await?[0]
            .int("n"),
        Some(1)
    );

    drop(moto);
    let started = Instant::now();
    let err = server
        .sql(&token, "SELECT count(*) AS n FROM events")
        .await
        .expect_err("the object store is down")
        .to_string();
    eprintln!("query failed after {:?}: {err}", started.elapsed());
    assert!(
        err.contains("503") && err.contains("object store"),
        "the error is a 503 naming the object store: {err}"
    );
    let response = reqwest::Client::new()
        .post(format!("{}/api/sql", setup.base_url()))
        .bearer_auth(&token)
        .json(&serde_json::json!({ "sql": "SELECT 1" }))
        .send()
        .await?;
    assert_eq!(response.status(), 503);
    assert_eq!(
        response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok()),
        Some("5"),
        "a 503 for the object store tells the client when to retry"
    );

    // Ingest answers from the WAL meanwhile.
    crate::harness::store_message(&setup, &dsn, "during the outage").await?;

    // SIGTERM: the final flush gives up after shutdown_flush_timeout and says what it left.
    let started = Instant::now();
    let status = server.terminate()?;
    eprintln!("shutdown took {:?}", started.elapsed());
    ensure!(status.success(), "serve exited with {status}");
    let log = std::fs::read_to_string(setup.data_dir.with_extension("serve-0.log"))?;
    let log = without_colours(&log);
    let tail = &log[log.find("shutting down").context("shutdown logged")?..];
    assert!(
        tail.contains("events left in the wal; they are flushed at the next start"),
        "{tail}"
    );
    // both events, and the rows of `outcomes` counted for them (one per attempt to flush
    // that found new counts, so at least one)
    let left: u64 = tail
        .split("events=")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .context("events=<n> logged")?;
    assert!(left >= 3, "both events stay in the WAL: {tail}");
    Ok(())
}

/// The text of a log without its terminal colour codes (`ESC [ ... m`).
fn without_colours(log: &str) -> String {
    let mut out = String::with_capacity(log.len());
    let mut chars = log.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c == 'm' {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}
