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

    /// Every publish carries its own `Nats-Msg-Id`; JetStream stores a message once per id, so a
    /// publish retried after its acknowledgement was lost is delivered once.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_publish_sent_again_with_its_message_id_is_delivered_once() {
        use futures::StreamExt;

        let url = servers::required_env("PIKOCI_TEST_NATS_URL");
        let harness = Real::new(PubsubSystem::Nats, url.clone());
        let (topic, group) = conformance::names("dedupe");
        let broker = conformance::Harness::connect(&harness).await;
        let mut group_sub = broker.subscribe(&topic, &group).await.expect("subscribe");
        // A plain subscription on the subject sees what the broker sends, headers included.
        let raw = async_nats::connect(url.as_str()).await.expect("nats");
        let mut watch = raw.subscribe(topic.clone()).await.expect("watch");
        // `flush` only writes the SUB out. A message of this connection's own coming back proves
        // the server has taken it (it reads a connection's commands in order); without this
        // the broker's publish, on another connection, can reach the server first.
        let probe = format!("{topic}-probe");
        let mut echo = raw.subscribe(probe.clone()).await.expect("probe");
        raw.publish(probe, "probe".into()).await.expect("probe");
        tokio::time::timeout(Duration::from_secs(10), echo.next())
            .await
            .expect("the probe came back")
            .expect("the probe subscription is open");
        broker
            .publish(&topic, b"one".to_vec())
            .await
            .expect("publish");
        broker
            .publish(&topic, b"two".to_vec())
            .await
            .expect("publish");
        let mut ids = Vec::new();
        for _ in 0..2 {
            let seen = tokio::time::timeout(Duration::from_secs(10), watch.next())
                .await
                .expect("the publish on the subject")
                .expect("the watch is open");
            let id = seen
                .headers
                .as_ref()
                .and_then(|h| h.get(async_nats::header::NATS_MESSAGE_ID))
                .map(|id| id.as_str().to_owned())
                .expect("a Nats-Msg-Id header");
            ids.push(id);
        }
        assert_ne!(ids[0], ids[1], "two publishes, two ids");
        // The first publish again, as a retry sends it: stored once.
        let js = async_nats::jetstream::new(raw.clone());
        let mut headers = async_nats::HeaderMap::new();
        headers.insert(async_nats::header::NATS_MESSAGE_ID, ids[0].as_str());
        let ack = js
            .publish_with_headers(topic.clone(), headers, "one".into())
            .await
            .expect("publish again")
            .await
            .expect("acknowledged");
        assert!(ack.duplicate, "JetStream took the retry for a new message");
        for expected in [b"one".as_slice(), b"two".as_slice()] {
            let delivery = conformance::next(&mut group_sub, "a published message").await;
            assert_eq!(delivery.payload(), expected);
            delivery.ack().await.expect("ack");
        }
        let third = tokio::time::timeout(Duration::from_secs(1), group_sub.next()).await;
        assert!(
            third.is_err(),
            "a third delivery: the retry was stored twice"
        );
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

    /// A consumer that says it still works on a message keeps it past `ack_wait`; once it
    /// stops saying so, the message comes back.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_delivery_in_progress_is_kept_past_ack_wait() {
        use futures::StreamExt;

        let harness = Real::from_env(PubsubSystem::Nats, "PIKOCI_TEST_NATS_URL");
        let (topic, group) = conformance::names("progress");
        let client = conformance::Harness::connect(&harness).await;
        let mut sub = client.subscribe(&topic, &group).await.expect("subscribe");
        client
            .publish(&topic, b"slow".to_vec())
            .await
            .expect("publish");
        let (_, pending) = conformance::next(&mut sub, "the message")
            .await
            .into_parts();
        // Three times `ack_wait` (5 s), in progress every 2 s.
        let kept_until = tokio::time::Instant::now() + Duration::from_secs(15);
        while tokio::time::Instant::now() < kept_until {
            if let Ok(again) = tokio::time::timeout(Duration::from_secs(2), sub.next()).await {
                let payload = again.map(|delivery| delivery.map(|d| d.payload().to_vec()));
                panic!("redelivered while in progress: {payload:?}");
            }
            pending.in_progress().await.expect("in progress");
        }
        let again = conformance::next(&mut sub, "the message after ack_wait").await;
        assert_eq!(again.payload(), b"slow");
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
    use super::*;

    conformance_tests!(Real::from_env(PubsubSystem::Kafka, "PIKOCI_TEST_KAFKA_URL"));

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn reconnect_after_restart() {
        let mut kafka =
            servers::KafkaBehindRelay::start(&servers::required_env("PIKOCI_TEST_TANSU")).await;
        let broker =
            conformance::Harness::connect(&Real::new(PubsubSystem::Kafka, kafka.url())).await;
        conformance::reconnect_after_restart(&mut kafka, broker).await;
    }
}
