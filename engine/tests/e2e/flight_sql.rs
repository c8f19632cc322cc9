//! The real ADBC Flight SQL driver (Python `adbc-driver-flightsql` + `pyarrow`) against
//! `faultline serve --flight-listen`: a bearer API token, Arrow results limited to the token's
//! projects, refusals and bad tokens as errors the client shows; prepared statements with bound
//! parameters and the catalog calls (`adbc_get_objects`, `adbc_get_table_schema`, `adbc_get_info`).

use anyhow::{Context, Result};
use serde_json::{Value, json};

use crate::harness::{TwoTenants, python_client};

/// Runs each statement through ADBC; one JSON object per statement.
fn adbc(port: u16, token: &str, statements: &[&str]) -> Result<Vec<Value>> {
    let url = format!("grpc://127.0.0.1:{port}");
    let args: Vec<&str> = [url.as_str(), token]
        .into_iter()
        .chain(statements.iter().copied())
        .collect();
    python_client("flight_sql_query.py", &args)?
        .lines()
        .map(|l| serde_json::from_str(l).with_context(|| format!("not JSON: {l}")))
        .collect()
}

/// A server with the `shop` and `web` tenants and the Flight SQL listener; its data directory
/// lives as long as the caller holds it.
async fn flight_server() -> Result<(tempfile::TempDir, TwoTenants)> {
    let dir = tempfile::tempdir()?;
    let tenants = TwoTenants::start(dir.path(), "flight_listen").await?;
    Ok((dir, tenants))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn adbc_flight_sql_queries_with_a_bearer_token() -> Result<()> {
    let (_dir, tenants) = flight_server().await?;
    let (server, port, token) = (&tenants.server, tenants.port, &tenants.shop_token);

    let results = adbc(
        port,
        token,
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
    let (_dir, tenants) = flight_server().await?;
    let (server, port, token) = (&tenants.server, tenants.port, &tenants.shop_token);
    let url = format!("grpc://127.0.0.1:{port}");
    let printed = python_client("flight_sql_catalog.py", &[&url, token])
        .with_context(|| format!("server log:\n{}", server.log_text()))?;
    let out: Value = serde_json::from_str(&printed)?;

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
    // Catalog calls: the token's three tables in faultline.public, with their columns.
    let objects = out["objects"].as_array().context("objects")?;
    let names: Vec<&Value> = objects.iter().map(|o| &o[2]).collect();
    assert_eq!(
        names,
        [
            &json!("alert_deliveries"),
            &json!("attachments"),
            &json!("check_ins"),
            &json!("events"),
            &json!("feedback"),
            &json!("issue_hours"),
            &json!("issue_tags"),
            &json!("issues"),
            &json!("logs"),
            &json!("monitors"),
            &json!("outcomes"),
            &json!("release_health"),
            &json!("release_health_hourly"),
            &json!("sessions"),
            &json!("spans"),
            &json!("transactions")
        ],
        "{out}"
    );
    assert_eq!(objects[0][0], "faultline");
    assert_eq!(objects[0][1], "public");
    assert_eq!(objects[0][3], "TABLE");
    // events, with its columns
    let events = objects
        .iter()
        .find(|o| o[2] == "events")
        .context("events in the catalog")?;
    assert!(events[4].as_u64().is_some_and(|n| n > 20), "{out}");
    assert_eq!(out["events_schema"]["project_id"], "int64");
    assert_eq!(out["events_schema"]["title"], "string");
    assert_eq!(out["table_types"], json!(["TABLE"]));
    assert_eq!(out["info"]["vendor_name"], "faultline");
    Ok(())
}
