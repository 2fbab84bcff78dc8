//! The request and response types of a Skiff service, and plain outbound HTTP.
//!
//! Write a function `fn(Request) -> Response` (or one returning `Result<Response, E>`, see
//! [`IntoResponse`](crate::IntoResponse)) and export it with
//! [`http_handler!`](crate::http_handler):
//!
//! ```no_run
//! use skiff_sdk::http::{Request, Response};
//!
//! fn handle(req: Request) -> Response {
//!     if req.method == "POST" {
//!         // Echo the body back.
//!         return Response::new(200)
//!             .with_header("content-type", "application/octet-stream")
//!             .with_body(req.body);
//!     }
//!     Response::text(200, format!("{} {}\n", req.method, req.path))
//! }
//!
//! skiff_sdk::http_handler!(handle);
//! # fn main() {}
//! ```

use serde::{de::DeserializeOwned, Serialize};

pub use crate::client::{get, send};
pub use crate::handler::IntoResponse;
use crate::Error;

/// An incoming HTTP request, with its whole body already read.
///
/// ```
/// use skiff_sdk::http::Request;
///
/// let req = Request::new("POST", "/items?dry_run=1")
///     .with_header("content-type", "application/json")
///     .with_body(r#"{"name":"tea"}"#);
/// assert_eq!((req.method.as_str(), req.path_only()), ("POST", "/items"));
/// assert_eq!(req.query_param("dry_run").as_deref(), Some("1"));
/// assert_eq!(req.header("Content-Type"), Some("application/json"));
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    /// The method in upper case, e.g. `"GET"`.
    pub method: String,
    /// The request target: path and query as the client sent them, e.g. `"/items?id=3"`.
    /// Always starts with `/`.
    pub path: String,
    /// The `Host` of the request, when known.
    pub authority: Option<String>,
    /// Header names (lower case) and values, in the order received. A value that is not valid
    /// UTF-8 is decoded lossily.
    pub headers: Vec<(String, String)>,
    /// The whole request body.
    pub body: Vec<u8>,
    /// Path parameters bound by the [`Router`](crate::Router) (`:id` in `/items/:id`).
    params: Vec<(String, String)>,
}

impl Request {
    /// A request with no headers and an empty body; handy in tests.
    ///
    /// ```
    /// let req = skiff_sdk::http::Request::new("GET", "/items?limit=2");
    /// assert_eq!(req.path_only(), "/items");
    /// ```
    pub fn new(method: impl Into<String>, path: impl Into<String>) -> Self {
        Request {
            method: method.into(),
            path: path.into(),
            authority: None,
            headers: Vec::new(),
            body: Vec::new(),
            params: Vec::new(),
        }
    }

    /// A request as the handler entry point builds it.
    pub(crate) fn from_parts(
        method: String,
        path: String,
        authority: Option<String>,
        headers: Vec<(String, String)>,
        body: Vec<u8>,
    ) -> Self {
        Request {
            method,
            path,
            authority,
            headers,
            body,
            params: Vec::new(),
        }
    }

    /// Adds a header; handy in tests.
    ///
    /// ```
    /// let req = skiff_sdk::http::Request::new("GET", "/").with_header("Accept", "text/plain");
    /// assert_eq!(req.header("accept"), Some("text/plain"));
    /// ```
    pub fn with_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Replaces the body; handy in tests.
    ///
    /// ```
    /// let req = skiff_sdk::http::Request::new("POST", "/items").with_body(r#"{"name":"tea"}"#);
    /// assert_eq!(req.body_text(), r#"{"name":"tea"}"#);
    /// ```
    pub fn with_body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = body.into();
        self
    }

    /// The body parsed as JSON into `T`.
    ///
    /// A body that is not valid JSON for `T` is an [`Error::Json`], which answers `400` naming
    /// serde's error when a handler returns it (e.g. through `?`).
    ///
    /// ```
    /// #[derive(Debug, serde::Deserialize)]
    /// struct NewItem { name: String }
    ///
    /// let req = skiff_sdk::http::Request::new("POST", "/items").with_body(r#"{"name":"tea"}"#);
    /// let item: NewItem = req.json()?;
    /// assert_eq!(item.name, "tea");
    ///
    /// let bad = skiff_sdk::http::Request::new("POST", "/items").with_body("{}");
    /// let err = bad.json::<NewItem>().unwrap_err();
    /// assert_eq!(err.status_code(), 400);
    /// assert!(err.to_string().contains("missing field `name`"));
    /// # Ok::<(), skiff_sdk::Error>(())
    /// ```
    pub fn json<T: DeserializeOwned>(&self) -> Result<T, Error> {
        Ok(serde_json::from_slice(&self.body)?)
    }

    /// The path parameter `name` bound by the [`Router`](crate::Router), percent-decoded:
    /// `"7"` for `:id` in the route `/items/:id` and the path `/items/7`.
    ///
    /// ```
    /// use skiff_sdk::{http::{Request, Response}, Router};
    ///
    /// fn show(req: Request) -> Response {
    ///     Response::text(200, format!("item {}", req.param("id").unwrap_or("?")))
    /// }
    ///
    /// let resp = Router::new().get("/items/:id", show).handle(Request::new("GET", "/items/7"));
    /// assert_eq!(resp.body, b"item 7");
    /// ```
    pub fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }

    /// Replaces the path parameters (the router binds them before calling a handler).
    pub(crate) fn set_params(&mut self, params: Vec<(String, String)>) {
        self.params = params;
    }

    /// The path without the query string: `"/items"` for `"/items?id=3"`.
    ///
    /// ```
    /// let req = skiff_sdk::http::Request::new("GET", "/items?id=3");
    /// assert_eq!(req.path_only(), "/items");
    /// ```
    pub fn path_only(&self) -> &str {
        self.path
            .split_once('?')
            .map_or(&self.path, |(path, _)| path)
    }

    /// The raw query string without the `?`, if there is one.
    ///
    /// ```
    /// let req = skiff_sdk::http::Request::new("GET", "/items?id=3&x");
    /// assert_eq!(req.query(), Some("id=3&x"));
    /// ```
    pub fn query(&self) -> Option<&str> {
        self.path.split_once('?').map(|(_, query)| query)
    }

    /// The first value of query parameter `name`, percent-decoded (`+` means a space).
    ///
    /// ```
    /// let req = skiff_sdk::http::Request::new("GET", "/file?path=%2Fconfig%2Fx&n=1");
    /// assert_eq!(req.query_param("path").as_deref(), Some("/config/x"));
    /// assert_eq!(req.query_param("missing"), None);
    /// ```
    pub fn query_param(&self, name: &str) -> Option<String> {
        self.query()?.split('&').find_map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(key) == name).then(|| percent_decode(value))
        })
    }

    /// The first value of header `name` (compared case-insensitively).
    ///
    /// ```
    /// let req = skiff_sdk::http::Request::new("GET", "/").with_header("X-Id", "7");
    /// assert_eq!(req.header("x-id"), Some("7"));
    /// ```
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    /// The body as text (invalid UTF-8 is replaced with `U+FFFD`).
    ///
    /// ```
    /// let req = skiff_sdk::http::Request::new("POST", "/").with_body("hi");
    /// assert_eq!(req.body_text(), "hi");
    /// ```
    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// An HTTP response to send back.
///
/// ```
/// use skiff_sdk::http::Response;
///
/// let resp = Response::new(303).with_header("location", "/items/7");
/// assert_eq!(resp.status, 303);
/// assert_eq!(resp.header("Location"), Some("/items/7"));
/// assert!(resp.body.is_empty());
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    /// The status code, e.g. `200`.
    pub status: u16,
    /// Header names and values. `content-length` is added automatically when absent.
    pub headers: Vec<(String, String)>,
    /// The whole response body.
    pub body: Vec<u8>,
}

impl Response {
    /// A response with the given status, no headers and an empty body.
    ///
    /// ```
    /// assert_eq!(skiff_sdk::http::Response::new(204).body, b"");
    /// ```
    pub fn new(status: u16) -> Self {
        Response {
            status,
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    /// A `text/plain` response.
    ///
    /// ```
    /// let resp = skiff_sdk::http::Response::text(404, "not found\n");
    /// assert_eq!(resp.status, 404);
    /// assert_eq!(resp.header("content-type"), Some("text/plain"));
    /// assert_eq!(resp.body, b"not found\n");
    /// ```
    pub fn text(status: u16, body: impl Into<String>) -> Self {
        Response::new(status)
            .with_header("content-type", "text/plain")
            .with_body(body.into())
    }

    /// A JSON response (`content-type: application/json`) with `value` serialized as the body.
    ///
    /// A value that cannot be serialized (a map with non-string keys, a failing `Serialize`
    /// impl) answers `500 internal server error` and logs why.
    ///
    /// ```
    /// #[derive(serde::Serialize)]
    /// struct Item { id: u32, name: String }
    ///
    /// let resp = skiff_sdk::http::Response::json(201, &Item { id: 1, name: "tea".into() });
    /// assert_eq!(resp.status, 201);
    /// assert_eq!(resp.header("content-type"), Some("application/json"));
    /// assert_eq!(resp.body, br#"{"id":1,"name":"tea"}"#);
    /// ```
    pub fn json<T: Serialize + ?Sized>(status: u16, value: &T) -> Self {
        match serde_json::to_vec(value) {
            Ok(body) => Response::new(status)
                .with_header("content-type", "application/json")
                .with_body(body),
            Err(err) => {
                Error::internal(format!("serializing the response body: {err}")).into_response()
            }
        }
    }

    /// The body parsed as JSON into `T`: for a response from another service.
    ///
    /// A body that is not valid JSON for `T` is a `502` error (the other service answered
    /// something unexpected), whose cause is logged if a handler returns it.
    ///
    /// ```
    /// let resp = skiff_sdk::http::Response::text(200, "[1,2,3]");
    /// let numbers: Vec<u32> = resp.body_json()?;
    /// assert_eq!(numbers, [1, 2, 3]);
    /// assert_eq!(resp.body_json::<String>().unwrap_err().status_code(), 502);
    /// # Ok::<(), skiff_sdk::Error>(())
    /// ```
    pub fn body_json<T: DeserializeOwned>(&self) -> Result<T, Error> {
        serde_json::from_slice(&self.body).map_err(|err| {
            Error::status(
                502,
                format!("the response body is not the expected JSON: {err}"),
            )
        })
    }

    /// The body as text (invalid UTF-8 is replaced with `U+FFFD`).
    ///
    /// ```
    /// assert_eq!(skiff_sdk::http::Response::text(200, "ok").body_text(), "ok");
    /// ```
    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// Whether the status is 2xx.
    ///
    /// ```
    /// assert!(skiff_sdk::http::Response::new(204).is_success());
    /// assert!(!skiff_sdk::http::Response::new(404).is_success());
    /// ```
    pub fn is_success(&self) -> bool {
        (200..300).contains(&self.status)
    }

    /// Adds a header.
    ///
    /// ```
    /// let resp = skiff_sdk::http::Response::new(200).with_header("cache-control", "no-store");
    /// assert_eq!(resp.header("Cache-Control"), Some("no-store"));
    /// ```
    pub fn with_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Replaces the body.
    ///
    /// ```
    /// let resp = skiff_sdk::http::Response::new(200).with_body("hi");
    /// assert_eq!(resp.body, b"hi");
    /// ```
    pub fn with_body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = body.into();
        self
    }

    /// The first value of header `name` (compared case-insensitively).
    ///
    /// ```
    /// let resp = skiff_sdk::http::Response::text(200, "ok");
    /// assert_eq!(resp.header("Content-Type"), Some("text/plain"));
    /// ```
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }
}

/// Decodes `%XX` escapes and `+` (as a space) in a query component; bad escapes are kept as-is.
fn percent_decode(input: &str) -> String {
    decode(input, true)
}

/// Decodes `%XX` escapes in a path segment (`+` stays a `+`); bad escapes are kept as-is.
pub(crate) fn decode_path_segment(input: &str) -> String {
    decode(input, false)
}

fn decode(input: &str, plus_as_space: bool) -> String {
    let bytes = input.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' if plus_as_space => out.push(b' '),
            b'%' => match bytes.get(i + 1..i + 3).and_then(decode_hex_pair) {
                Some(byte) => {
                    out.push(byte);
                    i += 2;
                }
                None => out.push(b'%'),
            },
            byte => out.push(byte),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn decode_hex_pair(pair: &[u8]) -> Option<u8> {
    let digit = |c: u8| (c as char).to_digit(16);
    Some((digit(pair[0])? * 16 + digit(pair[1])?) as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_path_and_query() {
        let req = Request::new("GET", "/file?path=/config/x");
        assert_eq!(req.path_only(), "/file");
        assert_eq!(req.query(), Some("path=/config/x"));
        assert_eq!(req.query_param("path").as_deref(), Some("/config/x"));

        let req = Request::new("GET", "/plain");
        assert_eq!(req.path_only(), "/plain");
        assert_eq!(req.query(), None);
        assert_eq!(req.query_param("path"), None);
    }

    #[test]
    fn decodes_query_params() {
        let req = Request::new("GET", "/a?x=1&greeting=hello+big%20world&flag&bad=%zz%4");
        assert_eq!(req.query_param("x").as_deref(), Some("1"));
        assert_eq!(
            req.query_param("greeting").as_deref(),
            Some("hello big world")
        );
        assert_eq!(req.query_param("flag").as_deref(), Some(""));
        assert_eq!(req.query_param("bad").as_deref(), Some("%zz%4"));
    }

    #[test]
    fn headers_are_case_insensitive() {
        let mut req = Request::new("GET", "/");
        req.headers
            .push(("content-type".to_string(), "text/plain".to_string()));
        assert_eq!(req.header("Content-Type"), Some("text/plain"));
        assert_eq!(req.header("accept"), None);
    }

    #[test]
    fn response_builders() {
        let resp = Response::text(201, "made");
        assert_eq!(resp.status, 201);
        assert_eq!(resp.header("CONTENT-TYPE"), Some("text/plain"));
        assert_eq!(resp.body, b"made");

        let resp = Response::new(204)
            .with_header("x-a", "1")
            .with_body(vec![1, 2]);
        assert_eq!(resp.headers, vec![("x-a".to_string(), "1".to_string())]);
        assert_eq!(resp.body, vec![1, 2]);
    }
}
