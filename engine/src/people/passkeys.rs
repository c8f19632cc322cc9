//! Passkeys (WebAuthn, through `webauthn-rs`): a person registers passkeys on their account
//! page, and uses one to log in without a password (a discoverable credential, verified with
//! the authenticator's PIN or biometrics) or as the second factor after the password, instead
//! of a TOTP code. A passkey counts as a second factor wherever MFA is required.
//!
//! Each ceremony has two steps. The start answers the browser's options (a random challenge)
//! and a ceremony id; the state is kept in the object store
//! (`meta/people/passkeys/pending/<sha256 of the id>.json`), so any node can finish. The
//! finish deletes that state before checking anything, so a ceremony works once, and refuses
//! one older than [`PENDING_TTL`] or of another kind or person.
//!
//! The relying party is `server.public_url` (its host is the RP id, its origin the only origin
//! accepted). Without a public URL it is `http://localhost:<listen port>`: browsers accept
//! passkeys on `localhost` over plain HTTP but never on an IP address.
//!
//! The passkeys themselves live in the account's object ([`PasskeyRecord`]).

use bytes::Bytes;
use chrono::{DateTime, Utc};
use object_store::path::Path as ObjectPath;
use serde::{Deserialize, Serialize};
use webauthn_rs::prelude::{
    DiscoverableAuthentication, Passkey, PasskeyAuthentication, PasskeyRegistration,
    PublicKeyCredential, RegisterPublicKeyCredential, Url, Uuid, Webauthn, WebauthnBuilder,
};

use super::{Actor, Client, Error, People, Result, UserRecord, not_found, random_token, sha256};

/// How long a started ceremony can be finished.
pub const PENDING_TTL: chrono::TimeDelta = chrono::TimeDelta::minutes(5);

/// Most passkeys one account may have.
pub const MAX_PASSKEYS: usize = 20;

/// A registered passkey, in its account's object.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PasskeyRecord {
    /// Public id: the first 16 hex digits of the SHA-256 of the credential id.
    pub id: String,
    pub name: String,
    pub created: DateTime<Utc>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_used: Option<DateTime<Utc>>,
    /// The credential (public key, counter) as `webauthn-rs` stores it.
    pub key: serde_json::Value,
}

/// What the account page and `GET /auth/passkeys` show of a passkey.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PasskeyInfo {
    pub id: String,
    pub name: String,
    pub created: DateTime<Utc>,
    pub last_used: Option<DateTime<Utc>>,
}

impl From<&PasskeyRecord> for PasskeyInfo {
    fn from(r: &PasskeyRecord) -> Self {
        Self {
            id: r.id.clone(),
            name: r.name.clone(),
            created: r.created,
            last_used: r.last_used,
        }
    }
}

/// A started ceremony: its id (sent back with the finish) and the options for
/// `navigator.credentials.create` / `.get` (`{"publicKey": ...}`).
#[derive(Debug, Clone, Serialize)]
pub struct Started {
    pub ceremony: String,
    pub options: serde_json::Value,
}

/// A ceremony waiting for its finish.
#[derive(Debug, Serialize, Deserialize)]
struct Pending {
    created: DateTime<Utc>,
    #[serde(flatten)]
    kind: PendingKind,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
enum PendingKind {
    Register {
        user_id: String,
        state: PasskeyRegistration,
    },
    /// Second factor: the password was right.
    SecondFactor {
        user_id: String,
        state: PasskeyAuthentication,
    },
    Passwordless {
        state: DiscoverableAuthentication,
    },
}

fn pending_path(ceremony: &str) -> ObjectPath {
    ObjectPath::from(format!(
        "meta/people/passkeys/pending/{}.json",
        sha256(ceremony)
    ))
}

/// The relying party of a server: `public_url`, or `http://localhost:<port>` without one.
pub fn relying_party(public_url: Option<&str>, listen_port: u16) -> Result<Webauthn> {
    let url = match public_url {
        Some(u) => u.trim_end_matches('/').to_owned(),
        None => format!("http://localhost:{listen_port}"),
    };
    let origin = Url::parse(&url)
        .map_err(|e| Error::PasskeySetup(format!("server.public_url {url:?}: {e}")))?;
    let rp_id = origin
        .host_str()
        .ok_or_else(|| Error::PasskeySetup(format!("server.public_url {url:?} has no host")))?
        .to_owned();
    WebauthnBuilder::new(&rp_id, &origin)
        .and_then(|b| b.rp_name("faultline").build())
        .map_err(|e| Error::PasskeySetup(format!("relying party {rp_id:?} ({url}): {e}")))
}

/// The WebAuthn user handle of an account: its id (a ULID) as a UUID.
fn handle_of(user_id: &str) -> Result<Uuid> {
    ulid::Ulid::from_string(user_id)
        .map(|u| Uuid::from_u128(u.0))
        .map_err(|_| Error::UnknownUser {
            id: user_id.to_owned(),
        })
}

/// The account id of a WebAuthn user handle.
fn user_of(handle: Uuid) -> String {
    ulid::Ulid(handle.as_u128()).to_string().to_lowercase()
}

fn public_id(credential_id: &[u8]) -> String {
    let digest = hex::encode(<sha2::Sha256 as sha2::Digest>::digest(credential_id));
    digest[..16].to_owned()
}

fn key_of(record: &PasskeyRecord) -> Result<Passkey> {
    serde_json::from_value(record.key.clone()).map_err(|e| {
        Error::PasskeySetup(format!("stored passkey {} is unreadable: {e}", record.id))
    })
}

fn refused(err: impl std::fmt::Display) -> Error {
    Error::BadPasskey(err.to_string())
}

/// The options as the browser needs them. Registration asks for a discoverable credential
/// (`residentKey: required`), so the passkey also works for passwordless login.
fn options_json(value: impl Serialize, discoverable: bool) -> serde_json::Value {
    let mut json = serde_json::to_value(value).expect("WebAuthn options serialize");
    if discoverable
        && let Some(selection) = json
            .pointer_mut("/publicKey/authenticatorSelection")
            .and_then(serde_json::Value::as_object_mut)
    {
        selection.insert("residentKey".into(), "required".into());
        selection.insert("requireResidentKey".into(), true.into());
    }
    if let Some(options) = json
        .pointer_mut("/publicKey")
        .and_then(serde_json::Value::as_object_mut)
    {
        // a modal prompt from a button, not autofill
        options.remove("mediation");
    }
    if let Some(json) = json.as_object_mut() {
        json.remove("mediation");
    }
    json
}

impl People {
    fn webauthn(&self) -> Result<&Webauthn> {
        self.webauthn
            .as_ref()
            .ok_or_else(|| Error::PasskeySetup("passkeys are not set up on this server".into()))
    }

    async fn put_pending(&self, kind: PendingKind) -> Result<String> {
        let ceremony = random_token();
        let pending = Pending {
            created: self.now(),
            kind,
        };
        let data = serde_json::to_vec(&pending).expect("a pending ceremony serializes");
        self.store
            .create_durable(&pending_path(&ceremony), Bytes::from(data))
            .await?;
        Ok(ceremony)
    }

    /// Takes a pending ceremony: deleted first (it works once), then checked for age.
    async fn take_pending(&self, ceremony: &str) -> Result<PendingKind> {
        let path = pending_path(ceremony);
        let pending: Pending = match self.store.get_json(&path).await {
            Ok(p) => p,
            Err(e) if not_found(&e) => return Err(Error::Ceremony),
            Err(e) => return Err(e.into()),
        };
        self.store.delete(&path).await?;
        if self.now() - pending.created > PENDING_TTL {
            return Err(Error::Ceremony);
        }
        Ok(pending.kind)
    }

    /// The passkeys of an account.
    pub fn passkeys_of(user: &UserRecord) -> Vec<PasskeyInfo> {
        user.passkeys.iter().map(PasskeyInfo::from).collect()
    }

    /// Starts registering a passkey for the logged-in person.
    pub async fn begin_passkey_registration(&self, actor: &Actor) -> Result<Started> {
        let webauthn = self.webauthn()?;
        let user = self.user(&actor.user_id).await?;
        if user.passkeys.len() >= MAX_PASSKEYS {
            return Err(Error::Forbidden(format!(
                "an account can have at most {MAX_PASSKEYS} passkeys: remove one first"
            )));
        }
        let exclude = user
            .passkeys
            .iter()
            .map(|p| key_of(p).map(|k| k.cred_id().clone()))
            .collect::<Result<Vec<_>>>()?;
        let (options, state) = webauthn
            .start_passkey_registration(
                handle_of(&user.id)?,
                &user.email,
                &user.name,
                Some(exclude),
            )
            .map_err(refused)?;
        let ceremony = self
            .put_pending(PendingKind::Register {
                user_id: user.id,
                state,
            })
            .await?;
        Ok(Started {
            ceremony,
            options: options_json(options, true),
        })
    }

    /// Finishes a registration: checks the authenticator's answer and stores the passkey
    /// under `name` (1-100 characters).
    pub async fn finish_passkey_registration(
        &self,
        actor: &Actor,
        ceremony: &str,
        name: &str,
        credential: &RegisterPublicKeyCredential,
    ) -> Result<PasskeyInfo> {
        let webauthn = self.webauthn()?;
        let name = name.trim();
        if name.is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
            return Err(Error::PasskeyName);
        }
        let state = match self.take_pending(ceremony).await? {
            PendingKind::Register { user_id, state } if user_id == actor.user_id => state,
            _ => return Err(Error::Ceremony),
        };
        let key = webauthn
            .finish_passkey_registration(credential, &state)
            .map_err(refused)?;
        let mut user = self.user(&actor.user_id).await?;
        let id = public_id(key.cred_id().as_ref());
        if user.passkeys.iter().any(|p| p.id == id) {
            return Err(Error::Forbidden(
                "this passkey is already registered".to_owned(),
            ));
        }
        let record = PasskeyRecord {
            id,
            name: name.to_owned(),
            created: self.now(),
            last_used: None,
            key: serde_json::to_value(&key).expect("a passkey serializes"),
        };
        let info = PasskeyInfo::from(&record);
        user.passkeys.push(record);
        self.put_user(&user).await?;
        self.forget_user(&user.id);
        Ok(info)
    }

    /// Removes one of the person's passkeys by its public id.
    pub async fn remove_passkey(&self, actor: &Actor, id: &str) -> Result<PasskeyInfo> {
        let mut user = self.user(&actor.user_id).await?;
        let Some(at) = user.passkeys.iter().position(|p| p.id == id) else {
            return Err(Error::UnknownPasskey { id: id.to_owned() });
        };
        let removed = user.passkeys.remove(at);
        self.put_user(&user).await?;
        self.forget_user(&user.id);
        Ok(PasskeyInfo::from(&removed))
    }

    /// Starts a passkey login: passwordless (`password` is `None`: any discoverable passkey
    /// of this site), or as the second factor after `email` and `password` (checked here,
    /// throttled like every password login).
    pub async fn begin_passkey_login(
        &self,
        password: Option<(&str, &str)>,
        client: &Client,
    ) -> Result<Started> {
        let webauthn = self.webauthn()?;
        let (kind, options) = match password {
            None => {
                let (options, state) = webauthn
                    .start_discoverable_authentication()
                    .map_err(refused)?;
                (
                    PendingKind::Passwordless { state },
                    options_json(options, false),
                )
            }
            Some((email, password)) => {
                let user = self.check_password(email, password, client).await?;
                if user.passkeys.is_empty() {
                    return Err(Error::NoPasskeys);
                }
                let keys = user
                    .passkeys
                    .iter()
                    .map(key_of)
                    .collect::<Result<Vec<_>>>()?;
                let (options, state) = webauthn
                    .start_passkey_authentication(&keys)
                    .map_err(refused)?;
                (
                    PendingKind::SecondFactor {
                        user_id: user.id,
                        state,
                    },
                    options_json(options, false),
                )
            }
        };
        let ceremony = self.put_pending(kind).await?;
        Ok(Started { ceremony, options })
    }

    /// Finishes a passkey login and starts a session. A wrong or unknown passkey counts as a
    /// failed login of the client's address (and of the account, once known).
    pub async fn finish_passkey_login(
        &self,
        ceremony: &str,
        credential: &PublicKeyCredential,
        client: &Client,
    ) -> Result<NewSessionOf> {
        let webauthn = self.webauthn()?;
        let ip_key = client.ip.as_deref().map(|ip| format!("ip:{ip}"));
        if let Some(retry_after) = ip_key.as_deref().and_then(|k| self.throttle.blocked(k)) {
            return Err(Error::Throttled {
                what: "address",
                retry_after,
            });
        }
        let fail = |err: Error, email: Option<&str>| {
            if let Some(key) = &ip_key {
                self.throttle.fail(key);
            }
            if let Some(email) = email {
                self.throttle.fail(&format!("account:{email}"));
            }
            err
        };
        let kind = self.take_pending(ceremony).await?;
        let method = match &kind {
            PendingKind::SecondFactor { .. } => "password+passkey",
            PendingKind::Passwordless { .. } => "passkey",
            PendingKind::Register { .. } => return Err(Error::Ceremony),
        };
        let user_id = match &kind {
            PendingKind::SecondFactor { user_id, .. } => user_id.clone(),
            _ => {
                let (handle, _) = webauthn
                    .identify_discoverable_authentication(credential)
                    .map_err(|e| fail(refused(e), None))?;
                user_of(handle)
            }
        };
        let mut user = match self.user(&user_id).await {
            Ok(user) => user,
            Err(Error::UnknownUser { .. }) => {
                return Err(fail(refused("no account has this passkey"), None));
            }
            Err(e) => return Err(e),
        };
        let id = public_id(credential.get_credential_id());
        let Some(at) = user.passkeys.iter().position(|p| p.id == id) else {
            return Err(fail(
                refused("this passkey is not registered (any more) with the account"),
                Some(&user.email),
            ));
        };
        let mut key = key_of(&user.passkeys[at])?;
        let result = match kind {
            PendingKind::SecondFactor { state, .. } => {
                webauthn.finish_passkey_authentication(credential, &state)
            }
            PendingKind::Passwordless { state } => {
                webauthn.finish_discoverable_authentication_v2(credential, state, &key)
            }
            PendingKind::Register { .. } => return Err(Error::Ceremony),
        }
        .map_err(|e| fail(refused(e), Some(&user.email)))?;
        if user.disabled {
            return Err(fail(Error::Disabled, Some(&user.email)));
        }
        key.update_credential(&result);
        let record = &mut user.passkeys[at];
        record.key = serde_json::to_value(&key).expect("a passkey serializes");
        record.last_used = Some(self.now());
        let passkey = record.name.clone();
        self.put_user(&user).await?;
        self.throttle.clear(&format!("account:{}", user.email));
        let session = self.start_session(user, client).await?;
        Ok(NewSessionOf {
            session,
            method,
            passkey,
        })
    }
}

/// A session started with a passkey: how (`passkey` or `password+passkey`) and which passkey
/// (its name), for the audit log.
#[derive(Debug)]
pub struct NewSessionOf {
    pub session: super::NewSession,
    pub method: &'static str,
    pub passkey: String,
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use faultline_config::AuthConfig;
    use parking_lot::Mutex;

    use super::*;
    use crate::people::OrgRole;
    use crate::store::Store;
    use crate::tenancy::DEFAULT_ORG;

    const PASSWORD: &str = "correct horse battery";

    /// People on a memory store with passkeys for `http://localhost:8080` and a clock the test
    /// moves.
    fn people() -> (People, Arc<Mutex<DateTime<Utc>>>) {
        let now = Arc::new(Mutex::new(Utc::now()));
        let clock = {
            let now = Arc::clone(&now);
            Arc::new(move || *now.lock())
        };
        let mut people = People::with_clock(Store::memory(), AuthConfig::default(), clock);
        people.set_relying_party(relying_party(None, 8080).unwrap());
        (people, now)
    }

    async fn actor(people: &People, email: &str) -> Actor {
        let user = people
            .create_user(email, email, DEFAULT_ORG, OrgRole::Member, Some(PASSWORD))
            .await
            .unwrap();
        let (actor, _) = people.resolve(&user, "s1".into()).await.unwrap();
        actor
    }

    /// A registration answer that parses but no authenticator made.
    fn forged_registration() -> RegisterPublicKeyCredential {
        serde_json::from_value(serde_json::json!({
            "id": "AAAA",
            "rawId": "AAAA",
            "type": "public-key",
            "response": {"attestationObject": "AAAA", "clientDataJSON": "AAAA"},
            "extensions": {}
        }))
        .unwrap()
    }

    fn forged_assertion() -> PublicKeyCredential {
        serde_json::from_value(serde_json::json!({
            "id": "AAAA",
            "rawId": "AAAA",
            "type": "public-key",
            "response": {"authenticatorData": "AAAA", "clientDataJSON": "AAAA",
                         "signature": "AAAA", "userHandle": null},
            "extensions": {}
        }))
        .unwrap()
    }

    #[tokio::test]
    async fn registration_options_ask_for_a_discoverable_passkey_of_this_site() {
        let (people, _) = people();
        let ann = actor(&people, "ann@example.com").await;
        let started = people.begin_passkey_registration(&ann).await.unwrap();
        assert_eq!(started.ceremony.len(), 64);
        let options = &started.options["publicKey"];
        assert_eq!(options["rp"]["id"], "localhost");
        assert_eq!(options["user"]["name"], "ann@example.com");
        assert_eq!(options["authenticatorSelection"]["residentKey"], "required");
        assert_eq!(
            options["authenticatorSelection"]["userVerification"],
            "required"
        );
        // the handle is the account's id, and maps back to it
        let handle = handle_of(&ann.user_id).unwrap();
        assert_eq!(user_of(handle), ann.user_id);
        // the state is stored by the hash of the ceremony id only
        let stored = people
            .store
            .list(&ObjectPath::from("meta/people/passkeys/pending"))
            .await
            .unwrap();
        assert_eq!(stored.len(), 1);
        assert!(!stored[0].location.as_ref().contains(&started.ceremony));
    }

    #[tokio::test]
    async fn a_ceremony_works_once_for_its_own_person_and_kind_and_expires() {
        let (people, now) = people();
        let ann = actor(&people, "ann@example.com").await;
        let bob = actor(&people, "bob@example.com").await;

        // a forged answer is refused, and the ceremony is gone with it
        let started = people.begin_passkey_registration(&ann).await.unwrap();
        let err = people
            .finish_passkey_registration(&ann, &started.ceremony, "laptop", &forged_registration())
            .await
            .unwrap_err();
        assert!(matches!(err, Error::BadPasskey(_)), "{err}");
        let again = people
            .finish_passkey_registration(&ann, &started.ceremony, "laptop", &forged_registration())
            .await
            .unwrap_err();
        assert_eq!(
            again.to_string(),
            "the passkey request is unknown, used or expired: start again"
        );

        // another person cannot finish ann's registration
        let started = people.begin_passkey_registration(&ann).await.unwrap();
        let err = people
            .finish_passkey_registration(&bob, &started.ceremony, "x", &forged_registration())
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Ceremony), "{err}");

        // a registration cannot be finished as a login, nor a login as a registration
        let started = people.begin_passkey_registration(&ann).await.unwrap();
        let err = people
            .finish_passkey_login(&started.ceremony, &forged_assertion(), &Client::default())
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Ceremony), "{err}");
        let login = people
            .begin_passkey_login(None, &Client::default())
            .await
            .unwrap();
        let err = people
            .finish_passkey_registration(&ann, &login.ceremony, "x", &forged_registration())
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Ceremony), "{err}");

        // one older than the limit is refused
        let started = people.begin_passkey_registration(&ann).await.unwrap();
        *now.lock() += PENDING_TTL + chrono::TimeDelta::seconds(1);
        let err = people
            .finish_passkey_registration(&ann, &started.ceremony, "x", &forged_registration())
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Ceremony), "{err}");

        // a bad name is refused before the ceremony is used
        let started = people.begin_passkey_registration(&ann).await.unwrap();
        for name in ["", "  ", &"k".repeat(101)] {
            let err = people
                .finish_passkey_registration(&ann, &started.ceremony, name, &forged_registration())
                .await
                .unwrap_err();
            assert_eq!(err.to_string(), "the passkey name must be 1-100 characters");
        }
        let err = people
            .finish_passkey_registration(
                &ann,
                &started.ceremony,
                &"k".repeat(100),
                &forged_registration(),
            )
            .await
            .unwrap_err();
        assert!(matches!(err, Error::BadPasskey(_)), "{err}");
        // every ceremony that was tried is used up
        let left = people
            .store
            .list(&ObjectPath::from("meta/people/passkeys/pending"))
            .await
            .unwrap();
        assert!(left.is_empty(), "{left:?}");
    }

    #[tokio::test]
    async fn a_second_factor_login_needs_the_password_and_a_registered_passkey() {
        let (people, _) = people();
        actor(&people, "ann@example.com").await;
        let client = Client {
            ip: Some("10.0.0.9".into()),
            user_agent: None,
        };
        let err = people
            .begin_passkey_login(Some(("ann@example.com", "wrong password!")), &client)
            .await
            .unwrap_err();
        assert!(matches!(err, Error::BadLogin), "{err}");
        let err = people
            .begin_passkey_login(Some(("ann@example.com", PASSWORD)), &client)
            .await
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "this account has no passkey: log in with the password (and a TOTP code if it has one), then add a passkey on the account page"
        );
        // a passwordless answer without a user handle is refused
        let login = people.begin_passkey_login(None, &client).await.unwrap();
        let err = people
            .finish_passkey_login(&login.ceremony, &forged_assertion(), &client)
            .await
            .unwrap_err();
        assert!(matches!(err, Error::BadPasskey(_)), "{err}");
        let err = people
            .finish_passkey_login(&login.ceremony, &forged_assertion(), &client)
            .await
            .unwrap_err();
        assert!(matches!(err, Error::Ceremony), "{err}");
    }

    #[tokio::test]
    async fn a_passkey_is_a_second_factor_for_the_mfa_requirement_and_the_password_login() {
        let (people, _) = people();
        let ann = actor(&people, "ann@example.com").await;
        people
            .set_org_settings(
                DEFAULT_ORG,
                &crate::people::OrgSettings {
                    require_mfa: true,
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        let mut user = people.user(&ann.user_id).await.unwrap();
        let (actor, principal) = people.resolve(&user, "s".into()).await.unwrap();
        assert!(actor.must_enrol_mfa);
        assert!(principal.scopes.is_empty());
        // a registered passkey (its key is not needed for these checks)
        user.passkeys.push(PasskeyRecord {
            id: "0123456789abcdef".into(),
            name: "laptop".into(),
            created: Utc::now(),
            last_used: None,
            key: serde_json::Value::Null,
        });
        people.put_user(&user).await.unwrap();
        let (actor, principal) = people.resolve(&user, "s".into()).await.unwrap();
        assert!(!actor.must_enrol_mfa);
        assert!(!principal.scopes.is_empty());
        assert!(people.member(&user).await.unwrap().mfa);
        // the password alone no longer logs in
        let err = people
            .login("ann@example.com", PASSWORD, None, &Client::default())
            .await
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "this account needs its passkey (or a TOTP code) to log in"
        );
        // and it is listed, and removed by its id
        assert_eq!(People::passkeys_of(&user)[0].name, "laptop");
        let removed = people
            .remove_passkey(&ann, "0123456789abcdef")
            .await
            .unwrap();
        assert_eq!(removed.name, "laptop");
        people
            .login("ann@example.com", PASSWORD, None, &Client::default())
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn unknown_passkeys_cannot_be_removed_and_there_is_no_passkey_without_a_relying_party() {
        let (people, _) = people();
        let ann = actor(&people, "ann@example.com").await;
        let err = people
            .remove_passkey(&ann, "0123456789abcdef")
            .await
            .unwrap_err();
        assert_eq!(err.to_string(), "no passkey with id \"0123456789abcdef\"");
        let bare = People::new(Store::memory(), AuthConfig::default());
        let err = bare
            .begin_passkey_login(None, &Client::default())
            .await
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "passkeys: passkeys are not set up on this server"
        );
        assert!(relying_party(Some("https://errors.example.com/"), 0).is_ok());
        let err = relying_party(Some("not a url"), 0).unwrap_err();
        assert!(
            err.to_string()
                .starts_with("passkeys: server.public_url \"not a url\""),
            "{err}"
        );
    }
}
