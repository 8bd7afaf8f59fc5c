//! Values of the secret store `pikoci` travel to workers sealed to the key in their heartbeat.

use pikoci_core::protocol::{Message, WorkRef};
use pikoci_core::secrets::{
    Scope, Secret, SecretKind, SecretRequest, SecretSource, StoredEntry, StoredValue,
};
use pikoci_core::store::BuildStatus;
use pikoci_secrets::sealed::WorkerKey;
use serde_json::json;

use crate::harness::{Harness, SRC};

/// A job reading two store entries (one of them missing) and a variable it does not use.
const DEPLOY: &str = r#"
variable "token" {
  type = string
  secret "pikoci" { key = "TOKEN" }
}
variable "region" {
  type = string
  secret "pikoci" { key = "REGION" }
}
variable "gone" {
  type = string
  secret "pikoci" { key = "GONE" }
}
variable "unused" {
  type = string
  secret "pikoci" { key = "UNUSED" }
}
job "deploy" {
  get "src" "app" {}
  task "push" {
    run "exec" {
      path = "echo"
      args = [var.token, var.region, var.gone]
    }
  }
}
"#;

async fn set(h: &Harness, scope: &Scope, name: &str, kind: SecretKind, value: &str) {
    h.server
        .secrets()
        .set(scope, name, kind, &Secret::new(value))
        .await
        .expect("set");
}

fn request(keys: &[&str]) -> SecretRequest {
    SecretRequest {
        secret_type: "pikoci".into(),
        definition: None,
        path: String::new(),
        keys: keys.iter().map(|k| (*k).to_owned()).collect(),
    }
}

/// Triggers job `deploy` with a worker `worker` (announcing its key or not) and returns the
/// error of the build, which must end errored.
async fn deploy_error(h: &Harness, worker: &str, announces_key: bool) -> String {
    let mut w = h.worker(worker).await;
    w.announces_key = announces_key;
    w.start_heartbeats();
    let job = h.job("deploy").await;
    let build = h
        .server
        .trigger_job(job.id, Default::default())
        .await
        .expect("triggered");
    let errored = h.wait_status(build.id, BuildStatus::Errored).await;
    errored.error.expect("an error")
}

#[tokio::test(start_paused = true)]
async fn an_assignment_carries_the_entries_it_reads_sealed_to_the_worker() {
    let h = Harness::start(&format!("{SRC}{DEPLOY}")).await;
    h.add_version("src.app", json!({"ref": "abc"})).await;
    let team = Scope::team("main");
    set(&h, &team, "TOKEN", SecretKind::Secret, "team-token-value").await;
    set(
        &h,
        &Scope::pipeline("main", "ci"),
        "TOKEN",
        SecretKind::Secret,
        "pipeline-token-42",
    )
    .await;
    set(&h, &team, "REGION", SecretKind::Plain, "eu-west-1").await;
    set(&h, &team, "UNUSED", SecretKind::Secret, "never-sent-value").await;
    let mut w = h.worker("w1").await;
    w.start_heartbeats();
    let job = h.job("deploy").await;
    let build = h
        .server
        .trigger_job(job.id, Default::default())
        .await
        .expect("triggered");
    let assign = w.expect_assign().await;
    assert_eq!(assign.build.build_id, build.id);

    // What went through the broker holds no value in clear.
    let wire = serde_json::to_string(&Message::Assign(Box::new(assign.clone()))).unwrap();
    for value in [
        "pipeline-token-42",
        "team-token-value",
        "eu-west-1",
        "never-sent-value",
    ] {
        assert!(!wire.contains(value), "{value} in {wire}");
    }
    let sealed = assign.store_values.as_ref().expect("store values");
    assert!(!format!("{assign:?}").contains("pipeline-token-42"));

    // The worker's key opens it, for this build attempt only; the pipeline's entry wins.
    let work = WorkRef::Build(assign.build);
    let values = w.key.open(sealed, work).expect("opens");
    let found = values
        .fetch(&request(&["GONE", "REGION", "TOKEN"]))
        .await
        .unwrap();
    assert_eq!(found["TOKEN"].value.expose(), "pipeline-token-42");
    assert_eq!(found["TOKEN"].kind, SecretKind::Secret);
    assert_eq!(found["REGION"].value.expose(), "eu-west-1");
    assert_eq!(found["REGION"].kind, SecretKind::Plain);
    // Looked up and missing: left out (the worker's resolver says the key was not found).
    assert!(!found.contains_key("GONE"));
    // Entries the job does not read were not looked up, so not sent.
    assert!(values.get("UNUSED").is_none());
    assert!(values.fetch(&request(&["UNUSED"])).await.is_err());
    assert!(WorkerKey::generate().open(sealed, work).is_err());
    let mut later = assign.build;
    later.attempt += 1;
    assert!(w.key.open(sealed, WorkRef::Build(later)).is_err());
}

#[tokio::test(start_paused = true)]
async fn a_job_reading_no_entry_carries_nothing_sealed() {
    let h = Harness::start(&format!(
        "{SRC}job \"plain\" {{\n  get \"src\" \"app\" {{}}\n}}\n"
    ))
    .await;
    h.add_version("src.app", json!({"ref": "abc"})).await;
    let mut w = h.worker("w1").await;
    // Even a worker without a key runs it.
    w.announces_key = false;
    w.start_heartbeats();
    let job = h.job("plain").await;
    h.server
        .trigger_job(job.id, Default::default())
        .await
        .expect("triggered");
    let assign = w.expect_assign().await;
    assert!(assign.store_values.is_none());
}

#[tokio::test(start_paused = true)]
async fn a_worker_without_a_key_gets_no_store_values_and_the_build_says_why() {
    let h = Harness::start(&format!("{SRC}{DEPLOY}")).await;
    h.add_version("src.app", json!({"ref": "abc"})).await;
    set(
        &h,
        &Scope::team("main"),
        "TOKEN",
        SecretKind::Secret,
        "team-token-value",
    )
    .await;
    let error = deploy_error(&h, "old-worker", false).await;
    assert_eq!(
        error,
        "the build cannot be sent to worker \"old-worker\": it reads entries of the secret \
         store \"pikoci\" (GONE, REGION, TOKEN), and the worker (version test) announced no \
         key to seal them to: upgrade the worker to a PikoCI release that seals store values, \
         then retry"
    );
}

#[tokio::test(start_paused = true)]
async fn an_entry_that_cannot_be_read_errors_the_build_without_a_value() {
    let h = Harness::start(&format!("{SRC}{DEPLOY}")).await;
    h.add_version("src.app", json!({"ref": "abc"})).await;
    // A value encrypted with another key (or altered in the database).
    h.secret_table
        .put(StoredEntry {
            scope: Scope::team("main"),
            name: "TOKEN".into(),
            value: StoredValue::Sealed(vec![1; 40]),
        })
        .await
        .expect("planted");
    let error = deploy_error(&h, "w1", true).await;
    assert!(
        error.starts_with(
            "the build cannot be sent to worker \"w1\": cannot read the entry \"TOKEN\" of the \
             secret store \"pikoci\": cannot decrypt a stored secret: PIKOCI_SECRET_KEY is not \
             the key it was stored with"
        ),
        "{error}"
    );
}

#[tokio::test(start_paused = true)]
async fn a_check_carries_the_entries_its_resource_reads() {
    let hcl = r#"
variable "repo_token" {
  type = string
  secret "pikoci" { key = "REPO_TOKEN" }
}
resource_type "src" {
  check "exec" { path = "true" }
}
resource "src" "app" {
  check_interval = "@every 1h"
  params { token = var.repo_token }
}
"#;
    let h = Harness::start(hcl).await;
    set(
        &h,
        &Scope::team("main"),
        "REPO_TOKEN",
        SecretKind::Secret,
        "repo-token-7",
    )
    .await;
    let mut w = h.worker("w1").await;
    w.start_heartbeats();
    let assign = loop {
        if let Message::AssignCheck(assign) = w.recv().await {
            break assign;
        }
    };
    let wire = serde_json::to_string(&Message::AssignCheck(assign.clone())).unwrap();
    assert!(!wire.contains("repo-token-7"), "{wire}");
    let values = w
        .key
        .open(
            assign.store_values.as_ref().expect("sealed"),
            WorkRef::Check(assign.check),
        )
        .expect("opens");
    assert_eq!(
        values.get("REPO_TOKEN").unwrap().value.expose(),
        "repo-token-7"
    );
}
