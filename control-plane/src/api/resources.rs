//! The resources the API serves: one static table drives routing, discovery, OpenAPI and storage;
//! the custom resources CustomResourceDefinitions define (`crd::registry`) are looked up after it.

/// A subresource as discovery lists it (`pods/log`, `deployments/scale`).
#[derive(Debug)]
pub struct SubresourceDef {
    pub name: &'static str,
    pub group: &'static str,
    pub version: &'static str,
    pub kind: &'static str,
    pub verbs: &'static [&'static str],
}

#[derive(Debug)]
pub struct ResourceDef {
    pub group: &'static str,
    pub version: &'static str,
    pub plural: &'static str,
    pub singular: &'static str,
    pub kind: &'static str,
    pub namespaced: bool,
    pub short_names: &'static [&'static str],
    pub categories: &'static [&'static str],
    pub subresources: &'static [SubresourceDef],
    /// Whether `metadata.generation` counts spec changes.
    pub has_generation: bool,
    /// Whether PUT of a missing object creates it (Kubernetes' AllowCreateOnUpdate).
    pub create_on_update: bool,
    /// Set for a kind served at this version but stored at another ([`ALSO_SERVED`]).
    pub conversion: Option<&'static super::conversion::Conversion>,
}

pub const ALL_VERBS: &[&str] = &[
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];

pub const STATUS: SubresourceDef = SubresourceDef {
    name: "status",
    group: "",
    version: "",
    kind: "",
    verbs: &["get", "patch", "update"],
};

pub const SCALE: SubresourceDef = SubresourceDef {
    name: "scale",
    group: "autoscaling",
    version: "v1",
    kind: "Scale",
    verbs: &["get", "patch", "update"],
};

macro_rules! res {
    ($group:expr, $version:expr, $plural:expr, $singular:expr, $kind:expr, $ns:expr,
     short: $short:expr, cat: $cat:expr, sub: $sub:expr, gen: $gen:expr, cou: $cou:expr) => {
        ResourceDef {
            group: $group,
            version: $version,
            plural: $plural,
            singular: $singular,
            kind: $kind,
            namespaced: $ns,
            short_names: $short,
            categories: $cat,
            subresources: $sub,
            has_generation: $gen,
            create_on_update: $cou,
            conversion: None,
        }
    };
}

/// What `pods/proxy` and `services/proxy` accept (forwarded to the pod).
const PROXY_VERBS: &[&str] = &["create", "delete", "get", "patch", "update"];

pub static RESOURCES: &[ResourceDef] = &[
    res!("", "v1", "namespaces", "namespace", "Namespace", false, short: &["ns"], cat: &[],
        sub: &[STATUS, SubresourceDef { name: "finalize", group: "", version: "", kind: "", verbs: &["update"] }],
        gen: false, cou: false),
    res!("", "v1", "pods", "pod", "Pod", true, short: &["po"], cat: &["all"],
        sub: &[
            STATUS,
            SubresourceDef { name: "binding", group: "", version: "v1", kind: "Binding", verbs: &["create"] },
            SubresourceDef { name: "eviction", group: "policy", version: "v1", kind: "Eviction", verbs: &["create"] },
            SubresourceDef { name: "log", group: "", version: "v1", kind: "Pod", verbs: &["get"] },
            SubresourceDef { name: "exec", group: "", version: "v1", kind: "PodExecOptions", verbs: &["create", "get"] },
            SubresourceDef { name: "attach", group: "", version: "v1", kind: "PodAttachOptions", verbs: &["create", "get"] },
            SubresourceDef { name: "portforward", group: "", version: "v1", kind: "PodPortForwardOptions", verbs: &["create", "get"] },
            SubresourceDef { name: "proxy", group: "", version: "v1", kind: "PodProxyOptions", verbs: PROXY_VERBS },
        ],
        gen: false, cou: false),
    res!("", "v1", "nodes", "node", "Node", false, short: &["no"], cat: &[],
        sub: &[STATUS, SubresourceDef { name: "proxy", group: "", version: "v1", kind: "NodeProxyOptions", verbs: &["get"] }],
        gen: false, cou: false),
    res!("", "v1", "services", "service", "Service", true, short: &["svc"], cat: &["all"],
        sub: &[STATUS, SubresourceDef { name: "proxy", group: "", version: "v1", kind: "ServiceProxyOptions", verbs: PROXY_VERBS }],
        gen: false, cou: false),
    res!("", "v1", "endpoints", "endpoints", "Endpoints", true, short: &["ep"], cat: &[], sub: &[], gen: false, cou: true),
    res!("", "v1", "configmaps", "configmap", "ConfigMap", true, short: &["cm"], cat: &[], sub: &[], gen: false, cou: false),
    res!("", "v1", "persistentvolumeclaims", "persistentvolumeclaim", "PersistentVolumeClaim", true, short: &["pvc"], cat: &[], sub: &[STATUS], gen: false, cou: false),
    res!("", "v1", "secrets", "secret", "Secret", true, short: &[], cat: &[], sub: &[], gen: false, cou: false),
    res!("", "v1", "events", "event", "Event", true, short: &["ev"], cat: &[], sub: &[], gen: false, cou: true),
    res!("", "v1", "serviceaccounts", "serviceaccount", "ServiceAccount", true, short: &["sa"], cat: &[], sub: &[], gen: false, cou: false),
    res!("apps", "v1", "deployments", "deployment", "Deployment", true, short: &["deploy"], cat: &["all"], sub: &[STATUS, SCALE], gen: true, cou: false),
    res!("apps", "v1", "replicasets", "replicaset", "ReplicaSet", true, short: &["rs"], cat: &["all"], sub: &[STATUS, SCALE], gen: true, cou: false),
    res!("apps", "v1", "daemonsets", "daemonset", "DaemonSet", true, short: &["ds"], cat: &["all"], sub: &[STATUS], gen: true, cou: false),
    res!("apps", "v1", "statefulsets", "statefulset", "StatefulSet", true, short: &["sts"], cat: &["all"], sub: &[STATUS, SCALE], gen: true, cou: false),
    res!("apps", "v1", "controllerrevisions", "controllerrevision", "ControllerRevision", true, short: &[], cat: &[], sub: &[], gen: false, cou: false),
    res!("batch", "v1", "jobs", "job", "Job", true, short: &[], cat: &["all"], sub: &[STATUS], gen: true, cou: false),
    res!("batch", "v1", "cronjobs", "cronjob", "CronJob", true, short: &["cj"], cat: &["all"], sub: &[STATUS], gen: true, cou: false),
    res!("coordination.k8s.io", "v1", "leases", "lease", "Lease", true, short: &[], cat: &[], sub: &[], gen: false, cou: true),
    res!("discovery.k8s.io", "v1", "endpointslices", "endpointslice", "EndpointSlice", true, short: &[], cat: &[], sub: &[], gen: false, cou: false),
    res!("autoscaling", "v2", "horizontalpodautoscalers", "horizontalpodautoscaler", "HorizontalPodAutoscaler", true, short: &["hpa"], cat: &["all"], sub: &[STATUS], gen: true, cou: false),
    res!("node.k8s.io", "v1", "runtimeclasses", "runtimeclass", "RuntimeClass", false, short: &[], cat: &[], sub: &[], gen: false, cou: false),
    res!("policy", "v1", "poddisruptionbudgets", "poddisruptionbudget", "PodDisruptionBudget", true, short: &["pdb"], cat: &[], sub: &[STATUS], gen: true, cou: false),
    res!("networking.k8s.io", "v1", "ingresses", "ingress", "Ingress", true, short: &["ing"], cat: &[], sub: &[STATUS], gen: true, cou: false),
    // Kubernetes' IngressClass strategy counts spec changes in `generation` too.
    res!("networking.k8s.io", "v1", "ingressclasses", "ingressclass", "IngressClass", false, short: &[], cat: &[], sub: &[], gen: true, cou: false),
    res!("apiextensions.k8s.io", "v1", "customresourcedefinitions", "customresourcedefinition", "CustomResourceDefinition", false, short: &["crd", "crds"], cat: &["api-extensions"], sub: &[STATUS], gen: true, cou: false),
];

/// Kinds also served at an older version, converted to and from the stored one (the
/// `RESOURCES` entry of the same group and plural). Not in `RESOURCES`: controllers, garbage
/// collection and namespace deletion see each kind once.
pub static ALSO_SERVED: &[ResourceDef] = &[ResourceDef {
    conversion: Some(&super::conversion::HPA_V1),
    ..res!("autoscaling", "v1", "horizontalpodautoscalers", "horizontalpodautoscaler", "HorizontalPodAutoscaler", true, short: &["hpa"], cat: &["all"], sub: &[STATUS], gen: true, cou: false)
}];

impl ResourceDef {
    /// The store's resource key: `core/pods`, `apps/deployments`.
    pub fn store_resource(&self) -> String {
        let group = if self.group.is_empty() {
            "core"
        } else {
            self.group
        };
        format!("{group}/{}", self.plural)
    }

    /// `v1` or `apps/v1`.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.to_string()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    pub fn has_subresource(&self, name: &str) -> bool {
        self.subresources.iter().any(|s| s.name == name)
    }

    pub fn has_status(&self) -> bool {
        self.has_subresource("status")
    }
}

pub fn find(group: &str, version: &str, plural: &str) -> Option<&'static ResourceDef> {
    RESOURCES
        .iter()
        .chain(ALSO_SERVED)
        .find(|r| r.group == group && r.version == version && r.plural == plural)
        .or_else(|| super::crd::registry::find(group, version, plural))
}

pub fn find_kind(api_version: &str, kind: &str) -> Option<&'static ResourceDef> {
    RESOURCES
        .iter()
        .find(|r| r.api_version() == api_version && r.kind == kind)
        .or_else(|| super::crd::registry::find_kind(api_version, kind))
}

/// Whether `def` is one of the built-in kinds (not a custom resource).
pub fn is_builtin(def: &ResourceDef) -> bool {
    RESOURCES
        .iter()
        .chain(ALSO_SERVED)
        .any(|r| std::ptr::eq(r, def))
}

/// Every stored kind once: the static table, then each CRD's storage version. What controllers
/// that act on every kind (garbage collection, namespace deletion) go through.
pub fn stored_resources() -> Vec<&'static ResourceDef> {
    let mut out: Vec<&'static ResourceDef> = RESOURCES.iter().collect();
    out.extend(super::crd::registry::stored_defs());
    out
}

/// The group/versions served, in discovery order (core first, custom resources last).
pub fn group_versions() -> Vec<(&'static str, &'static str)> {
    let mut out: Vec<(&str, &str)> = Vec::new();
    for r in RESOURCES {
        if !out.contains(&(r.group, r.version)) {
            out.push((r.group, r.version));
        }
    }
    for gv in super::crd::registry::group_versions() {
        if !out.contains(&gv) {
            out.push(gv);
        }
    }
    out
}

pub fn resources_in<'a>(
    group: &'a str,
    version: &'a str,
) -> impl Iterator<Item = &'static ResourceDef> + 'a {
    RESOURCES
        .iter()
        .chain(ALSO_SERVED)
        .filter(move |r| r.group == group && r.version == version)
        .chain(super::crd::registry::resources_in(group, version))
}

/// Each group with its served versions, preferred (stored) first, in discovery order.
pub fn groups() -> Vec<(&'static str, Vec<&'static str>)> {
    let mut out: Vec<(&str, Vec<&str>)> = Vec::new();
    for (g, v) in group_versions()
        .into_iter()
        .chain(ALSO_SERVED.iter().map(|r| (r.group, r.version)))
    {
        match out.iter_mut().find(|(name, _)| *name == g) {
            Some((_, versions)) if !versions.contains(&v) => versions.push(v),
            Some(_) => {}
            None => out.push((g, vec![v])),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plurals_are_unique_per_group_and_kinds_resolve() {
        for r in RESOURCES {
            assert!(std::ptr::eq(find(r.group, r.version, r.plural).unwrap(), r));
            assert!(std::ptr::eq(
                find_kind(&r.api_version(), r.kind).unwrap(),
                r
            ));
        }
        assert_eq!(group_versions()[0], ("", "v1"));
    }
}
