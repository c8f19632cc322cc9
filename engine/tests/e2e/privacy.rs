//! Secrets planted by the real Python and Node SDKs (request headers, cookies, query strings,
//! breadcrumbs, extra data, local variables) are scrubbed before anything is written: they are
//! in no WAL segment and no Parquet file, and the stored event's `_meta` (a log record's `meta`)
//! says what was removed.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, ensure};
use serde_json::Value;

use crate::harness::{RowExt, Setup, lit, python_client, workspace_root};

const PY_SECRETS: [&str; 10] = [
    "PYSECRETTRACE",
    "PYSECRETURLPASS",
    "PYSECRETBEARER",
    "PYSECRETHEADER",
    "PYSECRETCOOKIE",
    "PYSECRETQUERY",
    "PYSECRETCRUMB",
    "PYSECRETEXTRA",
    "PYSECRETLOCAL",
    "PYSECRETLOG",
];

const NODE_SECRETS: [&str; 7] = [
    "NODESECRETBEARER",
    "NODESECRETHEADER",
    "NODESECRETCOOKIE",
    "NODESECRETQUERY",
    "NODESECRETCRUMB",
    "NODESECRETEXTRA",
    "NODESECRETLOG",
];

const CARD: &str = "4111 1111 1111 1111";

fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_dir() {
                out.extend(files_under(&path));
            } else {
                out.push(path);
            }
        }
    }
    out
}

/// Every byte written under `dir`, and the paths that hold `needle`.
fn holding(dir: &Path, needle: &str) -> Vec<PathBuf> {
    files_under(dir)
        .into_iter()
        .filter(|path| {
            std::fs::read(path)
                .is_ok_and(|bytes| bytes.windows(needle.len()).any(|w| w == needle.as_bytes()))
        })
        .collect()
}

fn run_node_secrets(dsn: &str) -> anyhow::Result<String> {
    let dir = workspace_root().join("tests/node");
    let modules = std::env::var_os("FAULTLINE_TEST_NODE_MODULES")
        .map(PathBuf::from)
        .unwrap_or_else(|| dir.join("node_modules"));
    let output = Command::new("node")
        .arg(dir.join("send_secrets.js"))
        .arg(dsn)
        .env("NODE_PATH", &modules)
        .stdin(Stdio::null())
        .output()
        .context("cannot run node")?;
    ensure!(
        output.status.success(),
        "node send_secrets.js failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(String::from_utf8(output.stdout)?)
}

fn event_id(printed: &str) -> anyhow::Result<String> {
    let value: Value = serde_json::from_str(printed.trim())
        .with_context(|| format!("the client printed no JSON: {printed}"))?;
    Ok(value["id"]
        .as_str()
        .context("no id")?
        .replace('-', "")
        .to_lowercase())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_from_real_sdks_never_reach_the_wal_or_parquet() -> anyhow::Result<()> {
    let tmp = tempfile::tempdir()?;
    let setup = Setup::new(tmp.path(), "data", "");
    let server = setup.start()?;
    let dsn = setup.create_project("shop")?;

    let python = event_id(&python_client("send_secrets.py", &[&dsn])?)?;
    let node = event_id(&run_node_secrets(&dsn)?)?;

    // acknowledged means in the WAL: no planted secret is in any file of the data directory
    for secret in PY_SECRETS.iter().chain(&NODE_SECRETS).chain([&CARD]) {
        let found = holding(&setup.data_dir, secret);
        ensure!(found.is_empty(), "{secret} is on disk in {found:?}");
    }

    let rows = setup.query(&format!(
        "SELECT event_id, tags['browser'] AS browser, event FROM events \
         WHERE event_id IN ({}, {}) ORDER BY event_id",
        lit(&python),
        lit(&node)
    ))?;
    ensure!(
        rows.len() == 2,
        "both events are stored: {rows:?}\n{}",
        server.log_text()
    );
    let row = |id: &str| {
        rows.iter()
            .find(|r| r.str("event_id") == Some(id))
            .cloned()
            .expect("row")
    };
    let stored = |id: &str| -> Value {
        serde_json::from_str(row(id).str("event").unwrap_or("{}")).unwrap_or_default()
    };

    // Python: the server removed what the SDK sent as is. sentry-sdk 3 replaces the values of
    // headers, cookies and query parameters with sensitive names itself (`Authorization`,
    // `X-Custom-Token`, `sessionid`, `api_key`), so the server's part in the request is what
    // hides under other names: a bearer token and a password in a URL
    let py = stored(&python);
    let meta = &py["_meta"];
    let headers = &py["request"]["headers"];
    assert_eq!(
        meta["request"]["headers"]["X-Trace"][""]["rem"][0][0], "@password:filter",
        "{meta}"
    );
    assert_eq!(headers["X-Trace"], "Bearer [Filtered]", "{headers}");
    assert_eq!(
        meta["request"]["headers"]["Referer"][""]["rem"][0][0], "@urlauth:filter",
        "{meta}"
    );
    assert_eq!(
        headers["Referer"], "https://ann:[Filtered]@shop.example/cart",
        "{headers}"
    );
    assert_eq!(
        meta["extra"]["billing"]["card_number"][""]["rem"][0][0],
        "@creditcard:filter"
    );
    assert_eq!(
        meta["extra"]["billing"]["db_password"][""]["rem"][0][0],
        "@password:filter"
    );
    let frames = py["exception"]["values"][0]["stacktrace"]["frames"]
        .as_array()
        .context("frames")?;
    let app = frames
        .iter()
        .find(|f| f["function"] == "app")
        .context("the app frame")?;
    assert_eq!(app["vars"]["db_password"], "[Filtered]", "{app}");
    assert_eq!(
        row(&python).str("browser"),
        Some("Firefox 121.0"),
        "the browser from the User-Agent"
    );

    // Node: the card number in extra data is the server's to remove (the SDK keeps it)
    let js = stored(&node);
    assert_eq!(
        js["_meta"]["extra"]["billing"]["card_number"][""]["rem"][0][0], "@creditcard:filter",
        "{}",
        js["_meta"]
    );
    assert_eq!(row(&node).str("browser"), Some("Chrome 120.0.0.0"));

    // the transactions and log records are scrubbed as the events are: the secret attribute
    // is gone, the rest of the record is kept
    let logs = setup.query(
        "SELECT body, attributes['db_password'] AS secret, sdk_name AS sdk, meta \
         FROM logs WHERE body LIKE 'charging card%' ORDER BY sdk",
    )?;
    ensure!(logs.len() == 2, "a log record of each SDK: {logs:?}");
    for log in &logs {
        ensure!(
            log.str("secret").is_none(),
            "the secret attribute is kept: {log:?}"
        );
        ensure!(
            log.str("sdk").is_some(),
            "the other attributes are kept: {log:?}"
        );
        // and the row's `meta` says what was removed, in Relay's shape (the Python SDK names
        // the attribute `sentry.message.parameter.db_password`, the Node SDK `db_password`)
        let meta: Value = serde_json::from_str(log.str("meta").unwrap_or("null"))?;
        let removed = meta["attributes"].as_object().is_some_and(|attributes| {
            attributes.iter().any(|(key, remarks)| {
                key.ends_with("db_password") && remarks[""]["rem"][0][0] == "@password:filter"
            })
        });
        ensure!(removed, "the meta of {log:?}");
    }
    let transactions = setup.query("SELECT count(*) AS n FROM transactions")?;
    let spans = setup.query("SELECT count(*) AS n FROM spans")?;
    ensure!(
        transactions[0].int("n").unwrap_or(0) + spans[0].int("n").unwrap_or(0) >= 2,
        "each SDK's request span is stored: {transactions:?} {spans:?}"
    );

    // a graceful stop writes the events to Parquet: no secret there either (decompressed)
    let status = server.terminate()?;
    ensure!(status.success(), "faultline did not stop cleanly");
    let text = python_client(
        "parquet_text.py",
        &[setup.data_dir.to_str().context("utf-8 path")?],
    )?;
    let files: usize = text.lines().next().unwrap_or("0").trim().parse()?;
    ensure!(files > 0, "the events were written to Parquet");
    ensure!(
        text.contains(&python) && text.contains(&node),
        "the Parquet files hold both events"
    );
    for secret in PY_SECRETS.iter().chain(&NODE_SECRETS).chain([&CARD]) {
        ensure!(!text.contains(secret), "{secret} is in a Parquet file");
        let found = holding(&setup.data_dir, secret);
        ensure!(found.is_empty(), "{secret} is on disk in {found:?}");
    }
    Ok(())
}
