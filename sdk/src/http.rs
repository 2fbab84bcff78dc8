//! A synchronous HTTP request/response API for Skiff services.
//!
//! Write a function `fn(Request) -> Response` and export it with
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

use std::io::{Read as _, Write as _};

pub use crate::client::{get, send};

use wasi::http::types::{
    Fields, IncomingBody, IncomingRequest, Method, OutgoingBody, OutgoingResponse, ResponseOutparam,
};
use wasi::io::streams::StreamError;

/// An incoming HTTP request, with its whole body already read.
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
}

impl Request {
    /// A request with no headers and an empty body; handy in tests.
    pub fn new(method: impl Into<String>, path: impl Into<String>) -> Self {
        Request {
            method: method.into(),
            path: path.into(),
            authority: None,
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    /// The path without the query string: `"/items"` for `"/items?id=3"`.
    pub fn path_only(&self) -> &str {
        self.path
            .split_once('?')
            .map_or(&self.path, |(path, _)| path)
    }

    /// The raw query string without the `?`, if there is one.
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
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }

    /// The body as text (invalid UTF-8 is replaced with `U+FFFD`).
    pub fn body_text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// An HTTP response to send back.
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

    /// Adds a header.
    pub fn with_header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Replaces the body.
    pub fn with_body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = body.into();
        self
    }

    /// The first value of header `name` (compared case-insensitively).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| value.as_str())
    }
}

/// Exports a function `fn(Request) -> Response` as the component's `wasi:http/incoming-handler`.
///
/// Use it once, at the top level of a `cdylib` crate built for `wasm32-wasip2`:
///
/// ```no_run
/// fn handle(_req: skiff_sdk::http::Request) -> skiff_sdk::http::Response {
///     skiff_sdk::http::Response::text(200, "hello\n")
/// }
///
/// skiff_sdk::http_handler!(handle);
/// # fn main() {}
/// ```
///
/// For each request the generated export reads the whole request body, calls the function, then
/// sends the status and headers and writes the whole body. A panic in the handler traps the
/// component instance; the host then answers the request with an error.
#[macro_export]
macro_rules! http_handler {
    ($handler:path) => {
        #[doc(hidden)]
        struct __SkiffHttpHandler;

        impl $crate::__private::wasi::exports::http::incoming_handler::Guest
            for __SkiffHttpHandler
        {
            fn handle(
                request: $crate::__private::wasi::http::types::IncomingRequest,
                response_out: $crate::__private::wasi::http::types::ResponseOutparam,
            ) {
                $crate::__private::serve(request, response_out, $handler)
            }
        }

        $crate::__private::wasi::http::proxy::export!(__SkiffHttpHandler);
    };
}

/// Runs `handler` for one `wasi:http` request. Used by [`http_handler!`](crate::http_handler).
#[doc(hidden)]
pub fn serve(
    request: IncomingRequest,
    response_out: ResponseOutparam,
    handler: fn(Request) -> Response,
) {
    let response = match read_request(request) {
        Ok(request) => handler(request),
        Err(err) => Response::text(400, format!("cannot read request: {err}\n")),
    };
    write_response(response, response_out);
}

fn read_request(request: IncomingRequest) -> Result<Request, String> {
    let method = method_name(request.method());
    let mut path = request.path_with_query().unwrap_or_default();
    if !path.starts_with('/') {
        path.insert(0, '/');
    }
    let authority = request.authority();
    let headers = request
        .headers()
        .entries()
        .into_iter()
        .map(|(name, value)| (name, String::from_utf8_lossy(&value).into_owned()))
        .collect();

    let incoming = request
        .consume()
        .map_err(|()| "request body already consumed".to_string())?;
    let mut body = Vec::new();
    {
        let mut stream = incoming
            .stream()
            .map_err(|()| "request body stream unavailable".to_string())?;
        stream
            .read_to_end(&mut body)
            .map_err(|err| format!("reading request body: {err}"))?;
        // The stream is a child of `incoming` and must be dropped before finishing it.
    }
    drop(IncomingBody::finish(incoming));

    Ok(Request {
        method,
        path,
        authority,
        headers,
        body,
    })
}

fn write_response(mut response: Response, response_out: ResponseOutparam) {
    if response.header("content-length").is_none() {
        let len = response.body.len().to_string();
        response.headers.push(("content-length".to_string(), len));
    }

    let fields = Fields::new();
    for (name, value) in &response.headers {
        if let Err(err) = fields.append(name, value.as_bytes()) {
            eprintln!("skiff-sdk: dropping response header {name:?}: {err:?}");
        }
    }
    let outgoing = OutgoingResponse::new(fields);
    if outgoing.set_status_code(response.status).is_err() {
        eprintln!(
            "skiff-sdk: invalid status {}; answering 500",
            response.status
        );
        // Cannot fail: 500 is a valid status.
        let _ = outgoing.set_status_code(500);
    }
    let Ok(body) = outgoing.body() else {
        eprintln!("skiff-sdk: response body unavailable");
        return;
    };
    ResponseOutparam::set(response_out, Ok(outgoing));

    {
        let Ok(mut stream) = body.write() else {
            eprintln!("skiff-sdk: response body stream unavailable");
            return;
        };
        if let Err(err) = stream.write_all(&response.body) {
            // Usually the client went away; nothing more to do.
            eprintln!("skiff-sdk: writing response body: {err}");
            return;
        }
        // Every byte was accepted. The host may close the stream as soon as it has
        // `content-length` bytes, so a closed stream here is not an error.
        if let Err(StreamError::LastOperationFailed(err)) = stream.blocking_flush() {
            eprintln!(
                "skiff-sdk: flushing response body: {}",
                err.to_debug_string()
            );
            return;
        }
        // The stream is a child of `body` and must be dropped before finishing it.
    }
    if let Err(err) = OutgoingBody::finish(body, None) {
        eprintln!("skiff-sdk: finishing response body: {err:?}");
    }
}

fn method_name(method: Method) -> String {
    match method {
        Method::Get => "GET".to_string(),
        Method::Head => "HEAD".to_string(),
        Method::Post => "POST".to_string(),
        Method::Put => "PUT".to_string(),
        Method::Delete => "DELETE".to_string(),
        Method::Connect => "CONNECT".to_string(),
        Method::Options => "OPTIONS".to_string(),
        Method::Trace => "TRACE".to_string(),
        Method::Patch => "PATCH".to_string(),
        Method::Other(other) => other,
    }
}

/// Decodes `%XX` escapes and `+` (as a space) in a query component; bad escapes are kept as-is.
fn percent_decode(input: &str) -> String {
    let bytes = input.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
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
