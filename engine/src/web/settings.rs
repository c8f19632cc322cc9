//! Organization settings: members (invite, role, disable/enable, end sessions), teams (create,
//! add a member, add a project) and the audit log.
//!
//! The forms call the same functions as the JSON API's member and team endpoints
//! ([`crate::api::members`]), so the same scopes decide who may act and the same audit events
//! are written; the page shows the actions a caller's scopes allow. The audit log page reads
//! the `audit_log` SQL table, newest first, and needs `org:admin` like the table does.

use std::collections::HashMap;
use std::sync::Arc;

use askama::Template;
use axum::Extension;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::response::{IntoResponse, Redirect, Response};

use super::{Layout, OrgCtx, Table, WebError, WebState, encode_path, html, stream};
use crate::api::members::{
    Invited, check_in, edit_member, end_sessions_of, invite_member, join_team, new_team,
    team_project,
};
use crate::api::{ApiError, Caller, ClientInfo, members_state};
use crate::people::{Actor, OrgRole};
use crate::query::{AuditView, ProjectFilter};
use crate::tenancy::{Principal, Scope};

/// Audit rows per page.
const AUDIT_PAGE: usize = 50;
/// Pages of the audit log offered (a bound on the offset).
const AUDIT_PAGES: usize = 1_000;

fn caller_of(principal: Arc<Principal>, actor: Option<Extension<Actor>>) -> Caller {
    Caller {
        principal,
        actor: actor.map(|Extension(a)| a),
    }
}

/// The page's layout: the organization's header when the caller may read events there.
async fn layout_of(state: &WebState, caller: &Caller, org: &str, title: &str) -> Layout {
    match OrgCtx::new(state, Arc::clone(&caller.principal), org.to_owned()).await {
        Ok(ctx) => ctx.layout(title.to_owned(), "settings", ""),
        Err(_) => {
            let mut layout = Layout::bare(title);
            layout.user = caller.principal.name.clone();
            layout
        }
    }
}

struct MemberRow {
    id: String,
    name: String,
    email: String,
    role: String,
    status: &'static str,
    disabled: bool,
    mfa: bool,
    teams: String,
    is_self: bool,
}

struct TeamRow {
    slug: String,
    members: Vec<String>,
    projects: Vec<String>,
}

#[derive(Template)]
#[template(path = "settings.html")]
struct SettingsPage {
    layout: Layout,
    members: Vec<MemberRow>,
    teams: Vec<TeamRow>,
    /// The organization's projects the caller may read, for "add project".
    projects: Vec<String>,
    roles: Vec<&'static str>,
    can_invite: bool,
    can_admin: bool,
    can_teams: bool,
    can_audit: bool,
    notice: Option<String>,
    error: Option<String>,
    /// An invite link just created (shown once).
    invite_link: Option<String>,
}

#[derive(Default)]
struct Extra {
    notice: Option<String>,
    error: Option<String>,
    invite_link: Option<String>,
}

async fn render(
    state: &WebState,
    caller: &Caller,
    org: &str,
    extra: Extra,
) -> Result<Response, WebError> {
    check_in(caller, org, Scope::MemberRead)?;
    let people = &state.node.people;
    let members = people.members(org).await.map_err(ApiError::from)?;
    let self_id = caller.actor.as_ref().map(|a| a.user_id.as_str());
    let emails: HashMap<&str, &str> = members
        .iter()
        .map(|m| (m.id.as_str(), m.email.as_str()))
        .collect();
    let can = |scope| caller.principal.require(scope).is_ok();
    let teams = if can(Scope::TeamRead) {
        let readable = state
            .node
            .projects
            .readable(&caller.principal)
            .await
            .map_err(ApiError::from)?;
        let names: HashMap<u64, &str> = readable
            .iter()
            .filter(|p| p.org == org)
            .map(|p| (p.id, p.name.as_str()))
            .collect();
        people
            .teams(org)
            .await
            .map_err(ApiError::from)?
            .into_iter()
            .map(|t| TeamRow {
                slug: t.slug,
                members: t
                    .members
                    .iter()
                    .map(|m| {
                        let who = emails.get(m.user_id.as_str()).copied().unwrap_or("?");
                        format!("{who} ({})", m.role)
                    })
                    .collect(),
                projects: t
                    .projects
                    .iter()
                    .map(|id| {
                        names
                            .get(id)
                            .map_or_else(|| format!("#{id}"), |n| (*n).to_owned())
                    })
                    .collect(),
            })
            .collect()
    } else {
        Vec::new()
    };
    let rows = members
        .iter()
        .map(|m| MemberRow {
            id: m.id.clone(),
            name: m.name.clone(),
            email: m.email.clone(),
            role: m.org_role.to_string(),
            status: if m.disabled {
                "disabled"
            } else if m.has_password {
                "active"
            } else {
                "no password yet"
            },
            disabled: m.disabled,
            mfa: m.mfa,
            teams: m.teams.join(", "),
            is_self: Some(m.id.as_str()) == self_id,
        })
        .collect();
    let layout = layout_of(state, caller, org, "Organization settings").await;
    let projects = layout.projects.clone();
    html(&SettingsPage {
        layout,
        members: rows,
        teams,
        projects,
        roles: [
            OrgRole::Member,
            OrgRole::Admin,
            OrgRole::Manager,
            OrgRole::Owner,
        ]
        .iter()
        .map(|r| r.as_str())
        .collect(),
        can_invite: can(Scope::MemberWrite),
        can_admin: can(Scope::MemberAdmin),
        can_teams: can(Scope::TeamWrite),
        can_audit: can(Scope::OrgAdmin),
        notice: extra.notice,
        error: extra.error,
        invite_link: extra.invite_link,
    })
}

#[derive(Debug, serde::Deserialize)]
pub(crate) struct DoneParam {
    done: Option<String>,
}

/// `GET /organizations/{org}/settings/`: members and teams (`member:read`).
pub(crate) async fn page(
    State(state): State<WebState>,
    Extension(principal): Extension<Arc<Principal>>,
    actor: Option<Extension<Actor>>,
    Path(org): Path<String>,
    Query(params): Query<DoneParam>,
) -> Result<Response, WebError> {
    let caller = caller_of(principal, actor);
    let notice = params.done.as_deref().map(|done| {
        match done {
            "role" => "The role was changed.",
            "disabled" => "The member was disabled; their sessions ended.",
            "enabled" => "The member was enabled.",
            "sessions" => "The member's sessions were ended.",
            "team" => "The team was created.",
            "team-member" => "The member joined the team.",
            "team-project" => "The team now owns the project.",
            _ => "Done.",
        }
        .to_owned()
    });
    render(
        &state,
        &caller,
        &org,
        Extra {
            notice,
            ..Extra::default()
        },
    )
    .await
}

/// What a form post ends with: `303` back to the page saying what was done, or the page
/// again with the API's message under the API's status.
async fn finish(
    state: &WebState,
    caller: &Caller,
    org: &str,
    result: Result<&str, ApiError>,
) -> Result<Response, WebError> {
    match result {
        Ok(done) => Ok(Redirect::to(&format!(
            "/organizations/{}/settings/?done={done}",
            encode_path(org)
        ))
        .into_response()),
        Err(err) => refused(state, caller, org, err).await,
    }
}

async fn refused(
    state: &WebState,
    caller: &Caller,
    org: &str,
    err: ApiError,
) -> Result<Response, WebError> {
    let status = err.status();
    // a caller who may not read the page, or another organization, gets the error page
    if !status.is_client_error() || check_in(caller, org, Scope::MemberRead).is_err() {
        return Err(err.into());
    }
    let mut response = render(
        state,
        caller,
        org,
        Extra {
            error: Some(err.to_string()),
            ..Extra::default()
        },
    )
    .await?;
    *response.status_mut() = status;
    Ok(response)
}

fn field<'a>(fields: &'a [(String, String)], name: &str) -> &'a str {
    fields
        .iter()
        .find(|(k, _)| k == name)
        .map_or("", |(_, v)| v.as_str())
}

/// `POST /organizations/{org}/settings/invite/` (`email`, `role`): shows the invite link once.
pub(crate) async fn invite(
    State(state): State<WebState>,
    Extension(principal): Extension<Arc<Principal>>,
    actor: Option<Extension<Actor>>,
    ClientInfo(client): ClientInfo,
    Path(org): Path<String>,
    body: Bytes,
) -> Result<Response, WebError> {
    let caller = caller_of(principal, actor);
    let fields = stream::form(&body);
    let role = Some(field(&fields, "role")).filter(|r| !r.is_empty());
    let members = members_state(&state.node);
    match invite_member(
        &members,
        &caller,
        &client,
        &org,
        field(&fields, "email"),
        role,
        Vec::new(),
    )
    .await
    {
        Ok(Invited {
            link,
            record,
            mailed,
        }) => {
            let mail = match mailed {
                Some(Ok(())) => "The link was mailed to them; here it is too".to_owned(),
                Some(Err(err)) => format!("Mailing it failed ({err}); send them this link"),
                None => "Send them this link".to_owned(),
            };
            render(
                &state,
                &caller,
                &org,
                Extra {
                    notice: Some(format!(
                        "{} is invited as {}. {mail} (shown only now; it expires {}):",
                        record.email,
                        record.role,
                        record.expires.format("%Y-%m-%d %H:%M UTC")
                    )),
                    invite_link: Some(link),
                    ..Extra::default()
                },
            )
            .await
        }
        Err(err) => refused(&state, &caller, &org, err).await,
    }
}

/// `POST /organizations/{org}/settings/members/{id}/` (`action` = `role` with `role`,
/// `disable`, `enable` or `end-sessions`).
pub(crate) async fn member(
    State(state): State<WebState>,
    Extension(principal): Extension<Arc<Principal>>,
    actor: Option<Extension<Actor>>,
    ClientInfo(client): ClientInfo,
    Path((org, id)): Path<(String, String)>,
    body: Bytes,
) -> Result<Response, WebError> {
    let caller = caller_of(principal, actor);
    let fields = stream::form(&body);
    let members = members_state(&state.node);
    let result = match field(&fields, "action") {
        "role" => edit_member(
            &members,
            &caller,
            &client,
            &org,
            &id,
            Some(field(&fields, "role")),
            None,
        )
        .await
        .map(|_| "role"),
        "disable" => edit_member(&members, &caller, &client, &org, &id, None, Some(true))
            .await
            .map(|_| "disabled"),
        "enable" => edit_member(&members, &caller, &client, &org, &id, None, Some(false))
            .await
            .map(|_| "enabled"),
        "end-sessions" => end_sessions_of(&members, &caller, &client, &org, &id)
            .await
            .map(|_| "sessions"),
        other => Err(ApiError::BadRequest(format!(
            "action {other:?} is not one of role, disable, enable, end-sessions"
        ))),
    };
    finish(&state, &caller, &org, result).await
}

/// `POST /organizations/{org}/settings/teams/` (`slug`): creates a team.
pub(crate) async fn team(
    State(state): State<WebState>,
    Extension(principal): Extension<Arc<Principal>>,
    actor: Option<Extension<Actor>>,
    ClientInfo(client): ClientInfo,
    Path(org): Path<String>,
    body: Bytes,
) -> Result<Response, WebError> {
    let caller = caller_of(principal, actor);
    let fields = stream::form(&body);
    let members = members_state(&state.node);
    let result = new_team(&members, &caller, &client, &org, field(&fields, "slug"))
        .await
        .map(|_| "team");
    finish(&state, &caller, &org, result).await
}

/// `POST /organizations/{org}/settings/teams/{team}/` (`member` = a member id, or `project` =
/// a project name): adds a member (as contributor) or a project to the team.
pub(crate) async fn team_change(
    State(state): State<WebState>,
    Extension(principal): Extension<Arc<Principal>>,
    actor: Option<Extension<Actor>>,
    ClientInfo(client): ClientInfo,
    Path((org, slug)): Path<(String, String)>,
    body: Bytes,
) -> Result<Response, WebError> {
    let caller = caller_of(principal, actor);
    let fields = stream::form(&body);
    let members = members_state(&state.node);
    let (member, project) = (field(&fields, "member"), field(&fields, "project"));
    let result = if !member.is_empty() {
        join_team(&members, &caller, &client, &org, member, &slug, None)
            .await
            .map(|_| "team-member")
    } else if !project.is_empty() {
        team_project(
            &members,
            &caller,
            &client,
            (org.clone(), project.to_owned(), slug),
            true,
        )
        .await
        .map(|_| "team-project")
    } else {
        Err(ApiError::BadRequest(
            "choose a member or a project to add to the team".to_owned(),
        ))
    };
    finish(&state, &caller, &org, result).await
}

struct AuditRow {
    when: super::When,
    actor: String,
    event: String,
    target: String,
    ip: String,
}

#[derive(Template)]
#[template(path = "audit.html")]
struct AuditPage {
    layout: Layout,
    rows: Vec<AuditRow>,
    page_number: usize,
    prev_href: String,
    next_href: String,
}

#[derive(Debug, serde::Deserialize)]
pub(crate) struct AuditParams {
    page: Option<usize>,
}

/// `GET /organizations/{org}/settings/audit/?page=N`: the audit log, newest first, 50 a page,
/// read from the `audit_log` table (`org:admin`).
pub(crate) async fn audit(
    State(state): State<WebState>,
    Extension(principal): Extension<Arc<Principal>>,
    actor: Option<Extension<Actor>>,
    Path(org): Path<String>,
    Query(params): Query<AuditParams>,
) -> Result<Response, WebError> {
    let caller = caller_of(principal, actor);
    check_in(&caller, &org, Scope::OrgAdmin)?;
    let page = params.page.unwrap_or(1);
    if !(1..=AUDIT_PAGES).contains(&page) {
        return Err(WebError::BadRequest(format!(
            "page {page} is not between 1 and {AUDIT_PAGES}"
        )));
    }
    let query = &state.node.query;
    let view = match AuditView::for_principal(&caller.principal) {
        // the admin token reads every organization's log; the page shows this one's
        AuditView::All => AuditView::Org(org.clone()),
        view => view,
    };
    let ctx = query
        .session_with(&ProjectFilter::Only(Arc::default()), view)
        .await?;
    let sql = format!(
        "SELECT ts, actor_label, actor_type, event, target_type, target_id, ip FROM audit_log \
         ORDER BY ts DESC LIMIT {} OFFSET {}",
        AUDIT_PAGE + 1,
        (page - 1) * AUDIT_PAGE
    );
    let plan = query.plan(&ctx, &sql).await?;
    let output = query
        .execute(Some(&caller.principal.token_id), &ctx, plan)
        .await?;
    let table = Table::from_output(&output, AUDIT_PAGE + 1)?;
    let now = chrono::Utc::now();
    let rows = (0..table.rows.len().min(AUDIT_PAGE))
        .map(|i| AuditRow {
            when: when_of(&table.text(i, "ts"), now),
            actor: match table.get(i, "actor_label") {
                Some(label) => label.to_owned(),
                None => table.text(i, "actor_type"),
            },
            event: table.text(i, "event"),
            target: match (table.get(i, "target_type"), table.get(i, "target_id")) {
                (Some(t), Some(id)) => format!("{t} {id}"),
                _ => String::new(),
            },
            ip: table.text(i, "ip"),
        })
        .collect();
    let base = format!("/organizations/{}/settings/audit/", encode_path(&org));
    let prev_href = if page > 1 {
        format!("{base}?page={}", page - 1)
    } else {
        String::new()
    };
    let next_href = if table.rows.len() > AUDIT_PAGE && page < AUDIT_PAGES {
        format!("{base}?page={}", page + 1)
    } else {
        String::new()
    };
    html(&AuditPage {
        layout: layout_of(&state, &caller, &org, "Audit log").await,
        rows,
        page_number: page,
        prev_href,
        next_href,
    })
}

/// A timestamp cell (`2026-01-02T03:04:05.123456Z` or with a space) as pages show times.
fn when_of(text: &str, now: chrono::DateTime<chrono::Utc>) -> super::When {
    let parsed = chrono::DateTime::parse_from_rfc3339(text)
        .or_else(|_| chrono::DateTime::parse_from_rfc3339(&text.replacen(' ', "T", 1)))
        .map(|t| t.timestamp_millis())
        .unwrap_or_else(|_| now.timestamp_millis());
    super::When::from_millis(parsed, now)
}
