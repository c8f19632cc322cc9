//! The on-disk form of one WAL record and of a segment file.
//!
//! ```text
//! record  = len:u32le crc32(payload):u32le payload
//! payload = version:u8(=2) kind:u8 body          (written now)
//!         | version:u8(=1) body                  (written before items had tables: an event)
//! body    = project_id:u64le issue_id:i64le received_ms:i64le grouping_hash:[u8;16]
//!           name_len:u16le name json
//! ```
//! `kind` is 0 for an event (its normalized JSON, with its issue and grouping hash) and the
//! code of an item table for a row of that table (`items::ItemTable::code`; the JSON is the
//! row, issue and hash are zero). A segment is records back to back. A crash can leave a torn record at the end of the newest
//! segment; reading stops there (its request was never acknowledged).

use std::io::Read;
use std::path::Path;

use super::{Error, Result};

const VERSION: u8 = 2;
/// The first version: every record an event, no kind byte.
const VERSION_1: u8 = 1;
const HEADER: usize = 8;
/// Bytes of `body` before the name.
const BODY_FIXED: usize = 8 + 8 + 8 + 16 + 2;

/// The kind of a record that holds an event.
pub const EVENT: u8 = 0;

/// One logged event or item row.
#[derive(Debug, Clone, PartialEq)]
pub struct Record {
    /// [`EVENT`], or the code of the item table the row belongs to.
    pub kind: u8,
    pub project_id: u64,
    pub issue_id: i64,
    pub received_ms: i64,
    /// The grouping hash as 32 lowercase hex characters.
    pub grouping_hash: String,
    pub project: String,
    /// The normalized event JSON.
    pub json: Vec<u8>,
}

impl Record {
    fn decode(payload: &[u8]) -> Option<Self> {
        let (kind, body) = match payload.split_first()? {
            (&VERSION, rest) => rest.split_first().map(|(kind, body)| (*kind, body))?,
            (&VERSION_1, body) => (EVENT, body),
            _ => return None,
        };
        if body.len() < BODY_FIXED {
            return None;
        }
        let u64_at = |at: usize| {
            let mut bytes = [0u8; 8];
            bytes.copy_from_slice(&body[at..at + 8]);
            u64::from_le_bytes(bytes)
        };
        let name_len = usize::from(u16::from_le_bytes([body[40], body[41]]));
        let name = body.get(BODY_FIXED..BODY_FIXED + name_len)?;
        let project = std::str::from_utf8(name).ok()?;
        Some(Self {
            kind,
            project_id: u64_at(0),
            issue_id: u64_at(8) as i64,
            received_ms: u64_at(16) as i64,
            grouping_hash: hex::encode(&body[24..40]),
            project: project.to_owned(),
            json: body[BODY_FIXED + name_len..].to_vec(),
        })
    }
}

/// The fields of a record, borrowed: ingest encodes straight from the event, without copies.
#[derive(Debug, Clone, Copy)]
pub struct Fields<'a> {
    /// [`EVENT`] or an item table's code.
    pub kind: u8,
    pub project_id: u64,
    pub issue_id: i64,
    pub received_ms: i64,
    pub grouping_hash: &'a str,
    pub project: &'a str,
    pub json: &'a [u8],
}

/// Appends one framed record to `out`.
pub fn encode(out: &mut Vec<u8>, fields: Fields<'_>) {
    let mut hash = [0u8; 16];
    // A hash that is not 32 hex characters is stored as zeros; grouping always gives 32.
    let _ = hex::decode_to_slice(fields.grouping_hash, &mut hash);
    let name = fields.project.as_bytes();
    let name_len = name.len().min(u16::MAX as usize);
    let payload_len = 2 + BODY_FIXED + name_len + fields.json.len();
    out.reserve(HEADER + payload_len);
    let start = out.len();
    out.extend_from_slice(&(payload_len as u32).to_le_bytes());
    out.extend_from_slice(&[0; 4]);
    out.push(VERSION);
    out.push(fields.kind);
    out.extend_from_slice(&fields.project_id.to_le_bytes());
    out.extend_from_slice(&fields.issue_id.to_le_bytes());
    out.extend_from_slice(&fields.received_ms.to_le_bytes());
    out.extend_from_slice(&hash);
    out.extend_from_slice(&(name_len as u16).to_le_bytes());
    out.extend_from_slice(&name[..name_len]);
    out.extend_from_slice(fields.json);
    let crc = crc32fast::hash(&out[start + HEADER..]);
    out[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
}

/// What reading a segment found.
#[derive(Debug, Default)]
pub struct SegmentContents {
    pub records: Vec<Record>,
    /// Byte offset in the segment of each record of `records`, in the same order.
    pub offsets: Vec<u64>,
    /// Byte length of the valid prefix.
    pub valid_len: u64,
    /// True when the segment ends in a torn or corrupt record.
    pub torn: bool,
}

/// Reads every intact record of a segment file.
pub fn read_segment(path: &Path) -> Result<SegmentContents> {
    let mut data = Vec::new();
    std::fs::File::open(path)
        .and_then(|mut f| f.read_to_end(&mut data))
        .map_err(|source| Error::Read {
            path: path.to_owned(),
            source,
        })?;
    let mut contents = SegmentContents::default();
    let mut at = 0usize;
    while at < data.len() {
        let Some(header) = data.get(at..at + HEADER) else {
            contents.torn = true;
            break;
        };
        let len = u32::from_le_bytes(header[..4].try_into().unwrap()) as usize;
        let crc = u32::from_le_bytes(header[4..].try_into().unwrap());
        let Some(payload) = data.get(at + HEADER..at + HEADER + len) else {
            contents.torn = true;
            break;
        };
        let record = (crc32fast::hash(payload) == crc)
            .then(|| Record::decode(payload))
            .flatten();
        let Some(record) = record else {
            contents.torn = true;
            break;
        };
        contents.records.push(record);
        contents.offsets.push(at as u64);
        at += HEADER + len;
    }
    contents.valid_len = at as u64;
    Ok(contents)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode_record(record: &Record, out: &mut Vec<u8>) {
        encode(
            out,
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
    }

    fn record(i: u8) -> Record {
        Record {
            kind: i % 3,
            project_id: 7,
            issue_id: -3 + i as i64,
            received_ms: 1_700_000_000_000,
            grouping_hash: format!("{:032x}", i),
            project: "shop".into(),
            json: format!("{{\"n\":{i}}}").into_bytes(),
        }
    }

    #[test]
    fn records_round_trip_and_a_torn_tail_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("1.wal");
        let mut data = Vec::new();
        encode_record(&record(1), &mut data);
        encode_record(&record(2), &mut data);
        let full = data.len();
        encode_record(&record(3), &mut data);
        data.truncate(data.len() - 3);
        std::fs::write(&path, &data).unwrap();
        let contents = read_segment(&path).unwrap();
        assert_eq!(contents.records, vec![record(1), record(2)]);
        assert!(contents.torn);
        assert_eq!(contents.valid_len, full as u64);
    }

    #[test]
    fn a_flipped_bit_stops_reading() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("1.wal");
        let mut data = Vec::new();
        encode_record(&record(1), &mut data);
        let first = data.len();
        encode_record(&record(2), &mut data);
        data[first + 20] ^= 1;
        std::fs::write(&path, &data).unwrap();
        let contents = read_segment(&path).unwrap();
        assert_eq!(contents.records, vec![record(1)]);
        assert!(contents.torn);
    }

    /// A record as the first version of the encoder wrote it (version 1, no kind byte).
    fn encode_v1(record: &Record, out: &mut Vec<u8>) {
        let mut payload = vec![1u8];
        payload.extend_from_slice(&record.project_id.to_le_bytes());
        payload.extend_from_slice(&record.issue_id.to_le_bytes());
        payload.extend_from_slice(&record.received_ms.to_le_bytes());
        payload.extend_from_slice(&hex::decode(&record.grouping_hash).unwrap());
        payload.extend_from_slice(&(record.project.len() as u16).to_le_bytes());
        payload.extend_from_slice(record.project.as_bytes());
        payload.extend_from_slice(&record.json);
        out.extend_from_slice(&(payload.len() as u32).to_le_bytes());
        out.extend_from_slice(&crc32fast::hash(&payload).to_le_bytes());
        out.extend_from_slice(&payload);
    }

    #[test]
    fn version_1_records_read_as_events_beside_version_2_records() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("1.wal");
        let mut data = Vec::new();
        let old = Record {
            kind: EVENT,
            ..record(4)
        };
        encode_v1(&old, &mut data);
        // The bytes of a version 1 record, as the first encoder laid them out.
        assert_eq!(data[8], 1);
        assert_eq!(data.len(), 8 + 1 + 8 + 8 + 8 + 16 + 2 + 4 + old.json.len());
        let new = Record {
            kind: 3,
            ..record(5)
        };
        encode_record(&new, &mut data);
        std::fs::write(&path, &data).unwrap();
        let contents = read_segment(&path).unwrap();
        assert_eq!(contents.records, vec![old, new]);
        assert!(!contents.torn);
    }

    #[test]
    fn an_unknown_version_stops_reading() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("1.wal");
        let mut data = Vec::new();
        encode_record(&record(1), &mut data);
        let first = data.len();
        encode_record(&record(2), &mut data);
        data[first + 8] = 3;
        let crc = crc32fast::hash(&data[first + 8..]);
        data[first + 4..first + 8].copy_from_slice(&crc.to_le_bytes());
        std::fs::write(&path, &data).unwrap();
        let contents = read_segment(&path).unwrap();
        assert_eq!(contents.records, vec![record(1)]);
        assert!(contents.torn);
    }
}
