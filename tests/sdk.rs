//! skiff-sdk end to end: the `sdk-probe` component (tests/guests/sdk-probe), built on the SDK,
//! runs as two Wasm pods behind two Services in namespace `shop` of a networked cluster. The
//! test drives it over the pod network and checks what the SDK promises: routing with path
//! parameters, 404 and 405, JSON in and out with a 400 naming serde's error, a handler error
//! turned into a 500 whose cause is in `kubectl logs` (and not in the body), structured JSON
//! log lines, typed config from env vars and a mounted ConfigMap file, the async entry point,
//! and the Service client (sync and async) resolving `NAME.<own namespace>.svc.cluster.local`
//! with the namespace from the downward API.

mod common;

use anyhow::{bail, Context, Result};
use common::{guest, wait_for, Skiff};
use serde_json::{json, Value};

/// Two pods of the probe (`orders`, `stock`), each behind a Service of its name, in `shop`.
const PROBE: &str = r#"
apiVersion: v1
kind: Namespace
metadata: {name: shop}
---
apiVersion: v1
kind: ConfigMap
metadata: {name: probe-config, namespace: shop}
data:
  greeting: "hello from a file\n"
---
apiVersion: v1
kind: Service
metadata: {name: orders, namespace: shop}
spec:
  selector: {app: orders}
  ports: [{port: 80, targetPort: 8080}]
---
apiVersion: v1
kind: Service
metadata: {name: stock, namespace: shop}
spec:
  selector: {app: stock}
  ports: [{port: 80, targetPort: 8080}]
"#;

fn probe_pod(name: &str) -> String {
    format!(
        r#"
apiVersion: v1
kind: Pod
metadata: {{name: {name}, namespace: shop, labels: {{app: {name}}}}}
spec:
  runtimeClassName: wasm
  containers:
  - name: main
    image: sdk-probe:v1
    imagePullPolicy: IfNotPresent
    env:
    - {{name: MAX_ITEMS, value: "25"}}
    - {{name: GREETING, value: "hi"}}
    - {{name: TAGS, value: '["a","b"]'}}
    - {{name: LIMIT, value: "3"}}
    - name: POD_NAMESPACE
      valueFrom: {{fieldRef: {{fieldPath: metadata.namespace}}}}
    volumeMounts: [{{name: config, mountPath: /etc/config}}]
  volumes: [{{name: config, configMap: {{name: probe-config}}}}]
"#
    )
}

/// An answer: status, headers (names lower-cased), body.
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }

    fn json(&self) -> Result<Value> {
        serde_json::from_str(&self.body).with_context(|| format!("JSON body: {:?}", self.body))
    }
}

/// `METHOD url` (with a JSON `body` if given) from the node, inside the cluster's namespace.
fn request(s: &Skiff, method: &str, url: &str, body: Option<&str>) -> Result<Answer> {
    let mut args = vec!["-sS", "-i", "--max-time", "10", "-X", method];
    if let Some(body) = body {
        args.extend([
            "-H",
            "content-type: application/json",
            "--data-binary",
            body,
        ]);
    }
    args.push(url);
    let out = s.in_netns("curl", &args)?;
    let (head, body) = out
        .split_once("\r\n\r\n")
        .with_context(|| format!("no header block in {out:?}"))?;
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|line| line.split_whitespace().nth(1))
        .and_then(|code| code.parse().ok())
        .with_context(|| format!("no status line in {out:?}"))?;
    let headers = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    Ok(Answer {
        status,
        headers,
        body: body.to_string(),
    })
}

/// The pod's log lines that are JSON objects.
fn json_logs(s: &Skiff, pod: &str) -> Result<Vec<Value>> {
    let out = s.ok(&["-n", "shop", "logs", pod])?;
    Ok(out
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(Value::is_object)
        .collect())
}

/// Waits until the pod's log has a JSON line containing every field of `expected`.
fn wait_log_line(s: &Skiff, pod: &str, expected: Value) -> Result<Value> {
    let fields = expected.as_object().cloned().unwrap_or_default();
    wait_for(&format!("a log line of {pod} with {expected}"), || {
        Ok(json_logs(s, pod)?
            .into_iter()
            .find(|line| fields.iter().all(|(k, v)| line.get(k) == Some(v))))
    })
}

#[test]
fn an_sdk_component_routes_parses_json_reads_config_logs_and_calls_services_by_name() -> Result<()>
{
    if !common::network_available() {
        return Ok(());
    }
    let s = Skiff::start_networked()?;
    s.import(&guest("sdk_probe")?, "sdk-probe:v1")?;
    s.apply("probe.yaml", PROBE)?;
    s.apply("orders.yaml", &probe_pod("orders"))?;
    s.apply("stock.yaml", &probe_pod("stock"))?;
    let ip = wait_for("pod orders Ready with an IP", || {
        let p = s.json(&["-n", "shop", "get", "pod", "orders"])?;
        let ip = p["status"]["podIP"].as_str().unwrap_or("").to_string();
        Ok((common::is_ready(&p) && !ip.is_empty()).then_some(ip))
    })?;
    let base = format!("http://{ip}:8080");

    // Routing, path parameters and JSON out.
    let list = request(&s, "GET", &format!("{base}/items"), None)?;
    assert_eq!(list.status, 200, "{}", list.body);
    assert_eq!(list.header("content-type"), Some("application/json"));
    assert_eq!(list.json()?, json!([{"id": 1, "name": "tea from orders"}]));
    let one = request(&s, "GET", &format!("{base}/items/1"), None)?;
    assert_eq!(
        (one.status, one.json()?),
        (200, json!({"id": 1, "name": "tea from orders"}))
    );
    // `skiff_sdk::Error`s answer with their status and message.
    let missing = request(&s, "GET", &format!("{base}/items/9"), None)?;
    assert_eq!(
        (missing.status, missing.body.as_str()),
        (404, "no item 9\n")
    );
    let bad_id = request(&s, "GET", &format!("{base}/items/x"), None)?;
    assert_eq!(
        (bad_id.status, bad_id.body.as_str()),
        (400, "id must be a number\n")
    );
    // The router's own 404 and 405 (with `allow`).
    let nowhere = request(&s, "GET", &format!("{base}/nowhere"), None)?;
    assert_eq!(
        (nowhere.status, nowhere.body.as_str()),
        (404, "no route for /nowhere\n")
    );
    let not_allowed = request(&s, "DELETE", &format!("{base}/items"), None)?;
    assert_eq!(not_allowed.status, 405, "{}", not_allowed.body);
    assert_eq!(not_allowed.header("allow"), Some("GET, HEAD, POST"));

    // JSON in: a good body is created, a bad one is a 400 naming serde's error.
    let created = request(
        &s,
        "POST",
        &format!("{base}/items"),
        Some(r#"{"name":"scone"}"#),
    )?;
    assert_eq!(
        (created.status, created.json()?),
        (201, json!({"id": 2, "name": "scone"}))
    );
    let bad = request(&s, "POST", &format!("{base}/items"), Some(r#"{"nme":1}"#))?;
    assert_eq!(bad.status, 400);
    assert!(
        bad.body
            .starts_with("invalid JSON body: missing field `name`"),
        "{}",
        bad.body
    );

    // A handler's own error: a generic 500; the cause goes to the log only.
    let failed = request(&s, "GET", &format!("{base}/fail"), None)?;
    assert_eq!(
        (failed.status, failed.body.as_str()),
        (500, "internal server error\n")
    );
    let cause = wait_log_line(
        &s,
        "orders",
        json!({"level": "error", "msg": "handler failed", "status": 500}),
    )?;
    assert_eq!(cause["cause"], "disk failure: probe-secret sector 7");

    // Typed config: a struct from env vars, a default-able var, a mounted ConfigMap file.
    let config = request(&s, "GET", &format!("{base}/config"), None)?;
    assert_eq!(config.status, 200, "{}", config.body);
    assert_eq!(
        config.json()?,
        json!({
            "settings": {"max_items": 25, "greeting": "hi", "tags": ["a", "b"]},
            "limit": 3,
            "file": "hello from a file\n",
        })
    );

    // Structured logs: the macro keeps JSON types; every request is logged by the async
    // entry point before it hands over to the router.
    wait_log_line(
        &s,
        "orders",
        json!({"level": "info", "msg": "item created", "id": 2, "name": "scone"}),
    )?;
    wait_log_line(
        &s,
        "orders",
        json!({"level": "info", "msg": "request", "method": "DELETE", "path": "/items"}),
    )?;

    // The Service client: `stock` and `orders` exist only in `shop`, the namespace the pod
    // learns from the downward API. Sync client first (once the Service has an endpoint).
    let called = wait_for("orders to reach stock by Service name", || {
        let answer = request(&s, "GET", &format!("{base}/call/stock"), None)?;
        Ok((answer.status == 200).then_some(answer))
    })?;
    assert_eq!(called.body, "stock says tea from stock\n");
    wait_log_line(
        &s,
        "orders",
        json!({"level": "info", "msg": "called", "service": "stock", "status": "200"}),
    )?;
    // The async client: two calls awaited together, one of them back to this pod's Service.
    let fanout = request(&s, "GET", &format!("{base}/fanout?a=orders&b=stock"), None)?;
    assert_eq!(fanout.status, 200, "{}", fanout.body);
    assert_eq!(fanout.json()?, json!(["tea from orders", "tea from stock"]));
    // A Service that does not exist: the client's error is a 502 whose cause is logged.
    let nothing = request(&s, "GET", &format!("{base}/call/nothing"), None)?;
    if nothing.status != 502 {
        bail!(
            "calling a missing Service: {} {}",
            nothing.status,
            nothing.body
        );
    }
    assert_eq!(nothing.body, "bad gateway\n");
    let upstream = wait_log_line(
        &s,
        "orders",
        json!({"level": "error", "msg": "request failed", "status": 502}),
    )?;
    let cause = upstream["cause"].as_str().unwrap_or_default();
    assert!(
        cause.contains("http://nothing.shop.svc.cluster.local/items/1"),
        "{upstream}"
    );
    Ok(())
}
