//! ServiceLB: the pure address choice, then reconciles against the real API (admission
//! included) in a temp store.

use serde_json::{json, Value};

use super::*;
use crate::api::handlers::Subresource;
use crate::controllers::test_support::{def, TestApi};

fn node(name: &str, ip: &str, ready: bool) -> Value {
    json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": name},
    "status": {
        "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}],
        "addresses": [{"type": "InternalIP", "address": ip}, {"type": "Hostname", "address": name}],
    }})
}

fn lb(name: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Service",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"type": "LoadBalancer", "selector": {"app": name}, "ports": [{"port": 80}]}})
}

fn ips(svc: &Value) -> Vec<String> {
    current_ingress(svc)
        .iter()
        .map(|i| {
            assert_eq!(i["ipMode"], "VIP", "{i}");
            i["ip"].as_str().unwrap_or("").to_string()
        })
        .collect()
}

#[test]
fn ingress_is_ready_schedulable_nodes_sorted_and_unique() {
    let mut cordoned = node("c", "10.0.0.3", true);
    cordoned["spec"] = json!({"unschedulable": true});
    let mut excluded = node("e", "10.0.0.4", true);
    excluded["metadata"]["labels"] = json!({EXCLUDE_LABEL: ""});
    let nodes = vec![
        node("b", "10.0.0.10", true),
        node("a", "10.0.0.9", true),
        node("a2", "10.0.0.9", true),
        node("down", "10.0.0.5", false),
        json!({"metadata": {"name": "new"}}),
        cordoned,
        excluded,
    ];
    let got: Vec<Value> = ingress_for(&nodes);
    assert_eq!(
        got,
        vec![
            json!({"ip": "10.0.0.9", "ipMode": "VIP"}),
            json!({"ip": "10.0.0.10", "ipMode": "VIP"}),
        ]
    );
    assert!(ingress_for(&[node("down", "10.0.0.5", false)]).is_empty());
}

#[test]
fn only_unclassed_load_balancers_are_ours() {
    assert!(is_ours(&lb("a")));
    let mut classed = lb("a");
    classed["spec"]["loadBalancerClass"] = json!("example.com/lb");
    assert!(!is_ours(&classed));
    assert!(!is_ours(&json!({"spec": {"type": "NodePort"}})));
}

async fn reasons(api: &TestApi) -> Vec<String> {
    api.list(def("", "events"), "default")
        .await
        .iter()
        .map(|e| e["reason"].as_str().unwrap_or("").to_string())
        .collect()
}

#[tokio::test]
async fn load_balancers_get_node_addresses_and_lose_them_with_the_type() {
    let api = TestApi::new().await;
    let svcs = def("", "services");
    let c = ServiceLbController::new(api.objects.clone());
    let created = api.create(svcs, lb("web")).await;
    assert!(
        created["spec"]["ports"][0]["nodePort"].as_u64().is_some(),
        "a node port was allocated: {created}"
    );
    let key = ObjectKey::new(SERVICES, "default", "web");

    // No node yet: nothing to point at.
    assert_eq!(c.reconcile(&key).await.ok(), Some(Action::Done));
    assert!(ips(&api.get(svcs, "default", "web").await.expect("svc")).is_empty());

    api.create(def("", "nodes"), node("n1", "127.0.0.1", true))
        .await;
    api.create(def("", "nodes"), node("n2", "10.0.0.2", false))
        .await;
    c.reconcile(&key).await.expect("reconcile");
    let svc = api.get(svcs, "default", "web").await.expect("svc");
    assert_eq!(ips(&svc), ["127.0.0.1"]);
    let r = reasons(&api).await;
    assert!(r.contains(&"EnsuringLoadBalancer".to_string()), "{r:?}");
    assert!(r.contains(&"EnsuredLoadBalancer".to_string()), "{r:?}");

    // The second node becomes Ready: both addresses.
    api.objects
        .modify(def("", "nodes"), "", "n2", Subresource::Status, |n| {
            n["status"]["conditions"][0]["status"] = json!("True");
            Ok(())
        })
        .await
        .expect("node ready");
    c.reconcile(&key).await.expect("reconcile");
    let svc = api.get(svcs, "default", "web").await.expect("svc");
    assert_eq!(ips(&svc), ["10.0.0.2", "127.0.0.1"]);

    // To ClusterIP: admission drops the node ports and the ingress; the controller notes it.
    let updated = api
        .objects
        .modify(svcs, "default", "web", Subresource::Main, |s| {
            s["spec"]["type"] = json!("ClusterIP");
            Ok(())
        })
        .await
        .expect("type change")
        .expect("service");
    assert_eq!(updated["spec"]["ports"][0].get("nodePort"), None);
    assert!(ips(&updated).is_empty());
    c.reconcile(&key).await.expect("reconcile");
    assert!(reasons(&api)
        .await
        .contains(&"DeletedLoadBalancer".to_string()));
    assert!(c.managed.lock().expect("lock").is_empty());
}

#[tokio::test]
async fn classed_load_balancers_and_stale_ingress() {
    let api = TestApi::new().await;
    let svcs = def("", "services");
    let c = ServiceLbController::new(api.objects.clone());
    api.create(def("", "nodes"), node("n1", "127.0.0.1", true))
        .await;
    let mut classed = lb("other");
    classed["spec"]["loadBalancerClass"] = json!("example.com/lb");
    classed["spec"]["allocateLoadBalancerNodePorts"] = json!(false);
    let created = api.create(svcs, classed).await;
    assert_eq!(created["spec"]["ports"][0].get("nodePort"), None);
    c.reconcile(&ObjectKey::new(SERVICES, "default", "other"))
        .await
        .expect("reconcile");
    let svc = api.get(svcs, "default", "other").await.expect("svc");
    assert!(ips(&svc).is_empty(), "another implementation's: {svc}");

    // A ClusterIP Service carrying an ingress (written through status) has it cleared.
    api.create(
        svcs,
        json!({"apiVersion": "v1", "kind": "Service", "metadata": {"name": "plain", "namespace": "default"},
            "spec": {"ports": [{"port": 80}]}}),
    )
    .await;
    api.objects
        .modify(svcs, "default", "plain", Subresource::Status, |s| {
            s["status"]["loadBalancer"] = json!({"ingress": [{"ip": "192.0.2.1"}]});
            Ok(())
        })
        .await
        .expect("status");
    c.reconcile(&ObjectKey::new(SERVICES, "default", "plain"))
        .await
        .expect("reconcile");
    let svc = api.get(svcs, "default", "plain").await.expect("svc");
    assert!(ips(&svc).is_empty(), "{svc}");
}
