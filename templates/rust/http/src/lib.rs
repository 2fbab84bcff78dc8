//! {{name}}: a Skiff HTTP service — a WebAssembly component exporting `wasi:http/proxy`.
//!
//! Skiff gives every request a fresh instance of this component, so a handler keeps no state
//! between requests: keep state in a volume or another service.

use skiff_sdk::http::{Request, Response};

skiff_sdk::http_handler!(handle);

fn handle(req: Request) -> Response {
    // Anything written to stdout or stderr is the pod's log (`kubectl logs`).
    println!("{} {}", req.method, req.path);
    match req.path_only() {
        // The readiness probe in deploy.yaml asks this path.
        "/healthz" => Response::text(200, "ok"),
        _ => Response::text(200, "Hello from {{name}} (rust)!\n"),
    }
}
