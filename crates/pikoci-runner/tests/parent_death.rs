//! A process running steps that is killed with SIGKILL (no destructor runs) leaves no step
//! process behind: the kernel kills each step's main process with it (`PR_SET_PDEATHSIG`).
//!
//! The test needs a process to kill, so this file has its own `main` (`harness = false`): run
//! with `PIKOCI_TEST_RUNNER_HELPER=<dir>`, it is that process, starting one step through the
//! `ProcessRunner` and waiting forever; otherwise it is the test, which starts itself as the
//! helper, kills it, and watches the step.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use pikoci_core::engine::env::Inherit;
use pikoci_core::engine::{Invocation, OutputLine, Runner};
use pikoci_runner::ProcessRunner;
use tokio_util::sync::CancellationToken;

/// Set to a directory in the helper process.
const HELPER: &str = "PIKOCI_TEST_RUNNER_HELPER";

fn main() {
    match std::env::var_os(HELPER) {
        Some(dir) => run_a_step_until_killed(&PathBuf::from(dir)),
        None => a_killed_runner_process_leaves_no_step_running(),
    }
}

/// The helper: one step, which writes its pid and then sleeps for ten minutes.
fn run_a_step_until_killed(dir: &Path) {
    let runtime = tokio::runtime::Runtime::new().expect("a runtime");
    let invocation = Invocation {
        program: "/bin/sh".to_owned(),
        args: vec![
            "-ec".to_owned(),
            "echo $$ > step.tmp; mv step.tmp step.pid; exec sleep 600".to_owned(),
        ],
        env: BTreeMap::new(),
        inherit: Inherit::Step,
        workdir: dir.to_path_buf(),
    };
    let outcome = runtime.block_on(ProcessRunner::new().run(
        invocation,
        Arc::new(|_: OutputLine| {}),
        CancellationToken::new(),
    ));
    panic!("the step was to run until this process is killed, but it ended: {outcome:?}");
}

fn a_killed_runner_process_leaves_no_step_running() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let mut helper = std::process::Command::new(std::env::current_exe().expect("this test's path"))
        .env(HELPER, dir.path())
        .stdin(Stdio::null())
        .spawn()
        .expect("the helper starts");
    let pid_file = dir.path().join("step.pid");
    let deadline = Instant::now() + Duration::from_secs(20);
    let step = loop {
        if let Ok(text) = std::fs::read_to_string(&pid_file) {
            break text.trim().parse::<i32>().expect("a pid");
        }
        if let Some(status) = helper.try_wait().expect("the helper's status") {
            panic!("the helper ended before its step started: {status}");
        }
        assert!(Instant::now() < deadline, "the step never started");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(running(step), "the step runs while the helper does");
    helper.kill().expect("SIGKILL to the helper");
    helper.wait().expect("the helper is reaped");
    let deadline = Instant::now() + Duration::from_secs(10);
    while running(step) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let survived = running(step);
    if survived {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(step),
            nix::sys::signal::Signal::SIGKILL,
        );
    }
    assert!(
        !survived,
        "step process {step} still runs 10 s after the process that started it was killed"
    );
}

/// Whether `pid` is a live process (not gone, not a zombie waiting for its new parent).
fn running(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        // The state follows the command name, which is in parentheses.
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X"),
        Err(_) => false,
    }
}
