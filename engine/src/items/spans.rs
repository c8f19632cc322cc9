//! The `spans` table: one row per span, from the `spans[]` of a `transaction` item (with the
//! transaction's own span as the segment) and from `span` items, in the streaming shape
//! (span v2, `{"items": [...]}` with typed `attributes`) or as one span of the older shape.

use serde_json::{Map, Value};

use super::{
    Column, Error, ItemTable, MAX_ROWS_PER_ITEM, Records, Result, RowContext, Rows, at, attribute,
    attributes, duration_ms, millis, string_map, tags, text, time,
};

pub static TABLE: ItemTable = ItemTable::new(
    "spans",
    2,
    &[
        ("trace_id", Column::Text),
        ("span_id", Column::Text),
        ("parent_span_id", Column::Text),
        ("segment_id", Column::Text),
        ("is_segment", Column::Bool),
        ("transaction", Column::Text),
        ("transaction_id", Column::Text),
        ("op", Column::Text),
        ("description", Column::Text),
        ("status", Column::Text),
        ("origin", Column::Text),
        ("start_timestamp", Column::Time),
        ("duration_ms", Column::Float),
        ("release", Column::Text),
        ("environment", Column::Text),
        ("tags", Column::Map),
        ("data", Column::Map),
        ("meta", Column::Text),
    ],
);

/// What the spans of one transaction share.
pub(crate) struct Segment<'a> {
    pub(crate) transaction: &'a Value,
    pub(crate) transaction_id: &'a Value,
    pub(crate) segment_id: &'a Value,
    pub(crate) release: &'a Value,
    pub(crate) environment: &'a Value,
}

/// A span of the older shape (`timestamp`, `op`, `description`, `tags`, `data`), as in a
/// transaction's `spans[]`.
pub(crate) fn push_span(
    rows: &mut Rows<'_>,
    span: &Map<String, Value>,
    segment: &Segment<'_>,
    is_segment: bool,
    meta: Value,
) -> Result<()> {
    let end = time(span.get("timestamp")).ok_or(Error::Field {
        field: "timestamp",
        expected: "a time",
    })?;
    let start = time(span.get("start_timestamp"));
    let mut row = Map::new();
    row.insert("trace_id".into(), text(span.get("trace_id")));
    row.insert("span_id".into(), text(span.get("span_id")));
    row.insert("parent_span_id".into(), text(span.get("parent_span_id")));
    row.insert("segment_id".into(), segment.segment_id.clone());
    row.insert("is_segment".into(), is_segment.into());
    row.insert("transaction".into(), segment.transaction.clone());
    row.insert("transaction_id".into(), segment.transaction_id.clone());
    row.insert("op".into(), text(span.get("op")));
    row.insert("description".into(), text(span.get("description")));
    row.insert("status".into(), text(span.get("status")));
    row.insert("origin".into(), text(span.get("origin")));
    row.insert("start_timestamp".into(), millis(start));
    row.insert("duration_ms".into(), duration_ms(start, end));
    row.insert("release".into(), segment.release.clone());
    row.insert("environment".into(), segment.environment.clone());
    row.insert("tags".into(), tags(span.get("tags")));
    row.insert("data".into(), string_map(span.get("data")));
    row.insert("meta".into(), meta);
    rows.push(end, row);
    Ok(())
}

/// A span of the streaming shape (span v2: `end_timestamp`, `name`, typed `attributes`).
fn push_v2(rows: &mut Rows<'_>, span: &Map<String, Value>, meta: Value) -> Result<()> {
    let end = time(span.get("end_timestamp")).ok_or(Error::Field {
        field: "end_timestamp",
        expected: "a time",
    })?;
    let start = time(span.get("start_timestamp"));
    let attrs = attributes(span.get("attributes"));
    let mut row = Map::new();
    row.insert("trace_id".into(), text(span.get("trace_id")));
    row.insert("span_id".into(), text(span.get("span_id")));
    row.insert("parent_span_id".into(), text(span.get("parent_span_id")));
    row.insert("segment_id".into(), attribute(&attrs, "sentry.segment.id"));
    let is_segment = span.get("is_segment").and_then(Value::as_bool);
    row.insert("is_segment".into(), is_segment.into());
    row.insert(
        "transaction".into(),
        attribute(&attrs, "sentry.segment.name"),
    );
    row.insert("transaction_id".into(), Value::Null);
    row.insert("op".into(), attribute(&attrs, "sentry.op"));
    row.insert("description".into(), text(span.get("name")));
    row.insert("status".into(), text(span.get("status")));
    row.insert("origin".into(), attribute(&attrs, "sentry.origin"));
    row.insert("start_timestamp".into(), millis(start));
    row.insert("duration_ms".into(), duration_ms(start, end));
    row.insert("release".into(), attribute(&attrs, "sentry.release"));
    row.insert(
        "environment".into(),
        attribute(&attrs, "sentry.environment"),
    );
    row.insert("tags".into(), Value::Object(Map::new()));
    row.insert("data".into(), attrs);
    row.insert("meta".into(), meta);
    rows.push(end, row);
    Ok(())
}

/// The rows of one `span` item: a container of streamed spans (`{"items": [...]}`) gives a
/// row per valid span, a span without an end time or not an object being left out and counted
/// in [`Records::invalid`]; a single span, one row or an error.
pub fn rows(payload: &[u8], ctx: RowContext<'_>) -> Result<Records> {
    let item = super::object(payload, ctx)?;
    let mut rows = Rows::new(&TABLE, ctx);
    match item.get("items") {
        Some(Value::Array(spans)) => {
            if spans.len() > MAX_ROWS_PER_ITEM {
                return Err(Error::TooMany {
                    what: "spans",
                    limit: MAX_ROWS_PER_ITEM,
                });
            }
            return Records::of_each(rows, spans, |rows, index, span| match span.as_object() {
                Some(span) => push_v2(rows, span, item.meta_at(&["items", &index.to_string()])),
                None => Err(Error::Field {
                    field: "items",
                    expected: "a list of span objects",
                }),
            });
        }
        Some(_) => {
            return Err(Error::Field {
                field: "items",
                expected: "a list",
            });
        }
        None if item.contains_key("end_timestamp") => push_v2(&mut rows, &item, item.meta_at(&[]))?,
        None => {
            let segment = Segment {
                transaction: &text(at(&item, &["data", "sentry.transaction"])),
                transaction_id: &Value::Null,
                segment_id: &text(item.get("segment_id")),
                release: &text(at(&item, &["data", "sentry.release"])),
                environment: &text(at(&item, &["data", "sentry.environment"])),
            };
            let is_segment = item.get("is_segment").and_then(Value::as_bool) == Some(true);
            push_span(&mut rows, &item, &segment, is_segment, item.meta_at(&[]))?;
        }
    }
    Ok(rows.finish().into())
}

#[cfg(test)]
mod tests {
    use super::super::tests::{ctx, printed};
    use super::*;

    #[test]
    fn streamed_spans_become_rows_with_their_attributes() {
        let payload = br#"{"items":[
            {"trace_id":"aaaabbbbccccddddeeeeffff00001111","span_id":"1111222233334444",
             "name":"GET /checkout","status":"ok","is_segment":true,
             "start_timestamp":1796464800.0,"end_timestamp":1796464800.25,
             "attributes":{"sentry.op":{"type":"string","value":"http.server"},
                           "sentry.release":{"type":"string","value":"shop@1.2"},
                           "sentry.environment":{"type":"string","value":"prod"},
                           "sentry.segment.name":{"type":"string","value":"GET /checkout"},
                           "http.response.status_code":{"type":"integer","value":200}}},
            {"trace_id":"aaaabbbbccccddddeeeeffff00001111","span_id":"5555666677778888",
             "parent_span_id":"1111222233334444","name":"SELECT cart","status":"ok",
             "start_timestamp":1796464800.05,"end_timestamp":1796464800.1,
             "attributes":{"sentry.op":{"type":"string","value":"db"}}}
        ]}"#;
        let rows = rows(payload, ctx()).unwrap().rows;
        assert_eq!(rows.len(), 2);
        let text = printed(&rows);
        assert!(text.contains("| GET /checkout "), "{text}");
        assert!(text.contains("http.server"), "{text}");
        assert!(text.contains("| 250.0 "), "{text}");
        assert!(text.contains("| 50.0 "), "{text}");
        assert!(text.contains("http.response.status_code: 200"), "{text}");
        assert!(text.contains("shop@1.2"), "{text}");
    }

    #[test]
    fn a_span_without_an_end_is_refused_by_name() {
        let err = rows(br#"{"items":[{"span_id":"1","start_timestamp":1}]}"#, ctx()).unwrap_err();
        assert_eq!(err.to_string(), "`end_timestamp` is missing or not a time");
        let err = rows(br#"{"items":{}}"#, ctx()).unwrap_err();
        assert_eq!(err.to_string(), "`items` is missing or not a list");
        let many = format!(
            r#"{{"items":[{}]}}"#,
            vec![r#"{"end_timestamp":1}"#; MAX_ROWS_PER_ITEM + 1].join(",")
        );
        assert!(matches!(
            rows(many.as_bytes(), ctx()),
            Err(Error::TooMany { .. })
        ));
    }

    #[test]
    fn a_single_span_of_the_older_shape_is_one_row() {
        let payload = br#"{"trace_id":"ab","span_id":"cd","op":"cache.get","description":"user:1",
            "start_timestamp":"2026-12-05T10:00:00Z","timestamp":"2026-12-05T10:00:00.002Z",
            "tags":{"hit":"true"},"data":{"sentry.transaction":"job"}}"#;
        let text = printed(&rows(payload, ctx()).unwrap().rows);
        assert!(text.contains("cache.get"), "{text}");
        assert!(text.contains("| 2.0 "), "{text}");
        assert!(text.contains("{hit: true}"), "{text}");
        assert!(text.contains("| job "), "{text}");
    }

    #[test]
    fn a_streamed_span_without_an_end_is_left_out_and_counted() {
        let payload = br#"{"items":[
            {"trace_id":"aaaabbbbccccddddeeeeffff00001111","span_id":"1111222233334444",
             "name":"kept","start_timestamp":1796464800,"end_timestamp":1796464801},
            {"trace_id":"aaaabbbbccccddddeeeeffff00001111","span_id":"5555666677778888",
             "name":"never ended","start_timestamp":1796464800}]}"#;
        let kept = rows(payload, ctx()).unwrap();
        assert_eq!((kept.rows.len(), kept.invalid), (1, 1));
        assert!(printed(&kept.rows).contains("1111222233334444"));
    }
}
