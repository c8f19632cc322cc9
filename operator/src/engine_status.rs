//! What a tracker's engine says about itself, in the tracker's status: the
//! `ObjectStoreReachable` condition and every project's figures (`status.projects`), from one
//! `GET /api/0/status/` per reconcile.
//!
//! The engine is asked only with a pod ready, and at most once per [`CHECK_INTERVAL`]: a
//! status write with new figures wakes the tracker's controller again, and that reconcile
//! keeps the figures it finds instead of asking again, so figures that change all the time
//! cannot keep the controller busy. The condition turning `False` publishes a Warning Event
//! `ObjectStoreUnreachable`; turning back `True` a Normal `ObjectStoreReachable`.
//!
//! `FaultlineProject`s read their figures from the tracker's status (see [`crate::project`]):
//! this module never looks at them.

use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;
use kube::ResourceExt;
use kube::runtime::events::EventType;
use tracing::warn;

use crate::conditions::condition_with;
use crate::context::Context;
use crate::crd::{ErrorTracker, ErrorTrackerStatus, ProjectFigures};
use crate::engine_api::{AdminApi, EngineStatus};

/// The condition's type.
pub const OBJECT_STORE_REACHABLE: &str = "ObjectStoreReachable";

/// The engine is asked at most this often (the default of
/// [`Context::engine_check_interval`]).
pub const CHECK_INTERVAL: Duration = Duration::from_secs(60);

/// What the operator got when it asked the engine.
#[derive(Debug, Clone, PartialEq)]
pub enum Answer {
    /// The engine answered at this time.
    Answered(EngineStatus, Timestamp),
    /// No engine could be asked, or it did not answer: why.
    Unavailable(String),
    /// The engine was asked less than [`CHECK_INTERVAL`] ago: the previous report stands.
    Fresh,
}

/// Whether `previous` holds a report younger than `interval` at `now`.
pub fn is_fresh(previous: &ErrorTrackerStatus, now: Timestamp, interval: Duration) -> bool {
    previous.engine_checked_at.as_ref().is_some_and(|at| {
        let age = now.duration_since(at.0);
        age >= k8s_openapi::jiff::SignedDuration::ZERO
            && age.unsigned_abs() < interval
            && previous
                .conditions
                .iter()
                .any(|c| c.type_ == OBJECT_STORE_REACHABLE)
    })
}

/// Fills the condition, `engineCheckedAt` and `projects` of `status` from `answer`; the
/// previous status of the tracker is `previous`. Pure, so the builders' tests pin it.
pub fn report(
    previous: &ErrorTrackerStatus,
    generation: Option<i64>,
    answer: &Answer,
    status: &mut ErrorTrackerStatus,
) {
    let condition = |status: &str, reason: &str, message: String| {
        condition_with(
            &previous.conditions,
            generation,
            OBJECT_STORE_REACHABLE,
            status,
            reason,
            message,
        )
    };
    let kept = || {
        previous
            .conditions
            .iter()
            .find(|c| c.type_ == OBJECT_STORE_REACHABLE)
            .cloned()
            .map(|c| Condition {
                observed_generation: generation,
                ..c
            })
    };
    let (found, checked_at, projects) = match answer {
        Answer::Answered(engine, at) => {
            let found = if engine.object_store.ok {
                condition(
                    "True",
                    "Reachable",
                    "the engine reads and writes the object store".into(),
                )
            } else {
                let error = engine
                    .object_store
                    .error
                    .clone()
                    .unwrap_or_else(|| "no error text".into());
                condition(
                    "False",
                    "Unreachable",
                    format!("the engine cannot reach the object store: {error}"),
                )
            };
            (Some(found), Some(Time(*at)), figures(engine))
        }
        Answer::Unavailable(why) => (
            Some(condition(
                "Unknown",
                "EngineUnavailable",
                format!("the engine cannot be asked: {why}"),
            )),
            previous.engine_checked_at.clone(),
            previous.projects.clone(),
        ),
        Answer::Fresh => (
            kept(),
            previous.engine_checked_at.clone(),
            previous.projects.clone(),
        ),
    };
    if let Some(found) = found {
        status.conditions.push(found);
    }
    status.engine_checked_at = checked_at;
    status.projects = projects;
}

/// The engine's projects as the tracker's status lists them, by organization and name.
fn figures(engine: &EngineStatus) -> Vec<ProjectFigures> {
    let mut projects: Vec<ProjectFigures> = engine
        .projects
        .iter()
        .map(|p| ProjectFigures {
            name: p.slug.clone(),
            organization: p.organization.clone(),
            events_last_hour: p.events_last_hour,
            last_event_seen: p
                .last_event_seen
                .as_deref()
                .and_then(|t| t.parse::<Timestamp>().ok())
                .map(Time),
        })
        .collect();
    projects.sort_by(|a, b| (&a.organization, &a.name).cmp(&(&b.organization, &b.name)));
    projects
}

/// The condition's status in `status` (`None` without one).
fn reachable(status: &ErrorTrackerStatus) -> Option<&str> {
    status
        .conditions
        .iter()
        .find(|c| c.type_ == OBJECT_STORE_REACHABLE)
        .map(|c| c.status.as_str())
}

/// Asks the tracker's engine (when a pod is ready and the last answer is old enough), fills
/// `status` and publishes an Event when the object store became unreachable or reachable
/// again. A failure to ask is reported in the condition, never a reconcile error.
pub(crate) async fn report_engine(
    tracker: &ErrorTracker,
    ctx: &Context,
    admin_token: &str,
    status: &mut ErrorTrackerStatus,
) {
    let previous = tracker.status.clone().unwrap_or_default();
    let now = Timestamp::now();
    let answer = if status.ready_replicas == 0 {
        Answer::Unavailable("no engine pod is ready".into())
    } else if is_fresh(&previous, now, ctx.engine_check_interval) {
        Answer::Fresh
    } else {
        let namespace = tracker.namespace().unwrap_or_default();
        let api = AdminApi::new(
            ctx.admin_service(&namespace, &tracker.name_any()),
            admin_token,
        );
        match api.status().await {
            Ok(engine) => Answer::Answered(engine, now),
            Err(err) => {
                warn!(cause = %err, "cannot read the engine's status");
                Answer::Unavailable(err.to_string())
            }
        }
    };
    report(&previous, tracker.metadata.generation, &answer, status);
    let (before, after) = (reachable(&previous), reachable(status));
    if before == after {
        return;
    }
    let message = status
        .conditions
        .iter()
        .find(|c| c.type_ == OBJECT_STORE_REACHABLE)
        .map(|c| c.message.clone())
        .unwrap_or_default();
    match after {
        Some("False") => {
            ctx.publish(
                tracker,
                EventType::Warning,
                "ObjectStoreUnreachable",
                message,
            )
            .await;
        }
        Some("True") if before == Some("False") => {
            ctx.publish(tracker, EventType::Normal, "ObjectStoreReachable", message)
                .await;
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::engine_api::{Check, ProjectFigures as EngineFigures};

    fn engine(ok: bool) -> EngineStatus {
        EngineStatus {
            checked_at: "2026-12-05T18:00:00Z".into(),
            object_store: Check {
                ok,
                error: (!ok).then(|| "s3://bucket: connection refused".into()),
            },
            wal: Check {
                ok: true,
                error: None,
            },
            figures_error: None,
            projects: vec![EngineFigures {
                id: "2".into(),
                organization: "shop".into(),
                slug: "api".into(),
                events_last_hour: Some(12),
                last_event_seen: Some("2026-12-05T17:59:01Z".into()),
            }],
        }
    }

    fn at(second: i64) -> Timestamp {
        Timestamp::from_second(second).unwrap()
    }

    #[test]
    fn a_recent_report_is_fresh_an_old_or_missing_one_is_not() {
        let mut status = ErrorTrackerStatus::default();
        report(
            &ErrorTrackerStatus::default(),
            Some(1),
            &Answer::Answered(engine(true), at(1_000)),
            &mut status,
        );
        assert!(is_fresh(&status, at(1_059), CHECK_INTERVAL));
        assert!(!is_fresh(&status, at(1_060), CHECK_INTERVAL));
        assert!(
            !is_fresh(&status, at(999), CHECK_INTERVAL),
            "a clock that went back"
        );
        assert!(!is_fresh(
            &ErrorTrackerStatus::default(),
            at(1_000),
            CHECK_INTERVAL
        ));
    }

    #[test]
    fn a_fresh_report_keeps_the_previous_figures_with_the_new_generation() {
        let mut previous = ErrorTrackerStatus::default();
        report(
            &ErrorTrackerStatus::default(),
            Some(1),
            &Answer::Answered(engine(false), at(1_000)),
            &mut previous,
        );
        let mut status = ErrorTrackerStatus::default();
        report(&previous, Some(2), &Answer::Fresh, &mut status);
        assert_eq!(status.projects, previous.projects);
        assert_eq!(status.engine_checked_at, previous.engine_checked_at);
        assert_eq!(status.conditions[0].status, "False");
        assert_eq!(status.conditions[0].observed_generation, Some(2));
        assert_eq!(
            status.conditions[0].last_transition_time,
            previous.conditions[0].last_transition_time
        );
    }
}
