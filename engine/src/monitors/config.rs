//! A monitor's `monitor_config` as SDKs send it with a check-in: the schedule (a crontab or an
//! interval), the margin a check-in may be late by, the longest a run may take, the timezone
//! of the crontab. Read and checked here; [`MonitorConfig::next_after`] gives the time the next
//! check-in is expected.

use chrono::{DateTime, Months, Utc};
use chrono_tz::Tz;
use serde_json::{Map, Value};

/// Sentry's default margin (minutes) a check-in may be late by before it counts as missed.
pub const DEFAULT_MARGIN_MINUTES: u32 = 1;
/// Sentry's default longest run (minutes) before an `in_progress` check-in times out.
pub const DEFAULT_MAX_RUNTIME_MINUTES: u32 = 30;
/// The largest margin and runtime Sentry accepts, in minutes (28 days).
pub const MAX_MINUTES: u32 = 40_320;
/// The longest crontab or timezone text kept.
const MAX_TEXT: usize = 256;

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("`{field}` {problem}")]
pub struct ConfigError {
    pub field: &'static str,
    pub problem: String,
}

fn bad(field: &'static str, problem: impl Into<String>) -> ConfigError {
    ConfigError {
        field,
        problem: problem.into(),
    }
}

/// The unit of an interval schedule.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Minute,
    Hour,
    Day,
    Week,
    Month,
    Year,
}

impl Unit {
    fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "minute" => Self::Minute,
            "hour" => Self::Hour,
            "day" => Self::Day,
            "week" => Self::Week,
            "month" => Self::Month,
            "year" => Self::Year,
            _ => return None,
        })
    }

    fn name(self) -> &'static str {
        match self {
            Self::Minute => "minute",
            Self::Hour => "hour",
            Self::Day => "day",
            Self::Week => "week",
            Self::Month => "month",
            Self::Year => "year",
        }
    }
}

/// When a monitor expects its check-ins.
#[derive(Debug, Clone)]
pub enum Schedule {
    /// A 5-field crontab (minute hour day-of-month month day-of-week) or `@hourly`,
    /// `@daily`, ... in the monitor's timezone.
    Crontab {
        text: String,
        cron: Box<croner::Cron>,
    },
    /// Every `value` `unit`s after the last check-in.
    Interval { value: u32, unit: Unit },
}

impl Schedule {
    /// `crontab` or `interval`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Crontab { .. } => "crontab",
            Self::Interval { .. } => "interval",
        }
    }

    /// The schedule as users wrote it: the crontab, or `<value> <unit>`.
    pub fn text(&self) -> String {
        match self {
            Self::Crontab { text, .. } => text.clone(),
            Self::Interval { value, unit } => format!("{value} {}", unit.name()),
        }
    }
}

/// A monitor's configuration, checked.
#[derive(Debug, Clone)]
pub struct MonitorConfig {
    pub schedule: Schedule,
    pub checkin_margin: u32,
    pub max_runtime: u32,
    pub timezone: Tz,
    /// The configuration as stored: the fields above plus those kept as they came
    /// (`failure_issue_threshold`, `recovery_threshold`, `owner`).
    pub json: Value,
}

impl MonitorConfig {
    /// Reads a `monitor_config` object; an error names the field that is wrong.
    pub fn parse(value: &Value) -> Result<Self, ConfigError> {
        let config = value
            .as_object()
            .ok_or_else(|| bad("monitor_config", "is not an object"))?;
        let schedule = config
            .get("schedule")
            .and_then(Value::as_object)
            .ok_or_else(|| bad("monitor_config.schedule", "is missing or not an object"))?;
        let kind = schedule.get("type").and_then(Value::as_str).unwrap_or("");
        let schedule = match kind {
            "crontab" => {
                let text = schedule
                    .get("value")
                    .and_then(Value::as_str)
                    .map(str::trim)
                    .ok_or_else(|| bad("monitor_config.schedule.value", "is not a crontab"))?;
                Schedule::Crontab {
                    text: text.to_owned(),
                    cron: Box::new(
                        parse_crontab(text)
                            .map_err(|problem| bad("monitor_config.schedule.value", problem))?,
                    ),
                }
            }
            "interval" => {
                let value = schedule
                    .get("value")
                    .and_then(Value::as_u64)
                    .filter(|v| (1..=u64::from(MAX_MINUTES)).contains(v))
                    .ok_or_else(|| {
                        bad(
                            "monitor_config.schedule.value",
                            format!("is not a whole number from 1 to {MAX_MINUTES}"),
                        )
                    })?;
                let unit = schedule
                    .get("unit")
                    .and_then(Value::as_str)
                    .and_then(Unit::parse)
                    .ok_or_else(|| {
                        bad(
                            "monitor_config.schedule.unit",
                            "is not one of minute, hour, day, week, month, year",
                        )
                    })?;
                Schedule::Interval {
                    value: value as u32,
                    unit,
                }
            }
            _ => {
                return Err(bad(
                    "monitor_config.schedule.type",
                    "is not crontab or interval",
                ));
            }
        };
        let minutes = |field: &'static str, key: &str, default: u32| match config.get(key) {
            None | Some(Value::Null) => Ok(default),
            Some(v) => v
                .as_u64()
                .filter(|m| (1..=u64::from(MAX_MINUTES)).contains(m))
                .map(|m| m as u32)
                .ok_or_else(|| {
                    bad(
                        field,
                        format!("is not a number of minutes from 1 to {MAX_MINUTES}"),
                    )
                }),
        };
        let checkin_margin = minutes(
            "monitor_config.checkin_margin",
            "checkin_margin",
            DEFAULT_MARGIN_MINUTES,
        )?;
        let max_runtime = minutes(
            "monitor_config.max_runtime",
            "max_runtime",
            DEFAULT_MAX_RUNTIME_MINUTES,
        )?;
        let timezone = match config.get("timezone") {
            None | Some(Value::Null) => Tz::UTC,
            Some(Value::String(name)) if name.len() <= MAX_TEXT => {
                name.parse::<Tz>().map_err(|_| {
                    bad(
                        "monitor_config.timezone",
                        format!("{name:?} is not a timezone of the IANA database"),
                    )
                })?
            }
            Some(_) => {
                return Err(bad(
                    "monitor_config.timezone",
                    "is not a timezone of the IANA database",
                ));
            }
        };
        let mut json = Map::new();
        json.insert(
            "schedule".into(),
            match &schedule {
                Schedule::Crontab { text, .. } => {
                    serde_json::json!({"type": "crontab", "value": text})
                }
                Schedule::Interval { value, unit } => {
                    serde_json::json!({"type": "interval", "value": value, "unit": unit.name()})
                }
            },
        );
        json.insert("checkin_margin".into(), checkin_margin.into());
        json.insert("max_runtime".into(), max_runtime.into());
        json.insert("timezone".into(), timezone.name().into());
        for key in ["failure_issue_threshold", "recovery_threshold"] {
            if let Some(n) = config.get(key).and_then(Value::as_u64) {
                json.insert(key.into(), n.into());
            }
        }
        if let Some(Value::String(owner)) = config.get("owner")
            && owner.len() <= MAX_TEXT
        {
            json.insert("owner".into(), owner.clone().into());
        }
        Ok(Self {
            schedule,
            checkin_margin,
            max_runtime,
            timezone,
            json: Value::Object(json),
        })
    }

    /// The first time after `after` a check-in is expected: the crontab's next occurrence in
    /// the monitor's timezone, or `after` plus the interval (from the start of its minute, as
    /// Sentry counts). `None` when the schedule has no later time.
    pub fn next_after(&self, after: DateTime<Utc>) -> Option<DateTime<Utc>> {
        // schedules are in whole minutes: seconds and their fractions do not carry over
        let minute = after.timestamp() - after.timestamp().rem_euclid(60);
        let start = DateTime::from_timestamp(minute, 0)?;
        match &self.schedule {
            Schedule::Crontab { cron, .. } => cron
                .find_next_occurrence(&start.with_timezone(&self.timezone), false)
                .ok()
                .map(|t| t.with_timezone(&Utc)),
            Schedule::Interval { value, unit } => {
                let n = i64::from(*value);
                match unit {
                    Unit::Minute => start.checked_add_signed(chrono::Duration::minutes(n)),
                    Unit::Hour => start.checked_add_signed(chrono::Duration::hours(n)),
                    Unit::Day => start.checked_add_signed(chrono::Duration::days(n)),
                    Unit::Week => start.checked_add_signed(chrono::Duration::weeks(n)),
                    Unit::Month => start.checked_add_months(Months::new(*value)),
                    Unit::Year => start.checked_add_months(Months::new(value.checked_mul(12)?)),
                }
            }
        }
    }
}

/// A crontab of 5 fields or one of the `@` names (`@yearly`, `@monthly`, `@weekly`,
/// `@daily`, `@hourly`), as Sentry accepts them.
pub fn parse_crontab(text: &str) -> Result<croner::Cron, String> {
    if text.len() > MAX_TEXT {
        return Err(format!("is longer than {MAX_TEXT} characters"));
    }
    let named = matches!(
        text,
        "@yearly" | "@annually" | "@monthly" | "@weekly" | "@daily" | "@midnight" | "@hourly"
    );
    if !named && text.split_whitespace().count() != 5 {
        return Err(format!(
            "{text:?} is not a crontab of 5 fields (minute hour day-of-month month day-of-week)"
        ));
    }
    text.parse::<croner::Cron>()
        .map_err(|e| format!("{text:?} is not a valid crontab: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn at(text: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(text)
            .unwrap()
            .with_timezone(&Utc)
    }

    fn config(value: Value) -> MonitorConfig {
        MonitorConfig::parse(&value).unwrap()
    }

    #[test]
    fn a_crontab_is_expected_at_its_next_minute_in_its_timezone() {
        let hourly = config(json!({"schedule": {"type": "crontab", "value": "0 * * * *"}}));
        assert_eq!(hourly.checkin_margin, 1);
        assert_eq!(hourly.max_runtime, 30);
        assert_eq!(
            hourly.next_after(at("2026-12-05T10:00:00Z")),
            Some(at("2026-12-05T11:00:00Z")),
            "a check-in at the hour expects the next one an hour later"
        );
        assert_eq!(
            hourly.next_after(at("2026-12-05T10:59:59.250Z")),
            Some(at("2026-12-05T11:00:00Z")),
            "whole minutes, whatever the fraction of a second"
        );
        // 03:30 in Vienna is 02:30 UTC in winter
        let vienna = config(
            json!({"schedule": {"type": "crontab", "value": "30 3 * * *"},
                                   "timezone": "Europe/Vienna", "checkin_margin": 5}),
        );
        assert_eq!(
            vienna.next_after(at("2026-12-05T10:00:00Z")),
            Some(at("2026-12-06T02:30:00Z"))
        );
        assert_eq!(vienna.checkin_margin, 5);
        let daily = config(json!({"schedule": {"type": "crontab", "value": "@daily"}}));
        assert_eq!(
            daily.next_after(at("2026-12-05T10:00:00Z")),
            Some(at("2026-12-06T00:00:00Z"))
        );
    }

    #[test]
    fn an_interval_counts_from_the_minute_of_the_last_check_in() {
        let every_two_hours =
            config(json!({"schedule": {"type": "interval", "value": 2, "unit": "hour"}}));
        assert_eq!(
            every_two_hours.next_after(at("2026-12-05T10:00:42Z")),
            Some(at("2026-12-05T12:00:00Z"))
        );
        let monthly =
            config(json!({"schedule": {"type": "interval", "value": 1, "unit": "month"}}));
        assert_eq!(
            monthly.next_after(at("2026-01-31T08:00:00Z")),
            Some(at("2026-02-28T08:00:00Z"))
        );
        assert_eq!(monthly.schedule.text(), "1 month");
        assert_eq!(monthly.json["schedule"]["unit"], "month");
        assert_eq!(monthly.json["timezone"], "UTC");
    }

    #[test]
    fn a_bad_config_names_its_field() {
        let cases = [
            (
                json!({"schedule": {"type": "crontab", "value": "61 * * * *"}}),
                "monitor_config.schedule.value",
            ),
            (
                json!({"schedule": {"type": "crontab", "value": "0 0 * * * *"}}),
                "monitor_config.schedule.value",
            ),
            (
                json!({"schedule": {"type": "interval", "value": 0, "unit": "hour"}}),
                "monitor_config.schedule.value",
            ),
            (
                json!({"schedule": {"type": "interval", "value": 1, "unit": "fortnight"}}),
                "monitor_config.schedule.unit",
            ),
            (
                json!({"schedule": {"type": "solar"}}),
                "monitor_config.schedule.type",
            ),
            (json!({}), "monitor_config.schedule"),
            (
                json!({"schedule": {"type": "crontab", "value": "@daily"}, "timezone": "Mars/Olympus"}),
                "monitor_config.timezone",
            ),
            (
                json!({"schedule": {"type": "crontab", "value": "@daily"}, "checkin_margin": 0}),
                "monitor_config.checkin_margin",
            ),
            (
                json!({"schedule": {"type": "crontab", "value": "@daily"}, "max_runtime": 40321}),
                "monitor_config.max_runtime",
            ),
            (json!([1]), "monitor_config"),
        ];
        for (value, field) in cases {
            let err = MonitorConfig::parse(&value).unwrap_err();
            assert_eq!(err.field, field, "{value}: {err}");
            assert!(err.to_string().starts_with(&format!("`{field}` ")), "{err}");
        }
        // the largest accepted values
        let edge = config(
            json!({"schedule": {"type": "interval", "value": 40320, "unit": "minute"},
                                 "checkin_margin": 40320, "max_runtime": 40320}),
        );
        assert_eq!(edge.max_runtime, MAX_MINUTES);
    }
}
