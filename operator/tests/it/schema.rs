//! Rung 2 (placeholder until the schema tests land).
