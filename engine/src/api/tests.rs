//! The HTTP contract of the ingest and query endpoints, exercised in-process on the real router
//! (axum's `oneshot`), against a real node on a temporary directory. The official SDKs are
//! exercised end to end in `engine/tests/e2e`.

use std::io::Write;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::connect_info::MockConnectInfo;
use axum::http::{Method, Request, StatusCode};
use faultline_config::{Config, ProjectConfig, RateLimit};
use http_body_util::BodyExt;
use serde_json::Value;
use tower::ServiceExt;

use crate::node::Node;
use crate::tenancy::{DEFAULT_ORG, NewToken, Scope};

mod attachments;
mod grouping;
mod hardening;
mod issues;
mod items;
mod keys;
mod limits;
mod lost_replies;
mod metrics;
mod people;
mod privacy;
mod projects;
mod quotas;
mod release_health;
mod sentry_clients;
mod sql;
mod status;
mod tenancy;

const KEY: &str = "0123456789abcdef0123456789abcdef";

struct Harness {
    _dir: tempfile::TempDir,
    node: Arc<Node>,
    router: Router,
}

/// The config file's project of the harness: `shop`, id 1, with [`KEY`].
fn shop() -> ProjectConfig {
    ProjectConfig {
        id: 1,
        name: "shop".into(),
        keys: vec![KEY.into()],
        quotas: Vec::new(),
        rate_limit: None,
        retention_days: None,
        grouping_enhancements: None,
        fingerprinting_rules: None,
        privacy: None,
    }
}

async fn harness_with(edit: impl FnOnce(&mut Config)) -> Harness {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::default();
    config.storage.data_dir = dir.path().to_owned();
    config.projects.push(shop());
    edit(&mut config);
    Harness::of(dir, Arc::new(Node::open(config).await.unwrap()))
}

async fn harness() -> Harness {
    harness_with(|_| {}).await
}

impl Harness {
    /// The node as after a crash: gone without a flush, then opened again on the same data
    /// directory (its WAL is all there is of what was not flushed).
    async fn reopened(self) -> Harness {
        let config = self.node.config.clone();
        let Harness {
            _dir: dir,
            node,
            router,
        } = self;
        drop(router);
        drop(node);
        Harness::of(dir, Arc::new(Node::open(config).await.unwrap()))
    }

    /// A request with a bearer token and an optional JSON body.
    async fn call_as(&self, method: Method, uri: &str, token: &str, body: Option<Value>) -> Reply {
        let request = Request::builder()
            .method(method)
            .uri(uri)
            .header("authorization", format!("Bearer {token}"))
            .header("content-type", "application/json");
        let body = body.map_or_else(Body::empty, |b| Body::from(b.to_string()));
        self.send(request.body(body).unwrap()).await
    }

    /// The router of `node`, as reached from 10.1.2.3, with the data directory it lives in.
    fn of(dir: tempfile::TempDir, node: Arc<Node>) -> Harness {
        let router =
            super::router(&node).layer(MockConnectInfo(SocketAddr::from(([10, 1, 2, 3], 5000))));
        Harness {
            _dir: dir,
            node,
            router,
        }
    }
}

struct Reply {
    status: StatusCode,
    headers: axum::http::HeaderMap,
    body: Value,
}

impl Harness {
    async fn send(&self, request: Request<Body>) -> Reply {
        let response = self.router.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        let body = serde_json::from_slice(&bytes)
            .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
        Reply {
            status,
            headers,
            body,
        }
    }

    /// Posts a store body with the project's key.
    async fn store(&self, body: impl Into<Body>) -> Reply {
        self.send(
            post("/api/1/store/")
                .header("x-sentry-auth", auth())
                .body(body.into())
                .unwrap(),
        )
        .await
    }

    /// Posts an envelope with the project's key.
    async fn envelope(&self, body: impl Into<Body>) -> Reply {
        self.send(
            post("/api/1/envelope/")
                .header("x-sentry-auth", auth())
                .body(body.into())
                .unwrap(),
        )
        .await
    }

    async fn sql(&self, sql: &str) -> Value {
        let output = self
            .node
            .query
            .run(&crate::query::ProjectFilter::All, sql)
            .await
            .unwrap();
        let bytes =
            crate::query::format::encode(&output, crate::query::format::Format::Json).unwrap();
        serde_json::from_slice(&bytes).unwrap()
    }

    /// Flushes faultline's own outcome counts, then "where did my items go": the `outcomes`
    /// table summed per category, outcome and reason, in that order.
    async fn where_items_went(&self) -> Value {
        self.node.flush_with_outcomes().await.unwrap();
        self.sql(
            "SELECT category, outcome, reason, sum(quantity) AS n FROM outcomes \
             GROUP BY category, outcome, reason ORDER BY category, outcome, reason",
        )
        .await
    }
}

impl Harness {
    /// A token of the default organization with these scopes, limited to `projects` if given.
    /// A token with these scope names (earlier names expanded as stored tokens are).
    async fn token(&self, scopes: &[&str], projects: Option<Vec<u64>>) -> String {
        let new = NewToken {
            name: "test".into(),
            org: DEFAULT_ORG.into(),
            scopes: Scope::expand_all(scopes).unwrap(),
            projects,
            owner: None,
        };
        self.node.tokens.create(new).await.unwrap().0
    }

    /// `POST /api/sql` with a token.
    async fn sql_as(&self, token: &str, sql: &str) -> Reply {
        self.send(
            post("/api/sql")
                .header("authorization", format!("Bearer {token}"))
                .body(Body::from(sql.to_owned()))
                .unwrap(),
        )
        .await
    }
}

fn envelope(event_id: &str, event: &str) -> Vec<u8> {
    format!("{{\"event_id\":\"{event_id}\"}}\n{{\"type\":\"event\"}}\n{event}\n").into_bytes()
}

fn post(uri: &str) -> axum::http::request::Builder {
    Request::builder().method(Method::POST).uri(uri)
}

fn auth() -> String {
    format!("Sentry sentry_key={KEY}, sentry_version=7, sentry_client=test/1.0")
}

const ID: &str = "9ec79c33ec9942ab8353589fcb2e04dc";

#[tokio::test]
async fn envelope_is_stored_and_queryable_at_once() {
    let h = harness().await;
    let body = envelope(
        ID,
        r#"{"message":"disk full on /dev/sda1","level":"warning","tags":{"host":"db-1"}}"#,
    );
    let reply = h.envelope(body).await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    assert_eq!(reply.body["id"], ID);
    let rows = h
        .sql("SELECT event_id, project, level, title, tags['host'] AS host, user_ip FROM events")
        .await;
    assert_eq!(rows[0]["event_id"], ID);
    assert_eq!(rows[0]["project"], "shop");
    assert_eq!(rows[0]["level"], "warning");
    assert_eq!(rows[0]["title"], "disk full on /dev/sda1");
    assert_eq!(rows[0]["host"], "db-1");
}

#[tokio::test]
async fn every_auth_form_relay_accepts_works() {
    let h = harness().await;
    let ids = [
        "00000000000000000000000000000001",
        "00000000000000000000000000000002",
        "00000000000000000000000000000003",
        "00000000000000000000000000000004",
    ];
    let event = r#"{"message":"hi"}"#;
    let requests = [
        post("/api/1/envelope/")
            .header("x-sentry-auth", auth())
            .body(Body::from(envelope(ids[0], event)))
            .unwrap(),
        post("/api/1/envelope/")
            .header("authorization", auth())
            .body(Body::from(envelope(ids[1], event)))
            .unwrap(),
        post(&format!("/api/1/envelope/?sentry_key={KEY}&sentry_version=7"))
            .body(Body::from(envelope(ids[2], event)))
            .unwrap(),
        post("/api/1/envelope/")
            .body(Body::from(format!(
                "{{\"event_id\":\"{}\",\"dsn\":\"http://{KEY}@localhost:8000/1\"}}\n{{\"type\":\"event\"}}\n{event}\n",
                ids[3]
            )))
            .unwrap(),
    ];
    for request in requests {
        let reply = h.send(request).await;
        assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    }
    let rows = h.sql("SELECT count(*) AS n FROM events").await;
    assert_eq!(rows[0]["n"], 4);
}

#[tokio::test]
async fn bad_requests_get_the_right_status_and_a_message_naming_the_problem() {
    let h = harness_with(|c| c.limits.max_event_size = faultline_config::ByteSize::kib(2)).await;
    let ok = envelope(ID, r#"{"message":"fine"}"#);
    let big_event = format!(r#"{{"message":"{}"}}"#, "x".repeat(4096));
    let cases: Vec<(Request<Body>, StatusCode, &str)> = vec![
        (
            post("/api/1/envelope/")
                .body(Body::from(ok.clone()))
                .unwrap(),
            StatusCode::UNAUTHORIZED,
            "missing authorization",
        ),
        (
            post("/api/1/envelope/")
                .header(
                    "x-sentry-auth",
                    "Sentry sentry_key=ffffffffffffffffffffffffffffffff",
                )
                .body(Body::from(ok.clone()))
                .unwrap(),
            StatusCode::UNAUTHORIZED,
            "not valid for project 1",
        ),
        (
            post("/api/77/envelope/")
                .header("x-sentry-auth", auth())
                .body(Body::from(ok.clone()))
                .unwrap(),
            StatusCode::FORBIDDEN,
            "project 77 does not exist",
        ),
        (
            post("/api/shop/envelope/")
                .header("x-sentry-auth", auth())
                .body(Body::from(ok.clone()))
                .unwrap(),
            StatusCode::BAD_REQUEST,
            "invalid project id",
        ),
        (
            post("/api/1/envelope/")
                .header("x-sentry-auth", auth())
                .body(Body::from("{not json\n{\"type\":\"event\"}\n{}\n"))
                .unwrap(),
            StatusCode::BAD_REQUEST,
            "envelope header",
        ),
        (
            post("/api/1/store/")
                .header("x-sentry-auth", auth())
                .body(Body::from("{\"message\": "))
                .unwrap(),
            StatusCode::BAD_REQUEST,
            "JSON",
        ),
        (
            post("/api/1/envelope/")
                .header("x-sentry-auth", auth())
                .body(Body::from(envelope(ID, &big_event)))
                .unwrap(),
            StatusCode::PAYLOAD_TOO_LARGE,
            "max_event_size",
        ),
        (
            post("/api/1/envelope/")
                .header("x-sentry-auth", auth())
                .header("content-encoding", "lzma")
                .body(Body::from(ok.clone()))
                .unwrap(),
            StatusCode::BAD_REQUEST,
            "lzma",
        ),
    ];
    for (request, status, needle) in cases {
        let uri = request.uri().to_string();
        let reply = h.send(request).await;
        assert_eq!(reply.status, status, "{uri}: {:?}", reply.body);
        let detail = reply.body["detail"].as_str().unwrap_or_default();
        assert!(
            detail.to_lowercase().contains(&needle.to_lowercase()),
            "{uri}: {detail:?} should mention {needle:?}"
        );
        assert_eq!(
            reply.headers["x-sentry-error"].to_str().unwrap(),
            detail,
            "{uri}"
        );
    }
    // None of those left anything behind; a good request still works.
    assert_eq!(h.sql("SELECT count(*) AS n FROM events").await[0]["n"], 0);
    let reply = h.envelope(ok).await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(h.sql("SELECT count(*) AS n FROM events").await[0]["n"], 1);
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(data).unwrap();
    enc.finish().unwrap()
}

fn deflate(data: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(data).unwrap();
    enc.finish().unwrap()
}

fn brotli(data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    {
        let mut enc = brotli::CompressorWriter::new(&mut out, 4096, 5, 22);
        enc.write_all(data).unwrap();
    }
    out
}

#[tokio::test]
async fn every_content_encoding_is_decoded() {
    let h = harness().await;
    type Encoder = fn(&[u8]) -> Vec<u8>;
    let encoders: [(&str, Encoder); 5] = [
        ("identity", |d| d.to_vec()),
        ("gzip", gzip),
        ("deflate", deflate),
        ("br", brotli),
        ("zstd", |d| zstd::encode_all(d, 3).unwrap()),
    ];
    for (i, (name, encode)) in encoders.iter().enumerate() {
        let id = format!("{:032x}", i + 1);
        let body = envelope(&id, &format!(r#"{{"message":"sent with {name}"}}"#));
        let reply = h
            .send(
                post("/api/1/envelope/")
                    .header("x-sentry-auth", auth())
                    .header("content-encoding", *name)
                    .body(Body::from(encode(&body)))
                    .unwrap(),
            )
            .await;
        assert_eq!(reply.status, StatusCode::OK, "{name}: {:?}", reply.body);
        assert_eq!(reply.body["id"], id.as_str(), "{name}");
    }
    let rows = h.sql("SELECT message FROM events ORDER BY message").await;
    let messages: Vec<&str> = rows
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["message"].as_str().unwrap())
        .collect();
    assert_eq!(
        messages,
        [
            "sent with br",
            "sent with deflate",
            "sent with gzip",
            "sent with identity",
            "sent with zstd"
        ]
    );
}

#[tokio::test]
async fn a_compression_bomb_is_refused_with_413() {
    let h = harness_with(|c| c.limits.max_envelope_size = faultline_config::ByteSize::mib(1)).await;
    // 64 MiB of zeros gzip to about 64 KiB.
    let bomb = gzip(&vec![0u8; 64 * 1024 * 1024]);
    assert!(bomb.len() < 100 * 1024);
    let reply = h
        .send(
            post("/api/1/envelope/")
                .header("x-sentry-auth", auth())
                .header("content-encoding", "gzip")
                .body(Body::from(bomb))
                .unwrap(),
        )
        .await;
    assert_eq!(reply.status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(
        reply.body["detail"].as_str().unwrap().contains("1048576"),
        "{:?}",
        reply.body
    );
}

#[tokio::test]
async fn a_retried_event_is_stored_once() {
    let h = harness().await;
    for _ in 0..3 {
        let reply = h
            .store(format!(r#"{{"event_id":"{ID}","message":"retry me"}}"#))
            .await;
        assert_eq!(reply.status, StatusCode::OK);
        assert_eq!(reply.body["id"], ID);
    }
    assert_eq!(h.sql("SELECT count(*) AS n FROM events").await[0]["n"], 1);
}

#[tokio::test]
async fn other_item_types_are_accepted_and_skipped() {
    let h = harness().await;
    let body = format!(
        "{{\"event_id\":\"{ID}\",\"sent_at\":\"2026-11-24T10:00:00Z\"}}\n\
         {{\"type\":\"session\"}}\n{{\"sid\":\"x\",\"status\":\"ok\"}}\n\
         {{\"type\":\"attachment\",\"length\":5,\"filename\":\"a.txt\"}}\nhello\n\
         {{\"type\":\"client_report\"}}\n{{\"discarded_events\":[]}}\n\
         {{\"type\":\"event\"}}\n{{\"message\":\"with friends\"}}\n"
    );
    let reply = h.envelope(body).await;
    assert_eq!(reply.status, StatusCode::OK, "{:?}", reply.body);
    assert_eq!(reply.body["id"], ID);
    let rows = h.sql("SELECT title FROM events").await;
    assert_eq!(rows.as_array().unwrap().len(), 1);
    assert_eq!(rows[0]["title"], "with friends");
}

#[tokio::test]
async fn rate_limited_project_gets_429_with_sentry_headers() {
    let h = harness_with(|c| {
        c.projects[0].rate_limit = Some(RateLimit {
            events: 2,
            window: std::time::Duration::from_secs(60),
        })
    })
    .await;
    let mut statuses = Vec::new();
    let mut last = None;
    for i in 0..3 {
        let reply = h.store(format!(r#"{{"message":"n{i}"}}"#)).await;
        statuses.push(reply.status);
        last = Some(reply);
    }
    assert_eq!(
        statuses,
        [
            StatusCode::OK,
            StatusCode::OK,
            StatusCode::TOO_MANY_REQUESTS
        ]
    );
    let last = last.unwrap();
    let limits = last.headers["x-sentry-rate-limits"].to_str().unwrap();
    assert!(limits.ends_with(":error:project"), "{limits}");
    let retry: u64 = last.headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    assert_eq!(h.sql("SELECT count(*) AS n FROM events").await[0]["n"], 2);
}

#[tokio::test]
async fn browser_preflight_is_allowed() {
    let h = harness().await;
    let reply = h
        .send(
            Request::builder()
                .method(Method::OPTIONS)
                .uri("/api/1/envelope/")
                .header("origin", "https://shop.example.com")
                .header("access-control-request-method", "POST")
                .header(
                    "access-control-request-headers",
                    "content-type,x-sentry-auth",
                )
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(reply.status, StatusCode::OK);
    assert_eq!(
        reply.headers["access-control-allow-origin"],
        "https://shop.example.com"
    );
    let allowed = reply.headers["access-control-allow-headers"]
        .to_str()
        .unwrap();
    assert!(allowed.contains("x-sentry-auth"), "{allowed}");
}

#[tokio::test]
async fn sql_endpoint_needs_a_token_and_speaks_json_and_csv() {
    let h = harness().await;
    let token = h.token(&["events:read"], None).await;
    h.store(r#"{"message":"one"}"#).await;
    let sql = r#"{"sql":"SELECT title, level FROM events"}"#;
    let unauthorized = h
        .send(post("/api/sql").body(Body::from(sql)).unwrap())
        .await;
    assert_eq!(unauthorized.status, StatusCode::UNAUTHORIZED);
    let wrong = h
        .send(
            post("/api/sql")
                .header("authorization", "Bearer flt_wrong")
                .body(Body::from(sql))
                .unwrap(),
        )
        .await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    let json = h
        .send(
            post("/api/sql")
                .header("authorization", format!("Bearer {token}"))
                .body(Body::from(sql))
                .unwrap(),
        )
        .await;
    assert_eq!(json.status, StatusCode::OK);
    assert_eq!(
        json.body,
        serde_json::json!([{"title": "one", "level": "error"}])
    );
    let csv = h
        .send(
            post("/api/sql?format=csv")
                .header("authorization", format!("Bearer {token}"))
                .body(Body::from(sql))
                .unwrap(),
        )
        .await;
    assert_eq!(csv.body, Value::String("title,level\none,error\n".into()));
    let ddl = h
        .send(
            post("/api/sql")
                .header("authorization", format!("Bearer {token}"))
                .body(Body::from("CREATE TABLE t AS SELECT 1"))
                .unwrap(),
        )
        .await;
    assert_eq!(ddl.status, StatusCode::BAD_REQUEST);
    assert!(
        ddl.body["detail"]
            .as_str()
            .unwrap()
            .contains("DDL not supported"),
        "{:?}",
        ddl.body
    );
}

#[tokio::test]
async fn flushed_events_are_read_from_parquet_exactly_once() {
    let h = harness().await;
    for i in 0..5 {
        h.store(format!(r#"{{"message":"event {i}"}}"#)).await;
    }
    assert_eq!(h.node.flush().await.unwrap(), 5);
    h.store(r#"{"message":"after the flush"}"#).await;
    assert_eq!(h.sql("SELECT count(*) AS n FROM events").await[0]["n"], 6);
    let files = &h.node.buffer.manifest().files;
    assert_eq!(files.len(), 1);
    assert!(
        files[0].path.starts_with("events/proj=1/date="),
        "{}",
        files[0].path
    );
    assert_eq!(files[0].rows, 5);
    let issues = h
        .sql("SELECT count(*) AS n, sum(event_count) AS events FROM issues")
        .await;
    assert_eq!(issues[0]["events"], 6);
}

#[tokio::test]
async fn a_bad_key_is_refused_before_the_body_is_read() {
    let h = harness().await;
    let reply = h
        .send(
            post("/api/1/envelope/")
                .header(
                    "x-sentry-auth",
                    "Sentry sentry_key=ffffffffffffffffffffffffffffffff",
                )
                .header("content-encoding", "gzip")
                .body(Body::from("this is not gzip"))
                .unwrap(),
        )
        .await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{:?}", reply.body);
    let reply = h
        .send(
            post("/api/1/store/")
                .header("content-encoding", "gzip")
                .body(Body::from("this is not gzip"))
                .unwrap(),
        )
        .await;
    assert_eq!(reply.status, StatusCode::UNAUTHORIZED, "{:?}", reply.body);
    assert!(
        reply.body["detail"]
            .as_str()
            .unwrap()
            .contains("missing authorization")
    );
}
