//! `metadata.managedFields` and server-side apply, as Kubernetes' field manager keeps them.
//!
//! Every write records which manager set which fields. An *update* (create, PUT, a JSON,
//! merge or strategic patch) gives its manager the fields it changed and takes them from
//! everyone else. An *apply* (`application/apply-patch+yaml`) is a manager's whole intent:
//! it owns exactly the fields of its configuration, fields it owned before and no longer
//! applies are removed from the object unless another manager owns them, and changing a
//! field another manager owns is a conflict (409) unless `force=true` takes it over.
//!
//! Lists merge as the strategic merge schema says (by key, as sets, otherwise atomically);
//! field sets are computed on the version the request speaks.

pub mod fieldset;
pub mod shape;

use serde_json::{json, Map, Value};

use crate::api::object;
use crate::api::patch::strategic_schema::{schema_for_kind, TypeSchema};
use crate::api::status::ApiError;
pub use fieldset::{FieldSet, FieldSetError, Shape};

/// How many `Update` entries an object keeps: older ones are folded into one
/// `ancient-changes` entry, as Kubernetes does, so objects written by many clients do not
/// grow without bound.
pub const DEFAULT_MAX_UPDATE_MANAGERS: usize = 10;

/// The manager name of folded old `Update` entries.
const ANCIENT_CHANGES: &str = "ancient-changes";

#[derive(Debug, thiserror::Error)]
pub enum ManagedError {
    #[error("metadata.managedFields: Invalid value: {0}")]
    BadEntries(String),
    #[error("{0}")]
    BadFields(#[from] FieldSetError),
}

impl From<ManagedError> for ApiError {
    fn from(e: ManagedError) -> ApiError {
        match e {
            ManagedError::BadEntries(_) => ApiError::bad_request(e.to_string()),
            ManagedError::BadFields(f) => ApiError::new(
                http::StatusCode::UNPROCESSABLE_ENTITY,
                "Invalid",
                format!("the object's fields cannot be tracked: {f}"),
            ),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Operation {
    Apply,
    Update,
}

impl Operation {
    fn as_str(self) -> &'static str {
        match self {
            Operation::Apply => "Apply",
            Operation::Update => "Update",
        }
    }
}

/// One `managedFields` entry.
#[derive(Clone, Debug, PartialEq)]
pub struct Entry {
    pub manager: String,
    pub operation: Operation,
    pub api_version: String,
    pub time: Option<String>,
    pub subresource: String,
    pub fields: FieldSet,
}

impl Entry {
    /// Kubernetes' manager identity: an applier is the same manager at every version.
    fn same_manager(&self, manager: &str, op: Operation, api_version: &str, sub: &str) -> bool {
        self.manager == manager
            && self.operation == op
            && self.subresource == sub
            && (op == Operation::Apply || self.api_version == api_version)
    }

    fn encode(&self) -> Value {
        let mut m = Map::new();
        m.insert("manager".into(), json!(self.manager));
        m.insert("operation".into(), json!(self.operation.as_str()));
        m.insert("apiVersion".into(), json!(self.api_version));
        if let Some(t) = &self.time {
            m.insert("time".into(), json!(t));
        }
        m.insert("fieldsType".into(), json!("FieldsV1"));
        m.insert("fieldsV1".into(), self.fields.to_fields_v1());
        if !self.subresource.is_empty() {
            m.insert("subresource".into(), json!(self.subresource));
        }
        Value::Object(m)
    }
}

/// Who is writing, in what version, to which part of the object.
pub struct Writer<'a> {
    pub manager: &'a str,
    pub api_version: &'a str,
    /// `""` for the main resource, `"status"` for the status subresource.
    pub subresource: &'a str,
    pub kind: &'a str,
    /// Whether the kind has a status subresource (then main writes never own `status`).
    pub has_status: bool,
    /// A built-in kind (merged by its Go types' strategies); custom resources merge as
    /// their structural schema says (`custom`; without one, maps by field, lists whole).
    pub builtin: bool,
    pub custom: Option<&'a crate::api::crd::schema::Schema>,
}

impl<'a> Writer<'a> {
    fn schema(&self) -> Option<&'static TypeSchema> {
        if self.builtin {
            schema_for_kind(self.kind)
        } else {
            None
        }
    }

    fn shape(&self) -> Shape<'a> {
        if self.builtin {
            Shape::builtin(self.schema())
        } else {
            Shape::custom(self.custom)
        }
    }

    /// `config` merged into `live`, as apply merges.
    fn merge(&self, live: &Value, config: &Value) -> Result<Value, ApplyError> {
        if self.builtin {
            crate::api::patch::strategic::strategic_merge_with_schema(live, config, self.schema())
                .map_err(|e| ApplyError::Merge(e.to_string()))
        } else {
            Ok(shape::merge(live, config, self.shape()))
        }
    }

    /// The part of an object whose ownership this writer's operation tracks.
    fn tracked(&self, obj: &Value) -> Value {
        let mut v = obj.clone();
        let Some(m) = v.as_object_mut() else {
            return Value::Object(Map::new());
        };
        m.remove("apiVersion");
        m.remove("kind");
        if self.subresource == "status" {
            m.retain(|k, _| k == "status");
        } else if self.has_status {
            m.remove("status");
        }
        if let Some(meta) = m.get_mut("metadata").and_then(Value::as_object_mut) {
            for k in [
                "name",
                "namespace",
                "uid",
                "resourceVersion",
                "generation",
                "creationTimestamp",
                "deletionTimestamp",
                "deletionGracePeriodSeconds",
                "managedFields",
                "selfLink",
            ] {
                meta.remove(k);
            }
            if meta.is_empty() {
                m.remove("metadata");
            }
        }
        v
    }
}

/// An object's managed fields.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct ManagedFields {
    pub entries: Vec<Entry>,
}

impl ManagedFields {
    /// Reads `metadata.managedFields`; entries without fields (`[{}]` resets) are dropped.
    pub fn decode(obj: &Value) -> Result<ManagedFields, ManagedError> {
        let Some(list) = obj.pointer("/metadata/managedFields") else {
            return Ok(ManagedFields::default());
        };
        let Some(list) = list.as_array() else {
            return Err(ManagedError::BadEntries("must be a list".into()));
        };
        let mut entries = Vec::new();
        for (i, e) in list.iter().enumerate() {
            let bad = |what: &str| ManagedError::BadEntries(format!("[{i}]: {what}"));
            let Some(m) = e.as_object() else {
                return Err(bad("must be an object"));
            };
            let text = |k: &str| m.get(k).and_then(Value::as_str).unwrap_or("").to_string();
            let fields = match m.get("fieldsV1") {
                None => continue,
                Some(f) => FieldSet::from_fields_v1(f).map_err(|e| bad(&e.to_string()))?,
            };
            if let Some(t) = m.get("fieldsType").and_then(Value::as_str) {
                if t != "FieldsV1" {
                    return Err(bad(&format!(
                        "fieldsType {t:?} is not supported (only FieldsV1)"
                    )));
                }
            }
            let operation = match text("operation").as_str() {
                "Apply" => Operation::Apply,
                "Update" => Operation::Update,
                other => {
                    return Err(bad(&format!(
                        "operation must be \"Apply\" or \"Update\", not {other:?}"
                    )))
                }
            };
            entries.push(Entry {
                manager: text("manager"),
                operation,
                api_version: text("apiVersion"),
                time: m.get("time").and_then(Value::as_str).map(str::to_string),
                subresource: text("subresource"),
                fields,
            });
        }
        Ok(ManagedFields { entries })
    }

    /// Writes the entries into `obj`'s `metadata.managedFields` (removed when none).
    pub fn encode_into(&self, obj: &mut Value) {
        let meta = object::meta_mut(obj);
        if self.entries.is_empty() {
            meta.remove("managedFields");
        } else {
            let list: Vec<Value> = self.entries.iter().map(Entry::encode).collect();
            meta.insert("managedFields".into(), Value::Array(list));
        }
    }

    fn entry_mut(&mut self, w: &Writer, op: Operation) -> &mut Entry {
        let pos = self
            .entries
            .iter()
            .position(|e| e.same_manager(w.manager, op, w.api_version, w.subresource));
        let pos = match pos {
            Some(p) => p,
            None => {
                self.entries.push(Entry {
                    manager: w.manager.to_string(),
                    operation: op,
                    api_version: w.api_version.to_string(),
                    time: None,
                    subresource: w.subresource.to_string(),
                    fields: FieldSet::default(),
                });
                self.entries.len() - 1
            }
        };
        &mut self.entries[pos]
    }

    fn tidy(&mut self) {
        self.entries.retain(|e| !e.fields.is_empty());
        let updates = self
            .entries
            .iter()
            .filter(|e| e.operation == Operation::Update)
            .count();
        if updates <= DEFAULT_MAX_UPDATE_MANAGERS {
            return;
        }
        // Fold the oldest updates (by time) into one entry.
        let mut idx: Vec<usize> = (0..self.entries.len())
            .filter(|&i| self.entries[i].operation == Operation::Update)
            .collect();
        idx.sort_by(|&a, &b| self.entries[a].time.cmp(&self.entries[b].time));
        let fold: Vec<usize> = idx[..updates - DEFAULT_MAX_UPDATE_MANAGERS + 1].to_vec();
        let mut ancient = FieldSet::default();
        let mut time = None;
        for &i in &fold {
            ancient.union(&self.entries[i].fields);
            time = time.max(self.entries[i].time.clone());
        }
        let api_version = self.entries[fold[0]].api_version.clone();
        let mut i = 0;
        self.entries.retain(|_| {
            i += 1;
            !fold.contains(&(i - 1))
        });
        self.entries.push(Entry {
            manager: ANCIENT_CHANGES.into(),
            operation: Operation::Update,
            api_version,
            time,
            subresource: String::new(),
            fields: ancient,
        });
    }

    /// Records an update from `old` to `new` by `w`: its entry gains the changed fields,
    /// every other entry loses them, and fields `new` drops leave every entry.
    pub fn record_update(
        &mut self,
        w: &Writer,
        old: &Value,
        new: &Value,
    ) -> Result<(), ManagedError> {
        let (changed, removed) = fieldset::diff(&w.tracked(old), &w.tracked(new), w.shape())?;
        for e in &mut self.entries {
            e.fields.remove_subtrees(&removed);
            if !e.same_manager(w.manager, Operation::Update, w.api_version, w.subresource) {
                e.fields.remove_subtrees(&changed);
            }
        }
        if !changed.is_empty() {
            let entry = self.entry_mut(w, Operation::Update);
            entry.fields.union(&changed);
            entry.time = Some(object::now_rfc3339());
        }
        self.tidy();
        Ok(())
    }

    /// Server-side apply of `config` by `w` over `live` (whose managed fields `self` are):
    /// returns the object to store, or the conflicts when another manager owns a field
    /// `config` changes and `force` is off.
    pub fn apply(
        &mut self,
        w: &Writer,
        live: &Value,
        config: &Value,
        force: bool,
    ) -> Result<Result<Value, Conflicts>, ApplyError> {
        let shape = w.shape();
        let config_set = FieldSet::from_value(&w.tracked(config), shape)?;
        let mut merged = w.merge(live, config)?;
        let (changed, _) = fieldset::diff(&w.tracked(live), &w.tracked(&merged), shape)?;

        let mut conflicts = Vec::new();
        for e in &self.entries {
            if e.same_manager(w.manager, Operation::Apply, w.api_version, w.subresource) {
                continue;
            }
            let overlap = changed.overlap(&e.fields);
            if !overlap.is_empty() {
                conflicts.push((e.manager.clone(), e.api_version.clone(), overlap));
            }
        }
        if !conflicts.is_empty() {
            if !force {
                return Ok(Err(Conflicts(
                    conflicts
                        .into_iter()
                        .map(|(m, v, set)| (m, v, set.member_paths()))
                        .collect(),
                )));
            }
            for e in &mut self.entries {
                if !e.same_manager(w.manager, Operation::Apply, w.api_version, w.subresource) {
                    e.fields.remove_subtrees(&changed.overlap(&e.fields));
                }
            }
        }

        // Fields this manager applied before and no longer applies go, unless others own them.
        let own = self
            .entries
            .iter()
            .find(|e| e.same_manager(w.manager, Operation::Apply, w.api_version, w.subresource))
            .map(|e| e.fields.clone())
            .unwrap_or_default();
        let mut others = FieldSet::default();
        for e in &self.entries {
            if !e.same_manager(w.manager, Operation::Apply, w.api_version, w.subresource) {
                others.union(&e.fields);
            }
        }
        let mut dropped = own;
        dropped.difference(&config_set);
        dropped.difference(&others);
        // Shallowest first: a removed element or map takes its fields with it (and its
        // key fields must still be there to find it).
        let mut paths = dropped.member_paths();
        paths.sort_by_key(Vec::len);
        let mut gone: Vec<Vec<String>> = Vec::new();
        for path in paths {
            // A map or list still (partly) applied, or partly another's, stays.
            if path.is_empty()
                || others.has_member_within(&path)
                || config_set.has_member_within(&path)
                || gone.iter().any(|g| path.starts_with(g))
            {
                continue;
            }
            gone.push(path.clone());
            let under_status = path.first().is_some_and(|f| f == "f:status");
            if under_status != (w.subresource == "status") {
                continue;
            }
            fieldset::remove_path(&mut merged, &path);
        }

        let entry = self.entry_mut(w, Operation::Apply);
        entry.fields = config_set;
        entry.api_version = w.api_version.to_string();
        entry.time = Some(object::now_rfc3339());
        self.tidy();
        Ok(Ok(merged))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error("{0}")]
    Fields(#[from] FieldSetError),
    #[error("invalid apply configuration: {0}")]
    Merge(String),
}

impl From<ApplyError> for ApiError {
    fn from(e: ApplyError) -> ApiError {
        match e {
            ApplyError::Fields(_) => ApiError::new(
                http::StatusCode::UNPROCESSABLE_ENTITY,
                "Invalid",
                e.to_string(),
            ),
            ApplyError::Merge(_) => ApiError::bad_request(e.to_string()),
        }
    }
}

/// Fields an apply would change that other managers own: (manager, apiVersion, paths).
#[derive(Debug)]
pub struct Conflicts(pub Vec<(String, String, Vec<Vec<String>>)>);

impl Conflicts {
    /// The 409 Kubernetes answers, one `FieldManagerConflict` cause per field.
    pub fn to_api_error(&self, plural: &str, group: &str, name: &str) -> ApiError {
        let total: usize = self.0.iter().map(|(_, _, p)| p.len()).sum();
        let mut causes = Vec::new();
        let mut parts = Vec::new();
        for (manager, api_version, paths) in &self.0 {
            let who = if api_version.is_empty() {
                format!("{manager:?}")
            } else {
                format!("{manager:?} using {api_version}")
            };
            let fields: Vec<String> = paths.iter().map(|p| fieldset::path_string(p)).collect();
            for f in &fields {
                causes.push(json!({
                    "type": "FieldManagerConflict",
                    "message": format!("conflict with {who}"),
                    "field": f,
                }));
            }
            if total == 1 {
                parts.push(format!("conflict with {who}: {}", fields.join("")));
            } else {
                let list: Vec<String> = fields.iter().map(|f| format!("- {f}")).collect();
                parts.push(format!("conflicts with {who}:\n{}", list.join("\n")));
            }
        }
        let plural_s = if total == 1 { "conflict" } else { "conflicts" };
        let mut e = ApiError::new(
            http::StatusCode::CONFLICT,
            "Conflict",
            format!("Apply failed with {total} {plural_s}: {}", parts.join("\n")),
        );
        e.details = Some(json!({"name": name, "group": group, "kind": plural, "causes": causes}));
        e
    }
}

/// The manager of a write without `fieldManager`: the client's user agent up to its first
/// `/` (`kubectl`, `Go-http-client`), as Kubernetes names it; `unknown` without one.
pub fn default_manager(user_agent: Option<&str>) -> String {
    let ua = user_agent
        .unwrap_or("")
        .split('/')
        .next()
        .unwrap_or("")
        .trim();
    if ua.is_empty() {
        "unknown".into()
    } else {
        ua.chars().take(128).collect()
    }
}

/// Checks a `fieldManager` as Kubernetes does (at most 128 printable characters).
pub fn check_manager(name: &str) -> Result<(), ApiError> {
    if name.chars().count() > 128 {
        return Err(ApiError::bad_request(
            "fieldManager: Too long: must have at most 128 characters",
        ));
    }
    if name.chars().any(|c| c.is_control()) {
        return Err(ApiError::bad_request(
            "fieldManager: Invalid value: must contain only printable characters",
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests;
