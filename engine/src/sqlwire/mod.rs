//! SQL over wire protocols that existing clients speak: PostgreSQL ([`postgres`], for psql,
//! drivers and BI tools) and Arrow Flight SQL ([`flight`], for ADBC and JDBC drivers). Every
//! protocol authenticates with an API token and runs its queries through
//! [`SqlAccess`], the same path as `POST /api/sql`: a session built for the token's projects,
//! the plan checks and the limits.

pub mod flight;
pub mod postgres;

use std::sync::Arc;

use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::logical_expr::LogicalPlan;
use datafusion::prelude::SessionContext;

use crate::query::{self, AuditView, ProjectFilter, QueryOutput, QueryService};
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
        self.query
            .session_with(&projects, AuditView::for_principal(principal))
            .await
    }

    /// Runs one statement for `principal`, in a session holding only what it may read.
    pub async fn run(&self, principal: &Principal, sql: &str) -> query::Result<QueryOutput> {
        let projects = ProjectFilter::for_principal(&self.projects, principal).await?;
        self.query
            .run_with(
                Some(&principal.token_id),
                &projects,
                AuditView::for_principal(principal),
                sql,
            )
            .await
    }
}

/// The tables a token's session has, with their columns, for catalog listings.
pub(crate) async fn table_schemas(
    ctx: &SessionContext,
) -> datafusion::error::Result<Vec<(String, SchemaRef)>> {
    let mut tables = Vec::new();
    for name in crate::query::table_names() {
        if !ctx.table_exist(name)? {
            continue;
        }
        tables.push((name.to_owned(), ctx.table_provider(name).await?.schema()));
    }
    Ok(tables)
}

/// The types DataFusion inferred for the parameters `$1..$n` of `plan`, in order (`None`: not
/// inferable from where it is used). An id that is not `$<n>` is an error naming it.
pub(crate) fn parameter_types(plan: &LogicalPlan) -> Result<Vec<Option<DataType>>, String> {
    let types = plan.get_parameter_types().map_err(|e| e.to_string())?;
    let mut numbered = Vec::with_capacity(types.len());
    for (id, data_type) in types {
        let n: usize = id
            .strip_prefix('$')
            .and_then(|n| n.parse().ok())
            .filter(|n| *n > 0)
            .ok_or_else(|| format!("parameter {id} is not $1, $2, ..."))?;
        numbered.push((n, data_type));
    }
    let count = numbered.iter().map(|(n, _)| *n).max().unwrap_or(0);
    let mut ordered = vec![None; count];
    for (n, data_type) in numbered {
        ordered[n - 1] = data_type;
    }
    Ok(ordered)
}
