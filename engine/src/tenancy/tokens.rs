//! API tokens. A token belongs to one organization, carries scopes and optionally a list of
//! projects. It is shown once when created; the store keeps only its SHA-256
//! (`meta/tokens/<sha256>.json`), so a leaked bucket does not leak usable tokens. A token's
//! public id is the first 16 hex digits of that hash.
//!
//! A token either belongs to the organization (no owner: it keeps the scopes it was made with)
//! or to a person (`owner`, a user id): a person's token is checked against the person's
//! current rights each time it is verified (after [`CACHE_TTL`]), through the
//! [`OwnerRights`] the node installs. Its scopes are those it was made with that the person
//! still holds, its projects those the person still sees, and a disabled or deleted person's
//! token stops working.

use std::collections::HashMap;
use std::fmt;
use std::path::Path;
use std::str::FromStr;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures::future::BoxFuture;
use object_store::path::Path as ObjectPath;
use parking_lot::RwLock;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::{DEFAULT_ORG, Error, Result};
use crate::store::{self, Store};

/// Prefix of every token, so secret scanners can recognise them.
const PREFIX: &str = "flt_";

/// A verified token is trusted this long before the store is asked again, so a revocation on
/// another node takes effect within this time.
const CACHE_TTL: Duration = Duration::from_secs(5);

/// What a token (or a logged-in person) may do: Sentry's scope names. `GET` needs `*:read`,
/// changes `*:write`, deletions and grants `*:admin`, as in Sentry's API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Scope {
    OrgRead,
    OrgWrite,
    /// The audit log and owner-only changes.
    OrgAdmin,
    ProjectRead,
    ProjectWrite,
    ProjectAdmin,
    ProjectReleases,
    TeamRead,
    TeamWrite,
    TeamAdmin,
    /// Run SQL over the events and issues of its projects.
    EventRead,
    /// Change issue state.
    EventWrite,
    EventAdmin,
    MemberRead,
    /// Invite members.
    MemberWrite,
    /// Change members' roles, disable them, end their sessions.
    MemberAdmin,
    AlertsRead,
    AlertsWrite,
}

/// Every scope, in order.
pub const ALL_SCOPES: [Scope; 18] = [
    Scope::OrgRead,
    Scope::OrgWrite,
    Scope::OrgAdmin,
    Scope::ProjectRead,
    Scope::ProjectWrite,
    Scope::ProjectAdmin,
    Scope::ProjectReleases,
    Scope::TeamRead,
    Scope::TeamWrite,
    Scope::TeamAdmin,
    Scope::EventRead,
    Scope::EventWrite,
    Scope::EventAdmin,
    Scope::MemberRead,
    Scope::MemberWrite,
    Scope::MemberAdmin,
    Scope::AlertsRead,
    Scope::AlertsWrite,
];

/// What the earlier name `events:read` grants: reading events and what they belong to.
pub const EVENTS_READ_ALIAS: [Scope; 3] = [Scope::EventRead, Scope::ProjectRead, Scope::OrgRead];

/// What the earlier name `projects:admin` grants: managing tokens, keys, teams, members and issue
/// state of the organization, but neither reading events (that was `events:read`) nor the
/// owner's `org:admin`.
pub const PROJECTS_ADMIN_ALIAS: [Scope; 15] = [
    Scope::OrgRead,
    Scope::OrgWrite,
    Scope::ProjectRead,
    Scope::ProjectWrite,
    Scope::ProjectAdmin,
    Scope::ProjectReleases,
    Scope::TeamRead,
    Scope::TeamWrite,
    Scope::TeamAdmin,
    Scope::EventWrite,
    Scope::EventAdmin,
    Scope::MemberRead,
    Scope::MemberWrite,
    Scope::MemberAdmin,
    Scope::AlertsWrite,
];

impl Scope {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::OrgRead => "org:read",
            Self::OrgWrite => "org:write",
            Self::OrgAdmin => "org:admin",
            Self::ProjectRead => "project:read",
            Self::ProjectWrite => "project:write",
            Self::ProjectAdmin => "project:admin",
            Self::ProjectReleases => "project:releases",
            Self::TeamRead => "team:read",
            Self::TeamWrite => "team:write",
            Self::TeamAdmin => "team:admin",
            Self::EventRead => "event:read",
            Self::EventWrite => "event:write",
            Self::EventAdmin => "event:admin",
            Self::MemberRead => "member:read",
            Self::MemberWrite => "member:write",
            Self::MemberAdmin => "member:admin",
            Self::AlertsRead => "alerts:read",
            Self::AlertsWrite => "alerts:write",
        }
    }

    /// The scopes a name grants: one for a Sentry name, several for the earlier names
    /// `events:read` and `projects:admin`.
    pub fn expand(name: &str) -> Result<Vec<Self>> {
        match name {
            "events:read" => Ok(EVENTS_READ_ALIAS.to_vec()),
            "projects:admin" => Ok(PROJECTS_ADMIN_ALIAS.to_vec()),
            other => Ok(vec![other.parse()?]),
        }
    }

    /// The scopes a list of names grants, sorted and without repeats.
    pub fn expand_all<S: AsRef<str>>(names: &[S]) -> Result<Vec<Self>> {
        let mut out = Vec::new();
        for name in names {
            out.extend(Self::expand(name.as_ref())?);
        }
        out.sort();
        out.dedup();
        Ok(out)
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Scope {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        ALL_SCOPES
            .iter()
            .copied()
            .find(|scope| scope.as_str() == s)
            .ok_or_else(|| Error::InvalidScope {
                scope: s.to_owned(),
            })
    }
}

impl Serialize for Scope {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for Scope {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = String::deserialize(deserializer)?;
        name.parse().map_err(serde::de::Error::custom)
    }
}

/// Deserializes a list of scope names, expanding the earlier names (`events:read`,
/// `projects:admin`), so stored tokens and old clients keep working.
pub fn deserialize_scopes<'de, D: serde::Deserializer<'de>>(
    deserializer: D,
) -> Result<Vec<Scope>, D::Error> {
    let names = Vec::<String>::deserialize(deserializer)?;
    Scope::expand_all(&names).map_err(serde::de::Error::custom)
}

fn default_org() -> String {
    DEFAULT_ORG.to_owned()
}

fn default_scopes() -> Vec<Scope> {
    EVENTS_READ_ALIAS.to_vec()
}

/// What the store keeps of a token (never the token itself).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TokenRecord {
    #[serde(default)]
    pub id: String,
    pub name: String,
    #[serde(default = "default_org")]
    pub org: String,
    #[serde(default = "default_scopes", deserialize_with = "deserialize_scopes")]
    pub scopes: Vec<Scope>,
    /// Project ids the token is limited to; `None` means every project of the organization.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub projects: Option<Vec<u64>>,
    pub created: DateTime<Utc>,
    /// The user id of the person the token belongs to; `None` for an organization token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
}

/// A token to create.
#[derive(Debug, Clone)]
pub struct NewToken {
    pub name: String,
    pub org: String,
    pub scopes: Vec<Scope>,
    pub projects: Option<Vec<u64>>,
    /// The person it belongs to (a user id), or `None` for an organization token.
    pub owner: Option<String>,
}

/// What a person may do now, for their tokens: their organization, scopes and projects (a
/// [`Principal`] as their login session would get it), or `None` when the person is disabled
/// or gone.
pub type OwnerRights =
    Arc<dyn Fn(String) -> BoxFuture<'static, Result<Option<Principal>>> + Send + Sync>;

/// Who is calling: the verified token.
#[derive(Debug, Clone, PartialEq)]
pub struct Principal {
    pub token_id: String,
    pub name: String,
    /// `None` only for the admin token file: every organization.
    pub org: Option<String>,
    pub scopes: Vec<Scope>,
    pub projects: Option<Vec<u64>>,
    /// For a person's API token: the person's user id.
    pub owner: Option<String>,
}

impl Principal {
    /// The holder of the admin token file: every scope in every organization.
    pub fn admin() -> Self {
        Self {
            token_id: "admin".to_owned(),
            name: "admin token file".to_owned(),
            org: None,
            scopes: ALL_SCOPES.to_vec(),
            projects: None,
            owner: None,
        }
    }

    fn from_record(record: &TokenRecord) -> Self {
        Self {
            token_id: record.id.clone(),
            name: record.name.clone(),
            org: Some(record.org.clone()),
            scopes: record.scopes.clone(),
            projects: record.projects.clone(),
            owner: record.owner.clone(),
        }
    }

    /// A person's token as the person's current rights (`person`) allow it: the scopes both
    /// hold, the projects both see. `None` when the person is now in another organization.
    fn within(mut self, person: &Principal) -> Option<Self> {
        if person.org != self.org {
            return None;
        }
        self.scopes.retain(|s| person.scopes.contains(s));
        self.projects = match (self.projects, &person.projects) {
            (None, None) => None,
            (Some(own), None) => Some(own),
            (None, Some(theirs)) => Some(theirs.clone()),
            (Some(own), Some(theirs)) => {
                Some(own.into_iter().filter(|p| theirs.contains(p)).collect())
            }
        };
        Some(self)
    }

    /// Refuses unless the token carries `scope`.
    pub fn require(&self, scope: Scope) -> Result<()> {
        if self.scopes.contains(&scope) {
            Ok(())
        } else {
            Err(Error::MissingScope { scope })
        }
    }

    /// True if the token may see this project of this organization.
    pub fn covers(&self, org: &str, project_id: u64) -> bool {
        self.org.as_deref().is_none_or(|o| o == org)
            && self
                .projects
                .as_ref()
                .is_none_or(|list| list.contains(&project_id))
    }
}

fn hash(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

fn token_path(hash: &str) -> ObjectPath {
    ObjectPath::from(format!("meta/tokens/{hash}.json"))
}

fn id_of(hash: &str) -> String {
    hash[..16].to_owned()
}

/// Creates, lists, revokes and verifies tokens.
pub struct Tokens {
    store: Store,
    admin_hash: Option<String>,
    known: RwLock<HashMap<String, (Arc<Principal>, Instant)>>,
    owners: OnceLock<OwnerRights>,
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
            known: RwLock::new(HashMap::new()),
            owners: OnceLock::new(),
        })
    }

    /// Installs how a person's current rights are found (once, when the node starts). Until
    /// then, and without it (the command line), a person's token does not verify.
    pub fn set_owner_rights(&self, rights: OwnerRights) {
        // a second call keeps the first: the node installs it once
        let _ = self.owners.set(rights);
    }

    /// Forgets the verified tokens of the person `owner` on this node, so the next use checks
    /// their rights again (after a role change or disabling).
    pub fn forget_owner(&self, owner: &str) {
        self.known
            .write()
            .retain(|_, (principal, _)| principal.owner.as_deref() != Some(owner));
    }

    /// Creates a token and returns it with its record; only its hash is stored.
    pub async fn create(&self, new: NewToken) -> Result<(String, TokenRecord)> {
        if !faultline_config::is_slug(&new.org) {
            return Err(Error::InvalidName { name: new.org });
        }
        if new.scopes.is_empty() {
            return Err(Error::NoScopes);
        }
        let token = format!("{PREFIX}{}", hex::encode(rand::random::<[u8; 24]>()));
        let digest = hash(&token);
        let mut scopes = new.scopes;
        scopes.sort();
        scopes.dedup();
        let record = TokenRecord {
            id: id_of(&digest),
            name: new.name,
            org: new.org,
            scopes,
            projects: new.projects,
            created: Utc::now(),
            owner: new.owner,
        };
        let data = serde_json::to_vec_pretty(&record).expect("token record serializes");
        self.store
            .create_durable(&token_path(&digest), Bytes::from(data))
            .await?;
        Ok((token, record))
    }

    /// Creates a token of the person `owner` whose rights now are `person` (their login's
    /// principal): its scopes must be ones the person holds. The token belongs to the person's
    /// organization and, at use, never does more than the person may do then.
    pub async fn create_personal(
        &self,
        owner: &str,
        person: &Principal,
        name: &str,
        scopes: Vec<Scope>,
    ) -> Result<(String, TokenRecord)> {
        let name = name.trim();
        if name.is_empty() || name.chars().count() > 200 || name.chars().any(char::is_control) {
            return Err(Error::InvalidTokenName);
        }
        if let Some(scope) = scopes.iter().find(|s| !person.scopes.contains(s)) {
            return Err(Error::ScopeNotHeld { scope: *scope });
        }
        let org = person.org.clone().ok_or(Error::BadToken)?;
        self.create(NewToken {
            name: name.to_owned(),
            org,
            scopes,
            projects: None,
            owner: Some(owner.to_owned()),
        })
        .await
    }

    /// Checks a bearer token and says who holds it.
    pub async fn verify(&self, token: &str) -> Result<Arc<Principal>> {
        let digest = hash(token);
        if self.admin_hash.as_deref() == Some(digest.as_str()) {
            return Ok(Arc::new(Principal::admin()));
        }
        if let Some((principal, at)) = self.known.read().get(&digest)
            && at.elapsed() < CACHE_TTL
        {
            return Ok(Arc::clone(principal));
        }
        match self
            .store
            .get_json::<TokenRecord>(&token_path(&digest))
            .await
        {
            Ok(mut record) => {
                record.id = id_of(&digest);
                let mut principal = Principal::from_record(&record);
                if let Some(owner) = &record.owner {
                    let Some(rights) = self.owners.get() else {
                        return Err(Error::BadToken);
                    };
                    let person = rights(owner.clone()).await?;
                    match person.and_then(|p| principal.within(&p)) {
                        Some(p) => principal = p,
                        None => {
                            self.known.write().remove(&digest);
                            return Err(Error::BadToken);
                        }
                    }
                }
                let principal = Arc::new(principal);
                self.known
                    .write()
                    .insert(digest, (Arc::clone(&principal), Instant::now()));
                Ok(principal)
            }
            Err(store::Error::Request {
                source: object_store::Error::NotFound { .. },
                ..
            }) => {
                self.known.write().remove(&digest);
                Err(Error::BadToken)
            }
            Err(err) => Err(err.into()),
        }
    }

    async fn stored(&self) -> Result<Vec<(ObjectPath, TokenRecord)>> {
        let mut out = Vec::new();
        for meta in self.store.list(&ObjectPath::from("meta/tokens")).await? {
            let Some(digest) = meta
                .location
                .filename()
                .and_then(|f| f.strip_suffix(".json"))
                .map(str::to_owned)
            else {
                continue;
            };
            let mut record: TokenRecord = self.store.get_json(&meta.location).await?;
            record.id = id_of(&digest);
            out.push((meta.location, record));
        }
        out.sort_by(|a, b| (a.1.created, &a.1.id).cmp(&(b.1.created, &b.1.id)));
        Ok(out)
    }

    /// The tokens of `org` (every organization for `None`), oldest first.
    pub async fn list(&self, org: Option<&str>) -> Result<Vec<TokenRecord>> {
        Ok(self
            .stored()
            .await?
            .into_iter()
            .map(|(_, record)| record)
            .filter(|r| org.is_none_or(|o| o == r.org))
            .collect())
    }

    /// The tokens of the person `owner` (a user id), oldest first.
    pub async fn list_owned(&self, owner: &str) -> Result<Vec<TokenRecord>> {
        Ok(self
            .stored()
            .await?
            .into_iter()
            .map(|(_, record)| record)
            .filter(|r| r.owner.as_deref() == Some(owner))
            .collect())
    }

    /// Deletes the token with public id `id` if it belongs to `org` (any for `None`).
    pub async fn revoke(&self, org: Option<&str>, id: &str) -> Result<TokenRecord> {
        self.revoke_where(id, |record| org.is_none_or(|o| o == record.org))
            .await
    }

    /// Deletes the token with public id `id` if it belongs to the person `owner`.
    pub async fn revoke_owned(&self, owner: &str, id: &str) -> Result<TokenRecord> {
        self.revoke_where(id, |record| record.owner.as_deref() == Some(owner))
            .await
    }

    async fn revoke_where(
        &self,
        id: &str,
        allowed: impl Fn(&TokenRecord) -> bool,
    ) -> Result<TokenRecord> {
        for (path, record) in self.stored().await? {
            if record.id == id && allowed(&record) {
                self.store.delete(&path).await?;
                self.known.write().retain(|digest, _| id_of(digest) != id);
                return Ok(record);
            }
        }
        Err(Error::UnknownToken { id: id.to_owned() })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reader(org: &str) -> NewToken {
        NewToken {
            name: "ci".into(),
            org: org.into(),
            scopes: vec![Scope::EventRead],
            projects: None,
            owner: None,
        }
    }

    #[tokio::test]
    async fn created_tokens_verify_and_others_do_not() {
        let tokens = Tokens::new(Store::memory(), None).unwrap();
        let (token, record) = tokens.create(reader("acme")).await.unwrap();
        assert!(token.starts_with(PREFIX));
        let principal = tokens.verify(&token).await.unwrap();
        assert_eq!(principal.org.as_deref(), Some("acme"));
        assert_eq!(principal.token_id, record.id);
        let err = tokens.verify("flt_nope").await.unwrap_err();
        assert!(matches!(err, Error::BadToken));
    }

    #[tokio::test]
    async fn only_the_hash_is_stored_and_revoked_tokens_stop_working() {
        let store = Store::memory();
        let tokens = Tokens::new(store.clone(), None).unwrap();
        let (token, record) = tokens.create(reader("acme")).await.unwrap();
        let (_, other) = tokens.create(reader("globex")).await.unwrap();
        for meta in store.list(&ObjectPath::from("meta/tokens")).await.unwrap() {
            let text = String::from_utf8(store.get(&meta.location).await.unwrap().to_vec());
            assert!(!text.unwrap().contains(&token[PREFIX.len()..]));
        }
        assert_eq!(
            tokens.list(Some("acme")).await.unwrap(),
            vec![record.clone()]
        );
        let err = tokens.revoke(Some("acme"), &other.id).await.unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("no API token with id {}", other.id)
        );
        tokens.verify(&token).await.unwrap();
        tokens.revoke(Some("acme"), &record.id).await.unwrap();
        assert!(matches!(tokens.verify(&token).await, Err(Error::BadToken)));
        assert_eq!(tokens.list(None).await.unwrap(), vec![other]);
    }

    #[tokio::test]
    async fn admin_token_file_is_accepted_for_every_org() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("token");
        std::fs::write(&path, "secret-admin\n").unwrap();
        let tokens = Tokens::new(Store::memory(), Some(&path)).unwrap();
        let admin = tokens.verify("secret-admin").await.unwrap();
        assert!(admin.covers("anything", 7));
        admin.require(Scope::OrgAdmin).unwrap();
    }

    #[test]
    fn earlier_scope_names_expand_and_stored_tokens_keep_working() {
        let stored = r#"{"name":"old","org":"acme","scopes":["events:read","projects:admin"],
            "created":"2026-01-01T00:00:00Z"}"#;
        let record: TokenRecord = serde_json::from_str(stored).unwrap();
        for scope in [Scope::EventRead, Scope::ProjectRead, Scope::OrgRead] {
            assert!(record.scopes.contains(&scope), "{scope}");
        }
        for scope in PROJECTS_ADMIN_ALIAS {
            assert!(record.scopes.contains(&scope), "{scope}");
        }
        assert!(!record.scopes.contains(&Scope::OrgAdmin));
        let reader: TokenRecord =
            serde_json::from_str(r#"{"name":"r","created":"2026-01-01T00:00:00Z"}"#).unwrap();
        assert_eq!(reader.scopes, EVENTS_READ_ALIAS.to_vec());
        assert!(!reader.scopes.contains(&Scope::EventWrite));
        let json = serde_json::to_value(&reader).unwrap();
        assert_eq!(
            json["scopes"],
            serde_json::json!(["event:read", "project:read", "org:read"])
        );
        let err = Scope::expand("events:write").unwrap_err();
        assert!(
            err.to_string()
                .starts_with("unknown scope \"events:write\"")
        );
        for scope in ALL_SCOPES {
            assert_eq!(scope.as_str().parse::<Scope>().unwrap(), scope);
        }
    }

    /// Owner rights from a shared, changeable table (user id to principal).
    fn rights_of(table: Arc<RwLock<HashMap<String, Principal>>>) -> OwnerRights {
        Arc::new(move |user: String| {
            let found = table.read().get(&user).cloned();
            Box::pin(async move { Ok(found) })
        })
    }

    fn person(scopes: &[Scope], projects: Option<Vec<u64>>) -> Principal {
        Principal {
            token_id: "user:u1".into(),
            name: "ann@example.com".into(),
            org: Some("acme".into()),
            scopes: scopes.to_vec(),
            projects,
            owner: None,
        }
    }

    #[tokio::test]
    async fn a_persons_token_follows_the_persons_current_rights() {
        let table = Arc::new(RwLock::new(HashMap::new()));
        let tokens = Tokens::new(Store::memory(), None).unwrap();
        tokens.set_owner_rights(rights_of(Arc::clone(&table)));
        let ann = person(&[Scope::OrgRead, Scope::EventRead, Scope::OrgAdmin], None);
        table.write().insert("u1".to_owned(), ann.clone());

        let err = tokens
            .create_personal("u1", &ann, "ci", vec![Scope::EventRead, Scope::MemberAdmin])
            .await
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "cannot grant the scope member:admin: you do not hold it"
        );
        for name in ["", "  ", &"x".repeat(201)] {
            let err = tokens
                .create_personal("u1", &ann, name, vec![Scope::EventRead])
                .await
                .unwrap_err();
            assert!(matches!(err, Error::InvalidTokenName), "{name:?}");
        }
        let (token, record) = tokens
            .create_personal(
                "u1",
                &ann,
                &"x".repeat(200),
                vec![Scope::EventRead, Scope::OrgAdmin],
            )
            .await
            .unwrap();
        assert_eq!(record.owner.as_deref(), Some("u1"));
        assert_eq!(record.org, "acme");
        let now = tokens.verify(&token).await.unwrap();
        assert_eq!(now.scopes, vec![Scope::OrgAdmin, Scope::EventRead]);
        assert_eq!(now.projects, None);
        assert_eq!(tokens.list_owned("u1").await.unwrap(), vec![record.clone()]);
        assert!(tokens.list_owned("u2").await.unwrap().is_empty());

        // fewer rights and fewer projects: the token narrows with them
        table.write().insert(
            "u1".to_owned(),
            person(&[Scope::OrgRead, Scope::EventRead], Some(vec![3])),
        );
        tokens.forget_owner("u1");
        let now = tokens.verify(&token).await.unwrap();
        assert_eq!(now.scopes, vec![Scope::EventRead]);
        assert_eq!(now.projects, Some(vec![3]));
        assert!(!now.covers("acme", 4));

        // gone (disabled): refused
        table.write().remove("u1");
        tokens.forget_owner("u1");
        assert!(matches!(tokens.verify(&token).await, Err(Error::BadToken)));

        // only its owner revokes it
        let err = tokens.revoke_owned("u2", &record.id).await.unwrap_err();
        assert!(matches!(err, Error::UnknownToken { .. }));
        tokens.revoke_owned("u1", &record.id).await.unwrap();
        assert!(tokens.list(None).await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn without_owner_rights_a_persons_token_does_not_verify() {
        let tokens = Tokens::new(Store::memory(), None).unwrap();
        let ann = person(&[Scope::EventRead], None);
        let (token, _) = tokens
            .create_personal("u1", &ann, "ci", vec![Scope::EventRead])
            .await
            .unwrap();
        assert!(matches!(tokens.verify(&token).await, Err(Error::BadToken)));
        // an organization token is not affected
        let (org_token, _) = tokens.create(reader("acme")).await.unwrap();
        tokens.verify(&org_token).await.unwrap();
    }

    #[test]
    fn a_project_list_narrows_what_a_token_covers() {
        let principal = Principal {
            token_id: "x".into(),
            name: "x".into(),
            org: Some("acme".into()),
            scopes: vec![Scope::EventRead],
            projects: Some(vec![2]),
            owner: None,
        };
        assert!(principal.covers("acme", 2));
        assert!(!principal.covers("acme", 3));
        assert!(!principal.covers("globex", 2));
        let err = principal.require(Scope::OrgWrite).unwrap_err();
        assert_eq!(err.to_string(), "the API token lacks the scope org:write");
    }
}
