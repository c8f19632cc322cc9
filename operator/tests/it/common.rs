//! Shared test helpers: fixtures and fixed inputs.

use std::collections::BTreeMap;

use faultline_operator::ErrorTracker;
use faultline_operator::builders::Credentials;

/// Uid given to trackers in tests (the API server would assign one).
pub(crate) const UID: &str = "5f1c1a2e-7d3b-4c1e-9a0f-2b6f0d9e8c11";

/// A fixture tracker as the API server would hand it to the operator: defaults filled,
/// uid and generation set.
pub(crate) fn tracker(fixture: &str) -> ErrorTracker {
    let path = format!("{}/tests/fixtures/{fixture}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let mut tracker: ErrorTracker = serde_yaml::from_str(&text).expect("fixture parses");
    tracker.metadata.uid = Some(UID.to_owned());
    tracker.metadata.generation = Some(1);
    tracker
}

/// Fixed credentials: the keys below and an admin token of 64 `c`s.
pub(crate) fn credentials(tracker: &ErrorTracker) -> Credentials {
    Credentials {
        dsn_keys: keys(tracker),
        named_keys: BTreeMap::new(),
        admin_token: "c".repeat(64),
        operator_namespace: Some(faultline_operator::builders::DEFAULT_OPERATOR_NAMESPACE.into()),
        oidc_secret_version: None,
    }
}

/// A fixed DSN key per project: one hex digit repeated 32 times, `a` for the first project.
pub(crate) fn keys(tracker: &ErrorTracker) -> BTreeMap<String, String> {
    tracker
        .spec
        .projects
        .iter()
        .enumerate()
        .map(|(i, p)| (p.name.clone(), format!("{:x}", i + 10).repeat(32)))
        .collect()
}
