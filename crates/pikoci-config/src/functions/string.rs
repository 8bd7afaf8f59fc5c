//! String functions: `chomp`, `endswith`, `indent`, `join`, `lower`, `replace`, `split`,
//! `startswith`, `strcontains`, `strlen`, `strrev`, `substr`, `title`, `trim`, `trimprefix`,
//! `trimsuffix`, `trimspace`, `upper`. Lengths and offsets count Unicode characters.

use super::{MAX_RESULT_BYTES, expect_integer, expect_sequence, expect_string, invalid, pattern};
use crate::value::Value;

/// `chomp(str)`: removes every newline (`\n`, `\r\n`, `\r`) at the end of the string.
pub(crate) fn chomp(args: Vec<Value>) -> Result<Value, String> {
    let text = expect_string(&args, 0, "str")?;
    Ok(Value::string(text.trim_end_matches(['\r', '\n'])))
}

/// `endswith(str, suffix)`: whether the string ends with the suffix.
pub(crate) fn endswith(args: Vec<Value>) -> Result<Value, String> {
    let text = expect_string(&args, 0, "str")?;
    let suffix = expect_string(&args, 1, "suffix")?;
    Ok(Value::Bool(text.ends_with(&suffix)))
}

/// `startswith(str, prefix)`: whether the string starts with the prefix.
pub(crate) fn startswith(args: Vec<Value>) -> Result<Value, String> {
    let text = expect_string(&args, 0, "str")?;
    let prefix = expect_string(&args, 1, "prefix")?;
    Ok(Value::Bool(text.starts_with(&prefix)))
}

/// `strcontains(str, substr)`: whether the string contains the substring.
pub(crate) fn strcontains(args: Vec<Value>) -> Result<Value, String> {
    let text = expect_string(&args, 0, "str")?;
    let needle = expect_string(&args, 1, "substr")?;
    Ok(Value::Bool(text.contains(&needle)))
}

/// `indent(spaces, str)`: adds `spaces` spaces at the start of every line but the first.
pub(crate) fn indent(args: Vec<Value>) -> Result<Value, String> {
    let spaces = expect_integer(&args, 0, "spaces")?;
    let text = expect_string(&args, 1, "str")?;
    let spaces = usize::try_from(spaces).map_err(|_| invalid("spaces", "must not be negative"))?;
    let lines = text.matches('\n').count();
    if lines == 0 {
        return Ok(Value::String(text));
    }
    if spaces.saturating_mul(lines).saturating_add(text.len()) > MAX_RESULT_BYTES {
        return Err(invalid("spaces", "the indented string would be too large"));
    }
    let replacement = format!("\n{}", " ".repeat(spaces));
    Ok(Value::String(text.replace('\n', &replacement)))
}

/// `join(separator, list...)`: the elements of one or more lists, separated.
pub(crate) fn join(args: Vec<Value>) -> Result<Value, String> {
    let separator = expect_string(&args, 0, "separator")?;
    let lists = args.len().saturating_sub(1);
    let mut parts = Vec::new();
    for list_index in 1..args.len() {
        let items = expect_sequence(&args, list_index, "lists")?;
        for (element, item) in items.iter().enumerate() {
            let whose = if lists > 1 {
                format!("element {element} of list {list_index}")
            } else {
                format!("element {element}")
            };
            match item {
                Value::Null => {
                    return Err(invalid(
                        "lists",
                        format!("{whose} is null; cannot concatenate null values"),
                    ));
                }
                other => parts.push(other.to_template_string().ok_or_else(|| {
                    invalid(
                        "lists",
                        format!(
                            "{whose} is a {}; only strings can be joined",
                            other.type_name()
                        ),
                    )
                })?),
            }
        }
    }
    Ok(Value::String(parts.join(&separator)))
}

/// `lower(str)`: the string in lowercase.
pub(crate) fn lower(args: Vec<Value>) -> Result<Value, String> {
    Ok(Value::String(
        expect_string(&args, 0, "str")?.to_lowercase(),
    ))
}

/// `upper(str)`: the string in uppercase.
pub(crate) fn upper(args: Vec<Value>) -> Result<Value, String> {
    Ok(Value::String(
        expect_string(&args, 0, "str")?.to_uppercase(),
    ))
}

/// `replace(str, substr, replacement)`: replaces every occurrence; a `substr` wrapped in slashes
/// (`/a+/`) is a regular expression and the replacement may then use `$1` / `${name}`.
pub(crate) fn replace(args: Vec<Value>) -> Result<Value, String> {
    let text = expect_string(&args, 0, "str")?;
    let needle = expect_string(&args, 1, "substr")?;
    let replacement = expect_string(&args, 2, "replace")?;
    let regex_source = (needle.len() > 1)
        .then(|| {
            needle
                .strip_prefix('/')
                .and_then(|rest| rest.strip_suffix('/'))
        })
        .flatten();
    match regex_source {
        Some(source) => {
            let regex = pattern::compile(source, "substr")?;
            pattern::replace_all(&regex, &text, &replacement).map(Value::String)
        }
        None => {
            // An empty needle matches between all characters and at both ends.
            let matches = if needle.is_empty() {
                text.chars().count() + 1
            } else {
                text.matches(needle.as_str()).count()
            };
            if matches
                .saturating_mul(replacement.len())
                .saturating_add(text.len())
                > MAX_RESULT_BYTES
            {
                return Err(invalid(
                    "replace",
                    "the resulting string would be too large",
                ));
            }
            Ok(Value::String(text.replace(&needle, &replacement)))
        }
    }
}

/// `split(separator, str)`: the parts between separators (an empty separator splits into
/// characters).
pub(crate) fn split(args: Vec<Value>) -> Result<Value, String> {
    let separator = expect_string(&args, 0, "separator")?;
    let text = expect_string(&args, 1, "str")?;
    let parts = if separator.is_empty() {
        text.chars().map(|c| Value::String(c.to_string())).collect()
    } else {
        text.split(separator.as_str()).map(Value::string).collect()
    };
    Ok(Value::List(parts))
}

/// `strlen(str)`: the number of Unicode characters.
pub(crate) fn strlen(args: Vec<Value>) -> Result<Value, String> {
    let text = expect_string(&args, 0, "str")?;
    Ok(Value::Number(text.chars().count() as f64))
}

/// `strrev(str)`: the characters in reverse order.
pub(crate) fn strrev(args: Vec<Value>) -> Result<Value, String> {
    let text = expect_string(&args, 0, "str")?;
    Ok(Value::String(text.chars().rev().collect()))
}

/// `substr(str, offset, length)`: `length` characters from `offset`; a negative offset counts
/// from the end, a negative length takes the rest of the string.
pub(crate) fn substr(args: Vec<Value>) -> Result<Value, String> {
    let text = expect_string(&args, 0, "str")?;
    let offset = expect_integer(&args, 1, "offset")?;
    let length = expect_integer(&args, 2, "length")?;
    let total = text.chars().count() as i64;
    let start = if offset < 0 {
        (offset + total).max(0)
    } else {
        offset
    };
    let end = if length < 0 {
        total
    } else {
        start.saturating_add(length).min(total)
    };
    let take = usize::try_from(end - start).unwrap_or(0);
    let skip = usize::try_from(start).unwrap_or(usize::MAX);
    Ok(Value::String(text.chars().skip(skip).take(take).collect()))
}

/// `title(str)`: the first letter of every word in uppercase (words as Go's `strings.Title`
/// sees them: separated by spaces and ASCII punctuation).
pub(crate) fn title(args: Vec<Value>) -> Result<Value, String> {
    let text = expect_string(&args, 0, "str")?;
    let mut out = String::with_capacity(text.len());
    let mut previous = ' ';
    for c in text.chars() {
        if is_word_separator(previous) {
            let mut upper = c.to_uppercase();
            match (upper.next(), upper.next()) {
                (Some(single), None) => out.push(single),
                _ => out.push(c),
            }
        } else {
            out.push(c);
        }
        previous = c;
    }
    Ok(Value::String(out))
}

/// Whether a character separates words for `title`.
fn is_word_separator(c: char) -> bool {
    if c.is_ascii() {
        !(c.is_ascii_alphanumeric() || c == '_')
    } else {
        c.is_whitespace()
    }
}

/// `trim(str, cutset)`: removes the characters of `cutset` from both ends.
pub(crate) fn trim(args: Vec<Value>) -> Result<Value, String> {
    let text = expect_string(&args, 0, "str")?;
    let cutset = expect_string(&args, 1, "cutset")?;
    Ok(Value::string(text.trim_matches(|c| cutset.contains(c))))
}

/// `trimprefix(str, prefix)`: removes the prefix once, if present.
pub(crate) fn trimprefix(args: Vec<Value>) -> Result<Value, String> {
    let text = expect_string(&args, 0, "str")?;
    let prefix = expect_string(&args, 1, "prefix")?;
    Ok(Value::string(
        text.strip_prefix(prefix.as_str()).unwrap_or(&text),
    ))
}

/// `trimsuffix(str, suffix)`: removes the suffix once, if present.
pub(crate) fn trimsuffix(args: Vec<Value>) -> Result<Value, String> {
    let text = expect_string(&args, 0, "str")?;
    let suffix = expect_string(&args, 1, "suffix")?;
    Ok(Value::string(
        text.strip_suffix(suffix.as_str()).unwrap_or(&text),
    ))
}

/// `trimspace(str)`: removes Unicode whitespace from both ends.
pub(crate) fn trimspace(args: Vec<Value>) -> Result<Value, String> {
    Ok(Value::string(expect_string(&args, 0, "str")?.trim()))
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{args, check_err, check_ok, v};

    #[test]
    fn chomp() {
        check_ok(
            "chomp",
            vec![
                (args!["hello\n"], v!("hello")),
                (args!["hello\r\n"], v!("hello")),
                (args!["hello\n\n"], v!("hello")),
                (args!["hello\n\r\n\r"], v!("hello")),
                (args!["hel\nlo"], v!("hel\nlo")),
                (args![""], v!("")),
            ],
        );
    }

    #[test]
    fn startswith_endswith_strcontains() {
        check_ok(
            "startswith",
            vec![
                (args!["hello world", "hello"], v!(true)),
                (args!["hello world", "world"], v!(false)),
                (args!["x", ""], v!(true)),
            ],
        );
        check_ok(
            "endswith",
            vec![
                (args!["hello world", "world"], v!(true)),
                (args!["hello world", "hello"], v!(false)),
            ],
        );
        check_ok(
            "strcontains",
            vec![
                (args!["hello world", "wor"], v!(true)),
                (args!["hello world", "wod"], v!(false)),
            ],
        );
        check_err(
            "startswith",
            vec![(args![null, "a"], "\"str\": argument must not be null")],
        );
    }

    #[test]
    fn indent() {
        check_ok(
            "indent",
            vec![
                (
                    args![2, "[\n  foo,\n  bar,\n]\n"],
                    v!("[\n    foo,\n    bar,\n  ]\n  "),
                ),
                (args![4, "single"], v!("single")),
                (args![0, "a\nb"], v!("a\nb")),
                (
                    args![9_007_199_254_740_992_i64, "no newline"],
                    v!("no newline"),
                ),
            ],
        );
        check_err(
            "indent",
            vec![
                (args![(-1), "a\nb"], "\"spaces\": must not be negative"),
                (args![1.5, "a"], "must be a whole number"),
                (args![100_000_000, "a\nb\nc"], "would be too large"),
            ],
        );
    }

    #[test]
    fn join() {
        check_ok(
            "join",
            vec![
                (args![", ", ["foo", "bar", "baz"]], v!("foo, bar, baz")),
                (args![", ", ["foo"]], v!("foo")),
                (args!["-", []], v!("")),
                (args!["-", ["a"], ["b", "c"]], v!("a-b-c")),
                (args!["+", [1, true]], v!("1+true")),
            ],
        );
        check_err(
            "join",
            vec![
                (
                    args![",", ["a", null]],
                    "element 1 is null; cannot concatenate null values",
                ),
                (args![",", ["a"], [null]], "element 0 of list 2 is null"),
                (args![",", [["a"]]], "element 0 is a list"),
                (args![",", "a"], "list or set required, got string"),
                (args![","], "expected at least 2 arguments, got 1"),
            ],
        );
    }

    #[test]
    fn lower_upper() {
        check_ok(
            "lower",
            vec![(args!["HELLO"], v!("hello")), (args!["АЛЛО!"], v!("алло!"))],
        );
        check_ok(
            "upper",
            vec![(args!["hello"], v!("HELLO")), (args!["алло!"], v!("АЛЛО!"))],
        );
    }

    #[test]
    fn replace() {
        check_ok(
            "replace",
            vec![
                (args!["1 + 2 + 3", "+", "-"], v!("1 - 2 - 3")),
                (
                    args!["hello world", "/w.*d/", "everybody"],
                    v!("hello everybody"),
                ),
                (args!["hello world", "/(w)(o)/", "$2$1"], v!("hello owrld")),
                (args!["a/b", "/", "|"], v!("a|b")),
                (args!["abc", "", "-"], v!("-a-b-c-")),
                (args!["aaa", "/a/", "b"], v!("bbb")),
            ],
        );
        check_err(
            "replace",
            vec![(
                args!["x", "/(/", "y"],
                "invalid value for \"substr\": invalid regular expression",
            )],
        );
        let long = "x".repeat(10_000);
        check_err(
            "replace",
            vec![
                (
                    args![long, "", long],
                    "the resulting string would be too large",
                ),
                (
                    args![long, "/x/", long],
                    "the resulting string would be too large",
                ),
            ],
        );
    }

    #[test]
    fn split() {
        check_ok(
            "split",
            vec![
                (args![",", "foo"], v!(["foo"])),
                (args![",", "foo,bar,baz"], v!(["foo", "bar", "baz"])),
                (args![",", ""], v!([""])),
                (args![",", ",a,"], v!(["", "a", ""])),
                (args!["", "añb"], v!(["a", "ñ", "b"])),
                (args!["", ""], v!([])),
            ],
        );
    }

    #[test]
    fn strlen_strrev() {
        check_ok(
            "strlen",
            vec![
                (args!["hello"], v!(5)),
                (args![""], v!(0)),
                (args!["🤔🤷"], v!(2)),
            ],
        );
        check_ok(
            "strrev",
            vec![
                (args!["hello"], v!("olleh")),
                (args!["a ☃"], v!("☃ a")),
                (args![""], v!("")),
            ],
        );
    }

    #[test]
    fn substr() {
        check_ok(
            "substr",
            vec![
                (args!["hello world", 1, 4], v!("ello")),
                (args!["🤔🤷", 0, 1], v!("🤔")),
                (args!["hello world", (-5), (-1)], v!("world")),
                (args!["hello world", 6, 10], v!("world")),
                (args!["hello", 0, 0], v!("")),
                (args!["hello", 10, 2], v!("")),
                (args!["hello", (-10), 2], v!("he")),
                (args!["hello", 2, (-3)], v!("llo")),
            ],
        );
        check_err(
            "substr",
            vec![(args!["hello", "x", 1], "\"offset\": a number is required")],
        );
    }

    #[test]
    fn title() {
        check_ok(
            "title",
            vec![
                (args!["hello world"], v!("Hello World")),
                (args!["hello-world foo_bar"], v!("Hello-World Foo_bar")),
                (args!["élan vital"], v!("Élan Vital")),
                (args![""], v!("")),
            ],
        );
    }

    #[test]
    fn trims() {
        check_ok(
            "trim",
            vec![
                (args!["?!hello?!", "!?"], v!("hello")),
                (args!["foobar", "far"], v!("oob")),
                (args!["   hello! world.!  ", "! "], v!("hello! world.")),
                (args!["abc", ""], v!("abc")),
            ],
        );
        check_ok(
            "trimprefix",
            vec![
                (args!["helloworld", "hello"], v!("world")),
                (args!["helloworld", "cat"], v!("helloworld")),
                (args!["aaa", "a"], v!("aa")),
            ],
        );
        check_ok(
            "trimsuffix",
            vec![
                (args!["helloworld", "world"], v!("hello")),
                (args!["helloworld", "cat"], v!("helloworld")),
            ],
        );
        check_ok(
            "trimspace",
            vec![
                (args!["  hello\n\n"], v!("hello")),
                (args!["\t a b \u{a0}"], v!("a b")),
                (args![""], v!("")),
            ],
        );
    }
}
