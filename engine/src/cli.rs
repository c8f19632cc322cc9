//! Command line: `faultline serve | project | key | token | query | retention | compact | backup |
//! wal`.
//!
//! Every flag has an environment variable; flags override the config file, which overrides the
//! defaults.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use faultline_config::{Config, RateLimit};

use crate::query::format::Format;

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
    /// Manage the DSN keys of a project: list, create, disable, enable, rotate, delete.
    #[command(subcommand)]
    Key(KeyCommand),
    /// Manage API tokens.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Manage people: create the first owner, list, disable, enable, invite.
    #[command(subcommand)]
    User(UserCommand),
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
        #[command(flatten)]
        address: DsnAddress,
    },
    /// List projects with their DSNs.
    List {
        #[command(flatten)]
        address: DsnAddress,
    },
}

/// Where SDKs reach the server, for printing DSNs.
#[derive(Debug, Clone, Default, Args)]
pub struct DsnAddress {
    /// Base URL SDKs reach the server at (default: server.public_url, else http://<listen>).
    #[arg(long, env = "FAULTLINE_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// The server's listen address, when it was started with --listen or FAULTLINE_LISTEN
    /// (default: server.listen).
    #[arg(long, env = "FAULTLINE_LISTEN")]
    pub listen: Option<SocketAddr>,
}

/// Which project a key command acts on.
#[derive(Debug, Clone, Args)]
pub struct KeyProject {
    /// The project, by name.
    #[arg(long)]
    pub project: String,
    /// Organization that owns the project.
    #[arg(long, env = "FAULTLINE_ORG", default_value = crate::tenancy::DEFAULT_ORG)]
    pub org: String,
}

#[derive(Debug, Subcommand)]
pub enum KeyCommand {
    /// List the keys of a project with their state, limit and DSN.
    List {
        #[command(flatten)]
        project: KeyProject,
        #[command(flatten)]
        address: DsnAddress,
    },
    /// Add an active key to a project and print its DSN.
    Create {
        #[command(flatten)]
        project: KeyProject,
        /// A name for the key, shown in lists.
        #[arg(long)]
        label: Option<String>,
        /// Events accepted with this key per window, e.g. 100/1m (on top of the project's limit).
        #[arg(long, value_parser = parse_rate_limit)]
        rate_limit: Option<RateLimit>,
        #[command(flatten)]
        address: DsnAddress,
    },
    /// Refuse events sent with a key (401) until it is enabled again.
    Disable {
        /// The public key (the user part of the DSN).
        key: String,
        #[command(flatten)]
        project: KeyProject,
    },
    /// Accept events sent with a disabled key again.
    Enable {
        key: String,
        #[command(flatten)]
        project: KeyProject,
    },
    /// Create a new key with the label and limit of KEY and print its DSN. KEY keeps working
    /// until it is disabled or deleted, once every SDK uses the new DSN.
    Rotate {
        key: String,
        #[command(flatten)]
        project: KeyProject,
        #[command(flatten)]
        address: DsnAddress,
    },
    /// Set or remove a key's own rate limit, or rename it.
    Update {
        key: String,
        #[command(flatten)]
        project: KeyProject,
        #[arg(long)]
        label: Option<String>,
        /// Events accepted with this key per window, e.g. 100/1m.
        #[arg(long, value_parser = parse_rate_limit, conflicts_with = "no_rate_limit")]
        rate_limit: Option<RateLimit>,
        /// Remove the key's own rate limit.
        #[arg(long)]
        no_rate_limit: bool,
    },
    /// Delete a key; SDKs still sending it get 401.
    Delete {
        key: String,
        #[command(flatten)]
        project: KeyProject,
    },
}

/// `EVENTS/WINDOW`, e.g. `100/1m` or `5/10s`.
pub fn parse_rate_limit(text: &str) -> Result<RateLimit, String> {
    let (events, window) = text
        .split_once('/')
        .ok_or_else(|| format!("{text:?} is not EVENTS/WINDOW, e.g. 100/1m"))?;
    let events: u64 = events
        .trim()
        .parse()
        .map_err(|_| format!("{events:?} is not a number of events"))?;
    let window = humantime::parse_duration(window.trim())
        .map_err(|e| format!("{window:?} is not a duration such as 10s or 1m: {e}"))?;
    let limit = RateLimit { events, window };
    if !limit.is_valid() {
        return Err("events and window must be greater than zero".to_owned());
    }
    Ok(limit)
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
    /// Merge an issue into another of the same project: its events count there until it is
    /// unmerged.
    Merge {
        #[arg(allow_hyphen_values = true)]
        issue_id: i64,
        /// The issue to merge into.
        #[arg(long, allow_hyphen_values = true)]
        into: i64,
    },
    /// Undo a merge: the issue stands on its own again.
    Unmerge {
        #[arg(allow_hyphen_values = true)]
        issue_id: i64,
    },
    /// Delete an issue (and the issues merged into it): it leaves every list at once, and
    /// maintenance erases its events from the object store shortly after.
    Delete {
        #[arg(allow_hyphen_values = true)]
        issue_id: i64,
    },
}

#[derive(Debug, Subcommand)]
pub enum UserCommand {
    /// Create an account without a password and print a link to set it (there is never a
    /// default password).
    Create {
        email: String,
        /// Make the account an owner of the organization (the first account must be one).
        #[arg(long)]
        owner: bool,
        /// Organization role when not --owner: member, admin or manager.
        #[arg(long, default_value = "member", conflicts_with = "owner")]
        role: String,
        /// Display name (default: the email address).
        #[arg(long)]
        name: Option<String>,
        #[arg(long, env = "FAULTLINE_ORG", default_value = crate::tenancy::DEFAULT_ORG)]
        org: String,
        #[command(flatten)]
        address: DsnAddress,
    },
    /// List the accounts.
    List {
        /// Only this organization.
        #[arg(long, env = "FAULTLINE_ORG")]
        org: Option<String>,
    },
    /// Disable an account and end its sessions.
    Disable { email: String },
    /// Enable a disabled account.
    Enable { email: String },
    /// Invite someone and print the invite link.
    Invite {
        email: String,
        /// Organization role: member, admin, manager or owner.
        #[arg(long, default_value = "member")]
        role: String,
        /// Team to join (repeat for several).
        #[arg(long = "team")]
        teams: Vec<String>,
        #[arg(long, env = "FAULTLINE_ORG", default_value = crate::tenancy::DEFAULT_ORG)]
        org: String,
        #[command(flatten)]
        address: DsnAddress,
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
        /// Scope to grant, by Sentry's name (org:read, project:write, event:read, ...), or
        /// events:read (SQL) or projects:admin (tokens, keys, members, issue state) as before.
        /// Repeat for several.
        #[arg(long = "scope", default_value = "events:read")]
        scopes: Vec<String>,
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

/// The base URL printed in DSNs, and a sentence saying where it came from and how to change it.
///
/// In order: `--public-url` (or `FAULTLINE_PUBLIC_URL`), `server.public_url`, then the listen
/// address (`--listen`/`FAULTLINE_LISTEN`, else `server.listen`). A listen address on every
/// interface (`0.0.0.0`, `::`) is not an address to send to: loopback is printed instead.
pub fn public_url(config: &Config, address: &DsnAddress) -> (String, String) {
    if let Some(url) = &address.public_url {
        return (url.clone(), "DSN address from --public-url".to_owned());
    }
    if let Some(url) = &config.server.public_url {
        return (
            url.clone(),
            "DSN address from server.public_url in the config".to_owned(),
        );
    }
    let (mut addr, origin) = match address.listen {
        Some(addr) => (addr, "--listen"),
        None => (config.server.listen, "server.listen"),
    };
    let mut note = String::new();
    if addr.ip().is_unspecified() {
        note = format!(" ({} listens on every interface; loopback shown)", addr);
        addr.set_ip(match addr.ip() {
            std::net::IpAddr::V4(_) => std::net::Ipv4Addr::LOCALHOST.into(),
            std::net::IpAddr::V6(_) => std::net::Ipv6Addr::LOCALHOST.into(),
        });
    }
    (
        format!("http://{addr}"),
        format!(
            "DSN address from the listen address ({origin}){note}; set server.public_url or \
             --public-url to the address SDKs reach the server at"
        ),
    )
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
        let (url, origin) = public_url(&config, &DsnAddress::default());
        assert_eq!(url, "http://127.0.0.1:8000");
        assert!(origin.contains("server.listen"), "{origin}");
    }

    #[test]
    fn dsn_address_follows_public_url_then_listen() {
        let cli = Cli::try_parse_from([
            "faultline",
            "project",
            "create",
            "shop",
            "--listen",
            "0.0.0.0:9100",
        ])
        .unwrap();
        let Command::Project(ProjectCommand::Create { address, .. }) = &cli.command else {
            panic!("parsed {:?}", cli.command);
        };
        let mut config = Config::default();
        let (url, origin) = public_url(&config, address);
        assert_eq!(url, "http://127.0.0.1:9100");
        assert!(origin.contains("--listen"), "{origin}");
        assert!(origin.contains("every interface"), "{origin}");
        config.server.listen = "10.0.0.5:8200".parse().unwrap();
        let (url, _) = public_url(&config, &DsnAddress::default());
        assert_eq!(url, "http://10.0.0.5:8200");
        config.server.public_url = Some("https://errors.example.com".into());
        let (url, origin) = public_url(&config, address);
        assert_eq!(url, "https://errors.example.com");
        assert!(origin.contains("server.public_url"), "{origin}");
        let flag = DsnAddress {
            public_url: Some("https://other.example.com".into()),
            listen: None,
        };
        assert_eq!(public_url(&config, &flag).0, "https://other.example.com");
    }

    #[test]
    fn rate_limits_are_events_per_window() {
        let limit = parse_rate_limit("100/1m").unwrap();
        assert_eq!(
            (limit.events, limit.window),
            (100, std::time::Duration::from_secs(60))
        );
        for bad in ["100", "x/1m", "10/soon", "0/1m", "5/0s"] {
            assert!(parse_rate_limit(bad).is_err(), "{bad} was accepted");
        }
    }
}
