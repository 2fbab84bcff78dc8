use serde_json::{json, Value};
use skiff_control_plane::api::selectors::{FieldSelector, LabelSelector, SelectorError};

fn labels(v: Value) -> serde_json::Map<String, Value> {
    v.as_object().cloned().unwrap_or_default()
}

#[test]
fn label_selector_match_table() {
    let l = labels(json!({"app": "web", "tier": "frontend", "env": "", "n": "7"}));
    let cases: &[(&str, bool)] = &[
        ("", true),
        ("app=web", true),
        ("app==web", true),
        ("app=db", false),
        ("app!=db", true),
        ("app!=web", false),
        ("missing!=x", true),
        ("app in (web,db)", true),
        ("app in (db, cache)", false),
        ("app notin (db,cache)", true),
        ("missing notin (db)", true),
        ("app notin (web)", false),
        ("app", true),
        ("missing", false),
        ("!missing", true),
        ("!app", false),
        ("env=", true),
        ("env", true),
        ("missing=", false),
        ("env in ()", true),
        ("  app = web ,  tier in ( frontend , backend )  ", true),
        ("app=web,tier=backend", false),
        ("n>5", true),
        ("n<5", false),
        ("n>7", false),
        ("app>1", false),
        ("example.com/key!=x", true),
        ("in=x", false),
        ("app in (in, notin, web)", true),
    ];
    for (sel, want) in cases {
        let s = LabelSelector::parse(sel).unwrap_or_else(|e| panic!("{sel:?}: {e}"));
        assert_eq!(s.matches(Some(&l)), *want, "selector {sel:?}");
    }
    // absent labels behave as an empty set
    assert!(LabelSelector::parse("!a").unwrap().matches(None));
    assert!(!LabelSelector::parse("a").unwrap().matches(None));
    assert!(LabelSelector::parse("").unwrap().is_empty());
}

#[test]
fn label_selector_errors() {
    let cases: &[(&str, &str)] = &[
        (
            "a b",
            "unable to parse requirement: found 'b', expected: in, notin, =, ==, !=, gt, lt",
        ),
        (
            "a_=b",
            "unable to parse requirement: <nil>: Invalid value: \"a_\": name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')",
        ),
        ("a=b,", "found '', expected: identifier after ','"),
        ("a in (x", "unable to parse requirement: found '', expected: ',' or ')'"),
        ("a in x", "unable to parse requirement: found 'x' expected: '('"),
        ("a=b c", "found 'c', expected: ',' or 'end of string'"),
        ("a=b=c", "found '=', expected: ',' or 'end of string'"),
        (",a", "found ',', expected: !, identifier, or 'end of string'"),
        (
            "a>x",
            "unable to parse requirement: values[0]: Invalid value: \"x\": for 'Gt', 'Lt' operators, the value must be an integer",
        ),
    ];
    for (sel, want) in cases {
        match LabelSelector::parse(sel) {
            Ok(s) => panic!("{sel:?} parsed as {s:?}"),
            Err(e) => assert_eq!(e.to_string(), *want, "selector {sel:?}"),
        }
    }
    let long = format!("a={}", "x".repeat(64));
    let e = LabelSelector::parse(&long).unwrap_err().to_string();
    assert!(e.contains("must be no more than 63 characters"), "{e}");
    let e = LabelSelector::parse("a=b_").unwrap_err().to_string();
    assert!(e.starts_with("unable to parse requirement: values[0]: Invalid value: \"b_\": a valid label must be an empty string"), "{e}");
}

#[test]
fn label_selector_display_roundtrip() {
    let s = LabelSelector::parse("b in (y,x),a=1,!c,d").unwrap();
    assert_eq!(s.to_string(), "a=1,b in (x,y),!c,d");
    assert_eq!(LabelSelector::parse(&s.to_string()).unwrap(), s);
}

#[test]
fn label_selector_from_k8s() {
    let l = labels(json!({"app": "web", "tier": "fe"}));
    let s = LabelSelector::from_k8s(&json!({
        "matchLabels": {"app": "web"},
        "matchExpressions": [
            {"key": "tier", "operator": "In", "values": ["fe", "be"]},
            {"key": "legacy", "operator": "DoesNotExist"}
        ]
    }))
    .unwrap();
    assert!(s.matches(Some(&l)));
    assert!(!s.is_empty());
    let empty = LabelSelector::from_k8s(&json!({})).unwrap();
    assert!(empty.is_empty() && empty.matches(None));
    let nothing = LabelSelector::from_k8s(&Value::Null).unwrap();
    assert!(!nothing.is_empty() && !nothing.matches(Some(&l)));

    let e =
        LabelSelector::from_k8s(&json!({"matchExpressions": [{"key": "a", "operator": "Foo"}]}))
            .unwrap_err();
    assert_eq!(
        e.to_string(),
        "\"Foo\" is not a valid label selector operator"
    );
    let e = LabelSelector::from_k8s(
        &json!({"matchExpressions": [{"key": "a", "operator": "In", "values": []}]}),
    )
    .unwrap_err();
    assert_eq!(
        e.to_string(),
        "values: Invalid value: []string{}: for 'in', 'notin' operators, values set can't be empty"
    );
    assert!(LabelSelector::from_k8s(&json!({"matchLabels": {"bad key": "x"}})).is_err());
    assert!(LabelSelector::from_k8s(&json!("nope")).is_err());
    assert!(LabelSelector::from_k8s(&json!({"matchLabels": {"a": 1}})).is_err());
}

fn pod(node: Option<&str>, phase: &str) -> Value {
    let mut p = json!({
        "kind": "Pod",
        "metadata": {"name": "p1", "namespace": "default"},
        "spec": {"restartPolicy": "Always"},
        "status": {"phase": phase, "podIPs": [{"ip": "10.0.0.5"}], "podIP": "10.0.0.5"}
    });
    if let Some(n) = node {
        p["spec"]["nodeName"] = json!(n);
    }
    p
}

#[test]
fn field_selector_pods() {
    let unscheduled = pod(None, "Pending");
    let running = pod(Some("node-1"), "Running");
    let s = FieldSelector::parse("spec.nodeName=").unwrap();
    assert!(s.validate_for("Pod").is_ok());
    assert!(s.matches(&unscheduled));
    assert!(!s.matches(&running));
    let s = FieldSelector::parse("spec.nodeName==node-1,status.phase!=Failed").unwrap();
    assert!(s.matches(&running) && !s.matches(&unscheduled));
    assert_eq!(s.required_value("spec.nodeName"), Some("node-1"));
    let s = FieldSelector::parse("metadata.name=p1,metadata.namespace=default").unwrap();
    assert!(s.matches(&running));
    assert!(FieldSelector::parse("status.podIP=10.0.0.5")
        .unwrap()
        .matches(&running));
    assert!(FieldSelector::parse("spec.hostNetwork=false")
        .unwrap()
        .matches(&running));
    assert!(FieldSelector::parse("").unwrap().is_empty());
    assert!(FieldSelector::parse("").unwrap().matches(&running));
}

#[test]
fn field_selector_escapes_and_errors() {
    let s = FieldSelector::parse(r"metadata.name=a\,b\=c\\d").unwrap();
    assert_eq!(s.requirements()[0].value, r"a,b=c\d");
    assert!(s.matches(&json!({"metadata": {"name": r"a,b=c\d"}})));
    assert_eq!(s.to_string(), r"metadata.name=a\,b\=c\\d");
    assert_eq!(
        FieldSelector::parse(r"metadata.name=a\x")
            .unwrap_err()
            .to_string(),
        r"invalid escape sequence: \x"
    );
    assert_eq!(
        FieldSelector::parse("foo").unwrap_err().to_string(),
        "invalid selector: 'foo'; can't understand 'foo'"
    );
    assert!(FieldSelector::parse(r"metadata.name=a\").is_err());
}

#[test]
fn field_selector_supported_fields() {
    let s = FieldSelector::parse("spec.foo=bar").unwrap();
    let e = s.validate_for("Pod").unwrap_err();
    assert_eq!(e.to_string(), "field label not supported: spec.foo");
    assert_eq!(e, SelectorError::UnsupportedField("spec.foo".into()));
    let ok: &[(&str, &str)] = &[
        ("Pod", "spec.nodeName=a,spec.restartPolicy=Always,spec.schedulerName=x,spec.serviceAccountName=y,status.phase=Running,status.podIP=1.2.3.4,status.nominatedNodeName=n"),
        ("Event", "involvedObject.kind=Pod,involvedObject.namespace=a,involvedObject.name=b,involvedObject.uid=u,involvedObject.apiVersion=v1,involvedObject.resourceVersion=1,involvedObject.fieldPath=f,reason=r,reportingComponent=c,source=s,type=Normal"),
        ("Secret", "type=Opaque"),
        ("Node", "spec.unschedulable=false"),
        ("Namespace", "status.phase=Active"),
        ("Job", "status.successful=1"),
        ("ConfigMap", "metadata.name=a,metadata.namespace=b"),
        ("Deployment", "metadata.name=a"),
    ];
    for (kind, sel) in ok {
        FieldSelector::parse(sel)
            .unwrap()
            .validate_for(kind)
            .unwrap_or_else(|e| panic!("{kind} {sel}: {e}"));
    }
    let bad: &[(&str, &str)] = &[
        ("ConfigMap", "type"),
        ("Deployment", "spec.nodeName"),
        ("Secret", "status.phase"),
        ("Node", "spec.nodeName"),
    ];
    for (kind, field) in bad {
        let e = FieldSelector::parse(&format!("{field}=x"))
            .unwrap()
            .validate_for(kind)
            .unwrap_err();
        assert_eq!(e.to_string(), format!("field label not supported: {field}"));
    }
}

#[test]
fn field_selector_kind_specific_values() {
    let node = json!({"kind": "Node", "metadata": {"name": "n1"}, "spec": {}});
    assert!(FieldSelector::parse("spec.unschedulable=false")
        .unwrap()
        .matches(&node));
    let cordoned =
        json!({"kind": "Node", "metadata": {"name": "n1"}, "spec": {"unschedulable": true}});
    assert!(FieldSelector::parse("spec.unschedulable=true")
        .unwrap()
        .matches(&cordoned));
    let ev = json!({"kind": "Event", "involvedObject": {"kind": "Pod", "name": "p"},
        "source": {"component": "kubelet"}, "reportingController": "kubelet", "type": "Warning"});
    let s = FieldSelector::parse(
        "source=kubelet,reportingComponent=kubelet,involvedObject.kind=Pod,type=Warning",
    )
    .unwrap();
    assert!(s.matches(&ev));
    let job = json!({"kind": "Job", "status": {"succeeded": 2}});
    assert!(FieldSelector::parse("status.successful=2")
        .unwrap()
        .matches(&job));
    let job0 = json!({"kind": "Job", "status": {}});
    assert!(FieldSelector::parse("status.successful=0")
        .unwrap()
        .matches(&job0));
    let secret = json!({"kind": "Secret", "type": "kubernetes.io/tls"});
    assert!(FieldSelector::parse("type=kubernetes.io/tls")
        .unwrap()
        .matches(&secret));
    assert!(FieldSelector::parse("type!=Opaque")
        .unwrap()
        .matches_kind("Secret", &secret));
}
