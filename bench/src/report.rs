//! The figures, printed with the targets they are held to.

use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

use anyhow::Result;

use crate::load::Run;

/// Bytes in the data directory after the shutdown flush.
#[derive(Debug, Default)]
pub(crate) struct Disk {
    pub(crate) total: u64,
    pub(crate) events_parquet: u64,
    pub(crate) parquet_files: usize,
    pub(crate) wal: u64,
}

impl Disk {
    pub(crate) fn measure(root: &Path) -> Result<Self> {
        let mut disk = Self::default();
        let mut stack = vec![root.join("data")];
        while let Some(dir) = stack.pop() {
            for entry in std::fs::read_dir(&dir)? {
                let entry = entry?;
                let meta = entry.metadata()?;
                if meta.is_dir() {
                    stack.push(entry.path());
                    continue;
                }
                let path = entry.path().to_string_lossy().into_owned();
                disk.total += meta.len();
                if path.contains("/events/") && path.ends_with(".parquet") {
                    disk.events_parquet += meta.len();
                    disk.parquet_files += 1;
                }
                if path.contains("/wal/") {
                    disk.wal += meta.len();
                }
            }
        }
        Ok(disk)
    }
}

pub(crate) struct Report {
    pub(crate) events: usize,
    pub(crate) connections: usize,
    pub(crate) run: Run,
    pub(crate) cpu_ingest: Duration,
    pub(crate) cpu_total: Duration,
    pub(crate) rss_peak: u64,
    /// VmHWM when the last event was acknowledged (before queries and the shutdown flush).
    pub(crate) rss_at_last_ack: u64,
    pub(crate) visible_after: Duration,
    pub(crate) issues: u64,
    pub(crate) disk: Disk,
    pub(crate) restart_ready: Duration,
    /// (label, median time, rows)
    pub(crate) queries: Vec<(String, Duration, usize)>,
    pub(crate) wire_bytes: f64,
    pub(crate) uncompressed_bytes: f64,
    /// Events grouped during the run and the seconds the server spent grouping them.
    pub(crate) grouping: (u64, f64),
    /// Events scrubbed and enriched during the run and the seconds the server spent on it.
    pub(crate) processing: (u64, f64),
}

fn verdict(ok: bool) -> &'static str {
    if ok { "ok" } else { "MISSED" }
}

impl Report {
    pub(crate) fn render(&self) -> String {
        let run = &self.run;
        let accepted = run.accepted.max(1) as f64;
        let rate = run.accepted as f64 / run.elapsed.as_secs_f64();
        let us = |d: Duration| d.as_secs_f64() * 1e6 / accepted;
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        let mb = self.rss_peak as f64 / 1e6;
        let total_per_event = self.disk.total as f64 / accepted;
        let mut out = String::new();
        let w = &mut out;
        let _ = writeln!(w, "faultline ingest benchmark");
        let _ = writeln!(
            w,
            "  sent                 {} events over {} keep-alive connections ({:.0} B envelopes, {:.0} B brotli)",
            self.events, self.connections, self.uncompressed_bytes, self.wire_bytes
        );
        let _ = writeln!(
            w,
            "  accepted             {} (rejected by status {:?}, connection errors {})",
            run.accepted, run.rejected, run.failed
        );
        let _ = writeln!(w, "  issues               {}", self.issues);
        let _ = writeln!(
            w,
            "  throughput           {rate:.0} events/s   target >= 5000: {}",
            verdict(rate >= 5000.0)
        );
        let (grouped, grouping_seconds) = self.grouping;
        let _ = writeln!(
            w,
            "  grouping / event     {:.1} us over {grouped} events (faultline_grouping_seconds / faultline_grouped_events)",
            grouping_seconds * 1e6 / grouped.max(1) as f64
        );
        let (processed, processing_seconds) = self.processing;
        let _ = writeln!(
            w,
            "  scrub+enrich / event {:.1} us over {processed} events (faultline_processing_seconds / faultline_processed_events)",
            processing_seconds * 1e6 / processed.max(1) as f64
        );
        let _ = writeln!(
            w,
            "  latency              p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
            ms(run.percentile(50.0)),
            ms(run.percentile(99.0)),
            ms(run.percentile(100.0))
        );
        let _ = writeln!(
            w,
            "  server CPU / event   {:.0} us while ingesting; {:.0} us over its whole run (incl. SQL polling, flush, shutdown)   target <= 200: {}",
            us(self.cpu_ingest),
            us(self.cpu_total),
            verdict(us(self.cpu_total) <= 200.0)
        );
        let _ = writeln!(
            w,
            "  load generator CPU   {:.0} us / event",
            us(run.generator_cpu)
        );
        let _ = writeln!(
            w,
            "  server peak RSS      {mb:.1} MB (VmHWM; {:.1} MB at the last ack)   target <= 200 MB: {}",
            self.rss_at_last_ack as f64 / 1e6,
            verdict(mb <= 200.0)
        );
        let _ = writeln!(
            w,
            "  visible to SQL       {:.3} s after the last acknowledgement   target <= 2 s: {}",
            self.visible_after.as_secs_f64(),
            verdict(self.visible_after <= Duration::from_secs(2))
        );
        let _ = writeln!(
            w,
            "  on disk after flush  {:.0} B/event in all ({} B), of which events Parquet {:.0} B/event in {} files, WAL {} B   target <= 1024: {}",
            total_per_event,
            self.disk.total,
            self.disk.events_parquet as f64 / accepted,
            self.disk.parquet_files,
            self.disk.wal,
            verdict(total_per_event <= 1024.0)
        );
        let _ = writeln!(
            w,
            "  restart to ready     {:.2} s (after the flush)",
            self.restart_ready.as_secs_f64()
        );
        for (label, median, rows) in &self.queries {
            let _ = writeln!(
                w,
                "  query                {:>8.1} ms median of 5  {label} ({rows} rows)",
                ms(*median)
            );
        }
        out
    }
}
