use super::*;
use crate::proxy::model::plan;
use crate::proxy::model::tests::{web_service, web_slice};
use crate::proxy::rules::{build, RuleContext};
use serde_json::json;

fn ruleset(endpoints: serde_json::Value) -> Ruleset {
    let ctx = RuleContext {
        cluster_cidr: ("10.42.0.0".parse().unwrap(), 16),
        node_ips: vec!["192.0.2.1".parse().unwrap()],
        masquerade_same_node: false,
        activator: None,
    };
    build(
        &plan(&[web_service()], &[web_slice(endpoints)], "n1", None),
        &ctx,
    )
}

fn kinds(tx: &Transaction) -> Vec<String> {
    tx.commands
        .iter()
        .map(|c| {
            let (verb, body) = c.as_object().unwrap().iter().next().unwrap();
            let (kind, obj) = body.as_object().unwrap().iter().next().unwrap();
            let name = obj
                .get("name")
                .or(obj.get("chain"))
                .and_then(|n| n.as_str())
                .unwrap_or("");
            format!("{verb} {kind} {name}")
        })
        .collect()
}

/// The transaction from what was last written (`before`, nothing pending) to `after`.
fn update(before: &Ruleset, after: &Ruleset) -> Transaction {
    diff(
        "t",
        Some(before),
        &Existing::default(),
        &BTreeSet::new(),
        after,
    )
}

#[test]
fn first_sync_takes_over_the_whole_table_in_one_transaction() {
    let desired = ruleset(json!([{"addresses": ["10.42.0.1"]}]));
    let existing = Existing {
        chains: ["services".into(), "service-OLD-x/y/tcp/".into()].into(),
        sets: ["affinity-OLD".into(), NODEPORT_IPS_SET.into()].into(),
        maps: ["service-ips".into(), "old-map".into()].into(),
    };
    let tx = diff("t", None, &existing, &BTreeSet::new(), &desired);
    let kinds = kinds(&tx);
    let flush_table = kinds.iter().position(|k| k == "flush table t").unwrap();
    let first_rule = kinds
        .iter()
        .position(|k| k.starts_with("add rule"))
        .unwrap();
    assert!(flush_table < first_rule, "{kinds:#?}");
    assert!(kinds.contains(&"flush map service-ips".to_string()));
    assert!(kinds.contains(&"delete set affinity-OLD".to_string()));
    assert!(kinds.contains(&"delete map old-map".to_string()));
    assert_eq!(tx.deleted_chains, ["service-OLD-x/y/tcp/"]);
    assert_eq!(tx.chains_written, desired.chains.len());
    assert_eq!(tx.elements_added, desired.elements.len());
    // The verdict maps are declared as such.
    let doc: serde_json::Value = serde_json::from_str(&tx.to_json(true)).unwrap();
    let map = doc["nftables"]
        .as_array()
        .unwrap()
        .iter()
        .find_map(|c| c.pointer("/add/map"))
        .unwrap();
    assert_eq!(map["map"], "verdict");
}

#[test]
fn an_unchanged_state_writes_nothing() {
    let desired = ruleset(json!([{"addresses": ["10.42.0.1"]}]));
    let tx = update(&desired, &desired);
    assert!(tx.is_empty(), "{:?}", kinds(&tx));
}

#[test]
fn an_endpoint_change_rewrites_only_the_affected_chains() {
    let before = ruleset(json!([{"addresses": ["10.42.0.1"]}]));
    let after = ruleset(json!([{"addresses": ["10.42.0.1"]}, {"addresses": ["10.42.0.2"]}]));
    let tx = update(&before, &after);
    let kinds = kinds(&tx);
    // Two service chains (tcp, udp) and two new endpoint chains; no fixed chain, no element.
    assert_eq!(tx.chains_written, 4, "{kinds:#?}");
    assert!(
        kinds
            .iter()
            .all(|k| !k.contains("table") && !k.contains(" services")),
        "{kinds:#?}"
    );
    assert_eq!((tx.elements_added, tx.elements_deleted), (0, 0));
    assert!(tx.deleted_chains.is_empty());
    let flushes = kinds
        .iter()
        .filter(|k| k.starts_with("flush chain"))
        .count();
    assert_eq!(flushes, 4);
}

#[test]
fn losing_all_endpoints_swaps_the_elements_and_removes_the_chains() {
    let before = ruleset(json!([{"addresses": ["10.42.0.1"]}]));
    let after = ruleset(json!([]));
    let tx = update(&before, &after);
    let kinds = kinds(&tx);
    assert_eq!(
        (tx.elements_added, tx.elements_deleted),
        (2, 2),
        "{kinds:#?}"
    );
    let delete_elem = kinds
        .iter()
        .position(|k| k == "delete element service-ips")
        .unwrap();
    let add_elem = kinds
        .iter()
        .position(|k| k == "add element no-endpoint-services")
        .unwrap();
    assert!(delete_elem < add_elem);
    assert_eq!(tx.deleted_chains.len(), 4, "{:?}", tx.deleted_chains);
    // Stale chains are flushed in the main commands; their deletion can be left out.
    assert!(tx.to_json(true).len() > tx.to_json(false).len());
    assert!(
        kinds
            .iter()
            .filter(|k| k.starts_with("flush chain"))
            .count()
            >= 4
    );
}

#[test]
fn pending_deletions_are_retried() {
    let desired = ruleset(json!([]));
    let pending: BTreeSet<String> = ["endpoint-X-a/b/tcp/__1.2.3.4/80".to_string()].into();
    let tx = diff(
        "t",
        Some(&desired),
        &Existing::default(),
        &pending,
        &desired,
    );
    assert_eq!(tx.deleted_chains, ["endpoint-X-a/b/tcp/__1.2.3.4/80"]);
}
