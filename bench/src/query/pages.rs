//! Server time of the web UI's pages over the same data set: a node opened on the data
//! directory, its router called in-process (no network), the time from the request to the last
//! byte of the rendered body. Each page is requested once untimed first, as a browser's first
//! visit warms the same caches the queries above do.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use axum::Router;
use axum::body::Body;
use axum::extract::connect_info::MockConnectInfo;
use axum::http::{Request, StatusCode, header};
use faultline_config::{Config, ProjectConfig};
use faultline_engine::node::Node;
use faultline_engine::tenancy::{DEFAULT_ORG, NewToken, Scope};
use http_body_util::BodyExt;
use tower::ServiceExt;

/// A page's median server time.
pub(crate) struct PageTiming {
    pub(crate) name: String,
    pub(crate) ms: f64,
    pub(crate) bytes: usize,
}

async fn get(router: &Router, uri: &str, token: &str) -> Result<(Duration, usize)> {
    let request = Request::builder()
        .uri(uri)
        .header(header::AUTHORIZATION, format!("Bearer {token}"))
        .body(Body::empty())?;
    let started = Instant::now();
    let response = router.clone().oneshot(request).await?;
    let status = response.status();
    let body = response.into_body().collect().await?.to_bytes();
    let took = started.elapsed();
    ensure!(
        status == StatusCode::OK,
        "{uri}: {status}: {}",
        String::from_utf8_lossy(&body)
    );
    Ok((took, body.len()))
}

/// Times each page of the UI over the data set in `dir` (project 1, as `generate` writes it).
pub(crate) async fn time_pages(
    dir: &Path,
    issue_id: i64,
    event_id: &str,
    event_ms: i64,
    reps: usize,
) -> Result<Vec<PageTiming>> {
    let mut config = Config::default();
    config.storage.data_dir = dir.to_owned();
    config.storage.node_id = "query-bench-pages".into();
    config.query.timeout = Duration::from_secs(600);
    config.projects.push(ProjectConfig {
        id: 1,
        name: "shop".into(),
        keys: vec![faultline_config::KeyConfig::new("0".repeat(32))],
        quotas: Vec::new(),
        rate_limit: None,
        retention_days: None,
        grouping_enhancements: None,
        fingerprinting_rules: None,
        privacy: None,
    });
    let node = Arc::new(
        Node::open(config)
            .await
            .context("open a node on the data set")?,
    );
    let (token, _) = node
        .tokens
        .create(NewToken {
            name: "query-bench pages".into(),
            org: DEFAULT_ORG.into(),
            scopes: vec![Scope::EventRead],
            projects: None,
            owner: None,
        })
        .await?;
    let router = faultline_engine::api::router(&node)
        .layer(MockConnectInfo(SocketAddr::from(([127, 0, 0, 1], 1))));
    let org = format!("/organizations/{DEFAULT_ORG}");
    let issue = format!("{org}/issues/{issue_id}/");
    let pages = [
        ("issue stream", format!("{org}/issues/")),
        (
            "stream, 24h by events",
            format!("{org}/issues/?period=24h&sort=freq"),
        ),
        (
            "stream, search",
            format!("{org}/issues/?query=is%3Aunresolved+level%3Aerror+browser%3AFirefox"),
        ),
        ("issue page", issue.clone()),
        ("issue page, 30d", format!("{issue}?period=30d")),
        (
            "event page",
            format!("{issue}events/{event_id}/?at={event_ms}"),
        ),
        ("SQL console", format!("{org}/sql/")),
    ];
    let mut out = Vec::new();
    for (name, uri) in pages {
        let mut times = Vec::new();
        let mut bytes = 0;
        for i in 0..=reps {
            let (took, len) = get(&router, &uri, &token).await?;
            bytes = len;
            if i > 0 {
                times.push(took.as_secs_f64() * 1000.0);
            }
        }
        out.push(PageTiming {
            name: name.to_owned(),
            ms: super::median(times),
            bytes,
        });
    }
    Ok(out)
}
