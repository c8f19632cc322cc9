use std::io::Write;

use bytes::Bytes;
use chrono::{Duration as Days, Utc};
use faultline_protocol::grouping;
use faultline_protocol::normalize::{NormalizeContext, normalize_event};
use serde_json::{Value, json};
use sourcemap::SourceMapBuilder;

use super::bundles::{self, AssembleRequest, sha1_hex};
use super::resolve::{filename_of, join_url};
use super::*;
use crate::store::keys;

/// The original source every build below is made from.
const ORIGINAL: &str = "// cart\nfunction checkoutTotal(items) {\n  if (!items.length) {\n    throw new Error(\"empty cart\");\n  }\n  return items.length;\n}\n";

/// A "minified build" of [`ORIGINAL`]: `prefix` before the function, the function named `name`.
pub(crate) fn build(prefix: &str, name: &str) -> (String, Vec<u8>, u32) {
    let minified = format!(
        "{prefix}function {name}(b){{if(!b.length)throw new Error(\"empty cart\");return b.length}}"
    );
    let at = |needle: &str| u32::try_from(minified.find(needle).expect("in the build")).unwrap();
    let mut builder = SourceMapBuilder::new(Some("app.min.js"));
    let source = "../src/cart.js";
    builder.add(0, at("function"), 1, 0, Some(source), None, false);
    builder.add(
        0,
        at(&format!("{name}(")),
        1,
        9,
        Some(source),
        Some("checkoutTotal"),
        false,
    );
    builder.add(0, at("new Error"), 3, 10, Some(source), None, false);
    builder.add(0, at("return"), 5, 2, Some(source), None, false);
    let id = builder.add_source(source);
    builder.set_source_contents(id, Some(ORIGINAL));
    let mut map = Vec::new();
    builder.into_sourcemap().to_writer(&mut map).unwrap();
    let column = at("new Error") + 1;
    (minified, map, column)
}

/// sentry-cli's bundle: a zip with `manifest.json`.
pub(crate) fn bundle(debug_id: &str, minified: &str, map: &[u8]) -> Vec<u8> {
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    let manifest = json!({"files": {
        "files/_/_/assets/app.min.js": {"type": "minified_source", "url": "~/assets/app.min.js",
            "headers": {"debug-id": debug_id, "Sourcemap": "app.min.js.map"}},
        "files/_/_/assets/app.min.js.map": {"type": "source_map", "url": "~/assets/app.min.js.map",
            "headers": {"debug-id": debug_id}},
    }});
    for (path, data) in [
        ("manifest.json", serde_json::to_vec(&manifest).unwrap()),
        ("files/_/_/assets/app.min.js", minified.as_bytes().to_vec()),
        ("files/_/_/assets/app.min.js.map", map.to_vec()),
    ] {
        zip.start_file(path, options).unwrap();
        zip.write_all(&data).unwrap();
    }
    zip.finish().unwrap().into_inner()
}

/// A browser event thrown at `column` of line 1 of the build, naming `debug_id` for its file.
fn event(function: &str, column: u32, debug_id: &str) -> faultline_protocol::Event {
    let url = "http://localhost:8080/assets/app.min.js";
    let payload = json!({
        "platform": "javascript",
        "exception": {"values": [{"type": "Error", "value": "empty cart",
            "stacktrace": {"frames": [
                {"abs_path": url, "filename": url, "function": function, "lineno": 1,
                 "colno": column, "in_app": true},
            ]}}]},
        "debug_meta": {"images": [{"type": "sourcemap", "code_file": url, "debug_id": debug_id}]},
    });
    normalize_event(
        &serde_json::to_vec(&payload).unwrap(),
        &NormalizeContext {
            received: Utc::now(),
            client_ip: None,
            event_id: None,
        },
    )
    .unwrap()
}

/// Uploads `data` in chunks of `size` bytes and assembles it for project `web`.
async fn upload(store: &Store, data: &[u8], size: usize) -> Assembled {
    let chunks: Vec<&[u8]> = data.chunks(size).collect();
    let request = || AssembleRequest {
        checksum: sha1_hex(data),
        chunks: chunks.iter().map(|c| sha1_hex(c)).collect(),
        projects: vec!["web".to_owned()],
        release: None,
        dist: None,
    };
    for chunk in &chunks {
        bundles::put_chunk(
            store,
            "acme",
            &sha1_hex(chunk),
            Bytes::copy_from_slice(chunk),
        )
        .await
        .unwrap();
    }
    bundles::assemble(store, "acme", request(), 1 << 30)
        .await
        .unwrap()
}

const ID_A: &str = "c0ffee00-0000-4000-8000-00000000000a";
const ID_B: &str = "C0FFEE00-0000-4000-8000-00000000000B";

#[tokio::test]
async fn assemble_names_exactly_the_missing_chunks_then_stores_and_indexes_the_bundle() {
    let store = Store::memory();
    let (minified, map, _) = build("", "a");
    let data = bundle(ID_A, &minified, &map);
    let chunks: Vec<&[u8]> = data.chunks(100).collect();
    assert!(chunks.len() >= 3);
    let request = || AssembleRequest {
        checksum: sha1_hex(&data),
        chunks: chunks.iter().map(|c| sha1_hex(c)).collect(),
        projects: vec!["web".to_owned()],
        release: Some("shop@1".to_owned()),
        dist: None,
    };
    let first = bundles::assemble(&store, "acme", request(), 1 << 30)
        .await
        .unwrap();
    assert_eq!(first.state, "not_found");
    assert_eq!(first.missing_chunks, request().chunks);
    bundles::put_chunk(
        &store,
        "acme",
        &sha1_hex(chunks[1]),
        Bytes::copy_from_slice(chunks[1]),
    )
    .await
    .unwrap();
    let second = bundles::assemble(&store, "acme", request(), 1 << 30)
        .await
        .unwrap();
    let mut expected = request().chunks;
    expected.remove(1);
    assert_eq!(second.missing_chunks, expected);
    // a chunk under a name that is not its SHA-1 is refused
    let wrong = bundles::put_chunk(&store, "acme", &sha1_hex(b"other"), Bytes::from("x")).await;
    assert!(
        matches!(wrong, Err(Error::ChunkChecksum { .. })),
        "{wrong:?}"
    );
    for chunk in &chunks {
        bundles::put_chunk(
            &store,
            "acme",
            &sha1_hex(chunk),
            Bytes::copy_from_slice(chunk),
        )
        .await
        .unwrap();
    }
    let done = bundles::assemble(&store, "acme", request(), 1 << 30)
        .await
        .unwrap();
    assert_eq!((done.state, done.missing_chunks.len()), ("ok", 0));
    let checksum = sha1_hex(&data);
    let record = bundles::record(&store, "acme", &checksum)
        .await
        .unwrap()
        .expect("a record");
    assert_eq!(record.projects, ["web"]);
    assert_eq!(record.files.len(), 2);
    let map_file = record.by_debug_id(ID_A, "source_map").expect("the map");
    assert_eq!(map_file.url, "~/assets/app.min.js.map");
    let minified_file = record.by_debug_id(ID_A, "minified_source").unwrap();
    assert_eq!(minified_file.sourcemap.as_deref(), Some("app.min.js.map"));
    assert!(
        store
            .get(&keys::sourcemap_debug_id("acme", ID_A))
            .await
            .is_ok()
    );
    let key = bundles::release_url_key("shop@1", None, "~/assets/app.min.js");
    assert!(
        store
            .get(&keys::sourcemap_release_url("acme", &key))
            .await
            .is_ok()
    );
    assert!(
        store
            .list(&keys::chunk_prefix("acme"))
            .await
            .unwrap()
            .is_empty(),
        "chunks are deleted once assembled"
    );
    // asking again answers ok at once
    let again = bundles::assemble(&store, "acme", request(), 1 << 30)
        .await
        .unwrap();
    assert_eq!(again.state, "ok");
}

#[tokio::test]
async fn a_bundle_that_is_no_zip_or_too_large_is_an_error_naming_why() {
    let store = Store::memory();
    let not_zip = upload(&store, b"just some text, no zip", 8).await;
    assert_eq!(not_zip.state, "error");
    assert!(
        not_zip.detail.as_deref().unwrap().contains("not a zip"),
        "{not_zip:?}"
    );
    let data = vec![7u8; 64];
    for chunk in data.chunks(32) {
        bundles::put_chunk(
            &store,
            "acme",
            &sha1_hex(chunk),
            Bytes::copy_from_slice(chunk),
        )
        .await
        .unwrap();
    }
    let request = AssembleRequest {
        checksum: sha1_hex(&data),
        chunks: data.chunks(32).map(sha1_hex).collect(),
        projects: vec!["web".to_owned()],
        ..AssembleRequest::default()
    };
    // exactly at the limit is accepted as far as size goes (then fails as no zip)
    let at_limit = bundles::assemble(&store, "acme", request.clone(), 64)
        .await
        .unwrap();
    assert!(at_limit.detail.unwrap().contains("not a zip"));
    let over = bundles::assemble(&store, "acme", request.clone(), 63)
        .await
        .unwrap();
    assert_eq!(over.state, "error");
    assert!(
        over.detail
            .as_deref()
            .unwrap()
            .contains("exceeds sourcemaps.max_bundle_size of 63 bytes"),
        "{over:?}"
    );
    let no_projects = bundles::assemble(
        &store,
        "acme",
        AssembleRequest {
            projects: Vec::new(),
            ..request
        },
        64,
    )
    .await;
    assert!(matches!(no_projects, Err(Error::NoProjects)));
}

#[tokio::test]
async fn frames_are_resolved_before_grouping_so_two_builds_are_one_issue() {
    let store = Store::memory();
    let maps = SourceMaps::new(store.clone(), SourcemapsConfig::default());
    let (min_a, map_a, col_a) = build("", "a");
    let (min_b, map_b, col_b) = build("var x=1;", "q");
    assert_ne!(col_a, col_b);

    // an organization that never uploaded a bundle: stored as sent, not even looked at
    let before = maps
        .resolve_event("acme", "web", event("a", col_a, ID_A))
        .await;
    let json: Value = serde_json::from_str(&before.json).unwrap();
    assert_eq!(json["errors"], Value::Null, "{json}");
    let frame = &json["exception"]["values"][0]["stacktrace"]["frames"][0];
    assert_eq!(frame["function"], "a");
    let unresolved_a = grouping::grouping_of(&before).hash.clone();
    let unresolved_b = grouping::grouping_of(&event("q", col_b, ID_B)).hash.clone();
    assert_ne!(
        unresolved_a, unresolved_b,
        "minified frames differ per build"
    );

    assert_eq!(
        upload(&store, &bundle(ID_A, &min_a, &map_a), 1000)
            .await
            .state,
        "ok"
    );
    maps.uploaded();
    // once it uploads: a debug id no bundle has is stored as sent, with js_no_source
    let missing = maps
        .resolve_event("acme", "web", event("q", col_b, ID_B))
        .await;
    let json: Value = serde_json::from_str(&missing.json).unwrap();
    assert_eq!(json["errors"][0]["type"], "js_no_source", "{json}");
    assert_eq!(
        json["errors"][0]["url"],
        "http://localhost:8080/assets/app.min.js"
    );
    assert_eq!(
        upload(&store, &bundle(ID_B, &min_b, &map_b), 1000)
            .await
            .state,
        "ok"
    );
    maps.uploaded();

    let a = maps
        .resolve_event("acme", "web", event("a", col_a, ID_A))
        .await;
    let b = maps
        .resolve_event("acme", "web", event("q", col_b, ID_B))
        .await;
    let json: Value = serde_json::from_str(&a.json).unwrap();
    let exception = &json["exception"]["values"][0];
    let frame = &exception["stacktrace"]["frames"][0];
    assert_eq!(frame["abs_path"], "~/src/cart.js", "{frame}");
    assert_eq!(frame["filename"], "src/cart.js");
    assert_eq!(frame["lineno"], 4);
    assert_eq!(frame["colno"], 11);
    assert_eq!(frame["function"], "checkoutTotal");
    assert_eq!(
        frame["context_line"],
        "    throw new Error(\"empty cart\");"
    );
    assert_eq!(
        frame["pre_context"],
        json!([
            "// cart",
            "function checkoutTotal(items) {",
            "  if (!items.length) {"
        ])
    );
    assert_eq!(
        frame["post_context"],
        json!(["  }", "  return items.length;", "}"])
    );
    assert_eq!(frame["data"]["sourcemap"], "~/assets/app.min.js.map");
    assert_eq!(frame["in_app"], true);
    let raw = &exception["raw_stacktrace"]["frames"][0];
    assert_eq!(raw["function"], "a");
    assert_eq!(raw["colno"], col_a);
    assert!(json.get("errors").is_none(), "{json}");
    assert!(
        a.culprit
            .as_deref()
            .is_some_and(|c| c.contains("checkoutTotal")),
        "{:?}",
        a.culprit
    );
    let hash_a = grouping::grouping_of(&a).hash.clone();
    let hash_b = grouping::grouping_of(&b).hash.clone();
    assert_eq!(hash_a, hash_b, "two builds of one bug are one issue");

    // another project of the organization may not use these bundles
    let other = maps
        .resolve_event("acme", "api", event("a", col_a, ID_A))
        .await;
    let json: Value = serde_json::from_str(&other.json).unwrap();
    assert_eq!(json["errors"][0]["type"], "js_no_source");

    // resolving a resolved event changes nothing
    let mut root: Value = serde_json::from_str(&a.json).unwrap();
    let root = root.as_object_mut().unwrap();
    assert!(!maps.resolve_value("acme", "web", root).await);
}

#[tokio::test]
async fn a_broken_map_is_stored_unresolved_with_js_invalid_source() {
    let store = Store::memory();
    let maps = SourceMaps::new(store.clone(), SourcemapsConfig::default());
    let (min_a, _, col_a) = build("", "a");
    let data = bundle(ID_A, &min_a, b"{\"version\": 3, \"mappings\": 12}");
    assert_eq!(upload(&store, &data, 1000).await.state, "ok");
    let event = maps
        .resolve_event("acme", "web", event("a", col_a, ID_A))
        .await;
    let json: Value = serde_json::from_str(&event.json).unwrap();
    assert_eq!(json["errors"][0]["type"], "js_invalid_source", "{json}");
    assert!(
        json["errors"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("not a valid source map")
    );
    assert_eq!(
        json["exception"]["values"][0]["stacktrace"]["frames"][0]["function"],
        "a"
    );
}

#[tokio::test]
async fn a_map_over_max_file_size_is_skipped_with_js_too_large() {
    let store = Store::memory();
    let (min_a, map_a, col_a) = build("", "a");
    let config = SourcemapsConfig {
        max_file_size: faultline_config::ByteSize::b(map_a.len() as u64 - 1),
        ..SourcemapsConfig::default()
    };
    let maps = SourceMaps::new(store.clone(), config);
    assert_eq!(
        upload(&store, &bundle(ID_A, &min_a, &map_a), 1000)
            .await
            .state,
        "ok"
    );
    let event = maps
        .resolve_event("acme", "web", event("a", col_a, ID_A))
        .await;
    let json: Value = serde_json::from_str(&event.json).unwrap();
    assert_eq!(json["errors"][0]["type"], "js_too_large", "{json}");
    assert!(
        json["errors"][0]["reason"]
            .as_str()
            .unwrap()
            .contains("exceeds sourcemaps.max_file_size")
    );
}

#[tokio::test]
async fn retention_deletes_bundles_unused_for_unused_days_and_old_chunks() {
    let store = Store::memory();
    let (min_a, map_a, _) = build("", "a");
    let (min_b, map_b, _) = build("var x=1;", "q");
    let old = bundle(ID_A, &min_a, &map_a);
    let fresh = bundle(ID_B, &min_b, &map_b);
    upload(&store, &old, 1000).await;
    upload(&store, &fresh, 1000).await;
    let now = Utc::now();
    // last used exactly unused_days ago stays; a day more goes
    bundles::touch(&store, "acme", &sha1_hex(&fresh), now.date_naive())
        .await
        .unwrap();
    let path = keys::sourcemap_record("acme", &sha1_hex(&old));
    let mut record: BundleRecord = store.get_json(&path).await.unwrap();
    record.last_used = (now - Days::days(91)).date_naive();
    store
        .put_durable(&path, Bytes::from(serde_json::to_vec(&record).unwrap()))
        .await
        .unwrap();
    let mut fresh_record: BundleRecord = store
        .get_json(&keys::sourcemap_record("acme", &sha1_hex(&fresh)))
        .await
        .unwrap();
    fresh_record.last_used = (now - Days::days(90)).date_naive();
    store
        .put_durable(
            &keys::sourcemap_record("acme", &sha1_hex(&fresh)),
            Bytes::from(serde_json::to_vec(&fresh_record).unwrap()),
        )
        .await
        .unwrap();
    let expired = bundles::expire(&store, 90, now).await.unwrap();
    assert_eq!(expired.bundles, 1);
    assert!(
        bundles::record(&store, "acme", &sha1_hex(&old))
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        store
            .get(&keys::sourcemap_bundle("acme", &sha1_hex(&old)))
            .await
            .is_err()
    );
    assert!(
        store
            .get(&keys::sourcemap_debug_id("acme", ID_A))
            .await
            .is_err()
    );
    assert!(
        bundles::record(&store, "acme", &sha1_hex(&fresh))
            .await
            .unwrap()
            .is_some()
    );
    let id_b = bundles::normalize_debug_id(ID_B).unwrap();
    assert_eq!(bundles::normalize_debug_id("../../x"), None);
    assert!(
        store
            .get(&keys::sourcemap_debug_id("acme", &id_b))
            .await
            .is_ok()
    );
    // a chunk uploaded just now is kept (only day-old chunks go)
    bundles::put_chunk(&store, "acme", &sha1_hex(b"c"), Bytes::from_static(b"c"))
        .await
        .unwrap();
    assert_eq!(bundles::expire(&store, 90, now).await.unwrap().chunks, 0);
    let later = bundles::expire(&store, 90, now + Days::days(2))
        .await
        .unwrap();
    assert_eq!(later.chunks, 1);
}

#[test]
fn urls_join_and_name_files_as_a_browser_would() {
    assert_eq!(join_url("~/dist/app.js.map", "../src/a.js"), "~/src/a.js");
    assert_eq!(
        join_url("https://cdn.example.com/js/app.js.map", "./b/c.ts"),
        "https://cdn.example.com/js/b/c.ts"
    );
    assert_eq!(
        join_url("https://cdn.example.com/js/app.js.map", "/abs.ts"),
        "https://cdn.example.com/abs.ts"
    );
    assert_eq!(
        join_url("~/app.js.map", "webpack://shop/./src/x.js"),
        "webpack://shop/./src/x.js"
    );
    assert_eq!(join_url("~/a/b.map", "../../../x.js"), "~/x.js");
    assert_eq!(filename_of("~/src/a.js"), "src/a.js");
    assert_eq!(filename_of("webpack://shop/./src/x.js"), "./src/x.js");
    assert_eq!(filename_of("https://cdn.example.com/js/b.ts"), "js/b.ts");
}

#[test]
fn the_cache_keeps_the_most_recently_used_within_its_bytes() {
    let (_, map, _) = build("", "a");
    let loaded = super::resolve::loaded_for_tests(&map, None, "~/a.js.map");
    let weight = loaded.weight;
    let mut cache = Cache::new(weight * 2);
    cache.insert("one".into(), Lookup::Found(Arc::clone(&loaded)));
    cache.insert("two".into(), Lookup::Found(Arc::clone(&loaded)));
    assert!(cache.get("one").is_some()); // now "two" is the least recently used
    cache.insert("three".into(), Lookup::Found(Arc::clone(&loaded)));
    assert!(cache.get("two").is_none());
    assert!(cache.get("one").is_some() && cache.get("three").is_some());
    assert!(cache.bytes <= weight * 2);
    // one entry larger than the whole cache is not kept
    let mut small = Cache::new(weight - 1);
    small.insert("big".into(), Lookup::Found(loaded));
    assert!(small.get("big").is_none());
    cache.insert("missing".into(), Lookup::Missing);
    cache.forget_negative();
    assert!(cache.get("missing").is_none());
}

#[tokio::test]
async fn backups_carry_the_bundles_and_their_indexes() {
    let tmp = tempfile::tempdir().unwrap();
    let source = Store::local(&tmp.path().join("src")).unwrap();
    let (min_a, map_a, _) = build("", "a");
    let data = bundle(ID_A, &min_a, &map_a);
    assert_eq!(upload(&source, &data, 1000).await.state, "ok");
    let url = format!("file://{}", tmp.path().join("dest").display());
    std::fs::create_dir_all(tmp.path().join("dest")).unwrap();
    let dest = crate::backup::Destination {
        store: Store::open_url(&url, &Default::default(), None).unwrap(),
        url,
    };
    let record = crate::backup::create(
        "b1",
        &crate::backup::Source {
            store: &source,
            node: "node-0",
            wal_dir: &tmp.path().join("no-wal"),
        },
        &dest,
        false,
    )
    .await
    .unwrap();
    let checksum = sha1_hex(&data);
    for key in [
        keys::sourcemap_bundle("acme", &checksum),
        keys::sourcemap_record("acme", &checksum),
        keys::sourcemap_debug_id("acme", ID_A),
    ] {
        assert!(
            record.meta.iter().any(|m| m.path == key.as_ref()),
            "{key} is in the backup"
        );
        let copy = dest
            .store
            .get(&object_store::path::Path::from(format!("backups/b1/{key}")))
            .await
            .unwrap();
        assert_eq!(copy, source.get(&key).await.unwrap());
    }
}

#[tokio::test]
async fn release_files_uploaded_one_by_one_resolve_by_release_and_url() {
    let store = Store::memory();
    let maps = SourceMaps::new(store.clone(), SourcemapsConfig::default());
    let (minified, map, column) = build("", "a");
    let file =
        |name: &str, headers: Vec<(String, String)>, content: Vec<u8>| bundles::ReleaseFile {
            name: name.to_owned(),
            dist: None,
            headers,
            content: Bytes::from(content),
        };
    let min_file = file(
        "~/assets/app.min.js",
        vec![("Sourcemap".to_owned(), "app.min.js.map".to_owned())],
        minified.clone().into_bytes(),
    );
    bundles::put_release_file(&store, "acme", "web", "shop@1", min_file.clone(), 1 << 20)
        .await
        .unwrap();
    // again: the same bundle, not a second one
    bundles::put_release_file(&store, "acme", "web", "shop@1", min_file, 1 << 20)
        .await
        .unwrap();
    let map_file = file("~/assets/app.min.js.map", Vec::new(), map.clone());
    let over =
        bundles::put_release_file(&store, "acme", "web", "shop@1", map_file.clone(), 10).await;
    assert!(matches!(over, Err(Error::FileTooLarge { .. })), "{over:?}");
    bundles::put_release_file(&store, "acme", "web", "shop@1", map_file, 1 << 20)
        .await
        .unwrap();
    let records = store
        .list(&object_store::path::Path::from(
            "meta/sourcemaps/org=acme/records",
        ))
        .await
        .unwrap();
    assert_eq!(records.len(), 2);

    let url = "http://localhost:8080/assets/app.min.js?v=3";
    let payload = json!({
        "platform": "javascript",
        "release": "shop@1",
        "exception": {"values": [{"type": "Error", "value": "empty cart",
            "stacktrace": {"frames": [
                {"abs_path": url, "function": "a", "lineno": 1, "colno": column, "in_app": true},
                {"abs_path": "http://localhost:8080/vendor.js", "function": "x", "lineno": 1,
                 "colno": 5, "in_app": false},
            ]}}]},
    });
    let ctx = NormalizeContext {
        received: Utc::now(),
        client_ip: None,
        event_id: None,
    };
    let event = normalize_event(&serde_json::to_vec(&payload).unwrap(), &ctx).unwrap();
    let resolved = maps.resolve_event("acme", "web", event.clone()).await;
    let json: Value = serde_json::from_str(&resolved.json).unwrap();
    let frames = &json["exception"]["values"][0]["stacktrace"]["frames"];
    assert_eq!(frames[0]["function"], "checkoutTotal", "{frames}");
    assert_eq!(frames[0]["abs_path"], "~/src/cart.js");
    assert_eq!(frames[0]["data"]["resolved_with"], "release");
    assert_eq!(
        frames[1]["function"], "x",
        "a file not uploaded stays as sent"
    );
    assert!(
        json.get("errors").is_none(),
        "no error for files not uploaded: {json}"
    );
    // another release finds nothing
    let mut other: Value = serde_json::from_str(&event.json).unwrap();
    other["release"] = json!("shop@2");
    let root = other.as_object_mut().unwrap();
    assert!(!maps.resolve_value("acme", "web", root).await);
}

#[test]
fn library_frames_under_node_modules_are_not_in_app_and_a_position_without_mapping_is_an_error() {
    let minified = "function q(){throw new Error(\"x\")}";
    let mut builder = SourceMapBuilder::new(Some("vendor.min.js"));
    let source = "../node_modules/left-pad/index.js";
    builder.add(0, 13, 2, 4, Some(source), None, false);
    let id = builder.add_source(source);
    builder.set_source_contents(id, Some("a\nb\n    throw new Error(\"x\")\n"));
    let mut map = Vec::new();
    builder.into_sourcemap().to_writer(&mut map).unwrap();
    let loaded = super::resolve::loaded_for_tests(&map, Some(minified), "~/vendor.min.js.map");
    let id = "c0ffee00-0000-4000-8000-0000000000cc";
    let url = "http://localhost/vendor.min.js";
    let mut root = json!({
        "platform": "javascript",
        "exception": {"values": [{"type": "Error", "value": "x", "stacktrace": {"frames": [
            {"abs_path": url, "function": "q", "lineno": 1, "colno": 14, "in_app": true},
            {"abs_path": url, "function": "q", "lineno": 7, "colno": 1, "in_app": true},
        ]}}]},
        "debug_meta": {"images": [{"type": "sourcemap", "code_file": url, "debug_id": id}]},
    });
    let root = root.as_object_mut().unwrap();
    let found = std::collections::HashMap::from([(
        super::resolve::Key::DebugId(id.to_owned()),
        Lookup::Found(loaded),
    )]);
    assert!(super::resolve::apply(root, &found));
    let frames = &root["exception"]["values"][0]["stacktrace"]["frames"];
    assert_eq!(frames[0]["abs_path"], "~/node_modules/left-pad/index.js");
    assert_eq!(frames[0]["in_app"], false, "{frames}");
    assert_eq!(frames[0]["lineno"], 3);
    // line 7 of a one-line file has no mapping: kept as sent, with the reason
    assert_eq!(frames[1]["lineno"], 7);
    assert_eq!(root["errors"][0]["type"], "js_invalid_sourcemap_location");
    assert_eq!(root["errors"][0]["row"], 7);
}
