//! Arrow Flight SQL (for ADBC and JDBC Flight SQL drivers), with `arrow-flight`.
//!
//! Authentication: every call carries `authorization: Bearer <API token>`; a client that
//! prefers a handshake sends Basic auth with any user name and the token as the password and
//! gets the bearer header back. Statements: `GetFlightInfo(CommandStatementQuery)` runs the
//! query (through [`SqlAccess`], so the token's projects, the plan checks and the limits apply)
//! and keeps the result under a random handle until the client's `DoGet` fetches it, within
//! the bounds of [`results`] (count, bytes and time, per token and in total); results are
//! bounded by `query.max_rows`. Prepared statements with
//! parameters ([`prepared`]) run the same way once bound. The metadata calls ([`catalog`]) list
//! the catalog `faultline`, the schema `public` and the tables `events` and `issues`; the other
//! calls (transactions, Substrait, updates) answer "unimplemented".

mod catalog;
mod prepared;
mod results;

use std::pin::Pin;
use std::sync::Arc;

use arrow_flight::decode::FlightRecordBatchStream;
use arrow_flight::encode::FlightDataEncoderBuilder;
use arrow_flight::error::FlightError;
use arrow_flight::flight_service_server::{FlightService, FlightServiceServer};
use arrow_flight::sql::server::FlightSqlService;
use arrow_flight::sql::server::PeekableFlightDataStream;
use arrow_flight::sql::{
    ActionClosePreparedStatementRequest, ActionCreatePreparedStatementRequest,
    ActionCreatePreparedStatementResult, CommandGetCatalogs, CommandGetDbSchemas,
    CommandGetSqlInfo, CommandGetTableTypes, CommandGetTables, CommandPreparedStatementQuery,
    CommandStatementQuery, DoPutPreparedStatementResult, ProstMessageExt, SqlInfo,
    TicketStatementQuery,
};
use arrow_flight::{
    Action, FlightDescriptor, FlightEndpoint, FlightInfo, HandshakeRequest, HandshakeResponse,
    IpcMessage, SchemaAsIpc, Ticket,
};
use base64::Engine;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::{Schema, SchemaRef};
use datafusion::arrow::ipc::writer::IpcWriteOptions;
use datafusion::common::ParamValues;
use futures::{Stream, StreamExt, TryStreamExt, stream};
use prost::Message;
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tonic::metadata::MetadataMap;
use tonic::{Request, Response, Status, Streaming};

use super::SqlAccess;
use crate::query::{self, QueryOutput};
use crate::tenancy::Principal;

/// Serves Flight SQL on `listener` until `shutdown`.
pub async fn serve(
    listener: TcpListener,
    access: SqlAccess,
    shutdown: CancellationToken,
) -> Result<(), tonic::transport::Error> {
    let bounds = results::Bounds::from_config(access.query.limits());
    let service = FlightServiceServer::new(FlightSql {
        access,
        results: results::Results::new(bounds),
        statements: prepared::Statements::default(),
    });
    tonic::transport::Server::builder()
        .add_service(service)
        .serve_with_incoming_shutdown(tokio_stream_listener(listener), async move {
            shutdown.cancelled().await
        })
        .await
}

/// The accepted connections of `listener` as a stream.
fn tokio_stream_listener(
    listener: TcpListener,
) -> impl Stream<Item = std::io::Result<tokio::net::TcpStream>> {
    stream::unfold(listener, |listener| async move {
        let accepted = listener.accept().await.map(|(socket, _)| socket);
        Some((accepted, listener))
    })
}

pub(crate) struct FlightSql {
    access: SqlAccess,
    results: results::Results,
    statements: prepared::Statements,
}

fn bearer(metadata: &MetadataMap) -> Result<&str, Status> {
    let value = metadata
        .get("authorization")
        .ok_or_else(|| {
            Status::unauthenticated("missing API token: send authorization: Bearer <token>")
        })?
        .to_str()
        .map_err(|_| Status::unauthenticated("the authorization header is not text"))?;
    let (scheme, token) = value
        .split_once(' ')
        .ok_or_else(|| Status::unauthenticated("authorization must be Bearer <token>"))?;
    if scheme.eq_ignore_ascii_case("bearer") {
        Ok(token.trim())
    } else {
        Err(Status::unauthenticated(
            "authorization must be Bearer <token>",
        ))
    }
}

/// A refused login; an object store that did not answer is no wrong token.
fn login_status(err: crate::tenancy::Error) -> Status {
    if err.is_unavailable() {
        Status::unavailable(err.to_string())
    } else {
        Status::unauthenticated(err.to_string())
    }
}

fn query_status(err: query::Error) -> Status {
    let message = err.to_string();
    match err {
        e if e.is_unavailable() => Status::unavailable(message),
        query::Error::Tenancy(_) => Status::permission_denied(message),
        query::Error::Memory { .. }
        | query::Error::TooManyRows(_)
        | query::Error::FunctionLimit(_)
        | query::Error::Busy(_) => Status::resource_exhausted(message),
        query::Error::Timeout(_) => Status::deadline_exceeded(message),
        e if e.is_user_error() => Status::invalid_argument(message),
        _ => {
            tracing::error!(cause = %message, "flight sql query failed");
            Status::internal("internal error; see the server log")
        }
    }
}

impl FlightSql {
    async fn principal(&self, metadata: &MetadataMap) -> Result<Arc<Principal>, Status> {
        let token = bearer(metadata)?;
        self.access.login(token).await.map_err(login_status)
    }

    /// Keeps `output` for the same token's `DoGet`; the `FlightInfo` that points at it.
    fn keep(
        &self,
        principal: &Principal,
        output: QueryOutput,
        descriptor: FlightDescriptor,
    ) -> Result<FlightInfo, Status> {
        let handle = hex::encode(rand::random::<[u8; 16]>());
        let ticket = TicketStatementQuery {
            statement_handle: handle.clone().into(),
        };
        let rows: usize = output.batches.iter().map(|b| b.num_rows()).sum();
        let info = FlightInfo::new()
            .try_with_schema(&output.schema)
            .map_err(|e| Status::internal(e.to_string()))?
            .with_endpoint(
                FlightEndpoint::new().with_ticket(Ticket::new(ticket.as_any().encode_to_vec())),
            )
            .with_descriptor(descriptor)
            .with_total_records(rows as i64);
        self.results.keep(handle, &principal.token_id, output)?;
        Ok(info)
    }

    /// The token's tables and their columns.
    async fn tables(&self, principal: &Principal) -> Result<Vec<(String, SchemaRef)>, Status> {
        let ctx = self.access.session(principal).await.map_err(query_status)?;
        super::table_schemas(&ctx)
            .await
            .map_err(|e| Status::internal(e.to_string()))
    }
}

/// A metadata `FlightInfo`: the command itself is the ticket.
fn metadata_info(
    command: impl ProstMessageExt,
    schema: &Schema,
    descriptor: FlightDescriptor,
) -> Result<Response<FlightInfo>, Status> {
    let ticket = Ticket::new(command.as_any().encode_to_vec());
    let info = FlightInfo::new()
        .try_with_schema(schema)
        .map_err(|e| Status::internal(e.to_string()))?
        .with_endpoint(FlightEndpoint::new().with_ticket(ticket))
        .with_descriptor(descriptor);
    Ok(Response::new(info))
}

/// One metadata batch as a `DoGet` stream.
fn batch_stream(
    batch: Result<RecordBatch, FlightError>,
) -> Result<Response<FlightStream<arrow_flight::FlightData>>, Status> {
    let batch = batch.map_err(|e| Status::internal(e.to_string()))?;
    let data = FlightDataEncoderBuilder::new()
        .with_schema(batch.schema())
        .build(stream::iter([Ok(batch)]))
        .map_err(Status::from)
        .boxed();
    Ok(Response::new(data))
}

fn schema_ipc(schema: &Schema) -> Result<bytes::Bytes, Status> {
    let IpcMessage(bytes) = SchemaAsIpc::new(schema, &IpcWriteOptions::default())
        .try_into()
        .map_err(|e: datafusion::arrow::error::ArrowError| Status::internal(e.to_string()))?;
    Ok(bytes)
}

/// Base64 as Basic credentials arrive: the ADBC Flight SQL driver (Go) sends them without `=`
/// padding, other clients with it.
const BASIC_BASE64: GeneralPurpose = GeneralPurpose::new(
    &base64::alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// The password of Basic credentials `user:password` (the API token; the user name is ignored).
fn basic_password(encoded: &str) -> Result<String, Status> {
    let decoded = BASIC_BASE64
        .decode(encoded.trim())
        .map_err(|_| Status::unauthenticated("basic credentials are not base64"))?;
    let text = String::from_utf8(decoded)
        .map_err(|_| Status::unauthenticated("basic credentials are not text"))?;
    let (_, password) = text.split_once(':').unwrap_or(("", &text));
    Ok(password.to_owned())
}

type FlightStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

#[tonic::async_trait]
impl FlightSqlService for FlightSql {
    type FlightService = FlightSql;

    async fn do_handshake(
        &self,
        request: Request<Streaming<HandshakeRequest>>,
    ) -> Result<Response<FlightStream<HandshakeResponse>>, Status> {
        let header = request
            .metadata()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        let token = match header.split_once(' ') {
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("basic") => basic_password(rest)?,
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("bearer") => rest.trim().to_owned(),
            _ => {
                return Err(Status::unauthenticated(
                    "send Basic auth with the API token as the password, or Bearer <token>",
                ));
            }
        };
        self.access.login(&token).await.map_err(login_status)?;
        let reply = HandshakeResponse {
            protocol_version: 0,
            payload: token.clone().into(),
        };
        let mut response: Response<FlightStream<HandshakeResponse>> =
            Response::new(Box::pin(stream::iter([Ok(reply)])));
        let value = format!("Bearer {token}")
            .parse()
            .map_err(|_| Status::unauthenticated("the token is not a valid header value"))?;
        response.metadata_mut().insert("authorization", value);
        Ok(response)
    }

    async fn get_flight_info_statement(
        &self,
        query: CommandStatementQuery,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let principal = self.principal(request.metadata()).await?;
        let output = self
            .access
            .run(&principal, &query.query)
            .await
            .inspect(|_| crate::metrics::record_query::<()>("flight", &Ok(())))
            .inspect_err(|e| crate::metrics::query_failed("flight", e))
            .map_err(query_status)?;
        let info = self.keep(&principal, output, request.into_inner())?;
        Ok(Response::new(info))
    }

    async fn do_get_statement(
        &self,
        ticket: TicketStatementQuery,
        request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        let principal = self.principal(request.metadata()).await?;
        let handle = String::from_utf8_lossy(&ticket.statement_handle).into_owned();
        let output = self
            .results
            .take(&handle, &principal.token_id)
            .ok_or_else(|| {
                Status::not_found("no such result (fetched already, expired or dropped)")
            })?;
        let batches = stream::iter(output.batches.into_iter().map(Ok));
        let data = FlightDataEncoderBuilder::new()
            .with_schema(output.schema)
            .build(batches)
            .map_err(Status::from)
            .boxed();
        Ok(Response::new(data))
    }

    async fn do_action_create_prepared_statement(
        &self,
        query: ActionCreatePreparedStatementRequest,
        request: Request<Action>,
    ) -> Result<ActionCreatePreparedStatementResult, Status> {
        let principal = self.principal(request.metadata()).await?;
        let ctx = self
            .access
            .session(&principal)
            .await
            .map_err(query_status)?;
        let plan = self
            .access
            .query
            .plan(&ctx, &query.query)
            .await
            .map_err(query_status)?;
        let parameters = super::parameter_types(&plan).map_err(Status::invalid_argument)?;
        let dataset = schema_ipc(plan.schema().as_arrow())?;
        let parameter_schema = schema_ipc(&prepared::parameter_schema(&parameters))?;
        let handle = self.statements.insert(prepared::Prepared::new(
            principal.token_id.clone(),
            query.query,
            parameters,
        ));
        Ok(ActionCreatePreparedStatementResult {
            prepared_statement_handle: handle.into(),
            dataset_schema: dataset,
            parameter_schema,
        })
    }

    async fn do_put_prepared_statement_query(
        &self,
        query: CommandPreparedStatementQuery,
        request: Request<PeekableFlightDataStream>,
    ) -> Result<DoPutPreparedStatementResult, Status> {
        let principal = self.principal(request.metadata()).await?;
        let handle = query.prepared_statement_handle;
        let statement = self.statements.get(&handle, &principal.token_id)?;
        let batches: Vec<RecordBatch> = FlightRecordBatchStream::new_from_flight_data(
            request.into_inner().map_err(FlightError::from),
        )
        .try_collect()
        .await
        .map_err(|e| Status::invalid_argument(format!("cannot read the parameters: {e}")))?;
        let values = prepared::values(&batches, &statement.parameters)?;
        self.statements.bind(&handle, values);
        Ok(DoPutPreparedStatementResult {
            prepared_statement_handle: Some(handle),
        })
    }

    async fn get_flight_info_prepared_statement(
        &self,
        query: CommandPreparedStatementQuery,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        let principal = self.principal(request.metadata()).await?;
        let statement = self
            .statements
            .get(&query.prepared_statement_handle, &principal.token_id)?;
        if statement.bound.is_none() && !statement.parameters.is_empty() {
            return Err(Status::invalid_argument(format!(
                "the statement has {} parameters; bind them first",
                statement.parameters.len()
            )));
        }
        let ctx = self
            .access
            .session(&principal)
            .await
            .map_err(query_status)?;
        let service = &self.access.query;
        let mut plan = service
            .plan(&ctx, &statement.sql)
            .await
            .inspect_err(|e| crate::metrics::query_failed("flight", e))
            .map_err(query_status)?;
        if let Some(values) = statement.bound {
            plan = plan
                .with_param_values(ParamValues::from(values))
                .map_err(|e| Status::invalid_argument(e.to_string()))?;
        }
        let output = service.execute(Some(&principal.token_id), &ctx, plan).await;
        crate::metrics::record_query("flight", &output);
        let output = output.map_err(query_status)?;
        let info = self.keep(&principal, output, request.into_inner())?;
        Ok(Response::new(info))
    }

    async fn do_action_close_prepared_statement(
        &self,
        query: ActionClosePreparedStatementRequest,
        request: Request<Action>,
    ) -> Result<(), Status> {
        let principal = self.principal(request.metadata()).await?;
        self.statements
            .remove(&query.prepared_statement_handle, &principal.token_id);
        Ok(())
    }

    async fn get_flight_info_catalogs(
        &self,
        query: CommandGetCatalogs,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.principal(request.metadata()).await?;
        let schema = query.into_builder().schema();
        metadata_info(query, &schema, request.into_inner())
    }

    async fn do_get_catalogs(
        &self,
        query: CommandGetCatalogs,
        request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        self.principal(request.metadata()).await?;
        batch_stream(catalog::catalogs(query))
    }

    async fn get_flight_info_schemas(
        &self,
        query: CommandGetDbSchemas,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.principal(request.metadata()).await?;
        let schema = query.clone().into_builder().schema();
        metadata_info(query, &schema, request.into_inner())
    }

    async fn do_get_schemas(
        &self,
        query: CommandGetDbSchemas,
        request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        self.principal(request.metadata()).await?;
        batch_stream(catalog::schemas(query))
    }

    async fn get_flight_info_tables(
        &self,
        query: CommandGetTables,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.principal(request.metadata()).await?;
        let schema = query.clone().into_builder().schema();
        metadata_info(query, &schema, request.into_inner())
    }

    async fn do_get_tables(
        &self,
        query: CommandGetTables,
        request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        let principal = self.principal(request.metadata()).await?;
        let tables = self.tables(&principal).await?;
        batch_stream(catalog::tables(query, &tables))
    }

    async fn get_flight_info_table_types(
        &self,
        query: CommandGetTableTypes,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.principal(request.metadata()).await?;
        let schema = query.into_builder().schema();
        metadata_info(query, &schema, request.into_inner())
    }

    async fn do_get_table_types(
        &self,
        query: CommandGetTableTypes,
        request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        self.principal(request.metadata()).await?;
        batch_stream(catalog::table_types(query))
    }

    async fn get_flight_info_sql_info(
        &self,
        query: CommandGetSqlInfo,
        request: Request<FlightDescriptor>,
    ) -> Result<Response<FlightInfo>, Status> {
        self.principal(request.metadata()).await?;
        let schema = query.clone().into_builder(&catalog::SQL_INFO).schema();
        metadata_info(query, &schema, request.into_inner())
    }

    async fn do_get_sql_info(
        &self,
        query: CommandGetSqlInfo,
        request: Request<Ticket>,
    ) -> Result<Response<<Self as FlightService>::DoGetStream>, Status> {
        self.principal(request.metadata()).await?;
        batch_stream(query.into_builder(&catalog::SQL_INFO).build())
    }

    async fn register_sql_info(&self, _id: i32, _result: &SqlInfo) {}
}

#[cfg(test)]
mod tests {
    use base64::prelude::{BASE64_STANDARD, BASE64_STANDARD_NO_PAD};

    use super::*;

    #[test]
    fn basic_credentials_decode_with_and_without_padding() {
        // `user:token` of every length mod 3, so padding of none, one and two `=`.
        for user in ["a", "ab", "abc"] {
            let credentials = format!("{user}:flt_secret");
            for engine in [&BASE64_STANDARD, &BASE64_STANDARD_NO_PAD] {
                let encoded = engine.encode(&credentials);
                assert_eq!(basic_password(&encoded).unwrap(), "flt_secret", "{encoded}");
            }
        }
        assert_eq!(
            basic_password("not base64!").unwrap_err().message(),
            "basic credentials are not base64"
        );
    }
}
