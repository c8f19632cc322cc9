//! HTTP: the only module that knows axum. One router per listener; handlers take the request
//! apart, call one domain function and turn its result into a response.

pub(crate) mod alerts;
mod attachments;
mod auth;
mod cron;
mod error;
mod ingest;
mod issues;
mod keys;
pub mod listener;
mod maintenance;
pub(crate) mod members;
mod metrics;
mod passkeys;
mod projects;
mod query;
mod registration;
mod security;
mod sentry;
mod sentry_discover;
mod sentry_files;
mod sentry_issues;
mod settings;
mod sso;
mod status;
#[cfg(test)]
mod tests;
mod tokens;

pub(crate) use auth::{Caller, ClientInfo, entry as audit_entry};
pub(crate) use issues::{
    assignee as check_assignee, change_audited as change_issue, delete_audited as delete_issue,
};
pub(crate) use members::MembersState;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::State;
use axum::http::{HeaderName, Method, StatusCode};
use axum::routing::{MethodRouter, delete, get, post};
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::timeout::RequestBodyTimeoutLayer;

pub use error::ApiError;

use crate::node::Node;

/// Browser SDKs send from any origin with these headers.
fn ingest_cors() -> CorsLayer {
    CorsLayer::new()
        .allow_origin(AllowOrigin::mirror_request())
        .allow_methods([Method::POST, Method::OPTIONS])
        .allow_headers([
            HeaderName::from_static("x-sentry-auth"),
            HeaderName::from_static("content-type"),
            HeaderName::from_static("content-encoding"),
            HeaderName::from_static("authorization"),
            HeaderName::from_static("baggage"),
            HeaderName::from_static("sentry-trace"),
        ])
        .expose_headers([
            HeaderName::from_static("x-sentry-error"),
            HeaderName::from_static("x-sentry-rate-limits"),
            HeaderName::from_static("retry-after"),
        ])
        .max_age(Duration::from_secs(3600))
}

/// Everything on one listener: ingest, the query API, login, the web UI, metrics and health
/// checks.
pub fn router(node: &Arc<Node>) -> Router {
    ingest_routes(node).merge(secured(
        node,
        query_routes(node)
            .merge(crate::web::router(node))
            .merge(metrics_routes(node))
            .merge(health_routes(node)),
    ))
}

/// The ingest listener when the query API has its own: ingest and health checks.
pub fn ingest_router(node: &Arc<Node>) -> Router {
    ingest_routes(node).merge(secured(node, health_routes(node)))
}

/// The separate query/admin listener: the query API, login, the web UI, metrics and health
/// checks.
pub fn admin_router(node: &Arc<Node>) -> Router {
    secured(
        node,
        query_routes(node)
            .merge(crate::web::router(node))
            .merge(metrics_routes(node))
            .merge(health_routes(node)),
    )
}

/// Every route but ingest gets the security headers and the CSRF check (`security`); routes
/// merged here later (the web UI) get them too.
fn secured(node: &Arc<Node>, routes: Router) -> Router {
    let cookie = auth::CookieSettings::from_config(&node.config);
    let hsts = node
        .config
        .server
        .public_url
        .as_deref()
        .is_some_and(|u| u.to_ascii_lowercase().starts_with("https://"));
    let security = Arc::new(security::Security {
        hsts,
        cookie_name: cookie.name,
    });
    routes.layer(axum::middleware::from_fn_with_state(
        security,
        security::layer,
    ))
}

/// Who sends `headers`: a Bearer API token or the login session cookie, for middleware outside
/// this module (the web UI puts the principal into request extensions). `Ok(None)` when the
/// request carries neither; an unknown token or an ended session is an error (401), and so is a
/// session that must enrol MFA first (403). The actor is `Some` for a logged-in person.
pub async fn authenticate(
    node: &Arc<Node>,
    headers: &axum::http::HeaderMap,
) -> Result<Option<(Option<crate::people::Actor>, Arc<crate::tenancy::Principal>)>, ApiError> {
    match auth_of(node).caller(headers).await {
        Ok(caller) => Ok(Some((caller.actor, caller.principal))),
        Err(ApiError::MissingToken) => Ok(None),
        Err(err) => Err(err),
    }
}

/// Like [`authenticate`], but lets through a session that must still enrol MFA (its actor says
/// so, and its principal holds no scope): for the pages where it enrols.
pub async fn authenticate_enrolling(
    node: &Arc<Node>,
    headers: &axum::http::HeaderMap,
) -> Result<Option<(Option<crate::people::Actor>, Arc<crate::tenancy::Principal>)>, ApiError> {
    match auth_of(node).caller_enrolling(headers).await {
        Ok(caller) => Ok(Some((caller.actor, caller.principal))),
        Err(ApiError::MissingToken) => Ok(None),
        Err(err) => Err(err),
    }
}

/// The name of the login session cookie on this server (`__Host-faultline_session`, or
/// `faultline_session` on a plain-HTTP loopback listener without an https public URL).
pub fn session_cookie_name(node: &Node) -> &'static str {
    auth::CookieSettings::from_config(&node.config).name
}

/// What member and team changes need (the API's handlers and the web UI's forms).
pub(crate) fn alerts_state(node: &Arc<Node>) -> alerts::AlertsState {
    alerts::AlertsState {
        auth: auth_of(node),
        alerts: Arc::clone(&node.alerts),
        projects: Arc::clone(&node.projects),
    }
}

pub(crate) fn members_state(node: &Arc<Node>) -> MembersState {
    MembersState {
        auth: auth_of(node),
        projects: Arc::clone(&node.projects),
        public_url: public_url(node),
        mailer: node.mailer.clone(),
    }
}

/// The authentication every handler shares.
fn auth_of(node: &Arc<Node>) -> auth::Auth {
    auth::Auth {
        tokens: Arc::clone(&node.tokens),
        people: Arc::clone(&node.people),
        cookie: Arc::new(auth::CookieSettings::from_config(&node.config)),
    }
}

/// The public base URL (for DSNs and links).
fn public_url(node: &Node) -> String {
    node.config.public_url()
}

/// A route with and without its trailing slash (Sentry's clients send both).
fn both(
    router: Router<members::MembersState>,
    path: &str,
    method: MethodRouter<members::MembersState>,
) -> Router<members::MembersState> {
    let bare = path.trim_end_matches('/');
    router.route(path, method.clone()).route(bare, method)
}

/// `/auth/...`, members, teams and organization settings.
fn people_routes(node: &Arc<Node>) -> Router {
    let auth = auth_of(node);
    let members = members_state(node);
    let org = "/api/0/organizations/{org}/";
    let people = Router::new();
    let people = both(people, org, get(members::get_org).put(members::update_org));
    let people = both(
        people,
        &format!("{org}members/"),
        get(members::list_members).post(members::invite),
    );
    let people = both(
        people,
        &format!("{org}members/{{member}}/"),
        get(members::get_member).put(members::update_member),
    );
    let people = both(
        people,
        &format!("{org}members/{{member}}/sessions/"),
        delete(members::end_member_sessions),
    );
    let people = both(
        people,
        &format!("{org}members/{{member}}/teams/{{team}}/"),
        post(members::add_team_member).delete(members::remove_team_member),
    );
    let people = both(
        people,
        &format!("{org}teams/"),
        get(members::list_teams).post(members::create_team),
    );
    let people = both(
        people,
        "/api/0/teams/{org}/{team}/projects/",
        get(members::team_projects),
    );
    let people = both(
        people,
        "/api/0/projects/{org}/{project}/teams/{team}/",
        post(members::add_project_team).delete(members::remove_project_team),
    );
    Router::new()
        .route("/auth/login", post(auth::login))
        .route("/auth/logout", post(auth::logout))
        .route("/auth/setup", post(auth::setup))
        .route("/auth/accept", post(auth::accept))
        .route("/auth/password", post(auth::change_password))
        .route("/auth/me", get(auth::me))
        .route(
            "/auth/sessions",
            get(auth::sessions).delete(auth::end_other_sessions),
        )
        .route("/auth/sessions/{id}", delete(auth::end_session))
        .route(
            "/auth/totp",
            post(auth::totp_enrol).delete(auth::totp_disable),
        )
        .route("/auth/totp/confirm", post(auth::totp_confirm))
        .route("/auth/passkeys", get(passkeys::list))
        .route("/auth/passkeys/register", post(passkeys::register))
        .route(
            "/auth/passkeys/register/finish",
            post(passkeys::register_finish),
        )
        .route("/auth/passkeys/{id}", delete(passkeys::remove))
        .route("/auth/passkeys/login", post(passkeys::login))
        .route("/auth/passkeys/login/finish", post(passkeys::login_finish))
        .with_state(auth.clone())
        .merge(
            Router::new()
                .route("/auth/methods", get(sso::methods))
                .route("/auth/oidc/login", get(sso::login))
                .route("/auth/oidc/callback", get(sso::callback))
                .route("/auth/oidc/link", get(sso::link).delete(sso::unlink))
                .with_state(sso::SsoState {
                    auth,
                    sso: node.sso.clone(),
                }),
        )
        .merge(people.with_state(members))
}

/// `GET /metrics`: Prometheus text format, without authentication (like the health checks;
/// on the admin listener when there is one, which a NetworkPolicy keeps inside the cluster).
fn metrics_routes(node: &Arc<Node>) -> Router {
    Router::new()
        .route("/metrics", get(metrics::metrics))
        .with_state(Arc::clone(node))
}

fn ingest_routes(node: &Arc<Node>) -> Router {
    // The handler reads the body itself, after authentication, with its own size and time
    // limits (and answers over-size bodies with the limit's name).
    let state = ingest::IngestState {
        ingest: Arc::clone(&node.ingest),
        body_read_timeout: node.config.server.body_read_timeout,
    };
    Router::new()
        .route("/api/{project_id}/{endpoint}/", post(ingest::ingest))
        .route("/api/{project_id}/{endpoint}", post(ingest::ingest))
        .route(
            "/api/{project_id}/cron/{monitor_slug}/{sentry_key}/",
            get(cron::check_in).post(cron::check_in),
        )
        .route(
            "/api/{project_id}/cron/{monitor_slug}/",
            get(cron::check_in).post(cron::check_in),
        )
        .layer(ingest_cors())
        .with_state(state)
}

fn query_routes(node: &Arc<Node>) -> Router {
    let body_timeout = RequestBodyTimeoutLayer::new(node.config.server.body_read_timeout);
    let state = query::QueryState {
        query: Arc::clone(&node.query),
        tokens: Arc::clone(&node.tokens),
        projects: Arc::clone(&node.projects),
        auth: auth_of(node),
        public_url: public_url(node),
        sourcemaps: Arc::clone(&node.sourcemaps),
    };
    let admin = maintenance::AdminState {
        node: Arc::clone(node),
    };
    let keys = keys::KeysState {
        auth: auth_of(node),
        projects: Arc::clone(&node.projects),
        public_url: public_url(node),
    };
    let personal_tokens = get(tokens::list_personal)
        .post(tokens::create_personal)
        .delete(tokens::revoke_personal);
    let key_list = get(keys::list).post(keys::create);
    let key_one = get(keys::get_key).put(keys::update).delete(keys::delete);
    let registered = axum::routing::put(registration::put).delete(registration::delete);
    Router::new()
        .route("/api/sql", post(query::sql))
        .route("/api/tokens", post(tokens::create).get(tokens::list))
        .route("/api/tokens/{id}", delete(tokens::revoke))
        .route("/api/0/api-tokens/", personal_tokens.clone())
        .route("/api/0/api-tokens", personal_tokens)
        .route(
            "/api/0/api-tokens/{id}/",
            delete(tokens::revoke_personal_id),
        )
        .route("/api/0/api-tokens/{id}", delete(tokens::revoke_personal_id))
        .route("/api/issues/{issue_id}", delete(issues::delete))
        .route("/api/issues/{issue_id}/resolve", post(issues::resolve))
        .route("/api/issues/{issue_id}/ignore", post(issues::ignore))
        .route("/api/issues/{issue_id}/reopen", post(issues::reopen))
        .route("/api/issues/{issue_id}/assign", post(issues::assign))
        .route("/api/issues/{issue_id}/merge", post(issues::merge))
        .route("/api/issues/{issue_id}/unmerge", post(issues::unmerge))
        .merge(sentry_routes())
        .with_state(state)
        .merge(
            Router::new()
                .route(
                    "/api/0/backups",
                    post(maintenance::create_backup).get(maintenance::list_backups),
                )
                .route("/api/0/backups/{id}", get(maintenance::get_backup))
                .route("/api/0/retention/run", post(maintenance::run_retention))
                .with_state(admin),
        )
        .merge(
            Router::new()
                .route("/api/0/status/", get(status::get))
                .route("/api/0/status", get(status::get))
                .with_state(status::StatusState {
                    auth: auth_of(node),
                    node: Arc::clone(node),
                }),
        )
        .merge(
            Router::new()
                .route(
                    "/api/0/projects/{org}/{project}/",
                    get(projects::get_project).put(projects::put_project),
                )
                .route(
                    "/api/0/projects/{org}/{project}",
                    get(projects::get_project).put(projects::put_project),
                )
                .route(
                    "/api/0/organizations/{org}/projects/{project}/",
                    registered.clone(),
                )
                .route("/api/0/organizations/{org}/projects/{project}", registered)
                .route("/api/0/projects/{org}/{project}/keys/", key_list.clone())
                .route("/api/0/projects/{org}/{project}/keys", key_list)
                .route(
                    "/api/0/projects/{org}/{project}/keys/{key}/",
                    key_one.clone(),
                )
                .route("/api/0/projects/{org}/{project}/keys/{key}", key_one)
                .route(
                    "/api/0/projects/{org}/{project}/keys/{key}/rotate/",
                    post(keys::rotate),
                )
                .route(
                    "/api/0/projects/{org}/{project}/keys/{key}/rotate",
                    post(keys::rotate),
                )
                .with_state(keys),
        )
        .merge(
            Router::new()
                .route(
                    "/api/0/organizations/{org}/projects/{project}/erase/",
                    post(registration::erase),
                )
                .route(
                    "/api/0/organizations/{org}/projects/{project}/erase",
                    post(registration::erase),
                )
                .with_state(registration::EraseState {
                    keys: keys::KeysState {
                        auth: auth_of(node),
                        projects: Arc::clone(&node.projects),
                        public_url: public_url(node),
                    },
                    node: Arc::clone(node),
                }),
        )
        .merge(people_routes(node))
        .merge(alert_routes(node))
        .merge(attachment_routes(node))
        .layer(body_timeout)
}

/// Sentry's web API for `sentry-cli` and tools built for Sentry (`api/sentry.rs`), each path
/// with and without its trailing slash.
fn sentry_routes() -> Router<query::QueryState> {
    let org = "/api/0/organizations/{org}";
    // a chunk upload request carries up to MAX_REQUEST_SIZE of chunks plus multipart framing
    let chunk_limit = axum::extract::DefaultBodyLimit::max(
        usize::try_from(sentry_files::MAX_REQUEST_SIZE + 1024 * 1024).unwrap_or(usize::MAX),
    );
    let file_limit = axum::extract::DefaultBodyLimit::max(
        usize::try_from(sentry_files::MAX_RELEASE_FILE_REQUEST).unwrap_or(usize::MAX),
    );
    let routes: [(String, MethodRouter<query::QueryState>); 21] = [
        ("/api/0/".to_owned(), get(sentry::root)),
        ("/api/0/auth/".to_owned(), get(sentry::whoami)),
        (
            "/api/0/organizations/".to_owned(),
            get(sentry::organizations),
        ),
        (
            format!("{org}/projects/"),
            get(sentry::organization_projects),
        ),
        (
            "/api/0/projects/{org}/{project}/releases/".to_owned(),
            get(sentry::list_project_releases).post(sentry::create_project_release),
        ),
        (
            format!("{org}/releases/"),
            get(sentry::list_releases).post(sentry::create_release),
        ),
        (
            format!("{org}/releases/{{version}}/"),
            get(sentry::get_release)
                .put(sentry::update_release)
                .delete(sentry::delete_release),
        ),
        (
            format!("{org}/releases/{{version}}/deploys/"),
            get(sentry::list_deploys).post(sentry::create_deploy),
        ),
        (
            format!("{org}/chunk-upload/"),
            get(sentry_files::chunk_upload_options)
                .post(sentry_files::upload_chunks)
                .layer(chunk_limit),
        ),
        (
            format!("{org}/artifactbundle/assemble/"),
            post(sentry_files::assemble_bundle),
        ),
        (
            "/api/0/projects/{org}/{project}/releases/{version}/files/".to_owned(),
            post(sentry_files::upload_release_file).layer(file_limit),
        ),
        (
            format!("{org}/issues/"),
            get(sentry_issues::org_issues).put(sentry_issues::update_org_issues),
        ),
        (
            "/api/0/projects/{org}/{project}/issues/".to_owned(),
            get(sentry_issues::project_issues).put(sentry_issues::update_project_issues),
        ),
        (
            format!("{org}/issues/{{issue}}/"),
            get(sentry_issues::get_issue)
                .put(sentry_issues::update_issue)
                .delete(sentry_issues::delete_issue),
        ),
        (
            format!("{org}/issues/{{issue}}/events/"),
            get(sentry_issues::issue_events),
        ),
        (
            format!("{org}/issues/{{issue}}/events/{{event}}/"),
            get(sentry_issues::issue_event),
        ),
        (
            format!("{org}/issues/{{issue}}/tags/{{key}}/"),
            get(sentry_issues::issue_tag),
        ),
        (
            format!("{org}/issues/{{issue}}/tags/"),
            get(sentry_discover::issue_tags),
        ),
        (format!("{org}/events/"), get(sentry_discover::events)),
        (
            format!("{org}/events-stats/"),
            get(sentry_discover::events_stats),
        ),
        (
            format!("{org}/tags/"),
            get(sentry_discover::organization_tags),
        ),
    ];
    let mut router = Router::new();
    for (path, method) in routes {
        let bare = path.trim_end_matches('/').to_owned();
        router = router.route(&path, method.clone());
        if !bare.is_empty() && bare != path {
            router = router.route(&bare, method);
        }
    }
    router
}

/// An event's attachments (`api/attachments.rs`), each path with and without its trailing
/// slash.
fn attachment_routes(node: &Arc<Node>) -> Router {
    let state = attachments::AttachmentsState {
        auth: auth_of(node),
        projects: Arc::clone(&node.projects),
        query: Arc::clone(&node.query),
        store: node.store.clone(),
    };
    let base = "/api/0/projects/{org}/{project}/events/{event_id}/attachments";
    Router::new()
        .route(&format!("{base}/"), get(attachments::list))
        .route(base, get(attachments::list))
        .route(&format!("{base}/{{id}}/"), get(attachments::get))
        .route(&format!("{base}/{{id}}"), get(attachments::get))
        .with_state(state)
}

/// Alert rules and channels (`api/alerts.rs`), each path with and without its trailing slash.
fn alert_routes(node: &Arc<Node>) -> Router {
    let state = alerts_state(node);
    let org = "/api/0/organizations/{org}";
    let routes: [(String, MethodRouter<alerts::AlertsState>); 6] = [
        (
            format!("{org}/alert-rules/"),
            get(alerts::list_rules).post(alerts::create_rule),
        ),
        (
            format!("{org}/alert-rules/{{name}}/"),
            get(alerts::get_rule)
                .put(alerts::update_rule)
                .delete(alerts::delete_rule),
        ),
        (
            format!("{org}/alert-channels/"),
            get(alerts::list_channels).post(alerts::create_channel),
        ),
        (
            format!("{org}/alert-channels/{{name}}/"),
            get(alerts::get_channel)
                .put(alerts::update_channel)
                .delete(alerts::delete_channel),
        ),
        (
            format!("{org}/alert-channels/{{name}}/test/"),
            post(alerts::test_channel),
        ),
        (
            "/api/0/projects/{org}/{project}/rules/".to_owned(),
            get(alerts::project_rules),
        ),
    ];
    let mut router = Router::new();
    for (path, method) in routes {
        let bare = path.trim_end_matches('/').to_owned();
        router = router.route(&path, method.clone()).route(&bare, method);
    }
    router.with_state(state)
}

fn health_routes(node: &Arc<Node>) -> Router {
    Router::new()
        .route("/health/live", get(|| async { (StatusCode::OK, "ok\n") }))
        .route("/health/ready", get(ready))
        .with_state(Arc::clone(node))
}

/// `GET /health/ready`: `503` with the reason while events cannot be written (e.g. the WAL's
/// disk is full), so a load balancer sends them to another node meanwhile.
async fn ready(State(node): State<Arc<Node>>) -> (StatusCode, String) {
    let wal = node.wal.clone();
    let writable = tokio::task::spawn_blocking(move || wal.check_writable())
        .await
        .unwrap_or_else(|e| Err(e.to_string()));
    match writable {
        Ok(()) => (StatusCode::OK, "ready\n".to_owned()),
        Err(reason) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!("not ready: events cannot be written to disk ({reason})\n"),
        ),
    }
}
