//! Test guest for tests/sdk.rs: one component that uses every part of skiff-sdk.
//!
//! The entry point is async (`http_handler!(async handle)`): `/fanout` awaits two Service
//! calls at once; every other path goes through a sync [`Router`].
//!
//! | route | what it shows |
//! | --- | --- |
//! | `GET /items`, `GET /items/:id`, `POST /items` | routing, path params, JSON in and out, 404 / 400 from `skiff_sdk::Error` |
//! | `GET /fail` | a handler's own error type → 500, cause logged |
//! | `GET /config` | `config::from_env`, `config::env_or`, `config::file` |
//! | `GET /call/:service` | the sync Service client (`service(name).get`) |
//! | `GET /fanout?a=..&b=..` | the async Service client, two calls awaited together |

use serde::{Deserialize, Serialize};
use skiff_sdk::http::{Request, Response};
use skiff_sdk::{config, Error, Router};

#[derive(Serialize, Deserialize)]
struct Item {
    id: u32,
    name: String,
}

#[derive(Deserialize)]
struct NewItem {
    name: String,
}

/// Built from the environment: `MAX_ITEMS`, `GREETING`, `TAGS` (JSON).
#[derive(Serialize, Deserialize)]
struct Settings {
    max_items: u32,
    greeting: Option<String>,
    #[serde(default)]
    tags: Vec<String>,
}

#[derive(Serialize)]
struct Report {
    settings: Settings,
    limit: u32,
    file: String,
}

/// Failures of `/fail`: the probe's own error type, not `skiff_sdk::Error`.
#[derive(Debug)]
struct DiskError(&'static str);

impl std::fmt::Display for DiskError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "disk failure: {}", self.0)
    }
}

fn items() -> Vec<Item> {
    let host = std::env::var("HOSTNAME").unwrap_or_default();
    vec![Item {
        id: 1,
        name: format!("tea from {host}"),
    }]
}

fn list(_req: Request) -> Response {
    Response::json(200, &items())
}

fn show(req: Request) -> Result<Response, Error> {
    let id: u32 = req
        .param("id")
        .unwrap_or_default()
        .parse()
        .map_err(|_| Error::bad_request("id must be a number"))?;
    let item = items()
        .into_iter()
        .find(|item| item.id == id)
        .ok_or_else(|| Error::not_found(format!("no item {id}")))?;
    Ok(Response::json(200, &item))
}

fn create(req: Request) -> Result<Response, Error> {
    let new: NewItem = req.json()?;
    skiff_sdk::info!("item created", id = 2, name = new.name);
    Ok(Response::json(
        201,
        &Item {
            id: 2,
            name: new.name,
        },
    ))
}

fn fail(_req: Request) -> Result<Response, DiskError> {
    Err(DiskError("probe-secret sector 7"))
}

fn show_config(_req: Request) -> Result<Response, Error> {
    let settings: Settings = config::from_env()?;
    let limit = config::env_or("LIMIT", 10u32)?;
    let path =
        config::env::<String>("CONFIG_FILE")?.unwrap_or_else(|| "/etc/config/greeting".into());
    let file = config::file(&path)?;
    Ok(Response::json(
        200,
        &Report {
            settings,
            limit,
            file,
        },
    ))
}

fn call(req: Request) -> Result<Response, Error> {
    let name = req.param("service").unwrap_or_default();
    let resp = skiff_sdk::service(name).get("/items/1")?;
    skiff_sdk::log::info("called", &[("service", &name), ("status", &resp.status)]);
    let item: Item = resp.body_json()?;
    Ok(Response::text(200, format!("{name} says {}\n", item.name)))
}

fn routes() -> Router {
    Router::new()
        .get("/items", list)
        .post("/items", create)
        .get("/items/:id", show)
        .get("/fail", fail)
        .get("/config", show_config)
        .get("/call/:service", call)
}

async fn fanout(req: &Request) -> Result<Response, Error> {
    let a = req.query_param("a").unwrap_or_default();
    let b = req.query_param("b").unwrap_or_default();
    let (first, second) = (skiff_sdk::service(&a), skiff_sdk::service(&b));
    let (ra, rb) = join(first.get_async("/items"), second.get_async("/items")).await;
    let (la, lb): (Vec<Item>, Vec<Item>) = (ra?.body_json()?, rb?.body_json()?);
    let names: Vec<String> = la.into_iter().chain(lb).map(|item| item.name).collect();
    Ok(Response::json(200, &names))
}

/// Polls both futures until both are done (they wait on WASI pollables concurrently).
async fn join<A: std::future::Future, B: std::future::Future>(
    a: A,
    b: B,
) -> (A::Output, B::Output) {
    use std::pin::pin;
    use std::task::Poll;
    let (mut a, mut b) = (pin!(a), pin!(b));
    let (mut out_a, mut out_b) = (None, None);
    std::future::poll_fn(|cx| {
        if out_a.is_none() {
            if let Poll::Ready(v) = a.as_mut().poll(cx) {
                out_a = Some(v);
            }
        }
        if out_b.is_none() {
            if let Poll::Ready(v) = b.as_mut().poll(cx) {
                out_b = Some(v);
            }
        }
        if out_a.is_some() && out_b.is_some() {
            Poll::Ready(())
        } else {
            Poll::Pending
        }
    })
    .await;
    match (out_a, out_b) {
        (Some(a), Some(b)) => (a, b),
        _ => unreachable!("poll_fn returned Ready only with both outputs"),
    }
}

async fn handle(req: Request) -> Response {
    skiff_sdk::info!("request", method = req.method, path = req.path);
    if req.path_only() == "/fanout" {
        return skiff_sdk::IntoResponse::into_response(fanout(&req).await);
    }
    routes().handle(req)
}

skiff_sdk::http_handler!(async handle);
