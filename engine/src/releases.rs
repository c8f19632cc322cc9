//! Releases as Sentry's web API and `sentry-cli releases` know them: a version of an
//! organization, the projects it belongs to, when it was created and finalized (released), and
//! its deploys. One object per release (`meta/releases/org=<org>/<hex of version>.json`; a
//! version may hold characters a key may not). Events name releases on their own; this is the
//! registry tools write to.

use bytes::Bytes;
use chrono::{DateTime, Utc};
use object_store::path::Path as ObjectPath;
use serde::{Deserialize, Serialize};

use crate::store::{self, Store};

/// Longest version accepted (Sentry's limit).
pub const MAX_VERSION: usize = 200;
/// Deploys kept per release (the oldest go first).
pub const MAX_DEPLOYS: usize = 100;
/// Releases one organization may keep.
pub const MAX_PER_ORG: usize = 10_000;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Store(#[from] store::Error),
    #[error(
        "version: give 1 to {MAX_VERSION} characters without a slash, newline or tab, and not \".\", \"..\" or \"latest\""
    )]
    BadVersion,
    #[error("projects: name at least one project of the organization the token may use")]
    NoProjects,
    #[error("project {name:?} does not exist or is not one the token may use")]
    UnknownProject { name: String },
    #[error("environment: a deploy names the environment it went to (1 to 64 characters)")]
    BadEnvironment,
    #[error("the organization keeps at most {MAX_PER_ORG} releases")]
    Full,
    #[error("release {version:?} does not exist")]
    Unknown { version: String },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// One deploy of a release to an environment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Deploy {
    pub id: String,
    pub environment: String,
    pub name: Option<String>,
    pub url: Option<String>,
    pub date_started: Option<DateTime<Utc>>,
    pub date_finished: DateTime<Utc>,
}

/// One release.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Release {
    pub version: String,
    pub org: String,
    /// Project names, sorted.
    pub projects: Vec<String>,
    pub date_created: DateTime<Utc>,
    /// When it was finalized (released); `None` while unreleased.
    pub date_released: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
    #[serde(default)]
    pub deploys: Vec<Deploy>,
}

/// Checks a version as Sentry does.
pub fn check_version(version: &str) -> Result<()> {
    let bad = version.is_empty()
        || version.chars().count() > MAX_VERSION
        || version.contains(['/', '\n', '\r', '\t'])
        || matches!(version, "." | ".." | "latest");
    if bad { Err(Error::BadVersion) } else { Ok(()) }
}

fn prefix(org: &str) -> ObjectPath {
    ObjectPath::from_iter(["meta", "releases", &format!("org={org}")])
}

fn path(org: &str, version: &str) -> ObjectPath {
    let name: String = version.bytes().map(|b| format!("{b:02x}")).collect();
    ObjectPath::from_iter([
        "meta",
        "releases",
        &format!("org={org}"),
        &format!("{name}.json"),
    ])
}

/// The organization's releases, newest first.
pub async fn list(store: &Store, org: &str) -> Result<Vec<Release>> {
    let mut out = Vec::new();
    for meta in store.list(&prefix(org)).await? {
        out.push(store.get_json::<Release>(&meta.location).await?);
    }
    out.sort_by(|a, b| {
        b.date_created
            .cmp(&a.date_created)
            .then_with(|| a.version.cmp(&b.version))
    });
    Ok(out)
}

/// One release, or `None`.
pub async fn get(store: &Store, org: &str, version: &str) -> Result<Option<Release>> {
    match store.get_json::<Release>(&path(org, version)).await {
        Ok(release) => Ok(Some(release)),
        Err(store::Error::Request {
            source: object_store::Error::NotFound { .. },
            ..
        }) => Ok(None),
        Err(err) => Err(err.into()),
    }
}

async fn put(store: &Store, release: &Release) -> Result<()> {
    let body = serde_json::to_vec(release).expect("a release serializes");
    store
        .put_durable(&path(&release.org, &release.version), Bytes::from(body))
        .await?;
    Ok(())
}

/// What creating or changing a release asks for.
#[derive(Debug, Clone, Default)]
pub struct Change {
    /// Projects to add (names, already checked).
    pub projects: Vec<String>,
    pub date_released: Option<DateTime<Utc>>,
    pub url: Option<String>,
    pub reference: Option<String>,
}

/// Creates `version` (or, as Sentry does, adds the projects of `change` to it when it exists).
/// Returns the release and whether it was created.
pub async fn create(
    store: &Store,
    org: &str,
    version: &str,
    change: Change,
) -> Result<(Release, bool)> {
    check_version(version)?;
    if change.projects.is_empty() {
        return Err(Error::NoProjects);
    }
    if let Some(existing) = get(store, org, version).await? {
        let updated = apply(existing, change);
        put(store, &updated).await?;
        return Ok((updated, false));
    }
    if store.list(&prefix(org)).await?.len() >= MAX_PER_ORG {
        return Err(Error::Full);
    }
    let release = apply(
        Release {
            version: version.to_owned(),
            org: org.to_owned(),
            projects: Vec::new(),
            date_created: Utc::now(),
            date_released: None,
            url: None,
            reference: None,
            deploys: Vec::new(),
        },
        change,
    );
    put(store, &release).await?;
    Ok((release, true))
}

fn apply(mut release: Release, change: Change) -> Release {
    release.projects.extend(change.projects);
    release.projects.sort();
    release.projects.dedup();
    if change.date_released.is_some() {
        release.date_released = change.date_released;
    }
    if change.url.is_some() {
        release.url = change.url;
    }
    if change.reference.is_some() {
        release.reference = change.reference;
    }
    release
}

/// Changes an existing release (finalize with `date_released`, add projects, ...).
pub async fn update(store: &Store, org: &str, version: &str, change: Change) -> Result<Release> {
    let release = get(store, org, version)
        .await?
        .ok_or_else(|| Error::Unknown {
            version: version.to_owned(),
        })?;
    let updated = apply(release, change);
    put(store, &updated).await?;
    Ok(updated)
}

/// Deletes a release; `false` when there was none.
pub async fn delete(store: &Store, org: &str, version: &str) -> Result<bool> {
    if get(store, org, version).await?.is_none() {
        return Ok(false);
    }
    store.delete(&path(org, version)).await?;
    Ok(true)
}

/// Records a deploy of `version`.
pub async fn deploy(
    store: &Store,
    org: &str,
    version: &str,
    mut deploy: Deploy,
) -> Result<(Release, Deploy)> {
    let n = deploy.environment.chars().count();
    if n == 0 || n > 64 {
        return Err(Error::BadEnvironment);
    }
    let mut release = get(store, org, version)
        .await?
        .ok_or_else(|| Error::Unknown {
            version: version.to_owned(),
        })?;
    deploy.id = (release
        .deploys
        .iter()
        .filter_map(|d| d.id.parse::<u64>().ok())
        .max())
    .map_or(1, |n| n + 1)
    .to_string();
    release.deploys.push(deploy.clone());
    let excess = release.deploys.len().saturating_sub(MAX_DEPLOYS);
    release.deploys.drain(..excess);
    put(store, &release).await?;
    Ok((release, deploy))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn create_finalize_deploy_list_and_delete() {
        let store = Store::memory();
        let change = |projects: &[&str]| Change {
            projects: projects.iter().map(|p| (*p).to_owned()).collect(),
            ..Change::default()
        };
        assert!(matches!(
            create(&store, "acme", "shop@1.0+build/x", change(&["web"])).await,
            Err(Error::BadVersion)
        ));
        assert!(matches!(
            create(&store, "acme", "shop@1.0", change(&[])).await,
            Err(Error::NoProjects)
        ));
        let (r, created) = create(&store, "acme", "shop@1.0", change(&["web"]))
            .await
            .unwrap();
        assert!(created && r.date_released.is_none());
        // Creating it again adds projects, as Sentry does.
        let (r, created) = create(&store, "acme", "shop@1.0", change(&["api", "web"]))
            .await
            .unwrap();
        assert!(!created);
        assert_eq!(r.projects, ["api", "web"]);
        let now = Utc::now();
        let r = update(
            &store,
            "acme",
            "shop@1.0",
            Change {
                date_released: Some(now),
                ..Change::default()
            },
        )
        .await
        .unwrap();
        assert_eq!(r.date_released, Some(now));
        let (r, d) = deploy(
            &store,
            "acme",
            "shop@1.0",
            Deploy {
                id: String::new(),
                environment: "prod".into(),
                name: None,
                url: None,
                date_started: None,
                date_finished: now,
            },
        )
        .await
        .unwrap();
        assert_eq!((d.id.as_str(), r.deploys.len()), ("1", 1));
        assert_eq!(list(&store, "acme").await.unwrap().len(), 1);
        assert!(list(&store, "other").await.unwrap().is_empty());
        assert!(delete(&store, "acme", "shop@1.0").await.unwrap());
        assert!(!delete(&store, "acme", "shop@1.0").await.unwrap());
        assert!(matches!(
            update(&store, "acme", "shop@1.0", Change::default()).await,
            Err(Error::Unknown { .. })
        ));
    }

    #[test]
    fn versions_are_checked_as_sentry_does() {
        for bad in ["", ".", "..", "latest", "a/b", "a\nb", &"x".repeat(201)] {
            assert!(check_version(bad).is_err(), "{bad:?}");
        }
        for good in ["1.0", "shop@1.0.0+abc", "2026-12-05", &"x".repeat(200)] {
            assert!(check_version(good).is_ok(), "{good:?}");
        }
    }
}
