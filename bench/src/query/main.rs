//! `query-bench`: SQL over 10 million events, through faultline and through DuckDB on the same
//! Parquet files, in one run on one machine.
//!
//! Layout:
//! - `generate`: writes the data set with faultline's own writer (events per hour, rollups per
//!   day, one manifest), deterministic for a given size.
//! - here: runs the fixed query set in-process through `QueryService` (the path every protocol
//!   takes: a session for project 1, plan checks, limits), then the same questions with DuckDB
//!   (`bench/query/duckdb_bench.py`, PyPI `duckdb`), and prints medians (wall clock, and CPU time,
//!   which other work on a shared machine disturbs less), ratios and peak RSS.

mod generate;
mod pages;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use clap::Parser;
use faultline_config::Config;
use faultline_engine::query::{ProjectFilter, QueryService};

/// Query benchmark: faultline vs DuckDB on the same Parquet files.
#[derive(Debug, Parser)]
#[command(name = "query-bench", version)]
struct Args {
    /// Events to generate.
    #[arg(long, default_value_t = 10_000_000)]
    events: usize,
    /// Distinct issues (templates).
    #[arg(long, default_value_t = 500)]
    issues: usize,
    /// Days the events span, ending now.
    #[arg(long, default_value_t = 30)]
    days: usize,
    /// Data directory; reused when it already holds a data set (delete it to regenerate).
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Timed runs per query (after one warm-up run); the median is printed.
    #[arg(long, default_value_t = 5)]
    reps: usize,
    /// Python with `duckdb` installed.
    #[arg(long, env = "FAULTLINE_BENCH_PYTHON")]
    python: Option<PathBuf>,
    /// Runs only the queries whose name contains one of these substrings (repeatable).
    #[arg(long)]
    only: Vec<String>,
    /// Prints faultline's `EXPLAIN ANALYZE` of each query run, after its timings.
    #[arg(long)]
    explain: bool,
    /// Skips DuckDB (faultline timings only).
    #[arg(long)]
    no_duckdb: bool,
    /// Skips the web UI's page times.
    #[arg(long)]
    no_pages: bool,
}

fn workspace_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("bench/ has a parent")
        .to_owned()
}

/// One question, as faultline SQL and as DuckDB SQL over `events` / `rollups` views.
struct Query {
    name: &'static str,
    faultline: String,
    duckdb: String,
    /// Target: the faultline time must be below this (the issues list), if any.
    limit_ms: Option<f64>,
}

fn issues_list(days: u32) -> (String, String) {
    (
        format!(
            "SELECT issue_id, title, event_count, users, last_seen FROM issues \
             WHERE last_seen > now() - INTERVAL '{days} days' ORDER BY event_count DESC LIMIT 50"
        ),
        format!(
            "SELECT issue_id, arg_max(title, last_seen) AS title, sum(events) AS event_count, \
             len(list_distinct(flatten(list(users)))) AS users, max(last_seen) AS last_seen \
             FROM rollups WHERE project_id = 1 GROUP BY issue_id \
             HAVING max(last_seen) > now() - INTERVAL {days} DAY ORDER BY event_count DESC LIMIT 50"
        ),
    )
}

fn queries(issue_id: i64, event_id: &str) -> Vec<Query> {
    let mut out = Vec::new();
    for (name, days) in [
        ("issues list 24h", 1),
        ("issues list 14d", 14),
        ("issues list 90d", 90),
    ] {
        let (faultline, duckdb) = issues_list(days);
        out.push(Query {
            name,
            faultline,
            duckdb,
            limit_ms: Some(100.0),
        });
    }
    let same = |name, sql: String| Query {
        name,
        faultline: sql.clone(),
        duckdb: sql,
        limit_ms: None,
    };
    out.push(same(
        "count by tag value",
        "SELECT tags['browser'] AS browser, count(*) AS n FROM events \
         WHERE timestamp > now() - INTERVAL '14 days' GROUP BY 1 ORDER BY 2 DESC"
            .into(),
    ));
    out.push(same(
        "top culprits",
        "SELECT culprit, count(*) AS n FROM events GROUP BY 1 ORDER BY 2 DESC LIMIT 10".into(),
    ));
    out.push(same(
        "events per hour, one issue",
        format!(
            "SELECT date_trunc('hour', timestamp) AS h, count(*) AS n FROM events \
             WHERE issue_id = {issue_id} GROUP BY 1 ORDER BY 1"
        ),
    ));
    out.push(same(
        "text search in messages",
        "SELECT count(*) AS n FROM events WHERE message LIKE '%connection reset%'".into(),
    ));
    out.push(same(
        "one event by id",
        format!("SELECT event FROM events WHERE event_id = '{event_id}'"),
    ));
    out
}

fn median(mut times: Vec<f64>) -> f64 {
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
}

/// Medians of one query's timed runs, ms: wall clock and CPU (user + system, all threads).
#[derive(Debug, Clone, Copy, serde::Deserialize)]
struct Timing {
    wall: f64,
    cpu: f64,
}

/// CPU time this process has used so far (all threads), ms.
fn cpu_ms() -> f64 {
    nix::time::clock_gettime(nix::time::ClockId::CLOCK_PROCESS_CPUTIME_ID).map_or(0.0, |t| {
        t.tv_sec() as f64 * 1000.0 + t.tv_nsec() as f64 / 1e6
    })
}

async fn time_faultline(
    service: &QueryService,
    projects: &ProjectFilter,
    sql: &str,
    reps: usize,
) -> Result<Timing> {
    let mut wall = Vec::new();
    let mut cpu = Vec::new();
    for i in 0..=reps {
        let started = Instant::now();
        let cpu_started = cpu_ms();
        service
            .run(projects, sql)
            .await
            .with_context(|| format!("faultline: {sql}"))?;
        if i > 0 {
            wall.push(started.elapsed().as_secs_f64() * 1000.0);
            cpu.push(cpu_ms() - cpu_started);
        }
    }
    Ok(Timing {
        wall: median(wall),
        cpu: median(cpu),
    })
}

/// Prints the plan of one query with the metrics of one run (a session as `run` builds it).
async fn explain(service: &QueryService, projects: &ProjectFilter, q: &Query) -> Result<()> {
    let ctx = service.session(projects).await?;
    let batches = ctx
        .sql(&format!("EXPLAIN ANALYZE {}", q.faultline))
        .await?
        .collect()
        .await?;
    let text = datafusion::arrow::util::pretty::pretty_format_batches(&batches)?;
    eprintln!("-- {}\n{text}", q.name);
    Ok(())
}

fn time_duckdb(
    python: &Path,
    dir: &Path,
    queries: &[Query],
    reps: usize,
) -> Result<BTreeMap<String, Option<Timing>>> {
    let script = workspace_root().join("bench/query/duckdb_bench.py");
    let input = serde_json::json!({
        "root": dir,
        "reps": reps,
        "queries": queries.iter().map(|q| (q.name, &q.duckdb)).collect::<Vec<_>>(),
    });
    let mut child = Command::new(python)
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .context("run duckdb_bench.py")?;
    child
        .stdin
        .take()
        .expect("piped")
        .write_all(input.to_string().as_bytes())?;
    let output = child.wait_with_output()?;
    ensure!(output.status.success(), "duckdb_bench.py failed");
    Ok(serde_json::from_slice(&output.stdout)?)
}

/// The allocator of the `faultline` binary, so the queries allocate as they do in the server.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Resets the peak RSS (VmHWM) of this process, so the query phase is measured alone.
fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let tmp;
    let dir = match &args.dir {
        Some(dir) => dir.clone(),
        None => {
            tmp = tempfile::tempdir()?;
            tmp.path().to_owned()
        }
    };
    let objects = dir.join("objects");
    if !objects.join("manifest").exists() {
        eprintln!(
            "generating {} events over {} issues and {} days in {}",
            args.events,
            args.issues,
            args.days,
            objects.display()
        );
        let started = Instant::now();
        generate::generate(
            &objects,
            args.events,
            args.issues,
            args.days,
            chrono::Utc::now(),
        )
        .await?;
        eprintln!("generated in {:.0} s", started.elapsed().as_secs_f64());
    }
    let mut config = Config::default();
    config.storage.data_dir = dir.clone();
    config.storage.node_id = "query-bench".into();
    config.query.timeout = Duration::from_secs(600);
    let service = faultline_engine::node::open_reader(&config).await?;
    let projects = ProjectFilter::Only(Arc::new([1].into_iter().collect()));

    // Pick the noisiest issue and one event of it for the point queries.
    let top = service
        .run(
            &projects,
            "SELECT issue_id, min(event_id) AS event_id FROM events \
             WHERE issue_id = (SELECT issue_id FROM issues ORDER BY event_count DESC LIMIT 1) \
             GROUP BY issue_id",
        )
        .await?;
    let batch = top
        .batches
        .iter()
        .find(|b| b.num_rows() > 0)
        .context("the data set has no events")?;
    use datafusion::arrow::array::AsArray;
    use datafusion::arrow::datatypes::Int64Type;
    let issue_id = batch.column(0).as_primitive::<Int64Type>().value(0);
    let event_id = batch.column(1).as_string::<i32>().value(0).to_owned();
    let queries: Vec<Query> = queries(issue_id, &event_id)
        .into_iter()
        .filter(|q| args.only.is_empty() || args.only.iter().any(|o| q.name.contains(o.as_str())))
        .collect();
    ensure!(!queries.is_empty(), "--only matches no query");

    reset_peak_rss();
    let mut faultline = Vec::new();
    for q in &queries {
        faultline.push(time_faultline(&service, &projects, &q.faultline, args.reps).await?);
    }
    let peak = peak_rss_mib();
    if args.explain {
        for q in &queries {
            explain(&service, &projects, q).await?;
        }
    }
    let pages = if args.no_pages {
        Vec::new()
    } else {
        // The UI's links to an event carry its time; look it up as the page before it would.
        let at = service
            .run(
                &projects,
                &format!(
                    "SELECT CAST(timestamp AS BIGINT) AS ms FROM events \
                     WHERE issue_id = {issue_id} AND event_id = '{event_id}'"
                ),
            )
            .await?;
        let at = at
            .batches
            .iter()
            .find(|b| b.num_rows() > 0)
            .context("the event has no time")?
            .column(0)
            .as_primitive::<Int64Type>()
            .value(0);
        pages::time_pages(&dir, issue_id, &event_id, at, args.reps).await?
    };
    let duck = if args.no_duckdb {
        BTreeMap::new()
    } else {
        let python = args
            .python
            .clone()
            .unwrap_or_else(|| workspace_root().join(".venv/bin/python"));
        time_duckdb(&python, &objects, &queries, args.reps)?
    };

    println!(
        "query benchmark: {} events, {} issues, {} days; median of {} runs, ms",
        args.events, args.issues, args.days, args.reps
    );
    println!(
        "{:<28} {:>10} {:>10} {:>8} {:>10} {:>10} {:>8}  target",
        "query", "faultline", "duckdb", "ratio", "cpu fl", "cpu duck", "ratio"
    );
    let cell = |v: Option<f64>| v.map_or("-".into(), |v| format!("{v:.1}"));
    let times = |v: Option<f64>| v.map_or("-".into(), |v| format!("{v:.2}x"));
    for (q, ours) in queries.iter().zip(&faultline) {
        let duck = duck.get(q.name).copied().flatten();
        let ratio = duck.map(|d| ours.wall / d.wall);
        let cpu_ratio = duck.map(|d| ours.cpu / d.cpu);
        let target = match (q.limit_ms, ratio) {
            (Some(limit), _) => format!(
                "< {limit} ms: {}",
                if ours.wall < limit { "met" } else { "MISSED" }
            ),
            (None, Some(r)) => format!("<= 1.5x: {}", if r <= 1.5 { "met" } else { "MISSED" }),
            (None, None) if args.no_duckdb => "-".into(),
            (None, None) => "duckdb failed".into(),
        };
        println!(
            "{:<28} {:>10.1} {:>10} {:>8} {:>10.1} {:>10} {:>8}  {target}",
            q.name,
            ours.wall,
            cell(duck.map(|d| d.wall)),
            times(ratio),
            ours.cpu,
            cell(duck.map(|d| d.cpu)),
            times(cpu_ratio),
        );
    }
    if !pages.is_empty() {
        println!(
            "\nweb UI pages (server time, in process), median of {} runs, ms",
            args.reps
        );
        println!("{:<28} {:>10} {:>10}  target", "page", "faultline", "KiB");
        for page in &pages {
            println!(
                "{:<28} {:>10.1} {:>10.1}  < 100 ms: {}",
                page.name,
                page.ms,
                page.bytes as f64 / 1024.0,
                if page.ms < 100.0 { "met" } else { "MISSED" }
            );
        }
    }
    if let Some(peak) = peak {
        println!(
            "peak RSS during the faultline queries: {peak:.0} MiB (target < 500 MiB: {})",
            if peak < 500.0 { "met" } else { "MISSED" }
        );
    }
    Ok(())
}
