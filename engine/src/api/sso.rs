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
        .begin(next)
        .await
        .map_err(people::Error::from)?;
    let max_age = sso::PENDING_TTL.num_seconds();
    let mut response = Redirect::to(&started.url).into_response();
    response.headers_mut().append(
        header::SET_COOKIE,
        state.state_cookie().set(&started.state, max_age),
    );
    Ok(response)
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
    let result = finish(&state, sso, &cookie, &headers, &query, &client).await;
    let people = &state.auth.people;
    let mut response = match result {
        Ok((session, next)) => {
            let actor = auth::actor_of(&session);
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

async fn finish(
    state: &SsoState,
    sso: &Sso,
    cookie: &CookieSettings,
    headers: &HeaderMap,
    query: &CallbackQuery,
    client: &Client,
) -> Result<(people::NewSession, String), people::Error> {
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
    let (identity, next) = sso.finish(code, login_state, cookie.read(headers)).await?;
    let session = state.auth.people.login_sso(sso, &identity, client).await?;
    Ok((session, next))
}
