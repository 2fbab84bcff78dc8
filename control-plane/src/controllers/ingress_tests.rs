//! The Ingress status controller: which Ingresses are Skiff's, then reconciles against the
//! real API (admission and the bootstrapped `skiff` IngressClass included) in a temp store.

use serde_json::{json, Value};

use super::*;
use crate::api::admission::ingress::DEFAULT_CLASS_ANNOTATION;
use crate::controllers::test_support::{def, TestApi};
use crate::store::StoreEvent;

fn node(name: &str, ip: &str, ready: bool) -> Value {
    json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": name},
    "status": {
        "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}],
        "addresses": [{"type": "InternalIP", "address": ip}, {"type": "Hostname", "address": name}],
    }})
}

fn ingress(name: &str, class: Option<&str>) -> Value {
    let mut ing = json!({"apiVersion": "networking.k8s.io/v1", "kind": "Ingress",
    "metadata": {"name": name, "namespace": "default"},
    "spec": {"rules": [{"host": format!("{name}.example"), "http": {"paths": [
        {"path": "/", "pathType": "Prefix", "backend": {"service": {"name": name, "port": {"number": 80}}}}
    ]}}]}});
    if let Some(c) = class {
        ing["spec"]["ingressClassName"] = json!(c);
    }
    ing
}

fn class(name: &str, controller: &str, default: bool) -> Value {
    let mut c = json!({"apiVersion": "networking.k8s.io/v1", "kind": "IngressClass",
        "metadata": {"name": name}, "spec": {"controller": controller}});
    if default {
        c["metadata"]["annotations"] = json!({DEFAULT_CLASS_ANNOTATION: "true"});
    }
    c
}

fn ips(ing: &Value) -> Vec<String> {
    current_ingress(ing)
        .iter()
        .map(|i| {
            assert_eq!(i.as_object().map(|m| m.len()), Some(1), "only ip: {i}");
            i["ip"].as_str().unwrap_or("").to_string()
        })
        .collect()
}

#[test]
fn which_ingresses_are_ours() {
    let skiff = class("skiff", INGRESS_CONTROLLER, true);
    let edge = class("edge", INGRESS_CONTROLLER, false);
    let nginx = class("nginx", "k8s.io/ingress-nginx", false);
    let classes = vec![skiff.clone(), edge, nginx.clone()];
    assert!(is_ours(&ingress("a", Some("skiff")), &classes));
    assert!(is_ours(&ingress("a", Some("edge")), &classes));
    assert!(!is_ours(&ingress("a", Some("nginx")), &classes));
    assert!(!is_ours(&ingress("a", Some("missing")), &classes));
    // `skiff` while no class of that name exists (deleted; the next start re-creates it).
    assert!(is_ours(&ingress("a", Some("skiff")), &[]));
    // The older annotation names a class too.
    let mut annotated = ingress("a", None);
    annotated["metadata"]["annotations"] = json!({"kubernetes.io/ingress.class": "nginx"});
    assert!(!is_ours(&annotated, &classes));
    annotated["metadata"]["annotations"] = json!({"kubernetes.io/ingress.class": "edge"});
    assert!(is_ours(&annotated, &classes));
    // No class at all: the default class's controller decides.
    assert!(is_ours(&ingress("a", None), &classes));
    let mut nginx_default = nginx;
    nginx_default["metadata"]["annotations"] = json!({DEFAULT_CLASS_ANNOTATION: "true"});
    nginx_default["metadata"]["creationTimestamp"] = json!("2030-01-01T00:00:00Z");
    assert!(!is_ours(&ingress("a", None), &[skiff, nginx_default]));
    assert!(!is_ours(&ingress("a", None), &[]));
}

#[test]
fn ingress_is_ready_schedulable_node_ips_sorted_and_unique() {
    let mut cordoned = node("c", "10.0.0.3", true);
    cordoned["spec"] = json!({"unschedulable": true});
    let nodes = vec![
        node("b", "10.0.0.10", true),
        node("a", "10.0.0.9", true),
        node("a2", "10.0.0.9", true),
        node("down", "10.0.0.5", false),
        json!({"metadata": {"name": "new"}}),
        cordoned,
    ];
    assert_eq!(
        ingress_for(&nodes),
        vec![json!({"ip": "10.0.0.9"}), json!({"ip": "10.0.0.10"})]
    );
}

#[tokio::test]
async fn skiff_ingresses_get_node_addresses_and_others_are_left_alone() {
    let api = TestApi::new().await;
    let ings = def("networking.k8s.io", "ingresses");
    let c = IngressController::new(api.objects.clone());
    // Created without a class: DefaultIngressClass admission names the bootstrapped one.
    let created = api.create(ings, ingress("web", None)).await;
    assert_eq!(created["spec"]["ingressClassName"], INGRESS_CLASS);
    let key = ObjectKey::new(INGRESSES, "default", "web");

    // No node yet: nothing to point at.
    assert_eq!(c.reconcile(&key).await.ok(), Some(Action::Done));
    assert!(ips(&api.get(ings, "default", "web").await.expect("ing")).is_empty());

    api.create(def("", "nodes"), node("n1", "127.0.0.1", true))
        .await;
    api.create(def("", "nodes"), node("n2", "10.0.0.2", false))
        .await;
    c.reconcile(&key).await.expect("reconcile");
    let ing = api.get(ings, "default", "web").await.expect("ing");
    assert_eq!(ips(&ing), ["127.0.0.1"]);

    // The second node becomes Ready: both addresses, sorted.
    api.objects
        .modify(def("", "nodes"), "", "n2", Subresource::Status, |n| {
            n["status"]["conditions"][0]["status"] = json!("True");
            Ok(())
        })
        .await
        .expect("node ready");
    c.reconcile(&key).await.expect("reconcile");
    let ing = api.get(ings, "default", "web").await.expect("ing");
    assert_eq!(ips(&ing), ["10.0.0.2", "127.0.0.1"]);

    // Another controller's class: never touched.
    let classes = def("networking.k8s.io", "ingressclasses");
    api.create(classes, class("nginx", "k8s.io/ingress-nginx", false))
        .await;
    api.create(ings, ingress("other", Some("nginx"))).await;
    api.objects
        .modify(ings, "default", "other", Subresource::Status, |i| {
            i["status"] = json!({"loadBalancer": {"ingress": [{"hostname": "lb.example"}]}});
            Ok(())
        })
        .await
        .expect("status");
    c.reconcile(&ObjectKey::new(INGRESSES, "default", "other"))
        .await
        .expect("reconcile");
    let other = api.get(ings, "default", "other").await.expect("ing");
    assert_eq!(
        other["status"]["loadBalancer"]["ingress"],
        json!([{"hostname": "lb.example"}])
    );

    // A class of Skiff's controller under another name is served too.
    api.create(classes, class("edge", INGRESS_CONTROLLER, false))
        .await;
    api.create(ings, ingress("edge", Some("edge"))).await;
    c.reconcile(&ObjectKey::new(INGRESSES, "default", "edge"))
        .await
        .expect("reconcile");
    let edge = api.get(ings, "default", "edge").await.expect("ing");
    assert_eq!(ips(&edge), ["10.0.0.2", "127.0.0.1"]);

    // `web` moves to nginx: the addresses this controller wrote go.
    api.objects
        .modify(ings, "default", "web", Subresource::Main, |i| {
            i["spec"]["ingressClassName"] = json!("nginx");
            Ok(())
        })
        .await
        .expect("class change");
    c.reconcile(&key).await.expect("reconcile");
    let ing = api.get(ings, "default", "web").await.expect("ing");
    assert_eq!(ing["status"]["loadBalancer"], json!({}), "{ing}");
    assert!(!lock(&c.managed).contains(&key));
}

#[tokio::test]
async fn node_and_class_changes_map_to_ingresses() {
    let api = TestApi::new().await;
    let c = IngressController::new(api.objects.clone());
    let triggers = c.triggers();
    let key = |n: &str| ObjectKey::new(INGRESSES, "default", n);
    let event = |kind: EventType, k: ObjectKey, obj: Value, prev: Option<Value>| {
        StoreEvent::new(1, kind, k, obj, prev)
    };
    // Two Ingresses seen, one of them served.
    for n in ["a", "b"] {
        let keys = (triggers[0].map)(&event(EventType::Added, key(n), ingress(n, None), None));
        assert_eq!(keys, vec![key(n)]);
    }
    c.set_managed(&key("a"), true);
    let node_key = ObjectKey::new("core/nodes", "", "n1");
    let ready = node("n1", "10.0.0.1", true);
    let added = (triggers[1].map)(&event(
        EventType::Added,
        node_key.clone(),
        ready.clone(),
        None,
    ));
    assert_eq!(added, vec![key("a")]);
    // A heartbeat that changes no address maps to nothing.
    let same = (triggers[1].map)(&event(
        EventType::Modified,
        node_key,
        ready.clone(),
        Some(ready),
    ));
    assert!(same.is_empty());
    // Any IngressClass change re-runs every Ingress.
    let class_key = ObjectKey::new(INGRESS_CLASSES, "", "edge");
    let mut all = (triggers[2].map)(&event(
        EventType::Added,
        class_key,
        class("edge", INGRESS_CONTROLLER, false),
        None,
    ));
    all.sort_by(|x, y| x.name.cmp(&y.name));
    assert_eq!(all, vec![key("a"), key("b")]);
    // A deleted Ingress is forgotten.
    (triggers[0].map)(&event(
        EventType::Deleted,
        key("b"),
        ingress("b", None),
        None,
    ));
    assert_eq!(lock(&c.known).len(), 1);
}
