//! One test per Service rule, on defaulted objects as the API server validates them.

use serde_json::{json, Value};

use crate::api::admission::defaults::apply_defaults;

fn svc(spec: Value) -> Value {
    let mut v = json!({"metadata": {"name": "web", "namespace": "default"}, "spec": spec});
    apply_defaults("Service", &mut v);
    v
}

fn check(obj: &Value, old: Option<&Value>) -> Vec<String> {
    let mut errs = Vec::new();
    super::service(obj, old, &mut errs);
    errs.iter().map(ToString::to_string).collect()
}

fn has(obj: &Value, want: &str) {
    let m = check(obj, None);
    assert!(m.iter().any(|e| e == want), "missing {want}: {m:#?}");
}

#[test]
fn valid_services_pass() {
    for spec in [
        json!({"selector": {"app": "web"}, "ports": [{"name": "http", "port": 80, "targetPort": "http"}, {"name": "dns", "port": 53, "protocol": "UDP"}]}),
        json!({"type": "LoadBalancer", "ports": [{"port": 80, "appProtocol": "kubernetes.io/h2c"}], "loadBalancerClass": "example.com/lb", "loadBalancerSourceRanges": ["10.0.0.0/8"]}),
        json!({"type": "LoadBalancer", "allocateLoadBalancerNodePorts": false, "externalTrafficPolicy": "Local", "healthCheckNodePort": 31000, "ports": [{"port": 80}]}),
        json!({"sessionAffinity": "ClientIP", "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 86400}}, "ports": [{"port": 80}]}),
        json!({"clusterIP": "None", "selector": {"app": "db"}}),
        json!({"type": "ExternalName", "externalName": "db.example.com."}),
    ] {
        let obj = svc(spec);
        assert_eq!(check(&obj, None), Vec::<String>::new(), "{obj}");
    }
}

#[test]
fn port_numbers_names_and_protocols() {
    let obj = svc(json!({"ports": [
        {"name": "a", "port": 0},
        {"name": "a", "port": 70000, "protocol": "ICMP", "targetPort": "way-too-long-name"},
        {"name": "Bad_Name", "port": 80, "targetPort": 70000},
        {"port": 81},
    ]}));
    for want in [
        "spec.ports[0].port: Invalid value: 0: must be between 1 and 65535, inclusive",
        r#"spec.ports[1].name: Duplicate value: "a""#,
        "spec.ports[1].port: Invalid value: 70000: must be between 1 and 65535, inclusive",
        r#"spec.ports[1].protocol: Unsupported value: "ICMP": supported values: "SCTP", "TCP", "UDP""#,
        r#"spec.ports[1].targetPort: Invalid value: "way-too-long-name": must be no more than 15 characters"#,
        "spec.ports[2].targetPort: Invalid value: 70000: must be between 1 and 65535, inclusive",
        "spec.ports[3].name: Required value",
    ] {
        has(&obj, want);
    }
    assert!(check(&obj, None).iter().any(|e| e.starts_with(
        r#"spec.ports[2].name: Invalid value: "Bad_Name": a lowercase RFC 1123 label"#
    )));
}

#[test]
fn duplicate_ports_need_the_same_protocol() {
    let obj = svc(
        json!({"ports": [{"name": "t", "port": 53}, {"name": "u", "port": 53, "protocol": "UDP"}]}),
    );
    assert!(check(&obj, None).is_empty());
    let obj = svc(json!({"ports": [{"name": "a", "port": 53}, {"name": "b", "port": 53}]}));
    has(
        &obj,
        r#"spec.ports[1]: Duplicate value: {"port":53,"protocol":"TCP"}"#,
    );
    let obj = svc(
        json!({"type": "NodePort", "ports": [{"name": "a", "port": 80, "nodePort": 30080}, {"name": "b", "port": 81, "nodePort": 30080}]}),
    );
    has(&obj, "spec.ports[1].nodePort: Duplicate value: 30080");
}

#[test]
fn selector_labels() {
    let obj = svc(json!({"selector": {"bad key!": "x"}, "ports": [{"port": 80}]}));
    assert!(check(&obj, None)
        .iter()
        .any(|e| e.starts_with(r#"spec.selector: Invalid value: "bad key!""#)));
}

#[test]
fn headless_only_for_cluster_ip_without_node_ports() {
    let obj = svc(json!({"type": "NodePort", "clusterIP": "None", "ports": [{"port": 80}]}));
    has(
        &obj,
        r#"spec.clusterIPs[0]: Invalid value: "None": may not be set to 'None' for NodePort services"#,
    );
    let obj = svc(json!({"clusterIP": "None", "ports": [{"port": 80, "nodePort": 30080}]}));
    has(
        &obj,
        "spec.ports[0].nodePort: Forbidden: may not be used when `type` is 'ClusterIP'",
    );
}

#[test]
fn external_name_needs_a_dns_name_and_no_cluster_ip() {
    let obj = svc(json!({"type": "ExternalName"}));
    has(&obj, "spec.externalName: Required value");
    let obj = svc(
        json!({"type": "ExternalName", "externalName": "not_a_name", "clusterIP": "10.43.0.9"}),
    );
    has(
        &obj,
        "spec.clusterIPs: Forbidden: may not be set for ExternalName services",
    );
    assert!(check(&obj, None)
        .iter()
        .any(|e| e.starts_with(r#"spec.externalName: Invalid value: "not_a_name""#)));
}

#[test]
fn client_ip_affinity_timeout() {
    for t in [0, 86401] {
        let obj = svc(
            json!({"sessionAffinity": "ClientIP", "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": t}}, "ports": [{"port": 80}]}),
        );
        has(&obj, &format!("spec.sessionAffinityConfig.clientIP.timeoutSeconds: Invalid value: {t}: must be greater than 0 and less than 86400"));
    }
    let mut obj = svc(json!({"ports": [{"port": 80}]}));
    obj["spec"]["sessionAffinityConfig"] = json!({"clientIP": {"timeoutSeconds": 10}});
    has(
        &obj,
        "spec.sessionAffinityConfig: Forbidden: must not be set when session affinity is None",
    );
    let mut obj = svc(json!({"sessionAffinity": "ClientIP", "ports": [{"port": 80}]}));
    obj["spec"]["sessionAffinityConfig"] = json!({"clientIP": {}});
    has(&obj, "spec.sessionAffinityConfig.clientIP.timeoutSeconds: Required value: when session affinity type is ClientIP");
    let obj = svc(json!({"sessionAffinity": "Sticky", "ports": [{"port": 80}]}));
    has(
        &obj,
        r#"spec.sessionAffinity: Unsupported value: "Sticky": supported values: "ClientIP", "None""#,
    );
}

#[test]
fn external_traffic_policy_only_when_externally_accessible() {
    let obj = svc(json!({"externalTrafficPolicy": "Local", "ports": [{"port": 80}]}));
    has(
        &obj,
        r#"spec.externalTrafficPolicy: Invalid value: "Local": may only be set for externally-accessible services"#,
    );
    let obj = svc(
        json!({"type": "NodePort", "externalTrafficPolicy": "Nearby", "ports": [{"port": 80}]}),
    );
    has(
        &obj,
        r#"spec.externalTrafficPolicy: Unsupported value: "Nearby": supported values: "Cluster", "Local""#,
    );
    let obj =
        svc(json!({"type": "NodePort", "healthCheckNodePort": 31000, "ports": [{"port": 80}]}));
    has(&obj, "spec.healthCheckNodePort: Invalid value: 31000: may only be set when `type` is 'LoadBalancer' and `externalTrafficPolicy` is 'Local'");
}

#[test]
fn load_balancer_only_fields() {
    let mut obj = svc(
        json!({"type": "NodePort", "loadBalancerClass": "example.com/lb", "loadBalancerSourceRanges": ["10.0.0.0/8", "nope"], "ports": [{"port": 80}]}),
    );
    obj["spec"]["allocateLoadBalancerNodePorts"] = json!(true);
    for want in [
        "spec.loadBalancerClass: Forbidden: may only be used when `type` is 'LoadBalancer'",
        "spec.allocateLoadBalancerNodePorts: Forbidden: may only be used when `type` is 'LoadBalancer'",
        "spec.LoadBalancerSourceRanges: Forbidden: may only be used when `type` is 'LoadBalancer'",
        r#"spec.LoadBalancerSourceRanges: Invalid value: "[10.0.0.0/8 nope]": must be a list of IP ranges. For example, 10.240.0.0/24,10.250.0.0/24 "#,
    ] {
        has(&obj, want);
    }
    let obj =
        svc(json!({"type": "LoadBalancer", "loadBalancerClass": "-bad", "ports": [{"port": 80}]}));
    assert!(check(&obj, None)
        .iter()
        .any(|e| e.starts_with(r#"spec.loadBalancerClass: Invalid value: "-bad""#)));
    let obj = svc(json!({"type": "LoadBalancer", "ports": [{"port": 10250}]}));
    has(
        &obj,
        "spec.ports[0]: Invalid value: 10250: may not expose port 10250 externally since it is used by kubelet",
    );
}

#[test]
fn load_balancer_class_is_immutable() {
    let old =
        svc(json!({"type": "LoadBalancer", "clusterIP": "10.43.0.7", "ports": [{"port": 80}]}));
    let mut new = old.clone();
    new["spec"]["loadBalancerClass"] = json!("example.com/lb");
    assert_eq!(
        check(&new, Some(&old)),
        [r#"spec.loadBalancerClass: Invalid value: "example.com/lb": may not change once set"#]
    );
}

#[test]
fn cluster_ip_may_not_change() {
    let old = svc(json!({"clusterIP": "10.43.0.5", "ports": [{"port": 80}]}));
    let mut new = old.clone();
    new["spec"]["clusterIP"] = json!("10.43.0.6");
    new["spec"]["clusterIPs"] = json!(["10.43.0.6"]);
    assert_eq!(
        check(&new, Some(&old)),
        [r#"spec.clusterIPs[0]: Invalid value: []string{"10.43.0.6"}: may not change once set"#]
    );
}
