//! The registry of SQL tables: every table a session can hold, in the order `SHOW TABLES` lists
//! them, with how a session builds it. The plan guard, `information_schema`, and the PostgreSQL
//! and Flight SQL catalogs all read [`TABLES`]; a session registers exactly what
//! [`Table::build`] gives. Adding a table is its provider's file plus one entry here (see the
//! recipe in docs/development.md). The item tables (`crate::items::TABLES`) follow these, all
//! built the same way: their manifest files and buffered rows, restricted to the session's
//! projects.

use std::collections::BTreeMap;
use std::sync::Arc;

use datafusion::arrow::array::RecordBatch;
use datafusion::catalog::TableProvider;
use datafusion::error::Result;

use super::audit_table::{Audit, AuditView};
use super::events_table::EventsTable;
use super::issue_hours_table::{IssueHoursTable, Rollups};
use super::issues_table::IssuesTable;
use super::stored_table::StoredTable;
use super::{ProjectFilter, QueryService};
use crate::issues::state::IssueState;
use crate::store::manifest::DataFile;

/// What the tables of one session are built from: the live files of every node's manifest and
/// the buffered rows as of the session's start, the issue states, and who asks.
pub(crate) struct Inputs {
    pub(crate) files: Vec<DataFile>,
    pub(crate) rollups: Vec<DataFile>,
    pub(crate) tag_rollups: Vec<DataFile>,
    pub(crate) batches: Vec<RecordBatch>,
    /// Files of the item tables by table name.
    pub(crate) item_files: BTreeMap<String, Vec<DataFile>>,
    /// Buffered item rows by table name.
    pub(crate) item_batches: BTreeMap<&'static str, Vec<RecordBatch>>,
    pub(crate) states: Vec<IssueState>,
    pub(crate) projects: ProjectFilter,
    pub(crate) audit: AuditView,
}

/// Scan partitions of the Parquet-backed tables.
const PARTITIONS: usize = 2;

/// A table of one session, or `None` when the session may not have it.
type Built = Result<Option<Arc<dyn TableProvider>>>;

/// One SQL table.
pub(crate) struct Table {
    pub(crate) name: &'static str,
    /// The table for one session; `None` when this session may not have it (`audit_log`
    /// without the audit log's scope), which reads as an unknown table.
    build: fn(&QueryService, &Inputs) -> Built,
}

impl Table {
    pub(crate) fn build(&self, service: &QueryService, inputs: &Inputs) -> Built {
        (self.build)(service, inputs)
    }
}

/// Every table, in `SHOW TABLES` order.
pub(crate) const TABLES: [Table; 7] = [
    Table {
        name: "events",
        build: |_, i| {
            let table =
                EventsTable::new(i.files.clone(), i.batches.clone(), &i.projects, PARTITIONS)?;
            Ok(Some(Arc::new(table)))
        },
    },
    Table {
        name: "issues",
        build: |service, i| {
            let table = IssuesTable::new(
                service.store.clone(),
                Arc::clone(&service.rollups),
                i.rollups.clone(),
                i.batches.clone(),
                i.states.clone(),
                &i.projects,
            )?;
            Ok(Some(Arc::new(table)))
        },
    },
    Table {
        name: "issue_hours",
        build: |_, i| {
            let table = IssueHoursTable::new(
                Rollups::Hours,
                i.rollups.clone(),
                i.batches.clone(),
                &i.projects,
                PARTITIONS,
            )?;
            Ok(Some(Arc::new(table)))
        },
    },
    Table {
        name: "issue_tags",
        build: |_, i| {
            let table = IssueHoursTable::new(
                Rollups::Tags,
                i.tag_rollups.clone(),
                i.batches.clone(),
                &i.projects,
                PARTITIONS,
            )?;
            Ok(Some(Arc::new(table)))
        },
    },
    Table {
        name: "audit_log",
        build: |service, i| {
            Ok((i.audit != AuditView::Denied).then(|| {
                Arc::new(StoredTable(Audit {
                    store: service.store.clone(),
                    view: i.audit.clone(),
                })) as Arc<dyn TableProvider>
            }))
        },
    },
    Table {
        name: "alert_deliveries",
        build: |service, i| {
            Ok(Some(Arc::new(StoredTable(
                crate::alerts::table::Deliveries {
                    store: service.store.clone(),
                    projects: i.projects.clone(),
                },
            ))))
        },
    },
    Table {
        name: "monitors",
        build: |service, i| {
            Ok(Some(Arc::new(StoredTable(
                crate::monitors::table::Monitors {
                    store: service.store.clone(),
                    projects: i.projects.clone(),
                },
            ))))
        },
    },
];

/// The names of every table, in `SHOW TABLES` order: [`TABLES`], the item tables, [`VIEWS`].
pub(crate) fn names() -> impl Iterator<Item = &'static str> {
    TABLES
        .iter()
        .map(|t| t.name)
        .chain(crate::items::names())
        .chain(VIEWS.iter().map(|(name, _)| *name))
}

/// Views every session has, over the tables above (documented in docs/sql.md): their name and
/// their query. A view reads its tables within the session, so it sees what the session may.
pub(crate) const VIEWS: [(&str, &str); 2] = [
    ("release_health", RELEASE_HEALTH),
    ("release_health_hourly", RELEASE_HEALTH_HOURLY),
];

/// Every session counted once: an individual session (`session_id`) by the worst status any
/// of its updates had, an aggregate bucket by its counts.
macro_rules! counted_sessions {
    () => {
        "WITH per_session AS (\
           SELECT project_id, project, release, environment, session_id, \
                  min(started) AS started, max(distinct_id) AS distinct_id, \
                  max(crashed) AS crashed, max(abnormal) AS abnormal, max(errored) AS errored \
           FROM sessions WHERE session_id IS NOT NULL \
           GROUP BY project_id, project, release, environment, session_id), \
         counted AS (\
           SELECT project_id, project, release, environment, started, distinct_id, \
                  CAST(1 AS BIGINT) AS sessions, crashed, \
                  CASE WHEN crashed > 0 THEN 0 ELSE abnormal END AS abnormal, \
                  CASE WHEN crashed > 0 OR abnormal > 0 THEN 0 ELSE errored END AS errored \
           FROM per_session \
           UNION ALL \
           SELECT project_id, project, release, environment, started, distinct_id, \
                  exited + errored + abnormal + crashed AS sessions, crashed, abnormal, errored \
           FROM sessions WHERE session_id IS NULL), "
    };
}

/// The figures of [`RELEASE_HEALTH`] from the grouped `totals`.
macro_rules! health_figures {
    () => {
        "sessions, crashed, abnormal, errored, \
         CASE WHEN sessions > 0 THEN 1.0 - CAST(crashed AS DOUBLE) / CAST(sessions AS DOUBLE) END \
           AS crash_free_sessions, \
         users, crashed_users, \
         CASE WHEN users > 0 THEN 1.0 - CAST(crashed_users AS DOUBLE) / CAST(users AS DOUBLE) END \
           AS crash_free_users"
    };
}

/// The sums of [`health_figures`].
macro_rules! health_sums {
    () => {
        "sum(sessions) AS sessions, sum(crashed) AS crashed, sum(abnormal) AS abnormal, \
         sum(errored) AS errored, count(DISTINCT distinct_id) AS users, \
         count(DISTINCT CASE WHEN crashed > 0 THEN distinct_id END) AS crashed_users"
    };
}

/// Release health per project, release and environment over every stored session.
const RELEASE_HEALTH: &str = concat!(
    counted_sessions!(),
    "totals AS (SELECT project_id, project, release, environment, \
       min(started) AS first_started, max(started) AS last_started, ",
    health_sums!(),
    " FROM counted GROUP BY project_id, project, release, environment) \
     SELECT project_id, project, release, environment, first_started, last_started, ",
    health_figures!(),
    " FROM totals"
);

/// Release health per project, release, environment and hour the sessions started in.
const RELEASE_HEALTH_HOURLY: &str = concat!(
    counted_sessions!(),
    "totals AS (SELECT project_id, project, release, environment, \
       date_trunc('hour', started) AS hour, ",
    health_sums!(),
    " FROM counted GROUP BY project_id, project, release, environment, \
       date_trunc('hour', started)) \
     SELECT project_id, project, release, environment, hour, ",
    health_figures!(),
    " FROM totals"
);

/// Every table of one session: those of [`TABLES`] it may have, then the item tables.
pub(crate) fn build_all(
    service: &QueryService,
    inputs: &Inputs,
) -> Result<Vec<(&'static str, Arc<dyn TableProvider>)>> {
    let mut built = Vec::with_capacity(TABLES.len() + crate::items::TABLES.len());
    for table in &TABLES {
        if let Some(provider) = table.build(service, inputs)? {
            built.push((table.name, provider));
        }
    }
    for table in crate::items::TABLES {
        let provider = EventsTable::items(
            table.schema(),
            inputs
                .item_files
                .get(table.name)
                .cloned()
                .unwrap_or_default(),
            inputs
                .item_batches
                .get(table.name)
                .cloned()
                .unwrap_or_default(),
            &inputs.projects,
            PARTITIONS,
        )?;
        built.push((table.name, Arc::new(provider)));
    }
    Ok(built)
}
