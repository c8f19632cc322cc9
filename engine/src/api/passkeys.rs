//! Passkeys over HTTP (JSON; the account and login pages' script calls these):
//! - `GET /auth/passkeys`: the person's passkeys.
//! - `POST /auth/passkeys/register` → `{ceremony, options}`; `POST /auth/passkeys/register/finish`
//!   `{ceremony, name, credential}` → `201` the passkey. Audited as `user.mfa.enable`.
//! - `DELETE /auth/passkeys/{id}` → `204`. Audited as `user.mfa.disable`.
//! - `POST /auth/passkeys/login` `{}` (passwordless) or `{email, password}` (second factor) →
//!   `{ceremony, options}`; `POST /auth/passkeys/login/finish` `{ceremony, credential}` → the
//!   session cookie, like `/auth/login`. Audited as `user.login` / `user.login-failed`.
//!
//! `options` goes to `navigator.credentials.create` / `.get` (binary fields base64url), and
//! `credential` is the browser's answer in the same encoding. See [`crate::people::passkeys`].

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::json;
use webauthn_rs::prelude::{PublicKeyCredential, RegisterPublicKeyCredential};

use super::auth::{Auth, ClientInfo, actor_of, entry, logged_in};
use super::error::ApiError;
use crate::people::{self, PasskeyInfo, People};

fn no_store(mut response: Response) -> Response {
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

fn started(s: people::passkeys::Started) -> Response {
    no_store(Json(json!({"ceremony": s.ceremony, "options": s.options})).into_response())
}

pub(super) async fn list(
    State(auth): State<Auth>,
    headers: HeaderMap,
) -> Result<Json<Vec<PasskeyInfo>>, ApiError> {
    let (actor, _) = auth.actor(&headers).await?;
    let user = auth.people.user(&actor.user_id).await?;
    Ok(Json(People::passkeys_of(&user)))
}

pub(super) async fn register(
    State(auth): State<Auth>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let (actor, _) = auth.actor(&headers).await?;
    Ok(started(
        auth.people.begin_passkey_registration(&actor).await?,
    ))
}

#[derive(Debug, Deserialize)]
pub(super) struct RegisterFinish {
    ceremony: String,
    name: String,
    credential: RegisterPublicKeyCredential,
}

pub(super) async fn register_finish(
    State(auth): State<Auth>,
    ClientInfo(client): ClientInfo,
    headers: HeaderMap,
    Json(body): Json<RegisterFinish>,
) -> Result<(StatusCode, Json<PasskeyInfo>), ApiError> {
    let (actor, principal) = auth.actor(&headers).await?;
    let info = auth
        .people
        .finish_passkey_registration(&actor, &body.ceremony, &body.name, &body.credential)
        .await?;
    auth.audit_own(
        &actor,
        &principal,
        &client,
        "user.mfa.enable",
        ("user", &actor.user_id),
        json!({"type": "passkey", "passkey": info.id, "name": info.name}),
    )
    .await;
    Ok((StatusCode::CREATED, Json(info)))
}

pub(super) async fn remove(
    State(auth): State<Auth>,
    ClientInfo(client): ClientInfo,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<StatusCode, ApiError> {
    let (actor, principal) = auth.actor(&headers).await?;
    let info = auth.people.remove_passkey(&actor, &id).await?;
    auth.audit_own(
        &actor,
        &principal,
        &client,
        "user.mfa.disable",
        ("user", &actor.user_id),
        json!({"type": "passkey", "passkey": info.id, "name": info.name}),
    )
    .await;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Default, Deserialize)]
pub(super) struct LoginStart {
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    password: Option<String>,
}

pub(super) async fn login(
    State(auth): State<Auth>,
    ClientInfo(client): ClientInfo,
    Json(body): Json<LoginStart>,
) -> Result<Response, ApiError> {
    let password = match (&body.email, &body.password) {
        (Some(email), Some(password)) => Some((email.as_str(), password.as_str())),
        (None, None) => None,
        _ => {
            return Err(ApiError::BadRequest(
                "send both email and password (passkey as second factor), or neither \
                 (passwordless)"
                    .to_owned(),
            ));
        }
    };
    match auth.people.begin_passkey_login(password, &client).await {
        Ok(s) => Ok(started(s)),
        Err(err) => {
            if let Some(email) = &body.email {
                login_failed(&auth.people, email, &client, &err).await;
            }
            Err(err.into())
        }
    }
}

#[derive(Debug, Deserialize)]
pub(super) struct LoginFinish {
    ceremony: String,
    credential: PublicKeyCredential,
}

pub(super) async fn login_finish(
    State(auth): State<Auth>,
    ClientInfo(client): ClientInfo,
    Json(body): Json<LoginFinish>,
) -> Result<Response, ApiError> {
    match auth
        .people
        .finish_passkey_login(&body.ceremony, &body.credential, &client)
        .await
    {
        Ok(done) => {
            let actor = actor_of(&done.session);
            auth.people
                .audit
                .record(entry(
                    &auth.people,
                    &done.session.user.org,
                    Some(&actor),
                    &client,
                    "user.login",
                    Some(("user", &actor.user_id)),
                    json!({"method": done.method, "passkey": done.passkey}),
                ))
                .await;
            Ok(no_store(logged_in(&auth, &done.session, false, None)))
        }
        Err(err) => {
            if matches!(
                err,
                people::Error::BadPasskey(_) | people::Error::Disabled | people::Error::Ceremony
            ) {
                let mut e = entry(
                    &auth.people,
                    "default",
                    None,
                    &client,
                    "user.login-failed",
                    None,
                    json!({"method": "passkey", "reason": err.to_string()}),
                );
                e.actor_label = Some("passkey".to_owned());
                auth.people.audit.record(e).await;
            }
            Err(err.into())
        }
    }
}

/// The audit row of a refused second-factor start (wrong password, disabled, throttled).
async fn login_failed(
    people: &People,
    email: &str,
    client: &crate::people::Client,
    err: &people::Error,
) {
    if matches!(
        err,
        people::Error::Store(_) | people::Error::PasskeySetup(_)
    ) {
        return;
    }
    let email = email.trim().to_lowercase();
    let user = people.user_by_email(&email).await.ok().flatten();
    let org = user.as_ref().map_or("default", |u| u.org.as_str());
    let mut e = entry(
        people,
        org,
        None,
        client,
        "user.login-failed",
        user.as_ref().map(|u| ("user", u.id.as_str())),
        json!({"email": email, "method": "password+passkey", "reason": err.to_string()}),
    );
    e.actor_label = Some(email);
    people.audit.record(e).await;
}
