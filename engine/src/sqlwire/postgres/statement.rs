//! From a client's SQL text to what runs.
//!
//! The text is parsed as PostgreSQL. Session statements become [`Command`]s. A statement that
//! reads the catalog (`pg_catalog`, `information_schema`, `pg_*` tables) goes through
//! `datafusion-pg-catalog`'s rewriter, which turns what drivers send (`= ANY(ARRAY[..])`,
//! `'x'::regclass`, correlated subqueries in the select list, ...) into SQL DataFusion plans.
//! Any other statement is planned as written, so a query over `events` means exactly what it
//! means over HTTP; only `pg_catalog.` prefixes of function names are dropped. Text PostgreSQL's
//! parser rejects goes to DataFusion's parser, which answers as it does over HTTP.

use std::sync::{Arc, LazyLock};

use async_trait::async_trait;
use datafusion::arrow::array::{RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::prelude::SessionContext;
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::parser::Parser;
use datafusion_pg_catalog::sql::PostgresCompatibilityParser;
use datafusion_pg_catalog::sql::rules::{
    CurrentUserVariableToSessionUserFunctionCall, FixVersionColumnName, SqlStatementRewriteRule,
    StripCallableQualifier,
};
use parking_lot::Mutex;
use pgwire::api::portal::{Format, Portal};
use pgwire::api::results::{FieldInfo, Response, Tag};
use pgwire::api::stmt::QueryParser;
use pgwire::api::{ClientInfo, Type};
use pgwire::error::PgWireResult;

use super::error::{query_error, syntax, user_error};
use super::session::{Command, Settings};
use super::{PrincipalSlot, catalog, encode, params, rewrite};
use crate::query::{self, QueryOutput};
use crate::sqlwire::SqlAccess;
use crate::tenancy::Principal;

static COMPATIBILITY: LazyLock<PostgresCompatibilityParser> =
    LazyLock::new(PostgresCompatibilityParser::new);

/// A statement ready to answer.
#[derive(Debug, Clone)]
pub(crate) enum Prepared {
    Session(Command),
    /// SQL to plan when it runs (simple query flow).
    Sql(String),
    /// SQL planned at `Parse` (extended flow): its parameters and columns are known.
    Query(Arc<Query>),
}

#[derive(Debug)]
pub(crate) struct Query {
    sql: String,
    params: Vec<Option<DataType>>,
    schema: SchemaRef,
}

/// Plans and runs one connection's statements.
pub(crate) struct Planner {
    access: SqlAccess,
    principal: PrincipalSlot,
    settings: Mutex<Settings>,
}

impl Planner {
    pub(super) fn new(access: SqlAccess, principal: PrincipalSlot) -> Self {
        Self {
            access,
            principal,
            settings: Mutex::new(Settings::default()),
        }
    }

    /// The connection's token as it stands now: verified again (cached for a few seconds by
    /// the tokens), so a revoked token or a disabled person stops open connections too.
    async fn principal(&self) -> PgWireResult<Arc<Principal>> {
        let token = self
            .principal
            .lock()
            .as_ref()
            .map(|(token, _)| token.clone())
            .ok_or_else(|| user_error("28000", "not logged in"))?;
        match self.access.login(&token).await {
            Ok(principal) => {
                if let Some(slot) = self.principal.lock().as_mut() {
                    slot.1 = Arc::clone(&principal);
                }
                Ok(principal)
            }
            Err(err) if err.is_unavailable() => Err(super::error::unavailable(&err)),
            Err(err) => Err(user_error(
                "28000",
                format!(
                    "{err}: it was revoked, or its person can no longer log in; reconnect with a valid token"
                ),
            )),
        }
    }

    /// The token's session plus the catalog.
    async fn session(&self) -> PgWireResult<SessionContext> {
        let principal = self.principal().await?;
        let ctx = self
            .access
            .session(&principal)
            .await
            .map_err(|e| query_error(&e))?;
        let settings = self.settings.lock().clone();
        catalog::register(&ctx, &settings)
            .await
            .map_err(|e| user_error("XX000", format!("cannot build the catalog: {e}")))?;
        Ok(ctx)
    }

    /// The statements of `sql`, in order, once its length and nesting are within the limits
    /// (checked on the query threads, as planning is).
    pub(super) async fn split(&self, sql: &str) -> PgWireResult<Vec<Prepared>> {
        self.access
            .query
            .check_parsed(sql, |sql, depth| Ok(split(sql, depth)))
            .await
            .map_err(|e| query_error(&e))?
    }

    /// Plans `sql` in the token's session and runs it with `values` bound to its parameters.
    async fn run(
        &self,
        sql: &str,
        values: Option<datafusion::common::ParamValues>,
    ) -> PgWireResult<QueryOutput> {
        let principal = self.principal().await?;
        let ctx = self.session().await?;
        let query = &self.access.query;
        let mut plan = query
            .plan(&ctx, sql)
            .await
            .inspect_err(|e| crate::metrics::query_failed("postgres", e))
            .map_err(|e| query_error(&e))?;
        if let Some(values) = values {
            plan = plan
                .with_param_values(values)
                .map_err(|e| user_error("22023", e.to_string()))?;
        }
        let output = query.execute(Some(&principal.token_id), &ctx, plan).await;
        crate::metrics::record_query("postgres", &output);
        output.map_err(|e| query_error(&e))
    }

    /// Answers `prepared`: its rows in `format`, or the command's acknowledgement. `bound` has
    /// the portal of the extended flow and the parameter types the client declared.
    pub(super) async fn respond(
        &self,
        prepared: &Prepared,
        bound: Option<(&Portal<Prepared>, &Vec<Option<Type>>)>,
        format: &Format,
    ) -> PgWireResult<Response> {
        match prepared {
            Prepared::Session(command) => self.command(command, format),
            Prepared::Sql(sql) => {
                let output = self.run(sql, None).await?;
                let fields = encode::fields(&output.schema, format);
                Ok(Response::Query(encode::rows(fields, &output.batches)?))
            }
            Prepared::Query(query) => {
                let values = match bound {
                    Some((portal, declared)) => {
                        let wire = params::wire_types(declared, &query.params);
                        Some(params::decode(
                            &portal.parameters,
                            &portal.parameter_format,
                            &wire,
                            &query.params,
                        )?)
                    }
                    None => None,
                };
                let output = self.run(&query.sql, values).await?;
                // The columns as `Describe` announced them, from the plan made at `Parse`.
                let fields = encode::fields(&query.schema, format);
                Ok(Response::Query(encode::rows(fields, &output.batches)?))
            }
        }
    }

    fn command(&self, command: &Command, format: &Format) -> PgWireResult<Response> {
        Ok(match command {
            Command::Set { name, value } => {
                if let Some(name) = name {
                    self.settings.lock().set(name, value.clone());
                }
                Response::Execution(Tag::new("SET"))
            }
            Command::Show(name) => {
                let settings = self.settings.lock();
                let (schema, columns) = match name {
                    Some(name) => {
                        let value = settings.get(name).ok_or_else(|| {
                            user_error(
                                "42704",
                                format!("unrecognized configuration parameter \"{name}\""),
                            )
                        })?;
                        let schema = show_schema(&[&super::session::canonical(name)]);
                        (schema, vec![vec![value.to_owned()]])
                    }
                    None => {
                        let (names, values) = settings
                            .all()
                            .map(|(k, v)| (k.to_owned(), v.to_owned()))
                            .unzip();
                        (show_schema(&["name", "setting"]), vec![names, values])
                    }
                };
                let batch = RecordBatch::try_new(
                    Arc::clone(&schema),
                    columns
                        .into_iter()
                        .map(|c| Arc::new(StringArray::from(c)) as _)
                        .collect(),
                )
                .map_err(super::error::internal)?;
                Response::Query(encode::rows(encode::fields(&schema, format), &[batch])?)
            }
            Command::Begin => Response::TransactionStart(Tag::new("BEGIN")),
            Command::End(tag) => Response::TransactionEnd(Tag::new(tag)),
            Command::Noop(tag) => Response::Execution(Tag::new(tag)),
        })
    }
}

/// The statements of `sql`, in order; refuses statements nested deeper than `depth`.
fn split(sql: &str, depth: usize) -> PgWireResult<Vec<Prepared>> {
    let Ok(parsed) = Parser::parse_sql(&PostgreSqlDialect {}, sql) else {
        return Ok(vec![Prepared::Sql(sql.to_owned())]);
    };
    for statement in &parsed {
        query::check_depth(statement, depth).map_err(|e| query_error(&e))?;
    }
    let catalog = parsed.iter().any(rewrite::reads_catalog);
    let parsed = if catalog {
        let mut parsed = COMPATIBILITY.parse(sql).map_err(syntax)?;
        parsed.iter_mut().for_each(rewrite::catalog);
        parsed
    } else {
        parsed
    };
    let single = parsed.len() == 1;
    Ok(parsed
        .into_iter()
        .map(|statement| {
            if let Some(command) = super::session::command(&statement) {
                return Prepared::Session(command);
            }
            let rewritten = [
                &StripCallableQualifier as &dyn SqlStatementRewriteRule,
                &FixVersionColumnName,
                &CurrentUserVariableToSessionUserFunctionCall,
            ]
            .iter()
            .fold(statement.clone(), |s, rule| rule.rewrite(s));
            if single && !catalog && rewritten == statement {
                Prepared::Sql(sql.to_owned())
            } else {
                Prepared::Sql(rewritten.to_string())
            }
        })
        .collect())
}

fn show_schema(names: &[&str]) -> SchemaRef {
    Arc::new(Schema::new(
        names
            .iter()
            .map(|n| Field::new(*n, DataType::Utf8, false))
            .collect::<Vec<_>>(),
    ))
}

#[async_trait]
impl QueryParser for Planner {
    type Statement = Prepared;

    async fn parse_sql<C>(
        &self,
        _client: &C,
        sql: &str,
        _types: &[Option<Type>],
    ) -> PgWireResult<Option<Prepared>>
    where
        C: ClientInfo + Unpin + Send + Sync,
    {
        let mut statements = self.split(sql).await?;
        if statements.len() > 1 {
            return Err(syntax(
                "cannot insert multiple commands into a prepared statement",
            ));
        }
        Ok(match statements.pop() {
            None => None,
            Some(Prepared::Sql(sql)) => {
                let ctx = self.session().await?;
                let plan = self
                    .access
                    .query
                    .plan(&ctx, &sql)
                    .await
                    .map_err(|e| query_error(&e))?;
                let params = params::inferred(&plan)?;
                let schema = Arc::new(plan.schema().as_arrow().clone());
                Some(Prepared::Query(Arc::new(Query {
                    sql,
                    params,
                    schema,
                })))
            }
            Some(other) => Some(other),
        })
    }

    fn get_parameter_types(&self, stmt: &Prepared) -> PgWireResult<Vec<Type>> {
        Ok(match stmt {
            Prepared::Query(query) => params::wire_types(&[], &query.params),
            _ => Vec::new(),
        })
    }

    fn get_result_schema(
        &self,
        stmt: &Prepared,
        column_format: Option<&Format>,
    ) -> PgWireResult<Vec<FieldInfo>> {
        let format = column_format.unwrap_or(&Format::UnifiedText);
        Ok(match stmt {
            Prepared::Query(query) => encode::fields(&query.schema, format),
            Prepared::Session(Command::Show(Some(name))) => {
                encode::fields(&show_schema(&[&super::session::canonical(name)]), format)
            }
            Prepared::Session(Command::Show(None)) => {
                encode::fields(&show_schema(&["name", "setting"]), format)
            }
            _ => Vec::new(),
        })
    }
}
