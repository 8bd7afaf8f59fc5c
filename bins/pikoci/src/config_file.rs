//! `-c/--config FILE`: a TOML file whose keys are the long flag names of a command
//! (`db-system = "postgres"`, `tags = ["linux", "docker"]`, `run-worker = false`).
//!
//! Precedence: a flag on the command line, then its environment variable, then the config
//! file, then the built-in default. The file's values become the flags' defaults before the
//! command line is parsed, which gives exactly that order.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};

/// The largest config file read (it is a handful of settings).
const MAX_CONFIG_BYTES: u64 = 1024 * 1024;

/// The config file named on the command line of `subcommand`, if any: the value of `-c FILE`,
/// `-cFILE`, `--config FILE` or `--config=FILE` after the subcommand's name.
pub(crate) fn config_path(args: &[OsString], subcommand: &str) -> Option<PathBuf> {
    let mut args = args
        .iter()
        .skip(1)
        .skip_while(|arg| arg.to_str() != Some(subcommand))
        .skip(1);
    while let Some(arg) = args.next() {
        let Some(text) = arg.to_str() else { continue };
        if text == "--" {
            return None;
        }
        if text == "-c" || text == "--config" {
            return args.next().map(PathBuf::from);
        }
        if let Some(path) = text.strip_prefix("--config=") {
            return Some(PathBuf::from(path));
        }
        if let Some(path) = text.strip_prefix("-c")
            && !text.starts_with("--")
        {
            return Some(PathBuf::from(path));
        }
    }
    None
}

/// Sets the defaults of `subcommand`'s flags from the config file at `path`.
pub(crate) fn apply(
    command: clap::Command,
    subcommand: &str,
    path: &Path,
) -> anyhow::Result<clap::Command> {
    let text = read(path)?;
    let table: toml::Table = toml::from_str(&text)
        .with_context(|| format!("config file {} is not valid TOML", path.display()))?;
    let Some(sub) = command.find_subcommand(subcommand) else {
        return Ok(command);
    };
    let mut defaults = Vec::new();
    for (key, value) in &table {
        let arg = sub
            .get_arguments()
            .find(|arg| arg.get_long() == Some(key.as_str()) && key != "config");
        let Some(arg) = arg else {
            let mut known: Vec<&str> = sub
                .get_arguments()
                .filter_map(|a| a.get_long())
                .filter(|long| *long != "config" && *long != "help")
                .collect();
            known.sort_unstable();
            let hint = pikoci_core::name::closest(key, known.iter().copied())
                .map(|close| format!(" (did you mean \"{close}\"?)"))
                .unwrap_or_default();
            bail!(
                "config file {}: unknown setting \"{key}\"{hint}; the settings are the long \
                 flags of `pikoci {subcommand}`: {}",
                path.display(),
                known.join(", ")
            );
        };
        let text = flag_text(value)
            .with_context(|| format!("config file {}: setting \"{key}\"", path.display()))?;
        defaults.push((arg.get_id().clone(), text));
    }
    Ok(command.mut_subcommand(subcommand, |mut sub| {
        for (id, text) in defaults {
            sub = sub.mut_arg(id, |arg| {
                // A value that must not be shown (a password, a URL with credentials) is not
                // shown as a default either.
                let arg = if arg.is_hide_env_values_set() {
                    arg.hide_default_value(true)
                } else {
                    arg
                };
                let many = arg.get_num_args().is_some_and(|n| n.max_values() > 1)
                    || arg.get_value_delimiter().is_some();
                if many {
                    let values: Vec<clap::builder::OsStr> =
                        text.iter().map(|v| v.clone().into()).collect();
                    arg.default_values(values)
                } else {
                    arg.default_value(text.join(","))
                }
            });
        }
        sub
    }))
}

fn read(path: &Path) -> anyhow::Result<String> {
    use std::io::Read;
    let file = std::fs::File::open(path)
        .with_context(|| format!("cannot read config file {}", path.display()))?;
    let mut text = String::new();
    file.take(MAX_CONFIG_BYTES + 1)
        .read_to_string(&mut text)
        .with_context(|| format!("cannot read config file {} as UTF-8 text", path.display()))?;
    if text.len() as u64 > MAX_CONFIG_BYTES {
        bail!(
            "config file {} is larger than {MAX_CONFIG_BYTES} bytes",
            path.display()
        );
    }
    Ok(text)
}

/// A TOML value as the text (or texts, for an array) a flag would be given.
fn flag_text(value: &toml::Value) -> anyhow::Result<Vec<String>> {
    Ok(match value {
        toml::Value::String(text) => vec![text.clone()],
        toml::Value::Integer(number) => vec![number.to_string()],
        toml::Value::Float(number) => vec![number.to_string()],
        toml::Value::Boolean(flag) => vec![flag.to_string()],
        toml::Value::Array(items) => {
            let mut texts = Vec::new();
            for item in items {
                match item {
                    toml::Value::Array(_) | toml::Value::Table(_) => {
                        bail!("an array may hold strings, numbers and booleans only")
                    }
                    other => texts.extend(flag_text(other)?),
                }
            }
            texts
        }
        toml::Value::Datetime(_) | toml::Value::Table(_) => {
            bail!("expected a string, a number, a boolean or an array of them")
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(list: &[&str]) -> Vec<OsString> {
        list.iter().map(OsString::from).collect()
    }

    #[test]
    fn finds_the_config_flag_after_the_subcommand_only() {
        let find = |list: &[&str]| config_path(&args(list), "server");
        assert_eq!(
            find(&["pikoci", "server", "-c", "a.toml"]),
            Some("a.toml".into())
        );
        assert_eq!(
            find(&["pikoci", "server", "--config=b.toml"]),
            Some("b.toml".into())
        );
        assert_eq!(
            find(&["pikoci", "server", "-cc.toml"]),
            Some("c.toml".into())
        );
        assert_eq!(
            find(&["pikoci", "server", "--port", "1", "--config", "d.toml"]),
            Some("d.toml".into())
        );
        assert_eq!(find(&["pikoci", "worker", "-c", "a.toml"]), None);
        assert_eq!(find(&["pikoci", "server", "--", "-c", "a.toml"]), None);
    }

    #[test]
    fn values_become_flag_text() {
        let table: toml::Table =
            toml::from_str("a = \"x\"\nb = 3\nc = true\nd = [\"l\", 2]\ne = { f = 1 }").unwrap();
        assert_eq!(flag_text(&table["a"]).unwrap(), ["x"]);
        assert_eq!(flag_text(&table["b"]).unwrap(), ["3"]);
        assert_eq!(flag_text(&table["c"]).unwrap(), ["true"]);
        assert_eq!(flag_text(&table["d"]).unwrap(), ["l", "2"]);
        assert!(flag_text(&table["e"]).is_err());
    }
}
