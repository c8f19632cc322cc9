//! Sentry envelopes: a JSON header line, then items, each a JSON header line and a payload.
//!
//! ```text
//! {"event_id":"9ec79c33ec9942ab8353589fcb2e04dc","dsn":"https://key@host/42"}\n
//! {"type":"attachment","length":10,"filename":"hello.txt"}\n
//! \xef\xbb\xbfHello\r\n\n
//! {"type":"event"}\n
//! {"message":"hello world","level":"error"}\n
//! ```
//!
//! An item with `length` has exactly that many payload bytes (which may contain newlines);
//! without it the payload runs to the next newline or the end. The trailing newline of the
//! envelope is optional and blank lines between items are skipped. Payloads are not copied:
//! an [`Item`] holds the byte range of its payload in the parsed buffer. Errors number items
//! from 1.

use std::ops::Range;

use chrono::{DateTime, Utc};
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::ErrorKind;
use crate::depth::{MAX_JSON_DEPTH, check_depth};

/// Size limits applied while parsing, per item.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EnvelopeLimits {
    /// Limit for event-like items (events, transactions, security reports, check-ins, logs,
    /// spans, sessions, user reports, replay events, client reports). Relay's default: 1 MiB.
    pub max_event_size: usize,
    /// Limit for replay recordings, profiles and items of unknown types. Relay's default:
    /// 100 MiB. `attachment` items are not checked here: the caller refuses one over its limit
    /// alone and keeps the rest of the envelope.
    pub max_attachment_size: usize,
}

impl Default for EnvelopeLimits {
    fn default() -> Self {
        Self {
            max_event_size: 1024 * 1024,
            max_attachment_size: 100 * 1024 * 1024,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum EnvelopeError {
    #[error("envelope is empty")]
    Empty,
    #[error("envelope header is not valid JSON: {0}")]
    HeaderJson(#[source] serde_json::Error),
    #[error("envelope header is not a JSON object")]
    HeaderNotObject,
    #[error("envelope header event_id {0:?} is not a UUID")]
    HeaderEventId(String),
    #[error("item {index} header is not valid JSON: {source}")]
    ItemHeaderJson {
        index: usize,
        #[source]
        source: serde_json::Error,
    },
    #[error("item {index} header is not a JSON object")]
    ItemHeaderNotObject { index: usize },
    #[error("item {index} header has no string `type`")]
    MissingItemType { index: usize },
    #[error("item {index} ({ty}) has an invalid length: {reason}")]
    InvalidLength {
        index: usize,
        ty: String,
        reason: &'static str,
    },
    #[error("item {index} ({ty}) declares length {length} but only {available} bytes follow")]
    Truncated {
        index: usize,
        ty: String,
        length: usize,
        available: usize,
    },
    #[error("item {index} ({ty}) payload is not followed by a newline")]
    MissingNewline { index: usize, ty: String },
    #[error("envelope header {0}")]
    HeaderTooDeep(#[source] crate::depth::DepthError),
    #[error("item {index} header {source}")]
    ItemHeaderTooDeep {
        index: usize,
        #[source]
        source: crate::depth::DepthError,
    },
    #[error("item {index} ({ty}) exceeds {limit_name} of {limit} bytes")]
    ItemTooLarge {
        index: usize,
        ty: String,
        limit_name: &'static str,
        limit: usize,
        /// Every item of the refused envelope that could be read, the one over the limit
        /// among them: what the refusal cost, to count by category (Relay counts each).
        items: Vec<Item>,
    },
}

pub type Result<T, E = EnvelopeError> = std::result::Result<T, E>;

impl EnvelopeError {
    /// True if an item exceeded a size limit (HTTP 413).
    pub fn is_too_large(&self) -> bool {
        matches!(self, Self::ItemTooLarge { .. })
    }

    pub fn kind(&self) -> ErrorKind {
        if self.is_too_large() {
            ErrorKind::TooLarge
        } else {
            ErrorKind::BadRequest
        }
    }
}

/// The type of an envelope item, from its `type` header.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum ItemType {
    Event,
    Transaction,
    Attachment,
    Session,
    Sessions,
    ClientReport,
    CheckIn,
    Log,
    Span,
    Profile,
    ReplayEvent,
    ReplayRecording,
    UserReport,
    /// User feedback: an event with `contexts.feedback` (the successor of `user_report`).
    Feedback,
    Security,
    FormData,
    RawSecurity,
    /// Any other type, kept by name (Relay forwards unknown items unchanged).
    Other(String),
}

impl ItemType {
    /// The type by its name in the item header.
    pub fn from_name(name: &str) -> Self {
        match name {
            "event" => Self::Event,
            "transaction" => Self::Transaction,
            "attachment" => Self::Attachment,
            "session" => Self::Session,
            "sessions" => Self::Sessions,
            "client_report" => Self::ClientReport,
            "check_in" => Self::CheckIn,
            "log" => Self::Log,
            "span" => Self::Span,
            "profile" => Self::Profile,
            "replay_event" => Self::ReplayEvent,
            "replay_recording" => Self::ReplayRecording,
            "user_report" => Self::UserReport,
            "feedback" => Self::Feedback,
            "security" => Self::Security,
            "form_data" => Self::FormData,
            "raw_security" => Self::RawSecurity,
            other => Self::Other(other.to_owned()),
        }
    }

    /// The name used in item headers.
    pub fn as_str(&self) -> &str {
        match self {
            Self::Event => "event",
            Self::Transaction => "transaction",
            Self::Attachment => "attachment",
            Self::Session => "session",
            Self::Sessions => "sessions",
            Self::ClientReport => "client_report",
            Self::CheckIn => "check_in",
            Self::Log => "log",
            Self::Span => "span",
            Self::Profile => "profile",
            Self::ReplayEvent => "replay_event",
            Self::ReplayRecording => "replay_recording",
            Self::UserReport => "user_report",
            Self::Feedback => "feedback",
            Self::Security => "security",
            Self::FormData => "form_data",
            Self::RawSecurity => "raw_security",
            Self::Other(name) => name,
        }
    }

    /// Whether an item of this type is a container counted by its records (each log record,
    /// each span), as Relay counts `log_item` and `span`, rather than once.
    pub fn counts_records(&self) -> bool {
        matches!(self, Self::Log | Self::Span)
    }

    /// Which limit applies to items of this type: attachment-like binary items, or events.
    fn is_attachment_like(&self) -> bool {
        matches!(
            self,
            Self::Attachment | Self::ReplayRecording | Self::Profile | Self::Other(_)
        )
    }
}

impl std::fmt::Display for ItemType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The envelope header line.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EnvelopeHeaders {
    pub event_id: Option<Uuid>,
    pub dsn: Option<String>,
    /// When the SDK sent the envelope, if given as RFC 3339.
    pub sent_at: Option<DateTime<Utc>>,
    /// Every other header, as sent.
    pub rest: Map<String, Value>,
}

/// One item: its type, its headers and where its payload is in the envelope buffer.
#[derive(Debug, Clone, PartialEq)]
pub struct Item {
    pub ty: ItemType,
    /// All item headers as sent, including `type` and `length`.
    pub headers: Map<String, Value>,
    /// Byte range of the payload in the buffer given to [`Envelope::parse`].
    pub range: Range<usize>,
}

impl Item {
    /// The payload bytes, given the buffer the envelope was parsed from.
    pub fn payload<'a>(&self, data: &'a [u8]) -> &'a [u8] {
        &data[self.range.clone()]
    }

    /// Length of the payload in bytes.
    pub fn len(&self) -> usize {
        self.range.len()
    }

    pub fn is_empty(&self) -> bool {
        self.range.is_empty()
    }

    /// A string item header such as `filename` or `content_type`.
    pub fn header_str(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(Value::as_str)
    }

    /// How many records the item holds, as quotas and outcomes count it: a `log` or `span`
    /// container's `item_count` header (each log record or span counts, as Relay counts
    /// them), 1 for every other item and for a container without a positive count.
    pub fn records(&self) -> u64 {
        if !self.ty.counts_records() {
            return 1;
        }
        self.headers
            .get("item_count")
            .and_then(Value::as_u64)
            .filter(|n| *n > 0)
            .unwrap_or(1)
    }
}

/// A parsed envelope.
#[derive(Debug, Clone, PartialEq)]
pub struct Envelope {
    pub headers: EnvelopeHeaders,
    pub items: Vec<Item>,
}

impl Envelope {
    /// Parses an envelope, checking each item against `limits`.
    pub fn parse(data: &[u8], limits: &EnvelopeLimits) -> Result<Envelope> {
        if data.trim_ascii().is_empty() {
            return Err(EnvelopeError::Empty);
        }
        let (header_line, mut offset) = line_at(data, 0);
        let headers = parse_headers(header_line)?;
        let mut items = Vec::new();
        // the first item over its limit; the items after it are still read, to be counted
        let mut too_large = None;
        loop {
            // blank lines between items are tolerated
            while offset < data.len() && matches!(data[offset], b'\n' | b'\r' | b' ' | b'\t') {
                offset += 1;
            }
            if offset >= data.len() {
                break;
            }
            let index = items.len() + 1; // 1-based in messages
            let (item, next) = match parse_item(data, offset, index) {
                Ok(parsed) => parsed,
                Err(err) if too_large.is_none() => return Err(err),
                // an unreadable item after one over its limit: the limit is the answer
                Err(_) => break,
            };
            if too_large.is_none()
                && let Some((limit_name, limit)) = limits.exceeded_by(&item)
            {
                too_large = Some((index, item.ty.to_string(), limit_name, limit));
            }
            items.push(item);
            offset = next;
        }
        if let Some((index, ty, limit_name, limit)) = too_large {
            return Err(EnvelopeError::ItemTooLarge {
                index,
                ty,
                limit_name,
                limit,
                items,
            });
        }
        Ok(Envelope { headers, items })
    }
}

/// Parses an envelope's header line alone, e.g. to authenticate by its `dsn` before the rest of
/// the body is decompressed.
pub fn parse_header_line(line: &[u8]) -> Result<EnvelopeHeaders> {
    if line.trim_ascii().is_empty() {
        return Err(EnvelopeError::Empty);
    }
    parse_headers(line)
}

/// The line starting at `start` (without its `\n`) and the offset after the newline.
fn line_at(data: &[u8], start: usize) -> (&[u8], usize) {
    match memchr(b'\n', &data[start..]) {
        Some(pos) => (&data[start..start + pos], start + pos + 1),
        None => (&data[start..], data.len()),
    }
}

fn memchr(needle: u8, haystack: &[u8]) -> Option<usize> {
    haystack.iter().position(|b| *b == needle)
}

fn parse_headers(line: &[u8]) -> Result<EnvelopeHeaders> {
    check_depth(line, MAX_JSON_DEPTH).map_err(EnvelopeError::HeaderTooDeep)?;
    let value: Value = serde_json::from_slice(line).map_err(EnvelopeError::HeaderJson)?;
    let Value::Object(mut rest) = value else {
        return Err(EnvelopeError::HeaderNotObject);
    };
    let event_id = match rest.remove("event_id") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => {
            Some(Uuid::try_parse(&s).map_err(|_| EnvelopeError::HeaderEventId(s))?)
        }
        Some(other) => return Err(EnvelopeError::HeaderEventId(other.to_string())),
    };
    let dsn = match rest.remove("dsn") {
        Some(Value::String(s)) => Some(s),
        _ => None,
    };
    let sent_at = match rest.get("sent_at") {
        Some(Value::String(s)) => DateTime::parse_from_rfc3339(s)
            .ok()
            .map(|t| t.with_timezone(&Utc)),
        _ => None,
    };
    Ok(EnvelopeHeaders {
        event_id,
        dsn,
        sent_at,
        rest,
    })
}

fn parse_item(data: &[u8], offset: usize, index: usize) -> Result<(Item, usize)> {
    let (line, payload_start) = line_at(data, offset);
    check_depth(line, MAX_JSON_DEPTH)
        .map_err(|source| EnvelopeError::ItemHeaderTooDeep { index, source })?;
    let value: Value = serde_json::from_slice(line)
        .map_err(|source| EnvelopeError::ItemHeaderJson { index, source })?;
    let Value::Object(headers) = value else {
        return Err(EnvelopeError::ItemHeaderNotObject { index });
    };
    let ty = match headers.get("type") {
        Some(Value::String(name)) => ItemType::from_name(name),
        _ => return Err(EnvelopeError::MissingItemType { index }),
    };
    let (range, next) = match headers.get("length") {
        None | Some(Value::Null) => {
            let (payload, next) = line_at(data, payload_start);
            (payload_start..payload_start + payload.len(), next)
        }
        Some(length) => {
            let invalid = |reason| EnvelopeError::InvalidLength {
                index,
                ty: ty.to_string(),
                reason,
            };
            let length = length
                .as_u64()
                .ok_or_else(|| invalid("not a non-negative integer"))?;
            let length = usize::try_from(length).map_err(|_| invalid("too large"))?;
            let available = data.len().saturating_sub(payload_start);
            if length > available {
                return Err(EnvelopeError::Truncated {
                    index,
                    ty: ty.to_string(),
                    length,
                    available,
                });
            }
            let end = payload_start + length;
            let next = match data.get(end) {
                None => end,
                Some(b'\n') => end + 1,
                Some(b'\r') if data.get(end + 1) == Some(&b'\n') => end + 2,
                Some(_) => {
                    return Err(EnvelopeError::MissingNewline {
                        index,
                        ty: ty.to_string(),
                    });
                }
            };
            (payload_start..end, next)
        }
    };
    Ok((Item { ty, headers, range }, next))
}

impl EnvelopeLimits {
    /// The limit `item` is over, by name and size, if any.
    fn exceeded_by(&self, item: &Item) -> Option<(&'static str, usize)> {
        // An attachment over its limit is refused alone by the caller (Relay's limits count
        // per attachment and per envelope), so one large file does not cost the envelope its
        // event.
        if item.ty == ItemType::Attachment {
            return None;
        }
        let (limit_name, limit) = if item.ty.is_attachment_like() {
            ("max_attachment_size", self.max_attachment_size)
        } else {
            ("max_event_size", self.max_event_size)
        };
        (item.len() > limit).then_some((limit_name, limit))
    }
}
