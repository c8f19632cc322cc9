//! Compaction and retention against a real local object store, with queries running meanwhile.

use std::sync::Arc;
use std::time::Duration;

use datafusion::arrow::array::{AsArray, RecordBatch};
use datafusion::arrow::datatypes::Int64Type;
use faultline_config::Config;

use super::Maintenance;
use crate::buffer::{Buffer, FlushThresholds};
use crate::events::{EventBuilder, StoredEvent};
use crate::query::{ProjectFilter, QueryService};
use crate::store::Store;
use crate::store::manifest::Manifest;
use crate::store::parquet::write_partitions;

fn event(project: u64, issue: i64, at: &str) -> StoredEvent {
    StoredEvent::for_test(
        project,
        issue,
        &format!(r#"{{"message":"m{issue}","timestamp":"{at}"}}"#),
    )
}

/// Commits `files` small files of `per_file` events for `node`, all in one partition.
async fn small_files(store: &Store, node: &str, files: usize, per_file: usize, at: &str) {
    let mut manifest = Manifest::load_latest(store, node).await.unwrap();
    for f in 0..files {
        let mut builder = EventBuilder::new();
        for i in 0..per_file {
            builder.append(&event(1, (f * per_file + i) as i64 % 7, at));
        }
        let written = write_partitions(store, &[builder.finish()], 1)
            .await
            .unwrap();
        manifest = manifest.with_files(written, 0);
        manifest.commit(store).await.unwrap();
    }
}

fn reader(store: &Store) -> QueryService {
    let thresholds = FlushThresholds {
        max_events: 1000,
        max_bytes: 1 << 20,
    };
    QueryService::new(
        store.clone(),
        Arc::new(Buffer::new(Manifest::default(), thresholds)),
        "reader".into(),
        Default::default(),
    )
    .unwrap()
}

fn scalar(batches: &[RecordBatch], column: usize) -> i64 {
    batches[0]
        .column(column)
        .as_primitive::<Int64Type>()
        .value(0)
}

async fn counts(query: &QueryService) -> (i64, i64) {
    let out = query
        .run(
            &ProjectFilter::All,
            "SELECT count(*), count(DISTINCT event_id) FROM events",
        )
        .await
        .unwrap();
    (scalar(&out.batches, 0), scalar(&out.batches, 1))
}

fn live_files(manifests: &[Manifest]) -> usize {
    manifests.iter().map(|m| m.files.len()).sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queries_see_every_event_once_while_compaction_runs() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::local(dir.path()).unwrap();
    small_files(&store, "n1", 12, 40, "2026-11-20T10:15:00Z").await;
    small_files(&store, "n2", 6, 40, "2026-11-20T10:45:00Z").await;
    let total = 18 * 40;
    let query = reader(&store);
    assert_eq!(counts(&query).await, (total, total));

    let mut config = Config::default();
    config.compaction.min_files = 2;
    config.retention.delete_after = Duration::from_secs(600);
    let maintenance = Maintenance::new(config, store.clone(), None);
    let compaction = tokio::spawn(async move { maintenance.compact(false, false).await });
    let mut queries = 0;
    while !compaction.is_finished() {
        assert_eq!(
            counts(&query).await,
            (total, total),
            "query {queries} during compaction"
        );
        queries += 1;
    }
    let report = compaction.await.unwrap().unwrap();
    assert_eq!(report.merged.len(), 2, "one merge per node: {report:?}");
    assert!(report.merged.iter().all(|m| m.output.is_some()));
    let manifests = Manifest::load_all(&store).await.unwrap();
    assert_eq!(live_files(&manifests), 2);
    assert_eq!(counts(&query).await, (total, total));
    eprintln!("{queries} queries ran during compaction");

    // The merged-away files left the live prefix at once: a tool globbing `events/` sees the
    // merged files only.
    let live_objects: Vec<String> = store
        .list(&object_store::path::Path::from("events"))
        .await
        .unwrap()
        .into_iter()
        .map(|o| o.location.to_string())
        .collect();
    let mut listed: Vec<String> = manifests
        .iter()
        .flat_map(|m| m.files.iter().map(|f| f.path.clone()))
        .collect();
    listed.sort();
    let mut live_sorted = live_objects.clone();
    live_sorted.sort();
    assert_eq!(live_sorted, listed);
    // They stay under `retired/` until delete_after has passed, and a query planned with the
    // old file list still reads them by their old key.
    let retired: Vec<String> = manifests
        .iter()
        .flat_map(|m| m.retired.iter().map(|r| r.path.clone()))
        .collect();
    assert_eq!(retired.len(), 18);
    assert!(retired.iter().all(|p| !dir.path().join(p).exists()));
    let moved = |p: &String| dir.path().join(crate::store::keys::retired(p).unwrap());
    assert!(retired.iter().all(|p| moved(p).exists()));
    for path in &retired {
        let bytes = store
            .get(&object_store::path::Path::from(path.as_str()))
            .await
            .unwrap();
        assert_eq!(
            bytes.len() as u64,
            std::fs::metadata(moved(path)).unwrap().len()
        );
    }
    let mut config = Config::default();
    config.retention.delete_after = Duration::ZERO;
    let deleted = Maintenance::new(config, store.clone(), None)
        .purge()
        .await
        .unwrap();
    assert_eq!(deleted, 18);
    assert!(
        retired
            .iter()
            .all(|p| !dir.path().join(p).exists() && !moved(p).exists())
    );
    let manifests = Manifest::load_all(&store).await.unwrap();
    assert!(manifests.iter().all(|m| m.retired.is_empty()));
    assert_eq!(counts(&query).await, (total, total));
}

#[tokio::test]
async fn compaction_leaves_a_partition_alone_below_min_files() {
    let store = Store::memory();
    small_files(&store, "n1", 3, 5, "2026-11-20T10:15:00Z").await;
    let mut config = Config::default();
    config.compaction.min_files = 4;
    let report = Maintenance::new(config, store.clone(), None)
        .compact(false, false)
        .await
        .unwrap();
    assert!(report.merged.is_empty());
    assert_eq!(live_files(&Manifest::load_all(&store).await.unwrap()), 3);
}

#[tokio::test]
async fn a_compaction_whose_manifest_reply_was_lost_keeps_its_merged_file() {
    use crate::store::faults::LoseReplies;
    let base = Store::memory();
    small_files(&base, "n1", 4, 10, "2026-11-20T10:15:00Z").await;
    let faults = Arc::new(LoseReplies::new(Arc::clone(&base.objects), "manifest/", 1));
    let store = base.with_objects(Arc::clone(&faults) as Arc<dyn object_store::ObjectStore>);
    let mut config = Config::default();
    config.compaction.min_files = 2;
    let report = Maintenance::new(config, store.clone(), None)
        .compact(false, false)
        .await
        .unwrap();
    assert_eq!(faults.lost(), 1, "the manifest PUT lost its reply");
    let output = report.merged[0]
        .output
        .clone()
        .expect("the merge counts as done");
    let manifest = Manifest::load_latest(&store, "n1").await.unwrap();
    assert_eq!(manifest.version, 5, "four flushes and one compaction");
    let paths: Vec<&str> = manifest.files.iter().map(|f| f.path.as_str()).collect();
    assert_eq!(paths, [output.as_str()]);
    assert!(
        store
            .get(&object_store::path::Path::from(output.as_str()))
            .await
            .is_ok(),
        "the merged file the manifest lists is not deleted as 'inputs changed'"
    );
    assert_eq!(counts(&reader(&store)).await, (40, 40));
}

/// Rollup files written before tag rollups existed get theirs from maintenance: a tag search
/// over those days then finds their issues, and a second run adds nothing.
#[tokio::test]
async fn tag_rollups_are_written_for_older_rollup_files_once() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::local(dir.path()).unwrap();
    let mut builder = EventBuilder::new();
    for (issue, browser) in [(7, "Firefox"), (8, "Chrome"), (7, "Firefox")] {
        builder.append(&StoredEvent::for_test(
            1,
            issue,
            &format!(
                r#"{{"message":"m","timestamp":"2026-11-24T10:05:00Z","tags":{{"browser":"{browser}"}}}}"#
            ),
        ));
    }
    let rollups = crate::issues::rollup::compute(&[builder.finish()]).unwrap();
    let mut manifest = Manifest {
        node: "old".into(),
        version: 1,
        ..Manifest::default()
    };
    manifest.rollups = crate::issues::rollup::write(&store, &rollups, 1)
        .await
        .unwrap();
    manifest.commit(&store).await.unwrap();

    let query = reader(&store);
    let firefox = "SELECT DISTINCT issue_id FROM issue_tags WHERE key = 'browser' \
                   AND value = 'Firefox'";
    let before = query.run(&ProjectFilter::All, firefox).await.unwrap();
    assert_eq!(
        before
            .batches
            .iter()
            .map(RecordBatch::num_rows)
            .sum::<usize>(),
        0
    );

    let maintenance = Maintenance::new(Config::default(), store.clone(), None);
    assert_eq!(maintenance.backfill_tag_rollups().await.unwrap(), 1);
    let after = query.run(&ProjectFilter::All, firefox).await.unwrap();
    assert_eq!(scalar(&after.batches, 0), 7);
    let latest = Manifest::load_latest(&store, "old").await.unwrap();
    assert_eq!(latest.tag_rollups.len(), 1);
    assert_eq!(
        latest.tag_rollups[0].path,
        crate::store::keys::tag_rollup_of(&latest.rollups[0].path).unwrap()
    );
    assert_eq!(maintenance.backfill_tag_rollups().await.unwrap(), 0);
}

/// One rollup file per flush of a day becomes one file sorted by issue, with its tag rollups
/// made anew; `issue_hours`, `issue_tags` and `issues` read the same before and after.
#[tokio::test]
async fn rollup_files_of_a_day_are_merged_with_their_tag_rollups() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::local(dir.path()).unwrap();
    let mut manifest = Manifest {
        node: "n".into(),
        version: 1,
        ..Manifest::default()
    };
    for (issue, browser, at) in [
        (9, "Firefox", "2026-11-24T10:05:00Z"),
        (7, "Chrome", "2026-11-24T11:05:00Z"),
        (7, "Firefox", "2026-11-24T12:05:00Z"),
    ] {
        let mut builder = EventBuilder::new();
        builder.append(&StoredEvent::for_test(
            1,
            issue,
            &format!(r#"{{"message":"m","timestamp":"{at}","tags":{{"browser":"{browser}"}}}}"#),
        ));
        let rollups = crate::issues::rollup::compute(&[builder.finish()]).unwrap();
        let files = crate::issues::rollup::write(&store, &rollups, 1)
            .await
            .unwrap();
        let tags = crate::issues::tag_rollup::compute(&rollups).unwrap();
        manifest.tag_rollups.extend(
            crate::issues::tag_rollup::write(&store, &tags, 1, &files)
                .await
                .unwrap(),
        );
        manifest.rollups.extend(files);
    }
    manifest.commit(&store).await.unwrap();
    let query = reader(&store);
    let read = |sql: &'static str| {
        let query = &query;
        async move {
            let out = query.run(&ProjectFilter::All, sql).await.unwrap();
            datafusion::arrow::util::pretty::pretty_format_batches(&out.batches)
                .unwrap()
                .to_string()
        }
    };
    let hours_sql = "SELECT issue_id, hour, events FROM issue_hours ORDER BY 1, 2";
    let tags_sql = "SELECT key, value, issue_id, sum(events) AS n FROM issue_tags \
                    GROUP BY 1, 2, 3 ORDER BY 1, 2, 3";
    let issues_sql = "SELECT issue_id, event_count FROM issues ORDER BY 1";
    let before = (
        read(hours_sql).await,
        read(tags_sql).await,
        read(issues_sql).await,
    );

    let mut config = Config::default();
    config.compaction.min_files = 2;
    let maintenance = Maintenance::new(config, store.clone(), None);
    let report = maintenance.compact(false, false).await.unwrap();
    assert_eq!(report.merged.len(), 1, "{report:?}");
    assert_eq!(report.merged[0].inputs, 3);
    let latest = Manifest::load_latest(&store, "n").await.unwrap();
    assert_eq!(latest.rollups.len(), 1);
    assert_eq!(latest.tag_rollups.len(), 1);
    assert_eq!(
        latest.tag_rollups[0].path,
        crate::store::keys::tag_rollup_of(&latest.rollups[0].path).unwrap()
    );
    assert_eq!(
        latest.retired.len(),
        6,
        "three rollup files and their tag files"
    );
    let after = (
        read(hours_sql).await,
        read(tags_sql).await,
        read(issues_sql).await,
    );
    assert_eq!(before, after);
    assert!(
        after.1.contains("| browser | Firefox | 7        | 1 |"),
        "{}",
        after.1
    );
}

#[tokio::test]
async fn retention_removes_alert_deliveries_older_than_the_alert_retention() {
    use crate::alerts::outbox::{Attempt, Status, attempt_path, outbox_path};
    let store = Store::memory();
    let at = |days: i64| chrono::Utc::now() - chrono::Duration::days(days);
    for (id, days) in [("old", 8), ("new", 6)] {
        store
            .create_durable(&outbox_path(1, id), "{}".into())
            .await
            .unwrap();
        let attempt = Attempt {
            delivery_id: id.to_owned(),
            attempt: 1,
            at: at(days),
            status: Status::Delivered,
            response_code: Some(200),
            error: None,
            next_attempt: None,
            org: "default".into(),
            project_id: 1,
            project: "shop".into(),
            rule: "r".into(),
            channel: "hook".into(),
            kind: "webhook".into(),
            issue_id: 7,
            trigger: "new_issue".into(),
        };
        store
            .create_durable(
                &attempt_path(1, id, 1),
                serde_json::to_vec(&attempt).unwrap().into(),
            )
            .await
            .unwrap();
    }
    let mut config = Config::default();
    config.alerts.retention = Duration::from_secs(7 * 86_400);
    let maintenance = Maintenance::new(config, store.clone(), None);
    // a dry run removes nothing
    let dry = maintenance.retention(true).await.unwrap();
    assert_eq!(dry.alerts_expired.deliveries, 0);
    let report = maintenance.retention(false).await.unwrap();
    assert_eq!(report.alerts_expired.deliveries, 1);
    let left: Vec<String> = store
        .list(&object_store::path::Path::from("alerts"))
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.location.to_string())
        .collect();
    assert_eq!(left.len(), 2, "{left:?}");
    assert!(left.iter().all(|p| p.contains("new")), "{left:?}");
}

/// Writes one flush's worth of files for `events` as the flusher does: event files, their
/// rollups and tag rollups, in one manifest version.
async fn flush_like(store: &Store, node: &str, events: &[StoredEvent]) {
    let mut builder = EventBuilder::new();
    for event in events {
        builder.append(event);
    }
    let batch = builder.finish();
    let mut manifest = Manifest::load_latest(store, node).await.unwrap();
    manifest.node = node.into();
    let written = write_partitions(store, std::slice::from_ref(&batch), 1)
        .await
        .unwrap();
    let rollups = crate::issues::rollup::compute(&[batch]).unwrap();
    let files = crate::issues::rollup::write(store, &rollups, 1)
        .await
        .unwrap();
    let tags = crate::issues::tag_rollup::compute(&rollups).unwrap();
    let tag_files = crate::issues::tag_rollup::write(store, &tags, 1, &files)
        .await
        .unwrap();
    let mut next = manifest.with_files(written, 0);
    next.rollups.extend(files);
    next.tag_rollups.extend(tag_files);
    next.commit(store).await.unwrap();
}

#[tokio::test]
async fn a_deleted_issue_leaves_the_lists_at_once_and_its_events_are_erased_after_settling() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::local(dir.path()).unwrap();
    let tagged = |issue: i64, at: &str| {
        StoredEvent::for_test(
            1,
            issue,
            &format!(
                r#"{{"message":"m{issue}","timestamp":"{at}","tags":{{"browser":"Firefox"}}}}"#
            ),
        )
    };
    // issue 7 on two days (and in a file it shares with issue 9), issue 9 on one
    flush_like(
        &store,
        "n",
        &[
            tagged(7, "2026-11-24T10:05:00Z"),
            tagged(9, "2026-11-24T10:06:00Z"),
        ],
    )
    .await;
    flush_like(&store, "n", &[tagged(7, "2026-11-25T08:00:00Z")]).await;
    let query = reader(&store);
    let read = |sql: &'static str| {
        let query = &query;
        async move {
            let out = query.run(&ProjectFilter::All, sql).await.unwrap();
            datafusion::arrow::util::pretty::pretty_format_batches(&out.batches)
                .unwrap()
                .to_string()
        }
    };
    let per_issue = "SELECT issue_id, count(*) AS n FROM events GROUP BY 1 ORDER BY 1";
    assert!(read(per_issue).await.contains("| 7        | 2 |"));

    let deletion = crate::issues::delete(&query, &ProjectFilter::All, 7, "test")
        .await
        .unwrap();
    assert_eq!(deletion.issues, [7]);
    // gone from the issue list at once
    let issues = read("SELECT issue_id FROM issues ORDER BY 1").await;
    assert!(!issues.contains("| 7 "), "{issues}");
    assert!(issues.contains("| 9 "), "{issues}");
    // deleting it again: it is no longer there
    assert!(matches!(
        crate::issues::delete(&query, &ProjectFilter::All, 7, "test").await,
        Err(crate::issues::Error::UnknownIssue { issue_id: 7 })
    ));

    let maintenance = Maintenance::new(Config::default(), store.clone(), None);
    // events acknowledged just before the deletion may still be on their way to a file
    let report = maintenance.erase_deleted().await.unwrap();
    assert_eq!((report.erased, report.waiting), (0, 1));
    assert!(read(per_issue).await.contains("| 7        | 2 |"));

    let later = chrono::Utc::now() + chrono::Duration::hours(1);
    let report = maintenance.erase_deleted_as_of(later).await.unwrap();
    assert_eq!((report.erased, report.waiting, report.rows), (1, 0, 2));
    let events = read(per_issue).await;
    assert!(!events.contains("| 7 "), "{events}");
    assert!(events.contains("| 9        | 1 |"), "{events}");
    for sql in [
        "SELECT DISTINCT issue_id FROM issue_hours ORDER BY 1",
        "SELECT DISTINCT issue_id FROM issue_tags ORDER BY 1",
    ] {
        let out = read(sql).await;
        assert!(!out.contains("| 7 "), "{sql}: {out}");
        assert!(out.contains("| 9 "), "{sql}: {out}");
    }
    // the file of 25 November held only issue 7: dropped; the shared one rewritten
    let manifest = Manifest::load_latest(&store, "n").await.unwrap();
    assert_eq!(manifest.files.len(), 1);
    assert_eq!(manifest.files[0].rows, 1);
    assert!(manifest.rollups.iter().all(|f| f.date == "2026-11-24"));
    // the marker is gone and the issue's state says when
    assert!(
        store
            .list(&object_store::path::Path::from(
                crate::store::keys::ISSUE_DELETIONS
            ))
            .await
            .unwrap()
            .is_empty()
    );
    let state = crate::issues::state::current(&store, 1, 7)
        .await
        .unwrap()
        .unwrap();
    assert!(state.erased_at.is_some());
    assert_eq!(
        maintenance.erase_deleted_as_of(later).await.unwrap().erased,
        0
    );

    // an event after the deletion starts the issue afresh
    flush_like(&store, "n", &[tagged(7, "2026-11-26T09:00:00Z")]).await;
    let issues = read("SELECT issue_id, event_count, status FROM issues ORDER BY 1").await;
    assert!(
        issues.contains("| 7        | 1           | unresolved |"),
        "{issues}"
    );
}

/// Writes one logs file per payload (a `log` item of one record, all on one day) and commits
/// each to the manifest; the file of index `older` is rewritten without the table's last
/// column, as files were written before it was added.
async fn commit_log_files(
    store: &Store,
    payloads: &[String],
    scrubber: Option<&faultline_protocol::scrub::Scrubber>,
    older: Option<usize>,
) {
    use crate::items::{RowContext, logs};
    use datafusion::parquet::arrow::ArrowWriter;
    let mut manifest = Manifest::load_latest(store, "node-0").await.unwrap();
    for (i, payload) in payloads.iter().enumerate() {
        let ctx = RowContext {
            project_id: 1,
            project: "shop",
            received: chrono::Utc::now(),
            scrubber,
        };
        let rows = logs::rows(payload.as_bytes(), ctx).unwrap().rows;
        let batch = logs::TABLE
            .decode(rows.iter().map(|r| r.json.as_slice()))
            .unwrap();
        let mut files = crate::store::parquet::write_item_files(
            store,
            &logs::TABLE,
            std::slice::from_ref(&batch),
            1,
        )
        .await
        .unwrap();
        if older == Some(i) {
            let last = batch.num_columns() - 1;
            let older = batch.project(&(0..last).collect::<Vec<_>>()).unwrap();
            let mut data = Vec::new();
            let mut writer = ArrowWriter::try_new(&mut data, older.schema(), None).unwrap();
            writer.write(&older).unwrap();
            writer.close().unwrap();
            files[0].bytes = data.len() as u64;
            store
                .put_durable(
                    &object_store::path::Path::from(files[0].path.as_str()),
                    bytes::Bytes::from(data),
                )
                .await
                .unwrap();
        }
        let mut next = manifest.with_files(Vec::new(), 0);
        next.tables.entry("logs".into()).or_default().extend(files);
        next.commit(store).await.unwrap();
        manifest = next;
    }
}

/// Compacts with `min_files = 3` and checks that the three logs files became one.
async fn compact_three_log_files(store: &Store) {
    let mut config = Config::default();
    config.compaction.min_files = 3;
    let report = Maintenance::new(config, store.clone(), None)
        .compact(false, false)
        .await
        .unwrap();
    let merges: Vec<_> = report.merged.iter().filter(|m| m.kind == "logs").collect();
    assert_eq!(merges.len(), 1, "{:?}", report.merged);
    assert_eq!((merges[0].inputs, merges[0].rows), (3, 3));
    let manifest = Manifest::load_latest(store, "node-0").await.unwrap();
    let files = &manifest.tables["logs"];
    assert_eq!(files.len(), 1, "{:?}", merges[0]);
    assert_eq!(files[0].rows, 3);
    assert_eq!(merges[0].output.as_deref(), Some(files[0].path.as_str()));
}

#[tokio::test]
async fn small_files_of_an_item_table_are_merged_per_project_and_day() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::local(dir.path()).unwrap();
    let payloads: Vec<String> = (0..3)
        .map(|i| {
            format!(
                r#"{{"items":[{{"timestamp":"2026-11-24T10:0{i}:00Z","level":"info","body":"line {i}"}}]}}"#
            )
        })
        .collect();
    commit_log_files(&store, &payloads, None, None).await;
    compact_three_log_files(&store).await;
    let out = reader(&store)
        .run(&ProjectFilter::All, "SELECT count(*) AS n FROM logs")
        .await
        .unwrap();
    assert_eq!(scalar(&out.batches, 0), 3);
}

#[tokio::test]
async fn retention_drops_an_expired_day_of_sessions_and_keeps_a_recent_one() {
    use crate::items::{RowContext, sessions};
    let dir = tempfile::tempdir().unwrap();
    let store = Store::local(dir.path()).unwrap();
    let mut manifest = Manifest::load_latest(&store, "node-0").await.unwrap();
    let today = chrono::Utc::now();
    let old = today - chrono::Duration::days(120);
    for (i, at) in [old, today].into_iter().enumerate() {
        let payload = format!(
            r#"{{"sid":"7c7b6585-f901-4351-bf8d-c7e8c3e7b5a{i}","started":"{}","timestamp":"{}",
                "status":"crashed","attrs":{{"release":"shop@1.0"}}}}"#,
            at.to_rfc3339(),
            at.to_rfc3339()
        );
        let ctx = RowContext {
            project_id: 1,
            project: "shop",
            received: at,
            scrubber: None,
        };
        let rows = sessions::session_rows(payload.as_bytes(), ctx).unwrap();
        let batch = sessions::TABLE
            .decode(rows.iter().map(|r| r.json.as_slice()))
            .unwrap();
        let files = crate::store::parquet::write_item_files(&store, &sessions::TABLE, &[batch], 1)
            .await
            .unwrap();
        let mut next = manifest.with_files(Vec::new(), 0);
        next.tables
            .entry("sessions".into())
            .or_default()
            .extend(files);
        next.commit(&store).await.unwrap();
        manifest = next;
    }
    let report = Maintenance::new(Config::default(), store.clone(), None)
        .retention(false)
        .await
        .unwrap();
    let old_day = old.format("%Y-%m-%d").to_string();
    assert_eq!(report.dropped.len(), 1, "{:?}", report.dropped);
    assert_eq!(report.dropped[0].date, old_day);
    let manifest = Manifest::load_latest(&store, "node-0").await.unwrap();
    let files = &manifest.tables["sessions"];
    assert_eq!(files.len(), 1);
    assert_eq!(files[0].date, today.format("%Y-%m-%d").to_string());
    let out = reader(&store)
        .run(
            &ProjectFilter::All,
            "SELECT sessions, crashed FROM release_health",
        )
        .await
        .unwrap();
    assert_eq!(
        scalar(&out.batches, 0),
        1,
        "only the recent session is left"
    );
}

/// A logs file written before the `meta` column existed (the same rows without it) is read with
/// `meta` null and merged with newer files into today's layout.
#[tokio::test]
async fn an_item_file_of_an_older_layout_is_read_and_merged() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::local(dir.path()).unwrap();
    let scrubber = faultline_protocol::scrub::Scrubber::new(&Default::default()).unwrap();
    let payloads: Vec<String> = (0..3)
        .map(|i| {
            format!(
                r#"{{"items":[{{"timestamp":"2026-11-24T10:0{i}:00Z","level":"info","body":"line {i}",
                     "attributes":{{"api_key":{{"type":"string","value":"k-{i}"}}}}}}]}}"#
            )
        })
        .collect();
    commit_log_files(&store, &payloads, Some(&scrubber), Some(0)).await;
    assert_eq!(
        crate::items::logs::TABLE
            .schema()
            .fields()
            .last()
            .map(|f| f.name().as_str()),
        Some("meta"),
        "the older file lacks `meta`"
    );
    let counted = |store: Store| async move {
        let out = reader(&store)
            .run(
                &ProjectFilter::All,
                "SELECT count(*) AS n, count(meta) AS with_meta FROM logs",
            )
            .await
            .unwrap();
        (scalar(&out.batches, 0), scalar(&out.batches, 1))
    };
    assert_eq!(
        counted(store.clone()).await,
        (3, 2),
        "the older file's row is read, its meta null"
    );
    compact_three_log_files(&store).await;
    assert_eq!(counted(store.clone()).await, (3, 2), "after the merge");
    let out = reader(&store)
        .run(
            &ProjectFilter::All,
            "SELECT meta FROM logs WHERE meta IS NOT NULL ORDER BY timestamp LIMIT 1",
        )
        .await
        .unwrap();
    let meta = out.batches[0].column(0).as_string::<i32>().value(0);
    let meta: serde_json::Value = serde_json::from_str(meta).unwrap();
    assert_eq!(
        meta["attributes"]["api_key"][""]["rem"][0][0], "@password:filter",
        "{meta}"
    );
}

#[tokio::test]
async fn compaction_holds_at_most_max_merge_bytes_and_leaves_its_output_alone() {
    let store = Store::memory();
    small_files(&store, "n1", 6, 50, "2026-11-20T10:15:00Z").await;
    let total = 6 * 50;
    let query = reader(&store);
    let manifest = Manifest::load_latest(&store, "n1").await.unwrap();
    let mut config = Config::default();
    config.compaction.min_files = 2;
    let probe = Maintenance::new(config.clone(), store.clone(), None);
    let sizes = futures::future::try_join_all(manifest.files.iter().map(|f| probe.decoded_size(f)))
        .await
        .unwrap();
    let largest = *sizes.iter().max().unwrap();
    assert!(sizes.iter().all(|s| *s > 0), "{sizes:?}");
    // room for two of the files, not three
    config.compaction.max_merge_bytes = faultline_config::ByteSize::b(largest * 5 / 2);
    let maintenance = Maintenance::new(config, store.clone(), None);

    let first = maintenance.compact(false, false).await.unwrap();
    assert_eq!(first.merged.len(), 1, "{first:?}");
    assert_eq!(first.merged[0].inputs, 2, "cut at the budget: {first:?}");
    assert_eq!(first.merged[0].rows, 100);
    assert!(first.merged[0].output.is_some());
    assert_eq!(counts(&query).await, (total, total));
    assert_eq!(live_files(&Manifest::load_all(&store).await.unwrap()), 5);

    // the files left wait for the next runs; a merged file (two files' worth, more than half
    // the budget) is never read into a merge again
    for _ in 0..4 {
        maintenance.compact(false, false).await.unwrap();
    }
    let manifests = Manifest::load_all(&store).await.unwrap();
    assert_eq!(live_files(&manifests), 3, "{manifests:?}");
    assert!(manifests[0].files.iter().all(|f| f.rows == 100));
    let again = maintenance.compact(false, false).await.unwrap();
    assert!(
        again.merged.iter().all(|m| m.output.is_none()),
        "nothing left to merge within the budget: {again:?}"
    );
    assert_eq!(live_files(&Manifest::load_all(&store).await.unwrap()), 3);
    assert_eq!(counts(&query).await, (total, total));
}
