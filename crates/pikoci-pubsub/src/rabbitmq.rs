//! RabbitMQ over AMQP 0-9-1: a durable fanout exchange per topic, a durable queue per group.
//!
//! Publishing sends a persistent message to the topic's exchange on a channel in confirm mode and
//! waits for the broker's confirm. The queue of group `g` on topic `t` is named `t/g` and bound to
//! the exchange, so every group gets every message and the consumers of one group share its queue.
//! Consumers ack manually; a channel that closes (subscription dropped, connection lost, process
//! died) gives its unacked messages back to the queue. A lost connection is reopened on demand;
//! each subscription's task re-declares its queue and consumes again.

use std::collections::HashSet;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use futures::StreamExt;
use lapin::options::{
    BasicConsumeOptions, BasicNackOptions, BasicPublishOptions, BasicQosOptions,
    ConfirmSelectOptions, ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable};
use lapin::uri::AMQPUri;
use lapin::{
    Acker, BasicProperties, Channel, Connection, ConnectionProperties, Consumer, ExchangeKind,
};
use pikoci_core::ErrorKind;
use pikoci_core::broker::{
    Broker, BrokerError, BrokerResult, Delivery, Settle, Subscription, validate_group,
    validate_topic,
};
use pikoci_core::redact;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::BrokerConfig;
use crate::task::{Backoff, Tasks, publish_retrying};

/// A group queue nobody consumed for this long is deleted by the broker (`x-expires`).
const QUEUE_EXPIRES_MS: u32 = 7 * 24 * 3600 * 1000;
/// How long closing a channel or connection may take.
const CLOSE_GRACE: Duration = Duration::from_secs(2);
/// AMQP "reply success", used when closing channels and connections.
const REPLY_SUCCESS: u16 = 200;
/// The largest AMQP frame asked for, unless the URL says otherwise (`?frame_max=`). The client
/// keeps two buffers of 32 frames per connection: with RabbitMQ's default of 128 KiB, that is
/// 8 MiB a process holds once traffic has gone through them. Bodies larger than a frame are
/// split over several frames, so this limits no message.
const FRAME_MAX: u32 = 16 * 1024;

/// The connection URI, asking for frames of [`FRAME_MAX`] when the URL does not name a size.
/// The parser's message may quote the URL: it is quoted without its user information.
fn connection_uri(url: &str) -> Result<AMQPUri, String> {
    let mut uri: AMQPUri = url
        .parse()
        .map_err(|problem: String| problem.replace(url, &redact::without_userinfo(url)))?;
    uri.query.frame_max.get_or_insert(FRAME_MAX);
    Ok(uri)
}

/// A broker on RabbitMQ.
#[derive(Clone)]
pub struct RabbitBroker {
    inner: Arc<Inner>,
}

struct Inner {
    config: BrokerConfig,
    link: tokio::sync::Mutex<Option<Arc<Link>>>,
    tasks: Tasks,
}

/// One open connection with its confirm-mode publishing channel.
struct Link {
    connection: Connection,
    publisher: Channel,
    /// Exchanges declared on this connection.
    exchanges: Mutex<HashSet<String>>,
}

impl fmt::Debug for RabbitBroker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RabbitBroker")
            .field("url", &redact::url(&self.inner.config.url))
            .finish_non_exhaustive()
    }
}

fn failure(kind: ErrorKind, message: String, source: lapin::Error) -> BrokerError {
    BrokerError::new(kind, message).with_source(source)
}

/// The queue of `group` on `topic`.
fn queue_name(topic: &str, group: &str) -> String {
    format!("{topic}/{group}")
}

impl RabbitBroker {
    /// Connects to RabbitMQ at `config.url`; fails if it cannot be reached now.
    pub async fn connect(config: &BrokerConfig) -> BrokerResult<Self> {
        let inner = Arc::new(Inner {
            config: config.clone(),
            link: tokio::sync::Mutex::new(None),
            tasks: Tasks::default(),
        });
        inner.link().await?;
        Ok(Self { inner })
    }
}

impl Inner {
    /// The open connection, opening a new one when the last one was lost.
    async fn link(&self) -> BrokerResult<Arc<Link>> {
        let mut current = self.link.lock().await;
        if let Some(link) = current.as_ref()
            && link.connection.status().connected()
            && link.publisher.status().connected()
        {
            return Ok(Arc::clone(link));
        }
        let unreachable = |err| {
            failure(
                ErrorKind::Unavailable,
                format!(
                    "failed to connect to rabbitmq at \"{}\"",
                    redact::url(&self.config.url)
                ),
                err,
            )
        };
        let uri = connection_uri(&self.config.url).map_err(|problem| {
            BrokerError::new(
                ErrorKind::InvalidInput,
                format!(
                    "the rabbitmq URL \"{}\" is not valid: {problem}",
                    redact::without_userinfo(&self.config.url)
                ),
            )
        })?;
        let properties = ConnectionProperties::default().with_connection_name("pikoci".into());
        let connection = Connection::connect_uri(uri, properties)
            .await
            .map_err(unreachable)?;
        let publisher = connection.create_channel().await.map_err(unreachable)?;
        publisher
            .confirm_select(ConfirmSelectOptions::default())
            .await
            .map_err(unreachable)?;
        let link = Arc::new(Link {
            connection,
            publisher,
            exchanges: Mutex::new(HashSet::new()),
        });
        *current = Some(Arc::clone(&link));
        Ok(link)
    }

    async fn declare_exchange(&self, channel: &Channel, topic: &str) -> lapin::Result<()> {
        let options = ExchangeDeclareOptions {
            durable: true,
            ..ExchangeDeclareOptions::default()
        };
        channel
            .exchange_declare(
                topic.into(),
                ExchangeKind::Fanout,
                options,
                FieldTable::default(),
            )
            .await
    }

    async fn publish_once(&self, topic: &str, payload: &[u8]) -> BrokerResult<()> {
        let link = self.link().await?;
        let failed = |err| {
            failure(
                ErrorKind::Unavailable,
                format!("failed to publish to topic \"{topic}\""),
                err,
            )
        };
        let declared = link
            .exchanges
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .contains(topic);
        if !declared {
            self.declare_exchange(&link.publisher, topic)
                .await
                .map_err(failed)?;
            link.exchanges
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .insert(topic.to_owned());
        }
        let properties = BasicProperties::default().with_delivery_mode(2);
        let confirm = link
            .publisher
            .basic_publish(
                topic.into(),
                "".into(),
                BasicPublishOptions::default(),
                payload,
                properties,
            )
            .await
            .map_err(failed)?
            .await
            .map_err(failed)?;
        if confirm.is_nack() {
            return Err(BrokerError::new(
                ErrorKind::Unavailable,
                format!("failed to publish to topic \"{topic}\": rabbitmq refused the message"),
            ));
        }
        Ok(())
    }

    /// Opens a channel consuming the group's queue (declaring exchange, queue and binding).
    async fn consume(&self, topic: &str, group: &str) -> BrokerResult<(Channel, Consumer)> {
        let link = self.link().await?;
        let queue = queue_name(topic, group);
        let failed = |err| {
            failure(
                ErrorKind::Unavailable,
                format!("failed to consume rabbitmq queue \"{queue}\""),
                err,
            )
        };
        let channel = link.connection.create_channel().await.map_err(failed)?;
        let setup = async {
            channel
                .basic_qos(self.config.prefetch.max(1), BasicQosOptions::default())
                .await?;
            self.declare_exchange(&channel, topic).await?;
            let mut arguments = FieldTable::default();
            arguments.insert("x-expires".into(), AMQPValue::LongUInt(QUEUE_EXPIRES_MS));
            let options = QueueDeclareOptions {
                durable: true,
                ..QueueDeclareOptions::default()
            };
            channel
                .queue_declare(queue.as_str().into(), options, arguments)
                .await?;
            channel
                .queue_bind(
                    queue.as_str().into(),
                    topic.into(),
                    "".into(),
                    QueueBindOptions::default(),
                    FieldTable::default(),
                )
                .await?;
            channel
                .basic_consume(
                    queue.as_str().into(),
                    "".into(),
                    BasicConsumeOptions::default(),
                    FieldTable::default(),
                )
                .await
        };
        let consumer = setup.await.map_err(failed)?;
        Ok((channel, consumer))
    }
}

#[async_trait]
impl Broker for RabbitBroker {
    async fn publish(&self, topic: &str, payload: Vec<u8>) -> BrokerResult<()> {
        validate_topic(topic)?;
        let inner = &self.inner;
        let timeout = inner.config.publish_timeout;
        publish_retrying(&inner.tasks, "rabbitmq", topic, timeout, |_deadline| {
            inner.publish_once(topic, &payload)
        })
        .await
    }

    async fn subscribe(&self, topic: &str, group: &str) -> BrokerResult<Subscription> {
        validate_topic(topic)?;
        validate_group(group)?;
        let inner = Arc::clone(&self.inner);
        inner
            .tasks
            .check_open("rabbitmq", || format!("subscribe to topic \"{topic}\""))?;
        let (channel, consumer) = inner.consume(topic, group).await?;
        let (topic_owned, group_owned) = (topic.to_owned(), group.to_owned());
        let buffer = usize::from(inner.config.prefetch);
        let deliveries = self.inner.tasks.spawn_feed(buffer, move |token, tx| {
            feed(
                inner,
                topic_owned,
                group_owned,
                channel,
                consumer,
                token,
                tx,
            )
        });
        Ok(Subscription::new(topic, group, deliveries))
    }

    async fn close(&self) -> BrokerResult<()> {
        self.inner.tasks.close().await;
        if let Some(link) = self.inner.link.lock().await.take() {
            let _ = tokio::time::timeout(
                CLOSE_GRACE,
                link.connection.close(REPLY_SUCCESS, "closed".into()),
            )
            .await;
        }
        Ok(())
    }
}

/// Forwards the consumer's deliveries to `tx` until `token` is cancelled, consuming again on a
/// new channel after a lost connection; closes its channel at the end so RabbitMQ requeues what
/// was not acked.
async fn feed(
    inner: Arc<Inner>,
    topic: String,
    group: String,
    mut channel: Channel,
    mut consumer: Consumer,
    token: CancellationToken,
    tx: mpsc::Sender<BrokerResult<Delivery>>,
) {
    let (nacks_tx, mut nacks) = mpsc::unbounded_channel::<Acker>();
    let mut backoff = Backoff::new();
    // A delivery taken from the consumer and not yet handed over; nacks keep being served meanwhile.
    let mut ready: Option<Delivery> = None;
    'consume: loop {
        loop {
            tokio::select! {
                biased;
                () = token.cancelled() => break 'consume,
                Some(acker) = nacks.recv() => nack(&acker).await,
                permit = tx.reserve(), if ready.is_some() => match (permit, ready.take()) {
                    (Ok(permit), Some(delivery)) => permit.send(Ok(delivery)),
                    _ => break 'consume,
                },
                item = consumer.next(), if ready.is_none() => match item {
                    Some(Ok(delivery)) => {
                        backoff.reset();
                        let settle = RabbitSettle { acker: Some(delivery.acker), nacks: nacks_tx.clone() };
                        ready = Some(Delivery::new(delivery.data, Box::new(settle)));
                    }
                    Some(Err(err)) => {
                        tracing::warn!(%topic, %group, error = %err, "rabbitmq consumer failed; consuming again");
                        break;
                    }
                    None => {
                        tracing::warn!(%topic, %group, "rabbitmq consumer was cancelled; consuming again");
                        break;
                    }
                },
            }
        }
        loop {
            if !backoff.wait(&token).await {
                break 'consume;
            }
            match inner.consume(&topic, &group).await {
                Ok((fresh_channel, fresh_consumer)) => {
                    (channel, consumer) = (fresh_channel, fresh_consumer);
                    break;
                }
                Err(err) => tracing::debug!(%topic, %group, error = %err, "rabbitmq not back yet"),
            }
        }
    }
    drop(ready);
    nacks.close();
    while let Ok(acker) = nacks.try_recv() {
        nack(&acker).await;
    }
    // Closing the channel requeues every delivery of it that was not acked.
    if channel.status().connected() {
        let _ = tokio::time::timeout(
            CLOSE_GRACE,
            channel.close(REPLY_SUCCESS, "subscription dropped".into()),
        )
        .await;
    }
}

async fn nack(acker: &Acker) {
    let requeue = BasicNackOptions {
        requeue: true,
        ..BasicNackOptions::default()
    };
    if let Err(err) = acker.nack(requeue).await {
        tracing::debug!(error = %err, "failed to nack a rabbitmq delivery; its channel requeues it when it closes");
    }
}

/// Settles one AMQP delivery; dropping it unsettled nacks it through the subscription's task.
#[derive(Debug)]
struct RabbitSettle {
    acker: Option<Acker>,
    nacks: mpsc::UnboundedSender<Acker>,
}

#[async_trait]
impl Settle for RabbitSettle {
    async fn ack(mut self: Box<Self>) -> BrokerResult<()> {
        let Some(acker) = self.acker.take() else {
            return Ok(());
        };
        acker.ack(lapin::options::BasicAckOptions::default()).await.map(drop).map_err(|err| {
            failure(
                ErrorKind::Unavailable,
                "failed to ack a rabbitmq delivery (its channel is gone; the message is redelivered)".to_owned(),
                err,
            )
        })
    }

    async fn nack(mut self: Box<Self>) -> BrokerResult<()> {
        let Some(acker) = self.acker.take() else {
            return Ok(());
        };
        let requeue = BasicNackOptions {
            requeue: true,
            ..BasicNackOptions::default()
        };
        acker.nack(requeue).await.map(drop).map_err(|err| {
            failure(
                ErrorKind::Unavailable,
                "failed to nack a rabbitmq delivery (its channel is gone; the message is redelivered)".to_owned(),
                err,
            )
        })
    }
}

impl Drop for RabbitSettle {
    fn drop(&mut self) {
        if let Some(acker) = self.acker.take() {
            // Fails only when the subscription has ended; its closed channel requeued the message.
            let _ = self.nacks.send(acker);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_are_small_unless_the_url_names_a_size() {
        let uri = connection_uri("amqp://guest:guest@127.0.0.1:5672/%2f").unwrap();
        assert_eq!(uri.query.frame_max, Some(FRAME_MAX));
        let uri = connection_uri("amqp://127.0.0.1/?frame_max=131072").unwrap();
        assert_eq!(uri.query.frame_max, Some(131_072));
    }

    #[test]
    fn a_bad_url_is_reported_without_its_password() {
        let problem = connection_uri("amqp://user:hunter2@127.0.0.1/?frame_max=big").unwrap_err();
        assert!(!problem.contains("hunter2"), "{problem}");
        let problem = connection_uri("amqp:user:hunter2@x").unwrap_err();
        assert!(!problem.contains("hunter2"), "{problem}");
    }
}
