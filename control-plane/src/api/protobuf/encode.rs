//! Encoding of Kubernetes JSON answers as `application/vnd.kubernetes.protobuf`: the
//! inverse of the decoder in the parent module, driven by the same field table.
//!
//! [`encode_k8s_protobuf`] writes what the Kubernetes protobuf serializer writes: the
//! `k8s\0` magic, then `runtime.Unknown{typeMeta{apiVersion, kind}, raw, contentEncoding: "",
//! contentType: ""}` with the object's own encoding in `raw` (fields in tag order, map
//! entries sorted by key, repeated scalars unpacked, as Go's gogo-protobuf marshaller).
//!
//! Unlike Go, a scalar that is zero in JSON (or absent) is left out unless the table marks
//! it `KEEP_ZERO` (a Go pointer or a field without `omitempty`, where a set zero means
//! something): readers decode an absent proto2 field as the zero value either way.
//! Embedded messages present in the JSON are written even when empty; `null` is absent.
//! The special types are reversed: `IntOrString` from a number or string, `Quantity` from
//! its string, `Time` / `MicroTime` from RFC 3339, `Duration` from a Go duration string,
//! `RawExtension` / `FieldsV1` as their JSON bytes, `bytes` from base64, and the fields of
//! Go `json:",inline"` embeddings are gathered from the parent object.
//!
//! A JSON field the table does not know, or a value of the wrong JSON type, is an
//! [`EncodeError`] naming its path; so is a kind without a protobuf form (custom
//! resources, `metrics.k8s.io`). Nothing here panics on any input.
//!
//! Watch streams use [`watch_frame`]: a 4-byte big-endian length, then
//! `metav1.WatchEvent{type, object: RawExtension{raw: <the object's envelope>}}`.

use base64::alphabet;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use base64::Engine as _;
use serde_json::{Map, Value};

use super::{package_of, resolve_kind, Special, MAGIC, MAX_DEPTH};
use crate::api::proto_schema::{self as schema, Card, Field, Kind, Msg, INLINE, KEEP_ZERO};

/// Base64 as Go's `encoding/json` writes `[]byte` (standard alphabet), read with or
/// without padding.
const BASE64: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// An answer that cannot be written as Kubernetes protobuf.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    #[error("protobuf answer: the object has no apiVersion and kind")]
    MissingTypeMeta,
    #[error("protobuf answer: {api_version} {kind} has no protobuf encoding")]
    UnsupportedKind { api_version: String, kind: String },
    #[error("protobuf answer: {api_version} {kind} field {path}: {reason}")]
    Field {
        api_version: String,
        kind: String,
        /// JSON path of the field, e.g. `spec.template.spec.containers[0].ports`.
        path: String,
        reason: String,
    },
    #[error("protobuf answer: watch event of {len} bytes is too large for its frame")]
    FrameTooLarge { len: usize },
}

/// Whether objects of `apiVersion`/`kind` have a protobuf form this server can write.
pub fn has_protobuf(api_version: &str, kind: &str) -> bool {
    resolve_kind(api_version, kind).is_some()
}

/// Whether a group/version is one of the built-in Kubernetes API groups in the field table
/// (`("", "v1")`, `("apps", "v1")`, ...); custom resource groups and `metrics.k8s.io` are not.
pub fn group_version_has_protobuf(group: &str, version: &str) -> bool {
    let Some(package) = package_of(group).filter(|p| *p != "meta") else {
        return false;
    };
    if version.is_empty() || !version.bytes().all(|b| b.is_ascii_alphanumeric()) {
        return false;
    }
    let prefix = format!("k8s.io.api.{package}.{version}.");
    let messages = &schema::MESSAGES[..];
    let first = messages.partition_point(|m| m.name < prefix.as_str());
    messages
        .get(first)
        .is_some_and(|m| m.name.starts_with(&prefix))
}

/// Encodes a Kubernetes JSON object (with `apiVersion` and `kind`) as a protobuf body:
/// `k8s\0` + `runtime.Unknown`.
pub fn encode_k8s_protobuf(object: &Value) -> Result<Vec<u8>, EncodeError> {
    let obj = object.as_object().ok_or(EncodeError::MissingTypeMeta)?;
    let text = |key: &str| obj.get(key).and_then(Value::as_str).unwrap_or("");
    let (api_version, kind) = (text("apiVersion"), text("kind"));
    if api_version.is_empty() || kind.is_empty() {
        return Err(EncodeError::MissingTypeMeta);
    }
    let Some(msg) = resolve_kind(api_version, kind) else {
        return Err(EncodeError::UnsupportedKind {
            api_version: api_version.to_owned(),
            kind: kind.to_owned(),
        });
    };
    let mut raw = Vec::new();
    encode_message(msg, obj, &mut raw, 1, true).map_err(|fail| EncodeError::Field {
        api_version: api_version.to_owned(),
        kind: kind.to_owned(),
        path: fail.path(),
        reason: fail.reason,
    })?;
    Ok(envelope(api_version, kind, &raw))
}

/// One frame of a protobuf watch stream (`application/vnd.kubernetes.protobuf;stream=watch`):
/// the 4-byte big-endian length of a `metav1.WatchEvent`, then the event, whose object is
/// the envelope of [`encode_k8s_protobuf`].
pub fn watch_frame(event_type: &str, object: &Value) -> Result<Vec<u8>, EncodeError> {
    let object = encode_k8s_protobuf(object)?;
    let mut raw_extension = Vec::with_capacity(object.len() + 6);
    put_bytes(&mut raw_extension, 1, &object);
    let mut event = Vec::with_capacity(raw_extension.len() + event_type.len() + 12);
    put_bytes(&mut event, 1, event_type.as_bytes());
    put_bytes(&mut event, 2, &raw_extension);
    let len =
        u32::try_from(event.len()).map_err(|_| EncodeError::FrameTooLarge { len: event.len() })?;
    let mut frame = Vec::with_capacity(event.len() + 4);
    frame.extend_from_slice(&len.to_be_bytes());
    frame.extend_from_slice(&event);
    Ok(frame)
}

/// `k8s\0` + `runtime.Unknown{typeMeta, raw, contentEncoding: "", contentType: ""}`, the
/// four fields in order as Kubernetes' serializer writes them.
fn envelope(api_version: &str, kind: &str, raw: &[u8]) -> Vec<u8> {
    let mut type_meta = Vec::with_capacity(api_version.len() + kind.len() + 4);
    put_bytes(&mut type_meta, 1, api_version.as_bytes());
    put_bytes(&mut type_meta, 2, kind.as_bytes());
    let mut out = Vec::with_capacity(MAGIC.len() + type_meta.len() + raw.len() + 16);
    out.extend_from_slice(&MAGIC);
    put_bytes(&mut out, 1, &type_meta);
    put_bytes(&mut out, 2, raw);
    put_bytes(&mut out, 3, b"");
    put_bytes(&mut out, 4, b"");
    out
}

// ---------------------------------------------------------------------------
// Errors while walking the object

/// A failure with the JSON path to it, collected innermost first while unwinding.
#[derive(Debug)]
struct Fail {
    segments: Vec<String>,
    reason: String,
}

type Walk<T> = std::result::Result<T, Fail>;

fn fail(reason: impl Into<String>) -> Fail {
    Fail {
        segments: Vec::new(),
        reason: reason.into(),
    }
}

impl Fail {
    fn at(mut self, segment: &str) -> Self {
        self.segments.push(segment.to_owned());
        self
    }

    fn at_index(mut self, index: usize) -> Self {
        self.segments.push(format!("[{index}]"));
        self
    }

    fn path(&self) -> String {
        let mut path = String::new();
        for segment in self.segments.iter().rev() {
            if !path.is_empty() && !segment.starts_with('[') {
                path.push('.');
            }
            path.push_str(segment);
        }
        if path.is_empty() {
            path.push_str("(object)");
        }
        path
    }
}

fn json_type(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn expected(what: &str, got: &Value) -> Fail {
    fail(format!("expected {what}, got {}", json_type(got)))
}

// ---------------------------------------------------------------------------
// Wire writer

fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        // Low 7 bits with the continuation bit; the cast keeps exactly those bits.
        out.push((value as u8 & 0x7f) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

fn put_key(out: &mut Vec<u8>, tag: u32, wire_type: u8) {
    put_varint(out, (u64::from(tag) << 3) | u64::from(wire_type));
}

fn put_bytes(out: &mut Vec<u8>, tag: u32, data: &[u8]) {
    put_key(out, tag, 2);
    put_varint(out, data.len() as u64);
    out.extend_from_slice(data);
}

/// A scalar ready to be written.
enum Scalar {
    Varint(u64),
    Fixed64(u64),
    Fixed32(u32),
    Len(Vec<u8>),
}

fn put_scalar(out: &mut Vec<u8>, tag: u32, scalar: &Scalar) {
    match scalar {
        Scalar::Varint(v) => {
            put_key(out, tag, 0);
            put_varint(out, *v);
        }
        Scalar::Fixed64(v) => {
            put_key(out, tag, 1);
            out.extend_from_slice(&v.to_le_bytes());
        }
        Scalar::Fixed32(v) => {
            put_key(out, tag, 5);
            out.extend_from_slice(&v.to_le_bytes());
        }
        Scalar::Len(data) => put_bytes(out, tag, data),
    }
}

// ---------------------------------------------------------------------------
// Table-driven encoding

fn sub_message(kind: Kind) -> Option<&'static Msg> {
    match kind {
        Kind::Msg(index) => schema::message(index),
        _ => None,
    }
}

/// Whether `key` is a JSON field of `msg`, directly or through an inline embedding.
fn claims(msg: &'static Msg, key: &str) -> bool {
    msg.fields.iter().any(|field| {
        if field.flags & INLINE != 0 {
            sub_message(field.kind).is_some_and(|sub| claims(sub, key))
        } else {
            field.json == key
        }
    })
}

/// Encodes the JSON object `obj` as `msg`, appending to `out`. `check_unknown` is off for
/// inline embeddings, whose parent object also holds the parent's own fields.
fn encode_message(
    msg: &'static Msg,
    obj: &Map<String, Value>,
    out: &mut Vec<u8>,
    depth: u32,
    check_unknown: bool,
) -> Walk<()> {
    if depth > MAX_DEPTH {
        return Err(fail(format!("nesting deeper than {MAX_DEPTH} levels")));
    }
    if check_unknown {
        for key in obj.keys() {
            // `apiVersion`/`kind` of an object (top level, list items) travel in the
            // envelope's typeMeta, not in the message.
            if !claims(msg, key) && key != "apiVersion" && key != "kind" {
                return Err(fail(format!("unknown field (not in {})", msg.name)).at(key));
            }
        }
    }
    for field in msg.fields {
        if field.flags & INLINE != 0 {
            let Some(sub) = sub_message(field.kind) else {
                continue;
            };
            // Go always writes a non-pointer embedded struct, empty or not.
            let mut buf = Vec::new();
            encode_message(sub, obj, &mut buf, depth + 1, false)?;
            put_bytes(out, field.tag, &buf);
            continue;
        }
        match obj.get(field.json) {
            None | Some(Value::Null) => {}
            Some(value) => encode_field(field, value, out, depth).map_err(|f| f.at(field.json))?,
        }
    }
    Ok(())
}

fn encode_field(field: &'static Field, value: &Value, out: &mut Vec<u8>, depth: u32) -> Walk<()> {
    let sub = sub_message(field.kind);
    match field.card {
        Card::One => {
            if let Some(sub) = sub {
                if let Some(bytes) = message_bytes(sub, value, depth + 1)? {
                    put_bytes(out, field.tag, &bytes);
                }
                return Ok(());
            }
            let (scalar, zero) = scalar(field.kind, value)?;
            if !zero || field.flags & KEEP_ZERO != 0 {
                put_scalar(out, field.tag, &scalar);
            }
            Ok(())
        }
        Card::Rep => {
            let Value::Array(items) = value else {
                return Err(expected("an array", value));
            };
            for (i, item) in items.iter().enumerate() {
                if let Some(sub) = sub {
                    // A null element is the message's zero value.
                    let bytes = message_bytes(sub, item, depth + 1)
                        .map_err(|f| f.at_index(i))?
                        .unwrap_or_default();
                    put_bytes(out, field.tag, &bytes);
                } else {
                    // Repeated scalars unpacked, as proto2 (and Go) writes them.
                    let (scalar, _) = scalar(field.kind, item).map_err(|f| f.at_index(i))?;
                    put_scalar(out, field.tag, &scalar);
                }
            }
            Ok(())
        }
        Card::Map => {
            let Value::Object(map) = value else {
                return Err(expected("an object", value));
            };
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            for key in keys {
                let item = &map[key.as_str()];
                let mut entry = Vec::new();
                put_bytes(&mut entry, 1, key.as_bytes());
                if let Some(sub) = sub {
                    let bytes = message_bytes(sub, item, depth + 1).map_err(|f| f.at(key))?;
                    if let Some(bytes) = bytes {
                        put_bytes(&mut entry, 2, &bytes);
                    }
                } else if !item.is_null() {
                    let (scalar, _) = scalar(field.kind, item).map_err(|f| f.at(key))?;
                    put_scalar(&mut entry, 2, &scalar);
                }
                put_bytes(out, field.tag, &entry);
            }
            Ok(())
        }
    }
}

/// The encoding of an embedded message (`None`: leave the field out).
fn message_bytes(msg: &'static Msg, value: &Value, depth: u32) -> Walk<Option<Vec<u8>>> {
    if depth > MAX_DEPTH {
        return Err(fail(format!("nesting deeper than {MAX_DEPTH} levels")));
    }
    if let Some(special) = Special::of(msg) {
        return special_bytes(special, value);
    }
    match value {
        Value::Null => Ok(None),
        Value::Object(obj) => {
            let mut buf = Vec::new();
            encode_message(msg, obj, &mut buf, depth, true)?;
            Ok(Some(buf))
        }
        other => Err(expected("an object", other)),
    }
}

fn integer(value: &Value) -> Option<i128> {
    let Value::Number(n) = value else {
        return None;
    };
    if let Some(i) = n.as_i64() {
        return Some(i128::from(i));
    }
    if let Some(u) = n.as_u64() {
        return Some(i128::from(u));
    }
    // 3.0 is an integer to Go's decoder of a float-typed JSON number too.
    n.as_f64()
        .filter(|f| f.fract() == 0.0 && f.abs() < 1.0e19)
        .map(|f| f as i128)
}

/// A JSON value as the scalar `kind`; the bool says "is the zero value".
fn scalar(kind: Kind, value: &Value) -> Walk<(Scalar, bool)> {
    let ranged = |lo: i128, hi: i128, what: &str| -> Walk<i128> {
        let i = integer(value).ok_or_else(|| expected(what, value))?;
        if (lo..=hi).contains(&i) {
            Ok(i)
        } else {
            Err(fail(format!("{i} is out of range for {what}")))
        }
    };
    Ok(match kind {
        Kind::Str => match value {
            Value::String(s) => (Scalar::Len(s.as_bytes().to_vec()), s.is_empty()),
            other => return Err(expected("a string", other)),
        },
        Kind::Bytes => match value {
            Value::String(s) => {
                let data = BASE64
                    .decode(s.as_bytes())
                    .map_err(|e| fail(format!("not base64: {e}")))?;
                let zero = data.is_empty();
                (Scalar::Len(data), zero)
            }
            other => return Err(expected("a base64 string", other)),
        },
        Kind::Bool => match value {
            Value::Bool(b) => (Scalar::Varint(u64::from(*b)), !*b),
            other => return Err(expected("a boolean", other)),
        },
        // Negative int32/int64 are written sign-extended to 64 bits (two's complement).
        Kind::I32 => {
            let i = ranged(
                i128::from(i32::MIN),
                i128::from(i32::MAX),
                "a 32-bit integer",
            )?;
            (Scalar::Varint(i as i64 as u64), i == 0)
        }
        Kind::I64 => {
            let i = ranged(
                i128::from(i64::MIN),
                i128::from(i64::MAX),
                "a 64-bit integer",
            )?;
            (Scalar::Varint(i as i64 as u64), i == 0)
        }
        Kind::U32 => {
            let i = ranged(0, i128::from(u32::MAX), "an unsigned 32-bit integer")?;
            (Scalar::Varint(i as u64), i == 0)
        }
        Kind::U64 => {
            let i = ranged(0, i128::from(u64::MAX), "an unsigned 64-bit integer")?;
            (Scalar::Varint(i as u64), i == 0)
        }
        Kind::F64 => {
            let f = value.as_f64().ok_or_else(|| expected("a number", value))?;
            (Scalar::Fixed64(f.to_bits()), f == 0.0)
        }
        Kind::F32 => {
            let f = value.as_f64().ok_or_else(|| expected("a number", value))?;
            (Scalar::Fixed32((f as f32).to_bits()), f == 0.0)
        }
        Kind::Msg(_) => return Err(fail("a message where a scalar was expected")),
    })
}

// ---------------------------------------------------------------------------
// Messages with their own JSON form

fn special_bytes(special: Special, value: &Value) -> Walk<Option<Vec<u8>>> {
    if value.is_null() {
        return Ok(None);
    }
    let mut out = Vec::new();
    match special {
        Special::IntOrString => {
            // Go writes all three fields: type, intVal, strVal.
            let (int_type, int_val, str_val) = match value {
                Value::String(s) => (1u64, 0i64, s.as_str()),
                Value::Number(_) => {
                    let i = integer(value)
                        .filter(|i| (i128::from(i32::MIN)..=i128::from(i32::MAX)).contains(i))
                        .ok_or_else(|| fail(format!("{value} is not a 32-bit integer")))?;
                    (0u64, i as i64, "")
                }
                other => return Err(expected("a number or a string", other)),
            };
            put_scalar(&mut out, 1, &Scalar::Varint(int_type));
            put_scalar(&mut out, 2, &Scalar::Varint(int_val as u64));
            put_bytes(&mut out, 3, str_val.as_bytes());
        }
        Special::Quantity => {
            let text = match value {
                Value::String(s) => s.clone(),
                // `cpu: 1` in a stored object: the API server's canonical form is "1".
                Value::Number(n) => n.to_string(),
                other => return Err(expected("a quantity string", other)),
            };
            put_bytes(&mut out, 1, text.as_bytes());
        }
        Special::Time | Special::MicroTime => {
            let Value::String(text) = value else {
                return Err(expected("an RFC 3339 time", value));
            };
            if text.is_empty() {
                return Ok(None);
            }
            let (seconds, nanos) = parse_time(text)
                .ok_or_else(|| fail(format!("{text:?} is not an RFC 3339 time")))?;
            put_scalar(&mut out, 1, &Scalar::Varint(seconds as u64));
            put_scalar(&mut out, 2, &Scalar::Varint(i64::from(nanos) as u64));
        }
        Special::Duration => {
            let Value::String(text) = value else {
                return Err(expected("a duration string", value));
            };
            let nanos = parse_go_duration(text)
                .ok_or_else(|| fail(format!("{text:?} is not a Go duration")))?;
            put_scalar(&mut out, 1, &Scalar::Varint(nanos as u64));
        }
        Special::EmbeddedJson => {
            let raw = serde_json::to_vec(value).map_err(|e| fail(e.to_string()))?;
            put_bytes(&mut out, 1, &raw);
        }
    }
    Ok(Some(out))
}

/// RFC 3339 to `(seconds, nanos)` as Go's `Timestamp` holds them (nanos in 0..1e9).
fn parse_time(text: &str) -> Option<(i64, i32)> {
    let ts: jiff::Timestamp = text.parse().ok()?;
    let total = ts.as_nanosecond();
    let seconds = i64::try_from(total.div_euclid(1_000_000_000)).ok()?;
    let nanos = i32::try_from(total.rem_euclid(1_000_000_000)).ok()?;
    Some((seconds, nanos))
}

/// Go's `time.ParseDuration`: "1h2m3.5s", "-1.5ms", "300µs", "0".
pub(super) fn parse_go_duration(text: &str) -> Option<i64> {
    const LIMIT: u128 = 1 << 63;
    let (negative, mut rest) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    if rest == "0" {
        return Some(0);
    }
    if rest.is_empty() {
        return None;
    }
    let digits_end = |s: &str| s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let mut total: u128 = 0;
    while !rest.is_empty() {
        let (int_part, after) = rest.split_at(digits_end(rest));
        let (frac_part, after) = match after.strip_prefix('.') {
            Some(frac) => frac.split_at(digits_end(frac)),
            None => ("", after),
        };
        if int_part.is_empty() && frac_part.is_empty() {
            return None;
        }
        let unit_end = after
            .find(|c: char| c == '.' || c.is_ascii_digit())
            .unwrap_or(after.len());
        let (unit, after) = after.split_at(unit_end);
        let unit: u128 = match unit {
            "ns" => 1,
            "us" | "\u{b5}s" | "\u{3bc}s" => 1_000,
            "ms" => 1_000_000,
            "s" => 1_000_000_000,
            "m" => 60_000_000_000,
            "h" => 3_600_000_000_000,
            _ => return None,
        };
        let whole: u128 = if int_part.is_empty() {
            0
        } else {
            int_part.parse().ok()?
        };
        total = total.checked_add(whole.checked_mul(unit)?)?;
        // Digits past nanosecond precision of the largest unit change nothing.
        let (mut frac, mut scale) = (0u128, 1u128);
        for digit in frac_part.bytes().take(24) {
            frac = frac * 10 + u128::from(digit - b'0');
            scale *= 10;
        }
        total = total.checked_add(frac * unit / scale)?;
        if total > LIMIT {
            return None;
        }
        rest = after;
    }
    if negative {
        i64::try_from(-(total as i128)).ok()
    } else {
        i64::try_from(total).ok()
    }
}
