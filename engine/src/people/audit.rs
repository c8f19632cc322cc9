//! The audit log: one entry per change of membership, role, team, token, key, MFA, password or
//! session, issue state change, and every login (success and failure) and logout.
//!
//! Entries are append-only: each is its own object, `meta/audit/<org>/<time>-<ulid>.json`,
//! written with a create-only (conditional) write and never rewritten. Event names follow
//! Sentry's audit-log `api_name`s where Sentry has one (`member.invite`, `member.edit`,
//! `team.create`, `api-key.create`, ...), and `user.login`, `user.login-failed`,
//! `user.logout`, `user.password.change`, `user.mfa.enable|disable`, `session.revoke`,
//! `issue.resolve|ignore|reopen` where it has none. Secrets (passwords, seeds, tokens) are never
//! written to it.

use bytes::Bytes;
use chrono::{DateTime, Utc};
use object_store::path::Path as ObjectPath;
use serde::{Deserialize, Serialize};

use super::{Clock, Result};
use crate::store::Store;

const PREFIX: &str = "meta/audit";

/// One audit-log row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditEntry {
    pub ts: DateTime<Utc>,
    pub org: String,
    /// `user`, `token` or `system`.
    pub actor_type: String,
    pub actor_id: Option<String>,
    /// Email of a user, name of a token.
    pub actor_label: Option<String>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub event: String,
    pub target_type: Option<String>,
    pub target_id: Option<String>,
    /// Details (never secrets).
    #[serde(default)]
    pub data: serde_json::Value,
}

/// Writes and reads the audit log.
pub struct Audit {
    store: Store,
    clock: Clock,
}

impl Audit {
    pub(super) fn new(store: Store, clock: Clock) -> Self {
        Self { store, clock }
    }

    /// The time entries are stamped with.
    pub fn now(&self) -> DateTime<Utc> {
        (self.clock)()
    }

    /// Appends an entry (a create-only write). A failure is logged, not returned: the change it
    /// records has already happened.
    pub async fn record(&self, entry: AuditEntry) {
        let org = if faultline_config::is_slug(&entry.org) {
            entry.org.clone()
        } else {
            "_unknown".to_owned()
        };
        let nanos = entry.ts.timestamp_nanos_opt().unwrap_or(0);
        let path = ObjectPath::from(format!(
            "{PREFIX}/{org}/{nanos:020}-{}.json",
            ulid::Ulid::new().to_string().to_lowercase()
        ));
        let data = serde_json::to_vec(&entry).expect("audit entry serializes");
        if let Err(err) = self.store.create_durable(&path, Bytes::from(data)).await {
            tracing::error!(cause = %err, event = %entry.event, org = %entry.org,
                "cannot write an audit-log entry");
        } else {
            tracing::info!(event = %entry.event, org = %entry.org,
                actor = entry.actor_label.as_deref().unwrap_or("-"),
                target = entry.target_id.as_deref().unwrap_or("-"), "audit");
        }
    }

    /// The entries of `org` (every organization for `None`), oldest first.
    pub async fn entries(&self, org: Option<&str>) -> Result<Vec<AuditEntry>> {
        read_entries(&self.store, org).await
    }
}

/// The entries of `org` (every organization for `None`) in `store`, oldest first.
pub async fn read_entries(store: &Store, org: Option<&str>) -> Result<Vec<AuditEntry>> {
    let prefix = match org {
        Some(org) if faultline_config::is_slug(org) => format!("{PREFIX}/{org}"),
        Some(_) => return Ok(Vec::new()),
        None => PREFIX.to_owned(),
    };
    let mut metas = store.list(&ObjectPath::from(prefix)).await?;
    metas.sort_by(|a, b| a.location.filename().cmp(&b.location.filename()));
    let mut out = Vec::with_capacity(metas.len());
    for meta in metas {
        out.push(store.get_json(&meta.location).await?);
    }
    Ok(out)
}
