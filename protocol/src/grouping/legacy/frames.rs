//! Frame components: where (module or file) and what (function) of each frame, with the
//! parts that change from build to build removed.

use std::sync::LazyLock;

use regex::{Captures, Regex};
use serde_json::{Map, Value};

use crate::view::EventView;

/// Longest source line used in place of a missing function name.
const MAX_CONTEXT_LINE_CHARS: usize = 120;

/// The components of a list of frames (oldest call first). With `in_app_only`, system frames
/// are skipped. Consecutive equal frames (recursion) count once.
pub(super) fn components(
    frames: &[Value],
    view: &EventView<'_>,
    in_app_only: bool,
    platform: &str,
) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for frame in frames.iter().filter_map(Value::as_object) {
        if in_app_only && !view.is_in_app(frame) {
            continue;
        }
        let Some(component) = component(frame, platform) else {
            continue;
        };
        if out.last() != Some(&component) {
            out.push(component);
        }
    }
    out
}

fn str_field<'a>(frame: &'a Map<String, Value>, key: &str) -> Option<&'a str> {
    frame
        .get(key)
        .and_then(Value::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
}

fn component(frame: &Map<String, Value>, event_platform: &str) -> Option<String> {
    let platform = str_field(frame, "platform").unwrap_or(event_platform);
    let native = matches!(platform, "native" | "c" | "cocoa" | "objc" | "swift");
    let location = match str_field(frame, "module") {
        Some(module) => Some(scrub_identifier(module)),
        None => str_field(frame, "filename")
            .or_else(|| str_field(frame, "abs_path"))
            .map(|f| normalize_filename(f, native)),
    };
    let function = ["function", "raw_function", "symbol"]
        .iter()
        .find_map(|k| str_field(frame, k))
        .and_then(|f| normalize_function(f, native));
    match (location, function) {
        (None, None) => None,
        (location, Some(function)) => {
            Some(format!("frame:{}|{function}", location.unwrap_or_default()))
        }
        (Some(location), None) => {
            let line = str_field(frame, "context_line")
                .filter(|l| l.chars().count() <= MAX_CONTEXT_LINE_CHARS);
            Some(match line {
                Some(line) => format!("frame:{location}|line:{line}"),
                None => format!("frame:{location}|"),
            })
        }
    }
}

fn normalize_filename(filename: &str, native: bool) -> String {
    static URL_PREFIX: LazyLock<Regex> =
        LazyLock::new(|| Regex::new(r"^[a-zA-Z][a-zA-Z0-9+.-]*://[^/]*").expect("valid regex"));
    static LINE_SUFFIX: LazyLock<Regex> =
        LazyLock::new(|| Regex::new(r"(?::\d+){1,2}$").expect("valid regex"));
    let path = filename.split(['?', '#']).next().unwrap_or(filename);
    // some SDKs append `:line[:column]` to file names
    let path = LINE_SUFFIX.replace(path, "");
    let path = URL_PREFIX.replace(&path, "");
    let path = if native {
        path.rsplit(['/', '\\']).next().unwrap_or(&path)
    } else {
        &path
    };
    scrub_identifier(path)
}

fn normalize_function(function: &str, native: bool) -> Option<String> {
    if matches!(
        function,
        "?" | "<anonymous>" | "<unknown>" | "anonymous" | "[anonymous]" | "<redacted>"
    ) {
        return None;
    }
    // a bare address or number (failed symbolication) is no name
    let is_address =
        function.starts_with("0x") && function[2..].bytes().all(|b| b.is_ascii_hexdigit());
    if is_address || function.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    // `+ 334` / `+ 0x1f`: an offset into the function
    let function = match function.rsplit_once(" + ") {
        Some((name, offset)) if is_number(offset) => name.trim(),
        _ => function,
    };
    // Objective-C methods (`-[Class selector:]`, also inside block names) have no signature
    let objc = function.contains("-[") || function.contains("+[");
    let name = if native && !objc {
        strip_native_signature(function)
    } else {
        function
    };
    Some(scrub_identifier(name))
}

fn is_number(s: &str) -> bool {
    let hex = s.strip_prefix("0x").unwrap_or(s);
    !hex.is_empty() && hex.bytes().all(|b| b.is_ascii_hexdigit())
}

/// `void ns::Type<T>::method(int) const` -> `ns::Type<T>::method`: argument lists and return
/// types differ between compilers and builds, the qualified name does not.
fn strip_native_signature(function: &str) -> &str {
    let mut depth = 0i32;
    let mut start = 0;
    let bytes = function.as_bytes();
    for (i, b) in bytes.iter().enumerate() {
        match b {
            b'<' => depth += 1,
            b'>' => depth -= 1,
            b' ' if depth == 0 => start = i + 1,
            b'(' if depth == 0 && i > start => return &function[start..i],
            b'(' if depth == 0 => {
                // `(anonymous namespace)::f`: skip the group
                if let Some(close) = function[i..].find(')') {
                    return strip_native_signature_from(function, start, i + close + 1);
                }
            }
            _ => {}
        }
    }
    &function[start..]
}

fn strip_native_signature_from(function: &str, start: usize, from: usize) -> &str {
    match function[from..].find('(') {
        Some(open) if open > 0 => &function[start..from + open],
        _ => &function[start..],
    }
}

/// Removes what generated names vary in: addresses, UUIDs, hex hashes, Java lambda and
/// accessor numbers, proxy suffixes.
pub(crate) fn scrub_identifier(name: &str) -> String {
    static GENERATED: LazyLock<Regex> = LazyLock::new(|| {
        Regex::new(concat!(
            r"(?P<lambda>\$\$Lambda)[$/\w]*",
            r"|(?P<accessor>Generated(?:Serialization)?(?:Method|Constructor)Accessor)\d+",
            r"|(?P<proxy>\$HibernateProxy\$)\w+",
            r"|(?P<addr>\b0[xX][0-9a-fA-F]+\b)",
            r"|(?P<uuid>\b[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\b)",
            r"|(?P<hex>\b[0-9a-fA-F]{8,}\b)",
            r"|(?P<dollar>\$)\d+\b",
        ))
        .expect("valid regex")
    });
    if !name.bytes().any(|b| b.is_ascii_digit()) {
        return name.to_owned();
    }
    GENERATED
        .replace_all(name, |caps: &Captures<'_>| {
            for group in ["lambda", "accessor", "proxy", "dollar"] {
                if let Some(m) = caps.name(group) {
                    return m.as_str().to_owned();
                }
            }
            if caps.name("addr").is_some() {
                return "<addr>".to_owned();
            }
            if caps.name("uuid").is_some() {
                return "<uuid>".to_owned();
            }
            let whole = &caps[0];
            let has_letter = whole.bytes().any(|b| b.is_ascii_alphabetic());
            let has_digit = whole.bytes().any(|b| b.is_ascii_digit());
            if has_letter && has_digit {
                "<hex>".to_owned()
            } else {
                whole.to_owned()
            }
        })
        .into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scrubs_generated_parts() {
        let cases = [
            ("lambda$onCreate$0", "lambda$onCreate$"),
            (
                "com.example.Foo$$Lambda$14/0x0000000800066840",
                "com.example.Foo$$Lambda",
            ),
            (
                "sun.reflect.GeneratedMethodAccessor123",
                "sun.reflect.GeneratedMethodAccessor",
            ),
            (
                "com.x.Service$$EnhancerBySpringCGLIB$$1a2b3c4d",
                "com.x.Service$$EnhancerBySpringCGLIB$$<hex>",
            ),
            (
                "static/js/main.3f2a1b9c.chunk.js",
                "static/js/main.<hex>.chunk.js",
            ),
            ("handler_0x7fff5fbff8a0", "handler_0x7fff5fbff8a0"),
            ("jump 0x7fff5fbff8a0", "jump <addr>"),
            ("cache-6f1c2a9e-1b2c-4d3e-8f90-0a1b2c3d4e5f", "cache-<uuid>"),
            ("main.main.func1", "main.main.func1"),
            ("deadbeefcafe", "deadbeefcafe"),
            ("Foo$1", "Foo$"),
        ];
        for (input, expected) in cases {
            assert_eq!(scrub_identifier(input), expected, "{input}");
        }
    }

    #[test]
    fn native_function_names() {
        let cases = [
            (
                " -[UITableView _userSelectRowAtPendingSelectionIndexPath:] + 334",
                "-[UITableView _userSelectRowAtPendingSelectionIndexPath:]",
            ),
            (
                "__44-[UIApplication(SentrySwizzle) swizzleSendAction]_block_invoke_2",
                "__44-[UIApplication(SentrySwizzle) swizzleSendAction]_block_invoke_2",
            ),
            ("start + 0x1f", "start"),
            ("170", ""),
            ("0x7fff2025a3e9", ""),
        ];
        for (input, expected) in cases {
            let got = normalize_function(input.trim(), true).unwrap_or_default();
            assert_eq!(got, expected, "{input}");
        }
    }

    #[test]
    fn strips_native_signatures() {
        let cases = [
            (
                "void ns::Type<int>::method(int) const",
                "ns::Type<int>::method",
            ),
            ("main", "main"),
            (
                "(anonymous namespace)::crash(char*)",
                "(anonymous namespace)::crash",
            ),
            (
                "std::map<int, std::string>::at(int const&)",
                "std::map<int, std::string>::at",
            ),
        ];
        for (input, expected) in cases {
            assert_eq!(strip_native_signature(input), expected, "{input}");
        }
    }

    #[test]
    fn filenames_lose_hosts_queries_and_native_paths() {
        assert_eq!(
            normalize_filename("https://cdn.example.com/app.js?v=3#x", false),
            "/app.js"
        );
        assert_eq!(normalize_filename("/build/42/src/crash.c", true), "crash.c");
        assert_eq!(
            normalize_filename("C:\\build\\src\\crash.cpp", true),
            "crash.cpp"
        );
        assert_eq!(normalize_filename("app/views.py", false), "app/views.py");
        assert_eq!(
            normalize_filename("processing.rs:143", true),
            "processing.rs"
        );
        assert_eq!(
            normalize_filename("http://localhost:4201/main.js:10:5", false),
            "/main.js"
        );
    }
}
