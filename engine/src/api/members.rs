//! Members, teams and organization settings, on Sentry's paths:
//! - `GET /api/0/organizations/{org}/members/` (`member:read`); `POST` `{email, orgRole,
//!   teams?}` invites (`member:write`; inviting an owner needs `org:admin`) and answers `201`
//!   with the invite link (shown once).
//! - `GET /api/0/organizations/{org}/members/{id}/`; `PUT` `{orgRole?, disabled?}`
//!   (`member:admin`; making or changing an owner needs `org:admin`); disabling ends the
//!   member's sessions at once.
//! - `DELETE /api/0/organizations/{org}/members/{id}/sessions/` (`member:admin`): ends them.
//! - `POST|DELETE /api/0/organizations/{org}/members/{id}/teams/{team}/` `{teamRole?}`
//!   (`team:write`).
//! - `GET|POST /api/0/organizations/{org}/teams/` `{slug}` (`team:read` / `team:write`).
//! - `POST|DELETE /api/0/projects/{org}/{project}/teams/{team}/` (`team:write`): a team owns
//!   a project or no longer does.
//! - `GET|PUT /api/0/organizations/{org}/` `{openMembership?, require2FA?}` (`org:read` /
//!   `org:write`).

use std::sync::Arc;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use serde::Deserialize;
use serde_json::{Value, json};

use super::auth::{Auth, Caller, ClientInfo, Input, caller_entry};
use super::error::ApiError;
use crate::people::{Client, InviteRecord, Member, OrgRole, OrgSettings, People, Team, TeamRole};
use crate::tenancy::{Projects, Scope};

#[derive(Clone)]
pub(crate) struct MembersState {
    pub(super) auth: Auth,
    pub(super) projects: Arc<Projects>,
    pub(super) public_url: String,
    /// Invites are mailed when `[smtp]` is set.
    pub(super) mailer: Option<Arc<crate::mail::Mailer>>,
}

/// The caller, if it belongs to `org` (the admin token belongs to every organization) and
/// holds `scope`.
async fn caller_in(
    state: &MembersState,
    headers: &HeaderMap,
    org: &str,
    scope: Scope,
) -> Result<Caller, ApiError> {
    let caller = state.auth.caller(headers).await?;
    check_in(&caller, org, scope)?;
    Ok(caller)
}

/// Fails unless `caller` belongs to `org` and holds `scope`.
pub(crate) fn check_in(caller: &Caller, org: &str, scope: Scope) -> Result<(), ApiError> {
    if caller.principal.org.as_deref().is_some_and(|o| o != org) {
        return Err(ApiError::NotFound(format!("no organization {org:?}")));
    }
    caller.principal.require(scope)?;
    Ok(())
}

fn needs_owner(caller: &Caller, what: &str) -> Result<(), ApiError> {
    caller
        .principal
        .require(Scope::OrgAdmin)
        .map_err(|_| ApiError::Forbidden(format!("only an owner (scope org:admin) may {what}")))
}

pub(super) async fn list_members(
    State(state): State<MembersState>,
    Path(org): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Vec<Member>>, ApiError> {
    caller_in(&state, &headers, &org, Scope::MemberRead).await?;
    Ok(Json(state.auth.people.members(&org).await?))
}

pub(super) async fn get_member(
    State(state): State<MembersState>,
    Path((org, id)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Json<Member>, ApiError> {
    caller_in(&state, &headers, &org, Scope::MemberRead).await?;
    let people = &state.auth.people;
    let user = people.user_in(&org, &id).await?;
    Ok(Json(people.member(&user).await?))
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct InviteBody {
    email: String,
    #[serde(default, alias = "role")]
    org_role: Option<String>,
    #[serde(default)]
    teams: Vec<String>,
}

pub(super) async fn invite(
    State(state): State<MembersState>,
    Path(org): Path<String>,
    ClientInfo(client): ClientInfo,
    headers: HeaderMap,
    Json(body): Json<InviteBody>,
) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
    let caller = caller_in(&state, &headers, &org, Scope::MemberWrite).await?;
    let Invited {
        link,
        record,
        mailed,
    } = invite_member(
        &state,
        &caller,
        &client,
        &org,
        &body.email,
        body.org_role.as_deref(),
        body.teams,
    )
    .await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({
            "email": record.email,
            "orgRole": record.role,
            "teams": record.teams,
            "expires": record.expires,
            "inviteLink": link,
            "mailed": matches!(mailed, Some(Ok(()))),
            "mailError": mailed.and_then(|m| m.err()).map(|e| e.to_string()),
        })),
    ))
}

/// An invite just made.
pub(crate) struct Invited {
    /// The invite link: shown once.
    pub(crate) link: String,
    pub(crate) record: InviteRecord,
    /// Whether it was mailed, when SMTP is configured.
    pub(crate) mailed: Option<Result<(), crate::mail::Error>>,
}

/// Invites `email` into `org` with `role` (default member) and mails the link when SMTP is
/// configured. Needs `member:write`, and `org:admin` to invite an owner.
pub(crate) async fn invite_member(
    state: &MembersState,
    caller: &Caller,
    client: &Client,
    org: &str,
    email: &str,
    role: Option<&str>,
    teams: Vec<String>,
) -> Result<Invited, ApiError> {
    check_in(caller, org, Scope::MemberWrite)?;
    let role: OrgRole = role.unwrap_or("member").parse()?;
    if role == OrgRole::Owner {
        needs_owner(caller, "invite an owner")?;
    }
    let people = &state.auth.people;
    let by = caller
        .actor
        .as_ref()
        .map_or_else(|| caller.principal.name.clone(), |a| a.email.clone());
    let (token, record) = people.invite(org, email, role, teams, &by).await?;
    let link = format!("{}/accept/{token}", state.public_url.trim_end_matches('/'));
    // the link is answered either way; the mail is a convenience that can fail
    let mailed = match &state.mailer {
        Some(mailer) => {
            let text = crate::mail::invite_text(org, &by, &link, record.expires);
            let subject = format!("You are invited to {org} on faultline");
            Some(mailer.send(&record.email, &subject, text).await)
        }
        None => None,
    };
    if let Some(Err(err)) = &mailed {
        tracing::warn!(cause = %err, "invite mail not sent");
    }
    people
        .audit
        .record(caller_entry(
            people,
            caller,
            org,
            client,
            "member.invite",
            Some(("email", &record.email)),
            json!({"email": record.email, "role": role, "teams": record.teams}),
        ))
        .await;
    Ok(Invited {
        link,
        record,
        mailed,
    })
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct UpdateBody {
    #[serde(default, alias = "role")]
    org_role: Option<String>,
    #[serde(default)]
    disabled: Option<bool>,
}

pub(super) async fn update_member(
    State(state): State<MembersState>,
    Path((org, id)): Path<(String, String)>,
    ClientInfo(client): ClientInfo,
    headers: HeaderMap,
    Json(body): Json<UpdateBody>,
) -> Result<Json<Member>, ApiError> {
    let caller = caller_in(&state, &headers, &org, Scope::MemberAdmin).await?;
    Ok(Json(
        edit_member(
            &state,
            &caller,
            &client,
            &org,
            &id,
            body.org_role.as_deref(),
            body.disabled,
        )
        .await?,
    ))
}

/// Changes a member's role and/or disables or enables them (which ends their sessions).
/// Needs `member:admin`, and `org:admin` for anything about an owner.
pub(crate) async fn edit_member(
    state: &MembersState,
    caller: &Caller,
    client: &Client,
    org: &str,
    id: &str,
    role: Option<&str>,
    disabled: Option<bool>,
) -> Result<Member, ApiError> {
    check_in(caller, org, Scope::MemberAdmin)?;
    let people = &state.auth.people;
    let mut user = people.user_in(org, id).await?;
    if let Some(role) = role {
        let role: OrgRole = role.parse()?;
        if role == OrgRole::Owner || user.role == OrgRole::Owner {
            needs_owner(caller, "make or change an owner")?;
        }
        if role != user.role {
            let from = user.role;
            user = people.set_role(org, id, role).await?;
            people
                .audit
                .record(caller_entry(
                    people,
                    caller,
                    org,
                    client,
                    "member.edit",
                    Some(("user", id)),
                    json!({"email": user.email, "from": from, "role": role}),
                ))
                .await;
        }
    }
    if let Some(disabled) = disabled {
        if user.role == OrgRole::Owner {
            needs_owner(caller, "disable an owner")?;
        }
        if caller.actor.as_ref().is_some_and(|a| a.user_id == id) && disabled {
            return Err(ApiError::Forbidden(
                "you cannot disable yourself".to_owned(),
            ));
        }
        if disabled != user.disabled {
            user = people.set_disabled(org, id, disabled).await?;
            people
                .audit
                .record(caller_entry(
                    people,
                    caller,
                    org,
                    client,
                    if disabled {
                        "member.disable"
                    } else {
                        "member.enable"
                    },
                    Some(("user", id)),
                    json!({"email": user.email}),
                ))
                .await;
        }
    }
    // their API tokens act with their rights: on this node at once, elsewhere within the
    // tokens' cache time
    state.auth.tokens.forget_owner(id);
    Ok(people.member(&user).await?)
}

pub(super) async fn end_member_sessions(
    State(state): State<MembersState>,
    Path((org, id)): Path<(String, String)>,
    ClientInfo(client): ClientInfo,
    headers: HeaderMap,
) -> Result<Json<serde_json::Value>, ApiError> {
    let caller = caller_in(&state, &headers, &org, Scope::MemberAdmin).await?;
    let ended = end_sessions_of(&state, &caller, &client, &org, &id).await?;
    Ok(Json(json!({"sessionsEnded": ended})))
}

/// Ends every session of a member (`member:admin`); returns how many.
pub(crate) async fn end_sessions_of(
    state: &MembersState,
    caller: &Caller,
    client: &Client,
    org: &str,
    id: &str,
) -> Result<usize, ApiError> {
    check_in(caller, org, Scope::MemberAdmin)?;
    let people = &state.auth.people;
    let user = people.user_in(org, id).await?;
    let ended = people.end_sessions(&user.id, None).await?;
    people
        .audit
        .record(caller_entry(
            people,
            caller,
            org,
            client,
            "session.revoke",
            Some(("user", id)),
            json!({"email": user.email, "sessionsEnded": ended}),
        ))
        .await;
    Ok(ended)
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct TeamRoleBody {
    #[serde(default)]
    team_role: Option<String>,
}

pub(super) async fn add_team_member(
    State(state): State<MembersState>,
    Path((org, id, team)): Path<(String, String, String)>,
    ClientInfo(client): ClientInfo,
    headers: HeaderMap,
    input: Input<TeamRoleBody>,
) -> Result<(StatusCode, Json<Team>), ApiError> {
    let caller = caller_in(&state, &headers, &org, Scope::TeamWrite).await?;
    let updated = join_team(
        &state,
        &caller,
        &client,
        &org,
        &id,
        &team,
        input.value.team_role.as_deref(),
    )
    .await?;
    Ok((StatusCode::CREATED, Json(updated)))
}

/// Adds member `id` to `team` with a team role (default contributor); needs `team:write`.
pub(crate) async fn join_team(
    state: &MembersState,
    caller: &Caller,
    client: &Client,
    org: &str,
    id: &str,
    team: &str,
    role: Option<&str>,
) -> Result<Team, ApiError> {
    check_in(caller, org, Scope::TeamWrite)?;
    let role: TeamRole = role.unwrap_or("contributor").parse()?;
    let people = &state.auth.people;
    let updated = people.add_team_member(org, team, id, role).await?;
    people
        .audit
        .record(caller_entry(
            people,
            caller,
            org,
            client,
            "member.join-team",
            Some(("user", id)),
            json!({"team": team, "teamRole": role}),
        ))
        .await;
    Ok(updated)
}

pub(super) async fn remove_team_member(
    State(state): State<MembersState>,
    Path((org, id, team)): Path<(String, String, String)>,
    ClientInfo(client): ClientInfo,
    headers: HeaderMap,
) -> Result<Json<Team>, ApiError> {
    let caller = caller_in(&state, &headers, &org, Scope::TeamWrite).await?;
    let people = &state.auth.people;
    let updated = people
        .edit_team(&org, &team, |t| t.members.retain(|m| m.user_id != id))
        .await?;
    people
        .audit
        .record(caller_entry(
            people,
            &caller,
            &org,
            &client,
            "member.leave-team",
            Some(("user", &id)),
            json!({"team": team}),
        ))
        .await;
    Ok(Json(updated))
}

/// A team in Sentry's shape (`id`, `slug`, `name`, `dateCreated`, `memberCount`, ...), with
/// faultline's own fields (`org`, `projects` as ids, `members`, `created`) kept beside them.
pub(super) fn team_json(team: &Team, caller: &Caller) -> Value {
    let mut value = serde_json::to_value(team).unwrap_or_else(|_| json!({}));
    let is_member = caller
        .actor
        .as_ref()
        .is_some_and(|a| team.members.iter().any(|m| m.user_id == a.user_id));
    if let Some(object) = value.as_object_mut() {
        for (key, field) in [
            ("id", json!(team.slug)),
            ("slug", json!(team.slug)),
            ("name", json!(team.slug)),
            (
                "dateCreated",
                json!(
                    team.created
                        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
                ),
            ),
            ("isMember", json!(is_member)),
            ("hasAccess", json!(true)),
            ("isPending", json!(false)),
            ("memberCount", json!(team.members.len())),
            (
                "avatar",
                json!({"avatarType": "letter_avatar", "avatarUuid": null}),
            ),
        ] {
            object.insert(key.to_owned(), field);
        }
    }
    value
}

/// `GET /api/0/organizations/{org}/teams/` (scope `team:read`).
pub(super) async fn list_teams(
    State(state): State<MembersState>,
    Path(org): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Vec<Value>>, ApiError> {
    let caller = caller_in(&state, &headers, &org, Scope::TeamRead).await?;
    let teams = state.auth.people.teams(&org).await?;
    Ok(Json(teams.iter().map(|t| team_json(t, &caller)).collect()))
}

/// `GET /api/0/teams/{org}/{team}/projects/` (scope `project:read`): the team's projects the
/// caller may read, in the shape of the organization's project list.
pub(super) async fn team_projects(
    State(state): State<MembersState>,
    Path((org, team)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Json<Vec<Value>>, ApiError> {
    let caller = caller_in(&state, &headers, &org, Scope::ProjectRead).await?;
    let team = state.auth.people.team(&org, &team).await?;
    let projects = state.projects.readable(&caller.principal).await?;
    let teams = [team];
    Ok(Json(
        projects
            .iter()
            .filter(|p| p.org == org && teams[0].projects.contains(&p.id))
            .map(|p| super::sentry::project_json(p, &teams))
            .collect(),
    ))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct TeamBody {
    slug: String,
}

pub(super) async fn create_team(
    State(state): State<MembersState>,
    Path(org): Path<String>,
    ClientInfo(client): ClientInfo,
    headers: HeaderMap,
    Json(body): Json<TeamBody>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let caller = caller_in(&state, &headers, &org, Scope::TeamWrite).await?;
    let team = new_team(&state, &caller, &client, &org, &body.slug).await?;
    Ok((StatusCode::CREATED, Json(team_json(&team, &caller))))
}

/// Creates a team (`team:write`).
pub(crate) async fn new_team(
    state: &MembersState,
    caller: &Caller,
    client: &Client,
    org: &str,
    slug: &str,
) -> Result<Team, ApiError> {
    check_in(caller, org, Scope::TeamWrite)?;
    let people = &state.auth.people;
    let team = people.create_team(org, slug).await?;
    people
        .audit
        .record(caller_entry(
            people,
            caller,
            org,
            client,
            "team.create",
            Some(("team", &team.slug)),
            json!({}),
        ))
        .await;
    Ok(team)
}

async fn project_team(
    state: &MembersState,
    headers: &HeaderMap,
    client: &Client,
    path: (String, String, String),
    add: bool,
) -> Result<Team, ApiError> {
    let caller = caller_in(state, headers, &path.0, Scope::TeamWrite).await?;
    team_project(state, &caller, client, path, add).await
}

/// Makes `team` own `project` (or no longer own it); needs `team:write` and access to the
/// project.
pub(crate) async fn team_project(
    state: &MembersState,
    caller: &Caller,
    client: &Client,
    (org, project, team): (String, String, String),
    add: bool,
) -> Result<Team, ApiError> {
    check_in(caller, &org, Scope::TeamWrite)?;
    let ids = state
        .projects
        .ids_by_name(&org, std::slice::from_ref(&project))
        .await?;
    if !ids.iter().all(|id| caller.principal.covers(&org, *id)) {
        return Err(ApiError::Forbidden(format!(
            "you do not have access to project {project:?}"
        )));
    }
    let people = &state.auth.people;
    let updated = people
        .edit_team(&org, &team, |t| {
            if add {
                t.projects.extend(&ids);
            } else {
                t.projects.retain(|p| !ids.contains(p));
            }
        })
        .await?;
    people
        .audit
        .record(caller_entry(
            people,
            caller,
            &org,
            client,
            if add {
                "project-team.add"
            } else {
                "project-team.remove"
            },
            Some(("team", &team)),
            json!({"project": project}),
        ))
        .await;
    Ok(updated)
}

pub(super) async fn add_project_team(
    State(state): State<MembersState>,
    Path(path): Path<(String, String, String)>,
    ClientInfo(client): ClientInfo,
    headers: HeaderMap,
) -> Result<(StatusCode, Json<Team>), ApiError> {
    let team = project_team(&state, &headers, &client, path, true).await?;
    Ok((StatusCode::CREATED, Json(team)))
}

pub(super) async fn remove_project_team(
    State(state): State<MembersState>,
    Path(path): Path<(String, String, String)>,
    ClientInfo(client): ClientInfo,
    headers: HeaderMap,
) -> Result<Json<Team>, ApiError> {
    Ok(Json(
        project_team(&state, &headers, &client, path, false).await?,
    ))
}

pub(super) async fn get_org(
    State(state): State<MembersState>,
    Path(org): Path<String>,
    headers: HeaderMap,
) -> Result<Json<serde_json::Value>, ApiError> {
    caller_in(&state, &headers, &org, Scope::OrgRead).await?;
    let settings = state.auth.people.org_settings(&org).await?;
    Ok(Json(org_json(
        &org,
        &settings,
        &state.auth.people,
        &state.public_url,
    )))
}

fn org_json(
    org: &str,
    settings: &OrgSettings,
    people: &People,
    public_url: &str,
) -> serde_json::Value {
    json!({
        "id": org,
        "slug": org,
        "links": super::sentry::org_links(org, public_url),
        "name": org,
        "openMembership": settings.open_membership,
        // what holds, whether the organization or the server's `auth.require_mfa` requires it
        "require2FA": people.requires_mfa(settings),
    })
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub(super) struct OrgBody {
    #[serde(default)]
    open_membership: Option<bool>,
    #[serde(default, rename = "require2FA")]
    require_2fa: Option<bool>,
}

pub(super) async fn update_org(
    State(state): State<MembersState>,
    Path(org): Path<String>,
    ClientInfo(client): ClientInfo,
    headers: HeaderMap,
    Json(body): Json<OrgBody>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let caller = caller_in(&state, &headers, &org, Scope::OrgWrite).await?;
    let people = &state.auth.people;
    let mut settings = people.org_settings(&org).await?;
    if let Some(open) = body.open_membership {
        settings.open_membership = open;
    }
    if let Some(require) = body.require_2fa {
        settings.require_mfa = require;
    }
    people.set_org_settings(&org, &settings).await?;
    people
        .audit
        .record(caller_entry(
            people,
            &caller,
            &org,
            &client,
            "org.edit",
            Some(("org", &org)),
            json!({"openMembership": settings.open_membership, "require2FA": settings.require_mfa}),
        ))
        .await;
    Ok(Json(org_json(
        &org,
        &settings,
        &state.auth.people,
        &state.public_url,
    )))
}
