//! The same SQL through every client a user has: curl-style HTTP, the `faultline query` CLI
//! (reading the data directory and asking the server), `psql`, and the ADBC Flight SQL driver
//! (bearer token and user name / password login). Each sees the tags map as JSON text in CSV,
//! JSON functions over the stored event, and `SHOW TABLES` listing exactly `events`, `issues`
//! `issue_hours` and `issue_tags`.

use std::process::{Command, Stdio};

use anyhow::{Context, Result, ensure};
use serde_json::{Value, json};

use crate::harness::{Server, Setup, free_port, python_client, store_message};

/// An event with tags, contexts, request headers, breadcrumbs and an exception with frames.
const RICH_EVENT: &str = r#"{
    "message": "checkout failed",
    "tags": {"browser": "Firefox", "region": "eu, west"},
    "contexts": {"os": {"name": "Linux", "version": "6.1"}},
    "request": {"url": "https://shop.example/cart", "method": "POST",
                "headers": {"User-Agent": "curl/8.5"}},
    "breadcrumbs": {"values": [{"category": "http", "message": "GET /cart"},
                               {"category": "ui.click", "message": "button#pay"}]},
    "exception": {"values": [{"type": "ValueError", "value": "bad card",
        "stacktrace": {"frames": [{"function": "main", "lineno": 3},
                                  {"function": "pay", "lineno": 42}]}}]}
}"#;

/// Reads the operating system, user agent, breadcrumb count, last breadcrumb and innermost
/// frame out of the event, with `->`, `->>` and the JSON functions.
const JSON_SQL: &str = "SELECT event->'contexts'->'os'->>'name' AS os, \
    event->'request'->'headers'->>'User-Agent' AS agent, \
    json_length(event, 'breadcrumbs', 'values') AS crumbs, \
    event->'breadcrumbs'->'values'-> -1->>'message' AS last_crumb, \
    event->'exception'->'values'->0->'stacktrace'->'frames'-> -1->>'function' AS top \
    FROM events WHERE event->'contexts'->'os'->>'name' = 'Linux'";

const CSV_SQL: &str = "SELECT title, tags FROM events";
const TAGS_CSV: &str = "title,tags\nValueError: bad card,\"{\"\"browser\"\":\"\"Firefox\"\",\"\"region\"\":\"\"eu, west\"\"}\"\n";

struct Everywhere {
    _dir: tempfile::TempDir,
    setup: Setup,
    server: Server,
    pg_port: u16,
    flight_port: u16,
    /// A token limited to `shop`; `web` holds one other event.
    token: String,
}

async fn start() -> Result<Everywhere> {
    let dir = tempfile::tempdir()?;
    let (pg_port, flight_port) = (free_port(), free_port());
    let setup = Setup::new(
        dir.path(),
        "data",
        &format!(
            "[server]\npg_listen = \"127.0.0.1:{pg_port}\"\nflight_listen = \"127.0.0.1:{flight_port}\"\n"
        ),
    );
    let shop = setup.create_project("shop")?;
    let web = setup.create_project("web")?;
    let server = setup.start()?;
    store_message(&setup, &web, "web secret").await?;
    // http://<key>@127.0.0.1:<port>/<id>
    let (key, rest) = shop["http://".len()..].split_once('@').context("dsn")?;
    let id = rest.rsplit('/').next().context("dsn")?;
    let status = reqwest::Client::new()
        .post(format!("{}/api/{id}/store/", setup.base_url()))
        .header("x-sentry-auth", format!("Sentry sentry_key={key}"))
        .body(RICH_EVENT)
        .send()
        .await?
        .status();
    ensure!(status.is_success(), "store answered {status}");
    let token = setup
        .cli(&["token", "create", "--name", "sql", "--project", "shop"])?
        .trim()
        .to_owned();
    Ok(Everywhere {
        _dir: dir,
        setup,
        server,
        pg_port,
        flight_port,
        token,
    })
}

impl Everywhere {
    /// `POST /api/sql?format=FORMAT` as curl sends it: status and body text.
    async fn http(&self, format: &str, sql: &str) -> Result<(u16, String)> {
        let response = reqwest::Client::new()
            .post(format!("{}/api/sql?format={format}", self.setup.base_url()))
            .bearer_auth(&self.token)
            .header("content-type", "text/plain")
            .body(sql.to_owned())
            .send()
            .await?;
        Ok((response.status().as_u16(), response.text().await?))
    }

    /// `faultline query --format FORMAT SQL`, remote (`--server`) or on the data directory.
    fn cli(&self, remote: bool, format: &str, sql: &str) -> Result<String> {
        let base = self.setup.base_url();
        let mut args = vec!["query", "--format", format];
        if remote {
            args.extend(["--server", base.as_str(), "--token", self.token.as_str()]);
        }
        args.push(sql);
        self.setup.cli(&args)
    }

    /// `psql -At -F , -c SQL` with the token as the password.
    fn psql(&self, sql: &str) -> Result<String> {
        let output = Command::new("psql")
            .arg(format!(
                "host=127.0.0.1 port={} user=analyst dbname=faultline sslmode=disable connect_timeout=10",
                self.pg_port
            ))
            .args(["-X", "-A", "-t", "-F", ",", "-v", "ON_ERROR_STOP=1", "-c", sql])
            .env("PGPASSWORD", &self.token)
            .stdin(Stdio::null())
            .output()
            .context("run psql (Debian package postgresql-client)")?;
        ensure!(
            output.status.success(),
            "psql {sql}: {}\nserver log:\n{}",
            String::from_utf8_lossy(&output.stderr),
            self.server.log_text()
        );
        Ok(String::from_utf8(output.stdout)?)
    }

    /// ADBC Flight SQL: with `user`, a user name / password login; else a bearer header.
    fn adbc(&self, user: Option<&str>, statements: &[&str]) -> Result<Vec<Value>> {
        let url = format!("grpc://127.0.0.1:{}", self.flight_port);
        let (script, mut args) = match user {
            Some(user) => ("flight_sql_login.py", vec![url.as_str(), user]),
            None => ("flight_sql_query.py", vec![url.as_str()]),
        };
        args.push(&self.token);
        args.extend(statements);
        python_client(script, &args)?
            .lines()
            .map(|l| serde_json::from_str(l).with_context(|| format!("not JSON: {l}")))
            .collect()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn csv_json_functions_and_show_tables_on_every_client() -> Result<()> {
    let e = start().await?;
    let json_row = json!({"os": "Linux", "agent": "curl/8.5", "crumbs": 2,
                          "last_crumb": "button#pay", "top": "pay"});
    let tables = json!([
        {"table_catalog": "faultline", "table_schema": "public", "table_name": "events", "table_type": "BASE TABLE"},
        {"table_catalog": "faultline", "table_schema": "public", "table_name": "issues", "table_type": "BASE TABLE"},
        {"table_catalog": "faultline", "table_schema": "public", "table_name": "issue_hours", "table_type": "BASE TABLE"},
        {"table_catalog": "faultline", "table_schema": "public", "table_name": "issue_tags", "table_type": "BASE TABLE"},
        {"table_catalog": "faultline", "table_schema": "public", "table_name": "alert_deliveries", "table_type": "BASE TABLE"},
        {"table_catalog": "faultline", "table_schema": "public", "table_name": "monitors", "table_type": "BASE TABLE"},
        {"table_catalog": "faultline", "table_schema": "public", "table_name": "transactions", "table_type": "BASE TABLE"},
        {"table_catalog": "faultline", "table_schema": "public", "table_name": "spans", "table_type": "BASE TABLE"},
        {"table_catalog": "faultline", "table_schema": "public", "table_name": "logs", "table_type": "BASE TABLE"},
        {"table_catalog": "faultline", "table_schema": "public", "table_name": "feedback", "table_type": "BASE TABLE"},
        {"table_catalog": "faultline", "table_schema": "public", "table_name": "attachments", "table_type": "BASE TABLE"},
        {"table_catalog": "faultline", "table_schema": "public", "table_name": "outcomes", "table_type": "BASE TABLE"},
        {"table_catalog": "faultline", "table_schema": "public", "table_name": "sessions", "table_type": "BASE TABLE"},
        {"table_catalog": "faultline", "table_schema": "public", "table_name": "check_ins", "table_type": "BASE TABLE"},
        {"table_catalog": "faultline", "table_schema": "public", "table_name": "release_health", "table_type": "BASE TABLE"},
        {"table_catalog": "faultline", "table_schema": "public", "table_name": "release_health_hourly", "table_type": "BASE TABLE"},
    ]);

    // HTTP: every column of every table as CSV; tags (a map, a list of structs) as JSON text.
    // One event: one row each, and in issue_tags one row per tag value (browser, region).
    for (table, rows) in [
        ("events", 1),
        ("issues", 1),
        ("issue_hours", 1),
        ("issue_tags", 2),
    ] {
        let (status, body) = e.http("csv", &format!("SELECT * FROM {table}")).await?;
        assert_eq!(status, 200, "{table}: {body}");
        assert_eq!(body.lines().count(), 1 + rows, "{body}");
    }
    assert_eq!(e.http("csv", CSV_SQL).await?, (200, TAGS_CSV.to_owned()));
    let (status, body) = e.http("json", JSON_SQL).await?;
    assert_eq!(status, 200, "{body}");
    assert_eq!(serde_json::from_str::<Value>(&body)?, json!([json_row]));
    let (status, body) = e.http("json", "SHOW TABLES").await?;
    assert_eq!(
        (status, serde_json::from_str::<Value>(&body)?),
        (200, tables.clone())
    );
    let (status, body) = e.http("json", "SELECT 1 +").await?;
    assert_eq!(status, 400, "{body}");

    // The CLI, on the data directory (all projects) and through the server (the token's).
    let local = e.cli(false, "csv", &format!("{CSV_SQL} WHERE project = 'shop'"))?;
    assert_eq!(local, TAGS_CSV);
    assert_eq!(e.cli(true, "csv", CSV_SQL)?, TAGS_CSV);
    let table = e.cli(true, "table", "SELECT tags FROM events")?;
    assert!(
        table.contains(r#"| {"browser":"Firefox","region":"eu, west"} |"#),
        "{table}"
    );
    let rows: Value = serde_json::from_str(&e.cli(true, "json", JSON_SQL)?)?;
    assert_eq!(rows, json!([json_row]));
    // On the data directory the CLI reads everything, the audit log too.
    let rows: Value = serde_json::from_str(&e.cli(false, "json", "SHOW TABLES")?)?;
    let mut all = tables.clone();
    all.as_array_mut().unwrap().insert(4, json!(
        {"table_catalog": "faultline", "table_schema": "public", "table_name": "audit_log", "table_type": "BASE TABLE"}
    ));
    assert_eq!(rows, all);
    let columns = e.cli(false, "csv", "SELECT column_name FROM information_schema.columns WHERE table_name = 'events' AND data_type = 'bigint'")?;
    assert_eq!(columns, "column_name\nproject_id\nissue_id\n");

    // psql.
    assert_eq!(
        e.psql(&format!("{CSV_SQL} LIMIT 1"))?,
        "ValueError: bad card,{\"browser\":\"Firefox\",\"region\":\"eu, west\"}\n"
    );
    assert_eq!(e.psql(JSON_SQL)?, "Linux,curl/8.5,2,button#pay,pay\n");
    assert_eq!(
        e.psql("SHOW TABLES")?,
        "faultline,public,events,BASE TABLE\nfaultline,public,issues,BASE TABLE\n\
         faultline,public,issue_hours,BASE TABLE\n\
         faultline,public,issue_tags,BASE TABLE\n\
         faultline,public,alert_deliveries,BASE TABLE\n\
         faultline,public,monitors,BASE TABLE\n\
         faultline,public,transactions,BASE TABLE\n\
         faultline,public,spans,BASE TABLE\n\
         faultline,public,logs,BASE TABLE\n\
         faultline,public,feedback,BASE TABLE\n\
         faultline,public,attachments,BASE TABLE\n\
         faultline,public,outcomes,BASE TABLE\n\
         faultline,public,sessions,BASE TABLE\n\
         faultline,public,check_ins,BASE TABLE\n\
         faultline,public,release_health,BASE TABLE\n\
         faultline,public,release_health_hourly,BASE TABLE\n"
    );
    assert_eq!(
        e.psql("SELECT event->'contexts'->'os'->>'version' FROM events")?,
        "6.1\n"
    );

    // ADBC Flight SQL with a bearer token.
    let results = e.adbc(
        None,
        &[
            JSON_SQL,
            "SHOW TABLES",
            "SHOW COLUMNS FROM issues",
            "SELECT * FROM information_schema.df_settings",
        ],
    )?;
    assert_eq!(
        results[0]["rows"],
        json!([json_row]),
        "server log:\n{}",
        e.server.log_text()
    );
    assert_eq!(results[1]["rows"], tables);
    let columns = results[2]["rows"].as_array().context("SHOW COLUMNS rows")?;
    assert_eq!(columns[0]["column_name"], "issue_id");
    assert_eq!(columns[0]["data_type"], "bigint");
    let refused = results[3]["error"]
        .as_str()
        .context("df_settings must fail")?;
    assert!(refused.contains("df_settings' not found"), "{refused}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn adbc_logs_in_with_user_names_of_every_length() -> Result<()> {
    let e = start().await?;
    // `user:token` of each length mod 3: base64 with no, two and one `=` of padding.
    for user in ["a", "ab", "abc", "grafana"] {
        let results = e.adbc(
            Some(user),
            &["SELECT project, count(*) AS n FROM events GROUP BY 1"],
        )?;
        assert_eq!(
            results,
            [json!({"rows": [{"project": "shop", "n": 1}]})],
            "user {user}; server log:\n{}",
            e.server.log_text()
        );
    }
    let url = format!("grpc://127.0.0.1:{}", e.flight_port);
    let out = python_client(
        "flight_sql_login.py",
        &[&url, "ab", "flt_not_a_token", "SELECT 1"],
    )?;
    assert!(out.contains("invalid API token"), "{out}");
    Ok(())
}
