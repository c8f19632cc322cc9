//! The table provider of `events` (and of the hourly issue rollups behind `issues`): the Parquet
//! files named by the manifests, plus rows still in memory, read as one table, restricted to the
//! projects of the session.
//!
//! The restriction is structural: files of other projects are never handed to the Parquet scan
//! (each file holds one project) and buffered rows of other projects are dropped before the
//! table exists, so no SQL construct can reach them.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::{BooleanArray, Int64Array, RecordBatch};
use datafusion::arrow::compute::filter_record_batch;
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

use super::ProjectFilter;
use crate::events;
use crate::store::manifest::DataFile;

/// URL under which the engine's object store is registered in every query session.
pub const STORE_URL: &str = "faultline://store/";

/// Files and in-memory rows that make up the table for one query.
#[derive(Debug)]
pub struct EventsTable {
    schema: SchemaRef,
    files: Vec<DataFile>,
    batches: Vec<RecordBatch>,
    target_partitions: usize,
}

impl EventsTable {
    /// The `events` table.
    pub fn new(
        files: Vec<DataFile>,
        batches: Vec<RecordBatch>,
        projects: &ProjectFilter,
        target_partitions: usize,
    ) -> Result<Self> {
        Self::with_schema(
            events::schema(),
            files,
            batches,
            projects,
            target_partitions,
        )
    }

    /// A table of another schema with a `project_id` column.
    pub fn with_schema(
        schema: SchemaRef,
        files: Vec<DataFile>,
        batches: Vec<RecordBatch>,
        projects: &ProjectFilter,
        target_partitions: usize,
    ) -> Result<Self> {
        let files = files
            .into_iter()
            .filter(|f| projects.allows(f.project_id))
            .collect();
        let batches = restrict_batches(batches, projects)?;
        Ok(Self {
            schema,
            files,
            batches,
            target_partitions: target_partitions.max(1),
        })
    }
}

/// Keeps only the rows of `batches` whose `project_id` the filter allows.
pub(crate) fn restrict_batches(
    batches: Vec<RecordBatch>,
    projects: &ProjectFilter,
) -> Result<Vec<RecordBatch>> {
    let ProjectFilter::Only(allowed) = projects else {
        return Ok(batches);
    };
    let mut out = Vec::with_capacity(batches.len());
    for batch in batches {
        let column = batch.schema().index_of("project_id")?;
        let ids = batch
            .column(column)
            .as_any()
            .downcast_ref::<Int64Array>()
            .expect("project_id is Int64");
        let keep: BooleanArray = ids
            .iter()
            .map(|id| Some(id.is_some_and(|id| allowed.contains(&(id as u64)))))
            .collect();
        let kept = filter_record_batch(&batch, &keep)?;
        if kept.num_rows() > 0 {
            out.push(kept);
        }
    }
    Ok(out)
}

#[async_trait]
impl TableProvider for EventsTable {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
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
        let schema = Arc::clone(&self.schema);
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
