//! Reads of a retired file still succeed: a query planned with a manifest version that listed a
//! file may open it after compaction or retention moved it under `retired/`.
//!
//! A read (`GET`, ranged or whole, or `HEAD`) of a live key that answers "not found" is repeated
//! once at the key's retired twin. A file is copied to `retired/` before it leaves its live key,
//! so one of the two always answers until the file is deleted for good, `retention.delete_after`
//! after it was retired. Writes, listings and deletes pass through unchanged.

use std::fmt;
use std::ops::Range;
use std::sync::Arc;

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;
use object_store::path::Path;
use object_store::{
    CopyOptions, GetOptions, GetResult, ListResult, MultipartUpload, ObjectMeta, ObjectStore,
    PutMultipartOptions, PutOptions, PutPayload, PutResult, RenameOptions, Result,
};

use super::keys;

/// See the module documentation.
#[derive(Debug)]
pub(super) struct RetiredFallback {
    inner: Arc<dyn ObjectStore>,
}

impl RetiredFallback {
    pub(super) fn new(inner: Arc<dyn ObjectStore>) -> Self {
        Self { inner }
    }
}

fn twin(location: &Path) -> Option<Path> {
    keys::retired(location.as_ref()).map(Path::from)
}

impl fmt::Display for RetiredFallback {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.inner.fmt(f)
    }
}

#[async_trait]
impl ObjectStore for RetiredFallback {
    async fn put_opts(
        &self,
        location: &Path,
        payload: PutPayload,
        opts: PutOptions,
    ) -> Result<PutResult> {
        self.inner.put_opts(location, payload, opts).await
    }

    async fn put_multipart_opts(
        &self,
        location: &Path,
        opts: PutMultipartOptions,
    ) -> Result<Box<dyn MultipartUpload>> {
        self.inner.put_multipart_opts(location, opts).await
    }

    async fn get_opts(&self, location: &Path, options: GetOptions) -> Result<GetResult> {
        match self.inner.get_opts(location, options.clone()).await {
            Err(object_store::Error::NotFound { path, source }) => match twin(location) {
                Some(retired) => self.inner.get_opts(&retired, options).await,
                None => Err(object_store::Error::NotFound { path, source }),
            },
            other => other,
        }
    }

    async fn get_ranges(&self, location: &Path, ranges: &[Range<u64>]) -> Result<Vec<Bytes>> {
        match self.inner.get_ranges(location, ranges).await {
            Err(object_store::Error::NotFound { path, source }) => match twin(location) {
                Some(retired) => self.inner.get_ranges(&retired, ranges).await,
                None => Err(object_store::Error::NotFound { path, source }),
            },
            other => other,
        }
    }

    fn delete_stream(
        &self,
        locations: BoxStream<'static, Result<Path>>,
    ) -> BoxStream<'static, Result<Path>> {
        self.inner.delete_stream(locations)
    }

    fn list(&self, prefix: Option<&Path>) -> BoxStream<'static, Result<ObjectMeta>> {
        self.inner.list(prefix)
    }

    async fn list_with_delimiter(&self, prefix: Option<&Path>) -> Result<ListResult> {
        self.inner.list_with_delimiter(prefix).await
    }

    async fn copy_opts(&self, from: &Path, to: &Path, options: CopyOptions) -> Result<()> {
        self.inner.copy_opts(from, to, options).await
    }

    async fn rename_opts(&self, from: &Path, to: &Path, options: RenameOptions) -> Result<()> {
        self.inner.rename_opts(from, to, options).await
    }
}
