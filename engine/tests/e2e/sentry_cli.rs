//! The real `sentry-cli` (PyPI `sentry-cli`, from the test venv) against a running server:
//! `info`, `organizations list`, `projects list`, `releases new / finalize / list / info`,
//! `deploys new / list`, with an API token as a CI job would use one.

use std::process::Command;

use anyhow::{Context, Result, ensure};
use serde_json::Value;

use crate::harness::{Setup, python};

/// Runs `sentry-cli ARGS` against `base` with `token`, organization `default`, project `shop`;
/// its standard output, or an error with both streams.
fn sentry_cli(base: &str, token: &str, args: &[&str]) -> Result<String> {
    let bin = python()
        .parent()
        .context("venv bin dir")?
        .join("sentry-cli");
    ensure!(
        bin.exists(),
        "no sentry-cli at {} (pip install sentry-cli, as scripts/test does)",
        bin.display()
    );
    let output = Command::new(&bin)
        .args(args)
        .env("SENTRY_URL", base)
        .env("SENTRY_AUTH_TOKEN", token)
        .env("SENTRY_ORG", "default")
        .env("SENTRY_PROJECT", "shop")
        .env("SENTRY_DISABLE_UPDATE_CHECK", "1")
        .env_remove("SENTRY_DSN")
        .output()
        .context("run sentry-cli")?;
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
    let server = setup.start()?;
    setup.create_project("shop")?;
    let out = setup.cli(&[
        "token",
        "create",
        "--name",
        "ci",
        "--scope",
        "org:read",
        "--scope",
        "project:read",
        "--scope",
        "project:releases",
    ])?;
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

    // A token without project:releases is refused, naming the scope.
    let reader = setup.cli(&[
        "token",
        "create",
        "--name",
        "reader",
        "--scope",
        "project:read",
    ])?;
    let refused = sentry_cli(&base, reader.trim(), &["releases", "new", "shop@2"]);
    let message = format!("{:#}", refused.unwrap_err());
    assert!(message.contains("project:releases"), "{message}");
    Ok(())
}
