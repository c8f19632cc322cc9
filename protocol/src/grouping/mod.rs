//! Grouping: which issue an event belongs to.
//!
//! Sentry's idea, simplified (see `docs/grouping.md`). The first rule that yields anything
//! decides:
//!
//! 1. **Fingerprint**: the SDK's `fingerprint`; `{{ default }}` in it expands to the
//!    components of the default rules below, and Sentry's other variables (`{{ transaction }}`,
//!    `{{ type }}`, `{{ function }}`, ...) to the event's values.
//! 2. **Exception**: for each exception of the chain, its type and its frames (location:
//!    module, else file name; and function), without line numbers, columns or addresses, and
//!    with generated parts (hex ids, lambda numbers) stripped. Only in-app frames count when
//!    the event has any; otherwise all frames. An exception without usable frames
//!    contributes its normalized value instead.
//! 3. **Stacktrace**: an event without exception but with a stack trace (top-level or the
//!    crashed thread's): its frames, by the same rules.
//! 4. **Message**: the log message template (else the formatted message) with numbers, ids,
//!    hex, IPs, e-mails, dates and URLs replaced by placeholders.
//! 5. **Fallback**: everything else of a project shares one group.
//!
//! The hash is the md5 of the components (each followed by a NUL byte), as 32 hex digits.

mod frames;
pub mod message;

use md5::{Digest, Md5};
use serde_json::{Map, Value};
use sha2::Sha256;

use crate::Event;
use crate::view::EventView;

/// What decided an event's group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum GroupingMethod {
    /// The SDK's `fingerprint`.
    Fingerprint,
    /// Exception types plus frames (or values).
    Exception,
    /// A stack trace without exception (top-level or crashed thread).
    Stacktrace,
    /// The normalized message.
    Message,
    /// Nothing to group by: all such events of a project share one issue.
    #[default]
    Fallback,
}

impl GroupingMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Fingerprint => "fingerprint",
            Self::Exception => "exception",
            Self::Stacktrace => "stacktrace",
            Self::Message => "message",
            Self::Fallback => "fallback",
        }
    }
}

impl std::fmt::Display for GroupingMethod {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The grouping result of one event.
#[derive(Debug, Clone, PartialEq, Eq, Default, serde::Serialize)]
pub struct Grouping {
    /// md5 of the components, 32 lowercase hex digits.
    pub hash: String,
    pub method: GroupingMethod,
    /// The strings that were hashed, for display and debugging.
    pub components: Vec<String>,
}

/// The grouping of a normalized event (computed during normalization).
pub fn group(event: &Event) -> Grouping {
    event.grouping.clone()
}

/// The issue id of a grouping hash in a project: a positive `i64` that every node derives
/// alike (the first 8 bytes of `sha256("<project>:<hash>")`, top bit cleared, never 0).
pub fn issue_id(project_id: u64, hash: &str) -> i64 {
    let digest = Sha256::new()
        .chain_update(project_id.to_string())
        .chain_update(b":")
        .chain_update(hash)
        .finalize();
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(&digest[..8]);
    let id = (u64::from_be_bytes(bytes) & (i64::MAX as u64)) as i64;
    id.max(1)
}

/// Groups a normalized event value.
pub(crate) fn compute(root: &Map<String, Value>, view: &EventView<'_>) -> Grouping {
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
        return finish(GroupingMethod::Fingerprint, components);
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

fn finish(method: GroupingMethod, components: Vec<String>) -> Grouping {
    let mut md5 = Md5::new();
    for component in &components {
        md5.update(component.as_bytes());
        md5.update([0]);
    }
    Grouping {
        hash: hex::encode(md5.finalize()),
        method,
        components,
    }
}

/// The components of the default rules (everything but the fingerprint).
fn default_components(
    root: &Map<String, Value>,
    view: &EventView<'_>,
) -> (GroupingMethod, Vec<String>) {
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
        return (GroupingMethod::Exception, components);
    }

    let frames = frame_components(view.fallback_frames);
    if !frames.is_empty() {
        return (GroupingMethod::Stacktrace, frames);
    }

    let logentry = root.get("logentry");
    let text = ["message", "formatted"]
        .iter()
        .find_map(|k| logentry.and_then(|l| l.get(*k)).and_then(Value::as_str))
        .filter(|t| !t.trim().is_empty());
    if let Some(text) = text {
        return (
            GroupingMethod::Message,
            vec![format!("message:{}", message::normalize(text))],
        );
    }
    (GroupingMethod::Fallback, vec!["fallback".to_owned()])
}
