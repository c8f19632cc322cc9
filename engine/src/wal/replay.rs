//! Replay: the records of the WAL segments rebuilt into what ingest logged, events and item
//! rows, so start-up, read-only views and backups read the WAL one way.

use std::collections::BTreeMap;
use std::path::Path;

use faultline_protocol::normalize::{NormalizeContext, normalize_stored};

use super::record::EVENT;
use super::{Record, Result};
use crate::events::StoredEvent;
use crate::items::{self, ItemBatch};

/// Why one record cannot be rebuilt.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("{0}")]
    Normalize(#[from] faultline_protocol::normalize::NormalizeError),
    #[error("record of unknown kind {0} (written by a newer version?)")]
    UnknownKind(u8),
    #[error("{0}")]
    Row(#[from] items::Error),
}

/// What one append logs: events and item rows, in the buffer once they are durable.
#[derive(Debug, Default, Clone)]
pub struct Logged {
    pub events: Vec<StoredEvent>,
    /// The rows of each item table (at most one batch per table).
    pub items: Vec<ItemBatch>,
}

impl Logged {
    /// Events plus item rows.
    pub fn rows(&self) -> usize {
        self.events.len() + self.items.iter().map(|b| b.batch.num_rows()).sum::<usize>()
    }
}

/// Rebuilds a stored event from an event record (normalizing an already normalized event is a
/// no-op, so the row is the one that was acknowledged).
pub fn event(record: &Record) -> Result<StoredEvent, ReplayError> {
    let received = chrono::DateTime::from_timestamp_millis(record.received_ms).unwrap_or_default();
    let event = normalize_stored(
        &record.json,
        &NormalizeContext {
            received,
            client_ip: None,
            event_id: None,
        },
    )?;
    Ok(StoredEvent {
        project_id: record.project_id,
        project: record.project.clone(),
        issue_id: record.issue_id,
        grouping_hash: record.grouping_hash.clone(),
        event,
    })
}

/// Rebuilds what `records` logged. A record that cannot be rebuilt is handed to `unreadable`
/// with its index in `records`, and the others are kept; an error of `unreadable` stops.
pub fn rebuild<'a, E>(
    records: impl IntoIterator<Item = &'a Record>,
    mut unreadable: impl FnMut(usize, &ReplayError) -> std::result::Result<(), E>,
) -> std::result::Result<Logged, E> {
    let mut logged = Logged::default();
    let mut rows: BTreeMap<u8, Vec<(usize, &Record)>> = BTreeMap::new();
    for (i, record) in records.into_iter().enumerate() {
        if record.kind == EVENT {
            match event(record) {
                Ok(event) => logged.events.push(event),
                Err(err) => unreadable(i, &err)?,
            }
            continue;
        }
        match items::by_code(record.kind) {
            Some(_) => rows.entry(record.kind).or_default().push((i, record)),
            None => unreadable(i, &ReplayError::UnknownKind(record.kind))?,
        }
    }
    for (code, records) in rows {
        let Some(table) = items::by_code(code) else {
            continue;
        };
        let batch = match table.decode(records.iter().map(|(_, r)| r.json.as_slice())) {
            Ok(batch) => batch,
            Err(_) => {
                // Find the rows at fault; keep the others (each of which decodes alone).
                let mut good = Vec::with_capacity(records.len());
                for (i, record) in &records {
                    match table.decode([record.json.as_slice()]) {
                        Ok(_) => good.push(record.json.as_slice()),
                        Err(err) => unreadable(*i, &err.into())?,
                    }
                }
                match table.decode(good) {
                    Ok(batch) => batch,
                    Err(err) => {
                        tracing::error!(table = table.name, cause = %err, "wal rows cannot be replayed together");
                        continue;
                    }
                }
            }
        };
        logged.items.push(ItemBatch { table, batch });
    }
    Ok(logged)
}

/// The segments of `dir` after `wal_upto`, oldest first; with `trim`, segments at or before it
/// are deleted.
pub fn pending_segments(
    dir: &Path,
    wal_upto: Option<u64>,
    trim: bool,
) -> Result<Vec<(u64, std::path::PathBuf)>> {
    let mut pending = Vec::new();
    for (seq, path) in super::list_segments(dir)? {
        if wal_upto.is_some_and(|upto| seq <= upto) {
            if trim {
                std::fs::remove_file(&path).map_err(|source| super::Error::Remove {
                    path: path.clone(),
                    source,
                })?;
            }
            continue;
        }
        pending.push((seq, path));
    }
    Ok(pending)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::items::tests::ctx;
    use crate::wal::{Fields, encode, read_segment};

    #[test]
    fn events_and_rows_of_every_kind_are_rebuilt_and_a_bad_row_is_set_aside() {
        let mut data = Vec::new();
        let event = br#"{"event_id":"0123456789abcdef0123456789abcdef","message":"boom"}"#;
        let fields = |kind, json| Fields {
            kind,
            project_id: 7,
            issue_id: 0,
            received_ms: 1_796_464_800_000,
            grouping_hash: "",
            project: "shop",
            json,
        };
        encode(&mut data, fields(EVENT, event));
        let logs = items::logs::rows(
            br#"{"items":[{"timestamp":1796464800,"body":"a"},{"timestamp":1796464801,"body":"b"}]}"#,
            ctx(),
        )
        .unwrap();
        for row in &logs.rows {
            encode(&mut data, fields(row.table.code, &row.json));
        }
        encode(
            &mut data,
            fields(items::logs::TABLE.code, br#"{"project_id":"x"}"#),
        );
        encode(&mut data, fields(200, b"{}"));
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("1.wal");
        std::fs::write(&path, &data).unwrap();
        let contents = read_segment(&path).unwrap();
        let mut bad = Vec::new();
        let logged = rebuild(&contents.records, |i, err| {
            bad.push((i, err.to_string()));
            Ok::<_, ()>(())
        })
        .unwrap();
        assert_eq!(logged.events.len(), 1);
        assert_eq!(logged.events[0].event.message.as_deref(), Some("boom"));
        assert_eq!(logged.items.len(), 1);
        assert_eq!(logged.items[0].table.name, "logs");
        assert_eq!(logged.items[0].batch.num_rows(), 2);
        assert_eq!(logged.rows(), 3);
        assert_eq!(bad.len(), 2, "{bad:?}");
        assert!(
            bad.iter()
                .any(|(i, e)| *i == 4 && e.contains("unknown kind 200"))
        );
        assert!(bad.iter().any(|(i, e)| *i == 3 && e.contains("do not fit")));
    }
}
