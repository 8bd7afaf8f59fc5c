//! Values of the pipeline language's expressions.
//!
//! Close to Terraform's type system, simplified: lists and tuples are one kind, maps and objects
//! are one kind (keys sorted, as Terraform iterates them), and sets are kept apart because
//! `for_each` accepts a set but rejects a list.

use std::collections::BTreeMap;
use std::fmt::Write as _;

/// A value of an HCL expression.
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    /// `null`.
    Null,
    /// `true` / `false`.
    Bool(bool),
    /// A number (Terraform numbers are arbitrary precision; ours are 64-bit floats).
    Number(f64),
    /// A string.
    String(String),
    /// A list or tuple.
    List(Vec<Value>),
    /// A set: unique elements in a canonical order (see [`Value::set`]).
    Set(Vec<Value>),
    /// A map or object, keys sorted.
    Object(BTreeMap<String, Value>),
}

impl Value {
    /// Builds a set: duplicates removed, elements sorted (strings lexically, numbers
    /// numerically, everything else by its JSON text).
    pub fn set(elements: Vec<Value>) -> Value {
        let mut unique: Vec<Value> = Vec::with_capacity(elements.len());
        for element in elements {
            if !unique.contains(&element) {
                unique.push(element);
            }
        }
        unique.sort_by(|a, b| match (a, b) {
            (Value::String(a), Value::String(b)) => a.cmp(b),
            (Value::Number(a), Value::Number(b)) => a.total_cmp(b),
            _ => a.to_json().to_string().cmp(&b.to_json().to_string()),
        });
        Value::Set(unique)
    }

    /// A string value.
    pub fn string(text: impl Into<String>) -> Value {
        Value::String(text.into())
    }

    /// The type name used in error messages (`string`, `number`, `bool`, `list`, `set`,
    /// `object`, `null`).
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Null => "null",
            Value::Bool(_) => "bool",
            Value::Number(_) => "number",
            Value::String(_) => "string",
            Value::List(_) => "list",
            Value::Set(_) => "set",
            Value::Object(_) => "object",
        }
    }

    /// The elements of a list or set.
    pub fn as_sequence(&self) -> Option<&[Value]> {
        match self {
            Value::List(items) | Value::Set(items) => Some(items),
            _ => None,
        }
    }

    /// The text of a string.
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(text) => Some(text),
            _ => None,
        }
    }

    /// The string form of a primitive, as used in templates and string parameters: strings as
    /// they are, numbers in their shortest form (`42`, `1.5`), bools as `true`/`false`.
    /// `None` for null, collections and objects.
    pub fn to_template_string(&self) -> Option<String> {
        match self {
            Value::String(text) => Some(text.clone()),
            Value::Number(number) => Some(format_number(*number)),
            Value::Bool(flag) => Some(flag.to_string()),
            _ => None,
        }
    }

    /// Converts to JSON (sets become arrays).
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            Value::Null => serde_json::Value::Null,
            Value::Bool(flag) => serde_json::Value::Bool(*flag),
            Value::Number(number) => number_to_json(*number),
            Value::String(text) => serde_json::Value::String(text.clone()),
            Value::List(items) | Value::Set(items) => {
                serde_json::Value::Array(items.iter().map(Value::to_json).collect())
            }
            Value::Object(map) => serde_json::Value::Object(
                map.iter().map(|(k, v)| (k.clone(), v.to_json())).collect(),
            ),
        }
    }

    /// Converts from JSON (arrays become lists, objects objects).
    pub fn from_json(json: &serde_json::Value) -> Value {
        match json {
            serde_json::Value::Null => Value::Null,
            serde_json::Value::Bool(flag) => Value::Bool(*flag),
            serde_json::Value::Number(number) => Value::Number(number.as_f64().unwrap_or(f64::NAN)),
            serde_json::Value::String(text) => Value::String(text.clone()),
            serde_json::Value::Array(items) => {
                Value::List(items.iter().map(Value::from_json).collect())
            }
            serde_json::Value::Object(map) => Value::Object(
                map.iter()
                    .map(|(k, v)| (k.clone(), Value::from_json(v)))
                    .collect(),
            ),
        }
    }

    /// A short rendering for error messages: strings quoted, collections abbreviated.
    pub fn describe(&self) -> String {
        let json = self.to_json().to_string();
        if json.chars().count() > 60 {
            let mut short: String = json.chars().take(57).collect();
            let _ = write!(short, "...");
            short
        } else {
            json
        }
    }
}

/// Formats a number the way templates show it: integers without a fraction, others in their
/// shortest exact form.
pub fn format_number(number: f64) -> String {
    if number.fract() == 0.0 && number.abs() < 1e15 {
        format!("{}", number as i64)
    } else {
        format!("{number}")
    }
}

fn number_to_json(number: f64) -> serde_json::Value {
    if number.fract() == 0.0 && number.abs() < 9.0e15 {
        serde_json::Value::from(number as i64)
    } else {
        serde_json::Number::from_f64(number)
            .map(serde_json::Value::Number)
            .unwrap_or(serde_json::Value::Null)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sets_are_unique_and_sorted() {
        let set = Value::set(vec![
            Value::string("b"),
            Value::string("a"),
            Value::string("b"),
        ]);
        assert_eq!(
            set,
            Value::Set(vec![Value::string("a"), Value::string("b")])
        );
        let numbers = Value::set(vec![Value::Number(10.0), Value::Number(9.0)]);
        assert_eq!(
            numbers,
            Value::Set(vec![Value::Number(9.0), Value::Number(10.0)])
        );
    }

    #[test]
    fn template_strings() {
        assert_eq!(Value::Number(42.0).to_template_string().unwrap(), "42");
        assert_eq!(Value::Number(1.5).to_template_string().unwrap(), "1.5");
        assert_eq!(Value::Bool(true).to_template_string().unwrap(), "true");
        assert_eq!(Value::Null.to_template_string(), None);
        assert_eq!(Value::List(vec![]).to_template_string(), None);
    }

    #[test]
    fn json_round_trip() {
        let json = serde_json::json!({"a": [1, 2.5, "x", true, null], "b": {"c": "d"}});
        assert_eq!(Value::from_json(&json).to_json(), json);
    }
}
