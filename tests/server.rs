//! `pikoci server` end to end, as a user runs it: the real binary with its embedded worker, in
//! memory, a git repository served on loopback, the HTTP API.
//!
//! The same scenario over real databases and brokers with standalone workers is the `server`
//! integration suite (`cargo xtask it server`).

mod support;

use serde_json::json;
use support::git::GitServer;
use support::server::ServerProcess;

/// The pipeline of the scenario: `test` runs on every commit, `deploy` after it (`passed`) and
/// by hand with an input.
fn pipeline(url: &str) -> String {
    format!(
        r#"
resource "git" "app" {{
  url            = "{url}"
  branch         = "main"
  check_interval = "1h"
}}

job "test" {{
  get "git" "app" {{ trigger = true }}
  task "unit" {{
    run "shell" {{
      cmd = "cat app/README; i=1; while [ $i -le 300 ]; do echo line $i; i=$((i+1)); done"
    }}
  }}
}}

job "deploy" {{
  input "target" {{
    type    = "string"
    default = "staging"
  }}
  get "git" "app" {{
    trigger = true
    passed  = ["test"]
  }}
  task "ship" {{
    run "shell" {{ cmd = "echo deploying $(cat app/README) to $INPUT_TARGET" }}
  }}
}}
"#
    )
}

const JOBS: &str = "/teams/main/pipelines/demo/jobs";

/// The scenario every deployment shape runs.
async fn scenario(server: &ServerProcess, git: &GitServer) {
    // The first check runs at start: build 1 of `test`, then `deploy` because it passed.
    let first = server.wait_finished(&format!("{JOBS}/test/builds/1")).await;
    assert_eq!(first["status"], "succeeded", "{first:#}");
    let log = server.text(&format!("{JOBS}/test/builds/1/logs")).await;
    assert!(log.contains("version 1"), "{log}");
    let lines: Vec<&str> = log.lines().filter(|l| l.starts_with("line ")).collect();
    let expected: Vec<String> = (1..=300).map(|i| format!("line {i}")).collect();
    assert_eq!(lines, expected, "every line, once, in order");
    let deployed = server.wait_finished(&format!("{JOBS}/deploy/builds/1")).await;
    assert_eq!(deployed["status"], "succeeded", "{deployed:#}");
    let log = server.text(&format!("{JOBS}/deploy/builds/1/logs")).await;
    assert!(log.contains("deploying version 1 to staging"), "{log}");

    // A commit and the webhook: build 2 of `test`, then of `deploy`.
    git.commit("README", "version 2\n");
    let (status, resource) = server
        .get("/teams/main/pipelines/demo/resources/git.app")
        .await;
    assert_eq!(status, 200, "{resource:#}");
    let token = resource["data"]["webhook_token"]
        .as_str()
        .expect("the resource shows its webhook token")
        .to_owned();
    let (status, body) = server.post(&format!("/webhooks/{token}"), json!({})).await;
    assert_eq!(status, 200, "{body:#}");
    let second = server.wait_finished(&format!("{JOBS}/test/builds/2")).await;
    assert_eq!(second["status"], "succeeded", "{second:#}");
    let log = server.text(&format!("{JOBS}/test/builds/2/logs")).await;
    assert!(log.contains("version 2"), "{log}");
    let deployed = server.wait_finished(&format!("{JOBS}/deploy/builds/2")).await;
    assert_eq!(deployed["status"], "succeeded", "{deployed:#}");

    // A manual trigger with an input.
    let (status, body) = server
        .post(
            &format!("{JOBS}/deploy/trigger"),
            json!({"input_values": {"target": "production"}}),
        )
        .await;
    assert_eq!(status, 200, "{body:#}");
    let number = body["data"]["build_number"].as_str().unwrap().to_owned();
    let manual = server
        .wait_finished(&format!("{JOBS}/deploy/builds/{number}"))
        .await;
    assert_eq!(manual["status"], "succeeded", "{manual:#}");
    let log = server
        .text(&format!("{JOBS}/deploy/builds/{number}/logs"))
        .await;
    assert!(log.contains("deploying version 2 to production"), "{log}");

    // A retry of build 1 uses build 1's version, not the newest.
    let (status, body) = server
        .post(&format!("{JOBS}/test/builds/1/retry"), json!({}))
        .await;
    assert_eq!(status, 200, "{body:#}");
    assert_eq!(body["data"]["build_number"], "1.1");
    let retry = server.wait_finished(&format!("{JOBS}/test/builds/1.1")).await;
    assert_eq!(retry["status"], "succeeded", "{retry:#}");
    let log = server.text(&format!("{JOBS}/test/builds/1.1/logs")).await;
    assert!(log.contains("version 1"), "{log}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_binary_in_memory_runs_the_pipeline() {
    let dir = tempfile::tempdir().unwrap();
    let git = GitServer::start(dir.path());
    let file = support::write(dir.path(), "demo.hcl", &pipeline(&git.url));
    let work = dir.path().join("work");
    let server = ServerProcess::start(&[
        "--db-system",
        "mem",
        "--pubsub-system",
        "mem",
        "--run-worker",
        "--pipeline-config",
        &file,
        "--work-dir",
        work.to_str().unwrap(),
    ]);
    scenario(&server, &git).await;
    let log = server.stop();
    assert!(log.contains("stopped"), "{log}");
    // Every build's work directory is gone.
    let left: Vec<_> = std::fs::read_dir(&work)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .map(|e| e.file_name())
                .filter(|n| n != "cache")
                .collect()
        })
        .unwrap_or_default();
    assert!(left.is_empty(), "{left:?}");
}

#[test]
fn an_invalid_pipeline_stops_the_server_with_its_diagnostics() {
    let dir = tempfile::tempdir().unwrap();
    let file = support::write(dir.path(), "bad.hcl", "job \"a\" {\n  tsk \"x\" {}\n}\n");
    let output = support::pikoci()
        .args(["server", "--port", "0", "--pipeline-config", &file])
        .output()
        .unwrap();
    let stderr = support::text(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("bad.hcl:2:3"), "{stderr}");
    assert!(stderr.contains("the server did not start"), "{stderr}");
}

#[test]
fn settings_come_from_flags_then_environment_then_the_config_file() {
    let dir = tempfile::tempdir().unwrap();
    let config = support::write(dir.path(), "server.toml", "db-system = \"nope\"\nport = 0\n");
    let bad = support::write(dir.path(), "bad.hcl", "job \"a\" {\n  tsk \"x\" {}\n}\n");
    // The config file's value is used, and refused with the valid ones listed...
    let output = support::pikoci()
        .args(["server", "-c", &config])
        .output()
        .unwrap();
    let stderr = support::text(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("'nope'"), "{stderr}");
    assert!(stderr.contains("postgres"), "{stderr}");
    // ...unless the environment or a flag says otherwise: then the database opens and the
    // server goes on to the pipeline (which stops it, proving the file's value lost).
    let by_env = support::pikoci()
        .args(["server", "-c", &config, "--pipeline-config", &bad])
        .env("PIKOCI_DB_SYSTEM", "mem")
        .output()
        .unwrap();
    let by_flag = support::pikoci()
        .args(["server", "-c", &config, "--db-system", "mem", "--pipeline-config", &bad])
        .env("PIKOCI_DB_SYSTEM", "nope")
        .output()
        .unwrap();
    for output in [by_env, by_flag] {
        let stderr = support::text(&output.stderr);
        assert!(stderr.contains("the server did not start"), "{stderr}");
    }
    // An unknown setting is an error that lists the known ones.
    let config = support::write(dir.path(), "typo.toml", "db-sytem = \"mem\"\n");
    let output = support::pikoci()
        .args(["server", "-c", &config])
        .output()
        .unwrap();
    let stderr = support::text(&output.stderr);
    assert_eq!(output.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("unknown setting \"db-sytem\""), "{stderr}");
    assert!(stderr.contains("did you mean \"db-system\""), "{stderr}");
}
