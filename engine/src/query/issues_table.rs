//! The `issues` table: the hourly rollups of the session's projects (from the manifests' rollup
//! files, plus the same rollup computed over the rows still in memory), aggregated per issue and
//! joined with the newest state of each issue. Listing issues over any time range reads rollups
//! only, never event files.

use std::sync::Arc;

use datafusion::arrow::array::RecordBatch;
use datafusion::datasource::MemTable;
use datafusion::error::Result;
use datafusion::prelude::SessionContext;

use super::ProjectFilter;
use super::events_table::EventsTable;
use crate::issues::{rollup, state};
use crate::store::manifest::DataFile;

/// Counts by hour bucket: a bucket counts for "the last 24 hours" when any part of it is.
fn issues_sql() -> String {
    let buffered = rollup::rollup_sql("issue_buffer");
    format!(
        "WITH r AS (SELECT * FROM issue_rollups UNION ALL {buffered}), \
         a AS (SELECT project_id, project, issue_id, \
           last_value(title ORDER BY last_seen) AS title, \
           last_value(culprit ORDER BY last_seen) AS culprit, \
           last_value(level ORDER BY last_seen) AS level, \
           min(first_seen) AS first_seen, max(last_seen) AS last_seen, \
           max(last_received) AS last_received, \
           sum(events) AS event_count, \
           coalesce(sum(events) FILTER (WHERE hour > now() - INTERVAL '25 hours'), 0) AS events_24h, \
           coalesce(sum(events) FILTER (WHERE hour > now() - INTERVAL '14 days 1 hour'), 0) AS events_14d, \
           coalesce(cardinality(array_distinct(flatten(array_agg(users) FILTER (WHERE users IS NOT NULL)))), 0) AS users, \
           first_value(first_release ORDER BY first_seen) FILTER (WHERE first_release IS NOT NULL) AS first_release, \
           last_value(last_release ORDER BY last_seen) FILTER (WHERE last_release IS NOT NULL) AS last_release \
           FROM r GROUP BY project_id, project, issue_id) \
         SELECT a.issue_id, a.project_id, a.project, a.title, a.culprit, a.level, \
           a.first_seen, a.last_seen, a.event_count, a.events_24h, a.events_14d, a.users, \
           a.first_release, a.last_release, \
           CASE WHEN s.state IS NULL THEN 'unresolved' \
             WHEN s.state = 'resolved' AND a.last_received > s.changed THEN 'unresolved' \
             WHEN s.state = 'ignored' AND (s.ignore_until < now() \
               OR a.event_count - s.count_at_change >= s.ignore_until_count) THEN 'unresolved' \
             ELSE s.state END AS status, \
           coalesce(s.state = 'resolved' AND a.last_received > s.changed, false) AS regressed, \
           s.changed AS status_changed, s.ignore_until, s.ignore_until_count \
         FROM a LEFT JOIN issue_state s \
           ON a.project_id = s.project_id AND a.issue_id = s.issue_id"
    )
}

/// Registers `issues` in `ctx`. The helper tables it is built from are registered only while
/// the view is planned, then removed, so a query cannot name them.
pub(super) async fn register(
    ctx: &SessionContext,
    rollup_files: Vec<DataFile>,
    buffered: Vec<RecordBatch>,
    states: &[state::IssueState],
    projects: &ProjectFilter,
) -> Result<()> {
    let buffer = EventsTable::new(Vec::new(), buffered, projects, 2)?;
    ctx.register_table("issue_buffer", Arc::new(buffer))?;
    // The rollup files have the schema of the rollup query (the same SQL wrote them).
    let schema = Arc::clone(
        ctx.sql(&rollup::rollup_sql("issue_buffer"))
            .await?
            .schema()
            .inner(),
    );
    let rollups = EventsTable::with_schema(schema, rollup_files, Vec::new(), projects, 2)?;
    ctx.register_table("issue_rollups", Arc::new(rollups))?;
    let states = MemTable::try_new(state::schema(), vec![vec![state::to_batch(states)]])?;
    ctx.register_table("issue_state", Arc::new(states))?;
    let view = ctx.sql(&issues_sql()).await?.into_view();
    for name in ["issue_buffer", "issue_rollups", "issue_state"] {
        ctx.deregister_table(name)?;
    }
    ctx.register_table("issues", view)?;
    Ok(())
}
