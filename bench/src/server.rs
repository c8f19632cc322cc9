//! The measured `faultline serve` process: start, CLI calls, `/proc` readings, SQL, shutdown.

use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;

/// The benchmark project.
#[derive(Debug)]
pub(crate) struct Project {
    pub(crate) key: String,
    /// `/api/<id>/envelope/`
    pub(crate) envelope_path: String,
}

/// A running server.
#[derive(Debug)]
pub(crate) struct Server {
    binary: PathBuf,
    config: PathBuf,
    data_dir: PathBuf,
    log: PathBuf,
    pub(crate) addr: SocketAddr,
    child: Child,
    runtime: tokio::runtime::Runtime,
}

/// What the shutdown showed.
#[derive(Debug)]
pub(crate) struct Stopped {
    /// User + system CPU of the whole life of the process (read while it is a zombie).
    pub(crate) cpu_total: Duration,
    /// The largest VmHWM seen while it shut down.
    pub(crate) peak_rss: u64,
    pub(crate) exit_ok: bool,
}

impl Server {
    pub(crate) fn start(binary: &Path, root: &Path, extra_config: &str) -> Result<Self> {
        let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))?
            .local_addr()?
            .port();
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        let data_dir = root.join("data");
        std::fs::create_dir_all(&data_dir)?;
        let config = root.join("faultline.toml");
        std::fs::write(
            &config,
            format!("[server]\nlisten = \"{addr}\"\n\n{extra_config}\n"),
        )?;
        let log = root.join(format!("serve-{port}.log"));
        let log_file = std::fs::File::create(&log)?;
        let child = Command::new(binary)
            .arg("--config")
            .arg(&config)
            .arg("--data-dir")
            .arg(&data_dir)
            .arg("serve")
            .stdin(Stdio::null())
            .stdout(log_file.try_clone()?)
            .stderr(log_file)
            .spawn()
            .with_context(|| format!("start {}", binary.display()))?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let mut server = Self {
            binary: binary.to_owned(),
            config,
            data_dir,
            log,
            addr,
            child,
            runtime,
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = server.child.try_wait()? {
                bail!("faultline exited with {status}:\n{}", server.log_text());
            }
            if let Ok((200, _)) = server.request("GET", "/health/ready", None, Bytes::new()) {
                return Ok(server);
            }
            ensure!(
                Instant::now() < deadline,
                "faultline not ready within 60 s:\n{}",
                server.log_text()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn cli(&self, args: &[&str]) -> Result<String> {
        let output = Command::new(&self.binary)
            .arg("--config")
            .arg(&self.config)
            .arg("--data-dir")
            .arg(&self.data_dir)
            .args(args)
            .output()?;
        ensure!(
            output.status.success(),
            "faultline {args:?}: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        Ok(String::from_utf8(output.stdout)?.trim().to_owned())
    }

    pub(crate) fn create_project(&self, name: &str) -> Result<Project> {
        let dsn = self.cli(&[
            "project",
            "create",
            name,
            "--public-url",
            &format!("http://{}", self.addr),
        ])?;
        // http://<key>@host:port/<id>
        let rest = dsn.strip_prefix("http://").context("DSN scheme")?;
        let (key, rest) = rest.split_once('@').context("DSN key")?;
        let id = rest.rsplit('/').next().context("DSN project id")?;
        Ok(Project {
            key: key.to_owned(),
            envelope_path: format!("/api/{id}/envelope/"),
        })
    }

    pub(crate) fn create_token(&self) -> Result<String> {
        self.cli(&["token", "create", "--name", "bench"])
    }

    fn request(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Bytes,
    ) -> Result<(u16, Bytes)> {
        let addr = self.addr;
        self.runtime.block_on(async move {
            let stream = tokio::net::TcpStream::connect(addr).await?;
            let (mut sender, conn) =
                http1::handshake::<_, Full<Bytes>>(TokioIo::new(stream)).await?;
            tokio::spawn(async move {
                let _ = conn.await;
            });
            let mut builder = hyper::Request::builder()
                .method(method)
                .uri(path)
                .header(hyper::header::HOST, addr.to_string())
                .header(hyper::header::CONTENT_TYPE, "application/json");
            if let Some(token) = token {
                builder = builder.header(hyper::header::AUTHORIZATION, format!("Bearer {token}"));
            }
            let response = sender.send_request(builder.body(Full::new(body))?).await?;
            let status = response.status().as_u16();
            let bytes = response.into_body().collect().await?.to_bytes();
            Ok((status, bytes))
        })
    }

    /// Runs a query through `POST /api/sql`; the number of rows.
    pub(crate) fn rows(&self, token: &str, sql: &str) -> Result<usize> {
        let body = serde_json::to_vec(&serde_json::json!({ "sql": sql }))?;
        let (status, bytes) = self.request("POST", "/api/sql", Some(token), Bytes::from(body))?;
        ensure!(
            status == 200,
            "/api/sql answered {status} to {sql}: {}",
            String::from_utf8_lossy(&bytes)
        );
        let rows: Vec<serde_json::Value> = serde_json::from_slice(&bytes)?;
        Ok(rows.len())
    }

    /// A `SELECT count(*) AS n ...` through `POST /api/sql`.
    pub(crate) fn count(&self, token: &str, sql: &str) -> Result<u64> {
        let body = serde_json::to_vec(&serde_json::json!({ "sql": sql }))?;
        let (status, bytes) = self.request("POST", "/api/sql", Some(token), Bytes::from(body))?;
        ensure!(
            status == 200,
            "/api/sql answered {status}: {}",
            String::from_utf8_lossy(&bytes)
        );
        let rows: Vec<serde_json::Value> = serde_json::from_slice(&bytes)?;
        let n = &rows.first().context("one row")?["n"];
        n.as_u64()
            .or_else(|| n.as_str().and_then(|s| s.parse().ok()))
            .context("count is a number")
    }

    /// Polls until SQL counts `expected` events; the time from `since` to that answer.
    pub(crate) fn wait_visible(
        &self,
        token: &str,
        expected: u64,
        since: Instant,
        patience: Duration,
    ) -> Result<Duration> {
        let sql = "SELECT count(*) AS n FROM events WHERE project = 'bench'";
        loop {
            let n = self.count(token, sql)?;
            if n >= expected {
                return Ok(since.elapsed());
            }
            ensure!(
                since.elapsed() < patience,
                "only {n} of {expected} events visible after {patience:?}"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Events grouped so far and the seconds spent on it, from `GET /metrics`
    /// (`faultline_grouped_events`, `faultline_grouping_seconds`).
    pub(crate) fn grouping_cost(&self) -> Result<(u64, f64)> {
        self.cost("faultline_grouped_events", "faultline_grouping_seconds")
    }

    /// Events scrubbed and enriched so far and the seconds spent on it, from `GET /metrics`
    /// (`faultline_processed_events`, `faultline_processing_seconds`).
    pub(crate) fn processing_cost(&self) -> Result<(u64, f64)> {
        self.cost("faultline_processed_events", "faultline_processing_seconds")
    }

    /// A count and a number of seconds from `GET /metrics`.
    fn cost(&self, count: &str, seconds: &str) -> Result<(u64, f64)> {
        let (status, bytes) = self.request("GET", "/metrics", None, Bytes::new())?;
        ensure!(status == 200, "/metrics answered {status}");
        let text = String::from_utf8_lossy(&bytes);
        let value = |name: &str| -> Result<f64> {
            text.lines()
                .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
                .and_then(|v| v.trim().parse().ok())
                .with_context(|| format!("{name} in /metrics"))
        };
        let events = value(count)?;
        Ok((events as u64, value(seconds)?))
    }

    pub(crate) fn cpu(&self) -> Result<Duration> {
        process_cpu(&self.child.id().to_string())
    }

    /// VmHWM in bytes.
    pub(crate) fn peak_rss(&self) -> Result<u64> {
        peak_rss(self.child.id()).context("VmHWM")
    }

    /// SIGTERM (the server flushes to Parquet and exits), measuring until the process is gone.
    pub(crate) fn stop(mut self) -> Result<Stopped> {
        let pid = self.child.id();
        let status = Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()?;
        ensure!(status.success(), "kill -TERM {pid}");
        let deadline = Instant::now() + Duration::from_secs(300);
        let mut peak = 0;
        loop {
            if let Some(rss) = peak_rss(pid) {
                peak = peak.max(rss);
            }
            // A zombie still reports its CPU times; `wait` would reap it.
            if process_state(pid).as_deref() == Some("Z") {
                let cpu_total = process_cpu(&pid.to_string())?;
                let exit_ok = self.child.wait()?.success();
                if !exit_ok {
                    eprintln!("faultline log:\n{}", self.log_text());
                }
                return Ok(Stopped {
                    cpu_total,
                    peak_rss: peak,
                    exit_ok,
                });
            }
            if Instant::now() > deadline {
                self.child.kill()?;
                bail!("faultline did not exit within 300 s of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn clock_ticks() -> u64 {
    static TICKS: OnceLock<u64> = OnceLock::new();
    *TICKS.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(100)
    })
}

/// Fields of `/proc/<pid>/stat` after the command name.
fn stat_fields(pid: &str) -> Result<Vec<String>> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    let after = stat.rsplit_once(')').context("stat format")?.1;
    Ok(after.split_whitespace().map(str::to_owned).collect())
}

/// utime + stime of a process (`self` or a pid).
pub(crate) fn process_cpu(pid: &str) -> Result<Duration> {
    let fields = stat_fields(pid)?;
    // After ")": state(0) ppid(1) ... utime(11) stime(12).
    let ticks: u64 = fields[11].parse::<u64>()? + fields[12].parse::<u64>()?;
    Ok(Duration::from_micros(ticks * 1_000_000 / clock_ticks()))
}

fn process_state(pid: u32) -> Option<String> {
    stat_fields(&pid.to_string())
        .ok()
        .and_then(|f| f.into_iter().next())
}

fn peak_rss(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}
