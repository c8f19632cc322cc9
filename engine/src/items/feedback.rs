//! The `feedback` table: `feedback` items (an event with `contexts.feedback`) and the legacy
//! `user_report` items (`event_id`, `name`, `email`, `comments`), with the event they are
//! about in `associated_event_id` when there is one.

use serde_json::{Map, Value};

use super::{
    Column, Error, ItemRow, ItemTable, Result, RowContext, Rows, at, tags, text, time, uuid,
};

pub static TABLE: ItemTable = ItemTable::new(
    "feedback",
    4,
    &[
        ("event_id", Column::Text),
        ("source", Column::Text),
        ("message", Column::Text),
        ("name", Column::Text),
        ("contact_email", Column::Text),
        ("url", Column::Text),
        ("associated_event_id", Column::Text),
        ("replay_id", Column::Text),
        ("release", Column::Text),
        ("environment", Column::Text),
        ("user_id", Column::Text),
        ("tags", Column::Map),
        ("meta", Column::Text),
    ],
);

/// The row of one `feedback` item.
pub fn feedback_rows(payload: &[u8], ctx: RowContext<'_>) -> Result<Vec<ItemRow>> {
    let item = super::object(payload, ctx)?;
    let Some(Value::Object(feedback)) = at(&item, &["contexts", "feedback"]) else {
        return Err(Error::Field {
            field: "contexts.feedback",
            expected: "an object",
        });
    };
    let message = text(feedback.get("message"));
    if message.is_null() {
        return Err(Error::Field {
            field: "contexts.feedback.message",
            expected: "a text",
        });
    }
    let event_id = uuid(item.get("event_id"));
    let mut row = Map::new();
    row.insert("event_id".into(), event_id.clone());
    row.insert("source".into(), "feedback".into());
    row.insert("message".into(), message);
    row.insert("name".into(), text(feedback.get("name")));
    row.insert("contact_email".into(), text(feedback.get("contact_email")));
    row.insert("url".into(), text(feedback.get("url")));
    row.insert(
        "associated_event_id".into(),
        uuid(feedback.get("associated_event_id")),
    );
    row.insert("replay_id".into(), text(feedback.get("replay_id")));
    row.insert("release".into(), text(item.get("release")));
    row.insert("environment".into(), text(item.get("environment")));
    row.insert("user_id".into(), text(at(&item, &["user", "id"])));
    row.insert("tags".into(), tags(item.get("tags")));
    row.insert("meta".into(), item.meta_at(&[]));
    let mut rows = Rows::new(&TABLE, ctx).of_item(&event_id);
    rows.push(time(item.get("timestamp")).unwrap_or(ctx.received), row);
    Ok(rows.finish())
}

/// The row of one legacy `user_report` item.
pub fn user_report_rows(payload: &[u8], ctx: RowContext<'_>) -> Result<Vec<ItemRow>> {
    let item = super::object(payload, ctx)?;
    let associated = uuid(item.get("event_id"));
    if associated.is_null() {
        return Err(Error::Field {
            field: "event_id",
            expected: "a UUID",
        });
    }
    let mut row = Map::new();
    row.insert("event_id".into(), Value::Null);
    row.insert("source".into(), "user_report".into());
    row.insert("message".into(), text(item.get("comments")));
    row.insert("name".into(), text(item.get("name")));
    row.insert("contact_email".into(), text(item.get("email")));
    row.insert("url".into(), Value::Null);
    row.insert("associated_event_id".into(), associated);
    row.insert("replay_id".into(), Value::Null);
    row.insert("release".into(), Value::Null);
    row.insert("environment".into(), Value::Null);
    row.insert("user_id".into(), Value::Null);
    row.insert("tags".into(), Value::Object(Map::new()));
    row.insert("meta".into(), item.meta_at(&[]));
    let mut rows = Rows::new(&TABLE, ctx);
    rows.push(ctx.received, row);
    Ok(rows.finish())
}

#[cfg(test)]
mod tests {
    use super::super::tests::{ctx, printed};
    use super::*;

    #[test]
    fn feedback_and_user_reports_are_rows_linked_to_their_event() {
        let feedback = br#"{"event_id":"11111111111111111111111111111111","timestamp":1796464800,
            "contexts":{"feedback":{"message":"the button does nothing","contact_email":"a@b.c",
            "name":"Ann","url":"https://shop/cart","associated_event_id":"22222222-2222-2222-2222-222222222222"}},
            "release":"shop@1.2","tags":{"page":"cart"}}"#;
        let report = br#"{"event_id":"33333333333333333333333333333333","name":"Bo",
            "email":"bo@x.y","comments":"it crashed"}"#;
        let mut rows = feedback_rows(feedback, ctx()).unwrap();
        rows.extend(user_report_rows(report, ctx()).unwrap());
        let text = printed(&rows);
        assert!(text.contains("the button does nothing"), "{text}");
        assert!(text.contains("22222222222222222222222222222222"), "{text}");
        assert!(text.contains("| user_report "), "{text}");
        assert!(text.contains("33333333333333333333333333333333"), "{text}");
        assert!(text.contains("it crashed"), "{text}");
        assert!(text.contains("{page: cart}"), "{text}");
    }

    #[test]
    fn feedback_without_a_message_is_refused_by_name() {
        let err = feedback_rows(br#"{"contexts":{"feedback":{}}}"#, ctx()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "`contexts.feedback.message` is missing or not a text"
        );
        let err = user_report_rows(br#"{"name":"x"}"#, ctx()).unwrap_err();
        assert_eq!(err.to_string(), "`event_id` is missing or not a UUID");
    }
}
