//! Runs the reconcilers: one `Controller` per resource kind, each reconciler in its own
//! module on the shared [`Context`] ([`crate::tracker`] for `ErrorTracker`, [`crate::backup`]
//! for `Backup`, [`crate::project`] for `FaultlineProject`). This file only wires watches to reconcilers; it holds no reconcile logic.

use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{Namespace, Secret};
use kube::api::Api;
use kube::runtime::controller::Controller;
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Client, ResourceExt};

pub use crate::context::Context;
use crate::crd::{Backup, ErrorTracker, FaultlineProject};
use crate::metrics::Metrics;
use crate::{project, tracker};

/// Runs the controllers (`ErrorTracker`, `Backup` and `FaultlineProject`) until `shutdown`
/// resolves.
pub async fn run(
    client: Client,
    metrics: Arc<Metrics>,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) {
    run_with(Context::new(client, metrics), shutdown).await;
}

/// [`run`] with a prepared context.
pub async fn run_with(
    ctx: Context,
    shutdown: impl std::future::Future<Output = ()> + Send + Sync + 'static,
) {
    let client = ctx.client.clone();
    let ctx = Arc::new(ctx);
    let owned =
        watcher::Config::default().labels("app.kubernetes.io/managed-by=faultline-operator");
    let (stop_backups, backups_shutdown) = tokio::sync::watch::channel(false);
    let controller = Controller::new(
        Api::<ErrorTracker>::all(client.clone()),
        watcher::Config::default(),
    );
    let known = controller.store();
    let trackers = controller
        .owns(Api::<StatefulSet>::all(client.clone()), owned.clone())
        .owns(Api::<Secret>::all(client.clone()), owned.clone())
        // a Secret the user keeps (the OIDC client secret) wakes the trackers that name it, so a
        // created or changed Secret is picked up at once
        .watches(
            Api::<Secret>::all(client.clone()),
            watcher::Config::default(),
            move |secret| tracker::trackers_naming(&secret, &known.state()),
        )
        // a finished Backup refreshes its tracker's lastBackup at once
        .watches(
            Api::<Backup>::all(client.clone()),
            watcher::Config::default(),
            |backup| {
                let namespace = backup.namespace()?;
                Some(ObjectRef::new(&backup.spec.tracker).within(&namespace))
            },
        )
        .graceful_shutdown_on(async move {
            shutdown.await;
            let _ = stop_backups.send(true);
        })
        .run(tracker::reconcile, tracker::error_policy, Arc::clone(&ctx))
        .for_each(|result| async move {
            if let Err(err) = result {
                tracing::debug!(cause = %err, "reconcile event");
            }
        });
    let mut projects_shutdown = backups_shutdown.clone();
    let mut backups_shutdown = backups_shutdown;
    let backups = Controller::new(
        Api::<Backup>::all(client.clone()),
        watcher::Config::default(),
    )
    .graceful_shutdown_on(async move {
        let _ = backups_shutdown.wait_for(|stop| *stop).await;
    })
    .run(
        crate::backup::reconcile,
        crate::backup::error_policy,
        Arc::clone(&ctx),
    )
    .for_each(|result| async move {
        if let Err(err) = result {
            tracing::debug!(cause = %err, "backup reconcile event");
        }
    });
    let controller = Controller::new(
        Api::<FaultlineProject>::all(client.clone()),
        watcher::Config::default(),
    );
    let by_tracker = controller.store();
    let by_namespace = controller.store();
    let projects = controller
        .owns(Api::<Secret>::all(client.clone()), owned)
        // a tracker that appears, changes its selector or organization label, or goes,
        // re-admits the projects that name it
        .watches(
            Api::<ErrorTracker>::all(client.clone()),
            watcher::Config::default(),
            move |tracker| {
                let wanted = format!(
                    "{}/{}",
                    tracker.namespace().unwrap_or_default(),
                    tracker.name_any()
                );
                by_tracker
                    .state()
                    .into_iter()
                    .filter(|p| p.spec.tracker == wanted)
                    .map(|p| ObjectRef::from_obj(&*p))
                    .collect::<Vec<_>>()
            },
        )
        // a namespace whose labels change re-admits its projects
        .watches(
            Api::<Namespace>::all(client),
            watcher::Config::default(),
            move |namespace| {
                let name = namespace.name_any();
                by_namespace
                    .state()
                    .into_iter()
                    .filter(|p| p.namespace().as_deref() == Some(name.as_str()))
                    .map(|p| ObjectRef::from_obj(&*p))
                    .collect::<Vec<_>>()
            },
        )
        .graceful_shutdown_on(async move {
            let _ = projects_shutdown.wait_for(|stop| *stop).await;
        })
        .run(project::reconcile, project::error_policy, ctx)
        .for_each(|result| async move {
            if let Err(err) = result {
                tracing::debug!(cause = %err, "project reconcile event");
            }
        });
    futures::join!(trackers, backups, projects);
}
