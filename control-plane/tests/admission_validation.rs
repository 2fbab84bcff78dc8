use serde_json::{json, Value};
use skiff_control_plane::api::admission::defaults::{apply_defaults, job_generate_selector};
use skiff_control_plane::api::admission::validation::{invalid_message, invalid_status, validate};
use skiff_control_plane::api::admission::{FieldError, FieldErrorReason};

fn defaulted(kind: &str, mut v: Value) -> Value {
    apply_defaults(kind, &mut v);
    v
}

fn msgs(errs: &[FieldError]) -> Vec<String> {
    errs.iter().map(ToString::to_string).collect()
}

fn deployment() -> Value {
    json!({
        "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web"}},
        "spec": {
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "nginx", "image": "nginx", "ports": [{"containerPort": 80, "name": "http"}]}]}
            }
        }
    })
}

fn container() -> Value {
    json!({"name": "c", "image": "busybox"})
}

fn valid_objects() -> Vec<(&'static str, Value)> {
    let pod_spec = json!({"containers": [container()], "restartPolicy": "OnFailure"});
    vec![
        ("Deployment", deployment()),
        (
            "Pod",
            json!({"metadata": {"name": "p", "namespace": "default"}, "spec": {
            "containers": [{"name": "c", "image": "busybox", "resources": {"limits": {"cpu": "500m", "memory": "128Mi"}, "requests": {"cpu": "0.1"}},
              "livenessProbe": {"tcpSocket": {"port": "http"}}, "ports": [{"containerPort": 8080, "name": "http"}],
              "volumeMounts": [{"name": "cfg", "mountPath": "/etc/cfg"}], "env": [{"name": "A_B", "value": "1"}]}],
            "initContainers": [{"name": "init", "image": "busybox"}, {"name": "sidecar", "image": "envoy", "restartPolicy": "Always", "readinessProbe": {"exec": {"command": ["true"]}}}],
            "volumes": [{"name": "cfg", "configMap": {"name": "cfg"}}, {"name": "tmp"}],
            "tolerations": [{"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}, {"operator": "Exists"}],
            "nodeSelector": {"kubernetes.io/os": "linux"}}}),
        ),
        (
            "ReplicaSet",
            json!({"metadata": {"name": "rs", "namespace": "default"}, "spec": {"selector": {"matchExpressions": [{"key": "app", "operator": "In", "values": ["a"]}]}, "template": {"metadata": {"labels": {"app": "a"}}, "spec": {"containers": [container()]}}}}),
        ),
        (
            "DaemonSet",
            json!({"metadata": {"name": "ds", "namespace": "kube-system"}, "spec": {"selector": {"matchLabels": {"app": "a"}}, "template": {"metadata": {"labels": {"app": "a"}}, "spec": {"containers": [container()]}}}}),
        ),
        (
            "StatefulSet",
            json!({"metadata": {"name": "db", "namespace": "default"}, "spec": {"serviceName": "db", "selector": {"matchLabels": {"app": "db"}}, "template": {"metadata": {"labels": {"app": "db"}}, "spec": {"containers": [container()]}}, "volumeClaimTemplates": [{"metadata": {"name": "data"}, "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": "1Gi"}}}}]}}),
        ),
        (
            "Job",
            json!({"metadata": {"name": "pi", "namespace": "default", "uid": "0b1e"}, "spec": {"template": {"spec": pod_spec.clone()}}}),
        ),
        (
            "CronJob",
            json!({"metadata": {"name": "tick", "namespace": "default"}, "spec": {"schedule": "*/5 * * * 1-5", "jobTemplate": {"spec": {"template": {"spec": pod_spec.clone()}}}}}),
        ),
        (
            "Service",
            json!({"metadata": {"name": "web", "namespace": "default"}, "spec": {"selector": {"app": "web"}, "ports": [{"name": "http", "port": 80, "targetPort": "http"}, {"name": "https", "port": 443}]}}),
        ),
        (
            "Service",
            json!({"metadata": {"name": "headless", "namespace": "default"}, "spec": {"clusterIP": "None", "selector": {"app": "db"}}}),
        ),
        (
            "Service",
            json!({"metadata": {"name": "ext", "namespace": "default"}, "spec": {"type": "ExternalName", "externalName": "example.com."}}),
        ),
        (
            "Service",
            json!({"metadata": {"name": "np", "namespace": "default"}, "spec": {"type": "NodePort", "clusterIP": "10.96.0.12", "ports": [{"port": 80, "nodePort": 30080}]}}),
        ),
        (
            "ConfigMap",
            json!({"metadata": {"name": "cfg", "namespace": "default"}, "data": {"app.properties": "a=b", "KEY_1": "x"}}),
        ),
        (
            "Secret",
            json!({"metadata": {"name": "tls", "namespace": "default"}, "type": "kubernetes.io/tls", "data": {"tls.crt": "eA==", "tls.key": "eA=="}}),
        ),
        ("Namespace", json!({"metadata": {"name": "team-a"}})),
        (
            "Node",
            json!({"metadata": {"name": "node-1.example.com"}, "spec": {"podCIDR": "10.244.1.0/24", "taints": [{"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}]}}),
        ),
        (
            "Endpoints",
            json!({"metadata": {"name": "web", "namespace": "default"}, "subsets": [{"addresses": [{"ip": "10.0.0.1"}], "ports": [{"port": 80}]}]}),
        ),
        (
            "EndpointSlice",
            json!({"metadata": {"name": "web-abc", "namespace": "default"}, "addressType": "IPv4", "endpoints": [{"addresses": ["10.0.0.1"]}], "ports": [{"name": "http", "port": 80}]}),
        ),
        (
            "Event",
            json!({"metadata": {"name": "p.17a", "namespace": "default"}, "involvedObject": {"kind": "Pod", "name": "p", "namespace": "default"}, "reason": "Started", "type": "Normal"}),
        ),
        (
            "ServiceAccount",
            json!({"metadata": {"name": "default", "namespace": "default"}}),
        ),
        (
            "Lease",
            json!({"metadata": {"name": "node-1", "namespace": "kube-node-lease"}, "spec": {"holderIdentity": "node-1", "leaseDurationSeconds": 40}}),
        ),
        (
            "HorizontalPodAutoscaler",
            json!({"metadata": {"name": "web", "namespace": "default"}, "spec": {"scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"}, "maxReplicas": 5}}),
        ),
        (
            "RuntimeClass",
            json!({"metadata": {"name": "gvisor"}, "handler": "runsc"}),
        ),
        (
            "PodDisruptionBudget",
            json!({"metadata": {"name": "web", "namespace": "default"}, "spec": {"minAvailable": "50%", "selector": {"matchLabels": {"app": "web"}}}}),
        ),
        (
            "ControllerRevision",
            json!({"metadata": {"name": "web-5d4f", "namespace": "default"}, "data": {"spec": {}}, "revision": 1}),
        ),
    ]
}

#[test]
fn valid_objects_have_no_errors() {
    for (kind, obj) in valid_objects() {
        let mut obj = defaulted(kind, obj);
        if kind == "Job" {
            job_generate_selector(&mut obj);
        }
        let errs = validate(kind, &obj, None);
        assert!(errs.is_empty(), "{kind}: {:#?}", msgs(&errs));
        // an unchanged update is valid too
        let errs = validate(kind, &obj, Some(&obj));
        assert!(errs.is_empty(), "{kind} update: {:#?}", msgs(&errs));
        // and the defaulted object decodes cleanly
        assert!(
            skiff_control_plane::api::admission::unknown_fields(kind, &obj).is_empty(),
            "{kind}"
        );
        skiff_control_plane::api::admission::normalize(kind, &obj)
            .unwrap_or_else(|e| panic!("{kind}: {e}"));
    }
}

#[test]
fn bad_names() {
    let mut d = deployment();
    d["metadata"]["name"] = json!("Foo_bar");
    let errs = validate("Deployment", &defaulted("Deployment", d), None);
    assert_eq!(
        msgs(&errs),
        vec![
            r#"metadata.name: Invalid value: "Foo_bar": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"#
        ]
    );
    assert_eq!(errs[0].reason, FieldErrorReason::Invalid);
    assert_eq!(errs[0].reason.as_str(), "FieldValueInvalid");
    assert_eq!(errs[0].field, "metadata.name");

    let svc = json!({"metadata": {"name": "1web", "namespace": "default"}, "spec": {"ports": [{"port": 80}]}});
    let errs = validate("Service", &defaulted("Service", svc), None);
    assert_eq!(
        msgs(&errs),
        vec![
            r#"metadata.name: Invalid value: "1web": a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')"#
        ]
    );
    let ns = json!({"metadata": {"name": "a.b"}});
    assert_eq!(
        msgs(&validate("Namespace", &ns, None)),
        vec![r#"metadata.name: Invalid value: "a.b": must not contain dots"#]
    );
    let cm = json!({"metadata": {"namespace": "default"}});
    assert_eq!(
        msgs(&validate("ConfigMap", &cm, None)),
        vec!["metadata.name: Required value: name or generateName is required"]
    );
    let cm = json!({"metadata": {"generateName": "cfg-", "namespace": "default"}});
    assert!(validate("ConfigMap", &cm, None).is_empty());
    let cm = json!({"metadata": {"name": "cfg"}});
    assert_eq!(
        msgs(&validate("ConfigMap", &cm, None)),
        vec!["metadata.namespace: Required value"]
    );
    let ns = json!({"metadata": {"name": "x", "namespace": "default"}});
    assert_eq!(
        msgs(&validate("Namespace", &ns, None)),
        vec!["metadata.namespace: Forbidden: not allowed on this type"]
    );
    let long = "a".repeat(254);
    let errs = validate(
        "ConfigMap",
        &json!({"metadata": {"name": long, "namespace": "d"}}),
        None,
    );
    assert!(
        errs[0]
            .message
            .contains("must be no more than 253 characters"),
        "{errs:?}"
    );
}

#[test]
fn bad_labels_and_annotations() {
    let obj = json!({"metadata": {"name": "c", "namespace": "d", "labels": {"bad key": "ok", "k": "bad value"}, "annotations": {"UPPER/x": "ok", "big": "x".repeat(262_144)}}});
    let m = msgs(&validate("ConfigMap", &obj, None));
    assert!(
        m.iter().any(|e| e.starts_with(
            r#"metadata.labels: Invalid value: "bad key": name part must consist of alphanumeric"#
        )),
        "{m:#?}"
    );
    assert!(
        m.iter().any(|e| e.starts_with(
            r#"metadata.labels: Invalid value: "bad value": a valid label must be an empty string"#
        )),
        "{m:#?}"
    );
    // annotation keys are checked case-insensitively
    assert!(!m.iter().any(|e| e.contains("UPPER/x")), "{m:#?}");
    assert!(
        m.contains(&"metadata.annotations: Too long: must have at most 262144 bytes".to_string()),
        "{m:#?}"
    );
}

#[test]
fn missing_image_and_duplicate_containers() {
    let mut d = deployment();
    d["spec"]["template"]["spec"]["containers"] =
        json!([{"name": "a"}, {"name": "a", "image": "x"}]);
    let errs = validate("Deployment", &defaulted("Deployment", d), None);
    assert_eq!(
        msgs(&errs),
        vec![
            "spec.template.spec.containers[0].image: Required value",
            r#"spec.template.spec.containers[1].name: Duplicate value: "a""#,
        ]
    );
    assert_eq!(errs[0].reason.as_str(), "FieldValueRequired");
    assert_eq!(errs[1].reason, FieldErrorReason::Duplicate);

    let pod = json!({"metadata": {"name": "p", "namespace": "d"}, "spec": {"containers": []}});
    assert_eq!(
        msgs(&validate("Pod", &defaulted("Pod", pod), None)),
        vec!["spec.containers: Required value"]
    );
    let pod = json!({"metadata": {"name": "p", "namespace": "d"}, "spec": {"containers": [{"name": "Bad_Name", "image": " x", "ports": [{"containerPort": 70000, "protocol": "HTTP"}]}]}});
    let m = msgs(&validate("Pod", &defaulted("Pod", pod), None));
    assert!(
        m.iter().any(|e| e.starts_with(
            r#"spec.containers[0].name: Invalid value: "Bad_Name": a lowercase RFC 1123 label"#
        )),
        "{m:#?}"
    );
    assert!(m.contains(&r#"spec.containers[0].image: Invalid value: " x": must not have leading or trailing whitespace"#.to_string()), "{m:#?}");
    assert!(m.contains(&"spec.containers[0].ports[0].containerPort: Invalid value: 70000: must be between 1 and 65535, inclusive".to_string()), "{m:#?}");
    assert!(m.contains(&r#"spec.containers[0].ports[0].protocol: Unsupported value: "HTTP": supported values: "SCTP", "TCP", "UDP""#.to_string()), "{m:#?}");
}

#[test]
fn selector_mismatch_and_immutability() {
    let mut d = deployment();
    d["spec"]["template"]["metadata"]["labels"] = json!({"app": "other", "x": "y"});
    let errs = validate("Deployment", &defaulted("Deployment", d), None);
    assert_eq!(
        msgs(&errs),
        vec![
            r#"spec.template.metadata.labels: Invalid value: map[string]string{"app":"other", "x":"y"}: `selector` does not match template `labels`"#
        ]
    );
    let mut d = deployment();
    d["spec"].as_object_mut().unwrap().remove("selector");
    assert!(
        msgs(&validate("Deployment", &defaulted("Deployment", d), None))
            .contains(&"spec.selector: Required value".to_string())
    );
    let mut d = deployment();
    d["spec"]["selector"] = json!({});
    let m = msgs(&validate("Deployment", &defaulted("Deployment", d), None));
    assert_eq!(m, vec!["spec.selector: Invalid value: v1.LabelSelector{MatchLabels:map[string]string(nil), MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: empty selector is invalid for deployment"]);

    let old = defaulted("Deployment", deployment());
    let mut new = old.clone();
    new["spec"]["selector"]["matchLabels"]["tier"] = json!("fe");
    new["spec"]["template"]["metadata"]["labels"]["tier"] = json!("fe");
    let m = msgs(&validate("Deployment", &new, Some(&old)));
    assert_eq!(
        m,
        vec![
            r#"spec.selector: Invalid value: v1.LabelSelector{MatchLabels:map[string]string{"app":"web", "tier":"fe"}, MatchExpressions:[]v1.LabelSelectorRequirement(nil)}: field is immutable"#
        ]
    );

    let mut d = defaulted("Deployment", deployment());
    d["spec"]["replicas"] = json!(-1);
    d["spec"]["strategy"]["rollingUpdate"] = json!({"maxSurge": 0, "maxUnavailable": "0%"});
    let m = msgs(&validate("Deployment", &d, None));
    assert!(
        m.contains(
            &"spec.replicas: Invalid value: -1: must be greater than or equal to 0".to_string()
        ),
        "{m:#?}"
    );
    assert!(m.contains(&r#"spec.strategy.rollingUpdate.maxUnavailable: Invalid value: "0%": may not be 0 when `maxSurge` is 0"#.to_string()), "{m:#?}");
}

#[test]
fn job_and_cronjob_rules() {
    let job = json!({"metadata": {"name": "j", "namespace": "d", "uid": "u"}, "spec": {"template": {"spec": {"containers": [container()]}}}});
    let mut job = defaulted("Job", job);
    job_generate_selector(&mut job);
    assert_eq!(
        msgs(&validate("Job", &job, None)),
        vec![
            r#"spec.template.spec.restartPolicy: Unsupported value: "Always": supported values: "OnFailure", "Never""#
        ]
    );
    let cj = json!({"metadata": {"name": "c", "namespace": "d"}, "spec": {"schedule": "61 * * * *", "jobTemplate": {"spec": {"template": {"spec": {"containers": [container()], "restartPolicy": "Never"}}}}}});
    assert_eq!(
        msgs(&validate("CronJob", &defaulted("CronJob", cj), None)),
        vec![
            r#"spec.schedule: Invalid value: "61 * * * *": end of range (61) above maximum (59): 61"#
        ]
    );
    for (sched, ok) in [
        ("@hourly", true),
        ("@every 1h30m", true),
        ("0 0 * * SUN", true),
        ("* * *", false),
        ("", false),
        ("TZ=UTC * * * * *", false),
        ("*/0 * * * *", false),
    ] {
        let cj = json!({"metadata": {"name": "c", "namespace": "d"}, "spec": {"schedule": sched, "jobTemplate": {"spec": {"template": {"spec": {"containers": [container()], "restartPolicy": "Never"}}}}}});
        assert_eq!(
            validate("CronJob", &defaulted("CronJob", cj), None).is_empty(),
            ok,
            "{sched}"
        );
    }
}

#[test]
fn service_rules() {
    let svc = json!({"metadata": {"name": "web", "namespace": "default"}, "spec": {"selector": {"app": "web"}}});
    let errs = validate("Service", &defaulted("Service", svc), None);
    assert_eq!(msgs(&errs), vec!["spec.ports: Required value"]);
    let svc = json!({"metadata": {"name": "web", "namespace": "default"}, "spec": {"type": "Magic", "ports": [{"port": 80}, {"port": 80, "nodePort": 30000}]}});
    let m = msgs(&validate("Service", &defaulted("Service", svc), None));
    for want in [
        "spec.ports[0].name: Required value",
        "spec.ports[1].name: Required value",
        r#"spec.type: Unsupported value: "Magic": supported values: "ClusterIP", "ExternalName", "LoadBalancer", "NodePort""#,
    ] {
        assert!(m.contains(&want.to_string()), "missing {want}: {m:#?}");
    }
    assert!(
        m.iter()
            .any(|e| e.starts_with("spec.ports[1]: Duplicate value")),
        "{m:#?}"
    );
    let svc = json!({"metadata": {"name": "web", "namespace": "default"}, "spec": {"ports": [{"port": 80, "nodePort": 30000}]}});
    assert_eq!(
        msgs(&validate("Service", &defaulted("Service", svc), None)),
        vec!["spec.ports[0].nodePort: Forbidden: may not be used when `type` is 'ClusterIP'"]
    );
    let old = defaulted(
        "Service",
        json!({"metadata": {"name": "web", "namespace": "default"}, "spec": {"clusterIP": "10.96.0.5", "ports": [{"port": 80}]}}),
    );
    let mut new = old.clone();
    new["spec"]["clusterIP"] = json!("10.96.0.6");
    new["spec"]["clusterIPs"] = json!(["10.96.0.6"]);
    assert_eq!(
        msgs(&validate("Service", &new, Some(&old))),
        vec![
            r#"spec.clusterIPs[0]: Invalid value: []string{"10.96.0.6"}: may not change once set"#
        ]
    );
}

#[test]
fn resources_and_config_keys() {
    let pod = json!({"metadata": {"name": "p", "namespace": "d"}, "spec": {"containers": [{"name": "c", "image": "x", "resources": {"limits": {"cpu": "1", "memory": "1Mii"}, "requests": {"cpu": "2", "cpuu": "1"}}}]}});
    let m = msgs(&validate("Pod", &defaulted("Pod", pod), None));
    for want in [
        r#"spec.containers[0].resources.limits[memory]: Invalid value: "1Mii": unable to parse quantity's suffix"#,
        r#"spec.containers[0].resources.requests: Invalid value: "2": must be less than or equal to cpu limit of 1"#,
        r#"spec.containers[0].resources.requests[cpuu]: Invalid value: "cpuu": must be a standard resource for containers"#,
    ] {
        assert!(m.contains(&want.to_string()), "missing {want}: {m:#?}");
    }
    let cm =
        json!({"metadata": {"name": "c", "namespace": "d"}, "data": {"bad key": "v", "..x": "y"}});
    let m = msgs(&validate("ConfigMap", &cm, None));
    assert!(m.contains(&r#"data[bad key]: Invalid value: "bad key": a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')"#.to_string()), "{m:#?}");
    assert!(
        m.contains(&r#"data[..x]: Invalid value: "..x": must not start with '..'"#.to_string()),
        "{m:#?}"
    );
    let s = json!({"metadata": {"name": "s", "namespace": "d"}, "type": "kubernetes.io/tls", "data": {"tls.crt": "eA=="}});
    assert_eq!(
        msgs(&validate("Secret", &s, None)),
        vec!["data[tls.key]: Required value"]
    );
    let old =
        json!({"metadata": {"name": "c", "namespace": "d"}, "immutable": true, "data": {"a": "1"}});
    let mut new = old.clone();
    new["data"]["a"] = json!("2");
    assert_eq!(
        msgs(&validate("ConfigMap", &new, Some(&old))),
        vec!["data: Forbidden: field is immutable when `immutable` is set"]
    );
}

#[test]
fn status_helpers() {
    let mut d = deployment();
    d["metadata"]["name"] = json!("Bad");
    d["spec"]["template"]["spec"]["containers"][0]
        .as_object_mut()
        .unwrap()
        .remove("image");
    let errs = validate("Deployment", &defaulted("Deployment", d), None);
    assert_eq!(errs.len(), 2);
    let msg = invalid_message("Deployment", "Bad", &errs);
    assert!(
        msg.starts_with(
            r#"Deployment.apps "Bad" is invalid: [metadata.name: Invalid value: "Bad": "#
        ),
        "{msg}"
    );
    assert!(
        msg.ends_with(", spec.template.spec.containers[0].image: Required value]"),
        "{msg}"
    );
    let st = invalid_status("Deployment", "Bad", &errs);
    assert_eq!(st["code"], 422);
    assert_eq!(st["reason"], "Invalid");
    assert_eq!(st["details"]["group"], "apps");
    assert_eq!(
        st["details"]["causes"][1],
        json!({"reason": "FieldValueRequired", "message": "Required value", "field": "spec.template.spec.containers[0].image"})
    );
    assert_eq!(
        invalid_message("Pod", "p", &errs[1..]),
        r#"Pod "p" is invalid: spec.template.spec.containers[0].image: Required value"#
    );
}

fn paths(v: &Value, prefix: String, out: &mut Vec<String>) {
    out.push(prefix.clone());
    match v {
        Value::Object(m) => {
            for (k, c) in m {
                paths(
                    c,
                    format!("{prefix}/{}", k.replace('~', "~0").replace('/', "~1")),
                    out,
                );
            }
        }
        Value::Array(a) => {
            for (i, c) in a.iter().enumerate() {
                paths(c, format!("{prefix}/{i}"), out);
            }
        }
        _ => {}
    }
}

/// Replaces every subtree of every valid object with odd values and runs
/// everything: nothing may panic.
#[test]
fn mutated_objects_never_panic() {
    let junk = [
        json!(null),
        json!(""),
        json!("x"),
        json!(-1),
        json!(1.5),
        json!(i64::MIN),
        json!(u64::MAX),
        json!(true),
        json!([]),
        json!({}),
        json!([null, 1, "a"]),
        json!({"a": null, "b": [1]}),
        json!("-"),
        json!("1e999999999"),
        json!("0.0000000000000000000000000000001Ei"),
        json!("99999999999999999999999999999999999999999Ei"),
    ];
    let mut runs = 0usize;
    for (kind, obj) in valid_objects() {
        let base = defaulted(kind, obj);
        let mut ps = Vec::new();
        paths(&base, String::new(), &mut ps);
        for p in ps.iter().skip(1) {
            for j in &junk {
                let mut m = base.clone();
                if let Some(slot) = m.pointer_mut(p) {
                    *slot = j.clone();
                }
                let mut d = m.clone();
                apply_defaults(kind, &mut d);
                let _ = validate(kind, &d, Some(&base));
                let _ = validate(kind, &base, Some(&d));
                let _ = skiff_control_plane::api::admission::unknown_fields(kind, &m);
                let _ = skiff_control_plane::api::admission::normalize(kind, &m);
                runs += 1;
            }
        }
    }
    assert!(runs > 5000, "{runs}");
}
