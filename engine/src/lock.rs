//! One writer per WAL: `faultline serve` holds an exclusive lock on `<wal dir>/faultline.lock`
//! for as long as it runs.
//!
//! The lock is an advisory `flock` taken with the standard library's [`File::try_lock`]: the
//! kernel releases it when the process exits, however it exits, so a crashed server never leaves
//! a stale lock behind. The file also records who holds it (pid, host, node id, start time), so a
//! second server refuses at once with a message naming the holder. The record is only for
//! people; the lock itself is what counts.
//!
//! Readers (`faultline query`, `faultline issues ...`) never take the lock: they read the WAL
//! without changing it and the object store through versioned manifests. Maintenance commands
//! (`compact run`, `retention run`) change manifests only by create-only commits, which are
//! safe beside a running server, so they do not take it either.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use chrono::Utc;

/// The lock file's name inside the WAL directory.
pub const LOCK_FILE: &str = "faultline.lock";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(
        "another faultline server already writes to the WAL in {dir}: {holder}. Stop it first, or give this one its own storage.data_dir (or wal.dir)"
    )]
    Held { dir: PathBuf, holder: String },
    #[error("cannot lock {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// The exclusive lock of one WAL directory, released when dropped (or when the process ends).
#[derive(Debug)]
pub struct WriterLock {
    _file: File,
    path: PathBuf,
}

impl WriterLock {
    /// Takes the lock of `wal_dir` (created if missing) for this process, or says who has it.
    pub fn acquire(wal_dir: &Path, node_id: &str) -> Result<Self, Error> {
        let path = wal_dir.join(LOCK_FILE);
        let io = |source| Error::Io {
            path: path.clone(),
            source,
        };
        std::fs::create_dir_all(wal_dir).map_err(io)?;
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&path)
            .map_err(io)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut record = String::new();
                // The holder may be rewriting its record this very moment; say so then.
                let _ = file.read_to_string(&mut record);
                let holder = match record.trim() {
                    "" => "a process that has not written its record yet".to_owned(),
                    record => record.to_owned(),
                };
                return Err(Error::Held {
                    dir: wal_dir.to_owned(),
                    holder,
                });
            }
            Err(TryLockError::Error(source)) => return Err(io(source)),
        }
        let host = hostname::get()
            .map(|h| h.to_string_lossy().into_owned())
            .unwrap_or_else(|_| "unknown host".to_owned());
        let record = format!(
            "pid {} on host {host}, node {node_id}, started {}\n",
            std::process::id(),
            Utc::now().format("%Y-%m-%dT%H:%M:%SZ"),
        );
        file.set_len(0).map_err(io)?;
        file.seek(SeekFrom::Start(0)).map_err(io)?;
        file.write_all(record.as_bytes()).map_err(io)?;
        file.sync_all().map_err(io)?;
        tracing::debug!(path = %path.display(), "wal lock taken");
        Ok(Self { _file: file, path })
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_writer_is_refused_with_the_holder_named_until_the_first_lets_go() {
        let dir = tempfile::tempdir().unwrap();
        let wal = dir.path().join("wal");
        let first = WriterLock::acquire(&wal, "node-0").unwrap();
        assert_eq!(first.path(), wal.join(LOCK_FILE));
        let err = WriterLock::acquire(&wal, "node-0").unwrap_err().to_string();
        let pid = format!("pid {} on host ", std::process::id());
        assert!(err.contains(&pid), "{err}");
        assert!(err.contains("node node-0, started 20"), "{err}");
        assert!(err.contains("already writes to the WAL in"), "{err}");
        drop(first);
        let again = WriterLock::acquire(&wal, "node-1").unwrap();
        let record = std::fs::read_to_string(again.path()).unwrap();
        assert!(record.contains("node node-1"), "{record}");
    }
}
