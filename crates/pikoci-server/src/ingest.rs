//! The consumers of `pikoci.events` and `pikoci.heartbeats`: decode every delivery, hand it to
//! its handler, and settle it. A message that cannot be understood (malformed, an unknown type,
//! a newer protocol version) is logged and acked: it would fail the same way every time. A
//! message is acked only once the store has what it says; a store error nacks it (redelivered
//! after a pause), and a message that failed [`MAX_FAILURES`] times is dropped with an error log
//! so that it cannot block its topic forever. A `build_finished` that counts log chunks the
//! store does not have yet is held, unsettled, until they are stored (a chunk taken by a
//! server that died comes back later than the messages after it, on NATS), for at most
//! `log_patience`: a build is marked finished with its whole log. Besides, the prober: a [`Message::Probe`] to
//! `pikoci.heartbeats` every `dispatch_interval`, read back to learn how far the heartbeats
//! were delivered (leases are taken back only behind it).

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use pikoci_core::ErrorKind;
use pikoci_core::broker::{Delivery, Subscription};
use pikoci_core::protocol::auth::KeyScope;
use pikoci_core::protocol::{self, BuildRef, Decoded, Envelope, Message, topics};
use pikoci_core::store::{RunningBuild, StoreResult};
use tokio::sync::{OwnedSemaphorePermit, broadcast};
use tokio_util::sync::CancellationToken;

use crate::keys::Refused;
use crate::state::{Consumer, MAX_WAITING_FINISHES, lock};
use crate::{Server, ServerError, ServerResult};

/// How many times one message may fail before it is dropped.
const MAX_FAILURES: u32 = 20;

/// The longest pause after a failure (store or broker) before going on.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// Subscribes both topics, then spawns the consumers, the prober and the dispatcher.
pub(crate) async fn start(
    server: &Server,
    shutdown: CancellationToken,
) -> ServerResult<tokio::task::JoinSet<()>> {
    let broker = &server.inner.broker;
    let subscribe = |topic: &'static str| async move {
        broker
            .subscribe(topic, topics::SERVER_GROUP)
            .await
            .map_err(|err| {
                ServerError::new(
                    err.kind(),
                    format!("failed to subscribe to topic \"{topic}\": {err}"),
                )
            })
    };
    let events = subscribe(topics::EVENTS).await?;
    let heartbeats = subscribe(topics::HEARTBEATS).await?;
    let now = server.now();
    let runtime = &server.inner.runtime;
    runtime.set_health(Consumer::Events, true, now);
    runtime.set_health(Consumer::Heartbeats, true, now);
    let mut tasks = tokio::task::JoinSet::new();
    tasks.spawn(consume(
        server.clone(),
        Consumer::Heartbeats,
        heartbeats,
        shutdown.child_token(),
    ));
    tasks.spawn(consume(
        server.clone(),
        Consumer::Events,
        events,
        shutdown.child_token(),
    ));
    tasks.spawn(crate::dispatch::run(server.clone(), shutdown.child_token()));
    tasks.spawn(probe(server.clone(), shutdown.child_token()));
    tracing::info!(server = %server.inner.config.server_id, "server loops started");
    Ok(tasks)
}

fn topic_of(consumer: Consumer) -> &'static str {
    match consumer {
        Consumer::Events => topics::EVENTS,
        Consumer::Heartbeats => topics::HEARTBEATS,
    }
}

/// Reads one subscription until shutdown, subscribing again when it fails.
async fn consume(
    server: Server,
    consumer: Consumer,
    mut subscription: Subscription,
    shutdown: CancellationToken,
) {
    let topic = topic_of(consumer);
    let mut backoff = Duration::from_millis(100);
    // Build ends held until their log chunks are stored; aborted (their deliveries given back)
    // when this consumer stops.
    let mut held = tokio::task::JoinSet::new();
    loop {
        while held.try_join_next().is_some() {}
        let next = tokio::select! {
            () = shutdown.cancelled() => return,
            next = subscription.next() => next,
        };
        match next {
            Some(Ok(delivery)) => {
                if server.settle(consumer, delivery, &mut held).await {
                    backoff = Duration::from_millis(100);
                } else if !pause(&shutdown, &mut backoff).await {
                    return;
                }
            }
            failure => {
                let error = match failure {
                    Some(Err(err)) => err.to_string(),
                    _ => "the subscription ended".to_owned(),
                };
                server.inner.metrics.broker_error("consume");
                tracing::warn!(topic, %error, "lost the subscription; subscribing again");
                server
                    .inner
                    .runtime
                    .set_health(consumer, false, server.now());
                subscription = loop {
                    if !pause(&shutdown, &mut backoff).await {
                        return;
                    }
                    match server
                        .inner
                        .broker
                        .subscribe(topic, topics::SERVER_GROUP)
                        .await
                    {
                        Ok(subscription) => break subscription,
                        Err(err) => {
                            server.inner.metrics.broker_error("subscribe");
                            tracing::warn!(topic, error = %err, "failed to subscribe again")
                        }
                    }
                };
                server
                    .inner
                    .runtime
                    .set_health(consumer, true, server.now());
            }
        }
    }
}

/// How often a `build_finished` waiting for its log chunks counts them again (a chunk another
/// server stores wakes nothing here).
const LOG_RECOUNT: Duration = Duration::from_millis(500);

/// How often a held `build_finished` extends its build's lease (shorter than the 15 s lease a
/// late heartbeat may set) and tells the broker it is in progress (NATS redelivers a message
/// unacked for `ack_wait`, 30 s).
const HOLD_EVERY: Duration = Duration::from_secs(10);

/// How long publishing one probe may take before the next one is due instead.
const PROBE_PATIENCE: Duration = Duration::from_secs(5);

/// Publishes a [`Message::Probe`] to `pikoci.heartbeats` every `dispatch_interval` until
/// shutdown: reading it back tells this server how far the heartbeats were delivered.
async fn probe(server: Server, shutdown: CancellationToken) {
    let mut tick = tokio::time::interval(server.inner.config.dispatch_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            _ = tick.tick() => {}
        }
        let envelope = server.envelope(Message::Probe {});
        let bytes = match server
            .sign(&KeyScope::Server, topics::HEARTBEATS, &envelope)
            .await
        {
            Ok(bytes) => bytes,
            Err(err) => {
                tracing::error!(error = %err, "cannot encode a probe; leases that lapse from now on are not taken back");
                continue;
            }
        };
        let published = tokio::select! {
            () = shutdown.cancelled() => return,
            published = tokio::time::timeout(
                PROBE_PATIENCE,
                server.inner.broker.publish(topics::HEARTBEATS, bytes),
            ) => published,
        };
        match published {
            Ok(Ok(())) => {}
            Ok(Err(err)) => {
                server.inner.metrics.broker_error("publish");
                tracing::warn!(error = %err, "cannot publish a probe; leases that lapse from now on wait until one is read back")
            }
            Err(_) => {
                tracing::warn!(patience = ?PROBE_PATIENCE, "publishing a probe takes too long; leases that lapse from now on wait until one is read back")
            }
        }
    }
}

/// Sleeps `backoff` (then doubles it, up to [`MAX_BACKOFF`]); false on shutdown.
async fn pause(shutdown: &CancellationToken, backoff: &mut Duration) -> bool {
    let sleep = *backoff;
    *backoff = (*backoff * 2).min(MAX_BACKOFF);
    tokio::select! {
        () = shutdown.cancelled() => false,
        () = tokio::time::sleep(sleep) => true,
    }
}

impl Server {
    /// Handles one delivery and settles it; false when it was given back (a store error).
    async fn settle(
        &self,
        consumer: Consumer,
        delivery: Delivery,
        held: &mut tokio::task::JoinSet<()>,
    ) -> bool {
        let topic = topic_of(consumer);
        let (payload, pending) = delivery.into_parts();
        let verified = match self.verify(topic, &payload).await {
            Ok(verified) => verified,
            Err(Refused::Store(err)) => {
                tracing::warn!(topic, error = %err, "cannot read the key a message is signed with; it will be delivered again");
                if let Err(err) = pending.nack().await {
                    self.inner.metrics.broker_error("nack");
                    tracing::warn!(topic, error = %err, "failed to give a message back");
                }
                return false;
            }
            Err(refused) => {
                self.inner.metrics.refused_message();
                tracing::warn!(topic, error = %refused, "dropping a message");
                self.ack(pending).await;
                return true;
            }
        };
        let envelope = match verified.decoded {
            Ok(Decoded::Message(envelope)) => envelope,
            Ok(Decoded::Unknown { type_name, sender }) => {
                tracing::warn!(topic, r#type = %type_name, %sender, "ignoring a message of an unknown type (a newer worker?)");
                self.ack(pending).await;
                return true;
            }
            Ok(Decoded::Newer {
                version,
                type_name,
                sender,
            }) => {
                tracing::warn!(topic, version, r#type = %type_name, %sender, "ignoring a message of a newer protocol version: upgrade this server");
                self.ack(pending).await;
                return true;
            }
            Err(err) => {
                tracing::warn!(topic, error = %err, "ignoring a malformed message");
                self.ack(pending).await;
                return true;
            }
        };
        match self.refusal(&verified.scope, &envelope).await {
            Ok(None) => {}
            Ok(Some(why)) => {
                self.inner.metrics.refused_message();
                tracing::warn!(topic, r#type = envelope.message.type_name(), sender = %envelope.sender, %why, "dropping a message");
                self.ack(pending).await;
                return true;
            }
            Err(err) => {
                tracing::warn!(topic, error = %err, "cannot check who sent a message; it will be delivered again");
                if let Err(err) = pending.nack().await {
                    self.inner.metrics.broker_error("nack");
                    tracing::warn!(topic, error = %err, "failed to give a message back");
                }
                return false;
            }
        }
        if consumer == Consumer::Events
            && let Message::BuildFinished {
                build,
                log_chunks: Some(sent),
                ..
            } = envelope.message
            // A store error here is the handler's to meet.
            && self.awaits_log_chunks(build, sent).await.unwrap_or(false)
        {
            match Arc::clone(&self.inner.runtime.waiting_finishes).try_acquire_owned() {
                Ok(permit) => {
                    held.spawn(self.clone().finish_after_logs(
                        envelope,
                        pending,
                        (build, sent),
                        permit,
                    ));
                    return true;
                }
                Err(_) => {
                    tracing::warn!(build = %build.build_id, attempt = build.attempt, waiting = MAX_WAITING_FINISHES, "too many builds wait for their log chunks; this one finishes without waiting");
                }
            }
        }
        self.settle_event(consumer, &envelope, pending).await
    }

    /// Whether a `build_finished` of `build` that counts `sent` log chunks should wait for
    /// some: the build still runs that attempt (a stale attempt's chunks are not stored, and
    /// its end changes nothing) and the store has fewer.
    async fn awaits_log_chunks(&self, build: BuildRef, sent: u64) -> StoreResult<bool> {
        let stored = self.inner.store.build(build.build_id).await?;
        if stored.dispatch.attempt != build.attempt || stored.status.is_finished() {
            return Ok(false);
        }
        Ok(self.stored_log_chunks(build).await? < sent)
    }

    /// Holds a `build_finished` that arrived before some of the `sent` log chunks of `build`
    /// it counts, unsettled, until the store has them all (or the build ended otherwise, or
    /// moved on) or `log_patience` ran out, then handles it; the consumer goes on meanwhile.
    /// Aborted when the consumer stops: the delivery then goes back to the broker, for another
    /// server or the next start.
    async fn finish_after_logs(
        self,
        envelope: Box<Envelope>,
        pending: pikoci_core::broker::Pending,
        (build, sent): (BuildRef, u64),
        _permit: OwnedSemaphorePermit,
    ) {
        let patience = self.inner.config.log_patience;
        tracing::info!(build = %build.build_id, attempt = build.attempt, sent, ?patience, "a build's end arrived before all its log chunks; waiting for them");
        let deadline = tokio::time::Instant::now() + patience;
        // Its first tick is at once.
        let mut hold = tokio::time::interval(HOLD_EVERY);
        hold.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut stored_here = self.inner.runtime.logs.subscribe();
        loop {
            // Woken by a chunk of this build stored here; another server's is seen on a recount.
            let chunk_stored = async {
                loop {
                    match stored_here.recv().await {
                        Ok(id) if id == build.build_id => return,
                        Ok(_) => {}
                        Err(broadcast::error::RecvError::Lagged(_)) => return,
                        Err(broadcast::error::RecvError::Closed) => {
                            std::future::pending::<()>().await;
                        }
                    }
                }
            };
            tokio::select! {
                () = tokio::time::sleep_until(deadline) => break,
                () = chunk_stored => {}
                () = tokio::time::sleep(LOG_RECOUNT) => {}
                _ = hold.tick() => {
                    self.keep_held(&envelope.sender, build, &pending, deadline).await;
                }
            }
            match self.awaits_log_chunks(build, sent).await {
                Ok(true) => {}
                Ok(false) => break,
                Err(err) if err.kind() == ErrorKind::NotFound => break,
                // The chunks may still come: count again at the next turn.
                Err(err) => {
                    tracing::debug!(build = %build.build_id, error = %err, "cannot count a build's log chunks")
                }
            }
        }
        self.settle_event(Consumer::Events, &envelope, pending)
            .await;
    }

    /// Keeps a held build end from being undone meanwhile: the build's lease is extended past
    /// `deadline` (its worker stopped listing it in heartbeats once it sent its end, and a
    /// heartbeat that still listed it, read late, may have shortened it), and the broker is
    /// told the message is in progress (NATS would redeliver it after `ack_wait`).
    async fn keep_held(
        &self,
        worker: &str,
        build: BuildRef,
        pending: &pikoci_core::broker::Pending,
        deadline: tokio::time::Instant,
    ) {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let until = self.now()
            + chrono::Duration::from_std(left + self.inner.config.lease)
                .unwrap_or(chrono::Duration::MAX);
        let running = RunningBuild {
            build_id: build.build_id,
            attempt: build.attempt,
        };
        if let Err(err) = self
            .inner
            .store
            .renew_leases(worker, &[running], until)
            .await
        {
            tracing::warn!(build = %build.build_id, error = %err, "cannot extend the lease of a build whose end waits for its log chunks; it may be taken back meanwhile");
        }
        if let Err(err) = pending.in_progress().await {
            tracing::debug!(error = %err, "cannot tell the broker a build's end is still held");
        }
    }

    /// Handles a decoded message and settles its delivery; false when it was given back.
    async fn settle_event(
        &self,
        consumer: Consumer,
        envelope: &Envelope,
        pending: pikoci_core::broker::Pending,
    ) -> bool {
        let topic = topic_of(consumer);
        let outcome = self.handle(consumer, envelope).await;
        let runtime = &self.inner.runtime;
        match outcome {
            Ok(()) => {
                runtime.set_health(consumer, true, self.now());
                lock(&runtime.failures).remove(&envelope.msg_id);
                self.ack(pending).await;
                true
            }
            Err(err)
                if matches!(
                    err.kind(),
                    ErrorKind::InvalidInput
                        | ErrorKind::NotFound
                        | ErrorKind::Unsupported
                        | ErrorKind::PermissionDenied
                ) =>
            {
                // Delivering it again cannot help: the message does not fit the store (a build
                // deleted meanwhile, a value it refuses). Store and consumer are healthy.
                // (`Conflict` stays retried: the store reports deadlocks and serialization
                // failures as conflicts.)
                tracing::error!(topic, msg_id = %envelope.msg_id, r#type = envelope.message.type_name(), sender = %envelope.sender, error = %err, "dropping a message the store refuses");
                lock(&runtime.failures).remove(&envelope.msg_id);
                self.ack(pending).await;
                true
            }
            Err(err) => {
                runtime.set_health(consumer, false, self.now());
                let failures = {
                    let mut failures = lock(&runtime.failures);
                    if failures.len() > 10_000 {
                        failures.clear();
                    }
                    let count = failures.entry(envelope.msg_id.clone()).or_insert(0);
                    *count += 1;
                    *count
                };
                if failures >= MAX_FAILURES {
                    tracing::error!(topic, msg_id = %envelope.msg_id, r#type = envelope.message.type_name(), sender = %envelope.sender, error = %err, failures, "dropping a message that keeps failing");
                    lock(&runtime.failures).remove(&envelope.msg_id);
                    self.ack(pending).await;
                } else {
                    tracing::warn!(topic, msg_id = %envelope.msg_id, r#type = envelope.message.type_name(), error = %err, "a message could not be handled; it will be delivered again");
                    if let Err(err) = pending.nack().await {
                        self.inner.metrics.broker_error("nack");
                        tracing::warn!(topic, error = %err, "failed to give a message back");
                    }
                }
                false
            }
        }
    }

    /// Routes a message to its handler. Messages meant for workers are ignored.
    async fn handle(&self, consumer: Consumer, envelope: &Envelope) -> StoreResult<()> {
        match &envelope.message {
            Message::Heartbeat(heartbeat) => self.on_heartbeat(envelope, heartbeat).await,
            Message::Probe {} => {
                // Only the heartbeat topic's order says anything about the heartbeats, and only
                // this server's own probes are stamped by its clock.
                let runtime = &self.inner.runtime;
                if consumer == Consumer::Heartbeats
                    && envelope.sender == self.inner.config.server_id
                    && envelope.boot_id == runtime.boot_id
                {
                    runtime.read_probe(protocol::from_ms(envelope.sent_at_ms));
                }
                Ok(())
            }
            Message::Assign(_)
            | Message::AssignCheck(_)
            | Message::Cancel { .. }
            | Message::Abort { .. }
            | Message::Leases { .. } => {
                tracing::warn!(r#type = envelope.message.type_name(), sender = %envelope.sender, "ignoring a message meant for workers");
                Ok(())
            }
            _ => self.on_event(envelope).await,
        }
    }
}

impl Server {
    async fn ack(&self, pending: pikoci_core::broker::Pending) {
        if let Err(err) = pending.ack().await {
            self.inner.metrics.broker_error("ack");
            tracing::warn!(error = %err, "failed to ack a message");
        }
    }
}
