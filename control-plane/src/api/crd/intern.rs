//! Interning of custom resource definitions: every served kind is a `&'static ResourceDef`
//! (routing, handlers, discovery and admission all hold one), so each distinct CRD version
//! definition (group, version, names, scope, subresources) is leaked once and the same
//! reference is handed out whenever a CRD is re-applied or re-read unchanged. What this keeps
//! is bounded by the number of distinct definitions the process has ever served — a few
//! hundred bytes each; a CRD edited a thousand times with new names would keep a thousand of
//! them, which no real cluster does.

use std::collections::HashMap;
use std::sync::Mutex;

use crate::api::resources::{ResourceDef, SubresourceDef, SCALE, STATUS};

/// Everything a served definition is made of.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DefKey {
    pub group: String,
    pub version: String,
    pub plural: String,
    pub singular: String,
    pub kind: String,
    pub namespaced: bool,
    pub short_names: Vec<String>,
    pub categories: Vec<String>,
    pub status: bool,
    pub scale: bool,
}

static NO_SUBRESOURCES: [SubresourceDef; 0] = [];
static ONLY_STATUS: [SubresourceDef; 1] = [STATUS];
static ONLY_SCALE: [SubresourceDef; 1] = [SCALE];
static STATUS_AND_SCALE: [SubresourceDef; 2] = [STATUS, SCALE];

static INTERNED: Mutex<Option<HashMap<DefKey, &'static ResourceDef>>> = Mutex::new(None);

fn leak(s: &str) -> &'static str {
    Box::leak(s.to_string().into_boxed_str())
}

fn leak_all(v: &[String]) -> &'static [&'static str] {
    Box::leak(
        v.iter()
            .map(|s| leak(s))
            .collect::<Vec<_>>()
            .into_boxed_slice(),
    )
}

/// The one `&'static ResourceDef` for `key` (see the module comment for the bound).
pub fn intern(key: DefKey) -> &'static ResourceDef {
    let mut guard = INTERNED.lock().unwrap_or_else(|e| e.into_inner());
    let map = guard.get_or_insert_with(HashMap::new);
    if let Some(def) = map.get(&key) {
        return def;
    }
    let kind = leak(&key.kind);
    let group = leak(&key.group);
    let version = leak(&key.version);
    let subresources: &'static [SubresourceDef] = match (key.status, key.scale) {
        (false, false) => &NO_SUBRESOURCES,
        (true, false) => &ONLY_STATUS,
        (false, true) => &ONLY_SCALE,
        (true, true) => &STATUS_AND_SCALE,
    };
    let def: &'static ResourceDef = Box::leak(Box::new(ResourceDef {
        group,
        version,
        plural: leak(&key.plural),
        singular: leak(&key.singular),
        kind,
        namespaced: key.namespaced,
        short_names: leak_all(&key.short_names),
        categories: leak_all(&key.categories),
        subresources,
        // Custom resources count every change outside metadata (and status) in `generation`.
        has_generation: true,
        create_on_update: false,
        // Versions differ only in `apiVersion`, which `crd::respond` sets on the way out.
        conversion: None,
    }));
    map.insert(key, def);
    def
}
