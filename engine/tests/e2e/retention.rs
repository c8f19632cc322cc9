//! `faultline retention run` against a tracker whose objects live in a real S3-compatible server
//! (moto), with the server running: exactly the expired days go, from the manifests and from
//! the bucket (with any other object under their partition prefix), and no other day does.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use chrono::{Days, Utc};
use serde_json::json;

use crate::durability::{auth_header, parse_dsn};
use crate::harness::{PATIENCE, RowExt, Setup};
use crate::s3::{Moto, PREFIX, s3_setup};

/// Sends one event per timestamp (seconds since the epoch) as envelopes; returns the ids.
pub(crate) async fn send_at(dsn: &str, timestamps: &[f64]) -> Result<Vec<String>> {
    let (url, key) = parse_dsn(dsn)?;
    let client = reqwest::Client::new();
    let mut ids = Vec::new();
    for (n, ts) in timestamps.iter().enumerate() {
        let id = uuid::Uuid::new_v4().simple().to_string();
        let event = json!({
            "event_id": id, "timestamp": ts, "platform": "python", "level": "error",
            "exception": { "values": [{ "type": "KeyError", "value": format!("k{}", n % 3) }] },
        });
        let payload = serde_json::to_vec(&event)?;
        let mut body = serde_json::to_vec(&json!({ "event_id": id }))?;
        body.push(b'\n');
        body.extend(serde_json::to_vec(
            &json!({ "type": "event", "length": payload.len() }),
        )?);
        body.push(b'\n');
        body.extend(payload);
        let response = client
            .post(&url)
            .header("X-Sentry-Auth", auth_header(&key))
            .body(body)
            .send()
            .await?;
        ensure!(
            response.status() == 200,
            "ingest answered {}",
            response.status()
        );
        ids.push(id);
    }
    Ok(ids)
}

fn project_id(dsn: &str) -> Result<u64> {
    Ok(url::Url::parse(dsn)?.path().trim_matches('/').parse()?)
}

/// `date=` partitions of a project that have at least one object in the bucket.
async fn dates_in_bucket(moto: &Moto, root: &str, project: u64) -> Result<BTreeSet<String>> {
    let prefix = format!("{PREFIX}/{root}/proj={project}/");
    Ok(moto
        .list(&prefix)
        .await?
        .into_iter()
        .filter_map(|(key, _)| {
            key.split('/')
                .find_map(|p| p.strip_prefix("date="))
                .map(str::to_owned)
        })
        .collect())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_drops_exactly_the_expired_days() -> Result<()> {
    let moto = Moto::start()?;
    moto.create_bucket().await?;
    let tmp = tempfile::tempdir()?;
    let setup: Setup = s3_setup(tmp.path(), "node-a", &moto);
    std::fs::write(
        &setup.config,
        "[flush]\ninterval = \"1s\"\n\n[storage.s3]\nregion = \"us-east-1\"\nallow_http = true\nforce_path_style = true\n\n\
         [retention]\ndefault_days = 90\ndelete_after = \"0s\"\n\n[retention.projects]\nshop = 3\n",
    )?;
    let shop_dsn = setup.create_project("shop")?;
    let api_dsn = setup.create_project("api")?;
    let server = setup.start()?;
    let (shop, api) = (project_id(&shop_dsn)?, project_id(&api_dsn)?);

    // Two events on each of the last 7 days for shop (3 days of retention), and events 10 and
    // 29 days old for api (the default 90). Sentry replaces timestamps older than 30 days.
    let now = Utc::now();
    let day = |n: u64| now.checked_sub_days(Days::new(n)).expect("date");
    let date = |n: u64| day(n).format("%Y-%m-%d").to_string();
    let mut stamps = Vec::new();
    for n in 0..7 {
        let t = day(n).timestamp() as f64;
        stamps.extend([t, t + 1.0]);
    }
    send_at(&shop_dsn, &stamps).await?;
    send_at(
        &api_dsn,
        &[day(10).timestamp() as f64, day(29).timestamp() as f64],
    )
    .await?;
    let all_shop: BTreeSet<String> = (0..7).map(date).collect();
    let deadline = Instant::now() + PATIENCE;
    // Each flush writes the events of its days, then the issue rollups of the same days under
    // the same date partitions; wait for both.
    while dates_in_bucket(&moto, "events", shop).await? != all_shop
        || dates_in_bucket(&moto, "events", api).await?.len() != 2
        || dates_in_bucket(&moto, "rollups", shop).await? != all_shop
    {
        ensure!(
            Instant::now() < deadline,
            "flushes did not reach the bucket (events {:?}, rollups {:?}):\n{}",
            dates_in_bucket(&moto, "events", shop).await?,
            dates_in_bucket(&moto, "rollups", shop).await?,
            server.log_text()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    let expired: Vec<String> = (4..7).rev().map(date).collect();
    let dropped_dates = |out: &str, verb: &str| -> Vec<String> {
        out.lines()
            .filter(|l| l.starts_with(verb))
            .map(|l| {
                let cols: Vec<&str> = l.split('\t').collect();
                format!("{}:{}", cols[1], cols[2])
            })
            .collect()
    };
    let expected: Vec<String> = expired.iter().map(|d| format!("shop:{d}")).collect();

    let dry = setup.cli(&["retention", "run", "--dry-run"])?;
    assert_eq!(dropped_dates(&dry, "would drop"), expected, "{dry}");
    assert_eq!(
        dates_in_bucket(&moto, "events", shop).await?,
        all_shop,
        "a dry run deletes nothing"
    );

    let out = setup.cli(&["retention", "run"])?;
    assert_eq!(dropped_dates(&out, "dropped"), expected, "{out}");
    let kept: BTreeSet<String> = (0..4).map(date).collect();
    assert_eq!(dates_in_bucket(&moto, "events", shop).await?, kept);
    assert_eq!(
        dates_in_bucket(&moto, "rollups", shop).await?,
        kept,
        "the rollups of the expired days are gone, the kept days' stay"
    );
    assert_eq!(dates_in_bucket(&moto, "events", api).await?.len(), 2);

    // The running server picks up the new manifest and serves exactly the kept days.
    let token = setup.create_token()?;
    let sql = "SELECT project, CAST(date_trunc('day', timestamp) AS DATE) AS day, count(*) AS n \
         FROM events GROUP BY 1, 2 ORDER BY 1, 2";
    let deadline = Instant::now() + PATIENCE;
    loop {
        // With delete_after = 0 a query may name a deleted file until the server's next
        // flush tick picks up the new manifest; the default delete_after avoids that.
        let rows = match server.sql(&token, sql).await {
            Ok(rows) => rows,
            Err(err) => {
                ensure!(Instant::now() < deadline, "{err}");
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
        };
        let seen: Vec<(String, String, i64)> = rows
            .iter()
            .map(|r| {
                Ok((
                    r.str("project").context("project")?.to_owned(),
                    r.str("day").context("day")?.to_owned(),
                    r.int("n").context("n")?,
                ))
            })
            .collect::<Result<_>>()?;
        let mut want: Vec<(String, String, i64)> =
            vec![("api".into(), date(29), 1), ("api".into(), date(10), 1)];
        want.extend((0..4).rev().map(|n| ("shop".to_owned(), date(n), 2)));
        if seen == want {
            break;
        }
        ensure!(
            Instant::now() < deadline,
            "server still answers {seen:?}, want {want:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let again = setup.cli(&["retention", "run"])?;
    assert!(
        dropped_dates(&again, "dropped").is_empty(),
        "nothing left to drop: {again}"
    );
    drop(server);
    Ok(())
}
