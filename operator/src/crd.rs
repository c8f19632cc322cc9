//! The `ErrorTracker` custom resource (`faultline.dev/v1alpha1`, namespaced).
//!
//! Every field carries its documentation and default in the generated schema, so
//! `kubectl explain errortracker.spec` tells a user what this file tells a reader. Rules that
//! span fields are CEL `x-kubernetes-validations` on the spec: the API server rejects a bad
//! spec with the rule's message before the operator ever sees it.
//!
//! The on-demand [`Backup`] resource is defined in `crd/backup.rs`, the team-owned
//! [`FaultlineProject`] in `crd/project.rs`, the quotas both kinds of project carry in
//! `crd/quota.rs`.

// The KubeSchema derive copies the spec struct, `pub` and without our attributes, into a
// function body; the lint cannot be silenced on that copy alone.
#![allow(unreachable_pub)]

mod backup;
mod project;
mod quota;

pub use backup::{Backup, BackupPhase, BackupSpec, BackupStatus};
pub use project::{
    DeletionPolicy, FaultlineProject, FaultlineProjectSpec, FaultlineProjectStatus,
    ProjectAlertsSpec,
};
pub use quota::QuotaSpec;

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Affinity, ResourceRequirements, Toleration};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, LabelSelector, Time};
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// API group of the resource.
pub const GROUP: &str = "faultline.dev";

/// Desired state of one faultline deployment: engine pods, storage, projects and how the
/// tracker is reached.
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq)]
#[kube(
    group = "faultline.dev",
    version = "v1alpha1",
    kind = "ErrorTracker",
    plural = "errortrackers",
    shortname = "et",
    namespaced,
    cel,
    derive = "Default",
    status = "ErrorTrackerStatus",
    doc = "A self-hosted, Sentry-compatible error tracker managed by the faultline operator.",
    printcolumn(name = "Replicas", type_ = "integer", json_path = ".spec.replicas"),
    printcolumn(name = "Ready", type_ = "integer", json_path = ".status.readyReplicas"),
    printcolumn(
        name = "Status",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].reason"
    ),
    printcolumn(name = "Ingest", type_ = "string", json_path = ".status.ingestUrl"),
    printcolumn(
        name = "Object Store",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"ObjectStoreReachable\")].reason"
    ),
    printcolumn(name = "Last Backup", type_ = "date", json_path = ".status.lastBackup.finishedAt"),
    printcolumn(name = "Age", type_ = "date", json_path = ".metadata.creationTimestamp"),
    validation = Rule::new("size(self.metadata.name) <= 40").message(
        "metadata.name must be at most 40 characters: it prefixes every object the operator creates"
    ),
)]
#[serde(rename_all = "camelCase")]
#[x_kube(
    validation = Rule::new("!(has(self.storage.objectStore.local) && has(self.storage.objectStore.s3))")
        .message("storage.objectStore: set either local or s3, not both"),
    validation = Rule::new("self.replicas <= 1 || has(self.storage.objectStore.s3)")
        .message("replicas above 1 need storage.objectStore.s3: a local volume is not shared between pods"),
    validation = Rule::new("self.projects.all(p, self.projects.exists_one(q, q.name == p.name))")
        .message("projects: each name must be unique"),
    validation = Rule::new("self.projects.all(p, !has(p.id) || self.projects.exists_one(q, has(q.id) && q.id == p.id))")
        .message("projects: each explicit id must be unique"),
    validation = Rule::new("!has(self.backup) || has(self.backup.keepLast) || has(self.backup.keepDays)")
        .message("backup: set keepLast or keepDays so old backups are pruned"),
    validation = Rule::new("!has(self.backup) || has(self.backup.destination.s3) != has(self.backup.destination.volume)")
        .message("backup.destination: set exactly one of s3 or volume"),
    validation = Rule::new("!has(self.bootstrap) || has(self.bootstrap.backup.source.s3) != has(self.bootstrap.backup.source.volume)")
        .message("bootstrap.backup.source: set exactly one of s3 or volume"),
    validation = Rule::new("has(self.bootstrap) == has(oldSelf.bootstrap) && (!has(self.bootstrap) || self.bootstrap == oldSelf.bootstrap)")
        .message("bootstrap is immutable: it applies only when the tracker is created"),
    validation = Rule::new("self.storage.wal == oldSelf.storage.wal")
        .message("storage.wal is immutable: a StatefulSet's volume claims cannot change (resize the PersistentVolumeClaims instead)"),
    validation = Rule::new("has(self.storage.objectStore.s3) == has(oldSelf.storage.objectStore.s3)")
        .message("storage.objectStore cannot switch between local and s3: the stored events would be left behind"),
    validation = Rule::new("has(self.storage.objectStore.s3) || self.storage.objectStore == oldSelf.storage.objectStore")
        .message("storage.objectStore.local is immutable: a StatefulSet's volume claims cannot change"),
    validation = Rule::new(OIDC_ISSUER_RULE)
        .message("auth.oidc.issuer must be an https:// URL (http:// only for localhost or 127.0.0.1)"),
    validation = Rule::new("!has(self.auth) || self.auth.passwordLogin || has(self.auth.oidc)")
        .message("auth.passwordLogin: false needs auth.oidc, or nobody can log in"),
)]
pub struct ErrorTrackerSpec {
    /// Engine image. Defaults to `ghcr.io/faultline/faultline:<operator version>`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// Image pull policy of the engine container.
    #[serde(default = "default_pull_policy")]
    #[schemars(regex(pattern = r"^(Always|IfNotPresent|Never)$"))]
    pub image_pull_policy: String,
    /// Number of engine pods. Ingest pods are interchangeable; more than one needs S3 storage.
    #[serde(default = "default_replicas")]
    #[schemars(range(min = 0, max = 100))]
    pub replicas: i32,
    /// CPU and memory requests and limits of the engine container. Unset: requests of 250m CPU
    /// and 256Mi memory, a memory limit of 1Gi.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,
    /// Node labels the pods must match.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub node_selector: BTreeMap<String, String>,
    /// Tolerations of the pods.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tolerations: Vec<Toleration>,
    /// Affinity rules of the pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub affinity: Option<Affinity>,
    /// Pod security settings. The engine always runs as non-root, without privilege escalation,
    /// with all capabilities dropped and the RuntimeDefault seccomp profile.
    #[serde(default)]
    pub security: SecuritySpec,
    /// Where events are kept: the write-ahead log volume and the object store.
    #[serde(default)]
    pub storage: StorageSpec,
    /// How long events are kept.
    #[serde(default)]
    pub retention: RetentionSpec,
    /// Scheduled backups of the object store. Unset disables backups.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub backup: Option<BackupScheduleSpec>,
    /// Create the tracker from a backup (only when it is created; immutable afterwards).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bootstrap: Option<BootstrapSpec>,
    /// Projects served by this tracker. Each gets a DSN key and a Secret
    /// `<tracker>-dsn-<project>` holding its DSN.
    #[serde(default)]
    #[schemars(length(max = 100))]
    pub projects: Vec<ProjectSpec>,
    /// The Service in front of the pods.
    #[serde(default)]
    pub service: ServiceSpec,
    /// Optional Ingress for the ingest endpoint (what SDKs outside the cluster send to).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ingress: Option<IngressSpec>,
    /// Who may reach the pods.
    #[serde(default)]
    pub network_policy: NetworkPolicySpec,
    /// People's logins to the web UI and API: session lifetimes, login throttling, password
    /// login, MFA and single sign-on with an OpenID Connect provider.
    #[serde(default)]
    pub auth: AuthSpec,
    /// Alert rules and the channels they send to (docs/alerts.md). Webhook URLs, routing keys,
    /// signing secrets and the SMTP password come only from Secrets, mounted read-only into
    /// the engine pods and never written into the ConfigMap.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alerts: Option<AlertsSpec>,
    /// Namespaces whose `FaultlineProject`s this tracker serves, by their labels. Unset: none
    /// (only `projects` above); `{}`: every namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project_namespace_selector: Option<LabelSelector>,
    /// The namespace label whose value names the organization of the `FaultlineProject`s in
    /// that namespace (teams are organizations, isolated from each other). Unset: the
    /// namespace's name. A namespace without the label, or with a value that is no
    /// organization name (lowercase letters, digits, '-'), attaches no project.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        regex(
            pattern = r"^([a-z0-9]([-a-z0-9.]*[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$"
        ),
        length(min = 1, max = 317)
    )]
    pub organization_label: Option<String>,
}

/// Alerting: where alerts go (`channels`), when (`rules`), and the mail server of email
/// channels.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct AlertsSpec {
    /// Where alerts go.
    #[serde(default)]
    #[schemars(length(max = 100))]
    pub channels: Vec<AlertChannelSpec>,
    /// When alerts go out, and to which channels.
    #[serde(default)]
    #[schemars(length(max = 200))]
    pub rules: Vec<AlertRuleSpec>,
    /// The mail server email channels send through.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub smtp: Option<SmtpSpec>,
    /// Alerts a channel sends per hour at most unless it sets its own (0: no limit). Unset:
    /// the engine's default (60).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_per_hour: Option<u32>,
    /// Lets channels post to private, loopback and link-local addresses (a receiver inside the
    /// cluster). Off by default.
    #[serde(default)]
    pub allow_private_targets: bool,
}

/// One place alerts are sent to.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AlertChannelSpec {
    /// Unique name rules refer to.
    #[schemars(regex(pattern = r"^[A-Za-z0-9._-]{1,64}$"))]
    pub name: String,
    /// `email`, `slack`, `discord`, `teams`, `pagerduty` or `webhook`.
    #[schemars(regex(pattern = r"^(email|slack|discord|teams|pagerduty|webhook)$"))]
    pub kind: String,
    /// The receiver's URL (every kind but email; PagerDuty defaults to its Events API v2).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url_secret_ref: Option<AlertSecretRef>,
    /// PagerDuty: the integration's routing key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub routing_key_secret_ref: Option<AlertSecretRef>,
    /// Webhook: the `whsec_...` signing secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signing_secret_ref: Option<AlertSecretRef>,
    /// Webhook: `faultline` (default) or `sentry` (Sentry's issue-alert body).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^(faultline|sentry)$"))]
    pub format: Option<String>,
    /// Email: the recipients.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub to: Vec<String>,
    /// This channel's alerts per hour at most (0: no limit).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_per_hour: Option<u32>,
}

/// One key of a Secret in the tracker's namespace.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AlertSecretRef {
    /// Name of the Secret.
    #[schemars(
        regex(pattern = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"),
        length(min = 1, max = 253)
    )]
    pub name: String,
    /// Key in the Secret's data.
    #[schemars(regex(pattern = r"^[-._a-zA-Z0-9]+$"), length(min = 1, max = 253))]
    pub key: String,
}

/// What makes a rule fire.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AlertTriggerSpec {
    /// `new_issue`, `regression`, `unmuted`, `frequency` (with `count` and `window`), `users`
    /// (the same, counting distinct users) or `cron_monitor`.
    #[serde(rename = "type")]
    #[schemars(regex(pattern = r"^(new_issue|regression|unmuted|frequency|users|cron_monitor)$"))]
    pub type_: String,
    /// frequency, users: more than this many.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<u64>,
    /// frequency, users: within this duration (e.g. `5m`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub window: Option<String>,
    /// cron_monitor: the monitors' slugs (empty: any).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub monitors: Vec<String>,
}

/// When alerts go out, and where. The fields are those of the engine's `[[alerts.rules]]`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AlertRuleSpec {
    /// Unique name.
    #[schemars(regex(pattern = r"^[A-Za-z0-9._-]{1,64}$"))]
    pub name: String,
    /// The organization whose projects the rule covers. Unset: `default`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub org: Option<String>,
    /// Project names (empty: every project of the organization).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub projects: Vec<String>,
    /// Any of these fires the rule.
    #[schemars(length(min = 1))]
    pub triggers: Vec<AlertTriggerSpec>,
    /// Only events of these levels (empty: any).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub levels: Vec<String>,
    /// Only events of these environments (empty: any).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub environments: Vec<String>,
    /// Only events of these releases (empty: any).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub releases: Vec<String>,
    /// Only events with these tag values, each `key=value`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// Only issues first seen at least this long ago (e.g. `1d`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issue_older_than: Option<String>,
    /// Only issues first seen less than this long ago.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issue_newer_than: Option<String>,
    /// Only issues with at least this many events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub min_events: Option<u64>,
    /// Channel names.
    #[schemars(length(min = 1))]
    pub channels: Vec<String>,
    /// At most one alert per issue within this duration. Unset: `30m`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<String>,
}

/// The mail server of email channels.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SmtpSpec {
    /// Host name of the mail server.
    #[schemars(length(min = 1, max = 253))]
    pub host: String,
    /// Port. Unset: 587 with `starttls`, 465 with `tls`, 25 with `none`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// `starttls` (default), `tls` or `none`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^(starttls|tls|none)$"))]
    pub tls: Option<String>,
    /// User name to log in with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    /// The password, from a Secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password_secret_ref: Option<AlertSecretRef>,
    /// The sender, e.g. `faultline <faultline@example.com>`.
    #[schemars(length(min = 3))]
    pub from: String,
}

/// The CEL rule on `auth.oidc.issuer`: https, or plain http to the local machine only.
const OIDC_ISSUER_RULE: &str = "!has(self.auth) || !has(self.auth.oidc) || self.auth.oidc.issuer.startsWith('https://') || self.auth.oidc.issuer.matches('^http://(localhost|127[.]0[.]0[.]1)(:[0-9]+)?(/.*)?$')";

/// How people log in. Unset durations and limits keep the engine's defaults.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AuthSpec {
    /// A login session ends after this long without a request, as `<n>d<n>h<n>m<n>s`
    /// (`30m`, `12h`). Unset: the engine's default, 12h.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        regex(pattern = r"^([0-9]+d)?([0-9]+h)?([0-9]+m)?([0-9]+s)?$"),
        length(min = 2, max = 32)
    )]
    pub session_idle_timeout: Option<String>,
    /// A login session ends this long after the login, however active it is (`14d`). Unset:
    /// the engine's default, 14d.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        regex(pattern = r"^([0-9]+d)?([0-9]+h)?([0-9]+m)?([0-9]+s)?$"),
        length(min = 2, max = 32)
    )]
    pub session_absolute_timeout: Option<String>,
    /// How long an invite link can be accepted (`7d`). Unset: the engine's default, 7d.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        regex(pattern = r"^([0-9]+d)?([0-9]+h)?([0-9]+m)?([0-9]+s)?$"),
        length(min = 2, max = 32)
    )]
    pub invite_ttl: Option<String>,
    /// How long the first-start setup link and set-password links work (`1d`). Unset: the
    /// engine's default, 1d.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        regex(pattern = r"^([0-9]+d)?([0-9]+h)?([0-9]+m)?([0-9]+s)?$"),
        length(min = 2, max = 32)
    )]
    pub setup_link_ttl: Option<String>,
    /// Failed logins allowed per account and per client address within
    /// `loginFailureWindow`; more are refused with 429 until the window passes. Unset: the
    /// engine's default, 10.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 1000))]
    pub login_max_failures: Option<u32>,
    /// The window in which failed logins are counted (`15m`). Unset: the engine's default,
    /// 15m.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        regex(pattern = r"^([0-9]+d)?([0-9]+h)?([0-9]+m)?([0-9]+s)?$"),
        length(min = 2, max = 32)
    )]
    pub login_failure_window: Option<String>,
    /// Whether people may log in with email and password. Set false when everyone logs in
    /// through `oidc` (which is then required); the first-start setup link still works.
    #[serde(default = "default_true")]
    pub password_login: bool,
    /// Every organization requires MFA of its members regardless of its own setting.
    #[serde(default)]
    pub require_mfa: bool,
    /// Single sign-on with an OpenID Connect provider (authorization code flow with PKCE).
    /// Register `<public URL>/auth/oidc/callback` as the redirect URI at the provider.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub oidc: Option<OidcSpec>,
}

impl Default for AuthSpec {
    fn default() -> Self {
        Self {
            session_idle_timeout: None,
            session_absolute_timeout: None,
            invite_ttl: None,
            setup_link_ttl: None,
            login_max_failures: None,
            login_failure_window: None,
            password_login: true,
            require_mfa: false,
            oidc: None,
        }
    }
}

/// An OpenID Connect provider people log in with. Accounts are found by issuer and subject,
/// never by email.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct OidcSpec {
    /// The provider's issuer URL; its `/.well-known/openid-configuration` must name the same
    /// issuer. https, or http only for localhost or 127.0.0.1.
    #[schemars(length(min = 8, max = 2048), regex(pattern = r"^https?://[^\s]+$"))]
    pub issuer: String,
    /// The client id registered at the provider.
    #[schemars(length(min = 1, max = 1024))]
    pub client_id: String,
    /// The client secret: a key of a Secret in the tracker's namespace, mounted read-only
    /// into the engine pods and never written into the ConfigMap. Unset: a public client
    /// (PKCE only). A change of the Secret rolls the pods.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_secret_ref: Option<SecretKeyRef>,
    /// The login button's label: "Log in with <name>". Unset: "single sign-on".
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 64))]
    pub name: Option<String>,
    /// Scopes asked for besides `openid`. Unset: `email` and `profile`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 20))]
    pub scopes: Option<Vec<String>>,
    /// Create an account on the first login of someone the provider vouches for; without it
    /// only accounts already linked to the provider (or invited) log in.
    #[serde(default)]
    pub auto_provision: bool,
    /// Organization role of an account created by `autoProvision`: `member`, `admin`,
    /// `manager` or `owner`. Unset: `member`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^(member|admin|manager|owner)$"))]
    pub default_role: Option<String>,
    /// A team (slug) an account created by `autoProvision` joins as contributor.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(
        regex(pattern = r"^[a-z0-9][a-z0-9-]{0,63}$"),
        length(min = 1, max = 64)
    )]
    pub default_team: Option<String>,
}

/// One key of a Secret in the tracker's namespace.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretKeyRef {
    /// Name of the Secret.
    #[schemars(
        regex(pattern = r"^[a-z0-9]([-a-z0-9.]*[a-z0-9])?$"),
        length(min = 1, max = 253)
    )]
    pub name: String,
    /// Key in the Secret's data.
    #[serde(default = "default_client_secret_key")]
    #[schemars(regex(pattern = r"^[-._a-zA-Z0-9]+$"), length(min = 1, max = 253))]
    pub key: String,
}

/// Security settings of the engine pods.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecuritySpec {
    /// User id the engine runs as (never 0).
    #[serde(default = "default_uid")]
    #[schemars(range(min = 1))]
    pub run_as_user: i64,
    /// Group id the engine runs as and that owns the volumes.
    #[serde(default = "default_uid")]
    #[schemars(range(min = 1))]
    pub fs_group: i64,
    /// Mount the root filesystem read-only (the engine writes only to its volumes and /tmp).
    #[serde(default = "default_true")]
    pub read_only_root_filesystem: bool,
}

impl Default for SecuritySpec {
    fn default() -> Self {
        Self {
            run_as_user: default_uid(),
            fs_group: default_uid(),
            read_only_root_filesystem: true,
        }
    }
}

/// Storage of the engine.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct StorageSpec {
    /// The per-pod volume of the write-ahead log.
    #[serde(default)]
    pub wal: VolumeSpec,
    /// The object store holding Parquet files. Without `s3`, a per-pod volume is used.
    #[serde(default)]
    pub object_store: ObjectStoreSpec,
    /// Delete the pods' PersistentVolumeClaims when the ErrorTracker is deleted. Off by default,
    /// so deleting the resource never deletes data.
    #[serde(default)]
    pub delete_volumes_on_delete: bool,
}

/// A PersistentVolumeClaim template.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct VolumeSpec {
    /// Requested size, as a Kubernetes quantity.
    #[serde(default = "default_volume_size")]
    #[schemars(regex(pattern = r"^[0-9]+(\.[0-9]+)?(Ki|Mi|Gi|Ti|Pi|k|M|G|T|P)?$"))]
    pub size: String,
    /// Storage class; unset uses the cluster default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_class_name: Option<String>,
}

impl Default for VolumeSpec {
    fn default() -> Self {
        Self {
            size: default_volume_size(),
            storage_class_name: None,
        }
    }
}

/// Where Parquet files live: a local volume (one engine pod) or S3.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct ObjectStoreSpec {
    /// A per-pod volume (the default when `s3` is unset).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local: Option<VolumeSpec>,
    /// An S3 or S3-compatible bucket.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub s3: Option<S3Spec>,
}

/// An S3 bucket and the Secret holding its credentials.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct S3Spec {
    /// Bucket name.
    #[schemars(length(min = 3, max = 63))]
    pub bucket: String,
    /// Key prefix inside the bucket.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    /// Endpoint URL of an S3-compatible server (MinIO, Ceph...); unset uses AWS.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^https?://"))]
    pub endpoint: Option<String>,
    /// Region of the bucket.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// Use path-style requests (needed by most S3-compatible servers).
    #[serde(default)]
    pub force_path_style: bool,
    /// Secret in the tracker's namespace with the access key pair. Nothing secret goes in the
    /// ErrorTracker itself.
    pub credentials_secret: CredentialsSecret,
}

/// Keys of an S3 credentials Secret.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct CredentialsSecret {
    /// Name of the Secret.
    #[schemars(length(min = 1))]
    pub name: String,
    /// Key of the access key id.
    #[serde(default = "default_access_key_id_key")]
    pub access_key_id_key: String,
    /// Key of the secret access key.
    #[serde(default = "default_secret_access_key_key")]
    pub secret_access_key_key: String,
}

/// Retention of events.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RetentionSpec {
    /// Days events are kept unless a project says otherwise.
    #[serde(default = "default_retention_days")]
    #[schemars(range(min = 1, max = 3650))]
    pub default_days: u32,
    /// Optional cap on stored events per project; the oldest days go first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub max_events_per_project: Option<u64>,
}

impl Default for RetentionSpec {
    fn default() -> Self {
        Self {
            default_days: default_retention_days(),
            max_events_per_project: None,
        }
    }
}

/// Scheduled backups, taken by the engine itself (one pod at a time holds the maintenance
/// lease in the object store), to a destination of their own.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BackupScheduleSpec {
    /// Cron expression, 5 fields, UTC.
    #[schemars(regex(pattern = r"^(\S+\s+){4}\S+$"))]
    pub schedule: String,
    /// Where backups go: an S3 bucket (with its own credentials Secret) or a volume.
    pub destination: BackupStore,
    /// Keep the last N backups.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub keep_last: Option<u32>,
    /// Keep backups younger than this many days.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub keep_days: Option<u32>,
}

/// Where backups are kept: set exactly one of `s3` or `volume`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BackupStore {
    /// An S3 or S3-compatible bucket, with its own credentials Secret (it may name the object
    /// store's Secret).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub s3: Option<S3Spec>,
    /// An existing PersistentVolumeClaim mounted into the engine pods at
    /// `/var/lib/faultline-backups` (ReadWriteMany when there is more than one replica).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume: Option<BackupVolumeSpec>,
}

/// A directory on an existing PersistentVolumeClaim.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BackupVolumeSpec {
    /// Name of the PersistentVolumeClaim in the tracker's namespace.
    #[schemars(length(min = 1, max = 253))]
    pub claim_name: String,
    /// Directory inside the volume; unset uses its root.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[A-Za-z0-9._-]+(/[A-Za-z0-9._-]+)*$"))]
    pub sub_path: Option<String>,
}

/// How a new tracker gets its first data.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BootstrapSpec {
    /// Restore a backup into the empty data location before the engine first starts.
    pub backup: BootstrapBackupSpec,
}

/// A backup to restore from, as `faultline backup restore <id> --from <source> [--until <time>]`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct BootstrapBackupSpec {
    /// Where the backups are (an S3 bucket with its credentials Secret, or a volume).
    pub source: BackupStore,
    /// Id of the backup, or `latest`.
    #[serde(default = "default_backup_id")]
    #[schemars(regex(pattern = r"^(latest|[0-9A-Za-z][0-9A-Za-z._-]{0,127})$"))]
    pub id: String,
    /// Point in time (RFC 3339): restore the events up to this instant only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(
        pattern = r"^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}(\.[0-9]+)?(Z|[+-][0-9]{2}:[0-9]{2})$"
    ))]
    pub until: Option<String>,
}

/// One project (a Sentry "project": what a DSN points at).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProjectSpec {
    /// Short name: lowercase letters, digits and '-'. Part of the DSN Secret's name.
    #[schemars(
        regex(pattern = r"^[a-z0-9][a-z0-9-]{0,39}$"),
        length(min = 1, max = 40)
    )]
    pub name: String,
    /// Numeric project id, the last path segment of the DSN. Unset derives a stable id from the
    /// name (the same name always gets the same id); set it to keep an id from another server.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 2_147_483_647))]
    pub id: Option<u64>,
    /// Events accepted per window before the engine answers 429.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<RateLimitSpec>,
    /// Limits on the items of chosen data categories (transactions, spans, logs, ...) per
    /// window, Relay's quotas. Items over a quota are dropped and the SDK is told through
    /// `X-Sentry-Rate-Limits` to hold those categories back.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = faultline_config::MAX_QUOTAS))]
    pub quotas: Vec<QuotaSpec>,
    /// Days of retention of this project; overrides `retention.defaultDays`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 3650))]
    pub retention_days: Option<u32>,
    /// DSN keys, as Sentry's project keys. Unset: one key, as `key` in the DSN Secret. Each
    /// listed key is generated once and kept in the Secret as `key-<name>` (a key named
    /// `default` takes over the project's existing key); `key`, `dsn` and `publicDsn` are those
    /// of the first enabled key, `dsn-<name>` that of every enabled key. Rotate by adding a
    /// key, moving the applications to it, then disabling or removing the old one.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 10))]
    pub keys: Vec<ProjectKeySpec>,
    /// Stack trace rules in Sentry's syntax, one per line (`family:javascript
    /// path:**/vendor/** -app`), applied after the built-in ones to new events. The engine
    /// refuses rules that do not parse, naming the line and column.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 65536))]
    pub grouping_enhancements: Option<String>,
    /// Server-side fingerprint rules in Sentry's syntax, one per line
    /// (`error.type:DatabaseUnavailable -> system-down`), tried before the built-in ones.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 65536))]
    pub fingerprinting_rules: Option<String>,
    /// Data scrubbing before events are stored (Sentry's "Security & Privacy"). Unset: the
    /// defaults (scrubbing and default scrubbers on, IP addresses kept), changeable through
    /// the project API; set here, the API cannot change them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub privacy: Option<PrivacySpec>,
}

/// A project's data scrubbing settings (the engine's docs/privacy.md).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PrivacySpec {
    /// Sentry's "Data Scrubber"; off leaves only `piiConfig`.
    #[serde(default = "default_true")]
    pub scrub_data: bool,
    /// Sentry's "Use Default Scrubbers": passwords, secrets, tokens, credit cards, IBANs,
    /// private keys, passwords in URLs, session and CSRF cookies.
    #[serde(default = "default_true")]
    pub scrub_defaults: bool,
    /// Remove user IP addresses and replace IP addresses in text by `[ip]`.
    #[serde(default)]
    pub scrub_ip_addresses: bool,
    /// Extra key names whose values are removed.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 200))]
    pub sensitive_fields: Vec<String>,
    /// Key names the data scrubber leaves alone.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 200))]
    pub safe_fields: Vec<String>,
    /// Advanced rules in Relay's PII config format, as JSON text
    /// (`{"applications": {"$string": ["@ip:mask"]}}`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 65536))]
    pub pii_config: Option<String>,
}

/// One DSN key of a project.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProjectKeySpec {
    /// Name of the key: lowercase letters, digits and '-'. Part of the Secret's keys.
    #[schemars(
        regex(pattern = r"^[a-z0-9][a-z0-9-]{0,39}$"),
        length(min = 1, max = 40)
    )]
    pub name: String,
    /// A disabled key is refused by the engine with 401.
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// Events accepted with this key per window, on top of the project's limit (429 with the
    /// `key` scope beyond it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rate_limit: Option<RateLimitSpec>,
}

/// A rate limit.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RateLimitSpec {
    /// Events per window.
    #[schemars(range(min = 1))]
    pub events: u64,
    /// Window length in seconds.
    #[serde(default = "default_window")]
    #[schemars(range(min = 1, max = 86400))]
    pub window_seconds: u64,
}

/// The Service in front of the engine pods.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServiceSpec {
    /// Service type.
    #[serde(default = "default_service_type", rename = "type")]
    #[schemars(regex(pattern = r"^(ClusterIP|NodePort|LoadBalancer)$"))]
    pub type_: String,
    /// Extra annotations of the Service (for cloud load balancers).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
}

impl Default for ServiceSpec {
    fn default() -> Self {
        Self {
            type_: default_service_type(),
            annotations: BTreeMap::new(),
        }
    }
}

/// An Ingress for the ingest port.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct IngressSpec {
    /// Host name SDKs send to; DSNs handed out use it.
    #[schemars(regex(
        pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$"
    ))]
    pub host: String,
    /// IngressClass name; unset uses the cluster default.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub class_name: Option<String>,
    /// Secret with the TLS certificate for `host`; unset serves plain HTTP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_secret_name: Option<String>,
    /// Extra annotations of the Ingress.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    /// Also route the web UI, login (`/login`, `/auth/oidc/callback`) and Sentry's web API
    /// (`/api/0/`, for sentry-cli and the UI) on `host` to the query/admin port, beside the
    /// ingest API: people then open `https://<host>/`. The admin port's NetworkPolicy must admit
    /// the ingress controller's namespace (`networkPolicy.adminNamespaces`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub web_ui: bool,
}

/// Network access to the engine pods.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NetworkPolicySpec {
    /// Create a NetworkPolicy: the ingest port is open to all, the query/admin port only to
    /// the tracker's own namespace and `adminNamespaces`.
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// Further namespaces (by name) allowed to reach the query/admin port.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub admin_namespaces: Vec<String>,
}

impl Default for NetworkPolicySpec {
    fn default() -> Self {
        Self {
            enabled: true,
            admin_namespaces: Vec::new(),
        }
    }
}

/// What the operator last saw and did.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema, Default)]
#[serde(rename_all = "camelCase")]
pub struct ErrorTrackerStatus {
    /// `Ready`, `Progressing`, `Degraded`, `ObjectStoreReachable` (as the engine sees it:
    /// `Reachable`, `Unreachable` with the engine's error, `Unknown` with `EngineUnavailable`
    /// when no engine answered) and (with `spec.backup`) `BackupSucceeded`, each with the
    /// generation it describes.
    #[serde(default)]
    pub conditions: Vec<Condition>,
    /// The generation of the spec the operator last acted on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Engine pods that pass their readiness probe.
    #[serde(default)]
    pub ready_replicas: i32,
    /// Base URL SDKs send events to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ingest_url: Option<String>,
    /// Secret holding the token of the query/admin API (key `token`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub admin_token_secret: Option<String>,
    /// Per project, the Secret holding its DSN (keys `dsn`, `publicDsn`, `key`, `projectId`).
    #[serde(default)]
    pub dsn_secrets: Vec<DsnSecretRef>,
    /// The newest backup that succeeded, as the engine lists them (scheduled and on-demand);
    /// reported when `spec.backup` is set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_backup: Option<LastBackup>,
    /// When the engine last answered the operator's status call (object store and figures);
    /// asked on every reconcile with a ready pod, at most once a minute.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub engine_checked_at: Option<Time>,
    /// Every project the engine serves (its own `spec.projects` and the `FaultlineProject`s
    /// attached to it), with its figures as of `engineCheckedAt`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub projects: Vec<ProjectFigures>,
}

/// A project's figures, as the engine reports them.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ProjectFigures {
    /// Project name in its organization.
    pub name: String,
    pub organization: String,
    /// Error events accepted in the last sixty minutes (unset when the engine could not read
    /// its figures).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub events_last_hour: Option<u64>,
    /// When the newest event of the project was seen (unset before the first).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_event_seen: Option<Time>,
}

/// A backup that succeeded.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LastBackup {
    /// Backup id (what `faultline backup restore` and `bootstrap.backup.id` take).
    pub id: String,
    /// When it finished.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finished_at: Option<Time>,
}

/// Where a project's DSN is stored.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DsnSecretRef {
    /// Project name.
    pub project: String,
    /// Name of the Secret in the tracker's namespace.
    pub secret_name: String,
}

fn default_pull_policy() -> String {
    "IfNotPresent".to_owned()
}
fn default_replicas() -> i32 {
    1
}
/// The uid the engine image runs as (docker/engine.Dockerfile).
fn default_uid() -> i64 {
    65532
}
fn default_true() -> bool {
    true
}
fn default_volume_size() -> String {
    "10Gi".to_owned()
}
fn default_access_key_id_key() -> String {
    "AWS_ACCESS_KEY_ID".to_owned()
}
fn default_secret_access_key_key() -> String {
    "AWS_SECRET_ACCESS_KEY".to_owned()
}
fn default_retention_days() -> u32 {
    90
}
fn default_backup_id() -> String {
    "latest".to_owned()
}
fn default_window() -> u64 {
    60
}
fn default_client_secret_key() -> String {
    "clientSecret".to_owned()
}
fn default_service_type() -> String {
    "ClusterIP".to_owned()
}

impl Default for ErrorTrackerSpec {
    /// The spec of an empty `spec: {}`, every default filled.
    fn default() -> Self {
        serde_json::from_str("{}").expect("every spec field has a default")
    }
}

impl ErrorTrackerSpec {
    /// The engine image, with the default filled in.
    pub fn image(&self) -> String {
        self.image
            .clone()
            .unwrap_or_else(|| format!("ghcr.io/faultline/faultline:{}", env!("CARGO_PKG_VERSION")))
    }
}
