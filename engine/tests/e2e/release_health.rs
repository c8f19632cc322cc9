//! Release health and cron monitors from the official SDKs, as a user queries them: sessions
//! counted by `release_health`, check-ins, and the monitors their configs create (made by the
//! maintenance loop, which runs every second here).

use std::time::Duration;

use anyhow::Context;
use serde_json::Value;

use crate::harness::{RowExt, Rows, Server, Setup, node_client, python_client};

/// Maintenance (and so the monitor checker) every second.
const CONFIG: &str = "[retention]\ninterval = \"1s\"\n";

/// The rows of `sql` once `ready` holds for them (an SDK may deliver after its flush returns,
/// monitors appear at the next maintenance tick).
async fn rows_when(
    server: &Server,
    token: &str,
    sql: &str,
    ready: impl Fn(&[Rows]) -> bool,
) -> anyhow::Result<Vec<Rows>> {
    for _ in 0..150 {
        let rows = server.sql(token, sql).await?;
        if ready(&rows) {
            return Ok(rows);
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    server.sql(token, sql).await
}

/// Each check-in's monitor and status.
fn slugs_and_statuses(rows: &[Rows]) -> Vec<(Option<&str>, Option<&str>)> {
    rows.iter()
        .map(|r| (r.str("monitor_slug"), r.str("status")))
        .collect()
}

fn float(row: &Rows, column: &str) -> Option<f64> {
    match row.get(column) {
        Some(Value::String(s)) => s.parse().ok(),
        Some(v) => v.as_f64(),
        None => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_sdk_sessions_give_crash_free_rates_and_check_ins_make_monitors()
-> anyhow::Result<()> {
    let tmp = tempfile::tempdir()?;
    let setup = Setup::new(tmp.path(), "data", CONFIG);
    let server = setup.start()?;
    let dsn = setup.create_project("shop")?;
    let sent: Value = serde_json::from_str(&python_client("release_health.py", &[&dsn])?)?;
    let check_in_id = sent["check_in_id"]
        .as_str()
        .context("check_in_id")?
        .to_owned();
    let token = setup.create_token()?;

    let health = rows_when(
        &server,
        &token,
        "SELECT release, environment, sessions, crashed, crash_free_sessions, users, \
         crashed_users, crash_free_users FROM release_health",
        |rows| {
            rows.len() == 1
                && rows[0].int("crashed") == Some(1)
                && rows[0].int("sessions") == Some(2)
        },
    )
    .await?;
    assert_eq!(health.len(), 1, "{health:?}\n{}", server.log_text());
    let row = &health[0];
    assert_eq!(row.str("release"), Some("shop@2.0"));
    assert_eq!(row.str("environment"), Some("production"));
    assert_eq!(
        (row.int("sessions"), row.int("crashed")),
        (Some(2), Some(1))
    );
    assert_eq!(float(row, "crash_free_sessions"), Some(0.5), "{row:?}");
    assert_eq!(
        (row.int("users"), row.int("crashed_users")),
        (Some(2), Some(1))
    );
    assert_eq!(float(row, "crash_free_users"), Some(0.5), "{row:?}");
    // the session updates as sent: the SDK sends each session when it ends
    let updates = server
        .sql(
            &token,
            "SELECT status, count(*) AS n FROM sessions GROUP BY status ORDER BY status",
        )
        .await?;
    let statuses: Vec<_> = updates.iter().filter_map(|r| r.str("status")).collect();
    assert!(
        statuses.contains(&"crashed") && statuses.contains(&"exited"),
        "{updates:?}"
    );
    // the crash itself is an event of the same release
    let events = server
        .sql(&token, "SELECT exception_type, release FROM events")
        .await?;
    assert_eq!(events.len(), 1, "{events:?}");
    assert_eq!(events[0].str("exception_type"), Some("RuntimeError"));

    let check_ins = rows_when(
        &server,
        &token,
        "SELECT monitor_slug, check_in_id, status, duration, environment, synthetic \
         FROM check_ins ORDER BY monitor_slug, status <> 'in_progress', received",
        |rows| rows.len() >= 4,
    )
    .await?;
    let seen = slugs_and_statuses(&check_ins);
    assert_eq!(
        seen,
        [
            (Some("nightly-report"), Some("in_progress")),
            (Some("nightly-report"), Some("ok")),
            (Some("sync-prices"), Some("in_progress")),
            (Some("sync-prices"), Some("error")),
        ],
        "{check_ins:?}"
    );
    let nightly_id = check_in_id.replace('-', "");
    assert_eq!(check_ins[0].str("check_in_id"), Some(nightly_id.as_str()));
    assert_eq!(check_ins[1].str("check_in_id"), Some(nightly_id.as_str()));
    assert_eq!(float(&check_ins[1], "duration"), Some(1.5));
    assert_eq!(check_ins[0].str("environment"), Some("production"));

    let monitors = rows_when(
        &server,
        &token,
        "SELECT slug, status, schedule_type, schedule, timezone, checkin_margin, max_runtime, \
         in_progress, date_part('hour', next_expected) AS next_hour, \
         date_part('minute', next_expected) AS next_minute, next_expected > last_check_in AS ahead \
         FROM monitors ORDER BY slug",
        // until the checker has read every check-in
        |rows| {
            rows.len() == 2
                && rows[0].str("status") == Some("ok")
                && rows[1].str("status") == Some("error")
        },
    )
    .await?;
    assert_eq!(monitors.len(), 2, "{monitors:?}\n{}", server.log_text());
    let nightly = &monitors[0];
    assert_eq!(nightly.str("slug"), Some("nightly-report"));
    assert_eq!(nightly.str("status"), Some("ok"));
    assert_eq!(nightly.str("schedule_type"), Some("crontab"));
    assert_eq!(nightly.str("schedule"), Some("0 3 * * *"));
    assert_eq!(nightly.str("timezone"), Some("Europe/Vienna"));
    assert_eq!(
        (nightly.int("checkin_margin"), nightly.int("max_runtime")),
        (Some(10), Some(45))
    );
    assert_eq!(nightly.int("in_progress"), Some(0));
    // 03:00 in Vienna is 02:00 UTC in winter, 01:00 in summer
    let hour = nightly
        .int("next_hour")
        .or(float(nightly, "next_hour").map(|h| h as i64));
    assert!(matches!(hour, Some(1 | 2)), "{nightly:?}");
    assert_eq!(
        nightly.get("ahead"),
        Some(&Value::Bool(true)),
        "{nightly:?}"
    );
    let sync = &monitors[1];
    assert_eq!(sync.str("slug"), Some("sync-prices"));
    assert_eq!(sync.str("status"), Some("error"));
    assert_eq!(sync.str("schedule"), Some("2 hour"));
    assert_eq!(sync.str("schedule_type"), Some("interval"));
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_sdk_check_ins_make_monitors_and_its_session_is_kept() -> anyhow::Result<()> {
    let tmp = tempfile::tempdir()?;
    let setup = Setup::new(tmp.path(), "data", CONFIG);
    let server = setup.start()?;
    let dsn = setup.create_project("shop")?;
    let sent: Value = serde_json::from_str(&node_client("send_crons.js", &[&dsn])?)?;
    let check_in_id = sent["check_in_id"]
        .as_str()
        .context("check_in_id")?
        .replace('-', "");
    let token = setup.create_token()?;

    let check_ins = rows_when(
        &server,
        &token,
        "SELECT monitor_slug, check_in_id, status, release, trace_id IS NOT NULL AS traced \
         FROM check_ins ORDER BY monitor_slug, status <> 'in_progress', received",
        |rows| rows.len() >= 4,
    )
    .await?;
    let seen = slugs_and_statuses(&check_ins);
    assert_eq!(
        seen,
        [
            (Some("cleanup"), Some("in_progress")),
            (Some("cleanup"), Some("error")),
            (Some("invoice-run"), Some("in_progress")),
            (Some("invoice-run"), Some("ok")),
        ],
        "{check_ins:?}\n{}",
        server.log_text()
    );
    assert_eq!(check_ins[2].str("check_in_id"), Some(check_in_id.as_str()));
    assert_eq!(check_ins[2].str("release"), Some("shop-node@3.0"));

    let monitors = rows_when(
        &server,
        &token,
        "SELECT slug, status, schedule, timezone, checkin_margin, max_runtime FROM monitors \
         ORDER BY slug",
        // until the checker has read every check-in
        |rows| {
            rows.len() == 2
                && rows[0].str("status") == Some("error")
                && rows[1].str("status") == Some("ok")
        },
    )
    .await?;
    assert_eq!(monitors.len(), 2, "{monitors:?}\n{}", server.log_text());
    assert_eq!(monitors[0].str("slug"), Some("cleanup"));
    assert_eq!(monitors[0].str("status"), Some("error"));
    assert_eq!(monitors[0].str("schedule"), Some("30 minute"));
    assert_eq!(monitors[1].str("slug"), Some("invoice-run"));
    assert_eq!(monitors[1].str("status"), Some("ok"));
    assert_eq!(monitors[1].str("schedule"), Some("*/15 * * * *"));
    assert_eq!(monitors[1].str("timezone"), Some("America/New_York"));
    assert_eq!(
        (
            monitors[1].int("checkin_margin"),
            monitors[1].int("max_runtime")
        ),
        (Some(2), Some(5))
    );

    // the process's session (processSessionIntegration)
    let sessions = rows_when(
        &server,
        &token,
        "SELECT release, environment, status FROM sessions",
        |rows| !rows.is_empty(),
    )
    .await?;
    assert!(!sessions.is_empty(), "{}", server.log_text());
    assert!(
        sessions
            .iter()
            .all(|r| r.str("release") == Some("shop-node@3.0")),
        "{sessions:?}"
    );
    Ok(())
}
