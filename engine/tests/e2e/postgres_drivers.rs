//! Real PostgreSQL drivers from PyPI against `faultline serve --pg-listen`
//! (`tests/clients/python/postgres_clients.py`): psycopg 3 with server-side binding and binary
//! results, asyncpg (extended protocol only, binary), and SQLAlchemy's inspector as BI tools use
//! it. Each sees the `shop` token's rows and catalog, never the `web` project, and the refusals
//! and errors with their SQLSTATE.

use anyhow::{Context, Result};
use serde_json::{Value, json};

use crate::harness::{TwoTenants, python_client};

/// Runs `postgres_clients.py CLIENT PORT TOKEN`; what the client observed.
fn client(name: &str, port: u16, token: &str) -> Result<Value> {
    let printed = python_client("postgres_clients.py", &[name, &port.to_string(), token])?;
    serde_json::from_str(&printed).context("postgres_clients.py printed no JSON")
}

/// Starts a server with two tenants and the PostgreSQL listener, then runs `name` with the
/// `shop` token. The temporary directory and the tenants live as long as the caller holds them.
async fn shop_client(name: &str) -> Result<(tempfile::TempDir, TwoTenants, Value)> {
    let tmp = tempfile::tempdir()?;
    let tenants = TwoTenants::start(tmp.path(), "pg_listen").await?;
    let out = client(name, tenants.port, &tenants.shop_token)?;
    Ok((tmp, tenants, out))
}

/// PostgreSQL type OIDs as drivers report them.
const TEXT: u32 = 25;
const INT8: u32 = 20;
const TIMESTAMPTZ: u32 = 1184;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn psycopg_binds_parameters_on_the_server_and_reads_binary_rows() -> Result<()> {
    let (_tmp, tenants, out) = shop_client("psycopg").await?;
    let server = &tenants.server;
    let log = || server.log_text();

    assert_eq!(
        out["columns"],
        json!([
            ["project", TEXT],
            ["title", TEXT],
            ["n", INT8],
            ["last", TIMESTAMPTZ]
        ]),
        "server log:\n{}",
        log()
    );
    let row = &out["rows"][0];
    assert_eq!(out["rows"].as_array().map(Vec::len), Some(1), "{out}");
    assert_eq!(row[0], "shop");
    assert_eq!(row[1], "shop broke");
    assert_eq!(row[2], 1);
    assert_eq!(
        row[3]["type"], "datetime",
        "binary timestamptz decodes to a datetime"
    );
    assert!(
        row[3]["iso"]
            .as_str()
            .is_some_and(|t| t.ends_with("+00:00")),
        "{row}"
    );
    // The other tenant's project, asked for by name: nothing.
    assert_eq!(out["web_rows"], json!([]));
    assert_eq!(out["typed_params"], json!([[1]]));
    assert_eq!(out["text_rows"], json!([[1, false]]));
    assert!(
        out["version"]
            .as_str()
            .is_some_and(|v| v.starts_with("PostgreSQL 16.0")),
        "{out}"
    );
    assert_eq!(out["show"], "on");
    assert_eq!(out["server_version"], 160000);
    // The catalog lists the session's tables, whoever else has data on the server.
    assert_eq!(
        out["information_schema"],
        json!([
            "alert_deliveries",
            "attachments",
            "check_ins",
            "events",
            "feedback",
            "issue_hours",
            "issue_tags",
            "issues",
            "logs",
            "monitors",
            "outcomes",
            "release_health",
            "release_health_hourly",
            "sessions",
            "spans",
            "transactions"
        ])
    );
    assert_eq!(
        out["pg_class"],
        json!([
            "alert_deliveries",
            "attachments",
            "check_ins",
            "events",
            "feedback",
            "issue_hours",
            "issue_tags",
            "issues",
            "logs",
            "monitors",
            "outcomes",
            "release_health",
            "release_health_hourly",
            "sessions",
            "spans",
            "transactions"
        ])
    );
    // PostgreSQL always has a `postgres` database; pg_catalog lists it too.
    assert_eq!(out["pg_database"], json!(["faultline", "postgres"]));
    assert_eq!(out["pg_namespace"], json!(["public"]));
    assert_eq!(out["settings"], json!(["superset", "public"]));
    assert_eq!(out["in_transaction"], 1);

    let errors = &out["errors"];
    assert_eq!(errors["syntax"][0], "42601", "{errors}");
    assert_eq!(
        errors["undefined_table"],
        json!(["42P01", "table 'faultline.public.secrets' not found"])
    );
    assert_eq!(
        errors["copy"],
        json!(["42501", "DML not supported: COPY"]),
        "{errors}"
    );
    assert_eq!(
        errors["ddl"],
        json!(["42501", "DDL not supported: CreateMemoryTable"])
    );
    assert_eq!(
        errors["file"],
        json!(["42883", "table function 'read_csv' not found"]),
        "{errors}"
    );
    // DataFusion's own settings table is not there to read.
    assert_eq!(
        errors["df_settings"],
        json!([
            "42P01",
            "table 'faultline.information_schema.df_settings' not found"
        ]),
        "{errors}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn asyncpg_prepares_and_reads_binary_with_typed_parameters() -> Result<()> {
    let (_tmp, tenants, out) = shop_client("asyncpg").await?;
    let server = &tenants.server;

    assert_eq!(
        out["parameters"],
        json!(["text"]),
        "server log:\n{}",
        server.log_text()
    );
    assert_eq!(
        out["attributes"],
        json!([
            ["project", "text"],
            ["title", "text"],
            ["n", "int8"],
            ["last", "timestamptz"]
        ])
    );
    assert_eq!(out["rows"][0][0], "shop");
    assert_eq!(out["rows"][0][2], 1);
    assert_eq!(out["rows"][0][3]["type"], "datetime");
    assert_eq!(out["web_rows"], json!([]));
    assert_eq!(out["typed"], 1);
    assert_eq!(out["pg_type"], "int8");
    assert_eq!(out["undefined_table"][0], "42P01", "{out}");
    assert_eq!(
        out["drop"],
        json!(["42501", "DDL not supported: DropTable"]),
        "{out}"
    );
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlalchemy_inspects_the_catalog_and_queries_like_a_bi_tool() -> Result<()> {
    let (_tmp, tenants, out) = shop_client("sqlalchemy").await?;
    let server = &tenants.server;

    assert_eq!(
        out["tables"],
        json!([
            "alert_deliveries",
            "attachments",
            "check_ins",
            "events",
            "feedback",
            "issue_hours",
            "issue_tags",
            "issues",
            "logs",
            "monitors",
            "outcomes",
            "release_health",
            "release_health_hourly",
            "sessions",
            "spans",
            "transactions"
        ]),
        "server log:\n{}",
        server.log_text()
    );
    assert!(
        out["schemas"]
            .as_array()
            .is_some_and(|s| s.contains(&json!("public"))),
        "{out}"
    );
    let columns = &out["events_columns"];
    assert_eq!(columns["project_id"], "BIGINT", "{columns}");
    assert_eq!(columns["title"], "TEXT");
    assert_eq!(columns["received"], "TIMESTAMP");
    assert_eq!(columns["frame_count"], "INTEGER");
    assert!(
        out["issues_columns"]
            .as_array()
            .is_some_and(|c| c.contains(&json!("event_count"))),
        "{out}"
    );
    assert_eq!(out["rows"], json!([["shop", 1]]));
    assert_eq!(out["core_rows"], json!([]), "web's title never appears");

    let out = client("bad-token", tenants.port, "unused")?;
    let error = out["error"].as_str().context("a bad token must fail")?;
    assert!(
        error.contains("Password authentication failed for user \"bi\""),
        "{error}"
    );
    Ok(())
}
