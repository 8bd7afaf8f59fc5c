//! `pikoci server` with standalone `pikoci worker` processes over real databases and brokers,
//! the way a distributed installation runs: the scenario of `tests/server.rs` on SQLite over
//! NATS, on PostgreSQL over RabbitMQ and on MariaDB over Kafka.
//!
//! Run by `cargo xtask it server`, which provides the services and names them in
//! `PIKOCI_TEST_*` variables (a fresh PostgreSQL and MariaDB database per run).

mod support;

use support::git::GitServer;
use support::server::{ServerProcess, WorkerProcess, pipeline, scenario};

/// The value of a variable `cargo xtask it server` sets; fails naming it when missing.
fn service(variable: &str) -> String {
    std::env::var(variable).unwrap_or_else(|_| {
        panic!("{variable} is not set: run this suite with `cargo xtask it server`")
    })
}

/// Runs the scenario with the server on `db` (flags) and one standalone worker, both on the
/// broker `system` at `url`.
async fn distributed(db: &[&str], system: &str, url: &str) {
    let dir = tempfile::tempdir().unwrap();
    let git = GitServer::start(dir.path());
    let file = support::write(dir.path(), "demo.hcl", &pipeline(&git.url));
    let pubsub = ["--pubsub-system", system, "--pubsub-url", url];
    let mut args: Vec<&str> = db.to_vec();
    args.extend(pubsub);
    args.extend(["--run-worker=false", "--pipeline-config", &file]);
    let server = ServerProcess::start(&args);
    let work = dir.path().join("work");
    let mut worker_args: Vec<&str> = pubsub.to_vec();
    worker_args.extend(["--work-dir", work.to_str().unwrap()]);
    let worker = WorkerProcess::start(&worker_args);
    scenario(&server, &git).await;
    drop(worker);
    server.stop();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_over_nats() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("pikoci.db");
    let url = service("PIKOCI_TEST_NATS_URL");
    distributed(
        &["--db-system", "sqlite", "--db-name", db.to_str().unwrap()],
        "nats",
        &url,
    )
    .await;
    team_workers_get_their_teams_builds_only(&url).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_over_rabbitmq() {
    distributed(
        &["--db-url", &service("PIKOCI_TEST_POSTGRES_URL")],
        "rabbitmq",
        &service("PIKOCI_TEST_RABBITMQ_URL"),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mariadb_over_kafka() {
    distributed(
        &[
            "--db-url",
            &service("PIKOCI_TEST_MYSQL_URL"),
            "--db-system",
            "mysql",
        ],
        "kafka",
        &service("PIKOCI_TEST_KAFKA_URL"),
    )
    .await;
}

/// A pipeline whose one job prints where it runs.
const HELLO: &str = r#"
job "hello" {
  task "say" {
    run "exec" {
      path = "echo"
      args = ["hello from a worker"]
    }
  }
}
"#;

/// Sets pipeline `hello` in `team` and triggers its job; the build's path.
async fn trigger_hello(server: &ServerProcess, team: &str) -> String {
    let (status, body) = server
        .post(
            &format!("/teams/{team}/pipelines"),
            serde_json::json!({"name": "hello", "config": HELLO}),
        )
        .await;
    assert!(status == 200 || status == 201, "{status} {body:#}");
    let jobs = format!("/teams/{team}/pipelines/hello/jobs/hello");
    let (status, body) = server
        .post(&format!("{jobs}/trigger"), serde_json::json!({}))
        .await;
    assert!(status == 200 || status == 201, "{status} {body:#}");
    format!("{jobs}/builds/1")
}

/// Team-scoped workers on a real broker: a worker holding team `web`'s token runs `web`'s
/// builds and never `main`'s; a worker holding a token the server does not know never
/// registers; `main`'s build waits for a global worker. (Run after the scenario on NATS, not
/// beside it: two servers on one broker would share its messages.)
async fn team_workers_get_their_teams_builds_only(url: &str) {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("pikoci.db");
    let pubsub = ["--pubsub-system", "nats", "--pubsub-url", url];
    let mut args = vec!["--db-system", "sqlite", "--db-name", db.to_str().unwrap()];
    args.extend(pubsub);
    args.push("--run-worker=false");
    let server = ServerProcess::start(&args);
    let (status, body) = server
        .post("/teams", serde_json::json!({"name": "web"}))
        .await;
    assert_eq!(status, 201, "{body:#}");
    let (status, body) = server.get("/teams/web/worker-token").await;
    assert_eq!(status, 200, "{body:#}");
    let web_token = body["data"]["token"].as_str().expect("a token").to_owned();
    assert!(web_token.starts_with("pkw_web."), "{web_token}");

    let work = dir.path().join("work");
    let worker = |name: &str, token: &str| {
        let mut worker_args: Vec<&str> = pubsub.to_vec();
        worker_args.extend(["--name", name, "--worker-token", token]);
        worker_args.extend(["--work-dir", work.to_str().unwrap()]);
        WorkerProcess::start(&worker_args)
    };
    let forged = format!("pkw_web.{}", "ab".repeat(32));
    let _forger = worker("isolation-forger", &forged);
    let _web = worker("isolation-web", &web_token);

    let web_build = trigger_hello(&server, "web").await;
    let main_build = trigger_hello(&server, "main").await;
    let done = server.wait_finished(&web_build).await;
    assert_eq!(done["status"], "succeeded", "{done:#}");
    let log = server.text(&format!("{web_build}/logs")).await;
    assert!(log.contains("hello from a worker"), "{log}");
    // Main's build waits: the only registered worker serves team web.
    tokio::time::sleep(std::time::Duration::from_secs(3)).await;
    let (_, pending) = server.get(&main_build).await;
    assert_eq!(pending["data"]["status"], "pending", "{pending:#}");
    let (_, workers) = server.get("/workers").await;
    let names: Vec<&str> = workers["data"]
        .as_array()
        .expect("workers")
        .iter()
        .filter_map(|w| w["id"].as_str())
        .collect();
    assert!(names.contains(&"isolation-web"), "{workers:#}");
    assert!(!names.contains(&"isolation-forger"), "{workers:#}");
    assert!(server.metric("pikoci_broker_messages_refused_total").await >= 1.0);

    // A global worker (the test token) takes main's build.
    let _global = worker("isolation-global", support::server::WORKER_TOKEN);
    let done = server.wait_finished(&main_build).await;
    assert_eq!(done["status"], "succeeded", "{done:#}");
    server.stop();
}
