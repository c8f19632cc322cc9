//! The check every plan passes before it runs.
//!
//! Two layers, as InfluxDB 3 does it: DataFusion's `SQLOptions` refuse DDL (`CREATE [EXTERNAL]
//! TABLE`, `CREATE VIEW`, `DROP`), DML (`INSERT`, `UPDATE`, `DELETE`, `COPY`) and statements
//! (`SET`, transactions); then a walk over the whole plan, subqueries included, refuses anything
//! that is not a read of the session's own tables. The session holds nothing else, so this is
//! defence in depth: a DataFusion upgrade that adds a way to reach files or settings is refused
//! here before it can run.

use datafusion::common::TableReference;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::error::DataFusionError;
use datafusion::logical_expr::LogicalPlan;
use datafusion::prelude::SQLOptions;
use datafusion_pg_catalog::pg_catalog::PG_CATALOG_TABLES;

use super::{Error, Result};

/// The tables of schema `information_schema` every session has ([`super::catalog`]), built to
/// describe the session's tables ([`super::tables::TABLES`]) only. Sessions of the PostgreSQL listener also hold
/// `pg_catalog` (`sqlwire::postgres::catalog`); other sessions do not, so naming one there fails
/// as an unknown table. DataFusion's `df_settings` is never one of them.
const INFORMATION_SCHEMA_TABLES: [&str; 4] = ["tables", "columns", "schemata", "views"];

/// True when a scan of `table` reads a table this module allows.
fn allowed(table: &TableReference) -> bool {
    match table.schema() {
        None | Some("public") => super::tables::names().any(|t| t == table.table()),
        Some("pg_catalog") => PG_CATALOG_TABLES.contains(&table.table()),
        Some("information_schema") => INFORMATION_SCHEMA_TABLES.contains(&table.table()),
        Some(_) => false,
    }
}

/// Refuses a plan that is not a read-only query over [`TABLES`] (or the catalog tables).
pub(super) fn check(plan: &LogicalPlan) -> Result<()> {
    SQLOptions::new()
        .with_allow_ddl(false)
        .with_allow_dml(false)
        .with_allow_statements(false)
        .verify_plan(plan)
        .map_err(|e| Error::Refused(refusal(e)))?;
    let mut refused = None;
    plan.apply_with_subqueries(|node| {
        let problem = match node {
            LogicalPlan::TableScan(scan) if !allowed(&scan.table_name) => {
                Some(format!("table {} cannot be read", scan.table_name))
            }
            LogicalPlan::Ddl(_) | LogicalPlan::Dml(_) | LogicalPlan::Copy(_) => {
                Some("only queries are allowed".to_owned())
            }
            LogicalPlan::Statement(_) => Some("only queries are allowed".to_owned()),
            LogicalPlan::Extension(ext) => {
                Some(format!("plan node {} is not allowed", ext.node.name()))
            }
            _ => None,
        };
        if let Some(problem) = problem {
            refused = Some(problem);
            return Ok(TreeNodeRecursion::Stop);
        }
        Ok(TreeNodeRecursion::Continue)
    })
    .map_err(|e| Error::Refused(refusal(e)))?;
    match refused {
        Some(problem) => Err(Error::Refused(problem)),
        None => Ok(()),
    }
}

/// DataFusion's message without its "Error during planning:" decoration.
fn refusal(err: DataFusionError) -> String {
    match err.find_root() {
        DataFusionError::Plan(message) => message.clone(),
        other => other.to_string(),
    }
}
