//! At-least-once delivery: duplicated, reordered and unreadable messages.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use pikoci_core::broker::{Broker, BrokerResult, Subscription};
use pikoci_core::protocol::{BuildRef, Message, Outcome, WorkRef, topics};
use pikoci_core::store::{BuildStatus, StepStatus};
use pikoci_pubsub::MemBroker;
use serde_json::json;

use pikoci_server::ServerConfig;

use crate::harness::{FakeWorker, Harness, SRC, envelope, heartbeat_message, signed, token};

const PIPELINE: &str = r#"
resource "trigger" "go" {}
job "build" {
  get "src" "app" { trigger = true }
  task "compile" {
    run "exec" { path = "true" }
  }
  put "src" "app" {}
}
job "after" {
  get "trigger" "go" { trigger = true }
}
"#;

/// A broker that publishes every event twice and, when `reorder` is on, holds back every
/// fourth event until the next one is published.
#[derive(Debug)]
struct Flaky {
    inner: MemBroker,
    reorder: bool,
    state: Mutex<(u64, Option<Vec<u8>>)>,
}

impl Flaky {
    fn new(inner: MemBroker, reorder: bool) -> Flaky {
        Flaky {
            inner,
            reorder,
            state: Mutex::new((0, None)),
        }
    }

    /// Publishes the event held back, if any.
    async fn flush(&self) {
        let held = self.state.lock().expect("state").1.take();
        if let Some(payload) = held {
            self.twice(payload).await;
        }
    }

    async fn twice(&self, payload: Vec<u8>) {
        for _ in 0..2 {
            self.inner
                .publish(topics::EVENTS, payload.clone())
                .await
                .expect("publish");
        }
    }
}

#[async_trait]
impl Broker for Flaky {
    async fn publish(&self, topic: &str, payload: Vec<u8>) -> BrokerResult<()> {
        if topic != topics::EVENTS {
            return self.inner.publish(topic, payload).await;
        }
        let released = {
            let mut state = self.state.lock().expect("state");
            state.0 += 1;
            if self.reorder && state.0 % 4 == 2 && state.1.is_none() {
                state.1 = Some(payload);
                return Ok(());
            }
            state.1.take()
        };
        self.twice(payload).await;
        if let Some(held) = released {
            self.twice(held).await;
        }
        Ok(())
    }

    async fn subscribe(&self, topic: &str, group: &str) -> BrokerResult<Subscription> {
        self.inner.subscribe(topic, group).await
    }

    async fn close(&self) -> BrokerResult<()> {
        self.inner.close().await
    }
}

/// Runs the `build` job through a worker publishing via `flaky`: a check finds a version (one
/// build), the build runs three steps, puts a version (one more build) and a trigger event (a
/// build of `after`), then every count is checked.
async fn run_through(reorder: bool) {
    let h = Harness::start(&format!("{SRC}{PIPELINE}")).await;
    let flaky = Arc::new(Flaky::new(h.mem.clone(), reorder));
    let mut w = FakeWorker::connect("w1", flaky.clone(), &h.mem).await;
    w.start_heartbeats();
    // The first check finds one version: exactly one build of `build`.
    let check = loop {
        if let Message::AssignCheck(assign) = w.recv().await {
            break assign.check;
        }
    };
    w.send(Message::CheckFinished {
        check,
        versions: vec![json!({"ref": "a"})],
        error: None,
        log: "found a\n".into(),
        at_ms: 0,
    })
    .await;
    flaky.flush().await;
    let assign = w.expect_assign().await;
    let b: BuildRef = assign.build;
    w.accept(b).await;
    let mut events = Vec::new();
    let lines: Vec<String> = (0..6).map(|i| format!("line {i}")).collect();
    let lines: Vec<&str> = lines.iter().map(String::as_str).collect();
    events.extend(FakeWorker::step_events(b, 0, "app", &lines[..2]));
    events.extend(FakeWorker::step_events(b, 1, "compile", &lines[2..5]));
    events.extend(FakeWorker::step_events(b, 2, "app-put", &lines[5..]));
    events.push(Message::VersionUsed {
        build: b,
        resource: "src.app".into(),
        version: json!({"ref": "a"}),
    });
    events.push(Message::VersionsProduced {
        build: b,
        resource: "src.app".into(),
        versions: vec![json!({"ref": "put"})],
    });
    events.push(Message::TriggerEvent {
        build: b,
        resource: "trigger.go".into(),
        params: [("env".to_owned(), "prod".to_owned())].into(),
    });
    events.push(Message::BuildFinished {
        build: b,
        outcome: Outcome::Succeeded,
        error: None,
        at_ms: 9_000,
        // Duplicated chunks count once.
        log_chunks: Some(6),
    });
    w.send_all(events).await;
    flaky.flush().await;
    h.wait_status(b.build_id, BuildStatus::Succeeded).await;
    h.wait_for(
        "the build of the put's version and of the trigger event",
        || async { h.builds("build").await.len() >= 2 && !h.builds("after").await.is_empty() },
    )
    .await;
    // Let every duplicate be handled before counting.
    tokio::time::sleep(Duration::from_secs(20)).await;

    assert_eq!(
        h.builds("build").await.len(),
        2,
        "one build per new version"
    );
    assert_eq!(
        h.builds("after").await.len(),
        1,
        "one build per trigger event"
    );
    let steps = h.store.build_steps(b.build_id).await.expect("steps");
    let summary: Vec<(u32, &str, StepStatus)> = steps
        .iter()
        .map(|s| (s.step, s.name.as_str(), s.status))
        .collect();
    assert_eq!(
        summary,
        [
            (0, "app", StepStatus::Succeeded),
            (1, "compile", StepStatus::Succeeded),
            (2, "app-put", StepStatus::Succeeded),
        ]
    );
    let mut log: Vec<String> = h
        .store
        .read_log(b.build_id, None, 0)
        .await
        .expect("log")
        .into_iter()
        .map(|c| (c.step, c.seq, String::from_utf8_lossy(&c.data).into_owned()))
        .map(|(step, seq, text)| format!("{step}/{seq}:{text}"))
        .collect();
    // Chunks are stored in arrival order; within a step, `seq` orders them.
    log.sort();
    let expected = [
        "0/0:line 0\n",
        "0/1:line 1\n",
        "1/0:line 2\n",
        "1/1:line 3\n",
        "1/2:line 4\n",
        "2/0:line 5\n",
    ];
    assert_eq!(log, expected);
    let app = h.resource("src.app").await;
    let versions = h.store.versions(app.id, None, 0).await.expect("versions");
    assert_eq!(versions.len(), 2);
    let team = h.team.id;
    let events = h
        .store
        .trigger_events(team, "trigger.go", None, 0)
        .await
        .expect("events");
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].version["env"], "prod");
    assert_eq!(events[0].version["trigger_job"], "build");
    let used = h.store.build_versions(b.build_id).await.expect("used");
    assert_eq!(
        used.len(),
        2,
        "the get's version and the put's, once each: {used:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn duplicates_of_every_event_change_nothing() {
    run_through(false).await;
}

#[tokio::test(start_paused = true)]
async fn duplicated_and_reordered_events_still_give_one_build_and_exact_logs() {
    run_through(true).await;
}

#[tokio::test(start_paused = true)]
async fn a_redelivered_step_start_after_its_finish_changes_nothing() {
    let h = Harness::start(&format!("{SRC}{PIPELINE}")).await;
    h.add_version("src.app", json!({"ref": "a"})).await;
    let mut w = h.worker("w1").await;
    w.start_heartbeats();
    let job = h.job("build").await;
    h.server
        .trigger_job(job.id, Default::default())
        .await
        .expect("build");
    let assign = w.expect_assign().await;
    let b = assign.build;
    w.accept(b).await;
    let events = FakeWorker::step_events(b, 0, "compile", &["ok"]);
    let started = events[0].clone();
    w.send_all(events).await;
    w.send(started).await;
    w.send(Message::BuildFinished {
        build: b,
        outcome: Outcome::Succeeded,
        error: None,
        at_ms: 0,
        log_chunks: None,
    })
    .await;
    h.wait_status(b.build_id, BuildStatus::Succeeded).await;
    let steps = h.store.build_steps(b.build_id).await.expect("steps");
    assert_eq!(steps.len(), 1);
    assert_eq!(steps[0].status, StepStatus::Succeeded);
    assert!(steps[0].finished_at.is_some());
}

#[tokio::test(start_paused = true)]
async fn a_build_finishes_only_once_the_log_chunks_its_worker_sent_are_stored() {
    // A chunk taken by a server that died comes back after the messages behind it (NATS
    // redelivers it after `ack_wait`): the build's end waits for it, and the chunks of other
    // builds keep flowing meanwhile.
    let config = ServerConfig {
        // Longer than the 15 s lease.
        log_patience: Duration::from_secs(20),
        ..ServerConfig::default()
    };
    let h = Harness::with_config(&format!("{SRC}{PIPELINE}"), config).await;
    h.add_version("src.app", json!({"ref": "a"})).await;
    let mut w = h.worker("w1").await; // two slots
    w.start_heartbeats();
    let job = h.job("build").await;
    let mut builds = Vec::new();
    for _ in 0..2 {
        h.server
            .trigger_job(job.id, Default::default())
            .await
            .expect("build");
        let assign = w.expect_assign().await;
        w.accept(assign.build).await;
        builds.push(assign.build);
    }
    let (late, other) = (builds[0], builds[1]);
    let mut events = FakeWorker::step_events(late, 0, "compile", &["one", "two", "three"]);
    let held_back = events.remove(1);
    w.send_all(events).await;
    // A worker heartbeats a build no more once it sent its end.
    let stop_heartbeating = |build: BuildRef| {
        w.running
            .lock()
            .expect("running")
            .retain(|work| *work != WorkRef::Build(build));
    };
    stop_heartbeating(late);
    w.send(Message::BuildFinished {
        build: late,
        outcome: Outcome::Succeeded,
        error: None,
        at_ms: 0,
        log_chunks: Some(3),
    })
    .await;
    w.send_all(FakeWorker::step_events(other, 0, "compile", &["other"]))
        .await;
    h.wait_for("the other build's log", || async {
        h.log(other.build_id).await == "other\n"
    })
    .await;
    tokio::time::sleep(Duration::from_secs(10)).await;
    let waiting = h.store.build(late.build_id).await.expect("build");
    assert_eq!(waiting.status, BuildStatus::Started);
    w.send(held_back).await;
    h.wait_status(late.build_id, BuildStatus::Succeeded).await;
    // In reading order (the held-back chunk was stored last).
    let chunks = h
        .store
        .read_attempt_log(late.build_id, late.attempt, Default::default(), 0)
        .await
        .expect("log");
    let text: Vec<u8> = chunks.into_iter().flat_map(|chunk| chunk.data).collect();
    assert_eq!(String::from_utf8_lossy(&text), "one\ntwo\nthree\n");

    // A chunk that never comes: the build finishes after the patience (longer than a lease:
    // the wait extends it), and its log says so.
    let started = tokio::time::Instant::now();
    stop_heartbeating(other);
    w.send(Message::BuildFinished {
        build: other,
        outcome: Outcome::Failed,
        error: Some("exit 1".into()),
        at_ms: 0,
        log_chunks: Some(2),
    })
    .await;
    // A heartbeat that still listed it, read after its end: it sets the lease to 15 s from
    // now, shorter than the wait.
    tokio::time::sleep(Duration::from_secs(1)).await;
    w.send(heartbeat_message(&w.id, 2, &[WorkRef::Build(other)], None))
        .await;
    let finished = h.wait_status(other.build_id, BuildStatus::Failed).await;
    assert!(started.elapsed() >= Duration::from_secs(20));
    assert_eq!(finished.error.as_deref(), Some("exit 1"));
    assert_eq!(
        finished.dispatch.attempt, other.attempt,
        "the build was taken back"
    );
    let log = h.log(other.build_id).await;
    assert!(
        log.starts_with(
            "other\npikoci: the log of this attempt may be incomplete: 1 of the 2 chunks"
        ),
        "{log}"
    );
}

#[tokio::test(start_paused = true)]
async fn unknown_newer_and_malformed_messages_are_acked() {
    let h = Harness::start(SRC).await;
    let started = tokio::time::Instant::now();
    let raw = [
        r#"{"v":1,"type":"from_the_future","msg_id":"m1","sender":"w9","boot_id":"b","sent_at_ms":0}"#,
        r#"{"v":99,"type":"heartbeat","msg_id":"m2","sender":"w9","boot_id":"b","sent_at_ms":0}"#,
        r#"{"v":1,"type":"heartbeat","msg_id":"m3","sender":"w9","boot_id":"b","sent_at_ms":0}"#,
        "not json at all",
    ];
    for topic in [topics::EVENTS, topics::HEARTBEATS] {
        for bytes in raw {
            h.mem
                .publish(topic, token().seal(topic, bytes.as_bytes()))
                .await
                .expect("publish");
        }
    }
    // Messages behind them on both topics are handled at once: nothing was given back.
    let beat = signed(
        &token(),
        topics::HEARTBEATS,
        &envelope("w1", heartbeat_message("w1", 1, &[], None)),
    );
    h.mem
        .publish(topics::HEARTBEATS, beat)
        .await
        .expect("publish");
    let beat = signed(
        &token(),
        topics::EVENTS,
        &envelope("w2", heartbeat_message("w2", 1, &[], None)),
    );
    h.mem.publish(topics::EVENTS, beat).await.expect("publish");
    h.wait_for("both workers registered", || async {
        h.store.workers().await.expect("workers").len() == 2
    })
    .await;
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "the bad messages were retried instead of acked"
    );
    let readiness = h.server.readiness().await;
    assert!(readiness.store && readiness.broker, "{readiness:?}");
}
