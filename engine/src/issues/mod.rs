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
pub mod tag_rollup;

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
    #[error(
        "issue {issue_id} cannot be resolved in the next release: none of its events names a release"
    )]
    NoRelease { issue_id: i64 },
    #[error(
        "issue {issue_id} is merged into issue {into}: change {into}, or unmerge {issue_id} first"
    )]
    IsMerged { issue_id: i64, into: i64 },
    #[error("issue {issue_id} is not merged into another issue")]
    NotMerged { issue_id: i64 },
    #[error("issue {issue_id} cannot be merged into itself")]
    MergeIntoSelf { issue_id: i64 },
    #[error(
        "issue {issue_id} cannot be merged into issue {into}: they belong to different projects"
    )]
    MergeAcrossProjects { issue_id: i64, into: i64 },
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
    /// Resolve, and let only an event of a release other than the issue's newest reopen it.
    ResolveInNextRelease,
    Reopen,
    /// Ignore, until a date, until this many more events arrived, or for good.
    Ignore {
        until: Option<DateTime<Utc>>,
        count: Option<u64>,
    },
    /// Assign to a member (email address) or a team (`#slug`), or unassign (`None`); the
    /// status stays as it reads now.
    Assign(Option<String>),
    /// Merge into another issue of the same project: this issue's events then count for that
    /// one, whose page shows them, and this one reads as `merged`.
    Merge {
        into: i64,
    },
    /// Undo a merge: the issue stands on its own again, unresolved.
    Unmerge,
}

impl Change {
    /// The audit log's name of the change.
    pub fn audit_event(&self) -> &'static str {
        match self {
            Self::Resolve | Self::ResolveInNextRelease => "issue.resolve",
            Self::Reopen => "issue.reopen",
            Self::Ignore { .. } => "issue.ignore",
            Self::Assign(_) => "issue.assign",
            Self::Merge { .. } => "issue.merge",
            Self::Unmerge => "issue.unmerge",
        }
    }

    /// The name of the change in the issue's activity.
    pub fn action(&self) -> &'static str {
        match self {
            Self::Resolve => "resolve",
            Self::ResolveInNextRelease => "resolve_in_next_release",
            Self::Reopen => "reopen",
            Self::Ignore { .. } => "ignore",
            Self::Assign(Some(_)) => "assign",
            Self::Assign(None) => "unassign",
            Self::Merge { .. } => "merge",
            Self::Unmerge => "unmerge",
        }
    }
}

/// The columns of `issues` a state change answers with.
const ISSUE_COLUMNS: &str = "issue_id, project_id, project, title, status, regressed, \
    status_changed, ignore_until, ignore_until_count, assignee, merged_into, event_count, \
    last_seen";

/// Checks that `issue_id` (of project `project_id`) may be merged into `into`: another issue of
/// the same project that is not itself merged.
async fn merge_target(
    query: &QueryService,
    projects: &ProjectFilter,
    issue_id: i64,
    project_id: u64,
    into: i64,
) -> Result<()> {
    if into == issue_id {
        return Err(Error::MergeIntoSelf { issue_id });
    }
    let found = query
        .run(
            projects,
            &format!("SELECT project_id, merged_into FROM issues WHERE issue_id = {into}"),
        )
        .await?;
    let Some(batch) = found.batches.iter().find(|b| b.num_rows() > 0) else {
        return Err(Error::UnknownIssue { issue_id: into });
    };
    if batch.column(0).as_primitive::<Int64Type>().value(0) as u64 != project_id {
        return Err(Error::MergeAcrossProjects { issue_id, into });
    }
    let merged = batch.column(1).as_primitive::<Int64Type>();
    use datafusion::arrow::array::Array as _;
    if merged.is_valid(0) {
        return Err(Error::IsMerged {
            issue_id: into,
            into: merged.value(0),
        });
    }
    Ok(())
}

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
            &format!(
                "SELECT project_id, event_count, status, last_release, merged_into FROM issues \
                 WHERE issue_id = {issue_id}"
            ),
        )
        .await?;
    let Some(batch) = found.batches.iter().find(|b| b.num_rows() > 0) else {
        return Err(Error::UnknownIssue { issue_id });
    };
    let project_id = batch.column(0).as_primitive::<Int64Type>().value(0) as u64;
    let count = batch.column(1).as_primitive::<Int64Type>().value(0) as u64;
    let reads_as = batch.column(2).as_string::<i32>().value(0).to_owned();
    let releases = batch.column(3).as_string::<i32>();
    use datafusion::arrow::array::Array as _;
    let last_release = releases.is_valid(0).then(|| releases.value(0).to_owned());
    let merged = batch.column(4).as_primitive::<Int64Type>();
    if merged.is_valid(0) && change != Change::Unmerge {
        return Err(Error::IsMerged {
            issue_id,
            into: merged.value(0),
        });
    }
    if let Change::Merge { into } = change {
        merge_target(query, projects, issue_id, project_id, into).await?;
    }
    let stored = state::current(query.store(), project_id, issue_id).await?;
    let action = Some(change.action().to_owned());
    let mut next = IssueState {
        project_id,
        issue_id,
        version: 0,
        status: Status::Unresolved,
        changed: Utc::now(),
        by: by.to_owned(),
        ignore_until: None,
        ignore_until_count: None,
        count_at_change: count,
        assignee: stored.as_ref().and_then(|s| s.assignee.clone()),
        resolved_in_release: None,
        action,
        merged_into: None,
        erased_at: None,
    };
    match change {
        Change::Resolve => next.status = Status::Resolved,
        Change::ResolveInNextRelease => {
            next.status = Status::Resolved;
            next.resolved_in_release = Some(last_release.ok_or(Error::NoRelease { issue_id })?);
        }
        Change::Reopen => {}
        Change::Merge { into } => {
            next.status = Status::Merged;
            next.merged_into = Some(into);
        }
        Change::Unmerge => {
            if !merged.is_valid(0) {
                return Err(Error::NotMerged { issue_id });
            }
        }
        Change::Ignore {
            until: Some(_),
            count: Some(_),
        } => return Err(Error::BadIgnore),
        Change::Ignore { until, count } => {
            next.status = Status::Ignored;
            next.ignore_until = until;
            next.ignore_until_count = count;
        }
        Change::Assign(assignee) => {
            next.assignee = assignee;
            // The status as it reads now: a resolved issue that regressed stays unresolved,
            // an ignore keeps its condition.
            match (reads_as.as_str(), &stored) {
                ("resolved", Some(s)) => {
                    next.status = Status::Resolved;
                    next.resolved_in_release.clone_from(&s.resolved_in_release);
                    next.changed = s.changed;
                }
                ("ignored", Some(s)) => {
                    next.status = Status::Ignored;
                    next.ignore_until = s.ignore_until;
                    next.ignore_until_count = s.ignore_until_count;
                    next.count_at_change = s.count_at_change;
                }
                _ => {}
            }
        }
    }
    state::save_after(query.store(), next, stored.as_ref()).await?;
    Ok(query
        .run(
            projects,
            &format!("SELECT {ISSUE_COLUMNS} FROM issues WHERE issue_id = {issue_id}"),
        )
        .await?)
}

/// An issue deletion: what [`delete`] did, and the marker maintenance erases the events by
/// (`meta/deletions/...`, see [`crate::maintenance::erase`]).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Deletion {
    pub project_id: u64,
    /// The issue and the issues that were merged into it, which go with it.
    pub issues: Vec<i64>,
    /// Events received up to this time are erased.
    pub at: DateTime<Utc>,
}

/// Deletes `issue_id` (which must be in a project `projects` allows) and the issues merged
/// into it: they leave every list at once, and maintenance erases their events received until
/// now from the object store ([`crate::maintenance::Maintenance::erase_deleted`]). Events that
/// arrive afterwards start the issue afresh, as a new issue does.
pub async fn delete(
    query: &QueryService,
    projects: &ProjectFilter,
    issue_id: i64,
    by: &str,
) -> Result<Deletion> {
    let found = query
        .run(
            projects,
            &format!(
                "SELECT project_id, merged_into, event_count FROM issues \
                 WHERE issue_id = {issue_id}"
            ),
        )
        .await?;
    let Some(batch) = found.batches.iter().find(|b| b.num_rows() > 0) else {
        return Err(Error::UnknownIssue { issue_id });
    };
    let project_id = batch.column(0).as_primitive::<Int64Type>().value(0) as u64;
    use datafusion::arrow::array::Array as _;
    let merged = batch.column(1).as_primitive::<Int64Type>();
    if merged.is_valid(0) {
        return Err(Error::IsMerged {
            issue_id,
            into: merged.value(0),
        });
    }
    let members = query
        .run(
            projects,
            &format!(
                "SELECT issue_id, event_count FROM issues WHERE merged_into = {issue_id} \
                 ORDER BY issue_id"
            ),
        )
        .await?;
    let mut issues = vec![(
        issue_id,
        batch.column(2).as_primitive::<Int64Type>().value(0) as u64,
    )];
    for batch in &members.batches {
        let ids = batch.column(0).as_primitive::<Int64Type>();
        let counts = batch.column(1).as_primitive::<Int64Type>();
        for row in 0..batch.num_rows() {
            issues.push((ids.value(row), counts.value(row) as u64));
        }
    }
    let at = Utc::now();
    for (issue, count) in &issues {
        let stored = state::current(query.store(), project_id, *issue).await?;
        let next = IssueState {
            project_id,
            issue_id: *issue,
            version: 0,
            status: Status::Deleted,
            changed: at,
            by: by.to_owned(),
            ignore_until: None,
            ignore_until_count: None,
            count_at_change: *count,
            assignee: None,
            resolved_in_release: None,
            action: Some("delete".to_owned()),
            merged_into: None,
            erased_at: None,
        };
        state::save_after(query.store(), next, stored.as_ref()).await?;
    }
    let deletion = Deletion {
        project_id,
        issues: issues.into_iter().map(|(id, _)| id).collect(),
        at,
    };
    let marker = crate::store::keys::issue_deletion(project_id, issue_id);
    let body = serde_json::to_vec(&deletion).unwrap_or_default();
    query
        .store()
        .put_durable(&marker, bytes::Bytes::from(body))
        .await?;
    Ok(deletion)
}
