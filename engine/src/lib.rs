//! faultline engine (placeholder).
