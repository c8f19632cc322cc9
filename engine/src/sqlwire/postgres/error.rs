//! Errors as PostgreSQL `ErrorResponse`s with the SQLSTATE a client (or a BI tool) branches on.

use pgwire::error::{ErrorInfo, PgWireError};

use crate::query::Error;

/// An `ERROR` with `code` (SQLSTATE) and `message`.
pub(super) fn user_error(code: &str, message: impl Into<String>) -> PgWireError {
    PgWireError::UserError(Box::new(ErrorInfo::new(
        "ERROR".to_owned(),
        code.to_owned(),
        message.into(),
    )))
}

/// An error of the server, not of the SQL (`XX000`).
pub(super) fn internal(err: impl std::fmt::Display) -> PgWireError {
    user_error("XX000", format!("cannot encode the result: {err}"))
}

/// A syntax error (`42601`).
pub(super) fn syntax(err: impl std::fmt::Display) -> PgWireError {
    user_error("42601", err.to_string())
}

/// The object store did not answer (`58030`, io_error).
pub(super) fn unavailable(err: &crate::tenancy::Error) -> PgWireError {
    user_error("58030", err.to_string())
}

/// The SQLSTATE of a query error, with the same message as over HTTP.
pub(super) fn query_error(err: &Error) -> PgWireError {
    user_error(sqlstate(err), err.to_string())
}

fn sqlstate(err: &Error) -> &'static str {
    match err {
        // io_error: the object store did not answer (manifest, tokens, projects or files)
        e if e.is_unavailable() => "58030",
        // insufficient_privilege: a scope the token lacks, or a plan the guard refuses
        Error::Tenancy(_) | Error::Refused(_) => "42501",
        // out_of_memory, query_canceled (statement timeout), program_limit_exceeded
        Error::Memory { .. } => "53200",
        Error::Timeout(_) => "57014",
        Error::TooManyRows(_) | Error::FunctionLimit(_) => "54000",
        // statement_too_complex: longer or deeper than the parser limits
        Error::TooLong { .. } | Error::TooDeep { .. } => "54001",
        // insufficient_resources: too many queries running; retry
        Error::Busy(_) => "53000",
        Error::Plan(message) => plan_sqlstate(message),
        Error::Sql(source) => match source.find_root() {
            datafusion::error::DataFusionError::SQL(..) => "42601",
            datafusion::error::DataFusionError::SchemaError(..) => "42703",
            datafusion::error::DataFusionError::NotImplemented(_) => "0A000",
            _ if err.is_user_error() => "42000",
            _ => "XX000",
        },
        e if e.is_user_error() => "42000",
        _ => "XX000",
    }
}

/// DataFusion's planning errors by what they say: unknown table, column or function.
fn plan_sqlstate(message: &str) -> &'static str {
    if message.starts_with("table '") && message.ends_with("' not found") {
        "42P01" // undefined_table
    } else if message.starts_with("Invalid function") || message.contains("function '") {
        "42883" // undefined_function
    } else if message.contains("No field named") {
        "42703" // undefined_column
    } else {
        "42000"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn planning_errors_get_the_sqlstate_of_what_is_missing() {
        assert_eq!(
            plan_sqlstate("table 'faultline.public.secrets' not found"),
            "42P01"
        );
        assert_eq!(
            plan_sqlstate("Invalid function 'repeat'.\nDid you mean 'replace'?"),
            "42883"
        );
        assert_eq!(sqlstate(&Error::Refused("x".to_owned())), "42501");
        assert_eq!(sqlstate(&Error::TooDeep { limit: 10 }), "54001");
        assert_eq!(sqlstate(&Error::Busy("x".to_owned())), "53000");
        let unanswered = crate::store::Error::Request {
            path: "meta/tokens/x.json".to_owned(),
            source: object_store::Error::Generic {
                store: "S3",
                source: "connection refused".into(),
            },
        };
        assert_eq!(
            sqlstate(&Error::Tenancy(crate::tenancy::Error::Store(unanswered))),
            "58030",
            "an object store that did not answer is no missing privilege"
        );
        assert_eq!(
            sqlstate(&Error::Timeout(std::time::Duration::from_secs(1))),
            "57014"
        );
    }
}
