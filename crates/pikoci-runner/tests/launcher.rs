//! Steps started through the launcher (`pikoci_runner::enable_launcher`, which the `pikoci`
//! binaries call first in `main`) get what a forked step gets: their arguments, environment
//! and directory, the default action for SIGPIPE, output and exit status; a program that is
//! missing or cannot be run is an error of the spawn, as it is without the launcher.
//!
//! The launcher is this program started again, so the file has its own `main`
//! (`harness = false`) which enables it before anything else.

#![allow(
    clippy::print_stdout,
    reason = "without libtest, the test reports its cases itself"
)]

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::sync::{Arc, Mutex};

use pikoci_core::ErrorKind;
use pikoci_core::engine::env::Inherit;
use pikoci_core::engine::{Invocation, OutputLine, RunOutcome, Runner};
use pikoci_runner::ProcessRunner;
use tokio_util::sync::CancellationToken;

/// One case: it panics when it fails.
type Case = fn(&tokio::runtime::Runtime, &Path);

fn main() {
    pikoci_runner::enable_launcher();
    assert!(
        pikoci_runner::launcher_enabled(),
        "the launcher cannot be enabled here (no /proc/self/exe?): these cases would test forks"
    );
    let runtime = tokio::runtime::Runtime::new().expect("a runtime");
    let dir = tempfile::tempdir().expect("a temporary directory");
    let cases: [(&str, Case); 5] = [
        (
            "a_launched_step_gets_its_arguments_environment_directory_and_status",
            a_launched_step_gets_its_arguments_environment_directory_and_status,
        ),
        (
            "a_program_is_found_in_the_steps_path",
            a_program_is_found_in_the_steps_path,
        ),
        (
            "a_missing_or_unrunnable_program_fails_the_spawn",
            a_missing_or_unrunnable_program_fails_the_spawn,
        ),
        (
            "a_script_without_an_interpreter_line_runs_with_sh",
            a_script_without_an_interpreter_line_runs_with_sh,
        ),
        (
            "the_loaders_variables_steer_the_step_not_the_launcher",
            the_loaders_variables_steer_the_step_not_the_launcher,
        ),
    ];
    for (name, case) in cases {
        print!("test {name} ... ");
        case(&runtime, dir.path());
        println!("ok");
    }
    println!("\ntest result: ok. {} passed", cases.len());
}

/// Runs `program` with `args` and `env` (nothing inherited but `PATH`) in `dir`.
fn run(
    runtime: &tokio::runtime::Runtime,
    dir: &Path,
    program: &str,
    args: &[&str],
    env: &[(&str, &str)],
) -> (RunOutcome, Vec<String>) {
    let lines = Arc::new(Mutex::new(Vec::new()));
    let sink = Arc::clone(&lines);
    let invocation = Invocation {
        program: program.to_owned(),
        args: args.iter().map(|arg| (*arg).to_owned()).collect(),
        env: env
            .iter()
            .map(|(name, value)| ((*name).to_owned(), (*value).to_owned()))
            .collect::<BTreeMap<_, _>>(),
        inherit: Inherit::Step,
        workdir: dir.to_path_buf(),
    };
    let outcome = runtime.block_on(ProcessRunner::default().run(
        invocation,
        Arc::new(move |line: OutputLine| sink.lock().expect("lines").push(line.text)),
        CancellationToken::new(),
    ));
    let lines = lines.lock().expect("lines").clone();
    (outcome, lines)
}

fn a_launched_step_gets_its_arguments_environment_directory_and_status(
    runtime: &tokio::runtime::Runtime,
    dir: &Path,
) {
    let script = r#"printf '%s\n' "$1" "$PWD" "$GIVEN" "${HOME-no home}" "$PPID"
printf '%s\n' "$LD_LIBRARY_PATH" "$PIKOCI_LAUNCHER_HIDDEN_MINE" "${PIKOCI_LAUNCHER_HIDDEN_LD_LIBRARY_PATH-unset}"
grep '^SigIgn:' /proc/$$/status
exit 3"#;
    let (outcome, lines) = run(
        runtime,
        dir,
        "/bin/sh",
        &["-c", script, "sh", "two words"],
        &[
            ("GIVEN", "a value"),
            ("HOME", "/nowhere"),
            // The loader's variables are the step's, not the launcher's, and come back intact,
            // as do variables named like the launcher's hidden ones.
            ("LD_LIBRARY_PATH", "/nowhere/lib"),
            ("PIKOCI_LAUNCHER_HIDDEN_MINE", "mine"),
        ],
    );
    assert!(
        matches!(outcome, RunOutcome::Exited(3)),
        "{outcome:?}: {lines:?}"
    );
    let expected = [
        "two words".to_owned(),
        dir.canonicalize()
            .expect("the directory")
            .display()
            .to_string(),
        "a value".to_owned(),
        "/nowhere".to_owned(),
        // The launcher became the step: its parent is this process.
        std::process::id().to_string(),
        "/nowhere/lib".to_owned(),
        "mine".to_owned(),
        "unset".to_owned(),
    ];
    assert_eq!(lines[..lines.len() - 1], expected, "{lines:?}");
    let ignored = lines
        .last()
        .and_then(|line| line.strip_prefix("SigIgn:\t"))
        .and_then(|mask| u64::from_str_radix(mask, 16).ok())
        .unwrap_or_else(|| panic!("no signal mask in {lines:?}"));
    // SIGPIPE (13, bit 12 of the mask) has its default action, though this Rust program
    // ignores it.
    assert_eq!(ignored & (1 << 12), 0, "ignored signals: {ignored:#x}");
}

fn a_program_is_found_in_the_steps_path(runtime: &tokio::runtime::Runtime, dir: &Path) {
    let bin = dir.join("bin");
    std::fs::create_dir_all(&bin).expect("a bin directory");
    let tool = bin.join("pikoci-launcher-tool");
    std::fs::write(&tool, "#!/bin/sh\necho \"tool $0 $*\"\n").expect("the tool");
    std::fs::set_permissions(&tool, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let path = format!("/nonexistent:{}:/usr/bin:/bin", bin.display());
    let (outcome, lines) = run(
        runtime,
        dir,
        "pikoci-launcher-tool",
        &["an argument"],
        &[("PATH", &path)],
    );
    assert!(outcome.success(), "{outcome:?}: {lines:?}");
    assert_eq!(
        lines,
        [format!("tool {} an argument", tool.display())],
        "the first executable file of the name in the step's PATH runs"
    );
}

fn a_missing_or_unrunnable_program_fails_the_spawn(runtime: &tokio::runtime::Runtime, dir: &Path) {
    let (outcome, lines) = run(
        runtime,
        dir,
        "pikoci-no-such-program",
        &[],
        &[("PATH", "/usr/bin:/bin")],
    );
    match outcome {
        RunOutcome::SpawnFailed(why) => assert_eq!(why.kind(), ErrorKind::NotFound, "{why}"),
        other => panic!("a missing program started: {other:?}: {lines:?}"),
    }
    let plain = dir.join("not-executable");
    std::fs::write(&plain, "echo never\n").expect("a plain file");
    std::fs::set_permissions(&plain, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let (outcome, lines) = run(runtime, dir, "./not-executable", &[], &[]);
    match outcome {
        RunOutcome::SpawnFailed(why) => {
            assert_eq!(why.kind(), ErrorKind::PermissionDenied, "{why}")
        }
        other => panic!("a file without execute permission started: {other:?}: {lines:?}"),
    }
}

fn a_script_without_an_interpreter_line_runs_with_sh(
    runtime: &tokio::runtime::Runtime,
    dir: &Path,
) {
    let script = dir.join("no-interpreter-line");
    std::fs::write(&script, "echo \"ran by sh: $1\"\n").expect("the script");
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let (outcome, lines) = run(runtime, dir, "./no-interpreter-line", &["yes"], &[]);
    assert!(outcome.success(), "{outcome:?}: {lines:?}");
    assert_eq!(lines, ["ran by sh: yes"]);
}

fn the_loaders_variables_steer_the_step_not_the_launcher(
    runtime: &tokio::runtime::Runtime,
    dir: &Path,
) {
    // The dynamic loader of every program that starts with a missing LD_PRELOAD says so on
    // its stderr: once for the step's shell, and once more if the launcher had it too.
    let missing = "/nonexistent/pikoci-launcher-preload.so";
    let (outcome, lines) = run(
        runtime,
        dir,
        "/bin/sh",
        &["-c", "echo ran"],
        &[("LD_PRELOAD", missing)],
    );
    assert!(
        matches!(outcome, RunOutcome::Exited(0)),
        "{outcome:?}: {lines:?}"
    );
    let warnings = lines.iter().filter(|line| line.contains(missing)).count();
    assert_eq!(warnings, 1, "{lines:?}");
    assert!(lines.iter().any(|line| line == "ran"), "{lines:?}");
}
