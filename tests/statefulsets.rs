//! StatefulSets end to end, on Wasm pods driven by real kubectl: `web-0`, `web-1`, `web-2`
//! created in order (each only after its predecessor is Ready, checked by a kube-crate pod
//! watcher), one PersistentVolumeClaim per replica, a pod keeps its data directory across
//! deletion (the `counter` guest counts its starts in `/data/count`), `rollout status`, and
//! scale-down in reverse ordinal order, one pod at a time, keeping the claims.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{ensure, Context, Result};
use common::{guest, is_ready, wait_for, Skiff};
use futures::StreamExt;
use k8s_openapi::api::core::v1::Pod;
use kube::runtime::watcher;

const STATEFULSET: &str = "apiVersion: apps/v1
kind: StatefulSet
metadata:
  name: web
spec:
  replicas: 3
  serviceName: web
  podManagementPolicy: OrderedReady
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      runtimeClassName: wasm
      terminationGracePeriodSeconds: 2
      containers:
      - name: main
        image: counter:v1
        volumeMounts:
        - {name: data, mountPath: /data}
  volumeClaimTemplates:
  - metadata:
      name: data
    spec:
      accessModes: [ReadWriteOnce]
      resources:
        requests:
          storage: 1Gi
";

/// Watches the pods of `app=web` and logs their transitions in order: `ADDED web-0`,
/// `READY web-0`, `TERMINATING web-2`, `DELETED web-2`.
struct PodLog {
    stop: Arc<AtomicBool>,
    log: Arc<Mutex<Vec<String>>>,
    thread: Option<std::thread::JoinHandle<Result<()>>>,
}

#[derive(Default, Clone, Copy, PartialEq)]
struct Seen {
    ready: bool,
    terminating: bool,
}

impl PodLog {
    fn start(s: &Skiff) -> Result<PodLog> {
        let kubeconfig = s.kubeconfig();
        let stop = Arc::new(AtomicBool::new(false));
        let log: Arc<Mutex<Vec<String>>> = Arc::new(Mutex::new(Vec::new()));
        let listed = Arc::new(AtomicBool::new(false));
        let (stop2, log2, listed2) = (stop.clone(), log.clone(), listed.clone());
        let thread = std::thread::spawn(move || -> Result<()> {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            rt.block_on(async move {
                let kc = kube::config::Kubeconfig::read_from(&kubeconfig)?;
                let config = kube::Config::from_custom_kubeconfig(kc, &Default::default()).await?;
                let api: kube::Api<Pod> =
                    kube::Api::namespaced(kube::Client::try_from(config)?, "default");
                let mut stream = watcher(api, watcher::Config::default().labels("app=web")).boxed();
                let mut seen: std::collections::HashMap<String, Seen> = Default::default();
                let record = |line: String| {
                    if let Ok(mut l) = log2.lock() {
                        l.push(line);
                    }
                };
                while !stop2.load(Ordering::SeqCst) {
                    let Ok(next) =
                        tokio::time::timeout(Duration::from_millis(200), stream.next()).await
                    else {
                        continue;
                    };
                    let Some(ev) = next else { break };
                    match ev.context("pod watch")? {
                        watcher::Event::InitApply(p) | watcher::Event::Apply(p) => {
                            let name = p.metadata.name.clone().unwrap_or_default();
                            let now = Seen {
                                ready: p
                                    .status
                                    .as_ref()
                                    .and_then(|s| s.conditions.as_ref())
                                    .is_some_and(|cs| {
                                        cs.iter().any(|c| c.type_ == "Ready" && c.status == "True")
                                    }),
                                terminating: p.metadata.deletion_timestamp.is_some(),
                            };
                            let before = seen.insert(name.clone(), now);
                            if before.is_none() {
                                record(format!("ADDED {name}"));
                            }
                            let before = before.unwrap_or_default();
                            if now.ready && !before.ready {
                                record(format!("READY {name}"));
                            }
                            if now.terminating && !before.terminating {
                                record(format!("TERMINATING {name}"));
                            }
                        }
                        watcher::Event::Delete(p) => {
                            let name = p.metadata.name.clone().unwrap_or_default();
                            seen.remove(&name);
                            record(format!("DELETED {name}"));
                        }
                        watcher::Event::Init => seen.clear(),
                        watcher::Event::InitDone => listed2.store(true, Ordering::SeqCst),
                    }
                }
                Ok(())
            })
        });
        wait_for("pod watcher to list", || {
            Ok(listed.load(Ordering::SeqCst).then_some(()))
        })?;
        Ok(PodLog {
            stop,
            log,
            thread: Some(thread),
        })
    }

    fn lines(&self) -> Vec<String> {
        self.log.lock().map(|l| l.clone()).unwrap_or_default()
    }

    fn finish(mut self) -> Result<Vec<String>> {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            t.join()
                .map_err(|_| anyhow::anyhow!("watcher thread panicked"))??;
        }
        Ok(self.lines())
    }
}

/// The index of the first line at or after `from` that is one of `any`.
fn first(log: &[String], from: usize, any: &[&str]) -> Result<usize> {
    log.iter()
        .enumerate()
        .skip(from)
        .find(|(_, l)| any.contains(&l.as_str()))
        .map(|(i, _)| i)
        .with_context(|| format!("no {any:?} after line {from} in {log:#?}"))
}

fn pod_names(s: &Skiff) -> Result<Vec<String>> {
    let list = s.json(&["get", "pods", "-l", "app=web"])?;
    let mut names: Vec<String> = list["items"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|p| p["metadata"]["name"].as_str().map(str::to_string))
        .collect();
    names.sort();
    Ok(names)
}

#[test]
fn statefulset_order_storage_and_reverse_scale_down() -> Result<()> {
    let s = Skiff::start()?;
    s.import(&guest("counter")?, "counter:v1")?;
    let watch = PodLog::start(&s)?;
    let f = s.write("web.yaml", STATEFULSET)?;
    s.ok(&["apply", "-f", f.to_str().unwrap_or_default()])?;

    let out = s.ok(&["rollout", "status", "sts/web", "--timeout=120s"])?;
    ensure!(
        out.contains("partitioned roll out complete: 3 new pods have been updated"),
        "rollout status: {out}"
    );
    let sts = s.json(&["get", "sts", "web"])?;
    ensure!(sts["status"]["readyReplicas"] == 3, "{sts}");
    ensure!(
        sts["status"]["currentRevision"] == sts["status"]["updateRevision"],
        "{sts}"
    );

    // Created in order: each pod appeared only after its predecessor was Ready.
    let log = watch.lines();
    let ready0 = first(&log, 0, &["READY web-0"])?;
    let added1 = first(&log, 0, &["ADDED web-1"])?;
    let ready1 = first(&log, 0, &["READY web-1"])?;
    let added2 = first(&log, 0, &["ADDED web-2"])?;
    ensure!(
        first(&log, 0, &["ADDED web-0"])? < ready0 && ready0 < added1 && ready1 < added2,
        "pods not created in order: {log:#?}"
    );

    // One claim per replica, printed as kubectl prints claims.
    let pvcs = s.ok(&["get", "pvc"])?;
    let header: Vec<&str> = pvcs
        .lines()
        .next()
        .unwrap_or("")
        .split_whitespace()
        .collect();
    ensure!(
        header
            == [
                "NAME",
                "STATUS",
                "VOLUME",
                "CAPACITY",
                "ACCESS",
                "MODES",
                "STORAGECLASS",
                "VOLUMEATTRIBUTESCLASS",
                "AGE"
            ],
        "{pvcs}"
    );
    for i in 0..3 {
        ensure!(pvcs.contains(&format!("data-web-{i}")), "{pvcs}");
    }
    let claim = s.json(&["get", "pvc", "data-web-0"])?;
    ensure!(claim["metadata"]["labels"]["app"] == "web", "{claim}");

    // web-0 counts its first start; deleted, it comes back with the same data.
    wait_for("web-0 to print count=1", || {
        Ok(s.ok(&["logs", "web-0"])?.contains("count=1").then_some(()))
    })?;
    let uid = s.json(&["get", "pod", "web-0"])?["metadata"]["uid"].clone();
    // `--wait=false`: the replacement can appear within milliseconds, before kubectl's
    // wait starts watching, and kubectl would then wait for the new pod to be deleted.
    s.ok(&["delete", "pod", "web-0", "--wait=false"])?;
    wait_for("web-0 to be recreated and Ready", || {
        let p = s.json(&["get", "pod", "web-0"]).ok();
        Ok(p.filter(|p| p["metadata"]["uid"] != uid && is_ready(p))
            .map(|_| ()))
    })?;
    wait_for("the new web-0 to print count=2", || {
        Ok(s.ok(&["logs", "web-0"])?.contains("count=2").then_some(()))
    })?;
    let claim_uid = s.json(&["get", "pvc", "data-web-0"])?["metadata"]["uid"]
        .as_str()
        .unwrap_or_default()
        .to_string();
    let on_node = s.data_dir().join(format!(
        "agent/volumes/default/data-web-0_{claim_uid}/count"
    ));
    let count = std::fs::read_to_string(&on_node)
        .with_context(|| format!("reading {}", on_node.display()))?;
    ensure!(count.trim() == "2", "count file: {count:?}");

    // Scale down: web-2 goes first, and web-1 only once web-2 is gone.
    let mark = watch.lines().len();
    s.ok(&["scale", "sts", "web", "--replicas=1"])?;
    wait_for("only web-0 to remain", || {
        Ok((pod_names(&s)? == ["web-0"]).then_some(()))
    })?;
    let log = watch.finish()?;
    eprintln!("pod transitions: {log:?}");
    let going2 = first(&log, mark, &["TERMINATING web-2", "DELETED web-2"])?;
    let gone2 = first(&log, mark, &["DELETED web-2"])?;
    let going1 = first(&log, mark, &["TERMINATING web-1", "DELETED web-1"])?;
    ensure!(
        going2 < going1 && gone2 < going1,
        "scale-down not in reverse order one at a time: {:#?}",
        &log[mark..]
    );
    let pvcs = s.ok(&["get", "pvc", "-o", "name"])?;
    ensure!(
        pvcs.lines().count() == 3,
        "claims must remain after scale-down: {pvcs}"
    );
    let sts = s.json(&["get", "sts", "web"])?;
    ensure!(
        sts["status"]["replicas"] == 1 && sts["status"]["readyReplicas"] == 1,
        "{sts}"
    );
    Ok(())
}

/// A pod whose claim does not exist yet fails its container start with a clear message, and
/// starts once the claim is created.
#[test]
fn missing_claim_fails_the_container_start_until_created() -> Result<()> {
    let s = Skiff::start()?;
    s.import(&guest("counter")?, "counter:v1")?;
    let node = wait_for("the node to register", || {
        let nodes = s.json(&["get", "nodes"])?;
        Ok(nodes["items"][0]["metadata"]["name"]
            .as_str()
            .map(str::to_string))
    })?;
    // Bound to the node directly (no scheduler), so the agent itself meets the missing claim.
    let pod = format!(
        "apiVersion: v1
kind: Pod
metadata:
  name: lonely
spec:
  nodeName: {node}
  runtimeClassName: wasm
  terminationGracePeriodSeconds: 2
  containers:
  - name: main
    image: counter:v1
    volumeMounts:
    - {{name: data, mountPath: /data}}
  volumes:
  - name: data
    persistentVolumeClaim: {{claimName: late}}
"
    );
    let f = s.write("lonely.yaml", &pod)?;
    s.ok(&["apply", "-f", f.to_str().unwrap_or_default()])?;
    let waiting = wait_for("CreateContainerConfigError", || {
        let p = s.json(&["get", "pod", "lonely"])?;
        let w = p["status"]["containerStatuses"][0]["state"]["waiting"].clone();
        Ok((w["reason"] == "CreateContainerConfigError").then_some(w))
    })?;
    ensure!(
        waiting["message"]
            .as_str()
            .unwrap_or("")
            .contains("persistentvolumeclaim \"late\" not found"),
        "{waiting}"
    );
    let claim = "apiVersion: v1
kind: PersistentVolumeClaim
metadata:
  name: late
spec:
  accessModes: [ReadWriteOnce]
  resources:
    requests:
      storage: 1Gi
";
    let f = s.write("late.yaml", claim)?;
    s.ok(&["apply", "-f", f.to_str().unwrap_or_default()])?;
    wait_for("the pod to start once its claim exists", || {
        Ok(s.ok(&["logs", "lonely"])
            .unwrap_or_default()
            .contains("count=1")
            .then_some(()))
    })?;
    Ok(())
}
