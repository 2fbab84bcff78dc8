//! The kubectl JSONPath subset printer columns use (`.spec.replicas`,
//! `.metadata.labels['app\.kubernetes\.io/name']`, `.spec.items[0].name`, `.spec.items[*].name`,
//! `.status.conditions[?(@.type=="Ready")].status`), evaluated against a JSON object.

use serde_json::Value;

#[derive(Debug, Clone, PartialEq)]
enum Step {
    Field(String),
    /// `.*` / `[*]`: every element or value.
    All,
    Index(i64),
    Filter(Filter),
}

#[derive(Debug, Clone, PartialEq)]
struct Filter {
    path: Vec<String>,
    /// `None`: the path exists.
    cmp: Option<(Op, Value)>,
}

#[derive(Debug, Clone, Copy, PartialEq)]
enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
}

/// A parsed path.
#[derive(Debug, Clone, PartialEq)]
pub struct JsonPath {
    source: String,
    steps: Vec<Step>,
}

impl JsonPath {
    /// Parses `.a.b[0]`; a surrounding `{…}` is accepted, as kubectl's templates write it.
    pub fn parse(source: &str) -> Result<JsonPath, String> {
        let text = source.trim();
        let text = text
            .strip_prefix('{')
            .and_then(|t| t.strip_suffix('}'))
            .unwrap_or(text);
        let chars: Vec<char> = text.chars().collect();
        let mut steps = Vec::new();
        let mut i = 0;
        while i < chars.len() {
            match chars[i] {
                '.' => {
                    i += 1;
                    if chars.get(i) == Some(&'.') {
                        return Err(format!(
                            "recursive descent (..) is not supported in {source:?}"
                        ));
                    }
                    let (name, next) = read_name(&chars, i);
                    i = next;
                    match name.as_str() {
                        "" if i >= chars.len() => {}
                        "" => {}
                        "*" => steps.push(Step::All),
                        _ => steps.push(Step::Field(name)),
                    }
                }
                '[' => {
                    let close = find_close(&chars, i)
                        .ok_or_else(|| format!("unterminated [ in {source:?}"))?;
                    let inner: String = chars[i + 1..close].iter().collect();
                    steps.push(bracket(inner.trim(), source)?);
                    i = close + 1;
                }
                c if steps.is_empty() && i == 0 => {
                    // A path without the leading dot: `spec.replicas`.
                    let (name, next) = read_name(&chars, i);
                    if name.is_empty() {
                        return Err(format!("unexpected {c:?} in {source:?}"));
                    }
                    steps.push(Step::Field(name));
                    i = next;
                }
                c => return Err(format!("unexpected {c:?} in {source:?}")),
            }
        }
        Ok(JsonPath {
            source: source.to_string(),
            steps,
        })
    }

    pub fn source(&self) -> &str {
        &self.source
    }

    /// Every value the path selects, in order.
    pub fn find<'a>(&self, root: &'a Value) -> Vec<&'a Value> {
        let mut current = vec![root];
        for step in &self.steps {
            let mut next = Vec::new();
            for v in current {
                match step {
                    Step::Field(name) => {
                        if let Some(x) = v.get(name) {
                            next.push(x);
                        }
                    }
                    Step::All => match v {
                        Value::Array(a) => next.extend(a.iter()),
                        Value::Object(m) => next.extend(m.values()),
                        _ => {}
                    },
                    Step::Index(n) => {
                        if let Some(a) = v.as_array() {
                            let idx = if *n < 0 { a.len() as i64 + n } else { *n };
                            if let Some(x) = usize::try_from(idx).ok().and_then(|i| a.get(i)) {
                                next.push(x);
                            }
                        }
                    }
                    Step::Filter(f) => {
                        if let Some(a) = v.as_array() {
                            next.extend(a.iter().filter(|item| f.matches(item)));
                        }
                    }
                }
            }
            current = next;
        }
        current
    }

    /// The first value the path selects.
    pub fn first<'a>(&self, root: &'a Value) -> Option<&'a Value> {
        self.find(root).into_iter().next()
    }
}

/// A name up to the next `.` or `[`; `\.` is a literal dot.
fn read_name(chars: &[char], mut i: usize) -> (String, usize) {
    let mut name = String::new();
    while i < chars.len() {
        match chars[i] {
            '\\' if i + 1 < chars.len() => {
                name.push(chars[i + 1]);
                i += 2;
            }
            '.' | '[' => break,
            c => {
                name.push(c);
                i += 1;
            }
        }
    }
    (name, i)
}

/// The `]` closing the `[` at `open`, skipping quoted text and nested brackets.
fn find_close(chars: &[char], open: usize) -> Option<usize> {
    let mut depth = 0;
    let mut quote: Option<char> = None;
    for (i, c) in chars.iter().enumerate().skip(open) {
        match (quote, c) {
            (Some(q), c) if *c == q => quote = None,
            (Some(_), _) => {}
            (None, '"' | '\'') => quote = Some(*c),
            (None, '[') => depth += 1,
            (None, ']') => {
                depth -= 1;
                if depth == 0 {
                    return Some(i);
                }
            }
            _ => {}
        }
    }
    None
}

fn unquote(s: &str) -> Option<String> {
    let s = s.trim();
    let q = s.chars().next()?;
    if (q == '"' || q == '\'') && s.len() >= 2 && s.ends_with(q) {
        Some(s[1..s.len() - 1].replace("\\.", "."))
    } else {
        None
    }
}

fn bracket(inner: &str, source: &str) -> Result<Step, String> {
    if inner == "*" {
        return Ok(Step::All);
    }
    if let Some(name) = unquote(inner) {
        return Ok(Step::Field(name));
    }
    if let Ok(n) = inner.parse::<i64>() {
        return Ok(Step::Index(n));
    }
    if let Some(expr) = inner.strip_prefix("?(").and_then(|e| e.strip_suffix(')')) {
        return filter(expr.trim(), source).map(Step::Filter);
    }
    Err(format!("unsupported [{inner}] in {source:?}"))
}

fn filter(expr: &str, source: &str) -> Result<Filter, String> {
    let ops = [
        ("==", Op::Eq),
        ("!=", Op::Ne),
        ("<=", Op::Le),
        (">=", Op::Ge),
        ("<", Op::Lt),
        (">", Op::Gt),
    ];
    let (lhs, cmp) = match ops
        .iter()
        .find_map(|(t, op)| expr.find(t).map(|at| (at, t, op)))
    {
        Some((at, t, op)) => {
            let rhs = expr[at + t.len()..].trim();
            let lit = match unquote(rhs) {
                Some(s) => Value::String(s),
                None => serde_json::from_str(rhs)
                    .map_err(|_| format!("unsupported filter value {rhs:?} in {source:?}"))?,
            };
            (expr[..at].trim(), Some((*op, lit)))
        }
        None => (expr, None),
    };
    let rest = lhs
        .strip_prefix('@')
        .ok_or_else(|| format!("a filter must start with @ in {source:?}"))?;
    let parsed = JsonPath::parse(rest)?;
    let path = parsed
        .steps
        .into_iter()
        .map(|s| match s {
            Step::Field(f) => Ok(f),
            _ => Err(format!("a filter may only name fields in {source:?}")),
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Filter { path, cmp })
}

impl Filter {
    fn matches(&self, item: &Value) -> bool {
        let mut v = item;
        for f in &self.path {
            match v.get(f) {
                Some(x) => v = x,
                None => return false,
            }
        }
        let Some((op, lit)) = &self.cmp else {
            return true;
        };
        match (v, lit) {
            (Value::Number(a), Value::Number(b)) => {
                let (a, b) = (a.as_f64().unwrap_or(0.0), b.as_f64().unwrap_or(0.0));
                match op {
                    Op::Eq => a == b,
                    Op::Ne => a != b,
                    Op::Lt => a < b,
                    Op::Le => a <= b,
                    Op::Gt => a > b,
                    Op::Ge => a >= b,
                }
            }
            (Value::String(a), Value::String(b)) => match op {
                Op::Eq => a == b,
                Op::Ne => a != b,
                Op::Lt => a < b,
                Op::Le => a <= b,
                Op::Gt => a > b,
                Op::Ge => a >= b,
            },
            (a, b) => match op {
                Op::Eq => a == b,
                Op::Ne => a != b,
                _ => false,
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn paths_select_values() {
        let obj = json!({
            "metadata": {"labels": {"app.kubernetes.io/name": "web"}},
            "spec": {"replicas": 3, "items": [{"name": "a"}, {"name": "b"}]},
            "status": {"conditions": [
                {"type": "Progressing", "status": "True"},
                {"type": "Ready", "status": "False"}]}
        });
        let first = |p: &str| JsonPath::parse(p).unwrap().first(&obj).cloned();
        assert_eq!(first(".spec.replicas"), Some(json!(3)));
        assert_eq!(first("{.spec.replicas}"), Some(json!(3)));
        assert_eq!(first(".spec.items[1].name"), Some(json!("b")));
        assert_eq!(first(".spec.items[-1].name"), Some(json!("b")));
        assert_eq!(first(".spec.items[*].name"), Some(json!("a")));
        assert_eq!(
            first(r#".status.conditions[?(@.type=="Ready")].status"#),
            Some(json!("False"))
        );
        assert_eq!(
            first(r".metadata.labels.app\.kubernetes\.io/name"),
            Some(json!("web"))
        );
        assert_eq!(
            first(".metadata.labels['app.kubernetes.io/name']"),
            Some(json!("web"))
        );
        assert_eq!(first(".spec.missing"), None);
        assert_eq!(
            JsonPath::parse(".spec.items[*].name")
                .unwrap()
                .find(&obj)
                .len(),
            2
        );
        assert!(JsonPath::parse(".spec[").is_err());
        assert!(JsonPath::parse("..spec").is_err());
    }
}
