//! Manual builds from trigger to the end, and what users ask of builds.

use std::collections::BTreeMap;

use pikoci_core::ErrorKind;
use pikoci_core::protocol::{Message, Outcome};
use pikoci_core::store::{BuildStatus, StepStatus, VersionUse};
use serde_json::json;

use crate::harness::{FakeWorker, Harness, SRC};

pub(crate) const UNIT: &str = r#"
job "unit" {
  input "flavour" {
    type    = "string"
    options = ["plain", "salted"]
    default = "plain"
  }
  get "src" "app" {}
  task "test" {
    run "exec" { path = "true" }
  }
}
"#;

#[tokio::test(start_paused = true)]
async fn a_manual_build_runs_on_a_worker_and_stores_steps_and_logs_in_order() {
    let h = Harness::start(&format!("{SRC}{UNIT}")).await;
    let version = h.add_version("src.app", json!({"ref": "abc"})).await;
    let mut w = h.worker("w1").await;
    w.start_heartbeats();
    let job = h.job("unit").await;
    let inputs = BTreeMap::from([("flavour".to_owned(), "salted".to_owned())]);
    let build = h
        .server
        .trigger_job(job.id, inputs)
        .await
        .expect("triggered");
    assert_eq!(build.status, BuildStatus::Pending);
    assert_eq!(build.number.to_string(), "1");

    let assign = w.expect_assign().await;
    assert_eq!(assign.build.build_id, build.id);
    assert_eq!(assign.build.attempt, 1);
    let snapshot = &assign.snapshot;
    assert_eq!(
        (
            snapshot.team.as_str(),
            snapshot.pipeline.as_str(),
            snapshot.job.as_str()
        ),
        ("main", "ci", "unit")
    );
    assert_eq!(snapshot.build_number, "1");
    assert_eq!(snapshot.model.jobs.len(), 1);
    assert_eq!(snapshot.versions["src.app"], json!({"ref": "abc"}));
    assert_eq!(snapshot.inputs["flavour"], "salted");

    w.accept(assign.build).await;
    h.wait_status(build.id, BuildStatus::Started).await;
    let b = assign.build;
    let mut events = FakeWorker::step_events(b, 0, "app", &["fetched abc"]);
    let mut test = FakeWorker::step_events(b, 1, "test", &["one", "two", "three"]);
    // As if `test` ran inside step 0 (an `in_parallel`): the server keeps the tree.
    if let Message::StepStarted { parent, .. } = &mut test[0] {
        *parent = Some(0);
    }
    events.extend(test);
    events.push(Message::VersionUsed {
        build: b,
        resource: "src.app".into(),
        version: json!({"ref": "abc"}),
    });
    events.push(Message::BuildFinished {
        build: b,
        outcome: Outcome::Succeeded,
        error: None,
        at_ms: 3_000,
        log_chunks: None,
    });
    w.send_all(events).await;
    let done = h.wait_status(build.id, BuildStatus::Succeeded).await;
    assert!(done.finished_at.is_some());

    let steps = h.store.build_steps(build.id).await.expect("steps");
    let summary: Vec<(u32, Option<u32>, &str, StepStatus)> = steps
        .iter()
        .map(|s| (s.step, s.parent, s.name.as_str(), s.status))
        .collect();
    assert_eq!(
        summary,
        [
            (0, None, "app", StepStatus::Succeeded),
            (1, Some(0), "test", StepStatus::Succeeded)
        ]
    );
    assert_eq!(h.log(build.id).await, "fetched abc\none\ntwo\nthree\n");
    let used = h.store.build_versions(build.id).await.expect("versions");
    assert!(
        used.iter()
            .all(|v| v.version_id == version.id && v.usage == VersionUse::Get)
    );
    assert!(!used.is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_manual_trigger_lists_every_problem() {
    let h = Harness::start(&format!("{SRC}{UNIT}")).await;
    let job = h.job("unit").await;
    let inputs = BTreeMap::from([
        ("flavour".to_owned(), "spicy".to_owned()),
        ("colour".to_owned(), "red".to_owned()),
    ]);
    let err = h
        .server
        .trigger_job(job.id, inputs)
        .await
        .expect_err("problems");
    assert_eq!(err.kind, ErrorKind::InvalidInput);
    for expected in [
        "unknown input \"colour\"",
        "\"spicy\" is not in options",
        "resource src.app has no version yet",
    ] {
        assert!(
            err.message.contains(expected),
            "{expected} missing from: {}",
            err.message
        );
    }
    assert!(h.builds("unit").await.is_empty());
    // Paused jobs take no manual build.
    h.store.set_job_paused(job.id, true).await.expect("pause");
    let err = h
        .server
        .trigger_job(job.id, BTreeMap::new())
        .await
        .expect_err("paused");
    assert_eq!(err.kind, ErrorKind::Conflict);
    assert!(err.message.contains("paused"), "{}", err.message);
}

#[tokio::test(start_paused = true)]
async fn a_retry_reuses_the_versions_of_the_original() {
    let h = Harness::start(&format!("{SRC}{UNIT}")).await;
    let first = h.add_version("src.app", json!({"ref": "old"})).await;
    let mut w = h.worker("w1").await;
    w.start_heartbeats();
    let job = h.job("unit").await;
    let build = h
        .server
        .trigger_job(job.id, BTreeMap::new())
        .await
        .expect("build");
    let assign = w.expect_assign().await;
    w.accept(assign.build).await;
    w.send(Message::BuildFinished {
        build: assign.build,
        outcome: Outcome::Failed,
        error: Some("test failed".into()),
        at_ms: 0,
        log_chunks: None,
    })
    .await;
    let failed = h.wait_status(build.id, BuildStatus::Failed).await;
    assert_eq!(failed.error.as_deref(), Some("test failed"));
    // A newer version appears; the retry still gets the original's.
    h.add_version("src.app", json!({"ref": "new"})).await;
    let retry = h.server.retry_build(build.id).await.expect("retry");
    assert_eq!(retry.number.to_string(), "1.1");
    let assign = w.expect_assign().await;
    assert_eq!(assign.build.build_id, retry.id);
    assert_eq!(assign.snapshot.versions["src.app"], first.version);
    assert_eq!(assign.snapshot.build_number, "1.1");
}

#[tokio::test(start_paused = true)]
async fn pending_builds_carry_the_reason_they_wait() {
    let h = Harness::start(&format!(
        r#"{SRC}
job "gpu" {{
  tags = ["gpu"]
  get "src" "app" {{}}
}}
job "one" {{
  concurrency = 1
  get "src" "app" {{}}
}}
"#
    ))
    .await;
    h.add_version("src.app", json!({"ref": "a"})).await;
    let gpu = h
        .server
        .trigger_job(h.job("gpu").await.id, BTreeMap::new())
        .await
        .expect("gpu");
    let one = h.job("one").await;
    let first = h
        .server
        .trigger_job(one.id, BTreeMap::new())
        .await
        .expect("first");
    let second = h
        .server
        .trigger_job(one.id, BTreeMap::new())
        .await
        .expect("second");
    // No worker at all yet.
    h.wait_for("a reason for the untagged build", || async {
        h.server.pending_reason(first.id).as_deref() == Some("no live worker for this team")
    })
    .await;
    let mut w = h.worker("w1").await;
    w.start_heartbeats();
    let assign = w.expect_assign().await;
    assert_eq!(assign.build.build_id, first.id);
    w.accept(assign.build).await;
    h.wait_for("reasons for the waiting builds", || async {
        h.server.pending_reason(second.id).as_deref()
            == Some("concurrency limit 1 reached (build 1 running)")
            && h.server.pending_reason(gpu.id).as_deref() == Some("no live worker with tags [gpu]")
    })
    .await;
    assert_eq!(h.server.pending_reason(first.id), None);
}
