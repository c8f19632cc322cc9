//! The write-ahead log: an acknowledged event is on disk.
//!
//! One writer thread owns the current segment. Requests hand it their encoded records and wait;
//! the thread gathers every request that arrived within the commit window (or until the batch
//! size is reached), writes them, calls `sync_data` once for all of them (group commit), appends
//! the events to the in-memory [`Buffer`] and only then answers. Because the same thread appends
//! to the buffer and rotates segments, a rotation is an exact cut: everything in the segments up
//! to the cut is in the batches handed to the flusher, and nothing after it is.
//!
//! Segments are `<dir>/<seq:020>.wal`. They are deleted only after the Parquet files and the
//! manifest that contain their events are durable ([`Wal::remove_upto`]).

pub mod quarantine;
mod record;
pub mod replay;

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use datafusion::arrow::array::RecordBatch;
use tokio::sync::oneshot;

pub use record::{EVENT, Fields, Record, SegmentContents, encode, read_segment};
pub use replay::{Logged, ReplayError};

use crate::buffer::{Buffer, Taken};

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read WAL segment {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot open WAL directory {path}: {source}")]
    OpenDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot write WAL segment {path}: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot remove WAL segment {path}: {source}")]
    Remove {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the WAL writer has stopped")]
    Stopped,
    #[error("cannot quarantine an unreadable WAL record in {path}: {source}")]
    Quarantine {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("no quarantined WAL record {id:?}: `faultline wal quarantine list` shows them")]
    UnknownQuarantined { id: String },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// A short reason for clients, without the server's paths: "no space left on device".
    pub fn client_reason(&self) -> String {
        match self {
            Self::Read { source, .. }
            | Self::OpenDir { source, .. }
            | Self::Write { source, .. }
            | Self::Remove { source, .. }
            | Self::Quarantine { source, .. } => io_reason(source),
            Self::Stopped => "the log writer has stopped".to_owned(),
            Self::UnknownQuarantined { .. } => "unknown record".to_owned(),
        }
    }
}

/// An I/O error's kind in words, e.g. "no space left on device".
fn io_reason(err: &std::io::Error) -> String {
    match err.kind() {
        std::io::ErrorKind::StorageFull => "no space left on device".to_owned(),
        std::io::ErrorKind::QuotaExceeded => "disk quota exceeded".to_owned(),
        std::io::ErrorKind::PermissionDenied => "permission denied".to_owned(),
        std::io::ErrorKind::ReadOnlyFilesystem => "read-only file system".to_owned(),
        kind => format!("I/O error: {kind}"),
    }
}
/// Settings of the writer thread.
#[derive(Debug, Clone)]
pub struct WalOptions {
    pub commit_window: Duration,
    pub max_batch_bytes: usize,
    pub segment_size: u64,
}

/// The events and item rows handed to the flusher by a rotation.
#[derive(Debug)]
pub struct Rotation {
    pub flush_id: u64,
    pub batches: Vec<RecordBatch>,
    /// The item rows, one entry per table.
    pub items: Vec<crate::items::ItemBatch>,
    /// Every segment with a sequence number up to this one is covered by `batches`
    /// (and by earlier rotations).
    pub upto: u64,
}

enum Command {
    Append {
        data: Vec<u8>,
        logged: Logged,
        reply: oneshot::Sender<Result<()>>,
    },
    Rotate {
        reply: oneshot::Sender<Result<Rotation>>,
    },
}

/// Handle to the WAL writer thread. Dropping every handle stops the thread.
#[derive(Clone)]
pub struct Wal {
    tx: mpsc::Sender<Command>,
    dir: PathBuf,
    unflushed: Arc<AtomicU64>,
    /// Why the last commit failed, until a commit or [`Wal::check_writable`] succeeds.
    failure: Arc<parking_lot::Mutex<Option<String>>>,
}

/// Lists the segments in `dir` with their sequence numbers, oldest first.
pub fn list_segments(dir: &Path) -> Result<Vec<(u64, PathBuf)>> {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => {
            return Err(Error::OpenDir {
                path: dir.to_owned(),
                source,
            });
        }
    };
    let mut segments: Vec<_> = entries
        .filter_map(|entry| {
            let path = entry.ok()?.path();
            let seq = path
                .file_name()?
                .to_str()?
                .strip_suffix(".wal")?
                .parse()
                .ok()?;
            Some((seq, path))
        })
        .collect();
    segments.sort();
    Ok(segments)
}

fn segment_path(dir: &Path, seq: u64) -> PathBuf {
    dir.join(format!("{seq:020}.wal"))
}

fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|source| Error::OpenDir {
            path: dir.to_owned(),
            source,
        })
}

impl Wal {
    /// Starts the writer thread on a new segment numbered after every existing one.
    /// Existing segments are left alone (replay them first).
    pub fn start(dir: &Path, options: WalOptions, buffer: Arc<Buffer>) -> Result<Self> {
        std::fs::create_dir_all(dir).map_err(|source| Error::OpenDir {
            path: dir.to_owned(),
            source,
        })?;
        let existing = list_segments(dir)?;
        let unflushed: u64 = existing
            .iter()
            .filter_map(|(_, p)| p.metadata().ok())
            .map(|m| m.len())
            .sum();
        let next = existing.last().map_or(1, |(seq, _)| seq + 1);
        let segment = Segment::create(dir, next)?;
        let (tx, rx) = mpsc::channel();
        let unflushed = Arc::new(AtomicU64::new(unflushed));
        let failure = Arc::new(parking_lot::Mutex::new(None));
        let mut writer = Writer {
            failure: Arc::clone(&failure),
            dir: dir.to_owned(),
            options,
            buffer,
            segment,
            flush_id: 0,
            unflushed: Arc::clone(&unflushed),
        };
        std::thread::Builder::new()
            .name("faultline-wal".into())
            .spawn(move || writer.run(rx))
            .map_err(|source| Error::OpenDir {
                path: dir.to_owned(),
                source,
            })?;
        Ok(Self {
            tx,
            dir: dir.to_owned(),
            unflushed,
            failure,
        })
    }

    /// Logs the events and item rows encoded in `data`. When this returns `Ok`, the records
    /// are fsynced and `logged` is in the buffer (visible to queries).
    pub async fn append(&self, data: Vec<u8>, logged: Logged) -> Result<()> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Command::Append {
                data,
                logged,
                reply,
            })
            .map_err(|_| Error::Stopped)?;
        rx.await.map_err(|_| Error::Stopped)?
    }

    /// Closes the current segment and hands over every buffered event up to it.
    pub async fn rotate(&self) -> Result<Rotation> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .send(Command::Rotate { reply })
            .map_err(|_| Error::Stopped)?;
        rx.await.map_err(|_| Error::Stopped)?
    }

    /// Deletes the segments up to `upto` (their events are durable in Parquet).
    pub fn remove_upto(&self, upto: u64) -> Result<()> {
        for (seq, path) in list_segments(&self.dir)? {
            if seq > upto {
                break;
            }
            let len = path.metadata().map(|m| m.len()).unwrap_or(0);
            std::fs::remove_file(&path).map_err(|source| Error::Remove {
                path: path.clone(),
                source,
            })?;
            let _ = self
                .unflushed
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| {
                    Some(v.saturating_sub(len))
                });
        }
        sync_dir(&self.dir)
    }

    /// `Err(reason)` while the WAL cannot be written (e.g. the disk is full).
    ///
    /// After a failed commit, this writes and fsyncs a probe file of [`PROBE_BYTES`] beside the
    /// segments (and removes it): when that succeeds, there is room again and the failure is
    /// cleared, so a node taken out of rotation by its readiness check comes back on its own.
    /// Blocking I/O: call it off the async threads.
    pub fn check_writable(&self) -> std::result::Result<(), String> {
        let Some(reason) = self.failure.lock().clone() else {
            return Ok(());
        };
        let probe = self.dir.join("write-probe.tmp");
        let written = File::create(&probe).and_then(|mut f| {
            f.write_all(&vec![0u8; PROBE_BYTES])?;
            f.sync_data()
        });
        let _ = std::fs::remove_file(&probe);
        match written {
            Ok(()) => {
                *self.failure.lock() = None;
                Ok(())
            }
            Err(_) => Err(reason),
        }
    }

    /// Bytes logged but not yet flushed to Parquet.
    pub fn unflushed_bytes(&self) -> u64 {
        self.unflushed.load(Ordering::Relaxed)
    }
}

/// Size of the probe written by [`Wal::check_writable`]: a commit of typical size.
pub const PROBE_BYTES: usize = 1024 * 1024;

struct Segment {
    seq: u64,
    path: PathBuf,
    file: File,
    len: u64,
}

impl Segment {
    fn create(dir: &Path, seq: u64) -> Result<Self> {
        let path = segment_path(dir, seq);
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .map_err(|source| Error::Write {
                path: path.clone(),
                source,
            })?;
        sync_dir(dir)?;
        Ok(Self {
            seq,
            path,
            file,
            len: 0,
        })
    }

    /// Writes and fsyncs; on failure the segment is cut back to its last good length.
    fn write(&mut self, data: &[u8]) -> Result<()> {
        let result = self
            .file
            .write_all(data)
            .and_then(|()| self.file.sync_data());
        match result {
            Ok(()) => {
                self.len += data.len() as u64;
                Ok(())
            }
            Err(source) => {
                let _ = self.file.set_len(self.len);
                Err(Error::Write {
                    path: self.path.clone(),
                    source,
                })
            }
        }
    }
}

struct Writer {
    dir: PathBuf,
    options: WalOptions,
    buffer: Arc<Buffer>,
    segment: Segment,
    flush_id: u64,
    unflushed: Arc<AtomicU64>,
    failure: Arc<parking_lot::Mutex<Option<String>>>,
}

struct Pending {
    logged: Logged,
    reply: oneshot::Sender<Result<()>>,
}

impl Writer {
    fn run(&mut self, rx: mpsc::Receiver<Command>) {
        let mut data = Vec::new();
        let mut pending: Vec<Pending> = Vec::new();
        while let Ok(first) = rx.recv() {
            let mut rotate = Vec::new();
            let started = Instant::now();
            let mut next = Some(first);
            loop {
                match next.take() {
                    Some(Command::Append {
                        data: d,
                        logged,
                        reply,
                    }) => {
                        data.extend_from_slice(&d);
                        pending.push(Pending { logged, reply });
                    }
                    Some(Command::Rotate { reply }) => rotate.push(reply),
                    None => {}
                }
                if !rotate.is_empty() || data.len() >= self.options.max_batch_bytes {
                    break;
                }
                // Take whatever is already queued; wait for more only within the window. The
                // thread sleeps out the rest of the window and then takes everything that came
                // meanwhile, instead of waking up for each request as it arrives (a context
                // switch per request, and a futex wake for every sender).
                match rx.try_recv() {
                    Ok(cmd) => next = Some(cmd),
                    Err(mpsc::TryRecvError::Disconnected) => break,
                    Err(mpsc::TryRecvError::Empty) => {
                        let left = self.options.commit_window.saturating_sub(started.elapsed());
                        if left.is_zero() {
                            break;
                        }
                        std::thread::sleep(left);
                    }
                }
            }
            if !pending.is_empty() {
                self.commit(&data, &mut pending);
                data.clear();
            }
            for reply in rotate {
                let _ = reply.send(self.rotate());
            }
        }
    }

    fn commit(&mut self, data: &[u8], pending: &mut Vec<Pending>) {
        let result = self.segment.write(data);
        crate::metrics::wal_commit(data.len(), result.is_ok());
        match result {
            Ok(()) => {
                *self.failure.lock() = None;
                self.unflushed
                    .fetch_add(data.len() as u64, Ordering::Relaxed);
                for p in pending.iter() {
                    self.buffer.append_logged(&p.logged);
                }
                for p in pending.drain(..) {
                    let _ = p.reply.send(Ok(()));
                }
                if self.segment.len >= self.options.segment_size
                    && let Err(err) = self.next_segment()
                {
                    tracing::error!(cause = %err, "cannot start a new wal segment");
                }
            }
            Err(err) => {
                tracing::error!(cause = %err, "wal commit failed");
                let (kind, message) = match &err {
                    Error::Write { source, .. } => (source.kind(), source.to_string()),
                    other => (std::io::ErrorKind::Other, other.to_string()),
                };
                *self.failure.lock() = Some(io_reason(&std::io::Error::from(kind)));
                for p in pending.drain(..) {
                    let _ = p.reply.send(Err(Error::Write {
                        path: self.segment.path.clone(),
                        source: std::io::Error::new(kind, message.clone()),
                    }));
                }
            }
        }
    }

    fn next_segment(&mut self) -> Result<()> {
        self.segment = Segment::create(&self.dir, self.segment.seq + 1)?;
        Ok(())
    }

    fn rotate(&mut self) -> Result<Rotation> {
        let upto = self.segment.seq;
        self.next_segment()?;
        self.flush_id += 1;
        let Taken { events, items } = self.buffer.take_for_flush(self.flush_id);
        Ok(Rotation {
            flush_id: self.flush_id,
            batches: events,
            items,
            upto,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::buffer::FlushThresholds;
    use crate::store::manifest::Manifest;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn requests_within_the_commit_window_are_answered_by_one_commit() {
        let dir = tempfile::tempdir().unwrap();
        let buffer = Arc::new(Buffer::new(
            Manifest::default(),
            FlushThresholds {
                max_events: usize::MAX,
                max_bytes: usize::MAX,
            },
        ));
        let window = Duration::from_millis(300);
        let wal = Wal::start(
            dir.path(),
            WalOptions {
                commit_window: window,
                max_batch_bytes: 1 << 20,
                segment_size: 1 << 30,
            },
            Arc::clone(&buffer),
        )
        .unwrap();
        let started = Instant::now();
        let appends = (0..8).map(|_| {
            let wal = wal.clone();
            async move {
                let event = crate::events::StoredEvent::for_test(1, 1, r#"{"message":"m"}"#);
                let logged = Logged {
                    events: vec![event],
                    items: Vec::new(),
                };
                wal.append(vec![7; 100], logged).await.unwrap();
                started.elapsed()
            }
        });
        let answered = futures::future::join_all(appends).await;
        let first = *answered.iter().min().unwrap();
        let last = *answered.iter().max().unwrap();
        assert!(
            first >= window - Duration::from_millis(50),
            "answered after {first:?}, before the window closed"
        );
        assert!(
            last - first < Duration::from_millis(150),
            "answered over {:?}: more than one commit",
            last - first
        );
        let rows: usize = buffer.snapshot().batches.iter().map(|b| b.num_rows()).sum();
        assert_eq!(rows, 8);
        let (_, segment) = list_segments(dir.path()).unwrap().pop().unwrap();
        assert_eq!(std::fs::metadata(segment).unwrap().len(), 800);
    }
}
