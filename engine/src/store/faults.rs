//! A fault-injecting object store for tests: writes that succeed but whose reply is lost.

use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use async_trait::async_trait;
use futures::stream::BoxStream;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult, Result,
};

/// Performs every PUT, then for the next `lose` PUTs below `prefix` answers an error as if the
/// connection dropped before the reply arrived.
#[derive(Debug)]
pub(crate) struct LoseReplies {
    inner: Arc<dyn ObjectStore>,
    prefix: String,
    remaining: AtomicUsize,
    lost: AtomicUsize,
    failing_lists: AtomicUsize,
    failing_delimited_lists: std::sync::atomic::AtomicBool,
}

impl LoseReplies {
    pub(crate) fn new(inner: Arc<dyn ObjectStore>, prefix: &str, lose: usize) -> Self {
        Self {
            inner,
            prefix: prefix.to_owned(),
            remaining: AtomicUsize::new(lose),
            lost: AtomicUsize::new(0),
            failing_lists: AtomicUsize::new(0),
            failing_delimited_lists: std::sync::atomic::AtomicBool::new(false),
        }
    }

    /// Replies lost so far.
    pub(crate) fn lost(&self) -> usize {
        self.lost.load(Ordering::SeqCst)
    }

    /// Loses the replies of the next `n` PUTs below the prefix.
    pub(crate) fn lose_next(&self, n: usize) {
        self.remaining.store(n, Ordering::SeqCst);
    }

    /// Fails every listing by directory (`list_with_delimiter`) while `fail` is set.
    pub(crate) fn fail_delimited_lists(&self, fail: bool) {
        self.failing_delimited_lists.store(fail, Ordering::SeqCst);
    }

    /// Fails the next `n` listings (the store becomes unreachable right after a write).
    pub(crate) fn fail_next_lists(&self, n: usize) {
        self.failing_lists.store(n, Ordering::SeqCst);
    }
}

impl fmt::Display for LoseReplies {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "LoseReplies({})", self.inner)
    }
}

#[async_trait]
impl ObjectStore for LoseReplies {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> Result<PutResult> {
        let result = self.inner.put_opts(location, payload, opts).await?;
        let lose = location.as_ref().starts_with(&self.prefix)
            && self
                .remaining
                .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                .is_ok();
        if lose {
            self.lost.fetch_add(1, Ordering::SeqCst);
            return Err(object_store::Error::Generic {
                store: "LoseReplies",
                source: "connection reset before the reply arrived".into(),
            });
        }
        Ok(result)
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> Result<Box<dyn MultipartUpload>> {
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
        self.inner.get_opts(location, options).await
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, Result<Path>>,
    ) -> BoxStream<'static, Result<Path>> {
        self.inner.delete_stream(locations)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        let fail = self
            .failing_lists
            .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
            .is_ok();
        if fail {
            let error = object_store::Error::Generic {
                store: "LoseReplies",
                source: "connection refused".into(),
            };
            return Box::pin(futures::stream::once(async move { Err(error) }));
        }
        self.inner.list(prefix)
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        if self.failing_delimited_lists.load(Ordering::SeqCst) {
            return Err(object_store::Error::Generic {
                store: "LoseReplies",
                source: "connection refused".into(),
            });
        }
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> Result<()> {
        self.inner.copy_opts(from, to, options).await
    }
}
