//! Shared helpers for the table tests.
#![allow(dead_code)]

use crate::api::table::{table_for, IncludeObject};
use jiff::Timestamp;
use serde_json::{json, Value};

/// The fixed "now" of every test: 2024-05-01T12:00:00Z.
pub fn now() -> Timestamp {
    "2024-05-01T12:00:00Z".parse().expect("valid timestamp")
}

/// `now` minus `secs` seconds, as a Kubernetes timestamp string.
pub fn ago(secs: i64) -> String {
    let t = Timestamp::from_second(now().as_second() - secs).expect("in range");
    t.to_string()
}

pub fn table(kind: &str, items: &[Value]) -> Value {
    table_for(
        kind,
        items,
        now(),
        IncludeObject::Metadata,
        json!({"resourceVersion": "42"}),
    )
}

/// The cells of the single row `item` renders to.
pub fn cells(kind: &str, item: Value) -> Vec<Value> {
    let t = table(kind, &[item]);
    t["rows"][0]["cells"]
        .as_array()
        .cloned()
        .expect("row has cells")
}

/// Column names, and the names of the priority-1 (wide) ones.
pub fn columns(kind: &str) -> (Vec<String>, Vec<String>) {
    let t = table(kind, &[]);
    let defs = t["columnDefinitions"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let name = |c: &Value| c["name"].as_str().unwrap_or("").to_string();
    let all = defs.iter().map(name).collect();
    let wide = defs
        .iter()
        .filter(|c| c["priority"] == json!(1))
        .map(name)
        .collect();
    (all, wide)
}

/// Asserts the cells equal `want`, given as JSON.
pub fn assert_cells(kind: &str, item: Value, want: Value) {
    let got = Value::Array(cells(kind, item));
    assert_eq!(got, want, "{kind} cells");
}
