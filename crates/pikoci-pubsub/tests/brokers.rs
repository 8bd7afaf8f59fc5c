//! The conformance suite against real brokers: NATS, RabbitMQ and Kafka (`cargo xtask it pubsub`
//! sets the variables below and starts what is missing). A broker that is not configured or not
//! reachable fails its tests.
//!
//! - `PIKOCI_TEST_NATS_URL`, `PIKOCI_TEST_RABBITMQ_URL`, `PIKOCI_TEST_KAFKA_URL`: the shared
//!   brokers.
//! - `PIKOCI_TEST_NATS_SERVER`, `PIKOCI_TEST_RABBITMQ_SERVER`, `PIKOCI_TEST_TANSU`: the programs
//!   the restart tests start as dedicated servers on free ports.

mod conformance;
mod servers;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use pikoci_core::broker::Broker;
use pikoci_pubsub::{BrokerConfig, PubsubSystem, connect};

/// Clients of one broker, with settings short enough for tests.
struct Real {
    config: BrokerConfig,
}

impl Real {
    fn new(system: PubsubSystem, url: String) -> Self {
        // `RUST_LOG=pikoci_pubsub=debug` shows what the transports do while a test waits.
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
        let mut config = BrokerConfig::new(system, url);
        // A NATS consumer that vanished without a word gets its deliveries back after this.
        config.ack_wait = Duration::from_secs(5);
        config.publish_timeout = Duration::from_secs(60);
        Self { config }
    }

    fn from_env(system: PubsubSystem, variable: &str) -> Self {
        Self::new(system, servers::required_env(variable))
    }
}

#[async_trait]
impl conformance::Harness for Real {
    async fn connect(&self) -> Arc<dyn Broker> {
        connect(&self.config).await.unwrap_or_else(|err| {
            panic!(
                "failed to connect to {} at {}: {err:?}",
                self.config.system, self.config.url
            )
        })
    }
}

mod nats {
    use super::*;

    conformance_tests!(Real::from_env(PubsubSystem::Nats, "PIKOCI_TEST_NATS_URL"));

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn reconnect_after_restart() {
        let mut server =
            servers::NatsServer::start(servers::required_env("PIKOCI_TEST_NATS_SERVER")).await;
        let broker =
            conformance::Harness::connect(&Real::new(PubsubSystem::Nats, server.url())).await;
        conformance::reconnect_after_restart(&mut server, broker).await;
    }

    /// A consumer whose process dies cannot nak: JetStream redelivers after `ack_wait`.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn unacked_delivery_of_a_vanished_consumer_returns_after_ack_wait() {
        let harness = Real::from_env(PubsubSystem::Nats, "PIKOCI_TEST_NATS_URL");
        let (topic, group) = conformance::names("vanish");
        let first_client = conformance::Harness::connect(&harness).await;
        let mut first = first_client
            .subscribe(&topic, &group)
            .await
            .expect("subscribe");
        first_client
            .publish(&topic, b"orphan".to_vec())
            .await
            .expect("publish");
        let delivery = conformance::next(&mut first, "the message").await;
        // Closing the client first means the delivery's nak can no longer be sent.
        first_client.close().await.expect("close");
        drop((delivery, first));
        let second_client = conformance::Harness::connect(&harness).await;
        let mut second = second_client
            .subscribe(&topic, &group)
            .await
            .expect("subscribe again");
        let again = conformance::next(&mut second, "the message after ack_wait").await;
        assert_eq!(again.payload(), b"orphan");
        again.ack().await.expect("ack");
    }
}

mod rabbitmq {
    use super::*;

    conformance_tests!(Real::from_env(
        PubsubSystem::Rabbitmq,
        "PIKOCI_TEST_RABBITMQ_URL"
    ));

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn reconnect_after_restart() {
        let mut node =
            servers::RabbitNode::start(servers::required_env("PIKOCI_TEST_RABBITMQ_SERVER")).await;
        let broker =
            conformance::Harness::connect(&Real::new(PubsubSystem::Rabbitmq, node.url())).await;
        conformance::reconnect_after_restart(&mut node, broker).await;
    }
}

mod kafka {
    use std::net::SocketAddr;
    use std::process::{Child, Command, Stdio};

    use super::*;

    conformance_tests!(Real::from_env(PubsubSystem::Kafka, "PIKOCI_TEST_KAFKA_URL"));

    /// A dedicated tansu broker behind a relay. tansu 0.6 as packaged keeps its data in memory
    /// only, so restarting it would lose every topic: the relay cuts and restores the network
    /// path instead, which is what a restart looks like to the clients.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn reconnect_after_restart() {
        let tansu = servers::required_env("PIKOCI_TEST_TANSU");
        let (broker_port, relay_port) = (servers::free_port(), servers::free_port());
        let listen = format!("tcp://127.0.0.1:{broker_port}");
        let advertised = format!("tcp://127.0.0.1:{relay_port}");
        let child = Command::new(&tansu)
            .args([
                "broker",
                "--listener-url",
                &listen,
                "--advertised-listener-url",
                &advertised,
            ])
            .args(["--storage-engine", "memory://tansu/"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|err| panic!("failed to start {tansu}: {err}"));
        struct Reap(Child);
        impl Drop for Reap {
            fn drop(&mut self) {
                let _ = self.0.kill();
                let _ = self.0.wait();
            }
        }
        let _tansu = Reap(child);
        servers::wait_for_port(broker_port, "the dedicated tansu broker").await;
        let target: SocketAddr = ([127, 0, 0, 1], broker_port).into();
        let mut relay = servers::Relay::start(relay_port, target).await;
        let url = format!("kafka://127.0.0.1:{relay_port}");
        let broker = conformance::Harness::connect(&Real::new(PubsubSystem::Kafka, url)).await;
        conformance::reconnect_after_restart(&mut relay, broker).await;
    }
}
