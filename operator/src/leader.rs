//! Leader election with a `coordination.k8s.io/v1` Lease, so that two operator replicas never
//! both reconcile.
//!
//! A replica acts only while it holds the Lease: it takes a Lease that is absent or expired,
//! renews its own, and backs off from one another replica renewed within the lease duration.
//! Every write carries the `resourceVersion` it read, so two replicas racing for an expired
//! Lease cannot both win: the API server answers the loser with 409 Conflict. A leader that
//! cannot renew stops acting before its Lease can expire (the renew deadline is shorter than
//! the lease duration), so a new leader never overlaps it.

use std::time::Duration;

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::Client;
use kube::api::{Api, ObjectMeta, PostParams};
use tracing::{info, warn};

/// Errors of the leader election.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read or write Lease {name}: {source}")]
    Lease {
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error("lost the leader Lease {0}")]
    Lost(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// One replica's handle on the shared Lease.
#[derive(Clone)]
pub struct LeaseLock {
    api: Api<Lease>,
    name: String,
    identity: String,
    /// How long a Lease stays valid after its last renewal.
    pub lease_duration: Duration,
}

impl LeaseLock {
    pub fn new(client: Client, namespace: &str, name: &str, identity: &str) -> Self {
        Self {
            api: Api::namespaced(client, namespace),
            name: name.to_owned(),
            identity: identity.to_owned(),
            lease_duration: Duration::from_secs(15),
        }
    }

    /// Takes or renews the Lease at time `now`. `Ok(true)`: this replica is the leader until
    /// `now + lease_duration`. `Ok(false)`: another replica holds it, or won a race.
    pub async fn try_acquire_or_renew(&self, now: Timestamp) -> Result<bool> {
        let current = self
            .api
            .get_opt(&self.name)
            .await
            .map_err(|e| self.err(e))?;
        let Some(mut lease) = current else {
            let lease = Lease {
                metadata: ObjectMeta {
                    name: Some(self.name.clone()),
                    ..ObjectMeta::default()
                },
                spec: Some(self.spec(now, 0, now)),
            };
            return match self.api.create(&PostParams::default(), &lease).await {
                Ok(_) => Ok(true),
                Err(kube::Error::Api(status)) if status.code == 409 => Ok(false),
                Err(e) => Err(self.err(e)),
            };
        };
        let spec = lease.spec.clone().unwrap_or_default();
        let holder = spec.holder_identity.as_deref();
        let transitions = spec.lease_transitions.unwrap_or(0);
        let new_spec = if holder == Some(self.identity.as_str()) {
            let acquired = spec.acquire_time.map(|t| t.0).unwrap_or(now);
            self.spec(acquired, transitions, now)
        } else {
            let renewed = spec.renew_time.or(spec.acquire_time).map(|t| t.0);
            let duration = i64::from(spec.lease_duration_seconds.unwrap_or(0));
            let expired = match renewed {
                Some(at) => at + SignedDuration::from_secs(duration) < now,
                None => true,
            };
            if holder.is_some() && !expired {
                return Ok(false);
            }
            info!(lease = %self.name, previous = holder.unwrap_or(""), "taking over the leader lease");
            self.spec(now, transitions + 1, now)
        };
        lease.spec = Some(new_spec);
        // `replace` sends the resourceVersion read above: a concurrent writer makes this 409.
        match self
            .api
            .replace(&self.name, &PostParams::default(), &lease)
            .await
        {
            Ok(_) => Ok(true),
            Err(kube::Error::Api(status)) if status.code == 409 => Ok(false),
            Err(e) => Err(self.err(e)),
        }
    }

    /// Gives the Lease up if this replica holds it, so another replica can take it at once
    /// instead of waiting for it to expire.
    pub async fn release(&self) -> Result<()> {
        let Some(mut lease) = self
            .api
            .get_opt(&self.name)
            .await
            .map_err(|e| self.err(e))?
        else {
            return Ok(());
        };
        let Some(spec) = lease.spec.as_mut() else {
            return Ok(());
        };
        if spec.holder_identity.as_deref() != Some(self.identity.as_str()) {
            return Ok(());
        }
        spec.holder_identity = None;
        match self
            .api
            .replace(&self.name, &PostParams::default(), &lease)
            .await
        {
            Ok(_) => Ok(()),
            // someone else wrote it meanwhile: it is not ours to release any more
            Err(kube::Error::Api(status)) if status.code == 409 => Ok(()),
            Err(e) => Err(self.err(e)),
        }
    }

    fn spec(&self, acquired: Timestamp, transitions: i32, now: Timestamp) -> LeaseSpec {
        LeaseSpec {
            holder_identity: Some(self.identity.clone()),
            lease_duration_seconds: Some(
                i32::try_from(self.lease_duration.as_secs()).unwrap_or(i32::MAX),
            ),
            acquire_time: Some(MicroTime(acquired)),
            renew_time: Some(MicroTime(now)),
            lease_transitions: Some(transitions),
            ..LeaseSpec::default()
        }
    }

    fn err(&self, source: kube::Error) -> Error {
        Error::Lease {
            name: self.name.clone(),
            source,
        }
    }

    /// Waits until this replica holds the Lease, then runs `work` while renewing. Returns
    /// `Err(Lost)` (after dropping `work`) as soon as renewals fail for longer than half the
    /// lease duration, well before the Lease can expire; returns `Ok` when `work` ends, after
    /// releasing the Lease.
    pub async fn run_as_leader<F>(&self, work: F, on_leader: impl Fn(bool)) -> Result<()>
    where
        F: std::future::Future<Output = ()>,
    {
        let retry = self.lease_duration / 5;
        loop {
            match self.try_acquire_or_renew(Timestamp::now()).await {
                Ok(true) => break,
                Ok(false) => {}
                Err(err) => warn!(cause = %err, "leader election failed"),
            }
            tokio::time::sleep(retry).await;
        }
        info!(lease = %self.name, identity = %self.identity, "became leader");
        on_leader(true);
        let renew = async {
            let deadline = self.lease_duration / 2;
            let mut last_renewed = tokio::time::Instant::now();
            loop {
                tokio::time::sleep(retry).await;
                let attempt =
                    tokio::time::timeout(retry, self.try_acquire_or_renew(Timestamp::now()));
                match attempt.await {
                    Ok(Ok(true)) => last_renewed = tokio::time::Instant::now(),
                    Ok(Ok(false)) => return Error::Lost(self.name.clone()),
                    Ok(Err(err)) => warn!(cause = %err, "cannot renew the leader lease"),
                    Err(_) => warn!("renewing the leader lease timed out"),
                }
                if last_renewed.elapsed() > deadline {
                    return Error::Lost(self.name.clone());
                }
            }
        };
        let result = tokio::select! {
            () = work => Ok(()),
            lost = renew => Err(lost),
        };
        on_leader(false);
        if result.is_ok()
            && let Err(err) = self.release().await
        {
            warn!(cause = %err, "cannot release the leader lease");
        }
        result
    }
}
