//! Real processes killed mid-build (`cargo xtask chaos`, release binaries): a build is never
//! lost and never runs twice at once, whatever dies, on every database and broker.
//!
//! Every step of the test pipelines appends to a ledger file, under `flock`, `start`, a `tick`
//! each second and `done`, each with the build, the step's pid, its worker's pid and the time.
//! Two step processes writing for the same build at overlapping times would be a build running
//! twice at once: the suite looks for exactly that instead of guessing.
//!
//! Each case gets a broker of its own (a NATS server, a RabbitMQ node, tansu behind a relay),
//! so that a scenario may stop it, and a database of its own. `PIKOCI_CHAOS=full` runs each
//! scenario on its whole matrix, `quick` on one combination (see `docs/reliability.md`).

// The suite prints what it measured.
#![allow(clippy::print_stderr)]

#[path = "chaos/harness.rs"]
mod harness;
#[path = "../crates/pikoci-pubsub/tests/servers/mod.rs"]
mod servers;
mod support;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use harness::{
    BUILDS, Bus, BusKind, Cluster, DbKind, alive, assert_all_succeeded, assert_never_twice_at_once,
    builds, case_name, cases, now_ms, run_counts, signal, slow_job, step, steps_by_worker, trigger,
    wait_groups_gone,
};
use nix::sys::signal::Signal;

/// The log lines of each build (`line 1` to `line 300`).
const LINES: u32 = 300;

/// `kill -9` of a worker mid-build: 2 workers, 10 builds of 300 lines. Every build succeeds,
/// each moved build runs again within 20 s, nothing of the dead worker's steps outlives it by
/// 2 s, no build runs twice at once, each final log has its 300 lines. The daemons the dead
/// worker's steps left are killed when it starts again, the live worker's are not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_worker_s_builds_finish_on_the_other() {
    let full = [DbKind::Postgres, DbKind::Mysql]
        .into_iter()
        .flat_map(|db| BusKind::ALL.map(|bus| (db, bus)))
        .collect();
    let quick = vec![(DbKind::Postgres, BusKind::Rabbitmq)];
    for ((db, bus), case) in cases(full, quick, |(db, bus)| {
        format!("wk_{}", case_name(*db, *bus))
    }) {
        eprintln!("== worker killed: {case}");
        let bus = Bus::start(bus).await;
        worker_killed(db, &bus, &case).await;
    }
}

async fn worker_killed(db: DbKind, bus: &Bus, case: &str) {
    const BUILDS_N: u32 = 10;
    let cluster = Cluster::new(db, bus, case, |ledger| {
        slow_job(&step(ledger, LINES, 8, true))
    });
    let server = cluster.server();
    let mut workers = vec![
        ("a", cluster.worker("a", 10)),
        ("b", cluster.worker("b", 10)),
    ];
    trigger(&server, BUILDS_N).await;
    let entries = cluster.wait_ledger("every build started", |e| {
        e.iter()
            .filter(|x| x.kind == "start")
            .map(|x| &x.key)
            .collect::<BTreeSet<_>>()
            .len()
            == BUILDS_N as usize
    });
    // The victim is the worker running most builds.
    let by_worker = steps_by_worker(&entries);
    let index = (0..workers.len())
        .max_by_key(|&i| by_worker.get(&workers[i].1.pid()).map_or(0, BTreeSet::len))
        .unwrap();
    let (victim_name, victim) = workers.remove(index);
    let victim_pid = victim.pid();
    let victim_steps = by_worker.get(&victim_pid).cloned().unwrap_or_default();
    let moved: BTreeSet<String> = entries
        .iter()
        .filter(|e| e.kind == "start" && e.worker_pid == victim_pid)
        .filter(|e| {
            !entries
                .iter()
                .any(|x| x.kind == "done" && x.key == e.key && x.worker_pid == victim_pid)
        })
        .map(|e| e.key.clone())
        .collect();
    victim.kill();
    let killed_at = now_ms();

    // Nothing of the dead worker's steps outlives it by 2 s (daemons aside: they left the
    // step's process group on purpose).
    let gone = wait_groups_gone(
        &victim_steps,
        Duration::from_secs(2),
        "the killed worker's steps",
    );

    // Each build it ran starts again on the other worker within 20 s.
    let survivor = workers[0].1.pid();
    let entries = cluster.wait_ledger("every moved build started again", |e| {
        moved.iter().all(|build| {
            e.iter()
                .any(|x| x.kind == "start" && &x.key == build && x.worker_pid == survivor)
        })
    });
    let restarted_after = moved
        .iter()
        .map(|build| {
            let at = entries
                .iter()
                .find(|x| x.kind == "start" && &x.key == build && x.worker_pid == survivor)
                .unwrap()
                .at_ms;
            at.saturating_sub(killed_at)
        })
        .max()
        .unwrap_or(0);
    assert_all_succeeded(&server, BUILDS_N, LINES).await;
    let entries = cluster.ledger();
    assert_never_twice_at_once(&entries);
    // Each build ran to its end; the moved ones on the live worker, after a note in the log.
    for build in 1..=BUILDS_N {
        let key = build.to_string();
        assert!(
            entries.iter().any(|e| e.kind == "done" && e.key == key),
            "build {build} never ran to its end: {entries:#?}"
        );
    }
    if let Some(build) = moved.first() {
        let log = server.text(&format!("{BUILDS}/{build}/logs")).await;
        assert!(log.contains("lost its worker"), "{log}");
    }
    eprintln!(
        "   {} of {BUILDS_N} builds moved; steps gone {gone:?} after the kill; the last moved \
         build ran again {restarted_after} ms after it",
        moved.len()
    );
    assert!(
        restarted_after < 20_000,
        "a build took {restarted_after} ms to run again after its worker was killed"
    );

    // The daemons of the dead worker's steps outlived it; its name started again kills them,
    // and leaves the live worker's alone.
    let daemons: Vec<(u32, u32)> = entries
        .iter()
        .filter(|e| e.kind == "daemon")
        .map(|e| (e.key.parse().unwrap(), e.worker_pid))
        .collect();
    let orphans: Vec<u32> = daemons
        .iter()
        .filter(|(_, worker)| *worker == victim_pid)
        .map(|(daemon, _)| *daemon)
        .collect();
    assert!(
        !orphans.is_empty(),
        "the killed worker's steps started no daemon"
    );
    assert!(
        orphans.iter().all(|pid| alive(*pid)),
        "a daemon died with its worker"
    );
    let _restarted = cluster.worker(victim_name, 10);
    let deadline = Instant::now() + Duration::from_secs(10);
    while orphans.iter().any(|pid| alive(*pid)) {
        assert!(
            Instant::now() < deadline,
            "the killed worker's daemons still run 10 s after it started again"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    for (daemon, worker) in &daemons {
        if *worker == survivor {
            assert!(
                alive(*daemon),
                "the live worker's daemon {daemon} was killed"
            );
        }
    }
}

/// `kill -9` of the server, started again 3 s or 20 s later: no build is lost, none runs twice
/// at once, a resource's version triggers exactly one build, every log is complete, and no
/// build runs again: the worker stayed alive, and goes on while the broker keeps its
/// heartbeats, whether a server answers them or not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_server_loses_no_build() {
    let full = [DbKind::Sqlite, DbKind::Postgres, DbKind::Mysql]
        .into_iter()
        .flat_map(|db| BusKind::ALL.map(move |bus| (db, bus)))
        .flat_map(|(db, bus)| [(db, bus, 3), (db, bus, 20)])
        .collect();
    let quick = vec![(DbKind::Sqlite, BusKind::Nats, 3)];
    let name =
        |(db, bus, down): &(DbKind, BusKind, u64)| format!("sk{down}_{}", case_name(*db, *bus));
    for ((db, bus, down), case) in cases(full, quick, name) {
        eprintln!("== server killed for {down} s: {case}");
        let bus = Bus::start(bus).await;
        server_killed(db, &bus, &case, down).await;
    }
}

/// A resource whose version is the content of `feed`, and `slow` triggered by each.
fn fed_pipeline(feed: &std::path::Path, step: &str) -> String {
    let feed = feed.display();
    format!(
        r#"
resource_type "counter" {{
  check "shell" {{
    cmd = <<-EOT
      printf '[{{"n":"%s"}}]\n' "$(cat '{feed}')"
    EOT
  }}
  pull "shell" {{ cmd = "true" }}
}}
resource "counter" "feed" {{ check_interval = "@every 1h" }}
job "slow" {{
  get "counter" "feed" {{ trigger = true }}
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

const FEED: &str = "/teams/main/pipelines/chaos/resources/counter.feed";

async fn new_version(server: &support::server::ServerProcess, feed: &std::path::Path, n: u32) {
    std::fs::write(feed, n.to_string()).unwrap();
    let (status, body) = server
        .post(&format!("{FEED}/check"), serde_json::json!({}))
        .await;
    assert!(status < 300, "{status} {body:#}");
}

async fn server_killed(db: DbKind, bus: &Bus, case: &str, down: u64) {
    let mut feed = std::path::PathBuf::new();
    let cluster = Cluster::new(db, bus, case, |ledger| {
        feed = ledger.with_file_name("feed");
        std::fs::write(&feed, "1").unwrap();
        // Long enough for the builds to run across a 20 s outage.
        fed_pipeline(&feed, &step(ledger, LINES, 25, false))
    });
    let server = cluster.server();
    let _worker = cluster.worker("steady", 4);
    // Version 1 (the check at start), a manual build, then version 2.
    cluster.wait_ledger("build 1", |e| e.iter().any(|x| x.key == "1"));
    trigger(&server, 1).await;
    new_version(&server, &feed, 2).await;
    cluster.wait_ledger("builds 1 to 3 running", |e| {
        ["1", "2", "3"]
            .iter()
            .all(|b| e.iter().any(|x| x.kind == "tick" && x.key == *b))
    });
    drop(server); // SIGKILL
    let killed = Instant::now();
    tokio::time::sleep(Duration::from_secs(down)).await;
    let server = cluster.server();
    // The server listens once it consumes events again: on Kafka, once the group dropped the
    // killed server's members (its session timeout, then a rebalance).
    let absent = killed.elapsed();
    eprintln!("   the server is back {absent:?} after the kill");
    assert_all_succeeded(&server, 3, LINES).await;
    // The server after the restart checks and triggers: version 3 makes build 4.
    new_version(&server, &feed, 3).await;
    assert_all_succeeded(&server, 4, LINES).await;

    let entries = cluster.ledger();
    assert_never_twice_at_once(&entries);
    let counts = run_counts(&entries);
    let builds = builds(&server).await;
    assert_eq!(
        builds.len(),
        4,
        "no build lost, none duplicated: {builds:#?}"
    );
    // One build per version of the resource: builds 1, 3 and 4 by versions 1 to 3, build 2 by
    // hand.
    let triggered: Vec<i64> = builds
        .iter()
        .filter_map(|build| build["trigger"]["version_id"].as_i64())
        .collect();
    let distinct: BTreeSet<i64> = triggered.iter().copied().collect();
    assert!(
        triggered.len() == 3 && distinct.len() == 3,
        "not one build per version: {builds:#?}"
    );
    let reruns: Vec<_> = counts.iter().filter(|(_, n)| **n > 1).collect();
    eprintln!("   runs per build: {counts:?}");
    assert!(
        reruns.is_empty(),
        "builds whose worker stayed alive re-ran (the server was away {absent:?}): {reruns:?}"
    );
}

/// The broker goes away for 2 s, 5 s or 40 s (a NATS server killed and started again on its store,
/// a RabbitMQ node killed and started again, the Kafka connections cut): every build finishes
/// with its whole log, none runs twice at once, and none runs again before the broker is back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_outage_loses_no_build() {
    let full = BusKind::ALL
        .into_iter()
        .flat_map(|bus| [(bus, 2), (bus, 5), (bus, 40)])
        .collect();
    let quick = vec![(BusKind::Nats, 2)];
    let name =
        |(bus, down): &(BusKind, u64)| format!("bo{down}_{}", case_name(DbKind::Sqlite, *bus));
    for ((bus, down), case) in cases(full, quick, name) {
        eprintln!("== broker down for {down} s: {case}");
        let mut bus = Bus::start(bus).await;
        broker_down(&mut bus, &case, down).await;
    }
}

async fn broker_down(bus: &mut Bus, case: &str, down: u64) {
    const BUILDS_N: u32 = 4;
    let cluster = Cluster::new(DbKind::Sqlite, bus, case, |ledger| {
        slow_job(&step(ledger, LINES, 15, false))
    });
    let mut server = cluster.server();
    let mut a = cluster.worker("a", 2);
    let mut b = cluster.worker("b", 2);
    trigger(&server, BUILDS_N).await;
    cluster.wait_ledger("every build running", |e| {
        (1..=BUILDS_N).all(|b| e.iter().any(|x| x.kind == "tick" && x.key == b.to_string()))
    });
    let stopped = Instant::now();
    bus.server().stop().await;
    tokio::time::sleep(Duration::from_secs(down)).await;
    // The broker may take connections before `start` sees it listen: `back_ms` is a bound
    // from below.
    let back_ms = now_ms();
    bus.server().start().await;
    // A RabbitMQ node takes seconds to start: the outage is longer than `down`.
    let outage = stopped.elapsed();
    eprintln!("   the broker was away {outage:?}");
    assert_all_succeeded(&server, BUILDS_N, LINES).await;
    let entries = cluster.ledger();
    assert_never_twice_at_once(&entries);
    let counts = run_counts(&entries);
    eprintln!("   runs per build: {counts:?}");
    for (build, spans) in harness::runs(&entries) {
        let first = spans.values().map(|(start, _)| *start).min().unwrap();
        for (pid, (start, _)) in &spans {
            assert!(
                *start == first || *start >= back_ms,
                "build {build} ran again (pid {pid}) {} ms before the broker was back",
                back_ms - start
            );
        }
    }
    // A worker gives its builds up 10 s after the last heartbeat a server answered, and
    // heartbeats every 5 s: an outage that ends, reconnection (a second at most) included,
    // less than 5 s after it began is ridden out wherever it falls in the heartbeat period.
    if outage < Duration::from_millis(3_500) {
        let reruns: Vec<_> = counts.iter().filter(|(_, n)| **n > 1).collect();
        assert!(
            reruns.is_empty(),
            "builds re-ran: {reruns:?}\nserver:\n{}\nworker a:\n{}\nworker b:\n{}",
            server.log.so_far(),
            a.log.so_far(),
            b.log.so_far()
        );
    }
}

/// A check that runs longer than its lease (20 s against 15 s) is never run twice at once:
/// its worker's heartbeats keep its lease.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_check_longer_than_its_lease_never_runs_twice_at_once() {
    let bus = Bus::start(BusKind::Nats).await;
    let cluster = Cluster::new(DbKind::Sqlite, &bus, "long_check", |ledger| {
        let start = harness::record(ledger, "start", "check");
        let tick = harness::record(ledger, "tick", "check");
        let done = harness::record(ledger, "done", "check");
        format!(
            r#"
resource_type "slow" {{
  check "shell" {{
    cmd = <<-EOT
      {start}
      i=0
      while [ $i -lt 20 ]; do
        {tick}
        sleep 1
        i=$((i+1))
      done
      {done}
      printf '[{{"at":"%s"}}]\n' "$(date +%s%N)"
    EOT
  }}
}}
resource "slow" "check" {{ check_interval = "@every 10s" }}
"#
        )
    });
    let _server = cluster.server();
    let _a = cluster.worker("a", 1);
    let _b = cluster.worker("b", 1);
    let entries = cluster.wait_ledger("two checks finished", |e| {
        e.iter().filter(|x| x.kind == "done").count() >= 2
    });
    assert_never_twice_at_once(&entries);
    eprintln!(
        "   checks run: {}; none at once",
        harness::runs(&entries)["check"].len()
    );
}

/// A worker frozen (SIGSTOP) while its build is cancelled: the server marks the build cancelled
/// after the grace period; resumed (SIGCONT), the worker stops the build within 2 s, and what it
/// sends late changes nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_frozen_worker_s_cancelled_build_is_fenced() {
    let bus = Bus::start(BusKind::Nats).await;
    let cluster = Cluster::new(DbKind::Sqlite, &bus, "frozen", |ledger| {
        slow_job(&step(ledger, 600, 300, false))
    });
    let server = cluster.server();
    let worker = cluster.worker("frozen", 1);
    trigger(&server, 1).await;
    let entries = cluster.wait_ledger("the build running", |e| e.iter().any(|x| x.kind == "tick"));
    let step_pid = entries[0].pid;
    signal(worker.pid(), Signal::SIGSTOP);
    let (status, body) = server
        .post(&format!("{BUILDS}/1/cancel"), serde_json::json!({}))
        .await;
    assert!(status < 300, "{status} {body:#}");
    let frozen = Instant::now();
    let build = server.wait_finished(&format!("{BUILDS}/1")).await;
    assert_eq!(build["status"], "cancelled", "{build:#}");
    eprintln!(
        "   cancelled by the server {:?} after the request",
        frozen.elapsed()
    );
    let log = server.text(&format!("{BUILDS}/1/logs")).await;
    assert!(alive(step_pid), "the frozen worker's step died on its own");
    signal(worker.pid(), Signal::SIGCONT);
    let gone = wait_groups_gone(
        &BTreeSet::from([step_pid]),
        Duration::from_secs(2),
        "the resumed worker's cancelled step",
    );
    eprintln!("   the step died {gone:?} after SIGCONT");
    // What the worker sends on waking (its buffered log lines, its result) changes nothing.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let (_, after) = server.get(&format!("{BUILDS}/1")).await;
    assert_eq!(after["data"]["status"], "cancelled", "{after:#}");
    assert_eq!(
        after["data"]["finished_at"], build["finished_at"],
        "{after:#}"
    );
    let log_after = server.text(&format!("{BUILDS}/1/logs")).await;
    assert_eq!(log_after, log, "the late worker's log lines were stored");
    assert!(
        !cluster.ledger().iter().any(|e| e.kind == "done"),
        "the cancelled build finished"
    );
}

/// Two servers on one PostgreSQL database and RabbitMQ; one is killed while 50 builds run: each
/// build runs once, none twice at once, and the other server goes on scheduling.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_of_two_servers_killed_loses_no_build() {
    const FIRST: u32 = 50;
    const AFTER: u32 = 5;
    let bus = Bus::start(BusKind::Rabbitmq).await;
    let cluster = Cluster::new(DbKind::Postgres, &bus, "two_servers", |ledger| {
        slow_job(&step(ledger, 20, 3, false))
    });
    let a = cluster.server();
    let b = cluster.server();
    let _w1 = cluster.worker("w1", 10);
    let _w2 = cluster.worker("w2", 10);
    trigger(&a, FIRST).await;
    cluster.wait_ledger("15 builds started", |e| {
        e.iter().filter(|x| x.kind == "start").count() >= 15
    });
    drop(a); // SIGKILL
    trigger(&b, AFTER).await;
    for number in 1..=FIRST + AFTER {
        let build = b.wait_finished(&format!("{BUILDS}/{number}")).await;
        assert_eq!(build["status"], "succeeded", "build {number}: {build:#}");
    }
    let entries = cluster.ledger();
    assert_never_twice_at_once(&entries);
    let counts = run_counts(&entries);
    assert_eq!(counts.len(), (FIRST + AFTER) as usize, "{counts:?}");
    let reruns: Vec<_> = counts.iter().filter(|(_, n)| **n > 1).collect();
    assert!(reruns.is_empty(), "builds ran more than once: {reruns:?}");
    // A build the killed server claimed but never sent is dispatched again (attempt 2) once
    // its assignment times out: it still runs once.
    let mut redispatched = 0;
    for number in 1..=FIRST + AFTER {
        let (_, build) = b.get(&format!("{BUILDS}/{number}")).await;
        if build["data"]["attempt"] != 1 {
            redispatched += 1;
        }
    }
    eprintln!(
        "   {} builds, each run once, with one of the servers killed ({redispatched} dispatched \
         again after the killed server's assignment timed out)",
        FIRST + AFTER
    );
}

/// Two servers started at the same moment on a new database (PostgreSQL and MariaDB; PostgreSQL
/// only in `--quick`): one migrates it while the other waits for the migration lock and then
/// finds nothing to do, both load the pipeline file, and both serve: a build triggered on each
/// runs, and each server sees both.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn servers_started_together_migrate_once() {
    // A single-combination scenario per database, short: not filtered by `PIKOCI_CHAOS_ONLY`.
    let databases = match harness::service("PIKOCI_CHAOS").as_str() {
        "full" => vec![DbKind::Postgres, DbKind::Mysql],
        _ => vec![DbKind::Postgres],
    };
    for db in databases {
        let case = format!("together_{}", case_name(db, BusKind::Nats));
        eprintln!("== servers started together: {case}");
        let bus = Bus::start(BusKind::Nats).await;
        let cluster = Cluster::new(db, &bus, &case, |ledger| {
            slow_job(&step(ledger, 3, 1, false))
        });
        let started = Instant::now();
        let (mut a, mut b) = std::thread::scope(|scope| {
            let a = scope.spawn(|| cluster.server());
            let b = scope.spawn(|| cluster.server());
            (
                a.join().expect("the first server starts"),
                b.join().expect("the second server starts"),
            )
        });
        let listening = started.elapsed();
        let migrated = [&mut a, &mut b]
            .into_iter()
            .map(|server| server.log.so_far().contains("migrated the database schema"))
            .filter(|migrated| *migrated)
            .count();
        assert_eq!(
            migrated,
            1,
            "{case}: {migrated} of the two servers migrated the new database, not one:\n{}\n{}",
            a.log.so_far(),
            b.log.so_far()
        );
        let _worker = cluster.worker("w1", 2);
        trigger(&a, 1).await;
        trigger(&b, 1).await;
        for server in [&a, &b] {
            for number in 1..=2 {
                let build = server.wait_finished(&format!("{BUILDS}/{number}")).await;
                assert_eq!(
                    build["status"], "succeeded",
                    "{case}, build {number}: {build:#}"
                );
            }
        }
        assert_never_twice_at_once(&cluster.ledger());
        eprintln!(
            "   both servers listening {:.1} s after they started, one of them migrated the \
             database, both serve",
            listening.as_secs_f64()
        );
    }
}
