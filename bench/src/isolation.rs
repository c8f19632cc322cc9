//! `--isolation-seconds`: does ingest stay responsive while queries use the CPU?
//!
//! Ingest runs at a steady rate twice for the same time: once alone, once while 4 CPU-heavy
//! queries (a self-join computing string distances) and 8 large sorts (every event ordered by
//! its JSON) run in a loop, each on its own connection. Ingest latency counts from when each
//! request was due, so a stalled server shows as latency.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use anyhow::{Context, Result};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;

use crate::fixtures::Captured;
use crate::load;
use crate::server::{Project, Server};

const CPU_HEAVY: &str = "SELECT count(*) AS n FROM events a, events b \
                         WHERE levenshtein(a.event_id || a.event_id, b.event_id) > 0";
const LARGE_SORT: &str = "SELECT event_id FROM events ORDER BY event DESC";

/// Queries that ran while ingest was measured: (finished with 200, other answers).
#[derive(Debug, Default)]
struct QueryTally {
    ok: AtomicUsize,
    refused: AtomicUsize,
}

/// Runs `sql` over and over on one connection until `stop`.
fn query_loop(
    addr: SocketAddr,
    token: String,
    sql: &'static str,
    stop: Arc<AtomicBool>,
    tally: Arc<QueryTally>,
) -> Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async move {
        let body = Bytes::from(serde_json::to_vec(&serde_json::json!({ "sql": sql }))?);
        while !stop.load(Ordering::Relaxed) {
            let stream = tokio::net::TcpStream::connect(addr).await?;
            let (mut sender, conn) =
                http1::handshake::<_, Full<Bytes>>(TokioIo::new(stream)).await?;
            tokio::spawn(async move {
                let _ = conn.await;
            });
            let request = hyper::Request::post("/api/sql")
                .header(hyper::header::HOST, addr.to_string())
                .header(hyper::header::AUTHORIZATION, format!("Bearer {token}"))
                .header(hyper::header::CONTENT_TYPE, "application/json")
                .body(Full::new(body.clone()))?;
            let response = sender.send_request(request).await?;
            let status = response.status();
            response.into_body().collect().await?;
            if status == 200 {
                tally.ok.fetch_add(1, Ordering::Relaxed);
            } else {
                tally.refused.fetch_add(1, Ordering::Relaxed);
            }
        }
        anyhow::Ok(())
    })
}

/// Both phases; prints the figures.
pub(crate) fn run(
    server: &Server,
    project: &Project,
    captured: &Captured,
    seconds: u64,
    rate: f64,
    profile: &str,
) -> Result<()> {
    // Something to sort and join: a few thousand events first.
    let seed = captured.renew(3000, &project.key);
    let seeded = load::run(server.addr, &project.envelope_path, seed, 16)?;
    eprintln!("isolation: seeded {} events", seeded.accepted);
    let count = (seconds as f64 * rate) as usize;

    let alone = load::run_paced(
        server.addr,
        &project.envelope_path,
        captured.renew(count, &project.key),
        32,
        Some(rate),
    )?;

    // Three tokens: the 12 queries fit the default cap of 4 per token.
    let tokens: Vec<String> = (0..3)
        .map(|_| server.create_token())
        .collect::<Result<_>>()?;
    let stop = Arc::new(AtomicBool::new(false));
    let tally = Arc::new(QueryTally::default());
    let queries: Vec<_> = (0..12)
        .map(|i| {
            let sql = if i < 4 { CPU_HEAVY } else { LARGE_SORT };
            let (addr, token) = (server.addr, tokens[i % 3].clone());
            let (stop, tally) = (Arc::clone(&stop), Arc::clone(&tally));
            std::thread::spawn(move || query_loop(addr, token, sql, stop, tally))
        })
        .collect();
    // Let the queries get going before ingest is measured.
    std::thread::sleep(Duration::from_secs(2));
    let busy = load::run_paced(
        server.addr,
        &project.envelope_path,
        captured.renew(count, &project.key),
        32,
        Some(rate),
    );
    stop.store(true, Ordering::Relaxed);
    for query in queries {
        query.join().ok().context("query thread panicked")??;
    }
    let busy = busy?;

    println!(
        "isolation ({profile} build): ingest at {rate:.0} requests/s for {seconds} s, \
         alone and with 4 CPU-heavy queries and 8 large sorts running"
    );
    for (label, run) in [("alone", &alone), ("with queries", &busy)] {
        println!(
            "  ingest {label:<13} accepted {:>6}  rejected {:>4}  failed {:>3}  \
             p50 {:>7.1} ms  p99 {:>7.1} ms  max {:>7.1} ms",
            run.accepted,
            run.rejected.iter().map(|(_, n)| n).sum::<usize>(),
            run.failed,
            run.percentile(50.0).as_secs_f64() * 1e3,
            run.percentile(99.0).as_secs_f64() * 1e3,
            run.percentile(100.0).as_secs_f64() * 1e3,
        );
    }
    println!(
        "  queries answered 200: {}, other answers (time or memory limit, busy): {}",
        tally.ok.load(Ordering::Relaxed),
        tally.refused.load(Ordering::Relaxed)
    );
    let p99 = busy.percentile(99.0);
    println!(
        "  target: ingest p99 under 100 ms while queries run: {}",
        if p99 < Duration::from_millis(100) {
            "met"
        } else {
            "missed"
        }
    );
    Ok(())
}
