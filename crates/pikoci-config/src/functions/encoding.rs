//! Encoding functions: `base64decode`, `base64encode`, `csvdecode`, `jsondecode`, `jsonencode`,
//! `urlencode`.

use std::collections::BTreeMap;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

use super::{arg, expect_string, invalid, json_text};
use crate::diagnostic::quoted;
use crate::value::Value;

/// `base64decode(str)`: decodes standard, padded Base64 holding UTF-8 text (line breaks in the
/// input are ignored, as Go does).
pub(crate) fn base64decode(args: Vec<Value>) -> Result<Value, String> {
    let text = expect_string(&args, 0, "str")?;
    let compact: String = text.chars().filter(|c| !matches!(c, '\r' | '\n')).collect();
    let bytes = STANDARD
        .decode(compact.as_bytes())
        .map_err(|error| invalid("str", format!("failed to decode base64 data: {error}")))?;
    String::from_utf8(bytes).map(Value::String).map_err(|_| {
        invalid(
            "str",
            "the result of decoding the provided string is not valid UTF-8",
        )
    })
}

/// `base64encode(str)`: the UTF-8 bytes of the string in standard, padded Base64.
pub(crate) fn base64encode(args: Vec<Value>) -> Result<Value, String> {
    let text = expect_string(&args, 0, "str")?;
    Ok(Value::String(STANDARD.encode(text.as_bytes())))
}

/// `csvdecode(str)`: RFC 4180 CSV to a list of objects keyed by the header row; every row must
/// have as many fields as the header, all values are strings.
pub(crate) fn csvdecode(args: Vec<Value>) -> Result<Value, String> {
    let text = expect_string(&args, 0, "str")?;
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(false)
        .from_reader(text.as_bytes());
    let mut records = reader.records();
    let headers = match records.next() {
        None => return Err(invalid("str", "missing header line")),
        Some(record) => record.map_err(|error| csv_error(&error))?,
    };
    let mut seen: Vec<&str> = Vec::new();
    for name in &headers {
        if seen.contains(&name) {
            return Err(invalid(
                "str",
                format!("duplicate column name {}", quoted(name)),
            ));
        }
        seen.push(name);
    }
    let mut rows = Vec::new();
    for record in records {
        let record = record.map_err(|error| csv_error(&error))?;
        let row: BTreeMap<String, Value> = headers
            .iter()
            .zip(record.iter())
            .map(|(name, field)| (name.to_owned(), Value::string(field)))
            .collect();
        rows.push(Value::Object(row));
    }
    Ok(Value::List(rows))
}

/// The message for a CSV syntax error.
fn csv_error(error: &csv::Error) -> String {
    let line = error.position().map(csv::Position::line);
    let problem = match error.kind() {
        csv::ErrorKind::UnequalLengths {
            expected_len, len, ..
        } => {
            format!("wrong number of fields (expected {expected_len}, got {len})")
        }
        csv::ErrorKind::Utf8 { .. } => "invalid UTF-8".to_owned(),
        _ => error.to_string().to_lowercase(),
    };
    match line {
        Some(line) => invalid("str", format!("csv parse error on line {line}: {problem}")),
        None => invalid("str", format!("csv parse error: {problem}")),
    }
}

/// `jsondecode(str)`: the value of a JSON text (arrays become lists, objects objects).
pub(crate) fn jsondecode(args: Vec<Value>) -> Result<Value, String> {
    let text = expect_string(&args, 0, "str")?;
    let json: serde_json::Value = serde_json::from_str(&text)
        .map_err(|error| invalid("str", format!("invalid JSON: {error}")))?;
    Ok(Value::from_json(&json))
}

/// `jsonencode(value)`: the compact JSON text of any value (sets become arrays).
pub(crate) fn jsonencode(args: Vec<Value>) -> Result<Value, String> {
    Ok(Value::String(json_text(arg(&args, 0))))
}

/// `urlencode(str)`: query escaping as Go's `url.QueryEscape` (letters, digits and `-_.~` kept,
/// space as `+`, every other byte as `%XX`).
pub(crate) fn urlencode(args: Vec<Value>) -> Result<Value, String> {
    let text = expect_string(&args, 0, "str")?;
    // A space is the only byte encoded as `%20`: it becomes `+`.
    Ok(Value::String(
        pikoci_core::percent::encode(&text).replace("%20", "+"),
    ))
}

#[cfg(test)]
mod tests {
    use super::super::test_support::{args, check_err, check_ok, set, v};
    use serde_json::json;

    #[test]
    fn base64() {
        check_ok(
            "base64encode",
            vec![
                (args!["Hello World"], v!("SGVsbG8gV29ybGQ=")),
                (args![""], v!("")),
                (args!["☃"], v!("4piD")),
            ],
        );
        check_ok(
            "base64decode",
            vec![
                (args!["SGVsbG8gV29ybGQ="], v!("Hello World")),
                (args!["SGVsbG8g\nV29ybGQ="], v!("Hello World")),
                (args![""], v!("")),
                (args!["4piD"], v!("☃")),
            ],
        );
        check_err(
            "base64decode",
            vec![
                (args!["SGVsbG8gV29ybGQ"], "failed to decode base64 data"),
                (args!["!!!!"], "failed to decode base64 data"),
                (args!["/w=="], "not valid UTF-8"),
            ],
        );
    }

    #[test]
    fn csvdecode() {
        check_ok(
            "csvdecode",
            vec![
                (
                    args!["a,b,c\n1,2,3\n4,5,6"],
                    v!([{"a": "1", "b": "2", "c": "3"}, {"a": "4", "b": "5", "c": "6"}]),
                ),
                (
                    args!["a,b\r\n\"x,y\",\"say \"\"hi\"\"\"\r\n"],
                    v!([{"a": "x,y", "b": "say \"hi\""}]),
                ),
                (args!["a,b\n"], v!([])),
                (args!["a\n\n1\n"], v!([{"a": "1"}])),
            ],
        );
        check_err(
            "csvdecode",
            vec![
                (args![""], "missing header line"),
                (
                    args!["a,b\n1,2,3"],
                    "csv parse error on line 2: wrong number of fields",
                ),
                (args!["a,a\n1,2"], "duplicate column name \"a\""),
            ],
        );
    }

    #[test]
    fn jsondecode() {
        check_ok(
            "jsondecode",
            vec![
                (args!["{\"hello\": \"world\"}"], v!({"hello": "world"})),
                (args!["true"], v!(true)),
                (args!["[1, 2.5, null, \"x\"]"], v!([1, 2.5, null, "x"])),
                (args!["\"text\""], v!("text")),
            ],
        );
        check_err(
            "jsondecode",
            vec![
                (args![""], "invalid JSON"),
                (args!["{"], "invalid JSON"),
                (args!["[1] 2"], "invalid JSON"),
            ],
        );
    }

    #[test]
    fn jsonencode() {
        check_ok(
            "jsonencode",
            vec![
                (args![{"hello": "world"}], v!("{\"hello\":\"world\"}")),
                (args![[1, 2.5, true, null]], v!("[1,2.5,true,null]")),
                (args!["a<b"], v!("\"a\\u003cb\"")),
                (args![null], v!("null")),
                (args![{"b": 1, "a": [{}]}], v!("{\"a\":[{}],\"b\":1}")),
                (vec![set(json!(["b", "a"]))], v!("[\"a\",\"b\"]")),
            ],
        );
    }

    #[test]
    fn urlencode() {
        check_ok(
            "urlencode",
            vec![
                (args!["Hello World!"], v!("Hello+World%21")),
                (args!["☃"], v!("%E2%98%83")),
                (
                    args!["foo:bar@localhost?foo=bar&bar=baz"],
                    v!("foo%3Abar%40localhost%3Ffoo%3Dbar%26bar%3Dbaz"),
                ),
                (args!["a-b_c.d~e/f"], v!("a-b_c.d~e%2Ff")),
                (args![""], v!("")),
            ],
        );
    }
}
