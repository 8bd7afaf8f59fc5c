//! The data that flows into commands' environments: flattened versions, filtered parameters,
//! and what commands hand back (version lists, export files).

use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};

use crate::Params;
use crate::name::{closest, env_name};

/// What a process the engine starts inherits from the environment of the process that starts
/// it (the worker, or `pikoci run`). Never everything: the worker's own configuration
/// (`PIKOCI_SECRET_KEY`, database and broker URLs) and whatever credentials its machine holds
/// must not reach a pipeline's commands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Inherit {
    /// Every command of a build (tasks, resource and notification commands, hooks, services):
    /// only the variables of [`STEP_INHERITED`] and those starting with `LC_`. Whatever else a
    /// step needs, the pipeline passes as parameters.
    #[default]
    Step,
    /// A secret type's `get` command: everything except `PIKOCI_*`. Such a command exists to
    /// read secrets with the machine's credentials (`VAULT_TOKEN`, `AWS_PROFILE`,
    /// `GNUPGHOME`...); it never sees the worker's own configuration.
    SecretCommand,
}

/// Whether the variable `name` belongs to PikoCI's own configuration (`PIKOCI_*`: the secret
/// key, database and broker URLs, tokens), which nothing a pipeline runs or reads may see: not a
/// step, not a secret type's `get` command, not the builtin `env` secret type.
pub fn is_pikoci_config(name: &str) -> bool {
    name.starts_with("PIKOCI_")
}

/// The variables a step inherits: where it runs (`PATH`, `HOME`, `USER`, `LOGNAME`, `SHELL`,
/// `TMPDIR`), language and time (`LANG`, `LANGUAGE`, `LC_*`, `TZ`), the terminal (`TERM`),
/// how to reach and configure the container engine (`DOCKER_*` and `CONTAINERS_*` settings
/// that hold addresses, paths and flags, never credentials themselves; `XDG_RUNTIME_DIR` for
/// rootless engines) and the network's proxies ([`PROXY_VARIABLES`], without their user and
/// password).
pub const STEP_INHERITED: &[&str] = &[
    "PATH",
    "HOME",
    "USER",
    "LOGNAME",
    "SHELL",
    "TMPDIR",
    "LANG",
    "LANGUAGE",
    "TZ",
    "TERM",
    "DOCKER_HOST",
    "DOCKER_CONTEXT",
    "DOCKER_CONFIG",
    "DOCKER_CERT_PATH",
    "DOCKER_TLS_VERIFY",
    "CONTAINER_HOST",
    "CONTAINERS_CONF",
    "CONTAINERS_STORAGE_CONF",
    "CONTAINERS_REGISTRIES_CONF",
    "REGISTRY_AUTH_FILE",
    "XDG_RUNTIME_DIR",
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "ALL_PROXY",
    "NO_PROXY",
    "http_proxy",
    "https_proxy",
    "all_proxy",
    "no_proxy",
];

/// The proxy variables of [`STEP_INHERITED`] that may hold a URL with a user and password
/// (`http://user:password@proxy:3128`): a step gets them with the user information removed.
pub const PROXY_VARIABLES: &[&str] = &[
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "ALL_PROXY",
    "http_proxy",
    "https_proxy",
    "all_proxy",
];

impl Inherit {
    /// Whether a variable of the starting process's environment named `name` is inherited.
    pub fn allows(self, name: &str) -> bool {
        match self {
            Inherit::Step => STEP_INHERITED.contains(&name) || name.starts_with("LC_"),
            Inherit::SecretCommand => !is_pikoci_config(name),
        }
    }

    /// What a process inherits of the variable `name`, whose value in the starting process's
    /// environment is `value`: nothing when [`Inherit::allows`] says no; for a step, a proxy's
    /// URL without its user and password (left out when it is not UTF-8 and cannot be cleaned);
    /// otherwise `value` as it is.
    pub fn inherited(self, name: &str, value: &OsStr) -> Option<OsString> {
        if !self.allows(name) {
            return None;
        }
        if self == Inherit::Step && PROXY_VARIABLES.contains(&name) {
            return value
                .to_str()
                .map(|url| crate::redact::without_userinfo(url).into());
        }
        Some(value.to_owned())
    }

    /// The value of `name` in this process's environment, as it is inherited (runner
    /// templates expand names that are not parameters with it).
    pub fn var(self, name: &str) -> Option<String> {
        let value = std::env::var_os(name)?;
        self.inherited(name, &value)?.into_string().ok()
    }
}

/// Flattens a version into `key → text` pairs: nested objects join keys with `_`, arrays use
/// indices, numbers print as integers when whole, `null` is empty. `{"ref": "a", "meta": {"sha":
/// "b"}, "tags": ["x"]}` gives `ref=a`, `meta_sha=b`, `tags_0=x`.
pub fn flatten_version(version: &serde_json::Value) -> BTreeMap<String, String> {
    fn walk(prefix: &str, value: &serde_json::Value, out: &mut BTreeMap<String, String>) {
        let join = |key: &str| {
            if prefix.is_empty() {
                key.to_owned()
            } else {
                format!("{prefix}_{key}")
            }
        };
        match value {
            serde_json::Value::Object(map) => {
                for (key, inner) in map {
                    walk(&join(key), inner, out);
                }
            }
            serde_json::Value::Array(items) => {
                for (i, inner) in items.iter().enumerate() {
                    walk(&join(&i.to_string()), inner, out);
                }
            }
            serde_json::Value::String(text) => {
                out.insert(prefix.to_owned(), text.clone());
            }
            serde_json::Value::Number(number) => {
                let text = match (number.as_i64(), number.as_u64(), number.as_f64()) {
                    (Some(i), _, _) => i.to_string(),
                    (_, Some(u), _) => u.to_string(),
                    (_, _, Some(f)) if f.fract() == 0.0 && f.abs() < 1e15 => {
                        format!("{}", f as i64)
                    }
                    (_, _, Some(f)) => f.to_string(),
                    _ => number.to_string(),
                };
                out.insert(prefix.to_owned(), text);
            }
            serde_json::Value::Bool(flag) => {
                out.insert(prefix.to_owned(), flag.to_string());
            }
            serde_json::Value::Null => {
                out.insert(prefix.to_owned(), String::new());
            }
        }
    }
    let mut out = BTreeMap::new();
    if version.is_object() {
        walk("", version, &mut out);
    }
    out.retain(|key, _| !key.is_empty());
    out
}

/// Keeps the parameters a type declares, as `param_<key>`; every other key gives a warning line
/// (with a "did you mean" when a declared name is close).
pub fn filter_params(
    params: &Params,
    declared: &[String],
    kind: &str,
    type_name: &str,
) -> (BTreeMap<String, String>, Vec<String>) {
    let mut accepted = BTreeMap::new();
    let mut warnings = Vec::new();
    for (key, value) in params {
        if declared.iter().any(|d| d == key) {
            accepted.insert(format!("param_{key}"), value.clone());
        } else {
            let mut warning = format!(
                "WARNING: param \"{key}\" is not declared by {kind} \"{type_name}\" and was ignored"
            );
            if let Some(close) = closest(key, declared.iter().map(String::as_str)) {
                warning.push_str(&format!(" (did you mean \"{close}\"?)"));
            }
            warnings.push(warning);
        }
    }
    (accepted, warnings)
}

/// Parses the version list a `check` (or a `push`) prints: the last non-empty line of its
/// output must be a JSON array of objects. An empty output means no versions.
pub fn parse_versions(output: &str) -> Result<Vec<serde_json::Value>, String> {
    let Some(last) = output.trim_matches('\n').rsplit('\n').next() else {
        return Ok(Vec::new());
    };
    let last = last.trim();
    if last.is_empty() {
        return Ok(Vec::new());
    }
    let parsed: serde_json::Value = serde_json::from_str(last)
        .map_err(|err| format!("failed to Unmarshal versions({last}): {err}"))?;
    let serde_json::Value::Array(items) = parsed else {
        return Err(format!(
            "failed to Unmarshal versions({last}): expected a JSON array of objects such as [{{\"ref\":\"abc\"}}]"
        ));
    };
    if let Some(bad) = items.iter().find(|item| !item.is_object()) {
        return Err(format!(
            "failed to Unmarshal versions({last}): every version must be a JSON object, found {bad}"
        ));
    }
    Ok(items)
}

/// The most an export file may hold; bigger files are ignored.
pub const MAX_OUTPUT_FILE: u64 = 1024 * 1024;

/// Parses a task's `$PIKOCI_OUTPUT` file into `(KEY, value)` pairs (keys in environment form) and
/// warnings for lines that are not `KEY=VALUE`.
pub fn parse_output_file(text: &str) -> (Vec<(String, String)>, Vec<String>) {
    let mut pairs = Vec::new();
    let mut warnings = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            warnings.push(format!(
                "WARNING: ignoring line \"{line}\" of $PIKOCI_OUTPUT: expected KEY=VALUE"
            ));
            continue;
        };
        let key = env_name(key.trim());
        if key.is_empty() {
            continue;
        }
        pairs.push((key, value.trim().to_owned()));
    }
    (pairs, warnings)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn steps_inherit_the_allow_list_and_secret_commands_all_but_pikoci() {
        for name in [
            "PATH",
            "HOME",
            "LANG",
            "LC_ALL",
            "LC_CTYPE",
            "TZ",
            "https_proxy",
        ] {
            assert!(Inherit::Step.allows(name), "{name}");
            assert!(Inherit::SecretCommand.allows(name), "{name}");
        }
        for name in [
            "PIKOCI_SECRET_KEY",
            "PIKOCI_DB_URL",
            "AWS_SECRET_ACCESS_KEY",
            "VAULT_TOKEN",
            "GITHUB_TOKEN",
            "LD_PRELOAD",
            "path",
        ] {
            assert!(!Inherit::Step.allows(name), "{name}");
        }
        assert!(!Inherit::SecretCommand.allows("PIKOCI_SECRET_KEY"));
        assert!(!Inherit::SecretCommand.allows("PIKOCI_DB_URL"));
        assert!(Inherit::SecretCommand.allows("VAULT_TOKEN"));
        assert_eq!(Inherit::default(), Inherit::Step);
    }

    #[test]
    fn steps_get_proxies_without_their_user_and_password() {
        let inherited = |inherit: Inherit, name: &str, value: &str| {
            inherit
                .inherited(name, OsStr::new(value))
                .map(|value| value.into_string().unwrap())
        };
        for name in PROXY_VARIABLES {
            assert_eq!(
                inherited(Inherit::Step, name, "http://ci:hunter2@proxy:3128").as_deref(),
                Some("http://proxy:3128"),
                "{name}"
            );
            assert_eq!(
                inherited(Inherit::Step, name, "ci:hunter2@proxy:3128").as_deref(),
                Some("proxy:3128"),
                "{name}"
            );
            assert!(STEP_INHERITED.contains(name), "{name}");
        }
        assert_eq!(
            inherited(Inherit::Step, "NO_PROXY", "a@b").as_deref(),
            Some("a@b")
        );
        assert_eq!(inherited(Inherit::Step, "VAULT_TOKEN", "t"), None);
        // A secret's get command runs with the machine's credentials, proxies' included.
        assert_eq!(
            inherited(Inherit::SecretCommand, "HTTPS_PROXY", "http://u:p@proxy").as_deref(),
            Some("http://u:p@proxy")
        );
    }

    #[test]
    fn flattening() {
        let flat = flatten_version(&json!({
            "ref": "abc", "metadata": {"sha": "d"}, "tags": ["v1", "v2"], "n": 42, "f": 1.5, "ok": true, "none": null
        }));
        let expected: BTreeMap<String, String> = [
            ("f", "1.5"),
            ("metadata_sha", "d"),
            ("n", "42"),
            ("none", ""),
            ("ok", "true"),
            ("ref", "abc"),
            ("tags_0", "v1"),
            ("tags_1", "v2"),
        ]
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
        assert_eq!(flat, expected);
    }

    #[test]
    fn filtering_warns_about_undeclared_params() {
        let params: Params = [
            ("url".to_owned(), "u".to_owned()),
            ("brnch".to_owned(), "m".to_owned()),
            ("foo".to_owned(), "1".to_owned()),
        ]
        .into();
        let declared = vec!["url".to_owned(), "branch".to_owned()];
        let (accepted, warnings) = filter_params(&params, &declared, "resource_type", "git");
        assert_eq!(accepted, [("param_url".to_owned(), "u".to_owned())].into());
        assert_eq!(
            warnings,
            [
                "WARNING: param \"brnch\" is not declared by resource_type \"git\" and was ignored (did you mean \"branch\"?)",
                "WARNING: param \"foo\" is not declared by resource_type \"git\" and was ignored",
            ]
        );
    }

    #[test]
    fn version_lists() {
        assert_eq!(
            parse_versions("log line\n[{\"ref\":\"a\"},{\"ref\":\"b\"}]\n")
                .unwrap()
                .len(),
            2
        );
        assert_eq!(parse_versions("").unwrap(), Vec::<serde_json::Value>::new());
        assert_eq!(
            parse_versions("[]\n").unwrap(),
            Vec::<serde_json::Value>::new()
        );
        let err = parse_versions("not json").unwrap_err();
        assert!(
            err.starts_with("failed to Unmarshal versions(not json): "),
            "{err}"
        );
        assert!(
            parse_versions("[1]")
                .unwrap_err()
                .contains("must be a JSON object")
        );
        assert!(
            parse_versions("{\"ref\":1}")
                .unwrap_err()
                .contains("expected a JSON array")
        );
    }

    #[test]
    fn output_files() {
        let (pairs, warnings) =
            parse_output_file("VERSION=1.2.3\n# c\n\nbad\nbuild.app = x=y \n=novalue\n");
        assert_eq!(
            pairs,
            [
                ("VERSION".to_owned(), "1.2.3".to_owned()),
                ("BUILD_APP".to_owned(), "x=y".to_owned())
            ]
        );
        assert_eq!(warnings.len(), 1);
        assert!(warnings[0].contains("\"bad\""));
    }
}
