use super::*;
use serde_json::json;

fn apply(kind: &str, original: Value, patch: Value) -> Value {
    match strategic_merge(&original, &patch, kind) {
        Ok(merged) => {
            assert_no_directives(&merged, "");
            merged
        }
        Err(err) => panic!("patch failed: {err}"),
    }
}

fn apply_err(kind: &str, original: Value, patch: Value) -> StrategicMergeError {
    match strategic_merge(&original, &patch, kind) {
        Ok(merged) => panic!("expected an error, got {merged}"),
        Err(err) => err,
    }
}

fn assert_no_directives(value: &Value, at: &str) {
    match value {
        Value::Object(map) => {
            for (key, child) in map {
                assert!(!key.starts_with('$'), "directive {key} leaked at {at}");
                assert_no_directives(child, &format!("{at}.{key}"));
            }
        }
        Value::Array(list) => list.iter().for_each(|v| assert_no_directives(v, at)),
        _ => {}
    }
}

fn names(list: &Value, key: &str) -> Vec<String> {
    list.as_array()
        .into_iter()
        .flatten()
        .map(|v| {
            v[key]
                .as_str()
                .map_or_else(|| v[key].to_string(), str::to_string)
        })
        .collect()
}

fn deployment() -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "namespace": "default", "labels": {"app": "web"},
                     "annotations": {"deployment.kubernetes.io/revision": "1"}},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": "web"}},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}},
            "template": {
                "metadata": {"labels": {"app": "web"}},
                "spec": {
                    "containers": [
                        {"name": "web", "image": "nginx:1.24", "imagePullPolicy": "IfNotPresent",
                         "ports": [{"containerPort": 80, "protocol": "TCP"}, {"containerPort": 443, "protocol": "TCP"}],
                         "env": [{"name": "A", "value": "1"}, {"name": "B", "value": "2"}],
                         "resources": {"limits": {"cpu": "500m"}}},
                        {"name": "sidecar", "image": "busybox", "args": ["sleep", "3600"]}
                    ],
                    "tolerations": [{"key": "a", "operator": "Exists"}],
                    "restartPolicy": "Always"
                }
            }
        },
        "status": {"conditions": [{"type": "Available", "status": "True"}, {"type": "Progressing", "status": "True"}]}
    })
}

#[test]
fn apply_changes_image_and_adds_env_var() {
    let patch = json!({
        "metadata": {"annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{...}"}},
        "spec": {"template": {"spec": {
            "$setElementOrder/containers": [{"name": "web"}, {"name": "sidecar"}],
            "containers": [{
                "$setElementOrder/env": [{"name": "A"}, {"name": "B"}, {"name": "C"}],
                "env": [{"name": "C", "value": "3"}],
                "image": "nginx:1.25", "name": "web"
            }]
        }}}
    });
    let out = apply("Deployment", deployment(), patch);
    let containers = &out["spec"]["template"]["spec"]["containers"];
    assert_eq!(names(containers, "name"), ["web", "sidecar"]);
    let web = &containers[0];
    assert_eq!(web["image"], "nginx:1.25");
    assert_eq!(web["imagePullPolicy"], "IfNotPresent");
    assert_eq!(web["resources"]["limits"]["cpu"], "500m");
    assert_eq!(names(&web["ports"], "containerPort"), ["80", "443"]);
    assert_eq!(names(&web["env"], "name"), ["A", "B", "C"]);
    assert_eq!(web["env"][2]["value"], "3");
    assert_eq!(containers[1]["args"], json!(["sleep", "3600"]));
    let annotations = &out["metadata"]["annotations"];
    assert_eq!(
        annotations["kubectl.kubernetes.io/last-applied-configuration"],
        "{...}"
    );
    assert_eq!(annotations["deployment.kubernetes.io/revision"], "1");
    assert_eq!(out["spec"]["replicas"], 2);
}

#[test]
fn set_image_merges_container_by_name() {
    let patch = json!({"spec": {"template": {"spec": {"containers": [{"name": "sidecar", "image": "busybox:1.36"}]}}}});
    let out = apply("Deployment", deployment(), patch);
    let containers = &out["spec"]["template"]["spec"]["containers"];
    assert_eq!(names(containers, "name"), ["web", "sidecar"]);
    assert_eq!(containers[1]["image"], "busybox:1.36");
    assert_eq!(containers[1]["args"], json!(["sleep", "3600"]));
    assert_eq!(containers[0]["image"], "nginx:1.24");
}

#[test]
fn new_element_without_set_element_order_goes_first_like_kubernetes() {
    let patch = json!({"spec": {"template": {"spec": {"containers": [{"name": "log", "image": "fluentd"}]}}}});
    let out = apply("Deployment", deployment(), patch);
    let containers = &out["spec"]["template"]["spec"]["containers"];
    assert_eq!(names(containers, "name"), ["log", "web", "sidecar"]);
}

#[test]
fn edit_appends_container_per_set_element_order() {
    let patch = json!({"spec": {"template": {"spec": {
        "$setElementOrder/containers": [{"name": "web"}, {"name": "sidecar"}, {"name": "log"}],
        "containers": [{"name": "log", "image": "fluentd"}]
    }}}});
    let out = apply("Deployment", deployment(), patch);
    let containers = &out["spec"]["template"]["spec"]["containers"];
    assert_eq!(names(containers, "name"), ["web", "sidecar", "log"]);
    assert_eq!(containers[2], json!({"name": "log", "image": "fluentd"}));
}

#[test]
fn delete_container_and_replace_list() {
    let patch = json!({"spec": {"template": {"spec": {
        "$setElementOrder/containers": [{"name": "web"}],
        "containers": [{"$patch": "delete", "name": "sidecar"}]
    }}}});
    let out = apply("Deployment", deployment(), patch);
    assert_eq!(
        names(&out["spec"]["template"]["spec"]["containers"], "name"),
        ["web"]
    );

    let patch = json!({"spec": {"template": {"spec": {"containers": [
        {"$patch": "replace"},
        {"name": "only", "image": "alpine", "env": [{"name": "X", "value": "y"}]}
    ]}}}});
    let out = apply("Deployment", deployment(), patch);
    assert_eq!(
        out["spec"]["template"]["spec"]["containers"],
        json!([{"name": "only", "image": "alpine", "env": [{"name": "X", "value": "y"}]}])
    );
    // Replacing with nothing empties the list.
    let patch = json!({"spec": {"template": {"spec": {"containers": [{"$patch": "replace"}]}}}});
    let out = apply("Deployment", deployment(), patch);
    assert_eq!(out["spec"]["template"]["spec"]["containers"], json!([]));
}

#[test]
fn retain_keys_clears_rolling_update() {
    let patch = json!({"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate", "rollingUpdate": null}}});
    let out = apply("Deployment", deployment(), patch);
    assert_eq!(out["spec"]["strategy"], json!({"type": "Recreate"}));

    let patch = json!({"spec": {"strategy": {"$retainKeys": ["type"], "type": "Recreate"}}});
    let out = apply("Deployment", deployment(), patch);
    assert_eq!(out["spec"]["strategy"], json!({"type": "Recreate"}));
}

#[test]
fn map_directives_replace_and_delete() {
    let patch = json!({"spec": {"strategy": {"$patch": "replace", "type": "Recreate"}}});
    let out = apply("Deployment", deployment(), patch);
    assert_eq!(out["spec"]["strategy"], json!({"type": "Recreate"}));

    // Kubernetes turns `$patch: delete` on a map into an empty map.
    let patch = json!({"spec": {"template": {"metadata": {"labels": {"$patch": "delete"}}}}});
    let out = apply("Deployment", deployment(), patch);
    assert_eq!(out["spec"]["template"]["metadata"]["labels"], json!({}));

    // ... and drops it entirely when the original has no such map.
    let patch = json!({"spec": {"paused": true, "extra": {"$patch": "delete", "a": 1}}});
    let out = apply("Deployment", deployment(), patch);
    assert!(out["spec"].get("extra").is_none());
    assert_eq!(out["spec"]["paused"], true);
}

#[test]
fn node_cordon_and_uncordon() {
    let node =
        json!({"kind": "Node", "metadata": {"name": "n1"}, "spec": {"podCIDR": "10.0.0.0/24"}});
    let cordoned = apply("Node", node, json!({"spec": {"unschedulable": true}}));
    assert_eq!(cordoned["spec"]["unschedulable"], true);
    let uncordoned = apply("Node", cordoned, json!({"spec": {"unschedulable": null}}));
    assert_eq!(uncordoned["spec"], json!({"podCIDR": "10.0.0.0/24"}));
    // Null for a missing key is ignored rather than stored.
    let out = apply(
        "Node",
        uncordoned,
        json!({"spec": {"unschedulable": null, "x": {"y": null, "z": 1}}}),
    );
    assert_eq!(
        out["spec"],
        json!({"podCIDR": "10.0.0.0/24", "x": {"z": 1}})
    );
}

#[test]
fn node_status_merges_conditions_and_addresses_by_type() {
    let node = json!({"metadata": {"name": "n1"}, "status": {
        "conditions": [{"type": "Ready", "status": "False"}, {"type": "MemoryPressure", "status": "False"}],
        "addresses": [{"type": "InternalIP", "address": "10.0.0.5"}]
    }});
    let patch = json!({"status": {
        "conditions": [{"type": "Ready", "status": "True"}],
        "addresses": [{"type": "Hostname", "address": "n1"}]
    }});
    let out = apply("Node", node, patch);
    assert_eq!(
        out["status"]["conditions"][0],
        json!({"type": "Ready", "status": "True"})
    );
    assert_eq!(
        out["status"]["conditions"].as_array().map(Vec::len),
        Some(2)
    );
    assert_eq!(
        names(&out["status"]["addresses"], "type"),
        ["Hostname", "InternalIP"]
    );
    // Taints are atomic.
    let node = json!({"spec": {"taints": [{"key": "a", "effect": "NoSchedule"}]}});
    let out = apply(
        "Node",
        node,
        json!({"spec": {"taints": [{"key": "b", "effect": "NoExecute"}]}}),
    );
    assert_eq!(
        out["spec"]["taints"],
        json!([{"key": "b", "effect": "NoExecute"}])
    );
}

#[test]
fn finalizers_set_merge_and_delete_from_primitive_list() {
    let pod = json!({"metadata": {"name": "p", "finalizers": ["a.io/x", "b.io/y"]}});
    let out = apply(
        "Pod",
        pod.clone(),
        json!({"metadata": {"finalizers": ["b.io/y", "c.io/z"]}}),
    );
    assert_eq!(
        out["metadata"]["finalizers"],
        json!(["a.io/x", "b.io/y", "c.io/z"])
    );

    let patch = json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["a.io/x"]}});
    let out = apply("Pod", pod.clone(), patch);
    assert_eq!(out["metadata"]["finalizers"], json!(["b.io/y"]));

    let patch = json!({"metadata": {
        "$setElementOrder/finalizers": ["c.io/z", "b.io/y"],
        "$deleteFromPrimitiveList/finalizers": ["a.io/x"],
        "finalizers": ["c.io/z"]
    }});
    let out = apply("Pod", pod.clone(), patch);
    assert_eq!(out["metadata"]["finalizers"], json!(["c.io/z", "b.io/y"]));

    // Deleting from a list the object does not have is a no-op.
    let out = apply(
        "Pod",
        json!({"metadata": {}}),
        json!({"metadata": {"$deleteFromPrimitiveList/finalizers": ["x"]}}),
    );
    assert_eq!(out, json!({"metadata": {}}));
}

#[test]
fn owner_references_merge_by_uid() {
    let pod = json!({"metadata": {"ownerReferences": [{"uid": "1", "kind": "ReplicaSet", "name": "rs"}]}});
    let patch = json!({"metadata": {"ownerReferences": [{"uid": "1", "controller": true}, {"uid": "2", "kind": "X", "name": "x"}]}});
    let out = apply("Pod", pod, patch);
    let refs = &out["metadata"]["ownerReferences"];
    assert_eq!(names(refs, "uid"), ["1", "2"]);
    assert_eq!(
        refs[0],
        json!({"uid": "1", "kind": "ReplicaSet", "name": "rs", "controller": true})
    );
}

#[test]
fn set_element_order_reorders_ports_and_env_delete() {
    let patch = json!({"spec": {"template": {"spec": {
        "$setElementOrder/containers": [{"name": "web"}, {"name": "sidecar"}],
        "containers": [{
            "name": "web",
            "$setElementOrder/ports": [{"containerPort": 443}, {"containerPort": 80}],
            "env": [{"name": "A", "$patch": "delete"}]
        }]
    }}}});
    let out = apply("Deployment", deployment(), patch);
    let web = &out["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(names(&web["ports"], "containerPort"), ["443", "80"]);
    assert_eq!(web["ports"][0]["protocol"], "TCP");
    assert_eq!(web["env"], json!([{"name": "B", "value": "2"}]));
}

#[test]
fn set_element_order_keeps_server_only_items_in_place() {
    let pod = json!({"spec": {"containers": [{"name": "a"}, {"name": "b"}, {"name": "c"}]}});
    let patch = json!({"spec": {"$setElementOrder/containers": [{"name": "c"}, {"name": "a"}]}});
    let out = apply("Pod", pod, patch);
    assert_eq!(names(&out["spec"]["containers"], "name"), ["b", "c", "a"]);
}

#[test]
fn service_ports_merge_by_port() {
    let svc = json!({"kind": "Service", "spec": {"type": "ClusterIP", "selector": {"app": "web"},
        "ports": [{"name": "http", "port": 80, "targetPort": 8080, "protocol": "TCP"}]}});
    let patch = json!({"spec": {
        "$setElementOrder/ports": [{"port": 80}, {"port": 443}],
        "ports": [{"port": 80, "targetPort": 9090}, {"name": "https", "port": 443, "targetPort": 8443}]
    }});
    let out = apply("Service", svc, patch);
    assert_eq!(
        out["spec"]["ports"],
        json!([
            {"name": "http", "port": 80, "targetPort": 9090, "protocol": "TCP"},
            {"name": "https", "port": 443, "targetPort": 8443}
        ])
    );
    assert_eq!(out["spec"]["selector"], json!({"app": "web"}));
}

#[test]
fn merge_key_numbers_compare_like_go_floats() {
    let svc = json!({"spec": {"ports": [{"port": 80, "name": "http"}]}});
    let out = apply(
        "Service",
        svc,
        json!({"spec": {"ports": [{"port": 80.0, "targetPort": 81}]}}),
    );
    assert_eq!(out["spec"]["ports"].as_array().map(Vec::len), Some(1));
    assert_eq!(out["spec"]["ports"][0]["targetPort"], 81);
}

#[test]
fn rollout_restart_adds_template_annotation() {
    let patch = json!({"spec": {"template": {"metadata": {"annotations": {
        "kubectl.kubernetes.io/restartedAt": "2024-05-01T10:00:00Z"
    }}}}});
    let before = deployment();
    let out = apply("Deployment", before.clone(), patch);
    let meta = &out["spec"]["template"]["metadata"];
    assert_eq!(
        meta["annotations"]["kubectl.kubernetes.io/restartedAt"],
        "2024-05-01T10:00:00Z"
    );
    assert_eq!(meta["labels"], json!({"app": "web"}));
    assert_eq!(
        out["spec"]["template"]["spec"],
        before["spec"]["template"]["spec"]
    );
}

#[test]
fn cron_job_nested_pod_template_merges_containers() {
    let cj = json!({"spec": {"schedule": "* * * * *", "jobTemplate": {"spec": {"template": {"spec": {
        "containers": [{"name": "job", "image": "a", "env": [{"name": "X", "value": "1"}]}]
    }}}}}});
    let patch = json!({"spec": {"jobTemplate": {"spec": {"template": {"spec": {
        "containers": [{"name": "job", "env": [{"name": "Y", "value": "2"}]}]
    }}}}}});
    let out = apply("CronJob", cj, patch);
    let job = &out["spec"]["jobTemplate"]["spec"]["template"]["spec"]["containers"][0];
    assert_eq!(job["image"], "a");
    assert_eq!(names(&job["env"], "name"), ["Y", "X"]);
}

#[test]
fn tolerations_and_unknown_lists_are_atomic() {
    let patch = json!({"spec": {"template": {"spec": {"tolerations": [{"key": "b", "operator": "Exists"}]}}}});
    let out = apply("Deployment", deployment(), patch);
    assert_eq!(
        out["spec"]["template"]["spec"]["tolerations"],
        json!([{"key": "b", "operator": "Exists"}])
    );

    let original = json!({"spec": {"items": [{"name": "a", "v": 1}], "m": {"x": 1, "y": 2}}});
    let patch = json!({"spec": {"items": [{"name": "b"}], "m": {"y": null, "z": 3}}});
    let out = apply("Widget", original, patch);
    assert_eq!(
        out,
        json!({"spec": {"items": [{"name": "b"}], "m": {"x": 1, "z": 3}}})
    );

    // Unknown kinds have no schema at all, metadata lists included.
    let out = apply(
        "Widget",
        json!({"metadata": {"finalizers": ["a"]}}),
        json!({"metadata": {"finalizers": ["b"]}}),
    );
    assert_eq!(out["metadata"]["finalizers"], json!(["b"]));
}

#[test]
fn directives_never_leak_into_new_values() {
    let original = json!({"metadata": {"name": "p"}});
    let patch = json!({"spec": {
        "$retainKeys": ["containers", "volumes"],
        "containers": [
            {"name": "a", "env": [{"name": "gone", "$patch": "delete"}, {"name": "kept", "value": "v"}],
             "$setElementOrder/env": [{"name": "kept"}]},
            {"name": "b", "$patch": "delete"}
        ],
        "volumes": [{"$patch": "replace"}, {"name": "data", "emptyDir": {}}]
    }});
    let out = apply("Pod", original, patch);
    assert_eq!(
        out["spec"],
        json!({
            "containers": [{"name": "a", "env": [{"name": "kept", "value": "v"}]}],
            "volumes": [{"name": "data", "emptyDir": {}}]
        })
    );
    // An atomic list drops elements that carry a directive.
    let out = apply(
        "Widget",
        json!({}),
        json!({"list": [{"$patch": "delete", "a": 1}, {"b": 2}]}),
    );
    assert_eq!(out, json!({"list": [{"b": 2}]}));
}

#[test]
fn type_change_replaces_value() {
    let out = apply(
        "ConfigMap",
        json!({"data": {"a": "1"}}),
        json!({"data": "oops"}),
    );
    assert_eq!(out["data"], "oops");
    let out = apply(
        "ConfigMap",
        json!({"data": "s"}),
        json!({"data": {"a": "1", "b": null}}),
    );
    assert_eq!(out["data"], json!({"a": "1"}));
}

#[test]
fn malformed_patches_are_errors() {
    let err = apply_err("Pod", json!({}), json!([1, 2]));
    assert_eq!(err, StrategicMergeError::PatchNotObject { found: "list" });
    assert_eq!(err.to_string(), "patch must be a JSON object, got list");

    let err = apply_err("Pod", json!("x"), json!({}));
    assert!(matches!(err, StrategicMergeError::OriginalNotObject { .. }));

    let patch = json!({"spec": {"template": {"spec": {"containers": [
        {"name": "web"}, {"name": "sidecar"}, {"image": "nameless"}
    ]}}}});
    let err = apply_err("Deployment", deployment(), patch);
    assert_eq!(
        err.to_string(),
        "spec.template.spec.containers[2]: missing merge key \"name\""
    );

    let patch = json!({"spec": {"template": {"spec": {"containers": [{"$patch": "delete", "image": "x"}]}}}});
    let err = apply_err("Deployment", deployment(), patch);
    assert_eq!(
        err.to_string(),
        "spec.template.spec.containers[0]: missing merge key \"name\""
    );

    let err = apply_err(
        "Deployment",
        deployment(),
        json!({"spec": {"strategy": {"$patch": "remove"}}}),
    );
    assert!(
        err.to_string()
            .starts_with("spec.strategy.$patch: unknown $patch directive \"remove\""),
        "{err}"
    );

    let patch =
        json!({"spec": {"template": {"spec": {"containers": [{"$patch": 3, "name": "web"}]}}}});
    let err = apply_err("Deployment", deployment(), patch);
    assert!(matches!(
        err,
        StrategicMergeError::UnknownPatchDirective { .. }
    ));

    let patch =
        json!({"spec": {"template": {"spec": {"$setElementOrder/containers": {"name": "web"}}}}});
    let err = apply_err("Deployment", deployment(), patch);
    assert_eq!(
        err.to_string(),
        "spec.template.spec: $setElementOrder/containers must be a list, got object"
    );

    let patch = json!({"spec": {"template": {"spec": {
        "$setElementOrder/containers": [{"name": "sidecar"}, {"name": "web"}],
        "containers": [{"name": "web", "image": "a"}, {"name": "sidecar", "image": "b"}]
    }}}});
    let err = apply_err("Deployment", deployment(), patch);
    assert!(
        matches!(err, StrategicMergeError::SetElementOrderMismatch { .. }),
        "{err}"
    );

    let patch =
        json!({"spec": {"template": {"spec": {"$setElementOrder/containers": [{"image": "x"}]}}}});
    let err = apply_err("Deployment", deployment(), patch);
    assert_eq!(
        err.to_string(),
        "spec.template.spec.$setElementOrder/containers[0]: missing merge key \"name\""
    );

    let err = apply_err(
        "Deployment",
        deployment(),
        json!({"spec": {"strategy": {"$retainKeys": "type"}}}),
    );
    assert!(matches!(err, StrategicMergeError::DirectiveNotList { .. }));
    let patch = json!({"spec": {"strategy": {"$retainKeys": ["type"], "rollingUpdate": {}}}});
    let err = apply_err("Deployment", deployment(), patch);
    assert_eq!(
        err.to_string(),
        "spec.strategy: field \"rollingUpdate\" is set by the patch but not listed in $retainKeys"
    );

    let err = apply_err(
        "Pod",
        json!({}),
        json!({"metadata": {"$deleteFromPrimitiveList": ["a"]}}),
    );
    assert!(matches!(
        err,
        StrategicMergeError::InvalidDirectiveKey { .. }
    ));
    let err = apply_err(
        "Pod",
        json!({}),
        json!({"metadata": {"$setElementOrderX/finalizers": []}}),
    );
    assert!(matches!(
        err,
        StrategicMergeError::InvalidDirectiveKey { .. }
    ));
    let patch = json!({"metadata": {"$deleteFromPrimitiveList/finalizers": "a"}});
    let err = apply_err("Pod", json!({"metadata": {"finalizers": ["a"]}}), patch);
    assert!(matches!(err, StrategicMergeError::DirectiveNotList { .. }));

    let patch = json!({"metadata": {"finalizers": [1]}});
    let err = apply_err("Pod", json!({"metadata": {"finalizers": ["a"]}}), patch);
    assert_eq!(
        err.to_string(),
        "metadata.finalizers: list elements must all have the same type, found string and number"
    );
    let patch = json!({"metadata": {"finalizers": [{"a": 1}]}});
    let err = apply_err("Pod", json!({"metadata": {"finalizers": []}}), patch);
    assert!(matches!(err, StrategicMergeError::NoMergeKey { .. }));
    let patch = json!({"spec": {"containers": ["web"]}});
    let err = apply_err("Pod", json!({"spec": {"containers": []}}), patch);
    assert!(matches!(
        err,
        StrategicMergeError::PrimitivesInKeyedList { .. }
    ));
    let patch = json!({"spec": {"containers": [["web"]]}});
    let err = apply_err("Pod", json!({"spec": {"containers": []}}), patch);
    assert!(matches!(err, StrategicMergeError::ListOfLists { .. }));
}

#[test]
fn deep_patches_are_rejected_without_overflow() {
    let mut patch = json!({"leaf": 1});
    for _ in 0..300 {
        patch = json!({ "a": patch });
    }
    let err = apply_err("Widget", json!({}), patch);
    assert!(matches!(err, StrategicMergeError::TooDeep { .. }));
}

#[test]
fn top_level_directives_and_null_original() {
    let out = apply(
        "ConfigMap",
        json!({"data": {"a": "1"}}),
        json!({"$patch": "delete"}),
    );
    assert_eq!(out, json!({}));
    let out = apply(
        "ConfigMap",
        json!({"data": {"a": "1"}, "kind": "ConfigMap"}),
        json!({"$patch": "replace", "data": {"b": "2"}}),
    );
    assert_eq!(out, json!({"data": {"b": "2"}}));
    let out = apply("ConfigMap", Value::Null, json!({"data": {"b": "2"}}));
    assert_eq!(out, json!({"data": {"b": "2"}}));
}

#[test]
fn status_conditions_merge_by_type_for_workloads() {
    for kind in [
        "Deployment",
        "ReplicaSet",
        "StatefulSet",
        "DaemonSet",
        "Job",
        "HorizontalPodAutoscaler",
        "PodDisruptionBudget",
    ] {
        let original = json!({"status": {"conditions": [{"type": "A", "status": "False"}, {"type": "B", "status": "True"}]}});
        let patch = json!({"status": {"conditions": [{"type": "A", "status": "True"}]}});
        let out = apply(kind, original, patch);
        assert_eq!(
            out["status"]["conditions"],
            json!([{"type": "A", "status": "True"}, {"type": "B", "status": "True"}]),
            "{kind}"
        );
    }
}

#[test]
fn volumes_and_volume_mounts_merge() {
    let pod = json!({"spec": {
        "volumes": [{"name": "a", "emptyDir": {}}],
        "containers": [{"name": "c", "volumeMounts": [{"name": "a", "mountPath": "/a"}]}]
    }});
    let patch = json!({"spec": {
        "volumes": [{"name": "b", "configMap": {"name": "cm"}}],
        "containers": [{"name": "c", "volumeMounts": [{"name": "b", "mountPath": "/b"}, {"mountPath": "/a", "readOnly": true}]}]
    }});
    let out = apply("Pod", pod, patch);
    assert_eq!(names(&out["spec"]["volumes"], "name"), ["b", "a"]);
    let mounts = &out["spec"]["containers"][0]["volumeMounts"];
    assert_eq!(names(mounts, "mountPath"), ["/b", "/a"]);
    assert_eq!(
        mounts[1],
        json!({"name": "a", "mountPath": "/a", "readOnly": true})
    );
}

/// Tiny deterministic generator for the robustness test below.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[(self.next() % items.len() as u64) as usize]
    }
}

const FIELD_KEYS: &[&str] = &[
    "spec",
    "metadata",
    "template",
    "containers",
    "name",
    "env",
    "ports",
    "containerPort",
    "finalizers",
    "conditions",
    "type",
    "image",
    "value",
    "strategy",
    "tolerations",
];
const DIRECTIVE_KEYS: &[&str] = &[
    "$patch",
    "$retainKeys",
    "$setElementOrder/containers",
    "$setElementOrder/finalizers",
    "$deleteFromPrimitiveList/finalizers",
    "$setElementOrder/env",
    "$setElementOrder",
    "$deleteFromPrimitiveList/",
];
const STRINGS: &[&str] = &["delete", "replace", "merge", "web", "a", "80"];

fn random_value(rng: &mut Rng, depth: u32, directives: bool) -> Value {
    let choice = if depth == 0 {
        rng.next() % 4
    } else {
        rng.next() % 7
    };
    match choice {
        0 => Value::Null,
        1 => json!(rng.next().is_multiple_of(3)),
        2 => json!(rng.next() % 4),
        3 => json!(rng.pick(STRINGS)),
        4 => Value::Array(
            (0..rng.next() % 4)
                .map(|_| random_value(rng, depth - 1, directives))
                .collect(),
        ),
        _ => {
            let mut map = Object::new();
            for _ in 0..rng.next() % 5 {
                let key = if directives && rng.next().is_multiple_of(3) {
                    rng.pick(DIRECTIVE_KEYS)
                } else {
                    rng.pick(FIELD_KEYS)
                };
                map.insert(key.to_string(), random_value(rng, depth - 1, directives));
            }
            Value::Object(map)
        }
    }
}

#[test]
fn random_patches_never_panic_or_leak_directives() {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut applied = 0;
    for i in 0..20_000 {
        let kind = ["Pod", "Deployment", "Node", "Widget"][i % 4];
        let original = random_value(&mut rng, 5, false);
        let patch = random_value(&mut rng, 5, true);
        if let Ok(merged) = strategic_merge(&original, &patch, kind) {
            assert_no_directives(&merged, "");
            applied += 1;
        }
        // Patching a realistic object too.
        if let Ok(merged) = strategic_merge(&deployment(), &patch, "Deployment") {
            assert_no_directives(&merged, "");
        }
    }
    assert!(applied > 1000, "only {applied} random patches applied");
}
