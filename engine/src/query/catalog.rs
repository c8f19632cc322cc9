//! `information_schema` for every session, whatever the protocol: `tables`, `columns`,
//! `schemata` and (empty) `views`, describing one database `faultline`, one schema `public` and
//! the tables the session has (`events` and `issues`), with the column names the SQL standard
//! and PostgreSQL give them. DataFusion's `SHOW TABLES` and `SHOW COLUMNS FROM <table>` read
//! these tables, so they answer the same over HTTP, the CLI, PostgreSQL and Flight SQL.
//!
//! DataFusion's own `information_schema` (`datafusion.catalog.information_schema`) stays off: it
//! would add `df_settings`, the server's settings, which no session may read.

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, Int32Array, RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::catalog::{MemTable, MemorySchemaProvider, SchemaProvider, TableProvider};
use datafusion::error::{DataFusionError, Result};
use datafusion::prelude::SessionContext;

/// The database (DataFusion's catalog) and schema the tables are in.
pub const DATABASE: &str = "faultline";
pub const SCHEMA: &str = "public";

/// Adds `information_schema` to `ctx`, a session holding the registry's tables (`audit_log`
/// only when the session may read it).
pub(super) async fn register(ctx: &SessionContext) -> Result<()> {
    let mut tables = Vec::new();
    for name in super::tables::names() {
        if ctx.table_exist(name)? {
            tables.push((name.to_owned(), ctx.table_provider(name).await?.schema()));
        }
    }
    let catalog = ctx
        .catalog(DATABASE)
        .ok_or_else(|| DataFusionError::Internal(format!("no catalog {DATABASE}")))?;
    catalog.register_schema("information_schema", information_schema(&tables)?)?;
    Ok(())
}

/// The SQL type name (`information_schema.columns.data_type`) and PostgreSQL type name
/// (`udt_name`) of an Arrow type, as the PostgreSQL listener announces columns of that type.
pub fn sql_type(data_type: &DataType) -> (&'static str, &'static str) {
    match data_type {
        DataType::Int8 | DataType::Int16 | DataType::UInt8 => ("smallint", "int2"),
        DataType::Int32 | DataType::UInt16 => ("integer", "int4"),
        DataType::Int64 | DataType::UInt32 | DataType::UInt64 => ("bigint", "int8"),
        DataType::Float16 | DataType::Float32 => ("real", "float4"),
        DataType::Float64 => ("double precision", "float8"),
        DataType::Boolean => ("boolean", "bool"),
        DataType::Date32 | DataType::Date64 => ("date", "date"),
        DataType::Timestamp(_, Some(_)) => ("timestamp with time zone", "timestamptz"),
        DataType::Timestamp(_, None) => ("timestamp without time zone", "timestamp"),
        DataType::Dictionary(_, value) => sql_type(value),
        _ => ("text", "text"),
    }
}

/// The `information_schema` of `tables` (name and columns of each).
fn information_schema(tables: &[(String, SchemaRef)]) -> Result<Arc<dyn SchemaProvider>> {
    let utf8 = |name: &str| Field::new(name, DataType::Utf8, true);
    let strings = |values: Vec<String>| -> ArrayRef { Arc::new(StringArray::from(values)) };
    let repeat = |value: &str, n: usize| strings(vec![value.to_owned(); n]);
    let provider = MemorySchemaProvider::new();
    let n = tables.len();

    let schema = Arc::new(Schema::new(vec![
        utf8("table_catalog"),
        utf8("table_schema"),
        utf8("table_name"),
        utf8("table_type"),
    ]));
    let batch = RecordBatch::try_new(
        Arc::clone(&schema),
        vec![
            repeat(DATABASE, n),
            repeat(SCHEMA, n),
            strings(tables.iter().map(|(t, _)| t.clone()).collect()),
            repeat("BASE TABLE", n),
        ],
    )?;
    provider.register_table("tables".to_owned(), mem(schema, batch)?)?;

    let (mut table, mut column, mut position, mut nullable, mut data_type, mut udt) =
        (vec![], vec![], vec![], vec![], vec![], vec![]);
    for (name, fields) in tables {
        for (i, field) in fields.fields().iter().enumerate() {
            let (sql, pg) = sql_type(field.data_type());
            table.push(name.clone());
            column.push(field.name().clone());
            position.push(i32::try_from(i + 1).unwrap_or(i32::MAX));
            nullable.push(if field.is_nullable() { "YES" } else { "NO" }.to_owned());
            data_type.push(sql.to_owned());
            udt.push(pg.to_owned());
        }
    }
    let rows = table.len();
    let schema = Arc::new(Schema::new(vec![
        utf8("table_catalog"),
        utf8("table_schema"),
        utf8("table_name"),
        utf8("column_name"),
        Field::new("ordinal_position", DataType::Int32, false),
        utf8("column_default"),
        utf8("is_nullable"),
        utf8("data_type"),
        utf8("udt_name"),
    ]));
    let batch = RecordBatch::try_new(
        Arc::clone(&schema),
        vec![
            repeat(DATABASE, rows),
            repeat(SCHEMA, rows),
            strings(table),
            strings(column),
            Arc::new(Int32Array::from(position)),
            Arc::new(StringArray::from(vec![None::<&str>; rows])),
            strings(nullable),
            strings(data_type),
            strings(udt),
        ],
    )?;
    provider.register_table("columns".to_owned(), mem(schema, batch)?)?;

    let schema = Arc::new(Schema::new(vec![
        utf8("catalog_name"),
        utf8("schema_name"),
        utf8("schema_owner"),
    ]));
    let batch = RecordBatch::try_new(
        Arc::clone(&schema),
        vec![repeat(DATABASE, 1), repeat(SCHEMA, 1), repeat(DATABASE, 1)],
    )?;
    provider.register_table("schemata".to_owned(), mem(schema, batch)?)?;

    let schema = Arc::new(Schema::new(vec![
        utf8("table_catalog"),
        utf8("table_schema"),
        utf8("table_name"),
        utf8("view_definition"),
    ]));
    provider.register_table(
        "views".to_owned(),
        mem(Arc::clone(&schema), RecordBatch::new_empty(schema))?,
    )?;
    Ok(Arc::new(provider))
}

fn mem(schema: SchemaRef, batch: RecordBatch) -> Result<Arc<dyn TableProvider>> {
    Ok(Arc::new(MemTable::try_new(schema, vec![vec![batch]])?))
}

/// DataFusion's message for the `SHOW` forms that need its own `information_schema` (`SHOW
/// ALL`, `SHOW <setting>`, `SHOW FUNCTIONS`, `SHOW CREATE TABLE`) suggests turning on a setting
/// users cannot change; this says what there is instead. Other messages pass unchanged.
pub(super) fn plan_message(message: String) -> String {
    const SUFFIX: &str = " is not supported unless information_schema is enabled";
    match message.strip_suffix(SUFFIX) {
        Some(what) => format!(
            "{what} is not available: faultline has no settings or functions to list; \
             SHOW TABLES, SHOW COLUMNS FROM <table> and information_schema.tables / .columns \
             describe the tables"
        ),
        None => message,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_information_schema_has_the_tables_the_guard_allows() {
        let tables = [(
            "events".to_owned(),
            Arc::new(Schema::new(vec![Field::new("n", DataType::Int64, false)])),
        )];
        let provider = information_schema(&tables).unwrap();
        let mut names = provider.table_names();
        names.sort();
        assert_eq!(names, ["columns", "schemata", "tables", "views"]);
    }

    #[test]
    fn show_forms_without_a_table_say_what_there_is() {
        let message = plan_message(
            "SHOW [VARIABLE] is not supported unless information_schema is enabled".to_owned(),
        );
        assert!(
            message.starts_with("SHOW [VARIABLE] is not available"),
            "{message}"
        );
        assert!(!message.contains("enabled"), "{message}");
        assert_eq!(plan_message("other".to_owned()), "other");
    }
}
