//! Prints how long normalization plus grouping takes per fixture event, and what ingest's
//! processing beyond normalization (User-Agent enrichment and scrubbing with the default
//! settings) adds: the payloads in `tests/fixtures/events` and `tests/fixtures/sdk`, the events
//! of the ingest benchmark's envelopes (`bench/fixtures`), and the third-party set beside the
//! repository when present (`FAULTLINE_SHARED_FIXTURES`, else `../shared/fixtures/events`).
//!
//! `cargo bench -p faultline-protocol --profile bench-fast --bench normalize`
//! The engine's budget is 200 us of CPU per 14 KB event for the whole ingest path.
//!
//! With `FAULTLINE_BENCH_ROUNDS=N` it only processes the ingest benchmark's events N times as
//! ingest does (parse, normalize, enrich, scrub, group) and prints nothing: run under
//! `valgrind --tool=cachegrind --cache-sim=no` with two values of N, the difference of the
//! instruction counts is the work per event, a figure that does not move with the machine's
//! speed (docs/benchmarks.md). With `FAULTLINE_BENCH_TREE=serde_json` or `sonic` as well, it
//! only parses those events into that JSON tree and drops it (`serde_json::Value` as ingest
//! builds it, through sonic-rs's serde interface; or sonic-rs's own arena-backed `Value`): what
//! the tree alone costs per event, the figure a lighter tree for processing is weighed by.

use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use faultline_protocol::envelope::{Envelope, EnvelopeLimits, ItemType};
use faultline_protocol::grouping::{cost, grouping_of};
use faultline_protocol::normalize::{
    NormalizeContext, Processing, normalize_event, process_event, processing_cost,
};
use faultline_protocol::scrub::{ScrubSettings, Scrubber};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

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

/// The event payloads of the ingest benchmark's brotli-compressed envelopes.
fn bench_events(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    let mut paths: Vec<_> = entries
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "bin"))
        .collect();
    paths.sort();
    for path in paths {
        let compressed = std::fs::read(&path).unwrap();
        let mut data = Vec::new();
        brotli::BrotliDecompress(&mut compressed.as_slice(), &mut data).unwrap();
        let envelope = Envelope::parse(&data, &EnvelopeLimits::default()).unwrap();
        for item in envelope.items.iter().filter(|i| i.ty == ItemType::Event) {
            let name = path.file_stem().unwrap().to_string_lossy().into_owned();
            out.push((name, item.payload(&data).to_vec()));
        }
    }
    out
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
    let scrubber = Scrubber::new(&ScrubSettings::default()).unwrap();
    let bench_dir = root.join("../bench/fixtures");
    if let Some(rounds) = std::env::var("FAULTLINE_BENCH_ROUNDS")
        .ok()
        .and_then(|r| r.parse::<usize>().ok())
    {
        let events = bench_events(&bench_dir);
        if let Ok(tree) = std::env::var("FAULTLINE_BENCH_TREE") {
            for _ in 0..rounds {
                for (_, payload) in &events {
                    let members = match tree.as_str() {
                        "serde_json" => sonic_rs::from_slice::<serde_json::Value>(payload)
                            .unwrap()
                            .as_object()
                            .map_or(0, |root| root.len()),
                        "sonic" => {
                            use sonic_rs::JsonContainerTrait;
                            sonic_rs::from_slice::<sonic_rs::Value>(payload)
                                .unwrap()
                                .as_object()
                                .map_or(0, |root| root.len())
                        }
                        other => panic!("FAULTLINE_BENCH_TREE={other}: serde_json or sonic"),
                    };
                    black_box(members);
                }
            }
            return;
        }
        let processing = Processing {
            scrubber: Some(&scrubber),
            sent_at: None,
        };
        for _ in 0..rounds {
            for (_, payload) in &events {
                let event = process_event(black_box(payload), &ctx, &processing).unwrap();
                black_box(grouping_of(&event).hash.len());
            }
        }
        return;
    }
    println!("ingest benchmark envelopes: {}", bench_dir.display());
    bench(&bench_events(&bench_dir), &ctx, &scrubber);
    for (set, dir) in sets {
        println!("{set}: {}", dir.display());
        let payloads: Vec<_> = json_files(&dir)
            .into_iter()
            .map(|p| {
                let name = p.file_stem().unwrap().to_string_lossy().into_owned();
                (name, std::fs::read(&p).unwrap())
            })
            .collect();
        bench(&payloads, &ctx, &scrubber);
    }
}

fn bench(payloads: &[(String, Vec<u8>)], ctx: &NormalizeContext, scrubber: &Scrubber) {
    println!(
        "{:<44} {:>6} {:>9} {:>7} {:>11} {:>13} {:>9}",
        "fixture", "bytes", "us/event", "us/KB", "grouping us", "processing us", "scrub us"
    );
    let processing = Processing {
        scrubber: Some(scrubber),
        sent_at: None,
    };
    let unscrubbed = Processing {
        scrubber: None,
        sent_at: None,
    };
    let (mut total_bytes, mut total_time) = (0usize, Duration::ZERO);
    let (mut total_grouping, mut total_processing, mut total_scrub) = (0.0, 0.0, 0.0);
    for (name, payload) in payloads {
        let rounds = (2_000_000 / payload.len().max(1000)).clamp(20, 2000);
        // warm up
        for _ in 0..rounds / 10 + 1 {
            black_box(
                grouping_of(&normalize_event(payload, ctx).unwrap())
                    .hash
                    .len(),
            );
        }
        let before = cost();
        let start = Instant::now();
        for _ in 0..rounds {
            let event = normalize_event(black_box(payload), ctx).unwrap();
            black_box(grouping_of(&event).hash.len());
        }
        let per_event = start.elapsed() / rounds as u32;
        let after = cost();
        let grouped = (after.events - before.events).max(1);
        let grouping_us = (after.nanos - before.nanos) as f64 / grouped as f64 / 1e3;
        // what ingest adds: enrichment and scrubbing (their own clock, inside process_event)
        let before = processing_cost();
        for _ in 0..rounds {
            black_box(process_event(black_box(payload), ctx, &processing).is_ok());
        }
        let after = processing_cost();
        let processing_us = (after.nanos - before.nanos) as f64
            / (after.events - before.events).max(1) as f64
            / 1e3;
        let before = processing_cost();
        for _ in 0..rounds {
            black_box(process_event(black_box(payload), ctx, &unscrubbed).is_ok());
        }
        let after = processing_cost();
        let scrub_us = processing_us
            - (after.nanos - before.nanos) as f64
                / (after.events - before.events).max(1) as f64
                / 1e3;
        total_grouping += grouping_us;
        total_processing += processing_us;
        total_scrub += scrub_us;
        total_bytes += payload.len();
        total_time += per_event;
        println!(
            "{:<44} {:>6} {:>9.1} {:>7.2} {:>11.1} {:>13.1} {:>9.1}",
            name,
            payload.len(),
            per_event.as_secs_f64() * 1e6,
            per_event.as_secs_f64() * 1e6 / (payload.len() as f64 / 1024.0),
            grouping_us,
            processing_us,
            scrub_us
        );
    }
    let per_kb = total_time.as_secs_f64() * 1e6 / (total_bytes as f64 / 1024.0);
    println!(
        "the whole set: {per_kb:.2} us/KB, i.e. {:.0} us for a 14 KB event",
        per_kb * 14.0
    );
    let count = payloads.len().max(1) as f64;
    println!(
        "grouping: {:.1} us, processing (enrichment + default scrubbing): {:.1} us, of which \
         scrubbing {:.1} us per event on average over the set's events",
        total_grouping / count,
        total_processing / count,
        total_scrub / count
    );
}
