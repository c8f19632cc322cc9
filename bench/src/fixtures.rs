//! The captured envelopes and their renewal for replay.
//!
//! `bench/fixtures/` holds request bodies exactly as `sentry-sdk` sent them (see
//! `bench/capture/capture_envelopes.py`). A server drops duplicate event ids, so each replay gets a
//! new event id, a current `sent_at` and event `timestamp`, and the benchmark project's key; every
//! replacement has the same length as what it replaces, so item `length` headers stay right. The
//! body is then compressed again as the SDK does it (brotli quality 4, window 22).

use std::io::{Read, Write};
use std::path::Path;

use anyhow::{Context, Result, bail, ensure};
use bytes::Bytes;
use serde::Deserialize;

/// `fixtures.json`, written by the capture script.
#[derive(Debug, Deserialize)]
struct Manifest {
    sdk: String,
    dsn_key: String,
    fixtures: Vec<FixtureEntry>,
}

#[derive(Debug, Deserialize)]
struct FixtureEntry {
    file: String,
    headers: Vec<(String, String)>,
}

/// One captured request, decompressed, with the places a replay rewrites.
#[derive(Debug)]
pub(crate) struct Envelope {
    /// The uncompressed envelope.
    pub(crate) body: Vec<u8>,
    /// The compressed body as captured.
    pub(crate) wire: Vec<u8>,
    headers: Vec<(String, String)>,
    id_at: Vec<usize>,
    key_at: Vec<usize>,
    timestamp_at: Vec<usize>,
}

/// Every captured envelope.
#[derive(Debug)]
pub(crate) struct Captured {
    pub(crate) sdk: String,
    key: String,
    pub(crate) envelopes: Vec<Envelope>,
}

/// One request ready to send.
#[derive(Debug, Clone)]
pub(crate) struct Request {
    pub(crate) event_id: String,
    pub(crate) headers: Vec<(String, String)>,
    pub(crate) body: Bytes,
}

const BROTLI_QUALITY: u32 = 4;
const BROTLI_WINDOW: u32 = 22;
/// `2026-11-24T13:03:42.354044Z`, as the Python SDK formats `sent_at` and `timestamp`.
const TIMESTAMP_FORMAT: &str = "%Y-%m-%dT%H:%M:%S%.6fZ";

impl Captured {
    pub(crate) fn load(dir: &Path) -> Result<Self> {
        let manifest_path = dir.join("fixtures.json");
        let manifest: Manifest = serde_json::from_slice(
            &std::fs::read(&manifest_path)
                .with_context(|| format!("read {}", manifest_path.display()))?,
        )
        .with_context(|| format!("parse {}", manifest_path.display()))?;
        let mut envelopes = Vec::new();
        for entry in &manifest.fixtures {
            let wire = std::fs::read(dir.join(&entry.file))
                .with_context(|| format!("read {}", entry.file))?;
            let envelope = Envelope::parse(wire, entry.headers.clone(), &manifest.dsn_key)
                .with_context(|| format!("fixture {}", entry.file))?;
            envelopes.push(envelope);
        }
        ensure!(!envelopes.is_empty(), "no fixtures in {}", dir.display());
        Ok(Self {
            sdk: manifest.sdk,
            key: manifest.dsn_key,
            envelopes,
        })
    }

    pub(crate) fn mean_uncompressed(&self) -> f64 {
        self.envelopes
            .iter()
            .map(|e| e.body.len() as f64)
            .sum::<f64>()
            / self.envelopes.len() as f64
    }

    pub(crate) fn mean_wire(&self) -> f64 {
        self.envelopes
            .iter()
            .map(|e| e.wire.len() as f64)
            .sum::<f64>()
            / self.envelopes.len() as f64
    }

    /// `count` requests cycling through the fixtures, each with a fresh event id, the current time
    /// and `key`, compressed on all cores.
    pub(crate) fn renew(&self, count: usize, key: &str) -> Vec<Request> {
        assert_eq!(key.len(), self.key.len(), "DSN keys are 32 hex digits");
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
        let chunk = count.div_ceil(threads).max(1);
        let starts: Vec<usize> = (0..count).step_by(chunk).collect();
        std::thread::scope(|scope| {
            let handles: Vec<_> = starts
                .iter()
                .map(|&start| {
                    scope.spawn(move || {
                        (start..(start + chunk).min(count))
                            .map(|i| self.envelopes[i % self.envelopes.len()].renew(&self.key, key))
                            .collect::<Vec<_>>()
                    })
                })
                .collect();
            handles
                .into_iter()
                .flat_map(|h| h.join().expect("renew thread"))
                .collect()
        })
    }
}

impl Envelope {
    fn parse(wire: Vec<u8>, headers: Vec<(String, String)>, key: &str) -> Result<Self> {
        let encoding = headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("content-encoding"))
            .map(|(_, v)| v.as_str());
        ensure!(
            encoding == Some("br"),
            "fixtures must be brotli-compressed as the SDK sends them, got {encoding:?}"
        );
        let mut body = Vec::new();
        brotli::Decompressor::new(wire.as_slice(), 4096)
            .read_to_end(&mut body)
            .context("brotli")?;

        let header_end = body
            .iter()
            .position(|&b| b == b'\n')
            .context("envelope header line")?;
        let header: serde_json::Value = serde_json::from_slice(&body[..header_end])?;
        let event_id = header["event_id"]
            .as_str()
            .context("envelope header event_id")?
            .to_owned();
        let sent_at = header["sent_at"]
            .as_str()
            .context("envelope header sent_at")?
            .to_owned();
        let item_header_end = header_end
            + 1
            + body[header_end + 1..]
                .iter()
                .position(|&b| b == b'\n')
                .context("item header")?;
        let payload = &body[item_header_end + 1..];
        let payload = payload.strip_suffix(b"\n").unwrap_or(payload);
        let event: serde_json::Value = serde_json::from_slice(payload).context("event payload")?;
        let timestamp = event["timestamp"]
            .as_str()
            .context("event timestamp")?
            .to_owned();
        for stamp in [&sent_at, &timestamp] {
            let now = chrono::Utc::now().format(TIMESTAMP_FORMAT).to_string();
            ensure!(
                stamp.len() == now.len(),
                "timestamp {stamp} is not in the SDK's format"
            );
        }

        let id_at = find_all(&body, event_id.as_bytes());
        let key_at = find_all(&body, key.as_bytes());
        let mut timestamp_at = find_all(&body, format!("\"{sent_at}\"").as_bytes());
        timestamp_at.extend(
            find_all(&body, format!("\"timestamp\":\"{timestamp}\"").as_bytes())
                .iter()
                .map(|at| at + "\"timestamp\":".len()),
        );
        ensure!(
            id_at.len() >= 2,
            "event id {event_id} found {} times",
            id_at.len()
        );
        if timestamp_at.len() < 2 {
            bail!("sent_at and timestamp not found");
        }
        let headers = headers
            .into_iter()
            .filter(|(k, _)| !k.eq_ignore_ascii_case("content-length"))
            .collect();
        Ok(Self {
            body,
            wire,
            headers,
            id_at,
            key_at,
            timestamp_at,
        })
    }

    fn renew(&self, old_key: &str, key: &str) -> Request {
        let mut body = self.body.clone();
        let id = uuid::Uuid::new_v4().simple().to_string();
        for &at in &self.id_at {
            body[at..at + id.len()].copy_from_slice(id.as_bytes());
        }
        for &at in &self.key_at {
            body[at..at + key.len()].copy_from_slice(key.as_bytes());
        }
        let now = format!("\"{}\"", chrono::Utc::now().format(TIMESTAMP_FORMAT));
        for &at in &self.timestamp_at {
            body[at..at + now.len()].copy_from_slice(now.as_bytes());
        }
        let mut compressed = Vec::with_capacity(self.wire.len() + 256);
        {
            let mut writer =
                brotli::CompressorWriter::new(&mut compressed, 4096, BROTLI_QUALITY, BROTLI_WINDOW);
            writer.write_all(&body).expect("compress into memory");
        }
        let headers = self
            .headers
            .iter()
            .map(|(k, v)| (k.clone(), v.replace(old_key, key)))
            .collect();
        Request {
            event_id: id,
            headers,
            body: Bytes::from(compressed),
        }
    }
}

fn find_all(haystack: &[u8], needle: &[u8]) -> Vec<usize> {
    haystack
        .windows(needle.len())
        .enumerate()
        .filter(|(_, w)| *w == needle)
        .map(|(i, _)| i)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn captured() -> Captured {
        Captured::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures"))
            .expect("fixtures load")
    }

    fn decompress(body: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        brotli::Decompressor::new(body, 4096)
            .read_to_end(&mut out)
            .expect("valid brotli");
        out
    }

    /// Splits an envelope into (header, item header, payload) as a server would.
    fn split(envelope: &[u8]) -> (serde_json::Value, serde_json::Value, serde_json::Value) {
        let mut lines = envelope.splitn(3, |&b| b == b'\n');
        let header = serde_json::from_slice(lines.next().unwrap()).unwrap();
        let item: serde_json::Value = serde_json::from_slice(lines.next().unwrap()).unwrap();
        let rest = lines.next().unwrap();
        let length = item["length"].as_u64().expect("item length") as usize;
        let payload =
            serde_json::from_slice(&rest[..length]).expect("payload is exactly `length` bytes");
        (header, item, payload)
    }

    #[test]
    fn fixtures_are_what_the_benchmark_promises() {
        let captured = captured();
        assert_eq!(captured.envelopes.len(), 50);
        let mut types = std::collections::BTreeSet::new();
        for envelope in &captured.envelopes {
            let (_, item, event) = split(&envelope.body);
            assert_eq!(item["type"], "event");
            let exception = event["exception"]["values"]
                .as_array()
                .unwrap()
                .last()
                .unwrap()
                .clone();
            let frames = exception["stacktrace"]["frames"].as_array().unwrap();
            assert!(frames.len() >= 15, "15 frames deep, got {}", frames.len());
            assert!(
                frames
                    .iter()
                    .all(|f| f.get("context_line").is_some() && f.get("vars").is_some())
            );
            assert_eq!(event["breadcrumbs"]["values"].as_array().unwrap().len(), 10);
            assert_eq!(event["tags"].as_object().unwrap().len(), 5);
            assert!(event["user"]["id"].is_string() && event["release"].is_string());
            types.insert(exception["type"].as_str().unwrap().to_owned());
        }
        assert_eq!(types.len(), 50, "50 distinct issues");
        let mean = captured.mean_uncompressed();
        assert!(
            (12_500.0..=15_000.0).contains(&mean),
            "about 13-14 KB uncompressed, got {mean}"
        );
    }

    #[test]
    fn renewed_requests_are_valid_envelopes_with_new_ids() {
        let captured = captured();
        let key = "fedcba9876543210fedcba9876543210";
        let requests = captured.renew(120, key);
        assert_eq!(requests.len(), 120);
        let mut ids = std::collections::BTreeSet::new();
        for (i, request) in requests.iter().enumerate() {
            let original = &captured.envelopes[i % captured.envelopes.len()];
            let body = decompress(&request.body);
            assert_eq!(body.len(), original.body.len());
            let (header, _, event) = split(&body);
            let id = header["event_id"].as_str().unwrap();
            assert_eq!(event["event_id"], id);
            assert!(ids.insert(id.to_owned()), "event ids are unique");
            assert_eq!(header["trace"]["public_key"], key);
            let sent =
                chrono::DateTime::parse_from_rfc3339(header["sent_at"].as_str().unwrap()).unwrap();
            let stamp =
                chrono::DateTime::parse_from_rfc3339(event["timestamp"].as_str().unwrap()).unwrap();
            assert!((chrono::Utc::now() - sent.to_utc()).num_seconds().abs() < 600);
            assert!((chrono::Utc::now() - stamp.to_utc()).num_seconds().abs() < 600);
            let auth = request
                .headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case("x-sentry-auth"))
                .unwrap();
            assert!(auth.1.contains(&format!("sentry_key={key}")), "{auth:?}");
            assert!(
                !request
                    .headers
                    .iter()
                    .any(|(k, _)| k.eq_ignore_ascii_case("content-length"))
            );
            // Everything else is byte for byte what the SDK sent.
            let (_, _, original_event) = split(&original.body);
            assert_eq!(event["exception"], original_event["exception"]);
            assert_eq!(event["breadcrumbs"], original_event["breadcrumbs"]);
        }
    }
}
