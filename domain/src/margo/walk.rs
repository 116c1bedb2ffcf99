//! A small walker over untyped documents that records problems with their field paths.

use crate::Problems;
use serde_json::{Map, Value};

pub(crate) fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

pub(crate) fn index(path: &str, i: usize) -> String {
    format!("{path}[{i}]")
}

pub(crate) fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "a mapping",
    }
}

/// Collects problems while reading a tree.
pub(crate) struct Walk<'p> {
    pub problems: &'p mut Problems,
}

impl<'p> Walk<'p> {
    pub fn new(problems: &'p mut Problems) -> Self {
        Self { problems }
    }

    pub fn problem(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.problems.push(path, message);
    }

    pub fn object<'v>(&mut self, v: &'v Value, path: &str) -> Option<&'v Map<String, Value>> {
        match v {
            Value::Object(m) => Some(m),
            other => {
                self.problem(
                    path,
                    format!("expected a mapping, found {}", type_name(other)),
                );
                None
            }
        }
    }

    pub fn required<'v>(
        &mut self,
        m: &'v Map<String, Value>,
        key: &str,
        path: &str,
    ) -> Option<&'v Value> {
        match m.get(key) {
            Some(Value::Null) | None => {
                self.problem(join(path, key), "required field is missing");
                None
            }
            Some(v) => Some(v),
        }
    }

    /// A required string; numbers are accepted and read as text (YAML writes `1.0` unquoted).
    pub fn required_str(
        &mut self,
        m: &Map<String, Value>,
        key: &str,
        path: &str,
    ) -> Option<String> {
        let v = self.required(m, key, path)?;
        self.as_text(v, &join(path, key))
    }

    pub fn optional_str(
        &mut self,
        m: &Map<String, Value>,
        key: &str,
        path: &str,
    ) -> Option<String> {
        match m.get(key) {
            None | Some(Value::Null) => None,
            Some(v) => self.as_text(v, &join(path, key)),
        }
    }

    pub fn as_text(&mut self, v: &Value, path: &str) -> Option<String> {
        match v {
            Value::String(s) => Some(s.clone()),
            Value::Number(n) => Some(n.to_string()),
            other => {
                self.problem(
                    path,
                    format!("expected a string, found {}", type_name(other)),
                );
                None
            }
        }
    }

    pub fn list<'v>(&mut self, v: &'v Value, path: &str) -> Option<&'v Vec<Value>> {
        match v {
            Value::Array(a) => Some(a),
            other => {
                self.problem(path, format!("expected a list, found {}", type_name(other)));
                None
            }
        }
    }

    /// Reports every key that is neither allowed nor a Margo extension.
    pub fn no_unknown_fields(&mut self, m: &Map<String, Value>, allowed: &[&str], path: &str) {
        for key in m.keys() {
            if !allowed.contains(&key.as_str()) && !super::is_extension_key(key) {
                self.problem(
                    join(path, key),
                    format!("unknown field (expected one of: {})", allowed.join(", ")),
                );
            }
        }
    }

    /// A boolean; the spec's own examples write `wait: "true"`, so the strings are accepted too.
    pub fn lenient_bool(&mut self, v: &Value, path: &str) -> Option<bool> {
        match v {
            Value::Bool(b) => Some(*b),
            Value::String(s) if s == "true" => Some(true),
            Value::String(s) if s == "false" => Some(false),
            other => {
                self.problem(
                    path,
                    format!("expected true or false, found {}", type_name(other)),
                );
                None
            }
        }
    }
}
