//! The threads queries run on, apart from ingest and the listeners.
//!
//! Planning and execution of every query run on a tokio runtime of their own: its threads have
//! a large stack (virtual memory, only touched pages are used) so that deep but allowed plans
//! are safe in any build, and a higher nice value, so that the kernel prefers the ingest and
//! listener threads while queries use the CPU. DataFusion spawns its partition tasks on the
//! runtime it runs on, so all of a query's work stays here.
//!
//! A query's task is aborted when the caller stops waiting for it ([`Running`] is dropped: the
//! client went away or the time limit passed), and its [`Budget`] is marked cancelled, which the
//! function wrappers (`functions`) check before every call.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use tokio::runtime::{Builder, Runtime};
use tokio::task::JoinHandle;

/// Stack of each query thread: virtual memory, so only what deep plans touch is used.
pub(crate) const STACK_SIZE: usize = 64 * 1024 * 1024;

/// A tokio runtime for queries; when dropped, a thread of its own stops it and joins its threads.
pub(crate) struct QueryRuntime {
    runtime: Option<Runtime>,
}

impl QueryRuntime {
    /// `threads` workers at nice value `nice`. 0 threads: one per core, and at least one per
    /// query allowed to run at once (`concurrent`): a function call cannot be preempted by
    /// tokio, so with fewer threads a few CPU-heavy queries would hold every thread and keep
    /// light queries waiting; with more, the kernel shares the cores between them.
    pub(crate) fn new(threads: usize, concurrent: usize, nice: i32) -> std::io::Result<Self> {
        let threads = if threads == 0 {
            let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
            cores.max(concurrent)
        } else {
            threads
        };
        let runtime = Builder::new_multi_thread()
            .worker_threads(threads)
            .thread_name("faultline-query")
            .thread_stack_size(STACK_SIZE)
            .on_thread_start(move || lower_priority(nice))
            .enable_all()
            .build()?;
        Ok(Self {
            runtime: Some(runtime),
        })
    }

    /// Runs `work` on the query threads. Dropping the returned [`Running`] aborts it and
    /// cancels `budget`.
    pub(crate) fn spawn<F>(&self, budget: Option<Arc<Budget>>, work: F) -> Running<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let runtime = self.runtime.as_ref().expect("the runtime lives until drop");
        Running {
            handle: runtime.spawn(work),
            budget,
        }
    }
}

/// How long a dropped runtime's threads get to finish what they run before they are left to
/// end on their own.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

impl Drop for QueryRuntime {
    fn drop(&mut self) {
        // Dropping a runtime blocks, which is not allowed inside another runtime, so a thread of
        // its own shuts it down and joins its threads. `shutdown_background` would detach them
        // at once instead, and the engine's tests crashed now and then that way (SIGSEGV in
        // `pthread_detach`, called by `BlockingPool::shutdown` from here; once in ten runs of
        // the lib tests in a loop).
        let Some(runtime) = self.runtime.take() else {
            return;
        };
        let (send, receive) = std::sync::mpsc::channel::<Runtime>();
        let stopper = std::thread::Builder::new()
            .name("faultline-query-stop".into())
            .spawn(move || {
                if let Ok(runtime) = receive.recv() {
                    runtime.shutdown_timeout(SHUTDOWN_GRACE);
                }
            });
        let unsent = match stopper {
            Ok(_) => send.send(runtime).err().map(|e| e.0),
            Err(err) => {
                tracing::warn!(cause = %err, "no thread to stop the query threads; detached");
                Some(runtime)
            }
        };
        if let Some(runtime) = unsent {
            runtime.shutdown_background();
        }
    }
}

/// Sets the calling thread's nice value; only logged when the system refuses.
fn lower_priority(nice: i32) {
    if nice == 0 {
        return;
    }
    let thread = rustix::thread::gettid();
    if let Err(err) = rustix::process::setpriority_process(Some(thread), nice) {
        tracing::warn!(cause = %err, nice, "cannot lower the priority of a query thread");
    }
}

/// A query's task on the query threads; aborted when dropped before it finished.
pub(crate) struct Running<T> {
    handle: JoinHandle<T>,
    budget: Option<Arc<Budget>>,
}

impl<T> Future for Running<T> {
    type Output = T;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<T> {
        match Pin::new(&mut self.handle).poll(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Ok(value)) => Poll::Ready(value),
            // The task is only aborted by our own drop, so this is a panic: pass it on.
            Poll::Ready(Err(err)) => std::panic::resume_unwind(err.into_panic()),
        }
    }
}

impl<T> Drop for Running<T> {
    fn drop(&mut self) {
        if !self.handle.is_finished() {
            if let Some(budget) = &self.budget {
                budget.cancel();
            }
            self.handle.abort();
        }
    }
}

/// When a query must stop: its deadline, and whether its caller gave up. Shared by the
/// session's function wrappers, which check it before every call.
#[derive(Debug, Default)]
pub(crate) struct Budget {
    deadline: Mutex<Option<Instant>>,
    cancelled: AtomicBool,
}

impl Budget {
    /// Starts the clock: the query must be done within `timeout` from now.
    pub(crate) fn arm(&self, timeout: Duration) {
        *self.deadline.lock() = Instant::now().checked_add(timeout);
    }

    pub(crate) fn cancel(&self) {
        self.cancelled.store(true, Ordering::Relaxed);
    }

    /// True once the caller gave up or the deadline passed.
    pub(crate) fn is_over(&self) -> bool {
        self.cancelled.load(Ordering::Relaxed)
            || self.deadline.lock().is_some_and(|d| Instant::now() >= d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn dropping_the_caller_cancels_the_work() {
        let runtime = QueryRuntime::new(1, 1, 0).expect("runtime");
        let budget = Arc::new(Budget::default());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let running = runtime.spawn(Some(Arc::clone(&budget)), async move {
            // Holds `tx` until aborted: the receiver sees it dropped then.
            std::future::pending::<()>().await;
            drop(tx);
        });
        assert!(!budget.is_over());
        drop(running);
        assert!(budget.is_over());
        assert!(
            rx.await.is_err(),
            "the task was aborted and dropped its state"
        );
    }

    #[tokio::test]
    async fn query_threads_have_a_large_stack_and_a_name() {
        let runtime = QueryRuntime::new(1, 1, 0).expect("runtime");
        let name = runtime
            .spawn(None, async {
                // Far more than the 2 MiB of a default thread, well within the query stack.
                fn deep(n: usize) -> usize {
                    let pad = std::hint::black_box([0u8; 1024]);
                    if n == 0 {
                        pad[0] as usize
                    } else {
                        deep(n - 1) + pad[1] as usize
                    }
                }
                deep(16 * 1024);
                std::thread::current().name().map(str::to_owned)
            })
            .await;
        assert_eq!(name.as_deref(), Some("faultline-query"));
    }
}
