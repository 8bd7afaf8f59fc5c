//! `format` and `formatlist`: printf-style formatting with Terraform's verbs (`%v %#v %t %b %d
//! %o %x %X %e %E %f %g %G %s %q %%`), flags (`space + - 0 #`), width, precision and explicit
//! argument indexes (`%[2]s`).

use std::iter::Peekable;
use std::str::CharIndices;

use super::{MAX_RESULT_BYTES, expect_string, json_text, parse_number};
use crate::value::{Value, format_number};

mod number;

/// The largest width or precision a verb may ask for.
const MAX_FIELD: usize = 100_000;

/// `format(spec, values...)`: the values formatted by the spec.
pub(crate) fn format(args: Vec<Value>) -> Result<Value, String> {
    let spec = expect_string(&args, 0, "format")?;
    let values = args.get(1..).unwrap_or_default();
    Ok(Value::String(render(&spec, values)?))
}

/// `formatlist(spec, values...)`: `format` applied element-wise; list and set arguments (which
/// must have the same length) are iterated, other arguments repeat.
pub(crate) fn formatlist(args: Vec<Value>) -> Result<Value, String> {
    let spec = expect_string(&args, 0, "format")?;
    let values = args.get(1..).unwrap_or_default();
    let mut length: Option<(usize, usize)> = None;
    for (i, value) in values.iter().enumerate() {
        if let Value::List(items) | Value::Set(items) = value {
            match length {
                None => length = Some((items.len(), i + 1)),
                Some((expected, first)) if expected != items.len() => {
                    return Err(format!(
                        "argument {} has length {}, which is inconsistent with argument {first} of \
                         length {expected}",
                        i + 1,
                        items.len()
                    ));
                }
                Some(_) => {}
            }
        }
    }
    let iterations = length.map_or(1, |(len, _)| len);
    let mut results = Vec::with_capacity(iterations);
    let mut total: usize = 0;
    for iteration in 0..iterations {
        let row: Vec<Value> = values
            .iter()
            .map(|value| match value {
                Value::List(items) | Value::Set(items) => {
                    items.get(iteration).cloned().unwrap_or(Value::Null)
                }
                other => other.clone(),
            })
            .collect();
        let text = render(&spec, &row)
            .map_err(|message| format!("error on format iteration {iteration}: {message}"))?;
        total = total.saturating_add(text.len());
        if total > MAX_RESULT_BYTES {
            return Err("the formatted strings would be too large".to_owned());
        }
        results.push(Value::String(text));
    }
    Ok(Value::List(results))
}

/// One `%…` sequence of a format spec.
#[derive(Debug, Default)]
struct Verb<'a> {
    /// The sequence as written, e.g. `%-5d`.
    raw: &'a str,
    /// Byte offset of the `%` in the spec.
    offset: usize,
    /// One-based index of the value it formats.
    arg: usize,
    /// The verb letter.
    mode: char,
    /// `#`: JSON for `%v`, base prefix for integers.
    sharp: bool,
    /// `0`: pad with zeros.
    zero: bool,
    /// `-`: pad on the right.
    minus: bool,
    /// `+`: always print a sign.
    plus: bool,
    /// ` `: a space where a plus sign would be.
    space: bool,
    /// Minimum width in characters.
    width: Option<usize>,
    /// Precision (digits for numbers, characters for strings).
    precision: Option<usize>,
}

impl Verb<'_> {
    /// The message for a value this verb cannot format.
    fn unsupported(&self, problem: &str) -> String {
        format!(
            "unsupported value for \"{}\" at {}: {problem}",
            self.raw, self.offset
        )
    }
}

/// Formats the values by the spec.
fn render(spec: &str, values: &[Value]) -> Result<String, String> {
    let mut out = String::new();
    let mut chars = spec.char_indices().peekable();
    let mut next_arg = 1;
    let mut used = 0;
    while let Some((start, c)) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        if chars.next_if(|&(_, c)| c == '%').is_some() {
            out.push('%');
            continue;
        }
        let mut verb = Verb {
            offset: start,
            arg: next_arg,
            ..Verb::default()
        };
        while let Some((_, flag)) =
            chars.next_if(|&(_, c)| matches!(c, '0' | '#' | '-' | '+' | ' '))
        {
            match flag {
                '0' => verb.zero = true,
                '#' => verb.sharp = true,
                '-' => verb.minus = true,
                '+' => verb.plus = true,
                _ => verb.space = true,
            }
        }
        if chars.next_if(|&(_, c)| c == '[').is_some() {
            verb.arg = read_number(&mut chars, start, true)?;
            match chars.next() {
                Some((_, ']')) => {}
                Some((at, other)) => return Err(unrecognized(other, at)),
                None => return Err(unterminated(start)),
            }
        }
        if chars.peek().is_some_and(|&(_, c)| c.is_ascii_digit()) {
            verb.width = Some(read_number(&mut chars, start, true)?);
        }
        if chars.next_if(|&(_, c)| c == '.').is_some() {
            verb.precision = Some(read_number(&mut chars, start, false)?);
        }
        let Some((at, mode)) = chars.next() else {
            return Err(unterminated(start));
        };
        if !mode.is_ascii_alphabetic() {
            return Err(unrecognized(mode, at));
        }
        verb.mode = mode;
        verb.raw = spec.get(start..=at).unwrap_or_default();
        append(&verb, &mut out, values)?;
        used = used.max(verb.arg);
        next_arg = verb.arg.saturating_add(1);
        if out.len() > MAX_RESULT_BYTES {
            return Err("the formatted string would be too large".to_owned());
        }
    }
    if values.len() > used {
        return Err(if used == 0 {
            "too many arguments; no verbs in format string".to_owned()
        } else {
            format!("too many arguments; only {used} used by format string")
        });
    }
    Ok(out)
}

/// Reads a decimal number of a verb (argument index, width, precision).
fn read_number(
    chars: &mut Peekable<CharIndices<'_>>,
    start: usize,
    required: bool,
) -> Result<usize, String> {
    let mut value: usize = 0;
    let mut digits = 0;
    while let Some((at, c)) = chars.next_if(|&(_, c)| c.is_ascii_digit()) {
        let digit = c.to_digit(10).unwrap_or(0) as usize;
        if required && digits == 0 && digit == 0 {
            return Err(unrecognized(c, at));
        }
        value = value.saturating_mul(10).saturating_add(digit);
        digits += 1;
    }
    if required && digits == 0 {
        return Err(match chars.peek() {
            Some(&(at, c)) => unrecognized(c, at),
            None => unterminated(start),
        });
    }
    if value > MAX_FIELD {
        return Err(format!(
            "number {value} in the format sequence at offset {start} is too large"
        ));
    }
    Ok(value)
}

/// The message for an unexpected character inside a verb.
fn unrecognized(c: char, at: usize) -> String {
    format!("unrecognized format character {c:?} at offset {at}")
}

/// The message for a spec ending inside a verb.
fn unterminated(start: usize) -> String {
    format!("invalid format string starting at offset {start}")
}

/// Formats one value by its verb.
fn append(verb: &Verb<'_>, out: &mut String, values: &[Value]) -> Result<(), String> {
    let Some(value) = verb.arg.checked_sub(1).and_then(|i| values.get(i)) else {
        return Err(format!(
            "not enough arguments for \"{}\" at {}: need index {} but have {} total",
            verb.raw,
            verb.offset,
            verb.arg,
            values.len()
        ));
    };
    if verb.mode != 'v' && *value == Value::Null {
        return Err(verb.unsupported("null value cannot be formatted"));
    }
    match verb.mode {
        'v' => out.push_str(&pad(verb, &as_is(verb, value))),
        't' => out.push_str(bool_text(verb, value)?),
        'b' | 'd' | 'o' | 'x' | 'X' => {
            out.push_str(&number::integer(verb, to_number(verb, value)?)?)
        }
        'e' | 'E' | 'f' | 'g' | 'G' => out.push_str(&number::float(verb, to_number(verb, value)?)),
        's' | 'q' => {
            let text = value
                .to_template_string()
                .ok_or_else(|| verb.unsupported("string required"))?;
            let text: String = match verb.precision {
                Some(precision) if precision > 0 => text.chars().take(precision).collect(),
                _ => text,
            };
            let text = if verb.mode == 'q' {
                json_text(&Value::String(text))
            } else {
                text
            };
            out.push_str(&pad(verb, &text));
        }
        other => {
            return Err(format!(
                "unsupported format verb {other:?} in \"{}\" at offset {}",
                verb.raw, verb.offset
            ));
        }
    }
    Ok(())
}

/// `%v`: strings as they are, numbers as in templates, anything else (or `%#v`) as JSON.
fn as_is(verb: &Verb<'_>, value: &Value) -> String {
    match value {
        Value::String(text) if !verb.sharp => text.clone(),
        Value::Number(number) if !verb.sharp => format_number(*number),
        other => json_text(other),
    }
}

/// `%t`: a bool, or a string holding one.
fn bool_text(verb: &Verb<'_>, value: &Value) -> Result<&'static str, String> {
    match value {
        Value::Bool(true) => Ok("true"),
        Value::Bool(false) => Ok("false"),
        Value::String(text) if text == "true" => Ok("true"),
        Value::String(text) if text == "false" => Ok("false"),
        _ => Err(verb.unsupported("bool required")),
    }
}

/// The number a numeric verb formats (numeric strings convert).
fn to_number(verb: &Verb<'_>, value: &Value) -> Result<f64, String> {
    match value {
        Value::Number(number) => Ok(*number),
        Value::String(text) => {
            parse_number(text).ok_or_else(|| verb.unsupported("a number is required"))
        }
        _ => Err(verb.unsupported("number required")),
    }
}

/// Pads to the verb's width with spaces (or zeros), on the left unless `-`.
fn pad(verb: &Verb<'_>, text: &str) -> String {
    let length = text.chars().count();
    match verb.width {
        Some(width) if width > length => {
            let fill = (if verb.zero { "0" } else { " " }).repeat(width - length);
            if verb.minus {
                format!("{text}{fill}")
            } else {
                format!("{fill}{text}")
            }
        }
        _ => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{args, check_err, check_ok, set, v};
    use serde_json::json;

    #[test]
    fn format_basics() {
        check_ok(
            "format",
            vec![
                (args![""], v!("")),
                (args!["Hello, %s!", "Ander"], v!("Hello, Ander!")),
                (args!["There are %d lights", 4], v!("There are 4 lights")),
                (args!["100%% successful"], v!("100% successful")),
                (args!["%%%v", false], v!("%false")),
                (args!["string %[2]v", true, "hello"], v!("string hello")),
                (args!["%[2]s %[1]s", "a", "b"], v!("b a")),
                (args!["%[2]s %s", "a", "b", "c"], v!("b c")),
            ],
        );
    }

    #[test]
    fn format_values() {
        check_ok(
            "format",
            vec![
                (args!["%v", 2], v!("2")),
                (args!["%v", 1.5], v!("1.5")),
                (args!["%v", null], v!("null")),
                (args!["%v", {}], v!("{}")),
                (args!["%v", [true]], v!("[true]")),
                (args!["%#v", "hello"], v!("\"hello\"")),
                (args!["%#v", 1], v!("1")),
                (args!["%#v", {"a": 1}], v!("{\"a\":1}")),
                (args!["%#v", "<&>"], v!("\"\\u003c\\u0026\\u003e\"")),
                (vec![v!("%v"), set(json!(["b", "a"]))], v!("[\"a\",\"b\"]")),
                (args!["%5v|%-5v|", "ab", 1], v!("   ab|1    |")),
            ],
        );
    }

    #[test]
    fn format_strings() {
        check_ok(
            "format",
            vec![
                (
                    args!["Hello, %q... if that _is_ your real name!", "Ermintrude"],
                    v!("Hello, \"Ermintrude\"... if that _is_ your real name!"),
                ),
                (
                    args!["This statement is %s", false],
                    v!("This statement is false"),
                ),
                (
                    args!["This statement is %q", false],
                    v!("This statement is \"false\""),
                ),
                (args!["%10s", "hello"], v!("     hello")),
                (args!["%-10s", "hello"], v!("hello     ")),
                (args!["%05s", "ab"], v!("000ab")),
                (args!["%.2s", "hello"], v!("he")),
                (args!["%.2q", "hello"], v!("\"he\"")),
                (args!["%.5s", "日本語日本語"], v!("日本語日本")),
                (args!["%4.2s", "hello"], v!("  he")),
                (args!["%-4.2s", "hello"], v!("he  ")),
                (args!["%.0s", "hello"], v!("hello")),
                (args!["%q", "Hello\nWorld"], v!("\"Hello\\nWorld\"")),
                (args!["%s", 1.5], v!("1.5")),
            ],
        );
    }

    #[test]
    fn format_errors() {
        check_err(
            "format",
            vec![
                (
                    args!["%s"],
                    "not enough arguments for \"%s\" at 0: need index 1 but have 0 total",
                ),
                (
                    args!["%[3]s", true, true],
                    "not enough arguments for \"%[3]s\" at 0: need index 3 but have 2 total",
                ),
                (
                    args!["%[0]s", true],
                    "unrecognized format character '0' at offset 2",
                ),
                (
                    args!["%v %v %v", true, true],
                    "not enough arguments for \"%v\" at 6: need index 3 but have 2 total",
                ),
                (
                    args!["%z", 10],
                    "unsupported format verb 'z' in \"%z\" at offset 0",
                ),
                (
                    args!["%012z", 10],
                    "unsupported format verb 'z' in \"%012z\" at offset 0",
                ),
                (
                    args!["%☠", 10],
                    "unrecognized format character '☠' at offset 1",
                ),
                (
                    args!["abc %", 10],
                    "invalid format string starting at offset 4",
                ),
                (
                    args!["%s", null],
                    "unsupported value for \"%s\" at 0: null value cannot be formatted",
                ),
                (
                    args!["%d", true],
                    "unsupported value for \"%d\" at 0: number required",
                ),
                (
                    args!["%d", 1.5],
                    "unsupported value for \"%d\" at 0: an integer is required",
                ),
                (args!["%d", "x"], "a number is required"),
                (args!["%t", 1], "bool required"),
                (
                    args!["%s", {}],
                    "unsupported value for \"%s\" at 0: string required",
                ),
                (
                    args!["no verbs", 10],
                    "too many arguments; no verbs in format string",
                ),
                (
                    args!["only one verb %d", 10, 11],
                    "too many arguments; only 1 used by format string",
                ),
                (args!["%999999999d", 1], "is too large"),
                (args![null], "argument must not be null"),
            ],
        );
    }

    #[test]
    fn formatlist() {
        check_ok(
            "formatlist",
            vec![
                (args!["hello"], v!(["hello"])),
                (
                    args!["Hello, %s!", ["Valentina", "Ander"]],
                    v!(["Hello, Valentina!", "Hello, Ander!"]),
                ),
                (
                    args!["%s, %s!", "Salutations", ["Valentina", "Ander"]],
                    v!(["Salutations, Valentina!", "Salutations, Ander!"]),
                ),
                (
                    args!["%s %s", ["hello", "goodbye"], ["world", "universe"]],
                    v!(["hello world", "goodbye universe"]),
                ),
                (args!["%v", []], v!([])),
                (args!["%s=%d", "a", 1], v!(["a=1"])),
                (vec![v!("%s"), set(json!(["b", "a"]))], v!(["a", "b"])),
            ],
        );
        check_err(
            "formatlist",
            vec![
                (
                    args!["%s %s", ["hello", "goodbye"], ["world"]],
                    "argument 2 has length 1, which is inconsistent with argument 1 of length 2",
                ),
                (
                    args!["%s", [{}]],
                    "error on format iteration 0: unsupported value for \"%s\" at 0: string required",
                ),
            ],
        );
    }
}
