//! `pikoci server` end to end, as a user runs it: the real binary with its embedded worker, in
//! memory, a git repository served on loopback, the HTTP API.
//!
//! The same scenario over real databases and brokers with standalone workers is the `server`
//! integration suite (`cargo xtask it server`).

mod support;

use support::git::GitServer;
use support::server::{ServerProcess, pipeline, scenario};

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
    let config = support::write(
        dir.path(),
        "server.toml",
        "db-system = \"nope\"\nport = 0\n",
    );
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
        .args([
            "server",
            "-c",
            &config,
            "--db-system",
            "mem",
            "--pipeline-config",
            &bad,
        ])
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
