//! [`Error`]: the SDK's error type. Every error carries the HTTP status it answers with, so a
//! handler returning `Result<Response, skiff_sdk::Error>` can use `?` everywhere.

use std::fmt;

use crate::http::Response;

/// An error that knows its HTTP status.
///
/// Returned from a handler (through [`IntoResponse`](crate::IntoResponse)) it becomes the
/// response: a client error (4xx) answers with its message, a server error (5xx) answers with
/// a generic body (`internal server error`) and its cause goes to the log as a structured line
/// of level `error` — never to the client.
///
/// ```
/// use skiff_sdk::{Error, IntoResponse};
///
/// let err = Error::not_found("no item 7");
/// assert_eq!(err.status_code(), 404);
/// let resp = err.into_response();
/// assert_eq!(resp.status, 404);
/// assert_eq!(resp.body, b"no item 7\n");
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An error with an explicit status and message (see [`Error::status`]).
    #[error("{message}")]
    Status {
        /// The HTTP status to answer with.
        status: u16,
        /// What went wrong; the response body for a 4xx.
        message: String,
    },
    /// A server-side failure (500); the cause is logged, never sent.
    #[error("{0}")]
    Internal(String),
    /// A request body that is not the JSON the handler expects (400, naming serde's error).
    #[error("invalid JSON body: {0}")]
    Json(#[from] serde_json::Error),
    /// An I/O error, e.g. reading a mounted file (500).
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    /// A configuration value that is missing or does not parse (500).
    #[error("config {name}: {message}")]
    Config {
        /// The environment variable or file concerned.
        name: String,
        /// Why it cannot be used.
        message: String,
    },
    /// A call to another service that failed before it answered (502).
    #[error("request to {url} failed: {message}")]
    Upstream {
        /// The URL that was called.
        url: String,
        /// Why the request failed.
        message: String,
    },
}

impl Error {
    /// A `400 Bad Request` whose message is sent to the client.
    ///
    /// ```
    /// let err = skiff_sdk::Error::bad_request("name must not be empty");
    /// assert_eq!((err.status_code(), err.to_string().as_str()), (400, "name must not be empty"));
    /// ```
    pub fn bad_request(message: impl Into<String>) -> Self {
        Error::status(400, message)
    }

    /// A `404 Not Found` whose message is sent to the client.
    ///
    /// ```
    /// assert_eq!(skiff_sdk::Error::not_found("no such item").status_code(), 404);
    /// ```
    pub fn not_found(message: impl Into<String>) -> Self {
        Error::status(404, message)
    }

    /// An error answering with `status`. For a 4xx the message is the response body; for a
    /// 5xx the body is generic and the message is logged. A status outside 400–599 becomes 500.
    ///
    /// ```
    /// let err = skiff_sdk::Error::status(409, "item 3 exists");
    /// assert_eq!(err.status_code(), 409);
    /// assert_eq!(skiff_sdk::Error::status(200, "not an error").status_code(), 500);
    /// ```
    pub fn status(status: u16, message: impl Into<String>) -> Self {
        Error::Status {
            status,
            message: message.into(),
        }
    }

    /// A `500 Internal Server Error`: `cause` is logged, the client sees a generic body.
    ///
    /// ```
    /// let err = skiff_sdk::Error::internal("database file is corrupt");
    /// assert_eq!(err.status_code(), 500);
    /// ```
    pub fn internal(cause: impl fmt::Display) -> Self {
        Error::Internal(cause.to_string())
    }

    /// The HTTP status this error answers with.
    ///
    /// ```
    /// let err: skiff_sdk::Error = serde_json::from_str::<u32>("x").unwrap_err().into();
    /// assert_eq!(err.status_code(), 400);
    /// ```
    pub fn status_code(&self) -> u16 {
        match self {
            Error::Status { status, .. } if (400..600).contains(status) => *status,
            Error::Status { .. } | Error::Internal(_) | Error::Io(_) | Error::Config { .. } => 500,
            Error::Json(_) => 400,
            Error::Upstream { .. } => 502,
        }
    }

    /// Whether the error is the client's fault (4xx): its message is then sent to the client.
    ///
    /// ```
    /// assert!(skiff_sdk::Error::bad_request("x").is_client_error());
    /// assert!(!skiff_sdk::Error::internal("x").is_client_error());
    /// ```
    pub fn is_client_error(&self) -> bool {
        (400..500).contains(&self.status_code())
    }

    pub(crate) fn upstream(url: impl Into<String>, message: impl fmt::Display) -> Self {
        Error::Upstream {
            url: url.into(),
            message: message.to_string(),
        }
    }

    pub(crate) fn config(name: impl Into<String>, message: impl fmt::Display) -> Self {
        Error::Config {
            name: name.into(),
            message: message.to_string(),
        }
    }

    /// The response for this error; logs the cause of a server error.
    pub(crate) fn to_response(&self) -> Response {
        let status = self.status_code();
        if status < 500 {
            return Response::text(status, format!("{self}\n"));
        }
        log_server_error("request failed", status, self);
        server_error_response(status)
    }
}

/// Logs a server error's cause: `{"level":"error","msg":…,"status":500,"cause":…}`.
pub(crate) fn log_server_error(msg: &str, status: u16, cause: &dyn fmt::Display) {
    crate::log::__log_values(
        crate::log::Level::Error,
        &msg,
        &[
            ("status", serde_json::Value::from(status)),
            ("cause", serde_json::Value::String(cause.to_string())),
        ],
    );
}

/// The generic body of a server error: its reason phrase, lower case.
pub(crate) fn server_error_response(status: u16) -> Response {
    let reason = match status {
        501 => "not implemented",
        502 => "bad gateway",
        503 => "service unavailable",
        504 => "gateway timeout",
        _ => "internal server error",
    };
    Response::text(status, format!("{reason}\n"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_errors_answer_with_their_message() {
        let resp = Error::bad_request("name is required").to_response();
        assert_eq!(resp.status, 400);
        assert_eq!(resp.body, b"name is required\n");
        let json: Error = serde_json::from_str::<Vec<u8>>("[").unwrap_err().into();
        let resp = json.to_response();
        assert_eq!(resp.status, 400);
        assert!(
            String::from_utf8_lossy(&resp.body).starts_with("invalid JSON body: EOF"),
            "{resp:?}"
        );
    }

    #[test]
    fn server_errors_hide_their_cause() {
        for (err, status, body) in [
            (
                Error::internal("disk on fire"),
                500,
                "internal server error\n",
            ),
            (Error::status(503, "draining"), 503, "service unavailable\n"),
            (
                Error::upstream("http://x/", "refused"),
                502,
                "bad gateway\n",
            ),
            (
                Error::config("PORT", "not a number"),
                500,
                "internal server error\n",
            ),
        ] {
            let resp = err.to_response();
            assert_eq!(resp.status, status);
            assert_eq!(String::from_utf8_lossy(&resp.body), body);
        }
    }
}
