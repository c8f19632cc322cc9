//! Writes the data set with faultline's own writer: events from templates, normalized and grouped
//! as ingest does (`faultline_protocol` + `ingest::stored_event`), one Parquet file per hour
//! (`store::parquet::write_partitions`, as a flush writes them), hourly issue rollups per day
//! (`issues::rollup`, as compaction would leave them: one file per project and day) with their tag
//! rollups (`issues::tag_rollup`), and one
//! manifest that lists them all.

use std::path::Path;
use std::time::Instant;

use anyhow::Result;
use chrono::{DateTime, Duration, Utc};
use faultline_engine::events::EventBuilder;
use faultline_engine::ingest::stored_event;
use faultline_engine::issues::{rollup, tag_rollup};
use faultline_engine::store::Store;
use faultline_engine::store::manifest::Manifest;
use faultline_engine::tenancy::Project;
use faultline_protocol::normalize::{NormalizeContext, normalize_event};

pub(crate) const NODE: &str = "bench";

const BROWSERS: [&str; 6] = [
    "Chrome",
    "Firefox",
    "Safari",
    "Edge",
    "Opera",
    "Samsung Internet",
];
const REGIONS: [&str; 4] = ["eu-west", "us-east", "us-west", "ap-south"];
const VERBS: [&str; 8] = [
    "load", "save", "charge", "render", "sync", "parse", "send", "resolve",
];
const NOUNS: [&str; 10] = [
    "order", "invoice", "cart", "profile", "session", "report", "payment", "shipment", "token",
    "image",
];
const PROBLEMS: [&str; 6] = [
    "timeout after 30s",
    "connection reset by peer",
    "unexpected null value",
    "permission denied",
    "index out of range",
    "invalid state transition",
];

/// A small deterministic generator (xorshift), so every run writes the same data set.
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Self {
        Self(seed.max(1))
    }

    pub(crate) fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    /// Skewed towards small values: a few issues get most events, as in production.
    fn skewed(&mut self, n: usize) -> usize {
        let a = self.below(n);
        let b = self.below(n);
        a.min(b)
    }
}

/// The event JSON of template `issue` at `at`.
fn payload(rng: &mut Rng, issue: usize, at: DateTime<Utc>) -> String {
    let verb = VERBS[issue % VERBS.len()];
    let noun = NOUNS[(issue / VERBS.len()) % NOUNS.len()];
    let problem = PROBLEMS[issue % PROBLEMS.len()];
    let module = format!("shop.{noun}s.service{}", issue % 7);
    let frames: Vec<String> = (0..5)
        .map(|i| {
            format!(
                r#"{{"module":"{module}","function":"{verb}_{noun}_{i}","filename":"shop/{noun}s/service.py","lineno":{},"in_app":true}}"#,
                40 + i * 7
            )
        })
        .collect();
    format!(
        r#"{{"event_id":"{:032x}","timestamp":"{}","platform":"python","level":"error","release":"shop@1.{}.0","environment":"production","server_name":"web-{}","transaction":"/api/{noun}s/{{id}}","message":"{verb} {noun} failed: {problem}","user":{{"id":"user-{}"}},"tags":{{"browser":"{}","region":"{}"}},"exception":{{"values":[{{"type":"{}Error{issue}","value":"could not {verb} {noun} {}: {problem}","module":"{module}","stacktrace":{{"frames":[{}]}}}}]}}}}"#,
        rng.next() as u128 | ((rng.next() as u128) << 64),
        at.to_rfc3339(),
        (at.timestamp() / 86_400) % 20,
        rng.below(12),
        rng.below(50_000),
        BROWSERS[rng.skewed(BROWSERS.len())],
        REGIONS[rng.below(REGIONS.len())],
        NOUNS[issue % NOUNS.len()].to_uppercase(),
        rng.below(1_000_000),
        frames.join(",")
    )
}

/// Writes `events` events over `issues` issues and the `days` days before `now` into `dir`.
pub(crate) async fn generate(
    dir: &Path,
    events: usize,
    issues: usize,
    days: usize,
    now: DateTime<Utc>,
) -> Result<()> {
    let store = Store::local(dir)?;
    let project = Project {
        id: 1,
        name: "shop".into(),
        org: "default".into(),
        keys: vec![faultline_config::KeyConfig::new("0".repeat(32))],
        rate_limit: None,
        quotas: Vec::new(),
        platform: None,
        retention_days: None,
    };
    let hours = days * 24;
    let per_hour = events / hours;
    let start = now - Duration::hours(hours as i64);
    let mut rng = Rng::new(42);
    let mut manifest = Manifest {
        node: NODE.into(),
        ..Manifest::default()
    };
    let started = Instant::now();
    let mut day_rollups = Vec::new();
    for hour in 0..hours {
        let mut builder = EventBuilder::new();
        let base = start + Duration::hours(hour as i64);
        for i in 0..per_hour {
            let at = base + Duration::milliseconds((i as i64 * 3_600_000) / per_hour as i64);
            let issue = rng.skewed(issues);
            let text = payload(&mut rng, issue, at);
            let ctx = NormalizeContext {
                received: at,
                client_ip: None,
                event_id: None,
            };
            let event = normalize_event(text.as_bytes(), &ctx)?;
            builder.append(&stored_event(&project, event));
        }
        let batch = builder.finish();
        let batches = std::slice::from_ref(&batch);
        let files = faultline_engine::store::parquet::write_partitions(&store, batches, 1).await?;
        manifest.files.extend(files);
        // Rollup rows are per hour, so an hour's rows can be computed alone and a day's written
        // together without holding a day of events.
        day_rollups.extend(rollup::compute(batches)?);
        if (hour + 1) % 24 == 0 || hour + 1 == hours {
            let rollup_files = rollup::write(&store, &day_rollups, 3).await?;
            let tags = tag_rollup::compute(&day_rollups)?;
            manifest
                .tag_rollups
                .extend(tag_rollup::write(&store, &tags, 3, &rollup_files).await?);
            manifest.rollups.extend(rollup_files);
            day_rollups.clear();
            eprintln!(
                "  wrote day {} of {days} ({:.0} s)",
                (hour + 1) / 24,
                started.elapsed().as_secs_f64()
            );
        }
    }
    manifest.version = 1;
    manifest.commit(&store).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use faultline_config::Config;
    use faultline_engine::query::ProjectFilter;

    #[tokio::test]
    async fn rollups_written_with_the_data_set_add_up_to_its_events() {
        let dir = tempfile::tempdir().unwrap();
        generate(&dir.path().join("objects"), 480, 20, 2, Utc::now())
            .await
            .unwrap();
        let mut config = Config::default();
        config.storage.data_dir = dir.path().to_owned();
        let service = faultline_engine::node::open_reader(&config).await.unwrap();
        let output = service
            .run(
                &ProjectFilter::All,
                "SELECT (SELECT count(*) FROM events) AS events, \
                 (SELECT sum(event_count) FROM issues) AS rolled_up, \
                 (SELECT count(*) FROM issues) AS issues",
            )
            .await
            .unwrap();
        let text = datafusion::arrow::util::pretty::pretty_format_batches(&output.batches)
            .unwrap()
            .to_string();
        let row = text.lines().nth(3).unwrap().replace(' ', "");
        let cells: Vec<u64> = row
            .trim_matches('|')
            .split('|')
            .map(|c| c.parse().unwrap())
            .collect();
        assert_eq!(cells[0], 480);
        assert_eq!(cells[1], 480);
        assert!(cells[2] > 1 && cells[2] <= 20, "{cells:?}");
    }
}
