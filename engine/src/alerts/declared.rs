//! Rules and channels created through the API: one object each, `meta/alerts/channels/<name>.json`
//! and `meta/alerts/rules/<name>.json`, beside those of the config file (which the API can read
//! but not change). Every node reads them again on its alert timer.

use bytes::Bytes;
use faultline_config::{ChannelConfig, RuleConfig};
use object_store::path::Path as ObjectPath;
use serde::de::DeserializeOwned;

use crate::store::{self, Store};

/// Which kind of declaration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Channel,
    Rule,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Channel => "channel",
            Self::Rule => "rule",
        }
    }

    fn dir(self) -> &'static str {
        match self {
            Self::Channel => "meta/alerts/channels",
            Self::Rule => "meta/alerts/rules",
        }
    }
}

fn is_not_found(err: &store::Error) -> bool {
    matches!(
        err,
        store::Error::Request {
            source: object_store::Error::NotFound { .. },
            ..
        }
    )
}

pub fn path(kind: Kind, name: &str) -> ObjectPath {
    ObjectPath::from(format!("{}/{name}.json", kind.dir()))
}

async fn load_all<T: DeserializeOwned>(store: &Store, kind: Kind) -> store::Result<Vec<T>> {
    let mut listing = store.list(&ObjectPath::from(kind.dir())).await?;
    listing.sort_by(|a, b| a.location.cmp(&b.location));
    let mut out = Vec::with_capacity(listing.len());
    for meta in listing {
        match store.get_json(&meta.location).await {
            Ok(value) => out.push(value),
            // Deleted between the listing and the read.
            Err(err) if is_not_found(&err) => {}
            Err(err) => return Err(err),
        }
    }
    Ok(out)
}

/// Every channel and rule created through the API.
pub async fn load(store: &Store) -> store::Result<(Vec<ChannelConfig>, Vec<RuleConfig>)> {
    Ok((
        load_all(store, Kind::Channel).await?,
        load_all(store, Kind::Rule).await?,
    ))
}

/// Writes a declaration; with `create`, only if none of that name exists (else
/// [`store::Error::AlreadyExists`]).
pub async fn save<T: serde::Serialize>(
    store: &Store,
    kind: Kind,
    name: &str,
    value: &T,
    create: bool,
) -> store::Result<()> {
    let data = Bytes::from(serde_json::to_vec_pretty(value).expect("declarations serialize"));
    let path = path(kind, name);
    if create {
        store.create_durable(&path, data).await
    } else {
        store.put_durable(&path, data).await
    }
}

/// True when a declaration of that name was stored through the API.
pub async fn exists(store: &Store, kind: Kind, name: &str) -> store::Result<bool> {
    match store.get(&path(kind, name)).await {
        Ok(_) => Ok(true),
        Err(err) if is_not_found(&err) => Ok(false),
        Err(err) => Err(err),
    }
}

pub async fn remove(store: &Store, kind: Kind, name: &str) -> store::Result<()> {
    store.delete(&path(kind, name)).await
}
