//! Sentry's ingest protocol, the way Sentry's Relay implements it: pure functions, no I/O.
//!
//! # Layout
//! The modules follow the path of a request through the engine's ingest handler:
//!
//! - [`auth`]: the DSN public key from `X-Sentry-Auth`, `Authorization` or `?sentry_key=`, and
//!   DSN strings (the envelope header `dsn`).
//! - [`decode`]: request bodies by `Content-Encoding` (gzip, deflate, br, zstd, chains), with a
//!   hard output limit so compression bombs fail early; legacy base64 store bodies.
//! - [`depth`]: the nesting-depth limit of every JSON payload, checked by a scan without
//!   recursion before any parser, normalizer or serializer recurses over it.
//! - [`envelope`]: the envelope format (header line, items with optional `length`), limits per
//!   item type. Payloads stay in the request buffer; items carry byte ranges.
//! - [`normalize`]: an event payload into an [`Event`]: fills defaults (id, timestamp, level),
//!   accepts legacy shapes (`sentry.interfaces.*`, bare lists, tags as pairs), fixes or drops
//!   invalid fields, and extracts the columns the engine stores. Normalizing `Event::json`
//!   again yields the same `Event`.
//! - [`scrub`]: personal data removed from normalized events by a project's rules (Relay's
//!   data scrubber and PII config), with what was removed recorded in `_meta`.
//! - [`grouping`]: the grouping hash of an event (fingerprint, exception and in-app frames,
//!   message, fallback) and the stable issue id derived from it.
//!
//! Every error type says whether it means "bad request", "unauthorized" or "too large"
//! through `kind()`, so the HTTP layer maps it to 400, 401 or 413 in one place.
//!
//! User-facing descriptions: `docs/protocol.md` and `docs/grouping.md`. Speed:
//! `cargo bench -p faultline-protocol --profile bench-fast --bench normalize` prints the time
//! per fixture event.

pub mod auth;
pub mod decode;
pub mod depth;
pub mod envelope;
mod event;
pub mod grouping;
pub mod normalize;
pub mod scrub;
mod view;

pub use event::Event;

/// How a protocol error should be answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// The request is malformed (HTTP 400).
    BadRequest,
    /// Credentials are malformed (HTTP 401).
    Unauthorized,
    /// A size limit was exceeded (HTTP 413).
    TooLarge,
}
