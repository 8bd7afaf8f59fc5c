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

/// `cargo xtask chaos [--quick]`: release binaries on loopback, killed mid-build (workers, the
/// server, the broker), on every database and broker: dedicated NATS servers and RabbitMQ nodes
/// (which the scenarios kill), tansu behind a relay, and a fresh PostgreSQL and MariaDB
/// database per run. `--quick` runs each scenario on one combination (what `ci` runs).
pub(crate) fn chaos(args: &[String]) -> anyhow::Result<()> {
    let matrix = match args {
        [] => "full",
        [flag] if flag == "--quick" => "quick",
        other => anyhow::bail!(
            "unknown arguments to chaos: {}; the only one is --quick",
            other.join(" ")
        ),
    };
    if matrix == "quick" && std::env::var_os("PIKOCI_CHAOS_ONLY").is_some() {
        anyhow::bail!(
            "PIKOCI_CHAOS_ONLY is set: it would leave cases of `chaos --quick` (and of `ci`) \
             out; unset it, or use it with `cargo xtask chaos` (the whole matrix)"
        );
    }
    let programs = pubsub::BrokerPrograms::find()?;
    store::with_databases(|databases| {
        let mut env = databases.to_vec();
        env.extend(programs.env());
        env.push(("PIKOCI_CHAOS", matrix));
        crate::cargo_with_env(
            &[
                "test",
                "--release",
                "--locked",
                "-p",
                "pikoci",
                "--features",
                "chaos",
                "--test",
                "chaos",
                "--",
                "--test-threads=1",
                "--nocapture",
            ],
            &env,
        )
    })
}

/// `cargo xtask bench logs`: the log ingest benchmark on a fresh PostgreSQL database (dropped
/// after the run).
pub(crate) fn bench_logs() -> anyhow::Result<()> {
    bench_on_databases("logs")
}

/// `cargo xtask bench checks`: the check scheduling benchmark on a fresh PostgreSQL database
/// (dropped after the run).
pub(crate) fn bench_checks() -> anyhow::Result<()> {
    bench_on_databases("checks")
}

/// Runs the benchmark `name` of `pikoci` with fresh databases.
fn bench_on_databases(name: &str) -> anyhow::Result<()> {
    store::with_databases(|databases| {
        crate::cargo_with_env(
            &["bench", "--locked", "-p", "pikoci", "--bench", name],
            databases,
        )
    })
}

/// `cargo xtask bench server`: the server benchmark with the machine's NATS and RabbitMQ, and
/// tansu (Kafka protocol) started here.
pub(crate) fn bench() -> anyhow::Result<()> {
    let brokers = pubsub::machine_brokers()?;
    let kafka = pubsub::Kafka::start()?;
    let result = crate::cargo_with_env(
        &["bench", "--locked", "-p", "pikoci", "--bench", "server"],
        &pubsub::shared_env(&brokers, &kafka),
    );
    drop(kafka);
    result
}
