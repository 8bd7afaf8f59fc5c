//! Regular expression functions: `regex`, `regexall`, `regexreplace` (RE2 syntax, as Terraform).

use std::collections::BTreeMap;

use regex::{Captures, Regex};

use super::{MAX_RESULT_BYTES, expect_string, invalid};
use crate::value::Value;

/// Compiles a pattern; the error names the argument and keeps only the reason.
pub(crate) fn compile(source: &str, name: &str) -> Result<Regex, String> {
    Regex::new(source).map_err(|error| {
        let text = error.to_string();
        let reason = text
            .lines()
            .rev()
            .find_map(|line| line.trim().strip_prefix("error: "))
            .unwrap_or(text.lines().last().unwrap_or_default())
            .to_owned();
        invalid(
            name,
            format!("invalid regular expression {source:?}: {reason}"),
        )
    })
}

/// What a match becomes, by the capture groups of the pattern.
enum Shape {
    /// No groups: the matched text.
    Whole,
    /// Unnamed groups: a list of the group texts.
    Unnamed,
    /// Named groups: an object by group name.
    Named,
}

/// The shape of the pattern's matches; mixing named and unnamed groups is an error.
fn shape(regex: &Regex) -> Result<Shape, String> {
    let names: Vec<Option<&str>> = regex.capture_names().skip(1).collect();
    let named = names.iter().filter(|name| name.is_some()).count();
    match (named, names.len() - named) {
        (0, 0) => Ok(Shape::Whole),
        (0, _) => Ok(Shape::Unnamed),
        (_, 0) => Ok(Shape::Named),
        _ => Err(invalid(
            "pattern",
            "cannot mix both named and unnamed capture groups",
        )),
    }
}

/// The value of one match in the given shape (groups that did not take part are null).
fn match_value(regex: &Regex, shape: &Shape, captures: &Captures<'_>) -> Value {
    let text = |index: usize| {
        captures
            .get(index)
            .map_or(Value::Null, |m| Value::string(m.as_str()))
    };
    match shape {
        Shape::Whole => text(0),
        Shape::Unnamed => Value::List((1..captures.len()).map(text).collect()),
        Shape::Named => {
            let groups: BTreeMap<String, Value> = regex
                .capture_names()
                .enumerate()
                .filter_map(|(index, name)| name.map(|name| (name.to_owned(), text(index))))
                .collect();
            Value::Object(groups)
        }
    }
}

/// `regex(pattern, string)`: the first match — a string without groups, a list with unnamed
/// groups, an object with named groups; no match is an error.
pub(crate) fn regex(args: Vec<Value>) -> Result<Value, String> {
    let regex = compile(&expect_string(&args, 0, "pattern")?, "pattern")?;
    let text = expect_string(&args, 1, "string")?;
    let shape = shape(&regex)?;
    let captures = regex
        .captures(&text)
        .ok_or_else(|| "pattern did not match any part of the given string".to_owned())?;
    Ok(match_value(&regex, &shape, &captures))
}

/// `regexall(pattern, string)`: every non-overlapping match, shaped as by `regex`.
pub(crate) fn regexall(args: Vec<Value>) -> Result<Value, String> {
    let regex = compile(&expect_string(&args, 0, "pattern")?, "pattern")?;
    let text = expect_string(&args, 1, "string")?;
    let shape = shape(&regex)?;
    Ok(Value::List(
        regex
            .captures_iter(&text)
            .map(|captures| match_value(&regex, &shape, &captures))
            .collect(),
    ))
}

/// `regexreplace(string, pattern, replacement)`: every match replaced; the replacement may use
/// `$1` / `${1}` / `${name}` (and `$$` for a dollar sign).
pub(crate) fn regexreplace(args: Vec<Value>) -> Result<Value, String> {
    let text = expect_string(&args, 0, "string")?;
    let regex = compile(&expect_string(&args, 1, "pattern")?, "pattern")?;
    let replacement = expect_string(&args, 2, "replacement")?;
    replace_all(&regex, &text, &replacement).map(Value::String)
}

/// Replaces every match, expanding `$1` / `${name}` in the replacement; fails instead of
/// building a string larger than the library allows.
pub(crate) fn replace_all(regex: &Regex, text: &str, replacement: &str) -> Result<String, String> {
    let mut out = String::with_capacity(text.len());
    let mut last = 0;
    for captures in regex.captures_iter(text) {
        let Some(whole) = captures.get(0) else {
            continue;
        };
        out.push_str(text.get(last..whole.start()).unwrap_or_default());
        captures.expand(replacement, &mut out);
        last = whole.end();
        if out.len() > MAX_RESULT_BYTES {
            return Err("the resulting string would be too large".to_owned());
        }
    }
    out.push_str(text.get(last..).unwrap_or_default());
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{args, check_err, check_ok, v};

    #[test]
    fn regex() {
        check_ok(
            "regex",
            vec![
                (
                    args!["[a-z]+", "53453453.345345aaabbbccc23454"],
                    v!("aaabbbccc"),
                ),
                (
                    args!["(\\d\\d\\d\\d)-(\\d\\d)-(\\d\\d)", "2019-02-01"],
                    v!(["2019", "02", "01"]),
                ),
                (
                    args![
                        "^(?:(?P<scheme>[^:/?#]+):)?(?://(?P<authority>[^/?#]*))?",
                        "https://terraform.io/docs/"
                    ],
                    v!({"authority": "terraform.io", "scheme": "https"}),
                ),
                (args!["(a)|(b)", "b"], v!([null, "b"])),
                (args!["(?<word>\\w+)", "hi there"], v!({"word": "hi"})),
                (args!["x*", "abc"], v!("")),
            ],
        );
        check_err(
            "regex",
            vec![
                (
                    args!["[a-z]+", "53453453.34534523454"],
                    "pattern did not match any part of the given string",
                ),
                (
                    args!["(?P<a>x)(y)", "xy"],
                    "cannot mix both named and unnamed capture groups",
                ),
                (
                    args!["(", "x"],
                    "invalid value for \"pattern\": invalid regular expression \"(\": unclosed group",
                ),
            ],
        );
    }

    #[test]
    fn regexall() {
        check_ok(
            "regexall",
            vec![
                (args!["[a-z]+", "1234abcd5678efgh9"], v!(["abcd", "efgh"])),
                (args!["[a-z]+", "123456789"], v!([])),
                (
                    args!["(\\w)=(\\d)", "a=1 b=2"],
                    v!([["a", "1"], ["b", "2"]]),
                ),
                (
                    args!["(?P<k>\\w)=(?P<v>\\d)", "a=1 b=2"],
                    v!([{"k": "a", "v": "1"}, {"k": "b", "v": "2"}]),
                ),
            ],
        );
        check_err(
            "regexall",
            vec![(args!["[", "x"], "invalid regular expression")],
        );
    }

    #[test]
    fn regexreplace() {
        check_ok(
            "regexreplace",
            vec![
                (args!["hello world", "o", "0"], v!("hell0 w0rld")),
                (
                    args!["2019-02-01", "(\\d+)-(\\d+)-(\\d+)", "$3/$2/$1"],
                    v!("01/02/2019"),
                ),
                (
                    args!["key=value", "(?P<k>\\w+)=(?P<v>\\w+)", "${v}=${k}"],
                    v!("value=key"),
                ),
                (args!["a1b22", "\\d+", "<$0>"], v!("a<1>b<22>")),
                (args!["price", "price", "$$5"], v!("$5")),
                (args!["abc", "x", "y"], v!("abc")),
                (args!["baaac", "a*", "-"], v!("-b-c-")),
                (args!["a.b", ".", "$$"], v!("$$$")),
            ],
        );
        check_err(
            "regexreplace",
            vec![(args!["abc", "(", "y"], "invalid value for \"pattern\"")],
        );
    }
}
