//! Who may send and who may read: projects with their DSN keys, and API tokens.

pub mod projects;
pub mod tokens;

use std::path::PathBuf;

pub use projects::{Project, Projects};
pub use tokens::Tokens;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("project {project_id} does not exist")]
    UnknownProject { project_id: u64 },
    #[error("the DSN key is not valid for project {project_id}")]
    BadKey { project_id: u64 },
    #[error("invalid project name {name:?}: use 1-64 lowercase letters, digits or '-'")]
    InvalidName { name: String },
    #[error("a project named {name:?} already exists")]
    NameTaken { name: String },
    #[error("invalid API token")]
    BadToken,
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
