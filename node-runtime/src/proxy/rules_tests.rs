use super::*;
use crate::proxy::model::plan;
use crate::proxy::model::tests::{service, web_service, web_slice};
use crate::proxy::model::ServicePortName;
use crate::proxy::nft::NAME_MAX;
use serde_json::json;

fn ctx() -> RuleContext {
    RuleContext {
        cluster_cidr: ("10.42.0.0".parse().unwrap(), 16),
        node_ips: vec!["192.0.2.1".parse().unwrap()],
        masquerade_same_node: false,
        activator: None,
    }
}

fn build_for(
    services: &[k8s_openapi::api::core::v1::Service],
    endpoints: serde_json::Value,
) -> Ruleset {
    build(&plan(services, &[web_slice(endpoints)], "n1", None), &ctx())
}

fn vip(ip: &str, proto: Proto, port: u16) -> ElemKey {
    ElemKey::Vip(ip.parse().unwrap(), proto, port)
}

/// A chain's rules as nft JSON, for asserting on their shape.
fn rules_json(set: &Ruleset, chain: &str) -> String {
    serde_json::to_string(&set.chains[chain].rules).unwrap()
}

fn chain_starting(set: &Ruleset, prefix: &str) -> Vec<String> {
    set.chains
        .keys()
        .filter(|c| c.starts_with(prefix))
        .cloned()
        .collect()
}

#[test]
fn cluster_ip_with_endpoints_goes_to_a_numgen_service_chain() {
    let set = build_for(
        &[web_service()],
        json!([{"addresses": ["10.42.0.1"]}, {"addresses": ["10.42.0.2"]}]),
    );
    let verdict = &set.elements[&(MapName::ServiceIps, vip("10.96.0.10", Proto::Tcp, 80))];
    let ElemVerdict::Goto(chain) = verdict else {
        panic!("{verdict:?}")
    };
    assert!(
        chain.starts_with("service-") && chain.ends_with("-shop/web/tcp/http"),
        "{chain}"
    );
    let rules = rules_json(&set, chain);
    assert!(
        rules.contains(r#""numgen":{"mode":"random","mod":2"#),
        "{rules}"
    );
    // Off-cluster clients are masqueraded.
    assert!(
        rules.contains(r#""op":"!=""#) && rules.contains(r#""len":16"#),
        "{rules}"
    );
    // Two endpoint chains per port (tcp and udp ports): 4, each with hairpin and DNAT.
    let endpoints = chain_starting(&set, "endpoint-");
    assert_eq!(endpoints.len(), 4, "{endpoints:?}");
    let ep = endpoints
        .iter()
        .find(|c| c.ends_with("tcp/http__10.42.0.1/8080"))
        .unwrap();
    let rules = rules_json(&set, ep);
    assert!(
        rules.contains(r#"{"dnat":{"addr":"10.42.0.1","port":8080}}"#),
        "{rules}"
    );
    assert!(
        rules.contains(
            r#""right":"10.42.0.1","op":"=="}},{"jump":{"target":"mark-for-masquerade"}"#
        ),
        "{rules}"
    );
    assert!(!set
        .elements
        .keys()
        .any(|(map, _)| *map == MapName::NoEndpointServices));
}

#[test]
fn a_service_without_endpoints_is_rejected() {
    let set = build_for(&[web_service()], json!([]));
    assert_eq!(
        set.elements[&(
            MapName::NoEndpointServices,
            vip("10.96.0.10", Proto::Tcp, 80)
        )],
        ElemVerdict::Goto(REJECT_CHAIN.into())
    );
    assert!(!set
        .elements
        .keys()
        .any(|(map, _)| *map == MapName::ServiceIps));
    assert!(chain_starting(&set, "service-").is_empty());
    let reject = rules_json(&set, REJECT_CHAIN);
    assert!(
        reject.contains("tcp reset") && reject.contains("port-unreachable"),
        "{reject}"
    );
}

fn node_port_service(policy: &str) -> k8s_openapi::api::core::v1::Service {
    service(json!({
        "metadata": {"name": "web", "namespace": "shop"},
        "spec": {"type": "LoadBalancer", "clusterIP": "10.96.0.10", "externalTrafficPolicy": policy,
                 "ports": [{"name": "http", "port": 80, "nodePort": 30080}]},
        "status": {"loadBalancer": {"ingress": [{"ip": "192.0.2.50"}]}}
    }))
}

#[test]
fn node_port_and_lb_ip_go_through_the_external_chain_masqueraded() {
    let set = build_for(
        &[node_port_service("Cluster")],
        json!([{"addresses": ["10.42.1.1"], "nodeName": "n2"}]),
    );
    let np = &set.elements[&(
        MapName::ServiceNodePorts,
        ElemKey::NodePort(Proto::Tcp, 30080),
    )];
    let lb = &set.elements[&(MapName::ServiceIps, vip("192.0.2.50", Proto::Tcp, 80))];
    assert_eq!(np, lb);
    let ElemVerdict::Goto(external) = np else {
        panic!()
    };
    assert!(external.starts_with("external-"));
    let rules = rules_json(&set, external);
    assert!(
        rules.starts_with(r#"[[{"jump":{"target":"mark-for-masquerade"}}],[{"goto""#),
        "{rules}"
    );
    assert!(set.node_ips.contains(&"192.0.2.1".parse().unwrap()));
}

#[test]
fn external_policy_local_without_local_endpoints_drops_external_traffic() {
    let set = build_for(
        &[node_port_service("Local")],
        json!([{"addresses": ["10.42.1.1"], "nodeName": "n2"}]),
    );
    // ClusterIP still works (internal policy Cluster).
    assert!(set
        .elements
        .contains_key(&(MapName::ServiceIps, vip("10.96.0.10", Proto::Tcp, 80))));
    assert_eq!(
        set.elements[&(
            MapName::NoEndpointNodePorts,
            ElemKey::NodePort(Proto::Tcp, 30080)
        )],
        ElemVerdict::Drop
    );
    assert_eq!(
        set.elements[&(
            MapName::NoEndpointServices,
            vip("192.0.2.50", Proto::Tcp, 80)
        )],
        ElemVerdict::Drop
    );
    // The external chain only short-circuits pods and the node itself to the Cluster chain.
    let external = chain_starting(&set, "external-");
    let rules = rules_json(&set, &external[0]);
    assert!(
        rules.contains(r#""fib""#) && !rules.contains("local-"),
        "{rules}"
    );
    assert!(chain_starting(&set, "local-").is_empty());
}

#[test]
fn external_policy_local_with_a_local_endpoint_uses_only_it() {
    let set = build_for(
        &[node_port_service("Local")],
        json!([{"addresses": ["10.42.0.1"], "nodeName": "n1"}, {"addresses": ["10.42.1.1"], "nodeName": "n2"}]),
    );
    let local = chain_starting(&set, "local-");
    assert_eq!(local.len(), 1);
    let rules = rules_json(&set, &local[0]);
    assert!(
        rules.contains("10.42.0.1/8080") && !rules.contains("10.42.1.1"),
        "{rules}"
    );
    let external = chain_starting(&set, "external-");
    assert!(rules_json(&set, &external[0])
        .contains(&format!(r#"{{"goto":{{"target":"{}"}}}}"#, local[0])));
    assert!(!set
        .elements
        .keys()
        .any(|(map, _)| *map == MapName::NoEndpointNodePorts));
}

#[test]
fn client_ip_affinity_uses_timed_sets_per_endpoint() {
    let mut svc = web_service();
    svc.spec.as_mut().unwrap().session_affinity = Some("ClientIP".into());
    let set = build_for(
        &[svc],
        json!([{"addresses": ["10.42.0.1"]}, {"addresses": ["10.42.0.2"]}]),
    );
    assert_eq!(set.affinity_sets.len(), 4);
    assert!(set.affinity_sets.values().all(|t| *t == 10_800));
    let service = chain_starting(&set, "service-")
        .into_iter()
        .find(|c| c.ends_with("tcp/http"))
        .unwrap();
    let rules = rules_json(&set, &service);
    assert!(rules.contains(r#""right":"@affinity-"#), "{rules}");
    let ep = chain_starting(&set, "endpoint-")
        .into_iter()
        .find(|c| c.ends_with("tcp/http__10.42.0.1/8080"))
        .unwrap();
    assert!(rules_json(&set, &ep).contains(r#"{"set":{"op":"update","elem":{"payload":{"protocol":"ip","field":"saddr"}},"set":"@affinity-"#));
}

#[test]
fn kube_dns_goes_to_the_local_dns_chain_even_without_endpoints() {
    let dns = service(
        json!({"metadata": {"name": "kube-dns", "namespace": "kube-system"},
        "spec": {"clusterIP": "10.96.0.10", "ports": [
            {"name": "dns", "port": 53, "protocol": "UDP"},
            {"name": "dns-tcp", "port": 53, "protocol": "TCP"}]}}),
    );
    let plans = plan(&[dns], &[], "n1", Some("10.42.0.1:53".parse().unwrap()));
    let set = build(&plans, &ctx());
    for proto in [Proto::Udp, Proto::Tcp] {
        assert_eq!(
            set.elements[&(MapName::ServiceIps, vip("10.96.0.10", proto, 53))],
            ElemVerdict::Goto(LOCAL_DNS_CHAIN.into())
        );
    }
    assert_eq!(set.chains[LOCAL_DNS_CHAIN].rules.len(), 2);
    assert!(!set
        .elements
        .keys()
        .any(|(map, _)| *map == MapName::NoEndpointServices));
}

#[test]
fn same_node_masquerade_only_when_asked() {
    let plans = plan(
        &[web_service()],
        &[web_slice(
            json!([{"addresses": ["10.42.0.1"], "nodeName": "n1"}]),
        )],
        "n1",
        None,
    );
    let with = build(
        &plans,
        &RuleContext {
            masquerade_same_node: true,
            activator: None,
            ..ctx()
        },
    );
    let without = build(&plans, &ctx());
    let ep = chain_starting(&with, "endpoint-")[0].clone();
    assert_eq!(
        with.chains[&ep].rules.len(),
        without.chains[&ep].rules.len() + 1
    );
}

#[test]
fn names_are_stable_distinct_and_bounded() {
    let name = ServicePortName {
        namespace: "a".repeat(63),
        name: "b".repeat(63),
        port: "c".repeat(15),
        proto: Proto::Tcp,
    };
    let a = chain_name("service", &name, None);
    assert_eq!(a, chain_name("service", &name, None));
    assert!(a.len() <= NAME_MAX && is_service_chain(&a));
    let other = ServicePortName {
        port: "d".into(),
        ..name.clone()
    };
    assert_ne!(chain_name("service", &other, None), a);
    assert!(!is_service_chain(SERVICES_CHAIN));
}

#[test]
fn pod_traffic_leaving_the_cluster_network_is_masqueraded() {
    let set = build(&[], &ctx());
    let post = rules_json(&set, "nat-postrouting");
    // After the marked-traffic chain: from the pod range, to outside it, not locally delivered.
    assert!(
        post.contains(r#"{"jump":{"target":"masquerading"}}"#),
        "{post}"
    );
    assert!(
        post.contains(
            r#""field":"daddr"}},"right":{"prefix":{"addr":"10.42.0.0","len":16}},"op":"!=""#
        ),
        "{post}"
    );
    assert!(
        post.contains(r#""oifname"}},"right":"lo","op":"!=""#),
        "{post}"
    );
    assert!(
        post.contains(r#"{"masquerade":{"flags":["fully-random"]}}"#),
        "{post}"
    );
}

#[test]
fn activated_ports_go_to_the_activator_while_they_have_no_endpoint() {
    let activated = |mode: &str| {
        service(json!({
            "metadata": {"name": "web", "namespace": "shop",
                         "annotations": {"skiff.dev/activator": mode}},
            "spec": {"type": "NodePort", "clusterIP": "10.96.0.10", "ports": [
                {"name": "http", "port": 80, "protocol": "TCP", "nodePort": 30080},
                {"name": "dns", "port": 53, "protocol": "UDP", "nodePort": 30053},
            ]}
        }))
    };
    let with_activator = RuleContext {
        activator: Some("10.42.0.1:8012".parse().unwrap()),
        ..ctx()
    };
    let to_activator = ElemVerdict::Goto(ACTIVATOR_CHAIN.into());
    let build_with = |svc, endpoints| {
        build(
            &plan(&[svc], &[web_slice(endpoints)], "n1", None),
            &with_activator,
        )
    };

    // Serve mode, no endpoint: TCP is held by the activator, UDP still refused.
    let set = build_with(activated("serve"), json!([]));
    assert_eq!(
        set.elements[&(MapName::ServiceIps, vip("10.96.0.10", Proto::Tcp, 80))],
        to_activator
    );
    assert_eq!(
        set.elements[&(
            MapName::ServiceNodePorts,
            ElemKey::NodePort(Proto::Tcp, 30080)
        )],
        to_activator
    );
    assert!(!set.elements.contains_key(&(
        MapName::NoEndpointServices,
        vip("10.96.0.10", Proto::Tcp, 80)
    )));
    assert!(set.elements.contains_key(&(
        MapName::NoEndpointServices,
        vip("10.96.0.10", Proto::Udp, 53)
    )));
    assert!(rules_json(&set, ACTIVATOR_CHAIN).contains("10.42.0.1"));

    // Serve mode with a ready endpoint: straight to it.
    let ready = json!([{"addresses": ["10.42.0.5"]}]);
    let set = build_with(activated("serve"), ready.clone());
    assert_ne!(
        set.elements[&(MapName::ServiceIps, vip("10.96.0.10", Proto::Tcp, 80))],
        to_activator
    );
    // Proxy mode: through the activator even then.
    let set = build_with(activated("proxy"), ready);
    assert_eq!(
        set.elements[&(MapName::ServiceIps, vip("10.96.0.10", Proto::Tcp, 80))],
        to_activator
    );
    assert_eq!(
        set.elements[&(
            MapName::ServiceNodePorts,
            ElemKey::NodePort(Proto::Tcp, 30080)
        )],
        to_activator
    );

    // A node without an activator treats the Service as any other.
    let set = build(
        &plan(&[activated("serve")], &[web_slice(json!([]))], "n1", None),
        &ctx(),
    );
    assert!(set.elements.contains_key(&(
        MapName::NoEndpointServices,
        vip("10.96.0.10", Proto::Tcp, 80)
    )));
    assert!(!set.chains.contains_key(ACTIVATOR_CHAIN));
}
