//! Rewrites of catalog queries beyond `datafusion-pg-catalog`'s, for what SQLAlchemy 2 sends.
//! They apply only to statements that read the catalog ([`reads_catalog`]), never to queries
//! over `events` and `issues`.

use std::collections::HashSet;
use std::ops::ControlFlow;

use datafusion::sql::sqlparser::ast::{
    Expr, Query, SelectItem, SetExpr, Statement, TableFactor, Value, Visit, VisitMut, Visitor,
    VisitorMut, visit_expressions_mut, visit_relations,
};
use datafusion::sql::sqlparser::dialect::PostgreSqlDialect;
use datafusion::sql::sqlparser::parser::Parser;

/// True when `statement` reads a catalog table (`pg_catalog.*`, `information_schema.*`, `pg_*`).
pub(super) fn reads_catalog(statement: &Statement) -> bool {
    let mut found = false;
    let _ = visit_relations(statement, |name| {
        let parts: Vec<String> = name
            .0
            .iter()
            .filter_map(|part| part.as_ident())
            .map(|ident| ident.value.to_ascii_lowercase())
            .collect();
        found |= parts
            .iter()
            .any(|p| p == "pg_catalog" || p == "information_schema")
            || parts.last().is_some_and(|t| t.starts_with("pg_"));
        ControlFlow::<()>::Continue(())
    });
    found
}

/// Applies the rewrites below to a catalog statement.
pub(super) fn catalog(statement: &mut Statement) {
    let _ = statement.visit(&mut CorrelatedSubqueries);
    backslash_escapes(statement);
}

/// `LIKE p ESCAPE '/'` (SQLAlchemy's `startswith` on catalog names) as `LIKE replace(p, '/',
/// '\')`: DataFusion knows only the backslash escape. (An escaped `/` in the value then reads as
/// a backslash; catalog names do not have one.)
fn backslash_escapes(statement: &mut Statement) {
    let _ = visit_expressions_mut(statement, |expr| {
        if let Expr::Like {
            pattern,
            escape_char,
            ..
        }
        | Expr::ILike {
            pattern,
            escape_char,
            ..
        } = expr
            && let Some(Value::SingleQuotedString(escape)) = escape_char.as_ref().map(|v| &v.value)
            && escape != "\\"
        {
            let rewritten = format!("replace({pattern}, '{escape}', '\\')");
            if let Ok(replaced) = Parser::new(&PostgreSqlDialect {})
                .try_with_sql(&rewritten)
                .and_then(|mut p| p.parse_expr())
            {
                **pattern = replaced;
                *escape_char = None;
            }
        }
        ControlFlow::<()>::Continue(())
    });
}

/// Replaces correlated scalar subqueries anywhere in a select list (also inside `CASE`) with
/// NULL. DataFusion plans a correlated scalar subquery only when it aggregates; SQLAlchemy asks
/// this way for column defaults, identity options and collations, none of which faultline's
/// tables have, so NULL is the answer PostgreSQL would give.
struct CorrelatedSubqueries;

impl VisitorMut for CorrelatedSubqueries {
    type Break = ();

    fn pre_visit_query(&mut self, query: &mut Query) -> ControlFlow<()> {
        if let SetExpr::Select(select) = query.body.as_mut() {
            for item in &mut select.projection {
                if let SelectItem::UnnamedExpr(expr) | SelectItem::ExprWithAlias { expr, .. } = item
                {
                    let _ = visit_expressions_mut(expr, |e| {
                        if let Expr::Subquery(subquery) = e
                            && correlated(subquery)
                        {
                            *e = Expr::Value(Value::Null.with_empty_span());
                        }
                        ControlFlow::<()>::Continue(())
                    });
                }
            }
        }
        ControlFlow::Continue(())
    }
}

/// True when `query` names a column qualified by a table its own `FROM` does not have.
fn correlated(query: &Query) -> bool {
    let SetExpr::Select(select) = query.body.as_ref() else {
        return false;
    };
    let mut own = HashSet::new();
    for from in &select.from {
        for factor in std::iter::once(&from.relation).chain(from.joins.iter().map(|j| &j.relation))
        {
            if let TableFactor::Table { name, alias, .. } = factor {
                if let Some(table) = name.0.last().and_then(|p| p.as_ident()) {
                    own.insert(table.value.to_ascii_lowercase());
                }
                if let Some(alias) = alias {
                    own.insert(alias.name.value.to_ascii_lowercase());
                }
            }
        }
    }
    struct Outer<'a>(&'a HashSet<String>, bool);
    impl Visitor for Outer<'_> {
        type Break = ();
        fn pre_visit_expr(&mut self, expr: &Expr) -> ControlFlow<()> {
            if let Expr::CompoundIdentifier(idents) = expr
                && idents.len() >= 2
            {
                let table = idents[idents.len() - 2].value.to_ascii_lowercase();
                self.1 |= !self.0.contains(&table);
            }
            ControlFlow::Continue(())
        }
    }
    let mut outer = Outer(&own, false);
    let _ = query.visit(&mut outer);
    outer.1
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rewritten(sql: &str) -> String {
        let mut statement = Parser::parse_sql(&PostgreSqlDialect {}, sql)
            .unwrap()
            .remove(0);
        catalog(&mut statement);
        statement.to_string()
    }

    #[test]
    fn like_escapes_become_backslashes() {
        assert_eq!(
            rewritten(
                "SELECT nspname FROM pg_namespace WHERE nspname NOT LIKE $1 || '%' ESCAPE '/'"
            ),
            "SELECT nspname FROM pg_namespace WHERE nspname NOT LIKE replace($1 || '%', '/', '\\')"
        );
    }

    #[test]
    fn correlated_subqueries_in_the_select_list_become_null() {
        assert_eq!(
            rewritten(
                "SELECT a.attname, CASE WHEN a.atthasdef THEN (SELECT d.adbin FROM pg_attrdef d \
                 WHERE d.adrelid = a.attrelid) ELSE NULL END AS dflt, \
                 (SELECT count(*) FROM pg_type t) AS types FROM pg_attribute a"
            ),
            "SELECT a.attname, CASE WHEN a.atthasdef THEN NULL ELSE NULL END AS dflt, \
             (SELECT count(*) FROM pg_type t) AS types FROM pg_attribute a"
        );
    }

    #[test]
    fn only_catalog_reads_count() {
        let first = |sql| {
            Parser::parse_sql(&PostgreSqlDialect {}, sql)
                .unwrap()
                .remove(0)
        };
        assert!(reads_catalog(&first(
            "SELECT c.relname FROM pg_catalog.pg_class c"
        )));
        assert!(reads_catalog(&first("SELECT * FROM pg_type")));
        assert!(reads_catalog(&first(
            "SELECT table_name FROM information_schema.tables"
        )));
        assert!(!reads_catalog(&first(
            "SELECT (SELECT count(*) FROM events e2 WHERE e2.project_id = e.project_id) FROM events e"
        )));
    }
}
