//! Attachments and client reports from the official Python SDK, as a user finds them: rows in
//! `attachments`, the bytes downloaded through the API equal to what was sent, an attachment
//! over the limit refused alone (its event kept), and `outcomes` saying where events went.

use anyhow::Context;
use serde_json::Value;

use crate::harness::{RowExt, Rows, Setup, python_client};

/// The rows of `sql` once there are at least `min` (an SDK may deliver after its flush, and
/// outcomes reach SQL at the server's next flush).
async fn rows_at_least(
    server: &crate::harness::Server,
    token: &str,
    sql: &str,
    min: usize,
) -> anyhow::Result<Vec<Rows>> {
    for _ in 0..100 {
        let rows = server.sql(token, sql).await?;
        if rows.len() >= min {
            return Ok(rows);
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    server.sql(token, sql).await
}

const BIG: usize = 2048;

/// Four columns of a row, as a test compares them.
type Four<'a> = (
    Option<&'a str>,
    Option<&'a str>,
    Option<&'a str>,
    Option<i64>,
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_sdk_attachments_are_downloaded_as_sent_and_outcomes_say_where_events_went()
-> anyhow::Result<()> {
    let tmp = tempfile::tempdir()?;
    let setup = Setup::new(
        tmp.path(),
        "data",
        "[limits]\nmax_attachment_size = \"1 KiB\"\n\n[flush]\ninterval = \"1s\"\n",
    );
    let server = setup.start()?;
    let dsn = setup.create_project("shop")?;
    let out = python_client("send_attachments.py", &[&dsn, &BIG.to_string()])?;
    let sent: Value = serde_json::from_str(&out).with_context(|| format!("no JSON: {out}"))?;
    let event_id = sent["event_id"].as_str().context("event_id")?;
    let big_event_id = sent["big_event_id"].as_str().context("big_event_id")?;
    let blob = hex::decode(sent["blob_hex"].as_str().context("blob_hex")?)?;
    let token = setup.create_token()?;

    let rows = rows_at_least(
        &server,
        &token,
        "SELECT event_id, filename, content_type, attachment_type, size FROM attachments \
         ORDER BY filename",
        2,
    )
    .await?;
    let seen: Vec<Four<'_>> = rows
        .iter()
        .map(|r| {
            (
                r.str("event_id"),
                r.str("filename"),
                r.str("content_type"),
                r.int("size"),
            )
        })
        .collect();
    assert_eq!(
        seen,
        vec![
            (
                Some(event_id),
                Some("cart.txt"),
                Some("text/plain"),
                Some(14)
            ),
            (
                Some(event_id),
                Some("state.bin"),
                Some("application/x-state"),
                Some(blob.len() as i64)
            ),
        ],
        "server log:\n{}",
        server.log_text()
    );

    // The list and the download, through Sentry's API.
    let client = reqwest::Client::new();
    let list_url = format!(
        "{}/api/0/projects/default/shop/events/{event_id}/attachments/",
        setup.base_url()
    );
    let list: Value = client
        .get(&list_url)
        .bearer_auth(&token)
        .send()
        .await?
        .json()
        .await?;
    let state = list
        .as_array()
        .context("a list")?
        .iter()
        .find(|a| a["name"] == "state.bin")
        .context("state.bin listed")?;
    let id = state["id"].as_str().context("id")?;
    let response = client
        .get(format!("{list_url}{id}/?download=1"))
        .bearer_auth(&token)
        .send()
        .await?;
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"].to_str()?,
        "application/x-state"
    );
    assert!(
        response.headers()["content-disposition"]
            .to_str()?
            .contains("filename=\"state.bin\"")
    );
    assert_eq!(response.bytes().await?.to_vec(), blob, "the bytes as sent");

    // The attachment over max_attachment_size is refused alone: its event is stored.
    let events = server
        .sql(
            &token,
            &format!("SELECT title FROM events WHERE event_id = '{big_event_id}'"),
        )
        .await?;
    assert_eq!(events.len(), 1, "{events:?}");
    let huge = server
        .sql(
            &token,
            "SELECT count(*) AS n FROM attachments WHERE filename = 'huge.log'",
        )
        .await?;
    assert_eq!(huge[0].int("n"), Some(0));

    // Where did my events go: the SDK's client report and the server's own decisions.
    let outcomes = rows_at_least(
        &server,
        &token,
        "SELECT category, outcome, reason, sum(quantity) AS n FROM outcomes \
         GROUP BY category, outcome, reason ORDER BY category, outcome, reason",
        // the six groups below: both envelopes' outcomes are flushed and the report is in
        6,
    )
    .await?;
    let seen: Vec<Four<'_>> = outcomes
        .iter()
        .map(|r| {
            (
                r.str("category"),
                r.str("outcome"),
                r.str("reason"),
                r.int("n"),
            )
        })
        .collect();
    // attachments count their bytes as `attachment` and themselves as `attachment_item`
    let accepted_bytes = Some(14 + blob.len() as i64);
    for expected in [
        (Some("attachment"), Some("accepted"), None, accepted_bytes),
        (
            Some("attachment"),
            Some("too_large"),
            Some("max_attachment_size"),
            Some(BIG as i64),
        ),
        (Some("attachment_item"), Some("accepted"), None, Some(2)),
        (
            Some("attachment_item"),
            Some("too_large"),
            Some("max_attachment_size"),
            Some(1),
        ),
        (Some("error"), Some("accepted"), None, Some(2)),
        (
            Some("error"),
            Some("client_discard"),
            Some("before_send"),
            Some(3),
        ),
    ] {
        assert!(
            seen.contains(&expected),
            "{expected:?} not in {seen:?}\nserver log:\n{}",
            server.log_text()
        );
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_sdk_holds_back_spans_over_the_quota_and_keeps_sending_errors() -> anyhow::Result<()>
{
    const KEY: &str = "0123456789abcdef0123456789abcdef";
    let tmp = tempfile::tempdir()?;
    let setup = Setup::new(
        tmp.path(),
        "data",
        &format!(
            "[flush]\ninterval = \"1s\"\n\n[[project]]\nid = 1\nname = \"batch\"\nkeys = [\"{KEY}\"]\n\
             quotas = [{{ categories = [\"span\"], limit = 2, window = \"1h\" }}]\n"
        ),
    );
    let server = setup.start()?;
    let dsn = format!(
        "http://{KEY}@{}/1",
        setup.base_url().trim_start_matches("http://")
    );
    let out = python_client("send_over_quota.py", &[&dsn, "5"])?;
    let sent: Value = serde_json::from_str(&out).with_context(|| format!("no JSON: {out}"))?;
    let event_id = sent["event_id"].as_str().context("event_id")?;
    let token = setup.create_token()?;

    // two traces (one segment span each, as sentry-sdk 3 streams them) within the quota; the
    // error after them still arrives
    let transactions = server
        .sql(
            &token,
            "SELECT transaction FROM spans WHERE is_segment ORDER BY transaction",
        )
        .await?;
    let names: Vec<Option<&str>> = transactions.iter().map(|r| r.str("transaction")).collect();
    assert_eq!(
        names,
        [Some("batch-0"), Some("batch-1")],
        "{}",
        server.log_text()
    );
    let events = rows_at_least(
        &server,
        &token,
        &format!("SELECT message FROM events WHERE event_id = '{event_id}'"),
        1,
    )
    .await?;
    assert_eq!(events[0].str("message"), Some("after the quota"));

    // the third was refused with 429 (the server's outcome); the SDK held back the other two
    // on its own and said so in its client report, all in the `span` category
    let outcomes = rows_at_least(
        &server,
        &token,
        "SELECT outcome, reason, sum(quantity) AS n FROM outcomes \
         WHERE category = 'span' GROUP BY outcome, reason ORDER BY outcome, reason",
        3,
    )
    .await?;
    let seen: Vec<(Option<&str>, Option<&str>, Option<i64>)> = outcomes
        .iter()
        .map(|r| (r.str("outcome"), r.str("reason"), r.int("n")))
        .collect();
    assert_eq!(
        seen,
        [
            (Some("accepted"), None, Some(2)),
            (Some("client_discard"), Some("ratelimit_backoff"), Some(2)),
            (Some("rate_limited"), Some("project_quota"), Some(1)),
        ],
        "server log:\n{}",
        server.log_text()
    );
    Ok(())
}
