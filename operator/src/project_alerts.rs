//! A `FaultlineProject`'s own alerting (`spec.alerts`), declared through the engine's alert
//! API (`/api/0/organizations/{org}/alert-channels/`, `alert-rules/`, docs/alerts.md) by the
//! project reconciler.
//!
//! - Names are `<namespace>.<name>`: channels are shared by every organization of an engine,
//!   so two namespaces' `slack` cannot clash, and a rule can only use its own resource's
//!   channels (its channel names are prefixed the same way).
//! - Rules cover the project only: `org` and `projects` are set here (a CEL rule keeps users
//!   from setting them).
//! - Channel secrets are read from Secrets of the project's namespace and typed in
//!   (`url_secret`, `routing_key_secret`, `signing_secret`); the engine stores them and never
//!   shows them again. A missing Secret or key refuses the project (`SecretMissing`) before
//!   anything is declared.
//! - Idempotent: a digest of what was declared (secret values included) is kept in the status,
//!   so an unchanged declaration is not sent again (and writes no audit entries); what the spec
//!   no longer lists is deleted (rules first: a channel a rule uses cannot be deleted), and the
//!   finalizer deletes everything the status lists.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::Secret;
use kube::api::Api;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use crate::context::Context;
use crate::crd::{AlertSecretRef, FaultlineProjectStatus, ProjectAlertsSpec};
use crate::engine_api::{self, AdminApi, AlertCollection};

/// Secret values by (Secret name, key).
pub type SecretValues = BTreeMap<(String, String), String>;

/// What to declare in the engine: bodies by engine name, and their digest.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Declared {
    pub channels: Vec<(String, Value)>,
    pub rules: Vec<(String, Value)>,
    /// `None` when there is nothing to declare.
    pub digest: Option<String>,
}

/// The name of a channel or rule in the engine.
pub fn engine_name(namespace: &str, name: &str) -> String {
    format!("{namespace}.{name}")
}

/// Every Secret key `alerts` references, with the channel field that names it.
pub fn secret_refs(alerts: &ProjectAlertsSpec) -> Vec<(&'static str, &AlertSecretRef)> {
    let mut refs = Vec::new();
    for channel in &alerts.channels {
        for (field, reference) in [
            ("urlSecretRef", &channel.url_secret_ref),
            ("routingKeySecretRef", &channel.routing_key_secret_ref),
            ("signingSecretRef", &channel.signing_secret_ref),
        ] {
            if let Some(reference) = reference {
                refs.push((field, reference));
            }
        }
    }
    refs
}

/// Reads the values of every Secret key `alerts` references in `namespace`; the inner `Err`
/// names a missing Secret or key (the project is refused with `SecretMissing`).
pub async fn read_secrets(
    ctx: &Context,
    namespace: &str,
    alerts: Option<&ProjectAlertsSpec>,
) -> Result<Result<SecretValues, String>, kube::Error> {
    let mut values = SecretValues::new();
    let Some(alerts) = alerts else {
        return Ok(Ok(values));
    };
    let api: Api<Secret> = Api::namespaced(ctx.client.clone(), namespace);
    for (field, reference) in secret_refs(alerts) {
        let key = (reference.name.clone(), reference.key.clone());
        if values.contains_key(&key) {
            continue;
        }
        let Some(secret) = api.get_opt(&reference.name).await? else {
            return Ok(Err(format!(
                "Secret {:?} named by spec.alerts.channels[].{field} does not exist in namespace {namespace:?}",
                reference.name
            )));
        };
        let value = secret
            .data
            .as_ref()
            .and_then(|d| d.get(&reference.key))
            .and_then(|v| String::from_utf8(v.0.clone()).ok())
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty());
        let Some(value) = value else {
            return Ok(Err(format!(
                "Secret {:?} named by spec.alerts.channels[].{field} has no key {:?} (or it is empty)",
                reference.name, reference.key
            )));
        };
        values.insert(key, value);
    }
    Ok(Ok(values))
}

/// The channels and rules to declare for project `project` of `org` in `namespace` (pure).
pub fn declared(
    alerts: Option<&ProjectAlertsSpec>,
    namespace: &str,
    org: &str,
    project: &str,
    secrets: &SecretValues,
) -> Declared {
    let Some(alerts) = alerts else {
        return Declared::default();
    };
    let secret = |reference: &Option<AlertSecretRef>| {
        reference
            .as_ref()
            .and_then(|r| secrets.get(&(r.name.clone(), r.key.clone())))
    };
    let channels: Vec<(String, Value)> = alerts
        .channels
        .iter()
        .map(|c| {
            let name = engine_name(namespace, &c.name);
            let mut body = json!({
                "name": name,
                "kind": c.kind,
                "to": c.to,
                "format": c.format.as_deref().unwrap_or("faultline"),
            });
            if let Some(n) = c.max_per_hour {
                body["max_per_hour"] = json!(n);
            }
            for (field, value) in [
                ("url_secret", secret(&c.url_secret_ref)),
                ("routing_key_secret", secret(&c.routing_key_secret_ref)),
                ("signing_secret", secret(&c.signing_secret_ref)),
            ] {
                if let Some(value) = value {
                    body[field] = json!(value);
                }
            }
            (name, body)
        })
        .collect();
    let rules: Vec<(String, Value)> = alerts
        .rules
        .iter()
        .map(|r| {
            let name = engine_name(namespace, &r.name);
            let triggers: Vec<Value> = r
                .triggers
                .iter()
                .map(|t| {
                    let mut trigger = json!({ "type": t.type_ });
                    if let Some(count) = t.count {
                        trigger["count"] = json!(count);
                    }
                    if let Some(window) = &t.window {
                        trigger["window"] = json!(window);
                    }
                    if !t.monitors.is_empty() {
                        trigger["monitors"] = json!(t.monitors);
                    }
                    trigger
                })
                .collect();
            let channels: Vec<String> = r
                .channels
                .iter()
                .map(|c| engine_name(namespace, c))
                .collect();
            let mut body = json!({
                "name": name,
                "org": org,
                "projects": [project],
                "triggers": triggers,
                "levels": r.levels,
                "environments": r.environments,
                "releases": r.releases,
                "tags": r.tags,
                "channels": channels,
                "interval": r.interval.as_deref().unwrap_or("30m"),
            });
            for (field, value) in [
                ("issue_older_than", &r.issue_older_than),
                ("issue_newer_than", &r.issue_newer_than),
            ] {
                if let Some(value) = value {
                    body[field] = json!(value);
                }
            }
            if let Some(n) = r.min_events {
                body["min_events"] = json!(n);
            }
            (name, body)
        })
        .collect();
    let digest = (!channels.is_empty() || !rules.is_empty()).then(|| {
        let text = json!({"channels": channels, "rules": rules}).to_string();
        hex(&Sha256::digest(text.as_bytes()))
    });
    Declared {
        channels,
        rules,
        digest,
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Brings the engine to `declared` for organization `org`, given what `previous` says was
/// declared before; nothing is sent when both are the same.
pub async fn sync(
    admin: &AdminApi,
    org: &str,
    declared: &Declared,
    previous: &FaultlineProjectStatus,
) -> engine_api::Result<()> {
    let names = |list: &[(String, Value)]| list.iter().map(|(n, _)| n.clone()).collect::<Vec<_>>();
    let unchanged = previous.alerts_digest == declared.digest
        && previous.alert_channels == names(&declared.channels)
        && previous.alert_rules == names(&declared.rules);
    if unchanged {
        return Ok(());
    }
    for (name, body) in &declared.channels {
        admin
            .put_alert(AlertCollection::Channels, org, name, body)
            .await?;
    }
    for (name, body) in &declared.rules {
        admin
            .put_alert(AlertCollection::Rules, org, name, body)
            .await?;
    }
    for name in &previous.alert_rules {
        if !declared.rules.iter().any(|(n, _)| n == name) {
            admin
                .delete_alert(AlertCollection::Rules, org, name)
                .await?;
        }
    }
    for name in &previous.alert_channels {
        if !declared.channels.iter().any(|(n, _)| n == name) {
            admin
                .delete_alert(AlertCollection::Channels, org, name)
                .await?;
        }
    }
    Ok(())
}

/// Deletes every rule, then every channel, that `status` lists.
pub async fn remove(
    admin: &AdminApi,
    org: &str,
    status: &FaultlineProjectStatus,
) -> engine_api::Result<()> {
    for name in &status.alert_rules {
        admin
            .delete_alert(AlertCollection::Rules, org, name)
            .await?;
    }
    for name in &status.alert_channels {
        admin
            .delete_alert(AlertCollection::Channels, org, name)
            .await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::{AlertChannelSpec, AlertRuleSpec, AlertTriggerSpec};

    fn alerts() -> ProjectAlertsSpec {
        ProjectAlertsSpec {
            channels: vec![AlertChannelSpec {
                name: "hook".into(),
                kind: "webhook".into(),
                url_secret_ref: Some(AlertSecretRef {
                    name: "alerting".into(),
                    key: "url".into(),
                }),
                routing_key_secret_ref: None,
                signing_secret_ref: None,
                format: None,
                to: Vec::new(),
                max_per_hour: None,
            }],
            rules: vec![AlertRuleSpec {
                name: "new".into(),
                org: None,
                projects: Vec::new(),
                triggers: vec![AlertTriggerSpec {
                    type_: "new_issue".into(),
                    count: None,
                    window: None,
                    monitors: Vec::new(),
                }],
                levels: Vec::new(),
                environments: Vec::new(),
                releases: Vec::new(),
                tags: Vec::new(),
                issue_older_than: None,
                issue_newer_than: None,
                min_events: None,
                channels: vec!["hook".into()],
                interval: None,
            }],
        }
    }

    fn secrets(url: &str) -> SecretValues {
        SecretValues::from([(("alerting".into(), "url".into()), url.into())])
    }

    #[test]
    fn the_digest_follows_the_declaration_and_its_secret_values() {
        let a = declared(
            Some(&alerts()),
            "shop",
            "shop",
            "api",
            &secrets("https://a"),
        );
        let again = declared(
            Some(&alerts()),
            "shop",
            "shop",
            "api",
            &secrets("https://a"),
        );
        assert_eq!(a, again);
        assert!(a.digest.is_some());
        let rotated = declared(
            Some(&alerts()),
            "shop",
            "shop",
            "api",
            &secrets("https://b"),
        );
        assert_ne!(
            a.digest, rotated.digest,
            "a changed secret is declared again"
        );
        let other_namespace =
            declared(Some(&alerts()), "lab", "shop", "api", &secrets("https://a"));
        assert_eq!(other_namespace.channels[0].0, "lab.hook");
        assert_eq!(other_namespace.rules[0].1["channels"], json!(["lab.hook"]));
        assert_eq!(
            declared(None, "shop", "shop", "api", &SecretValues::new()),
            Declared::default()
        );
    }
}
