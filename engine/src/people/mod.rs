//! People: user accounts, organization membership and roles, teams, invites, login sessions,
//! TOTP second factors and the audit log.
//!
//! Everything lives in the object store beside the tokens, so every node sees the same people:
//!
//! - `meta/people/users/<id>.json`: a [`UserRecord`] (email, name, argon2id hash, role, disabled
//!   flag, TOTP). `meta/people/emails/<sha256 of the email>.json` is created with a conditional
//!   write, so two nodes can never create two accounts with one email.
//! - `meta/people/teams/<org>/<slug>.json`: a [`Team`], created conditionally.
//! - `meta/people/orgs/<org>.json`: [`OrgSettings`] (open membership, require MFA).
//! - `meta/people/invites/<sha256>.json` and `meta/people/links/<sha256>.json`: invites and
//!   set-password links, stored by the SHA-256 of their token only.
//! - `meta/people/sessions/<sha256>.json`: a [`SessionRecord`], stored by the SHA-256 of the
//!   cookie value (256 random bits) only.
//!
//! # Who is logged in
//!
//! [`People::session_principal`] turns a session cookie's value into the [`Actor`] (user id,
//! email, name, for display and auditing) and the [`Principal`] that every permission check
//! uses, exactly like an API token's:
//! - `org`: the user's organization;
//! - `scopes`: the union of the organization role's scopes and the team roles' scopes
//!   ([`roles::union`]);
//! - `projects`: `None` (every project) for admin, manager and owner, and for members when the
//!   organization has open membership; otherwise the projects of the user's teams.
//!
//! It answers `Ok(None)` for an unknown, ended or expired session. A verified session is
//! trusted for [`CACHE_TTL`] before the store is read again, so a logout or a disabled account
//! takes effect on every node within seconds. A session expires after
//! `auth.session_idle_timeout` without a request and `auth.session_absolute_timeout` after the
//! login.

pub mod audit;
pub mod passkeys;
pub mod password;
pub mod roles;
pub mod sso;
pub mod totp;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use chrono::{DateTime, Utc};
use faultline_config::AuthConfig;
use object_store::path::Path as ObjectPath;
use parking_lot::{Mutex, RwLock};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

pub use audit::{Audit, AuditEntry};
pub use passkeys::{PasskeyInfo, PasskeyRecord};
pub use roles::{OrgRole, TeamRole};

use crate::store::{self, Store};
use crate::tenancy::{DEFAULT_ORG, Principal};

/// A verified session is trusted this long before the store is asked again.
pub const CACHE_TTL: Duration = Duration::from_secs(5);

/// A session's `last_seen` is written at most this often (the idle timeout is hours).
const TOUCH_EVERY: chrono::TimeDelta = chrono::TimeDelta::seconds(60);

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    WeakPassword(String),
    #[error("cannot hash the password: {0}")]
    Hash(String),
    #[error("unknown role {role:?}: use {expected}")]
    InvalidRole {
        role: String,
        expected: &'static str,
    },
    #[error("invalid email address {email:?}")]
    InvalidEmail { email: String },
    #[error("the name must be 1-200 characters")]
    InvalidName,
    #[error("invalid organization name {org:?}: use 1-64 lowercase letters, digits or '-'")]
    InvalidOrg { org: String },
    #[error("{0} is required here")]
    Missing(&'static str),
    #[error("invalid team name {slug:?}: use 1-64 lowercase letters, digits or '-'")]
    InvalidTeam { slug: String },
    #[error("an account with the email address {email:?} already exists")]
    EmailTaken { email: String },
    #[error("a team named {slug:?} already exists")]
    TeamTaken { slug: String },
    #[error("no member with id {id:?}")]
    UnknownUser { id: String },
    #[error("no team named {slug:?}")]
    UnknownTeam { slug: String },
    #[error("no session with id {id:?}")]
    UnknownSession { id: String },
    #[error("the link is unknown, used or expired: ask for a new one")]
    BadLink,
    #[error("wrong email address or password")]
    BadLogin,
    #[error("this account needs a TOTP code (or a recovery code) to log in")]
    CodeRequired,
    #[error("wrong or already used TOTP or recovery code")]
    BadCode,
    #[error("the current password is wrong")]
    WrongPassword,
    #[error("this account is disabled")]
    Disabled,
    #[error(
        "too many failed logins for this {what}: try again in {} s",
        retry_after.as_secs().max(1)
    )]
    Throttled {
        what: &'static str,
        retry_after: Duration,
    },
    #[error("TOTP is already enabled on this account")]
    TotpEnabled,
    #[error("no TOTP enrolment to confirm: start one first")]
    NoTotpEnrolment,
    #[error("TOTP is not enabled on this account")]
    TotpDisabled,
    #[error("{0}")]
    Forbidden(String),
    #[error("an organization needs at least one enabled owner")]
    LastOwner,
    #[error("the organization already has an owner: log in, or ask an owner for an invite")]
    OwnerExists,
    #[error("password login is off: use single sign-on")]
    PasswordLoginOff,
    #[error("this account needs its passkey (or a TOTP code) to log in")]
    PasskeyRequired,
    #[error(
        "this account has no passkey: log in with the password (and a TOTP code if it has one), then add a passkey on the account page"
    )]
    NoPasskeys,
    #[error("the passkey was not accepted: {0}")]
    BadPasskey(String),
    #[error("the passkey request is unknown, used or expired: start again")]
    Ceremony,
    #[error("the passkey name must be 1-100 characters")]
    PasskeyName,
    #[error("no passkey with id {id:?}")]
    UnknownPasskey { id: String },
    #[error("passkeys: {0}")]
    PasskeySetup(String),
    #[error(transparent)]
    Sso(#[from] sso::Error),
    #[error(transparent)]
    Store(#[from] store::Error),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What the clock says; tests move it.
pub type Clock = Arc<dyn Fn() -> DateTime<Utc> + Send + Sync>;

/// A confirmed TOTP second factor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TotpRecord {
    /// Base32 seed. Never logged, printed or returned after enrolment.
    pub secret: String,
    /// The last time step a code was accepted for: each code works once.
    #[serde(default)]
    pub last_step: u64,
    /// SHA-256 of each unused recovery code.
    #[serde(default)]
    pub recovery: Vec<String>,
}

/// An account. Never sent to clients as is: see [`Member`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UserRecord {
    pub id: String,
    pub email: String,
    pub name: String,
    #[serde(default = "default_org")]
    pub org: String,
    pub role: OrgRole,
    /// The argon2id PHC string; `None` until a password is set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    #[serde(default)]
    pub disabled: bool,
    pub created: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub totp: Option<TotpRecord>,
    /// A seed shown at enrolment, waiting for its first code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub totp_pending: Option<String>,
    /// Registered passkeys (WebAuthn credentials).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub passkeys: Vec<PasskeyRecord>,
    /// The single sign-on identity linked to the account (set when linked from the account
    /// page or created at a first single sign-on).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sso: Option<sso::LinkedIdentity>,
}

impl UserRecord {
    /// True when the account has a second factor: TOTP or a passkey.
    pub fn has_mfa(&self) -> bool {
        self.totp.is_some() || !self.passkeys.is_empty()
    }
}

fn default_org() -> String {
    DEFAULT_ORG.to_owned()
}

/// What clients see of an account.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Member {
    pub id: String,
    pub email: String,
    pub name: String,
    pub org_role: OrgRole,
    pub disabled: bool,
    pub mfa: bool,
    pub has_password: bool,
    pub teams: Vec<String>,
    pub date_created: DateTime<Utc>,
}

/// A team: members with a team role, and the projects it owns.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Team {
    pub slug: String,
    pub org: String,
    #[serde(default)]
    pub projects: Vec<u64>,
    #[serde(default)]
    pub members: Vec<TeamMember>,
    pub created: DateTime<Utc>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TeamMember {
    pub user_id: String,
    pub role: TeamRole,
}

/// Per-organization settings.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct OrgSettings {
    /// Members see every project, not only their teams'.
    #[serde(default)]
    pub open_membership: bool,
    /// Members without a second factor may only enrol one.
    #[serde(default)]
    pub require_mfa: bool,
}

/// An invite (stored by the hash of its token).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InviteRecord {
    pub email: String,
    pub org: String,
    pub role: OrgRole,
    #[serde(default)]
    pub teams: Vec<String>,
    pub expires: DateTime<Utc>,
    pub created: DateTime<Utc>,
    pub invited_by: String,
}

/// A set-password link: for a given user, or (first start) for whoever creates the first owner.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LinkRecord {
    #[serde(default)]
    pub user_id: Option<String>,
    pub expires: DateTime<Utc>,
}

/// A login session (stored by the hash of the cookie value).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SessionRecord {
    pub user_id: String,
    pub created: DateTime<Utc>,
    pub last_seen: DateTime<Utc>,
    #[serde(default)]
    pub ip: Option<String>,
    #[serde(default)]
    pub user_agent: Option<String>,
}

/// What a user sees of one of their sessions.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct SessionInfo {
    pub id: String,
    pub created: DateTime<Utc>,
    pub last_seen: DateTime<Utc>,
    pub expires: DateTime<Utc>,
    pub ip: Option<String>,
    pub user_agent: Option<String>,
    pub current: bool,
}

/// Who acts, for display and the audit log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Actor {
    pub user_id: String,
    pub email: String,
    pub name: String,
    /// The public id of the session acting.
    pub session_id: String,
    /// The organization requires MFA and this user has none yet: only enrolment is allowed.
    pub must_enrol_mfa: bool,
}

/// Where a request came from, for sessions, throttling and the audit log.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Client {
    pub ip: Option<String>,
    pub user_agent: Option<String>,
}

/// A new login session: the cookie value (shown once) and its expiry.
#[derive(Debug, Clone)]
pub struct NewSession {
    pub cookie: String,
    pub user: UserRecord,
    pub expires: DateTime<Utc>,
}

fn sha256(text: &str) -> String {
    hex::encode(Sha256::digest(text.as_bytes()))
}

/// The public id of a session or invite: the first 16 hex digits of its hash.
fn public_id(hash: &str) -> String {
    hash[..16].to_owned()
}

fn random_token() -> String {
    hex::encode(rand::random::<[u8; 32]>())
}

fn user_path(id: &str) -> ObjectPath {
    ObjectPath::from(format!("meta/people/users/{id}.json"))
}

fn email_path(email: &str) -> ObjectPath {
    ObjectPath::from(format!("meta/people/emails/{}.json", sha256(email)))
}

fn team_path(org: &str, slug: &str) -> ObjectPath {
    ObjectPath::from(format!("meta/people/teams/{org}/{slug}.json"))
}

fn org_path(org: &str) -> ObjectPath {
    ObjectPath::from(format!("meta/people/orgs/{org}.json"))
}

fn invite_path(hash: &str) -> ObjectPath {
    ObjectPath::from(format!("meta/people/invites/{hash}.json"))
}

fn link_path(hash: &str) -> ObjectPath {
    ObjectPath::from(format!("meta/people/links/{hash}.json"))
}

const SESSIONS: &str = "meta/people/sessions";

fn session_path(hash: &str) -> ObjectPath {
    ObjectPath::from(format!("{SESSIONS}/{hash}.json"))
}

fn not_found(err: &store::Error) -> bool {
    matches!(
        err,
        store::Error::Request {
            source: object_store::Error::NotFound { .. },
            ..
        }
    )
}

/// Normalizes and checks an email address (lowercase; one `@` with text on both sides).
pub fn normalize_email(email: &str) -> Result<String> {
    let email = email.trim().to_lowercase();
    let valid = email.len() <= 254
        && email.split_once('@').is_some_and(|(local, domain)| {
            !local.is_empty() && !domain.is_empty() && !domain.contains('@')
        })
        && !email.chars().any(|c| c.is_whitespace() || c.is_control());
    if valid {
        Ok(email)
    } else {
        Err(Error::InvalidEmail { email })
    }
}

fn check_name(name: &str) -> Result<String> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 200 || name.chars().any(char::is_control) {
        return Err(Error::InvalidName);
    }
    Ok(name.to_owned())
}

/// Failed logins per key within a window, in this node's memory.
struct Throttle {
    max: u32,
    window: Duration,
    failures: Mutex<HashMap<String, Vec<Instant>>>,
}

impl Throttle {
    /// `Some(retry_after)` when `key` has used up its failures.
    fn blocked(&self, key: &str) -> Option<Duration> {
        let mut failures = self.failures.lock();
        let list = failures.get_mut(key)?;
        list.retain(|at| at.elapsed() < self.window);
        if list.len() >= self.max as usize {
            let oldest = list.iter().min()?;
            Some(self.window.saturating_sub(oldest.elapsed()))
        } else {
            None
        }
    }

    fn fail(&self, key: &str) {
        let mut failures = self.failures.lock();
        // Bounded memory: forget keys whose failures all left the window.
        if failures.len() > 100_000 {
            failures.retain(|_, list| list.iter().any(|at| at.elapsed() < self.window));
        }
        failures
            .entry(key.to_owned())
            .or_default()
            .push(Instant::now());
    }

    fn clear(&self, key: &str) {
        self.failures.lock().remove(key);
    }
}

/// A verified session: who, with what rights, verified when.
type CachedSession = (Actor, Arc<Principal>, Instant);

/// The people service of a node.
pub struct People {
    store: Store,
    config: AuthConfig,
    clock: Clock,
    throttle: Throttle,
    sessions: RwLock<HashMap<String, CachedSession>>,
    /// The WebAuthn relying party, once [`People::set_relying_party`] set it.
    webauthn: Option<webauthn_rs::Webauthn>,
    pub audit: Audit,
}

impl People {
    pub fn new(store: Store, config: AuthConfig) -> Self {
        Self::with_clock(store, config, Arc::new(Utc::now))
    }

    /// With a clock of the caller's (tests).
    pub fn with_clock(store: Store, config: AuthConfig, clock: Clock) -> Self {
        Self {
            audit: Audit::new(store.clone(), Arc::clone(&clock)),
            throttle: Throttle {
                max: config.login_max_failures.max(1),
                window: config.login_failure_window,
                failures: Mutex::new(HashMap::new()),
            },
            store,
            config,
            clock,
            sessions: RwLock::new(HashMap::new()),
            webauthn: None,
        }
    }

    /// Turns passkeys on, for this relying party ([`passkeys::relying_party`]).
    pub fn set_relying_party(&mut self, webauthn: webauthn_rs::Webauthn) {
        self.webauthn = Some(webauthn);
    }

    fn now(&self) -> DateTime<Utc> {
        (self.clock)()
    }

    fn after(&self, d: Duration) -> DateTime<Utc> {
        self.now() + chrono::TimeDelta::from_std(d).unwrap_or(chrono::TimeDelta::MAX)
    }

    /// Whether members of an organization with `settings` must have a second factor: its own
    /// setting, or `auth.require_mfa` for every organization.
    pub fn requires_mfa(&self, settings: &OrgSettings) -> bool {
        settings.require_mfa || self.config.require_mfa
    }

    pub fn config(&self) -> &AuthConfig {
        &self.config
    }

    // ---- users ----

    pub async fn user(&self, id: &str) -> Result<UserRecord> {
        match self.store.get_json(&user_path(id)).await {
            Ok(user) => Ok(user),
            Err(e) if not_found(&e) => Err(Error::UnknownUser { id: id.to_owned() }),
            Err(e) => Err(e.into()),
        }
    }

    pub async fn user_by_email(&self, email: &str) -> Result<Option<UserRecord>> {
        let Ok(email) = normalize_email(email) else {
            return Ok(None);
        };
        #[derive(Deserialize)]
        struct Index {
            user_id: String,
        }
        match self.store.get_json::<Index>(&email_path(&email)).await {
            Ok(index) => match self.user(&index.user_id).await {
                Ok(user) => Ok(Some(user)),
                Err(Error::UnknownUser { .. }) => Ok(None),
                Err(e) => Err(e),
            },
            Err(e) if not_found(&e) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    async fn put_user(&self, user: &UserRecord) -> Result<()> {
        let data = serde_json::to_vec_pretty(user).expect("user record serializes");
        self.store
            .put_durable(&user_path(&user.id), Bytes::from(data))
            .await?;
        Ok(())
    }

    /// Every account of `org` (every organization for `None`), oldest first.
    pub async fn users(&self, org: Option<&str>) -> Result<Vec<UserRecord>> {
        let mut out: Vec<UserRecord> = Vec::new();
        for meta in self
            .store
            .list(&ObjectPath::from("meta/people/users"))
            .await?
        {
            let user: UserRecord = self.store.get_json(&meta.location).await?;
            if org.is_none_or(|o| o == user.org) {
                out.push(user);
            }
        }
        out.sort_by(|a, b| (a.created, &a.id).cmp(&(b.created, &b.id)));
        Ok(out)
    }

    /// True if any organization has an owner account.
    pub async fn has_owner(&self) -> Result<bool> {
        Ok(self
            .users(None)
            .await?
            .iter()
            .any(|u| u.role == OrgRole::Owner))
    }

    /// Creates an account (without a password unless `password` is given). The email is
    /// claimed with a conditional write first, so it is unique across nodes.
    pub async fn create_user(
        &self,
        email: &str,
        name: &str,
        org: &str,
        role: OrgRole,
        password: Option<&str>,
    ) -> Result<UserRecord> {
        let email = normalize_email(email)?;
        let name = check_name(name)?;
        if !faultline_config::is_slug(org) {
            return Err(Error::InvalidOrg {
                org: org.to_owned(),
            });
        }
        let hash = match password {
            Some(p) => {
                password::check(p, org, &email)?;
                Some(hash_blocking(p).await?)
            }
            None => None,
        };
        let id = ulid::Ulid::new().to_string().to_lowercase();
        let index = serde_json::json!({ "user_id": id });
        match self
            .store
            .create_durable(&email_path(&email), Bytes::from(index.to_string()))
            .await
        {
            Ok(()) => {}
            Err(store::Error::AlreadyExists { .. }) => return Err(Error::EmailTaken { email }),
            Err(e) => return Err(e.into()),
        }
        let user = UserRecord {
            id,
            email,
            name,
            org: org.to_owned(),
            role,
            password: hash,
            disabled: false,
            created: self.now(),
            totp: None,
            totp_pending: None,
            passkeys: Vec::new(),
            sso: None,
        };
        self.put_user(&user).await?;
        Ok(user)
    }

    /// What clients see of `user`.
    pub async fn member(&self, user: &UserRecord) -> Result<Member> {
        let teams = self
            .teams(&user.org)
            .await?
            .into_iter()
            .filter(|t| t.members.iter().any(|m| m.user_id == user.id))
            .map(|t| t.slug)
            .collect();
        Ok(Member {
            id: user.id.clone(),
            email: user.email.clone(),
            name: user.name.clone(),
            org_role: user.role,
            disabled: user.disabled,
            mfa: user.has_mfa(),
            has_password: user.password.is_some(),
            teams,
            date_created: user.created,
        })
    }

    /// The members of `org` as clients see them.
    pub async fn members(&self, org: &str) -> Result<Vec<Member>> {
        let teams = self.teams(org).await?;
        Ok(self
            .users(Some(org))
            .await?
            .into_iter()
            .map(|user| Member {
                teams: teams
                    .iter()
                    .filter(|t| t.members.iter().any(|m| m.user_id == user.id))
                    .map(|t| t.slug.clone())
                    .collect(),
                mfa: user.has_mfa(),
                id: user.id,
                email: user.email,
                name: user.name,
                org_role: user.role,
                disabled: user.disabled,
                has_password: user.password.is_some(),
                date_created: user.created,
            })
            .collect())
    }

    /// A member of `org` by id.
    pub async fn user_in(&self, org: &str, id: &str) -> Result<UserRecord> {
        let user = self.user(id).await?;
        if user.org != org {
            return Err(Error::UnknownUser { id: id.to_owned() });
        }
        Ok(user)
    }

    /// Refuses a change that would leave `org` without an enabled owner.
    async fn keep_an_owner(&self, org: &str, changing: &str) -> Result<()> {
        let others = self
            .users(Some(org))
            .await?
            .into_iter()
            .any(|u| u.id != changing && u.role == OrgRole::Owner && !u.disabled);
        if others {
            Ok(())
        } else {
            Err(Error::LastOwner)
        }
    }

    /// Changes a member's organization role.
    pub async fn set_role(&self, org: &str, id: &str, role: OrgRole) -> Result<UserRecord> {
        let mut user = self.user_in(org, id).await?;
        if user.role == OrgRole::Owner && role != OrgRole::Owner {
            self.keep_an_owner(org, id).await?;
        }
        user.role = role;
        self.put_user(&user).await?;
        self.forget_user(id);
        Ok(user)
    }

    /// Disables or enables a member; disabling ends their sessions at once.
    pub async fn set_disabled(&self, org: &str, id: &str, disabled: bool) -> Result<UserRecord> {
        let mut user = self.user_in(org, id).await?;
        if disabled && user.role == OrgRole::Owner {
            self.keep_an_owner(org, id).await?;
        }
        user.disabled = disabled;
        self.put_user(&user).await?;
        if disabled {
            self.end_sessions(id, None).await?;
        }
        self.forget_user(id);
        Ok(user)
    }

    /// Sets a new password after checking the rules; ends every session of the user except
    /// `keep` (a session id hash).
    pub async fn set_password(
        &self,
        user: &mut UserRecord,
        new: &str,
        keep: Option<&str>,
    ) -> Result<usize> {
        password::check(new, &user.org, &user.email)?;
        user.password = Some(hash_blocking(new).await?);
        self.put_user(user).await?;
        self.end_sessions(&user.id, keep).await
    }

    /// Changes the password of the session's user: the current one is required.
    pub async fn change_password(&self, actor: &Actor, current: &str, new: &str) -> Result<usize> {
        let mut user = self.user(&actor.user_id).await?;
        let stored = user.password.clone().unwrap_or_default();
        let current = current.to_owned();
        let ok = tokio::task::spawn_blocking(move || password::verify(&current, &stored))
            .await
            .unwrap_or(false);
        if !ok {
            return Err(Error::WrongPassword);
        }
        let keep = self.session_hash_of(&actor.session_id).await?;
        self.set_password(&mut user, new, keep.as_deref()).await
    }

    // ---- org settings ----

    pub async fn org_settings(&self, org: &str) -> Result<OrgSettings> {
        match self.store.get_json(&org_path(org)).await {
            Ok(settings) => Ok(settings),
            Err(e) if not_found(&e) => Ok(OrgSettings::default()),
            Err(e) => Err(e.into()),
        }
    }

    pub async fn set_org_settings(&self, org: &str, settings: &OrgSettings) -> Result<()> {
        let data = serde_json::to_vec_pretty(settings).expect("settings serialize");
        self.store
            .put_durable(&org_path(org), Bytes::from(data))
            .await?;
        self.sessions.write().clear();
        Ok(())
    }

    // ---- teams ----

    pub async fn teams(&self, org: &str) -> Result<Vec<Team>> {
        if !faultline_config::is_slug(org) {
            return Ok(Vec::new());
        }
        let mut out: Vec<Team> = Vec::new();
        for meta in self
            .store
            .list(&ObjectPath::from(format!("meta/people/teams/{org}")))
            .await?
        {
            out.push(self.store.get_json(&meta.location).await?);
        }
        out.sort_by(|a, b| a.slug.cmp(&b.slug));
        Ok(out)
    }

    pub async fn team(&self, org: &str, slug: &str) -> Result<Team> {
        if !faultline_config::is_slug(slug) {
            return Err(Error::UnknownTeam {
                slug: slug.to_owned(),
            });
        }
        match self.store.get_json(&team_path(org, slug)).await {
            Ok(team) => Ok(team),
            Err(e) if not_found(&e) => Err(Error::UnknownTeam {
                slug: slug.to_owned(),
            }),
            Err(e) => Err(e.into()),
        }
    }

    /// Creates a team (a conditional write: two nodes cannot both create one slug).
    pub async fn create_team(&self, org: &str, slug: &str) -> Result<Team> {
        if !faultline_config::is_slug(slug) {
            return Err(Error::InvalidTeam {
                slug: slug.to_owned(),
            });
        }
        let team = Team {
            slug: slug.to_owned(),
            org: org.to_owned(),
            projects: Vec::new(),
            members: Vec::new(),
            created: self.now(),
        };
        let data = serde_json::to_vec_pretty(&team).expect("team serializes");
        match self
            .store
            .create_durable(&team_path(org, slug), Bytes::from(data))
            .await
        {
            Ok(()) => Ok(team),
            Err(store::Error::AlreadyExists { .. }) => Err(Error::TeamTaken {
                slug: slug.to_owned(),
            }),
            Err(e) => Err(e.into()),
        }
    }

    /// Applies `change` to a team and stores it.
    pub async fn edit_team(
        &self,
        org: &str,
        slug: &str,
        change: impl FnOnce(&mut Team),
    ) -> Result<Team> {
        let mut team = self.team(org, slug).await?;
        change(&mut team);
        team.members.sort_by(|a, b| a.user_id.cmp(&b.user_id));
        team.members.dedup_by(|a, b| a.user_id == b.user_id);
        team.projects.sort_unstable();
        team.projects.dedup();
        let data = serde_json::to_vec_pretty(&team).expect("team serializes");
        self.store
            .put_durable(&team_path(org, slug), Bytes::from(data))
            .await?;
        self.sessions.write().clear();
        Ok(team)
    }

    /// Adds (or changes the role of) a member in a team.
    pub async fn add_team_member(
        &self,
        org: &str,
        slug: &str,
        user_id: &str,
        role: TeamRole,
    ) -> Result<Team> {
        self.user_in(org, user_id).await?;
        self.edit_team(org, slug, |team| {
            team.members.retain(|m| m.user_id != user_id);
            team.members.push(TeamMember {
                user_id: user_id.to_owned(),
                role,
            });
        })
        .await
    }

    // ---- invites and links ----

    /// Creates an invite; returns its token (shown once) and record.
    pub async fn invite(
        &self,
        org: &str,
        email: &str,
        role: OrgRole,
        teams: Vec<String>,
        invited_by: &str,
    ) -> Result<(String, InviteRecord)> {
        let email = normalize_email(email)?;
        if self.user_by_email(&email).await?.is_some() {
            return Err(Error::EmailTaken { email });
        }
        for slug in &teams {
            self.team(org, slug).await?;
        }
        let token = random_token();
        let record = InviteRecord {
            email,
            org: org.to_owned(),
            role,
            teams,
            expires: self.after(self.config.invite_ttl),
            created: self.now(),
            invited_by: invited_by.to_owned(),
        };
        let data = serde_json::to_vec_pretty(&record).expect("invite serializes");
        self.store
            .create_durable(&invite_path(&sha256(&token)), Bytes::from(data))
            .await?;
        Ok((token, record))
    }

    /// The invite a token names, if it is still valid.
    pub async fn pending_invite(&self, token: &str) -> Result<InviteRecord> {
        let record: InviteRecord = match self.store.get_json(&invite_path(&sha256(token))).await {
            Ok(r) => r,
            Err(e) if not_found(&e) => return Err(Error::BadLink),
            Err(e) => return Err(e.into()),
        };
        if record.expires <= self.now() {
            return Err(Error::BadLink);
        }
        Ok(record)
    }

    /// Accepts an invite: creates the account with a name and password, joins its teams.
    pub async fn accept_invite(
        &self,
        token: &str,
        name: &str,
        password: &str,
    ) -> Result<UserRecord> {
        let invite = self.pending_invite(token).await?;
        password::check(password, &invite.org, &invite.email)?;
        let user = self
            .create_user(
                &invite.email,
                name,
                &invite.org,
                invite.role,
                Some(password),
            )
            .await?;
        self.store.delete(&invite_path(&sha256(token))).await?;
        for slug in &invite.teams {
            match self
                .add_team_member(&invite.org, slug, &user.id, TeamRole::Contributor)
                .await
            {
                Ok(_) | Err(Error::UnknownTeam { .. }) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(user)
    }

    /// A set-password link for `user_id`, or (with `None`) the first-start setup link that
    /// creates the first owner. Returns the token.
    pub async fn create_link(&self, user_id: Option<&str>) -> Result<String> {
        let token = random_token();
        let record = LinkRecord {
            user_id: user_id.map(str::to_owned),
            expires: self.after(self.config.setup_link_ttl),
        };
        let data = serde_json::to_vec_pretty(&record).expect("link serializes");
        self.store
            .create_durable(&link_path(&sha256(&token)), Bytes::from(data))
            .await?;
        Ok(token)
    }

    /// The set-password link a token names, if it is still valid (without using it).
    pub async fn pending_link(&self, token: &str) -> Result<LinkRecord> {
        let link: LinkRecord = match self.store.get_json(&link_path(&sha256(token))).await {
            Ok(r) => r,
            Err(e) if not_found(&e) => return Err(Error::BadLink),
            Err(e) => return Err(e.into()),
        };
        if link.expires <= self.now() {
            return Err(Error::BadLink);
        }
        Ok(link)
    }

    /// Uses a set-password link: sets the password of its user, or creates the first owner
    /// (then `email` and `name` are needed). The link works once.
    pub async fn use_link(
        &self,
        token: &str,
        email: Option<&str>,
        name: Option<&str>,
        password: &str,
    ) -> Result<UserRecord> {
        let path = link_path(&sha256(token));
        let link: LinkRecord = match self.store.get_json(&path).await {
            Ok(r) => r,
            Err(e) if not_found(&e) => return Err(Error::BadLink),
            Err(e) => return Err(e.into()),
        };
        if link.expires <= self.now() {
            self.store.delete(&path).await?;
            return Err(Error::BadLink);
        }
        let user = match link.user_id {
            Some(id) => {
                let mut user = self.user(&id).await?;
                self.set_password(&mut user, password, None).await?;
                user
            }
            None => {
                if self.has_owner().await? {
                    self.store.delete(&path).await?;
                    return Err(Error::OwnerExists);
                }
                let email = email.ok_or(Error::Missing("the email address of the first owner"))?;
                let name = name.unwrap_or(email);
                self.create_user(email, name, DEFAULT_ORG, OrgRole::Owner, Some(password))
                    .await?
            }
        };
        self.store.delete(&path).await?;
        Ok(user)
    }

    // ---- login and sessions ----

    /// Checks email, password and (when enrolled) a TOTP or recovery code; throttles failures
    /// per account and per client address. On success starts a new session. An account with
    /// passkeys but no TOTP logs in through [`People::begin_passkey_login`] instead.
    pub async fn login(
        &self,
        email: &str,
        password: &str,
        code: Option<&str>,
        client: &Client,
    ) -> Result<NewSession> {
        let mut user = self.check_password(email, password, client).await?;
        if user.totp.is_some() {
            let Some(code) = code.filter(|c| !c.trim().is_empty()) else {
                return Err(Error::CodeRequired);
            };
            if !self.use_code(&mut user, code).await? {
                return Err(self.failed(&user.email, client, Error::BadCode));
            }
        } else if !user.passkeys.is_empty() {
            return Err(Error::PasskeyRequired);
        }
        self.throttle.clear(&format!("account:{}", user.email));
        self.start_session(user, client).await
    }

    /// Counts a failed login of `email` from `client` and answers `err`.
    fn failed(&self, email: &str, client: &Client, err: Error) -> Error {
        self.throttle.fail(&format!("account:{email}"));
        if let Some(ip) = &client.ip {
            self.throttle.fail(&format!("ip:{ip}"));
        }
        err
    }

    /// The first step of a password login: the enabled account with this email and password,
    /// throttled per account and client address.
    pub(crate) async fn check_password(
        &self,
        email: &str,
        password: &str,
        client: &Client,
    ) -> Result<UserRecord> {
        if !self.config.password_login {
            return Err(Error::PasswordLoginOff);
        }
        let email = email.trim().to_lowercase();
        let account_key = format!("account:{email}");
        let ip_key = client.ip.as_deref().map(|ip| format!("ip:{ip}"));
        if let Some(retry_after) = self.throttle.blocked(&account_key) {
            return Err(Error::Throttled {
                what: "account",
                retry_after,
            });
        }
        if let Some(retry_after) = ip_key.as_deref().and_then(|k| self.throttle.blocked(k)) {
            return Err(Error::Throttled {
                what: "address",
                retry_after,
            });
        }
        let user = self.user_by_email(&email).await?;
        let stored = user.as_ref().and_then(|u| u.password.clone());
        let typed = password.to_owned();
        let matches = tokio::task::spawn_blocking(move || match stored {
            Some(stored) => password::verify(&typed, &stored),
            None => {
                // as slow as a wrong password, so the answer does not tell accounts apart
                password::verify(&typed, password::dummy_hash());
                false
            }
        })
        .await
        .unwrap_or(false);
        let Some(user) = user.filter(|u| matches && u.password.is_some()) else {
            return Err(self.failed(&email, client, Error::BadLogin));
        };
        if user.disabled {
            return Err(self.failed(&email, client, Error::Disabled));
        }
        Ok(user)
    }

    /// Starts a session for `user` (always a new id).
    pub async fn start_session(&self, user: UserRecord, client: &Client) -> Result<NewSession> {
        let cookie = random_token();
        let now = self.now();
        let record = SessionRecord {
            user_id: user.id.clone(),
            created: now,
            last_seen: now,
            ip: client.ip.clone(),
            user_agent: client.user_agent.clone(),
        };
        let data = serde_json::to_vec_pretty(&record).expect("session serializes");
        self.store
            .create_durable(&session_path(&sha256(&cookie)), Bytes::from(data))
            .await?;
        Ok(NewSession {
            cookie,
            expires: self.expiry(&record),
            user,
        })
    }

    fn expiry(&self, record: &SessionRecord) -> DateTime<Utc> {
        let idle = chrono::TimeDelta::from_std(self.config.session_idle_timeout)
            .unwrap_or(chrono::TimeDelta::MAX);
        let absolute = chrono::TimeDelta::from_std(self.config.session_absolute_timeout)
            .unwrap_or(chrono::TimeDelta::MAX);
        (record.last_seen + idle).min(record.created + absolute)
    }

    /// The user and permissions behind a session cookie's value; `None` when the session is
    /// unknown, ended or expired, or its account is disabled. See the module doc.
    pub async fn session_principal(&self, cookie: &str) -> Result<Option<(Actor, Arc<Principal>)>> {
        let digest = sha256(cookie);
        if let Some((actor, principal, at)) = self.sessions.read().get(&digest)
            && at.elapsed() < CACHE_TTL
        {
            return Ok(Some((actor.clone(), Arc::clone(principal))));
        }
        let path = session_path(&digest);
        let mut record: SessionRecord = match self.store.get_json(&path).await {
            Ok(r) => r,
            Err(e) if not_found(&e) => {
                self.sessions.write().remove(&digest);
                return Ok(None);
            }
            Err(e) => return Err(e.into()),
        };
        let now = self.now();
        if self.expiry(&record) <= now {
            self.store.delete(&path).await?;
            self.sessions.write().remove(&digest);
            return Ok(None);
        }
        let user = match self.user(&record.user_id).await {
            Ok(user) if !user.disabled => user,
            Ok(_) | Err(Error::UnknownUser { .. }) => {
                self.store.delete(&path).await?;
                self.sessions.write().remove(&digest);
                return Ok(None);
            }
            Err(e) => return Err(e),
        };
        if now - record.last_seen >= TOUCH_EVERY {
            record.last_seen = now;
            let data = serde_json::to_vec_pretty(&record).expect("session serializes");
            self.store.put_durable(&path, Bytes::from(data)).await?;
        }
        let (actor, principal) = self.resolve(&user, public_id(&digest)).await?;
        let principal = Arc::new(principal);
        self.sessions.write().insert(
            digest,
            (actor.clone(), Arc::clone(&principal), Instant::now()),
        );
        Ok(Some((actor, principal)))
    }

    /// The actor and principal of a user acting through session `session_id`.
    pub async fn resolve(
        &self,
        user: &UserRecord,
        session_id: String,
    ) -> Result<(Actor, Principal)> {
        let settings = self.org_settings(&user.org).await?;
        let teams: Vec<Team> = self
            .teams(&user.org)
            .await?
            .into_iter()
            .filter(|t| t.members.iter().any(|m| m.user_id == user.id))
            .collect();
        let team_roles = teams.iter().filter_map(|t| {
            t.members
                .iter()
                .find(|m| m.user_id == user.id)
                .map(|m| m.role)
        });
        let must_enrol_mfa = self.requires_mfa(&settings) && !user.has_mfa();
        let scopes = if must_enrol_mfa {
            Vec::new()
        } else {
            roles::union(user.role, team_roles)
        };
        let projects = if user.role.sees_all_projects(settings.open_membership) {
            None
        } else {
            let mut ids: Vec<u64> = teams.iter().flat_map(|t| t.projects.clone()).collect();
            ids.sort_unstable();
            ids.dedup();
            Some(ids)
        };
        let actor = Actor {
            user_id: user.id.clone(),
            email: user.email.clone(),
            name: user.name.clone(),
            session_id,
            must_enrol_mfa,
        };
        let principal = Principal {
            token_id: format!("user:{}", user.id),
            name: user.email.clone(),
            org: Some(user.org.clone()),
            scopes,
            projects,
            owner: None,
        };
        Ok((actor, principal))
    }

    /// What `user_id` may do now, for their API tokens: the rights a login session of theirs
    /// would get; `None` when the account is disabled or gone.
    pub async fn current_rights(&self, user_id: &str) -> Result<Option<Principal>> {
        let user = match self.user(user_id).await {
            Ok(user) if !user.disabled => user,
            Ok(_) | Err(Error::UnknownUser { .. }) => return Ok(None),
            Err(e) => return Err(e),
        };
        let (_, principal) = self.resolve(&user, String::new()).await?;
        Ok(Some(principal))
    }

    async fn stored_sessions(&self) -> Result<Vec<(String, SessionRecord)>> {
        let mut out = Vec::new();
        for meta in self.store.list(&ObjectPath::from(SESSIONS)).await? {
            let Some(digest) = meta
                .location
                .filename()
                .and_then(|f| f.strip_suffix(".json"))
                .map(str::to_owned)
            else {
                continue;
            };
            match self.store.get_json::<SessionRecord>(&meta.location).await {
                Ok(record) => out.push((digest, record)),
                // ended meanwhile
                Err(e) if not_found(&e) => {}
                Err(e) => return Err(e.into()),
            }
        }
        Ok(out)
    }

    async fn session_hash_of(&self, public: &str) -> Result<Option<String>> {
        Ok(self
            .stored_sessions()
            .await?
            .into_iter()
            .map(|(digest, _)| digest)
            .find(|digest| public_id(digest) == public))
    }

    /// The live sessions of a user, newest first; `current` marks the caller's.
    pub async fn sessions_of(&self, user_id: &str, current: &str) -> Result<Vec<SessionInfo>> {
        let now = self.now();
        let mut out: Vec<SessionInfo> = self
            .stored_sessions()
            .await?
            .into_iter()
            .filter(|(_, r)| r.user_id == user_id && self.expiry(r) > now)
            .map(|(digest, r)| SessionInfo {
                id: public_id(&digest),
                current: public_id(&digest) == current,
                expires: self.expiry(&r),
                created: r.created,
                last_seen: r.last_seen,
                ip: r.ip,
                user_agent: r.user_agent,
            })
            .collect();
        out.sort_by_key(|s| std::cmp::Reverse(s.created));
        Ok(out)
    }

    /// Ends one session of a user by its public id.
    pub async fn end_session(&self, user_id: &str, id: &str) -> Result<()> {
        for (digest, record) in self.stored_sessions().await? {
            if record.user_id == user_id && public_id(&digest) == id {
                self.store.delete(&session_path(&digest)).await?;
                self.sessions.write().remove(&digest);
                return Ok(());
            }
        }
        Err(Error::UnknownSession { id: id.to_owned() })
    }

    /// Ends the session with this cookie value (logout).
    pub async fn logout(&self, cookie: &str) -> Result<()> {
        let digest = sha256(cookie);
        self.store.delete(&session_path(&digest)).await?;
        self.sessions.write().remove(&digest);
        Ok(())
    }

    /// Ends every session of a user except `keep` (a session hash); returns how many ended.
    pub async fn end_sessions(&self, user_id: &str, keep: Option<&str>) -> Result<usize> {
        let mut ended = 0;
        for (digest, record) in self.stored_sessions().await? {
            if record.user_id == user_id && keep != Some(digest.as_str()) {
                self.store.delete(&session_path(&digest)).await?;
                ended += 1;
            }
        }
        self.forget_user(user_id);
        Ok(ended)
    }

    /// Ends every session of a user except the one with public id `keep`.
    pub async fn end_other_sessions(&self, user_id: &str, keep: &str) -> Result<usize> {
        let keep = self.session_hash_of(keep).await?;
        self.end_sessions(user_id, keep.as_deref()).await
    }

    fn forget_user(&self, user_id: &str) {
        self.sessions
            .write()
            .retain(|_, (actor, _, _)| actor.user_id != user_id);
    }
}

async fn hash_blocking(password: &str) -> Result<String> {
    let password = password.to_owned();
    tokio::task::spawn_blocking(move || password::hash(&password))
        .await
        .map_err(|e| Error::Hash(e.to_string()))?
}

#[cfg(test)]
mod tests;
