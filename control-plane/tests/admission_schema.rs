use serde_json::json;
use skiff_control_plane::api::admission::schema::{
    normalize, strict_decoding_message, unknown_fields,
};

fn deployment() -> serde_json::Value {
    json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": "web", "labels": {"any.key/x": "y", "weird_key": "v"}, "annotations": {"a.b/c": "{\"json\": 1}"}, "creationTimestamp": null},
        "spec": {
            "replicasss": 3,
            "selector": {"matchLabels": {"app": "web", "foo": "bar"}},
            "template": {
                "metadata": {"labels": {"app": "web", "foo": "bar"}},
                "spec": {
                    "containers": [
                        {"name": "a", "imagee": "nginx", "resources": {"limits": {"cpu": 1, "memory": "1Gi", "example.com/gpu": 2}}},
                        {"name": "b", "image": "x", "env": [{"name": "X", "value": "1", "bogus": true}]}
                    ],
                    "nodeSelector": {"kubernetes.io/os": "linux"}
                }
            }
        },
        "status": {"unknownStatus": 1}
    })
}

#[test]
fn unknown_fields_found_but_free_form_maps_ignored() {
    let mut got = unknown_fields("Deployment", &deployment());
    got.sort();
    assert_eq!(
        got,
        vec![
            "spec.replicasss",
            "spec.template.spec.containers[0].imagee",
            "spec.template.spec.containers[1].env[0].bogus",
            "status.unknownStatus",
        ]
    );
    assert_eq!(
        strict_decoding_message(&got[..1]),
        "strict decoding error: unknown field \"spec.replicasss\""
    );
    let cm = json!({"metadata": {"name": "c"}, "data": {"any-key": "v", "k.2": "x"}, "binaryData": {"b": "AAE="}, "extra": 1});
    assert_eq!(unknown_fields("ConfigMap", &cm), vec!["extra"]);
    let secret = json!({"metadata": {"name": "s"}, "data": {"k": "dg=="}, "stringData": {"z": "q"}, "type": "Opaque"});
    assert!(unknown_fields("Secret", &secret).is_empty());
    let svc = json!({"spec": {"selector": {"app": "x"}, "ports": [{"port": 80, "targetPort": "http", "nodePortt": 1}]}});
    assert_eq!(
        unknown_fields("Service", &svc),
        vec!["spec.ports[0].nodePortt"]
    );
    assert!(unknown_fields("NoSuchKind", &svc).is_empty());
}

#[test]
fn normalize_drops_unknown_and_keeps_input_shape() {
    let n = normalize("Deployment", &deployment()).unwrap();
    assert!(n["spec"].get("replicasss").is_none());
    assert!(n["spec"]["template"]["spec"]["containers"][0]
        .get("imagee")
        .is_none());
    // required-but-absent fields are not invented
    assert!(n["spec"]["template"]["spec"]["containers"][0]
        .get("image")
        .is_none());
    assert!(n["spec"].get("replicas").is_none());
    // numeric quantities become strings
    assert_eq!(
        n["spec"]["template"]["spec"]["containers"][0]["resources"]["limits"],
        json!({"cpu": "1", "memory": "1Gi", "example.com/gpu": "2"})
    );
    assert_eq!(n["metadata"]["labels"]["weird_key"], "v");
    assert!(n["metadata"].get("creationTimestamp").is_none());
    assert_eq!(n["apiVersion"], "apps/v1");
    assert_eq!(n["kind"], "Deployment");
    assert!(unknown_fields("Deployment", &n).is_empty());
    let pod = json!({"metadata": {"name": "p"}, "spec": {"containers": [{"name": "c", "image": "x", "resources": {"requests": {"cpu": 0.5}}}]}});
    let n = normalize("Pod", &pod).unwrap();
    assert_eq!(n["apiVersion"], "v1");
    assert_eq!(
        n["spec"]["containers"][0]["resources"]["requests"]["cpu"],
        "0.5"
    );
}

#[test]
fn normalize_reports_wrong_types_with_paths() {
    let mut d = deployment();
    d["spec"]["replicas"] = json!("three");
    let e = normalize("Deployment", &d).unwrap_err();
    assert_eq!(e.path, "spec.replicas");
    assert!(
        e.message.contains("invalid type: string \"three\""),
        "{}",
        e.message
    );
    assert!(e.to_string().starts_with("Deployment in version \"v1\" cannot be handled as a Deployment: spec.replicas: invalid type"), "{e}");

    let mut d = deployment();
    d["spec"]["template"]["spec"]["containers"][1]["ports"] = json!([{"containerPort": "80"}]);
    let e = normalize("Deployment", &d).unwrap_err();
    assert_eq!(
        e.path,
        "spec.template.spec.containers[1].ports[0].containerPort"
    );

    let e = normalize("ConfigMap", &json!({"data": {"a": 1}})).unwrap_err();
    assert_eq!(e.path, "data.a");
    let e = normalize("Secret", &json!({"data": {"a": "not base64!"}})).unwrap_err();
    assert_eq!(e.path, "data.a");
    let e = normalize("Pod", &json!({"metadata": {"labels": ["x"]}})).unwrap_err();
    assert_eq!(e.path, "metadata.labels");
    let e = normalize("Deployment", &json!({"apiVersion": "apps/v1beta1"})).unwrap_err();
    assert!(
        e.to_string()
            .contains("does not match the expected API version (apps/v1)"),
        "{e}"
    );
    assert!(normalize("Pod", &json!([1])).is_err());
    assert!(normalize("Pod", &json!({"spec": {"replicas": 1.5}})).is_ok());
    assert!(normalize("Deployment", &json!({"spec": {"replicas": 1.5}})).is_err());
    assert!(normalize("Deployment", &json!({"spec": {"replicas": 4294967296u64}})).is_err());
}

#[test]
fn normalize_all_kinds_roundtrip_minimal_objects() {
    for kind in skiff_control_plane::api::admission::kinds::known_kinds() {
        let obj = json!({"metadata": {"name": "x", "namespace": "default"}});
        let n = normalize(kind, &obj).unwrap_or_else(|e| panic!("{kind}: {e}"));
        assert_eq!(n["metadata"]["name"], "x");
        assert!(unknown_fields(kind, &obj).is_empty(), "{kind}");
    }
    assert!(skiff_control_plane::api::admission::schema::has_schema(
        "CustomResourceDefinition"
    ));
}
