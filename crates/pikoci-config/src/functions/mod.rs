//! The function library of the pipeline language (Terraform-compatible behaviour).
//!
//! Every function takes its arguments already evaluated (the evaluator expands `f(list...)`) and
//! returns either a value or a lowercase message without location; the evaluator adds the
//! function name and where the call is. This module holds the name table, the dispatcher and the
//! small argument helpers shared by the concern modules.

use std::collections::BTreeMap;
use std::fmt::Display;

use crate::diagnostic::quoted;
use crate::value::Value;

mod collection;
mod conversion;
mod datetime;
mod encoding;
mod format;
mod maps;
mod numeric;
mod pattern;
mod sequence;
mod sets;
mod string;
#[cfg(test)]
mod test_support;

/// The largest string (in bytes) a function may build from a small input (`indent`, `format`
/// widths), so that a typo cannot exhaust memory.
const MAX_RESULT_BYTES: usize = 16 * 1024 * 1024;

/// The largest number of elements a function may build from a small input (`setproduct`).
const MAX_RESULT_ELEMENTS: usize = 1_000_000;

/// Arity marker for functions taking any number of trailing arguments.
const ANY: usize = usize::MAX;

/// The implementation of one function.
type Implementation = fn(Vec<Value>) -> Result<Value, String>;

/// A function of the library: how many arguments it takes and what runs it.
struct Function {
    /// The least number of arguments.
    min: usize,
    /// The largest number of arguments ([`ANY`] when unbounded).
    max: usize,
    /// The implementation.
    run: Implementation,
}

/// Declares the library once: the sorted name list and the name → function table.
macro_rules! library {
    ($($name:literal => $module:ident::$function:ident($min:expr, $max:expr)),* $(,)?) => {
        /// Every function name a pipeline may call, sorted.
        pub(crate) const NAMES: &[&str] = &[$($name),*];

        /// Finds the function named `name`.
        fn lookup(name: &str) -> Option<Function> {
            match name {
                $($name => Some(Function { min: $min, max: $max, run: $module::$function }),)*
                _ => None,
            }
        }
    };
}

library! {
    "abs" => numeric::abs(1, 1),
    "alltrue" => collection::alltrue(1, 1),
    "anytrue" => collection::anytrue(1, 1),
    "base64decode" => encoding::base64decode(1, 1),
    "base64encode" => encoding::base64encode(1, 1),
    "ceil" => numeric::ceil(1, 1),
    "chomp" => string::chomp(1, 1),
    "chunklist" => sequence::chunklist(2, 2),
    "coalesce" => collection::coalesce(1, ANY),
    "coalescelist" => collection::coalescelist(1, ANY),
    "compact" => collection::compact(1, 1),
    "concat" => collection::concat(1, ANY),
    "contains" => collection::contains(2, 2),
    "csvdecode" => encoding::csvdecode(1, 1),
    "distinct" => collection::distinct(1, 1),
    "element" => sequence::element(2, 2),
    "endswith" => string::endswith(2, 2),
    "flatten" => collection::flatten(1, 1),
    "floor" => numeric::floor(1, 1),
    "format" => format::format(1, ANY),
    "formatdate" => datetime::formatdate(2, 2),
    "formatlist" => format::formatlist(1, ANY),
    "indent" => string::indent(2, 2),
    "join" => string::join(2, ANY),
    "jsondecode" => encoding::jsondecode(1, 1),
    "jsonencode" => encoding::jsonencode(1, 1),
    "keys" => maps::keys(1, 1),
    "length" => collection::length(1, 1),
    "log" => numeric::log(2, 2),
    "lookup" => maps::lookup(2, 3),
    "lower" => string::lower(1, 1),
    "max" => numeric::max(1, ANY),
    "merge" => maps::merge(0, ANY),
    "min" => numeric::min(1, ANY),
    "one" => collection::one(1, 1),
    "parseint" => numeric::parseint(2, 2),
    "pow" => numeric::pow(2, 2),
    "range" => sequence::range(1, 3),
    "regex" => pattern::regex(2, 2),
    "regexall" => pattern::regexall(2, 2),
    "regexreplace" => pattern::regexreplace(3, 3),
    "replace" => string::replace(3, 3),
    "reverse" => sequence::reverse(1, 1),
    "setintersection" => sets::setintersection(1, ANY),
    "setproduct" => sets::setproduct(2, ANY),
    "setsubtract" => sets::setsubtract(2, 2),
    "setsymmetricdifference" => sets::setsymmetricdifference(1, ANY),
    "setunion" => sets::setunion(1, ANY),
    "signum" => numeric::signum(1, 1),
    "slice" => sequence::slice(3, 3),
    "sort" => sequence::sort(1, 1),
    "split" => string::split(2, 2),
    "startswith" => string::startswith(2, 2),
    "strcontains" => string::strcontains(2, 2),
    "strlen" => string::strlen(1, 1),
    "strrev" => string::strrev(1, 1),
    "substr" => string::substr(3, 3),
    "sum" => sequence::sum(1, 1),
    "timeadd" => datetime::timeadd(2, 2),
    "timestamp" => datetime::timestamp(0, 0),
    "title" => string::title(1, 1),
    "tobool" => conversion::tobool(1, 1),
    "tolist" => conversion::tolist(1, 1),
    "tomap" => conversion::tomap(1, 1),
    "tonumber" => conversion::tonumber(1, 1),
    "toset" => conversion::toset(1, 1),
    "tostring" => conversion::tostring(1, 1),
    "transpose" => maps::transpose(1, 1),
    "trim" => string::trim(2, 2),
    "trimprefix" => string::trimprefix(2, 2),
    "trimspace" => string::trimspace(1, 1),
    "trimsuffix" => string::trimsuffix(2, 2),
    "upper" => string::upper(1, 1),
    "urlencode" => encoding::urlencode(1, 1),
    "values" => maps::values(1, 1),
    "zipmap" => maps::zipmap(2, 2),
}

/// Calls the function `name` (which must be one of [`NAMES`]) with evaluated arguments.
/// The error is a message without location; the caller adds where the call is.
pub(crate) fn call(name: &str, args: Vec<Value>) -> Result<Value, String> {
    let function =
        lookup(name).ok_or_else(|| format!("there is no function named {}", quoted(name)))?;
    check_arity(function.min, function.max, args.len())?;
    (function.run)(args)
}

/// Checks the number of arguments against the function's bounds.
fn check_arity(min: usize, max: usize, given: usize) -> Result<(), String> {
    if (min..=max).contains(&given) {
        return Ok(());
    }
    let plural = |n: usize| if n == 1 { "argument" } else { "arguments" };
    let expected = if min == max {
        format!("{min} {}", plural(min))
    } else if max == ANY {
        format!("at least {min} {}", plural(min))
    } else if max == min + 1 {
        format!("{min} or {max} arguments")
    } else {
        format!("{min} to {max} arguments")
    };
    Err(format!("expected {expected}, got {given}"))
}

/// The argument at `index`, or null when there is none (the arity check rules that out).
fn arg(args: &[Value], index: usize) -> &Value {
    args.get(index).unwrap_or(&Value::Null)
}

/// The message for a bad argument: `invalid value for "<name>": <problem>`.
fn invalid(name: &str, problem: impl Display) -> String {
    format!("invalid value for \"{name}\": {problem}")
}

/// The message for a null argument where a value is required.
fn null_argument(name: &str) -> String {
    invalid(name, "argument must not be null")
}

/// The message for an argument of the wrong type.
fn wrong_type(name: &str, required: &str, given: &Value) -> String {
    invalid(
        name,
        format!("{required} required, got {}", given.type_name()),
    )
}

/// A string argument; numbers and bools convert to their string form as in Terraform.
fn expect_string(args: &[Value], index: usize, name: &str) -> Result<String, String> {
    match arg(args, index) {
        Value::Null => Err(null_argument(name)),
        value => value
            .to_template_string()
            .ok_or_else(|| wrong_type(name, "string", value)),
    }
}

/// A number argument; strings holding a decimal number convert as in Terraform.
fn expect_number(args: &[Value], index: usize, name: &str) -> Result<f64, String> {
    match arg(args, index) {
        Value::Number(number) => Ok(*number),
        Value::String(text) => parse_number(text).ok_or_else(|| {
            invalid(
                name,
                format!("a number is required, got the string {}", quoted(text)),
            )
        }),
        Value::Null => Err(null_argument(name)),
        value => Err(wrong_type(name, "number", value)),
    }
}

/// A whole-number argument (at most 2^53 in magnitude, where floats stop being exact).
fn expect_integer(args: &[Value], index: usize, name: &str) -> Result<i64, String> {
    let number = expect_number(args, index, name)?;
    to_integer(number).ok_or_else(|| invalid(name, "must be a whole number"))
}

/// A number as an exact integer, if it is one.
fn to_integer(number: f64) -> Option<i64> {
    const EXACT: f64 = 9_007_199_254_740_992.0; // 2^53
    (number.fract() == 0.0 && number.abs() <= EXACT).then_some(number as i64)
}

/// A list or set argument.
fn expect_sequence<'a>(args: &'a [Value], index: usize, name: &str) -> Result<&'a [Value], String> {
    match arg(args, index) {
        Value::List(items) | Value::Set(items) => Ok(items),
        Value::Null => Err(null_argument(name)),
        value => Err(wrong_type(name, "list or set", value)),
    }
}

/// A list argument (sets have no order, so index-based functions refuse them).
fn expect_list<'a>(args: &'a [Value], index: usize, name: &str) -> Result<&'a [Value], String> {
    match arg(args, index) {
        Value::List(items) => Ok(items),
        Value::Null => Err(null_argument(name)),
        value => Err(wrong_type(name, "list", value)),
    }
}

/// A map or object argument.
fn expect_object<'a>(
    args: &'a [Value],
    index: usize,
    name: &str,
) -> Result<&'a BTreeMap<String, Value>, String> {
    match arg(args, index) {
        Value::Object(map) => Ok(map),
        Value::Null => Err(null_argument(name)),
        value => Err(wrong_type(name, "map or object", value)),
    }
}

/// Parses the decimal form of a number (`12`, `-1.5`, `2e3`), as Terraform converts strings;
/// hexadecimal, `inf`, `nan` and surrounding spaces are refused.
fn parse_number(text: &str) -> Option<f64> {
    let digits = text.strip_prefix(['-', '+']).unwrap_or(text);
    let (mantissa, exponent) = match digits.find(['e', 'E']) {
        Some(at) => (digits.get(..at)?, Some(digits.get(at + 1..)?)),
        None => (digits, None),
    };
    let (whole, fraction) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let all_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    let exponent_ok = exponent.is_none_or(|e| {
        let e = e.strip_prefix(['-', '+']).unwrap_or(e);
        !e.is_empty() && all_digits(e)
    });
    let valid = (!whole.is_empty() || !fraction.is_empty())
        && all_digits(whole)
        && all_digits(fraction)
        && exponent_ok;
    if !valid {
        return None;
    }
    text.parse::<f64>().ok().filter(|n| n.is_finite())
}

/// A number result; `NaN` (e.g. the logarithm of a negative number) is an error.
fn number_result(number: f64) -> Result<Value, String> {
    if number.is_nan() {
        Err("the result is not a number".to_owned())
    } else {
        Ok(Value::Number(number))
    }
}

/// Whether a value is a string, number or bool.
fn is_primitive(value: &Value) -> bool {
    matches!(value, Value::String(_) | Value::Number(_) | Value::Bool(_))
}

/// Brings elements to one type as Terraform's type unification does: values of one type stay as
/// they are, a mix of strings with numbers or bools becomes all strings, nulls stay null, and
/// any other mix is an error.
fn unify(values: Vec<Value>) -> Result<Vec<Value>, String> {
    let mut kinds: Vec<&'static str> = Vec::new();
    for value in &values {
        let kind = value.type_name();
        if kind != "null" && !kinds.contains(&kind) {
            kinds.push(kind);
        }
    }
    if kinds.len() <= 1 {
        return Ok(values);
    }
    let all_primitive = values.iter().all(|v| is_primitive(v) || *v == Value::Null);
    if !all_primitive || !kinds.contains(&"string") {
        return Err(format!(
            "all elements must have the same type, got {}",
            kinds.join(" and ")
        ));
    }
    Ok(values
        .into_iter()
        .map(|value| match value.to_template_string() {
            Some(text) => Value::String(text),
            None => value,
        })
        .collect())
}

/// JSON text of a value as Terraform writes it: compact, with `<`, `>`, `&`, U+2028 and U+2029
/// escaped (those characters can only occur inside JSON strings, so a textual replace is exact).
fn json_text(value: &Value) -> String {
    let text = value.to_json().to_string();
    let mut escaped = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '<' => escaped.push_str("\\u003c"),
            '>' => escaped.push_str("\\u003e"),
            '&' => escaped.push_str("\\u0026"),
            '\u{2028}' => escaped.push_str("\\u2028"),
            '\u{2029}' => escaped.push_str("\\u2029"),
            other => escaped.push(other),
        }
    }
    escaped
}

#[cfg(test)]
mod tests;
