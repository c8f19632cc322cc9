//! The real ADBC Flight SQL driver (Python `adbc-driver-flightsql` + `pyarrow`) against
//! `faultline serve --flight-listen`: a bearer API token, Arrow results limited to the token's
//! projects, refusals and bad tokens as errors the client shows; prepared statements with bound
//! parameters and the catalog calls (`adbc_get_objects`, `adbc_get_table_schema`, `adbc_get_info`).

use std::process::{Command, Stdio};

use anyhow::{Context, Result, ensure};
use serde_json::{Value, json};

use crate::harness::{TwoTenants, python, workspace_root};

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn adbc_flight_sql_queries_with_a_bearer_token() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let TwoTenants {
        server,
        port,
        shop_token: token,
        ..
    } = TwoTenants::start(tmp.path(), "flight_listen").await?;

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn adbc_binds_parameters_and_lists_the_catalog() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let TwoTenants {
        server,
        port,
        shop_token: token,
        ..
    } = TwoTenants::start(tmp.path(), "flight_listen").await?;
    let script = workspace_root().join("tests/clients/python/flight_sql_catalog.py");
    let output = Command::new(python())
        .arg(script)
        .arg(format!("grpc://127.0.0.1:{port}"))
        .arg(&token)
        .stdin(Stdio::null())
        .output()
        .context("run flight_sql_catalog.py")?;
    ensure!(
        output.status.success(),
        "flight_sql_catalog.py failed: {}\nserver log:\n{}",
        String::from_utf8_lossy(&output.stderr),
        server.log_text()
    );
    let out: Value = serde_json::from_slice(&output.stdout)?;

    assert_eq!(
        out["rows"],
        json!([{"project": "shop", "title": "shop broke"}]),
        "{out}"
    );
    // The other tenant's project, bound as a parameter: nothing.
    assert_eq!(out["web_rows"], json!([]));
    assert_eq!(out["typed"], json!([{"n": 1}]));
    let refused = out["delete"].as_str().context("DELETE must fail")?;
    assert!(refused.contains("DML not supported: Delete"), "{refused}");
    // Catalog calls: the token's two tables in faultline.public, with their columns.
    let objects = out["objects"].as_array().context("objects")?;
    let names: Vec<&Value> = objects.iter().map(|o| &o[2]).collect();
    assert_eq!(names, [&json!("events"), &json!("issues")], "{out}");
    assert_eq!(objects[0][0], "faultline");
    assert_eq!(objects[0][1], "public");
    assert_eq!(objects[0][3], "TABLE");
    assert!(objects[0][4].as_u64().is_some_and(|n| n > 20), "{out}");
    assert_eq!(out["events_schema"]["project_id"], "int64");
    assert_eq!(out["events_schema"]["title"], "string");
    assert_eq!(out["table_types"], json!(["TABLE"]));
    assert_eq!(out["info"]["vendor_name"], "faultline");
    Ok(())
}
