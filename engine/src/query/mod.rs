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
//! Before planning, the SQL's length and nesting are checked ([`limits`]); planning and
//! execution run on the query threads ([`runtime`]), apart from ingest, within a cap on
//! concurrent queries; result batches are counted in the query's memory pool while they are
//! collected, and every scalar function runs within output, input and time caps
//! ([`functions`]).
//!
//! `events` is the union of the Parquet files in every node's manifest and the rows of this
//! node's buffer, so an event is queryable as soon as its request is answered. `issues` reads
//! per-issue summaries of the hourly rollups (cached per file) plus the buffer, with issue
//! state (see `issues_table`).

mod audit_table;
pub mod catalog;
mod events_table;
pub mod format;
mod functions;
pub mod grouping_fn;
mod guard;
mod issue_hours_table;
mod issues_table;
mod json;
mod limits;
mod runtime;
pub mod saved;
pub(crate) mod stored_table;
mod tables;

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
use datafusion::execution::memory_pool::MemoryConsumer;
use datafusion::execution::runtime_env::RuntimeEnvBuilder;
use datafusion::logical_expr::LogicalPlan;
use datafusion::prelude::{SessionConfig, SessionContext};
use faultline_config::QueryConfig;
use futures::StreamExt;
use tokio::sync::mpsc;

pub use audit_table::AuditView;
pub use events_table::{EventsTable, STORE_URL};
use functions::{Caps, LimitError};
use limits::Admission;
pub(crate) use limits::check_depth;
use runtime::{Budget, QueryRuntime};
pub(crate) use tables::names as table_names;

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
    #[error("the SQL text is {length} bytes, more than query.max_sql_length ({limit} bytes)")]
    TooLong { length: usize, limit: usize },
    #[error(
        "the SQL nests expressions or subqueries more than query.max_expression_depth \
         ({limit} levels) deep; split long chains of operators (for example with IN lists)"
    )]
    TooDeep { limit: usize },
    /// A function went over `query.max_function_output` or `query.max_quadratic_input`.
    #[error("{0}")]
    FunctionLimit(String),
    /// Too many queries are running; the caller should retry shortly.
    #[error("too busy, retry shortly: {0}")]
    Busy(String),
    #[error("cannot start the query threads: {0}")]
    Runtime(#[source] std::io::Error),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// True when the object store did not answer while the query read its manifest, tokens,
    /// projects or files; the same query may succeed when retried.
    pub fn is_unavailable(&self) -> bool {
        match self {
            Self::Manifest(_) => true,
            Self::Tenancy(e) => e.is_unavailable(),
            // a stored file could not be read: the store did not answer, or compaction
            // replaced the file while the query ran (the next query reads the new manifest)
            Self::Sql(err) => matches!(err.find_root(), DataFusionError::ObjectStore(_)),
            _ => false,
        }
    }

    /// True when the user's SQL is at fault (HTTP 400), not the server.
    pub fn is_user_error(&self) -> bool {
        match self {
            Self::Manifest(_)
            | Self::Encode(_)
            | Self::Tenancy(_)
            | Self::IssueState(_)
            | Self::Busy(_)
            | Self::Runtime(_) => false,
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
#[derive(Debug, Clone, PartialEq, Eq)]
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
        principal.require(Scope::EventRead)?;
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
    /// Issue states read so far (shared by every session).
    states: crate::issues::state::StateCache,
    /// Decoded Parquet footers, shared by every session: files never change once written.
    metadata_cache: Arc<FileMetadataCache>,
    /// The threads queries plan and run on.
    runtime: QueryRuntime,
    /// The cap on concurrent queries.
    admission: Arc<Admission>,
    /// Projects' own grouping rules, for `grouping_explain` (the built-in ones without).
    grouping: parking_lot::RwLock<Option<grouping_fn::GroupingRules>>,
}

/// How many result batches wait between the query threads and the caller.
const RESULT_CHANNEL: usize = 4;

/// Bytes of decoded Parquet footers kept between queries.
const METADATA_CACHE_BYTES: usize = 64 * 1024 * 1024;

/// Scalar functions whose output size is an argument: they allocate outside the memory pool, so
/// `range(1, 1e9)` or `repeat('x', 1e9)` could take the process down. Sessions do not have them
/// (`array_resize` is kept: its size argument is checked before each call, see `functions`).
const UNBOUNDED_FUNCTIONS: [&str; 6] = [
    "range",
    "generate_series",
    "array_repeat",
    "repeat",
    "lpad",
    "rpad",
];

impl QueryService {
    /// The service, with its query threads started.
    pub fn new(
        store: Store,
        buffer: Arc<Buffer>,
        node: String,
        limits: QueryConfig,
    ) -> Result<Self> {
        let runtime = QueryRuntime::new(limits.threads, limits.max_concurrent, limits.thread_nice)
            .map_err(Error::Runtime)?;
        let admission = Admission::new(limits.max_concurrent, limits.max_concurrent_per_token);
        Ok(Self {
            store,
            buffer,
            node,
            limits,
            rollups: Arc::default(),
            states: Default::default(),
            metadata_cache: Arc::new(DefaultCache::new(METADATA_CACHE_BYTES)),
            runtime,
            admission,
            grouping: parking_lot::RwLock::new(None),
        })
    }

    /// Where `grouping_explain` finds a project's own grouping rules.
    pub fn set_grouping_rules(&self, rules: grouping_fn::GroupingRules) {
        *self.grouping.write() = Some(rules);
    }

    /// How many queries run now (admitted and not finished).
    pub fn running(&self) -> usize {
        self.admission.running()
    }

    /// The limits queries run under.
    pub fn limits(&self) -> &QueryConfig {
        &self.limits
    }

    fn sql_error(&self, err: DataFusionError) -> Error {
        sql_error(&self.limits, err)
    }
}

/// A DataFusion error as the caller sees it: limits by name, planning errors by message.
fn sql_error(limits: &QueryConfig, err: DataFusionError) -> Error {
    let mut source: Option<&(dyn std::error::Error + 'static)> = Some(&err);
    while let Some(e) = source {
        if e.downcast_ref::<audit_table::AuditDenied>().is_some() {
            return Error::Tenancy(tenancy::Error::MissingScope {
                scope: Scope::OrgAdmin,
            });
        }
        if let Some(limit) = e.downcast_ref::<LimitError>() {
            return match limit {
                LimitError::Cancelled => Error::Timeout(limits.timeout),
                other => Error::FunctionLimit(other.to_string()),
            };
        }
        source = e.source();
    }
    {
        match err.find_root() {
            DataFusionError::ResourcesExhausted(message) => Error::Memory {
                limit: limits.memory_limit.as_u64(),
                message: message.clone(),
            },
            DataFusionError::Plan(message) => Error::Plan(message.clone()),
            _ => Error::Sql(Box::new(err)),
        }
    }
}

impl QueryService {
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
        let audit = match projects {
            ProjectFilter::All => AuditView::All,
            ProjectFilter::Only(_) => AuditView::Denied,
        };
        self.session_with(projects, audit).await
    }

    /// [`Self::session`] with the audit log `audit` allows in its `audit_log` table.
    pub async fn session_with(
        &self,
        projects: &ProjectFilter,
        audit: AuditView,
    ) -> Result<SessionContext> {
        let snapshot = self.buffer.snapshot();
        let mut files = snapshot.manifest.files.clone();
        let mut rollups = snapshot.manifest.rollups.clone();
        let mut tag_rollups = snapshot.manifest.tag_rollups.clone();
        let mut item_files = snapshot.manifest.tables.clone();
        for manifest in Manifest::load_all(&self.store).await? {
            if manifest.node != self.node {
                files.extend(manifest.files);
                rollups.extend(manifest.rollups);
                tag_rollups.extend(manifest.tag_rollups);
                for (table, listed) in manifest.tables {
                    item_files.entry(table).or_default().extend(listed);
                }
            }
        }
        let states = self
            .states
            .load(&self.store, projects)
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
        // Every function runs within the caps and stops once the query's time is up.
        let budget = Arc::new(Budget::default());
        let caps = Caps {
            max_output: usize::try_from(self.limits.max_function_output.as_u64())
                .unwrap_or(usize::MAX),
            max_quadratic_input: self.limits.max_quadratic_input,
        };
        let config = SessionConfig::new()
            .with_information_schema(false)
            .with_target_partitions(2)
            .with_default_catalog_and_schema("faultline", "public")
            .with_extension(Arc::clone(&budget));
        let mut builder = SessionStateBuilder::new()
            .with_config(config)
            .with_runtime_env(runtime)
            .with_default_features()
            // `generate_series`, `range` and friends: not needed, and a cheap way to make work.
            .with_table_functions(Default::default());
        if let Some(udfs) = builder.scalar_functions() {
            udfs.retain(|f| {
                !UNBOUNDED_FUNCTIONS.contains(&f.name())
                    && !f
                        .aliases()
                        .iter()
                        .any(|a| UNBOUNDED_FUNCTIONS.contains(&a.as_str()))
            });
            for udf in udfs.iter_mut() {
                *udf = Arc::new(functions::limit(udf, caps, &budget));
            }
        }
        let mut state = builder.build();
        // JSON functions and operators (their output is bounded by their input, the event JSON).
        json::register(&mut state).map_err(|e| self.sql_error(e))?;
        let ctx = SessionContext::new_with_state(state);
        let explain = grouping_fn::udf(self.grouping.read().clone(), projects.clone());
        ctx.register_udf(functions::limit(&explain, caps, &budget));
        ctx.register_object_store(
            &url::Url::parse(STORE_URL).expect("store URL is valid"),
            Arc::clone(&self.store.objects),
        );
        self.rollups.retain(&rollups);
        let inputs = tables::Inputs {
            files,
            rollups,
            tag_rollups,
            batches: snapshot.batches.clone(),
            item_files,
            item_batches: snapshot.items.clone(),
            states,
            projects: projects.clone(),
            audit,
        };
        for (name, provider) in tables::build_all(self, &inputs).map_err(|e| self.sql_error(e))? {
            ctx.register_table(name, provider)
                .map_err(|e| self.sql_error(e))?;
        }
        for (name, sql) in tables::VIEWS {
            ctx.sql(&format!("CREATE VIEW {name} AS {sql}"))
                .await
                .map_err(|e| self.sql_error(e))?;
        }
        catalog::register(&ctx)
            .await
            .map_err(|e| self.sql_error(e))?;
        Ok(ctx)
    }

    /// Plans one statement in `ctx` on the query threads: refuses SQL longer or nested deeper
    /// than the limits before DataFusion walks it ([`limits`]), then checks the plan
    /// ([`guard`]). Every protocol plans through here.
    pub async fn plan(&self, ctx: &SessionContext, sql: &str) -> Result<LogicalPlan> {
        limits::check_text(sql, self.limits.max_sql_length)?;
        let budget = budget(ctx);
        let ctx = ctx.clone();
        let sql = sql.to_owned();
        let limits = self.limits.clone();
        let work = async move {
            // DataFusion's messages for SHOW forms sessions do not have name a setting users
            // cannot change; `catalog` says what there is instead.
            let plan_error = |e| match sql_error(&limits, e) {
                // Sessions that may not read the audit log do not have the table.
                Error::Plan(message) if audit_table::names_missing_audit_log(&message) => {
                    Error::Tenancy(tenancy::Error::MissingScope {
                        scope: Scope::OrgAdmin,
                    })
                }
                Error::Plan(message) => Error::Plan(catalog::plan_message(message)),
                other => other,
            };
            let state = ctx.state();
            let dialect = state.config().options().sql_parser.dialect;
            let statement = state.sql_to_statement(&sql, &dialect).map_err(plan_error)?;
            limits::check_df_depth(&statement, limits.max_expression_depth)?;
            let plan = state
                .statement_to_plan(statement)
                .await
                .map_err(plan_error)?;
            guard::check(&plan)?;
            json::json_results_as_text(plan).map_err(|e| sql_error(&limits, e))
        };
        let timeout = self.limits.timeout;
        tokio::time::timeout(timeout, self.runtime.spawn(budget, work))
            .await
            .map_err(|_| Error::Timeout(timeout))?
    }

    /// Checks SQL parsed elsewhere (the PostgreSQL listener parses to split statements) against
    /// the length and nesting limits, on the query threads.
    pub async fn check_parsed<T, F>(&self, sql: &str, parse: F) -> Result<T>
    where
        F: FnOnce(&str, usize) -> Result<T> + Send + 'static,
        T: Send + 'static,
    {
        limits::check_text(sql, self.limits.max_sql_length)?;
        let sql = sql.to_owned();
        let depth = self.limits.max_expression_depth;
        self.runtime
            .spawn(None, async move { parse(&sql, depth) })
            .await
    }

    /// Runs one read-only SQL statement over the rows `projects` allows, within the limits,
    /// for a local caller (counted in `query.max_concurrent` only).
    pub async fn run(&self, projects: &ProjectFilter, sql: &str) -> Result<QueryOutput> {
        self.run_as(None, projects, sql).await
    }

    /// Runs one read-only SQL statement for API token `token` over the rows `projects` allows,
    /// within the limits.
    #[tracing::instrument(level = "debug", skip(self, projects))]
    pub async fn run_as(
        &self,
        token: Option<&str>,
        projects: &ProjectFilter,
        sql: &str,
    ) -> Result<QueryOutput> {
        let audit = match projects {
            ProjectFilter::All => AuditView::All,
            ProjectFilter::Only(_) => AuditView::Denied,
        };
        self.run_with(token, projects, audit, sql).await
    }

    /// [`Self::run_as`] with the audit log `audit` allows.
    pub async fn run_with(
        &self,
        token: Option<&str>,
        projects: &ProjectFilter,
        audit: AuditView,
        sql: &str,
    ) -> Result<QueryOutput> {
        let _permit = self.admission.admit(token)?;
        let timeout = self.limits.timeout;
        let work = async {
            let ctx = self.session_with(projects, audit).await?;
            if let Some(budget) = budget(&ctx) {
                budget.arm(timeout);
            }
            let plan = self.plan(&ctx, sql).await?;
            self.collect_plan(&ctx, plan).await
        };
        tokio::time::timeout(timeout, work)
            .await
            .map_err(|_| Error::Timeout(timeout))?
    }

    /// Runs a plan checked by [`Self::plan`] in `ctx` (from [`Self::session`]) for API token
    /// `token` within the limits: for protocols that plan once and bind parameters later
    /// (PostgreSQL's extended protocol, Flight SQL prepared statements).
    pub async fn execute(
        &self,
        token: Option<&str>,
        ctx: &SessionContext,
        plan: LogicalPlan,
    ) -> Result<QueryOutput> {
        let _permit = self.admission.admit(token)?;
        let timeout = self.limits.timeout;
        if let Some(budget) = budget(ctx) {
            budget.arm(timeout);
        }
        tokio::time::timeout(timeout, self.collect_plan(ctx, plan))
            .await
            .map_err(|_| Error::Timeout(timeout))?
    }

    /// Executes `plan` on the query threads; its batches come back over a channel. Dropping
    /// the returned future (time limit, client gone) aborts the execution.
    async fn collect_plan(&self, ctx: &SessionContext, plan: LogicalPlan) -> Result<QueryOutput> {
        let schema: SchemaRef = Arc::clone(plan.schema().inner());
        let (sender, mut receiver) = mpsc::channel(RESULT_CHANNEL);
        let producer = produce(ctx.clone(), plan, self.limits.clone(), sender);
        let running = self.runtime.spawn(budget(ctx), producer);
        let mut batches = Vec::new();
        while let Some(batch) = receiver.recv().await {
            batches.push(batch);
        }
        // The producer's verdict: an error ends the channel early.
        running.await?;
        Ok(QueryOutput { schema, batches })
    }
}

/// The memory the rows of `array` take, without the parts of shared buffers outside its slice
/// (batches of the in-memory rows are often slices of one larger batch).
pub(crate) fn slice_bytes(array: &dyn datafusion::arrow::array::Array) -> usize {
    array
        .to_data()
        .get_slice_memory_size()
        .unwrap_or_else(|_| array.get_array_memory_size())
}

/// The memory the rows of `batch` take (see [`slice_bytes`]).
pub(crate) fn batch_bytes(batch: &RecordBatch) -> usize {
    batch
        .columns()
        .iter()
        .map(|c| slice_bytes(c.as_ref()))
        .sum()
}

/// The budget the session's functions check (see [`QueryService::session`]).
fn budget(ctx: &SessionContext) -> Option<Arc<Budget>> {
    ctx.state().config().get_extension::<Budget>()
}

/// Executes `plan` and sends its batches to `sender`, within the row limit and with every batch
/// counted in the query's memory pool until the query ends, so that results count against
/// `query.memory_limit` like the operators' own memory.
async fn produce(
    ctx: SessionContext,
    plan: LogicalPlan,
    limits: QueryConfig,
    sender: mpsc::Sender<RecordBatch>,
) -> Result<()> {
    let frame = ctx
        .execute_logical_plan(plan)
        .await
        .map_err(|e| sql_error(&limits, e))?;
    let mut stream: SendableRecordBatchStream = frame
        .execute_stream()
        .await
        .map_err(|e| sql_error(&limits, e))?;
    let results = MemoryConsumer::new("query results").register(&ctx.runtime_env().memory_pool);
    let mut rows = 0usize;
    while let Some(batch) = stream.next().await {
        let batch = batch.map_err(|e| sql_error(&limits, e))?;
        rows += batch.num_rows();
        if rows > limits.max_rows {
            return Err(Error::TooManyRows(limits.max_rows));
        }
        results
            .try_grow(batch_bytes(&batch))
            .map_err(|e| sql_error(&limits, e))?;
        if sender.send(batch).await.is_err() {
            // The caller is gone.
            return Ok(());
        }
    }
    Ok(())
}
