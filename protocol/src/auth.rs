//! Credentials of an ingest request, in every form Relay accepts.
//!
//! Checked in this order: the `X-Sentry-Auth` header, the `Authorization` header (either
//! `Sentry sentry_key=..` or `DSN <dsn>`), then the `sentry_key` query parameter. The first
//! source that is present decides: a malformed header is an error even if the query string
//! would have carried a key. Unlike Relay, an `Authorization` header of another scheme
//! (`Basic`, `Bearer`: credentials for a proxy) is ignored rather than rejected, and several
//! sources are not an error (the first wins).

use url::Url;

use crate::ErrorKind;

/// The raw credential sources of one request.
#[derive(Debug, Clone, Copy, Default)]
pub struct AuthInput<'a> {
    /// The `X-Sentry-Auth` header.
    pub x_sentry_auth: Option<&'a str>,
    /// The `Authorization` header.
    pub authorization: Option<&'a str>,
    /// The raw query string, without the leading `?`.
    pub query: Option<&'a str>,
}

/// Parsed credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Auth {
    /// The DSN public key, 32 lowercase hex digits.
    pub public_key: String,
    /// `sentry_client`, e.g. `sentry.python/2.0.0`.
    pub client: Option<String>,
    /// `sentry_version`, the protocol version (7 for current SDKs).
    pub version: Option<String>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AuthError {
    #[error("{source_name} is not a Sentry auth header: expected `Sentry sentry_key=<key>, ...`")]
    NotSentryAuth { source_name: &'static str },
    #[error("{source_name} has no sentry_key")]
    MissingKey { source_name: &'static str },
    #[error("invalid sentry_key {key:?} in {source_name}: expected 32 hex digits")]
    InvalidKey {
        source_name: &'static str,
        key: String,
    },
    #[error("invalid DSN {dsn:?}: {reason}")]
    InvalidDsn { dsn: String, reason: &'static str },
}

pub type Result<T, E = AuthError> = std::result::Result<T, E>;

impl AuthError {
    /// Malformed credentials are answered with 401.
    pub fn kind(&self) -> ErrorKind {
        ErrorKind::Unauthorized
    }

    pub fn is_too_large(&self) -> bool {
        false
    }
}

/// Finds the credentials of a request. `Ok(None)` when no source carries any.
pub fn parse_auth(input: &AuthInput<'_>) -> Result<Option<Auth>> {
    if let Some(header) = input.x_sentry_auth {
        return parse_sentry_header(header, "X-Sentry-Auth").map(Some);
    }
    if let Some(header) = input.authorization {
        let trimmed = header.trim_start();
        if let Some(dsn) = strip_prefix_ignore_case(trimmed, "dsn ") {
            let (public_key, _project) = parse_dsn(dsn.trim())?;
            return Ok(Some(Auth {
                public_key,
                client: None,
                version: None,
            }));
        }
        // `Basic`/`Bearer` credentials are meant for a proxy in front of us, not for Sentry
        if strip_prefix_ignore_case(trimmed, "sentry").is_some() {
            return parse_sentry_header(header, "Authorization").map(Some);
        }
    }
    if let Some(query) = input.query {
        return parse_query(query);
    }
    Ok(None)
}

/// `(public key, project id)` of a DSN such as `https://<key>@o1.ingest.example.com/42`.
pub fn parse_dsn(dsn: &str) -> Result<(String, String)> {
    let invalid = |reason| AuthError::InvalidDsn {
        dsn: dsn.to_owned(),
        reason,
    };
    let url = Url::parse(dsn).map_err(|_| invalid("not a URL"))?;
    if url.username().is_empty() {
        return Err(invalid("no public key before `@`"));
    }
    let key = validate_key(url.username(), "DSN")
        .map_err(|_| invalid("the public key is not 32 hex digits"))?;
    let project = url
        .path_segments()
        .and_then(|mut segments| segments.rfind(|s| !s.is_empty()))
        .ok_or_else(|| invalid("no project id in the path"))?;
    if !project.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid("the project id is not a number"));
    }
    Ok((key, project.to_owned()))
}

fn strip_prefix_ignore_case<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &s[prefix.len()..])
}

fn parse_sentry_header(header: &str, source_name: &'static str) -> Result<Auth> {
    let trimmed = header.trim();
    let pairs = strip_prefix_ignore_case(trimmed, "sentry")
        .filter(|rest| rest.is_empty() || rest.starts_with(|c: char| c.is_ascii_whitespace()))
        .ok_or(AuthError::NotSentryAuth { source_name })?;
    let pairs = pairs.split(',').filter_map(|pair| {
        let (key, value) = pair.split_once('=')?;
        Some((key.trim(), value.trim().trim_matches('"')))
    });
    from_pairs(pairs, source_name)?.ok_or(AuthError::MissingKey { source_name })
}

fn parse_query(query: &str) -> Result<Option<Auth>> {
    let pairs = url::form_urlencoded::parse(query.as_bytes());
    let pairs: Vec<_> = pairs.collect();
    from_pairs(
        pairs.iter().map(|(k, v)| (k.as_ref(), v.as_ref())),
        "the query string",
    )
}

fn from_pairs<'a>(
    pairs: impl Iterator<Item = (&'a str, &'a str)>,
    source_name: &'static str,
) -> Result<Option<Auth>> {
    let mut key = None;
    let mut client = None;
    let mut version = None;
    for (name, value) in pairs {
        let name = name.strip_prefix("sentry_").unwrap_or(name);
        match name {
            "key" => key = Some(value),
            "client" => client = Some(value.to_owned()),
            "version" => version = Some(value.to_owned()),
            _ => {}
        }
    }
    let Some(key) = key else { return Ok(None) };
    Ok(Some(Auth {
        public_key: validate_key(key, source_name)?,
        client,
        version,
    }))
}

fn validate_key(key: &str, source_name: &'static str) -> Result<String> {
    if key.len() == 32 && key.bytes().all(|b| b.is_ascii_hexdigit()) {
        Ok(key.to_ascii_lowercase())
    } else {
        Err(AuthError::InvalidKey {
            source_name,
            key: key.chars().take(64).collect(),
        })
    }
}
