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
    distributed(
        &["--db-system", "sqlite", "--db-name", db.to_str().unwrap()],
        "nats",
        &service("PIKOCI_TEST_NATS_URL"),
    )
    .await;
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
