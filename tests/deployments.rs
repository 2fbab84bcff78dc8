//! Deployments, ReplicaSets and the garbage collector end to end, on Wasm pods driven by real
//! kubectl: rollout status/history/undo/restart, `set image` with maxUnavailable honoured
//! (checked by a kube-crate pod watcher), scale, self-healing, and delete cascades.

mod common;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{ensure, Context, Result};
use common::{env_version, free_port, guest, http_get, is_ready, wait_for, Skiff};
use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::runtime::watcher;
use serde_json::Value;

const ROLLOUT_TIMEOUT: &str = "--timeout=90s";

/// The port every hello_wasm pod serves on (an HTTP component needs one; without a hostPort
/// the agent binds 127.0.0.1:0).
const PORTS: &str = "        ports:\n        - {containerPort: 8080}\n";

fn deployment_yaml(name: &str, replicas: u32, strategy: &str, container_extra: &str) -> String {
    let container_extra = if container_extra.is_empty() {
        PORTS
    } else {
        container_extra
    };
    format!(
        "apiVersion: apps/v1
kind: Deployment
metadata:
  name: {name}
  annotations:
    kubernetes.io/change-cause: initial v1
spec:
  replicas: {replicas}
  selector:
    matchLabels: {{app: {name}}}
  strategy:
{strategy}
  template:
    metadata:
      labels: {{app: {name}}}
    spec:
      runtimeClassName: wasm
      terminationGracePeriodSeconds: 5
      containers:
      - name: main
        image: hello-wasm:v1
        env:
        - {{name: VERSION, value: v1}}
{container_extra}"
    )
}

const ROLLING_1_1: &str =
    "    type: RollingUpdate\n    rollingUpdate: {maxSurge: 1, maxUnavailable: 1}";

/// Pods of `app` that are not terminating.
fn live_pods(s: &Skiff, app: &str) -> Result<Vec<Value>> {
    let list = s.json(&["get", "pods", "-l", &format!("app={app}")])?;
    Ok(list["items"]
        .as_array()
        .cloned()
        .unwrap_or_default()
        .into_iter()
        .filter(|p| p["metadata"]["deletionTimestamp"].is_null())
        .collect())
}

fn names(pods: &[Value]) -> Vec<String> {
    pods.iter()
        .filter_map(|p| p["metadata"]["name"].as_str().map(str::to_string))
        .collect()
}

fn replica_sets(s: &Skiff, app: &str) -> Result<Vec<Value>> {
    let list = s.json(&["get", "rs", "-l", &format!("app={app}")])?;
    Ok(list["items"].as_array().cloned().unwrap_or_default())
}

fn revision(rs: &Value) -> &str {
    rs["metadata"]["annotations"]["deployment.kubernetes.io/revision"]
        .as_str()
        .unwrap_or("")
}

fn image(p: &Value) -> &str {
    p["spec"]["containers"][0]["image"].as_str().unwrap_or("")
}

/// Waits until exactly `n` live pods of `app` exist, all Ready and with `image`.
fn wait_pods(s: &Skiff, app: &str, n: usize, want_image: &str) -> Result<Vec<Value>> {
    wait_for(&format!("{n} ready {want_image} pods of {app}"), || {
        let pods = live_pods(s, app)?;
        let all = s.json(&["get", "pods", "-l", &format!("app={app}")])?;
        let terminating = all["items"].as_array().map_or(0, |a| a.len()) - pods.len();
        Ok((pods.len() == n
            && terminating == 0
            && pods.iter().all(|p| is_ready(p) && image(p) == want_image))
        .then_some(pods))
    })
}

/// Watches pods of `app` with the kube crate on its own thread and records the fewest
/// Ready, non-terminating pods seen after the initial list.
struct ReadyWatcher {
    stop: Arc<AtomicBool>,
    min: Arc<Mutex<Option<usize>>>,
    thread: Option<std::thread::JoinHandle<Result<()>>>,
}

impl ReadyWatcher {
    fn start(s: &Skiff, app: &str) -> Result<ReadyWatcher> {
        let kubeconfig = s.kubeconfig();
        let selector = format!("app={app}");
        let stop = Arc::new(AtomicBool::new(false));
        let min: Arc<Mutex<Option<usize>>> = Arc::new(Mutex::new(None));
        let (stop2, min2) = (stop.clone(), min.clone());
        let thread = std::thread::spawn(move || -> Result<()> {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            rt.block_on(async move {
                let kc = kube::config::Kubeconfig::read_from(&kubeconfig)?;
                let config = kube::Config::from_custom_kubeconfig(kc, &Default::default()).await?;
                let api: kube::Api<Pod> =
                    kube::Api::namespaced(kube::Client::try_from(config)?, "default");
                let mut stream = watcher(api, watcher::Config::default().labels(&selector)).boxed();
                let mut ready: HashMap<String, bool> = HashMap::new();
                let mut listed = false;
                while !stop2.load(Ordering::SeqCst) {
                    let Ok(next) =
                        tokio::time::timeout(Duration::from_millis(200), stream.next()).await
                    else {
                        continue;
                    };
                    let Some(ev) = next else { break };
                    match ev.context("pod watch")? {
                        watcher::Event::Init => {
                            ready.clear();
                            listed = false;
                        }
                        watcher::Event::InitApply(p) | watcher::Event::Apply(p) => {
                            let up = p.metadata.deletion_timestamp.is_none()
                                && p.status
                                    .as_ref()
                                    .and_then(|s| s.conditions.as_ref())
                                    .is_some_and(|cs| {
                                        cs.iter().any(|c| c.type_ == "Ready" && c.status == "True")
                                    });
                            ready.insert(p.metadata.name.clone().unwrap_or_default(), up);
                        }
                        watcher::Event::Delete(p) => {
                            ready.remove(&p.metadata.name.clone().unwrap_or_default());
                        }
                        watcher::Event::InitDone => listed = true,
                    }
                    if listed {
                        let n = ready.values().filter(|r| **r).count();
                        if let Ok(mut m) = min2.lock() {
                            *m = Some(m.map_or(n, |old| old.min(n)));
                        }
                    }
                }
                Ok(())
            })
        });
        wait_for("pod watcher to list", || {
            Ok(min.lock().ok().and_then(|m| *m))
        })?;
        Ok(ReadyWatcher {
            stop,
            min,
            thread: Some(thread),
        })
    }

    /// Stops watching; returns the minimum number of ready pods seen.
    fn finish(mut self) -> Result<usize> {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            t.join()
                .map_err(|_| anyhow::anyhow!("watcher thread panicked"))??;
        }
        let min = self.min.lock().map_err(|_| anyhow::anyhow!("poisoned"))?;
        (*min).context("watcher saw nothing")
    }
}

#[test]
fn rollout_history_undo_restart_and_scale() -> Result<()> {
    let s = Skiff::start()?;
    let hello = guest("hello_wasm")?;
    s.import(&hello, "hello-wasm:v1")?;
    s.import(&hello, "hello-wasm:v2")?;
    s.apply("web.yaml", &deployment_yaml("web", 3, ROLLING_1_1, ""))?;
    let out = s.ok(&["rollout", "status", "deploy/web", ROLLOUT_TIMEOUT])?;
    ensure!(out.contains("successfully rolled out"), "{out}");
    let first = wait_pods(&s, "web", 3, "hello-wasm:v1")?;
    let rss = replica_sets(&s, "web")?;
    ensure!(rss.len() == 1 && revision(&rss[0]) == "1", "{rss:#?}");
    let hash = rss[0]["metadata"]["labels"]["pod-template-hash"]
        .as_str()
        .unwrap_or("")
        .to_string();
    ensure!(!hash.is_empty() && rss[0]["metadata"]["name"] == format!("web-{hash}").as_str());
    ensure!(rss[0]["metadata"]["ownerReferences"][0]["kind"] == "Deployment");
    ensure!(first
        .iter()
        .all(|p| p["metadata"]["ownerReferences"][0]["name"] == rss[0]["metadata"]["name"]));

    // A new version (image and env together while paused, so it is one revision), watched:
    // never fewer than replicas - maxUnavailable = 2 Ready pods.
    let watch = ReadyWatcher::start(&s, "web")?;
    s.ok(&["rollout", "pause", "deploy/web"])?;
    s.ok(&["set", "image", "deploy/web", "main=hello-wasm:v2"])?;
    s.ok(&["set", "env", "deploy/web", "VERSION=v2"])?;
    s.ok(&[
        "annotate",
        "deploy/web",
        "kubernetes.io/change-cause=image v2",
        "--overwrite",
    ])?;
    ensure!(
        replica_sets(&s, "web")?.len() == 1,
        "a paused deployment must not roll out"
    );
    s.ok(&["rollout", "resume", "deploy/web"])?;
    let out = s.ok(&["rollout", "status", "deploy/web", ROLLOUT_TIMEOUT])?;
    ensure!(out.contains("successfully rolled out"), "{out}");
    let v2 = wait_pods(&s, "web", 3, "hello-wasm:v2")?;
    let min = watch.finish()?;
    ensure!(
        min >= 2,
        "only {min} Ready pods at one point of the rollout (maxUnavailable 1 of 3)"
    );
    ensure!(v2.iter().all(|p| env_version(p) == "v2"));
    let d = s.json(&["get", "deploy", "web"])?;
    ensure!(
        d["metadata"]["annotations"]["deployment.kubernetes.io/revision"] == "2",
        "{d}"
    );

    let history = s.ok(&["rollout", "history", "deploy/web"])?;
    let line = |rev: &str, cause: &str| {
        history
            .lines()
            .any(|l| l.split_whitespace().next() == Some(rev) && l.contains(cause))
    };
    ensure!(
        line("1", "initial v1") && line("2", "image v2"),
        "{history}"
    );

    // undo: revision 1's ReplicaSet is reused as revision 3.
    s.ok(&["rollout", "undo", "deploy/web"])?;
    s.ok(&["rollout", "status", "deploy/web", ROLLOUT_TIMEOUT])?;
    let back = wait_pods(&s, "web", 3, "hello-wasm:v1")?;
    ensure!(back.iter().all(|p| env_version(p) == "v1"));
    let rss = replica_sets(&s, "web")?;
    ensure!(rss.len() == 2, "{rss:#?}");
    let reused = rss
        .iter()
        .find(|r| r["metadata"]["name"] == format!("web-{hash}").as_str())
        .context("revision 1's ReplicaSet")?;
    ensure!(
        revision(reused) == "3" && reused["spec"]["replicas"] == 3,
        "{reused:#}"
    );
    let d = s.json(&["get", "deploy", "web"])?;
    ensure!(d["spec"]["template"]["spec"]["containers"][0]["image"] == "hello-wasm:v1");
    let history = s.ok(&["rollout", "history", "deploy/web"])?;
    ensure!(
        history.lines().any(|l| l.starts_with('3'))
            && !history.lines().any(|l| l.starts_with("1 ")),
        "{history}"
    );

    // restart replaces every pod.
    let before = names(&back);
    s.ok(&["rollout", "restart", "deploy/web"])?;
    s.ok(&["rollout", "status", "deploy/web", ROLLOUT_TIMEOUT])?;
    let after = wait_pods(&s, "web", 3, "hello-wasm:v1")?;
    ensure!(
        names(&after).iter().all(|n| !before.contains(n)),
        "{before:?} → {:?}",
        names(&after)
    );

    // scale 5 then 1.
    s.ok(&["scale", "deploy/web", "--replicas=5"])?;
    s.ok(&["rollout", "status", "deploy/web", ROLLOUT_TIMEOUT])?;
    wait_pods(&s, "web", 5, "hello-wasm:v1")?;
    s.ok(&["scale", "deploy/web", "--replicas=1"])?;
    s.ok(&["rollout", "status", "deploy/web", ROLLOUT_TIMEOUT])?;
    wait_pods(&s, "web", 1, "hello-wasm:v1")?;
    let describe = s.ok(&["describe", "deploy", "web"])?;
    ensure!(describe.contains("ScalingReplicaSet"), "{describe}");
    Ok(())
}

#[test]
fn served_body_follows_set_image_and_undo() -> Result<()> {
    let s = Skiff::start()?;
    let hello = guest("hello_wasm")?;
    s.import(&hello, "hello-wasm:v1")?;
    s.import(&hello, "hello-wasm:v2")?;
    let port = free_port()?;
    // One replica on a hostPort: the old pod must go before the new one can bind the port.
    let strategy = "    type: RollingUpdate\n    rollingUpdate: {maxSurge: 0, maxUnavailable: 1}";
    let ports = format!("        ports:\n        - {{containerPort: 8080, hostPort: {port}}}\n");
    s.apply("one.yaml", &deployment_yaml("one", 1, strategy, &ports))?;
    s.ok(&["rollout", "status", "deploy/one", ROLLOUT_TIMEOUT])?;
    let body = |want: &str| -> Result<String> {
        wait_for(&format!("body with version={want}"), || {
            Ok(http_get(port, "/which")
                .ok()
                .filter(|(code, b)| *code == 200 && b.contains(&format!("version={want} ")))
                .map(|(_, b)| b))
        })
    };
    body("v1")?;
    s.ok(&["rollout", "pause", "deploy/one"])?;
    s.ok(&["set", "image", "deploy/one", "main=hello-wasm:v2"])?;
    s.ok(&["set", "env", "deploy/one", "VERSION=v2"])?;
    s.ok(&["rollout", "resume", "deploy/one"])?;
    s.ok(&["rollout", "status", "deploy/one", ROLLOUT_TIMEOUT])?;
    body("v2")?;
    s.ok(&["rollout", "undo", "deploy/one", "--to-revision=1"])?;
    s.ok(&["rollout", "status", "deploy/one", ROLLOUT_TIMEOUT])?;
    let b = body("v1")?;
    ensure!(b.contains("Hello from Skiff!"), "{b}");
    Ok(())
}

#[test]
fn pods_heal_and_deletes_cascade_orphan_or_wait() -> Result<()> {
    let s = Skiff::start()?;
    s.import(&guest("hello_wasm")?, "hello-wasm:v1")?;
    // Self-healing: a deleted pod of a ReplicaSet is replaced.
    s.apply("heal.yaml", &deployment_yaml("heal", 2, ROLLING_1_1, ""))?;
    s.ok(&["rollout", "status", "deploy/heal", ROLLOUT_TIMEOUT])?;
    let pods = wait_pods(&s, "heal", 2, "hello-wasm:v1")?;
    let victim = names(&pods)[0].clone();
    s.ok(&["delete", "pod", &victim])?;
    let healed = wait_pods(&s, "heal", 2, "hello-wasm:v1")?;
    ensure!(!names(&healed).contains(&victim));

    // Background (kubectl's default): the ReplicaSet and pods go too.
    s.ok(&["delete", "deploy", "heal"])?;
    wait_for("heal's ReplicaSets and pods to go", || {
        let all = s.json(&["get", "pods", "-l", "app=heal"])?;
        Ok((replica_sets(&s, "heal")?.is_empty()
            && all["items"].as_array().is_some_and(|a| a.is_empty()))
        .then_some(()))
    })?;

    // Orphan: the ReplicaSet stays (without ownerReferences) and keeps its pods.
    s.apply("orph.yaml", &deployment_yaml("orph", 2, ROLLING_1_1, ""))?;
    s.ok(&["rollout", "status", "deploy/orph", ROLLOUT_TIMEOUT])?;
    let pods = names(&wait_pods(&s, "orph", 2, "hello-wasm:v1")?);
    s.ok(&["delete", "deploy", "orph", "--cascade=orphan"])?;
    ensure!(
        s.kubectl(&["get", "deploy", "orph"])?.status.code() != Some(0),
        "deployment still there"
    );
    let rss = replica_sets(&s, "orph")?;
    ensure!(
        rss.len() == 1 && rss[0]["metadata"]["ownerReferences"].is_null(),
        "{rss:#?}"
    );
    std::thread::sleep(Duration::from_secs(2));
    ensure!(
        names(&live_pods(&s, "orph")?) == pods,
        "orphaned pods must keep running"
    );
    s.ok(&["delete", "rs", "-l", "app=orph"])?;

    // Foreground: the deployment stays (deletionTimestamp) while a dependent remains.
    s.apply("fg.yaml", &deployment_yaml("fg", 1, ROLLING_1_1, ""))?;
    s.ok(&["rollout", "status", "deploy/fg", ROLLOUT_TIMEOUT])?;
    let pod = names(&wait_pods(&s, "fg", 1, "hello-wasm:v1")?)[0].clone();
    s.ok(&[
        "patch",
        "pod",
        &pod,
        "--type=merge",
        "-p",
        r#"{"metadata":{"finalizers":["example.com/hold"]}}"#,
    ])?;
    s.ok(&[
        "delete",
        "deploy",
        "fg",
        "--cascade=foreground",
        "--wait=false",
    ])?;
    std::thread::sleep(Duration::from_secs(3));
    let d = s.json(&["get", "deploy", "fg"])?;
    ensure!(d["metadata"]["deletionTimestamp"].is_string(), "{d}");
    ensure!(
        d["metadata"]["finalizers"]
            .as_array()
            .is_some_and(|f| f.iter().any(|x| x == "foregroundDeletion")),
        "{d}"
    );
    let rs = replica_sets(&s, "fg")?;
    ensure!(
        rs.len() == 1 && rs[0]["metadata"]["deletionTimestamp"].is_string(),
        "{rs:#?}"
    );
    let p = s.json(&["get", "pod", &pod])?;
    ensure!(p["metadata"]["deletionTimestamp"].is_string(), "{p}");
    s.ok(&[
        "patch",
        "pod",
        &pod,
        "--type=merge",
        "-p",
        r#"{"metadata":{"finalizers":null}}"#,
    ])?;
    wait_for("fg and its dependents to go", || {
        let gone = s.kubectl(&["get", "deploy", "fg"])?.status.code() != Some(0);
        Ok((gone
            && replica_sets(&s, "fg")?.is_empty()
            && s.kubectl(&["get", "pod", &pod])?.status.code() != Some(0))
        .then_some(()))
    })?;
    Ok(())
}
