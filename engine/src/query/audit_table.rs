//! The `audit_log` table: the audit log of the caller's organization (see
//! [`crate::people::audit`]), readable only with the `org:admin` scope. Sessions without the
//! scope do not have the table (catalogs do not list it), and a query naming it is refused with
//! the scope named rather than "table not found".

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::{ArrayRef, RecordBatch, StringArray, TimestampMicrosecondArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use datafusion::error::Result;

use super::stored_table::{StoredRows, external};

use crate::people::audit::{AuditEntry, read_entries};
use crate::store::Store;
use crate::tenancy::{Principal, Scope};

/// Whose audit log a session may read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuditView {
    /// None: reading the table is refused (the caller lacks `org:admin`).
    Denied,
    /// One organization's.
    Org(String),
    /// Every organization's (the admin token file, `faultline query` on the data directory).
    All,
}

impl AuditView {
    /// What `principal` may read: its organization's log with `org:admin`, else nothing.
    pub fn for_principal(principal: &Principal) -> Self {
        if principal.require(Scope::OrgAdmin).is_err() {
            return Self::Denied;
        }
        match &principal.org {
            Some(org) => Self::Org(org.clone()),
            None => Self::All,
        }
    }
}

/// True for DataFusion's "table ... not found" about `audit_log`.
pub(super) fn names_missing_audit_log(message: &str) -> bool {
    message.contains("audit_log") && message.contains("not found")
}

/// The refusal, found in the error chain and turned into a permission error.
#[derive(Debug)]
pub(super) struct AuditDenied;

impl fmt::Display for AuditDenied {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("audit_log needs the scope org:admin")
    }
}

impl std::error::Error for AuditDenied {}

pub(super) fn schema() -> SchemaRef {
    let text = |name: &str| Field::new(name, DataType::Utf8, true);
    Arc::new(Schema::new(vec![
        Field::new(
            "ts",
            DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
            false,
        ),
        Field::new("org", DataType::Utf8, false),
        Field::new("actor_type", DataType::Utf8, false),
        text("actor_id"),
        text("actor_label"),
        text("ip"),
        text("user_agent"),
        Field::new("event", DataType::Utf8, false),
        text("target_type"),
        text("target_id"),
        text("data"),
    ]))
}

fn batch(entries: &[AuditEntry]) -> Result<RecordBatch> {
    let text = |f: &dyn Fn(&AuditEntry) -> Option<String>| -> ArrayRef {
        Arc::new(StringArray::from(entries.iter().map(f).collect::<Vec<_>>()))
    };
    let ts = TimestampMicrosecondArray::from(
        entries
            .iter()
            .map(|e| e.ts.timestamp_micros())
            .collect::<Vec<_>>(),
    )
    .with_timezone("UTC");
    Ok(RecordBatch::try_new(
        schema(),
        vec![
            Arc::new(ts),
            text(&|e| Some(e.org.clone())),
            text(&|e| Some(e.actor_type.clone())),
            text(&|e| e.actor_id.clone()),
            text(&|e| e.actor_label.clone()),
            text(&|e| e.ip.clone()),
            text(&|e| e.user_agent.clone()),
            text(&|e| Some(e.event.clone())),
            text(&|e| e.target_type.clone()),
            text(&|e| e.target_id.clone()),
            text(&|e| (!e.data.is_null()).then(|| e.data.to_string())),
        ],
    )?)
}

/// The audit entries a session may read.
#[derive(Debug)]
pub(super) struct Audit {
    pub(super) store: Store,
    pub(super) view: AuditView,
}

#[async_trait]
impl StoredRows for Audit {
    fn schema(&self) -> SchemaRef {
        schema()
    }

    async fn read(&self) -> Result<RecordBatch> {
        let org = match &self.view {
            AuditView::Denied => return Err(external(AuditDenied)),
            AuditView::Org(org) => Some(org.as_str()),
            AuditView::All => None,
        };
        let entries = read_entries(&self.store, org).await.map_err(external)?;
        batch(&entries)
    }
}
