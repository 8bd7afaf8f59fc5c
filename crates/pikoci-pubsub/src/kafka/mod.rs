//! Kafka through librdkafka: a topic per topic, a consumer group per group and topic
//! (`<group>.<topic>`, see `consumer::group_id`).
//!
//! Topics are created by the broker on first use (`kafka_partitions` partitions, 1 by default so
//! the topic keeps its order). Publishing waits for the message to be written with `acks=all`.
//! `subscribe` joins a consumer group: members compete for partitions, so with one partition one
//! member at a time consumes (the others take over when it leaves). `subscribe_sole` skips the
//! group protocol and assigns every partition directly, so a worker's inbox is readable at once
//! instead of after a group join. Either way offsets are committed when deliveries are acked, up
//! to the first delivery not yet acked; a new group starts at the end of the topic.
//! librdkafka reconnects by itself.

mod consumer;

use std::collections::HashSet;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use pikoci_core::ErrorKind;
use pikoci_core::broker::{
    Broker, BrokerError, BrokerResult, Subscription, validate_group, validate_topic,
};
use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use tokio::time::Instant;

use crate::BrokerConfig;
use crate::task::{Tasks, publish_retrying};

/// Largest message the transport accepts (librdkafka's default is just under 1 MiB).
const MAX_MESSAGE_BYTES: &str = "16777216";
/// How long admin and metadata requests may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// A broker on Kafka (any server speaking the Kafka protocol).
#[derive(Clone)]
pub struct KafkaBroker {
    inner: Arc<Inner>,
}

struct Inner {
    config: BrokerConfig,
    /// `host:port,...` for librdkafka.
    servers: String,
    /// How long a consumer's fetch may wait at the broker (`fetch.wait.max.ms`).
    fetch_wait_ms: u32,
    producer: FutureProducer,
    admin: AdminClient<DefaultClientContext>,
    /// Topics known to exist.
    topics: Mutex<HashSet<String>>,
    tasks: Tasks,
}

impl fmt::Debug for KafkaBroker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KafkaBroker")
            .field("servers", &self.inner.servers)
            .finish_non_exhaustive()
    }
}

/// How long a consumer's fetch may wait at the broker for messages, unless the URL says
/// otherwise. A Kafka broker answers a waiting fetch as soon as a message arrives, so this only
/// sets how often an idle consumer asks again.
const DEFAULT_FETCH_WAIT_MS: u32 = 100;

/// The longest `fetch_wait_ms` accepted.
const MAX_FETCH_WAIT_MS: u32 = 10_000;

/// What a Kafka URL says: `kafka://a:9092,b:9092[?fetch_wait_ms=N]`, or a bare `a:9092,b:9092`.
#[derive(Debug, Clone, PartialEq, Eq)]
struct KafkaUrl {
    /// librdkafka's `bootstrap.servers`.
    servers: String,
    /// librdkafka's `fetch.wait.max.ms`. Some brokers (tansu) hold every fetch for about half
    /// of it even when messages are waiting: a small value there cuts delivery latency, at the
    /// cost of more requests from idle consumers.
    fetch_wait_ms: u32,
}

fn parse_url(url: &str) -> BrokerResult<KafkaUrl> {
    let invalid = |problem: String| {
        BrokerError::new(
            ErrorKind::InvalidInput,
            format!(
                "invalid kafka url \"{}\": {problem}",
                pikoci_core::redact::url(url)
            ),
        )
    };
    let rest = url.strip_prefix("kafka://").unwrap_or(url);
    let (servers, query) = match rest.split_once('?') {
        Some((servers, query)) => (servers, Some(query)),
        None => (rest, None),
    };
    let servers = servers.trim_end_matches('/');
    if servers.is_empty() || servers.contains('/') || servers.contains('@') {
        return Err(invalid(
            "use kafka://host:port[,host:port...][?fetch_wait_ms=N]".to_owned(),
        ));
    }
    let mut fetch_wait_ms = None;
    let pairs = query.into_iter().flat_map(|q| q.split('&'));
    for pair in pairs.filter(|p| !p.is_empty()) {
        let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
        match name {
            "fetch_wait_ms" if fetch_wait_ms.is_some() => {
                return Err(invalid("fetch_wait_ms is given twice".to_owned()));
            }
            "fetch_wait_ms" => {
                let ms = value
                    .parse()
                    .ok()
                    .filter(|ms| (1..=MAX_FETCH_WAIT_MS).contains(ms))
                    .ok_or_else(|| {
                        invalid(format!(
                            "fetch_wait_ms must be a number of milliseconds from 1 to \
                             {MAX_FETCH_WAIT_MS}, not \"{value}\""
                        ))
                    })?;
                fetch_wait_ms = Some(ms);
            }
            _ => {
                return Err(invalid(format!(
                    "unknown parameter \"{name}\"; the only one is fetch_wait_ms"
                )));
            }
        }
    }
    Ok(KafkaUrl {
        servers: servers.to_owned(),
        fetch_wait_ms: fetch_wait_ms.unwrap_or(DEFAULT_FETCH_WAIT_MS),
    })
}

fn kafka_error(kind: ErrorKind, message: String, err: KafkaError) -> BrokerError {
    BrokerError::new(kind, message).with_source(err)
}

/// Settings shared by the producer, the admin client and the consumers.
fn client_config(servers: &str) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", servers)
        .set("client.id", "pikoci")
        .set("socket.keepalive.enable", "true")
        .set("reconnect.backoff.ms", "50")
        .set("reconnect.backoff.max.ms", "1000")
        .set("log_level", "4");
    config
}

impl KafkaBroker {
    /// Connects to the Kafka cluster at `config.url`; fails if no broker answers now.
    pub async fn connect(config: &BrokerConfig) -> BrokerResult<Self> {
        let KafkaUrl {
            servers,
            fetch_wait_ms,
        } = parse_url(&config.url)?;
        let unreachable = |err| {
            kafka_error(
                ErrorKind::Unavailable,
                format!("failed to set up a kafka client for \"{servers}\""),
                err,
            )
        };
        let timeout_ms = config.publish_timeout.as_millis().max(1).to_string();
        let producer: FutureProducer = client_config(&servers)
            .set("acks", "all")
            .set("enable.idempotence", "false")
            .set("linger.ms", "0")
            .set("message.timeout.ms", &timeout_ms)
            .set("message.max.bytes", MAX_MESSAGE_BYTES)
            .create()
            .map_err(unreachable)?;
        let admin: AdminClient<DefaultClientContext> =
            client_config(&servers).create().map_err(unreachable)?;
        let inner = Arc::new(Inner {
            config: config.clone(),
            servers,
            fetch_wait_ms,
            producer,
            admin,
            topics: Mutex::new(HashSet::new()),
            tasks: Tasks::default(),
        });
        // librdkafka connects lazily: ask for metadata now so a wrong address fails here.
        let probe = Arc::clone(&inner);
        tokio::task::spawn_blocking(move || {
            probe
                .producer
                .client()
                .fetch_metadata(None, REQUEST_TIMEOUT)
                .map(drop)
        })
        .await
        .map_err(|err| {
            BrokerError::new(ErrorKind::Internal, "kafka metadata probe panicked").with_source(err)
        })?
        .map_err(|err| {
            kafka_error(
                ErrorKind::Unavailable,
                format!("failed to reach kafka at \"{}\"", inner.servers),
                err,
            )
        })?;
        Ok(Self { inner })
    }
}

impl Inner {
    fn topic_known(&self, topic: &str) -> bool {
        self.topics
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .contains(topic)
    }

    fn set_topic_known(&self, topic: &str, known: bool) {
        let mut topics = self.topics.lock().unwrap_or_else(PoisonError::into_inner);
        if known {
            topics.insert(topic.to_owned());
        } else {
            topics.remove(topic);
        }
    }

    /// Creates `topic` unless it exists.
    async fn ensure_topic(&self, topic: &str) -> BrokerResult<()> {
        if self.topic_known(topic) {
            return Ok(());
        }
        let new = NewTopic::new(
            topic,
            self.config.kafka_partitions.max(1),
            TopicReplication::Fixed(1),
        )
        .set("max.message.bytes", MAX_MESSAGE_BYTES);
        let options = AdminOptions::new().operation_timeout(Some(REQUEST_TIMEOUT));
        let failed = |detail: String| {
            BrokerError::new(
                ErrorKind::Unavailable,
                format!("failed to create kafka topic \"{topic}\": {detail}"),
            )
        };
        let results = self
            .admin
            .create_topics([&new], &options)
            .await
            .map_err(|err| failed(err.to_string()))?;
        for result in results {
            match result {
                Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                Err((_, code)) => return Err(failed(code.to_string())),
            }
        }
        self.set_topic_known(topic, true);
        Ok(())
    }

    async fn publish_once(
        &self,
        topic: &str,
        payload: &[u8],
        deadline: Instant,
    ) -> BrokerResult<()> {
        self.ensure_topic(topic).await?;
        let record: FutureRecord<'_, (), [u8]> = FutureRecord::to(topic).payload(payload);
        let wait = deadline.saturating_duration_since(Instant::now());
        match self.producer.send(record, wait).await {
            Ok(_delivery) => Ok(()),
            Err((err, _message)) => {
                if matches!(
                    err.rdkafka_error_code(),
                    Some(
                        RDKafkaErrorCode::UnknownTopicOrPartition | RDKafkaErrorCode::UnknownTopic
                    )
                ) {
                    self.set_topic_known(topic, false);
                }
                let kind = match err.rdkafka_error_code() {
                    Some(
                        RDKafkaErrorCode::MessageSizeTooLarge
                        | RDKafkaErrorCode::InvalidMessageSize,
                    ) => ErrorKind::InvalidInput,
                    Some(RDKafkaErrorCode::MessageTimedOut) => ErrorKind::Timeout,
                    _ => ErrorKind::Unavailable,
                };
                Err(kafka_error(
                    kind,
                    format!("failed to publish to topic \"{topic}\""),
                    err,
                ))
            }
        }
    }
}

#[async_trait]
impl Broker for KafkaBroker {
    async fn publish(&self, topic: &str, payload: Vec<u8>) -> BrokerResult<()> {
        validate_topic(topic)?;
        let inner = &self.inner;
        let timeout = inner.config.publish_timeout;
        publish_retrying(&inner.tasks, "kafka", topic, timeout, |deadline| {
            inner.publish_once(topic, &payload, deadline)
        })
        .await
    }

    async fn subscribe(&self, topic: &str, group: &str) -> BrokerResult<Subscription> {
        self.subscribe_with(topic, group, consumer::Membership::Group)
            .await
    }

    async fn subscribe_sole(&self, topic: &str, group: &str) -> BrokerResult<Subscription> {
        self.subscribe_with(topic, group, consumer::Membership::Sole)
            .await
    }

    async fn close(&self) -> BrokerResult<()> {
        self.inner.tasks.close().await;
        let inner = Arc::clone(&self.inner);
        // Flushing blocks; nothing is pending after the awaited publishes, so it returns at once.
        let _ = tokio::task::spawn_blocking(move || inner.producer.flush(REQUEST_TIMEOUT)).await;
        Ok(())
    }
}

impl KafkaBroker {
    async fn subscribe_with(
        &self,
        topic: &str,
        group: &str,
        membership: consumer::Membership,
    ) -> BrokerResult<Subscription> {
        validate_topic(topic)?;
        validate_group(group)?;
        let inner = &self.inner;
        inner
            .tasks
            .check_open("kafka", || format!("subscribe to topic \"{topic}\""))?;
        inner.ensure_topic(topic).await?;
        let deliveries = consumer::start(inner, topic, group, membership).await?;
        Ok(Subscription::new(topic, group, deliveries))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_become_bootstrap_servers_and_a_fetch_wait() {
        let url = |servers: &str, fetch_wait_ms| KafkaUrl {
            servers: servers.to_owned(),
            fetch_wait_ms,
        };
        assert_eq!(parse_url("kafka://a:1,b:2").unwrap(), url("a:1,b:2", 100));
        assert_eq!(parse_url("a:1").unwrap(), url("a:1", 100));
        assert_eq!(
            parse_url("kafka://a:1/?fetch_wait_ms=10").unwrap(),
            url("a:1", 10)
        );
        for bad in [
            "",
            "kafka://",
            "kafka://user@a:1",
            "http://a:1/x",
            "kafka://a:1?fetch_wait_ms=0",
            "kafka://a:1?fetch_wait_ms=soon",
            "kafka://a:1?linger=5",
            "kafka://a:1?fetch_wait_ms",
            "kafka://a:1?fetch_wait_ms=5&fetch_wait_ms=6",
        ] {
            let err = parse_url(bad).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::InvalidInput, "{bad}");
        }
        let err = parse_url("kafka://a:1?linger=5").unwrap_err();
        assert!(
            err.to_string().contains("the only one is fetch_wait_ms"),
            "{err}"
        );
    }
}
