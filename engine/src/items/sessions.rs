//! The `sessions` table (release health): one row per `session` item (an update of one
//! session, by `session_id`) and one row per bucket of a `sessions` item (aggregates counted by
//! the SDK, `session_id` null). Both shapes share the columns `exited`, `errored`, `abnormal`
//! and `crashed`, so one query counts them together; the views `release_health` and
//! `release_health_hourly` (`query/tables.rs`) count every session once, by its final status.
//!
//! The distinct id (`did`, often a user id or an e-mail address) is kept only as a hash, as
//! Sentry does: users can be counted, not read.

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use super::{
    Column, Error, ItemRow, ItemTable, MAX_ROWS_PER_ITEM, Result, RowContext, Rows, at, millis,
    text, time,
};

pub static TABLE: ItemTable = ItemTable::new(
    "sessions",
    7,
    &[
        ("session_id", Column::Text),
        ("distinct_id", Column::Text),
        ("seq", Column::Int),
        ("init", Column::Bool),
        ("status", Column::Text),
        ("errors", Column::Int),
        ("started", Column::Time),
        ("duration", Column::Float),
        ("release", Column::Text),
        ("environment", Column::Text),
        ("user_agent", Column::Text),
        ("abnormal_mechanism", Column::Text),
        ("exited", Column::Int),
        ("errored", Column::Int),
        ("abnormal", Column::Int),
        ("crashed", Column::Int),
        ("meta", Column::Text),
    ],
);

/// The statuses of a session update (Relay's `SessionStatus`, without `unknown`).
/// `unhandled` (an unhandled error that did not end the app, as browser SDKs report a page
/// that threw) counts as errored.
pub const STATUSES: [&str; 6] = [
    "ok",
    "exited",
    "crashed",
    "abnormal",
    "errored",
    "unhandled",
];

/// The row of one `session` item.
pub fn session_rows(payload: &[u8], ctx: RowContext<'_>) -> Result<Vec<ItemRow>> {
    let item = super::object(payload, ctx)?;
    let sid = item
        .get("sid")
        .and_then(Value::as_str)
        .and_then(|s| uuid::Uuid::parse_str(s).ok())
        .ok_or(Error::Field {
            field: "sid",
            expected: "a UUID",
        })?;
    let started = time(item.get("started")).ok_or(Error::Field {
        field: "started",
        expected: "a time",
    })?;
    let release = release(&item)?;
    let status = match item.get("status") {
        None | Some(Value::Null) => "ok",
        Some(Value::String(s)) if STATUSES.contains(&s.as_str()) => s.as_str(),
        Some(_) => {
            return Err(Error::Field {
                field: "status",
                expected: "one of ok, exited, crashed, abnormal, errored, unhandled",
            });
        }
    };
    let errors = match item.get("errors") {
        None | Some(Value::Null) => 0,
        Some(v) => v.as_u64().ok_or(Error::Field {
            field: "errors",
            expected: "a count",
        })?,
    };
    let init = item.get("init").and_then(Value::as_bool).unwrap_or(false);
    // Relay: an initial update is sequence 0, and a crashed session had at least one error.
    let seq = if init {
        0
    } else {
        item.get("seq").and_then(Value::as_u64).unwrap_or(0)
    };
    let errors = if status == "crashed" {
        errors.max(1)
    } else {
        errors
    };
    let duration = match item.get("duration") {
        None | Some(Value::Null) => Value::Null,
        Some(v) => match v.as_f64() {
            Some(d) if d >= 0.0 => v.clone(),
            _ => {
                return Err(Error::Field {
                    field: "duration",
                    expected: "a number of seconds, not negative",
                });
            }
        },
    };
    let at_time = time(item.get("timestamp")).unwrap_or(ctx.received);
    let flag = |yes: bool| Value::from(u64::from(yes));
    let mut row = Map::new();
    row.insert("session_id".into(), Value::String(sid.simple().to_string()));
    row.insert("distinct_id".into(), distinct_id(item.get("did")));
    row.insert("seq".into(), seq.into());
    row.insert("init".into(), init.into());
    row.insert("status".into(), status.into());
    row.insert("errors".into(), errors.into());
    row.insert("started".into(), millis(Some(started)));
    row.insert("duration".into(), duration);
    row.insert("release".into(), release);
    row.insert(
        "environment".into(),
        text(at(&item, &["attrs", "environment"])),
    );
    row.insert(
        "user_agent".into(),
        text(at(&item, &["attrs", "user_agent"])),
    );
    row.insert(
        "abnormal_mechanism".into(),
        text(item.get("abnormal_mechanism")),
    );
    row.insert("exited".into(), flag(status == "exited" && errors == 0));
    row.insert(
        "errored".into(),
        flag(
            matches!(status, "errored" | "unhandled")
                || (errors > 0 && matches!(status, "ok" | "exited")),
        ),
    );
    row.insert("abnormal".into(), flag(status == "abnormal"));
    row.insert("crashed".into(), flag(status == "crashed"));
    row.insert("meta".into(), item.meta_at(&[]));
    let mut rows = Rows::new(&TABLE, ctx);
    rows.push(at_time, row);
    Ok(rows.finish())
}

/// The rows of one `sessions` item: one per bucket of `aggregates`.
pub fn aggregate_rows(payload: &[u8], ctx: RowContext<'_>) -> Result<Vec<ItemRow>> {
    let item = super::object(payload, ctx)?;
    let release = release(&item)?;
    let environment = text(at(&item, &["attrs", "environment"]));
    let user_agent = text(at(&item, &["attrs", "user_agent"]));
    let Some(Value::Array(buckets)) = item.get("aggregates") else {
        return Err(Error::Field {
            field: "aggregates",
            expected: "a list",
        });
    };
    if buckets.len() > MAX_ROWS_PER_ITEM {
        return Err(Error::TooMany {
            what: "session aggregates",
            limit: MAX_ROWS_PER_ITEM,
        });
    }
    let mut rows = Rows::new(&TABLE, ctx);
    for (index, bucket) in buckets.iter().enumerate() {
        let bucket = bucket.as_object().ok_or(Error::Field {
            field: "aggregates",
            expected: "a list of objects",
        })?;
        let started = time(bucket.get("started")).ok_or(Error::Field {
            field: "aggregates.started",
            expected: "a time",
        })?;
        let mut row = Map::new();
        row.insert("distinct_id".into(), distinct_id(bucket.get("did")));
        row.insert("started".into(), millis(Some(started)));
        row.insert("release".into(), release.clone());
        row.insert("environment".into(), environment.clone());
        row.insert("user_agent".into(), user_agent.clone());
        for (name, field) in [
            ("exited", "aggregates.exited"),
            ("errored", "aggregates.errored"),
            ("abnormal", "aggregates.abnormal"),
            ("crashed", "aggregates.crashed"),
        ] {
            let count = match bucket.get(name) {
                None | Some(Value::Null) => 0,
                Some(v) => v.as_u64().ok_or(Error::Field {
                    field,
                    expected: "a count",
                })?,
            };
            row.insert(name.into(), count.into());
        }
        // unhandled sessions are errored ones
        if let Some(unhandled) = bucket.get("unhandled").filter(|v| !v.is_null()) {
            let unhandled = unhandled.as_u64().ok_or(Error::Field {
                field: "aggregates.unhandled",
                expected: "a count",
            })?;
            let errored = row.get("errored").and_then(Value::as_u64).unwrap_or(0);
            row.insert("errored".into(), (errored + unhandled).into());
        }
        row.insert(
            "meta".into(),
            item.meta_at(&["aggregates", &index.to_string()]),
        );
        rows.push(started, row);
    }
    Ok(rows.finish())
}

/// `attrs.release`, which Relay requires of both shapes.
fn release(item: &Map<String, Value>) -> Result<Value> {
    match text(at(item, &["attrs", "release"])) {
        Value::String(s) if !s.trim().is_empty() => Ok(Value::String(s)),
        _ => Err(Error::Field {
            field: "attrs.release",
            expected: "a text",
        }),
    }
}

/// The distinct id as the first 16 bytes of its SHA-256, in hex (null when missing).
fn distinct_id(value: Option<&Value>) -> Value {
    match text(value) {
        Value::String(did) if !did.is_empty() => {
            let digest = Sha256::digest(did.as_bytes());
            Value::String(hex::encode(&digest[..16]))
        }
        _ => Value::Null,
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{ctx, printed};
    use super::*;

    #[test]
    fn a_session_update_is_one_row_with_its_final_status_counted() {
        let payload = br#"{"sid":"7c7b6585-f901-4351-bf8d-c7e8c3e7b5a1","did":"alice@example.com",
            "init":false,"seq":3,"started":"2026-12-05T09:59:00Z","timestamp":"2026-12-05T10:00:00Z",
            "status":"crashed","errors":0,"duration":60.5,
            "attrs":{"release":"shop@1.0","environment":"prod","user_agent":"python-requests"}}"#;
        let rows = session_rows(payload, ctx()).unwrap();
        assert_eq!(rows.len(), 1);
        let text = printed(&rows);
        assert!(text.contains("7c7b6585f9014351bf8dc7e8c3e7b5a1"), "{text}");
        assert!(!text.contains("alice"), "the distinct id is hashed: {text}");
        assert!(text.contains("| crashed "), "{text}");
        assert!(text.contains("2026-12-05T09:59:00Z"), "{text}");
        assert!(text.contains("| 60.5 "), "{text}");
        let json: Value = serde_json::from_slice(&rows[0].json).unwrap();
        assert_eq!(json["crashed"], 1);
        assert_eq!(json["errors"], 1, "a crashed session had an error");
        assert_eq!(json["exited"], 0);
        assert_eq!(json["seq"], 3);
        assert_eq!(json["environment"], "prod");
    }

    #[test]
    fn an_unhandled_session_of_a_browser_counts_as_errored() {
        // as @sentry/browser 11 sends a page that threw
        let payload = br#"{"sid":"6e03251ccaeb47539af54bf39b18f7c8","init":true,
            "started":"2026-12-05T18:00:41.115Z","timestamp":"2026-12-05T18:00:41.133Z",
            "status":"unhandled","errors":1,
            "attrs":{"release":"shop-web@1.0.0","environment":"production"}}"#;
        let rows = session_rows(payload, ctx()).unwrap();
        let json: Value = serde_json::from_slice(&rows[0].json).unwrap();
        assert_eq!(json["status"], "unhandled");
        assert_eq!(json["errored"], 1);
        assert_eq!(json["crashed"], 0);
        let aggregates = br#"{"attrs":{"release":"shop-web@1.0.0"},
            "aggregates":[{"started":"2026-12-05T18:00:00Z","exited":2,"errored":1,"unhandled":3}]}"#;
        let rows = aggregate_rows(aggregates, ctx()).unwrap();
        let json: Value = serde_json::from_slice(&rows[0].json).unwrap();
        assert_eq!(json["errored"], 4);
        assert_eq!(json["exited"], 2);
    }

    #[test]
    fn an_initial_update_is_sequence_zero_and_counts_nothing_final() {
        let payload = br#"{"sid":"7c7b6585-f901-4351-bf8d-c7e8c3e7b5a1","init":true,"seq":9,
            "started":1796464800,"attrs":{"release":"shop@1.0"}}"#;
        let rows = session_rows(payload, ctx()).unwrap();
        let json: Value = serde_json::from_slice(&rows[0].json).unwrap();
        assert_eq!(json["seq"], 0);
        assert_eq!(json["status"], "ok");
        assert_eq!(json["distinct_id"], Value::Null);
        for column in ["exited", "errored", "abnormal", "crashed"] {
            assert_eq!(json[column], 0, "{column}");
        }
        // no timestamp: the update's time is when it was received
        assert_eq!(
            json["timestamp"],
            ctx().received.timestamp_millis(),
            "{json}"
        );
    }

    #[test]
    fn an_aggregate_is_one_row_per_bucket() {
        let payload = br#"{"attrs":{"release":"shop@1.0","environment":"prod"},
            "aggregates":[{"started":"2026-12-05T10:00:00Z","did":"42","exited":3,"errored":1},
                          {"started":"2026-12-05T10:01:00Z","exited":1,"crashed":2,"abnormal":1}]}"#;
        let rows = aggregate_rows(payload, ctx()).unwrap();
        assert_eq!(rows.len(), 2);
        let text = printed(&rows);
        assert!(text.contains("2026-12-05T10:01:00Z"), "{text}");
        let second: Value = serde_json::from_slice(&rows[1].json).unwrap();
        assert_eq!(second["session_id"], Value::Null);
        assert_eq!(second["crashed"], 2);
        assert_eq!(second["abnormal"], 1);
        assert_eq!(second["exited"], 1);
        assert_eq!(second["errored"], 0);
        let first: Value = serde_json::from_slice(&rows[0].json).unwrap();
        assert_eq!(first["distinct_id"].as_str().map(str::len), Some(32));
    }

    #[test]
    fn bad_sessions_are_refused_by_field() {
        let sid = r#""sid":"7c7b6585-f901-4351-bf8d-c7e8c3e7b5a1""#;
        let cases = [
            (
                format!(r#"{{{sid},"started":1,"status":"sleeping","attrs":{{"release":"r"}}}}"#),
                "`status` is missing or not one of ok, exited, crashed, abnormal, errored, unhandled",
            ),
            (
                format!(r#"{{{sid},"started":1}}"#),
                "`attrs.release` is missing or not a text",
            ),
            (
                r#"{"sid":"nope","started":1,"attrs":{"release":"r"}}"#.to_owned(),
                "`sid` is missing or not a UUID",
            ),
            (
                format!(r#"{{{sid},"attrs":{{"release":"r"}}}}"#),
                "`started` is missing or not a time",
            ),
            (
                format!(r#"{{{sid},"started":1,"errors":-1,"attrs":{{"release":"r"}}}}"#),
                "`errors` is missing or not a count",
            ),
            (
                format!(r#"{{{sid},"started":1,"duration":-2,"attrs":{{"release":"r"}}}}"#),
                "`duration` is missing or not a number of seconds, not negative",
            ),
        ];
        for (payload, message) in cases {
            let err = session_rows(payload.as_bytes(), ctx()).unwrap_err();
            assert_eq!(err.to_string(), message, "{payload}");
        }
        let err = aggregate_rows(br#"{"attrs":{"release":"r"}}"#, ctx()).unwrap_err();
        assert_eq!(err.to_string(), "`aggregates` is missing or not a list");
        let err = aggregate_rows(
            br#"{"attrs":{"release":"r"},"aggregates":[{"started":1,"crashed":"two"}]}"#,
            ctx(),
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "`aggregates.crashed` is missing or not a count"
        );
        let many = format!(
            r#"{{"attrs":{{"release":"r"}},"aggregates":[{}]}}"#,
            vec![r#"{"started":1}"#; MAX_ROWS_PER_ITEM + 1].join(",")
        );
        let err = aggregate_rows(many.as_bytes(), ctx()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "the item has more than 1000 session aggregates"
        );
        let just_enough = format!(
            r#"{{"attrs":{{"release":"r"}},"aggregates":[{}]}}"#,
            vec![r#"{"started":1}"#; MAX_ROWS_PER_ITEM].join(",")
        );
        assert_eq!(
            aggregate_rows(just_enough.as_bytes(), ctx()).unwrap().len(),
            MAX_ROWS_PER_ITEM
        );
    }
}
