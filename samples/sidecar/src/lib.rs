//! `sidecar`: a Wasm HTTP app sharing its pod with a Linux container sidecar.
//!
//! The sidecar (busybox) writes a heartbeat line into an `emptyDir` volume both containers
//! mount, every two seconds, and serves that volume on `127.0.0.1:9000`, which only the pod
//! itself can reach. This component shows both ways a Wasm container and a container in the
//! same pod work together:
//!
//! | path | answer |
//! | --- | --- |
//! | `/` | 200 `from the shared volume: <heartbeat>`: the file read through the WASI filesystem |
//! | `/localhost` | 200 `from localhost:9000: <heartbeat>`: the same file fetched from the sidecar's server on the pod's localhost |
//! | `/healthz` | 200 `ok` (the readiness probe) |
//!
//! `HEARTBEAT_FILE` (default `/shared/heartbeat.txt`) and `SIDECAR_URL` (default
//! `http://localhost:9000/heartbeat.txt`) override where it looks.

use std::io::ErrorKind;

use skiff_sdk::http::{Request, Response};

skiff_sdk::http_handler!(handle);

fn handle(req: Request) -> Response {
    println!("{} {}", req.method, req.path);
    match req.path_only() {
        "/healthz" => Response::text(200, "ok"),
        "/" => from_volume(),
        "/localhost" => from_localhost(),
        other => Response::text(404, format!("no route for {other}; try / or /localhost\n")),
    }
}

/// The heartbeat file in the shared `emptyDir`.
fn from_volume() -> Response {
    let path =
        skiff_sdk::env("HEARTBEAT_FILE").unwrap_or_else(|| "/shared/heartbeat.txt".to_string());
    match std::fs::read_to_string(&path) {
        Ok(beat) => Response::text(200, format!("from the shared volume: {}\n", beat.trim())),
        // The sidecar writes its first heartbeat as it starts: not there yet is temporary.
        Err(err) if err.kind() == ErrorKind::NotFound => Response::text(
            503,
            format!("the sidecar has not written {path} yet; retry in a moment\n"),
        ),
        Err(err) => Response::text(500, format!("reading {path}: {err}\n")),
    }
}

/// The heartbeat as the sidecar's own HTTP server (on the pod's loopback) serves it.
fn from_localhost() -> Response {
    let url = skiff_sdk::env("SIDECAR_URL")
        .unwrap_or_else(|| "http://localhost:9000/heartbeat.txt".to_string());
    match skiff_sdk::http::get(&url) {
        Ok(resp) if resp.status == 200 => {
            let beat = String::from_utf8_lossy(&resp.body);
            Response::text(200, format!("from localhost:9000: {}\n", beat.trim()))
        }
        Ok(resp) => Response::text(
            502,
            format!(
                "{url} answered {}: {}\n",
                resp.status,
                String::from_utf8_lossy(&resp.body)
            ),
        ),
        Err(err) => Response::text(502, format!("{url}: {err}\n")),
    }
}
