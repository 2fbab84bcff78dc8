//! The custom resources served now: a snapshot built from the stored CustomResourceDefinitions,
//! swapped whole whenever they change, which `resources::find`/`find_kind`/`group_versions`/
//! `resources_in` consult after the static table.
//!
//! Every served kind is a `&'static ResourceDef`; a CRD version gets one from `intern.rs`
//! (leaked once per distinct definition, reused when a CRD is re-applied unchanged).
//!
//! Names are accepted as Kubernetes' naming controller accepts them: a CRD whose plural,
//! singular, short names, kind or list kind are already used in its group by a CRD created
//! earlier is not served, and its status says why (`controllers/crd.rs` writes it).

use std::collections::{HashMap, HashSet};
#[cfg(test)]
use std::sync::Mutex;
use std::sync::{Arc, RwLock};

use serde_json::{json, Value};

use super::columns::{self, Column};
use super::intern::{intern, DefKey};
use super::schema::Schema;
use crate::api::object;
use crate::api::resources::{self, ResourceDef};
use crate::store::{ListScope, Store, StoreError};

/// Where CustomResourceDefinitions are stored.
pub const CRD_RESOURCE: &str = "apiextensions.k8s.io/customresourcedefinitions";

/// The scale subresource's paths (`.spec.replicas`-style JSONPaths).
#[derive(Debug, Clone, PartialEq)]
pub struct ScalePaths {
    pub spec_replicas: String,
    pub status_replicas: String,
    pub label_selector: Option<String>,
}

/// One version of one CRD, as served.
#[derive(Debug)]
pub struct CustomResource {
    pub def: &'static ResourceDef,
    /// The CRD's name (`widgets.example.com`) and uid.
    pub crd_name: String,
    pub crd_uid: String,
    pub list_kind: String,
    /// Whether requests are served at this version (`served: true`).
    pub served: bool,
    /// The version objects are stored at (`example.com/v1`).
    pub storage_api_version: String,
    pub storage_def: &'static ResourceDef,
    /// The structural schema (absent only with `preserveUnknownFields`, never for v1 CRDs).
    pub schema: Option<Arc<Schema>>,
    /// The version's `openAPIV3Schema` as written, for the OpenAPI documents.
    pub openapi_schema: Option<Value>,
    /// `spec.preserveUnknownFields` (legacy): nothing is pruned.
    pub preserve_unknown_fields: bool,
    pub columns: Vec<Column>,
    pub scale: Option<ScalePaths>,
    /// The CRD is being deleted: its objects go, and no new one may be created.
    pub terminating: bool,
    /// The warning returned with every request at a deprecated version.
    pub deprecation_warning: Option<String>,
}

/// What the registry decided about a CRD's names, for its status.
#[derive(Debug, Clone, PartialEq)]
pub struct NamesState {
    pub accepted: bool,
    /// `NoConflicts`, or the `NamesAccepted=False` reason (`KindConflict`, …).
    pub reason: String,
    pub message: String,
    /// `status.acceptedNames`.
    pub accepted_names: Value,
}

#[derive(Default)]
struct Snapshot {
    /// The store revision the CRDs were read at.
    revision: u64,
    /// Every version of every accepted CRD, served or not, in creation order.
    all: Vec<Arc<CustomResource>>,
    by_def: HashMap<usize, Arc<CustomResource>>,
    names: HashMap<String, NamesState>,
}

static CURRENT: RwLock<Option<Arc<Snapshot>>> = RwLock::new(None);
/// One rebuild at a time, so an older list never replaces a newer one.
static SYNC: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

fn current() -> Arc<Snapshot> {
    CURRENT
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .clone()
        .unwrap_or_default()
}

fn key_of(def: &ResourceDef) -> usize {
    def as *const ResourceDef as usize
}

/// Re-reads the stored CRDs and serves what they define.
pub async fn sync(store: &Store) -> Result<(), StoreError> {
    let _one = SYNC.lock().await;
    let list = store.list(&ListScope::new(CRD_RESOURCE, None)).await?;
    if list.revision < current().revision {
        return Ok(());
    }
    install(build(&list.items, list.revision));
    Ok(())
}

/// Serves what `crds` define (for tests and callers holding the CRDs already).
pub fn rebuild(crds: &[Value]) {
    install(build(crds, 0));
}

fn install(s: Snapshot) {
    let served: Vec<Arc<CustomResource>> = s.all.iter().filter(|c| c.served).cloned().collect();
    *CURRENT.write().unwrap_or_else(|e| e.into_inner()) = Some(Arc::new(s));
    super::openapi::publish(&served);
}

/// A served custom resource at `group/version`, by plural.
pub fn find(group: &str, version: &str, plural: &str) -> Option<&'static ResourceDef> {
    current()
        .all
        .iter()
        .find(|c| {
            c.served && c.def.group == group && c.def.version == version && c.def.plural == plural
        })
        .map(|c| c.def)
}

/// A served custom resource by apiVersion and kind.
pub fn find_kind(api_version: &str, kind: &str) -> Option<&'static ResourceDef> {
    current()
        .all
        .iter()
        .find(|c| c.served && c.def.kind == kind && c.def.api_version() == api_version)
        .map(|c| c.def)
}

/// The definition of a custom resource (any version of it).
pub fn lookup(def: &ResourceDef) -> Option<Arc<CustomResource>> {
    current().by_def.get(&key_of(def)).cloned()
}

/// The served group/versions of custom resources: groups in order of their first CRD, each
/// group's versions by Kubernetes' version priority (`v2` > `v1` > `v1beta1` > `v1alpha1`), so
/// the first is the preferred one.
pub fn group_versions() -> Vec<(&'static str, &'static str)> {
    let snap = current();
    let mut groups: Vec<(&'static str, Vec<&'static str>)> = Vec::new();
    for c in snap.all.iter().filter(|c| c.served) {
        match groups.iter_mut().find(|(g, _)| *g == c.def.group) {
            Some((_, vs)) if !vs.contains(&c.def.version) => vs.push(c.def.version),
            Some(_) => {}
            None => groups.push((c.def.group, vec![c.def.version])),
        }
    }
    let mut out = Vec::new();
    for (g, mut vs) in groups {
        vs.sort_by(|a, b| compare_versions(a, b));
        out.extend(vs.into_iter().map(|v| (g, v)));
    }
    out
}

/// The custom resources served at `group/version`.
pub fn resources_in(group: &str, version: &str) -> Vec<&'static ResourceDef> {
    current()
        .all
        .iter()
        .filter(|c| c.served && c.def.group == group && c.def.version == version)
        .map(|c| c.def)
        .collect()
}

/// The storage version's definition of every CRD: how controllers (garbage collection,
/// namespace deletion) reach each kind's objects once.
pub fn stored_defs() -> Vec<&'static ResourceDef> {
    let snap = current();
    let mut out: Vec<&'static ResourceDef> = Vec::new();
    for c in snap.all.iter() {
        if !out.iter().any(|d| std::ptr::eq(*d, c.storage_def)) {
            out.push(c.storage_def);
        }
    }
    out
}

/// The served versions of every CRD with their schemas: what the OpenAPI documents publish
/// (`kubectl explain`).
pub fn served_versions() -> Vec<Arc<CustomResource>> {
    current().all.iter().filter(|c| c.served).cloned().collect()
}

/// The naming decision for the CRD `name`, if the registry has seen it.
pub fn names_state(name: &str) -> Option<NamesState> {
    current().names.get(name).cloned()
}

/// Kubernetes' version priority: GA before beta before alpha (each by major then minor,
/// highest first), then other names alphabetically.
pub fn compare_versions(a: &str, b: &str) -> std::cmp::Ordering {
    fn parse(v: &str) -> Option<(u8, u64, u64)> {
        let rest = v.strip_prefix('v')?;
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        let major: u64 = rest[..digits].parse().ok()?;
        let tail = &rest[digits..];
        if tail.is_empty() {
            return Some((3, major, 0));
        }
        for (label, rank) in [("beta", 2u8), ("alpha", 1u8)] {
            if let Some(minor) = tail.strip_prefix(label) {
                return Some((rank, major, minor.parse().ok()?));
            }
        }
        None
    }
    match (parse(a), parse(b)) {
        (Some(x), Some(y)) => y.cmp(&x),
        (Some(_), None) => std::cmp::Ordering::Less,
        (None, Some(_)) => std::cmp::Ordering::Greater,
        (None, None) => a.cmp(b),
    }
}

/// The names a CRD asks for.
struct Names {
    plural: String,
    singular: String,
    kind: String,
    list_kind: String,
    short_names: Vec<String>,
    categories: Vec<String>,
}

impl Names {
    fn of(spec: &Value) -> Names {
        let n = spec.get("names").cloned().unwrap_or(json!({}));
        let s = |k: &str| n.get(k).and_then(Value::as_str).unwrap_or("").to_string();
        let kind = s("kind");
        let singular = match s("singular") {
            x if x.is_empty() => kind.to_lowercase(),
            x => x,
        };
        let list_kind = match s("listKind") {
            x if x.is_empty() => format!("{kind}List"),
            x => x,
        };
        Names {
            plural: s("plural"),
            singular,
            kind,
            list_kind,
            short_names: super::schema::strings(n.get("shortNames")),
            categories: super::schema::strings(n.get("categories")),
        }
    }

    fn json(&self) -> Value {
        let mut v = json!({"plural": self.plural, "singular": self.singular,
            "kind": self.kind, "listKind": self.list_kind});
        if !self.short_names.is_empty() {
            v["shortNames"] = json!(self.short_names);
        }
        if !self.categories.is_empty() {
            v["categories"] = json!(self.categories);
        }
        v
    }
}

/// Names already taken in each group: resource names (plural, singular, short names) and
/// kinds (kind, list kind).
#[derive(Default)]
struct Taken {
    resources: HashMap<String, HashSet<String>>,
    kinds: HashMap<String, HashSet<String>>,
}

impl Taken {
    fn new() -> Taken {
        let mut t = Taken::default();
        for r in resources::RESOURCES.iter().chain(resources::ALSO_SERVED) {
            let res = t.resources.entry(r.group.to_string()).or_default();
            res.insert(r.plural.to_string());
            res.insert(r.singular.to_string());
            res.extend(r.short_names.iter().map(|s| s.to_string()));
            let kinds = t.kinds.entry(r.group.to_string()).or_default();
            kinds.insert(r.kind.to_string());
            kinds.insert(format!("{}List", r.kind));
        }
        t
    }

    /// Why `names` cannot be accepted in `group`, as the naming controller says it.
    fn conflict(&self, group: &str, names: &Names) -> Option<(String, String)> {
        let used = |set: &HashMap<String, HashSet<String>>, n: &str| {
            set.get(group).is_some_and(|s| s.contains(n))
        };
        let in_use = |n: &str| format!("{n:?} is already in use");
        if used(&self.resources, &names.plural) {
            return Some(("PluralConflict".into(), in_use(&names.plural)));
        }
        if used(&self.resources, &names.singular) {
            return Some(("SingularConflict".into(), in_use(&names.singular)));
        }
        let shorts: Vec<String> = names
            .short_names
            .iter()
            .filter(|s| used(&self.resources, s))
            .map(|s| in_use(s))
            .collect();
        if !shorts.is_empty() {
            let msg = if shorts.len() == 1 {
                shorts[0].clone()
            } else {
                format!("[{}]", shorts.join(", "))
            };
            return Some(("ShortNamesConflict".into(), msg));
        }
        if used(&self.kinds, &names.kind) {
            return Some(("KindConflict".into(), in_use(&names.kind)));
        }
        if used(&self.kinds, &names.list_kind) {
            return Some(("ListKindConflict".into(), in_use(&names.list_kind)));
        }
        None
    }

    fn take(&mut self, group: &str, names: &Names) {
        let res = self.resources.entry(group.to_string()).or_default();
        res.insert(names.plural.clone());
        res.insert(names.singular.clone());
        res.extend(names.short_names.iter().cloned());
        let kinds = self.kinds.entry(group.to_string()).or_default();
        kinds.insert(names.kind.clone());
        kinds.insert(names.list_kind.clone());
    }
}

fn build(crds: &[Value], revision: u64) -> Snapshot {
    let mut ordered: Vec<&Value> = crds.iter().collect();
    ordered.sort_by(|a, b| {
        let ts = |o: &Value| {
            object::meta_str(o, "creationTimestamp")
                .unwrap_or("")
                .to_string()
        };
        ts(a)
            .cmp(&ts(b))
            .then_with(|| object::name(a).cmp(object::name(b)))
    });
    let mut snap = Snapshot {
        revision,
        ..Snapshot::default()
    };
    let mut taken = Taken::new();
    for crd in ordered {
        let name = object::name(crd).to_string();
        let spec = crd.get("spec").cloned().unwrap_or(json!({}));
        let group = spec.get("group").and_then(Value::as_str).unwrap_or("");
        let names = Names::of(&spec);
        if group.is_empty() || names.plural.is_empty() || names.kind.is_empty() {
            continue;
        }
        if let Some((reason, message)) = taken.conflict(group, &names) {
            snap.names.insert(
                name,
                NamesState {
                    accepted: false,
                    reason,
                    message,
                    accepted_names: json!({"plural": "", "kind": ""}),
                },
            );
            continue;
        }
        taken.take(group, &names);
        snap.names.insert(
            name.clone(),
            NamesState {
                accepted: true,
                reason: "NoConflicts".into(),
                message: "no conflicts found".into(),
                accepted_names: names.json(),
            },
        );
        for c in versions_of(crd, &spec, group, &names) {
            let c = Arc::new(c);
            snap.by_def.insert(key_of(c.def), c.clone());
            snap.all.push(c);
        }
    }
    snap
}

fn versions_of(crd: &Value, spec: &Value, group: &str, names: &Names) -> Vec<CustomResource> {
    let versions = spec
        .get("versions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let Some(storage) = versions
        .iter()
        .find(|v| v.get("storage").and_then(Value::as_bool) == Some(true))
        .and_then(|v| v.get("name").and_then(Value::as_str))
    else {
        return Vec::new();
    };
    let namespaced = spec.get("scope").and_then(Value::as_str) != Some("Cluster");
    let storage_api_version = format!("{group}/{storage}");
    let preserve = spec.get("preserveUnknownFields").and_then(Value::as_bool) == Some(true);
    let def_for = |v: &Value| {
        let sub = |k: &str| {
            v.pointer(&format!("/subresources/{k}"))
                .is_some_and(|x| !x.is_null())
        };
        intern(DefKey {
            group: group.to_string(),
            version: v
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_string(),
            plural: names.plural.clone(),
            singular: names.singular.clone(),
            kind: names.kind.clone(),
            namespaced,
            short_names: names.short_names.clone(),
            categories: names.categories.clone(),
            status: sub("status"),
            scale: sub("scale"),
        })
    };
    let storage_version = versions
        .iter()
        .find(|v| v.get("name").and_then(Value::as_str) == Some(storage))
        .cloned()
        .unwrap_or(json!({}));
    let storage_def = def_for(&storage_version);
    let terminating = object::is_terminating(crd);
    versions
        .iter()
        .filter_map(|v| {
            let vname = v.get("name").and_then(Value::as_str)?;
            let is_storage = vname == storage;
            let def = if is_storage { storage_def } else { def_for(v) };
            let openapi_schema = v.pointer("/schema/openAPIV3Schema").cloned();
            let scale = v
                .pointer("/subresources/scale")
                .filter(|s| s.is_object())
                .map(|s| {
                    let p = |k: &str| s.get(k).and_then(Value::as_str).unwrap_or("").to_string();
                    ScalePaths {
                        spec_replicas: p("specReplicasPath"),
                        status_replicas: p("statusReplicasPath"),
                        label_selector: Some(p("labelSelectorPath")).filter(|s| !s.is_empty()),
                    }
                });
            let deprecation_warning = (v.get("deprecated").and_then(Value::as_bool) == Some(true))
                .then(
                    || match v.get("deprecationWarning").and_then(Value::as_str) {
                        Some(w) => w.to_string(),
                        None => format!("{group}/{vname} {} is deprecated", names.kind),
                    },
                );
            Some(CustomResource {
                def,
                crd_name: object::name(crd).to_string(),
                crd_uid: object::meta_str(crd, "uid").unwrap_or("").to_string(),
                list_kind: names.list_kind.clone(),
                served: v.get("served").and_then(Value::as_bool) == Some(true),
                storage_api_version: storage_api_version.clone(),
                storage_def,
                schema: openapi_schema
                    .as_ref()
                    .map(|s| Arc::new(Schema::from_json(s))),
                openapi_schema,
                preserve_unknown_fields: preserve,
                columns: columns::of_version(v),
                scale,
                terminating,
                deprecation_warning,
            })
        })
        .collect()
}

/// Serializes tests that install CRDs in the process-wide registry.
#[cfg(test)]
pub static TEST_LOCK: Mutex<()> = Mutex::new(());

#[cfg(test)]
mod tests {
    use super::*;

    pub fn crd(group: &str, plural: &str, kind: &str, created: &str) -> Value {
        json!({
            "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": format!("{plural}.{group}"), "uid": "u1", "creationTimestamp": created},
            "spec": {"group": group, "scope": "Namespaced",
                "names": {"plural": plural, "singular": kind.to_lowercase(), "kind": kind, "shortNames": ["wd"]},
                "versions": [
                    {"name": "v1beta1", "served": true, "storage": false,
                     "schema": {"openAPIV3Schema": {"type": "object"}}},
                    {"name": "v1", "served": true, "storage": true,
                     "schema": {"openAPIV3Schema": {"type": "object"}},
                     "subresources": {"status": {}, "scale": {"specReplicasPath": ".spec.replicas", "statusReplicasPath": ".status.replicas"}}},
                    {"name": "v2alpha1", "served": false, "storage": false,
                     "schema": {"openAPIV3Schema": {"type": "object"}}}
                ]}
        })
    }

    #[test]
    fn serves_each_served_version_and_interns_definitions() {
        let _l = TEST_LOCK.lock().unwrap_or_else(|e| e.into_inner());
        let a = crd(
            "reg.example.com",
            "widgets",
            "Widget",
            "2024-01-01T00:00:00Z",
        );
        rebuild(std::slice::from_ref(&a));
        let v1 = find("reg.example.com", "v1", "widgets").expect("v1 served");
        assert!(v1.has_status() && v1.has_subresource("scale"));
        let beta = find("reg.example.com", "v1beta1", "widgets").expect("v1beta1 served");
        assert!(!std::ptr::eq(beta, v1));
        assert_eq!(beta.api_version(), "reg.example.com/v1beta1");
        assert!(find("reg.example.com", "v2alpha1", "widgets").is_none());
        assert!(std::ptr::eq(
            find_kind("reg.example.com/v1", "Widget").unwrap(),
            v1
        ));
        let gv: Vec<_> = group_versions()
            .into_iter()
            .filter(|(g, _)| *g == "reg.example.com")
            .collect();
        assert_eq!(
            gv,
            vec![("reg.example.com", "v1"), ("reg.example.com", "v1beta1")]
        );
        let info = lookup(beta).unwrap();
        assert_eq!(info.storage_api_version, "reg.example.com/v1");
        assert!(std::ptr::eq(info.storage_def, v1));
        // Re-reading the same CRD serves the very same definitions.
        rebuild(&[a]);
        assert!(std::ptr::eq(
            find("reg.example.com", "v1", "widgets").unwrap(),
            v1
        ));
        assert_eq!(
            names_state("widgets.reg.example.com").unwrap().reason,
            "NoConflicts"
        );
    }

    #[test]
    fn a_later_crd_with_taken_names_is_not_served() {
        let _l = TEST_LOCK.lock().unwrap_or_else(|e| e.into_inner());
        let first = crd(
            "clash.example.com",
            "widgets",
            "Widget",
            "2024-01-01T00:00:00Z",
        );
        let second = crd(
            "clash.example.com",
            "gadgets",
            "Gadget",
            "2024-01-02T00:00:00Z",
        );
        rebuild(&[second, first]);
        assert!(find("clash.example.com", "v1", "widgets").is_some());
        assert!(find("clash.example.com", "v1", "gadgets").is_none());
        let st = names_state("gadgets.clash.example.com").unwrap();
        assert!(!st.accepted);
        assert_eq!(st.reason, "ShortNamesConflict");
        assert_eq!(st.message, "\"wd\" is already in use");
        let mut third = crd(
            "clash.example.com",
            "things",
            "Widget",
            "2024-01-03T00:00:00Z",
        );
        third["spec"]["names"]["singular"] = json!("thing");
        third["spec"]["names"]["shortNames"] = json!([]);
        rebuild(&[
            third,
            crd(
                "clash.example.com",
                "widgets",
                "Widget",
                "2024-01-01T00:00:00Z",
            ),
        ]);
        let st = names_state("things.clash.example.com").unwrap();
        assert_eq!(
            (st.reason.as_str(), st.message.as_str()),
            ("KindConflict", "\"Widget\" is already in use")
        );
        rebuild(&[]);
        assert!(find("clash.example.com", "v1", "widgets").is_none());
    }

    #[test]
    fn version_priority() {
        let mut v = vec![
            "v1alpha1", "v1", "foo", "v2beta1", "v1beta2", "v2", "v1beta1",
        ];
        v.sort_by(|a, b| compare_versions(a, b));
        assert_eq!(
            v,
            vec!["v2", "v1", "v2beta1", "v1beta2", "v1beta1", "v1alpha1", "foo"]
        );
    }
}
