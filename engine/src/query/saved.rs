//! Saved queries: named SQL statements an organization keeps for its members, one object each
//! (`meta/saved-queries/org=<org>/<id>.json`). The SQL console lists, saves and deletes them.

use bytes::Bytes;
use chrono::{DateTime, Utc};
use object_store::path::Path as ObjectPath;
use serde::{Deserialize, Serialize};

use crate::store::{self, Store};

/// Longest name (characters).
pub const MAX_NAME: usize = 100;
/// Longest statement kept (bytes).
pub const MAX_SQL: usize = 64 * 1024;
/// Saved queries one organization may keep.
pub const MAX_PER_ORG: usize = 500;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Store(#[from] store::Error),
    #[error("name: give the query a name of 1 to {MAX_NAME} characters")]
    BadName,
    #[error("sql: a saved query holds 1 byte to {MAX_SQL} bytes of SQL")]
    BadSql,
    #[error("the organization keeps at most {MAX_PER_ORG} saved queries: delete one first")]
    Full,
    #[error("no saved query {id}")]
    Unknown { id: String },
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

/// One saved query.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SavedQuery {
    pub id: String,
    pub org: String,
    pub name: String,
    pub sql: String,
    /// Who saved it: a person's email address or a token's name.
    pub by: String,
    pub created: DateTime<Utc>,
}

fn prefix(org: &str) -> ObjectPath {
    ObjectPath::from_iter(["meta", "saved-queries", &format!("org={org}")])
}

fn path(org: &str, id: &str) -> ObjectPath {
    ObjectPath::from_iter([
        "meta",
        "saved-queries",
        &format!("org={org}"),
        &format!("{id}.json"),
    ])
}

/// The organization's saved queries, by name.
pub async fn list(store: &Store, org: &str) -> Result<Vec<SavedQuery>> {
    let mut out = Vec::new();
    for meta in store.list(&prefix(org)).await? {
        out.push(store.get_json::<SavedQuery>(&meta.location).await?);
    }
    out.sort_by_key(|q| q.name.to_lowercase());
    Ok(out)
}

/// Keeps `sql` under `name` for the organization.
pub async fn save(store: &Store, org: &str, name: &str, sql: &str, by: &str) -> Result<SavedQuery> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > MAX_NAME {
        return Err(Error::BadName);
    }
    let sql = sql.trim();
    if sql.is_empty() || sql.len() > MAX_SQL {
        return Err(Error::BadSql);
    }
    if store.list(&prefix(org)).await?.len() >= MAX_PER_ORG {
        return Err(Error::Full);
    }
    let saved = SavedQuery {
        id: ulid::Ulid::new().to_string().to_lowercase(),
        org: org.to_owned(),
        name: name.to_owned(),
        sql: sql.to_owned(),
        by: by.to_owned(),
        created: Utc::now(),
    };
    let data = serde_json::to_vec_pretty(&saved).expect("a saved query serializes");
    store
        .create_durable(&path(org, &saved.id), Bytes::from(data))
        .await?;
    Ok(saved)
}

/// Deletes the saved query `id` of the organization.
pub async fn delete(store: &Store, org: &str, id: &str) -> Result<SavedQuery> {
    if id.is_empty() || !id.chars().all(|c| c.is_ascii_alphanumeric()) {
        return Err(Error::Unknown { id: id.to_owned() });
    }
    let at = path(org, id);
    let saved: SavedQuery = match store.get_json(&at).await {
        Ok(saved) => saved,
        Err(store::Error::Request {
            source: object_store::Error::NotFound { .. },
            ..
        }) => return Err(Error::Unknown { id: id.to_owned() }),
        Err(err) => return Err(err.into()),
    };
    store.delete(&at).await?;
    Ok(saved)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn saved_queries_are_kept_per_organization_and_deleted_by_id() {
        let store = Store::memory();
        let a = save(
            &store,
            "acme",
            "  Errors per hour ",
            "SELECT 1",
            "ada@example.com",
        )
        .await
        .unwrap();
        assert_eq!(a.name, "Errors per hour");
        save(&store, "acme", "by browser", "SELECT 2", "ci")
            .await
            .unwrap();
        save(&store, "other", "theirs", "SELECT 3", "x")
            .await
            .unwrap();
        let names: Vec<String> = list(&store, "acme")
            .await
            .unwrap()
            .into_iter()
            .map(|q| q.name)
            .collect();
        assert_eq!(names, ["by browser", "Errors per hour"]);
        assert!(matches!(
            delete(&store, "other", &a.id).await,
            Err(Error::Unknown { .. })
        ));
        assert!(matches!(
            delete(&store, "acme", "../x").await,
            Err(Error::Unknown { .. })
        ));
        assert_eq!(delete(&store, "acme", &a.id).await.unwrap().sql, "SELECT 1");
        assert_eq!(list(&store, "acme").await.unwrap().len(), 1);
    }

    #[tokio::test]
    async fn names_and_statements_have_limits_that_name_the_field() {
        let store = Store::memory();
        let long = "x".repeat(MAX_NAME + 1);
        for (name, sql, field) in [
            ("", "SELECT 1", "name:"),
            (long.as_str(), "SELECT 1", "name:"),
            ("n", " ", "sql:"),
        ] {
            let err = save(&store, "acme", name, sql, "t").await.unwrap_err();
            assert!(err.to_string().starts_with(field), "{err}");
        }
        let big = "x".repeat(MAX_SQL + 1);
        assert!(matches!(
            save(&store, "acme", "n", &big, "t").await,
            Err(Error::BadSql)
        ));
        assert!(
            save(&store, "acme", &"y".repeat(MAX_NAME), "SELECT 1", "t")
                .await
                .is_ok()
        );
    }
}
