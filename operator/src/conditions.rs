//! Status conditions (`metav1.Condition`) shared by every reconciler: each carries the
//! generation it describes, and keeps its `lastTransitionTime` while its status stays.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;

/// A condition with status `True` or `False`.
pub fn condition(
    previous: &[Condition],
    generation: Option<i64>,
    type_: &str,
    status: bool,
    reason: &str,
    message: String,
) -> Condition {
    let status = if status { "True" } else { "False" };
    condition_with(previous, generation, type_, status, reason, message)
}

/// A condition with status `True`, `False` or `Unknown`; its `lastTransitionTime` is the
/// previous one while the status stays the same.
pub fn condition_with(
    previous: &[Condition],
    generation: Option<i64>,
    type_: &str,
    status: &str,
    reason: &str,
    message: String,
) -> Condition {
    let status = status.to_owned();
    let last_transition_time = previous
        .iter()
        .find(|c| c.type_ == type_ && c.status == status)
        .map(|c| c.last_transition_time.clone())
        .unwrap_or_else(|| Time(Timestamp::now()));
    Condition {
        type_: type_.to_owned(),
        status,
        reason: reason.to_owned(),
        message,
        observed_generation: generation,
        last_transition_time,
    }
}

pub fn is_true(conditions: &[Condition], type_: &str) -> bool {
    conditions
        .iter()
        .any(|c| c.type_ == type_ && c.status == "True")
}
