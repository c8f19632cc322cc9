//! The `Backup` custom resource (`faultline.dev/v1alpha1`, namespaced): one on-demand backup
//! of an `ErrorTracker`, taken by the engine through its admin API, with its own status.
//!
//! A `Backup` is a request: its spec cannot change once created, and deleting it does not
//! delete the backup from the destination (`spec.backup.keepLast` / `keepDays` of the tracker
//! prune backups).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// An on-demand backup of the tracker named in `tracker`, to the tracker's
/// `spec.backup.destination`.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[kube(
    group = "faultline.dev",
    version = "v1alpha1",
    kind = "Backup",
    plural = "backups",
    namespaced,
    cel,
    derive = "Default",
    status = "BackupStatus",
    doc = "An on-demand backup of a faultline ErrorTracker, taken by the engine.",
    printcolumn(name = "Tracker", type_ = "string", json_path = ".spec.tracker"),
    printcolumn(name = "Phase", type_ = "string", json_path = ".status.phase"),
    printcolumn(name = "Backup", type_ = "string", json_path = ".status.backupId"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp"),
    validation = Rule::new("self.spec == oldSelf.spec")
        .message("spec is immutable: a Backup is a one-time request; create a new Backup instead"),
)]
#[serde(rename_all = "camelCase")]
pub struct BackupSpec {
    /// Name of the ErrorTracker (in the Backup's namespace) to back up.
    #[schemars(
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$"),
        length(min = 1, max = 40)
    )]
    pub tracker: String,
}

/// Where a backup stands.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema, Default)]
pub enum BackupPhase {
    /// Waiting for the tracker, its admin token or a ready engine pod.
    #[default]
    Pending,
    /// The engine is copying files.
    Running,
    /// The backup is complete in the destination.
    Succeeded,
    /// The engine reported a failure; `message` says why.
    Failed,
}

impl BackupPhase {
    /// Whether the backup is over (the operator no longer acts on it).
    pub fn is_finished(self) -> bool {
        matches!(self, Self::Succeeded | Self::Failed)
    }
}

/// What the operator and the engine report about one backup.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct BackupStatus {
    /// `Pending`, `Running`, `Succeeded` or `Failed`.
    #[serde(default)]
    pub phase: BackupPhase,
    /// Id the engine gave the backup (what `bootstrap.backup.id` and
    /// `faultline backup restore` take).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup_id: Option<String>,
    /// When the engine started it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<Time>,
    /// When it succeeded or failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<Time>,
    /// Files copied (files already in the destination are not copied again).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub files: Option<u64>,
    /// Bytes copied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bytes: Option<u64>,
    /// Why the backup waits or failed. Written as `null` when there is nothing to say, so
    /// that a server-side apply of the status clears an old message.
    #[serde(default)]
    pub message: Option<String>,
    /// `Succeeded`: `Unknown` while pending or running, then `True` or `False`; with the
    /// generation it describes.
    #[serde(default)]
    pub conditions: Vec<Condition>,
    /// The generation of the spec the operator last acted on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}
