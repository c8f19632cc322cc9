//! The `issue_hours` table: the hourly issue rollups ([`rollup::schema`]: per project, issue and
//! hour the events, first and last seen, distinct users, releases and tag counts) of the
//! session's projects: the rollup files named by the manifests plus the rollups of the rows
//! still in memory, computed when a query reads them.
//!
//! It answers "how many events per hour" and "which tag values" questions over any period
//! from a few rows per issue and hour instead of from the events (the issue page's chart and
//! tag distributions, the stream's sparklines).

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::{DataFusionError, Result};
use datafusion::datasource::TableType;
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::union::UnionExec;

use super::ProjectFilter;
use super::events_table::{EventsTable, restrict};
use crate::issues::rollup;
use crate::store::manifest::DataFile;

#[derive(Debug)]
pub(super) struct IssueHoursTable {
    files: EventsTable,
    /// Buffered event rows of the session's projects only.
    buffered: Vec<RecordBatch>,
}

impl IssueHoursTable {
    pub(super) fn new(
        files: Vec<DataFile>,
        buffered: Vec<RecordBatch>,
        projects: &ProjectFilter,
        target_partitions: usize,
    ) -> Result<Self> {
        let (_, buffered) = restrict(Vec::new(), buffered, projects)?;
        Ok(Self {
            files: EventsTable::rollups(files, projects, target_partitions)?,
            buffered,
        })
    }
}

#[async_trait]
impl TableProvider for IssueHoursTable {
    fn schema(&self) -> SchemaRef {
        rollup::schema()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> Result<Vec<TableProviderFilterPushDown>> {
        Ok(vec![TableProviderFilterPushDown::Inexact; filters.len()])
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let files = self.files.scan(state, projection, filters, limit).await?;
        if self.buffered.is_empty() {
            return Ok(files);
        }
        let buffered =
            rollup::compute(&self.buffered).map_err(|e| DataFusionError::External(Box::new(e)))?;
        if buffered.is_empty() {
            return Ok(files);
        }
        let memory =
            MemorySourceConfig::try_new_exec(&[buffered], rollup::schema(), projection.cloned())?;
        UnionExec::try_new(vec![files, memory])
    }
}
