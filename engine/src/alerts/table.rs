//! The `alert_deliveries` table: one row per delivery attempt or suppression, read from the
//! outbox's attempt objects, scoped like `events` (a session sees the rows of the projects it
//! may read; test notifications, project 0, only with access to every project).

use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::{
    ArrayRef, Int64Array, RecordBatch, StringArray, TimestampMillisecondArray,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use datafusion::error::Result;
use object_store::path::Path as ObjectPath;

use super::outbox::{Attempt, project_prefix};
use crate::query::ProjectFilter;
use crate::query::stored_table::{StoredRows, external};
use crate::store::Store;

pub(crate) fn schema() -> SchemaRef {
    let ts = |name: &str, nullable| {
        Field::new(
            name,
            DataType::Timestamp(TimeUnit::Millisecond, Some("UTC".into())),
            nullable,
        )
    };
    let text = |name: &str| Field::new(name, DataType::Utf8, false);
    Arc::new(Schema::new(vec![
        ts("ts", false),
        Field::new("org", DataType::Utf8, false),
        Field::new("project_id", DataType::Int64, false),
        text("project"),
        text("rule"),
        text("channel"),
        text("kind"),
        Field::new("issue_id", DataType::Int64, false),
        text("trigger"),
        text("delivery_id"),
        Field::new("attempt", DataType::Int64, false),
        text("status"),
        Field::new("response_code", DataType::Int64, true),
        Field::new("error", DataType::Utf8, true),
        ts("next_attempt", true),
    ]))
}

pub(crate) fn batch(rows: &[Attempt]) -> Result<RecordBatch> {
    let text = |f: &dyn Fn(&Attempt) -> &str| -> ArrayRef {
        Arc::new(StringArray::from_iter_values(rows.iter().map(f)))
    };
    Ok(RecordBatch::try_new(
        schema(),
        vec![
            Arc::new(
                TimestampMillisecondArray::from_iter_values(
                    rows.iter().map(|r| r.at.timestamp_millis()),
                )
                .with_timezone("UTC"),
            ),
            text(&|r| &r.org),
            Arc::new(Int64Array::from_iter_values(
                rows.iter().map(|r| r.project_id as i64),
            )),
            text(&|r| &r.project),
            text(&|r| &r.rule),
            text(&|r| &r.channel),
            text(&|r| &r.kind),
            Arc::new(Int64Array::from_iter_values(
                rows.iter().map(|r| r.issue_id),
            )),
            text(&|r| &r.trigger),
            text(&|r| &r.delivery_id),
            Arc::new(Int64Array::from_iter_values(
                rows.iter().map(|r| i64::from(r.attempt)),
            )),
            text(&|r| r.status.as_str()),
            Arc::new(Int64Array::from_iter(
                rows.iter().map(|r| r.response_code.map(i64::from)),
            )),
            Arc::new(StringArray::from_iter(
                rows.iter().map(|r| r.error.as_deref()),
            )),
            Arc::new(
                TimestampMillisecondArray::from_iter(
                    rows.iter()
                        .map(|r| r.next_attempt.map(|t| t.timestamp_millis())),
                )
                .with_timezone("UTC"),
            ),
        ],
    )?)
}

/// Every attempt the filter allows, oldest first.
pub(crate) async fn read_attempts(
    store: &Store,
    projects: &ProjectFilter,
) -> crate::store::Result<Vec<Attempt>> {
    let listing = match projects {
        ProjectFilter::All => store.list(&ObjectPath::from("alerts")).await?,
        ProjectFilter::Only(ids) => {
            let mut listing = Vec::new();
            for id in ids.iter() {
                listing.extend(store.list(&project_prefix(*id)).await?);
            }
            listing
        }
    };
    let mut rows = Vec::new();
    for meta in listing {
        let is_attempt = meta
            .location
            .parts()
            .nth(2)
            .is_some_and(|p| p.as_ref() == "attempts");
        if !is_attempt || !meta.location.as_ref().starts_with("alerts/project=") {
            continue;
        }
        let attempt: Attempt = store.get_json(&meta.location).await?;
        if projects.allows(attempt.project_id) {
            rows.push(attempt);
        }
    }
    rows.sort_by(|a, b| (a.at, &a.delivery_id, a.attempt).cmp(&(b.at, &b.delivery_id, b.attempt)));
    Ok(rows)
}

/// The delivery attempts of the projects a session may read.
#[derive(Debug)]
pub(crate) struct Deliveries {
    pub(crate) store: Store,
    pub(crate) projects: ProjectFilter,
}

#[async_trait]
impl StoredRows for Deliveries {
    fn schema(&self) -> SchemaRef {
        schema()
    }

    async fn read(&self) -> Result<RecordBatch> {
        let rows = read_attempts(&self.store, &self.projects)
            .await
            .map_err(external)?;
        batch(&rows)
    }
}
