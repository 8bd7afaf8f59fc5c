//! Map and object functions: `keys`, `lookup`, `merge`, `transpose`, `values`, `zipmap`.

use std::collections::BTreeMap;

use super::{arg, expect_list, expect_object, expect_sequence, expect_string, invalid};
use crate::diagnostic::quoted;
use crate::value::Value;

/// `keys(map)`: the keys in lexical order.
pub(crate) fn keys(args: Vec<Value>) -> Result<Value, String> {
    let map = expect_object(&args, 0, "inputMap")?;
    Ok(Value::List(
        map.keys().map(|key| Value::String(key.clone())).collect(),
    ))
}

/// `values(map)`: the values in the lexical order of their keys.
pub(crate) fn values(args: Vec<Value>) -> Result<Value, String> {
    let map = expect_object(&args, 0, "mapping")?;
    Ok(Value::List(map.values().cloned().collect()))
}

/// `lookup(map, key[, default])`: the value at `key`, or the default when it is missing.
pub(crate) fn lookup(args: Vec<Value>) -> Result<Value, String> {
    let map = expect_object(&args, 0, "inputMap")?;
    let key = expect_string(&args, 1, "key")?;
    match map.get(&key) {
        Some(value) => Ok(value.clone()),
        None if args.len() > 2 => Ok(arg(&args, 2).clone()),
        None => Err(format!("lookup failed to find key {}", quoted(&key))),
    }
}

/// `merge(maps...)`: one map with the entries of all; later arguments win, nulls are skipped.
pub(crate) fn merge(args: Vec<Value>) -> Result<Value, String> {
    let mut merged = BTreeMap::new();
    for (index, value) in args.into_iter().enumerate() {
        match value {
            Value::Null => {}
            Value::Object(map) => merged.extend(map),
            other => {
                return Err(invalid(
                    "maps",
                    format!(
                        "arguments must be maps or objects; argument {} is {}",
                        index + 1,
                        other.type_name()
                    ),
                ));
            }
        }
    }
    Ok(Value::Object(merged))
}

/// `transpose(map)`: swaps keys and values of a map of lists of strings
/// (`{a = ["1", "2"]}` → `{"1" = ["a"], "2" = ["a"]}`).
pub(crate) fn transpose(args: Vec<Value>) -> Result<Value, String> {
    let map = expect_object(&args, 0, "values")?;
    let mut transposed: BTreeMap<String, Vec<Value>> = BTreeMap::new();
    for (key, value) in map {
        let items = match value {
            Value::List(items) | Value::Set(items) => items,
            _ => return Err(invalid("values", "input must be map of lists of strings")),
        };
        for item in items {
            let text = match item {
                Value::Null => None,
                other => other.to_template_string(),
            }
            .ok_or_else(|| invalid("values", "input must be map of lists of strings"))?;
            transposed
                .entry(text)
                .or_default()
                .push(Value::String(key.clone()));
        }
    }
    Ok(Value::Object(
        transposed
            .into_iter()
            .map(|(key, keys)| (key, Value::List(keys)))
            .collect(),
    ))
}

/// `zipmap(keys, values)`: a map from a list of keys and a list of values of the same length.
pub(crate) fn zipmap(args: Vec<Value>) -> Result<Value, String> {
    let keys = expect_sequence(&args, 0, "keys")?;
    let values = expect_list(&args, 1, "values")?;
    if keys.len() != values.len() {
        return Err(format!(
            "number of keys ({}) does not match number of values ({})",
            keys.len(),
            values.len()
        ));
    }
    let mut map = BTreeMap::new();
    for (index, (key, value)) in keys.iter().zip(values).enumerate() {
        let key = match key {
            Value::Null => {
                return Err(invalid(
                    "keys",
                    format!("keys list has null value at index {index}"),
                ));
            }
            other => other.to_template_string().ok_or_else(|| {
                invalid(
                    "keys",
                    format!(
                        "element {index} must be a string, got {}",
                        other.type_name()
                    ),
                )
            })?,
        };
        map.insert(key, value.clone());
    }
    Ok(Value::Object(map))
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{args, check_err, check_ok, set, v};
    use serde_json::json;

    #[test]
    fn keys_values() {
        check_ok(
            "keys",
            vec![
                (args![{"a": 1, "c": 2, "d": 3}], v!(["a", "c", "d"])),
                (args![{}], v!([])),
            ],
        );
        check_ok(
            "values",
            vec![
                (args![{"a": 3, "c": 2, "d": 1}], v!([3, 2, 1])),
                (args![{}], v!([])),
            ],
        );
        check_err(
            "keys",
            vec![
                (args![["a"]], "map or object required, got list"),
                (args![null], "must not be null"),
            ],
        );
        check_err(
            "values",
            vec![(args!["a"], "map or object required, got string")],
        );
    }

    #[test]
    fn lookup() {
        check_ok(
            "lookup",
            vec![
                (args![{"a": "ay", "b": "bee"}, "a", "what?"], v!("ay")),
                (args![{"a": "ay", "b": "bee"}, "c", "what?"], v!("what?")),
                (args![{"a": "ay"}, "a"], v!("ay")),
                (args![{"1": [1]}, 1], v!([1])),
                (args![{}, "x", null], v!(null)),
            ],
        );
        check_err(
            "lookup",
            vec![
                (args![{"a": "ay"}, "c"], "lookup failed to find key \"c\""),
                (
                    args![["a"], "a"],
                    "\"inputMap\": map or object required, got list",
                ),
            ],
        );
    }

    #[test]
    fn merge() {
        check_ok(
            "merge",
            vec![
                (
                    args![{"a": "b", "c": "d"}, {"e": "f", "c": "z"}],
                    v!({"a": "b", "c": "z", "e": "f"}),
                ),
                (
                    args![{"a": "b"}, {"a": [1, 2], "c": "z"}, {"d": 3}],
                    v!({"a": [1, 2], "c": "z", "d": 3}),
                ),
                (args![], v!({})),
                (args![null, {"a": 1}, null], v!({"a": 1})),
            ],
        );
        check_err(
            "merge",
            vec![(
                args![{"a": 1}, ["b"]],
                "arguments must be maps or objects; argument 2 is list",
            )],
        );
    }

    #[test]
    fn transpose() {
        check_ok(
            "transpose",
            vec![
                (
                    args![{"a": ["1", "2"], "b": ["2", "3"]}],
                    v!({"1": ["a"], "2": ["a", "b"], "3": ["b"]}),
                ),
                (args![{"a": [], "b": [1]}], v!({"1": ["b"]})),
                (args![{}], v!({})),
            ],
        );
        check_err(
            "transpose",
            vec![
                (args![{"a": "1"}], "input must be map of lists of strings"),
                (
                    args![{"a": [null]}],
                    "input must be map of lists of strings",
                ),
                (
                    args![{"a": [["x"]]}],
                    "input must be map of lists of strings",
                ),
            ],
        );
    }

    #[test]
    fn zipmap() {
        check_ok(
            "zipmap",
            vec![
                (args![["a", "b"], [1, 2]], v!({"a": 1, "b": 2})),
                (
                    args![["pineapple", "apple"], [["p"], ["a"]]],
                    v!({"apple": ["a"], "pineapple": ["p"]}),
                ),
                (args![[], []], v!({})),
                (args![["a", "a"], [1, 2]], v!({"a": 2})),
                (vec![set(json!(["k"])), v!([true])], v!({"k": true})),
            ],
        );
        check_err(
            "zipmap",
            vec![
                (
                    args![["a"], [1, 2]],
                    "number of keys (1) does not match number of values (2)",
                ),
                (args![[null], [1]], "keys list has null value at index 0"),
                (args![["a"], "b"], "\"values\": list required, got string"),
            ],
        );
    }
}
