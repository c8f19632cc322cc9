//! The `monitors` table: one row per monitor, read from the stored monitors when a query scans
//! it, scoped like `events` (a session sees the monitors of the projects it may read).

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::{
    ArrayRef, Int64Array, RecordBatch, StringArray, TimestampMillisecondArray,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use datafusion::error::Result;

use super::Monitor;
use super::config::MonitorConfig;
use crate::query::ProjectFilter;
use crate::query::stored_table::{StoredRows, external};
use crate::store::Store;

pub(crate) fn schema() -> SchemaRef {
    let time = |name: &str, nullable| {
        Field::new(
            name,
            DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
            nullable,
        )
    };
    let text = |name: &str, nullable| Field::new(name, DataType::Utf8, nullable);
    let int = |name: &str| Field::new(name, DataType::Int64, true);
    Arc::new(Schema::new(vec![
        Field::new("project_id", DataType::Int64, false),
        text("project", false),
        text("slug", false),
        text("status", false),
        text("schedule_type", true),
        text("schedule", true),
        text("timezone", true),
        int("checkin_margin"),
        int("max_runtime"),
        time("last_check_in", true),
        text("last_check_in_status", true),
        time("next_expected", true),
        int("in_progress"),
        text("environment", true),
        text("release", true),
        text("config", false),
        time("created", false),
        time("updated", false),
    ]))
}

fn batch(rows: &[Monitor]) -> Result<RecordBatch> {
    let configs: Vec<Option<MonitorConfig>> = rows
        .iter()
        .map(|m| MonitorConfig::parse(&m.config).ok())
        .collect();
    let text = |values: Vec<Option<String>>| -> ArrayRef { Arc::new(StringArray::from(values)) };
    let time = |values: Vec<Option<i64>>| -> ArrayRef {
        Arc::new(TimestampMillisecondArray::from(values).with_timezone("UTC"))
    };
    let int = |values: Vec<Option<i64>>| -> ArrayRef { Arc::new(Int64Array::from(values)) };
    Ok(RecordBatch::try_new(
        schema(),
        vec![
            int(rows.iter().map(|m| Some(m.project_id as i64)).collect()),
            text(rows.iter().map(|m| Some(m.project.clone())).collect()),
            text(rows.iter().map(|m| Some(m.slug.clone())).collect()),
            text(rows.iter().map(|m| Some(m.status.clone())).collect()),
            text(
                configs
                    .iter()
                    .map(|c| c.as_ref().map(|c| c.schedule.kind().to_owned()))
                    .collect(),
            ),
            text(
                configs
                    .iter()
                    .map(|c| c.as_ref().map(|c| c.schedule.text()))
                    .collect(),
            ),
            text(
                configs
                    .iter()
                    .map(|c| c.as_ref().map(|c| c.timezone.name().to_owned()))
                    .collect(),
            ),
            int(configs
                .iter()
                .map(|c| c.as_ref().map(|c| i64::from(c.checkin_margin)))
                .collect()),
            int(configs
                .iter()
                .map(|c| c.as_ref().map(|c| i64::from(c.max_runtime)))
                .collect()),
            time(
                rows.iter()
                    .map(|m| m.last_check_in.map(|t| t.timestamp_millis()))
                    .collect(),
            ),
            text(
                rows.iter()
                    .map(|m| m.last_check_in_status.clone())
                    .collect(),
            ),
            time(
                rows.iter()
                    .map(|m| m.next_expected.map(|t| t.timestamp_millis()))
                    .collect(),
            ),
            int(rows.iter().map(|m| Some(m.open.len() as i64)).collect()),
            text(rows.iter().map(|m| m.environment.clone()).collect()),
            text(rows.iter().map(|m| m.release.clone()).collect()),
            text(rows.iter().map(|m| Some(m.config.to_string())).collect()),
            time(
                rows.iter()
                    .map(|m| Some(m.created.timestamp_millis()))
                    .collect(),
            ),
            time(
                rows.iter()
                    .map(|m| Some(m.updated.timestamp_millis()))
                    .collect(),
            ),
        ],
    )?)
}

/// The stored monitors of the projects a session may read.
#[derive(Debug)]
pub(crate) struct Monitors {
    pub(crate) store: Store,
    pub(crate) projects: ProjectFilter,
}

#[async_trait]
impl StoredRows for Monitors {
    fn schema(&self) -> SchemaRef {
        schema()
    }

    async fn read(&self) -> Result<RecordBatch> {
        let rows = super::list(&self.store, &self.projects)
            .await
            .map_err(external)?;
        batch(&rows)
    }
}
