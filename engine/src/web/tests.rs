//! Every page of the UI rendered on the real router, over a real node holding events sent
//! through the ingest endpoint: who sees what, who may act, escaping, and markup that a strict
//! Content-Security-Policy allows (no inline script or style, no event-handler attributes).

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::connect_info::MockConnectInfo;
use axum::http::{HeaderMap, Method, Request, StatusCode, header};
use faultline_config::{Config, ProjectConfig};
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;

use super::search::literal;
use crate::node::Node;
use crate::query::ProjectFilter;
use crate::tenancy::{DEFAULT_ORG, NewToken, Scope};

const SHOP_KEY: &str = "0123456789abcdef0123456789abcdef";
const BILLING_KEY: &str = "fedcba9876543210fedcba9876543210";
const SHOP_EVENT: &str = "9ec79c33ec9942ab8353589fcb2e04dc";
const SHOP_EVENT_2: &str = "9ec79c33ec9942ab8353589fcb2e04dd";
const BILLING_EVENT: &str = "11111111111111111111111111111111";

/// An event whose title carries markup, with everything the event view shows.
const SHOP_PAYLOAD: &str = r#"{
    "level": "error", "platform": "python", "release": "shop@1.0", "environment": "prod",
    "tags": {"browser": "Firefox", "quote": "it's"},
    "exception": {"values": [{"type": "ValueError", "value": "<script>alert(1)</script>",
      "mechanism": {"type": "generic", "handled": false},
      "stacktrace": {"frames": [
        {"function": "main", "filename": "lib.py", "lineno": 3, "in_app": false},
        {"function": "checkout_handler", "filename": "app.py", "lineno": 10, "in_app": true,
         "context_line": "raise ValueError(x)", "pre_context": ["def checkout_handler(x):"],
         "post_context": [""], "vars": {"cart_total": "\"<b>42</b>\""}}]}}]},
    "breadcrumbs": {"values": [
      {"timestamp": 1700000000, "category": "http", "level": "info", "message": "GET /cart"},
      {"timestamp": 1700000001, "category": "db", "level": "error", "message": "deadlock found"}]},
    "user": {"id": "u1", "email": "ada@example.com"},
    "request": {"method": "POST", "url": "https://shop.example.com/checkout"},
    "sdk": {"name": "sentry.python", "version": "2.19.0"}
}"#;

struct Harness {
    _dir: tempfile::TempDir,
    node: Arc<Node>,
    router: Router,
}

struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: String,
}

impl Reply {
    fn location(&self) -> &str {
        self.headers
            .get(header::LOCATION)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    }
}

async fn harness() -> Harness {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::default();
    config.storage.data_dir = dir.path().to_owned();
    for (id, name, key) in [(1, "shop", SHOP_KEY), (2, "billing", BILLING_KEY)] {
        config.projects.push(ProjectConfig {
            id,
            name: name.into(),
            keys: vec![key.into()],
            quotas: Vec::new(),
            rate_limit: None,
            retention_days: None,
            grouping_enhancements: None,
            fingerprinting_rules: None,
            privacy: None,
        });
    }
    let node = Arc::new(Node::open(config).await.unwrap());
    let router =
        crate::api::router(&node).layer(MockConnectInfo(SocketAddr::from(([10, 1, 2, 3], 5000))));
    let h = Harness {
        _dir: dir,
        node,
        router,
    };
    h.ingest(1, SHOP_KEY, SHOP_EVENT, SHOP_PAYLOAD).await;
    h.ingest(1, SHOP_KEY, SHOP_EVENT_2, SHOP_PAYLOAD).await;
    h.ingest(
        2,
        BILLING_KEY,
        BILLING_EVENT,
        r#"{"message": "card declined by billing gateway", "level": "warning",
            "extra": {"gateway_api_key": "gk-123"}}"#,
    )
    .await;
    h
}

impl Harness {
    async fn ingest(&self, project: u64, key: &str, id: &str, event: &str) {
        let event: Value = serde_json::from_str(event).unwrap();
        let body = format!("{{\"event_id\":\"{id}\"}}\n{{\"type\":\"event\"}}\n{event}\n");
        let request = Request::builder()
            .method(Method::POST)
            .uri(format!("/api/{project}/envelope/"))
            .header(
                "x-sentry-auth",
                format!("Sentry sentry_key={key}, sentry_version=7, sentry_client=test/1.0"),
            )
            .body(Body::from(body))
            .unwrap();
        let reply = self.send(request).await;
        assert_eq!(reply.status, StatusCode::OK, "{}", reply.body);
    }

    async fn send(&self, request: Request<Body>) -> Reply {
        let response = self.router.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        Reply {
            status,
            headers,
            body: String::from_utf8_lossy(&bytes).into_owned(),
        }
    }

    async fn get(&self, uri: &str, token: Option<&str>) -> Reply {
        let mut request = Request::builder().uri(uri);
        if let Some(token) = token {
            request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        self.send(request.body(Body::empty()).unwrap()).await
    }

    async fn post_form(&self, uri: &str, token: Option<&str>, form: &str) -> Reply {
        let mut request = Request::builder()
            .method(Method::POST)
            .uri(uri)
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
        if let Some(token) = token {
            request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        self.send(request.body(Body::from(form.to_owned())).unwrap())
            .await
    }

    async fn token(&self, scopes: &[Scope], projects: Option<Vec<u64>>) -> String {
        let new = NewToken {
            name: "ui test".into(),
            org: DEFAULT_ORG.into(),
            scopes: scopes.to_vec(),
            projects,
            owner: None,
        };
        self.node.tokens.create(new).await.unwrap().0
    }

    async fn full(&self) -> String {
        self.token(
            &[Scope::EventRead, Scope::EventWrite, Scope::ProjectWrite],
            None,
        )
        .await
    }

    async fn one(&self, sql: &str) -> Value {
        let output = self.node.query.run(&ProjectFilter::All, sql).await.unwrap();
        let bytes =
            crate::query::format::encode(&output, crate::query::format::Format::Json).unwrap();
        let rows: Value = serde_json::from_slice(&bytes).unwrap();
        rows[0].clone()
    }

    async fn issue_of(&self, event: &str) -> i64 {
        self.one(&format!(
            "SELECT issue_id FROM events WHERE event_id = '{event}'"
        ))
        .await["issue_id"]
            .as_i64()
            .unwrap()
    }

    async fn status_of(&self, issue: i64) -> String {
        self.one(&format!(
            "SELECT status FROM issues WHERE issue_id = {issue}"
        ))
        .await["status"]
            .as_str()
            .unwrap()
            .to_owned()
    }

    /// A page that must render: 200, HTML, CSP-clean markup.
    async fn page(&self, uri: &str, token: &str) -> String {
        let reply = self.get(uri, Some(token)).await;
        assert_eq!(reply.status, StatusCode::OK, "{uri}: {}", reply.body);
        assert!(
            reply.headers[header::CONTENT_TYPE]
                .to_str()
                .unwrap()
                .starts_with("text/html"),
            "{uri}"
        );
        assert_csp_clean(uri, &reply.body);
        reply.body
    }
}

/// Fails unless `html` has no `style` attribute or element, no `on*` event-handler attribute
/// and no `<script>` without `src`: what a CSP without 'unsafe-inline' would block. Scans every
/// tag's attributes (text between tags may say anything).
fn assert_csp_clean(what: &str, html: &str) {
    let lower = html.to_ascii_lowercase();
    let mut rest = lower.as_str();
    let mut tags = 0;
    while let Some(start) = rest.find('<') {
        rest = &rest[start + 1..];
        let end = rest.find('>').unwrap_or(rest.len());
        let tag = &rest[..end];
        rest = &rest[end..];
        if tag.starts_with('!') || tag.starts_with('/') {
            continue;
        }
        tags += 1;
        let name: String = tag
            .chars()
            .take_while(|c| c.is_ascii_alphanumeric())
            .collect();
        assert_ne!(name, "style", "{what}: a <style> element: <{tag}>");
        if name == "script" {
            assert!(tag.contains(" src="), "{what}: an inline script: <{tag}>");
        }
        // attribute names: words after whitespace, before `=` or whitespace
        let mut in_quote: Option<char> = None;
        let mut prev = ' ';
        let chars: Vec<char> = tag.chars().collect();
        for (i, &c) in chars.iter().enumerate() {
            match in_quote {
                Some(q) if c == q => in_quote = None,
                Some(_) => {}
                None if c == '"' || c == '\'' => in_quote = Some(c),
                None if prev.is_whitespace() && !c.is_whitespace() => {
                    let attr: String = chars[i..]
                        .iter()
                        .take_while(|c| !c.is_whitespace() && **c != '=')
                        .collect();
                    assert_ne!(attr, "style", "{what}: a style attribute: <{tag}>");
                    assert!(
                        !(attr.starts_with("on") && attr.len() > 2),
                        "{what}: an event-handler attribute {attr}: <{tag}>"
                    );
                }
                None => {}
            }
            prev = c;
        }
    }
    assert!(tags > 0, "{what}: no HTML");
}

#[test]
fn the_markup_check_catches_what_csp_blocks() {
    let caught = |html: &str| std::panic::catch_unwind(|| assert_csp_clean("t", html)).is_err();
    assert!(caught("<p style=\"color:red\">x</p>"));
    assert!(caught("<a href=\"#\" onclick=\"x()\">x</a>"));
    assert!(caught("<img src=x\nonerror=alert(1)>"));
    assert!(caught("<script>alert(1)</script>"));
    assert!(caught("<style>p{}</style>"));
    assert!(!caught(
        "<script type=\"module\" src=\"/a.js\"></script><p title=\"a onclick=b style=c\">on style= one</p>"
    ));
}

#[tokio::test]
async fn without_credentials_pages_redirect_to_login_and_posts_are_refused() {
    let h = harness().await;
    for uri in [
        "/",
        "/organizations/default/issues/",
        "/organizations/default/issues/?query=is%3Aresolved",
        "/organizations/default/issues/1/",
        "/organizations/default/sql/?sql=SELECT+1",
        "/organizations/default/projects/",
    ] {
        let reply = h.get(uri, None).await;
        assert_eq!(reply.status, StatusCode::SEE_OTHER, "{uri}");
        let next: String = url::form_urlencoded::byte_serialize(uri.as_bytes()).collect();
        assert_eq!(reply.location(), format!("/login?next={next}"), "{uri}");
    }
    let reply = h
        .post_form(
            "/organizations/default/issues/bulk/",
            None,
            "action=resolve&issue=1",
        )
        .await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert!(reply.body.contains("missing credentials"), "{}", reply.body);
    let reply = h
        .get("/organizations/default/issues/", Some("flt_nope"))
        .await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
    assert!(reply.body.contains("invalid API token"), "{}", reply.body);

    let login = h
        .get("/login?next=%2Forganizations%2Fdefault%2Fsql%2F", None)
        .await;
    assert_eq!(login.status, StatusCode::OK);
    assert_csp_clean("login", &login.body);
    assert!(login.body.contains("action=\"/auth/login\""));
    assert!(
        login
            .body
            .contains("name=\"next\" value=\"/organizations/default/sql/\"")
    );
    assert!(login.body.contains("autocomplete=\"one-time-code\""));
    // another site is never a place to go back to
    let login = h.get("/login?next=%2F%2Fevil.example", None).await;
    assert!(
        login.body.contains("name=\"next\" value=\"/\""),
        "{}",
        login.body
    );
}

#[tokio::test]
async fn every_page_renders_for_a_token_with_full_access() {
    let h = harness().await;
    let token = h.full().await;
    let bare = h
        .get("/organizations/default/sql?sql=SELECT+1", Some(&token))
        .await;
    assert_eq!(bare.status, StatusCode::PERMANENT_REDIRECT);
    assert_eq!(bare.location(), "/organizations/default/sql/?sql=SELECT+1");
    let home = h.get("/", Some(&token)).await;
    assert_eq!(home.status, StatusCode::SEE_OTHER);
    assert_eq!(home.location(), "/organizations/default/issues/");

    let stream = h.page("/organizations/default/issues/", &token).await;
    assert!(stream.contains("card declined by billing gateway"));
    // the title with markup is text, never markup
    assert!(
        stream.contains("ValueError: &#60;script&#62;alert(1)&#60;/script&#62;"),
        "{stream}"
    );
    assert!(!stream.contains("<script>alert"));
    assert!(stream.contains("Open as SQL"));
    assert!(stream.contains("<svg"), "sparklines");
    assert!(stream.contains("name=\"issue\""), "bulk checkboxes");
    assert!(stream.contains("2 events in the last 24 hours"), "{stream}");

    let shop = h.issue_of(SHOP_EVENT).await;
    let issue = h
        .page(&format!("/organizations/default/issues/{shop}/"), &token)
        .await;
    for text in [
        "ValueError",
        "checkout_handler",
        "raise ValueError(x)",
        "deadlock found",
        "GET /cart",
        "ada@example.com",
        "https://shop.example.com/checkout",
        "Firefox",
        "shop@1.0",
        "Resolve",
        "Local variables",
        "2 events in the last 24h",
        "sentry.python",
    ] {
        assert!(issue.contains(text), "issue page lacks {text:?}");
    }
    assert!(!issue.contains("<script>alert") && !issue.contains("<b>42"));
    // Why grouped: the event's variants with their component trees.
    assert!(issue.contains("Why grouped"), "{issue}");
    assert!(issue.contains("newstyle:2026-01-20"), "{issue}");
    assert!(issue.contains("exception*"), "{issue}");
    assert!(issue.contains("&#34;ValueError&#34;"), "{issue}");
    // the latest event is shown; the older one is a link
    assert!(
        issue.contains(&format!("Event <code>{SHOP_EVENT_2}</code>")),
        "{issue}"
    );
    assert!(
        event_link(&issue, SHOP_EVENT, ">Older").is_some(),
        "{issue}"
    );

    let event = h
        .page(
            &format!("/organizations/default/issues/{shop}/events/{SHOP_EVENT}/?frames=app&crumb_level=error"),
            &token,
        )
        .await;
    assert!(event.contains(&format!("Event <code>{SHOP_EVENT}</code>")));
    assert!(
        event.contains("1 frames outside the app are hidden"),
        "{event}"
    );
    assert!(event.contains("deadlock found") && !event.contains("GET /cart"));

    let json = h
        .get(
            &format!("/organizations/default/issues/{shop}/events/{SHOP_EVENT}/json/"),
            Some(&token),
        )
        .await;
    assert_eq!(json.status, StatusCode::OK);
    assert_eq!(json.headers[header::CONTENT_TYPE], "application/json");
    let parsed: Value = serde_json::from_str(&json.body).unwrap();
    assert_eq!(parsed["event_id"], SHOP_EVENT);

    let md = h
        .get(
            &format!("/organizations/default/issues/{shop}/events/{SHOP_EVENT}/event.md"),
            Some(&token),
        )
        .await;
    assert_eq!(md.status, StatusCode::OK);
    assert!(
        md.headers[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with("text/markdown")
    );
    assert!(
        md.body
            .starts_with("# ValueError: <script>alert(1)</script>\n"),
        "{}",
        md.body
    );
    assert!(md.body.contains("## Exception: ValueError"), "{}", md.body);
    assert!(
        md.body.contains("checkout_handler in app.py:10 [in app]"),
        "{}",
        md.body
    );
    assert!(md.body.contains("    > raise ValueError(x)"), "{}", md.body);
    assert!(md.body.contains("- browser: Firefox"), "{}", md.body);

    let sql = h
        .page(
            "/organizations/default/sql/?sql=SELECT+project%2C+count(*)+AS+n+FROM+events+GROUP+BY+project+ORDER+BY+project",
            &token,
        )
        .await;
    assert!(sql.contains("<td>billing</td><td>1</td>"), "{sql}");
    assert!(sql.contains("<td>shop</td><td>2</td>"), "{sql}");
    assert!(sql.contains("download/?format=csv&#38;sql=SELECT"), "{sql}");
    // the schema beside the editor comes from the session's catalog
    assert!(sql.contains("<code>exception_type</code>") && sql.contains("<code>events_24h</code>"));
    let chart = h
        .page(
            "/organizations/default/sql/?sql=SELECT+date_trunc('minute'%2C+timestamp)+AS+t%2C+count(*)+AS+n+FROM+events+GROUP+BY+1+UNION+ALL+SELECT+TIMESTAMP+'2020-01-01T00:00:00Z'%2C+0",
            &token,
        )
        .await;
    assert!(chart.contains("<polyline"), "{chart}");

    let csv = h
        .get(
            "/organizations/default/sql/download/?format=csv&sql=SELECT+project+FROM+events+ORDER+BY+project",
            Some(&token),
        )
        .await;
    assert_eq!(csv.status, StatusCode::OK);
    assert_eq!(csv.body, "project\nbilling\nshop\nshop\n");
    assert!(
        csv.headers[header::CONTENT_DISPOSITION]
            .to_str()
            .unwrap()
            .contains("faultline-query.csv")
    );

    let projects = h.page("/organizations/default/projects/", &token).await;
    assert!(
        projects.contains(&format!("http://{SHOP_KEY}@127.0.0.1:8000/1")),
        "{projects}"
    );
    // where items went: the server's counts are in `outcomes` once flushed
    h.node.flush_with_outcomes().await.unwrap();
    let projects = h.page("/organizations/default/projects/", &token).await;
    let usage = |project: &str, accepted: u64, scrubbed: u64| {
        format!(
            "<td>{project}</td>\n    <td>error</td>\n    <td class=\"num\">{accepted}</td>\n    \
             <td class=\"num\">{scrubbed}</td>\n    <td class=\"num\">0</td>"
        )
    };
    assert!(projects.contains(&usage("shop", 2, 0)), "{projects}");
    // the billing event's API key was scrubbed
    assert!(projects.contains(&usage("billing", 1, 1)), "{projects}");

    for asset in [super::assets::css_url(), super::assets::js_url()] {
        let reply = h.get(&asset, None).await;
        assert_eq!(reply.status, StatusCode::OK, "{asset}");
        assert_eq!(
            reply.headers[header::CACHE_CONTROL],
            "public, max-age=31536000, immutable"
        );
    }
    assert_eq!(
        h.get("/static/app.000000000000.css", None).await.status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn a_token_for_one_project_sees_nothing_of_the_other() {
    let h = harness().await;
    let token = h
        .token(
            &[Scope::EventRead, Scope::EventWrite, Scope::ProjectWrite],
            Some(vec![1]),
        )
        .await;
    let billing = h.issue_of(BILLING_EVENT).await;
    let stream = h.page("/organizations/default/issues/", &token).await;
    assert!(stream.contains("ValueError"));
    assert!(!stream.contains("card declined"), "{stream}");
    assert!(
        !stream.contains("billing"),
        "the project switcher lists only readable projects"
    );

    let issue = h
        .get(
            &format!("/organizations/default/issues/{billing}/"),
            Some(&token),
        )
        .await;
    assert_eq!(issue.status, StatusCode::NOT_FOUND);
    assert!(issue.body.contains(&format!(
        "issue {billing} does not exist or is not in a project the token may read"
    )));
    assert_csp_clean("404", &issue.body);
    let json = h
        .get(
            &format!("/organizations/default/issues/{billing}/events/{BILLING_EVENT}/json/"),
            Some(&token),
        )
        .await;
    assert_eq!(json.status, StatusCode::NOT_FOUND);
    assert!(!json.body.contains("card declined"));

    let sql = h
        .page(
            "/organizations/default/sql/?sql=SELECT+DISTINCT+project+FROM+events",
            &token,
        )
        .await;
    assert!(
        sql.contains("<td>shop</td>") && !sql.contains("<td>billing</td>"),
        "{sql}"
    );
    // the usage of the projects page is the token's projects' alone
    h.node.flush_with_outcomes().await.unwrap();
    let projects = h.page("/organizations/default/projects/", &token).await;
    assert!(
        projects.contains("<td>shop</td>") && !projects.contains("<td>billing</td>"),
        "{projects}"
    );
    let csv = h
        .get(
            "/organizations/default/sql/download/?format=csv&sql=SELECT+title+FROM+issues",
            Some(&token),
        )
        .await;
    assert!(!csv.body.contains("card declined"), "{}", csv.body);

    let act = h
        .post_form(
            &format!("/organizations/default/issues/{billing}/resolve/"),
            Some(&token),
            "",
        )
        .await;
    assert_eq!(act.status, StatusCode::NOT_FOUND);
    assert_eq!(h.status_of(billing).await, "unresolved");

    // another organization reads as not existing
    let other = h.get("/organizations/acme/issues/", Some(&token)).await;
    assert_eq!(other.status, StatusCode::NOT_FOUND);
    assert!(
        other.body.contains("no organization &#34;acme&#34;"),
        "{}",
        other.body
    );
}

#[tokio::test]
async fn issue_state_changes_through_forms_and_only_with_the_admin_scope() {
    let h = harness().await;
    let token = h.full().await;
    let reader = h.token(&[Scope::EventRead], None).await;
    let shop = h.issue_of(SHOP_EVENT).await;
    let billing = h.issue_of(BILLING_EVENT).await;

    let refused = h
        .post_form(
            &format!("/organizations/default/issues/{shop}/resolve/"),
            Some(&reader),
            "",
        )
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert!(
        refused
            .body
            .contains("the API token lacks the scope event:write")
    );
    let page = h.page("/organizations/default/issues/", &reader).await;
    assert!(
        !page.contains("name=\"issue\""),
        "no bulk actions without the scope"
    );

    let next = format!("/organizations/default/issues/{shop}/");
    let reply = h
        .post_form(
            &format!("/organizations/default/issues/{shop}/resolve/"),
            Some(&token),
            &format!("next={}", super::encode(&next)),
        )
        .await;
    assert_eq!(reply.status, StatusCode::SEE_OTHER, "{}", reply.body);
    assert_eq!(reply.location(), next);
    assert_eq!(h.status_of(shop).await, "resolved");
    let stream = h.page("/organizations/default/issues/", &token).await;
    assert!(
        !stream.contains("ValueError"),
        "resolved issues leave the default stream"
    );
    let resolved = h
        .page("/organizations/default/issues/?query=is%3Aresolved", &token)
        .await;
    assert!(resolved.contains("ValueError") && !resolved.contains("card declined"));

    let reply = h
        .post_form(
            "/organizations/default/issues/bulk/",
            Some(&token),
            &format!("action=ignore&for=100&issue={shop}&issue={billing}&next=%2F%2Fevil.example"),
        )
        .await;
    assert_eq!(reply.status, StatusCode::SEE_OTHER);
    assert_eq!(reply.location(), "/organizations/default/issues/");
    assert_eq!(h.status_of(shop).await, "ignored");
    assert_eq!(h.status_of(billing).await, "ignored");
    let reply = h
        .post_form(
            "/organizations/default/issues/bulk/",
            Some(&token),
            &format!("action=reopen&issue={shop}"),
        )
        .await;
    assert_eq!(reply.status, StatusCode::SEE_OTHER);
    assert_eq!(h.status_of(shop).await, "unresolved");

    let empty = h
        .post_form(
            "/organizations/default/issues/bulk/",
            Some(&token),
            "action=resolve",
        )
        .await;
    assert_eq!(empty.status, StatusCode::BAD_REQUEST);
    assert!(empty.body.contains("select at least one issue"));
    let bad = h
        .post_form(
            "/organizations/default/issues/bulk/",
            Some(&token),
            &format!("action=delete&issue={shop}"),
        )
        .await;
    assert_eq!(bad.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn search_filters_tags_and_refuses_injection() {
    let h = harness().await;
    let token = h.full().await;
    let stream = |query: &str| {
        format!(
            "/organizations/default/issues/?query={}",
            super::encode(query)
        )
    };
    let found = h.page(&stream("browser:Firefox"), &token).await;
    assert!(found.contains("ValueError") && !found.contains("card declined"));
    let found = h.page(&stream("!browser:Firefox"), &token).await;
    assert!(!found.contains("ValueError") && found.contains("card declined"));
    let found = h.page(&stream("quote:\"it's\" checkout"), &token).await;
    assert!(found.contains("ValueError"), "{found}");
    let found = h.page(&stream("level:warning gateway"), &token).await;
    assert!(found.contains("card declined") && !found.contains("ValueError"));
    let found = h
        .page(
            "/organizations/default/issues/?environment=prod&release=shop%401.0",
            &token,
        )
        .await;
    assert!(found.contains("ValueError") && !found.contains("card declined"));

    for attempt in [
        "level:\"x' OR '1'='1\"",
        "' OR 1=1; --",
        "release:a\\' OR 1=1 --",
        "x'; SELECT * FROM events; --",
        "browser\\:x",
        "\"\\\\\"",
    ] {
        let reply = h.get(&stream(attempt), Some(&token)).await;
        assert_eq!(reply.status, StatusCode::OK, "{attempt}: {}", reply.body);
        assert_csp_clean(attempt, &reply.body);
        assert!(
            !reply.body.contains("ValueError") && !reply.body.contains("card declined"),
            "{attempt} matched issues"
        );
    }
    // every string survives quoting unchanged, through the real SQL engine
    for value in [
        "'",
        "\\",
        "';--",
        "a''b",
        "\\'",
        "x\\'; DROP TABLE events; --",
        "\"",
        "é ü",
    ] {
        let row = h.one(&format!("SELECT {} AS v", literal(value))).await;
        assert_eq!(row["v"], value, "{value}");
    }

    let malformed = h.page(&stream("browser:\"Firefox"), &token).await;
    assert!(
        malformed.contains("unterminated quote in the search"),
        "{malformed}"
    );
    let bad = h.page(&stream("is:open"), &token).await;
    assert!(bad.contains("is:open is not a status"));
    let reply = h
        .get("/organizations/default/issues/?period=2y", Some(&token))
        .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert!(
        reply
            .body
            .contains("period &#34;2y&#34; is not one of 1h, 24h, 7d, 14d, 30d"),
        "{}",
        reply.body
    );

    // "Open as SQL" opens the console with the statement the stream ran
    let page = h.page(&stream("browser:Firefox"), &token).await;
    let start = page.find("/organizations/default/sql/?sql=").unwrap();
    let end = start + page[start..].find('"').unwrap();
    let href = page[start..end].replace("&#38;", "&");
    let console = h.page(&href, &token).await;
    assert!(
        console.contains("key = &#39;browser&#39; AND value = &#39;Firefox&#39;"),
        "{console}"
    );
    assert!(console.contains("<td>shop</td>"), "{console}");
}

#[tokio::test]
async fn sql_errors_show_as_the_api_shows_them() {
    let h = harness().await;
    let token = h.full().await;
    let reply = h
        .get(
            "/organizations/default/sql/?sql=SELECT+nope+FROM+events",
            Some(&token),
        )
        .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert_csp_clean("sql error", &reply.body);
    assert!(reply.body.contains("nope"), "{}", reply.body);
    let api = h
        .send(
            Request::builder()
                .method(Method::POST)
                .uri("/api/sql")
                .header(header::AUTHORIZATION, format!("Bearer {token}"))
                .body(Body::from("SELECT nope FROM events"))
                .unwrap(),
        )
        .await;
    let detail: Value = serde_json::from_str(&api.body).unwrap();
    let detail = detail["detail"].as_str().unwrap();
    let escaped = detail.replace('"', "&#34;").replace('\'', "&#39;");
    assert!(
        reply.body.contains(&escaped),
        "{detail} not in {}",
        reply.body
    );
    let refused = h
        .get(
            "/organizations/default/sql/?sql=DROP+TABLE+events",
            Some(&token),
        )
        .await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST);
    let download = h
        .get(
            "/organizations/default/sql/download/?format=xml&sql=SELECT+1",
            Some(&token),
        )
        .await;
    assert_eq!(download.status, StatusCode::BAD_REQUEST);
    let empty_console = h.page("/organizations/default/sql/", &token).await;
    assert!(
        empty_console.contains("FROM events"),
        "an example to start from"
    );
}

#[tokio::test]
async fn a_new_organization_is_told_how_to_send_its_first_event() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::default();
    config.storage.data_dir = dir.path().to_owned();
    config.projects.push(ProjectConfig {
        id: 1,
        name: "shop".into(),
        keys: vec![SHOP_KEY.into()],
        quotas: Vec::new(),
        rate_limit: None,
        retention_days: None,
        grouping_enhancements: None,
        fingerprinting_rules: None,
        privacy: None,
    });
    let node = Arc::new(Node::open(config).await.unwrap());
    let h = Harness {
        _dir: dir,
        router: crate::api::router(&node),
        node,
    };
    let token = h.full().await;
    let page = h.page("/organizations/default/issues/", &token).await;
    assert!(page.contains("No events yet"));
    assert!(page.contains(&format!("http://{SHOP_KEY}@127.0.0.1:8000/1")));
}

/// The position and href of the first link to event `id` whose `href` attribute is followed by
/// `after` (e.g. `">Older"`, `" data-open"`). Links to events carry `?at=<ms>`.
fn event_link(page: &str, id: &str, after: &str) -> Option<(usize, String)> {
    let needle = format!("/events/{id}/");
    let mut from = 0;
    while let Some(found) = page[from..].find(&needle) {
        let start = from + found;
        let end = start + page[start..].find('"')?;
        if page[end + 1..].starts_with(after) {
            let href_start = page[..start].rfind('"')? + 1;
            return Some((start, page[href_start..end].to_owned()));
        }
        from = end;
    }
    None
}

#[tokio::test]
async fn events_older_than_a_day_are_found_beyond_the_recent_window() {
    let h = harness().await;
    let token = h.full().await;
    let old_id = "22222222222222222222222222222222";
    let mut payload: Value = serde_json::from_str(SHOP_PAYLOAD).unwrap();
    let three_days_ago = chrono::Utc::now() - chrono::Duration::days(3);
    payload["timestamp"] = Value::from(three_days_ago.timestamp() as f64);
    h.ingest(1, SHOP_KEY, old_id, &payload.to_string()).await;
    let shop = h.issue_of(SHOP_EVENT).await;
    assert_eq!(h.issue_of(old_id).await, shop, "one issue");

    let issue = h
        .page(&format!("/organizations/default/issues/{shop}/"), &token)
        .await;
    // the list holds the recent two and the old one, newest first
    let (a, b, c) = (
        event_link(&issue, SHOP_EVENT_2, " data-open").unwrap().0,
        event_link(&issue, SHOP_EVENT, " data-open").unwrap().0,
        event_link(&issue, old_id, " data-open").unwrap().0,
    );
    assert!(a < b && b < c, "{issue}");
    assert!(event_link(&issue, old_id, ">First").is_some(), "{issue}");

    let middle = h
        .page(
            &format!("/organizations/default/issues/{shop}/events/{SHOP_EVENT}/"),
            &token,
        )
        .await;
    assert!(event_link(&middle, old_id, ">Older").is_some(), "{middle}");
    assert!(
        event_link(&middle, SHOP_EVENT_2, ">Newer").is_some(),
        "{middle}"
    );
    assert!(
        event_link(&middle, SHOP_EVENT_2, ">Latest").is_some(),
        "{middle}"
    );
    let oldest = h
        .page(
            &format!("/organizations/default/issues/{shop}/events/{old_id}/"),
            &token,
        )
        .await;
    assert!(
        oldest.contains("<span class=\"disabled\">Older</span>"),
        "{oldest}"
    );
    // The links carry the event's time: the old event is found at it, a wrong time falls
    // back to the search over the issue's events, a time that is no number is refused.
    let (_, href) = event_link(&middle, old_id, ">Older").unwrap();
    let at: i64 = href.rsplit_once("at=").unwrap().1.parse().unwrap();
    assert_eq!(at / 1000, three_days_ago.timestamp(), "{href}");
    let via_link = h.page(&href.replace("&#38;", "&"), &token).await;
    assert!(
        via_link.contains(&format!("Event <code>{old_id}</code>")),
        "{via_link}"
    );
    let wrong = h
        .page(
            &format!(
                "/organizations/default/issues/{shop}/events/{old_id}/?at={}",
                at + 60_000
            ),
            &token,
        )
        .await;
    assert!(
        wrong.contains(&format!("Event <code>{old_id}</code>")),
        "{wrong}"
    );
    let reply = h
        .get(
            &format!("/organizations/default/issues/{shop}/events/{old_id}/?at=yesterday"),
            Some(&token),
        )
        .await;
    assert_eq!(reply.status, StatusCode::BAD_REQUEST);
    assert!(
        reply
            .body
            .contains("at &#34;yesterday&#34; is not an event time"),
        "{}",
        reply.body
    );
    assert!(
        event_link(&oldest, SHOP_EVENT, ">Newer").is_some(),
        "{oldest}"
    );
}

// ---- people: link pages and the account page ----

const OWNER_EMAIL: &str = "owner@example.com";
const OWNER_PASSWORD: &str = "correct horse battery staple";

impl Harness {
    /// A request with the session cookie `cookie` (a browser's form post when `form` is set).
    async fn with_cookie(&self, method: Method, uri: &str, cookie: &str, form: &str) -> Reply {
        let name = crate::api::session_cookie_name(&self.node);
        let mut request = Request::builder()
            .method(method)
            .uri(uri)
            .header(header::COOKIE, format!("{name}={cookie}"))
            .header("sec-fetch-site", "same-origin");
        if !form.is_empty() {
            request = request.header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
        }
        self.send(request.body(Body::from(form.to_owned())).unwrap())
            .await
    }

    /// The session cookie a `Set-Cookie` header of `reply` sets.
    fn cookie_of(&self, reply: &Reply) -> String {
        let name = crate::api::session_cookie_name(&self.node);
        let set = reply.headers[header::SET_COOKIE].to_str().unwrap();
        let value = set
            .strip_prefix(&format!("{name}="))
            .and_then(|rest| rest.split(';').next())
            .unwrap_or_default();
        assert!(!value.is_empty(), "no session cookie in {set}");
        value.to_owned()
    }

    /// Logs in through the login form as the browser does; returns the session cookie.
    async fn login(&self, email: &str, password: &str, code: Option<&str>) -> String {
        let mut form = format!(
            "email={}&password={}&next=%2Faccount%2F",
            super::encode(email),
            super::encode(password)
        );
        if let Some(code) = code {
            form.push_str(&format!("&code={code}"));
        }
        let request = Request::builder()
            .method(Method::POST)
            .uri("/auth/login")
            .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
            .header("sec-fetch-site", "same-origin")
            .body(Body::from(form))
            .unwrap();
        let reply = self.send(request).await;
        assert_eq!(reply.status, StatusCode::SEE_OTHER, "{}", reply.body);
        assert_eq!(reply.location(), "/account/");
        self.cookie_of(&reply)
    }

    async fn person(&self, email: &str, role: crate::people::OrgRole) {
        self.node
            .people
            .create_user(email, "Ada Owner", DEFAULT_ORG, role, Some(OWNER_PASSWORD))
            .await
            .unwrap();
    }

    /// A page as a logged-in person must see it: 200, HTML, CSP-clean markup.
    async fn person_page(&self, uri: &str, cookie: &str) -> String {
        let reply = self.with_cookie(Method::GET, uri, cookie, "").await;
        assert_eq!(reply.status, StatusCode::OK, "{uri}: {}", reply.body);
        assert_csp_clean(uri, &reply.body);
        reply.body
    }
}

/// The text between `<code id="{id}">` and `</code>`.
fn code_text(html: &str, id: &str) -> String {
    let start = format!("<code id=\"{id}\"");
    let at = html
        .find(&start)
        .unwrap_or_else(|| panic!("no {id} in {html}"));
    let from = at + html[at..].find('>').unwrap() + 1;
    let len = html[from..].find("</code>").unwrap();
    html[from..from + len].to_owned()
}

#[tokio::test]
async fn the_first_start_link_page_creates_the_owner_and_logs_in_once() {
    let h = harness().await;
    let token = h.node.people.create_link(None).await.unwrap();
    let page = h.get(&format!("/setup/{token}"), None).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert_csp_clean("setup", &page.body);
    assert!(page.body.contains("Create the first owner"));
    assert!(page.body.contains("action=\"/auth/setup\""));
    assert!(
        page.body
            .contains(&format!("name=\"token\" value=\"{token}\""))
    );
    assert!(page.body.contains("name=\"email\""));

    // a refused password goes back to the page, which says why
    let weak = h
        .post_form(
            "/auth/setup",
            None,
            &format!("token={token}&email=owner%40example.com&password=short"),
        )
        .await;
    assert_eq!(weak.status, StatusCode::SEE_OTHER, "{}", weak.body);
    assert!(
        weak.location()
            .starts_with(&format!("/setup/{token}?error=")),
        "{}",
        weak.location()
    );
    let again = h.get(weak.location(), None).await;
    assert!(again.body.contains("role=\"alert\""), "{}", again.body);
    assert!(again.body.contains("8"), "{}", again.body);

    let form = format!(
        "token={token}&email=owner%40example.com&name=Ada&password={}&next=%2F",
        super::encode(OWNER_PASSWORD)
    );
    let done = h.post_form("/auth/setup", None, &form).await;
    assert_eq!(done.status, StatusCode::SEE_OTHER, "{}", done.body);
    assert_eq!(done.location(), "/");
    let cookie = h.cookie_of(&done);
    let account = h.person_page("/account/", &cookie).await;
    assert!(account.contains(OWNER_EMAIL), "{account}");
    assert!(account.contains("<dd>owner</dd>"), "{account}");
    // the header names the person and offers logout
    assert!(
        account.contains("Signed in as owner@example.com"),
        "{account}"
    );
    assert!(account.contains("action=\"/auth/logout\""));

    // the link works once
    let used = h.get(&format!("/setup/{token}"), None).await;
    assert_eq!(used.status, StatusCode::NOT_FOUND);
    assert!(
        used.body.contains("unknown, used or expired"),
        "{}",
        used.body
    );
    assert_eq!(
        h.get("/setup/nope", None).await.status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn set_password_and_invite_pages_name_the_account() {
    let h = harness().await;
    h.person(OWNER_EMAIL, crate::people::OrgRole::Owner).await;
    let user = h
        .node
        .people
        .user_by_email(OWNER_EMAIL)
        .await
        .unwrap()
        .unwrap();
    let token = h.node.people.create_link(Some(&user.id)).await.unwrap();
    let page = h.get(&format!("/setup/{token}"), None).await;
    assert_eq!(page.status, StatusCode::OK);
    assert_csp_clean("set password", &page.body);
    assert!(page.body.contains("Set your password"));
    assert!(page.body.contains(OWNER_EMAIL));
    assert!(!page.body.contains("name=\"email\""));

    let (invite, _) = h
        .node
        .people
        .invite(
            DEFAULT_ORG,
            "grace@example.com",
            crate::people::OrgRole::Member,
            Vec::new(),
            &user.id,
        )
        .await
        .unwrap();
    let page = h.get(&format!("/accept/{invite}"), None).await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.body);
    assert_csp_clean("accept", &page.body);
    assert!(page.body.contains("grace@example.com"));
    assert!(page.body.contains("role member"));
    assert!(page.body.contains("action=\"/auth/accept\""));
    let weak = h
        .post_form(
            "/auth/accept",
            None,
            &format!("token={invite}&name=Grace&password=short"),
        )
        .await;
    assert!(
        weak.location()
            .starts_with(&format!("/accept/{invite}?error=")),
        "{}",
        weak.location()
    );
    let joined = h
        .post_form(
            "/auth/accept",
            None,
            &format!("token={invite}&name=Grace&password=another+long+passphrase"),
        )
        .await;
    assert_eq!(joined.status, StatusCode::SEE_OTHER, "{}", joined.body);
    let cookie = h.cookie_of(&joined);
    let account = h.person_page("/account/", &cookie).await;
    assert!(account.contains("<dd>member</dd>"), "{account}");
    assert_eq!(
        h.get(&format!("/accept/{invite}"), None).await.status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn the_account_page_is_for_people_not_tokens() {
    let h = harness().await;
    let reply = h.get("/account/", None).await;
    assert_eq!(reply.status, StatusCode::SEE_OTHER);
    assert_eq!(reply.location(), "/login?next=%2Faccount%2F");
    let token = h.full().await;
    let reply = h.get("/account/", Some(&token)).await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
    assert!(
        reply.body.contains("an API token has no account"),
        "{}",
        reply.body
    );
    let reply = h.post_form("/account/totp/", Some(&token), "").await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
    let reply = h.post_form("/account/totp/", None, "").await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_member_changes_the_password_with_the_current_one() {
    let h = harness().await;
    h.person("mia@example.com", crate::people::OrgRole::Member)
        .await;
    let cookie = h.login("mia@example.com", OWNER_PASSWORD, None).await;
    let other = h.login("mia@example.com", OWNER_PASSWORD, None).await;
    let page = h.person_page("/account/", &cookie).await;
    assert!(page.contains("<dd>member</dd>"));
    assert!(page.contains("this session"));
    assert!(page.contains("End all other sessions"));
    // the member's header carries the pages a member may read
    assert!(page.contains("/organizations/default/issues/"), "{page}");

    let wrong = h
        .with_cookie(
            Method::POST,
            "/account/password/",
            &cookie,
            "current=nope&password=a+brand+new+passphrase",
        )
        .await;
    assert_eq!(wrong.status, StatusCode::FORBIDDEN, "{}", wrong.body);
    assert_csp_clean("password refused", &wrong.body);
    assert!(wrong.body.contains("role=\"alert\""));
    let ok = h
        .with_cookie(
            Method::POST,
            "/account/password/",
            &cookie,
            &format!(
                "current={}&password=a+brand+new+passphrase",
                super::encode(OWNER_PASSWORD)
            ),
        )
        .await;
    assert_eq!(ok.status, StatusCode::SEE_OTHER, "{}", ok.body);
    assert_eq!(ok.location(), "/account/?done=password");
    assert!(
        h.person_page(ok.location(), &cookie)
            .await
            .contains("Password changed")
    );
    // the other session ended with the change
    let ended = h.with_cookie(Method::GET, "/account/", &other, "").await;
    assert_eq!(ended.status, StatusCode::SEE_OTHER);
    h.login("mia@example.com", "a brand new passphrase", None)
        .await;

    // a form from another site is refused
    let cross = Request::builder()
        .method(Method::POST)
        .uri("/account/sessions/end-others/")
        .header(
            header::COOKIE,
            format!("{}={cookie}", crate::api::session_cookie_name(&h.node)),
        )
        .header("sec-fetch-site", "cross-site")
        .body(Body::empty())
        .unwrap();
    assert_eq!(h.send(cross).await.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn totp_enrolment_shows_the_key_once_and_then_asks_for_codes() {
    let h = harness().await;
    h.person(OWNER_EMAIL, crate::people::OrgRole::Owner).await;
    let cookie = h.login(OWNER_EMAIL, OWNER_PASSWORD, None).await;
    let enrol = h
        .with_cookie(Method::POST, "/account/totp/", &cookie, "")
        .await;
    assert_eq!(enrol.status, StatusCode::OK, "{}", enrol.body);
    assert_csp_clean("totp enrol", &enrol.body);
    assert_eq!(enrol.headers[header::CACHE_CONTROL], "no-store");
    let secret = code_text(&enrol.body, "totp-secret");
    assert!(code_text(&enrol.body, "totp-uri").starts_with("otpauth://totp/"));
    // the account page itself never shows the key
    assert!(!h.person_page("/account/", &cookie).await.contains(&secret));

    let wrong = h
        .with_cookie(
            Method::POST,
            "/account/totp/confirm/",
            &cookie,
            "code=000000",
        )
        .await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED, "{}", wrong.body);
    assert!(wrong.body.contains("role=\"alert\""));
    assert_eq!(code_text(&wrong.body, "totp-secret"), secret);

    let now = u64::try_from(chrono::Utc::now().timestamp()).unwrap();
    let code = crate::people::totp::code_at(&secret, now).unwrap();
    let on = h
        .with_cookie(
            Method::POST,
            "/account/totp/confirm/",
            &cookie,
            &format!("code={code}"),
        )
        .await;
    assert_eq!(on.status, StatusCode::OK, "{}", on.body);
    assert_csp_clean("totp on", &on.body);
    assert_eq!(on.body.matches("<li><code>").count(), 10, "{}", on.body);
    assert!(on.body.contains("Turn off two-factor authentication"));
    let page = h.person_page("/account/", &cookie).await;
    assert!(!page.contains("recovery-codes"));
    assert!(!page.contains(&secret));

    // logging in now needs a code: a recovery code works once
    let start = on.body.find("<li><code>").unwrap() + "<li><code>".len();
    let recovery = &on.body[start..start + on.body[start..].find('<').unwrap()];
    h.login(OWNER_EMAIL, OWNER_PASSWORD, Some(recovery)).await;

    let off = h
        .with_cookie(
            Method::POST,
            "/account/totp/disable/",
            &cookie,
            "password=nope",
        )
        .await;
    assert_eq!(off.status, StatusCode::FORBIDDEN);
    assert!(
        off.body.contains("the current password is wrong"),
        "{}",
        off.body
    );
    let off = h
        .with_cookie(
            Method::POST,
            "/account/totp/disable/",
            &cookie,
            &format!("password={}", super::encode(OWNER_PASSWORD)),
        )
        .await;
    assert_eq!(off.status, StatusCode::SEE_OTHER, "{}", off.body);
    assert!(
        h.person_page(off.location(), &cookie)
            .await
            .contains("Set up an authenticator app")
    );

    // the audit log holds the enrolment and its end, by this person
    let entries = h
        .node
        .people
        .audit
        .entries(Some(DEFAULT_ORG))
        .await
        .unwrap();
    let mfa: Vec<_> = entries
        .iter()
        .filter(|e| e.event.starts_with("user.mfa."))
        .map(|e| (e.event.as_str(), e.actor_label.as_deref(), e.ip.as_deref()))
        .collect();
    assert_eq!(
        mfa,
        [
            ("user.mfa.enable", Some(OWNER_EMAIL), Some("10.1.2.3")),
            ("user.mfa.disable", Some(OWNER_EMAIL), Some("10.1.2.3"))
        ]
    );
}

#[tokio::test]
async fn sessions_end_one_by_one_or_all_others() {
    let h = harness().await;
    h.person(OWNER_EMAIL, crate::people::OrgRole::Owner).await;
    let first = h.login(OWNER_EMAIL, OWNER_PASSWORD, None).await;
    let second = h.login(OWNER_EMAIL, OWNER_PASSWORD, None).await;
    let third = h.login(OWNER_EMAIL, OWNER_PASSWORD, None).await;
    let page = h.person_page("/account/", &first).await;
    let ends: Vec<&str> = page
        .split("action=\"/account/sessions/")
        .skip(1)
        .filter_map(|rest| rest.split_once("/end/\"").map(|(id, _)| id))
        .filter(|id| !id.contains('/'))
        .collect();
    assert_eq!(ends.len(), 2, "{page}");
    let ended = h
        .with_cookie(
            Method::POST,
            &format!("/account/sessions/{}/end/", ends[0]),
            &first,
            "",
        )
        .await;
    assert_eq!(ended.status, StatusCode::SEE_OTHER, "{}", ended.body);
    assert_eq!(ended.location(), "/account/?done=session");
    let mut live = 0;
    for cookie in [&second, &third] {
        if h.with_cookie(Method::GET, "/account/", cookie, "")
            .await
            .status
            == StatusCode::OK
        {
            live += 1;
        }
    }
    assert_eq!(live, 1);
    let others = h
        .with_cookie(Method::POST, "/account/sessions/end-others/", &first, "")
        .await;
    assert_eq!(others.location(), "/account/?done=others");
    for cookie in [&second, &third] {
        assert_eq!(
            h.with_cookie(Method::GET, "/account/", cookie, "")
                .await
                .status,
            StatusCode::SEE_OTHER
        );
    }
    let page = h.person_page("/account/", &first).await;
    assert!(!page.contains("End all other sessions"));
}

// ---- organization settings ----

#[tokio::test]
async fn organization_settings_act_for_owners_and_read_only_for_members() {
    let h = harness().await;
    h.person(OWNER_EMAIL, crate::people::OrgRole::Owner).await;
    h.person("mia@example.com", crate::people::OrgRole::Member)
        .await;
    let owner = h.login(OWNER_EMAIL, OWNER_PASSWORD, None).await;
    let member = h.login("mia@example.com", OWNER_PASSWORD, None).await;
    let mia = h
        .node
        .people
        .user_by_email("mia@example.com")
        .await
        .unwrap()
        .unwrap()
        .id;
    let settings = "/organizations/default/settings/";

    // the owner sees every action
    let page = h.person_page(settings, &owner).await;
    for expected in [
        "data-member=\"mia@example.com\"",
        "Change role",
        "End sessions",
        "action=\"/organizations/default/settings/invite/\"",
        "Create team",
        "/organizations/default/settings/audit/",
        "aria-current=\"page\">Settings",
    ] {
        assert!(page.contains(expected), "owner page lacks {expected}");
    }
    // a member reads the same list without any action
    let page = h.person_page(settings, &member).await;
    assert!(page.contains("data-member=\"owner@example.com\""));
    for absent in [
        "Change role",
        "End sessions",
        "/settings/invite/",
        "Create team",
        "/settings/audit/",
    ] {
        assert!(!page.contains(absent), "member page offers {absent}");
    }
    let member_url = format!("{settings}members/{mia}/");
    let refused = h
        .with_cookie(Method::POST, &member_url, &member, "action=disable")
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.body);
    assert!(refused.body.contains("member:admin"), "{}", refused.body);
    let refused = h
        .with_cookie(
            Method::POST,
            &format!("{settings}invite/"),
            &member,
            "email=x%40example.com&role=member",
        )
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    let refused = h
        .with_cookie(Method::GET, &format!("{settings}audit/"), &member, "")
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert!(refused.body.contains("org:admin"), "{}", refused.body);

    // invite: the link is shown once, on the answer
    let invited = h
        .with_cookie(
            Method::POST,
            &format!("{settings}invite/"),
            &owner,
            "email=grace%40example.com&role=admin",
        )
        .await;
    assert_eq!(invited.status, StatusCode::OK, "{}", invited.body);
    assert_csp_clean("invited", &invited.body);
    assert!(
        invited
            .body
            .contains("grace@example.com is invited as admin")
    );
    let link = code_text(&invited.body, "invite-link");
    let token = link.rsplit("/accept/").next().unwrap();
    assert_eq!(
        h.get(&format!("/accept/{token}"), None).await.status,
        StatusCode::OK
    );
    assert!(!h.person_page(settings, &owner).await.contains(token));
    // the same address twice is the API's 409-class error, shown on the page
    let again = h
        .with_cookie(
            Method::POST,
            &format!("{settings}invite/"),
            &owner,
            "email=mia%40example.com&role=member",
        )
        .await;
    assert!(again.status.is_client_error(), "{}", again.status);
    assert!(again.body.contains("role=\"alert\""));

    // change the role, disable (which ends the sessions at once), enable
    let changed = h
        .with_cookie(
            Method::POST,
            &member_url,
            &owner,
            "action=role&role=manager",
        )
        .await;
    assert_eq!(changed.status, StatusCode::SEE_OTHER, "{}", changed.body);
    assert_eq!(changed.location(), format!("{settings}?done=role"));
    let disabled = h
        .with_cookie(Method::POST, &member_url, &owner, "action=disable")
        .await;
    assert_eq!(disabled.location(), format!("{settings}?done=disabled"));
    assert_eq!(
        h.with_cookie(Method::GET, settings, &member, "")
            .await
            .status,
        StatusCode::SEE_OTHER
    );
    let page = h
        .person_page(&format!("{settings}?done=disabled"), &owner)
        .await;
    assert!(
        page.contains("<td>manager</td>\n      <td>disabled</td>"),
        "{page}"
    );
    let enabled = h
        .with_cookie(Method::POST, &member_url, &owner, "action=enable")
        .await;
    assert_eq!(enabled.location(), format!("{settings}?done=enabled"));
    let member = h.login("mia@example.com", OWNER_PASSWORD, None).await;
    // a manager acts on members now
    assert!(
        h.person_page(settings, &member)
            .await
            .contains("Change role")
    );
    let ended = h
        .with_cookie(Method::POST, &member_url, &owner, "action=end-sessions")
        .await;
    assert_eq!(ended.location(), format!("{settings}?done=sessions"));
    assert_eq!(
        h.with_cookie(Method::GET, settings, &member, "")
            .await
            .status,
        StatusCode::SEE_OTHER
    );
    let bad = h
        .with_cookie(Method::POST, &member_url, &owner, "action=promote")
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert!(
        bad.body
            .contains("not one of role, disable, enable, end-sessions")
    );

    // teams: create, add a member and a project
    let created = h
        .with_cookie(
            Method::POST,
            &format!("{settings}teams/"),
            &owner,
            "slug=web",
        )
        .await;
    assert_eq!(created.location(), format!("{settings}?done=team"));
    let bad = h
        .with_cookie(
            Method::POST,
            &format!("{settings}teams/"),
            &owner,
            "slug=Not+A+Slug",
        )
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST, "{}", bad.body);
    assert!(bad.body.contains("role=\"alert\""));
    let team_url = format!("{settings}teams/web/");
    let joined = h
        .with_cookie(Method::POST, &team_url, &owner, &format!("member={mia}"))
        .await;
    assert_eq!(joined.location(), format!("{settings}?done=team-member"));
    let owned = h
        .with_cookie(Method::POST, &team_url, &owner, "project=shop")
        .await;
    assert_eq!(owned.location(), format!("{settings}?done=team-project"));
    let page = h.person_page(settings, &owner).await;
    assert!(
        page.contains("<td>mia@example.com (contributor)</td>\n      <td>shop</td>"),
        "{page}"
    );

    // the audit log page: newest first, every action above, by the owner
    let audit = h.person_page(&format!("{settings}audit/"), &owner).await;
    let order: Vec<usize> = [
        "project-team.add",
        "member.join-team",
        "team.create",
        "session.revoke",
        "member.enable",
        "member.disable",
        "member.edit",
        "member.invite",
    ]
    .iter()
    .map(|e| {
        audit
            .find(&format!("<code>{e}</code>"))
            .unwrap_or_else(|| panic!("no {e} in {audit}"))
    })
    .collect();
    assert!(order.windows(2).all(|w| w[0] < w[1]), "{order:?}");
    assert!(audit.contains(OWNER_EMAIL));
    let empty = h
        .person_page(&format!("{settings}audit/?page=2"), &owner)
        .await;
    assert!(empty.contains("No entries on this page"));
    assert_eq!(
        h.with_cookie(Method::GET, &format!("{settings}audit/?page=0"), &owner, "")
            .await
            .status,
        StatusCode::BAD_REQUEST
    );
    // another organization's settings read as not existing
    assert_eq!(
        h.with_cookie(Method::GET, "/organizations/other/settings/", &owner, "")
            .await
            .status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn organization_settings_for_tokens_follow_their_scopes() {
    let h = harness().await;
    h.person(OWNER_EMAIL, crate::people::OrgRole::Owner).await;
    let reader = h.token(&[Scope::EventRead], None).await;
    let reply = h
        .get("/organizations/default/settings/", Some(&reader))
        .await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
    assert!(reply.body.contains("member:read"), "{}", reply.body);
    let members = h.token(&[Scope::EventRead, Scope::MemberRead], None).await;
    let page = h.page("/organizations/default/settings/", &members).await;
    assert!(page.contains("data-member=\"owner@example.com\""));
    assert!(!page.contains("Change role"));
    let admin = h.token(&crate::tenancy::ALL_SCOPES, None).await;
    let page = h.page("/organizations/default/settings/", &admin).await;
    assert!(page.contains("Change role"));
    let audit = h
        .page("/organizations/default/settings/audit/", &admin)
        .await;
    assert!(audit.contains("Audit log"));
    let reply = h
        .get("/organizations/default/settings/audit/", Some(&members))
        .await;
    assert_eq!(reply.status, StatusCode::FORBIDDEN);
}

#[tokio::test]
async fn a_required_second_factor_is_enrolled_on_the_account_page_first() {
    let h = harness().await;
    h.person("mia@example.com", crate::people::OrgRole::Member)
        .await;
    let settings = crate::people::OrgSettings {
        require_mfa: true,
        ..crate::people::OrgSettings::default()
    };
    h.node
        .people
        .set_org_settings(DEFAULT_ORG, &settings)
        .await
        .unwrap();
    let cookie = h.login("mia@example.com", OWNER_PASSWORD, None).await;
    for uri in [
        "/organizations/default/issues/",
        "/organizations/default/settings/",
    ] {
        let reply = h.with_cookie(Method::GET, uri, &cookie, "").await;
        assert_eq!(reply.status, StatusCode::SEE_OTHER, "{uri}");
        assert_eq!(reply.location(), "/account/?done=mfa-required", "{uri}");
    }
    let page = h.person_page("/account/?done=mfa-required", &cookie).await;
    assert!(
        page.contains("requires two-factor authentication"),
        "{page}"
    );
    let refused = h
        .with_cookie(
            Method::POST,
            "/account/password/",
            &cookie,
            "current=x&password=y",
        )
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    assert!(
        refused.body.contains("set up an authenticator app"),
        "{}",
        refused.body
    );
    let enrol = h
        .with_cookie(Method::POST, "/account/totp/", &cookie, "")
        .await;
    assert_eq!(enrol.status, StatusCode::OK, "{}", enrol.body);
    let secret = code_text(&enrol.body, "totp-secret");
    let now = u64::try_from(chrono::Utc::now().timestamp()).unwrap();
    let code = crate::people::totp::code_at(&secret, now).unwrap();
    let on = h
        .with_cookie(
            Method::POST,
            "/account/totp/confirm/",
            &cookie,
            &format!("code={code}"),
        )
        .await;
    assert_eq!(on.status, StatusCode::OK, "{}", on.body);
    assert_eq!(on.body.matches("<li><code>").count(), 10);
    // enrolled: the pages open
    h.person_page("/organizations/default/issues/", &cookie)
        .await;
}

#[tokio::test]
async fn chart_and_tags_add_up_flushed_and_buffered_events() {
    let h = harness().await;
    // The two shop events go to files; a third, from another browser, stays in memory.
    h.node.flush().await.unwrap();
    h.ingest(
        1,
        SHOP_KEY,
        "9ec79c33ec9942ab8353589fcb2e04de",
        &SHOP_PAYLOAD.replace("Firefox", "Chrome"),
    )
    .await;
    let token = h.full().await;
    let shop = h.issue_of(SHOP_EVENT).await;
    let issue = h
        .page(&format!("/organizations/default/issues/{shop}/"), &token)
        .await;
    assert!(issue.contains("3 events in the last 24h"), "{issue}");
    for text in [
        "browser <span class=\"muted\">(3)</span>",
        "<span class=\"tag-value\">Firefox</span> <span class=\"muted\">66% (2)</span>",
        "<span class=\"tag-value\">Chrome</span> <span class=\"muted\">33% (1)</span>",
        "environment <span class=\"muted\">(3)</span>",
        "<span class=\"tag-value\">prod</span> <span class=\"muted\">100% (3)</span>",
        "<span class=\"tag-value\">shop@1.0</span> <span class=\"muted\">100% (3)</span>",
    ] {
        assert!(issue.contains(text), "issue page lacks {text:?}");
    }
    let stream = h.page("/organizations/default/issues/", &token).await;
    assert!(stream.contains("3 events in the last 24 hours"), "{stream}");
    // The same rows through SQL.
    let row = h
        .one(&format!(
            "SELECT sum(events) AS n, count(*) AS hours FROM issue_hours WHERE issue_id = {shop}"
        ))
        .await;
    assert_eq!(row["n"], 3, "{row}");
}

#[tokio::test]
async fn a_person_assigns_resolves_in_the_next_release_and_reads_the_activity() {
    let h = harness().await;
    h.person("ada@example.com", crate::people::OrgRole::Owner)
        .await;
    let cookie = h.login("ada@example.com", OWNER_PASSWORD, None).await;
    let shop = h.issue_of(SHOP_EVENT).await;
    let base = format!("/organizations/default/issues/{shop}/");
    let page = h.person_page(&base, &cookie).await;
    assert!(page.contains("unassigned"), "{page}");
    assert!(
        page.contains("<option value=\"ada@example.com\">Ada Owner (ada@example.com)</option>"),
        "{page}"
    );

    // someone who is not a member cannot be assigned
    let refused = h
        .with_cookie(
            Method::POST,
            &format!("{base}assign/"),
            &cookie,
            "assignee=eve%40example.com",
        )
        .await;
    assert_eq!(refused.status, StatusCode::BAD_REQUEST);
    assert!(
        refused
            .body
            .contains("&#34;eve@example.com&#34; is not an active member of default"),
        "{}",
        refused.body
    );
    let assigned = h
        .with_cookie(
            Method::POST,
            &format!("{base}assign/"),
            &cookie,
            "assignee=me",
        )
        .await;
    assert_eq!(assigned.status, StatusCode::SEE_OTHER, "{}", assigned.body);
    let mine = h
        .person_page(
            "/organizations/default/issues/?query=assigned%3Ame",
            &cookie,
        )
        .await;
    assert!(mine.contains("ValueError") && !mine.contains("card declined"));
    let unassigned = h
        .person_page(
            "/organizations/default/issues/?query=is%3Aunassigned",
            &cookie,
        )
        .await;
    assert!(!unassigned.contains("ValueError") && unassigned.contains("card declined"));

    // resolved in the next release: another event of shop@1.0 leaves it resolved ...
    let resolved = h
        .with_cookie(Method::POST, &format!("{base}resolve-next/"), &cookie, "")
        .await;
    assert_eq!(resolved.status, StatusCode::SEE_OTHER, "{}", resolved.body);
    assert_eq!(h.status_of(shop).await, "resolved");
    h.ingest(
        1,
        SHOP_KEY,
        "9ec79c33ec9942ab8353589fcb2e04e0",
        SHOP_PAYLOAD,
    )
    .await;
    assert_eq!(h.status_of(shop).await, "resolved");
    // ... and one of the next release reopens it as a regression
    h.ingest(
        1,
        SHOP_KEY,
        "9ec79c33ec9942ab8353589fcb2e04e1",
        &SHOP_PAYLOAD.replace("shop@1.0", "shop@1.1"),
    )
    .await;
    assert_eq!(h.status_of(shop).await, "unresolved");

    let page = h.person_page(&base, &cookie).await;
    assert!(page.contains("assigned to ada@example.com"), "{page}");
    let activity = &page[page.find("id=\"activity-h\"").unwrap()..];
    let lines: Vec<&str> = [
        "Regressed",
        "Resolved in the release after shop@1.0",
        "Assigned to ada@example.com",
        "First seen",
    ]
    .into_iter()
    .collect();
    let mut at = 0;
    for line in lines {
        let found = activity[at..]
            .find(line)
            .unwrap_or_else(|| panic!("activity lacks {line:?} after {at}: {activity}"));
        at += found;
    }
    assert!(activity.contains("by ada@example.com"), "{activity}");

    // each change is in the audit log, with the person as actor
    let rows = h
        .node
        .query
        .run_with(
            None,
            &ProjectFilter::All,
            crate::query::AuditView::All,
            "SELECT event, actor_label FROM audit_log WHERE event LIKE 'issue.%' ORDER BY ts",
        )
        .await
        .unwrap();
    let text = datafusion::arrow::util::pretty::pretty_format_batches(&rows.batches)
        .unwrap()
        .to_string();
    assert!(
        text.contains("issue.assign") && text.contains("issue.resolve"),
        "{text}"
    );
}

#[tokio::test]
async fn saved_queries_are_shared_in_the_organization_and_run_from_a_link() {
    let h = harness().await;
    let token = h.full().await;
    let sql = "SELECT project, count(*) AS n FROM events GROUP BY 1 ORDER BY 1";
    let reply = h
        .post_form(
            "/organizations/default/sql/saved/",
            Some(&token),
            &format!("name=Events+per+project&sql={}", super::encode(sql)),
        )
        .await;
    assert_eq!(reply.status, StatusCode::SEE_OTHER, "{}", reply.body);
    let run_href = format!("/organizations/default/sql/?sql={}", super::encode(sql));
    assert_eq!(reply.location(), run_href);

    // another token of the organization sees it, and its link runs it
    let reader = h.token(&[Scope::EventRead], None).await;
    let console = h.page("/organizations/default/sql/", &reader).await;
    assert!(
        console.contains(&format!(
            "<a href=\"{}\">Events per project</a> <span class=\"muted\">by ui test</span>",
            run_href.replace('&', "&#38;")
        )),
        "{console}"
    );
    let ran = h.page(&run_href, &reader).await;
    assert!(ran.contains("<td>billing</td><td>1</td>"), "{ran}");

    // a name is required
    let nameless = h
        .post_form(
            "/organizations/default/sql/saved/",
            Some(&token),
            "name=+&sql=SELECT+1",
        )
        .await;
    assert_eq!(nameless.status, StatusCode::BAD_REQUEST);
    assert!(nameless.body.contains("name: give the query a name"));

    let delete = console
        .split("action=\"")
        .find_map(|rest| {
            let href = &rest[..rest.find('"')?];
            href.ends_with("/delete/").then(|| href.to_owned())
        })
        .expect("a delete form");
    let reply = h.post_form(&delete, Some(&reader), "").await;
    assert_eq!(reply.status, StatusCode::SEE_OTHER, "{}", reply.body);
    let console = h.page("/organizations/default/sql/", &reader).await;
    assert!(!console.contains("Events per project"));
    assert_eq!(
        h.post_form(&delete, Some(&reader), "").await.status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn the_account_page_makes_personal_tokens_within_the_persons_scopes() {
    let h = harness().await;
    h.person("mia@example.com", crate::people::OrgRole::Member)
        .await;
    let cookie = h.login("mia@example.com", OWNER_PASSWORD, None).await;
    let page = h.person_page("/account/", &cookie).await;
    // one checkbox per scope the member holds, none she does not
    assert!(
        page.contains("name=\"scope\" value=\"event:read\" checked"),
        "{page}"
    );
    assert!(
        page.contains("name=\"scope\" value=\"event:write\">"),
        "{page}"
    );
    assert!(!page.contains("value=\"org:admin\""), "{page}");
    // passkeys: listed, and the script that adds one (no inline code)
    assert!(page.contains("No passkey yet."), "{page}");
    assert!(
        page.contains("<script type=\"module\" src=\"/static/passkeys."),
        "{page}"
    );
    assert!(page.contains("Adding a passkey needs JavaScript"), "{page}");

    // asking for more than she holds is refused, naming the scope
    let refused = h
        .with_cookie(
            Method::POST,
            "/account/tokens/",
            &cookie,
            "name=laptop&scope=event%3Aread&scope=org%3Aadmin",
        )
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.body);
    assert_csp_clean("token refused", &refused.body);
    assert!(
        refused
            .body
            .contains("cannot grant the scope org:admin: you do not hold it"),
        "{}",
        refused.body
    );

    let created = h
        .with_cookie(
            Method::POST,
            "/account/tokens/",
            &cookie,
            "name=laptop&scope=event%3Aread",
        )
        .await;
    assert_eq!(created.status, StatusCode::OK, "{}", created.body);
    assert_eq!(created.headers[header::CACHE_CONTROL], "no-store");
    assert_csp_clean("token created", &created.body);
    let secret = code_text(&created.body, "new-token");
    assert!(secret.starts_with("flt_"), "{secret}");
    // the token works with her rights, and the page never shows it again
    let sql = h
        .get("/organizations/default/sql/?sql=SELECT+1", Some(&secret))
        .await;
    assert_eq!(sql.status, StatusCode::OK, "{}", sql.body);
    let again = h.person_page("/account/", &cookie).await;
    assert!(!again.contains(&secret));
    assert!(again.contains("<td>laptop</td>"), "{again}");
    let mia = h
        .node
        .people
        .user_by_email("mia@example.com")
        .await
        .unwrap()
        .unwrap();
    let id = h.node.tokens.list_owned(&mia.id).await.unwrap()[0]
        .id
        .clone();
    let revoked = h
        .with_cookie(
            Method::POST,
            &format!("/account/tokens/{id}/revoke/"),
            &cookie,
            "",
        )
        .await;
    assert_eq!(revoked.status, StatusCode::SEE_OTHER, "{}", revoked.body);
    assert_eq!(revoked.location(), "/account/?done=token-revoked");
    let sql = h
        .get("/organizations/default/sql/?sql=SELECT+1", Some(&secret))
        .await;
    assert_eq!(sql.status, StatusCode::UNAUTHORIZED);
    // an unknown token (or another person's) is not found
    let unknown = h
        .with_cookie(
            Method::POST,
            "/account/tokens/0123456789abcdef/revoke/",
            &cookie,
            "",
        )
        .await;
    assert_eq!(unknown.status, StatusCode::NOT_FOUND);
}

/// Bulk "Merge" merges the selected issues into the one with the most events: its page lists
/// the merged issue and shows its events; the merged issue's page says where it went and
/// offers "Unmerge"; one issue alone is refused.
#[tokio::test]
async fn merge_from_the_stream_and_unmerge_from_the_issue_page() {
    let h = harness().await;
    let token = h.full().await;
    let timeout = "33333333333333333333333333333333";
    h.ingest(
        1,
        SHOP_KEY,
        timeout,
        r#"{"level": "error", "message": "upstream timed out", "tags": {"browser": "Chrome"}}"#,
    )
    .await;
    let shop = h.issue_of(SHOP_EVENT).await;
    let other = h.issue_of(timeout).await;
    assert_ne!(shop, other);

    let one = h
        .post_form(
            "/organizations/default/issues/bulk/",
            Some(&token),
            &format!("action=merge&issue={shop}"),
        )
        .await;
    assert_eq!(one.status, StatusCode::BAD_REQUEST);
    assert!(one.body.contains("select at least two issues to merge"));

    let reply = h
        .post_form(
            "/organizations/default/issues/bulk/",
            Some(&token),
            &format!("action=merge&issue={other}&issue={shop}"),
        )
        .await;
    assert_eq!(reply.status, StatusCode::SEE_OTHER, "{}", reply.body);
    // The shop issue has two events, the other one: the other is merged into it.
    assert_eq!(h.status_of(other).await, "merged");
    assert_eq!(h.status_of(shop).await, "unresolved");

    let page = h
        .page(&format!("/organizations/default/issues/{shop}/"), &token)
        .await;
    assert_csp_clean("merged issue page", &page);
    assert!(page.contains("Merged here"), "{page}");
    assert!(
        page.contains(&format!(
            "href=\"/organizations/default/issues/{other}/\">upstream timed out</a>"
        )),
        "{page}"
    );
    assert!(event_link(&page, timeout, " data-open").is_some(), "{page}");
    assert!(page.contains("3 events in the last 24h"), "{page}");

    let merged = h
        .page(&format!("/organizations/default/issues/{other}/"), &token)
        .await;
    assert!(
        merged.contains(&format!(
            "Merged into <a href=\"/organizations/default/issues/{shop}/\">issue {shop}</a>"
        )),
        "{merged}"
    );
    assert!(
        merged.contains("Merged into issue"),
        "activity names the merge: {merged}"
    );
    let reply = h
        .post_form(
            &format!("/organizations/default/issues/{other}/unmerge/"),
            Some(&token),
            "",
        )
        .await;
    assert_eq!(reply.status, StatusCode::SEE_OTHER, "{}", reply.body);
    assert_eq!(h.status_of(other).await, "unresolved");
    let page = h
        .page(&format!("/organizations/default/issues/{shop}/"), &token)
        .await;
    assert!(!page.contains("Merged here"), "{page}");
    assert!(event_link(&page, timeout, " data-open").is_none());
}

/// The issue chart marks where a release shows up among the issue's events after the start of
/// the period; the release seen first in the period gets no marker.
#[tokio::test]
async fn the_issue_chart_marks_releases_seen_later_in_the_period() {
    let h = harness().await;
    let token = h.full().await;
    let mut payload: Value = serde_json::from_str(SHOP_PAYLOAD).unwrap();
    let earlier = chrono::Utc::now() - chrono::Duration::hours(5);
    payload["timestamp"] = Value::from(earlier.timestamp() as f64);
    payload["release"] = Value::from("shop@0.9");
    h.ingest(
        1,
        SHOP_KEY,
        "44444444444444444444444444444444",
        &payload.to_string(),
    )
    .await;
    let shop = h.issue_of(SHOP_EVENT).await;
    let page = h
        .page(&format!("/organizations/default/issues/{shop}/"), &token)
        .await;
    assert_eq!(page.matches("<line class=\"marker\"").count(), 1, "{page}");
    assert!(
        page.contains("<title>Release shop@1.0 first seen "),
        "{page}"
    );
    assert!(!page.contains("Release shop@0.9 first seen"), "{page}");
}

// ---- alerts ----

#[tokio::test]
async fn the_alerts_page_acts_for_admins_and_owners_and_reads_for_members() {
    let h = harness().await;
    h.person(OWNER_EMAIL, crate::people::OrgRole::Owner).await;
    h.person("adam@example.com", crate::people::OrgRole::Admin)
        .await;
    h.person("mia@example.com", crate::people::OrgRole::Member)
        .await;
    let owner = h.login(OWNER_EMAIL, OWNER_PASSWORD, None).await;
    let admin = h.login("adam@example.com", OWNER_PASSWORD, None).await;
    let member = h.login("mia@example.com", OWNER_PASSWORD, None).await;
    let alerts = "/organizations/default/alerts/";
    let actions = [
        "action=\"/organizations/default/alerts/rules/\"",
        "action=\"/organizations/default/alerts/channels/\"",
    ];

    // an owner and an admin get the forms, a member reads only
    for cookie in [&owner, &admin] {
        let page = h.person_page(alerts, cookie).await;
        assert!(page.contains("No rules yet"), "{page}");
        for action in actions {
            assert!(page.contains(action), "{action}: {page}");
        }
        assert!(page.contains(">Alerts</a>") && page.contains("aria-current=\"page\">Alerts"));
    }
    let page = h.person_page(alerts, &member).await;
    assert!(page.contains("No channels yet"));
    for action in actions {
        assert!(!page.contains(action), "{action}: {page}");
    }
    let refused = h
        .with_cookie(
            Method::POST,
            &format!("{alerts}channels/"),
            &member,
            "name=m&kind=email&to=x%40example.com",
        )
        .await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN, "{}", refused.body);
    assert!(h.node.alerts.ruleset().channels.is_empty());

    // a channel to a private address is refused naming the field; the form keeps what was typed
    let private = h
        .with_cookie(
            Method::POST,
            &format!("{alerts}channels/"),
            &admin,
            "name=internal&kind=webhook&url=http%3A%2F%2F127.0.0.1%3A9%2Fhook",
        )
        .await;
    assert_eq!(private.status, StatusCode::BAD_REQUEST, "{}", private.body);
    assert!(
        private
            .body
            .contains("url: 127.0.0.1 resolves to 127.0.0.1, a loopback address"),
        "{}",
        private.body
    );
    assert!(private.body.contains("value=\"internal\""));
    assert_csp_clean("refused channel", &private.body);

    // an admin makes a channel and a rule through the forms
    let made = h
        .with_cookie(
            Method::POST,
            &format!("{alerts}channels/"),
            &admin,
            "editing=&name=ops-mail&kind=email&to=ops%40example.com&max_per_hour=5",
        )
        .await;
    assert_eq!(made.status, StatusCode::SEE_OTHER, "{}", made.body);
    assert_eq!(made.location(), format!("{alerts}?done=channel"));
    let rule = "editing=&name=prod-errors&projects=shop&new_issue=1&unmuted=1\
                &users_count=10&users_window=1h&levels=error%2C+fatal\
                &tags=browser%3DFirefox&min_events=&channel=ops-mail&interval=1h";
    let made = h
        .with_cookie(Method::POST, &format!("{alerts}rules/"), &admin, rule)
        .await;
    assert_eq!(made.status, StatusCode::SEE_OTHER, "{}", made.body);
    let stored = h.node.alerts.ruleset().rules[0].clone();
    assert_eq!(stored.levels, ["error", "fatal"]);
    assert_eq!(stored.tags, ["browser=Firefox"]);
    assert_eq!(stored.interval, std::time::Duration::from_secs(3600));
    let bad = h
        .with_cookie(
            Method::POST,
            &format!("{alerts}rules/"),
            &admin,
            "name=broken&new_issue=1&channel=ops-mail&tags=browser",
        )
        .await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST);
    assert!(
        bad.body
            .contains("tags: &#34;browser&#34; is not key=value"),
        "{}",
        bad.body
    );

    // a secret typed into the form is stored, used, and never shown again
    let made = h
        .with_cookie(
            Method::POST,
            &format!("{alerts}channels/"),
            &admin,
            "name=team-slack&kind=slack&url_secret=https%3A%2F%2F8.8.8.8%2Fservices%2FT0%2FB0%2Fs3cr3t",
        )
        .await;
    assert_eq!(made.status, StatusCode::SEE_OTHER, "{}", made.body);
    let page = h
        .person_page(&format!("{alerts}?edit_channel=team-slack"), &admin)
        .await;
    assert!(!page.contains("s3cr3t"), "{page}");
    assert!(
        page.contains("url stored by the server") && page.contains("stored, blank keeps it"),
        "{page}"
    );
    let gone = h
        .with_cookie(
            Method::POST,
            &format!("{alerts}channels/team-slack/delete/"),
            &admin,
            "",
        )
        .await;
    assert_eq!(gone.status, StatusCode::SEE_OTHER);

    // everyone who may read sees them, with the channel's state
    let page = h.person_page(alerts, &member).await;
    for expected in [
        "data-rule=\"prod-errors\"",
        "new issue; ignore ran out; more than 10 users in 1h",
        "level: error, fatal; tags: browser=Firefox",
        "data-channel=\"ops-mail\"",
        "to ops@example.com",
        "never sent",
    ] {
        assert!(page.contains(expected), "{expected}: {page}");
    }
    assert!(!page.contains("Send test notification"));

    // a test notification: without [smtp] it fails, and the channel shows its last error
    let tested = h
        .with_cookie(
            Method::POST,
            &format!("{alerts}channels/ops-mail/test/"),
            &owner,
            "",
        )
        .await;
    assert_eq!(tested.status, StatusCode::OK, "{}", tested.body);
    assert!(
        tested.body.contains(
            "Test notification to ops-mail: gave_up: email channels need the [smtp] section"
        ),
        "{}",
        tested.body
    );
    let page = h.person_page(alerts, &member).await;
    assert!(page.contains("gave_up"), "{page}");

    // recent deliveries: the rows of the projects the caller may read
    let attempt = crate::alerts::outbox::Attempt {
        delivery_id: "d".repeat(32),
        attempt: 1,
        at: chrono::Utc::now(),
        status: crate::alerts::outbox::Status::Failed,
        response_code: Some(503),
        error: Some("the receiver answered 503: busy".into()),
        next_attempt: None,
        org: DEFAULT_ORG.into(),
        project_id: 1,
        project: "shop".into(),
        rule: "prod-errors".into(),
        channel: "ops-mail".into(),
        kind: "email".into(),
        issue_id: 4242,
        trigger: "new_issue".into(),
    };
    h.node
        .store
        .create_durable(
            &crate::alerts::outbox::attempt_path(1, &attempt.delivery_id, 1),
            serde_json::to_vec(&attempt).unwrap().into(),
        )
        .await
        .unwrap();
    let page = h.person_page(alerts, &owner).await;
    assert!(
        page.contains("/organizations/default/issues/4242/")
            && page.contains("the receiver answered 503: busy"),
        "{page}"
    );
    // a member of no team reads no project, and so no delivery of one
    let page = h.person_page(alerts, &member).await;
    assert!(!page.contains("4242") && page.contains("Nothing was sent yet"));
    let billing_only = h
        .token(&[Scope::EventRead, Scope::AlertsRead], Some(vec![2]))
        .await;
    let page = h.page(alerts, &billing_only).await;
    assert!(!page.contains("4242") && page.contains("Nothing was sent yet"));

    // edit prefills the form; a channel in use cannot go; the rule, then the channel can
    let page = h
        .person_page(&format!("{alerts}?edit_rule=prod-errors"), &admin)
        .await;
    assert!(page.contains("Edit rule prod-errors") && page.contains("value=\"error, fatal\""));
    let in_use = h
        .with_cookie(
            Method::POST,
            &format!("{alerts}channels/ops-mail/delete/"),
            &admin,
            "",
        )
        .await;
    assert_eq!(in_use.status, StatusCode::CONFLICT);
    assert!(in_use.body.contains("used by rule &#34;prod-errors&#34;"));
    for (path, done) in [
        ("rules/prod-errors/delete/", "rule-deleted"),
        ("channels/ops-mail/delete/", "channel-deleted"),
    ] {
        let gone = h
            .with_cookie(Method::POST, &format!("{alerts}{path}"), &admin, "")
            .await;
        assert_eq!(gone.location(), format!("{alerts}?done={done}"));
    }
    assert!(h.node.alerts.ruleset().rules.is_empty());
    // every change is in the audit log
    let audited = h
        .one(
            "SELECT string_agg(event, ' ' ORDER BY ts) AS events FROM audit_log \
             WHERE event LIKE 'alert_%'",
        )
        .await;
    assert_eq!(
        audited["events"],
        "alert_channel.create alert_rule.create alert_channel.create alert_channel.delete \
         alert_channel.test alert_rule.delete alert_channel.delete",
        "{audited}"
    );
}

/// An issue page runs two of its reads at a time: two tabs of one token opening issue pages at
/// once both get their page within the token's concurrent query limit (4 by default).
#[tokio::test]
async fn two_issue_pages_of_one_token_at_once_both_render() {
    let h = harness().await;
    let token = h.full().await;
    let shop = h.issue_of(SHOP_EVENT).await;
    let uri = format!("/organizations/default/issues/{shop}/");
    let event = format!("/organizations/default/issues/{shop}/events/{SHOP_EVENT}/");
    let (a, b) = futures::join!(h.page(&uri, &token), h.page(&event, &token));
    assert!(a.contains("Why grouped") && b.contains("Why grouped"));
}

#[tokio::test]
async fn an_issue_is_deleted_from_its_page_after_confirming() {
    let h = harness().await;
    let token = h
        .token(
            &[Scope::EventRead, Scope::EventWrite, Scope::EventAdmin],
            None,
        )
        .await;
    let writer = h.full().await;
    let shop = h.issue_of(SHOP_EVENT).await;
    let page = format!("/organizations/default/issues/{shop}/");
    let html = h.page(&page, &token).await;
    assert!(html.contains("Delete issue") && html.contains("name=\"confirm\""));
    assert!(
        !h.page(&page, &writer).await.contains("Delete issue"),
        "deleting needs event:admin"
    );
    let action = format!("/organizations/default/issues/{shop}/delete/");
    let refused = h.post_form(&action, Some(&writer), "confirm=yes").await;
    assert_eq!(refused.status, StatusCode::FORBIDDEN);
    let unconfirmed = h.post_form(&action, Some(&token), "").await;
    assert_eq!(unconfirmed.status, StatusCode::BAD_REQUEST);
    assert!(
        unconfirmed.body.contains("Erase its events"),
        "{}",
        unconfirmed.body
    );
    assert!(h.page(&page, &token).await.contains("ValueError"));

    let reply = h.post_form(&action, Some(&token), "confirm=yes").await;
    assert_eq!(reply.status, StatusCode::SEE_OTHER, "{}", reply.body);
    assert_eq!(reply.location(), "/organizations/default/issues/");
    let stream = h
        .page("/organizations/default/issues/?query=", &token)
        .await;
    assert!(!stream.contains("ValueError"), "gone from every list");
    assert_eq!(
        h.get(&page, Some(&token)).await.status,
        StatusCode::NOT_FOUND
    );
}

#[tokio::test]
async fn the_issue_page_resolves_frames_whose_source_map_came_after_the_event() {
    use crate::sourcemaps::bundles;
    let h = harness().await;
    let token = h.full().await;
    let debug_id = "c0ffee00-0000-4000-8000-0000000000aa";
    let (minified, map, column) = crate::sourcemaps::tests::build("", "a");
    let url = "http://localhost:8080/assets/app.min.js";
    let event = serde_json::json!({
        "platform": "javascript",
        "exception": {"values": [{"type": "Error", "value": "empty cart",
            "stacktrace": {"frames": [{"abs_path": url, "function": "a", "lineno": 1,
                "colno": column, "in_app": true}]}}]},
        "debug_meta": {"images": [{"type": "sourcemap", "code_file": url, "debug_id": debug_id}]},
    });
    let id = "5f0c0ffee0000000000000000000aaaa";
    h.ingest(1, SHOP_KEY, id, &event.to_string()).await;
    let issue = h.issue_of(id).await;
    let page_uri = format!("/organizations/default/issues/{issue}/");
    let before = h.page(&page_uri, &token).await;
    assert!(!before.contains("checkoutTotal"), "no map yet");

    let data = crate::sourcemaps::tests::bundle(debug_id, &minified, &map);
    let chunk = bundles::sha1_hex(&data);
    bundles::put_chunk(&h.node.store, "default", &chunk, bytes::Bytes::from(data))
        .await
        .unwrap();
    let assembled = bundles::assemble(
        &h.node.store,
        "default",
        bundles::AssembleRequest {
            checksum: chunk.clone(),
            chunks: vec![chunk],
            projects: vec!["shop".to_owned()],
            release: None,
            dist: None,
        },
        1 << 30,
    )
    .await
    .unwrap();
    assert_eq!(assembled.state, "ok");
    h.node.sourcemaps.uploaded();
    let after = h.page(&page_uri, &token).await;
    assert!(after.contains("checkoutTotal"), "resolved for display");
    assert!(after.contains("src/cart.js"));
    // the stored event is left as it was grouped
    let stored = h
        .one(&format!("SELECT event FROM events WHERE event_id = '{id}'"))
        .await;
    assert!(!stored["event"].as_str().unwrap().contains("checkoutTotal"));
}
