//! `GET /organizations/{org}/issues/`: the issue stream, and the bulk state changes it posts.

use std::collections::HashMap;
use std::sync::Arc;

use askama::Template;
use axum::Extension;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use chrono::Utc;
use serde::Deserialize;

use super::search::{Conditions, Search, literal};
use super::svg;
use super::{OrgCtx, PERIODS, WebError, WebState, When, encode, encode_path, html, local_path};
use crate::api::{Caller, ClientInfo};
use crate::issues::Change;
use crate::people::{Actor, Client};
use crate::tenancy::{Principal, Scope};

/// Issues per page.
const PAGE_SIZE: usize = 25;
/// The last page one can ask for (offsets beyond it are refused).
const MAX_PAGE: usize = 400;

/// The stream's URL parameters; every one is optional.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct StreamParams {
    /// The search; absent means `is:unresolved`, empty means everything.
    query: Option<String>,
    project: Option<String>,
    environment: Option<String>,
    release: Option<String>,
    level: Option<String>,
    status: Option<String>,
    period: Option<String>,
    sort: Option<String>,
    page: Option<String>,
}

/// The sorts offered: `(name, label, ORDER BY)`.
const SORTS: [(&str, &str, &str); 4] = [
    ("date", "Last seen", "last_seen DESC"),
    ("new", "First seen", "first_seen DESC"),
    ("freq", "Events", "event_count DESC"),
    ("user", "Users", "users DESC"),
];

const LEVELS: [&str; 5] = ["fatal", "error", "warning", "info", "debug"];
const STATUSES: [&str; 3] = ["unresolved", "resolved", "ignored"];

fn nonempty(v: &Option<String>) -> Option<&str> {
    v.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

/// What the stream's parameters ask for, checked.
pub(crate) struct StreamQuery {
    pub(crate) search: String,
    pub(crate) project: String,
    pub(crate) environment: String,
    pub(crate) release: String,
    pub(crate) level: String,
    pub(crate) status: String,
    pub(crate) period: String,
    pub(crate) sort: String,
    pub(crate) page: usize,
    /// The search's conditions plus the filters'.
    conditions: Conditions,
    /// The search's error, shown above the (then empty) list.
    pub(crate) error: Option<String>,
}

impl StreamQuery {
    /// The stream `params` ask for; `me` is the caller's email address (`assigned:me`).
    pub(crate) fn new(params: &StreamParams, me: Option<&str>) -> Result<Self, WebError> {
        let period = nonempty(&params.period).unwrap_or("14d").to_owned();
        super::period_seconds(&period)?;
        let sort = nonempty(&params.sort).unwrap_or("date").to_owned();
        if !SORTS.iter().any(|(n, _, _)| *n == sort) {
            return Err(WebError::BadRequest(format!(
                "sort {sort:?} is not one of date, new, freq, user"
            )));
        }
        let status = nonempty(&params.status).unwrap_or("").to_owned();
        if !status.is_empty() && !STATUSES.contains(&status.as_str()) {
            return Err(WebError::BadRequest(format!(
                "status {status:?} is not one of unresolved, resolved, ignored"
            )));
        }
        let page = match nonempty(&params.page) {
            None => 0,
            Some(p) => p
                .parse::<usize>()
                .ok()
                .filter(|p| *p >= 1 && *p <= MAX_PAGE)
                .map(|p| p - 1)
                .ok_or_else(|| {
                    WebError::BadRequest(format!("page {p:?} is not a number from 1 to {MAX_PAGE}"))
                })?,
        };
        let search = params
            .query
            .clone()
            .unwrap_or_else(|| "is:unresolved".to_owned());
        let (mut conditions, error) = match Search::parse(&search) {
            Ok(parsed) => (parsed.conditions(me), None),
            Err(err) => (Conditions::default(), Some(err.to_string())),
        };
        let text = |v: &Option<String>| nonempty(v).unwrap_or("").to_owned();
        let query = Self {
            search,
            project: text(&params.project),
            environment: text(&params.environment),
            release: text(&params.release),
            level: text(&params.level),
            status,
            period,
            sort,
            page,
            conditions: Conditions::default(),
            error,
        };
        if !query.project.is_empty() {
            conditions.issue_equals("project", &query.project);
        }
        if !query.level.is_empty() {
            conditions.issue_equals("level", &query.level);
        }
        if !query.status.is_empty() {
            conditions.issue_equals("status", &query.status);
        }
        if !query.environment.is_empty() {
            conditions.tag_equals("environment", &query.environment);
        }
        if !query.release.is_empty() {
            conditions.tag_equals("release", &query.release);
        }
        Ok(Self {
            conditions,
            ..query
        })
    }

    fn since(&self) -> String {
        let seconds = super::period_seconds(&self.period).unwrap_or(14 * 86_400);
        format!("now() - INTERVAL '{seconds} seconds'")
    }

    /// Asks which issues' rollups of the searched tags overflowed in the period, so that the
    /// statement asks their events too (see `search`).
    async fn find_overflow(&mut self, session: &super::Session<'_>) -> Result<(), WebError> {
        let Some(sql) = self.conditions.overflow_sql(&self.since()) else {
            return Ok(());
        };
        let t = session.table(&sql).await?;
        self.conditions
            .set_overflow((0..t.rows.len()).map(|r| (t.text(r, "key"), t.int(r, "issue_id"))));
        Ok(())
    }

    fn where_clause(&self) -> String {
        let since = self.since();
        let mut clause = format!("last_seen >= {since}");
        if let Some(more) = self.conditions.where_clause(&since) {
            clause.push_str(" AND ");
            clause.push_str(&more);
        }
        clause
    }

    fn order(&self) -> &'static str {
        SORTS
            .iter()
            .find(|(n, _, _)| *n == self.sort)
            .map_or("last_seen DESC", |(_, _, o)| o)
    }

    /// The page's statement (times as epoch milliseconds for the page to format).
    fn sql(&self) -> String {
        format!(
            "SELECT issue_id, project, title, culprit, level, status, regressed, event_count, \
             users, CAST(first_seen AS BIGINT) AS first_seen_ms, \
             CAST(last_seen AS BIGINT) AS last_seen_ms FROM issues WHERE {} ORDER BY {}, \
             issue_id DESC LIMIT {} OFFSET {}",
            self.where_clause(),
            self.order(),
            PAGE_SIZE + 1,
            self.page * PAGE_SIZE
        )
    }

    /// The same list as a statement to read and change in the SQL console.
    pub(crate) fn console_sql(&self) -> String {
        format!(
            "SELECT issue_id, project, title, culprit, level, status, event_count, users, \
             first_seen, last_seen\nFROM issues\nWHERE {}\nORDER BY {}\nLIMIT 100",
            self.where_clause(),
            self.order()
        )
    }

    /// The parameters that differ from the defaults, as `key=value` pairs, without `page`.
    fn params(&self) -> Vec<(&'static str, &str)> {
        let mut out = Vec::new();
        if self.search != "is:unresolved" {
            out.push(("query", self.search.as_str()));
        }
        for (key, value, default) in [
            ("project", &self.project, ""),
            ("environment", &self.environment, ""),
            ("release", &self.release, ""),
            ("level", &self.level, ""),
            ("status", &self.status, ""),
            ("period", &self.period, "14d"),
            ("sort", &self.sort, "date"),
        ] {
            if value != default {
                out.push((key, value.as_str()));
            }
        }
        out
    }

    /// The stream's URL with these parameters and `page` (1-based; 1 is left out).
    fn href(&self, org: &str, page: usize) -> String {
        let mut pairs: Vec<String> = self
            .params()
            .into_iter()
            .map(|(k, v)| format!("{k}={}", encode(v)))
            .collect();
        if page > 1 {
            pairs.push(format!("page={page}"));
        }
        let base = format!("/organizations/{}/issues/", encode_path(org));
        if pairs.is_empty() {
            base
        } else {
            format!("{base}?{}", pairs.join("&"))
        }
    }
}

pub(crate) struct IssueRow {
    pub(crate) id: i64,
    pub(crate) href: String,
    pub(crate) project: String,
    pub(crate) title: String,
    pub(crate) culprit: String,
    pub(crate) level: String,
    pub(crate) status: String,
    pub(crate) regressed: bool,
    pub(crate) events: i64,
    pub(crate) users: i64,
    pub(crate) first: When,
    pub(crate) last: When,
    pub(crate) spark: String,
}

/// A `<select>` choice.
pub(crate) struct Choice {
    pub(crate) value: String,
    pub(crate) label: String,
    pub(crate) selected: bool,
}

fn choices<'a>(items: impl IntoIterator<Item = (&'a str, &'a str)>, current: &str) -> Vec<Choice> {
    items
        .into_iter()
        .map(|(value, label)| Choice {
            value: value.to_owned(),
            label: label.to_owned(),
            selected: value == current,
        })
        .collect()
}

#[derive(Template)]
#[template(path = "stream.html")]
struct StreamPage {
    layout: super::Layout,
    q: StreamQuery,
    rows: Vec<IssueRow>,
    projects: Vec<Choice>,
    levels: Vec<Choice>,
    statuses: Vec<Choice>,
    periods: Vec<Choice>,
    sorts: Vec<Choice>,
    sql_href: String,
    self_href: String,
    prev_href: String,
    next_href: String,
    page_number: usize,
    /// No issue at all yet: how to send the first event.
    onboarding: bool,
    dsn: String,
    can_act: bool,
}

pub(crate) async fn page(
    State(state): State<WebState>,
    Extension(principal): Extension<Arc<Principal>>,
    actor: Option<Extension<Actor>>,
    Path(org): Path<String>,
    Query(params): Query<StreamParams>,
) -> Result<Response, WebError> {
    let ctx = OrgCtx::new(&state, principal, org).await?;
    let mut q = StreamQuery::new(&params, actor.as_ref().map(|a| a.0.email.as_str()))?;
    let now = Utc::now();
    let mut rows = Vec::new();
    let mut more = false;
    let mut onboarding = false;
    if q.error.is_none() {
        let session = ctx.session(&state.node.query).await?;
        q.find_overflow(&session).await?;
        let table = session.table(&q.sql()).await?;
        more = table.rows.len() > PAGE_SIZE;
        let shown = table.rows.len().min(PAGE_SIZE);
        let ids: Vec<i64> = (0..shown).map(|r| table.int(r, "issue_id")).collect();
        let sparks = sparklines(&session, &ids, now.timestamp_millis()).await?;
        for r in 0..shown {
            let id = table.int(r, "issue_id");
            rows.push(IssueRow {
                id,
                href: format!("/organizations/{}/issues/{id}/", encode_path(&ctx.org)),
                project: table.text(r, "project"),
                title: table.text(r, "title"),
                culprit: table.text(r, "culprit"),
                level: table.text(r, "level"),
                status: table.text(r, "status"),
                regressed: table.get(r, "regressed") == Some("true"),
                events: table.int(r, "event_count"),
                users: table.int(r, "users"),
                first: When::from_millis(table.int(r, "first_seen_ms"), now),
                last: When::from_millis(table.int(r, "last_seen_ms"), now),
                spark: sparks.get(&id).cloned().unwrap_or_default(),
            });
        }
        if rows.is_empty() && q.page == 0 {
            let any = session.table("SELECT count(*) AS n FROM issues").await?;
            onboarding = any.int(0, "n") == 0;
        }
    }
    let public_url = super::public_url(&state);
    let dsn = ctx
        .projects
        .iter()
        .find(|p| q.project.is_empty() || p.name == q.project)
        .and_then(|p| p.dsn(&public_url))
        .unwrap_or_default();
    let page_number = q.page + 1;
    let page = StreamPage {
        layout: ctx.layout("Issues".to_owned(), "issues", &q.project),
        projects: choices(
            std::iter::once(("", "All projects")).chain(
                ctx.projects
                    .iter()
                    .map(|p| (p.name.as_str(), p.name.as_str())),
            ),
            &q.project,
        ),
        levels: choices(
            std::iter::once(("", "Any level")).chain(LEVELS.iter().map(|l| (*l, *l))),
            &q.level,
        ),
        statuses: choices(
            std::iter::once(("", "Any status")).chain(STATUSES.iter().map(|s| (*s, *s))),
            &q.status,
        ),
        periods: choices(PERIODS.iter().map(|(n, _)| (*n, *n)), &q.period),
        sorts: choices(SORTS.iter().map(|(n, l, _)| (*n, *l)), &q.sort),
        sql_href: format!(
            "/organizations/{}/sql/?sql={}",
            encode_path(&ctx.org),
            encode(&q.console_sql())
        ),
        self_href: q.href(&ctx.org, page_number),
        prev_href: if q.page > 0 {
            q.href(&ctx.org, page_number - 1)
        } else {
            String::new()
        },
        next_href: if more && page_number < MAX_PAGE {
            q.href(&ctx.org, page_number + 1)
        } else {
            String::new()
        },
        page_number,
        onboarding,
        dsn,
        can_act: ctx.principal.require(Scope::EventWrite).is_ok(),
        rows,
        q,
    };
    html(&page)
}

/// A 24-hour sparkline (one bar per hour) for each of `ids`, as SVG.
async fn sparklines(
    session: &super::Session<'_>,
    ids: &[i64],
    now_ms: i64,
) -> Result<HashMap<i64, String>, WebError> {
    const HOUR: i64 = 3_600_000;
    if ids.is_empty() {
        return Ok(HashMap::new());
    }
    let list = ids
        .iter()
        .map(i64::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    let table = session
        .table(&format!(
            "SELECT issue_id, CAST(hour AS BIGINT) AS bucket, sum(events) AS n \
             FROM issue_hours WHERE hour > now() - INTERVAL '25 hours' \
             AND issue_id IN ({list}) GROUP BY 1, 2"
        ))
        .await?;
    let mut counts: HashMap<i64, HashMap<i64, i64>> = HashMap::new();
    for r in 0..table.rows.len() {
        counts
            .entry(table.int(r, "issue_id"))
            .or_default()
            .insert(table.int(r, "bucket"), table.int(r, "n"));
    }
    let empty = HashMap::new();
    let mut out = HashMap::new();
    for id in ids {
        let hours = svg::buckets(now_ms, HOUR, 24, counts.get(id).unwrap_or(&empty));
        let total: i64 = hours.iter().map(|(_, n)| n).sum();
        let values: Vec<(String, i64)> = hours
            .iter()
            .map(|(start, n)| (format!("{}: {n} events", svg::bucket_label(*start)), *n))
            .collect();
        let chart = svg::bars(
            &values,
            96,
            24,
            "spark",
            format!("{total} events in the last 24 hours"),
        );
        out.insert(*id, askama::Template::render(&chart)?);
    }
    Ok(out)
}

/// Reads a form body: every `key=value` pair, in order (keys may repeat).
pub(crate) fn form(body: &[u8]) -> Vec<(String, String)> {
    url::form_urlencoded::parse(body)
        .map(|(k, v)| (k.into_owned(), v.into_owned()))
        .collect()
}

/// The change a form asks for: `action` = `resolve`, `reopen` or `ignore` (with `for` =
/// `forever`, `1h`, `24h`, `7d` or a number of further events).
pub(crate) fn change_of(action: &str, ignore_for: Option<&str>) -> Result<Change, WebError> {
    match action {
        "resolve" => Ok(Change::Resolve),
        "resolve-next" => Ok(Change::ResolveInNextRelease),
        "reopen" => Ok(Change::Reopen),
        "unmerge" => Ok(Change::Unmerge),
        "ignore" => {
            let mut change = Change::Ignore {
                until: None,
                count: None,
            };
            match ignore_for.unwrap_or("forever") {
                "" | "forever" => {}
                duration @ ("1h" | "24h" | "7d") => {
                    let seconds = super::period_seconds(duration)?;
                    change = Change::Ignore {
                        until: Some(Utc::now() + chrono::Duration::seconds(seconds)),
                        count: None,
                    };
                }
                count => {
                    let n = count.parse::<u64>().ok().filter(|n| *n > 0).ok_or_else(|| {
                        WebError::BadRequest(format!(
                            "ignore for {count:?}: use forever, 1h, 24h, 7d or a number of events"
                        ))
                    })?;
                    change = Change::Ignore {
                        until: None,
                        count: Some(n),
                    };
                }
            }
            Ok(change)
        }
        other => Err(WebError::NotFound(format!(
            "no action {other:?}: use resolve, resolve-next, ignore, reopen, merge or unmerge"
        ))),
    }
}

/// Applies `change` to `issue_id` as the HTTP API does (scope `event:write`, an issue of the
/// page's projects, an audit log entry), for the person or token `actor` / `ctx` names.
pub(crate) async fn apply(
    state: &WebState,
    ctx: &OrgCtx,
    actor: Option<&Actor>,
    client: &Client,
    issue_id: i64,
    change: Change,
) -> Result<(), WebError> {
    let who = Caller {
        principal: Arc::clone(&ctx.principal),
        actor: actor.cloned(),
    };
    crate::api::change_issue(
        &state.node.query,
        &state.node.people,
        &who,
        &ctx.filter,
        client,
        issue_id,
        change,
    )
    .await?;
    Ok(())
}

/// `POST /organizations/{org}/issues/bulk/`: form `action`, `issue` (repeated), optional
/// `for` (ignore) and `next` (where to go back to).
pub(crate) async fn bulk(
    State(state): State<WebState>,
    Extension(principal): Extension<Arc<Principal>>,
    actor: Option<Extension<Actor>>,
    ClientInfo(client): ClientInfo,
    Path(org): Path<String>,
    body: Bytes,
) -> Result<Response, WebError> {
    let ctx = OrgCtx::new(&state, principal, org).await?;
    let fields = form(&body);
    let get = |name: &str| {
        fields
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    let action = get("action").unwrap_or("");
    let change = if action == "merge" {
        None
    } else {
        Some(change_of(action, get("for"))?)
    };
    let mut ids = Vec::new();
    for (key, value) in &fields {
        if key == "issue" {
            ids.push(value.parse::<i64>().map_err(|_| {
                WebError::BadRequest(format!("issue {value:?} is not an issue id"))
            })?);
        }
    }
    if ids.is_empty() {
        return Err(WebError::BadRequest(
            "select at least one issue for the action".to_owned(),
        ));
    }
    let changes: Vec<(i64, Change)> = match change {
        Some(change) => ids.into_iter().map(|id| (id, change.clone())).collect(),
        // Into the one with the most events, as Sentry does.
        None => {
            let into = merge_primary(&state, &ctx, &ids).await?;
            ids.into_iter()
                .filter(|id| *id != into)
                .map(|id| (id, Change::Merge { into }))
                .collect()
        }
    };
    for (id, change) in changes {
        apply(
            &state,
            &ctx,
            actor.as_ref().map(|a| &a.0),
            &client,
            id,
            change,
        )
        .await?;
    }
    let back = local_path(get("next"))
        .map(str::to_owned)
        .unwrap_or_else(|| format!("/organizations/{}/issues/", encode_path(&ctx.org)));
    Ok(Redirect::to(&back).into_response())
}

/// The issue of `ids` the others merge into: the one with the most events.
async fn merge_primary(state: &WebState, ctx: &OrgCtx, ids: &[i64]) -> Result<i64, WebError> {
    if ids.len() < 2 {
        return Err(WebError::BadRequest(
            "select at least two issues to merge".to_owned(),
        ));
    }
    let list: Vec<String> = ids.iter().map(i64::to_string).collect();
    let session = ctx.session(&state.node.query).await?;
    let t = session
        .table(&format!(
            "SELECT issue_id FROM issues WHERE issue_id IN ({}) AND merged_into IS NULL \
             ORDER BY event_count DESC, issue_id LIMIT 1",
            list.join(", ")
        ))
        .await?;
    if t.rows.is_empty() {
        return Err(WebError::BadRequest(
            "none of the selected issues can take the others: each is merged already".to_owned(),
        ));
    }
    Ok(t.int(0, "issue_id"))
}

/// The stream filtered by one tag (or release / environment) value, for links from the issue
/// page's tag distributions.
pub(crate) fn tag_href(org: &str, key: &str, value: &str) -> String {
    let base = format!("/organizations/{}/issues/", encode_path(org));
    match key {
        "release" | "environment" => format!("{base}?{key}={}", encode(value)),
        _ => {
            let quoted = format!("\"{}\"", value.replace('\\', "\\\\").replace('"', "\\\""));
            let term = if key
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "_-.".contains(c))
            {
                format!("is:unresolved {key}:{quoted}")
            } else {
                // a key the search syntax cannot name: open the stream unfiltered by it
                "is:unresolved".to_owned()
            };
            format!("{base}?query={}", encode(&term))
        }
    }
}

/// `literal` for the issue page's queries.
pub(crate) fn quote(value: &str) -> String {
    literal(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filters_and_search_compile_to_one_where_clause() {
        let params = StreamParams {
            query: Some("is:unresolved browser:Firefox crash".into()),
            project: Some("web".into()),
            environment: Some("prod".into()),
            period: Some("24h".into()),
            sort: Some("freq".into()),
            page: Some("2".into()),
            ..Default::default()
        };
        let q = StreamQuery::new(&params, None).unwrap();
        let sql = q.sql();
        assert!(
            sql.contains("last_seen >= now() - INTERVAL '86400 seconds' AND status = 'unresolved'"),
            "{sql}"
        );
        assert!(sql.contains("project = 'web'"), "{sql}");
        assert!(
            sql.contains(
                "issue_id IN (SELECT issue_id FROM issue_tags WHERE hour >= date_trunc('hour', \
                 now() - INTERVAL '86400 seconds') AND key = 'browser' AND value = 'Firefox') \
                 AND issue_id IN (SELECT issue_id FROM issue_tags WHERE hour >= \
                 date_trunc('hour', now() - INTERVAL '86400 seconds') AND key = 'environment' \
                 AND value = 'prod')"
            ),
            "{sql}"
        );
        assert!(
            sql.ends_with("ORDER BY event_count DESC, issue_id DESC LIMIT 26 OFFSET 25"),
            "{sql}"
        );
        assert_eq!(
            q.href("default", 3),
            "/organizations/default/issues/?query=is%3Aunresolved+browser%3AFirefox+crash\
             &project=web&environment=prod&period=24h&sort=freq&page=3"
        );
    }

    #[test]
    fn bad_parameters_are_400s_naming_the_choices() {
        let bad = |params: StreamParams| StreamQuery::new(&params, None).err().unwrap().to_string();
        assert_eq!(
            bad(StreamParams {
                period: Some("2y".into()),
                ..Default::default()
            }),
            "period \"2y\" is not one of 1h, 24h, 7d, 14d, 30d"
        );
        assert_eq!(
            bad(StreamParams {
                sort: Some("x".into()),
                ..Default::default()
            }),
            "sort \"x\" is not one of date, new, freq, user"
        );
        assert_eq!(
            bad(StreamParams {
                page: Some("0".into()),
                ..Default::default()
            }),
            "page \"0\" is not a number from 1 to 400"
        );
        let q = StreamQuery::new(
            &StreamParams {
                query: Some("is:nope".into()),
                ..Default::default()
            },
            None,
        )
        .unwrap();
        assert!(q.error.unwrap().contains("is:nope is not a status"));
    }

    #[test]
    fn ignore_durations_and_counts() {
        assert_eq!(
            change_of("ignore", Some("100")).unwrap(),
            Change::Ignore {
                until: None,
                count: Some(100)
            }
        );
        assert!(matches!(
            change_of("ignore", Some("24h")).unwrap(),
            Change::Ignore {
                until: Some(_),
                count: None
            }
        ));
        assert!(change_of("ignore", Some("0")).is_err());
        assert!(change_of("delete", None).is_err());
    }

    #[test]
    fn tag_links_quote_values() {
        assert_eq!(
            tag_href("default", "browser", "Fire \"fox\""),
            "/organizations/default/issues/?query=is%3Aunresolved+browser%3A%22Fire+%5C%22fox%5C%22%22"
        );
        assert_eq!(
            tag_href("default", "release", "1.0"),
            "/organizations/default/issues/?release=1.0"
        );
    }
}
