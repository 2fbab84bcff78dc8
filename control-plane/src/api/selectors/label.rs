use super::SelectorError;
use crate::api::admission::field::go_quote;
use crate::api::admission::names;
use serde_json::{Map, Value};
use std::fmt;

/// A label selector operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operator {
    Equals,
    DoubleEquals,
    NotEquals,
    In,
    NotIn,
    Exists,
    DoesNotExist,
    GreaterThan,
    LessThan,
}

/// One requirement (`key op values`); `values` are sorted and de-duplicated.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Requirement {
    pub key: String,
    pub operator: Operator,
    pub values: Vec<String>,
}

/// A parsed label selector. The empty selector matches everything; the
/// selector built from an absent (`null`) `metav1.LabelSelector` matches nothing.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LabelSelector {
    requirements: Vec<Requirement>,
    nothing: bool,
}

fn invalid_value_err(path: &str, bad: &str, msg: &str) -> String {
    format!("{path}: Invalid value: {bad}: {msg}")
}

fn validate_label_key(key: &str, path: &str) -> Result<(), String> {
    let errs = names::qualified_name(key);
    if errs.is_empty() {
        Ok(())
    } else {
        Err(invalid_value_err(path, &go_quote(key), &errs.join("; ")))
    }
}

fn go_string_slice(v: &[String]) -> String {
    let q: Vec<String> = v.iter().map(|s| go_quote(s)).collect();
    format!("[]string{{{}}}", q.join(", "))
}

impl Requirement {
    /// `labels.NewRequirement`: validates key, operator/value count and values.
    pub fn new(key: &str, operator: Operator, values: Vec<String>) -> Result<Self, SelectorError> {
        let mut errs: Vec<String> = Vec::new();
        if let Err(e) = validate_label_key(key, "key") {
            errs.push(e);
        }
        let vals = go_string_slice(&values);
        match operator {
            Operator::In | Operator::NotIn => {
                if values.is_empty() {
                    errs.push(invalid_value_err(
                        "values",
                        &vals,
                        "for 'in', 'notin' operators, values set can't be empty",
                    ));
                }
            }
            Operator::Equals | Operator::DoubleEquals | Operator::NotEquals => {
                if values.len() != 1 {
                    errs.push(invalid_value_err(
                        "values",
                        &vals,
                        "exact-match compatibility requires one single value",
                    ));
                }
            }
            Operator::Exists | Operator::DoesNotExist => {
                if !values.is_empty() {
                    errs.push(invalid_value_err(
                        "values",
                        &vals,
                        "values set must be empty for exists and does not exist",
                    ));
                }
            }
            Operator::GreaterThan | Operator::LessThan => {
                if values.len() != 1 {
                    errs.push(invalid_value_err(
                        "values",
                        &vals,
                        "for 'Gt', 'Lt' operators, exactly one value is required",
                    ));
                }
                for (i, v) in values.iter().enumerate() {
                    if v.parse::<i64>().is_err() {
                        errs.push(invalid_value_err(
                            &format!("values[{i}]"),
                            &go_quote(v),
                            "for 'Gt', 'Lt' operators, the value must be an integer",
                        ));
                    }
                }
            }
        }
        for (i, v) in values.iter().enumerate() {
            let m = names::label_value(v);
            if !m.is_empty() {
                errs.push(invalid_value_err(
                    &format!("values[{i}]"),
                    &go_quote(v),
                    &m.join("; "),
                ));
            }
        }
        if !errs.is_empty() {
            let msg = if errs.len() == 1 {
                errs.remove(0)
            } else {
                format!("[{}]", errs.join(", "))
            };
            return Err(SelectorError::Invalid(msg));
        }
        let mut values = values;
        values.sort();
        values.dedup();
        Ok(Requirement {
            key: key.to_string(),
            operator,
            values,
        })
    }

    /// Whether this requirement matches a label set.
    pub fn matches(&self, labels: Option<&Map<String, Value>>) -> bool {
        let got: Option<String> = labels.and_then(|m| m.get(&self.key)).map(|v| match v {
            Value::String(s) => s.clone(),
            Value::Null => String::new(),
            other => other.to_string(),
        });
        let has = |v: &str| self.values.iter().any(|x| x == v);
        match self.operator {
            Operator::In | Operator::Equals | Operator::DoubleEquals => {
                got.as_deref().is_some_and(has)
            }
            Operator::NotIn | Operator::NotEquals => !got.as_deref().is_some_and(has),
            Operator::Exists => got.is_some(),
            Operator::DoesNotExist => got.is_none(),
            Operator::GreaterThan | Operator::LessThan => {
                let Some(lv) = got.and_then(|g| g.parse::<i64>().ok()) else {
                    return false;
                };
                let [rv] = self.values.as_slice() else {
                    return false;
                };
                let Ok(rv) = rv.parse::<i64>() else {
                    return false;
                };
                if self.operator == Operator::GreaterThan {
                    lv > rv
                } else {
                    lv < rv
                }
            }
        }
    }
}

impl fmt::Display for Requirement {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let v = self.values.join(",");
        match self.operator {
            Operator::Exists => write!(f, "{}", self.key),
            Operator::DoesNotExist => write!(f, "!{}", self.key),
            Operator::Equals => write!(f, "{}={v}", self.key),
            Operator::DoubleEquals => write!(f, "{}=={v}", self.key),
            Operator::NotEquals => write!(f, "{}!={v}", self.key),
            Operator::In => write!(f, "{} in ({v})", self.key),
            Operator::NotIn => write!(f, "{} notin ({v})", self.key),
            Operator::GreaterThan => write!(f, "{}>{v}", self.key),
            Operator::LessThan => write!(f, "{}<{v}", self.key),
        }
    }
}

// ---- lexer -------------------------------------------------------------

#[derive(Debug, Clone, PartialEq)]
enum Tok {
    Ident,
    In,
    NotIn,
    Not,
    NotEquals,
    Equals,
    DoubleEquals,
    Gt,
    Lt,
    Open,
    Close,
    Comma,
    End,
    Error,
}

fn is_special(c: char) -> bool {
    matches!(c, '=' | '!' | '(' | ')' | ',' | '>' | '<')
}

fn special_token(s: &str) -> Option<Tok> {
    Some(match s {
        ")" => Tok::Close,
        "," => Tok::Comma,
        "!" => Tok::Not,
        "!=" => Tok::NotEquals,
        "(" => Tok::Open,
        "=" => Tok::Equals,
        "==" => Tok::DoubleEquals,
        ">" => Tok::Gt,
        "<" => Tok::Lt,
        _ => return None,
    })
}

fn lex(input: &str) -> Vec<(Tok, String)> {
    let chars: Vec<char> = input.chars().collect();
    let mut out = Vec::new();
    let mut i = 0;
    loop {
        while i < chars.len() && matches!(chars[i], ' ' | '\t' | '\r' | '\n') {
            i += 1;
        }
        if i >= chars.len() || chars[i] == '\0' {
            out.push((Tok::End, String::new()));
            return out;
        }
        if is_special(chars[i]) {
            let mut buf = String::new();
            let mut last: Option<(Tok, String)> = None;
            while i < chars.len() && is_special(chars[i]) {
                buf.push(chars[i]);
                if let Some(t) = special_token(&buf) {
                    last = Some((t, buf.clone()));
                    i += 1;
                } else if last.is_some() {
                    break;
                } else {
                    i += 1;
                }
            }
            match last {
                Some(t) => out.push(t),
                None => {
                    out.push((Tok::Error, format!("error expected: keyword found '{buf}'")));
                    out.push((Tok::End, String::new()));
                    return out;
                }
            }
        } else {
            let start = i;
            while i < chars.len()
                && !is_special(chars[i])
                && !matches!(chars[i], ' ' | '\t' | '\r' | '\n' | '\0')
            {
                i += 1;
            }
            let word: String = chars[start..i].iter().collect();
            let tok = match word.as_str() {
                "in" => Tok::In,
                "notin" => Tok::NotIn,
                _ => Tok::Ident,
            };
            out.push((tok, word));
        }
    }
}

// ---- parser ------------------------------------------------------------

#[derive(Clone, Copy, PartialEq)]
enum Ctx {
    KeyAndOperator,
    Values,
}

struct Parser {
    toks: Vec<(Tok, String)>,
    pos: usize,
}

impl Parser {
    fn peek_at(&self, pos: usize, ctx: Ctx) -> (Tok, String) {
        let (t, l) = self
            .toks
            .get(pos)
            .cloned()
            .unwrap_or((Tok::End, String::new()));
        if ctx == Ctx::Values && matches!(t, Tok::In | Tok::NotIn) {
            (Tok::Ident, l)
        } else {
            (t, l)
        }
    }
    fn lookahead(&self, ctx: Ctx) -> (Tok, String) {
        self.peek_at(self.pos, ctx)
    }
    fn consume(&mut self, ctx: Ctx) -> (Tok, String) {
        let r = self.peek_at(self.pos, ctx);
        if self.pos < self.toks.len() {
            self.pos += 1;
        }
        r
    }

    fn parse(&mut self) -> Result<Vec<Requirement>, String> {
        let mut reqs = Vec::new();
        loop {
            let (tok, lit) = self.lookahead(Ctx::Values);
            match tok {
                Tok::Ident | Tok::Not => {
                    let r = self
                        .parse_requirement()
                        .map_err(|e| format!("unable to parse requirement: {e}"))?;
                    reqs.push(r);
                    let (t, l) = self.consume(Ctx::Values);
                    match t {
                        Tok::End => return Ok(reqs),
                        Tok::Comma => {
                            let (t2, l2) = self.lookahead(Ctx::Values);
                            if t2 != Tok::Ident && t2 != Tok::Not {
                                return Err(format!(
                                    "found '{l2}', expected: identifier after ','"
                                ));
                            }
                        }
                        _ => return Err(format!("found '{l}', expected: ',' or 'end of string'")),
                    }
                }
                Tok::End => return Ok(reqs),
                _ => {
                    return Err(format!(
                        "found '{lit}', expected: !, identifier, or 'end of string'"
                    ))
                }
            }
        }
    }

    fn parse_requirement(&mut self) -> Result<Requirement, String> {
        let (key, op) = self.parse_key_and_infer_operator()?;
        if let Some(op) = op {
            return Requirement::new(&key, op, Vec::new()).map_err(|e| e.to_string());
        }
        let op = self.parse_operator()?;
        let values = match op {
            Operator::In | Operator::NotIn => self.parse_values()?,
            _ => self.parse_exact_value()?,
        };
        Requirement::new(&key, op, values).map_err(|e| e.to_string())
    }

    fn parse_key_and_infer_operator(&mut self) -> Result<(String, Option<Operator>), String> {
        let mut op = None;
        let (mut tok, mut lit) = self.consume(Ctx::Values);
        if tok == Tok::Not {
            op = Some(Operator::DoesNotExist);
            (tok, lit) = self.consume(Ctx::Values);
        }
        if tok != Tok::Ident {
            return Err(format!("found '{lit}', expected: identifier"));
        }
        validate_label_key(&lit, "<nil>")?;
        let (t, _) = self.lookahead(Ctx::Values);
        if (t == Tok::End || t == Tok::Comma) && op.is_none() {
            op = Some(Operator::Exists);
        }
        Ok((lit, op))
    }

    fn parse_operator(&mut self) -> Result<Operator, String> {
        let (tok, lit) = self.consume(Ctx::KeyAndOperator);
        Ok(match tok {
            Tok::In => Operator::In,
            Tok::Equals => Operator::Equals,
            Tok::DoubleEquals => Operator::DoubleEquals,
            Tok::Gt => Operator::GreaterThan,
            Tok::Lt => Operator::LessThan,
            Tok::NotIn => Operator::NotIn,
            Tok::NotEquals => Operator::NotEquals,
            _ => {
                return Err(format!(
                    "found '{lit}', expected: in, notin, =, ==, !=, gt, lt"
                ))
            }
        })
    }

    fn parse_values(&mut self) -> Result<Vec<String>, String> {
        let (tok, lit) = self.consume(Ctx::Values);
        if tok != Tok::Open {
            return Err(format!("found '{lit}' expected: '('"));
        }
        let (tok, lit) = self.lookahead(Ctx::Values);
        match tok {
            Tok::Ident | Tok::Comma => {
                let s = self.parse_identifiers_list()?;
                let (t, l) = self.consume(Ctx::Values);
                if t != Tok::Close {
                    return Err(format!("found '{l}', expected: ')'"));
                }
                Ok(s)
            }
            Tok::Close => {
                self.consume(Ctx::Values);
                Ok(vec![String::new()])
            }
            _ => Err(format!("found '{lit}', expected: ',', ')' or identifier")),
        }
    }

    fn parse_identifiers_list(&mut self) -> Result<Vec<String>, String> {
        let mut s: Vec<String> = Vec::new();
        loop {
            let (tok, lit) = self.consume(Ctx::Values);
            match tok {
                Tok::Ident => {
                    s.push(lit);
                    let (t2, l2) = self.lookahead(Ctx::Values);
                    match t2 {
                        Tok::Comma => continue,
                        Tok::Close => return Ok(s),
                        _ => return Err(format!("found '{l2}', expected: ',' or ')'")),
                    }
                }
                Tok::Comma => {
                    if s.is_empty() {
                        s.push(String::new());
                    }
                    let (t2, _) = self.lookahead(Ctx::Values);
                    if t2 == Tok::Close {
                        s.push(String::new());
                        return Ok(s);
                    }
                    if t2 == Tok::Comma {
                        self.consume(Ctx::Values);
                        s.push(String::new());
                    }
                }
                _ => return Err(format!("found '{lit}', expected: ',', or identifier")),
            }
        }
    }

    fn parse_exact_value(&mut self) -> Result<Vec<String>, String> {
        let (tok, _) = self.lookahead(Ctx::Values);
        if tok == Tok::End || tok == Tok::Comma {
            return Ok(vec![String::new()]);
        }
        let (tok, lit) = self.consume(Ctx::Values);
        if tok == Tok::Ident {
            Ok(vec![lit])
        } else {
            Err(format!("found '{lit}', expected: identifier"))
        }
    }
}

impl LabelSelector {
    /// Parses the string syntax (`a=b,c in (x,y),!d`).
    pub fn parse(s: &str) -> Result<Self, SelectorError> {
        let mut p = Parser {
            toks: lex(s),
            pos: 0,
        };
        let mut requirements = p.parse().map_err(SelectorError::Invalid)?;
        requirements.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(LabelSelector {
            requirements,
            nothing: false,
        })
    }

    /// A selector matching everything.
    pub fn everything() -> Self {
        Self::default()
    }

    /// A selector matching nothing (what an absent `metav1.LabelSelector` means).
    pub fn nothing() -> Self {
        LabelSelector {
            requirements: Vec::new(),
            nothing: true,
        }
    }

    /// `metav1.LabelSelectorAsSelector`: `null` → matches nothing, `{}` →
    /// matches everything.
    pub fn from_k8s(v: &Value) -> Result<Self, SelectorError> {
        let obj = match v {
            Value::Null => return Ok(Self::nothing()),
            Value::Object(o) => o,
            _ => {
                return Err(SelectorError::Invalid(
                    "invalid label selector: expected an object".into(),
                ))
            }
        };
        let mut reqs = Vec::new();
        match obj.get("matchLabels") {
            None | Some(Value::Null) => {}
            Some(Value::Object(ml)) => {
                for (k, v) in ml {
                    let Some(v) = v.as_str() else {
                        return Err(SelectorError::Invalid(format!(
                            "matchLabels[{k}]: value must be a string"
                        )));
                    };
                    reqs.push(Requirement::new(k, Operator::Equals, vec![v.to_string()])?);
                }
            }
            Some(_) => {
                return Err(SelectorError::Invalid(
                    "matchLabels: must be an object".into(),
                ))
            }
        }
        match obj.get("matchExpressions") {
            None | Some(Value::Null) => {}
            Some(Value::Array(exprs)) => {
                for e in exprs {
                    let key = e.get("key").and_then(Value::as_str).unwrap_or("");
                    let op_s = e.get("operator").and_then(Value::as_str).unwrap_or("");
                    let op = match op_s {
                        "In" => Operator::In,
                        "NotIn" => Operator::NotIn,
                        "Exists" => Operator::Exists,
                        "DoesNotExist" => Operator::DoesNotExist,
                        _ => {
                            return Err(SelectorError::Invalid(format!(
                                "{} is not a valid label selector operator",
                                go_quote(op_s)
                            )))
                        }
                    };
                    let values: Vec<String> = match e.get("values") {
                        Some(Value::Array(a)) => a
                            .iter()
                            .map(|x| x.as_str().map(str::to_string))
                            .collect::<Option<Vec<_>>>()
                            .ok_or_else(|| {
                                SelectorError::Invalid("values: must be strings".into())
                            })?,
                        _ => Vec::new(),
                    };
                    reqs.push(Requirement::new(key, op, values)?);
                }
            }
            Some(_) => {
                return Err(SelectorError::Invalid(
                    "matchExpressions: must be a list".into(),
                ))
            }
        }
        reqs.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(LabelSelector {
            requirements: reqs,
            nothing: false,
        })
    }

    /// True when the selector matches everything.
    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty() && !self.nothing
    }

    /// True for the match-nothing selector.
    pub fn is_nothing(&self) -> bool {
        self.nothing
    }

    pub fn requirements(&self) -> &[Requirement] {
        &self.requirements
    }

    /// Matches a `metadata.labels` map (absent = no labels).
    pub fn matches(&self, labels: Option<&Map<String, Value>>) -> bool {
        !self.nothing && self.requirements.iter().all(|r| r.matches(labels))
    }

    /// Matches an object's `metadata.labels`.
    pub fn matches_object(&self, obj: &Value) -> bool {
        self.matches(
            obj.get("metadata")
                .and_then(|m| m.get("labels"))
                .and_then(Value::as_object),
        )
    }
}

impl fmt::Display for LabelSelector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self.requirements.iter().map(|r| r.to_string()).collect();
        f.write_str(&parts.join(","))
    }
}
