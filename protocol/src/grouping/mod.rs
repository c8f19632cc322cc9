//! Grouping: which issue an event belongs to.
use md5::{Digest, Md5};
use sha2::Sha256;

use crate::Event;

/// What decided an event's group.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum GroupingMethod {
    /// The SDK's `fingerprint`.
    Fingerprint,
    /// Exception types plus frames.
    Exception,
    /// A stack trace without exception (top-level or crashed thread).
    Stacktrace,
    /// The normalized message.
    Message,
    /// Nothing to group by: all such events of a project share one issue.
    Fallback,
}

impl GroupingMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Fingerprint => "fingerprint",
            Self::Exception => "exception",
            Self::Stacktrace => "stacktrace",
            Self::Message => "message",
            Self::Fallback => "fallback",
        }
    }
}

/// The grouping result of one event.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Grouping {
    /// md5 of the components, 32 lowercase hex digits.
    pub hash: String,
    pub method: GroupingMethod,
    /// The strings that were hashed, for display and debugging.
    pub components: Vec<String>,
}

/// Groups a normalized event.
pub fn group(event: &Event) -> Grouping {
    let components = vec![event.title.clone()];
    Grouping {
        hash: hash_components(&components),
        method: GroupingMethod::Fallback,
        components,
    }
}

fn hash_components(components: &[String]) -> String {
    let mut md5 = Md5::new();
    for c in components {
        md5.update(c.as_bytes());
        md5.update([0]);
    }
    hex::encode(md5.finalize())
}

/// The issue id of a grouping hash in a project: a positive `i64` that every node derives
/// alike (the first 8 bytes of `sha256("<project>:<hash>")`, top bit cleared, never 0).
pub fn issue_id(project_id: u64, hash: &str) -> i64 {
    let digest = Sha256::new()
        .chain_update(project_id.to_string())
        .chain_update(b":")
        .chain_update(hash)
        .finalize();
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(&digest[..8]);
    let id = (u64::from_be_bytes(bytes) & (i64::MAX as u64)) as i64;
    id.max(1)
}
