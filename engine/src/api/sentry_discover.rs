//! Sentry's Discover queries over the `events` table, as the Grafana Sentry data source and the
//! Sentry MCP server send them: `GET /api/0/organizations/{org}/events/` (a table of `field=`
//! columns and aggregates, Sentry's search syntax in `query=`, `sort=`, `per_page`, a time
//! window and `project=` ids) and `events-stats/` (one series per interval, per top group), and
//! the tag keys of an organization and of an issue. Every request is compiled to one SQL query
//! of the caller's projects; field names and answer shapes are Sentry's.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, NaiveDateTime, Utc};
use serde_json::{Map, Value, json};

use super::error::ApiError;
use super::members::check_in;
use super::query::QueryState;
use super::sentry_issues::{Row, cursor_offset, date_ms, int, link_header, rows, short_id, text};
use crate::query::ProjectFilter;
use crate::tenancy::{Project, Scope};
use crate::web::search::literal;

/// Rows per page unless `per_page` says, and the most a page holds.
const DEFAULT_PER_PAGE: usize = 50;
const MAX_PER_PAGE: usize = 100;
/// Columns one query may ask for.
const MAX_FIELDS: usize = 20;
/// Points one series of `events-stats` may have.
const MAX_POINTS: i64 = 10_000;
/// Groups `topEvents` may ask for.
const MAX_TOP: usize = 10;
/// The window when none is given (Sentry's default for Discover).
const DEFAULT_PERIOD: &str = "14d";

/// A time window in milliseconds since the epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Window {
    pub(super) start_ms: i64,
    pub(super) end_ms: i64,
}

/// `24h`, `14d`, `30m`, `90s`, `2w` in seconds.
fn period_seconds(name: &str, period: &str) -> Result<i64, ApiError> {
    let period = period.trim();
    let bad = || {
        ApiError::BadRequest(format!(
            "{name} {period:?}: give a number and a unit (s, m, h, d, w), e.g. 24h or 14d"
        ))
    };
    if period.len() < 2 || !period.is_ascii() {
        return Err(bad());
    }
    let (number, unit) = period.split_at(period.len() - 1);
    let n: i64 = number.parse().map_err(|_| bad())?;
    let unit = match unit {
        "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        "w" => 604_800,
        _ => return Err(bad()),
    };
    n.checked_mul(unit)
        .filter(|s| *s > 0 && *s <= 100 * 366 * 86_400)
        .ok_or_else(bad)
}

/// A time as the clients send it: RFC 3339, or without a zone (UTC), as Grafana does.
fn instant(name: &str, raw: &str) -> Result<i64, ApiError> {
    if let Ok(t) = DateTime::parse_from_rfc3339(raw) {
        return Ok(t.timestamp_millis());
    }
    NaiveDateTime::parse_from_str(raw, "%Y-%m-%dT%H:%M:%S%.f")
        .map(|t| t.and_utc().timestamp_millis())
        .map_err(|_| {
            ApiError::BadRequest(format!(
                "{name} {raw:?} is not a time (2026-01-31T12:00:00 or RFC 3339)"
            ))
        })
}

impl Window {
    /// `start` and `end` when given, else the `statsPeriod` before now, else `default` before
    /// now (`None` without a default: all time).
    pub(super) fn parse(
        period: Option<&str>,
        start: Option<&str>,
        end: Option<&str>,
        default: Option<&str>,
    ) -> Result<Option<Window>, ApiError> {
        let now = Utc::now().timestamp_millis();
        let start = start.map(str::trim).filter(|s| !s.is_empty());
        let end = end.map(str::trim).filter(|s| !s.is_empty());
        let window = match (start, end) {
            (Some(start), Some(end)) => Window {
                start_ms: instant("start", start)?,
                end_ms: instant("end", end)?,
            },
            (Some(_), None) | (None, Some(_)) => {
                return Err(ApiError::BadRequest(
                    "start and end: give both, or statsPeriod".to_owned(),
                ));
            }
            (None, None) => {
                let Some(period) = period.map(str::trim).filter(|p| !p.is_empty()).or(default)
                else {
                    return Ok(None);
                };
                Window {
                    start_ms: now - period_seconds("statsPeriod", period)? * 1000,
                    end_ms: now,
                }
            }
        };
        if window.end_ms < window.start_ms {
            return Err(ApiError::BadRequest("end is before start".to_owned()));
        }
        Ok(Some(window))
    }
}

/// The caller's `readable` projects narrowed to the `project=` ids of `raw` (none or `-1`: all
/// of them); an id the caller may not read is refused, as Sentry does.
pub(super) fn only_ids(
    readable: &[Arc<Project>],
    raw: &[(String, String)],
) -> Result<ProjectFilter, ApiError> {
    let mut ids = Vec::new();
    for (k, v) in raw.iter().filter(|(k, _)| k == "project") {
        let id: i64 = v
            .trim()
            .parse()
            .map_err(|_| ApiError::BadRequest(format!("{k} {v:?} is not a project id")))?;
        if id == -1 {
            continue;
        }
        let project = readable
            .iter()
            .find(|p| i64::try_from(p.id).is_ok_and(|p| p == id))
            .ok_or_else(|| {
                ApiError::Forbidden(format!("you do not have access to project {id}"))
            })?;
        ids.push(project.id);
    }
    if ids.is_empty() {
        ids = readable.iter().map(|p| p.id).collect();
    }
    Ok(ProjectFilter::Only(Arc::new(ids.into_iter().collect())))
}

/// What a Discover column is to the answer's `meta.fields`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    String,
    Integer,
    Date,
    /// `issue`: `project:issue_id` in SQL, the short id in the answer.
    Issue,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::String | Kind::Issue => "string",
            Kind::Integer => "integer",
            Kind::Date => "date",
        }
    }
}

/// One `field=` column compiled to SQL.
#[derive(Debug, Clone)]
struct Column {
    name: String,
    sql: String,
    kind: Kind,
    aggregate: bool,
}

/// A plain (not aggregate) field of `events`.
fn plain(name: &str) -> Result<(String, Kind), ApiError> {
    let column = |c: &str| Ok((c.to_owned(), Kind::String));
    match name {
        "id" => column("event_id"),
        "title" => column("title"),
        "message" => Ok(("coalesce(message, title)".to_owned(), Kind::String)),
        "project" | "project.name" => column("project"),
        "project.id" => Ok(("project_id".to_owned(), Kind::Integer)),
        "issue" => Ok((
            "concat(project, ':', CAST(issue_id AS VARCHAR))".to_owned(),
            Kind::Issue,
        )),
        "issue.id" => Ok(("issue_id".to_owned(), Kind::Integer)),
        "timestamp" => Ok(("CAST(timestamp AS BIGINT)".to_owned(), Kind::Date)),
        "level" => column("level"),
        "platform" => column("platform"),
        "release" => column("release"),
        "environment" => column("environment"),
        "culprit" => column("culprit"),
        "transaction" => column("transaction"),
        "server_name" => column("server_name"),
        "error.type" => column("exception_type"),
        "error.value" => column("exception_value"),
        "user.id" => column("user_id"),
        "user.email" => column("user_email"),
        "user.username" => column("user_username"),
        "user.ip" => column("user_ip"),
        "user" | "user.display" => Ok((
            "coalesce(user_email, user_username, user_id, user_ip)".to_owned(),
            Kind::String,
        )),
        "sdk.name" => column("sdk_name"),
        "sdk.version" => column("sdk_version"),
        "trace" => column("trace_id"),
        "event.type" => Ok(("'error'".to_owned(), Kind::String)),
        other => {
            let tag = other
                .strip_prefix("tags[")
                .and_then(|t| t.strip_suffix(']'))
                .unwrap_or(other);
            if tag.is_empty()
                || tag.len() > 200
                || !tag
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "_.-:@/".contains(c))
            {
                return Err(ApiError::BadRequest(format!(
                    "field {other:?} is not a field of the errors dataset"
                )));
            }
            Ok((format!("tags[{}]", literal(tag)), Kind::String))
        }
    }
}

/// A `field=` value: a plain field or one of the aggregates `count()`, `count_unique(f)`,
/// `last_seen()`, `first_seen()`, `max(timestamp)`, `min(timestamp)`.
fn column(name: &str) -> Result<Column, ApiError> {
    let name = name.trim();
    let aggregate = |sql: String, kind: Kind| {
        Ok(Column {
            name: name.to_owned(),
            sql,
            kind,
            aggregate: true,
        })
    };
    if let Some((function, rest)) = name.split_once('(') {
        let argument = rest
            .strip_suffix(')')
            .ok_or_else(|| {
                ApiError::BadRequest(format!("field {name:?}: a function call ends with ')'"))
            })?
            .trim();
        return match (function, argument) {
            ("count", "") | ("count", "id") => aggregate("count(*)".to_owned(), Kind::Integer),
            ("count_unique", field) if !field.is_empty() => {
                let (sql, _) = plain(field)?;
                aggregate(format!("count(DISTINCT {sql})"), Kind::Integer)
            }
            ("last_seen", "") | ("max", "timestamp") => {
                aggregate("CAST(max(timestamp) AS BIGINT)".to_owned(), Kind::Date)
            }
            ("first_seen", "") | ("min", "timestamp") => {
                aggregate("CAST(min(timestamp) AS BIGINT)".to_owned(), Kind::Date)
            }
            _ => Err(ApiError::BadRequest(format!(
                "field {name:?}: the functions are count(), count_unique(field), \
                 last_seen(), first_seen(), max(timestamp), min(timestamp)"
            ))),
        };
    }
    let (sql, kind) = plain(name)?;
    Ok(Column {
        name: name.to_owned(),
        sql,
        kind,
        aggregate: false,
    })
}

/// Splits a search query into terms, keeping quoted values and `[a, b]` lists together.
fn terms(query: &str) -> Result<Vec<String>, ApiError> {
    let mut out = Vec::new();
    let mut current = String::new();
    let mut quoted = false;
    let mut list = false;
    for c in query.chars() {
        match c {
            '"' => {
                quoted = !quoted;
                current.push(c);
            }
            '[' if !quoted => {
                list = true;
                current.push(c);
            }
            ']' if !quoted => {
                list = false;
                current.push(c);
            }
            c if c.is_whitespace() && !quoted && !list => {
                if !current.is_empty() {
                    out.push(std::mem::take(&mut current));
                }
            }
            c => current.push(c),
        }
    }
    if quoted {
        return Err(ApiError::BadRequest(format!(
            "query {query:?}: a quote is not closed"
        )));
    }
    if !current.is_empty() {
        out.push(current);
    }
    Ok(out)
}

fn unquote(value: &str) -> String {
    value
        .strip_prefix('"')
        .and_then(|v| v.strip_suffix('"'))
        .unwrap_or(value)
        .replace("\\\"", "\"")
}

/// `value` as a SQL pattern for `LIKE` when it has `*`, else `None`.
fn like_pattern(value: &str) -> Option<String> {
    value.contains('*').then(|| {
        value
            .replace('\\', "\\\\")
            .replace('%', "\\%")
            .replace('_', "\\_")
            .replace('*', "%")
    })
}

/// The SQL conditions of a Sentry search over `events`: `key:value` (`*` wildcards,
/// `[a, b]` lists), `!key:value`, `has:key`, `!has:key`, `event.type:error` and free text
/// (matched in the title).
fn search_sql(query: &str) -> Result<Vec<String>, ApiError> {
    let mut out = Vec::new();
    for term in terms(query)? {
        if term == "AND" {
            continue;
        }
        if term == "OR" || term.starts_with('(') {
            return Err(ApiError::BadRequest(format!(
                "query {query:?}: OR and parentheses are not supported; terms are joined with AND"
            )));
        }
        let (negated, body) = match term.strip_prefix('!') {
            Some(rest) => (true, rest),
            None => (false, term.as_str()),
        };
        let condition = match body.split_once(':') {
            Some((key, value)) if !key.is_empty() && !key.starts_with('"') => {
                let value = unquote(value);
                match key {
                    "has" => format!("{} IS NOT NULL", plain(&value)?.0),
                    "is" => {
                        return Err(ApiError::BadRequest(format!(
                            "query {query:?}: is:{value} filters issues, not events \
                             (use the issues endpoint)"
                        )));
                    }
                    "event.type" => {
                        if value == "error" {
                            "TRUE".to_owned()
                        } else {
                            "FALSE".to_owned()
                        }
                    }
                    _ => {
                        let (sql, kind) = plain(key)?;
                        let sql = if kind == Kind::String {
                            sql
                        } else {
                            format!("CAST({sql} AS VARCHAR)")
                        };
                        let sql = if key == "issue" {
                            // `issue:SHOP-1F` names the issue by short id
                            match value.rsplit_once('-').and_then(|(_, d)| {
                                i64::from_str_radix(&d.to_ascii_lowercase(), 36).ok()
                            }) {
                                Some(id) => format!("issue_id = {id}"),
                                None => "FALSE".to_owned(),
                            }
                        } else if let Some(list) =
                            value.strip_prefix('[').and_then(|v| v.strip_suffix(']'))
                        {
                            let items: Vec<String> = list
                                .split(',')
                                .map(|v| literal(&unquote(v.trim())))
                                .collect();
                            format!("{sql} IN ({})", items.join(", "))
                        } else if let Some(pattern) = like_pattern(&value) {
                            format!("{sql} LIKE {}", literal(&pattern))
                        } else {
                            format!("{sql} = {}", literal(&value))
                        };
                        if negated {
                            // Sentry's `!key:value` also matches events without the key
                            out.push(format!("({sql}) IS NOT TRUE"));
                            continue;
                        }
                        sql
                    }
                }
            }
            _ => {
                let text = unquote(body);
                let pattern = format!(
                    "%{}%",
                    like_pattern(&text).unwrap_or_else(|| text
                        .replace('\\', "\\\\")
                        .replace('%', "\\%")
                        .replace('_', "\\_"))
                );
                format!("title ILIKE {}", literal(&pattern))
            }
        };
        out.push(if negated {
            format!("NOT ({condition})")
        } else {
            condition
        });
    }
    Ok(out)
}

/// The `WHERE` clause shared by both endpoints.
fn where_clause(
    window: Window,
    query: Option<&str>,
    raw: &[(String, String)],
) -> Result<String, ApiError> {
    let mut conditions = vec![
        format!("timestamp >= to_timestamp_millis({})", window.start_ms),
        format!("timestamp < to_timestamp_millis({})", window.end_ms),
    ];
    let environments: Vec<String> = raw
        .iter()
        .filter(|(k, v)| k == "environment" && !v.is_empty())
        .map(|(_, v)| literal(v))
        .collect();
    if !environments.is_empty() {
        conditions.push(format!("environment IN ({})", environments.join(", ")));
    }
    conditions.extend(search_sql(query.unwrap_or_default())?);
    Ok(conditions.join(" AND "))
}

fn param<'a>(raw: &'a [(String, String)], key: &str) -> Option<&'a str> {
    raw.iter()
        .rev()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
}

fn params<'a>(raw: &'a [(String, String)], key: &str) -> Vec<&'a str> {
    raw.iter()
        .filter(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
        .filter(|v| !v.trim().is_empty())
        .collect()
}

/// Only the errors dataset is stored in `events`; other datasets are refused by name.
fn check_dataset(raw: &[(String, String)]) -> Result<(), ApiError> {
    match param(raw, "dataset") {
        None | Some("") | Some("errors") | Some("discover") => Ok(()),
        Some(other) => Err(ApiError::BadRequest(format!(
            "dataset {other:?} is not available; this server answers dataset=errors \
             (query spans and logs with SQL: the spans and logs tables)"
        ))),
    }
}

/// The caller (with `event:read` in `org`), its projects narrowed by `project=`, the window.
async fn prepare(
    state: &QueryState,
    headers: &HeaderMap,
    org: &str,
    raw: &[(String, String)],
) -> Result<(ProjectFilter, Window), ApiError> {
    let caller = state.auth.caller(headers).await?;
    check_in(&caller, org, Scope::EventRead)?;
    check_dataset(raw)?;
    let readable: Vec<Arc<Project>> = state
        .projects
        .readable(&caller.principal)
        .await?
        .into_iter()
        .filter(|p| p.org == org)
        .collect();
    let projects = only_ids(&readable, raw)?;
    let window = Window::parse(
        param(raw, "statsPeriod"),
        param(raw, "start"),
        param(raw, "end"),
        Some(DEFAULT_PERIOD),
    )?
    .ok_or_else(|| ApiError::BadRequest("statsPeriod: give a window".to_owned()))?;
    Ok((projects, window))
}

/// A value of column `kind` as Sentry answers it.
fn answer_value(kind: Kind, value: Option<&Value>) -> Value {
    let Some(value) = value.filter(|v| !v.is_null()) else {
        return Value::Null;
    };
    match kind {
        Kind::String => match value {
            Value::String(_) => value.clone(),
            other => Value::String(other.to_string()),
        },
        Kind::Integer => value
            .as_i64()
            .or_else(|| value.as_str().and_then(|s| s.parse().ok()))
            .map(Value::from)
            .unwrap_or(Value::Null),
        Kind::Date => value
            .as_i64()
            .or_else(|| value.as_str().and_then(|s| s.parse().ok()))
            .map(|ms| Value::String(date_ms(ms)))
            .unwrap_or(Value::Null),
        Kind::Issue => value
            .as_str()
            .and_then(|s| s.rsplit_once(':'))
            .and_then(|(project, id)| Some(short_id(project, id.parse().ok()?)))
            .map(Value::String)
            .unwrap_or(Value::Null),
    }
}

/// `sort=` (`-count()`, `timestamp`): a column of the query, as Sentry requires.
fn order_by(columns: &[Column], sort: Option<&str>) -> Result<Option<String>, ApiError> {
    let Some(sort) = sort.map(str::trim).filter(|s| !s.is_empty()) else {
        return Ok(None);
    };
    let (name, direction) = match sort.strip_prefix('-') {
        Some(name) => (name, "DESC"),
        None => (sort, "ASC"),
    };
    let index = columns.iter().position(|c| c.name == name).ok_or_else(|| {
        ApiError::BadRequest(format!(
            "sort {sort:?}: sort by one of the fields asked for ({})",
            columns
                .iter()
                .map(|c| c.name.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ))
    })?;
    Ok(Some(format!("c{index} {direction} NULLS LAST")))
}

fn columns_of(raw: &[(String, String)]) -> Result<Vec<Column>, ApiError> {
    let names = params(raw, "field");
    if names.is_empty() {
        return Err(ApiError::BadRequest(
            "field: name at least one column, e.g. field=title&field=count()".to_owned(),
        ));
    }
    if names.len() > MAX_FIELDS {
        return Err(ApiError::BadRequest(format!(
            "field: at most {MAX_FIELDS} columns"
        )));
    }
    let mut columns: Vec<Column> = Vec::new();
    for name in names {
        if !columns.iter().any(|c| c.name == name.trim()) {
            columns.push(column(name)?);
        }
    }
    Ok(columns)
}

/// `GET /api/0/organizations/{org}/events/` (scope `event:read`).
pub(super) async fn events(
    State(state): State<QueryState>,
    Path(org): Path<String>,
    Query(raw): Query<Vec<(String, String)>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let (projects, window) = prepare(&state, &headers, &org, &raw).await?;
    let columns = columns_of(&raw)?;
    let per_page = match param(&raw, "per_page").map(str::trim) {
        None | Some("") => DEFAULT_PER_PAGE,
        Some(n) => n
            .parse::<usize>()
            .ok()
            .filter(|n| *n >= 1)
            .map(|n| n.min(MAX_PER_PAGE))
            .ok_or_else(|| {
                ApiError::BadRequest(format!("per_page {n:?} is not a number of 1 or more"))
            })?,
    };
    let offset = cursor_offset(param(&raw, "cursor"))?;
    let clause = where_clause(window, param(&raw, "query"), &raw)?;
    let select: Vec<String> = columns
        .iter()
        .enumerate()
        .map(|(i, c)| format!("{} AS c{i}", c.sql))
        .collect();
    let groups: Vec<String> = columns
        .iter()
        .enumerate()
        .filter(|(_, c)| !c.aggregate)
        .map(|(i, _)| format!("c{i}"))
        .collect();
    let any_aggregate = columns.iter().any(|c| c.aggregate);
    let mut sql = format!("SELECT {} FROM events WHERE {clause}", select.join(", "));
    if any_aggregate && !groups.is_empty() {
        sql.push_str(&format!(" GROUP BY {}", groups.join(", ")));
    }
    let order = match order_by(&columns, param(&raw, "sort"))? {
        Some(order) => Some(order),
        None if !any_aggregate => Some("timestamp DESC".to_owned()),
        None => None,
    };
    if let Some(order) = order {
        sql.push_str(&format!(" ORDER BY {order}"));
    }
    sql.push_str(&format!(" LIMIT {} OFFSET {offset}", per_page + 1));
    let found = rows(&state, &projects, &sql).await?;
    let more = found.len() > per_page;
    let data: Vec<Value> = found
        .iter()
        .take(per_page)
        .map(|row| {
            let mut out = Map::new();
            for (i, c) in columns.iter().enumerate() {
                out.insert(
                    c.name.clone(),
                    answer_value(c.kind, row.get(&format!("c{i}"))),
                );
            }
            Value::Object(out)
        })
        .collect();
    let fields: Map<String, Value> = columns
        .iter()
        .map(|c| (c.name.clone(), Value::from(c.kind.name())))
        .collect();
    let units: Map<String, Value> = columns
        .iter()
        .map(|c| (c.name.clone(), Value::Null))
        .collect();
    let body = json!({
        "data": data,
        "meta": {
            "fields": fields,
            "units": units,
            "isMetricsData": false,
            "tips": {},
            "dataset": "errors",
        },
    });
    let url = format!(
        "{}/api/0/organizations/{org}/events/",
        state.public_url.trim_end_matches('/')
    );
    let mut response = Json(body).into_response();
    if let Ok(link) = HeaderValue::from_str(&link_header(&url, &raw, offset, per_page, more)) {
        response.headers_mut().insert(header::LINK, link);
    }
    Ok(response)
}

/// `interval=` in seconds, or one giving about 100 points over `window`.
fn interval_seconds(raw: &[(String, String)], window: Window) -> Result<i64, ApiError> {
    let span = ((window.end_ms - window.start_ms) / 1000).max(1);
    let seconds = match param(raw, "interval")
        .map(str::trim)
        .filter(|i| !i.is_empty())
    {
        Some(interval) => period_seconds("interval", interval)?,
        None => (span / 100).max(60),
    };
    if span / seconds > MAX_POINTS {
        return Err(ApiError::BadRequest(format!(
            "interval: {seconds}s over this window gives more than {MAX_POINTS} points; \
             give a longer interval"
        )));
    }
    Ok(seconds)
}

/// `GET /api/0/organizations/{org}/events-stats/` (scope `event:read`): for each `yAxis`
/// aggregate (default `count()`) a series of `[time, [{"count": n}]]` per interval; with
/// plain fields in `field=` and `topEvents=N`, one series per top group, keyed by the
/// group's values joined by `,` (Sentry's shapes).
pub(super) async fn events_stats(
    State(state): State<QueryState>,
    Path(org): Path<String>,
    Query(raw): Query<Vec<(String, String)>>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let (projects, window) = prepare(&state, &headers, &org, &raw).await?;
    let interval = interval_seconds(&raw, window)?;
    let mut y_axis: Vec<Column> = Vec::new();
    for name in params(&raw, "yAxis") {
        let c = column(name)?;
        if !c.aggregate {
            return Err(ApiError::BadRequest(format!(
                "yAxis {name:?} is not an aggregate such as count()"
            )));
        }
        if !y_axis.iter().any(|y| y.name == c.name) {
            y_axis.push(c);
        }
    }
    if y_axis.is_empty() {
        y_axis.push(column("count()")?);
    }
    let top: usize = match param(&raw, "topEvents").map(str::trim) {
        None | Some("") => 0,
        Some(n) => n
            .parse::<usize>()
            .ok()
            .filter(|n| *n <= MAX_TOP)
            .ok_or_else(|| {
                ApiError::BadRequest(format!(
                    "topEvents {n:?} is not a number from 0 to {MAX_TOP}"
                ))
            })?,
    };
    let groups: Vec<Column> = if top > 0 {
        params(&raw, "field")
            .into_iter()
            .map(column)
            .collect::<Result<Vec<_>, _>>()?
            .into_iter()
            .filter(|c| !c.aggregate)
            .collect()
    } else {
        Vec::new()
    };
    let clause = where_clause(window, param(&raw, "query"), &raw)?;
    let step_ms = interval * 1000;
    let first = window.start_ms.div_euclid(step_ms) * step_ms;
    let mut group_clause = String::new();
    let mut top_keys: Vec<Vec<Value>> = Vec::new();
    if !groups.is_empty() {
        // the top groups by the first yAxis (or by `sort=` when it names one)
        let select: Vec<String> = groups
            .iter()
            .enumerate()
            .map(|(i, g)| format!("{} AS g{i}", g.sql))
            .collect();
        let names: Vec<String> = (0..groups.len()).map(|i| format!("g{i}")).collect();
        let sort = param(&raw, "sort").unwrap_or_default();
        let rank = y_axis
            .iter()
            .find(|y| sort.trim_start_matches('-') == y.name)
            .unwrap_or(&y_axis[0]);
        let direction = if sort.starts_with('-') || sort.is_empty() {
            "DESC"
        } else {
            "ASC"
        };
        let found = rows(
            &state,
            &projects,
            &format!(
                "SELECT {}, {} AS score FROM events WHERE {clause} GROUP BY {} \
                 ORDER BY score {direction} LIMIT {top}",
                select.join(", "),
                rank.sql,
                names.join(", ")
            ),
        )
        .await?;
        for row in &found {
            top_keys.push(
                (0..groups.len())
                    .map(|i| row.get(&format!("g{i}")).cloned().unwrap_or(Value::Null))
                    .collect(),
            );
        }
        if top_keys.is_empty() {
            return Ok(Json(json!({})));
        }
        // rows of the top groups only
        let tuples: Vec<String> = top_keys
            .iter()
            .map(|key| {
                let parts: Vec<String> = groups
                    .iter()
                    .zip(key)
                    .map(|(g, v)| match v {
                        Value::Null => format!("{} IS NULL", g.sql),
                        Value::String(s) => format!("{} = {}", g.sql, literal(s)),
                        other => format!("{} = {}", g.sql, other),
                    })
                    .collect();
                format!("({})", parts.join(" AND "))
            })
            .collect();
        group_clause = format!(" AND ({})", tuples.join(" OR "));
    }
    let mut select = vec![format!(
        "(CAST(timestamp AS BIGINT) - {first}) / {step_ms} * {step_ms} + {first} AS bucket"
    )];
    let mut group_by = vec!["bucket".to_owned()];
    for (i, g) in groups.iter().enumerate() {
        select.push(format!("{} AS g{i}", g.sql));
        group_by.push(format!("g{i}"));
    }
    for (i, y) in y_axis.iter().enumerate() {
        select.push(format!("{} AS y{i}", y.sql));
    }
    let found = rows(
        &state,
        &projects,
        &format!(
            "SELECT {} FROM events WHERE {clause}{group_clause} GROUP BY {}",
            select.join(", "),
            group_by.join(", ")
        ),
    )
    .await?;
    let points = usize::try_from((window.end_ms - first) / step_ms + 1).unwrap_or(1);
    let key_of = |row: &Row| -> Vec<Value> {
        (0..groups.len())
            .map(|i| row.get(&format!("g{i}")).cloned().unwrap_or(Value::Null))
            .collect()
    };
    // (group index, yAxis index) -> counts per bucket
    let mut series: BTreeMap<(usize, usize), Vec<Option<i64>>> = BTreeMap::new();
    for row in &found {
        let group = if groups.is_empty() {
            0
        } else {
            let key = key_of(row);
            match top_keys.iter().position(|k| *k == key) {
                Some(g) => g,
                None => continue,
            }
        };
        let Some(slot) = usize::try_from((int(row, "bucket") - first) / step_ms)
            .ok()
            .filter(|s| *s < points)
        else {
            continue;
        };
        for (y, column) in y_axis.iter().enumerate() {
            let value = match column.kind {
                Kind::Date => row
                    .get(&format!("y{y}"))
                    .and_then(Value::as_i64)
                    .map(|ms| ms / 1000),
                _ => Some(int(row, &format!("y{y}"))),
            };
            series
                .entry((group, y))
                .or_insert_with(|| vec![None; points])[slot] = value;
        }
    }
    let one = |group: usize, y: usize, order: usize| -> Value {
        let values = series.get(&(group, y));
        let data: Vec<Value> = (0..points)
            .map(|slot| {
                let at = (first + step_ms * slot as i64) / 1000;
                let count = values.and_then(|v| v[slot]);
                // no event in an interval is a count of 0; a time aggregate is null
                let count = match (count, y_axis[y].kind) {
                    (Some(n), _) => Value::from(n),
                    (None, Kind::Integer) => Value::from(0),
                    (None, _) => Value::Null,
                };
                json!([at, [{"count": count}]])
            })
            .collect();
        json!({
            "data": data,
            "order": order,
            "start": first / 1000,
            "end": window.end_ms / 1000,
            "isMetricsData": false,
            "meta": {"fields": {y_axis[y].name.clone(): y_axis[y].kind.name()}, "units": {}},
        })
    };
    let by_axis = |group: usize, order: usize| -> Value {
        if y_axis.len() == 1 {
            return one(group, 0, order);
        }
        let mut out = Map::new();
        for (y, column) in y_axis.iter().enumerate() {
            out.insert(column.name.clone(), one(group, y, y));
        }
        if !groups.is_empty() {
            out.insert("order".to_owned(), Value::from(order));
        }
        Value::Object(out)
    };
    if groups.is_empty() {
        return Ok(Json(by_axis(0, 0)));
    }
    let mut out = Map::new();
    for (g, key) in top_keys.iter().enumerate() {
        let name: Vec<String> = key
            .iter()
            .zip(&groups)
            .map(|(v, c)| match answer_value(c.kind, Some(v)) {
                Value::String(s) => s,
                Value::Null => String::new(),
                other => other.to_string(),
            })
            .collect();
        out.insert(name.join(","), by_axis(g, g));
    }
    Ok(Json(Value::Object(out)))
}

/// The tag keys of `issue_tags` rows the query finds, in Sentry's tag key shape.
async fn tag_keys(
    state: &QueryState,
    projects: &ProjectFilter,
    filter: &str,
) -> Result<Vec<Value>, ApiError> {
    let found = rows(
        state,
        projects,
        &format!(
            "SELECT key, count(DISTINCT value) AS n, sum(events) AS total FROM issue_tags \
             WHERE {filter} GROUP BY key ORDER BY total DESC, key LIMIT 1000"
        ),
    )
    .await?;
    Ok(found
        .iter()
        .filter_map(|r| {
            let key = text(r, "key")?;
            Some(json!({
                "key": key,
                "name": key,
                "totalValues": int(r, "total"),
                "uniqueValues": int(r, "n"),
            }))
        })
        .collect())
}

/// `GET /api/0/organizations/{org}/tags/` (scope `event:read`): the tag keys seen in the
/// window (`statsPeriod`, default 14 days) of the caller's projects (`project=` narrows).
pub(super) async fn organization_tags(
    State(state): State<QueryState>,
    Path(org): Path<String>,
    Query(raw): Query<Vec<(String, String)>>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let (projects, window) = prepare(&state, &headers, &org, &raw).await?;
    let keys = tag_keys(
        &state,
        &projects,
        &format!("hour >= to_timestamp_millis({})", window.start_ms),
    )
    .await?;
    Ok(Json(Value::Array(keys)))
}

/// `GET /api/0/organizations/{org}/issues/{id}/tags/` (scope `event:read`): the issue's tag
/// keys with their counts and top values.
pub(super) async fn issue_tags(
    State(state): State<QueryState>,
    Path((org, issue)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let (_, projects, row) =
        super::sentry_issues::issue_in(&state, &headers, &org, &issue, Scope::EventRead).await?;
    let id = int(&row, "issue_id");
    let mut keys = tag_keys(&state, &projects, &format!("issue_id = {id}")).await?;
    let values = rows(
        &state,
        &projects,
        &format!(
            "SELECT key, value, sum(events) AS n, CAST(min(hour) AS BIGINT) AS first_ms, \
             CAST(max(hour) AS BIGINT) AS last_ms FROM issue_tags WHERE issue_id = {id} \
             GROUP BY key, value ORDER BY key, n DESC, value LIMIT 10000"
        ),
    )
    .await?;
    for key in &mut keys {
        let name = key["key"].as_str().unwrap_or_default().to_owned();
        let top: Vec<Value> = values
            .iter()
            .filter(|r| text(r, "key") == Some(name.as_str()) && text(r, "value").is_some())
            .take(9)
            .map(|r| {
                let v = text(r, "value").unwrap_or_default();
                json!({"key": name, "value": v, "name": v, "count": int(r, "n"),
                       "firstSeen": date_ms(int(r, "first_ms")),
                       "lastSeen": date_ms(int(r, "last_ms"))})
            })
            .collect();
        if let Some(object) = key.as_object_mut() {
            object.insert("topValues".to_owned(), Value::Array(top));
        }
    }
    Ok(Json(Value::Array(keys)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_come_from_start_and_end_or_a_period() {
        let w = Window::parse(
            None,
            Some("2026-01-31T12:00:00"),
            Some("2026-01-31T13:00:00Z"),
            None,
        )
        .unwrap()
        .unwrap();
        assert_eq!(w.end_ms - w.start_ms, 3_600_000);
        let w = Window::parse(Some("24h"), None, None, None)
            .unwrap()
            .unwrap();
        assert_eq!(w.end_ms - w.start_ms, 86_400_000);
        assert_eq!(Window::parse(None, None, None, None).unwrap(), None);
        for (period, start, end) in [
            (Some("24x"), None, None),
            (Some("h"), None, None),
            (None, Some("2026-01-31"), Some("2026-01-31T13:00:00Z")),
            (None, Some("2026-01-31T12:00:00"), None),
            (
                None,
                Some("2026-01-31T14:00:00"),
                Some("2026-01-31T13:00:00"),
            ),
        ] {
            assert!(
                Window::parse(period, start, end, None).is_err(),
                "{period:?} {start:?} {end:?}"
            );
        }
    }

    #[test]
    fn searches_compile_to_sql_conditions() {
        assert_eq!(
            search_sql(r#"level:error !environment:prod release:"shop@1.0" timeout"#).unwrap(),
            [
                "level = 'error'",
                "(environment = 'prod') IS NOT TRUE",
                "release = 'shop@1.0'",
                "title ILIKE '%timeout%'",
            ]
        );
        assert_eq!(
            search_sql("browser:Chrome* has:user.email").unwrap(),
            ["tags['browser'] LIKE 'Chrome%'", "user_email IS NOT NULL"]
        );
        assert_eq!(search_sql("issue:SHOP-10").unwrap(), ["issue_id = 36"]);
        assert_eq!(
            search_sql("level:[error, fatal]").unwrap(),
            ["level IN ('error', 'fatal')"]
        );
        assert!(search_sql("a OR b").is_err());
        assert!(search_sql("is:unresolved").is_err());
        assert!(search_sql(r#"message:"open"#).is_err());
        assert!(search_sql("bad field!:x").is_err());
    }

    #[test]
    fn fields_and_aggregates_compile_or_are_refused_by_name() {
        assert_eq!(column("count()").unwrap().sql, "count(*)");
        assert_eq!(
            column("count_unique(user)").unwrap().sql,
            "count(DISTINCT coalesce(user_email, user_username, user_id, user_ip))"
        );
        assert_eq!(column("tags[browser]").unwrap().sql, "tags['browser']");
        assert_eq!(column("browser.name").unwrap().sql, "tags['browser.name']");
        let err = column("p95(transaction.duration)").unwrap_err().to_string();
        assert!(err.contains("p95(transaction.duration)"), "{err}");
        let err = column("tags[x'y]").unwrap_err().to_string();
        assert!(err.contains("not a field"), "{err}");
    }
}
