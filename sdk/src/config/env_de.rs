//! A serde `Deserializer` over environment variables, for [`from_env`](super::from_env):
//! field `max_items` reads `MAX_ITEMS`; each value is read as the field's type asks — strings
//! as they are, anything else parsed as JSON (numbers, booleans, arrays, objects).

use serde::de::value::{MapDeserializer, StringDeserializer};
use serde::de::{self, DeserializeOwned, IntoDeserializer, Visitor};
use serde::forward_to_deserialize_any;
use serde_json::Value;

/// Why the variables do not make a `T`.
#[derive(Debug, thiserror::Error)]
pub(crate) enum EnvError {
    /// A field that has no variable (and no `#[serde(default)]`).
    #[error("missing field `{0}`")]
    Missing(&'static str),
    /// A variable whose value does not fit its field.
    #[error("environment variable {var}: {message}")]
    Value { var: String, message: String },
    /// Any other error, e.g. from a custom `Deserialize` impl.
    #[error("{0}")]
    Other(String),
}

impl de::Error for EnvError {
    fn custom<T: std::fmt::Display>(msg: T) -> Self {
        EnvError::Other(msg.to_string())
    }

    fn missing_field(field: &'static str) -> Self {
        EnvError::Missing(field)
    }
}

impl EnvError {
    /// Names `var` in an error from its value.
    fn in_var(self, var: &str) -> Self {
        match self {
            EnvError::Other(message) => EnvError::Value {
                var: var.to_string(),
                message,
            },
            other => other,
        }
    }
}

/// Builds `T` from `vars`: every variable whose name starts with `prefix` becomes the field
/// named by the rest of its name, lower-cased.
pub(crate) fn from_vars<T, I>(vars: I, prefix: &str) -> Result<T, EnvError>
where
    T: DeserializeOwned,
    I: IntoIterator<Item = (String, String)>,
{
    let entries: Vec<(String, EnvValue)> = vars
        .into_iter()
        .filter_map(|(name, raw)| {
            let field = name.strip_prefix(prefix)?.to_ascii_lowercase();
            Some((field, EnvValue { var: name, raw }))
        })
        .collect();
    T::deserialize(MapDeserializer::new(entries.into_iter()))
}

/// One variable's value; remembers its name for error messages.
struct EnvValue {
    var: String,
    raw: String,
}

impl<'de> IntoDeserializer<'de, EnvError> for EnvValue {
    type Deserializer = Self;

    fn into_deserializer(self) -> Self {
        self
    }
}

impl EnvValue {
    fn json(&self) -> Option<Value> {
        serde_json::from_str(&self.raw).ok()
    }

    /// Runs `f`, naming this variable in its error.
    fn named<T>(&self, result: Result<T, EnvError>) -> Result<T, EnvError> {
        result.map_err(|e| e.in_var(&self.var))
    }
}

fn json_error(err: serde_json::Error) -> EnvError {
    EnvError::Other(err.to_string())
}

impl<'de> de::Deserializer<'de> for EnvValue {
    type Error = EnvError;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, EnvError> {
        let result = match self.json() {
            Some(value) => value.deserialize_any(visitor).map_err(json_error),
            None => visitor.visit_string(self.raw.clone()),
        };
        self.named(result)
    }

    fn deserialize_str<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, EnvError> {
        let result = visitor.visit_string(self.raw.clone());
        self.named(result)
    }

    fn deserialize_string<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, EnvError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_char<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, EnvError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_identifier<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, EnvError> {
        self.deserialize_str(visitor)
    }

    fn deserialize_bytes<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, EnvError> {
        let result = visitor.visit_byte_buf(self.raw.clone().into_bytes());
        self.named(result)
    }

    fn deserialize_byte_buf<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, EnvError> {
        self.deserialize_bytes(visitor)
    }

    /// An empty value is `None`.
    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, EnvError> {
        if self.raw.is_empty() {
            visitor.visit_none()
        } else {
            visitor.visit_some(self)
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, EnvError> {
        visitor.visit_newtype_struct(self)
    }

    /// A unit variant by name (`LOG_FORMAT=json`), or any variant as JSON.
    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, EnvError> {
        let result = match self.json() {
            Some(value @ Value::Object(_)) => value
                .deserialize_enum(name, variants, visitor)
                .map_err(json_error),
            _ => {
                let plain: StringDeserializer<EnvError> = self.raw.clone().into_deserializer();
                de::Deserializer::deserialize_enum(plain, name, variants, visitor)
            }
        };
        self.named(result)
    }

    forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 unit unit_struct seq tuple
        tuple_struct map struct ignored_any
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(rename_all = "lowercase")]
    enum Format {
        Json,
        Text,
    }

    #[derive(Debug, Deserialize, PartialEq)]
    struct Config {
        max_items: u32,
        greeting: String,
        verbose: bool,
        ratio: Option<f64>,
        tags: Vec<String>,
        format: Format,
        #[serde(default)]
        missing_ok: u8,
        nothing: Option<u16>,
    }

    fn vars(list: &[(&str, &str)]) -> Vec<(String, String)> {
        list.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn builds_structs_from_vars() {
        let config: Config = from_vars(
            vars(&[
                ("APP_MAX_ITEMS", "10"),
                ("APP_GREETING", "123"),
                ("APP_VERBOSE", "true"),
                ("APP_RATIO", "0.5"),
                ("APP_TAGS", r#"["a","b"]"#),
                ("APP_FORMAT", "json"),
                ("APP_NOTHING", ""),
                ("HOME", "/"),
            ]),
            "APP_",
        )
        .unwrap();
        assert_eq!(
            config,
            Config {
                max_items: 10,
                greeting: "123".into(),
                verbose: true,
                ratio: Some(0.5),
                tags: vec!["a".into(), "b".into()],
                format: Format::Json,
                missing_ok: 0,
                nothing: None,
            }
        );
    }

    #[derive(Debug, Deserialize)]
    #[allow(dead_code)]
    struct Small {
        max_items: u32,
        format: Format,
    }

    #[test]
    fn errors_name_the_variable() {
        let err = from_vars::<Small, _>(vars(&[("MAX_ITEMS", "ten"), ("FORMAT", "text")]), "")
            .unwrap_err();
        assert_eq!(
            err.to_string(),
            "environment variable MAX_ITEMS: invalid type: string \"ten\", expected u32"
        );
        let err = from_vars::<Small, _>(vars(&[("MAX_ITEMS", "1")]), "").unwrap_err();
        assert!(matches!(err, EnvError::Missing("format")), "{err}");
        let err =
            from_vars::<Small, _>(vars(&[("MAX_ITEMS", "1"), ("FORMAT", "xml")]), "").unwrap_err();
        assert!(
            err.to_string()
                .starts_with("environment variable FORMAT: unknown variant `xml`"),
            "{err}"
        );
        assert!(matches!(
            from_vars::<Small, _>(vars(&[("MAX_ITEMS", "1"), ("FORMAT", "text")]), ""),
            Ok(Small {
                max_items: 1,
                format: Format::Text
            })
        ));
    }
}
