//! faultline operator: turns an `ErrorTracker` resource into a running, declaratively managed
//! faultline engine.
//!
//! Layout, in the order data flows:
//! - [`crd`]: the `ErrorTracker` and `Backup` API types (`faultline.dev/v1alpha1`); the CRD
//!   YAML in `crds/` is generated from them.
//! - [`builders`]: pure functions from an `ErrorTracker` (plus the DSN keys already stored) to
//!   every Kubernetes object: ServiceAccount, ConfigMap with the engine config, DSN Secrets,
//!   StatefulSet, Services, PodDisruptionBudget, NetworkPolicy, Ingress.
//! - [`tracker`]: the `ErrorTracker` reconciler. It reads existing DSN keys, applies the built
//!   objects by server-side apply under one field manager, deletes objects the spec dropped,
//!   writes the status, and runs a finalizer for cleanup. Errors requeue with exponential
//!   backoff.
//! - [`backup`]: the `Backup` reconciler (an on-demand backup through the engine's admin API)
//!   and the backup part of the tracker's status; [`engine_api`] is the admin API client.
//! - [`engine_status`]: the engine's own report in the tracker's status (the
//!   `ObjectStoreReachable` condition, every project's figures).
//! - [`project`]: the `FaultlineProject` reconciler: admits a team's project (tracker,
//!   namespace selector, organization, name conflicts), registers it through the tracker's
//!   admin API and writes its DSN Secret in the team's namespace; [`project_alerts`] declares
//!   its own alert channels and rules.
//! - [`controller`] only runs the reconcilers, on the shared [`context`], the server-side
//!   apply helpers of [`cluster`] and the condition helpers of [`conditions`]. Arrows point
//!   one way: `tracker` uses `backup` and `engine_status` (for its status); `project` reads
//!   its figures from the tracker's status, not from `tracker`; no reconciler uses
//!   `controller`.
//! - [`metrics`]: Prometheus counters served on `/metrics`.
//! - [`leader`]: a `coordination.k8s.io` Lease so that only one operator replica acts.
//! - [`render`]: the objects of one tracker as a YAML stream, without a cluster.
//!
//! Guarantees: the builders never call the API server; keys are generated once and then read
//! back from their Secret; the operator never depends on the engine crate, only on the shared
//! `faultline-config` type, so the config it writes is the one the engine parses.

pub mod backup;
pub mod builders;
pub mod cluster;
pub mod conditions;
pub mod context;
pub mod controller;
pub mod crd;
pub mod engine_api;
pub mod engine_status;
pub mod leader;
pub mod metrics;
pub mod project;
pub mod project_alerts;
pub mod render;
pub mod tracker;

pub use controller::{Context, run};
pub use crd::{Backup, ErrorTracker, ErrorTrackerSpec, ErrorTrackerStatus, FaultlineProject};

/// Every CustomResourceDefinition as (file name in `crds/`, YAML): what
/// `faultline-operator crd` prints (as one stream) or writes (`--out-dir`).
pub fn crd_files() -> Vec<(&'static str, String)> {
    use kube::CustomResourceExt;
    let yaml = |crd| serde_yaml::to_string(&crd).expect("the CRD serializes");
    vec![
        ("errortracker.yaml", yaml(ErrorTracker::crd())),
        ("backup.yaml", yaml(Backup::crd())),
        ("faultlineproject.yaml", yaml(crd::FaultlineProject::crd())),
    ]
}

/// Every CustomResourceDefinition as one YAML stream, in the order of [`crd_files`].
pub fn crd_yaml() -> String {
    crd_files()
        .into_iter()
        .map(|(_, yaml)| yaml)
        .collect::<Vec<_>>()
        .join("---\n")
}

/// Runs the controller while this replica holds the leader Lease, until `shutdown` turns true.
///
/// A replica that is not the leader waits for the Lease and exits at once on shutdown; the
/// leader finishes its running reconciles first. `Err(Lost)` means the Lease was lost: the
/// controller has been stopped and the process should exit so that it restarts as a follower.
pub async fn run_elected(
    ctx: Context,
    lock: leader::LeaseLock,
    shutdown: tokio::sync::watch::Receiver<bool>,
) -> leader::Result<()> {
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    let leading = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&leading);
    let gauge = Arc::clone(&ctx.metrics);
    let mut controller_shutdown = shutdown.clone();
    let controller = controller::run_with(ctx, async move {
        let _ = controller_shutdown.wait_for(|stop| *stop).await;
    });
    let elected = lock.run_as_leader(controller, move |leader| {
        flag.store(leader, Ordering::SeqCst);
        gauge.leader.set(i64::from(leader));
    });
    let mut shutdown = shutdown;
    let follower_exit = async {
        let _ = shutdown.wait_for(|stop| *stop).await;
        if leading.load(Ordering::SeqCst) {
            // the leader stops through the controller's graceful shutdown instead
            std::future::pending::<()>().await;
        }
    };
    tokio::select! {
        result = elected => result,
        () = follower_exit => Ok(()),
    }
}

/// Selects rustls' ring crypto provider for the Kubernetes client, once per process. Call it
/// before creating a `kube::Client`; later calls do nothing.
pub fn install_crypto_provider() {
    // Err only means a provider is installed already, which is what we want.
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// Field manager of every server-side apply the operator sends.
pub const FIELD_MANAGER: &str = "faultline-operator";
/// Finalizer the operator puts on every `ErrorTracker`.
pub const FINALIZER: &str = "faultline.dev/cleanup";
/// Finalizer the operator puts on every `FaultlineProject`: removes the project's keys.
pub const PROJECT_FINALIZER: &str = "faultline.dev/project-keys";
