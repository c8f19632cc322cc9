//! Prometheus metrics of the engine, served as text at `GET /metrics` (docs/operations.md lists
//! every metric with its type, labels and meaning).
//!
//! The metrics are process-wide, like the process they describe: the code that counts calls
//! one function of this module and needs no handle passed down to it. Gauges of state that
//! already exists elsewhere (buffer, unflushed WAL) are read when `/metrics` is scraped.
//! Object-store requests are counted by [`InstrumentedStore`], a wrapper around every store the
//! engine opens.

use std::fmt;
use std::ops::Range;
use std::sync::{Arc, LazyLock};
use std::time::Instant;

use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;
use futures::stream::BoxStream;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult, RenameOptions,
};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::query;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RequestLabels {
    endpoint: &'static str,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ItemLabels {
    item_type: &'static str,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ScopeLabels {
    scope: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OperationLabels {
    operation: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OperationOutcomeLabels {
    operation: &'static str,
    outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct QueryLabels {
    protocol: &'static str,
    outcome: &'static str,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

/// 1 ms to about 65 s.
fn latency_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.001, 2.0, 17))
}

/// 10 ms to about 11 minutes.
fn job_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.01, 2.0, 17))
}

struct Metrics {
    registry: Registry,
    ingest_requests: Family<RequestLabels, Counter>,
    ingest_items: Family<ItemLabels, Counter>,
    rate_limited: Family<ScopeLabels, Counter>,
    wal_commits: Counter,
    wal_bytes: Counter,
    wal_commit_failures: Counter,
    wal_unflushed: Gauge,
    flush_duration: Histogram,
    flushed_rows: Counter,
    compaction_duration: Histogram,
    buffer_rows: Gauge,
    buffer_bytes: Gauge,
    store_requests: Family<OperationOutcomeLabels, Counter>,
    store_duration: HistogramFamily<OperationLabels>,
    queries: Family<QueryLabels, Counter>,
    grouped_events: Gauge,
    grouping_seconds: Gauge<f64, std::sync::atomic::AtomicU64>,
    processed_events: Gauge,
    processing_seconds: Gauge<f64, std::sync::atomic::AtomicU64>,
}

impl Metrics {
    fn new() -> Self {
        let mut registry = Registry::with_prefix("faultline");
        let ingest_requests: Family<RequestLabels, Counter> = Family::default();
        registry.register(
            "ingest_requests",
            "Ingest requests by endpoint (envelope, store) and outcome",
            ingest_requests.clone(),
        );
        let ingest_items = Family::default();
        registry.register(
            "ingest_items",
            "Envelope items and store events by item type and outcome (accepted, duplicate, rate_limited, not_stored, invalid)",
            ingest_items.clone(),
        );
        let rate_limited: Family<ScopeLabels, Counter> = Family::default();
        registry.register(
            "ingest_rate_limited_events",
            "Events refused with 429 by a rate limit, by the limit's scope (project, key)",
            rate_limited.clone(),
        );
        let wal_commits = Counter::default();
        registry.register(
            "wal_commits",
            "Group commits written and fsynced to the write-ahead log",
            wal_commits.clone(),
        );
        let wal_bytes = Counter::default();
        registry.register(
            "wal_written_bytes",
            "Bytes written to the write-ahead log by successful commits",
            wal_bytes.clone(),
        );
        let wal_commit_failures = Counter::default();
        registry.register(
            "wal_commit_failures",
            "Write-ahead log commits that failed (their requests got 503)",
            wal_commit_failures.clone(),
        );
        let wal_unflushed = Gauge::default();
        registry.register(
            "wal_unflushed_bytes",
            "Bytes in the write-ahead log not yet in Parquet (ingest answers 503 above wal.max_unflushed)",
            wal_unflushed.clone(),
        );
        let flush_duration = job_histogram();
        registry.register(
            "flush_duration_seconds",
            "Time to write the buffer as Parquet and commit the manifest, per flush with rows",
            flush_duration.clone(),
        );
        let flushed_rows = Counter::default();
        registry.register(
            "flushed_rows",
            "Events written to Parquet by flushes",
            flushed_rows.clone(),
        );
        let compaction_duration = job_histogram();
        registry.register(
            "compaction_duration_seconds",
            "Time of one compaction run (every partition of every manifest)",
            compaction_duration.clone(),
        );
        let buffer_rows = Gauge::default();
        registry.register(
            "buffer_rows",
            "Events in memory not yet handed to a flush",
            buffer_rows.clone(),
        );
        let buffer_bytes = Gauge::default();
        registry.register(
            "buffer_bytes",
            "Approximate bytes of the events in memory not yet handed to a flush",
            buffer_bytes.clone(),
        );
        let store_requests = Family::default();
        registry.register(
            "object_store_requests",
            "Object store requests by operation and outcome (ok, not_found, already_exists, precondition, error)",
            store_requests.clone(),
        );
        let store_duration: HistogramFamily<OperationLabels> =
            Family::new_with_constructor(latency_histogram);
        registry.register(
            "object_store_request_duration_seconds",
            "Object store request latency by operation (for get: until the response headers)",
            store_duration.clone(),
        );
        let queries: Family<QueryLabels, Counter> = Family::default();
        registry.register(
            "queries",
            "SQL queries by protocol (http, postgres, flight) and outcome (ok, invalid, timeout, limit, error)",
            queries.clone(),
        );
        let grouped_events = Gauge::default();
        registry.register(
            "grouped_events",
            "Events grouped by this process (normalization and per-project rules)",
            grouped_events.clone(),
        );
        let grouping_seconds = Gauge::<f64, std::sync::atomic::AtomicU64>::default();
        registry.register(
            "grouping_seconds",
            "Time spent grouping events in this process; divided by faultline_grouped_events it is the grouping cost per event",
            grouping_seconds.clone(),
        );
        let processed_events = Gauge::default();
        registry.register(
            "processed_events",
            "Events scrubbed and enriched (User-Agent, _meta) by this process",
            processed_events.clone(),
        );
        let processing_seconds = Gauge::<f64, std::sync::atomic::AtomicU64>::default();
        registry.register(
            "processing_seconds",
            "Time spent scrubbing and enriching events in this process; divided by faultline_processed_events it is the cost per event",
            processing_seconds.clone(),
        );
        // Series that alerts and dashboards divide by exist from the start, at 0, rather than
        // appearing with the first event (a family without series is not written at all).
        for scope in ["project", "key"] {
            rate_limited.get_or_create(&ScopeLabels { scope }).inc_by(0);
        }
        for endpoint in ["envelope", "store"] {
            for outcome in ["accepted", "rate_limited", "unavailable"] {
                ingest_requests
                    .get_or_create(&RequestLabels { endpoint, outcome })
                    .inc_by(0);
            }
        }
        for protocol in ["http", "postgres", "flight"] {
            for outcome in ["ok", "error"] {
                queries
                    .get_or_create(&QueryLabels { protocol, outcome })
                    .inc_by(0);
            }
        }
        Self {
            registry,
            ingest_requests,
            ingest_items,
            rate_limited,
            wal_commits,
            wal_bytes,
            wal_commit_failures,
            wal_unflushed,
            flush_duration,
            flushed_rows,
            compaction_duration,
            buffer_rows,
            buffer_bytes,
            store_requests,
            store_duration,
            queries,
            grouped_events,
            grouping_seconds,
            processed_events,
            processing_seconds,
        }
    }
}

static METRICS: LazyLock<Metrics> = LazyLock::new(Metrics::new);

/// What the server knows at scrape time.
#[derive(Debug, Clone, Copy, Default)]
pub struct Levels {
    pub buffer_rows: usize,
    pub buffer_bytes: usize,
    pub wal_unflushed_bytes: u64,
}

fn gauge(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

/// Every metric in the Prometheus text format, with the gauges set from `levels`.
pub fn render(levels: Levels) -> String {
    // One scrape at a time, so the gauges encoded are the ones this scrape set.
    static RENDERING: parking_lot::Mutex<()> = parking_lot::Mutex::new(());
    let _one = RENDERING.lock();
    encode(&METRICS, levels)
}

fn encode(m: &Metrics, levels: Levels) -> String {
    m.buffer_rows.set(gauge(levels.buffer_rows as u64));
    m.buffer_bytes.set(gauge(levels.buffer_bytes as u64));
    m.wal_unflushed.set(gauge(levels.wal_unflushed_bytes));
    let cost = faultline_protocol::grouping::cost();
    m.grouped_events.set(gauge(cost.events));
    m.grouping_seconds.set(cost.nanos as f64 / 1e9);
    let processing = faultline_protocol::normalize::processing_cost();
    m.processed_events.set(gauge(processing.events));
    m.processing_seconds.set(processing.nanos as f64 / 1e9);
    let mut out = String::new();
    prometheus_client::encoding::text::encode(&mut out, &m.registry)
        .expect("writing to a String cannot fail");
    out
}

/// The content type of [`render`]'s output.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// One ingest request answered with `outcome` (see [`ingest_outcome`]).
pub fn ingest_request(endpoint: &'static str, outcome: &'static str) {
    METRICS
        .ingest_requests
        .get_or_create(&RequestLabels { endpoint, outcome })
        .inc();
}

/// The outcome label of an ingest answer with HTTP status `status`.
pub fn ingest_outcome(status: u16) -> &'static str {
    match status {
        200..=299 => "accepted",
        400 => "invalid",
        401 | 403 => "unauthorized",
        404 => "not_found",
        413 => "too_large",
        429 => "rate_limited",
        503 => "unavailable",
        _ => "error",
    }
}

/// `count` items of `item_type` ended with `outcome`.
pub fn ingest_items(
    item_type: &faultline_protocol::envelope::ItemType,
    outcome: &'static str,
    count: u64,
) {
    let item_type = item_type_name(item_type);
    METRICS
        .ingest_items
        .get_or_create(&ItemLabels { item_type, outcome })
        .inc_by(count);
}

fn item_type_name(item_type: &faultline_protocol::envelope::ItemType) -> &'static str {
    use faultline_protocol::envelope::ItemType as T;
    match item_type {
        T::Event => "event",
        T::Transaction => "transaction",
        T::Attachment => "attachment",
        T::Session => "session",
        T::Sessions => "sessions",
        T::ClientReport => "client_report",
        T::CheckIn => "check_in",
        T::Log => "log",
        T::Span => "span",
        T::Profile => "profile",
        T::ReplayEvent => "replay_event",
        T::ReplayRecording => "replay_recording",
        T::UserReport => "user_report",
        T::Feedback => "feedback",
        T::Security => "security",
        T::FormData => "form_data",
        T::RawSecurity => "raw_security",
        T::Other(_) => "other",
    }
}

/// `events` refused by a project's (`per_key` false) or a key's rate limit.
pub fn events_rate_limited(events: u64, per_key: bool) {
    let scope = if per_key { "key" } else { "project" };
    METRICS
        .rate_limited
        .get_or_create(&ScopeLabels { scope })
        .inc_by(events);
    METRICS
        .ingest_items
        .get_or_create(&ItemLabels {
            item_type: "event",
            outcome: "rate_limited",
        })
        .inc_by(events);
}

/// A WAL group commit of `bytes` ended (`ok` false: the write or fsync failed).
pub fn wal_commit(bytes: usize, ok: bool) {
    if ok {
        METRICS.wal_commits.inc();
        METRICS.wal_bytes.inc_by(bytes as u64);
    } else {
        METRICS.wal_commit_failures.inc();
    }
}

/// A flush of `rows` events that started at `started` is durable.
pub fn flushed(rows: usize, started: Instant) {
    METRICS
        .flush_duration
        .observe(started.elapsed().as_secs_f64());
    METRICS.flushed_rows.inc_by(rows as u64);
}

/// A compaction run that started at `started` ended.
pub fn compacted(started: Instant) {
    METRICS
        .compaction_duration
        .observe(started.elapsed().as_secs_f64());
}

/// A query over `protocol` ended with `result`.
pub fn record_query<T>(protocol: &'static str, result: &query::Result<T>) {
    match result {
        Ok(_) => query_outcome(protocol, "ok"),
        Err(err) => query_failed(protocol, err),
    }
}

/// A query over `protocol` failed with `err`.
pub fn query_failed(protocol: &'static str, err: &query::Error) {
    let outcome = match err {
        query::Error::Timeout(_) => "timeout",
        query::Error::Memory { .. } | query::Error::TooManyRows(_) => "limit",
        e if e.is_user_error() => "invalid",
        _ => "error",
    };
    query_outcome(protocol, outcome);
}

fn query_outcome(protocol: &'static str, outcome: &'static str) {
    METRICS
        .queries
        .get_or_create(&QueryLabels { protocol, outcome })
        .inc();
}

fn store_outcome<T>(result: &object_store::Result<T>) -> &'static str {
    match result {
        Ok(_) => "ok",
        Err(object_store::Error::NotFound { .. }) => "not_found",
        Err(object_store::Error::AlreadyExists { .. }) => "already_exists",
        Err(object_store::Error::Precondition { .. }) => "precondition",
        Err(_) => "error",
    }
}

fn store_request<T>(
    metrics: &Metrics,
    operation: &'static str,
    started: Instant,
    result: object_store::Result<T>,
) -> object_store::Result<T> {
    metrics
        .store_duration
        .get_or_create(&OperationLabels { operation })
        .observe(started.elapsed().as_secs_f64());
    let outcome = store_outcome(&result);
    metrics
        .store_requests
        .get_or_create(&OperationOutcomeLabels { operation, outcome })
        .inc();
    result
}

/// Counts the outcome of each item of a listing or deletion stream.
fn counted<T: Send + 'static>(
    metrics: &'static Metrics,
    operation: &'static str,
    stream: BoxStream<'static, object_store::Result<T>>,
) -> BoxStream<'static, object_store::Result<T>> {
    stream
        .inspect(move |item| {
            let outcome = store_outcome(item);
            metrics
                .store_requests
                .get_or_create(&OperationOutcomeLabels { operation, outcome })
                .inc();
        })
        .boxed()
}

/// Wraps a store so its requests are counted and timed.
pub fn instrument(inner: Arc<dyn ObjectStore>) -> Arc<dyn ObjectStore> {
    Arc::new(InstrumentedStore {
        inner,
        metrics: &METRICS,
    })
}

/// An object store that counts and times every request of the store it wraps.
pub struct InstrumentedStore {
    inner: Arc<dyn ObjectStore>,
    /// The process-wide set, except in tests that count on their own.
    metrics: &'static Metrics,
}

impl fmt::Debug for InstrumentedStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("InstrumentedStore")
            .field("inner", &self.inner)
            .finish_non_exhaustive()
    }
}

impl fmt::Display for InstrumentedStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.inner, f)
    }
}

#[async_trait]
impl ObjectStore for InstrumentedStore {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> object_store::Result<PutResult> {
        let started = Instant::now();
        let result = self.inner.put_opts(location, payload, opts).await;
        store_request(self.metrics, "put", started, result)
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> object_store::Result<Box<dyn MultipartUpload>> {
        let started = Instant::now();
        let result = self.inner.put_multipart_opts(location, opts).await;
        store_request(self.metrics, "put_multipart", started, result)
    }

    async fn get_opts(
        &self,
        location: &Path,
        options: GetOptions,
    ) -> object_store::Result<GetResult> {
        let started = Instant::now();
        let operation = if options.head { "head" } else { "get" };
        let result = self.inner.get_opts(location, options).await;
        store_request(self.metrics, operation, started, result)
    }

    async fn get_ranges(
        &self,
        location: &Path,
        ranges: &[Range<u64>],
    ) -> object_store::Result<Vec<Bytes>> {
        let started = Instant::now();
        let result = self.inner.get_ranges(location, ranges).await;
        store_request(self.metrics, "get_ranges", started, result)
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, object_store::Result<Path>>,
    ) -> BoxStream<'static, object_store::Result<Path>> {
        counted(self.metrics, "delete", self.inner.delete_stream(locations))
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        counted(self.metrics, "list", self.inner.list(prefix))
    }

    fn list_with_offset(
        &self,
        prefix: Option<&Path>,
        offset: &Path,
    ) -> BoxStream<'static, object_store::Result<ObjectMeta>> {
        counted(
            self.metrics,
            "list",
            self.inner.list_with_offset(prefix, offset),
        )
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> object_store::Result<ListResult> {
        let started = Instant::now();
        let result = self.inner.list_with_delimiter(prefix).await;
        store_request(self.metrics, "list_with_delimiter", started, result)
    }

    async fn copy_opts(
        &self,
        from: &Path,
        to: &Path,
        options: CopyOptions,
    ) -> object_store::Result<()> {
        let started = Instant::now();
        let result = self.inner.copy_opts(from, to, options).await;
        store_request(self.metrics, "copy", started, result)
    }

    async fn rename_opts(
        &self,
        from: &Path,
        to: &Path,
        options: RenameOptions,
    ) -> object_store::Result<()> {
        let started = Instant::now();
        let result = self.inner.rename_opts(from, to, options).await;
        store_request(self.metrics, "rename", started, result)
    }
}

#[cfg(test)]
mod tests {
    use object_store::memory::InMemory;
    use object_store::{ObjectStoreExt, PutPayload};

    use super::*;

    fn value(text: &str, line_start: &str) -> f64 {
        text.lines()
            .find(|l| l.starts_with(line_start))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0.0)
    }

    #[tokio::test]
    async fn object_store_requests_are_counted_by_outcome() {
        // Its own set of metrics: other tests in this process use instrumented stores too.
        let metrics: &'static Metrics = Box::leak(Box::new(Metrics::new()));
        let store = InstrumentedStore {
            inner: Arc::new(InMemory::new()),
            metrics,
        };
        let ok = "faultline_object_store_requests_total{operation=\"put\",outcome=\"ok\"}";
        let missing =
            "faultline_object_store_requests_total{operation=\"get\",outcome=\"not_found\"}";
        let before = encode(metrics, Levels::default());
        store
            .put(&Path::from("a/b"), PutPayload::from_static(b"x"))
            .await
            .unwrap();
        assert!(store.get(&Path::from("a/none")).await.is_err());
        let after = encode(metrics, Levels::default());
        assert_eq!(value(&after, ok) - value(&before, ok), 1.0, "{after}");
        assert_eq!(value(&after, missing) - value(&before, missing), 1.0);
        assert!(after.contains("# TYPE faultline_object_store_request_duration_seconds histogram"));
    }

    #[test]
    fn families_are_written_before_their_first_event() {
        let text = render(Levels::default());
        for series in [
            "faultline_ingest_rate_limited_events_total{scope=\"key\"}",
            "faultline_ingest_requests_total{endpoint=\"store\",outcome=\"rate_limited\"}",
            "faultline_queries_total{protocol=\"flight\",outcome=\"error\"}",
            "faultline_compaction_duration_seconds_count",
        ] {
            assert!(text.contains(series), "{series} missing:\n{text}");
        }
    }

    #[test]
    fn levels_are_set_when_scraped() {
        let text = render(Levels {
            buffer_rows: 7,
            buffer_bytes: 700,
            wal_unflushed_bytes: 9,
        });
        assert!(text.contains("faultline_buffer_rows 7"), "{text}");
        assert!(text.contains("faultline_buffer_bytes 700"), "{text}");
        assert!(text.contains("faultline_wal_unflushed_bytes 9"), "{text}");
        assert!(text.ends_with("# EOF\n"), "{text}");
    }
}
