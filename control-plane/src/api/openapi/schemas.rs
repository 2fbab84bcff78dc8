//! The schemas of the OpenAPI documents: the [`Catalog`] of served kinds, its built-in part
//! generated from k8s-openapi's types (its `schemars` feature) in OpenAPI 3 form (`$ref`s to
//! `#/components/schemas/NAME`) with `x-kubernetes-group-version-kind`s and the decorations of
//! `decorate.rs`; List schemas; [`to_v2`], the Swagger 2.0 form of a schema.

use std::collections::BTreeMap;

use k8s_openapi::api::{
    apps::v1 as apps, autoscaling::v1 as autoscaling_v1, autoscaling::v2 as autoscaling_v2,
    batch::v1 as batch, coordination::v1 as coordination, core::v1 as core,
    discovery::v1 as discovery, networking::v1 as networking, node::v1 as node,
    policy::v1 as policy,
};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1 as apiextensions;
use k8s_openapi::apimachinery::pkg::apis::meta::v1 as meta;
use k8s_openapi::schemars::{generate::SchemaSettings, JsonSchema, SchemaGenerator};
use k8s_openapi::Resource;
use serde_json::{json, Map, Value};

use super::super::patch::strategic_schema::schema_for_kind;
use super::super::resources::{ResourceDef, SubresourceDef, ALSO_SERVED, RESOURCES};
use super::decorate::{decorate, kubernetes_forms};
use super::OpenApiError;

pub const V3_PREFIX: &str = "#/components/schemas/";
pub const V2_PREFIX: &str = "#/definitions/";

pub const STATUS: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.Status";
pub const DELETE_OPTIONS: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.DeleteOptions";
pub const WATCH_EVENT: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.WatchEvent";
pub const PATCH: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.Patch";
pub const LIST_META: &str = "io.k8s.apimachinery.pkg.apis.meta.v1.ListMeta";
pub const INT_OR_STRING: &str = "io.k8s.apimachinery.pkg.util.intstr.IntOrString";
pub const QUANTITY: &str = "io.k8s.apimachinery.pkg.api.resource.Quantity";

/// Named schemas in OpenAPI 3 form.
pub type Schemas = BTreeMap<String, Value>;

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Gvk {
    pub group: String,
    pub version: String,
    pub kind: String,
}

impl Gvk {
    pub fn new(group: &str, version: &str, kind: &str) -> Gvk {
        Gvk {
            group: group.into(),
            version: version.into(),
            kind: kind.into(),
        }
    }

    pub fn to_json(&self) -> Value {
        json!({"group": self.group, "kind": self.kind, "version": self.version})
    }
}

/// A body of a subresource that is another kind than its parent's (`scale`, `binding`).
#[derive(Debug, Clone)]
pub struct Body {
    pub gvk: Gvk,
    pub schema: String,
}

/// A subresource as the documents describe its operations.
#[derive(Debug, Clone)]
pub enum SubDoc {
    /// `status`: get, replace and patch of the kind itself.
    Status,
    /// `scale`: get, replace and patch of (autoscaling/v1) Scale.
    Scale(Body),
    /// POST of another kind (`pods/binding`, `pods/eviction`).
    Create { name: String, body: Body },
    /// PUT of the kind itself (`namespaces/finalize`).
    Replace { name: String },
    /// GET of plain text (`pods/log`).
    Text { name: String },
    /// Streams (`pods/exec`, `attach`, `portforward`, `nodes/proxy`), by GET and/or POST;
    /// `with_path` adds `NAME/{path}` (proxies).
    Connect {
        name: String,
        gvk: Gvk,
        get: bool,
        post: bool,
        with_path: bool,
    },
}

/// One served kind as the documents describe it. The built-in ones come from `resources.rs`;
/// later ones (CustomResourceDefinitions) bring their own, with their schemas.
#[derive(Debug, Clone)]
pub struct KindDoc {
    pub gvk: Gvk,
    pub plural: String,
    pub namespaced: bool,
    /// The name of the kind's schema (`io.k8s.api.apps.v1.Deployment`).
    pub schema: String,
    /// The name of its list's schema; made from `schema` when the catalog has none.
    pub list_schema: String,
    pub subresources: Vec<SubDoc>,
    /// Whether PATCH takes `application/strategic-merge-patch+json` (built-in kinds do,
    /// custom resources do not).
    pub strategic_merge: bool,
}

/// What the documents are built from: the kinds and the schemas they reference.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    pub kinds: Vec<KindDoc>,
    pub schemas: Schemas,
}

impl Catalog {
    /// Adds `other`'s kinds and schemas (its schemas win on a name clash).
    pub fn extend(&mut self, other: &Catalog) {
        self.kinds.extend(other.kinds.iter().cloned());
        self.schemas
            .extend(other.schemas.iter().map(|(k, v)| (k.clone(), v.clone())));
    }
}

/// A k8s-openapi type that can be added to a generator, by its group/version/kind.
struct Typed {
    gvk: (&'static str, &'static str, &'static str),
    add: fn(&mut SchemaGenerator) -> String,
}

fn add<T: JsonSchema>(generator: &mut SchemaGenerator) -> String {
    generator.subschema_for::<T>();
    T::schema_name().into_owned()
}

fn typed<T: Resource + JsonSchema>() -> Typed {
    Typed {
        gvk: (T::GROUP, T::VERSION, T::KIND),
        add: add::<T>,
    }
}

/// Every kind `resources.rs` may name (kinds and subresource bodies).
fn types() -> Vec<Typed> {
    vec![
        typed::<core::Namespace>(),
        typed::<core::Pod>(),
        typed::<core::Node>(),
        typed::<core::Service>(),
        typed::<core::Endpoints>(),
        typed::<core::ConfigMap>(),
        typed::<core::PersistentVolumeClaim>(),
        typed::<core::Secret>(),
        typed::<core::Event>(),
        typed::<core::ServiceAccount>(),
        typed::<core::Binding>(),
        typed::<apps::Deployment>(),
        typed::<apps::ReplicaSet>(),
        typed::<apps::DaemonSet>(),
        typed::<apps::StatefulSet>(),
        typed::<apps::ControllerRevision>(),
        typed::<batch::Job>(),
        typed::<batch::CronJob>(),
        typed::<coordination::Lease>(),
        typed::<discovery::EndpointSlice>(),
        typed::<autoscaling_v1::HorizontalPodAutoscaler>(),
        typed::<autoscaling_v1::Scale>(),
        typed::<autoscaling_v2::HorizontalPodAutoscaler>(),
        typed::<node::RuntimeClass>(),
        typed::<policy::PodDisruptionBudget>(),
        typed::<policy::Eviction>(),
        typed::<networking::Ingress>(),
        typed::<networking::IngressClass>(),
        typed::<apiextensions::CustomResourceDefinition>(),
    ]
}

/// The built-in kinds of `resources.rs` (its `RESOURCES` and `ALSO_SERVED`) with their schemas,
/// generated and decorated.
pub fn builtin() -> Result<Catalog, OpenApiError> {
    let types = types();
    let mut generator = SchemaSettings::openapi3().into_generator();
    let mut add_kind = |group: &str, version: &str, kind: &str| {
        types
            .iter()
            .find(|t| t.gvk == (group, version, kind))
            .map(|t| (t.add)(&mut generator))
            .ok_or_else(|| OpenApiError::MissingType(Gvk::new(group, version, kind)))
    };
    let mut kinds = Vec::new();
    for r in RESOURCES.iter().chain(ALSO_SERVED) {
        let schema = add_kind(r.group, r.version, r.kind)?;
        let mut subresources = Vec::new();
        for s in r.subresources {
            subresources.push(sub_doc(r, s, &mut add_kind)?);
        }
        kinds.push(KindDoc {
            gvk: Gvk::new(r.group, r.version, r.kind),
            plural: r.plural.into(),
            namespaced: r.namespaced,
            list_schema: format!("{schema}List"),
            schema,
            subresources,
            strategic_merge: true,
        });
    }
    for meta_type in [
        add::<meta::Status>,
        add::<meta::DeleteOptions>,
        add::<meta::WatchEvent<()>>,
        add::<meta::Patch>,
        add::<meta::ListMeta>,
    ] {
        meta_type(&mut generator);
    }
    let mut schemas: Schemas = generator.take_definitions(true).into_iter().collect();
    kubernetes_forms(&mut schemas);
    for k in &kinds {
        if let Some(table) = schema_for_kind(&k.gvk.kind) {
            decorate(&mut schemas, &k.schema, table, 0);
        }
    }
    add_gvk(&mut schemas, STATUS, &Gvk::new("", "v1", "Status"));
    for (sub_gvk, sub_schema) in
        kinds
            .iter()
            .flat_map(|k| &k.subresources)
            .filter_map(|s| match s {
                SubDoc::Scale(b) | SubDoc::Create { body: b, .. } => Some((&b.gvk, &b.schema)),
                _ => None,
            })
    {
        add_gvk(&mut schemas, sub_schema, sub_gvk);
    }
    Ok(Catalog { kinds, schemas })
}

fn sub_doc(
    r: &ResourceDef,
    s: &SubresourceDef,
    add_kind: &mut impl FnMut(&str, &str, &str) -> Result<String, OpenApiError>,
) -> Result<SubDoc, OpenApiError> {
    let group = if s.version.is_empty() {
        r.group
    } else {
        s.group
    };
    let gvk = Gvk::new(group, s.version, s.kind);
    Ok(match s.name {
        "status" => SubDoc::Status,
        "scale" => SubDoc::Scale(Body {
            schema: add_kind(s.group, s.version, s.kind)?,
            gvk,
        }),
        "log" => SubDoc::Text {
            name: s.name.into(),
        },
        _ if s.verbs == ["update"] => SubDoc::Replace {
            name: s.name.into(),
        },
        _ if s.verbs == ["create"] => SubDoc::Create {
            name: s.name.into(),
            body: Body {
                schema: add_kind(s.group, s.version, s.kind)?,
                gvk,
            },
        },
        _ => SubDoc::Connect {
            name: s.name.into(),
            gvk,
            get: s.verbs.contains(&"get"),
            post: s.verbs.contains(&"create"),
            with_path: s.name == "proxy",
        },
    })
}

/// Appends `gvk` to the schema's `x-kubernetes-group-version-kind` (once).
pub fn add_gvk(schemas: &mut Schemas, name: &str, gvk: &Gvk) {
    let Some(Value::Object(schema)) = schemas.get_mut(name) else {
        return;
    };
    let list = schema
        .entry("x-kubernetes-group-version-kind")
        .or_insert_with(|| json!([]));
    if let Value::Array(items) = list {
        let entry = gvk.to_json();
        if !items.contains(&entry) {
            items.push(entry);
        }
    }
}

/// The `List` schema of a kind, as Kubernetes writes them: `items` of the kind and `ListMeta`.
pub fn list_schema(schemas: &Schemas, item: &str, kind: &str) -> Value {
    let field = |name: &str| {
        schemas
            .get(item)
            .and_then(|s| s.pointer(&format!("/properties/{name}")))
            .cloned()
            .unwrap_or_else(|| json!({"type": "string"}))
    };
    json!({
        "description": format!("{kind}List is a list of {kind} objects."),
        "type": "object",
        "required": ["items"],
        "properties": {
            "apiVersion": field("apiVersion"),
            "kind": field("kind"),
            "items": {
                "description": format!("Items is the list of {kind} objects."),
                "type": "array",
                "items": {"$ref": format!("{V3_PREFIX}{item}")},
            },
            "metadata": {
                "allOf": [{"$ref": format!("{V3_PREFIX}{LIST_META}")}],
                "description": "Standard list metadata. More info: https://git.k8s.io/community/contributors/devel/sig-architecture/api-conventions.md#metadata",
            },
        },
    })
}

/// A schema (or a whole definitions map) in Swagger 2.0 form: `$ref`s to `#/definitions/`,
/// `allOf: [{$ref}]` back to a `$ref` with its siblings (as kube-apiserver's v2 document has
/// them), and no OpenAPI 3-only keywords.
pub fn to_v2(schema: &Value) -> Value {
    match schema {
        Value::Object(map) => {
            let mut out = Map::new();
            if let Some([only]) = map
                .get("allOf")
                .and_then(Value::as_array)
                .map(Vec::as_slice)
            {
                if let Some(r) = only.get("$ref").and_then(Value::as_str) {
                    out.insert("$ref".into(), v2_ref(r).into());
                }
            }
            for (k, v) in map {
                match k.as_str() {
                    "allOf" if out.contains_key("$ref") => {}
                    "oneOf" | "anyOf" | "nullable" | "default" => {}
                    "$ref" => {
                        out.insert(k.clone(), v.as_str().map(v2_ref).into());
                    }
                    // Extensions and names of properties are data, not schemas to rewrite.
                    _ if k.starts_with("x-") => {
                        out.insert(k.clone(), v.clone());
                    }
                    "properties" => {
                        let props = v.as_object().map(|p| {
                            p.iter()
                                .map(|(name, s)| (name.clone(), to_v2(s)))
                                .collect::<Map<_, _>>()
                        });
                        out.insert(k.clone(), props.map(Value::Object).unwrap_or(Value::Null));
                    }
                    _ => {
                        out.insert(k.clone(), to_v2(v));
                    }
                }
            }
            Value::Object(out)
        }
        Value::Array(items) => Value::Array(items.iter().map(to_v2).collect()),
        other => other.clone(),
    }
}

fn v2_ref(r: &str) -> String {
    match r.strip_prefix(V3_PREFIX) {
        Some(name) => format!("{V2_PREFIX}{name}"),
        None => r.to_string(),
    }
}

/// The definitions of the v2 document: [`to_v2`] of each, with the Swagger 2.0 forms of
/// `IntOrString` and `Quantity` (strings, as kube-apiserver serves them).
pub fn v2_definitions(schemas: &Schemas) -> Map<String, Value> {
    let mut out: Map<String, Value> = schemas
        .iter()
        .map(|(name, s)| (name.clone(), to_v2(s)))
        .collect();
    if let Some(Value::Object(s)) = out.get_mut(INT_OR_STRING) {
        s.insert("type".into(), "string".into());
        s.insert("format".into(), "int-or-string".into());
    }
    if let Some(Value::Object(s)) = out.get_mut(QUANTITY) {
        s.insert("type".into(), "string".into());
    }
    out
}

/// Every schema name `value` refers to, directly.
pub fn refs_in(value: &Value, out: &mut Vec<String>) {
    match value {
        Value::Object(map) => {
            for (k, v) in map {
                if k == "$ref" {
                    if let Some(name) = v.as_str().and_then(|r| r.strip_prefix(V3_PREFIX)) {
                        out.push(name.to_string());
                    }
                } else if !k.starts_with("x-") {
                    refs_in(v, out);
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| refs_in(v, out)),
        _ => {}
    }
}

/// The schemas reachable from `roots`, by name.
pub fn closure(schemas: &Schemas, roots: impl IntoIterator<Item = String>) -> Schemas {
    let mut out = Schemas::new();
    let mut todo: Vec<String> = roots.into_iter().collect();
    while let Some(name) = todo.pop() {
        if out.contains_key(&name) {
            continue;
        }
        if let Some(s) = schemas.get(&name) {
            refs_in(s, &mut todo);
            out.insert(name, s.clone());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn catalog() -> Catalog {
        builtin().expect("the built-in catalog")
    }

    #[test]
    fn every_served_kind_has_a_generated_schema_with_its_gvk() {
        let c = catalog();
        assert_eq!(c.kinds.len(), RESOURCES.len() + ALSO_SERVED.len());
        let d = &c.schemas["io.k8s.api.apps.v1.Deployment"];
        assert_eq!(
            d.pointer("/properties/spec/allOf/0/$ref"),
            Some(&json!(
                "#/components/schemas/io.k8s.api.apps.v1.DeploymentSpec"
            ))
        );
        let spec = &c.schemas["io.k8s.api.apps.v1.DeploymentSpec"];
        assert_eq!(
            spec.pointer("/properties/replicas/type"),
            Some(&json!("integer"))
        );
        assert_eq!(
            spec.pointer("/properties/replicas/format"),
            Some(&json!("int32"))
        );
        assert_eq!(
            c.schemas[STATUS]["x-kubernetes-group-version-kind"],
            json!([{"group": "", "kind": "Status", "version": "v1"}])
        );
        assert!(c
            .schemas
            .contains_key("io.k8s.api.autoscaling.v1.HorizontalPodAutoscaler"));
        assert!(c
            .schemas
            .contains_key("io.k8s.api.autoscaling.v2.HorizontalPodAutoscaler"));
        assert_eq!(
            c.schemas["io.k8s.api.autoscaling.v1.Scale"]["x-kubernetes-group-version-kind"],
            json!([{"group": "autoscaling", "kind": "Scale", "version": "v1"}])
        );
        for name in [
            DELETE_OPTIONS,
            WATCH_EVENT,
            PATCH,
            LIST_META,
            INT_OR_STRING,
            QUANTITY,
        ] {
            assert!(c.schemas.contains_key(name), "{name} missing");
        }
    }

    #[test]
    fn every_ref_resolves() {
        let c = catalog();
        for (name, s) in &c.schemas {
            let mut refs = Vec::new();
            refs_in(s, &mut refs);
            for r in refs {
                assert!(c.schemas.contains_key(&r), "{name} refers to missing {r}");
            }
        }
    }

    #[test]
    fn v2_form_has_definitions_refs_and_no_all_of() {
        let c = catalog();
        let defs = v2_definitions(&c.schemas);
        let d = &defs["io.k8s.api.apps.v1.Deployment"]["properties"]["metadata"];
        assert_eq!(
            d["$ref"],
            json!("#/definitions/io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta")
        );
        assert!(d.get("allOf").is_none());
        assert!(d["description"].is_string());
        assert_eq!(defs[INT_OR_STRING]["type"], json!("string"));
        assert!(defs[QUANTITY].get("oneOf").is_none());
        let text = serde_json::to_string(&defs).expect("json");
        assert!(!text.contains(V3_PREFIX));
    }
}
