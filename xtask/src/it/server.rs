//! `cargo xtask it server`: the server and standalone workers end to end, on SQLite over NATS,
//! PostgreSQL over RabbitMQ and MariaDB over Kafka (tansu): the same services as the store and
//! pubsub suites, a fresh PostgreSQL and MariaDB database per run.

use super::{pubsub, store};

/// Runs the suite.
pub(crate) fn run() -> anyhow::Result<()> {
    let brokers = pubsub::machine_brokers()?;
    let kafka = pubsub::Kafka::start()?;
    let result = store::with_databases(|databases| {
        let mut env = databases.to_vec();
        env.extend(pubsub::shared_env(&brokers, &kafka));
        crate::cargo_with_env(
            &[
                "test",
                "--locked",
                "-p",
                "pikoci",
                "--features",
                "it",
                "--test",
                "e2e_server_distributed",
            ],
            &env,
        )
    });
    drop(kafka);
    result
}
