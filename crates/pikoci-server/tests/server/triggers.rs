//! Builds made by new versions, `passed`, approvals and `interruptible`.

use std::collections::BTreeMap;

use pikoci_core::ErrorKind;
use pikoci_core::protocol::{Message, Outcome};
use pikoci_core::store::BuildStatus;
use serde_json::json;

use crate::harness::{Harness, SRC};

const FLOW: &str = r#"
job "build" {
  get "src" "app" { trigger = true }
}
job "manual" {
  get "src" "app" {}
}
job "deploy" {
  get "src" "app" {
    trigger = true
    passed  = ["build"]
  }
}
"#;

#[tokio::test(start_paused = true)]
async fn a_checks_new_versions_trigger_exactly_one_build_of_each_triggered_job() {
    let h = Harness::start(&format!("{SRC}{FLOW}")).await;
    let mut w = h.worker("w1").await;
    w.check_versions = vec![json!({"ref": "a"}), json!({"ref": "b"})];
    w.start_heartbeats();
    let assign = w.expect_assign().await;
    assert_eq!(assign.snapshot.job, "build");
    assert_eq!(assign.snapshot.versions["src.app"], json!({"ref": "b"}));
    let builds = h.builds("build").await;
    assert_eq!(
        builds.len(),
        1,
        "one build for the newest of the new versions"
    );
    assert!(h.builds("manual").await.is_empty());
    assert!(
        h.builds("deploy").await.is_empty(),
        "deploy waits for build to pass"
    );
    let app = h.resource("src.app").await;
    assert!(app.last_check.is_some_and(|c| c.error.is_none()));
    // The build passes: deploy gets the version that went through it.
    w.accept(assign.build).await;
    w.send(Message::BuildFinished {
        build: assign.build,
        outcome: Outcome::Succeeded,
        error: None,
        at_ms: 0,
        log_chunks: None,
    })
    .await;
    let assign = w.expect_assign().await;
    assert_eq!(assign.snapshot.job, "deploy");
    assert_eq!(assign.snapshot.versions["src.app"], json!({"ref": "b"}));
    // Another evaluation (the periodic one) does not build the same version again, nor does
    // the catch-up of triggers.
    tokio::time::sleep(std::time::Duration::from_secs(45)).await;
    assert_eq!(h.builds("deploy").await.len(), 1);
    assert_eq!(h.builds("build").await.len(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_version_stored_without_its_builds_is_built_once_later() {
    let h = Harness::start(&format!("{SRC}{FLOW}")).await;
    // Stored the way a check stores it, without the builds: a server that failed in between.
    let version = h.add_version("src.app", json!({"ref": "lost"})).await;
    assert!(h.builds("build").await.is_empty());
    tokio::time::sleep(std::time::Duration::from_secs(45)).await;
    let builds = h.builds("build").await;
    assert_eq!(builds.len(), 1, "{builds:#?}");
    assert_eq!(
        builds[0].trigger.map(|t| t.version_id),
        Some(version.id),
        "built with the version that was missed"
    );
    assert!(h.builds("manual").await.is_empty());
    assert!(h.builds("deploy").await.is_empty());
    tokio::time::sleep(std::time::Duration::from_secs(45)).await;
    assert_eq!(h.builds("build").await.len(), 1, "and only once");
}

#[tokio::test(start_paused = true)]
async fn a_job_with_an_approval_waits_for_enough_distinct_approvers() {
    let h = Harness::start(&format!(
        r#"{SRC}
job "release" {{
  approve "production" {{ approvals = 2 }}
  get "src" "app" {{}}
}}
"#
    ))
    .await;
    h.add_version("src.app", json!({"ref": "a"})).await;
    let job = h.job("release").await;
    let build = h
        .server
        .trigger_job(job.id, BTreeMap::new())
        .await
        .expect("build");
    assert_eq!(build.status, BuildStatus::WaitingForApproval);
    let once = h
        .server
        .approve_build(build.id, "alice")
        .await
        .expect("vote");
    assert_eq!(once.status, BuildStatus::WaitingForApproval);
    let again = h
        .server
        .approve_build(build.id, "alice")
        .await
        .expect("vote");
    assert_eq!(
        again.status,
        BuildStatus::WaitingForApproval,
        "one vote per person"
    );
    let approved = h.server.approve_build(build.id, "bob").await.expect("vote");
    assert_eq!(approved.status, BuildStatus::Pending);
    let err = h
        .server
        .reject_build(build.id, "carol", "too late")
        .await
        .expect_err("not waiting");
    assert_eq!(err.kind, ErrorKind::Conflict);
    // Another build is rejected by one person.
    let other = h
        .server
        .trigger_job(job.id, BTreeMap::new())
        .await
        .expect("build");
    let rejected = h
        .server
        .reject_build(other.id, "carol", "not today")
        .await
        .expect("reject");
    assert_eq!(rejected.status, BuildStatus::Cancelled);
    assert_eq!(
        rejected.error.as_deref(),
        Some("rejected by carol: not today")
    );
}

#[tokio::test(start_paused = true)]
async fn a_new_build_of_an_interruptible_job_cancels_the_older_ones() {
    let h = Harness::start(&format!(
        r#"{SRC}
job "preview" {{
  interruptible = true
  get "src" "app" {{}}
}}
"#
    ))
    .await;
    h.add_version("src.app", json!({"ref": "a"})).await;
    let job = h.job("preview").await;
    let first = h
        .server
        .trigger_job(job.id, BTreeMap::new())
        .await
        .expect("first");
    let second = h
        .server
        .trigger_job(job.id, BTreeMap::new())
        .await
        .expect("second");
    let first = h.wait_status(first.id, BuildStatus::Cancelled).await;
    assert!(
        first
            .error
            .as_deref()
            .unwrap_or_default()
            .contains("interrupted")
    );
    assert_eq!(
        h.store.build(second.id).await.expect("second").status,
        BuildStatus::Pending
    );
}

#[tokio::test(start_paused = true)]
async fn a_pinned_version_is_what_builds_get() {
    let h = Harness::start(&format!("{SRC}{FLOW}")).await;
    let old = h.add_version("src.app", json!({"ref": "old"})).await;
    h.add_version("src.app", json!({"ref": "new"})).await;
    let app = h.resource("src.app").await;
    h.store
        .pin_version(app.id, Some(old.id), "")
        .await
        .expect("pin");
    let mut w = h.worker("w1").await;
    w.start_heartbeats();
    let job = h.job("manual").await;
    h.server
        .trigger_job(job.id, BTreeMap::new())
        .await
        .expect("build");
    let assign = w.expect_assign().await;
    assert_eq!(assign.snapshot.versions["src.app"], json!({"ref": "old"}));
}

#[tokio::test(start_paused = true)]
async fn a_webhook_checks_its_resource_now_and_unknown_tokens_all_look_alike() {
    let h = Harness::start(&format!("{SRC}{FLOW}")).await;
    let mut w = h.worker("w1").await;
    w.start_heartbeats();
    // The first check runs at once (nothing found); the next one is an hour away.
    loop {
        if let Message::AssignCheck(assign) = w.recv().await {
            w.send(Message::CheckFinished {
                check: assign.check,
                versions: Vec::new(),
                error: None,
                log: String::new(),
                at_ms: 0,
            })
            .await;
            break;
        }
    }
    let app = h.resource("src.app").await;
    let first = h.server.webhook("not-a-token").await.expect_err("unknown");
    let second = h
        .server
        .webhook(&"0".repeat(48))
        .await
        .expect_err("unknown");
    assert_eq!(first.kind, ErrorKind::NotFound);
    assert_eq!(first.message, second.message);
    assert!(!first.message.contains("not-a-token"));
    let found = h.server.webhook(&app.webhook_token).await.expect("webhook");
    assert_eq!(found.id, app.id);
    w.check_versions = vec![json!({"ref": "hooked"})];
    let assign = w.expect_assign().await;
    assert_eq!(
        assign.snapshot.versions["src.app"],
        json!({"ref": "hooked"})
    );
}

#[tokio::test(start_paused = true)]
async fn every_overdue_approval_times_out_however_many_wait() {
    let h = Harness::start(&format!(
        r#"{SRC}
job "release" {{
  approve "production" {{ timeout = "1m" }}
  get "src" "app" {{}}
}}
"#
    ))
    .await;
    h.add_version("src.app", json!({"ref": "a"})).await;
    let job = h.job("release").await;
    // More than one page of waiting builds: the oldest are on the last page.
    let mut waiting = Vec::new();
    for _ in 0..510 {
        let build = h
            .server
            .trigger_job(job.id, BTreeMap::new())
            .await
            .expect("build");
        assert_eq!(build.status, BuildStatus::WaitingForApproval);
        waiting.push(build.id);
    }
    tokio::time::sleep(std::time::Duration::from_secs(90)).await;
    for id in [waiting[0], waiting[509]] {
        let build = h.wait_status(id, BuildStatus::Cancelled).await;
        assert!(
            build
                .error
                .as_deref()
                .is_some_and(|e| e.contains("nobody approved it within 1m")),
            "{build:?}"
        );
    }
    assert!(
        h.builds("release")
            .await
            .iter()
            .all(|b| b.status == BuildStatus::Cancelled)
    );
}
