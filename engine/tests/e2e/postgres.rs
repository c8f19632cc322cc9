//! The real `psql` against `faultline serve --pg-listen`: an API token as the password, queries
//! limited to the token's projects, `\dt` and `\d`, refusals and bad tokens as PostgreSQL errors.

use std::process::{Command, Output, Stdio};

use anyhow::{Context, Result};

use crate::harness::TwoTenants;

/// Runs `psql -At -c SQL` with `token` as the password.
fn psql(port: u16, token: &str, sql: &str) -> Result<Output> {
    Command::new("psql")
        .arg(format!(
            "host=127.0.0.1 port={port} user=grafana dbname=faultline sslmode=disable connect_timeout=10"
        ))
        .args(["-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-c", sql])
        .env("PGPASSWORD", token)
        .stdin(Stdio::null())
        .output()
        .context("run psql (Debian package postgresql-client; scripts/test installs it)")
}

fn stdout(output: &Output) -> String {
    assert!(
        output.status.success(),
        "psql failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn psql_queries_with_a_token_as_password() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let TwoTenants {
        server,
        port: pg_port,
        shop_token: token,
        ..
    } = TwoTenants::start(tmp.path(), "pg_listen").await?;

    let out = psql(
        pg_port,
        &token,
        "SELECT project, title, level, count(*) AS n FROM events GROUP BY 1, 2, 3",
    )?;
    assert_eq!(
        stdout(&out),
        "shop|shop broke|error|1\n",
        "server log:\n{}",
        server.log_text()
    );
    let out = psql(
        pg_port,
        &token,
        "SELECT project, event_count, status, regressed FROM issues",
    )?;
    assert_eq!(stdout(&out), "shop|1|unresolved|f\n");
    let out = psql(
        pg_port,
        &token,
        "SELECT count(*) FROM events WHERE project = 'web'",
    )?;
    assert_eq!(stdout(&out), "0\n");

    let out = psql(
        pg_port,
        &token,
        "CREATE EXTERNAL TABLE leak STORED AS CSV LOCATION '/etc/passwd'",
    )?;
    assert!(!out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).trim(),
        "ERROR:  DDL not supported: CreateExternalTable"
    );

    // SET is answered per connection and changes nothing DataFusion does.
    let out = psql(
        pg_port,
        &token,
        "SET datafusion.catalog.information_schema = true; SELECT * FROM information_schema.df_settings",
    )?;
    assert!(!out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stderr).trim(),
        "ERROR:  table 'faultline.information_schema.df_settings' not found"
    );

    // psql's own catalog queries: the token's tables, and their columns by table oid.
    let out = psql(pg_port, &token, "\\dt")?;
    assert_eq!(
        stdout(&out),
        "public|alert_deliveries|table|postgres\npublic|attachments|table|postgres\n\
         public|check_ins|table|postgres\npublic|events|table|postgres\n\
         public|feedback|table|postgres\npublic|issue_hours|table|postgres\n\
         public|issue_tags|table|postgres\npublic|issues|table|postgres\n\
         public|logs|table|postgres\npublic|monitors|table|postgres\n\
         public|outcomes|table|postgres\n\
         public|release_health|table|postgres\npublic|release_health_hourly|table|postgres\n\
         public|sessions|table|postgres\npublic|spans|table|postgres\n\
         public|transactions|table|postgres\n"
    );
    let out = psql(pg_port, &token, "\\d events")?;
    let columns = stdout(&out);
    assert!(
        columns.starts_with("event_id|text||not null|\nproject_id|bigint||not null|\n"),
        "{columns}"
    );

    let out = psql(pg_port, "flt_not_a_token", "SELECT 1")?;
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("FATAL:  Password authentication failed for user \"grafana\""),
        "{stderr}"
    );
    Ok(())
}

/// SQL nested deeper than `query.max_expression_depth` is refused with SQLSTATE 54001 before it
/// is planned; the connection's next query runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn psql_deep_sql_is_statement_too_complex() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let TwoTenants {
        server,
        port: pg_port,
        shop_token: token,
        ..
    } = TwoTenants::start(tmp.path(), "pg_listen").await?;
    let deep = format!("SELECT {}", vec!["1"; 5000].join("+"));
    let out = Command::new("psql")
        .arg(format!(
            "host=127.0.0.1 port={pg_port} user=grafana dbname=faultline sslmode=disable"
        ))
        .args(["-X", "-A", "-t", "-v", "VERBOSITY=verbose", "-c", &deep])
        .env("PGPASSWORD", &token)
        .stdin(Stdio::null())
        .output()?;
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.starts_with(
            "ERROR:  54001: the SQL nests expressions or subqueries more than \
             query.max_expression_depth (500 levels) deep"
        ),
        "{stderr}\nserver log:\n{}",
        server.log_text()
    );
    let just_under = format!("SELECT {}", vec!["1"; 499].join("+"));
    assert_eq!(stdout(&psql(pg_port, &token, &just_under)?), "499\n");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_connection_stops_when_its_token_is_revoked() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let TwoTenants {
        server,
        port: pg_port,
        ..
    } = TwoTenants::start(tmp.path(), "pg_listen").await?;
    let setup = &server.setup;
    let create = |name: &str, scope: &str| -> Result<String> {
        Ok(setup
            .cli(&["token", "create", "--name", name, "--scope", scope])?
            .trim()
            .to_owned())
    };
    let reader = create("reader", "events:read")?;
    let admin = create("admin", "org:write")?;
    let tokens: serde_json::Value = reqwest::Client::new()
        .get(format!("{}/api/tokens", setup.base_url()))
        .bearer_auth(&admin)
        .send()
        .await?
        .json()
        .await?;
    let id = tokens
        .as_array()
        .context("a token list")?
        .iter()
        .find(|t| t["name"] == "reader")
        .and_then(|t| t["id"].as_str())
        .context("the reader's id")?
        .to_owned();
    // one connection: a query, the token revoked over HTTP (psql's \! runs it in between),
    // and the next query on the same connection
    let script = format!(
        "SELECT 1;\n\\! curl -s -o /dev/null -X DELETE -H 'Authorization: Bearer {admin}' {}/api/tokens/{id}\nSELECT 2;\n",
        setup.base_url()
    );
    let mut child = Command::new("psql")
        .arg(format!(
            "host=127.0.0.1 port={pg_port} user=grafana dbname=faultline sslmode=disable connect_timeout=10"
        ))
        .args(["-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-f", "-"])
        .env("PGPASSWORD", &reader)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("run psql")?;
    {
        use std::io::Write;
        let mut stdin = child.stdin.take().context("psql stdin")?;
        stdin.write_all(script.as_bytes())?;
    }
    let out = child.wait_with_output()?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "1\n", "{stderr}");
    assert!(!out.status.success());
    assert!(stderr.contains("invalid API token"), "{stderr}");
    assert!(
        stderr.contains("28000") || stderr.contains("reconnect"),
        "{stderr}"
    );
    Ok(())
}
