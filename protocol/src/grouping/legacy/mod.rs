//! faultline's first grouping (before Sentry's `newstyle:2026-01-20` was implemented): kept so
//! that every event still carries this hash as a secondary hash, and issues created before the
//! change keep receiving their events. Do not change what it computes.
//!
//! The first rule that yields anything decides: the SDK's fingerprint (with `{{ default }}` and
//! the other variables expanded), the exception chain (types and in-app frames, or normalized
//! values), a stack trace, the normalized log message, else a constant. The hash is the md5 of
//! the components, each followed by a NUL byte.

mod frames;
mod message;

use md5::{Digest, Md5};
use serde_json::{Map, Value};

use crate::view::EventView;

/// What decided the legacy grouping.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Method {
    Fingerprint,
    Exception,
    Stacktrace,
    Message,
    Fallback,
}

/// The legacy grouping of one event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Legacy {
    /// md5 of the components (each followed by a NUL byte), 32 lowercase hex digits.
    pub(crate) hash: String,
    pub(crate) method: Method,
    pub(crate) components: Vec<String>,
}

/// Groups a normalized event value.
pub(crate) fn compute(root: &Map<String, Value>, view: &EventView<'_>) -> Legacy {
    let fingerprint: Option<Vec<&str>> = root
        .get("fingerprint")
        .and_then(Value::as_array)
        .map(|fp| fp.iter().filter_map(Value::as_str).collect())
        .filter(|fp: &Vec<&str>| !fp.is_empty());
    if let Some(fingerprint) = fingerprint {
        if fingerprint
            .iter()
            .all(|part| variable(part) == Some("default"))
        {
            // `["{{ default }}"]` is the default grouping, and says so
            let (method, components) = default_components(root, view);
            return finish(method, components);
        }
        let mut components = Vec::new();
        for part in fingerprint {
            match variable(part) {
                Some("default") => components.extend(default_components(root, view).1),
                Some(name) => components
                    .push(expand_variable(name, root, view).unwrap_or_else(|| part.to_owned())),
                None => components.push(part.to_owned()),
            }
        }
        return finish(Method::Fingerprint, components);
    }
    let (method, components) = default_components(root, view);
    finish(method, components)
}

/// The name of a fingerprint variable such as `{{ default }}` or `{{transaction}}`.
fn variable(part: &str) -> Option<&str> {
    part.strip_prefix("{{")
        .and_then(|p| p.strip_suffix("}}"))
        .map(str::trim)
}

/// The value of a fingerprint variable (Sentry's names), or `None` for unknown variables,
/// which are kept literally. Missing values become `<no-...>` placeholders, as in Sentry.
fn expand_variable(name: &str, root: &Map<String, Value>, view: &EventView<'_>) -> Option<String> {
    let text = |v: Option<&Value>| v.and_then(Value::as_str).map(str::to_owned);
    let main = view.main_exception();
    let top_frame = || {
        let frames = view.primary_frames().unwrap_or_default();
        let frames = frames.iter().rev().filter_map(Value::as_object);
        let mut all = frames.clone();
        frames
            .clone()
            .find(|f| view.is_in_app(f))
            .or_else(|| all.next())
    };
    let (value, placeholder) = match name {
        "transaction" => (text(root.get("transaction")), "<no-transaction>"),
        "type" | "error.type" => (main.and_then(|e| text(e.get("type"))), "<no-type>"),
        "value" | "error.value" => (main.and_then(|e| text(e.get("value"))), "<no-value>"),
        "function" | "stack.function" => (
            top_frame().and_then(|f| text(f.get("function"))),
            "<no-function>",
        ),
        "module" | "stack.module" => (
            top_frame().and_then(|f| text(f.get("module"))),
            "<no-module>",
        ),
        "package" | "stack.package" => (
            top_frame().and_then(|f| text(f.get("package"))),
            "<no-package>",
        ),
        "level" => (text(root.get("level")), "<no-level>"),
        "logger" => (text(root.get("logger")), "<no-logger>"),
        "message" => (
            text(root.get("logentry").and_then(|l| l.get("formatted"))),
            "<no-message>",
        ),
        _ => return None,
    };
    Some(value.unwrap_or_else(|| placeholder.to_owned()))
}

fn finish(method: Method, components: Vec<String>) -> Legacy {
    let mut md5 = Md5::new();
    for component in &components {
        md5.update(component.as_bytes());
        md5.update([0]);
    }
    Legacy {
        hash: hex::encode(md5.finalize()),
        method,
        components,
    }
}

/// The components of the default rules (everything but the fingerprint).
fn default_components(root: &Map<String, Value>, view: &EventView<'_>) -> (Method, Vec<String>) {
    let in_app_only = view.any_in_app();
    let platform = root
        .get("platform")
        .and_then(Value::as_str)
        .unwrap_or("other");
    let frame_components = |frames: Option<&[Value]>| -> Vec<String> {
        frames::components(frames.unwrap_or_default(), view, in_app_only, platform)
    };

    if !view.exceptions.is_empty() {
        let mut components = Vec::new();
        for (index, exc) in view.exceptions.iter().enumerate() {
            let ty = exc.get("type").and_then(Value::as_str);
            if let Some(ty) = ty {
                components.push(format!("type:{}", frames::scrub_identifier(ty)));
            }
            let frames = frame_components(view.exception_frames(index));
            if frames.is_empty() {
                if let Some(value) = exc.get("value").and_then(Value::as_str) {
                    components.push(format!("value:{}", message::normalize(value)));
                }
            } else {
                components.extend(frames);
            }
        }
        return (Method::Exception, components);
    }

    let frames = frame_components(view.fallback_frames);
    if !frames.is_empty() {
        return (Method::Stacktrace, frames);
    }

    let logentry = root.get("logentry");
    let text = ["message", "formatted"]
        .iter()
        .find_map(|k| logentry.and_then(|l| l.get(*k)).and_then(Value::as_str))
        .filter(|t| !t.trim().is_empty());
    if let Some(text) = text {
        return (
            Method::Message,
            vec![format!("message:{}", message::normalize(text))],
        );
    }
    (Method::Fallback, vec!["fallback".to_owned()])
}
