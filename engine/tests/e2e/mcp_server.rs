//! The real Sentry MCP server (npm `@sentry/mcp-server`, stdio transport) against faultline on
//! loopback, with a person's API token, driven by `tests/node/mcp_client.js` as a coding
//! assistant drives it: organizations, projects, who am I, an issue search (Sentry syntax, no
//! language model configured), an issue's details with its latest event, its tag values, a
//! search of its events (Discover), and resolving it.

use anyhow::{Context, Result};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::harness::{Setup, node_client, run_node};
use crate::people::Browser;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_sentry_mcp_server_reads_and_resolves_issues() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let setup = Setup::new(tmp.path(), "data", "");
    let dsn = setup.create_project("shop")?;
    let server = setup.start()?;
    let sent = run_node(&dsn, &["exception"])?;
    let event_id = sent["exception"].id.replace('-', "");

    // the first owner sets a password through the first-start link and makes a personal token
    let log = server.log_text();
    let link = log
        .split_whitespace()
        .find(|w| w.starts_with("http://") && w.contains("/setup/"))
        .with_context(|| format!("no setup link in the log:\n{log}"))?
        .trim_matches(|c: char| c == '"' || c == ',')
        .to_owned();
    let setup_token = link.rsplit('/').next().context("setup token")?;
    let mut owner = Browser::new(&setup.base_url());
    let (status, body) = owner
        .send(
            reqwest::Method::POST,
            "/auth/setup",
            Some(
                json!({"token": setup_token, "email": "ada@example.com", "name": "Ada",
                        "password": "correct horse battery"}),
            ),
        )
        .await?;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = owner
        .send(
            reqwest::Method::POST,
            "/api/0/api-tokens/",
            Some(
                json!({"name": "mcp", "scopes": ["org:read", "project:read", "team:read",
                                                  "event:read", "event:write"]}),
            ),
        )
        .await?;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let token = body["token"].as_str().context("token")?.to_owned();

    let rows = setup.query(&format!(
        "SELECT issue_id FROM events WHERE event_id = '{event_id}'"
    ))?;
    let issue_id = rows
        .first()
        .and_then(|r| r["issue_id"].as_i64())
        .context("the event's issue")?;
    let issue: Value = reqwest::Client::new()
        .get(format!(
            "{}/api/0/organizations/default/issues/{issue_id}/",
            setup.base_url()
        ))
        .bearer_auth(&token)
        .send()
        .await?
        .error_for_status()?
        .json()
        .await?;
    let short_id = issue["shortId"].as_str().context("shortId")?.to_owned();

    let host = setup.base_url().trim_start_matches("http://").to_owned();
    let calls = json!([
        {"name": "find_organizations", "arguments": {}},
        {"name": "find_projects", "arguments": {"organizationSlug": "default"}},
        {"name": "execute_sentry_tool", "arguments": {"name": "whoami", "arguments": {}}},
        {"name": "execute_sentry_tool", "arguments": {"name": "get_issue_details",
            "arguments": {"organizationSlug": "default", "issueId": short_id}}},
        {"name": "execute_sentry_tool", "arguments": {"name": "get_issue_tag_values",
            "arguments": {"organizationSlug": "default", "issueId": short_id,
                          "tagKey": "environment"}}},
        {"name": "execute_sentry_tool", "arguments": {"name": "search_issue_events",
            "arguments": {"organizationSlug": "default", "issueId": short_id,
                          "query": "environment:production"}}},
        {"name": "search_issues", "arguments": {"organizationSlug": "default",
            "naturalLanguageQuery": "is:unresolved"}},
        {"name": "update_issue", "arguments": {"organizationSlug": "default",
            "issueId": short_id, "status": "resolved"}},
    ]);
    let out = node_client("mcp_client.js", &[&host, &token, &dsn, &calls.to_string()])
        .with_context(|| format!("server log:\n{}", server.log_text()))?;
    let out: Value = serde_json::from_str(out.trim()).context("mcp_client.js output")?;
    let results = out["results"].as_array().context("results")?;
    let text = |i: usize| -> &str {
        let r = &results[i];
        assert_eq!(r["isError"], false, "{}: {}", r["name"], r["text"]);
        r["text"].as_str().unwrap_or_default()
    };
    assert!(text(0).contains("default"), "{}", text(0));
    assert!(text(1).contains("shop"), "{}", text(1));
    assert!(text(2).contains("ada@example.com"), "{}", text(2));
    let details = text(3);
    assert!(details.contains(&short_id), "{details}");
    assert!(details.contains(&event_id), "{details}");
    assert!(
        details.contains("formatAddress"),
        "the frame is shown: {details}"
    );
    assert!(text(4).contains("\"production\""), "{}", text(4));
    let events = text(5);
    assert!(events.contains("Found 1 error"), "{events}");
    assert!(events.contains(&event_id), "{events}");
    let issues = text(6);
    assert!(issues.contains(&short_id), "{issues}");
    assert!(text(7).contains("**Status**: resolved"), "{}", text(7));

    // the MCP server's change is faultline's: the issue is resolved
    let rows = setup.query(&format!(
        "SELECT status FROM issues WHERE issue_id = {issue_id}"
    ))?;
    assert_eq!(rows[0]["status"], "resolved", "{rows:?}");
    Ok(())
}
