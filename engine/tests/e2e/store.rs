//! The stored data as other processes see it: one writer per WAL, and the Parquet files read by
//! other tools.

use anyhow::{Context, Result, ensure};
use chrono::Utc;
use serde_json::{Value, json};

use crate::harness::{Setup, python_client, store_message};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_server_on_one_data_dir_refuses_and_names_the_first() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let setup = Setup::new(tmp.path(), "data", "");
    let dsn = setup.create_project("shop")?;
    let first = setup.start()?;
    store_message(&setup, &dsn, "hello").await?;

    let mut second = setup.clone();
    second.port = crate::harness::free_port();
    let err = second
        .start()
        .expect_err("a second server on the same data directory must not start")
        .to_string();
    assert!(err.contains("exited with exit status: 1"), "{err}");
    assert!(
        err.contains("another faultline server already writes to the WAL in"),
        "{err}"
    );
    assert!(
        err.contains(&format!("pid {} on host ", first.pid())),
        "the holder is named: {err}"
    );
    assert!(err.contains("node node-0, started "), "{err}");

    // Reading beside the running server works.
    let rows = setup.query("SELECT message FROM events")?;
    assert_eq!(rows.len(), 1, "{rows:?}");
    assert_eq!(rows[0]["message"], "hello");

    // Once the first has stopped, a server starts on the directory again.
    first.terminate()?;
    let again = second.start()?;
    let rows = setup.query("SELECT count(*) AS n FROM events")?;
    assert_eq!(rows[0]["n"], 1);
    drop(again);
    Ok(())
}

/// Sends `n` events of `message` stamped `timestamp` (seconds) to the store endpoint.
async fn send(setup: &Setup, dsn: &str, message: &str, timestamp: i64, n: usize) -> Result<()> {
    let (key, rest) = dsn["http://".len()..].split_once('@').context("dsn")?;
    let id = rest.rsplit('/').next().context("dsn")?;
    let client = reqwest::Client::new();
    for _ in 0..n {
        let status = client
            .post(format!("{}/api/{id}/store/", setup.base_url()))
            .header("x-sentry-auth", format!("Sentry sentry_key={key}"))
            .body(format!(
                r#"{{"message":"{message}","timestamp":{timestamp}}}"#
            ))
            .send()
            .await?
            .status();
        ensure!(status.is_success(), "store answered {status}");
    }
    Ok(())
}

/// What DuckDB (from PyPI) reads with the glob documented in docs/operations.md.
fn duckdb_reads(setup: &Setup) -> Result<Value> {
    let root = setup.data_dir.join("objects");
    let out = python_client("read_parquet.py", &[root.to_str().context("utf-8 path")?])?;
    Ok(serde_json::from_str(out.trim())?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn duckdb_counts_every_event_once_after_a_compaction_and_sees_project_names() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let setup = Setup::new(
        tmp.path(),
        "data",
        "[flush]\ninterval = \"1h\"\n\n[compaction]\nmin_files = 2\ninterval = \"1h\"\n",
    );
    let shop = setup.create_project("shop")?;
    let blog = setup.create_project("blog")?;
    let at = Utc::now().timestamp() - 2 * 3600;
    // Three sessions, each flushed at its graceful stop: three small files per project.
    for (session, n) in [(0, 3), (1, 4), (2, 5)] {
        let server = setup.start()?;
        send(&setup, &shop, &format!("shop {session}"), at, n).await?;
        send(&setup, &blog, &format!("blog {session}"), at, 1).await?;
        let status = server.terminate()?;
        ensure!(status.success(), "serve exited with {status}");
    }
    let before = duckdb_reads(&setup)?;
    let want = json!({
        "events": 15,
        "distinct_events": 15,
        "projects": [
            { "project": "blog", "project_id": 2, "proj": 2, "events": 3 },
            { "project": "shop", "project_id": 1, "proj": 1, "events": 12 },
        ],
        "pyarrow_events": 15,
        "pyarrow_projects": ["blog", "shop"],
    });
    assert_eq!(before, want);

    // One merge of event files per project, and one of each project's three rollup files.
    let planned = setup.cli(&["compact", "run", "--dry-run"])?;
    // (the server's outcome rows of each flush are merged too; this test is about events)
    let (rollups, events): (Vec<&str>, Vec<&str>) = planned
        .lines()
        .filter(|l| !l.contains("\toutcomes "))
        .partition(|l| l.contains("\trollups "));
    assert_eq!((events.len(), rollups.len()), (2, 2), "{planned}");
    assert!(
        events
            .iter()
            .all(|l| l.ends_with("\t3 files\t12 events\tdry run")
                || l.ends_with("\t3 files\t3 events\tdry run")),
        "{planned}"
    );
    assert!(
        rollups
            .iter()
            .all(|l| l.ends_with("\t3 files\t3 rows\tdry run")),
        "{planned}"
    );
    assert_eq!(duckdb_reads(&setup)?, want, "a dry run changes nothing");
    let compacted = setup.cli(&["compact", "run"])?;
    assert_eq!(
        compacted
            .lines()
            .filter(|l| !l.contains("\toutcomes "))
            .count(),
        4,
        "one merge of events and one of rollups per project: {compacted}"
    );
    // Right after the compaction, with the replaced files still kept for running queries.
    assert_eq!(duckdb_reads(&setup)?, want);
    let rows = setup.query("SELECT count(*) AS n FROM events")?;
    assert_eq!(rows[0]["n"], 15);
    Ok(())
}
