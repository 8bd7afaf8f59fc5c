//! Conversion functions: `tobool`, `tolist`, `tomap`, `tonumber`, `toset`, `tostring`. Null
//! stays null, as in Terraform.

use std::collections::BTreeMap;

use super::{arg, parse_number, unify};
use crate::diagnostic::quoted;
use crate::value::Value;

/// The message for a value that cannot be converted.
fn cannot_convert(value: &Value, target: &str) -> String {
    format!(
        "invalid value for \"v\": cannot convert {} to {target}",
        value.type_name()
    )
}

/// `tobool(v)`: a bool, or the string `"true"` / `"false"`.
pub(crate) fn tobool(args: Vec<Value>) -> Result<Value, String> {
    match arg(&args, 0) {
        value @ (Value::Null | Value::Bool(_)) => Ok(value.clone()),
        Value::String(text) if text == "true" => Ok(Value::Bool(true)),
        Value::String(text) if text == "false" => Ok(Value::Bool(false)),
        Value::String(text) => Err(format!(
            "invalid value for \"v\": cannot convert {} to bool; only the strings \"true\" or \
             \"false\" are allowed",
            quoted(text)
        )),
        other => Err(cannot_convert(other, "bool")),
    }
}

/// `tonumber(v)`: a number, or a string holding a decimal number.
pub(crate) fn tonumber(args: Vec<Value>) -> Result<Value, String> {
    match arg(&args, 0) {
        value @ (Value::Null | Value::Number(_)) => Ok(value.clone()),
        Value::String(text) => parse_number(text).map(Value::Number).ok_or_else(|| {
            format!(
                "invalid value for \"v\": cannot convert {} to number; given string must be \
                 a decimal representation of a number",
                quoted(text)
            )
        }),
        other => Err(cannot_convert(other, "number")),
    }
}

/// `tostring(v)`: a string; numbers and bools convert to their string form.
pub(crate) fn tostring(args: Vec<Value>) -> Result<Value, String> {
    match arg(&args, 0) {
        Value::Null => Ok(Value::Null),
        value => value
            .to_template_string()
            .map(Value::String)
            .ok_or_else(|| cannot_convert(value, "string")),
    }
}

/// `tolist(v)`: a list from a list or set, elements brought to one type.
pub(crate) fn tolist(args: Vec<Value>) -> Result<Value, String> {
    match arg(&args, 0) {
        Value::Null => Ok(Value::Null),
        Value::List(items) | Value::Set(items) => Ok(Value::List(unify_elements(items.clone())?)),
        other => Err(cannot_convert(other, "list")),
    }
}

/// `toset(v)`: a set from a list or set, elements brought to one type (`["a", 1]` becomes
/// `["1", "a"]`).
pub(crate) fn toset(args: Vec<Value>) -> Result<Value, String> {
    match arg(&args, 0) {
        Value::Null => Ok(Value::Null),
        Value::List(items) | Value::Set(items) => Ok(Value::set(unify_elements(items.clone())?)),
        other => Err(cannot_convert(other, "set")),
    }
}

/// `tomap(v)`: a map from an object, values brought to one type.
pub(crate) fn tomap(args: Vec<Value>) -> Result<Value, String> {
    match arg(&args, 0) {
        Value::Null => Ok(Value::Null),
        Value::Object(map) => {
            let keys: Vec<String> = map.keys().cloned().collect();
            let values = unify_elements(map.values().cloned().collect())?;
            Ok(Value::Object(
                keys.into_iter().zip(values).collect::<BTreeMap<_, _>>(),
            ))
        }
        other => Err(cannot_convert(other, "map")),
    }
}

/// Unifies collection elements, with the conversion functions' wording for a failure.
fn unify_elements(items: Vec<Value>) -> Result<Vec<Value>, String> {
    unify(items).map_err(|problem| format!("invalid value for \"v\": {problem}"))
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{args, check_err, check_ok, set, v};
    use serde_json::json;

    #[test]
    fn tobool() {
        check_ok(
            "tobool",
            vec![
                (args![true], v!(true)),
                (args!["false"], v!(false)),
                (args![null], v!(null)),
            ],
        );
        check_err(
            "tobool",
            vec![
                (
                    args!["no"],
                    "cannot convert \"no\" to bool; only the strings \"true\" or \"false\" are allowed",
                ),
                (args![1], "cannot convert number to bool"),
                (args![[]], "cannot convert list to bool"),
            ],
        );
    }

    #[test]
    fn tonumber() {
        check_ok(
            "tonumber",
            vec![
                (args![1], v!(1)),
                (args!["1"], v!(1)),
                (args!["-2.5e1"], v!(-25)),
                (args![null], v!(null)),
            ],
        );
        check_err(
            "tonumber",
            vec![
                (
                    args!["no"],
                    "cannot convert \"no\" to number; given string must be a decimal representation of a number",
                ),
                (args![true], "cannot convert bool to number"),
            ],
        );
    }

    #[test]
    fn tostring() {
        check_ok(
            "tostring",
            vec![
                (args!["hello"], v!("hello")),
                (args![1], v!("1")),
                (args![1.5], v!("1.5")),
                (args![true], v!("true")),
                (args![null], v!(null)),
            ],
        );
        check_err(
            "tostring",
            vec![
                (args![[]], "cannot convert list to string"),
                (args![{}], "cannot convert object to string"),
            ],
        );
    }

    #[test]
    fn tolist() {
        check_ok(
            "tolist",
            vec![
                (args![["a", "b", "c"]], v!(["a", "b", "c"])),
                (args![["a", "b", 3]], v!(["a", "b", "3"])),
                (vec![set(json!(["b", "a"]))], v!(["a", "b"])),
                (args![[]], v!([])),
                (args![null], v!(null)),
            ],
        );
        check_err(
            "tolist",
            vec![
                (args!["a"], "cannot convert string to list"),
                (args![[1, true]], "all elements must have the same type"),
            ],
        );
    }

    #[test]
    fn toset() {
        check_ok(
            "toset",
            vec![
                (args![["a", "b", "c"]], set(json!(["a", "b", "c"]))),
                (args![["c", "b", "b"]], set(json!(["b", "c"]))),
                (args![["a", "b", 3]], set(json!(["3", "a", "b"]))),
                (args![[10, 9]], set(json!([9, 10]))),
                (vec![set(json!(["x"]))], set(json!(["x"]))),
                (args![null], v!(null)),
            ],
        );
        check_err(
            "toset",
            vec![
                (args![{"a": 1}], "cannot convert object to set"),
                (args![[[1], "a"]], "same type"),
            ],
        );
    }

    #[test]
    fn tomap() {
        check_ok(
            "tomap",
            vec![
                (args![{"a": 1, "b": 2}], v!({"a": 1, "b": 2})),
                (
                    args![{"a": "foo", "b": true}],
                    v!({"a": "foo", "b": "true"}),
                ),
                (args![{}], v!({})),
                (args![null], v!(null)),
            ],
        );
        check_err(
            "tomap",
            vec![
                (args![["a"]], "cannot convert list to map"),
                (args![{"a": 1, "b": [1]}], "same type"),
            ],
        );
    }
}
