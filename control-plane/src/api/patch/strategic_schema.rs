//! Static patch-strategy schema used by the strategic merge patch engine.
//!
//! Mirrors the `patchStrategy` / `patchMergeKey` struct tags of the built-in
//! Kubernetes API types (k8s.io/api). Only fields that matter for merging are
//! listed: nested objects that lead to a merging list, and the lists
//! themselves. Every field that is not listed is a plain map (merged
//! recursively, without schema below it) or, if it is a list, replaced
//! atomically, which is the Kubernetes default.

/// How a list-valued field is patched.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListStrategy {
    /// The patch list replaces the original list (Kubernetes default).
    Atomic,
    /// `patchStrategy:"merge"` with `patchMergeKey`: a list of objects merged
    /// element-wise by the value of the given key.
    MergeByKey(&'static str),
    /// `patchStrategy:"merge"` without a merge key: a list of primitives merged
    /// as an (ordered) set union, e.g. `metadata.finalizers`.
    SetMerge,
}

/// Patch metadata of one field of an object type.
#[derive(Debug, Clone, Copy)]
pub struct FieldSchema {
    /// Schema of the field's value (for an object), or of its elements (for a
    /// list of objects). `None` means "no further schema": maps below merge
    /// recursively and lists below are atomic.
    pub child: Option<&'static TypeSchema>,
    /// Strategy used when the field holds a list.
    pub list: ListStrategy,
}

impl FieldSchema {
    /// A field with no schema information at all.
    pub const UNKNOWN: FieldSchema = FieldSchema {
        child: None,
        list: ListStrategy::Atomic,
    };
}

/// Patch metadata of an object type: its interesting fields by JSON name.
#[derive(Debug)]
pub struct TypeSchema {
    pub fields: &'static [(&'static str, FieldSchema)],
}

impl TypeSchema {
    /// Looks up the patch metadata of a field by its JSON name.
    pub fn field(&self, name: &str) -> Option<&FieldSchema> {
        self.fields
            .iter()
            .find(|(field, _)| *field == name)
            .map(|(_, schema)| schema)
    }
}

const fn object(schema: &'static TypeSchema) -> FieldSchema {
    FieldSchema {
        child: Some(schema),
        list: ListStrategy::Atomic,
    }
}

const fn merge_by(key: &'static str, elem: Option<&'static TypeSchema>) -> FieldSchema {
    FieldSchema {
        child: elem,
        list: ListStrategy::MergeByKey(key),
    }
}

const ATOMIC: FieldSchema = FieldSchema::UNKNOWN;
const SET: FieldSchema = FieldSchema {
    child: None,
    list: ListStrategy::SetMerge,
};

static OBJECT_META: TypeSchema = TypeSchema {
    fields: &[
        ("finalizers", SET),
        ("ownerReferences", merge_by("uid", None)),
        ("managedFields", ATOMIC),
    ],
};

static CONTAINER: TypeSchema = TypeSchema {
    fields: &[
        ("ports", merge_by("containerPort", None)),
        ("env", merge_by("name", None)),
        ("envFrom", ATOMIC),
        ("volumeMounts", merge_by("mountPath", None)),
        ("volumeDevices", merge_by("devicePath", None)),
        ("resizePolicy", ATOMIC),
    ],
};

static POD_SPEC: TypeSchema = TypeSchema {
    fields: &[
        ("containers", merge_by("name", Some(&CONTAINER))),
        ("initContainers", merge_by("name", Some(&CONTAINER))),
        // EphemeralContainerCommon carries the same tags as Container.
        ("ephemeralContainers", merge_by("name", Some(&CONTAINER))),
        ("volumes", merge_by("name", None)),
        ("imagePullSecrets", merge_by("name", None)),
        ("hostAliases", merge_by("ip", None)),
        // Kubernetes lists topologyKey+whenUnsatisfiable as map keys, but
        // the patchMergeKey tag is topologyKey alone.
        ("topologySpreadConstraints", merge_by("topologyKey", None)),
        ("resourceClaims", merge_by("name", None)),
        ("schedulingGates", merge_by("name", None)),
        ("tolerations", ATOMIC),
        ("readinessGates", ATOMIC),
    ],
};

static POD_STATUS: TypeSchema = TypeSchema {
    fields: &[
        ("conditions", merge_by("type", None)),
        ("podIPs", merge_by("ip", None)),
        ("hostIPs", merge_by("ip", None)),
        ("resourceClaimStatuses", merge_by("name", None)),
    ],
};

/// Any status whose only merging list is `conditions` keyed by `type`.
static CONDITIONS_STATUS: TypeSchema = TypeSchema {
    fields: &[("conditions", merge_by("type", None))],
};

static POD_TEMPLATE_SPEC: TypeSchema = TypeSchema {
    fields: &[
        ("metadata", object(&OBJECT_META)),
        ("spec", object(&POD_SPEC)),
    ],
};

/// Spec of Deployment, ReplicaSet, DaemonSet, ReplicationController, Job.
static WORKLOAD_SPEC: TypeSchema = TypeSchema {
    fields: &[("template", object(&POD_TEMPLATE_SPEC))],
};

static STATEFUL_SET_SPEC: TypeSchema = TypeSchema {
    fields: &[
        ("template", object(&POD_TEMPLATE_SPEC)),
        ("volumeClaimTemplates", ATOMIC),
    ],
};

static JOB_TEMPLATE_SPEC: TypeSchema = TypeSchema {
    fields: &[
        ("metadata", object(&OBJECT_META)),
        ("spec", object(&WORKLOAD_SPEC)),
    ],
};

static CRON_JOB_SPEC: TypeSchema = TypeSchema {
    fields: &[("jobTemplate", object(&JOB_TEMPLATE_SPEC))],
};

static SERVICE_SPEC: TypeSchema = TypeSchema {
    fields: &[("ports", merge_by("port", None))],
};

static NODE_SPEC: TypeSchema = TypeSchema {
    fields: &[
        ("podCIDRs", SET),
        // NodeSpec.Taints carries no patchStrategy tag: atomic.
        ("taints", ATOMIC),
    ],
};

static NODE_STATUS: TypeSchema = TypeSchema {
    fields: &[
        ("conditions", merge_by("type", None)),
        ("addresses", merge_by("type", None)),
    ],
};

static POD: TypeSchema = TypeSchema {
    fields: &[
        ("metadata", object(&OBJECT_META)),
        ("spec", object(&POD_SPEC)),
        ("status", object(&POD_STATUS)),
    ],
};

static POD_TEMPLATE: TypeSchema = TypeSchema {
    fields: &[
        ("metadata", object(&OBJECT_META)),
        ("template", object(&POD_TEMPLATE_SPEC)),
    ],
};

/// Deployment, ReplicaSet, DaemonSet, ReplicationController, Job.
static WORKLOAD: TypeSchema = TypeSchema {
    fields: &[
        ("metadata", object(&OBJECT_META)),
        ("spec", object(&WORKLOAD_SPEC)),
        ("status", object(&CONDITIONS_STATUS)),
    ],
};

static STATEFUL_SET: TypeSchema = TypeSchema {
    fields: &[
        ("metadata", object(&OBJECT_META)),
        ("spec", object(&STATEFUL_SET_SPEC)),
        ("status", object(&CONDITIONS_STATUS)),
    ],
};

static CRON_JOB: TypeSchema = TypeSchema {
    fields: &[
        ("metadata", object(&OBJECT_META)),
        ("spec", object(&CRON_JOB_SPEC)),
    ],
};

static SERVICE: TypeSchema = TypeSchema {
    fields: &[
        ("metadata", object(&OBJECT_META)),
        ("spec", object(&SERVICE_SPEC)),
        ("status", object(&CONDITIONS_STATUS)),
    ],
};

static NODE: TypeSchema = TypeSchema {
    fields: &[
        ("metadata", object(&OBJECT_META)),
        ("spec", object(&NODE_SPEC)),
        ("status", object(&NODE_STATUS)),
    ],
};

/// Namespace, HorizontalPodAutoscaler, PodDisruptionBudget, PersistentVolumeClaim.
static WITH_CONDITIONS: TypeSchema = TypeSchema {
    fields: &[
        ("metadata", object(&OBJECT_META)),
        ("status", object(&CONDITIONS_STATUS)),
    ],
};

static SERVICE_ACCOUNT: TypeSchema = TypeSchema {
    fields: &[
        ("metadata", object(&OBJECT_META)),
        ("secrets", merge_by("name", None)),
        ("imagePullSecrets", ATOMIC),
    ],
};

/// Kinds whose only merging lists live in `metadata`.
static METADATA_ONLY: TypeSchema = TypeSchema {
    fields: &[("metadata", object(&OBJECT_META))],
};

/// Root schema of a built-in kind, or `None` for kinds this table does not
/// know (those fall back to recursive map merge with atomic lists).
pub fn schema_for_kind(kind: &str) -> Option<&'static TypeSchema> {
    Some(match kind {
        "Pod" => &POD,
        "PodTemplate" => &POD_TEMPLATE,
        "Deployment" | "ReplicaSet" | "DaemonSet" | "ReplicationController" | "Job" => &WORKLOAD,
        "StatefulSet" => &STATEFUL_SET,
        "CronJob" => &CRON_JOB,
        "Service" => &SERVICE,
        "Node" => &NODE,
        "Namespace"
        | "HorizontalPodAutoscaler"
        | "PodDisruptionBudget"
        | "PersistentVolumeClaim" => &WITH_CONDITIONS,
        "ServiceAccount" => &SERVICE_ACCOUNT,
        // Endpoints.subsets and EndpointSlice endpoints/ports are atomic; so are every list
        // of an Ingress (rules, their paths, tls and its hosts, status ingress points).
        "Endpoints" | "EndpointSlice" | "ConfigMap" | "Secret" | "Event" | "ControllerRevision"
        | "Lease" | "RuntimeClass" | "Ingress" | "IngressClass" => &METADATA_ONLY,
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use super::super::strategic::strategic_merge;
    use serde_json::json;

    #[test]
    fn ingress_lists_are_atomic_and_finalizers_merge() {
        let original = json!({
            "metadata": {"finalizers": ["a"]},
            "spec": {
                "rules": [{"host": "a.example", "http": {"paths": [
                    {"path": "/", "pathType": "Prefix", "backend": {"service": {"name": "a", "port": {"number": 80}}}}
                ]}}],
                "tls": [{"hosts": ["a.example"], "secretName": "a"}],
            },
        });
        let patch = json!({
            "metadata": {"finalizers": ["b"]},
            "spec": {"rules": [{"host": "b.example"}], "tls": [{"hosts": ["b.example"]}]},
        });
        let out = strategic_merge(&original, &patch, "Ingress").expect("patch");
        assert_eq!(out["spec"]["rules"], json!([{"host": "b.example"}]));
        assert_eq!(out["spec"]["tls"], json!([{"hosts": ["b.example"]}]));
        assert_eq!(out["metadata"]["finalizers"], json!(["b", "a"]));
        assert!(super::schema_for_kind("IngressClass").is_some());
    }
}
