//! What an operator of one server sees: DSNs printed with the address the server is reached at,
//! `/metrics` of a running server after real traffic, and DSN keys rotated and disabled with
//! the CLI while the server runs.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};

use crate::harness::{Setup, free_port};

/// Runs the CLI on `setup` and returns (stdout, stderr), failing on a non-zero exit.
fn cli_both(setup: &Setup, args: &[&str]) -> Result<(String, String)> {
    let output = Command::new(env!("CARGO_BIN_EXE_faultline"))
        .arg("--config")
        .arg(&setup.config)
        .arg("--data-dir")
        .arg(&setup.data_dir)
        .args(args)
        .env_remove("FAULTLINE_CONFIG")
        .env_remove("FAULTLINE_DATA_DIR")
        .env_remove("FAULTLINE_LISTEN")
        .env_remove("FAULTLINE_PUBLIC_URL")
        .stdin(Stdio::null())
        .output()
        .context("run faultline")?;
    let stdout = String::from_utf8(output.stdout)?;
    let stderr = String::from_utf8(output.stderr)?;
    ensure!(
        output.status.success(),
        "faultline {args:?} failed:\n{stderr}"
    );
    Ok((stdout, stderr))
}

/// `(key, project id)` of a DSN `http://<key>@host:port/<id>`.
fn dsn_parts(dsn: &str) -> Result<(String, String)> {
    let rest = dsn.trim().split_once("://").context("dsn scheme")?.1;
    let (key, rest) = rest.split_once('@').context("dsn key")?;
    let id = rest.rsplit('/').next().context("dsn id")?;
    Ok((key.to_owned(), id.to_owned()))
}

async fn store(base: &str, key: &str, id: &str, message: &str) -> Result<(u16, String)> {
    let response = reqwest::Client::new()
        .post(format!("{base}/api/{id}/store/"))
        .header("x-sentry-auth", format!("Sentry sentry_key={key}"))
        .body(format!(r#"{{"message":"{message}"}}"#))
        .send()
        .await?;
    let status = response.status().as_u16();
    Ok((status, response.text().await?))
}

#[test]
fn project_create_prints_the_dsn_at_the_address_it_was_told() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let setup = Setup::new(
        dir.path(),
        "data",
        "[server]\nlisten = \"127.0.0.1:9123\"\n",
    );
    let (dsn, said) = cli_both(&setup, &["project", "create", "shop"])?;
    assert!(dsn.trim().ends_with("@127.0.0.1:9123/1"), "{dsn}");
    assert!(said.contains("listen address (server.listen)"), "{said}");
    assert!(said.contains("server.public_url"), "{said}");

    let (dsn, said) = cli_both(
        &setup,
        &["project", "create", "web", "--listen", "0.0.0.0:9200"],
    )?;
    assert!(dsn.trim().ends_with("@127.0.0.1:9200/2"), "{dsn}");
    assert!(said.contains("every interface"), "{said}");

    let public = Setup::new(
        dir.path(),
        "public",
        "[server]\npublic_url = \"https://errors.example.com\"\n",
    );
    let (dsn, said) = cli_both(&public, &["project", "create", "api"])?;
    assert!(
        dsn.trim().starts_with("https://") && dsn.trim().ends_with("@errors.example.com/1"),
        "{dsn}"
    );
    assert!(said.contains("server.public_url in the config"), "{said}");
    let (list, _) = cli_both(&public, &["project", "list"])?;
    assert!(list.contains("@errors.example.com/1"), "{list}");
    Ok(())
}

/// The value of the sample whose line starts with `series`.
fn sample(text: &str, series: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_of_a_running_server_count_ingest_and_queries() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let admin_port = free_port();
    let setup = Setup::new(
        dir.path(),
        "data",
        // No timed flush during the test: the three events stay in the buffer.
        &format!(
            "[server]\nadmin_listen = \"127.0.0.1:{admin_port}\"\n[flush]\ninterval = \"1h\"\n"
        ),
    );
    let dsn = setup.create_project("shop")?;
    let (key, id) = dsn_parts(&dsn)?;
    let token = setup.create_token()?;
    let server = setup.start()?;
    let admin = format!("http://127.0.0.1:{admin_port}");
    let scrape = || async {
        let response = reqwest::get(format!("{admin}/metrics")).await?;
        ensure!(
            response.status() == 200,
            "/metrics answered {}",
            response.status()
        );
        Ok::<_, anyhow::Error>(response.text().await?)
    };
    let before = scrape().await?;

    for i in 0..3 {
        let (status, body) = store(&setup.base_url(), &key, &id, &format!("m{i}")).await?;
        ensure!(status == 200, "store answered {status}: {body}");
    }
    let (status, _) = store(&setup.base_url(), &"0".repeat(32), &id, "bad key").await?;
    assert_eq!(status, 401);
    let response = reqwest::Client::new()
        .post(format!("{admin}/api/sql"))
        .bearer_auth(&token)
        .json(&serde_json::json!({"sql": "SELECT count(*) AS n FROM events"}))
        .send()
        .await?;
    assert_eq!(response.status(), 200);
    let after = scrape().await?;
    // The ingest listener does not serve the metrics when the admin listener does.
    let ingest_side = reqwest::get(format!("{}/metrics", setup.base_url())).await?;
    assert_eq!(ingest_side.status(), 404);

    let grew = |series: &str| sample(&after, series) - sample(&before, series);
    assert_eq!(
        grew(r#"faultline_ingest_requests_total{endpoint="store",outcome="accepted"}"#),
        3.0,
        "{after}"
    );
    assert_eq!(
        grew(r#"faultline_ingest_requests_total{endpoint="store",outcome="unauthorized"}"#),
        1.0
    );
    assert_eq!(
        grew(r#"faultline_ingest_items_total{item_type="event",outcome="accepted"}"#),
        3.0
    );
    assert!(grew("faultline_wal_commits_total") >= 1.0, "{after}");
    assert!(grew("faultline_wal_written_bytes_total") > 0.0);
    assert_eq!(
        grew(r#"faultline_queries_total{protocol="http",outcome="ok"}"#),
        1.0
    );
    assert_eq!(sample(&after, "faultline_buffer_rows"), 3.0, "{after}");
    assert!(
        sample(
            &after,
            r#"faultline_object_store_requests_total{operation="list",outcome="ok"}"#
        ) >= 1.0,
        "{after}"
    );
    drop(server);
    Ok(())
}

#[tokio::test(flavor = "multi_thread")]
async fn keys_rotated_and_disabled_with_the_cli_apply_to_a_running_server() -> Result<()> {
    let dir = tempfile::tempdir()?;
    let setup = Setup::new(dir.path(), "data", "");
    let dsn = setup.create_project("shop")?;
    let (old, id) = dsn_parts(&dsn)?;
    let server = setup.start()?;
    let base = setup.base_url();

    let (new_dsn, said) = cli_both(
        &setup,
        &[
            "key",
            "rotate",
            &old,
            "--project",
            "shop",
            "--public-url",
            &base,
        ],
    )?;
    assert!(said.contains("keeps working"), "{said}");
    let (new, new_id) = dsn_parts(&new_dsn)?;
    assert_eq!(new_id, id);
    assert_ne!(new, old);
    assert_eq!(store(&base, &old, &id, "old key").await?.0, 200);
    assert_eq!(store(&base, &new, &id, "new key").await?.0, 200);

    let (list, _) = cli_both(&setup, &["key", "list", "--project", "shop"])?;
    let states: Vec<(&str, &str)> = list
        .lines()
        .map(|l| {
            let mut cols = l.split('\t');
            (cols.next().unwrap_or(""), cols.next().unwrap_or(""))
        })
        .collect();
    assert_eq!(states, [(old.as_str(), "active"), (new.as_str(), "active")]);

    cli_both(&setup, &["key", "disable", &old, "--project", "shop"])?;
    // Running servers re-read keys every few seconds: wait for the first refusal.
    let deadline = Instant::now() + Duration::from_secs(30);
    let (status, body) = loop {
        let (status, body) = store(&base, &old, &id, "after disable").await?;
        if status != 200 || Instant::now() > deadline {
            break (status, body);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(status, 401, "{body}");
    assert!(body.contains("is disabled"), "{body}");
    assert_eq!(store(&base, &new, &id, "still fine").await?.0, 200);

    let refused = cli_both(&setup, &["key", "delete", &new, "--project", "shop"])
        .expect_err("the last active key cannot be deleted")
        .to_string();
    assert!(refused.contains("no active DSN key left"), "{refused}");
    drop(server);
    Ok(())
}
