//! Who calls, and the login endpoints under `/auth/`.
//!
//! A request is authenticated by `Authorization: Bearer <API token>` or by the session cookie
//! (`__Host-faultline_session`; `faultline_session` without `Secure` when the server listens
//! on plain-HTTP loopback and no https `server.public_url` is set). Bearer wins when both are
//! sent.
//!
//! Endpoints (JSON in and out; login, logout, setup, accept and password also take
//! `application/x-www-form-urlencoded`, and answer a form post with `303` to `next`, a
//! same-origin path, default `/`):
//! - `POST /auth/login` `{email, password, code?}`: sets the cookie; `401` for a wrong email or
//!   password (one message for both), a missing or wrong TOTP code; `429` with `Retry-After`
//!   after `auth.login_max_failures` failures per account or client address.
//! - `POST /auth/logout`: ends the session and clears the cookie.
//! - `POST /auth/setup` `{token, email?, name?, password}`: the first-start link (creates the
//!   first owner) or a set-password link; logs in.
//! - `POST /auth/accept` `{token, name, password}`: accepts an invite; logs in.
//! - `POST /auth/password` `{current, password}`: ends the user's other sessions.
//! - `GET /auth/me`; `GET /auth/sessions`; `DELETE /auth/sessions` (all but this one);
//!   `DELETE /auth/sessions/{id}`.
//! - `POST /auth/totp` (enrol: the seed, shown once), `POST /auth/totp/confirm` `{code}` (the
//!   ten recovery codes, shown once), `DELETE /auth/totp` `{password}`.

use std::net::SocketAddr;
use std::sync::{Arc, Once};

use axum::Json;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Path, Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use faultline_config::Config;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use serde_json::json;

use super::error::ApiError;
use super::query::bearer;
use crate::people::{self, Actor, AuditEntry, Client, NewSession, People};
use crate::tenancy::{Principal, Tokens};

/// How the session cookie is named and flagged.
#[derive(Debug, Clone)]
pub(super) struct CookieSettings {
    pub(super) name: &'static str,
    pub(super) secure: bool,
}

impl CookieSettings {
    /// `Secure` and the `__Host-` prefix unless the API listens on plain-HTTP loopback and no
    /// https public URL is set (a browser would not send a `Secure` cookie over plain HTTP).
    pub(super) fn from_config(config: &Config) -> Self {
        let listen = config.server.admin_listen.unwrap_or(config.server.listen);
        let https = config
            .server
            .public_url
            .as_deref()
            .is_some_and(|u| u.to_ascii_lowercase().starts_with("https://"));
        if listen.ip().is_loopback() && !https {
            static SAID: Once = Once::new();
            SAID.call_once(|| {
                tracing::warn!(%listen, "plain-HTTP loopback listener without an https server.public_url: \
                    the session cookie is sent without Secure and the __Host- prefix");
            });
            Self {
                name: "faultline_session",
                secure: false,
            }
        } else {
            Self {
                name: "__Host-faultline_session",
                secure: true,
            }
        }
    }

    pub(super) fn set(&self, value: &str, max_age: i64) -> HeaderValue {
        let secure = if self.secure { "; Secure" } else { "" };
        let text = format!(
            "{}={value}; Path=/; HttpOnly; SameSite=Lax; Max-Age={max_age}{secure}",
            self.name
        );
        HeaderValue::from_str(&text).expect("cookie is ASCII")
    }

    fn clear(&self) -> HeaderValue {
        self.set("", 0)
    }

    /// The session cookie's value in a request.
    pub(super) fn read<'h>(&self, headers: &'h HeaderMap) -> Option<&'h str> {
        headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .filter_map(|pair| pair.trim().split_once('='))
            .find(|(name, _)| *name == self.name)
            .map(|(_, value)| value.trim())
            .filter(|v| !v.is_empty())
    }
}

/// Authentication shared by every handler: API tokens and session cookies.
#[derive(Clone)]
pub(super) struct Auth {
    pub(super) tokens: Arc<Tokens>,
    pub(super) people: Arc<People>,
    pub(super) cookie: Arc<CookieSettings>,
}

/// The caller: its permissions, and the person behind a session.
pub(crate) struct Caller {
    pub(crate) principal: Arc<Principal>,
    pub(crate) actor: Option<Actor>,
}

impl Auth {
    /// Records `event`, done by a logged-in person, in their organization's audit log.
    pub(super) async fn audit_own(
        &self,
        actor: &Actor,
        principal: &Principal,
        client: &Client,
        event: &str,
        target: (&str, &str),
        data: serde_json::Value,
    ) {
        let org = principal.org.as_deref().unwrap_or_default();
        self.people
            .audit
            .record(entry(
                &self.people,
                org,
                Some(actor),
                client,
                event,
                Some(target),
                data,
            ))
            .await;
    }

    /// The caller's permissions, from a Bearer token or the session cookie.
    pub(super) async fn principal(&self, headers: &HeaderMap) -> Result<Arc<Principal>, ApiError> {
        Ok(self.caller(headers).await?.principal)
    }

    /// The caller, from a Bearer token or the session cookie. A session whose organization
    /// requires MFA it has not enrolled is refused here (only `/auth/totp` serves it).
    pub(super) async fn caller(&self, headers: &HeaderMap) -> Result<Caller, ApiError> {
        let caller = self.caller_enrolling(headers).await?;
        if caller.actor.as_ref().is_some_and(|a| a.must_enrol_mfa) {
            return Err(ApiError::Forbidden(
                "your organization requires two-factor authentication: enrol a TOTP \
                 authenticator (POST /auth/totp) or register a passkey first"
                    .to_owned(),
            ));
        }
        Ok(caller)
    }

    /// Like [`Auth::caller`], but lets a session that must still enrol MFA through.
    pub(super) async fn caller_enrolling(&self, headers: &HeaderMap) -> Result<Caller, ApiError> {
        if let Some(token) = bearer(headers) {
            return Ok(Caller {
                principal: self.tokens.verify(token).await?,
                actor: None,
            });
        }
        if let Some(cookie) = self.cookie.read(headers) {
            return match self.people.session_principal(cookie).await? {
                Some((actor, principal)) => Ok(Caller {
                    principal,
                    actor: Some(actor),
                }),
                None => Err(ApiError::SessionEnded),
            };
        }
        Err(ApiError::MissingToken)
    }

    /// The logged-in person (sessions only).
    pub(super) async fn actor(
        &self,
        headers: &HeaderMap,
    ) -> Result<(Actor, Arc<Principal>), ApiError> {
        let caller = self.caller_enrolling(headers).await?;
        match caller.actor {
            Some(actor) => Ok((actor, caller.principal)),
            None => Err(ApiError::Forbidden(
                "this endpoint is for logged-in people, not API tokens".to_owned(),
            )),
        }
    }
}

/// Where a request came from: the peer address and the User-Agent.
pub(crate) struct ClientInfo(pub(crate) Client);

impl<S: Send + Sync> FromRequestParts<S> for ClientInfo {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        let ip = ConnectInfo::<SocketAddr>::from_request_parts(parts, state)
            .await
            .ok()
            .map(|ConnectInfo(addr)| addr.ip().to_string());
        let user_agent = parts
            .headers
            .get(header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(|s| s.chars().take(512).collect());
        Ok(Self(Client { ip, user_agent }))
    }
}

/// A body in JSON or `application/x-www-form-urlencoded`; `form` says which.
pub(super) struct Input<T> {
    pub(super) value: T,
    pub(super) form: bool,
}

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for Input<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, Self::Rejection> {
        let form = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v.starts_with("application/x-www-form-urlencoded"));
        let body = Bytes::from_request(req, state)
            .await
            .map_err(|e| ApiError::BadRequest(format!("cannot read the request body: {e}")))?;
        let value = if form {
            let map: serde_json::Map<String, serde_json::Value> =
                url::form_urlencoded::parse(&body)
                    .map(|(k, v)| (k.into_owned(), serde_json::Value::String(v.into_owned())))
                    .collect();
            serde_json::from_value(serde_json::Value::Object(map))
                .map_err(|e| ApiError::BadRequest(format!("invalid form: {e}")))?
        } else if body.iter().all(u8::is_ascii_whitespace) {
            serde_json::from_value(json!({}))
                .map_err(|e| ApiError::BadRequest(format!("invalid JSON body: {e}")))?
        } else {
            serde_json::from_slice(&body)
                .map_err(|e| ApiError::BadRequest(format!("invalid JSON body: {e}")))?
        };
        Ok(Self { value, form })
    }
}

/// `next` if it is a path on this site, else `/`.
pub(super) fn same_origin_path(next: Option<&str>) -> &str {
    match next {
        Some(p)
            if p.starts_with('/') && !p.starts_with("//") && !p.contains(['\\', '\r', '\n']) =>
        {
            p
        }
        _ => "/",
    }
}

/// The answer to a successful post: `303` to `next` for a form, else the JSON body.
fn done(form: bool, next: Option<&str>, body: serde_json::Value) -> Response {
    if form {
        Redirect::to(same_origin_path(next)).into_response()
    } else {
        Json(body).into_response()
    }
}

/// Audit-log entry by a person (or nobody yet, for a failed login).
pub(crate) fn entry(
    people: &People,
    org: &str,
    actor: Option<&Actor>,
    client: &Client,
    event: &str,
    target: Option<(&str, &str)>,
    data: serde_json::Value,
) -> AuditEntry {
    AuditEntry {
        ts: people.audit.now(),
        org: org.to_owned(),
        actor_type: if actor.is_some() { "user" } else { "system" }.to_owned(),
        actor_id: actor.map(|a| a.user_id.clone()),
        actor_label: actor.map(|a| a.email.clone()),
        ip: client.ip.clone(),
        user_agent: client.user_agent.clone(),
        event: event.to_owned(),
        target_type: target.map(|(t, _)| t.to_owned()),
        target_id: target.map(|(_, id)| id.to_owned()),
        data,
    }
}

/// Audit-log entry by any caller (a person or a token).
pub(super) fn caller_entry(
    people: &People,
    caller: &Caller,
    org: &str,
    client: &Client,
    event: &str,
    target: Option<(&str, &str)>,
    data: serde_json::Value,
) -> AuditEntry {
    let mut e = entry(
        people,
        org,
        caller.actor.as_ref(),
        client,
        event,
        target,
        data,
    );
    if caller.actor.is_none() {
        e.actor_type = "token".to_owned();
        e.actor_id = Some(caller.principal.token_id.clone());
        e.actor_label = Some(caller.principal.name.clone());
    }
    e
}

pub(super) fn logged_in(
    auth: &Auth,
    session: &NewSession,
    form: bool,
    next: Option<&str>,
) -> Response {
    let max_age = (session.expires - auth.people.audit.now())
        .num_seconds()
        .max(0);
    let mut response = done(
        form,
        next,
        json!({
            "user": {"id": session.user.id, "email": session.user.email, "name": session.user.name,
                     "orgRole": session.user.role, "org": session.user.org},
            "expires": session.expires,
        }),
    );
    response.headers_mut().append(
        header::SET_COOKIE,
        auth.cookie.set(&session.cookie, max_age),
    );
    response
}

#[derive(Debug, Deserialize)]
pub(super) struct LoginBody {
    email: String,
    password: String,
    #[serde(default)]
    code: Option<String>,
    #[serde(default)]
    next: Option<String>,
}

pub(super) async fn login(
    State(auth): State<Auth>,
    ClientInfo(client): ClientInfo,
    input: Input<LoginBody>,
) -> Result<Response, ApiError> {
    let body = input.value;
    let result = auth
        .people
        .login(&body.email, &body.password, body.code.as_deref(), &client)
        .await;
    let user = auth.people.user_by_email(&body.email).await.ok().flatten();
    let org = user.as_ref().map_or("default", |u| u.org.as_str());
    match result {
        Ok(session) => {
            let actor = actor_of(&session);
            auth.people
                .audit
                .record(entry(
                    &auth.people,
                    org,
                    Some(&actor),
                    &client,
                    "user.login",
                    Some(("user", &actor.user_id)),
                    json!({}),
                ))
                .await;
            Ok(logged_in(&auth, &session, input.form, body.next.as_deref()))
        }
        Err(err) => {
            if !matches!(err, people::Error::CodeRequired | people::Error::Store(_)) {
                let mut e = entry(
                    &auth.people,
                    org,
                    None,
                    &client,
                    "user.login-failed",
                    user.as_ref().map(|u| ("user", u.id.as_str())),
                    json!({"email": body.email.trim().to_lowercase(), "reason": err.to_string()}),
                );
                e.actor_label = Some(body.email.trim().to_lowercase());
                auth.people.audit.record(e).await;
            }
            let err = ApiError::from(err);
            if input.form && err.status().is_client_error() {
                // a browser's form: back to the login page, which says what was wrong
                let next = same_origin_path(body.next.as_deref());
                let encode = |v: &str| -> String {
                    url::form_urlencoded::byte_serialize(v.as_bytes()).collect()
                };
                return Ok(Redirect::to(&format!(
                    "/login?next={}&error={}",
                    encode(next),
                    encode(&err.to_string())
                ))
                .into_response());
            }
            Err(err)
        }
    }
}

#[derive(Debug, Default, Deserialize)]
pub(super) struct NextBody {
    #[serde(default)]
    next: Option<String>,
}

pub(super) async fn logout(
    State(auth): State<Auth>,
    ClientInfo(client): ClientInfo,
    headers: HeaderMap,
    input: Input<NextBody>,
) -> Result<Response, ApiError> {
    if let Some(cookie) = auth.cookie.read(&headers) {
        if let Ok(Some((actor, principal))) = auth.people.session_principal(cookie).await {
            auth.audit_own(
                &actor,
                &principal,
                &client,
                "user.logout",
                ("session", &actor.session_id),
                json!({}),
            )
            .await;
        }
        auth.people.logout(cookie).await?;
    }
    let mut response = done(
        input.form,
        input.value.next.as_deref(),
        json!({"loggedOut": true}),
    );
    response
        .headers_mut()
        .append(header::SET_COOKIE, auth.cookie.clear());
    Ok(response)
}

#[derive(Debug, Deserialize)]
pub(super) struct SetupBody {
    token: String,
    #[serde(default)]
    email: Option<String>,
    #[serde(default)]
    name: Option<String>,
    password: String,
    #[serde(default)]
    next: Option<String>,
}

pub(super) async fn setup(
    State(auth): State<Auth>,
    ClientInfo(client): ClientInfo,
    input: Input<SetupBody>,
) -> Result<Response, ApiError> {
    let body = input.value;
    let user = match auth
        .people
        .use_link(
            &body.token,
            body.email.as_deref(),
            body.name.as_deref(),
            &body.password,
        )
        .await
    {
        Ok(user) => user,
        Err(err) => return form_error(input.form, "setup", &body.token, err.into()),
    };
    let session = auth.people.start_session(user, &client).await?;
    let actor = actor_of(&session);
    auth.people
        .audit
        .record(entry(
            &auth.people,
            &session.user.org,
            Some(&actor),
            &client,
            "user.password.change",
            Some(("user", &actor.user_id)),
            json!({"via": "setup link"}),
        ))
        .await;
    Ok(logged_in(&auth, &session, input.form, body.next.as_deref()))
}

/// A refused setup or invite form goes back to its page (`/{page}/{token}`), which says what
/// was wrong; JSON callers get the error, and so does a form whose link no longer works (its
/// page would be a 404 too).
fn form_error(form: bool, page: &str, token: &str, err: ApiError) -> Result<Response, ApiError> {
    let status = err.status();
    if !(form && status.is_client_error() && status != StatusCode::NOT_FOUND) {
        return Err(err);
    }
    let encode =
        |v: &str| -> String { url::form_urlencoded::byte_serialize(v.as_bytes()).collect() };
    Ok(Redirect::to(&format!(
        "/{page}/{}?error={}",
        encode(token).replace('+', "%20"),
        encode(&err.to_string())
    ))
    .into_response())
}

/// The person a new login session belongs to (for the audit entry of the login).
pub(super) fn actor_of(session: &NewSession) -> Actor {
    Actor {
        user_id: session.user.id.clone(),
        email: session.user.email.clone(),
        name: session.user.name.clone(),
        session_id: String::new(),
        must_enrol_mfa: false,
    }
}

#[derive(Debug, Deserialize)]
pub(super) struct AcceptBody {
    token: String,
    name: String,
    password: String,
    #[serde(default)]
    next: Option<String>,
}

pub(super) async fn accept(
    State(auth): State<Auth>,
    ClientInfo(client): ClientInfo,
    input: Input<AcceptBody>,
) -> Result<Response, ApiError> {
    let body = input.value;
    let user = match auth
        .people
        .accept_invite(&body.token, &body.name, &body.password)
        .await
    {
        Ok(user) => user,
        Err(err) => return form_error(input.form, "accept", &body.token, err.into()),
    };
    let session = auth.people.start_session(user, &client).await?;
    let actor = actor_of(&session);
    auth.people
        .audit
        .record(entry(
            &auth.people,
            &session.user.org,
            Some(&actor),
            &client,
            "member.accept-invite",
            Some(("user", &actor.user_id)),
            json!({"role": session.user.role}),
        ))
        .await;
    Ok(logged_in(&auth, &session, input.form, body.next.as_deref()))
}

#[derive(Debug, Deserialize)]
pub(super) struct PasswordBody {
    current: String,
    password: String,
    #[serde(default)]
    next: Option<String>,
}

pub(super) async fn change_password(
    State(auth): State<Auth>,
    ClientInfo(client): ClientInfo,
    headers: HeaderMap,
    input: Input<PasswordBody>,
) -> Result<Response, ApiError> {
    let (actor, principal) = auth.actor(&headers).await?;
    let body = input.value;
    let ended = auth
        .people
        .change_password(&actor, &body.current, &body.password)
        .await?;
    auth.audit_own(
        &actor,
        &principal,
        &client,
        "user.password.change",
        ("user", &actor.user_id),
        json!({"sessionsEnded": ended}),
    )
    .await;
    Ok(done(
        input.form,
        body.next.as_deref(),
        json!({"sessionsEnded": ended}),
    ))
}

pub(super) async fn me(
    State(auth): State<Auth>,
    headers: HeaderMap,
) -> Result<Json<serde_json::Value>, ApiError> {
    let (actor, principal) = auth.actor(&headers).await?;
    let user = auth.people.user(&actor.user_id).await?;
    let member = auth.people.member(&user).await?;
    Ok(Json(json!({
        "user": member,
        "org": principal.org,
        "scopes": principal.scopes,
        "projects": principal.projects,
        "mustEnrolMfa": actor.must_enrol_mfa,
        "session": actor.session_id,
    })))
}

pub(super) async fn sessions(
    State(auth): State<Auth>,
    headers: HeaderMap,
) -> Result<Json<Vec<people::SessionInfo>>, ApiError> {
    let (actor, _) = auth.actor(&headers).await?;
    Ok(Json(
        auth.people
            .sessions_of(&actor.user_id, &actor.session_id)
            .await?,
    ))
}

pub(super) async fn end_session(
    State(auth): State<Auth>,
    ClientInfo(client): ClientInfo,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Result<StatusCode, ApiError> {
    let (actor, principal) = auth.actor(&headers).await?;
    auth.people.end_session(&actor.user_id, &id).await?;
    auth.audit_own(
        &actor,
        &principal,
        &client,
        "session.revoke",
        ("session", &id),
        json!({}),
    )
    .await;
    Ok(StatusCode::NO_CONTENT)
}

pub(super) async fn end_other_sessions(
    State(auth): State<Auth>,
    ClientInfo(client): ClientInfo,
    headers: HeaderMap,
) -> Result<Json<serde_json::Value>, ApiError> {
    let (actor, principal) = auth.actor(&headers).await?;
    let ended = auth
        .people
        .end_other_sessions(&actor.user_id, &actor.session_id)
        .await?;
    auth.audit_own(
        &actor,
        &principal,
        &client,
        "session.revoke",
        ("user", &actor.user_id),
        json!({"sessionsEnded": ended}),
    )
    .await;
    Ok(Json(json!({"sessionsEnded": ended})))
}

pub(super) async fn totp_enrol(
    State(auth): State<Auth>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let (actor, _) = auth.actor(&headers).await?;
    let enrolment = auth.people.enrol_totp(&actor).await?;
    let mut response = Json(enrolment).into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

#[derive(Debug, Deserialize)]
pub(super) struct CodeBody {
    code: String,
}

pub(super) async fn totp_confirm(
    State(auth): State<Auth>,
    ClientInfo(client): ClientInfo,
    headers: HeaderMap,
    input: Input<CodeBody>,
) -> Result<Response, ApiError> {
    let (actor, principal) = auth.actor(&headers).await?;
    let codes = auth.people.confirm_totp(&actor, &input.value.code).await?;
    auth.audit_own(
        &actor,
        &principal,
        &client,
        "user.mfa.enable",
        ("user", &actor.user_id),
        json!({"type": "totp"}),
    )
    .await;
    let mut response = Json(json!({"recoveryCodes": codes})).into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

#[derive(Debug, Deserialize)]
pub(super) struct DisableTotpBody {
    password: String,
}

pub(super) async fn totp_disable(
    State(auth): State<Auth>,
    ClientInfo(client): ClientInfo,
    headers: HeaderMap,
    input: Input<DisableTotpBody>,
) -> Result<StatusCode, ApiError> {
    let (actor, principal) = auth.actor(&headers).await?;
    auth.people
        .disable_totp(&actor, &input.value.password)
        .await?;
    auth.audit_own(
        &actor,
        &principal,
        &client,
        "user.mfa.disable",
        ("user", &actor.user_id),
        json!({"type": "totp"}),
    )
    .await;
    Ok(StatusCode::NO_CONTENT)
}
