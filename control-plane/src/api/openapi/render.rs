//! Rendering of the paths model ([`super::paths`]) as the `paths` object of an OpenAPI 3.0
//! document ([`render_v3`]) or of a Swagger 2.0 one ([`render_v2`]): parameters, request and
//! response bodies with their media types, and the `x-kubernetes-*` operation extensions.

use serde_json::{json, Map, Value};

use super::paths::{tag, Op, Param, PathDoc, ReqBody, Resp};
use super::schemas::{PATCH, V2_PREFIX, V3_PREFIX};

const OBJECT_TYPES: &[&str] = &[
    "application/json",
    "application/yaml",
    "application/vnd.kubernetes.protobuf",
];
const LIST_TYPES: &[&str] = &[
    "application/json",
    "application/yaml",
    "application/vnd.kubernetes.protobuf",
    "application/json;stream=watch",
    "application/vnd.kubernetes.protobuf;stream=watch",
];
const TEXT_TYPES: &[&str] = &["text/plain", "application/json", "application/yaml"];
const STREAM_TYPES: &[&str] = &["*/*"];

fn patch_types(strategic: bool) -> Vec<&'static str> {
    let mut out = vec![
        "application/apply-patch+yaml",
        "application/json-patch+json",
        "application/merge-patch+json",
    ];
    if strategic {
        out.push("application/strategic-merge-patch+json");
    }
    out
}

fn code_description(code: u16) -> &'static str {
    match code {
        201 => "Created",
        202 => "Accepted",
        401 => "Unauthorized",
        _ => "OK",
    }
}

fn resp_types(resp: &Resp) -> (&'static [&'static str], Value) {
    match resp {
        Resp::Schema(s) => (OBJECT_TYPES, json!({"$ref": format!("{V3_PREFIX}{s}")})),
        Resp::List(s) => (LIST_TYPES, json!({"$ref": format!("{V3_PREFIX}{s}")})),
        Resp::Text => (TEXT_TYPES, json!({"type": "string"})),
        Resp::Stream => (STREAM_TYPES, json!({"type": "string"})),
    }
}

fn params_v3(params: &[Param]) -> Value {
    params
        .iter()
        .map(|p| {
            let mut v = json!({
                "name": p.name,
                "in": p.loc,
                "description": p.description,
                "schema": {"type": p.ty, "uniqueItems": true},
            });
            if p.loc == "path" {
                v["required"] = true.into();
            }
            v
        })
        .collect()
}

fn extensions(op: &Op, out: &mut Map<String, Value>) {
    out.insert("x-kubernetes-action".into(), op.action.into());
    out.insert("x-kubernetes-group-version-kind".into(), op.gvk.to_json());
}

/// The `paths` object of an OpenAPI 3 document.
pub fn render_v3(paths: &[PathDoc]) -> Map<String, Value> {
    let mut out = Map::new();
    for p in paths {
        let mut item = Map::new();
        item.insert("parameters".into(), params_v3(&p.params));
        for op in &p.ops {
            let (types, schema) = resp_types(&op.resp);
            let content: Map<String, Value> = types
                .iter()
                .map(|t| (t.to_string(), json!({"schema": schema})))
                .collect();
            let mut responses = Map::new();
            for code in op.codes {
                responses.insert(
                    code.to_string(),
                    json!({"description": code_description(*code), "content": content}),
                );
            }
            responses.insert("401".into(), json!({"description": "Unauthorized"}));
            let mut o = Map::new();
            o.insert("description".into(), op.description.clone().into());
            o.insert("operationId".into(), op.id.clone().into());
            o.insert("tags".into(), json!([tag(&op.gvk.group, &op.gvk.version)]));
            if !op.params.is_empty() {
                o.insert("parameters".into(), params_v3(&op.params));
            }
            match &op.body {
                Some(ReqBody::Schema(s)) => {
                    o.insert(
                        "requestBody".into(),
                        json!({"content": {"*/*": {"schema": {"$ref": format!("{V3_PREFIX}{s}")}}}, "required": true}),
                    );
                }
                Some(ReqBody::Patch { strategic }) => {
                    let content: Map<String, Value> = patch_types(*strategic)
                        .into_iter()
                        .map(|t| {
                            (
                                t.into(),
                                json!({"schema": {"$ref": format!("{V3_PREFIX}{PATCH}")}}),
                            )
                        })
                        .collect();
                    o.insert(
                        "requestBody".into(),
                        json!({"content": content, "required": true}),
                    );
                }
                None => {}
            }
            o.insert("responses".into(), Value::Object(responses));
            extensions(op, &mut o);
            item.insert(op.method.into(), Value::Object(o));
        }
        out.insert(p.path.clone(), Value::Object(item));
    }
    out
}

fn params_v2(params: &[Param]) -> Vec<Value> {
    params
        .iter()
        .map(|p| {
            let mut v = json!({
                "name": p.name,
                "in": p.loc,
                "description": p.description,
                "type": p.ty,
                "uniqueItems": true,
            });
            if p.loc == "path" {
                v["required"] = true.into();
            }
            v
        })
        .collect()
}

/// The `paths` object of a Swagger 2.0 document.
pub fn render_v2(paths: &[PathDoc]) -> Map<String, Value> {
    let mut out = Map::new();
    for p in paths {
        let mut item = Map::new();
        item.insert("parameters".into(), params_v2(&p.params).into());
        for op in &p.ops {
            let (types, schema) = resp_types(&op.resp);
            let schema = super::schemas::to_v2(&schema);
            let mut responses = Map::new();
            for code in op.codes {
                responses.insert(
                    code.to_string(),
                    json!({"description": code_description(*code), "schema": schema}),
                );
            }
            responses.insert("401".into(), json!({"description": "Unauthorized"}));
            let mut params = params_v2(&op.params);
            let consumes = match &op.body {
                Some(ReqBody::Schema(s)) => {
                    params.push(json!({"name": "body", "in": "body", "required": true, "schema": {"$ref": format!("{V2_PREFIX}{s}")}}));
                    vec!["*/*"]
                }
                Some(ReqBody::Patch { strategic }) => {
                    params.push(json!({"name": "body", "in": "body", "required": true, "schema": {"$ref": format!("{V2_PREFIX}{PATCH}")}}));
                    patch_types(*strategic)
                }
                None => vec!["*/*"],
            };
            let mut o = Map::new();
            o.insert("description".into(), op.description.clone().into());
            o.insert("operationId".into(), op.id.clone().into());
            o.insert("tags".into(), json!([tag(&op.gvk.group, &op.gvk.version)]));
            o.insert("consumes".into(), json!(consumes));
            o.insert("produces".into(), json!(types));
            o.insert("schemes".into(), json!(["https"]));
            if !params.is_empty() {
                o.insert("parameters".into(), params.into());
            }
            o.insert("responses".into(), Value::Object(responses));
            extensions(op, &mut o);
            item.insert(op.method.into(), Value::Object(o));
        }
        out.insert(p.path.clone(), Value::Object(item));
    }
    out
}
