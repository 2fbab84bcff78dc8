//! Label and field selectors: the `labelSelector=` / `fieldSelector=` query strings and
//! `metav1.LabelSelector` objects (a workload's `spec.selector`), all from the same input.
//!
//! Invariants: a parsed selector's string form (what the Scale subresource's `status.selector`
//! and the server's messages show, and what HPAs send back as `labelSelector=`) parses to the
//! same selector; and matching an object never panics.
#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use serde_json::{json, Value};
use skiff_control_plane::api::selectors::{FieldOperator, FieldSelector, LabelSelector};

/// Field selector kinds with their own fields, and one without.
const KINDS: [&str; 5] = ["Pod", "Event", "Node", "Job", "Widget"];

/// What the selectors are matched against (built once: building it per input cost a fifth of
/// the run time).
static OBJECT: LazyLock<Value> = LazyLock::new(|| {
    json!({
        "kind": "Pod",
        "metadata": {"name": "web-0", "namespace": "default",
                     "labels": {"app": "web", "tier": "front", "n": "7", "empty": ""}},
        "spec": {"nodeName": "node-a", "hostNetwork": false},
        "status": {"phase": "Running", "podIPs": [{"ip": "10.42.0.5"}]}
    })
});

fn check_label(sel: &LabelSelector, obj: &Value) {
    let text = sel.to_string();
    let again = LabelSelector::parse(&text)
        .unwrap_or_else(|e| panic!("{sel:?} prints as {text:?}, which does not parse: {e}"));
    assert_eq!(&again, sel, "{text:?} parses to another selector");
    let _ = sel.matches_object(obj);
}

fn check_field(sel: &FieldSelector) {
    let text = sel.to_string();
    let again = FieldSelector::parse(&text)
        .unwrap_or_else(|e| panic!("{sel:?} prints as {text:?}, which does not parse: {e}"));
    // Parsing sorts the raw terms, so the order may differ: compare the terms as sets.
    let terms = |s: &FieldSelector| {
        let mut t: Vec<(String, bool, String)> = s
            .requirements()
            .iter()
            .map(|r| {
                (
                    r.field.clone(),
                    r.operator == FieldOperator::Equals,
                    r.value.clone(),
                )
            })
            .collect();
        t.sort();
        t
    };
    assert_eq!(
        terms(&again),
        terms(sel),
        "{text:?} parses to another field selector"
    );
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let obj = &*OBJECT;
    if let Ok(sel) = LabelSelector::parse(text) {
        check_label(&sel, obj);
    }
    if let Ok(sel) = FieldSelector::parse(text) {
        let accepted_for: Vec<&str> = KINDS
            .into_iter()
            .filter(|kind| sel.validate_for(kind).is_ok())
            .collect();
        for kind in &accepted_for {
            let _ = sel.matches_kind(kind, obj);
        }
        let _ = sel.matches(obj);
        // Only selectors the server accepts (known field names) need a faithful string form.
        if !accepted_for.is_empty() {
            check_field(&sel);
        }
    }
    // The same bytes as a `metav1.LabelSelector` object.
    if let Ok(value) = serde_json::from_str::<Value>(text) {
        if let Ok(sel) = LabelSelector::from_k8s(&value) {
            if !sel.is_nothing() {
                check_label(&sel, obj);
            }
        }
    }
});
