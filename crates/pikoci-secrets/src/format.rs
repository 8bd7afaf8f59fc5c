//! Output formats of secret data (spec 15.4): `json`, `yaml`, `env`, `raw`, and the default
//! (the last line is a JSON object). Parse errors never quote the text: it holds secrets.

use std::path::Path;

use pikoci_core::ErrorKind;
use pikoci_core::secrets::{SecretError, SecretValue, SecretValues};

/// How secret data is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// The last non-empty line is a JSON object (what a `get` command prints by default).
    LastLineJson,
    /// The whole text is a JSON object.
    Json,
    /// The whole text is a YAML mapping.
    Yaml,
    /// `KEY=VALUE` lines.
    Env,
    /// The whole text is the value of the key `content`.
    Raw,
}

impl Format {
    /// Parses a `format` setting: `json`, `yaml` (or `yml`), `env` or `raw`.
    pub fn parse(name: &str) -> Result<Format, SecretError> {
        match name.trim().to_ascii_lowercase().as_str() {
            "json" => Ok(Format::Json),
            "yaml" | "yml" => Ok(Format::Yaml),
            "env" => Ok(Format::Env),
            "raw" => Ok(Format::Raw),
            other => Err(SecretError::new(
                ErrorKind::InvalidInput,
                format!("unknown format \"{other}\": use json, yaml, env or raw"),
            )),
        }
    }

    /// The format a path's extension implies: `.json`, `.env`, `.yml`/`.yaml`, otherwise raw.
    pub fn from_extension(path: &str) -> Format {
        let extension = Path::new(path)
            .extension()
            .map(|e| e.to_string_lossy().to_ascii_lowercase());
        match extension.as_deref() {
            Some("json") => Format::Json,
            Some("env") => Format::Env,
            Some("yml" | "yaml") => Format::Yaml,
            _ => Format::Raw,
        }
    }

    /// The format of a secret type: its `format` setting, else the extension of its configured
    /// `path`, else `default`.
    pub fn select(
        format: Option<&str>,
        config_path: Option<&str>,
        default: Format,
    ) -> Result<Format, SecretError> {
        match (format, config_path) {
            (Some(format), _) if !format.trim().is_empty() => Format::parse(format),
            (_, Some(path)) if !path.trim().is_empty() => Ok(Format::from_extension(path)),
            _ => Ok(default),
        }
    }

    /// Reads `text` into values by key. `source` names the secret type for error messages.
    pub fn parse_values(self, text: &str, source: &str) -> Result<SecretValues, SecretError> {
        match self {
            Format::LastLineJson => {
                let line = text.lines().rev().find(|l| !l.trim().is_empty());
                match line {
                    Some(line) => json(line, source),
                    None => Err(SecretError::new(
                        ErrorKind::Internal,
                        format!(
                            "secret type \"{source}\" printed nothing: its last line must be a JSON object"
                        ),
                    )),
                }
            }
            Format::Json => json(text, source),
            Format::Yaml => yaml(text, source),
            Format::Env => Ok(env(text)),
            Format::Raw => {
                let content = text
                    .strip_suffix("\r\n")
                    .or_else(|| text.strip_suffix('\n'))
                    .unwrap_or(text);
                Ok(SecretValues::from([(
                    "content".to_owned(),
                    SecretValue::secret(content),
                )]))
            }
        }
    }
}

fn invalid(message: String) -> SecretError {
    SecretError::new(ErrorKind::Internal, message)
}

/// A JSON object whose values are strings (numbers and booleans are taken as their text).
fn json(text: &str, source: &str) -> Result<SecretValues, SecretError> {
    let value: serde_json::Value = serde_json::from_str(text.trim()).map_err(|err| {
        // serde_json's messages give a position, never the text.
        invalid(format!(
            "failed to parse secret output from \"{source}\" as JSON: {err}"
        ))
    })?;
    let serde_json::Value::Object(object) = value else {
        return Err(invalid(format!(
            "failed to parse secret output from \"{source}\" as JSON: expected an object of strings"
        )));
    };
    object
        .into_iter()
        .map(|(key, value)| {
            let text = match value {
                serde_json::Value::String(text) => text,
                serde_json::Value::Number(n) => n.to_string(),
                serde_json::Value::Bool(b) => b.to_string(),
                _ => {
                    return Err(invalid(format!(
                        "failed to parse secret output from \"{source}\" as JSON: the value of \"{key}\" is not a string"
                    )));
                }
            };
            Ok((key, SecretValue::secret(text)))
        })
        .collect()
}

/// A YAML mapping whose values are scalars.
fn yaml(text: &str, source: &str) -> Result<SecretValues, SecretError> {
    use yaml_rust2::Yaml;
    refuse_aliases(text, source)?;
    let documents = yaml_rust2::YamlLoader::load_from_str(text).map_err(|err| {
        invalid(format!(
            "failed to parse secret output from \"{source}\" as YAML: {err}"
        ))
    })?;
    let mapping = match documents.into_iter().next() {
        Some(Yaml::Hash(mapping)) => mapping,
        Some(Yaml::Null) | None => return Ok(SecretValues::new()),
        Some(_) => {
            return Err(invalid(format!(
                "failed to parse secret output from \"{source}\" as YAML: expected a mapping of strings"
            )));
        }
    };
    let scalar = |yaml: Yaml| match yaml {
        Yaml::String(text) | Yaml::Real(text) => Some(text),
        Yaml::Integer(n) => Some(n.to_string()),
        Yaml::Boolean(b) => Some(b.to_string()),
        _ => None,
    };
    mapping
        .into_iter()
        .map(|(key, value)| {
            let key = scalar(key).ok_or_else(|| {
                invalid(format!(
                    "failed to parse secret output from \"{source}\" as YAML: a key is not a string"
                ))
            })?;
            let value = scalar(value).ok_or_else(|| {
                invalid(format!(
                    "failed to parse secret output from \"{source}\" as YAML: the value of \"{key}\" is not a string"
                ))
            })?;
            Ok((key, SecretValue::secret(value)))
        })
        .collect()
}

/// Fails on the first alias (`*name`). The loader expands aliases by copying the anchored
/// node, so a few hundred bytes of nested aliases ("billion laughs") become gigabytes; a
/// mapping of scalars never needs one. Syntax errors are left for the loader to report.
fn refuse_aliases(text: &str, source: &str) -> Result<(), SecretError> {
    use yaml_rust2::parser::{Event, Parser};
    let mut parser = Parser::new_from_str(text);
    loop {
        match parser.next_token() {
            Ok((Event::Alias(_), mark)) => {
                return Err(invalid(format!(
                    "failed to parse secret output from \"{source}\" as YAML: line {}: aliases (*name) are not allowed in secret data, write the value out",
                    mark.line()
                )));
            }
            Ok((Event::StreamEnd, _)) | Err(_) => return Ok(()),
            Ok(_) => {}
        }
    }
}

/// `KEY=VALUE` lines. Blank lines, `#` comments and lines whose name is not
/// `[A-Za-z_][A-Za-z0-9_]*` are skipped; an `export ` prefix is allowed; one level of matching
/// quotes around the value is removed.
fn env(text: &str) -> SecretValues {
    let mut values = SecretValues::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.strip_prefix("export ").unwrap_or(line);
        let Some((name, value)) = line.split_once('=') else {
            continue;
        };
        let name = name.trim();
        if !valid_name(name) {
            continue;
        }
        values.insert(name.to_owned(), SecretValue::secret(unquote(value.trim())));
    }
    values
}

fn valid_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

fn unquote(value: &str) -> &str {
    for quote in ['"', '\''] {
        if value.len() >= 2 && value.starts_with(quote) && value.ends_with(quote) {
            return &value[1..value.len() - 1];
        }
    }
    value
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(format: Format, text: &str) -> Vec<(String, String)> {
        format
            .parse_values(text, "t")
            .unwrap()
            .into_iter()
            .map(|(k, v)| (k, v.value.expose().to_owned()))
            .collect()
    }

    fn pairs(items: &[(&str, &str)]) -> Vec<(String, String)> {
        items
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn error(format: Format, text: &str) -> String {
        format.parse_values(text, "t").unwrap_err().to_string()
    }

    #[test]
    fn yaml_aliases_are_refused_before_they_are_expanded() {
        // "Billion laughs": 10^9 copies of "lol" once expanded, from under 1 KB.
        let mut bomb = String::from(
            "a: &a [\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\",\"lol\"]\n",
        );
        for (level, previous) in ('b'..='i').zip('a'..) {
            let refs = vec![format!("*{previous}"); 10].join(",");
            bomb.push_str(&format!("{level}: &{level} [{refs}]\n"));
        }
        assert!(bomb.len() < 1024);
        let message = error(Format::Yaml, &bomb);
        assert_eq!(
            message,
            "failed to parse secret output from \"t\" as YAML: line 2: aliases (*name) are not allowed in secret data, write the value out"
        );
        // A plain alias to a scalar is refused too; an anchor alone is harmless.
        assert!(error(Format::Yaml, "a: &x v\nb: *x\n").contains("line 2: aliases"));
        assert_eq!(parse(Format::Yaml, "a: &x v\n"), pairs(&[("a", "v")]));
    }

    #[test]
    fn the_default_reads_the_last_non_empty_line() {
        let text = "fetching...\n{\"not\": \"this\"}\n{\"user\":\"bob\",\"n\":3,\"ok\":true}\n\n";
        assert_eq!(
            parse(Format::LastLineJson, text),
            pairs(&[("n", "3"), ("ok", "true"), ("user", "bob")])
        );
        assert_eq!(
            error(Format::LastLineJson, "\n  \n"),
            "secret type \"t\" printed nothing: its last line must be a JSON object"
        );
        let message = error(
            Format::LastLineJson,
            "{\"a\": \"hunter22\"}\nnot json hunter22",
        );
        assert!(
            message.starts_with("failed to parse secret output from \"t\" as JSON: "),
            "{message}"
        );
        assert!(!message.contains("hunter22"), "{message}");
    }

    #[test]
    fn json_is_an_object_of_strings_over_many_lines() {
        let text = "{\n  \"a\": \"1\",\n  \"b\": \"line1\\nline2\"\n}\n";
        assert_eq!(
            parse(Format::Json, text),
            pairs(&[("a", "1"), ("b", "line1\nline2")])
        );
        assert!(error(Format::Json, "[1]").ends_with("expected an object of strings"));
        assert!(
            error(Format::Json, "{\"a\": {\"b\": 1}}").contains("value of \"a\" is not a string")
        );
    }

    #[test]
    fn yaml_is_a_mapping_of_strings() {
        let text =
            "user: bob\npassword: \"p@ss: word\"\nport: 5432\nkey: |\n  -----BEGIN-----\n  abc\n";
        assert_eq!(
            parse(Format::Yaml, text),
            pairs(&[
                ("key", "-----BEGIN-----\nabc\n"),
                ("password", "p@ss: word"),
                ("port", "5432"),
                ("user", "bob"),
            ])
        );
        assert!(parse(Format::Yaml, "").is_empty());
        assert!(error(Format::Yaml, "- a\n- b\n").ends_with("expected a mapping of strings"));
        assert!(error(Format::Yaml, "a: [1]\n").contains("value of \"a\" is not a string"));
        let message = error(Format::Yaml, "a: \"hunter22\n");
        assert!(message.starts_with("failed to parse secret output from \"t\" as YAML: "));
        assert!(!message.contains("hunter22"), "{message}");
    }

    #[test]
    fn env_lines() {
        let text = "# comment\n\nA=1\nexport B = two \nC=\"quoted value\"\nD='single'\nE=\"mismatched'\n\
                    1BAD=x\nBAD-NAME=y\nno equals\nF=a=b\nG=\n";
        assert_eq!(
            parse(Format::Env, text),
            pairs(&[
                ("A", "1"),
                ("B", "two"),
                ("C", "quoted value"),
                ("D", "single"),
                ("E", "\"mismatched'"),
                ("F", "a=b"),
                ("G", ""),
            ])
        );
    }

    #[test]
    fn raw_is_the_whole_text_as_content() {
        assert_eq!(
            parse(Format::Raw, "line1\nline2\n"),
            pairs(&[("content", "line1\nline2")])
        );
        assert_eq!(parse(Format::Raw, "x\r\n"), pairs(&[("content", "x")]));
    }

    #[test]
    fn selection_order_format_then_path_extension_then_default() {
        let select = |format, path| Format::select(format, path, Format::LastLineJson).unwrap();
        assert_eq!(select(Some("YAML"), Some("x.json")), Format::Yaml);
        assert_eq!(select(None, Some("/etc/s.json")), Format::Json);
        assert_eq!(select(None, Some("s.env")), Format::Env);
        assert_eq!(select(None, Some("s.yml")), Format::Yaml);
        assert_eq!(select(None, Some("s.yaml")), Format::Yaml);
        assert_eq!(select(None, Some("s.txt")), Format::Raw);
        assert_eq!(select(None, Some("noext")), Format::Raw);
        assert_eq!(select(None, None), Format::LastLineJson);
        assert_eq!(select(Some(""), Some("")), Format::LastLineJson);
        let err = Format::select(Some("toml"), None, Format::Raw).unwrap_err();
        assert_eq!(
            err.to_string(),
            "unknown format \"toml\": use json, yaml, env or raw"
        );
    }
}
