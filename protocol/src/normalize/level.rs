//! Event and breadcrumb levels.

use serde_json::Value;

/// The canonical level of a value: `debug`, `info`, `warning`, `error` or `fatal`. Accepts
/// Relay's aliases (`log`, `warn`, `critical`) and Python logging's numbers (10..50).
pub(crate) fn parse(value: &Value) -> Option<&'static str> {
    match value {
        Value::String(s) => match s.trim().to_ascii_lowercase().as_str() {
            "debug" => Some("debug"),
            "info" | "log" => Some("info"),
            "warning" | "warn" => Some("warning"),
            "error" => Some("error"),
            "fatal" | "critical" => Some("fatal"),
            _ => None,
        },
        Value::Number(n) => match n.as_u64()? {
            10 => Some("debug"),
            20 => Some("info"),
            30 => Some("warning"),
            40 => Some("error"),
            50 => Some("fatal"),
            _ => None,
        },
        _ => None,
    }
}
