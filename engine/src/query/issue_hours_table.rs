//! The `issue_hours` table: the hourly issue rollups ([`rollup::schema`]: per project, issue and
//! hour the events, first and last seen, distinct users, releases and tag counts) of the
//! session's projects: the rollup files named by the manifests plus the rollups of the rows
//! still in memory, computed when a query reads them.
//!
//! It answers "how many events per hour" and "which tag values" questions over any period
//! from a few rows per issue and hour instead of from the events (the issue page's chart and
//! tag distributions, the stream's sparklines).
//!
//! The `issue_tags` table is the same data turned inside out ([`tag_rollup::schema`]: per
//! project, tag, value, hour and issue the events): which issues had a tag value in a period,
//! read from a few row groups (the stream's tag search).

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
use crate::issues::{rollup, tag_rollup};
use crate::store::manifest::DataFile;

/// Which of the two rollup tables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Rollups {
    /// `issue_hours`: the rollup files.
    Hours,
    /// `issue_tags`: the tag rollup files.
    Tags,
}

impl Rollups {
    fn schema(self) -> SchemaRef {
        match self {
            Self::Hours => rollup::schema(),
            Self::Tags => tag_rollup::schema(),
        }
    }

    /// The rows of this table for buffered event rows.
    fn compute(self, events: &[RecordBatch]) -> crate::issues::Result<Vec<RecordBatch>> {
        let hours = rollup::compute(events)?;
        match self {
            Self::Hours => Ok(hours),
            Self::Tags => tag_rollup::compute(&hours),
        }
    }
}

#[derive(Debug)]
pub(super) struct IssueHoursTable {
    kind: Rollups,
    files: EventsTable,
    /// Buffered event rows of the session's projects only.
    buffered: Vec<RecordBatch>,
}

impl IssueHoursTable {
    pub(super) fn new(
        kind: Rollups,
        files: Vec<DataFile>,
        buffered: Vec<RecordBatch>,
        projects: &ProjectFilter,
        target_partitions: usize,
    ) -> Result<Self> {
        let (_, buffered) = restrict(Vec::new(), buffered, projects)?;
        Ok(Self {
            kind,
            files: EventsTable::rollups(kind.schema(), files, projects, target_partitions)?,
            buffered,
        })
    }
}

#[async_trait]
impl TableProvider for IssueHoursTable {
    fn schema(&self) -> SchemaRef {
        self.kind.schema()
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
        let buffered = self
            .kind
            .compute(&self.buffered)
            .map_err(|e| DataFusionError::External(Box::new(e)))?;
        if buffered.is_empty() {
            return Ok(files);
        }
        let memory =
            MemorySourceConfig::try_new_exec(&[buffered], self.kind.schema(), projection.cloned())?;
        UnionExec::try_new(vec![files, memory])
    }
}
