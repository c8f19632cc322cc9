//! Single sign-on over HTTP (see `people::sso` for the flow):
//! - `GET /auth/methods`: how people can log in here, for the login page:
//!   `{"password": true, "sso": {"name": "...", "url": "/auth/oidc/login"} | null}`.
//! - `GET /auth/oidc/login?next=/path`: `303` to the identity provider, with a short-lived
//!   cookie that binds the login to this browser.
//! - `GET /auth/oidc/callback?code&state` (the provider's redirect): verifies the login, sets
//!   the session cookie and answers `303` to `next`. A provider error, an unknown, used or
//!   expired `state`, a state another browser started, and an ID token with a wrong issuer,
//!   audience, nonce or signature are refused with the reason; each refusal is audited as
//!   `user.login-failed`.
//! - `GET /auth/oidc/link` (a logged-in person): the same flow, which links the identity to the
//!   person's account (`sso-identity.link`) and comes back to `/account/`; an identity of
//!   another account is refused there with the reason. `DELETE /auth/oidc/link` unlinks it
//!   (`sso-identity.unlink`) while a password or passkey remains.

use std::sync::Arc;

use axum::Json;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, header};
use axum::response::{IntoResponse, Redirect, Response};
use serde::Deserialize;
use serde_json::json;

use super::auth::{self, Auth, ClientInfo, CookieSettings};
use super::error::ApiError;
use crate::people::sso::{self, Sso};
use crate::people::{self, Client};
use crate::tenancy::DEFAULT_ORG;

#[derive(Clone)]
pub(super) struct SsoState {
    pub(super) auth: Auth,
    pub(super) sso: Option<Arc<Sso>>,
}

impl SsoState {
    fn sso(&self) -> Result<&Sso, ApiError> {
        self.sso
            .as_deref()
            .ok_or(ApiError::People(people::Error::Sso(sso::Error::Off)))
    }

    /// The cookie that holds a login's `state` between the redirect and the callback.
    fn state_cookie(&self) -> CookieSettings {
        let name = if self.auth.cookie.secure {
            "__Host-faultline_sso"
        } else {
            "faultline_sso"
        };
        CookieSettings {
            name,
            secure: self.auth.cookie.secure,
        }
    }
}

pub(super) async fn methods(State(state): State<SsoState>) -> Json<serde_json::Value> {
    Json(json!({
        "password": state.auth.people.config().password_login,
        "sso": state.sso.as_ref().map(|s| json!({"name": s.name(), "url": "/auth/oidc/login"})),
    }))
}

#[derive(Debug, Deserialize)]
pub(super) struct LoginQuery {
    #[serde(default)]
    next: Option<String>,
}

pub(super) async fn login(
    State(state): State<SsoState>,
    Query(query): Query<LoginQuery>,
) -> Result<Response, ApiError> {
    let next = auth::same_origin_path(query.next.as_deref());
    let started = state
        .sso()?
        .begin(next, None)
        .await
        .map_err(people::Error::from)?;
    Ok(to_provider(&state, &started))
}

/// The redirect to the provider, with the cookie binding the flow to this browser.
fn to_provider(state: &SsoState, started: &sso::Started) -> Response {
    let max_age = sso::PENDING_TTL.num_seconds();
    let mut response = Redirect::to(&started.url).into_response();
    response.headers_mut().append(
        header::SET_COOKIE,
        state.state_cookie().set(&started.state, max_age),
    );
    response
}

/// `GET /auth/oidc/link`: starts linking the logged-in person's account to their identity at
/// the provider.
pub(super) async fn link(
    State(state): State<SsoState>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let sso = state.sso()?;
    let (actor, _) = state.auth.actor(&headers).await?;
    let started = sso
        .begin("/account/?done=sso-linked", Some(&actor.user_id))
        .await
        .map_err(people::Error::from)?;
    Ok(to_provider(&state, &started))
}

/// `DELETE /auth/oidc/link`: unlinks the person's identity.
pub(super) async fn unlink(
    State(state): State<SsoState>,
    ClientInfo(client): ClientInfo,
    headers: HeaderMap,
) -> Result<Json<serde_json::Value>, ApiError> {
    let sso = state.sso()?;
    let (actor, principal) = state.auth.actor(&headers).await?;
    let linked = state.auth.people.unlink_sso(&actor.user_id).await?;
    state
        .auth
        .audit_own(
            &actor,
            &principal,
            &client,
            "sso-identity.unlink",
            ("user", &actor.user_id),
            json!({"provider": sso.name(), "issuer": linked.issuer}),
        )
        .await;
    Ok(Json(json!({"unlinked": true})))
}

#[derive(Debug, Deserialize)]
pub(super) struct CallbackQuery {
    #[serde(default)]
    code: Option<String>,
    #[serde(default)]
    state: Option<String>,
    #[serde(default)]
    error: Option<String>,
    #[serde(default)]
    error_description: Option<String>,
}

pub(super) async fn callback(
    State(state): State<SsoState>,
    ClientInfo(client): ClientInfo,
    headers: HeaderMap,
    Query(query): Query<CallbackQuery>,
) -> Result<Response, ApiError> {
    let sso = state.sso()?;
    let cookie = state.state_cookie();
    let people = &state.auth.people;
    let result = match finish(sso, &cookie, &headers, &query).await {
        Ok(finished) => match finished.link.clone() {
            Some(user_id) => {
                link_finished(&state, sso, &headers, &client, &finished, &user_id).await
            }
            None => people
                .login_sso(sso, &finished.identity, &client)
                .await
                .map(|session| {
                    let actor = auth::actor_of(&session);
                    Done::LoggedIn(Box::new(session), actor, finished.next)
                }),
        },
        Err(err) => Err(err),
    };
    let mut response = match result {
        Ok(Done::LoggedIn(session, actor, next)) => {
            people
                .audit
                .record(auth::entry(
                    people,
                    &session.user.org,
                    Some(&actor),
                    &client,
                    "user.login",
                    Some(("user", &actor.user_id)),
                    json!({"method": "oidc", "issuer": sso.config().issuer}),
                ))
                .await;
            auth::logged_in(&state.auth, &session, true, Some(&next))
        }
        Ok(Done::Linked(response)) => response,
        Err(err) => {
            let server_side = matches!(&err, people::Error::Sso(e) if e.is_server_side())
                || matches!(err, people::Error::Store(_));
            if !server_side {
                people
                    .audit
                    .record(auth::entry(
                        people,
                        DEFAULT_ORG,
                        None,
                        &client,
                        "user.login-failed",
                        None,
                        json!({"method": "oidc", "reason": err.to_string()}),
                    ))
                    .await;
            }
            ApiError::from(err).into_response()
        }
    };
    // the login's state is used up either way
    response
        .headers_mut()
        .append(header::SET_COOKIE, cookie.set("", 0));
    Ok(response)
}

/// What a callback did.
enum Done {
    LoggedIn(Box<people::NewSession>, people::Actor, String),
    /// A link: the answer (to the account page, with a notice or the reason it was refused).
    Linked(Response),
}

/// Links the identity of a finished flow to the account that started it, if this browser is
/// still logged in as that account. A refusal that is the person's (the identity belongs to
/// someone else, the account has another one) goes back to the account page with the reason.
async fn link_finished(
    state: &SsoState,
    sso: &Sso,
    headers: &HeaderMap,
    client: &Client,
    finished: &sso::Finished,
    user_id: &str,
) -> Result<Done, people::Error> {
    let people = &state.auth.people;
    let session = match state.auth.cookie.read(headers) {
        Some(cookie) => people.session_principal(cookie).await?,
        None => None,
    };
    let Some((actor, principal)) = session.filter(|(actor, _)| actor.user_id == user_id) else {
        return Err(sso::Error::OtherSession.into());
    };
    match people
        .link_sso(sso.name(), &finished.identity, user_id)
        .await
    {
        Ok(linked) => {
            state
                .auth
                .audit_own(
                    &actor,
                    &principal,
                    client,
                    "sso-identity.link",
                    ("user", user_id),
                    json!({"provider": sso.name(), "issuer": linked.issuer}),
                )
                .await;
            Ok(Done::Linked(Redirect::to(&finished.next).into_response()))
        }
        Err(err @ people::Error::Sso(_)) => {
            let reason: String =
                url::form_urlencoded::byte_serialize(err.to_string().as_bytes()).collect();
            Ok(Done::Linked(
                Redirect::to(&format!("/account/?error={reason}")).into_response(),
            ))
        }
        Err(err) => Err(err),
    }
}

async fn finish(
    sso: &Sso,
    cookie: &CookieSettings,
    headers: &HeaderMap,
    query: &CallbackQuery,
) -> Result<sso::Finished, people::Error> {
    if let Some(error) = &query.error {
        let detail = query
            .error_description
            .as_deref()
            .map(|d| format!("{error}: {d}"))
            .unwrap_or_else(|| error.clone());
        return Err(sso::Error::Refused(detail).into());
    }
    let (Some(code), Some(login_state)) = (query.code.as_deref(), query.state.as_deref()) else {
        return Err(sso::Error::State.into());
    };
    Ok(sso.finish(code, login_state, cookie.read(headers)).await?)
}
