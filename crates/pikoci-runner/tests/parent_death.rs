//! A process running steps that is killed with SIGKILL (no destructor runs) leaves no step
//! process behind: the kernel kills each step's main process with it (`PR_SET_PDEATHSIG`), and
//! what the step started besides (a background process in its group, a daemon in a session of
//! its own), which the kernel leaves running, is killed by the next worker that starts on the
//! machine, whatever its name (`ProcessRunner::reap_leftovers`): the dead worker's lock is
//! gone with its process.
//!
//! The test needs a process to kill, so this file has its own `main` (`harness = false`): run
//! with `PIKOCI_TEST_RUNNER_HELPER=<dir>`, it is that process, holding the lock of worker
//! `PIKOCI_TEST_RUNNER_WORKER` in `<dir>/locks`, starting one step through that worker's
//! `ProcessRunner` and waiting forever; otherwise it is the test, which starts itself as the
//! helper, kills it, watches the step, and reaps as a worker of another name. It does so twice:
//! with the helper starting its step through the launcher (as the `pikoci` binaries do, see
//! `pikoci_runner::enable_launcher`), then with `PIKOCI_TEST_RUNNER_FORK` set, forking it.

#![allow(
    clippy::print_stdout,
    reason = "without libtest, the test reports its cases itself"
)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use pikoci_core::engine::env::Inherit;
use pikoci_core::engine::{Invocation, OutputLine, Runner};
use pikoci_runner::{ProcessRunner, WorkerLock};
use tokio_util::sync::CancellationToken;

/// Set to a directory in the helper process.
const HELPER: &str = "PIKOCI_TEST_RUNNER_HELPER";

/// The id of the worker the helper's runner belongs to.
const WORKER: &str = "PIKOCI_TEST_RUNNER_WORKER";

/// Set in a helper that forks its step rather than starting it through the launcher.
const FORK: &str = "PIKOCI_TEST_RUNNER_FORK";

/// The helper's step: a daemon in a session of its own, a background process in the step's
/// group, then the step's own pid, and it waits.
const STEP: &str = "\
setsid sh -c 'echo $$ > daemon.tmp; mv daemon.tmp daemon.pid; exec sleep 600' \
  > /dev/null 2>&1 < /dev/null &
sleep 600 > /dev/null 2>&1 < /dev/null &
echo $! > background.tmp; mv background.tmp background.pid
while [ ! -s daemon.pid ]; do sleep 0.01; done
echo $$ > step.tmp; mv step.tmp step.pid; exec sleep 600
";

fn main() {
    // A launched step is this program too: it must become the step before anything else.
    if std::env::var_os(FORK).is_none() {
        pikoci_runner::enable_launcher();
    }
    match std::env::var_os(HELPER) {
        Some(dir) => run_a_step_until_killed(&PathBuf::from(dir)),
        None => {
            for fork in [false, true] {
                let how = if fork { "forked" } else { "launched" };
                print!("test a_killed_runner_process_leaves_no_{how}_step_running ... ");
                a_killed_runner_process_leaves_no_step_running(fork);
                println!("ok");
            }
        }
    }
}

/// The lock directory of the helper's worker, in the helper's directory.
fn lock_dir(dir: &Path) -> PathBuf {
    dir.join("locks")
}

/// The helper: a worker's lock, and one step, which leaves processes behind, writes its pid and
/// then sleeps for ten minutes.
fn run_a_step_until_killed(dir: &Path) {
    let runtime = tokio::runtime::Runtime::new().expect("a runtime");
    let worker = std::env::var(WORKER).expect("the helper is given a worker id");
    let lock = WorkerLock::acquire(&worker, &lock_dir(dir)).expect("the helper's worker lock");
    let invocation = Invocation {
        program: "/bin/sh".to_owned(),
        args: vec!["-ec".to_owned(), STEP.to_owned()],
        env: BTreeMap::new(),
        inherit: Inherit::Step,
        workdir: dir.to_path_buf(),
    };
    let outcome = runtime.block_on(ProcessRunner::for_worker(&lock).run(
        invocation,
        Arc::new(|_: OutputLine| {}),
        CancellationToken::new(),
    ));
    panic!("the step was to run until this process is killed, but it ended: {outcome:?}");
}

fn a_killed_runner_process_leaves_no_step_running(fork: bool) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    std::fs::create_dir(lock_dir(dir.path())).expect("a lock directory");
    let worker = format!("parent-death-{}", std::process::id());
    let lock_file = lock_dir(dir.path()).join(format!("pikoci-worker-{worker}.lock"));
    let mut helper = std::process::Command::new(std::env::current_exe().expect("this test's path"));
    helper
        .env(HELPER, dir.path())
        .env(WORKER, &worker)
        .stdin(Stdio::null());
    if fork {
        helper.env(FORK, "1");
    }
    let mut helper = helper.spawn().expect("the helper starts");
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
    assert!(
        std::fs::read_to_string(&lock_file).is_ok_and(|run| !run.is_empty()),
        "the helper's lock file holds no run token"
    );
    helper.kill().expect("SIGKILL to the helper");
    helper.wait().expect("the helper is reaped");
    let deadline = Instant::now() + Duration::from_secs(10);
    while running(step) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    let survived = running(step);
    let daemon = read_pid(&dir.path().join("daemon.pid"));
    let background = read_pid(&dir.path().join("background.pid"));
    let _cleanup = KillOnDrop(vec![step, daemon, background]);
    assert!(
        !survived,
        "step process {step} still runs 10 s after the process that started it was killed"
    );
    // The kernel kills only the step's main process: the rest waits for the next worker.
    assert!(running(daemon), "the daemon died with the step");
    assert!(
        running(background),
        "the background process died with the step"
    );
    let runtime = tokio::runtime::Runtime::new().expect("a runtime");
    // A worker of another name (the default name is new at each start) reaps the dead one.
    let next = format!("parent-death-next-{}", std::process::id());
    let next_lock =
        WorkerLock::acquire(&next, &lock_dir(dir.path())).expect("the next worker's lock");
    let reaped = runtime.block_on(ProcessRunner::reap_leftovers(&next_lock));
    assert_eq!(reaped.dead_workers, [worker], "{reaped:?}");
    let mut killed = reaped.processes.clone();
    killed.sort_unstable();
    let mut expected = vec![daemon as u32, background as u32];
    expected.sort_unstable();
    assert_eq!(killed, expected, "{reaped:?}");
    let deadline = Instant::now() + Duration::from_secs(10);
    while (running(daemon) || running(background)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(!running(daemon), "daemon {daemon} survived the reaping");
    assert!(
        !running(background),
        "background process {background} survived the reaping"
    );
    assert!(
        !lock_file.exists(),
        "the dead worker's lock file is left after the reaping"
    );
}

fn read_pid(path: &Path) -> i32 {
    std::fs::read_to_string(path)
        .unwrap_or_else(|error| panic!("cannot read {}: {error}", path.display()))
        .trim()
        .parse()
        .expect("a pid")
}

/// Kills `pids` when dropped, so that a failing test leaves nothing running.
struct KillOnDrop(Vec<i32>);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        for pid in &self.0 {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(*pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
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
