//! The real ADBC Flight SQL driver (Python `adbc-driver-flightsql` + `pyarrow`) against
//! `faultline serve --flight-listen`: a bearer API token, Arrow results limited to the token's
//! projects, refusals and bad tokens as errors the client shows.

use std::process::{Command, Stdio};

use anyhow::{Context, Result, ensure};
use serde_json::{Value, json};

use crate::harness::{Setup, free_port, python, workspace_root};

/// Runs each statement through ADBC; one JSON object per statement.
fn adbc(port: u16, token: &str, statements: &[&str]) -> Result<Vec<Value>> {
    let script = workspace_root().join("tests/clients/python/flight_sql_query.py");
    let output = Command::new(python())
        .arg(script)
        .arg(format!("grpc://127.0.0.1:{port}"))
        .arg(token)
        .args(statements)
        .stdin(Stdio::null())
        .output()
        .context("run flight_sql_query.py")?;
    ensure!(
        output.status.success(),
        "flight_sql_query.py failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout)?
        .lines()
        .map(|l| serde_json::from_str(l).with_context(|| format!("not JSON: {l}")))
        .collect()
}

async fn send(setup: &Setup, dsn: &str, message: &str) -> Result<()> {
    let (key, rest) = dsn["http://".len()..].split_once('@').context("dsn")?;
    let id = rest.rsplit('/').next().context("dsn")?;
    let status = reqwest::Client::new()
        .post(format!("{}/api/{id}/store/", setup.base_url()))
        .header("x-sentry-auth", format!("Sentry sentry_key={key}"))
        .body(format!(r#"{{"message":"{message}"}}"#))
        .send()
        .await?
        .status();
    ensure!(status.is_success(), "store answered {status}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn adbc_flight_sql_queries_with_a_bearer_token() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let port = free_port();
    let setup = Setup::new(
        tmp.path(),
        "data",
        &format!("[server]\nflight_listen = \"127.0.0.1:{port}\"\n"),
    );
    let shop = setup.create_project("shop")?;
    let web = setup.create_project("web")?;
    let server = setup.start()?;
    send(&setup, &shop, "shop broke").await?;
    send(&setup, &web, "web secret").await?;
    let token = setup
        .cli(&["token", "create", "--name", "adbc", "--project", "shop"])?
        .trim()
        .to_owned();

    let results = adbc(
        port,
        &token,
        &[
            "SELECT project, title, count(*) AS n FROM events GROUP BY project, title",
            "SELECT project, event_count, status, regressed FROM issues",
            "SELECT count(*) AS n FROM events WHERE project = 'web'",
            "COPY events TO '/tmp/leak.parquet'",
        ],
    )?;
    assert_eq!(
        results[0],
        json!({"rows": [{"project": "shop", "title": "shop broke", "n": 1}],
               "schema": {"project": "string", "title": "string", "n": "int64"}}),
        "server log:\n{}",
        server.log_text()
    );
    assert_eq!(
        results[1]["rows"],
        json!([{"project": "shop", "event_count": 1, "status": "unresolved", "regressed": false}])
    );
    assert_eq!(results[2]["rows"], json!([{"n": 0}]));
    let refused = results[3]["error"].as_str().context("COPY must fail")?;
    assert!(refused.contains("DML not supported: COPY"), "{refused}");

    let results = adbc(port, "flt_not_a_token", &["SELECT 1"])?;
    let refused = results[0]["error"]
        .as_str()
        .context("a bad token must fail")?;
    assert!(refused.contains("invalid API token"), "{refused}");
    Ok(())
}
