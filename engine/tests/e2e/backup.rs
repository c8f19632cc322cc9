//! `faultline backup create|list|verify|restore|prune` as a user runs them: against a live
//! tracker on S3 (moto), and with a directory as the destination.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use chrono::{Days, Utc};
use serde_json::Value;

use crate::harness::{PATIENCE, RowExt, Rows, Setup};
use crate::retention::send_at;
use crate::s3::{BUCKET, Moto, PREFIX, s3_setup};

const S3_CONFIG: &str = "[storage.s3]\nregion = \"us-east-1\"\nallow_http = true\nforce_path_style = true\n\n\
    [backup.s3]\nregion = \"us-east-1\"\nallow_http = true\nforce_path_style = true\n";

fn ids(rows: &[Rows]) -> BTreeSet<String> {
    rows.iter()
        .filter_map(|r| r.str("event_id").map(str::to_owned))
        .collect()
}

const ALL_EVENTS: &str = "SELECT event_id, project, issue_id, title, level, timestamp, received \
    FROM events ORDER BY event_id";
/// The issues as a user lists them (answered from the rollups, not from the events).
const ISSUES: &str = "SELECT project, issue_id, title, event_count, first_seen, last_seen \
    FROM issues ORDER BY project, issue_id";

fn event_total(issues: &[Rows]) -> i64 {
    issues.iter().filter_map(|r| r.int("event_count")).sum()
}

fn backup_list(setup: &Setup, extra: &[&str]) -> Result<Vec<Value>> {
    let mut args = vec!["backup", "list", "--format", "json"];
    args.extend_from_slice(extra);
    let out = setup.cli(&args)?;
    serde_json::from_str(out.trim()).with_context(|| format!("backup list: {out}"))
}

fn listed_ids(list: &[Value]) -> Vec<String> {
    list.iter()
        .filter_map(|b| b["id"].as_str().map(str::to_owned))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_of_a_live_tracker_restores_identically_and_to_a_point_in_time() -> Result<()> {
    let moto = Moto::start()?;
    moto.create_bucket().await?;
    let tmp = tempfile::tempdir()?;
    let destination = format!("s3://{BUCKET}/backups");
    let config = format!(
        "[flush]\ninterval = \"1h\"\nmax_events = 20\n\n[backup]\ndestination = \"{destination}\"\n\n{S3_CONFIG}"
    );
    let mut live = s3_setup(tmp.path(), "live", &moto);
    std::fs::write(&live.config, &config)?;
    // The destination's own credentials (moto accepts any).
    live.env.push((
        "FAULTLINE_BACKUP_AWS_ACCESS_KEY_ID".into(),
        "backup-key".into(),
    ));
    live.env.push((
        "FAULTLINE_BACKUP_AWS_SECRET_ACCESS_KEY".into(),
        "backup-secret".into(),
    ));
    let shop = live.create_project("shop")?;
    let api = live.create_project("api")?;
    let server = live.start()?;

    // 30 events: the first 20 are flushed to Parquet (flush.max_events), the rest stay in
    // the WAL of the running server.
    let now = Utc::now().timestamp() as f64;
    let mut before = send_at(&shop, &[now; 25]).await?;
    before.extend(send_at(&api, &[now - 7200.0; 5]).await?);
    let deadline = Instant::now() + PATIENCE;
    while moto.list(&format!("{PREFIX}/events/")).await?.is_empty() {
        ensure!(
            Instant::now() < deadline,
            "no flush:\n{}",
            server.log_text()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let until = Utc::now();
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let after = send_at(&shop, &[now; 7]).await?;

    let id = live.cli(&["backup", "create"])?.trim().to_owned();
    assert_eq!(listed_ids(&backup_list(&live, &[])?), [id.as_str()]);
    let verified = live.cli(&["backup", "verify", "latest"])?;
    assert!(verified.contains(&id), "{verified}");
    let source_rows = live.query(ALL_EVENTS)?;
    assert_eq!(source_rows.len(), 37);
    let source_issues = live.query(ISSUES)?;
    assert_eq!(event_total(&source_issues), 37);

    // A full restore into an empty location answers exactly as the live tracker.
    let mut restored = s3_setup(tmp.path(), "restored", &moto);
    restored.object_store = Some(format!("s3://{BUCKET}/restored"));
    std::fs::write(&restored.config, &config)?;
    restored.env = live.env.clone();
    let out = restored.cli(&["backup", "restore", "latest"])?;
    assert!(out.contains(&format!("restored backup {id}")), "{out}");
    assert_eq!(restored.query(ALL_EVENTS)?, source_rows);
    // The issues too, including the events that were only in the WAL when the backup was made.
    assert_eq!(restored.query(ISSUES)?, source_issues);
    let again = restored.cli(&["backup", "restore", "latest"])?;
    assert!(again.contains("already restored"), "{again}");
    let other = restored.cli(&["backup", "restore", &id, "--until", &until.to_rfc3339()]);
    assert!(
        other.is_err(),
        "a location holding another restore is refused"
    );

    // Point in time: only what was received up to `until`, from Parquet and WAL alike.
    let mut pitr = s3_setup(tmp.path(), "pitr", &moto);
    pitr.object_store = Some(format!("s3://{BUCKET}/pitr"));
    std::fs::write(&pitr.config, &config)?;
    pitr.env = live.env.clone();
    pitr.cli(&[
        "backup",
        "restore",
        "latest",
        "--until",
        &until.to_rfc3339(),
    ])?;
    let rows = pitr.query(ALL_EVENTS)?;
    assert_eq!(ids(&rows), before.iter().cloned().collect());
    assert!(after.iter().all(|id| !ids(&rows).contains(id)));
    // The issues count exactly the events kept, not what the backed-up rollups summarized.
    let pitr_issues = pitr.query(ISSUES)?;
    assert_eq!(
        event_total(&pitr_issues),
        before.len() as i64,
        "{pitr_issues:?}"
    );

    // A server started on the restored location serves the same and keeps ingesting.
    drop(server);
    let server = restored.start()?;
    let token = restored.create_token()?;
    let counted = server
        .sql(&token, "SELECT count(*) AS n FROM events")
        .await?;
    assert_eq!(counted[0].int("n"), Some(37));
    Ok(())
}

fn files_under(root: &Path) -> BTreeSet<String> {
    fn walk(dir: &Path, root: &Path, out: &mut BTreeSet<String>) {
        for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let path = entry.path();
            if path.is_dir() {
                walk(&path, root, out);
            } else {
                out.insert(
                    path.strip_prefix(root)
                        .expect("under root")
                        .display()
                        .to_string(),
                );
            }
        }
    }
    let mut out = BTreeSet::new();
    walk(root, root, &mut out);
    out
}

fn local_setup(root: &Path, name: &str, dest: &Path, extra: &str) -> Setup {
    Setup::new(
        root,
        name,
        &format!(
            "[flush]\ninterval = \"1h\"\n\n[backup]\ndestination = \"file://{}\"\n{extra}",
            dest.display()
        ),
    )
}

/// Starts the server, sends events at `timestamps`, stops it (the graceful stop flushes).
async fn session(setup: &Setup, dsn: &str, timestamps: &[f64]) -> Result<Vec<String>> {
    let server = setup.start()?;
    let ids = send_at(dsn, timestamps).await?;
    let status = server.terminate()?;
    ensure!(status.success(), "serve exited with {status}");
    Ok(ids)
}

fn days_ago(n: u64) -> f64 {
    Utc::now()
        .checked_sub_days(Days::new(n))
        .expect("date")
        .timestamp() as f64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_backup_leaves_earlier_ones_intact_and_the_next_run_completes() -> Result<()>
{
    let tmp = tempfile::tempdir()?;
    let dest = tmp.path().join("dest");
    let setup = local_setup(tmp.path(), "src", &dest, "");
    let dsn = setup.create_project("shop")?;
    session(&setup, &dsn, &[days_ago(5); 4]).await?;
    let first = setup.cli(&["backup", "create"])?.trim().to_owned();
    let objects = setup.data_dir.join("objects");
    let old_files = files_under(&objects.join("events"));

    session(
        &setup,
        &dsn,
        &[days_ago(3), days_ago(3), days_ago(2), days_ago(1)],
    )
    .await?;
    let new_files: Vec<String> = files_under(&objects.join("events"))
        .difference(&old_files)
        .cloned()
        .collect();
    assert_eq!(new_files.len(), 3, "one file per new day: {new_files:?}");
    // The last file to copy cannot be written: a plain file sits where its directory goes.
    let blocked: PathBuf = dest
        .join("files/events")
        .join(new_files.last().expect("new file"))
        .parent()
        .expect("dir")
        .to_owned();
    std::fs::create_dir_all(blocked.parent().expect("parent"))?;
    std::fs::write(&blocked, "in the way")?;
    let failed = setup.cli(&["backup", "create"]);
    assert!(failed.is_err(), "the backup stops midway");
    let copied = files_under(&dest.join("files"));
    assert!(
        new_files[..2]
            .iter()
            .any(|f| copied.contains(&format!("events/{f}"))),
        "the interrupted run copied some new files: {copied:?}"
    );
    assert_eq!(
        listed_ids(&backup_list(&setup, &[])?),
        [first.as_str()],
        "no record of the interrupted backup"
    );
    setup.cli(&["backup", "verify", &first])?;

    std::fs::remove_file(&blocked)?;
    let before_retry = files_under(&dest.join("files")).len();
    let second = setup.cli(&["backup", "create"])?.trim().to_owned();
    let list = backup_list(&setup, &[])?;
    assert_eq!(listed_ids(&list), [second.as_str(), first.as_str()]);
    assert_eq!(
        list[0]["copied_files"].as_u64().expect("copied_files") as usize,
        files_under(&dest.join("files")).len() - before_retry,
        "files copied by the interrupted run are not copied again: {list:?}"
    );
    setup.cli(&["backup", "verify", &second])?;
    let restored = local_setup(tmp.path(), "restored", &dest, "");
    restored.cli(&["backup", "restore", &second])?;
    assert_eq!(restored.query(ALL_EVENTS)?, setup.query(ALL_EVENTS)?);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pruning_never_deletes_a_file_a_kept_backup_needs() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let dest = tmp.path().join("dest");
    let setup = local_setup(
        tmp.path(),
        "src",
        &dest,
        "keep_last = 1\n\n[compaction]\nmin_files = 2\n\n[retention]\ndelete_after = \"0s\"\n",
    );
    let dsn = setup.create_project("shop")?;
    let at = days_ago(2);
    session(&setup, &dsn, &[at; 3]).await?;
    let b1 = setup.cli(&["backup", "create"])?.trim().to_owned();
    let after_b1 = files_under(&dest.join("files/events"));
    assert_eq!(after_b1.len(), 1);
    session(&setup, &dsn, &[at; 4]).await?;
    let b2 = setup.cli(&["backup", "create"])?.trim().to_owned();
    let after_b2 = files_under(&dest.join("files/events"));
    assert_eq!(after_b2.len(), 2);
    assert!(after_b1.is_subset(&after_b2));

    // keep_last = 1: the first backup goes, the file both name stays.
    let pruned = setup.cli(&["backup", "prune"])?;
    assert!(pruned.contains(&b1), "{pruned}");
    assert_eq!(listed_ids(&backup_list(&setup, &[])?), [b2.as_str()]);
    assert_eq!(files_under(&dest.join("files/events")), after_b2);
    setup.cli(&["backup", "verify", &b2])?;

    // Compaction merges the two files into one (and the day's two rollup files into one); the
    // next backup names only that, and pruning b2 then deletes exactly the two files nothing
    // kept names any more.
    let compacted = setup.cli(&["compact", "run"])?;
    // (the server's outcome rows of each flush are merged too; this test is about events)
    let (rollups, events): (Vec<&str>, Vec<&str>) = compacted
        .lines()
        .filter(|l| !l.contains("\toutcomes "))
        .partition(|l| l.contains("\trollups "));
    assert_eq!((events.len(), rollups.len()), (1, 1), "{compacted}");
    let b3 = setup.cli(&["backup", "create"])?.trim().to_owned();
    setup.cli(&["backup", "prune"])?;
    assert_eq!(listed_ids(&backup_list(&setup, &[])?), [b3.as_str()]);
    let left = files_under(&dest.join("files/events"));
    assert_eq!(left.len(), 1);
    assert!(left.is_disjoint(&after_b2));
    setup.cli(&["backup", "verify", &b3])?;
    let restored = local_setup(tmp.path(), "restored", &dest, "");
    restored.cli(&["backup", "restore", "latest"])?;
    let count = restored.query("SELECT count(*) AS n FROM events")?;
    assert_eq!(count[0].int("n"), Some(7));
    // The issue rollups of both sessions were kept and restored with the events.
    assert_eq!(event_total(&restored.query(ISSUES)?), 7);
    Ok(())
}

/// `GET` or `POST` on the admin API with a token; the status and the JSON body.
async fn admin(method: reqwest::Method, url: String, token: Option<&str>) -> Result<(u16, Value)> {
    let mut request = reqwest::Client::new().request(method, url);
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let response = request.send().await?;
    let status = response.status().as_u16();
    let body = response.text().await?;
    Ok((
        status,
        serde_json::from_str(&body).unwrap_or(Value::String(body)),
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_api_runs_backups_and_retention_and_the_server_holds_the_lease() -> Result<()> {
    use reqwest::Method;
    let tmp = tempfile::tempdir()?;
    let dest = tmp.path().join("dest");
    // Backups and retention cover every organization: only the admin token file may run them,
    // as the operator does with the token it mounts.
    let token = "flt_e2e_instance_admin_token";
    let token_file = tmp.path().join("admin-token");
    std::fs::write(&token_file, format!("{token}\n"))?;
    let setup = local_setup(
        tmp.path(),
        "src",
        &dest,
        &format!(
            "\n[auth]\nadmin_token_file = {:?}\n\n[retention]\ninterval = \"1s\"\n\
             delete_after = \"0s\"\n\n[retention.projects]\nold = 5\n\n\
             [compaction]\ninterval = \"1s\"\n",
            token_file.display().to_string()
        ),
    );
    let dsn = setup.create_project("shop")?;
    let old = setup.create_project("old")?;
    let org_token = setup.create_token()?;
    let token = token.to_owned();
    let server = setup.start()?;
    send_at(&dsn, &[days_ago(1); 3]).await?;
    send_at(&old, &[days_ago(20), days_ago(2)]).await?;
    let base = setup.base_url();

    let (status, _) = admin(Method::POST, format!("{base}/api/0/backups"), None).await?;
    assert_eq!(status, 401, "a token is required");
    let (status, body) = admin(
        Method::POST,
        format!("{base}/api/0/backups"),
        Some(&org_token),
    )
    .await?;
    assert_eq!(
        status, 403,
        "an organization's token may not back up every organization"
    );
    assert!(
        body["detail"]
            .as_str()
            .unwrap_or("")
            .contains("admin token"),
        "{body}"
    );
    let (status, body) = admin(Method::POST, format!("{base}/api/0/backups"), Some(&token)).await?;
    assert_eq!(status, 202, "{body}");
    assert_eq!(body["state"], "running");
    let id = body["id"].as_str().context("id")?.to_owned();
    let deadline = Instant::now() + PATIENCE;
    let job = loop {
        let (status, job) = admin(
            Method::GET,
            format!("{base}/api/0/backups/{id}"),
            Some(&token),
        )
        .await?;
        assert_eq!(status, 200, "{job}");
        if job["state"] != "running" {
            break job;
        }
        ensure!(Instant::now() < deadline, "backup {id} still running");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(job["state"], "succeeded", "{job}");
    assert!(
        job["finished"].is_string() && job["error"].is_null(),
        "{job}"
    );
    assert!(
        job["files"].as_u64() >= Some(2),
        "data file and project: {job}"
    );
    let (_, list) = admin(Method::GET, format!("{base}/api/0/backups"), Some(&token)).await?;
    assert_eq!(list[0]["id"], id.as_str(), "{list}");
    let (status, _) = admin(
        Method::GET,
        format!("{base}/api/0/backups/20200101T000000Z-0000"),
        Some(&token),
    )
    .await?;
    assert_eq!(status, 404);
    // The server flushed before the backup, so the backup restores all three events.
    let restored = local_setup(tmp.path(), "restored", &dest, "");
    restored.cli(&["backup", "restore", &id])?;
    let count = restored.query("SELECT count(*) AS n FROM events WHERE project = 'shop'")?;
    assert_eq!(count[0].int("n"), Some(3));

    let (status, report) = admin(
        Method::POST,
        format!("{base}/api/0/retention/run?dry_run=true"),
        Some(&token),
    )
    .await?;
    assert_eq!(status, 200, "{report}");
    // Empty if the scheduled run (every second) was first; else exactly old's expired day.
    let expired_day = Utc::now()
        .checked_sub_days(Days::new(20))
        .expect("date")
        .format("%Y-%m-%d")
        .to_string();
    for dropped in report["dropped"].as_array().context("dropped")? {
        assert_eq!(dropped["project"], "old", "{report}");
        assert_eq!(dropped["date"], expired_day.as_str(), "{report}");
    }

    // The scheduled retention (every second here) dropped old's day 20 days back, and only it,
    // once the flush before the backup put it in a file.
    let deadline = Instant::now() + PATIENCE;
    loop {
        let found = server
            .sql(
                &token,
                "SELECT project, count(*) AS n FROM events GROUP BY project ORDER BY project",
            )
            .await;
        let counts: Vec<(String, i64)> = found
            .iter()
            .flatten()
            .map(|r| {
                (
                    r.str("project").unwrap_or("").to_owned(),
                    r.int("n").unwrap_or(0),
                )
            })
            .collect();
        if counts == [("old".to_owned(), 1), ("shop".to_owned(), 3)] {
            break;
        }
        ensure!(
            Instant::now() < deadline,
            "scheduled retention did not drop old's expired day: {counts:?}\n{}",
            server.log_text()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }

    // The maintenance loop took the lease in the object store.
    let lease = setup.data_dir.join("objects/_leases/maintenance.json");
    let deadline = Instant::now() + PATIENCE;
    while !lease.exists() {
        ensure!(
            Instant::now() < deadline,
            "no lease:\n{}",
            server.log_text()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let holder: Value = serde_json::from_slice(&std::fs::read(&lease)?)?;
    assert_eq!(holder["holder"], "node-0");
    let status = server.terminate()?;
    assert!(status.success());
    assert!(!lease.exists(), "a stopping server gives the lease up");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_killed_midway_leaves_earlier_ones_intact_and_the_next_run_completes() -> Result<()>
{
    let moto = Moto::start()?;
    moto.create_bucket().await?;
    let tmp = tempfile::tempdir()?;
    // A local tracker backing up to S3 (moto): slow enough per object to be killed midway.
    let mut setup = s3_setup(tmp.path(), "src", &moto);
    setup.object_store = None;
    std::fs::write(
        &setup.config,
        format!("[backup]\ndestination = \"s3://{BUCKET}/killed\"\n\n{S3_CONFIG}"),
    )?;
    let dsn = setup.create_project("shop")?;
    session(&setup, &dsn, &[days_ago(1); 2]).await?;
    let first = setup.cli(&["backup", "create"])?.trim().to_owned();
    // 120 more event files (one event in each of the last 120 hours) and their days' rollups.
    let now = Utc::now().timestamp() as f64;
    let hours: Vec<f64> = (1..=120).map(|h| now - f64::from(h) * 3600.0).collect();
    session(&setup, &dsn, &hours).await?;

    let mut child = setup.spawn_cli(&["backup", "create"])?;
    let deadline = Instant::now() + PATIENCE;
    loop {
        let copied = moto.list("killed/files/").await?.len();
        if copied > 1 {
            break;
        }
        ensure!(
            child.try_wait()?.is_none(),
            "the backup ended before it could be killed"
        );
        ensure!(Instant::now() < deadline, "the backup copies nothing");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    child.kill()?;
    child.wait()?;
    let copied = moto.list("killed/files/").await?.len();
    ensure!(
        copied < 121,
        "the backup copied everything before the kill ({copied} files); cannot test"
    );
    assert_eq!(
        listed_ids(&backup_list(&setup, &[])?),
        [first.as_str()],
        "the killed backup left no record"
    );
    setup.cli(&["backup", "verify", &first])?;

    // The next run waits for the killed run's destination lease to expire (30 s), then
    // completes.
    let second = setup.cli(&["backup", "create"])?.trim().to_owned();
    let list = backup_list(&setup, &[])?;
    assert_eq!(listed_ids(&list), [second.as_str(), first.as_str()]);
    let copied_again = list[0]["copied_files"].as_u64().context("copied_files")?;
    let total = moto.list("killed/files/").await?.len();
    assert_eq!(
        copied_again as usize,
        total - copied,
        "only the files the killed run had not copied: {list:?}"
    );
    setup.cli(&["backup", "verify", &second])?;
    Ok(())
}

/// A declared schedule fires without anyone asking: `backup.schedule` every minute, and the
/// backup it makes holds the events the server had acknowledged (it flushes first).
/// Waits for the next minute boundary, so up to about a minute.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scheduled_backup_runs_on_its_own() -> Result<()> {
    let tmp = tempfile::tempdir()?;
    let dest = tmp.path().join("dest");
    let setup = local_setup(tmp.path(), "src", &dest, "schedule = \"* * * * *\"\n");
    let dsn = setup.create_project("shop")?;
    let server = setup.start()?;
    send_at(&dsn, &[days_ago(1); 3]).await?;
    let deadline = Instant::now() + Duration::from_secs(90);
    let list = loop {
        let list = backup_list(&setup, &[])?;
        if !list.is_empty() {
            break list;
        }
        ensure!(
            Instant::now() < deadline,
            "no scheduled backup within 90 s:\n{}",
            server.log_text()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let events: u64 = list[0]["counts"]
        .as_array()
        .context("counts")?
        .iter()
        .filter_map(|c| c["events"].as_u64())
        .sum();
    assert_eq!(events, 3, "{list:?}");
    let id = list[0]["id"].as_str().context("id")?;
    setup.cli(&["backup", "verify", id])?;
    Ok(())
}
