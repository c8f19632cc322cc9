//! The maintenance lease: which node runs retention, compaction and backups.
//!
//! One object, `_leases/maintenance.json`, holds the holder's name and an expiry. A node takes
//! the lease when the object is missing (create-only PUT), expired, or already its own
//! (conditional PUT with `If-Match` on the ETag it read), and renews it the same way while it
//! works. Two nodes racing for it both read the same ETag and only one PUT succeeds. The object
//! store is the only shared state, so no Kubernetes client is needed.
//!
//! The local directory store cannot compare-and-swap (`object_store` has no `PutMode::Update`
//! there); a local store is used by one machine, and there the lease falls back to a read, a
//! check and a plain overwrite. Maintenance stays correct even if two holders overlap, because
//! every manifest change is an optimistic create-only commit; the lease only avoids doing the
//! work twice and keeps backup pruning away from a backup being written.

use std::time::Duration;

use bytes::Bytes;
use chrono::Utc;
use object_store::path::Path as ObjectPath;
use object_store::{GetOptions, PutMode, PutOptions, PutPayload, UpdateVersion};
use serde::{Deserialize, Serialize};

use super::{Error, Result, Store};

/// The object holding the lease.
pub const LEASE_PATH: &str = "_leases/maintenance.json";

#[derive(Debug, Clone, Serialize, Deserialize)]
struct LeaseRecord {
    holder: String,
    expires_ms: i64,
}

/// Outcome of an attempt to take or renew the lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Lease {
    /// We hold it until the given time (ms since the epoch).
    Held { until_ms: i64 },
    /// Another holder has it until the given time.
    Busy { holder: String, until_ms: i64 },
}

/// Takes or renews the lease named `name` (normally [`LEASE_PATH`]) for `holder`, for `ttl`.
pub async fn acquire(store: &Store, name: &str, holder: &str, ttl: Duration) -> Result<Lease> {
    let path = ObjectPath::from(name);
    let now = Utc::now().timestamp_millis();
    let until_ms = now + ttl.as_millis() as i64;
    let record = serde_json::to_vec(&LeaseRecord {
        holder: holder.to_owned(),
        expires_ms: until_ms,
    })
    .expect("lease serializes");
    let mut ours = false;
    let mode = match store.objects.get_opts(&path, GetOptions::default()).await {
        Err(object_store::Error::NotFound { .. }) => PutMode::Create,
        Err(source) => {
            return Err(Error::Request {
                path: name.to_owned(),
                source,
            });
        }
        Ok(found) => {
            let version = UpdateVersion {
                e_tag: found.meta.e_tag.clone(),
                version: found.meta.version.clone(),
            };
            let bytes = found.bytes().await.map_err(|source| Error::Request {
                path: name.to_owned(),
                source,
            })?;
            // An unreadable record (a torn local write) counts as expired.
            if let Ok(current) = serde_json::from_slice::<LeaseRecord>(&bytes) {
                ours = current.holder == holder;
                if !ours && current.expires_ms > now {
                    return Ok(Lease::Busy {
                        holder: current.holder,
                        until_ms: current.expires_ms,
                    });
                }
            }
            PutMode::Update(version)
        }
    };
    let put = |mode| {
        store.objects.put_opts(
            &path,
            PutPayload::from(Bytes::from(record.clone())),
            PutOptions {
                mode,
                ..PutOptions::default()
            },
        )
    };
    let result = match put(mode).await {
        // The local store: renew by overwriting; take an expired lease by deleting it and
        // creating it anew, so that of two racing processes only one creation succeeds.
        Err(object_store::Error::NotImplemented { .. }) if ours => put(PutMode::Overwrite).await,
        Err(object_store::Error::NotImplemented { .. }) => {
            store.delete(&path).await?;
            put(PutMode::Create).await
        }
        other => other,
    };
    match result {
        Ok(_) => Ok(Lease::Held { until_ms }),
        Err(
            object_store::Error::AlreadyExists { .. } | object_store::Error::Precondition { .. },
        ) => {
            // Someone else wrote it between our read and our write.
            let current: LeaseRecord = store.get_json(&path).await?;
            Ok(Lease::Busy {
                holder: current.holder,
                until_ms: current.expires_ms,
            })
        }
        Err(source) => Err(Error::Request {
            path: name.to_owned(),
            source,
        }),
    }
}

/// Gives the lease up if `holder` has it, so another node can take it at once.
pub async fn release(store: &Store, name: &str, holder: &str) -> Result<()> {
    let path = ObjectPath::from(name);
    if let Ok(current) = store.get_json::<LeaseRecord>(&path).await
        && current.holder == holder
    {
        store.delete(&path).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn one_holder_at_a_time_until_it_expires_or_is_released() {
        let store = Store::memory();
        let ttl = Duration::from_secs(60);
        assert!(matches!(
            acquire(&store, LEASE_PATH, "a", ttl).await.unwrap(),
            Lease::Held { .. }
        ));
        match acquire(&store, LEASE_PATH, "b", ttl).await.unwrap() {
            Lease::Busy { holder, .. } => assert_eq!(holder, "a"),
            other => panic!("b got {other:?} while a holds the lease"),
        }
        assert!(
            matches!(
                acquire(&store, LEASE_PATH, "a", ttl).await.unwrap(),
                Lease::Held { .. }
            ),
            "the holder renews"
        );
        release(&store, LEASE_PATH, "a").await.unwrap();
        assert!(matches!(
            acquire(&store, LEASE_PATH, "b", ttl).await.unwrap(),
            Lease::Held { .. }
        ));
        // An expired lease is taken over.
        assert!(matches!(
            acquire(&store, LEASE_PATH, "b", Duration::ZERO)
                .await
                .unwrap(),
            Lease::Held { .. }
        ));
        tokio::time::sleep(Duration::from_millis(5)).await;
        assert!(matches!(
            acquire(&store, LEASE_PATH, "a", ttl).await.unwrap(),
            Lease::Held { .. }
        ));
    }
}
