//! Sentry's message parameterization: the variable parts of a message (e-mail addresses, URLs,
//! host names, IPs, UUIDs, hashes, dates, durations, numbers, and the values of `key=value`
//! pairs) become placeholders named after their kind (`<int>`, `<uuid>`, ...), so `"took 103
//! ms"` and `"took 98 ms"` group together. The kinds are tried in this order at each position,
//! the first that matches wins.

use std::sync::LazyLock;

use regex::{Captures, Regex};

/// Longest text that is parameterized (a bound on the work); longer texts are cut there.
const MAX_CHARS: usize = 8192;

const TLDS: &str = "COM|NET|ORG|JP|DE|UK|FR|BR|IT|RU|ES|ME|GOV|PL|CA|AU|CN|CO|IN|NL|EDU|INFO|EU|CH|\
ID|AT|KR|CZ|MX|BE|TV|SE|TR|TW|AL|UA|IR|VN|CL|SK|LY|CC|TO|NO|FI|US|PT|DK|AR|HU|TK|GR|IL|NEWS|RO|MY|\
BIZ|IE|ZA|NZ|SG|EE|TH|IO|XYZ|PE|BG|HK|RS|LT|LINK|PH|CLUB|SI|SITE|MOBI|BY|CAT|WIKI|LA|GA|XXX|CF|HR|\
NG|JOBS|ONLINE|KZ|UG|GQ|AE|IS|LV|PRO|FM|TIPS|MS|SA|APP";

static PARAMS: LazyLock<Regex> = LazyLock::new(|| {
    let ipv4_octet = r"(?:25[0-5]|(?:2[0-4]|1?[0-9])?[0-9])";
    let ipv4 = format!(r"(?:{ipv4_octet}\.){{3}}{ipv4_octet}");
    let h = "[0-9a-fA-F]{1,4}";
    let ipv6 = [
        format!("(?:{h}:){{7}}{h}"),
        format!("(?:{h}:){{1,7}}:"),
        format!("(?:{h}:){{1,6}}:{h}"),
        format!("(?:{h}:){{1,5}}(?::{h}){{1,2}}"),
        format!("(?:{h}:){{1,4}}(?::{h}){{1,3}}"),
        format!("(?:{h}:){{1,3}}(?::{h}){{1,4}}"),
        format!("(?:{h}:){{1,2}}(?::{h}){{1,5}}"),
        format!("{h}:(?:(?::{h}){{1,6}})"),
        format!(":(?:(?::{h}){{1,7}}|:)"),
        "fe80:(?::[0-9a-fA-F]{0,4}){0,4}%[0-9a-zA-Z]+".to_owned(),
        format!("::(?:ffff(?::0{{1,4}})?:)?{ipv4}"),
        format!(r"(?:{h}:){{1,4}}:{ipv4}\b"),
    ]
    .join("|");
    let lower_tlds = TLDS.to_lowercase();
    let days = "Sun|Mon|Tue|Wed|Thu|Fri|Sat";
    let months = "Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec";
    let zone = r"[-+]\d{2}[0-5]\d|(?:UT|GMT|(?:E|C|M|P)(?:ST|DT)|[A-IK-Z])";
    let date = [
        // RFC 822 / 1123
        format!(r"(?:{days}),\s\d{{1,2}}\s(?:{months})\s\d{{2,4}}\s\d{{1,2}}:\d{{1,2}}(?::\d{{1,2}})?\s(?:{zone})"),
        // `Mon Jan 02, 1999`, `Jan 02, 1999`
        format!(r"(?:(?:{days})\s)?(?:{months})\s[0-3]\d,\s\d{{2,4}}"),
        // RFC 850
        format!(r"(?:Sunday|Monday|Tuesday|Wednesday|Thursday|Friday|Saturday),\s\d{{2}}-(?:{months})-\d{{2}}\s\d{{2}}:\d{{2}}:\d{{2}}\s(?:UT|GMT|(?:E|C|M|P)(?:ST|DT)|[A-IK-Z])"),
        // RFC 3339
        r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d+)?Z?(?:[+-]?\d{2}:\d{2})?".to_owned(),
        // date and time
        r"\d{4}-?[01]\d-?[0-3]\d\s[0-2]\d:[0-5]\d:[0-5]\d(?:\.\d+)?".to_owned(),
        // kitchen clock
        r"\d{1,2}:\d{2}(?::\d{2})?(?:[aApP][Mm])?".to_owned(),
        r"\d{4}-[01]\d-[0-3]\d".to_owned(),
        r"[0-2]\d:[0-5]\d:[0-5]\d".to_owned(),
        r"\d{4}-[01]\d-[0-3]\dT[0-2]\d:[0-5]\d:[0-5]\d\.\d+(?:[+-][0-2]\d:[0-5]\d|Z)".to_owned(),
        r"\d{4}-[01]\d-[0-3]\dT[0-2]\d:[0-5]\d:[0-5]\d(?:[+-][0-2]\d:[0-5]\d|Z)".to_owned(),
        r"\d{4}-[01]\d-[0-3]\dT[0-2]\d:[0-5]\d(?:[+-][0-2]\d:[0-5]\d|Z)".to_owned(),
        format!(r"\b(?:(?:{days})\s+)?(?:{months})\s+\d{{1,2}}\s+\d{{2}}:\d{{2}}:\d{{2}}\s+\d{{4}}"),
        format!(r"\b(?:(?:{days}),\s+)?(?:0[1-9]|[1-2]?\d|3[01])\s+(?:{months})\s+(?:19\d{{2}}|[2-9]\d{{3}})\s+(?:2[0-3]|[0-1]\d):[0-5]\d(?::(?:60|[0-5]\d))?\s+(?:{zone})"),
        r"datetime\.datetime\(.*?\)".to_owned(),
    ]
    .join("|");
    let pattern = [
        r"(?P<email>[a-zA-Z0-9.!#$%&'*+/=?^_`{|}~\-]+@[a-zA-Z0-9\-]+(?:\.[a-zA-Z0-9\-]+)*)".to_owned(),
        r"(?P<url>\b(?:wss?|https?|ftp)://[^\s/$.?#].\S*)".to_owned(),
        format!(r"(?P<hostname>\b(?:[a-zA-Z0-9\-]{{1,63}}\.)+?(?:{TLDS}|{lower_tlds})\b)"),
        format!(r"(?P<ip>{ipv6}|\b{ipv4}\b)"),
        r"(?P<uuid>\b[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}\b)".to_owned(),
        r"(?P<sha1>\b[0-9a-fA-F]{40}\b)".to_owned(),
        r"(?P<md5>\b[0-9a-fA-F]{32}\b)".to_owned(),
        format!("(?P<date>{date})"),
        r"(?P<duration>\b\d+ms|\d+(?:\.\d+)?s\b)".to_owned(),
        r"(?P<hex>\b0[xX][0-9a-fA-F]+\b)".to_owned(),
        r"(?P<float>-\d+\.\d+\b|\b\d+\.\d+\b)".to_owned(),
        r"(?P<int>-\d+\b|\b\d+\b)".to_owned(),
        // only the value half of `key=value`: the `=` is part of the match and written back
        r#"(?P<quoted_str>='[^']+'|="[^"]+")"#.to_owned(),
        r"(?P<bool>=(?:True|true|False|false))".to_owned(),
    ]
    .join("|");
    Regex::new(&pattern).expect("valid regex")
});

const KINDS: &[&str] = &[
    "email",
    "url",
    "hostname",
    "ip",
    "uuid",
    "sha1",
    "md5",
    "date",
    "duration",
    "hex",
    "float",
    "int",
    "quoted_str",
    "bool",
];

/// The text with its variable parts replaced by `<kind>` placeholders.
pub fn parameterize(text: &str) -> String {
    let text = match text.char_indices().nth(MAX_CHARS) {
        Some((cut, _)) => &text[..cut],
        None => text,
    };
    PARAMS
        .replace_all(text, |caps: &Captures<'_>| {
            for kind in KINDS {
                if caps.name(kind).is_some() {
                    return if matches!(*kind, "quoted_str" | "bool") {
                        format!("=<{kind}>")
                    } else {
                        format!("<{kind}>")
                    };
                }
            }
            caps[0].to_owned()
        })
        .into_owned()
}

/// Sentry's normalization of a message or exception value for grouping: the first two
/// non-blank lines (with `...` appended when that changed anything), parameterized.
pub fn normalize(message: &str) -> String {
    let mut lines = split_lines(message).filter(|l| !l.trim().is_empty());
    let mut trimmed = String::with_capacity(message.len().min(512));
    if let Some(first) = lines.next() {
        trimmed.push_str(first);
    }
    if let Some(second) = lines.next() {
        trimmed.push('\n');
        trimmed.push_str(second);
    }
    if trimmed != message {
        trimmed.push_str("...");
    }
    parameterize(&trimmed)
}

/// Lines as Python's `str.splitlines` cuts them.
fn split_lines(text: &str) -> impl Iterator<Item = &str> {
    let mut rest = text;
    std::iter::from_fn(move || {
        if rest.is_empty() {
            return None;
        }
        let is_break = |c: char| {
            matches!(
                c,
                '\n' | '\r'
                    | '\u{0b}'
                    | '\u{0c}'
                    | '\u{1c}'
                    | '\u{1d}'
                    | '\u{1e}'
                    | '\u{85}'
                    | '\u{2028}'
                    | '\u{2029}'
            )
        };
        match rest.char_indices().find(|(_, c)| is_break(*c)) {
            Some((at, c)) => {
                let line = &rest[..at];
                let mut next = at + c.len_utf8();
                if c == '\r' && rest[next..].starts_with('\n') {
                    next += 1;
                }
                rest = &rest[next..];
                Some(line)
            }
            None => {
                let line = rest;
                rest = "";
                Some(line)
            }
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_name_the_kind_of_value() {
        let cases = [
            ("something 9", "something <int>"),
            ("took 1.25 for user -42", "took <float> for user <int>"),
            ("mail bob.smith+x@example.co.uk now", "mail <email> now"),
            (
                "GET https://api.example.com/users/17?x=1 failed",
                "GET <url> failed",
            ),
            (
                "connect to db.example.com refused",
                "connect to <hostname> refused",
            ),
            (
                "order 6f1c2a9e-1b2c-4d3e-8f90-0a1b2c3d4e5f missing",
                "order <uuid> missing",
            ),
            ("at 2024-04-26T15:26:18Z", "at <date>"),
            ("since 12:03:44", "since <date>"),
            ("connect to 10.0.0.12 refused", "connect to <ip> refused"),
            ("from 2001:db8:85a3:0:0:8a2e:370:7334", "from <ip>"),
            // as in Sentry, the first alternative that matches wins, even a short one
            (
                "from fe80::1ff:fe23:4567:890a",
                "from <ip>1ff:fe<date><date>0a",
            ),
            ("ptr 0x7fff5fbff8a0", "ptr <hex>"),
            ("sha 3f786850e387550fdab836ed7e6dc881de23001b", "sha <sha1>"),
            ("md5 d41d8cd98f00b204e9800998ecf8427e", "md5 <md5>"),
            ("took 3000ms, then 2.5s", "took <duration>, then <duration>"),
            ("user=\"bob\" admin=true", "user=<quoted_str> admin=<bool>"),
            // Sentry's IPv6 pattern has no word boundary: `d::` and `::a` look like addresses
            (
                "std::vector::at out of range",
                "st<ip>vector<ip>t out of range",
            ),
            ("user123 and deadbeef", "user123 and deadbeef"),
        ];
        for (input, expected) in cases {
            assert_eq!(parameterize(input), expected, "{input}");
        }
    }

    #[test]
    fn messages_keep_two_lines_and_say_when_they_were_cut() {
        assert_eq!(normalize("one line"), "one line");
        assert_eq!(normalize("a\n\nb\nc"), "a\nb...");
        // as in Sentry: a trailing newline counts as a change
        assert_eq!(normalize("a\n"), "a...");
        assert_eq!(normalize("row 7\nrow 8"), "row <int>\nrow <int>");
    }
}
