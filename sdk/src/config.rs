//! Typed configuration from the pod's environment variables and mounted ConfigMap/Secret
//! files.
//!
//! Kubernetes hands a container its configuration as environment variables (`env`,
//! `envFrom`, ConfigMap and Secret key refs, the downward API) and as files (ConfigMap and
//! Secret volumes); Skiff does the same for Wasm pods. This module reads them typed:
//!
//! ```no_run
//! #[derive(serde::Deserialize)]
//! struct Settings {
//!     max_items: u32,                 // from MAX_ITEMS
//!     greeting: Option<String>,       // from GREETING, None when unset
//! }
//!
//! fn settings() -> Result<Settings, skiff_sdk::Error> {
//!     skiff_sdk::config::from_env()
//! }
//!
//! fn limit() -> Result<u32, skiff_sdk::Error> {
//!     skiff_sdk::config::env_or("MAX_ITEMS", 100)
//! }
//!
//! fn greeting() -> Result<String, skiff_sdk::Error> {
//!     skiff_sdk::config::file("/etc/config/greeting")
//! }
//! ```
//!
//! A value that is missing or does not parse is an [`Error::Config`] naming the variable or
//! file: a `500` whose cause is logged if a handler returns it.

mod env_de;

use std::str::FromStr;

use serde::de::DeserializeOwned;

use crate::Error;
use env_de::EnvError;

/// The variable `name` parsed as `T`; `Ok(None)` when it is not set.
///
/// ```no_run
/// let port: Option<u16> = skiff_sdk::config::env("PORT")?;
/// # Ok::<(), skiff_sdk::Error>(())
/// ```
pub fn env<T>(name: &str) -> Result<Option<T>, Error>
where
    T: FromStr,
    T::Err: std::fmt::Display,
{
    match std::env::var(name) {
        Ok(raw) => parse(name, &raw).map(Some),
        Err(std::env::VarError::NotPresent) => Ok(None),
        Err(std::env::VarError::NotUnicode(_)) => {
            Err(Error::config(name, "the value is not valid UTF-8"))
        }
    }
}

/// The variable `name` parsed as `T`, or `default` when it is not set.
///
/// ```no_run
/// let max_items: u32 = skiff_sdk::config::env_or("MAX_ITEMS", 100)?;
/// # Ok::<(), skiff_sdk::Error>(())
/// ```
pub fn env_or<T>(name: &str, default: T) -> Result<T, Error>
where
    T: FromStr,
    T::Err: std::fmt::Display,
{
    Ok(env(name)?.unwrap_or(default))
}

/// The variable `name` parsed as `T`; an error when it is not set.
///
/// ```no_run
/// let url: String = skiff_sdk::config::required("DATABASE_URL")?;
/// # Ok::<(), skiff_sdk::Error>(())
/// ```
pub fn required<T>(name: &str) -> Result<T, Error>
where
    T: FromStr,
    T::Err: std::fmt::Display,
{
    env(name)?.ok_or_else(|| Error::config(name, "the environment variable is not set"))
}

/// The content of the file at `path` as text, e.g. a key of a ConfigMap or Secret volume
/// (`mountPath: /etc/config` → `/etc/config/KEY`), kept exactly as stored (a trailing newline
/// stays).
///
/// ```no_run
/// let greeting = skiff_sdk::config::file("/etc/config/greeting")?;
/// # Ok::<(), skiff_sdk::Error>(())
/// ```
pub fn file(path: &str) -> Result<String, Error> {
    std::fs::read_to_string(path).map_err(|err| Error::config(path, err))
}

/// Builds a `T` from the environment: field `max_items` reads the variable `MAX_ITEMS`
/// (variable names lower-cased; `#[serde(rename = …)]` and `#[serde(default)]` work as usual).
/// `String` fields take the value as it is; other fields parse it as JSON (`10`, `true`,
/// `["a","b"]`), enums take a unit variant's name. An `Option` field is `None` when its
/// variable is unset or empty.
///
/// ```no_run
/// #[derive(serde::Deserialize)]
/// struct Settings {
///     max_items: u32,
///     #[serde(default)]
///     verbose: bool,
///     greeting: Option<String>,
/// }
///
/// let settings: Settings = skiff_sdk::config::from_env()?;
/// # Ok::<(), skiff_sdk::Error>(())
/// ```
pub fn from_env<T: DeserializeOwned>() -> Result<T, Error> {
    from_env_prefixed("")
}

/// Like [`from_env`], for the variables whose names start with `prefix` only: with prefix
/// `APP_`, field `max_items` reads `APP_MAX_ITEMS`.
///
/// ```no_run
/// #[derive(serde::Deserialize)]
/// struct Settings { max_items: u32 }
///
/// let settings: Settings = skiff_sdk::config::from_env_prefixed("APP_")?;
/// # Ok::<(), skiff_sdk::Error>(())
/// ```
pub fn from_env_prefixed<T: DeserializeOwned>(prefix: &str) -> Result<T, Error> {
    from_vars(
        std::env::vars_os().filter_map(|(name, value)| {
            Some((name.into_string().ok()?, value.into_string().ok()?))
        }),
        prefix,
    )
}

fn from_vars<T: DeserializeOwned>(
    vars: impl IntoIterator<Item = (String, String)>,
    prefix: &str,
) -> Result<T, Error> {
    env_de::from_vars(vars, prefix).map_err(|err| match err {
        EnvError::Missing(field) => Error::config(
            format!("{prefix}{}", field.to_ascii_uppercase()),
            "the environment variable is not set",
        ),
        EnvError::Value { var, message } => Error::config(var, message),
        EnvError::Other(message) => Error::config("environment", message),
    })
}

fn parse<T>(name: &str, raw: &str) -> Result<T, Error>
where
    T: FromStr,
    T::Err: std::fmt::Display,
{
    raw.parse()
        .map_err(|err| Error::config(name, format!("cannot parse {raw:?}: {err}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_errors_name_the_variable() {
        assert_eq!(parse::<u16>("PORT", "8080").unwrap(), 8080);
        let err = parse::<u16>("PORT", "eighty").unwrap_err();
        assert_eq!(err.status_code(), 500);
        assert_eq!(
            err.to_string(),
            "config PORT: cannot parse \"eighty\": invalid digit found in string"
        );
    }

    #[test]
    fn missing_fields_name_the_variable() {
        #[derive(Debug, serde::Deserialize)]
        #[allow(dead_code)]
        struct Settings {
            max_items: u32,
        }
        let err = from_vars::<Settings>(Vec::new(), "APP_").unwrap_err();
        assert_eq!(
            err.to_string(),
            "config APP_MAX_ITEMS: the environment variable is not set"
        );
        let vars = vec![("APP_MAX_ITEMS".to_string(), "7".to_string())];
        assert_eq!(from_vars::<Settings>(vars, "APP_").unwrap().max_items, 7);
    }

    #[test]
    fn files_keep_their_content() {
        let dir = std::env::temp_dir().join(format!("skiff-sdk-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("greeting");
        std::fs::write(&path, "hello\n").unwrap();
        assert_eq!(file(path.to_str().unwrap()).unwrap(), "hello\n");
        let missing = dir.join("missing");
        let err = file(missing.to_str().unwrap()).unwrap_err();
        assert!(err.to_string().contains("missing"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
