//! Networking, RBAC, scheduling, storage, policy and admission printers, and
//! the API server's generic `Name`/`Created At` table for built-in kinds
//! without a printer (Role, ClusterRole, LimitRange,
//! CustomResourceDefinition).

use jiff::Timestamp;
use serde_json::{json, Value};

use super::access::{
    arr_at, at, bool_at, created, format_label_selector, int_at, int_or_string, name, opt_int,
    opt_str, str_at, str_or,
};
use super::core::load_balancer_ips;
use super::duration::since;
use super::{col, wide, Printer, Row, AGE, AGE_DESC, NAME};

fn age(v: &Value, now: Timestamp) -> Value {
    json!(since(created(v), now))
}

// ---------------------------------------------------------------- Ingress, IngressClass

pub(crate) static INGRESS: Printer = Printer {
    kinds: &["Ingress"],
    columns: &[
        NAME,
        col("Class", "string", "The name of the IngressClass resource that should be used for additional configuration"),
        col("Hosts", "string", "Hosts that incoming requests are matched against before the ingress rule"),
        col("Address", "string", "Address is a list containing ingress points for the load-balancer"),
        col("Ports", "string", "Ports of TLS configurations that open"),
        AGE,
    ],
    row: |ing, now| {
        let ports = if arr_at(ing, &["spec", "tls"]).is_empty() {
            "80"
        } else {
            "80, 443"
        };
        vec![
            json!(name(ing)),
            json!(opt_str(ing, &["spec", "ingressClassName"]).unwrap_or("<none>")),
            json!(format_hosts(arr_at(ing, &["spec", "rules"]))),
            json!(load_balancer_ips(at(ing, &["status", "loadBalancer"]))),
            json!(ports),
            age(ing, now),
        ]
        .into()
    },
};

/// `formatHosts`: up to three hosts, `*` when none.
fn format_hosts(rules: &[Value]) -> String {
    const MAX: usize = 3;
    let mut list: Vec<&str> = Vec::new();
    let mut more = false;
    for rule in rules {
        if list.len() == MAX {
            more = true;
        }
        let host = str_at(rule, &["host"]);
        if !more && !host.is_empty() {
            list.push(host);
        }
    }
    if list.is_empty() {
        return "*".to_string();
    }
    let joined = list.join(",");
    if more {
        format!("{joined} + {} more...", rules.len().saturating_sub(MAX))
    } else {
        joined
    }
}

pub(crate) static INGRESS_CLASS: Printer = Printer {
    kinds: &["IngressClass"],
    columns: &[
        NAME,
        col(
            "Controller",
            "string",
            "Controller that is responsible for handling this class",
        ),
        col(
            "Parameters",
            "string",
            "A reference to a resource with additional parameters",
        ),
        AGE,
    ],
    row: |ic, now| {
        let parameters = match at(ic, &["spec", "parameters"]) {
            Some(p) => {
                let mut s = str_at(p, &["kind"]).to_string();
                if let Some(group) = opt_str(p, &["apiGroup"]) {
                    s = format!("{s}.{group}");
                }
                format!("{s}/{}", str_at(p, &["name"]))
            }
            None => "<none>".to_string(),
        };
        vec![
            json!(name(ic)),
            json!(str_at(ic, &["spec", "controller"])),
            json!(parameters),
            age(ic, now),
        ]
        .into()
    },
};

// ---------------------------------------------------------------- EndpointSlice, NetworkPolicy

pub(crate) static ENDPOINT_SLICE: Printer = Printer {
    kinds: &["EndpointSlice"],
    columns: &[
        NAME,
        col(
            "AddressType",
            "string",
            "addressType specifies the type of address carried by this EndpointSlice.",
        ),
        col(
            "Ports",
            "string",
            "ports specifies the list of network ports exposed by each endpoint in this slice.",
        ),
        col(
            "Endpoints",
            "string",
            "endpoints is a list of unique endpoints in this slice.",
        ),
        AGE,
    ],
    row: |slice, now| {
        let ports: Vec<String> = arr_at(slice, &["ports"])
            .iter()
            .map(|p| match (opt_int(p, &["port"]), opt_str(p, &["name"])) {
                (Some(n), _) => n.to_string(),
                (None, Some(n)) => n.to_string(),
                (None, None) => "*".to_string(),
            })
            .collect();
        let addresses: Vec<String> = arr_at(slice, &["endpoints"])
            .iter()
            .flat_map(|e| arr_at(e, &["addresses"]))
            .map(|a| a.as_str().unwrap_or("").to_string())
            .collect();
        vec![
            json!(name(slice)),
            json!(str_at(slice, &["addressType"])),
            json!(list_with_more(ports)),
            json!(list_with_more(addresses)),
            age(slice, now),
        ]
        .into()
    },
};

/// `listWithMoreString` over a full list: three items, then a count.
fn list_with_more(all: Vec<String>) -> String {
    const MAX: usize = 3;
    let count = all.len();
    let joined = all.into_iter().take(MAX).collect::<Vec<_>>().join(",");
    if count > MAX {
        format!("{joined} + {} more...", count - MAX)
    } else if joined.is_empty() {
        "<unset>".to_string()
    } else {
        joined
    }
}

pub(crate) static NETWORK_POLICY: Printer = Printer {
    kinds: &["NetworkPolicy"],
    columns: &[
        NAME,
        col(
            "Pod-Selector",
            "string",
            "Selects the pods to which this NetworkPolicy object applies.",
        ),
        AGE,
    ],
    row: |np, now| {
        // `&obj.Spec.PodSelector` is never nil: a missing one selects all.
        let empty = json!({});
        let sel = at(np, &["spec", "podSelector"]).unwrap_or(&empty);
        vec![
            json!(name(np)),
            json!(format_label_selector(Some(sel))),
            age(np, now),
        ]
        .into()
    },
};

// ---------------------------------------------------------------- RoleBinding, ClusterRoleBinding

pub(crate) static ROLE_BINDING: Printer = Printer {
    kinds: &["RoleBinding", "ClusterRoleBinding"],
    columns: &[
        NAME,
        col("Role", "string", "RoleRef can reference a Role in the current namespace or a ClusterRole in the global namespace."),
        AGE,
        wide("Users", "string", "Users in the roleBinding"),
        wide("Groups", "string", "Groups in the roleBinding"),
        wide("ServiceAccounts", "string", "ServiceAccounts in the roleBinding"),
    ],
    row: |rb, now| {
        let role = format!(
            "{}/{}",
            str_at(rb, &["roleRef", "kind"]),
            str_at(rb, &["roleRef", "name"])
        );
        // `rbac.SubjectsStrings`.
        let (mut users, mut groups, mut sas) = (Vec::new(), Vec::new(), Vec::new());
        for s in arr_at(rb, &["subjects"]) {
            let subject = str_at(s, &["name"]).to_string();
            match str_at(s, &["kind"]) {
                "ServiceAccount" => sas.push(format!("{}/{subject}", str_at(s, &["namespace"]))),
                "User" => users.push(subject),
                "Group" => groups.push(subject),
                _ => {}
            }
        }
        vec![
            json!(name(rb)),
            json!(role),
            age(rb, now),
            json!(users.join(", ")),
            json!(groups.join(", ")),
            json!(sas.join(", ")),
        ]
        .into()
    },
};

// ---------------------------------------------------------------- Lease, PriorityClass, StorageClass

pub(crate) static LEASE: Printer = Printer {
    kinds: &["Lease"],
    columns: &[
        NAME,
        col(
            "Holder",
            "string",
            "holderIdentity contains the identity of the holder of a current lease.",
        ),
        AGE,
    ],
    row: |lease, now| {
        vec![
            json!(name(lease)),
            json!(str_at(lease, &["spec", "holderIdentity"])),
            age(lease, now),
        ]
        .into()
    },
};

pub(crate) static PRIORITY_CLASS: Printer = Printer {
    kinds: &["PriorityClass"],
    columns: &[
        NAME,
        col("Value", "integer", "The value of this priority class."),
        col(
            "Global-Default",
            "boolean",
            "Whether this priority class is the default for pods without one.",
        ),
        AGE,
        col(
            "PreemptionPolicy",
            "string",
            "The policy for preempting pods with lower priority.",
        ),
    ],
    row: |pc, now| {
        vec![
            json!(name(pc)),
            json!(int_at(pc, &["value"])),
            json!(bool_at(pc, &["globalDefault"])),
            age(pc, now),
            json!(str_or(pc, &["preemptionPolicy"], "PreemptLowerPriority")),
        ]
        .into()
    },
};

pub(crate) static STORAGE_CLASS: Printer = Printer {
    kinds: &["StorageClass"],
    columns: &[
        NAME,
        col("Provisioner", "string", "provisioner indicates the type of the provisioner."),
        col("ReclaimPolicy", "string", "reclaimPolicy controls the reclaimPolicy for dynamically provisioned PersistentVolumes."),
        col("VolumeBindingMode", "string", "volumeBindingMode indicates how PersistentVolumeClaims should be provisioned and bound."),
        col("AllowVolumeExpansion", "string", "allowVolumeExpansion shows whether the storage class allow volume expand."),
        AGE,
    ],
    row: |sc, now| {
        let annotation = |key: &str| str_at(sc, &["metadata", "annotations", key]) == "true";
        let mut shown = name(sc).to_string();
        if annotation("storageclass.kubernetes.io/is-default-class")
            || annotation("storageclass.beta.kubernetes.io/is-default-class")
        {
            shown.push_str(" (default)");
        }
        vec![
            json!(shown),
            json!(str_at(sc, &["provisioner"])),
            json!(str_or(sc, &["reclaimPolicy"], "Delete")),
            json!(str_or(sc, &["volumeBindingMode"], "Immediate")),
            json!(bool_at(sc, &["allowVolumeExpansion"])),
            age(sc, now),
        ]
        .into()
    },
};

// ---------------------------------------------------------------- PodDisruptionBudget, webhooks

pub(crate) static POD_DISRUPTION_BUDGET: Printer = Printer {
    kinds: &["PodDisruptionBudget"],
    columns: &[
        NAME,
        col(
            "Min Available",
            "string",
            "The minimum number of pods that must be available.",
        ),
        col(
            "Max Unavailable",
            "string",
            "The maximum number of pods that may be unavailable.",
        ),
        col(
            "Allowed Disruptions",
            "integer",
            "Calculated number of pods that may be disrupted at this time.",
        ),
        AGE,
    ],
    row: |pdb, now| {
        let bound = |field: &str| match at(pdb, &["spec", field]) {
            Some(v) => int_or_string(v),
            None => "N/A".to_string(),
        };
        vec![
            json!(name(pdb)),
            json!(bound("minAvailable")),
            json!(bound("maxUnavailable")),
            json!(int_at(pdb, &["status", "disruptionsAllowed"])),
            age(pdb, now),
        ]
        .into()
    },
};

pub(crate) static WEBHOOK_CONFIGURATION: Printer = Printer {
    kinds: &[
        "MutatingWebhookConfiguration",
        "ValidatingWebhookConfiguration",
    ],
    columns: &[
        NAME,
        col(
            "Webhooks",
            "integer",
            "Webhooks indicates the number of webhooks registered in this configuration",
        ),
        AGE,
    ],
    row: |w, now| {
        vec![
            json!(name(w)),
            json!(arr_at(w, &["webhooks"]).len()),
            age(w, now),
        ]
        .into()
    },
};

// ---------------------------------------------------------------- generic built-in table

/// `rest.NewDefaultTableConvertor`: `Name` and `Created At` (RFC 3339, UTC).
pub(crate) static CREATED_AT: Printer = Printer {
    kinds: &[
        "Role",
        "ClusterRole",
        "LimitRange",
        "CustomResourceDefinition",
    ],
    columns: &[NAME, col("Created At", "date", AGE_DESC)],
    row: created_at_row,
};

fn created_at_row(v: &Value, _now: Timestamp) -> Row {
    // Go formats `time.Time{}` (unset) too.
    let stamp = match created(v) {
        Some(t) => {
            Timestamp::from_second(t.as_second()).map_or_else(|_| t.to_string(), |s| s.to_string())
        }
        None => "0001-01-01T00:00:00Z".to_string(),
    };
    vec![json!(name(v)), json!(stamp)].into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts() {
        let rules = json!([{"host": "a"}, {}, {"host": "b"}, {"host": "c"}, {"host": "d"}]);
        let rules = rules.as_array().map(Vec::as_slice).unwrap_or(&[]);
        assert_eq!(format_hosts(rules), "a,b,c + 2 more...");
        assert_eq!(format_hosts(&[]), "*");
    }

    #[test]
    fn more_lists() {
        assert_eq!(list_with_more(vec![]), "<unset>");
        let four: Vec<String> = ["1", "2", "3", "4"].iter().map(|s| s.to_string()).collect();
        assert_eq!(list_with_more(four), "1,2,3 + 1 more...");
    }
}
