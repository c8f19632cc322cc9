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
    store.delete(&path(kind, name)).await?;
    if kind == Kind::Channel {
        store.delete(&secrets_path(name)).await?;
    }
    Ok(())
}

/// The secrets of a channel made through the server and typed in once (the URL, routing key
/// and signing secret it was given instead of a file or environment variable). Never shown:
/// the API and the web UI only tell which are set.
#[derive(Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ChannelSecrets {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub routing_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signing_secret: Option<String>,
}

impl std::fmt::Debug for ChannelSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChannelSecrets")
            .field("url", &self.url.as_ref().map(|_| ".."))
            .field("routing_key", &self.routing_key.as_ref().map(|_| ".."))
            .field(
                "signing_secret",
                &self.signing_secret.as_ref().map(|_| ".."),
            )
            .finish()
    }
}

impl ChannelSecrets {
    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }

    /// The names of those set: `url`, `routing_key`, `signing_secret`.
    pub fn names(&self) -> Vec<&'static str> {
        [
            ("url", self.url.is_some()),
            ("routing_key", self.routing_key.is_some()),
            ("signing_secret", self.signing_secret.is_some()),
        ]
        .into_iter()
        .filter_map(|(name, set)| set.then_some(name))
        .collect()
    }
}

fn secrets_dir() -> &'static str {
    "meta/alerts/channel-secrets"
}

fn secrets_path(name: &str) -> ObjectPath {
    ObjectPath::from(format!("{}/{name}.json", secrets_dir()))
}

/// The stored secrets of every channel made through the server, by channel name.
pub async fn load_secrets(
    store: &Store,
) -> store::Result<std::collections::HashMap<String, ChannelSecrets>> {
    let mut out = std::collections::HashMap::new();
    for meta in store.list(&ObjectPath::from(secrets_dir())).await? {
        let Some(name) = meta
            .location
            .filename()
            .and_then(|f| f.strip_suffix(".json"))
            .map(str::to_owned)
        else {
            continue;
        };
        match store.get_json(&meta.location).await {
            Ok(secrets) => {
                out.insert(name, secrets);
            }
            Err(err) if is_not_found(&err) => {}
            Err(err) => return Err(err),
        }
    }
    Ok(out)
}

/// Stores (or, when empty, removes) the secrets of a channel.
pub async fn save_secrets(
    store: &Store,
    name: &str,
    secrets: &ChannelSecrets,
) -> store::Result<()> {
    if secrets.is_empty() {
        return store.delete(&secrets_path(name)).await;
    }
    let data = Bytes::from(serde_json::to_vec(secrets).expect("secrets serialize"));
    store.put_durable(&secrets_path(name), data).await
}
