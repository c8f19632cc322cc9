//! Server-side apply and its companions, shared by every reconciler: list the objects the
//! operator manages for one tracker (by label), apply one object under the field manager
//! [`crate::FIELD_MANAGER`] with `force` (the operator owns these fields), and delete the
//! objects the spec no longer asks for.

use std::fmt::Debug;

use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use kube::{Client, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use tracing::info;

use k8s_openapi::api::core::v1::Secret;

use crate::FIELD_MANAGER;
use crate::builders::{ADMIN_TOKEN_KEY, admin_token_secret_name, managed_selector};

/// Errors of talking to the API server.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot list {kind}: {source}")]
    List {
        kind: &'static str,
        #[source]
        source: kube::Error,
    },
    #[error("cannot apply {kind} {name}: {source}")]
    Apply {
        kind: &'static str,
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error("cannot delete {kind} {name}: {source}")]
    Delete {
        kind: &'static str,
        name: String,
        #[source]
        source: kube::Error,
    },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Short label of the error for metrics.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Error::List { .. } => "list",
            Error::Apply { .. } => "apply",
            Error::Delete { .. } => "delete",
        }
    }
}

/// The objects of `api` the operator manages for the tracker `tracker_name`.
pub async fn list<K>(api: &Api<K>, tracker_name: &str, kind: &'static str) -> Result<Vec<K>>
where
    K: Resource + Clone + DeserializeOwned + Debug,
{
    let params = ListParams::default().labels(&managed_selector(tracker_name));
    api.list(&params)
        .await
        .map(|list| list.items)
        .map_err(|source| Error::List { kind, source })
}

pub async fn apply_one<K>(client: &Client, namespace: &str, object: &K) -> Result<K>
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + k8s_openapi::Resource
        + Clone
        + DeserializeOwned
        + Serialize
        + Debug,
{
    let api: Api<K> = Api::namespaced(client.clone(), namespace);
    let name = object.name_any();
    api.patch(
        &name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(object),
    )
    .await
    .map_err(|source| Error::Apply {
        kind: kind_of::<K>(),
        name,
        source,
    })
}

pub async fn delete_orphans<K>(api: &Api<K>, existing: Vec<K>, keep: &[String]) -> Result<()>
where
    K: Resource<DynamicType = ()> + k8s_openapi::Resource + Clone + DeserializeOwned + Debug,
{
    for object in existing {
        let name = object.name_any();
        if keep.contains(&name) {
            continue;
        }
        info!(
            kind = kind_of::<K>(),
            name, "deleting object the spec no longer asks for"
        );
        match api.delete(&name, &DeleteParams::default()).await {
            Ok(_) => {}
            Err(kube::Error::Api(status)) if status.code == 404 => {}
            Err(source) => {
                return Err(Error::Delete {
                    kind: kind_of::<K>(),
                    name,
                    source,
                });
            }
        }
    }
    Ok(())
}

pub fn kind_of<K: k8s_openapi::Resource>() -> &'static str {
    K::KIND
}

/// The admin token of tracker `tracker` in `namespace`, from its Secret (listed by label: the
/// operator's RBAC has no `get` on Secrets outside the namespaces of `FaultlineProject`s).
/// None while the tracker has not been reconciled yet.
pub async fn admin_token(
    client: &Client,
    namespace: &str,
    tracker: &str,
) -> Result<Option<String>> {
    let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let secrets = list(&api, tracker, "Secret").await?;
    let wanted = admin_token_secret_name(tracker);
    Ok(secrets
        .iter()
        .find(|s| s.name_any() == wanted)
        .and_then(|s| s.data.as_ref()?.get(ADMIN_TOKEN_KEY))
        .and_then(|value| String::from_utf8(value.0.clone()).ok())
        .filter(|token| !token.is_empty()))
}
