//! `faultline-operator render`: every object the builders make for the `ErrorTracker`s of a
//! file, as a YAML multi-document stream, with no cluster involved.
//!
//! The input has no uid (it was never stored), so owner references carry a fixed placeholder
//! uid. DSN keys and the admin token are generated fresh, as on a
//! first reconcile.

use serde::Deserialize;

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
    #[error("the input holds no document of kind ErrorTracker")]
    NoTracker,
    #[error("cannot write YAML: {0}")]
    Write(#[source] serde_yaml::Error),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Renders the objects of every `ErrorTracker` document in `yaml` (other kinds, such as a
/// Namespace in the same file, are skipped). A missing namespace becomes `default`.
pub fn render(yaml: &str) -> Result<String> {
    let mut out = String::new();
    let mut trackers = 0;
    for document in serde_yaml::Deserializer::from_str(yaml) {
        let value = serde_yaml::Value::deserialize(document).map_err(Error::Parse)?;
        if value.get("kind").and_then(serde_yaml::Value::as_str) != Some("ErrorTracker") {
            continue;
        }
        let tracker: ErrorTracker = serde_yaml::from_value(value).map_err(Error::Parse)?;
        out.push_str(&render_one(tracker)?);
        trackers += 1;
    }
    if trackers == 0 {
        return Err(Error::NoTracker);
    }
    Ok(out)
}

fn render_one(mut tracker: ErrorTracker) -> Result<String> {
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
