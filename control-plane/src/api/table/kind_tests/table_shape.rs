//! The Table envelope: metadata, column definitions, row objects, defaults.

use super::common;

use crate::api::table::{kinds_with_tables, table_for, IncludeObject};
use common::{ago, assert_cells, now};
use serde_json::{json, Value};

fn cm() -> Value {
    json!({
        "apiVersion": "v1", "kind": "ConfigMap",
        "metadata": {"name": "settings", "namespace": "default", "uid": "u-1",
                     "resourceVersion": "41", "labels": {"app": "web"}, "creationTimestamp": ago(10)},
        "data": {"k": "v"}
    })
}

#[test]
fn envelope_and_column_definitions() {
    let t = table_for(
        "ConfigMap",
        &[cm()],
        now(),
        IncludeObject::Metadata,
        json!({"resourceVersion": "42", "continue": "abc"}),
    );
    assert_eq!(t["kind"], json!("Table"));
    assert_eq!(t["apiVersion"], json!("meta.k8s.io/v1"));
    assert_eq!(
        t["metadata"],
        json!({"resourceVersion": "42", "continue": "abc"})
    );
    let defs = t["columnDefinitions"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(defs.len(), 3);
    assert_eq!(defs[0]["name"], json!("Name"));
    assert_eq!(defs[0]["type"], json!("string"));
    assert_eq!(defs[0]["format"], json!("name"));
    assert_eq!(defs[0]["priority"], json!(0));
    assert!(defs[0]["description"]
        .as_str()
        .is_some_and(|d| !d.is_empty()));
    assert_eq!(defs[2]["name"], json!("Age"));
    assert_eq!(defs[2]["format"], json!(""));
    for d in &defs {
        let keys: Vec<&String> = d
            .as_object()
            .map(|o| o.keys().collect())
            .unwrap_or_default();
        assert_eq!(keys.len(), 5, "{d}");
    }
}

#[test]
fn include_object_modes() {
    let meta = table_for(
        "ConfigMap",
        &[cm()],
        now(),
        IncludeObject::Metadata,
        json!({}),
    );
    assert_eq!(
        meta["rows"][0]["object"],
        json!({"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": cm()["metadata"]})
    );
    let full = table_for(
        "ConfigMap",
        &[cm()],
        now(),
        IncludeObject::Object,
        json!({}),
    );
    assert_eq!(full["rows"][0]["object"], cm());
    let none = table_for("ConfigMap", &[cm()], now(), IncludeObject::None, json!({}));
    assert!(none["rows"][0].get("object").is_none());
    assert_eq!(none["rows"][0]["cells"], json!(["settings", 1, "10s"]));
    // An item without metadata still yields a PartialObjectMetadata.
    let bare = table_for(
        "Widget",
        &[json!({})],
        now(),
        IncludeObject::Metadata,
        Value::Null,
    );
    assert_eq!(bare["rows"][0]["object"]["metadata"], json!({}));
    assert_eq!(bare["metadata"], json!({}));
}

#[test]
fn empty_lists_have_columns_and_no_rows() {
    let t = table_for(
        "Pod",
        &[],
        now(),
        IncludeObject::Metadata,
        json!({"resourceVersion": "7"}),
    );
    assert_eq!(t["rows"], json!([]));
    assert_eq!(t["columnDefinitions"].as_array().map(Vec::len), Some(9));
}

#[test]
fn rows_keep_item_order() {
    let items: Vec<Value> = ["b", "a", "c"]
        .iter()
        .map(|n| json!({"metadata": {"name": n}}))
        .collect();
    let t = table_for("Namespace", &items, now(), IncludeObject::None, json!({}));
    let names: Vec<Value> = t["rows"]
        .as_array()
        .map(|rows| rows.iter().map(|r| r["cells"][0].clone()).collect())
        .unwrap_or_default();
    assert_eq!(names, [json!("b"), json!("a"), json!("c")]);
}

#[test]
fn default_table_is_name_and_age() {
    let t = table_for(
        "Widget",
        &[
            json!({"metadata": {"name": "w1", "creationTimestamp": ago(3 * 86400)}}),
            json!({"metadata": {"name": "w2"}}),
        ],
        now(),
        IncludeObject::None,
        json!({}),
    );
    assert_eq!(
        t["columnDefinitions"],
        json!([
            {"name": "Name", "type": "string", "format": "name",
             "description": t["columnDefinitions"][0]["description"], "priority": 0},
            {"name": "Age", "type": "date", "format": "",
             "description": t["columnDefinitions"][1]["description"], "priority": 0}
        ])
    );
    assert_eq!(t["rows"][0]["cells"], json!(["w1", "3d"]));
    assert_eq!(t["rows"][1]["cells"], json!(["w2", "<unknown>"]));
}

#[test]
fn builtin_kinds_without_printers_show_created_at() {
    assert_cells(
        "ClusterRole",
        json!({"metadata": {"name": "view", "creationTimestamp": "2024-01-02T03:04:05Z"}}),
        json!(["view", "2024-01-02T03:04:05Z"]),
    );
    assert_cells(
        "Role",
        json!({"metadata": {"name": "r", "creationTimestamp": "2024-01-02T05:04:05.25+02:00"}}),
        json!(["r", "2024-01-02T03:04:05Z"]),
    );
    assert_cells("LimitRange", json!({}), json!(["", "0001-01-01T00:00:00Z"]));
}

#[test]
fn kind_lookup() {
    let kinds = kinds_with_tables();
    for k in [
        "Pod",
        "Node",
        "Namespace",
        "Service",
        "Deployment",
        "ReplicaSet",
        "DaemonSet",
        "StatefulSet",
        "Job",
        "CronJob",
        "Event",
        "ConfigMap",
        "Secret",
    ] {
        assert!(kinds.contains(&k), "{k}");
    }
    assert!(!kinds.contains(&"Widget"));
    // Kinds match case-insensitively.
    let t = table_for("pod", &[], now(), IncludeObject::None, json!({}));
    assert_eq!(t["columnDefinitions"][1]["name"], json!("Ready"));
}

#[test]
fn wide_columns_are_exactly_priority_one() {
    let expected: &[(&str, &[&str])] = &[
        ("Pod", &["IP", "Node", "Nominated Node", "Readiness Gates"]),
        (
            "Node",
            &[
                "Internal-IP",
                "External-IP",
                "OS-Image",
                "Kernel-Version",
                "Container-Runtime",
            ],
        ),
        ("Namespace", &[]),
        ("Service", &["Selector"]),
        ("Deployment", &["Containers", "Images", "Selector"]),
        ("ReplicaSet", &["Containers", "Images", "Selector"]),
        ("DaemonSet", &["Containers", "Images", "Selector"]),
        ("StatefulSet", &["Containers", "Images"]),
        ("Job", &["Containers", "Images", "Selector"]),
        ("CronJob", &["Containers", "Images", "Selector"]),
        (
            "Event",
            &["Subobject", "Source", "First Seen", "Count", "Name"],
        ),
        ("ConfigMap", &[]),
        ("Secret", &[]),
        ("Widget", &[]),
    ];
    for (kind, wide) in expected {
        let (_, got) = common::columns(kind);
        assert_eq!(got, *wide, "{kind}");
    }
}
