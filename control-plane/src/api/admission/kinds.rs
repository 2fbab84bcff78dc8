//! Static facts about the kinds this crate knows.

use crate::api::admission::names::NameKind;

/// (kind, group, version, namespaced, name validation)
const KINDS: &[(&str, &str, &str, bool, NameKind)] = &[
    ("Namespace", "", "v1", false, NameKind::Dns1123Label),
    ("Pod", "", "v1", true, NameKind::Dns1123Subdomain),
    ("Node", "", "v1", false, NameKind::Dns1123Subdomain),
    ("Service", "", "v1", true, NameKind::Dns1035Label),
    ("Endpoints", "", "v1", true, NameKind::Dns1123Subdomain),
    ("ConfigMap", "", "v1", true, NameKind::Dns1123Subdomain),
    ("Secret", "", "v1", true, NameKind::Dns1123Subdomain),
    (
        "PersistentVolumeClaim",
        "",
        "v1",
        true,
        NameKind::Dns1123Subdomain,
    ),
    ("Event", "", "v1", true, NameKind::Dns1123Subdomain),
    ("ServiceAccount", "", "v1", true, NameKind::Dns1123Subdomain),
    ("Deployment", "apps", "v1", true, NameKind::Dns1123Subdomain),
    ("ReplicaSet", "apps", "v1", true, NameKind::Dns1123Subdomain),
    ("DaemonSet", "apps", "v1", true, NameKind::Dns1123Subdomain),
    (
        "StatefulSet",
        "apps",
        "v1",
        true,
        NameKind::Dns1123Subdomain,
    ),
    (
        "ControllerRevision",
        "apps",
        "v1",
        true,
        NameKind::Dns1123Subdomain,
    ),
    ("Job", "batch", "v1", true, NameKind::Dns1123Subdomain),
    ("CronJob", "batch", "v1", true, NameKind::Dns1123Subdomain),
    (
        "Lease",
        "coordination.k8s.io",
        "v1",
        true,
        NameKind::Dns1123Subdomain,
    ),
    (
        "EndpointSlice",
        "discovery.k8s.io",
        "v1",
        true,
        NameKind::Dns1123Subdomain,
    ),
    (
        "HorizontalPodAutoscaler",
        "autoscaling",
        "v2",
        true,
        NameKind::Dns1123Subdomain,
    ),
    (
        "RuntimeClass",
        "node.k8s.io",
        "v1",
        false,
        NameKind::Dns1123Subdomain,
    ),
    (
        "PodDisruptionBudget",
        "policy",
        "v1",
        true,
        NameKind::Dns1123Subdomain,
    ),
    (
        "Ingress",
        "networking.k8s.io",
        "v1",
        true,
        NameKind::Dns1123Subdomain,
    ),
    (
        "IngressClass",
        "networking.k8s.io",
        "v1",
        false,
        NameKind::Dns1123Subdomain,
    ),
];

fn find(kind: &str) -> Option<&'static (&'static str, &'static str, &'static str, bool, NameKind)> {
    KINDS.iter().find(|k| k.0 == kind)
}

/// API group of a known kind (`""` for core).
pub fn group_of(kind: &str) -> Option<&'static str> {
    find(kind).map(|k| k.1)
}

/// `apiVersion` of a known kind, e.g. `apps/v1`.
pub fn api_version_of(kind: &str) -> Option<String> {
    find(kind).map(|k| {
        if k.1.is_empty() {
            k.2.to_string()
        } else {
            format!("{}/{}", k.1, k.2)
        }
    })
}

/// Whether a known kind is namespaced (`None` for unknown kinds).
pub fn is_namespaced(kind: &str) -> Option<bool> {
    find(kind).map(|k| k.3)
}

/// The name validation a kind uses (DNS-1123 subdomain for unknown kinds).
pub fn name_kind(kind: &str) -> NameKind {
    find(kind).map_or(NameKind::Dns1123Subdomain, |k| k.4)
}

/// All kinds with defaulting/validation support.
pub fn known_kinds() -> Vec<&'static str> {
    KINDS.iter().map(|k| k.0).collect()
}
