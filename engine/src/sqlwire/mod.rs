//! SQL over wire protocols that existing clients speak: PostgreSQL ([`postgres`], for psql,
//! drivers and BI tools) and Arrow Flight SQL ([`flight`], for ADBC and JDBC drivers). Every
//! protocol authenticates with an API token and runs its queries through
//! [`SqlAccess`], the same path as `POST /api/sql`: a session built for the token's projects,
//! the plan checks and the limits.

pub mod flight;
pub mod postgres;

use std::sync::Arc;

use datafusion::prelude::SessionContext;

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

    /// A session for `principal`, holding only what it may read (see [`QueryService::session`]),
    /// for protocols that plan and run in steps ([`postgres`]'s extended flow).
    pub async fn session(&self, principal: &Principal) -> query::Result<SessionContext> {
        let projects = ProjectFilter::for_principal(&self.projects, principal).await?;
        self.query.session(&projects).await
    }

    /// Runs one statement for `principal`, in a session holding only what it may read.
    pub async fn run(&self, principal: &Principal, sql: &str) -> query::Result<QueryOutput> {
        let projects = ProjectFilter::for_principal(&self.projects, principal).await?;
        self.query.run(&projects, sql).await
    }
}
