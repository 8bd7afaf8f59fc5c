//! Turning a runner and a command into a process: the runner template algorithm, the `shell`
//! runner's rules and type-level runner overrides.

use std::collections::BTreeMap;
use std::path::Path;

use super::env::Inherit;
use super::runner::Invocation;
use crate::expand::expand;
use crate::{Command, RunnerOverride, RunnerType};

/// Parameters that configure the runner itself; `$env` does not forward them.
pub(crate) const RUNNER_INTERNAL: &[&str] = &[
    "cmd",
    "image",
    "WORKDIR",
    "path",
    "PIKOCI_OUTPUT",
    "script",
    "shell",
    "file",
];

/// Applies a type-level runner override to one of the type's commands: an `exec` command moves
/// to the override's runner, its `path` and `args` becoming the runner's `cmd`.
///
/// Arguments are shell-quoted when joined into `cmd` (upstream joins them with bare spaces,
/// which breaks multi-line scripts passed as one argument).
pub fn apply_override(command: &Command, runner_override: Option<&RunnerOverride>) -> Command {
    let Some(runner_override) = runner_override else {
        return command.clone();
    };
    if command.runner != "exec" {
        return command.clone();
    }
    let mut params = command.params.clone();
    params.extend(runner_override.params.clone());
    if let Some(path) = params.remove("path") {
        let mut cmd = shell_quote(&path);
        for arg in &command.args {
            cmd.push(' ');
            cmd.push_str(&shell_quote(arg));
        }
        params.insert("cmd".to_owned(), cmd);
    }
    Command {
        runner: runner_override.runner.clone(),
        args: runner_override.args.clone(),
        params,
    }
}

/// Quotes `text` for a POSIX shell (unchanged when it needs no quoting).
pub fn shell_quote(text: &str) -> String {
    let plain = !text.is_empty()
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_./:=@%+,".contains(&b));
    if plain {
        text.to_owned()
    } else {
        format!("'{}'", text.replace('\'', "'\\''"))
    }
}

/// Builds the process for `runner` running a command with `args` and the parameters `params`
/// (everything the use passes, see the runner docs), in `workdir`.
///
/// Returns `Ok(None)` when the runner's path expands to nothing: such a command succeeds
/// without running anything (how `push "exec" {}` works). `process_env` looks up the runner
/// process's own environment for names that are not parameters (the engine passes
/// [`Inherit::var`], so a template cannot reach what the process would not inherit). The
/// invocation inherits as a step does ([`Inherit::Step`]).
pub fn prepare(
    runner: &RunnerType,
    args: &[String],
    params: &BTreeMap<String, String>,
    workdir: &Path,
    process_env: &dyn Fn(&str) -> Option<String>,
) -> Result<Option<Invocation>, String> {
    let mut env: BTreeMap<String, String> = BTreeMap::new();
    env.insert("WORKDIR".to_owned(), workdir.display().to_string());
    env.extend(params.iter().map(|(k, v)| (k.clone(), v.clone())));
    if runner.name == "shell"
        && let Some(invocation) = shell_file_mode(&mut env, workdir)?
    {
        return Ok(Some(invocation));
    }
    let lookup = |name: &str| env.get(name).cloned().or_else(|| process_env(name));
    let mut argv: Vec<String> = Vec::new();
    for template in &runner.args {
        match template.as_str() {
            "$args" => argv.extend(args.iter().cloned()),
            "$env" => {
                for (key, value) in &env {
                    if !RUNNER_INTERNAL.contains(&key.as_str()) {
                        argv.push("-e".to_owned());
                        argv.push(format!("{key}={value}"));
                    }
                }
                if let Some(output) = env.get("PIKOCI_OUTPUT") {
                    argv.push("-e".to_owned());
                    argv.push(format!("PIKOCI_OUTPUT={}", container_path(&argv, output)));
                }
            }
            other => {
                let expanded = expand(other, &lookup);
                if !expanded.is_empty() {
                    argv.push(expanded);
                }
            }
        }
    }
    let program = expand(&runner.path, &lookup);
    if program.is_empty() {
        return Ok(None);
    }
    Ok(Some(Invocation {
        program,
        args: argv,
        env,
        inherit: Inherit::Step,
        workdir: workdir.to_path_buf(),
    }))
}

/// The `shell` runner: exactly one of `cmd` and `file`; `shell` defaults to `/bin/sh`. In file
/// mode the script runs directly (made executable) or with an explicitly chosen shell.
fn shell_file_mode(
    env: &mut BTreeMap<String, String>,
    workdir: &Path,
) -> Result<Option<Invocation>, String> {
    let has_cmd = env.contains_key("cmd");
    let explicit_shell = env.get("shell").cloned();
    match (has_cmd, env.remove("file")) {
        (true, Some(_)) => Err("shell runner: cannot set both \"cmd\" and \"file\"".to_owned()),
        (false, None) => Err("shell runner: must set either \"cmd\" or \"file\"".to_owned()),
        (true, None) => {
            env.entry("shell".to_owned())
                .or_insert_with(|| "/bin/sh".to_owned());
            Ok(None)
        }
        (false, Some(file)) => {
            let path = workdir.join(&file);
            let path_text = path.display().to_string();
            let (program, args) = match explicit_shell {
                Some(shell) => (shell, vec![path_text]),
                None => {
                    make_executable(&path)
                        .map_err(|err| format!("shell runner: cannot run \"{file}\": {err}"))?;
                    (path_text, Vec::new())
                }
            };
            Ok(Some(Invocation {
                program,
                args,
                env: env.clone(),
                inherit: Inherit::Step,
                workdir: workdir.to_path_buf(),
            }))
        }
    }
}

#[cfg(unix)]
fn make_executable(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755))
}

#[cfg(not(unix))]
fn make_executable(path: &Path) -> std::io::Result<()> {
    std::fs::metadata(path).map(|_| ())
}

/// Where the output file is inside a container: `<workdir>/<file name>`, the work directory
/// being the value after `-w`/`--workdir` in the arguments so far.
fn container_path(argv: &[String], host_path: &str) -> String {
    let mut dir = None;
    for (i, arg) in argv.iter().enumerate() {
        if arg == "-w" || arg == "--workdir" {
            dir = argv.get(i + 1).cloned();
        } else if let Some(value) = arg.strip_prefix("--workdir=") {
            dir = Some(value.to_owned());
        }
    }
    match (dir, Path::new(host_path).file_name()) {
        (Some(dir), Some(name)) => {
            format!("{}/{}", dir.trim_end_matches('/'), name.to_string_lossy())
        }
        _ => host_path.to_owned(),
    }
}

#[cfg(test)]
mod tests;
