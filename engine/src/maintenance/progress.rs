//! Progress of long operations (backups, restores, compaction): a bar when stderr is a
//! terminal, otherwise a log line every few seconds and at the end.

use std::io::IsTerminal;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use parking_lot::Mutex;

/// How often a log line reports progress when there is no terminal.
const LOG_EVERY: Duration = Duration::from_secs(5);

/// Counts files and bytes of one operation.
pub struct Progress {
    what: &'static str,
    total_files: u64,
    bar: Option<ProgressBar>,
    state: Mutex<State>,
}

struct State {
    files: u64,
    bytes: u64,
    last_log: Instant,
}

impl Progress {
    /// A bar on a terminal; log lines otherwise. `interactive` is false inside a server.
    pub fn new(what: &'static str, total_files: u64, total_bytes: u64, interactive: bool) -> Self {
        let bar = (interactive && std::io::stderr().is_terminal()).then(|| {
            let bar =
                ProgressBar::with_draw_target(Some(total_bytes), ProgressDrawTarget::stderr());
            bar.set_style(
                ProgressStyle::with_template(
                    "{msg} [{bar:30}] {binary_bytes}/{binary_total_bytes} {eta}",
                )
                .expect("template is valid")
                .progress_chars("=> "),
            );
            bar.set_message(what);
            bar
        });
        tracing::info!(
            operation = what,
            files = total_files,
            bytes = total_bytes,
            "started"
        );
        Self {
            what,
            total_files,
            bar,
            state: Mutex::new(State {
                files: 0,
                bytes: 0,
                last_log: Instant::now(),
            }),
        }
    }

    /// One more file of `bytes` done.
    pub fn file_done(&self, bytes: u64) {
        let mut state = self.state.lock();
        state.files += 1;
        state.bytes += bytes;
        match &self.bar {
            Some(bar) => bar.inc(bytes),
            None if state.last_log.elapsed() >= LOG_EVERY => {
                state.last_log = Instant::now();
                tracing::info!(
                    operation = self.what,
                    files = state.files,
                    of = self.total_files,
                    bytes = state.bytes,
                    "progress"
                );
            }
            None => {}
        }
    }

    /// The operation ended.
    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
        let state = self.state.lock();
        tracing::info!(
            operation = self.what,
            files = state.files,
            bytes = state.bytes,
            "done"
        );
    }
}
