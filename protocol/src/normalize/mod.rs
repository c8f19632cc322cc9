//! Event normalization: from an SDK payload to an [`Event`], following Relay's rules.
//!
//! The payload is parsed once into a `serde_json::Value`, fixed up in place, and serialized
//! once into [`Event::json`]; the columns are read from the fixed-up value. What is done:
//!
//! - `event_id`: any UUID spelling (dashed, undashed, upper case), stored as 32 lowercase hex;
//!   missing or invalid: the envelope header's id, else a new random one.
//! - `timestamp`: float seconds or ISO 8601; missing or invalid: `received`. As in Relay,
//!   timestamps more than 30 days in the past or 60 seconds in the future are replaced by
//!   `received` and the original is recorded in `errors`.
//! - Legacy `sentry.interfaces.*` keys and the `message` alias are renamed to their current
//!   names; `logentry` is formatted (see [`logentry`]).
//! - `exception`, `threads`, `breadcrumbs` accept `{"values": [..]}`, bare lists and single
//!   objects, and are stored as `{"values": [..]}`. A lone exception without a stack trace
//!   takes the top-level `stacktrace`.
//! - `level` (default `error`), `platform` (default `other`), tags (sorted list of pairs,
//!   keys and values as Relay accepts them; an `environment` tag fills a missing environment),
//!   user (`{{auto}}` IP), contexts (non-objects dropped), request, sdk, fingerprint.
//! - Unknown top-level attributes are removed and recorded in `errors`, as Relay does.
//! - At ingest, after scrubbing: Relay's limits on data bags and stack traces ([`trim`]).
//!
//! Only payloads that are not JSON objects, or that nest deeper than
//! [`crate::depth::MAX_JSON_DEPTH`] (before or after normalization), are rejected. Normalizing [`Event::json`] again
//! (with the same `received`) gives an equal [`Event`].

mod enrich;
mod extract;
mod interfaces;
pub(crate) mod level;
pub mod logentry;
mod parse;
pub(crate) mod time;
mod trim;

pub use time::parse as parse_timestamp;

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};

use chrono::{DateTime, Duration, Utc};
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::depth::{DepthError, MAX_JSON_DEPTH, check_depth};
use crate::scrub::{Meta, Scrubber};
use crate::{ErrorKind, Event};

/// What the server knows about the request an event came in.
#[derive(Debug, Clone)]
pub struct NormalizeContext {
    /// When the request was received; the timestamp of events that carry none. Kept with
    /// millisecond precision.
    pub received: DateTime<Utc>,
    /// The client's address, for `user.ip_address: "{{auto}}"`.
    pub client_ip: Option<IpAddr>,
    /// The envelope header's event id, used when the event has none.
    pub event_id: Option<Uuid>,
}

#[derive(Debug, thiserror::Error)]
pub enum NormalizeError {
    #[error("event payload is not valid JSON at line {line} column {column}: {source}")]
    Json {
        line: usize,
        column: usize,
        #[source]
        source: serde_json::Error,
    },
    #[error("event payload is a JSON {found}, expected an object")]
    NotObject { found: &'static str },
    #[error("event payload {0}")]
    TooDeep(#[source] crate::depth::DepthError),
    #[error(
        "event payload nests deeper than max_json_depth of {limit} levels once normalized \
         (lone exceptions and stack traces gain a level or more): send less deeply nested data"
    )]
    TooDeepNormalized { limit: usize },
}

pub type Result<T, E = NormalizeError> = std::result::Result<T, E>;

impl NormalizeError {
    /// Always a bad request (HTTP 400).
    pub fn kind(&self) -> ErrorKind {
        ErrorKind::BadRequest
    }

    pub fn is_too_large(&self) -> bool {
        false
    }
}

/// Longest log message and exception value kept, in characters (Relay's `message` limit).
pub(crate) const MAX_MESSAGE_CHARS: usize = 8192;

/// Longest transaction name kept, in characters (Relay's `culprit` limit).
const MAX_TRANSACTION_CHARS: usize = 200;

/// Cuts `text` to at most `max` characters, ending in `...` when cut.
pub(crate) fn truncate_string(text: &mut String, max: usize) {
    if text.len() <= max {
        return;
    }
    if let Some((cut, _)) = text.char_indices().nth(max.saturating_sub(3))
        && text[cut..].chars().count() > 3
    {
        text.truncate(cut);
        text.push_str("...");
    }
}

/// How far in the past a timestamp may be before it is replaced (Relay's default).
const MAX_SECS_IN_PAST: i64 = 30 * 24 * 3600;
/// How far in the future a timestamp may be before it is replaced (Relay's default).
const MAX_SECS_IN_FUTURE: i64 = 60;

/// The platforms Relay accepts; others become `other`.
const VALID_PLATFORMS: &[&str] = &[
    "as3",
    "c",
    "cfml",
    "cocoa",
    "csharp",
    "elixir",
    "go",
    "groovy",
    "haskell",
    "java",
    "javascript",
    "native",
    "node",
    "objc",
    "other",
    "perl",
    "php",
    "python",
    "ruby",
];

/// Legacy interface names and what they are called now. The first key present wins.
const ALIASES: &[(&str, &[&str])] = &[
    ("exception", &["sentry.interfaces.Exception"]),
    ("logentry", &["sentry.interfaces.Message", "message"]),
    ("user", &["sentry.interfaces.User"]),
    ("request", &["sentry.interfaces.Http"]),
    ("breadcrumbs", &["sentry.interfaces.Breadcrumbs"]),
    ("stacktrace", &["sentry.interfaces.Stacktrace"]),
    ("template", &["sentry.interfaces.Template"]),
    ("debug_meta", &["sentry.interfaces.DebugMeta"]),
    ("threads", &["sentry.interfaces.Threads"]),
    ("csp", &["sentry.interfaces.Csp"]),
    ("hpkp", &["sentry.interfaces.Hpkp"]),
    ("expectct", &["sentry.interfaces.ExpectCT"]),
    ("expectstaple", &["sentry.interfaces.ExpectStaple"]),
];

/// Top-level attributes of Relay's event schema that are kept.
const KNOWN: &[&str] = &[
    "event_id",
    "level",
    "version",
    "type",
    "fingerprint",
    "culprit",
    "transaction",
    "transaction_info",
    "time_spent",
    "logentry",
    "logger",
    "modules",
    "platform",
    "timestamp",
    "start_timestamp",
    "received",
    "server_name",
    "release",
    "dist",
    "environment",
    "site",
    "user",
    "request",
    "contexts",
    "breadcrumbs",
    "exception",
    "stacktrace",
    "template",
    "threads",
    "tags",
    "extra",
    "debug_meta",
    "sdk",
    "errors",
    "checksum",
    "csp",
    "hpkp",
    "expectct",
    "expectstaple",
    "spans",
    "measurements",
    "breakdowns",
];

/// Attributes only Sentry's servers set; dropped silently when an SDK sends them.
const SERVER_ONLY: &[&str] = &[
    "_meta",
    "_metrics",
    "_metrics_summary",
    "_dsc",
    "project",
    "key_id",
    "grouping_config",
    "ingest_path",
    "scraping_attempts",
];

/// What ingest does to an event besides normalizing it (see [`process_event`]).
#[derive(Debug, Clone, Copy, Default)]
pub struct Processing<'a> {
    /// The project's compiled scrubbing rules; `None` scrubs nothing.
    pub scrubber: Option<&'a Scrubber>,
    /// When the SDK sent the envelope (its `sent_at` header), to correct the client's clock.
    pub sent_at: Option<DateTime<Utc>>,
}

static PROCESSED_EVENTS: AtomicU64 = AtomicU64::new(0);
static PROCESSING_NANOS: AtomicU64 = AtomicU64::new(0);

/// What the processing of [`process_event`] beyond normalization (User-Agent enrichment,
/// scrubbing, `_meta`) has cost this process so far: events and nanoseconds (read by the
/// engine's `/metrics`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ProcessingCost {
    pub events: u64,
    pub nanos: u64,
}

/// The processing cost so far.
pub fn processing_cost() -> ProcessingCost {
    ProcessingCost {
        events: PROCESSED_EVENTS.load(Ordering::Relaxed),
        nanos: PROCESSING_NANOS.load(Ordering::Relaxed),
    }
}

/// Smallest difference between the client's and the server's clocks that is corrected
/// (Relay's threshold): SDK timestamps are shifted by it.
const MIN_CLOCK_DRIFT_SECS: i64 = 55 * 60;

/// Normalizes an event payload (the JSON of an `event` item or a store request) and processes
/// it as ingest does before anything is written: clock drift corrected from `sent_at`; the
/// browser, OS and device derived from the `User-Agent` (and their tags); personal data
/// scrubbed; what was changed recorded in `_meta`.
pub fn process_event(
    payload: &[u8],
    ctx: &NormalizeContext,
    processing: &Processing<'_>,
) -> Result<Event> {
    normalize_with(payload, ctx, Mode::Ingest(processing))
}

/// Normalizes an event as stored (a WAL record): like [`normalize_event`], but the server's
/// `_meta` is kept.
pub fn normalize_stored(payload: &[u8], ctx: &NormalizeContext) -> Result<Event> {
    normalize_with(payload, ctx, Mode::Stored)
}

/// Normalizes an event payload (the JSON of an `event` item or a store request), without the
/// processing of [`process_event`]; an SDK's `_meta` is dropped.
pub fn normalize_event(payload: &[u8], ctx: &NormalizeContext) -> Result<Event> {
    normalize_with(payload, ctx, Mode::Plain)
}

#[derive(Clone, Copy)]
enum Mode<'p> {
    Plain,
    Ingest(&'p Processing<'p>),
    Stored,
}

fn normalize_with(payload: &[u8], ctx: &NormalizeContext, mode: Mode<'_>) -> Result<Event> {
    // a UTF-8 byte order mark, as some Windows clients write one, is no JSON
    let payload = payload.strip_prefix(b"\xef\xbb\xbf").unwrap_or(payload);
    // sonic-rs builds the same serde_json value as serde_json does, about a quarter faster,
    // and the parse stops past MAX_JSON_DEPTH: every step below recurses per level of nesting
    let value: Value = match parse::from_slice(payload, MAX_JSON_DEPTH) {
        Ok(value) => value,
        Err(parse::ParseError::TooDeep) => {
            return Err(NormalizeError::TooDeep(DepthError {
                limit: MAX_JSON_DEPTH,
            }));
        }
        // serde_json has the last word on what is invalid and names the position precisely;
        // its recursion is bounded by the scan first
        Err(parse::ParseError::Json) => {
            check_depth(payload, MAX_JSON_DEPTH).map_err(NormalizeError::TooDeep)?;
            serde_json::from_slice(payload).map_err(|source| NormalizeError::Json {
                line: source.line(),
                column: source.column(),
                source,
            })?
        }
    };
    let mut root = match value {
        Value::Object(root) => root,
        other => {
            return Err(NormalizeError::NotObject {
                found: json_kind(&other),
            });
        }
    };
    let received = time::truncate_millis(ctx.received);
    let kept_meta = match mode {
        Mode::Stored => root.remove("_meta").filter(Value::is_object),
        _ => None,
    };
    let drift = match mode {
        Mode::Ingest(p) => p
            .sent_at
            .map(|sent| received - time::truncate_millis(sent))
            .filter(|d| d.num_seconds().abs() >= MIN_CLOCK_DRIFT_SECS),
        _ => None,
    };
    let facts = normalize_root(&mut root, ctx, received, drift);
    if let Some(meta) = kept_meta {
        root.insert("_meta".into(), meta);
    }
    let mut scrubbed_by = Vec::new();
    if let Mode::Ingest(processing) = mode {
        let started = std::time::Instant::now();
        enrich::enrich(&mut root);
        let mut meta = Meta::default();
        record_limits(&root, &mut meta);
        if let Some(scrubber) = processing.scrubber {
            scrubber.scrub(&mut root, &mut meta);
            if !meta.is_empty() {
                scrubbed_by = meta.rules();
            }
        }
        // after scrubbing: a secret in a bag is removed by its key before the bag is cut
        trim::trim_event(&mut root, &mut meta);
        meta.write_into(&mut root);
        let nanos = u64::try_from(started.elapsed().as_nanos()).unwrap_or(u64::MAX);
        PROCESSED_EVENTS.fetch_add(1, Ordering::Relaxed);
        PROCESSING_NANOS.fetch_add(nanos, Ordering::Relaxed);
    }
    let mut event =
        extract::event(root, facts, received).ok_or(NormalizeError::TooDeepNormalized {
            limit: MAX_JSON_DEPTH,
        })?;
    event.scrubbed_by = scrubbed_by;
    Ok(event)
}

fn json_kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// What normalization established that extraction needs.
struct Facts {
    event_id: Uuid,
    timestamp: DateTime<Utc>,
    level: &'static str,
}

fn normalize_root(
    root: &mut Map<String, Value>,
    ctx: &NormalizeContext,
    received: DateTime<Utc>,
    drift: Option<Duration>,
) -> Facts {
    let mut errors: Vec<Value> = match root.remove("errors") {
        Some(Value::Array(errors)) => errors.into_iter().filter(Value::is_object).collect(),
        _ => Vec::new(),
    };
    for key in SERVER_ONLY {
        root.remove(*key);
    }
    rename_aliases(root);

    let event_id = match root.get("event_id").and_then(Value::as_str) {
        Some(id) => Uuid::try_parse(id.trim()).ok(),
        None => None,
    }
    .or(ctx.event_id)
    .unwrap_or_else(Uuid::new_v4);
    set_string(root, "event_id", event_id.simple().to_string());

    if let Some(drift) = drift {
        correct_clock_drift(root, drift, received, &mut errors);
    }
    let timestamp = normalize_timestamp(root, received, &mut errors);
    root.insert("received".into(), time::to_value(received));
    if let Some(start) = root.get("start_timestamp") {
        match time::parse(start) {
            Some(t) => {
                root.insert("start_timestamp".into(), time::to_value(t));
            }
            None => {
                root.remove("start_timestamp");
            }
        }
    }

    let level = root.get("level").and_then(level::parse).unwrap_or("error");
    set_string(root, "level", level.to_owned());
    let platform = match root.get("platform").and_then(Value::as_str) {
        Some(p) if VALID_PLATFORMS.contains(&p) => p.to_owned(),
        _ => "other".to_owned(),
    };
    set_string(root, "platform", platform);

    for key in [
        "release",
        "dist",
        "environment",
        "server_name",
        "transaction",
        "logger",
        "culprit",
        "site",
        "version",
        "checksum",
    ] {
        interfaces::keep_lenient_string(root, key);
    }
    // Relay's `culprit` limit for the transaction name
    if let Some(Value::String(transaction)) = root.get_mut("transaction") {
        truncate_string(transaction, MAX_TRANSACTION_CHARS);
    }
    for key in [
        "extra",
        "modules",
        "contexts",
        "debug_meta",
        "transaction_info",
        "template",
    ] {
        if root.get(key).is_some_and(|v| !v.is_object()) {
            root.remove(key);
            errors.push(invalid_data(key));
        }
    }

    normalize_logentry(root);
    normalize_exception_and_stacktrace(root);
    normalize_values(root, "threads", interfaces::normalize_threads);
    normalize_values(root, "breadcrumbs", interfaces::normalize_breadcrumbs);

    if let Some(tags) = root.remove("tags")
        && let Some(mut tags) = interfaces::normalize_tags(tags)
    {
        // As Relay: a tag `environment` (from old SDKs) is the environment when the event
        // names none, and never stays a tag.
        if let Value::Array(pairs) = &mut tags
            && let Some(at) = pairs.iter().position(|p| p[0] == "environment")
        {
            let pair = pairs.remove(at);
            if !root.contains_key("environment") {
                root.insert("environment".into(), pair[1].clone());
            }
        }
        if tags.as_array().is_some_and(|pairs| !pairs.is_empty()) {
            root.insert("tags".into(), tags);
        }
    }
    if let Some(fp) = root.get_mut("fingerprint")
        && !interfaces::normalize_fingerprint(fp)
    {
        root.remove("fingerprint");
    }

    let mut request_ip = None;
    match root.get_mut("request") {
        Some(Value::Object(request)) => request_ip = interfaces::normalize_request(request),
        Some(_) => {
            root.remove("request");
        }
        None => {}
    }
    normalize_user(root, ctx.client_ip, request_ip);
    if let Some(Value::Object(contexts)) = root.get_mut("contexts") {
        interfaces::normalize_contexts(contexts);
    }
    let sdk_ok = match root.get_mut("sdk") {
        Some(Value::Object(sdk)) => interfaces::normalize_sdk(sdk),
        Some(_) => false,
        None => true,
    };
    if !sdk_ok {
        root.remove("sdk");
    }

    let ty = if root.contains_key("exception") {
        "error"
    } else if root.get("type").and_then(Value::as_str) == Some("transaction") {
        "transaction"
    } else {
        "default"
    };
    set_string(root, "type", ty.to_owned());

    let unknown: Vec<String> = root
        .keys()
        .filter(|k| !KNOWN.contains(&k.as_str()))
        .cloned()
        .collect();
    for key in unknown {
        root.remove(&key);
        errors.push(serde_json::json!({"type": "invalid_attribute", "name": key}));
    }
    if !errors.is_empty() {
        root.insert("errors".into(), Value::Array(errors));
    }

    Facts {
        event_id,
        timestamp,
        level,
    }
}

/// Records in `_meta` the strings normalization cut to Relay's length limits (a `!limit`
/// remark on the `...` that ends them, as Relay writes it; the original length is not kept).
fn record_limits(root: &Map<String, Value>, meta: &mut Meta) {
    let mut check = |path: Vec<String>, value: Option<&Value>, max: usize| {
        if let Some(Value::String(text)) = value
            && text.ends_with("...")
            && text.chars().count() == max
        {
            meta.push(path, serde_json::json!(["!limit", "s", max - 3, max]), None);
        }
    };
    check(
        vec!["transaction".into()],
        root.get("transaction"),
        MAX_TRANSACTION_CHARS,
    );
    if let Some(Value::Object(entry)) = root.get("logentry") {
        for key in ["formatted", "message"] {
            check(
                vec!["logentry".into(), key.into()],
                entry.get(key),
                MAX_MESSAGE_CHARS,
            );
        }
    }
    if let Some(Value::Array(values)) = root.get("exception").and_then(|e| e.get("values")) {
        for (i, exception) in values.iter().enumerate() {
            check(
                vec![
                    "exception".into(),
                    "values".into(),
                    i.to_string(),
                    "value".into(),
                ],
                exception.get("value"),
                MAX_MESSAGE_CHARS,
            );
        }
    }
}

/// Shifts the SDK's timestamps by the difference between its clock and the server's, as Relay
/// does when they differ by more than [`MIN_CLOCK_DRIFT_SECS`], and says so in `errors`.
fn correct_clock_drift(
    root: &mut Map<String, Value>,
    drift: Duration,
    received: DateTime<Utc>,
    errors: &mut Vec<Value>,
) {
    let shift = |value: &mut Value| {
        if let Some(t) = time::parse(value)
            && let Some(moved) = t.checked_add_signed(drift)
        {
            *value = time::to_value(moved);
        }
    };
    for key in ["timestamp", "start_timestamp"] {
        if let Some(value) = root.get_mut(key) {
            shift(value);
        }
    }
    if let Some(crumbs) = root.get_mut("breadcrumbs") {
        let list = match crumbs {
            Value::Object(map) => map.get_mut("values"),
            other => Some(other),
        };
        match list {
            Some(Value::Array(items)) => {
                for crumb in items.iter_mut().filter_map(Value::as_object_mut) {
                    if let Some(ts) = crumb.get_mut("timestamp") {
                        shift(ts);
                    }
                }
            }
            Some(Value::Object(crumb)) => {
                if let Some(ts) = crumb.get_mut("timestamp") {
                    shift(ts);
                }
            }
            _ => {}
        }
    }
    errors.push(serde_json::json!({
        "type": "clock_drift",
        "name": "timestamp",
        "sdk_time": time::to_value(received - drift),
        "server_time": time::to_value(received),
    }));
}

fn invalid_data(name: &str) -> Value {
    serde_json::json!({"type": "invalid_data", "name": name})
}

/// Sets a string attribute, leaving it untouched (and unallocated) when already equal.
fn set_string(root: &mut Map<String, Value>, key: &str, value: String) {
    if root.get(key).and_then(Value::as_str) != Some(value.as_str()) {
        root.insert(key.to_owned(), Value::String(value));
    }
}

fn rename_aliases(root: &mut Map<String, Value>) {
    for (name, aliases) in ALIASES {
        for alias in *aliases {
            let Some(value) = root.remove(*alias) else {
                continue;
            };
            if root.contains_key(*name) {
                // Sentry: a raw `message` next to a logentry without text becomes its text
                if *name == "logentry" {
                    fill_logentry_text(root, value);
                }
            } else {
                root.insert((*name).to_owned(), value);
            }
        }
    }
}

fn fill_logentry_text(root: &mut Map<String, Value>, message: Value) {
    let Value::String(message) = message else {
        return;
    };
    if let Some(Value::Object(logentry)) = root.get_mut("logentry") {
        let has_text = ["formatted", "message"]
            .iter()
            .any(|k| logentry.get(*k).is_some_and(Value::is_string));
        if !has_text && !message.is_empty() {
            logentry.insert("formatted".into(), Value::String(message));
        }
    }
}

fn normalize_timestamp(
    root: &mut Map<String, Value>,
    received: DateTime<Utc>,
    errors: &mut Vec<Value>,
) -> DateTime<Utc> {
    let sent = root.get("timestamp");
    let parsed = sent.and_then(time::parse);
    let timestamp = match parsed {
        Some(t) if t < received - Duration::seconds(MAX_SECS_IN_PAST) => {
            errors.push(
                serde_json::json!({"type": "past_timestamp", "name": "timestamp", "value": sent}),
            );
            received
        }
        Some(t) if t > received + Duration::seconds(MAX_SECS_IN_FUTURE) => {
            errors.push(
                serde_json::json!({"type": "future_timestamp", "name": "timestamp", "value": sent}),
            );
            received
        }
        Some(t) => t,
        None => {
            if let Some(sent) = sent.filter(|v| !v.is_null()) {
                errors.push(
                    serde_json::json!({"type": "invalid_data", "name": "timestamp", "value": sent}),
                );
            }
            received
        }
    };
    let value = time::to_value(timestamp);
    if root.get("timestamp") != Some(&value) {
        root.insert("timestamp".into(), value);
    }
    timestamp
}

fn normalize_logentry(root: &mut Map<String, Value>) {
    if let Some(entry) = root.get_mut("logentry")
        && !logentry::normalize(entry)
    {
        root.remove("logentry");
    }
}

fn normalize_values(root: &mut Map<String, Value>, key: &str, f: fn(&mut Vec<Value>)) {
    let Some(value) = root.remove(key) else {
        return;
    };
    if let Some(mut items) = interfaces::take_values(value) {
        f(&mut items);
        if !items.is_empty() {
            root.insert(key.to_owned(), interfaces::values_object(items));
        }
    }
}

fn normalize_exception_and_stacktrace(root: &mut Map<String, Value>) {
    normalize_values(root, "exception", interfaces::normalize_exceptions);
    if let Some(st) = root.get_mut("stacktrace")
        && !interfaces::normalize_stacktrace(st)
    {
        root.remove("stacktrace");
    }
    // Relay: a single exception without its own stack trace takes the top-level one.
    if !root.contains_key("stacktrace") {
        return;
    }
    let Some(Value::Array(values)) = root.get("exception").and_then(|e| e.get("values")) else {
        return;
    };
    if values.len() != 1 || values[0].get("stacktrace").is_some() {
        return;
    }
    if let Some(stacktrace) = root.remove("stacktrace")
        && let Some(Value::Object(exc)) = root
            .get_mut("exception")
            .and_then(|e| e.get_mut("values"))
            .and_then(|v| v.get_mut(0))
    {
        exc.insert("stacktrace".into(), stacktrace);
    }
}

fn normalize_user(
    root: &mut Map<String, Value>,
    client_ip: Option<IpAddr>,
    request_ip: Option<IpAddr>,
) {
    match root.get_mut("user") {
        Some(Value::Object(user)) => interfaces::normalize_user(user, client_ip),
        Some(_) => {
            root.remove("user");
        }
        None => {}
    }
    // Relay: the request's REMOTE_ADDR, else (for browser and Apple SDKs, which never send
    // `{{auto}}`) the client address, when the user has no IP.
    let platform = root.get("platform").and_then(Value::as_str);
    let inferred = request_ip.or_else(|| {
        matches!(platform, Some("javascript" | "cocoa" | "objc"))
            .then_some(client_ip)
            .flatten()
    });
    if let Some(ip) = inferred {
        let user = root
            .entry("user")
            .or_insert_with(|| Value::Object(Map::new()));
        if let Value::Object(user) = user {
            user.entry("ip_address")
                .or_insert_with(|| Value::String(ip.to_string()));
        }
    }
    if root
        .get("user")
        .is_some_and(|u| u.as_object().is_some_and(Map::is_empty))
    {
        root.remove("user");
    }
}
