//! SQL over events and issues with DataFusion.
//!
//! Every query gets its own `SessionContext` in which only the tables `events` and `issues`
//! exist. Statements other than queries are refused by DataFusion's `SQLOptions` (no DDL, no
//! DML, no `SET`, no `COPY`, no `CREATE EXTERNAL TABLE`); URL tables and `information_schema`
//! stay off. Each query runs under a memory pool, a time limit and a row limit from the config.
//!
//! `events` is the union of the Parquet files in every node's manifest and the rows of this
//! node's buffer, so an event is queryable as soon as its request is answered. `issues` is a view
//! aggregating `events` per issue.

mod events_table;
pub mod format;

use std::sync::Arc;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::error::DataFusionError;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::prelude::{SQLOptions, SessionConfig, SessionContext};
use faultline_config::QueryConfig;
use futures::StreamExt;

pub use events_table::{EventsTable, STORE_URL};

use crate::buffer::Buffer;
use crate::store::Store;
use crate::store::manifest::Manifest;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    Sql(#[source] Box<DataFusionError>),
    #[error("the query used more than the memory limit of {limit} bytes: {message}")]
    Memory { limit: u64, message: String },
    #[error("the query ran longer than the time limit of {0:?}")]
    Timeout(std::time::Duration),
    #[error("the query returned more than the row limit of {0} rows; add a LIMIT or narrow it")]
    TooManyRows(usize),
    #[error("cannot read manifests: {0}")]
    Manifest(#[from] crate::store::Error),
    #[error("cannot encode the result: {0}")]
    Encode(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// True when the user's SQL is at fault (HTTP 400), not the server.
    pub fn is_user_error(&self) -> bool {
        !matches!(self, Self::Manifest(_) | Self::Encode(_))
    }
}

/// The result of a query.
#[derive(Debug)]
pub struct QueryOutput {
    pub schema: SchemaRef,
    pub batches: Vec<RecordBatch>,
}

/// Runs SQL for callers; holds what every session is built from.
pub struct QueryService {
    store: Store,
    buffer: Arc<Buffer>,
    node: String,
    limits: QueryConfig,
}

const ISSUES_VIEW: &str = "SELECT issue_id, project_id, project, \
    last_value(title ORDER BY timestamp) AS title, \
    last_value(culprit ORDER BY timestamp) AS culprit, \
    last_value(level ORDER BY timestamp) AS level, \
    min(timestamp) AS first_seen, max(timestamp) AS last_seen, \
    count(*) AS event_count, 'unresolved' AS status \
    FROM events GROUP BY issue_id, project_id, project";

impl QueryService {
    pub fn new(store: Store, buffer: Arc<Buffer>, node: String, limits: QueryConfig) -> Self {
        Self {
            store,
            buffer,
            node,
            limits,
        }
    }

    fn sql_error(&self, err: DataFusionError) -> Error {
        match err.find_root() {
            DataFusionError::ResourcesExhausted(message) => Error::Memory {
                limit: self.limits.memory_limit.as_u64(),
                message: message.clone(),
            },
            _ => Error::Sql(Box::new(err)),
        }
    }

    /// Builds the session of one query.
    async fn session(&self) -> Result<SessionContext> {
        let snapshot = self.buffer.snapshot();
        let mut files = snapshot.manifest.files.clone();
        for manifest in Manifest::load_all(&self.store).await? {
            if manifest.node != self.node {
                files.extend(manifest.files);
            }
        }
        let runtime = RuntimeEnvBuilder::new()
            .with_memory_limit(self.limits.memory_limit.as_u64() as usize, 1.0)
            .build_arc()
            .map_err(|e| self.sql_error(e))?;
        let config = SessionConfig::new()
            .with_information_schema(false)
            .with_target_partitions(2)
            .with_default_catalog_and_schema("faultline", "public");
        let ctx = SessionContext::new_with_config_rt(config, runtime);
        ctx.register_object_store(
            &url::Url::parse(STORE_URL).expect("store URL is valid"),
            Arc::clone(&self.store.objects),
        );
        let events = EventsTable::new(files, snapshot.batches, 2);
        ctx.register_table("events", Arc::new(events))
            .map_err(|e| self.sql_error(e))?;
        let issues = ctx
            .sql(ISSUES_VIEW)
            .await
            .map_err(|e| self.sql_error(e))?
            .into_view();
        ctx.register_table("issues", issues)
            .map_err(|e| self.sql_error(e))?;
        Ok(ctx)
    }

    /// Runs one read-only SQL statement within the configured limits.
    #[tracing::instrument(level = "debug", skip(self))]
    pub async fn run(&self, sql: &str) -> Result<QueryOutput> {
        let ctx = self.session().await?;
        let options = SQLOptions::new()
            .with_allow_ddl(false)
            .with_allow_dml(false)
            .with_allow_statements(false);
        let timeout = self.limits.timeout;
        let max_rows = self.limits.max_rows;
        let work = async {
            let frame = ctx
                .sql_with_options(sql, options)
                .await
                .map_err(|e| self.sql_error(e))?;
            let schema: SchemaRef = Arc::clone(frame.schema().inner());
            let stream = frame
                .execute_stream()
                .await
                .map_err(|e| self.sql_error(e))?;
            let batches = self.collect_limited(stream, max_rows).await?;
            Ok(QueryOutput { schema, batches })
        };
        tokio::time::timeout(timeout, work)
            .await
            .map_err(|_| Error::Timeout(timeout))?
    }

    async fn collect_limited(
        &self,
        mut stream: SendableRecordBatchStream,
        max_rows: usize,
    ) -> Result<Vec<RecordBatch>> {
        let mut rows = 0usize;
        let mut batches = Vec::new();
        while let Some(batch) = stream.next().await {
            let batch = batch.map_err(|e| self.sql_error(e))?;
            rows += batch.num_rows();
            if rows > max_rows {
                return Err(Error::TooManyRows(max_rows));
            }
            batches.push(batch);
        }
        Ok(batches)
    }
}
