//! Service `clusterIP` and `nodePort` allocation from configurable ranges.

use std::collections::HashSet;
use std::net::Ipv4Addr;
use std::sync::Arc;

use serde_json::{json, Value};
use tokio::sync::{Mutex, OwnedMutexGuard};

use crate::api::status::Cause;

/// k3s' default service network: familiar to users coming from it.
pub const DEFAULT_SERVICE_CIDR: &str = "10.43.0.0/16";
/// Where in the service range the cluster DNS Service sits (kubeadm and k3s: the tenth address).
pub const DNS_SERVICE_OFFSET: u32 = 10;
/// Kubernetes' default NodePort range.
pub const DEFAULT_NODE_PORT_RANGE: &str = "30000-32767";

#[derive(Debug, thiserror::Error)]
pub enum AllocatorConfigError {
    #[error("service CIDR {0:?} is not an IPv4 CIDR like 10.43.0.0/16 (prefix 8 to 30)")]
    Cidr(String),
    #[error("node port range {0:?} is not a range like 30000-32767")]
    PortRange(String),
}

/// Hands out cluster IPs and node ports. Allocation reads the stored Services under one lock
/// that the caller holds until its write is committed, so two creates never pick the same one.
pub struct ServiceAllocator {
    base: u32,
    size: u32,
    ports: (u16, u16),
    lock: Arc<Mutex<()>>,
}

impl ServiceAllocator {
    pub fn new(cidr: &str, node_ports: &str) -> Result<Self, AllocatorConfigError> {
        let (ip, prefix) = cidr
            .split_once('/')
            .ok_or_else(|| AllocatorConfigError::Cidr(cidr.into()))?;
        let ip: Ipv4Addr = ip
            .parse()
            .map_err(|_| AllocatorConfigError::Cidr(cidr.into()))?;
        let prefix: u32 = prefix
            .parse()
            .map_err(|_| AllocatorConfigError::Cidr(cidr.into()))?;
        if !(8..=30).contains(&prefix) {
            return Err(AllocatorConfigError::Cidr(cidr.into()));
        }
        let mask = u32::MAX << (32 - prefix);
        let (lo, hi) = node_ports
            .split_once('-')
            .ok_or_else(|| AllocatorConfigError::PortRange(node_ports.into()))?;
        let lo: u16 = lo
            .trim()
            .parse()
            .map_err(|_| AllocatorConfigError::PortRange(node_ports.into()))?;
        let hi: u16 = hi
            .trim()
            .parse()
            .map_err(|_| AllocatorConfigError::PortRange(node_ports.into()))?;
        if lo == 0 || lo > hi {
            return Err(AllocatorConfigError::PortRange(node_ports.into()));
        }
        Ok(ServiceAllocator {
            base: u32::from(ip) & mask,
            size: 1 << (32 - prefix),
            ports: (lo, hi),
            lock: Arc::new(Mutex::new(())),
        })
    }

    pub async fn lock(&self) -> OwnedMutexGuard<()> {
        self.lock.clone().lock_owned().await
    }

    /// The first usable address: the `kubernetes` Service's.
    pub fn first_ip(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.base + 1)
    }

    /// The tenth address: the cluster DNS Service's (`kube-system/kube-dns`), as in
    /// Kubernetes and k3s.
    pub fn dns_ip(&self) -> Ipv4Addr {
        Ipv4Addr::from(self.base + DNS_SERVICE_OFFSET)
    }

    fn contains(&self, ip: Ipv4Addr) -> bool {
        let v = u32::from(ip);
        v > self.base && v < self.base + self.size - 1
    }

    /// Fills `spec.clusterIP(s)` and `nodePort`s of `svc`, keeping what `old` had, checking
    /// explicit choices against `others` (every other Service in the cluster).
    pub fn assign(&self, svc: &mut Value, old: Option<&Value>, others: &[Value]) -> Vec<Cause> {
        let mut causes = Vec::new();
        let Some(spec) = svc.get_mut("spec").and_then(Value::as_object_mut) else {
            return causes;
        };
        let svc_type = spec
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or("ClusterIP")
            .to_string();
        let family_causes = ipv4_only(spec);
        if !family_causes.is_empty() {
            return family_causes;
        }
        let used_ips: HashSet<String> = others
            .iter()
            .filter_map(|s| s.pointer("/spec/clusterIP").and_then(Value::as_str))
            .map(str::to_string)
            .collect();
        if svc_type == "ExternalName" {
            spec.remove("clusterIP");
            spec.remove("clusterIPs");
        } else {
            let old_ip = old
                .and_then(|o| o.pointer("/spec/clusterIP"))
                .and_then(Value::as_str)
                .map(str::to_string);
            let wanted = spec
                .get("clusterIP")
                .and_then(Value::as_str)
                .filter(|s| !s.is_empty())
                .map(str::to_string);
            let ip = match (wanted, old_ip) {
                (None, Some(old)) => Some(old),
                (Some(w), Some(old)) if w == old => Some(old),
                (Some(w), Some(old)) => {
                    causes.push(Cause {
                        reason: "FieldValueInvalid".into(),
                        message: format!(
                            "Invalid value: \"{w}\": field is immutable (it is {old})"
                        ),
                        field: "spec.clusterIP".into(),
                    });
                    Some(old)
                }
                (Some(w), None) if w == "None" => Some(w),
                (Some(w), None) => {
                    match w.parse::<Ipv4Addr>() {
                        Ok(ip) if !self.contains(ip) => {
                            causes.push(Cause {
                            reason: "FieldValueInvalid".into(),
                            message: format!(
                                "Invalid value: \"{w}\": provided IP is not in the valid range. The range of valid IPs is {}/{}",
                                Ipv4Addr::from(self.base),
                                32 - self.size.trailing_zeros()
                            ),
                            field: "spec.clusterIP".into(),
                        });
                            None
                        }
                        Ok(_) if used_ips.contains(&w) => {
                            causes.push(Cause {
                                reason: "FieldValueInvalid".into(),
                                message: format!(
                                    "Invalid value: \"{w}\": provided IP is already allocated"
                                ),
                                field: "spec.clusterIP".into(),
                            });
                            None
                        }
                        Ok(_) => Some(w),
                        Err(_) => {
                            causes.push(Cause {
                            reason: "FieldValueInvalid".into(),
                            message: format!("Invalid value: \"{w}\": must be a valid IPv4 address or \"None\""),
                            field: "spec.clusterIP".into(),
                        });
                            None
                        }
                    }
                }
                (None, None) => {
                    let free = (2..self.size - 1)
                        .map(|o| Ipv4Addr::from(self.base + o).to_string())
                        .find(|ip| !used_ips.contains(ip));
                    if free.is_none() {
                        causes.push(Cause {
                            reason: "FieldValueInvalid".into(),
                            message: "Internal error: no free cluster IP left in the service CIDR; widen --service-cidr".into(),
                            field: "spec.clusterIP".into(),
                        });
                    }
                    free
                }
            };
            if let Some(ip) = ip {
                spec.insert("clusterIP".into(), json!(ip));
                spec.insert("clusterIPs".into(), json!([ip]));
            }
        }
        // `allocateLoadBalancerNodePorts: false`: only the node ports asked for (or kept).
        let allocate = svc_type == "NodePort"
            || (svc_type == "LoadBalancer"
                && spec.get("allocateLoadBalancerNodePorts") != Some(&json!(false)));
        if svc_type == "NodePort" || svc_type == "LoadBalancer" {
            let mut used: HashSet<u64> = others
                .iter()
                .filter_map(|s| s.pointer("/spec/ports").and_then(Value::as_array))
                .flatten()
                .filter_map(|p| p.get("nodePort").and_then(Value::as_u64))
                .collect();
            let old_ports: Vec<Value> = old
                .and_then(|o| o.pointer("/spec/ports"))
                .and_then(Value::as_array)
                .cloned()
                .unwrap_or_default();
            if let Some(ports) = spec.get_mut("ports").and_then(Value::as_array_mut) {
                for (i, p) in ports.iter_mut().enumerate() {
                    let field = format!("spec.ports[{i}].nodePort");
                    match p.get("nodePort").and_then(Value::as_u64) {
                        Some(n) => {
                            let from_old = old_ports
                                .iter()
                                .any(|o| o.get("nodePort").and_then(Value::as_u64) == Some(n));
                            if !(self.ports.0 as u64..=self.ports.1 as u64).contains(&n) {
                                causes.push(Cause {
                                    reason: "FieldValueInvalid".into(),
                                    message: format!("Invalid value: {n}: provided port is not in the valid range. The range of valid ports is {}-{}", self.ports.0, self.ports.1),
                                    field,
                                });
                            } else if used.contains(&n) && !from_old {
                                causes.push(Cause {
                                    reason: "FieldValueInvalid".into(),
                                    message: format!(
                                        "Invalid value: {n}: provided port is already allocated"
                                    ),
                                    field,
                                });
                            } else {
                                used.insert(n);
                            }
                        }
                        None => {
                            let kept = old_ports
                                .iter()
                                .find(|o| {
                                    o.get("port") == p.get("port")
                                        && o.get("protocol") == p.get("protocol")
                                })
                                .and_then(|o| o.get("nodePort").and_then(Value::as_u64));
                            if kept.is_none() && !allocate {
                                continue;
                            }
                            let n = kept.or_else(|| {
                                (self.ports.0 as u64..=self.ports.1 as u64)
                                    .find(|n| !used.contains(n))
                            });
                            match n {
                                Some(n) => {
                                    used.insert(n);
                                    if let Some(o) = p.as_object_mut() {
                                        o.insert("nodePort".into(), json!(n));
                                    }
                                }
                                None => causes.push(Cause {
                                    reason: "FieldValueInvalid".into(),
                                    message: "no free node port left in the node port range; widen --service-node-port-range".into(),
                                    field,
                                }),
                            }
                        }
                    }
                }
            }
        }
        causes
    }
}

/// What the Service registry drops on update when the type changes
/// (`dropTypeDependentFields`): fields the new type cannot have, when the user left them as
/// they were (a changed value is the user's and fails validation instead). So
/// `kubectl patch -p '{"spec":{"type":"ClusterIP"}}'` on a LoadBalancer Service works, and
/// its node ports go back to the pool. A Service that is no longer a LoadBalancer loses its
/// `status.loadBalancer` at once.
pub fn drop_type_dependent_fields(new: &mut Value, old: &Value) {
    let null = Value::Null;
    let old_spec = old.get("spec").unwrap_or(&null);
    let old_ty = old_spec
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("ClusterIP");
    let Some(spec) = new.get_mut("spec").and_then(Value::as_object_mut) else {
        return;
    };
    let new_ty = spec
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("ClusterIP")
        .to_string();
    let same = |spec: &serde_json::Map<String, Value>, k: &str| {
        spec.get(k).filter(|v| !v.is_null()) == old_spec.get(k).filter(|v| !v.is_null())
    };
    let needs_ip = |t: &str| t != "ExternalName";
    if needs_ip(old_ty) && !needs_ip(&new_ty) {
        if same(spec, "clusterIP") && same(spec, "clusterIPs") {
            spec.remove("clusterIP");
            spec.remove("clusterIPs");
        }
        for k in ["ipFamilies", "ipFamilyPolicy"] {
            if same(spec, k) {
                spec.remove(k);
            }
        }
    }
    let needs_node_ports = |t: &str| t == "NodePort" || t == "LoadBalancer";
    if needs_node_ports(old_ty) && !needs_node_ports(&new_ty) {
        let node_ports = |ports: Option<&Value>| -> HashSet<u64> {
            ports
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|p| p.get("nodePort").and_then(Value::as_u64))
                .filter(|n| *n != 0)
                .collect()
        };
        let old_ports = node_ports(old_spec.get("ports"));
        if node_ports(spec.get("ports")).is_subset(&old_ports) {
            let ports = spec.get_mut("ports").and_then(Value::as_array_mut);
            for p in ports.into_iter().flatten().filter_map(Value::as_object_mut) {
                p.remove("nodePort");
            }
        }
    }
    let etp_local = |s: &serde_json::Map<String, Value>, t: &str| {
        t == "LoadBalancer" && s.get("externalTrafficPolicy") == Some(&json!("Local"))
    };
    let old_map = old_spec.as_object().cloned().unwrap_or_default();
    if etp_local(&old_map, old_ty) && !etp_local(spec, &new_ty) && same(spec, "healthCheckNodePort")
    {
        spec.remove("healthCheckNodePort");
    }
    if old_ty == "LoadBalancer" && new_ty != "LoadBalancer" {
        for k in ["allocateLoadBalancerNodePorts", "loadBalancerClass"] {
            if same(spec, k) {
                spec.remove(k);
            }
        }
    }
    let external = |s: &serde_json::Map<String, Value>, t: &str| {
        t == "LoadBalancer"
            || t == "NodePort"
            || (t == "ClusterIP"
                && s.get("externalIPs")
                    .and_then(Value::as_array)
                    .is_some_and(|a| !a.is_empty()))
    };
    if external(&old_map, old_ty) && !external(spec, &new_ty) && same(spec, "externalTrafficPolicy")
    {
        spec.remove("externalTrafficPolicy");
    }
    if new_ty != "LoadBalancer" {
        if let Some(status) = new.get_mut("status").and_then(Value::as_object_mut) {
            status.insert("loadBalancer".into(), json!({}));
        }
    }
}

fn cause(field: &str, message: String) -> Cause {
    Cause {
        reason: "FieldValueInvalid".into(),
        message,
        field: field.into(),
    }
}

/// The cluster serves IPv4 Services only (one IPv4 service CIDR): another family, or
/// demanding dual-stack, is refused as Kubernetes refuses a family it is not configured
/// for. Headless Services without a selector have no cluster IP and may name any family.
fn ipv4_only(spec: &serde_json::Map<String, Value>) -> Vec<Cause> {
    let headless = spec.get("clusterIP").and_then(Value::as_str) == Some("None");
    let selectorless = spec
        .get("selector")
        .and_then(Value::as_object)
        .is_none_or(serde_json::Map::is_empty);
    if headless && selectorless {
        return Vec::new();
    }
    let mut causes = Vec::new();
    if spec.get("ipFamilyPolicy").and_then(Value::as_str) == Some("RequireDualStack") {
        causes.push(cause(
            "spec.ipFamilyPolicy",
            "Invalid value: \"RequireDualStack\": this cluster is not configured for dual-stack services (it serves IPv4 only)".into(),
        ));
    }
    let families = spec.get("ipFamilies").and_then(Value::as_array);
    for (i, f) in families.into_iter().flatten().enumerate() {
        let f = f.as_str().unwrap_or("");
        if f != "IPv4" {
            causes.push(cause(
                &format!("spec.ipFamilies[{i}]"),
                format!("Invalid value: \"{f}\": not configured on this cluster (this cluster is IPv4-only)"),
            ));
        }
    }
    causes
}

#[cfg(test)]
mod tests {
    use super::*;

    fn svc(t: &str) -> Value {
        json!({"spec": {"type": t, "ports": [{"port": 80, "protocol": "TCP"}]}})
    }

    #[test]
    fn allocates_distinct_ips_and_ports() {
        let a = ServiceAllocator::new("10.43.0.0/16", "30000-30001").unwrap();
        let mut s1 = svc("NodePort");
        assert!(a.assign(&mut s1, None, &[]).is_empty());
        assert_eq!(s1["spec"]["clusterIP"], "10.43.0.2");
        assert_eq!(s1["spec"]["ports"][0]["nodePort"], 30000);
        let mut s2 = svc("NodePort");
        assert!(a
            .assign(&mut s2, None, std::slice::from_ref(&s1))
            .is_empty());
        assert_eq!(s2["spec"]["clusterIP"], "10.43.0.3");
        assert_eq!(s2["spec"]["ports"][0]["nodePort"], 30001);
        let mut s3 = svc("NodePort");
        let causes = a.assign(&mut s3, None, &[s1.clone(), s2]);
        assert_eq!(causes.len(), 1);
        // An update keeps what the old object had.
        let mut again = svc("NodePort");
        assert!(a.assign(&mut again, Some(&s1), &[]).is_empty());
        assert_eq!(again["spec"]["clusterIP"], "10.43.0.2");
        assert_eq!(again["spec"]["ports"][0]["nodePort"], 30000);
    }

    #[test]
    fn allocate_load_balancer_node_ports_false_is_honoured() {
        let a = ServiceAllocator::new("10.43.0.0/16", "30000-32767").unwrap();
        let mut s = json!({"spec": {"type": "LoadBalancer", "allocateLoadBalancerNodePorts": false,
            "ports": [{"port": 80, "protocol": "TCP"}, {"port": 81, "protocol": "TCP", "nodePort": 30081}]}});
        assert!(a.assign(&mut s, None, &[]).is_empty());
        assert_eq!(s["spec"]["ports"][0].get("nodePort"), None);
        assert_eq!(s["spec"]["ports"][1]["nodePort"], 30081);
        let mut s = svc("LoadBalancer");
        assert!(a.assign(&mut s, None, &[]).is_empty());
        assert_eq!(s["spec"]["ports"][0]["nodePort"], 30000);
    }

    #[test]
    fn taken_ip_and_port_name_the_field() {
        let a = ServiceAllocator::new("10.43.0.0/16", "30000-32767").unwrap();
        let taken =
            json!({"spec": {"clusterIP": "10.43.0.5", "ports": [{"port": 80, "nodePort": 30080}]}});
        let mut s = json!({"spec": {"type": "NodePort", "clusterIP": "10.43.0.5", "ports": [{"port": 80, "nodePort": 30080}]}});
        let causes = a.assign(&mut s, None, std::slice::from_ref(&taken));
        let got: Vec<(String, String)> = causes.into_iter().map(|c| (c.field, c.message)).collect();
        assert_eq!(
            got,
            [
                (
                    "spec.clusterIP".to_string(),
                    r#"Invalid value: "10.43.0.5": provided IP is already allocated"#.to_string()
                ),
                (
                    "spec.ports[0].nodePort".to_string(),
                    "Invalid value: 30080: provided port is already allocated".to_string()
                ),
            ]
        );
    }

    #[test]
    fn the_cluster_is_ipv4_only() {
        let a = ServiceAllocator::new("10.43.0.0/16", "30000-32767").unwrap();
        let mut s = json!({"spec": {"type": "ClusterIP", "selector": {"app": "a"}, "ipFamilies": ["IPv6"], "ports": [{"port": 80}]}});
        let causes = a.assign(&mut s, None, &[]);
        assert_eq!(causes.len(), 1);
        assert_eq!(causes[0].field, "spec.ipFamilies[0]");
        assert!(
            causes[0].message.contains("IPv4-only"),
            "{}",
            causes[0].message
        );
        let mut s = json!({"spec": {"type": "ClusterIP", "selector": {"app": "a"}, "ipFamilyPolicy": "RequireDualStack", "ports": [{"port": 80}]}});
        let causes = a.assign(&mut s, None, &[]);
        assert_eq!(causes[0].field, "spec.ipFamilyPolicy");
        assert!(causes[0]
            .message
            .contains("not configured for dual-stack services"));
        // Headless without a selector may name any family.
        let mut s = json!({"spec": {"clusterIP": "None", "ipFamilyPolicy": "RequireDualStack", "ipFamilies": ["IPv4", "IPv6"]}});
        assert!(a.assign(&mut s, None, &[]).is_empty());
    }

    #[test]
    fn leaving_load_balancer_drops_its_fields_and_status() {
        let old = json!({"spec": {"type": "LoadBalancer", "clusterIP": "10.43.0.9", "clusterIPs": ["10.43.0.9"],
            "allocateLoadBalancerNodePorts": true, "externalTrafficPolicy": "Cluster",
            "ports": [{"port": 80, "protocol": "TCP", "nodePort": 30080}]},
            "status": {"loadBalancer": {"ingress": [{"ip": "127.0.0.1", "ipMode": "VIP"}]}}});
        let mut new = old.clone();
        new["spec"]["type"] = json!("ClusterIP");
        drop_type_dependent_fields(&mut new, &old);
        assert_eq!(
            new,
            json!({"spec": {"type": "ClusterIP", "clusterIP": "10.43.0.9", "clusterIPs": ["10.43.0.9"],
                "ports": [{"port": 80, "protocol": "TCP"}]}, "status": {"loadBalancer": {}}})
        );
        // A node port the user changed stays, so validation reports it.
        let mut new = old.clone();
        new["spec"]["type"] = json!("ClusterIP");
        new["spec"]["ports"][0]["nodePort"] = json!(30099);
        drop_type_dependent_fields(&mut new, &old);
        assert_eq!(new["spec"]["ports"][0]["nodePort"], 30099);
        // To ExternalName: the cluster IP goes too.
        let mut new = old.clone();
        new["spec"]["type"] = json!("ExternalName");
        drop_type_dependent_fields(&mut new, &old);
        assert_eq!(new["spec"].get("clusterIP"), None);
        // LoadBalancer to NodePort keeps node ports.
        let mut new = old.clone();
        new["spec"]["type"] = json!("NodePort");
        drop_type_dependent_fields(&mut new, &old);
        assert_eq!(new["spec"]["ports"][0]["nodePort"], 30080);
        assert_eq!(new["spec"]["externalTrafficPolicy"], "Cluster");
    }

    #[test]
    fn rejects_out_of_range_and_taken_choices() {
        let a = ServiceAllocator::new("10.43.0.0/16", "30000-32767").unwrap();
        let mut s = json!({"spec": {"clusterIP": "10.0.0.1", "type": "ClusterIP", "ports": []}});
        assert_eq!(a.assign(&mut s, None, &[]).len(), 1);
        let mut s = json!({"spec": {"type": "NodePort", "ports": [{"port": 80, "nodePort": 80}]}});
        assert_eq!(a.assign(&mut s, None, &[]).len(), 1);
        assert!(ServiceAllocator::new("10.43.0.0", "1-2").is_err());
        assert!(ServiceAllocator::new("10.43.0.0/16", "9-2").is_err());
    }
}
