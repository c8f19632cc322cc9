//! Event normalization: from an SDK payload to an [`Event`].
use std::net::IpAddr;

use chrono::{DateTime, Utc};
use uuid::Uuid;

use crate::{ErrorKind, Event};

/// What the server knows about the request an event came in.
#[derive(Debug, Clone)]
pub struct NormalizeContext {
    /// When the request was received; the timestamp of events that carry none.
    pub received: DateTime<Utc>,
    /// The client's address, for `user.ip_address: "{{auto}}"`.
    pub client_ip: Option<IpAddr>,
    /// The envelope header's event id, used when the event has none.
    pub event_id: Option<Uuid>,
}

#[derive(Debug, thiserror::Error)]
pub enum NormalizeError {
    #[error("event payload is not valid JSON at line {line} column {column}: {source}")]
    Json {
        line: usize,
        column: usize,
        #[source]
        source: serde_json::Error,
    },
    #[error("event payload is a JSON {found}, expected an object")]
    NotObject { found: &'static str },
}

pub type Result<T, E = NormalizeError> = std::result::Result<T, E>;

impl NormalizeError {
    pub fn kind(&self) -> ErrorKind {
        ErrorKind::BadRequest
    }

    pub fn is_too_large(&self) -> bool {
        false
    }
}

/// Normalizes an event payload (the JSON of an `event` item or a store request).
pub fn normalize_event(payload: &[u8], ctx: &NormalizeContext) -> Result<Event> {
    let value: serde_json::Value = serde_json::from_slice(payload).map_err(|source| {
        NormalizeError::Json {
            line: source.line(),
            column: source.column(),
            source,
        }
    })?;
    if !value.is_object() {
        return Err(NormalizeError::NotObject { found: "value" });
    }
    Ok(Event {
        event_id: ctx.event_id.unwrap_or_else(Uuid::new_v4),
        timestamp: ctx.received,
        received: ctx.received,
        level: "error".into(),
        platform: "other".into(),
        release: None,
        environment: None,
        server_name: None,
        transaction: None,
        message: None,
        title: "<unlabeled event>".into(),
        exception_type: None,
        exception_value: None,
        culprit: None,
        frame_count: 0,
        user_id: None,
        user_email: None,
        user_ip: None,
        user_username: None,
        tags: Vec::new(),
        fingerprint: None,
        sdk_name: None,
        sdk_version: None,
        trace_id: None,
        json: value.to_string(),
    })
}
