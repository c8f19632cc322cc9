//! The catalog PostgreSQL drivers and BI tools introspect, added to the session of each query on
//! the PostgreSQL listener: `pg_catalog` (from `datafusion-pg-catalog`; every session has
//! `information_schema`, see `query::catalog`), and the functions their introspection queries call (`version()`,
//! `current_schema()`, `current_setting()`, `format_type()`, `has_table_privilege()`, ...).
//!
//! What the catalog lists is built here, not read from DataFusion's catalog: one database
//! `faultline`, one schema `public`, the tables `events` and `issues` with the columns the
//! token's session has. The rows of `pg_type`, `pg_proc` and the other static tables are
//! PostgreSQL's own built-in definitions. Nothing names another tenant, a file or a setting of
//! the server; the plan guard (`query::guard`) lets only these schemas' tables through.

use std::sync::{Arc, LazyLock, OnceLock};

use async_trait::async_trait;
use datafusion::arrow::array::StringArray;
use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::datasource::TableType;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::SessionStateBuilder;
use datafusion::logical_expr::{
    ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, TypeSignature,
    Volatility,
};
use datafusion::prelude::SessionContext;
use datafusion::scalar::ScalarValue;
use datafusion_pg_catalog::pg_catalog::catalog_info::CatalogInfo;
use datafusion_pg_catalog::pg_catalog::context::EmptyContextProvider;
use datafusion_pg_catalog::pg_catalog::oid_type_planner::PgOidTypePlanner;
use datafusion_pg_catalog::pg_catalog::{
    self as pg, PgCatalogSchemaProvider, PgCatalogStaticTables, array_bounds_udf, format_type,
    has_privilege_udf, pg_get_expr_udf, quote_ident_udf,
};

use super::session::Settings;

/// The database name clients see.
pub(super) const DATABASE: &str = "faultline";
const SCHEMA: &str = "public";

/// PostgreSQL's built-in catalog rows, decoded once per process.
static STATIC_TABLES: LazyLock<Result<Arc<PgCatalogStaticTables>, String>> = LazyLock::new(|| {
    PgCatalogStaticTables::try_new()
        .map(Arc::new)
        .map_err(|e| e.to_string())
});

type PgCatalog = PgCatalogSchemaProvider<Listed, EmptyContextProvider>;

/// One `pg_catalog` for the process. It assigns oids to the tables as its tables are first read
/// and keeps them, so `pg_class.oid` in one query is `pg_attribute.attrelid` in the next (psql's
/// `\d events` looks the table up, then its columns). Sharing it between tokens is safe: it holds
/// the tables' names and column types, which are the same for every tenant, and no rows.
static PG_CATALOG: OnceLock<Arc<PgCatalog>> = OnceLock::new();

fn pg_catalog(tables: &Listed) -> Result<Arc<PgCatalog>> {
    if let Some(catalog) = PG_CATALOG.get() {
        return Ok(Arc::clone(catalog));
    }
    let statics = STATIC_TABLES
        .as_ref()
        .map_err(|e| DataFusionError::Internal(format!("pg_catalog tables: {e}")))?;
    let catalog = PgCatalogSchemaProvider::try_new(
        tables.clone(),
        Arc::clone(statics),
        EmptyContextProvider,
    )?;
    Ok(Arc::clone(PG_CATALOG.get_or_init(|| Arc::new(catalog))))
}

/// Adds the catalog schemas and functions to `ctx`, a session from `QueryService::session`.
pub(super) async fn register(ctx: &SessionContext, settings: &Settings) -> Result<()> {
    let tables = Listed(Arc::new(crate::sqlwire::table_schemas(ctx).await?));
    let catalog = ctx
        .catalog(DATABASE)
        .ok_or_else(|| DataFusionError::Internal("no faultline catalog".to_owned()))?;
    catalog.register_schema("pg_catalog", pg_catalog(&tables)?)?;

    for udf in [
        pg::create_current_database_udf(DATABASE),
        pg::create_current_schema_udf(),
        pg::create_current_schemas_udf(),
        pg::create_pg_get_userbyid_udf(),
        pg::create_pg_table_is_visible(),
        pg::create_session_user_udf(),
        pg::create_pg_encoding_to_char_udf(),
        pg::create_pg_backend_pid_udf(),
        pg::create_pg_get_constraintdef(),
        has_privilege_udf::create_has_privilege_udf("has_table_privilege"),
        has_privilege_udf::create_has_privilege_udf("has_schema_privilege"),
        has_privilege_udf::create_has_privilege_udf("has_database_privilege"),
        has_privilege_udf::create_has_privilege_udf("has_any_column_privilege"),
        format_type::create_format_type_udf(),
        pg_get_expr_udf::create_pg_get_expr_udf(),
        quote_ident_udf::create_quote_ident_udf(),
        quote_ident_udf::create_parse_ident_udf(),
        array_bounds_udf::create_array_upper_udf(),
        array_bounds_udf::create_array_lower_udf(),
    ] {
        ctx.register_udf(udf);
    }
    let version = format!(
        "PostgreSQL {} on faultline, compatible with the PostgreSQL 16 wire protocol",
        super::SERVER_VERSION
    );
    for (name, arities, value) in [
        ("version", vec![0], ScalarValue::Utf8(Some(version))),
        ("to_regtype", vec![1], ScalarValue::Int32(None)),
        ("to_regclass", vec![1], ScalarValue::Int32(None)),
        (
            "pg_type_is_visible",
            vec![1],
            ScalarValue::Boolean(Some(true)),
        ),
        ("obj_description", vec![1, 2], ScalarValue::Utf8(None)),
        ("col_description", vec![2], ScalarValue::Utf8(None)),
        ("shobj_description", vec![2], ScalarValue::Utf8(None)),
        ("pg_get_serial_sequence", vec![2], ScalarValue::Utf8(None)),
    ] {
        ctx.register_udf(ScalarUDF::new_from_impl(Constant::new(
            name, arities, value,
        )));
    }
    ctx.register_udf(ScalarUDF::new_from_impl(CurrentSetting::new(settings)));

    // `regclass`, `regtype`, `oid` and friends as type names in casts.
    let state = ctx.state_ref();
    let existing = state.read().clone();
    *state.write() = SessionStateBuilder::new_from_existing(existing)
        .with_type_planner(Arc::new(PgOidTypePlanner))
        .build();
    Ok(())
}

/// The database, schema and tables the catalog lists.
#[derive(Debug, Clone)]
struct Listed(Arc<Vec<(String, SchemaRef)>>);

impl Listed {
    fn schema_of(&self, catalog: &str, schema: &str, table: &str) -> Option<SchemaRef> {
        (catalog == DATABASE && schema == SCHEMA)
            .then(|| self.0.iter().find(|(name, _)| name == table))
            .flatten()
            .map(|(_, s)| Arc::clone(s))
    }
}

#[async_trait]
impl CatalogInfo for Listed {
    async fn catalog_names(&self) -> Result<Vec<String>> {
        Ok(vec![DATABASE.to_owned()])
    }

    async fn schema_names(&self, catalog: &str) -> Result<Option<Vec<String>>> {
        Ok((catalog == DATABASE).then(|| vec![SCHEMA.to_owned()]))
    }

    async fn table_names(&self, catalog: &str, schema: &str) -> Result<Option<Vec<String>>> {
        Ok((catalog == DATABASE && schema == SCHEMA)
            .then(|| self.0.iter().map(|(name, _)| name.clone()).collect()))
    }

    async fn table_schema(
        &self,
        catalog: &str,
        schema: &str,
        table: &str,
    ) -> Result<Option<SchemaRef>> {
        Ok(self.schema_of(catalog, schema, table))
    }

    async fn table_type(
        &self,
        catalog: &str,
        schema: &str,
        table: &str,
    ) -> Result<Option<TableType>> {
        // `issues` is a view inside, but clients list and query it as a table.
        Ok(self
            .schema_of(catalog, schema, table)
            .map(|_| TableType::Base))
    }
}

/// A function of fixed value that catalog queries call (`version()`, `obj_description(..)`).
#[derive(Debug, PartialEq, Eq, Hash)]
struct Constant {
    name: &'static str,
    signature: Signature,
    value: ScalarValue,
}

impl Constant {
    fn new(name: &'static str, arities: Vec<usize>, value: ScalarValue) -> Self {
        let forms = arities
            .into_iter()
            .map(|n| {
                if n == 0 {
                    TypeSignature::Nullary
                } else {
                    TypeSignature::Any(n)
                }
            })
            .collect();
        Self {
            name,
            signature: Signature::one_of(forms, Volatility::Stable),
            value,
        }
    }
}

impl ScalarUDFImpl for Constant {
    fn name(&self) -> &str {
        self.name
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> Result<DataType> {
        Ok(self.value.data_type())
    }

    fn invoke_with_args(&self, _args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        Ok(ColumnarValue::Scalar(self.value.clone()))
    }
}

/// `current_setting(name [, missing_ok])`: this connection's settings (see `session`).
#[derive(Debug, PartialEq, Eq, Hash)]
struct CurrentSetting {
    settings: Vec<(String, String)>,
    signature: Signature,
}

impl CurrentSetting {
    fn new(settings: &Settings) -> Self {
        Self {
            settings: settings
                .all()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
            signature: Signature::one_of(
                vec![
                    TypeSignature::Exact(vec![DataType::Utf8]),
                    TypeSignature::Exact(vec![DataType::Utf8, DataType::Boolean]),
                ],
                Volatility::Stable,
            ),
        }
    }

    fn get(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.settings
            .iter()
            .find(|(k, _)| *k == name)
            .map(|(_, v)| v.as_str())
    }
}

impl ScalarUDFImpl for CurrentSetting {
    fn name(&self) -> &str {
        "current_setting"
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _args: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let rows = args.number_rows;
        let names = args.args[0].to_array(rows)?;
        let names = names
            .as_any()
            .downcast_ref::<StringArray>()
            .ok_or_else(|| DataFusionError::Plan("current_setting takes a text name".to_owned()))?;
        let values: StringArray = names
            .iter()
            .map(|name| name.and_then(|n| self.get(n)))
            .collect();
        Ok(ColumnarValue::Array(Arc::new(values)))
    }
}

#[cfg(test)]
mod tests {
    use crate::query::catalog::sql_type;

    use super::super::encode::pg_type;

    #[test]
    fn information_schema_names_the_types_the_wire_announces() {
        for schema in [
            crate::events::schema(),
            crate::issues::summary::issues_schema(),
        ] {
            for field in schema.fields() {
                let (_, udt) = sql_type(field.data_type());
                assert_eq!(udt, pg_type(field.data_type()).name(), "{}", field.name());
            }
        }
    }
}
