//! Records that replay could not read, set aside so the node starts with every other record.
//!
//! A record that fails to replay is copied, byte for byte as it was framed in its segment, to
//! `<wal dir>/quarantine/<segment>-<offset>.record`, with a description next to it in
//! `<segment>-<offset>.json` (why it failed, where it was, which project). Both are fsynced
//! before replay goes on; the segment itself is deleted as usual once the other records are in
//! Parquet. `faultline wal quarantine list|show` reads them back.

use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::record::{Fields, Record, encode, read_segment};
use super::{Error, Result};

/// Name of the quarantine directory inside the WAL directory.
pub const DIR: &str = "quarantine";

/// The description of one quarantined record.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Quarantined {
    /// `<segment>-<offset>`, the name of its files.
    pub id: String,
    /// Sequence number of the WAL segment it was in.
    pub segment: u64,
    /// Byte offset of the record in that segment.
    pub offset: u64,
    /// Why replay failed.
    pub reason: String,
    pub quarantined_at: DateTime<Utc>,
    pub project_id: u64,
    pub project: String,
    pub issue_id: i64,
    /// When the event was received, milliseconds since the epoch.
    pub received_ms: i64,
    /// Size of the stored event JSON in bytes.
    pub event_bytes: usize,
}

/// The quarantine directory of the WAL in `wal_dir`.
pub fn dir(wal_dir: &Path) -> PathBuf {
    wal_dir.join(DIR)
}

fn id(segment: u64, offset: u64) -> String {
    format!("{segment:020}-{offset:012}")
}

fn write_synced(path: &Path, data: &[u8]) -> Result<()> {
    File::create(path)
        .and_then(|mut f| {
            f.write_all(data)?;
            f.sync_all()
        })
        .map_err(|source| Error::Quarantine {
            path: path.to_owned(),
            source,
        })
}

/// Sets `record` (found at `offset` of segment `segment`) aside. When this returns `Ok`, the
/// record and its description are durable in the quarantine directory.
pub fn quarantine(
    wal_dir: &Path,
    segment: u64,
    offset: u64,
    record: &Record,
    reason: &str,
) -> Result<Quarantined> {
    let dir = dir(wal_dir);
    std::fs::create_dir_all(&dir).map_err(|source| Error::Quarantine {
        path: dir.clone(),
        source,
    })?;
    let entry = Quarantined {
        id: id(segment, offset),
        segment,
        offset,
        reason: reason.to_owned(),
        quarantined_at: Utc::now(),
        project_id: record.project_id,
        project: record.project.clone(),
        issue_id: record.issue_id,
        received_ms: record.received_ms,
        event_bytes: record.json.len(),
    };
    let mut framed = Vec::with_capacity(record.json.len() + 64);
    encode(
        &mut framed,
        Fields {
            kind: record.kind,
            project_id: record.project_id,
            issue_id: record.issue_id,
            received_ms: record.received_ms,
            grouping_hash: &record.grouping_hash,
            project: &record.project,
            json: &record.json,
        },
    );
    write_synced(&dir.join(format!("{}.record", entry.id)), &framed)?;
    let description = serde_json::to_vec_pretty(&entry).map_err(|source| Error::Quarantine {
        path: dir.clone(),
        source: source.into(),
    })?;
    write_synced(&dir.join(format!("{}.json", entry.id)), &description)?;
    super::sync_dir(&dir)?;
    Ok(entry)
}

/// Every quarantined record, oldest segment and offset first.
pub fn list(wal_dir: &Path) -> Result<Vec<Quarantined>> {
    let dir = dir(wal_dir);
    let entries = match std::fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => return Err(Error::OpenDir { path: dir, source }),
    };
    let mut found = Vec::new();
    for entry in entries {
        let path = entry
            .map_err(|source| Error::OpenDir {
                path: dir.clone(),
                source,
            })?
            .path();
        if path.extension().is_some_and(|e| e == "json") {
            found.push(read_description(&path)?);
        }
    }
    found.sort_by_key(|q| (q.segment, q.offset));
    Ok(found)
}

fn read_description(path: &Path) -> Result<Quarantined> {
    let data = std::fs::read(path).map_err(|source| Error::Read {
        path: path.to_owned(),
        source,
    })?;
    serde_json::from_slice(&data).map_err(|source| Error::Read {
        path: path.to_owned(),
        source: source.into(),
    })
}

/// One quarantined record with its description.
pub fn show(wal_dir: &Path, id: &str) -> Result<(Quarantined, Record)> {
    let dir = dir(wal_dir);
    let valid = !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit() || b == b'-');
    let description = dir.join(format!("{id}.json"));
    if !valid || !description.exists() {
        return Err(Error::UnknownQuarantined { id: id.to_owned() });
    }
    let entry = read_description(&description)?;
    let record_path = dir.join(format!("{id}.record"));
    let mut contents = read_segment(&record_path)?;
    let record = contents.records.pop().ok_or_else(|| Error::Read {
        path: record_path,
        source: std::io::Error::other("the quarantined record is damaged"),
    })?;
    Ok((entry, record))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_quarantined_record_is_listed_and_read_back_unchanged() {
        let dir = tempfile::tempdir().unwrap();
        let record = Record {
            kind: super::super::EVENT,
            project_id: 3,
            issue_id: -9,
            received_ms: 1_700_000_000_000,
            grouping_hash: format!("{:032x}", 5),
            project: "shop".into(),
            json: b"{\"broken\": [".to_vec(),
        };
        assert_eq!(list(dir.path()).unwrap(), vec![]);
        let entry = quarantine(dir.path(), 7, 4096, &record, "bad json").unwrap();
        assert_eq!(entry.id, "00000000000000000007-000000004096");
        assert_eq!(list(dir.path()).unwrap(), vec![entry.clone()]);
        let (shown, read) = show(dir.path(), &entry.id).unwrap();
        assert_eq!(shown, entry);
        assert_eq!(read, record);
        assert!(matches!(
            show(dir.path(), "../etc/passwd"),
            Err(Error::UnknownQuarantined { .. })
        ));
    }
}
