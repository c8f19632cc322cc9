//! The `issues` table: one row per issue of the session's projects, added up from the per-issue
//! summaries of the live rollup files (read once per file, then cached: see
//! `issues::summary`) and of the rows still in memory, with the newest state of each issue.
//! Listing issues over any time range reads rollups only, never event files, and once the
//! files are cached it reads nothing at all.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::{DataFusionError, Result};
use datafusion::datasource::TableType;
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::logical_expr::Expr;
use datafusion::physical_plan::ExecutionPlan;

use super::ProjectFilter;
use super::events_table::restrict;
use crate::issues::rollup;
use crate::issues::state::IssueState;
use crate::issues::summary::{self, RollupCache, Summaries};
use crate::store::Store;
use crate::store::manifest::DataFile;

/// What `issues` is computed from when a query reads it.
pub(super) struct IssuesTable {
    store: Store,
    cache: Arc<RollupCache>,
    /// Live rollup files of the session's projects only.
    files: Vec<DataFile>,
    /// Buffered event rows of the session's projects only.
    buffered: Vec<RecordBatch>,
    states: Vec<IssueState>,
}

impl std::fmt::Debug for IssuesTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuesTable")
            .field("files", &self.files.len())
            .finish_non_exhaustive()
    }
}

impl IssuesTable {
    pub(super) fn new(
        store: Store,
        cache: Arc<RollupCache>,
        files: Vec<DataFile>,
        buffered: Vec<RecordBatch>,
        states: Vec<IssueState>,
        projects: &ProjectFilter,
    ) -> Result<Self> {
        let (files, buffered) = restrict(files, buffered, projects)?;
        Ok(Self {
            store,
            cache,
            files,
            buffered,
            states,
        })
    }

    /// The rows of `issues` as of now.
    async fn rows(&self) -> crate::issues::Result<RecordBatch> {
        let flushed = self.cache.merged(&self.store, &self.files).await?;
        let mut buffered = Summaries::new();
        for batch in rollup::compute(&self.buffered)? {
            summary::add_rollups(&mut buffered, &batch)?;
        }
        let now = chrono::Utc::now();
        if buffered.is_empty() {
            return Ok(summary::issues_batch(&flushed, &self.states, now));
        }
        let mut merged = Summaries::clone(&flushed);
        summary::merge_into(&mut merged, &buffered);
        Ok(summary::issues_batch(&merged, &self.states, now))
    }
}

#[async_trait]
impl TableProvider for IssuesTable {
    fn schema(&self) -> SchemaRef {
        summary::issues_schema()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    async fn scan(
        &self,
        _state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        _limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let batch = self
            .rows()
            .await
            .map_err(|e| DataFusionError::External(Box::new(e)))?;
        let exec: Arc<dyn ExecutionPlan> =
            MemorySourceConfig::try_new_exec(&[vec![batch]], self.schema(), projection.cloned())?;
        Ok(exec)
    }
}
