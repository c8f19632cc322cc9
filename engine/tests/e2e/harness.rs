//! Starting the server, running the CLI and the client programs, reading SQL results.

use std::collections::BTreeMap;
use std::fs;
use std::io::Read;
use std::net::{Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use serde::Deserialize;
use serde_json::Value;

/// How long a server may take to become ready, a client to finish, or a flush to show up.
/// These bound waits so a broken build fails instead of hanging; nothing asserts on speed.
pub(crate) const PATIENCE: Duration = Duration::from_secs(120);

pub(crate) fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("engine/ has a parent")
        .to_owned()
}

pub(crate) fn free_port() -> u16 {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind a loopback port");
    listener.local_addr().expect("local addr").port()
}

/// What one `faultline` data directory, config and object store are: every CLI call and every
/// server start of a test share it.
#[derive(Debug, Clone)]
pub(crate) struct Setup {
    pub(crate) data_dir: PathBuf,
    pub(crate) config: PathBuf,
    pub(crate) object_store: Option<String>,
    pub(crate) env: Vec<(String, String)>,
    pub(crate) port: u16,
}

impl Setup {
    /// A data directory under `root` with a config file holding `config_toml`.
    pub(crate) fn new(root: &Path, name: &str, config_toml: &str) -> Self {
        let data_dir = root.join(name);
        fs::create_dir_all(&data_dir).expect("create data dir");
        let config = root.join(format!("{name}.toml"));
        fs::write(&config, config_toml).expect("write config");
        Self {
            data_dir,
            config,
            object_store: None,
            env: Vec::new(),
            port: free_port(),
        }
    }

    pub(crate) fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    fn command(&self) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_faultline"));
        cmd.arg("--config")
            .arg(&self.config)
            .arg("--data-dir")
            .arg(&self.data_dir);
        if let Some(url) = &self.object_store {
            cmd.arg("--object-store").arg(url);
        }
        cmd.env_remove("FAULTLINE_CONFIG")
            .env_remove("FAULTLINE_DATA_DIR")
            .env_remove("FAULTLINE_OBJECT_STORE")
            .env_remove("FAULTLINE_LISTEN")
            .env("RUST_LOG", "info");
        for (key, value) in &self.env {
            cmd.env(key, value);
        }
        cmd
    }

    /// Runs a CLI command and returns its stdout; fails with stderr when it exits non-zero.
    pub(crate) fn cli(&self, args: &[&str]) -> Result<String> {
        let output = self
            .command()
            .args(args)
            .stdin(Stdio::null())
            .output()
            .context("run faultline")?;
        ensure!(
            output.status.success(),
            "faultline {args:?} failed ({}):\n{}",
            output.status,
            String::from_utf8_lossy(&output.stderr)
        );
        Ok(String::from_utf8(output.stdout)?)
    }

    /// Starts a CLI command without waiting for it (stdout and stderr discarded).
    pub(crate) fn spawn_cli(&self, args: &[&str]) -> Result<Child> {
        self.command()
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("spawn faultline")
    }

    /// `faultline project create NAME`: the DSN, pointing at this setup's port.
    pub(crate) fn create_project(&self, name: &str) -> Result<String> {
        let out = self.cli(&["project", "create", name, "--public-url", &self.base_url()])?;
        let lines: Vec<&str> = out.lines().filter(|l| !l.trim().is_empty()).collect();
        ensure!(
            lines.len() == 1,
            "project create must print exactly one line, got {out:?}"
        );
        let dsn = lines[0].trim().to_owned();
        ensure!(
            dsn.starts_with("http://") && dsn.contains('@'),
            "not a DSN: {dsn}"
        );
        Ok(dsn)
    }

    /// A new API token named `name` with these scopes, as `faultline token create` prints it.
    pub(crate) fn token_with(&self, name: &str, scopes: &[&str]) -> Result<String> {
        let mut args = vec!["token", "create", "--name", name];
        for scope in scopes {
            args.extend(["--scope", scope]);
        }
        Ok(self.cli(&args)?.trim().to_owned())
    }

    pub(crate) fn create_token(&self) -> Result<String> {
        let out = self.cli(&["token", "create", "--name", "e2e"])?;
        let lines: Vec<&str> = out.lines().filter(|l| !l.trim().is_empty()).collect();
        ensure!(
            lines.len() == 1,
            "token create must print exactly one line, got {out:?}"
        );
        Ok(lines[0].trim().to_owned())
    }

    /// `faultline query --format json SQL`, reading the data directory (and object store).
    pub(crate) fn query(&self, sql: &str) -> Result<Vec<Rows>> {
        let out = self.cli(&["query", "--format", "json", sql])?;
        let rows: Vec<Rows> = serde_json::from_str(out.trim())
            .with_context(|| format!("query output is not a JSON array: {out}"))?;
        Ok(rows)
    }

    pub(crate) fn start(&self) -> Result<Server> {
        Server::start(self.clone())
    }
}

pub(crate) type Rows = serde_json::Map<String, Value>;

/// A running `faultline serve`; killed when dropped.
#[derive(Debug)]
pub(crate) struct Server {
    pub(crate) setup: Setup,
    child: Option<Child>,
    log: PathBuf,
}

impl Server {
    fn start(setup: Setup) -> Result<Self> {
        let log = unique_log(&setup.data_dir);
        let log_file = fs::File::create(&log)?;
        let listen = format!("127.0.0.1:{}", setup.port);
        let child = setup
            .command()
            .args(["serve", "--listen", &listen])
            .stdin(Stdio::null())
            .stdout(log_file.try_clone()?)
            .stderr(log_file)
            .spawn()
            .context("spawn faultline serve")?;
        eprintln!("faultline serve on {listen}, log: {}", log.display());
        let mut server = Self {
            setup,
            child: Some(child),
            log,
        };
        server.wait_ready()?;
        Ok(server)
    }

    fn wait_ready(&mut self) -> Result<()> {
        let deadline = Instant::now() + PATIENCE;
        let url = format!("{}/health/ready", self.setup.base_url());
        loop {
            if let Some(status) = self.child.as_mut().expect("running").try_wait()? {
                bail!(
                    "faultline serve exited with {status} before it was ready:\n{}",
                    self.log_text()
                );
            }
            // Ready means this server answered: its log says it bound the port (a free port
            // can be taken by another test's server before this one binds it).
            let bound = format!("127.0.0.1:{}", self.setup.port);
            if matches!(http_get_status(&url), Ok(200))
                && self
                    .log_text()
                    .lines()
                    .any(|line| line.contains("listening") && line.contains(&bound))
            {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "faultline serve not ready after {PATIENCE:?}:\n{}",
                    self.log_text()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub(crate) fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    pub(crate) fn log_text(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// SIGKILL: no shutdown code runs.
    pub(crate) fn kill(mut self) -> Result<()> {
        let child = self.child.as_mut().expect("running");
        child.kill()?;
        child.wait()?;
        self.child = None;
        Ok(())
    }

    /// SIGTERM, then wait for the graceful shutdown (which flushes) to finish.
    pub(crate) fn terminate(mut self) -> Result<ExitStatus> {
        let pid = self.pid().to_string();
        let status = Command::new("kill").args(["-TERM", &pid]).status()?;
        ensure!(status.success(), "kill -TERM {pid} failed");
        let deadline = Instant::now() + PATIENCE;
        loop {
            if let Some(status) = self.child.as_mut().expect("running").try_wait()? {
                self.child = None;
                return Ok(status);
            }
            if Instant::now() > deadline {
                bail!(
                    "faultline serve did not exit within {PATIENCE:?} of SIGTERM:\n{}",
                    self.log_text()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `POST /api/sql` with a bearer token; the rows, or the status and body on failure.
    pub(crate) async fn sql(&self, token: &str, sql: &str) -> Result<Vec<Rows>> {
        let response = reqwest::Client::new()
            .post(format!("{}/api/sql", self.setup.base_url()))
            .bearer_auth(token)
            .json(&serde_json::json!({ "sql": sql }))
            .send()
            .await?;
        let status = response.status();
        let body = response.text().await?;
        ensure!(status == 200, "POST /api/sql answered {status}: {body}");
        serde_json::from_str(&body)
            .with_context(|| format!("/api/sql body is not a JSON array: {body}"))
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn unique_log(base: &Path) -> PathBuf {
    for n in 0.. {
        let path = base.with_extension(format!("serve-{n}.log"));
        if !path.exists() {
            return path;
        }
    }
    unreachable!()
}

/// A minimal blocking GET returning the status code (readiness polling without a runtime).
fn http_get_status(url: &str) -> Result<u16> {
    let response = http_get(url)?;
    let code = response.split_whitespace().nth(1).context("status line")?;
    Ok(code.parse()?)
}

/// The whole response (status line, headers and body) of a plain `GET`, without a client
/// library, for readiness checks.
pub(crate) fn http_get(url: &str) -> Result<String> {
    use std::io::Write;
    let rest = url.strip_prefix("http://").context("http url")?;
    let (host, path) = rest
        .split_once('/')
        .map(|(h, p)| (h, format!("/{p}")))
        .unwrap_or((rest, "/".into()));
    let mut stream = std::net::TcpStream::connect(host)?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )?;
    let mut response = String::new();
    stream.read_to_string(&mut response)?;
    Ok(response)
}

/// What a client script says it sent, per label.
#[derive(Debug, Clone, Deserialize)]
pub(crate) struct Sent {
    pub(crate) id: String,
    #[serde(rename = "type")]
    pub(crate) ty: Option<String>,
    pub(crate) value: Option<String>,
    pub(crate) frames: Option<i64>,
}

pub(crate) fn python() -> PathBuf {
    let path = std::env::var_os("FAULTLINE_TEST_PYTHON")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join(".venv/bin/python"));
    assert!(
        path.exists(),
        "no Python at {} (set FAULTLINE_TEST_PYTHON, or run scripts/test which creates .venv with tests/requirements.txt)",
        path.display()
    );
    path
}

/// Runs `tests/clients/python/send_events.py DSN SCENARIO...`.
pub(crate) fn run_python(dsn: &str, scenarios: &[&str]) -> Result<BTreeMap<String, Sent>> {
    run_python_with(dsn, scenarios, &[])
}

/// [`run_python`] with extra environment (e.g. `FAULTLINE_TEST_COMPRESSION`).
pub(crate) fn run_python_with(
    dsn: &str,
    scenarios: &[&str],
    env: &[(&str, &str)],
) -> Result<BTreeMap<String, Sent>> {
    let script = workspace_root().join("tests/clients/python/send_events.py");
    let mut cmd = Command::new(python());
    cmd.arg(script).arg(dsn).args(scenarios);
    for (key, value) in env {
        cmd.env(key, value);
    }
    run_client(cmd, "python send_events.py")
}

/// Runs `node tests/node/send_events.js DSN SCENARIO...` with the packages of tests/node.
pub(crate) fn run_node(dsn: &str, scenarios: &[&str]) -> Result<BTreeMap<String, Sent>> {
    let dir = workspace_root().join("tests/node");
    let modules = std::env::var_os("FAULTLINE_TEST_NODE_MODULES")
        .map(PathBuf::from)
        .unwrap_or_else(|| dir.join("node_modules"));
    assert!(
        modules.join("@sentry/node").exists(),
        "@sentry/node is not installed in {} (run `npm ci` in tests/node, as scripts/test does)",
        modules.display()
    );
    let mut cmd = Command::new("node");
    cmd.arg(dir.join("send_events.js"))
        .arg(dsn)
        .args(scenarios)
        .env("NODE_PATH", &modules);
    run_client(cmd, "node send_events.js")
}

fn run_client(cmd: Command, what: &str) -> Result<BTreeMap<String, Sent>> {
    let stdout = stdout_of(cmd, what)?;
    serde_json::from_str(&stdout).with_context(|| format!("{what} printed no JSON: {stdout}"))
}

/// Runs `tests/node/<script> ARGS...` with the installed SDK; what it printed, or an error with
/// its stderr.
pub(crate) fn node_client(script: &str, args: &[&str]) -> Result<String> {
    let dir = workspace_root().join("tests/node");
    let modules = std::env::var_os("FAULTLINE_TEST_NODE_MODULES")
        .map(PathBuf::from)
        .unwrap_or_else(|| dir.join("node_modules"));
    let mut cmd = Command::new("node");
    cmd.arg(dir.join(script))
        .args(args)
        .env("NODE_PATH", &modules);
    stdout_of(cmd, &format!("node {script} {}", args.join(" ")))
}

/// Runs `tests/clients/python/<script> ARGS...`; what it printed, or an error with its stderr.
pub(crate) fn python_client(script: &str, args: &[&str]) -> Result<String> {
    let mut cmd = Command::new(python());
    cmd.arg(workspace_root().join("tests/clients/python").join(script))
        .args(args);
    stdout_of(cmd, &format!("python {script} {}", args.join(" ")))
}

/// The stdout of a client that must exit 0.
fn stdout_of(mut cmd: Command, what: &str) -> Result<String> {
    let output = cmd
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("cannot run {what} (is it installed? see engine/tests/e2e.rs)"))?;
    ensure!(
        output.status.success(),
        "{what} failed ({}):\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(String::from_utf8(output.stdout)?)
}

/// Accessors that accept what a JSON encoder of Arrow may produce: numbers as numbers or strings,
/// and a null column either as `null` or left out of the row object.
pub(crate) trait RowExt {
    fn str(&self, column: &str) -> Option<&str>;
    fn int(&self, column: &str) -> Option<i64>;
}

impl RowExt for Rows {
    fn str(&self, column: &str) -> Option<&str> {
        self.get(column).and_then(Value::as_str)
    }

    fn int(&self, column: &str) -> Option<i64> {
        match self.get(column) {
            None => None,
            Some(Value::String(s)) => s.parse().ok(),
            Some(value) => value.as_i64(),
        }
    }
}

/// Rows keyed by their `event_id` column.
pub(crate) fn by_event_id(rows: Vec<Rows>) -> BTreeMap<String, Rows> {
    rows.into_iter()
        .map(|row| {
            (
                row.str("event_id")
                    .expect("event_id is a string")
                    .to_owned(),
                row,
            )
        })
        .collect()
}

/// A SQL string literal.
pub(crate) fn lit(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

/// `'a', 'b', ...` for an IN list.
pub(crate) fn in_list<'a>(items: impl IntoIterator<Item = &'a str>) -> String {
    items.into_iter().map(lit).collect::<Vec<_>>().join(", ")
}

/// A server with two projects, `shop` and `web`, one stored message each ("shop broke", "web
/// secret"), a SQL listener (`listener_key` = `pg_listen` or `flight_listen`) on `port`, and
/// a token limited to `shop`: the tenant setup the SQL-client tests share.
pub(crate) struct TwoTenants {
    pub(crate) server: Server,
    pub(crate) port: u16,
    pub(crate) shop_token: String,
}

impl TwoTenants {
    pub(crate) async fn start(root: &Path, listener_key: &str) -> Result<Self> {
        let port = free_port();
        let setup = Setup::new(
            root,
            "data",
            &format!("[server]\n{listener_key} = \"127.0.0.1:{port}\"\n"),
        );
        let shop = setup.create_project("shop")?;
        let web = setup.create_project("web")?;
        let server = setup.start()?;
        store_message(&setup, &shop, "shop broke").await?;
        store_message(&setup, &web, "web secret").await?;
        let shop_token = setup
            .cli(&[
                "token",
                "create",
                "--name",
                "sql-client",
                "--project",
                "shop",
            ])?
            .trim()
            .to_owned();
        Ok(Self {
            server,
            port,
            shop_token,
        })
    }
}

/// Sends `message` to the store endpoint of the project of `dsn`.
pub(crate) async fn store_message(setup: &Setup, dsn: &str, message: &str) -> Result<()> {
    // http://<key>@127.0.0.1:<port>/<id>
    let (key, rest) = dsn["http://".len()..].split_once('@').context("dsn")?;
    let id = rest.rsplit('/').next().context("dsn")?;
    let status = reqwest::Client::new()
        .post(format!("{}/api/{id}/store/", setup.base_url()))
        .header("x-sentry-auth", format!("Sentry sentry_key={key}"))
        .body(format!(r#"{{"message":"{message}"}}"#))
        .send()
        .await?
        .status();
    ensure!(status.is_success(), "store answered {status}");
    Ok(())
}
