//! Kafka consumers: joining a group or assigning partitions directly, and committing offsets as
//! deliveries are acked.

use std::collections::{BTreeSet, HashMap};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use pikoci_core::ErrorKind;
use pikoci_core::broker::{BrokerError, BrokerResult, Delivery, Settle};
use rdkafka::consumer::{
    BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance, StreamConsumer,
};
use rdkafka::message::Message;
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use tokio::sync::{mpsc, oneshot, watch};
use tokio_util::sync::CancellationToken;

use super::{Inner, REQUEST_TIMEOUT, client_config, kafka_error};
use crate::task::{Backoff, DeliveryStream};

/// How long `subscribe` waits for the consumer group to give this member its partitions.
const JOIN_TIMEOUT: Duration = Duration::from_secs(90);

/// How a consumer gets its partitions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Membership {
    /// Joins the consumer group; members share the partitions.
    Group,
    /// Takes every partition itself, without the group protocol.
    Sole,
}

/// Tells the subscription when the group has assigned partitions to this member.
struct RebalanceSignal {
    assignments: watch::Sender<u64>,
}

impl ClientContext for RebalanceSignal {}

impl ConsumerContext for RebalanceSignal {
    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Assign(_) => self.assignments.send_modify(|count| *count += 1),
            Rebalance::Revoke(_) => {}
            Rebalance::Error(err) => tracing::warn!(error = %err, "kafka rebalance failed"),
        }
    }
}

type GroupConsumer = StreamConsumer<RebalanceSignal>;

/// The Kafka consumer group of `group` on `topic`: one per topic, `<group>.<topic>`. A Kafka
/// group spans topics, so one group id for a server's two subscriptions (events and heartbeats)
/// made every member change of one topic rebalance the other; and on tansu, a group whose dead
/// members had subscribed to different topics never assigned the partitions of one of them
/// again (a server killed and restarted could not start: `cargo xtask chaos` found it).
fn group_id(topic: &str, group: &str) -> String {
    format!("{group}.{topic}")
}

/// Creates the consumer, places it at the group's position and starts feeding its deliveries.
pub(super) async fn start(
    inner: &Arc<Inner>,
    topic: &str,
    group: &str,
    membership: Membership,
) -> BrokerResult<DeliveryStream> {
    let (assignments, mut assigned) = watch::channel(0);
    let consumer: GroupConsumer = client_config(&inner.servers)
        .set("group.id", group_id(topic, group))
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set(
            "session.timeout.ms",
            inner.config.kafka_session_timeout.as_millis().to_string(),
        )
        .set("heartbeat.interval.ms", "1000")
        .set("fetch.wait.max.ms", inner.fetch_wait_ms.to_string())
        .set("fetch.message.max.bytes", super::MAX_MESSAGE_BYTES)
        .set("fetch.max.bytes", "33554432")
        .set("receive.message.max.bytes", "34603008")
        .create_with_context(RebalanceSignal { assignments })
        .map_err(|err| {
            kafka_error(
                ErrorKind::Internal,
                format!("failed to create a kafka consumer for group \"{group}\""),
                err,
            )
        })?;
    let consumer = Arc::new(consumer);
    let placed = Arc::clone(&consumer);
    let (topic_owned, group_owned) = (topic.to_owned(), group.to_owned());
    tokio::task::spawn_blocking(move || place(&placed, &topic_owned, &group_owned, membership))
        .await
        .map_err(|err| {
            BrokerError::new(ErrorKind::Internal, "kafka consumer setup panicked").with_source(err)
        })??;

    let (topic_owned, group_owned) = (topic.to_owned(), group.to_owned());
    let buffer = usize::from(inner.config.prefetch);
    let deliveries = inner.tasks.spawn_feed(buffer, move |token, tx| {
        feed(consumer, topic_owned, group_owned, token, tx)
    });
    if membership == Membership::Group {
        let joined =
            tokio::time::timeout(JOIN_TIMEOUT, assigned.wait_for(|count| *count > 0)).await;
        if !matches!(joined, Ok(Ok(_))) {
            return Err(BrokerError::new(
                ErrorKind::Timeout,
                format!(
                    "failed to join kafka consumer group \"{group}\" of topic \"{topic}\" within {JOIN_TIMEOUT:?}"
                ),
            ));
        }
    }
    Ok(deliveries)
}

/// Starts a new group at the end of the topic (so it gets what is published from now on), then
/// joins the group or assigns every partition. Blocking: runs on the blocking pool.
fn place(
    consumer: &GroupConsumer,
    topic: &str,
    group: &str,
    membership: Membership,
) -> BrokerResult<()> {
    let failed = |what: &str, err| {
        kafka_error(
            ErrorKind::Unavailable,
            format!("failed to {what} for kafka group \"{group}\" on topic \"{topic}\""),
            err,
        )
    };
    let metadata = consumer
        .fetch_metadata(Some(topic), REQUEST_TIMEOUT)
        .map_err(|err| failed("read the partitions", err))?;
    let partitions: Vec<i32> = metadata
        .topics()
        .iter()
        .filter(|t| t.name() == topic)
        .flat_map(|t| t.partitions().iter().map(|p| p.id()))
        .collect();
    if partitions.is_empty() {
        return Err(BrokerError::new(
            ErrorKind::NotFound,
            format!("kafka topic \"{topic}\" has no partitions"),
        ));
    }
    let mut wanted = TopicPartitionList::new();
    for &partition in &partitions {
        wanted.add_partition(topic, partition);
    }
    let committed = consumer
        .committed_offsets(wanted, REQUEST_TIMEOUT)
        .map_err(|err| failed("read the committed offsets", err))?;
    let mut start = TopicPartitionList::new();
    let mut seeds = TopicPartitionList::new();
    for element in committed.elements() {
        let offset = match element.offset() {
            Offset::Offset(offset) => offset,
            _ => {
                let (_low, high) = consumer
                    .fetch_watermarks(topic, element.partition(), REQUEST_TIMEOUT)
                    .map_err(|err| failed("read the end of the topic", err))?;
                seeds
                    .add_partition_offset(topic, element.partition(), Offset::Offset(high))
                    .map_err(|err| failed("record the start offsets", err))?;
                high
            }
        };
        start
            .add_partition_offset(topic, element.partition(), Offset::Offset(offset))
            .map_err(|err| failed("record the start offsets", err))?;
    }
    if seeds.count() > 0
        && let Err(err) = consumer.commit(&seeds, CommitMode::Sync)
    {
        // Another member committed first (the group is active): its offsets stand.
        tracing::debug!(%topic, %group, error = %err, "kafka group start offsets not committed");
    }
    match membership {
        Membership::Group => consumer
            .subscribe(&[topic])
            .map_err(|err| failed("join the consumer group", err)),
        Membership::Sole => consumer
            .assign(&start)
            .map_err(|err| failed("assign the partitions", err)),
    }
}

/// What a delivery's settler asks of its consumer's task.
enum Command {
    Ack {
        partition: i32,
        offset: i64,
        done: oneshot::Sender<BrokerResult<()>>,
    },
    Nack {
        partition: i32,
        offset: i64,
    },
}

/// Per partition: the offsets delivered and not acked, to commit only what is done.
#[derive(Debug, Default)]
struct Progress {
    pending: BTreeSet<i64>,
    /// One past the highest offset delivered.
    next: i64,
    committed: i64,
}

impl Progress {
    fn delivered(&mut self, offset: i64) {
        self.pending.insert(offset);
        self.next = self.next.max(offset + 1);
    }

    /// The offset to commit after acking `offset`, if the committable position moved.
    fn acked(&mut self, offset: i64) -> Option<i64> {
        self.pending.remove(&offset);
        let target = self.pending.first().copied().unwrap_or(self.next);
        (target > self.committed).then(|| {
            self.committed = target;
            target
        })
    }

    /// Everything from `offset` on is fetched again.
    fn rewound(&mut self, offset: i64) {
        self.pending.split_off(&offset);
        self.next = self.next.min(offset);
    }
}

async fn feed(
    consumer: Arc<GroupConsumer>,
    topic: String,
    group: String,
    token: CancellationToken,
    tx: mpsc::Sender<BrokerResult<Delivery>>,
) {
    let (commands_tx, mut commands) = mpsc::unbounded_channel();
    let mut progress: HashMap<i32, Progress> = HashMap::new();
    let mut backoff = Backoff::new();
    // A message taken from the consumer and not yet handed over. Acks keep being served while it
    // waits for room: a consumer may hold every buffered delivery and wait for an ack.
    let mut ready: Option<Delivery> = None;
    loop {
        tokio::select! {
            biased;
            () = token.cancelled() => break,
            Some(command) = commands.recv() => settle(&consumer, &topic, &mut progress, command, true),
            permit = tx.reserve(), if ready.is_some() => match (permit, ready.take()) {
                (Ok(permit), Some(delivery)) => permit.send(Ok(delivery)),
                _ => break,
            },
            received = consumer.recv(), if ready.is_none() => match received {
                Ok(message) => {
                    backoff.reset();
                    let (partition, offset) = (message.partition(), message.offset());
                    let payload = message.payload().unwrap_or_default().to_vec();
                    drop(message);
                    progress.entry(partition).or_default().delivered(offset);
                    let settle = KafkaSettle { commands: commands_tx.clone(), partition, offset, settled: false };
                    ready = Some(Delivery::new(payload, Box::new(settle)));
                }
                Err(err) => {
                    tracing::warn!(%topic, %group, error = %err, "kafka consumer error; retrying");
                    if !backoff.wait(&token).await {
                        break;
                    }
                }
            },
        }
    }
    drop(ready);
    // Record the acks that arrived; nacks no longer matter (uncommitted offsets are redelivered).
    commands.close();
    while let Ok(command) = commands.try_recv() {
        settle(&consumer, &topic, &mut progress, command, false);
    }
    // Closing a group member blocks until it has left the group: not on the runtime's threads.
    let _ = tokio::task::spawn_blocking(move || drop(consumer)).await;
}

fn settle(
    consumer: &GroupConsumer,
    topic: &str,
    progress: &mut HashMap<i32, Progress>,
    command: Command,
    running: bool,
) {
    match command {
        Command::Ack {
            partition,
            offset,
            done,
        } => {
            let result = match progress.get_mut(&partition).and_then(|p| p.acked(offset)) {
                None => Ok(()),
                Some(commit) => {
                    let mut offsets = TopicPartitionList::new();
                    offsets
                        .add_partition_offset(topic, partition, Offset::Offset(commit))
                        .and_then(|()| consumer.commit(&offsets, CommitMode::Async))
                        .map_err(|err| {
                            kafka_error(
                                ErrorKind::Unavailable,
                                format!("failed to commit the offset of topic \"{topic}\" partition {partition}"),
                                err,
                            )
                        })
                }
            };
            let _ = done.send(result);
        }
        Command::Nack { partition, offset } if running => {
            if let Some(p) = progress.get_mut(&partition) {
                p.rewound(offset);
            }
            if let Err(err) =
                consumer.seek(topic, partition, Offset::Offset(offset), Duration::ZERO)
            {
                tracing::warn!(%topic, partition, offset, error = %err, "failed to rewind a kafka partition for a nack");
            }
        }
        Command::Nack { .. } => {}
    }
}

/// Settles one Kafka delivery through its consumer's task; dropped unsettled, it nacks.
struct KafkaSettle {
    commands: mpsc::UnboundedSender<Command>,
    partition: i32,
    offset: i64,
    settled: bool,
}

impl fmt::Debug for KafkaSettle {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KafkaSettle")
            .field("partition", &self.partition)
            .field("offset", &self.offset)
            .finish_non_exhaustive()
    }
}

fn subscription_gone() -> BrokerError {
    BrokerError::new(
        ErrorKind::Unavailable,
        "failed to settle a kafka delivery: its subscription has ended (the message is redelivered)",
    )
}

#[async_trait]
impl Settle for KafkaSettle {
    async fn ack(mut self: Box<Self>) -> BrokerResult<()> {
        self.settled = true;
        let (done, result) = oneshot::channel();
        let command = Command::Ack {
            partition: self.partition,
            offset: self.offset,
            done,
        };
        self.commands
            .send(command)
            .map_err(|_| subscription_gone())?;
        result.await.map_err(|_| subscription_gone())?
    }

    async fn nack(mut self: Box<Self>) -> BrokerResult<()> {
        self.settled = true;
        let command = Command::Nack {
            partition: self.partition,
            offset: self.offset,
        };
        self.commands.send(command).map_err(|_| subscription_gone())
    }
}

impl Drop for KafkaSettle {
    fn drop(&mut self) {
        if !self.settled {
            let _ = self.commands.send(Command::Nack {
                partition: self.partition,
                offset: self.offset,
            });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commits_stop_at_the_first_unacked_delivery() {
        let mut p = Progress::default();
        for offset in 0..4 {
            p.delivered(offset);
        }
        assert_eq!(p.acked(1), None, "offset 0 is still pending");
        assert_eq!(p.acked(0), Some(2));
        assert_eq!(p.acked(3), None, "offset 2 is still pending");
        assert_eq!(p.acked(2), Some(4));
    }

    #[test]
    fn a_rewind_never_commits_past_the_nacked_offset() {
        let mut p = Progress::default();
        for offset in 0..3 {
            p.delivered(offset);
        }
        p.rewound(1);
        assert_eq!(p.acked(0), Some(1));
        assert_eq!(
            p.acked(2),
            None,
            "offset 1 comes again and is not acked yet"
        );
        p.delivered(1);
        assert_eq!(p.acked(1), Some(2));
    }
}
