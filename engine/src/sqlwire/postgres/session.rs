//! Session statements drivers send around their queries: `SET`, `SHOW`, `BEGIN` / `COMMIT` /
//! `ROLLBACK`, savepoints, `DISCARD`, `DEALLOCATE`, `CLOSE`. They are answered here, per connection, and never
//! reach DataFusion: `SET` only changes what this connection's `SHOW` and `current_setting()`
//! report, transactions are no-ops (every statement is a read of a snapshot), and nothing here
//! can change how queries run or what they may read.

use std::collections::BTreeMap;

use datafusion::sql::sqlparser::ast::{Expr, Set, Statement, Value};

/// The parameters a connection reports, with PostgreSQL's defaults for what drivers ask.
#[derive(Debug, Clone)]
pub(super) struct Settings(BTreeMap<String, String>);

impl Default for Settings {
    fn default() -> Self {
        let defaults = [
            ("application_name", ""),
            ("client_encoding", "UTF8"),
            ("client_min_messages", "notice"),
            ("datestyle", "ISO, MDY"),
            ("default_transaction_isolation", "read committed"),
            ("default_transaction_read_only", "on"),
            ("extra_float_digits", "1"),
            ("integer_datetimes", "on"),
            ("intervalstyle", "postgres"),
            ("lc_collate", "C"),
            ("lc_ctype", "C"),
            ("max_identifier_length", "63"),
            ("search_path", "public"),
            ("server_encoding", "UTF8"),
            ("server_version", super::SERVER_VERSION),
            ("server_version_num", "160000"),
            ("standard_conforming_strings", "on"),
            ("statement_timeout", "0"),
            ("timezone", "UTC"),
            ("transaction_isolation", "read committed"),
            ("transaction_read_only", "on"),
        ];
        Self(
            defaults
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
        )
    }
}

impl Settings {
    /// The value of `name` (case-insensitive), as `SHOW` reports it.
    pub(super) fn get(&self, name: &str) -> Option<&str> {
        self.0.get(&canonical(name)).map(String::as_str)
    }

    pub(super) fn set(&mut self, name: &str, value: String) {
        self.0.insert(canonical(name), value);
    }

    pub(super) fn all(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }
}

/// `SHOW transaction isolation level` is `transaction_isolation`; names are case-insensitive.
pub(super) fn canonical(name: &str) -> String {
    let name = name.trim().to_ascii_lowercase();
    match name.as_str() {
        "transaction isolation level" => "transaction_isolation".to_owned(),
        "time zone" => "timezone".to_owned(),
        _ => name,
    }
}

/// A session statement and what it does.
#[derive(Debug, Clone, PartialEq)]
pub(super) enum Command {
    /// Remember `value` for `name`; `None` for forms that only need an acknowledgement
    /// (`SET TRANSACTION ...`, `SET ROLE ...`).
    Set {
        name: Option<String>,
        value: String,
    },
    /// `SHOW name`, or every setting for `SHOW ALL`.
    Show(Option<String>),
    Begin,
    /// `COMMIT` or `ROLLBACK`, with the tag to answer.
    End(&'static str),
    /// Acknowledged with the tag and nothing else.
    Noop(&'static str),
}

/// The session command `statement` is, or `None` for a statement to plan.
pub(super) fn command(statement: &Statement) -> Option<Command> {
    Some(match statement {
        Statement::Set(set) => match set {
            Set::SingleAssignment {
                variable, values, ..
            } => Command::Set {
                name: Some(variable.to_string()),
                value: values.iter().map(text).collect::<Vec<_>>().join(", "),
            },
            Set::SetTimeZone { value, .. } => Command::Set {
                name: Some("timezone".to_owned()),
                value: text(value),
            },
            Set::SetNames { charset_name, .. } => Command::Set {
                name: Some("client_encoding".to_owned()),
                value: charset_name.value.clone(),
            },
            _ => Command::Set {
                name: None,
                value: String::new(),
            },
        },
        Statement::ShowVariable { variable } => {
            let name = variable
                .iter()
                .map(|i| i.value.as_str())
                .collect::<Vec<_>>()
                .join(" ");
            if name.eq_ignore_ascii_case("all") {
                Command::Show(None)
            } else {
                Command::Show(Some(name))
            }
        }
        Statement::StartTransaction { .. } => Command::Begin,
        Statement::Commit { .. } => Command::End("COMMIT"),
        Statement::Rollback {
            savepoint: Some(_), ..
        } => Command::Noop("ROLLBACK"),
        Statement::Rollback { .. } => Command::End("ROLLBACK"),
        Statement::Savepoint { .. } => Command::Noop("SAVEPOINT"),
        Statement::ReleaseSavepoint { .. } => Command::Noop("RELEASE"),
        Statement::Discard { .. } => Command::Noop("DISCARD ALL"),
        Statement::Deallocate { .. } => Command::Noop("DEALLOCATE"),
        Statement::Close { .. } => Command::Noop("CLOSE CURSOR"),
        _ => return None,
    })
}

/// A `SET` value as PostgreSQL reports it back: strings without their quotes.
fn text(expr: &Expr) -> String {
    match expr {
        Expr::Value(v) => match &v.value {
            Value::SingleQuotedString(s) | Value::DoubleQuotedString(s) => s.clone(),
            other => other.to_string(),
        },
        Expr::Identifier(ident) => ident.value.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
    use datafusion::sql::sqlparser::parser::Parser;

    use super::*;

    fn parse(sql: &str) -> Option<Command> {
        let statements = Parser::parse_sql(&PostgreSqlDialect {}, sql).expect("parses");
        command(&statements[0])
    }

    #[test]
    fn driver_statements_are_session_commands() {
        assert_eq!(
            parse("SET extra_float_digits = 3"),
            Some(Command::Set {
                name: Some("extra_float_digits".to_owned()),
                value: "3".to_owned()
            })
        );
        assert_eq!(
            parse("SET application_name = 'superset'"),
            Some(Command::Set {
                name: Some("application_name".to_owned()),
                value: "superset".to_owned()
            })
        );
        assert_eq!(
            parse("SHOW transaction isolation level"),
            Some(Command::Show(Some(
                "transaction isolation level".to_owned()
            )))
        );
        assert_eq!(parse("BEGIN"), Some(Command::Begin));
        assert_eq!(parse("ROLLBACK"), Some(Command::End("ROLLBACK")));
        assert_eq!(
            parse("ROLLBACK TO SAVEPOINT \"_pg3_1\""),
            Some(Command::Noop("ROLLBACK"))
        );
        assert_eq!(parse("SAVEPOINT s"), Some(Command::Noop("SAVEPOINT")));
        assert_eq!(parse("DISCARD ALL"), Some(Command::Noop("DISCARD ALL")));
        assert_eq!(parse("SELECT 1"), None);
        assert_eq!(parse("COPY events TO '/tmp/x'"), None);
        assert_eq!(parse("DROP TABLE events"), None);
    }

    #[test]
    fn settings_answer_show_by_any_spelling() {
        let mut settings = Settings::default();
        assert_eq!(
            settings.get("SHOW transaction isolation level".trim_start_matches("SHOW ")),
            Some("read committed")
        );
        assert_eq!(settings.get("standard_conforming_strings"), Some("on"));
        settings.set("DateStyle", "ISO".to_owned());
        assert_eq!(settings.get("datestyle"), Some("ISO"));
        assert_eq!(settings.get("data_directory"), None);
    }
}
