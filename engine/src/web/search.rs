//! The issue stream's search box: a subset of Sentry's search syntax, parsed into terms and
//! compiled to SQL conditions over `issues`, over `issue_tags` for tag, release and
//! environment values, and over `events` for what only events know.
//!
//! A positive tag term (`browser:Firefox`, `release:1.2`) matches the issues that had an event
//! with that value in the period, each term on its own; it reads the hourly tag rollups, not
//! the events. Where an issue had more distinct values of that tag in an hour than the
//! rollups keep, the events of those issues are asked as well, so no issue is missed. A
//! negated term (`!browser:Firefox`: an event without that value) asks the events.
//!
//! Supported: `is:unresolved|resolved|ignored`, `level:error`, `release:1.2`,
//! `environment:prod` (or `env:`), `project:web`, any other `key:value` as a tag filter,
//! `key:"quoted value"` (with `\"` and `\\` inside quotes), negation `!key:value`, and free text
//! (words or `"quoted phrases"`) matched case-insensitively against title and culprit. Every
//! value reaches SQL only as a quoted string literal ([`literal`]).

use std::fmt::Write as _;

/// A search that cannot be parsed; the message is shown to the user as is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum SearchError {
    #[error("unterminated quote in the search: add the closing \" after {0:?}")]
    Unterminated(String),
    #[error("{key}: needs a value, e.g. {key}:value")]
    EmptyValue { key: String },
    #[error(
        "is:{value} is not a status: use is:unresolved, is:resolved, is:ignored, is:assigned or is:unassigned"
    )]
    BadStatus { value: String },
    #[error("the search is longer than {MAX_SEARCH} characters")]
    TooLong,
}

/// Longest search accepted (characters).
pub(crate) const MAX_SEARCH: usize = 1000;

/// What a term compares.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Key {
    /// `is:` – the issue's status.
    Status,
    Level,
    Project,
    Release,
    Environment,
    /// `assigned:` – the issue's assignee (an email address, `#team`, `me`); `*` (from
    /// `is:assigned` / `is:unassigned`) for anyone.
    Assignee,
    /// Any other key: a tag of the issue's events.
    Tag(String),
}

/// One part of a search.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Term {
    Filter {
        key: Key,
        value: String,
        negated: bool,
    },
    /// Free text, matched against title and culprit.
    Text(String),
}

/// A parsed search.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Search {
    pub(crate) terms: Vec<Term>,
}

/// `value` as a SQL string literal: in quotes, with quotes doubled. The SQL dialect of every
/// session is PostgreSQL's, where a backslash in a standard string is an ordinary character.
pub(crate) fn literal(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('\'');
    for c in value.chars() {
        if c == '\'' {
            out.push('\'');
        }
        out.push(c);
    }
    out.push('\'');
    out
}

fn is_key_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.')
}

/// Reads a quoted string starting after the opening quote at `chars`; returns the value.
fn quoted(chars: &mut std::iter::Peekable<std::str::Chars<'_>>) -> Result<String, SearchError> {
    let mut value = String::new();
    loop {
        match chars.next() {
            None => return Err(SearchError::Unterminated(value)),
            Some('"') => return Ok(value),
            Some('\\') => match chars.next() {
                Some(c @ ('"' | '\\')) => value.push(c),
                Some(c) => {
                    value.push('\\');
                    value.push(c);
                }
                None => return Err(SearchError::Unterminated(value)),
            },
            Some(c) => value.push(c),
        }
    }
}

/// Splits the search into raw tokens: `(key, value)` for `key:value` (key may start with `!`)
/// and `(None, text)` for free text.
fn tokens(input: &str) -> Result<Vec<(Option<String>, String)>, SearchError> {
    let mut out = Vec::new();
    let mut chars = input.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        let Some(&first) = chars.peek() else {
            break;
        };
        if first == '"' {
            chars.next();
            out.push((None, quoted(&mut chars)?));
            continue;
        }
        // A word up to whitespace; a `key:` prefix makes it a filter whose value may be quoted.
        let mut word = String::new();
        let mut key = None;
        while let Some(&c) = chars.peek() {
            if c.is_whitespace() {
                break;
            }
            if c == ':' && key.is_none() {
                let name = word.strip_prefix('!').unwrap_or(&word);
                if !name.is_empty() && name.chars().all(is_key_char) {
                    chars.next();
                    key = Some(std::mem::take(&mut word));
                    if chars.peek() == Some(&'"') {
                        chars.next();
                        word = quoted(&mut chars)?;
                        break;
                    }
                    continue;
                }
            }
            word.push(c);
            chars.next();
        }
        out.push((key, word));
    }
    Ok(out)
}

impl Search {
    /// Parses a search; an empty or blank search has no terms.
    pub(crate) fn parse(input: &str) -> Result<Self, SearchError> {
        if input.chars().count() > MAX_SEARCH {
            return Err(SearchError::TooLong);
        }
        let mut terms = Vec::new();
        for (key, value) in tokens(input)? {
            let Some(key) = key else {
                terms.push(Term::Text(value));
                continue;
            };
            let (negated, name) = match key.strip_prefix('!') {
                Some(name) => (true, name),
                None => (false, key.as_str()),
            };
            if value.is_empty() {
                return Err(SearchError::EmptyValue {
                    key: name.to_owned(),
                });
            }
            let key = match name.to_ascii_lowercase().as_str() {
                "is" => {
                    let value = value.to_ascii_lowercase();
                    if matches!(value.as_str(), "assigned" | "unassigned") {
                        terms.push(Term::Filter {
                            key: Key::Assignee,
                            value: "*".to_owned(),
                            negated: negated != (value == "unassigned"),
                        });
                        continue;
                    }
                    if !matches!(value.as_str(), "unresolved" | "resolved" | "ignored") {
                        return Err(SearchError::BadStatus { value });
                    }
                    terms.push(Term::Filter {
                        key: Key::Status,
                        value,
                        negated,
                    });
                    continue;
                }
                "level" => Key::Level,
                "project" => Key::Project,
                "release" => Key::Release,
                "environment" | "env" => Key::Environment,
                "assigned" | "assigned_to" => Key::Assignee,
                _ => Key::Tag(name.to_owned()),
            };
            terms.push(Term::Filter {
                key,
                value,
                negated,
            });
        }
        Ok(Self { terms })
    }

    /// The conditions on `issues` columns, and those only `events` can answer (release,
    /// environment, tags), each as SQL. `me` is the caller's email address (`assigned:me`).
    pub(crate) fn conditions(&self, me: Option<&str>) -> Conditions {
        let mut out = Conditions::default();
        for term in &self.terms {
            match term {
                Term::Text(text) => {
                    let needle = literal(&text.to_lowercase());
                    out.issues.push(format!(
                        "(strpos(lower(coalesce(title, '')), {needle}) > 0 \
                         OR strpos(lower(coalesce(culprit, '')), {needle}) > 0)"
                    ));
                }
                Term::Filter {
                    key: Key::Assignee,
                    value,
                    negated,
                } if value == "*" => out.issues.push(format!(
                    "assignee IS {}NULL",
                    if *negated { "" } else { "NOT " }
                )),
                Term::Filter {
                    key,
                    value,
                    negated,
                } => {
                    // `assigned:me` for a token (no person) matches no one.
                    let value = match (key, value.as_str()) {
                        (Key::Assignee, "me") => me.unwrap_or_default(),
                        _ => value.as_str(),
                    };
                    let v = literal(value);
                    let tag = match key {
                        Key::Release => Some(("release", "release".to_owned())),
                        Key::Environment => Some(("environment", "environment".to_owned())),
                        Key::Tag(name) => Some((name.as_str(), format!("tags[{}]", literal(name)))),
                        _ => None,
                    };
                    if let (Some((tag, column)), false) = (&tag, *negated) {
                        out.tags.push(TagTerm {
                            key: (*tag).to_owned(),
                            value: value.to_owned(),
                            event_condition: format!("{column} = {v}"),
                        });
                        continue;
                    }
                    let (column, target) = match key {
                        Key::Status => ("status".to_owned(), &mut out.issues),
                        Key::Level => ("level".to_owned(), &mut out.issues),
                        Key::Project => ("project".to_owned(), &mut out.issues),
                        Key::Assignee => ("assignee".to_owned(), &mut out.issues),
                        Key::Release | Key::Environment | Key::Tag(_) => {
                            (tag.map(|(_, c)| c).unwrap_or_default(), &mut out.events)
                        }
                    };
                    target.push(if *negated {
                        format!("({column} IS NULL OR {column} <> {v})")
                    } else {
                        format!("{column} = {v}")
                    });
                }
            }
        }
        out
    }
}

/// A positive tag, release or environment term.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct TagTerm {
    /// The tag as `issue_tags` names it (`release` and `environment` included).
    pub(crate) key: String,
    pub(crate) value: String,
    /// The same term over the columns of `events`.
    pub(crate) event_condition: String,
}

/// Issues whose rollups of one tag overflowed in the period (more values in an hour than
/// kept): `None` when there are more than [`MAX_OVERFLOW_ISSUES`] of them.
pub(crate) type Overflow = std::collections::HashMap<String, Option<Vec<i64>>>;

/// Issues of one tag whose events are asked by id; beyond that, the term asks all events.
pub(crate) const MAX_OVERFLOW_ISSUES: usize = 500;

/// SQL conditions a search compiles to.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Conditions {
    /// Over the columns of `issues`.
    pub(crate) issues: Vec<String>,
    /// Tag values the issue must have had in the period, each answered by `issue_tags`.
    pub(crate) tags: Vec<TagTerm>,
    /// Over the columns of `events`: the issue must have an event (in the period) matching all.
    pub(crate) events: Vec<String>,
    /// Per tag of [`Self::tags`], the issues whose values of it overflowed the rollups (see
    /// [`Self::overflow_sql`]); a tag not in here did not overflow.
    pub(crate) overflow: Overflow,
}

impl Conditions {
    /// Adds `column = value` on `issues`.
    pub(crate) fn issue_equals(&mut self, column: &str, value: &str) {
        self.issues.push(format!("{column} = {}", literal(value)));
    }

    /// Adds a release or environment filter.
    pub(crate) fn tag_equals(&mut self, key: &str, value: &str) {
        self.tags.push(TagTerm {
            key: key.to_owned(),
            value: value.to_owned(),
            event_condition: format!("{key} = {}", literal(value)),
        });
    }

    /// The statement listing, per tag of the terms, the issues whose rollups of that tag
    /// overflowed since `since` (columns `key`, `issue_id`); `None` without tag terms. Its
    /// answer goes into [`Self::overflow`] through [`Self::set_overflow`].
    pub(crate) fn overflow_sql(&self, since: &str) -> Option<String> {
        if self.tags.is_empty() {
            return None;
        }
        let mut keys: Vec<String> = self.tags.iter().map(|t| literal(&t.key)).collect();
        keys.sort();
        keys.dedup();
        Some(format!(
            "SELECT DISTINCT key, issue_id FROM issue_tags WHERE hour >= date_trunc('hour', \
             {since}) AND value IS NULL AND key IN ({}) ORDER BY key, issue_id LIMIT {}",
            keys.join(", "),
            keys.len() * (MAX_OVERFLOW_ISSUES + 1)
        ))
    }

    /// Records the answer of [`Self::overflow_sql`]: `(key, issue_id)` pairs.
    pub(crate) fn set_overflow(&mut self, pairs: impl IntoIterator<Item = (String, i64)>) {
        let mut out = Overflow::new();
        for (key, issue) in pairs {
            let entry = out.entry(key).or_insert_with(|| Some(Vec::new()));
            if let Some(ids) = entry {
                ids.push(issue);
                if ids.len() > MAX_OVERFLOW_ISSUES {
                    *entry = None;
                }
            }
        }
        self.overflow = out;
    }

    /// The `WHERE` clause (without the keyword) over `issues`: its own conditions, plus
    /// `issue_id IN (...)` over `issue_tags` (and `events`) since `since` (a SQL time
    /// expression) for terms only those know. `None` when there is no condition at all.
    pub(crate) fn where_clause(&self, since: &str) -> Option<String> {
        let mut parts = self.issues.clone();
        for term in &self.tags {
            let from_events = |only: &str| {
                format!(
                    "issue_id IN (SELECT issue_id FROM events WHERE timestamp >= {since}{only} \
                     AND {})",
                    term.event_condition
                )
            };
            let from_tags = format!(
                "issue_id IN (SELECT issue_id FROM issue_tags WHERE hour >= date_trunc('hour', \
                 {since}) AND key = {} AND value = {})",
                literal(&term.key),
                literal(&term.value)
            );
            parts.push(match self.overflow.get(&term.key) {
                None => from_tags,
                Some(None) => from_events(""),
                Some(Some(ids)) => {
                    let ids: Vec<String> = ids.iter().map(i64::to_string).collect();
                    format!(
                        "({from_tags} OR {})",
                        from_events(&format!(" AND issue_id IN ({})", ids.join(", ")))
                    )
                }
            });
        }
        if !self.events.is_empty() {
            let mut sub =
                format!("issue_id IN (SELECT issue_id FROM events WHERE timestamp >= {since}");
            for c in &self.events {
                let _ = write!(sub, " AND {c}");
            }
            sub.push(')');
            parts.push(sub);
        }
        (!parts.is_empty()).then(|| parts.join(" AND "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn filter(key: Key, value: &str, negated: bool) -> Term {
        Term::Filter {
            key,
            value: value.to_owned(),
            negated,
        }
    }

    fn parse(s: &str) -> Vec<Term> {
        Search::parse(s).unwrap().terms
    }

    #[test]
    fn status_level_release_environment_and_project() {
        assert_eq!(
            parse(
                "is:unresolved level:error release:1.2.3 env:prod environment:staging project:web"
            ),
            [
                filter(Key::Status, "unresolved", false),
                filter(Key::Level, "error", false),
                filter(Key::Release, "1.2.3", false),
                filter(Key::Environment, "prod", false),
                filter(Key::Environment, "staging", false),
                filter(Key::Project, "web", false),
            ]
        );
        assert_eq!(
            parse("IS:Resolved")[0],
            filter(Key::Status, "resolved", false)
        );
    }

    #[test]
    fn unknown_keys_are_tag_filters() {
        assert_eq!(
            parse("browser:Firefox server.name:db-1"),
            [
                filter(Key::Tag("browser".into()), "Firefox", false),
                filter(Key::Tag("server.name".into()), "db-1", false),
            ]
        );
    }

    #[test]
    fn quoted_values_and_phrases() {
        assert_eq!(
            parse(r#"browser:"Mobile Safari" "connection reset" timeout"#),
            [
                filter(Key::Tag("browser".into()), "Mobile Safari", false),
                Term::Text("connection reset".into()),
                Term::Text("timeout".into()),
            ]
        );
        assert_eq!(
            parse(r#"msg:"say \"hi\" \\ there""#),
            [filter(Key::Tag("msg".into()), r#"say "hi" \ there"#, false)]
        );
    }

    #[test]
    fn negation() {
        assert_eq!(
            parse("!level:info !is:ignored !browser:Chrome"),
            [
                filter(Key::Level, "info", true),
                filter(Key::Status, "ignored", true),
                filter(Key::Tag("browser".into()), "Chrome", true),
            ]
        );
        let c = Search::parse("!level:info").unwrap().conditions(None);
        assert_eq!(c.issues, ["(level IS NULL OR level <> 'info')"]);
    }

    #[test]
    fn a_colon_inside_text_or_value_stays_text() {
        assert_eq!(
            parse("url:http://x/y :alone a/b:c"),
            [
                filter(Key::Tag("url".into()), "http://x/y", false),
                Term::Text(":alone".into()),
                Term::Text("a/b:c".into()),
            ]
        );
    }

    #[test]
    fn malformed_searches_are_errors_the_user_can_act_on() {
        assert_eq!(
            Search::parse(r#"browser:"Firefox"#)
                .unwrap_err()
                .to_string(),
            "unterminated quote in the search: add the closing \" after \"Firefox\""
        );
        assert_eq!(
            Search::parse("level: error").unwrap_err().to_string(),
            "level: needs a value, e.g. level:value"
        );
        assert_eq!(
            Search::parse("is:open").unwrap_err().to_string(),
            "is:open is not a status: use is:unresolved, is:resolved, is:ignored, is:assigned or is:unassigned"
        );
        assert_eq!(
            Search::parse(&"x".repeat(MAX_SEARCH + 1)).unwrap_err(),
            SearchError::TooLong
        );
        assert!(Search::parse(&"x".repeat(MAX_SEARCH)).is_ok());
    }

    #[test]
    fn injection_attempts_stay_inside_string_literals() {
        let c = Search::parse(r#"level:"x' OR 1=1; --" release:a\b 'quoted';"#)
            .unwrap()
            .conditions(None);
        assert_eq!(c.issues[0], "level = 'x'' OR 1=1; --'");
        assert_eq!(c.tags[0].event_condition, r"release = 'a\b'");
        assert!(
            c.where_clause("x")
                .unwrap()
                .contains(r"key = 'release' AND value = 'a\b'")
        );
        assert_eq!(
            c.issues[1],
            "(strpos(lower(coalesce(title, '')), '''quoted'';') > 0 \
             OR strpos(lower(coalesce(culprit, '')), '''quoted'';') > 0)"
        );
        let tag = Search::parse("it's:x").unwrap();
        // a quote cannot be part of a key: the word is free text
        assert_eq!(tag.terms, [Term::Text("it's:x".into())]);
        let c = Search::parse(r"a-b.c_d:'v'").unwrap().conditions(None);
        assert_eq!(c.tags[0].event_condition, r"tags['a-b.c_d'] = '''v'''");
        assert!(
            c.where_clause("x")
                .unwrap()
                .contains(r"key = 'a-b.c_d' AND value = '''v'''")
        );
    }

    #[test]
    fn assignment_filters() {
        let c = |q: &str, me| Search::parse(q).unwrap().conditions(me).issues;
        assert_eq!(c("is:assigned", None), ["assignee IS NOT NULL"]);
        assert_eq!(c("is:unassigned", None), ["assignee IS NULL"]);
        assert_eq!(c("!is:unassigned", None), ["assignee IS NOT NULL"]);
        assert_eq!(
            c("assigned:me", Some("ada@example.com")),
            ["assignee = 'ada@example.com'"]
        );
        // a token is no one: assigned:me finds nothing
        assert_eq!(c("assigned:me", None), ["assignee = ''"]);
        assert_eq!(c("assigned:#backend", None), ["assignee = '#backend'"]);
    }

    #[test]
    fn where_clause_reads_tag_rollups_for_tags_and_events_only_for_the_rest() {
        let s = Search::parse("is:unresolved browser:Firefox !os:Linux").unwrap();
        let mut c = s.conditions(None);
        c.issue_equals("project", "web");
        assert_eq!(
            c.where_clause("now() - INTERVAL '1 hours'").unwrap(),
            "status = 'unresolved' AND project = 'web' AND issue_id IN (SELECT issue_id FROM \
             issue_tags WHERE hour >= date_trunc('hour', now() - INTERVAL '1 hours') AND key = \
             'browser' AND value = 'Firefox') AND issue_id IN (SELECT issue_id FROM events WHERE \
             timestamp >= now() - INTERVAL '1 hours' AND (tags['os'] IS NULL OR tags['os'] <> \
             'Linux'))"
        );
        assert_eq!(
            c.overflow_sql("x").unwrap(),
            "SELECT DISTINCT key, issue_id FROM issue_tags WHERE hour >= date_trunc('hour', x) \
             AND value IS NULL AND key IN ('browser') ORDER BY key, issue_id LIMIT 501"
        );
        // Two issues overflowed: their events are asked too.
        c.set_overflow([("browser".to_owned(), 4), ("browser".to_owned(), 9)]);
        let clause = c.where_clause("x").unwrap();
        assert!(
            clause.contains(
                "(issue_id IN (SELECT issue_id FROM issue_tags WHERE hour >= date_trunc('hour', \
                 x) AND key = 'browser' AND value = 'Firefox') OR issue_id IN (SELECT issue_id \
                 FROM events WHERE timestamp >= x AND issue_id IN (4, 9) AND tags['browser'] = \
                 'Firefox'))"
            ),
            "{clause}"
        );
        // Too many to name: the term asks all events.
        c.set_overflow((0..=MAX_OVERFLOW_ISSUES as i64).map(|i| ("browser".to_owned(), i)));
        let clause = c.where_clause("x").unwrap();
        assert!(
            clause.contains(
                "issue_id IN (SELECT issue_id FROM events WHERE timestamp >= x AND \
                 tags['browser'] = 'Firefox')"
            ),
            "{clause}"
        );
        assert!(!clause.contains("issue_tags"), "{clause}");
        assert_eq!(Conditions::default().where_clause("x"), None);
        assert_eq!(Search::parse("  ").unwrap().terms, []);
    }
}
