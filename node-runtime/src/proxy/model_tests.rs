use super::*;
use serde_json::json;

pub(crate) fn service(value: serde_json::Value) -> Service {
    serde_json::from_value(value).expect("test Service")
}

pub(crate) fn slice(value: serde_json::Value) -> EndpointSlice {
    serde_json::from_value(value).expect("test EndpointSlice")
}

pub(crate) fn web_service() -> Service {
    service(json!({
        "metadata": {"name": "web", "namespace": "shop"},
        "spec": {"clusterIP": "10.96.0.10", "ports": [
            {"name": "http", "port": 80, "protocol": "TCP"},
            {"name": "dns", "port": 53, "protocol": "UDP"},
        ]}
    }))
}

pub(crate) fn web_slice(endpoints: serde_json::Value) -> EndpointSlice {
    slice(json!({
        "metadata": {"name": "web-abc", "namespace": "shop",
                     "labels": {"kubernetes.io/service-name": "web"}},
        "addressType": "IPv4",
        "ports": [{"name": "http", "port": 8080, "protocol": "TCP"},
                  {"name": "dns", "port": 5353, "protocol": "UDP"}],
        "endpoints": endpoints,
    }))
}

fn addrs(endpoints: &[Endpoint]) -> Vec<String> {
    endpoints.iter().map(|e| e.addr.to_string()).collect()
}

#[test]
fn named_ports_map_to_the_slice_port_of_the_same_name_and_protocol() {
    let plans = plan(
        &[web_service()],
        &[web_slice(json!([{"addresses": ["10.42.0.5"]}]))],
        "n1",
        None,
    );
    assert_eq!(plans.len(), 2);
    let dns = &plans[0];
    assert_eq!(dns.name.to_string(), "shop/web/udp/dns");
    assert_eq!(
        (dns.cluster_ip, dns.port),
        ("10.96.0.10".parse().unwrap(), 53)
    );
    assert_eq!(addrs(&dns.cluster_endpoints), ["10.42.0.5:5353"]);
    let http = &plans[1];
    assert_eq!(http.name.to_string(), "shop/web/tcp/http");
    assert_eq!(addrs(&http.cluster_endpoints), ["10.42.0.5:8080"]);
    assert!(http.node_port.is_none() && http.lb_ips.is_empty());
}

#[test]
fn slices_of_other_services_or_namespaces_are_ignored() {
    let mut other_ns = web_slice(json!([{"addresses": ["10.42.0.7"]}]));
    other_ns.metadata.namespace = Some("other".into());
    let mut other_svc = web_slice(json!([{"addresses": ["10.42.0.8"]}]));
    other_svc
        .metadata
        .labels
        .as_mut()
        .unwrap()
        .insert(SERVICE_NAME_LABEL.into(), "api".into());
    let plans = plan(&[web_service()], &[other_ns, other_svc], "n1", None);
    assert!(plans.iter().all(|p| p.cluster_endpoints.is_empty()));
}

#[test]
fn ready_endpoints_only_and_nil_ready_counts_as_ready() {
    let plans = plan(
        &[web_service()],
        &[web_slice(json!([
            {"addresses": ["10.42.0.1"]},
            {"addresses": ["10.42.0.2"], "conditions": {"ready": true}},
            {"addresses": ["10.42.0.3"], "conditions": {"ready": false}},
            {"addresses": ["10.42.0.4"], "conditions": {"ready": false, "serving": true, "terminating": true}},
        ]))],
        "n1",
        None,
    );
    assert_eq!(
        addrs(&plans[1].cluster_endpoints),
        ["10.42.0.1:8080", "10.42.0.2:8080"]
    );
}

#[test]
fn serving_terminating_endpoints_are_used_only_when_none_is_ready() {
    let plans = plan(
        &[web_service()],
        &[web_slice(json!([
            {"addresses": ["10.42.0.3"], "conditions": {"ready": false}},
            {"addresses": ["10.42.0.4"], "conditions": {"ready": false, "serving": true, "terminating": true}},
            {"addresses": ["10.42.0.5"], "conditions": {"ready": false, "serving": false, "terminating": true}},
        ]))],
        "n1",
        None,
    );
    assert_eq!(addrs(&plans[1].cluster_endpoints), ["10.42.0.4:8080"]);
}

#[test]
fn duplicate_endpoints_across_slices_count_once() {
    let a = web_slice(json!([{"addresses": ["10.42.0.1"]}]));
    let mut b = a.clone();
    b.metadata.name = Some("web-def".into());
    let plans = plan(&[web_service()], &[a, b], "n1", None);
    assert_eq!(addrs(&plans[1].cluster_endpoints), ["10.42.0.1:8080"]);
}

#[test]
fn headless_external_name_and_ipv6_services_get_no_plan() {
    let headless = service(json!({"metadata": {"name": "h", "namespace": "d"},
        "spec": {"clusterIP": "None", "ports": [{"port": 80}]}}));
    let external = service(json!({"metadata": {"name": "e", "namespace": "d"},
        "spec": {"type": "ExternalName", "externalName": "example.org", "ports": [{"port": 80}]}}));
    let v6 = service(json!({"metadata": {"name": "s", "namespace": "d"},
        "spec": {"clusterIP": "fd00::10", "ports": [{"port": 80}]}}));
    assert!(plan(&[headless, external, v6], &[], "n1", None).is_empty());
}

#[test]
fn node_port_load_balancer_and_external_traffic_policy_local() {
    let lb = service(json!({
        "metadata": {"name": "web", "namespace": "shop"},
        "spec": {"type": "LoadBalancer", "clusterIP": "10.96.0.10", "externalTrafficPolicy": "Local",
                 "ports": [{"name": "http", "port": 80, "nodePort": 30080}]},
        "status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.7"}, {"hostname": "lb.example"}]}}
    }));
    let plans = plan(
        &[lb],
        &[web_slice(json!([
            {"addresses": ["10.42.0.1"], "nodeName": "n1"},
            {"addresses": ["10.42.1.1"], "nodeName": "n2"},
        ]))],
        "n1",
        None,
    );
    let http = &plans[0];
    assert_eq!(http.node_port, Some(30080));
    assert_eq!(http.lb_ips, ["192.0.2.7".parse::<Ipv4Addr>().unwrap()]);
    assert!(http.external_local && !http.internal_local);
    assert_eq!(
        addrs(&http.cluster_endpoints),
        ["10.42.0.1:8080", "10.42.1.1:8080"]
    );
    assert_eq!(addrs(&http.local_endpoints), ["10.42.0.1:8080"]);
    assert!(http.externally_accessible());
}

#[test]
fn node_port_is_ignored_on_a_cluster_ip_service() {
    let svc = service(json!({"metadata": {"name": "web", "namespace": "shop"},
        "spec": {"clusterIP": "10.96.0.10", "externalTrafficPolicy": "Local",
                 "ports": [{"name": "http", "port": 80, "nodePort": 30080}]}}));
    let plans = plan(&[svc], &[], "n1", None);
    assert_eq!(plans[0].node_port, None);
    assert!(!plans[0].external_local);
}

#[test]
fn local_endpoints_fall_back_to_local_terminating_ones() {
    let svc = service(json!({"metadata": {"name": "web", "namespace": "shop"},
        "spec": {"type": "NodePort", "clusterIP": "10.96.0.10", "externalTrafficPolicy": "Local",
                 "ports": [{"name": "http", "port": 80, "nodePort": 30080}]}}));
    let plans = plan(
        &[svc],
        &[web_slice(json!([
            {"addresses": ["10.42.0.1"], "nodeName": "n1",
             "conditions": {"ready": false, "serving": true, "terminating": true}},
            {"addresses": ["10.42.1.1"], "nodeName": "n2"},
        ]))],
        "n1",
        None,
    );
    assert_eq!(addrs(&plans[0].cluster_endpoints), ["10.42.1.1:8080"]);
    assert_eq!(addrs(&plans[0].local_endpoints), ["10.42.0.1:8080"]);
}

#[test]
fn client_ip_affinity_timeout_defaults_to_three_hours() {
    let mut svc = web_service();
    let spec = svc.spec.as_mut().unwrap();
    spec.session_affinity = Some("ClientIP".into());
    let plans = plan(std::slice::from_ref(&svc), &[], "n1", None);
    assert_eq!(plans[0].affinity_timeout, Some(10_800));

    let spec = svc.spec.as_mut().unwrap();
    spec.session_affinity_config =
        serde_json::from_value(json!({"clientIP": {"timeoutSeconds": 60}})).unwrap();
    let plans = plan(std::slice::from_ref(&svc), &[], "n1", None);
    assert_eq!(plans[0].affinity_timeout, Some(60));

    let plans = plan(&[web_service()], &[], "n1", None);
    assert_eq!(plans[0].affinity_timeout, None);
}

#[test]
fn kube_dns_port_53_goes_to_the_local_dns_server() {
    let dns = service(
        json!({"metadata": {"name": "kube-dns", "namespace": "kube-system"},
        "spec": {"clusterIP": "10.96.0.10", "ports": [
            {"name": "dns", "port": 53, "protocol": "UDP"},
            {"name": "dns-tcp", "port": 53, "protocol": "TCP"},
            {"name": "metrics", "port": 9153, "protocol": "TCP"}]}}),
    );
    let local: SocketAddr = "10.42.0.1:53".parse().unwrap();
    let plans = plan(&[dns], &[], "n1", Some(local));
    let with_dns: Vec<_> = plans
        .iter()
        .filter(|p| p.local_dns.is_some())
        .map(|p| p.name.to_string())
        .collect();
    assert_eq!(
        with_dns,
        [
            "kube-system/kube-dns/udp/dns",
            "kube-system/kube-dns/tcp/dns-tcp"
        ]
    );
}

#[test]
fn local_endpoints_are_only_chosen_for_a_local_policy() {
    let plans = plan(
        &[web_service()],
        &[web_slice(
            json!([{"addresses": ["10.42.0.1"], "nodeName": "n1"}]),
        )],
        "n1",
        None,
    );
    assert_eq!(addrs(&plans[1].cluster_endpoints), ["10.42.0.1:8080"]);
    assert!(plans[1].local_endpoints.is_empty());

    let mut internal_local = web_service();
    internal_local
        .spec
        .as_mut()
        .unwrap()
        .internal_traffic_policy = Some("Local".into());
    let plans = plan(
        &[internal_local],
        &[web_slice(json!([
            {"addresses": ["10.42.0.1"], "nodeName": "n1"},
            {"addresses": ["10.42.1.1"], "nodeName": "n2"},
        ]))],
        "n1",
        None,
    );
    assert!(plans[1].internal_local);
    assert_eq!(addrs(&plans[1].local_endpoints), ["10.42.0.1:8080"]);
}
