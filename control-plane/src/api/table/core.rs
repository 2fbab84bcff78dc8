//! Core (`v1`) printers: Node, Namespace, Service, ConfigMap, Secret,
//! ServiceAccount, Endpoints and PodTemplate. Pods, Events and volumes live in
//! their own modules.

use std::collections::BTreeSet;

use jiff::Timestamp;
use serde_json::{json, Value};

use super::access::{
    arr_at, at, bool_at, created, format_labels, int_at, layout_containers, map_len, name, str_at,
    str_or, string_map,
};
use super::duration::since;
use super::{col, wide, Printer, Row, AGE, NAME};

fn age(v: &Value, now: Timestamp) -> Value {
    json!(since(created(v), now))
}

// ---------------------------------------------------------------- Node

pub(crate) static NODE: Printer = Printer {
    kinds: &["Node"],
    columns: &[
        NAME,
        col("Status", "string", "The status of the node"),
        col("Roles", "string", "The roles of the node"),
        AGE,
        col("Version", "string", "Kubelet Version reported by the node."),
        wide(
            "Internal-IP",
            "string",
            "List of addresses reachable to the node.",
        ),
        wide(
            "External-IP",
            "string",
            "List of addresses reachable to the node.",
        ),
        wide("OS-Image", "string", "OS Image reported by the node."),
        wide(
            "Kernel-Version",
            "string",
            "Kernel Version reported by the node.",
        ),
        wide(
            "Container-Runtime",
            "string",
            "ContainerRuntime Version reported by the node.",
        ),
    ],
    row: node_row,
};

/// `findNodeRoles`: `node-role.kubernetes.io/<role>` and `kubernetes.io/role`.
fn node_roles(node: &Value) -> String {
    let mut roles = BTreeSet::new();
    for (k, v) in string_map(node, &["metadata", "labels"]) {
        if let Some(role) = k.strip_prefix("node-role.kubernetes.io/") {
            if !role.is_empty() {
                roles.insert(role);
            }
        } else if k == "kubernetes.io/role" && !v.is_empty() {
            roles.insert(v);
        }
    }
    if roles.is_empty() {
        "<none>".to_string()
    } else {
        roles.into_iter().collect::<Vec<_>>().join(",")
    }
}

fn node_address(node: &Value, kind: &str) -> String {
    arr_at(node, &["status", "addresses"])
        .iter()
        .find(|a| str_at(a, &["type"]) == kind)
        .map_or_else(
            || "<none>".to_string(),
            |a| str_at(a, &["address"]).to_string(),
        )
}

fn node_row(node: &Value, now: Timestamp) -> Row {
    // Go keys conditions by type, so the last `Ready` condition wins.
    let ready = arr_at(node, &["status", "conditions"])
        .iter()
        .rev()
        .find(|c| str_at(c, &["type"]) == "Ready");
    let mut status = vec![match ready {
        Some(c) if str_at(c, &["status"]) == "True" => "Ready",
        Some(_) => "NotReady",
        None => "Unknown",
    }];
    if bool_at(node, &["spec", "unschedulable"]) {
        status.push("SchedulingDisabled");
    }
    let info = |field: &str| str_or(node, &["status", "nodeInfo", field], "<unknown>");
    vec![
        json!(name(node)),
        json!(status.join(",")),
        json!(node_roles(node)),
        age(node, now),
        json!(str_at(node, &["status", "nodeInfo", "kubeletVersion"])),
        json!(node_address(node, "InternalIP")),
        json!(node_address(node, "ExternalIP")),
        json!(info("osImage")),
        json!(info("kernelVersion")),
        json!(info("containerRuntimeVersion")),
    ]
    .into()
}

// ---------------------------------------------------------------- Namespace

pub(crate) static NAMESPACE: Printer = Printer {
    kinds: &["Namespace"],
    columns: &[
        NAME,
        col("Status", "string", "The status of the namespace"),
        AGE,
    ],
    row: |ns, now| {
        // The API server defaults an unset phase to Active.
        vec![
            json!(name(ns)),
            json!(str_or(ns, &["status", "phase"], "Active")),
            age(ns, now),
        ]
        .into()
    },
};

// ---------------------------------------------------------------- Service

pub(crate) static SERVICE: Printer = Printer {
    kinds: &["Service"],
    columns: &[
        NAME,
        col(
            "Type",
            "string",
            "Type determines how the Service is exposed.",
        ),
        col("Cluster-IP", "string", "The IP address of the service."),
        col(
            "External-IP",
            "string",
            "The external IP addresses of the service.",
        ),
        col(
            "Port(s)",
            "string",
            "The list of ports exposed by this service.",
        ),
        AGE,
        wide(
            "Selector",
            "string",
            "Route service traffic to pods with label keys and values matching this selector.",
        ),
    ],
    row: service_row,
};

/// `loadBalancerStatusStringer` (wide, so never clipped): sorted, unique.
pub(crate) fn load_balancer_ips(status_lb: Option<&Value>) -> String {
    let ingress = status_lb.map_or(&[][..], |lb| arr_at(lb, &["ingress"]));
    let set: BTreeSet<&str> = ingress
        .iter()
        .filter_map(|i| match (str_at(i, &["ip"]), str_at(i, &["hostname"])) {
            ("", "") => None,
            ("", host) => Some(host),
            (ip, _) => Some(ip),
        })
        .collect();
    set.into_iter().collect::<Vec<_>>().join(",")
}

fn strings(v: &Value, path: &[&str]) -> Vec<String> {
    arr_at(v, path)
        .iter()
        .map(|s| s.as_str().unwrap_or("").to_string())
        .collect()
}

fn service_external_ip(svc: &Value, svc_type: &str) -> String {
    let external_ips = strings(svc, &["spec", "externalIPs"]);
    match svc_type {
        "ClusterIP" | "NodePort" if !external_ips.is_empty() => external_ips.join(","),
        "ClusterIP" | "NodePort" => "<none>".to_string(),
        "LoadBalancer" => {
            let lb = load_balancer_ips(at(svc, &["status", "loadBalancer"]));
            if !external_ips.is_empty() {
                let mut all: Vec<String> = Vec::new();
                if !lb.is_empty() {
                    all.extend(lb.split(',').map(str::to_string));
                }
                all.extend(external_ips);
                all.join(",")
            } else if !lb.is_empty() {
                lb
            } else {
                "<pending>".to_string()
            }
        }
        "ExternalName" => str_at(svc, &["spec", "externalName"]).to_string(),
        _ => "<unknown>".to_string(),
    }
}

fn service_ports(svc: &Value) -> String {
    let ports: Vec<String> = arr_at(svc, &["spec", "ports"])
        .iter()
        .map(|p| {
            let port = int_at(p, &["port"]);
            let protocol = str_or(p, &["protocol"], "TCP");
            match int_at(p, &["nodePort"]) {
                n if n > 0 => format!("{port}:{n}/{protocol}"),
                _ => format!("{port}/{protocol}"),
            }
        })
        .collect();
    if ports.is_empty() {
        "<none>".to_string()
    } else {
        ports.join(",")
    }
}

fn service_row(svc: &Value, now: Timestamp) -> Row {
    // The API server defaults an unset type to ClusterIP.
    let svc_type = str_or(svc, &["spec", "type"], "ClusterIP");
    let cluster_ips = arr_at(svc, &["spec", "clusterIPs"]);
    let cluster_ip = match cluster_ips.first() {
        Some(ip) => ip.as_str().unwrap_or("").to_string(),
        None => str_or(svc, &["spec", "clusterIP"], "<none>").to_string(),
    };
    vec![
        json!(name(svc)),
        json!(svc_type),
        json!(cluster_ip),
        json!(service_external_ip(svc, svc_type)),
        json!(service_ports(svc)),
        age(svc, now),
        json!(format_labels(svc, &["spec", "selector"])),
    ]
    .into()
}

// ---------------------------------------------------------------- ConfigMap, Secret, ServiceAccount

pub(crate) static CONFIG_MAP: Printer = Printer {
    kinds: &["ConfigMap"],
    columns: &[
        NAME,
        col("Data", "string", "Data contains the configuration data."),
        AGE,
    ],
    row: |cm, now| {
        let count = map_len(cm, &["data"]) + map_len(cm, &["binaryData"]);
        vec![json!(name(cm)), json!(count), age(cm, now)].into()
    },
};

pub(crate) static SECRET: Printer = Printer {
    kinds: &["Secret"],
    columns: &[
        NAME,
        col(
            "Type",
            "string",
            "Used to facilitate programmatic handling of secret data.",
        ),
        col("Data", "string", "Data contains the secret data."),
        AGE,
    ],
    row: |secret, now| {
        // `stringData` is merged into `data` on write; count the union.
        let mut keys: BTreeSet<&str> = BTreeSet::new();
        for field in ["data", "stringData"] {
            if let Some(m) = at(secret, &[field]).and_then(Value::as_object) {
                keys.extend(m.keys().map(String::as_str));
            }
        }
        vec![
            json!(name(secret)),
            json!(str_or(secret, &["type"], "Opaque")),
            json!(keys.len()),
            age(secret, now),
        ]
        .into()
    },
};

pub(crate) static SERVICE_ACCOUNT: Printer = Printer {
    kinds: &["ServiceAccount"],
    columns: &[
        NAME,
        col(
            "Secrets",
            "string",
            "Secrets is a list of the secrets used by this service account.",
        ),
        AGE,
    ],
    row: |sa, now| {
        let secrets = arr_at(sa, &["secrets"]).len();
        vec![json!(name(sa)), json!(secrets), age(sa, now)].into()
    },
};

// ---------------------------------------------------------------- Endpoints

pub(crate) static ENDPOINTS: Printer = Printer {
    kinds: &["Endpoints"],
    columns: &[
        NAME,
        col(
            "Endpoints",
            "string",
            "The set of all endpoints is the union of all subsets.",
        ),
        AGE,
    ],
    row: |ep, now| vec![json!(name(ep)), json!(format_endpoints(ep)), age(ep, now)].into(),
};

/// Go's `net.JoinHostPort`.
fn join_host_port(host: &str, port: i64) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

/// `formatEndpoints(endpoints, nil)`: up to three addresses, then a count.
fn format_endpoints(ep: &Value) -> String {
    let subsets = arr_at(ep, &["subsets"]);
    if subsets.is_empty() {
        return "<none>".to_string();
    }
    const MAX: usize = 3;
    let mut list: Vec<String> = Vec::new();
    let mut more = false;
    let mut count: usize = 0;
    for ss in subsets {
        let addresses = arr_at(ss, &["addresses"]);
        let ports = arr_at(ss, &["ports"]);
        if ports.is_empty() {
            // Headless services may have no ports.
            count += addresses.len();
            for addr in addresses {
                if list.len() == MAX {
                    more = true;
                    break;
                }
                list.push(str_at(addr, &["ip"]).to_string());
            }
            continue;
        }
        for port in ports {
            count += addresses.len();
            for addr in addresses {
                if list.len() == MAX {
                    more = true;
                    break;
                }
                list.push(join_host_port(
                    str_at(addr, &["ip"]),
                    int_at(port, &["port"]),
                ));
            }
        }
    }
    let joined = list.join(",");
    if more {
        format!("{joined} + {} more...", count.saturating_sub(MAX))
    } else {
        joined
    }
}

// ---------------------------------------------------------------- PodTemplate

pub(crate) static POD_TEMPLATE: Printer = Printer {
    kinds: &["PodTemplate"],
    columns: &[
        NAME,
        col(
            "Containers",
            "string",
            "Names of each container in the template.",
        ),
        col(
            "Images",
            "string",
            "Images referenced by each container in the template.",
        ),
        col("Pod Labels", "string", "The labels for the pod template."),
    ],
    row: |pt, _now| {
        let (names, images) = layout_containers(at(pt, &["template", "spec"]));
        vec![
            json!(name(pt)),
            json!(names),
            json!(images),
            json!(format_labels(pt, &["template", "metadata", "labels"])),
        ]
        .into()
    },
};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints_formatting() {
        let ep = json!({"subsets": [
            {"addresses": [{"ip": "10.0.0.1"}, {"ip": "10.0.0.2"}], "ports": [{"port": 80}, {"port": 443}]},
            {"addresses": [{"ip": "fd00::1"}]}
        ]});
        assert_eq!(
            format_endpoints(&ep),
            "10.0.0.1:80,10.0.0.2:80,10.0.0.1:443 + 2 more..."
        );
        let v6 = json!({"subsets": [{"addresses": [{"ip": "fd00::1"}], "ports": [{"port": 53}]}]});
        assert_eq!(format_endpoints(&v6), "[fd00::1]:53");
        assert_eq!(format_endpoints(&json!({})), "<none>");
    }
}
