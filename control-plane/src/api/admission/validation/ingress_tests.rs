//! One test per Ingress / IngressClass rule, with Kubernetes' field paths and messages.

use serde_json::{json, Value};

fn ing(spec: Value) -> Value {
    json!({"metadata": {"name": "web", "namespace": "default"}, "spec": spec})
}

fn check(obj: &Value, old: Option<&Value>) -> Vec<String> {
    let mut errs = Vec::new();
    super::ingress(obj, old, &mut errs);
    errs.iter().map(ToString::to_string).collect()
}

fn check_class(obj: &Value, old: Option<&Value>) -> Vec<String> {
    let mut errs = Vec::new();
    super::ingress_class(obj, old, &mut errs);
    errs.iter().map(ToString::to_string).collect()
}

fn paths(paths: Value) -> Value {
    ing(json!({"rules": [{"host": "shop.example", "http": {"paths": paths}}]}))
}

fn svc(name: &str, port: Value) -> Value {
    json!({"service": {"name": name, "port": port}})
}

#[test]
fn valid_ingresses_pass() {
    for spec in [
        json!({"ingressClassName": "skiff", "rules": [
            {"host": "shop.example", "http": {"paths": [
                {"path": "/", "pathType": "Prefix", "backend": svc("web", json!({"number": 80}))},
                {"path": "/api/v1", "pathType": "Exact", "backend": svc("api", json!({"name": "http"}))},
                {"pathType": "ImplementationSpecific", "backend": {"resource": {"apiGroup": "k8s.example.com", "kind": "StorageBucket", "name": "assets"}}}
            ]}},
            {"host": "*.shop.example"},
            {"http": {"paths": [{"path": "/", "pathType": "Prefix", "backend": svc("web", json!({"number": 65535}))}]}}
        ], "tls": [{"hosts": ["shop.example", "*.shop.example"], "secretName": "shop-tls"}, {}]}),
        json!({"defaultBackend": svc("web", json!({"number": 8080}))}),
    ] {
        let obj = ing(spec);
        assert_eq!(check(&obj, None), Vec::<String>::new(), "{obj}");
    }
}

#[test]
fn rules_or_default_backend_are_required() {
    assert_eq!(
        check(&ing(json!({})), None),
        ["spec: Invalid value: []networking.IngressRule(nil): either `defaultBackend` or `rules` must be specified"]
    );
    assert_eq!(
        check(&ing(json!({"rules": []})), None),
        ["spec: Invalid value: []networking.IngressRule{}: either `defaultBackend` or `rules` must be specified"]
    );
}

#[test]
fn hosts_are_dns_names_with_an_optional_wildcard() {
    let rules = |host: &str| ing(json!({"rules": [{"host": host}]}));
    assert_eq!(
        check(&rules("10.0.0.1"), None),
        [r#"spec.rules[0].host: Invalid value: "10.0.0.1": must be a DNS name, not an IP address"#]
    );
    let m = check(&rules("shop.example:8080"), None);
    assert_eq!(m.len(), 1, "{m:?}");
    assert!(
        m[0].starts_with(r#"spec.rules[0].host: Invalid value: "shop.example:8080": a lowercase RFC 1123 subdomain"#),
        "{m:?}"
    );
    for bad in ["*", "*.*.example", "a.*.example", "*shop.example"] {
        let m = check(&rules(bad), None);
        assert_eq!(m.len(), 1, "{bad}: {m:?}");
        assert!(
            m[0].contains("a wildcard DNS-1123 subdomain must start with '*.'")
                && m[0]
                    .contains(r"(e.g. '*.example.com', regex used for validation is '\*\.[a-z0-9]"),
            "{bad}: {m:?}"
        );
    }
    let tls = ing(
        json!({"defaultBackend": svc("web", json!({"number": 80})), "tls": [{"hosts": ["Shop.example", "*.ok.example"], "secretName": "Bad_Name"}]}),
    );
    let m = check(&tls, None);
    assert_eq!(m.len(), 2, "{m:?}");
    assert!(m[0].starts_with(r#"spec.tls[0].hosts[0]: Invalid value: "Shop.example""#));
    assert!(m[1].starts_with(r#"spec.tls[0].secretName: Invalid value: "Bad_Name""#));
    // An update may keep a secret name that was stored before the rule existed.
    assert_eq!(check(&tls, Some(&tls)).len(), 1);
}

#[test]
fn paths_need_a_type_and_an_absolute_path() {
    let b = svc("web", json!({"number": 80}));
    assert_eq!(
        check(&paths(json!([{"path": "/", "backend": b}])), None),
        ["spec.rules[0].http.paths[0].pathType: Required value: pathType must be specified"]
    );
    assert_eq!(
        check(
            &paths(json!([{"path": "/", "pathType": "Regex", "backend": b}])),
            None
        ),
        [
            r#"spec.rules[0].http.paths[0].pathType: Unsupported value: "Regex": supported values: "Exact", "ImplementationSpecific", "Prefix""#
        ]
    );
    assert_eq!(
        check(
            &paths(
                json!([{"path": "api", "pathType": "Prefix", "backend": b}, {"pathType": "Exact", "backend": b}])
            ),
            None
        ),
        [
            r#"spec.rules[0].http.paths[0].path: Invalid value: "api": must be an absolute path"#,
            r#"spec.rules[0].http.paths[1].path: Invalid value: "": must be an absolute path"#,
        ]
    );
    assert_eq!(
        check(
            &paths(
                json!([{"path": "/a//b/..", "pathType": "Exact", "backend": b}, {"path": "x", "pathType": "ImplementationSpecific", "backend": b}])
            ),
            None
        ),
        [
            r#"spec.rules[0].http.paths[0].path: Invalid value: "/a//b/..": must not contain '//'"#,
            r#"spec.rules[0].http.paths[0].path: Invalid value: "/a//b/..": cannot end with '/..'"#,
            r#"spec.rules[0].http.paths[1].path: Invalid value: "x": must be an absolute path"#,
        ]
    );
    assert_eq!(
        check(&ing(json!({"rules": [{"http": {"paths": []}}]})), None),
        ["spec.rules[0].http.paths: Required value"]
    );
}

#[test]
fn backends_have_one_target_and_one_port() {
    let one = |backend: Value| {
        check(
            &paths(json!([{"path": "/", "pathType": "Prefix", "backend": backend}])),
            None,
        )
    };
    let at = "spec.rules[0].http.paths[0].backend";
    assert_eq!(
        one(svc("web", json!({"number": 80, "name": "http"}))),
        [format!(
            r#"{at}: Invalid value: "": cannot set both port name & port number"#
        )]
    );
    assert_eq!(
        one(svc("web", json!({}))),
        [format!(
            "{at}: Required value: port name or number is required"
        )]
    );
    assert_eq!(
        one(svc("web", json!({"number": 70000}))),
        [format!("{at}.service.port.number: Invalid value: 70000: must be between 1 and 65535, inclusive")]
    );
    let m = one(svc("web", json!({"name": "HTTP"})));
    assert!(
        m[0].starts_with(&format!(r#"{at}.service.port.name: Invalid value: "HTTP""#)),
        "{m:?}"
    );
    let m = one(svc("1web", json!({"number": 80})));
    assert!(
        m[0].starts_with(&format!(
            r#"{at}.service.name: Invalid value: "1web": a DNS-1035 label"#
        )),
        "{m:?}"
    );
    assert_eq!(
        one(json!({"service": {"port": {"number": 80}}})),
        [format!("{at}.service.name: Required value")]
    );
    assert_eq!(
        one(json!({})),
        [format!(
            r#"{at}: Invalid value: "": resource or service backend is required"#
        )]
    );
    assert_eq!(
        one(
            json!({"service": {"name": "web", "port": {"number": 80}}, "resource": {"kind": "K", "name": "n"}})
        ),
        [format!(
            r#"{at}: Invalid value: "": cannot set both resource and service backends"#
        )]
    );
    assert_eq!(
        one(json!({"resource": {"kind": "a/b"}})),
        [
            format!(r#"{at}.resource.kind: Invalid value: "a/b": may not contain '/'"#),
            format!("{at}.resource.name: Required value"),
        ]
    );
}

#[test]
fn class_name_annotation_and_status() {
    let mut obj = ing(
        json!({"ingressClassName": "skiff", "defaultBackend": svc("web", json!({"number": 80}))}),
    );
    obj["metadata"]["annotations"] = json!({"kubernetes.io/ingress.class": "nginx"});
    let want = [
        r#"annotations.kubernetes.io/ingress.class: Invalid value: "nginx": must match `ingressClassName` when both are specified"#,
    ];
    assert_eq!(check(&obj, None), want);
    // Only on create.
    assert!(check(&obj, Some(&obj)).is_empty());
    obj["metadata"]["annotations"] = json!({});
    obj["spec"]["ingressClassName"] = json!("Skiff");
    assert!(check(&obj, None)[0].starts_with(r#"spec.ingressClassName: Invalid value: "Skiff""#));
    obj["spec"]["ingressClassName"] = json!("skiff");
    obj["status"] = json!({"loadBalancer": {"ingress": [{"ip": "10.0.0.1"}, {"ip": "nope"}, {"hostname": "10.0.0.2"}, {"hostname": "lb.example"}]}});
    assert_eq!(
        check(&obj, None),
        [
            r#"status.loadBalancer.ingress[1].ip: Invalid value: "nope": must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)"#,
            r#"status.loadBalancer.ingress[2].hostname: Invalid value: "10.0.0.2": must be a DNS name, not an IP address"#,
        ]
    );
}

fn class(spec: Value) -> Value {
    json!({"metadata": {"name": "skiff"}, "spec": spec})
}

#[test]
fn ingress_classes_need_a_domain_prefixed_controller() {
    assert!(check_class(&class(json!({"controller": "skiff.dev/ingress"})), None).is_empty());
    assert_eq!(
        check_class(&class(json!({})), None),
        ["spec.controller: Required value"]
    );
    assert_eq!(
        check_class(&class(json!({"controller": "skiff"})), None),
        [
            r#"spec.controller: Invalid value: "skiff": must be a domain-prefixed path (such as "acme.io/foo")"#
        ]
    );
    let m = check_class(&class(json!({"controller": "Skiff.dev/in gress"})), None);
    assert_eq!(m.len(), 2, "{m:?}");
    assert!(m[0].starts_with(
        r#"spec.controller: Invalid value: "Skiff.dev": a lowercase RFC 1123 subdomain"#
    ));
    assert_eq!(
        m[1],
        r#"spec.controller: Invalid value: "in gress": Invalid path (regex used for validation is '[A-Za-z0-9/\-._~%!$&'()*+,;=:]+')"#
    );
    let long = format!("skiff.dev/{}", "a".repeat(250));
    assert_eq!(
        check_class(&class(json!({"controller": long})), None),
        ["spec.controller: Too long: must have at most 250 bytes"]
    );
    let old = class(json!({"controller": "skiff.dev/ingress"}));
    assert_eq!(
        check_class(
            &class(json!({"controller": "example.com/ingress"})),
            Some(&old)
        ),
        [r#"spec.controller: Invalid value: "example.com/ingress": field is immutable"#]
    );
}

#[test]
fn ingress_class_parameters() {
    let with = |params: Value| {
        check_class(
            &class(json!({"controller": "skiff.dev/ingress", "parameters": params})),
            None,
        )
    };
    assert!(with(
        json!({"apiGroup": "k8s.example.com", "kind": "Params", "name": "p", "scope": "Cluster"})
    )
    .is_empty());
    assert!(with(
        json!({"kind": "Params", "name": "p", "scope": "Namespace", "namespace": "default"})
    )
    .is_empty());
    assert_eq!(
        with(json!({"scope": "Cluster", "namespace": "default"})),
        [
            "spec.parameters.kind: Required value",
            "spec.parameters.name: Required value",
            "spec.parameters.namespace: Forbidden: `parameters.scope` is set to 'Cluster'",
        ]
    );
    assert_eq!(
        with(json!({"kind": "P", "name": "p", "scope": "Namespace"})),
        ["spec.parameters.namespace: Required value: `parameters.scope` is set to 'Namespace'"]
    );
    assert_eq!(
        with(json!({"kind": "P", "name": "p", "scope": "Global"})),
        [
            r#"spec.parameters.scope: Unsupported value: "Global": supported values: "Cluster", "Namespace""#
        ]
    );
}
