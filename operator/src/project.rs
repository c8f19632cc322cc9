//! The `FaultlineProject` reconciler: a team's project on a shared `ErrorTracker`.
//!
//! Per reconcile, inside the `finalizer` helper:
//! 1. admit the project: its tracker (`spec.tracker`, `namespace/name`) exists, the tracker's
//!    `projectNamespaceSelector` selects the project's namespace, the namespace names an
//!    organization (`organizationLabel`, else its name), and no older `FaultlineProject` of
//!    the same tracker claims the same project name in the same organization (oldest by
//!    creation time, then uid, wins). A refusal sets `Ready=False` with the reason, publishes
//!    a Warning Event and looks again a minute later;
//!    the spec must pass what the schema cannot check (the engine's check of the quotas, for
//!    a spec that did not pass an API server; else `InvalidSpec` naming the field), and the
//!    Secrets that `spec.alerts` names must exist in the project's namespace (else
//!    `SecretMissing`);
//! 2. register the project through the tracker's admin API with the tracker's admin token
//!    (`PUT /api/0/organizations/{org}/projects/{project}/`, idempotent), and declare its
//!    alert channels and rules ([`crate::project_alerts`]);
//! 3. apply the DSN Secret `<resource>-dsn` in the project's namespace, owned by the resource;
//! 4. write the status (`Ready`, organization, project id, DSN Secret, ingest URL, and the
//!    project's figures: events in the last hour and the last event seen, copied from the
//!    tracker's `status.projects`, which the tracker's reconciler fills from the engine; a
//!    tracker status change wakes the projects that name it).
//!
//! On deletion the finalizer removes the project's DSN keys in the engine (its events follow
//! retention), or with `deletionPolicy: Delete` erases the project and every stored event
//! (`POST .../erase/`); the Secret goes with its owner. This reconciler depends on the shared
//! [`crate::context`], [`crate::cluster`] and [`crate::conditions`] only, never on another
//! reconciler.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Namespace, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::core::{Selector, SelectorExt};
use kube::runtime::controller::Action;
use kube::runtime::events::EventType;
use kube::runtime::finalizer::{Event, finalizer};
use kube::{Resource, ResourceExt};
use serde_json::json;
use tracing::{info, instrument, warn};

use crate::builders::{self, project as build};
use crate::cluster::{self, apply_one};
use crate::conditions::condition_with;
use crate::context::Context;
use crate::crd::{
    DeletionPolicy, ErrorTracker, FaultlineProject, FaultlineProjectStatus, ProjectFigures,
};
use crate::engine_api::{self, AdminApi};
use crate::project_alerts;
use crate::{FIELD_MANAGER, PROJECT_FINALIZER};

/// A refused project looks again this often (a watch on trackers and namespaces wakes it
/// sooner).
pub const REFUSED_RETRY: Duration = Duration::from_secs(60);
/// A registered project is declared to the engine again this often.
pub const REGISTERED_RETRY: Duration = Duration::from_secs(600);

/// Errors of one `FaultlineProject` reconcile.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("FaultlineProject {0} has no namespace")]
    MissingNamespace(String),
    #[error("cannot read {kind} {name}: {source}")]
    Get {
        kind: &'static str,
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error(transparent)]
    Cluster(#[from] cluster::Error),
    #[error("cannot build the DSN Secret: {0}")]
    Build(#[from] builders::Error),
    #[error("{0}")]
    Engine(#[from] engine_api::Error),
    #[error("the engine gave project id {0:?}, not a number")]
    BadProjectId(String),
    #[error("cannot write status: {0}")]
    WriteStatus(#[source] kube::Error),
    #[error("finalizer: {0}")]
    Finalizer(#[source] Box<kube::runtime::finalizer::Error<Error>>),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Short label of the error for metrics.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Error::MissingNamespace(_) => "namespace",
            Error::Get { .. } => "get",
            Error::Cluster(e) => e.metric_label(),
            Error::Build(_) => "build",
            Error::Engine(_) | Error::BadProjectId(_) => "engine",
            Error::WriteStatus(_) => "status",
            Error::Finalizer(inner) => match &**inner {
                kube::runtime::finalizer::Error::ApplyFailed(e)
                | kube::runtime::finalizer::Error::CleanupFailed(e) => e.metric_label(),
                _ => "finalizer",
            },
        }
    }
}

/// Why a project is not served: the `Ready=False` reason and a message naming the fix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub reason: &'static str,
    pub message: String,
}

impl Refusal {
    fn new(reason: &'static str, message: String) -> Self {
        Self { reason, message }
    }
}

/// Whether `tracker` serves `FaultlineProject`s of the namespace `namespace`; `Err` says why
/// not.
pub fn namespace_allowed(
    tracker: &ErrorTracker,
    namespace: &Namespace,
) -> std::result::Result<(), Refusal> {
    let tracker_ref = format!(
        "{}/{}",
        tracker.namespace().unwrap_or_default(),
        tracker.name_any()
    );
    let Some(selector) = &tracker.spec.project_namespace_selector else {
        return Err(Refusal::new(
            "NamespaceNotAllowed",
            format!(
                "ErrorTracker {tracker_ref} serves no FaultlineProjects: its spec.projectNamespaceSelector is unset"
            ),
        ));
    };
    let selector = Selector::try_from(selector.clone()).map_err(|err| {
        Refusal::new(
            "NamespaceNotAllowed",
            format!(
                "the spec.projectNamespaceSelector of ErrorTracker {tracker_ref} is not valid: {err}"
            ),
        )
    })?;
    if selector.matches(
        namespace
            .metadata
            .labels
            .as_ref()
            .unwrap_or(&Default::default()),
    ) {
        Ok(())
    } else {
        Err(Refusal::new(
            "NamespaceNotAllowed",
            format!(
                "namespace {:?} is not selected by the spec.projectNamespaceSelector of ErrorTracker {tracker_ref}: ask its operators to label the namespace",
                namespace.name_any()
            ),
        ))
    }
}

/// The organization of the projects of `namespace` on `tracker`: the value of the tracker's
/// `organizationLabel` on the namespace, else the namespace's name.
pub fn organization(
    tracker: &ErrorTracker,
    namespace: &Namespace,
) -> std::result::Result<String, Refusal> {
    let name = namespace.name_any();
    let org = match &tracker.spec.organization_label {
        None => name.clone(),
        Some(label) => namespace
            .labels()
            .get(label)
            .cloned()
            .ok_or_else(|| {
                Refusal::new(
                    "NoOrganization",
                    format!(
                        "namespace {name:?} has no label {label:?}, which names the organization of its projects"
                    ),
                )
            })?,
    };
    let is_slug = !org.is_empty()
        && org.len() <= 64
        && !org.starts_with('-')
        && org
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if is_slug {
        Ok(org)
    } else {
        Err(Refusal::new(
            "NoOrganization",
            format!(
                "{org:?} (from namespace {name:?}) is no organization name: use lowercase letters, digits and '-'"
            ),
        ))
    }
}

/// The project name a resource claims: `spec.project`, else its own name.
pub fn project_name(project: &FaultlineProject) -> String {
    project
        .spec
        .project
        .clone()
        .unwrap_or_else(|| project.name_any())
}

/// Of several resources claiming one project name in one organization, the one that keeps
/// it: the oldest by creation time, then by uid.
pub fn winner<'a>(claims: &[&'a FaultlineProject]) -> Option<&'a FaultlineProject> {
    claims.iter().copied().min_by(|a, b| {
        let key = |p: &FaultlineProject| {
            (
                p.metadata.creation_timestamp.as_ref().map(|t| t.0),
                p.metadata.uid.clone().unwrap_or_default(),
            )
        };
        key(a).cmp(&key(b))
    })
}

/// Reconciles one `FaultlineProject` (the `Controller`'s reconcile function).
#[instrument(skip(project, ctx), fields(project = %project.name_any(), namespace = project.namespace().as_deref().unwrap_or("")))]
pub async fn reconcile(project: Arc<FaultlineProject>, ctx: Arc<Context>) -> Result<Action> {
    ctx.metrics.reconciles.inc();
    let namespace = project
        .namespace()
        .ok_or_else(|| Error::MissingNamespace(project.name_any()))?;
    let api: Api<FaultlineProject> = Api::namespaced(ctx.client.clone(), &namespace);
    let action = finalizer(
        &api,
        PROJECT_FINALIZER,
        Arc::clone(&project),
        |event| async {
            match event {
                Event::Apply(project) => apply(&project, &ctx).await,
                Event::Cleanup(project) => cleanup(&project, &ctx).await,
            }
        },
    )
    .await
    .map_err(|err| Error::Finalizer(Box::new(err)))?;
    ctx.reset_failures(&*project);
    Ok(action)
}

/// Requeues a failed reconcile with exponential backoff and counts the failure.
pub fn error_policy(project: Arc<FaultlineProject>, error: &Error, ctx: Arc<Context>) -> Action {
    let failures = ctx.record_failure(&*project);
    let delay = ctx.backoff.delay(failures);
    ctx.metrics.record_error(error.metric_label());
    warn!(
        project = %project.name_any(),
        cause = %error,
        failures,
        retry_in_s = delay.as_secs(),
        "project reconcile failed"
    );
    Action::requeue(delay)
}

/// A project that passed admission.
struct Admitted {
    tracker: ErrorTracker,
    organization: String,
    name: String,
}

async fn apply(project: &FaultlineProject, ctx: &Context) -> Result<Action> {
    let admitted = match admit(project, ctx).await? {
        Ok(admitted) => admitted,
        Err(refusal) => {
            refuse(project, ctx, &refusal, None).await?;
            return Ok(Action::requeue(REFUSED_RETRY));
        }
    };
    if let Err(err) = build::check(&project.spec) {
        let refusal = Refusal::new("InvalidSpec", err.to_string());
        refuse(project, ctx, &refusal, Some(&admitted)).await?;
        return Ok(Action::requeue(REFUSED_RETRY));
    }
    let namespace = project.namespace().unwrap_or_default();
    let alert_secrets =
        match project_alerts::read_secrets(ctx, &namespace, project.spec.alerts.as_ref())
            .await
            .map_err(|source| Error::Get {
                kind: "Secret",
                name: format!("{namespace}/<spec.alerts>"),
                source,
            })? {
            Ok(values) => values,
            Err(missing) => {
                let refusal = Refusal::new("SecretMissing", missing);
                refuse(project, ctx, &refusal, Some(&admitted)).await?;
                return Ok(Action::requeue(REFUSED_RETRY));
            }
        };
    match register(project, ctx, &admitted, &alert_secrets).await {
        Ok(status) => {
            let changed = !same_ready(project, &status);
            patch_status(project, ctx, &status).await?;
            if changed {
                let message = ready_message(&status);
                info!(organization = %admitted.organization, project = %admitted.name, "project registered");
                publish(project, ctx, EventType::Normal, "Registered", message).await;
            }
            Ok(Action::requeue(REGISTERED_RETRY))
        }
        Err(err) => {
            let reason = match &err {
                Error::Engine(e) if e.is_refusal() => "Rejected",
                Error::Engine(_) => "EngineUnavailable",
                _ => "ReconcileFailed",
            };
            let refusal = Refusal::new(reason, err.to_string());
            if let Err(status_err) = refuse(project, ctx, &refusal, Some(&admitted)).await {
                warn!(cause = %status_err, "cannot mark the project not ready");
            }
            Err(err)
        }
    }
}

/// Checks tracker, namespace, organization and name; the outer `Err` is a failed API call.
async fn admit(
    project: &FaultlineProject,
    ctx: &Context,
) -> Result<std::result::Result<Admitted, Refusal>> {
    let Some((tracker_ns, tracker_name)) = project.spec.tracker_ref() else {
        return Ok(Err(Refusal::new(
            "TrackerNotFound",
            format!(
                "spec.tracker {:?} is not namespace/name",
                project.spec.tracker
            ),
        )));
    };
    let trackers: Api<ErrorTracker> = Api::namespaced(ctx.client.clone(), tracker_ns);
    let tracker = trackers
        .get_opt(tracker_name)
        .await
        .map_err(|source| Error::Get {
            kind: "ErrorTracker",
            name: project.spec.tracker.clone(),
            source,
        })?;
    let Some(tracker) = tracker else {
        return Ok(Err(Refusal::new(
            "TrackerNotFound",
            format!("ErrorTracker {} does not exist", project.spec.tracker),
        )));
    };
    let mut namespaces = NamespaceCache::default();
    let own_namespace = project.namespace().unwrap_or_default();
    let Some(namespace) = namespaces.get(ctx, &own_namespace).await? else {
        return Ok(Err(Refusal::new(
            "NamespaceNotAllowed",
            format!("namespace {own_namespace:?} cannot be read"),
        )));
    };
    if let Err(refusal) = namespace_allowed(&tracker, &namespace) {
        return Ok(Err(refusal));
    }
    let org = match organization(&tracker, &namespace) {
        Ok(org) => org,
        Err(refusal) => return Ok(Err(refusal)),
    };
    let name = project_name(project);

    // Every resource of this tracker claiming the name, in an allowed namespace of the same
    // organization, takes part; the oldest keeps the name.
    let all: Api<FaultlineProject> = Api::all(ctx.client.clone());
    let listed = all
        .list(&ListParams::default())
        .await
        .map_err(|source| cluster::Error::List {
            kind: "FaultlineProject",
            source,
        })?
        .items;
    let mut claims = Vec::new();
    for other in &listed {
        if other.spec.tracker != project.spec.tracker || project_name(other) != name {
            continue;
        }
        let Some(other_ns) = namespaces
            .get(ctx, &other.namespace().unwrap_or_default())
            .await?
        else {
            continue;
        };
        let same_org = namespace_allowed(&tracker, &other_ns).is_ok()
            && organization(&tracker, &other_ns).ok().as_deref() == Some(org.as_str());
        if same_org {
            claims.push(other);
        }
    }
    if !claims.iter().any(|c| c.uid() == project.uid()) {
        claims.push(project);
    }
    if let Some(first) = winner(&claims)
        && first.uid() != project.uid()
    {
        return Ok(Err(Refusal::new(
            "NameConflict",
            format!(
                "project {name:?} of organization {org:?} is already claimed by FaultlineProject {}/{} (created earlier)",
                first.namespace().unwrap_or_default(),
                first.name_any()
            ),
        )));
    }
    Ok(Ok(Admitted {
        tracker,
        organization: org,
        name,
    }))
}

/// Namespaces read once per reconcile.
#[derive(Default)]
struct NamespaceCache(HashMap<String, Option<Namespace>>);

impl NamespaceCache {
    async fn get(&mut self, ctx: &Context, name: &str) -> Result<Option<Namespace>> {
        if let Some(found) = self.0.get(name) {
            return Ok(found.clone());
        }
        let api: Api<Namespace> = Api::all(ctx.client.clone());
        let found = api.get_opt(name).await.map_err(|source| Error::Get {
            kind: "Namespace",
            name: name.to_owned(),
            source,
        })?;
        self.0.insert(name.to_owned(), found.clone());
        Ok(found)
    }
}

/// Registers the project with the engine and applies its DSN Secret; returns the new status.
async fn register(
    project: &FaultlineProject,
    ctx: &Context,
    admitted: &Admitted,
    alert_secrets: &project_alerts::SecretValues,
) -> Result<FaultlineProjectStatus> {
    let tracker_ns = admitted.tracker.namespace().unwrap_or_default();
    let tracker_name = admitted.tracker.name_any();
    let Some(token) = cluster::admin_token(&ctx.client, &tracker_ns, &tracker_name).await? else {
        return Err(Error::Engine(engine_api::Error::Status {
            url: ctx.admin_service(&tracker_ns, &tracker_name),
            status: http::StatusCode::SERVICE_UNAVAILABLE,
            body: "the tracker has no admin token yet".into(),
        }));
    };
    let namespace = project.namespace().unwrap_or_default();
    let secret_name = build::project_secret_name(&project.name_any());
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), &namespace);
    let existing = secrets
        .get_opt(&secret_name)
        .await
        .map_err(|source| Error::Get {
            kind: "Secret",
            name: secret_name.clone(),
            source,
        })?;
    let keys = build::resolve_keys(&project.spec, existing.as_ref());
    let admin = AdminApi::new(ctx.admin_service(&tracker_ns, &tracker_name), token);
    let registered = admin
        .register_project(
            &admitted.organization,
            &admitted.name,
            &build::declaration(&project.spec, &keys),
        )
        .await?;
    let id: u64 = registered
        .id
        .parse()
        .map_err(|_| Error::BadProjectId(registered.id.clone()))?;
    let secret = build::dsn_secret(project, &admitted.tracker, id, &keys)?;
    apply_one(&ctx.client, &namespace, &secret).await?;

    let previous = project.status.clone().unwrap_or_default();
    let alerts = project_alerts::declared(
        project.spec.alerts.as_ref(),
        &namespace,
        &admitted.organization,
        &admitted.name,
        alert_secrets,
    );
    project_alerts::sync(&admin, &admitted.organization, &alerts, &previous).await?;
    let generation = project.metadata.generation;
    let figures = figures(&admitted.tracker, &admitted.organization, &admitted.name);
    Ok(FaultlineProjectStatus {
        conditions: vec![condition_with(
            &previous.conditions,
            generation,
            "Ready",
            "True",
            "Registered",
            format!(
                "project {:?} of organization {:?} is registered; its DSN is in Secret {secret_name}",
                admitted.name, admitted.organization
            ),
        )],
        observed_generation: generation,
        organization: Some(admitted.organization.clone()),
        project: Some(admitted.name.clone()),
        project_id: Some(id),
        dsn_secret: Some(secret_name),
        ingest_url: Some(builders::ingest_url(&admitted.tracker)),
        events_last_hour: figures.and_then(|f| f.events_last_hour),
        last_event_seen: figures.and_then(|f| f.last_event_seen.clone()),
        alert_channels: alerts.channels.iter().map(|(n, _)| n.clone()).collect(),
        alert_rules: alerts.rules.iter().map(|(n, _)| n.clone()).collect(),
        alerts_digest: alerts.digest,
    })
}

/// The figures of project `name` of `organization` in the status of `tracker` (which its
/// reconciler fills from the engine): this reconciler never asks the engine for them.
pub fn figures<'a>(
    tracker: &'a ErrorTracker,
    organization: &str,
    name: &str,
) -> Option<&'a ProjectFigures> {
    tracker
        .status
        .as_ref()?
        .projects
        .iter()
        .find(|p| p.organization == organization && p.name == name)
}

/// Marks the project `Ready=False` with the refusal and publishes a Warning Event when the
/// reason or message changed. What was registered before (id, Secret) stays in the status, so
/// the finalizer still removes the keys.
async fn refuse(
    project: &FaultlineProject,
    ctx: &Context,
    refusal: &Refusal,
    admitted: Option<&Admitted>,
) -> Result<()> {
    let previous = project.status.clone().unwrap_or_default();
    let generation = project.metadata.generation;
    let status = FaultlineProjectStatus {
        conditions: vec![condition_with(
            &previous.conditions,
            generation,
            "Ready",
            "False",
            refusal.reason,
            refusal.message.clone(),
        )],
        observed_generation: generation,
        organization: admitted
            .map(|a| a.organization.clone())
            .or(previous.organization.clone()),
        project: admitted
            .map(|a| a.name.clone())
            .or(previous.project.clone()),
        ..previous.clone()
    };
    let changed = !same_ready(project, &status);
    patch_status(project, ctx, &status).await?;
    if changed {
        warn!(reason = refusal.reason, message = %refusal.message, "project not served");
        publish(
            project,
            ctx,
            EventType::Warning,
            refusal.reason,
            refusal.message.clone(),
        )
        .await;
    }
    Ok(())
}

fn ready(status: &FaultlineProjectStatus) -> Option<&Condition> {
    status.conditions.iter().find(|c| c.type_ == "Ready")
}

fn ready_message(status: &FaultlineProjectStatus) -> String {
    ready(status).map(|c| c.message.clone()).unwrap_or_default()
}

/// Whether the `Ready` condition keeps its status, reason and message.
fn same_ready(project: &FaultlineProject, status: &FaultlineProjectStatus) -> bool {
    let before = project.status.as_ref().and_then(ready);
    let after = ready(status);
    match (before, after) {
        (Some(b), Some(a)) => {
            b.status == a.status && b.reason == a.reason && b.message == a.message
        }
        _ => false,
    }
}

/// Publishes a Kubernetes Event about `project`; a failure is logged, not fatal.
async fn publish(
    project: &FaultlineProject,
    ctx: &Context,
    type_: EventType,
    reason: &str,
    note: String,
) {
    ctx.publish(project, type_, reason, note).await;
}

async fn patch_status(
    project: &FaultlineProject,
    ctx: &Context,
    status: &FaultlineProjectStatus,
) -> Result<()> {
    let namespace = project.namespace().unwrap_or_default();
    let api: Api<FaultlineProject> = Api::namespaced(ctx.client.clone(), &namespace);
    let patch = json!({
        "apiVersion": FaultlineProject::api_version(&()),
        "kind": FaultlineProject::kind(&()),
        "status": status,
    });
    api.patch_status(
        &project.name_any(),
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&patch),
    )
    .await
    .map_err(Error::WriteStatus)?;
    Ok(())
}

/// Removes the project's keys in the engine (`Retain`), or erases the project with its events
/// (`Delete`), when it was registered and its tracker still exists; the DSN Secret goes with
/// its owner.
async fn cleanup(project: &FaultlineProject, ctx: &Context) -> Result<Action> {
    let status = project.status.clone().unwrap_or_default();
    let registered = status.project_id.is_some();
    let (Some(org), Some(name), Some((tracker_ns, tracker_name))) = (
        status.organization.as_deref(),
        status.project.as_deref(),
        project.spec.tracker_ref(),
    ) else {
        return Ok(Action::await_change());
    };
    if !registered {
        return Ok(Action::await_change());
    }
    let trackers: Api<ErrorTracker> = Api::namespaced(ctx.client.clone(), tracker_ns);
    let tracker = trackers
        .get_opt(tracker_name)
        .await
        .map_err(|source| Error::Get {
            kind: "ErrorTracker",
            name: project.spec.tracker.clone(),
            source,
        })?;
    if tracker.is_none() {
        info!("the tracker is gone; nothing to remove");
        return Ok(Action::await_change());
    }
    let Some(token) = cluster::admin_token(&ctx.client, tracker_ns, tracker_name).await? else {
        return Ok(Action::await_change());
    };
    let admin = AdminApi::new(ctx.admin_service(tracker_ns, tracker_name), token);
    project_alerts::remove(&admin, org, &status).await?;
    match project.spec.deletion_policy {
        DeletionPolicy::Retain => {
            admin.unregister_project(org, name).await?;
            let note = format!(
                "the DSN keys of project {name:?} of organization {org:?} are removed; its events follow its retention"
            );
            info!(organization = org, project = name, "project keys removed");
            publish(project, ctx, EventType::Normal, "KeysRemoved", note).await;
        }
        DeletionPolicy::Delete => {
            admin.erase_project(org, name).await?;
            let note = format!(
                "project {name:?} of organization {org:?} is erased (deletionPolicy Delete): its DSN keys and every stored event are gone"
            );
            info!(organization = org, project = name, "project erased");
            publish(project, ctx, EventType::Normal, "ProjectErased", note).await;
        }
    }
    ctx.metrics.cleanups.inc();
    Ok(Action::await_change())
}

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, Time};
    use k8s_openapi::jiff::Timestamp;
    use kube::api::ObjectMeta;

    use super::*;
    use crate::crd::{ErrorTrackerSpec, FaultlineProjectSpec};

    fn tracker(selector: Option<LabelSelector>, label: Option<&str>) -> ErrorTracker {
        let mut t = ErrorTracker::new(
            "shared",
            ErrorTrackerSpec {
                project_namespace_selector: selector,
                organization_label: label.map(str::to_owned),
                ..ErrorTrackerSpec::default()
            },
        );
        t.metadata.namespace = Some("platform".into());
        t
    }

    fn namespace(name: &str, labels: &[(&str, &str)]) -> Namespace {
        Namespace {
            metadata: ObjectMeta {
                name: Some(name.into()),
                labels: Some(
                    labels
                        .iter()
                        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                        .collect(),
                ),
                ..ObjectMeta::default()
            },
            ..Namespace::default()
        }
    }

    fn tenants() -> LabelSelector {
        LabelSelector {
            match_labels: Some([("faultline.dev/tenant".to_owned(), "true".to_owned())].into()),
            ..LabelSelector::default()
        }
    }

    #[test]
    fn only_selected_namespaces_attach_projects() {
        let allowed = namespace("shop", &[("faultline.dev/tenant", "true")]);
        let other = namespace("sandbox", &[]);
        assert!(namespace_allowed(&tracker(Some(tenants()), None), &allowed).is_ok());
        let refused = namespace_allowed(&tracker(Some(tenants()), None), &other).unwrap_err();
        assert_eq!(refused.reason, "NamespaceNotAllowed");
        assert!(
            refused.message.contains("\"sandbox\""),
            "{}",
            refused.message
        );
        let unset = namespace_allowed(&tracker(None, None), &allowed).unwrap_err();
        assert!(
            unset.message.contains("projectNamespaceSelector is unset"),
            "{}",
            unset.message
        );
        // `{}` selects every namespace
        assert!(namespace_allowed(&tracker(Some(LabelSelector::default()), None), &other).is_ok());
    }

    #[test]
    fn the_organization_is_the_namespace_or_its_label() {
        let ns = namespace("shop-prod", &[("team", "shop")]);
        assert_eq!(
            organization(&tracker(None, None), &ns).unwrap(),
            "shop-prod"
        );
        assert_eq!(
            organization(&tracker(None, Some("team")), &ns).unwrap(),
            "shop"
        );
        let missing = organization(&tracker(None, Some("owner")), &ns).unwrap_err();
        assert_eq!(missing.reason, "NoOrganization");
        let bad = namespace("x", &[("team", "Shop_Team")]);
        let refused = organization(&tracker(None, Some("team")), &bad).unwrap_err();
        assert!(
            refused.message.contains("\"Shop_Team\""),
            "{}",
            refused.message
        );
    }

    fn claim(name: &str, created: i64, uid: &str) -> FaultlineProject {
        let mut p = FaultlineProject::new(
            name,
            FaultlineProjectSpec {
                tracker: "platform/shared".into(),
                project: Some("api".into()),
                platform: None,
                retention_days: None,
                rate_limit: None,
                quotas: Vec::new(),
                keys: Vec::new(),
                grouping_enhancements: None,
                fingerprinting_rules: None,
                privacy: None,
                deletion_policy: DeletionPolicy::Retain,
                alerts: None,
            },
        );
        p.metadata.uid = Some(uid.into());
        p.metadata.creation_timestamp = Some(Time(Timestamp::from_second(created).unwrap()));
        p
    }

    #[test]
    fn the_oldest_claim_wins_then_the_smaller_uid() {
        let old = claim("a", 100, "zz");
        let young = claim("b", 200, "aa");
        let twin = claim("c", 100, "yy");
        let winner_of = |claims: &[&FaultlineProject]| winner(claims).unwrap().name_any();
        assert_eq!(winner_of(&[&young, &old]), "a");
        assert_eq!(winner_of(&[&old, &twin, &young]), "c");
        assert_eq!(
            winner_of(&[&twin, &old]),
            "c",
            "the order of the list does not matter"
        );
    }
}
