//! Decoding of `application/vnd.kubernetes.protobuf` request bodies into the
//! Kubernetes JSON form of the same object (and, in `protobuf/encode.rs`, the inverse: JSON
//! answers as protobuf for clients that ask for it).
//!
//! `kubectl create deployment|service|configmap|secret|namespace|job|cronjob|ingress ...`
//! POSTs its object as protobuf and never falls back to JSON.  The body is the
//! 4-byte magic `k8s\0` followed by a `runtime.Unknown` message:
//!
//! ```text
//! message Unknown {
//!   optional TypeMeta typeMeta = 1;        // {apiVersion = 1, kind = 2}
//!   optional bytes raw = 2;                // the object's own protobuf encoding
//!   optional string contentEncoding = 3;
//!   optional string contentType = 4;
//! }
//! ```
//!
//! `raw` is decoded with the generated field table in [`crate::api::proto_schema`]
//! into a `serde_json::Value` that matches what the Kubernetes API server's JSON
//! encoder produces for the same Go object:
//!
//! * Go's protobuf marshaller writes every non-pointer scalar, zero or not, and the
//!   JSON encoder drops zeros again (`omitempty`).  So a zero/empty scalar is only
//!   emitted when the field is a Go pointer or has no `omitempty` (the table's
//!   `KEEP_ZERO` flag): `replicas: 0` survives, `namespace: ""` does not.  Absent
//!   fields are never emitted; empty lists and maps are never emitted.
//! * Embedded messages present on the wire are emitted even when empty
//!   (`strategy: {}`, `resources: {}`, `status: {}`), as Go emits non-pointer structs.
//! * `IntOrString` becomes a number or a string, `Quantity` a string, `Time` /
//!   `MicroTime` RFC 3339 strings (a zero time is left out), `Duration` a Go duration
//!   string, `RawExtension` / `FieldsV1` their embedded JSON, `bytes` base64.
//! * Go `json:",inline"` embeddings (`Volume.VolumeSource`, `Probe.ProbeHandler`,
//!   `*KeySelector.LocalObjectReference`, ...) are merged into the parent object.
//!
//! The decoder never panics: every length, varint and nesting level is checked and
//! reported as a [`ProtobufError`] whose `Display` is fit for an HTTP 400 body.

use base64::Engine as _;
use serde_json::{Map, Number, Value};

use crate::api::proto_schema::{self as schema, Card, Field, Kind, Msg, INLINE, KEEP_ZERO};

mod encode;
#[cfg(test)]
mod encode_tests;

pub use encode::{
    encode_k8s_protobuf, group_version_has_protobuf, has_protobuf, watch_frame, EncodeError,
};

/// The media type of Kubernetes protobuf bodies.
pub const CONTENT_TYPE: &str = "application/vnd.kubernetes.protobuf";

/// The 4-byte prefix of every Kubernetes protobuf body.
pub const MAGIC: [u8; 4] = *b"k8s\0";

/// Maximum message nesting (including envelopes nested in `RawExtension`).
const MAX_DEPTH: u32 = 64;

/// `time.Time{}.Unix()` in Go: the zero `metav1.Time` if a client ever sends it.
const GO_ZERO_TIME_UNIX: i64 = -62_135_596_800;

/// Kinds of `meta.k8s.io/v1` that Kubernetes registers in every group version
/// (e.g. a DELETE body `{apiVersion: apps/v1, kind: DeleteOptions}`).
const META_KINDS: &[&str] = &[
    "DeleteOptions",
    "CreateOptions",
    "UpdateOptions",
    "PatchOptions",
    "GetOptions",
    "ListOptions",
    "Status",
    "WatchEvent",
];

/// A request body that could not be turned into Kubernetes JSON.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtobufError {
    #[error("protobuf body: missing k8s\\0 magic prefix (not a Kubernetes protobuf body)")]
    MissingMagic,
    #[error("protobuf body: truncated {what} at byte {offset}")]
    Truncated { what: &'static str, offset: usize },
    #[error("protobuf body: varint longer than 10 bytes at byte {offset}")]
    VarintOverflow { offset: usize },
    #[error("protobuf body: invalid field number {field} at byte {offset}")]
    InvalidFieldNumber { field: u64, offset: usize },
    #[error(
        "protobuf body: unsupported wire type {wire_type} at byte {offset} (groups are not supported)"
    )]
    UnsupportedWireType { wire_type: u8, offset: usize },
    #[error(
        "protobuf body: field {field} ({name}) of {message} has wire type {got}, expected {expected} (byte {offset})"
    )]
    WrongWireType {
        message: &'static str,
        name: &'static str,
        field: u32,
        got: u8,
        expected: u8,
        offset: usize,
    },
    #[error("protobuf body: runtime.Unknown envelope has no typeMeta apiVersion/kind")]
    MissingTypeMeta,
    #[error("protobuf body: unsupported content encoding {0:?}")]
    UnsupportedContentEncoding(String),
    #[error(
        "protobuf body: unsupported kind {api_version} {kind}: send JSON instead \
         (kubectl --output=json --dry-run=client ... | kubectl create -f -)"
    )]
    UnsupportedKind { api_version: String, kind: String },
    #[error("protobuf body: nesting deeper than {MAX_DEPTH} levels at byte {offset}")]
    TooDeep { offset: usize },
    #[error("protobuf body: IntOrString with unknown type {int_type} at byte {offset}")]
    InvalidIntOrString { int_type: i64, offset: usize },
    #[error("protobuf body: timestamp {seconds}s is outside years 0000-9999 (byte {offset})")]
    TimeOutOfRange { seconds: i64, offset: usize },
    #[error("protobuf body: {what} at byte {offset} is not valid JSON: {reason}")]
    InvalidEmbeddedJson {
        what: &'static str,
        offset: usize,
        reason: String,
    },
}

type Result<T> = std::result::Result<T, ProtobufError>;

/// Decodes a Kubernetes protobuf request body (`k8s\0` + `runtime.Unknown`) into the
/// Kubernetes JSON form of the object, with `apiVersion` and `kind` set from the
/// envelope's `typeMeta`.
pub fn decode_k8s_protobuf(body: &[u8]) -> std::result::Result<Value, ProtobufError> {
    decode_envelope(
        Buf {
            data: body,
            base: 0,
        },
        0,
    )
}

/// Whether a `Content-Type` header value names the Kubernetes protobuf encoding
/// (parameters such as `; charset=...` are ignored).
pub fn is_k8s_protobuf_content_type(content_type: &str) -> bool {
    content_type
        .split(';')
        .next()
        .is_some_and(|media| media.trim().eq_ignore_ascii_case(CONTENT_TYPE))
}

/// Finds the table entry for a top-level `apiVersion`/`kind`.
fn resolve_kind(api_version: &str, kind: &str) -> Option<&'static Msg> {
    let ident = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric());
    let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
    if !ident(kind)
        || !ident(version)
        || !group
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'-')
    {
        return None;
    }
    if let Some(package) = package_of(group).filter(|p| *p != "meta") {
        let name = format!("k8s.io.api.{package}.{version}.{kind}");
        if let Some(msg) = schema::message_index(&name).and_then(schema::message) {
            return Some(msg);
        }
    }
    if META_KINDS.contains(&kind) {
        let name = format!("k8s.io.apimachinery.pkg.apis.meta.v1.{kind}");
        return schema::message_index(&name).and_then(schema::message);
    }
    None
}

/// The k8s-pb package of a built-in API group: "" -> core, "apps" -> apps,
/// "coordination.k8s.io" -> coordination, "rbac.authorization.k8s.io" -> rbac.  Groups of
/// custom resources (always dotted, never `*.k8s.io`) have none, so a CRD in
/// `apps.example.com` is never mistaken for `apps`.
fn package_of(group: &str) -> Option<&str> {
    if group.is_empty() {
        Some("core")
    } else if !group.contains('.') {
        Some(group)
    } else {
        group
            .strip_suffix(".k8s.io")
            .and_then(|short| short.split('.').next())
    }
}

fn decode_envelope(buf: Buf<'_>, depth: u32) -> Result<Value> {
    if depth > MAX_DEPTH {
        return Err(ProtobufError::TooDeep { offset: buf.base });
    }
    let rest = buf
        .data
        .strip_prefix(&MAGIC[..])
        .ok_or(ProtobufError::MissingMagic)?;
    let unknown = Buf {
        data: rest,
        base: buf.base + MAGIC.len(),
    };
    const UNKNOWN: &str = "k8s.io.apimachinery.pkg.runtime.Unknown";
    const TYPE_META: &str = "k8s.io.apimachinery.pkg.runtime.TypeMeta";
    let mut api_version = String::new();
    let mut kind = String::new();
    let mut raw: Option<Buf<'_>> = None;
    let mut content_encoding = String::new();
    let mut reader = Reader::new(unknown);
    while let Some((tag, wire, offset)) = reader.next_field()? {
        match tag {
            1 => {
                let type_meta = expect_len(wire, UNKNOWN, "typeMeta", tag, offset)?;
                let mut tm = Reader::new(type_meta);
                while let Some((tag, wire, offset)) = tm.next_field()? {
                    match tag {
                        1 => {
                            api_version =
                                lossy(expect_len(wire, TYPE_META, "apiVersion", tag, offset)?)
                        }
                        2 => kind = lossy(expect_len(wire, TYPE_META, "kind", tag, offset)?),
                        _ => {}
                    }
                }
            }
            2 => raw = Some(expect_len(wire, UNKNOWN, "raw", tag, offset)?),
            3 => {
                content_encoding = lossy(expect_len(wire, UNKNOWN, "contentEncoding", tag, offset)?)
            }
            // 4 = contentType: always protobuf for what we are given.
            _ => {}
        }
    }
    if !content_encoding.is_empty() {
        return Err(ProtobufError::UnsupportedContentEncoding(content_encoding));
    }
    if api_version.is_empty() || kind.is_empty() {
        return Err(ProtobufError::MissingTypeMeta);
    }
    let Some(msg) = resolve_kind(&api_version, &kind) else {
        return Err(ProtobufError::UnsupportedKind { api_version, kind });
    };
    let mut object = Map::new();
    if let Some(raw) = raw {
        decode_message(msg, raw, &mut object, depth + 1)?;
    }
    object.insert("apiVersion".to_owned(), Value::String(api_version));
    object.insert("kind".to_owned(), Value::String(kind));
    Ok(Value::Object(object))
}

// ---------------------------------------------------------------------------
// Wire reader

/// A slice of the body plus the absolute offset of its first byte (for errors).
#[derive(Clone, Copy, Debug)]
struct Buf<'a> {
    data: &'a [u8],
    base: usize,
}

#[derive(Clone, Copy, Debug)]
enum Wire<'a> {
    Varint(u64),
    Fixed64(u64),
    Len(Buf<'a>),
    Fixed32(u32),
}

impl Wire<'_> {
    fn wire_type(&self) -> u8 {
        match self {
            Wire::Varint(_) => 0,
            Wire::Fixed64(_) => 1,
            Wire::Len(_) => 2,
            Wire::Fixed32(_) => 5,
        }
    }
}

struct Reader<'a> {
    buf: Buf<'a>,
    pos: usize,
}

impl<'a> Reader<'a> {
    fn new(buf: Buf<'a>) -> Self {
        Reader { buf, pos: 0 }
    }

    fn at_end(&self) -> bool {
        self.pos >= self.buf.data.len()
    }

    fn offset(&self) -> usize {
        self.buf.base.saturating_add(self.pos)
    }

    fn varint(&mut self, what: &'static str) -> Result<u64> {
        let start = self.offset();
        let mut value: u64 = 0;
        for i in 0..10u32 {
            let Some(&byte) = self.buf.data.get(self.pos) else {
                return Err(ProtobufError::Truncated {
                    what,
                    offset: start,
                });
            };
            self.pos += 1;
            if i == 9 && byte > 1 {
                return Err(ProtobufError::VarintOverflow { offset: start });
            }
            value |= u64::from(byte & 0x7f) << (7 * i);
            if byte < 0x80 {
                return Ok(value);
            }
        }
        Err(ProtobufError::VarintOverflow { offset: start })
    }

    fn take(&mut self, len: usize, what: &'static str, start: usize) -> Result<Buf<'a>> {
        let end = self
            .pos
            .checked_add(len)
            .filter(|&end| end <= self.buf.data.len())
            .ok_or(ProtobufError::Truncated {
                what,
                offset: start,
            })?;
        let data = self
            .buf
            .data
            .get(self.pos..end)
            .ok_or(ProtobufError::Truncated {
                what,
                offset: start,
            })?;
        let base = self.offset();
        self.pos = end;
        Ok(Buf { data, base })
    }

    fn fixed64(&mut self) -> Result<u64> {
        let start = self.offset();
        let b = self.take(8, "64-bit value", start)?;
        let bytes: [u8; 8] = b.data.try_into().map_err(|_| ProtobufError::Truncated {
            what: "64-bit value",
            offset: start,
        })?;
        Ok(u64::from_le_bytes(bytes))
    }

    fn fixed32(&mut self) -> Result<u32> {
        let start = self.offset();
        let b = self.take(4, "32-bit value", start)?;
        let bytes: [u8; 4] = b.data.try_into().map_err(|_| ProtobufError::Truncated {
            what: "32-bit value",
            offset: start,
        })?;
        Ok(u32::from_le_bytes(bytes))
    }

    /// Reads the next field key and its value; `None` at the end of the buffer.
    /// Returns the field number, the value and the absolute offset of the key.
    fn next_field(&mut self) -> Result<Option<(u32, Wire<'a>, usize)>> {
        if self.at_end() {
            return Ok(None);
        }
        let offset = self.offset();
        let key = self.varint("field key")?;
        let field = key >> 3;
        if field == 0 || field > 0x1fff_ffff {
            return Err(ProtobufError::InvalidFieldNumber { field, offset });
        }
        let field = u32::try_from(field)
            .map_err(|_| ProtobufError::InvalidFieldNumber { field, offset })?;
        // `key & 7` is < 8, so the cast cannot truncate.
        let wire_type = (key & 7) as u8;
        let wire = match wire_type {
            0 => Wire::Varint(self.varint("varint")?),
            1 => Wire::Fixed64(self.fixed64()?),
            2 => {
                let len_at = self.offset();
                let len = self.varint("length")?;
                let len = usize::try_from(len).map_err(|_| ProtobufError::Truncated {
                    what: "length-delimited field",
                    offset: len_at,
                })?;
                Wire::Len(self.take(len, "length-delimited field", len_at)?)
            }
            5 => Wire::Fixed32(self.fixed32()?),
            _ => return Err(ProtobufError::UnsupportedWireType { wire_type, offset }),
        };
        Ok(Some((field, wire, offset)))
    }
}

fn lossy(buf: Buf<'_>) -> String {
    String::from_utf8_lossy(buf.data).into_owned()
}

fn wrong_wire(
    message: &'static str,
    name: &'static str,
    field: u32,
    wire: &Wire<'_>,
    expected: u8,
    offset: usize,
) -> ProtobufError {
    ProtobufError::WrongWireType {
        message,
        name,
        field,
        got: wire.wire_type(),
        expected,
        offset,
    }
}

fn expect_len<'a>(
    wire: Wire<'a>,
    message: &'static str,
    name: &'static str,
    field: u32,
    offset: usize,
) -> Result<Buf<'a>> {
    match wire {
        Wire::Len(buf) => Ok(buf),
        other => Err(wrong_wire(message, name, field, &other, 2, offset)),
    }
}

fn expect_varint(
    wire: Wire<'_>,
    message: &'static str,
    name: &'static str,
    field: u32,
    offset: usize,
) -> Result<u64> {
    match wire {
        Wire::Varint(v) => Ok(v),
        other => Err(wrong_wire(message, name, field, &other, 0, offset)),
    }
}

// ---------------------------------------------------------------------------
// Table-driven decoding

/// Decodes `buf` as `msg` into `out` (merging into what is already there, as protobuf
/// merges repeated occurrences of an embedded message).
fn decode_message(
    msg: &'static Msg,
    buf: Buf<'_>,
    out: &mut Map<String, Value>,
    depth: u32,
) -> Result<()> {
    if depth > MAX_DEPTH {
        return Err(ProtobufError::TooDeep { offset: buf.base });
    }
    let mut reader = Reader::new(buf);
    while let Some((tag, wire, offset)) = reader.next_field()? {
        // Unknown fields are skipped (their value was consumed by next_field).
        if let Some(field) = msg.field(tag) {
            decode_field(msg, field, wire, offset, out, depth)?;
        }
    }
    Ok(())
}

fn sub_message(kind: Kind) -> Option<&'static Msg> {
    match kind {
        Kind::Msg(index) => schema::message(index),
        _ => None,
    }
}

fn decode_field(
    msg: &'static Msg,
    field: &'static Field,
    wire: Wire<'_>,
    offset: usize,
    out: &mut Map<String, Value>,
    depth: u32,
) -> Result<()> {
    match field.card {
        Card::One => {
            if let Some(sub) = sub_message(field.kind) {
                let buf = expect_len(wire, msg.name, field.json, field.tag, offset)?;
                if field.flags & INLINE != 0 {
                    return decode_message(sub, buf, out, depth + 1);
                }
                if let Some(special) = Special::of(sub) {
                    match special.to_json(sub, buf, depth + 1)? {
                        Some(value) => {
                            out.insert(field.json.to_owned(), value);
                        }
                        None => {
                            out.remove(field.json);
                        }
                    }
                    return Ok(());
                }
                let slot = out
                    .entry(field.json)
                    .or_insert_with(|| Value::Object(Map::new()));
                if !slot.is_object() {
                    *slot = Value::Object(Map::new());
                }
                if let Value::Object(inner) = slot {
                    decode_message(sub, buf, inner, depth + 1)?;
                }
                return Ok(());
            }
            let (value, is_zero) = scalar(msg, field, wire, offset)?;
            if is_zero && field.flags & KEEP_ZERO == 0 {
                out.remove(field.json);
            } else {
                out.insert(field.json.to_owned(), value);
            }
            Ok(())
        }
        Card::Rep => {
            let mut items = Vec::new();
            if let Some(sub) = sub_message(field.kind) {
                let buf = expect_len(wire, msg.name, field.json, field.tag, offset)?;
                items.push(message_value(sub, buf, depth + 1)?.unwrap_or(Value::Null));
            } else {
                match wire {
                    Wire::Len(buf) if is_packable(field.kind) => {
                        let mut packed = Reader::new(buf);
                        while !packed.at_end() {
                            items.push(packed_element(field.kind, &mut packed)?);
                        }
                    }
                    other => items.push(scalar(msg, field, other, offset)?.0),
                }
            }
            if items.is_empty() {
                return Ok(());
            }
            let slot = out
                .entry(field.json)
                .or_insert_with(|| Value::Array(Vec::new()));
            if !slot.is_array() {
                *slot = Value::Array(Vec::new());
            }
            if let Value::Array(array) = slot {
                array.extend(items);
            }
            Ok(())
        }
        Card::Map => {
            let entry = expect_len(wire, msg.name, field.json, field.tag, offset)?;
            let mut key = String::new();
            let mut value: Option<Value> = None;
            let mut reader = Reader::new(entry);
            while let Some((tag, wire, offset)) = reader.next_field()? {
                match tag {
                    1 => key = lossy(expect_len(wire, msg.name, field.json, tag, offset)?),
                    2 => value = Some(map_value(msg, field, wire, offset, depth)?),
                    _ => {}
                }
            }
            let value = match value {
                Some(value) => value,
                None => map_default(field, entry.base, depth)?,
            };
            let slot = out
                .entry(field.json)
                .or_insert_with(|| Value::Object(Map::new()));
            if !slot.is_object() {
                *slot = Value::Object(Map::new());
            }
            if let Value::Object(map) = slot {
                map.insert(key, value);
            }
            Ok(())
        }
    }
}

fn map_value(
    msg: &'static Msg,
    field: &'static Field,
    wire: Wire<'_>,
    offset: usize,
    depth: u32,
) -> Result<Value> {
    if let Some(sub) = sub_message(field.kind) {
        let buf = expect_len(wire, msg.name, field.json, 2, offset)?;
        return Ok(message_value(sub, buf, depth + 1)?.unwrap_or(Value::Null));
    }
    Ok(scalar(msg, field, wire, offset)?.0)
}

/// The value of a map entry that has no value field: the type's zero value.
fn map_default(field: &'static Field, offset: usize, depth: u32) -> Result<Value> {
    if let Some(sub) = sub_message(field.kind) {
        let empty = Buf {
            data: &[],
            base: offset,
        };
        return Ok(message_value(sub, empty, depth + 1)?.unwrap_or(Value::Null));
    }
    Ok(match field.kind {
        Kind::Str | Kind::Bytes => Value::String(String::new()),
        Kind::Bool => Value::Bool(false),
        _ => Value::Number(Number::from(0u8)),
    })
}

/// A whole embedded message as a JSON value (`None`: leave the field out).
fn message_value(msg: &'static Msg, buf: Buf<'_>, depth: u32) -> Result<Option<Value>> {
    if let Some(special) = Special::of(msg) {
        return special.to_json(msg, buf, depth);
    }
    let mut object = Map::new();
    decode_message(msg, buf, &mut object, depth)?;
    Ok(Some(Value::Object(object)))
}

fn is_packable(kind: Kind) -> bool {
    matches!(
        kind,
        Kind::Bool | Kind::I32 | Kind::I64 | Kind::U32 | Kind::U64 | Kind::F64 | Kind::F32
    )
}

fn packed_element(kind: Kind, reader: &mut Reader<'_>) -> Result<Value> {
    Ok(match kind {
        Kind::F64 => float(f64::from_bits(reader.fixed64()?)).0,
        Kind::F32 => float(f64::from(f32::from_bits(reader.fixed32()?))).0,
        _ => varint_scalar(kind, reader.varint("packed varint")?).0,
    })
}

fn float(v: f64) -> (Value, bool) {
    // NaN and infinities have no JSON form; Go's encoder would refuse them.
    let value = Number::from_f64(v).map_or(Value::Null, Value::Number);
    (value, v == 0.0)
}

/// Converts a varint to the JSON value of `kind`; the bool says "is the zero value".
fn varint_scalar(kind: Kind, v: u64) -> (Value, bool) {
    match kind {
        Kind::Bool => (Value::Bool(v != 0), v == 0),
        // int32 values are sign-extended to 64 bits on the wire; keep the low 32.
        Kind::I32 => {
            let x = v as i64 as i32;
            (Value::Number(Number::from(x)), x == 0)
        }
        Kind::U32 => {
            let x = v as u32;
            (Value::Number(Number::from(x)), x == 0)
        }
        Kind::U64 => (Value::Number(Number::from(v)), v == 0),
        _ => {
            let x = v as i64;
            (Value::Number(Number::from(x)), x == 0)
        }
    }
}

/// A singular or repeated scalar; the bool says "is the zero value".
fn scalar(
    msg: &'static Msg,
    field: &'static Field,
    wire: Wire<'_>,
    offset: usize,
) -> Result<(Value, bool)> {
    let expected: u8 = match field.kind {
        Kind::Str | Kind::Bytes | Kind::Msg(_) => 2,
        Kind::F64 => 1,
        Kind::F32 => 5,
        _ => 0,
    };
    match (field.kind, wire) {
        (Kind::Str, Wire::Len(buf)) => {
            let s = lossy(buf);
            let zero = s.is_empty();
            Ok((Value::String(s), zero))
        }
        (Kind::Bytes, Wire::Len(buf)) => Ok((
            Value::String(base64::engine::general_purpose::STANDARD.encode(buf.data)),
            buf.data.is_empty(),
        )),
        (Kind::F64, Wire::Fixed64(bits)) => Ok(float(f64::from_bits(bits))),
        (Kind::F32, Wire::Fixed32(bits)) => Ok(float(f64::from(f32::from_bits(bits)))),
        (Kind::Bool | Kind::I32 | Kind::I64 | Kind::U32 | Kind::U64, Wire::Varint(v)) => {
            Ok(varint_scalar(field.kind, v))
        }
        (_, other) => Err(wrong_wire(
            msg.name, field.json, field.tag, &other, expected, offset,
        )),
    }
}

// ---------------------------------------------------------------------------
// Messages with their own JSON form

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Special {
    IntOrString,
    Quantity,
    Time,
    MicroTime,
    Duration,
    /// `RawExtension` and `FieldsV1`: embedded JSON bytes.
    EmbeddedJson,
}

impl Special {
    fn of(msg: &Msg) -> Option<Special> {
        Some(match msg.name {
            "k8s.io.apimachinery.pkg.util.intstr.IntOrString" => Special::IntOrString,
            "k8s.io.apimachinery.pkg.api.resource.Quantity"
            | "k8s.io.apimachinery.pkg.api.resource.QuantityValue" => Special::Quantity,
            "k8s.io.apimachinery.pkg.apis.meta.v1.Time" => Special::Time,
            "k8s.io.apimachinery.pkg.apis.meta.v1.MicroTime" => Special::MicroTime,
            "k8s.io.apimachinery.pkg.apis.meta.v1.Duration" => Special::Duration,
            "k8s.io.apimachinery.pkg.runtime.RawExtension"
            | "k8s.io.apimachinery.pkg.apis.meta.v1.FieldsV1" => Special::EmbeddedJson,
            _ => return None,
        })
    }

    fn to_json(self, msg: &'static Msg, buf: Buf<'_>, depth: u32) -> Result<Option<Value>> {
        let name = msg.name;
        let mut reader = Reader::new(buf);
        match self {
            Special::IntOrString => {
                let (mut int_type, mut int_val, mut str_val) = (0i64, 0i32, String::new());
                while let Some((tag, wire, offset)) = reader.next_field()? {
                    match tag {
                        1 => int_type = expect_varint(wire, name, "type", tag, offset)? as i64,
                        2 => {
                            int_val =
                                expect_varint(wire, name, "intVal", tag, offset)? as i64 as i32
                        }
                        3 => str_val = lossy(expect_len(wire, name, "strVal", tag, offset)?),
                        _ => {}
                    }
                }
                match int_type {
                    0 => Ok(Some(Value::Number(Number::from(int_val)))),
                    1 => Ok(Some(Value::String(str_val))),
                    other => Err(ProtobufError::InvalidIntOrString {
                        int_type: other,
                        offset: buf.base,
                    }),
                }
            }
            Special::Quantity => {
                let mut s = String::new();
                while let Some((tag, wire, offset)) = reader.next_field()? {
                    if tag == 1 {
                        s = lossy(expect_len(wire, name, "string", tag, offset)?);
                    }
                }
                if s.is_empty() {
                    // The zero Quantity marshals as "0".
                    s.push('0');
                }
                Ok(Some(Value::String(s)))
            }
            Special::Time | Special::MicroTime => {
                let (mut seconds, mut nanos) = (0i64, 0i32);
                while let Some((tag, wire, offset)) = reader.next_field()? {
                    match tag {
                        1 => seconds = expect_varint(wire, name, "seconds", tag, offset)? as i64,
                        2 => nanos = expect_varint(wire, name, "nanos", tag, offset)? as i64 as i32,
                        _ => {}
                    }
                }
                format_time(seconds, nanos, self == Special::MicroTime, buf.base)
                    .map(|t| t.map(Value::String))
            }
            Special::Duration => {
                let mut nanos = 0i64;
                while let Some((tag, wire, offset)) = reader.next_field()? {
                    if tag == 1 {
                        nanos = expect_varint(wire, name, "duration", tag, offset)? as i64;
                    }
                }
                Ok(Some(Value::String(go_duration(nanos))))
            }
            Special::EmbeddedJson => {
                let mut raw: Option<Buf<'_>> = None;
                while let Some((tag, wire, offset)) = reader.next_field()? {
                    if tag == 1 {
                        raw = Some(expect_len(wire, name, "raw", tag, offset)?);
                    }
                }
                let Some(raw) = raw.filter(|r| !r.data.is_empty()) else {
                    return Ok(None);
                };
                if raw.data.starts_with(&MAGIC) {
                    // An embedded object in protobuf form (RawExtension of a proto client).
                    return decode_envelope(raw, depth + 1).map(Some);
                }
                serde_json::from_slice::<Value>(raw.data)
                    .map(Some)
                    .map_err(|e| ProtobufError::InvalidEmbeddedJson {
                        what: if name.ends_with("FieldsV1") {
                            "FieldsV1"
                        } else {
                            "RawExtension"
                        },
                        offset: raw.base,
                        reason: e.to_string(),
                    })
            }
        }
    }
}

/// `metav1.Time` (RFC 3339, seconds) / `metav1.MicroTime` (RFC 3339, microseconds)
/// in UTC; `None` for the zero time, which Go marshals as `null`.
fn format_time(seconds: i64, nanos: i32, micro: bool, offset: usize) -> Result<Option<String>> {
    if nanos == 0 && (seconds == 0 || seconds == GO_ZERO_TIME_UNIX) {
        return Ok(None);
    }
    // Normalize like Go's time.Unix (nanos outside [0, 1e9) carry into seconds).
    let total = i128::from(seconds) * 1_000_000_000 + i128::from(nanos);
    let secs = total.div_euclid(1_000_000_000);
    let sub_nanos = total.rem_euclid(1_000_000_000);
    // 0000-01-01T00:00:00Z ..= 9999-12-31T23:59:59Z
    if !(-62_167_219_200..=253_402_300_799).contains(&secs) {
        return Err(ProtobufError::TimeOutOfRange { seconds, offset });
    }
    // In range, so these fit in i64.
    let secs = secs as i64;
    let days = secs.div_euclid(86_400);
    let second_of_day = secs.rem_euclid(86_400);
    let (year, month, day) = civil_from_days(days);
    let (hh, mm, ss) = (
        second_of_day / 3600,
        (second_of_day % 3600) / 60,
        second_of_day % 60,
    );
    Ok(Some(if micro {
        let micros = sub_nanos / 1000;
        format!("{year:04}-{month:02}-{day:02}T{hh:02}:{mm:02}:{ss:02}.{micros:06}Z")
    } else {
        format!("{year:04}-{month:02}-{day:02}T{hh:02}:{mm:02}:{ss:02}Z")
    }))
}

/// Days since 1970-01-01 to (year, month, day) in the proleptic Gregorian calendar
/// (Howard Hinnant's `civil_from_days`).
fn civil_from_days(days: i64) -> (i64, i64, i64) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// Go's `time.Duration.String()`: "1h2m3.5s", "1.5ms", "0s".
fn go_duration(nanos: i64) -> String {
    fn frac(out: &mut Vec<u8>, mut v: u64, prec: usize) -> u64 {
        let mut printed = false;
        for _ in 0..prec {
            let digit = (v % 10) as u8;
            printed = printed || digit != 0;
            if printed {
                out.push(b'0' + digit);
            }
            v /= 10;
        }
        if printed {
            out.push(b'.');
        }
        v
    }
    fn int(out: &mut Vec<u8>, mut v: u64) {
        if v == 0 {
            out.push(b'0');
        }
        while v > 0 {
            out.push(b'0' + (v % 10) as u8);
            v /= 10;
        }
    }
    // Built back to front, like Go's implementation.
    let mut out: Vec<u8> = Vec::with_capacity(32);
    let neg = nanos < 0;
    let mut u = nanos.unsigned_abs();
    if u < 1_000_000_000 {
        out.push(b's');
        let prec = if u == 0 {
            out.push(b'0');
            0
        } else if u < 1_000 {
            out.push(b'n');
            0
        } else if u < 1_000_000 {
            // "µ" (U+00B5) reversed: 0xB5 then 0xC2
            out.extend_from_slice(&[0xb5, 0xc2]);
            3
        } else {
            out.push(b'm');
            6
        };
        if u != 0 {
            u = frac(&mut out, u, prec);
            int(&mut out, u);
        }
    } else {
        out.push(b's');
        u = frac(&mut out, u, 9);
        int(&mut out, u % 60);
        u /= 60;
        if u > 0 {
            out.push(b'm');
            int(&mut out, u % 60);
            u /= 60;
            if u > 0 {
                out.push(b'h');
                int(&mut out, u);
            }
        }
    }
    if neg {
        out.push(b'-');
    }
    out.reverse();
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_duration_matches_go() {
        for (nanos, want) in [
            (0i64, "0s"),
            (1, "1ns"),
            (1_100, "1.1µs"),
            (2_200_000, "2.2ms"),
            (1_000_000_000, "1s"),
            (5_000_000_000, "5s"),
            (90_000_000_000, "1m30s"),
            (3_600_000_000_000, "1h0m0s"),
            (3_723_500_000_000, "1h2m3.5s"),
            (-1_500_000_000, "-1.5s"),
            (i64::MIN, "-2562047h47m16.854775808s"),
            (i64::MAX, "2562047h47m16.854775807s"),
        ] {
            assert_eq!(go_duration(nanos), want, "{nanos}");
        }
    }

    #[test]
    fn times_format_like_go() {
        assert_eq!(
            format_time(1_704_164_645, 0, false, 0)
                .ok()
                .flatten()
                .as_deref(),
            Some("2024-01-02T03:04:05Z")
        );
        assert_eq!(
            format_time(1_704_164_645, 123_456_789, true, 0)
                .ok()
                .flatten()
                .as_deref(),
            Some("2024-01-02T03:04:05.123456Z")
        );
        assert_eq!(
            format_time(951_782_400, 0, false, 0)
                .ok()
                .flatten()
                .as_deref(),
            Some("2000-02-29T00:00:00Z")
        );
        assert_eq!(
            format_time(-1, 0, false, 0).ok().flatten().as_deref(),
            Some("1969-12-31T23:59:59Z")
        );
        assert_eq!(format_time(0, 0, false, 0), Ok(None));
        assert_eq!(format_time(GO_ZERO_TIME_UNIX, 0, true, 0), Ok(None));
        assert!(format_time(i64::MAX, 0, false, 7).is_err());
        assert!(format_time(i64::MIN, i32::MIN, true, 7).is_err());
    }

    #[test]
    fn resolves_group_versions() {
        let name = |v: &str, k: &str| resolve_kind(v, k).map(|m| m.name);
        assert_eq!(name("v1", "Pod"), Some("k8s.io.api.core.v1.Pod"));
        assert_eq!(
            name("apps/v1", "Deployment"),
            Some("k8s.io.api.apps.v1.Deployment")
        );
        assert_eq!(
            name("coordination.k8s.io/v1", "Lease"),
            Some("k8s.io.api.coordination.v1.Lease")
        );
        assert_eq!(
            name("autoscaling/v2", "HorizontalPodAutoscaler"),
            Some("k8s.io.api.autoscaling.v2.HorizontalPodAutoscaler")
        );
        assert_eq!(
            name("apps/v1", "DeleteOptions"),
            Some("k8s.io.apimachinery.pkg.apis.meta.v1.DeleteOptions")
        );
        assert_eq!(
            name("meta.k8s.io/v1", "DeleteOptions"),
            Some("k8s.io.apimachinery.pkg.apis.meta.v1.DeleteOptions")
        );
        assert_eq!(name("apps/v1", "Foo"), None);
        assert_eq!(name("v1", "Pod.Spec"), None);
        assert_eq!(name("x/../v1", "Pod"), None);
        assert_eq!(
            name("networking.k8s.io/v1", "Ingress"),
            Some("k8s.io.api.networking.v1.Ingress")
        );
        assert_eq!(
            name("networking.k8s.io/v1", "IngressClass"),
            Some("k8s.io.api.networking.v1.IngressClass")
        );
        assert_eq!(name("rbac.authorization.k8s.io/v1", "Role"), None);
        // Custom resource groups never resolve to a built-in kind of the same short name.
        assert_eq!(name("apps.example.com/v1", "Deployment"), None);
        assert_eq!(name("metrics.k8s.io/v1beta1", "NodeMetrics"), None);
        assert_eq!(name("", "Pod"), None);
    }

    #[test]
    fn content_type_check() {
        assert!(is_k8s_protobuf_content_type(
            "application/vnd.kubernetes.protobuf"
        ));
        assert!(is_k8s_protobuf_content_type(
            "application/vnd.kubernetes.protobuf; charset=utf-8"
        ));
        assert!(!is_k8s_protobuf_content_type("application/json"));
    }
}
