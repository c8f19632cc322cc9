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
pub fn check_depth(json: &[u8], limit: usize) -> Result<usize, DepthError> {
    let mut depth = 0usize;
    let mut deepest = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    for &byte in json {
        if in_string {
            if escaped {
                escaped = false;
            } else if byte == b'\\' {
                escaped = true;
            } else if byte == b'"' {
                in_string = false;
            }
            continue;
        }
        match byte {
            b'"' => in_string = true,
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
    fn a_million_levels_are_refused_without_recursion() {
        let deep = "[".repeat(1_000_000);
        assert!(check_depth(deep.as_bytes(), MAX_JSON_DEPTH).is_err());
    }
}
