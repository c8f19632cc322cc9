//! Flight SQL's metadata calls: one catalog `faultline`, one schema `public`, the tables
//! `events` and `issues` with the columns of the token's session (`GetCatalogs`,
//! `GetDbSchemas`, `GetTables`, `GetTableTypes`), and what the server is (`GetSqlInfo`). The
//! `arrow-flight` builders apply the clients' filters.

use std::sync::LazyLock;

use arrow_flight::error::FlightError;
use arrow_flight::sql::metadata::{SqlInfoData, SqlInfoDataBuilder};
use arrow_flight::sql::{
    CommandGetCatalogs, CommandGetDbSchemas, CommandGetTableTypes, CommandGetTables, SqlInfo,
};
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;

const CATALOG: &str = "faultline";
const SCHEMA: &str = "public";
const TABLE_TYPE: &str = "TABLE";

/// `GetSqlInfo`: name, version, and that it is read-only.
pub(super) static SQL_INFO: LazyLock<SqlInfoData> = LazyLock::new(|| {
    let mut builder = SqlInfoDataBuilder::new();
    builder.append(SqlInfo::FlightSqlServerName, "faultline");
    builder.append(SqlInfo::FlightSqlServerVersion, env!("CARGO_PKG_VERSION"));
    // The Arrow IPC format version (Schema.fbs MetadataVersion V5 is "1.3").
    builder.append(SqlInfo::FlightSqlServerArrowVersion, "1.3");
    builder.append(SqlInfo::FlightSqlServerReadOnly, true);
    builder.append(SqlInfo::FlightSqlServerSql, true);
    builder.append(SqlInfo::FlightSqlServerSubstrait, false);
    builder.append(SqlInfo::FlightSqlServerTransaction, 0_i32);
    builder.append(SqlInfo::FlightSqlServerCancel, false);
    builder.build().expect("static SqlInfo is valid")
});

pub(super) fn catalogs(query: CommandGetCatalogs) -> Result<RecordBatch, FlightError> {
    let mut builder = query.into_builder();
    builder.append(CATALOG);
    builder.build()
}

pub(super) fn schemas(query: CommandGetDbSchemas) -> Result<RecordBatch, FlightError> {
    let mut builder = query.into_builder();
    builder.append(CATALOG, SCHEMA);
    builder.build()
}

pub(super) fn table_types(query: CommandGetTableTypes) -> Result<RecordBatch, FlightError> {
    let mut builder = query.into_builder();
    builder.append(TABLE_TYPE);
    builder.build()
}

/// `tables`: the token's tables and their columns (see `sqlwire::table_schemas`).
pub(super) fn tables(
    query: CommandGetTables,
    tables: &[(String, SchemaRef)],
) -> Result<RecordBatch, FlightError> {
    let mut builder = query.into_builder();
    for (name, schema) in tables {
        builder.append(CATALOG, SCHEMA, name, TABLE_TYPE, schema)?;
    }
    builder.build()
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use datafusion::arrow::datatypes::{DataType, Field, Schema};

    use super::*;

    #[test]
    fn filters_apply_to_the_listed_tables() {
        let events: SchemaRef =
            Arc::new(Schema::new(vec![Field::new("title", DataType::Utf8, true)]));
        let listed = [
            ("events".to_owned(), Arc::clone(&events)),
            ("issues".to_owned(), events),
        ];
        let query = CommandGetTables {
            table_name_filter_pattern: Some("ev%".to_owned()),
            include_schema: true,
            ..Default::default()
        };
        let batch = tables(query, &listed).unwrap();
        assert_eq!(batch.num_rows(), 1);
        assert_eq!(batch.num_columns(), 5, "table_schema is included");
    }
}
