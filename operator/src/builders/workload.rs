//! The engine StatefulSet and its ServiceAccount.
//!
//! With `spec.bootstrap`, every pod starts with an init container `restore` running
//! `faultline backup restore` with the same volumes and environment as the engine; the engine
//! makes that a no-op once the data location holds the restore.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{StatefulSet, StatefulSetSpec};
use k8s_openapi::api::core::v1::{
    Capabilities, ConfigMapVolumeSource, Container, ContainerPort, EmptyDirVolumeSource, EnvVar,
    EnvVarSource, HTTPGetAction, KeyToPath, ObjectFieldSelector, PersistentVolumeClaim,
    PersistentVolumeClaimSpec, PersistentVolumeClaimVolumeSource, PodSecurityContext, PodSpec,
    PodTemplateSpec, Probe, ProjectedVolumeSource, ResourceRequirements, SeccompProfile,
    SecretKeySelector, SecretProjection, SecretVolumeSource, SecurityContext, ServiceAccount,
    Volume, VolumeMount, VolumeProjection, VolumeResourceRequirements,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use sha2::{Digest, Sha256};

use super::config::{
    ALERT_SECRETS_DIR, BACKUPS_DIR, OBJECTS_DIR, OIDC_SECRET_DIR, OIDC_SECRET_FILE,
    RESTORE_CONFIG_FILE, RESTORE_SOURCE_DIR, config_map_name, store_location,
};
use super::network::headless_service_name;
use super::{
    ADMIN_PORT, ADMIN_TOKEN_DIR, CONFIG_FILE, CONFIG_MOUNT, Ctx, DATA_DIR, INGEST_PORT,
    admin_token_secret_name, labels, selector_labels,
};
use crate::crd::{CredentialsSecret, VolumeSpec};

/// Requests and limits when the spec names none. The ingest benchmark (docs/benchmarks.md) peaks
/// at about 240 MB of RSS under sustained load on 2 cores; the limit leaves room for queries.
fn default_resources() -> ResourceRequirements {
    let quantity = |q: &str| Quantity(q.to_owned());
    ResourceRequirements {
        requests: Some(BTreeMap::from([
            ("cpu".to_owned(), quantity("250m")),
            ("memory".to_owned(), quantity("256Mi")),
        ])),
        limits: Some(BTreeMap::from([("memory".to_owned(), quantity("1Gi"))])),
        ..ResourceRequirements::default()
    }
}

/// Pod annotation holding the SHA-256 of the engine config: a config change changes the pod
/// template, so the StatefulSet rolls the pods.
pub const CONFIG_CHECKSUM_ANNOTATION: &str = "faultline.dev/config-checksum";

/// Pod annotation holding the resourceVersion of the OIDC client secret's Secret: the engine
/// reads the secret once at start, so a changed Secret must roll the pods.
pub const OIDC_SECRET_VERSION_ANNOTATION: &str = "faultline.dev/oidc-secret-version";

pub(crate) fn service_account(ctx: &Ctx<'_>) -> ServiceAccount {
    ServiceAccount {
        metadata: ctx.meta(ctx.name.clone(), "engine"),
        automount_service_account_token: Some(false),
        ..ServiceAccount::default()
    }
}

pub(crate) fn stateful_set(
    ctx: &Ctx<'_>,
    config_text: &str,
    oidc_secret_version: Option<&str>,
) -> StatefulSet {
    let spec = &ctx.tracker.spec;
    let checksum = hex::encode(Sha256::digest(config_text.as_bytes()));
    let mut claims = vec![claim("data", &spec.storage.wal, &ctx.name)];
    let mut mounts = vec![
        mount("config", CONFIG_MOUNT, true),
        mount("admin-token", ADMIN_TOKEN_DIR, true),
        mount("data", DATA_DIR, false),
        mount("tmp", "/tmp", false),
    ];
    if spec.storage.object_store.s3.is_none() {
        let local = spec.storage.object_store.local.clone().unwrap_or_default();
        claims.push(claim("objects", &local, &ctx.name));
        mounts.push(mount("objects", OBJECTS_DIR, false));
    }
    let mut volumes = vec![
        Volume {
            name: "config".into(),
            config_map: Some(ConfigMapVolumeSource {
                name: config_map_name(ctx.tracker),
                ..ConfigMapVolumeSource::default()
            }),
            ..Volume::default()
        },
        Volume {
            name: "admin-token".into(),
            secret: Some(SecretVolumeSource {
                secret_name: Some(admin_token_secret_name(&ctx.name)),
                default_mode: Some(0o440),
                ..SecretVolumeSource::default()
            }),
            ..Volume::default()
        },
        Volume {
            name: "tmp".into(),
            empty_dir: Some(EmptyDirVolumeSource {
                size_limit: Some(Quantity("256Mi".into())),
                ..EmptyDirVolumeSource::default()
            }),
            ..Volume::default()
        },
    ];
    if let Some(secret) = spec
        .auth
        .oidc
        .as_ref()
        .and_then(|o| o.client_secret_ref.as_ref())
    {
        // Only the referenced key is projected, under a fixed name; nothing else of the
        // Secret reaches the pod.
        volumes.push(Volume {
            name: "oidc-client-secret".into(),
            secret: Some(SecretVolumeSource {
                secret_name: Some(secret.name.clone()),
                items: Some(vec![KeyToPath {
                    key: secret.key.clone(),
                    path: OIDC_SECRET_FILE.into(),
                    mode: None,
                }]),
                default_mode: Some(0o440),
                optional: Some(false),
            }),
            ..Volume::default()
        });
        mounts.push(mount("oidc-client-secret", OIDC_SECRET_DIR, true));
    }
    if let Some(alerts) = &spec.alerts {
        // One projected volume of exactly the referenced keys, each under its channel's
        // name; the engine reads them again on its alert timer, so a changed Secret is used
        // without a restart once the kubelet has updated the files.
        let sources: Vec<VolumeProjection> = super::config::alert_secret_files(alerts)
            .into_iter()
            .map(|(reference, path)| VolumeProjection {
                secret: Some(SecretProjection {
                    name: reference.name.clone(),
                    items: Some(vec![KeyToPath {
                        key: reference.key.clone(),
                        path,
                        mode: None,
                    }]),
                    optional: Some(false),
                }),
                ..VolumeProjection::default()
            })
            .collect();
        if !sources.is_empty() {
            volumes.push(Volume {
                name: "alert-secrets".into(),
                projected: Some(ProjectedVolumeSource {
                    sources: Some(sources),
                    default_mode: Some(0o440),
                }),
                ..Volume::default()
            });
            mounts.push(mount("alert-secrets", ALERT_SECRETS_DIR, true));
        }
    }
    let init_containers = spec.bootstrap.as_ref().map(|bootstrap| {
        let source = &bootstrap.backup.source;
        let mut init_mounts = mounts.clone();
        if let Some(volume) = &source.volume {
            volumes.push(claim_volume("restore-source", &volume.claim_name, true));
            init_mounts.push(mount("restore-source", RESTORE_SOURCE_DIR, true));
        }
        let (url, _) = store_location(source, RESTORE_SOURCE_DIR);
        let mut args = vec![
            "--config".into(),
            format!("{CONFIG_MOUNT}/{RESTORE_CONFIG_FILE}"),
            "backup".into(),
            "restore".into(),
            bootstrap.backup.id.clone(),
            format!("--from={url}"),
        ];
        // `--until=<time>` as one argument: a bare RFC 3339 value in a YAML list would be
        // read as a timestamp by YAML 1.1 parsers.
        if let Some(until) = &bootstrap.backup.until {
            args.push(format!("--until={until}"));
        }
        let mut env = env(ctx);
        env.retain(|e| !e.name.starts_with(BACKUP_ENV_PREFIX));
        if let Some(s3) = &source.s3 {
            env.extend(credentials_env(BACKUP_ENV_PREFIX, &s3.credentials_secret));
        }
        vec![Container {
            name: "restore".into(),
            image: Some(spec.image()),
            image_pull_policy: Some(spec.image_pull_policy.clone()),
            command: Some(vec!["faultline".into()]),
            args: Some(args),
            env: Some(env),
            resources: Some(spec.resources.clone().unwrap_or_else(default_resources)),
            security_context: Some(container_security(ctx)),
            volume_mounts: Some(init_mounts),
            ..Container::default()
        }]
    });
    if let Some(volume) = spec
        .backup
        .as_ref()
        .and_then(|b| b.destination.volume.as_ref())
    {
        volumes.push(claim_volume("backups", &volume.claim_name, false));
        mounts.push(mount("backups", BACKUPS_DIR, false));
    }
    let container = Container {
        name: "engine".into(),
        image: Some(spec.image()),
        image_pull_policy: Some(spec.image_pull_policy.clone()),
        command: Some(vec!["faultline".into()]),
        args: Some(vec![
            "serve".into(),
            "--config".into(),
            format!("{CONFIG_MOUNT}/{CONFIG_FILE}"),
        ]),
        env: Some(env(ctx)),
        ports: Some(vec![
            container_port("ingest", INGEST_PORT),
            container_port("admin", ADMIN_PORT),
        ]),
        liveness_probe: Some(probe("/health/live", 10, 6)),
        readiness_probe: Some(probe("/health/ready", 5, 3)),
        resources: Some(spec.resources.clone().unwrap_or_else(default_resources)),
        security_context: Some(container_security(ctx)),
        volume_mounts: Some(mounts),
        ..Container::default()
    };
    let pod = PodSpec {
        service_account_name: Some(ctx.name.clone()),
        automount_service_account_token: Some(false),
        init_containers,
        containers: vec![container],
        security_context: Some(PodSecurityContext {
            run_as_non_root: Some(true),
            run_as_user: Some(spec.security.run_as_user),
            run_as_group: Some(spec.security.fs_group),
            fs_group: Some(spec.security.fs_group),
            seccomp_profile: Some(runtime_default()),
            ..PodSecurityContext::default()
        }),
        termination_grace_period_seconds: Some(45),
        node_selector: (!spec.node_selector.is_empty()).then(|| spec.node_selector.clone()),
        tolerations: (!spec.tolerations.is_empty()).then(|| spec.tolerations.clone()),
        affinity: spec.affinity.clone(),
        volumes: Some(volumes),
        ..PodSpec::default()
    };
    StatefulSet {
        metadata: ctx.meta(ctx.name.clone(), "engine"),
        spec: Some(StatefulSetSpec {
            replicas: Some(spec.replicas),
            service_name: Some(headless_service_name(&ctx.name)),
            pod_management_policy: Some("Parallel".into()),
            selector: LabelSelector {
                match_labels: Some(selector_labels(&ctx.name)),
                ..LabelSelector::default()
            },
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(labels(&ctx.name, "engine")),
                    annotations: Some({
                        let mut annotations = super::network::scrape_annotations();
                        annotations.insert(CONFIG_CHECKSUM_ANNOTATION.to_owned(), checksum);
                        if let Some(version) = oidc_secret_version {
                            annotations.insert(
                                OIDC_SECRET_VERSION_ANNOTATION.to_owned(),
                                version.to_owned(),
                            );
                        }
                        annotations
                    }),
                    ..ObjectMeta::default()
                }),
                spec: Some(pod),
            },
            volume_claim_templates: Some(claims),
            ..StatefulSetSpec::default()
        }),
        status: None,
    }
}

fn env(ctx: &Ctx<'_>) -> Vec<EnvVar> {
    let mut env = vec![EnvVar {
        name: "FAULTLINE_NODE_ID".into(),
        value_from: Some(EnvVarSource {
            field_ref: Some(ObjectFieldSelector {
                field_path: "metadata.name".into(),
                ..ObjectFieldSelector::default()
            }),
            ..EnvVarSource::default()
        }),
        ..EnvVar::default()
    }];
    let spec = &ctx.tracker.spec;
    if let Some(s3) = &spec.storage.object_store.s3 {
        env.extend(credentials_env("", &s3.credentials_secret));
    }
    if let Some(s3) = spec.backup.as_ref().and_then(|b| b.destination.s3.as_ref()) {
        env.extend(credentials_env(BACKUP_ENV_PREFIX, &s3.credentials_secret));
    }
    env
}

/// Prefix of the variables holding the credentials of the backup store (the engine reads
/// `FAULTLINE_BACKUP_AWS_ACCESS_KEY_ID` and `FAULTLINE_BACKUP_AWS_SECRET_ACCESS_KEY`).
const BACKUP_ENV_PREFIX: &str = "FAULTLINE_BACKUP_";

/// `<prefix>AWS_ACCESS_KEY_ID` and `<prefix>AWS_SECRET_ACCESS_KEY` from the Secret.
fn credentials_env(prefix: &str, secret: &CredentialsSecret) -> Vec<EnvVar> {
    [
        ("AWS_ACCESS_KEY_ID", &secret.access_key_id_key),
        ("AWS_SECRET_ACCESS_KEY", &secret.secret_access_key_key),
    ]
    .into_iter()
    .map(|(name, key)| EnvVar {
        name: format!("{prefix}{name}"),
        value_from: Some(EnvVarSource {
            secret_key_ref: Some(SecretKeySelector {
                name: secret.name.clone(),
                key: key.clone(),
                optional: Some(false),
            }),
            ..EnvVarSource::default()
        }),
        ..EnvVar::default()
    })
    .collect()
}

fn container_security(ctx: &Ctx<'_>) -> SecurityContext {
    let security = &ctx.tracker.spec.security;
    SecurityContext {
        allow_privilege_escalation: Some(false),
        privileged: Some(false),
        read_only_root_filesystem: Some(security.read_only_root_filesystem),
        run_as_non_root: Some(true),
        run_as_user: Some(security.run_as_user),
        run_as_group: Some(security.fs_group),
        capabilities: Some(Capabilities {
            drop: Some(vec!["ALL".into()]),
            ..Capabilities::default()
        }),
        seccomp_profile: Some(runtime_default()),
        ..SecurityContext::default()
    }
}

fn claim_volume(name: &str, claim_name: &str, read_only: bool) -> Volume {
    Volume {
        name: name.into(),
        persistent_volume_claim: Some(PersistentVolumeClaimVolumeSource {
            claim_name: claim_name.into(),
            read_only: read_only.then_some(true),
        }),
        ..Volume::default()
    }
}

fn claim(name: &str, volume: &VolumeSpec, tracker_name: &str) -> PersistentVolumeClaim {
    PersistentVolumeClaim {
        metadata: ObjectMeta {
            name: Some(name.into()),
            labels: Some(labels(tracker_name, "engine")),
            ..ObjectMeta::default()
        },
        spec: Some(PersistentVolumeClaimSpec {
            access_modes: Some(vec!["ReadWriteOnce".into()]),
            storage_class_name: volume.storage_class_name.clone(),
            resources: Some(VolumeResourceRequirements {
                requests: Some(BTreeMap::from([(
                    "storage".to_owned(),
                    Quantity(volume.size.clone()),
                )])),
                ..VolumeResourceRequirements::default()
            }),
            ..PersistentVolumeClaimSpec::default()
        }),
        status: None,
    }
}

fn mount(name: &str, path: &str, read_only: bool) -> VolumeMount {
    VolumeMount {
        name: name.into(),
        mount_path: path.into(),
        read_only: read_only.then_some(true),
        ..VolumeMount::default()
    }
}

fn container_port(name: &str, port: i32) -> ContainerPort {
    ContainerPort {
        name: Some(name.into()),
        container_port: port,
        protocol: Some("TCP".into()),
        ..ContainerPort::default()
    }
}

fn probe(path: &str, period: i32, failures: i32) -> Probe {
    Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.into()),
            port: IntOrString::String("ingest".into()),
            scheme: Some("HTTP".into()),
            ..HTTPGetAction::default()
        }),
        period_seconds: Some(period),
        failure_threshold: Some(failures),
        timeout_seconds: Some(2),
        ..Probe::default()
    }
}

fn runtime_default() -> SeccompProfile {
    SeccompProfile {
        type_: "RuntimeDefault".into(),
        ..SeccompProfile::default()
    }
}
