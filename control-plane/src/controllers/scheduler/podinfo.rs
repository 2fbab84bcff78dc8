//! What the scheduler needs of a pod, parsed once from its JSON when the pod enters the cache:
//! resource requests, host ports, tolerations, node selector and affinity, pod (anti-)affinity,
//! topology spread constraints and PersistentVolumeClaims. Filters and scores never touch JSON.

use serde_json::{Map, Value};

use super::affinity::{NodeSelectorTerm, PodAffinityTerm};
use super::spread::SpreadConstraint;
use super::taints::Toleration;
use crate::api::admission::quantity::Quantity;
use crate::api::object;

/// Requests kube-scheduler assumes for scoring a container that requests no cpu (100m) and no
/// memory (200 MB), so pods without requests still spread (`schedutil.DefaultMilliCPURequest`).
pub const DEFAULT_MILLI_CPU_REQUEST: i64 = 100;
pub const DEFAULT_MEMORY_REQUEST: i64 = 200 * 1024 * 1024;

/// Amounts of the resources the scheduler accounts for.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Resources {
    pub milli_cpu: i64,
    pub memory: i64,
    pub ephemeral_storage: i64,
}

impl Resources {
    pub fn add(&mut self, o: &Resources) {
        self.milli_cpu += o.milli_cpu;
        self.memory += o.memory;
        self.ephemeral_storage += o.ephemeral_storage;
    }

    pub fn sub(&mut self, o: &Resources) {
        self.milli_cpu -= o.milli_cpu;
        self.memory -= o.memory;
        self.ephemeral_storage -= o.ephemeral_storage;
    }

    pub fn max(&self, o: &Resources) -> Resources {
        Resources {
            milli_cpu: self.milli_cpu.max(o.milli_cpu),
            memory: self.memory.max(o.memory),
            ephemeral_storage: self.ephemeral_storage.max(o.ephemeral_storage),
        }
    }

    pub fn is_zero(&self) -> bool {
        *self == Resources::default()
    }

    /// Reads `{cpu, memory, ephemeral-storage}` quantities (requests or allocatable).
    pub fn from_list(list: Option<&Value>) -> Resources {
        let get = |k: &str| list.and_then(|l| l.get(k)).and_then(quantity);
        Resources {
            milli_cpu: get("cpu").map(|q| clamp(q.millis())).unwrap_or(0),
            memory: get("memory").map(|q| clamp(bytes(&q))).unwrap_or(0),
            ephemeral_storage: get("ephemeral-storage")
                .map(|q| clamp(bytes(&q)))
                .unwrap_or(0),
        }
    }
}

fn clamp(v: i128) -> i64 {
    v.clamp(0, i64::MAX as i128) as i64
}

pub fn quantity(v: &Value) -> Option<Quantity> {
    match v {
        Value::String(s) => Quantity::parse(s).ok(),
        Value::Number(n) => Quantity::parse(&n.to_string()).ok(),
        _ => None,
    }
}

/// Whole units of a quantity, rounded up (bytes, pods).
pub fn bytes(q: &Quantity) -> i128 {
    let n = q.nanos();
    n / 1_000_000_000 + i128::from(n % 1_000_000_000 > 0)
}

/// A host port a pod asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostPort {
    pub protocol: String,
    pub ip: String,
    pub port: u16,
}

impl HostPort {
    /// kube-scheduler's conflict rule: same protocol and port, and either IP is 0.0.0.0 or
    /// they are equal.
    pub fn conflicts(&self, o: &HostPort) -> bool {
        self.port == o.port
            && self.protocol == o.protocol
            && (self.ip == o.ip || self.ip == "0.0.0.0" || o.ip == "0.0.0.0")
    }
}

/// The parsed scheduling view of one pod.
#[derive(Debug, Clone, Default)]
pub struct PodInfo {
    pub namespace: String,
    pub name: String,
    pub uid: String,
    pub labels: Map<String, Value>,
    pub node_name: String,
    pub scheduler_name: String,
    pub priority: i64,
    pub created: String,
    /// Terminal (Succeeded/Failed) pods hold nothing on their node.
    pub terminal: bool,
    pub terminating: bool,
    pub requests: Resources,
    /// Requests with kube-scheduler's non-zero defaults, for scoring.
    pub nonzero: Resources,
    pub host_ports: Vec<HostPort>,
    pub tolerations: Vec<Toleration>,
    pub node_selector: Vec<(String, String)>,
    /// `requiredDuringScheduling…` node selector terms (ORed); None = no requirement.
    pub required_node_affinity: Option<Vec<NodeSelectorTerm>>,
    pub preferred_node_affinity: Vec<(i64, NodeSelectorTerm)>,
    pub affinity: Vec<PodAffinityTerm>,
    pub anti_affinity: Vec<PodAffinityTerm>,
    pub preferred_affinity: Vec<(i64, PodAffinityTerm)>,
    pub preferred_anti_affinity: Vec<(i64, PodAffinityTerm)>,
    pub spread: Vec<SpreadConstraint>,
    /// Names of the PersistentVolumeClaims the pod mounts.
    pub pvcs: Vec<String>,
    /// Its containers' images, normalized ([`normalize_image`]).
    pub images: Vec<String>,
}

/// An image reference as nodes report it in `status.images`: a reference without a tag or
/// digest means `:latest`.
pub fn normalize_image(reference: &str) -> String {
    let last = reference.rsplit('/').next().unwrap_or(reference);
    if reference.contains('@') || last.contains(':') {
        reference.to_string()
    } else {
        format!("{reference}:latest")
    }
}

fn containers_requests(list: Option<&Value>) -> (Resources, Resources, Vec<&Value>) {
    let mut sum = Resources::default();
    let mut nonzero = Resources::default();
    let mut ctrs = Vec::new();
    for c in list.and_then(Value::as_array).into_iter().flatten() {
        let r = Resources::from_list(c.pointer("/resources/requests"));
        sum.add(&r);
        nonzero.add(&non_zero(r, c));
        ctrs.push(c);
    }
    (sum, nonzero, ctrs)
}

fn non_zero(mut r: Resources, c: &Value) -> Resources {
    let req = c.pointer("/resources/requests");
    if req.and_then(|r| r.get("cpu")).is_none() {
        r.milli_cpu = DEFAULT_MILLI_CPU_REQUEST;
    }
    if req.and_then(|r| r.get("memory")).is_none() {
        r.memory = DEFAULT_MEMORY_REQUEST;
    }
    r
}

fn str_at<'a>(v: &'a Value, p: &str) -> &'a str {
    v.pointer(p).and_then(Value::as_str).unwrap_or("")
}

impl PodInfo {
    pub fn key(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }

    pub fn from_pod(pod: &Value) -> PodInfo {
        let spec = pod.get("spec").unwrap_or(&Value::Null);
        let namespace = object::namespace(pod).to_string();
        let (mut requests, mut nonzero, ctrs) = containers_requests(spec.get("containers"));
        // Init containers run one at a time: the pod needs the largest of them, if larger.
        for c in spec
            .get("initContainers")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
        {
            let r = Resources::from_list(c.pointer("/resources/requests"));
            requests = requests.max(&r);
            nonzero = nonzero.max(&non_zero(r, c));
        }
        // Pod overhead (RuntimeClass) is added on top.
        let overhead = Resources::from_list(spec.get("overhead"));
        requests.add(&overhead);
        nonzero.add(&overhead);
        let host_ports = ctrs
            .iter()
            .filter_map(|c| c.get("ports").and_then(Value::as_array))
            .flatten()
            .filter_map(|p| {
                let port = p
                    .get("hostPort")
                    .and_then(Value::as_u64)
                    .filter(|p| *p > 0)?;
                let ip = str_at(p, "/hostIP");
                Some(HostPort {
                    protocol: match str_at(p, "/protocol") {
                        "" => "TCP".into(),
                        s => s.to_string(),
                    },
                    ip: if ip.is_empty() {
                        "0.0.0.0".into()
                    } else {
                        ip.into()
                    },
                    port: u16::try_from(port).unwrap_or(0),
                })
            })
            .collect();
        let phase = str_at(pod, "/status/phase");
        let affinity = spec.get("affinity").unwrap_or(&Value::Null);
        let node_aff = affinity.get("nodeAffinity").unwrap_or(&Value::Null);
        let required_node_affinity = node_aff
            .pointer("/requiredDuringSchedulingIgnoredDuringExecution/nodeSelectorTerms")
            .and_then(Value::as_array)
            .map(|terms| terms.iter().map(NodeSelectorTerm::parse).collect());
        let preferred_node_affinity = node_aff
            .get("preferredDuringSchedulingIgnoredDuringExecution")
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .map(|p| {
                (
                    p.get("weight").and_then(Value::as_i64).unwrap_or(0),
                    NodeSelectorTerm::parse(p.get("preference").unwrap_or(&Value::Null)),
                )
            })
            .collect();
        let terms = |kind: &str| -> Vec<PodAffinityTerm> {
            affinity
                .pointer(&format!(
                    "/{kind}/requiredDuringSchedulingIgnoredDuringExecution"
                ))
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .map(|t| PodAffinityTerm::parse(t, &namespace))
                .collect()
        };
        let weighted = |kind: &str| -> Vec<(i64, PodAffinityTerm)> {
            affinity
                .pointer(&format!(
                    "/{kind}/preferredDuringSchedulingIgnoredDuringExecution"
                ))
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .map(|t| {
                    (
                        t.get("weight").and_then(Value::as_i64).unwrap_or(0),
                        PodAffinityTerm::parse(
                            t.get("podAffinityTerm").unwrap_or(&Value::Null),
                            &namespace,
                        ),
                    )
                })
                .collect()
        };
        let labels = object::labels(pod).cloned().unwrap_or_default();
        PodInfo {
            name: object::name(pod).to_string(),
            uid: object::meta_str(pod, "uid").unwrap_or("").to_string(),
            node_name: str_at(spec, "/nodeName").to_string(),
            scheduler_name: str_at(spec, "/schedulerName").to_string(),
            priority: spec.get("priority").and_then(Value::as_i64).unwrap_or(0),
            created: object::meta_str(pod, "creationTimestamp")
                .unwrap_or("")
                .to_string(),
            terminal: phase == "Succeeded" || phase == "Failed",
            terminating: object::is_terminating(pod),
            requests,
            nonzero,
            host_ports,
            tolerations: spec
                .get("tolerations")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .map(Toleration::parse)
                .collect(),
            node_selector: spec
                .get("nodeSelector")
                .and_then(Value::as_object)
                .into_iter()
                .flatten()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_string()))
                .collect(),
            required_node_affinity,
            preferred_node_affinity,
            affinity: terms("podAffinity"),
            anti_affinity: terms("podAntiAffinity"),
            preferred_affinity: weighted("podAffinity"),
            preferred_anti_affinity: weighted("podAntiAffinity"),
            spread: spec
                .get("topologySpreadConstraints")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .map(|c| SpreadConstraint::parse(c, &labels))
                .collect(),
            pvcs: spec
                .get("volumes")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|v| v.pointer("/persistentVolumeClaim/claimName"))
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect(),
            images: spec
                .get("containers")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(|c| c.get("image").and_then(Value::as_str))
                .map(normalize_image)
                .collect(),
            labels,
            namespace,
        }
    }

    /// Whether this scheduler should place the pod: unassigned, ours, alive.
    pub fn wants_scheduling(&self, scheduler: &str) -> bool {
        self.node_name.is_empty()
            && !self.terminal
            && !self.terminating
            && (self.scheduler_name.is_empty() || self.scheduler_name == scheduler)
    }

    /// Whether the pod has required or preferred inter-pod terms or spread constraints.
    pub fn has_pod_topology(&self) -> bool {
        !self.affinity.is_empty()
            || !self.anti_affinity.is_empty()
            || !self.preferred_affinity.is_empty()
            || !self.preferred_anti_affinity.is_empty()
            || !self.spread.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn requests_init_overhead_ports_and_defaults() {
        let pod = json!({"metadata": {"name": "p", "namespace": "d", "labels": {"app": "x"}},
        "spec": {
            "containers": [
                {"resources": {"requests": {"cpu": "250m", "memory": "64Mi", "ephemeral-storage": "1Gi"}},
                 "ports": [{"containerPort": 80, "hostPort": 8080}]},
                {"resources": {}}
            ],
            "initContainers": [{"resources": {"requests": {"cpu": "2"}}}],
            "overhead": {"cpu": "10m"},
            "volumes": [{"name": "d", "persistentVolumeClaim": {"claimName": "data"}}],
            "priority": 7
        }});
        let p = PodInfo::from_pod(&pod);
        assert_eq!(p.requests.milli_cpu, 2010);
        assert_eq!(p.requests.memory, 64 << 20);
        assert_eq!(p.requests.ephemeral_storage, 1 << 30);
        // The second container gets the 100m / 200 MB scoring defaults.
        assert_eq!(p.nonzero.milli_cpu, 2010);
        assert_eq!(p.nonzero.memory, (64 << 20) + DEFAULT_MEMORY_REQUEST);
        assert_eq!(p.host_ports[0].port, 8080);
        assert_eq!(p.host_ports[0].protocol, "TCP");
        assert_eq!(p.pvcs, vec!["data".to_string()]);
        assert_eq!(p.priority, 7);
        assert!(p.wants_scheduling("default-scheduler"));
        assert!(!p.has_pod_topology());
    }

    #[test]
    fn host_port_conflicts() {
        let a = HostPort {
            protocol: "TCP".into(),
            ip: "0.0.0.0".into(),
            port: 80,
        };
        let b = HostPort {
            ip: "10.0.0.1".into(),
            ..a.clone()
        };
        let udp = HostPort {
            protocol: "UDP".into(),
            ..a.clone()
        };
        assert!(a.conflicts(&b));
        assert!(!a.conflicts(&udp));
    }
}
