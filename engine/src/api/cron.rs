//! Sentry's HTTP check-in endpoint for cron monitors, for jobs that have no SDK:
//! `GET|POST /api/{project_id}/cron/{monitor_slug}/{sentry_key}/`, or without the key segment
//! with the key in the `X-Sentry-Auth` / `Authorization` header or the `sentry_key` query
//! parameter as on the other ingest endpoints.
//!
//! ```text
//! curl "https://faultline.example/api/42/cron/nightly-backup/<key>/?status=in_progress"
//! curl "https://faultline.example/api/42/cron/nightly-backup/<key>/?status=ok"
//! ```
//!
//! The query parameters are `status` (`in_progress`, `ok` or `error`), `check_in_id`,
//! `environment`, `release` and `duration` (seconds). A POST may carry the check-in as JSON
//! in the shape of an SDK's `check_in` item, `monitor_config` included (creating or updating
//! the monitor); query parameters win over the body. A closing check-in without an id closes
//! the monitor's latest open run, as Sentry does. The check-in is checked here, so a wrong
//! field is answered `400` naming it, and then ingested as a `check_in` item of an envelope
//! (rate limits, outcomes and the WAL as for any item). The answer is `202` without a body.

use std::collections::HashMap;
use std::net::SocketAddr;

use axum::body::{Body, Bytes};
use axum::extract::{ConnectInfo, Path, RawQuery, State};
use axum::http::{HeaderMap, StatusCode, header};
use faultline_protocol::auth::AuthInput;
use serde_json::{Map, Value};

use super::error::ApiError;
use super::ingest::{IngestState, client_ip, header_str, read_body};
use crate::ingest::{Endpoint, RequestHead};
use crate::items::{self, RowContext, check_ins};

/// The fields a query string may set.
const QUERY_FIELDS: [&str; 5] = [
    "status",
    "check_in_id",
    "environment",
    "release",
    "duration",
];

pub(super) async fn check_in(
    State(state): State<IngestState>,
    Path(path): Path<HashMap<String, String>>,
    RawQuery(query): RawQuery,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    body: Body,
) -> Result<StatusCode, ApiError> {
    let (Some(project_id), Some(slug)) = (path.get("project_id"), path.get("monitor_slug")) else {
        return Err(ApiError::NotFound("no such check-in endpoint".into()));
    };
    let key_query = path.get("sentry_key").map(|key| {
        url::form_urlencoded::Serializer::new(String::new())
            .append_pair("sentry_key", key)
            .finish()
    });
    let head = RequestHead {
        endpoint: Endpoint::Envelope,
        project_id,
        auth: AuthInput {
            x_sentry_auth: header_str(&headers, "x-sentry-auth"),
            authorization: header_str(&headers, header::AUTHORIZATION),
            query: key_query.as_deref().or(query.as_deref()),
        },
        content_encoding: None,
        client_ip: Some(client_ip(&headers, peer)),
    };
    let result = async {
        let mut admitted = state.ingest.admit(head).await?;
        if !admitted.is_authenticated() {
            return Err(crate::ingest::Error::MissingAuth.into());
        }
        let declared = header_str(&headers, header::CONTENT_LENGTH).and_then(|v| v.parse().ok());
        let body = read_body(&state, &mut admitted, body, declared).await?;
        let item = check_in_item(slug, query.as_deref(), &body)?;
        state.ingest.submit(admitted, envelope(&item)).await?;
        Ok::<_, ApiError>(())
    }
    .await;
    let status = result
        .as_ref()
        .map_or_else(|e| e.status().as_u16(), |_| 202);
    crate::metrics::ingest_request("cron", crate::metrics::ingest_outcome(status));
    result.map(|()| StatusCode::ACCEPTED)
}

/// The `check_in` item of a request: its JSON body, the query's fields over it, the slug of
/// the path; checked as ingest would check it.
fn check_in_item(slug: &str, query: Option<&str>, body: &[u8]) -> Result<Vec<u8>, ApiError> {
    let mut item = if body.iter().all(u8::is_ascii_whitespace) {
        Map::new()
    } else {
        match serde_json::from_slice(body) {
            Ok(Value::Object(map)) => map,
            _ => {
                return Err(ApiError::BadRequest(
                    "the body of a check-in must be a JSON object (or empty)".into(),
                ));
            }
        }
    };
    for (name, value) in url::form_urlencoded::parse(query.unwrap_or_default().as_bytes()) {
        if !QUERY_FIELDS.contains(&name.as_ref()) {
            continue;
        }
        let value = if name == "duration" {
            match value
                .parse::<f64>()
                .ok()
                .and_then(serde_json::Number::from_f64)
            {
                Some(seconds) => Value::Number(seconds),
                None => {
                    return Err(ApiError::BadRequest(format!(
                        "`duration` must be a number of seconds, not {value:?}"
                    )));
                }
            }
        } else {
            Value::String(value.into_owned())
        };
        item.insert(name.into_owned(), value);
    }
    item.insert("monitor_slug".into(), Value::String(slug.to_owned()));
    if !item.contains_key("check_in_id") {
        // a start is a new run; an end without an id closes the latest open run
        let id = match item.get("status").and_then(Value::as_str) {
            Some("in_progress") => uuid::Uuid::new_v4(),
            _ => uuid::Uuid::nil(),
        };
        item.insert("check_in_id".into(), Value::String(id.simple().to_string()));
    }
    let json = serde_json::to_vec(&item).unwrap_or_default();
    let ctx = RowContext {
        project_id: 0,
        project: "",
        received: chrono::Utc::now(),
        scrubber: None,
    };
    check_ins::rows(&json, ctx).map_err(|err| match err {
        items::Error::Field { field, expected } => {
            ApiError::BadRequest(format!("`{field}` is missing or not {expected}"))
        }
        other => ApiError::BadRequest(format!("invalid check-in: {other}")),
    })?;
    Ok(json)
}

/// An envelope of the one item.
fn envelope(item: &[u8]) -> Bytes {
    let mut body = format!(
        "{{}}\n{{\"type\":\"check_in\",\"length\":{}}}\n",
        item.len()
    )
    .into_bytes();
    body.extend_from_slice(item);
    body.push(b'\n');
    Bytes::from(body)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_query_sets_the_fields_over_the_body_and_the_path_names_the_monitor() {
        let body = br#"{"status": "in_progress", "environment": "staging",
            "monitor_config": {"schedule": {"type": "crontab", "value": "0 3 * * *"}}}"#;
        let item = check_in_item(
            "nightly",
            Some("status=ok&duration=12.5&sentry_key=x"),
            body,
        )
        .unwrap();
        let item: Value = serde_json::from_slice(&item).unwrap();
        assert_eq!(item["status"], "ok");
        assert_eq!(item["duration"], 12.5);
        assert_eq!(item["environment"], "staging");
        assert_eq!(item["monitor_slug"], "nightly");
        assert_eq!(item["monitor_config"]["schedule"]["value"], "0 3 * * *");
        assert!(item.get("sentry_key").is_none());
        assert_eq!(item["check_in_id"], "00000000000000000000000000000000");
    }

    #[test]
    fn a_start_without_an_id_gets_a_new_one() {
        let a = check_in_item("nightly", Some("status=in_progress"), b"").unwrap();
        let b = check_in_item("nightly", Some("status=in_progress"), b"").unwrap();
        let id =
            |item: &[u8]| serde_json::from_slice::<Value>(item).unwrap()["check_in_id"].clone();
        assert_ne!(id(&a), id(&b));
        assert_ne!(id(&a), "00000000000000000000000000000000");
    }

    #[test]
    fn a_wrong_field_is_named() {
        let cases = [
            (Some("status=done"), &b""[..], "`status`"),
            (None, &b""[..], "`status`"),
            (Some("status=ok&duration=soon"), &b""[..], "`duration`"),
            (Some("status=ok&check_in_id=42"), &b""[..], "`check_in_id`"),
            (Some("status=ok"), &b"[1]"[..], "JSON object"),
            (
                Some("status=ok"),
                &br#"{"monitor_config": {"schedule": {"type": "crontab", "value": "61 * * * *"}}}"#
                    [..],
                "check-in",
            ),
        ];
        for (query, body, named) in cases {
            let err = check_in_item("nightly", query, body)
                .unwrap_err()
                .to_string();
            assert!(err.contains(named), "{query:?}: {err}");
        }
        let err = check_in_item(&"x".repeat(51), Some("status=ok"), b"").unwrap_err();
        assert!(err.to_string().contains("`monitor_slug`"), "{err}");
    }
}
