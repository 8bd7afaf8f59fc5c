//! Tests of the dispatcher and the shared argument helpers.

use super::test_support::{args, check_err, check_ok, v};
use super::*;

#[test]
fn names_are_sorted_unique_and_callable() {
    assert!(
        NAMES.windows(2).all(|pair| pair[0] < pair[1]),
        "NAMES must be sorted"
    );
    assert_eq!(NAMES.len(), 76);
    for name in NAMES {
        assert!(lookup(name).is_some(), "{name} has no implementation");
    }
}

#[test]
fn no_input_panics() {
    // Every function with every combination of up to three odd arguments returns normally.
    let pool = vec![
        Value::Null,
        v!(true),
        v!(0),
        v!(-3),
        v!(2.5),
        Value::Number(f64::NAN),
        Value::Number(f64::INFINITY),
        Value::Number(1e300),
        v!(""),
        v!("a,b\n\"c"),
        v!("%v %[2]s %-08.3f %"),
        v!("2018-01-02T23:12:01+05:30"),
        v!("/(a)|(?P<n>b)/"),
        v!("1h"),
        v!(["a", 1, null, [true]]),
        test_support::set(serde_json::json!(["x", "y"])),
        v!({"k": ["v"], "n": null}),
    ];
    let mut combinations: Vec<Vec<Value>> = vec![vec![]];
    for _ in 0..3 {
        let longer: Vec<Vec<Value>> = combinations
            .iter()
            .filter(|args| args.len() == combinations.last().map_or(0, Vec::len))
            .flat_map(|args| {
                pool.iter().map(move |value| {
                    let mut next = args.clone();
                    next.push(value.clone());
                    next
                })
            })
            .collect();
        combinations.extend(longer);
    }
    for name in NAMES {
        for args in &combinations {
            let _ = call(name, args.clone());
        }
    }
}

#[test]
fn unknown_function() {
    assert_eq!(
        call("file", vec![]),
        Err("there is no function named \"file\"".to_owned())
    );
}

#[test]
fn arity_messages() {
    let cases = [
        ("upper", args![], "expected 1 argument, got 0"),
        ("split", args!["a", "b", "c"], "expected 2 arguments, got 3"),
        ("lookup", args![{}], "expected 2 or 3 arguments, got 1"),
        (
            "range",
            args![1, 2, 3, 4],
            "expected 1 to 3 arguments, got 4",
        ),
        ("concat", args![], "expected at least 1 argument, got 0"),
        (
            "setproduct",
            args![[1]],
            "expected at least 2 arguments, got 1",
        ),
        ("timestamp", args![1], "expected 0 arguments, got 1"),
    ];
    for (name, args, message) in cases {
        assert_eq!(call(name, args), Err(message.to_owned()), "{name}");
    }
}

#[test]
fn argument_conversions() {
    // Numbers and bools convert to strings, numeric strings to numbers.
    check_ok(
        "upper",
        vec![(args![5], v!("5")), (args![true], v!("TRUE"))],
    );
    check_ok("abs", vec![(args!["-2.5"], v!(2.5))]);
    check_err(
        "upper",
        vec![
            (
                args![null],
                "invalid value for \"str\": argument must not be null",
            ),
            (
                args![[]],
                "invalid value for \"str\": string required, got list",
            ),
        ],
    );
    check_err(
        "abs",
        vec![
            (args!["x"], "a number is required, got the string \"x\""),
            (args![true], "number required, got bool"),
        ],
    );
    check_err(
        "substr",
        vec![(args!["abc", 1.5, 1], "must be a whole number")],
    );
}

#[test]
fn decimal_numbers() {
    let good = [
        ("12", 12.0),
        ("-1.5", -1.5),
        ("+3", 3.0),
        (".5", 0.5),
        ("2.", 2.0),
        ("1e3", 1000.0),
        ("1E-2", 0.01),
    ];
    for (text, expected) in good {
        assert_eq!(parse_number(text), Some(expected), "{text}");
    }
    for text in [
        "", " 1", "1 ", "0x10", "inf", "NaN", "1e", "e3", ".", "-", "1_000", "1e400",
    ] {
        assert_eq!(parse_number(text), None, "{text}");
    }
}

#[test]
fn unification() {
    assert_eq!(
        unify(args!["a", 1, true, null]),
        Ok(args!["a", "1", "true", null])
    );
    assert_eq!(unify(args![1, 2]), Ok(args![1, 2]));
    assert_eq!(unify(args![[1], [2]]), Ok(args![[1], [2]]));
    assert_eq!(
        unify(args![1, true]),
        Err("all elements must have the same type, got number and bool".to_owned())
    );
    assert!(unify(args!["a", [1]]).is_err());
}

#[test]
fn json_text_escapes_html() {
    assert_eq!(
        json_text(&v!({"a": "<b> & \u{2028}"})),
        r#"{"a":"\u003cb\u003e \u0026 \u2028"}"#
    );
}
