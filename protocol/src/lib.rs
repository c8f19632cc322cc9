//! Sentry ingest protocol (placeholder).
