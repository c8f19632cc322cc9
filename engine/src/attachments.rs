//! Reading stored attachments back: the rows of an event's attachments (through SQL, so a
//! caller sees only its projects' rows) and the bytes of one (from its object, named by the
//! row: `store/keys.rs` `attachment_object`).

use bytes::Bytes;
use serde::Deserialize;
use uuid::Uuid;

use crate::query::format::{self, Format};
use crate::query::{ProjectFilter, QueryService};
use crate::store::{self, Store, keys};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{what} {given:?} is not an id of 32 hex digits")]
    BadId { what: &'static str, given: String },
    #[error("no attachment {id} of event {event_id}")]
    NotFound { event_id: String, id: String },
    #[error(transparent)]
    Query(#[from] crate::query::Error),
    #[error("cannot read the attachment: {0}")]
    Store(#[from] store::Error),
    #[error("the attachments table answered in an unexpected shape: {0}")]
    Shape(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// One stored attachment, as its row says.
#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct Stored {
    pub project_id: u64,
    /// When it was received, in milliseconds.
    pub ms: i64,
    pub event_id: String,
    pub attachment_id: String,
    pub filename: String,
    pub content_type: Option<String>,
    pub attachment_type: Option<String>,
    pub size: u64,
    pub sha1: Option<String>,
}

/// An id as the tables store it (32 lowercase hex digits), from any form a UUID is written in.
pub fn parse_id(what: &'static str, given: &str) -> Result<String> {
    Uuid::try_parse(given.trim())
        .map(|id| id.simple().to_string())
        .map_err(|_| Error::BadId {
            what,
            given: given.to_owned(),
        })
}

/// The attachments of event `event_id` that `projects` may see, oldest first.
pub async fn list(
    query: &QueryService,
    projects: &ProjectFilter,
    event_id: &str,
) -> Result<Vec<Stored>> {
    let event_id = parse_id("event id", event_id)?;
    rows(query, projects, &format!("event_id = '{event_id}'")).await
}

/// One attachment and its bytes; `NotFound` when `projects` may not see it.
pub async fn open(
    query: &QueryService,
    store: &Store,
    projects: &ProjectFilter,
    event_id: &str,
    id: &str,
) -> Result<(Stored, Bytes)> {
    let stored = get(query, projects, event_id, id).await?;
    let data = store.get(&object_of(&stored)?).await?;
    Ok((stored, data))
}

/// One attachment's row; `NotFound` when `projects` may not see it.
pub async fn get(
    query: &QueryService,
    projects: &ProjectFilter,
    event_id: &str,
    id: &str,
) -> Result<Stored> {
    let event_hex = parse_id("event id", event_id)?;
    let id_hex = parse_id("attachment id", id)?;
    rows(
        query,
        projects,
        &format!("event_id = '{event_hex}' AND attachment_id = '{id_hex}'"),
    )
    .await?
    .into_iter()
    .next()
    .ok_or(Error::NotFound {
        event_id: event_hex,
        id: id_hex,
    })
}

/// The object holding an attachment's bytes.
fn object_of(stored: &Stored) -> Result<object_store::path::Path> {
    let bad = |what: &str| Error::Shape(format!("{what} of attachment {}", stored.attachment_id));
    let event_id = Uuid::try_parse(&stored.event_id).map_err(|_| bad("event id"))?;
    let id = Uuid::try_parse(&stored.attachment_id).map_err(|_| bad("id"))?;
    let day = chrono::DateTime::from_timestamp_millis(stored.ms).ok_or_else(|| bad("time"))?;
    Ok(keys::attachment_object(
        stored.project_id,
        &day.format("%Y-%m-%d").to_string(),
        &event_id,
        &id,
    ))
}

/// `where_clause` holds only ids checked by [`parse_id`].
async fn rows(
    query: &QueryService,
    projects: &ProjectFilter,
    where_clause: &str,
) -> Result<Vec<Stored>> {
    let sql = format!(
        "SELECT project_id, CAST(timestamp AS BIGINT) AS ms, event_id, attachment_id, filename, \
         content_type, attachment_type, size, sha1 FROM attachments WHERE {where_clause} \
         ORDER BY timestamp, filename, attachment_id LIMIT 1000"
    );
    let output = query.run(projects, &sql).await?;
    let json = format::encode(&output, Format::Json)?;
    serde_json::from_slice(&json).map_err(|e| Error::Shape(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_taken_in_any_uuid_form_and_nothing_else() {
        assert_eq!(
            parse_id("event id", "9EC79C33-EC99-42AB-8353-589FCB2E04DC").unwrap(),
            "9ec79c33ec9942ab8353589fcb2e04dc"
        );
        let err = parse_id("event id", "x' OR '1'='1").unwrap_err();
        assert_eq!(
            err.to_string(),
            "event id \"x' OR '1'='1\" is not an id of 32 hex digits"
        );
    }
}
