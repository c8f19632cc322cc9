//! The faultline engine configuration.
//!
//! One TOML file configures an engine node. The engine reads it (`faultline serve --config`),
//! and the Kubernetes operator writes it into a ConfigMap, so both crates share this type and can
//! never disagree about a field name or a default.
//!
//! Every section is optional and every field has a default, so an empty file (or no file at all)
//! gives a working single-node server: data under `./data`, listening on `127.0.0.1:8000`.
//! Unknown fields are rejected, and a parse error names the file, the field and the line.
//!
//! Sizes are written as strings with a unit (`"1MiB"`, `"200 MB"`), durations in humantime form
//! (`"5ms"`, `"10s"`).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

pub use bytesize::ByteSize;
use serde::{Deserialize, Serialize};

mod alerts;
pub use alerts::{
    AlertsConfig, ChannelConfig, ChannelKind, LEVELS, RuleConfig, StoredSecrets, TriggerConfig,
    WebhookFormat, check_channel, check_channel_stored, check_rule, parse_tag,
};

/// Errors while loading or checking a configuration.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read config file {path}: {source}")]
    ReadFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid config file {path}: {source}")]
    Parse {
        path: PathBuf,
        #[source]
        source: Box<toml::de::Error>,
    },
    #[error("invalid config: {field}: {message}")]
    Invalid { field: String, message: String },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// The whole configuration of one engine node.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    pub server: ServerConfig,
    pub storage: StorageConfig,
    pub wal: WalConfig,
    pub flush: FlushConfig,
    pub limits: LimitsConfig,
    pub query: QueryConfig,
    pub auth: AuthConfig,
    pub retention: RetentionConfig,
    pub compaction: CompactionConfig,
    pub backup: BackupConfig,
    /// Outgoing mail (invites); off when unset.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub smtp: Option<SmtpConfig>,
    /// Alert channels and rules (see docs/alerts.md).
    #[serde(skip_serializing_if = "AlertsConfig::is_default")]
    pub alerts: AlertsConfig,
    /// Source map uploads (sentry-cli) and their use at ingest (see docs/sourcemaps.md).
    pub sourcemaps: SourcemapsConfig,
    /// Projects declared in the config (the operator declares them here). Projects created
    /// with `faultline project create` live in the object store instead; both are served.
    #[serde(rename = "project", skip_serializing_if = "Vec::is_empty")]
    pub projects: Vec<ProjectConfig>,
}

/// HTTP listeners.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// Address of the ingest listener (Sentry endpoints, health).
    pub listen: SocketAddr,
    /// Optional separate listener for the query and admin API. When unset, the query API is
    /// served on `listen` as well. In Kubernetes the operator sets it so that a NetworkPolicy
    /// can keep SQL away from the namespaces that only send events.
    pub admin_listen: Option<SocketAddr>,
    /// Optional PostgreSQL wire-protocol listener for SQL clients (psql, BI tools), which log
    /// in with an API token as the password. Off when unset.
    pub pg_listen: Option<SocketAddr>,
    /// Optional Arrow Flight SQL (gRPC) listener for ADBC / JDBC Flight SQL clients, which send
    /// an API token as a bearer token. Off when unset.
    pub flight_listen: Option<SocketAddr>,
    /// Public base URL used when printing DSNs, e.g. `https://errors.example.com`.
    /// Defaults to `http://<listen>`.
    pub public_url: Option<String>,
    /// How long a graceful shutdown waits for in-flight requests.
    #[serde(with = "humantime_serde")]
    pub shutdown_timeout: Duration,
    /// How long a graceful shutdown spends on the final flush to the object store (including
    /// waiting for a flush already running). Events it cannot flush in time stay in the WAL and
    /// are flushed at the next start; the log says how many.
    #[serde(with = "humantime_serde")]
    pub shutdown_flush_timeout: Duration,
    /// How long a client may take to send a request's line and headers; a connection that
    /// takes longer is closed without an answer. The clock also runs while a kept-alive
    /// connection waits for its next request, so it bounds idle connections too. Applies to
    /// the HTTP/1 listeners.
    #[serde(with = "humantime_serde")]
    pub header_read_timeout: Duration,
    /// How long a client may take to send a request body, from the end of its headers. An
    /// ingest request that takes longer is answered `408`; other endpoints fail the request.
    #[serde(with = "humantime_serde")]
    pub body_read_timeout: Duration,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: SocketAddr::from(([127, 0, 0, 1], 8000)),
            admin_listen: None,
            pg_listen: None,
            flight_listen: None,
            public_url: None,
            shutdown_timeout: Duration::from_secs(30),
            shutdown_flush_timeout: Duration::from_secs(30),
            header_read_timeout: Duration::from_secs(10),
            body_read_timeout: Duration::from_secs(60),
        }
    }
}

/// Where data lives.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StorageConfig {
    /// Local directory for the write-ahead log and, without `object_store`, for the objects.
    pub data_dir: PathBuf,
    /// Object store URL: `file:///abs/path`, or `s3://bucket/prefix`. Unset means the local
    /// directory `<data_dir>/objects`.
    pub object_store: Option<String>,
    /// S3 settings; credentials come from the usual AWS environment variables
    /// (`AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`), never from this file.
    pub s3: S3Config,
    /// Name of this node; each node writes only its own WAL and manifest. Defaults to `node-0`;
    /// in a StatefulSet the operator sets the pod name.
    pub node_id: String,
}

impl Default for StorageConfig {
    fn default() -> Self {
        Self {
            data_dir: PathBuf::from("./data"),
            object_store: None,
            s3: S3Config::default(),
            node_id: "node-0".to_owned(),
        }
    }
}

/// S3 connection settings (also read from `AWS_ENDPOINT_URL`, `AWS_REGION` when unset).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct S3Config {
    /// Endpoint URL for S3-compatible servers (MinIO, Ceph, moto...).
    pub endpoint: Option<String>,
    pub region: Option<String>,
    /// Allow plain `http://` endpoints.
    pub allow_http: bool,
    /// Use path-style requests (`endpoint/bucket/key`) instead of virtual-hosted style.
    pub force_path_style: bool,
    /// How long establishing a connection to the object store may take.
    #[serde(with = "humantime_serde")]
    pub connect_timeout: Duration,
    /// How long one request may take from start to the end of its body (a large Parquet file
    /// must fit in it).
    #[serde(with = "humantime_serde")]
    pub request_timeout: Duration,
    /// How often a failed request (a timeout, a refused connection, a 5xx) is retried.
    pub max_retries: usize,
    /// How long a request and its retries may take together before the error is returned;
    /// during an outage this is about how long a query waits before it fails.
    #[serde(with = "humantime_serde")]
    pub retry_timeout: Duration,
}

impl Default for S3Config {
    fn default() -> Self {
        Self {
            endpoint: None,
            region: None,
            allow_http: false,
            force_path_style: false,
            connect_timeout: Duration::from_secs(2),
            request_timeout: Duration::from_secs(30),
            max_retries: 3,
            retry_timeout: Duration::from_secs(5),
        }
    }
}

/// Write-ahead log and group commit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct WalConfig {
    /// Directory of the log; defaults to `<data_dir>/wal`.
    pub dir: Option<PathBuf>,
    /// How long the committer waits for more requests to share one fsync.
    #[serde(with = "humantime_serde")]
    pub commit_window: Duration,
    /// A commit is started at once when this many bytes are waiting.
    pub max_batch: ByteSize,
    /// A new segment is started when the current one passes this size.
    pub segment_size: ByteSize,
    /// Back-pressure: when the unflushed log exceeds this, ingest answers 503 with Retry-After.
    pub max_unflushed: ByteSize,
}

impl Default for WalConfig {
    fn default() -> Self {
        Self {
            dir: None,
            commit_window: Duration::from_millis(2),
            max_batch: ByteSize::mib(4),
            segment_size: ByteSize::mib(64),
            max_unflushed: ByteSize::gib(1),
        }
    }
}

/// When the in-memory buffer becomes Parquet.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FlushConfig {
    /// Flush at least this often when there is data.
    #[serde(with = "humantime_serde")]
    pub interval: Duration,
    /// Flush as soon as the buffer holds this many events.
    pub max_events: usize,
    /// Flush as soon as the buffer holds this many bytes of events. The buffer and a flush in
    /// progress hold up to about twice this much; the default (24 MiB) keeps the ingest
    /// benchmark's peak RSS well under 200 MB (docs/benchmarks.md).
    pub max_bytes: ByteSize,
    /// zstd level used for the Parquet files written by a flush.
    pub zstd_level: i32,
}

impl Default for FlushConfig {
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(10),
            max_events: 100_000,
            max_bytes: ByteSize::mib(24),
            zstd_level: 1,
        }
    }
}

/// Request limits, with the defaults of Sentry's Relay.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LimitsConfig {
    /// Largest request body as sent on the wire (compressed).
    pub max_request_size: ByteSize,
    /// Largest envelope after decompression (Relay: `max_envelope_size`, 100 MiB).
    pub max_envelope_size: ByteSize,
    /// Largest single event item or store body (Relay: `max_event_size`, 1 MiB).
    pub max_event_size: ByteSize,
    /// Largest attachment item (Relay: `max_attachment_size`, 100 MiB). A larger attachment
    /// is refused alone (outcome `too_large`); the envelope's other items are kept.
    pub max_attachment_size: ByteSize,
    /// Largest sum of the attachments of one envelope (Relay: `max_attachments_size`,
    /// 100 MiB). The attachments beyond it are refused (outcome `too_large`), in the order
    /// they come; the envelope's other items are kept.
    pub max_attachments_size: ByteSize,
    /// Largest number of in-flight ingest requests before 503.
    pub max_concurrent_requests: usize,
    /// Largest number of request bodies decompressed and parsed at the same time, on threads
    /// apart from the ones that serve connections; further requests wait their turn.
    pub max_concurrent_decodes: usize,
    /// Most cron monitors one project may have (Sentry: `MAX_MONITORS_PER_ORG`, 10,000 per
    /// organization). A check-in whose `monitor_config` would create one more is still stored
    /// in `check_ins`, but makes no monitor (and so no `missed` or `timeout` check-ins); the
    /// checker logs a warning naming the project and the limit. Existing monitors keep being
    /// updated.
    pub max_monitors_per_project: usize,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            max_request_size: ByteSize::mib(100),
            max_envelope_size: ByteSize::mib(100),
            max_event_size: ByteSize::mib(1),
            max_attachment_size: ByteSize::mib(100),
            max_attachments_size: ByteSize::mib(100),
            max_concurrent_requests: 1024,
            max_concurrent_decodes: 4,
            max_monitors_per_project: 1000,
        }
    }
}

/// Limits for one SQL query.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct QueryConfig {
    /// Memory a query may use before it fails with a resources-exhausted error.
    pub memory_limit: ByteSize,
    /// Wall-clock limit of a query.
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    /// Rows returned at most; more gives an error naming the limit.
    pub max_rows: usize,
    /// Longest SQL text accepted, in bytes; longer text is refused before it is parsed.
    pub max_sql_length: usize,
    /// Deepest nesting of expressions and subqueries accepted in a statement. `1+1+...+1` with
    /// n terms nests n levels, as do chains of `AND`, `OR` and `||`. Deeper statements are
    /// refused after parsing, before planning.
    pub max_expression_depth: usize,
    /// Largest value one function may produce for one batch of rows (the memory size of its
    /// output column); more stops the query with an error naming this limit. Bounds functions
    /// whose output can grow far beyond their input (`replace`, `regexp_replace`, `concat`,
    /// `array_resize`, ...).
    pub max_function_output: ByteSize,
    /// Longest string, in characters, accepted by functions whose work grows with the product of
    /// their input lengths (`levenshtein`).
    pub max_quadratic_input: usize,
    /// Queries running at once on this node, for all callers together; more are refused with a
    /// "busy, retry" error.
    pub max_concurrent: usize,
    /// Queries one API token may run at once; more are refused with a "busy, retry" error.
    pub max_concurrent_per_token: usize,
    /// Threads running queries (planning and execution). 0: one per CPU core, and at least
    /// `max_concurrent`, so that CPU-heavy queries cannot hold every thread while light ones
    /// wait (the kernel shares the cores between the threads).
    pub threads: usize,
    /// Nice value of the query threads (0 to 19): higher runs queries at a lower CPU priority
    /// than ingest and the HTTP listeners.
    pub thread_nice: i32,
    /// How long a Flight SQL result waits for its `DoGet` before it is dropped.
    #[serde(with = "humantime_serde")]
    pub flight_result_ttl: Duration,
    /// Flight SQL results one token may leave unfetched; the token's oldest is dropped for a
    /// new one beyond this.
    pub flight_results_per_token: usize,
    /// Bytes of unfetched Flight SQL results one token may hold; its oldest are dropped for a
    /// new one beyond this.
    pub flight_result_bytes_per_token: ByteSize,
    /// Flight SQL results held for all tokens together; a new result beyond this is refused
    /// with a "busy, retry" error.
    pub flight_results_total: usize,
    /// Bytes of Flight SQL results held for all tokens together; a new result beyond this is
    /// refused with a "busy, retry" error.
    pub flight_result_bytes_total: ByteSize,
}

impl Default for QueryConfig {
    fn default() -> Self {
        Self {
            memory_limit: ByteSize::mib(256),
            timeout: Duration::from_secs(30),
            max_rows: 100_000,
            max_sql_length: 256 * 1024,
            max_expression_depth: 500,
            max_function_output: ByteSize::mib(64),
            max_quadratic_input: 10_000,
            max_concurrent: 16,
            max_concurrent_per_token: 4,
            threads: 0,
            thread_nice: 10,
            flight_result_ttl: Duration::from_secs(60),
            flight_results_per_token: 8,
            flight_result_bytes_per_token: ByteSize::mib(256),
            flight_results_total: 64,
            flight_result_bytes_total: ByteSize::gib(1),
        }
    }
}

/// API authentication and people's logins.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthConfig {
    /// A file holding an API token accepted in addition to those created with
    /// `faultline token create` (the operator mounts one from a Secret).
    pub admin_token_file: Option<PathBuf>,
    /// A login session ends after this long without a request.
    #[serde(with = "humantime_serde")]
    pub session_idle_timeout: Duration,
    /// A login session ends this long after the login, however active it is.
    #[serde(with = "humantime_serde")]
    pub session_absolute_timeout: Duration,
    /// How long an invite link can be accepted.
    #[serde(with = "humantime_serde")]
    pub invite_ttl: Duration,
    /// How long the first-start setup link and set-password links work.
    #[serde(with = "humantime_serde")]
    pub setup_link_ttl: Duration,
    /// Failed logins allowed per account and per client address within
    /// `login_failure_window`; more are refused with `429` until the window passes.
    pub login_max_failures: u32,
    #[serde(with = "humantime_serde")]
    pub login_failure_window: Duration,
    /// Whether people may log in with email and password. Turn it off when everyone logs in
    /// through `[auth.oidc]`; the first-start setup link still works.
    pub password_login: bool,
    /// Every organization requires MFA of its members regardless of its own setting.
    pub require_mfa: bool,
    /// Single sign-on with an OpenID Connect provider; off when unset.
    pub oidc: Option<OidcConfig>,
}

/// How mail leaves the server: an SMTP relay.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmtpConfig {
    pub host: String,
    /// Default: 587 with `starttls`, 465 with `tls`, 25 with `none`.
    #[serde(default)]
    pub port: Option<u16>,
    #[serde(default)]
    pub tls: SmtpTls,
    #[serde(default)]
    pub username: Option<String>,
    /// A file holding the password (the operator mounts one from a Secret); else the
    /// environment variable `FAULTLINE_SMTP_PASSWORD`.
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    /// The sender, e.g. `faultline <faultline@example.com>`.
    pub from: String,
    /// How long one delivery may take.
    #[serde(default = "default_smtp_timeout", with = "humantime_serde")]
    pub timeout: Duration,
}

fn default_smtp_timeout() -> Duration {
    Duration::from_secs(10)
}

/// Transport security of the SMTP connection.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SmtpTls {
    /// Plain connection upgraded with STARTTLS, which must succeed.
    #[default]
    Starttls,
    /// TLS from the first byte (SMTPS).
    Tls,
    /// No encryption: only for a relay on the same host or network.
    None,
}

impl SmtpTls {
    /// The usual port of this kind of connection.
    pub fn default_port(self) -> u16 {
        match self {
            Self::Starttls => 587,
            Self::Tls => 465,
            Self::None => 25,
        }
    }
}

/// An OpenID Connect provider people log in with (authorization code flow with PKCE).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OidcConfig {
    /// The provider's issuer URL; its `/.well-known/openid-configuration` must name the same
    /// issuer.
    pub issuer: String,
    pub client_id: String,
    /// A file holding the client secret (the operator mounts one from a Secret). When unset,
    /// the environment variable `FAULTLINE_OIDC_CLIENT_SECRET`; with neither, the client is
    /// public (PKCE only).
    #[serde(default)]
    pub client_secret_file: Option<PathBuf>,
    /// The login button's label: "Log in with {name}".
    #[serde(default = "default_oidc_name")]
    pub name: String,
    /// Scopes asked for besides `openid`.
    #[serde(default = "default_oidc_scopes")]
    pub scopes: Vec<String>,
    /// Create an account on the first login of someone the provider vouches for; without it
    /// only accounts already linked to the provider (or invited, see docs/security.md) log in.
    #[serde(default)]
    pub auto_provision: bool,
    /// The organization role of an account created by `auto_provision`.
    #[serde(default = "default_oidc_role")]
    pub default_role: String,
    /// A team (slug) an account created by `auto_provision` joins as contributor.
    #[serde(default)]
    pub default_team: Option<String>,
}

fn default_oidc_name() -> String {
    "single sign-on".to_owned()
}

fn default_oidc_scopes() -> Vec<String> {
    vec!["email".to_owned(), "profile".to_owned()]
}

fn default_oidc_role() -> String {
    "member".to_owned()
}

impl Default for AuthConfig {
    fn default() -> Self {
        Self {
            admin_token_file: None,
            session_idle_timeout: Duration::from_secs(12 * 3600),
            session_absolute_timeout: Duration::from_secs(14 * 24 * 3600),
            invite_ttl: Duration::from_secs(7 * 24 * 3600),
            setup_link_ttl: Duration::from_secs(24 * 3600),
            login_max_failures: 10,
            login_failure_window: Duration::from_secs(15 * 60),
            password_login: true,
            require_mfa: false,
            oidc: None,
        }
    }
}

/// How long events are kept.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RetentionConfig {
    /// Days events are kept unless the project says otherwise.
    pub default_days: u32,
    /// Per-project overrides, by project name.
    pub projects: BTreeMap<String, u32>,
    /// Optional cap on stored events per project; the oldest days go first.
    pub max_events_per_project: Option<u64>,
    /// How often the retention job runs.
    #[serde(with = "humantime_serde")]
    pub interval: Duration,
    /// How long a file dropped from the manifests (by retention or compaction) stays in the
    /// object store before it is deleted, so queries that already planned with it still finish
    /// and other nodes pick up the new manifest first.
    #[serde(with = "humantime_serde")]
    pub delete_after: Duration,
}

impl Default for RetentionConfig {
    fn default() -> Self {
        Self {
            default_days: 90,
            projects: BTreeMap::new(),
            max_events_per_project: None,
            interval: Duration::from_secs(3600),
            delete_after: Duration::from_secs(300),
        }
    }
}

/// Source maps: uploaded artifact bundles and how events are resolved with them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SourcemapsConfig {
    /// An artifact bundle no event used for this many days is deleted by the retention job
    /// (as Sentry does after 90 days).
    pub unused_days: u32,
    /// Largest artifact bundle accepted (the zip sentry-cli uploads, all chunks together).
    pub max_bundle_size: ByteSize,
    /// Largest single file (minified source or source map) used to resolve frames; larger ones
    /// are skipped and the event says so in `errors`.
    pub max_file_size: ByteSize,
    /// Memory for parsed source maps kept between events (least recently used go first).
    pub cache_size: ByteSize,
    /// How long resolving one event may take at ingest; past it the event is stored as sent,
    /// with an error in `errors`, and is resolved when viewed.
    #[serde(with = "humantime_serde")]
    pub resolve_timeout: Duration,
}

impl Default for SourcemapsConfig {
    fn default() -> Self {
        Self {
            unused_days: 90,
            max_bundle_size: ByteSize::mib(256),
            max_file_size: ByteSize::mib(40),
            cache_size: ByteSize::mib(256),
            resolve_timeout: Duration::from_secs(5),
        }
    }
}

/// Merging the small files of a partition into larger ones.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CompactionConfig {
    /// Files smaller than this are merged, into files of about this size.
    pub target_size: ByteSize,
    /// A partition is compacted once it has at least this many small files.
    pub min_files: usize,
    /// How often compaction runs (on the node holding the maintenance lease).
    #[serde(with = "humantime_serde")]
    pub interval: Duration,
    /// zstd level of compacted files.
    pub zstd_level: i32,
    /// Most decoded (uncompressed) bytes one merge holds in memory, by the inputs' Parquet
    /// footers: a merge takes a partition's small files in order until the next would pass it,
    /// and a file that is half of it or more is not merged again.
    pub max_merge_bytes: ByteSize,
}

impl Default for CompactionConfig {
    fn default() -> Self {
        Self {
            target_size: ByteSize::mib(128),
            min_files: 4,
            interval: Duration::from_secs(600),
            zstd_level: 6,
            max_merge_bytes: ByteSize::mib(128),
        }
    }
}

/// Scheduled backups.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BackupConfig {
    /// Cron expression (5 fields, UTC); unset disables scheduled backups.
    pub schedule: Option<String>,
    /// Destination object store URL (`s3://bucket/prefix` or `file:///path`).
    pub destination: Option<String>,
    /// S3 settings of the destination.
    pub s3: S3Config,
    /// Keep the last N backups.
    pub keep_last: Option<u32>,
    /// Keep backups younger than this many days.
    pub keep_days: Option<u32>,
}

/// A project declared in the config file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProjectConfig {
    /// Numeric id, the last path segment of the DSN.
    pub id: u64,
    /// Short name (slug).
    pub name: String,
    /// DSN keys of this project: each a string of 32 hex characters (an active key without
    /// its own limit), or a table `{ public = "...", label = "...", enabled = false,
    /// rate_limit = { events = 100, window = "1m" } }`.
    pub keys: Vec<KeyConfig>,
    /// Optional ingest rate limit of its error events (Sentry's project rate limit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<RateLimit>,
    /// Limits on the items of chosen data categories (transactions, spans, logs, ...) per
    /// window, Relay's quotas: `quotas = [{ categories = ["span"], limit = 10000, window = "1m" }]`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub quotas: Vec<Quota>,
    /// Days of retention; overrides `retention.default_days` and `retention.projects`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention_days: Option<u32>,
    /// Stack trace rules in Sentry's syntax (`family:javascript path:**/vendor/** -app`, one
    /// per line), applied after the built-in ones to new events (docs/grouping.md).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grouping_enhancements: Option<String>,
    /// Server-side fingerprint rules in Sentry's syntax (`error.type:Timeout -> timeouts`, one
    /// per line), tried before the built-in ones on new events (docs/grouping.md).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fingerprinting_rules: Option<String>,
    /// Data scrubbing before events are stored (Sentry's "Security & Privacy" settings). Not
    /// set: the defaults (scrubbing on, default scrubbers on, IP addresses kept), changeable
    /// through the project API; set here, the API cannot change them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub privacy: Option<PrivacyConfig>,
}

/// A project's data scrubbing settings (docs/privacy.md), applied to every event before it is
/// written anywhere.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PrivacyConfig {
    /// Sentry's "Data Scrubber": off, only `pii_config` applies. Default on.
    pub scrub_data: bool,
    /// Sentry's "Use Default Scrubbers": passwords, secrets, tokens, credit cards, IBANs,
    /// private keys, passwords in URLs, session and CSRF cookies. Default on.
    pub scrub_defaults: bool,
    /// Remove user IP addresses and replace IP addresses in text by `[ip]`. Default off.
    pub scrub_ip_addresses: bool,
    /// Extra key names whose values are removed.
    pub sensitive_fields: Vec<String>,
    /// Key names (or selectors) the data scrubber leaves alone.
    pub safe_fields: Vec<String>,
    /// Advanced rules in Relay's PII config format, as JSON text
    /// (`{"rules": {...}, "applications": {"$string": ["@ip:mask"]}}`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pii_config: Option<String>,
}

impl Default for PrivacyConfig {
    fn default() -> Self {
        Self {
            scrub_data: true,
            scrub_defaults: true,
            scrub_ip_addresses: false,
            sensitive_fields: Vec::new(),
            safe_fields: Vec::new(),
            pii_config: None,
        }
    }
}

/// One DSN key of a project declared in the config file.
///
/// Written as a plain string when it has no settings of its own, so config files that list keys
/// as strings stay valid and read back unchanged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "KeyEntry", into = "KeyEntry")]
pub struct KeyConfig {
    /// The public key, the user part of the DSN (32 hexadecimal characters).
    pub public: String,
    /// A name shown in key lists (Sentry's key "name").
    pub label: Option<String>,
    /// A disabled key is refused at ingest with 401.
    pub enabled: bool,
    /// Events accepted with this key per window, on top of the project's own limit.
    pub rate_limit: Option<RateLimit>,
}

impl KeyConfig {
    /// An active key without settings of its own.
    pub fn new(public: impl Into<String>) -> Self {
        Self {
            public: public.into(),
            label: None,
            enabled: true,
            rate_limit: None,
        }
    }
}

impl From<&str> for KeyConfig {
    fn from(public: &str) -> Self {
        Self::new(public)
    }
}

/// How a key is written in the file: a string, or a table with settings.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(untagged)]
enum KeyEntry {
    Plain(String),
    Full(KeyTable),
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyTable {
    public: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    label: Option<String>,
    #[serde(default = "enabled_by_default")]
    enabled: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    rate_limit: Option<RateLimit>,
}

fn enabled_by_default() -> bool {
    true
}

impl From<KeyEntry> for KeyConfig {
    fn from(entry: KeyEntry) -> Self {
        match entry {
            KeyEntry::Plain(public) => Self::new(public),
            KeyEntry::Full(t) => Self {
                public: t.public,
                label: t.label,
                enabled: t.enabled,
                rate_limit: t.rate_limit,
            },
        }
    }
}

impl From<KeyConfig> for KeyEntry {
    fn from(key: KeyConfig) -> Self {
        if key.label.is_none() && key.enabled && key.rate_limit.is_none() {
            Self::Plain(key.public)
        } else {
            Self::Full(KeyTable {
                public: key.public,
                label: key.label,
                enabled: key.enabled,
                rate_limit: key.rate_limit,
            })
        }
    }
}

/// Events accepted per window before 429 with `X-Sentry-Rate-Limits`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RateLimit {
    pub events: u64,
    #[serde(with = "humantime_serde")]
    pub window: Duration,
}

impl RateLimit {
    /// Both the number of events and the window are above zero.
    pub fn is_valid(&self) -> bool {
        self.events > 0 && !self.window.is_zero()
    }
}

/// The data categories a [`Quota`] can count, as Sentry names them in `X-Sentry-Rate-Limits`
/// and client reports: each item faultline stores counts once in its category, except that an
/// attachment counts its size in bytes as `attachment` and itself once as `attachment_item`
/// (Relay's two attachment categories).
pub const QUOTA_CATEGORIES: [&str; 9] = [
    "error",
    "transaction",
    "span",
    "session",
    "monitor",
    "log_item",
    "feedback",
    "attachment",
    "attachment_item",
];

/// The category that counts attachment bytes rather than items: a quota without categories
/// counts attachments by `attachment_item` instead, so it counts every item once.
pub const ATTACHMENT_BYTES: &str = "attachment";

/// At most this many quotas per project.
pub const MAX_QUOTAS: usize = 20;

/// Items of some data categories accepted per window (Relay's quota with the `project` scope);
/// items over it are dropped, the rest of their envelope kept, and the SDK is told through
/// `X-Sentry-Rate-Limits` to hold those categories back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Quota {
    /// Names from [`QUOTA_CATEGORIES`]; empty: all of them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub categories: Vec<String>,
    /// Items per window (bytes for `attachment`); 0 refuses every item of the categories.
    pub limit: u64,
    #[serde(with = "humantime_serde")]
    pub window: Duration,
}

impl Quota {
    /// Whether an item of `category` counts against this quota (only the categories of
    /// [`QUOTA_CATEGORIES`] are ever counted; one without categories counts items, not
    /// attachment bytes).
    pub fn counts(&self, category: &str) -> bool {
        if self.categories.is_empty() {
            category != ATTACHMENT_BYTES && QUOTA_CATEGORIES.contains(&category)
        } else {
            self.categories.iter().any(|c| c == category)
        }
    }

    /// What is wrong with this quota, naming the field below `at` (`quotas[1]`), if anything.
    pub fn problem(&self, at: &str) -> Option<(String, String)> {
        if self.window.is_zero() {
            return Some((
                format!("{at}.window"),
                "must be greater than zero".to_owned(),
            ));
        }
        for (i, category) in self.categories.iter().enumerate() {
            if !QUOTA_CATEGORIES.contains(&category.as_str()) {
                return Some((
                    format!("{at}.categories[{i}]"),
                    format!(
                        "{category:?} is not a data category faultline counts; use one of {}",
                        QUOTA_CATEGORIES.join(", ")
                    ),
                ));
            }
        }
        None
    }
}

/// What is wrong with a project's quotas, as (field, problem), if anything.
pub fn quotas_problem(quotas: &[Quota]) -> Option<(String, String)> {
    if quotas.len() > MAX_QUOTAS {
        return Some((
            "quotas".to_owned(),
            format!("at most {MAX_QUOTAS} quotas per project"),
        ));
    }
    quotas
        .iter()
        .enumerate()
        .find_map(|(i, q)| q.problem(&format!("quotas[{i}]")))
}

/// A DSN public key: 32 hexadecimal characters.
pub fn is_dsn_key(key: &str) -> bool {
    key.len() == 32 && key.chars().all(|c| c.is_ascii_hexdigit())
}

impl Config {
    /// The URL people and SDKs reach this server at: `server.public_url`, else the ingest
    /// listener's address over plain HTTP.
    pub fn public_url(&self) -> String {
        self.server
            .public_url
            .clone()
            .unwrap_or_else(|| format!("http://{}", self.server.listen))
    }

    /// Reads and checks a config file.
    pub fn load(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path).map_err(|source| Error::ReadFile {
            path: path.to_owned(),
            source,
        })?;
        let config = Self::parse(&text).map_err(|err| match err {
            Error::Parse { source, .. } => Error::Parse {
                path: path.to_owned(),
                source,
            },
            other => other,
        })?;
        Ok(config)
    }

    /// Parses and checks config text (the path in errors is `<inline>`).
    pub fn parse(text: &str) -> Result<Self> {
        let config: Self = toml::from_str(text).map_err(|source| Error::Parse {
            path: PathBuf::from("<inline>"),
            source: Box::new(source),
        })?;
        config.validate()?;
        Ok(config)
    }

    /// Renders the config as TOML (what the operator writes into its ConfigMap).
    pub fn to_toml(&self) -> String {
        toml::to_string(self).expect("config always serializes")
    }

    /// Checks what the types alone cannot.
    pub fn validate(&self) -> Result<()> {
        let invalid = |field: &str, message: String| Error::Invalid {
            field: field.to_owned(),
            message,
        };
        if self.storage.node_id.is_empty()
            || !self
                .storage
                .node_id
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
        {
            return Err(invalid(
                "storage.node_id",
                format!(
                    "{:?} must be non-empty and use only letters, digits, '-', '_' and '.'",
                    self.storage.node_id
                ),
            ));
        }
        if let Some(url) = &self.storage.object_store {
            check_store_url("storage.object_store", url)?;
        }
        if let Some(url) = &self.backup.destination {
            check_store_url("backup.destination", url)?;
        }
        if self.backup.schedule.is_some() && self.backup.destination.is_none() {
            return Err(invalid(
                "backup.destination",
                "is required when backup.schedule is set".to_owned(),
            ));
        }
        for (field, value) in [
            ("auth.session_idle_timeout", self.auth.session_idle_timeout),
            (
                "auth.session_absolute_timeout",
                self.auth.session_absolute_timeout,
            ),
            ("auth.invite_ttl", self.auth.invite_ttl),
            ("auth.setup_link_ttl", self.auth.setup_link_ttl),
            ("auth.login_failure_window", self.auth.login_failure_window),
        ] {
            if value.is_zero() {
                return Err(invalid(field, "must be longer than zero".to_owned()));
            }
        }
        if self.auth.login_max_failures == 0 {
            return Err(invalid(
                "auth.login_max_failures",
                "must be at least 1".to_owned(),
            ));
        }
        if self.sourcemaps.unused_days == 0 {
            return Err(invalid(
                "sourcemaps.unused_days",
                "must be at least 1".to_owned(),
            ));
        }
        if self.retention.default_days == 0 {
            return Err(invalid(
                "retention.default_days",
                "must be at least 1".to_owned(),
            ));
        }
        if self.limits.max_event_size > self.limits.max_envelope_size {
            return Err(invalid(
                "limits.max_event_size",
                "must not exceed limits.max_envelope_size".to_owned(),
            ));
        }
        if !(1..=22).contains(&self.compaction.zstd_level) {
            return Err(invalid(
                "compaction.zstd_level",
                "must be between 1 and 22".to_owned(),
            ));
        }
        if self.compaction.min_files < 2 {
            return Err(invalid(
                "compaction.min_files",
                "must be at least 2".to_owned(),
            ));
        }
        if self.compaction.max_merge_bytes.as_u64() < 1024 * 1024 {
            return Err(invalid(
                "compaction.max_merge_bytes",
                "must be at least 1 MiB".to_owned(),
            ));
        }
        if self.backup.keep_last == Some(0) {
            return Err(invalid("backup.keep_last", "must be at least 1".to_owned()));
        }
        if !(1..=22).contains(&self.flush.zstd_level) {
            return Err(invalid(
                "flush.zstd_level",
                "must be between 1 and 22".to_owned(),
            ));
        }
        self.alerts
            .check()
            .map_err(|(field, message)| invalid(&field, message))?;
        let mut ids = std::collections::BTreeSet::new();
        let mut names = std::collections::BTreeSet::new();
        for (i, project) in self.projects.iter().enumerate() {
            let field = |name: &str| format!("project[{i}].{name}");
            if project.id == 0 {
                return Err(invalid(&field("id"), "must be at least 1".to_owned()));
            }
            if !ids.insert(project.id) {
                return Err(invalid(
                    &field("id"),
                    format!("{} is used twice", project.id),
                ));
            }
            if !is_slug(&project.name) {
                return Err(invalid(
                    &field("name"),
                    format!(
                        "{:?} must be 1-64 lowercase letters, digits or '-'",
                        project.name
                    ),
                ));
            }
            if !names.insert(project.name.as_str()) {
                return Err(invalid(
                    &field("name"),
                    format!("{:?} is used twice", project.name),
                ));
            }
            let mut seen = std::collections::BTreeSet::new();
            for (k, key) in project.keys.iter().enumerate() {
                if !is_dsn_key(&key.public) {
                    return Err(invalid(
                        &field(&format!("keys[{k}]")),
                        "each key must be 32 hexadecimal characters".to_owned(),
                    ));
                }
                if !seen.insert(key.public.to_ascii_lowercase()) {
                    return Err(invalid(
                        &field(&format!("keys[{k}]")),
                        format!("{} is listed twice", key.public),
                    ));
                }
                if let Some(limit) = &key.rate_limit
                    && !limit.is_valid()
                {
                    return Err(invalid(
                        &field(&format!("keys[{k}].rate_limit")),
                        "events and window must be greater than zero".to_owned(),
                    ));
                }
            }
            if let Some(limit) = &project.rate_limit
                && !limit.is_valid()
            {
                return Err(invalid(
                    &field("rate_limit"),
                    "events and window must be greater than zero".to_owned(),
                ));
            }
            if let Some((at, problem)) = quotas_problem(&project.quotas) {
                return Err(invalid(&field(&at), problem));
            }
        }
        Ok(())
    }

    /// Directory of the write-ahead log.
    pub fn wal_dir(&self) -> PathBuf {
        self.wal
            .dir
            .clone()
            .unwrap_or_else(|| self.storage.data_dir.join("wal"))
    }

    /// Retention in days for a project.
    pub fn retention_days(&self, project_name: &str) -> u32 {
        self.projects
            .iter()
            .find(|p| p.name == project_name)
            .and_then(|p| p.retention_days)
            .or_else(|| self.retention.projects.get(project_name).copied())
            .unwrap_or(self.retention.default_days)
    }
}

/// A project name: 1-64 characters of `[a-z0-9-]`, not starting with '-'.
pub fn is_slug(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && !name.starts_with('-')
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
}

fn check_store_url(field: &str, url: &str) -> Result<()> {
    let ok = url
        .strip_prefix("s3://")
        .map(|rest| !rest.is_empty() && !rest.starts_with('/'))
        .or_else(|| {
            url.strip_prefix("file://")
                .map(|rest| rest.starts_with('/'))
        })
        .unwrap_or(false);
    if ok {
        Ok(())
    } else {
        Err(Error::Invalid {
            field: field.to_owned(),
            message: format!("{url:?} must be s3://bucket[/prefix] or file:///absolute/path"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_file_gives_working_defaults() {
        let config = Config::parse("").unwrap();
        assert_eq!(config.server.listen.to_string(), "127.0.0.1:8000");
        assert_eq!(config.storage.data_dir, PathBuf::from("./data"));
        assert_eq!(config.wal_dir(), PathBuf::from("./data/wal"));
        assert_eq!(config.limits.max_event_size, ByteSize::mib(1));
        assert_eq!(config.limits.max_envelope_size, ByteSize::mib(100));
    }

    #[test]
    fn project_privacy_settings_default_on_and_read_from_a_table() {
        let config = Config::parse(
            r#"
            [[project]]
            id = 1
            name = "shop"
            keys = ["0123456789abcdef0123456789abcdef"]

            [[project]]
            id = 2
            name = "blog"
            keys = ["00112233445566778899aabbccddeeff"]
            [project.privacy]
            scrub_ip_addresses = true
            safe_fields = ["order_token"]
            pii_config = '{"applications": {"$string": ["@email:mask"]}}'
            "#,
        )
        .unwrap();
        assert_eq!(config.projects[0].privacy, None);
        let privacy = config.projects[1].privacy.clone().unwrap();
        assert!(privacy.scrub_data && privacy.scrub_defaults && privacy.scrub_ip_addresses);
        assert_eq!(privacy.safe_fields, ["order_token"]);
        assert!(privacy.pii_config.unwrap().contains("@email:mask"));
        let err = Config::parse(
            "[[project]]\nid = 1\nname = \"a\"\nkeys = []\n[project.privacy]\nscrub = true\n",
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("unknown field `scrub`"), "{err}");
    }

    #[test]
    fn round_trips_through_toml() {
        let mut config = Config::default();
        config.storage.object_store = Some("s3://bucket/prefix".into());
        config.projects.push(ProjectConfig {
            id: 7,
            name: "shop".into(),
            keys: vec![
                "0123456789abcdef0123456789abcdef".into(),
                KeyConfig {
                    label: Some("mobile".into()),
                    enabled: false,
                    rate_limit: Some(RateLimit {
                        events: 10,
                        window: Duration::from_secs(1),
                    }),
                    ..KeyConfig::new("fedcba9876543210fedcba9876543210")
                },
            ],
            rate_limit: Some(RateLimit {
                events: 100,
                window: Duration::from_secs(60),
            }),
            quotas: vec![Quota {
                categories: vec!["transaction".into(), "span".into()],
                limit: 5000,
                window: Duration::from_secs(60),
            }],
            retention_days: Some(30),
            grouping_enhancements: Some("path:**/vendor/** -app".into()),
            fingerprinting_rules: Some("error.type:Timeout -> timeouts".into()),
            privacy: Some(PrivacyConfig {
                sensitive_fields: vec!["pin".into()],
                pii_config: Some(r#"{"applications": {"$string": ["@ip"]}}"#.into()),
                ..PrivacyConfig::default()
            }),
        });
        config.retention.projects.insert("shop".into(), 14);
        let text = config.to_toml();
        assert_eq!(Config::parse(&text).unwrap(), config);
        assert_eq!(config.retention_days("shop"), 30);
        assert_eq!(config.retention_days("other"), 90);
    }

    #[test]
    fn keys_are_strings_or_tables() {
        let text = "[[project]]\nid = 1\nname = \"shop\"\nkeys = [\"0123456789abcdef0123456789abcdef\", \
                    { public = \"fedcba9876543210fedcba9876543210\", label = \"old\", enabled = false }]\n";
        let config = Config::parse(text).unwrap();
        let keys = &config.projects[0].keys;
        assert_eq!(keys[0], KeyConfig::new("0123456789abcdef0123456789abcdef"));
        assert_eq!(keys[1].label.as_deref(), Some("old"));
        assert!(!keys[1].enabled);
        let written = config.to_toml();
        assert!(
            written.contains("\"0123456789abcdef0123456789abcdef\""),
            "{written}"
        );
        assert_eq!(Config::parse(&written).unwrap(), config);
    }

    #[test]
    fn require_mfa_is_off_unless_set() {
        assert!(!Config::parse("").unwrap().auth.require_mfa);
        let config = Config::parse("[auth]\nrequire_mfa = true\n").unwrap();
        assert!(config.auth.require_mfa);
        assert!(
            Config::parse("[auth]\nrequire_mfa = \"yes\"\n")
                .unwrap_err()
                .to_string()
                .contains("require_mfa")
        );
    }

    #[test]
    fn units_are_human() {
        let config =
            Config::parse("[limits]\nmax_event_size = \"2MiB\"\n[wal]\ncommit_window = \"5ms\"\n")
                .unwrap();
        assert_eq!(config.limits.max_event_size, ByteSize::mib(2));
        assert_eq!(config.wal.commit_window, Duration::from_millis(5));
    }

    #[test]
    fn unknown_field_is_named_with_its_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("faultline.toml");
        std::fs::write(&path, "[server]\nlisten = \"127.0.0.1:1\"\nlisen = 3\n").unwrap();
        let message = Config::load(&path).unwrap_err().to_string();
        assert!(message.contains("faultline.toml"), "{message}");
        assert!(message.contains("lisen"), "{message}");
    }

    #[test]
    fn bad_values_name_the_field() {
        let cases = [
            (
                "[storage]\nobject_store = \"http://x\"",
                "storage.object_store",
            ),
            ("[retention]\ndefault_days = 0", "retention.default_days"),
            (
                "[auth]\nsession_idle_timeout = \"0s\"",
                "auth.session_idle_timeout",
            ),
            ("[auth]\nlogin_max_failures = 0", "auth.login_max_failures"),
            ("[compaction]\nmin_files = 1", "compaction.min_files"),
            (
                "[compaction]\nmax_merge_bytes = \"64 KiB\"",
                "compaction.max_merge_bytes",
            ),
            ("[compaction]\nzstd_level = 30", "compaction.zstd_level"),
            ("[backup]\nkeep_last = 0", "backup.keep_last"),
            ("[backup]\nschedule = \"0 3 * * *\"", "backup.destination"),
            (
                "[[project]]\nid = 1\nname = \"Shop\"\nkeys = []",
                "project[0].name",
            ),
            (
                "[[project]]\nid = 1\nname = \"a\"\nkeys = [\"xyz\"]",
                "project[0].keys[0]",
            ),
            (
                "[[project]]\nid = 1\nname = \"a\"\nkeys = [\"0123456789abcdef0123456789abcdef\", { public = \"0123456789abcdef0123456789abcdef\", enabled = false }]",
                "project[0].keys[1]",
            ),
            (
                "[[project]]\nid = 1\nname = \"a\"\nkeys = [{ public = \"0123456789abcdef0123456789abcdef\", rate_limit = { events = 0, window = \"1s\" } }]",
                "project[0].keys[0].rate_limit",
            ),
            (
                "[[project]]\nid = 1\nname = \"a\"\nkeys = []\nquotas = [{ categories = [\"span\", \"spans\"], limit = 5, window = \"1m\" }]",
                "project[0].quotas[0].categories[1]",
            ),
            (
                "[[project]]\nid = 1\nname = \"a\"\nkeys = []\nquotas = [{ limit = 5, window = \"0s\" }]",
                "project[0].quotas[0].window",
            ),
            (
                "[[project]]\nid = 1\nname = \"a\"\nkeys = []\n[[project]]\nid = 1\nname = \"b\"\nkeys = []",
                "project[1].id",
            ),
        ];
        for (text, field) in cases {
            let message = Config::parse(text).unwrap_err().to_string();
            assert!(message.contains(field), "{text:?} gave {message}");
        }
    }
}
