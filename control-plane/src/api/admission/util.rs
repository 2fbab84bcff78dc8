//! Small JSON helpers that never panic.

use serde_json::{Map, Value};

/// `parent[key]` as an object, creating `{}` when absent or null. `None` when
/// the parent is not an object or the existing value is not an object.
pub(crate) fn obj_mut<'a>(parent: &'a mut Value, key: &str) -> Option<&'a mut Map<String, Value>> {
    let m = parent.as_object_mut()?;
    let entry = m.entry(key.to_string()).or_insert(Value::Null);
    if entry.is_null() {
        *entry = Value::Object(Map::new());
    }
    entry.as_object_mut()
}

/// Like `obj_mut` but on a map.
pub(crate) fn map_obj_mut<'a>(
    m: &'a mut Map<String, Value>,
    key: &str,
) -> Option<&'a mut Map<String, Value>> {
    let entry = m.entry(key.to_string()).or_insert(Value::Null);
    if entry.is_null() {
        *entry = Value::Object(Map::new());
    }
    entry.as_object_mut()
}

/// Existing object at `m[key]` (not created).
pub(crate) fn existing_obj_mut<'a>(
    m: &'a mut Map<String, Value>,
    key: &str,
) -> Option<&'a mut Map<String, Value>> {
    m.get_mut(key).and_then(Value::as_object_mut)
}

/// Existing array at `m[key]` (not created).
pub(crate) fn existing_arr_mut<'a>(
    m: &'a mut Map<String, Value>,
    key: &str,
) -> Option<&'a mut Vec<Value>> {
    m.get_mut(key).and_then(Value::as_array_mut)
}

/// Absent or null.
pub(crate) fn missing(m: &Map<String, Value>, key: &str) -> bool {
    m.get(key).is_none_or(Value::is_null)
}

/// Absent, null or `""` (Go's zero string).
pub(crate) fn empty_str(m: &Map<String, Value>, key: &str) -> bool {
    match m.get(key) {
        None | Some(Value::Null) => true,
        Some(Value::String(s)) => s.is_empty(),
        _ => false,
    }
}

/// Absent, null or `0` (Go's zero int).
pub(crate) fn zero_int(m: &Map<String, Value>, key: &str) -> bool {
    match m.get(key) {
        None | Some(Value::Null) => true,
        Some(Value::Number(n)) => n.as_f64() == Some(0.0),
        _ => false,
    }
}

/// Sets `m[key]` when absent or null.
pub(crate) fn set_default(m: &mut Map<String, Value>, key: &str, v: Value) {
    if missing(m, key) {
        m.insert(key.to_string(), v);
    }
}

/// Sets `m[key]` when absent, null or `""`.
pub(crate) fn set_default_str(m: &mut Map<String, Value>, key: &str, v: &str) {
    if empty_str(m, key) {
        m.insert(key.to_string(), Value::String(v.to_string()));
    }
}

pub(crate) fn s<'a>(v: &'a Value, key: &str) -> Option<&'a str> {
    v.get(key).and_then(Value::as_str)
}

/// String field or `""`.
pub(crate) fn sv<'a>(v: &'a Value, key: &str) -> &'a str {
    s(v, key).unwrap_or("")
}

pub(crate) fn arr<'a>(v: &'a Value, key: &str) -> &'a [Value] {
    v.get(key)
        .and_then(Value::as_array)
        .map_or(&[][..], Vec::as_slice)
}

pub(crate) fn obj<'a>(v: &'a Value, key: &str) -> Option<&'a Map<String, Value>> {
    v.get(key).and_then(Value::as_object)
}

/// `v[key]` if present and not null.
pub(crate) fn present<'a>(v: &'a Value, key: &str) -> Option<&'a Value> {
    v.get(key).filter(|x| !x.is_null())
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Standard base64 with padding.
pub(crate) fn base64_encode(data: &[u8]) -> String {
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk.first().copied().unwrap_or(0),
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        let idx = |shift: u32| char::from(B64[((n >> shift) & 63) as usize]);
        out.push(idx(18));
        out.push(idx(12));
        out.push(if chunk.len() > 1 { idx(6) } else { '=' });
        out.push(if chunk.len() > 2 { idx(0) } else { '=' });
    }
    out
}

/// Decoded length of a base64 string (approximate for malformed input).
pub(crate) fn base64_decoded_len(s: &str) -> usize {
    let t = s.trim_end_matches('=');
    t.len() * 3 / 4
}
