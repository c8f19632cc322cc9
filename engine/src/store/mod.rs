//! Object storage: where Parquet files and manifests live, and how they are written durably.
//!
//! Layout under the store's root (a local directory by default, `s3://bucket/prefix` in a cluster):
//! ```text
//! events/proj=<id>/date=<YYYY-MM-DD>/hour=<HH>/<ulid>.parquet
//! rollups/proj=<id>/date=<YYYY-MM-DD>/<ulid>.parquet
//! retired/events/..., retired/rollups/...
//! manifest/<node>/<inverted version>.json
//! meta/projects/<id>.json, meta/tokens/<sha256>.json
//! ```
//! The keys of Parquet files and manifests are built in [`keys`].
//! `object_store`'s local store does not fsync, so for a local root every object this module writes
//! is fsynced (file and directory) before the write returns; S3 confirms durability itself.

mod fallback;
#[cfg(test)]
pub(crate) mod faults;
pub mod keys;
pub mod lease;
pub mod manifest;
pub mod parquet;

use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use faultline_config::{Config, S3Config};
use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::local::LocalFileSystem;
use object_store::path::Path as ObjectPath;
use object_store::prefix::PrefixStore;
use object_store::{
    BackoffConfig, ClientConfigKey, ObjectStore, ObjectStoreExt, PutMode, PutOptions, PutPayload,
    RetryConfig,
};

use fallback::RetiredFallback;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot create the data directory {path}: {source}")]
    CreateDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid object store URL {url:?}: {message}")]
    Url { url: String, message: String },
    #[error("cannot open object store {url}: {source}")]
    Open {
        url: String,
        #[source]
        source: object_store::Error,
    },
    #[error("object store request for {path} failed: {source}")]
    Request {
        path: String,
        #[source]
        source: object_store::Error,
    },
    #[error("cannot fsync {path}: {source}")]
    Sync {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("object {path} already exists")]
    AlreadyExists { path: String },
    #[error("object {path} is not valid JSON: {source}")]
    Decode {
        path: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("cannot write Parquet: {0}")]
    Parquet(#[source] Box<datafusion::parquet::errors::ParquetError>),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// True when the object store did not answer (network, timeout, a server error): the
    /// request may succeed if retried later. HTTP answers it with 503, PostgreSQL with SQLSTATE
    /// 58030 and Flight SQL with UNAVAILABLE.
    pub fn is_unavailable(&self) -> bool {
        // a missing object, a lost conditional write or a refused credential is an answer
        matches!(
            self,
            Self::Request {
                source: object_store::Error::Generic { .. } | object_store::Error::JoinError { .. },
                ..
            }
        )
    }
}

/// The object store plus what is needed to make local writes durable.
#[derive(Debug, Clone)]
pub struct Store {
    pub objects: Arc<dyn ObjectStore>,
    /// Root directory when the store is local (writes are fsynced there).
    local_root: Option<PathBuf>,
    /// Human-readable location, for logs.
    pub location: String,
}

impl Store {
    /// Opens the store named by the config: `storage.object_store`, else `<data_dir>/objects`.
    pub fn open(config: &Config) -> Result<Self> {
        match config.storage.object_store.as_deref() {
            None => Self::local(&config.storage.data_dir.join("objects")),
            Some(url) => Self::open_url(url, &config.storage.s3, None),
        }
    }

    /// Opens `s3://bucket/prefix` or `file:///path`. S3 credentials come from the AWS
    /// environment unless `credentials` (access key id, secret) are given.
    pub fn open_url(
        url: &str,
        s3: &S3Config,
        credentials: Option<(String, String)>,
    ) -> Result<Self> {
        if let Some(path) = url.strip_prefix("file://") {
            Self::local(Path::new(path))
        } else if let Some(rest) = url.strip_prefix("s3://") {
            Self::s3(s3, credentials, url, rest)
        } else {
            Err(Error::Url {
                url: url.to_owned(),
                message: "must start with s3:// or file://".to_owned(),
            })
        }
    }

    /// A store in a local directory (created if missing).
    pub fn local(dir: &Path) -> Result<Self> {
        std::fs::create_dir_all(dir).map_err(|source| Error::CreateDir {
            path: dir.to_owned(),
            source,
        })?;
        let root = dir.canonicalize().map_err(|source| Error::CreateDir {
            path: dir.to_owned(),
            source,
        })?;
        let objects = LocalFileSystem::new_with_prefix(&root).map_err(|source| Error::Open {
            url: root.display().to_string(),
            source,
        })?;
        Ok(Self {
            objects: crate::metrics::instrument(Arc::new(RetiredFallback::new(Arc::new(objects)))),
            location: format!("file://{}", root.display()),
            local_root: Some(root),
        })
    }

    /// The same store seen through another client (a wrapper of [`Self::objects`]).
    pub fn with_objects(&self, objects: Arc<dyn ObjectStore>) -> Self {
        Self {
            objects,
            local_root: self.local_root.clone(),
            location: self.location.clone(),
        }
    }

    /// An in-memory store, for tests.
    pub fn memory() -> Self {
        Self {
            objects: crate::metrics::instrument(Arc::new(RetiredFallback::new(Arc::new(
                object_store::memory::InMemory::new(),
            )))),
            local_root: None,
            location: "memory://".to_owned(),
        }
    }

    fn s3(
        s3: &S3Config,
        credentials: Option<(String, String)>,
        url: &str,
        rest: &str,
    ) -> Result<Self> {
        let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(Error::Url {
                url: url.to_owned(),
                message: "names no bucket".to_owned(),
            });
        }
        let mut builder = AmazonS3Builder::from_env().with_bucket_name(bucket);
        if let Some((key_id, secret)) = credentials {
            builder = builder
                .with_access_key_id(key_id)
                .with_secret_access_key(secret);
        }
        if let Some(endpoint) = &s3.endpoint {
            builder = builder.with_endpoint(endpoint);
        }
        if let Some(region) = &s3.region {
            builder = builder.with_region(region);
        }
        if s3.allow_http {
            builder = builder.with_allow_http(true);
        }
        if s3.force_path_style {
            builder = builder.with_virtual_hosted_style_request(false);
        }
        // Bounded, so that an unreachable store fails a query within seconds instead of the
        // client's default of ten retries over three minutes.
        // Set key by key: replacing the client options would drop what the environment and
        // the settings above put there (allow_http).
        let millis = |d: std::time::Duration| format!("{}ms", d.as_millis());
        builder = builder
            .with_config(
                AmazonS3ConfigKey::Client(ClientConfigKey::ConnectTimeout),
                millis(s3.connect_timeout),
            )
            .with_config(
                AmazonS3ConfigKey::Client(ClientConfigKey::Timeout),
                millis(s3.request_timeout),
            )
            .with_retry(RetryConfig {
                backoff: BackoffConfig::default(),
                max_retries: s3.max_retries,
                retry_timeout: s3.retry_timeout,
            });
        let store = builder.build().map_err(|source| Error::Open {
            url: url.to_owned(),
            source,
        })?;
        let objects: Arc<dyn ObjectStore> = if prefix.trim_matches('/').is_empty() {
            Arc::new(store)
        } else {
            Arc::new(PrefixStore::new(store, prefix.trim_matches('/')))
        };
        let objects = Arc::new(RetiredFallback::new(objects));
        Ok(Self {
            objects: crate::metrics::instrument(objects),
            local_root: None,
            location: url.to_owned(),
        })
    }

    /// Writes an object and returns once it is durable.
    pub async fn put_durable(&self, path: &ObjectPath, data: Bytes) -> Result<()> {
        self.objects
            .put(path, PutPayload::from(data))
            .await
            .map_err(|source| request_error(path, source))?;
        self.sync(path).await
    }

    /// Creates an object that must not exist yet (`PutMode::Create`), durably.
    ///
    /// An object that exists already with exactly these bytes counts as created: that is this
    /// very write, made by an earlier attempt whose reply was lost (the S3 client retries a
    /// request that timed out, and the retry then meets its own first attempt). Every caller
    /// writes content that no other writer produces (it holds a fresh id or timestamp), so equal
    /// bytes identify the writer.
    pub async fn create_durable(&self, path: &ObjectPath, data: Bytes) -> Result<()> {
        let options = PutOptions {
            mode: PutMode::Create,
            ..PutOptions::default()
        };
        match self
            .objects
            .put_opts(path, PutPayload::from(data.clone()), options)
            .await
        {
            Ok(_) => self.sync(path).await,
            Err(object_store::Error::AlreadyExists { .. }) => match self.get(path).await {
                Ok(existing) if existing == data => {
                    tracing::info!(%path, "object already written by an earlier attempt");
                    self.sync(path).await
                }
                _ => Err(Error::AlreadyExists {
                    path: path.to_string(),
                }),
            },
            Err(source) => Err(request_error(path, source)),
        }
    }

    /// Reads a whole object.
    pub async fn get(&self, path: &ObjectPath) -> Result<Bytes> {
        let result = self
            .objects
            .get(path)
            .await
            .map_err(|source| request_error(path, source))?;
        result
            .bytes()
            .await
            .map_err(|source| request_error(path, source))
    }

    /// Reads and decodes a JSON object.
    pub async fn get_json<T: serde::de::DeserializeOwned>(&self, path: &ObjectPath) -> Result<T> {
        let bytes = self.get(path).await?;
        serde_json::from_slice(&bytes).map_err(|source| Error::Decode {
            path: path.to_string(),
            source,
        })
    }

    /// Lists the objects below a prefix (missing prefix = empty list).
    pub async fn list(&self, prefix: &ObjectPath) -> Result<Vec<object_store::ObjectMeta>> {
        use futures::TryStreamExt;
        match self
            .objects
            .list(Some(prefix))
            .try_collect::<Vec<_>>()
            .await
        {
            Ok(list) => Ok(list),
            Err(object_store::Error::NotFound { .. }) => Ok(Vec::new()),
            Err(source) => Err(request_error(prefix, source)),
        }
    }

    /// Deletes an object; a missing object is not an error.
    pub async fn delete(&self, path: &ObjectPath) -> Result<()> {
        match self.objects.delete(path).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(source) => Err(request_error(path, source)),
        }
    }

    /// Moves a file that no manifest lists any more from its live key to its key under
    /// `retired/` (a rename on a local disk; a copy, then a delete on S3), so readers of the
    /// live prefixes stop seeing it at once. Already moved (or gone) is not an error; keys
    /// outside the live prefixes are left alone.
    pub async fn retire(&self, live: &str) -> Result<()> {
        let Some(retired) = keys::retired(live) else {
            return Ok(());
        };
        let from = ObjectPath::from(live);
        let to = ObjectPath::from(retired);
        match self.objects.rename(&from, &to).await {
            Ok(()) => self.sync(&to).await,
            Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(source) => Err(request_error(&from, source)),
        }
    }

    /// fsyncs a local object and its directory chain up to the root.
    async fn sync(&self, path: &ObjectPath) -> Result<()> {
        let Some(root) = self.local_root.clone() else {
            return Ok(());
        };
        let file = root.join(path.as_ref());
        tokio::task::spawn_blocking(move || sync_path(&root, &file))
            .await
            .expect("fsync task does not panic")
    }
}

fn request_error(path: &ObjectPath, source: object_store::Error) -> Error {
    Error::Request {
        path: path.to_string(),
        source,
    }
}

/// fsyncs `file`, then every directory from its parent up to and including `root`
/// (new directories must be durable too for the file to be found after a crash).
fn sync_path(root: &Path, file: &Path) -> Result<()> {
    let sync = |path: &Path| -> Result<()> {
        std::fs::File::open(path)
            .and_then(|f| f.sync_all())
            .map_err(|source| Error::Sync {
                path: path.to_owned(),
                source,
            })
    };
    sync(file)?;
    let mut dir = file.parent();
    while let Some(d) = dir {
        sync(d)?;
        if d == root {
            break;
        }
        dir = d.parent();
    }
    Ok(())
}
