//! The normalized event: the columns the engine stores plus the full JSON.

use chrono::{DateTime, Utc};
use serde::Serialize;
use uuid::Uuid;

use crate::grouping::Grouping;

/// A normalized event, produced by [`crate::normalize::normalize_event`].
///
/// The scalar fields are extracted from `json`, which is the complete normalized event as
/// compact JSON; normalizing `json` again yields an equal `Event`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Event {
    pub event_id: Uuid,
    pub timestamp: DateTime<Utc>,
    pub received: DateTime<Utc>,
    /// `fatal`, `error`, `warning`, `info` or `debug`; default `error`.
    pub level: String,
    /// Default `other`.
    pub platform: String,
    pub release: Option<String>,
    pub environment: Option<String>,
    pub server_name: Option<String>,
    pub transaction: Option<String>,
    /// The formatted log message (`logentry.formatted`).
    pub message: Option<String>,
    /// `"ZeroDivisionError: division by zero"`, else the message's first line, else
    /// `"<unlabeled event>"`.
    pub title: String,
    /// Type of the main exception (the last of `exception.values`).
    pub exception_type: Option<String>,
    pub exception_value: Option<String>,
    /// Module or file plus function of the top-most in-app frame of the main exception.
    pub culprit: Option<String>,
    /// Number of frames in the main exception's stack trace.
    pub frame_count: i32,
    pub user_id: Option<String>,
    pub user_email: Option<String>,
    pub user_ip: Option<String>,
    pub user_username: Option<String>,
    /// Tags with unique keys, in the order sent.
    pub tags: Vec<(String, String)>,
    /// The fingerprint as sent by the SDK.
    pub fingerprint: Option<Vec<String>>,
    pub sdk_name: Option<String>,
    pub sdk_version: Option<String>,
    /// `contexts.trace.trace_id`.
    pub trace_id: Option<String>,
    /// The full normalized event, compact JSON.
    pub json: String,
    /// Computed with the columns, from the same normalized value; read by
    /// [`crate::grouping::group`].
    #[serde(skip)]
    pub(crate) grouping: Grouping,
    /// The scrubbing rules that changed something in the event at ingest (`@password:filter`,
    /// a project's rule), each once; empty when nothing was changed or the event was not
    /// processed ([`crate::normalize::process_event`] fills it, replay does not).
    #[serde(skip)]
    pub scrubbed_by: Vec<String>,
}
