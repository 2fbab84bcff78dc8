use serde_json::json;

use super::*;

fn writer<'a>(manager: &'a str, kind: &'a str) -> Writer<'a> {
    Writer {
        manager,
        api_version: "v1",
        subresource: "",
        kind,
        has_status: kind != "ConfigMap",
        builtin: true,
        custom: None,
    }
}

fn deployment(replicas: i64, image: &str) -> serde_json::Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "web", "labels": {"app": "web"}},
        "spec": {"replicas": replicas, "selector": {"matchLabels": {"app": "web"}},
                 "template": {"metadata": {"labels": {"app": "web"}},
                              "spec": {"containers": [{"name": "web", "image": image}]}}}
    })
}

#[test]
fn fields_v1_round_trips_with_members_beside_children() {
    let v = json!({"f:metadata": {"f:labels": {".": {}, "f:app": {}}},
                   "f:spec": {"f:containers": {"k:{\"name\":\"web\"}": {".": {}, "f:image": {}}}}});
    let set = FieldSet::from_fields_v1(&v).unwrap();
    assert_eq!(set.to_fields_v1(), v);
    assert!(FieldSet::from_fields_v1(&json!({"x:bad": {}})).is_err());
    assert!(FieldSet::from_fields_v1(&json!([1])).is_err());
}

#[test]
fn applied_config_owns_its_leaves_list_elements_by_key_and_atomic_selectors() {
    let w = writer("kubectl", "Deployment");
    let set = FieldSet::from_value(&w.tracked(&deployment(2, "a")), w.shape()).unwrap();
    let v = set.to_fields_v1();
    assert_eq!(v["f:spec"]["f:replicas"], json!({}));
    assert_eq!(v["f:spec"]["f:selector"], json!({}), "{v}");
    assert_eq!(
        v["f:spec"]["f:template"]["f:spec"]["f:containers"]["k:{\"name\":\"web\"}"],
        json!({".": {}, "f:image": {}, "f:name": {}})
    );
    assert!(v["f:metadata"].get("f:name").is_none());
}

#[test]
fn update_takes_changed_fields_from_other_managers() {
    let mut mf = ManagedFields::default();
    let a = writer("alice", "Deployment");
    let b = writer("bob", "Deployment");
    mf.record_update(&a, &json!({}), &deployment(1, "x"))
        .unwrap();
    mf.record_update(&b, &deployment(1, "x"), &deployment(3, "x"))
        .unwrap();
    let alice = &mf.entries[0];
    assert_eq!(alice.manager, "alice");
    assert!(alice.fields.to_fields_v1()["f:spec"]
        .get("f:replicas")
        .is_none());
    let bob = &mf.entries[1];
    assert_eq!(
        bob.fields.to_fields_v1(),
        json!({"f:spec": {"f:replicas": {}}})
    );
}

#[test]
fn apply_conflicts_with_another_owner_then_force_takes_over() {
    let mut mf = ManagedFields::default();
    let a = writer("alice", "Deployment");
    let live = match mf
        .apply(&a, &json!({}), &deployment(1, "x"), false)
        .unwrap()
    {
        Ok(v) => v,
        Err(c) => panic!("{c:?}"),
    };
    let b = writer("bob", "Deployment");
    let cfg = json!({"spec": {"replicas": 5}});
    let conflicts = mf.apply(&b, &live, &cfg, false).unwrap().unwrap_err();
    let err = conflicts.to_api_error("deployments", "apps", "web");
    assert_eq!(err.code, http::StatusCode::CONFLICT);
    assert!(
        err.message.contains("conflict with \"alice\""),
        "{}",
        err.message
    );
    assert!(err.message.contains(".spec.replicas"), "{}", err.message);
    // The same value is shared, not a conflict.
    let same = json!({"spec": {"replicas": 1}});
    assert!(mf.clone().apply(&b, &live, &same, false).unwrap().is_ok());
    let forced = mf.apply(&b, &live, &cfg, true).unwrap().unwrap();
    assert_eq!(forced["spec"]["replicas"], 5);
    let alice = mf.entries.iter().find(|e| e.manager == "alice").unwrap();
    assert!(alice.fields.to_fields_v1()["f:spec"]
        .get("f:replicas")
        .is_none());
}

#[test]
fn a_key_no_longer_applied_is_removed_unless_someone_else_owns_it() {
    let mut mf = ManagedFields::default();
    let a = writer("kubectl", "ConfigMap");
    let v1 = json!({"metadata": {"name": "c"}, "data": {"a": "1", "b": "2", "c": "3"}});
    let live = mf.apply(&a, &json!({}), &v1, false).unwrap().unwrap();
    // Someone else takes over "c" by an update.
    let mut edited = live.clone();
    edited["data"]["c"] = json!("33");
    mf.record_update(&writer("editor", "ConfigMap"), &live, &edited)
        .unwrap();
    let v2 = json!({"metadata": {"name": "c"}, "data": {"a": "1"}});
    let out = mf.apply(&a, &edited, &v2, false).unwrap().unwrap();
    assert_eq!(out["data"], json!({"a": "1", "c": "33"}));
}

#[test]
fn list_elements_merge_by_key_and_drop_when_no_longer_applied() {
    let mut mf = ManagedFields::default();
    let a = writer("kubectl", "Deployment");
    let mut two = deployment(1, "x");
    two["spec"]["template"]["spec"]["containers"]
        .as_array_mut()
        .unwrap()
        .push(json!({"name": "side", "image": "s"}));
    let live = mf.apply(&a, &json!({}), &two, false).unwrap().unwrap();
    let out = mf
        .apply(&a, &live, &deployment(1, "y"), false)
        .unwrap()
        .unwrap();
    let containers = out["spec"]["template"]["spec"]["containers"]
        .as_array()
        .unwrap();
    assert_eq!(containers.len(), 1, "{containers:?}");
    assert_eq!(containers[0]["image"], "y");
}

#[test]
fn folds_old_update_managers() {
    let mut mf = ManagedFields::default();
    let mut old = json!({"data": {}});
    for i in 0..(DEFAULT_MAX_UPDATE_MANAGERS + 3) {
        let name = format!("m{i}");
        let mut new = old.clone();
        new["data"][format!("k{i}")] = json!("v");
        mf.record_update(&writer(&name, "ConfigMap"), &old, &new)
            .unwrap();
        old = new;
    }
    assert_eq!(mf.entries.len(), DEFAULT_MAX_UPDATE_MANAGERS);
    assert!(mf.entries.iter().any(|e| e.manager == ANCIENT_CHANGES));
}

#[test]
fn decode_rejects_bad_entries_and_drops_resets() {
    let obj = json!({"metadata": {"managedFields": [{}]}});
    assert!(ManagedFields::decode(&obj).unwrap().entries.is_empty());
    let obj = json!({"metadata": {"managedFields": [{"manager": "a", "operation": "Bogus", "fieldsV1": {}}]}});
    assert!(ManagedFields::decode(&obj).is_err());
    assert_eq!(
        default_manager(Some("kubectl/v1.32.0 (linux/amd64)")),
        "kubectl"
    );
    assert_eq!(default_manager(None), "unknown");
}

#[test]
fn a_create_owns_fields_not_the_object_and_added_maps_are_members() {
    let mut mf = ManagedFields::default();
    let w = writer("kubectl", "ConfigMap");
    let obj = json!({"metadata": {"name": "c"}, "data": {"a": "1"}});
    mf.record_update(&w, &serde_json::Value::Null, &obj)
        .unwrap();
    assert_eq!(
        mf.entries[0].fields.to_fields_v1(),
        json!({"f:data": {".": {}, "f:a": {}}})
    );
    // A key added to an existing map is that key; a map added whole is a member too.
    let mut mf = ManagedFields::default();
    let old = json!({"data": {}});
    let new = json!({"data": {"b": "2"}, "metadata": {"labels": {"x": "y"}}});
    mf.record_update(&w, &old, &new).unwrap();
    assert_eq!(
        mf.entries[0].fields.to_fields_v1(),
        json!({"f:data": {"f:b": {}}, "f:metadata": {"f:labels": {".": {}, "f:x": {}}}})
    );
}
