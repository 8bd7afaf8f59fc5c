//! Numeric functions: `abs`, `ceil`, `floor`, `log`, `max`, `min`, `parseint`, `pow`, `signum`.

use super::{
    arg, expect_integer, expect_number, invalid, null_argument, number_result, wrong_type,
};
use crate::diagnostic::quoted;
use crate::value::Value;

/// `abs(num)`: the magnitude of the number.
pub(crate) fn abs(args: Vec<Value>) -> Result<Value, String> {
    Ok(Value::Number(expect_number(&args, 0, "num")?.abs()))
}

/// `ceil(num)`: the smallest whole number not below the number.
pub(crate) fn ceil(args: Vec<Value>) -> Result<Value, String> {
    Ok(Value::Number(expect_number(&args, 0, "num")?.ceil()))
}

/// `floor(num)`: the largest whole number not above the number.
pub(crate) fn floor(args: Vec<Value>) -> Result<Value, String> {
    Ok(Value::Number(expect_number(&args, 0, "num")?.floor()))
}

/// `log(num, base)`: the logarithm of the number in the base.
pub(crate) fn log(args: Vec<Value>) -> Result<Value, String> {
    let number = expect_number(&args, 0, "num")?;
    let base = expect_number(&args, 1, "base")?;
    number_result(number.ln() / base.ln())
}

/// `pow(base, exponent)`: the base raised to the exponent.
pub(crate) fn pow(args: Vec<Value>) -> Result<Value, String> {
    let base = expect_number(&args, 0, "num")?;
    let exponent = expect_number(&args, 1, "power")?;
    number_result(base.powf(exponent))
}

/// `signum(num)`: -1, 0 or 1 by the sign of the number.
pub(crate) fn signum(args: Vec<Value>) -> Result<Value, String> {
    let number = expect_number(&args, 0, "num")?;
    let sign = if number > 0.0 {
        1.0
    } else if number < 0.0 {
        -1.0
    } else {
        0.0
    };
    Ok(Value::Number(sign))
}

/// `max(numbers...)`: the largest number.
pub(crate) fn max(args: Vec<Value>) -> Result<Value, String> {
    extreme(&args, f64::max)
}

/// `min(numbers...)`: the smallest number.
pub(crate) fn min(args: Vec<Value>) -> Result<Value, String> {
    extreme(&args, f64::min)
}

/// Folds the numeric arguments with `pick`.
fn extreme(args: &[Value], pick: fn(f64, f64) -> f64) -> Result<Value, String> {
    let mut best: Option<f64> = None;
    for index in 0..args.len() {
        let number = expect_number(args, index, "numbers")?;
        best = Some(best.map_or(number, |best| pick(best, number)));
    }
    best.map(Value::Number)
        .ok_or_else(|| "must pass at least one number".to_owned())
}

/// `parseint(number, base)`: parses a string of digits in base 2 to 62 (digits `0-9`, then
/// `a-z`, then `A-Z`; letters are case-insensitive up to base 36), with an optional sign.
pub(crate) fn parseint(args: Vec<Value>) -> Result<Value, String> {
    let text = match arg(&args, 0) {
        Value::String(text) => text.clone(),
        Value::Null => return Err(null_argument("number")),
        other => return Err(wrong_type("number", "string", other)),
    };
    let base = expect_integer(&args, 1, "base")?;
    let base = u32::try_from(base)
        .ok()
        .filter(|base| (2..=62).contains(base))
        .ok_or_else(|| invalid("base", "must be a whole number between 2 and 62 inclusive"))?;
    let fail = || {
        invalid(
            "number",
            format!("cannot parse {} as a base {base} integer", quoted(&text)),
        )
    };
    let (negative, digits) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text.strip_prefix('+').unwrap_or(&text)),
    };
    if digits.is_empty() {
        return Err(fail());
    }
    let mut exact: Option<u128> = Some(0);
    let mut approximate = 0.0_f64;
    for c in digits.chars() {
        let digit = digit_value(c, base).ok_or_else(fail)?;
        exact = exact
            .and_then(|value| value.checked_mul(u128::from(base)))
            .and_then(|value| value.checked_add(u128::from(digit)));
        approximate = approximate * f64::from(base) + f64::from(digit);
    }
    let magnitude = match exact {
        Some(value) => value as f64,
        // Too large for exact arithmetic: base 10 can still be rounded correctly.
        None if base == 10 => digits.parse::<f64>().unwrap_or(approximate),
        None => approximate,
    };
    Ok(Value::Number(if negative { -magnitude } else { magnitude }))
}

/// The value of a digit character in a base, if it is a digit of that base.
fn digit_value(c: char, base: u32) -> Option<u32> {
    let value = match c {
        '0'..='9' => u32::from(c) - u32::from('0'),
        'a'..='z' => u32::from(c) - u32::from('a') + 10,
        'A'..='Z' if base <= 36 => u32::from(c) - u32::from('A') + 10,
        'A'..='Z' => u32::from(c) - u32::from('A') + 36,
        _ => return None,
    };
    (value < base).then_some(value)
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{args, check_err, check_ok, v};

    #[test]
    fn abs_ceil_floor_signum() {
        check_ok(
            "abs",
            vec![
                (args![23], v!(23)),
                (args![0], v!(0)),
                (args![(-12.4)], v!(12.4)),
            ],
        );
        check_ok(
            "ceil",
            vec![
                (args![5], v!(5)),
                (args![5.1], v!(6)),
                (args![(-5.1)], v!(-5)),
            ],
        );
        check_ok(
            "floor",
            vec![
                (args![5], v!(5)),
                (args![4.9], v!(4)),
                (args![(-4.1)], v!(-5)),
            ],
        );
        check_ok(
            "signum",
            vec![
                (args![(-13)], v!(-1)),
                (args![0], v!(0)),
                (args![344], v!(1)),
                (args![(-0.5)], v!(-1)),
            ],
        );
        check_err(
            "ceil",
            vec![
                (args!["x"], "a number is required"),
                (args![null], "must not be null"),
            ],
        );
    }

    #[test]
    fn log_pow() {
        check_ok(
            "log",
            vec![
                (args![50, 10], v!(1.6989700043360185)),
                (args![16, 2], v!(4)),
                (args![1, 10], v!(0)),
            ],
        );
        check_ok(
            "pow",
            vec![
                (args![3, 2], v!(9)),
                (args![4, 0], v!(1)),
                (args![2, (-1)], v!(0.5)),
                (args![4, 0.5], v!(2)),
            ],
        );
        check_err("log", vec![(args![(-1), 10], "the result is not a number")]);
        check_err(
            "pow",
            vec![(args![(-8), 0.5], "the result is not a number")],
        );
        assert_eq!(
            super::super::call("log", args![0, 10]),
            Ok(crate::value::Value::Number(f64::NEG_INFINITY))
        );
    }

    #[test]
    fn max_min() {
        check_ok(
            "max",
            vec![
                (args![12, 54, 3], v!(54)),
                (args![(-1)], v!(-1)),
                (args!["7", 2], v!(7)),
            ],
        );
        check_ok(
            "min",
            vec![(args![12, 54, 3], v!(3)), (args![1.5, 1.25], v!(1.25))],
        );
        check_err(
            "max",
            vec![
                (args![], "expected at least 1 argument, got 0"),
                (args![1, "a"], "a number is required"),
            ],
        );
    }

    #[test]
    fn parseint() {
        check_ok(
            "parseint",
            vec![
                (args!["100", 10], v!(100)),
                (args!["FF", 16], v!(255)),
                (args!["ff", 16], v!(255)),
                (args!["-10", 16], v!(-16)),
                (args!["+10", 2], v!(2)),
                (args!["1011111011101111", 2], v!(48879)),
                (args!["aA", 62], v!(656)),
                (args!["zz", 36], v!(1295)),
                (args!["0", 8], v!(0)),
                (
                    args!["100000000000000000000000000000000000000000", 10],
                    v!(1e41),
                ),
            ],
        );
        check_err(
            "parseint",
            vec![
                (args!["12", 2], "cannot parse \"12\" as a base 2 integer"),
                (args!["", 10], "cannot parse \"\" as a base 10 integer"),
                (args!["-", 10], "cannot parse \"-\" as a base 10 integer"),
                (args!["0x10", 16], "cannot parse \"0x10\""),
                (args!["1_000", 10], "cannot parse"),
                (args![" 1", 10], "cannot parse"),
                (
                    args!["10", 1],
                    "\"base\": must be a whole number between 2 and 62 inclusive",
                ),
                (args!["10", 63], "between 2 and 62"),
                (args!["10", 2.5], "must be a whole number"),
                (args![10, 10], "\"number\": string required, got number"),
            ],
        );
    }
}
