//! faultline: a Sentry-compatible error tracker that stores events as Parquet in object storage
//! and answers SQL over them.
//!
//! # Layout, by the path of the data
//! - [`api`]: HTTP (axum). Sentry's envelope and store endpoints, the SQL endpoint, health.
//!   With [`web`], the only modules that know HTTP types.
//! - [`web`]: the web UI, server-rendered HTML over the same services as [`api`].
//! - [`ingest`]: the pipeline below HTTP. It calls the `faultline-protocol` crate to
//!   authenticate, decompress with limits, parse envelopes, normalize events and group them,
//!   then drops duplicate event ids and hands the events to the WAL.
//! - [`wal`]: the write-ahead log with group commit. A request is answered only after its
//!   events are fsynced; the WAL thread then appends them to the [`buffer`].
//! - [`buffer`]: unflushed events as Arrow batches, visible to SQL at once.
//! - [`store`]: the object store (local directory or S3), Parquet files, manifests.
//! - [`node`]: start-up recovery (replay the WAL after the manifest) and the flusher that turns
//!   the buffer into Parquet, commits a manifest and only then trims the WAL.
//! - [`issues`]: hourly issue rollups written at flush time, issue state (resolve, ignore,
//!   reopen; regressions).
//! - [`releases`]: releases and deploys as Sentry's web API keeps them.
//! - [`query`]: DataFusion sessions over `events` and `issues`, built per token, read-only,
//!   with limits.
//! - [`maintenance`]: retention and compaction of the stored files, run on the node holding
//!   the maintenance lease; [`backup`]: backups, pruning and (point-in-time) restore.
//! - [`tenancy`]: projects with DSN keys, API tokens; [`quotas`]: projects' limits on items
//!   per data category, and the `X-Sentry-Rate-Limits` naming what they refused.
//! - [`status`]: the object store and WAL checks and per-project figures the operator reports.
//! - [`sqlwire`]: SQL over the PostgreSQL wire protocol, with a token as the password.
//! - [`server`], [`cli`]: the `faultline` binary's commands.
//!
//! # Guarantees
//! - An event that got `200` is in an fsynced WAL segment; after a crash it is replayed.
//! - WAL segments are deleted only after the Parquet files and the manifest holding their events
//!   are durable; a query sees each event exactly once, whether in memory or in a file.
//! - A bad request is refused with a 4xx naming the problem and changes nothing.

pub mod alerts;
pub mod allocator;
pub mod api;
pub mod attachments;
pub mod backup;
pub mod buffer;
pub mod cli;
pub mod commands;
pub mod events;
pub mod grouphash;
pub mod ingest;
pub mod issues;
pub mod items;
pub mod lock;
pub mod mail;
pub mod maintenance;
pub mod metrics;
pub mod monitors;
pub mod node;
pub mod outcomes;
pub mod people;
pub mod query;
pub mod quotas;
pub mod releases;
pub mod server;
pub mod sourcemaps;
pub mod sqlwire;
pub mod status;
pub mod store;
pub mod tenancy;
pub mod wal;
pub mod web;
