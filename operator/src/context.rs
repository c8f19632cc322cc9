//! What every reconciler shares: the Kubernetes client, metrics, requeue delays, the
//! failure counts behind the backoff, and where each tracker's admin API is reached.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use kube::api::DynamicObject;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::reflector::ObjectRef;
use kube::{Client, Resource};

use crate::builders;
use crate::metrics::Metrics;

/// Requeue delays.
#[derive(Debug, Clone, Copy)]
pub struct Backoff {
    /// Delay after the first failure; doubled on each further failure.
    pub base: Duration,
    /// Longest delay.
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            base: Duration::from_secs(5),
            max: Duration::from_secs(300),
        }
    }
}

impl Backoff {
    /// The delay after `failures` consecutive failures (1 = first failure).
    pub fn delay(&self, failures: u32) -> Duration {
        let factor = 2u32.saturating_pow(failures.saturating_sub(1).min(16));
        self.base.saturating_mul(factor).min(self.max)
    }
}

/// What every reconcile shares.
pub struct Context {
    pub client: Client,
    pub metrics: Arc<Metrics>,
    pub backoff: Backoff,
    /// Namespace the operator runs in (the trackers' NetworkPolicies admit it to the admin
    /// port).
    pub operator_namespace: String,
    /// Base URL of every tracker's admin API instead of its pods' addresses: each tracker is
    /// then one endpoint, asked once (tests point it at a stand-in for the engine).
    pub admin_url: Option<String>,
    /// How often a running `Backup` is polled (10 s) and a pending one looked at again (15 s).
    pub backup_intervals: crate::backup::Intervals,
    /// Publishes Kubernetes Events about the resources the operator acts on.
    pub recorder: Recorder,
    /// A tracker's engine is asked for its status at most this often (see
    /// [`crate::engine_status`]).
    pub engine_check_interval: Duration,
    failures: Mutex<HashMap<ObjectRef<DynamicObject>, u32>>,
    /// Backup id the engine gave, by `Backup` uid, until the backup is over.
    started_backups: Mutex<HashMap<String, String>>,
}

impl Context {
    pub fn new(client: Client, metrics: Arc<Metrics>) -> Self {
        let reporter = Reporter {
            controller: crate::FIELD_MANAGER.to_owned(),
            instance: None,
        };
        Self {
            recorder: Recorder::new(client.clone(), reporter),
            client,
            metrics,
            backoff: Backoff::default(),
            operator_namespace: builders::DEFAULT_OPERATOR_NAMESPACE.to_owned(),
            admin_url: None,
            backup_intervals: crate::backup::Intervals::default(),
            engine_check_interval: crate::engine_status::CHECK_INTERVAL,
            failures: Mutex::new(HashMap::new()),
            started_backups: Mutex::new(HashMap::new()),
        }
    }

    /// Remembers (`Some`) or forgets (`None`) the id of the backup the engine started for the
    /// `Backup` with `uid`: if writing the status fails, or the next reconcile sees a cached
    /// object older than that write, it polls that backup instead of starting another.
    pub(crate) fn set_started_backup(&self, uid: &str, id: Option<String>) {
        let mut started = self.started_backups.lock().expect("started backups lock");
        match id {
            Some(id) => started.insert(uid.to_owned(), id),
            None => started.remove(uid),
        };
    }

    /// The id remembered by [`Context::set_started_backup`].
    pub(crate) fn started_backup(&self, uid: &str) -> Option<String> {
        self.started_backups
            .lock()
            .expect("started backups lock")
            .get(uid)
            .cloned()
    }

    /// Base URL of the admin API of tracker `name` in `namespace` through its load-balanced
    /// `<tracker>-admin` Service: for requests any pod answers alike (projects live in the
    /// object store).
    pub fn admin_service(&self, namespace: &str, name: &str) -> String {
        match &self.admin_url {
            Some(url) => url.clone(),
            None => format!(
                "http://{}.{namespace}.svc:{}",
                builders::admin_service_name(name),
                builders::ADMIN_PORT
            ),
        }
    }

    /// Base URL of the admin API of pod `ordinal` of tracker `name` in `namespace`, through
    /// the headless Service (`<tracker>-<ordinal>.<tracker>-pods`). One pod, not the
    /// load-balanced `<tracker>-admin` Service: an engine keeps its running and failed backup
    /// jobs in memory, so a backup is polled on the pod that started it.
    pub fn admin_base(&self, namespace: &str, name: &str, ordinal: i32) -> String {
        match &self.admin_url {
            Some(url) => url.clone(),
            None => format!(
                "http://{name}-{ordinal}.{}.{namespace}.svc:{}",
                builders::headless_service_name(name),
                builders::ADMIN_PORT
            ),
        }
    }

    /// Publishes a Kubernetes Event about `object`; a failure is logged, not fatal.
    pub(crate) async fn publish<K: Resource<DynamicType = ()>>(
        &self,
        object: &K,
        type_: EventType,
        reason: &str,
        note: String,
    ) {
        let event = Event {
            type_,
            reason: reason.to_owned(),
            note: Some(note),
            action: "Reconcile".into(),
            secondary: None,
        };
        if let Err(err) = self.recorder.publish(&event, &object.object_ref(&())).await {
            tracing::warn!(cause = %err, reason, "cannot publish event");
        }
    }

    pub(crate) fn reset_failures<K: Resource<DynamicType = ()>>(&self, object: &K) {
        self.failures
            .lock()
            .expect("failures lock")
            .remove(&ObjectRef::from_obj(object).erase());
    }

    pub(crate) fn record_failure<K: Resource<DynamicType = ()>>(&self, object: &K) -> u32 {
        let mut failures = self.failures.lock().expect("failures lock");
        let count = failures
            .entry(ObjectRef::from_obj(object).erase())
            .or_insert(0);
        *count += 1;
        *count
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_and_is_capped() {
        let backoff = Backoff::default();
        let delays: Vec<u64> = (1..=8).map(|n| backoff.delay(n).as_secs()).collect();
        assert_eq!(delays, [5, 10, 20, 40, 80, 160, 300, 300]);
        assert_eq!(backoff.delay(u32::MAX).as_secs(), 300);
    }
}
