//! The nesting-depth limit of JSON payloads.
//!
//! Parsing, normalizing, serializing and dropping a JSON value all recurse once per level of
//! nesting, and a debug build spends kilobytes of stack per level: an event nested a few hundred
//! levels deep overflows a thread's stack before any parser's own limit is reached. So JSON is
//! refused when it nests deeper than [`MAX_JSON_DEPTH`]: an event payload while it is parsed
//! (the parse stops at the first level too many), other JSON ([`check_depth`]) by a scan of its
//! bytes before any parser runs, and a normalized event while it is serialized
//! ([`to_json_within`]). The WAL replay parses with the same limit, so what ingest accepted is
//! always readable again.
//!
//! Why 64: the SDKs trim free-form data to a few levels before sending (sentry-python's
//! serializer to 5 levels of databag, sentry-javascript's `normalizeDepth` defaults to 3) and
//! the deepest fixed path of the event schema (`exception.values[].stacktrace.frames[].vars`)
//! adds 7, so real events stay under 20 levels. 64 leaves room for SDKs configured to send
//! deeper data and stays far below what any parser here can handle on a 2 MiB stack.

/// Deepest nesting of arrays and objects accepted in a JSON payload; the top-level object is
/// level 1. Normalization may add a few levels (e.g. `exception: [..]` becomes
/// `exception: {"values": [..]}`); the normalized event must stay within the limit too.
pub const MAX_JSON_DEPTH: usize = 64;

/// A payload nested deeper than the limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("JSON nests deeper than max_json_depth of {limit} levels of arrays and objects")]
pub struct DepthError {
    pub limit: usize,
}

/// How deep `json` nests arrays and objects (0 for a scalar), stopping with an error as soon
/// as `limit` is exceeded. Brackets inside strings are not counted. The input need not be valid
/// JSON; invalid input is left to the parser, which then only sees bounded nesting.
///
/// Most bytes of an event are inside strings, so a string is skipped with `memchr` (SIMD) to its
/// next quote or backslash instead of byte by byte.
pub fn check_depth(json: &[u8], limit: usize) -> Result<usize, DepthError> {
    let mut depth = 0usize;
    let mut deepest = 0usize;
    let mut at = 0usize;
    while let Some(&byte) = json.get(at) {
        at += 1;
        match byte {
            b'"' => at = string_end(json, at),
            b'[' | b'{' => {
                depth += 1;
                if depth > limit {
                    return Err(DepthError { limit });
                }
                deepest = deepest.max(depth);
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    Ok(deepest)
}

/// The position just past the quote that closes the string whose content starts at `at` (the
/// end of `json` if it is never closed).
fn string_end(json: &[u8], mut at: usize) -> usize {
    loop {
        let Some(rest) = json.get(at..) else {
            return json.len();
        };
        match memchr::memchr2(b'"', b'\\', rest) {
            None => return json.len(),
            // a backslash escapes the byte after it, whatever it is
            Some(found) if rest[found] == b'\\' => at += found + 2,
            Some(found) => return at + found + 1,
        }
    }
}

/// How deep a parsed value nests arrays and objects (0 for a scalar), stopping with an error as
/// soon as `limit` is exceeded. It recurses once per level, so it is only for values that were
/// parsed from input already bounded by [`check_depth`] (a normalized event adds a few fixed
/// levels to its payload's depth, never more than the payload had of its own).
pub fn value_depth(value: &serde_json::Value, limit: usize) -> Result<usize, DepthError> {
    use serde_json::Value;
    let children: &mut dyn Iterator<Item = &Value> = match value {
        Value::Array(items) => &mut items.iter(),
        Value::Object(map) => &mut map.values(),
        _ => return Ok(0),
    };
    if limit == 0 {
        return Err(DepthError { limit });
    }
    let mut deepest = 0;
    for child in children {
        let depth = value_depth(child, limit - 1).map_err(|_| DepthError { limit })?;
        deepest = deepest.max(depth);
    }
    Ok(deepest + 1)
}

/// Serializes a JSON object as serde_json does, failing when it nests deeper than `limit`
/// levels (the object itself is level 1): the depth check of a normalized event rides on the
/// walk its serialization makes anyway.
pub fn to_json_within(
    root: &serde_json::Map<String, serde_json::Value>,
    limit: usize,
) -> Result<String, DepthError> {
    sonic_rs::to_string(&Bounded::Object(root, limit)).map_err(|_| DepthError { limit })
}

/// A value to serialize with the levels it may still nest.
enum Bounded<'a> {
    Value(&'a serde_json::Value, usize),
    Object(&'a serde_json::Map<String, serde_json::Value>, usize),
}

impl serde::Serialize for Bounded<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::{Error, SerializeMap, SerializeSeq};
        use serde_json::Value;
        let (map, levels) = match *self {
            Self::Object(map, levels) => (map, levels),
            Self::Value(Value::Object(map), levels) => (map, levels),
            Self::Value(Value::Array(items), levels) => {
                if levels == 0 {
                    return Err(S::Error::custom("too deep"));
                }
                let mut seq = serializer.serialize_seq(Some(items.len()))?;
                for item in items {
                    seq.serialize_element(&Bounded::Value(item, levels - 1))?;
                }
                return seq.end();
            }
            Self::Value(scalar, _) => return scalar.serialize(serializer),
        };
        if levels == 0 {
            return Err(S::Error::custom("too deep"));
        }
        let mut out = serializer.serialize_map(Some(map.len()))?;
        for (key, value) in map {
            out.serialize_entry(key, &Bounded::Value(value, levels - 1))?;
        }
        out.end()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nested(levels: usize) -> String {
        format!("{}1{}", "[".repeat(levels), "]".repeat(levels))
    }

    #[test]
    fn counts_levels_and_stops_past_the_limit() {
        assert_eq!(check_depth(b"1", 3), Ok(0));
        assert_eq!(check_depth(b"{\"a\":[1,{}]}", 3), Ok(3));
        assert_eq!(check_depth(nested(3).as_bytes(), 3), Ok(3));
        assert_eq!(
            check_depth(nested(4).as_bytes(), 3),
            Err(DepthError { limit: 3 })
        );
    }

    #[test]
    fn brackets_in_strings_do_not_count() {
        let json = br#"{"a":"[[[[{{{{\"[[[[","b":"\\"}"#;
        assert_eq!(check_depth(json, 1), Ok(1));
        // an escaped backslash ends before the quote, which then closes the string
        assert_eq!(check_depth(br#"["\\",[[1]]]"#, 3), Ok(3));
    }

    #[test]
    fn escapes_and_unclosed_strings() {
        // an escaped quote does not end the string; a backslash at the very end is harmless
        assert_eq!(check_depth(br#"["a\"[[",[1]]"#, 2), Ok(2));
        assert_eq!(check_depth(br#"["\\\"[",[[1]]]"#, 3), Ok(3));
        assert_eq!(check_depth(b"[\"abc\\", 3), Ok(1));
        assert_eq!(check_depth(b"[\"abc", 3), Ok(1));
        assert_eq!(check_depth(b"\"", 3), Ok(0));
    }

    #[test]
    fn bounded_serialization_is_serde_jsons_and_stops_past_the_limit() {
        let value: serde_json::Value =
            serde_json::from_str(r#"{"b":[1,{"c":"\u00e9\"x"}],"a":null,"d":{"e":[[]]}}"#).unwrap();
        let serde_json::Value::Object(map) = &value else {
            unreachable!()
        };
        assert_eq!(
            to_json_within(map, 4).unwrap(),
            serde_json::to_string(&value).unwrap()
        );
        assert_eq!(to_json_within(map, 3), Err(DepthError { limit: 3 }));
        let empty = serde_json::Map::new();
        assert_eq!(to_json_within(&empty, 1).unwrap(), "{}");
        assert!(to_json_within(&empty, 0).is_err());
    }

    #[test]
    fn value_depth_agrees_with_the_scan() {
        for json in [
            "1",
            "[]",
            "{}",
            r#"{"a":[1,{"b":[[]]}],"c":"[[[["}"#,
            &nested(10),
            &nested(11),
        ] {
            let value: serde_json::Value = serde_json::from_str(json).unwrap();
            assert_eq!(
                value_depth(&value, 10),
                check_depth(json.as_bytes(), 10),
                "{json}"
            );
        }
    }

    #[test]
    fn a_million_levels_are_refused_without_recursion() {
        let deep = "[".repeat(1_000_000);
        assert!(check_depth(deep.as_bytes(), MAX_JSON_DEPTH).is_err());
    }
}
