//! Collection functions: `alltrue`, `anytrue`, `coalesce`, `coalescelist`, `compact`, `concat`,
//! `contains`, `distinct`, `flatten`, `length`, `one`.

use super::{arg, expect_sequence, invalid, null_argument, unify, wrong_type};
use crate::value::Value;

/// The truth of a `list(bool)` element: bools, or the strings `"true"` / `"false"`; null counts
/// as false.
fn element_truth(value: &Value, index: usize) -> Result<bool, String> {
    match value {
        Value::Bool(flag) => Ok(*flag),
        Value::Null => Ok(false),
        Value::String(text) if text == "true" => Ok(true),
        Value::String(text) if text == "false" => Ok(false),
        other => Err(invalid(
            "list",
            format!("element {index} must be a bool, got {}", other.describe()),
        )),
    }
}

/// `alltrue(list)`: whether every element is true (true for an empty list).
pub(crate) fn alltrue(args: Vec<Value>) -> Result<Value, String> {
    let items = expect_sequence(&args, 0, "list")?;
    for (index, item) in items.iter().enumerate() {
        if !element_truth(item, index)? {
            return Ok(Value::Bool(false));
        }
    }
    Ok(Value::Bool(true))
}

/// `anytrue(list)`: whether any element is true (false for an empty list).
pub(crate) fn anytrue(args: Vec<Value>) -> Result<Value, String> {
    let items = expect_sequence(&args, 0, "list")?;
    for (index, item) in items.iter().enumerate() {
        if element_truth(item, index)? {
            return Ok(Value::Bool(true));
        }
    }
    Ok(Value::Bool(false))
}

/// `coalesce(values...)`: the first argument that is neither null nor an empty string (after
/// bringing the arguments to one type, so `coalesce(1, "a")` is `"1"`).
pub(crate) fn coalesce(args: Vec<Value>) -> Result<Value, String> {
    let values = unify(args).map_err(|_| "all arguments must have the same type".to_owned())?;
    values
        .into_iter()
        .find(|value| {
            !matches!(value, Value::Null)
                && !matches!(value, Value::String(text) if text.is_empty())
        })
        .ok_or_else(|| "no non-null, non-empty-string arguments".to_owned())
}

/// `coalescelist(lists...)`: the first non-empty list.
pub(crate) fn coalescelist(args: Vec<Value>) -> Result<Value, String> {
    for (index, value) in args.iter().enumerate() {
        match value {
            Value::Null => {}
            Value::List(items) if items.is_empty() => {}
            Value::List(_) => return Ok(value.clone()),
            other => {
                return Err(invalid(
                    "vals",
                    format!(
                        "argument {} must be a list, got {}",
                        index + 1,
                        other.type_name()
                    ),
                ));
            }
        }
    }
    Err("no non-null arguments".to_owned())
}

/// `compact(list)`: the list of strings without nulls and empty strings.
pub(crate) fn compact(args: Vec<Value>) -> Result<Value, String> {
    let items = expect_sequence(&args, 0, "list")?;
    let mut kept = Vec::new();
    for (index, item) in items.iter().enumerate() {
        match item {
            Value::Null => {}
            other => {
                let text = other.to_template_string().ok_or_else(|| {
                    invalid(
                        "list",
                        format!(
                            "element {index} must be a string, got {}",
                            other.type_name()
                        ),
                    )
                })?;
                if !text.is_empty() {
                    kept.push(Value::String(text));
                }
            }
        }
    }
    Ok(Value::List(kept))
}

/// `concat(lists...)`: the lists joined into one.
pub(crate) fn concat(args: Vec<Value>) -> Result<Value, String> {
    let mut joined = Vec::new();
    for (index, value) in args.into_iter().enumerate() {
        match value {
            Value::List(items) => joined.extend(items),
            other => {
                return Err(invalid(
                    "seqs",
                    format!(
                        "all arguments must be lists; argument {} is {}",
                        index + 1,
                        other.type_name()
                    ),
                ));
            }
        }
    }
    Ok(Value::List(joined))
}

/// `contains(list, value)`: whether the list or set has the value as an element.
pub(crate) fn contains(args: Vec<Value>) -> Result<Value, String> {
    let items = expect_sequence(&args, 0, "list")?;
    match arg(&args, 1) {
        Value::Null => Err(null_argument("value")),
        needle => Ok(Value::Bool(items.contains(needle))),
    }
}

/// `distinct(list)`: the list without repeated elements, first occurrences kept in order.
pub(crate) fn distinct(args: Vec<Value>) -> Result<Value, String> {
    let items = expect_sequence(&args, 0, "list")?;
    let mut unique: Vec<Value> = Vec::with_capacity(items.len());
    for item in items {
        if !unique.contains(item) {
            unique.push(item.clone());
        }
    }
    Ok(Value::List(unique))
}

/// `flatten(list)`: nested lists and sets replaced by their elements, recursively.
pub(crate) fn flatten(args: Vec<Value>) -> Result<Value, String> {
    let items = expect_sequence(&args, 0, "list")?;
    let mut flat = Vec::new();
    flatten_into(items, &mut flat);
    Ok(Value::List(flat))
}

/// Appends the elements of `items` to `flat`, descending into nested lists and sets.
fn flatten_into(items: &[Value], flat: &mut Vec<Value>) {
    for item in items {
        match item {
            Value::List(nested) | Value::Set(nested) => flatten_into(nested, flat),
            other => flat.push(other.clone()),
        }
    }
}

/// `length(value)`: characters of a string, elements of a list, set, map or object.
pub(crate) fn length(args: Vec<Value>) -> Result<Value, String> {
    let count = match arg(&args, 0) {
        Value::String(text) => text.chars().count(),
        Value::List(items) | Value::Set(items) => items.len(),
        Value::Object(map) => map.len(),
        Value::Null => return Err(null_argument("value")),
        other => {
            return Err(wrong_type(
                "value",
                "string, list, set, map or object",
                other,
            ));
        }
    };
    Ok(Value::Number(count as f64))
}

/// `one(list)`: null for an empty collection, the element of a one-element collection.
pub(crate) fn one(args: Vec<Value>) -> Result<Value, String> {
    let items = expect_sequence(&args, 0, "list")?;
    match items {
        [] => Ok(Value::Null),
        [single] => Ok(single.clone()),
        more => Err(invalid(
            "list",
            format!("must be a single element collection, got {}", more.len()),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{args, check_err, check_ok, set, v};
    use serde_json::json;

    #[test]
    fn alltrue_anytrue() {
        check_ok(
            "alltrue",
            vec![
                (args![["true", true]], v!(true)),
                (args![[true, false]], v!(false)),
                (args![[]], v!(true)),
                (args![[true, null]], v!(false)),
                (vec![set(json!([true]))], v!(true)),
            ],
        );
        check_ok(
            "anytrue",
            vec![
                (args![["true"]], v!(true)),
                (args![[true, false]], v!(true)),
                (args![[]], v!(false)),
                (args![[null, false, "false"]], v!(false)),
            ],
        );
        check_err(
            "alltrue",
            vec![
                (args![[1]], "element 0 must be a bool, got 1"),
                (args!["true"], "list or set required"),
            ],
        );
        check_err(
            "anytrue",
            vec![(args![["yes"]], "element 0 must be a bool, got \"yes\"")],
        );
    }

    #[test]
    fn coalesce() {
        check_ok(
            "coalesce",
            vec![
                (args!["a", "b"], v!("a")),
                (args!["", "b"], v!("b")),
                (args![1, 2], v!(1)),
                (args![null, "", "c"], v!("c")),
                (args![1, "hello"], v!("1")),
                (args![null, [1]], v!([1])),
            ],
        );
        check_err(
            "coalesce",
            vec![
                (args![null, ""], "no non-null, non-empty-string arguments"),
                (args![1, true], "all arguments must have the same type"),
            ],
        );
    }

    #[test]
    fn coalescelist() {
        check_ok(
            "coalescelist",
            vec![
                (args![["a", "b"], ["c", "d"]], v!(["a", "b"])),
                (args![[], ["c", "d"]], v!(["c", "d"])),
                (args![null, [], [1]], v!([1])),
            ],
        );
        check_err(
            "coalescelist",
            vec![
                (args![[], []], "no non-null arguments"),
                (args!["a"], "argument 1 must be a list, got string"),
            ],
        );
    }

    #[test]
    fn compact() {
        check_ok(
            "compact",
            vec![
                (args![["a", "", "b", null, "c"]], v!(["a", "b", "c"])),
                (args![[]], v!([])),
                (args![[1, ""]], v!(["1"])),
            ],
        );
        check_err(
            "compact",
            vec![(args![[["a"]]], "element 0 must be a string, got list")],
        );
    }

    #[test]
    fn concat() {
        check_ok(
            "concat",
            vec![
                (args![["a", ""], ["b", "c"]], v!(["a", "", "b", "c"])),
                (args![[1], [], ["x", [2]]], v!([1, "x", [2]])),
                (args![[]], v!([])),
            ],
        );
        check_err("concat", vec![(args![["a"], "b"], "argument 2 is string")]);
        check_err(
            "concat",
            vec![(vec![set(json!(["a"]))], "argument 1 is set")],
        );
    }

    #[test]
    fn contains() {
        check_ok(
            "contains",
            vec![
                (args![["a", "b", "c"], "a"], v!(true)),
                (args![["a", "b", "c"], "d"], v!(false)),
                (args![[1, 2], 2.0], v!(true)),
                (args![["1"], 1], v!(false)),
                (args![[[1], {"a": 2}], {"a": 2}], v!(true)),
                (args![[], "a"], v!(false)),
                (vec![set(json!(["x", "y"])), v!("y")], v!(true)),
            ],
        );
        check_err(
            "contains",
            vec![
                (args!["abc", "a"], "list or set required, got string"),
                (args![null, "a"], "must not be null"),
                (
                    args![["a"], null],
                    "invalid value for \"value\": argument must not be null",
                ),
            ],
        );
    }

    #[test]
    fn distinct() {
        check_ok(
            "distinct",
            vec![
                (
                    args![["a", "b", "a", "c", "d", "b"]],
                    v!(["a", "b", "c", "d"]),
                ),
                (args![[1, "1", 1.0]], v!([1, "1"])),
                (args![[]], v!([])),
            ],
        );
    }

    #[test]
    fn flatten() {
        check_ok(
            "flatten",
            vec![
                (args![[["a", "b"], [], ["c"]]], v!(["a", "b", "c"])),
                (args![[[["a", "b"], []], ["c"]]], v!(["a", "b", "c"])),
                (args![[1, null, {"a": [2]}]], v!([1, null, {"a": [2]}])),
                (args![[]], v!([])),
            ],
        );
        check_err("flatten", vec![(args!["a"], "list or set required")]);
    }

    #[test]
    fn length() {
        check_ok(
            "length",
            vec![
                (args![[]], v!(0)),
                (args![["a", "b"]], v!(2)),
                (args![{"a": "b"}], v!(1)),
                (args!["hello"], v!(5)),
                (args!["héllo"], v!(5)),
                (args![""], v!(0)),
                (vec![set(json!([1, 2, 2]))], v!(2)),
            ],
        );
        check_err(
            "length",
            vec![
                (args![null], "argument must not be null"),
                (args![5], "got number"),
                (args![true], "got bool"),
            ],
        );
    }

    #[test]
    fn one() {
        check_ok(
            "one",
            vec![
                (args![[]], v!(null)),
                (args![["hello"]], v!("hello")),
                (vec![set(json!([]))], v!(null)),
                (vec![set(json!(["hello", "hello"]))], v!("hello")),
            ],
        );
        check_err(
            "one",
            vec![
                (
                    args![["hello", "goodbye"]],
                    "must be a single element collection, got 2",
                ),
                (args!["hello"], "list or set required"),
            ],
        );
    }
}
