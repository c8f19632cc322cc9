//! The engine config (`faultline.toml`) and the ConfigMap that carries it.
//!
//! The config is a `faultline_config::Config`, the type the engine itself parses, so the
//! operator can only write what the engine reads.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use faultline_config::{
    AuthConfig, BackupConfig, Config, KeyConfig, OidcConfig, PrivacyConfig, ProjectConfig,
    RateLimit, S3Config,
};
use k8s_openapi::api::core::v1::ConfigMap;

use super::quota::engine_quotas;
use super::{ADMIN_PORT, Ctx, Error, INGEST_PORT, ResolvedProject, Result};
use crate::crd::{AuthSpec, BackupStore, ErrorTracker};

/// Key of the config file in the ConfigMap.
pub const CONFIG_FILE: &str = "faultline.toml";
/// Where the ConfigMap is mounted in the engine container.
pub const CONFIG_MOUNT: &str = "/etc/faultline";
/// The engine's data directory (the WAL volume).
pub const DATA_DIR: &str = "/var/lib/faultline";
/// Where a local object store volume is mounted.
pub(crate) const OBJECTS_DIR: &str = "/var/lib/faultline/objects";
/// Key of the bootstrap init container's config in the ConfigMap.
pub const RESTORE_CONFIG_FILE: &str = "restore.toml";
/// Where a backup destination volume is mounted.
pub(crate) const BACKUPS_DIR: &str = "/var/lib/faultline-backups";
/// Where the bootstrap source volume is mounted.
pub(crate) const RESTORE_SOURCE_DIR: &str = "/var/lib/faultline-restore";
/// Where the OIDC client secret is mounted (only the referenced key, as [`OIDC_SECRET_FILE`]).
pub const OIDC_SECRET_DIR: &str = "/etc/faultline-oidc";
/// File name of the OIDC client secret under [`OIDC_SECRET_DIR`].
pub const OIDC_SECRET_FILE: &str = "client-secret";
/// Where the alert channels' secrets and the SMTP password are mounted (only the referenced
/// keys, as the paths [`alert_secret_files`] names).
pub(crate) const ALERT_SECRETS_DIR: &str = "/etc/faultline-alerts";

/// Every Secret key `spec.alerts` references, with the path (under [`ALERT_SECRETS_DIR`]) it
/// is mounted as: `channels/<channel>/url`, `.../routing-key`, `.../signing-secret`,
/// `smtp/password`.
pub(crate) fn alert_secret_files(
    alerts: &crate::crd::AlertsSpec,
) -> Vec<(&crate::crd::AlertSecretRef, String)> {
    let mut files = Vec::new();
    for channel in &alerts.channels {
        for (reference, file) in [
            (&channel.url_secret_ref, "url"),
            (&channel.routing_key_secret_ref, "routing-key"),
            (&channel.signing_secret_ref, "signing-secret"),
        ] {
            if let Some(reference) = reference {
                files.push((reference, format!("channels/{}/{file}", channel.name)));
            }
        }
    }
    if let Some(reference) = alerts
        .smtp
        .as_ref()
        .and_then(|s| s.password_secret_ref.as_ref())
    {
        files.push((reference, "smtp/password".to_owned()));
    }
    files
}

/// `[alerts]` and `[smtp]` from `spec.alerts`: the same fields as the engine's, with every
/// secret as a file under [`ALERT_SECRETS_DIR`].
fn alerts_config(spec: &crate::crd::AlertsSpec, config: &mut Config) -> Result<()> {
    let invalid = |field: String, message: String| Error::InvalidAlerts { field, message };
    let file = |path: String| PathBuf::from(ALERT_SECRETS_DIR).join(path);
    if let Some(n) = spec.max_per_hour {
        config.alerts.max_per_hour = n;
    }
    config.alerts.allow_private_targets = spec.allow_private_targets;
    for (i, channel) in spec.channels.iter().enumerate() {
        let mut body = serde_json::json!({
            "name": channel.name,
            "kind": channel.kind,
            "to": channel.to,
            "format": channel.format.as_deref().unwrap_or("faultline"),
        });
        for (reference, field, name) in [
            (&channel.url_secret_ref, "url_file", "url"),
            (
                &channel.routing_key_secret_ref,
                "routing_key_file",
                "routing-key",
            ),
            (&channel.signing_secret_ref, "secret_file", "signing-secret"),
        ] {
            if reference.is_some() {
                body[field] = serde_json::json!(file(format!("channels/{}/{name}", channel.name)));
            }
        }
        if let Some(n) = channel.max_per_hour {
            body["max_per_hour"] = serde_json::json!(n);
        }
        let parsed = serde_json::from_value(body)
            .map_err(|e| invalid(format!("alerts.channels[{i}]"), e.to_string()))?;
        config.alerts.channels.push(parsed);
    }
    for (i, rule) in spec.rules.iter().enumerate() {
        let triggers: Vec<serde_json::Value> = rule
            .triggers
            .iter()
            .map(|t| {
                let mut trigger = serde_json::json!({ "type": t.type_ });
                if let Some(count) = t.count {
                    trigger["count"] = serde_json::json!(count);
                }
                if let Some(window) = &t.window {
                    trigger["window"] = serde_json::json!(window);
                }
                if !t.monitors.is_empty() {
                    trigger["monitors"] = serde_json::json!(t.monitors);
                }
                trigger
            })
            .collect();
        let mut body = serde_json::json!({
            "name": rule.name,
            "org": rule.org.as_deref().unwrap_or("default"),
            "projects": rule.projects,
            "triggers": triggers,
            "levels": rule.levels,
            "environments": rule.environments,
            "releases": rule.releases,
            "tags": rule.tags,
            "channels": rule.channels,
            "interval": rule.interval.as_deref().unwrap_or("30m"),
        });
        for (field, value) in [
            ("issue_older_than", &rule.issue_older_than),
            ("issue_newer_than", &rule.issue_newer_than),
        ] {
            if let Some(value) = value {
                body[field] = serde_json::json!(value);
            }
        }
        if let Some(n) = rule.min_events {
            body["min_events"] = serde_json::json!(n);
        }
        let parsed = serde_json::from_value(body)
            .map_err(|e| invalid(format!("alerts.rules[{i}]"), e.to_string()))?;
        config.alerts.rules.push(parsed);
    }
    if let Some(smtp) = &spec.smtp {
        let body = serde_json::json!({
            "host": smtp.host,
            "port": smtp.port,
            "tls": smtp.tls.as_deref().unwrap_or("starttls"),
            "username": smtp.username,
            "password_file": smtp.password_secret_ref.as_ref().map(|_| file("smtp/password".to_owned())),
            "from": smtp.from,
        });
        config.smtp = Some(
            serde_json::from_value(body)
                .map_err(|e| invalid("alerts.smtp".to_owned(), e.to_string()))?,
        );
    }
    Ok(())
}

/// The engine config for a tracker. `storage.node_id` keeps its default: each pod gets its
/// name through the `FAULTLINE_NODE_ID` environment variable, so one ConfigMap serves all pods.
pub(crate) fn engine_config(
    ctx: &Ctx<'_>,
    projects: &[ResolvedProject],
    credentials: &super::Credentials,
) -> Result<Config> {
    let spec = &ctx.tracker.spec;
    let mut config = Config::default();
    config.server.listen = SocketAddr::from(([0, 0, 0, 0], port(INGEST_PORT)));
    config.server.admin_listen = Some(SocketAddr::from(([0, 0, 0, 0], port(ADMIN_PORT))));
    config.server.public_url = Some(ctx.ingest_url());
    config.storage.data_dir = PathBuf::from(DATA_DIR);
    config.auth = auth_config(&spec.auth, config.auth)?;
    config.auth.admin_token_file =
        Some(PathBuf::from(super::ADMIN_TOKEN_DIR).join(super::ADMIN_TOKEN_KEY));
    match &spec.storage.object_store.s3 {
        Some(s3) => {
            config.storage.object_store = Some(s3_url(&s3.bucket, s3.prefix.as_deref()));
            config.storage.s3 = s3_config(
                s3.endpoint.as_deref(),
                s3.region.as_deref(),
                s3.force_path_style,
            );
        }
        None => config.storage.object_store = Some(format!("file://{OBJECTS_DIR}")),
    }
    if let Some(alerts) = &spec.alerts {
        alerts_config(alerts, &mut config)?;
    }
    config.retention.default_days = spec.retention.default_days;
    config.retention.max_events_per_project = spec.retention.max_events_per_project;
    if let Some(backup) = &spec.backup {
        let (destination, s3) = store_location(&backup.destination, BACKUPS_DIR);
        config.backup.schedule = Some(backup.schedule.clone());
        config.backup.destination = Some(destination);
        config.backup.s3 = s3;
        config.backup.keep_last = backup.keep_last;
        config.backup.keep_days = backup.keep_days;
    }
    config.projects = projects
        .iter()
        .enumerate()
        .map(|(i, p)| {
            Ok(ProjectConfig {
                id: p.id,
                name: p.spec.name.clone(),
                keys: project_keys(p, credentials),
                quotas: engine_quotas(&p.spec.quotas, &format!("projects[{i}]."))?,
                rate_limit: p.spec.rate_limit.as_ref().map(|limit| RateLimit {
                    events: limit.events,
                    window: Duration::from_secs(limit.window_seconds),
                }),
                retention_days: p.spec.retention_days,
                grouping_enhancements: p.spec.grouping_enhancements.clone(),
                fingerprinting_rules: p.spec.fingerprinting_rules.clone(),
                privacy: p.spec.privacy.as_ref().map(|privacy| PrivacyConfig {
                    scrub_data: privacy.scrub_data,
                    scrub_defaults: privacy.scrub_defaults,
                    scrub_ip_addresses: privacy.scrub_ip_addresses,
                    sensitive_fields: privacy.sensitive_fields.clone(),
                    safe_fields: privacy.safe_fields.clone(),
                    pii_config: privacy.pii_config.clone(),
                }),
            })
        })
        .collect::<Result<_>>()?;
    config.validate().map_err(Error::InvalidConfig)?;
    Ok(config)
}

/// `[auth]` and `[auth.oidc]` from `spec.auth`; what the spec leaves unset keeps the value of
/// `base` (the engine's default).
fn auth_config(spec: &AuthSpec, base: AuthConfig) -> Result<AuthConfig> {
    let mut auth = base;
    for (field, value, target) in [
        (
            "auth.sessionIdleTimeout",
            &spec.session_idle_timeout,
            &mut auth.session_idle_timeout,
        ),
        (
            "auth.sessionAbsoluteTimeout",
            &spec.session_absolute_timeout,
            &mut auth.session_absolute_timeout,
        ),
        ("auth.inviteTtl", &spec.invite_ttl, &mut auth.invite_ttl),
        (
            "auth.setupLinkTtl",
            &spec.setup_link_ttl,
            &mut auth.setup_link_ttl,
        ),
        (
            "auth.loginFailureWindow",
            &spec.login_failure_window,
            &mut auth.login_failure_window,
        ),
    ] {
        if let Some(text) = value {
            *target =
                parse_duration(text).map_err(|message| Error::InvalidSpec { field, message })?;
        }
    }
    if let Some(max) = spec.login_max_failures {
        if max == 0 {
            return Err(Error::InvalidSpec {
                field: "auth.loginMaxFailures",
                message: "must be at least 1".to_owned(),
            });
        }
        auth.login_max_failures = max;
    }
    auth.password_login = spec.password_login;
    auth.require_mfa = spec.require_mfa;
    if !spec.password_login && spec.oidc.is_none() {
        return Err(Error::InvalidSpec {
            field: "auth.passwordLogin",
            message: "false needs auth.oidc, or nobody can log in".to_owned(),
        });
    }
    auth.oidc = match &spec.oidc {
        None => None,
        Some(oidc) => {
            check_issuer(&oidc.issuer).map_err(|message| Error::InvalidSpec {
                field: "auth.oidc.issuer",
                message,
            })?;
            if oidc.client_id.trim().is_empty() {
                return Err(Error::InvalidSpec {
                    field: "auth.oidc.clientId",
                    message: "must not be empty".to_owned(),
                });
            }
            let defaults: OidcConfig = toml::from_str("issuer = \"\"\nclient_id = \"\"")
                .expect("an OIDC section with issuer and client_id parses");
            Some(OidcConfig {
                issuer: oidc.issuer.clone(),
                client_id: oidc.client_id.clone(),
                client_secret_file: oidc
                    .client_secret_ref
                    .as_ref()
                    .map(|_| PathBuf::from(OIDC_SECRET_DIR).join(OIDC_SECRET_FILE)),
                name: oidc.name.clone().unwrap_or(defaults.name),
                scopes: oidc.scopes.clone().unwrap_or(defaults.scopes),
                auto_provision: oidc.auto_provision,
                default_role: oidc.default_role.clone().unwrap_or(defaults.default_role),
                default_team: oidc.default_team.clone(),
            })
        }
    };
    Ok(auth)
}

/// Parses a duration of the form `<n>d<n>h<n>m<n>s` (each part optional, in this order, at
/// least one present), as the CRD's pattern allows. Zero is refused: every lifetime and window
/// of `[auth]` must be longer than zero.
pub fn parse_duration(text: &str) -> std::result::Result<Duration, String> {
    let bad = || format!("{text:?} is not a duration such as 30m, 12h, 14d or 1h30m");
    let mut rest = text;
    let mut total: u64 = 0;
    let mut last_unit = 0;
    while !rest.is_empty() {
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        let (number, tail) = rest.split_at(digits);
        let mut chars = tail.chars();
        let unit = chars.next().ok_or_else(bad)?;
        let (rank, seconds) = match unit {
            'd' => (1, 86_400),
            'h' => (2, 3_600),
            'm' => (3, 60),
            's' => (4, 1),
            _ => return Err(bad()),
        };
        if number.is_empty() || rank <= last_unit {
            return Err(bad());
        }
        last_unit = rank;
        let value: u64 = number.parse().map_err(|_| bad())?;
        total = value
            .checked_mul(seconds)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(|| format!("{text:?} is too long"))?;
        rest = chars.as_str();
    }
    if last_unit == 0 {
        return Err(bad());
    }
    if total == 0 {
        return Err(format!("{text:?} must be longer than zero"));
    }
    Ok(Duration::from_secs(total))
}

/// Checks an OIDC issuer URL: `https://<host>...`, or `http://` to localhost or 127.0.0.1
/// only (a provider on the same machine, as in tests).
pub fn check_issuer(issuer: &str) -> std::result::Result<(), String> {
    let https = issuer
        .strip_prefix("https://")
        .is_some_and(|rest| !rest.is_empty() && !rest.starts_with('/'));
    let local_http = issuer.strip_prefix("http://").is_some_and(|rest| {
        let host_port = rest.split('/').next().unwrap_or_default();
        let host = host_port.split(':').next().unwrap_or_default();
        let port_ok = host_port[host.len()..]
            .strip_prefix(':')
            .is_none_or(|port| !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()));
        (host == "localhost" || host == "127.0.0.1") && port_ok
    });
    if (https || local_http) && !issuer.chars().any(char::is_whitespace) {
        Ok(())
    } else {
        Err(format!(
            "{issuer:?} must be an https:// URL (http:// only for localhost or 127.0.0.1)"
        ))
    }
}

/// The engine's keys of a project: its only key, or every listed key with its name, state and
/// limit.
fn project_keys(project: &ResolvedProject, credentials: &super::Credentials) -> Vec<KeyConfig> {
    let name = &project.spec.name;
    if project.spec.keys.is_empty() {
        return credentials
            .dsn_keys
            .get(name)
            .map(KeyConfig::new)
            .into_iter()
            .collect();
    }
    let named = credentials.named_keys.get(name);
    project
        .spec
        .keys
        .iter()
        .filter_map(|key| {
            let public = named?.get(&key.name)?;
            Some(KeyConfig {
                public: public.clone(),
                label: Some(key.name.clone()),
                enabled: key.enabled,
                rate_limit: key.rate_limit.as_ref().map(|limit| RateLimit {
                    events: limit.events,
                    window: Duration::from_secs(limit.window_seconds),
                }),
            })
        })
        .collect()
}

/// The config of the bootstrap init container: the engine's, with `[backup]` describing the
/// source of the restore instead of the schedule's destination (the engine reads the S3
/// settings of `--from` there). None without `spec.bootstrap`.
pub(crate) fn restore_config(ctx: &Ctx<'_>, engine: &Config) -> Result<Option<Config>> {
    let Some(bootstrap) = &ctx.tracker.spec.bootstrap else {
        return Ok(None);
    };
    let (source, s3) = store_location(&bootstrap.backup.source, RESTORE_SOURCE_DIR);
    let mut config = engine.clone();
    config.backup = BackupConfig {
        destination: Some(source),
        s3,
        ..BackupConfig::default()
    };
    config.validate().map_err(Error::InvalidConfig)?;
    Ok(Some(config))
}

/// The URL of a backup store and its S3 settings: `s3://bucket/prefix`, or `file://` under
/// `mount_dir`, where the volume is mounted.
pub(crate) fn store_location(store: &BackupStore, mount_dir: &str) -> (String, S3Config) {
    match (&store.s3, &store.volume) {
        (Some(s3), _) => (
            s3_url(&s3.bucket, s3.prefix.as_deref()),
            s3_config(
                s3.endpoint.as_deref(),
                s3.region.as_deref(),
                s3.force_path_style,
            ),
        ),
        (None, Some(volume)) => {
            let url = match volume.sub_path.as_deref() {
                Some(sub) => format!("file://{mount_dir}/{}", sub.trim_matches('/')),
                None => format!("file://{mount_dir}"),
            };
            (url, S3Config::default())
        }
        // The schema's CEL rule demands one of the two.
        (None, None) => (format!("file://{mount_dir}"), S3Config::default()),
    }
}

/// The config as TOML with only the values that differ from the engine's defaults, so the
/// engine's own defaults apply to everything the operator does not decide (and a new engine
/// default does not need a new operator).
pub(crate) fn minimal_toml(config: &Config) -> String {
    let full = toml::Table::try_from(config).expect("config serializes to a table");
    let defaults = toml::Table::try_from(Config::default()).expect("config serializes to a table");
    toml::to_string(&prune(full, &defaults)).expect("a table serializes")
}

fn prune(mut table: toml::Table, defaults: &toml::Table) -> toml::Table {
    let keys: Vec<String> = table.keys().cloned().collect();
    for key in keys {
        let value = table.remove(&key).expect("key listed above");
        let kept = match (value, defaults.get(&key)) {
            (value, Some(default)) if &value == default => None,
            (toml::Value::Table(inner), Some(toml::Value::Table(default))) => {
                Some(toml::Value::Table(prune(inner, default)))
                    .filter(|v| v.as_table().is_some_and(|t| !t.is_empty()))
            }
            (value, _) => Some(value),
        };
        if let Some(value) = kept {
            table.insert(key, value);
        }
    }
    table
}

/// The ConfigMap holding `faultline.toml` (and `restore.toml` with `spec.bootstrap`).
pub(crate) fn config_map(ctx: &Ctx<'_>, text: &str, restore: Option<&str>) -> ConfigMap {
    let mut data = BTreeMap::from([(CONFIG_FILE.to_owned(), text.to_owned())]);
    if let Some(restore) = restore {
        data.insert(RESTORE_CONFIG_FILE.to_owned(), restore.to_owned());
    }
    ConfigMap {
        metadata: ctx.meta(config_map_name(ctx.tracker), "engine"),
        data: Some(data),
        ..ConfigMap::default()
    }
}

/// Name of the ConfigMap of a tracker.
pub(crate) fn config_map_name(tracker: &ErrorTracker) -> String {
    format!("{}-config", kube::ResourceExt::name_any(tracker))
}

fn port(port: i32) -> u16 {
    u16::try_from(port).expect("ports are constants below 65536")
}

fn s3_url(bucket: &str, prefix: Option<&str>) -> String {
    match prefix
        .map(|p| p.trim_matches('/'))
        .filter(|p| !p.is_empty())
    {
        Some(prefix) => format!("s3://{bucket}/{prefix}"),
        None => format!("s3://{bucket}"),
    }
}

fn s3_config(endpoint: Option<&str>, region: Option<&str>, force_path_style: bool) -> S3Config {
    S3Config {
        endpoint: endpoint.map(str::to_owned),
        region: region.map(str::to_owned),
        allow_http: endpoint.is_some_and(|e| e.starts_with("http://")),
        force_path_style,
        ..S3Config::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minimal_toml_reads_back_as_the_same_config() {
        let mut config = Config::default();
        config.server.admin_listen = Some(SocketAddr::from(([0, 0, 0, 0], 8001)));
        config.storage.object_store = Some("s3://bucket/prefix".into());
        config.storage.s3.force_path_style = true;
        config.retention.default_days = 7;
        config.projects.push(ProjectConfig {
            id: 3,
            name: "web".into(),
            keys: vec!["0123456789abcdef0123456789abcdef".into()],
            quotas: Vec::new(),
            rate_limit: None,
            retention_days: None,
            grouping_enhancements: None,
            fingerprinting_rules: None,
            privacy: None,
        });
        let text = minimal_toml(&config);
        assert_eq!(Config::parse(&text).unwrap(), config);
        assert!(
            !text.contains("zstd_level") && !text.contains("node_id"),
            "{text}"
        );
        assert!(
            text.contains("force_path_style = true") && text.contains("default_days = 7"),
            "{text}"
        );
        assert_eq!(minimal_toml(&Config::default()), "");
    }
}
