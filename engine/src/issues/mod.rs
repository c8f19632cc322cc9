//! Issues as a product: hourly rollups written at flush time ([`rollup`]) and the state people
//! set ([`state`]): resolve, ignore (until a date or a count), reopen.
//!
//! The `issues` table (see `query/issues_table.rs`) adds up per-issue summaries of the rollup
//! files ([`summary`], cached per file) and of the rows still in memory, then applies the newest
//! state of each issue. A
//! resolved issue whose newest event arrived after it was resolved reads as unresolved and
//! `regressed`; an ignored issue reads as unresolved once its date passed or it got the given
//! number of further events.

pub mod rollup;
pub mod state;
pub mod summary;

use chrono::{DateTime, Utc};
use datafusion::arrow::array::AsArray;
use datafusion::arrow::datatypes::Int64Type;

use crate::query::{ProjectFilter, QueryOutput, QueryService};
pub use state::{IssueState, Status};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Store(#[from] crate::store::Error),
    #[error("cannot write a rollup file: {0}")]
    Parquet(#[source] Box<datafusion::parquet::errors::ParquetError>),
    #[error("a rollup file cannot be read: {0}")]
    BadRollup(String),
    #[error("cannot compute rollups: {0}")]
    Rollup(#[source] Box<datafusion::error::DataFusionError>),
    #[error(transparent)]
    Query(#[from] Box<crate::query::Error>),
    #[error("issue {issue_id} does not exist or is not in a project the token may read")]
    UnknownIssue { issue_id: i64 },
    #[error("ignore takes at most one of \"until\" (a date) and \"count\" (a number of events)")]
    BadIgnore,
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl From<crate::query::Error> for Error {
    fn from(err: crate::query::Error) -> Self {
        Self::Query(Box::new(err))
    }
}

/// A change of state someone asks for.
#[derive(Debug, Clone, PartialEq)]
pub enum Change {
    Resolve,
    Reopen,
    /// Ignore, until a date, until this many more events arrived, or for good.
    Ignore {
        until: Option<DateTime<Utc>>,
        count: Option<u64>,
    },
}

/// The columns of `issues` a state change answers with.
const ISSUE_COLUMNS: &str = "issue_id, project_id, project, title, status, regressed, \
    status_changed, ignore_until, ignore_until_count, event_count, last_seen";

/// Changes the state of `issue_id` (which must be in a project `projects` allows) and returns
/// its row of `issues` as it reads afterwards.
pub async fn change(
    query: &QueryService,
    projects: &ProjectFilter,
    issue_id: i64,
    change: Change,
    by: &str,
) -> Result<QueryOutput> {
    let found = query
        .run(
            projects,
            &format!("SELECT project_id, event_count FROM issues WHERE issue_id = {issue_id}"),
        )
        .await?;
    let Some(batch) = found.batches.iter().find(|b| b.num_rows() > 0) else {
        return Err(Error::UnknownIssue { issue_id });
    };
    let project_id = batch.column(0).as_primitive::<Int64Type>().value(0) as u64;
    let count = batch.column(1).as_primitive::<Int64Type>().value(0) as u64;
    let (status, ignore_until, ignore_until_count) = match change {
        Change::Resolve => (Status::Resolved, None, None),
        Change::Reopen => (Status::Unresolved, None, None),
        Change::Ignore {
            until: Some(_),
            count: Some(_),
        } => return Err(Error::BadIgnore),
        Change::Ignore { until, count } => (Status::Ignored, until, count),
    };
    state::save(
        query.store(),
        IssueState {
            project_id,
            issue_id,
            version: 0,
            status,
            changed: Utc::now(),
            by: by.to_owned(),
            ignore_until,
            ignore_until_count,
            count_at_change: count,
        },
    )
    .await?;
    Ok(query
        .run(
            projects,
            &format!("SELECT {ISSUE_COLUMNS} FROM issues WHERE issue_id = {issue_id}"),
        )
        .await?)
}
