//! Whole-document tests: what kubectl reads from the documents.

use prost::Message;
use serde_json::{json, Value};

use super::schemas::{self, Catalog, Gvk, KindDoc, V3_PREFIX};
use super::v2_proto::gnostic;
use super::*;

fn docs() -> Arc<Documents> {
    documents().expect("documents")
}

fn v3(key: &str) -> Value {
    let d = docs();
    serde_json::from_slice(&d.v3[key].body).expect("v3 json")
}

#[test]
fn the_index_lists_every_group_version_with_its_hash() {
    let d = docs();
    let index: Value = serde_json::from_slice(&d.v3_index.body).expect("index");
    for key in [
        "api/v1",
        "apis/apps/v1",
        "apis/autoscaling/v1",
        "apis/autoscaling/v2",
    ] {
        let url = index["paths"][key]["serverRelativeURL"]
            .as_str()
            .expect(key);
        assert_eq!(url, format!("/openapi/v3/{key}?hash={}", d.v3[key].hash));
    }
    // metrics.k8s.io is aggregated-style (served by metrics_api.rs): no document.
    assert!(index["paths"].get("apis/metrics.k8s.io/v1beta1").is_none());
}

#[test]
fn every_ref_of_every_v3_document_resolves_in_it() {
    let d = docs();
    for (key, served) in &d.v3 {
        let doc: Value = serde_json::from_slice(&served.body).expect("json");
        let components = doc["components"]["schemas"].as_object().expect("schemas");
        let mut refs = Vec::new();
        schemas::refs_in(&doc, &mut refs);
        assert!(!refs.is_empty());
        for r in refs {
            assert!(components.contains_key(&r), "{key}: {r} does not resolve");
        }
        let text = String::from_utf8_lossy(&served.body);
        assert!(!text.contains("#/definitions/"), "{key} has a v2 ref");
    }
}

#[test]
fn deployment_paths_carry_what_kubectl_checks() {
    let doc = v3("apis/apps/v1");
    let paths = &doc["paths"];
    let item = &paths["/apis/apps/v1/namespaces/{namespace}/deployments/{name}"];
    let patch = &item["patch"];
    assert_eq!(patch["x-kubernetes-action"], json!("patch"));
    assert_eq!(
        patch["x-kubernetes-group-version-kind"],
        json!({"group": "apps", "kind": "Deployment", "version": "v1"})
    );
    let names: Vec<&str> = patch["parameters"]
        .as_array()
        .expect("parameters")
        .iter()
        .filter(|p| p["in"] == "query")
        .filter_map(|p| p["name"].as_str())
        .collect();
    for wanted in ["dryRun", "fieldManager", "fieldValidation", "force"] {
        assert!(names.contains(&wanted), "{wanted} missing from {names:?}");
    }
    assert!(patch["requestBody"]["content"]
        .get("application/strategic-merge-patch+json")
        .is_some());
    assert_eq!(
        item["get"]["responses"]["200"]["content"]["application/json"]["schema"]["$ref"],
        json!(format!("{V3_PREFIX}io.k8s.api.apps.v1.Deployment"))
    );
    let scale = &paths["/apis/apps/v1/namespaces/{namespace}/deployments/{name}/scale"];
    assert_eq!(
        scale["put"]["x-kubernetes-group-version-kind"]["kind"],
        json!("Scale")
    );
    assert!(
        paths["/apis/apps/v1/namespaces/{namespace}/deployments/{name}/status"]["patch"]
            .is_object()
    );
    assert_eq!(
        paths["/apis/apps/v1/deployments"]["get"]["operationId"],
        json!("listAppsV1DeploymentForAllNamespaces")
    );
    let schemas = &doc["components"]["schemas"];
    assert_eq!(
        schemas["io.k8s.api.apps.v1.DeploymentList"]["x-kubernetes-group-version-kind"],
        json!([{"group": "apps", "kind": "DeploymentList", "version": "v1"}])
    );
    assert_eq!(
        schemas["io.k8s.api.apps.v1.Deployment"]["x-kubernetes-group-version-kind"],
        json!([{"group": "apps", "kind": "Deployment", "version": "v1"}])
    );
    assert!(schemas["io.k8s.api.autoscaling.v1.Scale"].is_object());
}

#[test]
fn every_served_kind_has_a_patch_with_field_validation() {
    let d = docs();
    for r in super::super::resources::RESOURCES
        .iter()
        .chain(super::super::resources::ALSO_SERVED)
    {
        let doc: Value =
            serde_json::from_slice(&d.v3[&gv_key(r.group, r.version)].body).expect("json");
        let gvk = json!({"group": r.group, "kind": r.kind, "version": r.version});
        let found = doc["paths"].as_object().expect("paths").values().any(|p| {
            p["patch"]["x-kubernetes-group-version-kind"] == gvk
                && p["patch"]["parameters"]
                    .as_array()
                    .is_some_and(|ps| ps.iter().any(|q| q["name"] == "fieldValidation"))
        });
        assert!(found, "no PATCH with fieldValidation for {gvk}");
        let kind_schema = doc["components"]["schemas"]
            .as_object()
            .expect("schemas")
            .values()
            .any(|s| {
                s["x-kubernetes-group-version-kind"]
                    .as_array()
                    .is_some_and(|l| l.contains(&gvk))
            });
        assert!(kind_schema, "no schema with the GVK {gvk}");
    }
}

#[test]
fn the_protobuf_document_decodes_with_definitions_and_extensions() {
    let d = docs();
    let doc = gnostic::Document::decode(d.v2_proto.body.as_ref()).expect("decode");
    assert_eq!(doc.swagger, "2.0");
    let defs = doc.definitions.expect("definitions").additional_properties;
    let deployment = defs
        .iter()
        .find(|n| n.name == "io.k8s.api.apps.v1.Deployment")
        .and_then(|n| n.value.as_ref())
        .expect("Deployment");
    let gvk = deployment
        .vendor_extension
        .iter()
        .find(|e| e.name == "x-kubernetes-group-version-kind")
        .and_then(|e| e.value.as_ref())
        .expect("gvk extension");
    let yaml: serde_yaml::Value = serde_yaml::from_str(&gvk.yaml).expect("yaml");
    assert_eq!(yaml[0]["kind"], serde_yaml::Value::from("Deployment"));
    assert_eq!(yaml[0]["group"], serde_yaml::Value::from("apps"));
    let pod_spec = defs
        .iter()
        .find(|n| n.name == "io.k8s.api.core.v1.PodSpec")
        .and_then(|n| n.value.as_ref())
        .expect("PodSpec");
    let containers = pod_spec
        .properties
        .as_ref()
        .expect("properties")
        .additional_properties
        .iter()
        .find(|p| p.name == "containers")
        .and_then(|p| p.value.as_ref())
        .expect("containers");
    let merge_key = containers
        .vendor_extension
        .iter()
        .find(|e| e.name == "x-kubernetes-patch-merge-key")
        .and_then(|e| e.value.as_ref())
        .expect("merge key");
    assert_eq!(merge_key.yaml, "name\n");
    assert_eq!(
        containers
            .items
            .as_ref()
            .map(|i| i.schema[0].r#ref.as_str()),
        Some("#/definitions/io.k8s.api.core.v1.Container")
    );
    // Every reference points at a definition (kubectl's parser rejects unknown ones).
    let names: std::collections::HashSet<&str> = defs.iter().map(|n| n.name.as_str()).collect();
    let json: Value = serde_json::from_slice(&d.v2_json.body).expect("json");
    let mut refs = Vec::new();
    collect_v2_refs(&json, &mut refs);
    assert!(refs.len() > 100);
    for r in refs {
        assert!(names.contains(r.as_str()), "{r} is no definition");
    }
    let paths = doc.paths.expect("paths").path;
    let patch = paths
        .iter()
        .find(|p| p.name == "/apis/apps/v1/namespaces/{namespace}/deployments/{name}")
        .and_then(|p| p.value.as_ref())
        .and_then(|p| p.patch.as_ref())
        .expect("patch");
    assert!(patch
        .consumes
        .contains(&"application/strategic-merge-patch+json".to_string()));
}

fn collect_v2_refs(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                match (k.as_str(), x.as_str()) {
                    ("$ref", Some(r)) => out.push(
                        r.strip_prefix("#/definitions/")
                            .unwrap_or_else(|| panic!("{r} is no v2 reference"))
                            .to_string(),
                    ),
                    _ => collect_v2_refs(x, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|x| collect_v2_refs(x, out)),
        _ => {}
    }
}

#[test]
fn the_v2_document_uses_only_converted_schema_keywords() {
    let d = docs();
    let json: Value = serde_json::from_slice(&d.v2_json.body).expect("json");
    fn walk(s: &Value, at: &str) {
        let Some(m) = s.as_object() else { return };
        for (k, v) in m {
            assert!(
                k.starts_with("x-") || v2_proto::SCHEMA_KEYS.contains(&k.as_str()),
                "{at}: {k} would be lost in protobuf"
            );
            match k.as_str() {
                "properties" => {
                    for (name, p) in v.as_object().into_iter().flatten() {
                        walk(p, &format!("{at}.{name}"));
                    }
                }
                "items" | "additionalProperties" => walk(v, at),
                "allOf" => v.as_array().into_iter().flatten().for_each(|x| walk(x, at)),
                _ => {}
            }
        }
    }
    for (name, s) in json["definitions"].as_object().expect("definitions") {
        walk(s, name);
    }
}

fn custom_kind() -> Catalog {
    let schema = "com.example.v1.Widget".to_string();
    Catalog {
        kinds: vec![KindDoc {
            gvk: Gvk::new("example.com", "v1", "Widget"),
            plural: "widgets".into(),
            namespaced: true,
            list_schema: format!("{schema}List"),
            schema: schema.clone(),
            subresources: vec![SubDoc::Status],
            strategic_merge: false,
        }],
        schemas: [(
            schema,
            json!({"type": "object", "properties": {
                "apiVersion": {"type": "string"}, "kind": {"type": "string"},
                "metadata": {"$ref": format!("{V3_PREFIX}io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta")},
                "spec": {"type": "object", "x-kubernetes-preserve-unknown-fields": true},
            }}),
        )]
        .into_iter()
        .collect(),
    }
}

#[test]
fn extra_kinds_get_documents_and_change_only_their_hash() {
    let base = builtin().expect("builtin").clone();
    let before = build(&base).expect("build");
    let mut more = base.clone();
    more.extend(&custom_kind());
    let after = build(&more).expect("build");
    assert_eq!(
        before.v3["apis/apps/v1"].hash,
        after.v3["apis/apps/v1"].hash
    );
    assert_ne!(before.v3_index.hash, after.v3_index.hash);
    assert_ne!(before.v2_json.hash, after.v2_json.hash);
    let doc: Value = serde_json::from_slice(&after.v3["apis/example.com/v1"].body).expect("json");
    let patch =
        &doc["paths"]["/apis/example.com/v1/namespaces/{namespace}/widgets/{name}"]["patch"];
    assert!(patch["requestBody"]["content"]
        .get("application/merge-patch+json")
        .is_some());
    assert!(patch["requestBody"]["content"]
        .get("application/strategic-merge-patch+json")
        .is_none());
    assert_eq!(
        doc["components"]["schemas"]["com.example.v1.WidgetList"]
            ["x-kubernetes-group-version-kind"],
        json!([{"group": "example.com", "kind": "WidgetList", "version": "v1"}])
    );
    assert!(doc["components"]["schemas"]
        .get("io.k8s.apimachinery.pkg.apis.meta.v1.ObjectMeta")
        .is_some());
}

#[test]
fn set_extra_rebuilds_the_served_documents() {
    let first = docs();
    set_extra(custom_kind());
    let second = docs();
    assert!(second.v3.contains_key("apis/example.com/v1"));
    assert_ne!(first.v3_index.etag, second.v3_index.etag);
    set_extra(Catalog::default());
    assert!(!docs().v3.contains_key("apis/example.com/v1"));
}

#[test]
fn accept_negotiation_picks_protobuf_only_when_asked() {
    let offers = V2_OFFERS;
    assert_eq!(negotiate(None, offers), Some(Format::Json));
    assert_eq!(negotiate(Some("*/*"), offers), Some(Format::Json));
    assert_eq!(
        negotiate(
            Some("application/com.github.proto-openapi.spec.v2@v1.0+protobuf"),
            offers
        ),
        Some(Format::Protobuf)
    );
    assert_eq!(
        negotiate(
            Some("application/json;q=0.5, application/com.github.proto-openapi.spec.v2.v1.0+protobuf"),
            offers
        ),
        Some(Format::Protobuf)
    );
    assert_eq!(negotiate(Some("text/html"), offers), None);
    assert_eq!(negotiate(Some("application/json;q=0"), offers), None);
}

#[test]
fn if_none_match_recognizes_the_etag() {
    let mut h = HeaderMap::new();
    h.insert(
        header::IF_NONE_MATCH,
        HeaderValue::from_static("\"A\", W/\"B\""),
    );
    assert!(not_modified(&h, "\"B\""));
    assert!(!not_modified(&h, "\"C\""));
    assert!(!not_modified(&HeaderMap::new(), "\"C\""));
}
