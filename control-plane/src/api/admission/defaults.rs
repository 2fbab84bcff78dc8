//! Kubernetes server-side defaulting (the `SetDefaults_*` functions of
//! Kubernetes 1.32, plus the few create-time fields the registry strategies
//! or default admission plugins fill that clients always see).
//!
//! Not done here: clusterIP/nodePort allocation, name generation, uid,
//! resourceVersion, the ServiceAccount plugin's token volume. The
//! ServiceAccount/DefaultTolerationSeconds plugins' simple pod fields are in
//! the opt-in [`pod_admission_defaults`].

mod pod;

pub(crate) use pod::VOLUME_SOURCES;
pub use pod::{default_pull_policy, pod_admission_defaults, pod_qos_class};

use crate::api::admission::util::{
    base64_encode, empty_str, existing_arr_mut, existing_obj_mut, map_obj_mut, missing, obj_mut,
    set_default, set_default_str,
};
use serde_json::{json, Map, Value};

/// Applies Kubernetes defaults for `kind` in place. Values that are present
/// but of the wrong JSON type are left alone (validation/normalize report
/// them). Unknown kinds are untouched.
pub fn apply_defaults(kind: &str, obj: &mut Value) {
    if !obj.is_object() {
        return;
    }
    match kind {
        "Pod" => pod_defaults(obj),
        "Deployment" => deployment(obj),
        "ReplicaSet" => {
            if let Some(spec) = obj_mut(obj, "spec") {
                set_default(spec, "replicas", json!(1));
                template(spec);
            }
        }
        "DaemonSet" => daemon_set(obj),
        "StatefulSet" => stateful_set(obj),
        "Job" => job(obj),
        "CronJob" => cron_job(obj),
        "Service" => service(obj),
        "Secret" => secret(obj),
        "PersistentVolumeClaim" => persistent_volume_claim(obj),
        "Namespace" => namespace(obj),
        "Node" => node(obj),
        "Endpoints" => endpoints(obj),
        "EndpointSlice" => endpoint_slice(obj),
        "HorizontalPodAutoscaler" => hpa(obj),
        "IngressClass" => super::ingress::ingress_class_defaults(obj),
        "CustomResourceDefinition" => crate::api::crd::definition::apply_defaults(obj),
        "PodTemplate" => {
            if let Some(t) = obj_mut(obj, "template") {
                if let Some(spec) = map_obj_mut(t, "spec") {
                    pod::pod_spec(spec, false);
                }
            }
        }
        _ => {}
    }
}

/// Defaults `spec.template.spec` of a workload spec.
fn template(spec: &mut Map<String, Value>) {
    if let Some(t) = map_obj_mut(spec, "template") {
        if let Some(ps) = map_obj_mut(t, "spec") {
            pod::pod_spec(ps, false);
        }
    }
}

fn pod_defaults(obj: &mut Value) {
    if let Some(spec) = obj_mut(obj, "spec") {
        pod::pod_spec(spec, true);
    }
    let qos = obj.get("spec").map_or("BestEffort", pod_qos_class);
    if let Some(status) = obj_mut(obj, "status") {
        set_default_str(status, "phase", "Pending");
        set_default_str(status, "qosClass", qos);
    }
}

fn deployment(obj: &mut Value) {
    // A request-autoscaled Deployment starts at its `autoscaling.skiff.dev/initial-scale`.
    let initial = crate::api::admission::validation::scale_annotations::ScaleAnnotations::of(obj)
        .ok()
        .flatten()
        .map_or(1, |a| a.initial_scale);
    let Some(spec) = obj_mut(obj, "spec") else {
        return;
    };
    set_default(spec, "replicas", json!(initial));
    if let Some(strategy) = map_obj_mut(spec, "strategy") {
        set_default_str(strategy, "type", "RollingUpdate");
        if strategy.get("type").and_then(Value::as_str) == Some("RollingUpdate") {
            if let Some(ru) = map_obj_mut(strategy, "rollingUpdate") {
                set_default(ru, "maxUnavailable", json!("25%"));
                set_default(ru, "maxSurge", json!("25%"));
            }
        }
    }
    set_default(spec, "revisionHistoryLimit", json!(10));
    set_default(spec, "progressDeadlineSeconds", json!(600));
    template(spec);
}

fn daemon_set(obj: &mut Value) {
    let Some(spec) = obj_mut(obj, "spec") else {
        return;
    };
    if let Some(us) = map_obj_mut(spec, "updateStrategy") {
        set_default_str(us, "type", "RollingUpdate");
        if us.get("type").and_then(Value::as_str) == Some("RollingUpdate") {
            if let Some(ru) = map_obj_mut(us, "rollingUpdate") {
                set_default(ru, "maxUnavailable", json!(1));
                set_default(ru, "maxSurge", json!(0));
            }
        }
    }
    set_default(spec, "revisionHistoryLimit", json!(10));
    template(spec);
}

fn stateful_set(obj: &mut Value) {
    let Some(spec) = obj_mut(obj, "spec") else {
        return;
    };
    set_default_str(spec, "podManagementPolicy", "OrderedReady");
    if let Some(us) = map_obj_mut(spec, "updateStrategy") {
        if empty_str(us, "type") {
            us.insert("type".into(), json!("RollingUpdate"));
            set_default(us, "rollingUpdate", json!({}));
        }
        if us.get("type").and_then(Value::as_str) == Some("RollingUpdate") {
            if let Some(ru) = existing_obj_mut(us, "rollingUpdate") {
                set_default(ru, "partition", json!(0));
            }
        }
    }
    if let Some(p) = map_obj_mut(spec, "persistentVolumeClaimRetentionPolicy") {
        set_default_str(p, "whenDeleted", "Retain");
        set_default_str(p, "whenScaled", "Retain");
    }
    set_default(spec, "replicas", json!(1));
    set_default(spec, "revisionHistoryLimit", json!(10));
    if let Some(vcts) = existing_arr_mut(spec, "volumeClaimTemplates") {
        for t in vcts.iter_mut().filter_map(Value::as_object_mut) {
            set_default_str(t, "apiVersion", "v1");
            set_default_str(t, "kind", "PersistentVolumeClaim");
            if let Some(s) = map_obj_mut(t, "spec") {
                pod::pvc_spec(s);
            }
            if let Some(st) = map_obj_mut(t, "status") {
                set_default_str(st, "phase", "Pending");
            }
        }
    }
    template(spec);
}

/// `SetDefaults_PersistentVolumeClaim` (+ its spec).
fn persistent_volume_claim(obj: &mut Value) {
    if let Some(spec) = obj_mut(obj, "spec") {
        pod::pvc_spec(spec);
    }
    if let Some(st) = obj_mut(obj, "status") {
        set_default_str(st, "phase", "Pending");
    }
}

/// `SetDefaults_Job` (the parts that apply to a JobSpec are shared with
/// nothing else: CronJob job templates only get pod template defaults).
fn job(obj: &mut Value) {
    let template_labels = obj
        .pointer("/spec/template/metadata/labels")
        .filter(|l| l.is_object())
        .cloned();
    if let Some(spec) = obj_mut(obj, "spec") {
        if missing(spec, "completions") && missing(spec, "parallelism") {
            spec.insert("completions".into(), json!(1));
            spec.insert("parallelism".into(), json!(1));
        }
        set_default(spec, "parallelism", json!(1));
        if missing(spec, "backoffLimit") {
            let v = if missing(spec, "backoffLimitPerIndex") {
                6
            } else {
                i64::from(i32::MAX)
            };
            spec.insert("backoffLimit".into(), json!(v));
        }
        set_default_str(spec, "completionMode", "NonIndexed");
        set_default(spec, "suspend", json!(false));
        let has_pfp = !missing(spec, "podFailurePolicy");
        if let Some(pfp) = existing_obj_mut(spec, "podFailurePolicy") {
            if let Some(rules) = existing_arr_mut(pfp, "rules") {
                for r in rules.iter_mut().filter_map(Value::as_object_mut) {
                    if let Some(conds) = existing_arr_mut(r, "onPodConditions") {
                        for c in conds.iter_mut().filter_map(Value::as_object_mut) {
                            set_default_str(c, "status", "True");
                        }
                    }
                }
            }
        }
        if missing(spec, "podReplacementPolicy") {
            let v = if has_pfp {
                "Failed"
            } else {
                "TerminatingOrFailed"
            };
            spec.insert("podReplacementPolicy".into(), json!(v));
        }
        template(spec);
    }
    if let Some(labels) = template_labels {
        if let Some(meta) = obj_mut(obj, "metadata") {
            let empty = meta
                .get("labels")
                .and_then(Value::as_object)
                .is_none_or(Map::is_empty);
            if empty {
                meta.insert("labels".into(), labels);
            }
        }
    }
}

/// Kubernetes' Job `generateSelector` (done at create time unless
/// `spec.manualSelector` is true): adds `batch.kubernetes.io/controller-uid`,
/// `batch.kubernetes.io/job-name` (and legacy `controller-uid`/`job-name`)
/// labels to the template and selects on the controller uid. Needs
/// `metadata.name` and `metadata.uid` to be set first.
pub fn job_generate_selector(obj: &mut Value) {
    if obj.pointer("/spec/manualSelector").and_then(Value::as_bool) == Some(true) {
        return;
    }
    let name = obj
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let uid = obj
        .pointer("/metadata/uid")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    let Some(spec) = obj_mut(obj, "spec") else {
        return;
    };
    if let Some(t) = map_obj_mut(spec, "template") {
        if let Some(meta) = map_obj_mut(t, "metadata") {
            if let Some(labels) = map_obj_mut(meta, "labels") {
                for k in ["job-name", "batch.kubernetes.io/job-name"] {
                    labels.entry(k).or_insert_with(|| json!(name));
                }
                for k in ["controller-uid", "batch.kubernetes.io/controller-uid"] {
                    labels.entry(k).or_insert_with(|| json!(uid));
                }
            }
        }
    }
    if let Some(sel) = map_obj_mut(spec, "selector") {
        if let Some(ml) = map_obj_mut(sel, "matchLabels") {
            ml.entry("batch.kubernetes.io/controller-uid")
                .or_insert_with(|| json!(uid));
        }
    }
}

fn cron_job(obj: &mut Value) {
    let Some(spec) = obj_mut(obj, "spec") else {
        return;
    };
    set_default_str(spec, "concurrencyPolicy", "Allow");
    set_default(spec, "suspend", json!(false));
    set_default(spec, "successfulJobsHistoryLimit", json!(3));
    set_default(spec, "failedJobsHistoryLimit", json!(1));
    if let Some(jt) = map_obj_mut(spec, "jobTemplate") {
        if let Some(js) = map_obj_mut(jt, "spec") {
            template(js);
        }
    }
}

fn service(obj: &mut Value) {
    // `ipMode` of a load-balancer ingress with an IP defaults to VIP (LoadBalancerIPMode).
    if let Some(ingress) = obj
        .pointer_mut("/status/loadBalancer/ingress")
        .and_then(Value::as_array_mut)
    {
        for ing in ingress.iter_mut().filter_map(Value::as_object_mut) {
            let has_ip = ing
                .get("ip")
                .and_then(Value::as_str)
                .is_some_and(|ip| !ip.is_empty());
            if has_ip {
                set_default_str(ing, "ipMode", "VIP");
            }
        }
    }
    let Some(spec) = obj_mut(obj, "spec") else {
        return;
    };
    set_default_str(spec, "sessionAffinity", "None");
    match spec.get("sessionAffinity").and_then(Value::as_str) {
        Some("None") => {
            spec.remove("sessionAffinityConfig");
        }
        Some("ClientIP") => {
            let has_timeout = spec
                .get("sessionAffinityConfig")
                .and_then(|c| c.get("clientIP"))
                .and_then(|c| c.get("timeoutSeconds"))
                .is_some_and(|t| !t.is_null());
            if !has_timeout {
                spec.insert(
                    "sessionAffinityConfig".into(),
                    json!({"clientIP": {"timeoutSeconds": 10800}}),
                );
            }
        }
        _ => {}
    }
    set_default_str(spec, "type", "ClusterIP");
    let ty = spec
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    if let Some(ports) = existing_arr_mut(spec, "ports") {
        for p in ports.iter_mut().filter_map(Value::as_object_mut) {
            set_default_str(p, "protocol", "TCP");
            let tp_empty = match p.get("targetPort") {
                None | Some(Value::Null) => true,
                Some(Value::String(s)) => s.is_empty(),
                Some(Value::Number(n)) => n.as_i64() == Some(0),
                _ => false,
            };
            if tp_empty {
                if let Some(port) = p.get("port").cloned() {
                    p.insert("targetPort".into(), port);
                }
            }
        }
    }
    let has_external_ips = spec
        .get("externalIPs")
        .and_then(Value::as_array)
        .is_some_and(|a| !a.is_empty());
    let externally_accessible =
        ty == "LoadBalancer" || ty == "NodePort" || (ty == "ClusterIP" && has_external_ips);
    if externally_accessible {
        set_default_str(spec, "externalTrafficPolicy", "Cluster");
    }
    if matches!(ty.as_str(), "ClusterIP" | "NodePort" | "LoadBalancer") {
        set_default(spec, "internalTrafficPolicy", json!("Cluster"));
    }
    if ty == "LoadBalancer" {
        set_default(spec, "allocateLoadBalancerNodePorts", json!(true));
    }
    if ty != "ExternalName" {
        // The registry keeps clusterIP and clusterIPs in sync.
        let ip = spec
            .get("clusterIP")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let first = spec
            .get("clusterIPs")
            .and_then(|a| a.get(0))
            .and_then(Value::as_str)
            .map(str::to_string);
        match (ip.is_empty(), first) {
            (false, None) => {
                spec.insert("clusterIPs".into(), json!([ip]));
            }
            (true, Some(f)) => {
                spec.insert("clusterIP".into(), json!(f));
            }
            _ => {}
        }
        let headless = ip == "None";
        let selectorless = spec
            .get("selector")
            .and_then(Value::as_object)
            .is_none_or(Map::is_empty);
        if missing(spec, "ipFamilyPolicy") {
            let pol = if headless && selectorless {
                "RequireDualStack"
            } else {
                "SingleStack"
            };
            spec.insert("ipFamilyPolicy".into(), json!(pol));
        }
        let fam_empty = spec
            .get("ipFamilies")
            .and_then(Value::as_array)
            .is_none_or(Vec::is_empty);
        if fam_empty {
            let fam = if ip.contains(':') { "IPv6" } else { "IPv4" };
            spec.insert("ipFamilies".into(), json!([fam]));
        }
    }
}

fn secret(obj: &mut Value) {
    let Some(m) = obj.as_object_mut() else {
        return;
    };
    set_default_str(m, "type", "Opaque");
    // v1 → internal conversion: stringData overwrites data, then is dropped.
    if let Some(Value::Object(sd)) = m.remove("stringData") {
        if let Some(data) = map_obj_mut(m, "data") {
            for (k, v) in sd {
                if let Some(s) = v.as_str() {
                    data.insert(k, json!(base64_encode(s.as_bytes())));
                }
            }
        }
    }
}

fn namespace(obj: &mut Value) {
    let name = obj
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("")
        .to_string();
    if !name.is_empty() {
        if let Some(meta) = obj_mut(obj, "metadata") {
            if let Some(labels) = map_obj_mut(meta, "labels") {
                labels.insert("kubernetes.io/metadata.name".into(), json!(name));
            }
        }
    }
    if let Some(spec) = obj_mut(obj, "spec") {
        set_default(spec, "finalizers", json!(["kubernetes"]));
    }
    if let Some(status) = obj_mut(obj, "status") {
        set_default_str(status, "phase", "Active");
    }
}

fn node(obj: &mut Value) {
    let Some(status) = obj.get_mut("status").and_then(Value::as_object_mut) else {
        return;
    };
    if missing(status, "allocatable") {
        if let Some(cap) = status.get("capacity").filter(|c| c.is_object()).cloned() {
            status.insert("allocatable".into(), cap);
        }
    }
}

fn endpoints(obj: &mut Value) {
    let Some(subsets) = obj.get_mut("subsets").and_then(Value::as_array_mut) else {
        return;
    };
    for s in subsets.iter_mut().filter_map(Value::as_object_mut) {
        if let Some(ports) = existing_arr_mut(s, "ports") {
            for p in ports.iter_mut().filter_map(Value::as_object_mut) {
                set_default_str(p, "protocol", "TCP");
            }
        }
    }
}

fn endpoint_slice(obj: &mut Value) {
    let Some(ports) = obj.get_mut("ports").and_then(Value::as_array_mut) else {
        return;
    };
    for p in ports.iter_mut().filter_map(Value::as_object_mut) {
        set_default(p, "name", json!(""));
        set_default_str(p, "protocol", "TCP");
    }
}

fn hpa(obj: &mut Value) {
    let Some(spec) = obj_mut(obj, "spec") else {
        return;
    };
    set_default(spec, "minReplicas", json!(1));
    let no_metrics = spec
        .get("metrics")
        .and_then(Value::as_array)
        .is_none_or(Vec::is_empty);
    if no_metrics {
        spec.insert(
            "metrics".into(),
            json!([{"type": "Resource", "resource": {"name": "cpu", "target": {"type": "Utilization", "averageUtilization": 80}}}]),
        );
    }
    if let Some(b) = existing_obj_mut(spec, "behavior") {
        if let Some(up) = map_obj_mut(b, "scaleUp") {
            set_default(up, "stabilizationWindowSeconds", json!(0));
            set_default(up, "selectPolicy", json!("Max"));
            set_default(
                up,
                "policies",
                json!([{"type": "Pods", "value": 4, "periodSeconds": 15}, {"type": "Percent", "value": 100, "periodSeconds": 15}]),
            );
        }
        if let Some(down) = map_obj_mut(b, "scaleDown") {
            set_default(down, "selectPolicy", json!("Max"));
            set_default(
                down,
                "policies",
                json!([{"type": "Percent", "value": 100, "periodSeconds": 15}]),
            );
        }
    }
}

/// What the Service registry does on update before validation
/// (`patchAllocatedValues`): when the type stays the same and the new object
/// omits `clusterIP`/`clusterIPs`/`nodePort`s/`healthCheckNodePort`, carry
/// the old allocated values over.
pub fn service_carry_over_allocations(new: &mut Value, old: &Value) {
    let old_spec = match old.get("spec") {
        Some(s) if s.is_object() => s.clone(),
        _ => return,
    };
    let Some(spec) = obj_mut(new, "spec") else {
        return;
    };
    let old_ty = old_spec
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("ClusterIP")
        .to_string();
    let new_ty = spec
        .get("type")
        .and_then(Value::as_str)
        .unwrap_or("ClusterIP")
        .to_string();
    let (old_ty, new_ty) = (old_ty.as_str(), new_ty.as_str());
    let needs_ip = |t: &str| matches!(t, "ClusterIP" | "NodePort" | "LoadBalancer");
    if needs_ip(old_ty) && needs_ip(new_ty) {
        for k in ["clusterIP", "clusterIPs"] {
            let empty = match spec.get(k) {
                None | Some(Value::Null) => true,
                Some(Value::String(s)) => s.is_empty(),
                Some(Value::Array(a)) => a.is_empty(),
                _ => false,
            };
            if empty {
                if let Some(v) = old_spec.get(k).filter(|v| !v.is_null()) {
                    spec.insert(k.into(), v.clone());
                }
            }
        }
    }
    let needs_np = |t: &str| matches!(t, "NodePort" | "LoadBalancer");
    if needs_np(old_ty) && needs_np(new_ty) {
        let old_ports = crate::api::admission::util::arr(&old_spec, "ports").to_vec();
        if let Some(ports) = existing_arr_mut(spec, "ports") {
            for p in ports.iter_mut().filter_map(Value::as_object_mut) {
                if !crate::api::admission::util::zero_int(p, "nodePort") {
                    continue;
                }
                let port = p.get("port").cloned();
                let proto = p.get("protocol").cloned().unwrap_or(json!("TCP"));
                let found = old_ports.iter().find(|op| {
                    op.get("port") == port.as_ref()
                        && op.get("protocol").cloned().unwrap_or(json!("TCP")) == proto
                });
                if let Some(np) = found
                    .and_then(|op| op.get("nodePort"))
                    .filter(|v| !v.is_null())
                {
                    p.insert("nodePort".into(), np.clone());
                }
            }
        }
        if missing(spec, "healthCheckNodePort") {
            if let Some(h) = old_spec.get("healthCheckNodePort").filter(|v| !v.is_null()) {
                spec.insert("healthCheckNodePort".into(), h.clone());
            }
        }
    }
}
