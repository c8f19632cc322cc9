//! SQL over wire protocols that existing clients speak: PostgreSQL ([`postgres`], for psql and
//! BI tools) and Arrow Flight SQL ([`flight`], for ADBC and JDBC drivers). Every protocol authenticates with an API token and runs its queries through
//! [`SqlAccess`], the same path as `POST /api/sql`: a session built for the token's projects,
//! the plan checks and the limits.

pub mod flight;
pub mod postgres;

use std::sync::Arc;

use crate::query::{self, ProjectFilter, QueryOutput, QueryService};
use crate::tenancy::{self, Principal, Projects, Tokens};

/// What a wire protocol needs to serve a token's queries.
#[derive(Clone)]
pub struct SqlAccess {
    pub query: Arc<QueryService>,
    pub tokens: Arc<Tokens>,
    pub projects: Arc<Projects>,
}

impl SqlAccess {
    /// Verifies a token.
    pub async fn login(&self, token: &str) -> Result<Arc<Principal>, tenancy::Error> {
        self.tokens.verify(token).await
    }

    /// Runs one statement for `principal`, in a session holding only what it may read.
    pub async fn run(&self, principal: &Principal, sql: &str) -> query::Result<QueryOutput> {
        let projects = ProjectFilter::for_principal(&self.projects, principal).await?;
        self.query.run(&projects, sql).await
    }
}
