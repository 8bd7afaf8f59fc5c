//! The flags that choose a database and a broker, turned into connections.

use std::sync::Arc;

use anyhow::Context;
use pikoci_core::broker::Broker;
use pikoci_pubsub::{BrokerConfig, PubsubSystem};
use pikoci_store::{Backend, DbConfig};

/// `--db-*`: where the server keeps its state.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct DbArgs {
    /// The database: mem (in memory, gone at exit), sqlite (a file), postgres or mysql (MySQL
    /// or MariaDB) [default: mem, or the system of --db-url].
    #[arg(long, value_name = "SYSTEM", env = "PIKOCI_DB_SYSTEM",
          value_parser = ["mem", "sqlite", "postgres", "postgresql", "mysql", "mariadb"])]
    pub(crate) db_system: Option<String>,

    /// The database URL (sqlite://PATH, postgres://USER:PASSWORD@HOST:PORT/NAME,
    /// mysql://USER:PASSWORD@HOST:PORT/NAME); wins over the other --db-* settings. A missing
    /// database is created.
    #[arg(
        long,
        value_name = "URL",
        env = "PIKOCI_DB_URL",
        hide_env_values = true
    )]
    pub(crate) db_url: Option<String>,

    /// PostgreSQL or MySQL host [default: localhost].
    #[arg(long, value_name = "HOST", env = "PIKOCI_DB_HOST")]
    pub(crate) db_host: Option<String>,

    /// PostgreSQL or MySQL port [default: 5432 or 3306].
    #[arg(long, value_name = "PORT", env = "PIKOCI_DB_PORT")]
    pub(crate) db_port: Option<u16>,

    /// PostgreSQL or MySQL user.
    #[arg(long, value_name = "USER", env = "PIKOCI_DB_USER")]
    pub(crate) db_user: Option<String>,

    /// PostgreSQL or MySQL password (prefer the environment variable: flags are visible to
    /// every user of the machine).
    #[arg(
        long,
        value_name = "PASSWORD",
        env = "PIKOCI_DB_PASSWORD",
        hide_env_values = true
    )]
    pub(crate) db_password: Option<String>,

    /// The database name [default: pikoci], or the SQLite file [default:
    /// $XDG_DATA_HOME/pikoci/pikoci.db].
    #[arg(long, value_name = "NAME", env = "PIKOCI_DB_NAME")]
    pub(crate) db_name: Option<String>,
}

impl DbArgs {
    pub(crate) fn config(&self) -> anyhow::Result<DbConfig> {
        let system: Option<Backend> = self.db_system.as_deref().map(str::parse).transpose()?;
        Ok(DbConfig {
            system,
            url: self.db_url.clone(),
            host: self.db_host.clone(),
            port: self.db_port,
            user: self.db_user.clone(),
            password: self.db_password.clone(),
            name: self.db_name.clone(),
        })
    }

    /// Opens and migrates the database.
    pub(crate) async fn connect(&self) -> anyhow::Result<pikoci_store::SqlStore> {
        let config = self.config()?;
        let url = config.url()?;
        let backend = Backend::from_url(&url)?;
        let context = || {
            format!(
                "cannot open the {} database at {}",
                backend.as_str(),
                pikoci_core::redact::url(&url)
            )
        };
        let store = pikoci_store::SqlStore::open(&url)
            .await
            .with_context(context)?;
        let applied = store.migrate().await.with_context(context)?;
        if !applied.is_empty() {
            tracing::info!(
                migrations = %applied.join(", "),
                "migrated the database schema"
            );
        }
        Ok(store)
    }

    /// The database system these settings name.
    pub(crate) fn system(&self) -> anyhow::Result<Backend> {
        Ok(Backend::from_url(&self.config()?.url()?)?)
    }
}

/// `--pubsub-*`: the broker between the server and its workers.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct PubsubArgs {
    /// The broker: mem (in this process: the server with its embedded worker only), nats,
    /// rabbitmq or kafka (workers anywhere that can reach it).
    #[arg(long, value_name = "SYSTEM", default_value = "mem", env = "PIKOCI_PUBSUB_SYSTEM",
          value_parser = ["mem", "nats", "rabbitmq", "kafka"])]
    pub(crate) pubsub_system: String,

    /// The broker's URL [default: nats://127.0.0.1:4222, amqp://guest:guest@127.0.0.1:5672/%2f
    /// or 127.0.0.1:9092].
    #[arg(
        long,
        value_name = "URL",
        env = "PIKOCI_PUBSUB_URL",
        hide_env_values = true
    )]
    pub(crate) pubsub_url: Option<String>,
}

impl PubsubArgs {
    pub(crate) fn system(&self) -> anyhow::Result<PubsubSystem> {
        Ok(self.pubsub_system.parse()?)
    }

    /// Connects to the broker.
    pub(crate) async fn connect(&self) -> anyhow::Result<Arc<dyn Broker>> {
        let system = self.system()?;
        let url = self.pubsub_url.clone().unwrap_or_else(|| {
            match system {
                PubsubSystem::Mem => "mem",
                PubsubSystem::Nats => "nats://127.0.0.1:4222",
                PubsubSystem::Rabbitmq => "amqp://guest:guest@127.0.0.1:5672/%2f",
                PubsubSystem::Kafka => "127.0.0.1:9092",
            }
            .to_owned()
        });
        let config = BrokerConfig::new(system, url.clone());
        pikoci_pubsub::connect(&config).await.with_context(|| {
            format!(
                "cannot connect to the {system} broker at {}",
                pikoci_core::redact::url(&url)
            )
        })
    }
}
