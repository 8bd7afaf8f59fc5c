//! An outbox in front of a broker that holds every publish until told to let them through.

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::time::Duration;

use futures::{FutureExt, StreamExt};
use pikoci_core::broker::{BrokerResult, Subscription};
use pikoci_core::engine::{Status, StepId, StepType};
use pikoci_core::protocol::{BuildRef, Decoded, MAX_MESSAGE_BYTES};
use pikoci_core::store::BuildId;
use pikoci_pubsub::MemBroker;
use tokio::sync::watch;

use super::*;

const PATIENCE: Duration = Duration::from_secs(30);

/// A memory broker whose publishes wait while the gate is shut.
#[derive(Debug)]
struct GatedBroker {
    inner: MemBroker,
    open: watch::Sender<bool>,
}

#[async_trait::async_trait]
impl Broker for GatedBroker {
    async fn publish(&self, topic: &str, payload: Vec<u8>) -> BrokerResult<()> {
        let mut open = self.open.subscribe();
        let _ = open.wait_for(|open| *open).await;
        self.inner.publish(topic, payload).await
    }

    async fn subscribe(&self, topic: &str, group: &str) -> BrokerResult<Subscription> {
        self.inner.subscribe(topic, group).await
    }

    async fn close(&self) -> BrokerResult<()> {
        self.inner.close().await
    }
}

struct Setup {
    broker: Arc<GatedBroker>,
    events: Subscription,
    stop: WorkStop,
    outbox: Outbox,
    task: tokio::task::JoinHandle<()>,
    gauge: Arc<queue::Gauge>,
}

const BUILD: BuildRef = BuildRef {
    build_id: BuildId(7),
    attempt: 2,
};

/// An outbox of [`BUILD`] holding `budget` bytes in memory, spilling to `spill_dir`, in front of
/// a shut gate.
async fn setup(budget: usize, spill_dir: PathBuf) -> Setup {
    let broker = Arc::new(GatedBroker {
        inner: MemBroker::new(),
        open: watch::Sender::new(false),
    });
    let events = broker.subscribe(topics::EVENTS, "server").await.unwrap();
    let stop = WorkStop::default();
    let queue = Queue::new(budget, spill_dir, "build-7-2".to_owned());
    let gauge = queue.gauge();
    let publisher = Publisher::new(broker.clone(), "w", "boot", token());
    let (outbox, task) = Outbox::start_with(
        publisher,
        WorkRef::Build(BUILD),
        &stop,
        queue,
        &TaskTracker::new(),
    );
    Setup {
        broker,
        events,
        stop,
        outbox,
        task,
        gauge,
    }
}

fn line(n: usize) -> String {
    format!("line {n:06} {}", "o".repeat(90))
}

fn emit_step(sink: &BuildSink, id: StepId, lines: std::ops::Range<usize>) {
    sink.emit(Event::StepStarted {
        id,
        parent: None,
        step_type: StepType::Task,
        name: format!("step {id}"),
    });
    for n in lines {
        sink.emit(Event::Output {
            id,
            stream: None,
            text: line(n),
            at: SystemTime::now(),
        });
    }
    sink.emit(Event::StepFinished {
        id,
        status: Status::Succeeded,
        duration: Duration::ZERO,
        error: None,
    });
}

fn finish(sink: &BuildSink, status: Status) {
    sink.emit(Event::BuildFinished {
        status,
        duration: Duration::ZERO,
        error: None,
    });
}

async fn wait_until(what: &str, done: impl Fn() -> bool) {
    let deadline = tokio::time::Instant::now() + PATIENCE;
    while !done() {
        assert!(tokio::time::Instant::now() < deadline, "waited for {what}");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn token() -> pikoci_core::protocol::auth::MacKey {
    pikoci_core::protocol::auth::MacKey::new(pikoci_core::protocol::auth::KeyScope::Global, [3; 32])
}

/// The envelopes published, up to the build's end.
async fn received(events: &mut Subscription) -> Vec<Envelope> {
    let mut out = Vec::new();
    loop {
        let delivery = tokio::time::timeout(PATIENCE, events.next())
            .await
            .expect("the build's end arrives")
            .unwrap()
            .unwrap();
        let body = pikoci_core::protocol::auth::Signed::read(delivery.payload())
            .and_then(|signed| signed.verify(&token(), pikoci_core::protocol::topics::EVENTS))
            .expect("signed with the worker's token");
        let Ok(Decoded::Message(envelope)) = pikoci_core::protocol::decode(body) else {
            panic!("not a message");
        };
        delivery.ack().await.unwrap();
        let end = matches!(envelope.message, Message::BuildFinished { .. });
        out.push(*envelope);
        if end {
            return out;
        }
    }
}

/// Each step's log, its batches joined in order; asserts every step's `seq` counts from 0 and
/// that its logs come before its end.
fn logs(envelopes: &[Envelope]) -> BTreeMap<StepId, String> {
    let mut logs: BTreeMap<StepId, (u64, String)> = BTreeMap::new();
    let mut finished = HashSet::new();
    for envelope in envelopes {
        match &envelope.message {
            Message::Log {
                step, seq, text, ..
            } => {
                assert!(
                    !finished.contains(step),
                    "a log of step {step} after its end"
                );
                let (next, log) = logs.entry(*step).or_default();
                assert_eq!(seq, next, "step {step}");
                *next += 1;
                log.push_str(text);
            }
            Message::StepFinished { step, .. } => {
                finished.insert(*step);
            }
            _ => {}
        }
    }
    logs.into_iter()
        .map(|(step, (_, log))| (step, log))
        .collect()
}

/// The error of the build's end, last and `errored`.
fn errored_end(envelopes: &[Envelope]) -> &str {
    match envelopes.last().map(|e| &e.message) {
        Some(Message::BuildFinished {
            outcome: Outcome::Errored,
            error: Some(error),
            ..
        }) => error,
        other => panic!("the build does not end errored: {other:?}"),
    }
}

fn expected(lines: std::ops::Range<usize>) -> String {
    lines.map(|n| line(n) + "\n").collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blocked_broker_costs_disk_not_memory_and_every_line_arrives_once_in_order() {
    let work = tempfile::tempdir().unwrap();
    let dir = spill_dir(work.path());
    let budget = 256 * 1024;
    let mut setup = setup(budget, dir.clone()).await;
    setup.outbox.send(Message::Accepted {
        work: WorkRef::Build(BUILD),
    });
    let sink = setup.outbox.build_sink();
    // About 4 MB of output in two steps.
    emit_step(&sink, 0, 0..30_000);
    emit_step(&sink, 1, 30_000..40_000);
    finish(&sink, Status::Succeeded);
    drop((sink, setup.outbox));
    let gauge = setup.gauge.clone();
    wait_until("the output to reach the spill", || {
        gauge.spilled() > 3_500_000
    })
    .await;
    assert!(
        gauge.peak_memory() <= budget,
        "{} bytes in memory",
        gauge.peak_memory()
    );
    let files: Vec<_> = std::fs::read_dir(&dir).unwrap().collect();
    assert_eq!(files.len(), 1, "one spill file");
    setup.broker.open.send_replace(true);
    let envelopes = received(&mut setup.events).await;
    setup.task.await.unwrap();
    assert!(gauge.peak_memory() <= budget);
    assert!(
        !dir.exists(),
        "the spill file and its directory are removed"
    );
    let kinds: Vec<&str> = envelopes
        .iter()
        .map(|e| e.message.type_name())
        .filter(|kind| *kind != "log")
        .collect();
    assert_eq!(
        kinds,
        [
            "accepted",
            "step_started",
            "step_finished",
            "step_started",
            "step_finished",
            "build_finished"
        ]
    );
    let logs = logs(&envelopes);
    assert!(logs[&0] == expected(0..30_000), "step 0's log differs");
    assert!(logs[&1] == expected(30_000..40_000), "step 1's log differs");
    let ids: HashSet<&str> = envelopes.iter().map(|e| e.msg_id.as_str()).collect();
    assert_eq!(ids.len(), envelopes.len(), "no message twice");
    // Nothing more was published.
    assert!(setup.events.next().now_or_never().is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spill_that_fails_stops_the_build_keeps_its_lines_and_its_end_says_why() {
    let work = tempfile::tempdir().unwrap();
    let dir = spill_dir(work.path());
    // A file where the spill directory goes: it cannot be made.
    std::fs::write(&dir, "in the way").unwrap();
    let mut setup = setup(64 * 1024, dir.clone()).await;
    let sink = setup.outbox.build_sink();
    emit_step(&sink, 0, 0..5_000);
    let cancel = setup.stop.cancel.clone();
    wait_until("the build to be stopped", || cancel.is_cancelled()).await;
    // The engine, cancelled, ends the build.
    finish(&sink, Status::Cancelled);
    drop((sink, setup.outbox));
    setup.broker.open.send_replace(true);
    let envelopes = received(&mut setup.events).await;
    setup.task.await.unwrap();
    assert!(
        logs(&envelopes)[&0] == expected(0..5_000),
        "lines were lost"
    );
    let error = errored_end(&envelopes);
    assert!(
        error.starts_with(&format!(
            "cannot write the outbox spill file {}: ",
            dir.display()
        )) && error.contains("(os error ")
            && error.contains("the build was stopped"),
        "{error}"
    );
}

#[tokio::test]
async fn one_message_as_large_as_the_broker_allows_passes_a_smaller_budget() {
    let work = tempfile::tempdir().unwrap();
    let dir = spill_dir(work.path());
    let mut setup = setup(64 * 1024, dir.clone()).await;
    setup.outbox.send(Message::Accepted {
        work: WorkRef::Build(BUILD),
    });
    let big = Message::BuildFinished {
        build: BUILD,
        outcome: Outcome::Failed,
        error: Some("e".repeat(MAX_MESSAGE_BYTES - 1024)),
        at_ms: 0,
        log_chunks: None,
    };
    setup.outbox.send(big);
    drop(setup.outbox);
    let gauge = setup.gauge.clone();
    wait_until("the large message to reach the spill", || {
        gauge.spilled() > 0
    })
    .await;
    setup.broker.open.send_replace(true);
    let envelopes = received(&mut setup.events).await;
    setup.task.await.unwrap();
    assert_eq!(envelopes.len(), 2);
    assert!(!dir.exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_a_spill_cannot_be_read_back_the_builds_end_says_what_was_lost() {
    spill_damaged_after(|_| 0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spill_damaged_after_its_first_frames_still_ends_the_build_errored() {
    // Cut inside the second frame: the first is read back and queued, the rest (with the
    // build's end) is lost.
    spill_damaged_after(|bytes| {
        let first = u32::from_le_bytes(bytes[..4].try_into().unwrap()) as u64;
        4 + first + 2
    })
    .await;
}

/// A build spills its whole output and its end; the file is cut at `cut(its bytes)` before
/// the broker opens: the build must still end, errored, saying what was lost.
async fn spill_damaged_after(cut: impl Fn(&[u8]) -> u64) {
    let work = tempfile::tempdir().unwrap();
    let dir = spill_dir(work.path());
    let mut setup = setup(64 * 1024, dir.clone()).await;
    let sink = setup.outbox.build_sink();
    emit_step(&sink, 0, 0..5_000);
    finish(&sink, Status::Succeeded);
    drop((sink, setup.outbox));
    let spilled_end = || {
        std::fs::read_dir(&dir)
            .ok()
            .and_then(|mut files| files.next())
            .and_then(|file| std::fs::read(file.ok()?.path()).ok())
            .is_some_and(|bytes| String::from_utf8_lossy(&bytes).contains("\"build_finished\""))
    };
    wait_until("the build's end to reach the spill", spilled_end).await;
    let file = std::fs::read_dir(&dir)
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
    let length = cut(&std::fs::read(&file).unwrap());
    spill::cut_spill_file(&file, length);
    setup.broker.open.send_replace(true);
    let envelopes = received(&mut setup.events).await;
    setup.task.await.unwrap();
    assert!(!dir.exists());
    let error = errored_end(&envelopes);
    assert!(
        error.starts_with(&format!(
            "cannot read the outbox spill file {}: ",
            file.display()
        )) && error.contains("messages in it could not be sent"),
        "{error}"
    );
}
