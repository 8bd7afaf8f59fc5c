//! Variable values given to a pipeline: a JSON vars file, then `--var key=value` overrides.

use crate::diagnostic::quoted;
use std::collections::BTreeMap;

use pikoci_core::ValueType;

/// One given value.
#[derive(Debug, Clone, PartialEq)]
pub enum VarValue {
    /// From a JSON vars file: its JSON type must match the variable's type.
    Json(serde_json::Value),
    /// From `--var key=value`: text converted to the variable's type (`3` for a number,
    /// `true`/`false` for a bool).
    Text(String),
}

impl VarValue {
    /// The value as JSON of the declared type, or why it does not fit.
    pub(crate) fn to_typed(
        &self,
        name: &str,
        value_type: ValueType,
    ) -> Result<serde_json::Value, String> {
        let mismatch = |found: &str| {
            format!(
                "variable {} is declared as {value_type} but was given {found}",
                quoted(name)
            )
        };
        match (self, value_type) {
            (VarValue::Json(json @ serde_json::Value::String(_)), ValueType::String)
            | (VarValue::Json(json @ serde_json::Value::Number(_)), ValueType::Number)
            | (VarValue::Json(json @ serde_json::Value::Bool(_)), ValueType::Bool) => {
                Ok(json.clone())
            }
            (VarValue::Json(json), _) => Err(mismatch(&format!("{} {json}", json_type(json)))),
            (VarValue::Text(text), ValueType::String) => {
                Ok(serde_json::Value::String(text.clone()))
            }
            (VarValue::Text(text), ValueType::Number) => text
                .trim()
                .parse::<f64>()
                .ok()
                .and_then(serde_json::Number::from_f64)
                .map(|n| match n.as_f64() {
                    Some(f) if f.fract() == 0.0 && f.abs() < 9e15 => {
                        serde_json::Value::from(f as i64)
                    }
                    _ => serde_json::Value::Number(n),
                })
                .ok_or_else(|| mismatch(&format!("{}, which is not a number", quoted(text)))),
            (VarValue::Text(text), ValueType::Bool) => match text.trim() {
                "true" => Ok(serde_json::Value::Bool(true)),
                "false" => Ok(serde_json::Value::Bool(false)),
                _ => Err(mismatch(&format!("{} (write true or false)", quoted(text)))),
            },
        }
    }
}

fn json_type(json: &serde_json::Value) -> &'static str {
    match json {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "bool",
        serde_json::Value::Number(_) => "number",
        serde_json::Value::String(_) => "string",
        serde_json::Value::Array(_) => "array",
        serde_json::Value::Object(_) => "object",
    }
}

/// Variable values by name. Later sources win: load the vars file first, then apply overrides.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Vars {
    values: BTreeMap<String, VarValue>,
}

impl Vars {
    /// No values.
    pub fn new() -> Vars {
        Vars::default()
    }

    /// Adds every entry of a JSON vars file (a JSON object).
    pub fn add_json(&mut self, text: &str) -> Result<(), String> {
        let json: serde_json::Value = serde_json::from_str(text)
            .map_err(|err| format!("the vars file is not valid JSON: {err}"))?;
        let serde_json::Value::Object(map) = json else {
            return Err(format!(
                "the vars file must hold a JSON object such as {{\"name\": \"value\"}}, found {}",
                json_type(&json)
            ));
        };
        for (name, value) in map {
            self.values.insert(name, VarValue::Json(value));
        }
        Ok(())
    }

    /// Adds one `key=value` override.
    pub fn add_override(&mut self, assignment: &str) -> Result<(), String> {
        let Some((name, value)) = assignment.split_once('=') else {
            return Err(format!(
                "invalid --var \"{assignment}\": expected NAME=VALUE, e.g. --var image=alpine"
            ));
        };
        let name = name.trim();
        if name.is_empty() {
            return Err(format!(
                "invalid --var \"{assignment}\": the name before '=' is empty"
            ));
        }
        self.values
            .insert(name.to_owned(), VarValue::Text(value.to_owned()));
        Ok(())
    }

    /// Sets one value.
    pub fn insert(&mut self, name: impl Into<String>, value: VarValue) {
        self.values.insert(name.into(), value);
    }

    /// The names that have a value.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        self.values.keys().map(String::as_str)
    }

    /// The value given for `name`.
    pub fn get(&self, name: &str) -> Option<&VarValue> {
        self.values.get(name)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overrides_win_over_the_file() {
        let mut vars = Vars::new();
        vars.add_json(r#"{"a": "file", "n": 3}"#).unwrap();
        vars.add_override("a=cli").unwrap();
        assert_eq!(vars.get("a"), Some(&VarValue::Text("cli".into())));
        assert_eq!(vars.get("n"), Some(&VarValue::Json(serde_json::json!(3))));
    }

    #[test]
    fn bad_input_is_explained() {
        let mut vars = Vars::new();
        assert!(
            vars.add_json("[1]")
                .unwrap_err()
                .contains("must hold a JSON object")
        );
        assert!(vars.add_json("{").unwrap_err().contains("not valid JSON"));
        assert!(
            vars.add_override("novalue")
                .unwrap_err()
                .contains("expected NAME=VALUE")
        );
        assert!(
            vars.add_override("=x")
                .unwrap_err()
                .contains("name before '=' is empty")
        );
        vars.add_override("empty=").unwrap();
        assert_eq!(vars.get("empty"), Some(&VarValue::Text(String::new())));
    }

    #[test]
    fn typing() {
        let text = |t: &str| VarValue::Text(t.into());
        assert_eq!(
            text("3").to_typed("n", ValueType::Number).unwrap(),
            serde_json::json!(3)
        );
        assert_eq!(
            text("1.5").to_typed("n", ValueType::Number).unwrap(),
            serde_json::json!(1.5)
        );
        assert!(
            text("x")
                .to_typed("n", ValueType::Number)
                .unwrap_err()
                .contains("not a number")
        );
        assert_eq!(
            text("true").to_typed("b", ValueType::Bool).unwrap(),
            serde_json::json!(true)
        );
        assert!(text("yes").to_typed("b", ValueType::Bool).is_err());
        let json = VarValue::Json(serde_json::json!("3"));
        let err = json.to_typed("n", ValueType::Number).unwrap_err();
        assert_eq!(
            err,
            "variable \"n\" is declared as number but was given string \"3\""
        );
    }
}
