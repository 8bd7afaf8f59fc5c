//! Choosing and configuring a transport at run time (`--pubsub-system`, `--pubsub-url`).

use std::fmt;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use pikoci_core::ErrorKind;
use pikoci_core::broker::{Broker, BrokerError, BrokerResult};

/// The transports PikoCI can use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PubsubSystem {
    /// In-process ([`crate::MemBroker`]); the URL is ignored.
    Mem,
    /// NATS with JetStream (`nats://host:4222`).
    Nats,
    /// RabbitMQ over AMQP 0-9-1 (`amqp://user:password@host:5672/%2f`).
    Rabbitmq,
    /// Kafka protocol (`kafka://host:9092[,host:9092...]`, or a bare `host:port` list); needs the
    /// `kafka` cargo feature.
    Kafka,
}

impl PubsubSystem {
    /// Every transport, in the order the help text lists them.
    pub const ALL: [Self; 4] = [Self::Mem, Self::Nats, Self::Rabbitmq, Self::Kafka];

    /// The name used on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Self::Mem => "mem",
            Self::Nats => "nats",
            Self::Rabbitmq => "rabbitmq",
            Self::Kafka => "kafka",
        }
    }
}

impl fmt::Display for PubsubSystem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for PubsubSystem {
    type Err = BrokerError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|system| system.name() == s)
            .ok_or_else(|| {
                BrokerError::new(
                    ErrorKind::InvalidInput,
                    format!("unknown pubsub system \"{s}\": use mem, nats, rabbitmq or kafka"),
                )
            })
    }
}

/// How to reach a broker, and the knobs shared by the transports. `Debug` hides the URL's
/// credentials.
#[derive(Clone, PartialEq, Eq)]
pub struct BrokerConfig {
    /// Which transport.
    pub system: PubsubSystem,
    /// The broker's address, in the transport's URL syntax (see [`PubsubSystem`]).
    pub url: String,
    /// How long a publish waits for the broker (during an outage, for its confirm) before failing.
    pub publish_timeout: Duration,
    /// NATS: how long JetStream waits for the ack of a delivery before redelivering it (covers a
    /// consumer that died without closing its connection). Must exceed the longest handling time.
    pub ack_wait: Duration,
    /// How many unsettled deliveries one consumer may hold (AMQP prefetch, JetStream batch).
    pub prefetch: u16,
    /// Kafka: partitions of the topics the broker creates (1 keeps per-topic order).
    pub kafka_partitions: i32,
    /// Kafka: how long a consumer-group member may stay silent before the group moves its
    /// partitions to another member.
    pub kafka_session_timeout: Duration,
}

impl fmt::Debug for BrokerConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BrokerConfig")
            .field("system", &self.system)
            .field("url", &pikoci_core::redact::url(&self.url))
            .field("publish_timeout", &self.publish_timeout)
            .field("ack_wait", &self.ack_wait)
            .field("prefetch", &self.prefetch)
            .field("kafka_partitions", &self.kafka_partitions)
            .field("kafka_session_timeout", &self.kafka_session_timeout)
            .finish()
    }
}

impl BrokerConfig {
    /// The defaults for `system` at `url`.
    pub fn new(system: PubsubSystem, url: impl Into<String>) -> Self {
        Self {
            system,
            url: url.into(),
            publish_timeout: Duration::from_secs(30),
            ack_wait: Duration::from_secs(30),
            prefetch: 16,
            kafka_partitions: 1,
            kafka_session_timeout: Duration::from_secs(10),
        }
    }
}

/// Connects to the broker `config` names. Fails with [`ErrorKind::Unavailable`] when the
/// broker cannot be reached now (later outages are survived), and with
/// [`ErrorKind::Unsupported`] for a transport this build leaves out.
pub async fn connect(config: &BrokerConfig) -> BrokerResult<Arc<dyn Broker>> {
    match config.system {
        PubsubSystem::Mem => Ok(Arc::new(crate::MemBroker::new())),
        PubsubSystem::Nats => Ok(Arc::new(crate::NatsBroker::connect(config).await?)),
        PubsubSystem::Rabbitmq => Ok(Arc::new(crate::RabbitBroker::connect(config).await?)),
        PubsubSystem::Kafka => connect_kafka(config).await,
    }
}

#[cfg(feature = "kafka")]
async fn connect_kafka(config: &BrokerConfig) -> BrokerResult<Arc<dyn Broker>> {
    Ok(Arc::new(crate::KafkaBroker::connect(config).await?))
}

#[cfg(not(feature = "kafka"))]
async fn connect_kafka(_config: &BrokerConfig) -> BrokerResult<Arc<dyn Broker>> {
    Err(BrokerError::new(
        ErrorKind::Unsupported,
        "the kafka pubsub system is not compiled into this build: rebuild with the `kafka` cargo \
         feature of pikoci-pubsub (the shipped pikoci binaries have it)",
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn systems_parse_by_name() {
        for system in PubsubSystem::ALL {
            assert_eq!(system.name().parse::<PubsubSystem>().unwrap(), system);
        }
        let err = "redis".parse::<PubsubSystem>().unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput);
        assert!(err.to_string().contains("\"redis\""), "{err}");
    }

    #[tokio::test]
    async fn mem_connects_without_a_url() {
        let broker = connect(&BrokerConfig::new(PubsubSystem::Mem, "")).await;
        assert!(broker.is_ok());
    }

    #[cfg(not(feature = "kafka"))]
    #[tokio::test]
    async fn kafka_without_the_feature_names_the_feature() {
        let config = BrokerConfig::new(PubsubSystem::Kafka, "kafka://127.0.0.1:9092");
        let err = connect(&config).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Unsupported);
        assert!(err.to_string().contains("`kafka` cargo feature"), "{err}");
    }

    /// A port on loopback where nothing listens (bound, then released).
    fn closed_port() -> u16 {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap().port()
    }

    #[tokio::test]
    async fn configs_and_connection_errors_never_show_the_password() {
        let port = closed_port();
        let configs = [
            BrokerConfig::new(
                PubsubSystem::Nats,
                format!("nats://pikoci:hunter2@127.0.0.1:{port}"),
            ),
            BrokerConfig::new(
                PubsubSystem::Rabbitmq,
                format!("amqp://pikoci:hunter2@127.0.0.1:{port}/%2f"),
            ),
            BrokerConfig::new(PubsubSystem::Kafka, "kafka://pikoci:hunter2@127.0.0.1:9092"),
        ];
        for config in configs {
            let debug = format!("{config:?}");
            assert!(debug.contains("pikoci:***@127.0.0.1"), "{debug}");
            let err = connect(&config).await.unwrap_err();
            for shown in [format!("{err}"), format!("{err:?}"), err.full_message()] {
                assert!(!shown.contains("hunter2"), "{shown}");
            }
        }
    }
}
