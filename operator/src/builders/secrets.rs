//! DSN keys and the per-project Secrets applications mount.
//!
//! A key is 32 lowercase hex characters, generated once by the reconciler and then read back
//! from the Secret on every reconcile, so DSNs never change under running applications.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use rand::RngCore;

use super::{Ctx, INGEST_PORT, ResolvedProject};

/// Where the admin token Secret is mounted in the engine container.
pub const ADMIN_TOKEN_DIR: &str = "/etc/faultline-admin";
/// Key of the token in the admin token Secret (and file name under [`ADMIN_TOKEN_DIR`]).
pub const ADMIN_TOKEN_KEY: &str = "token";

/// Name of the Secret holding the admin API token: `<tracker>-admin-token`.
pub fn admin_token_secret_name(tracker_name: &str) -> String {
    format!("{tracker_name}-admin-token")
}

/// A fresh random admin API token (64 hex characters).
pub fn generate_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}

/// Whether `token` has the shape of an admin token.
pub fn is_valid_token(token: &str) -> bool {
    token.len() == 64 && token.chars().all(|c| c.is_ascii_hexdigit())
}

/// The Secret with the admin API token, mounted into the engine and read by whoever may
/// query the tracker (`kubectl get secret <tracker>-admin-token`).
pub(crate) fn admin_token_secret(ctx: &Ctx<'_>, token: &str) -> Secret {
    Secret {
        metadata: ctx.meta(admin_token_secret_name(&ctx.name), "admin"),
        type_: Some("Opaque".into()),
        data: Some(BTreeMap::from([(
            ADMIN_TOKEN_KEY.to_owned(),
            ByteString(token.as_bytes().to_vec()),
        )])),
        ..Secret::default()
    }
}

/// Name of the DSN Secret of a project: `<tracker>-dsn-<project>`.
pub fn dsn_secret_name(tracker_name: &str, project: &str) -> String {
    format!("{tracker_name}-dsn-{project}")
}

/// A fresh random DSN key.
pub fn generate_key() -> String {
    let mut bytes = [0u8; 16];
    rand::rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}

/// Whether `key` has the shape of a DSN key.
pub fn is_valid_key(key: &str) -> bool {
    key.len() == 32 && key.chars().all(|c| c.is_ascii_hexdigit())
}

/// The Secret of one project: `dsn` (in-cluster URL), `publicDsn` (through the Ingress when
/// there is one), `key` and `projectId`. For a project that lists keys (`named`), `key` is the
/// first enabled one; every listed key is kept as `key-<name>` and every enabled one also has
/// `dsn-<name>`.
pub(crate) fn dsn_secret(
    ctx: &Ctx<'_>,
    project: &ResolvedProject,
    key: &str,
    named: Option<&BTreeMap<String, String>>,
) -> Secret {
    let id = project.id;
    let dsn_of = |key: &str| format!("http://{key}@{}:{INGEST_PORT}/{id}", ctx.service_host());
    let dsn = dsn_of(key);
    let public = ctx.ingest_url();
    let (scheme, host) = public
        .split_once("://")
        .unwrap_or(("http", public.as_str()));
    let public_dsn = format!("{scheme}://{key}@{host}/{id}");
    let mut meta = ctx.meta(dsn_secret_name(&ctx.name, &project.spec.name), "dsn");
    meta.labels
        .get_or_insert_with(BTreeMap::new)
        .insert("faultline.dev/project".into(), project.spec.name.clone());
    let mut data: Vec<(String, String)> = vec![
        ("dsn".into(), dsn),
        ("publicDsn".into(), public_dsn),
        ("key".into(), key.to_owned()),
        ("projectId".into(), id.to_string()),
    ];
    for spec in &project.spec.keys {
        let Some(value) = named.and_then(|n| n.get(&spec.name)) else {
            continue;
        };
        data.push((format!("key-{}", spec.name), value.clone()));
        if spec.enabled {
            data.push((format!("dsn-{}", spec.name), dsn_of(value)));
        }
    }
    let data = data
        .into_iter()
        .map(|(k, v)| (k, ByteString(v.into_bytes())))
        .collect();
    Secret {
        metadata: meta,
        type_: Some("Opaque".into()),
        data: Some(data),
        ..Secret::default()
    }
}
