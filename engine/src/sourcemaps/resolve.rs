//! Rewriting minified JavaScript frames with their source maps, as Sentry's JavaScript
//! processing does: original file, line, column, function and context lines; the frames as
//! sent are kept in the exception's `raw_stacktrace`.
//!
//! A frame is looked up by the debug id the SDK lists for its file in `debug_meta.images`
//! (`{type: "sourcemap", code_file, debug_id}`, what `sentry-cli sourcemaps inject` makes
//! possible), else by the event's release and dist and the frame's URL (`~/path` as
//! sentry-cli uploads it, or the URL as sent).

use std::collections::{HashMap, HashSet};

use faultline_protocol::Event;
use serde_json::{Map, Value, json};
use sourcemap::{DecodedMap, SourceView};

use super::bundles::{self, BundleRecord, IndexEntry};
use super::{Error, Lookup, Result, SourceMaps};
use crate::store::keys;

/// Context lines kept on each side of the frame's line (Sentry's count).
const CONTEXT_LINES: usize = 5;
/// Longer source lines are cut around the column (Sentry's limit).
const MAX_LINE_CHARS: usize = 150;
/// Error types this module writes into `errors` (replaced on every resolution).
const OWN_ERRORS: &[&str] = &[
    "js_no_source",
    "js_invalid_source",
    "js_too_large",
    "js_fetch_timeout",
    "js_invalid_sourcemap_location",
];

/// What a frame is looked up by.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum Key {
    DebugId(String),
    Release {
        release: String,
        dist: Option<String>,
        /// The frame's URL or path as sent.
        url: String,
    },
}

impl Key {
    pub(crate) fn cache_key(&self) -> String {
        match self {
            Self::DebugId(id) => format!("debug\u{0}{id}"),
            Self::Release { release, dist, url } => format!(
                "release\u{0}{release}\u{0}{}\u{0}{url}",
                dist.as_deref().unwrap_or_default()
            ),
        }
    }
}

/// A parsed source map with what lookups need.
pub(crate) struct Loaded {
    map: DecodedMap,
    /// The minified file, for original function names.
    minified: Option<SourceView>,
    /// The map's URL (`~/dist/app.js.map`): relative sources are resolved against it.
    map_url: String,
    pub(crate) bundle: String,
    /// Estimated bytes in memory.
    pub(crate) weight: usize,
    /// How the map was found: `debug-id` or `release`.
    via: &'static str,
}

/// True if the event may have frames to resolve (a cheap test on the columns and JSON).
pub(crate) fn is_candidate(event: &Event) -> bool {
    matches!(event.platform.as_str(), "javascript" | "node")
        && event.frame_count > 0
        && (event.release.is_some() || event.json.contains("\"sourcemap\""))
}

/// The path of a frame's file: `abs_path`, else `filename`.
fn frame_path(frame: &Map<String, Value>) -> Option<&str> {
    frame
        .get("abs_path")
        .and_then(Value::as_str)
        .or_else(|| frame.get("filename").and_then(Value::as_str))
        .filter(|p| !p.is_empty())
}

fn position(frame: &Map<String, Value>) -> Option<(u32, u32)> {
    let line = frame.get("lineno").and_then(Value::as_u64)?;
    let col = frame.get("colno").and_then(Value::as_u64)?;
    Some((
        u32::try_from(line).ok()?.checked_sub(1)?,
        u32::try_from(col).ok()?.checked_sub(1)?,
    ))
}

/// `code_file -> debug_id` of the event's source map images.
fn images(root: &Map<String, Value>) -> HashMap<String, String> {
    root.get("debug_meta")
        .and_then(|d| d.get("images"))
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .filter(|image| image.get("type").and_then(Value::as_str) == Some("sourcemap"))
        .filter_map(|image| {
            let file = image.get("code_file")?.as_str()?;
            let id = image.get("debug_id")?.as_str()?;
            Some((file.to_owned(), bundles::normalize_debug_id(id)?))
        })
        .collect()
}

fn platform_is_js(root: &Map<String, Value>) -> bool {
    matches!(
        root.get("platform").and_then(Value::as_str),
        Some("javascript" | "node")
    )
}

/// The key of a frame that is still minified, if it has a position and a way to be found.
fn key_of(
    frame: &Map<String, Value>,
    images: &HashMap<String, String>,
    release: Option<(&str, Option<&str>)>,
) -> Option<Key> {
    if frame
        .get("data")
        .and_then(|d| d.get("sourcemap"))
        .is_some_and(|s| !s.is_null())
    {
        return None; // resolved already
    }
    position(frame)?;
    let path = frame_path(frame)?;
    if let Some(id) = images.get(path) {
        return Some(Key::DebugId(id.clone()));
    }
    let (release, dist) = release?;
    Some(Key::Release {
        release: release.to_owned(),
        dist: dist.map(str::to_owned),
        url: path.to_owned(),
    })
}

fn release_of(root: &Map<String, Value>) -> Option<(&str, Option<&str>)> {
    let release = root.get("release").and_then(Value::as_str)?;
    Some((release, root.get("dist").and_then(Value::as_str)))
}

fn frames_of(exception: &Value) -> Option<&Vec<Value>> {
    exception.get("stacktrace")?.get("frames")?.as_array()
}

/// The keys of every frame to look up.
pub(crate) fn wanted(root: &Map<String, Value>) -> HashSet<Key> {
    let mut keys = HashSet::new();
    if !platform_is_js(root) {
        return keys;
    }
    let images = images(root);
    let release = release_of(root);
    if images.is_empty() && release.is_none() {
        return keys;
    }
    let exceptions = root
        .get("exception")
        .and_then(|e| e.get("values"))
        .and_then(Value::as_array);
    for exception in exceptions.into_iter().flatten() {
        for frame in frames_of(exception).into_iter().flatten() {
            if let Some(frame) = frame.as_object()
                && let Some(key) = key_of(frame, &images, release)
            {
                keys.insert(key);
            }
        }
    }
    keys
}

/// Rewrites every frame whose lookup found a map; records why others could not be. True if
/// the event changed.
pub(crate) fn apply(root: &mut Map<String, Value>, found: &HashMap<Key, Lookup>) -> bool {
    let images = images(root);
    let release = release_of(root).map(|(r, d)| (r.to_owned(), d.map(str::to_owned)));
    let release = release.as_ref().map(|(r, d)| (r.as_str(), d.as_deref()));
    let mut errors: Vec<Value> = Vec::new();
    let mut seen_errors = HashSet::new();
    let mut changed = false;
    let Some(Value::Array(exceptions)) =
        root.get_mut("exception").and_then(|e| e.get_mut("values"))
    else {
        return false;
    };
    for exception in exceptions.iter_mut() {
        let Some(frames) = exception
            .get("stacktrace")
            .and_then(|s| s.get("frames"))
            .and_then(Value::as_array)
        else {
            continue;
        };
        let raw = Value::Array(frames.clone());
        let mut new_frames = frames.clone();
        let mut rewritten = false;
        for frame in new_frames.iter_mut().filter_map(Value::as_object_mut) {
            let Some(key) = key_of(frame, &images, release) else {
                continue;
            };
            let url = frame_path(frame).unwrap_or_default().to_owned();
            let mut error = |kind: &str, extra: Value| {
                if seen_errors.insert((kind.to_owned(), url.clone())) {
                    let mut e = json!({"type": kind, "url": url});
                    if let (Some(e), Value::Object(extra)) = (e.as_object_mut(), extra) {
                        e.extend(extra);
                    }
                    errors.push(e);
                }
            };
            let by_debug_id = matches!(key, Key::DebugId(_));
            match found.get(&key) {
                Some(Lookup::Found(map)) => match rewrite(frame, map) {
                    Ok(()) => rewritten = true,
                    Err((line, col)) => error(
                        "js_invalid_sourcemap_location",
                        json!({"row": line + 1, "column": col + 1}),
                    ),
                },
                // without a debug id, a file not uploaded for the release is not an error:
                // most frames of most events (libraries, unminified code) have none
                Some(Lookup::Missing) if by_debug_id => error("js_no_source", Value::Null),
                Some(Lookup::Invalid(reason)) => {
                    error("js_invalid_source", json!({"reason": reason}))
                }
                Some(Lookup::TooLarge(reason)) => error("js_too_large", json!({"reason": reason})),
                Some(Lookup::TimedOut) => error("js_fetch_timeout", Value::Null),
                Some(Lookup::Unavailable) => error(
                    "js_fetch_timeout",
                    json!({"reason": "the object store did not answer"}),
                ),
                Some(Lookup::Missing) | None => {}
            }
        }
        if rewritten {
            changed = true;
            if let Some(exception) = exception.as_object_mut() {
                if !exception.contains_key("raw_stacktrace") {
                    exception.insert("raw_stacktrace".to_owned(), json!({"frames": raw}));
                }
                if let Some(Value::Object(stacktrace)) = exception.get_mut("stacktrace") {
                    stacktrace.insert("frames".to_owned(), Value::Array(new_frames));
                }
            }
        }
    }
    // this module's earlier errors are replaced by the ones of this run
    let mut all: Vec<Value> = match root.remove("errors") {
        Some(Value::Array(all)) => all,
        _ => Vec::new(),
    };
    let before = all.len();
    all.retain(|e| {
        !e.get("type")
            .and_then(Value::as_str)
            .is_some_and(|t| OWN_ERRORS.contains(&t))
    });
    changed |= all.len() != before || !errors.is_empty();
    all.extend(errors);
    if !all.is_empty() {
        root.insert("errors".to_owned(), Value::Array(all));
    }
    changed
}

/// Rewrites one frame with its map; the minified position when the map has no mapping there.
fn rewrite(frame: &mut Map<String, Value>, map: &Loaded) -> std::result::Result<(), (u32, u32)> {
    let Some((line, col)) = position(frame) else {
        return Ok(());
    };
    let token = map
        .map
        .lookup_token(line, col)
        // the closest mapping before the position may be on an earlier line: that is none
        .filter(|t| t.get_dst_line() == line)
        .ok_or((line, col))?;
    let Some(source) = token.get_source() else {
        return Err((line, col));
    };
    let abs_path = join_url(&map.map_url, source);
    let src_line = token.get_src_line();
    let minified_name = frame
        .get("function")
        .and_then(Value::as_str)
        .map(|f| f.rsplit('.').next().unwrap_or(f).to_owned());
    let original_name = minified_name.as_deref().and_then(|name| {
        map.map
            .get_original_function_name(line, col, Some(name), map.minified.as_ref())
            .map(str::to_owned)
    });
    if let Some(view) = token.get_source_view() {
        let at = |i: usize| {
            u32::try_from(i)
                .ok()
                .and_then(|i| view.get_line(i))
                // the empty "line" after a final newline is none
                .filter(|l| !(l.is_empty() && i + 1 >= view.line_count()))
                .map(|l| Value::String(trim_line(l, token.get_src_col() as usize)))
        };
        let line = src_line as usize;
        if let Some(context) = at(line) {
            frame.insert("context_line".to_owned(), context);
            let pre: Vec<Value> = (line.saturating_sub(CONTEXT_LINES)..line)
                .filter_map(at)
                .collect();
            let post: Vec<Value> = (line + 1..=line + CONTEXT_LINES).filter_map(at).collect();
            frame.insert("pre_context".to_owned(), Value::Array(pre));
            frame.insert("post_context".to_owned(), Value::Array(post));
        }
    } else {
        for key in ["context_line", "pre_context", "post_context"] {
            frame.remove(key);
        }
    }
    if let Some(name) = original_name {
        frame.insert("function".to_owned(), Value::String(name));
    }
    frame.insert("filename".to_owned(), Value::String(filename_of(&abs_path)));
    // as Sentry: code under node_modules is never the application's
    if abs_path.contains("/node_modules/") || abs_path.contains("/~/") {
        frame.insert("in_app".to_owned(), Value::Bool(false));
    }
    frame.insert("abs_path".to_owned(), Value::String(abs_path));
    frame.insert("lineno".to_owned(), json!(src_line + 1));
    frame.insert("colno".to_owned(), json!(token.get_src_col() + 1));
    // the module an SDK derives from the minified file's name
    frame.remove("module");
    let data = frame
        .entry("data")
        .or_insert_with(|| Value::Object(Map::new()));
    if !data.is_object() {
        *data = Value::Object(Map::new());
    }
    if let Some(data) = data.as_object_mut() {
        data.insert("sourcemap".to_owned(), Value::String(map.map_url.clone()));
        data.insert(
            "resolved_with".to_owned(),
            Value::String(map.via.to_owned()),
        );
    }
    Ok(())
}

/// A source line, cut to about [`MAX_LINE_CHARS`] characters around `col` when longer.
fn trim_line(line: &str, col: usize) -> String {
    let line = line.trim_end_matches(['\r', '\n']);
    let count = line.chars().count();
    if count <= MAX_LINE_CHARS {
        return line.to_owned();
    }
    let window = MAX_LINE_CHARS - 10;
    let start = col.saturating_sub(window / 2).min(count - window);
    let end = start + window;
    let mut out = String::new();
    if start > 0 {
        out.push_str("{snip} ");
    }
    out.extend(line.chars().skip(start).take(window));
    if end < count {
        out.push_str(" {snip}");
    }
    out
}

/// True if `url` starts with a scheme (`https:`, `webpack:`, `app:`, `data:`).
fn has_scheme(url: &str) -> bool {
    url.find(':').is_some_and(|i| {
        i >= 2
            && url[..i]
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'))
    })
}

/// `(origin, path)`: `https://host` or `~` or `` and the rest.
fn split_origin(url: &str) -> (&str, &str) {
    if let Some(i) = url.find("://") {
        let after = i + 3;
        let end = url[after..].find('/').map_or(url.len(), |j| after + j);
        return (&url[..end], &url[end..]);
    }
    if let Some(rest) = url.strip_prefix('~') {
        return ("~", rest);
    }
    ("", url)
}

/// Resolves `rel` against `base` as a browser resolves a URL (`~/` counts as an origin).
pub(crate) fn join_url(base: &str, rel: &str) -> String {
    if has_scheme(rel) {
        return rel.to_owned();
    }
    let (origin, path) = split_origin(base);
    let joined = if rel.starts_with('/') {
        rel.to_owned()
    } else {
        let dir = path.rfind('/').map_or("", |i| &path[..=i]);
        format!("{dir}{rel}")
    };
    let absolute = joined.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for part in joined.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            other => parts.push(other),
        }
    }
    let mut out = origin.to_owned();
    if absolute || !origin.is_empty() {
        out.push('/');
    }
    out.push_str(&parts.join("/"));
    out
}

/// The `filename` of a resolved frame: its path without scheme, host or `~`.
pub(crate) fn filename_of(abs_path: &str) -> String {
    let (_, path) = split_origin(abs_path);
    let path = path.trim_start_matches('/');
    if path.is_empty() {
        abs_path.to_owned()
    } else {
        path.to_owned()
    }
}

/// The URLs a frame's path may have been uploaded as: `~/path` (sentry-cli's default
/// prefix), then the path as sent; without query or fragment.
fn upload_urls(path: &str) -> Vec<String> {
    let bare = path.split(['?', '#']).next().unwrap_or(path);
    let (origin, rest) = split_origin(bare);
    let mut urls = Vec::with_capacity(2);
    if origin != "~" && rest.starts_with('/') {
        urls.push(format!("~{rest}"));
    }
    urls.push(bare.to_owned());
    urls
}

/// Finds and parses the map of `key` for `project`; `None` when no bundle holds it.
pub(crate) async fn load(
    maps: &SourceMaps,
    org: &str,
    project: &str,
    key: &Key,
) -> Result<Option<Loaded>> {
    let store = maps.store();
    match key {
        Key::DebugId(id) => {
            let entry: Option<IndexEntry> =
                bundles::get_optional(store, &keys::sourcemap_debug_id(org, id)).await?;
            let Some(entry) = entry else {
                return Ok(None);
            };
            let Some(record) = usable_record(maps, org, project, &entry.bundle).await? else {
                return Ok(None);
            };
            let Some(map_file) = record.by_debug_id(id, "source_map").cloned() else {
                return Ok(None);
            };
            let minified = record
                .by_debug_id(id, "minified_source")
                .map(|f| f.path.clone());
            let data = store
                .get(&keys::sourcemap_bundle(org, &record.checksum))
                .await?;
            let max = maps.config().max_file_size.as_u64();
            let bundle = record.checksum.clone();
            let loaded = tokio::task::spawn_blocking(move || {
                let map = bundles::read_file(&data, &map_file.path, max)?;
                let minified = match minified {
                    Some(path) => Some(bundles::read_file(&data, &path, max)?),
                    None => None,
                };
                parse(&map, minified, map_file.url, bundle, "debug-id")
            })
            .await
            .map_err(|e| Error::BadBundle(e.to_string()))??;
            Ok(Some(loaded))
        }
        Key::Release { release, dist, url } => {
            for candidate in upload_urls(url) {
                let index = bundles::release_url_key(release, dist.as_deref(), &candidate);
                let entry: Option<IndexEntry> =
                    bundles::get_optional(store, &keys::sourcemap_release_url(org, &index)).await?;
                let Some(entry) = entry else {
                    continue;
                };
                let Some(record) = usable_record(maps, org, project, &entry.bundle).await? else {
                    continue;
                };
                let Some(file) = record.by_url(&candidate).cloned() else {
                    continue;
                };
                let data = store
                    .get(&keys::sourcemap_bundle(org, &record.checksum))
                    .await?;
                let max = maps.config().max_file_size.as_u64();
                let bundle = record.checksum.clone();
                let found = tokio::task::spawn_blocking(move || {
                    load_by_url(&data, &record, &file, max, bundle)
                })
                .await
                .map_err(|e| Error::BadBundle(e.to_string()))??;
                let (map_url, minified) = match found {
                    ByUrl::Loaded(loaded) => return Ok(Some(*loaded)),
                    ByUrl::Nothing => return Ok(None),
                    ByUrl::MapElsewhere { map_url, minified } => (map_url, minified),
                };
                // the map was uploaded on its own (release files, or another upload)
                let index = bundles::release_url_key(release, dist.as_deref(), &map_url);
                let entry: Option<IndexEntry> =
                    bundles::get_optional(store, &keys::sourcemap_release_url(org, &index)).await?;
                let Some(entry) = entry else {
                    return Ok(None);
                };
                let Some(other) = usable_record(maps, org, project, &entry.bundle).await? else {
                    return Ok(None);
                };
                let Some(map_file) = other.by_url(&map_url).cloned() else {
                    return Ok(None);
                };
                let data = store
                    .get(&keys::sourcemap_bundle(org, &other.checksum))
                    .await?;
                let bundle = other.checksum.clone();
                let loaded = tokio::task::spawn_blocking(move || {
                    let map = bundles::read_file(&data, &map_file.path, max)?;
                    parse(&map, Some(minified), map_url, bundle, "release")
                })
                .await
                .map_err(|e| Error::BadBundle(e.to_string()))??;
                return Ok(Some(loaded));
            }
            Ok(None)
        }
    }
}

/// What a minified file's bundle says about its map.
enum ByUrl {
    Loaded(Box<Loaded>),
    /// No map is named.
    Nothing,
    /// The map is named but not in this bundle.
    MapElsewhere {
        map_url: String,
        minified: Vec<u8>,
    },
}

async fn usable_record(
    maps: &SourceMaps,
    org: &str,
    project: &str,
    bundle: &str,
) -> Result<Option<BundleRecord>> {
    Ok(bundles::record(maps.store(), org, bundle)
        .await?
        .filter(|r| r.serves(project)))
}

/// The map of a minified file of a bundle: by its `Sourcemap` header or its
/// `sourceMappingURL` comment, in the same bundle (or inline as a data URL).
fn load_by_url(
    data: &[u8],
    record: &BundleRecord,
    file: &bundles::BundleFile,
    max: u64,
    bundle: String,
) -> Result<ByUrl> {
    if file.kind == "source_map" {
        let map = bundles::read_file(data, &file.path, max)?;
        let loaded = parse(&map, None, file.url.clone(), bundle, "release")?;
        return Ok(ByUrl::Loaded(Box::new(loaded)));
    }
    let minified = bundles::read_file(data, &file.path, max)?;
    let reference = match &file.sourcemap {
        Some(reference) => Some(reference.clone()),
        None => sourcemap::locate_sourcemap_reference_slice(&minified)
            .ok()
            .flatten()
            .map(|r| r.get_url().to_owned()),
    };
    let Some(reference) = reference else {
        return Ok(ByUrl::Nothing);
    };
    if reference.starts_with("data:") {
        let map = sourcemap::decode_data_url(&reference)
            .map_err(|e| Error::BadBundle(format!("{}: inline source map: {e}", file.url)))?;
        let weight = minified.len() * 3;
        return Ok(ByUrl::Loaded(Box::new(Loaded {
            map,
            minified: std::str::from_utf8(&minified)
                .ok()
                .map(|s| SourceView::from_string(s.to_owned())),
            map_url: file.url.clone(),
            bundle,
            weight,
            via: "release",
        })));
    }
    let map_url = join_url(&file.url, &reference);
    let Some(map_file) = record.by_url(&map_url) else {
        return Ok(ByUrl::MapElsewhere { map_url, minified });
    };
    let map = bundles::read_file(data, &map_file.path, max)?;
    let loaded = parse(&map, Some(minified), map_url, bundle, "release")?;
    Ok(ByUrl::Loaded(Box::new(loaded)))
}

fn parse(
    map: &[u8],
    minified: Option<Vec<u8>>,
    map_url: String,
    bundle: String,
    via: &'static str,
) -> Result<Loaded> {
    let decoded = sourcemap::decode_slice(map)
        .map_err(|e| Error::BadBundle(format!("{map_url}: not a valid source map: {e}")))?;
    let minified_len = minified.as_ref().map_or(0, Vec::len);
    let minified = minified
        .and_then(|bytes| String::from_utf8(bytes).ok())
        .map(SourceView::from_string);
    Ok(Loaded {
        map: decoded,
        minified,
        map_url,
        bundle,
        // parsed tokens and sources take a few times the text's size
        weight: map.len() * 3 + minified_len * 2,
        via,
    })
}

#[cfg(test)]
pub(crate) fn loaded_for_tests(
    map: &[u8],
    minified: Option<&str>,
    map_url: &str,
) -> std::sync::Arc<Loaded> {
    std::sync::Arc::new(
        parse(
            map,
            minified.map(|m| m.as_bytes().to_vec()),
            map_url.to_owned(),
            "bundle".to_owned(),
            "debug-id",
        )
        .expect("a valid map"),
    )
}
