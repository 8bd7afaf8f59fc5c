//! A build's outbox while the broker refuses its messages: bounded memory, a spill file under
//! the work directory, every line delivered once and in order when the broker is back.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use pikoci_core::protocol::{Message, Outcome, WorkRef};

use crate::harness::{RefusingBroker, RunningWorker, Server, assign, build, running, wait_for_pid};

/// A job whose one step prints `lines` lines of about 100 bytes (`line 000001 000…`).
fn chatty_job(lines: usize) -> String {
    format!(
        r#"
job "chatty" {{
  task "print" {{
    run "shell" {{
      cmd = "i=1; while [ $i -le {lines} ]; do printf 'line %06d %090d\n' $i 0; i=$((i+1)); done"
    }}
  }}
}}
"#
    )
}

fn line(n: usize) -> String {
    format!("line {n:06} {}\n", "0".repeat(90))
}

fn spill_dir(work_dir: &Path) -> PathBuf {
    work_dir.join("outbox")
}

/// The spill files in `dir`.
fn spill_files(dir: &Path) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .map(|e| e.unwrap().path())
                .filter(|p| p.extension().is_some_and(|e| e == "spill"))
                .collect()
        })
        .unwrap_or_default()
}

/// Step 0's log, its batches joined; asserts they are numbered from 0 and precede its end.
fn step_log(messages: &[Message]) -> String {
    let mut log = String::new();
    let mut next = 0;
    let mut finished = false;
    for message in messages {
        match message {
            Message::Log {
                step: 0, seq, text, ..
            } => {
                assert!(!finished, "a log batch after the step's end");
                assert_eq!(*seq, next, "batches numbered in order");
                next += 1;
                log.push_str(text);
            }
            Message::StepFinished { step: 0, .. } => finished = true,
            _ => {}
        }
    }
    log
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_chatty_build_behind_a_refusing_broker_spills_and_then_delivers_every_line_once() {
    let server = Server::start().await;
    let broker = Arc::new(RefusingBroker::new(&server));
    let worker = RunningWorker::start_with(&server, broker.clone(), "w-spill", 1, |_| {}).await;
    let dir = spill_dir(worker.work_dir.path());
    // About 4 MB of output: four times what an outbox holds in memory.
    let lines = 45_000;
    assert!(lines * 100 > 4 * pikoci_worker::OUTBOX_MEMORY_BYTES);
    let b = build(1);
    server
        .send(&worker.id, assign(b, &chatty_job(lines), "chatty"))
        .await;
    server
        .wait_for("a spill file", |_| {
            (!spill_files(&dir).is_empty()).then_some(())
        })
        .await;
    assert!(server.about(WorkRef::Build(b)).is_empty());
    broker.refuse.store(false, Ordering::SeqCst);
    server
        .wait_for_message(WorkRef::Build(b), "build_finished")
        .await;
    let messages = server.about(WorkRef::Build(b));
    let kinds: Vec<&str> = messages
        .iter()
        .map(Message::type_name)
        .filter(|kind| *kind != "log")
        .collect();
    assert_eq!(
        kinds,
        [
            "accepted",
            "step_started",
            "step_finished",
            "build_finished"
        ]
    );
    assert!(
        matches!(
            messages.last(),
            Some(Message::BuildFinished {
                outcome: Outcome::Succeeded,
                ..
            })
        ),
        "{:?}",
        messages.last()
    );
    let expected: String = (1..=lines).map(line).collect();
    assert!(
        step_log(&messages) == expected,
        "lines lost, repeated or out of order"
    );
    // The end counts every chunk queued, spilled ones included: the server waits for them.
    let chunks: std::collections::BTreeSet<(u32, u64)> = messages
        .iter()
        .filter_map(|message| match message {
            Message::Log { step, seq, .. } => Some((*step, *seq)),
            _ => None,
        })
        .collect();
    match messages.last() {
        Some(Message::BuildFinished { log_chunks, .. }) => {
            assert_eq!(*log_chunks, Some(chunks.len() as u64));
        }
        other => panic!("the build does not end with build_finished: {other:?}"),
    }
    // Removed once the build's messages are all published, before the worker returns.
    assert!(spill_files(&dir).is_empty());
    worker.drain().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spill_files_left_by_an_earlier_run_are_removed_at_start() {
    let server = Server::start().await;
    let left = std::sync::Mutex::new(None);
    let worker = RunningWorker::start(&server, "w-leftover", 1, |config| {
        let dir = spill_dir(&config.work_dir);
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("build-9-1-0190a1b2c3d4.spill");
        std::fs::write(&file, b"\x05\0\0\0hello").unwrap();
        *left.lock().unwrap() = Some(file);
    })
    .await;
    let file = left.lock().unwrap().take().unwrap();
    assert!(!file.exists(), "{} left", file.display());
    assert!(!spill_dir(worker.work_dir.path()).exists());
    worker.drain().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_build_whose_spill_cannot_be_written_is_stopped_and_ends_errored_naming_the_file() {
    let server = Server::start().await;
    let broker = Arc::new(RefusingBroker::new(&server));
    let worker = RunningWorker::start_with(&server, broker.clone(), "w-full", 1, |config| {
        // A file where the spill directory goes: no spill file can be made.
        std::fs::write(spill_dir(&config.work_dir), "in the way").unwrap();
    })
    .await;
    let dir = spill_dir(worker.work_dir.path());
    let marks = tempfile::tempdir().unwrap();
    // Endless output: only the failed spill stops the build.
    let endless = format!(
        r#"
job "chatty" {{
  task "print" {{
    run "shell" {{
      cmd = "echo $$ > {}/pid; i=1; while true; do printf 'line %06d %090d\n' $i 0; i=$((i+1)); done"
    }}
  }}
}}
"#,
        marks.path().display()
    );
    let b = build(1);
    server.send(&worker.id, assign(b, &endless, "chatty")).await;
    let pid = wait_for_pid(&marks.path().join("pid")).await;
    server
        .wait_for("the build to be stopped", |_| (!running(pid)).then_some(()))
        .await;
    broker.refuse.store(false, Ordering::SeqCst);
    let finished = server
        .wait_for_message(WorkRef::Build(b), "build_finished")
        .await;
    let Message::BuildFinished { outcome, error, .. } = finished else {
        panic!("not a build_finished: {finished:?}");
    };
    assert_eq!(outcome, Outcome::Errored);
    let error = error.unwrap_or_default();
    assert!(
        error.starts_with(&format!(
            "cannot write the outbox spill file {}: ",
            dir.display()
        )) && error.contains("(os error ")
            && error.contains("the build was stopped"),
        "{error}"
    );
    // Every line printed before the build was stopped arrived, once and in order.
    let log = step_log(&server.about(WorkRef::Build(b)));
    let count = log.lines().count();
    assert!(count > 10_000, "{count} lines");
    let expected: String = (1..=count).map(line).collect();
    assert!(log == expected, "lines lost, repeated or out of order");
    std::fs::remove_file(&dir).unwrap();
    worker.drain().await;
}
