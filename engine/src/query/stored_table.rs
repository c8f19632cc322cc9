//! Tables whose rows are read from the object store each time a query scans them: the small
//! tables of metadata (`audit_log`, `alert_deliveries`, `monitors`). Each says how to read its
//! rows as one batch; scanning, projection and filters are the same for all.

use std::fmt::Debug;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::{MemTable, Session, TableProvider};
use datafusion::datasource::TableType;
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::Expr;
use datafusion::physical_plan::ExecutionPlan;

/// The rows of a stored table.
#[async_trait]
pub(crate) trait StoredRows: Debug + Send + Sync + 'static {
    fn schema(&self) -> SchemaRef;

    /// The rows as they are stored now.
    async fn read(&self) -> Result<RecordBatch>;
}

/// A table of [`StoredRows`], read when a query scans it.
#[derive(Debug)]
pub(crate) struct StoredTable<R>(pub(crate) R);

#[async_trait]
impl<R: StoredRows> TableProvider for StoredTable<R> {
    fn schema(&self) -> SchemaRef {
        self.0.schema()
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let batch = self.0.read().await?;
        let table = MemTable::try_new(self.0.schema(), vec![vec![batch]])?;
        table.scan(state, projection, filters, limit).await
    }
}

/// An error of reading the rows, as DataFusion carries it.
pub(crate) fn external(err: impl std::error::Error + Send + Sync + 'static) -> DataFusionError {
    DataFusionError::External(Box::new(err))
}
