//! Server-side `meta.k8s.io/v1` `Table` responses for `kubectl get`.
//!
//! `kubectl get` asks for `application/json;as=Table;v=v1;g=meta.k8s.io` and
//! prints whatever columns the server returns. The columns and cells here
//! follow `k8s.io/kubernetes/pkg/printers/internalversion/printers.go` as of
//! Kubernetes 1.32. Like the real API server (its `TableConvertor` always
//! generates with `Wide: true`), every row carries the priority-1 (`-o wide`)
//! cells too; kubectl hides them unless asked.

mod access;
mod apps;
mod autoscaling;
mod core;
mod duration;
mod event;
mod misc;
mod pod;
mod volume;

use jiff::Timestamp;
use serde_json::{json, Map, Value};

pub use duration::{human_duration_nanos, human_duration_secs};

/// The `includeObject` table option: what each row's `object` carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IncludeObject {
    /// No `object` in the rows.
    None,
    /// A `PartialObjectMetadata` holding the item's `metadata` (kubectl's
    /// default).
    #[default]
    Metadata,
    /// The whole item.
    Object,
}

impl IncludeObject {
    /// Parses the `includeObject` query parameter (`None`, `Metadata`,
    /// `Object`; empty means `Metadata`). `None` for anything else, which the
    /// real API server rejects with 400 Bad Request.
    pub fn from_query(value: &str) -> Option<Self> {
        match value {
            "None" => Some(Self::None),
            "" | "Metadata" => Some(Self::Metadata),
            "Object" => Some(Self::Object),
            _ => None,
        }
    }
}

/// One column definition (`metav1.TableColumnDefinition`).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Col {
    pub name: &'static str,
    pub ty: &'static str,
    pub format: &'static str,
    pub desc: &'static str,
    pub priority: i32,
}

/// A standard column.
pub(crate) const fn col(name: &'static str, ty: &'static str, desc: &'static str) -> Col {
    Col {
        name,
        ty,
        format: "",
        desc,
        priority: 0,
    }
}

/// A priority-1 (`-o wide`) column.
pub(crate) const fn wide(name: &'static str, ty: &'static str, desc: &'static str) -> Col {
    Col {
        name,
        ty,
        format: "",
        desc,
        priority: 1,
    }
}

pub(crate) const NAME_DESC: &str = "Name must be unique within a namespace. \
Is required when creating resources, although some resources may allow a client \
to request the generation of an appropriate name automatically. Name is primarily \
intended for creation idempotence and configuration definition. Cannot be updated.";

pub(crate) const AGE_DESC: &str = "CreationTimestamp is a timestamp representing the \
server time when this object was created. Populated by the system. Read-only. \
Null for lists.";

/// The `Name` column (format `name`).
pub(crate) const NAME: Col = Col {
    name: "Name",
    ty: "string",
    format: "name",
    desc: NAME_DESC,
    priority: 0,
};

/// The `Age` column.
pub(crate) const AGE: Col = col("Age", "string", AGE_DESC);

/// Wide `Containers` column of the workload printers.
pub(crate) const CONTAINERS: Col = wide(
    "Containers",
    "string",
    "Names of each container in the template.",
);

/// Wide `Images` column of the workload printers.
pub(crate) const IMAGES: Col = wide(
    "Images",
    "string",
    "Images referenced by each container in the template.",
);

/// Wide `Selector` column of the workload printers.
pub(crate) const SELECTOR: Col = wide(
    "Selector",
    "string",
    "A label query over the objects this one selects.",
);

/// One printed row: its cells and, for pods, row conditions.
pub(crate) struct Row {
    pub cells: Vec<Value>,
    pub conditions: Option<Value>,
}

impl From<Vec<Value>> for Row {
    fn from(cells: Vec<Value>) -> Self {
        Row {
            cells,
            conditions: None,
        }
    }
}

/// A printer: its columns and how to compute one item's row.
pub(crate) struct Printer {
    pub kinds: &'static [&'static str],
    pub columns: &'static [Col],
    pub row: fn(&Value, Timestamp) -> Row,
}

/// Every kind-specific printer.
fn printers() -> [&'static Printer; 32] {
    [
        &pod::POD,
        &core::NODE,
        &core::NAMESPACE,
        &core::SERVICE,
        &core::CONFIG_MAP,
        &core::SECRET,
        &event::EVENT,
        &core::SERVICE_ACCOUNT,
        &core::ENDPOINTS,
        &volume::PERSISTENT_VOLUME,
        &volume::PERSISTENT_VOLUME_CLAIM,
        &core::POD_TEMPLATE,
        &apps::DEPLOYMENT,
        &apps::REPLICA_SET,
        &apps::DAEMON_SET,
        &apps::CONTROLLER_REVISION,
        &apps::STATEFUL_SET,
        &apps::JOB,
        &apps::CRON_JOB,
        &apps::REPLICATION_CONTROLLER,
        &misc::INGRESS,
        &misc::INGRESS_CLASS,
        &misc::ENDPOINT_SLICE,
        &misc::NETWORK_POLICY,
        &misc::ROLE_BINDING,
        &misc::LEASE,
        &misc::PRIORITY_CLASS,
        &misc::STORAGE_CLASS,
        &misc::POD_DISRUPTION_BUDGET,
        &autoscaling::HORIZONTAL_POD_AUTOSCALER,
        &misc::WEBHOOK_CONFIGURATION,
        &misc::CREATED_AT,
    ]
}

static KINDS: &[&str] = &[
    "Pod",
    "Node",
    "Namespace",
    "Service",
    "ConfigMap",
    "Secret",
    "Event",
    "ServiceAccount",
    "Endpoints",
    "PersistentVolume",
    "PersistentVolumeClaim",
    "PodTemplate",
    "HorizontalPodAutoscaler",
    "Deployment",
    "ReplicaSet",
    "DaemonSet",
    "ControllerRevision",
    "StatefulSet",
    "Job",
    "CronJob",
    "ReplicationController",
    "Ingress",
    "IngressClass",
    "EndpointSlice",
    "NetworkPolicy",
    "RoleBinding",
    "ClusterRoleBinding",
    "Lease",
    "PriorityClass",
    "StorageClass",
    "PodDisruptionBudget",
    "MutatingWebhookConfiguration",
    "ValidatingWebhookConfiguration",
    "Role",
    "ClusterRole",
    "LimitRange",
    "CustomResourceDefinition",
];

/// The kinds with their own columns. Every other kind gets the default
/// `Name`, `Age` table (what a CustomResourceDefinition without
/// `additionalPrinterColumns` serves).
pub fn kinds_with_tables() -> &'static [&'static str] {
    KINDS
}

fn printer_for(kind: &str) -> &'static Printer {
    printers()
        .into_iter()
        .find(|p| p.kinds.iter().any(|k| k.eq_ignore_ascii_case(kind)))
        .unwrap_or(&DEFAULT)
}

/// The default table: `Name` and `Age` (type `date`), as the API server
/// serves a custom resource whose definition lists no printer columns.
static DEFAULT: Printer = Printer {
    kinds: &[],
    columns: &[NAME, col("Age", "date", AGE_DESC)],
    row: default_row,
};

fn default_row(item: &Value, now: Timestamp) -> Row {
    vec![
        json!(access::name(item)),
        json!(duration::since(access::created(item), now)),
    ]
    .into()
}

fn column_json(c: &Col) -> Value {
    json!({
        "name": c.name,
        "type": c.ty,
        "format": c.format,
        "description": c.desc,
        "priority": c.priority,
    })
}

fn row_object(item: &Value, include: IncludeObject) -> Option<Value> {
    match include {
        IncludeObject::None => None,
        IncludeObject::Object => Some(item.clone()),
        IncludeObject::Metadata => {
            let metadata = match item.get("metadata") {
                Some(m @ Value::Object(_)) => m.clone(),
                _ => Value::Object(Map::new()),
            };
            Some(json!({
                "kind": "PartialObjectMetadata",
                "apiVersion": "meta.k8s.io/v1",
                "metadata": metadata,
            }))
        }
    }
}

/// Builds the `meta.k8s.io/v1` `Table` for `items` of `kind` (e.g. `"Pod"`;
/// matched case-insensitively). `now` is the moment ages are measured from;
/// `list_meta` (`{resourceVersion, continue?, remainingItemCount?}`) becomes
/// the table's `metadata` (an empty object when it is not an object).
pub fn table_for(
    kind: &str,
    items: &[Value],
    now: Timestamp,
    include_object: IncludeObject,
    list_meta: Value,
) -> Value {
    let printer = printer_for(kind);
    let columns: Vec<Value> = printer.columns.iter().map(column_json).collect();
    let rows = items.iter().map(|item| ((printer.row)(item, now), item));
    assemble(columns, rows, include_object, list_meta)
}

/// The `Table` for `items` of the resource `def`: a custom resource's printer columns
/// (`crd::columns`), else the kind's printer ([`table_for`]).
pub fn table_for_def(
    def: &crate::api::resources::ResourceDef,
    items: &[Value],
    now: Timestamp,
    include_object: IncludeObject,
    list_meta: Value,
) -> Value {
    if !crate::api::resources::is_builtin(def) {
        if let Some(cr) = crate::api::crd::registry::lookup(def) {
            use crate::api::crd::columns;
            let rows = items
                .iter()
                .map(|item| (Row::from(columns::cells(&cr.columns, item, now)), item));
            return assemble(
                columns::definitions(&cr.columns),
                rows,
                include_object,
                list_meta,
            );
        }
    }
    table_for(def.kind, items, now, include_object, list_meta)
}

fn assemble<'a>(
    columns: Vec<Value>,
    rows: impl Iterator<Item = (Row, &'a Value)>,
    include_object: IncludeObject,
    list_meta: Value,
) -> Value {
    let rows: Vec<Value> = rows
        .map(|(row, item)| {
            let mut out = Map::new();
            out.insert("cells".to_string(), Value::Array(row.cells));
            if let Some(conditions) = row.conditions {
                out.insert("conditions".to_string(), conditions);
            }
            if let Some(object) = row_object(item, include_object) {
                out.insert("object".to_string(), object);
            }
            Value::Object(out)
        })
        .collect();
    let metadata = match list_meta {
        Value::Object(m) => Value::Object(m),
        _ => Value::Object(Map::new()),
    };
    json!({
        "kind": "Table",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": metadata,
        "columnDefinitions": columns,
        "rows": rows,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_listed_kind_has_a_printer_and_matching_cells() {
        let now: Timestamp = "2024-05-01T10:00:00Z".parse().unwrap();
        for kind in kinds_with_tables() {
            let p = printer_for(kind);
            assert!(!std::ptr::eq(p, &DEFAULT), "{kind} has no printer");
            // Odd objects must not panic and must fill every column.
            for odd in [json!({}), json!(null), json!({"metadata": 5, "spec": []})] {
                let row = (p.row)(&odd, now);
                assert_eq!(row.cells.len(), p.columns.len(), "{kind}");
            }
            // Events lead with Last Seen; their Name column is a wide one.
            let named = p.columns.iter().find(|c| c.name == "Name");
            assert_eq!(
                named.map(|c| (c.ty, c.format)),
                Some(("string", "name")),
                "{kind}"
            );
            if *kind != "Event" {
                assert_eq!(p.columns[0].name, "Name", "{kind}");
            }
        }
        for p in printers() {
            for k in p.kinds {
                assert!(KINDS.contains(k), "{k} missing from kinds_with_tables");
            }
        }
    }

    #[test]
    fn include_object_parsing() {
        assert_eq!(IncludeObject::from_query(""), Some(IncludeObject::Metadata));
        assert_eq!(IncludeObject::from_query("None"), Some(IncludeObject::None));
        assert_eq!(
            IncludeObject::from_query("Object"),
            Some(IncludeObject::Object)
        );
        assert_eq!(IncludeObject::from_query("all"), None);
    }
}

#[cfg(test)]
mod kind_tests;
