//! Server-side fingerprint rules in Sentry's syntax: an event that matches a rule gets the
//! rule's fingerprint, as if the SDK had sent it.
//!
//! ```text
//! error.type:DatabaseUnavailable -> system-down
//! message:"*timeout*" -> timeouts, {{ transaction }}
//! family:javascript error.type:ChunkLoadError -> chunkloaderror
//! logger:payments level:error -> payments, {{ default }} title="Payment error"
//! ```
//!
//! Matchers (all must match; `!` negates): `error.type:` (or `type:`), `error.value:` (or
//! `value:`), `message:` (the log message, or any exception value), `logger:`, `level:`,
//! `release:`, `sdk:`, `family:`, `tags.NAME:`, and frame matchers that must hold for one
//! frame: `path:` (or `stack.abs_path:`), `module:`, `function:`, `package:`, `app:`. Values
//! are globs, case-insensitive for messages, values and paths. The first matching rule wins.

use serde_json::{Map, Value};

use super::enhancers::{RuleError, family};
use super::glob::Glob;
use crate::view::EventView;

/// Longest rule text accepted, in bytes.
pub const MAX_RULES_BYTES: usize = 64 * 1024;

#[derive(Debug, Clone)]
enum Key {
    Type,
    Value,
    Message,
    Logger,
    Level,
    Release,
    Sdk,
    Family,
    Tag(String),
    Path,
    Module,
    Function,
    Package,
    App,
}

#[derive(Debug, Clone)]
struct Matcher {
    negated: bool,
    key: Key,
    glob: Glob,
    raw: String,
}

#[derive(Debug, Clone)]
pub(crate) struct FingerprintRule {
    pub(crate) text: String,
    matchers: Vec<Matcher>,
    pub(crate) fingerprint: Vec<String>,
    pub(crate) title: Option<String>,
    pub(crate) builtin: bool,
}

/// A parsed list of fingerprint rules.
#[derive(Debug, Clone, Default)]
pub struct FingerprintRules {
    rules: Vec<FingerprintRule>,
}

/// Sentry's built-in rules for JavaScript: chunk load failures are one issue, React hydration
/// errors one issue per transaction.
const BUILTIN: &str = r#"
family:javascript error.type:"ChunkLoadError" -> chunkloaderror
family:javascript error.value:"ChunkLoadError*" -> chunkloaderror
family:javascript tags.transaction:"*" message:"Hydration failed because the initial UI does not match what was rendered on the server." -> hydrationerror, {{tags.transaction}}
family:javascript tags.transaction:"*" message:"The server could not finish this Suspense boundary, likely due to an error during server rendering. Switched to client rendering." -> hydrationerror, {{tags.transaction}}
family:javascript tags.transaction:"*" message:"There was an error while hydrating this Suspense boundary. Switched to client rendering." -> hydrationerror, {{tags.transaction}}
family:javascript tags.transaction:"*" message:"There was an error while hydrating. Because the error happened outside of a Suspense boundary, the entire root will switch to client rendering." -> hydrationerror, {{tags.transaction}}
family:javascript tags.transaction:"*" message:"Text content does not match server-rendered HTML." -> hydrationerror, {{tags.transaction}}
"#;

impl FingerprintRules {
    /// Parses rules, one per line; `#` starts a comment.
    pub fn parse(text: &str) -> Result<Self, RuleError> {
        Self::parse_as(text, false)
    }

    /// The built-in rules.
    pub fn builtin() -> Self {
        Self::parse_as(BUILTIN, true).expect("the built-in fingerprint rules parse")
    }

    fn parse_as(text: &str, builtin: bool) -> Result<Self, RuleError> {
        if text.len() > MAX_RULES_BYTES {
            return Err(RuleError {
                line: 1,
                column: 1,
                message: format!(
                    "rules are {} bytes long, more than the limit of {MAX_RULES_BYTES}",
                    text.len()
                ),
            });
        }
        let mut rules = Vec::new();
        for (index, line) in text.lines().enumerate() {
            if let Some(rule) = parse_line(line, index + 1, builtin)? {
                rules.push(rule);
            }
        }
        Ok(Self { rules })
    }

    /// These rules, then `other`'s.
    pub fn followed_by(&self, other: &Self) -> Self {
        let mut rules = self.rules.clone();
        rules.extend(other.rules.iter().cloned());
        Self { rules }
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    pub fn len(&self) -> usize {
        self.rules.len()
    }

    /// The first rule the event matches.
    pub(crate) fn find(
        &self,
        root: &Map<String, Value>,
        view: &EventView<'_>,
    ) -> Option<&FingerprintRule> {
        self.rules.iter().find(|rule| rule.matches(root, view))
    }
}

impl FingerprintRule {
    fn matches(&self, root: &Map<String, Value>, view: &EventView<'_>) -> bool {
        fn text(v: Option<&Value>) -> Option<&str> {
            v.and_then(Value::as_str)
        }
        let platform = text(root.get("platform")).unwrap_or("other");
        let mut frame_matchers = Vec::new();
        let mut exception_matchers = Vec::new();
        for m in &self.matchers {
            let hit = match &m.key {
                Key::Type | Key::Value => {
                    exception_matchers.push(m);
                    continue;
                }
                Key::Path | Key::Module | Key::Function | Key::Package | Key::App => {
                    frame_matchers.push(m);
                    continue;
                }
                Key::Message => {
                    let logentry = root.get("logentry");
                    let message = text(logentry.and_then(|l| l.get("formatted")))
                        .or_else(|| text(logentry.and_then(|l| l.get("message"))));
                    message.is_some_and(|msg| m.glob.is_match(msg))
                        || view
                            .exceptions
                            .iter()
                            .any(|e| text(e.get("value")).is_some_and(|v| m.glob.is_match(v)))
                }
                Key::Logger => text(root.get("logger")).is_some_and(|v| m.glob.is_match(v)),
                Key::Level => text(root.get("level")).is_some_and(|v| m.glob.is_match(v)),
                Key::Release => text(root.get("release")).is_some_and(|v| m.glob.is_match(v)),
                Key::Sdk => text(root.get("sdk").and_then(|s| s.get("name")))
                    .is_some_and(|v| m.glob.is_match(v)),
                Key::Family => {
                    let wanted: Vec<&str> = m.raw.split(',').collect();
                    wanted.contains(&"all") || wanted.contains(&family(platform))
                }
                Key::Tag(name) => tag(root, name).is_some_and(|v| m.glob.is_match(v)),
            };
            if hit == m.negated {
                return false;
            }
        }
        if !exception_matchers.is_empty()
            && !view.exceptions.iter().any(|exc| {
                exception_matchers.iter().all(|m| {
                    let field = if matches!(m.key, Key::Type) {
                        "type"
                    } else {
                        "value"
                    };
                    let hit = text(exc.get(field)).is_some_and(|v| m.glob.is_match(v));
                    hit != m.negated
                })
            })
        {
            return false;
        }
        if !frame_matchers.is_empty() {
            let frames = (0..view.exceptions.len())
                .filter_map(|i| view.exception_frames(i))
                .chain(view.fallback_frames)
                .flatten()
                .filter_map(Value::as_object);
            let mut any = false;
            for frame in frames {
                if frame_matchers
                    .iter()
                    .all(|m| frame_matches(m, frame) != m.negated)
                {
                    any = true;
                    break;
                }
            }
            if !any {
                return false;
            }
        }
        true
    }
}

fn frame_matches(m: &Matcher, frame: &Map<String, Value>) -> bool {
    let text = |k: &str| frame.get(k).and_then(Value::as_str);
    match m.key {
        Key::Path => text("abs_path")
            .or_else(|| text("filename"))
            .is_some_and(|p| m.glob.is_match(&p.replace('\\', "/").to_lowercase())),
        Key::Module => text("module").is_some_and(|v| m.glob.is_match(v)),
        Key::Function => text("function").is_some_and(|v| m.glob.is_match(v)),
        Key::Package => text("package").is_some_and(|p| {
            let p = p.replace('\\', "/").to_lowercase();
            m.glob.is_match(&p) || p.rsplit('/').next().is_some_and(|b| m.glob.is_match(b))
        }),
        Key::App => {
            let in_app = frame.get("in_app") == Some(&Value::Bool(true));
            let wanted = matches!(m.raw.as_str(), "1" | "yes" | "true");
            in_app == wanted
        }
        _ => false,
    }
}

pub(crate) fn tag<'a>(root: &'a Map<String, Value>, name: &str) -> Option<&'a str> {
    root.get("tags")?.as_array()?.iter().find_map(|pair| {
        let pair = pair.as_array()?;
        (pair.first()?.as_str()? == name).then(|| pair.get(1)?.as_str())?
    })
}

fn error(line: usize, line_text: &str, at: usize, message: impl Into<String>) -> RuleError {
    RuleError {
        line,
        column: line_text[..at.min(line_text.len())].chars().count() + 1,
        message: message.into(),
    }
}

/// Splits at whitespace outside quotes, unquoting; returns (byte offset, token).
fn tokens(text: &str, base: usize) -> Result<Vec<(usize, String)>, (usize, String)> {
    let mut out = Vec::new();
    let mut chars = text.char_indices().peekable();
    while let Some(&(start, c)) = chars.peek() {
        if c.is_whitespace() {
            chars.next();
            continue;
        }
        let mut token = String::new();
        let mut quoted = false;
        while let Some(&(_, c)) = chars.peek() {
            if c.is_whitespace() && !quoted {
                break;
            }
            chars.next();
            match c {
                '"' => quoted = !quoted,
                '\\' if quoted => {
                    if let Some((_, n)) = chars.next() {
                        if n != '"' && n != '\\' {
                            token.push('\\');
                        }
                        token.push(n);
                    }
                }
                c => token.push(c),
            }
        }
        if quoted {
            return Err((base + start, "unterminated quoted value".to_owned()));
        }
        out.push((base + start, token));
    }
    Ok(out)
}

fn parse_line(
    line: &str,
    line_no: usize,
    builtin: bool,
) -> Result<Option<FingerprintRule>, RuleError> {
    let mut quoted = false;
    let mut body_end = line.len();
    for (i, c) in line.char_indices() {
        match c {
            '"' => quoted = !quoted,
            '#' if !quoted => {
                body_end = i;
                break;
            }
            _ => {}
        }
    }
    let body = &line[..body_end];
    if body.trim().is_empty() {
        return Ok(None);
    }
    let Some(arrow) = body.find("->") else {
        return Err(error(
            line_no,
            line,
            body.trim_end().len(),
            "expected `->` followed by the fingerprint",
        ));
    };
    let lhs = tokens(&body[..arrow], 0).map_err(|(at, m)| error(line_no, line, at, m))?;
    if lhs.is_empty() {
        return Err(error(
            line_no,
            line,
            0,
            "a rule needs at least one matcher before `->`",
        ));
    }
    let mut matchers = Vec::new();
    for (at, token) in lhs {
        let (negated, token) = match token.strip_prefix('!') {
            Some(rest) => (true, rest.to_owned()),
            None => (false, token),
        };
        let Some((key, value)) = token.split_once(':') else {
            return Err(error(
                line_no,
                line,
                at,
                format!("expected `key:value`, found `{token}`"),
            ));
        };
        if value.is_empty() {
            return Err(error(
                line_no,
                line,
                at,
                format!("matcher `{key}` has no value"),
            ));
        }
        let (key, path_like, ignore_case) = match key {
            "error.type" | "type" => (Key::Type, false, false),
            "error.value" | "value" => (Key::Value, false, true),
            "message" => (Key::Message, false, true),
            "logger" => (Key::Logger, false, false),
            "level" => (Key::Level, false, true),
            "release" => (Key::Release, false, false),
            "sdk" => (Key::Sdk, false, false),
            "family" => (Key::Family, false, false),
            "path" | "stack.abs_path" => (Key::Path, true, true),
            "module" | "stack.module" => (Key::Module, true, false),
            "function" | "stack.function" => (Key::Function, false, false),
            "package" | "stack.package" => (Key::Package, true, true),
            "app" | "stack.app" => (Key::App, false, false),
            other => match other.strip_prefix("tags.") {
                Some(name) if !name.is_empty() => (Key::Tag(name.to_owned()), false, false),
                _ => {
                    return Err(error(
                        line_no,
                        line,
                        at,
                        format!(
                            "unknown matcher `{other}` (expected error.type, error.value, \
                             message, logger, level, release, sdk, family, tags.NAME, path, \
                             module, function, package or app)"
                        ),
                    ));
                }
            },
        };
        let pattern = if matches!(key, Key::Path | Key::Package) {
            value.to_lowercase()
        } else {
            value.to_owned()
        };
        let glob =
            Glob::new(&pattern, path_like, ignore_case).map_err(|m| error(line_no, line, at, m))?;
        matchers.push(Matcher {
            negated,
            key,
            glob,
            raw: value.to_owned(),
        });
    }
    let rhs_start = arrow + 2;
    let rhs =
        tokens(&body[rhs_start..], rhs_start).map_err(|(at, m)| error(line_no, line, at, m))?;
    let mut fingerprint = Vec::new();
    let mut title = None;
    let mut pending = String::new();
    for (at, token) in rhs {
        if let Some(value) = token.strip_prefix("title=") {
            title = Some(value.to_owned());
            continue;
        }
        if token.contains('=') && !token.starts_with("{{") {
            return Err(error(
                line_no,
                line,
                at,
                format!("unknown attribute `{token}` (expected title=\"...\")"),
            ));
        }
        // `a, b`, `a,b` and `{{ default }}` (spaces inside braces) all name entries
        pending.push_str(if pending.is_empty() { "" } else { " " });
        pending.push_str(&token);
        if pending.starts_with("{{") && !pending.contains("}}") {
            continue;
        }
        for part in pending.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            fingerprint.push(part.to_owned());
        }
        pending.clear();
    }
    if !pending.is_empty() {
        return Err(error(
            line_no,
            line,
            line.len(),
            "unterminated `{{` in the fingerprint",
        ));
    }
    if fingerprint.is_empty() {
        return Err(error(
            line_no,
            line,
            rhs_start,
            "expected a fingerprint after `->`",
        ));
    }
    Ok(Some(FingerprintRule {
        text: body.trim().to_owned(),
        matchers,
        fingerprint,
        title,
        builtin,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_rules_and_fingerprints() {
        let rules = FingerprintRules::parse(
            "error.type:DatabaseUnavailable -> system-down\n\
             message:\"*timeout*\" -> timeouts, {{ transaction }}\n\
             logger:payments -> payments,{{default}} title=\"Payments\"  # comment\n",
        )
        .unwrap();
        assert_eq!(rules.len(), 3);
        assert_eq!(
            rules.rules[1].fingerprint,
            ["timeouts", "{{ transaction }}"]
        );
        assert_eq!(rules.rules[2].fingerprint, ["payments", "{{default}}"]);
        assert_eq!(rules.rules[2].title.as_deref(), Some("Payments"));
        assert_eq!(FingerprintRules::builtin().len(), 7);
    }

    #[test]
    fn errors_name_line_and_column() {
        let err = FingerprintRules::parse("\nerror.type:X system-down").unwrap_err();
        assert_eq!(err.line, 2);
        assert!(err.message.contains("`->`"), "{err}");
        let err = FingerprintRules::parse("colour:red -> red").unwrap_err();
        assert_eq!((err.line, err.column), (1, 1));
        let err = FingerprintRules::parse("error.type:X ->").unwrap_err();
        assert!(err.message.contains("expected a fingerprint"), "{err}");
        let err = FingerprintRules::parse("message:\"open -> x").unwrap_err();
        assert!(
            err.message.contains("unterminated") || err.message.contains("`->`"),
            "{err}"
        );
    }
}
