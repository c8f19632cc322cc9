//! The nesting-depth limit of JSON payloads, checked without recursion before any parser runs.
//!
//! Parsing, normalizing, serializing and dropping a JSON value all recurse once per level of
//! nesting, and a debug build spends kilobytes of stack per level: an event nested a few hundred
//! levels deep overflows a thread's stack before any parser's own limit is reached. So every
//! JSON payload is first scanned byte by byte (a counter, no recursion) and refused when it nests
//! deeper than [`MAX_JSON_DEPTH`]. The WAL replay applies the same scan, so what ingest accepted
//! is always readable again.
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
