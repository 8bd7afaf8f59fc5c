//! Real processes killed with SIGKILL mid-build (`cargo xtask chaos`, release binaries): a build
//! is never lost and never runs twice at once.
//!
//! Every step of the test pipeline appends to a ledger file, under `flock`, one line per second
//! while it runs: `tick <build> <step pid> <worker pid> <unix ms>`, and `done <build> ...` at
//! its end. Two step processes ticking for the same build at overlapping times would be a
//! build running twice at once; the suite looks for exactly that instead of guessing.
//!
//! A step may also leave a daemon in a session of its own (`daemons`): the kernel does not kill
//! it with its worker, the worker started again under the same name does.

// The suite prints what it measured (how long a build took to run again).
#![allow(clippy::print_stderr)]

mod support;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use support::server::{ServerProcess, WorkerProcess};

/// A job whose one step ticks into the ledger for `seconds` seconds. With `daemons`, the step
/// first starts a daemon in a session of its own and appends `<daemon pid> <step pid>` there.
fn pipeline(ledger: &Path, seconds: u32, daemons: Option<&Path>) -> String {
    let ledger = ledger.display();
    let daemon = daemons.map_or_else(String::new, |daemons| {
        let daemons = daemons.display();
        format!(
            "setsid sleep 600 > /dev/null 2>&1 < /dev/null &\n        \
             flock {daemons} sh -c \"echo $! $$ >> {daemons}\"\n        "
        )
    });
    format!(
        r#"
job "slow" {{
  task "tick" {{
    run "shell" {{
      cmd = <<-EOT
        {daemon}i=0
        while [ $i -lt {seconds} ]; do
          flock {ledger} sh -c "echo tick $BUILD_NUMBER $$ $PPID $(date +%s%3N) >> {ledger}"
          echo "tick $i"
          i=$((i+1))
          sleep 1
        done
        flock {ledger} sh -c "echo done $BUILD_NUMBER $$ $PPID $(date +%s%3N) >> {ledger}"
      EOT
    }}
  }}
}}
"#
    )
}

/// One line of the ledger.
#[derive(Debug, Clone)]
struct Entry {
    kind: String,
    build: String,
    step_pid: u32,
    worker_pid: u32,
    at_ms: u64,
}

fn ledger(path: &Path) -> Vec<Entry> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|line| {
            let parts: Vec<&str> = line.split_whitespace().collect();
            Some(Entry {
                kind: parts.first()?.to_string(),
                build: parts.get(1)?.to_string(),
                step_pid: parts.get(2)?.parse().ok()?,
                worker_pid: parts.get(3)?.parse().ok()?,
                at_ms: parts.get(4)?.parse().ok()?,
            })
        })
        .collect()
}

/// Fails when two step processes of one build ticked at overlapping times.
fn assert_never_twice_at_once(entries: &[Entry]) {
    let mut spans: BTreeMap<(String, u32), (u64, u64)> = BTreeMap::new();
    for entry in entries {
        let span = spans
            .entry((entry.build.clone(), entry.step_pid))
            .or_insert((entry.at_ms, entry.at_ms));
        span.0 = span.0.min(entry.at_ms);
        span.1 = span.1.max(entry.at_ms);
    }
    let spans: Vec<_> = spans.into_iter().collect();
    for (i, ((build, pid), (start, end))) in spans.iter().enumerate() {
        for ((other_build, other_pid), (other_start, other_end)) in &spans[i + 1..] {
            if build == other_build {
                assert!(
                    end < other_start || other_end < start,
                    "build {build} ran twice at once: step pid {pid} ticked {start}..{end}, \
                     step pid {other_pid} ticked {other_start}..{other_end}"
                );
            }
        }
    }
}

fn alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
        && !std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .unwrap_or_default()
            .contains(") Z ")
}

/// Waits up to 10 s for process `pid`, `what`, to end.
fn wait_gone(pid: u32, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while alive(pid) {
        assert!(
            Instant::now() < deadline,
            "{what} (pid {pid}) still runs after 10 s"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Waits until `check` holds, polling the ledger.
fn wait_ledger(path: &Path, what: &str, check: impl Fn(&[Entry]) -> bool) -> Vec<Entry> {
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let entries = ledger(path);
        if check(&entries) {
            return entries;
        }
        assert!(
            Instant::now() < deadline,
            "{what} never happened: {entries:#?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn nats_url() -> String {
    std::env::var("PIKOCI_TEST_NATS_URL")
        .unwrap_or_else(|_| panic!("PIKOCI_TEST_NATS_URL is not set: run `cargo xtask chaos`"))
}

const BUILDS: &str = "/teams/main/pipelines/chaos/jobs/slow/builds";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_worker_s_build_finishes_on_another_worker() {
    let dir = tempfile::tempdir().unwrap();
    let ledger_path = dir.path().join("ledger");
    let daemons_path = dir.path().join("daemons");
    let file = support::write(
        dir.path(),
        "chaos.hcl",
        &pipeline(&ledger_path, 8, Some(&daemons_path)),
    );
    let db = dir.path().join("pikoci.db");
    let url = nats_url();
    let server = ServerProcess::start(&[
        "--db-system",
        "sqlite",
        "--db-name",
        db.to_str().unwrap(),
        "--pubsub-system",
        "nats",
        "--pubsub-url",
        &url,
        "--run-worker=false",
        "--pipeline-config",
        &file,
    ]);
    let worker = |name: &str| {
        let work = dir.path().join(name);
        WorkerProcess::start(&[
            "--pubsub-system",
            "nats",
            "--pubsub-url",
            &url,
            "--name",
            &format!("{name}-{}", std::process::id()),
            "--concurrency",
            "1",
            "--work-dir",
            work.to_str().unwrap(),
        ])
    };
    let mut workers = vec![("a", worker("a")), ("b", worker("b"))];
    let (status, body) = server
        .post(
            "/teams/main/pipelines/chaos/jobs/slow/trigger",
            serde_json::json!({}),
        )
        .await;
    assert_eq!(status, 201, "{body:#}");

    let entries = wait_ledger(&ledger_path, "a first tick", |e| !e.is_empty());
    let victim_pid = entries[0].worker_pid;
    let step_pid = entries[0].step_pid;
    let index = workers
        .iter()
        .position(|(_, w)| w.pid() == victim_pid)
        .expect("the step's parent is one of the workers");
    let (victim, killed) = workers.remove(index);
    killed.kill();
    let killed_at = Instant::now();

    // The dead worker's step dies with it.
    wait_gone(step_pid, "the step of the killed worker");

    // The build runs again on the other worker, within 20 s of the kill, and finishes.
    let survivor = workers[0].1.pid();
    wait_ledger(&ledger_path, "a tick on the surviving worker", |e| {
        e.iter().any(|entry| entry.worker_pid == survivor)
    });
    let moved_after = killed_at.elapsed();
    let build = server.wait_finished(&format!("{BUILDS}/1")).await;
    assert_eq!(build["status"], "succeeded", "{build:#}");
    eprintln!("worker killed -> build running again elsewhere: {moved_after:?}");
    assert!(
        moved_after < Duration::from_secs(20),
        "the build took {moved_after:?} to run again"
    );

    let entries = ledger(&ledger_path);
    assert_never_twice_at_once(&entries);
    assert_eq!(
        entries.iter().filter(|e| e.kind == "done").count(),
        1,
        "{entries:#?}"
    );
    // The final attempt's log is complete: every tick of the surviving run, in order.
    let log = server.text(&format!("{BUILDS}/1/logs")).await;
    let ticks: Vec<&str> = log.lines().filter(|l| l.starts_with("tick ")).collect();
    let tail: Vec<String> = (0..8).map(|i| format!("tick {i}")).collect();
    assert!(
        ticks.ends_with(&tail.iter().map(String::as_str).collect::<Vec<_>>()),
        "{log}"
    );
    assert!(log.contains("lost its worker"), "{log}");

    // The killed worker's daemon outlived it; the worker started again under the same name
    // kills it before it takes work, and leaves the other worker's alone.
    let daemons = daemon_pids(&daemons_path);
    let _cleanup = KillOnDrop(daemons.iter().map(|(daemon, _)| *daemon).collect());
    let (orphan, _) = *daemons
        .iter()
        .find(|(_, step)| *step == step_pid)
        .expect("the killed worker's step started a daemon");
    assert!(alive(orphan), "the daemon died with its worker");
    assert!(
        daemons.iter().any(|(_, step)| *step != step_pid),
        "the run on the surviving worker started no daemon: {daemons:?}"
    );
    let _restarted = worker(victim);
    wait_gone(orphan, "the killed worker's daemon, its worker restarted,");
    for (daemon, step) in &daemons {
        if *step != step_pid {
            assert!(
                alive(*daemon),
                "the surviving worker's daemon {daemon} was killed"
            );
        }
    }
}

/// The `<daemon pid> <step pid>` lines of the daemons file.
fn daemon_pids(path: &Path) -> Vec<(u32, u32)> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|line| {
            let (daemon, step) = line.split_once(' ')?;
            Some((daemon.parse().ok()?, step.trim().parse().ok()?))
        })
        .collect()
}

/// Kills `pids` when dropped: the daemons the steps left.
struct KillOnDrop(Vec<u32>);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        for pid in &self.0 {
            if let Ok(pid) = i32::try_from(*pid) {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_server_restarts_without_losing_or_repeating_builds() {
    let dir = tempfile::tempdir().unwrap();
    let ledger_path = dir.path().join("ledger");
    let file = support::write(dir.path(), "chaos.hcl", &pipeline(&ledger_path, 6, None));
    let db = dir.path().join("pikoci.db");
    let url = nats_url();
    let server_args = [
        "--db-system",
        "sqlite",
        "--db-name",
        db.to_str().unwrap(),
        "--pubsub-system",
        "nats",
        "--pubsub-url",
        &url,
        "--run-worker=false",
        "--pipeline-config",
        &file,
    ];
    let server = ServerProcess::start(&server_args);
    let work = dir.path().join("work");
    let _worker = WorkerProcess::start(&[
        "--pubsub-system",
        "nats",
        "--pubsub-url",
        &url,
        "--name",
        &format!("steady-{}", std::process::id()),
        "--concurrency",
        "2",
        "--work-dir",
        work.to_str().unwrap(),
    ]);
    for _ in 0..2 {
        let (status, body) = server
            .post(
                "/teams/main/pipelines/chaos/jobs/slow/trigger",
                serde_json::json!({}),
            )
            .await;
        assert_eq!(status, 201, "{body:#}");
    }
    wait_ledger(&ledger_path, "ticks of both builds", |e| {
        e.iter().any(|x| x.build == "1") && e.iter().any(|x| x.build == "2")
    });
    drop(server); // SIGKILL
    let server = ServerProcess::start(&server_args);
    for number in ["1", "2"] {
        let build = server.wait_finished(&format!("{BUILDS}/{number}")).await;
        assert_eq!(build["status"], "succeeded", "{build:#}");
    }
    let entries = ledger(&ledger_path);
    assert_never_twice_at_once(&entries);
    // Neither build ran again: their worker stayed alive, so one step process each.
    for number in ["1", "2"] {
        let pids: std::collections::BTreeSet<u32> = entries
            .iter()
            .filter(|e| e.build == number)
            .map(|e| e.step_pid)
            .collect();
        assert_eq!(pids.len(), 1, "build {number} re-ran: {entries:#?}");
    }
    let (_, builds) = server.get(BUILDS).await;
    assert_eq!(
        builds["data"].as_array().map(Vec::len),
        Some(2),
        "no build lost, none duplicated: {builds:#}"
    );
}
