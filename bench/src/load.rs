//! The load generator: one thread, `connections` keep-alive HTTP/1.1 connections, each sending the
//! next prepared request as soon as the previous one is answered.

use std::cell::RefCell;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1;
use hyper_util::rt::TokioIo;

use crate::fixtures::Request;
use crate::server::process_cpu;

/// What a run did.
#[derive(Debug)]
pub(crate) struct Run {
    /// Answered 200.
    pub(crate) accepted: usize,
    /// Answered, but not 200 (back-pressure 429/503 or an error status), by status.
    pub(crate) rejected: Vec<(u16, usize)>,
    /// Connection errors.
    pub(crate) failed: usize,
    /// From the first request to the last answer.
    pub(crate) elapsed: Duration,
    /// When the last 200 arrived.
    pub(crate) last_ack: Instant,
    /// Latency of each accepted request, sorted.
    pub(crate) latencies: Vec<Duration>,
    /// CPU time the load generator itself used.
    pub(crate) generator_cpu: Duration,
}

impl Run {
    pub(crate) fn percentile(&self, p: f64) -> Duration {
        if self.latencies.is_empty() {
            return Duration::ZERO;
        }
        let rank = ((p / 100.0) * self.latencies.len() as f64).ceil() as usize;
        self.latencies[rank.clamp(1, self.latencies.len()) - 1]
    }
}

#[derive(Default)]
struct Tally {
    accepted: usize,
    rejected: std::collections::BTreeMap<u16, usize>,
    failed: usize,
    latencies: Vec<Duration>,
    last_ack: Option<Instant>,
}

/// The requests still to send, each with when it is due (`None`: as soon as possible).
type Queue = Rc<RefCell<std::vec::IntoIter<(Option<Instant>, Request)>>>;

pub(crate) fn run(
    addr: SocketAddr,
    path: &str,
    requests: Vec<Request>,
    connections: usize,
) -> Result<Run> {
    run_paced(addr, path, requests, connections, None)
}

/// Like [`run`], but at a steady `rate` (requests per second) when given: request `i` is due
/// `i / rate` after the start, and its latency counts from when it was due, so a stalled server
/// shows as latency rather than as a slower generator.
pub(crate) fn run_paced(
    addr: SocketAddr,
    path: &str,
    requests: Vec<Request>,
    connections: usize,
    rate: Option<f64>,
) -> Result<Run> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let total = requests.len();
    let started = Instant::now();
    let due: Vec<(Option<Instant>, Request)> = requests
        .into_iter()
        .enumerate()
        .map(|(i, r)| {
            let at = rate.map(|rate| started + Duration::from_secs_f64(i as f64 / rate));
            (at, r)
        })
        .collect();
    let queue = Rc::new(RefCell::new(due.into_iter()));
    let tally = Rc::new(RefCell::new(Tally {
        latencies: Vec::with_capacity(total),
        ..Tally::default()
    }));
    let cpu_before = process_cpu("self")?;
    let local = tokio::task::LocalSet::new();
    local.block_on(&runtime, async {
        let workers: Vec<_> = (0..connections)
            .map(|_| {
                tokio::task::spawn_local(connection(
                    addr,
                    path.to_owned(),
                    Rc::clone(&queue),
                    Rc::clone(&tally),
                ))
            })
            .collect();
        for worker in workers {
            worker.await.context("load worker panicked")??;
        }
        anyhow::Ok(())
    })?;
    let elapsed = started.elapsed();
    let generator_cpu = process_cpu("self")?.saturating_sub(cpu_before);
    let mut tally = tally.take();
    tally.latencies.sort_unstable();
    Ok(Run {
        accepted: tally.accepted,
        rejected: tally.rejected.into_iter().collect(),
        failed: tally.failed,
        elapsed,
        last_ack: tally.last_ack.unwrap_or_else(Instant::now),
        latencies: tally.latencies,
        generator_cpu,
    })
}

async fn connection(
    addr: SocketAddr,
    path: String,
    queue: Queue,
    tally: Rc<RefCell<Tally>>,
) -> Result<()> {
    let host = addr.to_string();
    let mut sender: Option<http1::SendRequest<Full<Bytes>>> = None;
    loop {
        let Some((due, request)) = queue.borrow_mut().next() else {
            return Ok(());
        };
        if let Some(due) = due {
            tokio::time::sleep_until(due.into()).await;
        }
        if sender.as_ref().is_none_or(|s| s.is_closed()) {
            let stream = tokio::net::TcpStream::connect(addr)
                .await
                .context("connect to faultline")?;
            stream.set_nodelay(true)?;
            let (s, conn) = http1::handshake(TokioIo::new(stream)).await?;
            tokio::task::spawn_local(async move {
                let _ = conn.await;
            });
            sender = Some(s);
        }
        let s = sender.as_mut().expect("connected");
        let mut builder =
            hyper::Request::post(path.as_str()).header(hyper::header::HOST, host.as_str());
        for (name, value) in &request.headers {
            builder = builder.header(name.as_str(), value.as_str());
        }
        let http_request = builder.body(Full::new(request.body))?;
        let sent_at = due.unwrap_or_else(Instant::now);
        if s.ready().await.is_err() {
            tally.borrow_mut().failed += 1;
            sender = None;
            continue;
        }
        let outcome = match s.send_request(http_request).await {
            Ok(response) => {
                let status = response.status().as_u16();
                match response.into_body().collect().await {
                    Ok(_) => Some(status),
                    Err(_) => None,
                }
            }
            Err(_) => None,
        };
        let now = Instant::now();
        let mut tally = tally.borrow_mut();
        match outcome {
            Some(200) => {
                tally.accepted += 1;
                tally.latencies.push(now - sent_at);
                tally.last_ack = Some(now);
            }
            Some(status) => *tally.rejected.entry(status).or_default() += 1,
            None => {
                tally.failed += 1;
                sender = None;
            }
        }
    }
}
