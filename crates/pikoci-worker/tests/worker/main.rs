//! The worker against a fake server on the in-memory broker, running real processes.

mod harness;
mod outbox;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use futures::FutureExt;
use futures::StreamExt;
use harness::{
    RunningWorker, Server, assign, assign_check, build, check, running, wait_for_pid,
    with_store_values,
};
use pikoci_core::broker::Broker;
use pikoci_core::protocol::auth::{KeyScope, MacKey};
use pikoci_core::protocol::{CheckRef, Message, Outcome, WorkRef, topics};
use pikoci_core::secrets::SecretValue;
use pikoci_secrets::sealed::{StoreValues, WorkerKey};

/// A job whose task writes its pid to `dir/pid`, prints "started", and runs until `dir/release`
/// exists; `on_cancel` writes `dir/cancel-hook`.
fn waiting_job(dir: &Path) -> String {
    let dir = dir.display();
    format!(
        r#"
job "wait" {{
  task "hold" {{
    run "shell" {{
      cmd = "echo $$ > {dir}/pid; echo started; while [ ! -f {dir}/release ]; do sleep 0.02; done; echo released"
    }}
  }}
  on_cancel "shell" {{
    cmd = "echo cleaning up; touch {dir}/cancel-hook"
  }}
}}
"#
    )
}

fn outcome_of(message: &Message) -> Option<(Outcome, Option<String>)> {
    match message {
        Message::BuildFinished { outcome, error, .. } => Some((*outcome, error.clone())),
        _ => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_build_reports_every_event_in_order_with_complete_logs() {
    let server = Server::start().await;
    let worker = RunningWorker::start(&server, "w-order", 1, |_| {}).await;
    // 600 lines of 200 bytes: more than one 64 KiB batch.
    let hcl = r#"
job "test" {
  task "print" {
    run "shell" {
      cmd = "i=1; while [ $i -le 600 ]; do printf 'line %04d %0195d\n' $i 0; i=$((i+1)); done"
    }
  }
  task "after" {
    run "exec" {
      path = "echo"
      args = ["done"]
    }
  }
}
"#;
    let b = build(1);
    server.send(&worker.id, assign(b, hcl, "test")).await;
    server
        .wait_for_message(WorkRef::Build(b), "build_finished")
        .await;
    let messages = server.about(WorkRef::Build(b));
    assert!(
        matches!(messages.first(), Some(Message::Accepted { .. })),
        "{messages:#?}"
    );
    assert_eq!(
        outcome_of(messages.last().unwrap()),
        Some((Outcome::Succeeded, None)),
        "build_finished is the last message"
    );
    // The shape: accepted, then each step's start, its logs, its end, in that order.
    let shape: Vec<String> = messages
        .iter()
        .map(|m| match m {
            Message::StepStarted { step, name, .. } => format!("start {step} {name}"),
            Message::Log { step, .. } => format!("log {step}"),
            Message::StepFinished { step, outcome, .. } => format!("end {step} {outcome:?}"),
            other => other.type_name().to_owned(),
        })
        .fold(Vec::new(), |mut shape: Vec<String>, item| {
            if shape.last() != Some(&item) {
                shape.push(item);
            }
            shape
        });
    assert_eq!(
        shape,
        [
            "accepted",
            "start 0 print",
            "log 0",
            "end 0 Succeeded",
            "start 1 after",
            "log 1",
            "end 1 Succeeded",
            "build_finished"
        ]
    );
    let batches: Vec<(u64, String)> = messages
        .iter()
        .filter_map(|m| match m {
            Message::Log {
                step: 0, seq, text, ..
            } => Some((*seq, text.clone())),
            _ => None,
        })
        .collect();
    assert!(batches.len() >= 2, "{} batches", batches.len());
    let seqs: Vec<u64> = batches.iter().map(|(seq, _)| *seq).collect();
    assert_eq!(seqs, (0..batches.len() as u64).collect::<Vec<_>>());
    let expected: String = (1..=600)
        .map(|i| format!("line {i:04} {}\n", "0".repeat(195)))
        .collect();
    let joined: String = batches.iter().map(|(_, text)| text.as_str()).collect();
    assert!(joined == expected, "the log differs from the output");
    assert!(batches.iter().all(|(_, t)| t.len() <= 64 * 1024));
    let after: String = messages
        .iter()
        .filter_map(|m| match m {
            Message::Log { step: 1, text, .. } => Some(text.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(after, "done\n");
    // Envelopes: this protocol version, this worker, one boot, unique ids.
    let envelopes = server.events();
    assert!(envelopes.iter().all(|e| e.v == 1 && e.sender == "w-order"));
    assert!(envelopes.windows(2).all(|w| w[0].boot_id == w[1].boot_id));
    let mut ids: Vec<&str> = envelopes.iter().map(|e| e.msg_id.as_str()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), envelopes.len());
    // Heartbeats describe the worker.
    let heartbeats = server.heartbeats();
    assert!(
        heartbeats
            .iter()
            .all(|h| h.slots == 1 && h.hostname == "test-host" && !h.draining)
    );
    worker.drain().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_messages_are_retried_and_nothing_is_lost() {
    let server = Server::start().await;
    let broker = std::sync::Arc::new(harness::RefusingBroker::new(&server));
    let worker = RunningWorker::start_with(&server, broker.clone(), "w-retry", 1, |_| {}).await;
    let hcl = r#"
job "test" {
  task "print" {
    run "shell" {
      cmd = "i=1; while [ $i -le 300 ]; do echo line $i; i=$((i+1)); done"
    }
  }
}
"#;
    let b = build(1);
    server.send(&worker.id, assign(b, hcl, "test")).await;
    server
        .wait_for("three refused publishes", |_| {
            (broker.refused.load(std::sync::atomic::Ordering::SeqCst) >= 3).then_some(())
        })
        .await;
    assert!(server.about(WorkRef::Build(b)).is_empty());
    broker
        .refuse
        .store(false, std::sync::atomic::Ordering::SeqCst);
    server
        .wait_for_message(WorkRef::Build(b), "build_finished")
        .await;
    let messages = server.about(WorkRef::Build(b));
    assert_eq!(messages.first().map(Message::type_name), Some("accepted"));
    assert_eq!(
        messages.last().map(Message::type_name),
        Some("build_finished")
    );
    let mut seqs = Vec::new();
    let mut log = String::new();
    for message in &messages {
        if let Message::Log { seq, text, .. } = message {
            seqs.push(*seq);
            log.push_str(text);
        }
    }
    assert_eq!(seqs, (0..seqs.len() as u64).collect::<Vec<_>>());
    let expected: String = (1..=300).map(|i| format!("line {i}\n")).collect();
    assert!(log == expected, "lines were lost: {log}");
    worker.drain().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repeated_assignment_runs_once() {
    let server = Server::start().await;
    let worker = RunningWorker::start(&server, "w-dup", 2, |_| {}).await;
    let marks = tempfile::tempdir().unwrap();
    let hcl = format!(
        "job \"once\" {{\n  task \"mark\" {{\n    run \"shell\" {{ cmd = \"echo ran >> {}/runs\" }}\n  }}\n}}\n",
        marks.path().display()
    );
    let b = build(1);
    let message = assign(b, &hcl, "once");
    server.send(&worker.id, message.clone()).await;
    server.send(&worker.id, message.clone()).await;
    server
        .wait_for_message(WorkRef::Build(b), "build_finished")
        .await;
    // Redelivered after it ended: still not run again. The inbox is read in order, so once the
    // next build ended, the repeat was handled.
    server.send(&worker.id, message).await;
    let next = build(2);
    server.send(&worker.id, assign(next, &hcl, "once")).await;
    server
        .wait_for_message(WorkRef::Build(next), "build_finished")
        .await;
    let messages = server.about(WorkRef::Build(b));
    let count = |name: &str| messages.iter().filter(|m| m.type_name() == name).count();
    assert_eq!(count("accepted"), 1, "{messages:#?}");
    assert_eq!(count("build_finished"), 1, "{messages:#?}");
    assert_eq!(count("rejected"), 0, "{messages:#?}");
    let runs = std::fs::read_to_string(marks.path().join("runs")).unwrap();
    assert_eq!(runs, "ran\nran\n", "build 1 once, build 2 once");
    worker.drain().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_or_draining_worker_rejects_work_and_drains_what_runs() {
    let server = Server::start().await;
    let worker = RunningWorker::start(&server, "w-full", 1, |_| {}).await;
    let dir = tempfile::tempdir().unwrap();
    let hcl = waiting_job(dir.path());
    let first = build(1);
    server.send(&worker.id, assign(first, &hcl, "wait")).await;
    wait_for_pid(&dir.path().join("pid")).await;
    let second = build(2);
    server.send(&worker.id, assign(second, &hcl, "wait")).await;
    let rejected = server
        .wait_for_message(WorkRef::Build(second), "rejected")
        .await;
    assert_eq!(
        rejected,
        Message::Rejected {
            work: WorkRef::Build(second),
            reason: "no free slot (1 of 1 in use)".to_owned()
        }
    );
    worker.stop.drain.cancel();
    server
        .wait_for("a draining heartbeat", |s| {
            s.heartbeats()
                .iter()
                .any(|h| h.draining && h.running == [WorkRef::Build(first)])
                .then_some(())
        })
        .await;
    let third = build(3);
    server.send(&worker.id, assign(third, &hcl, "wait")).await;
    let rejected = server
        .wait_for_message(WorkRef::Build(third), "rejected")
        .await;
    assert_eq!(
        rejected,
        Message::Rejected {
            work: WorkRef::Build(third),
            reason: "worker is draining".to_owned()
        }
    );
    // The running build finishes normally, then the worker returns.
    std::fs::write(dir.path().join("release"), "").unwrap();
    worker.finish().await;
    // What the worker published may still be on its way to the fake server.
    let finished = server
        .wait_for("the first build's end", |s| {
            s.about(WorkRef::Build(first))
                .iter()
                .rev()
                .find_map(outcome_of)
        })
        .await;
    assert_eq!(finished, (Outcome::Succeeded, None));
    assert!(
        server
            .about(WorkRef::Build(second))
            .iter()
            .all(|m| m.type_name() == "rejected")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_assignment_whose_lease_lapsed_long_ago_is_refused() {
    let server = Server::start().await;
    let worker = RunningWorker::start(&server, "w-late", 1, |_| {}).await;
    let dir = tempfile::tempdir().unwrap();
    let hcl = waiting_job(dir.path());
    let late = build(1);
    let Message::Assign(mut assignment) = assign(late, &hcl, "wait") else {
        unreachable!("assign() makes an assignment")
    };
    assignment.lease_until_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
        - 60_000;
    server.send(&worker.id, Message::Assign(assignment)).await;
    let rejected = server
        .wait_for_message(WorkRef::Build(late), "rejected")
        .await;
    let Message::Rejected { reason, .. } = rejected else {
        panic!("{rejected:?}")
    };
    assert!(
        reason.contains("lease lapsed 60 s before it arrived"),
        "{reason}"
    );
    assert!(!dir.path().join("pid").exists(), "the build never started");
    worker.drain().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_runs_the_cancel_hooks_and_reports_cancelled() {
    let server = Server::start().await;
    let worker = RunningWorker::start(&server, "w-cancel", 1, |_| {}).await;
    let dir = tempfile::tempdir().unwrap();
    let b = build(1);
    server
        .send(&worker.id, assign(b, &waiting_job(dir.path()), "wait"))
        .await;
    let pid = wait_for_pid(&dir.path().join("pid")).await;
    server.send(&worker.id, Message::Cancel { build: b }).await;
    let finished = server
        .wait_for_message(WorkRef::Build(b), "build_finished")
        .await;
    assert_eq!(
        outcome_of(&finished),
        Some((Outcome::Cancelled, Some("build cancelled".to_owned())))
    );
    let messages = server.about(WorkRef::Build(b));
    assert!(
        messages.iter().any(|m| matches!(
            m,
            Message::StepFinished {
                step: 0,
                outcome: Outcome::Cancelled,
                ..
            }
        )),
        "{messages:#?}"
    );
    let hook_log: String = messages
        .iter()
        .filter_map(|m| match m {
            Message::Log { step, text, .. } if *step > 0 => Some(text.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(hook_log, "cleaning up\n");
    assert!(dir.path().join("cancel-hook").exists());
    assert!(!running(pid), "the step's process is gone");
    worker.drain().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abort_stops_the_build_without_hooks_and_reports_nothing_more() {
    let server = Server::start().await;
    let worker = RunningWorker::start(&server, "w-abort", 1, |_| {}).await;
    let dir = tempfile::tempdir().unwrap();
    let b = build(1);
    server
        .send(&worker.id, assign(b, &waiting_job(dir.path()), "wait"))
        .await;
    let pid = wait_for_pid(&dir.path().join("pid")).await;
    server
        .wait_for("the step's first line", |s| {
            s.about(WorkRef::Build(b))
                .iter()
                .any(|m| matches!(m, Message::Log { text, .. } if text == "started\n"))
                .then_some(())
        })
        .await;
    let before = server.about(WorkRef::Build(b)).len();
    server
        .send(
            &worker.id,
            Message::Abort {
                work: WorkRef::Build(b),
                reason: "stale attempt".to_owned(),
            },
        )
        .await;
    // Draining returns once the aborted build stopped.
    worker.drain().await;
    assert!(!running(pid), "the step's process is gone");
    assert!(!dir.path().join("cancel-hook").exists(), "no hook ran");
    let after = server.about(WorkRef::Build(b));
    assert_eq!(
        after.len(),
        before,
        "published after the abort: {:#?}",
        &after[before..]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_build_whose_heartbeats_the_broker_does_not_take_stops_itself() {
    let server = Server::start().await;
    server.ignore_heartbeats();
    let broker = Arc::new(harness::RefusingBroker::on(
        &server,
        topics::HEARTBEATS,
        false,
    ));
    let worker = RunningWorker::start_with(&server, broker.clone(), "w-fenced", 1, |config| {
        config.heartbeat_interval = Duration::from_millis(100);
        config.lease_timeout = Duration::from_millis(600);
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let b = build(1);
    server
        .send(&worker.id, assign(b, &waiting_job(dir.path()), "wait"))
        .await;
    let pid = wait_for_pid(&dir.path().join("pid")).await;
    // Heartbeats the broker keeps hold the lease, answered or not.
    tokio::time::sleep(Duration::from_millis(1200)).await;
    assert!(
        running(pid),
        "a build whose heartbeats the broker kept was stopped"
    );
    broker.refuse.store(true, Ordering::SeqCst);
    // The build never ends by itself: draining returns only because the worker stopped it.
    worker.drain().await;
    assert!(!running(pid));
    assert!(
        !dir.path().join("cancel-hook").exists(),
        "aborted, not cancelled"
    );
    let messages = server.about(WorkRef::Build(b));
    assert!(
        messages.iter().all(|m| m.type_name() != "build_finished"),
        "{messages:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_build_goes_on_to_its_end_while_no_server_answers() {
    let server = Server::start().await;
    server.ignore_heartbeats();
    let worker = RunningWorker::start(&server, "w-alone", 1, |config| {
        config.heartbeat_interval = Duration::from_millis(100);
        config.lease_timeout = Duration::from_millis(600);
    })
    .await;
    // Runs four times as long as a lease lasts unconfirmed (0.5 s).
    let hcl = "job \"slow\" {\n  task \"sleep\" {\n    run \"shell\" { cmd = \"sleep 2; echo slept\" }\n  }\n}\n";
    let b = build(1);
    server.send(&worker.id, assign(b, hcl, "slow")).await;
    let finished = server
        .wait_for_message(WorkRef::Build(b), "build_finished")
        .await;
    assert_eq!(outcome_of(&finished), Some((Outcome::Succeeded, None)));
    worker.drain().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renewed_leases_keep_a_build_running_and_lost_ones_stop_it() {
    let server = Server::start().await;
    // The broker's confirmations of heartbeats get lost: only the renewals hold the leases.
    let broker = Arc::new(harness::RefusingBroker::losing_acks(
        &server,
        topics::HEARTBEATS,
    ));
    let worker = RunningWorker::start_with(&server, broker, "w-leases", 2, |config| {
        config.heartbeat_interval = Duration::from_millis(250);
        config.lease_timeout = Duration::from_millis(1750);
    })
    .await;
    // Runs more than twice as long as a lease lasts unconfirmed (1.5 s): the renewals keep it
    // going.
    let hcl = "job \"slow\" {\n  task \"sleep\" {\n    run \"shell\" { cmd = \"sleep 3.5; echo slept\" }\n  }\n}\n";
    let slow = build(1);
    server.send(&worker.id, assign(slow, hcl, "slow")).await;
    let finished = server
        .wait_for_message(WorkRef::Build(slow), "build_finished")
        .await;
    assert_eq!(outcome_of(&finished), Some((Outcome::Succeeded, None)));
    let dir = tempfile::tempdir().unwrap();
    let lost = build(2);
    server
        .send(&worker.id, assign(lost, &waiting_job(dir.path()), "wait"))
        .await;
    let pid = wait_for_pid(&dir.path().join("pid")).await;
    server
        .send(
            &worker.id,
            Message::Leases {
                heartbeat: "an-old-heartbeat".to_owned(),
                until_ms: 0,
                renewed: Vec::new(),
                lost: vec![WorkRef::Build(lost)],
            },
        )
        .await;
    worker.drain().await;
    assert!(!running(pid));
    assert!(
        server
            .about(WorkRef::Build(lost))
            .iter()
            .all(|m| m.type_name() != "build_finished")
    );
}

/// A check that runs until `<dir>/release` exists, having written its pid to `<dir>/pid`.
fn waiting_check(dir: &Path) -> String {
    let dir = dir.display();
    format!(
        r#"
resource_type "slow" {{
  check "shell" {{
    cmd = "echo $$ > {dir}/pid; while [ ! -f {dir}/release ]; do sleep 0.02; done; echo '[]'"
  }}
}}
resource "slow" "app" {{}}
"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_running_check_is_in_the_heartbeats_and_stops_itself_when_no_server_confirms_it() {
    let server = Server::start().await;
    let worker = RunningWorker::start(&server, "w-check-fenced", 1, |config| {
        config.heartbeat_interval = Duration::from_millis(100);
        config.lease_timeout = Duration::from_millis(800);
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let c = CheckRef {
        resource_id: pikoci_core::store::ResourceId(9),
        attempt: 4,
    };
    server
        .send(
            &worker.id,
            assign_check(c, &waiting_check(dir.path()), "slow.app", None),
        )
        .await;
    let pid = wait_for_pid(&dir.path().join("pid")).await;
    // Heartbeats list it, at its attempt, so that a server renews its lease.
    server
        .wait_for("a heartbeat listing the check", |server| {
            server
                .heartbeats()
                .iter()
                .any(|h| h.running.contains(&WorkRef::Check(c)))
                .then_some(())
        })
        .await;
    // Renewed for three lease windows (0.7 s each), it runs on.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    assert!(running(pid), "a check whose lease is renewed was stopped");
    // The broker keeps its heartbeats, but a check needs a server's renewal.
    server.ignore_heartbeats();
    // The check never ends by itself: draining returns only because the worker stopped it.
    worker.drain().await;
    assert!(!running(pid));
    let messages = server.about(WorkRef::Check(c));
    assert_eq!(
        messages.iter().map(Message::type_name).collect::<Vec<_>>(),
        ["accepted"],
        "a fenced check reports nothing"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_check_returns_the_versions_it_found_and_its_output() {
    let server = Server::start().await;
    let worker = RunningWorker::start(&server, "w-check", 1, |_| {}).await;
    let hcl = r#"
resource_type "repo" {
  check "shell" {
    cmd = "echo '[{\"ref\":\"v2\"},{\"ref\":\"after-'$version_ref'\"}]'"
  }
}
resource "repo" "app" {}
"#;
    let c = check(7);
    server
        .send(
            &worker.id,
            assign_check(c, hcl, "repo.app", Some(serde_json::json!({"ref": "v1"}))),
        )
        .await;
    let finished = server
        .wait_for_message(WorkRef::Check(c), "check_finished")
        .await;
    let Message::CheckFinished {
        versions,
        error,
        log,
        ..
    } = finished
    else {
        unreachable!()
    };
    assert_eq!(error, None);
    assert_eq!(
        versions,
        [
            serde_json::json!({"ref": "v2"}),
            serde_json::json!({"ref": "after-v1"})
        ]
    );
    // The check's output, as it printed it.
    assert_eq!(log, "[{\"ref\":\"v2\"},{\"ref\":\"after-v1\"}]\n");
    let messages = server.about(WorkRef::Check(c));
    assert_eq!(
        messages.iter().map(Message::type_name).collect::<Vec<_>>(),
        ["accepted", "check_finished"]
    );
    worker.drain().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_secret_that_cannot_be_looked_up_ends_the_build_errored() {
    let server = Server::start().await;
    let worker = RunningWorker::start(&server, "w-secret", 1, |_| {}).await;
    let hcl = r#"
variable "token" {
  type = string
  secret "env" { key = "PIKOCI_TEST_SURELY_UNSET_VARIABLE" }
}
job "deploy" {
  task "use" {
    run "exec" {
      path = "echo"
      args = [var.token]
    }
  }
}
"#;
    let b = build(1);
    server.send(&worker.id, assign(b, hcl, "deploy")).await;
    let finished = server
        .wait_for_message(WorkRef::Build(b), "build_finished")
        .await;
    let (outcome, error) = outcome_of(&finished).unwrap();
    assert_eq!(outcome, Outcome::Errored);
    let error = error.unwrap();
    assert!(
        error.starts_with("cannot look up the secrets job \"deploy\" uses:\n  token (secret \"env\", key \"PIKOCI_TEST_SURELY_UNSET_VARIABLE\"): "),
        "{error}"
    );
    let messages = server.about(WorkRef::Build(b));
    assert_eq!(
        messages.iter().map(Message::type_name).collect::<Vec<_>>(),
        ["accepted", "build_finished"]
    );
    worker.drain().await;
}

/// A job whose task writes what it got for two store entries to `dir/seen` and prints them.
fn store_job(dir: &Path) -> String {
    let dir = dir.display();
    format!(
        r#"
variable "token" {{
  type = string
  secret "pikoci" {{ key = "TOKEN" }}
}}
variable "region" {{
  type = string
  secret "pikoci" {{ key = "REGION" }}
}}
job "deploy" {{
  task "use" {{
    run "shell" {{
      cmd = "printf '%s %s' '${{var.token}}' '${{var.region}}' > {dir}/seen; echo token=${{var.token}} region=${{var.region}}"
    }}
  }}
}}
"#
    )
}

fn store_values() -> StoreValues {
    let mut values = StoreValues::new();
    values.insert("TOKEN", Some(SecretValue::secret("sealed-token-42")));
    values.insert("REGION", Some(SecretValue::plain("eu-west-1")));
    values
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_values_sealed_to_the_worker_reach_its_steps_masked() {
    let server = Server::start().await;
    let worker = RunningWorker::start(&server, "w-sealed", 1, |_| {}).await;
    let key = server.sealing_key("w-sealed");
    let dir = tempfile::tempdir().unwrap();
    let b = build(1);
    let message = with_store_values(
        assign(b, &store_job(dir.path()), "deploy"),
        &key,
        &store_values(),
        WorkRef::Build(b),
    );
    server.send(&worker.id, message).await;
    let finished = server
        .wait_for_message(WorkRef::Build(b), "build_finished")
        .await;
    assert_eq!(outcome_of(&finished), Some((Outcome::Succeeded, None)));
    // The step got the values; its output shows the secret masked, the plain entry as is.
    let seen = std::fs::read_to_string(dir.path().join("seen")).unwrap();
    assert_eq!(seen, "sealed-token-42 eu-west-1");
    let log: String = server
        .about(WorkRef::Build(b))
        .iter()
        .filter_map(|m| match m {
            Message::Log { text, .. } => Some(text.as_str()),
            _ => None,
        })
        .collect();
    assert_eq!(log, "token=*** region=eu-west-1\n");
    worker.drain().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_values_that_do_not_open_end_the_build_errored() {
    let server = Server::start().await;
    let worker = RunningWorker::start(&server, "w-sealed", 1, |_| {}).await;
    let dir = tempfile::tempdir().unwrap();
    let hcl = store_job(dir.path());
    // Sealed to another key (the worker restarted), and sealed for another attempt.
    let other = WorkerKey::generate().public_text();
    let key = server.sealing_key("w-sealed");
    let mut other_attempt = build(2);
    other_attempt.attempt = 2;
    let cases = [
        (build(1), other.as_str(), WorkRef::Build(build(1))),
        (build(2), key.as_str(), WorkRef::Build(other_attempt)),
    ];
    for (b, public_key, sealed_for) in cases {
        let message = with_store_values(
            assign(b, &hcl, "deploy"),
            public_key,
            &store_values(),
            sealed_for,
        );
        server.send(&worker.id, message).await;
        let finished = server
            .wait_for_message(WorkRef::Build(b), "build_finished")
            .await;
        let (outcome, error) = outcome_of(&finished).unwrap();
        assert_eq!(outcome, Outcome::Errored);
        let error = error.unwrap();
        assert!(
            error.starts_with("cannot open the store values the server sealed to this worker"),
            "{error}"
        );
        assert!(error.ends_with("retry the build"), "{error}");
    }
    assert!(!dir.path().join("seen").exists());
    worker.drain().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_newer_and_malformed_messages_are_acked_and_ignored() {
    let server = Server::start().await;
    // No lease replies: the only messages to the worker are the ones below.
    server.ignore_heartbeats();
    let worker = RunningWorker::start(&server, "w-robust", 1, |_| {}).await;
    server
        .send_raw(
            &worker.id,
            br#"{"v":1,"type":"teleport","msg_id":"m","sender":"s","boot_id":"b","sent_at_ms":0}"#,
        )
        .await;
    server
        .send_raw(
            &worker.id,
            br#"{"v":2,"type":"assign","sender":"s","whatever":true}"#,
        )
        .await;
    server.send_raw(&worker.id, b"not json at all").await;
    server
        .send_raw(
            &worker.id,
            br#"{"v":1,"type":"assign","msg_id":"m","sender":"s","boot_id":"b","sent_at_ms":0}"#,
        )
        .await;
    let hcl =
        "job \"ok\" {\n  task \"t\" {\n    run \"exec\" {\n      path = \"true\"\n    }\n  }\n}\n";
    let b = build(1);
    server.send(&worker.id, assign(b, hcl, "ok")).await;
    let finished = server
        .wait_for_message(WorkRef::Build(b), "build_finished")
        .await;
    assert_eq!(outcome_of(&finished), Some((Outcome::Succeeded, None)));
    let id = worker.id.clone();
    worker.drain().await;
    // Everything was acked: a new consumer of the worker's group gets nothing back.
    let mut inbox = server
        .broker
        .subscribe(&topics::worker(&id), &topics::worker_group(&id))
        .await
        .unwrap();
    let left = inbox.next().now_or_never();
    assert!(
        left.is_none(),
        "a message was not acked: {:?}",
        left.map(|d| d.map(|d| String::from_utf8_lossy(d.unwrap().payload()).into_owned()))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_not_signed_with_the_workers_token_are_dropped() {
    let server = Server::start().await;
    let worker = RunningWorker::start(&server, "w-signed", 1, |_| {}).await;
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("ran");
    let hcl = format!(
        "job \"j\" {{\n  task \"t\" {{\n    run \"exec\" {{\n      path = \"touch\"\n      args = [\"{}\"]\n    }}\n  }}\n}}\n",
        marker.display()
    );
    // Unsigned, another team's key, a stale global key: none of them runs anything.
    {
        let topic = topics::worker(&worker.id);
        let envelope = pikoci_core::protocol::Envelope {
            v: pikoci_core::protocol::VERSION,
            msg_id: "m-unsigned".to_owned(),
            sender: "server-x".to_owned(),
            boot_id: "b".to_owned(),
            sent_at_ms: 0,
            message: assign(build(1), &hcl, "j"),
        };
        server
            .broker
            .publish(&topic, envelope.encode().unwrap())
            .await
            .unwrap();
    }
    let other_team = MacKey::new(KeyScope::Team("other".into()), [7; 32]);
    server
        .send_signed_by(&other_team, &worker.id, assign(build(2), &hcl, "j"))
        .await;
    let stale = MacKey::new(KeyScope::Global, [8; 32]);
    server
        .send_signed_by(&stale, &worker.id, assign(build(3), &hcl, "j"))
        .await;
    // The real one, sent last, runs; the others never did.
    let ok = build(4);
    server.send(&worker.id, assign(ok, &hcl, "j")).await;
    let finished = server
        .wait_for_message(WorkRef::Build(ok), "build_finished")
        .await;
    assert_eq!(outcome_of(&finished), Some((Outcome::Succeeded, None)));
    for forged in [build(1), build(2), build(3)] {
        assert!(
            server.about(WorkRef::Build(forged)).is_empty(),
            "the worker answered a forged assignment of {forged:?}"
        );
    }
    worker.drain().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopping_now_aborts_the_work_and_returns() {
    let server = Server::start().await;
    let worker = RunningWorker::start(&server, "w-now", 1, |_| {}).await;
    let dir = tempfile::tempdir().unwrap();
    let b = build(1);
    server
        .send(&worker.id, assign(b, &waiting_job(dir.path()), "wait"))
        .await;
    let pid = wait_for_pid(&dir.path().join("pid")).await;
    worker.stop.now.cancel();
    worker.finish().await;
    assert!(!running(pid));
    assert!(
        !dir.path().join("cancel-hook").exists(),
        "aborted, not cancelled"
    );
    assert!(
        server
            .about(WorkRef::Build(b))
            .iter()
            .all(|m| m.type_name() != "build_finished")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn checks_take_no_build_slot_and_at_most_its_check_slots_run_at_once() {
    let server = Server::start().await;
    let worker =
        RunningWorker::start(&server, "w-checks", 1, |config| config.check_slots = 3).await;
    // Its heartbeats tell the servers how many checks it takes.
    let announced: Vec<Option<u32>> = server.heartbeats().iter().map(|h| h.check_slots).collect();
    assert!(!announced.is_empty() && announced.iter().all(|slots| *slots == Some(3)));
    let dir = tempfile::tempdir().unwrap();
    let b = build(1);
    server
        .send(&worker.id, assign(b, &waiting_job(dir.path()), "wait"))
        .await;
    wait_for_pid(&dir.path().join("pid")).await;
    let hcl = format!(
        "resource_type \"repo\" {{\n  check \"shell\" {{\n    cmd = \"while [ ! -f {}/release ]; do sleep 0.02; done; echo '[]'\"\n  }}\n}}\nresource \"repo\" \"app\" {{}}\n",
        dir.path().display()
    );
    for resource in 1..=4 {
        server
            .send(
                &worker.id,
                assign_check(check(resource), &hcl, "repo.app", None),
            )
            .await;
    }
    for resource in 1..=3 {
        server
            .wait_for_message(WorkRef::Check(check(resource)), "accepted")
            .await;
    }
    let rejected = server
        .wait_for_message(WorkRef::Check(check(4)), "rejected")
        .await;
    assert_eq!(
        rejected,
        Message::Rejected {
            work: WorkRef::Check(check(4)),
            reason: "too many checks running (3 of 3)".to_owned()
        }
    );
    std::fs::write(dir.path().join("release"), "").unwrap();
    for resource in 1..=3 {
        let finished = server
            .wait_for_message(WorkRef::Check(check(resource)), "check_finished")
            .await;
        assert!(
            matches!(&finished, Message::CheckFinished { error: None, versions, .. } if versions.is_empty()),
            "{finished:?}"
        );
    }
    worker.drain().await;
}
