//! `cargo xtask bench server`: webhook received to first step process started, and idle memory.
//!
//! For each shape (the server with its embedded worker on mem; the server with a standalone
//! worker over NATS, then RabbitMQ (the machine's brokers), then Kafka (tansu)), the release `pikoci`
//! binary runs a pipeline whose resource's check prints a new version every time, and whose
//! job's first step appends the time it started (ns since the epoch) to a file. Each round
//! notes the time, calls the webhook and waits for the step's line: the difference is the path
//! a push takes (HTTP, check dispatched to a worker and run, version stored, build created,
//! dispatched, step process started). 500 rounds after one untimed round; p50, p95 and p99
//! reported, never asserted. Then, after 60 s idle, the resident memory of the server and of the
//! worker.
//!
//! Over each broker, a worker killed (`kill -9`) while it runs a build: the time from the kill
//! to the build's first step starting again on the other worker (what is left of the lease,
//! 15 s from the acceptance, plus the probe that shows the heartbeats read, plus the 1 s abort
//! grace, plus the dispatch).
//!
//! The resident memory of the server (mem, embedded worker) once it holds 100 pipelines of 50
//! jobs each, set through the API.
//!
//! The check scheduler at scale is `cargo xtask bench checks` (`benches/checks.rs`).

// A command-line report: printing is its job.
#![allow(clippy::print_stdout, clippy::print_stderr)]

#[path = "../../../tests/support/mod.rs"]
#[allow(unreachable_pub)]
mod support;

use std::path::Path;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use support::server::{ServerProcess, WorkerProcess};

const ROUNDS: usize = 500;

/// Samples at each end of the rounds compared, to see the latency drift as builds pile up.
const DRIFT: usize = 50;

/// How long the server and worker sit idle before their memory is read.
const IDLE: Duration = Duration::from_secs(60);

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
    let deadline = Instant::now() + Duration::from_secs(90);
    loop {
        let found = stamps(path);
        if found.len() >= count {
            return found;
        }
        assert!(Instant::now() < deadline, "no step started within 90 s");
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
    // Whether the latency grows with the builds stored: the first samples against the last.
    let drift = |samples: &[Duration]| {
        let mut samples = samples.to_vec();
        samples.sort();
        support::percentile(&samples, 0.5).as_secs_f64() * 1000.0
    };
    let (first, last) = (
        drift(&latencies[..DRIFT]),
        drift(&latencies[latencies.len() - DRIFT..]),
    );
    latencies.sort();
    tokio::time::sleep(IDLE).await;
    let server_rss = rss_kib(server.pid());
    let worker_rss = worker.as_ref().map(|w| rss_kib(w.pid()));
    println!(
        "{name:<30} p50 {:>7.1} ms   p95 {:>7.1} ms   p99 {:>7.1} ms   (p50 of the first {DRIFT} {first:.1} ms, of the last {DRIFT} {last:.1} ms)   idle {} s RSS: server {:.1} MB{}",
        support::percentile(&latencies, 0.5).as_secs_f64() * 1000.0,
        support::percentile(&latencies, 0.95).as_secs_f64() * 1000.0,
        support::percentile(&latencies, 0.99).as_secs_f64() * 1000.0,
        IDLE.as_secs(),
        server_rss as f64 / 1024.0,
        worker_rss
            .map(|kib| format!(", worker {:.1} MB", kib as f64 / 1024.0))
            .unwrap_or_else(|| " (embedded worker included)".to_owned()),
    );
    drop(worker);
    server.stop();
}

/// A job whose step appends the time it started to `stamps`, then sleeps for long.
fn long_job(stamps: &Path) -> String {
    let stamps = stamps.display();
    format!(
        r#"
job "long" {{
  task "first" {{
    run "exec" {{
      path = "/bin/sh"
      args = ["-c", "date +%s%N >> {stamps}; sleep 300"]
    }}
  }}
}}
"#
    )
}

/// Over `system` at `url`: a build running on worker `a` when `a` is killed, and worker `b`
/// alive; the time from the kill to the build's step starting again on `b`.
async fn measure_worker_loss(system: &str, url: &str) {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let stamps_path = dir.path().join("stamps");
    let file = support::write(dir.path(), "bench.hcl", &long_job(&stamps_path));
    let broker = ["--pubsub-system", system, "--pubsub-url", url];
    let mut args = vec![
        "--log-level",
        "warn",
        "--run-worker=false",
        "--pipeline-config",
    ];
    args.push(&file);
    args.extend(broker);
    let server = ServerProcess::start(&args);
    let work = |name: &str| dir.path().join(name).display().to_string();
    let (work_a, work_b) = (work("work-a"), work("work-b"));
    let worker_args = |name: &'static str, work: &str| {
        let mut list = vec![
            "--name".to_owned(),
            name.to_owned(),
            "--work-dir".to_owned(),
        ];
        list.push(work.to_owned());
        list.extend(broker.iter().map(|s| (*s).to_owned()));
        list
    };
    let start = |list: Vec<String>| {
        let list: Vec<&str> = list.iter().map(String::as_str).collect();
        WorkerProcess::start(&list)
    };
    let a = start(worker_args("bench-a", &work_a));
    let (status, body) = server
        .post(
            "/teams/main/pipelines/bench/jobs/long/trigger",
            serde_json::json!({}),
        )
        .await;
    assert_eq!(status, 201, "{body}");
    wait_stamps(&stamps_path, 1);
    let b = start(worker_args("bench-b", &work_b));
    // b heartbeats at start; give the server a moment to record it.
    tokio::time::sleep(Duration::from_secs(2)).await;
    a.kill();
    let killed = now_ns();
    let again = wait_stamps(&stamps_path, 2)[1];
    println!(
        "{system:<10} worker killed -> its build's step started again on the other: {:.1} s",
        again.saturating_sub(killed) as f64 / 1e9
    );
    drop(b);
    server.stop();
}

/// Pipelines and jobs per pipeline set on the server whose memory is read.
const PIPELINES: usize = 100;
const JOBS: usize = 50;

/// The server with its embedded worker on mem, holding [`PIPELINES`] pipelines of [`JOBS`]
/// jobs each (set through the API): its resident memory.
async fn measure_pipelines_memory() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let work = dir.path().join("work").display().to_string();
    let server = ServerProcess::start(&["--log-level", "warn", "--work-dir", &work]);
    let before = rss_kib(server.pid());
    let mut config = String::new();
    for n in 0..JOBS {
        config.push_str(&format!(
            "job \"j{n}\" {{\n  task \"t\" {{\n    run \"exec\" {{ path = \"true\" }}\n  }}\n}}\n"
        ));
    }
    for n in 0..PIPELINES {
        let (status, body) = server
            .post(
                "/teams/main/pipelines",
                serde_json::json!({"name": format!("p{n}"), "config": config}),
            )
            .await;
        assert!(status < 300, "{status} {body}");
    }
    tokio::time::sleep(Duration::from_secs(10)).await;
    println!(
        "server RSS (mem, embedded worker): {:.1} MB empty, {:.1} MB with {PIPELINES} pipelines of {JOBS} jobs",
        before as f64 / 1024.0,
        rss_kib(server.pid()) as f64 / 1024.0,
    );
    server.stop();
}

#[tokio::main]
async fn main() {
    println!("webhook received -> first step process started ({ROUNDS} rounds each)");
    measure("mem, embedded worker", None).await;
    let brokers: Vec<(&str, String)> = [
        ("nats", "PIKOCI_TEST_NATS_URL"),
        ("rabbitmq", "PIKOCI_TEST_RABBITMQ_URL"),
        ("kafka", "PIKOCI_TEST_KAFKA_URL"),
    ]
    .into_iter()
    .map(|(system, variable)| {
        let url = std::env::var(variable)
            .unwrap_or_else(|_| panic!("{variable} is not set: run `cargo xtask bench server`"));
        (system, url)
    })
    .collect();
    for (system, url) in &brokers {
        measure(
            &format!("{system}, standalone worker"),
            Some((system, url.clone())),
        )
        .await;
    }
    for (system, url) in &brokers {
        measure_worker_loss(system, url).await;
    }
    measure_pipelines_memory().await;
}
