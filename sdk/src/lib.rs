//! # skiff-sdk
//!
//! The small library a developer links to write a WebAssembly microservice for
//! Skiff. A service is a WASI 0.2 (`wasm32-wasip2`)
//! **component** exporting `wasi:http/incoming-handler` (the `wasi:http/proxy` world); Skiff's
//! node agent runs it in wasmtime and hands it every HTTP request that arrives on the pod's port.
//! The SDK uses only the standard WASI 0.2 interfaces, and it is optional: any `wasi:http`
//! component runs on Skiff.
//!
//! The SDK hides the streaming WASI HTTP API behind a plain function: the whole request body
//! is read before your handler runs, and the whole response body is written after it returns.
//!
//! ```no_run
//! use skiff_sdk::http::{Request, Response};
//!
//! fn handle(req: Request) -> Response {
//!     let name = skiff_sdk::env("NAME").unwrap_or_else(|| "world".to_string());
//!     match req.path_only() {
//!         "/healthz" => Response::text(200, "ok"),
//!         _ => Response::text(200, format!("hello, {name}! you asked for {}\n", req.path)),
//!     }
//! }
//!
//! skiff_sdk::http_handler!(handle);
//! # fn main() {}
//! ```
//!
//! | module / item | what it gives |
//! | --- | --- |
//! | [`http_handler!`] | the entry point: `http_handler!(handle)` or `http_handler!(async handle)` |
//! | [`http`] | [`Request`](http::Request), [`Response`](http::Response), JSON in and out, plain outbound [`get`](http::get)/[`send`](http::send) |
//! | [`IntoResponse`] | what handlers return: `Response`, `Result<Response, E>` for any `E: Display` (an `Err` is a 500 with its cause logged) |
//! | [`Error`] | the SDK's error, carrying its HTTP status (`bad_request`, `not_found`, `status`, `internal`) |
//! | [`Router`] | method + path routing with `:param` and `*rest`, 404 and 405 |
//! | [`service`] | a client for another Service by name: `service("orders").get("/items")`, sync and async |
//! | [`config`] | typed config from env vars and mounted ConfigMap/Secret files |
//! | [`log`] and [`info!`] & co. | structured JSON log lines on stdout |
//!
//! Build it as a `cdylib` for `wasm32-wasip2`:
//!
//! ```toml
//! [lib]
//! crate-type = ["cdylib"]
//!
//! [dependencies]
//! skiff-sdk = { path = "../sdk" }
//! ```
//!
//! `cargo build --release --target wasm32-wasip2` then produces a component that
//! `skiff image import` accepts.
//!
//! Standard library I/O works as usual inside a handler: `println!` goes to the pod's log,
//! `std::fs` sees the directories the pod mounts (e.g. a ConfigMap volume at `/config`), and
//! environment variables come from the container's `env`.

#![deny(missing_docs)]

mod client;
pub mod config;
mod error;
mod handler;
pub mod http;
pub mod log;
mod router;
mod service;

pub use error::Error;
pub use handler::IntoResponse;
pub use router::Router;
pub use service::{namespace, service, Service};

/// The value of the environment variable `name`, as set in the pod's container spec.
///
/// Returns `None` when the variable is not set.
///
/// ```no_run
/// let version = skiff_sdk::env("VERSION").unwrap_or_else(|| "v1".to_string());
/// ```
pub fn env(name: &str) -> Option<String> {
    wasi::cli::environment::get_environment()
        .into_iter()
        .find(|(key, _)| key == name)
        .map(|(_, value)| value)
}

/// Implementation details of [`http_handler!`]; not a stable API.
#[doc(hidden)]
pub mod __private {
    pub use crate::handler::{serve, serve_async};
    pub use wasi;
}
