//! The `outcomes` table: what became of the items SDKs sent, per project, data category,
//! outcome, reason and hour, with a quantity. Two sources write it:
//!
//! - `client_report` items: what an SDK dropped before sending (`discarded_events`, outcome
//!   `client_discard` with the SDK's reason such as `before_send` or `sample_rate`), and what
//!   it says it was refused (`rate_limited_events`, `filtered_events`,
//!   `filtered_sampling_events`);
//! - faultline's own decisions at ingest (`accepted`, `rate_limited`, `invalid`, `too_large`,
//!   `filtered`), counted in memory per hour (`crate::outcomes`) and logged as rows when the
//!   server flushes.
//!
//! `timestamp` is the start of the hour. One hour of one (project, category, outcome, reason)
//! may have several rows (one per flush and per client report): `sum(quantity)` adds them up.

use chrono::{DateTime, DurationRound, TimeDelta, Utc};
use serde_json::{Map, Value};

use super::{Column, Error, ItemRow, ItemTable, MAX_ROWS_PER_ITEM, Result, RowContext, Rows};

pub static TABLE: ItemTable = ItemTable::new(
    "outcomes",
    6,
    &[
        ("category", Column::Text),
        ("outcome", Column::Text),
        ("reason", Column::Text),
        ("quantity", Column::Int),
    ],
);

/// Longest reason or category kept from a client report (Relay's reasons are short words).
const MAX_NAME: usize = 200;

/// The start of the hour of `at`.
pub fn hour_of(at: DateTime<Utc>) -> DateTime<Utc> {
    at.duration_trunc(TimeDelta::hours(1)).unwrap_or(at)
}

/// One row of counted outcomes.
pub fn row(
    ctx: RowContext<'_>,
    hour: DateTime<Utc>,
    category: &str,
    outcome: &str,
    reason: &str,
    quantity: u64,
) -> ItemRow {
    let mut rows = Rows::new(&TABLE, ctx);
    rows.push(hour, columns(category, outcome, reason, quantity));
    rows.finish().pop().unwrap_or_else(|| ItemRow {
        table: &TABLE,
        project_id: ctx.project_id,
        received_ms: ctx.received.timestamp_millis(),
        json: Vec::new(),
        item_id: None,
        scrubbed_by: Vec::new(),
    })
}

fn columns(category: &str, outcome: &str, reason: &str, quantity: u64) -> Map<String, Value> {
    let mut row = Map::new();
    row.insert("category".into(), category.into());
    row.insert("outcome".into(), outcome.into());
    row.insert(
        "reason".into(),
        if reason.is_empty() {
            Value::Null
        } else {
            reason.into()
        },
    );
    row.insert("quantity".into(), quantity.into());
    row
}

/// The lists of a client report and the outcome each stands for (as Relay maps them).
const LISTS: [(&str, &str); 4] = [
    ("discarded_events", "client_discard"),
    ("rate_limited_events", "rate_limited"),
    ("filtered_events", "filtered"),
    ("filtered_sampling_events", "filtered"),
];

/// The rows of one `client_report` item: one per entry with a positive quantity, at the hour
/// of the report's `timestamp` (or of its arrival).
pub fn client_report_rows(payload: &[u8], ctx: RowContext<'_>) -> Result<Vec<ItemRow>> {
    let item = super::object(payload, ctx)?;
    let hour = hour_of(super::time(item.get("timestamp")).unwrap_or(ctx.received));
    let mut rows = Rows::new(&TABLE, ctx);
    let mut count = 0;
    for (list, outcome) in LISTS {
        let entries = match item.get(list) {
            None | Some(Value::Null) => continue,
            Some(Value::Array(entries)) => entries,
            Some(_) => {
                return Err(Error::Field {
                    field: list,
                    expected: "a list",
                });
            }
        };
        for entry in entries {
            let name = |key: &'static str| -> Result<&str> {
                entry
                    .get(key)
                    .and_then(Value::as_str)
                    .map(str::trim)
                    .filter(|s| !s.is_empty() && s.len() <= MAX_NAME)
                    .ok_or(Error::Field {
                        field: key,
                        expected: "a text of 1 to 200 bytes in every entry",
                    })
            };
            let reason = name("reason")?;
            let category = name("category")?;
            let quantity = match entry.get("quantity") {
                Some(q) => q.as_u64().ok_or(Error::Field {
                    field: "quantity",
                    expected: "a non-negative integer in every entry",
                })?,
                None => 1,
            };
            if quantity == 0 {
                continue;
            }
            count += 1;
            if count > MAX_ROWS_PER_ITEM {
                return Err(Error::TooMany {
                    what: "client report entries",
                    limit: MAX_ROWS_PER_ITEM,
                });
            }
            rows.push(hour, columns(category, outcome, reason, quantity));
        }
    }
    Ok(rows.finish())
}

#[cfg(test)]
mod tests {
    use super::super::tests::{ctx, printed};
    use super::*;

    #[test]
    fn a_client_report_gives_a_row_per_reason_and_category_at_its_hour() {
        let report = br#"{"timestamp":"2026-12-05T09:42:17.5Z",
            "discarded_events":[{"reason":"before_send","category":"error","quantity":3},
                                {"reason":"sample_rate","category":"transaction","quantity":10},
                                {"reason":"queue_overflow","category":"span","quantity":0}],
            "rate_limited_events":[{"reason":"ratelimit_backoff","category":"attachment","quantity":1}]}"#;
        let rows = client_report_rows(report, ctx()).unwrap();
        assert_eq!(rows.len(), 3, "a zero quantity is no row");
        let text = printed(&rows);
        assert!(
            text.contains("| 2026-12-05T09:00:00Z | 2026-12-05T10:00:00Z | error       | client_discard | before_send       | 3        |"),
            "{text}"
        );
        assert!(
            text.contains("| transaction | client_discard | sample_rate "),
            "{text}"
        );
        assert!(
            text.contains("| attachment  | rate_limited   | ratelimit_backoff "),
            "{text}"
        );
    }

    #[test]
    fn a_bad_client_report_is_refused_by_field() {
        let err = client_report_rows(br#"{"discarded_events":{}}"#, ctx()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "`discarded_events` is missing or not a list"
        );
        let err = client_report_rows(
            br#"{"discarded_events":[{"reason":"x","category":"error","quantity":-1}]}"#,
            ctx(),
        )
        .unwrap_err();
        assert_eq!(
            err.to_string(),
            "`quantity` is missing or not a non-negative integer in every entry"
        );
        let err = client_report_rows(br#"{"discarded_events":[{"category":"error"}]}"#, ctx())
            .unwrap_err();
        assert!(err.to_string().starts_with("`reason`"), "{err}");
    }

    #[test]
    fn entries_are_bounded() {
        let entry = r#"{"reason":"before_send","category":"error","quantity":1}"#;
        let at_limit = format!(
            r#"{{"discarded_events":[{}]}}"#,
            vec![entry; MAX_ROWS_PER_ITEM].join(",")
        );
        assert_eq!(
            client_report_rows(at_limit.as_bytes(), ctx())
                .unwrap()
                .len(),
            MAX_ROWS_PER_ITEM
        );
        let over = format!(
            r#"{{"discarded_events":[{}]}}"#,
            vec![entry; MAX_ROWS_PER_ITEM + 1].join(",")
        );
        assert_eq!(
            client_report_rows(over.as_bytes(), ctx())
                .unwrap_err()
                .to_string(),
            "the item has more than 1000 client report entries"
        );
    }

    #[test]
    fn hours_start_on_the_hour() {
        let at = DateTime::parse_from_rfc3339("2026-12-05T09:59:59.999Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(hour_of(at).to_rfc3339(), "2026-12-05T09:00:00+00:00");
    }
}
