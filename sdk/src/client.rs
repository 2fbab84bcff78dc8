//! Outgoing HTTP requests from a Skiff service (`wasi:http/outgoing-handler`): call another
//! service by its cluster name, e.g. `http://orders.shop/items` or `http://orders/items` in
//! the same namespace. The node resolves cluster names and sends from the pod's address.
//!
//! ```no_run
//! let resp = skiff_sdk::http::get("http://orders/items").expect("orders answers");
//! assert_eq!(resp.status, 200);
//! ```

use std::io::{Read as _, Write as _};

use wasi::http::outgoing_handler;
use wasi::http::types::{Fields, IncomingBody, Method, OutgoingBody, OutgoingRequest, Scheme};

use crate::http::Response;

/// Sends a GET to `url` and returns the whole response.
///
/// Any status is a response; an `Err` says why no response arrived (a refused connection, a
/// name that does not resolve, a bad URL). To call a Service of the cluster by name, see
/// [`service`](crate::service).
///
/// ```no_run
/// let resp = skiff_sdk::http::get("http://orders.shop/items")?;
/// println!("{}: {}", resp.status, resp.body_text());
/// # Ok::<(), String>(())
/// ```
pub fn get(url: &str) -> Result<Response, String> {
    send("GET", url, &[], &[])
}

fn method(name: &str) -> Method {
    match name.to_ascii_uppercase().as_str() {
        "GET" => Method::Get,
        "HEAD" => Method::Head,
        "POST" => Method::Post,
        "PUT" => Method::Put,
        "DELETE" => Method::Delete,
        "CONNECT" => Method::Connect,
        "OPTIONS" => Method::Options,
        "TRACE" => Method::Trace,
        "PATCH" => Method::Patch,
        other => Method::Other(other.to_string()),
    }
}

/// `scheme://authority/path?query` split into its parts.
fn split_url(url: &str) -> Result<(Scheme, String, String), String> {
    let (scheme, rest) = url
        .split_once("://")
        .ok_or_else(|| format!("{url:?} is not an absolute URL like http://orders/items"))?;
    let scheme = match scheme.to_ascii_lowercase().as_str() {
        "http" => Scheme::Http,
        "https" => Scheme::Https,
        other => return Err(format!("unsupported URL scheme {other:?} (http or https)")),
    };
    let (authority, path) = match rest.find('/') {
        Some(i) => (rest[..i].to_string(), rest[i..].to_string()),
        None => (rest.to_string(), "/".to_string()),
    };
    if authority.is_empty() {
        return Err(format!("{url:?} has no host"));
    }
    Ok((scheme, authority, path))
}

/// Sends a request with `method`, `headers` and `body` to `url` and returns the whole
/// response (status, headers, body).
///
/// ```no_run
/// let resp = skiff_sdk::http::send(
///     "POST",
///     "http://orders.shop/items",
///     &[("content-type", "application/json")],
///     br#"{"name":"tea"}"#,
/// )?;
/// assert_eq!(resp.status, 201);
/// # Ok::<(), String>(())
/// ```
pub fn send(
    method_name: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Result<Response, String> {
    let (scheme, authority, path) = split_url(url)?;
    let fields = Fields::new();
    for (name, value) in headers {
        fields
            .append(name, value.as_bytes())
            .map_err(|e| format!("header {name:?}: {e:?}"))?;
    }
    let request = OutgoingRequest::new(fields);
    request
        .set_method(&method(method_name))
        .map_err(|()| format!("invalid method {method_name:?}"))?;
    request
        .set_scheme(Some(&scheme))
        .map_err(|()| "invalid scheme".to_string())?;
    request
        .set_authority(Some(&authority))
        .map_err(|()| format!("invalid host {authority:?}"))?;
    request
        .set_path_with_query(Some(&path))
        .map_err(|()| format!("invalid path {path:?}"))?;
    let outgoing_body = request
        .body()
        .map_err(|()| "request body unavailable".to_string())?;
    let pending = outgoing_handler::handle(request, None)
        .map_err(|e| format!("cannot send the request to {url}: {e:?}"))?;
    {
        let mut stream = outgoing_body
            .write()
            .map_err(|()| "request body stream unavailable".to_string())?;
        stream
            .write_all(body)
            .map_err(|e| format!("writing the request body: {e}"))?;
        stream
            .flush()
            .map_err(|e| format!("writing the request body: {e}"))?;
    }
    OutgoingBody::finish(outgoing_body, None)
        .map_err(|e| format!("finishing the request body: {e:?}"))?;
    pending.subscribe().block();
    let incoming = pending
        .get()
        .ok_or_else(|| "no response".to_string())?
        .map_err(|()| "response already taken".to_string())?
        .map_err(|e| format!("request to {url} failed: {e:?}"))?;
    let status = incoming.status();
    let response_headers = incoming
        .headers()
        .entries()
        .into_iter()
        .map(|(n, v)| (n, String::from_utf8_lossy(&v).into_owned()))
        .collect();
    let body_handle = incoming
        .consume()
        .map_err(|()| "response body already consumed".to_string())?;
    let mut data = Vec::new();
    {
        let mut stream = body_handle
            .stream()
            .map_err(|()| "response body stream unavailable".to_string())?;
        stream
            .read_to_end(&mut data)
            .map_err(|e| format!("reading the response body: {e}"))?;
    }
    drop(IncomingBody::finish(body_handle));
    let mut resp = Response::new(status).with_body(data);
    resp.headers = response_headers;
    Ok(resp)
}

/// Sends a request like [`send`] on wstd's reactor, so other futures of an async handler run
/// while it waits.
pub(crate) async fn send_async(
    method_name: &str,
    url: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Result<Response, String> {
    // Checks the URL the same way as the blocking client, for the same messages.
    split_url(url)?;
    let mut builder = wstd::http::Request::builder()
        .method(method_name.to_ascii_uppercase().as_str())
        .uri(url);
    for (name, value) in headers {
        builder = builder.header(*name, *value);
    }
    let request = builder
        .body(wstd::http::Body::from(body.to_vec()))
        .map_err(|e| format!("building the request: {e}"))?;
    let response = wstd::http::Client::new()
        .send(request)
        .await
        .map_err(|e| format!("request to {url} failed: {e:#}"))?;
    let status = response.status().as_u16();
    let response_headers = response
        .headers()
        .iter()
        .map(|(n, v)| {
            (
                n.as_str().to_string(),
                String::from_utf8_lossy(v.as_bytes()).into_owned(),
            )
        })
        .collect();
    let mut body = response.into_body();
    let data = body
        .contents()
        .await
        .map_err(|e| format!("reading the response body: {e:#}"))?
        .to_vec();
    let mut resp = Response::new(status).with_body(data);
    resp.headers = response_headers;
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_split_into_scheme_authority_and_path() {
        let (s, a, p) = split_url("http://orders.shop:8080/items?id=3").unwrap();
        assert!(matches!(s, Scheme::Http));
        assert_eq!(a, "orders.shop:8080");
        assert_eq!(p, "/items?id=3");
        let (_, a, p) = split_url("https://web").unwrap();
        assert_eq!((a.as_str(), p.as_str()), ("web", "/"));
        assert!(split_url("orders/items")
            .unwrap_err()
            .contains("absolute URL"));
        assert!(split_url("ftp://x/").unwrap_err().contains("ftp"));
    }
}
