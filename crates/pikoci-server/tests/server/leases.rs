//! Leases, heartbeats, lost workers, fencing and cancels.

use std::collections::BTreeMap;
use std::time::Duration;

use pikoci_core::protocol::{BuildRef, Message, Outcome, WorkRef};
use pikoci_core::store::{BuildStatus, StepStatus};
use pikoci_server::{SERVER_NOTES_STEP, ServerConfig};
use serde_json::json;

use crate::builds::UNIT;
use crate::harness::{FakeWorker, Harness, SRC, work};

/// A manual build of `unit`, assigned to and accepted by `w`.
async fn running_build(h: &Harness, w: &mut FakeWorker) -> BuildRef {
    let job = h.job("unit").await;
    let build = h
        .server
        .trigger_job(job.id, BTreeMap::new())
        .await
        .expect("build");
    let assign = w.expect_assign().await;
    assert_eq!(assign.build.build_id, build.id);
    w.accept(assign.build).await;
    h.wait_status(build.id, BuildStatus::Started).await;
    assign.build
}

#[tokio::test(start_paused = true)]
async fn heartbeats_renew_the_leases_of_running_builds() {
    let h = Harness::start(&format!("{SRC}{UNIT}")).await;
    h.add_version("src.app", json!({"ref": "a"})).await;
    let mut w = h.worker("w1").await;
    w.heartbeat(&[]).await;
    let build = running_build(&h, &mut w).await;
    // A minute of heartbeats, each answered with the lease renewed.
    for _ in 0..12 {
        tokio::time::sleep(Duration::from_secs(5)).await;
        let answer = w.heartbeat(&[work(build)]).await;
        assert_eq!(answer.0, vec![work(build)]);
        assert!(answer.1.is_empty());
        let now = h.server.clock().now().timestamp_millis();
        assert!(
            answer.2 > now + 10_000,
            "the lease ends 15 s after the heartbeat"
        );
    }
    let stored = h.store.build(build.build_id).await.expect("build");
    assert_eq!(stored.status, BuildStatus::Started);
    assert_eq!(stored.dispatch.attempt, 1);
    // Work the worker does not hold any more comes back as lost.
    let other = BuildRef {
        build_id: build.build_id,
        attempt: 7,
    };
    let (renewed, lost, _) = w.heartbeat(&[work(build), work(other)]).await;
    assert_eq!(renewed, vec![work(build)]);
    assert_eq!(lost, vec![work(other)]);
}

#[tokio::test(start_paused = true)]
async fn a_silent_worker_loses_its_build_to_another_and_a_build_lost_too_often_errors() {
    let config = ServerConfig {
        max_requeues: 1,
        ..ServerConfig::default()
    };
    let h = Harness::with_config(&format!("{SRC}{UNIT}"), config).await;
    h.add_version("src.app", json!({"ref": "a"})).await;
    let mut w1 = h.worker("w1").await;
    w1.start_heartbeats();
    let first = running_build(&h, &mut w1).await;
    // w1 dies; w2 shows up.
    w1.stop_heartbeats();
    let mut w2 = h.worker("w2").await;
    w2.start_heartbeats();
    let assign = w2.expect_assign().await;
    assert_eq!(assign.build.build_id, first.build_id);
    assert!(assign.build.attempt > first.attempt);
    let requeued = h.store.build(first.build_id).await.expect("build");
    assert_eq!(requeued.dispatch.requeues, 1);
    let log = h.log(first.build_id).await;
    assert!(log.contains("lost its worker \"w1\""), "{log}");
    assert!(log.contains("runs again"), "{log}");
    // w1 is told to stop; its late events change nothing and are answered with an abort.
    loop {
        if let Message::Abort { work: aborted, .. } = w1.recv().await {
            assert_eq!(aborted, work(first));
            break;
        }
    }
    w1.send_all(FakeWorker::step_events(first, 0, "late", &["late line"]))
        .await;
    w2.accept(assign.build).await;
    h.wait_status(first.build_id, BuildStatus::Started).await;
    // w2 dies too: the build lost its worker more than max_requeues times.
    w2.stop_heartbeats();
    let errored = h.wait_status(first.build_id, BuildStatus::Errored).await;
    assert!(
        errored
            .error
            .as_deref()
            .unwrap_or_default()
            .contains("lost its worker"),
        "{errored:?}"
    );
    let log = h.log(first.build_id).await;
    assert!(log.contains("lost its worker \"w2\""), "{log}");
    assert!(!log.contains("late line"), "{log}");
    let steps = h.store.build_steps(first.build_id).await.expect("steps");
    assert!(steps.iter().all(|s| s.name != "late"), "{steps:?}");
    let notes = h
        .store
        .read_log(first.build_id, None, 0)
        .await
        .expect("log");
    assert!(notes.iter().all(|c| c.step == SERVER_NOTES_STEP));
}

#[tokio::test(start_paused = true)]
async fn no_lease_is_taken_back_before_the_heartbeats_that_may_renew_it_are_read() {
    let h = Harness::start(&format!("{SRC}{UNIT}")).await;
    h.add_version("src.app", json!({"ref": "a"})).await;
    let mut w1 = h.worker("w1").await;
    w1.start_heartbeats();
    let build = running_build(&h, &mut w1).await;
    // w1 falls silent while the server reads no probe: its heartbeats may be waiting unread
    // in the broker, so its lease is not taken back, however long it lapsed.
    h.let_probes_through(false);
    w1.stop_heartbeats();
    tokio::time::sleep(Duration::from_secs(120)).await;
    let held = h.store.build(build.build_id).await.expect("build");
    assert_eq!(
        (held.status, held.dispatch.attempt),
        (BuildStatus::Started, build.attempt),
        "taken back before the heartbeats were read: {held:?}"
    );
    // Once a probe shows the heartbeats delivered, the worker is told to abort the build
    // first (it may be alive after all), and the build is taken back after the abort grace.
    h.let_probes_through(true);
    loop {
        if let Message::Abort { work: aborted, .. } = w1.recv().await {
            assert_eq!(aborted, work(build));
            break;
        }
    }
    let told = h.store.build(build.build_id).await.expect("build");
    assert_eq!(
        (told.status, told.dispatch.attempt),
        (BuildStatus::Started, build.attempt),
        "taken back before the abort grace: {told:?}"
    );
    let back = h.wait_status(build.build_id, BuildStatus::Pending).await;
    assert_eq!(back.dispatch.attempt, build.attempt + 1);
}

#[tokio::test(start_paused = true)]
async fn events_of_a_stale_attempt_are_ignored_and_answered_with_abort() {
    let h = Harness::start(&format!("{SRC}{UNIT}")).await;
    h.add_version("src.app", json!({"ref": "a"})).await;
    let mut w = h.worker("w1").await;
    w.start_heartbeats();
    let current = running_build(&h, &mut w).await;
    let stale = BuildRef {
        build_id: current.build_id,
        attempt: current.attempt + 5,
    };
    let mut events = FakeWorker::step_events(stale, 0, "stale", &["stale line"]);
    events.push(Message::BuildFinished {
        build: stale,
        outcome: Outcome::Failed,
        error: None,
        at_ms: 0,
        log_chunks: None,
    });
    w.send_all(events).await;
    loop {
        if let Message::Abort {
            work: aborted,
            reason,
        } = w.next_work().await
        {
            assert_eq!(aborted, WorkRef::Build(stale));
            assert!(reason.contains("stale"), "{reason}");
            break;
        }
    }
    // The current attempt still runs and finishes normally.
    w.send_all(FakeWorker::step_events(current, 0, "real", &["real line"]))
        .await;
    w.send(Message::BuildFinished {
        build: current,
        outcome: Outcome::Succeeded,
        error: None,
        at_ms: 0,
        log_chunks: None,
    })
    .await;
    h.wait_status(current.build_id, BuildStatus::Succeeded)
        .await;
    assert_eq!(h.log(current.build_id).await, "real line\n");
    let steps = h.store.build_steps(current.build_id).await.expect("steps");
    assert_eq!(steps.len(), 1);
    assert_eq!(
        (steps[0].name.as_str(), steps[0].status),
        ("real", StepStatus::Succeeded)
    );
}

#[tokio::test(start_paused = true)]
async fn a_cancelled_build_whose_worker_never_answers_ends_cancelled_after_the_grace() {
    let h = Harness::start(&format!("{SRC}{UNIT}")).await;
    h.add_version("src.app", json!({"ref": "a"})).await;
    let mut w = h.worker("w1").await;
    w.start_heartbeats();
    let build = running_build(&h, &mut w).await;
    let asked_at = ask_cancel(&h, &mut w, build).await;
    // The worker keeps heartbeating (its lease stays valid) but never reports the cancel.
    expect_forced_cancel(&h, &mut w, build, asked_at).await;
    assert!(
        h.log(build.build_id)
            .await
            .contains("did not confirm the cancel")
    );
    // A pending build is cancelled at once.
    let job = h.job("unit").await;
    w.stop_heartbeats();
    let pending = h
        .server
        .trigger_job(job.id, BTreeMap::new())
        .await
        .expect("build");
    let cancelled = h.server.cancel_build(pending.id).await.expect("cancel");
    assert_eq!(cancelled.status, BuildStatus::Cancelled);
}

#[tokio::test(start_paused = true)]
async fn a_cancel_waiting_for_its_worker_outlives_a_server_restart() {
    let mut h = Harness::start(&format!("{SRC}{UNIT}")).await;
    h.add_version("src.app", json!({"ref": "a"})).await;
    let mut w = h.worker("w1").await;
    w.start_heartbeats();
    let build = running_build(&h, &mut w).await;
    let asked_at = ask_cancel(&h, &mut w, build).await;
    let asked = h.store.build(build.build_id).await.expect("build");
    assert!(asked.dispatch.cancel_deadline.is_some(), "{asked:?}");
    // The server restarts before the deadline; the new one remembers nothing but the store.
    tokio::time::sleep(Duration::from_secs(5)).await;
    h.restart(ServerConfig::default()).await;
    expect_forced_cancel(&h, &mut w, build, asked_at).await;
}

/// Cancels a running build and expects the worker to be asked; returns when it was asked.
async fn ask_cancel(h: &Harness, w: &mut FakeWorker, build: BuildRef) -> tokio::time::Instant {
    let asked_at = tokio::time::Instant::now();
    let answer = h.server.cancel_build(build.build_id).await.expect("cancel");
    assert_eq!(answer.status, BuildStatus::Started);
    assert!(answer.dispatch.cancel_deadline.is_some(), "{answer:?}");
    match w.next_work().await {
        Message::Cancel { build: cancelled } => assert_eq!(cancelled, build),
        other => panic!("expected a cancel, got {other:?}"),
    }
    asked_at
}

/// The worker never confirmed: the build ends cancelled by the server after the grace, and the
/// worker is told to abort.
async fn expect_forced_cancel(
    h: &Harness,
    w: &mut FakeWorker,
    build: BuildRef,
    asked_at: tokio::time::Instant,
) {
    let cancelled = h.wait_status(build.build_id, BuildStatus::Cancelled).await;
    assert!(
        asked_at.elapsed() >= Duration::from_secs(30),
        "cancelled before the grace"
    );
    assert!(
        cancelled
            .error
            .as_deref()
            .unwrap_or_default()
            .contains("did not confirm"),
        "{cancelled:?}"
    );
    match w.next_work().await {
        Message::Abort { work: aborted, .. } => assert_eq!(aborted, work(build)),
        other => panic!("expected an abort, got {other:?}"),
    }
}
