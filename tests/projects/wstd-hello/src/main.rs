//! A plain `wasi:http/proxy` component: no skiff-sdk, just `wstd`'s HTTP server.

use wstd::http::{Body, Error, Request, Response, StatusCode};

#[wstd::http_server]
async fn main(request: Request<Body>) -> Result<Response<Body>, Error> {
    let path = request.uri().path().to_string();
    println!("wstd-hello: {} {path}", request.method());
    if path == "/healthz" {
        return Ok(Response::new("ok".into()));
    }
    let mut response = Response::new(format!("Hello from plain wstd! path={path}\n").into());
    if path == "/teapot" {
        *response.status_mut() = StatusCode::IM_A_TEAPOT;
    }
    Ok(response)
}
