//! Backups, as the operator sees them: the `Backup` reconciler and the backup part of an
//! `ErrorTracker`'s status. The engine takes every backup itself; the operator only asks
//! (`POST /api/0/backups`) and reads (`GET /api/0/backups[/{id}]`) on the tracker's admin
//! Service with the tracker's admin token ([`crate::engine_api`]).
//!
//! A `Backup` goes `Pending` (waiting for its tracker, the admin token or a ready pod) ->
//! `Running` (the engine gave it an id) -> `Succeeded` or `Failed`, and is left alone once
//! finished. An unreachable engine does not change the phase: the error is shown in
//! `message` and the reconcile is retried with backoff.
//!
//! The id the engine returns is also kept in memory until the backup is over, so neither a
//! failed status write nor a reconcile that sees a cached `Backup` older than its last status
//! write starts a second backup. Known gap: an operator restart between the engine's answer
//! and the status write does (the admin API has no idempotency key).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::Action;
use kube::{Resource, ResourceExt};
use serde_json::json;
use tracing::{info, instrument, warn};

use crate::FIELD_MANAGER;
use crate::builders::admin_token_secret_name;
use crate::cluster;
use crate::conditions::condition_with;
use crate::context::Context;
use crate::crd::{Backup, BackupPhase, BackupStatus, ErrorTracker, ErrorTrackerStatus, LastBackup};
use crate::engine_api::{self, AdminApi, BackupInfo, BackupState};

/// Type of the condition on a `Backup`.
pub const SUCCEEDED: &str = "Succeeded";
/// Type of the backup condition on an `ErrorTracker`.
pub const BACKUP_SUCCEEDED: &str = "BackupSucceeded";

/// Errors of one `Backup` reconcile.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("Backup {0} has no namespace")]
    MissingNamespace(String),
    #[error("cannot read ErrorTracker {name}: {source}")]
    GetTracker {
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error("cannot read the admin token: {0}")]
    ReadToken(#[source] cluster::Error),
    #[error("{0}")]
    Engine(#[from] engine_api::Error),
    #[error("cannot write status: {0}")]
    WriteStatus(#[source] kube::Error),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Short label of the error for metrics.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Error::MissingNamespace(_) => "namespace",
            Error::GetTracker { .. } | Error::ReadToken(_) => "list",
            Error::Engine(_) => "engine",
            Error::WriteStatus(_) => "status",
        }
    }
}

/// When a `Backup` that is not finished is looked at again.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Intervals {
    /// A running backup is polled this often.
    pub poll: Duration,
    /// A pending backup looks again for its tracker, token or ready pod this often.
    pub wait: Duration,
}

impl Default for Intervals {
    fn default() -> Self {
        Self {
            poll: Duration::from_secs(10),
            wait: Duration::from_secs(15),
        }
    }
}

/// Reconciles one `Backup` (the `Controller`'s reconcile function).
#[instrument(skip(backup, ctx), fields(backup = %backup.name_any(), namespace = backup.namespace().as_deref().unwrap_or("")))]
pub async fn reconcile(backup: Arc<Backup>, ctx: Arc<Context>) -> Result<Action> {
    ctx.metrics.reconciles.inc();
    let previous = backup.status.clone().unwrap_or_default();
    if previous.phase.is_finished() {
        return Ok(Action::await_change());
    }
    match step(&backup, &ctx, previous.clone()).await {
        Ok((status, action)) => {
            if status != previous {
                info!(phase = ?status.phase, id = status.backup_id.as_deref().unwrap_or(""), "backup");
            }
            patch_status(&backup, &ctx, &status).await?;
            if let Some(uid) = backup.uid().filter(|_| status.phase.is_finished()) {
                ctx.set_started_backup(&uid, None);
            }
            ctx.reset_failures(&*backup);
            Ok(action)
        }
        Err(err) => {
            // The phase stays; the message says what is in the way.
            let status = with_phase(&backup, previous.clone(), previous.phase, err.to_string());
            if let Err(status_err) = patch_status(&backup, &ctx, &status).await {
                warn!(cause = %status_err, "cannot record the backup error");
            }
            Err(err)
        }
    }
}

/// Requeues a failed `Backup` reconcile with exponential backoff and counts the failure.
pub fn error_policy(backup: Arc<Backup>, error: &Error, ctx: Arc<Context>) -> Action {
    let failures = ctx.record_failure(&*backup);
    let delay = ctx.backoff.delay(failures);
    ctx.metrics.record_error(error.metric_label());
    warn!(backup = %backup.name_any(), cause = %error, failures, retry_in_s = delay.as_secs(), "backup reconcile failed");
    Action::requeue(delay)
}

/// One step of the backup's life: the new status and when to look again.
async fn step(
    backup: &Backup,
    ctx: &Context,
    status: BackupStatus,
) -> Result<(BackupStatus, Action)> {
    let namespace = backup
        .namespace()
        .ok_or_else(|| Error::MissingNamespace(backup.name_any()))?;
    let name = &backup.spec.tracker;
    let pending = |message: String| {
        let status = with_phase(backup, status.clone(), BackupPhase::Pending, message);
        (status, Action::requeue(ctx.backup_intervals.wait))
    };
    let trackers: Api<ErrorTracker> = Api::namespaced(ctx.client.clone(), &namespace);
    let tracker = trackers
        .get_opt(name)
        .await
        .map_err(|source| Error::GetTracker {
            name: name.clone(),
            source,
        })?;
    let Some(tracker) = tracker else {
        if let Some(id) = &status.backup_id {
            // Its admin API is gone with it: nobody can say how the backup ended.
            let message = format!("ErrorTracker {name} was deleted while backup {id} ran");
            let status = with_phase(backup, status.clone(), BackupPhase::Failed, message);
            return Ok((status, Action::await_change()));
        }
        return Ok(pending(format!("ErrorTracker {name} not found")));
    };
    if tracker.spec.backup.is_none() {
        return Ok(pending(format!(
            "ErrorTracker {name} has no spec.backup: it names the destination of its backups"
        )));
    }
    let Some(token) = admin_token(ctx, &namespace, name).await? else {
        return Ok(pending(format!(
            "waiting for the Secret {}",
            admin_token_secret_name(name)
        )));
    };
    // Always pod 0: it exists whenever the tracker has a pod, and the polls must reach the
    // engine that started the backup.
    let api = AdminApi::new(ctx.admin_base(&namespace, name, 0), token);
    let uid = backup.uid().unwrap_or_default();
    let started = status
        .backup_id
        .clone()
        .or_else(|| ctx.started_backup(&uid));
    match started {
        None => {
            let ready = tracker.status.as_ref().map_or(0, |s| s.ready_replicas);
            if ready == 0 {
                return Ok(pending(format!(
                    "waiting for a ready pod of ErrorTracker {name}"
                )));
            }
            let started = api.start_backup().await?;
            ctx.set_started_backup(&uid, Some(started.id.clone()));
            let mut status = with_phase(backup, status, BackupPhase::Running, String::new());
            status.backup_id = Some(started.id);
            status.started_at = Some(Time(Timestamp::now()));
            Ok((status, Action::requeue(ctx.backup_intervals.poll)))
        }
        Some(id) => {
            let mut status = status;
            status.backup_id = Some(id.clone());
            match api.backup(&id).await? {
                None => {
                    let message = format!(
                        "the engine does not know backup {id} (its pod may have restarted while it ran); create a new Backup"
                    );
                    Ok((
                        with_phase(backup, status, BackupPhase::Failed, message),
                        Action::await_change(),
                    ))
                }
                Some(info) => Ok(from_engine(
                    backup,
                    status,
                    &info,
                    ctx.backup_intervals.poll,
                )),
            }
        }
    }
}

/// The status after the engine reported `info` about the backup.
fn from_engine(
    backup: &Backup,
    status: BackupStatus,
    info: &BackupInfo,
    poll: Duration,
) -> (BackupStatus, Action) {
    let (phase, message, action) = match info.state {
        BackupState::Running => (BackupPhase::Running, String::new(), Action::requeue(poll)),
        BackupState::Succeeded => (
            BackupPhase::Succeeded,
            String::new(),
            Action::await_change(),
        ),
        BackupState::Failed => (
            BackupPhase::Failed,
            info.error
                .clone()
                .unwrap_or_else(|| "the engine reported a failure".into()),
            Action::await_change(),
        ),
    };
    let mut status = with_phase(backup, status, phase, message);
    if let Some(started) = info.started.as_deref().and_then(parse_time) {
        status.started_at = Some(started);
    }
    status.finished_at = info.finished.as_deref().and_then(parse_time);
    status.files = info.files;
    status.bytes = info.bytes;
    (status, action)
}

/// `status` in `phase` with `message` (empty: none) and its `Succeeded` condition.
fn with_phase(
    backup: &Backup,
    mut status: BackupStatus,
    phase: BackupPhase,
    message: String,
) -> BackupStatus {
    let generation = backup.metadata.generation;
    let (condition_status, reason, text) = match phase {
        BackupPhase::Pending => ("Unknown", "Pending", message.clone()),
        BackupPhase::Running => (
            "Unknown",
            "Running",
            "the engine is taking the backup".into(),
        ),
        BackupPhase::Succeeded => ("True", "BackupSucceeded", "the backup is complete".into()),
        BackupPhase::Failed => ("False", "BackupFailed", message.clone()),
    };
    let condition = condition_with(
        &status.conditions,
        generation,
        SUCCEEDED,
        condition_status,
        reason,
        text,
    );
    status.phase = phase;
    status.message = (!message.is_empty()).then_some(message);
    status.conditions = vec![condition];
    status.observed_generation = generation;
    status
}

async fn patch_status(backup: &Backup, ctx: &Context, status: &BackupStatus) -> Result<()> {
    let namespace = backup.namespace().unwrap_or_default();
    let api: Api<Backup> = Api::namespaced(ctx.client.clone(), &namespace);
    let patch = json!({
        "apiVersion": Backup::api_version(&()),
        "kind": Backup::kind(&()),
        "status": status,
    });
    api.patch_status(
        &backup.name_any(),
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&patch),
    )
    .await
    .map_err(Error::WriteStatus)?;
    Ok(())
}

/// The tracker's admin token (see [`cluster::admin_token`]).
async fn admin_token(ctx: &Context, namespace: &str, tracker: &str) -> Result<Option<String>> {
    cluster::admin_token(&ctx.client, namespace, tracker)
        .await
        .map_err(Error::ReadToken)
}

fn parse_time(text: &str) -> Option<Time> {
    text.parse::<Timestamp>().ok().map(Time)
}

/// Fills `lastBackup` and the `BackupSucceeded` condition of a tracker with `spec.backup`,
/// from the engine's list of backups. Without a ready pod, or when the engine cannot be asked,
/// the previous values are kept (an unreachable engine is logged, not a reconcile failure).
pub(crate) async fn report_backups(
    tracker: &ErrorTracker,
    ctx: &Context,
    admin_token: &str,
    status: &mut ErrorTrackerStatus,
) {
    if tracker.spec.backup.is_none() {
        return;
    }
    let previous = tracker.status.clone().unwrap_or_default();
    let listed = if status.ready_replicas > 0 {
        list_backups(tracker, ctx, admin_token).await
    } else {
        None
    };
    let generation = tracker.metadata.generation;
    let condition = match &listed {
        Some(list) => Some(backup_condition(&previous.conditions, generation, list)),
        None => previous
            .conditions
            .iter()
            .find(|c| c.type_ == BACKUP_SUCCEEDED)
            .cloned()
            .map(|c| Condition {
                observed_generation: generation,
                ..c
            }),
    };
    let condition = condition.unwrap_or_else(|| {
        condition_with(
            &previous.conditions,
            generation,
            BACKUP_SUCCEEDED,
            "Unknown",
            "NoBackupYet",
            "no backup has finished yet".into(),
        )
    });
    status.conditions.push(condition);
    status.last_backup = match &listed {
        Some(list) => list
            .iter()
            .find(|b| b.state == BackupState::Succeeded)
            .map(|b| LastBackup {
                id: b.id.clone(),
                finished_at: b.finished.as_deref().and_then(parse_time),
            })
            .or(previous.last_backup),
        None => previous.last_backup,
    };
}

/// The backups every pod of the tracker knows, merged by id, newest first; None when no pod
/// answered. Each engine lists the finished backups of the destination, but only its own
/// running and failed jobs (they live in its memory), and scheduled backups run on whichever
/// pod holds the maintenance lease: so every pod is asked.
async fn list_backups(
    tracker: &ErrorTracker,
    ctx: &Context,
    admin_token: &str,
) -> Option<Vec<BackupInfo>> {
    let namespace = tracker.namespace().unwrap_or_default();
    let name = tracker.name_any();
    let pods = if ctx.admin_url.is_some() {
        1
    } else {
        tracker.spec.replicas.max(1)
    };
    let answers = futures::future::join_all((0..pods).map(|ordinal| {
        let api = AdminApi::new(ctx.admin_base(&namespace, &name, ordinal), admin_token);
        async move { api.backups().await }
    }))
    .await;
    let mut lists = Vec::new();
    for answer in answers {
        match answer {
            Ok(list) => lists.push(list),
            Err(err) => warn!(cause = %err, "cannot list the backups of one pod"),
        }
    }
    (!lists.is_empty()).then(|| merge(lists))
}

/// One list from the lists of several pods: one entry per id, where a pod's in-memory
/// `running` loses against another pod's final word; newest first (by start time, then id,
/// which starts with the UTC time).
fn merge(lists: Vec<Vec<BackupInfo>>) -> Vec<BackupInfo> {
    let mut merged: BTreeMap<String, BackupInfo> = BTreeMap::new();
    for backup in lists.into_iter().flatten() {
        match merged.get(&backup.id) {
            Some(known) if known.state != BackupState::Running => {}
            _ => {
                merged.insert(backup.id.clone(), backup);
            }
        }
    }
    let mut list: Vec<BackupInfo> = merged.into_values().collect();
    list.sort_by(|a, b| {
        let start = |x: &BackupInfo| x.started.as_deref().and_then(parse_time).map(|t| t.0);
        start(b).cmp(&start(a)).then_with(|| b.id.cmp(&a.id))
    });
    list
}

/// `BackupSucceeded` from the newest backup that is over (the list is newest first).
fn backup_condition(
    previous: &[Condition],
    generation: Option<i64>,
    list: &[BackupInfo],
) -> Condition {
    let newest = list.iter().find(|b| b.state != BackupState::Running);
    let (status, reason, message) = match newest {
        None => (
            "Unknown",
            "NoBackupYet",
            "no backup has finished yet".to_owned(),
        ),
        Some(b) if b.state == BackupState::Succeeded => (
            "True",
            "BackupSucceeded",
            format!("backup {} succeeded", b.id),
        ),
        Some(b) => (
            "False",
            "BackupFailed",
            format!(
                "backup {} failed: {}",
                b.id,
                b.error.as_deref().unwrap_or("no reason given")
            ),
        ),
    };
    condition_with(
        previous,
        generation,
        BACKUP_SUCCEEDED,
        status,
        reason,
        message,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(id: &str, state: BackupState, started: &str) -> BackupInfo {
        BackupInfo {
            id: id.into(),
            state,
            started: Some(started.into()),
            finished: None,
            files: None,
            bytes: None,
            error: None,
        }
    }

    #[test]
    fn the_lists_of_several_pods_merge_into_one_newest_first() {
        use BackupState::{Failed, Running, Succeeded};
        // pod 0 ran b3 (still running in its memory) and saw b2 fail; pod 1 already reads b3
        // as succeeded from the destination, and knows the older b1
        let pod0 = vec![
            info("b3", Running, "2026-11-24T03:00:00Z"),
            info("b2", Failed, "2026-11-23T03:00:00Z"),
        ];
        let pod1 = vec![
            info("b3", Succeeded, "2026-11-24T03:00:00Z"),
            info("b1", Succeeded, "2026-11-22T03:00:00+00:00"),
        ];
        let merged = merge(vec![pod0.clone(), pod1.clone()]);
        let seen: Vec<_> = merged.iter().map(|b| (b.id.as_str(), b.state)).collect();
        assert_eq!(seen, [("b3", Succeeded), ("b2", Failed), ("b1", Succeeded)]);
        // the order of the answers does not matter
        assert_eq!(merge(vec![pod1, pod0]), merged);
        assert!(merge(vec![]).is_empty());
    }

    #[test]
    fn the_condition_follows_the_newest_backup_that_is_over() {
        use BackupState::{Failed, Running, Succeeded};
        let cond = |list: &[BackupInfo]| {
            let c = backup_condition(&[], Some(4), list);
            (c.status, c.reason, c.observed_generation)
        };
        let running = info("b3", Running, "2026-11-24T03:00:00Z");
        let failed = BackupInfo {
            error: Some("bucket gone".into()),
            ..info("b2", Failed, "2026-11-23T03:00:00Z")
        };
        let ok = info("b1", Succeeded, "2026-11-22T03:00:00Z");
        assert_eq!(
            cond(&[running.clone(), failed.clone(), ok.clone()]),
            ("False".into(), "BackupFailed".into(), Some(4))
        );
        assert_eq!(
            cond(&[running.clone(), ok.clone(), failed]),
            ("True".into(), "BackupSucceeded".into(), Some(4))
        );
        assert_eq!(
            cond(&[running]),
            ("Unknown".into(), "NoBackupYet".into(), Some(4))
        );
    }
}
