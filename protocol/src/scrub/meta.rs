//! The event's `_meta`: what the server changed, at the path of each changed value, in
//! Relay's shape (`{"": {"rem": [[rule, type, start, end]], "len": n}}`).

use serde_json::{Map, Value, json};

use super::Remark;
use super::path::Path;
use crate::depth::MAX_JSON_DEPTH;

/// Deepest value path that gets a remark: `_meta` adds its own levels (the `_meta` object,
/// `""`, `rem`, the remark) and must stay within the event's depth limit. Deeper values are
/// scrubbed all the same.
const MAX_META_PATH: usize = MAX_JSON_DEPTH - 6;

/// Remarks collected while an event is processed.
#[derive(Debug, Default)]
pub struct Meta {
    entries: Vec<(Vec<String>, Vec<Value>, Option<usize>)>,
}

impl Meta {
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The rules that changed something (`@password:filter`, a project's rule name), each
    /// once, in order; the size limits' remarks (`!limit`, ...) are not rules.
    pub fn rules(&self) -> Vec<String> {
        let mut rules: Vec<&str> = Vec::new();
        for remark in self.entries.iter().flat_map(|(_, remarks, _)| remarks) {
            if let Some(rule) = remark.get(0).and_then(Value::as_str)
                && !rule.starts_with('!')
                && !rules.contains(&rule)
            {
                rules.push(rule);
            }
        }
        rules.sort_unstable();
        rules.into_iter().map(str::to_owned).collect()
    }

    /// Records a remark on the value at `path` (a list of member names and indices).
    pub fn push(&mut self, path: Vec<String>, remark: Value, original_len: Option<usize>) {
        if path.len() > MAX_META_PATH {
            return;
        }
        if let Some(entry) = self.entries.iter_mut().find(|e| e.0 == path) {
            entry.1.push(remark);
            entry.2 = entry.2.or(original_len);
        } else {
            self.entries.push((path, vec![remark], original_len));
        }
    }

    /// Records the original length of the value at `path` (a string's characters, a list's
    /// items or an object's members) that was cut.
    pub fn set_len(&mut self, path: Vec<String>, original_len: usize) {
        if path.len() > MAX_META_PATH {
            return;
        }
        if let Some(entry) = self.entries.iter_mut().find(|e| e.0 == path) {
            entry.2 = entry.2.or(Some(original_len));
        } else {
            self.entries.push((path, Vec::new(), Some(original_len)));
        }
    }

    /// Records changes to a string, with byte ranges in its new `text`.
    pub(crate) fn add(
        &mut self,
        path: &Path<'_>,
        text: &str,
        remarks: Vec<Remark>,
        original_len: Option<usize>,
    ) {
        let Some(at) = path.meta_path() else {
            return;
        };
        let mut remarks = remarks;
        remarks.sort_by_key(|r| r.start);
        for remark in remarks {
            let start = char_index(text, remark.start);
            let end = char_index(text, remark.end);
            self.push(
                at.clone(),
                json!([remark.rule, remark.ty, start, end]),
                original_len,
            );
        }
    }

    /// Records changes to parts of a string (its original length is unknown here: the
    /// scrubber records it when it changed the whole string).
    pub(crate) fn add_text(&mut self, path: &Path<'_>, text: &str, remarks: Vec<Remark>) {
        self.add(path, text, remarks, None);
    }

    /// Records that the value at `path` was removed.
    pub(crate) fn add_removed(&mut self, path: &Path<'_>, rule: &str, original_len: Option<usize>) {
        if let Some(at) = path.meta_path() {
            self.push(at, json!([rule, "x"]), original_len);
        }
    }

    /// Merges the remarks into the event's `_meta` object.
    pub fn write_into(self, root: &mut Map<String, Value>) {
        if self.entries.is_empty() {
            return;
        }
        let meta = root
            .entry("_meta")
            .or_insert_with(|| Value::Object(Map::new()));
        if !meta.is_object() {
            *meta = Value::Object(Map::new());
        }
        for (path, remarks, len) in self.entries {
            let mut node = &mut *meta;
            for segment in path.iter().map(String::as_str).chain([""]) {
                let Value::Object(map) = node else {
                    break;
                };
                node = map
                    .entry(segment.to_owned())
                    .or_insert_with(|| Value::Object(Map::new()));
            }
            let Value::Object(leaf) = node else {
                continue;
            };
            if !remarks.is_empty() {
                let rem = leaf
                    .entry("rem")
                    .or_insert_with(|| Value::Array(Vec::new()));
                if let Value::Array(rem) = rem {
                    rem.extend(remarks);
                }
            }
            if let Some(len) = len {
                leaf.entry("len").or_insert(json!(len));
            }
        }
    }
}

fn char_index(text: &str, byte: usize) -> usize {
    text.get(..byte).map_or(byte, |t| t.chars().count())
}
