//! NATS with JetStream: one stream per topic, one durable pull consumer per group.
//!
//! The stream of topic `a.b` is named `a_b` and captures the subject `a.b`; it keeps messages on
//! disk under interest retention (a message is removed once every group has acked it). A group is
//! a durable consumer with explicit acks that starts at the messages published after it was
//! created; its subscribers pull from it, so they compete. Unacked deliveries are redelivered
//! when nacked or dropped, and after `ack_wait` without an ack or an in-progress reply (a
//! consumer that vanished without a word, or one that holds a message longer).
//! The client reconnects by itself; each subscription's task re-creates its pull request (and the
//! stream and consumer, if the server lost them) after a failure. Every attempt of one publish
//! carries the same `Nats-Msg-Id`, so a retry after a lost acknowledgement is stored once.

use std::collections::HashSet;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use async_nats::jetstream::{self, AckKind, consumer::PullConsumer};
use async_nats::{Client, ConnectOptions, connection::State};
use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;
use pikoci_core::ErrorKind;
use pikoci_core::broker::{
    Broker, BrokerError, BrokerResult, Delivery, Settle, Subscription, validate_group,
    validate_topic,
};
use pikoci_core::redact;
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::BrokerConfig;
use crate::task::{Backoff, Tasks, publish_retrying};

/// What a `Nats-Msg-Id` header takes of a message's room, with margin (`NATS/1.0`, the name,
/// a 36-character id and the line ends are about 70 bytes).
const HEADER_ROOM: usize = 128;

/// How long a stream keeps a message no group has acked.
const MAX_AGE: Duration = Duration::from_secs(7 * 24 * 3600);
/// A group none of whose consumers pulled for this long is deleted by the server.
const INACTIVE_GROUP: Duration = Duration::from_secs(7 * 24 * 3600);
/// Idle heartbeat of pull requests: how fast a subscription notices a dead connection.
const HEARTBEAT: Duration = Duration::from_secs(5);
/// How long clean-up naks may take when a subscription ends.
const NAK_GRACE: Duration = Duration::from_secs(2);

/// A broker on NATS JetStream.
#[derive(Clone)]
pub struct NatsBroker {
    inner: Arc<Inner>,
}

struct Inner {
    client: Client,
    js: jetstream::Context,
    config: BrokerConfig,
    /// Streams known to exist, so a publish does not ask every time.
    streams: Mutex<HashSet<String>>,
    tasks: Tasks,
}

impl fmt::Debug for NatsBroker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NatsBroker")
            .field("url", &redact::url(&self.inner.config.url))
            .field("state", &self.inner.client.connection_state())
            .finish_non_exhaustive()
    }
}

fn unavailable(
    message: String,
    source: impl std::error::Error + Send + Sync + 'static,
) -> BrokerError {
    BrokerError::new(ErrorKind::Unavailable, message).with_source(source)
}

/// How long to wait before reconnection attempt `attempts` (0 first): 50 ms, doubling up to
/// 1 s.
fn reconnect_delay(attempts: usize) -> Duration {
    let doublings = u32::try_from(attempts.min(5)).unwrap_or(5);
    (Duration::from_millis(50) * 2u32.pow(doublings)).min(Duration::from_secs(1))
}

/// The JetStream stream name of a topic (topics have no `_`, so this is one-to-one).
fn stream_name(topic: &str) -> String {
    topic.replace('.', "_")
}

impl NatsBroker {
    /// Connects to the NATS server at `config.url`; fails if it cannot be reached now.
    pub async fn connect(config: &BrokerConfig) -> BrokerResult<Self> {
        let client = ConnectOptions::new()
            .name("pikoci")
            .connection_timeout(Duration::from_secs(5))
            .max_reconnects(None)
            // The client's own backoff grows to 4 s and more: a server back after a 5 s
            // outage would be found 8 s after it went, close to when workers give their
            // builds up. One attempt a second at most costs nothing.
            .reconnect_delay_callback(reconnect_delay)
            .connect(config.url.as_str())
            .await
            .map_err(|err| {
                unavailable(
                    format!(
                        "failed to connect to nats at \"{}\"",
                        redact::url(&config.url)
                    ),
                    err,
                )
            })?;
        let js = jetstream::new(client.clone());
        Ok(Self {
            inner: Arc::new(Inner {
                client,
                js,
                config: config.clone(),
                streams: Mutex::new(HashSet::new()),
                tasks: Tasks::default(),
            }),
        })
    }
}

impl Inner {
    fn forget_stream(&self, topic: &str) {
        self.streams
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(topic);
    }

    async fn ensure_stream(&self, topic: &str) -> BrokerResult<jetstream::stream::Stream> {
        let config = jetstream::stream::Config {
            name: stream_name(topic),
            subjects: vec![topic.to_owned()],
            retention: jetstream::stream::RetentionPolicy::Interest,
            storage: jetstream::stream::StorageType::File,
            max_age: MAX_AGE,
            ..Default::default()
        };
        let stream = self.js.get_or_create_stream(config).await.map_err(|err| {
            unavailable(
                format!("failed to create the nats stream of topic \"{topic}\""),
                err,
            )
        })?;
        self.streams
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(topic.to_owned());
        Ok(stream)
    }

    async fn ensure_consumer(&self, topic: &str, group: &str) -> BrokerResult<PullConsumer> {
        let stream = self.ensure_stream(topic).await?;
        if let Ok(consumer) = stream
            .get_consumer::<jetstream::consumer::pull::Config>(group)
            .await
        {
            return Ok(consumer);
        }
        let config = jetstream::consumer::pull::Config {
            durable_name: Some(group.to_owned()),
            filter_subject: topic.to_owned(),
            ack_policy: jetstream::consumer::AckPolicy::Explicit,
            ack_wait: self.config.ack_wait,
            deliver_policy: jetstream::consumer::DeliverPolicy::New,
            inactive_threshold: INACTIVE_GROUP,
            ..Default::default()
        };
        match stream.create_consumer(config).await {
            Ok(consumer) => Ok(consumer),
            // Another member of the group created it first.
            Err(create_err) => stream.get_consumer(group).await.map_err(|_| {
                unavailable(
                    format!("failed to create the nats consumer of group \"{group}\" on topic \"{topic}\""),
                    create_err,
                )
            }),
        }
    }

    /// Waits until the client is connected, or `deadline`.
    async fn wait_connected(&self, deadline: Instant) -> bool {
        let mut backoff = Backoff::new();
        while self.client.connection_state() != State::Connected {
            if !backoff.wait_until(deadline, self.tasks.token()).await {
                return false;
            }
        }
        true
    }

    /// Publishes `payload` with the message id `id`: JetStream stores a message once per id
    /// within its duplicate window (two minutes), so a retry of a publish whose
    /// acknowledgement was lost is not stored twice. A message too large to carry the id too
    /// goes without it.
    async fn publish_once(&self, topic: &str, id: &str, payload: Bytes) -> BrokerResult<()> {
        let known = self
            .streams
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .contains(topic);
        if !known {
            self.ensure_stream(topic).await?;
        }
        let mut headers = async_nats::HeaderMap::new();
        // The header counts against the server's max_payload: a message that fills it whole
        // (1 MiB by default, the protocol's limit) goes without, and without deduplication.
        // (The client's atomic copy: 1 MiB until the server has said.)
        let room = self.client.max_payload();
        if payload.len().saturating_add(HEADER_ROOM) <= room {
            headers.insert(async_nats::header::NATS_MESSAGE_ID, id);
        }
        let published = async {
            self.js
                .publish_with_headers(topic.to_owned(), headers, payload)
                .await?
                .await
        };
        match published.await {
            Ok(_ack) => Ok(()),
            Err(err) => {
                let message = format!("failed to publish to topic \"{topic}\"");
                if err.kind() == jetstream::context::PublishErrorKind::MaxPayloadExceeded {
                    return Err(BrokerError::new(
                        ErrorKind::InvalidInput,
                        format!("{message}: the message is larger than the server's max_payload"),
                    )
                    .with_source(err));
                }
                // The stream may be gone (a server that lost its storage): ask again next time.
                self.forget_stream(topic);
                Err(unavailable(message, err))
            }
        }
    }
}

#[async_trait]
impl Broker for NatsBroker {
    async fn publish(&self, topic: &str, payload: Vec<u8>) -> BrokerResult<()> {
        validate_topic(topic)?;
        let inner = &self.inner;
        let payload = Bytes::from(payload);
        let timeout = inner.config.publish_timeout;
        // One id for every attempt of this publish.
        let id = uuid::Uuid::new_v4().to_string();
        let id = id.as_str();
        publish_retrying(&inner.tasks, "nats", topic, timeout, |deadline| {
            let payload = payload.clone();
            async move {
                // While disconnected the client would queue the message and time out waiting for
                // the ack, then queue it again on the next attempt: wait for the connection instead.
                if !inner.wait_connected(deadline).await {
                    return Err(BrokerError::new(
                        ErrorKind::Unavailable,
                        format!("failed to publish to topic \"{topic}\": nats is not connected"),
                    ));
                }
                inner.publish_once(topic, id, payload).await
            }
        })
        .await
    }

    async fn subscribe(&self, topic: &str, group: &str) -> BrokerResult<Subscription> {
        validate_topic(topic)?;
        validate_group(group)?;
        let inner = Arc::clone(&self.inner);
        inner
            .tasks
            .check_open("nats", || format!("subscribe to topic \"{topic}\""))?;
        let consumer = inner.ensure_consumer(topic, group).await?;
        let (topic_owned, group_owned) = (topic.to_owned(), group.to_owned());
        let buffer = usize::from(inner.config.prefetch);
        let deliveries = self.inner.tasks.spawn_feed(buffer, move |token, tx| {
            feed(inner, topic_owned, group_owned, consumer, token, tx)
        });
        Ok(Subscription::new(topic, group, deliveries))
    }

    async fn close(&self) -> BrokerResult<()> {
        self.inner.tasks.close().await;
        self.inner.client.flush().await.ok();
        Ok(())
    }
}

/// Pulls the group's messages into `tx` until `token` is cancelled, re-creating the pull request
/// (and the consumer) after every failure.
async fn feed(
    inner: Arc<Inner>,
    topic: String,
    group: String,
    mut consumer: PullConsumer,
    token: CancellationToken,
    tx: mpsc::Sender<BrokerResult<Delivery>>,
) {
    let (naks_tx, mut naks) = mpsc::unbounded_channel::<jetstream::Message>();
    let mut backoff = Backoff::new();
    // A message taken from the pull and not yet handed over; naks keep being served meanwhile.
    let mut ready: Option<Delivery> = None;
    'pull: loop {
        let pulled = consumer
            .stream()
            .max_messages_per_batch(usize::from(inner.config.prefetch.max(1)))
            .heartbeat(HEARTBEAT)
            .expires(HEARTBEAT * 6)
            .messages()
            .await;
        match pulled {
            Ok(mut messages) => loop {
                tokio::select! {
                    biased;
                    () = token.cancelled() => break 'pull,
                    Some(message) = naks.recv() => nak(&message).await,
                    permit = tx.reserve(), if ready.is_some() => match (permit, ready.take()) {
                        (Ok(permit), Some(delivery)) => permit.send(Ok(delivery)),
                        _ => break 'pull,
                    },
                    item = messages.next(), if ready.is_none() => match item {
                        Some(Ok(message)) => {
                            backoff.reset();
                            let payload = message.payload.to_vec();
                            let settle = NatsSettle { message: Some(message), naks: naks_tx.clone() };
                            ready = Some(Delivery::new(payload, Box::new(settle)));
                        }
                        Some(Err(err)) if err.kind() == jetstream::consumer::pull::MessagesErrorKind::MissingHeartbeat => {
                            tracing::debug!(%topic, %group, "nats pull heartbeat missed; waiting for the connection");
                        }
                        Some(Err(err)) => {
                            tracing::warn!(%topic, %group, error = %err, "nats pull failed; pulling again");
                            break;
                        }
                        None => break,
                    },
                }
            },
            Err(err) => {
                tracing::warn!(%topic, %group, error = %err, "failed to pull from nats; retrying")
            }
        }
        loop {
            if !backoff.wait(&token).await {
                break 'pull;
            }
            match inner.ensure_consumer(&topic, &group).await {
                Ok(fresh) => {
                    consumer = fresh;
                    break;
                }
                Err(err) => {
                    tracing::warn!(%topic, %group, error = %err, "failed to restore the nats consumer; retrying")
                }
            }
        }
    }
    // Give back what was delivered to this subscription and not settled (the receiver of `tx` is
    // already gone, so its buffered deliveries have sent their naks).
    drop(ready);
    naks.close();
    let _ = tokio::time::timeout(NAK_GRACE, async {
        while let Some(message) = naks.recv().await {
            nak(&message).await;
        }
        // Acks and naks are only handed to the connection: send them before the subscription ends.
        inner.client.flush().await.ok();
    })
    .await;
}

async fn nak(message: &jetstream::Message) {
    if let Err(err) = message.ack_with(AckKind::Nak(None)).await {
        tracing::debug!(error = %err, "failed to nak a nats message; it is redelivered after ack_wait");
    }
}

/// Settles one JetStream delivery; dropping it unsettled naks it through the subscription's task.
struct NatsSettle {
    message: Option<jetstream::Message>,
    naks: mpsc::UnboundedSender<jetstream::Message>,
}

impl fmt::Debug for NatsSettle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NatsSettle")
            .field(
                "subject",
                &self.message.as_ref().map(|m| m.subject.as_str()),
            )
            .finish_non_exhaustive()
    }
}

impl NatsSettle {
    async fn reply(mut self: Box<Self>, kind: AckKind, action: &str) -> BrokerResult<()> {
        let Some(message) = self.message.take() else {
            return Ok(());
        };
        // Handed to the connection, not confirmed by the server (as a RabbitMQ ack): one lost with
        // the connection brings the message back after `ack_wait`, which at-least-once allows. A
        // confirmed ack (`double_ack`) is a round trip each and held consumers to 6,800/s.
        message.ack_with(kind).await.map_err(|err| {
            BrokerError::new(
                ErrorKind::Unavailable,
                format!(
                    "failed to {action} a message of subject \"{}\"",
                    message.subject
                ),
            )
            .with_source(err)
        })
    }
}

#[async_trait]
impl Settle for NatsSettle {
    async fn ack(self: Box<Self>) -> BrokerResult<()> {
        self.reply(AckKind::Ack, "ack").await
    }

    async fn nack(self: Box<Self>) -> BrokerResult<()> {
        self.reply(AckKind::Nak(None), "nack").await
    }

    async fn in_progress(&self) -> BrokerResult<()> {
        let Some(message) = &self.message else {
            return Ok(());
        };
        message.ack_with(AckKind::Progress).await.map_err(|err| {
            BrokerError::new(
                ErrorKind::Unavailable,
                format!(
                    "failed to tell nats a message of subject \"{}\" is in progress",
                    message.subject
                ),
            )
            .with_source(err)
        })
    }
}

impl Drop for NatsSettle {
    fn drop(&mut self) {
        if let Some(message) = self.message.take() {
            // Fails only when the subscription has ended; ack_wait then brings the message back.
            let _ = self.naks.send(message);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    #[test]
    fn reconnect_delays_double_from_50_ms_up_to_1_s() {
        let delays: Vec<u128> = (0..8)
            .map(|attempt| super::reconnect_delay(attempt).as_millis())
            .collect();
        assert_eq!(delays, [50, 100, 200, 400, 800, 1000, 1000, 1000]);
        assert_eq!(super::reconnect_delay(usize::MAX), Duration::from_secs(1));
    }
}
