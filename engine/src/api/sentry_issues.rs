//! Issues and their events in the shape of Sentry's web API, for `sentry-cli issues` and tools
//! built for Sentry: list (Sentry's search syntax, cursor pagination with a `Link` header),
//! bulk and single update, detail by id or short id, and an issue's events with the latest one
//! in Sentry's `entries[]` shape. Everything reads the same SQL tables as the web pages and
//! changes state through the same audited function.

use std::collections::HashMap;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Duration, Utc};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::auth::{Caller, ClientInfo};
use super::error::ApiError;
use super::members::check_in;
use super::query::QueryState;
use crate::issues::Change;
use crate::query::ProjectFilter;
use crate::query::format::{self, Format};
use crate::tenancy::{Project, Scope};
use crate::web::search::{Search, literal};

/// Issues per page unless `limit` says (Sentry's default), and the most a page holds.
const DEFAULT_LIMIT: usize = 25;
const MAX_LIMIT: usize = 100;
/// Issues one bulk update without ids changes at most.
const MAX_BULK: usize = 1000;

pub(super) type Row = Map<String, Value>;

/// Runs `sql` for `projects` and answers its rows as JSON objects.
pub(super) async fn rows(
    state: &QueryState,
    projects: &ProjectFilter,
    sql: &str,
) -> Result<Vec<Row>, ApiError> {
    let output = state.query.run(projects, sql).await?;
    let value: Value = serde_json::from_slice(&format::encode(&output, Format::Json)?)
        .map_err(|e| ApiError::Query(crate::query::Error::Encode(e.to_string())))?;
    Ok(match value {
        Value::Array(items) => items
            .into_iter()
            .filter_map(|v| match v {
                Value::Object(map) => Some(map),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    })
}

pub(super) fn text<'a>(row: &'a Row, key: &str) -> Option<&'a str> {
    row.get(key).and_then(Value::as_str)
}

pub(super) fn int(row: &Row, key: &str) -> i64 {
    row.get(key).and_then(Value::as_i64).unwrap_or_default()
}

pub(super) fn date_ms(ms: i64) -> String {
    DateTime::from_timestamp_millis(ms)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// The short id of an issue: the project's name in capitals and the id in base 36.
pub(super) fn short_id(project: &str, issue_id: i64) -> String {
    let mut n = issue_id as u64;
    let mut digits = Vec::new();
    loop {
        let d = (n % 36) as u8;
        digits.push(if d < 10 { b'0' + d } else { b'A' + d - 10 });
        n /= 36;
        if n == 0 {
            break;
        }
    }
    digits.reverse();
    format!(
        "{}-{}",
        project.to_uppercase(),
        String::from_utf8(digits).unwrap_or_default()
    )
}

/// The issue id a short id names, if it is one.
fn from_short_id(raw: &str) -> Option<i64> {
    let (_, digits) = raw.rsplit_once('-')?;
    u64::from_str_radix(&digits.to_ascii_lowercase(), 36)
        .ok()
        .map(|n| n as i64)
}

const ISSUE_COLUMNS: &str = "issue_id, project_id, project, title, culprit, level, status, \
    event_count, users, CAST(first_seen AS BIGINT) AS first_ms, \
    CAST(last_seen AS BIGINT) AS last_ms, first_release, last_release, assignee, merged_into";

fn issue_json(state: &QueryState, org: &str, row: &Row) -> Value {
    let id = int(row, "issue_id");
    let project = text(row, "project").unwrap_or_default();
    let status = text(row, "status").unwrap_or("unresolved");
    let assignee = text(row, "assignee").map(|a| match a.strip_prefix('#') {
        Some(team) => json!({"type": "team", "id": team, "name": team}),
        None => json!({"type": "user", "id": a, "name": a, "email": a}),
    });
    json!({
        "id": id.to_string(),
        "shortId": short_id(project, id),
        "title": text(row, "title").unwrap_or_default(),
        "culprit": text(row, "culprit"),
        "permalink": format!("{}/organizations/{org}/issues/{id}/", state.public_url.trim_end_matches('/')),
        "firstSeen": date_ms(int(row, "first_ms")),
        "lastSeen": date_ms(int(row, "last_ms")),
        "count": int(row, "event_count").to_string(),
        "userCount": int(row, "users"),
        "status": if status == "merged" { "unresolved" } else { status },
        "substatus": if status == "unresolved" { Value::from("ongoing") } else { Value::Null },
        "statusDetails": {},
        "level": text(row, "level").unwrap_or("error"),
        "type": "error",
        "issueType": "error",
        "issueCategory": "error",
        "platform": null,
        "logger": null,
        "project": {"id": int(row, "project_id").to_string(), "name": project, "slug": project},
        "metadata": {"title": text(row, "title").unwrap_or_default()},
        "numComments": 0,
        "assignedTo": assignee,
        "isUnhandled": false,
        "hasSeen": false,
        "isBookmarked": false,
        "isSubscribed": false,
        "isPublic": false,
        "shareId": null,
        "annotations": [],
        "stats": {},
        "firstRelease": text(row, "first_release").map(|v| json!({"version": v, "shortVersion": v})),
        "lastRelease": text(row, "last_release").map(|v| json!({"version": v, "shortVersion": v})),
    })
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct ListParams {
    query: Option<String>,
    stats_period: Option<String>,
    start: Option<String>,
    end: Option<String>,
    environment: Option<String>,
    sort: Option<String>,
    limit: Option<String>,
    cursor: Option<String>,
}

/// The caller's readable projects of `org`, narrowed to `only` (names) when given.
async fn scope(
    state: &QueryState,
    caller: &Caller,
    org: &str,
    only: Option<&str>,
) -> Result<(ProjectFilter, Vec<std::sync::Arc<Project>>), ApiError> {
    let projects: Vec<_> = state
        .projects
        .readable(&caller.principal)
        .await?
        .into_iter()
        .filter(|p| p.org == org && only.is_none_or(|name| p.name == name))
        .collect();
    if let Some(name) = only
        && projects.is_empty()
    {
        return Err(ApiError::NotFound(format!(
            "no project {name:?} in {org:?}"
        )));
    }
    let filter = ProjectFilter::Only(std::sync::Arc::new(projects.iter().map(|p| p.id).collect()));
    Ok((filter, projects))
}

/// The `WHERE` clause of a Sentry issue search over `issues`.
async fn search_clause(
    state: &QueryState,
    projects: &ProjectFilter,
    query: &str,
    me: Option<&str>,
    since: Option<&str>,
    environment: Option<&str>,
) -> Result<String, ApiError> {
    let search = Search::parse(query).map_err(|e| ApiError::BadRequest(e.to_string()))?;
    let mut conditions = search.conditions(me);
    if let Some(env) = environment.filter(|e| !e.is_empty()) {
        conditions.tag_equals("environment", env);
    }
    let bound = since.unwrap_or("to_timestamp(0)");
    if let Some(sql) = conditions.overflow_sql(bound) {
        let found = rows(state, projects, &sql).await?;
        conditions.set_overflow(found.iter().map(|r| {
            (
                text(r, "key").unwrap_or_default().to_owned(),
                int(r, "issue_id"),
            )
        }));
    }
    let mut clause = format!("last_seen >= {bound}");
    if let Some(more) = conditions.where_clause(bound) {
        clause.push_str(" AND ");
        clause.push_str(&more);
    }
    Ok(clause)
}

fn order(sort: Option<&str>) -> Result<&'static str, ApiError> {
    Ok(match sort.unwrap_or("date") {
        // Sentry's ranking by recency and trend is approximated by the last event
        "date" | "" | "recommended" | "trends" | "priority" => "last_seen DESC",
        "new" => "first_seen DESC",
        "freq" => "event_count DESC",
        "user" => "users DESC",
        other => {
            return Err(ApiError::BadRequest(format!(
                "sort {other:?} is not one of date, new, freq, user, recommended, trends"
            )));
        }
    })
}

/// A cursor as Sentry writes them (`<value>:<offset>:<is previous>`); faultline uses the offset.
pub(super) fn cursor_offset(cursor: Option<&str>) -> Result<usize, ApiError> {
    let Some(cursor) = cursor.filter(|c| !c.is_empty()) else {
        return Ok(0);
    };
    cursor
        .split(':')
        .nth(1)
        .and_then(|o| o.parse::<usize>().ok())
        .filter(|o| *o <= 100_000)
        .ok_or_else(|| {
            ApiError::BadRequest(format!("cursor {cursor:?} is not one this server gave"))
        })
}

pub(super) fn link_header(
    url: &str,
    params: &[(String, String)],
    offset: usize,
    limit: usize,
    more: bool,
) -> String {
    let with_cursor = |cursor: &str| {
        let mut pairs: Vec<String> = params
            .iter()
            .filter(|(k, _)| k != "cursor")
            .map(|(k, v)| format!("{k}={}", crate::web::encode(v)))
            .collect();
        pairs.push(format!("cursor={cursor}"));
        format!("{url}?{}", pairs.join("&"))
    };
    let prev = offset.saturating_sub(limit);
    let prev_cursor = format!("0:{prev}:1");
    let next_cursor = format!("0:{}:0", offset + limit);
    format!(
        "<{}>; rel=\"previous\"; results=\"{}\"; cursor=\"{prev_cursor}\", <{}>; rel=\"next\"; results=\"{more}\"; cursor=\"{next_cursor}\"",
        with_cursor(&prev_cursor),
        offset > 0,
        with_cursor(&next_cursor),
    )
}

async fn list(
    state: QueryState,
    org: String,
    project: Option<String>,
    headers: HeaderMap,
    params: ListParams,
    raw: Vec<(String, String)>,
) -> Result<Response, ApiError> {
    let caller = state.auth.caller(&headers).await?;
    check_in(&caller, &org, Scope::EventRead)?;
    let (_, readable) = scope(&state, &caller, &org, project.as_deref()).await?;
    let projects = super::sentry_discover::only_ids(&readable, &raw)?;
    let limit = match params.limit.as_deref() {
        None | Some("") => DEFAULT_LIMIT,
        Some(l) => l
            .parse::<usize>()
            .ok()
            .filter(|l| *l >= 1)
            // larger pages are cut to the most a page holds, as Sentry does
            .map(|l| l.min(MAX_LIMIT))
            .ok_or_else(|| {
                ApiError::BadRequest(format!("limit {l:?} is not a number of 1 or more"))
            })?,
    };
    let offset = cursor_offset(params.cursor.as_deref())?;
    let window = super::sentry_discover::Window::parse(
        params.stats_period.as_deref(),
        params.start.as_deref(),
        params.end.as_deref(),
        None,
    )?;
    let since = window
        .as_ref()
        .map(|w| format!("to_timestamp_millis({})", w.start_ms));
    let me = caller.actor.as_ref().map(|a| a.email.clone());
    let mut clause = search_clause(
        &state,
        &projects,
        params.query.as_deref().unwrap_or("is:unresolved"),
        me.as_deref(),
        since.as_deref(),
        params.environment.as_deref(),
    )
    .await?;
    if let Some(w) = &window {
        clause.push_str(&format!(
            " AND first_seen <= to_timestamp_millis({})",
            w.end_ms
        ));
    }
    let found = rows(
        &state,
        &projects,
        &format!(
            "SELECT {ISSUE_COLUMNS} FROM issues WHERE {clause} ORDER BY {}, issue_id DESC \
             LIMIT {} OFFSET {offset}",
            order(params.sort.as_deref())?,
            limit + 1
        ),
    )
    .await?;
    let more = found.len() > limit;
    let body: Vec<Value> = found
        .iter()
        .take(limit)
        .map(|r| issue_json(&state, &org, r))
        .collect();
    let url = match &project {
        Some(p) => format!(
            "{}/api/0/projects/{org}/{p}/issues/",
            state.public_url.trim_end_matches('/')
        ),
        None => format!(
            "{}/api/0/organizations/{org}/issues/",
            state.public_url.trim_end_matches('/')
        ),
    };
    let mut response = Json(body).into_response();
    if let Ok(link) = HeaderValue::from_str(&link_header(&url, &raw, offset, limit, more)) {
        response.headers_mut().insert(header::LINK, link);
    }
    Ok(response)
}

/// `GET /api/0/organizations/{org}/issues/`.
pub(super) async fn org_issues(
    State(state): State<QueryState>,
    Path(org): Path<String>,
    Query(params): Query<ListParams>,
    Query(raw): Query<Vec<(String, String)>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    list(state, org, None, headers, params, raw).await
}

/// `GET /api/0/projects/{org}/{project}/issues/`.
pub(super) async fn project_issues(
    State(state): State<QueryState>,
    Path((org, project)): Path<(String, String)>,
    Query(params): Query<ListParams>,
    Query(raw): Query<Vec<(String, String)>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    list(state, org, Some(project), headers, params, raw).await
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct UpdateBody {
    status: Option<String>,
    #[serde(default)]
    status_details: Map<String, Value>,
    ignore_duration: Option<i64>,
    snooze_duration: Option<i64>,
    ignore_count: Option<u64>,
    #[serde(default)]
    assigned_to: Option<Value>,
    merge: Option<Value>,
}

/// The state changes a Sentry update body asks for (in order), or a 400 naming the field.
fn changes(body: &UpdateBody) -> Result<Vec<Change>, ApiError> {
    let mut out = Vec::new();
    let in_next = body
        .status_details
        .get("inNextRelease")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    match body.status.as_deref() {
        None => {}
        Some("resolved") if in_next => out.push(Change::ResolveInNextRelease),
        Some("resolved") => out.push(Change::Resolve),
        Some("resolvedInNextRelease") => out.push(Change::ResolveInNextRelease),
        Some("unresolved") => out.push(Change::Reopen),
        Some("ignored") | Some("muted") => {
            let minutes = body.ignore_duration.or(body.snooze_duration).or_else(|| {
                body.status_details
                    .get("ignoreDuration")
                    .and_then(Value::as_i64)
            });
            let count = body.ignore_count.or_else(|| {
                body.status_details
                    .get("ignoreCount")
                    .and_then(Value::as_u64)
            });
            out.push(Change::Ignore {
                until: minutes
                    .filter(|m| *m > 0)
                    .map(|m| Utc::now() + Duration::minutes(m)),
                count: count.filter(|c| *c > 0),
            });
        }
        Some(other) => {
            return Err(ApiError::BadRequest(format!(
                "status {other:?} is not one of resolved, resolvedInNextRelease, unresolved, ignored"
            )));
        }
    }
    Ok(out)
}

/// Applies `body` to `ids` for `caller`; the status and details Sentry answers with.
async fn update(
    state: &QueryState,
    caller: &Caller,
    client: &crate::people::Client,
    org: &str,
    projects: &ProjectFilter,
    ids: &[i64],
    body: &UpdateBody,
) -> Result<Value, ApiError> {
    let mut list = changes(body)?;
    if let Some(assigned) = &body.assigned_to {
        let raw = match assigned {
            Value::Null => None,
            Value::String(s) => Some(match s.strip_prefix("team:") {
                Some(team) => format!("#{team}"),
                None => s.clone(),
            }),
            other => {
                return Err(ApiError::BadRequest(format!(
                    "assignedTo: give an email address, team:<slug> or null, not {other}"
                )));
            }
        };
        let assignee = super::issues::assignee(
            &state.auth.people,
            org,
            caller.actor.as_ref(),
            raw.as_deref(),
        )
        .await?;
        list.push(Change::Assign(assignee));
    }
    if body
        .merge
        .as_ref()
        .is_some_and(|m| m.as_bool() == Some(true) || m.as_i64() == Some(1))
    {
        if ids.len() < 2 {
            return Err(ApiError::BadRequest(
                "merge: name at least two issues (id=...)".to_owned(),
            ));
        }
        let list_sql: Vec<String> = ids.iter().map(i64::to_string).collect();
        let found = rows(
            state,
            projects,
            &format!(
                "SELECT issue_id FROM issues WHERE issue_id IN ({}) AND merged_into IS NULL \
                 ORDER BY event_count DESC, issue_id LIMIT 1",
                list_sql.join(", ")
            ),
        )
        .await?;
        let into = found.first().map(|r| int(r, "issue_id")).ok_or_else(|| {
            ApiError::NotFound("none of the issues can take the others".to_owned())
        })?;
        for id in ids.iter().filter(|id| **id != into) {
            super::issues::change_audited(
                &state.query,
                &state.auth.people,
                caller,
                projects,
                client,
                *id,
                Change::Merge { into },
            )
            .await?;
        }
        return Ok(
            json!({"merge": {"parent": into.to_string(), "children": ids.iter().filter(|i| **i != into).map(i64::to_string).collect::<Vec<_>>()}}),
        );
    }
    if list.is_empty() {
        return Err(ApiError::BadRequest(
            "nothing to change: give status, assignedTo or merge".to_owned(),
        ));
    }
    for id in ids {
        for change in &list {
            super::issues::change_audited(
                &state.query,
                &state.auth.people,
                caller,
                projects,
                client,
                *id,
                change.clone(),
            )
            .await?;
        }
    }
    let mut answer = Map::new();
    if let Some(status) = &body.status {
        answer.insert("status".to_owned(), Value::from(status.clone()));
        answer.insert(
            "statusDetails".to_owned(),
            Value::Object(body.status_details.clone()),
        );
    }
    if let Some(assigned) = &body.assigned_to {
        answer.insert("assignedTo".to_owned(), assigned.clone());
    }
    Ok(Value::Object(answer))
}

fn parse_body(bytes: &[u8]) -> Result<UpdateBody, ApiError> {
    serde_json::from_slice(bytes).map_err(|e| {
        ApiError::BadRequest(format!(
            "invalid JSON body (expected {{\"status\": \"resolved\"}} or the like): {e}"
        ))
    })
}

/// The ids a bulk update names (`id=` repeated), or, without any, the issues its `status=` /
/// `query=` filter finds (at most [`MAX_BULK`]).
async fn bulk_ids(
    state: &QueryState,
    caller: &Caller,
    projects: &ProjectFilter,
    raw: &[(String, String)],
) -> Result<Vec<i64>, ApiError> {
    let mut ids = Vec::new();
    for (k, v) in raw {
        if k == "id" {
            ids.push(
                v.parse::<i64>()
                    .map_err(|_| ApiError::BadRequest(format!("id {v:?} is not an issue id")))?,
            );
        }
    }
    if !ids.is_empty() {
        return Ok(ids);
    }
    let get = |name: &str| raw.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
    let query = match (get("status"), get("query")) {
        (Some(status), _) => format!("is:{status}"),
        (None, Some(q)) => q.to_owned(),
        (None, None) => String::new(),
    };
    let me = caller.actor.as_ref().map(|a| a.email.clone());
    let clause = search_clause(state, projects, &query, me.as_deref(), None, None).await?;
    let found = rows(
        state,
        projects,
        &format!("SELECT issue_id FROM issues WHERE {clause} ORDER BY issue_id LIMIT {MAX_BULK}"),
    )
    .await?;
    Ok(found.iter().map(|r| int(r, "issue_id")).collect())
}

/// `PUT /api/0/projects/{org}/{project}/issues/?id=...`: Sentry's bulk update.
pub(super) async fn update_project_issues(
    State(state): State<QueryState>,
    Path((org, project)): Path<(String, String)>,
    Query(raw): Query<Vec<(String, String)>>,
    ClientInfo(client): ClientInfo,
    headers: HeaderMap,
    bytes: axum::body::Bytes,
) -> Result<Json<Value>, ApiError> {
    let caller = state.auth.caller(&headers).await?;
    check_in(&caller, &org, Scope::EventWrite)?;
    let (projects, _) = scope(&state, &caller, &org, Some(&project)).await?;
    let body = parse_body(&bytes)?;
    let ids = bulk_ids(&state, &caller, &projects, &raw).await?;
    Ok(Json(
        update(&state, &caller, &client, &org, &projects, &ids, &body).await?,
    ))
}

/// `PUT /api/0/organizations/{org}/issues/?id=...`.
pub(super) async fn update_org_issues(
    State(state): State<QueryState>,
    Path(org): Path<String>,
    Query(raw): Query<Vec<(String, String)>>,
    ClientInfo(client): ClientInfo,
    headers: HeaderMap,
    bytes: axum::body::Bytes,
) -> Result<Json<Value>, ApiError> {
    let caller = state.auth.caller(&headers).await?;
    check_in(&caller, &org, Scope::EventWrite)?;
    let (projects, _) = scope(&state, &caller, &org, None).await?;
    let body = parse_body(&bytes)?;
    let ids = bulk_ids(&state, &caller, &projects, &raw).await?;
    Ok(Json(
        update(&state, &caller, &client, &org, &projects, &ids, &body).await?,
    ))
}

/// One issue by its id or short id, as a row of `issues`.
async fn one_issue(
    state: &QueryState,
    projects: &ProjectFilter,
    raw: &str,
) -> Result<Row, ApiError> {
    let id = raw
        .parse::<i64>()
        .ok()
        .or_else(|| from_short_id(raw))
        .ok_or_else(|| ApiError::NotFound(format!("no issue {raw:?}")))?;
    rows(
        state,
        projects,
        &format!("SELECT {ISSUE_COLUMNS} FROM issues WHERE issue_id = {id}"),
    )
    .await?
    .into_iter()
    .next()
    .ok_or_else(|| ApiError::NotFound(format!("no issue {raw:?}")))
}

/// The caller (holding `scope` in `org`), its projects and the issue `raw` (id or short id):
/// what every one-issue endpoint starts with.
pub(super) async fn issue_in(
    state: &QueryState,
    headers: &HeaderMap,
    org: &str,
    raw: &str,
    scope_needed: Scope,
) -> Result<(Caller, ProjectFilter, Row), ApiError> {
    let caller = state.auth.caller(headers).await?;
    check_in(&caller, org, scope_needed)?;
    let (projects, _) = scope(state, &caller, org, None).await?;
    let row = one_issue(state, &projects, raw).await?;
    Ok((caller, projects, row))
}

/// `GET /api/0/organizations/{org}/issues/{id}/` (numeric id or short id).
pub(super) async fn get_issue(
    State(state): State<QueryState>,
    Path((org, issue)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let (_, _, row) = issue_in(&state, &headers, &org, &issue, Scope::EventRead).await?;
    let mut value = issue_json(&state, &org, &row);
    if let Some(object) = value.as_object_mut() {
        object.insert("activity".to_owned(), json!([]));
        object.insert("userReportCount".to_owned(), json!(0));
    }
    Ok(Json(value))
}

/// `PUT /api/0/organizations/{org}/issues/{id}/`.
pub(super) async fn update_issue(
    State(state): State<QueryState>,
    Path((org, issue)): Path<(String, String)>,
    ClientInfo(client): ClientInfo,
    headers: HeaderMap,
    bytes: axum::body::Bytes,
) -> Result<Json<Value>, ApiError> {
    let (caller, projects, row) =
        issue_in(&state, &headers, &org, &issue, Scope::EventWrite).await?;
    let body = parse_body(&bytes)?;
    let id = int(&row, "issue_id");
    update(&state, &caller, &client, &org, &projects, &[id], &body).await?;
    let row = one_issue(&state, &projects, &id.to_string()).await?;
    Ok(Json(issue_json(&state, &org, &row)))
}

/// `DELETE /api/0/organizations/{org}/issues/{id}/` (scope `event:admin`): `202 Accepted`, as
/// Sentry answers; the events are erased shortly after.
pub(super) async fn delete_issue(
    State(state): State<QueryState>,
    Path((org, issue)): Path<(String, String)>,
    ClientInfo(client): ClientInfo,
    headers: HeaderMap,
) -> Result<axum::http::StatusCode, ApiError> {
    let (caller, projects, row) =
        issue_in(&state, &headers, &org, &issue, Scope::EventAdmin).await?;
    let id = int(&row, "issue_id");
    super::issues::delete_audited(
        &state.query,
        &state.auth.people,
        &caller,
        &projects,
        &client,
        id,
    )
    .await?;
    Ok(axum::http::StatusCode::ACCEPTED)
}

/// The frames of a stack trace in Sentry's API shape.
fn frames(stacktrace: Option<&Value>) -> Value {
    let Some(frames) = stacktrace
        .and_then(|s| s.get("frames"))
        .and_then(Value::as_array)
    else {
        return Value::Null;
    };
    let frames: Vec<Value> = frames
        .iter()
        .map(|f| {
            let mut context = Vec::new();
            let line = f.get("lineno").and_then(Value::as_i64);
            if let Some(lineno) = line {
                let pre = f
                    .get("pre_context")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default();
                let post = f
                    .get("post_context")
                    .and_then(Value::as_array)
                    .cloned()
                    .unwrap_or_default();
                for (i, l) in pre.iter().enumerate() {
                    context.push(json!([lineno - (pre.len() - i) as i64, l]));
                }
                if let Some(c) = f.get("context_line") {
                    context.push(json!([lineno, c]));
                }
                for (i, l) in post.iter().enumerate() {
                    context.push(json!([lineno + 1 + i as i64, l]));
                }
            }
            json!({
                "filename": f.get("filename"),
                "absPath": f.get("abs_path"),
                "module": f.get("module"),
                "package": f.get("package"),
                "platform": f.get("platform"),
                "function": f.get("function"),
                "lineNo": line,
                "colNo": f.get("colno"),
                "inApp": f.get("in_app").and_then(Value::as_bool).unwrap_or(false),
                "context": context,
                "vars": f.get("vars"),
            })
        })
        .collect();
    json!({"frames": frames})
}

/// An event in Sentry's API shape, with `entries[]`.
fn event_json(
    issue_id: i64,
    project_id: i64,
    stored: &Value,
    id: &str,
    ms: i64,
    received_ms: i64,
) -> Value {
    let mut entries = Vec::new();
    if let Some(values) = stored
        .pointer("/exception/values")
        .and_then(Value::as_array)
    {
        let values: Vec<Value> = values
            .iter()
            .map(|e| {
                json!({
                    "type": e.get("type"),
                    "value": e.get("value"),
                    "module": e.get("module"),
                    "mechanism": e.get("mechanism"),
                    "stacktrace": frames(e.get("stacktrace")),
                    // the frames as sent, when source maps rewrote them
                    "rawStacktrace": e.get("raw_stacktrace").map(|raw| frames(Some(raw))),
                })
            })
            .collect();
        entries.push(json!({"type": "exception", "data": {"values": values}}));
    }
    if let Some(values) = stored
        .pointer("/breadcrumbs/values")
        .and_then(Value::as_array)
    {
        entries.push(json!({"type": "breadcrumbs", "data": {"values": values}}));
    }
    if let Some(request) = stored.get("request") {
        entries.push(json!({"type": "request", "data": request}));
    }
    let message = stored
        .pointer("/logentry/formatted")
        .or_else(|| stored.get("message"))
        .and_then(Value::as_str);
    if let Some(formatted) = message {
        entries.push(json!({"type": "message", "data": {"formatted": formatted}}));
    }
    let tags: Vec<Value> = match stored.get("tags") {
        Some(Value::Array(pairs)) => pairs
            .iter()
            .filter_map(|p| Some(json!({"key": p.get(0)?, "value": p.get(1)?})))
            .collect(),
        Some(Value::Object(map)) => map
            .iter()
            .map(|(k, v)| json!({"key": k, "value": v}))
            .collect(),
        _ => Vec::new(),
    };
    let title = stored
        .pointer("/exception/values")
        .and_then(Value::as_array)
        .and_then(|v| v.last())
        .map(|e| {
            format!(
                "{}: {}",
                e.get("type").and_then(Value::as_str).unwrap_or("Error"),
                e.get("value").and_then(Value::as_str).unwrap_or_default()
            )
        })
        .or_else(|| message.map(str::to_owned))
        .unwrap_or_default();
    json!({
        "id": id,
        "eventID": id,
        "groupID": issue_id.to_string(),
        "projectID": project_id.to_string(),
        "title": title,
        "message": message,
        "type": if stored.get("exception").is_some() { "error" } else { "default" },
        "culprit": stored.get("culprit").or_else(|| stored.get("transaction")).and_then(Value::as_str),
        "platform": stored.get("platform"),
        "dateCreated": date_ms(ms),
        "dateReceived": date_ms(received_ms),
        "user": stored.get("user"),
        "tags": tags,
        "contexts": stored.get("contexts").cloned().unwrap_or_else(|| json!({})),
        "context": stored.get("extra").cloned().unwrap_or_else(|| json!({})),
        "sdk": stored.get("sdk"),
        // an object in Sentry's event API (clients decode `release.version`)
        "release": stored.get("release").and_then(Value::as_str).map(|v| json!({
            "version": v, "shortVersion": v, "dateCreated": null, "lastCommit": null,
        })),
        "environment": stored.get("environment"),
        "entries": entries,
        "errors": stored.get("errors").cloned().unwrap_or_else(|| json!([])),
    })
}

#[derive(Debug, Default, Deserialize)]
pub(super) struct EventsParams {
    cursor: Option<String>,
    per_page: Option<usize>,
}

/// `GET /api/0/organizations/{org}/issues/{id}/events/`: newest first.
pub(super) async fn issue_events(
    State(state): State<QueryState>,
    Path((org, issue)): Path<(String, String)>,
    Query(params): Query<EventsParams>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let (_, projects, row) = issue_in(&state, &headers, &org, &issue, Scope::EventRead).await?;
    let id = int(&row, "issue_id");
    let limit = params.per_page.unwrap_or(DEFAULT_LIMIT).clamp(1, MAX_LIMIT);
    let offset = cursor_offset(params.cursor.as_deref())?;
    let found = rows(
        &state,
        &projects,
        &format!(
            "SELECT event_id, project_id, CAST(timestamp AS BIGINT) AS ms, \
             CAST(received AS BIGINT) AS received_ms, event FROM events \
             WHERE issue_id = {id} AND timestamp >= to_timestamp_millis({}) \
             ORDER BY timestamp DESC, event_id DESC LIMIT {limit} OFFSET {offset}",
            int(&row, "first_ms")
        ),
    )
    .await?;
    Ok(Json(Value::Array(
        found
            .iter()
            .map(|r| {
                let stored: Value = text(r, "event")
                    .and_then(|e| serde_json::from_str(e).ok())
                    .unwrap_or_default();
                let mut e = event_json(
                    id,
                    int(r, "project_id"),
                    &stored,
                    text(r, "event_id").unwrap_or_default(),
                    int(r, "ms"),
                    int(r, "received_ms"),
                );
                if let Some(o) = e.as_object_mut() {
                    o.remove("entries");
                }
                e
            })
            .collect(),
    )))
}

/// `GET /api/0/organizations/{org}/issues/{id}/events/{event_id | latest | oldest | recommended}/`.
pub(super) async fn issue_event(
    State(state): State<QueryState>,
    Path((org, issue, event)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let (_, projects, row) = issue_in(&state, &headers, &org, &issue, Scope::EventRead).await?;
    let id = int(&row, "issue_id");
    let (first, last) = (int(&row, "first_ms"), int(&row, "last_ms"));
    let select = "SELECT event_id, project_id, CAST(timestamp AS BIGINT) AS ms, \
                  CAST(received AS BIGINT) AS received_ms, event FROM events";
    let sql = match event.as_str() {
        "latest" | "recommended" => format!(
            "{select} WHERE issue_id = {id} AND timestamp >= to_timestamp_millis({last}) \
             ORDER BY timestamp DESC, event_id DESC LIMIT 1"
        ),
        "oldest" => format!(
            "{select} WHERE issue_id = {id} AND timestamp >= to_timestamp_millis({first}) \
             AND timestamp <= to_timestamp_millis({first}) ORDER BY timestamp, event_id LIMIT 1"
        ),
        other => {
            let event_id: String = other
                .chars()
                .filter(|c| *c != '-')
                .collect::<String>()
                .to_ascii_lowercase();
            if event_id.len() != 32 || !event_id.chars().all(|c| c.is_ascii_hexdigit()) {
                return Err(ApiError::NotFound(format!("no event {other:?}")));
            }
            format!(
                "{select} WHERE issue_id = {id} AND timestamp >= to_timestamp_millis({first}) \
                 AND event_id = {} LIMIT 1",
                literal(&event_id)
            )
        }
    };
    let found = rows(&state, &projects, &sql).await?;
    let r = found
        .first()
        .ok_or_else(|| ApiError::NotFound(format!("issue {id} has no event {event:?}")))?;
    let mut stored: Value = text(r, "event")
        .and_then(|e| serde_json::from_str(e).ok())
        .unwrap_or_default();
    // frames whose source map was uploaded after the event are resolved now
    let project_id = u64::try_from(int(r, "project_id")).unwrap_or_default();
    let project = state
        .projects
        .list()
        .await?
        .into_iter()
        .find(|p| p.id == project_id);
    if let (Some(project), Some(root)) = (project, stored.as_object_mut()) {
        state
            .sourcemaps
            .resolve_value(&project.org, &project.name, root)
            .await;
    }
    Ok(Json(event_json(
        id,
        int(r, "project_id"),
        &stored,
        text(r, "event_id").unwrap_or_default(),
        int(r, "ms"),
        int(r, "received_ms"),
    )))
}

/// `GET /api/0/organizations/{org}/issues/{id}/tags/{key}/`: the top values over the issue's
/// hourly tag counts.
pub(super) async fn issue_tag(
    State(state): State<QueryState>,
    Path((org, issue, key)): Path<(String, String, String)>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let (_, projects, row) = issue_in(&state, &headers, &org, &issue, Scope::EventRead).await?;
    let id = int(&row, "issue_id");
    let found = rows(
        &state,
        &projects,
        &format!(
            "SELECT value, sum(events) AS n, CAST(min(hour) AS BIGINT) AS first_ms, \
             CAST(max(hour) AS BIGINT) AS last_ms FROM issue_tags \
             WHERE key = {} AND issue_id = {id} GROUP BY value ORDER BY n DESC, value LIMIT 1000",
            literal(&key)
        ),
    )
    .await?;
    let total: i64 = found.iter().map(|r| int(r, "n")).sum();
    let mut counts: HashMap<&str, i64> = HashMap::new();
    for r in &found {
        counts.insert(text(r, "value").unwrap_or_default(), int(r, "n"));
    }
    let top: Vec<Value> = found
        .iter()
        .filter(|r| text(r, "value").is_some())
        .take(10)
        .map(|r| {
            let v = text(r, "value").unwrap_or_default();
            json!({"key": key, "value": v, "name": v, "count": int(r, "n"),
                   "firstSeen": date_ms(int(r, "first_ms")), "lastSeen": date_ms(int(r, "last_ms"))})
        })
        .collect();
    Ok(Json(json!({
        "key": key,
        "name": key,
        "totalValues": total,
        "uniqueValues": counts.len(),
        "topValues": top,
    })))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_ids_round_trip() {
        for id in [0, 1, 35, 36, 7_871_444_202_679_322_515, i64::MAX] {
            let short = short_id("shop", id);
            assert!(short.starts_with("SHOP-"), "{short}");
            assert_eq!(from_short_id(&short), Some(id), "{short}");
        }
        assert_eq!(short_id("shop", 36), "SHOP-10");
        assert_eq!(from_short_id("SHOP-10"), Some(36));
        assert_eq!(from_short_id("nothing"), None);
    }

    #[test]
    fn sentry_update_bodies_become_state_changes() {
        let body = |json: &str| serde_json::from_str::<UpdateBody>(json).unwrap();
        assert_eq!(
            changes(&body(r#"{"status": "resolved"}"#)).unwrap(),
            [Change::Resolve]
        );
        assert_eq!(
            changes(&body(
                r#"{"status": "resolved", "statusDetails": {"inNextRelease": true}}"#
            ))
            .unwrap(),
            [Change::ResolveInNextRelease]
        );
        assert_eq!(
            changes(&body(r#"{"status": "unresolved"}"#)).unwrap(),
            [Change::Reopen]
        );
        assert!(matches!(
            changes(&body(r#"{"status": "ignored", "ignoreCount": 10}"#)).unwrap()[..],
            [Change::Ignore {
                until: None,
                count: Some(10)
            }]
        ));
        assert!(matches!(
            changes(&body(r#"{"status": "ignored", "snoozeDuration": 30}"#)).unwrap()[..],
            [Change::Ignore {
                until: Some(_),
                count: None
            }]
        ));
        assert!(changes(&body(r#"{"status": "open"}"#)).is_err());
    }

    #[test]
    fn cursors_and_link_headers_page_by_offset() {
        assert_eq!(cursor_offset(None).unwrap(), 0);
        assert_eq!(cursor_offset(Some("0:25:0")).unwrap(), 25);
        assert!(cursor_offset(Some("x")).is_err());
        let link = link_header(
            "http://h/api/0/organizations/o/issues/",
            &[("query".to_owned(), "is:unresolved".to_owned())],
            25,
            25,
            true,
        );
        assert_eq!(
            link,
            "<http://h/api/0/organizations/o/issues/?query=is%3Aunresolved&cursor=0:0:1>; \
             rel=\"previous\"; results=\"true\"; cursor=\"0:0:1\", \
             <http://h/api/0/organizations/o/issues/?query=is%3Aunresolved&cursor=0:50:0>; \
             rel=\"next\"; results=\"true\"; cursor=\"0:50:0\""
        );
    }
}
