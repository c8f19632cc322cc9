//! The columns of a normalized event: title, culprit and the other scalar fields.

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use super::Facts;
use crate::Event;
use crate::grouping;
use crate::view::EventView;

/// Longest title text taken from a message or exception value, like Sentry's.
const MAX_TITLE_CHARS: usize = 100;
/// Longest culprit, like Sentry's.
const MAX_CULPRIT_CHARS: usize = 200;

/// The event's columns and stored JSON; `None` when the JSON would nest deeper than
/// [`MAX_JSON_DEPTH`](crate::depth::MAX_JSON_DEPTH).
pub(super) fn event(
    root: Map<String, Value>,
    facts: Facts,
    received: DateTime<Utc>,
) -> Option<Event> {
    // What is stored must parse again under the same limit (the WAL replay normalizes it).
    let json = crate::depth::to_json_within(&root, crate::depth::MAX_JSON_DEPTH).ok()?;
    let view = EventView::new(&root);
    let main = view.main_exception();
    let exception_type = main.and_then(|e| string(e, "type"));
    let exception_value = main.and_then(|e| string(e, "value"));
    let message = root
        .get("logentry")
        .and_then(|l| l.get("formatted"))
        .and_then(Value::as_str)
        .map(str::to_owned);
    let title = title(
        main.is_some(),
        exception_type.as_deref(),
        exception_value.as_deref(),
        message.as_deref(),
    );
    let platform = string(&root, "platform").unwrap_or_else(|| "other".to_owned());
    let frames = view.primary_frames().unwrap_or_default();
    let culprit = culprit(&view, frames, &platform);
    let user = root.get("user").and_then(Value::as_object);
    let user_field = |key| user.and_then(|u| string(u, key));
    let sdk = root.get("sdk").and_then(Value::as_object);
    let grouping = grouping::compute(&root, &view);

    Some(Event {
        event_id: facts.event_id,
        timestamp: facts.timestamp,
        received,
        level: facts.level.to_owned(),
        release: string(&root, "release"),
        environment: string(&root, "environment"),
        server_name: string(&root, "server_name"),
        transaction: string(&root, "transaction"),
        message,
        title,
        exception_type,
        exception_value,
        culprit,
        frame_count: i32::try_from(frames.len()).unwrap_or(i32::MAX),
        user_id: user_field("id"),
        user_email: user_field("email"),
        user_ip: user_field("ip_address"),
        user_username: user_field("username"),
        tags: tags(&root),
        fingerprint: root.get("fingerprint").and_then(Value::as_array).map(|fp| {
            fp.iter()
                .filter_map(Value::as_str)
                .map(str::to_owned)
                .collect()
        }),
        sdk_name: sdk.and_then(|s| string(s, "name")),
        sdk_version: sdk.and_then(|s| string(s, "version")),
        trace_id: root
            .get("contexts")
            .and_then(|c| c.get("trace"))
            .and_then(|t| t.get("trace_id"))
            .and_then(Value::as_str)
            .map(str::to_owned),
        platform,
        grouping,
        scrubbed_by: Vec::new(),
        json,
    })
}

fn string(map: &Map<String, Value>, key: &str) -> Option<String> {
    map.get(key).and_then(Value::as_str).map(str::to_owned)
}

fn tags(root: &Map<String, Value>) -> Vec<(String, String)> {
    let Some(Value::Array(pairs)) = root.get("tags") else {
        return Vec::new();
    };
    pairs
        .iter()
        .filter_map(|pair| match pair.as_array()?.as_slice() {
            [Value::String(k), Value::String(v)] => Some((k.clone(), v.clone())),
            _ => None,
        })
        .collect()
}

/// Sentry's title: `Type: first line of value` for errors, else the message's first line.
fn title(
    has_exception: bool,
    ty: Option<&str>,
    value: Option<&str>,
    message: Option<&str>,
) -> String {
    if has_exception {
        let ty = ty.unwrap_or("Error");
        return match value.map(first_line).filter(|v| !v.is_empty()) {
            Some(value) => format!("{ty}: {}", truncate(value, MAX_TITLE_CHARS)),
            None => ty.to_owned(),
        };
    }
    match message.map(first_line).filter(|m| !m.is_empty()) {
        Some(message) => truncate(message, MAX_TITLE_CHARS),
        None => "<unlabeled event>".to_owned(),
    }
}

fn first_line(text: &str) -> &str {
    text.trim().lines().next().unwrap_or("").trim_end()
}

/// At most `max` characters; longer text ends in `...` within that length.
pub(crate) fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let mut out: String = text.chars().take(max.saturating_sub(3)).collect();
    out.push_str("...");
    out
}

/// Sentry's culprit: the top-most in-app frame's location and function; without in-app
/// frames, the top-most frame's.
fn culprit(view: &EventView<'_>, frames: &[Value], platform: &str) -> Option<String> {
    let mut fallback = None;
    for frame in frames.iter().rev().filter_map(Value::as_object) {
        let Some(culprit) = frame_culprit(frame, platform) else {
            continue;
        };
        if view.is_in_app(frame) {
            return Some(culprit);
        }
        fallback.get_or_insert(culprit);
    }
    fallback
}

/// As Sentry: native frames name only their function; JavaScript frames read
/// `function(location)`, others `location in function`.
fn frame_culprit(frame: &Map<String, Value>, event_platform: &str) -> Option<String> {
    let function = frame.get("function").and_then(Value::as_str);
    let platform = frame
        .get("platform")
        .and_then(Value::as_str)
        .unwrap_or(event_platform);
    if matches!(platform, "native" | "cocoa" | "objc") {
        return function
            .filter(|f| !f.is_empty())
            .map(|f| truncate(f, MAX_CULPRIT_CHARS));
    }
    let location = ["module", "filename"]
        .iter()
        .find_map(|k| frame.get(*k).and_then(Value::as_str))?;
    let function = function.unwrap_or("?");
    let culprit = if matches!(platform, "javascript" | "node") {
        format!("{function}({location})")
    } else {
        format!("{location} in {function}")
    };
    Some(truncate(&culprit, MAX_CULPRIT_CHARS))
}
