//! What the chaos scenarios share: the databases and brokers of the matrix, the pipeline whose
//! steps write the ledger, the ledger itself and the processes' fate.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::servers::{KafkaBehindRelay, NatsServer, RabbitNode, Restartable};
use crate::support::server::{ServerProcess, WorkerProcess};

/// The value of a variable `cargo xtask chaos` sets; fails naming it when missing.
pub(crate) fn service(variable: &str) -> String {
    std::env::var(variable).unwrap_or_else(|_| {
        panic!("{variable} is not set: run this suite with `cargo xtask chaos`, which sets it")
    })
}

/// The cases of a matrix scenario, each with its name: `full` when `cargo xtask chaos` asked
/// for the whole matrix (`PIKOCI_CHAOS=full`), `quick` for one combination per scenario (what
/// `cargo xtask ci` runs); of those, the ones whose name contains `PIKOCI_CHAOS_ONLY` when it is
/// set (`cargo xtask chaos` passes it on; `--quick` refuses it). Fails when it selects none.
pub(crate) fn cases<T>(
    full: Vec<T>,
    quick: Vec<T>,
    name: impl Fn(&T) -> String,
) -> Vec<(T, String)> {
    let matrix = match service("PIKOCI_CHAOS").as_str() {
        "full" => full,
        "quick" => quick,
        other => panic!("PIKOCI_CHAOS is \"{other}\": it must be \"full\" or \"quick\""),
    };
    let only = std::env::var("PIKOCI_CHAOS_ONLY").ok();
    let cases: Vec<(T, String)> = matrix
        .into_iter()
        .map(|case| {
            let named = name(&case);
            (case, named)
        })
        .filter(|(_, named)| only.as_ref().is_none_or(|only| named.contains(only)))
        .collect();
    if let Some(only) = only {
        assert!(
            !cases.is_empty(),
            "PIKOCI_CHAOS_ONLY={only} selects no case of this scenario: unset it to run them all"
        );
    }
    cases
}

/// The database of one case.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DbKind {
    Sqlite,
    Postgres,
    Mysql,
}

/// The broker of one case.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum BusKind {
    Nats,
    Rabbitmq,
    Kafka,
}

impl BusKind {
    pub(crate) const ALL: [BusKind; 3] = [BusKind::Nats, BusKind::Rabbitmq, BusKind::Kafka];

    fn name(self) -> &'static str {
        match self {
            BusKind::Nats => "nats",
            BusKind::Rabbitmq => "rabbitmq",
            BusKind::Kafka => "kafka",
        }
    }
}

impl DbKind {
    fn name(self) -> &'static str {
        match self {
            DbKind::Sqlite => "sqlite",
            DbKind::Postgres => "postgres",
            DbKind::Mysql => "mysql",
        }
    }
}

/// `db x broker` in a name a database may carry: `postgres_nats`.
pub(crate) fn case_name(db: DbKind, bus: BusKind) -> String {
    format!("{}_{}", db.name(), bus.name())
}

/// A broker of the case's own, which the scenario may stop and start again: a NATS server with
/// its JetStream store, a RabbitMQ node with its database, or tansu behind a relay that cuts
/// every connection (tansu keeps its data in memory only, so it is never killed).
pub(crate) enum Bus {
    Nats(NatsServer),
    Rabbitmq(RabbitNode),
    Kafka(KafkaBehindRelay),
}

impl Bus {
    pub(crate) async fn start(kind: BusKind) -> Bus {
        match kind {
            BusKind::Nats => Bus::Nats(NatsServer::start(service("PIKOCI_TEST_NATS_SERVER")).await),
            BusKind::Rabbitmq => {
                Bus::Rabbitmq(RabbitNode::start(service("PIKOCI_TEST_RABBITMQ_SERVER")).await)
            }
            BusKind::Kafka => {
                Bus::Kafka(KafkaBehindRelay::start(&service("PIKOCI_TEST_TANSU")).await)
            }
        }
    }

    pub(crate) fn kind(&self) -> BusKind {
        match self {
            Bus::Nats(_) => BusKind::Nats,
            Bus::Rabbitmq(_) => BusKind::Rabbitmq,
            Bus::Kafka(_) => BusKind::Kafka,
        }
    }

    fn url(&self) -> String {
        match self {
            Bus::Nats(server) => server.url(),
            Bus::Rabbitmq(node) => node.url(),
            // tansu holds a fetch for half its wait even with messages there.
            Bus::Kafka(kafka) => format!("{}?fetch_wait_ms=10", kafka.url()),
        }
    }

    /// `--pubsub-system S --pubsub-url U`.
    pub(crate) fn args(&self) -> Vec<String> {
        vec![
            "--pubsub-system".into(),
            self.kind().name().into(),
            "--pubsub-url".into(),
            self.url(),
        ]
    }

    /// The broker as something to stop and start.
    pub(crate) fn server(&mut self) -> &mut dyn Restartable {
        match self {
            Bus::Nats(server) => server,
            Bus::Rabbitmq(node) => node,
            Bus::Kafka(kafka) => kafka,
        }
    }
}

/// `--db-*` of a case: a SQLite file in `dir`, or a database of its own on the machine's
/// PostgreSQL or MariaDB, named after the run's (which `cargo xtask chaos` drops afterwards) and
/// created by the server.
pub(crate) fn db_args(kind: DbKind, dir: &Path, case: &str) -> Vec<String> {
    match kind {
        DbKind::Sqlite => vec![
            "--db-system".into(),
            "sqlite".into(),
            "--db-name".into(),
            dir.join("pikoci.db").display().to_string(),
        ],
        DbKind::Postgres => vec![
            "--db-url".into(),
            format!("{}_{case}", service("PIKOCI_TEST_POSTGRES_URL")),
        ],
        DbKind::Mysql => vec![
            "--db-system".into(),
            "mysql".into(),
            "--db-url".into(),
            format!("{}_{case}", service("PIKOCI_TEST_MYSQL_URL")),
        ],
    }
}

/// One installation of the case: the server's flags, and workers started on the same broker.
pub(crate) struct Cluster {
    pub(crate) dir: tempfile::TempDir,
    pub(crate) ledger: PathBuf,
    server_args: Vec<String>,
    bus_args: Vec<String>,
}

impl Cluster {
    /// A cluster on `db` and `bus` running `pipeline` (given the ledger's path).
    pub(crate) fn new(
        db: DbKind,
        bus: &Bus,
        case: &str,
        pipeline: impl FnOnce(&Path) -> String,
    ) -> Cluster {
        let dir = tempfile::tempdir().unwrap();
        let ledger = dir.path().join("ledger");
        let file = crate::support::write(dir.path(), "chaos.hcl", &pipeline(&ledger));
        let mut server_args = db_args(db, dir.path(), case);
        server_args.extend(bus.args());
        server_args.extend([
            "--run-worker=false".into(),
            "--pipeline-config".into(),
            file,
        ]);
        Cluster {
            dir,
            ledger,
            server_args,
            bus_args: bus.args(),
        }
    }

    pub(crate) fn server(&self) -> ServerProcess {
        let args: Vec<&str> = self.server_args.iter().map(String::as_str).collect();
        ServerProcess::start(&args)
    }

    /// A worker named `name` (made unique to this test process) running `concurrency` builds.
    pub(crate) fn worker(&self, name: &str, concurrency: u32) -> WorkerProcess {
        let work = self.dir.path().join(name);
        let name = format!("{name}-{}", std::process::id());
        let concurrency = concurrency.to_string();
        let mut args: Vec<&str> = self.bus_args.iter().map(String::as_str).collect();
        args.extend([
            "--name",
            &name,
            "--concurrency",
            &concurrency,
            "--work-dir",
            work.to_str().unwrap(),
        ]);
        WorkerProcess::start(&args)
    }

    /// The ledger so far.
    pub(crate) fn ledger(&self) -> Vec<Entry> {
        ledger(&self.ledger)
    }

    /// Waits until `check` holds for the ledger; returns it.
    pub(crate) fn wait_ledger(&self, what: &str, check: impl Fn(&[Entry]) -> bool) -> Vec<Entry> {
        let deadline = Instant::now() + Duration::from_secs(180);
        loop {
            let entries = self.ledger();
            if check(&entries) {
                return entries;
            }
            assert!(
                Instant::now() < deadline,
                "{what} never happened: {entries:#?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// The shell lines that append `<kind> <key> <step pid> <worker pid> <unix ms>` to `ledger`
/// under its lock (the step's shell is a child of its worker: `$PPID` is the worker).
pub(crate) fn record(ledger: &Path, kind: &str, key: &str) -> String {
    let ledger = ledger.display();
    format!(r#"flock '{ledger}' sh -c "echo {kind} {key} $$ $PPID $(date +%s%3N) >> '{ledger}'""#)
}

/// A step that prints `lines` lines (`line 1` to `line N`) over about `seconds` seconds,
/// recording `start`, a `tick` each second and `done` in the ledger under `$BUILD_NUMBER`. With
/// `daemon`, it first starts a daemon in a session of its own, recorded as `daemon <its pid>`.
pub(crate) fn step(ledger: &Path, lines: u32, seconds: u32, daemon: bool) -> String {
    let per_tick = (lines / seconds.max(1)).max(1);
    let daemon = if daemon {
        format!(
            "setsid sleep 600 > /dev/null 2>&1 < /dev/null &\n{}\n",
            record(ledger, "daemon", "$!")
        )
    } else {
        String::new()
    };
    format!(
        r#"{start}
{daemon}i=1
while [ $i -le {lines} ]; do
  echo "line $i"
  if [ $((i % {per_tick})) -eq 0 ]; then
    {tick}
    sleep 1
  fi
  i=$((i+1))
done
{done}"#,
        start = record(ledger, "start", "$BUILD_NUMBER"),
        tick = record(ledger, "tick", "$BUILD_NUMBER"),
        done = record(ledger, "done", "$BUILD_NUMBER"),
    )
}

/// A pipeline with one job, `slow`, whose one task is `step`.
pub(crate) fn slow_job(step: &str) -> String {
    format!(
        r#"
job "slow" {{
  task "work" {{
    run "shell" {{
      cmd = <<-EOT
{step}
      EOT
    }}
  }}
}}
"#
    )
}

pub(crate) const BUILDS: &str = "/teams/main/pipelines/chaos/jobs/slow/builds";

/// Triggers `count` builds of `slow`.
pub(crate) async fn trigger(server: &ServerProcess, count: u32) {
    for _ in 0..count {
        let (status, body) = server
            .post(
                "/teams/main/pipelines/chaos/jobs/slow/trigger",
                serde_json::json!({}),
            )
            .await;
        assert_eq!(status, 201, "{body:#}");
    }
}

/// Waits for builds `1..=count` of `slow` to finish; fails unless each succeeded with its 300
/// (`lines`) lines, once each and in order, in the log of its last attempt.
pub(crate) async fn assert_all_succeeded(server: &ServerProcess, count: u32, lines: u32) {
    let expected: Vec<String> = (1..=lines).map(|i| format!("line {i}")).collect();
    for number in 1..=count {
        let build = server.wait_finished(&format!("{BUILDS}/{number}")).await;
        assert_eq!(build["status"], "succeeded", "build {number}: {build:#}");
        let log = server.text(&format!("{BUILDS}/{number}/logs")).await;
        let got: Vec<&str> = log.lines().filter(|l| l.starts_with("line ")).collect();
        assert!(
            got == expected,
            "build {number}: the log of its last attempt has {} lines, not {lines} once each in \
             order:\n{log}",
            got.len()
        );
    }
}

/// The builds `slow` has, newest first (up to 500).
pub(crate) async fn builds(server: &ServerProcess) -> Vec<Value> {
    let (status, body) = server.get(&format!("{BUILDS}?limit=500")).await;
    assert_eq!(status, 200, "{body:#}");
    body["data"].as_array().cloned().unwrap_or_default()
}

/// One line of the ledger.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    pub(crate) kind: String,
    /// The build number, or `check`.
    pub(crate) key: String,
    pub(crate) pid: u32,
    pub(crate) worker_pid: u32,
    pub(crate) at_ms: u64,
}

fn ledger(path: &Path) -> Vec<Entry> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|line| {
            let parts: Vec<&str> = line.split_whitespace().collect();
            Some(Entry {
                kind: parts.first()?.to_string(),
                key: parts.get(1)?.to_string(),
                pid: parts.get(2)?.parse().ok()?,
                worker_pid: parts.get(3)?.parse().ok()?,
                at_ms: parts.get(4)?.parse().ok()?,
            })
        })
        .collect()
}

/// The runs of each key (build number or `check`): step pid -> (first, last) time it wrote.
/// Daemon lines are not runs.
pub(crate) fn runs(entries: &[Entry]) -> BTreeMap<String, BTreeMap<u32, (u64, u64)>> {
    let mut runs: BTreeMap<String, BTreeMap<u32, (u64, u64)>> = BTreeMap::new();
    for entry in entries.iter().filter(|e| e.kind != "daemon") {
        let span = runs
            .entry(entry.key.clone())
            .or_default()
            .entry(entry.pid)
            .or_insert((entry.at_ms, entry.at_ms));
        span.0 = span.0.min(entry.at_ms);
        span.1 = span.1.max(entry.at_ms);
    }
    runs
}

/// Fails when two runs of one key wrote at overlapping times: one build (or one resource's
/// check) running twice at once.
pub(crate) fn assert_never_twice_at_once(entries: &[Entry]) {
    for (key, spans) in runs(entries) {
        let spans: Vec<_> = spans.into_iter().collect();
        for (i, (pid, (start, end))) in spans.iter().enumerate() {
            for (other, (other_start, other_end)) in &spans[i + 1..] {
                assert!(
                    end < other_start || other_end < start,
                    "{key} ran twice at once: pid {pid} wrote {start}..{end}, pid {other} \
                     wrote {other_start}..{other_end}"
                );
            }
        }
    }
}

/// How many times each key ran (distinct step processes).
pub(crate) fn run_counts(entries: &[Entry]) -> BTreeMap<String, usize> {
    runs(entries)
        .into_iter()
        .map(|(key, spans)| (key, spans.len()))
        .collect()
}

/// The step processes each worker ran (worker pid -> step pids).
pub(crate) fn steps_by_worker(entries: &[Entry]) -> BTreeMap<u32, BTreeSet<u32>> {
    let mut by_worker: BTreeMap<u32, BTreeSet<u32>> = BTreeMap::new();
    for entry in entries.iter().filter(|e| e.kind == "start") {
        by_worker
            .entry(entry.worker_pid)
            .or_default()
            .insert(entry.pid);
    }
    by_worker
}

pub(crate) fn now_ms() -> u64 {
    u64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis(),
    )
    .unwrap()
}

/// Of process `pid`'s `/proc/<pid>/stat`: whether it is a zombie, and its process group.
fn stat(pid: u32) -> Option<(bool, u32)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // `pid (comm) state ppid pgrp ...`: comm may hold spaces, so split after the last ')'.
    let (_, rest) = stat.rsplit_once(')')?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    Some((fields.first() == Some(&"Z"), fields.get(2)?.parse().ok()?))
}

/// Whether process `pid` runs (a zombie does not).
pub(crate) fn alive(pid: u32) -> bool {
    stat(pid).is_some_and(|(zombie, _)| !zombie)
}

/// The live processes whose process group is one of `groups` (a step leads its own).
pub(crate) fn processes_in_groups(groups: &BTreeSet<u32>) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| stat(*pid).is_some_and(|(zombie, group)| !zombie && groups.contains(&group)))
        .collect()
}

/// Waits up to `limit` for every process of `groups` to end; returns how long it took, or
/// fails naming the survivors.
pub(crate) fn wait_groups_gone(groups: &BTreeSet<u32>, limit: Duration, what: &str) -> Duration {
    let started = Instant::now();
    loop {
        let left = processes_in_groups(groups);
        if left.is_empty() {
            return started.elapsed();
        }
        assert!(
            started.elapsed() < limit,
            "{what}: processes {left:?} still run after {limit:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Sends `signal` to process `pid`.
pub(crate) fn signal(pid: u32, signal: nix::sys::signal::Signal) {
    let pid = nix::unistd::Pid::from_raw(i32::try_from(pid).unwrap());
    nix::sys::signal::kill(pid, signal).unwrap_or_else(|e| panic!("kill -{signal} {pid}: {e}"));
}

impl Drop for Cluster {
    /// Kills the daemons the steps left (a worker started again kills those of a dead one, but
    /// a scenario that failed may not get there).
    fn drop(&mut self) {
        for entry in self.ledger().iter().filter(|e| e.kind == "daemon") {
            if let Ok(pid) = entry.key.parse::<i32>() {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
        }
    }
}
