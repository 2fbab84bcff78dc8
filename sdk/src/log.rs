//! Structured logs: one JSON object per line on stdout, which is the pod's log
//! (`kubectl logs`).
//!
//! ```
//! skiff_sdk::log::info("item created", &[("id", &42), ("name", &"tea")]);
//! // {"level":"info","msg":"item created","id":"42","name":"tea"}
//!
//! skiff_sdk::info!("item created", id = 42, name = "tea");
//! // {"level":"info","msg":"item created","id":42,"name":"tea"}
//! ```
//!
//! The functions take values that implement `Display` and write them as JSON strings; the
//! macros ([`debug!`](crate::debug), [`info!`](crate::info), [`warn!`](crate::warn),
//! [`error!`](crate::error)) take values that implement `serde::Serialize` and keep their
//! JSON type (numbers stay numbers). Lines below the level in the `LOG_LEVEL` environment
//! variable (`debug`, `info` — the default —, `warn`, `error`) are not written.

use std::fmt::{self, Display};
use std::io::Write as _;

use serde_json::Value;

/// How severe a log line is.
///
/// ```
/// use skiff_sdk::log::Level;
/// assert!(Level::Error > Level::Info);
/// assert_eq!(Level::Warn.as_str(), "warn");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Level {
    /// Detail for debugging; written only with `LOG_LEVEL=debug`.
    Debug,
    /// Normal operation.
    Info,
    /// Something unexpected that the service handled.
    Warn,
    /// A failure, e.g. the cause of a 500.
    Error,
}

impl Level {
    /// The level's name as written in the `level` field.
    ///
    /// ```
    /// assert_eq!(skiff_sdk::log::Level::Debug.as_str(), "debug");
    /// ```
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Debug => "debug",
            Level::Info => "info",
            Level::Warn => "warn",
            Level::Error => "error",
        }
    }

    /// Parses a level name (case-insensitive; `warning` is `warn`).
    ///
    /// ```
    /// use skiff_sdk::log::Level;
    /// assert_eq!(Level::parse("DEBUG"), Some(Level::Debug));
    /// assert_eq!(Level::parse("loud"), None);
    /// ```
    pub fn parse(name: &str) -> Option<Level> {
        match name.trim().to_ascii_lowercase().as_str() {
            "debug" | "trace" => Some(Level::Debug),
            "info" => Some(Level::Info),
            "warn" | "warning" => Some(Level::Warn),
            "error" => Some(Level::Error),
            _ => None,
        }
    }
}

impl Display for Level {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whether lines of `level` are written: at or above `LOG_LEVEL` (default `info`).
///
/// ```
/// use skiff_sdk::log::{enabled, Level};
/// assert!(enabled(Level::Error));
/// ```
pub fn enabled(level: Level) -> bool {
    let min = std::env::var("LOG_LEVEL")
        .ok()
        .and_then(|name| Level::parse(&name))
        .unwrap_or(Level::Info);
    level >= min
}

/// Writes a `debug` line with `msg` and `fields` (values written as JSON strings).
///
/// ```
/// skiff_sdk::log::debug("cache miss", &[("key", &"items/3")]);
/// ```
pub fn debug(msg: &str, fields: &[(&str, &dyn Display)]) {
    log(Level::Debug, msg, fields);
}

/// Writes an `info` line with `msg` and `fields` (values written as JSON strings).
///
/// ```
/// skiff_sdk::log::info("listening", &[("port", &8080)]);
/// ```
pub fn info(msg: &str, fields: &[(&str, &dyn Display)]) {
    log(Level::Info, msg, fields);
}

/// Writes a `warn` line with `msg` and `fields` (values written as JSON strings).
///
/// ```
/// skiff_sdk::log::warn("slow upstream", &[("service", &"orders"), ("ms", &1200)]);
/// ```
pub fn warn(msg: &str, fields: &[(&str, &dyn Display)]) {
    log(Level::Warn, msg, fields);
}

/// Writes an `error` line with `msg` and `fields` (values written as JSON strings).
///
/// ```
/// skiff_sdk::log::error("cannot save", &[("cause", &"disk full")]);
/// ```
pub fn error(msg: &str, fields: &[(&str, &dyn Display)]) {
    log(Level::Error, msg, fields);
}

/// Writes a line of `level` with `msg` and `fields` (values written as JSON strings).
///
/// ```
/// skiff_sdk::log::log(skiff_sdk::log::Level::Info, "ready", &[]);
/// ```
pub fn log(level: Level, msg: &str, fields: &[(&str, &dyn Display)]) {
    if enabled(level) {
        let fields: Vec<(&str, Value)> = fields
            .iter()
            .map(|(key, value)| (*key, Value::String(value.to_string())))
            .collect();
        write_line(&format_line(level, msg, &fields));
    }
}

/// Writes a line whose field values are JSON values. Used by the logging macros.
#[doc(hidden)]
pub fn __log_values(level: Level, msg: &dyn Display, fields: &[(&str, Value)]) {
    if enabled(level) {
        write_line(&format_line(level, &msg.to_string(), fields));
    }
}

/// A field value for the logging macros: its JSON form, or its serialization error as a string.
#[doc(hidden)]
pub fn __value<T: serde::Serialize + ?Sized>(value: &T) -> Value {
    serde_json::to_value(value).unwrap_or_else(|err| Value::String(format!("<{err}>")))
}

/// One log line: `{"level":…,"msg":…,fields…}` without the newline.
fn format_line(level: Level, msg: &str, fields: &[(&str, Value)]) -> String {
    let mut line = format!(
        "{{\"level\":\"{}\",\"msg\":{}",
        level.as_str(),
        Value::String(msg.to_string())
    );
    for (key, value) in fields {
        line.push(',');
        line.push_str(&Value::String((*key).to_string()).to_string());
        line.push(':');
        line.push_str(&value.to_string());
    }
    line.push('}');
    line
}

fn write_line(line: &str) {
    let mut out = std::io::stdout().lock();
    // A log line that cannot be written has nowhere else to go.
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

/// Shared body of the logging macros.
#[doc(hidden)]
#[macro_export]
macro_rules! __log_macro {
    ($level:expr, $msg:expr $(, $key:ident = $value:expr)* $(,)?) => {
        $crate::log::__log_values(
            $level,
            &$msg,
            &[$((::core::stringify!($key), $crate::log::__value(&$value))),*],
        )
    };
}

/// Writes a `debug` line: `skiff_sdk::debug!("msg", key = value, …)`; values are
/// `serde::Serialize` and keep their JSON type.
///
/// ```
/// skiff_sdk::debug!("cache lookup", key = "items/3", hit = false);
/// ```
#[macro_export]
macro_rules! debug {
    ($($args:tt)+) => { $crate::__log_macro!($crate::log::Level::Debug, $($args)+) };
}

/// Writes an `info` line: `skiff_sdk::info!("msg", key = value, …)`; values are
/// `serde::Serialize` and keep their JSON type.
///
/// ```
/// skiff_sdk::info!("item created", id = 42, tags = vec!["green", "tea"]);
/// ```
#[macro_export]
macro_rules! info {
    ($($args:tt)+) => { $crate::__log_macro!($crate::log::Level::Info, $($args)+) };
}

/// Writes a `warn` line: `skiff_sdk::warn!("msg", key = value, …)`; values are
/// `serde::Serialize` and keep their JSON type.
///
/// ```
/// skiff_sdk::warn!("retrying", attempt = 2);
/// ```
#[macro_export]
macro_rules! warn {
    ($($args:tt)+) => { $crate::__log_macro!($crate::log::Level::Warn, $($args)+) };
}

/// Writes an `error` line: `skiff_sdk::error!("msg", key = value, …)`; values are
/// `serde::Serialize` and keep their JSON type.
///
/// ```
/// skiff_sdk::error!("cannot reach orders", status = 503);
/// ```
#[macro_export]
macro_rules! error {
    ($($args:tt)+) => { $crate::__log_macro!($crate::log::Level::Error, $($args)+) };
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_json_objects_in_order() {
        let line = format_line(
            Level::Info,
            "said \"hi\"",
            &[("id", Value::from(3)), ("who", Value::from("a\nb"))],
        );
        assert_eq!(
            line,
            r#"{"level":"info","msg":"said \"hi\"","id":3,"who":"a\nb"}"#
        );
        let parsed: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(parsed["who"], "a\nb");
    }

    #[test]
    fn levels_order_and_parse() {
        assert!(Level::Debug < Level::Info && Level::Warn < Level::Error);
        assert_eq!(Level::parse(" Warning "), Some(Level::Warn));
        assert_eq!(__value(&vec![1, 2]), serde_json::json!([1, 2]));
    }
}
