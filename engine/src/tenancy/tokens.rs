//! API tokens for the query API. A token is shown once when created; the store keeps only its
//! SHA-256 (`meta/tokens/<sha256>.json`), so a leaked bucket does not leak usable tokens.

use std::collections::HashSet;
use std::path::Path;

use bytes::Bytes;
use chrono::{DateTime, Utc};
use object_store::path::Path as ObjectPath;
use parking_lot::RwLock;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{Error, Result};
use crate::store::{self, Store};

/// Prefix of every token, so secret scanners can recognise them.
const PREFIX: &str = "flt_";

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct TokenRecord {
    pub name: String,
    pub created: DateTime<Utc>,
}

fn hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

fn token_path(hash: &str) -> ObjectPath {
    ObjectPath::from(format!("meta/tokens/{hash}.json"))
}

/// Verifies tokens against the store (and an optional admin token file).
pub struct Tokens {
    store: Store,
    admin_hash: Option<String>,
    known: RwLock<HashSet<String>>,
}

impl Tokens {
    pub fn new(store: Store, admin_token_file: Option<&Path>) -> Result<Self> {
        let admin_hash = match admin_token_file {
            None => None,
            Some(path) => {
                let text =
                    std::fs::read_to_string(path).map_err(|source| Error::ReadTokenFile {
                        path: path.to_owned(),
                        source,
                    })?;
                Some(hash(text.trim()))
            }
        };
        Ok(Self {
            store,
            admin_hash,
            known: RwLock::new(HashSet::new()),
        })
    }

    /// Creates a token and returns it; only its hash is stored.
    pub async fn create(&self, name: &str) -> Result<String> {
        let token = format!("{PREFIX}{}", hex::encode(rand::random::<[u8; 24]>()));
        let record = TokenRecord {
            name: name.to_owned(),
            created: Utc::now(),
        };
        let data = serde_json::to_vec_pretty(&record).expect("token record serializes");
        self.store
            .create_durable(&token_path(&hash(&token)), Bytes::from(data))
            .await?;
        Ok(token)
    }

    /// Checks a bearer token.
    pub async fn verify(&self, token: &str) -> Result<()> {
        let digest = hash(token);
        if self.admin_hash.as_deref() == Some(digest.as_str())
            || self.known.read().contains(&digest)
        {
            return Ok(());
        }
        match self.store.get(&token_path(&digest)).await {
            Ok(_) => {
                self.known.write().insert(digest);
                Ok(())
            }
            Err(store::Error::Request {
                source: object_store::Error::NotFound { .. },
                ..
            }) => Err(Error::BadToken),
            Err(err) => Err(err.into()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn created_tokens_verify_and_others_do_not() {
        let tokens = Tokens::new(Store::memory(), None).unwrap();
        let token = tokens.create("ci").await.unwrap();
        assert!(token.starts_with(PREFIX));
        tokens.verify(&token).await.unwrap();
        let err = tokens.verify("flt_nope").await.unwrap_err();
        assert!(matches!(err, Error::BadToken));
    }

    #[tokio::test]
    async fn admin_token_file_is_accepted() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::write(&path, "secret-admin\n").unwrap();
        let tokens = Tokens::new(Store::memory(), Some(&path)).unwrap();
        tokens.verify("secret-admin").await.unwrap();
    }
}
