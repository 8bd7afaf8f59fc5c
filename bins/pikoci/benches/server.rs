//! `cargo xtask bench server`: webhook received to first step process started, and idle memory.
//!
//! For each shape (the server with its embedded worker on mem; the server with a standalone
//! worker over NATS, then RabbitMQ (the machine's brokers), then Kafka (tansu)), the release `pikoci`
//! binary runs a pipeline whose resource's check prints a new version every time, and whose
//! job's first step appends the time it started (ns since the epoch) to a file. Each round
//! notes the time, calls the webhook and waits for the step's line: the difference is the path
//! a push takes (HTTP, check dispatched to a worker and run, version stored, build created,
//! dispatched, step process started). 40 rounds after one untimed round; p50 and p99 reported,
//! never asserted. Then, after 5 s idle, the resident memory of the server and of the worker.
//!
//! Last, checks: 1,500 resources checked every 10 s (150 checks a second to keep up) on the
//! server with its embedded worker on mem, each check a process that appends a line to a file:
//! how long the first round takes, then the rate over 30 s.

// A command-line report: printing is its job.
#![allow(clippy::print_stdout, clippy::print_stderr)]

#[path = "../../../tests/support/mod.rs"]
#[allow(unreachable_pub)]
mod support;

use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use support::server::{ServerProcess, WorkerProcess};

const ROUNDS: usize = 40;

fn pipeline(stamps: &Path) -> String {
    let stamps = stamps.display();
    format!(
        r#"
resource_type "stamp" {{
  check "exec" {{
    path = "/bin/sh"
    args = ["-c", "echo \"[{{\\\"t\\\":\\\"$(date +%s%N)\\\"}}]\""]
  }}
}}

resource "stamp" "push" {{
  check_interval = "@daily"
}}

job "measure" {{
  get "stamp" "push" {{ trigger = true }}
  task "first" {{
    run "exec" {{
      path = "/bin/sh"
      args = ["-c", "date +%s%N >> {stamps}"]
    }}
  }}
}}
"#
    )
}

fn now_ns() -> u128 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or_default()
}

fn stamps(path: &Path) -> Vec<u128> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.trim().parse().ok())
        .collect()
}

fn wait_stamps(path: &Path, count: usize) -> Vec<u128> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let found = stamps(path);
        if found.len() >= count {
            return found;
        }
        assert!(Instant::now() < deadline, "no step started within 60 s");
        std::thread::sleep(Duration::from_micros(500));
    }
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_default()
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

async fn measure(name: &str, broker: Option<(&str, String)>) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let stamps_path = dir.path().join("stamps");
    let file = support::write(dir.path(), "bench.hcl", &pipeline(&stamps_path));
    let work = dir.path().join("work");
    let mut args = vec![
        "--log-level".to_owned(),
        "warn".to_owned(),
        "--pipeline-config".to_owned(),
        file,
        "--work-dir".to_owned(),
        work.display().to_string(),
    ];
    let mut worker_args = Vec::new();
    if let Some((system, url)) = &broker {
        args.extend(["--run-worker=false".to_owned()]);
        for list in [&mut args, &mut worker_args] {
            list.extend([
                "--pubsub-system".to_owned(),
                system.to_string(),
                "--pubsub-url".to_owned(),
                url.clone(),
            ]);
        }
        worker_args.extend(["--work-dir".to_owned(), work.display().to_string()]);
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let server = ServerProcess::start(&args);
    let worker = (!worker_args.is_empty()).then(|| {
        let list: Vec<&str> = worker_args.iter().map(String::as_str).collect();
        WorkerProcess::start(&list)
    });
    let (_, resource) = server
        .get("/teams/main/pipelines/bench/resources/stamp.push")
        .await;
    let token = resource["data"]["webhook_token"]
        .as_str()
        .expect("the resource's webhook token")
        .to_owned();
    // The first check at start: one untimed build.
    wait_stamps(&stamps_path, 1);
    let mut latencies = Vec::with_capacity(ROUNDS);
    for round in 0..=ROUNDS {
        let before = stamps(&stamps_path).len();
        let started = now_ns();
        let (status, body) = server
            .post(&format!("/webhooks/{token}"), serde_json::json!({}))
            .await;
        assert_eq!(status, 200, "{body}");
        let found = wait_stamps(&stamps_path, before + 1);
        let latency = found[before].saturating_sub(started);
        if round > 0 {
            latencies.push(Duration::from_nanos(latency as u64));
        }
        // Let the build finish before the next push.
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    latencies.sort();
    tokio::time::sleep(Duration::from_secs(5)).await;
    let server_rss = rss_kib(server.pid());
    let worker_rss = worker.as_ref().map(|w| rss_kib(w.pid()));
    println!(
        "{name:<36} p50 {:>8.1} ms   p99 {:>8.1} ms   idle RSS: server {:.1} MB{}",
        percentile(&latencies, 0.5).as_secs_f64() * 1000.0,
        percentile(&latencies, 0.99).as_secs_f64() * 1000.0,
        server_rss as f64 / 1024.0,
        worker_rss
            .map(|kib| format!(", worker {:.1} MB", kib as f64 / 1024.0))
            .unwrap_or_else(|| " (embedded worker included)".to_owned()),
    );
    drop(worker);
    server.stop();
}

/// Resources in the check benchmark, each checked every 10 s: 150 checks a second to keep up.
const CHECKED: usize = 1_500;

/// How long the sustained check rate is measured.
const CHECK_WINDOW: Duration = Duration::from_secs(30);

/// A pipeline of [`CHECKED`] resources checked every 10 s, whose check appends a line to
/// `ticks` and finds no version.
fn checks_pipeline(ticks: &Path) -> String {
    let ticks = ticks.display();
    let mut hcl = format!(
        r#"
resource_type "tick" {{
  check "exec" {{
    path = "/bin/sh"
    args = ["-c", "echo . >> {ticks}; echo '[]'"]
  }}
}}

job "idle" {{
  task "nothing" {{
    run "exec" {{ path = "true" }}
  }}
}}
"#
    );
    for n in 0..CHECKED {
        hcl.push_str(&format!(
            "resource \"tick\" \"r{n}\" {{\n  check_interval = \"@every 10s\"\n}}\n"
        ));
    }
    hcl
}

fn lines(path: &Path) -> usize {
    std::fs::read_to_string(path)
        .map(|text| text.lines().count())
        .unwrap_or_default()
}

/// The server with its embedded worker on mem, [`CHECKED`] resources due at once at start
/// and then every 10 s: how long the first round of checks takes, then how many checks a
/// second it keeps up with.
async fn measure_checks() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let ticks = dir.path().join("ticks");
    let file = support::write(dir.path(), "checks.hcl", &checks_pipeline(&ticks));
    let work = dir.path().join("work");
    let work = work.display().to_string();
    let server = ServerProcess::start(&[
        "--log-level",
        "warn",
        "--pipeline-config",
        &file,
        "--work-dir",
        &work,
    ]);
    let deadline = Instant::now() + Duration::from_secs(600);
    while lines(&ticks) == 0 {
        assert!(Instant::now() < deadline, "no check ran within 600 s");
        std::thread::sleep(Duration::from_millis(1));
    }
    let first = Instant::now();
    while lines(&ticks) < CHECKED {
        assert!(
            Instant::now() < deadline,
            "the first round of checks took over 600 s"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let round = first.elapsed();
    let before = lines(&ticks);
    tokio::time::sleep(CHECK_WINDOW).await;
    let sustained = (lines(&ticks) - before) as f64 / CHECK_WINDOW.as_secs_f64();
    println!(
        "{CHECKED} resources every 10 s (mem, embedded worker): first round {:.1} s ({:.0} \
         checks/s), then {sustained:.0} checks/s over {} s (150/s keeps up)",
        round.as_secs_f64(),
        CHECKED as f64 / round.as_secs_f64(),
        CHECK_WINDOW.as_secs(),
    );
    server.stop();
}

#[tokio::main]
async fn main() {
    println!("webhook received -> first step process started ({ROUNDS} rounds each)");
    measure("mem, embedded worker", None).await;
    for (system, variable) in [
        ("nats", "PIKOCI_TEST_NATS_URL"),
        ("rabbitmq", "PIKOCI_TEST_RABBITMQ_URL"),
        ("kafka", "PIKOCI_TEST_KAFKA_URL"),
    ] {
        let url = std::env::var(variable)
            .unwrap_or_else(|_| panic!("{variable} is not set: run `cargo xtask bench server`"));
        measure(&format!("{system}, standalone worker"), Some((system, url))).await;
    }
    measure_checks().await;
}
