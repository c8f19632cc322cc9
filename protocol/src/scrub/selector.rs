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
//!
//! A scrubber compiles its selectors' paths into one [`Automaton`] that runs down the event
//! as it is walked, so a selector costs a few bit tests per value.

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
    /// A path compiled into the scrubber's [`Automaton`]: selected when its accepting state
    /// is among the states of the value's [`Path`].
    Accept(u16),
    /// Paths compiled into the automaton, any of which selects: one of these accepting
    /// states is among the value's.
    AnyOf(Box<States>),
    Not(Box<Selector>),
    And(Vec<Selector>),
    Or(Vec<Selector>),
}

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

    /// Compiles its paths into `automaton`, as far as its states reach; a path that does not
    /// fit stays a path, matched from the value upwards.
    pub(crate) fn compile(self, automaton: &mut Automaton) -> Self {
        match self {
            Self::Path(items) => match automaton.add(&items) {
                Some(accept) => Self::Accept(accept),
                None => Self::Path(items),
            },
            Self::Not(inner) => Self::Not(Box::new(inner.compile(automaton))),
            Self::And(all) => Self::And(all.into_iter().map(|s| s.compile(automaton)).collect()),
            Self::Or(any) => {
                // the compiled paths among them become one set of states
                let mut states = States::default();
                let mut rest = Vec::new();
                for selector in any.into_iter().map(|s| s.compile(automaton)) {
                    match selector {
                        Self::Accept(state) => states.insert(state),
                        Self::AnyOf(more) => states = states.union(&more),
                        other => rest.push(other),
                    }
                }
                if states != States::default() {
                    rest.push(Self::AnyOf(Box::new(states)));
                }
                if rest.len() == 1 {
                    rest.remove(0)
                } else {
                    Self::Or(rest)
                }
            }
            other => other,
        }
    }

    /// Whether a value with these automaton states is selected (its type is among them), when the
    /// states decide it (`None` for a path not compiled, which is matched up the value's path).
    pub(crate) fn matches_states(&self, states: &States) -> Option<bool> {
        Some(match self {
            Self::Path(_) => return None,
            Self::Accept(state) => states.contains(*state),
            Self::AnyOf(any) => states.intersects(any),
            Self::Not(inner) => !inner.matches_states(states)?,
            Self::And(all) => {
                let mut out = true;
                for s in all {
                    out &= s.matches_states(states)?;
                }
                out
            }
            Self::Or(any) => {
                let mut out = false;
                for s in any {
                    out |= s.matches_states(states)?;
                }
                out
            }
        })
    }

    /// Whether the value at `path` (of type `ty`) is selected.
    pub(crate) fn matches(&self, path: &Path<'_>, ty: ValueType) -> bool {
        match self {
            Self::Path(items) => path_matches(items, path, ty),
            Self::Accept(state) => path.states.contains(*state),
            Self::AnyOf(states) => path.states.intersects(states),
            Self::Not(inner) => !inner.matches(path, ty),
            Self::And(all) => all.iter().all(|s| s.matches(path, ty)),
            Self::Or(any) => any.iter().any(|s| s.matches(path, ty)),
        }
    }
}

fn is_anchored(items: &[Item]) -> bool {
    matches!(
        items.first(),
        Some(Item::Key(_) | Item::KeyIn(_) | Item::Any)
    )
}

fn path_matches(items: &[Item], path: &Path<'_>, ty: ValueType) -> bool {
    let anchored = is_anchored(items);
    // each item but `**` stands for one level: an anchored path without `**` selects values
    // at exactly its length below the event
    if anchored && path.depth as usize != items.len() && !items.contains(&Item::Deep) {
        return false;
    }
    match_rev(items, Some(path), ty, true, anchored)
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
        Item::Type(want) => current && ty == *want,
        other => item_matches(other, node.key(), node.kind, node.parent.is_none()),
    };
    ok && match_rev(rest, node.parent, ty, false, anchored)
}

/// Whether `item` (not `**`, not a type) matches a value with this key and kind.
fn item_matches(item: &Item, key: Option<&str>, kind: Kind, root: bool) -> bool {
    match item {
        Item::Key(want) => key.is_some_and(|k| k.eq_ignore_ascii_case(want)),
        Item::KeyIn(keys) => {
            key.is_some_and(|k| keys.iter().any(|want| k.eq_ignore_ascii_case(want)))
        }
        Item::Kind(want) => kind == *want,
        Item::Any => !root,
        Item::Type(_) | Item::Deep => false,
    }
}

/// Room for this many states: the default scrubber needs about a hundred, each safe field
/// adds eight; paths beyond stay paths (slower, not wrong).
const MAX_STATES: usize = 64 * WORDS;
const WORDS: usize = 4;

/// A set of automaton states, carried by each [`Path`] of the walk.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub(crate) struct States([u64; WORDS]);

impl States {
    fn insert(&mut self, state: u16) {
        self.0[usize::from(state) / 64] |= 1 << (state % 64);
    }

    pub(crate) fn contains(&self, state: u16) -> bool {
        self.0[usize::from(state) / 64] >> (state % 64) & 1 == 1
    }

    fn intersects(&self, other: &Self) -> bool {
        self.0.iter().zip(&other.0).any(|(a, b)| a & b != 0)
    }

    fn union(mut self, other: &Self) -> Self {
        for (a, b) in self.0.iter_mut().zip(other.0) {
            *a |= b;
        }
        self
    }

    fn and(mut self, other: &Self) -> Self {
        for (a, b) in self.0.iter_mut().zip(other.0) {
            *a &= b;
        }
        self
    }

    /// Each state `s` becomes `s + 1`.
    fn next(self) -> Self {
        let mut out = [0u64; WORDS];
        let mut carry = 0;
        for (o, word) in out.iter_mut().zip(self.0) {
            *o = word << 1 | carry;
            carry = word >> 63;
        }
        Self(out)
    }

    fn is_empty(&self) -> bool {
        self.0 == [0; WORDS]
    }

    /// A slot among `slots` (a power of two) for these states, spread by a multiplicative hash.
    pub(crate) fn hash_slot(&self, slots: usize) -> usize {
        let mixed = self.0[0]
            ^ self.0[1].rotate_left(16)
            ^ self.0[2].rotate_left(32)
            ^ self.0[3].rotate_left(48);
        (mixed.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 32) as usize & (slots - 1)
    }

    /// The states in increasing order.
    fn iter(&self) -> impl Iterator<Item = u16> + '_ {
        self.0.iter().enumerate().flat_map(|(word, bits)| {
            let mut bits = *bits;
            std::iter::from_fn(move || {
                (bits != 0).then(|| {
                    let bit = bits.trailing_zeros();
                    bits &= bits - 1;
                    (word * 64) as u16 + bit as u16
                })
            })
        })
    }
}

/// The paths of a scrubber's selectors as one nondeterministic automaton over the steps from
/// the event down to a value, run forward while the scrubber walks the event: each value's
/// states follow from its parent's and its own key and kind, so whether a path selects a value
/// is one bit, whatever its depth.
///
/// A path of `n` items has states `0..=n`: state `k` waits for item `k`, state `n` accepts. A
/// `**` waits in its state while it takes levels and may pass to the next state without
/// taking any; a trailing `**` takes at least one level (it is compiled as `*` then `**`).
/// Paths that start with a key or `*` are anchored: they start below the event; the others
/// start at every value.
#[derive(Debug, Clone, Default)]
pub(crate) struct Automaton {
    /// The item each state waits for; `None` for an accepting state.
    items: Vec<Option<Item>>,
    /// The start states of anchored paths, with the `**` that follow them passed.
    anchored: States,
    /// Of the paths that start anywhere: for each [`Kind`], the states after a value of that
    /// kind when their first item is that kind (most are: `$frame.filename`, ...).
    kind_starts: Vec<States>,
    /// The start states of the other paths that start anywhere (a key after `**`, a type).
    anywhere: States,
    /// The paths added, with their accepting states (a path used by several selectors is
    /// compiled once).
    added: Vec<(Vec<Item>, u16)>,
    /// The states by what they wait for, so a step is a few operations on bit sets whatever
    /// the number of states: `**`, ...
    deep: States,
    /// ... `*`, ...
    any: States,
    /// ... a kind, by [`Kind`], ...
    kinds: Vec<States>,
    /// ... a type at the end of a path, by [`ValueType`], ...
    types: [States; 6],
    /// ... and keys: by length, each key in ASCII lower case with its states (a handful of
    /// keys have any one length, so comparing them beats hashing the key).
    keys: Vec<Vec<(Box<[u8]>, States)>>,
}

/// Keys up to this long are put in lower case on the stack to be looked up.
const MAX_KEY: usize = 128;

impl Automaton {
    /// Adds a path; its accepting state, or `None` when the automaton is full.
    fn add(&mut self, items: &[Item]) -> Option<u16> {
        if let Some((_, accept)) = self.added.iter().find(|(known, _)| known == items) {
            return Some(*accept);
        }
        let mut compiled = items.to_vec();
        if compiled.last() == Some(&Item::Deep) {
            compiled.insert(compiled.len() - 1, Item::Any);
        }
        let first = self.items.len();
        if first + compiled.len() + 1 > MAX_STATES {
            return None;
        }
        let n = compiled.len();
        if self.kinds.is_empty() {
            self.kinds = vec![States::default(); Kind::COUNT];
        }
        for (i, item) in compiled.into_iter().enumerate() {
            let state = self.items.len() as u16;
            match &item {
                Item::Deep => self.deep.insert(state),
                Item::Any => self.any.insert(state),
                Item::Kind(kind) => self.kinds[*kind as usize].insert(state),
                // a type only matches at the end of its path
                Item::Type(ty) if i + 1 == n => self.types[*ty as usize].insert(state),
                Item::Type(_) => {}
                Item::Key(key) => self.add_key(key, state),
                Item::KeyIn(keys) => {
                    for key in *keys {
                        self.add_key(key, state);
                    }
                }
            }
            self.items.push(Some(item));
        }
        self.items.push(None);
        let start = first as u16;
        let mut starts = States::default();
        starts.insert(start);
        let starts = self.passed_deep(starts);
        if is_anchored(items) {
            self.anchored = self.anchored.union(&starts);
        } else {
            if self.kind_starts.is_empty() {
                self.kind_starts = vec![States::default(); Kind::COUNT];
            }
            for state in starts.iter() {
                match &self.items[usize::from(state)] {
                    Some(Item::Kind(kind)) => {
                        let mut after = States::default();
                        after.insert(state + 1);
                        let after = self.passed_deep(after);
                        let slot = &mut self.kind_starts[*kind as usize];
                        *slot = slot.union(&after);
                    }
                    _ => self.anywhere.insert(state),
                }
            }
        }
        let accept = (first + n) as u16;
        self.added.push((items.to_vec(), accept));
        Some(accept)
    }

    /// The keys some state waits for, in lower case: with any other key (or none), a value
    /// takes the same states as with no key.
    pub(crate) fn keys(&self) -> impl Iterator<Item = &str> {
        self.keys
            .iter()
            .flatten()
            .filter_map(|(key, _)| std::str::from_utf8(key).ok())
    }

    /// Records that `state` waits for `key` (keys compare by their ASCII lower case).
    fn add_key(&mut self, key: &str, state: u16) {
        let lower: Box<[u8]> = key.as_bytes().to_ascii_lowercase().into();
        if self.keys.len() <= lower.len() {
            self.keys.resize_with(lower.len() + 1, Vec::new);
        }
        let same_length = &mut self.keys[lower.len()];
        match same_length.iter_mut().find(|(known, _)| *known == lower) {
            Some((_, states)) => states.insert(state),
            None => {
                let mut states = States::default();
                states.insert(state);
                same_length.push((lower, states));
            }
        }
    }

    /// The states waiting for this key.
    fn waiting_for(&self, key: &str) -> States {
        let bytes = key.as_bytes();
        let same_length = match self.keys.get(bytes.len()) {
            Some(keys) if !keys.is_empty() => keys,
            _ => return States::default(),
        };
        let mut buffer = [0u8; MAX_KEY];
        let lower: std::borrow::Cow<'_, [u8]> = if bytes.len() <= MAX_KEY {
            let lower = &mut buffer[..bytes.len()];
            for (l, b) in lower.iter_mut().zip(bytes) {
                *l = b.to_ascii_lowercase();
            }
            std::borrow::Cow::Borrowed(lower)
        } else {
            std::borrow::Cow::Owned(bytes.to_ascii_lowercase())
        };
        same_length
            .iter()
            .find(|(known, _)| **known == *lower)
            .map(|(_, states)| *states)
            .unwrap_or_default()
    }

    /// Adds the states a `**` passes to without taking a level.
    fn passed_deep(&self, mut states: States) -> States {
        loop {
            let passed = states.and(&self.deep).next();
            let more = states.union(&passed);
            if more == states {
                return states;
            }
            states = more;
        }
    }

    /// The states of the event itself.
    pub(crate) fn root(&self) -> States {
        let states = self.step(
            &States::default(),
            None,
            Kind::Event,
            true,
            ValueType::Object,
        );
        // anchored paths start with the event's members
        states.union(&self.anchored)
    }

    /// The states of a value with this key (or none) and kind, below a value with `parent`.
    pub(crate) fn step(
        &self,
        parent: &States,
        key: Option<&str>,
        kind: Kind,
        root: bool,
        ty: ValueType,
    ) -> States {
        let from = parent.union(&self.anywhere);
        let kind_starts = self.kind_starts.get(kind as usize).copied();
        if from.is_empty() && kind_starts.is_none_or(|s| s.is_empty()) {
            return States::default();
        }
        // the states whose item this value matches
        let mut matching = self.types[ty as usize];
        if let Some(kinds) = self.kinds.get(kind as usize) {
            matching = matching.union(kinds);
        }
        if !root {
            matching = matching.union(&self.any);
        }
        if let Some(key) = key {
            matching = matching.union(&self.waiting_for(key));
        }
        // a `**` takes this level and waits on
        let out = from
            .and(&matching)
            .next()
            .union(&from.and(&self.deep))
            .union(&kind_starts.unwrap_or_default());
        self.passed_deep(out)
    }
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
