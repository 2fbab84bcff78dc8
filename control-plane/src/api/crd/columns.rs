//! Printer columns of custom resources (`additionalPrinterColumns`): the server-side `Table`
//! `kubectl get` prints, as apiextensions-apiserver's table convertor builds it — `Name`, then
//! each column's JSONPath value typed by the column (`integer`, `number`, `boolean`, `string`,
//! `date` shown as an age); a version without columns gets `Age`.

use jiff::Timestamp;
use serde_json::{json, Value};

use super::jsonpath::JsonPath;
use crate::api::table::{human_duration_nanos, AGE_DESC, NAME_DESC};

/// The column types and formats a CRD may declare.
pub const TYPES: &[&str] = &["boolean", "date", "integer", "number", "string"];
pub const FORMATS: &[&str] = &[
    "byte",
    "date",
    "date-time",
    "double",
    "float",
    "int32",
    "int64",
    "password",
];

/// One printer column.
#[derive(Debug, Clone)]
pub struct Column {
    pub name: String,
    pub ty: String,
    pub format: String,
    pub description: String,
    pub priority: i64,
    pub path: JsonPath,
}

impl Column {
    /// A column of a CRD version's `additionalPrinterColumns` (skipped if its path does not
    /// parse; the CRD's validation refuses such a path before it is served).
    pub fn from_json(v: &Value) -> Option<Column> {
        let s = |k: &str| v.get(k).and_then(Value::as_str).unwrap_or("").to_string();
        let path = JsonPath::parse(&s("jsonPath")).ok()?;
        let description = match s("description") {
            d if d.is_empty() => format!(
                "Custom resource definition column (in JSONPath format): {}",
                path.source()
            ),
            d => d,
        };
        Some(Column {
            name: s("name"),
            ty: s("type"),
            format: s("format"),
            description,
            priority: v.get("priority").and_then(Value::as_i64).unwrap_or(0),
            path,
        })
    }

    /// The `metav1.TableColumnDefinition`.
    pub fn definition(&self) -> Value {
        json!({
            "name": self.name,
            "type": self.ty,
            "format": self.format,
            "description": self.description,
            "priority": self.priority,
        })
    }

    /// This column's cell for `item` (`null` when the path selects nothing or a value of
    /// another type).
    pub fn cell(&self, item: &Value, now: Timestamp) -> Value {
        let Some(v) = self.path.first(item).filter(|v| !v.is_null()) else {
            return Value::Null;
        };
        match self.ty.as_str() {
            "integer" => v
                .as_i64()
                .or_else(|| v.as_f64().map(|f| f as i64))
                .map_or(Value::Null, Value::from),
            "number" => v.as_f64().map_or(Value::Null, Value::from),
            "boolean" => v.as_bool().map_or(Value::Null, Value::from),
            "date" => match v.as_str() {
                Some(s) => match s.parse::<Timestamp>() {
                    Ok(t) => {
                        let nanos = now.as_nanosecond() - t.as_nanosecond();
                        let nanos = i64::try_from(nanos).unwrap_or(i64::MAX);
                        Value::from(human_duration_nanos(nanos))
                    }
                    Err(_) => Value::from("<invalid>"),
                },
                None => Value::Null,
            },
            // `string`: the value as kubectl's JSONPath prints it.
            _ => match v {
                Value::String(s) => Value::from(s.clone()),
                other => Value::from(other.to_string()),
            },
        }
    }
}

/// The columns of a CRD version: its `additionalPrinterColumns`, or `Age` when it has none.
pub fn of_version(version: &Value) -> Vec<Column> {
    let declared: Vec<Column> = version
        .get("additionalPrinterColumns")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Column::from_json).collect())
        .unwrap_or_default();
    if !declared.is_empty() {
        return declared;
    }
    vec![Column {
        name: "Age".into(),
        ty: "date".into(),
        format: String::new(),
        description: AGE_DESC.to_string(),
        priority: 0,
        path: JsonPath::parse(".metadata.creationTimestamp").expect("a fixed path parses"),
    }]
}

/// The table's column definitions: `Name`, then `columns`.
pub fn definitions(columns: &[Column]) -> Vec<Value> {
    let mut out = vec![json!({
        "name": "Name", "type": "string", "format": "name", "description": NAME_DESC, "priority": 0,
    })];
    out.extend(columns.iter().map(Column::definition));
    out
}

/// One row's cells: the name, then each column's.
pub fn cells(columns: &[Column], item: &Value, now: Timestamp) -> Vec<Value> {
    let name = item
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("");
    let mut out = vec![Value::from(name)];
    out.extend(columns.iter().map(|c| c.cell(item, now)));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_follow_the_column_types() {
        let version = json!({"additionalPrinterColumns": [
            {"name": "Replicas", "type": "integer", "jsonPath": ".spec.replicas"},
            {"name": "Image", "type": "string", "jsonPath": ".spec.image", "description": "the image"},
            {"name": "Ready", "type": "string", "jsonPath": ".status.conditions[?(@.type==\"Ready\")].status"},
            {"name": "Ratio", "type": "number", "jsonPath": ".spec.ratio", "priority": 1},
            {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
        ]});
        let cols = of_version(&version);
        assert_eq!(cols.len(), 5);
        let defs = definitions(&cols);
        assert_eq!(defs[0]["name"], "Name");
        assert_eq!(defs[2]["description"], "the image");
        assert_eq!(
            defs[1]["description"],
            "Custom resource definition column (in JSONPath format): .spec.replicas"
        );
        assert_eq!(defs[4]["priority"], 1);
        let now: Timestamp = "2024-05-01T10:05:00Z".parse().unwrap();
        let item = json!({"metadata": {"name": "w", "creationTimestamp": "2024-05-01T10:00:00Z"},
            "spec": {"replicas": 3, "image": "nginx", "ratio": 0.5},
            "status": {"conditions": [{"type": "Ready", "status": "True"}]}});
        assert_eq!(
            cells(&cols, &item, now),
            vec![
                json!("w"),
                json!(3),
                json!("nginx"),
                json!("True"),
                json!(0.5),
                json!("5m")
            ]
        );
        let bare = json!({"metadata": {"name": "x"}});
        assert_eq!(cells(&cols, &bare, now)[1], Value::Null);
        let defaults = of_version(&json!({}));
        assert_eq!(definitions(&defaults)[1]["name"], "Age");
        assert_eq!(definitions(&defaults)[1]["type"], "date");
    }
}
