//! A project's quotas (Relay's quota model), shared by the projects of an `ErrorTracker` and
//! `FaultlineProject`s: items of some Sentry data categories accepted per window.

use faultline_config::QUOTA_CATEGORIES;
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Serialize};

/// A quota: at most `limit` items of the categories per window; the items over it are dropped
/// (the rest of their envelope is kept).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct QuotaSpec {
    /// Data categories the quota counts: `error`, `transaction`, `span`, `session`,
    /// `monitor`, `log_item`, `feedback`, `attachment` (bytes, as Relay counts them),
    /// `attachment_item` (attachments). Empty or unset: every item once.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "categories_schema")]
    pub categories: Vec<String>,
    /// Items (bytes for `attachment`) per window; 0 refuses every item of the categories.
    pub limit: u64,
    /// Window length in seconds.
    #[serde(default = "super::default_window")]
    #[schemars(range(min = 1, max = 86400))]
    pub window_seconds: u64,
}

/// A list of category names, each one of [`QUOTA_CATEGORIES`] (what the engine counts).
fn categories_schema(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "array",
        "maxItems": QUOTA_CATEGORIES.len(),
        "items": {
            "type": "string",
            "enum": QUOTA_CATEGORIES,
        },
    })
}
