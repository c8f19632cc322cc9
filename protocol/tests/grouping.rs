//! grouping tests
