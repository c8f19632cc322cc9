//! Single sign-on with an OpenID Connect provider (`[auth.oidc]`): the authorization code flow
//! with PKCE, `state` and `nonce`, through the `openidconnect` crate.
//!
//! 1. [`Sso::begin`] discovers the provider (cached for [`METADATA_TTL`]), makes a random
//!    `state`, `nonce` and PKCE verifier, keeps them in the object store under
//!    `meta/people/sso/pending/<sha256 of state>.json` (any node can finish the login) and
//!    answers the provider's authorization URL. The HTTP layer also puts the state in a
//!    short-lived cookie, so a login can only be finished by the browser that started it.
//! 2. [`Sso::finish`] takes the pending login (deleting it: a replayed `state` is refused),
//!    exchanges the code with the PKCE verifier, and verifies the ID token: signature against
//!    the provider's keys, `iss`, `aud` (our client id), expiry and `nonce`. The result is an
//!    [`Identity`]: issuer and subject, which is how an account is found
//!    (`meta/people/sso/identities/<sha256 of issuer and subject>.json`), never by email.
//! 3. [`People::login_sso`] starts a session for the linked account, or creates one when
//!    `auto_provision` is on.
//!
//! A logged-in person can also link their account to an identity: the same flow, started with
//! the account's id ([`Sso::begin`] `link`), ends in [`People::link_sso`] instead of a login.
//! An identity belongs to one account at most (the identity's object is created with a
//! conditional write); [`People::unlink_sso`] frees it while the account keeps a password or a
//! passkey to log in with.

use std::path::Path;
use std::time::{Duration, Instant};

use bytes::Bytes;
use chrono::{DateTime, Utc};
use faultline_config::OidcConfig;
use object_store::path::Path as ObjectPath;
use openidconnect::core::{
    CoreAuthenticationFlow, CoreClient, CoreIdToken, CoreIdTokenClaims, CoreIdTokenVerifier,
    CoreProviderMetadata,
};
use openidconnect::{
    AuthorizationCode, ClientId, ClientSecret, CsrfToken, IssuerUrl, Nonce, PkceCodeChallenge,
    PkceCodeVerifier, RedirectUrl, Scope, TokenResponse,
};
use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;

use super::{Client, NewSession, OrgRole, People, TeamRole, UserRecord, sha256};
use crate::store::{self, Store};
use crate::tenancy::DEFAULT_ORG;

/// The provider's discovery document and keys are fetched again after this long (and at once
/// when a token names a key we do not have).
pub const METADATA_TTL: Duration = Duration::from_secs(600);

/// A login must come back from the provider within this long.
pub const PENDING_TTL: chrono::TimeDelta = chrono::TimeDelta::minutes(10);

/// The path the provider sends the browser back to, below the public URL.
pub const CALLBACK_PATH: &str = "/auth/oidc/callback";

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("single sign-on is not configured ([auth.oidc])")]
    Off,
    #[error("cannot read the OIDC client secret file {path}: {source}")]
    SecretFile {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid [auth.oidc] {field}: {message}")]
    Config {
        field: &'static str,
        message: String,
    },
    #[error("the identity provider {issuer} cannot be used: {message}")]
    Provider { issuer: String, message: String },
    #[error(
        "the single sign-on login is unknown, already used, expired or was started in another browser: log in again"
    )]
    State,
    #[error("the identity provider refused the login: {0}")]
    Refused(String),
    #[error("the identity provider's ID token is not valid: {0}")]
    IdToken(String),
    #[error(
        "no faultline account is linked to this {provider} login: ask an administrator for an invite"
    )]
    NoAccount { provider: String },
    #[error(
        "the identity provider gave no email address, which a new account needs: allow the email scope"
    )]
    NoEmail,
    #[error(
        "this {provider} login already belongs to another faultline account: log in with it, or unlink it there first"
    )]
    IdentityTaken { provider: String },
    #[error("your account is already linked to a {provider} login: unlink it first")]
    AlreadyLinked { provider: String },
    #[error("your account is not linked to a single sign-on login")]
    NotLinked,
    #[error(
        "unlinking would leave no way to log in: set a password (a set-password link from an owner) or add a passkey first"
    )]
    LastLogin,
    #[error("this single sign-on link was started by another login session: start it again")]
    OtherSession,
}

impl Error {
    /// True when the fault is the provider's or the configuration's, not the person's.
    pub fn is_server_side(&self) -> bool {
        matches!(
            self,
            Self::Off | Self::SecretFile { .. } | Self::Config { .. } | Self::Provider { .. }
        )
    }
}

/// Who the provider says logged in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub issuer: String,
    pub subject: String,
    pub email: Option<String>,
    pub email_verified: bool,
    pub name: Option<String>,
}

/// A login between [`Sso::begin`] and [`Sso::finish`].
#[derive(Debug, Serialize, Deserialize)]
struct Pending {
    verifier: String,
    nonce: String,
    next: String,
    created: DateTime<Utc>,
    /// The account to link the identity to, instead of logging in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    link: Option<String>,
}

/// A finished flow: who the provider says it is, where the browser goes next, and for a link
/// the account it was started by.
#[derive(Debug)]
pub struct Finished {
    pub identity: Identity,
    pub next: String,
    pub link: Option<String>,
}

/// The single sign-on identity an account is linked to (kept in the account's object).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LinkedIdentity {
    pub issuer: String,
    pub subject: String,
    pub linked: DateTime<Utc>,
}

/// A login that was started: where to send the browser, and the state to bind to it.
#[derive(Debug)]
pub struct Started {
    pub url: String,
    pub state: String,
}

/// The OpenID Connect relying party.
pub struct Sso {
    config: OidcConfig,
    secret: Option<String>,
    issuer: IssuerUrl,
    redirect: RedirectUrl,
    http: reqwest::Client,
    metadata: Mutex<Option<(Instant, CoreProviderMetadata)>>,
    store: Store,
}

fn pending_path(state: &str) -> ObjectPath {
    ObjectPath::from(format!("meta/people/sso/pending/{}.json", sha256(state)))
}

fn identity_path(issuer: &str, subject: &str) -> ObjectPath {
    ObjectPath::from(format!(
        "meta/people/sso/identities/{}.json",
        sha256(&format!("{issuer}\n{subject}"))
    ))
}

fn read_secret(path: &Path) -> Result<String, Error> {
    std::fs::read_to_string(path)
        .map(|s| s.trim().to_owned())
        .map_err(|source| Error::SecretFile {
            path: path.to_owned(),
            source,
        })
}

impl Sso {
    /// The relying party for `config`; the browser comes back to `public_url` +
    /// [`CALLBACK_PATH`].
    pub fn new(config: &OidcConfig, public_url: &str, store: Store) -> Result<Self, Error> {
        let secret = match &config.client_secret_file {
            Some(path) => Some(read_secret(path)?),
            None => std::env::var("FAULTLINE_OIDC_CLIENT_SECRET").ok(),
        }
        .filter(|s| !s.is_empty());
        let issuer = IssuerUrl::new(config.issuer.clone()).map_err(|e| Error::Config {
            field: "issuer",
            message: e.to_string(),
        })?;
        let redirect = RedirectUrl::new(format!(
            "{}{CALLBACK_PATH}",
            public_url.trim_end_matches('/')
        ))
        .map_err(|e| Error::Config {
            field: "redirect URL (server.public_url)",
            message: e.to_string(),
        })?;
        config
            .default_role
            .parse::<OrgRole>()
            .map_err(|e| Error::Config {
                field: "default_role",
                message: e.to_string(),
            })?;
        // Following redirects would let a provider send our requests anywhere (SSRF).
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| Error::Config {
                field: "HTTP client",
                message: e.to_string(),
            })?;
        Ok(Self {
            config: config.clone(),
            secret,
            issuer,
            redirect,
            http,
            metadata: Mutex::new(None),
            store,
        })
    }

    /// The login button's label.
    pub fn name(&self) -> &str {
        &self.config.name
    }

    pub fn config(&self) -> &OidcConfig {
        &self.config
    }

    fn provider_error(&self, message: impl ToString) -> Error {
        Error::Provider {
            issuer: self.config.issuer.clone(),
            message: message.to_string(),
        }
    }

    /// The provider's metadata and keys; fetched again after [`METADATA_TTL`] or when `fresh`.
    async fn metadata(&self, fresh: bool) -> Result<CoreProviderMetadata, Error> {
        let mut cached = self.metadata.lock().await;
        if let Some((at, metadata)) = cached.as_ref()
            && !fresh
            && at.elapsed() < METADATA_TTL
        {
            return Ok(metadata.clone());
        }
        // discovery checks that the document names the configured issuer
        let metadata = CoreProviderMetadata::discover_async(self.issuer.clone(), &self.http)
            .await
            .map_err(|e| self.provider_error(error_chain(&e)))?;
        *cached = Some((Instant::now(), metadata.clone()));
        Ok(metadata)
    }

    fn client(
        &self,
        metadata: CoreProviderMetadata,
    ) -> openidconnect::core::CoreClient<
        openidconnect::EndpointSet,
        openidconnect::EndpointNotSet,
        openidconnect::EndpointNotSet,
        openidconnect::EndpointNotSet,
        openidconnect::EndpointMaybeSet,
        openidconnect::EndpointMaybeSet,
    > {
        CoreClient::from_provider_metadata(
            metadata,
            ClientId::new(self.config.client_id.clone()),
            self.secret.clone().map(ClientSecret::new),
        )
        .set_redirect_uri(self.redirect.clone())
    }

    /// Starts a login that comes back to `next` (a same-origin path); with `link`, a link of
    /// that account (a user id) to the identity instead.
    pub async fn begin(&self, next: &str, link: Option<&str>) -> Result<Started, Error> {
        let client = self.client(self.metadata(false).await?);
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let mut request = client
            .authorize_url(
                CoreAuthenticationFlow::AuthorizationCode,
                CsrfToken::new_random,
                Nonce::new_random,
            )
            .set_pkce_challenge(challenge);
        for scope in &self.config.scopes {
            if scope != "openid" {
                request = request.add_scope(Scope::new(scope.clone()));
            }
        }
        let (url, state, nonce) = request.url();
        let pending = Pending {
            verifier: verifier.secret().clone(),
            nonce: nonce.secret().clone(),
            next: next.to_owned(),
            created: Utc::now(),
            link: link.map(str::to_owned),
        };
        let data = serde_json::to_vec(&pending).expect("a pending login serializes");
        self.store
            .put_durable(&pending_path(state.secret()), Bytes::from(data))
            .await
            .map_err(|e| self.provider_error(e))?;
        Ok(Started {
            url: url.to_string(),
            state: state.secret().clone(),
        })
    }

    /// Finishes a login: `state` and `code` from the provider's redirect, `bound` the state
    /// the browser's cookie holds. Returns who logged in, where they were going, and for a
    /// link the account that started it.
    pub async fn finish(
        &self,
        code: &str,
        state: &str,
        bound: Option<&str>,
    ) -> Result<Finished, Error> {
        if bound != Some(state) {
            return Err(Error::State);
        }
        let path = pending_path(state);
        let pending: Pending = match self.store.get_json(&path).await {
            Ok(pending) => pending,
            Err(store::Error::Request {
                source: object_store::Error::NotFound { .. },
                ..
            }) => return Err(Error::State),
            Err(e) => return Err(self.provider_error(e)),
        };
        // single use, whatever happens next
        self.store
            .delete(&path)
            .await
            .map_err(|e| self.provider_error(e))?;
        if Utc::now() - pending.created > PENDING_TTL {
            return Err(Error::State);
        }
        let metadata = self.metadata(false).await?;
        let client = self.client(metadata);
        let exchange = client
            .exchange_code(AuthorizationCode::new(code.to_owned()))
            .map_err(|e| self.provider_error(e))?
            .set_pkce_verifier(PkceCodeVerifier::new(pending.verifier));
        let response = exchange
            .request_async(&self.http)
            .await
            .map_err(|e| Error::Refused(error_chain(&e)))?;
        let token = response
            .id_token()
            .ok_or_else(|| Error::IdToken("the token response has no id_token".to_owned()))?;
        let nonce = Nonce::new(pending.nonce);
        let claims = match verify(token, &client.id_token_verifier(), &nonce) {
            // the provider may have rotated its keys since they were fetched
            Err(_) => {
                let client = self.client(self.metadata(true).await?);
                verify(token, &client.id_token_verifier(), &nonce)?
            }
            Ok(claims) => claims,
        };
        Ok(Finished {
            identity: identity(&claims),
            next: pending.next,
            link: pending.link,
        })
    }
}

/// Checks an ID token's signature, issuer, audience, expiry and nonce.
pub fn verify(
    token: &CoreIdToken,
    verifier: &CoreIdTokenVerifier<'_>,
    nonce: &Nonce,
) -> Result<CoreIdTokenClaims, Error> {
    token
        .claims(verifier, nonce)
        .cloned()
        .map_err(|e| Error::IdToken(error_chain(&e)))
}

/// What the account side needs of verified claims.
pub fn identity(claims: &CoreIdTokenClaims) -> Identity {
    Identity {
        issuer: claims.issuer().to_string(),
        subject: claims.subject().to_string(),
        email: claims.email().map(|e| e.to_string()),
        email_verified: claims.email_verified().unwrap_or(false),
        name: claims
            .name()
            .and_then(|n| n.get(None))
            .map(|n| n.to_string()),
    }
}

/// An error with its causes, for messages that name the real reason.
fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let cause = cause.to_string();
        if !text.contains(&cause) {
            text.push_str(": ");
            text.push_str(&cause);
        }
        source = cause_of(source);
    }
    text
}

fn cause_of<'a>(
    err: Option<&'a (dyn std::error::Error + 'static)>,
) -> Option<&'a (dyn std::error::Error + 'static)> {
    err.and_then(|e| e.source())
}

/// The account an identity is linked to.
#[derive(Debug, Serialize, Deserialize)]
struct Link {
    user_id: String,
}

impl People {
    /// The account `identity` is linked to, if any.
    pub async fn user_of_identity(&self, identity: &Identity) -> super::Result<Option<UserRecord>> {
        let path = identity_path(&identity.issuer, &identity.subject);
        match self.store.get_json::<Link>(&path).await {
            Ok(link) => match self.user(&link.user_id).await {
                Ok(user) => Ok(Some(user)),
                Err(super::Error::UnknownUser { .. }) => Ok(None),
                Err(e) => Err(e),
            },
            Err(store::Error::Request {
                source: object_store::Error::NotFound { .. },
                ..
            }) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// Links the account `user_id` to `identity` (of the provider named `provider`): refused
    /// when the identity belongs to another account, or the account has another identity.
    pub async fn link_sso(
        &self,
        provider: &str,
        identity: &Identity,
        user_id: &str,
    ) -> super::Result<LinkedIdentity> {
        let mut user = self.user(user_id).await?;
        if let Some(linked) = &user.sso {
            if linked.issuer == identity.issuer && linked.subject == identity.subject {
                return Ok(linked.clone());
            }
            return Err(Error::AlreadyLinked {
                provider: provider.to_owned(),
            }
            .into());
        }
        let path = identity_path(&identity.issuer, &identity.subject);
        let taken = || Error::IdentityTaken {
            provider: provider.to_owned(),
        };
        let data = serde_json::to_vec(&Link {
            user_id: user.id.clone(),
        })
        .expect("a link serializes");
        match self.store.create_durable(&path, Bytes::from(data)).await {
            Ok(()) => {}
            Err(store::Error::AlreadyExists { .. }) => {
                // an account deleted since frees its identity; any other owner keeps it
                match self.user_of_identity(identity).await? {
                    Some(other) if other.id != user.id => return Err(taken().into()),
                    Some(_) => {}
                    None => {
                        let data = serde_json::to_vec(&Link {
                            user_id: user.id.clone(),
                        })
                        .expect("a link serializes");
                        self.store.put_durable(&path, Bytes::from(data)).await?;
                    }
                }
            }
            Err(e) => return Err(e.into()),
        }
        let linked = LinkedIdentity {
            issuer: identity.issuer.clone(),
            subject: identity.subject.clone(),
            linked: self.now(),
        };
        user.sso = Some(linked.clone());
        self.put_user(&user).await?;
        Ok(linked)
    }

    /// Unlinks the account's identity, if it keeps a password or a passkey to log in with.
    pub async fn unlink_sso(&self, user_id: &str) -> super::Result<LinkedIdentity> {
        let mut user = self.user(user_id).await?;
        let Some(linked) = user.sso.clone() else {
            return Err(Error::NotLinked.into());
        };
        if user.password.is_none() && user.passkeys.is_empty() {
            return Err(Error::LastLogin.into());
        }
        self.store
            .delete(&identity_path(&linked.issuer, &linked.subject))
            .await?;
        user.sso = None;
        self.put_user(&user).await?;
        Ok(linked)
    }

    /// Starts a session for the account linked to `identity`, creating (and linking) one when
    /// `auto_provision` is on. A disabled account is refused.
    pub async fn login_sso(
        &self,
        sso: &Sso,
        identity: &Identity,
        client: &Client,
    ) -> super::Result<NewSession> {
        let path = identity_path(&identity.issuer, &identity.subject);
        let user = match self.store.get_json::<Link>(&path).await {
            Ok(link) => self.user(&link.user_id).await?,
            Err(store::Error::Request {
                source: object_store::Error::NotFound { .. },
                ..
            }) => self.provision(sso, identity, &path).await?,
            Err(e) => return Err(e.into()),
        };
        if user.disabled {
            return Err(super::Error::Disabled);
        }
        self.start_session(user, client).await
    }

    async fn provision(
        &self,
        sso: &Sso,
        identity: &Identity,
        path: &ObjectPath,
    ) -> super::Result<UserRecord> {
        let config = sso.config();
        if !config.auto_provision {
            return Err(Error::NoAccount {
                provider: config.name.clone(),
            }
            .into());
        }
        let email = identity.email.as_deref().ok_or(Error::NoEmail)?;
        let role: OrgRole = config.default_role.parse()?;
        let name = identity
            .name
            .clone()
            .filter(|n| !n.trim().is_empty())
            .unwrap_or_else(|| email.to_owned());
        let mut user = self
            .create_user(email, &name, DEFAULT_ORG, role, None)
            .await?;
        let link = serde_json::to_vec(&Link {
            user_id: user.id.clone(),
        })
        .expect("a link serializes");
        self.store.create_durable(path, Bytes::from(link)).await?;
        user.sso = Some(LinkedIdentity {
            issuer: identity.issuer.clone(),
            subject: identity.subject.clone(),
            linked: self.now(),
        });
        self.put_user(&user).await?;
        if let Some(team) = &config.default_team {
            match self
                .add_team_member(DEFAULT_ORG, team, &user.id, TeamRole::Contributor)
                .await
            {
                Ok(_) => {}
                Err(err) => {
                    tracing::warn!(team, cause = %err, "new single sign-on account not added to its default team")
                }
            }
        }
        tracing::info!(user = %user.id, issuer = %identity.issuer, "account created at its first single sign-on");
        Ok(user)
    }
}

#[cfg(test)]
#[path = "sso_tests.rs"]
mod tests;
