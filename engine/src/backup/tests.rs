//! Backups between local stores: concurrent restores of one location, and corruption found.

use faultline_config::Config;
use faultline_protocol::normalize::{NormalizeContext, normalize_event};

use super::restore::{RestoreOutcome, restore};
use super::{Destination, Error, Source, create, verify};
use crate::events::{EventBuilder, StoredEvent};
use crate::store::Store;
use crate::store::manifest::{DataFile, Manifest};
use crate::store::parquet::write_partitions;

/// Version 1 of node-0's manifest, naming `files`, with the WAL flushed up to `wal_upto`.
async fn commit_first_manifest(store: &Store, files: Vec<DataFile>, wal_upto: u64) {
    Manifest {
        node: "node-0".into(),
        ..Manifest::default()
    }
    .with_files(files, wal_upto)
    .commit(store)
    .await
    .unwrap();
}

fn event(issue: i64) -> StoredEvent {
    received_at(issue, chrono::Utc::now())
}

fn received_at(issue: i64, received: chrono::DateTime<chrono::Utc>) -> StoredEvent {
    let payload = format!(r#"{{"message":"m{issue}","timestamp":"2026-11-20T10:00:00Z"}}"#);
    let ctx = NormalizeContext {
        received,
        client_ip: None,
        event_id: None,
    };
    StoredEvent {
        project_id: 3,
        project: "p".into(),
        issue_id: issue,
        grouping_hash: "0".repeat(32),
        event: normalize_event(payload.as_bytes(), &ctx).unwrap(),
    }
}

async fn backed_up(root: &std::path::Path) -> (Destination, String) {
    let source = Store::local(&root.join("src")).unwrap();
    let mut builder = EventBuilder::new();
    for i in 0..5 {
        builder.append(&event(i));
    }
    let files = write_partitions(&source, &[builder.finish()], 1)
        .await
        .unwrap();
    commit_first_manifest(&source, files, 1).await;
    let url = format!("file://{}", root.join("dest").display());
    std::fs::create_dir_all(root.join("dest")).unwrap();
    let dest = Destination {
        store: Store::open_url(&url, &Default::default(), None).unwrap(),
        url,
    };
    let wal_dir = root.join("no-wal");
    let record = create(
        "b1",
        &Source {
            store: &source,
            node: "node-0",
            wal_dir: &wal_dir,
        },
        &dest,
        false,
    )
    .await
    .unwrap();
    (dest, record.id)
}

fn target(root: &std::path::Path, name: &str) -> Config {
    let mut config = Config::default();
    config.storage.data_dir = root.join(name);
    config.storage.object_store = Some(format!(
        "file://{}",
        root.join(name).join("objects").display()
    ));
    config
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_pods_restoring_one_location_restore_it_once() {
    let dir = tempfile::tempdir().unwrap();
    let (dest, id) = backed_up(dir.path()).await;
    let config = target(dir.path(), "shared");
    let (a, b) = tokio::join!(
        restore(&config, &dest, "latest", None, false),
        restore(&config, &dest, "latest", None, false)
    );
    let outcomes = [a.unwrap(), b.unwrap()];
    let restored = outcomes
        .iter()
        .filter(|o| matches!(o, RestoreOutcome::Restored { .. }))
        .count();
    assert_eq!(restored, 1, "{outcomes:?}");
    assert!(
        outcomes
            .iter()
            .any(|o| matches!(o, RestoreOutcome::AlreadyRestored(m) if m.backup_id == id))
    );
    let store = Store::open(&config).unwrap();
    let manifests = Manifest::load_all(&store).await.unwrap();
    assert_eq!(manifests.len(), 1);
    assert_eq!(manifests[0].files.iter().map(|f| f.rows).sum::<u64>(), 5);
    assert_eq!(
        manifests[0].wal_upto, None,
        "the new node's WAL starts afresh"
    );
}

#[tokio::test]
async fn a_corrupted_file_fails_verify_and_restore() {
    let dir = tempfile::tempdir().unwrap();
    let (dest, id) = backed_up(dir.path()).await;
    verify(&dest, &id, false).await.unwrap();
    let record = dest.record(&id).await.unwrap();
    let file = dir.path().join("dest/files").join(&record.files[0].path);
    let mut data = std::fs::read(&file).unwrap();
    let middle = data.len() / 2;
    data[middle] ^= 0xff;
    std::fs::write(&file, data).unwrap();
    let err = verify(&dest, &id, false).await.unwrap_err();
    assert!(matches!(err, Error::Verify { .. }), "{err}");
    assert!(err.to_string().contains("checksum"), "{err}");
    let err = restore(&target(dir.path(), "t"), &dest, &id, None, false)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("checksum"), "{err}");
}

#[tokio::test]
async fn until_keeps_only_what_was_received_by_then_even_inside_a_later_file() {
    let dir = tempfile::tempdir().unwrap();
    let source = Store::local(&dir.path().join("src")).unwrap();
    let until = chrono::Utc::now() - chrono::Duration::hours(1);
    // One file written now (as compaction would) holding events received before and after.
    let mut builder = EventBuilder::new();
    for i in 0..4 {
        builder.append(&received_at(i, until - chrono::Duration::minutes(10)));
    }
    for i in 4..7 {
        builder.append(&received_at(i, until + chrono::Duration::minutes(10)));
    }
    let files = write_partitions(&source, &[builder.finish()], 1)
        .await
        .unwrap();
    assert_eq!(files.len(), 1);
    commit_first_manifest(&source, files, 1).await;
    let url = format!("file://{}", dir.path().join("dest").display());
    std::fs::create_dir_all(dir.path().join("dest")).unwrap();
    let dest = Destination {
        store: Store::open_url(&url, &Default::default(), None).unwrap(),
        url,
    };
    let wal_dir = dir.path().join("no-wal");
    let source = Source {
        store: &source,
        node: "node-0",
        wal_dir: &wal_dir,
    };
    create("b1", &source, &dest, false).await.unwrap();
    let outcome = restore(&target(dir.path(), "t"), &dest, "b1", Some(until), false)
        .await
        .unwrap();
    match outcome {
        RestoreOutcome::Restored { events, .. } => assert_eq!(events, 4),
        other => panic!("{other:?}"),
    }
    let restored = Store::open(&target(dir.path(), "t")).unwrap();
    let manifests = Manifest::load_all(&restored).await.unwrap();
    assert_eq!(manifests[0].files[0].rows, 4);
}

#[tokio::test]
async fn a_restore_killed_midway_is_resumed_by_the_same_command_only() {
    let dir = tempfile::tempdir().unwrap();
    let (dest, _) = backed_up(dir.path()).await;
    let config = target(dir.path(), "t");
    let store = Store::open(&config).unwrap();
    // What a killed restore leaves: its pending marker and a partial manifest.
    let pending = super::restore::Marker {
        source: dest.url.clone(),
        requested: "latest".into(),
        backup_id: String::new(),
        until: None,
        finished: chrono::Utc::now(),
    };
    store
        .put_durable(
            &object_store::path::Path::from(super::restore::PENDING_PATH),
            serde_json::to_vec(&pending).unwrap().into(),
        )
        .await
        .unwrap();
    commit_first_manifest(&store, Vec::new(), 0).await;
    let other = restore(&config, &dest, "b1", None, false)
        .await
        .unwrap_err();
    assert!(matches!(other, Error::NotEmpty { .. }), "{other}");
    let outcome = restore(&config, &dest, "latest", None, false)
        .await
        .unwrap();
    assert!(
        matches!(outcome, RestoreOutcome::Restored { events: 5, .. }),
        "{outcome:?}"
    );
    let manifests = Manifest::load_all(&store).await.unwrap();
    assert_eq!(manifests[0].files.iter().map(|f| f.rows).sum::<u64>(), 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn item_tables_are_backed_up_and_restored_whole_or_until_a_time() {
    use crate::items::{RowContext, logs};
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path();
    let source = Store::local(&root.join("src")).unwrap();
    let now = chrono::Utc::now();
    let log_rows = |body: &str, received| {
        let payload = format!(
            r#"{{"items":[{{"timestamp":{},"level":"info","body":"{body}"}}]}}"#,
            now.timestamp()
        );
        let ctx = RowContext {
            project_id: 3,
            project: "p",
            received,
            scrubber: None,
        };
        logs::rows(payload.as_bytes(), ctx).unwrap().rows
    };
    // One log row flushed two hours ago, one still in the WAL (received now).
    let flushed = log_rows("flushed", now - chrono::Duration::hours(2));
    let batch = logs::TABLE
        .decode(flushed.iter().map(|r| r.json.as_slice()))
        .unwrap();
    let log_files = crate::store::parquet::write_item_files(&source, &logs::TABLE, &[batch], 1)
        .await
        .unwrap();
    let mut manifest = Manifest {
        node: "node-0".into(),
        ..Manifest::default()
    }
    .with_files(Vec::new(), 1);
    manifest.tables.insert("logs".into(), log_files);
    manifest.commit(&source).await.unwrap();
    let wal_dir = root.join("wal");
    std::fs::create_dir_all(&wal_dir).unwrap();
    let mut segment = Vec::new();
    for row in log_rows("in the wal", now) {
        crate::wal::encode(
            &mut segment,
            crate::wal::Fields {
                kind: row.table.code,
                project_id: row.project_id,
                issue_id: 0,
                received_ms: row.received_ms,
                grouping_hash: "",
                project: "p",
                json: &row.json,
            },
        );
    }
    std::fs::write(wal_dir.join(format!("{:020}.wal", 2)), segment).unwrap();

    let url = format!("file://{}", root.join("dest").display());
    std::fs::create_dir_all(root.join("dest")).unwrap();
    let dest = Destination {
        store: Store::open_url(&url, &Default::default(), None).unwrap(),
        url,
    };
    let source_of = Source {
        store: &source,
        node: "node-0",
        wal_dir: &wal_dir,
    };
    let record = create("b1", &source_of, &dest, false).await.unwrap();
    assert_eq!(record.files.len(), 1, "the log file is copied");
    assert_eq!(record.wal.len(), 1, "the WAL segment is carried");

    for (name, until, bodies) in [
        ("whole", None, vec!["flushed", "in the wal"]),
        (
            "until",
            Some(now - chrono::Duration::hours(1)),
            vec!["flushed"],
        ),
    ] {
        let config = target(root, name);
        restore(&config, &dest, "latest", until, false)
            .await
            .unwrap();
        let store = Store::open(&config).unwrap();
        let manifests = Manifest::load_all(&store).await.unwrap();
        let files = &manifests[0].tables["logs"];
        let mut restored = Vec::new();
        for file in files {
            assert!(file.path.starts_with("items/logs/proj=3/"), "{}", file.path);
            let data = store
                .get(&object_store::path::Path::from(file.path.as_str()))
                .await
                .unwrap();
            let reader =
                datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(
                    data,
                )
                .unwrap()
                .build()
                .unwrap();
            for batch in reader {
                let batch = batch.unwrap();
                let body = batch.column_by_name("body").unwrap();
                let body = datafusion::arrow::array::AsArray::as_string::<i32>(body.as_ref());
                restored.extend(body.iter().flatten().map(str::to_owned));
            }
        }
        restored.sort();
        assert_eq!(restored, bodies, "{name}");
    }
}
