//! Limits checked before a query plans or runs: the size and nesting of its SQL, and how many
//! queries may run at once.
//!
//! DataFusion plans and optimizes with recursive walks over the expression tree, so a statement
//! nested thousands of levels deep (`1+1+...+1`, long `AND`/`OR` or `||` chains) would overflow
//! a thread's stack. The parser itself does not recurse on such chains (and limits other nesting,
//! such as parentheses, function calls and subqueries, to 50 levels), so the tree is measured
//! right after parsing, before anything else walks it: [`check_text`] bounds the text, and
//! [`check_depth`] walks the tree but stops as soon as it is deeper than the limit, so the check
//! itself never recurses further than the limit.

use std::collections::HashMap;
use std::ops::ControlFlow;
use std::sync::Arc;

use datafusion::sql::parser::{CopyToSource, Statement as DfStatement};
use datafusion::sql::sqlparser::ast::{Expr, Query, Statement, Visit, Visitor};
use parking_lot::Mutex;

use super::Error;

/// Refuses SQL text longer than `limit` bytes.
pub(crate) fn check_text(sql: &str, limit: usize) -> Result<(), Error> {
    if sql.len() > limit {
        return Err(Error::TooLong {
            length: sql.len(),
            limit,
        });
    }
    Ok(())
}

/// Counts how deep expressions and queries nest; breaks out once deeper than `limit`.
struct Depth {
    current: usize,
    limit: usize,
}

impl Depth {
    fn enter(&mut self) -> ControlFlow<()> {
        self.current += 1;
        if self.current > self.limit {
            ControlFlow::Break(())
        } else {
            ControlFlow::Continue(())
        }
    }
}

impl Visitor for Depth {
    type Break = ();

    fn pre_visit_query(&mut self, _query: &Query) -> ControlFlow<()> {
        self.enter()
    }

    fn post_visit_query(&mut self, _query: &Query) -> ControlFlow<()> {
        self.current -= 1;
        ControlFlow::Continue(())
    }

    fn pre_visit_expr(&mut self, _expr: &Expr) -> ControlFlow<()> {
        self.enter()
    }

    fn post_visit_expr(&mut self, _expr: &Expr) -> ControlFlow<()> {
        self.current -= 1;
        ControlFlow::Continue(())
    }
}

/// Refuses a parsed statement whose expressions and subqueries nest deeper than `limit`.
pub(crate) fn check_depth(statement: &Statement, limit: usize) -> Result<(), Error> {
    let mut depth = Depth { current: 0, limit };
    match statement.visit(&mut depth) {
        ControlFlow::Break(()) => Err(Error::TooDeep { limit }),
        ControlFlow::Continue(()) => Ok(()),
    }
}

/// [`check_depth`] for a statement of DataFusion's parser (which wraps SQL statements).
pub(crate) fn check_df_depth(statement: &DfStatement, limit: usize) -> Result<(), Error> {
    match statement {
        DfStatement::Statement(statement) => check_depth(statement, limit),
        DfStatement::Explain(explain) => check_df_depth(&explain.statement, limit),
        DfStatement::CopyTo(copy) => match &copy.source {
            CopyToSource::Query(query) => check_depth(&Statement::Query(query.clone()), limit),
            CopyToSource::Relation(_) => Ok(()),
        },
        // DDL and `RESET`: refused by the plan check; they hold no deep expressions.
        _ => Ok(()),
    }
}

/// How many queries run, in total and per API token, within the configured caps.
pub(crate) struct Admission {
    total: usize,
    per_token: usize,
    running: Mutex<Running>,
}

#[derive(Default)]
struct Running {
    total: usize,
    by_token: HashMap<String, usize>,
}

impl Admission {
    pub(crate) fn new(total: usize, per_token: usize) -> Arc<Self> {
        Arc::new(Self {
            total: total.max(1),
            per_token: per_token.max(1),
            running: Mutex::default(),
        })
    }

    /// How many queries run now.
    pub(crate) fn running(&self) -> usize {
        self.running.lock().total
    }

    /// A slot for one query of `token` (`None`: a local caller, counted in the total only), or
    /// a "busy" error naming the cap that is full.
    pub(crate) fn admit(self: &Arc<Self>, token: Option<&str>) -> Result<Permit, Error> {
        let mut running = self.running.lock();
        if running.total >= self.total {
            return Err(Error::Busy(format!(
                "{} queries are running on this node, the most query.max_concurrent allows",
                self.total
            )));
        }
        if let Some(token) = token {
            let count = running.by_token.entry(token.to_owned()).or_default();
            if *count >= self.per_token {
                return Err(Error::Busy(format!(
                    "this API token already runs {} queries, the most \
                     query.max_concurrent_per_token allows",
                    self.per_token
                )));
            }
            *count += 1;
        }
        running.total += 1;
        Ok(Permit {
            admission: Arc::clone(self),
            token: token.map(str::to_owned),
        })
    }
}

/// A running query's slot; given back when dropped.
pub(crate) struct Permit {
    admission: Arc<Admission>,
    token: Option<String>,
}

impl Drop for Permit {
    fn drop(&mut self) {
        let mut running = self.admission.running.lock();
        running.total = running.total.saturating_sub(1);
        if let Some(token) = &self.token
            && let Some(count) = running.by_token.get_mut(token)
        {
            *count -= 1;
            if *count == 0 {
                running.by_token.remove(token);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use datafusion::sql::sqlparser::dialect::GenericDialect;
    use datafusion::sql::sqlparser::parser::Parser;

    use super::*;

    fn depth_ok(sql: &str, limit: usize) -> bool {
        let statements = Parser::parse_sql(&GenericDialect {}, sql).expect("parses");
        check_depth(&statements[0], limit).is_ok()
    }

    #[test]
    fn nesting_is_measured_up_to_the_limit() {
        // `SELECT 1` is a query holding one expression: depth 2.
        assert!(depth_ok("SELECT 1", 2));
        assert!(!depth_ok("SELECT 1", 1));
        // n terms: n - 1 additions nested, plus the innermost literal.
        let sum = format!("SELECT {}", ["1"; 10].join("+"));
        assert!(depth_ok(&sum, 11));
        assert!(!depth_ok(&sum, 10));
        let chain = format!("SELECT * FROM t WHERE {}", vec!["a = 1"; 50].join(" OR "));
        assert!(depth_ok(&chain, 52));
        assert!(!depth_ok(&chain, 51));
    }

    #[test]
    fn text_longer_than_the_limit_is_refused() {
        assert!(check_text("SELECT 1", 8).is_ok());
        let err = check_text("SELECT 10", 8).unwrap_err();
        assert_eq!(
            err.to_string(),
            "the SQL text is 9 bytes, more than query.max_sql_length (8 bytes)"
        );
    }

    #[test]
    fn admission_caps_each_token_and_the_total() {
        let admission = Admission::new(3, 2);
        let a1 = admission.admit(Some("a")).expect("first of a");
        let _a2 = admission.admit(Some("a")).expect("second of a");
        let busy = admission.admit(Some("a")).err().expect("a is at its cap");
        assert!(busy.to_string().contains("query.max_concurrent_per_token"));
        let _b1 = admission.admit(Some("b")).expect("b has its own cap");
        let busy = admission.admit(None).err().expect("the node is at its cap");
        assert!(busy.to_string().contains("query.max_concurrent allows"));
        drop(a1);
        admission.admit(Some("a")).expect("a slot was given back");
    }
}
