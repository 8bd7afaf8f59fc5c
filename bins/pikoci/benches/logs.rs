//! `cargo xtask bench logs`: log ingest at scale, on PostgreSQL.
//!
//! The release server (embedded worker, 100 build slots, mem broker) on a fresh PostgreSQL
//! database runs 100 builds at once, each printing 10,000 lines over about 10 s: 1M lines. Reported: how long
//! the builds took, lines and chunks stored (lines per chunk), bytes stored against the bytes
//! printed, and the rows of `log_chunks` inserted and updated meanwhile (from PostgreSQL's
//! statistics: chunks are written once, never updated per line). Meanwhile a client follows one
//! build's `events` stream and drops the connection every 2 s, reconnecting with
//! `Last-Event-ID`: it must get every line exactly once, in order (the one assertion: a
//! benchmark that lost lines would report nonsense).

// A command-line report: printing is its job.
#![allow(clippy::print_stdout, clippy::print_stderr)]

#[path = "../../../tests/support/mod.rs"]
#[allow(unreachable_pub)]
mod support;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use support::server::ServerProcess;

/// Builds running at once.
const BUILDS: usize = 100;

/// Lines each build prints.
const LINES: usize = 10_000;

/// Each build pauses for [`PACE`] seconds every [`PACE_LINES`] lines: its 10,000 lines take
/// about 10 s, so that the following client reconnects while the build runs.
const PACE_LINES: usize = 100;
const PACE: &str = "0.1";

/// How long the following client stays connected before it reconnects.
const RECONNECT_EVERY: Duration = Duration::from_secs(2);

/// The line `n` (from 1) of every build's log.
fn line(n: usize) -> String {
    format!("line {n} of a build log, about as long as a line of compiler output")
}

fn pipeline(script: &Path) -> String {
    let script = script.display();
    format!(
        r#"
job "chatty" {{
  task "print" {{
    run "exec" {{
      path = "/bin/sh"
      args = ["{script}"]
    }}
  }}
}}
"#
    )
}

/// `log_chunks` rows inserted and updated so far, by PostgreSQL's statistics.
fn row_writes(url: &str) -> (u64, u64) {
    let text = support::psql(
        url,
        "SELECT n_tup_ins, n_tup_upd FROM pg_stat_user_tables WHERE relname = 'log_chunks'",
    );
    let mut fields = text.split('|').map(|f| f.parse().unwrap_or(0));
    (fields.next().unwrap_or(0), fields.next().unwrap_or(0))
}

/// One build's `events` stream followed with a reconnection every [`RECONNECT_EVERY`]: the
/// text of its `log` events, and how many connections it took.
async fn follow(server: &ServerProcess, build: u64) -> (String, usize) {
    let path = format!("/teams/main/pipelines/logs/jobs/chatty/builds/{build}/events");
    let mut text = String::new();
    let mut last_id: Option<String> = None;
    let mut connections = 0;
    loop {
        connections += 1;
        let headers: Vec<(&str, &str)> = last_id
            .as_deref()
            .map(|id| vec![("Last-Event-ID", id)])
            .unwrap_or_default();
        let mut response = server.stream(&path, &headers).await;
        assert_eq!(response.status().as_u16(), 200, "the events stream answers");
        let until = Instant::now() + RECONNECT_EVERY;
        let mut pending = String::new();
        let mut event = Event::default();
        loop {
            let chunk = match tokio::time::timeout_at(until.into(), response.chunk()).await {
                Err(_) => break,
                Ok(chunk) => chunk.expect("the stream reads"),
            };
            let Some(chunk) = chunk else {
                panic!("the events stream closed before its end event");
            };
            pending.push_str(&String::from_utf8_lossy(&chunk));
            while let Some(end) = pending.find('\n') {
                let field = pending[..end].to_owned();
                pending.drain(..=end);
                if !field.is_empty() {
                    event.add(&field);
                    continue;
                }
                match event.name.as_str() {
                    "log" => {
                        let data: serde_json::Value =
                            serde_json::from_str(&event.data).expect("log data is JSON");
                        text.push_str(data["text"].as_str().unwrap_or_default());
                        last_id = event.id.clone().or(last_id);
                    }
                    "end" => return (text, connections),
                    "error" => panic!("the events stream failed: {}", event.data),
                    _ => {}
                }
                event = Event::default();
            }
        }
    }
}

/// A server-sent event being read.
#[derive(Default)]
struct Event {
    name: String,
    id: Option<String>,
    data: String,
}

impl Event {
    fn add(&mut self, field: &str) {
        let (key, value) = field.split_once(':').unwrap_or((field, ""));
        let value = value.strip_prefix(' ').unwrap_or(value);
        match key {
            "event" => self.name = value.to_owned(),
            "id" => self.id = Some(value.to_owned()),
            "data" => {
                if !self.data.is_empty() {
                    self.data.push('\n');
                }
                self.data.push_str(value);
            }
            _ => {}
        }
    }
}

#[tokio::main]
async fn main() {
    let base = std::env::var("PIKOCI_TEST_POSTGRES_URL")
        .expect("PIKOCI_TEST_POSTGRES_URL is not set: run `cargo xtask bench logs`");
    let url = format!("{base}_logs");
    let dir = tempfile::tempdir().expect("a temporary directory");
    let script = dir.path().join("print.sh");
    std::fs::write(
        &script,
        format!(
            "awk 'BEGIN {{ for (i = 1; i <= {LINES}; i++) {{ printf \"line %d of a build log, about as long as a line of compiler output\\n\", i; if (i % {PACE_LINES} == 0) {{ fflush(); system(\"sleep {PACE}\") }} }} }}'\n"
        ),
    )
    .expect("the script is written");
    let file = support::write(dir.path(), "logs.hcl", &pipeline(&script));
    let work = dir.path().join("work").display().to_string();
    let slots = BUILDS.to_string();
    let server = ServerProcess::start(&[
        "--log-level",
        "warn",
        "--db-url",
        &url,
        "--pipeline-config",
        &file,
        "--work-dir",
        &work,
        "--concurrency",
        &slots,
    ]);
    let (inserted_before, updated_before) = row_writes(&url);
    let started = Instant::now();
    for _ in 0..BUILDS {
        let (status, body) = server
            .post(
                "/teams/main/pipelines/logs/jobs/chatty/trigger",
                serde_json::json!({}),
            )
            .await;
        assert_eq!(status, 201, "{body}");
    }
    let (followed, connections) = follow(&server, 1).await;
    let expected: String = (1..=LINES).map(|n| line(n) + "\n").collect();
    assert!(
        followed == expected,
        "the client reconnecting every 2 s did not get every line once, in order: {} lines \
         instead of {LINES}",
        followed.lines().count()
    );
    let mut statuses = BTreeMap::new();
    for build in 1..=BUILDS {
        let finished = server
            .wait_finished(&format!(
                "/teams/main/pipelines/logs/jobs/chatty/builds/{build}"
            ))
            .await;
        let status = finished["status"].as_str().unwrap_or("?").to_owned();
        *statuses.entry(status).or_insert(0) += 1;
    }
    let took = started.elapsed();
    // Every build's stored log: its lines once each, in order.
    let mut wrong = Vec::new();
    for build in 1..=BUILDS {
        let text = server
            .text(&format!(
                "/teams/main/pipelines/logs/jobs/chatty/builds/{build}/logs"
            ))
            .await;
        let lines: Vec<&str> = text.lines().filter(|l| l.starts_with("line ")).collect();
        let whole = lines.len() == LINES && lines.iter().zip(1..).all(|(l, n)| *l == line(n));
        if !whole {
            wrong.push((build, lines.len(), text.len()));
        }
    }
    assert!(
        wrong.is_empty(),
        "builds whose stored log is not their {LINES} lines once each, in order (build, lines, \
         bytes): {wrong:?}"
    );
    // The statistics collector reports with a delay.
    tokio::time::sleep(Duration::from_secs(5)).await;
    let (inserted, updated) = row_writes(&url);
    let stored = support::psql(
        &url,
        "SELECT count(*), coalesce(sum(raw_len), 0), coalesce(sum(length(data)), 0) FROM log_chunks",
    );
    let fields: Vec<u64> = stored.split('|').map(|f| f.parse().unwrap_or(0)).collect();
    let requeued = support::psql(&url, "SELECT count(*) FROM builds WHERE requeues > 0");
    let (chunks, raw, compressed) = (fields[0], fields[1], fields[2]);
    let lines = BUILDS * LINES;
    let printed: usize = (1..=LINES).map(|n| line(n).len() + 1).sum::<usize>() * BUILDS;
    println!("{BUILDS} builds of {LINES} lines each at once (PostgreSQL, embedded worker)");
    println!(
        "  builds finished in {:.1} s: {statuses:?}; {requeued} ran more than once (lost their \
         worker)",
        took.as_secs_f64()
    );
    println!(
        "  {lines} lines in {chunks} chunks ({:.0} lines per chunk); {:.1} MB printed, {:.1} MB \
         in the chunks' text, {:.1} MB stored compressed ({:.1}%)",
        lines as f64 / chunks.max(1) as f64,
        printed as f64 / 1e6,
        raw as f64 / 1e6,
        compressed as f64 / 1e6,
        compressed as f64 * 100.0 / printed as f64,
    );
    println!(
        "  log_chunks rows: {} inserted, {} updated",
        inserted - inserted_before,
        updated - updated_before,
    );
    println!("  every build's stored log holds its {LINES} lines once each, in order");
    println!(
        "  a client reconnecting every {} s with Last-Event-ID ({connections} connections) got \
         each of build 1's {LINES} lines exactly once, in order",
        RECONNECT_EVERY.as_secs()
    );
    server.stop();
}
