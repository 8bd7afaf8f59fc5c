//! Sequence functions: `chunklist`, `element`, `range`, `reverse`, `slice`, `sort`, `sum`.

use super::{
    arg, expect_integer, expect_list, expect_number, expect_sequence, invalid, number_result,
    parse_number,
};
use crate::value::Value;

/// The most numbers `range` produces, as in Terraform.
const MAX_RANGE: usize = 1024;

/// `range(limit)`, `range(start, limit)`, `range(start, limit, step)`: numbers from `start`
/// (default 0) towards `limit` (excluded) by `step` (default 1, or -1 when counting down).
pub(crate) fn range(args: Vec<Value>) -> Result<Value, String> {
    let (start, limit, step) = match args.len() {
        1 => {
            let limit = expect_number(&args, 0, "limit")?;
            (0.0, limit, if limit < 0.0 { -1.0 } else { 1.0 })
        }
        2 => {
            let start = expect_number(&args, 0, "start")?;
            let limit = expect_number(&args, 1, "limit")?;
            (start, limit, if limit < start { -1.0 } else { 1.0 })
        }
        _ => (
            expect_number(&args, 0, "start")?,
            expect_number(&args, 1, "limit")?,
            expect_number(&args, 2, "step")?,
        ),
    };
    if step == 0.0 || step.is_nan() {
        return Err(invalid("step", "must not be zero"));
    }
    if step < 0.0 && limit > start {
        return Err(invalid(
            "limit",
            "must be less than start when step is negative",
        ));
    }
    if step > 0.0 && limit < start {
        return Err(invalid(
            "limit",
            "must be greater than start when step is positive",
        ));
    }
    let mut numbers = Vec::new();
    let mut current = start;
    while (step > 0.0 && current < limit) || (step < 0.0 && current > limit) {
        if numbers.len() >= MAX_RANGE {
            return Err(format!(
                "more than {MAX_RANGE} values were generated; either decrease the difference \
                 between start and limit or use a larger step"
            ));
        }
        numbers.push(Value::Number(current));
        current = start + numbers.len() as f64 * step;
    }
    Ok(Value::List(numbers))
}

/// `chunklist(list, size)`: the list cut into lists of `size` elements (size 0: one chunk).
pub(crate) fn chunklist(args: Vec<Value>) -> Result<Value, String> {
    let items = expect_sequence(&args, 0, "list")?;
    let size = expect_integer(&args, 1, "size")?;
    let size = usize::try_from(size).map_err(|_| invalid("size", "must not be negative"))?;
    if items.is_empty() {
        return Ok(Value::List(Vec::new()));
    }
    if size == 0 {
        return Ok(Value::List(vec![Value::List(items.to_vec())]));
    }
    Ok(Value::List(
        items
            .chunks(size)
            .map(|chunk| Value::List(chunk.to_vec()))
            .collect(),
    ))
}

/// `element(list, index)`: the element at `index`, wrapping around past the end.
pub(crate) fn element(args: Vec<Value>) -> Result<Value, String> {
    let items = match arg(&args, 0) {
        Value::Set(_) => {
            return Err(invalid(
                "list",
                "cannot read elements from a set; convert it with tolist()",
            ));
        }
        _ => expect_list(&args, 0, "list")?,
    };
    let index = expect_integer(&args, 1, "index")?;
    let index = usize::try_from(index)
        .map_err(|_| invalid("index", "cannot use element function with a negative index"))?;
    if items.is_empty() {
        return Err(invalid(
            "list",
            "cannot use element function with an empty list",
        ));
    }
    Ok(items
        .get(index % items.len())
        .cloned()
        .unwrap_or(Value::Null))
}

/// `reverse(list)`: the elements in reverse order (a set in reverse of its order).
pub(crate) fn reverse(args: Vec<Value>) -> Result<Value, String> {
    let items = expect_sequence(&args, 0, "list")?;
    Ok(Value::List(items.iter().rev().cloned().collect()))
}

/// `slice(list, start, end)`: the elements from `start` up to, not including, `end`.
pub(crate) fn slice(args: Vec<Value>) -> Result<Value, String> {
    let items = match arg(&args, 0) {
        Value::Set(_) => {
            return Err(invalid(
                "list",
                "cannot slice a set, because its elements do not have indices; convert it with tolist()",
            ));
        }
        _ => expect_list(&args, 0, "list")?,
    };
    let bound = |index: usize, name: &str| -> Result<usize, String> {
        let value = expect_integer(&args, index, name)?;
        let value =
            usize::try_from(value).map_err(|_| invalid(name, "must not be less than zero"))?;
        if value > items.len() {
            return Err(invalid(
                name,
                format!(
                    "must not be greater than the length of the list ({})",
                    items.len()
                ),
            ));
        }
        Ok(value)
    };
    let start = bound(1, "start_index")?;
    let end = bound(2, "end_index")?;
    if start > end {
        return Err(invalid("start_index", "must not be greater than end_index"));
    }
    Ok(Value::List(
        items.get(start..end).unwrap_or_default().to_vec(),
    ))
}

/// `sort(list)`: the elements as strings in lexical order (numbers and bools become strings, as
/// in Terraform).
pub(crate) fn sort(args: Vec<Value>) -> Result<Value, String> {
    let items = expect_sequence(&args, 0, "list")?;
    let mut texts = Vec::with_capacity(items.len());
    for (index, item) in items.iter().enumerate() {
        match item {
            Value::Null => {
                return Err(invalid(
                    "list",
                    format!("element {index} is null; a null string cannot be sorted"),
                ));
            }
            other => texts.push(other.to_template_string().ok_or_else(|| {
                invalid(
                    "list",
                    format!(
                        "element {index} must be a string, got {}",
                        other.type_name()
                    ),
                )
            })?),
        }
    }
    texts.sort();
    Ok(Value::List(texts.into_iter().map(Value::String).collect()))
}

/// `sum(list)`: the sum of the numbers (0 for an empty list).
pub(crate) fn sum(args: Vec<Value>) -> Result<Value, String> {
    let items = expect_sequence(&args, 0, "list")?;
    let mut total = 0.0;
    for (index, item) in items.iter().enumerate() {
        let number = match item {
            Value::Number(number) => Some(*number),
            Value::String(text) => parse_number(text),
            _ => None,
        };
        total += number.ok_or_else(|| {
            invalid(
                "list",
                format!("element {index} must be a number, got {}", item.describe()),
            )
        })?;
    }
    number_result(total)
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{args, check_err, check_ok, set, v};
    use serde_json::json;

    #[test]
    fn range() {
        check_ok(
            "range",
            vec![
                (args![3], v!([0, 1, 2])),
                (args![0], v!([])),
                (args![(-3)], v!([0, -1, -2])),
                (args![1, 4], v!([1, 2, 3])),
                (args![4, 1], v!([4, 3, 2])),
                (args![1, 1], v!([])),
                (args![1, 8, 2], v!([1, 3, 5, 7])),
                (args![1, 4, 0.5], v!([1, 1.5, 2, 2.5, 3, 3.5])),
                (args![4, 1, (-0.5)], v!([4, 3.5, 3, 2.5, 2, 1.5])),
                (args![10, 5, (-2)], v!([10, 8, 6])),
                (args!["2"], v!([0, 1])),
            ],
        );
        check_err(
            "range",
            vec![
                (args![1, 4, 0], "\"step\": must not be zero"),
                (
                    args![1, 4, (-1)],
                    "must be less than start when step is negative",
                ),
                (
                    args![4, 1, 1],
                    "must be greater than start when step is positive",
                ),
                (args![2000], "more than 1024 values were generated"),
                (args![0, 1, 1e-9], "more than 1024 values"),
                (args![null], "argument must not be null"),
            ],
        );
        assert_eq!(
            super::super::call("range", args![1024]).map(|v| v.as_sequence().map(<[_]>::len)),
            Ok(Some(1024))
        );
    }

    #[test]
    fn chunklist() {
        check_ok(
            "chunklist",
            vec![
                (
                    args![["a", "b", "c", "d", "e"], 2],
                    v!([["a", "b"], ["c", "d"], ["e"]]),
                ),
                (
                    args![["a", "b", "c", "d", "e"], 1],
                    v!([["a"], ["b"], ["c"], ["d"], ["e"]]),
                ),
                (args![["a", "b"], 0], v!([["a", "b"]])),
                (args![["a", "b"], 5], v!([["a", "b"]])),
                (args![[], 2], v!([])),
                (args![[], 0], v!([])),
            ],
        );
        check_err(
            "chunklist",
            vec![
                (args![["a"], (-1)], "\"size\": must not be negative"),
                (args![["a"], 0.5], "whole number"),
            ],
        );
    }

    #[test]
    fn element() {
        check_ok(
            "element",
            vec![
                (args![["a", "b", "c"], 1], v!("b")),
                (args![["a", "b", "c"], 3], v!("a")),
                (args![["a", "b", "c"], 2], v!("c")),
                (args![["a", "b", "c"], 7], v!("b")),
            ],
        );
        check_err(
            "element",
            vec![
                (
                    args![["a"], (-1)],
                    "cannot use element function with a negative index",
                ),
                (
                    args![[], 0],
                    "cannot use element function with an empty list",
                ),
                (args![["a"], 0.5], "\"index\": must be a whole number"),
                (args!["abc", 0], "list required, got string"),
            ],
        );
        check_err(
            "element",
            vec![(
                vec![set(json!(["a"])), v!(0)],
                "cannot read elements from a set",
            )],
        );
    }

    #[test]
    fn reverse() {
        check_ok(
            "reverse",
            vec![
                (args![[1, 2, 3]], v!([3, 2, 1])),
                (args![[]], v!([])),
                (vec![set(json!(["b", "a"]))], v!(["b", "a"])),
            ],
        );
        check_err(
            "reverse",
            vec![(args!["abc"], "list or set required, got string")],
        );
    }

    #[test]
    fn slice() {
        check_ok(
            "slice",
            vec![
                (args![["a", "b", "c", "d"], 1, 3], v!(["b", "c"])),
                (args![["a", "b"], 0, 2], v!(["a", "b"])),
                (args![["a", "b"], 2, 2], v!([])),
                (args![[], 0, 0], v!([])),
            ],
        );
        check_err(
            "slice",
            vec![
                (
                    args![["a", "b"], (-1), 1],
                    "\"start_index\": must not be less than zero",
                ),
                (
                    args![["a", "b"], 0, 3],
                    "\"end_index\": must not be greater than the length of the list (2)",
                ),
                (
                    args![["a", "b"], 3, 3],
                    "\"start_index\": must not be greater than the length",
                ),
                (
                    args![["a", "b"], 2, 1],
                    "must not be greater than end_index",
                ),
                (args![["a", "b"], 0.5, 1], "must be a whole number"),
            ],
        );
        check_err(
            "slice",
            vec![(vec![set(json!(["a"])), v!(0), v!(1)], "cannot slice a set")],
        );
    }

    #[test]
    fn sort() {
        check_ok(
            "sort",
            vec![
                (args![["e", "d", "a", "x"]], v!(["a", "d", "e", "x"])),
                (args![[10, 9, 1]], v!(["1", "10", "9"])),
                (args![["b", "B", "a"]], v!(["B", "a", "b"])),
                (args![[]], v!([])),
                (vec![set(json!(["b", "a"]))], v!(["a", "b"])),
            ],
        );
        check_err(
            "sort",
            vec![
                (
                    args![["a", null]],
                    "element 1 is null; a null string cannot be sorted",
                ),
                (args![[["a"]]], "element 0 must be a string, got list"),
            ],
        );
    }

    #[test]
    fn sum() {
        check_ok(
            "sum",
            vec![
                (args![[10, 13, 6, 4.5]], v!(33.5)),
                (args![[]], v!(0)),
                (args![[1, "2"]], v!(3)),
                (args![[(-1.5)]], v!(-1.5)),
                (vec![set(json!([1, 2]))], v!(3)),
            ],
        );
        check_err(
            "sum",
            vec![
                (args![[1, null]], "element 1 must be a number, got null"),
                (args![["a"]], "element 0 must be a number, got \"a\""),
                (args![5], "list or set required, got number"),
            ],
        );
    }
}
