//! Relay's limits on free-form data and stack traces, applied at ingest after scrubbing (so
//! a secret deep in a bag is scrubbed by its key before the bag is cut):
//!
//! - *Data bags* have a depth and a size budget (Relay's `BagSize`): `extra` as a whole 7
//!   levels and 256 KiB, each of its values 16 KiB; each context, `request.data` and
//!   `request.headers` 7 levels and 8 KiB; breadcrumb `data` and frame `vars` 5 levels and
//!   2 KiB. An object or list at the last level becomes its JSON text; strings are cut to the
//!   budget left (`...`, a `!limit` remark and the original length in `_meta`); once the
//!   budget is spent, the remaining members are dropped and the container's original length
//!   is recorded. A value costs the length of its JSON without its children, plus one.
//! - *Stack traces* keep their innermost 250 frames (the original count in `_meta`); beyond
//!   50 frames, the middle frames lose `vars` and context lines, app frames last.
//!
//! Bags within their limits, by far the most common case, are only measured, never copied.

use serde_json::{Map, Value, json};

use crate::scrub::Meta;

/// A depth and a size budget, in bytes of JSON.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Bag {
    depth: usize,
    bytes: usize,
}

impl Bag {
    const fn new(depth: usize, bytes: usize) -> Self {
        Self { depth, bytes }
    }
}

/// Relay's `BagSize::Medium`.
pub(crate) const MEDIUM: Bag = Bag::new(5, 2048);
/// Relay's `BagSize::Large`.
pub(crate) const LARGE: Bag = Bag::new(7, 8192);
/// Relay's `BagSize::Larger`.
pub(crate) const LARGER: Bag = Bag::new(7, 16384);
/// Relay's `BagSize::Massive`.
pub(crate) const MASSIVE: Bag = Bag::new(7, 262_144);

/// Frames a stack trace keeps at most: the innermost (Relay's hard limit).
pub(crate) const MAX_FRAMES: usize = 250;
/// Frames beyond which the middle ones lose their variables and context lines.
pub(crate) const FRAME_ALLOWANCE: usize = 50;

/// Applies the limits to a normalized event; what was cut goes to `meta`.
pub(crate) fn trim_event(root: &mut Map<String, Value>, meta: &mut Meta) {
    let mut path = Vec::new();
    if let Some(Value::Object(extra)) = root.get_mut("extra") {
        path.push("extra".to_owned());
        trim_extra(extra, &mut path, meta);
        path.pop();
    }
    if let Some(Value::Object(contexts)) = root.get_mut("contexts") {
        for (name, context) in contexts.iter_mut() {
            at(&mut path, ["contexts", name], |path| {
                trim_bag(context, LARGE, path, meta)
            });
        }
    }
    if let Some(Value::Object(request)) = root.get_mut("request") {
        for key in ["data", "headers"] {
            if let Some(value) = request.get_mut(key) {
                at(&mut path, ["request", key], |path| {
                    trim_bag(value, LARGE, path, meta)
                });
            }
        }
    }
    if let Some(Value::Array(crumbs)) = root
        .get_mut("breadcrumbs")
        .and_then(|b| b.get_mut("values"))
    {
        for (i, crumb) in crumbs.iter_mut().enumerate() {
            if let Some(data) = crumb.get_mut("data") {
                let i = i.to_string();
                at(&mut path, ["breadcrumbs", "values", &i, "data"], |path| {
                    trim_bag(data, MEDIUM, path, meta)
                });
            }
        }
    }
    for key in ["exception", "threads"] {
        let Some(Value::Array(values)) = root.get_mut(key).and_then(|v| v.get_mut("values")) else {
            continue;
        };
        for (i, value) in values.iter_mut().enumerate() {
            for trace in ["stacktrace", "raw_stacktrace"] {
                if let Some(Value::Object(stacktrace)) = value.get_mut(trace) {
                    let i = i.to_string();
                    at(&mut path, [key, "values", &i, trace], |path| {
                        trim_stacktrace(stacktrace, path, meta)
                    });
                }
            }
        }
    }
    if let Some(Value::Object(stacktrace)) = root.get_mut("stacktrace") {
        at(&mut path, ["stacktrace"], |path| {
            trim_stacktrace(stacktrace, path, meta)
        });
    }
}

/// Runs `f` with `segments` added to `path`.
fn at<const N: usize>(
    path: &mut Vec<String>,
    segments: [&str; N],
    f: impl FnOnce(&mut Vec<String>),
) {
    let len = path.len();
    path.extend(segments.iter().map(|s| (*s).to_owned()));
    f(path);
    path.truncate(len);
}

/// `extra`: one bag as a whole, and each value a smaller bag within it.
fn trim_extra(extra: &mut Map<String, Value>, path: &mut Vec<String>, meta: &mut Meta) {
    let mut left = MASSIVE.bytes;
    if fits(extra.values(), MASSIVE.depth - 1, &mut left)
        && extra.values().all(|v| {
            let mut left = LARGER.bytes;
            fits_value(v, LARGER.depth, &mut left)
        })
    {
        return;
    }
    let mut budget = MASSIVE.bytes;
    let original = extra.len();
    let mut kept = 0;
    for (key, value) in extra.iter_mut() {
        if budget == 0 {
            break;
        }
        let mut own = budget.min(LARGER.bytes);
        let before = own;
        path.push(key.clone());
        trim_value(
            value,
            LARGER.depth.min(MASSIVE.depth - 1),
            &mut own,
            path,
            meta,
        );
        path.pop();
        budget = budget.saturating_sub(before - own);
        kept += 1;
    }
    keep_first(extra, kept, original, path, meta);
}

/// Cuts `value` to `bag` when it exceeds it.
fn trim_bag(value: &mut Value, bag: Bag, path: &mut Vec<String>, meta: &mut Meta) {
    let mut left = bag.bytes;
    if fits_value(value, bag.depth, &mut left) {
        return;
    }
    let mut budget = bag.bytes;
    trim_value(value, bag.depth, &mut budget, path, meta);
}

/// The cost of a value without its children: its JSON's length, plus one.
fn flat_size(value: &Value) -> usize {
    1 + match value {
        Value::Null => 4,
        Value::Bool(b) => 4 + usize::from(!b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => {
                i.unsigned_abs().checked_ilog10().unwrap_or(0) as usize + 1 + usize::from(i < 0)
            }
            None => 12,
        },
        Value::String(s) => s.len() + 2,
        Value::Array(_) | Value::Object(_) => 2,
    }
}

/// Whether these values (children of one container) fit `depth` more levels and `left` bytes.
fn fits<'v>(values: impl Iterator<Item = &'v Value>, depth: usize, left: &mut usize) -> bool {
    for value in values {
        if !fits_value(value, depth, left) {
            return false;
        }
    }
    true
}

/// Whether `value`, `depth` levels from the end of its bag, fits the `left` bytes (which it
/// uses up).
fn fits_value(value: &Value, depth: usize, left: &mut usize) -> bool {
    if depth == 0 || *left == 0 {
        return false;
    }
    let fit = match value {
        Value::Array(items) if !items.is_empty() => {
            depth > 1 && fits(items.iter(), depth - 1, left)
        }
        Value::Object(map) if !map.is_empty() => depth > 1 && fits(map.values(), depth - 1, left),
        _ => true,
    };
    match left.checked_sub(flat_size(value)) {
        Some(rest) if fit => {
            *left = rest;
            true
        }
        _ => false,
    }
}

/// Trims `value`, `depth` levels from the end of its bag, to the `budget` bytes left, and
/// takes its cost from the budget.
fn trim_value(
    value: &mut Value,
    depth: usize,
    budget: &mut usize,
    path: &mut Vec<String>,
    meta: &mut Meta,
) {
    let container = matches!(value, Value::Array(a) if !a.is_empty())
        || matches!(value, Value::Object(o) if !o.is_empty());
    if container && depth <= 1 {
        *value = Value::String(value.to_string());
    }
    match value {
        Value::String(text) => trim_string(text, budget.saturating_sub(3), path, meta),
        Value::Object(map) => {
            let original = map.len();
            let mut kept = 0;
            for (key, child) in map.iter_mut() {
                if *budget == 0 {
                    break;
                }
                path.push(key.clone());
                trim_value(child, depth - 1, budget, path, meta);
                path.pop();
                kept += 1;
            }
            keep_first(map, kept, original, path, meta);
        }
        Value::Array(items) => {
            let original = items.len();
            let mut kept = 0;
            for (i, child) in items.iter_mut().enumerate() {
                if *budget == 0 {
                    break;
                }
                path.push(i.to_string());
                trim_value(child, depth - 1, budget, path, meta);
                path.pop();
                kept += 1;
            }
            if kept < original {
                items.truncate(kept);
                meta.set_len(path.clone(), original);
            }
        }
        _ => {}
    }
    *budget = budget.saturating_sub(flat_size(value));
}

/// Keeps the first `kept` members of `map`, recording its `original` length when it shrinks.
fn keep_first(
    map: &mut Map<String, Value>,
    kept: usize,
    original: usize,
    path: &[String],
    meta: &mut Meta,
) {
    if kept < original {
        let mut seen = 0;
        map.retain(|_, _| {
            seen += 1;
            seen <= kept
        });
        meta.set_len(path.to_vec(), original);
    }
}

/// Cuts `text` to `max` characters plus `...`, as Relay records it.
fn trim_string(text: &mut String, max: usize, path: &[String], meta: &mut Meta) {
    // at most one character per byte: a short string is within the limit uncounted
    if text.len() <= max + 3 {
        return;
    }
    let chars = text.chars().count();
    if chars <= max + 3 {
        return;
    }
    let cut = text.char_indices().nth(max).map_or(text.len(), |(i, _)| i);
    text.truncate(cut);
    text.push_str("...");
    meta.push(
        path.to_vec(),
        json!(["!limit", "s", max, max + 3]),
        Some(chars),
    );
}

/// Relay's frame limits on one stack trace.
fn trim_stacktrace(stacktrace: &mut Map<String, Value>, path: &mut Vec<String>, meta: &mut Meta) {
    let Some(Value::Array(frames)) = stacktrace.get_mut("frames") else {
        return;
    };
    path.push("frames".to_owned());
    if frames.len() > MAX_FRAMES {
        let original = frames.len();
        frames.drain(..original - MAX_FRAMES);
        meta.set_len(path.clone(), original);
    }
    slim_frames(frames);
    for (i, frame) in frames.iter_mut().enumerate() {
        if let Some(vars) = frame.get_mut("vars") {
            path.push(i.to_string());
            path.push("vars".to_owned());
            trim_bag(vars, MEDIUM, path, meta);
            path.truncate(path.len() - 2);
        }
    }
    path.pop();
}

/// Beyond [`FRAME_ALLOWANCE`] frames, removes the variables and context lines of the middle
/// frames: system frames first, then app frames, keeping those nearest both ends.
fn slim_frames(frames: &mut [Value]) {
    let len = frames.len();
    if len <= FRAME_ALLOWANCE {
        return;
    }
    let (app, system): (Vec<usize>, Vec<usize>) =
        (0..len).partition(|&i| frames[i].get("in_app") == Some(&Value::Bool(true)));
    let system_half = FRAME_ALLOWANCE.saturating_sub(app.len()) / 2;
    let system_cut = middle(&system, system_half);
    let remaining = len
        .saturating_sub(FRAME_ALLOWANCE)
        .saturating_sub(system_cut.len());
    let app_half = app.len().saturating_sub(remaining) / 2;
    let app_cut = middle(&app, app_half);
    for &i in system_cut.iter().chain(app_cut) {
        if let Some(frame) = frames[i].as_object_mut() {
            for key in ["vars", "pre_context", "post_context"] {
                frame.remove(key);
            }
        }
    }
}

/// The items of `indices` but the first and last `keep`.
fn middle(indices: &[usize], keep: usize) -> &[usize] {
    indices
        .get(keep..indices.len().saturating_sub(keep))
        .unwrap_or(&[])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nested(levels: usize) -> Value {
        (0..levels).fold(
            json!("bottom"),
            |inner, i| json!({ format!("k{i}"): inner }),
        )
    }

    fn trimmed(mut event: Value) -> (Value, Value) {
        let mut meta = Meta::default();
        let root = event.as_object_mut().unwrap();
        trim_event(root, &mut meta);
        meta.write_into(root);
        let meta = root.remove("_meta").unwrap_or(Value::Null);
        (event, meta)
    }

    #[test]
    fn a_bag_within_its_limits_is_left_as_it_is() {
        let event = json!({
            "extra": {"a": nested(5), "b": "x".repeat(1000)},
            "contexts": {"app": {"name": "shop", "deep": nested(5)}},
            "breadcrumbs": {"values": [{"data": {"a": nested(3)}}]},
        });
        let (out, meta) = trimmed(event.clone());
        assert_eq!(out, event);
        assert_eq!(meta, Value::Null);
    }

    #[test]
    fn too_deep_data_becomes_json_text_at_the_last_level() {
        let (out, _) = trimmed(json!({"extra": {"a": nested(8)}}));
        // extra (level 0), a (1), k7 .. k3: the value of k3 (level 6) is JSON text
        let at_k3 = &out["extra"]["a"]["k7"]["k6"]["k5"]["k4"]["k3"];
        assert_eq!(at_k3, &json!(nested(3).to_string()));
        let (out, _) = trimmed(json!({"breadcrumbs": {"values": [{"data": {"a": nested(5)}}]}}));
        let at = &out["breadcrumbs"]["values"][0]["data"]["a"]["k4"]["k3"]["k2"];
        assert_eq!(at, &json!(nested(2).to_string()));
    }

    #[test]
    fn a_bag_over_its_size_is_cut_and_the_meta_says_how_long_it_was() {
        let crumb_data: Map<String, Value> = (0..100)
            .map(|i| (format!("key{i:03}"), json!("v".repeat(40))))
            .collect();
        let long = "y".repeat(20_000);
        let (out, meta) = trimmed(json!({
            "breadcrumbs": {"values": [{"message": "m", "data": crumb_data}]},
            "extra": {"long": long},
        }));
        let kept = out["breadcrumbs"]["values"][0]["data"].as_object().unwrap();
        // each value costs its JSON (42 bytes) plus one: 47 fit in 2 KiB, the 48th is cut to
        // the 27 bytes left
        assert_eq!(kept.len(), 48);
        assert_eq!(kept["key046"], json!("v".repeat(40)));
        assert_eq!(kept["key047"], json!(format!("{}...", "v".repeat(24))));
        assert_eq!(
            meta["breadcrumbs"]["values"]["0"]["data"]["key047"][""]["len"],
            40
        );
        assert_eq!(
            meta["breadcrumbs"]["values"]["0"]["data"][""]["len"], 100,
            "{meta}"
        );
        // a string over the budget of one extra value (16 KiB)
        let cut = out["extra"]["long"].as_str().unwrap();
        assert!(cut.ends_with("...") && cut.len() <= 16384, "{}", cut.len());
        assert_eq!(meta["extra"]["long"][""]["len"], 20_000);
        assert_eq!(meta["extra"]["long"][""]["rem"][0][0], "!limit");
    }

    #[test]
    fn a_long_stack_trace_keeps_its_innermost_frames_and_slims_the_middle() {
        let frames: Vec<Value> = (0..300)
            .map(|i| {
                json!({"function": format!("f{i}"), "in_app": i % 3 == 0,
                       "vars": {"i": i}, "pre_context": ["a"], "post_context": ["b"]})
            })
            .collect();
        let (out, meta) = trimmed(json!({
            "exception": {"values": [{"type": "E", "stacktrace": {"frames": frames}}]}
        }));
        let kept = out["exception"]["values"][0]["stacktrace"]["frames"]
            .as_array()
            .unwrap();
        assert_eq!(kept.len(), MAX_FRAMES);
        assert_eq!(kept[0]["function"], "f50");
        assert_eq!(kept[MAX_FRAMES - 1]["function"], "f299");
        assert_eq!(
            meta["exception"]["values"]["0"]["stacktrace"]["frames"][""]["len"],
            300
        );
        let with_vars = kept.iter().filter(|f| f.get("vars").is_some()).count();
        assert_eq!(with_vars, FRAME_ALLOWANCE);
        // more app frames than the allowance: every system frame is slimmed, and the app
        // frames nearest both ends keep theirs
        assert!(kept[0].get("vars").is_none(), "f50 is a system frame");
        assert!(
            kept[1].get("vars").is_some(),
            "f51 is the outermost app frame"
        );
        assert!(
            kept[247].get("pre_context").is_some(),
            "f297 is the innermost app frame"
        );
        assert!(
            kept[124].get("vars").is_none(),
            "f174 is a middle app frame"
        );
    }
}
