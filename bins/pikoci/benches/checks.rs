//! `cargo xtask bench checks`: 1,500 resources checked every 10 s for 10 minutes, on
//! PostgreSQL.
//!
//! The release server (embedded worker, mem broker) on a fresh PostgreSQL database holds a
//! pipeline of 1,500 resources checked `@every 10s` (150 checks a second to keep up); each check
//! is a process that appends its resource's number and the time it started to a file. Reported:
//! how long the first round (all 1,500 due at once) took; then, over the rest of the window,
//! the checks run against the checks due, the check lag (the check process's start minus the
//! time the check was due: the claim's own lag plus dispatching it and starting the process)
//! p50/p95/p99/max, the server process's CPU (user + system time over the window; the check
//! processes it starts are not counted), and the database's statements per second (the
//! server's own count, `pikoci_database_statements_total` of its `/metrics`) and transactions
//! per second (each statement outside a transaction is one, from PostgreSQL's statistics).
//!
//! A resource's due times follow the store's rule: the first when the pipeline is set (the
//! first check's start stands for it), then one interval after the time it was due, or one
//! interval after the claim when that is already past (the start stands for the claim).

// A command-line report: printing is its job.
#![allow(clippy::print_stdout, clippy::print_stderr)]

#[path = "../../../tests/support/mod.rs"]
#[allow(unreachable_pub)]
mod support;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use support::server::ServerProcess;

/// Resources, each checked every [`INTERVAL`].
const RESOURCES: usize = 1_500;

/// How often each resource is checked.
const INTERVAL: Duration = Duration::from_secs(10);

/// How long the checks run after the first round.
const WINDOW: Duration = Duration::from_secs(600);

fn pipeline(ticks: &Path) -> String {
    let ticks = ticks.display();
    let mut hcl = format!(
        r#"
resource_type "tick" {{
  params = ["n"]
  check "exec" {{
    path = "/bin/sh"
    args = ["-c", "echo \"$param_n $(date +%s%N)\" >> {ticks}; echo '[]'"]
  }}
}}

job "idle" {{
  task "nothing" {{
    run "exec" {{ path = "true" }}
  }}
}}
"#
    );
    for n in 0..RESOURCES {
        hcl.push_str(&format!(
            "resource \"tick\" \"r{n}\" {{\n  check_interval = \"@every 10s\"\n  params {{\n    n = \"{n}\"\n  }}\n}}\n"
        ));
    }
    hcl
}

/// Each resource's check start times (ns since the epoch), in order.
fn ticks(path: &Path) -> BTreeMap<usize, Vec<u128>> {
    let mut ticks: BTreeMap<usize, Vec<u128>> = BTreeMap::new();
    for line in std::fs::read_to_string(path).unwrap_or_default().lines() {
        let mut fields = line.split_whitespace();
        if let (Some(Ok(n)), Some(Ok(at))) =
            (fields.next().map(str::parse), fields.next().map(str::parse))
        {
            ticks.entry(n).or_default().push(at);
        }
    }
    for times in ticks.values_mut() {
        times.sort_unstable();
    }
    ticks
}

/// Transactions committed and rolled back in the current database so far.
fn transactions(url: &str) -> u64 {
    support::psql(
        url,
        "SELECT xact_commit + xact_rollback FROM pg_stat_database WHERE datname = current_database()",
    )
    .parse()
    .unwrap_or(0)
}

/// The CPU time (user + system) process `pid` used so far.
fn cpu_time(pid: u32) -> Duration {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // The fields after the command (which may hold spaces) start after its ')'.
    let rest = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<u64> = rest
        .split_whitespace()
        .map(|f| f.parse().unwrap_or(0))
        .collect();
    // utime and stime are fields 14 and 15 of the line, 12 and 13 after the command.
    let ticks = fields.get(11).copied().unwrap_or(0) + fields.get(12).copied().unwrap_or(0);
    Duration::from_secs_f64(ticks as f64 / clock_ticks_per_second() as f64)
}

/// Clock ticks per second (`getconf CLK_TCK`).
fn clock_ticks_per_second() -> u64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
        .unwrap_or(100)
}

#[tokio::main]
async fn main() {
    let base = std::env::var("PIKOCI_TEST_POSTGRES_URL")
        .expect("PIKOCI_TEST_POSTGRES_URL is not set: run `cargo xtask bench checks`");
    let url = format!("{base}_checks");
    let dir = tempfile::tempdir().expect("a temporary directory");
    let ticks_path = dir.path().join("ticks");
    let file = support::write(dir.path(), "checks.hcl", &pipeline(&ticks_path));
    let work = dir.path().join("work").display().to_string();
    let server = ServerProcess::start(&[
        "--log-level",
        "warn",
        "--db-url",
        &url,
        "--pipeline-config",
        &file,
        "--work-dir",
        &work,
    ]);
    let deadline = Instant::now() + Duration::from_secs(600);
    while ticks(&ticks_path).len() < RESOURCES {
        assert!(
            Instant::now() < deadline,
            "the first round of checks took over 600 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let all = ticks(&ticks_path);
    let first_start = all.values().map(|t| t[0]).min().unwrap_or(0);
    let first_end = all.values().map(|t| t[0]).max().unwrap_or(0);
    let statements = "pikoci_database_statements_total";
    let (cpu_before, transactions_before, statements_before) = (
        cpu_time(server.pid()),
        transactions(&url),
        server.metric(statements).await,
    );
    let window_start = Instant::now();
    tokio::time::sleep(WINDOW).await;
    let elapsed = window_start.elapsed();
    let cpu = cpu_time(server.pid()).saturating_sub(cpu_before);
    let transactions = transactions(&url).saturating_sub(transactions_before);
    let statements = server.metric(statements).await - statements_before;
    let all = ticks(&ticks_path);
    server.stop();

    // Check lags after the first round, with the due times the store's rule gives.
    let interval = INTERVAL.as_nanos();
    let window_from = first_end;
    let window_to = window_from + elapsed.as_nanos();
    let mut lags = Vec::new();
    let mut due_in_window = 0u128;
    for times in all.values() {
        let mut due = first_start;
        for &start in times {
            if start > window_from && start <= window_to {
                lags.push(Duration::from_nanos(
                    u64::try_from(start.saturating_sub(due)).unwrap_or(u64::MAX),
                ));
            }
            due += interval;
            if due <= start {
                due = start + interval;
            }
        }
        // The checks this resource was due for in the window.
        let mut at = first_start;
        while at <= window_to {
            if at > window_from {
                due_in_window += 1;
            }
            at += interval;
        }
    }
    assert!(!lags.is_empty(), "no check ran after the first round");
    lags.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1000.0;
    println!(
        "{RESOURCES} resources every {} s (PostgreSQL, embedded worker)",
        INTERVAL.as_secs()
    );
    println!(
        "  first round (all due at once): {:.1} s",
        (first_end - first_start) as f64 / 1e9
    );
    println!(
        "  over {:.0} s: {} checks ran of {due_in_window} due ({:.1}/s); lag p50 {:.0} ms, p95 \
         {:.0} ms, p99 {:.0} ms, max {:.0} ms",
        elapsed.as_secs_f64(),
        lags.len(),
        lags.len() as f64 / elapsed.as_secs_f64(),
        ms(support::percentile(&lags, 0.5)),
        ms(support::percentile(&lags, 0.95)),
        ms(support::percentile(&lags, 0.99)),
        ms(*lags.last().unwrap_or(&Duration::ZERO)),
    );
    println!(
        "  server process CPU {:.1}% of one core (the check processes not counted); database \
         {:.0} statements/s in {:.0} transactions/s",
        cpu.as_secs_f64() * 100.0 / elapsed.as_secs_f64(),
        statements / elapsed.as_secs_f64(),
        transactions as f64 / elapsed.as_secs_f64(),
    );
}
