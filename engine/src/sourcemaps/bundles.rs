//! Artifact bundles as sentry-cli uploads them: chunks named by their SHA-1, assembled into the
//! bundle (a zip with `manifest.json`), stored with a record and two indexes (by debug id and
//! by release + dist + URL), and deleted by retention once no event used them for a while.

use std::collections::{BTreeMap, HashSet};
use std::io::Read;

use bytes::Bytes;
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use sha1::{Digest, Sha1};

use super::{Error, Result};
use crate::store::{self, Store, keys};

/// What an artifact bundle holds, and who may use it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BundleRecord {
    /// SHA-1 of the zip, as sentry-cli names the bundle.
    pub checksum: String,
    pub org: String,
    pub bytes: u64,
    /// Project names the bundle was uploaded for.
    pub projects: Vec<String>,
    pub release: Option<String>,
    pub dist: Option<String>,
    pub created: DateTime<Utc>,
    /// The last day an event was resolved with it (retention counts from here).
    pub last_used: NaiveDate,
    pub files: Vec<BundleFile>,
}

/// One file of a bundle, from its manifest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BundleFile {
    /// Its path inside the zip.
    pub path: String,
    /// Its URL (`~/app.min.js`), which release-based lookups match.
    pub url: String,
    /// `minified_source`, `source_map`, `source`, ...
    #[serde(rename = "type")]
    pub kind: String,
    pub debug_id: Option<String>,
    /// The `Sourcemap` header of a minified source: where its map is.
    pub sourcemap: Option<String>,
    pub bytes: u64,
}

impl BundleRecord {
    /// True if an event of `project` may be resolved with this bundle.
    pub fn serves(&self, project: &str) -> bool {
        self.projects.is_empty() || self.projects.iter().any(|p| p == project)
    }

    /// The file of `kind` with this debug id.
    pub fn by_debug_id(&self, debug_id: &str, kind: &str) -> Option<&BundleFile> {
        self.files
            .iter()
            .find(|f| f.kind == kind && f.debug_id.as_deref() == Some(debug_id))
    }

    /// The file with this URL.
    pub fn by_url(&self, url: &str) -> Option<&BundleFile> {
        self.files.iter().find(|f| f.url == url)
    }
}

/// An index entry: which bundle holds a debug id's files, or a release's URL.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct IndexEntry {
    pub bundle: String,
}

/// What assembling answers, in Sentry's words.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Assembled {
    /// `not_found` (chunks missing), `ok`, or `error`.
    pub state: &'static str,
    pub missing_chunks: Vec<String>,
    pub detail: Option<String>,
}

/// What an assemble request asks for.
#[derive(Debug, Clone, Default)]
pub struct AssembleRequest {
    pub checksum: String,
    pub chunks: Vec<String>,
    /// Project names, already checked.
    pub projects: Vec<String>,
    pub release: Option<String>,
    pub dist: Option<String>,
}

/// True for 40 lowercase or uppercase hex digits.
pub fn is_sha1(text: &str) -> bool {
    text.len() == 40 && text.bytes().all(|b| b.is_ascii_hexdigit())
}

/// The hex SHA-1 of `data`.
pub fn sha1_hex(data: &[u8]) -> String {
    hex::encode(Sha1::digest(data))
}

/// The index key of a release's URL.
pub fn release_url_key(release: &str, dist: Option<&str>, url: &str) -> String {
    let mut hash = Sha1::new();
    hash.update(release.as_bytes());
    hash.update([0]);
    hash.update(dist.unwrap_or_default().as_bytes());
    hash.update([0]);
    hash.update(url.as_bytes());
    hex::encode(hash.finalize())
}

/// Stores one chunk after checking that its content hashes to `name`.
pub async fn put_chunk(store: &Store, org: &str, name: &str, data: Bytes) -> Result<()> {
    let name = name.to_ascii_lowercase();
    if !is_sha1(&name) {
        return Err(Error::ChunkName { name });
    }
    let actual = sha1_hex(&data);
    if actual != name {
        return Err(Error::ChunkChecksum { name, actual });
    }
    store.put_durable(&keys::chunk(org, &name), data).await?;
    Ok(())
}

/// Reads a bundle record, `None` when there is none.
pub async fn record(store: &Store, org: &str, checksum: &str) -> Result<Option<BundleRecord>> {
    get_optional(store, &keys::sourcemap_record(org, checksum)).await
}

pub(super) async fn get_optional<T: serde::de::DeserializeOwned>(
    store: &Store,
    path: &object_store::path::Path,
) -> Result<Option<T>> {
    match store.get_json::<T>(path).await {
        Ok(value) => Ok(Some(value)),
        Err(store::Error::Request {
            source: object_store::Error::NotFound { .. },
            ..
        }) => Ok(None),
        Err(err) => Err(err.into()),
    }
}

async fn put_json<T: Serialize>(
    store: &Store,
    path: &object_store::path::Path,
    value: &T,
) -> Result<()> {
    let body = serde_json::to_vec(value).map_err(|e| Error::BadBundle(e.to_string()))?;
    store.put_durable(path, Bytes::from(body)).await?;
    Ok(())
}

/// Assembles a bundle from its chunks (or says which are missing), stores it and indexes it.
/// A bundle that exists already answers `ok` at once (its projects are added).
pub async fn assemble(
    store: &Store,
    org: &str,
    request: AssembleRequest,
    max_bundle: u64,
) -> Result<Assembled> {
    let checksum = request.checksum.to_ascii_lowercase();
    if !is_sha1(&checksum) {
        return Err(Error::BadChecksum(request.checksum));
    }
    if request.projects.is_empty() {
        return Err(Error::NoProjects);
    }
    let mut chunks = Vec::with_capacity(request.chunks.len());
    for chunk in &request.chunks {
        let chunk = chunk.to_ascii_lowercase();
        if !is_sha1(&chunk) {
            return Err(Error::ChunkName { name: chunk });
        }
        chunks.push(chunk);
    }
    if let Some(mut existing) = record(store, org, &checksum).await? {
        let before = existing.projects.len();
        existing.projects.extend(request.projects);
        existing.projects.sort();
        existing.projects.dedup();
        if existing.projects.len() != before {
            put_json(store, &keys::sourcemap_record(org, &checksum), &existing).await?;
        }
        return Ok(ok());
    }
    let present: BTreeMap<String, u64> = store
        .list(&keys::chunk_prefix(org))
        .await?
        .into_iter()
        .filter_map(|meta| Some((meta.location.filename()?.to_owned(), meta.size)))
        .collect();
    let mut missing = Vec::new();
    let mut seen = HashSet::new();
    for chunk in &chunks {
        if !present.contains_key(chunk) && seen.insert(chunk.as_str()) {
            missing.push(chunk.clone());
        }
    }
    if !missing.is_empty() || chunks.is_empty() {
        return Ok(Assembled {
            state: "not_found",
            missing_chunks: missing,
            detail: None,
        });
    }
    let total: u64 = chunks.iter().filter_map(|c| present.get(c)).sum();
    if total > max_bundle {
        return Ok(error(
            Error::BundleTooLarge {
                size: total,
                limit: max_bundle,
            }
            .to_string(),
        ));
    }
    let mut data = Vec::with_capacity(usize::try_from(total).unwrap_or(0));
    for chunk in &chunks {
        data.extend_from_slice(&store.get(&keys::chunk(org, chunk)).await?);
    }
    let actual = sha1_hex(&data);
    if actual != checksum {
        return Ok(error(
            Error::BundleChecksum {
                expected: checksum,
                actual,
            }
            .to_string(),
        ));
    }
    let data = Bytes::from(data);
    let parsed = {
        let data = data.clone();
        tokio::task::spawn_blocking(move || read_manifest(&data))
            .await
            .map_err(|e| Error::BadBundle(e.to_string()))?
    };
    let files = match parsed {
        Ok(files) => files,
        Err(err) => return Ok(error(err.to_string())),
    };
    store_bundle(
        store,
        org,
        &checksum,
        data,
        files,
        request.projects,
        request.release,
        request.dist,
    )
    .await?;
    for chunk in &chunks {
        store.delete(&keys::chunk(org, chunk)).await?;
    }
    Ok(ok())
}

/// Stores a checked bundle, its record, then its index entries.
#[allow(clippy::too_many_arguments)]
async fn store_bundle(
    store: &Store,
    org: &str,
    checksum: &str,
    data: Bytes,
    files: Vec<BundleFile>,
    mut projects: Vec<String>,
    release: Option<String>,
    dist: Option<String>,
) -> Result<BundleRecord> {
    projects.sort();
    projects.dedup();
    let record = BundleRecord {
        checksum: checksum.to_owned(),
        org: org.to_owned(),
        bytes: data.len() as u64,
        projects,
        release: release.filter(|r| !r.is_empty()),
        dist: dist.filter(|d| !d.is_empty()),
        created: Utc::now(),
        last_used: Utc::now().date_naive(),
        files,
    };
    store
        .put_durable(&keys::sourcemap_bundle(org, checksum), data)
        .await?;
    // the record first: an index entry always names a bundle that has one
    put_json(store, &keys::sourcemap_record(org, checksum), &record).await?;
    put_json(
        store,
        &keys::sourcemap_uploads(org),
        &serde_json::json!({ "last": record.created }),
    )
    .await?;
    let entry = IndexEntry {
        bundle: checksum.to_owned(),
    };
    let mut ids = HashSet::new();
    for file in &record.files {
        if let Some(id) = &file.debug_id
            && ids.insert(id.as_str())
        {
            put_json(store, &keys::sourcemap_debug_id(org, id), &entry).await?;
        }
        if let Some(release) = &record.release {
            let key = release_url_key(release, record.dist.as_deref(), &file.url);
            put_json(store, &keys::sourcemap_release_url(org, &key), &entry).await?;
        }
    }
    tracing::info!(org, bundle = %checksum, files = record.files.len(), bytes = record.bytes,
        "artifact bundle stored");
    Ok(record)
}

/// One file of the older release-file upload (`POST .../releases/{version}/files/`).
#[derive(Debug, Clone)]
pub struct ReleaseFile {
    /// Its URL, e.g. `~/static/app.min.js`.
    pub name: String,
    pub dist: Option<String>,
    /// `Name: value` headers, e.g. `Sourcemap: app.min.js.map`.
    pub headers: Vec<(String, String)>,
    pub content: Bytes,
}

/// Stores a release file as a bundle of its own (one file, `project` only) and indexes it by
/// release, dist and URL. The same file uploaded again adds the project.
pub async fn put_release_file(
    store: &Store,
    org: &str,
    project: &str,
    release: &str,
    file: ReleaseFile,
    max_file: u64,
) -> Result<BundleRecord> {
    if file.content.len() as u64 > max_file {
        return Err(Error::FileTooLarge {
            path: file.name,
            size: file.content.len() as u64,
            limit: max_file,
        });
    }
    let kind = if file.name.ends_with(".map") {
        "source_map"
    } else if [".js", ".mjs", ".cjs"]
        .iter()
        .any(|e| file.name.ends_with(e))
    {
        "minified_source"
    } else {
        "source"
    };
    let headers: BTreeMap<&str, &str> = file
        .headers
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let manifest = serde_json::json!({
        "files": {"files/0": {"type": kind, "url": file.name, "headers": headers}},
        "release": release,
        "dist": file.dist,
    });
    let zipped = {
        let manifest =
            serde_json::to_vec(&manifest).map_err(|e| Error::BadBundle(e.to_string()))?;
        let content = file.content.clone();
        tokio::task::spawn_blocking(move || zip_two(&manifest, &content))
            .await
            .map_err(|e| Error::BadBundle(e.to_string()))??
    };
    let checksum = sha1_hex(&zipped);
    if let Some(mut existing) = record(store, org, &checksum).await? {
        if !existing.projects.iter().any(|p| p == project) {
            existing.projects.push(project.to_owned());
            existing.projects.sort();
            put_json(store, &keys::sourcemap_record(org, &checksum), &existing).await?;
        }
        return Ok(existing);
    }
    let files = {
        let zipped = zipped.clone();
        tokio::task::spawn_blocking(move || read_manifest(&zipped))
            .await
            .map_err(|e| Error::BadBundle(e.to_string()))??
    };
    store_bundle(
        store,
        org,
        &checksum,
        Bytes::from(zipped),
        files,
        vec![project.to_owned()],
        Some(release.to_owned()),
        file.dist,
    )
    .await
}

/// A zip of `manifest.json` and `files/0` (stored, deterministic: no timestamps vary).
fn zip_two(manifest: &[u8], content: &[u8]) -> Result<Vec<u8>> {
    use std::io::Write;
    let bad = |e: &dyn std::fmt::Display| Error::BadBundle(e.to_string());
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .last_modified_time(zip::DateTime::default());
    for (path, data) in [("manifest.json", manifest), ("files/0", content)] {
        zip.start_file(path, options).map_err(|e| bad(&e))?;
        zip.write_all(data).map_err(|e| bad(&e))?;
    }
    Ok(zip.finish().map_err(|e| bad(&e))?.into_inner())
}

fn ok() -> Assembled {
    Assembled {
        state: "ok",
        missing_chunks: Vec::new(),
        detail: None,
    }
}

fn error(detail: String) -> Assembled {
    Assembled {
        state: "error",
        missing_chunks: Vec::new(),
        detail: Some(detail),
    }
}

#[derive(Debug, Deserialize)]
struct Manifest {
    #[serde(default)]
    files: BTreeMap<String, ManifestFile>,
}

#[derive(Debug, Deserialize)]
struct ManifestFile {
    #[serde(rename = "type")]
    kind: Option<String>,
    url: Option<String>,
    #[serde(default)]
    headers: BTreeMap<String, String>,
}

/// Opens a bundle: a zip, possibly behind sentry-cli's 8-byte `SYSB` header.
pub(super) fn open_zip(data: &[u8]) -> Result<zip::ZipArchive<std::io::Cursor<&[u8]>>> {
    let bad = |e: zip::result::ZipError| Error::BadBundle(format!("not a zip archive: {e}"));
    match zip::ZipArchive::new(std::io::Cursor::new(data)) {
        Ok(archive) => Ok(archive),
        Err(err) if data.starts_with(b"SYSB") && data.len() > 8 => {
            zip::ZipArchive::new(std::io::Cursor::new(&data[8..])).map_err(|_| bad(err))
        }
        Err(err) => Err(bad(err)),
    }
}

/// Largest `manifest.json` read.
const MAX_MANIFEST: u64 = 16 * 1024 * 1024;

/// The files a bundle's `manifest.json` lists (those the zip really holds).
pub(super) fn read_manifest(data: &[u8]) -> Result<Vec<BundleFile>> {
    let mut archive = open_zip(data)?;
    let manifest: Manifest = {
        let file = archive
            .by_name("manifest.json")
            .map_err(|_| Error::BadBundle("it has no manifest.json".to_owned()))?;
        if file.size() > MAX_MANIFEST {
            return Err(Error::BadBundle(format!(
                "its manifest.json exceeds {MAX_MANIFEST} bytes"
            )));
        }
        let mut text = Vec::new();
        file.take(MAX_MANIFEST)
            .read_to_end(&mut text)
            .map_err(|e| Error::BadBundle(format!("cannot read manifest.json: {e}")))?;
        serde_json::from_slice(&text)
            .map_err(|e| Error::BadBundle(format!("manifest.json: {e}")))?
    };
    let mut files = Vec::with_capacity(manifest.files.len());
    for (path, file) in manifest.files {
        let Ok(entry) = archive.by_name(&path) else {
            return Err(Error::BadBundle(format!(
                "manifest.json lists {path:?}, which the archive does not hold"
            )));
        };
        let bytes = entry.size();
        let header = |name: &str| {
            file.headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.trim().to_owned())
        };
        files.push(BundleFile {
            url: file.url.unwrap_or_else(|| format!("~/{path}")),
            kind: file.kind.unwrap_or_else(|| "source".to_owned()),
            debug_id: header("debug-id").and_then(|id| normalize_debug_id(&id)),
            sourcemap: header("sourcemap").or_else(|| header("x-sourcemap")),
            bytes,
            path,
        });
    }
    Ok(files)
}

/// A debug id as the indexes spell it: a UUID, lowercase and dashed; `None` for anything else
/// (source map debug ids are UUIDs, and the id becomes part of an object key).
pub fn normalize_debug_id(id: &str) -> Option<String> {
    uuid::Uuid::try_parse(id.trim())
        .ok()
        .map(|uuid| uuid.hyphenated().to_string())
}

/// Reads one file of a bundle, refusing one over `max` bytes.
pub(super) fn read_file(data: &[u8], path: &str, max: u64) -> Result<Vec<u8>> {
    let mut archive = open_zip(data)?;
    let file = archive
        .by_name(path)
        .map_err(|e| Error::BadBundle(format!("{path}: {e}")))?;
    if file.size() > max {
        return Err(Error::FileTooLarge {
            path: path.to_owned(),
            size: file.size(),
            limit: max,
        });
    }
    let mut out = Vec::with_capacity(usize::try_from(file.size()).unwrap_or(0));
    file.take(max)
        .read_to_end(&mut out)
        .map_err(|e| Error::BadBundle(format!("{path}: {e}")))?;
    Ok(out)
}

/// What [`expire`] removed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Expired {
    /// Bundles no event used for `sourcemaps.unused_days`.
    pub bundles: usize,
    /// Chunks uploaded more than a day ago and never assembled.
    pub chunks: usize,
}

/// Deletes bundles last used more than `unused_days` before `today` (with their index
/// entries, when they still name them) and chunks older than a day.
pub async fn expire(store: &Store, unused_days: u32, now: DateTime<Utc>) -> Result<Expired> {
    let today = now.date_naive();
    let mut expired = Expired::default();
    for meta in store.list(&keys::sourcemap_records_root()).await? {
        let path = meta.location.as_ref();
        if !path.contains("/records/") || !path.ends_with(".json") {
            continue;
        }
        let Some(record) = get_optional::<BundleRecord>(store, &meta.location).await? else {
            continue;
        };
        if record.last_used + chrono::Days::new(u64::from(unused_days)) >= today {
            continue;
        }
        let org = record.org.as_str();
        let mut indexes = Vec::new();
        for file in &record.files {
            if let Some(id) = &file.debug_id {
                indexes.push(keys::sourcemap_debug_id(org, id));
            }
            if let Some(release) = &record.release {
                let key = release_url_key(release, record.dist.as_deref(), &file.url);
                indexes.push(keys::sourcemap_release_url(org, &key));
            }
        }
        for index in indexes {
            let entry: Option<IndexEntry> = get_optional(store, &index).await?;
            if entry.is_some_and(|e| e.bundle == record.checksum) {
                store.delete(&index).await?;
            }
        }
        store
            .delete(&keys::sourcemap_bundle(org, &record.checksum))
            .await?;
        store.delete(&meta.location).await?;
        tracing::info!(org, bundle = %record.checksum, last_used = %record.last_used,
            "retention deleted an artifact bundle no event used for sourcemaps.unused_days");
        expired.bundles += 1;
    }
    let day_ago = now - chrono::Duration::days(1);
    for meta in store.list(&keys::chunks_root()).await? {
        if meta.last_modified < day_ago {
            store.delete(&meta.location).await?;
            expired.chunks += 1;
        }
    }
    Ok(expired)
}

/// Marks a bundle as used today.
pub async fn touch(store: &Store, org: &str, checksum: &str, today: NaiveDate) -> Result<()> {
    let path = keys::sourcemap_record(org, checksum);
    if let Some(mut record) = get_optional::<BundleRecord>(store, &path).await?
        && record.last_used < today
    {
        record.last_used = today;
        put_json(store, &path, &record).await?;
    }
    Ok(())
}
