//! The issue page (`/organizations/{org}/issues/{id}/`), its event view
//! (`.../events/{event_id}/`, also `json/` and `event.md`), and its state actions (POST).

use std::collections::HashMap;
use std::sync::Arc;

use askama::Template;
use axum::Extension;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Redirect, Response};
use chrono::{DateTime, TimeZone, Utc};
use serde::Deserialize;

use super::event::{EventView, ViewOptions, fence};
use super::stream::{self, Choice, quote, tag_href};
use super::{OrgCtx, PERIODS, Session, WebError, WebState, When, encode, encode_path, html};
use crate::api::ClientInfo;
use crate::issues::Change;
use crate::issues::rollup::HOUR_MS;
use crate::people::Actor;
use crate::tenancy::{Principal, Scope};

/// The period of the chart and the tag distributions unless the URL names one: a day, which
/// reads a day of files; longer periods read more.
const DEFAULT_PERIOD: &str = "24h";

/// Events per page of the issue's event list.
const EVENTS_PAGE: usize = 20;
const MAX_PAGE: usize = 500;

#[derive(Debug, Default, Deserialize)]
pub(crate) struct IssueParams {
    period: Option<String>,
    /// `app` shows in-app frames only.
    frames: Option<String>,
    /// `oldest` shows the oldest call first.
    order: Option<String>,
    crumb_level: Option<String>,
    crumb_q: Option<String>,
    /// Page of the event list (1-based).
    page: Option<String>,
    /// The event's time (epoch milliseconds), which every link to an event carries: the event
    /// is then looked up in the one file of that time instead of in all of the issue's files.
    at: Option<String>,
}

impl IssueParams {
    /// The `at` parameter: `None` when absent, 400 when not a number.
    fn at(&self) -> Result<Option<i64>, WebError> {
        match nonempty(&self.at) {
            None => Ok(None),
            Some(raw) => raw.parse::<i64>().map(Some).map_err(|_| {
                WebError::BadRequest(format!(
                    "at {raw:?} is not an event time in milliseconds since 1970"
                ))
            }),
        }
    }
}

/// The path of event `id` of the issue at `base`, with its time for the lookup.
fn event_href(base: &str, id: &str, ms: i64) -> (String, String) {
    (format!("{base}events/{id}/"), format!("at={ms}"))
}

/// What `issues` says about one issue.
pub(crate) struct IssueInfo {
    pub(crate) id: i64,
    pub(crate) project: String,
    pub(crate) title: String,
    pub(crate) culprit: String,
    pub(crate) level: String,
    pub(crate) status: String,
    pub(crate) regressed: bool,
    pub(crate) events: i64,
    pub(crate) users: i64,
    pub(crate) events_24h: i64,
    pub(crate) first_ms: i64,
    pub(crate) last_ms: i64,
    pub(crate) first_release: String,
    pub(crate) last_release: String,
    pub(crate) ignore_until: String,
    pub(crate) ignore_until_count: String,
    pub(crate) project_id: i64,
    pub(crate) assignee: String,
    /// The issue this one is merged into, if it is.
    pub(crate) merged_into: Option<i64>,
    /// The issues merged into this one: (id, title, events); their events show here.
    pub(crate) merged: Vec<(i64, String, i64)>,
}

impl IssueInfo {
    /// `issue_id = <id>`, or `issue_id IN (...)` with the issues merged into this one.
    fn ids(&self) -> String {
        if self.merged.is_empty() {
            return format!("issue_id = {}", self.id);
        }
        let ids: Vec<String> = std::iter::once(self.id)
            .chain(self.merged.iter().map(|m| m.0))
            .map(|i| i.to_string())
            .collect();
        format!("issue_id IN ({})", ids.join(", "))
    }
}

fn iso_ms(ms: i64) -> String {
    Utc.timestamp_millis_opt(ms)
        .single()
        .map(|t: DateTime<Utc>| t.format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string())
        .unwrap_or_else(|| "1970-01-01T00:00:00Z".to_owned())
}

async fn load_issue(session: &Session<'_>, id: i64) -> Result<IssueInfo, WebError> {
    let t = session
        .table(&format!(
            "SELECT issue_id, project, title, culprit, level, status, regressed, event_count, \
             users, events_24h, CAST(first_seen AS BIGINT) AS first_ms, \
             CAST(last_seen AS BIGINT) AS last_ms, first_release, last_release, \
             ignore_until, ignore_until_count, project_id, assignee, merged_into FROM issues \
             WHERE issue_id = {id}"
        ))
        .await?;
    if t.rows.is_empty() {
        return Err(crate::issues::Error::UnknownIssue { issue_id: id }.into());
    }
    let m = session
        .table(&format!(
            "SELECT issue_id, title, event_count FROM issues WHERE merged_into = {id} \
             ORDER BY event_count DESC, issue_id LIMIT 100"
        ))
        .await?;
    let merged = (0..m.rows.len())
        .map(|r| {
            (
                m.int(r, "issue_id"),
                m.text(r, "title"),
                m.int(r, "event_count"),
            )
        })
        .collect();
    Ok(IssueInfo {
        id,
        project: t.text(0, "project"),
        title: t.text(0, "title"),
        culprit: t.text(0, "culprit"),
        level: t.text(0, "level"),
        status: t.text(0, "status"),
        regressed: t.get(0, "regressed") == Some("true"),
        events: t.int(0, "event_count"),
        users: t.int(0, "users"),
        events_24h: t.int(0, "events_24h"),
        first_ms: t.int(0, "first_ms"),
        last_ms: t.int(0, "last_ms"),
        first_release: t.text(0, "first_release"),
        last_release: t.text(0, "last_release"),
        ignore_until: t.text(0, "ignore_until"),
        ignore_until_count: t.text(0, "ignore_until_count"),
        project_id: t.int(0, "project_id"),
        assignee: t.text(0, "assignee"),
        merged_into: t.get(0, "merged_into").and_then(|v| v.parse().ok()),
        merged,
    })
}

/// One stored event of the issue.
pub(crate) struct StoredEvent {
    pub(crate) id: String,
    pub(crate) ms: i64,
    pub(crate) json: String,
}

/// An event id from a URL: 32 hex digits (dashes allowed), lowercased; anything else is 404.
fn event_id(raw: &str) -> Result<String, WebError> {
    let id: String = raw
        .chars()
        .filter(|c| *c != '-')
        .collect::<String>()
        .to_ascii_lowercase();
    if id.len() == 32 && id.chars().all(|c| c.is_ascii_hexdigit()) {
        Ok(id)
    } else {
        Err(WebError::NotFound(format!("no event {raw:?}")))
    }
}

/// The issue's events since `since_ms`: bounded by time, so only files that can hold them are
/// read.
fn events_since(issue: &IssueInfo, since_ms: i64) -> String {
    format!(
        "FROM events WHERE {} AND timestamp >= {}",
        issue.ids(),
        quote(&iso_ms(since_ms))
    )
}

/// All of the issue's events: since its first sighting.
fn events_of(issue: &IssueInfo) -> String {
    events_since(issue, issue.first_ms)
}

/// How far back from the issue's last sighting the newest events are looked for first.
const RECENT_MS: i64 = 86_400_000;

/// Runs the statement `build(from)` makes for the newest events of the issue: first over the
/// hour, then the day before its last sighting, and over all its events only when those give
/// fewer than `need` rows. A long-lived, busy issue's page then reads an hour of files, not its
/// whole history.
async fn newest(
    session: &Session<'_>,
    issue: &IssueInfo,
    need: usize,
    build: impl Fn(&str) -> String,
) -> Result<super::Table, WebError> {
    for window in [HOUR_MS, RECENT_MS] {
        let recent = issue.last_ms.saturating_sub(window);
        if recent <= issue.first_ms {
            break;
        }
        let t = session.table(&build(&events_since(issue, recent))).await?;
        if t.rows.len() >= need {
            return Ok(t);
        }
    }
    session.table(&build(&events_of(issue))).await
}

/// The event `id` of the issue (at time `at`, when the link says), or its latest event.
async fn load_event(
    session: &Session<'_>,
    issue: &IssueInfo,
    id: Option<&str>,
    at: Option<i64>,
) -> Result<Option<StoredEvent>, WebError> {
    let select = |from: &str, only: &str| {
        format!(
            "SELECT event_id, CAST(timestamp AS BIGINT) AS ms, event {from}{only} \
             ORDER BY timestamp DESC, event_id DESC LIMIT 1"
        )
    };
    let t = match (id, at) {
        (Some(id), Some(at)) => {
            // One instant: only the file of that hour can hold it.
            let only = format!(
                " AND event_id = {} AND timestamp <= {}",
                quote(id),
                quote(&iso_ms(at))
            );
            let t = session
                .table(&select(&events_since(issue, at), &only))
                .await?;
            if t.rows.is_empty() {
                let only = format!(" AND event_id = {}", quote(id));
                newest(session, issue, 1, |from| select(from, &only)).await?
            } else {
                t
            }
        }
        (Some(id), None) => {
            let only = format!(" AND event_id = {}", quote(id));
            newest(session, issue, 1, |from| select(from, &only)).await?
        }
        (None, _) => newest(session, issue, 1, |from| select(from, "")).await?,
    };
    if t.rows.is_empty() {
        return match id {
            Some(id) => Err(WebError::NotFound(format!(
                "issue {} has no event {id}",
                issue.id
            ))),
            None => Ok(None),
        };
    }
    Ok(Some(StoredEvent {
        id: t.text(0, "event_id"),
        ms: t.int(0, "ms"),
        json: t.text(0, "event"),
    }))
}

/// The ids and times of the events before and after `event`, and of the first and latest.
async fn neighbours(
    session: &Session<'_>,
    issue: &IssueInfo,
    event: &StoredEvent,
) -> Result<HashMap<String, (String, i64)>, WebError> {
    let (ts, id) = (quote(&iso_ms(event.ms)), quote(&event.id));
    let one = |which: &str, from: &str, cond: &str, order: &str| {
        format!(
            "SELECT * FROM (SELECT '{which}' AS which, event_id, \
             CAST(timestamp AS BIGINT) AS ms {from}{cond} \
             ORDER BY timestamp {order}, event_id {order} LIMIT 1) AS {which}"
        )
    };
    // The first and the latest events are at the issue's first and last sighting; the newer
    // ones lie between this event and the last sighting.
    let (first, last) = (
        quote(&iso_ms(issue.first_ms)),
        quote(&iso_ms(issue.last_ms)),
    );
    let sql = [
        one(
            "first",
            &events_of(issue),
            &format!(" AND timestamp <= {first}"),
            "ASC",
        ),
        one(
            "latest",
            &events_since(issue, issue.last_ms),
            &format!(" AND timestamp >= {last}"),
            "DESC",
        ),
    ]
    .join(" UNION ALL ");
    let ends = session.table(&sql);
    // The newer one: looked for in the day after this event first, then up to the last
    // sighting (an old event of a busy issue would otherwise read every file since).
    let newer = |until: Option<i64>| {
        let bound = until.map_or(String::new(), |ms| {
            format!(" AND timestamp <= {}", quote(&iso_ms(ms)))
        });
        one(
            "newer",
            &events_since(issue, event.ms),
            &format!(" AND (timestamp > {ts} OR (timestamp = {ts} AND event_id > {id})){bound}"),
            "ASC",
        )
    };
    let window_end = event.ms.saturating_add(RECENT_MS);
    let newer_one = async {
        let mut t = session
            .table(&newer((window_end < issue.last_ms).then_some(window_end)))
            .await?;
        if t.rows.is_empty() && window_end < issue.last_ms {
            t = session.table(&newer(None)).await?;
        }
        Ok::<_, WebError>(t)
    };
    // The older one: looked for in the day before this event first.
    let older = |from: &str| {
        one(
            "older",
            from,
            &format!(
                " AND timestamp <= {ts} AND (timestamp < {ts} OR (timestamp = {ts} AND event_id < {id}))"
            ),
            "DESC",
        )
    };
    let window = event.ms.saturating_sub(RECENT_MS);
    let older_one = async {
        let mut t = if window > issue.first_ms {
            session.table(&older(&events_since(issue, window))).await?
        } else {
            super::Table::default()
        };
        if t.rows.is_empty() {
            t = session.table(&older(&events_of(issue))).await?;
        }
        Ok::<_, WebError>(t)
    };
    let (ends, newer, older) = (ends.await?, newer_one.await?, older_one.await?);
    let mut found: HashMap<String, (String, i64)> = (0..ends.rows.len())
        .map(|r| {
            (
                ends.text(r, "which"),
                (ends.text(r, "event_id"), ends.int(r, "ms")),
            )
        })
        .collect();
    for (which, t) in [("newer", newer), ("older", older)] {
        if !t.rows.is_empty() {
            found.insert(which.to_owned(), (t.text(0, "event_id"), t.int(0, "ms")));
        }
    }
    Ok(found)
}

/// Bucket width of the issue chart for each period (about 24 to 30 bars).
fn chart_step(period: &str) -> i64 {
    const MIN: i64 = 60_000;
    match period {
        "1h" => 2 * MIN,
        "24h" => 60 * MIN,
        "7d" => 6 * 60 * MIN,
        "14d" => 12 * 60 * MIN,
        _ => 24 * 60 * MIN,
    }
}

/// Events and users of the issue per bucket over the period, as an SVG bar chart.
async fn chart(
    session: &Session<'_>,
    issue: &IssueInfo,
    period: &str,
    seconds: i64,
) -> Result<String, WebError> {
    let step = chart_step(period);
    // Buckets of whole hours come from the hourly rollups (a few rows per hour, whatever the
    // number of events); shorter ones from the events of that last hour.
    let sql = if step % HOUR_MS == 0 {
        format!(
            "SELECT CAST(hour AS BIGINT) / {step} * {step} AS bucket, sum(events) AS events, \
             cardinality(array_distinct(flatten(array_agg(coalesce(users, []))))) AS users \
             FROM issue_hours WHERE {} \
             AND hour > now() - INTERVAL '{} seconds' GROUP BY 1",
            issue.ids(),
            seconds + HOUR_MS / 1000
        )
    } else {
        format!(
            "SELECT CAST(timestamp AS BIGINT) / {step} * {step} AS bucket, count(*) AS events, \
             count(DISTINCT coalesce(user_id, user_email, user_username, user_ip)) AS users \
             FROM events WHERE {} AND timestamp >= now() - INTERVAL '{seconds} seconds' \
             GROUP BY 1",
            issue.ids()
        )
    };
    let t = session.table(&sql).await?;
    let mut events = HashMap::new();
    let mut users = HashMap::new();
    for r in 0..t.rows.len() {
        events.insert(t.int(r, "bucket"), t.int(r, "events"));
        users.insert(t.int(r, "bucket"), t.int(r, "users"));
    }
    let n = (seconds * 1000 + step - 1) / step;
    let buckets = super::svg::buckets(Utc::now().timestamp_millis(), step, n, &events);
    let total: i64 = buckets.iter().map(|(_, v)| v).sum();
    let values: Vec<(String, i64)> = buckets
        .iter()
        .map(|(start, v)| {
            let u = users.get(start).copied().unwrap_or(0);
            (
                format!(
                    "{}: {v} events, {u} users",
                    super::svg::bucket_label(*start)
                ),
                *v,
            )
        })
        .collect();
    let mut svg = super::svg::bars(
        &values,
        600,
        90,
        "events",
        format!("{total} events in the last {period}"),
    );
    // Release markers: where a release shows up among the issue's events after the start of
    // the period (from the hourly rollups' first and last release of each hour).
    let t = session
        .table(&format!(
            "SELECT CAST(hour AS BIGINT) AS h, first_release, last_release FROM issue_hours \
             WHERE {} AND hour > now() - INTERVAL '{} seconds' ORDER BY hour",
            issue.ids(),
            seconds + HOUR_MS / 1000
        ))
        .await?;
    let mut first_seen: Vec<(String, i64)> = Vec::new();
    for r in 0..t.rows.len() {
        for column in ["first_release", "last_release"] {
            let release = t.text(r, column);
            if !release.is_empty() && !first_seen.iter().any(|(name, _)| *name == release) {
                first_seen.push((release, t.int(r, "h")));
            }
        }
    }
    let first_bucket = buckets.first().map_or(0, |(start, _)| *start);
    let start = first_seen.first().map(|(_, at)| *at);
    for (release, at) in first_seen
        .iter()
        .filter(|(_, at)| Some(*at) > start)
        .take(10)
    {
        let index = (at - first_bucket).div_euclid(step);
        if (0..buckets.len() as i64).contains(&index) {
            svg.mark(
                index as usize,
                buckets.len(),
                format!(
                    "Release {release} first seen {}",
                    super::svg::bucket_label(*at)
                ),
            );
        }
    }
    Ok(svg.render()?)
}

pub(crate) struct TagValue {
    pub(crate) value: String,
    pub(crate) count: i64,
    pub(crate) percent: i64,
    /// Bar width out of 100.
    pub(crate) width: i64,
    pub(crate) href: String,
}

pub(crate) struct TagGroup {
    pub(crate) key: String,
    pub(crate) total: i64,
    pub(crate) values: Vec<TagValue>,
}

/// The top values of every tag (and of release and environment) over the issue's events of
/// the period.
async fn tags(
    session: &Session<'_>,
    org: &str,
    issue: &IssueInfo,
    seconds: i64,
) -> Result<Vec<TagGroup>, WebError> {
    // From the hourly rollups' tag counts: the values beyond the ones kept per hour count in
    // the total under a null value and are not listed.
    let t = session
        .table(&format!(
            "WITH t AS (SELECT unnest(tags) AS t FROM issue_hours WHERE {} \
               AND hour > now() - INTERVAL '{} seconds'), \
             counts AS (SELECT t['key'] AS k, t['value'] AS v, sum(t['events']) AS n FROM t \
               GROUP BY 1, 2), \
             ranked AS (SELECT k, v, n, sum(n) OVER (PARTITION BY k) AS total, \
               row_number() OVER (PARTITION BY k ORDER BY v IS NULL, n DESC, v) AS rank \
               FROM counts) \
             SELECT k, v, n, total FROM ranked WHERE rank <= 5 AND v IS NOT NULL \
             ORDER BY k, rank LIMIT 250",
            issue.ids(),
            seconds + HOUR_MS / 1000
        ))
        .await?;
    let mut groups: Vec<TagGroup> = Vec::new();
    for r in 0..t.rows.len() {
        let key = t.text(r, "k");
        let total = t.int(r, "total").max(1);
        let count = t.int(r, "n");
        let value = t.text(r, "v");
        if groups.last().is_none_or(|g| g.key != key) {
            groups.push(TagGroup {
                key: key.clone(),
                total,
                values: Vec::new(),
            });
        }
        let percent = count * 100 / total;
        if let Some(group) = groups.last_mut() {
            group.values.push(TagValue {
                href: tag_href(org, &key, &value),
                value,
                count,
                percent,
                width: percent.max(1),
            });
        }
    }
    Ok(groups)
}

pub(crate) struct EventRow {
    pub(crate) id: String,
    /// The first 8 digits, as the list shows them.
    pub(crate) short: String,
    pub(crate) href: String,
    pub(crate) when: When,
    pub(crate) release: String,
    pub(crate) environment: String,
    pub(crate) user: String,
    pub(crate) message: String,
    pub(crate) current: bool,
}

/// "Why grouped": the event's grouping variants, each with its hash (or why it does not count)
/// and its component tree as indented lines (`*` marks what counts for the hash).
pub(crate) struct GroupingView {
    pub(crate) config: String,
    pub(crate) variants: Vec<(String, String, String)>,
}

/// The grouping of a stored event under the project's rules, as [`GroupingView`].
fn why_grouped(
    event_json: &str,
    config: &faultline_protocol::grouping::GroupingConfig,
) -> Option<GroupingView> {
    let explained = faultline_protocol::grouping::explain_stored(event_json, config)?;
    fn lines(node: &serde_json::Value, depth: usize, out: &mut String) {
        match node {
            serde_json::Value::String(v) => {
                out.push_str(&format!("{}{v:?}\n", "  ".repeat(depth)));
            }
            serde_json::Value::Object(c) => {
                let id = c.get("id").and_then(|v| v.as_str()).unwrap_or("?");
                let counts = c.get("contributes").and_then(|v| v.as_bool()) == Some(true);
                let hint = c
                    .get("hint")
                    .and_then(|v| v.as_str())
                    .map(|h| format!(" ({h})"))
                    .unwrap_or_default();
                out.push_str(&format!(
                    "{}{id}{}{hint}\n",
                    "  ".repeat(depth),
                    if counts { "*" } else { "" }
                ));
                for child in c
                    .get("values")
                    .and_then(|v| v.as_array())
                    .into_iter()
                    .flatten()
                {
                    lines(child, depth + 1, out);
                }
            }
            _ => {}
        }
    }
    let variants = explained
        .get("variants")
        .and_then(|v| v.as_array())
        .into_iter()
        .flatten()
        .map(|v| {
            let name = v
                .get("name")
                .and_then(|n| n.as_str())
                .unwrap_or("?")
                .to_owned();
            let hash = v
                .get("hash")
                .and_then(|h| h.as_str())
                .map_or_else(|| "does not count".to_owned(), str::to_owned);
            let mut tree = String::new();
            if let Some(fingerprint) = v.get("fingerprint").and_then(|f| f.as_array()) {
                tree.push_str(&format!(
                    "fingerprint {}\n",
                    serde_json::Value::Array(fingerprint.clone())
                ));
            }
            if let Some(component) = v.get("component") {
                lines(component, 0, &mut tree);
            }
            (name, hash, tree)
        })
        .collect();
    Some(GroupingView {
        config: explained
            .get("config")
            .and_then(|c| c.as_str())
            .unwrap_or_default()
            .to_owned(),
        variants,
    })
}

/// The event view inside the issue page.
pub(crate) struct EventBlock {
    /// Why the event is in this issue (`None` when its JSON cannot be read).
    pub(crate) grouping: Option<GroupingView>,
    pub(crate) id: String,
    pub(crate) when: When,
    pub(crate) view: EventView,
    pub(crate) json_href: String,
    pub(crate) md_href: String,
    /// `(label, href)`; an empty href is a disabled link.
    pub(crate) nav: Vec<(&'static str, String)>,
    pub(crate) frames_href: String,
    pub(crate) frames_label: &'static str,
    pub(crate) order_href: String,
    pub(crate) order_label: &'static str,
    pub(crate) action: String,
    /// The event's time, kept by the breadcrumb filter form.
    pub(crate) at: i64,
    pub(crate) crumb_levels: Vec<Choice>,
    pub(crate) crumb_q: String,
    pub(crate) app_only: bool,
    pub(crate) oldest_first: bool,
    pub(crate) period: String,
    /// The period differs from the default, so links and forms carry it.
    pub(crate) keep_period: bool,
}

#[derive(Template)]
#[template(path = "issue.html")]
struct IssuePage {
    layout: super::Layout,
    issue: IssueInfo,
    first: When,
    last: When,
    chart: String,
    period: String,
    periods: Vec<(String, String, bool)>,
    tags: Vec<TagGroup>,
    event: Option<EventBlock>,
    events: Vec<EventRow>,
    prev_href: String,
    next_href: String,
    act_base: String,
    /// `/organizations/<org>/issues/`, for links to other issues.
    issues_base: String,
    back: String,
    can_act: bool,
    /// Whether the caller may delete the issue (`event:admin`).
    can_delete: bool,
    stream_href: String,
    /// Who the issue can be assigned to: (value, label, selected).
    assignable: Vec<Choice>,
    activity: Vec<Activity>,
}

/// One line of the issue's activity: a change of its state, newest first.
pub(crate) struct Activity {
    pub(crate) when: When,
    pub(crate) by: String,
    pub(crate) what: String,
}

/// Versions of an issue's state shown as its activity.
const ACTIVITY: usize = 20;

/// What one version of the state did, in words.
fn activity_text(s: &crate::issues::IssueState) -> String {
    use crate::issues::Status;
    match s.action.as_deref() {
        Some("assign") => format!("Assigned to {}", s.assignee.as_deref().unwrap_or("nobody")),
        Some("unassign") => "Unassigned".to_owned(),
        Some("unmerge") => "Unmerged".to_owned(),
        Some("erase") => "Events received before the deletion erased".to_owned(),
        Some("resolve_in_next_release") => format!(
            "Resolved in the release after {}",
            s.resolved_in_release
                .as_deref()
                .unwrap_or("the current one")
        ),
        _ => match s.status {
            Status::Resolved => "Resolved".to_owned(),
            Status::Unresolved => "Reopened".to_owned(),
            Status::Deleted => "Deleted, with its events".to_owned(),
            Status::Merged => format!(
                "Merged into issue {}",
                s.merged_into.map_or_else(String::new, |i| i.to_string())
            ),
            Status::Ignored => match (s.ignore_until, s.ignore_until_count) {
                (Some(until), _) => format!("Ignored until {}", until.format("%Y-%m-%d %H:%M UTC")),
                (None, Some(n)) => format!("Ignored until {n} more events"),
                (None, None) => "Ignored".to_owned(),
            },
        },
    }
}

/// The issue's activity: its state changes, newest first, then when it was first seen.
async fn activity(
    state: &WebState,
    issue: &IssueInfo,
    now: DateTime<Utc>,
) -> Result<Vec<Activity>, WebError> {
    let versions = crate::issues::state::history(
        &state.node.store,
        issue.project_id as u64,
        issue.id,
        ACTIVITY,
    )
    .await?;
    let mut out: Vec<Activity> = versions
        .iter()
        .map(|v| Activity {
            when: When::from_millis(v.changed.timestamp_millis(), now),
            by: v.by.clone(),
            what: activity_text(v),
        })
        .collect();
    if issue.regressed {
        out.insert(
            0,
            Activity {
                when: When::from_millis(issue.last_ms, now),
                by: String::new(),
                what: "Regressed: an event arrived after it was resolved".to_owned(),
            },
        );
    }
    out.push(Activity {
        when: When::from_millis(issue.first_ms, now),
        by: String::new(),
        what: "First seen".to_owned(),
    });
    Ok(out)
}

/// The choices of the assign form: nobody, the organization's teams and active members.
async fn assignable(state: &WebState, org: &str, current: &str) -> Result<Vec<Choice>, WebError> {
    let people = &state.node.people;
    let mut out = vec![Choice {
        value: String::new(),
        label: "Nobody".to_owned(),
        selected: current.is_empty(),
    }];
    for team in people
        .teams(org)
        .await
        .map_err(crate::api::ApiError::from)?
    {
        let value = format!("#{}", team.slug);
        out.push(Choice {
            selected: value == current,
            label: format!("Team #{}", team.slug),
            value,
        });
    }
    for member in people
        .members(org)
        .await
        .map_err(crate::api::ApiError::from)?
    {
        if member.disabled {
            continue;
        }
        out.push(Choice {
            selected: member.email == current,
            label: if member.name.is_empty() {
                member.email.clone()
            } else {
                format!("{} ({})", member.name, member.email)
            },
            value: member.email,
        });
    }
    // An assignee who left stays visible as the current choice.
    if !current.is_empty() && !out.iter().any(|c| c.selected) {
        out.push(Choice {
            value: current.to_owned(),
            label: current.to_owned(),
            selected: true,
        });
    }
    Ok(out)
}

fn nonempty(v: &Option<String>) -> Option<&str> {
    v.as_deref().map(str::trim).filter(|s| !s.is_empty())
}

/// `GET /organizations/{org}/issues/{id}/`: the issue with its latest event.
pub(crate) async fn page(
    State(state): State<WebState>,
    Extension(principal): Extension<Arc<Principal>>,
    Path((org, id)): Path<(String, i64)>,
    Query(params): Query<IssueParams>,
) -> Result<Response, WebError> {
    render(&state, principal, org, id, None, &params).await
}

/// `GET /organizations/{org}/issues/{id}/events/{event_id}/`: the issue with this event.
pub(crate) async fn event_page(
    State(state): State<WebState>,
    Extension(principal): Extension<Arc<Principal>>,
    Path((org, id, event)): Path<(String, i64, String)>,
    Query(params): Query<IssueParams>,
) -> Result<Response, WebError> {
    let event = event_id(&event)?;
    render(&state, principal, org, id, Some(&event), &params).await
}

async fn render(
    state: &WebState,
    principal: Arc<Principal>,
    org: String,
    id: i64,
    event_id: Option<&str>,
    params: &IssueParams,
) -> Result<Response, WebError> {
    let ctx = OrgCtx::new(state, principal, org).await?;
    let period = nonempty(&params.period)
        .unwrap_or(DEFAULT_PERIOD)
        .to_owned();
    let seconds = super::period_seconds(&period)?;
    let page = match nonempty(&params.page) {
        None => 0,
        Some(p) => p
            .parse::<usize>()
            .ok()
            .filter(|p| (1..=MAX_PAGE).contains(p))
            .map(|p| p - 1)
            .ok_or_else(|| {
                WebError::BadRequest(format!("page {p:?} is not a number from 1 to {MAX_PAGE}"))
            })?,
    };
    let options = ViewOptions {
        app_only: nonempty(&params.frames) == Some("app"),
        oldest_first: nonempty(&params.order) == Some("oldest"),
        crumb_level: nonempty(&params.crumb_level).unwrap_or("").to_owned(),
        crumb_text: nonempty(&params.crumb_q).unwrap_or("").to_owned(),
    };
    let session = ctx.session(&state.node.query).await?;
    let issue = load_issue(&session, id).await?;
    let now = Utc::now();
    let base = format!("/organizations/{}/issues/{id}/", encode_path(&ctx.org));
    let at = params.at()?;
    // The event with its neighbours, and the chart, tags and event list, are independent
    // reads: the two run together.
    let event = async {
        let Some(stored) = load_event(&session, &issue, event_id, at).await? else {
            return Ok::<_, WebError>(None);
        };
        let config = state
            .node
            .projects
            .grouping(issue.project_id as u64)
            .unwrap_or_default();
        let grouping = why_grouped(&stored.json, &config);
        // frames whose source map was uploaded after the event are shown resolved
        let mut stored = stored;
        if let Some(json) = state
            .node
            .sourcemaps
            .resolve_stored(&state.node.projects, issue.project_id as u64, &stored.json)
            .await
        {
            stored.json = json;
        }
        let mut block =
            event_block(&session, &issue, stored, &base, &period, &options, now).await?;
        block.grouping = grouping;
        Ok(Some(block))
    };
    let list = newest(&session, &issue, EVENTS_PAGE + 1, |from| {
        format!(
            "SELECT event_id, CAST(timestamp AS BIGINT) AS ms, release, environment, \
             coalesce(user_email, user_username, user_id, user_ip) AS who, \
             coalesce(message, exception_value) AS message {from} \
             ORDER BY timestamp DESC, event_id DESC LIMIT {} OFFSET {}",
            EVENTS_PAGE + 1,
            page * EVENTS_PAGE
        )
    });
    // Two at a time: a page takes at most two of the token's concurrent queries
    // (`query.max_concurrent_per_token`), so a second tab still gets its page.
    let rest = async {
        let chart = chart(&session, &issue, &period, seconds).await?;
        let tags = tags(&session, &ctx.org, &issue, seconds).await?;
        Ok::<_, WebError>((chart, tags, list.await?))
    };
    let (event, (chart, tags, list)) = futures::try_join!(event, rest)?;
    let current = event.as_ref().map(|e| e.id.clone()).unwrap_or_default();
    let keep = if period == DEFAULT_PERIOD {
        String::new()
    } else {
        format!("?period={}", encode(&period))
    };
    let shown = list.rows.len().min(EVENTS_PAGE);
    let events = (0..shown)
        .map(|r| {
            let id = list.text(r, "event_id");
            let (path, at) = event_href(&base, &id, list.int(r, "ms"));
            EventRow {
                href: if keep.is_empty() {
                    format!("{path}?{at}")
                } else {
                    format!("{path}{keep}&{at}")
                },
                current: id == current,
                short: id.chars().take(8).collect(),
                id,
                when: When::from_millis(list.int(r, "ms"), now),
                release: list.text(r, "release"),
                environment: list.text(r, "environment"),
                user: list.text(r, "who"),
                message: list.text(r, "message"),
            }
        })
        .collect();
    // The event shown, with its time for links back to it.
    let shown_at = event.as_ref().map(|e| e.at);
    let list_href = |p: usize| {
        let here = match event_id {
            Some(e) => format!("{base}events/{e}/"),
            None => base.clone(),
        };
        let mut pairs = Vec::new();
        if period != DEFAULT_PERIOD {
            pairs.push(format!("period={}", encode(&period)));
        }
        if let (Some(_), Some(ms)) = (event_id, shown_at) {
            pairs.push(format!("at={ms}"));
        }
        if p > 1 {
            pairs.push(format!("page={p}"));
        }
        if pairs.is_empty() {
            format!("{here}#events")
        } else {
            format!("{here}?{}#events", pairs.join("&"))
        }
    };
    let page_number = page + 1;
    let back = match (event_id, shown_at) {
        (Some(e), Some(ms)) => {
            let (path, at) = event_href(&base, e, ms);
            if keep.is_empty() {
                format!("{path}?{at}")
            } else {
                format!("{path}{keep}&{at}")
            }
        }
        (Some(e), None) => format!("{base}events/{e}/{keep}"),
        (None, _) => format!("{base}{keep}"),
    };
    let periods = PERIODS
        .iter()
        .map(|(name, _)| {
            let href = if *name == DEFAULT_PERIOD {
                base.clone()
            } else {
                format!("{base}?period={name}")
            };
            ((*name).to_owned(), href, *name == period)
        })
        .collect();
    let can_act = ctx.principal.require(Scope::EventWrite).is_ok();
    let assignable = if can_act {
        assignable(state, &ctx.org, &issue.assignee).await?
    } else {
        Vec::new()
    };
    let activity = activity(state, &issue, now).await?;
    let page = IssuePage {
        assignable,
        activity,
        layout: ctx.layout(issue.title.clone(), "issues", ""),
        first: When::from_millis(issue.first_ms, now),
        last: When::from_millis(issue.last_ms, now),
        chart,
        periods,
        tags,
        event,
        events,
        prev_href: if page > 0 {
            list_href(page_number - 1)
        } else {
            String::new()
        },
        next_href: if list.rows.len() > EVENTS_PAGE && page_number < MAX_PAGE {
            list_href(page_number + 1)
        } else {
            String::new()
        },
        issues_base: format!("/organizations/{}/issues/", encode_path(&ctx.org)),
        act_base: base,
        back,
        can_act,
        can_delete: ctx.principal.require(Scope::EventAdmin).is_ok(),
        stream_href: format!(
            "/organizations/{}/issues/?project={}",
            encode_path(&ctx.org),
            encode(&issue.project)
        ),
        period,
        issue,
    };
    html(&page)
}

async fn event_block(
    session: &Session<'_>,
    issue: &IssueInfo,
    stored: StoredEvent,
    base: &str,
    period: &str,
    options: &ViewOptions,
    now: DateTime<Utc>,
) -> Result<EventBlock, WebError> {
    let around = neighbours(session, issue, &stored).await?;
    let (here, here_at) = event_href(base, &stored.id, stored.ms);
    // The event view's own parameters, with one changed; `at` is the linked event's time.
    let link = |path: &str, at: &str, frames: bool, oldest: bool| {
        let mut pairs = Vec::new();
        if period != DEFAULT_PERIOD {
            pairs.push(format!("period={}", encode(period)));
        }
        pairs.push(at.to_owned());
        if frames {
            pairs.push("frames=app".to_owned());
        }
        if oldest {
            pairs.push("order=oldest".to_owned());
        }
        if pairs.is_empty() {
            path.to_owned()
        } else {
            format!("{path}?{}", pairs.join("&"))
        }
    };
    let nav_link = |which: &str| {
        around
            .get(which)
            .filter(|(id, _)| *id != stored.id)
            .map(|(id, ms)| {
                let (path, at) = event_href(base, id, *ms);
                link(&path, &at, options.app_only, options.oldest_first)
            })
            .unwrap_or_default()
    };
    let nav = vec![
        ("First", nav_link("first")),
        ("Older", nav_link("older")),
        ("Newer", nav_link("newer")),
        ("Latest", nav_link("latest")),
    ];
    let levels = ["fatal", "error", "warning", "info", "debug"];
    Ok(EventBlock {
        grouping: None,
        json_href: format!("{here}json/?{here_at}"),
        md_href: format!("{here}event.md?{here_at}"),
        frames_href: link(&here, &here_at, !options.app_only, options.oldest_first),
        frames_label: if options.app_only {
            "Show all frames"
        } else {
            "In-app frames only"
        },
        order_href: link(&here, &here_at, options.app_only, !options.oldest_first),
        order_label: if options.oldest_first {
            "Newest call first"
        } else {
            "Oldest call first"
        },
        action: here,
        at: stored.ms,
        crumb_levels: std::iter::once(("", "Any level"))
            .chain(levels.iter().map(|l| (*l, *l)))
            .map(|(v, l)| Choice {
                value: v.to_owned(),
                label: l.to_owned(),
                selected: v == options.crumb_level,
            })
            .collect(),
        crumb_q: options.crumb_text.clone(),
        app_only: options.app_only,
        oldest_first: options.oldest_first,
        period: period.to_owned(),
        keep_period: period != DEFAULT_PERIOD,
        nav,
        when: When::from_millis(stored.ms, now),
        view: EventView::parse(&stored.json, options),
        id: stored.id,
    })
}

async fn one_event(
    state: &WebState,
    principal: Arc<Principal>,
    org: String,
    id: i64,
    event: &str,
    params: &IssueParams,
) -> Result<(OrgCtx, IssueInfo, StoredEvent), WebError> {
    let event = event_id(event)?;
    let at = params.at()?;
    let ctx = OrgCtx::new(state, principal, org).await?;
    let session = ctx.session(&state.node.query).await?;
    let issue = load_issue(&session, id).await?;
    let stored = load_event(&session, &issue, Some(&event), at)
        .await?
        .ok_or_else(|| WebError::NotFound(format!("issue {id} has no event {event}")))?;
    drop(session);
    Ok((ctx, issue, stored))
}

/// `GET .../events/{event_id}/json/`: the stored event JSON.
pub(crate) async fn event_json(
    State(state): State<WebState>,
    Extension(principal): Extension<Arc<Principal>>,
    Path((org, id, event)): Path<(String, i64, String)>,
    Query(params): Query<IssueParams>,
) -> Result<Response, WebError> {
    let (_, _, stored) = one_event(&state, principal, org, id, &event, &params).await?;
    let mut response = stored.json.into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

#[derive(Template)]
#[template(path = "event.md")]
struct EventMarkdown {
    issue: IssueInfo,
    event_id: String,
    time: String,
    link: String,
    view: EventView,
    fence: String,
}

/// `GET .../events/{event_id}/event.md`: the event as Markdown, to paste into an issue tracker
/// or give to an assistant.
pub(crate) async fn event_markdown(
    State(state): State<WebState>,
    Extension(principal): Extension<Arc<Principal>>,
    Path((org, id, event)): Path<(String, i64, String)>,
    Query(params): Query<IssueParams>,
) -> Result<Response, WebError> {
    let (ctx, issue, stored) = one_event(&state, principal, org, id, &event, &params).await?;
    let view = EventView::parse(&stored.json, &ViewOptions::default());
    let fence = fence(&stored.json);
    let link = format!(
        "{}/organizations/{}/issues/{id}/events/{}/?at={}",
        super::public_url(&state).trim_end_matches('/'),
        encode_path(&ctx.org),
        stored.id,
        stored.ms
    );
    let page = EventMarkdown {
        time: When::from_millis(stored.ms, Utc::now()).absolute,
        event_id: stored.id,
        link,
        view,
        fence,
        issue,
    };
    let mut response = page.render()?.into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/markdown; charset=utf-8"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

/// `POST /organizations/{org}/issues/{id}/{resolve|resolve-next|ignore|reopen|assign|merge|
/// delete}/`: form with optional `for` (ignore), `assignee` (assign), `into` (merge),
/// `confirm=yes` (delete, required) and `next`.
pub(crate) async fn act(
    State(state): State<WebState>,
    Extension(principal): Extension<Arc<Principal>>,
    actor: Option<Extension<Actor>>,
    ClientInfo(client): ClientInfo,
    Path((org, id, action)): Path<(String, i64, String)>,
    body: Bytes,
) -> Result<Response, WebError> {
    let ctx = OrgCtx::new(&state, principal, org).await?;
    let fields = stream::form(&body);
    let get = |name: &str| {
        fields
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    };
    let actor = actor.map(|Extension(a)| a);
    if action == "delete" {
        if get("confirm") != Some("yes") {
            return Err(WebError::BadRequest(
                "deleting an issue erases its events for good: tick \"Erase its events\" to confirm"
                    .to_owned(),
            ));
        }
        let who = crate::api::Caller {
            principal: Arc::clone(&ctx.principal),
            actor,
        };
        crate::api::delete_issue(
            &state.node.query,
            &state.node.people,
            &who,
            &ctx.filter,
            &client,
            id,
        )
        .await?;
        let stream = format!("/organizations/{}/issues/", encode_path(&ctx.org));
        return Ok(Redirect::to(&stream).into_response());
    }
    let change = if action == "merge" {
        let raw = get("into").unwrap_or("").trim().trim_start_matches('#');
        let into = raw.parse::<i64>().map_err(|_| {
            WebError::BadRequest(format!("merge into {raw:?}: give the number of an issue"))
        })?;
        Change::Merge { into }
    } else if action == "assign" {
        Change::Assign(
            crate::api::check_assignee(
                &state.node.people,
                &ctx.org,
                actor.as_ref(),
                get("assignee"),
            )
            .await?,
        )
    } else {
        stream::change_of(&action, get("for"))?
    };
    stream::apply(&state, &ctx, actor.as_ref(), &client, id, change).await?;
    let back = super::local_path(get("next"))
        .map(str::to_owned)
        .unwrap_or_else(|| format!("/organizations/{}/issues/{id}/", encode_path(&ctx.org)));
    Ok(Redirect::to(&back).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_ids_from_urls() {
        assert_eq!(
            event_id("9EC79C33-EC99-42AB-8353-589FCB2E04DC").unwrap(),
            "9ec79c33ec9942ab8353589fcb2e04dc"
        );
        assert!(event_id("9ec79c33ec9942ab8353589fcb2e04d'").is_err());
        assert!(event_id("x").is_err());
    }

    #[test]
    fn markdown_shows_each_exception_and_frames_only_where_there_are_some() {
        let event = r#"{"exception": {"values": [
            {"type": "KeyError", "value": "'cart'"},
            {"type": "ValueError", "value": "bad", "stacktrace": {"frames": [
                {"function": "handler", "filename": "app.py", "lineno": 10, "in_app": true,
                 "context_line": "raise ValueError()"}]}}]}}"#;
        let issue = IssueInfo {
            id: 7,
            project: "shop".into(),
            title: "ValueError: bad".into(),
            culprit: String::new(),
            level: "error".into(),
            status: "unresolved".into(),
            regressed: false,
            events: 1,
            users: 0,
            events_24h: 1,
            first_ms: 0,
            last_ms: 0,
            first_release: String::new(),
            last_release: String::new(),
            ignore_until: String::new(),
            ignore_until_count: String::new(),
            project_id: 1,
            assignee: String::new(),
            merged_into: None,
            merged: Vec::new(),
        };
        let md = EventMarkdown {
            issue,
            event_id: "e".into(),
            time: "t".into(),
            link: "l".into(),
            view: EventView::parse(event, &ViewOptions::default()),
            fence: fence(event),
        }
        .render()
        .unwrap();
        let expected = "## Exception: ValueError: bad\n\nMost recent call first:\n\n```\n\
                        handler in app.py:10 [in app]\n    > raise ValueError()\n```\n\n\
                        ## Exception: KeyError: 'cart'\n";
        assert!(md.contains(expected), "{md}");
        assert_eq!(md.matches("```").count(), 2, "{md}");
    }

    #[test]
    fn chart_steps_give_about_thirty_bars() {
        for (name, seconds) in PERIODS {
            let bars = seconds * 1000 / chart_step(name);
            assert!((24..=30).contains(&bars), "{name}: {bars}");
        }
    }
}
