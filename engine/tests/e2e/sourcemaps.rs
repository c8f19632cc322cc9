//! Source maps with the real tools: a small app built twice by npm `esbuild` (minified, with
//! source maps, two different minifications), `sentry-cli sourcemaps inject` and
//! `sentry-cli sourcemaps upload` against faultline, the bundles run under `@sentry/node`; the
//! stored events have their original files, lines and functions, keep the frames as sent, and
//! the two builds' errors are one issue. A build uploaded after its event is resolved when the
//! event is viewed over the API.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, ensure};
use serde_json::Value;

use crate::harness::{Setup, python, workspace_root};

const CART: &str = r#"// The shopping cart.
function checkoutTotal(items) {
  if (!items.length) {
    throw new Error("cannot check out an empty cart");
  }
  return items.reduce((sum, item) => sum + item.price, 0);
}

module.exports = { checkoutTotal };
"#;

const MAIN: &str = r#"const Sentry = require("@sentry/node");
const { checkoutTotal } = require("./cart");

Sentry.init({ dsn: process.env.SENTRY_DSN, defaultIntegrations: false });

function placeOrder(cart) {
  return checkoutTotal(cart);
}

try {
  placeOrder([]);
} catch (error) {
  console.log(Sentry.captureException(error));
}
Sentry.flush(10000).then(() => process.exit(0));
"#;

pub(crate) fn node_modules() -> PathBuf {
    std::env::var_os("FAULTLINE_TEST_NODE_MODULES")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("tests/node/node_modules"))
}

pub(crate) fn run(mut command: Command, what: &str) -> Result<String> {
    let output = command
        .output()
        .with_context(|| format!("cannot run {what}"))?;
    ensure!(
        output.status.success(),
        "{what} failed ({}):\n{}\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(String::from_utf8(output.stdout)?)
}

/// Builds the app into `dir/<out>/app.js` (+ `app.js.map`) with esbuild and `flags`.
fn esbuild(dir: &Path, out: &str, flags: &[&str]) -> Result<()> {
    let outfile = format!("--outfile={out}/app.js");
    let mut args = vec![
        "src/main.js",
        "--bundle",
        "--platform=node",
        "--format=cjs",
        "--external:@sentry/node",
        "--sourcemap",
        &outfile,
    ];
    args.extend_from_slice(flags);
    bundle(dir, &args)
}

/// Runs npm `esbuild` in `dir` with these arguments.
pub(crate) fn bundle(dir: &Path, args: &[&str]) -> Result<()> {
    let bin = node_modules().join(".bin/esbuild");
    ensure!(
        bin.exists(),
        "no esbuild at {} (npm ci in tests/node, as scripts/test does)",
        bin.display()
    );
    let mut command = Command::new(bin);
    command.current_dir(dir).args(args);
    run(command, "esbuild")?;
    Ok(())
}

pub(crate) fn sentry_cli(base: &str, token: &str, dir: &Path, args: &[&str]) -> Result<String> {
    let bin = python()
        .parent()
        .context("venv bin dir")?
        .join("sentry-cli");
    let mut command = Command::new(bin);
    command
        .current_dir(dir)
        .args(args)
        .env("SENTRY_URL", base)
        .env("SENTRY_AUTH_TOKEN", token)
        .env("SENTRY_ORG", "default")
        .env("SENTRY_PROJECT", "shop")
        .env("SENTRY_DISABLE_UPDATE_CHECK", "1")
        .env_remove("SENTRY_DSN");
    run(command, &format!("sentry-cli {args:?}"))
}

/// Runs a build under `@sentry/node`; the id of the event it sent.
fn run_build(dir: &Path, out: &str, dsn: &str) -> Result<String> {
    let mut command = Command::new("node");
    command
        .current_dir(dir)
        .arg(format!("{out}/app.js"))
        .env("SENTRY_DSN", dsn)
        .env("NODE_PATH", node_modules());
    let id = run(command, &format!("node {out}/app.js"))?;
    let id = id.trim().replace('-', "");
    ensure!(id.len() == 32, "the app printed no event id: {id:?}");
    Ok(id)
}

/// The stored event `id`: its issue and its JSON.
fn stored(setup: &Setup, id: &str) -> Result<(i64, Value)> {
    let rows = setup.query(&format!(
        "SELECT issue_id, event FROM events WHERE event_id = '{id}'"
    ))?;
    let row = rows.first().with_context(|| format!("no event {id}"))?;
    let issue = row["issue_id"].as_i64().context("issue_id")?;
    let event: Value = serde_json::from_str(row["event"].as_str().context("event")?)?;
    Ok((issue, event))
}

/// The frame of the error's innermost application function (the last in-app frame).
pub(crate) fn innermost(frames: &Value) -> Result<&Value> {
    frames
        .as_array()
        .context("frames")?
        .iter()
        .rev()
        .find(|f| f["in_app"] == true || f["inApp"] == true)
        .context("no in-app frame")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sentry_cli_uploads_resolve_node_frames_and_two_builds_are_one_issue() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let setup = Setup::new(tmp.path(), "data", "");
    let dsn = setup.create_project("shop")?;
    let server = setup.start()?;
    let token = setup.token_with(
        "ci",
        &["org:read", "project:read", "project:releases", "event:read"],
    )?;
    let token = token.trim().to_owned();
    let base = setup.base_url();

    let app = tmp.path().join("app");
    std::fs::create_dir_all(app.join("src"))?;
    std::fs::write(app.join("src/cart.js"), CART)?;
    std::fs::write(app.join("src/main.js"), MAIN)?;
    esbuild(&app, "build-a", &["--minify"])?;
    esbuild(
        &app,
        "build-b",
        &[
            "--minify-whitespace",
            "--minify-identifiers",
            "--banner:js=/* build b */",
        ],
    )?;
    esbuild(&app, "build-late", &["--minify", "--banner:js=/* late */"])?;
    let a = std::fs::read_to_string(app.join("build-a/app.js"))?;
    let b = std::fs::read_to_string(app.join("build-b/app.js"))?;
    ensure!(a != b, "the two builds differ");
    ensure!(!a.contains("checkoutTotal(items)"), "build a is minified");

    let injected = sentry_cli(
        &base,
        &token,
        &app,
        &["sourcemaps", "inject", "build-a", "build-b", "build-late"],
    )?;
    ensure!(injected.contains("debug"), "{injected}");
    for build in ["build-a", "build-b"] {
        let out = sentry_cli(&base, &token, &app, &["sourcemaps", "upload", build])?;
        ensure!(out.contains("File processing complete"), "{out}");
    }
    // the same bundle again: nothing to upload, still complete
    let again = sentry_cli(&base, &token, &app, &["sourcemaps", "upload", "build-a"])?;
    ensure!(again.contains("File processing complete"), "{again}");

    let id_a = run_build(&app, "build-a", &dsn)?;
    let id_b = run_build(&app, "build-b", &dsn)?;
    let (issue_a, event_a) =
        stored(&setup, &id_a).with_context(|| format!("server log:\n{}", server.log_text()))?;
    let (issue_b, event_b) = stored(&setup, &id_b)?;

    for event in [&event_a, &event_b] {
        let exception = &event["exception"]["values"][0];
        let frame = innermost(&exception["stacktrace"]["frames"])?;
        assert_eq!(frame["function"], "checkoutTotal", "{frame}");
        assert_eq!(frame["filename"], "src/cart.js", "{frame}");
        assert_eq!(frame["lineno"], 4, "{frame}");
        assert_eq!(
            frame["context_line"],
            r#"    throw new Error("cannot check out an empty cart");"#
        );
        assert_eq!(frame["pre_context"][2], "  if (!items.length) {");
        assert!(frame["data"]["sourcemap"].is_string(), "{frame}");
        let raw = innermost(&exception["raw_stacktrace"]["frames"])?;
        assert!(
            raw["filename"]
                .as_str()
                .is_some_and(|f| f.ends_with("app.js")),
            "the frame as sent is kept: {raw}"
        );
        assert!(event.get("errors").is_none(), "{}", event["errors"]);
        // the caller, too
        let frames = exception["stacktrace"]["frames"]
            .as_array()
            .context("frames")?;
        assert!(
            frames
                .iter()
                .any(|f| f["function"] == "placeOrder" && f["filename"] == "src/main.js"),
            "{frames:?}"
        );
    }
    let raw_a = innermost(&event_a["exception"]["values"][0]["raw_stacktrace"]["frames"])?;
    let raw_b = innermost(&event_b["exception"]["values"][0]["raw_stacktrace"]["frames"])?;
    assert_ne!(
        raw_a["colno"], raw_b["colno"],
        "the builds differ where it threw"
    );
    assert_eq!(issue_a, issue_b, "one bug in two builds is one issue");

    // a build whose maps come after its event: stored as sent, with js_no_source ...
    let id_late = run_build(&app, "build-late", &dsn)?;
    let (issue_late, event_late) = stored(&setup, &id_late)?;
    assert_eq!(
        event_late["errors"][0]["type"], "js_no_source",
        "{event_late}"
    );
    let frame = innermost(&event_late["exception"]["values"][0]["stacktrace"]["frames"])?;
    assert_ne!(frame["function"], "checkoutTotal");
    // ... and resolved when viewed once they are uploaded
    let out = sentry_cli(&base, &token, &app, &["sourcemaps", "upload", "build-late"])?;
    ensure!(out.contains("File processing complete"), "{out}");
    let response = reqwest::Client::new()
        .get(format!(
            "{base}/api/0/organizations/default/issues/{issue_late}/events/{id_late}/"
        ))
        .bearer_auth(&token)
        .send()
        .await?;
    ensure!(response.status() == 200, "{}", response.status());
    let view: Value = response.json().await?;
    let exception = &view["entries"][0]["data"]["values"][0];
    let frame = innermost(&exception["stacktrace"]["frames"])?;
    assert_eq!(frame["function"], "checkoutTotal", "{frame}");
    assert_eq!(frame["filename"], "src/cart.js");
    assert_eq!(frame["lineNo"], 4);
    let raw = innermost(&exception["rawStacktrace"]["frames"])?;
    assert!(
        raw["filename"]
            .as_str()
            .is_some_and(|f| f.ends_with("app.js")),
        "{raw}"
    );
    assert_eq!(
        view["errors"],
        Value::Array(Vec::new()),
        "{}",
        view["errors"]
    );

    // the older release-file upload: one file per multipart request, for an existing release
    let client = reqwest::Client::new();
    let created = client
        .post(format!("{base}/api/0/organizations/default/releases/"))
        .bearer_auth(&token)
        .json(&serde_json::json!({"version": "shop@1.0", "projects": ["shop"]}))
        .send()
        .await?;
    assert_eq!(created.status(), 201);
    let map = std::fs::read(app.join("build-a/app.js.map"))?;
    let upload = |version: &str| {
        let boundary = "faultline-e2e-boundary";
        let mut body = Vec::new();
        for (name, value) in [("name", "~/app.js.map"), ("header", "X-Origin: e2e")] {
            body.extend_from_slice(
                format!(
                    "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
                )
                .as_bytes(),
            );
        }
        body.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; \
                 filename=\"app.js.map\"\r\nContent-Type: application/octet-stream\r\n\r\n"
            )
            .as_bytes(),
        );
        body.extend_from_slice(&map);
        body.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
        client
            .post(format!(
                "{base}/api/0/projects/default/shop/releases/{version}/files/"
            ))
            .bearer_auth(&token)
            .header(
                "content-type",
                format!("multipart/form-data; boundary={boundary}"),
            )
            .body(body)
            .send()
    };
    let response = upload("shop@1.0").await?;
    assert_eq!(response.status(), 201);
    let file: Value = response.json().await?;
    assert_eq!(file["name"], "~/app.js.map");
    assert_eq!(file["size"], map.len());
    assert_eq!(file["headers"]["X-Origin"], "e2e");
    let response = upload("shop@0.9").await?;
    assert_eq!(response.status(), 404, "no such release");

    // a token without project:releases or project:write may not upload
    let reader = setup.token_with("reader", &["project:read"])?;
    let response = reqwest::Client::new()
        .get(format!("{base}/api/0/organizations/default/chunk-upload/"))
        .bearer_auth(reader.trim())
        .send()
        .await?;
    assert_eq!(response.status(), 403);
    let body: Value = response.json().await?;
    assert!(
        body["detail"]
            .as_str()
            .is_some_and(|d| d.contains("project:releases")),
        "{body}"
    );
    let refused = sentry_cli(
        &base,
        reader.trim(),
        &app,
        &["sourcemaps", "upload", "build-a"],
    );
    assert!(refused.is_err(), "a reader's upload is refused");
    Ok(())
}
