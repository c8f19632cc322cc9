//! Prints how long normalization plus grouping takes per fixture event: the payloads in
//! `tests/fixtures/events` and `tests/fixtures/sdk`, and the third-party set beside the
//! repository when present (`FAULTLINE_SHARED_FIXTURES`, else `../shared/fixtures/events`).
//!
//! `cargo bench -p faultline-protocol --profile bench-fast --bench normalize`
//! The engine's budget is 200 us of CPU per 14 KB event for the whole ingest path.

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use faultline_protocol::grouping::{cost, grouping_of};
use faultline_protocol::normalize::{NormalizeContext, normalize_event};

const MANIFEST_DIR: &str = env!("CARGO_MANIFEST_DIR");

fn json_files(dir: &Path) -> Vec<PathBuf> {
    let mut paths: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    paths.sort();
    paths
}

fn main() {
    let ctx = NormalizeContext {
        received: chrono::Utc::now(),
        client_ip: Some("203.0.113.7".parse().unwrap()),
        event_id: None,
    };
    let root = Path::new(MANIFEST_DIR);
    let mut sets = vec![
        ("events", root.join("tests/fixtures/events")),
        ("sdk", root.join("tests/fixtures/sdk")),
    ];
    let shared = std::env::var_os("FAULTLINE_SHARED_FIXTURES")
        .map(PathBuf::from)
        .unwrap_or_else(|| root.join("../../shared/fixtures/events"));
    if shared.is_dir() {
        sets.push(("third-party", shared));
    } else {
        println!("(no third-party set at {})", shared.display());
    }
    for (set, dir) in sets {
        println!("{set}: {}", dir.display());
        bench(&json_files(&dir), &ctx);
    }
}

fn bench(paths: &[PathBuf], ctx: &NormalizeContext) {
    println!(
        "{:<52} {:>8} {:>10} {:>10} {:>12}",
        "fixture", "bytes", "us/event", "us/KB", "grouping us"
    );
    let (mut total_bytes, mut total_time) = (0usize, Duration::ZERO);
    let mut total_grouping = 0.0;
    for path in paths {
        let payload = std::fs::read(path).unwrap();
        let rounds = (2_000_000 / payload.len().max(1000)).clamp(20, 2000);
        // warm up
        for _ in 0..rounds / 10 + 1 {
            black_box(
                grouping_of(&normalize_event(&payload, ctx).unwrap())
                    .hash
                    .len(),
            );
        }
        let before = cost();
        let start = Instant::now();
        for _ in 0..rounds {
            let event = normalize_event(black_box(&payload), ctx).unwrap();
            black_box(grouping_of(&event).hash.len());
        }
        let per_event = start.elapsed() / rounds as u32;
        let after = cost();
        let grouped = (after.events - before.events).max(1);
        let grouping_us = (after.nanos - before.nanos) as f64 / grouped as f64 / 1e3;
        total_grouping += grouping_us;
        total_bytes += payload.len();
        total_time += per_event;
        println!(
            "{:<52} {:>8} {:>10.1} {:>10.2} {:>12.1}",
            path.file_stem().unwrap().to_string_lossy(),
            payload.len(),
            per_event.as_secs_f64() * 1e6,
            per_event.as_secs_f64() * 1e6 / (payload.len() as f64 / 1024.0),
            grouping_us
        );
    }
    let per_kb = total_time.as_secs_f64() * 1e6 / (total_bytes as f64 / 1024.0);
    println!(
        "the whole set: {per_kb:.2} us/KB, i.e. {:.0} us for a 14 KB event",
        per_kb * 14.0
    );
    println!(
        "grouping: {:.1} us per event on average over the set's events",
        total_grouping / paths.len().max(1) as f64
    );
}
