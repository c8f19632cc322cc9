//! Integration tests of faultline-protocol, one binary with a module per area.

mod auth;
mod decode;
mod envelope;
mod fixtures;
mod grouping;
mod normalize;
