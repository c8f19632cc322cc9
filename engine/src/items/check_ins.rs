//! The `check_ins` table: one row per `check_in` item (a cron job's run reporting
//! `in_progress`, `ok` or `error`), and the `missed` and `timeout` check-ins the monitor
//! checker adds (`crate::monitors`) when a job did not report in time. A check-in with a
//! `monitor_config` creates or updates its monitor (the `monitors` table).

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use super::{Column, Error, ItemRow, ItemTable, Result, RowContext, Rows, at, millis, text, uuid};
use crate::monitors::config::MonitorConfig;

pub static TABLE: ItemTable = ItemTable::new(
    "check_ins",
    8,
    &[
        ("check_in_id", Column::Text),
        ("monitor_slug", Column::Text),
        ("status", Column::Text),
        ("duration", Column::Float),
        ("release", Column::Text),
        ("environment", Column::Text),
        ("trace_id", Column::Text),
        ("monitor_config", Column::Text),
        ("expected_time", Column::Time),
        ("synthetic", Column::Bool),
        ("meta", Column::Text),
    ],
);

/// The statuses an SDK may send; `missed` and `timeout` are the server's.
pub const STATUSES: [&str; 3] = ["in_progress", "ok", "error"];

/// Longest monitor slug (Sentry's).
pub const MAX_SLUG: usize = 50;

/// The row of one `check_in` item.
pub fn rows(payload: &[u8], ctx: RowContext<'_>) -> Result<Vec<ItemRow>> {
    let item = super::object(payload, ctx)?;
    let check_in_id = uuid(item.get("check_in_id"));
    if check_in_id.is_null() {
        return Err(Error::Field {
            field: "check_in_id",
            expected: "a UUID",
        });
    }
    let slug = item
        .get("monitor_slug")
        .and_then(Value::as_str)
        .and_then(slug)
        .ok_or(Error::Field {
            field: "monitor_slug",
            expected: "a slug (letters, digits, - and _, at most 50)",
        })?;
    let status = item
        .get("status")
        .and_then(Value::as_str)
        .filter(|s| STATUSES.contains(s))
        .ok_or(Error::Field {
            field: "status",
            expected: "one of in_progress, ok, error",
        })?;
    let duration = match item.get("duration") {
        None | Some(Value::Null) => Value::Null,
        Some(v) => match v.as_f64() {
            Some(d) if d >= 0.0 && d.is_finite() => v.clone(),
            _ => {
                return Err(Error::Field {
                    field: "duration",
                    expected: "a number of seconds, not negative",
                });
            }
        },
    };
    let config = match item.get("monitor_config") {
        None | Some(Value::Null) => Value::Null,
        Some(value) => Value::String(
            MonitorConfig::parse(value)
                .map_err(|e| Error::Config(e.to_string()))?
                .json
                .to_string(),
        ),
    };
    let mut row = Map::new();
    row.insert("check_in_id".into(), check_in_id.clone());
    row.insert("monitor_slug".into(), slug.into());
    row.insert("status".into(), status.into());
    row.insert("duration".into(), duration);
    row.insert("release".into(), text(item.get("release")));
    row.insert("environment".into(), text(item.get("environment")));
    row.insert(
        "trace_id".into(),
        text(at(&item, &["contexts", "trace", "trace_id"])),
    );
    row.insert("monitor_config".into(), config);
    row.insert("expected_time".into(), Value::Null);
    row.insert("synthetic".into(), false.into());
    row.insert("meta".into(), item.meta_at(&[]));
    let mut rows = Rows::new(&TABLE, ctx);
    rows.push(ctx.received, row);
    Ok(rows.finish())
}

/// What the monitor checker writes for a run that did not report: a `missed` check-in at the
/// time one was expected, or a `timeout` of an `in_progress` check-in at its deadline.
#[derive(Debug, Clone, PartialEq)]
pub struct Synthetic<'a> {
    pub slug: &'a str,
    /// `missed` or `timeout`.
    pub status: &'static str,
    /// The timed-out check-in's id; a new id for a missed one.
    pub check_in_id: uuid::Uuid,
    pub at: DateTime<Utc>,
    /// When the missed check-in was expected.
    pub expected: Option<DateTime<Utc>>,
    /// Seconds the timed-out run had when it timed out.
    pub duration: Option<f64>,
    pub environment: Option<&'a str>,
    pub release: Option<&'a str>,
}

/// The row of a check-in the monitor checker adds.
pub fn synthetic_row(check_in: &Synthetic<'_>, ctx: RowContext<'_>) -> Vec<ItemRow> {
    let mut row = Map::new();
    row.insert(
        "check_in_id".into(),
        check_in.check_in_id.simple().to_string().into(),
    );
    row.insert("monitor_slug".into(), check_in.slug.into());
    row.insert("status".into(), check_in.status.into());
    row.insert(
        "duration".into(),
        check_in
            .duration
            .and_then(serde_json::Number::from_f64)
            .map_or(Value::Null, Value::Number),
    );
    row.insert("release".into(), check_in.release.into());
    row.insert("environment".into(), check_in.environment.into());
    row.insert("trace_id".into(), Value::Null);
    row.insert("monitor_config".into(), Value::Null);
    row.insert("expected_time".into(), millis(check_in.expected));
    row.insert("synthetic".into(), true.into());
    let mut rows = Rows::new(&TABLE, ctx);
    rows.push(check_in.at, row);
    rows.finish()
}

/// A monitor slug as Sentry normalizes it: lowercase, runs of other characters than letters,
/// digits, `-` and `_` become one `-`, no `-` at either end; `None` when nothing is left or it
/// is longer than [`MAX_SLUG`].
pub fn slug(raw: &str) -> Option<String> {
    let mut out = String::with_capacity(raw.len().min(MAX_SLUG + 1));
    for c in raw.chars() {
        if c.is_ascii_alphanumeric() || c == '_' || c == '-' {
            out.push(c.to_ascii_lowercase());
        } else if !out.ends_with('-') {
            out.push('-');
        }
        if out.len() > MAX_SLUG + 1 {
            return None;
        }
    }
    let trimmed = out.trim_matches('-');
    (!trimmed.is_empty() && trimmed.len() <= MAX_SLUG).then(|| trimmed.to_owned())
}

#[cfg(test)]
mod tests {
    use super::super::tests::{ctx, printed};
    use super::*;

    #[test]
    fn a_check_in_is_one_row_with_its_config_read() {
        let payload = br#"{"check_in_id":"83a7c03e-d1ab-4a2e-9f0c-2c4f6f1b8a11","monitor_slug":"Nightly Report",
            "status":"ok","duration":12.5,"release":"shop@1.0","environment":"prod",
            "contexts":{"trace":{"trace_id":"aaaabbbbccccddddeeeeffff00001111"}},
            "monitor_config":{"schedule":{"type":"crontab","value":"0 3 * * *"},"checkin_margin":5,
                              "max_runtime":20,"timezone":"Europe/Vienna","failure_issue_threshold":2}}"#;
        let rows = rows(payload, ctx()).unwrap();
        assert_eq!(rows.len(), 1);
        let text = printed(&rows);
        assert!(text.contains("83a7c03ed1ab4a2e9f0c2c4f6f1b8a11"), "{text}");
        assert!(text.contains("| nightly-report "), "{text}");
        assert!(text.contains("| 12.5 "), "{text}");
        assert!(text.contains("| false "), "{text}");
        let json: Value = serde_json::from_slice(&rows[0].json).unwrap();
        let config: Value = serde_json::from_str(json["monitor_config"].as_str().unwrap()).unwrap();
        assert_eq!(config["schedule"]["value"], "0 3 * * *");
        assert_eq!(config["timezone"], "Europe/Vienna");
        assert_eq!(config["failure_issue_threshold"], 2);
        assert_eq!(json["trace_id"], "aaaabbbbccccddddeeeeffff00001111");
        assert_eq!(json["timestamp"], ctx().received.timestamp_millis());
    }

    #[test]
    fn a_bad_check_in_is_refused_by_field() {
        let id = r#""check_in_id":"83a7c03e-d1ab-4a2e-9f0c-2c4f6f1b8a11""#;
        let cases = [
            (
                format!(r#"{{{id},"monitor_slug":"job","status":"missed"}}"#),
                "`status` is missing or not one of in_progress, ok, error".to_owned(),
            ),
            (
                r#"{"monitor_slug":"job","status":"ok"}"#.to_owned(),
                "`check_in_id` is missing or not a UUID".to_owned(),
            ),
            (
                format!(r#"{{{id},"monitor_slug":"!!!","status":"ok"}}"#),
                "`monitor_slug` is missing or not a slug (letters, digits, - and _, at most 50)"
                    .to_owned(),
            ),
            (
                format!(
                    r#"{{{id},"monitor_slug":"{}","status":"ok"}}"#,
                    "a".repeat(MAX_SLUG + 1)
                ),
                "`monitor_slug` is missing or not a slug (letters, digits, - and _, at most 50)"
                    .to_owned(),
            ),
            (
                format!(r#"{{{id},"monitor_slug":"job","status":"ok","duration":-1}}"#),
                "`duration` is missing or not a number of seconds, not negative".to_owned(),
            ),
            (
                format!(
                    r#"{{{id},"monitor_slug":"job","status":"ok",
                        "monitor_config":{{"schedule":{{"type":"crontab","value":"every day"}}}}}}"#
                ),
                "invalid monitor_config: `monitor_config.schedule.value` \"every day\" is not a \
                 crontab of 5 fields (minute hour day-of-month month day-of-week)"
                    .to_owned(),
            ),
        ];
        for (payload, message) in cases {
            let err = rows(payload.as_bytes(), ctx()).unwrap_err();
            assert_eq!(err.to_string(), message, "{payload}");
        }
        let longest = format!(
            r#"{{{id},"monitor_slug":"{}","status":"in_progress"}}"#,
            "a".repeat(MAX_SLUG)
        );
        assert_eq!(rows(longest.as_bytes(), ctx()).unwrap().len(), 1);
    }

    #[test]
    fn slugs_are_normalized_as_sentry_does() {
        assert_eq!(slug("My Job!").as_deref(), Some("my-job"));
        assert_eq!(slug("--a__b  c--").as_deref(), Some("a__b-c"));
        assert_eq!(slug("   "), None);
    }

    #[test]
    fn a_synthetic_check_in_fits_the_table() {
        let expected = ctx().received - chrono::Duration::minutes(5);
        let rows = synthetic_row(
            &Synthetic {
                slug: "job",
                status: "missed",
                check_in_id: uuid::Uuid::nil(),
                at: expected,
                expected: Some(expected),
                duration: None,
                environment: Some("prod"),
                release: None,
            },
            ctx(),
        );
        let text = printed(&rows);
        assert!(text.contains("| missed "), "{text}");
        assert!(text.contains("| true "), "{text}");
        assert_eq!(text.matches("2026-12-05T09:55:00Z").count(), 2, "{text}");
    }
}
