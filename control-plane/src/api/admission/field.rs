//! Kubernetes-style field errors (`k8s.io/apimachinery/pkg/util/validation/field`).

use serde_json::{json, Map, Value};
use std::fmt;

/// The kind of a field error; `as_str` gives Kubernetes' StatusCause reason
/// (`FieldValueRequired` …) and `type_str` the human text (`Required value` …).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FieldErrorReason {
    NotFound,
    Required,
    Duplicate,
    Invalid,
    NotSupported,
    Forbidden,
    TooLong,
    TooMany,
    Internal,
    TypeInvalid,
}

impl FieldErrorReason {
    /// The `metav1.CauseType` string, e.g. `FieldValueRequired`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::NotFound => "FieldValueNotFound",
            Self::Required => "FieldValueRequired",
            Self::Duplicate => "FieldValueDuplicate",
            Self::Invalid => "FieldValueInvalid",
            Self::NotSupported => "FieldValueNotSupported",
            Self::Forbidden => "FieldValueForbidden",
            Self::TooLong => "FieldValueTooLong",
            Self::TooMany => "FieldValueTooMany",
            Self::Internal => "InternalError",
            Self::TypeInvalid => "FieldValueTypeInvalid",
        }
    }

    /// The text Kubernetes puts in front of the detail, e.g. `Required value`.
    pub fn type_str(self) -> &'static str {
        match self {
            Self::NotFound => "Not found",
            Self::Required => "Required value",
            Self::Duplicate => "Duplicate value",
            Self::Invalid | Self::TypeInvalid => "Invalid value",
            Self::NotSupported => "Unsupported value",
            Self::Forbidden => "Forbidden",
            Self::TooLong => "Too long",
            Self::TooMany => "Too many",
            Self::Internal => "Internal error",
        }
    }
}

impl fmt::Display for FieldErrorReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One validation error. `message` is Kubernetes' `ErrorBody()` (what goes in a
/// StatusCause's `message`); `Display` renders `field: message` like `field.Error`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub field: String,
    pub reason: FieldErrorReason,
    pub message: String,
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

impl std::error::Error for FieldError {}

/// A "bad value" as Go's field errors render it.
#[derive(Debug, Clone, PartialEq)]
pub enum Bad {
    /// rendered with Go's `%q`
    Str(String),
    /// rendered verbatim (numbers, bools, Go-like struct dumps)
    Raw(String),
}

impl From<&str> for Bad {
    fn from(s: &str) -> Self {
        Bad::Str(s.to_string())
    }
}
impl From<String> for Bad {
    fn from(s: String) -> Self {
        Bad::Str(s)
    }
}
impl From<&String> for Bad {
    fn from(s: &String) -> Self {
        Bad::Str(s.clone())
    }
}
impl From<i64> for Bad {
    fn from(v: i64) -> Self {
        Bad::Raw(v.to_string())
    }
}
impl From<bool> for Bad {
    fn from(v: bool) -> Self {
        Bad::Raw(v.to_string())
    }
}
impl From<&Value> for Bad {
    fn from(v: &Value) -> Self {
        match v {
            Value::String(s) => Bad::Str(s.clone()),
            Value::Null => Bad::Raw("null".into()),
            other => Bad::Raw(other.to_string()),
        }
    }
}

impl Bad {
    fn render(&self) -> String {
        match self {
            Bad::Str(s) => go_quote(s),
            Bad::Raw(s) => s.clone(),
        }
    }

    /// Go's `%#v` of a `map[string]string` (keys sorted), e.g. `map[string]string{"app":"x"}`.
    pub fn string_map(v: Option<&Value>) -> Bad {
        match v.and_then(Value::as_object) {
            None => Bad::Raw("map[string]string(nil)".into()),
            Some(m) => Bad::Raw(format!("map[string]string{{{}}}", go_map_body(m))),
        }
    }

    /// Go's `%#v` of a `[]string`, e.g. `[]string{"a", "b"}`.
    pub fn string_list(items: &[String]) -> Bad {
        let parts: Vec<String> = items.iter().map(|s| go_quote(s)).collect();
        Bad::Raw(format!("[]string{{{}}}", parts.join(", ")))
    }

    /// Go's `%#v` of a `*metav1.LabelSelector`.
    pub fn label_selector(v: Option<&Value>) -> Bad {
        let Some(sel) = v.filter(|v| !v.is_null()) else {
            return Bad::Raw("null".into());
        };
        let ml = match sel.get("matchLabels").and_then(Value::as_object) {
            Some(m) => format!("map[string]string{{{}}}", go_map_body(m)),
            None => "map[string]string(nil)".into(),
        };
        let me = match sel.get("matchExpressions").and_then(Value::as_array) {
            Some(a) => {
                let items: Vec<String> = a
                    .iter()
                    .map(|e| {
                        let vals = match e.get("values").and_then(Value::as_array) {
                            Some(v) => {
                                let q: Vec<String> =
                                    v.iter().filter_map(Value::as_str).map(go_quote).collect();
                                format!("[]string{{{}}}", q.join(", "))
                            }
                            None => "[]string(nil)".into(),
                        };
                        format!(
                            "v1.LabelSelectorRequirement{{Key:{}, Operator:{}, Values:{vals}}}",
                            go_quote(str_of(e, "key")),
                            go_quote(str_of(e, "operator")),
                        )
                    })
                    .collect();
                format!("[]v1.LabelSelectorRequirement{{{}}}", items.join(", "))
            }
            None => "[]v1.LabelSelectorRequirement(nil)".into(),
        };
        Bad::Raw(format!(
            "v1.LabelSelector{{MatchLabels:{ml}, MatchExpressions:{me}}}"
        ))
    }
}

fn str_of<'a>(v: &'a Value, k: &str) -> &'a str {
    v.get(k).and_then(Value::as_str).unwrap_or("")
}

fn go_map_body(m: &Map<String, Value>) -> String {
    let mut keys: Vec<&String> = m.keys().collect();
    keys.sort();
    keys.iter()
        .map(|k| {
            let v = match m.get(k.as_str()) {
                Some(Value::String(s)) => go_quote(s),
                Some(other) => go_quote(&other.to_string()),
                None => go_quote(""),
            };
            format!("{}:{}", go_quote(k), v)
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// Go's `strconv.Quote`.
pub fn go_quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            '\u{7}' => out.push_str("\\a"),
            '\u{8}' => out.push_str("\\b"),
            '\u{c}' => out.push_str("\\f"),
            '\u{b}' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c if c.is_control() => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

impl FieldError {
    fn new(field: &str, reason: FieldErrorReason, body: String) -> Self {
        FieldError {
            field: field.to_string(),
            reason,
            message: body,
        }
    }

    fn with_detail(mut body: String, detail: &str) -> String {
        if !detail.is_empty() {
            body.push_str(": ");
            body.push_str(detail);
        }
        body
    }

    /// `field.Required(path, detail)`
    pub fn required(field: &str, detail: &str) -> Self {
        let body = Self::with_detail(FieldErrorReason::Required.type_str().into(), detail);
        Self::new(field, FieldErrorReason::Required, body)
    }

    /// `field.Invalid(path, value, detail)`
    pub fn invalid(field: &str, value: impl Into<Bad>, detail: &str) -> Self {
        let body = format!(
            "{}: {}",
            FieldErrorReason::Invalid.type_str(),
            value.into().render()
        );
        Self::new(
            field,
            FieldErrorReason::Invalid,
            Self::with_detail(body, detail),
        )
    }

    /// `field.NotSupported(path, value, validValues)`
    pub fn not_supported(field: &str, value: impl Into<Bad>, valid: &[&str]) -> Self {
        let body = format!(
            "{}: {}",
            FieldErrorReason::NotSupported.type_str(),
            value.into().render()
        );
        let detail = if valid.is_empty() {
            String::new()
        } else {
            let q: Vec<String> = valid.iter().map(|v| go_quote(v)).collect();
            format!("supported values: {}", q.join(", "))
        };
        Self::new(
            field,
            FieldErrorReason::NotSupported,
            Self::with_detail(body, &detail),
        )
    }

    /// `field.Duplicate(path, value)`
    pub fn duplicate(field: &str, value: impl Into<Bad>) -> Self {
        let body = format!(
            "{}: {}",
            FieldErrorReason::Duplicate.type_str(),
            value.into().render()
        );
        Self::new(field, FieldErrorReason::Duplicate, body)
    }

    /// `field.NotFound(path, value)`
    pub fn not_found(field: &str, value: impl Into<Bad>) -> Self {
        let body = format!(
            "{}: {}",
            FieldErrorReason::NotFound.type_str(),
            value.into().render()
        );
        Self::new(field, FieldErrorReason::NotFound, body)
    }

    /// `field.Forbidden(path, detail)`
    pub fn forbidden(field: &str, detail: &str) -> Self {
        let body = Self::with_detail(FieldErrorReason::Forbidden.type_str().into(), detail);
        Self::new(field, FieldErrorReason::Forbidden, body)
    }

    /// `field.TooLong(path, value, max)` (value omitted, as Kubernetes does).
    pub fn too_long(field: &str, max: usize) -> Self {
        let unit = if max == 1 { "byte" } else { "bytes" };
        let body = format!(
            "{}: must have at most {max} {unit}",
            FieldErrorReason::TooLong.type_str()
        );
        Self::new(field, FieldErrorReason::TooLong, body)
    }

    /// `field.TooMany(path, actual, max)`
    pub fn too_many(field: &str, actual: usize, max: usize) -> Self {
        let body = format!(
            "{}: {actual}: must have at most {max} items",
            FieldErrorReason::TooMany.type_str()
        );
        Self::new(field, FieldErrorReason::TooMany, body)
    }

    /// The `metav1.StatusCause` JSON for this error.
    pub fn to_cause(&self) -> Value {
        json!({"reason": self.reason.as_str(), "message": self.message, "field": self.field})
    }
}

/// `schema.GroupKind.String()` for the kinds this crate knows, e.g. `Deployment.apps`.
pub fn group_kind(kind: &str) -> String {
    match crate::api::admission::kinds::group_of(kind) {
        Some("") | None => kind.to_string(),
        Some(g) => format!("{kind}.{g}"),
    }
}

/// Kubernetes' `errors.NewInvalid(...).Error()` message:
/// `Deployment.apps "web" is invalid: [a, b]` (or without brackets for one error).
pub fn invalid_message(kind: &str, name: &str, errs: &[FieldError]) -> String {
    let gk = group_kind(kind);
    let mut msgs: Vec<String> = Vec::new();
    for e in errs {
        let s = e.to_string();
        if !msgs.contains(&s) {
            msgs.push(s);
        }
    }
    match msgs.len() {
        0 => format!("{gk} {} is invalid", go_quote(name)),
        1 => format!("{gk} {} is invalid: {}", go_quote(name), msgs[0]),
        _ => format!("{gk} {} is invalid: [{}]", go_quote(name), msgs.join(", ")),
    }
}

/// A full `metav1.Status` (422 Invalid) for validation errors.
pub fn invalid_status(kind: &str, name: &str, errs: &[FieldError]) -> Value {
    let group = crate::api::admission::kinds::group_of(kind).unwrap_or("");
    let causes: Vec<Value> = errs.iter().map(FieldError::to_cause).collect();
    json!({
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": invalid_message(kind, name, errs),
        "reason": "Invalid",
        "details": {"name": name, "group": group, "kind": kind, "causes": causes},
        "code": 422
    })
}

/// Path helpers (`field.Path`): `child("spec", "replicas")` → `spec.replicas`.
pub fn child(parent: &str, name: &str) -> String {
    if parent.is_empty() {
        name.to_string()
    } else {
        format!("{parent}.{name}")
    }
}

/// `spec.containers` + 0 → `spec.containers[0]`
pub fn index(parent: &str, i: usize) -> String {
    format!("{parent}[{i}]")
}

/// `data` + `a.b` → `data[a.b]`
pub fn key(parent: &str, k: &str) -> String {
    format!("{parent}[{k}]")
}
