//! PII scrubbing of normalized events, as Sentry's Relay does it, before an event is stored.
//!
//! A project's [`ScrubSettings`] (Sentry's "Security & Privacy" settings: data scrubber on/off,
//! default scrubbers, additional sensitive fields, safe fields, IP address scrubbing, and
//! advanced rules in Relay's JSON format) compile into a [`Scrubber`]: a list of
//! *applications*, each a [`selector`] and the [`rules`] applied to the values it selects.
//!
//! The defaults, as Relay's conversion of the legacy settings:
//! - everywhere except non-personal fields (debug images, modules, SDK info, file names and
//!   functions of frames, exception types, the `User-Agent` header) and safe fields:
//!   `@common:filter`, i.e. credit cards (Luhn-checked), IBANs, PEM private keys, passwords in
//!   URLs, user names in home directory paths, US social security numbers, bearer tokens, and
//!   the whole value of any member whose key looks like a secret (`password`, `secret`,
//!   `token`, `auth`, `api_key`, `session`, `csrf`, ...) become `[Filtered]`;
//! - the values of session and CSRF cookies (in `request.cookies` and a `Cookie` header);
//! - in the log message and exception values, which must stay readable, only the matched text
//!   is replaced (`[email]`, `[creditcard]`, `[iban]`, `***-**-****`, `Bearer [token]`);
//! - query strings (also in URLs) and cookie strings are scrubbed per `name=value` piece.
//!
//! What was changed is recorded in the event's `_meta`, in Relay's shape: at the path of the
//! value, `{"": {"rem": [[rule, type, start, end]], "len": original_length}}` where the type is
//! `s` (substituted), `m` (masked), `p` (hashed) or `x` (removed).

mod meta;
mod path;
pub mod rules;
mod selector;

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, RwLock};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

pub use self::meta::Meta;
use self::path::{Kind, Path, Step, ValueType};
use self::rules::{Matcher, Redaction, Rule};
pub use self::selector::SelectorError;
use self::selector::{Automaton, Item, Selector, States};

/// A project's scrubbing settings, named as Sentry names them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ScrubSettings {
    /// Sentry's "Data Scrubber": off, nothing but the advanced rules applies.
    pub scrub_data: bool,
    /// Sentry's "Use Default Scrubbers".
    pub scrub_defaults: bool,
    /// Remove user IP addresses and replace IP addresses in text by `[ip]`.
    pub scrub_ip_addresses: bool,
    /// Extra key names whose values are removed.
    pub sensitive_fields: Vec<String>,
    /// Key names (or selectors) the data scrubber leaves alone.
    pub safe_fields: Vec<String>,
    /// Advanced rules, Relay's PII config as JSON (`{"rules": {..}, "applications": {..}}`).
    pub pii_config: Option<String>,
}

impl Default for ScrubSettings {
    fn default() -> Self {
        Self {
            scrub_data: true,
            scrub_defaults: true,
            scrub_ip_addresses: false,
            sensitive_fields: Vec::new(),
            safe_fields: Vec::new(),
            pii_config: None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("the advanced PII config is not valid JSON: {0}")]
    Json(#[source] serde_json::Error),
    #[error("the advanced PII config {0}")]
    Shape(&'static str),
    #[error("{0}")]
    Selector(#[from] SelectorError),
    #[error("PII rule {rule:?}: {reason}")]
    Rule { rule: String, reason: String },
}

#[derive(Debug, Clone)]
struct Application {
    selector: Selector,
    rules: Vec<Rule>,
}

/// Compiled scrubbing settings of a project.
#[derive(Debug, Clone, Default)]
pub struct Scrubber {
    applications: Vec<Application>,
    /// For each application, where its rules of each sort are (kept in order).
    sorts: Vec<RuleSorts>,
    /// The applications (of the first 64) whose selectors the automaton states decide alone:
    /// for these, which select a value is worked out once per states in an event ([`Memo`]).
    decided: u64,
    /// The paths of the selectors, compiled.
    automaton: Automaton,
    /// What is known of the automaton states met so far, for every event: which decided
    /// applications select a value with them, and whether no rule applies anywhere below a
    /// value of kind `Other` with them (the `modules` of an event, its `sdk`, ...: such a
    /// value is not walked into). Each event's [`Memo`] asks here once per states.
    known: Arc<RwLock<HashMap<States, Known, BuildStatesHasher>>>,
    /// Off in tests that compare with a walk of every value.
    #[cfg(test)]
    walk_everything: bool,
}

/// What [`Scrubber::known`] keeps of one set of states.
#[derive(Debug, Clone, Copy, Default)]
struct Known {
    selecting: Option<u64>,
    untouched: Option<bool>,
}

/// Hashes [`States`] (four words) with a multiply and rotate per word: a lookup on each
/// event's first meeting of some states, where SipHash would cost more than the answer.
#[derive(Debug, Clone, Copy, Default)]
struct StatesHasher(u64);

impl std::hash::Hasher for StatesHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for chunk in bytes.chunks(8) {
            let mut word = [0u8; 8];
            word[..chunk.len()].copy_from_slice(chunk);
            self.write_u64(u64::from_le_bytes(word));
        }
    }

    fn write_u64(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(23) ^ word).wrapping_mul(0x9e37_79b9_7f4a_7c15);
    }
}

type BuildStatesHasher = std::hash::BuildHasherDefault<StatesHasher>;

/// The rules of one application by what they look at.
#[derive(Debug, Clone, Default)]
struct RuleSorts {
    /// Rules that take a whole value (`anything`, a key pattern).
    whole: Vec<usize>,
    /// Rules that look for text in strings.
    patterns: Vec<usize>,
    /// The prefilters of those rules, as [`rules::Prefilter::bit`]s: a string that passes none
    /// of them is left as it is...
    needs: u16,
    /// ... unless one of them has no prefilter.
    unfiltered: bool,
}

/// What an event's walk learned about the automaton states it met: the applications that
/// select a value with those states and whether nothing below it can be selected. An event
/// meets far fewer distinct sets of states than it has values.
struct Memo {
    slots: Vec<Slot>,
}

#[derive(Clone, Copy, Default)]
struct Slot {
    states: States,
    /// Whether the slot holds `states` (else it is empty).
    used: bool,
    /// Whether [`Scrubber::known`] was asked about them.
    asked: bool,
    /// The decided applications that select the value.
    selecting: Option<u64>,
    /// [`Scrubber::untouched_below`].
    untouched: Option<bool>,
}

/// Slots of a [`Memo`] (a power of two); states whose slots collide are worked out again.
const MEMO_SLOTS: usize = 128;

impl Memo {
    fn new() -> Self {
        Self {
            slots: vec![Slot::default(); MEMO_SLOTS],
        }
    }

    fn slot(&mut self, states: &States) -> &mut Slot {
        let slot = &mut self.slots[states.hash_slot(MEMO_SLOTS)];
        if !slot.used || slot.states != *states {
            *slot = Slot {
                states: *states,
                used: true,
                ..Slot::default()
            };
        }
        slot
    }
}

/// Sets of states [`Scrubber::known`] keeps, at most.
const MAX_KNOWN: usize = 4096;
/// Sets of states [`Scrubber::untouched_below`] looks at before it gives up (and walks).
const MAX_EXPLORED: usize = 256;

/// Values no default rule touches: not personal data, or needed as sent.
const NOT_PERSONAL: &str = "debug_meta.** || modules.** || sdk.** || errors.** || \
    event_id || timestamp || start_timestamp || received || level || platform || type || \
    release || dist || environment || fingerprint.** || contexts.trace.** || \
    $frame.filename || $frame.abs_path || $frame.module || $frame.function || \
    $frame.package || $frame.platform || $frame.in_app || $error.type || $error.module || \
    $error.mechanism.** || $http.headers.user-agent";

/// Text that stays readable: only the matched part is replaced.
const REPLACE_ONLY: &str = "$logentry.formatted || $error.value";

fn parse(text: &str) -> Result<Selector, ConfigError> {
    Ok(Selector::parse(text)?)
}

fn builtin(reference: &str) -> Vec<Rule> {
    rules::resolve_builtin(reference).unwrap_or_default()
}

impl Scrubber {
    pub fn new(settings: &ScrubSettings) -> Result<Self, ConfigError> {
        let mut applications = Vec::new();
        if let Some(text) = settings
            .pii_config
            .as_deref()
            .filter(|t| !t.trim().is_empty())
        {
            applications.extend(advanced(text)?);
        }
        if !settings.scrub_data {
            return Ok(Self::compiled(applications));
        }
        let mut excluded = vec![parse(NOT_PERSONAL)?];
        for field in settings.safe_fields.iter().map(|f| f.trim()) {
            if field.is_empty() {
                continue;
            }
            let selector = if field.contains(['.', '$', '*', '(', '!', '&', '|', '\'']) {
                parse(field)?
            } else {
                // a bare name: that key anywhere, and all below it
                Selector::Or(vec![
                    Selector::Path(vec![Item::Deep, Item::Key(field.to_owned())]),
                    Selector::Path(vec![Item::Deep, Item::Key(field.to_owned()), Item::Deep]),
                ])
            };
            excluded.push(selector);
        }
        let personal = Selector::Not(Box::new(Selector::Or(excluded)));
        let replace_only = parse(REPLACE_ONLY)?;
        let scrubbed = Selector::And(vec![
            personal.clone(),
            Selector::Not(Box::new(replace_only.clone())),
        ]);
        if settings.scrub_defaults {
            applications.push(Application {
                selector: scrubbed.clone(),
                rules: builtin("@common:filter"),
            });
            let cookies = Selector::Or(vec![
                Selector::Path(vec![
                    Item::Kind(path::Kind::Http),
                    Item::Key("cookies".into()),
                    Item::KeyIn(rules::SENSITIVE_COOKIES),
                ]),
                Selector::Path(vec![
                    Item::Kind(path::Kind::Http),
                    Item::Key("headers".into()),
                    Item::Key("cookie".into()),
                    Item::KeyIn(rules::SENSITIVE_COOKIES),
                ]),
            ]);
            applications.push(Application {
                selector: Selector::And(vec![cookies, personal.clone()]),
                rules: builtin("@anything:filter"),
            });
            let mut readable = Vec::new();
            for reference in [
                "@email:replace",
                "@creditcard:replace",
                "@iban:replace",
                "@usssn:replace",
                "@bearer:replace",
                "@pemkey:replace",
                "@urlauth:replace",
            ] {
                readable.extend(builtin(reference));
            }
            applications.push(Application {
                selector: replace_only,
                rules: readable,
            });
        }
        if let Some(rule) = rules::sensitive_fields(&settings.sensitive_fields) {
            applications.push(Application {
                selector: scrubbed.clone(),
                rules: vec![rule],
            });
        }
        if settings.scrub_ip_addresses {
            applications.push(Application {
                selector: parse("$user.ip_address || $http.env.REMOTE_ADDR || $sdk.client_ip")?,
                rules: builtin("@anything:remove"),
            });
            applications.push(Application {
                selector: personal,
                rules: builtin("@ip:replace"),
            });
        }
        Ok(Self::compiled(applications))
    }

    /// The applications with their paths compiled into one automaton, so a value's
    /// selectors cost a few bit tests instead of walks up its path.
    fn compiled(applications: Vec<Application>) -> Self {
        let mut automaton = Automaton::default();
        let applications: Vec<Application> = applications
            .into_iter()
            .map(|app| Application {
                selector: app.selector.compile(&mut automaton),
                rules: app.rules,
            })
            .collect();
        let sorts = applications
            .iter()
            .map(|app| {
                let mut sorts = RuleSorts::default();
                for (i, rule) in app.rules.iter().enumerate() {
                    match rule.matcher {
                        Matcher::Pattern { prefilter, .. } => {
                            sorts.patterns.push(i);
                            match prefilter {
                                Some(prefilter) => sorts.needs |= prefilter.bit(),
                                None => sorts.unfiltered = true,
                            }
                        }
                        Matcher::Anything | Matcher::Pair { .. } => sorts.whole.push(i),
                    }
                }
                sorts
            })
            .collect();
        let decided = applications
            .iter()
            .take(64)
            .enumerate()
            .filter(|(_, app)| app.selector.matches_states(&States::default()).is_some())
            .fold(0u64, |all, (i, _)| all | 1 << i);
        Self {
            applications,
            sorts,
            decided,
            automaton,
            known: Arc::default(),
            #[cfg(test)]
            walk_everything: false,
        }
    }

    /// Whether no rule applies to any value below a value of kind `Other` with these states:
    /// every set of states its members, elements and pieces can take, at any depth, is
    /// explored (with each key some path names, and any other key) and no application selects
    /// any of them. Kept per states, so each is worked out once.
    fn untouched_below(&self, states: &States, memo: &mut Memo) -> bool {
        #[cfg(test)]
        if self.walk_everything {
            return false;
        }
        let slot = self.slot(memo, states);
        if let Some(untouched) = slot.untouched {
            return untouched;
        }
        let untouched = self.explore(*states);
        slot.untouched = Some(untouched);
        self.keep(states, |known| known.untouched = Some(untouched));
        untouched
    }

    /// The slot of `states` in an event's memo, filled from what is known of them.
    fn slot<'m>(&self, memo: &'m mut Memo, states: &States) -> &'m mut Slot {
        let slot = memo.slot(states);
        if !slot.asked {
            slot.asked = true;
            if let Ok(known) = self.known.read()
                && let Some(known) = known.get(states)
            {
                slot.selecting = known.selecting;
                slot.untouched = known.untouched;
            }
        }
        slot
    }

    /// Records something learned of `states` for the events to come.
    fn keep(&self, states: &States, learned: impl FnOnce(&mut Known)) {
        if let Ok(mut known) = self.known.write() {
            if known.len() >= MAX_KNOWN && !known.contains_key(states) {
                return;
            }
            learned(known.entry(*states).or_default());
        }
    }

    fn explore(&self, start: States) -> bool {
        const TYPES: [ValueType; 5] = [
            ValueType::String,
            ValueType::Number,
            ValueType::Boolean,
            ValueType::Array,
            ValueType::Object,
        ];
        let keys: Vec<Option<&str>> = std::iter::once(None)
            .chain(self.automaton.keys().map(Some))
            .collect();
        let mut seen = HashSet::from([start]);
        let mut queue = vec![start];
        while let Some(states) = queue.pop() {
            for key in &keys {
                for ty in TYPES {
                    let below = self.automaton.step(&states, *key, Kind::Other, false, ty);
                    let selected = self.applications.iter().any(|app| {
                        !app.rules.is_empty() && app.selector.matches_states(&below) != Some(false)
                    });
                    if selected {
                        return false;
                    }
                    // a string has pieces below it (query and cookie strings)
                    let has_below = !matches!(ty, ValueType::Number | ValueType::Boolean);
                    if has_below && seen.insert(below) {
                        if seen.len() > MAX_EXPLORED {
                            return false;
                        }
                        queue.push(below);
                    }
                }
            }
        }
        true
    }

    /// True when no rule applies to any value.
    pub fn is_empty(&self) -> bool {
        self.applications.is_empty()
    }

    /// Scrubs a normalized event in place; what was changed goes to `meta`.
    pub fn scrub(&self, root: &mut Map<String, Value>, meta: &mut Meta) {
        if self.is_empty() {
            return;
        }
        let top = Path::root(&self.automaton);
        // a JSON request body sent as a string is scrubbed as the data it holds
        if let Some(Value::Object(request)) = root.get_mut("request") {
            parse_json_body(request);
        }
        let mut removed = Vec::new();
        let mut memo = Memo::new();
        for (key, value) in root.iter_mut() {
            if key == "_meta" {
                continue;
            }
            let path = top.child(Step::Key(key), &self.automaton, ValueType::of(value));
            if self.walk(value, &path, meta, &mut memo) {
                removed.push(key.clone());
            }
        }
        for key in removed {
            root.remove(&key);
        }
    }

    /// The applications whose selectors select the value at `path`.
    fn matched<'s>(&'s self, path: &'s Path<'_>, ty: ValueType, memo: &mut Memo) -> Matched<'s> {
        let slot = self.slot(memo, &path.states);
        let selecting = match slot.selecting {
            Some(selecting) => selecting,
            None => {
                let mut selecting = 0u64;
                for (i, app) in self.applications.iter().take(64).enumerate() {
                    if self.decided >> i & 1 == 1
                        && app.selector.matches_states(&path.states) == Some(true)
                    {
                        selecting |= 1 << i;
                    }
                }
                slot.selecting = Some(selecting);
                self.keep(&path.states, |known| known.selecting = Some(selecting));
                selecting
            }
        };
        let mut first = selecting;
        let mut undecided = !self.decided;
        while undecided != 0 {
            let i = undecided.trailing_zeros() as usize;
            undecided &= undecided - 1;
            match self.applications.get(i) {
                Some(app) if app.selector.matches(path, ty) => first |= 1 << i,
                Some(_) => {}
                None => break,
            }
        }
        Matched {
            scrubber: self,
            first,
            path,
            ty,
        }
    }

    /// Scrubs one value; true when it was removed (its parent drops it).
    fn walk(&self, value: &mut Value, path: &Path<'_>, meta: &mut Meta, memo: &mut Memo) -> bool {
        let ty = ValueType::of(value);
        if ty == ValueType::Null {
            return false;
        }
        let matched = self.matched(path, ty, memo);
        if let Some(rule) = matched.whole() {
            return redact_value(value, rule, path, meta);
        }
        match value {
            Value::String(text) => {
                let mut remarks = Vec::new();
                if let Some(sep) = pieces_separator(path, text) {
                    self.scrub_pieces(text, sep, path, &mut remarks, memo);
                }
                let (needs, unfiltered) = matched.pattern_needs();
                if unfiltered || needs != 0 {
                    let traits = rules::Traits::of(text);
                    if unfiltered || traits.holding() & needs != 0 {
                        apply_patterns(text, matched.patterns(), &mut remarks, traits);
                    }
                }
                if !remarks.is_empty() {
                    meta.add_text(path, text, remarks);
                }
            }
            Value::Array(_) | Value::Object(_)
                if path.kind == Kind::Other && self.untouched_below(&path.states, memo) => {}
            Value::Array(items) => {
                let pairs = !items.is_empty()
                    && items.iter().all(
                        |item| matches!(item, Value::Array(p) if p.len() == 2 && p[0].is_string()),
                    );
                let mut removed_pairs = false;
                // the states of the last element stepped to, by its type
                let mut known: Option<(ValueType, States)> = None;
                for (i, item) in items.iter_mut().enumerate() {
                    if pairs && let Value::Array(pair) = item {
                        let (name, rest) = pair.split_at_mut(1);
                        if let (Value::String(name), Some(value)) = (&name[0], rest.first_mut()) {
                            let ty = ValueType::of(value);
                            let child = path.child(Step::Pair(i, name), &self.automaton, ty);
                            removed_pairs |= self.walk(value, &child, meta, memo);
                        }
                        continue;
                    }
                    // an element removed stays as `null`, so the indices in `_meta` hold
                    let ty = ValueType::of(item);
                    let child = match known {
                        Some((known_ty, states)) if known_ty == ty => path.element(i, states),
                        _ => {
                            let child = path.child(Step::Index(i), &self.automaton, ty);
                            known = Some((ty, child.states));
                            child
                        }
                    };
                    self.walk(item, &child, meta, memo);
                }
                if removed_pairs {
                    // a pair without value is no pair: the list drops it (after the walk,
                    // so the indices in `_meta` are those sent)
                    items.retain(|pair| pair.get(1).is_some_and(|v| !v.is_null()));
                }
            }
            Value::Object(map) => {
                let mut removed = Vec::new();
                for (key, value) in map.iter_mut() {
                    let child = path.child(Step::Key(key), &self.automaton, ValueType::of(value));
                    if self.walk(value, &child, meta, memo) {
                        removed.push(key.clone());
                    }
                }
                for key in removed {
                    map.remove(&key);
                }
            }
            Value::Null | Value::Bool(_) | Value::Number(_) => {}
        }
        false
    }

    /// Scrubs the `name=value` pieces of a query or cookie string by their names.
    fn scrub_pieces(
        &self,
        text: &mut String,
        sep: &str,
        path: &Path<'_>,
        remarks: &mut Vec<Remark>,
        memo: &mut Memo,
    ) {
        let (head, query) = if sep == "&" {
            match text.find('?') {
                Some(at) if !is_query_key(path) => (&text[..=at], &text[at + 1..]),
                _ => ("", text.as_str()),
            }
        } else {
            ("", text.as_str())
        };
        let (query, fragment) = match query.find('#') {
            Some(at) if sep == "&" => (&query[..at], &query[at..]),
            _ => (query, ""),
        };
        let mut out = String::with_capacity(text.len());
        out.push_str(head);
        let mut changed = false;
        for (i, piece) in query.split(sep).enumerate() {
            if i > 0 {
                out.push_str(sep);
            }
            let Some((name, value)) = piece.split_once('=') else {
                out.push_str(piece);
                continue;
            };
            let key = name.trim();
            let piece_path = path.child(Step::Piece(key), &self.automaton, ValueType::String);
            out.push_str(name);
            out.push('=');
            let whole = self.matched(&piece_path, ValueType::String, memo).whole();
            match whole {
                Some(rule) if !value.is_empty() => {
                    let start = out.len();
                    let (leading, trimmed) = split_leading_space(value);
                    out.push_str(leading);
                    let start = start + leading.len();
                    out.push_str(&rule.redaction.apply(trimmed));
                    remarks.push(Remark {
                        rule: rule.id.clone(),
                        ty: rule.redaction.remark(),
                        start,
                        end: out.len(),
                    });
                    changed = true;
                }
                _ => out.push_str(value),
            }
        }
        if changed {
            out.push_str(fragment);
            *text = out;
        }
    }
}

/// The applications that select a value: the first 64 worked out once, any others when asked.
struct Matched<'s> {
    scrubber: &'s Scrubber,
    first: u64,
    path: &'s Path<'s>,
    ty: ValueType,
}

impl<'s> Matched<'s> {
    /// The selecting applications, in order, with where their rules of each sort are: the
    /// first 64 by their bits, any others asked one by one.
    fn selecting(&self) -> impl Iterator<Item = (&'s Application, &'s RuleSorts)> + '_ {
        let scrubber = self.scrubber;
        let mut bits = self.first;
        let first = std::iter::from_fn(move || {
            (bits != 0).then(|| {
                let i = bits.trailing_zeros() as usize;
                bits &= bits - 1;
                i
            })
        });
        let rest = (64..scrubber.applications.len()).filter(|i| {
            scrubber.applications[*i]
                .selector
                .matches(self.path, self.ty)
        });
        first
            .chain(rest)
            .filter_map(move |i| Some((scrubber.applications.get(i)?, scrubber.sorts.get(i)?)))
    }

    /// The first of their rules that takes the whole value.
    fn whole(&self) -> Option<&'s Rule> {
        self.selecting()
            .flat_map(|(app, sorts)| sorts.whole.iter().map(|i| &app.rules[*i]))
            .find(|rule| whole_value(rule, self.path))
    }

    /// What the prefilters of their pattern rules need (see [`RuleSorts::needs`]).
    fn pattern_needs(&self) -> (u16, bool) {
        self.selecting()
            .fold((0, false), |(needs, unfiltered), (_, sorts)| {
                (needs | sorts.needs, unfiltered || sorts.unfiltered)
            })
    }

    /// Their rules that look for text, in order.
    fn patterns(&self) -> impl Iterator<Item = &'s Rule> + '_ {
        self.selecting()
            .flat_map(|(app, sorts)| sorts.patterns.iter().map(|i| &app.rules[*i]))
    }
}

fn split_leading_space(value: &str) -> (&str, &str) {
    let trimmed = value.trim_start();
    (&value[..value.len() - trimmed.len()], trimmed)
}

/// Whether a rule applies to the whole value at `path` (rather than to text in it).
fn whole_value(rule: &Rule, path: &Path<'_>) -> bool {
    match &rule.matcher {
        Matcher::Anything => true,
        Matcher::Pair { key } => path.key().is_some_and(|k| key.is_match(k)),
        Matcher::Pattern { .. } => false,
    }
}

/// `request.query_string`, or a `QUERY_STRING` anywhere (a WSGI or CGI environment in the
/// local variables of a frame).
fn is_query_key(path: &Path<'_>) -> bool {
    path.key()
        .is_some_and(|k| k.eq_ignore_ascii_case("query_string"))
}

/// How a string splits into `name=value` pieces, if it does: cookies by `;`, query strings
/// (and the query of URLs) by `&`.
fn pieces_separator(path: &Path<'_>, text: &str) -> Option<&'static str> {
    let parent_http = path.parent.is_some_and(|p| p.kind == path::Kind::Http);
    let key = path.key()?;
    // `request.cookies`, a `Cookie` header, an `HTTP_COOKIE` in a WSGI environment
    if ends_with_ignore_case(key, "cookie") || ends_with_ignore_case(key, "cookies") {
        return Some(";");
    }
    if is_query_key(path) || (parent_http && key == "data") {
        return text.contains('=').then_some("&");
    }
    // a URL with a query string anywhere
    let query = text.split_once('?')?.1;
    (query.contains('=') && (text.contains("://") || text.starts_with('/'))).then_some("&")
}

fn ends_with_ignore_case(text: &str, suffix: &str) -> bool {
    text.len() >= suffix.len()
        && text.as_bytes()[text.len() - suffix.len()..].eq_ignore_ascii_case(suffix.as_bytes())
}

/// A request body sent as a JSON string becomes the JSON value it holds, so its members are
/// scrubbed by name (Relay does the same).
fn parse_json_body(request: &mut Map<String, Value>) {
    let Some(Value::String(body)) = request.get("data") else {
        return;
    };
    let trimmed = body.trim_start();
    if !(trimmed.starts_with('{') || trimmed.starts_with('[')) {
        return;
    }
    // nesting is bounded by the event's own depth check, which runs after scrubbing
    if let Ok(parsed @ (Value::Object(_) | Value::Array(_))) = serde_json::from_str::<Value>(body)
        && crate::depth::value_depth(&parsed, 16).is_ok()
    {
        request.insert("data".into(), parsed);
    }
}

/// A change to a string: rule, remark type and byte range in the new text.
#[derive(Debug, Clone)]
pub(crate) struct Remark {
    pub(crate) rule: String,
    pub(crate) ty: &'static str,
    pub(crate) start: usize,
    pub(crate) end: usize,
}

/// Redacts a whole value; true when it was removed.
fn redact_value(value: &mut Value, rule: &Rule, path: &Path<'_>, meta: &mut Meta) -> bool {
    match (&mut *value, &rule.redaction) {
        (Value::String(text), Redaction::Replace(_) | Redaction::Mask | Redaction::Hash) => {
            let len = text.chars().count();
            let new = rule.redaction.apply(text);
            let remark = Remark {
                rule: rule.id.clone(),
                ty: rule.redaction.remark(),
                start: 0,
                end: new.len(),
            };
            *text = new;
            meta.add(path, text, vec![remark], Some(len));
            false
        }
        _ => {
            let len = value.as_str().map(|t| t.chars().count());
            *value = Value::Null;
            meta.add_removed(path, &rule.id, len);
            true
        }
    }
}

/// Applies the pattern rules to a string, rule after rule; the ranges of earlier remarks
/// move with the text.
fn apply_patterns<'r>(
    text: &mut String,
    matched: impl Iterator<Item = &'r Rule>,
    remarks: &mut Vec<Remark>,
    traits: rules::Traits,
) {
    let mut traits = Some(traits);
    for rule in matched {
        let Matcher::Pattern {
            regex,
            groups,
            prefilter,
            validate,
        } = &rule.matcher
        else {
            continue;
        };
        if let Some(prefilter) = prefilter {
            // worked out again after a rule changed the text
            let t = *traits.get_or_insert_with(|| rules::Traits::of(text));
            if !prefilter.holds(&t) {
                continue;
            }
        }
        let mut edits: Vec<(std::ops::Range<usize>, String)> = Vec::new();
        for caps in regex.captures_iter(text) {
            let Some(whole) = caps.get(0) else {
                continue;
            };
            if validate.is_some_and(|f| !f(whole.as_str())) {
                continue;
            }
            // text an earlier rule already put in is left alone
            if remarks
                .iter()
                .any(|r| r.start < whole.end() && whole.start() < r.end)
            {
                continue;
            }
            if groups.is_empty() {
                edits.push((whole.range(), rule.redaction.apply(whole.as_str())));
            } else {
                for group in groups {
                    if let Some(m) = caps.get(*group).filter(|m| !m.is_empty()) {
                        edits.push((m.range(), rule.redaction.apply(m.as_str())));
                    }
                }
            }
        }
        if edits.is_empty() {
            continue;
        }
        edits.sort_by_key(|(range, _)| range.start);
        let mut out = String::with_capacity(text.len());
        let mut last = 0;
        // (old end, shift) of each edit, to move earlier remarks
        let mut shifts: Vec<(usize, isize)> = Vec::with_capacity(edits.len());
        let mut shift: isize = 0;
        for (range, with) in edits {
            if range.start < last {
                continue;
            }
            out.push_str(&text[last..range.start]);
            let start = out.len();
            out.push_str(&with);
            remarks.push(Remark {
                rule: rule.id.clone(),
                ty: rule.redaction.remark(),
                start,
                end: out.len(),
            });
            shift += with.len() as isize - range.len() as isize;
            shifts.push((range.end, shift));
            last = range.end;
        }
        out.push_str(&text[last..]);
        let new_count = shifts.len();
        let old = remarks.len() - new_count;
        for remark in &mut remarks[..old] {
            let moved = shifts
                .iter()
                .take_while(|(end, _)| *end <= remark.start)
                .last()
                .map_or(0, |(_, s)| *s);
            remark.start = remark.start.saturating_add_signed(moved);
            remark.end = remark.end.saturating_add_signed(moved);
        }
        *text = out;
        traits = None;
    }
}

/// Parses advanced rules in Relay's PII config format.
fn advanced(text: &str) -> Result<Vec<Application>, ConfigError> {
    let config: Value = serde_json::from_str(text).map_err(ConfigError::Json)?;
    let Value::Object(config) = config else {
        return Err(ConfigError::Shape("must be a JSON object"));
    };
    let empty = Map::new();
    let defined = match config.get("rules") {
        None | Some(Value::Null) => &empty,
        Some(Value::Object(rules)) => rules,
        Some(_) => return Err(ConfigError::Shape("`rules` must be an object")),
    };
    let applications = match config.get("applications") {
        None | Some(Value::Null) => &empty,
        Some(Value::Object(apps)) => apps,
        Some(_) => return Err(ConfigError::Shape("`applications` must be an object")),
    };
    let mut out = Vec::new();
    for (selector, names) in applications {
        let selector = parse(selector)?;
        let Value::Array(names) = names else {
            return Err(ConfigError::Shape(
                "`applications` must map selectors to lists of rule names",
            ));
        };
        let mut rules = Vec::new();
        for name in names {
            let name = name.as_str().ok_or(ConfigError::Shape(
                "`applications` must map selectors to lists of rule names",
            ))?;
            rules.extend(rules::resolve(name, defined, 0)?);
        }
        out.push(Application { selector, rules });
    }
    Ok(out)
}

#[cfg(test)]
mod tests;
