//! The pages of people: the first-owner and set-password link (`/setup/{token}`), an invite
//! (`/accept/{token}`), and a person's own account (`/account/`): name and email, password,
//! TOTP, sessions, personal API tokens.
//!
//! The link pages post to the API's `/auth/setup` and `/auth/accept`; the account forms post
//! to handlers here that call the same [`People`](crate::people::People) functions as the API's
//! `/auth/...` endpoints (and `/api/0/api-tokens/`) and record the same audit events. Pages
//! that show a secret (a TOTP seed, recovery codes, a new API token) are answers to a POST and
//! are never cached.

use std::sync::Arc;

use askama::Template;
use axum::Extension;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};
use serde_json::json;

use super::{Layout, OrgCtx, WebError, WebState, html, stream};
use crate::api::{ApiError, ClientInfo, audit_entry};
use crate::people::{self, Actor, Client};
use crate::tenancy::{DEFAULT_ORG, Principal, Scope};

#[derive(Debug, serde::Deserialize)]
pub(crate) struct ErrorParam {
    error: Option<String>,
}

#[derive(Template)]
#[template(path = "setup.html")]
struct SetupPage {
    layout: Layout,
    token: String,
    /// The account whose password the link sets; `None` for the first-start link.
    email: Option<String>,
    error: Option<String>,
}

/// `GET /setup/{token}`: the form of a first-start or set-password link (posts to
/// `/auth/setup`). An unknown, used or expired link is a 404.
pub(crate) async fn setup_page(
    State(state): State<WebState>,
    Path(token): Path<String>,
    Query(params): Query<ErrorParam>,
) -> Result<Response, WebError> {
    let people = &state.node.people;
    let link = people.pending_link(&token).await.map_err(gone)?;
    let email = match link.user_id {
        Some(id) => Some(people.user(&id).await.map_err(ApiError::from)?.email),
        None => None,
    };
    html(&SetupPage {
        layout: Layout::bare(if email.is_some() {
            "Set your password"
        } else {
            "Create the first owner"
        }),
        token,
        email,
        error: params.error.filter(|e| !e.is_empty()),
    })
}

#[derive(Template)]
#[template(path = "accept.html")]
struct AcceptPage {
    layout: Layout,
    token: String,
    email: String,
    org: String,
    role: String,
    error: Option<String>,
}

/// `GET /accept/{token}`: the form that accepts an invite (posts to `/auth/accept`).
pub(crate) async fn accept_page(
    State(state): State<WebState>,
    Path(token): Path<String>,
    Query(params): Query<ErrorParam>,
) -> Result<Response, WebError> {
    let invite = state
        .node
        .people
        .pending_invite(&token)
        .await
        .map_err(gone)?;
    html(&AcceptPage {
        layout: Layout::bare("Join faultline"),
        token,
        email: invite.email,
        org: invite.org,
        role: invite.role.to_string(),
        error: params.error.filter(|e| !e.is_empty()),
    })
}

/// A link that no longer works reads as not found; other failures as the API shows them.
fn gone(err: people::Error) -> WebError {
    match err {
        people::Error::BadLink => {
            WebError::NotFound("this link is unknown, used or expired: ask for a new one".into())
        }
        other => ApiError::from(other).into(),
    }
}

/// The logged-in person of a request; API tokens have no account page.
fn person(actor: Option<Extension<Actor>>) -> Result<Actor, WebError> {
    actor.map(|Extension(a)| a).ok_or_else(|| {
        ApiError::Forbidden(
            "the account pages are for logged-in people; an API token has no account".into(),
        )
        .into()
    })
}

struct SessionRow {
    id: String,
    current: bool,
    created: super::When,
    last_seen: super::When,
    ip: String,
    user_agent: String,
}

struct PasskeyRow {
    id: String,
    name: String,
    created: super::When,
    last_used: Option<super::When>,
}

struct TokenRow {
    id: String,
    name: String,
    scopes: String,
    created: super::When,
}

/// A token just created: its name and the secret, shown only now.
struct NewTokenShown {
    name: String,
    secret: String,
}

#[derive(Template)]
#[template(path = "account.html")]
struct AccountPage {
    layout: Layout,
    name: String,
    email: String,
    org: String,
    role: String,
    mfa: bool,
    sessions: Vec<SessionRow>,
    /// What the last form did, or why it failed.
    notice: Option<String>,
    error: Option<String>,
    /// Shown once, right after enrolment.
    enrolment: Option<people::totp::Enrolment>,
    /// Shown once, right after confirmation.
    recovery_codes: Vec<String>,
    /// The single sign-on provider's name, when `[auth.oidc]` is set.
    sso_name: Option<String>,
    /// The issuer of the identity linked to the account.
    sso_linked: Option<String>,
    /// Whether unlinking leaves a way to log in (a password or a passkey).
    can_unlink: bool,
    /// The person's passkeys, oldest first.
    passkeys: Vec<PasskeyRow>,
    /// The passkey script's URL.
    passkeys_js: String,
    /// The person's API tokens, oldest first.
    tokens: Vec<TokenRow>,
    /// The scopes the person holds now: what a new token may get.
    grantable: Vec<&'static str>,
    /// Shown once, right after creation.
    new_token: Option<NewTokenShown>,
}

/// What a page of the account shows besides its data.
#[derive(Default)]
struct Extra {
    notice: Option<String>,
    error: Option<String>,
    enrolment: Option<people::totp::Enrolment>,
    recovery_codes: Vec<String>,
    new_token: Option<NewTokenShown>,
}

async fn account(
    state: &WebState,
    principal: Arc<Principal>,
    actor: &Actor,
    extra: Extra,
) -> Result<Response, WebError> {
    let people = &state.node.people;
    let user = people.user(&actor.user_id).await.map_err(ApiError::from)?;
    let now = chrono::Utc::now();
    let sessions = people
        .sessions_of(&actor.user_id, &actor.session_id)
        .await
        .map_err(ApiError::from)?
        .into_iter()
        .map(|s| SessionRow {
            id: s.id,
            current: s.current,
            created: super::When::from_millis(s.created.timestamp_millis(), now),
            last_seen: super::When::from_millis(s.last_seen.timestamp_millis(), now),
            ip: s.ip.unwrap_or_default(),
            user_agent: s.user_agent.unwrap_or_default(),
        })
        .collect();
    let tokens = state
        .node
        .tokens
        .list_owned(&actor.user_id)
        .await
        .map_err(ApiError::from)?
        .into_iter()
        .map(|t| TokenRow {
            id: t.id,
            name: t.name,
            scopes: t
                .scopes
                .iter()
                .map(|s| s.as_str())
                .collect::<Vec<_>>()
                .join(" "),
            created: super::When::from_millis(t.created.timestamp_millis(), now),
        })
        .collect();
    let passkeys = user
        .passkeys
        .iter()
        .map(|p| PasskeyRow {
            id: p.id.clone(),
            name: p.name.clone(),
            created: super::When::from_millis(p.created.timestamp_millis(), now),
            last_used: p
                .last_used
                .map(|t| super::When::from_millis(t.timestamp_millis(), now)),
        })
        .collect();
    let grantable = principal.scopes.iter().map(|s| s.as_str()).collect();
    let org = principal
        .org
        .clone()
        .unwrap_or_else(|| DEFAULT_ORG.to_owned());
    let layout = match OrgCtx::new(state, principal, org.clone()).await {
        Ok(ctx) => ctx.layout("Account".to_owned(), "account", ""),
        Err(_) => {
            let mut layout = Layout::bare("Account");
            layout.user = user.name.clone();
            layout
        }
    };
    html(&AccountPage {
        layout,
        name: user.name,
        email: user.email,
        org,
        role: user.role.to_string(),
        mfa: user.totp.is_some(),
        sessions,
        notice: extra.notice,
        error: extra.error,
        enrolment: extra.enrolment,
        recovery_codes: extra.recovery_codes,
        sso_name: state.node.sso.as_ref().map(|s| s.name().to_owned()),
        sso_linked: user.sso.as_ref().map(|l| l.issuer.clone()),
        can_unlink: user.password.is_some() || !user.passkeys.is_empty(),
        passkeys,
        passkeys_js: super::assets::passkeys_js_url(),
        tokens,
        grantable,
        new_token: extra.new_token,
    })
}

#[derive(Debug, serde::Deserialize)]
pub(crate) struct AccountParams {
    done: Option<String>,
    /// Why a step that ends here failed (a single sign-on link).
    error: Option<String>,
}

/// `GET /account/`: the logged-in person's account.
pub(crate) async fn page(
    State(state): State<WebState>,
    Extension(principal): Extension<Arc<Principal>>,
    actor: Option<Extension<Actor>>,
    Query(params): Query<AccountParams>,
) -> Result<Response, WebError> {
    let actor = person(actor)?;
    let notice = match params.done.as_deref() {
        Some("password") => Some("Password changed; your other sessions were ended.".to_owned()),
        Some("totp-off") => Some("Two-factor authentication is off.".to_owned()),
        Some("session") => Some("The session was ended.".to_owned()),
        Some("others") => Some("Your other sessions were ended.".to_owned()),
        Some("token-revoked") => Some("The API token was revoked.".to_owned()),
        Some("passkey-added") => Some("The passkey was added.".to_owned()),
        Some("passkey-removed") => Some("The passkey was removed.".to_owned()),
        Some("sso-linked") => {
            Some("Your single sign-on login is linked to this account.".to_owned())
        }
        Some("sso-unlinked") => Some("Your single sign-on login is unlinked.".to_owned()),
        Some("mfa-required") if actor.must_enrol_mfa => Some(
            "Your organization requires two-factor authentication: set up an authenticator \
             app or add a passkey to continue."
                .to_owned(),
        ),
        _ => None,
    };
    account(
        &state,
        principal,
        &actor,
        Extra {
            notice,
            error: params.error.filter(|e| !e.is_empty()),
            ..Extra::default()
        },
    )
    .await
}

/// A form field.
fn field<'a>(fields: &'a [(String, String)], name: &str) -> &'a str {
    fields
        .iter()
        .find(|(k, _)| k == name)
        .map_or("", |(_, v)| v.as_str())
}

async fn audit(
    state: &WebState,
    principal: &Principal,
    actor: &Actor,
    client: &Client,
    event: &str,
    target: (&str, &str),
    data: serde_json::Value,
) {
    let people = &state.node.people;
    let org = principal.org.clone().unwrap_or_default();
    people
        .audit
        .record(audit_entry(
            people,
            &org,
            Some(actor),
            client,
            event,
            Some(target),
            data,
        ))
        .await;
}

/// The account page again with why a form failed, under the error's status; server failures
/// are the error page.
async fn refused(
    state: &WebState,
    principal: Arc<Principal>,
    actor: &Actor,
    err: impl Into<ApiError>,
    extra: Extra,
) -> Result<Response, WebError> {
    let err: ApiError = err.into();
    let status = err.status();
    if !status.is_client_error() {
        return Err(err.into());
    }
    let mut response = account(
        state,
        principal,
        actor,
        Extra {
            error: Some(err.to_string()),
            ..extra
        },
    )
    .await?;
    *response.status_mut() = status;
    Ok(response)
}

/// `POST /account/password/` (`current`, `password`): changes the password and ends the
/// person's other sessions.
pub(crate) async fn password(
    State(state): State<WebState>,
    Extension(principal): Extension<Arc<Principal>>,
    actor: Option<Extension<Actor>>,
    ClientInfo(client): ClientInfo,
    body: Bytes,
) -> Result<Response, WebError> {
    let actor = person(actor)?;
    let fields = stream::form(&body);
    match state
        .node
        .people
        .change_password(
            &actor,
            field(&fields, "current"),
            field(&fields, "password"),
        )
        .await
    {
        Ok(ended) => {
            audit(
                &state,
                &principal,
                &actor,
                &client,
                "user.password.change",
                ("user", &actor.user_id),
                json!({"sessionsEnded": ended}),
            )
            .await;
            Ok(Redirect::to("/account/?done=password").into_response())
        }
        Err(err) => refused(&state, principal, &actor, err, Extra::default()).await,
    }
}

/// `POST /account/totp/`: starts TOTP enrolment and shows the seed, once.
pub(crate) async fn totp_enrol(
    State(state): State<WebState>,
    Extension(principal): Extension<Arc<Principal>>,
    actor: Option<Extension<Actor>>,
) -> Result<Response, WebError> {
    let actor = person(actor)?;
    match state.node.people.enrol_totp(&actor).await {
        Ok(enrolment) => {
            account(
                &state,
                principal,
                &actor,
                Extra {
                    enrolment: Some(enrolment),
                    ..Extra::default()
                },
            )
            .await
        }
        Err(err) => refused(&state, principal, &actor, err, Extra::default()).await,
    }
}

/// `POST /account/totp/confirm/` (`code`): confirms enrolment with a first code and shows the
/// recovery codes, once. A wrong code shows the same seed again to retry.
pub(crate) async fn totp_confirm(
    State(state): State<WebState>,
    Extension(principal): Extension<Arc<Principal>>,
    actor: Option<Extension<Actor>>,
    ClientInfo(client): ClientInfo,
    body: Bytes,
) -> Result<Response, WebError> {
    let actor = person(actor)?;
    let fields = stream::form(&body);
    let people = &state.node.people;
    match people.confirm_totp(&actor, field(&fields, "code")).await {
        Ok(codes) => {
            audit(
                &state,
                &principal,
                &actor,
                &client,
                "user.mfa.enable",
                ("user", &actor.user_id),
                json!({"type": "totp"}),
            )
            .await;
            account(
                &state,
                principal,
                &actor,
                Extra {
                    notice: Some("Two-factor authentication is on.".to_owned()),
                    recovery_codes: codes,
                    ..Extra::default()
                },
            )
            .await
        }
        Err(err) => {
            // the seed waiting for its first code, to try again
            let user = people.user(&actor.user_id).await.map_err(ApiError::from)?;
            let enrolment = match (&err, user.totp_pending) {
                (people::Error::BadCode, Some(secret)) => {
                    people::totp::enrolment_of(&secret, &user.email).ok()
                }
                _ => None,
            };
            let extra = Extra {
                enrolment,
                ..Extra::default()
            };
            refused(&state, principal, &actor, err, extra).await
        }
    }
}

/// `POST /account/totp/disable/` (`password`): turns TOTP off.
pub(crate) async fn totp_disable(
    State(state): State<WebState>,
    Extension(principal): Extension<Arc<Principal>>,
    actor: Option<Extension<Actor>>,
    ClientInfo(client): ClientInfo,
    body: Bytes,
) -> Result<Response, WebError> {
    let actor = person(actor)?;
    let fields = stream::form(&body);
    match state
        .node
        .people
        .disable_totp(&actor, field(&fields, "password"))
        .await
    {
        Ok(()) => {
            audit(
                &state,
                &principal,
                &actor,
                &client,
                "user.mfa.disable",
                ("user", &actor.user_id),
                json!({"type": "totp"}),
            )
            .await;
            Ok(Redirect::to("/account/?done=totp-off").into_response())
        }
        Err(err) => refused(&state, principal, &actor, err, Extra::default()).await,
    }
}

/// `POST /account/sessions/{id}/end/`: ends one of the person's sessions.
pub(crate) async fn end_session(
    State(state): State<WebState>,
    Extension(principal): Extension<Arc<Principal>>,
    actor: Option<Extension<Actor>>,
    ClientInfo(client): ClientInfo,
    Path(id): Path<String>,
) -> Result<Response, WebError> {
    let actor = person(actor)?;
    match state.node.people.end_session(&actor.user_id, &id).await {
        Ok(()) => {
            audit(
                &state,
                &principal,
                &actor,
                &client,
                "session.revoke",
                ("session", &id),
                json!({}),
            )
            .await;
            if id == actor.session_id {
                return Ok(Redirect::to("/login").into_response());
            }
            Ok(Redirect::to("/account/?done=session").into_response())
        }
        Err(err) => refused(&state, principal, &actor, err, Extra::default()).await,
    }
}

/// `POST /account/sessions/end-others/`: ends every session of the person but this one.
pub(crate) async fn end_other_sessions(
    State(state): State<WebState>,
    Extension(principal): Extension<Arc<Principal>>,
    actor: Option<Extension<Actor>>,
    ClientInfo(client): ClientInfo,
) -> Result<Response, WebError> {
    let actor = person(actor)?;
    let ended = state
        .node
        .people
        .end_other_sessions(&actor.user_id, &actor.session_id)
        .await
        .map_err(ApiError::from)?;
    audit(
        &state,
        &principal,
        &actor,
        &client,
        "session.revoke",
        ("user", &actor.user_id),
        json!({"sessionsEnded": ended}),
    )
    .await;
    Ok(Redirect::to("/account/?done=others").into_response())
}

/// `POST /account/tokens/` (`name`, `scope` repeated): creates a personal API token and shows
/// it, once. A scope the person does not hold is refused, naming it.
pub(crate) async fn token_create(
    State(state): State<WebState>,
    Extension(principal): Extension<Arc<Principal>>,
    actor: Option<Extension<Actor>>,
    ClientInfo(client): ClientInfo,
    body: Bytes,
) -> Result<Response, WebError> {
    let actor = person(actor)?;
    let fields = stream::form(&body);
    let names: Vec<&str> = fields
        .iter()
        .filter(|(k, _)| k == "scope")
        .map(|(_, v)| v.as_str())
        .collect();
    let scopes = match Scope::expand_all(&names) {
        Ok(scopes) => scopes,
        Err(err) => return refused(&state, principal, &actor, err, Extra::default()).await,
    };
    let created = state
        .node
        .tokens
        .create_personal(&actor.user_id, &principal, field(&fields, "name"), scopes)
        .await;
    match created {
        Ok((secret, record)) => {
            audit(
                &state,
                &principal,
                &actor,
                &client,
                "api-token.create",
                ("token", &record.id),
                json!({"name": record.name, "scopes": record.scopes}),
            )
            .await;
            let mut response = account(
                &state,
                principal,
                &actor,
                Extra {
                    notice: Some("API token created.".to_owned()),
                    new_token: Some(NewTokenShown {
                        name: record.name,
                        secret,
                    }),
                    ..Extra::default()
                },
            )
            .await?;
            response.headers_mut().insert(
                axum::http::header::CACHE_CONTROL,
                axum::http::HeaderValue::from_static("no-store"),
            );
            Ok(response)
        }
        Err(err) => refused(&state, principal, &actor, err, Extra::default()).await,
    }
}

/// `POST /account/tokens/{id}/revoke/`: revokes one of the person's API tokens.
pub(crate) async fn token_revoke(
    State(state): State<WebState>,
    Extension(principal): Extension<Arc<Principal>>,
    actor: Option<Extension<Actor>>,
    ClientInfo(client): ClientInfo,
    Path(id): Path<String>,
) -> Result<Response, WebError> {
    let actor = person(actor)?;
    match state.node.tokens.revoke_owned(&actor.user_id, &id).await {
        Ok(record) => {
            audit(
                &state,
                &principal,
                &actor,
                &client,
                "api-token.remove",
                ("token", &record.id),
                json!({"name": record.name, "scopes": record.scopes}),
            )
            .await;
            Ok(Redirect::to("/account/?done=token-revoked").into_response())
        }
        Err(err) => refused(&state, principal, &actor, err, Extra::default()).await,
    }
}

/// `POST /account/passkeys/{id}/remove/`: removes one of the person's passkeys.
pub(crate) async fn passkey_remove(
    State(state): State<WebState>,
    Extension(principal): Extension<Arc<Principal>>,
    actor: Option<Extension<Actor>>,
    ClientInfo(client): ClientInfo,
    Path(id): Path<String>,
) -> Result<Response, WebError> {
    let actor = person(actor)?;
    match state.node.people.remove_passkey(&actor, &id).await {
        Ok(info) => {
            audit(
                &state,
                &principal,
                &actor,
                &client,
                "user.mfa.disable",
                ("user", &actor.user_id),
                json!({"type": "passkey", "passkey": info.id, "name": info.name}),
            )
            .await;
            Ok(Redirect::to("/account/?done=passkey-removed").into_response())
        }
        Err(err) => refused(&state, principal, &actor, err, Extra::default()).await,
    }
}

/// `POST /account/sso/unlink/`: unlinks the person's single sign-on identity, while a password
/// or passkey remains.
pub(crate) async fn sso_unlink(
    State(state): State<WebState>,
    Extension(principal): Extension<Arc<Principal>>,
    actor: Option<Extension<Actor>>,
    ClientInfo(client): ClientInfo,
) -> Result<Response, WebError> {
    let actor = person(actor)?;
    match state.node.people.unlink_sso(&actor.user_id).await {
        Ok(linked) => {
            let provider = state.node.sso.as_ref().map(|s| s.name().to_owned());
            audit(
                &state,
                &principal,
                &actor,
                &client,
                "sso-identity.unlink",
                ("user", &actor.user_id),
                json!({"provider": provider, "issuer": linked.issuer}),
            )
            .await;
            Ok(Redirect::to("/account/?done=sso-unlinked").into_response())
        }
        Err(err) => refused(&state, principal, &actor, err, Extra::default()).await,
    }
}
