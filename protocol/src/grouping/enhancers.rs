//! Stack trace rules in Sentry's syntax ("grouping enhancements"): which frames are in-app and
//! which count for grouping.
//!
//! A rule is a line of matchers followed by actions:
//!
//! ```text
//! family:javascript path:**/vendor/** -app
//! [ function:dispatch ] | module:myapp.handlers.* +group
//! category:throw ^-group -group
//! family:native max-frames=3
//! ```
//!
//! Matchers: `family:` (`native`, `javascript`, `other`, comma separated, or `all`), `path:`
//! (`abs_path`, else `filename`; case-insensitive), `module:`, `function:`, `package:`
//! (case-insensitive, also its last path segment), `category:`, `app:` (`yes`/`no`),
//! `error.type:`, `error.value:`, `error.mechanism:`; `stack.` in front of a frame matcher is
//! allowed; `!` in front negates. `[ matchers ] |` before the frame matchers requires the calling
//! frame to match, `| [ matchers ]` after them the called frame. Values are globs, quoted with
//! `"` when they contain spaces.
//!
//! Actions: `+app`/`-app` (in-app or not), `+group`/`-group` (counts for grouping or not), with
//! `^` in front for the frames the matching frame called (towards the crash) or `v` for the
//! frames that called it; `category=NAME`, `max-frames=N` (only the N frames nearest the crash
//! count), `min-frames=N` (fewer contributing frames: the stack trace does not count),
//! `invert-stacktrace=1` (accepted, no effect on grouping).
//!
//! Rules apply in order; a later matching rule overrides an earlier one.

use std::fmt;

use serde_json::{Map, Value};

use super::component::Component;
use super::glob::Glob;

/// A rule text that could not be parsed, with where.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}, column {column}: {message}")]
pub struct RuleError {
    pub line: usize,
    pub column: usize,
    pub message: String,
}

/// Longest rule text accepted, in bytes.
pub const MAX_RULES_BYTES: usize = 64 * 1024;

#[derive(Debug, Clone)]
enum MatchKind {
    /// The families named, as [`family_bit`]s.
    Family(u8),
    Path(Glob),
    Module(Glob),
    Function(Glob),
    Package(Glob),
    Category(Glob),
    App(bool),
    ErrorType(Glob),
    ErrorValue(Glob),
    ErrorMechanism(Glob),
}

#[derive(Debug, Clone)]
struct Matcher {
    negated: bool,
    kind: MatchKind,
    /// For path, module, function and package globs: the index of the glob in the per-field
    /// regex sets, which are run once per frame ([`Hits`]).
    id: usize,
}

/// The globs of one frame field, as one set run once per frame.
#[derive(Debug, Clone)]
struct FieldSet {
    set: regex::RegexSet,
    /// The glob id of each pattern of the set.
    ids: Vec<usize>,
}

/// Which path, module, function and package globs match each frame of a stack trace.
pub(crate) struct Hits {
    globs: usize,
    hit: Vec<bool>,
    /// Whether each glob matches any frame.
    any: Vec<bool>,
}

impl Hits {
    /// Whether a rule that needs this glob to match its frame can match any frame.
    fn possible(&self, anchor: Option<usize>) -> bool {
        anchor.is_none_or(|id| self.any.get(id).copied().unwrap_or(false))
    }

    fn get(&self, frame: usize, id: usize) -> bool {
        self.hit
            .get(frame * self.globs + id)
            .copied()
            .unwrap_or(false)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Range {
    Frame,
    /// The frames the matching frame called (towards the crash).
    Up,
    /// The frames that called the matching frame.
    Down,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Action {
    App(Range, bool),
    Group(Range, bool),
    Category(String),
    MaxFrames(usize),
    MinFrames(usize),
    InvertStacktrace,
}

#[derive(Debug, Clone)]
struct Rule {
    text: String,
    /// The families a frame this rule matches may be of (from its `family:` matchers), as
    /// [`family_bit`]s: a stack trace of none of them is skipped without looking at its frames.
    families: u8,
    /// A glob its frame must match (its first path, module, function or package matcher
    /// that is not negated): when no frame matches it, the rule is skipped.
    anchor: Option<usize>,
    /// Whether it sets `app` or `category=` ([`Enhancements::apply_modifications`]) ...
    modifies: bool,
    /// ... or `group`, `max-frames` or `min-frames` ([`Enhancements::apply_contributions`]).
    contributes: bool,
    caller: Vec<Matcher>,
    frame: Vec<Matcher>,
    callee: Vec<Matcher>,
    actions: Vec<Action>,
}

/// A parsed list of stack trace rules.
#[derive(Debug, Clone, Default)]
pub struct Enhancements {
    rules: Vec<Rule>,
    globs: usize,
    /// Path, module, function, package.
    sets: Vec<FieldSet>,
}

/// What the rules see of a frame.
#[derive(Debug, Clone, Default)]
pub(crate) struct MatchFrame {
    pub(crate) family: &'static str,
    /// `abs_path`, else `filename`, lowercased, `\` as `/`.
    pub(crate) path: Option<String>,
    pub(crate) module: Option<String>,
    pub(crate) function: Option<String>,
    /// Lowercased, `\` as `/`.
    pub(crate) package: Option<String>,
    pub(crate) in_app: Option<bool>,
    pub(crate) category: Option<String>,
}

/// What the rules see of the exception a stack trace belongs to.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct ExceptionData<'a> {
    pub(crate) ty: Option<&'a str>,
    pub(crate) value: Option<&'a str>,
    pub(crate) mechanism: Option<&'a str>,
}

impl<'a> ExceptionData<'a> {
    pub(crate) fn of(exc: &'a Map<String, Value>) -> Self {
        Self {
            ty: exc.get("type").and_then(Value::as_str),
            value: exc.get("value").and_then(Value::as_str),
            mechanism: exc
                .get("mechanism")
                .and_then(|m| m.get("type"))
                .and_then(Value::as_str),
        }
    }
}

/// Limits set by the rules for one stack trace.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct StackLimits {
    pub(crate) max_frames: Option<usize>,
    pub(crate) min_frames: Option<usize>,
}

/// A family as one bit: `native`, `javascript`, `other`; 0 for any other name.
pub(crate) fn family_bit(family: &str) -> u8 {
    match family {
        "native" => 1,
        "javascript" => 2,
        "other" => 4,
        _ => 0,
    }
}

const ALL_FAMILIES: u8 = 7;

/// The families of these frames, as [`family_bit`]s.
fn families_of(frames: &[MatchFrame]) -> u8 {
    frames
        .iter()
        .fold(0, |all, frame| all | family_bit(frame.family))
}

/// The behaviour family of a platform, as Sentry names them.
pub(crate) fn family(platform: &str) -> &'static str {
    match platform {
        "objc" | "cocoa" | "swift" | "native" | "c" => "native",
        "javascript" | "node" => "javascript",
        _ => "other",
    }
}

impl Enhancements {
    /// Parses rules, one per line; `#` starts a comment.
    pub fn parse(text: &str) -> Result<Self, RuleError> {
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
            if let Some(rule) = parse_rule(line, index + 1)? {
                rules.push(rule);
            }
        }
        Ok(Self::indexed(rules))
    }

    /// The rules with their frame globs numbered and gathered in one regex set per field.
    fn indexed(mut rules: Vec<Rule>) -> Self {
        let mut patterns: [(Vec<String>, Vec<usize>); 4] = Default::default();
        let mut globs = 0;
        for rule in &mut rules {
            for m in rule
                .caller
                .iter_mut()
                .chain(rule.frame.iter_mut())
                .chain(rule.callee.iter_mut())
            {
                let (field, glob) = match &m.kind {
                    MatchKind::Path(g) => (0, g),
                    MatchKind::Module(g) => (1, g),
                    MatchKind::Function(g) => (2, g),
                    MatchKind::Package(g) => (3, g),
                    _ => continue,
                };
                m.id = globs;
                patterns[field].0.push(glob.regex().to_owned());
                patterns[field].1.push(globs);
                globs += 1;
            }
            rule.anchor = rule
                .frame
                .iter()
                .find(|m| {
                    !m.negated
                        && matches!(
                            m.kind,
                            MatchKind::Path(_)
                                | MatchKind::Module(_)
                                | MatchKind::Function(_)
                                | MatchKind::Package(_)
                        )
                })
                .map(|m| m.id);
        }
        let sets = patterns
            .into_iter()
            .map(|(patterns, ids)| FieldSet {
                set: regex::RegexSet::new(&patterns)
                    .expect("patterns that compiled one by one compile as a set"),
                ids,
            })
            .collect();
        Self { rules, globs, sets }
    }

    /// Runs every frame glob over every frame once.
    pub(crate) fn hits(&self, frames: &[MatchFrame]) -> Hits {
        let mut hit = vec![false; self.globs * frames.len()];
        let mut any = vec![false; self.globs];
        for (i, frame) in frames.iter().enumerate() {
            let row = &mut hit[i * self.globs..(i + 1) * self.globs];
            let mut mark = |field: usize, value: &str| {
                if let Some(set) = self.sets.get(field) {
                    for m in set.set.matches(value).iter() {
                        row[set.ids[m]] = true;
                        any[set.ids[m]] = true;
                    }
                }
            };
            if let Some(path) = &frame.path {
                mark(0, path);
                if !path.starts_with('/') {
                    mark(0, &format!("/{path}"));
                }
            }
            if let Some(module) = &frame.module {
                mark(1, module);
            }
            if let Some(function) = &frame.function {
                mark(2, function);
            }
            if let Some(package) = &frame.package {
                mark(3, package);
                if let Some(base) = package
                    .rsplit('/')
                    .next()
                    .filter(|b| b.len() < package.len())
                {
                    mark(3, base);
                }
            }
        }
        Hits {
            globs: self.globs,
            hit,
            any,
        }
    }

    /// These rules followed by `other`'s (which then win where both match).
    pub fn extended_by(&self, other: &Self) -> Self {
        let mut rules = self.rules.clone();
        rules.extend(other.rules.iter().cloned());
        Self::indexed(rules)
    }

    pub fn is_empty(&self) -> bool {
        self.rules.is_empty()
    }

    pub fn len(&self) -> usize {
        self.rules.len()
    }

    /// Applies `+app`/`-app` and `category=` to the frames (oldest call first).
    pub(crate) fn apply_modifications(
        &self,
        frames: &mut [MatchFrame],
        exc: &ExceptionData<'_>,
        hits: &Hits,
    ) {
        let present = families_of(frames);
        for rule in &self.rules {
            if !rule.modifies
                || rule.families & present == 0
                || !hits.possible(rule.anchor)
                || !rule.matches_exception(exc)
            {
                continue;
            }
            for idx in 0..frames.len() {
                if !rule.matches_frame(frames, idx, hits) {
                    continue;
                }
                for action in &rule.actions {
                    match action {
                        Action::App(range, flag) => {
                            for frame in range_of(frames, idx, *range) {
                                frame.in_app = Some(*flag);
                            }
                        }
                        Action::Category(category) => {
                            frames[idx].category = Some(category.clone());
                        }
                        _ => {}
                    }
                }
            }
        }
    }

    /// Applies `+group`/`-group` to the frame components (one per frame) and returns the frame
    /// limits the rules set.
    pub(crate) fn apply_contributions(
        &self,
        frames: &[MatchFrame],
        exc: &ExceptionData<'_>,
        hits: &Hits,
        components: &mut [Component],
    ) -> StackLimits {
        let mut limits = StackLimits::default();
        let present = families_of(frames);
        for rule in &self.rules {
            if !rule.contributes
                || rule.families & present == 0
                || !hits.possible(rule.anchor)
                || !rule.matches_exception(exc)
            {
                continue;
            }
            let mut matched_any = false;
            for idx in 0..frames.len() {
                if !rule.matches_frame(frames, idx, hits) {
                    continue;
                }
                matched_any = true;
                for action in &rule.actions {
                    if let Action::Group(range, flag) = action {
                        let hint = format!(
                            "{} by stack trace rule ({})",
                            if *flag { "un-ignored" } else { "ignored" },
                            rule.text
                        );
                        for component in range_of(components, idx, *range) {
                            if component.contributes != *flag {
                                component.set(*flag, hint.clone());
                            }
                        }
                    }
                }
            }
            if matched_any {
                for action in &rule.actions {
                    match action {
                        Action::MaxFrames(n) => limits.max_frames = Some(*n),
                        Action::MinFrames(n) => limits.min_frames = Some(*n),
                        _ => {}
                    }
                }
            }
        }
        limits
    }
}

fn range_of<T>(items: &mut [T], idx: usize, range: Range) -> &mut [T] {
    match range {
        Range::Frame => &mut items[idx..=idx],
        Range::Up => &mut items[idx + 1..],
        Range::Down => &mut items[..idx],
    }
}

impl Rule {
    fn matches_exception(&self, exc: &ExceptionData<'_>) -> bool {
        self.frame.iter().all(|m| {
            let hit = match &m.kind {
                MatchKind::ErrorType(g) => exc.ty.is_some_and(|v| g.is_match(v)),
                MatchKind::ErrorValue(g) => exc.value.is_some_and(|v| g.is_match(v)),
                MatchKind::ErrorMechanism(g) => exc.mechanism.is_some_and(|v| g.is_match(v)),
                _ => return true,
            };
            hit != m.negated
        })
    }

    fn matches_frame(&self, frames: &[MatchFrame], idx: usize, hits: &Hits) -> bool {
        let all = |matchers: &[Matcher], at: usize| {
            matchers
                .iter()
                .all(|m| m.matches_frame(&frames[at], at, hits))
        };
        if !all(&self.frame, idx) {
            return false;
        }
        if !self.caller.is_empty() {
            match idx.checked_sub(1) {
                Some(caller) if all(&self.caller, caller) => {}
                _ => return false,
            }
        }
        if !self.callee.is_empty() {
            match (idx + 1 < frames.len()).then_some(idx + 1) {
                Some(callee) if all(&self.callee, callee) => {}
                _ => return false,
            }
        }
        true
    }
}

impl Matcher {
    fn matches_frame(&self, frame: &MatchFrame, at: usize, hits: &Hits) -> bool {
        let hit = match &self.kind {
            MatchKind::Family(families) => families & family_bit(frame.family) != 0,
            MatchKind::Path(_)
            | MatchKind::Module(_)
            | MatchKind::Function(_)
            | MatchKind::Package(_) => hits.get(at, self.id),
            MatchKind::Category(g) => frame.category.as_deref().is_some_and(|c| g.is_match(c)),
            MatchKind::App(flag) => frame.in_app.unwrap_or(false) == *flag,
            // exception matchers are checked once per stack trace
            MatchKind::ErrorType(_) | MatchKind::ErrorValue(_) | MatchKind::ErrorMechanism(_) => {
                return true;
            }
        };
        hit != self.negated
    }
}

impl fmt::Display for Enhancements {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for rule in &self.rules {
            writeln!(f, "{}", rule.text)?;
        }
        Ok(())
    }
}

/// A cursor over one line, counting columns from 1.
struct Cursor<'a> {
    line: &'a str,
    pos: usize,
    line_no: usize,
}

impl<'a> Cursor<'a> {
    fn error(&self, at: usize, message: impl Into<String>) -> RuleError {
        RuleError {
            line: self.line_no,
            column: self.line[..at.min(self.line.len())].chars().count() + 1,
            message: message.into(),
        }
    }

    fn skip_ws(&mut self) {
        while let Some(c) = self.peek() {
            if c.is_whitespace() {
                self.pos += c.len_utf8();
            } else {
                break;
            }
        }
    }

    fn peek(&self) -> Option<char> {
        self.line[self.pos..].chars().next()
    }

    fn at_end(&self) -> bool {
        self.pos >= self.line.len()
    }

    /// A token up to whitespace (or `]` / `|` when `stop_at_bracket`), honouring `"..."`.
    fn token(&mut self, stop_at_bracket: bool) -> Result<String, RuleError> {
        let start = self.pos;
        let mut out = String::new();
        while let Some(c) = self.peek() {
            if c.is_whitespace() || (stop_at_bracket && matches!(c, ']' | '|')) {
                break;
            }
            if c == '"' {
                self.pos += 1;
                loop {
                    match self.peek() {
                        None => return Err(self.error(start, "unterminated quoted value")),
                        Some('"') => {
                            self.pos += 1;
                            break;
                        }
                        Some('\\') => {
                            self.pos += 1;
                            match self.peek() {
                                Some(n) => {
                                    // `\\` is one backslash; other escapes stay for the glob
                                    if n != '\\' && n != '"' {
                                        out.push('\\');
                                    }
                                    out.push(n);
                                    self.pos += n.len_utf8();
                                }
                                None => {
                                    return Err(self.error(start, "unterminated quoted value"));
                                }
                            }
                        }
                        Some(other) => {
                            out.push(other);
                            self.pos += other.len_utf8();
                        }
                    }
                }
                continue;
            }
            out.push(c);
            self.pos += c.len_utf8();
        }
        Ok(out)
    }
}

/// The line without its comment (a `#` outside quotes).
fn strip_comment(line: &str) -> &str {
    let mut quoted = false;
    let mut escaped = false;
    for (i, c) in line.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            '#' if !quoted => return &line[..i],
            _ => {}
        }
    }
    line
}

fn parse_rule(line: &str, line_no: usize) -> Result<Option<Rule>, RuleError> {
    let body = strip_comment(line);
    if body.trim().is_empty() {
        return Ok(None);
    }
    let mut cur = Cursor {
        line: body,
        pos: 0,
        line_no,
    };
    let mut caller = Vec::new();
    let mut frame = Vec::new();
    let mut callee = Vec::new();
    let mut actions = Vec::new();
    cur.skip_ws();
    if cur.peek() == Some('[') {
        cur.pos += 1;
        caller = parse_matchers(&mut cur, true)?;
        cur.skip_ws();
        if cur.peek() != Some(']') {
            return Err(cur.error(cur.pos, "expected `]` to close the caller matchers"));
        }
        cur.pos += 1;
        cur.skip_ws();
        if cur.peek() != Some('|') {
            return Err(cur.error(cur.pos, "expected `|` after the caller matchers"));
        }
        cur.pos += 1;
    }
    loop {
        cur.skip_ws();
        if cur.at_end() {
            break;
        }
        let start = cur.pos;
        match cur.peek() {
            Some('|') => {
                cur.pos += 1;
                cur.skip_ws();
                if cur.peek() != Some('[') {
                    return Err(cur.error(cur.pos, "expected `[` after `|`"));
                }
                cur.pos += 1;
                callee = parse_matchers(&mut cur, true)?;
                cur.skip_ws();
                if cur.peek() != Some(']') {
                    return Err(cur.error(cur.pos, "expected `]` to close the callee matchers"));
                }
                cur.pos += 1;
                continue;
            }
            Some('[') => {
                return Err(cur.error(start, "caller matchers `[ ... ] |` must come first"));
            }
            _ => {}
        }
        let token = cur.token(false)?;
        if let Some(action) = parse_action(&token) {
            actions.push(action.map_err(|m| cur.error(start, m))?);
            continue;
        }
        if !actions.is_empty() {
            return Err(cur.error(start, format!("expected an action, found `{token}`")));
        }
        frame.push(parse_matcher(&token).map_err(|m| cur.error(start, m))?);
    }
    if frame.is_empty() && caller.is_empty() && callee.is_empty() {
        return Err(cur.error(0, "a rule needs at least one matcher"));
    }
    if actions.is_empty() {
        return Err(cur.error(
            body.trim_end().len(),
            "a rule needs at least one action (+app, -app, +group, -group, category=..., max-frames=N, min-frames=N)",
        ));
    }
    let families = frame
        .iter()
        .filter_map(|m| match m.kind {
            MatchKind::Family(set) if m.negated => Some(ALL_FAMILIES & !set),
            MatchKind::Family(set) => Some(set),
            _ => None,
        })
        .fold(ALL_FAMILIES, |all, allowed| all & allowed);
    let modifies = actions
        .iter()
        .any(|a| matches!(a, Action::App(..) | Action::Category(_)));
    let contributes = actions.iter().any(|a| {
        matches!(
            a,
            Action::Group(..) | Action::MaxFrames(_) | Action::MinFrames(_)
        )
    });
    Ok(Some(Rule {
        text: body.trim().to_owned(),
        families,
        anchor: None,
        modifies,
        contributes,
        caller,
        frame,
        callee,
        actions,
    }))
}

fn parse_matchers(cur: &mut Cursor<'_>, in_brackets: bool) -> Result<Vec<Matcher>, RuleError> {
    let mut out = Vec::new();
    loop {
        cur.skip_ws();
        match cur.peek() {
            None => break,
            Some(']') if in_brackets => break,
            _ => {}
        }
        let start = cur.pos;
        let token = cur.token(in_brackets)?;
        if token.is_empty() {
            return Err(cur.error(start, "expected a matcher"));
        }
        out.push(parse_matcher(&token).map_err(|m| cur.error(start, m))?);
    }
    if out.is_empty() {
        return Err(cur.error(cur.pos, "expected at least one matcher inside `[ ]`"));
    }
    Ok(out)
}

fn parse_matcher(token: &str) -> Result<Matcher, String> {
    let (negated, token) = match token.strip_prefix('!') {
        Some(rest) => (true, rest),
        None => (false, token),
    };
    let Some((key, value)) = token.split_once(':') else {
        return Err(format!(
            "expected a matcher `key:value` or an action, found `{token}`"
        ));
    };
    if value.is_empty() {
        return Err(format!("matcher `{key}` has no value"));
    }
    let key = key.strip_prefix("stack.").unwrap_or(key);
    let kind = match key {
        "family" => MatchKind::Family(
            value
                .split(',')
                .map(|name| match name {
                    "all" => ALL_FAMILIES,
                    name => family_bit(name),
                })
                .fold(0, |all, bit| all | bit),
        ),
        "path" | "abs_path" => MatchKind::Path(Glob::new(&value.to_lowercase(), true, true)?),
        "module" => MatchKind::Module(Glob::new(value, true, false)?),
        "function" => MatchKind::Function(Glob::new(value, false, false)?),
        "package" => MatchKind::Package(Glob::new(&value.to_lowercase(), true, true)?),
        "category" => MatchKind::Category(Glob::new(value, false, false)?),
        "app" | "in_app" => MatchKind::App(match value {
            "1" | "yes" | "true" => true,
            "0" | "no" | "false" => false,
            other => return Err(format!("app: expects yes or no, found `{other}`")),
        }),
        "error.type" => MatchKind::ErrorType(Glob::new(value, false, false)?),
        "error.value" => MatchKind::ErrorValue(Glob::new(value, false, true)?),
        "error.mechanism" => MatchKind::ErrorMechanism(Glob::new(value, false, false)?),
        other => {
            return Err(format!(
                "unknown matcher `{other}` (expected family, path, module, function, package, \
                 category, app, error.type, error.value or error.mechanism)"
            ));
        }
    };
    Ok(Matcher {
        negated,
        kind,
        id: usize::MAX,
    })
}

/// `Some` when the token is an action (valid or not).
fn parse_action(token: &str) -> Option<Result<Action, String>> {
    if let Some((name, value)) = token.split_once('=') {
        let number = || {
            value
                .parse::<usize>()
                .map_err(|_| format!("{name}= expects a number, found `{value}`"))
        };
        return Some(match name {
            "max-frames" => number().map(Action::MaxFrames),
            "min-frames" => number().map(Action::MinFrames),
            "category" if !value.is_empty() => Ok(Action::Category(value.to_owned())),
            "invert-stacktrace" => Ok(Action::InvertStacktrace),
            _ => Err(format!(
                "unknown variable `{name}` (expected category, max-frames, min-frames or \
                 invert-stacktrace)"
            )),
        });
    }
    let (range, rest) = match token.chars().next()? {
        '^' => (Range::Up, &token[1..]),
        'v' if token.len() > 1 && matches!(token.as_bytes()[1], b'+' | b'-') => {
            (Range::Down, &token[1..])
        }
        _ => (Range::Frame, token),
    };
    let (flag, what) = match rest.as_bytes().first()? {
        b'+' => (true, &rest[1..]),
        b'-' => (false, &rest[1..]),
        _ => return None,
    };
    Some(match what {
        "app" => Ok(Action::App(range, flag)),
        "group" => Ok(Action::Group(range, flag)),
        other => Err(format!("unknown flag `{other}` (expected app or group)")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(family: &'static str, path: &str, function: &str) -> MatchFrame {
        MatchFrame {
            family,
            path: Some(path.to_lowercase()),
            function: Some(function.to_owned()),
            ..MatchFrame::default()
        }
    }

    #[test]
    fn parses_sentry_syntax() {
        let rules = Enhancements::parse(
            "# comment\n\
             family:javascript path:**/vendor/** -app\n\
             [ function:dispatch ] | module:myapp.* +group  # trailing\n\
             category:throw ^-group -group\n\
             function:\"stub InvokeDartCode\" -app\n\
             family:native max-frames=3 min-frames=2 category=system\n",
        )
        .unwrap();
        assert_eq!(rules.len(), 5);
    }

    #[test]
    fn errors_name_line_and_column() {
        let err =
            Enhancements::parse("path:**/vendor/** -app\nfamily:js +frobnicate\n").unwrap_err();
        assert_eq!((err.line, err.column), (2, 11));
        assert!(err.message.contains("unknown flag `frobnicate`"), "{err}");
        let err = Enhancements::parse("colour:red -app").unwrap_err();
        assert_eq!((err.line, err.column), (1, 1));
        assert!(err.to_string().contains("unknown matcher `colour`"));
        let err = Enhancements::parse("path:**/vendor/**").unwrap_err();
        assert!(err.message.contains("at least one action"), "{err}");
        let err = Enhancements::parse("function:\"open -app").unwrap_err();
        assert!(err.message.contains("unterminated"), "{err}");
        let err = Enhancements::parse("module:x max-frames=many").unwrap_err();
        assert_eq!(err.column, 10);
    }

    #[test]
    fn app_and_category_rules_apply_in_order() {
        let rules = Enhancements::parse(
            "family:javascript path:**/vendor/** -app\n\
             function:abort category=throw\n\
             category:throw ^-app\n",
        )
        .unwrap();
        let mut frames = vec![
            frame("javascript", "/app/vendor/lib.js", "call"),
            frame("javascript", "/app/src/main.js", "abort"),
            frame("javascript", "/app/src/after.js", "raise"),
        ];
        frames[0].in_app = Some(true);
        frames[2].in_app = Some(true);
        let hits = rules.hits(&frames);
        rules.apply_modifications(&mut frames, &ExceptionData::default(), &hits);
        assert_eq!(frames[0].in_app, Some(false));
        assert_eq!(frames[1].category.as_deref(), Some("throw"));
        assert_eq!(
            frames[2].in_app,
            Some(false),
            "^ reaches the frames it called"
        );
    }

    #[test]
    fn caller_and_callee_context() {
        let rules =
            Enhancements::parse("[ function:a ] | function:b | [ function:c ] -app").unwrap();
        let mut frames = vec![
            frame("other", "x", "a"),
            frame("other", "x", "b"),
            frame("other", "x", "c"),
            frame("other", "x", "b"),
        ];
        let hits = rules.hits(&frames);
        rules.apply_modifications(&mut frames, &ExceptionData::default(), &hits);
        assert_eq!(frames[1].in_app, Some(false));
        assert_eq!(frames[3].in_app, None, "its caller is no `a`");
    }
}
