//! `mixed-app`: the Wasm frontend of a two-tier app whose backend is a Linux container.
//!
//! The backend (busybox `httpd`, see `backend.yaml`) serves `/inventory.json` from a ConfigMap
//! behind the Service `inventory`. This component calls it by that name with
//! `skiff_sdk::service("inventory")` — `http://inventory.<own namespace>.svc.cluster.local`,
//! resolved by the node's cluster DNS — and renders what it gets:
//!
//! | path | answer |
//! | --- | --- |
//! | `/` | 200, the inventory as text: one `name: count` line per item and the total |
//! | `/api/inventory` | 200, the inventory as JSON with its total and where it came from |
//! | `/healthz` | 200 `ok` (the readiness probe) |
//!
//! When the backend cannot be reached or answers an error, the frontend answers `502` and logs
//! why. `BACKEND_SERVICE` (default `inventory`) names another Service.

use serde::{Deserialize, Serialize};
use skiff_sdk::http::{Request, Response};
use skiff_sdk::{Error, Router};

skiff_sdk::http_handler!(handle);

/// What the backend serves.
#[derive(Debug, Serialize, Deserialize)]
struct Inventory {
    warehouse: String,
    items: Vec<Item>,
}

#[derive(Debug, Serialize, Deserialize)]
struct Item {
    name: String,
    count: u64,
}

/// What `/api/inventory` answers.
#[derive(Debug, Serialize)]
struct Summary<'a> {
    warehouse: &'a str,
    items: &'a [Item],
    total: u64,
    source: String,
}

fn handle(req: Request) -> Response {
    Router::new()
        .get("/", page)
        .get("/api/inventory", api)
        .get("/healthz", |_req: Request| "ok")
        .handle(req)
}

fn backend() -> skiff_sdk::Service {
    let name = skiff_sdk::env("BACKEND_SERVICE").unwrap_or_else(|| "inventory".to_string());
    skiff_sdk::service(&name)
}

/// The backend's inventory, or a `502` saying what went wrong (logged, not shown).
fn inventory(backend: &skiff_sdk::Service) -> Result<Inventory, Error> {
    let url = backend.url("/inventory.json");
    let resp = backend.get("/inventory.json")?;
    if !resp.is_success() {
        return Err(Error::status(
            502,
            format!("{url} answered {}: {}", resp.status, resp.body_text()),
        ));
    }
    let inventory: Inventory = serde_json::from_slice(&resp.body)
        .map_err(|e| Error::status(502, format!("{url} sent no inventory: {e}")))?;
    skiff_sdk::info!(
        "inventory fetched",
        source = url,
        warehouse = inventory.warehouse,
        items = inventory.items.len()
    );
    Ok(inventory)
}

fn total(inventory: &Inventory) -> u64 {
    inventory.items.iter().map(|i| i.count).sum()
}

fn page(_req: Request) -> Result<Response, Error> {
    let inventory = inventory(&backend())?;
    let mut text = format!(
        "Inventory of warehouse {} (from the container backend):\n",
        inventory.warehouse
    );
    for item in &inventory.items {
        text.push_str(&format!("{}: {}\n", item.name, item.count));
    }
    text.push_str(&format!("total: {}\n", total(&inventory)));
    Ok(Response::text(200, text))
}

fn api(_req: Request) -> Result<Response, Error> {
    let backend = backend();
    let inventory = inventory(&backend)?;
    Ok(Response::json(
        200,
        &Summary {
            warehouse: &inventory.warehouse,
            items: &inventory.items,
            total: total(&inventory),
            source: backend.url("/inventory.json"),
        },
    ))
}
