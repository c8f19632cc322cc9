//! The `logs` table: one row per record of a `log` item (`{"items": [...]}`, the shape of
//! OpenTelemetry log records with Sentry's attributes).

use serde_json::{Map, Value};

use super::{
    Column, Error, Item, ItemTable, MAX_ROWS_PER_ITEM, Records, Result, RowContext, Rows,
    attribute, attributes, text, time,
};

pub static TABLE: ItemTable = ItemTable::new(
    "logs",
    3,
    &[
        ("trace_id", Column::Text),
        ("span_id", Column::Text),
        ("level", Column::Text),
        ("severity_number", Column::Int),
        ("body", Column::Text),
        ("template", Column::Text),
        ("release", Column::Text),
        ("environment", Column::Text),
        ("sdk_name", Column::Text),
        ("attributes", Column::Map),
        ("meta", Column::Text),
    ],
);

/// The rows of one `log` item: one per valid record; a record without a time, or not an
/// object, is left out and counted in [`Records::invalid`].
pub fn rows(payload: &[u8], ctx: RowContext<'_>) -> Result<Records> {
    let item = super::object(payload, ctx)?;
    let Some(Value::Array(records)) = item.get("items") else {
        return Err(Error::Field {
            field: "items",
            expected: "a list",
        });
    };
    if records.len() > MAX_ROWS_PER_ITEM {
        return Err(Error::TooMany {
            what: "log records",
            limit: MAX_ROWS_PER_ITEM,
        });
    }
    Records::of_each(Rows::new(&TABLE, ctx), records, |rows, index, record| {
        push_record(rows, &item, index, record)
    })
}

/// The row of the `index`th record of `item`.
fn push_record(rows: &mut Rows<'_>, item: &Item, index: usize, record: &Value) -> Result<()> {
    let record = record.as_object().ok_or(Error::Field {
        field: "items",
        expected: "a list of log objects",
    })?;
    let at = time(record.get("timestamp")).ok_or(Error::Field {
        field: "timestamp",
        expected: "a time",
    })?;
    let attrs = attributes(record.get("attributes"));
    let severity = record.get("severity_number").and_then(Value::as_i64);
    let mut row = Map::new();
    row.insert("trace_id".into(), text(record.get("trace_id")));
    row.insert("span_id".into(), text(record.get("span_id")));
    row.insert("level".into(), text(record.get("level")));
    row.insert("severity_number".into(), severity.into());
    row.insert("body".into(), text(record.get("body")));
    row.insert(
        "template".into(),
        attribute(&attrs, "sentry.message.template"),
    );
    row.insert("release".into(), attribute(&attrs, "sentry.release"));
    row.insert(
        "environment".into(),
        attribute(&attrs, "sentry.environment"),
    );
    row.insert("sdk_name".into(), attribute(&attrs, "sentry.sdk.name"));
    row.insert("attributes".into(), attrs);
    row.insert("meta".into(), item.meta_at(&["items", &index.to_string()]));
    rows.push(at, row);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::tests::{ctx, metas, printed, scrubbing_ctx};
    use super::*;
    use crate::items::MAX_TEXT;

    #[test]
    fn log_records_become_rows() {
        let payload = br#"{"items":[
            {"timestamp":1796464800.5,"trace_id":"aaaabbbbccccddddeeeeffff00001111","level":"warn",
             "severity_number":13,"body":"cart 42 is empty",
             "attributes":{"sentry.message.template":{"type":"string","value":"cart {} is empty"},
                           "sentry.environment":{"type":"string","value":"prod"},
                           "cart":{"type":"integer","value":42}}},
            {"timestamp":"2026-12-05T10:00:01Z","level":"info","body":"ok"}]}"#;
        let rows = rows(payload, ctx()).unwrap().rows;
        assert_eq!(rows.len(), 2);
        let text = printed(&rows);
        assert!(text.contains("cart 42 is empty"), "{text}");
        assert!(text.contains("cart {} is empty"), "{text}");
        assert!(text.contains("| 13 "), "{text}");
        assert!(text.contains("cart: 42"), "{text}");
        assert!(text.contains("2026-12-05T10:00:00.500Z"), "{text}");
    }

    #[test]
    fn what_scrubbing_removed_from_a_record_is_in_its_meta() {
        let payload = br#"{"items":[
            {"timestamp":1796464800,"level":"info","body":"all good"},
            {"timestamp":1796464801,"level":"warn","body":"charging card 4111 1111 1111 1111",
             "attributes":{"db_password":{"type":"string","value":"hunter2"},
                           "cart":{"type":"integer","value":42}}}]}"#;
        let rows = rows(payload, scrubbing_ctx()).unwrap().rows;
        let text = printed(&rows);
        assert!(
            !text.contains("hunter2") && !text.contains("4111"),
            "{text}"
        );
        assert!(text.contains("cart: 42"), "the rest is kept: {text}");
        let metas = metas(&rows);
        assert_eq!(metas[0], Value::Null, "nothing was changed in the first");
        assert_eq!(
            metas[1]["attributes"]["db_password"][""]["rem"][0][0], "@password:filter",
            "{}",
            metas[1]
        );
        assert_eq!(
            metas[1]["body"][""]["rem"][0][0], "@creditcard:filter",
            "{}",
            metas[1]
        );
        assert!(
            metas[1].get("items").is_none(),
            "paths are the record's own: {}",
            metas[1]
        );
    }

    #[test]
    fn a_body_over_the_limit_is_cut_and_its_meta_says_so() {
        let body = "é".repeat(10_000); // 20,000 bytes
        let payload = serde_json::json!({"items": [
            {"timestamp": 1796464800, "level": "info", "body": body}]});
        let rows = rows(payload.to_string().as_bytes(), ctx()).unwrap().rows;
        let row: Value = serde_json::from_slice(&rows[0].json).unwrap();
        let stored = row["body"].as_str().unwrap();
        assert!(
            stored.len() <= MAX_TEXT && stored.ends_with("é..."),
            "{}",
            stored.len()
        );
        let chars = stored.chars().count();
        assert_eq!(
            metas(&rows)[0]["body"][""],
            serde_json::json!({"rem": [["!limit", "s", chars - 3, chars]], "len": 10_000})
        );
        assert!(rows[0].scrubbed_by.is_empty(), "a cut is no scrubbing rule");
    }

    #[test]
    fn a_record_without_a_time_is_refused_by_name() {
        let err = rows(br#"{"items":[{"body":"x"}]}"#, ctx()).unwrap_err();
        assert_eq!(err.to_string(), "`timestamp` is missing or not a time");
        let err = rows(br#"{"body":"x"}"#, ctx()).unwrap_err();
        assert_eq!(err.to_string(), "`items` is missing or not a list");
    }

    #[test]
    fn a_bad_record_is_left_out_and_counted_not_the_records_beside_it() {
        let payload = br#"{"items":[
            {"timestamp":1796464800,"level":"info","body":"first"},
            {"level":"info","body":"no time"},
            "not a record",
            {"timestamp":1796464801,"level":"info","body":"last"}]}"#;
        let kept = rows(payload, ctx()).unwrap();
        assert_eq!(kept.invalid, 2);
        let text = printed(&kept.rows);
        assert!(
            text.contains("first") && text.contains("last") && !text.contains("no time"),
            "{text}"
        );
        assert_eq!(kept.rows.len(), 2);
    }
}
