//! The one place where errors become HTTP responses.
//!
//! Bodies follow Relay: `{"detail": "<message>"}`; the same message is in `X-Sentry-Error`.
//! 4xx are logged at debug, 5xx at error; internal details of 5xx never reach the client.

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde_json::json;

use crate::{alerts, backup, ingest, issues, maintenance, people, query, tenancy};

#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    #[error(transparent)]
    Ingest(#[from] ingest::Error),
    #[error(transparent)]
    Query(#[from] query::Error),
    #[error(transparent)]
    Tenancy(#[from] tenancy::Error),
    #[error(transparent)]
    Backup(#[from] backup::Error),
    #[error(transparent)]
    Maintenance(#[from] maintenance::Error),
    #[error(transparent)]
    Issues(#[from] issues::Error),
    #[error(transparent)]
    People(#[from] people::Error),
    #[error(transparent)]
    Saved(#[from] query::saved::Error),
    #[error(transparent)]
    Releases(#[from] crate::releases::Error),
    #[error(transparent)]
    Alerts(#[from] alerts::Error),
    #[error(transparent)]
    Sourcemaps(#[from] crate::sourcemaps::Error),
    #[error(transparent)]
    Attachments(#[from] crate::attachments::Error),
    #[error("the session has ended or expired: log in again")]
    SessionEnded,
    #[error("{0}")]
    BadRequest(String),
    #[error("missing API token: send Authorization: Bearer <token>")]
    MissingToken,
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    Forbidden(String),
    #[error("request body exceeds {limit_name} of {limit} bytes")]
    BodyTooLarge {
        limit_name: &'static str,
        limit: usize,
    },
    #[error("request body not received within server.body_read_timeout of {timeout:?}")]
    BodyTimeout { timeout: std::time::Duration },
}

/// How long a client should wait after the WAL could not be written (e.g. a full disk).
const WAL_RETRY_AFTER: std::time::Duration = std::time::Duration::from_secs(30);
/// When a client refused for too many running queries should retry.
const BUSY_RETRY_AFTER: std::time::Duration = std::time::Duration::from_secs(1);
/// How long a client should wait when the object store did not answer.
const STORE_RETRY_AFTER: std::time::Duration = std::time::Duration::from_secs(5);

fn retry_after(err: &ApiError) -> Option<(std::time::Duration, Option<String>)> {
    match err {
        ApiError::Ingest(
            err @ (ingest::Error::RateLimited { .. } | ingest::Error::OverQuota { .. }),
        ) => {
            let refusals = err.refusals();
            Some((refusals.retry_after(), refusals.header()))
        }
        ApiError::Ingest(ingest::Error::Backpressure { retry_after }) => Some((*retry_after, None)),
        ApiError::Ingest(ingest::Error::Busy { .. }) => {
            Some((std::time::Duration::from_secs(1), None))
        }
        ApiError::Ingest(ingest::Error::Wal(_)) => Some((WAL_RETRY_AFTER, None)),
        ApiError::Query(query::Error::Busy(_)) => Some((BUSY_RETRY_AFTER, None)),
        ApiError::People(people::Error::Throttled { retry_after, .. }) => {
            Some((*retry_after, None))
        }
        _ if err.status() == StatusCode::SERVICE_UNAVAILABLE => Some((STORE_RETRY_AFTER, None)),
        _ => None,
    }
}

impl ApiError {
    pub fn status(&self) -> StatusCode {
        use ingest::Error as I;
        match self {
            Self::Ingest(e) if e.is_too_large() => StatusCode::PAYLOAD_TOO_LARGE,
            Self::Ingest(I::MissingAuth | I::Auth(_)) => StatusCode::UNAUTHORIZED,
            Self::Ingest(I::Tenancy(e)) | Self::Tenancy(e) => tenancy_status(e),
            Self::Ingest(I::ProjectMismatch { .. }) => StatusCode::UNAUTHORIZED,
            Self::Ingest(I::RateLimited { .. } | I::OverQuota { .. }) => {
                StatusCode::TOO_MANY_REQUESTS
            }
            Self::Ingest(I::Backpressure { .. } | I::Busy { .. }) => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            Self::Ingest(I::Wal(_) | I::Attachment(_)) => StatusCode::SERVICE_UNAVAILABLE,
            Self::Ingest(I::Worker(_)) => StatusCode::INTERNAL_SERVER_ERROR,
            Self::Ingest(_) => StatusCode::BAD_REQUEST,
            Self::Query(e) => query_status(e),
            Self::Issues(issues::Error::UnknownIssue { .. }) => StatusCode::NOT_FOUND,
            Self::Issues(
                issues::Error::BadIgnore
                | issues::Error::NoRelease { .. }
                | issues::Error::MergeIntoSelf { .. }
                | issues::Error::MergeAcrossProjects { .. },
            ) => StatusCode::BAD_REQUEST,
            Self::Issues(issues::Error::IsMerged { .. } | issues::Error::NotMerged { .. }) => {
                StatusCode::CONFLICT
            }
            Self::Issues(issues::Error::Query(e)) => query_status(e),
            Self::Issues(issues::Error::Store(e)) if e.is_unavailable() => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            Self::Saved(query::saved::Error::Unknown { .. }) => StatusCode::NOT_FOUND,
            Self::Saved(query::saved::Error::Store(e)) if e.is_unavailable() => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            Self::Saved(query::saved::Error::Store(_)) => StatusCode::INTERNAL_SERVER_ERROR,
            Self::Saved(_) => StatusCode::BAD_REQUEST,
            Self::Releases(crate::releases::Error::Unknown { .. }) => StatusCode::NOT_FOUND,
            Self::Releases(crate::releases::Error::Store(e)) if e.is_unavailable() => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            Self::Releases(crate::releases::Error::Store(_)) => StatusCode::INTERNAL_SERVER_ERROR,
            Self::Releases(_) => StatusCode::BAD_REQUEST,
            Self::Issues(_) => StatusCode::INTERNAL_SERVER_ERROR,
            Self::Backup(backup::Error::NoDestination) => StatusCode::CONFLICT,
            Self::Backup(backup::Error::NotFound { .. }) => StatusCode::NOT_FOUND,
            Self::Backup(_) | Self::Maintenance(_) => StatusCode::INTERNAL_SERVER_ERROR,
            Self::People(e) => people_status(e),
            Self::Alerts(e) => alerts_status(e),
            Self::Sourcemaps(crate::sourcemaps::Error::Store(e)) if e.is_unavailable() => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            Self::Sourcemaps(crate::sourcemaps::Error::Store(_)) => {
                StatusCode::INTERNAL_SERVER_ERROR
            }
            Self::Sourcemaps(crate::sourcemaps::Error::ChunkTooLarge { .. }) => {
                StatusCode::PAYLOAD_TOO_LARGE
            }
            Self::Sourcemaps(_) => StatusCode::BAD_REQUEST,
            Self::Attachments(e) => attachments_status(e),
            Self::SessionEnded => StatusCode::UNAUTHORIZED,
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::MissingToken => StatusCode::UNAUTHORIZED,
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::Forbidden(_) => StatusCode::FORBIDDEN,
            Self::BodyTooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::BodyTimeout { .. } => StatusCode::REQUEST_TIMEOUT,
        }
    }
}

fn alerts_status(err: &alerts::Error) -> StatusCode {
    use alerts::Error as A;
    match err {
        A::NotFound { .. } => StatusCode::NOT_FOUND,
        A::Declared { .. } | A::Exists { .. } | A::InUse { .. } => StatusCode::CONFLICT,
        A::Invalid { .. } | A::Secret { .. } => StatusCode::BAD_REQUEST,
        A::Store(e) if e.is_unavailable() => StatusCode::SERVICE_UNAVAILABLE,
        A::Query(e) => query_status(e),
        A::Store(_) | A::Tenancy(_) | A::Column(_) | A::Client(_) => {
            StatusCode::INTERNAL_SERVER_ERROR
        }
    }
}

fn query_status(err: &query::Error) -> StatusCode {
    use query::Error as Q;
    match err {
        e if e.is_unavailable() => StatusCode::SERVICE_UNAVAILABLE,
        Q::Timeout(_) => StatusCode::REQUEST_TIMEOUT,
        Q::Memory { .. } | Q::TooManyRows(_) | Q::FunctionLimit(_) => StatusCode::PAYLOAD_TOO_LARGE,
        Q::Busy(_) => StatusCode::SERVICE_UNAVAILABLE,
        Q::Tenancy(e) => tenancy_status(e),
        e if e.is_user_error() => StatusCode::BAD_REQUEST,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

fn people_status(err: &people::Error) -> StatusCode {
    use people::Error as P;
    match err {
        P::WeakPassword(_)
        | P::InvalidRole { .. }
        | P::InvalidEmail { .. }
        | P::InvalidName
        | P::InvalidOrg { .. }
        | P::Missing(_)
        | P::InvalidTeam { .. } => StatusCode::BAD_REQUEST,
        P::EmailTaken { .. }
        | P::TeamTaken { .. }
        | P::LastOwner
        | P::OwnerExists
        | P::TotpEnabled
        | P::NoTotpEnrolment
        | P::TotpDisabled => StatusCode::CONFLICT,
        P::UnknownUser { .. } | P::UnknownTeam { .. } | P::UnknownSession { .. } | P::BadLink => {
            StatusCode::NOT_FOUND
        }
        P::BadLogin
        | P::CodeRequired
        | P::BadCode
        | P::Disabled
        | P::PasskeyRequired
        | P::BadPasskey(_) => StatusCode::UNAUTHORIZED,
        P::Ceremony | P::PasskeyName | P::NoPasskeys => StatusCode::BAD_REQUEST,
        P::UnknownPasskey { .. } => StatusCode::NOT_FOUND,
        P::PasskeySetup(_) => StatusCode::INTERNAL_SERVER_ERROR,
        P::WrongPassword | P::Forbidden(_) => StatusCode::FORBIDDEN,
        P::Throttled { .. } => StatusCode::TOO_MANY_REQUESTS,
        P::PasswordLoginOff => StatusCode::FORBIDDEN,
        P::Sso(e) => sso_status(e),
        P::Store(e) if e.is_unavailable() => StatusCode::SERVICE_UNAVAILABLE,
        P::Hash(_) | P::Store(_) => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

fn sso_status(err: &people::sso::Error) -> StatusCode {
    use people::sso::Error as S;
    match err {
        S::Off => StatusCode::NOT_FOUND,
        S::State => StatusCode::BAD_REQUEST,
        S::Refused(_) | S::IdToken(_) => StatusCode::UNAUTHORIZED,
        S::NoAccount { .. } | S::NoEmail | S::LastLogin => StatusCode::FORBIDDEN,
        S::IdentityTaken { .. } | S::AlreadyLinked { .. } => StatusCode::CONFLICT,
        S::NotLinked => StatusCode::NOT_FOUND,
        S::OtherSession => StatusCode::BAD_REQUEST,
        // the identity provider did not answer as it should
        S::Provider { .. } => StatusCode::BAD_GATEWAY,
        S::SecretFile { .. } | S::Config { .. } => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

fn tenancy_status(err: &tenancy::Error) -> StatusCode {
    use tenancy::Error as T;
    match err {
        // The object store did not answer (tokens and projects are read from it): retry later.
        e if e.is_unavailable() => StatusCode::SERVICE_UNAVAILABLE,
        T::UnknownProject { .. } => StatusCode::FORBIDDEN,
        T::BadKey { .. } | T::DisabledKey { .. } | T::BadToken => StatusCode::UNAUTHORIZED,
        T::UnknownKey { .. } => StatusCode::NOT_FOUND,
        T::ConfigKey { .. }
        | T::LastActiveKey { .. }
        | T::ConfigGrouping { .. }
        | T::ConfigPrivacy { .. } => StatusCode::CONFLICT,
        T::InvalidRateLimit | T::GroupingRules { .. } | T::PrivacyRules { .. } => {
            StatusCode::BAD_REQUEST
        }
        T::MissingScope { .. } | T::ScopeNotHeld { .. } => StatusCode::FORBIDDEN,
        T::UnknownToken { .. } | T::UnknownProjectName { .. } => StatusCode::NOT_FOUND,
        T::InvalidName { .. } | T::InvalidScope { .. } | T::NoScopes | T::InvalidTokenName => {
            StatusCode::BAD_REQUEST
        }
        T::NameTaken { .. } | T::ConfigProject { .. } | T::IdTaken { .. } | T::IdChange { .. } => {
            StatusCode::CONFLICT
        }
        T::InvalidRegistration { .. } => StatusCode::BAD_REQUEST,
        T::ReadTokenFile { .. } | T::Store(_) => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

fn attachments_status(e: &crate::attachments::Error) -> StatusCode {
    use crate::attachments::Error as A;
    match e {
        A::BadId { .. } | A::NotFound { .. } => StatusCode::NOT_FOUND,
        A::Query(e) => query_status(e),
        A::Store(e) if e.is_unavailable() => StatusCode::SERVICE_UNAVAILABLE,
        A::Store(_) | A::Shape(_) => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let detail = if status.is_server_error() {
            tracing::error!(cause = %self, "request failed");
            match (&self, status) {
                // the server's own paths and OS error texts stay in its log
                (Self::Ingest(ingest::Error::Wal(err)), _) => format!(
                    "the server cannot write events to its disk right now ({}); retry later",
                    err.client_reason()
                ),
                (Self::Ingest(ingest::Error::Attachment(_)), _) => {
                    "the server cannot store attachments right now; retry later".to_owned()
                }
                (_, StatusCode::SERVICE_UNAVAILABLE) => self.to_string(),
                // what the identity provider answered helps whoever configures it
                (Self::People(people::Error::Sso(_)), StatusCode::BAD_GATEWAY) => self.to_string(),
                _ => "internal error; see the server log".to_owned(),
            }
        } else {
            tracing::debug!(cause = %self, status = status.as_u16(), "request rejected");
            self.to_string()
        };
        let mut response = (status, axum::Json(json!({ "detail": detail }))).into_response();
        let headers = response.headers_mut();
        if let Ok(value) = HeaderValue::from_str(&detail.replace(['\r', '\n'], " ")) {
            headers.insert("x-sentry-error", value);
        }
        if let Some((after, limits)) = retry_after(&self) {
            headers.insert(
                header::RETRY_AFTER,
                HeaderValue::from(after.as_secs().max(1)),
            );
            if let Some(limits) = limits.and_then(|l| HeaderValue::from_str(&l).ok()) {
                headers.insert("x-sentry-rate-limits", limits);
            }
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use datafusion::error::DataFusionError;

    use super::*;

    fn status(err: DataFusionError) -> StatusCode {
        ApiError::Query(query::Error::Sql(Box::new(err))).status()
    }

    #[test]
    fn sql_errors_are_the_users_and_reading_stored_files_is_the_servers() {
        assert_eq!(
            status(DataFusionError::Execution("Divide by zero".to_owned())),
            StatusCode::BAD_REQUEST
        );
        assert_eq!(
            status(DataFusionError::NotImplemented("x".to_owned())),
            StatusCode::BAD_REQUEST
        );
        let io = std::io::Error::other("disk gone");
        assert_eq!(
            status(DataFusionError::Context(
                "scan".to_owned(),
                Box::new(DataFusionError::IoError(io))
            )),
            StatusCode::INTERNAL_SERVER_ERROR
        );
        let gone = object_store::Error::Generic {
            store: "S3",
            source: "connection refused".into(),
        };
        assert_eq!(
            status(DataFusionError::Context(
                "scan".to_owned(),
                Box::new(DataFusionError::ObjectStore(Box::new(gone)))
            )),
            StatusCode::SERVICE_UNAVAILABLE
        );
        assert_eq!(
            ApiError::Query(query::Error::Plan("No field named nope".to_owned())).status(),
            StatusCode::BAD_REQUEST
        );
    }
}
