//! Kubernetes strategic merge patch (`application/strategic-merge-patch+json`).
//!
//! A port of the apply half of k8s.io/apimachinery/pkg/util/strategicpatch
//! as the API server runs it (`MergeParallelList` and `IgnoreUnmatchedNulls`
//! both on), driven by the static schema in [`super::strategic_schema`].

use serde_json::{Map, Value};

use super::strategic_schema::{schema_for_kind, FieldSchema, ListStrategy, TypeSchema};

use list::{apply_set_element_order, delete_from_primitive_list, merge_list_field};

const DIRECTIVE: &str = "$patch";
const RETAIN_KEYS: &str = "$retainKeys";
const SET_ORDER_PREFIX: &str = "$setElementOrder";
const DELETE_PRIMITIVE_PREFIX: &str = "$deleteFromPrimitiveList";
/// Maximum nesting (object keys plus list indices) of a patch.
const MAX_DEPTH: usize = 200;

/// A malformed patch (or a patch that cannot apply to the original). Every
/// variant with a `path` names the offending location, e.g.
/// `spec.template.spec.containers[2]`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum StrategicMergeError {
    #[error("patch must be a JSON object, got {found}")]
    PatchNotObject { found: &'static str },
    #[error("original object must be a JSON object, got {found}")]
    OriginalNotObject { found: &'static str },
    #[error(
        "{path}: unknown $patch directive {value} (expected \"replace\", \"delete\" or \"merge\")"
    )]
    UnknownPatchDirective { path: String, value: String },
    #[error("{path}: missing merge key \"{key}\"")]
    MissingMergeKey { path: String, key: String },
    #[error("{path}: {directive} must be a list, got {found}")]
    DirectiveNotList {
        path: String,
        directive: String,
        found: &'static str,
    },
    #[error("{path}: malformed directive key \"{key}\" (expected \"<directive>/<field>\")")]
    InvalidDirectiveKey { path: String, key: String },
    #[error("{path}: field \"{field}\" is set by the patch but not listed in $retainKeys")]
    RetainKeysMismatch { path: String, field: String },
    #[error("{path}: the order of the patch list does not match its $setElementOrder list")]
    SetElementOrderMismatch { path: String },
    #[error("{path}: expected {expected}, got {found}")]
    TypeMismatch {
        path: String,
        expected: &'static str,
        found: &'static str,
    },
    #[error("{path}: list elements must all have the same type, found {first} and {other}")]
    MixedListElements {
        path: String,
        first: &'static str,
        other: &'static str,
    },
    #[error("{path}: lists of lists cannot be merged")]
    ListOfLists { path: String },
    #[error("{path}: cannot merge a list of objects without a merge key")]
    NoMergeKey { path: String },
    #[error("{path}: list merged by key \"{key}\" must contain only objects")]
    PrimitivesInKeyedList { path: String, key: String },
    #[error("{path}: $deleteFromPrimitiveList applies only to lists of primitive values")]
    DeleteFromNonPrimitiveList { path: String },
    #[error("{path}: patch is nested deeper than {max} levels")]
    TooDeep { path: String, max: usize },
}

type Result<T> = std::result::Result<T, StrategicMergeError>;
type Object = Map<String, Value>;

/// Applies a strategic merge patch to `original`, an object of the given
/// Kind. Kinds without a built-in schema merge maps recursively and replace
/// every list atomically.
pub fn strategic_merge(original: &Value, patch: &Value, kind: &str) -> Result<Value> {
    strategic_merge_with_schema(original, patch, schema_for_kind(kind))
}

/// Like [`strategic_merge`], with an explicit root schema (`None`: no
/// schema, i.e. map merge and atomic lists everywhere).
pub fn strategic_merge_with_schema(
    original: &Value,
    patch: &Value,
    schema: Option<&'static TypeSchema>,
) -> Result<Value> {
    let patch = match patch {
        Value::Object(p) => p,
        other => {
            return Err(StrategicMergeError::PatchNotObject {
                found: kind_name(other),
            })
        }
    };
    let original = match original {
        Value::Object(o) => o.clone(),
        Value::Null => Object::new(),
        other => {
            return Err(StrategicMergeError::OriginalNotObject {
                found: kind_name(other),
            })
        }
    };
    merge_map(original, patch, schema, &Path::ROOT).map(Value::Object)
}

// ---------------------------------------------------------------- paths

#[derive(Clone, Copy)]
enum Segment<'a> {
    Root,
    Key(&'a str),
    Index(usize),
}

/// A field path, kept as a stack-allocated linked list and rendered only
/// when an error is reported.
#[derive(Clone, Copy)]
struct Path<'a> {
    parent: Option<&'a Path<'a>>,
    segment: Segment<'a>,
    depth: usize,
}

impl<'a> Path<'a> {
    const ROOT: Path<'static> = Path {
        parent: None,
        segment: Segment::Root,
        depth: 0,
    };

    fn key<'b>(&'b self, key: &'b str) -> Path<'b> {
        Path {
            parent: Some(self),
            segment: Segment::Key(key),
            depth: self.depth + 1,
        }
    }

    fn index(&self, index: usize) -> Path<'_> {
        Path {
            parent: Some(self),
            segment: Segment::Index(index),
            depth: self.depth + 1,
        }
    }

    fn render(&self) -> String {
        let mut segments = Vec::with_capacity(self.depth);
        let mut current = Some(self);
        while let Some(path) = current {
            segments.push(path.segment);
            current = path.parent;
        }
        let mut out = String::new();
        for segment in segments.iter().rev() {
            match segment {
                Segment::Root => {}
                Segment::Key(key) if out.is_empty() => out.push_str(key),
                Segment::Key(key) => {
                    out.push('.');
                    out.push_str(key);
                }
                Segment::Index(index) => out.push_str(&format!("[{index}]")),
            }
        }
        if out.is_empty() {
            out.push_str("(root)");
        }
        out
    }

    fn check_depth(&self) -> Result<()> {
        if self.depth > MAX_DEPTH {
            return Err(StrategicMergeError::TooDeep {
                path: self.render(),
                max: MAX_DEPTH,
            });
        }
        Ok(())
    }
}

// ---------------------------------------------------------------- helpers

#[derive(Clone, Copy, PartialEq, Eq)]
enum Directive {
    Replace,
    Delete,
    Merge,
}

fn parse_directive(value: &Value, path: &Path) -> Result<Directive> {
    match value.as_str() {
        Some("replace") => Ok(Directive::Replace),
        Some("delete") => Ok(Directive::Delete),
        Some("merge") => Ok(Directive::Merge),
        _ => Err(StrategicMergeError::UnknownPatchDirective {
            path: path.render(),
            value: value.to_string(),
        }),
    }
}

fn kind_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "list",
        Value::Object(_) => "object",
    }
}

fn same_kind(a: &Value, b: &Value) -> bool {
    std::mem::discriminant(a) == std::mem::discriminant(b)
}

/// JSON equality with Go's `float64` semantics for numbers (`80 == 80.0`).
fn json_eq(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) if x != y => {
            (x.is_f64() || y.is_f64()) && x.as_f64().is_some() && x.as_f64() == y.as_f64()
        }
        _ => a == b,
    }
}

fn is_directive_key(key: &str) -> bool {
    key == DIRECTIVE
        || key == RETAIN_KEYS
        || key.starts_with(SET_ORDER_PREFIX)
        || key.starts_with(DELETE_PRIMITIVE_PREFIX)
}

/// `$setElementOrder/containers` -> `containers`.
fn directive_field<'k>(key: &'k str, prefix: &str, path: &Path) -> Result<&'k str> {
    match key.split_once('/') {
        Some((head, field)) if head == prefix && !field.is_empty() => Ok(field),
        _ => Err(StrategicMergeError::InvalidDirectiveKey {
            path: path.render(),
            key: key.to_string(),
        }),
    }
}

fn lookup(schema: Option<&'static TypeSchema>, field: &str) -> FieldSchema {
    schema
        .and_then(|s| s.field(field))
        .copied()
        .unwrap_or(FieldSchema::UNKNOWN)
}

// ---------------------------------------------------------------- maps

fn merge_map(
    original: Object,
    patch: &Object,
    schema: Option<&'static TypeSchema>,
    path: &Path,
) -> Result<Object> {
    path.check_depth()?;
    if let Some(directive) = patch.get(DIRECTIVE) {
        match parse_directive(directive, &path.key(DIRECTIVE))? {
            Directive::Delete => return Ok(Object::new()),
            Directive::Replace => return merge_map_body(Object::new(), patch, schema, path),
            // Kubernetes rejects `$patch: merge` on maps; it is the default,
            // so it is accepted here as a no-op.
            Directive::Merge => {}
        }
    }
    merge_map_body(original, patch, schema, path)
}

fn merge_map_body(
    mut original: Object,
    patch: &Object,
    schema: Option<&'static TypeSchema>,
    path: &Path,
) -> Result<Object> {
    if let Some(retain) = patch.get(RETAIN_KEYS) {
        apply_retain_keys(&mut original, patch, retain, path)?;
    }

    // `$setElementOrder/<field>` together with the field's patch list.
    let mut ordered_fields: Vec<&str> = Vec::new();
    for (key, order) in patch {
        if key.starts_with(SET_ORDER_PREFIX) {
            let field = directive_field(key, SET_ORDER_PREFIX, path)?;
            if apply_set_element_order(&mut original, patch, key, field, order, schema, path)? {
                ordered_fields.push(field);
            }
        }
    }

    for (key, patch_value) in patch {
        if is_directive_key(key) || ordered_fields.contains(&key.as_str()) {
            continue;
        }
        if patch_value.is_null() {
            original.remove(key);
            continue;
        }
        let field = lookup(schema, key);
        let field_path = path.key(key);
        let merged = match original.get_mut(key) {
            Some(slot) => merge_value(std::mem::take(slot), patch_value, field, &field_path)?,
            None => new_value(patch_value, field, &field_path)?,
        };
        match merged {
            Some(value) => {
                original.insert(key.clone(), value);
            }
            None => {
                original.remove(key);
            }
        }
    }

    // Parallel deletion lists last, after additions to the same list.
    for (key, deletions) in patch {
        if key.starts_with(DELETE_PRIMITIVE_PREFIX) {
            let field = directive_field(key, DELETE_PRIMITIVE_PREFIX, path)?;
            delete_from_primitive_list(&mut original, key, field, deletions, path)?;
        }
    }
    Ok(original)
}

fn apply_retain_keys(
    original: &mut Object,
    patch: &Object,
    retain: &Value,
    path: &Path,
) -> Result<()> {
    let retain = retain
        .as_array()
        .ok_or_else(|| StrategicMergeError::DirectiveNotList {
            path: path.render(),
            directive: RETAIN_KEYS.to_string(),
            found: kind_name(retain),
        })?;
    let kept = |key: &str| retain.iter().any(|k| k.as_str() == Some(key));
    if let Some((field, _)) = patch
        .iter()
        .find(|(k, v)| !v.is_null() && !is_directive_key(k) && !kept(k))
    {
        return Err(StrategicMergeError::RetainKeysMismatch {
            path: path.render(),
            field: field.clone(),
        });
    }
    let dropped: Vec<String> = original.keys().filter(|k| !kept(k)).cloned().collect();
    for key in dropped {
        original.remove(&key);
    }
    Ok(())
}

/// Merges `patch_value` into an existing value. `None` removes the key.
fn merge_value(
    original: Value,
    patch_value: &Value,
    field: FieldSchema,
    path: &Path,
) -> Result<Option<Value>> {
    if !same_kind(&original, patch_value) {
        return new_value(patch_value, field, path);
    }
    Ok(Some(match (original, patch_value) {
        (Value::Object(o), Value::Object(p)) => Value::Object(merge_map(o, p, field.child, path)?),
        (Value::Array(o), Value::Array(p)) => Value::Array(merge_list_field(o, p, field, path)?),
        (_, scalar) => scalar.clone(),
    }))
}

/// A patch value for a key the original lacks: directives are applied (to
/// nothing) and nulls dropped, so no directive reaches the result. A map
/// carrying `$patch: delete` yields nothing at all.
fn new_value(patch_value: &Value, field: FieldSchema, path: &Path) -> Result<Option<Value>> {
    Ok(match patch_value {
        Value::Null => None,
        Value::Object(p) => {
            if let Some(directive) = p.get(DIRECTIVE) {
                if parse_directive(directive, &path.key(DIRECTIVE))? == Directive::Delete {
                    return Ok(None);
                }
            }
            Some(Value::Object(merge_map(
                Object::new(),
                p,
                field.child,
                path,
            )?))
        }
        Value::Array(p) => Some(Value::Array(merge_list_field(Vec::new(), p, field, path)?)),
        scalar => Some(scalar.clone()),
    })
}

mod list;

#[cfg(test)]
mod tests;
