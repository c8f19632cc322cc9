//! The outbox: one create-only object per delivery, one per attempt, and the rules for retrying.
//!
//! ```text
//! alerts/project=<id>/outbox/<delivery id>.json
//! alerts/project=<id>/attempts/<delivery id>/<attempt, 4 digits>.json
//! alerts/fired/rule=<rule>/project=<id>/issue=<issue>/<u64::MAX - ms, 20 digits>.json
//! ```

use std::time::Duration;

use chrono::{DateTime, Utc};
use object_store::path::Path as ObjectPath;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::payload::AlertContext;

/// One message to one channel, as decided. Never changes once written.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Delivery {
    pub id: String,
    pub channel: String,
    /// What was decided: `new`, `regression:<ms>`, `frequency:<bucket>`, `resolved:<ms>`.
    pub trigger_key: String,
    /// The node that sends it.
    pub node: String,
    pub created: DateTime<Utc>,
    pub context: AlertContext,
}

/// The outcome of one attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Delivered,
    /// Will be retried.
    Failed,
    /// Failed for good (a permanent error, or the last attempt).
    GaveUp,
    /// Not sent: the rule already alerted on the issue within its interval.
    Suppressed,
}

impl Status {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Delivered => "delivered",
            Self::Failed => "failed",
            Self::GaveUp => "gave_up",
            Self::Suppressed => "suppressed",
        }
    }

    /// True when no further attempt follows.
    pub fn is_final(self) -> bool {
        self != Self::Failed
    }
}

/// One row of `alert_deliveries`: a delivery attempt, or a suppression (attempt 0).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Attempt {
    pub delivery_id: String,
    pub attempt: u32,
    pub at: DateTime<Utc>,
    pub status: Status,
    #[serde(default)]
    pub response_code: Option<u16>,
    #[serde(default)]
    pub error: Option<String>,
    #[serde(default)]
    pub next_attempt: Option<DateTime<Utc>>,
    pub org: String,
    pub project_id: u64,
    pub project: String,
    pub rule: String,
    pub channel: String,
    pub kind: String,
    pub issue_id: i64,
    pub trigger: String,
}

/// The delivery id of a decision: the same rule, channel, issue and decision always give the
/// same id, on every node and every replay.
pub fn delivery_id(
    rule: &str,
    channel: &str,
    project_id: u64,
    issue_id: i64,
    trigger_key: &str,
) -> String {
    let mut hash = Sha256::new();
    for part in [
        rule,
        channel,
        &project_id.to_string(),
        &issue_id.to_string(),
        trigger_key,
    ] {
        hash.update(part.as_bytes());
        hash.update([0]);
    }
    hex::encode(&hash.finalize()[..16])
}

pub fn project_prefix(project_id: u64) -> ObjectPath {
    ObjectPath::from(format!("alerts/project={project_id}"))
}

pub fn outbox_path(project_id: u64, id: &str) -> ObjectPath {
    ObjectPath::from(format!("alerts/project={project_id}/outbox/{id}.json"))
}

pub fn attempt_path(project_id: u64, id: &str, attempt: u32) -> ObjectPath {
    ObjectPath::from(format!(
        "alerts/project={project_id}/attempts/{id}/{attempt:04}.json"
    ))
}

pub fn fired_prefix(rule: &str, project_id: u64, issue_id: i64) -> ObjectPath {
    ObjectPath::from(format!(
        "alerts/fired/rule={rule}/project={project_id}/issue={issue_id}"
    ))
}

/// A firing marker; the newest sorts first.
pub fn fired_path(rule: &str, project_id: u64, issue_id: i64, at_ms: i64) -> ObjectPath {
    ObjectPath::from(format!(
        "alerts/fired/rule={rule}/project={project_id}/issue={issue_id}/{:020}.json",
        u64::MAX - u64::try_from(at_ms).unwrap_or(0)
    ))
}

/// What a firing marker holds.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Fired {
    pub at_ms: i64,
    pub trigger_key: String,
}

/// How long to wait before attempt `attempt + 1` after attempt `attempt` failed: `min` doubled
/// per attempt, up to `max`, plus up to a tenth more picked by the delivery id (so retries of
/// many deliveries spread out, yet each is reproducible); a `Retry-After` the receiver sent
/// wins, within `max`.
pub fn backoff(
    attempt: u32,
    min: Duration,
    max: Duration,
    retry_after: Option<Duration>,
    id: &str,
) -> Duration {
    if let Some(after) = retry_after {
        return after.min(max);
    }
    let base = min
        .saturating_mul(
            1u32.checked_shl(attempt.saturating_sub(1))
                .unwrap_or(u32::MAX),
        )
        .min(max);
    let spread = id.bytes().fold(0u32, |acc, b| {
        acc.wrapping_mul(31).wrapping_add(u32::from(b))
    }) % 100;
    (base + base.mul_f64(f64::from(spread) / 1000.0)).min(max)
}

/// What an HTTP answer means for a delivery.
pub fn classify(status: u16) -> Status {
    match status {
        200..=299 => Status::Delivered,
        408 | 425 | 429 | 500..=599 => Status::Failed,
        _ => Status::GaveUp,
    }
}

/// A `Retry-After` header: seconds, or an HTTP date.
pub fn parse_retry_after(value: &str, now: DateTime<Utc>) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = DateTime::parse_from_rfc2822(value).ok()?;
    (at.with_timezone(&Utc) - now).to_std().ok()
}

/// What [`expire`] removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Expired {
    /// Deliveries (outbox entry and attempts) and suppressions removed.
    pub deliveries: usize,
    /// Firing markers removed (the newest of each rule and issue stays).
    pub markers: usize,
}

/// Removes the records of deliveries that are finished (delivered, given up or suppressed) and
/// whose last attempt is older than `cutoff`: the outbox entry and every attempt. A delivery
/// still being retried stays, however old. Of the firing markers of each rule and issue, those
/// older than `cutoff` go except the newest (the anti-flood interval reads it).
pub async fn expire(
    store: &crate::store::Store,
    cutoff: DateTime<Utc>,
) -> crate::store::Result<Expired> {
    use std::collections::HashMap;
    let listing = store.list(&ObjectPath::from("alerts")).await?;
    // Per delivery id: its outbox entry, and its attempts (path, when, final).
    let mut entries: HashMap<String, ObjectPath> = HashMap::new();
    let mut attempts: HashMap<String, Vec<(ObjectPath, DateTime<Utc>, bool)>> = HashMap::new();
    // Per (rule, project, issue) prefix: the markers as (time, path).
    let mut markers: HashMap<String, Vec<(i64, ObjectPath)>> = HashMap::new();
    for meta in listing {
        let parts: Vec<String> = meta
            .location
            .parts()
            .map(|p| p.as_ref().to_owned())
            .collect();
        let parts: Vec<&str> = parts.iter().map(String::as_str).collect();
        match parts.as_slice() {
            ["alerts", "fired", rule, project, issue, name] => {
                let Some(inverted) = name
                    .strip_suffix(".json")
                    .and_then(|n| n.parse::<u64>().ok())
                else {
                    continue;
                };
                let at = i64::try_from(u64::MAX - inverted).unwrap_or(i64::MAX);
                markers
                    .entry(format!("{rule}/{project}/{issue}"))
                    .or_default()
                    .push((at, meta.location.clone()));
            }
            ["alerts", _, "outbox", name] => {
                if let Some(id) = name.strip_suffix(".json") {
                    entries.insert(id.to_owned(), meta.location.clone());
                }
            }
            ["alerts", _, "attempts", id, _] => {
                let attempt: Attempt = store.get_json(&meta.location).await?;
                attempts.entry((*id).to_owned()).or_default().push((
                    meta.location.clone(),
                    attempt.at,
                    attempt.status.is_final(),
                ));
            }
            _ => {}
        }
    }
    let mut expired = Expired::default();
    for (id, rows) in attempts {
        let done = rows.iter().any(|(_, _, last)| *last);
        let newest = rows.iter().map(|(_, at, _)| *at).max();
        if !done || newest.is_none_or(|at| at >= cutoff) {
            continue;
        }
        // The entry first: a delivery without one is never resumed, whatever is left.
        if let Some(entry) = entries.get(&id) {
            store.delete(entry).await?;
        }
        for (path, _, _) in &rows {
            store.delete(path).await?;
        }
        expired.deliveries += 1;
    }
    let cutoff_ms = cutoff.timestamp_millis();
    for (_, mut list) in markers {
        list.sort_by_key(|(at, _)| std::cmp::Reverse(*at));
        for (at, path) in list.iter().skip(1) {
            if *at < cutoff_ms {
                store.delete(path).await?;
                expired.markers += 1;
            }
        }
    }
    Ok(expired)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delivery_ids_are_stable_and_distinct() {
        let a = delivery_id("r", "slack", 1, 42, "new");
        assert_eq!(a, delivery_id("r", "slack", 1, 42, "new"));
        assert_eq!(a.len(), 32);
        assert_ne!(a, delivery_id("r", "slack", 1, 42, "regression:5"));
        assert_ne!(a, delivery_id("r", "pd", 1, 42, "new"));
        // The separator keeps ("ab", "c") apart from ("a", "bc").
        assert_ne!(
            delivery_id("ab", "c", 1, 42, "new"),
            delivery_id("a", "bc", 1, 42, "new")
        );
    }

    #[test]
    fn backoff_doubles_to_its_cap_and_honours_retry_after() {
        let (min, max) = (Duration::from_secs(10), Duration::from_secs(3600));
        let first = backoff(1, min, max, None, "id");
        assert!(first >= min && first < min.mul_f64(1.1), "{first:?}");
        let third = backoff(3, min, max, None, "id");
        assert!(
            third >= min * 4 && third < (min * 4).mul_f64(1.1),
            "{third:?}"
        );
        assert_eq!(backoff(30, min, max, None, "id"), max);
        assert_eq!(backoff(200, min, max, None, "id"), max);
        assert_eq!(
            backoff(1, min, max, Some(Duration::from_secs(120)), "id"),
            Duration::from_secs(120)
        );
        assert_eq!(
            backoff(1, min, max, Some(Duration::from_secs(86_400)), "id"),
            max
        );
    }

    #[test]
    fn answers_are_classified() {
        assert_eq!(classify(200), Status::Delivered);
        assert_eq!(classify(202), Status::Delivered);
        assert_eq!(classify(429), Status::Failed);
        assert_eq!(classify(500), Status::Failed);
        assert_eq!(classify(503), Status::Failed);
        assert_eq!(classify(408), Status::Failed);
        assert_eq!(classify(400), Status::GaveUp);
        assert_eq!(classify(404), Status::GaveUp);
        assert_eq!(classify(301), Status::GaveUp);
    }

    #[test]
    fn retry_after_in_seconds_or_as_a_date() {
        let now = DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z")
            .unwrap()
            .with_timezone(&Utc);
        assert_eq!(parse_retry_after("30", now), Some(Duration::from_secs(30)));
        assert_eq!(
            parse_retry_after("Thu, 01 Jan 2026 00:01:00 GMT", now),
            Some(Duration::from_secs(60))
        );
        assert_eq!(parse_retry_after("soon", now), None);
    }

    fn attempt(id: &str, n: u32, status: Status, at: DateTime<Utc>) -> Attempt {
        Attempt {
            delivery_id: id.to_owned(),
            attempt: n,
            at,
            status,
            response_code: None,
            error: None,
            next_attempt: None,
            org: "default".to_owned(),
            project_id: 1,
            project: "shop".to_owned(),
            rule: "r".to_owned(),
            channel: "hook".to_owned(),
            kind: "webhook".to_owned(),
            issue_id: 7,
            trigger: "new_issue".to_owned(),
        }
    }

    #[tokio::test]
    async fn finished_deliveries_older_than_the_retention_are_removed() {
        let store = crate::store::Store::memory();
        let now = Utc::now();
        let old = now - chrono::Duration::days(31);
        let put = |path: ObjectPath, value: serde_json::Value| {
            let store = store.clone();
            async move {
                store
                    .create_durable(&path, serde_json::to_vec(&value).unwrap().into())
                    .await
                    .unwrap()
            }
        };
        // delivered 31 days ago (after a failed attempt), failed for good 31 days ago,
        // delivered yesterday, still being retried since 31 days ago, suppressed 31 days ago
        let rows = [
            (
                "old-delivered",
                vec![(1, Status::Failed, old), (2, Status::Delivered, old)],
            ),
            ("old-gave-up", vec![(1, Status::GaveUp, old)]),
            (
                "recent",
                vec![(1, Status::Delivered, now - chrono::Duration::days(1))],
            ),
            ("retrying", vec![(1, Status::Failed, old)]),
            ("old-suppressed", vec![(0, Status::Suppressed, old)]),
        ];
        for (id, attempts) in &rows {
            if *id != "old-suppressed" {
                put(outbox_path(1, id), serde_json::json!({"id": id})).await;
            }
            for (n, status, at) in attempts {
                put(
                    attempt_path(1, id, *n),
                    serde_json::to_value(attempt(id, *n, *status, *at)).unwrap(),
                )
                .await;
            }
        }
        let marker = |at: DateTime<Utc>| fired_path("r", 1, 7, at.timestamp_millis());
        for at in [old - chrono::Duration::days(1), old, now] {
            put(marker(at), serde_json::json!({})).await;
        }
        // The only marker of another issue stays however old.
        put(
            fired_path("r", 1, 8, old.timestamp_millis()),
            serde_json::json!({}),
        )
        .await;

        let cutoff = now - chrono::Duration::days(30);
        let expired = expire(&store, cutoff).await.unwrap();
        assert_eq!(
            expired,
            Expired {
                deliveries: 3,
                markers: 2
            }
        );
        let mut left: Vec<String> = store
            .list(&ObjectPath::from("alerts"))
            .await
            .unwrap()
            .into_iter()
            .map(|m| m.location.to_string())
            .collect();
        left.sort();
        let mut want = vec![
            attempt_path(1, "recent", 1).to_string(),
            attempt_path(1, "retrying", 1).to_string(),
            outbox_path(1, "recent").to_string(),
            outbox_path(1, "retrying").to_string(),
            marker(now).to_string(),
            fired_path("r", 1, 8, old.timestamp_millis()).to_string(),
        ];
        want.sort();
        assert_eq!(left, want);
        // A second run finds nothing more.
        assert_eq!(expire(&store, cutoff).await.unwrap(), Expired::default());
    }

    #[test]
    fn newest_firing_marker_sorts_first() {
        let older = fired_path("r", 1, 2, 1_000);
        let newer = fired_path("r", 1, 2, 2_000);
        assert!(newer < older);
        assert!(newer.as_ref().starts_with(fired_prefix("r", 1, 2).as_ref()));
    }
}
