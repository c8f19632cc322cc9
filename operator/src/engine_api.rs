//! Client of the engine's admin API, as far as the operator uses it: start a backup, read one,
//! list them (`POST/GET /api/0/backups[/{id}]`), register, unregister or erase a project
//! (`PUT/DELETE /api/0/organizations/{org}/projects/{project}/`, `POST .../erase/`), and read
//! the engine's status
//! (`GET /api/0/status/`: object store, WAL, per-project figures); bearer admin token, JSON.
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
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

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
    #[error(
        "the engine refused alert {what} {name:?} of organization {org:?} ({status}): {message}"
    )]
    RefusedAlert {
        what: &'static str,
        org: String,
        name: String,
        status: StatusCode,
        message: String,
    },
    #[error("the engine refused project {project:?} of organization {org:?} ({status}): {message}")]
    Refused {
        org: String,
        project: String,
        status: StatusCode,
        message: String,
    },
}

impl Error {
    /// True when the engine understood the request and said no (a 4xx answer): trying again
    /// with the same request gives the same answer.
    pub fn is_refusal(&self) -> bool {
        matches!(self, Error::Refused { .. } | Error::RefusedAlert { .. })
    }
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

/// A Sentry-style rate limit: `count` events per `window` seconds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RateLimit {
    pub count: u64,
    pub window: u64,
}

/// A quota (Relay's): at most `limit` items of `categories` (every category when empty) per
/// `window` seconds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeclaredQuota {
    pub categories: Vec<String>,
    pub limit: u64,
    pub window: u64,
}

/// One DSN key of a project declaration.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct DeclaredKey {
    pub name: String,
    pub public: String,
    pub is_active: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<RateLimit>,
}

/// What `PUT /api/0/organizations/{org}/projects/{project}/` declares (unset fields are left
/// as they are).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ProjectDeclaration {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub platform: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retention_days: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<RateLimit>,
    /// Always sent: an empty list removes the quotas the project had.
    pub quotas: Vec<DeclaredQuota>,
    pub keys: Vec<DeclaredKey>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub grouping_enhancements: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fingerprinting_rules: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_scrubber: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub data_scrubber_defaults: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sensitive_fields: Option<Vec<String>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub safe_fields: Option<Vec<String>>,
    #[serde(rename = "scrubIPAddresses", skip_serializing_if = "Option::is_none")]
    pub scrub_ip_addresses: Option<bool>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub relay_pii_config: Option<String>,
}

/// The engine's answer to a declaration: the project as stored.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct RegisteredProject {
    /// The numeric id, as a string (as Sentry's API gives ids).
    pub id: String,
    pub slug: String,
    pub organization: String,
}

/// One check of `GET /api/0/status/`: passed, or the engine's error text.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct Check {
    pub ok: bool,
    #[serde(default)]
    pub error: Option<String>,
}

/// One project's figures in `GET /api/0/status/`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ProjectFigures {
    /// The numeric id, as a string.
    pub id: String,
    pub organization: String,
    pub slug: String,
    /// Error events accepted in the last sixty minutes; `None` when the engine could not
    /// read its figures.
    #[serde(default)]
    pub events_last_hour: Option<u64>,
    /// RFC 3339; `None` before the project's first event.
    #[serde(default)]
    pub last_event_seen: Option<String>,
}

/// The answer to `GET /api/0/status/`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct EngineStatus {
    /// RFC 3339.
    pub checked_at: String,
    pub object_store: Check,
    pub wal: Check,
    /// Why the figures are missing, when they are.
    #[serde(default)]
    pub figures_error: Option<String>,
    #[serde(default)]
    pub projects: Vec<ProjectFigures>,
}

/// The alert API's collections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlertCollection {
    Channels,
    Rules,
}

impl AlertCollection {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Channels => "alert-channels",
            Self::Rules => "alert-rules",
        }
    }
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

    /// Creates project `project` of organization `org` in the engine, or brings it to
    /// `declared`. Idempotent: the operator sends it on every reconcile.
    pub async fn register_project(
        &self,
        org: &str,
        project: &str,
        declared: &ProjectDeclaration,
    ) -> Result<RegisteredProject> {
        check_id(org)?;
        check_id(project)?;
        let body = serde_json::to_vec(declared).map_err(|source| Error::Decode {
            url: self.base.clone(),
            source,
        })?;
        let path = format!("/api/0/organizations/{org}/projects/{project}/");
        let (status, url, answer) = self
            .send_body(Method::PUT, &path, Bytes::from(body))
            .await?;
        match status {
            StatusCode::OK | StatusCode::CREATED => decode(&url, &answer),
            s if s.is_client_error() => Err(refused(org, project, s, &answer)),
            other => Err(status_error(url, other, &answer)),
        }
    }

    /// Removes every DSN key of project `project` of `org`; a project the engine does not
    /// know is no error.
    pub async fn unregister_project(&self, org: &str, project: &str) -> Result<()> {
        check_id(org)?;
        check_id(project)?;
        let path = format!("/api/0/organizations/{org}/projects/{project}/");
        let (status, url, answer) = self.send(Method::DELETE, &path).await?;
        match status {
            s if s.is_success() || s == StatusCode::NOT_FOUND => Ok(()),
            s if s.is_client_error() => Err(refused(org, project, s, &answer)),
            other => Err(status_error(url, other, &answer)),
        }
    }

    /// Erases project `project` of `org` with every stored row (keys, project, events); a
    /// project the engine does not know (never registered, or erased before) is no error.
    pub async fn erase_project(&self, org: &str, project: &str) -> Result<()> {
        check_id(org)?;
        check_id(project)?;
        let path = format!("/api/0/organizations/{org}/projects/{project}/erase/");
        let (status, url, answer) = self.send(Method::POST, &path).await?;
        match status {
            s if s.is_success() || s == StatusCode::NOT_FOUND => Ok(()),
            s if s.is_client_error() => Err(refused(org, project, s, &answer)),
            other => Err(status_error(url, other, &answer)),
        }
    }

    /// Creates or replaces alert channel or rule `name` of `org` (`collection` is
    /// `alert-channels` or `alert-rules`) with `body`: `PUT` on it, `POST` to the collection
    /// when the engine does not know it yet.
    pub async fn put_alert(
        &self,
        collection: AlertCollection,
        org: &str,
        name: &str,
        body: &serde_json::Value,
    ) -> Result<()> {
        check_id(org)?;
        check_id(name)?;
        let bytes = Bytes::from(body.to_string());
        let base = format!("/api/0/organizations/{org}/{}/", collection.as_str());
        let (status, url, answer) = self
            .send_body(Method::PUT, &format!("{base}{name}/"), bytes.clone())
            .await?;
        let (status, url, answer) = if status == StatusCode::NOT_FOUND {
            self.send_body(Method::POST, &base, bytes).await?
        } else {
            (status, url, answer)
        };
        match status {
            s if s.is_success() => Ok(()),
            s if s.is_client_error() => Err(refused_alert(collection, org, name, s, &answer)),
            other => Err(status_error(url, other, &answer)),
        }
    }

    /// Deletes alert channel or rule `name` of `org`; one the engine does not know is no
    /// error.
    pub async fn delete_alert(
        &self,
        collection: AlertCollection,
        org: &str,
        name: &str,
    ) -> Result<()> {
        check_id(org)?;
        check_id(name)?;
        let path = format!("/api/0/organizations/{org}/{}/{name}/", collection.as_str());
        let (status, url, answer) = self.send(Method::DELETE, &path).await?;
        match status {
            s if s.is_success() || s == StatusCode::NOT_FOUND => Ok(()),
            s if s.is_client_error() => Err(refused_alert(collection, org, name, s, &answer)),
            other => Err(status_error(url, other, &answer)),
        }
    }

    /// The engine's checks (object store, WAL) and every project's figures, in one call.
    pub async fn status(&self) -> Result<EngineStatus> {
        let (status, url, body) = self.send(Method::GET, "/api/0/status/").await?;
        if status != StatusCode::OK {
            return Err(status_error(url, status, &body));
        }
        decode(&url, &body)
    }

    async fn send(&self, method: Method, path: &str) -> Result<(StatusCode, String, Bytes)> {
        self.send_body(method, path, Bytes::new()).await
    }

    async fn send_body(
        &self,
        method: Method,
        path: &str,
        body: Bytes,
    ) -> Result<(StatusCode, String, Bytes)> {
        let url = format!("{}{path}", self.base);
        let mut request = Request::builder()
            .method(method)
            .uri(&url)
            .header(header::AUTHORIZATION, format!("Bearer {}", self.token))
            .header(header::ACCEPT, "application/json");
        if !body.is_empty() {
            request = request.header(header::CONTENT_TYPE, "application/json");
        }
        let request = request
            .body(Full::new(body))
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

/// A 4xx answer to an alert call.
fn refused_alert(
    collection: AlertCollection,
    org: &str,
    name: &str,
    status: StatusCode,
    body: &[u8],
) -> Error {
    let message = detail(body);
    Error::RefusedAlert {
        what: match collection {
            AlertCollection::Channels => "channel",
            AlertCollection::Rules => "rule",
        },
        org: org.to_owned(),
        name: name.to_owned(),
        status,
        message,
    }
}

/// A 4xx answer: the engine's `detail` (or the body) says why.
fn refused(org: &str, project: &str, status: StatusCode, body: &[u8]) -> Error {
    let message = detail(body);
    Error::Refused {
        org: org.to_owned(),
        project: project.to_owned(),
        status,
        message,
    }
}

/// The engine's `detail` of an answer (or its body), at most 300 bytes.
fn detail(body: &[u8]) -> String {
    let mut message = serde_json::from_slice::<serde_json::Value>(body)
        .ok()
        .and_then(|v| v.get("detail").and_then(|d| d.as_str()).map(str::to_owned))
        .unwrap_or_else(|| String::from_utf8_lossy(body).into_owned());
    let mut end = message.len().min(300);
    while !message.is_char_boundary(end) {
        end -= 1;
    }
    message.truncate(end);
    message
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
    fn the_engine_status_reads_as_documented() {
        let body = br#"{"checkedAt":"2026-12-05T18:00:00Z","node":"node-0",
            "objectStore":{"ok":false,"error":"s3://bucket: connection refused"},"wal":{"ok":true},
            "projects":[{"id":"2","organization":"shop","slug":"api","eventsLastHour":12,"lastEventSeen":"2026-12-05T17:59:01.5Z"},
                        {"id":"3","organization":"shop","slug":"web","eventsLastHour":0,"lastEventSeen":null}]}"#;
        let status: EngineStatus = decode("u", body).unwrap();
        assert!(!status.object_store.ok);
        assert_eq!(
            status.object_store.error.as_deref(),
            Some("s3://bucket: connection refused")
        );
        assert!(status.wal.ok && status.wal.error.is_none());
        assert_eq!(status.projects[0].events_last_hour, Some(12));
        assert_eq!(status.projects[1].last_event_seen, None);
        assert!(decode::<EngineStatus>("u", br#"{"projects":[]}"#).is_err());
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
