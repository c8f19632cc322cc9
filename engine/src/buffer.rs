//! Events and item rows that are in the WAL but not yet in Parquet, as Arrow batches queries
//! can read at once.
//!
//! Rows are appended to open column builders by the WAL thread; a query or a flush seals them
//! into a batch. A flush moves the sealed batches to a "flushing" set that stays visible until
//! the manifest naming their Parquet files is committed; then both change under one lock, so a
//! query sees every event exactly once: in the buffer or in a file, never both, never neither.

use std::collections::BTreeMap;
use std::sync::Arc;

use datafusion::arrow::array::RecordBatch;
use parking_lot::Mutex;
use tokio::sync::Notify;

use crate::events::{EventBuilder, StoredEvent};
use crate::items::{ItemBatch, ItemTable};
use crate::store::manifest::Manifest;
use crate::wal::Logged;

/// Rows per sealed batch at most.
const SEAL_ROWS: usize = 4096;
/// Bytes of event JSON after which a batch is sealed.
const SEAL_BYTES: usize = 4 * 1024 * 1024;
/// Reserved beyond `SEAL_BYTES`, so the last events of a batch rarely make the column grow.
const SEAL_HEADROOM: usize = 1024 * 1024;

/// When the buffer asks for a flush.
#[derive(Debug, Clone, Copy)]
pub struct FlushThresholds {
    pub max_events: usize,
    pub max_bytes: usize,
}

pub struct Buffer {
    inner: Mutex<Inner>,
    thresholds: FlushThresholds,
    /// Woken when the buffer passes a threshold.
    pub flush_wanted: Notify,
}

struct Inner {
    open: EventBuilder,
    sealed: Vec<RecordBatch>,
    /// Item rows per table (by code): the batches of the requests since the last seal, and
    /// sealed batches.
    items_open: BTreeMap<u8, (&'static ItemTable, Vec<RecordBatch>)>,
    items_sealed: BTreeMap<u8, (&'static ItemTable, Vec<RecordBatch>)>,
    rows: usize,
    bytes: usize,
    flushing: BTreeMap<u64, Taken>,
    manifest: Arc<Manifest>,
}

/// The rows one flush takes: events, and item rows with one batch per table.
#[derive(Debug, Clone, Default)]
pub struct Taken {
    pub events: Vec<RecordBatch>,
    pub items: Vec<ItemBatch>,
}

impl Inner {
    fn passes(&self, thresholds: FlushThresholds) -> bool {
        self.rows >= thresholds.max_events || self.bytes >= thresholds.max_bytes
    }

    fn seal(&mut self) {
        if !self.open.is_empty() {
            let batch = self.open.finish();
            self.sealed.push(batch);
        }
        for (code, (table, batches)) in std::mem::take(&mut self.items_open) {
            let sealed = &mut self
                .items_sealed
                .entry(code)
                .or_insert((table, Vec::new()))
                .1;
            // The batches of one table share its schema, so concatenating cannot fail.
            match datafusion::arrow::compute::concat_batches(&table.schema(), &batches) {
                Ok(batch) => sealed.push(batch),
                Err(_) => sealed.extend(batches),
            }
        }
    }
}

/// A consistent view for one query: the node's manifest and every unflushed row.
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub manifest: Arc<Manifest>,
    pub batches: Vec<RecordBatch>,
    /// Unflushed item rows by table name.
    pub items: BTreeMap<&'static str, Vec<RecordBatch>>,
}

impl Buffer {
    pub fn new(manifest: Manifest, thresholds: FlushThresholds) -> Self {
        Self {
            inner: Mutex::new(Inner {
                open: EventBuilder::with_event_capacity(SEAL_BYTES + SEAL_HEADROOM),
                sealed: Vec::new(),
                items_open: BTreeMap::new(),
                items_sealed: BTreeMap::new(),
                rows: 0,
                bytes: 0,
                flushing: BTreeMap::new(),
                manifest: Arc::new(manifest),
            }),
            thresholds,
            flush_wanted: Notify::new(),
        }
    }

    /// Appends events (called by replay and tests).
    pub fn append(&self, events: &[StoredEvent]) {
        self.append_rows(events, &[]);
    }

    /// Appends what one WAL append logged (called by the WAL thread after it is durable).
    pub fn append_logged(&self, logged: &Logged) {
        self.append_rows(&logged.events, &logged.items);
    }

    fn append_rows(&self, events: &[StoredEvent], items: &[ItemBatch]) {
        let wanted = {
            let mut inner = self.inner.lock();
            for item in items.iter().filter(|i| i.batch.num_rows() > 0) {
                inner.rows += item.batch.num_rows();
                inner.bytes += item.batch.get_array_memory_size();
                inner
                    .items_open
                    .entry(item.table.code)
                    .or_insert((item.table, Vec::new()))
                    .1
                    .push(item.batch.clone());
            }
            for event in events {
                inner.open.append(event);
                inner.rows += 1;
                inner.bytes += event.approximate_size();
            }
            if inner.open.len() >= SEAL_ROWS || inner.open.event_bytes() >= SEAL_BYTES {
                inner.seal();
            }
            inner.passes(self.thresholds)
        };
        if wanted {
            self.flush_wanted.notify_one();
        }
    }

    /// Events and approximate bytes not yet handed to a flush.
    pub fn levels(&self) -> (usize, usize) {
        let inner = self.inner.lock();
        (inner.rows, inner.bytes)
    }

    /// Whether the unflushed rows pass a flush threshold.
    pub fn over_threshold(&self) -> bool {
        self.inner.lock().passes(self.thresholds)
    }

    /// Moves every unflushed row to the flushing set under `flush_id` and returns it.
    pub fn take_for_flush(&self, flush_id: u64) -> Taken {
        let mut inner = self.inner.lock();
        inner.seal();
        let taken = Taken {
            events: std::mem::take(&mut inner.sealed),
            items: std::mem::take(&mut inner.items_sealed)
                .into_values()
                .flat_map(|(table, batches)| {
                    batches
                        .into_iter()
                        .map(move |batch| ItemBatch { table, batch })
                })
                .collect(),
        };
        inner.rows = 0;
        inner.bytes = 0;
        if !taken.events.is_empty() || !taken.items.is_empty() {
            inner.flushing.insert(flush_id, taken.clone());
        }
        taken
    }

    /// The flush `flush_id` is in `manifest`: stop serving its rows from memory.
    pub fn complete_flush(&self, flush_id: u64, manifest: Manifest) {
        let mut inner = self.inner.lock();
        inner.flushing.remove(&flush_id);
        inner.manifest = Arc::new(manifest);
    }

    /// The current manifest of this node.
    pub fn manifest(&self) -> Arc<Manifest> {
        Arc::clone(&self.inner.lock().manifest)
    }

    pub fn snapshot(&self) -> Snapshot {
        let mut inner = self.inner.lock();
        inner.seal();
        let mut batches: Vec<RecordBatch> = inner
            .flushing
            .values()
            .flat_map(|t| t.events.iter().cloned())
            .collect();
        batches.extend(inner.sealed.iter().cloned());
        let mut items: BTreeMap<&'static str, Vec<RecordBatch>> = BTreeMap::new();
        let flushing = inner.flushing.values().flat_map(|t| &t.items);
        let sealed = inner
            .items_sealed
            .values()
            .flat_map(|(table, batches)| batches.iter().map(move |batch| (*table, batch)));
        for (table, batch) in flushing.map(|i| (i.table, &i.batch)).chain(sealed) {
            items.entry(table.name).or_default().push(batch.clone());
        }
        Snapshot {
            manifest: Arc::clone(&inner.manifest),
            batches,
            items,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn events(n: usize) -> Vec<StoredEvent> {
        (0..n)
            .map(|_| StoredEvent::for_test(1, 1, r#"{"message":"m"}"#))
            .collect()
    }

    #[test]
    fn the_rows_a_flush_takes_no_longer_count_towards_the_next_one() {
        let buffer = Buffer::new(
            Manifest::default(),
            FlushThresholds {
                max_events: 3,
                max_bytes: usize::MAX,
            },
        );
        buffer.append(&events(2));
        assert!(!buffer.over_threshold());
        // Appends that land after the threshold (before the flusher takes the rows) each ask
        // for a flush again.
        buffer.append(&events(1));
        buffer.append(&events(1));
        assert!(buffer.over_threshold());
        let taken: usize = buffer
            .take_for_flush(1)
            .events
            .iter()
            .map(|b| b.num_rows())
            .sum();
        assert_eq!(taken, 4);
        assert!(
            !buffer.over_threshold(),
            "the wake-ups those appends left behind find nothing to flush"
        );
        assert_eq!(
            buffer
                .snapshot()
                .batches
                .iter()
                .map(|b| b.num_rows())
                .sum::<usize>(),
            4,
            "still visible until the manifest names their files"
        );
        buffer.complete_flush(1, Manifest::default());
        assert!(buffer.snapshot().batches.is_empty());
    }
}
