//! Runs the reconcilers: one `Controller` per resource kind, each reconciler in its own
//! module on the shared [`Context`] ([`crate::tracker`] for `ErrorTracker`, [`crate::backup`]
//! for `Backup`). This file only wires watches to reconcilers; it holds no reconcile logic.

use std::sync::Arc;

use futures::StreamExt;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::Secret;
use kube::api::Api;
use kube::runtime::controller::Controller;
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Client, ResourceExt};

pub use crate::context::Context;
use crate::crd::{Backup, ErrorTracker};
use crate::metrics::Metrics;
use crate::tracker;

/// Runs the controllers (`ErrorTracker` and `Backup`) until `shutdown` resolves.
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
        .owns(Api::<Secret>::all(client.clone()), owned)
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
    let mut backups_shutdown = backups_shutdown;
    let backups = Controller::new(Api::<Backup>::all(client), watcher::Config::default())
        .graceful_shutdown_on(async move {
            let _ = backups_shutdown.wait_for(|stop| *stop).await;
        })
        .run(crate::backup::reconcile, crate::backup::error_policy, ctx)
        .for_each(|result| async move {
            if let Err(err) = result {
                tracing::debug!(cause = %err, "backup reconcile event");
            }
        });
    futures::join!(trackers, backups);
}
