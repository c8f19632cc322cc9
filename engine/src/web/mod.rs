//! The web UI: server-rendered HTML pages over the same services as the HTTP API.
//!
//! Pages are askama templates (`engine/templates/`, compiled into the binary) rendered by the
//! handlers here; CSS and one small ES module are served from the binary under content-hashed
//! URLs ([`assets`]). Every page reads through [`QueryService`] (SQL over `events` and `issues`
//! with the caller's [`ProjectFilter`]) and changes issue state through [`crate::issues::change`],
//! as the HTTP API does; there is no other way to read events. Every state of a view is in its
//! URL, every action is a POST form, and no page has inline script or style, so the pages work
//! with JavaScript off and under a strict Content-Security-Policy.
//!
//! Every handler runs behind [`authenticate`], which puts the caller's [`Principal`] into the
//! request's extensions (see docs/ui.md).

mod account;
mod alerts;
mod assets;
mod console;
mod event;
mod issue;
pub(crate) mod search;
mod settings;
mod stream;
mod svg;
#[cfg(test)]
mod tests;

use std::collections::BTreeSet;
use std::sync::Arc;

use askama::Template;
use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use chrono::{DateTime, TimeZone, Utc};
use datafusion::arrow::util::display::{ArrayFormatter, FormatOptions};
use datafusion::prelude::SessionContext;

use crate::api::ApiError;
use crate::node::Node;
use crate::query::{ProjectFilter, QueryOutput, QueryService};
use crate::tenancy::{DEFAULT_ORG, Principal, Project, Scope};

/// What the handlers share.
#[derive(Clone)]
pub(crate) struct WebState {
    node: Arc<Node>,
}

/// The UI's routes: public ones (login page, static files) and the pages behind
/// [`authenticate`].
pub fn router(node: &Arc<Node>) -> Router {
    let state = WebState {
        node: Arc::clone(node),
    };
    let pages = Router::new()
        .route("/", get(home))
        .route("/organizations/{org}/", get(org_home))
        .route("/organizations/{org}/issues/", get(stream::page))
        .route("/organizations/{org}/issues/bulk/", post(stream::bulk))
        .route("/organizations/{org}/issues/{id}/", get(issue::page))
        .route(
            "/organizations/{org}/issues/{id}/events/{event_id}/",
            get(issue::event_page),
        )
        .route(
            "/organizations/{org}/issues/{id}/events/{event_id}/json/",
            get(issue::event_json),
        )
        .route(
            "/organizations/{org}/issues/{id}/events/{event_id}/event.md",
            get(issue::event_markdown),
        )
        .route(
            "/organizations/{org}/issues/{id}/{action}/",
            post(issue::act),
        )
        .route("/organizations/{org}/sql/", get(console::page))
        .route("/organizations/{org}/sql/download/", get(console::download))
        .route("/organizations/{org}/sql/saved/", post(console::save))
        .route(
            "/organizations/{org}/sql/saved/{id}/delete/",
            post(console::delete),
        )
        .route("/organizations/{org}/projects/", get(projects_page))
        .route("/organizations/{org}/settings/", get(settings::page))
        .route(
            "/organizations/{org}/settings/invite/",
            post(settings::invite),
        )
        .route(
            "/organizations/{org}/settings/members/{id}/",
            post(settings::member),
        )
        .route("/organizations/{org}/settings/teams/", post(settings::team))
        .route(
            "/organizations/{org}/settings/teams/{team}/",
            post(settings::team_change),
        )
        .route("/organizations/{org}/settings/audit/", get(settings::audit))
        .route("/organizations/{org}/alerts/", get(alerts::page))
        .route(
            "/organizations/{org}/alerts/rules/",
            post(alerts::save_rule),
        )
        .route(
            "/organizations/{org}/alerts/rules/{name}/delete/",
            post(alerts::delete_rule),
        )
        .route(
            "/organizations/{org}/alerts/channels/",
            post(alerts::save_channel),
        )
        .route(
            "/organizations/{org}/alerts/channels/{name}/delete/",
            post(alerts::delete_channel),
        )
        .route(
            "/organizations/{org}/alerts/channels/{name}/test/",
            post(alerts::test_channel),
        )
        .route("/account/", get(account::page))
        .route("/account/password/", post(account::password))
        .route("/account/totp/", post(account::totp_enrol))
        .route("/account/totp/confirm/", post(account::totp_confirm))
        .route("/account/totp/disable/", post(account::totp_disable))
        .route(
            "/account/sessions/end-others/",
            post(account::end_other_sessions),
        )
        .route("/account/sessions/{id}/end/", post(account::end_session))
        .route(
            "/account/passkeys/{id}/remove/",
            post(account::passkey_remove),
        )
        .route("/account/sso/unlink/", post(account::sso_unlink))
        .route("/account/tokens/", post(account::token_create))
        .route("/account/tokens/{id}/revoke/", post(account::token_revoke))
        .route_layer(middleware::from_fn_with_state(state.clone(), authenticate))
        .with_state(state.clone());
    let mut router = Router::new()
        .route("/login", get(login_page).with_state(state.clone()))
        .route(
            "/setup/{token}",
            get(account::setup_page).with_state(state.clone()),
        )
        .route(
            "/accept/{token}",
            get(account::accept_page).with_state(state.clone()),
        )
        .route("/static/{file}", get(assets::serve));
    // The pages' addresses typed without their trailing slash.
    for path in [
        "/organizations/{org}",
        "/organizations/{org}/issues",
        "/organizations/{org}/issues/{id}",
        "/organizations/{org}/sql",
        "/organizations/{org}/projects",
        "/organizations/{org}/settings",
        "/organizations/{org}/settings/audit",
        "/organizations/{org}/alerts",
        "/account",
    ] {
        router = router.route(path, get(add_slash));
    }
    router.merge(pages)
}

/// Redirects `/path?query` to `/path/?query`.
async fn add_slash(uri: axum::http::Uri) -> Redirect {
    let query = uri.query().map(|q| format!("?{q}")).unwrap_or_default();
    Redirect::permanent(&format!("{}/{query}", uri.path()))
}

/// How a request to a page is authenticated: the login session cookie, or the API's
/// `Authorization: Bearer <token>` ([`crate::api::authenticate`]). A verified caller's
/// [`Principal`] (and, for a person, their [`Actor`](crate::people::Actor)) goes into the
/// request's extensions; a GET without valid credentials (none, an ended or expired session) is
/// sent to the login page, which comes back to the page after login; anything else is refused.
pub(crate) async fn authenticate(
    State(state): State<WebState>,
    mut request: Request,
    next: Next,
) -> Response {
    let is_read = request.method() == Method::GET || request.method() == Method::HEAD;
    // an ended or expired session sends the browser to log in again; a wrong API token is
    // the client's to fix and answered as the API would
    let has_token = request.headers().contains_key(header::AUTHORIZATION);
    match crate::api::authenticate_enrolling(&state.node, request.headers()).await {
        Ok(Some((Some(actor), _))) if actor.must_enrol_mfa && !enrols(&request) => {
            // the organization requires MFA: only the account page's enrolment until then
            if is_read {
                Redirect::to("/account/?done=mfa-required").into_response()
            } else {
                WebError::Api(ApiError::Forbidden(
                    "your organization requires two-factor authentication: set up an \
                     authenticator app or add a passkey on your account page first"
                        .to_owned(),
                ))
                .into_response()
            }
        }
        Ok(Some((actor, principal))) => {
            request.extensions_mut().insert(principal);
            if let Some(actor) = actor {
                request.extensions_mut().insert(actor);
            }
            next.run(request).await
        }
        Ok(None) if is_read => to_login(&request),
        Err(err) if is_read && !has_token && err.status() == StatusCode::UNAUTHORIZED => {
            to_login(&request)
        }
        Ok(None) => WebError::Unauthenticated.into_response(),
        Err(err) => WebError::from(err).into_response(),
    }
}

/// The requests a session that must enrol MFA may make: the account page and TOTP enrolment.
fn enrols(request: &Request) -> bool {
    matches!(
        (request.method(), request.uri().path()),
        (&Method::GET | &Method::HEAD, "/account/")
            | (&Method::POST, "/account/totp/" | "/account/totp/confirm/")
    )
}

/// Sends the browser to the login page, to come back to this request's page.
fn to_login(request: &Request) -> Response {
    let next_path = request
        .uri()
        .path_and_query()
        .map_or("/", |p| p.as_str())
        .to_owned();
    Redirect::to(&login_url(&next_path)).into_response()
}

/// `/login?next=<path>`.
fn login_url(next: &str) -> String {
    format!("/login?next={}", encode(next))
}

/// `value` percent-encoded for a query string.
pub(crate) fn encode(value: &str) -> String {
    url::form_urlencoded::byte_serialize(value.as_bytes()).collect()
}

/// A path to go back to after a form: only paths of this site (`/…`, never `//host`).
pub(crate) fn local_path(next: Option<&str>) -> Option<&str> {
    next.filter(|n| n.starts_with('/') && !n.starts_with("//") && !n.contains('\\'))
}

/// An error as the UI shows it: a page with the status and the message the API would give.
#[derive(Debug, thiserror::Error)]
pub(crate) enum WebError {
    #[error(transparent)]
    Api(#[from] ApiError),
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    BadRequest(String),
    #[error("missing credentials: log in or send Authorization: Bearer <token>")]
    Unauthenticated,
    #[error("cannot render the page: {0}")]
    Render(#[from] askama::Error),
}

impl From<crate::query::Error> for WebError {
    fn from(err: crate::query::Error) -> Self {
        Self::Api(err.into())
    }
}

impl From<crate::tenancy::Error> for WebError {
    fn from(err: crate::tenancy::Error) -> Self {
        Self::Api(err.into())
    }
}

impl From<crate::issues::Error> for WebError {
    fn from(err: crate::issues::Error) -> Self {
        Self::Api(err.into())
    }
}

impl WebError {
    fn status(&self) -> StatusCode {
        match self {
            Self::Api(err) => err.status(),
            Self::NotFound(_) => StatusCode::NOT_FOUND,
            Self::BadRequest(_) => StatusCode::BAD_REQUEST,
            Self::Unauthenticated => StatusCode::UNAUTHORIZED,
            Self::Render(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The message for the user: the error's own text, except for the server's failures.
    fn detail(&self) -> String {
        let status = self.status();
        if status.is_server_error() {
            tracing::error!(cause = %self, "page failed");
            if status == StatusCode::SERVICE_UNAVAILABLE {
                return self.to_string();
            }
            return "internal error; see the server log".to_owned();
        }
        tracing::debug!(cause = %self, status = status.as_u16(), "page refused");
        self.to_string()
    }
}

#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage {
    layout: Layout,
    status: u16,
    reason: String,
    message: String,
}

impl IntoResponse for WebError {
    fn into_response(self) -> Response {
        let status = self.status();
        let page = ErrorPage {
            layout: Layout::bare(status.canonical_reason().unwrap_or("Error")),
            status: status.as_u16(),
            reason: status.canonical_reason().unwrap_or("Error").to_owned(),
            message: self.detail(),
        };
        let mut response = match page.render() {
            Ok(html) => (status, Html(html)).into_response(),
            Err(err) => {
                tracing::error!(cause = %err, "cannot render the error page");
                (status, page.message).into_response()
            }
        };
        response
            .headers_mut()
            .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        response
    }
}

/// A rendered page.
pub(crate) fn html(page: &impl Template) -> Result<Response, WebError> {
    let mut response = Html(page.render()?).into_response();
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    Ok(response)
}

/// What the header of every page shows.
pub(crate) struct Layout {
    pub(crate) title: String,
    /// The organization of the page; empty on pages outside one (login, errors).
    pub(crate) org: String,
    pub(crate) orgs: Vec<String>,
    pub(crate) projects: Vec<String>,
    /// The project the page is narrowed to, or empty.
    pub(crate) project: String,
    /// The navigation entry of the page: `issues`, `sql`, `projects`, `settings`, `account` or
    /// empty.
    pub(crate) nav: &'static str,
    pub(crate) user: String,
    pub(crate) css: String,
    pub(crate) js: String,
}

impl Layout {
    /// The layout of a page outside an organization.
    pub(crate) fn bare(title: &str) -> Self {
        Self {
            title: title.to_owned(),
            org: String::new(),
            orgs: Vec::new(),
            projects: Vec::new(),
            project: String::new(),
            nav: "",
            user: String::new(),
            css: assets::css_url(),
            js: assets::js_url(),
        }
    }
}

/// The organization a page is about, as the caller may see it.
pub(crate) struct OrgCtx {
    pub(crate) principal: Arc<Principal>,
    pub(crate) org: String,
    /// The organization's projects the caller may read, by id.
    pub(crate) projects: Vec<Arc<Project>>,
    /// The same projects, as the filter of every query of the page.
    pub(crate) filter: ProjectFilter,
    orgs: Vec<String>,
}

impl OrgCtx {
    /// Checks that `principal` may read events of `org` and finds its projects there. Another
    /// organization than the caller's reads as not existing.
    pub(crate) async fn new(
        state: &WebState,
        principal: Arc<Principal>,
        org: String,
    ) -> Result<Self, WebError> {
        principal.require(Scope::EventRead)?;
        let unknown = || WebError::NotFound(format!("no organization {org:?}"));
        if principal.org.as_deref().is_some_and(|o| o != org) {
            return Err(unknown());
        }
        let readable = state.node.projects.readable(&principal).await?;
        let mut orgs: BTreeSet<String> = readable.iter().map(|p| p.org.clone()).collect();
        if let Some(own) = &principal.org {
            orgs.insert(own.clone());
        } else {
            orgs.insert(DEFAULT_ORG.to_owned());
        }
        if !orgs.contains(&org) {
            return Err(unknown());
        }
        let projects: Vec<_> = readable.into_iter().filter(|p| p.org == org).collect();
        let filter = ProjectFilter::Only(Arc::new(projects.iter().map(|p| p.id).collect()));
        Ok(Self {
            principal,
            org,
            projects,
            filter,
            orgs: orgs.into_iter().collect(),
        })
    }

    pub(crate) fn layout(&self, title: String, nav: &'static str, project: &str) -> Layout {
        Layout {
            title,
            org: self.org.clone(),
            orgs: self.orgs.clone(),
            projects: self.projects.iter().map(|p| p.name.clone()).collect(),
            project: project.to_owned(),
            nav,
            user: self.principal.name.clone(),
            css: assets::css_url(),
            js: assets::js_url(),
        }
    }

    /// A query session over the page's projects: the page's statements share it.
    pub(crate) async fn session<'a>(
        &'a self,
        query: &'a QueryService,
    ) -> Result<Session<'a>, WebError> {
        Ok(Session {
            query,
            token: &self.principal.token_id,
            ctx: query.session(&self.filter).await?,
        })
    }
}

/// One query session of a page: statements are planned and run by [`QueryService`] within
/// its limits, under the caller's token.
pub(crate) struct Session<'a> {
    query: &'a QueryService,
    token: &'a str,
    ctx: SessionContext,
}

impl Session<'_> {
    pub(crate) async fn run(&self, sql: &str) -> Result<QueryOutput, crate::query::Error> {
        tracing::debug!(sql, "page query");
        let plan = self.query.plan(&self.ctx, sql).await?;
        self.query.execute(Some(self.token), &self.ctx, plan).await
    }

    /// Runs `sql` and reads its result as text cells.
    pub(crate) async fn table(&self, sql: &str) -> Result<Table, WebError> {
        Table::from_output(&self.run(sql).await?, usize::MAX)
    }
}

/// A result as text: one `Option<String>` per cell (nested values as JSON text).
#[derive(Debug, Default)]
pub(crate) struct Table {
    pub(crate) columns: Vec<String>,
    pub(crate) rows: Vec<Vec<Option<String>>>,
    /// Rows in the result, including those past the cap.
    pub(crate) total: usize,
}

impl Table {
    /// The cells of the first `cap` rows of `output`.
    pub(crate) fn from_output(output: &QueryOutput, cap: usize) -> Result<Self, WebError> {
        let columns = output
            .schema
            .fields()
            .iter()
            .map(|f| f.name().clone())
            .collect();
        let mut rows = Vec::new();
        let mut total = 0;
        let options = FormatOptions::default().with_display_error(true);
        let encode = |e: datafusion::arrow::error::ArrowError| {
            WebError::from(crate::query::Error::Encode(e.to_string()))
        };
        for batch in &output.batches {
            total += batch.num_rows();
            let take = cap.saturating_sub(rows.len()).min(batch.num_rows());
            if take == 0 {
                continue;
            }
            let batch = batch.slice(0, take);
            let mut texts = Vec::with_capacity(batch.num_columns());
            for (field, column) in batch.schema().fields().iter().zip(batch.columns()) {
                if crate::query::format::is_nested(field.data_type()) {
                    texts.push(crate::query::format::json_text(field, column).map_err(encode)?);
                } else {
                    texts.push(Arc::clone(column));
                }
            }
            let formatters = texts
                .iter()
                .map(|c| ArrayFormatter::try_new(c.as_ref(), &options))
                .collect::<Result<Vec<_>, _>>()
                .map_err(encode)?;
            for i in 0..take {
                rows.push(
                    texts
                        .iter()
                        .zip(&formatters)
                        .map(|(c, f)| (!c.is_null(i)).then(|| f.value(i).to_string()))
                        .collect(),
                );
            }
        }
        Ok(Self {
            columns,
            rows,
            total,
        })
    }

    fn index(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|c| c == name)
    }

    /// The text of column `name` in row `row`.
    pub(crate) fn get(&self, row: usize, name: &str) -> Option<&str> {
        let i = self.index(name)?;
        self.rows.get(row)?.get(i)?.as_deref()
    }

    /// The text of column `name` in row `row`, empty for null.
    pub(crate) fn text(&self, row: usize, name: &str) -> String {
        self.get(row, name).unwrap_or_default().to_owned()
    }

    pub(crate) fn int(&self, row: usize, name: &str) -> i64 {
        self.get(row, name)
            .and_then(|v| v.parse().ok())
            .unwrap_or_default()
    }
}

/// A point in time as pages show it: relative text, with the absolute time as its title and
/// machine-readable form for the script that keeps the relative text current.
#[derive(Debug, Clone)]
pub(crate) struct When {
    pub(crate) iso: String,
    pub(crate) absolute: String,
    pub(crate) relative: String,
}

impl When {
    pub(crate) fn from_millis(ms: i64, now: DateTime<Utc>) -> Self {
        let at = Utc.timestamp_millis_opt(ms).single().unwrap_or(now);
        Self {
            iso: at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
            absolute: at.format("%Y-%m-%d %H:%M:%S UTC").to_string(),
            relative: relative(at, now),
        }
    }
}

/// "5 minutes ago", "in 2 hours", "just now".
pub(crate) fn relative(at: DateTime<Utc>, now: DateTime<Utc>) -> String {
    let seconds = (now - at).num_seconds();
    let (n, future) = (seconds.unsigned_abs(), seconds < 0);
    if n < 45 {
        return "just now".to_owned();
    }
    let (value, unit) = match n {
        n if n < 3_600 => (n.div_ceil(60).max(1), "minute"),
        n if n < 86_400 => (n / 3_600, "hour"),
        n if n < 30 * 86_400 => (n / 86_400, "day"),
        n if n < 365 * 86_400 => (n / (30 * 86_400), "month"),
        n => (n / (365 * 86_400), "year"),
    };
    let plural = if value == 1 { "" } else { "s" };
    if future {
        format!("in {value} {unit}{plural}")
    } else {
        format!("{value} {unit}{plural} ago")
    }
}

/// The periods pages offer, as `(name, seconds)`.
pub(crate) const PERIODS: [(&str, i64); 5] = [
    ("1h", 3_600),
    ("24h", 86_400),
    ("7d", 7 * 86_400),
    ("14d", 14 * 86_400),
    ("30d", 30 * 86_400),
];

/// The seconds of a period name; an unknown name is a 400 naming the choices.
pub(crate) fn period_seconds(name: &str) -> Result<i64, WebError> {
    PERIODS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, s)| *s)
        .ok_or_else(|| {
            WebError::BadRequest(format!(
                "period {name:?} is not one of 1h, 24h, 7d, 14d, 30d"
            ))
        })
}

/// `GET /`: the caller's organization's issues.
async fn home(axum::Extension(principal): axum::Extension<Arc<Principal>>) -> Redirect {
    let org = principal.org.as_deref().unwrap_or(DEFAULT_ORG);
    Redirect::to(&format!("/organizations/{}/issues/", encode_path(org)))
}

/// `GET /organizations/{org}/`.
async fn org_home(axum::extract::Path(org): axum::extract::Path<String>) -> Redirect {
    Redirect::to(&format!("/organizations/{}/issues/", encode_path(&org)))
}

/// `value` as one path segment.
pub(crate) fn encode_path(value: &str) -> String {
    url::form_urlencoded::byte_serialize(value.as_bytes())
        .collect::<String>()
        .replace('+', "%20")
}

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    layout: Layout,
    next: String,
    /// Why the last attempt failed.
    error: Option<String>,
    password_login: bool,
    /// The single sign-on button's label, when `[auth.oidc]` is set.
    sso_name: Option<String>,
    /// The passkey script's URL.
    passkeys_js: String,
}

#[derive(Debug, serde::Deserialize)]
struct LoginParams {
    next: Option<String>,
    error: Option<String>,
}

/// `GET /login`: the login form; it posts to `/auth/login`.
async fn login_page(
    State(state): State<WebState>,
    axum::extract::Query(params): axum::extract::Query<LoginParams>,
) -> Result<Response, WebError> {
    let next = local_path(params.next.as_deref()).unwrap_or("/").to_owned();
    html(&LoginPage {
        layout: Layout::bare("Log in"),
        next,
        error: params.error.filter(|e| !e.is_empty()),
        password_login: state.node.config.auth.password_login,
        sso_name: state.node.sso.as_ref().map(|s| s.name().to_owned()),
        passkeys_js: assets::passkeys_js_url(),
    })
}

struct ProjectRow {
    id: u64,
    name: String,
    dsn: String,
}

/// What became of one project's items of one data category in the last 24 hours (the
/// `outcomes` table), as Sentry's usage stats show it.
#[derive(Debug, Default, PartialEq)]
struct UsageRow {
    project: String,
    category: String,
    accepted: i64,
    /// Of the accepted, those stored with something scrubbed.
    scrubbed: i64,
    filtered: i64,
    rate_limited: i64,
    invalid: i64,
    too_large: i64,
    client_discard: i64,
}

/// The outcomes of the last 24 hours (the current hour and the 23 before it), per project and
/// category, over the projects of the caller's session. Counts are in items, attachments in
/// bytes (`attachment`) and in items (`attachment_item`).
const USAGE_SQL: &str = "SELECT project, category, outcome, sum(quantity) AS n FROM outcomes \
     WHERE timestamp >= date_trunc('hour', now()) - INTERVAL '23 hours' \
     GROUP BY project, category, outcome ORDER BY project, category";

impl UsageRow {
    /// One row per (project, category) of a result of [`USAGE_SQL`], in its order.
    fn from_table(table: &Table) -> Vec<Self> {
        let mut rows: Vec<Self> = Vec::new();
        for i in 0..table.rows.len() {
            let (project, category) = (table.text(i, "project"), table.text(i, "category"));
            if rows
                .last()
                .is_none_or(|r| r.project != project || r.category != category)
            {
                rows.push(Self {
                    project,
                    category,
                    ..Self::default()
                });
            }
            let row = rows.last_mut().expect("pushed above");
            let n = table.int(i, "n");
            match table.get(i, "outcome").unwrap_or_default() {
                "accepted" => row.accepted += n,
                "scrubbed" => row.scrubbed += n,
                "filtered" => row.filtered += n,
                "rate_limited" => row.rate_limited += n,
                "invalid" => row.invalid += n,
                "too_large" => row.too_large += n,
                "client_discard" => row.client_discard += n,
                _ => {}
            }
        }
        rows
    }

    /// The category as the page names it (attachment bytes say so).
    fn label(&self) -> String {
        match self.category.as_str() {
            "attachment" => "attachment (bytes)".to_owned(),
            other => other.to_owned(),
        }
    }
}

#[derive(Template)]
#[template(path = "projects.html")]
struct ProjectsPage {
    layout: Layout,
    rows: Vec<ProjectRow>,
    usage: Vec<UsageRow>,
    /// Why the usage could not be read, if it could not.
    usage_error: Option<String>,
}

/// `GET /organizations/{org}/projects/`: the organization's projects with their DSNs.
async fn projects_page(
    State(state): State<WebState>,
    axum::Extension(principal): axum::Extension<Arc<Principal>>,
    axum::extract::Path(org): axum::extract::Path<String>,
) -> Result<Response, WebError> {
    let ctx = OrgCtx::new(&state, principal, org).await?;
    let public_url = public_url(&state);
    let rows = ctx
        .projects
        .iter()
        .map(|p| ProjectRow {
            id: p.id,
            name: p.name.clone(),
            dsn: p
                .dsn(&public_url)
                .unwrap_or_else(|| "(no active key)".to_owned()),
        })
        .collect();
    // the page stays useful when the outcomes cannot be read: it says why
    let usage = match ctx.session(&state.node.query).await {
        Ok(session) => session
            .table(USAGE_SQL)
            .await
            .map(|t| UsageRow::from_table(&t)),
        Err(err) => Err(err),
    };
    let (usage, usage_error) = match usage {
        Ok(usage) => (usage, None),
        Err(err) => {
            tracing::warn!(cause = %err, "cannot read the projects' usage");
            (Vec::new(), Some(err.to_string()))
        }
    };
    html(&ProjectsPage {
        layout: ctx.layout("Projects".to_owned(), "projects", ""),
        rows,
        usage,
        usage_error,
    })
}

/// The address SDKs reach this server at, as DSNs show it.
pub(crate) fn public_url(state: &WebState) -> String {
    let server = &state.node.config.server;
    server
        .public_url
        .clone()
        .unwrap_or_else(|| format!("http://{}", server.listen))
}
