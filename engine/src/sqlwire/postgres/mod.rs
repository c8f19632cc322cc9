//! The PostgreSQL wire protocol, with `pgwire`: what `psql`, drivers (psycopg, asyncpg, JDBC)
//! and BI tools speak. A client logs in with any user name and an API token as the password
//! (cleartext; put TLS in front, as for the HTTP API). Each connection gets its own handlers,
//! which hold the token once it is verified, and check it again before every statement (the
//! check is cached for a few seconds), so a revoked token, or one whose person lost rights,
//! stops working on open connections too.
//!
//! Both query flows are served: simple (`Query`) and extended (`Parse` / `Bind` / `Describe` /
//! `Execute`, with `$n` parameters and text or binary values). Every statement runs in a
//! session built for the token ([`SqlAccess::session`]) plus the [`catalog`] drivers introspect,
//! and goes through the same plan check and limits as `POST /api/sql`. Session statements
//! (`SET`, `SHOW`, `BEGIN`, ...) are answered by [`session`] without reaching the planner.
//! Errors carry a SQLSTATE ([`error`]).

mod catalog;
mod encode;
mod error;
mod params;
mod rewrite;
mod session;
mod statement;

use std::fmt::Debug;
use std::sync::Arc;

use async_trait::async_trait;
use futures::Sink;
use parking_lot::Mutex;
use pgwire::api::auth::cleartext::CleartextPasswordAuthStartupHandler;
use pgwire::api::auth::{AuthSource, DefaultServerParameterProvider, LoginInfo, Password};
use pgwire::api::portal::{Format, Portal};
use pgwire::api::query::{ExtendedQueryHandler, SimpleQueryHandler};
use pgwire::api::results::Response;
use pgwire::api::store::PortalStore;
use pgwire::api::{ClientInfo, ClientPortalStore, PgWireServerHandlers};
use pgwire::error::{PgWireError, PgWireResult};
use pgwire::messages::PgWireBackendMessage;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use self::statement::{Planner, Prepared};
use super::SqlAccess;
use crate::tenancy::Principal;

/// The version clients are told (`server_version`, `SHOW server_version`, `version()`).
const SERVER_VERSION: &str = concat!("16.0 (faultline ", env!("CARGO_PKG_VERSION"), ")");

/// Serves connections from `listener` until `shutdown`.
pub async fn serve(listener: TcpListener, access: SqlAccess, shutdown: CancellationToken) {
    loop {
        let socket = tokio::select! {
            () = shutdown.cancelled() => return,
            accepted = listener.accept() => match accepted {
                Ok((socket, _)) => socket,
                Err(err) => {
                    tracing::warn!(cause = %err, "postgres accept failed");
                    continue;
                }
            },
        };
        let handlers = Connection::new(access.clone());
        tokio::spawn(async move {
            if let Err(err) = pgwire::tokio::process_socket(socket, None, handlers).await {
                tracing::debug!(cause = %err, "postgres connection ended with an error");
            }
        });
    }
}

/// The handlers of one connection.
struct Connection {
    query: Arc<QueryHandler>,
    startup: Arc<CleartextPasswordAuthStartupHandler<TokenAuth, DefaultServerParameterProvider>>,
}

impl Connection {
    fn new(access: SqlAccess) -> Self {
        let principal = Arc::new(Mutex::new(None));
        let auth = TokenAuth {
            access: access.clone(),
            principal: Arc::clone(&principal),
        };
        let mut parameters = DefaultServerParameterProvider::default();
        parameters.server_version = SERVER_VERSION.to_owned();
        Self {
            query: Arc::new(QueryHandler {
                planner: Arc::new(Planner::new(access, principal)),
            }),
            startup: Arc::new(CleartextPasswordAuthStartupHandler::new(auth, parameters)),
        }
    }
}

impl PgWireServerHandlers for Connection {
    fn simple_query_handler(&self) -> Arc<impl SimpleQueryHandler> {
        Arc::clone(&self.query)
    }

    fn extended_query_handler(&self) -> Arc<impl ExtendedQueryHandler> {
        Arc::clone(&self.query)
    }

    fn startup_handler(&self) -> Arc<impl pgwire::api::auth::StartupHandler> {
        Arc::clone(&self.startup)
    }
}

/// The connection's token and what it was last verified as.
type PrincipalSlot = Arc<Mutex<Option<(String, Arc<Principal>)>>>;

/// Checks the password as an API token and remembers who it belongs to.
struct TokenAuth {
    access: SqlAccess,
    principal: PrincipalSlot,
}

impl Debug for TokenAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenAuth")
    }
}

#[async_trait]
impl AuthSource for TokenAuth {
    async fn get_password(&self, login: &LoginInfo) -> PgWireResult<Password> {
        // Only hashes are stored: there is no password to hand out (see `verify_password`).
        Err(PgWireError::InvalidPassword(
            login.user().unwrap_or_default().to_owned(),
        ))
    }

    async fn verify_password(
        &self,
        login: &LoginInfo,
        presented_password: &[u8],
    ) -> PgWireResult<Option<()>> {
        let token = std::str::from_utf8(presented_password).unwrap_or_default();
        match self.access.login(token.trim()).await {
            Ok(principal) => {
                *self.principal.lock() = Some((token.trim().to_owned(), principal));
                Ok(None)
            }
            // the object store did not answer: io_error, not a wrong password
            Err(err) if err.is_unavailable() => {
                tracing::warn!(cause = %err, "postgres login could not be checked");
                Err(error::unavailable(&err))
            }
            Err(err) => {
                tracing::debug!(cause = %err, "postgres login refused");
                Err(PgWireError::InvalidPassword(
                    login.user().unwrap_or_default().to_owned(),
                ))
            }
        }
    }
}

/// Answers both query flows of one connection.
struct QueryHandler {
    planner: Arc<Planner>,
}

#[async_trait]
impl SimpleQueryHandler for QueryHandler {
    async fn do_query<C>(&self, _client: &mut C, query: &str) -> PgWireResult<Vec<Response>>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        let mut responses = Vec::new();
        for prepared in self.planner.split(query).await? {
            responses.push(
                self.planner
                    .respond(&prepared, None, &Format::UnifiedText)
                    .await?,
            );
        }
        Ok(responses)
    }
}

#[async_trait]
impl ExtendedQueryHandler for QueryHandler {
    type Statement = Prepared;
    type QueryParser = Planner;

    fn query_parser(&self) -> Arc<Self::QueryParser> {
        Arc::clone(&self.planner)
    }

    async fn do_query<C>(
        &self,
        _client: &mut C,
        portal: &Portal<Self::Statement>,
        _max_rows: usize,
    ) -> PgWireResult<Response>
    where
        C: ClientInfo + ClientPortalStore + Sink<PgWireBackendMessage> + Unpin + Send + Sync,
        C::PortalStore: PortalStore<Statement = Self::Statement>,
        C::Error: Debug,
        PgWireError: From<<C as Sink<PgWireBackendMessage>>::Error>,
    {
        self.planner
            .respond(
                &portal.statement.statement,
                Some((portal, &portal.statement.parameter_types)),
                &portal.result_column_format,
            )
            .await
    }
}
