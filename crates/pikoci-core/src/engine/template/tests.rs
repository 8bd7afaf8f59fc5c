use std::path::PathBuf;

use super::*;
use crate::Origin;

fn runner(name: &str, path: &str, args: &[&str]) -> RunnerType {
    RunnerType {
        name: name.to_owned(),
        origin: Origin::Builtin,
        path: path.to_owned(),
        args: args.iter().map(|a| (*a).to_owned()).collect(),
    }
}

fn exec() -> RunnerType {
    runner("exec", "$path", &["$args"])
}

fn docker() -> RunnerType {
    runner(
        "docker",
        "docker",
        &[
            "run",
            "--rm",
            "-v",
            "$WORKDIR:/workdir",
            "-w",
            "/workdir",
            "$env",
            "$args",
            "$image",
            "/bin/sh",
            "-ec",
            "$cmd",
        ],
    )
}

fn shell() -> RunnerType {
    runner("shell", "$shell", &["-ec", "$cmd"])
}

fn params(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

fn strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| (*s).to_owned()).collect()
}

fn no_process_env(_: &str) -> Option<String> {
    None
}

fn workdir() -> PathBuf {
    PathBuf::from("/w")
}

#[test]
fn exec_splices_args_verbatim() {
    let invocation = prepare(
        &exec(),
        &strings(&["-c", "echo $param_x"]),
        &params(&[("path", "sh"), ("param_x", "1")]),
        &workdir(),
        &no_process_env,
    )
    .unwrap()
    .unwrap();
    assert_eq!(invocation.program, "sh");
    assert_eq!(invocation.args, ["-c", "echo $param_x"]);
    assert_eq!(invocation.env.get("param_x").map(String::as_str), Some("1"));
    assert_eq!(
        invocation.env.get("WORKDIR").map(String::as_str),
        Some("/w")
    );
}

#[test]
fn empty_path_is_a_no_op() {
    assert_eq!(
        prepare(&exec(), &[], &params(&[]), &workdir(), &no_process_env).unwrap(),
        None
    );
}

#[test]
fn docker_forwards_env_and_remaps_the_output_file() {
    let invocation = prepare(
        &docker(),
        &strings(&["--network", "host"]),
        &params(&[
            ("image", "alpine"),
            ("cmd", "echo $HOME"),
            ("BUILD_NUMBER", "7"),
            ("PIKOCI_OUTPUT", "/w/.pikoci-output-abc"),
        ]),
        &workdir(),
        &no_process_env,
    )
    .unwrap()
    .unwrap();
    assert_eq!(invocation.program, "docker");
    assert_eq!(
        invocation.args,
        strings(&[
            "run",
            "--rm",
            "-v",
            "/w:/workdir",
            "-w",
            "/workdir",
            "-e",
            "BUILD_NUMBER=7",
            "-e",
            "PIKOCI_OUTPUT=/workdir/.pikoci-output-abc",
            "--network",
            "host",
            "alpine",
            "/bin/sh",
            "-ec",
            "echo $HOME",
        ])
    );
}

#[test]
fn docker_without_image_drops_the_element() {
    let invocation = prepare(
        &docker(),
        &[],
        &params(&[("cmd", "true")]),
        &workdir(),
        &no_process_env,
    )
    .unwrap()
    .unwrap();
    assert!(!invocation.args.iter().any(String::is_empty));
    assert_eq!(invocation.args[6..], strings(&["/bin/sh", "-ec", "true"]));
}

#[test]
fn process_environment_fills_unknown_names() {
    let home = |name: &str| (name == "HOME").then(|| "/home/ci".to_owned());
    let r = runner("custom", "$HOME/bin/tool", &["$MISSING", "x"]);
    let invocation = prepare(&r, &[], &params(&[]), &workdir(), &home)
        .unwrap()
        .unwrap();
    assert_eq!(invocation.program, "/home/ci/bin/tool");
    assert_eq!(invocation.args, ["x"]);
}

#[test]
fn shell_inline_defaults_to_bin_sh() {
    let invocation = prepare(
        &shell(),
        &[],
        &params(&[("cmd", "make")]),
        &workdir(),
        &no_process_env,
    )
    .unwrap()
    .unwrap();
    assert_eq!(invocation.program, "/bin/sh");
    assert_eq!(invocation.args, ["-ec", "make"]);
}

#[test]
fn shell_rejects_both_or_neither() {
    let both = prepare(
        &shell(),
        &[],
        &params(&[("cmd", "x"), ("file", "y.sh")]),
        &workdir(),
        &no_process_env,
    );
    assert_eq!(
        both.unwrap_err(),
        "shell runner: cannot set both \"cmd\" and \"file\""
    );
    let neither = prepare(&shell(), &[], &params(&[]), &workdir(), &no_process_env);
    assert_eq!(
        neither.unwrap_err(),
        "shell runner: must set either \"cmd\" or \"file\""
    );
}

#[test]
fn shell_file_mode_runs_the_script() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("scripts")).unwrap();
    std::fs::write(dir.path().join("scripts/a.sh"), "#!/bin/sh\necho hi\n").unwrap();
    let direct = prepare(
        &shell(),
        &[],
        &params(&[("file", "scripts/a.sh")]),
        dir.path(),
        &no_process_env,
    )
    .unwrap()
    .unwrap();
    assert_eq!(
        direct.program,
        dir.path().join("scripts/a.sh").display().to_string()
    );
    assert!(direct.args.is_empty());
    assert!(!direct.env.contains_key("file"));
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(dir.path().join("scripts/a.sh"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o755);
    let with_shell = prepare(
        &shell(),
        &[],
        &params(&[("file", "scripts/a.sh"), ("shell", "/bin/bash")]),
        dir.path(),
        &no_process_env,
    )
    .unwrap()
    .unwrap();
    assert_eq!(with_shell.program, "/bin/bash");
    assert_eq!(
        with_shell.args,
        [dir.path().join("scripts/a.sh").display().to_string()]
    );
}

#[test]
fn overrides_move_exec_commands_to_the_override_runner() {
    let command = Command {
        runner: "exec".to_owned(),
        args: strings(&["-ec", "git ls-remote \"$param_url\"\necho done"]),
        params: params(&[("path", "/bin/sh")]),
    };
    let runner_override = RunnerOverride {
        runner: "docker".to_owned(),
        args: strings(&["--network", "host"]),
        params: params(&[("image", "alpine/git")]),
    };
    let moved = apply_override(&command, Some(&runner_override));
    assert_eq!(moved.runner, "docker");
    assert_eq!(moved.args, ["--network", "host"]);
    assert_eq!(
        moved.params.get("image").map(String::as_str),
        Some("alpine/git")
    );
    assert_eq!(
        moved.params.get("cmd").map(String::as_str),
        Some("/bin/sh -ec 'git ls-remote \"$param_url\"\necho done'")
    );
    assert!(!moved.params.contains_key("path"));
    let docker_command = Command {
        runner: "docker".to_owned(),
        ..command
    };
    assert_eq!(
        apply_override(&docker_command, Some(&runner_override)),
        docker_command
    );
}

#[test]
fn quoting() {
    assert_eq!(shell_quote("plain-word_1.2"), "plain-word_1.2");
    assert_eq!(shell_quote(""), "''");
    assert_eq!(shell_quote("a b"), "'a b'");
    assert_eq!(shell_quote("it's"), "'it'\\''s'");
}
