//! `faultline-operator render`: every object the builders make for one `ErrorTracker`, as a
//! YAML multi-document stream, with no cluster involved.
//!
//! The input has no uid (it was never stored), so owner references carry a fixed placeholder
//! uid. DSN keys and the admin token are generated fresh, as on a
//! first reconcile.

use crate::builders::{self, Credentials};
use crate::crd::ErrorTracker;

/// Uid put on a rendered tracker that has none.
pub const PLACEHOLDER_UID: &str = "00000000-0000-0000-0000-000000000000";

/// Errors of [`render`].
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot parse the ErrorTracker: {0}")]
    Parse(#[source] serde_yaml::Error),
    #[error(transparent)]
    Build(#[from] builders::Error),
    #[error("cannot write YAML: {0}")]
    Write(#[source] serde_yaml::Error),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Parses one `ErrorTracker` document and renders its objects. A missing namespace becomes
/// `default`.
pub fn render(tracker_yaml: &str) -> Result<String> {
    let mut tracker: ErrorTracker = serde_yaml::from_str(tracker_yaml).map_err(Error::Parse)?;
    tracker
        .metadata
        .namespace
        .get_or_insert_with(|| "default".to_owned());
    tracker
        .metadata
        .uid
        .get_or_insert_with(|| PLACEHOLDER_UID.to_owned());
    let desired = builders::build(&tracker, &Credentials::generate(&tracker))?;
    let mut out = String::new();
    for value in desired.to_values() {
        out.push_str("---\n");
        out.push_str(&serde_yaml::to_string(&value).map_err(Error::Write)?);
    }
    Ok(out)
}
