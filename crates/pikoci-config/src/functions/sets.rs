//! Set functions: `setintersection`, `setproduct`, `setsubtract`, `setsymmetricdifference`,
//! `setunion`. Lists are accepted wherever a set is; elements of mixed primitive types are
//! brought to one type first (strings), as Terraform does.

use super::{MAX_RESULT_ELEMENTS, expect_sequence, invalid, unify};
use crate::value::Value;

/// The arguments as element vectors, unified across all of them.
fn unified_sets(args: &[Value]) -> Result<Vec<Vec<Value>>, String> {
    let mut lengths = Vec::with_capacity(args.len());
    let mut all = Vec::new();
    for index in 0..args.len() {
        let items = expect_sequence(args, index, "sets")?;
        lengths.push(items.len());
        all.extend_from_slice(items);
    }
    let mut all = unify(all)
        .map_err(|_| {
            invalid(
                "sets",
                "the given sets must all have compatible element types",
            )
        })?
        .into_iter();
    Ok(lengths
        .into_iter()
        .map(|length| all.by_ref().take(length).collect())
        .collect())
}

/// Folds the sets with `combine`, starting from the first.
fn fold_sets(
    args: &[Value],
    combine: fn(Vec<Value>, &[Value]) -> Vec<Value>,
) -> Result<Value, String> {
    let mut sets = unified_sets(args)?.into_iter();
    let first = sets.next().unwrap_or_default();
    Ok(Value::set(
        sets.fold(first, |acc, next| combine(acc, &next)),
    ))
}

/// `setunion(sets...)`: the elements in any of the sets.
pub(crate) fn setunion(args: Vec<Value>) -> Result<Value, String> {
    fold_sets(&args, |mut acc, next| {
        acc.extend_from_slice(next);
        acc
    })
}

/// `setintersection(sets...)`: the elements in every set.
pub(crate) fn setintersection(args: Vec<Value>) -> Result<Value, String> {
    fold_sets(&args, |acc, next| {
        acc.into_iter().filter(|item| next.contains(item)).collect()
    })
}

/// `setsubtract(a, b)`: the elements of `a` that are not in `b`.
pub(crate) fn setsubtract(args: Vec<Value>) -> Result<Value, String> {
    fold_sets(&args, |acc, next| {
        acc.into_iter()
            .filter(|item| !next.contains(item))
            .collect()
    })
}

/// `setsymmetricdifference(sets...)`: the elements in an odd number of the sets (applied
/// pairwise, as Terraform does).
pub(crate) fn setsymmetricdifference(args: Vec<Value>) -> Result<Value, String> {
    fold_sets(&args, |acc, next| {
        let acc = match Value::set(acc) {
            Value::Set(items) | Value::List(items) => items,
            _ => Vec::new(),
        };
        let mut result: Vec<Value> = acc
            .iter()
            .filter(|item| !next.contains(item))
            .cloned()
            .collect();
        result.extend(next.iter().filter(|item| !acc.contains(item)).cloned());
        result
    })
}

/// `setproduct(sets...)`: every combination of one element from each argument, as lists; a
/// list of them when every argument is a list (order kept), otherwise a set.
pub(crate) fn setproduct(args: Vec<Value>) -> Result<Value, String> {
    let all_lists = args.iter().all(|value| matches!(value, Value::List(_)));
    let mut factors = Vec::with_capacity(args.len());
    for index in 0..args.len() {
        let items = expect_sequence(&args, index, "sets")?.to_vec();
        let items = unify(items).map_err(|_| {
            invalid(
                "sets",
                format!(
                    "all elements of argument {} must be of the same type",
                    index + 1
                ),
            )
        })?;
        factors.push(items);
    }
    let total = factors
        .iter()
        .try_fold(1_usize, |total, items| total.checked_mul(items.len()));
    if total.is_none_or(|total| total > MAX_RESULT_ELEMENTS) {
        return Err(format!(
            "the product would have more than {MAX_RESULT_ELEMENTS} elements"
        ));
    }
    let mut product: Vec<Vec<Value>> = vec![Vec::new()];
    for items in &factors {
        product = product
            .into_iter()
            .flat_map(|prefix| {
                items.iter().map(move |item| {
                    let mut combination = prefix.clone();
                    combination.push(item.clone());
                    combination
                })
            })
            .collect();
    }
    let combinations = product.into_iter().map(Value::List).collect();
    Ok(if all_lists {
        Value::List(combinations)
    } else {
        Value::set(combinations)
    })
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{args, check_err, check_ok, set, v};
    use serde_json::json;

    #[test]
    fn setunion() {
        check_ok(
            "setunion",
            vec![
                (
                    args![["a", "b"], ["b", "c"], ["d"]],
                    set(json!(["a", "b", "c", "d"])),
                ),
                (args![["b", "a", "b"]], set(json!(["a", "b"]))),
                (args![[1], ["a"]], set(json!(["1", "a"]))),
                (args![[], []], set(json!([]))),
            ],
        );
        check_err(
            "setunion",
            vec![
                (args![["a"], "b"], "list or set required, got string"),
                (
                    args![[1], [true]],
                    "the given sets must all have compatible element types",
                ),
            ],
        );
    }

    #[test]
    fn setintersection() {
        check_ok(
            "setintersection",
            vec![
                (args![["a", "b"], ["b", "c"], ["b", "d"]], set(json!(["b"]))),
                (args![["a", "b"], ["c"]], set(json!([]))),
                (args![["b", "a"]], set(json!(["a", "b"]))),
                (vec![set(json!([1, 2, 3])), v!([3, 1])], set(json!([1, 3]))),
            ],
        );
    }

    #[test]
    fn setsubtract() {
        check_ok(
            "setsubtract",
            vec![
                (args![["a", "b", "c"], ["a", "c"]], set(json!(["b"]))),
                (args![["a", "b", "c"], []], set(json!(["a", "b", "c"]))),
                (args![[], ["a"]], set(json!([]))),
            ],
        );
        check_err(
            "setsubtract",
            vec![(args![["a"]], "expected 2 arguments, got 1")],
        );
    }

    #[test]
    fn setsymmetricdifference() {
        check_ok(
            "setsymmetricdifference",
            vec![
                (args![[1, 2, 3], [1, 2, 4]], set(json!([3, 4]))),
                (args![[1, 2], [2, 3], [3, 4]], set(json!([1, 4]))),
                (args![[1, 2], [2, 3], [2]], set(json!([1, 2, 3]))),
                (args![[1, 1]], set(json!([1]))),
            ],
        );
    }

    #[test]
    fn setproduct() {
        check_ok(
            "setproduct",
            vec![
                (
                    args![["development", "staging", "production"], ["app1", "app2"]],
                    v!([
                        ["development", "app1"],
                        ["development", "app2"],
                        ["staging", "app1"],
                        ["staging", "app2"],
                        ["production", "app1"],
                        ["production", "app2"]
                    ]),
                ),
                (args![["staging", "production"], []], v!([])),
                (
                    args![["a"], [1], [true, false]],
                    v!([["a", 1, true], ["a", 1, false]]),
                ),
                (args![["a", 1], ["x"]], v!([["a", "x"], ["1", "x"]])),
                (
                    vec![set(json!(["b", "a"])), v!(["x"])],
                    set(json!([["a", "x"], ["b", "x"]])),
                ),
            ],
        );
        check_err(
            "setproduct",
            vec![
                (args![["a"], "b"], "list or set required, got string"),
                (
                    args![[1, true], ["x"]],
                    "all elements of argument 1 must be of the same type",
                ),
                (
                    args![
                        [0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
                        [0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
                        [0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
                        [0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
                        [0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
                        [0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
                        [0, 1]
                    ],
                    "more than 1000000 elements",
                ),
            ],
        );
    }
}
