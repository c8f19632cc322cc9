//! Contract tests of two clients built for Sentry, reproduced from their public source: the
//! Grafana Sentry data source (`grafana/sentry-datasource`, `pkg/sentry/*.go`: the exact
//! query strings its `ToQuery` functions build, decoded into its Go structs' field types and
//! framed as its `framer` does) and the Sentry MCP server (`getsentry/sentry-mcp`,
//! `packages/mcp-core/src/api-client`: its requests and the required fields of its zod
//! schemas). An answer missing a field these clients need, or giving it another type, fails
//! to decode here as it would there.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use chrono::{DateTime, Duration, Utc};
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::{Map, Value, json};

use super::{Harness, Reply, envelope, harness};
use crate::people::OrgRole;
use crate::tenancy::{DEFAULT_ORG, NewToken, Scope};

impl Harness {
    async fn get_as(&self, token: &str, uri: &str) -> Reply {
        self.send(
            Request::get(uri)
                .header("authorization", format!("Bearer {token}"))
                .header("user-agent", "grafana-sentry-datasource/2.2.0")
                .body(Body::empty())
                .unwrap(),
        )
        .await
    }
}

fn decode<T: DeserializeOwned>(reply: &Reply, what: &str) -> T {
    assert_eq!(reply.status, StatusCode::OK, "{what}: {:?}", reply.body);
    serde_json::from_value(reply.body.clone())
        .unwrap_or_else(|e| panic!("{what} does not decode: {e}\n{:#}", reply.body))
}

// ---- the Grafana data source's Go structs (pkg/sentry/*.go), field types kept ----

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
#[allow(dead_code)]
struct GrafanaOrganization {
    date_created: DateTime<Utc>,
    id: String,
    is_early_adopter: bool,
    name: String,
    #[serde(rename = "require2FA")]
    require_2fa: bool,
    slug: String,
    status: IdName,
    avatar: Avatar,
}

#[derive(Debug, Deserialize)]
#[allow(dead_code)]
struct IdName {
    id: String,
    name: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
#[allow(dead_code)]
struct Avatar {
    avatar_type: String,
}

#[derive(Debug, Deserialize)]
#[allow(dead_code)]
struct TeamRef {
    id: String,
    name: String,
    slug: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
#[allow(dead_code)]
struct GrafanaProject {
    date_created: DateTime<Utc>,
    has_access: bool,
    id: String,
    is_bookmarked: bool,
    is_member: bool,
    environments: Vec<String>,
    name: String,
    slug: String,
    team: Option<TeamRef>,
    teams: Vec<TeamRef>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
#[allow(dead_code)]
struct GrafanaTeam {
    avatar: Avatar,
    date_created: DateTime<Utc>,
    has_access: bool,
    id: String,
    is_member: bool,
    is_pending: bool,
    member_count: i64,
    name: String,
    projects: Vec<Value>,
    slug: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
#[allow(dead_code)]
struct GrafanaTag {
    key: String,
    name: String,
    total_values: i64,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
#[allow(dead_code)]
struct GrafanaIssue {
    id: String,
    short_id: String,
    title: String,
    count: String,
    user_count: i64,
    status: String,
    substatus: Option<String>,
    level: String,
    #[serde(rename = "type")]
    kind: String,
    platform: Option<String>,
    first_seen: DateTime<Utc>,
    last_seen: DateTime<Utc>,
    culprit: Option<String>,
    has_seen: bool,
    is_unhandled: bool,
    permalink: String,
    is_public: bool,
    project: GrafanaIssueProject,
    num_comments: i64,
    is_bookmarked: bool,
    is_subscribed: bool,
}

#[derive(Debug, Deserialize)]
#[allow(dead_code)]
struct GrafanaIssueProject {
    id: String,
    name: String,
    slug: String,
    platform: Option<String>,
}

#[derive(Debug, Deserialize)]
struct GrafanaEvents {
    data: Vec<Map<String, Value>>,
}

/// Grafana's `ConvertEventStatsSetToTimestampField` + `ConvertEventStatsSetToField`: each
/// point is `[float seconds, [{"count": float or null}]]`; anything else is an error there.
fn grafana_series(set: &Value) -> Vec<(i64, Option<f64>)> {
    set["data"]
        .as_array()
        .expect("data is an array")
        .iter()
        .map(|point| {
            let row = point.as_array().expect("a point is an array");
            let at = row[0].as_f64().expect("the time is a number");
            let values = row[1].as_array().expect("the values are an array");
            let count = &values[0].as_object().expect("a JSON object")["count"];
            assert!(
                count.is_null() || count.is_f64() || count.is_i64(),
                "{count}"
            );
            (at as i64, count.as_f64())
        })
        .collect()
}

// ---- the Sentry MCP server's zod schemas (api-client/schema.ts), required fields ----

#[derive(Debug, Deserialize)]
#[allow(dead_code)]
struct McpUser {
    id: Value,
    name: Option<String>,
    email: String,
}

#[derive(Debug, Deserialize)]
#[allow(dead_code)]
struct McpNamed {
    id: Value,
    slug: String,
    name: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
#[allow(dead_code)]
struct McpIssue {
    id: String,
    short_id: Option<String>,
    title: String,
    first_seen: Option<DateTime<Utc>>,
    last_seen: Option<DateTime<Utc>>,
    count: Value,
    user_count: Value,
    permalink: String,
    project: McpNamed,
    status: String,
    culprit: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
#[allow(dead_code)]
struct McpEvent {
    id: String,
    #[serde(rename = "groupID")]
    group_id: Option<String>,
    title: String,
    message: Option<String>,
    #[serde(rename = "type")]
    kind: String,
    culprit: Option<String>,
    date_created: DateTime<Utc>,
    entries: Vec<McpEntry>,
    release: Option<McpRelease>,
    tags: Vec<McpTag>,
}

#[derive(Debug, Deserialize)]
#[allow(dead_code)]
struct McpEntry {
    #[serde(rename = "type")]
    kind: String,
    data: Value,
}

#[derive(Debug, Deserialize)]
#[allow(dead_code)]
struct McpRelease {
    version: String,
}

#[derive(Debug, Deserialize)]
#[allow(dead_code)]
struct McpTag {
    key: String,
    value: Option<String>,
}

#[derive(Debug, Deserialize)]
#[allow(dead_code)]
struct McpTagKey {
    key: String,
    name: String,
    #[serde(rename = "totalValues")]
    total_values: i64,
}

#[derive(Debug, Deserialize)]
#[allow(dead_code)]
struct McpEventsResponse {
    data: Vec<Map<String, Value>>,
    meta: McpMeta,
}

#[derive(Debug, Deserialize)]
struct McpMeta {
    fields: std::collections::BTreeMap<String, String>,
}

/// Grafana's time format in `ToQuery`: `2006-01-02T15:04:05` (and `Z07:00` for stats).
fn go_time(t: DateTime<Utc>, zone: bool) -> String {
    if zone {
        t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
    } else {
        t.format("%Y-%m-%dT%H:%M:%S").to_string()
    }
}

/// `url.Values.Encode()`: keys sorted, values in order, query-escaped.
fn go_encode(params: &[(&str, &str)]) -> String {
    let mut sorted: Vec<&(&str, &str)> = params.iter().collect();
    sorted.sort_by_key(|(k, _)| *k);
    sorted
        .iter()
        .map(|(k, v)| format!("{}={}", k, crate::web::encode(v).replace("%20", "+")))
        .collect::<Vec<_>>()
        .join("&")
}

async fn seed(h: &Harness) {
    let events = [
        ("a", "TypeError", "prod", "chrome", "ada@example.com"),
        ("b", "TypeError", "prod", "firefox", "bob@example.com"),
        ("c", "TypeError", "staging", "chrome", "ada@example.com"),
        ("d", "KeyError", "prod", "chrome", "cy@example.com"),
    ];
    for (i, (_, kind, env, browser, email)) in events.iter().enumerate() {
        let id = format!("{:032x}", 0xe0 + i);
        let event = json!({
            "event_id": id,
            "platform": "javascript",
            "level": "error",
            "release": "shop@1.0",
            "environment": env,
            "tags": {"browser": browser},
            "user": {"email": email},
            "exception": {"values": [{"type": kind, "value": "boom",
                "stacktrace": {"frames": [{"function": "checkout", "filename": "src/cart.js",
                                           "lineno": 4, "colno": 9, "in_app": true}]}}]},
        });
        let reply = h.envelope(envelope(&id, &event.to_string())).await;
        assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    }
}

#[tokio::test]
async fn grafana_sentry_data_source_requests_decode_into_its_types() {
    let h = harness().await;
    seed(&h).await;
    h.node.people.create_team(DEFAULT_ORG, "web").await.unwrap();
    h.node
        .people
        .edit_team(DEFAULT_ORG, "web", |t| t.projects = vec![1])
        .await
        .unwrap();
    let token = h
        .token(
            &["org:read", "project:read", "team:read", "event:read"],
            None,
        )
        .await;

    // CheckHealth and the pickers
    let orgs: Vec<GrafanaOrganization> = decode(
        &h.get_as(&token, "/api/0/organizations/").await,
        "organizations",
    );
    assert_eq!(orgs[0].slug, "default");
    let projects: Vec<GrafanaProject> = decode(
        &h.get_as(&token, "/api/0/organizations/default/projects/")
            .await,
        "projects",
    );
    assert_eq!(projects[0].id, "1");
    assert_eq!(
        projects[0].team.as_ref().map(|t| t.slug.as_str()),
        Some("web")
    );
    let teams: Vec<GrafanaTeam> = decode(
        &h.get_as(&token, "/api/0/organizations/default/teams/")
            .await,
        "teams",
    );
    assert_eq!(
        (teams[0].id.as_str(), teams[0].name.as_str()),
        ("web", "web")
    );
    assert_eq!(teams[0].projects, [json!(1)]);
    let team_projects: Vec<GrafanaProject> = decode(
        &h.get_as(&token, "/api/0/teams/default/web/projects/").await,
        "team projects",
    );
    assert_eq!(team_projects.len(), 1);
    assert_eq!(team_projects[0].slug, "shop");
    let tags: Vec<GrafanaTag> = decode(
        &h.get_as(&token, "/api/0/organizations/default/tags/").await,
        "tags",
    );
    let browser = tags
        .iter()
        .find(|t| t.key == "browser")
        .expect("browser tag");
    assert_eq!(browser.total_values, 4);

    // the Issues query, as GetIssuesInput.ToQuery builds it (limit 10000 when unset)
    let now = Utc::now();
    let (from, to) = (now - Duration::hours(6), now + Duration::minutes(1));
    let query = go_encode(&[
        ("query", "is:unresolved"),
        ("start", &go_time(from, false)),
        ("end", &go_time(to, false)),
        ("sort", "freq"),
        ("limit", "10000"),
        ("project", "1"),
        ("environment", "prod"),
    ]);
    let issues: Vec<GrafanaIssue> = decode(
        &h.get_as(
            &token,
            &format!("/api/0/organizations/default/issues/?{query}"),
        )
        .await,
        "issues",
    );
    assert_eq!(issues.len(), 2, "{issues:?}");
    assert_eq!(issues[0].title, "TypeError: boom");
    assert_eq!(issues[0].count, "3");
    assert!(
        issues[0].permalink.starts_with("http"),
        "{}",
        issues[0].permalink
    );
    assert!(issues[0].short_id.starts_with("SHOP-"));
    // a window that ended before the events finds none
    let query = go_encode(&[
        ("query", ""),
        ("start", &go_time(now - Duration::days(3), false)),
        ("end", &go_time(now - Duration::days(2), false)),
        ("limit", "10000"),
    ]);
    let none: Vec<GrafanaIssue> = decode(
        &h.get_as(
            &token,
            &format!("/api/0/organizations/default/issues/?{query}"),
        )
        .await,
        "issues in an old window",
    );
    assert!(none.is_empty(), "{none:?}");

    // the Events query (GetEventsInput.ToQuery)
    let query = go_encode(&[
        ("query", "error.type:TypeError"),
        ("start", &go_time(from, false)),
        ("end", &go_time(to, false)),
        ("sort", "-count()"),
        ("per_page", "100"),
        ("field", "browser"),
        ("field", "count()"),
        ("field", "count_unique(user)"),
        ("field", "last_seen()"),
        ("project", "1"),
    ]);
    let reply = h
        .get_as(
            &token,
            &format!("/api/0/organizations/default/events/?{query}"),
        )
        .await;
    let events: GrafanaEvents = decode(&reply, "events");
    assert_eq!(events.data.len(), 2, "{:?}", events.data);
    assert_eq!(events.data[0]["browser"], "chrome");
    assert_eq!(events.data[0]["count()"], 2);
    assert_eq!(events.data[0]["count_unique(user)"], 1);
    assert_eq!(events.data[1]["browser"], "firefox");
    assert!(
        events.data[0]["last_seen()"]
            .as_str()
            .is_some_and(|t| DateTime::parse_from_rfc3339(t).is_ok())
    );
    assert_eq!(reply.body["meta"]["fields"]["count()"], "integer");
    assert_eq!(reply.body["meta"]["fields"]["last_seen()"], "date");

    // Events Stats (GetEventsStatsInput.ToQuery): one series, then one per top group
    let interval = "1h";
    let stats_from = now - Duration::hours(3);
    let base = [
        ("query", String::new()),
        ("start", go_time(stats_from, true)),
        ("end", go_time(to, true)),
        ("interval", interval.to_owned()),
        ("partial", "1".to_owned()),
        ("excludeOther", "1".to_owned()),
        ("topEvents", "10".to_owned()),
        ("yAxis", "count()".to_owned()),
        ("project", "1".to_owned()),
    ];
    let mut params: Vec<(&str, &str)> = base.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let stats_uri = |params: &[(&str, &str)]| {
        format!(
            "/api/0/organizations/default/events-stats/?{}",
            go_encode(params)
        )
    };
    params.push(("field", "count()"));
    let reply = h.get_as(&token, &stats_uri(&params)).await;
    let stats: Map<String, Value> = decode(&reply, "events-stats");
    let series = grafana_series(&Value::Object(stats));
    assert!((3..=5).contains(&series.len()), "{series:?}");
    assert!(
        series.windows(2).all(|w| w[1].0 - w[0].0 == 3600),
        "{series:?}"
    );
    assert_eq!(series.iter().filter_map(|(_, c)| *c).sum::<f64>(), 4.0);
    params.push(("field", "environment"));
    let reply = h.get_as(&token, &stats_uri(&params)).await;
    let stats: Map<String, Value> = decode(&reply, "grouped events-stats");
    let total = |name: &str| -> f64 {
        grafana_series(&stats[name])
            .iter()
            .filter_map(|(_, c)| *c)
            .sum()
    };
    assert_eq!(total("prod"), 3.0, "{stats:?}");
    assert_eq!(total("staging"), 1.0);
    assert_eq!(stats["prod"]["order"], 0);
}

#[tokio::test]
async fn sentry_mcp_server_requests_decode_into_its_schemas() {
    let h = harness().await;
    seed(&h).await;
    let user = h
        .node
        .people
        .create_user("ada@example.com", "Ada", DEFAULT_ORG, OrgRole::Owner, None)
        .await
        .unwrap();
    let (token, _) = h
        .node
        .tokens
        .create(NewToken {
            name: "mcp".into(),
            org: DEFAULT_ORG.into(),
            scopes: Scope::expand_all(&["org:read", "project:read", "team:read", "event:read"])
                .unwrap(),
            projects: None,
            owner: Some(user.id.clone()),
        })
        .await
        .unwrap();

    let me: McpUser = decode(&h.get_as(&token, "/api/0/auth/").await, "whoami");
    assert_eq!(me.email, "ada@example.com");
    let orgs: Vec<McpNamed> = decode(
        &h.get_as(&token, "/api/0/organizations/?per_page=25").await,
        "organizations",
    );
    assert_eq!(orgs[0].slug, "default");
    let _: Vec<McpNamed> = decode(
        &h.get_as(&token, "/api/0/organizations/default/teams/?per_page=25")
            .await,
        "teams",
    );
    let projects: Vec<McpNamed> = decode(
        &h.get_as(&token, "/api/0/organizations/default/projects/?per_page=25")
            .await,
        "projects",
    );
    assert_eq!(projects[0].slug, "shop");

    // listIssues: limit, sort=recommended, statsPeriod, query, project, collapse
    let issues: Vec<McpIssue> = decode(
        &h.get_as(
            &token,
            "/api/0/organizations/default/issues/?limit=10&sort=recommended&statsPeriod=14d\
             &query=is%3Aunresolved&project=1&collapse=unhandled",
        )
        .await,
        "issues",
    );
    assert_eq!(issues.len(), 2);
    let short = issues[0].short_id.clone().unwrap();
    // getIssue by short id, its latest event, its tags
    let issue: McpIssue = decode(
        &h.get_as(
            &token,
            &format!("/api/0/organizations/default/issues/{short}/"),
        )
        .await,
        "issue",
    );
    let event: McpEvent = decode(
        &h.get_as(
            &token,
            &format!(
                "/api/0/organizations/default/issues/{}/events/latest/",
                issue.id
            ),
        )
        .await,
        "latest event",
    );
    assert_eq!(event.kind, "error");
    assert_eq!(
        event.release.map(|r| r.version).as_deref(),
        Some("shop@1.0")
    );
    assert!(event.entries.iter().any(|e| e.kind == "exception"));
    assert!(event.tags.iter().any(|t| t.key == "browser"));
    let events: Vec<Value> = decode(
        &h.get_as(
            &token,
            &format!(
                "/api/0/organizations/default/issues/{}/events/?per_page=50&statsPeriod=14d",
                issue.id
            ),
        )
        .await,
        "issue events",
    );
    assert!(!events.is_empty());
    let keys: Vec<McpTagKey> = decode(
        &h.get_as(
            &token,
            &format!("/api/0/organizations/default/issues/{}/tags/", issue.id),
        )
        .await,
        "issue tag keys",
    );
    assert!(
        keys.iter()
            .any(|k| k.key == "browser" && k.total_values >= 1)
    );

    // searchEvents on the errors dataset (buildDiscoverApiQuery), default and aggregate fields
    let reply = h
        .get_as(
            &token,
            "/api/0/organizations/default/events/?dataset=errors&queryDataset=error-events\
             &query=environment%3Aprod&project=1&field=title&field=project&field=user.display\
             &field=timestamp&sort=-timestamp&statsPeriod=24h&yAxis=count()",
        )
        .await;
    let found: McpEventsResponse = decode(&reply, "discover events");
    assert_eq!(found.data.len(), 3);
    assert_eq!(found.meta.fields["timestamp"], "date");
    assert_eq!(found.data[0]["project"], "shop");
    let reply = h
        .get_as(
            &token,
            "/api/0/organizations/default/events/?dataset=errors&query=&field=issue\
             &field=title&field=count()&field=last_seen()&sort=-count()&statsPeriod=24h\
             &mode=aggregate&yAxis=count()",
        )
        .await;
    let found: McpEventsResponse = decode(&reply, "discover aggregate");
    assert_eq!(found.data[0]["count()"], 3);
    assert!(
        found.data[0]["issue"]
            .as_str()
            .is_some_and(|s| s.starts_with("SHOP-"))
    );
    // another dataset is refused by name
    let reply = h
        .get_as(
            &token,
            "/api/0/organizations/default/events/?dataset=spans&field=id&statsPeriod=24h",
        )
        .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert!(reply.body["detail"].as_str().unwrap().contains("spans"));
}

#[tokio::test]
async fn discover_teams_and_tags_need_their_scopes_and_readable_projects() {
    let h = harness().await;
    seed(&h).await;
    h.node.people.create_team(DEFAULT_ORG, "web").await.unwrap();
    let issue = h.sql("SELECT issue_id FROM issues LIMIT 1").await[0]["issue_id"].clone();
    let no_events = h.token(&["org:read", "project:read"], None).await;
    for uri in [
        "/api/0/organizations/default/events/?field=title".to_owned(),
        "/api/0/organizations/default/events-stats/?yAxis=count()".to_owned(),
        "/api/0/organizations/default/tags/".to_owned(),
        format!("/api/0/organizations/default/issues/{issue}/tags/"),
    ] {
        let reply = h.get_as(&no_events, &uri).await;
        assert_eq!(
            reply.status,
            StatusCode::FORBIDDEN,
            "{uri}: {:?}",
            reply.body
        );
        assert!(
            reply.body["detail"]
                .as_str()
                .unwrap()
                .contains("event:read"),
            "{uri}: {:?}",
            reply.body
        );
    }
    let no_teams = h.token(&["event:read"], None).await;
    let reply = h
        .get_as(&no_teams, "/api/0/organizations/default/teams/")
        .await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN, "{:?}", reply.body);
    let reply = h
        .get_as(&no_teams, "/api/0/teams/default/web/projects/")
        .await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN, "{:?}", reply.body);

    let reader = h.token(&["event:read"], None).await;
    // a project the token cannot read
    let reply = h
        .get_as(
            &reader,
            "/api/0/organizations/default/events/?field=title&project=99",
        )
        .await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN, "{:?}", reply.body);
    let reply = h
        .get_as(&reader, "/api/0/organizations/default/issues/?project=99")
        .await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN, "{:?}", reply.body);
    // bad input names the parameter
    for (uri, word) in [
        ("/api/0/organizations/default/events/", "field"),
        ("/api/0/organizations/default/events/?field=p99()", "p99()"),
        (
            "/api/0/organizations/default/events/?field=title&sort=-count()",
            "sort",
        ),
        (
            "/api/0/organizations/default/events/?field=title&statsPeriod=2x",
            "statsPeriod",
        ),
        (
            "/api/0/organizations/default/events/?field=title&query=a%20OR%20b",
            "OR",
        ),
        (
            "/api/0/organizations/default/events-stats/?statsPeriod=90d&interval=1s",
            "interval",
        ),
        (
            "/api/0/organizations/default/events-stats/?topEvents=11",
            "topEvents",
        ),
    ] {
        let reply = h.get_as(&reader, uri).await;
        assert_eq!(
            reply.status,
            StatusCode::BAD_REQUEST,
            "{uri}: {:?}",
            reply.body
        );
        assert!(
            reply.body["detail"].as_str().unwrap().contains(word),
            "{uri}: {:?}",
            reply.body
        );
    }
    // pages follow the Link header
    let reply = h
        .get_as(
            &reader,
            "/api/0/organizations/default/events/?field=id&per_page=3&sort=id",
        )
        .await;
    assert_eq!(reply.body["data"].as_array().unwrap().len(), 3);
    let link = reply.headers["link"].to_str().unwrap();
    assert!(
        link.contains("rel=\"next\"; results=\"true\"; cursor=\"0:3:0\""),
        "{link}"
    );
    let reply = h
        .get_as(
            &reader,
            "/api/0/organizations/default/events/?field=id&per_page=3&sort=id&cursor=0:3:0",
        )
        .await;
    assert_eq!(reply.body["data"].as_array().unwrap().len(), 1);
    let link = reply.headers["link"].to_str().unwrap();
    assert!(link.contains("rel=\"next\"; results=\"false\""), "{link}");
}
