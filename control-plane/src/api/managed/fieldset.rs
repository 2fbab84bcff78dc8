//! Field sets as server-side apply tracks them: a tree of path elements whose members are
//! the fields a manager owns, read from and written to the `FieldsV1` JSON form.
//!
//! A path element is kept in its `FieldsV1` spelling, which is also its identity:
//! `f:<field>` (a field of a map or struct), `k:{"name":"web"}` (an element of a list
//! merged by key; the keys as canonical JSON), `v:"value"` (an element of a set list) and
//! `i:<index>` (read only). A node is a *member* when the manager owns the field itself:
//! written as `{}` for a leaf and as the `".": {}` entry beside its children otherwise.

use std::collections::BTreeMap;

use serde_json::{Map, Value};

pub use super::shape::Shape;
use super::shape::{Keys, ListKind};

/// A FieldsV1 document that is not a tree of `f:`/`k:`/`v:`/`i:` keys.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum FieldSetError {
    #[error("fieldsV1 must be a JSON object of path elements, found {0}")]
    NotAnObject(&'static str),
    #[error("fieldsV1 has an unknown path element {0:?} (expected f:, k:, v:, i: or .)")]
    BadElement(String),
    #[error("{path}: element of a list merged by {key:?} has no {key:?}")]
    MissingKey { path: String, key: String },
}

/// One node of a field set.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct FieldSet {
    pub member: bool,
    pub children: BTreeMap<String, FieldSet>,
}

pub fn field_key(name: &str) -> String {
    format!("f:{name}")
}

fn value_key(v: &Value) -> String {
    format!("v:{v}")
}

/// The `k:` element of a list item merged by `keys` (every key field it has).
pub fn item_key(item: &Value, keys: Keys, path: &str) -> Result<String, FieldSetError> {
    let mut m = Map::new();
    for k in keys.names() {
        if let Some(v) = item.get(k) {
            m.insert(k.to_string(), v.clone());
        }
    }
    if m.is_empty() {
        return Err(FieldSetError::MissingKey {
            path: path.to_string(),
            key: keys.names().join(", "),
        });
    }
    Ok(format!("k:{}", Value::Object(m)))
}

impl FieldSet {
    pub fn leaf() -> FieldSet {
        FieldSet {
            member: true,
            children: BTreeMap::new(),
        }
    }

    pub fn is_empty(&self) -> bool {
        !self.member && self.children.is_empty()
    }

    /// Parses `fieldsV1`.
    pub fn from_fields_v1(v: &Value) -> Result<FieldSet, FieldSetError> {
        let Value::Object(m) = v else {
            return Err(FieldSetError::NotAnObject(kind_name(v)));
        };
        let mut set = FieldSet::default();
        if m.is_empty() {
            set.member = true;
            return Ok(set);
        }
        for (k, child) in m {
            if k == "." {
                set.member = true;
                continue;
            }
            if !["f:", "k:", "v:", "i:"].iter().any(|p| k.starts_with(p)) {
                return Err(FieldSetError::BadElement(k.clone()));
            }
            set.children
                .insert(k.clone(), FieldSet::from_fields_v1(child)?);
        }
        Ok(set)
    }

    /// The `fieldsV1` form.
    pub fn to_fields_v1(&self) -> Value {
        let mut m = Map::new();
        if self.member && !self.children.is_empty() {
            m.insert(".".into(), Value::Object(Map::new()));
        }
        for (k, child) in &self.children {
            if !child.is_empty() {
                m.insert(k.clone(), child.to_fields_v1());
            }
        }
        Value::Object(m)
    }

    /// Every path of `other` becomes (or stays) part of `self`.
    pub fn union(&mut self, other: &FieldSet) {
        self.member |= other.member;
        for (k, child) in &other.children {
            self.children.entry(k.clone()).or_default().union(child);
        }
    }

    /// Removes every member of `other` from `self`, with all that `self` holds below it
    /// (a field replaced or removed as a whole takes its parts with it).
    pub fn remove_subtrees(&mut self, other: &FieldSet) {
        if other.member {
            self.member = false;
            self.children.clear();
            return;
        }
        for (k, child) in &other.children {
            if let Some(mine) = self.children.get_mut(k) {
                mine.remove_subtrees(child);
                if mine.is_empty() {
                    self.children.remove(k);
                }
            }
        }
    }

    /// Removes the members of `other` from `self`, keeping what lies below them.
    pub fn difference(&mut self, other: &FieldSet) {
        if other.member {
            self.member = false;
        }
        for (k, child) in &other.children {
            if let Some(mine) = self.children.get_mut(k) {
                mine.difference(child);
                if mine.is_empty() {
                    self.children.remove(k);
                }
            }
        }
    }

    /// Whether `self` holds a member at or below the path `at`.
    pub fn has_member_within(&self, at: &[String]) -> bool {
        match at.split_first() {
            None => self.member || self.children.values().any(|c| !c.is_empty()),
            Some((first, rest)) => self
                .children
                .get(first)
                .is_some_and(|c| c.has_member_within(rest)),
        }
    }

    /// The members of `self` that `owned` also holds, at the same path or below it: the
    /// fields a change to `self` would take from `owned`'s manager.
    pub fn overlap(&self, owned: &FieldSet) -> FieldSet {
        let mut out = FieldSet::default();
        if self.member && owned.has_member_within(&[]) {
            return owned.clone();
        }
        for (k, child) in &self.children {
            if let Some(theirs) = owned.children.get(k) {
                let o = child.overlap(theirs);
                if !o.is_empty() {
                    out.children.insert(k.clone(), o);
                }
            }
        }
        out
    }

    /// The member paths, each as its element keys.
    pub fn member_paths(&self) -> Vec<Vec<String>> {
        let mut out = Vec::new();
        self.collect(&mut Vec::new(), &mut out);
        out
    }

    fn collect(&self, prefix: &mut Vec<String>, out: &mut Vec<Vec<String>>) {
        if self.member {
            out.push(prefix.clone());
        }
        for (k, child) in &self.children {
            prefix.push(k.clone());
            child.collect(prefix, out);
            prefix.pop();
        }
    }

    /// The set of every field `value` sets: what a manager applying it owns. Lists merged by
    /// key own each element (`k:`) and its fields; set lists each value; other lists, empty
    /// maps, atomic maps and scalars are leaves.
    pub fn from_value(value: &Value, shape: Shape) -> Result<FieldSet, FieldSetError> {
        from_value_at(value, shape, &mut String::new(), false)
    }
}

/// `added`: the value is new in an update, so its maps and lists are members themselves (an
/// applied configuration owns only what it sets).
fn from_value_at(
    value: &Value,
    shape: Shape,
    path: &mut String,
    added: bool,
) -> Result<FieldSet, FieldSetError> {
    match value {
        Value::Object(m) if !m.is_empty() && !shape.atomic => {
            let mut set = FieldSet::default();
            for (k, v) in m {
                let child_shape = shape.field(k);
                let len = path.len();
                path.push('.');
                path.push_str(k);
                let child = from_value_at(v, child_shape, path, added)?;
                path.truncate(len);
                set.children.insert(field_key(k), child);
            }
            set.member = added && shape.is_map();
            Ok(set)
        }
        Value::Array(items) if !items.is_empty() => match shape.list {
            ListKind::Atomic => Ok(FieldSet::leaf()),
            ListKind::Set => {
                let mut set = FieldSet::default();
                for item in items {
                    set.children.insert(value_key(item), FieldSet::leaf());
                }
                set.member = added;
                Ok(set)
            }
            ListKind::Map(keys) => {
                let mut set = FieldSet::default();
                for item in items {
                    let k = item_key(item, keys, path)?;
                    let mut child = match item {
                        Value::Object(_) => {
                            let len = path.len();
                            path.push_str(&k[2..]);
                            let c = from_value_at(item, shape.element(), path, added)?;
                            path.truncate(len);
                            c
                        }
                        _ => FieldSet::default(),
                    };
                    child.member = true;
                    set.children.insert(k, child);
                }
                set.member = added;
                Ok(set)
            }
        },
        _ => Ok(FieldSet::leaf()),
    }
}

/// The paths where `old` and `new` differ: `changed` holds what `new` adds or sets to a new
/// value (added maps and list elements as members themselves), `removed` what it drops.
pub fn diff(old: &Value, new: &Value, shape: Shape) -> Result<(FieldSet, FieldSet), FieldSetError> {
    let mut changed = FieldSet::default();
    let mut removed = FieldSet::default();
    diff_at(
        old,
        new,
        shape,
        &mut changed,
        &mut removed,
        &mut String::new(),
    )?;
    Ok((changed, removed))
}

/// The fields of a value added whole. The value itself is a member too (`.`) unless it is a
/// struct: Kubernetes owns an added map, list or list element as such, a struct only by its
/// fields.
fn added(new: &Value, shape: Shape, path: &mut String) -> Result<FieldSet, FieldSetError> {
    from_value_at(new, shape, path, true)
}

fn diff_at(
    old: &Value,
    new: &Value,
    shape: Shape,
    changed: &mut FieldSet,
    removed: &mut FieldSet,
    path: &mut String,
) -> Result<(), FieldSetError> {
    if old == new {
        return Ok(());
    }
    match (old, new) {
        // Maps (also the empty ones: a key added to `{}` is that key, not the whole map).
        (Value::Object(a), Value::Object(b)) if !shape.atomic => {
            for (k, nv) in b {
                let child_shape = shape.field(k);
                let len = path.len();
                path.push('.');
                path.push_str(k);
                match a.get(k) {
                    None => {
                        changed
                            .children
                            .insert(field_key(k), added(nv, child_shape, path)?);
                    }
                    Some(ov) => {
                        let mut c = FieldSet::default();
                        let mut r = FieldSet::default();
                        diff_at(ov, nv, child_shape, &mut c, &mut r, path)?;
                        if !c.is_empty() {
                            changed.children.insert(field_key(k), c);
                        }
                        if !r.is_empty() {
                            removed.children.insert(field_key(k), r);
                        }
                    }
                }
                path.truncate(len);
            }
            for k in a.keys().filter(|k| !b.contains_key(*k)) {
                removed.children.insert(field_key(k), FieldSet::leaf());
            }
            Ok(())
        }
        (Value::Array(a), Value::Array(b)) => match shape.list {
            ListKind::Atomic => {
                changed.member = true;
                Ok(())
            }
            ListKind::Set => {
                for v in b.iter().filter(|v| !a.contains(v)) {
                    changed.children.insert(value_key(v), FieldSet::leaf());
                }
                for v in a.iter().filter(|v| !b.contains(v)) {
                    removed.children.insert(value_key(v), FieldSet::leaf());
                }
                Ok(())
            }
            ListKind::Map(keys) => {
                let index = |items: &[Value]| -> Result<BTreeMap<String, Value>, FieldSetError> {
                    items
                        .iter()
                        .map(|i| Ok((item_key(i, keys, path)?, i.clone())))
                        .collect()
                };
                let (ia, ib) = (index(a)?, index(b)?);
                for (k, nv) in &ib {
                    let elem = shape.element();
                    match ia.get(k) {
                        None => {
                            let mut element = added(nv, elem, path)?;
                            element.member = true;
                            changed.children.insert(k.clone(), element);
                        }
                        Some(ov) => {
                            let mut c = FieldSet::default();
                            let mut r = FieldSet::default();
                            diff_at(ov, nv, elem, &mut c, &mut r, path)?;
                            if !c.is_empty() {
                                changed.children.insert(k.clone(), c);
                            }
                            if !r.is_empty() {
                                removed.children.insert(k.clone(), r);
                            }
                        }
                    }
                }
                for k in ia.keys().filter(|k| !ib.contains_key(*k)) {
                    removed.children.insert(k.clone(), FieldSet::leaf());
                }
                Ok(())
            }
        },
        _ => {
            // A scalar, an atomic or an emptied/filled map or list changed as a whole.
            *changed = from_value_at(new, shape, path, true)?;
            changed.member = true;
            Ok(())
        }
    }
}

/// A path as Kubernetes prints it in conflicts: `.spec.containers[name="web"].image`.
pub fn path_string(path: &[String]) -> String {
    let mut s = String::new();
    for el in path {
        if let Some(f) = el.strip_prefix("f:") {
            s.push('.');
            s.push_str(f);
        } else if let Some(k) = el.strip_prefix("k:") {
            match serde_json::from_str::<Map<String, Value>>(k) {
                Ok(m) => {
                    let parts: Vec<String> = m.iter().map(|(k, v)| format!("{k}={v}")).collect();
                    s.push_str(&format!("[{}]", parts.join(",")));
                }
                Err(_) => s.push_str(&format!("[{k}]")),
            }
        } else if let Some(v) = el.strip_prefix("v:") {
            s.push_str(&format!("[={v}]"));
        } else if let Some(i) = el.strip_prefix("i:") {
            s.push_str(&format!("[{i}]"));
        }
    }
    s
}

/// Removes the field at `path` from `value` (a map key, a list element by key or value).
/// Missing paths are no-ops.
pub fn remove_path(value: &mut Value, path: &[String]) {
    let Some((first, rest)) = path.split_first() else {
        return;
    };
    match value {
        Value::Object(m) => {
            let Some(name) = first.strip_prefix("f:") else {
                return;
            };
            if rest.is_empty() {
                m.remove(name);
            } else if let Some(child) = m.get_mut(name) {
                remove_path(child, rest);
            }
        }
        Value::Array(items) => {
            let pos = items.iter().position(|item| element_matches(item, first));
            if let Some(pos) = pos {
                if rest.is_empty() {
                    items.remove(pos);
                } else {
                    remove_path(&mut items[pos], rest);
                }
            }
        }
        _ => {}
    }
}

fn element_matches(item: &Value, el: &str) -> bool {
    if let Some(k) = el.strip_prefix("k:") {
        let Ok(keys) = serde_json::from_str::<Map<String, Value>>(k) else {
            return false;
        };
        keys.iter().all(|(k, v)| item.get(k) == Some(v))
    } else if let Some(v) = el.strip_prefix("v:") {
        serde_json::from_str::<Value>(v).is_ok_and(|v| &v == item)
    } else {
        false
    }
}

fn kind_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}
