//! How the engine pods are reached: Services, Ingress, NetworkPolicy, and the
//! PodDisruptionBudget that keeps them reachable during node drains.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};
use k8s_openapi::api::networking::v1::{
    HTTPIngressPath, HTTPIngressRuleValue, Ingress, IngressBackend, IngressRule,
    IngressServiceBackend, IngressSpec, IngressTLS, NetworkPolicy, NetworkPolicyIngressRule,
    NetworkPolicyPeer, NetworkPolicyPort, NetworkPolicySpec, ServiceBackendPort,
};
use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, LabelSelectorRequirement};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::{ADMIN_PORT, Ctx, INGEST_PORT, selector_labels};

/// Name of the headless Service that gives the StatefulSet's pods their DNS names:
/// `<tracker>-pods`.
pub fn headless_service_name(tracker_name: &str) -> String {
    format!("{tracker_name}-pods")
}

/// Name of the ClusterIP Service of the query/admin port: `<tracker>-admin`.
pub fn admin_service_name(tracker_name: &str) -> String {
    format!("{tracker_name}-admin")
}

/// The Service SDKs send to: the ingest port only, so that a `LoadBalancer` or `NodePort`
/// type never exposes the query/admin port.
pub(crate) fn service(ctx: &Ctx<'_>) -> Service {
    let spec = &ctx.tracker.spec.service;
    let mut metadata = ctx.meta(ctx.name.clone(), "engine");
    if !spec.annotations.is_empty() {
        metadata.annotations = Some(spec.annotations.clone());
    }
    Service {
        metadata,
        spec: Some(ServiceSpec {
            type_: Some(spec.type_.clone()),
            selector: Some(selector_labels(&ctx.name)),
            ports: Some(ports(&[("ingest", INGEST_PORT)])),
            ..ServiceSpec::default()
        }),
        status: None,
    }
}

/// Prometheus' conventional scrape annotations: the engine's `/metrics` on the admin port.
/// On the admin Service and on the pods, for either kind of discovery.
pub fn scrape_annotations() -> BTreeMap<String, String> {
    BTreeMap::from([
        ("prometheus.io/scrape".to_owned(), "true".to_owned()),
        ("prometheus.io/port".to_owned(), ADMIN_PORT.to_string()),
        ("prometheus.io/path".to_owned(), "/metrics".to_owned()),
    ])
}

/// The label of the Service to scrape each engine's `/metrics` through.
pub const METRICS_LABEL: &str = "faultline.dev/metrics";

/// The query/admin port, inside the cluster only (and only from the namespaces the
/// NetworkPolicy allows). It also serves `/metrics`.
pub(crate) fn admin_service(ctx: &Ctx<'_>) -> Service {
    let mut metadata = ctx.meta(admin_service_name(&ctx.name), "engine");
    metadata.annotations = Some(scrape_annotations());
    // what the chart's engine ServiceMonitor selects (the headless Service has the same port,
    // and scraping both would count every pod twice)
    metadata
        .labels
        .get_or_insert_with(Default::default)
        .insert(METRICS_LABEL.to_owned(), "true".to_owned());
    Service {
        metadata,
        spec: Some(ServiceSpec {
            type_: Some("ClusterIP".into()),
            selector: Some(selector_labels(&ctx.name)),
            ports: Some(ports(&[("admin", ADMIN_PORT)])),
            ..ServiceSpec::default()
        }),
        status: None,
    }
}

pub(crate) fn headless_service(ctx: &Ctx<'_>) -> Service {
    Service {
        metadata: ctx.meta(headless_service_name(&ctx.name), "engine"),
        spec: Some(ServiceSpec {
            cluster_ip: Some("None".into()),
            publish_not_ready_addresses: Some(true),
            selector: Some(selector_labels(&ctx.name)),
            ports: Some(ports(&[("ingest", INGEST_PORT), ("admin", ADMIN_PORT)])),
            ..ServiceSpec::default()
        }),
        status: None,
    }
}

fn ports(ports: &[(&str, i32)]) -> Vec<ServicePort> {
    ports
        .iter()
        .map(|&(name, port)| ServicePort {
            name: Some(name.into()),
            port,
            target_port: Some(IntOrString::String(name.into())),
            protocol: Some("TCP".into()),
            ..ServicePort::default()
        })
        .collect()
}

pub(crate) fn pod_disruption_budget(ctx: &Ctx<'_>) -> PodDisruptionBudget {
    PodDisruptionBudget {
        metadata: ctx.meta(ctx.name.clone(), "engine"),
        spec: Some(PodDisruptionBudgetSpec {
            max_unavailable: Some(IntOrString::Int(1)),
            selector: Some(LabelSelector {
                match_labels: Some(selector_labels(&ctx.name)),
                ..LabelSelector::default()
            }),
            ..PodDisruptionBudgetSpec::default()
        }),
        status: None,
    }
}

/// Ingest port open to every peer; query/admin port only from the tracker's namespace, the
/// operator's (for backups) and the namespaces listed in `networkPolicy.adminNamespaces`.
pub(crate) fn network_policy(
    ctx: &Ctx<'_>,
    operator_namespace: Option<&str>,
) -> Option<NetworkPolicy> {
    let spec = &ctx.tracker.spec.network_policy;
    if !spec.enabled {
        return None;
    }
    let mut namespaces = vec![ctx.namespace.clone()];
    namespaces.extend(operator_namespace.map(str::to_owned));
    namespaces.extend(spec.admin_namespaces.iter().cloned());
    namespaces.sort();
    namespaces.dedup();
    let port = |port: i32| NetworkPolicyPort {
        port: Some(IntOrString::Int(port)),
        protocol: Some("TCP".into()),
        ..NetworkPolicyPort::default()
    };
    Some(NetworkPolicy {
        metadata: ctx.meta(ctx.name.clone(), "engine"),
        spec: Some(NetworkPolicySpec {
            pod_selector: Some(LabelSelector {
                match_labels: Some(selector_labels(&ctx.name)),
                ..LabelSelector::default()
            }),
            policy_types: Some(vec!["Ingress".into()]),
            ingress: Some(vec![
                NetworkPolicyIngressRule {
                    ports: Some(vec![port(INGEST_PORT)]),
                    from: None,
                },
                NetworkPolicyIngressRule {
                    ports: Some(vec![port(ADMIN_PORT)]),
                    from: Some(vec![NetworkPolicyPeer {
                        namespace_selector: Some(LabelSelector {
                            match_expressions: Some(vec![LabelSelectorRequirement {
                                key: "kubernetes.io/metadata.name".into(),
                                operator: "In".into(),
                                values: Some(namespaces),
                            }]),
                            ..LabelSelector::default()
                        }),
                        ..NetworkPolicyPeer::default()
                    }]),
                },
            ]),
            ..NetworkPolicySpec::default()
        }),
    })
}

/// What the Ingress routes to the query/admin port with `webUi`: the web UI's pages and login,
/// and the admin listener's own paths under `/api/` (Sentry's web API under `/api/0/`: no
/// project has id 0). `/metrics` and the health checks stay inside the cluster.
const WEB_PREFIXES: [&str; 11] = [
    "/api/0/",
    "/api/sql",
    "/api/tokens",
    "/api/issues",
    "/accept/",
    "/account/",
    "/auth/",
    "/login",
    "/organizations/",
    "/setup/",
    "/static/",
];

/// The Ingress of the ingest port, when the spec asks for one; with `webUi`, also of the web
/// UI on the query/admin port ([`WEB_PREFIXES`] and `/` itself).
pub(crate) fn ingress(ctx: &Ctx<'_>) -> Option<Ingress> {
    let spec = ctx.tracker.spec.ingress.as_ref()?;
    let mut metadata = ctx.meta(ctx.name.clone(), "engine");
    if !spec.annotations.is_empty() {
        metadata.annotations = Some(spec.annotations.clone());
    }
    let backend = |service: String, port: &str| IngressBackend {
        service: Some(IngressServiceBackend {
            name: service,
            port: Some(ServiceBackendPort {
                name: Some(port.into()),
                ..ServiceBackendPort::default()
            }),
        }),
        ..IngressBackend::default()
    };
    let path = |path: &str, kind: &str, backend: IngressBackend| HTTPIngressPath {
        path: Some(path.into()),
        path_type: kind.into(),
        backend,
    };
    let mut paths = vec![path("/api/", "Prefix", backend(ctx.name.clone(), "ingest"))];
    if spec.web_ui {
        // the longest prefix wins: `/api/0/...` goes to the admin port, `/api/42/...` of the
        // SDKs to the ingest port
        let admin = || backend(admin_service_name(&ctx.name), "admin");
        for prefix in WEB_PREFIXES {
            paths.push(path(prefix, "Prefix", admin()));
        }
        paths.push(path("/", "Exact", admin()));
    }
    Some(Ingress {
        metadata,
        spec: Some(IngressSpec {
            ingress_class_name: spec.class_name.clone(),
            rules: Some(vec![IngressRule {
                host: Some(spec.host.clone()),
                http: Some(HTTPIngressRuleValue { paths }),
            }]),
            tls: spec.tls_secret_name.as_ref().map(|secret| {
                vec![IngressTLS {
                    hosts: Some(vec![spec.host.clone()]),
                    secret_name: Some(secret.clone()),
                }]
            }),
            ..IngressSpec::default()
        }),
        status: None,
    })
}
