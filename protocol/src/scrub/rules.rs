//! PII rules: the built-in ones (`@ip`, `@email`, `@creditcard`, `@password`, ...) and those a
//! project defines in Relay's JSON format (`pattern`, `redact_pair`, `anything`, `multiple`,
//! `alias` and the built-in types), each with a redaction method.

use std::sync::{Arc, LazyLock};

use aho_corasick::AhoCorasick;
use regex::Regex;
use serde_json::Value;

use super::ConfigError;

/// What happens to the selected text or value.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Redaction {
    /// The whole value becomes `null`; a matched part of a string is cut out.
    Remove,
    /// Replaced by this text.
    Replace(String),
    /// Every character becomes `*`.
    Mask,
    /// Replaced by the upper-case hex SHA-256 of the text.
    Hash,
}

impl Redaction {
    /// The remark type Relay writes in `_meta` for it.
    pub(crate) fn remark(&self) -> &'static str {
        match self {
            Self::Remove => "x",
            Self::Replace(_) => "s",
            Self::Mask => "m",
            Self::Hash => "p",
        }
    }

    pub(crate) fn apply(&self, text: &str) -> String {
        match self {
            Self::Remove => String::new(),
            Self::Replace(with) => with.clone(),
            Self::Mask => "*".repeat(text.chars().count()),
            Self::Hash => {
                use sha2::Digest;
                hex::encode_upper(sha2::Sha256::digest(text.as_bytes()))
            }
        }
    }
}

/// `[Filtered]`, the text of Sentry's data scrubber.
pub(crate) const FILTERED: &str = "[Filtered]";

/// What a rule looks for.
#[derive(Debug, Clone)]
pub(crate) enum Matcher {
    /// Text in string values: the capture groups listed (the whole match when empty).
    Pattern {
        regex: Regex,
        groups: Vec<usize>,
        /// A cheap test of the string's [`Traits`] that must pass before the regex runs.
        prefilter: Option<Prefilter>,
        /// A check of each match (the Luhn checksum of card numbers).
        validate: Option<fn(&str) -> bool>,
    },
    /// The whole value of a member whose key matches.
    Pair { key: KeyPattern },
    /// The whole value.
    Anything,
}

#[derive(Debug, Clone)]
pub(crate) struct Rule {
    /// As written in `_meta` remarks: `@password:filter`, a rule name of the project, ...
    pub(crate) id: String,
    pub(crate) matcher: Matcher,
    pub(crate) redaction: Redaction,
}

/// Key names whose values are secrets: Relay's `@password` key pattern, plus session and CSRF
/// names as Sentry's SDKs scrub them.
const PASSWORD_KEYS: &[&str] = &[
    "password",
    "secret",
    "passwd",
    "api_key",
    "apikey",
    "auth",
    "credentials",
    "mysql_pwd",
    "privatekey",
    "private_key",
    "token",
    "otp",
    "two-factor",
    "two_factor",
    "session",
    "csrf",
    "xsrf",
];

/// What a key name must contain (in any case) for a [`Matcher::Pair`] rule to take its value.
#[derive(Debug, Clone)]
pub(crate) enum KeyPattern {
    /// Any of these words: Sentry's sensitive keys and a project's sensitive fields, searched
    /// as one automaton (no per-thread search cache as a regex needs, which ingest threads
    /// would otherwise contend for on every key).
    Words(Arc<AhoCorasick>),
    /// A regular expression (`keyPattern` of an advanced `redact_pair` rule).
    Regex(Regex),
}

impl KeyPattern {
    fn words(words: &[&str]) -> Option<Self> {
        AhoCorasick::builder()
            .ascii_case_insensitive(true)
            // keys are short: a plain DFA walk beats a prefilter's setup on each of them
            .kind(Some(aho_corasick::AhoCorasickKind::DFA))
            .prefilter(false)
            .build(words)
            .ok()
            .map(|ac| Self::Words(Arc::new(ac)))
    }

    pub(crate) fn is_match(&self, key: &str) -> bool {
        match self {
            Self::Words(words) => words.is_match(key),
            Self::Regex(regex) => regex.is_match(key),
        }
    }
}

/// Session and CSRF cookie names whose values are removed (Relay's list).
pub(crate) const SENSITIVE_COOKIES: &[&str] = &[
    "sentrysid",
    "sudo",
    "su",
    "session",
    "__session",
    "sessionid",
    "user_session",
    "symfony",
    "phpsessid",
    "fasthttpsessionid",
    "mysession",
    "irissessionid",
    "_vercel_jwt",
    "csrf",
    "xsrf",
    "_xsrf",
    "_csrf",
    "csrf-token",
    "csrf_token",
    "xsrf-token",
    "xsrf_token",
    "fastcsrf",
    "_iris_csrf",
];

fn regex(pattern: &str) -> Regex {
    // the built-in patterns are constants, checked by the tests
    Regex::new(pattern).unwrap_or_else(|e| panic!("built-in pattern {pattern:?}: {e}"))
}

static PASSWORD_KEY: LazyLock<Option<KeyPattern>> =
    LazyLock::new(|| KeyPattern::words(PASSWORD_KEYS));
static BEARER: LazyLock<Regex> = LazyLock::new(|| regex(r"(?i)\b(Bearer\s+)([^\s]+)"));
static CREDITCARD: LazyLock<Regex> =
    LazyLock::new(|| regex(r"\b((?:3[47]\d|(?:4\d|5[1-5]|65)\d{2}|6011)(?:[-\s]?\d){9,12})\b"));
static IBAN: LazyLock<Regex> = LazyLock::new(|| {
    regex(concat!(
        r"\b(?:AD|AE|AL|AT|AZ|BA|BE|BG|BH|BR|BY|CH|CR|CY|CZ|DE|DK|DO|EE|EG|ES|FI|FO|FR|GB|GE|GI|",
        r"GL|GR|GT|HR|HU|IE|IL|IQ|IS|IT|JO|KW|KZ|LB|LC|LI|LT|LU|LV|MC|MD|ME|MK|MR|MT|MU|NL|NO|PK|",
        r"PL|PS|PT|QA|RO|RS|SA|SC|SE|SI|SK|SM|ST|SV|TL|TN|TR|UA|VA|VG|XK)\d{2}[a-zA-Z0-9]{11,29}\b"
    ))
});
static PEMKEY: LazyLock<Regex> = LazyLock::new(|| {
    regex(
        r"(?s)-----BEGIN[A-Z ]+(?:PRIVATE|PUBLIC) KEY-----(.+?)-----END[A-Z ]+(?:PRIVATE|PUBLIC) KEY-----",
    )
});
static URLAUTH: LazyLock<Regex> =
    LazyLock::new(|| regex(r"(?i)\b[a-z][a-z0-9+.-]*://([^/\s:@]+):([^/\s@]+)@"));
static USSSN: LazyLock<Regex> = LazyLock::new(|| regex(r"\b\d{3}-\d{2}-\d{4}\b"));
static USERPATH: LazyLock<Regex> = LazyLock::new(|| {
    regex(r"(?i)(?:\b[a-z]:)?(?:[/\\](?:users|home|documents and settings)[/\\])([^/\\\s]+)")
});
static EMAIL: LazyLock<Regex> = LazyLock::new(|| {
    regex(r"\b[a-zA-Z0-9.!#$%&'*+/=?^_`{|}~-]+@[a-zA-Z0-9-]+(?:\.[a-zA-Z0-9-]+)*\b")
});
static IP: LazyLock<Regex> = LazyLock::new(|| {
    regex(concat!(
        r"\b(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\b",
        r"|(?i)\b(?:[0-9a-f]{1,4}:){7}[0-9a-f]{1,4}\b",
        r"|(?i)(?:\b(?:[0-9a-f]{1,4}:){1,7}|::)(?::[0-9a-f]{1,4}){1,7}\b",
        r"|(?i)\b(?:[0-9a-f]{1,4}:){1,7}:"
    ))
});
static MAC: LazyLock<Regex> = LazyLock::new(|| regex(r"(?i)\b[0-9a-f]{2}(?:[:-][0-9a-f]{2}){5}\b"));
static UUID: LazyLock<Regex> = LazyLock::new(|| {
    regex(r"(?i)\b[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}\b")
});

/// The Luhn checksum of the digits of `text`.
pub(crate) fn luhn(text: &str) -> bool {
    let mut sum = 0;
    for (i, d) in text
        .bytes()
        .rev()
        .filter(u8::is_ascii_digit)
        .map(|b| u32::from(b - b'0'))
        .enumerate()
    {
        sum += if i % 2 == 1 {
            if d * 2 > 9 { d * 2 - 9 } else { d * 2 }
        } else {
            d
        };
    }
    sum % 10 == 0
}

fn pattern(regex: &LazyLock<Regex>, groups: &[usize], prefilter: Option<Prefilter>) -> Matcher {
    Matcher::Pattern {
        regex: Regex::clone(regex),
        groups: groups.to_vec(),
        prefilter,
        validate: None,
    }
}

/// The matchers of a built-in rule and its default redaction.
fn builtin(name: &str, legacy: bool) -> Option<(Vec<Matcher>, Redaction)> {
    let replace = |text: &str| Redaction::Replace(text.to_owned());
    Some(match name {
        "ip" => (
            vec![pattern(&IP, &[], Some(Prefilter::DotOrColon))],
            replace("[ip]"),
        ),
        "email" => (
            vec![pattern(&EMAIL, &[], Some(Prefilter::At))],
            replace("[email]"),
        ),
        "creditcard" => (
            vec![Matcher::Pattern {
                regex: Regex::clone(&CREDITCARD),
                groups: Vec::new(),
                prefilter: Some(Prefilter::CardDigits),
                validate: Some(luhn),
            }],
            replace("[creditcard]"),
        ),
        "iban" => (
            vec![pattern(&IBAN, &[], Some(Prefilter::IbanLength))],
            replace("[iban]"),
        ),
        "pemkey" => (
            vec![pattern(&PEMKEY, &[1], Some(Prefilter::Pem))],
            replace("[pemkey]"),
        ),
        "urlauth" => (
            vec![pattern(
                &URLAUTH,
                if legacy { &[2] } else { &[1, 2] },
                Some(Prefilter::SchemeAndAt),
            )],
            replace("[auth]"),
        ),
        "usssn" => (
            vec![pattern(&USSSN, &[], Some(Prefilter::SsnDigits))],
            Redaction::Mask,
        ),
        "userpath" => (
            vec![pattern(&USERPATH, &[1], Some(Prefilter::UserDir))],
            replace("[user]"),
        ),
        "mac" => (
            vec![pattern(&MAC, &[], Some(Prefilter::ColonOrDash))],
            Redaction::Mask,
        ),
        "uuid" => (
            vec![pattern(&UUID, &[], Some(Prefilter::UuidLength))],
            Redaction::Mask,
        ),
        "bearer" => (
            vec![pattern(&BEARER, &[2], Some(Prefilter::Bearer))],
            replace("[token]"),
        ),
        "password" => (
            vec![
                Matcher::Pair {
                    key: PASSWORD_KEY.clone()?,
                },
                pattern(&BEARER, &[2], Some(Prefilter::Bearer)),
            ],
            Redaction::Remove,
        ),
        "anything" => (vec![Matcher::Anything], Redaction::Remove),
        _ => return None,
    })
}

/// The tests of a string's [`Traits`] the built-in patterns need to pass before they run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Prefilter {
    DotOrColon,
    At,
    CardDigits,
    IbanLength,
    Pem,
    SchemeAndAt,
    SsnDigits,
    UserDir,
    ColonOrDash,
    UuidLength,
    Bearer,
}

impl Prefilter {
    const ALL: [Self; 11] = [
        Self::DotOrColon,
        Self::At,
        Self::CardDigits,
        Self::IbanLength,
        Self::Pem,
        Self::SchemeAndAt,
        Self::SsnDigits,
        Self::UserDir,
        Self::ColonOrDash,
        Self::UuidLength,
        Self::Bearer,
    ];

    pub(crate) fn holds(self, t: &Traits) -> bool {
        match self {
            Self::DotOrColon => t.dot || t.colon,
            Self::At => t.at,
            Self::CardDigits => t.digits >= 13,
            Self::IbanLength => t.digits >= 4 && t.len >= 15,
            Self::Pem => t.pem,
            Self::SchemeAndAt => t.scheme && t.at,
            Self::SsnDigits => t.dash && t.digits >= 9,
            Self::UserDir => t.user_dir,
            Self::ColonOrDash => t.colon || t.dash,
            Self::UuidLength => t.len >= 32,
            Self::Bearer => t.bearer,
        }
    }

    /// Its bit in [`Traits::holding`].
    pub(crate) fn bit(self) -> u16 {
        1 << self as u16
    }
}

/// What the prefilters of the built-in patterns ask of a string, worked out in one pass over
/// its bytes instead of one scan per pattern.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Traits {
    pub(crate) len: usize,
    pub(crate) digits: usize,
    pub(crate) dot: bool,
    pub(crate) colon: bool,
    pub(crate) dash: bool,
    pub(crate) at: bool,
    /// `://`
    pub(crate) scheme: bool,
    /// `bearer`, in any case
    pub(crate) bearer: bool,
    /// `-----BEGIN`
    pub(crate) pem: bool,
    /// A path segment `users`, `home` or `documents and settings` (any case) after `/` or `\`
    pub(crate) user_dir: bool,
}

impl Traits {
    /// The [`Prefilter`]s these traits pass, as bits.
    pub(crate) fn holding(&self) -> u16 {
        Prefilter::ALL
            .iter()
            .filter(|p| p.holds(self))
            .fold(0, |all, p| all | p.bit())
    }

    pub(crate) fn of(text: &str) -> Self {
        let bytes = text.as_bytes();
        let mut t = Self {
            len: bytes.len(),
            ..Self::default()
        };
        let at = |i: usize, word: &[u8]| {
            bytes
                .get(i..i + word.len())
                .is_some_and(|w| w.eq_ignore_ascii_case(word))
        };
        for (i, &b) in bytes.iter().enumerate() {
            match b {
                b'0'..=b'9' => t.digits += 1,
                b'.' => t.dot = true,
                b':' => {
                    t.colon = true;
                    t.scheme |= at(i + 1, b"//");
                }
                b'-' => {
                    t.dash = true;
                    t.pem |= at(i, b"-----BEGIN");
                }
                b'@' => t.at = true,
                b'b' | b'B' => t.bearer |= at(i + 1, b"earer"),
                b'/' | b'\\' => {
                    t.user_dir |= [&b"users"[..], b"home", b"documents and settings"]
                        .iter()
                        .any(|dir| {
                            at(i + 1, dir)
                                && matches!(bytes.get(i + 1 + dir.len()), Some(b'/' | b'\\'))
                        });
                }
                _ => {}
            }
        }
        t
    }
}

/// The rules of `@common`: what Sentry's "use default scrubbers" removes.
const COMMON: &[&str] = &[
    "creditcard",
    "iban",
    "pemkey",
    "urlauth",
    "userpath",
    "password",
    "usssn",
];

/// Resolves a built-in reference such as `@ip`, `@creditcard:mask` or `@common:filter`.
pub(crate) fn resolve_builtin(reference: &str) -> Option<Vec<Rule>> {
    let name = reference.strip_prefix('@')?;
    let (name, method) = match name.split_once(':') {
        Some((name, method)) => (name, Some(method)),
        None => (name, None),
    };
    let names: Vec<&str> = if name == "common" {
        COMMON.to_vec()
    } else {
        vec![name]
    };
    let mut out = Vec::new();
    let common = names.len() > 1;
    for name in names {
        // `@common` takes the password of URLs only, as Sentry's data scrubber does
        let legacy = method == Some("legacy") || (common && name == "urlauth");
        let (matchers, default) = builtin(name, legacy)?;
        let redaction = match method {
            None => default,
            Some("filter" | "legacy") => Redaction::Replace(FILTERED.to_owned()),
            Some("replace") => match default {
                Redaction::Replace(text) => Redaction::Replace(text),
                _ => Redaction::Replace(FILTERED.to_owned()),
            },
            Some("remove") => Redaction::Remove,
            Some("mask") => Redaction::Mask,
            Some("hash") => Redaction::Hash,
            Some(_) => return None,
        };
        let id = match method {
            Some(method) => format!("@{name}:{method}"),
            None => format!("@{name}"),
        };
        out.extend(matchers.into_iter().map(|matcher| Rule {
            id: id.clone(),
            matcher,
            redaction: redaction.clone(),
        }));
    }
    Some(out)
}

/// A rule that removes the values of members whose key matches one of `names` exactly
/// (case-insensitively): the project's "additional sensitive fields".
pub(crate) fn sensitive_fields(names: &[String]) -> Option<Rule> {
    let names: Vec<&str> = names
        .iter()
        .map(|n| n.trim())
        .filter(|n| !n.is_empty())
        .collect();
    if names.is_empty() {
        return None;
    }
    // ASCII names in any case as words; others need Unicode case folding
    let key = if names.iter().all(|n| n.is_ascii()) {
        KeyPattern::words(&names)?
    } else {
        let escaped: Vec<String> = names.iter().map(|n| regex::escape(n)).collect();
        KeyPattern::Regex(Regex::new(&format!("(?i){}", escaped.join("|"))).ok()?)
    };
    Some(Rule {
        id: "strip-fields".to_owned(),
        matcher: Matcher::Pair { key },
        redaction: Redaction::Replace(FILTERED.to_owned()),
    })
}

/// Resolves a rule name of `applications`: a rule defined in `rules` or a built-in one.
pub(crate) fn resolve(
    name: &str,
    defined: &serde_json::Map<String, Value>,
    depth: usize,
) -> Result<Vec<Rule>, ConfigError> {
    if depth > 8 {
        return Err(ConfigError::Rule {
            rule: name.to_owned(),
            reason: "aliases nest too deeply".to_owned(),
        });
    }
    if name.starts_with('@') {
        return resolve_builtin(name).ok_or_else(|| ConfigError::Rule {
            rule: name.to_owned(),
            reason: "no such built-in rule (known: @ip, @email, @creditcard, @iban, @pemkey, \
                     @urlauth, @usssn, @userpath, @mac, @uuid, @bearer, @password, @anything, \
                     @common; methods :replace, :remove, :mask, :hash, :filter)"
                .to_owned(),
        });
    }
    let Some(spec) = defined.get(name) else {
        return Err(ConfigError::Rule {
            rule: name.to_owned(),
            reason: "not defined in `rules` and not a built-in rule".to_owned(),
        });
    };
    let bad = |reason: &str| ConfigError::Rule {
        rule: name.to_owned(),
        reason: reason.to_owned(),
    };
    let ty = spec
        .get("type")
        .and_then(Value::as_str)
        .ok_or_else(|| bad("missing `type`"))?;
    let redaction = match spec.get("redaction") {
        None | Some(Value::Null) => None,
        Some(r) => Some(redaction(r).map_err(|reason| bad(&reason))?),
    };
    let with = |matcher: Matcher, default: Redaction| {
        vec![Rule {
            id: name.to_owned(),
            matcher,
            redaction: redaction.clone().unwrap_or(default),
        }]
    };
    let filtered = Redaction::Replace(FILTERED.to_owned());
    Ok(match ty {
        "pattern" => {
            let text = spec
                .get("pattern")
                .and_then(Value::as_str)
                .ok_or_else(|| bad("a `pattern` rule needs `pattern`"))?;
            let regex = Regex::new(text).map_err(|e| bad(&format!("invalid `pattern`: {e}")))?;
            let groups = match spec.get("replaceGroups").or(spec.get("replace_groups")) {
                Some(Value::Array(groups)) => groups
                    .iter()
                    .map(|g| {
                        g.as_u64()
                            .and_then(|g| usize::try_from(g).ok())
                            .filter(|g| *g < regex.captures_len())
                            .ok_or_else(|| bad("`replaceGroups` must list capture groups"))
                    })
                    .collect::<Result<_, _>>()?,
                _ => Vec::new(),
            };
            with(
                Matcher::Pattern {
                    regex,
                    groups,
                    prefilter: None,
                    validate: None,
                },
                filtered,
            )
        }
        "redact_pair" => {
            let text = spec
                .get("keyPattern")
                .or(spec.get("key_pattern"))
                .and_then(Value::as_str)
                .ok_or_else(|| bad("a `redact_pair` rule needs `keyPattern`"))?;
            let key = Regex::new(&format!("(?i){text}"))
                .map_err(|e| bad(&format!("invalid `keyPattern`: {e}")))?;
            with(
                Matcher::Pair {
                    key: KeyPattern::Regex(key),
                },
                filtered,
            )
        }
        "anything" => with(Matcher::Anything, filtered),
        "multiple" | "alias" => {
            let names: Vec<&str> = if ty == "alias" {
                vec![
                    spec.get("rule")
                        .and_then(Value::as_str)
                        .ok_or_else(|| bad("an `alias` rule needs `rule`"))?,
                ]
            } else {
                spec.get("rules")
                    .and_then(Value::as_array)
                    .ok_or_else(|| bad("a `multiple` rule needs `rules`"))?
                    .iter()
                    .map(|r| r.as_str().ok_or_else(|| bad("`rules` must be names")))
                    .collect::<Result<_, _>>()?
            };
            let hide = spec
                .get("hideInner")
                .or(spec.get("hide_inner"))
                .and_then(Value::as_bool)
                .unwrap_or(false);
            let mut out = Vec::new();
            for inner in names {
                for mut rule in resolve(inner, defined, depth + 1)? {
                    if let Some(r) = &redaction {
                        rule.redaction = r.clone();
                    }
                    if hide {
                        rule.id = name.to_owned();
                    }
                    out.push(rule);
                }
            }
            out
        }
        builtin_type => {
            let (matchers, default) = builtin(builtin_type, false)
                .filter(|_| builtin_type != "anything")
                .ok_or_else(|| bad(&format!("unknown rule type {builtin_type:?}")))?;
            let redaction = redaction.unwrap_or(default);
            matchers
                .into_iter()
                .map(|matcher| Rule {
                    id: name.to_owned(),
                    matcher,
                    redaction: redaction.clone(),
                })
                .collect()
        }
    })
}

fn redaction(spec: &Value) -> Result<Redaction, String> {
    let method = spec
        .get("method")
        .and_then(Value::as_str)
        .ok_or("`redaction` needs `method`")?;
    Ok(match method {
        "remove" => Redaction::Remove,
        "replace" => Redaction::Replace(
            spec.get("text")
                .and_then(Value::as_str)
                .unwrap_or(FILTERED)
                .to_owned(),
        ),
        "mask" => Redaction::Mask,
        "hash" => Redaction::Hash,
        other => {
            return Err(format!(
                "unknown redaction method {other:?} (known: remove, replace, mask, hash)"
            ));
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A prefilter may let through text its pattern does not match, never the reverse.
    #[test]
    fn a_prefilter_never_skips_text_its_pattern_matches() {
        let texts = [
            "4111 1111 1111 1111",
            "card 4111-1111-1111-1111 charged",
            "DE89370400440532013000",
            "iban: GB82WEST12345698765432.",
            "-----BEGIN RSA PRIVATE KEY-----\nMIIE\n-----END RSA PRIVATE KEY-----",
            "postgres://admin:hunter2@db.internal:5432/shop",
            "HTTPS://u:p@host/",
            "078-05-1120",
            "/home/ann/app/main.py",
            "C:\\Users\\Ann\\app.exe",
            "c:\\Documents and Settings\\bob\\x",
            "/HOME/ann/x",
            "Authorization: Bearer abc.def",
            "BEARER xyz",
            "ann@example.com",
            "10.0.0.1 and ::1 and fe80::1:2:3:4",
            "00:1A:2b:3c:4D:5e",
            "550e8400-e29b-41d4-a716-446655440000",
            "nothing here at all",
            "",
        ];
        for name in [
            "ip",
            "email",
            "creditcard",
            "iban",
            "pemkey",
            "urlauth",
            "usssn",
            "userpath",
            "mac",
            "uuid",
            "bearer",
            "password",
        ] {
            let (matchers, _) = builtin(name, false).unwrap();
            for matcher in matchers {
                let Matcher::Pattern {
                    regex, prefilter, ..
                } = matcher
                else {
                    continue;
                };
                let Some(prefilter) = prefilter else {
                    continue;
                };
                for text in texts {
                    if regex.is_match(text) {
                        assert!(
                            prefilter.holds(&Traits::of(text)),
                            "{name}: the prefilter skips {text:?}"
                        );
                    }
                }
            }
        }
    }
}
