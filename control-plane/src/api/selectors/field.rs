use super::SelectorError;
use serde_json::Value;
use std::fmt;

/// Field selector operators (`=` and `==` are equivalent).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FieldOperator {
    Equals,
    NotEquals,
}

/// One `field=value` / `field!=value` term (value unescaped).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldRequirement {
    pub field: String,
    pub operator: FieldOperator,
    pub value: String,
}

/// A parsed field selector; empty matches everything.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct FieldSelector {
    requirements: Vec<FieldRequirement>,
}

/// Splits on unescaped commas, keeping escapes in the terms (`splitTerms`).
fn split_terms(s: &str) -> Vec<&str> {
    if s.is_empty() {
        return Vec::new();
    }
    let mut terms = Vec::new();
    let mut start = 0;
    let mut in_slash = false;
    for (i, c) in s.char_indices() {
        if in_slash {
            in_slash = false;
        } else if c == '\\' {
            in_slash = true;
        } else if c == ',' {
            terms.push(&s[start..i]);
            start = i + 1;
        }
    }
    terms.push(&s[start..]);
    terms
}

/// `splitTerm`: first occurrence of `!=`, `==` or `=`.
fn split_term(term: &str) -> Option<(&str, FieldOperator, &str)> {
    for (i, _) in term.char_indices() {
        let rest = &term[i..];
        for (op, kind) in [
            ("!=", FieldOperator::NotEquals),
            ("==", FieldOperator::Equals),
            ("=", FieldOperator::Equals),
        ] {
            if let Some(rhs) = rest.strip_prefix(op) {
                return Some((&term[..i], kind, rhs));
            }
        }
    }
    None
}

/// `fields.UnescapeValue`
fn unescape_value(s: &str) -> Result<String, SelectorError> {
    let mut out = String::with_capacity(s.len());
    let mut in_slash = false;
    for c in s.chars() {
        if in_slash {
            match c {
                '\\' | ',' | '=' => out.push(c),
                _ => {
                    return Err(SelectorError::Invalid(format!(
                        "invalid escape sequence: \\{c}"
                    )))
                }
            }
            in_slash = false;
            continue;
        }
        match c {
            '\\' => in_slash = true,
            ',' | '=' => {
                return Err(SelectorError::Invalid(format!(
                    "invalid field selector: unescaped character: {c}"
                )))
            }
            _ => out.push(c),
        }
    }
    if in_slash {
        return Err(SelectorError::Invalid(
            "invalid escape sequence: \\".to_string(),
        ));
    }
    Ok(out)
}

/// `fields.EscapeValue`
pub fn escape_value(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if matches!(c, '\\' | ',' | '=') {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

const COMMON: &[&str] = &["metadata.name", "metadata.namespace"];

/// Fields (besides `metadata.name`/`metadata.namespace`) each kind supports.
fn kind_fields(kind: &str) -> &'static [&'static str] {
    match kind {
        "Pod" => &[
            "spec.nodeName",
            "spec.restartPolicy",
            "spec.schedulerName",
            "spec.serviceAccountName",
            "spec.hostNetwork",
            "status.phase",
            "status.podIP",
            "status.nominatedNodeName",
        ],
        "Event" => &[
            "involvedObject.kind",
            "involvedObject.namespace",
            "involvedObject.name",
            "involvedObject.uid",
            "involvedObject.apiVersion",
            "involvedObject.resourceVersion",
            "involvedObject.fieldPath",
            "reason",
            "reportingComponent",
            "source",
            "type",
        ],
        "Secret" => &["type"],
        "Node" => &["spec.unschedulable"],
        "Namespace" => &["status.phase"],
        "Job" => &["status.successful"],
        "ReplicaSet" => &["status.replicas"],
        "Service" => &["spec.clusterIP", "spec.type"],
        _ => &[],
    }
}

/// The string value a field has on an object for selector matching. Absent
/// fields are `""`, except counters (`"0"`) and booleans (`"false"`).
pub fn field_value(kind: &str, obj: &Value, field: &str) -> String {
    let path: &str = match (kind, field) {
        ("Event", "source") => "source.component",
        ("Event", "reportingComponent") => "reportingController",
        ("Job", "status.successful") => "status.succeeded",
        _ => field,
    };
    let mut cur = Some(obj);
    for part in path.split('.') {
        cur = cur.and_then(|c| c.get(part));
    }
    if kind == "Pod" && field == "status.podIP" {
        // Kubernetes uses status.podIPs[0].ip (which mirrors status.podIP).
        if let Some(ip) = obj.pointer("/status/podIPs/0/ip") {
            cur = Some(ip);
        }
    }
    match cur {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Bool(b)) => b.to_string(),
        Some(Value::Number(n)) => n.to_string(),
        Some(Value::Null) | None => match (kind, field) {
            ("Node", "spec.unschedulable") | ("Pod", "spec.hostNetwork") => "false".into(),
            ("Job", "status.successful") | ("ReplicaSet", "status.replicas") => "0".into(),
            _ => String::new(),
        },
        Some(other) => other.to_string(),
    }
}

impl FieldSelector {
    /// `fields.ParseSelector`
    pub fn parse(s: &str) -> Result<Self, SelectorError> {
        let mut parts = split_terms(s);
        parts.sort_unstable();
        let mut requirements = Vec::new();
        for part in parts {
            if part.is_empty() {
                continue;
            }
            let Some((lhs, op, rhs)) = split_term(part) else {
                return Err(SelectorError::Invalid(format!(
                    "invalid selector: '{s}'; can't understand '{part}'"
                )));
            };
            requirements.push(FieldRequirement {
                field: lhs.trim().to_string(),
                operator: op,
                value: unescape_value(rhs)?,
            });
        }
        Ok(FieldSelector { requirements })
    }

    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }

    pub fn requirements(&self) -> &[FieldRequirement] {
        &self.requirements
    }

    /// The value required by an `=` term on `field`, if any (handy for
    /// indexed lookups such as `spec.nodeName=`).
    pub fn required_value(&self, field: &str) -> Option<&str> {
        self.requirements
            .iter()
            .find(|r| r.field == field && r.operator == FieldOperator::Equals)
            .map(|r| r.value.as_str())
    }

    /// Checks every field is supported for `kind`; the error is
    /// `field label not supported: <field>` like Kubernetes.
    pub fn validate_for(&self, kind: &str) -> Result<(), SelectorError> {
        for r in &self.requirements {
            let f = r.field.as_str();
            if !COMMON.contains(&f) && !kind_fields(kind).contains(&f) {
                return Err(SelectorError::UnsupportedField(r.field.clone()));
            }
        }
        Ok(())
    }

    /// Matches an object, taking its kind from its `kind` field.
    pub fn matches(&self, obj: &Value) -> bool {
        let kind = obj.get("kind").and_then(Value::as_str).unwrap_or("");
        self.matches_kind(kind, obj)
    }

    /// Matches an object of a given kind.
    pub fn matches_kind(&self, kind: &str, obj: &Value) -> bool {
        self.requirements.iter().all(|r| {
            let v = field_value(kind, obj, &r.field);
            match r.operator {
                FieldOperator::Equals => v == r.value,
                FieldOperator::NotEquals => v != r.value,
            }
        })
    }
}

impl fmt::Display for FieldSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self
            .requirements
            .iter()
            .map(|r| {
                let op = match r.operator {
                    FieldOperator::Equals => "=",
                    FieldOperator::NotEquals => "!=",
                };
                format!("{}{op}{}", r.field, escape_value(&r.value))
            })
            .collect();
        f.write_str(&parts.join(","))
    }
}
