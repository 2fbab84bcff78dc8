//! A corpus of several hundred malformed requests, generated: every truncation of valid JSON
//! and YAML objects, garbage protobuf, invalid names, wrong types, bad query values, broken
//! patches, hostile headers, alias bombs, deep nesting and bytes that are not UTF-8. Every one
//! is answered with a 4xx `metav1.Status` carrying a message; none is a 5xx or hangs; the
//! server still answers afterwards and its memory is back under a stated bound.

mod common;

use anyhow::{ensure, Context, Result};
use common::tls::Endpoint;
use common::Skiff;
use futures::StreamExt;
use serde_json::{json, Value};

/// One request: a label, the request head (`{LEN}` becomes the body's length) and the body.
struct Case {
    what: String,
    head: String,
    body: Vec<u8>,
}

const CMS: &str = "/api/v1/namespaces/default/configmaps";
const DEPLOYS: &str = "/apis/apps/v1/namespaces/default/deployments";
/// Requests in flight at once.
const CONCURRENCY: usize = 8;
/// Resident memory the server may gain over the whole corpus (it is mostly small requests; a
/// leak of even a few KiB per request would pass this).
const RSS_GROWTH_BOUND_KIB: u64 = 64 * 1024;

fn post(path: &str, content_type: &str, what: String, body: Vec<u8>) -> Case {
    Case {
        what,
        head: format!(
            "POST {path} HTTP/1.1\r\nContent-Type: {content_type}\r\nContent-Length: {{LEN}}"
        ),
        body,
    }
}

fn get(what: impl Into<String>, path_and_query: &str) -> Case {
    Case {
        what: what.into(),
        head: format!("GET {path_and_query} HTTP/1.1"),
        body: Vec::new(),
    }
}

fn config_map() -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap",
           "metadata": {"name": "corpus", "labels": {"app": "corpus"}},
           "data": {"greeting": "hello", "count": "3"}})
}

fn deployment() -> Value {
    json!({"apiVersion": "apps/v1", "kind": "Deployment",
           "metadata": {"name": "corpus"},
           "spec": {"replicas": 1, "selector": {"matchLabels": {"app": "corpus"}},
                    "template": {"metadata": {"labels": {"app": "corpus"}},
                                 "spec": {"containers": [{"name": "c", "image": "corpus:v1"}]}}}})
}

fn truncations(out: &mut Vec<Case>) -> Result<()> {
    for (path, obj) in [(CMS, config_map()), (DEPLOYS, deployment())] {
        let full = serde_json::to_vec(&obj)?;
        for cut in 1..full.len() {
            out.push(post(
                path,
                "application/json",
                format!("JSON cut at {cut}"),
                full[..cut].to_vec(),
            ));
        }
        let yaml = serde_yaml::to_string(&obj)?.into_bytes();
        // YAML prefixes ending at a line break can be whole documents; cut inside lines only,
        // and skip a prefix that is itself a named object (a value cut short is not malformed).
        let named = |prefix: &[u8]| {
            serde_yaml::from_slice::<Value>(prefix).is_ok_and(|v| v["metadata"]["name"].is_string())
        };
        for cut in (1..yaml.len()).filter(|c| yaml[c - 1] != b'\n').step_by(3) {
            if named(&yaml[..cut]) {
                continue;
            }
            out.push(post(
                path,
                "application/yaml",
                format!("YAML cut at {cut}"),
                yaml[..cut].to_vec(),
            ));
        }
    }
    Ok(())
}

fn garbage(out: &mut Vec<Case>) {
    // A fixed pseudo-random sequence: the same corpus on every run.
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for i in 0..40 {
        let mut body = b"k8s\0".to_vec();
        for _ in 0..(i * 7 + 3) {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            body.push((x & 0xff) as u8);
        }
        out.push(post(
            CMS,
            "application/vnd.kubernetes.protobuf",
            format!("protobuf garbage {i}"),
            body,
        ));
    }
    for (i, bytes) in [
        b"{\"metadata\":{\"name\":\"\xff\xfe\"}}".to_vec(),
        b"{\"metadata\":{\"name\":\"a\"},\"data\":{\"k\":\"\xc0\xaf\"}}".to_vec(),
        b"\xef\xbb\xbf\xff{}".to_vec(),
        b"{\"data\":{\"\xed\xa0\x80\":\"x\"}}".to_vec(),
        b"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: \xff}\n".to_vec(),
    ]
    .into_iter()
    .enumerate()
    {
        let ct = if bytes.starts_with(b"apiVersion") {
            "application/yaml"
        } else {
            "application/json"
        };
        out.push(post(CMS, ct, format!("not UTF-8 {i}"), bytes));
    }
    let deep = format!(
        "{{\"metadata\":{{\"name\":\"d\"}},\"data\":{}{}}}",
        "[".repeat(10_000),
        "]".repeat(10_000)
    );
    out.push(post(
        CMS,
        "application/json",
        "10,000-deep JSON".into(),
        deep.into_bytes(),
    ));
    let deep_yaml = format!(
        "metadata: {{name: d}}\ndata: {}{}\n",
        "[".repeat(10_000),
        "]".repeat(10_000)
    );
    out.push(post(
        CMS,
        "application/yaml",
        "10,000-deep YAML".into(),
        deep_yaml.into_bytes(),
    ));
    let mut bomb = String::from(
        "a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n",
    );
    for (prev, name) in ["a", "b", "c", "d", "e", "f", "g", "h"]
        .iter()
        .zip(["b", "c", "d", "e", "f", "g", "h", "i"])
    {
        bomb.push_str(&format!("{name}: &{name} [*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev},*{prev}]\n"));
    }
    out.push(post(
        CMS,
        "application/yaml",
        "YAML alias bomb".into(),
        bomb.into_bytes(),
    ));
}

fn names_and_types(out: &mut Vec<Case>) -> Result<()> {
    let long = "a".repeat(254);
    for name in [
        "Upper",
        "under_score",
        "-lead",
        "trail-",
        "dot..dot",
        "sp ace",
        "tab\t",
        "ünicode",
        "a/b",
        "a%2Fb",
        "..",
        ".",
        "",
        "a\\b",
        "new\nline",
        "semi;colon",
        "colon:",
        "star*",
        "q?",
        "hash#",
        long.as_str(),
    ] {
        let mut obj = config_map();
        obj["metadata"]["name"] = json!(name);
        out.push(post(
            CMS,
            "application/json",
            format!("name {name:?}"),
            serde_json::to_vec(&obj)?,
        ));
    }
    let wrong: [(&str, Value); 12] = [
        ("/data", json!(["a"])),
        ("/data", json!("text")),
        ("/data/greeting", json!(5)),
        ("/data/greeting", json!({"x": 1})),
        ("/metadata", json!("meta")),
        ("/metadata/labels", json!(["a"])),
        ("/metadata/labels/app", json!(7)),
        ("/metadata/annotations", json!(3)),
        ("/metadata/name", json!(12)),
        ("/binaryData/x", json!("not base64 !!!")),
        ("/immutable", json!("yes")),
        ("/apiVersion", json!(["v1"])),
    ];
    for (pointer, value) in wrong {
        let mut obj = config_map();
        set(&mut obj, pointer, value.clone());
        out.push(post(
            CMS,
            "application/json",
            format!("ConfigMap {pointer} = {value}"),
            serde_json::to_vec(&obj)?,
        ));
    }
    let wrong: [(&str, Value); 14] = [
        ("/spec/replicas", json!("three")),
        ("/spec/replicas", json!(-1)),
        ("/spec/replicas", json!(1.5)),
        ("/spec/selector", json!("app=corpus")),
        ("/spec/selector/matchLabels", json!({"app": "other"})),
        ("/spec/template", json!(4)),
        ("/spec/template/spec/containers", json!({"name": "c"})),
        ("/spec/template/spec/containers", json!([])),
        ("/spec/template/spec/containers/0/name", json!("Bad_Name")),
        ("/spec/template/spec/containers/0/image", json!(null)),
        (
            "/spec/template/spec/containers/0/ports",
            json!([{"containerPort": 70000}]),
        ),
        ("/spec/template/spec/restartPolicy", json!("Never")),
        ("/spec/strategy/type", json!("Sometimes")),
        (
            "/spec/template/spec/containers/0/resources/limits/memory",
            json!("lots"),
        ),
    ];
    for (pointer, value) in wrong {
        let mut obj = deployment();
        set(&mut obj, pointer, value.clone());
        out.push(post(
            DEPLOYS,
            "application/json",
            format!("Deployment {pointer} = {value}"),
            serde_json::to_vec(&obj)?,
        ));
    }
    Ok(())
}

/// Sets `pointer` in `obj`, creating objects on the way.
fn set(obj: &mut Value, pointer: &str, value: Value) {
    let mut at = obj;
    let parts: Vec<&str> = pointer.trim_start_matches('/').split('/').collect();
    for (i, part) in parts.iter().enumerate() {
        if i == parts.len() - 1 {
            match at {
                Value::Array(a) => {
                    if let Some(slot) = part.parse::<usize>().ok().and_then(|n| a.get_mut(n)) {
                        *slot = value;
                    }
                }
                _ => at[*part] = value,
            }
            return;
        }
        at = match at {
            Value::Array(a) => match part.parse::<usize>().ok().and_then(|n| a.get_mut(n)) {
                Some(v) => v,
                None => return,
            },
            _ => &mut at[*part],
        };
    }
}

fn queries(out: &mut Vec<Case>) {
    let bad: [(&str, &[&str]); 10] = [
        ("limit", &["abc", "1.5", "99999999999999999999999", "0x10"]),
        ("resourceVersion", &["abc", "-1", "1e3"]),
        ("resourceVersionMatch", &["Bogus", "exact", "NotOlderThan"]),
        ("timeoutSeconds", &["-1", "abc", "1.5"]),
        ("watch", &["abc", "2", "yes"]),
        (
            "labelSelector",
            &["a in (b", "!!x", "a=b=c", "=x", "x notin", "!"],
        ),
        (
            "fieldSelector",
            &[
                "spec.bogus=1",
                "metadata.name~x",
                "=x",
                "metadata.name=a,=b",
            ],
        ),
        ("allowWatchBookmarks", &["maybe"]),
        // Lists only: a watch ignores `continue`, as Kubernetes' does.
        ("continue", &["not-a-token", "eyJ2IjoxfQ"]),
        ("sendInitialEvents", &["sure"]),
    ];
    for (param, values) in bad {
        for value in values {
            let encoded: String = value
                .bytes()
                .map(|b| match b {
                    b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'.' | b'-' | b'_' => {
                        (b as char).to_string()
                    }
                    _ => format!("%{b:02X}"),
                })
                .collect();
            out.push(get(
                format!("list {param}={value}"),
                &format!("{CMS}?{param}={encoded}"),
            ));
            if param == "continue" {
                continue;
            }
            out.push(get(
                format!("watch {param}={value}"),
                &format!("{CMS}?watch=true&timeoutSeconds=5&{param}={encoded}"),
            ));
        }
    }
    for (what, path) in [
        ("unknown resource", "/api/v1/namespaces/default/widgets"),
        (
            "unknown subresource",
            "/api/v1/namespaces/default/configmaps/target/scale",
        ),
        ("unknown group", "/apis/nope.example.com/v1/things"),
        ("unknown version", "/apis/apps/v9/deployments"),
        ("dot-dot namespace", "/api/v1/namespaces/../configmaps"),
        ("dot namespace", "/api/v1/namespaces/./configmaps"),
        (
            "NUL in a name",
            "/api/v1/namespaces/default/configmaps/a%00b",
        ),
        (
            "slash in a name",
            "/api/v1/namespaces/default/configmaps/a%2Fb",
        ),
        (
            "too many segments",
            "/api/v1/namespaces/default/configmaps/target/status/extra/more",
        ),
    ] {
        out.push(get(what, path));
    }
}

fn patches(out: &mut Vec<Case>) {
    let path = format!("{CMS}/target");
    let patch = |what: &str, ct: &str, body: &str| Case {
        what: format!("patch: {what}"),
        head: format!("PATCH {path} HTTP/1.1\r\nContent-Type: {ct}\r\nContent-Length: {{LEN}}"),
        body: body.as_bytes().to_vec(),
    };
    let json_patch = "application/json-patch+json";
    let merge = "application/merge-patch+json";
    let strategic = "application/strategic-merge-patch+json";
    for (what, ct, body) in [
        (
            "unknown op",
            json_patch,
            r#"[{"op":"frobnicate","path":"/data/a"}]"#,
        ),
        ("no path", json_patch, r#"[{"op":"add","value":"x"}]"#),
        (
            "relative path",
            json_patch,
            r#"[{"op":"add","path":"data/a","value":"x"}]"#,
        ),
        (
            "add without value",
            json_patch,
            r#"[{"op":"add","path":"/data/a"}]"#,
        ),
        (
            "remove a missing key",
            json_patch,
            r#"[{"op":"remove","path":"/data/nothere"}]"#,
        ),
        (
            "a failing test",
            json_patch,
            r#"[{"op":"test","path":"/data/a","value":"other"}]"#,
        ),
        (
            "move from nowhere",
            json_patch,
            r#"[{"op":"move","from":"/data/none","path":"/data/b"}]"#,
        ),
        (
            "index past the end",
            json_patch,
            r#"[{"op":"add","path":"/metadata/finalizers/9","value":"x"}]"#,
        ),
        (
            "an object, not a list",
            json_patch,
            r#"{"op":"add","path":"/data/a","value":"x"}"#,
        ),
        ("not JSON", json_patch, "[{op:add}]"),
        (
            "remove metadata",
            json_patch,
            r#"[{"op":"remove","path":"/metadata"}]"#,
        ),
        (
            "replace the name",
            json_patch,
            r#"[{"op":"replace","path":"/metadata/name","value":"other"}]"#,
        ),
        (
            "garbage resourceVersion",
            json_patch,
            r#"[{"op":"replace","path":"/metadata/resourceVersion","value":"x"}]"#,
        ),
        (
            "data a number",
            json_patch,
            r#"[{"op":"replace","path":"/data","value":5}]"#,
        ),
        ("merge: not JSON", merge, "{data:"),
        ("merge: a list", merge, "[1,2]"),
        ("merge: metadata null", merge, r#"{"metadata":null}"#),
        ("merge: a wrong kind", merge, r#"{"kind":"Secret"}"#),
        ("merge: data a string", merge, r#"{"data":"text"}"#),
        (
            "merge: stale resourceVersion",
            merge,
            r#"{"metadata":{"resourceVersion":"1"}}"#,
        ),
        ("strategic: not JSON", strategic, "{{"),
        (
            "strategic: bad directive",
            strategic,
            r#"{"$patch":"explode"}"#,
        ),
        (
            "strategic: labels a list",
            strategic,
            r#"{"metadata":{"labels":["x"]}}"#,
        ),
        (
            "unsupported type",
            "application/json",
            r#"{"data":{"a":"b"}}"#,
        ),
        ("no content type", "", r#"{"data":{"a":"b"}}"#),
    ] {
        out.push(patch(what, ct, body));
    }
    out.push(Case {
        what: "apply without a field manager".into(),
        head: format!("PATCH {path} HTTP/1.1\r\nContent-Type: application/apply-patch+yaml\r\nContent-Length: {{LEN}}"),
        body: b"apiVersion: v1\nkind: ConfigMap\nmetadata: {name: target}\n".to_vec(),
    });
    out.push(Case {
        what: "apply of another kind".into(),
        head: format!("PATCH {path}?fieldManager=corpus HTTP/1.1\r\nContent-Type: application/apply-patch+yaml\r\nContent-Length: {{LEN}}"),
        body: b"apiVersion: v1\nkind: Secret\nmetadata: {name: target}\n".to_vec(),
    });
}

fn headers(out: &mut Vec<Case>) -> Result<()> {
    let body = serde_json::to_vec(&config_map())?;
    for ct in [
        "text/plain",
        "application/x-www-form-urlencoded",
        "application/jsonx",
        "multipart/form-data",
        "application/vnd.kubernetes.protobuf;stream=watch",
        "*/*",
        "application/",
        ";;;",
    ] {
        out.push(post(CMS, ct, format!("Content-Type {ct:?}"), body.clone()));
    }
    // (text/* falls back to JSON: a Service proxied through the API answers browsers.)
    for accept in [
        "application/xml",
        "image/png",
        "application/json;as=Nope;g=x;v=y",
    ] {
        out.push(Case {
            what: format!("Accept {accept:?}"),
            head: format!("GET {CMS} HTTP/1.1\r\nAccept: {accept}"),
            body: Vec::new(),
        });
    }
    for (what, head) in [
        ("Content-Length lies short", format!("POST {CMS} HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: 5")),
        ("a PUT to a collection", format!("PUT {CMS} HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: {{LEN}}")),
        ("a DELETE with a bad body", format!("DELETE {CMS}/target HTTP/1.1\r\nContent-Type: application/json\r\nContent-Length: {{LEN}}")),
    ] {
        out.push(Case { what: what.into(), head, body: body.clone() });
    }
    Ok(())
}

fn corpus() -> Result<Vec<Case>> {
    let mut out = Vec::new();
    truncations(&mut out)?;
    garbage(&mut out);
    names_and_types(&mut out)?;
    queries(&mut out);
    patches(&mut out);
    headers(&mut out)?;
    Ok(out)
}

/// Sends `case` with the admin token and `Connection: close`; returns what went wrong, if
/// anything.
async fn check(ep: &Endpoint, case: Case) -> Option<String> {
    let head = case.head.replace("{LEN}", &case.body.len().to_string());
    let (code, body) = match ep.request(&head, &case.body).await {
        Ok(answer) => answer,
        Err(e) => return Some(format!("{}: no answer: {e:#}", case.what)),
    };
    if !(400..500).contains(&code) {
        return Some(format!(
            "{}: {code} {}",
            case.what,
            body.chars().take(300).collect::<String>()
        ));
    }
    let status: Value = match serde_json::from_str(&body) {
        Ok(v) => v,
        Err(_) => return Some(format!("{}: {code} without a Status: {body:?}", case.what)),
    };
    let message = status["message"].as_str().unwrap_or_default();
    if status["kind"] != "Status" || status["code"] != code || message.is_empty() {
        return Some(format!("{}: {code} {body}", case.what));
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_malformed_request_is_a_4xx_status() -> Result<()> {
    let s = Skiff::control_plane()?;
    s.ok(&["create", "configmap", "target", "--from-literal=a=1"])?;
    let ep = Endpoint::of(&s)?;
    let cases = corpus()?;
    ensure!(
        cases.len() >= 500,
        "the corpus has only {} cases",
        cases.len()
    );
    let rss_before = s.rss_kib()?;
    let failures: Vec<String> = futures::stream::iter(cases.into_iter().map(|c| check(&ep, c)))
        .buffer_unordered(CONCURRENCY)
        .filter_map(|f| async move { f })
        .collect()
        .await;
    ensure!(
        failures.is_empty(),
        "{} failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    ensure!(
        s.ok(&["get", "--raw", "/readyz"])?.contains("ok"),
        "still serving"
    );
    let target = s.json(&["get", "configmap", "target"])?;
    ensure!(
        target["data"]["a"] == "1",
        "the patched object is untouched: {target}"
    );
    let rss_after = s.rss_kib().context("the server is still running")?;
    eprintln!(
        "{} KiB resident before the corpus, {rss_after} KiB after",
        rss_before
    );
    ensure!(
        rss_after <= rss_before + RSS_GROWTH_BOUND_KIB,
        "the server grew from {rss_before} to {rss_after} KiB"
    );
    Ok(())
}
