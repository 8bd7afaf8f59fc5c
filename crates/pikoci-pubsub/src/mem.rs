//! The in-process broker, for a server that runs its worker inside it (`--pubsub-system mem`).
//!
//! Every group of a topic has a queue; publishing appends to the queue of every group that
//! exists. Consumers of a group take from its queue. A delivery that is nacked or dropped goes back
//! to its place in the queue (ordered by publication), so order is kept per topic and group except
//! around redeliveries. Nothing survives the process.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use async_trait::async_trait;
use pikoci_core::broker::{
    Broker, BrokerResult, Delivery, Settle, Subscription, validate_group, validate_topic,
};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::task::Tasks;

/// How errors name this transport ("the in-memory broker is closed").
const TRANSPORT: &str = "in-memory";

/// The in-process broker. Clones share the same topics: hand one to the server and one to the
/// embedded worker.
#[derive(Debug, Clone, Default)]
pub struct MemBroker {
    shared: Arc<Shared>,
}

#[derive(Debug, Default)]
struct Shared {
    /// Topic name -> group name -> group.
    topics: Mutex<HashMap<String, HashMap<String, Arc<Group>>>>,
    /// Closed with the broker (no task is spawned: subscriptions wait on its token).
    tasks: Tasks,
}

#[derive(Debug, Default)]
struct Group {
    state: Mutex<GroupState>,
    /// Woken on every message made available to the group.
    available: Notify,
}

#[derive(Debug, Default)]
struct GroupState {
    ready: VecDeque<Message>,
    in_flight: HashMap<u64, Message>,
    next_tag: u64,
    next_seq: u64,
}

#[derive(Debug, Clone)]
struct Message {
    seq: u64,
    payload: Arc<[u8]>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // The state stays consistent across a panic in another consumer: every critical section is a
    // handful of collection operations that cannot leave it half-updated.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl MemBroker {
    /// A new broker with no topics.
    pub fn new() -> Self {
        Self::default()
    }

    fn group(&self, topic: &str, group: &str) -> Arc<Group> {
        let mut topics = lock(&self.shared.topics);
        let groups = topics.entry(topic.to_owned()).or_default();
        Arc::clone(groups.entry(group.to_owned()).or_default())
    }
}

impl GroupState {
    /// Puts a message back where it was published, so redeliveries keep the publication order.
    fn requeue(&mut self, message: Message) {
        let at = self
            .ready
            .partition_point(|queued| queued.seq < message.seq);
        self.ready.insert(at, message);
    }
}

#[async_trait]
impl Broker for MemBroker {
    async fn publish(&self, topic: &str, payload: Vec<u8>) -> BrokerResult<()> {
        validate_topic(topic)?;
        self.shared
            .tasks
            .check_open(TRANSPORT, || format!("publish to topic \"{topic}\""))?;
        let payload: Arc<[u8]> = payload.into();
        let topics = lock(&self.shared.topics);
        for group in topics.get(topic).into_iter().flat_map(HashMap::values) {
            let mut state = lock(&group.state);
            let seq = state.next_seq;
            state.next_seq += 1;
            state.ready.push_back(Message {
                seq,
                payload: Arc::clone(&payload),
            });
            drop(state);
            group.available.notify_waiters();
        }
        Ok(())
    }

    async fn subscribe(&self, topic: &str, group: &str) -> BrokerResult<Subscription> {
        validate_topic(topic)?;
        validate_group(group)?;
        self.shared
            .tasks
            .check_open(TRANSPORT, || format!("subscribe to topic \"{topic}\""))?;
        let state = self.group(topic, group);
        let closed = self.shared.tasks.token().clone();
        let deliveries = futures::stream::unfold((state, closed), |(group, closed)| async move {
            let delivery = next_delivery(&group, &closed).await?;
            Some((Ok(delivery), (group, closed)))
        });
        Ok(Subscription::new(topic, group, deliveries))
    }

    async fn close(&self) -> BrokerResult<()> {
        self.shared.tasks.close().await;
        lock(&self.shared.topics).clear();
        Ok(())
    }
}

/// Waits for the next message of `group`; `None` once the broker is closed.
async fn next_delivery(group: &Arc<Group>, closed: &CancellationToken) -> Option<Delivery> {
    loop {
        let available = group.available.notified();
        tokio::pin!(available);
        // Registered before looking at the queue, so a publish in between still wakes us.
        available.as_mut().enable();
        if closed.is_cancelled() {
            return None;
        }
        {
            let mut state = lock(&group.state);
            if let Some(message) = state.ready.pop_front() {
                let tag = state.next_tag;
                state.next_tag += 1;
                let payload = message.payload.to_vec();
                state.in_flight.insert(tag, message);
                let settle = MemSettle {
                    group: Arc::clone(group),
                    tag,
                    settled: false,
                };
                return Some(Delivery::new(payload, Box::new(settle)));
            }
        }
        tokio::select! {
            () = &mut available => {}
            () = closed.cancelled() => return None,
        }
    }
}

/// Settles one in-memory delivery; dropping it unsettled puts the message back.
#[derive(Debug)]
struct MemSettle {
    group: Arc<Group>,
    tag: u64,
    settled: bool,
}

impl MemSettle {
    fn give_back(&mut self) {
        self.settled = true;
        let mut state = lock(&self.group.state);
        if let Some(message) = state.in_flight.remove(&self.tag) {
            state.requeue(message);
            drop(state);
            self.group.available.notify_waiters();
        }
    }
}

#[async_trait]
impl Settle for MemSettle {
    async fn ack(mut self: Box<Self>) -> BrokerResult<()> {
        self.settled = true;
        lock(&self.group.state).in_flight.remove(&self.tag);
        Ok(())
    }

    async fn nack(mut self: Box<Self>) -> BrokerResult<()> {
        self.give_back();
        Ok(())
    }
}

impl Drop for MemSettle {
    fn drop(&mut self) {
        if !self.settled {
            self.give_back();
        }
    }
}

#[cfg(test)]
mod tests {
    use futures::StreamExt;
    use pikoci_core::ErrorKind;

    use super::*;

    #[tokio::test]
    async fn redeliveries_keep_publication_order() {
        let broker = MemBroker::new();
        let mut sub = broker.subscribe("t", "g").await.unwrap();
        for n in 0..3u8 {
            broker.publish("t", vec![n]).await.unwrap();
        }
        let first = sub.next().await.unwrap().unwrap();
        let second = sub.next().await.unwrap().unwrap();
        second.nack().await.unwrap();
        first.nack().await.unwrap();
        let mut seen = Vec::new();
        for _ in 0..3 {
            let delivery = sub.next().await.unwrap().unwrap();
            seen.push(delivery.payload()[0]);
            delivery.ack().await.unwrap();
        }
        assert_eq!(seen, [0, 1, 2]);
    }

    #[tokio::test]
    async fn close_ends_subscriptions_and_refuses_publishes() {
        let broker = MemBroker::new();
        let mut sub = broker.subscribe("t", "g").await.unwrap();
        let waiting = tokio::spawn(async move { sub.next().await.is_none() });
        broker.close().await.unwrap();
        assert!(
            waiting.await.unwrap(),
            "the subscription ends when the broker closes"
        );
        let err = broker.publish("t", b"x".to_vec()).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Unavailable);
        assert_eq!(
            err.to_string(),
            "failed to publish to topic \"t\": the in-memory broker is closed"
        );
    }
}
