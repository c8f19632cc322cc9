//! Who may send and who may read: organizations own projects (with their DSN keys) and API
//! tokens (with scopes and an optional project list).
//!
//! Organizations are names: a project or token names its organization, and projects from the
//! config file belong to [`DEFAULT_ORG`].

pub mod erasure;
pub mod keys;
mod privacy;
pub mod projects;
mod registration;
pub mod tokens;

use std::path::PathBuf;

pub use erasure::Erasure;
pub use keys::{KeyInfo, KeySource, KeyUpdate};
pub use projects::{Authorized, Project, ProjectRules, Projects};
pub use registration::{DeclaredKey, Registered, Registration};
pub use tokens::{ALL_SCOPES, NewToken, Principal, Scope, TokenRecord, Tokens};

/// The organization of projects from the config file and of tokens that name none.
pub const DEFAULT_ORG: &str = "default";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("project {project_id} does not exist")]
    UnknownProject { project_id: u64 },
    #[error("the DSN key is not valid for project {project_id}")]
    BadKey { project_id: u64 },
    #[error(
        "the DSN key{} of project {project_id} is disabled: configure the SDK with an active key of the project",
        label.as_deref().map(|l| format!(" {l:?}")).unwrap_or_default()
    )]
    DisabledKey {
        project_id: u64,
        label: Option<String>,
    },
    #[error("project {project:?} has no DSN key {key:?}")]
    UnknownKey { project: String, key: String },
    #[error(
        "the DSN key {key} of project {project:?} is declared in the config file; change it there"
    )]
    ConfigKey { project: String, key: String },
    #[error(
        "project {project:?} would have no active DSN key left: create or enable another key first"
    )]
    LastActiveKey { project: String },
    #[error("invalid rate limit: events and window must be greater than zero")]
    InvalidRateLimit,
    #[error(
        "the grouping rules of project {project:?} are declared in the config file; change them there"
    )]
    ConfigGrouping { project: String },
    #[error("project {project:?}: {field} is not valid at {source}")]
    GroupingRules {
        project: String,
        field: &'static str,
        source: faultline_protocol::grouping::RuleError,
    },
    #[error(
        "the data scrubbing settings of project {project:?} are declared in the config file; change them there"
    )]
    ConfigPrivacy { project: String },
    #[error("project {project:?}: {source}")]
    PrivacyRules {
        project: String,
        source: faultline_protocol::scrub::ConfigError,
    },
    #[error("invalid project name {name:?}: use 1-64 lowercase letters, digits or '-'")]
    InvalidName { name: String },
    #[error("a project named {name:?} already exists")]
    NameTaken { name: String },
    #[error("project {name:?} is declared in the config file; change it there")]
    ConfigProject { name: String },
    #[error("project id {id} is taken by project {holder:?} of organization {org:?}")]
    IdTaken {
        id: u64,
        holder: String,
        org: String,
    },
    #[error(
        "project {name:?} of organization {org:?} has id {current}; it cannot change to {wanted}"
    )]
    IdChange {
        org: String,
        name: String,
        current: u64,
        wanted: u64,
    },
    #[error("invalid {field}: {reason}")]
    InvalidRegistration { field: String, reason: String },
    #[error("invalid API token")]
    BadToken,
    #[error("the API token lacks the scope {scope}")]
    MissingScope { scope: Scope },
    #[error(
        "unknown scope {scope:?}: use one of Sentry's scopes (org:read, project:write, event:read, member:admin, ...) or events:read or projects:admin"
    )]
    InvalidScope { scope: String },
    #[error("a token needs at least one scope")]
    NoScopes,
    #[error("cannot grant the scope {scope}: you do not hold it")]
    ScopeNotHeld { scope: Scope },
    #[error("the token name must be 1-200 characters")]
    InvalidTokenName,
    #[error("no API token with id {id}")]
    UnknownToken { id: String },
    #[error("no project named {name:?} in organization {org:?}")]
    UnknownProjectName { org: String, name: String },
    #[error("cannot read the admin token file {path}: {source}")]
    ReadTokenFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Store(#[from] crate::store::Error),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// True when tokens or projects could not be read because the object store did not answer.
    pub fn is_unavailable(&self) -> bool {
        matches!(self, Self::Store(e) if e.is_unavailable())
    }
}
