//! `GET /organizations/{org}/sql/?sql=…`: the SQL console. The statement is in the URL, so a
//! query is a link; it runs through [`crate::query::QueryService`] like `POST /api/sql`, and its
//! downloads are the API's formats.

use std::sync::Arc;

use askama::Template;
use axum::Extension;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use datafusion::arrow::array::{Array, AsArray};
use datafusion::arrow::compute::cast;
use datafusion::arrow::datatypes::{DataType, Float64Type, Int64Type, TimeUnit};
use serde::Deserialize;

use super::{OrgCtx, Table, WebError, WebState, encode, encode_path, html};
use crate::api::ApiError;
use crate::query::format::{self, Format};
use crate::query::{QueryOutput, saved};
use crate::tenancy::Principal;

/// Rows shown on the page; downloads carry all (within `query.max_rows`).
const SHOWN_ROWS: usize = 500;
/// Points the chart draws at most.
const CHART_POINTS: usize = 2_000;

const EXAMPLE: &str = "SELECT date_trunc('hour', timestamp) AS hour, count(*) AS events\n\
FROM events\nWHERE timestamp >= now() - INTERVAL '24 hours'\nGROUP BY 1\nORDER BY 1";

#[derive(Debug, Default, Deserialize)]
pub(crate) struct ConsoleParams {
    sql: Option<String>,
    format: Option<String>,
}

pub(crate) struct SchemaTable {
    pub(crate) name: String,
    pub(crate) columns: Vec<(String, String)>,
}

pub(crate) struct Download {
    pub(crate) label: &'static str,
    pub(crate) href: String,
}

#[derive(Template)]
#[template(path = "console.html")]
struct ConsolePage {
    layout: super::Layout,
    sql: String,
    ran: bool,
    schema: Vec<SchemaTable>,
    result: Table,
    error: String,
    status: u16,
    downloads: Vec<Download>,
    chart: String,
    capped: bool,
    /// Some cells were cut to [`SHOWN_CELL`] characters.
    shortened: bool,
    /// The organization's saved queries: (name, link that runs it, delete action, who).
    saved: Vec<SavedLink>,
    /// Where the save form posts.
    save_action: String,
}

pub(crate) struct SavedLink {
    pub(crate) name: String,
    pub(crate) href: String,
    pub(crate) delete: String,
    pub(crate) by: String,
}

/// Characters of one cell the page shows; downloads carry whole values.
const SHOWN_CELL: usize = 2_000;

/// Cuts cells longer than [`SHOWN_CELL`] characters; true if any was.
fn shorten(table: &mut Table) -> bool {
    let mut any = false;
    for cell in table.rows.iter_mut().flatten().flatten() {
        if let Some((cut, _)) = cell.char_indices().nth(SHOWN_CELL) {
            cell.truncate(cut);
            cell.push('…');
            any = true;
        }
    }
    any
}

/// The tables and columns the session's catalog has.
async fn schema(session: &super::Session<'_>) -> Result<Vec<SchemaTable>, WebError> {
    let t = session
        .table(
            "SELECT table_name, column_name, data_type FROM information_schema.columns \
             ORDER BY table_name, ordinal_position",
        )
        .await?;
    let mut out: Vec<SchemaTable> = Vec::new();
    for r in 0..t.rows.len() {
        let name = t.text(r, "table_name");
        if out.last().is_none_or(|s| s.name != name) {
            out.push(SchemaTable {
                name: name.clone(),
                columns: Vec::new(),
            });
        }
        if let Some(table) = out.last_mut() {
            table
                .columns
                .push((t.text(r, "column_name"), t.text(r, "data_type")));
        }
    }
    Ok(out)
}

/// A line chart of the first numeric column over the first time column, when there are both.
fn chart(output: &QueryOutput) -> Result<String, WebError> {
    let fields = output.schema.fields();
    let time = fields.iter().position(|f| {
        matches!(
            f.data_type(),
            DataType::Timestamp(..) | DataType::Date32 | DataType::Date64
        )
    });
    let value = fields.iter().position(|f| f.data_type().is_numeric());
    let (Some(time), Some(value)) = (time, value) else {
        return Ok(String::new());
    };
    let encode_err = |e: datafusion::arrow::error::ArrowError| {
        WebError::from(crate::query::Error::Encode(e.to_string()))
    };
    let mut points = Vec::new();
    for batch in &output.batches {
        let millis = cast(
            &cast(
                batch.column(time),
                &DataType::Timestamp(TimeUnit::Millisecond, None),
            )
            .map_err(encode_err)?,
            &DataType::Int64,
        )
        .map_err(encode_err)?;
        let values = cast(batch.column(value), &DataType::Float64).map_err(encode_err)?;
        let (millis, values) = (
            millis.as_primitive::<Int64Type>(),
            values.as_primitive::<Float64Type>(),
        );
        for i in 0..batch.num_rows() {
            if millis.is_valid(i) && values.is_valid(i) && points.len() < CHART_POINTS {
                points.push((millis.value(i), values.value(i)));
            }
        }
    }
    if points.len() < 2 {
        return Ok(String::new());
    }
    let label = format!("{} over {}", fields[value].name(), fields[time].name());
    Ok(super::svg::line(&mut points, 720, 220, label).render()?)
}

pub(crate) async fn page(
    State(state): State<WebState>,
    Extension(principal): Extension<Arc<Principal>>,
    Path(org): Path<String>,
    Query(params): Query<ConsoleParams>,
) -> Result<Response, WebError> {
    let ctx = OrgCtx::new(&state, principal, org).await?;
    let session = ctx.session(&state.node.query).await?;
    let schema = schema(&session).await?;
    let sql = params.sql.clone().unwrap_or_default();
    let ran = !sql.trim().is_empty();
    let mut result = Table::default();
    let mut error = String::new();
    let mut status = 200;
    let mut chart_svg = String::new();
    let mut shortened = false;
    if ran {
        let output = session.run(&sql).await;
        crate::metrics::record_query("http", &output);
        match output {
            Ok(output) => {
                result = Table::from_output(&output, SHOWN_ROWS)?;
                shortened = shorten(&mut result);
                // A result that cannot be drawn still shows as a table.
                chart_svg = chart(&output).unwrap_or_else(|err| {
                    tracing::debug!(cause = %err, "no chart for the result");
                    String::new()
                });
            }
            Err(err) => {
                let err = WebError::Api(ApiError::from(err));
                status = err.status().as_u16();
                error = err.detail();
            }
        }
    }
    let base = format!("/organizations/{}/sql/", encode_path(&ctx.org));
    let downloads = if ran && error.is_empty() {
        ["csv", "json", "arrow"]
            .into_iter()
            .zip(["CSV", "JSON", "Arrow"])
            .map(|(format, label)| Download {
                label,
                href: format!("{base}download/?format={format}&sql={}", encode(&sql)),
            })
            .collect()
    } else {
        Vec::new()
    };
    let saved = saved::list(&state.node.store, &ctx.org)
        .await
        .map_err(ApiError::from)?
        .into_iter()
        .map(|q| SavedLink {
            href: format!("{base}?sql={}", encode(&q.sql)),
            delete: format!("{base}saved/{}/delete/", q.id),
            name: q.name,
            by: q.by,
        })
        .collect();
    let page = ConsolePage {
        saved,
        save_action: format!("{base}saved/"),
        layout: ctx.layout("SQL".to_owned(), "sql", ""),
        sql: if ran { sql } else { EXAMPLE.to_owned() },
        ran,
        schema,
        capped: result.total > result.rows.len(),
        shortened,
        result,
        error,
        status,
        downloads,
        chart: chart_svg,
    };
    let mut response = html(&page)?;
    *response.status_mut() =
        axum::http::StatusCode::from_u16(status).unwrap_or(axum::http::StatusCode::OK);
    Ok(response)
}

/// `GET /organizations/{org}/sql/download/?format=csv|json|arrow&sql=…`: the result as a file,
/// in the formats of `POST /api/sql`; errors are the API's JSON.
pub(crate) async fn download(
    State(state): State<WebState>,
    Extension(principal): Extension<Arc<Principal>>,
    Path(org): Path<String>,
    Query(params): Query<ConsoleParams>,
) -> Result<Response, ApiError> {
    let format: Format = params
        .format
        .as_deref()
        .unwrap_or("csv")
        .parse()
        .map_err(ApiError::BadRequest)?;
    let sql = params.sql.unwrap_or_default();
    if sql.trim().is_empty() {
        return Err(ApiError::BadRequest(
            "the sql parameter holds no SQL".to_owned(),
        ));
    }
    let ctx = OrgCtx::new(&state, principal, org)
        .await
        .map_err(|e| match e {
            WebError::Api(api) => api,
            other => ApiError::NotFound(other.to_string()),
        })?;
    let output = state
        .node
        .query
        .run_as(Some(&ctx.principal.token_id), &ctx.filter, &sql)
        .await;
    crate::metrics::record_query("http", &output);
    let bytes = format::encode(&output?, format)?;
    let extension = match format {
        Format::Csv => "csv",
        Format::Json => "json",
        Format::Arrow => "arrow",
        Format::Table => "txt",
    };
    let mut response = bytes.into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(format.content_type()),
    );
    if let Ok(value) = HeaderValue::from_str(&format!(
        "attachment; filename=\"faultline-query.{extension}\""
    )) {
        headers.insert(header::CONTENT_DISPOSITION, value);
    }
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

/// `POST /organizations/{org}/sql/saved/`: form `name` and `sql`; keeps the query for the
/// organization and opens it.
pub(crate) async fn save(
    State(state): State<WebState>,
    Extension(principal): Extension<Arc<Principal>>,
    actor: Option<Extension<crate::people::Actor>>,
    Path(org): Path<String>,
    body: axum::body::Bytes,
) -> Result<Response, WebError> {
    let ctx = OrgCtx::new(&state, principal, org).await?;
    ctx.principal
        .require(crate::tenancy::Scope::EventRead)
        .map_err(ApiError::from)?;
    let fields = super::stream::form(&body);
    let get = |name: &str| {
        fields
            .iter()
            .find(|(k, _)| k == name)
            .map_or("", |(_, v)| v.as_str())
    };
    let by = actor.map_or_else(|| ctx.principal.name.clone(), |Extension(a)| a.email);
    let query = saved::save(&state.node.store, &ctx.org, get("name"), get("sql"), &by)
        .await
        .map_err(ApiError::from)?;
    let base = format!("/organizations/{}/sql/", encode_path(&ctx.org));
    Ok(axum::response::Redirect::to(&format!("{base}?sql={}", encode(&query.sql))).into_response())
}

/// `POST /organizations/{org}/sql/saved/{id}/delete/`: forgets a saved query.
pub(crate) async fn delete(
    State(state): State<WebState>,
    Extension(principal): Extension<Arc<Principal>>,
    Path((org, id)): Path<(String, String)>,
) -> Result<Response, WebError> {
    let ctx = OrgCtx::new(&state, principal, org).await?;
    ctx.principal
        .require(crate::tenancy::Scope::EventRead)
        .map_err(ApiError::from)?;
    saved::delete(&state.node.store, &ctx.org, &id)
        .await
        .map_err(ApiError::from)?;
    let base = format!("/organizations/{}/sql/", encode_path(&ctx.org));
    Ok(axum::response::Redirect::to(&base).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_cells_are_cut_on_a_character_boundary() {
        let mut table = Table {
            columns: vec!["a".into()],
            rows: vec![
                vec![Some("é".repeat(SHOWN_CELL + 1))],
                vec![Some("é".repeat(SHOWN_CELL))],
                vec![None],
            ],
            total: 3,
        };
        assert!(shorten(&mut table));
        assert_eq!(
            table.rows[0][0].as_deref(),
            Some(format!("{}…", "é".repeat(SHOWN_CELL)).as_str())
        );
        assert_eq!(
            table.rows[1][0].as_deref().map(|c| c.chars().count()),
            Some(SHOWN_CELL)
        );
    }
}
