//! The PostgreSQL wire protocol (simple query flow), with `pgwire`. A client logs in with any
//! user name and an API token as the password (cleartext; put TLS in front, as for the HTTP
//! API). Each connection gets its own handlers, which hold the token's principal once it is
//! verified. Results are sent in text format: integers, floats, booleans and timestamps with
//! their PostgreSQL types, everything else (maps, lists) as text.

use std::fmt::Debug;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::{Array, RecordBatch};
use datafusion::arrow::datatypes::DataType;
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use futures::{Sink, stream};
use parking_lot::Mutex;
use pgwire::api::auth::cleartext::CleartextPasswordAuthStartupHandler;
use pgwire::api::auth::{AuthSource, DefaultServerParameterProvider, LoginInfo, Password};
use pgwire::api::query::SimpleQueryHandler;
use pgwire::api::results::{DataRowEncoder, FieldFormat, FieldInfo, QueryResponse, Response};
use pgwire::api::store::PortalStore;
use pgwire::api::{ClientInfo, ClientPortalStore, PgWireServerHandlers, Type};
use pgwire::error::{ErrorInfo, PgWireError, PgWireResult};
use pgwire::messages::PgWireBackendMessage;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use super::SqlAccess;
use crate::query::QueryOutput;
use crate::tenancy::Principal;

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
        parameters.server_version = format!("16.0 (faultline {})", env!("CARGO_PKG_VERSION"));
        Self {
            query: Arc::new(QueryHandler { access, principal }),
            startup: Arc::new(CleartextPasswordAuthStartupHandler::new(auth, parameters)),
        }
    }
}

impl PgWireServerHandlers for Connection {
    fn simple_query_handler(&self) -> Arc<impl SimpleQueryHandler> {
        Arc::clone(&self.query)
    }

    fn startup_handler(&self) -> Arc<impl pgwire::api::auth::StartupHandler> {
        Arc::clone(&self.startup)
    }
}

type PrincipalSlot = Arc<Mutex<Option<Arc<Principal>>>>;

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
                *self.principal.lock() = Some(principal);
                Ok(None)
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

struct QueryHandler {
    access: SqlAccess,
    principal: PrincipalSlot,
}

fn user_error(code: &str, message: String) -> PgWireError {
    PgWireError::UserError(Box::new(ErrorInfo::new(
        "ERROR".to_owned(),
        code.to_owned(),
        message,
    )))
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
        let principal = self
            .principal
            .lock()
            .clone()
            .ok_or_else(|| user_error("28000", "not logged in".to_owned()))?;
        let output = self.access.run(&principal, query).await.map_err(|err| {
            // 42501: insufficient privilege; 54000: program limit exceeded; 42000: syntax or
            // access rule violation.
            let code = match &err {
                crate::query::Error::Tenancy(_) => "42501",
                crate::query::Error::Memory { .. }
                | crate::query::Error::Timeout(_)
                | crate::query::Error::TooManyRows(_) => "54000",
                e if e.is_user_error() => "42000",
                _ => "XX000",
            };
            user_error(code, err.to_string())
        })?;
        Ok(vec![Response::Query(encode(&output)?)])
    }
}

/// The PostgreSQL type a column is announced with.
fn pg_type(data_type: &DataType) -> Type {
    match data_type {
        DataType::Int8 | DataType::Int16 | DataType::UInt8 => Type::INT2,
        DataType::Int32 | DataType::UInt16 => Type::INT4,
        DataType::Int64 | DataType::UInt32 => Type::INT8,
        DataType::Float32 => Type::FLOAT4,
        DataType::Float64 => Type::FLOAT8,
        DataType::Boolean => Type::BOOL,
        DataType::Timestamp(_, Some(_)) => Type::TIMESTAMPTZ,
        DataType::Timestamp(_, None) => Type::TIMESTAMP,
        _ => Type::TEXT,
    }
}

fn encode_error(err: impl std::fmt::Display) -> PgWireError {
    user_error("XX000", format!("cannot encode the result: {err}"))
}

/// The rows as text-format data rows.
fn encode(output: &QueryOutput) -> PgWireResult<QueryResponse> {
    let fields: Vec<FieldInfo> = output
        .schema
        .fields()
        .iter()
        .map(|f| {
            FieldInfo::new(
                f.name().clone(),
                None,
                None,
                pg_type(f.data_type()),
                FieldFormat::Text,
            )
        })
        .collect();
    let fields = Arc::new(fields);
    let mut encoder = DataRowEncoder::new(Arc::clone(&fields));
    let options = FormatOptions::default().with_display_error(true);
    let mut rows = Vec::new();
    for batch in &output.batches {
        encode_batch(batch, &options, &mut encoder, &mut rows)?;
    }
    Ok(QueryResponse::new(
        fields,
        stream::iter(rows.into_iter().map(Ok)),
    ))
}

fn encode_batch(
    batch: &RecordBatch,
    options: &FormatOptions,
    encoder: &mut DataRowEncoder,
    rows: &mut Vec<pgwire::messages::data::DataRow>,
) -> PgWireResult<()> {
    let formatters = batch
        .columns()
        .iter()
        .map(|c| ArrayFormatter::try_new(c.as_ref(), options))
        .collect::<Result<Vec<_>, _>>()
        .map_err(encode_error)?;
    for row in 0..batch.num_rows() {
        for (column, formatter) in batch.columns().iter().zip(&formatters) {
            let value = if column.is_null(row) {
                None
            } else if column.data_type() == &DataType::Boolean {
                // PostgreSQL's text form of a boolean is t / f.
                Some(
                    if formatter.value(row).to_string() == "true" {
                        "t"
                    } else {
                        "f"
                    }
                    .to_owned(),
                )
            } else {
                Some(formatter.value(row).to_string())
            };
            encoder.encode_field(&value)?;
        }
        rows.push(encoder.take_row());
    }
    Ok(())
}
