//! `ingest-bench`: replays envelopes captured from the Python Sentry SDK against a release-optimized
//! `faultline serve` and prints what an operator sizing a node wants to know.
//!
//! Layout:
//! - `fixtures`: loads `bench/fixtures/` (request bodies exactly as `sentry-sdk` sent them) and
//!   renews the event id, timestamps and key of each replay, re-compressing with the SDK's brotli
//!   settings, all before the clock starts.
//! - `server`: starts the engine on a free port with a temporary data directory, reads its CPU time
//!   and peak memory from `/proc`, stops it with SIGTERM (which flushes to Parquet).
//! - `load`: the load generator, a single-threaded hyper client over a few keep-alive connections.
//! - `report`: the figures and how they compare with the targets.
//! - `isolation`: with `--isolation-seconds`, ingest latency at a steady rate alone and while
//!   CPU-heavy queries and large sorts run, instead of the ingest run.

mod fixtures;
mod isolation;
mod load;
mod report;
mod server;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use clap::Parser;

/// Ingest benchmark for faultline.
#[derive(Debug, Parser)]
#[command(name = "ingest-bench", version)]
struct Args {
    /// The `faultline` binary to measure (default: <target dir>/bench-fast/faultline).
    #[arg(long, env = "FAULTLINE_BIN")]
    faultline: Option<PathBuf>,
    /// Captured envelopes (default: bench/fixtures of this workspace).
    #[arg(long)]
    fixtures: Option<PathBuf>,
    /// Events to send.
    #[arg(long, default_value_t = 40_000)]
    events: usize,
    /// Concurrent keep-alive connections (each request waits for a WAL fsync, so throughput
    /// needs some concurrency; SDKs in many processes provide it in production).
    #[arg(long, default_value_t = 32)]
    connections: usize,
    /// Extra TOML appended to the server's config file (e.g. "[flush]\ninterval = \"5s\"").
    #[arg(long, default_value = "")]
    server_config: String,
    /// Keep the data directory and print its path.
    #[arg(long)]
    keep_data: bool,
    /// Instead of the ingest run: ingest at `--isolation-rate` for this many seconds alone,
    /// then as long again while 4 CPU-heavy queries and 8 large sorts run; print both
    /// latencies.
    #[arg(long, default_value_t = 0)]
    isolation_seconds: u64,
    /// Ingest requests per second of the isolation run.
    #[arg(long, default_value_t = 100.0)]
    isolation_rate: f64,
}

fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("bench/ has a parent")
        .to_owned()
}

fn default_faultline() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| workspace_root().join("target"));
    target.join("bench-fast/faultline")
}

fn main() -> Result<()> {
    let args = Args::parse();
    let binary = args.faultline.clone().unwrap_or_else(default_faultline);
    ensure!(
        binary.exists(),
        "no faultline binary at {}; build it with `cargo build --profile bench-fast -p faultline-engine` \
         (or pass --faultline)",
        binary.display()
    );
    let fixture_dir = args
        .fixtures
        .clone()
        .unwrap_or_else(|| workspace_root().join("bench/fixtures"));
    let captured = fixtures::Captured::load(&fixture_dir)?;
    eprintln!(
        "fixtures: {} envelopes from {}, {:.0} bytes uncompressed, {:.0} bytes on the wire on average",
        captured.envelopes.len(),
        captured.sdk,
        captured.mean_uncompressed(),
        captured.mean_wire()
    );

    let data = tempfile::Builder::new()
        .prefix("faultline-bench-")
        .tempdir()?;
    let server = server::Server::start(&binary, data.path(), &args.server_config)?;
    let project = server.create_project("bench")?;
    if args.isolation_seconds > 0 {
        // The build profile is the name of the binary's directory (debug, bench-fast, release).
        let profile = binary
            .parent()
            .and_then(|d| d.file_name())
            .map(|d| d.to_string_lossy().into_owned())
            .unwrap_or_default();
        let profile = if profile == "debug" {
            "dev".to_owned()
        } else {
            profile
        };
        isolation::run(
            &server,
            &project,
            &captured,
            args.isolation_seconds,
            args.isolation_rate,
            &profile,
        )?;
        return server
            .stop()?
            .exit_ok
            .then_some(())
            .context("faultline did not exit 0 after SIGTERM");
    }
    let token = server.create_token()?;

    let started = Instant::now();
    let requests = captured.renew(args.events, &project.key);
    let some_event = requests
        .get(requests.len() / 2)
        .map(|r| r.event_id.clone())
        .context("no events to send")?;
    eprintln!(
        "prepared {} requests in {:.1} s",
        requests.len(),
        started.elapsed().as_secs_f64()
    );

    let cpu_before = server.cpu()?;
    let grouping_before = server.grouping_cost()?;
    let processing_before = server.processing_cost()?;
    let run = load::run(
        server.addr,
        &project.envelope_path,
        requests,
        args.connections,
    )?;
    let cpu_at_last_ack = server.cpu()?;
    let grouping_after = server.grouping_cost()?;
    let processing_after = server.processing_cost()?;
    let rss_at_last_ack = server.peak_rss()?;

    // Freshness: how long after the last acknowledgement a query sees every accepted event.
    let visible_after = server.wait_visible(
        &token,
        run.accepted as u64,
        run.last_ack,
        Duration::from_secs(60),
    )?;
    let issues = server.count(
        &token,
        "SELECT count(*) AS n FROM issues WHERE project = 'bench'",
    )?;
    let rss_peak_running = server.peak_rss()?;
    let stopped = server.stop()?;
    let disk = report::Disk::measure(data.path())?;

    // Queries over what is now Parquet, on a restarted server.
    let restarting = Instant::now();
    let server = server::Server::start(&binary, data.path(), &args.server_config)?;
    let restart_ready = restarting.elapsed();
    let queries = timed_queries(&server, &token, &some_event)?;
    ensure!(
        server.stop()?.exit_ok,
        "the restarted faultline did not exit 0"
    );

    let report = report::Report {
        events: args.events,
        connections: args.connections,
        run,
        cpu_ingest: cpu_at_last_ack.saturating_sub(cpu_before),
        cpu_total: stopped.cpu_total.saturating_sub(cpu_before),
        rss_peak: stopped.peak_rss.max(rss_peak_running),
        rss_at_last_ack,
        visible_after,
        issues,
        disk,
        restart_ready,
        queries,
        grouping: (
            grouping_after.0.saturating_sub(grouping_before.0),
            grouping_after.1 - grouping_before.1,
        ),
        processing: (
            processing_after.0.saturating_sub(processing_before.0),
            processing_after.1 - processing_before.1,
        ),
        wire_bytes: captured.mean_wire(),
        uncompressed_bytes: captured.mean_uncompressed(),
    };
    print!("{}", report.render());
    if args.keep_data {
        let kept = data.keep();
        println!("data kept in {}", kept.display());
    }
    stopped
        .exit_ok
        .then_some(())
        .context("faultline did not exit 0 after SIGTERM")
}

/// Typical queries, each run 5 times: (label, median, rows).
fn timed_queries(
    server: &server::Server,
    token: &str,
    event_id: &str,
) -> Result<Vec<(String, Duration, usize)>> {
    let queries = [
        (
            "count events",
            "SELECT count(*) AS n FROM events WHERE project = 'bench'".to_owned(),
        ),
        (
            "top 10 issues from events",
            "SELECT issue_id, count(*) AS n FROM events WHERE project = 'bench' \
             GROUP BY issue_id ORDER BY n DESC LIMIT 10"
                .to_owned(),
        ),
        (
            "top 10 from issues",
            "SELECT issue_id, title, event_count, last_seen FROM issues \
             WHERE project = 'bench' ORDER BY event_count DESC LIMIT 10"
                .to_owned(),
        ),
        (
            "one event by id (full JSON)",
            format!("SELECT event FROM events WHERE event_id = '{event_id}'"),
        ),
        (
            "count by tag",
            "SELECT count(*) AS n FROM events WHERE tags['browser'] = 'Firefox 132'".to_owned(),
        ),
    ];
    let mut out = Vec::new();
    for (label, sql) in queries {
        let mut times = Vec::new();
        let mut rows = 0;
        for _ in 0..5 {
            let started = Instant::now();
            rows = server.rows(token, &sql)?;
            times.push(started.elapsed());
        }
        times.sort();
        out.push((label.to_owned(), times[times.len() / 2], rows));
    }
    Ok(out)
}
