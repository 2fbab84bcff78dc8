//! PodSpec / Container / Volume defaults (`pkg/apis/core/v1/defaults.go`).

use crate::api::admission::quantity::Quantity;
use crate::api::admission::util::{
    empty_str, existing_arr_mut, existing_obj_mut, map_obj_mut, missing, set_default,
    set_default_str, zero_int,
};
use serde_json::{json, Map, Value};

/// The volume source fields of `core/v1 Volume`; exactly one is set per volume.
pub(crate) const VOLUME_SOURCES: &[&str] = &[
    "hostPath",
    "emptyDir",
    "gcePersistentDisk",
    "awsElasticBlockStore",
    "gitRepo",
    "secret",
    "nfs",
    "iscsi",
    "glusterfs",
    "persistentVolumeClaim",
    "rbd",
    "flexVolume",
    "cinder",
    "cephfs",
    "flocker",
    "downwardAPI",
    "fc",
    "azureFile",
    "configMap",
    "vsphereVolume",
    "quobyte",
    "azureDisk",
    "photonPersistentDisk",
    "projected",
    "portworxVolume",
    "scaleIO",
    "storageos",
    "csi",
    "ephemeral",
    "image",
];

/// Image pull policy default: `Always` for `:latest` or no tag (and no digest),
/// otherwise `IfNotPresent`.
pub fn default_pull_policy(image: &str) -> &'static str {
    let (name, has_digest) = match image.split_once('@') {
        Some((n, _)) => (n, true),
        None => (image, false),
    };
    let last = name.rsplit('/').next().unwrap_or(name);
    let tag = last.split_once(':').map(|(_, t)| t);
    match tag {
        Some("latest") => "Always",
        Some(_) => "IfNotPresent",
        None if has_digest || image.is_empty() => "IfNotPresent",
        None => "Always",
    }
}

fn http_get(h: &mut Map<String, Value>) {
    if let Some(g) = existing_obj_mut(h, "httpGet") {
        set_default_str(g, "path", "/");
        set_default_str(g, "scheme", "HTTP");
    }
}

fn probe(c: &mut Map<String, Value>, key: &str) {
    let Some(p) = existing_obj_mut(c, key) else {
        return;
    };
    for (k, d) in [
        ("timeoutSeconds", 1),
        ("periodSeconds", 10),
        ("successThreshold", 1),
        ("failureThreshold", 3),
    ] {
        if zero_int(p, k) {
            p.insert(k.into(), json!(d));
        }
    }
    http_get(p);
    if let Some(g) = existing_obj_mut(p, "grpc") {
        set_default(g, "service", json!(""));
    }
}

fn field_ref(holder: &mut Map<String, Value>) {
    if let Some(f) = existing_obj_mut(holder, "fieldRef") {
        set_default_str(f, "apiVersion", "v1");
    }
}

fn container(c: &mut Map<String, Value>) {
    set_default_str(c, "terminationMessagePath", "/dev/termination-log");
    set_default_str(c, "terminationMessagePolicy", "File");
    if empty_str(c, "imagePullPolicy") {
        let img = c.get("image").and_then(Value::as_str).unwrap_or("");
        let p = default_pull_policy(img);
        c.insert("imagePullPolicy".into(), json!(p));
    }
    // Go serializes the non-pointer struct as `{}`.
    set_default(c, "resources", json!({}));
    if let Some(ports) = existing_arr_mut(c, "ports") {
        for p in ports.iter_mut().filter_map(Value::as_object_mut) {
            set_default_str(p, "protocol", "TCP");
        }
    }
    for k in ["livenessProbe", "readinessProbe", "startupProbe"] {
        probe(c, k);
    }
    if let Some(l) = existing_obj_mut(c, "lifecycle") {
        for k in ["postStart", "preStop"] {
            if let Some(h) = existing_obj_mut(l, k) {
                http_get(h);
            }
        }
    }
    if let Some(env) = existing_arr_mut(c, "env") {
        for e in env.iter_mut().filter_map(Value::as_object_mut) {
            if let Some(vf) = existing_obj_mut(e, "valueFrom") {
                field_ref(vf);
            }
        }
    }
}

fn downward_items(d: &mut Map<String, Value>) {
    if let Some(items) = existing_arr_mut(d, "items") {
        for it in items.iter_mut().filter_map(Value::as_object_mut) {
            field_ref(it);
        }
    }
}

/// `SetDefaults_PersistentVolumeClaimSpec`
pub(crate) fn pvc_spec(spec: &mut Map<String, Value>) {
    set_default_str(spec, "volumeMode", "Filesystem");
}

fn volume(v: &mut Map<String, Value>) {
    if !VOLUME_SOURCES.iter().any(|k| !missing(v, k)) {
        v.insert("emptyDir".into(), json!({}));
    }
    for k in ["secret", "configMap"] {
        if let Some(s) = existing_obj_mut(v, k) {
            set_default(s, "defaultMode", json!(420));
        }
    }
    if let Some(d) = existing_obj_mut(v, "downwardAPI") {
        set_default(d, "defaultMode", json!(420));
        downward_items(d);
    }
    if let Some(h) = existing_obj_mut(v, "hostPath") {
        set_default(h, "type", json!(""));
    }
    if let Some(p) = existing_obj_mut(v, "projected") {
        set_default(p, "defaultMode", json!(420));
        if let Some(sources) = existing_arr_mut(p, "sources") {
            for s in sources.iter_mut().filter_map(Value::as_object_mut) {
                if let Some(t) = existing_obj_mut(s, "serviceAccountToken") {
                    set_default(t, "expirationSeconds", json!(3600));
                }
                if let Some(d) = existing_obj_mut(s, "downwardAPI") {
                    downward_items(d);
                }
            }
        }
    }
    if let Some(e) = existing_obj_mut(v, "ephemeral") {
        if let Some(t) = existing_obj_mut(e, "volumeClaimTemplate") {
            if let Some(spec) = existing_obj_mut(t, "spec") {
                pvc_spec(spec);
            }
        }
    }
}

fn host_network_ports(spec: &mut Map<String, Value>) {
    for list in ["containers", "initContainers"] {
        let Some(cs) = existing_arr_mut(spec, list) else {
            continue;
        };
        for c in cs.iter_mut().filter_map(Value::as_object_mut) {
            let Some(ports) = existing_arr_mut(c, "ports") else {
                continue;
            };
            for p in ports.iter_mut().filter_map(Value::as_object_mut) {
                if zero_int(p, "hostPort") {
                    if let Some(cp) = p.get("containerPort").cloned() {
                        p.insert("hostPort".into(), cp);
                    }
                }
            }
        }
    }
}

/// `SetDefaults_PodSpec` plus the container/volume defaulters. `is_pod`
/// adds what only Pods get (enableServiceLinks, hostNetwork ports, priority
/// admission's `priority`/`preemptionPolicy`, requests from limits).
pub(crate) fn pod_spec(spec: &mut Map<String, Value>, is_pod: bool) {
    set_default_str(spec, "dnsPolicy", "ClusterFirst");
    set_default_str(spec, "restartPolicy", "Always");
    set_default(spec, "securityContext", json!({}));
    set_default(spec, "terminationGracePeriodSeconds", json!(30));
    set_default_str(spec, "schedulerName", "default-scheduler");
    for list in ["containers", "initContainers", "ephemeralContainers"] {
        if let Some(cs) = existing_arr_mut(spec, list) {
            for c in cs.iter_mut().filter_map(Value::as_object_mut) {
                container(c);
            }
        }
    }
    if let Some(vs) = existing_arr_mut(spec, "volumes") {
        for v in vs.iter_mut().filter_map(Value::as_object_mut) {
            volume(v);
        }
    }
    if is_pod {
        set_default(spec, "enableServiceLinks", json!(true));
        if spec.get("hostNetwork").and_then(Value::as_bool) == Some(true) {
            host_network_ports(spec);
        }
        requests_from_limits(spec);
        if missing(spec, "priority") {
            let p = match spec.get("priorityClassName").and_then(Value::as_str) {
                Some("system-node-critical") => Some(2_000_001_000),
                Some("system-cluster-critical") => Some(2_000_000_000),
                None | Some("") => Some(0),
                Some(_) => None, // needs a PriorityClass lookup: caller's job
            };
            if let Some(p) = p {
                spec.insert("priority".into(), json!(p));
            }
        }
        set_default_str(spec, "preemptionPolicy", "PreemptLowerPriority");
    }
}

/// `SetDefaults_Pod`: requests default to limits for resources that have a
/// limit but no request.
fn requests_from_limits(spec: &mut Map<String, Value>) {
    for list in ["containers", "initContainers"] {
        let Some(cs) = existing_arr_mut(spec, list) else {
            continue;
        };
        for c in cs.iter_mut().filter_map(Value::as_object_mut) {
            let Some(r) = existing_obj_mut(c, "resources") else {
                continue;
            };
            let Some(limits) = r.get("limits").and_then(Value::as_object).cloned() else {
                continue;
            };
            if limits.is_empty() {
                continue;
            }
            let Some(req) = map_obj_mut(r, "requests") else {
                continue;
            };
            for (k, v) in limits {
                req.entry(k).or_insert(v);
            }
        }
    }
}

/// `qos.GetPodQOS`: `BestEffort`, `Burstable` or `Guaranteed` from the cpu
/// and memory requests/limits of all (init) containers.
pub fn pod_qos_class(spec: &Value) -> &'static str {
    let mut requests: Map<String, Value> = Map::new();
    let mut limits: Map<String, Value> = Map::new();
    let mut sums_req: Vec<(String, Quantity)> = Vec::new();
    let mut sums_lim: Vec<(String, Quantity)> = Vec::new();
    let mut guaranteed = true;
    let add = |sums: &mut Vec<(String, Quantity)>, k: &str, q: Quantity| match sums
        .iter_mut()
        .find(|(n, _)| n == k)
    {
        Some((_, s)) => *s = s.saturating_add(q),
        None => sums.push((k.to_string(), q)),
    };
    let containers = crate::api::admission::util::arr(spec, "containers")
        .iter()
        .chain(crate::api::admission::util::arr(spec, "initContainers").iter());
    for c in containers {
        let res = c.get("resources");
        let get = |k: &str| res.and_then(|r| r.get(k)).and_then(Value::as_object);
        if let Some(r) = get("requests") {
            for (k, v) in r {
                if k != "cpu" && k != "memory" {
                    continue;
                }
                if let Some(q) = v.as_str().and_then(|s| Quantity::parse(s).ok()) {
                    if q.nanos() > 0 {
                        add(&mut sums_req, k, q);
                        requests.insert(k.to_string(), Value::Null);
                    }
                }
            }
        }
        let mut found = (false, false);
        if let Some(l) = get("limits") {
            for (k, v) in l {
                if k != "cpu" && k != "memory" {
                    continue;
                }
                if let Some(q) = v.as_str().and_then(|s| Quantity::parse(s).ok()) {
                    if q.nanos() > 0 {
                        add(&mut sums_lim, k, q);
                        limits.insert(k.to_string(), Value::Null);
                        if k == "cpu" {
                            found.0 = true;
                        } else {
                            found.1 = true;
                        }
                    }
                }
            }
        }
        if !(found.0 && found.1) {
            guaranteed = false;
        }
    }
    if requests.is_empty() && limits.is_empty() {
        return "BestEffort";
    }
    if guaranteed {
        for (k, rq) in &sums_req {
            match sums_lim.iter().find(|(n, _)| n == k) {
                Some((_, lq)) if lq == rq => {}
                _ => guaranteed = false,
            }
        }
    }
    if guaranteed && sums_req.len() == sums_lim.len() {
        "Guaranteed"
    } else {
        "Burstable"
    }
}

/// What Kubernetes' default admission plugins add to every new Pod (opt-in;
/// call on create only): the `ServiceAccount` plugin's
/// `serviceAccountName`/`serviceAccount` = `default` (not the token volume),
/// and the `DefaultTolerationSeconds` plugin's 300s NoExecute tolerations for
/// `node.kubernetes.io/not-ready` and `node.kubernetes.io/unreachable`.
pub fn pod_admission_defaults(obj: &mut Value) {
    let Some(spec) = crate::api::admission::util::obj_mut(obj, "spec") else {
        return;
    };
    if empty_str(spec, "serviceAccountName") {
        let sa = spec
            .get("serviceAccount")
            .and_then(Value::as_str)
            .filter(|s| !s.is_empty())
            .unwrap_or("default")
            .to_string();
        spec.insert("serviceAccountName".into(), json!(sa));
    }
    if empty_str(spec, "serviceAccount") {
        if let Some(sa) = spec.get("serviceAccountName").cloned() {
            spec.insert("serviceAccount".into(), sa);
        }
    }
    if !missing(spec, "tolerations") && !spec.get("tolerations").is_some_and(Value::is_array) {
        return;
    }
    let mut tolerates = [false, false];
    let keys = [
        "node.kubernetes.io/not-ready",
        "node.kubernetes.io/unreachable",
    ];
    for t in crate::api::admission::util::arr(&Value::Object(spec.clone()), "tolerations") {
        let key = t.get("key").and_then(Value::as_str).unwrap_or("");
        let effect = t.get("effect").and_then(Value::as_str).unwrap_or("");
        for (i, k) in keys.iter().enumerate() {
            if (key == *k || key.is_empty()) && (effect == "NoExecute" || effect.is_empty()) {
                tolerates[i] = true;
            }
        }
    }
    let Some(list) = spec
        .entry("tolerations")
        .or_insert_with(|| json!([]))
        .as_array_mut()
    else {
        return;
    };
    for (i, k) in keys.iter().enumerate() {
        if !tolerates[i] {
            list.push(json!({"key": k, "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}));
        }
    }
}
