//! Command line: `faultline serve | project | token | query | retention | compact | backup | wal`.
//!
//! Every flag has an environment variable; flags override the config file, which overrides the
//! defaults.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use faultline_config::Config;

use crate::query::format::Format;
use crate::tenancy::Scope;

#[derive(Debug, Parser)]
#[command(
    name = "faultline",
    version,
    about = "Sentry-compatible error tracking with SQL"
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// TOML config file (see docs/configuration.md).
    #[arg(long, global = true, env = "FAULTLINE_CONFIG")]
    pub config: Option<PathBuf>,
    /// Directory for the WAL and, without --object-store, the data files.
    #[arg(long, global = true, env = "FAULTLINE_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Object store URL: s3://bucket/prefix or file:///absolute/path.
    #[arg(long, global = true, env = "FAULTLINE_OBJECT_STORE")]
    pub object_store: Option<String>,
    /// Name of this node (each node writes its own WAL and manifest).
    #[arg(long, global = true, env = "FAULTLINE_NODE_ID")]
    pub node_id: Option<String>,
    /// Log format.
    #[arg(
        long,
        global = true,
        env = "FAULTLINE_LOG_FORMAT",
        default_value = "text"
    )]
    pub log_format: LogFormat,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server: Sentry ingest, SQL API, flushing to Parquet.
    Serve {
        /// Address of the ingest listener.
        #[arg(long, env = "FAULTLINE_LISTEN")]
        listen: Option<SocketAddr>,
        /// Separate address for the query API (default: served on --listen).
        #[arg(long, env = "FAULTLINE_ADMIN_LISTEN")]
        admin_listen: Option<SocketAddr>,
        /// Address of the PostgreSQL wire-protocol listener (off by default).
        #[arg(long, env = "FAULTLINE_PG_LISTEN")]
        pg_listen: Option<SocketAddr>,
        /// Address of the Arrow Flight SQL listener (off by default).
        #[arg(long, env = "FAULTLINE_FLIGHT_LISTEN")]
        flight_listen: Option<SocketAddr>,
    },
    /// Print the effective configuration (file, flags and defaults) as TOML.
    Config,
    /// Manage projects.
    #[command(subcommand)]
    Project(ProjectCommand),
    /// Manage API tokens.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Resolve, ignore or reopen an issue.
    #[command(subcommand)]
    Issue(IssueCommand),
    /// Run a SQL query over events and issues.
    Query {
        /// The SQL statement.
        sql: String,
        /// Output format.
        #[arg(long, short, default_value = "table")]
        format: Format,
        /// Ask a running server instead of reading the data directory.
        #[arg(long, env = "FAULTLINE_SERVER")]
        server: Option<String>,
        /// API token for --server.
        #[arg(long, env = "FAULTLINE_TOKEN", requires = "server")]
        token: Option<String>,
    },
    /// Apply retention now: drop expired date partitions from every manifest.
    #[command(subcommand)]
    Retention(RetentionCommand),
    /// Merge the small files of each partition now.
    #[command(subcommand)]
    Compact(CompactCommand),
    /// Create, list, verify, restore and prune backups.
    #[command(subcommand)]
    Backup(BackupCommand),
    /// Inspect the write-ahead log of this node.
    #[command(subcommand)]
    Wal(WalCommand),
}

#[derive(Debug, Subcommand)]
pub enum WalCommand {
    /// Records that start-up could not replay and set aside.
    #[command(subcommand)]
    Quarantine(QuarantineCommand),
}

#[derive(Debug, Subcommand)]
pub enum QuarantineCommand {
    /// List the quarantined records: where they were and why replay failed.
    List {
        #[arg(long, default_value = "table")]
        format: ListFormat,
    },
    /// Print one quarantined record: its description, then the stored event as sent to the WAL.
    Show {
        /// The id shown by `list` (`<segment>-<offset>`).
        id: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum RetentionCommand {
    /// Drop the expired partitions (and delete files retired long enough ago).
    Run {
        /// Only show what would be dropped.
        #[arg(long)]
        dry_run: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum CompactCommand {
    /// Merge small files into files of about compaction.target_size.
    Run {
        /// Only show what would be merged.
        #[arg(long)]
        dry_run: bool,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ListFormat {
    Table,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum BackupCommand {
    /// Back up the data location; prints the backup id.
    Create {
        /// Destination (default: backup.destination): s3://bucket/prefix or file:///path.
        #[arg(long)]
        to: Option<String>,
    },
    /// List the backups at a destination, newest first.
    List {
        #[arg(long)]
        from: Option<String>,
        #[arg(long, default_value = "table")]
        format: ListFormat,
    },
    /// Read every object of a backup and check its checksum.
    Verify {
        /// Backup id, or `latest`.
        id: String,
        #[arg(long)]
        from: Option<String>,
    },
    /// Restore a backup into the configured (empty) data location.
    Restore {
        /// Backup id, or `latest`.
        id: String,
        #[arg(long)]
        from: Option<String>,
        /// Keep only the events received up to this time (RFC 3339).
        #[arg(long)]
        until: Option<chrono::DateTime<chrono::FixedOffset>>,
    },
    /// Delete backups beyond backup.keep_last / backup.keep_days.
    Prune {
        #[arg(long)]
        dry_run: bool,
    },
}

#[derive(Debug, Subcommand)]
pub enum ProjectCommand {
    /// Create a project and print its DSN.
    Create {
        /// Project name: lowercase letters, digits and '-'.
        name: String,
        /// Organization that owns the project.
        #[arg(long, env = "FAULTLINE_ORG", default_value = crate::tenancy::DEFAULT_ORG)]
        org: String,
        /// Base URL SDKs reach this server at (default: server.public_url or http://<listen>).
        #[arg(long, env = "FAULTLINE_PUBLIC_URL")]
        public_url: Option<String>,
    },
    /// List projects with their DSNs.
    List {
        #[arg(long, env = "FAULTLINE_PUBLIC_URL")]
        public_url: Option<String>,
    },
}

#[derive(Debug, Subcommand)]
pub enum IssueCommand {
    /// Mark an issue resolved; its next event reopens it as a regression.
    Resolve {
        /// The issue id (the `issue_id` column).
        #[arg(allow_hyphen_values = true)]
        issue_id: i64,
    },
    /// Ignore an issue, for good or until a time or a number of further events.
    Ignore {
        #[arg(allow_hyphen_values = true)]
        issue_id: i64,
        /// Until this time (RFC 3339, e.g. 2026-12-01T00:00:00Z).
        #[arg(long, conflicts_with = "count")]
        until: Option<chrono::DateTime<chrono::Utc>>,
        /// Until this many more events arrived.
        #[arg(long)]
        count: Option<u64>,
    },
    /// Mark an issue unresolved again.
    Reopen {
        #[arg(allow_hyphen_values = true)]
        issue_id: i64,
    },
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create an API token and print it (it is shown only once).
    Create {
        #[arg(long, default_value = "cli")]
        name: String,
        /// Organization the token belongs to.
        #[arg(long, env = "FAULTLINE_ORG", default_value = crate::tenancy::DEFAULT_ORG)]
        org: String,
        /// Scope to grant: events:read (SQL) or projects:admin (tokens, issue state).
        /// Repeat for several.
        #[arg(long = "scope", default_value = "events:read")]
        scopes: Vec<Scope>,
        /// Limit the token to this project (by name). Repeat for several; none means every
        /// project of the organization.
        #[arg(long = "project")]
        projects: Vec<String>,
    },
    /// List the API tokens (never the tokens themselves).
    List {
        /// Only this organization.
        #[arg(long, env = "FAULTLINE_ORG")]
        org: Option<String>,
    },
    /// Revoke a token by its id (as printed by `token list`).
    Revoke { id: String },
}

impl GlobalArgs {
    /// The config file (or defaults) with the flags applied.
    pub fn config(&self) -> Result<Config, faultline_config::Error> {
        let mut config = match &self.config {
            Some(path) => Config::load(path)?,
            None => Config::default(),
        };
        if let Some(dir) = &self.data_dir {
            config.storage.data_dir = dir.clone();
        }
        if let Some(url) = &self.object_store {
            config.storage.object_store = Some(url.clone());
        }
        if let Some(node) = &self.node_id {
            config.storage.node_id = node.clone();
        }
        if config.storage.s3.endpoint.is_none() {
            config.storage.s3.endpoint = std::env::var("AWS_ENDPOINT_URL").ok();
        }
        if let Some(endpoint) = &config.storage.s3.endpoint
            && endpoint.starts_with("http://")
        {
            config.storage.s3.allow_http = true;
        }
        config.validate()?;
        Ok(config)
    }
}

/// The base URL printed in DSNs.
pub fn public_url(config: &Config, flag: Option<&str>) -> String {
    flag.map(str::to_owned)
        .or_else(|| config.server.public_url.clone())
        .unwrap_or_else(|| format!("http://{}", config.server.listen))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_is_well_formed() {
        Cli::command().debug_assert();
    }

    #[test]
    fn flags_override_config() {
        let cli = Cli::try_parse_from([
            "faultline",
            "--data-dir",
            "/tmp/x",
            "--object-store",
            "s3://b/p",
            "project",
            "create",
            "shop",
        ])
        .unwrap();
        let config = cli.global.config().unwrap();
        assert_eq!(config.storage.data_dir, PathBuf::from("/tmp/x"));
        assert_eq!(config.storage.object_store.as_deref(), Some("s3://b/p"));
        assert_eq!(public_url(&config, None), "http://127.0.0.1:8000");
    }
}
