//! faultline operator (placeholder).
