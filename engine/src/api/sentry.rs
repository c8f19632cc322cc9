//! The part of Sentry's web API that `sentry-cli` and other tools built for Sentry call first:
//! who the token is (`GET /api/0/`, `/api/0/auth/`), organizations, their projects, and
//! releases with their deploys (one project's details are in `api/projects.rs`). Field names and types are Sentry's, since clients decode them strictly.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::{Value, json};

use super::auth::Caller;
use super::error::ApiError;
use super::members::check_in;
use super::query::QueryState;
use crate::releases::{self, Deploy, Release};
use crate::tenancy::{DEFAULT_ORG, Project, Scope};

/// Sentry's date format: RFC 3339 with milliseconds and `Z`.
fn date(t: &DateTime<Utc>) -> String {
    t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// The caller's organization: its own, or for the admin token the default one.
fn org_of(caller: &Caller) -> String {
    caller
        .principal
        .org
        .clone()
        .unwrap_or_else(|| DEFAULT_ORG.to_owned())
}

/// Sentry's `links` of an organization: absolute URLs (clients such as the MCP server check
/// that they are URLs).
pub(super) fn org_links(org: &str, public_url: &str) -> Value {
    let base = public_url.trim_end_matches('/');
    json!({"organizationUrl": format!("{base}/organizations/{org}/"), "regionUrl": base})
}

fn org_json(org: &str, public_url: &str) -> Value {
    json!({
        "id": org,
        "slug": org,
        "name": org,
        "dateCreated": "1970-01-01T00:00:00.000Z",
        "isEarlyAdopter": false,
        "require2FA": false,
        "requireEmailVerification": false,
        "features": [],
        "status": {"id": "active", "name": "active"},
        "avatar": {"avatarType": "letter_avatar", "avatarUuid": null},
        "links": org_links(org, public_url),
    })
}

/// A project in Sentry's shape; `team` and `teams` are the `teams` owning it.
pub(super) fn project_json(p: &Project, teams: &[crate::people::Team]) -> Value {
    let owners: Vec<Value> = teams
        .iter()
        .filter(|t| t.org == p.org && t.projects.contains(&p.id))
        .map(|t| json!({"id": t.slug, "slug": t.slug, "name": t.slug}))
        .collect();
    json!({
        "team": owners.first(),
        "teams": owners,
        "isBookmarked": false,
        "id": p.id.to_string(),
        "slug": p.name,
        "name": p.name,
        "platform": null,
        "dateCreated": "1970-01-01T00:00:00.000Z",
        "isMember": true,
        "hasAccess": true,
        "status": "active",
        "environments": [],
        "features": [],
        "organization": {"id": p.org, "slug": p.org, "name": p.org},
    })
}

/// `GET /api/0/`: the token's scopes and, for a person, who they are. Without a token,
/// `auth` and `user` are null (as Sentry answers).
pub(super) async fn root(
    State(state): State<QueryState>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let caller = match state.auth.caller(&headers).await {
        Ok(caller) => caller,
        Err(ApiError::MissingToken) => {
            return Ok(Json(json!({"version": "0", "auth": null, "user": null})));
        }
        Err(err) => return Err(err),
    };
    let scopes: Vec<&str> = caller.principal.scopes.iter().map(|s| s.as_str()).collect();
    Ok(Json(json!({
        "version": "0",
        "auth": {"scopes": scopes},
        "user": user_json(&state, &caller).await,
    })))
}

/// The person behind the caller: the session's, or the owner of a person's API token; null
/// for a token of no person (or whose owner is gone).
async fn user_json(state: &QueryState, caller: &Caller) -> Value {
    if let Some(a) = &caller.actor {
        return json!({"id": a.user_id, "name": a.name, "email": a.email, "username": a.email});
    }
    let Some(owner) = &caller.principal.owner else {
        return Value::Null;
    };
    match state.auth.people.user(owner).await {
        Ok(u) => json!({"id": u.id, "name": u.name, "email": u.email, "username": u.email}),
        Err(_) => Value::Null,
    }
}

/// `GET /api/0/auth/`: the person behind the session or the person's API token; a token of no
/// person answers with its own id and name and no email.
pub(super) async fn whoami(
    State(state): State<QueryState>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let caller = state.auth.caller(&headers).await?;
    Ok(Json(match user_json(&state, &caller).await {
        Value::Null => json!({
            "id": caller.principal.token_id,
            "name": caller.principal.name,
            "email": null,
        }),
        person => person,
    }))
}

/// `GET /api/0/organizations/`: the token's organization.
pub(super) async fn organizations(
    State(state): State<QueryState>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let caller = state.auth.caller(&headers).await?;
    caller.principal.require(Scope::OrgRead)?;
    Ok(Json(json!([org_json(&org_of(&caller), &state.public_url)])))
}

/// The projects of `org` the caller may read.
async fn projects_of(
    state: &QueryState,
    caller: &Caller,
    org: &str,
) -> Result<Vec<std::sync::Arc<Project>>, ApiError> {
    Ok(state
        .projects
        .readable(&caller.principal)
        .await?
        .into_iter()
        .filter(|p| p.org == org)
        .collect())
}

/// `GET /api/0/organizations/{org}/projects/`.
pub(super) async fn organization_projects(
    State(state): State<QueryState>,
    Path(org): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let caller = state.auth.caller(&headers).await?;
    check_in(&caller, &org, Scope::ProjectRead)?;
    let projects = projects_of(&state, &caller, &org).await?;
    let teams = state.auth.people.teams(&org).await?;
    Ok(Json(Value::Array(
        projects.iter().map(|p| project_json(p, &teams)).collect(),
    )))
}

fn release_json(release: &Release, projects: &[std::sync::Arc<Project>]) -> Value {
    let last_deploy = release.deploys.last().map(deploy_json);
    json!({
        "id": release.version,
        "version": release.version,
        "shortVersion": release.version,
        "ref": release.reference,
        "url": release.url,
        "status": "open",
        "dateCreated": date(&release.date_created),
        "dateReleased": release.date_released.as_ref().map(date),
        "dateStarted": null,
        "data": {},
        "newGroups": 0,
        "owner": null,
        "commitCount": 0,
        "lastCommit": null,
        "deployCount": release.deploys.len(),
        "lastDeploy": last_deploy,
        "authors": [],
        "firstEvent": null,
        "lastEvent": null,
        "projects": release.projects.iter().map(|name| {
            let id = projects.iter().find(|p| p.name == *name).map(|p| p.id.to_string());
            json!({"id": id, "slug": name, "name": name, "platform": null, "platforms": [],
                   "newGroups": 0, "hasHealthData": false})
        }).collect::<Vec<_>>(),
    })
}

fn deploy_json(deploy: &Deploy) -> Value {
    json!({
        "id": deploy.id,
        "environment": deploy.environment,
        "name": deploy.name,
        "url": deploy.url,
        "dateStarted": deploy.date_started.as_ref().map(date),
        "dateFinished": date(&deploy.date_finished),
    })
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct ReleaseBody {
    version: Option<String>,
    #[serde(default)]
    projects: Vec<String>,
    url: Option<String>,
    #[serde(rename = "ref")]
    reference: Option<String>,
    date_released: Option<DateTime<Utc>>,
}

/// The names in `wanted` as projects of `org` the caller may use, or the error naming the first
/// one it may not.
pub(super) async fn checked_projects(
    state: &QueryState,
    caller: &Caller,
    org: &str,
    wanted: &[String],
) -> Result<(Vec<String>, Vec<std::sync::Arc<Project>>), ApiError> {
    let projects = projects_of(state, caller, org).await?;
    for name in wanted {
        if !projects.iter().any(|p| p.name == *name) {
            return Err(releases::Error::UnknownProject { name: name.clone() }.into());
        }
    }
    Ok((wanted.to_vec(), projects))
}

fn body<T: serde::de::DeserializeOwned>(bytes: &[u8], expected: &str) -> Result<T, ApiError> {
    serde_json::from_slice(bytes)
        .map_err(|e| ApiError::BadRequest(format!("invalid JSON body (expected {expected}): {e}")))
}

/// `POST /api/0/organizations/{org}/releases/` with `{"version", "projects": [...]}`: creates
/// the release (201), or adds the projects to an existing one (208, as Sentry answers).
pub(super) async fn create_release(
    State(state): State<QueryState>,
    Path(org): Path<String>,
    headers: HeaderMap,
    bytes: axum::body::Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let caller = state.auth.caller(&headers).await?;
    check_in(&caller, &org, Scope::ProjectReleases)?;
    let body: ReleaseBody = body(&bytes, r#"{"version": "...", "projects": ["..."]}"#)?;
    let version = body
        .version
        .ok_or_else(|| ApiError::BadRequest("version: a release needs a version".to_owned()))?;
    let (names, projects) = checked_projects(&state, &caller, &org, &body.projects).await?;
    let (release, created) = releases::create(
        state.query.store(),
        &org,
        &version,
        releases::Change {
            projects: names,
            date_released: body.date_released,
            url: body.url,
            reference: body.reference,
        },
    )
    .await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::ALREADY_REPORTED
    };
    Ok((status, Json(release_json(&release, &projects))))
}

/// `POST /api/0/projects/{org}/{project}/releases/`: the same for one project.
pub(super) async fn create_project_release(
    State(state): State<QueryState>,
    Path((org, project)): Path<(String, String)>,
    headers: HeaderMap,
    bytes: axum::body::Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let mut value: Value = body(&bytes, r#"{"version": "..."}"#)?;
    if let Some(object) = value.as_object_mut() {
        object.insert("projects".to_owned(), json!([project]));
    }
    let bytes = axum::body::Bytes::from(serde_json::to_vec(&value).unwrap_or_default());
    create_release(State(state), Path(org), headers, bytes).await
}

/// `GET /api/0/organizations/{org}/releases/`: newest first; releases of projects the caller
/// may not read are left out.
pub(super) async fn list_releases(
    State(state): State<QueryState>,
    Path(org): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let caller = state.auth.caller(&headers).await?;
    check_in(&caller, &org, Scope::ProjectRead)?;
    let projects = projects_of(&state, &caller, &org).await?;
    let list = releases::list(state.query.store(), &org).await?;
    Ok(Json(Value::Array(
        list.iter()
            .filter(|r| {
                r.projects
                    .iter()
                    .any(|n| projects.iter().any(|p| p.name == *n))
            })
            .map(|r| release_json(r, &projects))
            .collect(),
    )))
}

/// `GET /api/0/projects/{org}/{project}/releases/`: the project's releases, newest first.
pub(super) async fn list_project_releases(
    State(state): State<QueryState>,
    Path((org, project)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let caller = state.auth.caller(&headers).await?;
    check_in(&caller, &org, Scope::ProjectRead)?;
    let projects = projects_of(&state, &caller, &org).await?;
    if !projects.iter().any(|p| p.name == project) {
        return Err(ApiError::NotFound(format!(
            "no project {project:?} in {org:?}"
        )));
    }
    let list = releases::list(state.query.store(), &org).await?;
    Ok(Json(Value::Array(
        list.iter()
            .filter(|r| r.projects.contains(&project))
            .map(|r| release_json(r, &projects))
            .collect(),
    )))
}

/// The release `version` of `org`, if the caller may read one of its projects.
async fn readable_release(
    state: &QueryState,
    caller: &Caller,
    org: &str,
    version: &str,
) -> Result<(Release, Vec<std::sync::Arc<Project>>), ApiError> {
    let projects = projects_of(state, caller, org).await?;
    releases::get(state.query.store(), org, version)
        .await?
        .filter(|r| {
            r.projects
                .iter()
                .any(|n| projects.iter().any(|p| p.name == *n))
        })
        .map(|r| (r, projects))
        .ok_or_else(|| {
            releases::Error::Unknown {
                version: version.to_owned(),
            }
            .into()
        })
}

/// `GET /api/0/organizations/{org}/releases/{version}/`.
pub(super) async fn get_release(
    State(state): State<QueryState>,
    Path((org, version)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let caller = state.auth.caller(&headers).await?;
    check_in(&caller, &org, Scope::ProjectRead)?;
    let (release, projects) = readable_release(&state, &caller, &org, &version).await?;
    Ok(Json(release_json(&release, &projects)))
}

/// `PUT /api/0/organizations/{org}/releases/{version}/`: `dateReleased` (finalize), `url`,
/// `ref`, `projects` (added).
pub(super) async fn update_release(
    State(state): State<QueryState>,
    Path((org, version)): Path<(String, String)>,
    headers: HeaderMap,
    bytes: axum::body::Bytes,
) -> Result<Json<Value>, ApiError> {
    let caller = state.auth.caller(&headers).await?;
    check_in(&caller, &org, Scope::ProjectReleases)?;
    readable_release(&state, &caller, &org, &version).await?;
    let body: ReleaseBody = body(&bytes, r#"{"dateReleased": "<RFC 3339>"}"#)?;
    let (names, projects) = checked_projects(&state, &caller, &org, &body.projects).await?;
    let release = releases::update(
        state.query.store(),
        &org,
        &version,
        releases::Change {
            projects: names,
            date_released: body.date_released,
            url: body.url,
            reference: body.reference,
        },
    )
    .await?;
    Ok(Json(release_json(&release, &projects)))
}

/// `DELETE /api/0/organizations/{org}/releases/{version}/`: 204.
pub(super) async fn delete_release(
    State(state): State<QueryState>,
    Path((org, version)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<StatusCode, ApiError> {
    let caller = state.auth.caller(&headers).await?;
    check_in(&caller, &org, Scope::ProjectReleases)?;
    readable_release(&state, &caller, &org, &version).await?;
    releases::delete(state.query.store(), &org, &version).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct DeployBody {
    environment: Option<String>,
    name: Option<String>,
    url: Option<String>,
    date_started: Option<DateTime<Utc>>,
    date_finished: Option<DateTime<Utc>>,
}

/// `POST /api/0/organizations/{org}/releases/{version}/deploys/` with `{"environment"}`: 201.
pub(super) async fn create_deploy(
    State(state): State<QueryState>,
    Path((org, version)): Path<(String, String)>,
    headers: HeaderMap,
    bytes: axum::body::Bytes,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    let caller = state.auth.caller(&headers).await?;
    check_in(&caller, &org, Scope::ProjectReleases)?;
    readable_release(&state, &caller, &org, &version).await?;
    let body: DeployBody = body(&bytes, r#"{"environment": "..."}"#)?;
    let (_, deploy) = releases::deploy(
        state.query.store(),
        &org,
        &version,
        Deploy {
            id: String::new(),
            environment: body.environment.unwrap_or_default(),
            name: body.name,
            url: body.url,
            date_started: body.date_started,
            date_finished: body.date_finished.unwrap_or_else(Utc::now),
        },
    )
    .await?;
    Ok((StatusCode::CREATED, Json(deploy_json(&deploy))))
}

/// `GET /api/0/organizations/{org}/releases/{version}/deploys/`: newest first.
pub(super) async fn list_deploys(
    State(state): State<QueryState>,
    Path((org, version)): Path<(String, String)>,
    headers: HeaderMap,
) -> Result<Json<Value>, ApiError> {
    let caller = state.auth.caller(&headers).await?;
    check_in(&caller, &org, Scope::ProjectRead)?;
    let (release, _) = readable_release(&state, &caller, &org, &version).await?;
    Ok(Json(Value::Array(
        release.deploys.iter().rev().map(deploy_json).collect(),
    )))
}
