//! Helpers for the unit tests of every module of the function library.

use crate::value::Value;

/// A value written as JSON: `v!(["a", 1])`.
macro_rules! v {
    ($($json:tt)+) => {
        $crate::value::Value::from_json(&serde_json::json!($($json)+))
    };
}
pub(crate) use v;

/// An argument list written as JSON values: `args!["a", [1, 2], (-1)]`.
macro_rules! args {
    ($($json:tt),* $(,)?) => {
        vec![$($crate::functions::test_support::v!($json)),*]
    };
}
pub(crate) use args;

/// A set value from JSON elements.
pub(crate) fn set(json: serde_json::Value) -> Value {
    match Value::from_json(&json) {
        Value::List(items) => Value::set(items),
        other => panic!("set() takes a JSON array, got {other:?}"),
    }
}

/// Checks that every call succeeds with the expected value.
#[track_caller]
pub(crate) fn check_ok(name: &str, cases: Vec<(Vec<Value>, Value)>) {
    for (args, expected) in cases {
        let shown = format!("{name}({args:?})");
        assert_eq!(super::call(name, args), Ok(expected), "{shown}");
    }
}

/// Checks that every call fails with a message containing the fragment.
#[track_caller]
pub(crate) fn check_err(name: &str, cases: Vec<(Vec<Value>, &str)>) {
    for (args, fragment) in cases {
        let shown = format!("{name}({args:?})");
        match super::call(name, args) {
            Ok(value) => {
                panic!("{shown}: expected an error containing {fragment:?}, got {value:?}")
            }
            Err(message) => assert!(
                message.contains(fragment),
                "{shown}: error {message:?} does not contain {fragment:?}"
            ),
        }
    }
}
