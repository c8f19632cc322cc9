//! Client of the engine's admin API, as far as the operator uses it: start a backup, read one,
//! list them (`POST/GET /api/0/backups[/{id}]`, bearer admin token, JSON).
//!
//! The operator reaches it on the tracker's `<tracker>-admin` Service, plain HTTP inside the
//! cluster. Every request has a time limit, so an engine that does not answer delays a
//! reconcile by at most [`REQUEST_TIMEOUT`].

use std::time::Duration;

use http::{Method, Request, StatusCode, header};
use http_body_util::{BodyExt, Full};
use hyper::body::Bytes;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use serde::Deserialize;
use serde::de::DeserializeOwned;

/// Longest time one request may take, connection included.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Errors of the admin API client.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot reach the engine at {url}: {source}")]
    Request {
        url: String,
        #[source]
        source: hyper_util::client::legacy::Error,
    },
    #[error("cannot read the engine's answer from {url}: {source}")]
    ReadBody {
        url: String,
        #[source]
        source: hyper::Error,
    },
    #[error("the engine did not answer {url} within {}s", REQUEST_TIMEOUT.as_secs())]
    Timeout { url: String },
    #[error("the engine answered {url} with {status}: {body}")]
    Status {
        url: String,
        status: StatusCode,
        body: String,
    },
    #[error("the engine's answer from {url} is not the expected JSON: {source}")]
    Decode {
        url: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("the engine returned a backup id the operator will not put in a URL: {0:?}")]
    BadId(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// State of a backup as the engine reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum BackupState {
    Running,
    Succeeded,
    Failed,
}

/// One backup, as `GET /api/0/backups[/{id}]` describes it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct BackupInfo {
    pub id: String,
    pub state: BackupState,
    /// RFC 3339.
    #[serde(default)]
    pub started: Option<String>,
    /// RFC 3339, once the backup is over.
    #[serde(default)]
    pub finished: Option<String>,
    #[serde(default)]
    pub files: Option<u64>,
    #[serde(default)]
    pub bytes: Option<u64>,
    #[serde(default)]
    pub error: Option<String>,
}

/// The answer to `POST /api/0/backups`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct StartedBackup {
    pub id: String,
    pub state: BackupState,
}

/// The admin API of one tracker.
#[derive(Clone)]
pub struct AdminApi {
    base: String,
    token: String,
    client: Client<HttpConnector, Full<Bytes>>,
}

impl std::fmt::Debug for AdminApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // never the token
        f.debug_struct("AdminApi")
            .field("base", &self.base)
            .finish()
    }
}

impl AdminApi {
    /// A client for the admin API at `base` (`http://host:port`, no trailing slash).
    pub fn new(base: impl Into<String>, token: impl Into<String>) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(REQUEST_TIMEOUT));
        Self {
            base: base.into().trim_end_matches('/').to_owned(),
            token: token.into(),
            client: Client::builder(TokioExecutor::new()).build(connector),
        }
    }

    /// Starts a backup to the tracker's configured destination.
    pub async fn start_backup(&self) -> Result<StartedBackup> {
        let (status, url, body) = self.send(Method::POST, "/api/0/backups").await?;
        if status != StatusCode::ACCEPTED && status != StatusCode::OK {
            return Err(status_error(url, status, &body));
        }
        let started: StartedBackup = decode(&url, &body)?;
        check_id(&started.id)?;
        Ok(started)
    }

    /// One backup; `None` when the engine does not know the id.
    pub async fn backup(&self, id: &str) -> Result<Option<BackupInfo>> {
        check_id(id)?;
        let (status, url, body) = self
            .send(Method::GET, &format!("/api/0/backups/{id}"))
            .await?;
        match status {
            StatusCode::OK => decode(&url, &body).map(Some),
            StatusCode::NOT_FOUND => Ok(None),
            other => Err(status_error(url, other, &body)),
        }
    }

    /// Every backup the engine knows, newest first (scheduled and on-demand).
    pub async fn backups(&self) -> Result<Vec<BackupInfo>> {
        let (status, url, body) = self.send(Method::GET, "/api/0/backups").await?;
        if status != StatusCode::OK {
            return Err(status_error(url, status, &body));
        }
        decode(&url, &body)
    }

    async fn send(&self, method: Method, path: &str) -> Result<(StatusCode, String, Bytes)> {
        let url = format!("{}{path}", self.base);
        let request = Request::builder()
            .method(method)
            .uri(&url)
            .header(header::AUTHORIZATION, format!("Bearer {}", self.token))
            .header(header::ACCEPT, "application/json")
            .body(Full::new(Bytes::new()))
            .map_err(|_| Error::BadId(path.to_owned()))?;
        let exchange = async {
            let response = self
                .client
                .request(request)
                .await
                .map_err(|source| Error::Request {
                    url: url.clone(),
                    source,
                })?;
            let status = response.status();
            let body = response
                .into_body()
                .collect()
                .await
                .map_err(|source| Error::ReadBody {
                    url: url.clone(),
                    source,
                })?
                .to_bytes();
            Ok((status, body))
        };
        match tokio::time::timeout(REQUEST_TIMEOUT, exchange).await {
            Ok(Ok((status, body))) => Ok((status, url, body)),
            Ok(Err(err)) => Err(err),
            Err(_) => Err(Error::Timeout { url }),
        }
    }
}

fn decode<T: DeserializeOwned>(url: &str, body: &[u8]) -> Result<T> {
    serde_json::from_slice(body).map_err(|source| Error::Decode {
        url: url.to_owned(),
        source,
    })
}

fn status_error(url: String, status: StatusCode, body: &[u8]) -> Error {
    let mut body = String::from_utf8_lossy(body).into_owned();
    body.truncate(300);
    Error::Status { url, status, body }
}

/// Ids go into URL paths: only letters, digits, `.`, `_` and `-`.
fn check_id(id: &str) -> Result<()> {
    let ok = !id.is_empty()
        && !id.starts_with('.')
        && id.len() <= 128
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if ok {
        Ok(())
    } else {
        Err(Error::BadId(id.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_that_would_change_the_url_are_refused() {
        for good in ["20261124T161500Z-ab12", "a.b_c-1"] {
            assert!(check_id(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "..",
            "../admin",
            "a/b",
            "a?b",
            "a b",
            "%2e%2e",
            &"x".repeat(129),
        ] {
            assert!(matches!(check_id(bad), Err(Error::BadId(_))), "{bad:?}");
        }
    }

    #[test]
    fn the_engine_list_reads_as_documented() {
        let body = br#"[{"id":"b2","state":"running","started":"2026-11-24T16:15:00Z","finished":null,"files":3,"bytes":10,"error":null},
                        {"id":"b1","state":"failed","started":"2026-11-23T03:00:00Z","finished":"2026-11-23T03:01:00Z","files":0,"bytes":0,"error":"bucket gone"}]"#;
        let list: Vec<BackupInfo> = decode("http://x/api/0/backups", body).unwrap();
        assert_eq!(list[0].state, BackupState::Running);
        assert_eq!(list[1].error.as_deref(), Some("bucket gone"));
        let err = decode::<Vec<BackupInfo>>("http://x/api/0/backups", b"<html>").unwrap_err();
        assert!(err.to_string().contains("not the expected JSON"), "{err}");
        let unknown_state = br#"[{"id":"b3","state":"exploded"}]"#;
        assert!(decode::<Vec<BackupInfo>>("u", unknown_state).is_err());
    }

    #[test]
    fn the_token_is_never_in_debug_output() {
        let api = AdminApi::new("http://errors-admin.ns.svc:8001/", "secret-token");
        let shown = format!("{api:?}");
        assert!(!shown.contains("secret-token"), "{shown}");
        assert!(
            shown.contains("http://errors-admin.ns.svc:8001\""),
            "trailing slash dropped: {shown}"
        );
    }
}
