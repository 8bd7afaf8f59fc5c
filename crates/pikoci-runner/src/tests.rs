//! Real processes: output order and streaming, exit statuses, and process-tree killing.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::*;
use pikoci_core::engine::env::Inherit;

struct Captured {
    lines: Arc<Mutex<Vec<(Stream, String, Instant)>>>,
    sink: OutputSink,
}

fn capture() -> Captured {
    let lines = Arc::new(Mutex::new(Vec::new()));
    let store = lines.clone();
    let sink: OutputSink = Arc::new(move |line: OutputLine| {
        store
            .lock()
            .unwrap()
            .push((line.stream, line.text, Instant::now()));
    });
    Captured { lines, sink }
}

fn sh(script: &str, workdir: &Path) -> Invocation {
    Invocation {
        program: "/bin/sh".to_owned(),
        args: vec!["-ec".to_owned(), script.to_owned()],
        env: BTreeMap::from([("GREETING".to_owned(), "hello".to_owned())]),
        inherit: Inherit::Step,
        workdir: workdir.to_path_buf(),
    }
}

fn alive(pid: i32) -> bool {
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_ok()
}

async fn wait_for_file(path: &Path) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        if let Ok(text) = std::fs::read_to_string(path)
            && !text.trim().is_empty()
        {
            return text;
        }
        assert!(
            Instant::now() < deadline,
            "{} never appeared",
            path.display()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn stdout_and_stderr_arrive_in_order_with_env_and_workdir() {
    let dir = tempfile::tempdir().unwrap();
    let out = capture();
    // Two pipes have no order between them: the script writes each of its first two lines, then
    // waits on a fifo of its own until the test has received that line.
    let script = "mkfifo one two; echo one; read _ < one; echo two >&2; read _ < two; \
                  echo \"$GREETING from $(pwd)\"; printf 'no newline'";
    let workdir = dir.path().to_path_buf();
    let captured = out.sink.clone();
    let sink: OutputSink = Arc::new(move |line: OutputLine| {
        let ack = ["one", "two"]
            .contains(&line.text.as_str())
            .then(|| workdir.join(&line.text));
        captured(line);
        if let Some(ack) = ack {
            // Opening a fifo waits for its reader: not on the runtime's thread.
            std::thread::spawn(move || std::fs::write(ack, "\n"));
        }
    });
    let outcome = ProcessRunner::new()
        .run(sh(script, dir.path()), sink, CancellationToken::new())
        .await;
    assert_eq!(outcome, RunOutcome::Exited(0));
    let lines: Vec<(Stream, String)> = out
        .lines
        .lock()
        .unwrap()
        .iter()
        .map(|(s, t, _)| (*s, t.clone()))
        .collect();
    let workdir = std::fs::canonicalize(dir.path()).unwrap();
    assert_eq!(
        lines,
        [
            (Stream::Stdout, "one".to_owned()),
            (Stream::Stderr, "two".to_owned()),
            (Stream::Stdout, format!("hello from {}", workdir.display())),
            (Stream::Stdout, "no newline".to_owned()),
        ]
    );
}

#[tokio::test]
async fn output_is_streamed_before_the_process_ends() {
    let dir = tempfile::tempdir().unwrap();
    let out = capture();
    let go = dir.path().join("go");
    // The process cannot end before the test has seen its first line.
    let script = format!(
        "echo early; while [ ! -e {} ]; do sleep 0.05; done; echo late",
        go.display()
    );
    let run = tokio::spawn({
        let invocation = sh(&script, dir.path());
        let sink = out.sink.clone();
        async move {
            ProcessRunner::new()
                .run(invocation, sink, CancellationToken::new())
                .await
        }
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    while out.lines.lock().unwrap().is_empty() {
        assert!(
            Instant::now() < deadline,
            "the first line never arrived while the process ran"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(out.lines.lock().unwrap()[0].1, "early");
    std::fs::write(&go, "").unwrap();
    assert_eq!(run.await.unwrap(), RunOutcome::Exited(0));
    let lines: Vec<String> = out
        .lines
        .lock()
        .unwrap()
        .iter()
        .map(|l| l.1.clone())
        .collect();
    assert_eq!(lines, ["early", "late"]);
}

#[tokio::test]
async fn exit_statuses_and_spawn_failures() {
    let dir = tempfile::tempdir().unwrap();
    let runner = ProcessRunner::new();
    let outcome = runner
        .run(
            sh("exit 3", dir.path()),
            capture().sink,
            CancellationToken::new(),
        )
        .await;
    assert_eq!(outcome, RunOutcome::Exited(3));
    let outcome = runner
        .run(
            sh("kill -TERM $$", dir.path()),
            capture().sink,
            CancellationToken::new(),
        )
        .await;
    assert_eq!(outcome, RunOutcome::Signaled(15));
    let mut missing = sh("", dir.path());
    missing.program = "/nonexistent/tool".to_owned();
    match runner
        .run(missing, capture().sink, CancellationToken::new())
        .await
    {
        RunOutcome::SpawnFailed(why) => {
            assert_eq!(why.kind(), ErrorKind::NotFound);
            assert_eq!(why.to_string(), "cannot run \"/nonexistent/tool\"");
            assert!(why.full_message().contains("No such file"), "{why:?}");
        }
        other => panic!("expected a spawn failure, got {other:?}"),
    }
}

#[tokio::test]
async fn relative_programs_run_from_the_work_directory() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("bin")).unwrap();
    let script = dir.path().join("bin/hello.sh");
    std::fs::write(&script, "#!/bin/sh\necho from script\n").unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    let out = capture();
    let invocation = Invocation {
        program: "bin/hello.sh".to_owned(),
        args: vec![],
        env: BTreeMap::new(),
        inherit: Inherit::Step,
        workdir: dir.path().to_path_buf(),
    };
    assert_eq!(
        ProcessRunner::new()
            .run(invocation, out.sink.clone(), CancellationToken::new())
            .await,
        RunOutcome::Exited(0)
    );
    assert_eq!(out.lines.lock().unwrap()[0].1, "from script");
}

#[tokio::test]
async fn cancellation_kills_the_whole_tree() {
    let dir = tempfile::tempdir().unwrap();
    let pidfile = dir.path().join("grandchild.pid");
    let cancel = CancellationToken::new();
    let script = format!("sleep 300 & echo $! > {}; sleep 300", pidfile.display());
    let run = tokio::spawn({
        let cancel = cancel.clone();
        let invocation = sh(&script, dir.path());
        async move {
            ProcessRunner::new()
                .run(invocation, capture().sink, cancel)
                .await
        }
    });
    let grandchild: i32 = wait_for_file(&pidfile).await.trim().parse().unwrap();
    assert!(alive(grandchild));
    cancel.cancel();
    // A deadline against a hang (the script sleeps 300 s when not killed), not a speed check.
    let outcome = tokio::time::timeout(Duration::from_secs(60), run)
        .await
        .expect("the cancelled run never ended");
    assert_eq!(outcome.unwrap(), RunOutcome::Cancelled);
    let deadline = Instant::now() + Duration::from_secs(5);
    while alive(grandchild) {
        assert!(
            Instant::now() < deadline,
            "grandchild {grandchild} survived the cancellation"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn background_processes_do_not_outlive_their_step() {
    let dir = tempfile::tempdir().unwrap();
    let pidfile = dir.path().join("background.pid");
    let script = format!(
        "sleep 300 > /dev/null 2>&1 & echo $! > {}",
        pidfile.display()
    );
    let outcome = ProcessRunner::new()
        .run(
            sh(&script, dir.path()),
            capture().sink,
            CancellationToken::new(),
        )
        .await;
    assert_eq!(outcome, RunOutcome::Exited(0));
    let background: i32 = wait_for_file(&pidfile).await.trim().parse().unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while alive(background) {
        assert!(
            Instant::now() < deadline,
            "background process {background} survived its step"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_step_inherits_the_allow_list_and_a_secret_command_all_but_pikoci() {
    // cargo sets CARGO_MANIFEST_DIR in the test's environment: on no allow-list.
    assert!(std::env::var("CARGO_MANIFEST_DIR").is_ok());
    assert!(std::env::var("PATH").is_ok());
    let dir = tempfile::tempdir().unwrap();
    let names = |inherit: Inherit| {
        let dir = dir.path().to_path_buf();
        async move {
            let out = capture();
            let mut invocation = sh("env", &dir);
            invocation.inherit = inherit;
            let outcome = ProcessRunner::new()
                .run(invocation, out.sink.clone(), CancellationToken::new())
                .await;
            assert_eq!(outcome, RunOutcome::Exited(0));
            let lines = out.lines.lock().unwrap();
            lines
                .iter()
                .filter_map(|(_, line, _)| line.split_once('=').map(|(k, _)| k.to_owned()))
                .collect::<Vec<String>>()
        }
    };
    let step = names(Inherit::Step).await;
    assert!(step.contains(&"PATH".to_owned()), "{step:?}");
    assert!(step.contains(&"GREETING".to_owned()), "{step:?}");
    assert!(!step.contains(&"CARGO_MANIFEST_DIR".to_owned()), "{step:?}");
    for name in &step {
        assert!(
            Inherit::Step.allows(name)
                || name == "GREETING"
                || name == "PWD"
                || name == "SHLVL"
                || name == "_",
            "{name} leaked into a step"
        );
    }
    let secret_command = names(Inherit::SecretCommand).await;
    assert!(secret_command.contains(&"CARGO_MANIFEST_DIR".to_owned()));
}

/// A step is killed when this process dies (`PR_SET_PDEATHSIG`), which Linux ties to the
/// thread that forked it: the step must outlive the thread that first ran the runner (a
/// blocking-pool thread that retires, a runtime on a short-lived thread). Here that thread
/// starts the step, hands the running future over, and exits; the step then still ends on its
/// own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
// The starting thread returns the running future on purpose: it is awaited on another thread.
#[allow(clippy::async_yields_async)]
async fn a_step_outlives_the_thread_that_started_it() {
    let dir = tempfile::tempdir().unwrap();
    let out = capture();
    // The step outlives the thread by a second: a parent-death signal fires as the thread exits.
    let invocation = sh("echo $$ > pid; sleep 1; echo survived", dir.path());
    let runtime = tokio::runtime::Handle::current();
    let pid_file = dir.path().join("pid");
    let sink = out.sink.clone();
    let starter = std::thread::spawn(move || {
        runtime.block_on(async move {
            let mut run = Box::pin(async move {
                ProcessRunner::new()
                    .run(invocation, sink, CancellationToken::new())
                    .await
            });
            tokio::select! {
                outcome = &mut run => panic!("the step ended before it started: {outcome:?}"),
                _ = wait_for_file(&pid_file) => {}
            }
            run
        })
    });
    let run = starter.join().expect("the starting thread panicked");
    let outcome = run.await;
    assert_eq!(
        outcome,
        RunOutcome::Exited(0),
        "killed when its starting thread exited"
    );
    let lines: Vec<String> = out
        .lines
        .lock()
        .unwrap()
        .iter()
        .map(|l| l.1.clone())
        .collect();
    assert_eq!(lines, ["survived"]);
}

/// A run whose cancellation already fired (a hook of an aborted build) starts nothing.
#[tokio::test]
async fn a_cancelled_run_starts_no_process() {
    let dir = tempfile::tempdir().unwrap();
    let cancel = CancellationToken::new();
    cancel.cancel();
    let out = capture();
    let outcome = ProcessRunner::new()
        .run(
            sh("touch ran; echo ran", dir.path()),
            out.sink.clone(),
            cancel,
        )
        .await;
    assert_eq!(outcome, RunOutcome::Cancelled);
    assert!(!dir.path().join("ran").exists());
    assert!(out.lines.lock().unwrap().is_empty());
}

/// Whether `pid` runs (not gone, not a zombie waiting for its parent to reap it).
fn running(pid: i32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|stat| {
        stat.rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X")
    })
}

/// A worker id no other test (or test run) uses.
fn unique_worker(name: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default();
    format!("{name}-{}-{nanos:x}", std::process::id())
}

/// Runs a step with `runner` that leaves a daemon behind in a session of its own (which the
/// end of the step does not kill); the daemon's pid.
async fn leave_a_daemon(runner: &ProcessRunner, dir: &Path, name: &str) -> i32 {
    let pid = dir.join(format!("{name}.pid"));
    let pid = pid.display();
    let script = format!(
        "setsid sh -c 'echo $$ > {pid}.tmp; mv {pid}.tmp {pid}; exec sleep 300' \
         > /dev/null 2>&1 < /dev/null &
         while [ ! -s {pid} ]; do sleep 0.01; done"
    );
    let outcome = runner
        .run(sh(&script, dir), capture().sink, CancellationToken::new())
        .await;
    assert_eq!(outcome, RunOutcome::Exited(0));
    let daemon: i32 = wait_for_file(&dir.join(format!("{name}.pid")))
        .await
        .trim()
        .parse()
        .unwrap();
    assert!(running(daemon), "the daemon {name} outlives its step");
    daemon
}

/// Kills `pids` when dropped, so that a failing test leaves no daemon behind.
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

#[tokio::test]
async fn a_workers_steps_carry_its_id_and_run_and_other_steps_none() {
    let dir = tempfile::tempdir().unwrap();
    let locks = tempfile::tempdir().unwrap();
    let lock = WorkerLock::acquire("box-1", locks.path()).unwrap();
    let marker = |runner: ProcessRunner| {
        let dir = dir.path().to_path_buf();
        async move {
            let out = capture();
            let mut invocation = sh(
                "echo \"${PIKOCI_WORKER_ID-none} ${PIKOCI_WORKER_RUN-none}\"",
                &dir,
            );
            // A pipeline's parameter cannot name another worker or run.
            invocation
                .env
                .insert(WORKER_MARKER.to_owned(), "someone-else".to_owned());
            invocation
                .env
                .insert(RUN_MARKER.to_owned(), "another-run".to_owned());
            let outcome = runner
                .run(invocation, out.sink.clone(), CancellationToken::new())
                .await;
            assert_eq!(outcome, RunOutcome::Exited(0));
            out.lines.lock().unwrap()[0].1.clone()
        }
    };
    assert_eq!(
        marker(ProcessRunner::for_worker(&lock)).await,
        format!("box-1 {}", lock.run())
    );
    assert_eq!(
        marker(ProcessRunner::new()).await,
        "someone-else another-run",
        "a runner of no worker adds nothing"
    );
}

#[tokio::test]
async fn reaping_kills_the_daemons_an_earlier_run_of_the_worker_left_and_nothing_else() {
    let dir = tempfile::tempdir().unwrap();
    let locks = tempfile::tempdir().unwrap();
    let worker = unique_worker("reaped");
    let earlier_lock = WorkerLock::acquire(&worker, locks.path()).unwrap();
    let earlier = ProcessRunner::for_worker(&earlier_lock);
    let daemon = leave_a_daemon(&earlier, dir.path(), "daemon").await;
    // A worker of the same name with another lock directory (another TMPDIR): another run.
    let elsewhere = tempfile::tempdir().unwrap();
    let namesake_lock = WorkerLock::acquire(&worker, elsewhere.path()).unwrap();
    let namesake = leave_a_daemon(
        &ProcessRunner::for_worker(&namesake_lock),
        dir.path(),
        "namesake",
    )
    .await;
    let unmarked = leave_a_daemon(&ProcessRunner::new(), dir.path(), "unmarked").await;
    let _cleanup = KillOnDrop(vec![daemon, namesake, unmarked]);
    // A step of this process, running now: not a leftover.
    let step_pid = dir.path().join("step.pid");
    let cancel = CancellationToken::new();
    let step = tokio::spawn({
        let invocation = sh(
            &format!("echo $$ > {}; exec sleep 300", step_pid.display()),
            dir.path(),
        );
        let runner = earlier.clone();
        let cancel = cancel.clone();
        async move { runner.run(invocation, capture().sink, cancel).await }
    });
    let step_pid: i32 = wait_for_file(&step_pid).await.trim().parse().unwrap();

    // The earlier run is gone (as if killed); the worker starts again with the same name.
    drop(earlier_lock);
    let lock = WorkerLock::acquire(&worker, locks.path()).unwrap();
    let reaped = ProcessRunner::reap_leftovers(&lock).await;
    assert_eq!(reaped.processes, [daemon as u32], "{reaped:?}");
    assert!(reaped.dead_workers.is_empty(), "{reaped:?}");
    assert_eq!(
        reaped.groups,
        [daemon as u32],
        "a session of its own: {reaped:?}"
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while running(daemon) {
        assert!(
            Instant::now() < deadline,
            "daemon {daemon} survived the reaping"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(
        running(namesake),
        "the daemon of a live worker of the same name was killed"
    );
    assert!(running(unmarked), "an unmarked daemon was killed");
    assert!(running(step_pid), "this process's own step was killed");
    cancel.cancel();
    assert_eq!(step.await.unwrap(), RunOutcome::Cancelled);
    // Nothing left: the next run of the name finds nothing.
    drop(lock);
    let next = WorkerLock::acquire(&worker, locks.path()).unwrap();
    assert!(ProcessRunner::reap_leftovers(&next).await.is_empty());
}

#[tokio::test]
async fn reaping_kills_what_dead_workers_of_any_name_left_and_spares_live_and_unknown_ones() {
    let dir = tempfile::tempdir().unwrap();
    let locks = tempfile::tempdir().unwrap();
    let (dead, live, unknown, me) = (
        unique_worker("dead"),
        unique_worker("live"),
        unique_worker("unknown"),
        unique_worker("me"),
    );
    let dead_lock = WorkerLock::acquire(&dead, locks.path()).unwrap();
    let live_lock = WorkerLock::acquire(&live, locks.path()).unwrap();
    let dead_daemon =
        leave_a_daemon(&ProcessRunner::for_worker(&dead_lock), dir.path(), "dead").await;
    let live_daemon =
        leave_a_daemon(&ProcessRunner::for_worker(&live_lock), dir.path(), "live").await;
    // A worker with no lock file here (another temporary directory, another machine).
    let elsewhere = tempfile::tempdir().unwrap();
    let unknown_lock = WorkerLock::acquire(&unknown, elsewhere.path()).unwrap();
    let unknown_daemon = leave_a_daemon(
        &ProcessRunner::for_worker(&unknown_lock),
        dir.path(),
        "unknown",
    )
    .await;
    drop(unknown_lock);
    let unmarked = leave_a_daemon(&ProcessRunner::new(), dir.path(), "unmarked").await;
    let _cleanup = KillOnDrop(vec![dead_daemon, live_daemon, unknown_daemon, unmarked]);
    // The dead worker: its lock file is there and nobody holds it.
    drop(dead_lock);

    let own_lock = WorkerLock::acquire(&me, locks.path()).unwrap();
    // A process another test of this binary forks at that moment holds a copy of every
    // descriptor until it execs, the dead worker's lock included, and the lock then looks held:
    // ask again until that copy is gone.
    let mut reaped = ProcessRunner::reap_leftovers(&own_lock).await;
    let patience = Instant::now() + Duration::from_secs(10);
    while reaped.dead_workers.is_empty() && Instant::now() < patience {
        tokio::time::sleep(Duration::from_millis(50)).await;
        reaped = ProcessRunner::reap_leftovers(&own_lock).await;
    }
    assert_eq!(reaped.dead_workers, [dead.as_str()], "{reaped:?}");
    assert_eq!(reaped.processes, [dead_daemon as u32], "{reaped:?}");
    let deadline = Instant::now() + Duration::from_secs(10);
    while running(dead_daemon) {
        assert!(
            Instant::now() < deadline,
            "the dead worker's daemon {dead_daemon} survived the reaping"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(running(live_daemon), "a live worker's daemon was killed");
    assert!(
        running(unknown_daemon),
        "the daemon of a worker with no lock file here was killed"
    );
    assert!(running(unmarked), "an unmarked daemon was killed");
    assert!(
        !locks
            .path()
            .join(format!("pikoci-worker-{dead}.lock"))
            .exists(),
        "the dead worker's lock file is left"
    );
    assert!(
        live_lock.path().exists(),
        "the live worker's lock file is gone"
    );
    assert!(
        own_lock.path().exists(),
        "the worker's own lock file is gone"
    );
    // The dead worker is forgotten; the live one is still live.
    let again = ProcessRunner::reap_leftovers(&own_lock).await;
    assert!(
        again.is_empty() && again.dead_workers.is_empty(),
        "{again:?}"
    );
    // Once the live worker is gone, the next worker to start reaps it too.
    drop(live_lock);
    let later_lock = WorkerLock::acquire(&unique_worker("later"), locks.path()).unwrap();
    let later = ProcessRunner::reap_leftovers(&later_lock).await;
    assert_eq!(later.dead_workers, [live], "{later:?}");
    assert_eq!(later.processes, [live_daemon as u32], "{later:?}");
    assert!(own_lock.path().exists());
}
