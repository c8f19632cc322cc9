//! Selectors ("sources") of Relay's PII rules: which values of an event a rule applies to.
//!
//! Supported: key paths (`extra.foo`, `$http.headers.x-custom-token`, quoted keys
//! `extra.'my key'` with `''` for a quote), `*` (one level), `**` (any number of levels),
//! value types (`$string`, `$number`, `$boolean`, `$array`, `$object`), the event's
//! interfaces (`$event`, `$error`/`$exception`, `$stack`/`$stacktrace`, `$frame`,
//! `$http`/`$request`, `$user`, `$logentry`, `$message`, `$thread`, `$breadcrumb`, `$sdk`),
//! `!`, `&&`, `||` and parentheses. Keys compare case-insensitively.
//!
//! A path that starts with a key is anchored at the top of the event (`extra.foo` is the
//! top-level `extra`); one that starts with a type or `**` may match at any depth
//! (`$frame.vars` is the `vars` of every frame). A trailing `**` selects what is below a value,
//! not the value itself (`$frame.vars.**` is every local variable).

use super::path::{Kind, Path, ValueType};

#[derive(Debug, thiserror::Error)]
#[error("invalid selector {selector:?}: {reason}")]
pub struct SelectorError {
    pub selector: String,
    pub reason: String,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Item {
    Key(String),
    /// One of these keys (built in, for the sensitive cookie names).
    KeyIn(&'static [&'static str]),
    Kind(Kind),
    Type(ValueType),
    /// `*`
    Any,
    /// `**`
    Deep,
}

#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Selector {
    Path(Vec<Item>),
    /// A path whose only `**` is its last item, compiled ([`Self::compile_below`]): it
    /// selects what is below a value its prefix selects, which the walk works out once per
    /// container and carries down in [`Path::below`] (bit `n`).
    Below(u32),
    Not(Box<Selector>),
    And(Vec<Selector>),
    Or(Vec<Selector>),
}

/// The prefixes of the compiled [`Selector::Below`] paths, by bit: (items without the
/// trailing `**`, anchored at the top).
pub(crate) type BelowPrefixes = Vec<(Vec<Item>, bool)>;

/// At most this many `Below` selectors per scrubber (one bit each); the others stay paths.
const MAX_BELOW: usize = 64;

impl Selector {
    pub(crate) fn parse(text: &str) -> Result<Self, SelectorError> {
        let mut parser = Parser {
            text,
            chars: text.char_indices().collect(),
            at: 0,
        };
        let selector = parser.or()?;
        parser.skip_ws();
        if parser.at < parser.chars.len() {
            return Err(parser.error("unexpected text after the selector"));
        }
        Ok(selector)
    }

    /// Compiles the paths ending in their only `**` into [`Self::Below`] bits, adding their
    /// prefixes to `prefixes` (equal prefixes share a bit).
    pub(crate) fn compile_below(self, prefixes: &mut BelowPrefixes) -> Self {
        match self {
            Self::Path(items)
                if items.last() == Some(&Item::Deep)
                    && items.iter().filter(|i| **i == Item::Deep).count() == 1 =>
            {
                let anchored = matches!(
                    items.first(),
                    Some(Item::Key(_) | Item::KeyIn(_) | Item::Any)
                );
                let prefix = items[..items.len() - 1].to_vec();
                let entry = (prefix, anchored);
                if let Some(at) = prefixes.iter().position(|p| *p == entry) {
                    return Self::Below(at as u32);
                }
                if prefixes.len() >= MAX_BELOW {
                    return Self::Path(items);
                }
                prefixes.push(entry);
                Self::Below((prefixes.len() - 1) as u32)
            }
            Self::Not(inner) => Self::Not(Box::new(inner.compile_below(prefixes))),
            Self::And(all) => {
                Self::And(all.into_iter().map(|s| s.compile_below(prefixes)).collect())
            }
            Self::Or(any) => Self::Or(any.into_iter().map(|s| s.compile_below(prefixes)).collect()),
            other => other,
        }
    }

    /// Whether the value at `path` (of type `ty`) is selected.
    pub(crate) fn matches(&self, path: &Path<'_>, ty: ValueType) -> bool {
        match self {
            Self::Path(items) => path_matches(items, path, ty),
            Self::Below(bit) => path.below >> bit & 1 == 1,
            Self::Not(inner) => !inner.matches(path, ty),
            Self::And(all) => all.iter().all(|s| s.matches(path, ty)),
            Self::Or(any) => any.iter().any(|s| s.matches(path, ty)),
        }
    }
}

fn path_matches(items: &[Item], path: &Path<'_>, ty: ValueType) -> bool {
    let anchored = matches!(
        items.first(),
        Some(Item::Key(_) | Item::KeyIn(_) | Item::Any)
    );
    // each item but `**` stands for one level: an anchored path without `**` selects values
    // at exactly its length below the event
    if anchored && path.depth as usize != items.len() && !items.contains(&Item::Deep) {
        return false;
    }
    match_rev(items, Some(path), ty, true, anchored)
}

/// The bits of the `Below` selectors that select the children of the value at `path`: those
/// of its ancestors, and those whose prefix selects this value itself (as the trailing `**`
/// of the path would find it, looking up from a child).
pub(crate) fn below_bits(prefixes: &BelowPrefixes, path: &Path<'_>) -> u64 {
    let mut bits = path.below;
    for (bit, (prefix, anchored)) in prefixes.iter().enumerate() {
        if bits >> bit & 1 == 0 && match_rev(prefix, Some(path), ValueType::Null, false, *anchored)
        {
            bits |= 1 << bit;
        }
    }
    bits
}

/// Matches `items` from their end against `path` from the current value upwards.
fn match_rev(
    items: &[Item],
    path: Option<&Path<'_>>,
    ty: ValueType,
    current: bool,
    anchored: bool,
) -> bool {
    let Some((last, rest)) = items.split_last() else {
        // every item matched: an anchored path must have reached the top of the event
        return !anchored || path.is_none_or(|p| p.parent.is_none());
    };
    if *last == Item::Deep {
        // zero or more levels; one or more at the end (`extra.**` is what is in `extra`)
        let mut at = if current {
            match path {
                Some(p) if p.parent.is_some() => p.parent,
                _ => return false,
            }
        } else {
            path
        };
        loop {
            if match_rev(rest, at, ty, false, anchored) {
                return true;
            }
            match at {
                Some(p) if p.parent.is_some() => at = p.parent,
                _ => return false,
            }
        }
    }
    let Some(node) = path else {
        return false;
    };
    let ok = match last {
        Item::Key(key) => node.key().is_some_and(|k| k.eq_ignore_ascii_case(key)),
        Item::KeyIn(keys) => node
            .key()
            .is_some_and(|k| keys.iter().any(|key| k.eq_ignore_ascii_case(key))),
        Item::Kind(kind) => node.kind == *kind,
        // a value type describes the selected value itself
        Item::Type(want) => current && ty == *want,
        Item::Any => node.parent.is_some(),
        Item::Deep => false,
    };
    ok && match_rev(rest, node.parent, ty, false, anchored)
}

struct Parser<'t> {
    text: &'t str,
    chars: Vec<(usize, char)>,
    at: usize,
}

impl Parser<'_> {
    fn error(&self, reason: &str) -> SelectorError {
        SelectorError {
            selector: self.text.to_owned(),
            reason: reason.to_owned(),
        }
    }

    fn peek(&self) -> Option<char> {
        self.chars.get(self.at).map(|(_, c)| *c)
    }

    fn skip_ws(&mut self) {
        while self.peek().is_some_and(char::is_whitespace) {
            self.at += 1;
        }
    }

    fn eat(&mut self, token: &str) -> bool {
        self.skip_ws();
        let mut at = self.at;
        for want in token.chars() {
            match self.chars.get(at) {
                Some((_, c)) if *c == want => at += 1,
                _ => return false,
            }
        }
        self.at = at;
        true
    }

    fn or(&mut self) -> Result<Selector, SelectorError> {
        let mut all = vec![self.and()?];
        while self.eat("||") {
            all.push(self.and()?);
        }
        Ok(if all.len() == 1 {
            all.remove(0)
        } else {
            Selector::Or(all)
        })
    }

    fn and(&mut self) -> Result<Selector, SelectorError> {
        let mut all = vec![self.not()?];
        while self.eat("&&") {
            all.push(self.not()?);
        }
        Ok(if all.len() == 1 {
            all.remove(0)
        } else {
            Selector::And(all)
        })
    }

    fn not(&mut self) -> Result<Selector, SelectorError> {
        if self.eat("!") {
            return Ok(Selector::Not(Box::new(self.not()?)));
        }
        if self.eat("(") {
            let inner = self.or()?;
            if !self.eat(")") {
                return Err(self.error("missing `)`"));
            }
            return Ok(inner);
        }
        self.path()
    }

    fn path(&mut self) -> Result<Selector, SelectorError> {
        self.skip_ws();
        let mut items = self.item()?;
        while self.peek() == Some('.') {
            self.at += 1;
            items.extend(self.item()?);
        }
        Ok(Selector::Path(items))
    }

    fn item(&mut self) -> Result<Vec<Item>, SelectorError> {
        match self.peek() {
            Some('\'') => {
                self.at += 1;
                let mut key = String::new();
                loop {
                    match self.peek() {
                        None => return Err(self.error("unterminated quoted key")),
                        Some('\'') if self.chars.get(self.at + 1).map(|c| c.1) == Some('\'') => {
                            key.push('\'');
                            self.at += 2;
                        }
                        Some('\'') => {
                            self.at += 1;
                            return Ok(vec![Item::Key(key)]);
                        }
                        Some(c) => {
                            key.push(c);
                            self.at += 1;
                        }
                    }
                }
            }
            Some('*') => {
                self.at += 1;
                if self.peek() == Some('*') {
                    self.at += 1;
                    return Ok(vec![Item::Deep]);
                }
                Ok(vec![Item::Any])
            }
            Some('$') => {
                self.at += 1;
                let word = self.word();
                type_item(&word).ok_or_else(|| self.error(&format!("unknown type `${word}`")))
            }
            _ => {
                let word = self.word();
                if word.is_empty() {
                    return Err(self.error("expected a key, `*`, `**` or a `$type`"));
                }
                Ok(vec![Item::Key(word)])
            }
        }
    }

    fn word(&mut self) -> String {
        let mut word = String::new();
        while let Some(c) = self.peek() {
            if c.is_whitespace() || matches!(c, '.' | '(' | ')' | '!' | '&' | '|' | '\'' | '*') {
                break;
            }
            word.push(c);
            self.at += 1;
        }
        word
    }
}

fn type_item(name: &str) -> Option<Vec<Item>> {
    if name.eq_ignore_ascii_case("message") {
        return Some(vec![
            Item::Kind(Kind::Logentry),
            Item::Key("formatted".into()),
        ]);
    }
    Some(vec![match name.to_ascii_lowercase().as_str() {
        "string" => Item::Type(ValueType::String),
        "number" => Item::Type(ValueType::Number),
        "boolean" | "bool" => Item::Type(ValueType::Boolean),
        "array" => Item::Type(ValueType::Array),
        "object" => Item::Type(ValueType::Object),
        "event" => Item::Kind(Kind::Event),
        "error" | "exception" => Item::Kind(Kind::Error),
        "stack" | "stacktrace" => Item::Kind(Kind::Stacktrace),
        "frame" => Item::Kind(Kind::Frame),
        "http" | "request" => Item::Kind(Kind::Http),
        "user" => Item::Kind(Kind::User),
        "logentry" => Item::Kind(Kind::Logentry),
        "thread" => Item::Kind(Kind::Thread),
        "breadcrumb" => Item::Kind(Kind::Breadcrumb),
        "sdk" => Item::Kind(Kind::Sdk),
        _ => return None,
    }])
}
