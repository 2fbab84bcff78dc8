//! The component's entry point: [`http_handler!`](crate::http_handler) exports a handler as
//! `wasi:http/incoming-handler`, and [`IntoResponse`] says what a handler may return.

use std::any::Any;
use std::fmt::Display;
use std::future::Future;
use std::io::{Read as _, Write as _};

use wasi::http::types::{
    Fields, IncomingBody, IncomingRequest, Method, OutgoingBody, OutgoingResponse, ResponseOutparam,
};
use wasi::io::streams::StreamError;

use crate::error::{log_server_error, server_error_response};
use crate::http::{Request, Response};
use crate::{log, Error};

/// What a handler may return: a [`Response`], a [`crate::Error`], text, or a `Result` of
/// those with any error type that implements `Display`.
///
/// An `Err` becomes the response: a [`crate::Error`] answers with its own status (4xx with its
/// message, 5xx with a generic body and the cause logged); any other error type answers
/// `500 internal server error` and its `Display` form is logged as the cause (a structured
/// line of level `error`), never sent to the client. Errors boxed as
/// `Box<dyn std::error::Error + Send + Sync>` that hold a [`crate::Error`] keep its status.
///
/// ```
/// use skiff_sdk::{http::{Request, Response}, IntoResponse};
///
/// fn handle(req: Request) -> Result<Response, std::num::ParseIntError> {
///     let n: u32 = req.query_param("n").unwrap_or_default().parse()?;
///     Ok(Response::text(200, format!("{}\n", n * 2)))
/// }
///
/// let ok = handle(Request::new("GET", "/?n=21")).into_response();
/// assert_eq!(ok.body, b"42\n");
/// let failed = handle(Request::new("GET", "/?n=x")).into_response();
/// assert_eq!(failed.status, 500);
/// assert_eq!(failed.body, b"internal server error\n");
/// ```
pub trait IntoResponse {
    /// Converts `self` into the response to send.
    ///
    /// ```
    /// use skiff_sdk::IntoResponse;
    /// assert_eq!("hi".into_response().body, b"hi");
    /// ```
    fn into_response(self) -> Response;
}

impl IntoResponse for Response {
    fn into_response(self) -> Response {
        self
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        self.to_response()
    }
}

/// `200 OK`, `text/plain`.
impl IntoResponse for String {
    fn into_response(self) -> Response {
        Response::text(200, self)
    }
}

/// `200 OK`, `text/plain`.
impl IntoResponse for &'static str {
    fn into_response(self) -> Response {
        Response::text(200, self)
    }
}

impl<R: IntoResponse, E: Display + 'static> IntoResponse for Result<R, E> {
    fn into_response(self) -> Response {
        match self {
            Ok(ok) => ok.into_response(),
            Err(err) => error_response(&err),
        }
    }
}

/// The response for a handler's error: a [`crate::Error`] (possibly boxed) answers with its
/// status; anything else is a 500 whose cause is logged.
fn error_response<E: Display + 'static>(err: &E) -> Response {
    let any: &dyn Any = err;
    let sdk_error = any
        .downcast_ref::<Error>()
        .or_else(|| {
            any.downcast_ref::<Box<dyn std::error::Error + Send + Sync>>()
                .and_then(|boxed| boxed.downcast_ref::<Error>())
        })
        .or_else(|| {
            any.downcast_ref::<Box<dyn std::error::Error>>()
                .and_then(|boxed| boxed.downcast_ref::<Error>())
        });
    if let Some(sdk_error) = sdk_error {
        return sdk_error.to_response();
    }
    log_server_error("handler failed", 500, err);
    server_error_response(500)
}

/// Exports a handler as the component's `wasi:http/incoming-handler`.
///
/// Use it once, at the top level of a `cdylib` crate built for `wasm32-wasip2`, with a
/// function `fn(Request) -> R` where `R` is a [`Response`], a `Result<Response, E>` or anything
/// else that implements [`IntoResponse`]:
///
/// ```no_run
/// use skiff_sdk::http::{Request, Response};
///
/// fn handle(req: Request) -> Result<Response, skiff_sdk::Error> {
///     let name = req.query_param("name").ok_or_else(|| skiff_sdk::Error::bad_request("name?"))?;
///     Ok(Response::text(200, format!("hello, {name}\n")))
/// }
///
/// skiff_sdk::http_handler!(handle);
/// # fn main() {}
/// ```
///
/// `http_handler!(async handle)` exports an `async fn(Request) -> R` instead. It runs on
/// [`wstd`](https://docs.rs/wstd)'s reactor over WASI pollables, so the handler can `.await`
/// the SDK's async outbound calls ([`Service::get_async`](crate::Service::get_async), …),
/// several at once:
///
/// ```no_run
/// use skiff_sdk::http::{Request, Response};
///
/// async fn handle(_req: Request) -> Result<Response, skiff_sdk::Error> {
///     let orders = skiff_sdk::service("orders").get_async("/count").await?;
///     Ok(Response::text(200, format!("orders: {}", orders.body_text())))
/// }
///
/// skiff_sdk::http_handler!(async handle);
/// # fn main() {}
/// ```
///
/// For each request the generated export reads the whole request body, calls the handler,
/// then sends the status and headers and writes the whole body. A panic in the handler traps
/// the component instance; the host then answers the request with an error.
#[macro_export]
macro_rules! http_handler {
    (async $handler:expr) => {
        $crate::__export_http_handler!($crate::__private::serve_async, $handler);
    };
    ($handler:expr) => {
        $crate::__export_http_handler!($crate::__private::serve, $handler);
    };
}

/// The export glue shared by both forms of [`http_handler!`](crate::http_handler).
#[doc(hidden)]
#[macro_export]
macro_rules! __export_http_handler {
    ($serve:path, $handler:expr) => {
        #[doc(hidden)]
        struct __SkiffHttpHandler;

        impl $crate::__private::wasi::exports::http::incoming_handler::Guest
            for __SkiffHttpHandler
        {
            fn handle(
                request: $crate::__private::wasi::http::types::IncomingRequest,
                response_out: $crate::__private::wasi::http::types::ResponseOutparam,
            ) {
                $serve(request, response_out, $handler)
            }
        }

        $crate::__private::wasi::http::proxy::export!(__SkiffHttpHandler);
    };
}

/// Runs `handler` for one `wasi:http` request. Used by [`http_handler!`](crate::http_handler).
#[doc(hidden)]
pub fn serve<F, R>(request: IncomingRequest, response_out: ResponseOutparam, handler: F)
where
    F: FnOnce(Request) -> R,
    R: IntoResponse,
{
    let response = match read_request(request) {
        Ok(request) => handler(request).into_response(),
        Err(err) => Response::text(400, format!("cannot read request: {err}\n")),
    };
    write_response(response, response_out);
}

/// Runs the async `handler` for one `wasi:http` request on wstd's reactor. Used by
/// [`http_handler!`](crate::http_handler).
#[doc(hidden)]
pub fn serve_async<F, Fut>(request: IncomingRequest, response_out: ResponseOutparam, handler: F)
where
    F: FnOnce(Request) -> Fut,
    Fut: Future,
    Fut::Output: IntoResponse,
{
    let response = match read_request(request) {
        Ok(request) => wstd::runtime::block_on(handler(request)).into_response(),
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

    Ok(Request::from_parts(method, path, authority, headers, body))
}

fn write_response(mut response: Response, response_out: ResponseOutparam) {
    if response.header("content-length").is_none() {
        let len = response.body.len().to_string();
        response.headers.push(("content-length".to_string(), len));
    }

    let fields = Fields::new();
    for (name, value) in &response.headers {
        if let Err(err) = fields.append(name, value.as_bytes()) {
            log::error(
                "dropping an invalid response header",
                &[("header", name), ("cause", &format!("{err:?}"))],
            );
        }
    }
    let outgoing = OutgoingResponse::new(fields);
    if outgoing.set_status_code(response.status).is_err() {
        log::error(
            "invalid response status; answering 500",
            &[("status", &response.status)],
        );
        // Cannot fail: 500 is a valid status.
        let _ = outgoing.set_status_code(500);
    }
    let Ok(body) = outgoing.body() else {
        log::error("response body unavailable", &[]);
        return;
    };
    ResponseOutparam::set(response_out, Ok(outgoing));

    {
        let Ok(mut stream) = body.write() else {
            log::error("response body stream unavailable", &[]);
            return;
        };
        if let Err(err) = stream.write_all(&response.body) {
            // Usually the client went away; nothing more to do.
            log::warn("writing the response body", &[("cause", &err)]);
            return;
        }
        // Every byte was accepted. The host may close the stream as soon as it has
        // `content-length` bytes, so a closed stream here is not an error.
        if let Err(StreamError::LastOperationFailed(err)) = stream.blocking_flush() {
            log::warn(
                "flushing the response body",
                &[("cause", &err.to_debug_string())],
            );
            return;
        }
        // The stream is a child of `body` and must be dropped before finishing it.
    }
    if let Err(err) = OutgoingBody::finish(body, None) {
        log::warn(
            "finishing the response body",
            &[("cause", &format!("{err:?}"))],
        );
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

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Boom;
    impl Display for Boom {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("boom: secret detail")
        }
    }
    impl std::error::Error for Boom {}

    #[test]
    fn errors_become_responses() {
        let resp = Err::<Response, _>(Boom).into_response();
        assert_eq!(
            (resp.status, resp.body.as_slice()),
            (500, &b"internal server error\n"[..])
        );

        let resp = Err::<Response, _>(Error::not_found("no item 3")).into_response();
        assert_eq!(
            (resp.status, resp.body.as_slice()),
            (404, &b"no item 3\n"[..])
        );

        let boxed: Box<dyn std::error::Error + Send + Sync> = Error::bad_request("bad").into();
        let resp = Err::<Response, _>(boxed).into_response();
        assert_eq!(resp.status, 400);

        let boxed: Box<dyn std::error::Error + Send + Sync> = Box::new(Boom);
        assert_eq!(Err::<Response, _>(boxed).into_response().status, 500);

        let resp = Ok::<_, String>("fine").into_response();
        assert_eq!((resp.status, resp.body.as_slice()), (200, &b"fine"[..]));
    }
}
