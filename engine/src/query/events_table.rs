//! The `events` table provider: the Parquet files named by the manifests, plus the rows still in
//! memory, read as one table.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::{DFSchema, Result};
use datafusion::datasource::TableType;
use datafusion::datasource::listing::PartitionedFile;
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::datasource::physical_plan::{FileGroup, FileScanConfigBuilder, ParquetSource};
use datafusion::datasource::source::DataSourceExec;
use datafusion::execution::object_store::ObjectStoreUrl;
use datafusion::logical_expr::utils::conjunction;
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::empty::EmptyExec;
use datafusion::physical_plan::union::UnionExec;

use crate::events;
use crate::store::manifest::DataFile;

/// URL under which the engine's object store is registered in every query session.
pub const STORE_URL: &str = "faultline://store/";

/// Files and in-memory rows that make up the table for one query.
#[derive(Debug)]
pub struct EventsTable {
    files: Vec<DataFile>,
    batches: Vec<RecordBatch>,
    target_partitions: usize,
}

impl EventsTable {
    pub fn new(files: Vec<DataFile>, batches: Vec<RecordBatch>, target_partitions: usize) -> Self {
        Self {
            files,
            batches,
            target_partitions: target_partitions.max(1),
        }
    }
}

#[async_trait]
impl TableProvider for EventsTable {
    fn schema(&self) -> SchemaRef {
        events::schema()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    /// Filters prune Parquet row groups by statistics; DataFusion still applies them to rows.
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
        _limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let schema = events::schema();
        let mut inputs: Vec<Arc<dyn ExecutionPlan>> = Vec::new();

        if !self.files.is_empty() {
            let mut source = ParquetSource::new(Arc::clone(&schema));
            if let Some(predicate) = conjunction(filters.iter().cloned()) {
                let df_schema = DFSchema::try_from(Arc::clone(&schema))?;
                source = source.with_predicate(state.create_physical_expr(predicate, &df_schema)?);
            }
            let mut groups: Vec<Vec<PartitionedFile>> = vec![Vec::new(); self.target_partitions];
            for (i, file) in self.files.iter().enumerate() {
                groups[i % self.target_partitions]
                    .push(PartitionedFile::new(file.path.clone(), file.bytes));
            }
            let config =
                FileScanConfigBuilder::new(ObjectStoreUrl::parse(STORE_URL)?, Arc::new(source))
                    .with_projection_indices(projection.cloned())?
                    .with_file_groups(
                        groups
                            .into_iter()
                            .filter(|g| !g.is_empty())
                            .map(FileGroup::new)
                            .collect(),
                    )
                    .build();
            inputs.push(DataSourceExec::from_data_source(config));
        }
        if !self.batches.is_empty() {
            inputs.push(MemorySourceConfig::try_new_exec(
                std::slice::from_ref(&self.batches),
                Arc::clone(&schema),
                projection.cloned(),
            )?);
        }
        if inputs.is_empty() {
            let projected = match projection {
                Some(p) => Arc::new(schema.project(p)?),
                None => schema,
            };
            return Ok(Arc::new(EmptyExec::new(projected)));
        }
        UnionExec::try_new(inputs)
    }
}
