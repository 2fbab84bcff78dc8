//! `kubectl port-forward` to Wasm pods end to end: a real server with its embedded agent, the
//! hello-wasm component imported with `skiff image import`, real kubectl forwarding a local
//! port on 127.0.0.1 to the pod (through the websocket tunnel kubectl tries first) and to a
//! Service selecting it (through plain SPDY), and the errors kubectl prints.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use anyhow::{bail, ensure, Result};
use common::{free_port, guest, http_get, is_ready, wait_for, Skiff};

/// A running `kubectl port-forward`, killed when dropped.
struct Forward {
    child: Child,
    stderr: std::thread::JoinHandle<String>,
}

impl Forward {
    /// Starts kubectl and waits until it listens ("Forwarding from …").
    fn start(s: &Skiff, args: &[&str], websockets: bool) -> Result<Forward> {
        let mut cmd = s.kubectl_cmd(args);
        if !websockets {
            // kubectl's switch for its SPDY-over-websocket dialer: plain SPDY upgrade instead.
            cmd.env("KUBECTL_PORT_FORWARD_WEBSOCKETS", "false");
        }
        let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn()?;
        let (tx, rx) = mpsc::channel();
        if let Some(out) = child.stdout.take() {
            std::thread::spawn(move || {
                for line in BufReader::new(out).lines().map_while(Result::ok) {
                    let _ = tx.send(line);
                }
            });
        }
        let stderr = match child.stderr.take() {
            Some(mut err) => std::thread::spawn(move || {
                let mut s = String::new();
                let _ = std::io::Read::read_to_string(&mut err, &mut s);
                s
            }),
            None => std::thread::spawn(String::new),
        };
        let mut f = Forward { child, stderr };
        loop {
            match rx.recv_timeout(Duration::from_secs(30)) {
                Ok(line) if line.starts_with("Forwarding from") => return Ok(f),
                Ok(_) => {}
                Err(_) => {
                    let _ = f.child.kill();
                    let _ = f.child.wait();
                    bail!(
                        "kubectl {} did not start forwarding: {}",
                        args.join(" "),
                        f.stderr()
                    );
                }
            }
        }
    }

    /// Waits (bounded) for kubectl to exit; returns what it printed on stderr.
    fn exited(mut self) -> Result<String> {
        let exited = wait_for("kubectl port-forward to exit", || {
            Ok(self.child.try_wait()?.map(|_| ()))
        });
        if exited.is_err() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        let err = self.stderr();
        exited.map(|_| err)
    }

    fn stderr(&mut self) -> String {
        let handle = std::mem::replace(&mut self.stderr, std::thread::spawn(String::new));
        // The reader ends when kubectl exits; make sure it has.
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        handle.join().unwrap_or_default()
    }
}

impl Drop for Forward {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

const HELLO: &str = "apiVersion: v1
kind: Pod
metadata:
  name: hello
  labels: {app: hello}
spec:
  runtimeClassName: wasm
  containers:
  - name: main
    image: hello-wasm:v1
    ports:
    - containerPort: 8080
    readinessProbe:
      httpGet: {path: /healthz, port: 8080}
      periodSeconds: 1
---
apiVersion: v1
kind: Service
metadata:
  name: hello
spec:
  selector: {app: hello}
  ports:
  - port: 80
    targetPort: 8080
";

fn greets(resp: (u16, String), path: &str) -> Result<()> {
    let (code, body) = resp;
    ensure!(
        code == 200 && body.contains(&format!("Hello from Skiff! version=v1 path={path}")),
        "{code} {body}"
    );
    Ok(())
}

#[test]
fn port_forward_reaches_wasm_pods_and_their_services() -> Result<()> {
    let s = Skiff::start()?;
    s.import(&guest("hello_wasm")?, "hello-wasm:v1")?;
    s.import(&guest("spin")?, "spin:v1")?;
    let f = s.write("hello.yaml", HELLO)?;
    s.ok(&["apply", "-f", f.to_str().unwrap_or_default()])?;
    wait_for("hello Running and Ready", || {
        let p = s.json(&["get", "pod", "hello"])?;
        Ok((p["status"]["phase"] == "Running" && is_ready(&p)).then_some(()))
    })?;

    // pod/NAME, through the websocket tunnel kubectl tries first.
    let local = free_port()?;
    let fwd = Forward::start(
        &s,
        &["port-forward", "pod/hello", &format!("{local}:8080")],
        true,
    )?;
    greets(http_get(local, "/one")?, "/one")?;
    // Concurrent connections, each its own pair of streams.
    let many: Vec<_> = (0..4)
        .map(|i| std::thread::spawn(move || http_get(local, &format!("/c{i}"))))
        .collect();
    for (i, t) in many.into_iter().enumerate() {
        let resp = t
            .join()
            .map_err(|_| anyhow::anyhow!("request thread panicked"))??;
        greets(resp, &format!("/c{i}"))?;
    }
    drop(fwd);

    // svc/NAME (kubectl picks the selected pod and maps port 80 to targetPort 8080), over a
    // plain SPDY upgrade; two connections at once.
    let local = free_port()?;
    let fwd = Forward::start(
        &s,
        &["port-forward", "svc/hello", &format!("{local}:80")],
        false,
    )?;
    let a = std::thread::spawn(move || http_get(local, "/a"));
    let b = std::thread::spawn(move || http_get(local, "/b"));
    for (t, path) in [(a, "/a"), (b, "/b")] {
        let resp = t
            .join()
            .map_err(|_| anyhow::anyhow!("request thread panicked"))??;
        greets(resp, path)?;
    }
    drop(fwd);

    // A port the pod does not serve: kubectl prints the agent's error and gives up.
    let local = free_port()?;
    let fwd = Forward::start(
        &s,
        &["port-forward", "pod/hello", &format!("{local}:9999")],
        true,
    )?;
    let (code, _) = http_get(local, "/").unwrap_or((0, String::new()));
    ensure!(code == 0, "port 9999 answered HTTP {code}");
    let err = fwd.exited()?;
    ensure!(
        err.contains("does not serve port 9999") && err.contains("containerPort 8080"),
        "{err}"
    );

    // A running Wasm pod with no HTTP component: a clear refusal before any forwarding.
    let spin = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: spin\nspec:\n  runtimeClassName: wasm\n  containers:\n  - name: main\n    image: spin:v1\n";
    let f = s.write("spin.yaml", spin)?;
    s.ok(&["apply", "-f", f.to_str().unwrap_or_default()])?;
    wait_for("spin Running", || {
        let p = s.json(&["get", "pod", "spin"])?;
        Ok((p["status"]["phase"] == "Running").then_some(()))
    })?;
    let out = s
        .kubectl_cmd(&[
            "port-forward",
            "pod/spin",
            &format!("{}:8080", free_port()?),
        ])
        .stdin(Stdio::null())
        .output()?;
    let err = String::from_utf8_lossy(&out.stderr);
    ensure!(
        !out.status.success() && err.contains("no serving WebAssembly HTTP component"),
        "{err}"
    );

    s.ok(&["delete", "pod", "--all", "--timeout=30s"])?;
    Ok(())
}
