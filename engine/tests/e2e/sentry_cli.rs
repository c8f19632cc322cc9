//! The real `sentry-cli` (PyPI `sentry-cli`, from the test venv) against a running server:
//! `info`, `organizations list`, `projects list`, `releases new / finalize / list / info`,
//! `deploys new / list`, `send-event`, `issues list / resolve`, with an API token as a CI job
//! would use one; then the issue and its latest event over Sentry's issue API.

use std::process::Command;

use anyhow::{Context, Result, ensure};
use serde_json::Value;

use crate::harness::{Setup, python};

/// Runs `sentry-cli ARGS` against `base` with `token`, organization `default`, project `shop`;
/// its standard output, or an error with both streams.
fn sentry_cli(base: &str, token: &str, args: &[&str]) -> Result<String> {
    sentry_cli_with(base, token, None, args)
}

fn sentry_cli_with(base: &str, token: &str, dsn: Option<&str>, args: &[&str]) -> Result<String> {
    let bin = python()
        .parent()
        .context("venv bin dir")?
        .join("sentry-cli");
    ensure!(
        bin.exists(),
        "no sentry-cli at {} (pip install sentry-cli, as scripts/test does)",
        bin.display()
    );
    let mut command = Command::new(&bin);
    command
        .args(args)
        .env("SENTRY_URL", base)
        .env("SENTRY_AUTH_TOKEN", token)
        .env("SENTRY_ORG", "default")
        .env("SENTRY_PROJECT", "shop")
        .env("SENTRY_DISABLE_UPDATE_CHECK", "1");
    match dsn {
        Some(dsn) => command.env("SENTRY_DSN", dsn),
        None => command.env_remove("SENTRY_DSN"),
    };
    let output = command.output().context("run sentry-cli")?;
    ensure!(
        output.status.success(),
        "sentry-cli {args:?} failed ({}):\n{}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(String::from_utf8(output.stdout)?)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sentry_cli_registers_releases_and_deploys() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let setup = Setup::new(tmp.path(), "data", "");
    // The project exists before the server starts, so its first answers already know it.
    let dsn = setup.create_project("shop")?;
    let server = setup.start()?;
    let out = setup.token_with(
        "ci",
        &[
            "org:read",
            "project:read",
            "project:releases",
            "event:read",
            "event:write",
        ],
    )?;
    let token = out.trim().to_owned();
    let base = setup.base_url();
    let cli = |args: &[&str]| sentry_cli(&base, &token, args);

    let info = cli(&["info"])?;
    assert!(info.contains("Default Organization: default"), "{info}");
    assert!(info.contains("- project:releases"), "{info}");
    let orgs = cli(&["organizations", "list"])?;
    assert!(orgs.contains("| default "), "{orgs}");
    let projects = cli(&["projects", "list"])?;
    assert!(projects.contains("| shop "), "{projects}");

    assert!(
        cli(&["releases", "new", "shop@1.0.0+abc"])?.contains("Created release shop@1.0.0+abc")
    );
    assert!(cli(&["releases", "finalize", "shop@1.0.0+abc"])?.contains("Finalized release"));
    let list = cli(&["releases", "list"])?;
    assert!(list.contains("shop@1.0.0+abc"), "{list}");
    let info = cli(&["releases", "info", "shop@1.0.0+abc"])?;
    assert!(info.contains("shop@1.0.0+abc"), "{info}");
    let deploy = cli(&["deploys", "new", "-r", "shop@1.0.0+abc", "-e", "production"])?;
    assert!(deploy.contains("'production'"), "{deploy}");
    let deploys = cli(&["deploys", "list", "-r", "shop@1.0.0+abc"])?;
    assert!(deploys.contains("production"), "{deploys}");

    // The same release over the API, as Sentry shapes it.
    let response = reqwest::Client::new()
        .get(format!(
            "{base}/api/0/organizations/default/releases/shop@1.0.0%2Babc/"
        ))
        .bearer_auth(&token)
        .send()
        .await?;
    ensure!(response.status() == 200, "{}", server.log_text());
    let release: Value = response.json().await?;
    assert_eq!(release["version"], "shop@1.0.0+abc");
    assert!(release["dateReleased"].is_string(), "{release}");
    assert_eq!(release["deployCount"], 1);
    assert_eq!(release["lastDeploy"]["environment"], "production");
    assert_eq!(release["projects"][0]["slug"], "shop");

    // Events from sentry-cli itself, then its issue commands.
    for message in ["checkout failed", "login failed for user 42"] {
        let sent = sentry_cli_with(&base, &token, Some(&dsn), &["send-event", "-m", message])?;
        ensure!(sent.contains("Event id:"), "{sent}");
    }
    let issues = cli(&["issues", "list"])?;
    assert!(
        issues.contains("checkout failed") && issues.contains("login failed for user 42"),
        "{issues}"
    );
    let rows = setup.query("SELECT issue_id, title FROM issues ORDER BY title")?;
    let checkout = rows[0]["issue_id"]
        .as_i64()
        .context("issue id")?
        .to_string();
    assert_eq!(rows[0]["title"], "checkout failed");
    let resolved = cli(&["issues", "resolve", "-i", &checkout])?;
    assert!(resolved.contains("resolved"), "{resolved}");
    let rows = setup.query("SELECT title, status FROM issues ORDER BY title")?;
    assert_eq!(rows[0]["status"], "resolved");
    assert_eq!(rows[1]["status"], "unresolved");

    // The issue by its short id, and its latest event in Sentry's shape.
    let client = reqwest::Client::new();
    let get = |path: String| {
        let request = client.get(format!("{base}{path}")).bearer_auth(&token);
        async move {
            let response = request.send().await?;
            ensure!(response.status() == 200, "{path}: {}", response.status());
            Ok::<Value, anyhow::Error>(response.json().await?)
        }
    };
    let list = get("/api/0/organizations/default/issues/?query=is:resolved".to_owned()).await?;
    assert_eq!(list.as_array().map(Vec::len), Some(1), "{list}");
    let short = list[0]["shortId"].as_str().context("shortId")?.to_owned();
    assert!(short.starts_with("SHOP-"), "{short}");
    assert_eq!(
        list[0]["count"], "1",
        "counts are strings, as Sentry sends them"
    );
    let issue = get(format!("/api/0/organizations/default/issues/{short}/")).await?;
    assert_eq!(issue["id"], checkout.as_str());
    assert_eq!(issue["status"], "resolved");
    let event = get(format!(
        "/api/0/organizations/default/issues/{checkout}/events/latest/"
    ))
    .await?;
    assert_eq!(event["groupID"], checkout.as_str());
    assert_eq!(event["entries"][0]["type"], "message");
    assert_eq!(event["entries"][0]["data"]["formatted"], "checkout failed");

    // A token without project:releases is refused, naming the scope.
    let reader = setup.token_with("reader", &["project:read"])?;
    let refused = sentry_cli(&base, reader.trim(), &["releases", "new", "shop@2"]);
    let message = format!("{:#}", refused.unwrap_err());
    assert!(message.contains("project:releases"), "{message}");
    Ok(())
}
