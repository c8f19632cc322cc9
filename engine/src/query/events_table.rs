//! The table provider of `events`: the Parquet files named by the manifests, plus rows still in
//! memory, read as one table, restricted to the projects of the session.
//!
//! The restriction is structural: files of other projects are never handed to the Parquet scan
//! (each file holds one project) and buffered rows of other projects are dropped before the
//! table exists, so no SQL construct can reach them.
//!
//! Before the scan, files whose time range (from the manifest, no file is opened) cannot match
//! the query's filters are dropped; the Parquet reader then prunes row groups and pages by
//! their statistics and bloom filters. File footers come from the runtime's metadata cache, so
//! a footer is read and decoded once per file, not once per query.

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::{ArrayRef, BooleanArray, Int64Array, RecordBatch};
use datafusion::arrow::array::{TimestampMillisecondArray, UInt64Array};
use datafusion::arrow::compute::filter_record_batch;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::{Session, TableProvider};
use datafusion::common::pruning::PruningStatistics;
use datafusion::common::{Column, DFSchema, Result, ScalarValue};
use datafusion::datasource::TableType;
use datafusion::datasource::listing::PartitionedFile;
use datafusion::datasource::memory::MemorySourceConfig;
use datafusion::datasource::physical_plan::parquet::CachedParquetFileReaderFactory;
use datafusion::datasource::physical_plan::{FileGroup, FileScanConfigBuilder, ParquetSource};
use datafusion::datasource::source::DataSourceExec;
use datafusion::execution::object_store::ObjectStoreUrl;
use datafusion::logical_expr::utils::conjunction;
use datafusion::logical_expr::{Expr, TableProviderFilterPushDown};
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_optimizer::pruning::PruningPredicateBuilder;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::empty::EmptyExec;
use datafusion::physical_plan::union::UnionExec;

use super::ProjectFilter;
use crate::events;
use crate::store::manifest::DataFile;

/// URL under which the engine's object store is registered in every query session.
pub const STORE_URL: &str = "faultline://store/";

/// The column whose per-file bounds the manifest of event files records
/// (`DataFile::min_timestamp_ms` / `max_timestamp_ms`).
const TIME_COLUMN: &str = "timestamp";

/// The same for rollup files: the start of the hour of each row.
const HOUR_COLUMN: &str = "hour";

/// Rows per data page of the writer (parquet-rs's default row limit; event JSON pages are cut
/// earlier by their byte limit).
const PAGE_ROWS: u64 = 20_000;

/// Files and in-memory rows that make up the table for one query.
#[derive(Debug)]
pub struct EventsTable {
    schema: SchemaRef,
    files: Vec<DataFile>,
    batches: Vec<RecordBatch>,
    target_partitions: usize,
    /// The column the manifest's time range of each file is about.
    time_column: &'static str,
    /// The wide column (the event JSON), if any: a filtered scan that reads it decodes the
    /// filter columns first and this one only for the rows that match.
    wide_column: Option<usize>,
}

impl EventsTable {
    /// The `events` table: `files` and `batches` of the projects `projects` allows.
    pub fn new(
        files: Vec<DataFile>,
        batches: Vec<RecordBatch>,
        projects: &ProjectFilter,
        target_partitions: usize,
    ) -> Result<Self> {
        let (files, batches) = restrict(files, batches, projects)?;
        Ok(Self {
            schema: events::schema(),
            files,
            batches,
            target_partitions: target_partitions.max(1),
            time_column: TIME_COLUMN,
            wide_column: Some(events::column_index("event")),
        })
    }

    /// An item table (`crate::items`): its files and buffered rows of the projects `projects`
    /// allows, pruned by the manifest's range of the `timestamp` column.
    pub(crate) fn items(
        schema: SchemaRef,
        files: Vec<DataFile>,
        batches: Vec<RecordBatch>,
        projects: &ProjectFilter,
        target_partitions: usize,
    ) -> Result<Self> {
        let (files, batches) = restrict(files, batches, projects)?;
        Ok(Self {
            schema,
            files,
            batches,
            target_partitions: target_partitions.max(1),
            time_column: TIME_COLUMN,
            wide_column: None,
        })
    }

    /// The rollup files (of `schema`, with an `hour` column) of the projects `projects`
    /// allows, as one table (the rows still in memory are added by the caller).
    pub(crate) fn rollups(
        schema: SchemaRef,
        files: Vec<DataFile>,
        projects: &ProjectFilter,
        target_partitions: usize,
    ) -> Result<Self> {
        let (files, _) = restrict(files, Vec::new(), projects)?;
        Ok(Self {
            schema,
            files,
            batches: Vec::new(),
            target_partitions: target_partitions.max(1),
            time_column: HOUR_COLUMN,
            wide_column: None,
        })
    }

    /// The files a scan with `predicate` needs: all of them, less those whose time range in the
    /// manifest proves that no row can match.
    fn files_for(&self, predicate: Option<&Arc<dyn PhysicalExpr>>) -> Vec<&DataFile> {
        let pruning = predicate.and_then(|predicate| {
            PruningPredicateBuilder::new()
                .with_file_schema(Arc::clone(&self.schema))
                .build(Arc::clone(predicate))
        });
        let bounds = FileTimeBounds {
            files: &self.files,
            schema: &self.schema,
            column: self.time_column,
        };
        // A predicate that cannot be evaluated on the bounds prunes nothing.
        let keep = pruning
            .and_then(|p| p.prune(&bounds).ok())
            .unwrap_or_else(|| vec![true; self.files.len()]);
        self.files
            .iter()
            .zip(keep)
            .filter_map(|(file, keep)| keep.then_some(file))
            .collect()
    }
}

/// The manifest's time range of each file, as pruning statistics of [`TIME_COLUMN`].
struct FileTimeBounds<'a> {
    files: &'a [DataFile],
    schema: &'a SchemaRef,
    column: &'static str,
}

impl FileTimeBounds<'_> {
    fn bounds(&self, column: &Column, bound: fn(&DataFile) -> i64) -> Option<ArrayRef> {
        if column.name != self.column {
            return None;
        }
        let data_type = self.schema.field_with_name(self.column).ok()?.data_type();
        let values: TimestampMillisecondArray = self.files.iter().map(|f| Some(bound(f))).collect();
        Some(Arc::new(values.with_data_type(data_type.clone())))
    }
}

impl PruningStatistics for FileTimeBounds<'_> {
    fn min_values(&self, column: &Column) -> Option<ArrayRef> {
        self.bounds(column, |f| f.min_timestamp_ms)
    }

    fn max_values(&self, column: &Column) -> Option<ArrayRef> {
        self.bounds(column, |f| f.max_timestamp_ms)
    }

    fn num_containers(&self) -> usize {
        self.files.len()
    }

    fn null_counts(&self, column: &Column) -> Option<ArrayRef> {
        // The time column is not nullable.
        (column.name == self.column)
            .then(|| Arc::new(UInt64Array::from(vec![0; self.files.len()])) as ArrayRef)
    }

    fn row_counts(&self) -> Option<ArrayRef> {
        Some(Arc::new(UInt64Array::from_iter_values(
            self.files.iter().map(|f| f.rows),
        )))
    }

    fn contained(
        &self,
        _column: &Column,
        _values: &std::collections::HashSet<ScalarValue>,
    ) -> Option<BooleanArray> {
        None
    }
}

/// Keeps only the files and buffered rows of the projects `projects` allows (each file holds
/// one project).
pub(crate) fn restrict(
    files: Vec<DataFile>,
    batches: Vec<RecordBatch>,
    projects: &ProjectFilter,
) -> Result<(Vec<DataFile>, Vec<RecordBatch>)> {
    let files = files
        .into_iter()
        .filter(|f| projects.allows(f.project_id))
        .collect();
    Ok((files, restrict_batches(batches, projects)?))
}

/// Keeps only the rows of `batches` whose `project_id` the filter allows.
fn restrict_batches(
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
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let schema = Arc::clone(&self.schema);
        let mut inputs: Vec<Arc<dyn ExecutionPlan>> = Vec::new();

        let predicate = match conjunction(filters.iter().cloned()) {
            Some(predicate) => {
                let df_schema = DFSchema::try_from(Arc::clone(&schema))?;
                Some(state.create_physical_expr(predicate, &df_schema)?)
            }
            None => None,
        };
        let files = self.files_for(predicate.as_ref());
        if !files.is_empty() {
            let url = ObjectStoreUrl::parse(STORE_URL)?;
            let runtime = state.runtime_env();
            let reader = CachedParquetFileReaderFactory::new(
                runtime.object_store(&url)?,
                runtime.cache_manager.get_file_metadata_cache(),
            );
            let reads_wide = self
                .wide_column
                .is_some_and(|wide| projection.is_none_or(|p| p.contains(&wide)));
            let mut source = ParquetSource::new(Arc::clone(&schema))
                .with_parquet_file_reader_factory(Arc::new(reader))
                // The page index is read per file and query (DataFusion caches footers without
                // it). It can only skip pages of column chunks with several pages: in files of
                // up to PAGE_ROWS rows that is only the event JSON column.
                .with_enable_page_index(reads_wide || files.iter().any(|f| f.rows > PAGE_ROWS));
            if let Some(predicate) = predicate {
                // Late materialization costs more than it saves on narrow scans (measured with
                // `query-bench`), but spares decoding the event JSON of rows that do not match.
                source = source
                    .with_predicate(predicate)
                    .with_pushdown_filters(reads_wide);
            }
            let mut groups: Vec<Vec<PartitionedFile>> = vec![Vec::new(); self.target_partitions];
            for (i, file) in files.iter().enumerate() {
                groups[i % self.target_partitions]
                    .push(PartitionedFile::new(file.path.clone(), file.bytes));
            }
            let config = FileScanConfigBuilder::new(url, Arc::new(source))
                .with_projection_indices(projection.cloned())?
                .with_limit(limit)
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

#[cfg(test)]
mod tests {
    use datafusion::arrow::array::AsArray;
    use datafusion::arrow::datatypes::Int64Type;
    use object_store::path::Path as ObjectPath;

    use super::*;
    use crate::buffer::{Buffer, FlushThresholds};
    use crate::events::{EventBuilder, StoredEvent};
    use crate::query::QueryService;
    use crate::store::Store;
    use crate::store::manifest::Manifest;
    use crate::store::parquet::write_partitions;

    /// A reader over one event of issue 1 five hours ago and one of issue 2 an hour ago, whose
    /// earlier file is then overwritten with bytes that are not Parquet: any query that opens
    /// that file fails. Also returns a time between the two events.
    async fn reader_with_broken_early_file() -> (QueryService, String) {
        let store = Store::memory();
        let now = chrono::Utc::now();
        let mut builder = EventBuilder::new();
        for (issue, hours_ago) in [(1, 5), (2, 1)] {
            let at = (now - chrono::Duration::hours(hours_ago)).to_rfc3339();
            let payload = format!(r#"{{"message":"m","timestamp":"{at}"}}"#);
            builder.append(&StoredEvent::for_test(1, issue, &payload));
        }
        let files = write_partitions(&store, &[builder.finish()], 1)
            .await
            .unwrap();
        assert_eq!(files.len(), 2);
        let between = now - chrono::Duration::hours(3);
        let early = files
            .iter()
            .find(|f| f.max_timestamp_ms < between.timestamp_millis())
            .unwrap();
        store
            .put_durable(&ObjectPath::from(early.path.as_str()), "not parquet".into())
            .await
            .unwrap();
        Manifest::load_latest(&store, "writer")
            .await
            .unwrap()
            .with_files(files, 0)
            .commit(&store)
            .await
            .unwrap();
        let thresholds = FlushThresholds {
            max_events: 1000,
            max_bytes: 1 << 20,
        };
        let reader = QueryService::new(
            store,
            Arc::new(Buffer::new(Manifest::default(), thresholds)),
            "reader".into(),
            Default::default(),
        )
        .unwrap();
        (reader, between.to_rfc3339())
    }

    async fn issues(reader: &QueryService, sql: &str) -> super::super::Result<Vec<i64>> {
        let out = reader.run(&ProjectFilter::All, sql).await?;
        Ok(out
            .batches
            .iter()
            .flat_map(|b| b.column(0).as_primitive::<Int64Type>().values().to_vec())
            .collect())
    }

    #[tokio::test]
    async fn a_time_filter_skips_files_outside_its_range_without_opening_them() {
        let (reader, between) = reader_with_broken_early_file().await;
        for sql in [
            format!("SELECT issue_id FROM events WHERE timestamp >= '{between}'"),
            format!(
                "SELECT issue_id FROM events WHERE timestamp > '{between}' \
                 AND timestamp <= now() AND issue_id > 0"
            ),
            format!("SELECT issue_id FROM events WHERE NOT timestamp < '{between}'"),
        ] {
            assert_eq!(issues(&reader, &sql).await.unwrap(), [2], "{sql}");
        }
        // The same file is read, and fails, when the filter does not exclude it.
        for sql in [
            "SELECT issue_id FROM events".to_owned(),
            format!("SELECT issue_id FROM events WHERE timestamp < '{between}'"),
            format!("SELECT issue_id FROM events WHERE timestamp > '{between}' OR issue_id = 1"),
            "SELECT issue_id FROM events WHERE issue_id = 2".to_owned(),
        ] {
            assert!(issues(&reader, &sql).await.is_err(), "{sql}");
        }
    }
}
