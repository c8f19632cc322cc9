//! What a node reports about itself and its projects, for the Kubernetes operator's status
//! (`GET /api/0/status/`): whether the object store answers now, whether the WAL takes writes,
//! and per project the events accepted in the last hour and when its last event was seen.
//!
//! It stays cheap with many projects: one probe of the store (a listing of `meta/`, bounded by
//! [`PROBE_TIMEOUT`]), one SQL statement for every project's figures, and the project list this
//! node already holds in memory. Nothing here fails the report: a part that cannot be had is
//! reported as such, with the error's text, next to the parts that can.
//!
//! # The figures
//! - `events_last_hour` comes from the `outcomes` table (accepted `error` items per project and
//!   clock hour), not from this node's metrics counters: the table adds up what every node
//!   accepted, while counters only know one process and restart at zero. Counts reach the
//!   table when a node flushes (`flush.interval`), so the figure lags by at most that. Outcomes
//!   are counted per clock hour, so the last sixty minutes are estimated as the count of the
//!   current hour plus the previous hour's count weighted by the part of the window it still
//!   covers (as sliding-window rate limiters do).
//! - `last_event_seen` is the newest `last_seen` of the project's issues (events still in
//!   memory included).

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, DurationRound, TimeDelta, TimeZone, Utc};
use object_store::path::Path as ObjectPath;
use serde::{Deserialize, Serialize};

use crate::node::Node;
use crate::query::ProjectFilter;

/// Longest time the object store probe may take before the store counts as unreachable.
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(3);

/// The longest error text a report carries.
const MAX_ERROR: usize = 500;

/// One check: passed, or the error text.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Check {
    pub ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl Check {
    fn of(result: std::result::Result<(), String>) -> Self {
        match result {
            Ok(()) => Self {
                ok: true,
                error: None,
            },
            Err(mut error) => {
                truncate(&mut error);
                Self {
                    ok: false,
                    error: Some(error),
                }
            }
        }
    }
}

/// One project's figures.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ProjectFigures {
    /// The numeric id, as a string (as Sentry's API gives ids).
    pub id: String,
    pub organization: String,
    pub slug: String,
    /// Error events accepted in the last sixty minutes (see the module documentation);
    /// `None` when the figures could not be read.
    pub events_last_hour: Option<u64>,
    /// When the project's newest event was seen; `None` before its first event, or when the
    /// figures could not be read.
    pub last_event_seen: Option<DateTime<Utc>>,
}

/// The whole report.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    pub checked_at: DateTime<Utc>,
    /// This node's name (`storage.node_id`).
    pub node: String,
    pub object_store: Check,
    pub wal: Check,
    /// Why the projects' figures are missing, when they are.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub figures_error: Option<String>,
    /// Every project this node serves, by id.
    pub projects: Vec<ProjectFigures>,
}

/// Reports on `node` as of `now`.
pub async fn report(node: &Node, now: DateTime<Utc>) -> Report {
    let (object_store, wal, figures) =
        tokio::join!(probe_store(node), probe_wal(node), figures(node, now));
    let (figures, figures_error) = match figures {
        Ok(figures) => (figures, None),
        Err(mut error) => {
            truncate(&mut error);
            (HashMap::new(), Some(error))
        }
    };
    let read = figures_error.is_none();
    let projects = node
        .projects
        .known()
        .iter()
        .map(|p| {
            let found = figures.get(&p.id);
            ProjectFigures {
                id: p.id.to_string(),
                organization: p.org.clone(),
                slug: p.name.clone(),
                events_last_hour: read.then(|| found.map_or(0, |f| f.events_last_hour)),
                last_event_seen: found.and_then(|f| f.last_event_seen),
            }
        })
        .collect();
    Report {
        checked_at: now,
        node: node.config.storage.node_id.clone(),
        object_store: Check::of(object_store),
        wal: Check::of(wal),
        figures_error,
        projects,
    }
}

/// Lists `meta/` (one request; what every node reads its projects and tokens from).
async fn probe_store(node: &Node) -> std::result::Result<(), String> {
    let prefix = ObjectPath::from("meta");
    match tokio::time::timeout(
        PROBE_TIMEOUT,
        node.store.objects.list_with_delimiter(Some(&prefix)),
    )
    .await
    {
        Ok(Ok(_)) => Ok(()),
        Ok(Err(err)) => Err(format!("{}: {err}", node.store.location)),
        Err(_) => Err(format!(
            "{} did not answer within {}s",
            node.store.location,
            PROBE_TIMEOUT.as_secs()
        )),
    }
}

async fn probe_wal(node: &Node) -> std::result::Result<(), String> {
    let wal = node.wal.clone();
    tokio::task::spawn_blocking(move || wal.check_writable())
        .await
        .unwrap_or_else(|e| Err(e.to_string()))
}

/// One project's figures, as read.
#[derive(Debug, Default)]
struct Read {
    events_last_hour: u64,
    last_event_seen: Option<DateTime<Utc>>,
}

/// One row of [`figures_sql`].
#[derive(Debug, Deserialize)]
struct Row {
    project_id: u64,
    last_seen_ms: Option<i64>,
    this_hour: Option<u64>,
    previous_hour: Option<u64>,
}

/// The statement that reads every project's figures at once.
fn figures_sql(now: DateTime<Utc>) -> String {
    let hour = hour_of(now).timestamp_millis();
    let previous = hour - 3_600_000;
    format!(
        "WITH seen AS ( \
            SELECT project_id, max(CAST(last_seen AS BIGINT)) AS last_seen_ms \
            FROM issues GROUP BY project_id), \
         accepted AS ( \
            SELECT project_id, \
                sum(CASE WHEN timestamp >= to_timestamp_millis({hour}) THEN quantity ELSE 0 END) AS this_hour, \
                sum(CASE WHEN timestamp < to_timestamp_millis({hour}) THEN quantity ELSE 0 END) AS previous_hour \
            FROM outcomes \
            WHERE outcome = 'accepted' AND category = 'error' \
              AND timestamp >= to_timestamp_millis({previous}) \
            GROUP BY project_id) \
         SELECT coalesce(seen.project_id, accepted.project_id) AS project_id, \
                seen.last_seen_ms, accepted.this_hour, accepted.previous_hour \
         FROM seen FULL OUTER JOIN accepted ON seen.project_id = accepted.project_id"
    )
}

async fn figures(
    node: &Node,
    now: DateTime<Utc>,
) -> std::result::Result<HashMap<u64, Read>, String> {
    let output = node
        .query
        .run(&ProjectFilter::All, &figures_sql(now))
        .await
        .map_err(|e| format!("cannot read the projects' figures: {e}"))?;
    let mut writer = datafusion::arrow::json::ArrayWriter::new(Vec::new());
    for batch in &output.batches {
        writer.write(batch).map_err(|e| e.to_string())?;
    }
    writer.finish().map_err(|e| e.to_string())?;
    let json = writer.into_inner();
    let rows: Vec<Row> = if json.is_empty() {
        Vec::new()
    } else {
        serde_json::from_slice(&json).map_err(|e| e.to_string())?
    };
    let into_hour = now - hour_of(now);
    Ok(rows
        .into_iter()
        .map(|row| {
            let read = Read {
                events_last_hour: last_hour(
                    row.this_hour.unwrap_or(0),
                    row.previous_hour.unwrap_or(0),
                    into_hour,
                ),
                last_event_seen: row
                    .last_seen_ms
                    .and_then(|ms| Utc.timestamp_millis_opt(ms).single()),
            };
            (row.project_id, read)
        })
        .collect())
}

fn hour_of(at: DateTime<Utc>) -> DateTime<Utc> {
    at.duration_trunc(TimeDelta::hours(1)).unwrap_or(at)
}

/// The events of the sixty minutes up to now, from the counts of the current clock hour
/// (`into_hour` of it has passed) and of the previous one, assumed spread evenly; rounded.
fn last_hour(this_hour: u64, previous_hour: u64, into_hour: TimeDelta) -> u64 {
    let passed = into_hour.num_milliseconds().clamp(0, 3_600_000);
    let remaining = u128::try_from(3_600_000 - passed).unwrap_or(0);
    let weighted = (u128::from(previous_hour) * remaining + 1_800_000) / 3_600_000;
    this_hour.saturating_add(u64::try_from(weighted).unwrap_or(u64::MAX))
}

fn truncate(text: &mut String) {
    if text.len() > MAX_ERROR {
        let mut end = MAX_ERROR;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_previous_hour_counts_for_the_part_of_the_window_it_covers() {
        assert_eq!(last_hour(10, 60, TimeDelta::zero()), 70);
        assert_eq!(last_hour(10, 60, TimeDelta::minutes(15)), 55);
        assert_eq!(last_hour(10, 60, TimeDelta::minutes(59)), 11);
        assert_eq!(last_hour(10, 60, TimeDelta::minutes(60)), 10);
        assert_eq!(last_hour(0, 3, TimeDelta::milliseconds(100)), 3, "rounded");
        assert_eq!(last_hour(u64::MAX, u64::MAX, TimeDelta::zero()), u64::MAX);
    }

    #[test]
    fn long_errors_are_cut_on_a_character_boundary() {
        let mut text = "é".repeat(MAX_ERROR);
        truncate(&mut text);
        assert!(text.len() <= MAX_ERROR);
        assert!(text.chars().all(|c| c == 'é'));
    }
}
