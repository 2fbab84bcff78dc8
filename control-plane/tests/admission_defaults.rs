use serde_json::json;
use skiff_control_plane::api::admission::defaults::{
    apply_defaults, default_pull_policy, job_generate_selector, service_carry_over_allocations,
};

#[test]
fn minimal_deployment_gets_exactly_kubernetes_defaults() {
    let mut d = json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {
            "selector": {"matchLabels": {"app": "web"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {"containers": [{"name": "nginx", "image": "nginx:1.27", "ports": [{"containerPort": 80}]}]}
            }
        }
    });
    apply_defaults("Deployment", &mut d);
    let want = json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default"},
        "spec": {
            "replicas": 1,
            "revisionHistoryLimit": 10,
            "progressDeadlineSeconds": 600,
            "selector": {"matchLabels": {"app": "web"}},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {
                    "containers": [{
                        "name": "nginx",
                        "image": "nginx:1.27",
                        "imagePullPolicy": "IfNotPresent",
                        "ports": [{"containerPort": 80, "protocol": "TCP"}],
                        "resources": {},
                        "terminationMessagePath": "/dev/termination-log",
                        "terminationMessagePolicy": "File"
                    }],
                    "dnsPolicy": "ClusterFirst",
                    "restartPolicy": "Always",
                    "schedulerName": "default-scheduler",
                    "securityContext": {},
                    "terminationGracePeriodSeconds": 30
                }
            }
        }
    });
    assert_eq!(d, want);
    // idempotent
    let before = d.clone();
    apply_defaults("Deployment", &mut d);
    assert_eq!(d, before);
}

#[test]
fn deployment_respects_given_values() {
    let mut d = json!({"spec": {"replicas": 0, "strategy": {"type": "Recreate"}, "template": {"spec": {"containers": []}}}});
    apply_defaults("Deployment", &mut d);
    assert_eq!(d["spec"]["replicas"], 0);
    assert_eq!(d["spec"]["strategy"], json!({"type": "Recreate"}));
}

#[test]
fn pull_policy() {
    for (img, want) in [
        ("nginx", "Always"),
        ("nginx:latest", "Always"),
        ("nginx:1.2", "IfNotPresent"),
        ("localhost:5000/nginx", "Always"),
        ("localhost:5000/nginx:v1", "IfNotPresent"),
        ("nginx@sha256:abcd", "IfNotPresent"),
        ("registry.io/a/b:latest@sha256:abcd", "Always"),
    ] {
        assert_eq!(default_pull_policy(img), want, "{img}");
    }
}

#[test]
fn pod_defaults() {
    let mut p = json!({
        "metadata": {"name": "p", "namespace": "default"},
        "spec": {
            "containers": [{
                "name": "c", "image": "busybox",
                "resources": {"limits": {"cpu": "1", "memory": "1Gi"}},
                "livenessProbe": {"httpGet": {"port": 8080}},
                "readinessProbe": {"grpc": {"port": 9000}, "periodSeconds": 5},
                "env": [{"name": "NODE", "valueFrom": {"fieldRef": {"fieldPath": "spec.nodeName"}}}]
            }],
            "volumes": [
                {"name": "cm", "configMap": {"name": "x"}},
                {"name": "s", "secret": {"secretName": "x"}},
                {"name": "scratch"},
                {"name": "tok", "projected": {"sources": [{"serviceAccountToken": {"path": "t"}}]}}
            ]
        }
    });
    apply_defaults("Pod", &mut p);
    let spec = &p["spec"];
    let c = &spec["containers"][0];
    assert_eq!(c["imagePullPolicy"], "Always");
    assert_eq!(
        c["resources"]["requests"],
        json!({"cpu": "1", "memory": "1Gi"})
    );
    assert_eq!(
        c["livenessProbe"],
        json!({"httpGet": {"port": 8080, "path": "/", "scheme": "HTTP"}, "timeoutSeconds": 1, "periodSeconds": 10, "successThreshold": 1, "failureThreshold": 3})
    );
    assert_eq!(c["readinessProbe"]["periodSeconds"], 5);
    assert_eq!(c["readinessProbe"]["grpc"]["service"], "");
    assert_eq!(c["env"][0]["valueFrom"]["fieldRef"]["apiVersion"], "v1");
    assert_eq!(spec["volumes"][0]["configMap"]["defaultMode"], 420);
    assert_eq!(spec["volumes"][1]["secret"]["defaultMode"], 420);
    assert_eq!(spec["volumes"][2]["emptyDir"], json!({}));
    assert_eq!(spec["volumes"][3]["projected"]["defaultMode"], 420);
    assert_eq!(
        spec["volumes"][3]["projected"]["sources"][0]["serviceAccountToken"]["expirationSeconds"],
        3600
    );
    assert_eq!(spec["enableServiceLinks"], true);
    assert_eq!(spec["priority"], 0);
    assert_eq!(spec["preemptionPolicy"], "PreemptLowerPriority");
    assert_eq!(spec["restartPolicy"], "Always");
    assert_eq!(p["status"]["phase"], "Pending");
    assert_eq!(p["status"]["qosClass"], "Guaranteed");

    let mut be = json!({"spec": {"containers": [{"name": "c", "image": "x"}]}});
    apply_defaults("Pod", &mut be);
    assert_eq!(be["status"]["qosClass"], "BestEffort");
    let mut bu = json!({"spec": {"containers": [{"name": "c", "image": "x", "resources": {"requests": {"cpu": "100m"}}}]}});
    apply_defaults("Pod", &mut bu);
    assert_eq!(bu["status"]["qosClass"], "Burstable");
    // template pod specs don't get Pod-only fields
    let mut rs =
        json!({"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "x"}]}}}});
    apply_defaults("ReplicaSet", &mut rs);
    assert_eq!(rs["spec"]["replicas"], 1);
    assert!(rs["spec"]["template"]["spec"]
        .get("enableServiceLinks")
        .is_none());
    assert!(rs["spec"]["template"]["spec"].get("priority").is_none());
}

#[test]
fn host_network_pod_gets_host_ports() {
    let mut p = json!({"spec": {"hostNetwork": true, "containers": [{"name": "c", "image": "x", "ports": [{"containerPort": 53, "protocol": "UDP"}]}]}});
    apply_defaults("Pod", &mut p);
    assert_eq!(
        p["spec"]["containers"][0]["ports"][0],
        json!({"containerPort": 53, "hostPort": 53, "protocol": "UDP"})
    );
}

#[test]
fn workload_defaults() {
    let mut ds = json!({"spec": {"template": {"spec": {"containers": []}}}});
    apply_defaults("DaemonSet", &mut ds);
    assert_eq!(
        ds["spec"]["updateStrategy"],
        json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}})
    );
    assert_eq!(ds["spec"]["revisionHistoryLimit"], 10);

    let mut sts = json!({"spec": {"template": {"spec": {"containers": []}}, "volumeClaimTemplates": [{"metadata": {"name": "data"}, "spec": {"accessModes": ["ReadWriteOnce"]}}]}});
    apply_defaults("StatefulSet", &mut sts);
    let s = &sts["spec"];
    assert_eq!(s["replicas"], 1);
    assert_eq!(s["podManagementPolicy"], "OrderedReady");
    assert_eq!(
        s["updateStrategy"],
        json!({"type": "RollingUpdate", "rollingUpdate": {"partition": 0}})
    );
    assert_eq!(
        s["persistentVolumeClaimRetentionPolicy"],
        json!({"whenDeleted": "Retain", "whenScaled": "Retain"})
    );
    assert_eq!(s["revisionHistoryLimit"], 10);
    assert_eq!(
        s["volumeClaimTemplates"][0]["spec"]["volumeMode"],
        "Filesystem"
    );
    assert_eq!(s["volumeClaimTemplates"][0]["status"]["phase"], "Pending");

    let mut job = json!({"metadata": {"name": "pi", "uid": "u-1"}, "spec": {"template": {"metadata": {"labels": {"app": "pi"}}, "spec": {"restartPolicy": "Never", "containers": []}}}});
    apply_defaults("Job", &mut job);
    let j = &job["spec"];
    assert_eq!(
        (j["completions"].clone(), j["parallelism"].clone()),
        (json!(1), json!(1))
    );
    assert_eq!(j["backoffLimit"], 6);
    assert_eq!(j["completionMode"], "NonIndexed");
    assert_eq!(j["suspend"], false);
    assert_eq!(j["podReplacementPolicy"], "TerminatingOrFailed");
    assert!(j.get("manualSelector").is_none());
    assert_eq!(j["template"]["spec"]["restartPolicy"], "Never");
    assert_eq!(job["metadata"]["labels"], json!({"app": "pi"}));
    job_generate_selector(&mut job);
    assert_eq!(
        job["spec"]["selector"],
        json!({"matchLabels": {"batch.kubernetes.io/controller-uid": "u-1"}})
    );
    assert_eq!(
        job["spec"]["template"]["metadata"]["labels"]["batch.kubernetes.io/job-name"],
        "pi"
    );

    let mut par = json!({"spec": {"parallelism": 3, "template": {"spec": {"containers": []}}}});
    apply_defaults("Job", &mut par);
    assert!(par["spec"].get("completions").is_none());

    let mut cj = json!({"spec": {"schedule": "* * * * *", "jobTemplate": {"spec": {"template": {"spec": {"containers": [{"name": "c", "image": "x"}], "restartPolicy": "OnFailure"}}}}}});
    apply_defaults("CronJob", &mut cj);
    let c = &cj["spec"];
    assert_eq!(c["concurrencyPolicy"], "Allow");
    assert_eq!(c["suspend"], false);
    assert_eq!(c["successfulJobsHistoryLimit"], 3);
    assert_eq!(c["failedJobsHistoryLimit"], 1);
    assert!(c["jobTemplate"]["spec"].get("backoffLimit").is_none());
    assert_eq!(
        c["jobTemplate"]["spec"]["template"]["spec"]["dnsPolicy"],
        "ClusterFirst"
    );
}

#[test]
fn service_defaults() {
    let mut s = json!({"spec": {"selector": {"app": "web"}, "ports": [{"port": 80}, {"port": 443, "targetPort": "https", "protocol": "TCP"}]}});
    apply_defaults("Service", &mut s);
    let want = json!({
        "type": "ClusterIP",
        "sessionAffinity": "None",
        "selector": {"app": "web"},
        "ports": [{"port": 80, "protocol": "TCP", "targetPort": 80}, {"port": 443, "targetPort": "https", "protocol": "TCP"}],
        "internalTrafficPolicy": "Cluster",
        "ipFamilies": ["IPv4"],
        "ipFamilyPolicy": "SingleStack"
    });
    assert_eq!(s["spec"], want);

    let mut np = json!({"spec": {"type": "NodePort", "ports": [{"port": 80}]}});
    apply_defaults("Service", &mut np);
    assert_eq!(np["spec"]["externalTrafficPolicy"], "Cluster");
    let mut lb = json!({"spec": {"type": "LoadBalancer", "ports": [{"port": 80}]}});
    apply_defaults("Service", &mut lb);
    assert_eq!(lb["spec"]["allocateLoadBalancerNodePorts"], true);
    let mut en = json!({"spec": {"type": "ExternalName", "externalName": "example.com"}});
    apply_defaults("Service", &mut en);
    assert!(en["spec"].get("ipFamilies").is_none());
    assert!(en["spec"].get("internalTrafficPolicy").is_none());
    let mut headless = json!({"spec": {"clusterIP": "None"}});
    apply_defaults("Service", &mut headless);
    assert_eq!(headless["spec"]["ipFamilyPolicy"], "RequireDualStack");
    assert_eq!(headless["spec"]["clusterIPs"], json!(["None"]));
    let mut aff = json!({"spec": {"sessionAffinity": "ClientIP", "ports": [{"port": 1}]}});
    apply_defaults("Service", &mut aff);
    assert_eq!(
        aff["spec"]["sessionAffinityConfig"]["clientIP"]["timeoutSeconds"],
        10800
    );

    let old = json!({"spec": {"type": "NodePort", "clusterIP": "10.96.0.10", "clusterIPs": ["10.96.0.10"], "ports": [{"port": 80, "protocol": "TCP", "nodePort": 30080}]}});
    let mut new = json!({"spec": {"type": "NodePort", "ports": [{"port": 80, "protocol": "TCP"}]}});
    service_carry_over_allocations(&mut new, &old);
    assert_eq!(new["spec"]["clusterIP"], "10.96.0.10");
    assert_eq!(new["spec"]["ports"][0]["nodePort"], 30080);
}

#[test]
fn misc_defaults() {
    let mut s = json!({"metadata": {"name": "s"}, "data": {"a": "eA=="}, "stringData": {"b": "hello", "a": "y"}});
    apply_defaults("Secret", &mut s);
    assert_eq!(s["type"], "Opaque");
    assert_eq!(s["data"], json!({"a": "eQ==", "b": "aGVsbG8="}));
    assert!(s.get("stringData").is_none());

    let mut ns = json!({"metadata": {"name": "team-a"}});
    apply_defaults("Namespace", &mut ns);
    assert_eq!(ns["spec"]["finalizers"], json!(["kubernetes"]));
    assert_eq!(ns["status"]["phase"], "Active");
    assert_eq!(
        ns["metadata"]["labels"]["kubernetes.io/metadata.name"],
        "team-a"
    );

    let mut node = json!({"metadata": {"name": "n"}, "status": {"capacity": {"cpu": "4"}}});
    apply_defaults("Node", &mut node);
    assert_eq!(node["status"]["allocatable"], json!({"cpu": "4"}));

    let mut hpa = json!({"spec": {"maxReplicas": 3, "behavior": {}}});
    apply_defaults("HorizontalPodAutoscaler", &mut hpa);
    assert_eq!(hpa["spec"]["minReplicas"], 1);
    assert_eq!(
        hpa["spec"]["metrics"][0]["resource"]["target"]["averageUtilization"],
        80
    );
    assert_eq!(
        hpa["spec"]["behavior"]["scaleUp"]["policies"][0]["value"],
        4
    );
    assert!(hpa["spec"]["behavior"]["scaleDown"]
        .get("stabilizationWindowSeconds")
        .is_none());

    let mut es = json!({"addressType": "IPv4", "ports": [{"port": 80}]});
    apply_defaults("EndpointSlice", &mut es);
    assert_eq!(
        es["ports"][0],
        json!({"name": "", "port": 80, "protocol": "TCP"})
    );
}

#[test]
fn defaults_never_panic_on_garbage() {
    let garbage = [
        json!(null),
        json!("str"),
        json!([1, 2]),
        json!({"spec": "x"}),
        json!({"spec": {"template": 5, "strategy": [], "ports": {"a": 1}}}),
        json!({"spec": {"containers": [1, "x", null, {"ports": "p", "livenessProbe": 3}], "volumes": [null, 2]}}),
        json!({"spec": {"template": {"spec": {"containers": {"x": 1}}}}, "metadata": 3}),
        json!({"metadata": {"name": 5}, "stringData": {"a": 1}, "data": "x"}),
        json!({"spec": {"jobTemplate": {"spec": 1}, "updateStrategy": "x", "behavior": {"scaleUp": 1}}}),
    ];
    for kind in skiff_control_plane::api::admission::kinds::known_kinds() {
        for g in &garbage {
            let mut v = g.clone();
            apply_defaults(kind, &mut v);
            let _ = skiff_control_plane::api::admission::validate(kind, &v, Some(g));
            let _ = skiff_control_plane::api::admission::unknown_fields(kind, &v);
            let _ = skiff_control_plane::api::admission::normalize(kind, &v);
        }
    }
}

#[test]
fn pod_admission_defaults_add_sa_and_tolerations() {
    let mut p = json!({"spec": {"containers": [{"name": "c", "image": "x"}], "tolerations": [{"key": "node.kubernetes.io/unreachable", "operator": "Exists"}]}});
    skiff_control_plane::api::admission::defaults::pod_admission_defaults(&mut p);
    assert_eq!(p["spec"]["serviceAccountName"], "default");
    assert_eq!(p["spec"]["serviceAccount"], "default");
    assert_eq!(
        p["spec"]["tolerations"],
        json!([
            {"key": "node.kubernetes.io/unreachable", "operator": "Exists"},
            {"key": "node.kubernetes.io/not-ready", "operator": "Exists", "effect": "NoExecute", "tolerationSeconds": 300}
        ])
    );
    let mut q = json!({"spec": {"serviceAccountName": "builder", "containers": []}});
    skiff_control_plane::api::admission::defaults::pod_admission_defaults(&mut q);
    assert_eq!(q["spec"]["serviceAccount"], "builder");
    assert_eq!(q["spec"]["tolerations"].as_array().map(Vec::len), Some(2));
}
