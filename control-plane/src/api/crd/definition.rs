//! The CustomResourceDefinition object's own admission: defaulting and validation as
//! apiextensions-apiserver does them (`SetDefaults_CustomResourceDefinition`,
//! `ValidateCustomResourceDefinition[Update]`, the structural-schema rules), with Kubernetes'
//! field paths and messages. Conversion webhooks are refused: every version is served with the
//! same object shape (strategy `None`).

use serde_json::{json, Value};

use super::columns;
use super::jsonpath::JsonPath;
use super::structural;
use crate::api::admission::field::{child, index, Bad, FieldError};
use crate::api::admission::names;

/// `api-approved.kubernetes.io`: CRDs in Kubernetes' own groups need it.
const API_APPROVAL: &str = "api-approved.kubernetes.io";

/// Kubernetes' defaults: singular and list kind from the kind, conversion `None`, the storage
/// version in `status.storedVersions` (on every write, as the CRD strategy does).
pub fn apply_defaults(obj: &mut Value) {
    let Some(spec) = obj.get_mut("spec").and_then(Value::as_object_mut) else {
        return;
    };
    if let Some(names) = spec.get_mut("names").and_then(Value::as_object_mut) {
        let kind = names
            .get("kind")
            .and_then(Value::as_str)
            .unwrap_or("")
            .to_string();
        let empty = |v: Option<&Value>| v.and_then(Value::as_str).is_none_or(str::is_empty);
        if empty(names.get("singular")) && !kind.is_empty() {
            names.insert("singular".into(), json!(kind.to_lowercase()));
        }
        if empty(names.get("listKind")) && !kind.is_empty() {
            names.insert("listKind".into(), json!(format!("{kind}List")));
        }
    }
    if spec.get("conversion").is_none_or(Value::is_null) {
        spec.insert("conversion".into(), json!({"strategy": "None"}));
    }
    let storage = spec
        .get("versions")
        .and_then(Value::as_array)
        .and_then(|vs| {
            vs.iter()
                .find(|v| v.get("storage").and_then(Value::as_bool) == Some(true))
        })
        .and_then(|v| v.get("name").and_then(Value::as_str))
        .map(str::to_string);
    let Some(storage) = storage else { return };
    let Some(map) = obj.as_object_mut() else {
        return;
    };
    let status = map.entry("status").or_insert_with(|| json!({}));
    if !status.is_object() {
        *status = json!({});
    }
    let stored = status
        .as_object_mut()
        .expect("made an object above")
        .entry("storedVersions")
        .or_insert_with(|| json!([]));
    if let Some(list) = stored.as_array_mut() {
        if !list.iter().any(|v| v.as_str() == Some(storage.as_str())) {
            list.push(json!(storage));
        }
    } else {
        *stored = json!([storage]);
    }
}

fn s<'a>(v: &'a Value, ptr: &str) -> &'a str {
    v.pointer(ptr).and_then(Value::as_str).unwrap_or("")
}

fn established(crd: &Value) -> bool {
    crd.pointer("/status/conditions")
        .and_then(Value::as_array)
        .is_some_and(|cs| {
            cs.iter().any(|c| {
                c.get("type").and_then(Value::as_str) == Some("Established")
                    && c.get("status").and_then(Value::as_str) == Some("True")
            })
        })
}

/// `ValidateCustomResourceDefinition` (and its update checks when `old` is given). Object
/// metadata is validated by the generic validation; this adds the CRD's own rules.
pub fn validate(obj: &Value, old: Option<&Value>, errs: &mut Vec<FieldError>) {
    let spec = obj.get("spec").cloned().unwrap_or(json!({}));
    let name = s(obj, "/metadata/name");
    let group = s(&spec, "/group");
    let plural = s(&spec, "/names/plural");
    if !name.is_empty() && name != format!("{plural}.{group}") {
        errs.push(FieldError::invalid(
            "metadata.name",
            name,
            "must be spec.names.plural+\".\"+spec.group",
        ));
    }
    validate_spec(&spec, errs);
    let status = obj.get("status").cloned().unwrap_or(json!({}));
    if let Some(accepted) = status.get("acceptedNames") {
        validate_names(accepted, "status.acceptedNames", errs);
    }
    stored_versions(&status, &spec, errs);
    api_approval(obj, group, errs);
    if spec.get("preserveUnknownFields").and_then(Value::as_bool) == Some(true) {
        let was = old.and_then(|o| o.pointer("/spec/preserveUnknownFields"));
        if was.and_then(Value::as_bool) != Some(true) {
            errs.push(FieldError::invalid(
                "spec.preserveUnknownFields",
                true,
                "cannot set to true, set x-kubernetes-preserve-unknown-fields to true in spec.versions[*].schema instead",
            ));
        }
    }
    if let Some(old) = old {
        let immutable = |path: &str, ptr: &str, errs: &mut Vec<FieldError>| {
            let (new_v, old_v) = (s(obj, ptr), s(old, ptr));
            if new_v != old_v {
                errs.push(FieldError::invalid(path, new_v, "field is immutable"));
            }
        };
        immutable("spec.group", "/spec/group", errs);
        immutable("spec.names.plural", "/spec/names/plural", errs);
        if established(old) {
            immutable("spec.scope", "/spec/scope", errs);
            immutable("spec.names.kind", "/spec/names/kind", errs);
        }
    }
}

fn api_approval(obj: &Value, group: &str, errs: &mut Vec<FieldError>) {
    let protected = ["k8s.io", "kubernetes.io"]
        .iter()
        .any(|g| group == *g || group.ends_with(&format!(".{g}")));
    if !protected {
        return;
    }
    let path = format!("metadata.annotations[{API_APPROVAL}]");
    match obj
        .pointer("/metadata/annotations")
        .and_then(|a| a.get(API_APPROVAL))
        .and_then(Value::as_str)
    {
        Some(v) if !v.is_empty() => {}
        _ => errs.push(FieldError::required(
            &path,
            &format!("protected groups must have approval annotation \"{API_APPROVAL}\", see https://github.com/kubernetes/enhancements/pull/1111"),
        )),
    }
}

fn validate_spec(spec: &Value, errs: &mut Vec<FieldError>) {
    let group = s(spec, "/group");
    if group.is_empty() {
        errs.push(FieldError::required("spec.group", ""));
    } else {
        let problems = names::dns1123_subdomain(group);
        if !problems.is_empty() {
            errs.push(FieldError::invalid(
                "spec.group",
                group,
                &problems.join(","),
            ));
        } else if !group.contains('.') {
            errs.push(FieldError::invalid(
                "spec.group",
                group,
                "should be a domain with at least one dot",
            ));
        }
    }
    match s(spec, "/scope") {
        "" => errs.push(FieldError::required("spec.scope", "")),
        "Cluster" | "Namespaced" => {}
        other => errs.push(FieldError::not_supported(
            "spec.scope",
            other,
            &["Cluster", "Namespaced"],
        )),
    }
    let versions = spec
        .get("versions")
        .and_then(Value::as_array)
        .cloned()
        .unwrap_or_default();
    let mut seen = Vec::new();
    let mut storage = 0;
    for (i, v) in versions.iter().enumerate() {
        let path = index("spec.versions", i);
        let vname = s(v, "/name");
        if seen.contains(&vname) {
            // Reported once for the list below.
        } else {
            seen.push(vname);
        }
        if v.get("storage").and_then(Value::as_bool) == Some(true) {
            storage += 1;
        }
        let problems = names::dns1035_label(vname);
        if !problems.is_empty() {
            errs.push(FieldError::invalid(
                &child(&path, "name"),
                vname,
                &problems.join(","),
            ));
        }
        validate_version(v, &path, errs);
    }
    let versions_bad = Bad::Raw(format!(
        "[]apiextensions.CustomResourceDefinitionVersion{{{}}}",
        versions
            .iter()
            .map(|v| format!("{{Name:{:?}}}", s(v, "/name")))
            .collect::<Vec<_>>()
            .join(", ")
    ));
    if seen.len() != versions.len() {
        errs.push(FieldError::invalid(
            "spec.versions",
            versions_bad.clone(),
            "must contain unique version names",
        ));
    }
    if storage != 1 {
        errs.push(FieldError::invalid(
            "spec.versions",
            versions_bad,
            "must have exactly one version marked as storage version",
        ));
    }
    let names = spec.get("names").cloned().unwrap_or(json!({}));
    for k in ["plural", "singular", "kind", "listKind"] {
        if s(&names, &format!("/{k}")).is_empty() {
            errs.push(FieldError::required(&format!("spec.names.{k}"), ""));
        }
    }
    validate_names(&names, "spec.names", errs);
    conversion(spec, errs);
}

fn conversion(spec: &Value, errs: &mut Vec<FieldError>) {
    let Some(c) = spec.get("conversion").filter(|c| !c.is_null()) else {
        return;
    };
    match s(c, "/strategy") {
        "" => errs.push(FieldError::required("spec.conversion.strategy", "")),
        "None" => {
            if c.get("webhook").is_some_and(|w| !w.is_null()) {
                errs.push(FieldError::forbidden(
                    "spec.conversion.webhook",
                    "should not be set when strategy is not set to Webhook",
                ));
            }
        }
        "Webhook" => errs.push(FieldError::invalid(
            "spec.conversion.strategy",
            "Webhook",
            "conversion webhooks are not supported by this server: every version of a custom resource is served with the same schema shape (strategy None, only apiVersion changes)",
        )),
        other => errs.push(FieldError::not_supported(
            "spec.conversion.strategy",
            other,
            &["None", "Webhook"],
        )),
    }
}

/// `ValidateCustomResourceDefinitionNames`.
fn validate_names(names: &Value, path: &str, errs: &mut Vec<FieldError>) {
    let get = |k: &str| s(names, &format!("/{k}"));
    for k in ["plural", "singular"] {
        let v = get(k);
        let problems = names::dns1035_label(v);
        if !v.is_empty() && !problems.is_empty() {
            errs.push(FieldError::invalid(&child(path, k), v, &problems.join(",")));
        }
    }
    for k in ["kind", "listKind"] {
        let v = get(k);
        let problems = names::dns1035_label(&v.to_lowercase());
        if !v.is_empty() && !problems.is_empty() {
            errs.push(FieldError::invalid(
                &child(path, k),
                v,
                &format!(
                    "may have mixed case, but should otherwise match: {}",
                    problems.join(",")
                ),
            ));
        }
    }
    for list in ["shortNames", "categories"] {
        for (i, v) in names
            .get(list)
            .and_then(Value::as_array)
            .into_iter()
            .flatten()
            .enumerate()
        {
            let text = v.as_str().unwrap_or("");
            let problems = names::dns1035_label(text);
            if !problems.is_empty() {
                errs.push(FieldError::invalid(
                    &index(&child(path, list), i),
                    text,
                    &problems.join(","),
                ));
            }
        }
    }
    if !get("kind").is_empty() && get("kind") == get("listKind") {
        errs.push(FieldError::invalid(
            &child(path, "listKind"),
            get("listKind"),
            "kind and listKind may not be the same",
        ));
    }
}

fn stored_versions(status: &Value, spec: &Value, errs: &mut Vec<FieldError>) {
    let stored: Vec<&str> = status
        .get("storedVersions")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let path = "status.storedVersions";
    let shown = Bad::string_list(&stored.iter().map(|s| s.to_string()).collect::<Vec<_>>());
    if stored.is_empty() {
        errs.push(FieldError::invalid(
            path,
            shown,
            "must have at least one stored version",
        ));
        return;
    }
    let versions: Vec<&Value> = spec
        .get("versions")
        .and_then(Value::as_array)
        .map(|a| a.iter().collect())
        .unwrap_or_default();
    for v in &versions {
        if v.get("storage").and_then(Value::as_bool) == Some(true)
            && !stored.contains(&s(v, "/name"))
        {
            errs.push(FieldError::invalid(
                path,
                shown.clone(),
                &format!("must have the storage version {}", s(v, "/name")),
            ));
        }
    }
    for (i, sv) in stored.iter().enumerate() {
        if !versions.iter().any(|v| s(v, "/name") == *sv) {
            errs.push(FieldError::invalid(
                &index(path, i),
                *sv,
                &format!("missing from spec.versions; {sv} was previously a storage version, and must remain in spec.versions until a storage migration ensures no data remains persisted in {sv} and removes {sv} from status.storedVersions"),
            ));
        }
    }
}

fn validate_version(v: &Value, path: &str, errs: &mut Vec<FieldError>) {
    if v.get("deprecationWarning").is_some_and(|w| !w.is_null())
        && v.get("deprecated").and_then(Value::as_bool) != Some(true)
    {
        errs.push(FieldError::invalid(
            &child(path, "deprecationWarning"),
            s(v, "/deprecationWarning"),
            "can only be set for deprecated versions",
        ));
    }
    let status_enabled = v
        .pointer("/subresources/status")
        .is_some_and(|x| !x.is_null());
    let schema_path = format!("{path}.schema.openAPIV3Schema");
    match v
        .pointer("/schema/openAPIV3Schema")
        .filter(|x| !x.is_null())
    {
        None => errs.push(FieldError::required(&schema_path, "")),
        Some(schema) => structural::validate_schema(schema, &schema_path, status_enabled, errs),
    }
    if let Some(scale) = v.pointer("/subresources/scale").filter(|x| !x.is_null()) {
        let sub = format!("{path}.subresources");
        scale_paths(scale, &sub, errs);
    }
    for (i, col) in v
        .get("additionalPrinterColumns")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .enumerate()
    {
        column(
            col,
            &index(&child(path, "additionalPrinterColumns"), i),
            errs,
        );
    }
}

fn simple_json_path(p: &str, path: &str, errs: &mut Vec<FieldError>) -> bool {
    if p.is_empty() {
        errs.push(FieldError::invalid(path, p, "must not be empty"));
        false
    } else if !p.starts_with('.') {
        errs.push(FieldError::invalid(
            path,
            p,
            "must be a simple json path starting with .",
        ));
        false
    } else {
        true
    }
}

fn scale_paths(scale: &Value, sub: &str, errs: &mut Vec<FieldError>) {
    let spec_path = format!("{sub}.scale.specReplicasPath");
    match s(scale, "/specReplicasPath") {
        "" => errs.push(FieldError::required(&spec_path, "")),
        p => {
            if simple_json_path(p, &spec_path, errs) && !p.starts_with(".spec.") {
                errs.push(FieldError::invalid(
                    &spec_path,
                    p,
                    "should be a json path under .spec",
                ));
            }
        }
    }
    let status_path = format!("{sub}.scale.statusReplicasPath");
    match s(scale, "/statusReplicasPath") {
        "" => errs.push(FieldError::required(&status_path, "")),
        p => {
            if simple_json_path(p, &status_path, errs) && !p.starts_with(".status.") {
                errs.push(FieldError::invalid(
                    &status_path,
                    p,
                    "should be a json path under .status",
                ));
            }
        }
    }
    let sel_path = format!("{sub}.scale.labelSelectorPath");
    let sel = s(scale, "/labelSelectorPath");
    if !sel.is_empty()
        && simple_json_path(sel, &sel_path, errs)
        && !sel.starts_with(".spec.")
        && !sel.starts_with(".status.")
    {
        errs.push(FieldError::invalid(
            &sel_path,
            sel,
            "should be a json path under either .spec or .status",
        ));
    }
}

fn column(col: &Value, path: &str, errs: &mut Vec<FieldError>) {
    if s(col, "/name").is_empty() {
        errs.push(FieldError::required(&child(path, "name"), ""));
    }
    let must = format!("must be one of {}", columns::TYPES.join(","));
    match s(col, "/type") {
        "" => errs.push(FieldError::required(&child(path, "type"), &must)),
        t if !columns::TYPES.contains(&t) => {
            errs.push(FieldError::invalid(&child(path, "type"), t, &must))
        }
        _ => {}
    }
    let f = s(col, "/format");
    if !f.is_empty() && !columns::FORMATS.contains(&f) {
        errs.push(FieldError::invalid(
            &child(path, "format"),
            f,
            &format!("must be one of {}", columns::FORMATS.join(",")),
        ));
    }
    let jp = s(col, "/jsonPath");
    let jp_path = child(path, "JSONPath");
    if jp.is_empty() {
        errs.push(FieldError::required(&jp_path, ""));
    } else if simple_json_path(jp, &jp_path, errs) {
        if let Err(e) = JsonPath::parse(jp) {
            errs.push(FieldError::invalid(&jp_path, jp, &e));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn crd() -> Value {
        json!({
            "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
            "metadata": {"name": "widgets.example.com"},
            "spec": {"group": "example.com", "scope": "Namespaced",
                "names": {"plural": "widgets", "kind": "Widget", "shortNames": ["wd"]},
                "versions": [{"name": "v1", "served": true, "storage": true,
                    "schema": {"openAPIV3Schema": {"type": "object", "properties": {
                        "spec": {"type": "object", "properties": {
                            "replicas": {"type": "integer", "default": 1},
                            "ports": {"type": "array", "items": {"type": "integer"}}}},
                        "status": {"type": "object", "x-kubernetes-preserve-unknown-fields": true}}}},
                    "subresources": {"status": {}, "scale": {"specReplicasPath": ".spec.replicas", "statusReplicasPath": ".status.replicas"}},
                    "additionalPrinterColumns": [{"name": "Replicas", "type": "integer", "jsonPath": ".spec.replicas"}]}]}
        })
    }

    fn problems(obj: &Value) -> Vec<String> {
        let mut errs = Vec::new();
        validate(obj, None, &mut errs);
        errs.iter().map(|e| e.to_string()).collect()
    }

    fn defaulted(mut obj: Value) -> Value {
        apply_defaults(&mut obj);
        obj
    }

    #[test]
    fn a_valid_crd_is_defaulted_and_passes() {
        let obj = defaulted(crd());
        assert_eq!(obj["spec"]["names"]["singular"], "widget");
        assert_eq!(obj["spec"]["names"]["listKind"], "WidgetList");
        assert_eq!(obj["spec"]["conversion"]["strategy"], "None");
        assert_eq!(obj["status"]["storedVersions"], json!(["v1"]));
        assert_eq!(problems(&obj), Vec::<String>::new());
    }

    #[test]
    fn names_versions_and_conversion_are_checked() {
        let mut obj = defaulted(crd());
        obj["metadata"]["name"] = json!("widgets.other.com");
        obj["spec"]["versions"][0]["storage"] = json!(false);
        obj["spec"]["conversion"] = json!({"strategy": "Webhook"});
        obj["spec"]["names"]["shortNames"] = json!(["Bad_Name"]);
        let got = problems(&obj);
        assert!(got.contains(&"metadata.name: Invalid value: \"widgets.other.com\": must be spec.names.plural+\".\"+spec.group".to_string()), "{got:?}");
        assert!(
            got.iter()
                .any(|e| e.starts_with("spec.versions: Invalid value: ")
                    && e.ends_with("must have exactly one version marked as storage version")),
            "{got:?}"
        );
        assert!(got.iter().any(|e| e.starts_with("spec.conversion.strategy: Invalid value: \"Webhook\": conversion webhooks are not supported")), "{got:?}");
        assert!(
            got.iter().any(|e| e.starts_with(
                "spec.names.shortNames[0]: Invalid value: \"Bad_Name\": a DNS-1035 label"
            )),
            "{got:?}"
        );
        let mut obj = defaulted(crd());
        obj["spec"]["group"] = json!("example");
        obj["metadata"]["name"] = json!("widgets.example");
        assert_eq!(
            problems(&obj),
            vec![
                "spec.group: Invalid value: \"example\": should be a domain with at least one dot"
            ]
        );
    }

    #[test]
    fn schemas_must_be_structural() {
        let mut obj = defaulted(crd());
        obj["spec"]["versions"][0]["schema"] = Value::Null;
        assert_eq!(
            problems(&obj),
            vec!["spec.versions[0].schema.openAPIV3Schema: Required value"]
        );
        let mut obj = defaulted(crd());
        let props = &mut obj["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]
            ["spec"]["properties"];
        props["untyped"] = json!({"description": "no type"});
        props["list"] = json!({"type": "array"});
        props["bad"] = json!({"type": "string", "pattern": "(("});
        props["both"] = json!({"type": "object", "properties": {"a": {"type": "string"}}, "additionalProperties": {"type": "string"}});
        props["replicas"]["default"] = json!("one");
        let got = problems(&obj);
        let base = "spec.versions[0].schema.openAPIV3Schema.properties[spec].properties";
        for want in [
            format!("{base}[untyped].type: Required value: must not be empty for specified object fields"),
            format!("{base}[list].items: Required value: must be specified"),
            format!("{base}[both].additionalProperties: Forbidden: additionalProperties and properties are mutual exclusive"),
            format!("{base}[replicas].default: Invalid value: \"string\": {base}[replicas].default in body must be of type integer: \"string\""),
        ] {
            assert!(got.contains(&want), "missing {want}\n{got:#?}");
        }
        assert!(
            got.iter().any(|e| e.starts_with(&format!(
                "{base}[bad].pattern: Invalid value: \"((\": must be a valid regular expression"
            ))),
            "{got:#?}"
        );
    }

    #[test]
    fn subresources_and_columns_are_checked() {
        let mut obj = defaulted(crd());
        obj["spec"]["versions"][0]["subresources"]["scale"]["specReplicasPath"] =
            json!(".status.replicas");
        obj["spec"]["versions"][0]["additionalPrinterColumns"][0]["type"] = json!("text");
        assert_eq!(
            problems(&obj),
            vec![
                "spec.versions[0].subresources.scale.specReplicasPath: Invalid value: \".status.replicas\": should be a json path under .spec",
                "spec.versions[0].additionalPrinterColumns[0].type: Invalid value: \"text\": must be one of boolean,date,integer,number,string",
            ]
        );
    }

    #[test]
    fn updates_keep_group_and_plural() {
        let old = defaulted(crd());
        let mut new = old.clone();
        new["spec"]["group"] = json!("example.org");
        new["metadata"]["name"] = json!("widgets.example.org");
        let mut errs = Vec::new();
        validate(&new, Some(&old), &mut errs);
        assert_eq!(
            errs.iter().map(|e| e.to_string()).collect::<Vec<_>>(),
            vec!["spec.group: Invalid value: \"example.org\": field is immutable"]
        );
    }
}
