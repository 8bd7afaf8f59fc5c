//! Checks on workers: leases renewed by heartbeats (a check may run as long as it needs), a
//! check whose worker went silent claimed again, and exclusive workers.

use std::time::Duration;

use pikoci_core::protocol::{CheckRef, Heartbeat, Message, WorkRef};
use serde_json::json;

use crate::harness::{FakeWorker, Harness, SRC, heartbeat_message};

/// Registers `w` with one heartbeat (its answer is not waited for) and returns the first check
/// it is assigned, accepted.
async fn first_check(w: &mut FakeWorker) -> CheckRef {
    w.send(heartbeat_message(&w.id, 2, &[], None)).await;
    take_check(w).await
}

/// The next check assigned to `w`, accepted (other messages are skipped).
async fn take_check(w: &mut FakeWorker) -> CheckRef {
    loop {
        if let Message::AssignCheck(assign) = w.recv().await {
            w.send(Message::Accepted {
                work: WorkRef::Check(assign.check),
            })
            .await;
            return assign.check;
        }
    }
}

#[tokio::test(start_paused = true)]
async fn a_long_check_keeps_its_lease_while_its_worker_heartbeats() {
    let h = Harness::start(SRC).await;
    let mut w1 = h.worker("w1").await;
    let check = first_check(&mut w1).await;
    // Another live worker that would take the check if its lease lapsed.
    let mut w2 = h.worker("w2").await;
    w2.start_heartbeats();
    // Ten minutes of heartbeats, twice what a check could run before leases were renewed.
    for _ in 0..120 {
        tokio::time::sleep(Duration::from_secs(5)).await;
        let (renewed, lost, until_ms) = w1.heartbeat(&[WorkRef::Check(check)]).await;
        assert_eq!(renewed, vec![WorkRef::Check(check)]);
        assert!(lost.is_empty(), "{lost:?}");
        let now = h.server.clock().now().timestamp_millis();
        assert!(
            until_ms > now + 10_000,
            "the lease ends 15 s after the heartbeat"
        );
    }
    let lease = h.resource("src.app").await.check_lease.expect("still held");
    assert_eq!(
        (lease.worker_id.as_str(), lease.attempt),
        ("w1", check.attempt)
    );
    // Its result still counts.
    w1.send(Message::CheckFinished {
        check,
        versions: vec![json!({"ref": "slow"})],
        error: None,
        log: String::new(),
        at_ms: 0,
    })
    .await;
    let app = h.resource("src.app").await.id;
    h.wait_for("the slow check's version", || async {
        h.store
            .latest_version(app)
            .await
            .expect("versions")
            .is_some_and(|v| v.version == json!({"ref": "slow"}))
    })
    .await;
}

#[tokio::test(start_paused = true)]
async fn a_check_whose_worker_stops_heartbeating_is_claimed_again() {
    let h = Harness::start(SRC).await;
    let mut w1 = h.worker("w1").await;
    let first = first_check(&mut w1).await;
    w1.heartbeat(&[WorkRef::Check(first)]).await;
    // w1 goes silent; w2 is alive.
    let silent_at = h.server.clock().now();
    let mut w2 = h.worker("w2").await;
    w2.start_heartbeats();
    let second = take_check(&mut w2).await;
    assert_eq!(second.resource_id, first.resource_id);
    assert!(second.attempt > first.attempt);
    let waited = h.server.clock().now() - silent_at;
    assert!(
        waited < chrono::Duration::seconds(60),
        "claimed again {waited} after its worker went silent, not once its lease lapsed"
    );
    // w1's late result changes nothing, and w1 hears the check is no longer its own.
    w1.send(Message::CheckFinished {
        check: first,
        versions: vec![json!({"ref": "late"})],
        error: None,
        log: String::new(),
        at_ms: 0,
    })
    .await;
    let (renewed, lost, _) = w1.heartbeat(&[WorkRef::Check(first)]).await;
    assert!(renewed.is_empty(), "{renewed:?}");
    assert_eq!(lost, vec![WorkRef::Check(first)]);
    let app = h.resource("src.app").await.id;
    assert_eq!(h.store.latest_version(app).await.expect("versions"), None);
    let lease = h.resource("src.app").await.check_lease.expect("held");
    assert_eq!(
        (lease.worker_id.as_str(), lease.attempt),
        ("w2", second.attempt)
    );
}

#[tokio::test(start_paused = true)]
async fn an_exclusive_worker_gets_no_check_of_an_untagged_resource() {
    let h = Harness::start(SRC).await;
    let mut gpu = h.worker("gpu").await;
    let Message::Heartbeat(heartbeat) = heartbeat_message("gpu", 2, &[], None) else {
        unreachable!()
    };
    let exclusive = Message::Heartbeat(Heartbeat {
        tags: vec!["gpu".into()],
        exclusive: true,
        ..heartbeat
    });
    // A minute of heartbeats: the check is due all along, and nobody claims it.
    for _ in 0..12 {
        gpu.send(exclusive.clone()).await;
        tokio::time::sleep(Duration::from_secs(5)).await;
    }
    assert_eq!(h.resource("src.app").await.check_lease, None);
    // A worker that takes untagged work gets it, as its first claim.
    let mut plain = h.worker("plain").await;
    let check = first_check(&mut plain).await;
    assert_eq!(check.attempt, 1);
    while let Ok(message) = tokio::time::timeout(Duration::from_secs(1), gpu.recv()).await {
        assert!(
            !matches!(message, Message::AssignCheck(_)),
            "the exclusive worker was sent {message:?}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn a_worker_runs_the_checks_it_announces_whatever_its_slots() {
    checks_at_once(Some(6), 6).await;
}

#[tokio::test(start_paused = true)]
async fn a_worker_that_does_not_announce_its_check_slots_runs_four_checks() {
    checks_at_once(None, 4).await;
}

/// A worker whose heartbeats announce `announced` check slots gets `at_once` checks while more
/// are due, and the next as soon as one ends.
async fn checks_at_once(announced: Option<u32>, at_once: usize) {
    let resources: String = (0..at_once + 2)
        .map(|n| format!("resource \"src\" \"r{n}\" {{ check_interval = \"@every 1h\" }}\n"))
        .collect();
    let h = Harness::start(&format!("{SRC}{resources}")).await;
    let mut w = h.worker("w1").await;
    // One build slot: checks do not take slots on a worker.
    let Message::Heartbeat(heartbeat) = heartbeat_message(&w.id, 1, &[], None) else {
        unreachable!()
    };
    w.send(Message::Heartbeat(Heartbeat {
        check_slots: announced,
        ..heartbeat
    }))
    .await;
    let mut running = Vec::new();
    for _ in 0..at_once {
        running.push(take_check(&mut w).await);
    }
    // More resources due (and `app`), `at_once` running: no other check while they run.
    let more = tokio::time::timeout(Duration::from_millis(2500), take_check(&mut w)).await;
    assert!(
        more.is_err(),
        "one more check while {at_once} run: {more:?}"
    );
    // One ends: the next is sent at once, not at the dispatcher's next round.
    let ended_at = tokio::time::Instant::now();
    w.send(Message::CheckFinished {
        check: running[0],
        versions: Vec::new(),
        error: None,
        log: String::new(),
        at_ms: 0,
    })
    .await;
    let next = take_check(&mut w).await;
    assert!(!running.contains(&next));
    assert!(
        ended_at.elapsed() < Duration::from_millis(500),
        "the next check waited {:?}",
        ended_at.elapsed()
    );
}
