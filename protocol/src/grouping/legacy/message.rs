//! Message parameterization: the variable parts of a message (numbers, ids, addresses,
//! dates) are replaced by placeholders, so `"took 103 ms"` and `"took 98 ms"` group
//! together.

use std::net::{IpAddr, Ipv6Addr};
use std::sync::LazyLock;

use regex::{Captures, Regex};

/// Longest message text that is parameterized; the rest is cut off (it rarely tells
/// messages apart and keeps the work bounded).
const MAX_CHARS: usize = 1024;

static PARAMS: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(concat!(
        r"(?P<email>\b[\w.+-]+@[\w-]+(?:\.[\w-]+)+\b)",
        r"|(?P<url>\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s'<>]+)",
        r"|(?P<uuid>\b[0-9a-fA-F]{8}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{4}-?[0-9a-fA-F]{12}\b)",
        r"|(?P<date>\b\d{4}-\d{2}-\d{2}(?:[T ]\d{2}:\d{2}(?::\d{2}(?:[.,]\d+)?)?(?:Z|[+-]\d{2}:?\d{2})?)?\b)",
        r"|(?P<time>\b\d{1,2}:\d{2}:\d{2}(?:[.,]\d+)?\b)",
        r"|(?P<ip4>\b(?:\d{1,3}\.){3}\d{1,3}\b(?::\d{1,5}\b)?)",
        r"|(?P<ip6>(?:[0-9a-fA-F]{0,4}:){2,7}[0-9a-fA-F]{0,4})",
        r"|(?P<hex>\b0[xX][0-9a-fA-F]+\b|\b[0-9a-fA-F]{8,}\b)",
        r"|(?P<float>[-+]?\b\d+[.,]\d+)",
        r"|(?P<int>[-+]?\b\d+)",
    ))
    .expect("valid regex")
});

/// The message with its variable parts replaced by `<email>`, `<url>`, `<uuid>`, `<date>`,
/// `<ip>`, `<hex>`, `<float>` and `<int>`; surrounding whitespace trimmed.
pub(super) fn normalize(message: &str) -> String {
    let message = message.trim();
    let message = match message.char_indices().nth(MAX_CHARS) {
        Some((cut, _)) => &message[..cut],
        None => message,
    };
    PARAMS
        .replace_all(message, |caps: &Captures<'_>| {
            let whole = &caps[0];
            let placeholder = if caps.name("email").is_some() {
                "<email>"
            } else if caps.name("url").is_some() {
                "<url>"
            } else if caps.name("uuid").is_some() {
                "<uuid>"
            } else if caps.name("date").is_some() || caps.name("time").is_some() {
                "<date>"
            } else if caps.name("ip4").is_some() {
                let host = whole.split(':').next().unwrap_or(whole);
                if host.parse::<IpAddr>().is_ok() {
                    "<ip>"
                } else {
                    "<int>.<int>.<int>.<int>"
                }
            } else if caps.name("ip6").is_some() {
                // only real addresses; `a::b` in a C++ name is no IP
                let is_ip =
                    whole.parse::<Ipv6Addr>().is_ok() && whole.bytes().any(|b| b.is_ascii_digit());
                if !is_ip {
                    return whole.to_owned();
                }
                "<ip>"
            } else if caps.name("hex").is_some() {
                if whole.bytes().all(|b| b.is_ascii_digit()) {
                    "<int>"
                } else if whole.starts_with("0x")
                    || whole.starts_with("0X")
                    || whole.bytes().any(|b| b.is_ascii_digit())
                {
                    "<hex>"
                } else {
                    // a word like `deadbeef` or `acceded`
                    return whole.to_owned();
                }
            } else if caps.name("float").is_some() {
                "<float>"
            } else {
                "<int>"
            };
            placeholder.to_owned()
        })
        .into_owned()
}

#[cfg(test)]
mod tests {
    use super::normalize;

    #[test]
    fn replaces_variable_parts() {
        let cases = [
            ("something 9", "something <int>"),
            ("took 1.25 s for user 42", "took <float> s for user <int>"),
            ("mail bob.smith+x@example.co.uk now", "mail <email> now"),
            (
                "GET https://api.example.com/users/17?x=1 failed",
                "GET <url> failed",
            ),
            (
                "order 6f1c2a9e-1b2c-4d3e-8f90-0a1b2c3d4e5f missing",
                "order <uuid> missing",
            ),
            ("id 6f1c2a9e1b2c4d3e8f900a1b2c3d4e5f", "id <uuid>"),
            (
                "at 2024-04-26T15:26:18Z and 2024-04-26 15:26:18.123",
                "at <date> and <date>",
            ),
            ("since 12:03:44", "since <date>"),
            (
                "connect to 10.0.0.12:5432 refused",
                "connect to <ip> refused",
            ),
            (
                "from ::1 and fe80::1ff:fe23:4567:890a",
                "from <ip> and <ip>",
            ),
            (
                "ptr 0x7fff5fbff8a0 sha 3f786850e387550fdab836ed7e6dc881de23001b",
                "ptr <hex> sha <hex>",
            ),
            (
                "std::vector::at out of range",
                "std::vector::at out of range",
            ),
            ("decade of deadbeef", "decade of deadbeef"),
            ("  padded  ", "padded"),
            ("error -5 code", "error <int> code"),
        ];
        for (input, expected) in cases {
            assert_eq!(normalize(input), expected, "{input}");
        }
    }

    #[test]
    fn messages_differing_in_numbers_are_equal() {
        assert_eq!(
            normalize("Timeout after 3000ms talking to 10.1.2.3 (attempt 2 of 5)"),
            normalize("Timeout after 2500ms talking to 10.1.2.4 (attempt 3 of 5)")
        );
    }
}
