use super::*;
use serde_json::json;

fn svc(name: &str, ip: &str, ports: serde_json::Value) -> Service {
    serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"clusterIP": ip, "ports": ports}
    }))
    .unwrap()
}

fn ingress(name: &str, created: &str, spec: serde_json::Value) -> Ingress {
    serde_json::from_value(json!({
        "metadata": {"name": name, "namespace": "default", "creationTimestamp": created},
        "spec": spec
    }))
    .unwrap()
}

fn target(route: Route<'_>) -> String {
    match route {
        Route::Backend(Backend::Service { name, addr, .. }) => format!("{name}@{addr}"),
        Route::Backend(Backend::Unavailable(why)) => format!("unavailable: {why}"),
        Route::NotFound => "404".into(),
    }
}

fn class(name: &str, controller: &str, default: bool) -> IngressClass {
    serde_json::from_value(json!({
        "metadata": {"name": name, "annotations": if default {
            json!({"ingressclass.kubernetes.io/is-default-class": "true"})
        } else { json!({}) }},
        "spec": {"controller": controller}
    }))
    .unwrap()
}

fn classes() -> Vec<IngressClass> {
    vec![
        class("skiff", INGRESS_CONTROLLER, true),
        class("nginx", "k8s.io/ingress-nginx", false),
    ]
}

#[test]
fn classes_of_the_skiff_controller_are_served() {
    let with = |class_name: Option<&str>| {
        ingress(
            "i",
            "2026-01-01T00:00:00Z",
            json!({"ingressClassName": class_name}),
        )
    };
    let edge = class("edge", INGRESS_CONTROLLER, false);
    let mut all = classes();
    all.push(edge);
    assert!(served(&with(Some("skiff")), &all));
    assert!(served(&with(Some("edge")), &all));
    assert!(!served(&with(Some("nginx")), &all));
    assert!(served(&with(None), &all), "the default class is skiff's");
    let nginx_default = vec![
        class("skiff", INGRESS_CONTROLLER, false),
        class("nginx", "k8s.io/ingress-nginx", true),
    ];
    assert!(!served(&with(None), &nginx_default));
    // Before the classes are seen, `skiff` by name.
    assert!(served(&with(Some("skiff")), &[]));
}

fn services() -> Vec<Service> {
    vec![
        svc("wasm", "10.43.0.10", json!([{"port": 80}])),
        svc("box", "10.43.0.11", json!([{"name": "http", "port": 8080}])),
        svc("other", "10.43.0.12", json!([{"port": 80}])),
    ]
}

fn path(p: &str, kind: &str, svc: &str, port: serde_json::Value) -> serde_json::Value {
    json!({"path": p, "pathType": kind, "backend": {"service": {"name": svc, "port": port}}})
}

#[test]
fn hosts_paths_and_precedence() {
    let ing = ingress(
        "web",
        "2026-01-01T00:00:00Z",
        json!({"rules": [
            {"host": "shop.example", "http": {"paths": [
                path("/a", "Prefix", "wasm", json!({"number": 80})),
                path("/b", "ImplementationSpecific", "box", json!({"name": "http"})),
                path("/a/exact", "Exact", "other", json!({"number": 80})),
            ]}},
            {"host": "*.apps.example", "http": {"paths": [path("/", "Prefix", "other", json!({"number": 80}))]}},
        ]}),
    );
    let t = RouteTable::build(&[ing], &classes(), &services());
    assert_eq!(target(t.route("shop.example", "/a")), "wasm@10.43.0.10:80");
    assert_eq!(
        target(t.route("SHOP.example", "/a/x")),
        "wasm@10.43.0.10:80"
    );
    assert_eq!(target(t.route("shop.example", "/ab")), "404");
    assert_eq!(
        target(t.route("shop.example", "/a/exact")),
        "other@10.43.0.12:80"
    );
    assert_eq!(
        target(t.route("shop.example", "/a/exact/x")),
        "wasm@10.43.0.10:80"
    );
    assert_eq!(
        target(t.route("shop.example", "/b/c")),
        "box@10.43.0.11:8080"
    );
    assert_eq!(
        target(t.route("x.apps.example", "/q")),
        "other@10.43.0.12:80"
    );
    assert_eq!(
        target(t.route("x.y.apps.example", "/q")),
        "404",
        "one label only"
    );
    assert_eq!(target(t.route("elsewhere", "/a")), "404");
}

#[test]
fn default_backend_hostless_rules_classes_and_missing_services() {
    let first = ingress(
        "first",
        "2026-01-01T00:00:00Z",
        json!({"defaultBackend": {"service": {"name": "other", "port": {"number": 80}}},
               "rules": [{"http": {"paths": [path("/api", "Prefix", "missing", json!({"number": 80}))]}}]}),
    );
    // Younger: its claim on the same path loses; its class is someone else's.
    let second = ingress(
        "second",
        "2026-02-01T00:00:00Z",
        json!({"rules": [{"http": {"paths": [path("/api", "Prefix", "wasm", json!({"number": 80}))]}}]}),
    );
    let mut foreign = ingress(
        "foreign",
        "2025-01-01T00:00:00Z",
        json!({"ingressClassName": "nginx", "rules": [{"http": {"paths": [path("/", "Prefix", "wasm", json!({"number": 80}))]}}]}),
    );
    foreign.metadata.name = Some("foreign".into());
    let t = RouteTable::build(&[second, first, foreign], &classes(), &services());
    assert_eq!(
        target(t.route("any", "/api/v1")),
        "unavailable: Service default/missing does not exist"
    );
    assert_eq!(target(t.route("any", "/")), "other@10.43.0.12:80");
    let wrong_port = ingress(
        "p",
        "2026-01-01T00:00:00Z",
        json!({"rules": [{"http": {"paths": [path("/", "Prefix", "wasm", json!({"number": 81}))]}}]}),
    );
    let t = RouteTable::build(&[wrong_port], &classes(), &services());
    assert_eq!(
        target(t.route("h", "/")),
        "unavailable: Service default/wasm has no port 81"
    );
}
