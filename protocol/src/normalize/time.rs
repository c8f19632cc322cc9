//! Timestamps as SDKs send them: float or integer Unix seconds, or ISO 8601 strings with or
//! without offset, fraction or `Z`. Stored back as float seconds with microsecond precision,
//! which parses back to the same instant (normalization stays idempotent).

use chrono::{DateTime, NaiveDateTime, TimeZone, Utc};
use serde_json::{Number, Value};

/// Parses a timestamp value; `None` if it is not one.
pub fn parse(value: &Value) -> Option<DateTime<Utc>> {
    match value {
        Value::Number(n) => from_secs(n.as_f64()?),
        Value::String(s) => parse_str(s.trim()),
        _ => None,
    }
}

fn parse_str(s: &str) -> Option<DateTime<Utc>> {
    if s.is_empty() {
        return None;
    }
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(round_micros(t.with_timezone(&Utc)));
    }
    // Naive ISO 8601 (no offset) is UTC, as Relay reads it.
    for format in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f"] {
        if let Ok(t) = NaiveDateTime::parse_from_str(s, format) {
            return Some(round_micros(Utc.from_utc_datetime(&t)));
        }
    }
    // Offsets without a colon (`+0200`) and with a space before them.
    if let Ok(t) = DateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S%.f%z") {
        return Some(round_micros(t.with_timezone(&Utc)));
    }
    if s.bytes()
        .all(|b| b.is_ascii_digit() || b == b'.' || b == b'-')
    {
        return from_secs(s.parse().ok()?);
    }
    None
}

/// Unix seconds (with fraction) to a time, rounded to microseconds.
fn from_secs(secs: f64) -> Option<DateTime<Utc>> {
    if !secs.is_finite() {
        return None;
    }
    let micros = (secs * 1e6).round();
    // chrono's range is about ±262,000 years; anything beyond is not a timestamp
    if micros.abs() > 8.0e18 {
        return None;
    }
    DateTime::from_timestamp_micros(micros as i64)
}

fn round_micros(t: DateTime<Utc>) -> DateTime<Utc> {
    let nanos = t.timestamp_subsec_nanos();
    let micros = t.timestamp_micros() + i64::from(nanos % 1000 >= 500);
    DateTime::from_timestamp_micros(micros).unwrap_or(t)
}

/// Truncates a time to milliseconds (the precision of `received`, which the engine keeps in
/// milliseconds and passes back on WAL replay).
pub(crate) fn truncate_millis(t: DateTime<Utc>) -> DateTime<Utc> {
    DateTime::from_timestamp_millis(t.timestamp_millis()).unwrap_or(t)
}

/// The JSON form of a time: float Unix seconds.
pub(crate) fn to_value(t: DateTime<Utc>) -> Value {
    let micros = t.timestamp_micros();
    if micros % 1_000_000 == 0 {
        return Value::from(micros / 1_000_000);
    }
    Number::from_f64(micros as f64 / 1e6).map_or(Value::Null, Value::Number)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn iso(v: Value) -> String {
        parse(&v)
            .unwrap()
            .to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
    }

    #[test]
    fn accepts_sdk_forms() {
        assert_eq!(iso(json!(1595472880.109)), "2020-07-23T02:54:40.109000Z");
        assert_eq!(iso(json!(1595472880)), "2020-07-23T02:54:40.000000Z");
        assert_eq!(
            iso(json!("2020-04-25T19:36:56.584908333Z")),
            "2020-04-25T19:36:56.584908Z"
        );
        assert_eq!(
            iso(json!("2009-11-10T21:00:00-02:00")),
            "2009-11-10T23:00:00.000000Z"
        );
        assert_eq!(
            iso(json!("2021-09-28T18:57:46")),
            "2021-09-28T18:57:46.000000Z"
        );
        assert_eq!(
            iso(json!("2020-05-12T22:30:36.0021839+00:00")),
            "2020-05-12T22:30:36.002184Z"
        );
        assert_eq!(
            iso(json!("2020-05-12T22:30:36+0100")),
            "2020-05-12T21:30:36.000000Z"
        );
        assert_eq!(iso(json!("1595472880.5")), "2020-07-23T02:54:40.500000Z");
    }

    #[test]
    fn rejects_non_timestamps() {
        for v in [
            json!("yesterday"),
            json!(""),
            json!(true),
            json!({}),
            json!(1e300),
        ] {
            assert_eq!(parse(&v), None, "{v}");
        }
    }

    #[test]
    fn float_form_round_trips() {
        for v in [
            json!(1595472880.109),
            json!("2020-04-25T19:36:56.584908333Z"),
            json!(-868000000.5),
        ] {
            let t = parse(&v).unwrap();
            assert_eq!(parse(&to_value(t)), Some(t), "{v}");
        }
    }
}
