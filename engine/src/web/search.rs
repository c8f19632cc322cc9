//! The issue stream's search box: a subset of Sentry's search syntax, parsed into terms and
//! compiled to SQL conditions over `issues` (and over `events`, for what only events know).
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
                    let (column, target) = match key {
                        Key::Status => ("status".to_owned(), &mut out.issues),
                        Key::Level => ("level".to_owned(), &mut out.issues),
                        Key::Project => ("project".to_owned(), &mut out.issues),
                        Key::Assignee => ("assignee".to_owned(), &mut out.issues),
                        Key::Release => ("release".to_owned(), &mut out.events),
                        Key::Environment => ("environment".to_owned(), &mut out.events),
                        Key::Tag(name) => (format!("tags[{}]", literal(name)), &mut out.events),
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

/// SQL conditions a search compiles to.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Conditions {
    /// Over the columns of `issues`.
    pub(crate) issues: Vec<String>,
    /// Over the columns of `events`: the issue must have an event (in the period) matching all.
    pub(crate) events: Vec<String>,
}

impl Conditions {
    /// Adds `column = value` on `issues`.
    pub(crate) fn issue_equals(&mut self, column: &str, value: &str) {
        self.issues.push(format!("{column} = {}", literal(value)));
    }

    /// Adds `column = value` on `events`.
    pub(crate) fn event_equals(&mut self, column: &str, value: &str) {
        self.events.push(format!("{column} = {}", literal(value)));
    }

    /// The `WHERE` clause (without the keyword) over `issues`: its own conditions, plus
    /// `issue_id IN (...)` over the events since `since` (a SQL time expression) when events
    /// must be asked. `None` when there is no condition at all.
    pub(crate) fn where_clause(&self, since: &str) -> Option<String> {
        let mut parts = self.issues.clone();
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
        assert_eq!(c.events, [r"release = 'a\b'"]);
        assert_eq!(
            c.issues[1],
            "(strpos(lower(coalesce(title, '')), '''quoted'';') > 0 \
             OR strpos(lower(coalesce(culprit, '')), '''quoted'';') > 0)"
        );
        let tag = Search::parse("it's:x").unwrap();
        // a quote cannot be part of a key: the word is free text
        assert_eq!(tag.terms, [Term::Text("it's:x".into())]);
        let c = Search::parse(r"a-b.c_d:'v'").unwrap().conditions(None);
        assert_eq!(c.events, [r"tags['a-b.c_d'] = '''v'''"]);
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
    fn where_clause_asks_events_only_for_event_fields() {
        let s = Search::parse("is:unresolved browser:Firefox").unwrap();
        let mut c = s.conditions(None);
        c.issue_equals("project", "web");
        assert_eq!(
            c.where_clause("now() - INTERVAL '1 hours'").unwrap(),
            "status = 'unresolved' AND project = 'web' AND issue_id IN (SELECT issue_id FROM \
             events WHERE timestamp >= now() - INTERVAL '1 hours' AND tags['browser'] = 'Firefox')"
        );
        assert_eq!(Conditions::default().where_clause("x"), None);
        assert_eq!(Search::parse("  ").unwrap().terms, []);
    }
}
