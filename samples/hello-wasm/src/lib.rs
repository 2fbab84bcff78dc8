//! `hello-wasm`: the sample Skiff HTTP service.
//!
//! Answers every request with `Hello from Skiff! version=<VERSION> path=<path>` and logs
//! `<METHOD> <path>` to stdout. A few paths exist for Skiff's end-to-end tests:
//!
//! | path | answer |
//! | --- | --- |
//! | `/healthz` | 200 `ok` |
//! | `/env/<NAME>` | 200 with the value of env var `NAME`, 404 if unset |
//! | `/file?path=/config/x` | 200 with the file's content (WASI filesystem), 404 if missing |
//! | `/spin` | never answers: loops forever (per-request deadlines) |
//! | `/alloc?mb=N` | allocates and touches N MiB, then 200 (memory limits); 500 if the allocation is refused |
//! | `/fetch?url=U` | GETs `U` (e.g. `http://orders.shop/`, a cluster name) and answers with its status and body; 502 with the error if the request fails |
//! | `/tcp?addr=HOST:PORT&path=P` | GETs `P` over a plain `wasi:sockets` TCP connection; `local=<source ip>` and the body |
//! | `/dns?server=IP:53&name=N` | an A query over `wasi:sockets` UDP; `local=<source ip>` and the addresses |

use std::io::ErrorKind;

mod sockets;

use skiff_sdk::http::{Request, Response};

skiff_sdk::http_handler!(handle);

const MIB: usize = 1024 * 1024;

fn handle(req: Request) -> Response {
    println!("{} {}", req.method, req.path);
    let path = req.path_only();
    if let Some(name) = path.strip_prefix("/env/") {
        return env_var(name);
    }
    match path {
        "/healthz" => Response::text(200, "ok"),
        "/file" => file(&req),
        "/spin" => spin(),
        "/sleep" => sleep(&req),
        "/alloc" => alloc(&req),
        "/fetch" => fetch(&req),
        "/tcp" => sockets::tcp(&req),
        "/dns" => sockets::dns(&req),
        _ => {
            let version = skiff_sdk::env("VERSION").unwrap_or_else(|| "v1".to_string());
            Response::text(
                200,
                format!("Hello from Skiff! version={version} path={}\n", req.path),
            )
        }
    }
}

fn fetch(req: &Request) -> Response {
    let Some(url) = req.query_param("url") else {
        return Response::text(400, "missing query parameter: url\n");
    };
    match skiff_sdk::http::get(&url) {
        Ok(resp) => Response::new(resp.status)
            .with_header("content-type", "text/plain")
            .with_body(resp.body),
        Err(err) => Response::text(502, format!("{err}\n")),
    }
}

fn env_var(name: &str) -> Response {
    match skiff_sdk::env(name) {
        Some(value) => Response::text(200, value),
        None => Response::text(404, format!("env var {name} is not set\n")),
    }
}

fn file(req: &Request) -> Response {
    let Some(path) = req.query_param("path") else {
        return Response::text(400, "missing query parameter: path\n");
    };
    match std::fs::read(&path) {
        Ok(content) => Response::new(200)
            .with_header("content-type", "text/plain")
            .with_body(content),
        Err(err) if err.kind() == ErrorKind::NotFound => {
            Response::text(404, format!("{path}: not found\n"))
        }
        Err(err) => Response::text(500, format!("{path}: {err}\n")),
    }
}

/// Burns CPU forever without making any host call; only the host's deadline stops it.
/// Answers after `ms` milliseconds (a slow request, for concurrency).
fn sleep(req: &Request) -> Response {
    let Some(ms) = req.query_param("ms").and_then(|ms| ms.parse::<u64>().ok()) else {
        return Response::text(400, "query parameter ms must be a number of milliseconds\n");
    };
    std::thread::sleep(std::time::Duration::from_millis(ms.min(60_000)));
    Response::text(200, format!("slept {ms} ms\n"))
}

fn spin() -> ! {
    let mut counter = 0u64;
    loop {
        counter = std::hint::black_box(counter.wrapping_add(1));
    }
}

fn alloc(req: &Request) -> Response {
    let Some(mb) = req
        .query_param("mb")
        .and_then(|mb| mb.parse::<usize>().ok())
    else {
        return Response::text(400, "query parameter mb must be a number of MiB\n");
    };
    let mut chunks: Vec<Vec<u8>> = Vec::with_capacity(mb);
    for i in 0..mb {
        let mut chunk = Vec::new();
        if chunk.try_reserve_exact(MIB).is_err() {
            return Response::text(
                500,
                format!("allocation failed after {i} MiB of {mb} MiB\n"),
            );
        }
        // Touch every byte so the memory is really committed.
        chunk.resize(MIB, (i % 251) as u8 + 1);
        chunks.push(chunk);
    }
    let touched: usize = std::hint::black_box(&chunks).iter().map(Vec::len).sum();
    Response::text(200, format!("allocated {} MiB\n", touched / MIB))
}
