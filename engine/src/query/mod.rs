//! SQL over events and issues with DataFusion, for one tenant at a time.
//!
//! Every query gets its own `SessionContext`, built for the caller's token ([`session`]): only
//! the tables `events` and `issues` exist there, and their providers hold only the rows of the
//! projects the token may read, with an `information_schema` describing just those two
//! ([`catalog`]) and JSON functions over the event JSON ([`functions`]). There is nothing else
//! to reach: no settings, no URL tables, no table functions, no disk for spilling. Every plan is checked before it runs
//! ([`guard`]): DataFusion's `SQLOptions` refuse DDL, DML and statements (`SET`, `COPY`,
//! `CREATE EXTERNAL TABLE`), and a walk over the plan refuses anything that is not a read of
//! `events` or `issues`. Each query runs under a memory pool, a time limit and a row limit from
//! the config, and hitting one is an error naming the limit.
//!
//! `events` is the union of the Parquet files in every node's manifest and the rows of this
//! node's buffer, so an event is queryable as soon as its request is answered. `issues` reads
//! per-issue summaries of the hourly rollups (cached per file) plus the buffer, with issue
//! state (see `issues_table`).

pub mod catalog;
mod events_table;
pub mod format;
mod functions;
mod guard;
mod issues_table;

use std::collections::HashSet;
use std::sync::Arc;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::error::DataFusionError;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::execution::SessionStateBuilder;
use datafusion::execution::cache::cache_manager::{CacheManagerConfig, FileMetadataCache};
use datafusion::execution::cache::default_cache::DefaultCache;
use datafusion::execution::disk_manager::{DiskManagerBuilder, DiskManagerMode};
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::logical_expr::LogicalPlan;
use datafusion::prelude::{SessionConfig, SessionContext};
use faultline_config::QueryConfig;
use futures::StreamExt;

pub use events_table::{EventsTable, STORE_URL};
use issues_table::IssuesTable;

use crate::buffer::Buffer;
use crate::issues::summary::RollupCache;
use crate::store::Store;
use crate::store::manifest::Manifest;
use crate::tenancy::{self, Principal, Projects, Scope};

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
    #[error("the object store is unavailable, retry later: cannot read the manifests: {0}")]
    Manifest(#[from] crate::store::Error),
    #[error("cannot encode the result: {0}")]
    Encode(String),
    #[error("{0}")]
    Refused(String),
    /// The SQL names something that does not exist or does not fit (DataFusion's plan error).
    #[error("{0}")]
    Plan(String),
    #[error(transparent)]
    Tenancy(#[from] tenancy::Error),
    #[error("cannot read issue state: {0}")]
    IssueState(#[source] Box<crate::issues::Error>),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// True when the user's SQL is at fault (HTTP 400), not the server.
    pub fn is_user_error(&self) -> bool {
        match self {
            Self::Manifest(_) | Self::Encode(_) | Self::Tenancy(_) | Self::IssueState(_) => false,
            // Reading the stored files failed: the server's fault, whatever the SQL was.
            Self::Sql(err) => !matches!(
                err.find_root(),
                DataFusionError::ObjectStore(_)
                    | DataFusionError::IoError(_)
                    | DataFusionError::ParquetError(_)
            ),
            _ => true,
        }
    }
}

/// The projects a session may read.
#[derive(Debug, Clone)]
pub enum ProjectFilter {
    /// Every project: only for `faultline query` on a data directory the caller can read anyway.
    All,
    Only(Arc<HashSet<u64>>),
}

impl ProjectFilter {
    pub fn allows(&self, project_id: u64) -> bool {
        match self {
            Self::All => true,
            Self::Only(set) => set.contains(&project_id),
        }
    }

    /// The projects a token may read; refuses a token without the `events:read` scope.
    pub async fn for_principal(projects: &Projects, principal: &Principal) -> Result<Self> {
        principal.require(Scope::EventsRead)?;
        Self::covering(projects, principal).await
    }

    /// The projects a token covers, whatever its scopes (the caller checks those).
    pub async fn covering(projects: &Projects, principal: &Principal) -> Result<Self> {
        let ids = projects.readable(principal).await?;
        Ok(Self::Only(Arc::new(ids.iter().map(|p| p.id).collect())))
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
    /// Per-issue summaries of the rollup files read so far (shared by every session).
    rollups: Arc<RollupCache>,
    /// Decoded Parquet footers, shared by every session: files never change once written.
    metadata_cache: Arc<FileMetadataCache>,
}

/// Bytes of decoded Parquet footers kept between queries.
const METADATA_CACHE_BYTES: usize = 64 * 1024 * 1024;

/// Scalar functions whose output size is an argument: they allocate outside the memory pool, so
/// `range(1, 1e9)` or `repeat('x', 1e9)` could take the process down. Sessions do not have them.
const UNBOUNDED_FUNCTIONS: [&str; 6] = [
    "range",
    "generate_series",
    "array_repeat",
    "repeat",
    "lpad",
    "rpad",
];

impl QueryService {
    pub fn new(store: Store, buffer: Arc<Buffer>, node: String, limits: QueryConfig) -> Self {
        Self {
            store,
            buffer,
            node,
            limits,
            rollups: Arc::default(),
            metadata_cache: Arc::new(DefaultCache::new(METADATA_CACHE_BYTES)),
        }
    }

    fn sql_error(&self, err: DataFusionError) -> Error {
        match err.find_root() {
            DataFusionError::ResourcesExhausted(message) => Error::Memory {
                limit: self.limits.memory_limit.as_u64(),
                message: message.clone(),
            },
            DataFusionError::Plan(message) => Error::Plan(message.clone()),
            _ => Error::Sql(Box::new(err)),
        }
    }

    /// The object store the data lives in.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// Reads and summarizes every live issue rollup file (see `issues::summary`), so later
    /// `issues` queries only merge cached summaries. Failures are logged: a query reads the
    /// files itself then.
    pub async fn warm_issue_cache(&self) {
        let started = std::time::Instant::now();
        let mut rollups = self.buffer.snapshot().manifest.rollups.clone();
        let others = match Manifest::load_all(&self.store).await {
            Ok(manifests) => manifests,
            Err(err) => {
                tracing::warn!(cause = %err, "cannot read manifests to warm the issue cache");
                return;
            }
        };
        for manifest in others {
            if manifest.node != self.node {
                rollups.extend(manifest.rollups);
            }
        }
        match self.rollups.summaries(&self.store, &rollups).await {
            Ok(files) => tracing::info!(
                files = files.len(),
                elapsed_ms = started.elapsed().as_millis() as u64,
                "issue rollups cached"
            ),
            Err(err) => tracing::warn!(cause = %err, "cannot warm the issue cache"),
        }
    }

    /// Builds the session of one query, holding only the rows `projects` allows. This is the
    /// one place sessions are made; every protocol (HTTP, CLI) goes through it.
    pub async fn session(&self, projects: &ProjectFilter) -> Result<SessionContext> {
        let snapshot = self.buffer.snapshot();
        let mut files = snapshot.manifest.files.clone();
        let mut rollups = snapshot.manifest.rollups.clone();
        for manifest in Manifest::load_all(&self.store).await? {
            if manifest.node != self.node {
                files.extend(manifest.files);
                rollups.extend(manifest.rollups);
            }
        }
        let states = crate::issues::state::load(&self.store, projects)
            .await
            .map_err(|e| Error::IssueState(Box::new(e)))?;
        // No disk manager: an operator that runs out of memory fails instead of spilling to
        // local files, so a query never touches the filesystem.
        let runtime = RuntimeEnvBuilder::new()
            .with_memory_limit(self.limits.memory_limit.as_u64() as usize, 1.0)
            .with_disk_manager_builder(
                DiskManagerBuilder::default().with_mode(DiskManagerMode::Disabled),
            )
            .with_cache_manager(
                CacheManagerConfig::default()
                    .with_file_metadata_cache(Some(Arc::clone(&self.metadata_cache)))
                    .with_metadata_cache_limit(METADATA_CACHE_BYTES),
            )
            .build_arc()
            .map_err(|e| self.sql_error(e))?;
        let config = SessionConfig::new()
            .with_information_schema(false)
            .with_target_partitions(2)
            .with_default_catalog_and_schema("faultline", "public");
        let mut state = SessionStateBuilder::new()
            .with_config(config)
            .with_runtime_env(runtime)
            .with_default_features()
            // `generate_series`, `range` and friends: not needed, and a cheap way to make work.
            .with_table_functions(Default::default())
            .build();
        functions::register(&mut state).map_err(|e| self.sql_error(e))?;
        let ctx = SessionContext::new_with_state(state);
        for name in UNBOUNDED_FUNCTIONS {
            ctx.deregister_udf(name);
        }
        ctx.register_object_store(
            &url::Url::parse(STORE_URL).expect("store URL is valid"),
            Arc::clone(&self.store.objects),
        );
        let events = EventsTable::new(files, snapshot.batches.clone(), projects, 2)
            .map_err(|e| self.sql_error(e))?;
        ctx.register_table("events", Arc::new(events))
            .map_err(|e| self.sql_error(e))?;
        self.rollups.retain(&rollups);
        let issues = IssuesTable::new(
            self.store.clone(),
            Arc::clone(&self.rollups),
            rollups,
            snapshot.batches,
            states,
            projects,
        )
        .map_err(|e| self.sql_error(e))?;
        ctx.register_table("issues", Arc::new(issues))
            .map_err(|e| self.sql_error(e))?;
        catalog::register(&ctx)
            .await
            .map_err(|e| self.sql_error(e))?;
        Ok(ctx)
    }

    /// Plans one statement in `ctx` and checks the plan ([`guard`]).
    pub async fn plan(&self, ctx: &SessionContext, sql: &str) -> Result<LogicalPlan> {
        let plan =
            ctx.state()
                .create_logical_plan(sql)
                .await
                .map_err(|e| match self.sql_error(e) {
                    Error::Plan(message) => Error::Plan(catalog::plan_message(message)),
                    other => other,
                })?;
        guard::check(&plan)?;
        functions::json_results_as_text(plan).map_err(|e| self.sql_error(e))
    }

    /// Runs one read-only SQL statement over the rows `projects` allows, within the limits.
    #[tracing::instrument(level = "debug", skip(self))]
    pub async fn run(&self, projects: &ProjectFilter, sql: &str) -> Result<QueryOutput> {
        let timeout = self.limits.timeout;
        let max_rows = self.limits.max_rows;
        let work = async {
            let ctx = self.session(projects).await?;
            let plan = self.plan(&ctx, sql).await?;
            self.collect_plan(&ctx, plan, max_rows).await
        };
        tokio::time::timeout(timeout, work)
            .await
            .map_err(|_| Error::Timeout(timeout))?
    }

    /// Runs a plan checked by [`Self::plan`] in `ctx` (from [`Self::session`]) within the time
    /// and row limits: for protocols that plan once and bind parameters later (PostgreSQL's
    /// extended protocol).
    pub async fn execute(&self, ctx: &SessionContext, plan: LogicalPlan) -> Result<QueryOutput> {
        let timeout = self.limits.timeout;
        let work = self.collect_plan(ctx, plan, self.limits.max_rows);
        tokio::time::timeout(timeout, work)
            .await
            .map_err(|_| Error::Timeout(timeout))?
    }

    async fn collect_plan(
        &self,
        ctx: &SessionContext,
        plan: LogicalPlan,
        max_rows: usize,
    ) -> Result<QueryOutput> {
        let frame = ctx
            .execute_logical_plan(plan)
            .await
            .map_err(|e| self.sql_error(e))?;
        let schema: SchemaRef = Arc::clone(frame.schema().inner());
        let stream = frame
            .execute_stream()
            .await
            .map_err(|e| self.sql_error(e))?;
        let batches = self.collect_limited(stream, max_rows).await?;
        Ok(QueryOutput { schema, batches })
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
