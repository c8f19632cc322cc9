//! The `transactions` table: one row per `transaction` item; the transaction's spans (its own
//! span as the segment, then `spans[]`) go to the `spans` table.

use serde_json::{Map, Value};

use super::spans::{self, Segment};
use super::{
    Column, Error, ItemRow, ItemTable, MAX_ROWS_PER_ITEM, Result, RowContext, Rows, at,
    duration_ms, json_text, millis, string_map, tags, text, time, uuid,
};

pub static TABLE: ItemTable = ItemTable::new(
    "transactions",
    1,
    &[
        ("event_id", Column::Text),
        ("trace_id", Column::Text),
        ("span_id", Column::Text),
        ("parent_span_id", Column::Text),
        ("transaction", Column::Text),
        ("source", Column::Text),
        ("op", Column::Text),
        ("status", Column::Text),
        ("start_timestamp", Column::Time),
        ("duration_ms", Column::Float),
        ("span_count", Column::Int),
        ("release", Column::Text),
        ("environment", Column::Text),
        ("platform", Column::Text),
        ("server_name", Column::Text),
        ("sdk_name", Column::Text),
        ("sdk_version", Column::Text),
        ("user_id", Column::Text),
        ("tags", Column::Map),
        ("data", Column::Map),
        ("measurements", Column::Text),
        ("meta", Column::Text),
    ],
);

/// The rows of one `transaction` item: one in `transactions`, the rest in `spans`.
pub fn rows(payload: &[u8], ctx: RowContext<'_>) -> Result<Vec<ItemRow>> {
    let item = super::object(payload, ctx)?;
    let end = time(item.get("timestamp")).ok_or(Error::Field {
        field: "timestamp",
        expected: "a time",
    })?;
    let start = time(item.get("start_timestamp"));
    let children = match item.get("spans") {
        None | Some(Value::Null) => &[][..],
        Some(Value::Array(spans)) => spans.as_slice(),
        Some(_) => {
            return Err(Error::Field {
                field: "spans",
                expected: "a list",
            });
        }
    };
    if children.len() > MAX_ROWS_PER_ITEM {
        return Err(Error::TooMany {
            what: "spans",
            limit: MAX_ROWS_PER_ITEM,
        });
    }
    let empty = Map::new();
    let trace = at(&item, &["contexts", "trace"])
        .and_then(Value::as_object)
        .unwrap_or(&empty);
    let event_id = uuid(item.get("event_id"));
    let name = text(item.get("transaction"));
    let release = text(item.get("release"));
    let environment = text(item.get("environment"));
    let span_id = text(trace.get("span_id"));

    let mut row = Map::new();
    row.insert("event_id".into(), event_id.clone());
    row.insert("trace_id".into(), text(trace.get("trace_id")));
    row.insert("span_id".into(), span_id.clone());
    row.insert("parent_span_id".into(), text(trace.get("parent_span_id")));
    row.insert("transaction".into(), name.clone());
    row.insert(
        "source".into(),
        text(at(&item, &["transaction_info", "source"])),
    );
    row.insert("op".into(), text(trace.get("op")));
    row.insert("status".into(), text(trace.get("status")));
    row.insert("start_timestamp".into(), millis(start));
    row.insert("duration_ms".into(), duration_ms(start, end));
    row.insert("span_count".into(), children.len().into());
    row.insert("release".into(), release.clone());
    row.insert("environment".into(), environment.clone());
    row.insert("platform".into(), text(item.get("platform")));
    row.insert("server_name".into(), text(item.get("server_name")));
    row.insert("sdk_name".into(), text(at(&item, &["sdk", "name"])));
    row.insert("sdk_version".into(), text(at(&item, &["sdk", "version"])));
    row.insert("user_id".into(), text(at(&item, &["user", "id"])));
    row.insert("tags".into(), tags(item.get("tags")));
    row.insert("data".into(), string_map(trace.get("data")));
    row.insert("measurements".into(), json_text(item.get("measurements")));
    // the spans' changes are on their own rows
    row.insert("meta".into(), item.meta_without("spans"));
    let mut out = Rows::new(&TABLE, ctx).of_item(&event_id);
    out.push(end, row);

    let segment = Segment {
        transaction: &name,
        transaction_id: &event_id,
        segment_id: &span_id,
        release: &release,
        environment: &environment,
    };
    let mut span_rows = Rows::new(&spans::TABLE, ctx).of_item(&event_id);
    // The transaction's own span: its times are the transaction's, its description the name.
    let mut own = trace.clone();
    own.insert("start_timestamp".into(), millis_secs(start));
    own.insert("timestamp".into(), millis_secs(Some(end)));
    if own.get("description").is_none_or(Value::is_null) {
        own.insert("description".into(), name.clone());
    }
    let own_meta = item.meta_at(&["contexts", "trace"]);
    spans::push_span(&mut span_rows, &own, &segment, true, own_meta)?;
    for (index, child) in children.iter().enumerate() {
        let child = child.as_object().ok_or(Error::Field {
            field: "spans",
            expected: "a list of span objects",
        })?;
        let meta = item.meta_at(&["spans", &index.to_string()]);
        spans::push_span(&mut span_rows, child, &segment, false, meta)?;
    }
    let mut rows = out.finish();
    rows.extend(span_rows.finish());
    Ok(rows)
}

/// A time as Unix seconds (what [`time`] reads back), null when missing.
fn millis_secs(at: Option<chrono::DateTime<chrono::Utc>>) -> Value {
    at.and_then(|t| serde_json::Number::from_f64(t.timestamp_micros() as f64 / 1e6))
        .map_or(Value::Null, Value::Number)
}

#[cfg(test)]
mod tests {
    use super::super::tests::{ctx, metas, printed, scrubbing_ctx};
    use super::*;

    const TRANSACTION: &[u8] = br#"{"type":"transaction","event_id":"0123456789ABCDEF0123456789abcdef",
        "transaction":"checkout","transaction_info":{"source":"custom"},
        "start_timestamp":"2026-12-05T10:00:00.000000Z","timestamp":"2026-12-05T10:00:00.300000Z",
        "release":"shop@1.2","environment":"prod","platform":"python",
        "contexts":{"trace":{"trace_id":"aaaabbbbccccddddeeeeffff00001111","span_id":"1111222233334444",
                             "op":"task","status":"ok","data":{"thread.name":"main"}}},
        "tags":{"region":"eu"},
        "spans":[{"trace_id":"aaaabbbbccccddddeeeeffff00001111","span_id":"5555666677778888",
                  "parent_span_id":"1111222233334444","op":"db","description":"SELECT 1",
                  "start_timestamp":"2026-12-05T10:00:00.100000Z","timestamp":"2026-12-05T10:00:00.200000Z",
                  "data":{"db.system":"sqlite"}}]}"#;

    #[test]
    fn a_transaction_is_one_row_and_its_spans_are_rows_of_spans() {
        let rows = rows(TRANSACTION, ctx()).unwrap();
        assert_eq!(rows.len(), 3);
        assert_eq!(rows[0].table.name, "transactions");
        let text = printed(&rows[..1]);
        assert!(text.contains("0123456789abcdef0123456789abcdef"), "{text}");
        assert!(text.contains("| checkout "), "{text}");
        assert!(text.contains("| 300.0 "), "{text}");
        assert!(text.contains("{region: eu}"), "{text}");
        assert!(text.contains("{thread.name: main}"), "{text}");
        let spans = printed(&rows[1..]);
        assert!(spans.contains("| true "), "the segment: {spans}");
        assert!(spans.contains("SELECT 1"), "{spans}");
        assert!(spans.contains("| 100.0 "), "{spans}");
        assert!(spans.contains("{db.system: sqlite}"), "{spans}");
        assert_eq!(
            spans.matches("0123456789abcdef0123456789abcdef").count(),
            2,
            "both spans name their transaction: {spans}"
        );
    }

    #[test]
    fn each_row_says_what_was_removed_from_its_own_part() {
        let payload = br#"{"type":"transaction","event_id":"0123456789abcdef0123456789abcdef",
            "transaction":"checkout","start_timestamp":1796464800,"timestamp":1796464801,
            "contexts":{"trace":{"trace_id":"aaaabbbbccccddddeeeeffff00001111","span_id":"1111222233334444"}},
            "request":{"headers":{"Authorization":"Bearer abc.def"}},
            "spans":[{"span_id":"5555666677778888","description":"SELECT 1",
                      "start_timestamp":1796464800.1,"timestamp":1796464800.2,"data":{"db.system":"sqlite"}},
                     {"span_id":"9999666677778888","description":"login",
                      "start_timestamp":1796464800.1,"timestamp":1796464800.2,
                      "data":{"auth_token":"tok-123"}}]}"#;
        let rows = rows(payload, scrubbing_ctx()).unwrap();
        let metas = metas(&rows);
        assert_eq!(
            metas.len(),
            4,
            "the transaction, its own span and two spans"
        );
        assert_eq!(
            metas[0]["request"]["headers"]["Authorization"][""]["rem"][0][0], "@password:filter",
            "{}",
            metas[0]
        );
        assert!(
            metas[0].get("spans").is_none(),
            "the spans' changes are on their rows: {}",
            metas[0]
        );
        assert_eq!(metas[1], Value::Null, "the transaction's own span");
        assert_eq!(metas[2], Value::Null, "nothing removed from SELECT 1");
        assert_eq!(
            metas[3]["data"]["auth_token"][""]["rem"][0][0], "@password:filter",
            "{}",
            metas[3]
        );
        let spans = printed(&rows[1..]);
        assert!(!spans.contains("tok-123"), "{spans}");
    }

    #[test]
    fn a_transaction_without_an_end_is_refused_by_name() {
        let err = rows(br#"{"transaction":"x"}"#, ctx()).unwrap_err();
        assert_eq!(err.to_string(), "`timestamp` is missing or not a time");
        let err = rows(br#"{"timestamp":1,"spans":[1]}"#, ctx()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "`spans` is missing or not a list of span objects"
        );
        assert!(matches!(rows(b"[1]", ctx()), Err(Error::NotObject)));
    }
}
