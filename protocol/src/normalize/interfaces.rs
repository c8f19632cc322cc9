//! Normalization of the event's interfaces: exceptions, stack traces, threads, breadcrumbs,
//! tags, user, contexts, request and SDK. Each function fixes a value in place and returns
//! whether it is still worth keeping; invalid parts are dropped, never fatal.

use std::net::IpAddr;

use serde_json::{Map, Value};

use super::{level, time};

/// A `Values<T>` interface (`exception`, `threads`, `breadcrumbs`) as a plain list: accepts
/// `{"values": [..]}`, a bare list, or a single object (legacy). `None` if it is none of these.
pub(super) fn take_values(value: Value) -> Option<Vec<Value>> {
    match value {
        Value::Array(items) => Some(items),
        Value::Object(mut map) => match map.remove("values") {
            Some(Value::Array(items)) => Some(items),
            Some(_) => None,
            None if map.is_empty() => Some(Vec::new()),
            None => Some(vec![Value::Object(map)]),
        },
        _ => None,
    }
}

/// Wraps items back into `{"values": [..]}`.
pub(super) fn values_object(items: Vec<Value>) -> Value {
    let mut map = Map::with_capacity(1);
    map.insert("values".into(), Value::Array(items));
    Value::Object(map)
}

/// Removes `key` unless it is a string; trims it and removes it if empty.
pub(super) fn keep_string(map: &mut Map<String, Value>, key: &str) {
    match map.get_mut(key) {
        None => {}
        Some(Value::String(s)) => {
            let trimmed = s.trim();
            if trimmed.is_empty() {
                map.remove(key);
            } else if trimmed.len() != s.len() {
                *s = trimmed.to_owned();
            }
        }
        Some(_) => {
            map.remove(key);
        }
    }
}

/// Like [`keep_string`], but numbers and booleans are turned into strings first.
pub(super) fn keep_lenient_string(map: &mut Map<String, Value>, key: &str) {
    if let Some(v) = map.get_mut(key)
        && let Some(s) = scalar_to_string(v)
    {
        *v = Value::String(s);
    }
    keep_string(map, key);
}

/// Strings of numbers and booleans as Relay's lenient strings make them (Python's `str()`):
/// `True`/`False`, integers as they are, other numbers truncated to an integer (`None` beyond
/// 2^53, for strings, which stay as they are, and for other values).
pub(super) fn scalar_to_string(value: &Value) -> Option<String> {
    match value {
        Value::Number(n) if n.is_i64() || n.is_u64() => Some(n.to_string()),
        Value::Number(n) => {
            let f = n.as_f64()?;
            (f.abs() < (1u64 << 53) as f64).then(|| f.trunc().to_string())
        }
        Value::Bool(true) => Some("True".to_owned()),
        Value::Bool(false) => Some("False".to_owned()),
        _ => None,
    }
}

fn keep_if(map: &mut Map<String, Value>, key: &str, valid: impl Fn(&Value) -> bool) {
    if map.get(key).is_some_and(|v| !valid(v)) {
        map.remove(key);
    }
}

fn keep_bool(map: &mut Map<String, Value>, key: &str) {
    keep_if(map, key, Value::is_boolean);
}

fn keep_object(map: &mut Map<String, Value>, key: &str) {
    keep_if(map, key, Value::is_object);
}

/// Exceptions: each must be an object with a `type` or a `value`. A missing type is parsed
/// from a value such as `"ZeroDivisionError: division by zero"`, as Relay does.
pub(super) fn normalize_exceptions(items: &mut Vec<Value>) {
    items.retain_mut(|item| {
        let Value::Object(exc) = item else {
            return false;
        };
        keep_string(exc, "type");
        if let Some(value) = exc.get_mut("value") {
            match value {
                Value::String(_) => {}
                Value::Null => {
                    exc.remove("value");
                }
                other => *other = Value::String(other.to_string()),
            }
        }
        match exc.get_mut("value") {
            Some(Value::String(v)) if v.is_empty() => {
                exc.remove("value");
            }
            Some(Value::String(v)) => super::truncate_string(v, super::MAX_MESSAGE_CHARS),
            _ => {}
        }
        if !exc.contains_key("type") {
            split_type_from_value(exc);
        }
        keep_string(exc, "module");
        keep_object(exc, "mechanism");
        for key in ["stacktrace", "raw_stacktrace"] {
            if let Some(st) = exc.get_mut(key)
                && !normalize_stacktrace(st)
            {
                exc.remove(key);
            }
        }
        exc.contains_key("type") || exc.contains_key("value")
    });
}

/// `"TypeError: x is undefined"` without a type becomes type `TypeError`, value
/// `x is undefined`; only when the part before `:` is one word and the value one line.
fn split_type_from_value(exc: &mut Map<String, Value>) {
    let Some(Value::String(value)) = exc.get("value") else {
        return;
    };
    let Some((ty, rest)) = value.split_once(':') else {
        return;
    };
    let is_word = !ty.is_empty() && ty.chars().all(|c| c.is_alphanumeric() || c == '_');
    if !is_word || value.contains('\n') {
        return;
    }
    let (ty, rest) = (ty.to_owned(), rest.trim().to_owned());
    exc.insert("type".into(), Value::String(ty));
    if rest.is_empty() {
        exc.remove("value");
    } else {
        exc.insert("value".into(), Value::String(rest));
    }
}

/// A stack trace: `frames` must be a non-empty list of objects.
pub(super) fn normalize_stacktrace(value: &mut Value) -> bool {
    let Value::Object(st) = value else {
        return false;
    };
    let Some(Value::Array(frames)) = st.get_mut("frames") else {
        return false;
    };
    frames.retain_mut(|frame| match frame {
        Value::Object(frame) => {
            normalize_frame(frame);
            true
        }
        _ => false,
    });
    !frames.is_empty()
}

fn normalize_frame(frame: &mut Map<String, Value>) {
    // one pass over the members (a frame has a dozen; looking each known key up costs more)
    let mut dropped: Vec<String> = Vec::new();
    for (key, value) in frame.iter_mut() {
        let keep = match key.as_str() {
            "function" | "raw_function" | "symbol" | "module" | "package" | "filename"
            | "abs_path" | "platform" => match value {
                Value::String(s) => {
                    let trimmed = s.trim();
                    let keep = !trimmed.is_empty();
                    if keep && trimmed.len() != s.len() {
                        *s = trimmed.to_owned();
                    }
                    keep
                }
                _ => false,
            },
            "context_line" => value.is_string(),
            "lineno" | "colno" => value.as_u64().is_some(),
            "in_app" => value.is_boolean(),
            "pre_context" | "post_context" => value
                .as_array()
                .is_some_and(|lines| lines.iter().all(|l| l.is_string() || l.is_null())),
            "vars" => value.is_object() || value.is_array(),
            "instruction_addr" | "symbol_addr" | "image_addr" => normalize_addr(value),
            _ => true,
        };
        if !keep {
            dropped.push(key.clone());
        }
    }
    for key in dropped {
        frame.remove(&key);
    }
}

/// Addresses are `0x`-prefixed lowercase hex strings; integers are converted. False when the
/// value is no address (it is dropped).
fn normalize_addr(value: &mut Value) -> bool {
    let parsed = match value {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => {
            let hex = s.strip_prefix("0x").or_else(|| s.strip_prefix("0X"));
            match hex {
                Some(h) => u64::from_str_radix(h, 16).ok(),
                None => s.parse::<u64>().ok(),
            }
        }
        _ => None,
    };
    match parsed {
        Some(addr) => {
            let formatted = format!("0x{addr:x}");
            if value.as_str() != Some(formatted.as_str()) {
                *value = Value::String(formatted);
            }
            true
        }
        None => false,
    }
}

/// Threads: objects; their stack traces normalized, `crashed`/`current` booleans.
pub(super) fn normalize_threads(items: &mut Vec<Value>) {
    items.retain_mut(|item| {
        let Value::Object(thread) = item else {
            return false;
        };
        for key in ["stacktrace", "raw_stacktrace"] {
            if let Some(st) = thread.get_mut(key)
                && !normalize_stacktrace(st)
            {
                thread.remove(key);
            }
        }
        keep_bool(thread, "crashed");
        keep_bool(thread, "current");
        keep_if(thread, "id", |v| v.is_string() || v.is_number());
        keep_string(thread, "name");
        !thread.is_empty()
    });
}

/// Breadcrumbs: objects with a valid timestamp (float seconds), level and data mapping.
pub(super) fn normalize_breadcrumbs(items: &mut Vec<Value>) {
    items.retain_mut(|item| {
        let Value::Object(crumb) = item else {
            return false;
        };
        if let Some(ts) = crumb.get_mut("timestamp") {
            match time::parse(ts) {
                Some(t) => {
                    let normalized = time::to_value(t);
                    if *ts != normalized {
                        *ts = normalized;
                    }
                }
                None => {
                    crumb.remove("timestamp");
                }
            }
        }
        if let Some(lvl) = crumb.get("level") {
            match level::parse(lvl) {
                Some(l) if lvl.as_str() == Some(l) => {}
                Some(l) => {
                    crumb.insert("level".into(), Value::String(l.to_owned()));
                }
                None => {
                    crumb.remove("level");
                }
            }
        }
        keep_object(crumb, "data");
        for key in ["type", "category", "message"] {
            keep_if(crumb, key, Value::is_string);
        }
        !crumb.is_empty()
    });
}

/// Longest tag key or value Relay accepts, in characters.
const MAX_TAG_CHARS: usize = 200;

/// Tag keys Relay sets itself or reserves; a client's tag of that name is dropped.
const RESERVED_TAGS: &[&str] = &["release", "dist", "user", "filename", "function"];

/// A tag key as Relay accepts it: spaces become `-`, then only ASCII letters, digits and
/// `_ . : -` are allowed.
fn tag_key(key: &str) -> Option<String> {
    let key = key.replace(' ', "-").trim().to_owned();
    key.bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b':' | b'-'))
        .then_some(key)
}

/// Tags from a map or a list of `[key, value]` pairs (or `"key:value"` strings), as a list of
/// pairs sorted by key with unique keys (the first one sent wins). Numbers and booleans are
/// stringified as Relay does (`True`); keys with spaces get `-` instead. Dropped, as in Relay:
/// empty or overlong (200 characters) keys and values, keys with other characters than ASCII
/// letters, digits and `_ . : -`, values with newlines, nulls, nested values, and the reserved
/// keys `release`, `dist`, `user`, `filename`, `function`. A tag `environment` is taken out
/// by the caller.
pub(super) fn normalize_tags(value: Value) -> Option<Value> {
    let mut pairs: Vec<(String, String)> = Vec::new();
    let mut push = |key: String, value: &Value| {
        let value = match value {
            Value::String(s) => s.trim().to_owned(),
            other => match scalar_to_string(other) {
                Some(s) => s,
                None => return,
            },
        };
        let Some(key) = tag_key(&key) else {
            return;
        };
        let fits = key.chars().count() <= MAX_TAG_CHARS && value.chars().count() <= MAX_TAG_CHARS;
        if fits
            && !key.is_empty()
            && !value.is_empty()
            && !value.contains('\n')
            && !RESERVED_TAGS.contains(&key.as_str())
        {
            pairs.push((key, value));
        }
    };
    match value {
        Value::Object(map) => {
            for (key, value) in map {
                push(key, &value);
            }
        }
        Value::Array(items) => {
            for item in items {
                match item {
                    Value::Array(pair) if pair.len() == 2 => {
                        let key = match &pair[0] {
                            Value::String(s) => s.clone(),
                            other => match scalar_to_string(other) {
                                Some(s) => s,
                                None => continue,
                            },
                        };
                        push(key, &pair[1]);
                    }
                    Value::String(s) => {
                        if let Some((key, value)) = s.split_once(':') {
                            push(key.to_owned(), &Value::String(value.to_owned()));
                        }
                    }
                    _ => {}
                }
            }
        }
        _ => return None,
    }
    // stable sort keeps the first of equal keys first; dedup keeps the first
    pairs.sort_by(|a, b| a.0.cmp(&b.0));
    pairs.dedup_by(|later, earlier| later.0 == earlier.0);
    if pairs.is_empty() {
        return None;
    }
    Some(Value::Array(
        pairs
            .into_iter()
            .map(|(k, v)| Value::Array(vec![Value::String(k), Value::String(v)]))
            .collect(),
    ))
}

/// The user: `id` may be a number, `ip_address` must be an IP or `{{auto}}` (the client's
/// address), `email`/`username`/`name` strings.
pub(super) fn normalize_user(user: &mut Map<String, Value>, client_ip: Option<IpAddr>) {
    keep_lenient_string(user, "id");
    for key in ["email", "username", "name", "segment"] {
        keep_string(user, key);
    }
    if let Some(ip) = user.get("ip_address") {
        let resolved = match ip.as_str().map(str::trim) {
            Some("{{auto}}") => client_ip,
            Some(s) => s.parse::<IpAddr>().ok(),
            None => None,
        };
        match resolved {
            Some(ip_addr) => {
                let text = ip_addr.to_string();
                if ip.as_str() != Some(text.as_str()) {
                    user.insert("ip_address".into(), Value::String(text));
                }
            }
            None => {
                user.remove("ip_address");
            }
        }
    }
    keep_object(user, "data");
    keep_object(user, "geo");
}

/// Contexts: an object of objects; other values are dropped. Each context gets a `type`
/// (its key, when it has none), and the trace context's ids are normalized.
pub(super) fn normalize_contexts(contexts: &mut Map<String, Value>) {
    contexts.retain(|_, v| v.is_object());
    for (key, context) in contexts.iter_mut() {
        let Value::Object(context) = context else {
            continue;
        };
        if !context.get("type").is_some_and(Value::is_string) {
            context.insert("type".into(), Value::String(key.clone()));
        }
        if key == "trace"
            && let Some(id) = context.get_mut("trace_id")
        {
            match id.as_str().and_then(normalize_trace_id) {
                Some(normalized) if id.as_str() == Some(normalized.as_str()) => {}
                Some(normalized) => *id = Value::String(normalized),
                None => {
                    context.remove("trace_id");
                }
            }
        }
    }
}

/// A trace id: 32 hex digits (dashes allowed, as in a UUID), lowercased.
pub(super) fn normalize_trace_id(id: &str) -> Option<String> {
    let hex: String = id
        .chars()
        .filter(|c| *c != '-')
        .map(|c| c.to_ascii_lowercase())
        .collect();
    (hex.len() == 32 && hex.bytes().all(|b| b.is_ascii_hexdigit())).then_some(hex)
}

/// The request: strings for url and method (uppercased), objects or pair lists for the rest.
pub(super) fn normalize_request(request: &mut Map<String, Value>) -> Option<IpAddr> {
    keep_string(request, "url");
    keep_string(request, "method");
    if let Some(Value::String(method)) = request.get_mut("method")
        && method.bytes().any(|b| b.is_ascii_lowercase())
    {
        *method = method.to_ascii_uppercase();
    }
    keep_if(request, "headers", |v| v.is_object() || v.is_array());
    keep_if(request, "env", Value::is_object);
    request
        .get("env")
        .and_then(|env| env.get("REMOTE_ADDR"))
        .and_then(Value::as_str)
        .and_then(|ip| ip.parse().ok())
}

/// The SDK info needs a name and a version (numbers are accepted as version).
pub(super) fn normalize_sdk(sdk: &mut Map<String, Value>) -> bool {
    keep_string(sdk, "name");
    keep_lenient_string(sdk, "version");
    keep_if(sdk, "integrations", Value::is_array);
    keep_if(sdk, "packages", Value::is_array);
    sdk.contains_key("name") && sdk.contains_key("version")
}

/// The fingerprint: a list of strings; numbers and booleans stringified, others dropped.
pub(super) fn normalize_fingerprint(value: &mut Value) -> bool {
    let Value::Array(items) = value else {
        return false;
    };
    items.retain_mut(|item| {
        if let Some(s) = scalar_to_string(item) {
            *item = Value::String(s);
        }
        item.is_string()
    });
    !items.is_empty()
}
