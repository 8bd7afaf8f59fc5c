//! The `Broker` port: moves opaque bytes between processes (server and workers).
//!
//! A message is published to a *topic*; consumers read a topic through a *group*. Consumers in the
//! same group compete (each message goes to one of them); every group gets every message
//! (fan-out). Deliveries are acknowledged explicitly: a delivery that is nacked, dropped, or whose
//! consumer dies or disconnects before acking it is delivered again to a member of its group
//! (at-least-once). Implementations live in `pikoci-pubsub`; this module names no broker library.
//!
//! A group receives the messages published after its first subscription was established
//! (`subscribe` returned); it keeps receiving them while none of its consumers is connected.

use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};

use async_trait::async_trait;
use futures::Stream;

use crate::ErrorKind;

crate::error::port_error!(
    /// The error of every [`Broker`] operation: a kind, a message naming what failed, and the
    /// transport's own error as an opaque source.
    BrokerError
);

/// The result of every broker operation.
pub type BrokerResult<T> = Result<T, BrokerError>;

/// Settles one delivery with the transport that delivered it; implemented by each transport.
///
/// A settler that is dropped without being called must make the delivery available again (as a
/// nack does), at the latest when its subscription ends.
#[async_trait]
pub trait Settle: Send + Sync + fmt::Debug {
    /// The consumer is done with the message: it is not delivered to this group again.
    async fn ack(self: Box<Self>) -> BrokerResult<()>;
    /// The consumer gives the message back: it is delivered again to a member of the group.
    async fn nack(self: Box<Self>) -> BrokerResult<()>;
    /// The consumer still works on the message: a transport that redelivers unsettled messages
    /// after a timeout (NATS' `ack_wait`) starts that timeout again. Nothing elsewhere.
    async fn in_progress(&self) -> BrokerResult<()> {
        Ok(())
    }
}

/// One message handed to one consumer, to be acked or nacked.
///
/// Dropping a delivery without settling it counts as a nack.
#[derive(Debug)]
pub struct Delivery {
    payload: Vec<u8>,
    settle: Box<dyn Settle>,
}

impl Delivery {
    /// A delivery of `payload`, settled through `settle`.
    pub fn new(payload: Vec<u8>, settle: Box<dyn Settle>) -> Self {
        Self { payload, settle }
    }

    /// The message's bytes, as published.
    pub fn payload(&self) -> &[u8] {
        &self.payload
    }

    /// Takes the message's bytes, keeping the right to settle it.
    pub fn into_parts(self) -> (Vec<u8>, Pending) {
        (
            self.payload,
            Pending {
                settle: self.settle,
            },
        )
    }

    /// Acknowledges the message: this group will not get it again.
    pub async fn ack(self) -> BrokerResult<()> {
        self.settle.ack().await
    }

    /// Gives the message back for redelivery to a member of this group.
    pub async fn nack(self) -> BrokerResult<()> {
        self.settle.nack().await
    }
}

/// A delivery whose payload was taken with [`Delivery::into_parts`]; still to be settled.
#[derive(Debug)]
pub struct Pending {
    settle: Box<dyn Settle>,
}

impl Pending {
    /// Acknowledges the message (see [`Delivery::ack`]).
    pub async fn ack(self) -> BrokerResult<()> {
        self.settle.ack().await
    }

    /// Gives the message back (see [`Delivery::nack`]).
    pub async fn nack(self) -> BrokerResult<()> {
        self.settle.nack().await
    }

    /// Says the message is still being worked on, so that it is not redelivered meanwhile (see
    /// [`Settle::in_progress`]).
    pub async fn in_progress(&self) -> BrokerResult<()> {
        self.settle.in_progress().await
    }
}

/// The deliveries of one consumer of one group, as a stream.
///
/// Connection losses are recovered inside the stream: it never ends because a broker restarted.
/// An `Err` item means the subscription failed for good (e.g. the broker was closed, or the topic
/// was deleted) and is the last item. Dropping the subscription ends the consumer; its deliveries
/// that are not yet settled go back to the group.
pub struct Subscription {
    topic: String,
    group: String,
    deliveries: Pin<Box<dyn Stream<Item = BrokerResult<Delivery>> + Send>>,
}

impl Subscription {
    /// Wraps a transport's stream of deliveries for `topic` and `group`.
    pub fn new(
        topic: impl Into<String>,
        group: impl Into<String>,
        deliveries: impl Stream<Item = BrokerResult<Delivery>> + Send + 'static,
    ) -> Self {
        Self {
            topic: topic.into(),
            group: group.into(),
            deliveries: Box::pin(deliveries),
        }
    }

    /// The topic this subscription reads.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// The group this consumer belongs to.
    pub fn group(&self) -> &str {
        &self.group
    }
}

impl fmt::Debug for Subscription {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Subscription")
            .field("topic", &self.topic)
            .field("group", &self.group)
            .finish_non_exhaustive()
    }
}

impl Stream for Subscription {
    type Item = BrokerResult<Delivery>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.deliveries.as_mut().poll_next(cx)
    }
}

/// A message broker: publish bytes to a topic, consume a topic as a member of a group.
#[async_trait]
pub trait Broker: Send + Sync + fmt::Debug {
    /// Publishes `payload` to `topic`, returning once the broker has accepted it (publisher
    /// confirm or ack). While the broker is unreachable it waits, up to the transport's publish
    /// timeout, then fails with [`ErrorKind::Timeout`] or [`ErrorKind::Unavailable`].
    async fn publish(&self, topic: &str, payload: Vec<u8>) -> BrokerResult<()>;

    /// Joins `group` on `topic` and returns its deliveries. Returns once the subscription is
    /// established: every message published after that reaches the group.
    async fn subscribe(&self, topic: &str, group: &str) -> BrokerResult<Subscription>;

    /// Like [`Broker::subscribe`], for a group the caller promises has a single consumer at a
    /// time (a worker's inbox, its broadcast group). Transports may then skip the coordination
    /// of competing consumers (Kafka assigns partitions directly instead of joining a consumer
    /// group); two such consumers of one group may both receive a message.
    async fn subscribe_sole(&self, topic: &str, group: &str) -> BrokerResult<Subscription> {
        self.subscribe(topic, group).await
    }

    /// Ends every subscription and background task of this broker and closes its connections.
    /// Later calls fail with [`ErrorKind::Unavailable`].
    async fn close(&self) -> BrokerResult<()>;
}

/// Checks a topic name: dot-separated segments of ASCII letters, digits and `-`, at most 200
/// bytes (`pikoci.worker.3f2a`). Every transport can use such a name as it is.
pub fn validate_topic(topic: &str) -> BrokerResult<()> {
    let valid = !topic.is_empty()
        && topic.len() <= 200
        && topic.split('.').all(|segment| {
            !segment.is_empty()
                && segment
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        });
    if valid {
        Ok(())
    } else {
        Err(BrokerError::new(
            ErrorKind::InvalidInput,
            format!(
                "invalid topic name \"{topic}\": use dot-separated segments of letters, digits \
                 and '-', at most 200 bytes"
            ),
        ))
    }
}

/// Checks a group name: ASCII letters, digits, `-` and `_`, at most 100 bytes.
pub fn validate_group(group: &str) -> BrokerResult<()> {
    let valid = !group.is_empty()
        && group.len() <= 100
        && group
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if valid {
        Ok(())
    } else {
        Err(BrokerError::new(
            ErrorKind::InvalidInput,
            format!(
                "invalid group name \"{group}\": use letters, digits, '-' and '_', at most 100 \
                 bytes"
            ),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topic_names() {
        for ok in ["pikoci.events", "pikoci.worker.3f2a-b", "a"] {
            assert!(validate_topic(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            ".a",
            "a.",
            "a..b",
            "a_b",
            "a b",
            "a*",
            "a>",
            &"x".repeat(201),
        ] {
            let err = validate_topic(bad).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::InvalidInput, "{bad}");
        }
    }

    #[test]
    fn group_names() {
        for ok in ["pikoci-server", "worker_1", "W-2"] {
            assert!(validate_group(ok).is_ok(), "{ok}");
        }
        for bad in ["", "a.b", "a b", "a/b", &"x".repeat(101)] {
            let err = validate_group(bad).unwrap_err();
            assert_eq!(err.kind(), ErrorKind::InvalidInput, "{bad}");
        }
    }

    #[test]
    fn error_keeps_kind_message_and_source() {
        let io = std::io::Error::other("connection refused");
        let err = BrokerError::new(ErrorKind::Unavailable, "failed to reach nats").with_source(io);
        assert_eq!(err.kind(), ErrorKind::Unavailable);
        assert_eq!(err.to_string(), "failed to reach nats");
        let source = std::error::Error::source(&err).map(ToString::to_string);
        assert_eq!(source.as_deref(), Some("connection refused"));
    }
}
