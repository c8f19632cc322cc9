//! The `attachments` table: one row per `attachment` item kept (`event.attachment`, minidumps,
//! `event.view_hierarchy`, screenshots, ...: every type is kept as a plain file). The bytes are
//! an object of their own (`store/keys.rs` `attachment_object`), written durably before the row
//! is acknowledged; the row says what it is and where it belongs.
//!
//! An attachment's id is derived from its event, its place in the envelope, its file name and
//! its content, so an SDK that sends the same envelope again writes the same object and its row
//! is stored once (like a transaction's).

use serde_json::{Map, Value};
use sha2::{Digest, Sha256};

use uuid::Uuid;

use super::{Column, Error, ItemRow, ItemTable, Result, RowContext, Rows, text};

pub static TABLE: ItemTable = ItemTable::new(
    "attachments",
    5,
    &[
        ("event_id", Column::Text),
        ("attachment_id", Column::Text),
        ("filename", Column::Text),
        ("content_type", Column::Text),
        ("attachment_type", Column::Text),
        ("size", Column::Int),
        ("sha1", Column::Text),
    ],
);

/// The `attachment_type` of an item that names none (Sentry's default).
pub const DEFAULT_TYPE: &str = "event.attachment";
/// The content type of an item that names none.
pub const DEFAULT_CONTENT_TYPE: &str = "application/octet-stream";

/// What the row of one attachment says, and the id of its object.
#[derive(Debug, Clone, PartialEq)]
pub struct Attachment {
    pub event_id: Uuid,
    pub id: Uuid,
    pub size: usize,
    pub row: ItemRow,
}

/// The row of the attachment item number `index` (from 0) of an envelope about `event_id`,
/// with item headers `headers` and `payload`.
pub fn attachment(
    event_id: Option<Uuid>,
    index: usize,
    headers: &Map<String, Value>,
    payload: &[u8],
    ctx: RowContext<'_>,
) -> Result<Attachment> {
    let Some(event_id) = event_id else {
        return Err(Error::Field {
            field: "event_id (envelope header)",
            expected: "a UUID: an attachment belongs to an event",
        });
    };
    let filename = match text(headers.get("filename")) {
        Value::String(name) if !name.trim().is_empty() => name,
        _ => {
            return Err(Error::Field {
                field: "filename",
                expected: "a non-empty text",
            });
        }
    };
    let content_sha = <sha1::Sha1 as sha1::Digest>::digest(payload);
    let id = attachment_id(&event_id, index, &filename, &content_sha);
    let mut row = Map::new();
    row.insert("event_id".into(), event_id.simple().to_string().into());
    row.insert("attachment_id".into(), id.simple().to_string().into());
    row.insert("filename".into(), filename.into());
    row.insert(
        "content_type".into(),
        or_default(text(headers.get("content_type")), DEFAULT_CONTENT_TYPE),
    );
    row.insert(
        "attachment_type".into(),
        or_default(text(headers.get("attachment_type")), DEFAULT_TYPE),
    );
    row.insert("size".into(), payload.len().into());
    row.insert("sha1".into(), hex::encode(content_sha).into());
    let mut rows = Rows::new(&TABLE, ctx);
    // the object's day is the day it was received: the row sits in the same partition
    rows.push(ctx.received, row);
    let mut rows = rows.finish();
    let Some(mut row) = rows.pop() else {
        return Err(Error::Decode("no row for an attachment".into()));
    };
    row.item_id = Some(id);
    Ok(Attachment {
        event_id,
        id,
        size: payload.len(),
        row,
    })
}

fn or_default(value: Value, default: &str) -> Value {
    match value {
        Value::String(s) if !s.trim().is_empty() => Value::String(s),
        _ => Value::String(default.to_owned()),
    }
}

/// The same attachment sent again gets the same id.
fn attachment_id(event_id: &Uuid, index: usize, filename: &str, content_sha: &[u8]) -> Uuid {
    let mut hash = Sha256::new();
    hash.update(event_id.as_bytes());
    hash.update((index as u64).to_le_bytes());
    hash.update((filename.len() as u64).to_le_bytes());
    hash.update(filename.as_bytes());
    hash.update(content_sha);
    let digest = hash.finalize();
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    uuid::Builder::from_custom_bytes(bytes).into_uuid()
}

#[cfg(test)]
mod tests {
    use super::super::tests::{ctx, printed};
    use super::*;

    fn headers(json: &str) -> Map<String, Value> {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn an_attachment_is_a_row_with_its_size_and_checksum() {
        let event = Uuid::parse_str("9ec79c33ec9942ab8353589fcb2e04dc").ok();
        let a = attachment(
            event,
            0,
            &headers(r#"{"type":"attachment","filename":"log.txt","content_type":"text/plain"}"#),
            b"hello",
            ctx(),
        )
        .unwrap();
        assert_eq!(a.size, 5);
        assert_eq!(a.row.item_id, Some(a.id));
        let text = printed(std::slice::from_ref(&a.row));
        assert!(
            text.contains("| 9ec79c33ec9942ab8353589fcb2e04dc "),
            "{text}"
        );
        assert!(text.contains("| log.txt "), "{text}");
        assert!(text.contains("| text/plain "), "{text}");
        assert!(text.contains("| event.attachment "), "{text}");
        assert!(text.contains("| 5 "), "{text}");
        // SHA-1 of "hello", as Sentry lists it
        assert!(
            text.contains("aaf4c61ddcc5e8a2dabede0f3b482cd9aea9434d"),
            "{text}"
        );
        let minidump = attachment(
            event,
            1,
            &headers(r#"{"filename":"crash.dmp","attachment_type":"event.minidump"}"#),
            b"MDMP",
            ctx(),
        )
        .unwrap();
        let text = printed(std::slice::from_ref(&minidump.row));
        assert!(text.contains("| event.minidump "), "{text}");
        assert!(text.contains("| application/octet-stream "), "{text}");
    }

    #[test]
    fn the_same_attachment_sent_again_has_the_same_id() {
        let event = Uuid::parse_str("9ec79c33ec9942ab8353589fcb2e04dc").ok();
        let h = headers(r#"{"filename":"a.txt"}"#);
        let first = attachment(event, 0, &h, b"abc", ctx()).unwrap();
        let again = attachment(event, 0, &h, b"abc", ctx()).unwrap();
        assert_eq!(first.id, again.id);
        assert_ne!(
            first.id,
            attachment(event, 1, &h, b"abc", ctx()).unwrap().id
        );
        assert_ne!(
            first.id,
            attachment(event, 0, &h, b"abd", ctx()).unwrap().id
        );
    }

    #[test]
    fn an_attachment_without_an_event_or_a_name_is_refused_by_name() {
        let h = headers(r#"{"filename":"a.txt"}"#);
        let err = attachment(None, 0, &h, b"x", ctx()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "`event_id (envelope header)` is missing or not a UUID: an attachment belongs to an event"
        );
        let event = Uuid::parse_str("9ec79c33ec9942ab8353589fcb2e04dc").ok();
        let err = attachment(event, 0, &headers("{}"), b"x", ctx()).unwrap_err();
        assert_eq!(
            err.to_string(),
            "`filename` is missing or not a non-empty text"
        );
    }
}
