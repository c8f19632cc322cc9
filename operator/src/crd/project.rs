//! The `FaultlineProject` custom resource (`faultline.dev/v1alpha1`, namespaced): one project
//! of a shared `ErrorTracker`, owned by the team whose namespace it lives in.
//!
//! The platform team's tracker says which namespaces may attach projects
//! (`spec.projectNamespaceSelector`) and which organization each namespace's projects belong
//! to (`spec.organizationLabel`); the app team applies a `FaultlineProject` in its namespace
//! and gets a Secret with the DSN there. The operator registers the project through the
//! tracker's admin API, so adding a project restarts nothing.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{
    AlertChannelSpec, AlertRuleSpec, PrivacySpec, ProjectKeySpec, QuotaSpec, RateLimitSpec,
};

/// A project of the shared tracker named in `tracker`, declared in an application's namespace.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[kube(
    group = "faultline.dev",
    version = "v1alpha1",
    kind = "FaultlineProject",
    plural = "faultlineprojects",
    shortname = "flp",
    namespaced,
    cel,
    derive = "Default",
    status = "FaultlineProjectStatus",
    doc = "A project of a shared faultline ErrorTracker, with its DSN in a Secret of this namespace.",
    printcolumn(name = "Tracker", type_ = "string", json_path = ".spec.tracker"),
    printcolumn(name = "Organization", type_ = "string", json_path = ".status.organization"),
    printcolumn(name = "Project", type_ = "string", json_path = ".status.project"),
    printcolumn(
        name = "Status",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].reason"
    ),
    printcolumn(name = "DSN Secret", type_ = "string", json_path = ".status.dsnSecret"),
    printcolumn(name = "Events/h", type_ = "integer", json_path = ".status.eventsLastHour"),
    printcolumn(name = "Last Event", type_ = "date", json_path = ".status.lastEventSeen"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp"),
    validation = Rule::new("size(self.metadata.name) <= 56").message(
        "metadata.name must be at most 56 characters: the DSN Secret is named <name>-dsn"
    ),
)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("self.tracker == oldSelf.tracker")
        .message("tracker is immutable: the project's events stay in the tracker they were sent to"),
    validation = Rule::new("has(self.project) == has(oldSelf.project) && (!has(self.project) || self.project == oldSelf.project)")
        .message("project is immutable: the project's events stay under its name"),
    validation = Rule::new("!has(self.alerts) || !has(self.alerts.rules) || self.alerts.rules.all(r, !has(r.org) && !has(r.projects))")
        .message("alerts.rules: org and projects are this project's; leave them unset"),
    validation = Rule::new("!has(self.keys) || self.keys.all(k, self.keys.exists_one(q, q.name == k.name))")
        .message("keys: each name must be unique"),
)]
pub struct FaultlineProjectSpec {
    /// The ErrorTracker that serves this project, as `namespace/name`.
    #[schemars(
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?/[a-z0-9]([-a-z0-9]*[a-z0-9])?$"),
        length(min = 3, max = 104)
    )]
    pub tracker: String,
    /// Name of the project in its organization (lowercase letters, digits and '-'). Unset:
    /// the resource's name. Two resources claiming one name in one organization: the older
    /// one (by creation time, then uid) keeps it, the other is refused with `NameConflict`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        regex(pattern = r"^[a-z0-9][a-z0-9-]{0,39}$"),
        length(min = 1, max = 40)
    )]
    pub project: Option<String>,
    /// Sentry's platform name (`python`, `javascript-react`), shown with the project.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[a-z0-9][a-z0-9._-]{0,63}$"))]
    pub platform: Option<String>,
    /// Days the project's events are kept. Unset: the tracker's `retention.defaultDays`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 3650))]
    pub retention_days: Option<u32>,
    /// Events accepted per window before the engine answers 429.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<RateLimitSpec>,
    /// Limits on the items of chosen data categories (transactions, spans, logs, ...) per
    /// window, Relay's quotas. Items over a quota are dropped and the SDK is told through
    /// `X-Sentry-Rate-Limits` to hold those categories back. Unset or empty: none (quotas
    /// removed here are removed in the engine).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = faultline_config::MAX_QUOTAS))]
    pub quotas: Vec<QuotaSpec>,
    /// DSN keys. Unset: one key, `default`. Each key is generated once and kept in the DSN
    /// Secret as `key-<name>`; `key`, `dsn` and `publicDsn` are those of the first enabled
    /// key, `dsn-<name>` that of every enabled key.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 10))]
    pub keys: Vec<ProjectKeySpec>,
    /// Stack trace rules in Sentry's syntax, one per line.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 65536))]
    pub grouping_enhancements: Option<String>,
    /// Server-side fingerprint rules in Sentry's syntax, one per line.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 65536))]
    pub fingerprinting_rules: Option<String>,
    /// Data scrubbing before events are stored. Unset: the engine's defaults.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub privacy: Option<PrivacySpec>,
    /// What deleting this resource does. `Retain` (default) removes the project's DSN keys at
    /// once (SDKs get 401) and its events follow its retention; `Delete` erases the project
    /// at once with every stored event (SDKs get 403; a later project of the same name gets a
    /// new id).
    #[serde(default)]
    pub deletion_policy: DeletionPolicy,
    /// Alert channels and rules of this project only, declared in the tracker's engine under
    /// `<namespace>.<name>`. Channel secrets (`urlSecretRef`, `routingKeySecretRef`,
    /// `signingSecretRef`) name Secrets of this namespace; rules cover this project and may
    /// use this resource's channels only (by their names here).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alerts: Option<ProjectAlertsSpec>,
}

/// A project's own alerting.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct ProjectAlertsSpec {
    /// Where this project's alerts go.
    #[serde(default)]
    #[schemars(length(max = 20))]
    pub channels: Vec<AlertChannelSpec>,
    /// When they go out; `org` and `projects` stay unset (this project).
    #[serde(default)]
    #[schemars(length(max = 50))]
    pub rules: Vec<AlertRuleSpec>,
}

/// What happens to a project when its `FaultlineProject` is deleted.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema, Default)]
pub enum DeletionPolicy {
    /// Remove the keys; the events follow retention.
    #[default]
    Retain,
    /// Erase the project and every stored event (see `deletionPolicy`).
    Delete,
}

/// What the operator last saw and did.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct FaultlineProjectStatus {
    /// `Ready`, with the generation it describes; when False, the reason says why
    /// (`TrackerNotFound`, `NamespaceNotAllowed`, `NoOrganization`, `NameConflict`,
    /// `InvalidSpec`, `SecretMissing`, `EngineUnavailable`, `Rejected`).
    #[serde(default)]
    pub conditions: Vec<Condition>,
    /// The generation of the spec the operator last acted on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Organization the project belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub organization: Option<String>,
    /// Name of the project in its organization.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project: Option<String>,
    /// Numeric project id (the last path segment of the DSN).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project_id: Option<u64>,
    /// Secret in this namespace with the DSN (keys `dsn`, `publicDsn`, `key`, `projectId`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dsn_secret: Option<String>,
    /// Base URL SDKs send events to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ingest_url: Option<String>,
    /// Error events the tracker accepted for this project in the last sixty minutes, as of
    /// the tracker's `status.engineCheckedAt`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub events_last_hour: Option<u64>,
    /// When the project's newest event was seen, as of the tracker's
    /// `status.engineCheckedAt` (unset before the first event).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_event_seen: Option<Time>,
    /// The alert channels and rules declared in the engine for `spec.alerts`, by their names
    /// there (`<namespace>.<name>`): what a change or the deletion removes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub alert_channels: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub alert_rules: Vec<String>,
    /// Digest of the alerting last declared (secret values included), so an unchanged
    /// declaration is not sent again.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alerts_digest: Option<String>,
}

impl FaultlineProjectSpec {
    /// The tracker's namespace and name; `None` when `tracker` is not `namespace/name`.
    pub fn tracker_ref(&self) -> Option<(&str, &str)> {
        self.tracker
            .split_once('/')
            .filter(|(ns, name)| !ns.is_empty() && !name.is_empty())
    }
}
