//! The worker loop: the inbox, heartbeats, leases, and the work it holds.

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use pikoci_core::broker::{Broker, BrokerResult, Delivery};
use pikoci_core::engine::{NativeChecks, Runner};
use pikoci_core::protocol::{
    self, Assign, AssignCheck, Decoded, Heartbeat, Message, WorkRef, auth, topics,
};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use pikoci_secrets::sealed::WorkerKey;

use crate::config::{WorkerConfig, WorkerError, WorkerStop};
use crate::outbox::Publisher;
use crate::work::{Context, Done, WorkStop, run_build, run_check};

/// An assignment whose lease lapsed more than this long ago (by this machine's clock) is
/// refused: the server has taken the build back. The margin absorbs clock differences between
/// the server's machine and this one.
const STALE_ASSIGNMENT_MS: i64 = 30_000;

/// How many ended pieces of work are remembered, so that a redelivered assignment of one of
/// them is not run again.
const REMEMBERED_ENDED: usize = 1024;

/// How many sent heartbeats are remembered, to match the broker's confirmations and the
/// servers' lease replies.
const REMEMBERED_HEARTBEATS: usize = 64;

/// A worker: takes builds and checks from its inbox on the broker, runs them with the engine,
/// and reports everything back. See the crate documentation for its rules.
#[derive(Debug)]
pub struct Worker {
    broker: Arc<dyn Broker>,
    runner: Arc<dyn Runner>,
    native: Option<Arc<dyn NativeChecks>>,
    config: WorkerConfig,
    key: WorkerKey,
}

impl Worker {
    /// A worker talking through `broker`, running commands with `runner`, and checking the
    /// resources `native` knows natively. Fails when `config` is invalid.
    pub fn new(
        broker: Arc<dyn Broker>,
        runner: Arc<dyn Runner>,
        native: Option<Arc<dyn NativeChecks>>,
        config: WorkerConfig,
    ) -> Result<Worker, WorkerError> {
        config.check()?;
        Ok(Worker {
            broker,
            runner,
            native,
            config,
            // Made anew by every worker process, kept in memory only: the server seals the
            // secret store's values to its public half.
            key: WorkerKey::generate(),
        })
    }

    /// Runs until `stop` says so (or the broker ends a subscription for good: then the work
    /// running is aborted and the error returned). Returns once nothing it started runs any
    /// more and every work directory it made is removed.
    pub async fn run(self, stop: WorkerStop) -> Result<(), WorkerError> {
        let id = self.config.id.clone();
        std::fs::create_dir_all(&self.config.work_dir).map_err(|source| WorkerError::WorkDir {
            path: self.config.work_dir.clone(),
            source,
        })?;
        crate::outbox::remove_leftover_spills(&self.config.work_dir);
        let group = topics::worker_group(&id);
        let inbox = subscribe(&*self.broker, &topics::worker(&id), &group).await?;
        let broadcast = subscribe(&*self.broker, topics::BROADCAST, &group).await?;
        let boot_id = uuid::Uuid::now_v7().to_string();
        tracing::info!(worker = %id, boot = %boot_id, slots = self.config.slots, "worker started");
        let tracker = TaskTracker::new();
        let context = Arc::new(Context {
            publisher: Publisher::new(
                self.broker.clone(),
                &id,
                &boot_id,
                self.config.token.clone(),
            ),
            runner: self.runner,
            native: self.native,
            config: self.config,
            key: self.key,
            tracker: tracker.clone(),
        });
        let (ended_tx, ended) = mpsc::unbounded_channel();
        let (heartbeats_tx, heartbeats) = mpsc::channel(1);
        let (published_tx, published) = mpsc::unbounded_channel();
        tracker.spawn(publish_heartbeats(
            context.publisher.clone(),
            heartbeats,
            published_tx,
        ));
        let mut state = State {
            context,
            held: BTreeMap::new(),
            ended_tx,
            ended_recently: VecDeque::new(),
            ended_set: HashSet::new(),
            sent_heartbeats: VecDeque::new(),
            heartbeats: heartbeats_tx,
            draining: false,
            quit: CancellationToken::new(),
        };
        let inbox_topic: Arc<str> = topics::worker(&id).into();
        let broadcast_topic: Arc<str> = topics::BROADCAST.into();
        let deliveries = futures::stream::select(
            inbox.map(move |delivery| (inbox_topic.clone(), delivery)),
            broadcast.map(move |delivery| (broadcast_topic.clone(), delivery)),
        );
        let result = state.run_loop(deliveries, ended, published, &stop).await;
        state.quit.cancel();
        let State {
            heartbeats,
            context,
            ..
        } = state;
        drop(heartbeats);
        drop(context);
        tracker.close();
        tracker.wait().await;
        tracing::info!(worker = %id, "worker stopped");
        result
    }
}

async fn subscribe(
    broker: &dyn Broker,
    topic: &str,
    group: &str,
) -> Result<pikoci_core::broker::Subscription, WorkerError> {
    broker
        .subscribe_sole(topic, group)
        .await
        .map_err(|source| WorkerError::Broker {
            what: format!("cannot subscribe to topic \"{topic}\" as group \"{group}\""),
            source,
        })
}

/// Publishes the heartbeats the loop makes, one at a time, never again after a failure (the
/// next one is due soon; the broker client's own retries aside), so that a slow broker never
/// holds up the loop. Sends back the id of each one the broker confirmed it keeps.
async fn publish_heartbeats(
    publisher: Publisher,
    mut heartbeats: mpsc::Receiver<protocol::Envelope>,
    published: mpsc::UnboundedSender<String>,
) {
    while let Some(envelope) = heartbeats.recv().await {
        match publisher.publish_once(topics::HEARTBEATS, &envelope).await {
            Ok(()) => {
                let _ = published.send(envelope.msg_id);
            }
            Err(error) => tracing::warn!(%error, "cannot publish a heartbeat"),
        }
    }
}

/// A piece of work the worker holds.
#[derive(Debug)]
struct Held {
    stop: WorkStop,
    /// When the newest heartbeat listing it that the broker kept (or whose answer renewed its
    /// lease) was sent, or when it was accepted.
    confirmed: Instant,
    /// Aborted: still stopping, but no longer reported as running.
    aborted: bool,
}

/// A heartbeat this worker sent.
struct SentHeartbeat {
    /// Its `msg_id`.
    id: String,
    /// When it was sent.
    at: Instant,
    /// The work it listed.
    running: Vec<WorkRef>,
}

struct State {
    context: Arc<Context>,
    held: BTreeMap<WorkRef, Held>,
    ended_tx: mpsc::UnboundedSender<WorkRef>,
    ended_recently: VecDeque<WorkRef>,
    ended_set: HashSet<WorkRef>,
    /// Heartbeats sent, oldest first.
    sent_heartbeats: VecDeque<SentHeartbeat>,
    heartbeats: mpsc::Sender<protocol::Envelope>,
    draining: bool,
    /// Fired when the loop ended: rejections still retrying give up.
    quit: CancellationToken,
}

impl State {
    async fn run_loop(
        &mut self,
        mut deliveries: impl futures::Stream<Item = (Arc<str>, BrokerResult<Delivery>)> + Unpin,
        mut ended: mpsc::UnboundedReceiver<WorkRef>,
        mut published: mpsc::UnboundedReceiver<String>,
        stop: &WorkerStop,
    ) -> Result<(), WorkerError> {
        let mut heartbeat = tokio::time::interval(self.context.config.heartbeat_interval);
        heartbeat.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut stopping_now = false;
        let mut failure: Option<WorkerError> = None;
        loop {
            if self.draining && self.held.is_empty() {
                break;
            }
            let lease_deadline = self.next_lease_deadline();
            tokio::select! {
                biased;
                () = stop.now.cancelled(), if !stopping_now => {
                    stopping_now = true;
                    self.draining = true;
                    tracing::info!(running = self.held.len(), "stopping now: aborting the work running");
                    self.abort_all("the worker is stopping now");
                }
                () = stop.drain.cancelled(), if !self.draining => {
                    self.draining = true;
                    tracing::info!(running = self.held.len(), "draining: finishing the work running, taking no more");
                    self.send_heartbeat();
                    heartbeat.reset();
                }
                Some(work) = ended.recv() => self.ended(work),
                Some(heartbeat) = published.recv() => self.confirm(&heartbeat),
                () = sleep_until(lease_deadline), if lease_deadline.is_some() => self.fence_unconfirmed(),
                _ = heartbeat.tick() => self.send_heartbeat(),
                delivery = deliveries.next(), if failure.is_none() => match delivery {
                    Some((topic, Ok(delivery))) => self.handle(&topic, delivery),
                    Some((_, Err(source))) => {
                        tracing::error!(error = %source.full_message(), "the inbox failed: aborting the work running");
                        failure = Some(WorkerError::Broker { what: "the worker's inbox failed".to_owned(), source });
                        self.draining = true;
                        self.abort_all("the worker lost its inbox");
                    }
                    None => {
                        tracing::error!("the broker ended the inbox: aborting the work running");
                        failure = Some(WorkerError::Broker {
                            what: "the worker's inbox ended".to_owned(),
                            source: pikoci_core::broker::BrokerError::new(
                                pikoci_core::ErrorKind::Unavailable,
                                "the broker closed the subscription",
                            ),
                        });
                        self.draining = true;
                        self.abort_all("the worker lost its inbox");
                    }
                },
            }
        }
        match failure {
            Some(error) => Err(error),
            None => Ok(()),
        }
    }

    /// Handles one delivery from `topic`, acking it whatever it holds. What is not signed with
    /// this worker's token is dropped.
    fn handle(&mut self, topic: &str, delivery: Delivery) {
        let (payload, pending) = delivery.into_parts();
        let verified = auth::Signed::read(&payload)
            .and_then(|signed| signed.verify(&self.context.config.token, topic));
        match verified.map(protocol::decode) {
            Err(error) => {
                tracing::warn!(topic, %error, "dropping a message not signed with this worker's token");
            }
            Ok(decoded) => self.on_decoded(decoded),
        }
        self.context.tracker.spawn(async move {
            if let Err(error) = pending.ack().await {
                tracing::warn!(error = %error.full_message(), "cannot ack a message; it may come again");
            }
        });
    }

    fn on_decoded(&mut self, decoded: Result<Decoded, protocol::ProtocolError>) {
        match decoded {
            Ok(Decoded::Message(envelope)) => self.on_message(envelope.message),
            Ok(Decoded::Unknown { type_name, sender }) => {
                tracing::warn!(kind = %type_name, %sender, "ignoring a message of a type this worker does not know");
            }
            Ok(Decoded::Newer {
                version,
                type_name,
                sender,
            }) => {
                tracing::warn!(version, kind = %type_name, %sender, "ignoring a message of a newer protocol version: upgrade this worker");
            }
            Err(error) => tracing::warn!(%error, "ignoring a malformed message"),
        }
    }

    fn on_message(&mut self, message: Message) {
        match message {
            Message::Assign(assign) => self.on_assign(*assign),
            Message::AssignCheck(assign) => self.on_assign_check(*assign),
            Message::Cancel { build } => match self.held.get(&WorkRef::Build(build)) {
                Some(held) if !held.aborted => {
                    tracing::info!(build = %build.build_id, attempt = build.attempt, "cancelling build");
                    held.stop.cancel.cancel();
                }
                _ => {
                    tracing::debug!(build = %build.build_id, "ignoring a cancel of a build this worker does not run")
                }
            },
            Message::Abort { work, reason } => self.abort(work, &reason),
            Message::Leases {
                heartbeat,
                renewed,
                lost,
                ..
            } => self.on_leases(&heartbeat, &renewed, &lost),
            other => {
                tracing::debug!(
                    kind = other.type_name(),
                    "ignoring a message meant for servers"
                );
            }
        }
    }

    fn on_assign(&mut self, assign: Assign) {
        let work = WorkRef::Build(assign.build);
        if self.is_known(work) {
            return;
        }
        let refusal = self.refusal(work, &assign.snapshot.team, Some(assign.lease_until_ms));
        if let Some(reason) = refusal {
            self.reject(work, reason);
            return;
        }
        tracing::info!(build = %assign.build.build_id, attempt = assign.build.attempt, job = %assign.snapshot.job, pipeline = %assign.snapshot.pipeline, "build accepted");
        let stop = self.hold(work);
        let done = self.done(work);
        self.context
            .tracker
            .spawn(run_build(self.context.clone(), assign, stop, done));
    }

    fn on_assign_check(&mut self, assign: AssignCheck) {
        let work = WorkRef::Check(assign.check);
        if self.is_known(work) {
            return;
        }
        let refusal = self.refusal(work, &assign.snapshot.team, None);
        if let Some(reason) = refusal {
            self.reject(work, reason);
            return;
        }
        tracing::info!(resource = %assign.snapshot.resource, attempt = assign.check.attempt, pipeline = %assign.snapshot.pipeline, "check accepted");
        let stop = self.hold(work);
        let done = self.done(work);
        self.context
            .tracker
            .spawn(run_check(self.context.clone(), assign, stop, done));
    }

    /// Why this worker will not take `work` of `team` (an assignment whose lease lapsed long
    /// ago, draining, another team, no free slot for builds or checks), if it will not.
    fn refusal(&self, work: WorkRef, team: &str, lease_until_ms: Option<i64>) -> Option<String> {
        let late_ms =
            lease_until_ms.map_or(0, |until| crate::outbox::now_ms().saturating_sub(until));
        if late_ms > STALE_ASSIGNMENT_MS {
            // A redelivery of an old assignment (a durable inbox after a restart): the server
            // took the build back long ago and may run it elsewhere.
            return Some(format!(
                "the assignment's lease lapsed {} s before it arrived",
                late_ms / 1000
            ));
        }
        if self.draining {
            return Some("worker is draining".to_owned());
        }
        if let Some(own) = self
            .context
            .config
            .serving_team()
            .filter(|own| *own != team)
        {
            return Some(format!(
                "this worker serves team \"{own}\" only, not \"{team}\""
            ));
        }
        let is_build = matches!(work, WorkRef::Build(_));
        let running = self
            .held
            .keys()
            .filter(|w| matches!(w, WorkRef::Build(_)) == is_build)
            .count();
        if is_build {
            let slots = self.context.config.slots as usize;
            (running >= slots).then(|| format!("no free slot ({running} of {slots} in use)"))
        } else {
            let room = self.context.config.check_slots as usize;
            (running >= room).then(|| format!("too many checks running ({running} of {room})"))
        }
    }

    /// Whether `work` runs or ran here: a redelivered assignment is not run again.
    fn is_known(&self, work: WorkRef) -> bool {
        let known = self.held.contains_key(&work) || self.ended_set.contains(&work);
        if known {
            tracing::debug!(%work, "ignoring a repeated assignment");
        }
        known
    }

    fn hold(&mut self, work: WorkRef) -> WorkStop {
        let stop = WorkStop::default();
        self.held.insert(
            work,
            Held {
                stop: stop.clone(),
                confirmed: Instant::now(),
                aborted: false,
            },
        );
        stop
    }

    fn done(&self, work: WorkRef) -> Done {
        Done {
            ended: self.ended_tx.clone(),
            work,
        }
    }

    fn reject(&self, work: WorkRef, reason: String) {
        tracing::info!(%work, %reason, "work rejected");
        let publisher = self.context.publisher.clone();
        let quit = self.quit.clone();
        self.context.tracker.spawn(async move {
            publisher
                .publish(topics::EVENTS, Message::Rejected { work, reason }, &quit)
                .await;
        });
    }

    fn ended(&mut self, work: WorkRef) {
        self.held.remove(&work);
        if self.ended_set.insert(work) {
            self.ended_recently.push_back(work);
            if self.ended_recently.len() > REMEMBERED_ENDED
                && let Some(oldest) = self.ended_recently.pop_front()
            {
                self.ended_set.remove(&oldest);
            }
        }
    }

    fn abort(&mut self, work: WorkRef, reason: &str) {
        match self.held.get_mut(&work) {
            Some(held) if !held.aborted => {
                tracing::warn!(%work, %reason, "aborting work");
                held.aborted = true;
                held.stop.abort();
            }
            _ => tracing::debug!(%work, "ignoring an abort of work this worker does not run"),
        }
    }

    fn abort_all(&mut self, reason: &str) {
        let running: Vec<WorkRef> = self.held.keys().copied().collect();
        for work in running {
            self.abort(work, reason);
        }
    }

    /// The broker kept `heartbeat`: the leases of the builds it lists hold from when it was
    /// sent. Whatever server reads it renews them, no server takes a lease back before its
    /// probes show the heartbeats queued ahead of them delivered (see
    /// [`protocol::Message::Probe`]), and a server tells the worker to abort a build before it
    /// takes it back, so builds go on while no server answers (one restarting, or none running
    /// at all). Checks, short, still need a server's renewal. Work already past its deadline
    /// stays stopped.
    fn confirm(&mut self, heartbeat: &str) {
        let Some(sent) = self.sent_heartbeats.iter().find(|h| h.id == heartbeat) else {
            return;
        };
        let (window, now) = (self.lease_window(), Instant::now());
        for work in &sent.running {
            if !matches!(work, WorkRef::Build(_)) {
                continue;
            }
            if let Some(held) = self.held.get_mut(work)
                && held.confirmed + window > now
            {
                held.confirmed = held.confirmed.max(sent.at);
            }
        }
    }

    fn on_leases(&mut self, heartbeat: &str, renewed: &[WorkRef], lost: &[WorkRef]) {
        // A renewal counts from the heartbeat it answers: a late reply extends nothing.
        let sent = self
            .sent_heartbeats
            .iter()
            .find(|h| h.id == heartbeat)
            .map(|h| h.at);
        match sent {
            Some(sent) => {
                for work in renewed {
                    if let Some(held) = self.held.get_mut(work) {
                        held.confirmed = held.confirmed.max(sent);
                    }
                }
            }
            None => {
                tracing::debug!(%heartbeat, "ignoring renewals answering a heartbeat this worker did not send")
            }
        }
        for work in lost {
            self.abort(
                *work,
                "the server says this work is no longer this worker's",
            );
        }
    }

    /// How long a lease holds without a confirmation (a heartbeat the broker kept, or a
    /// renewal): one heartbeat less than the servers wait, so that the work stops before any
    /// server hands it to another worker.
    fn lease_window(&self) -> Duration {
        let config = &self.context.config;
        config
            .lease_timeout
            .saturating_sub(config.heartbeat_interval)
    }

    fn next_lease_deadline(&self) -> Option<Instant> {
        let window = self.lease_window();
        self.held
            .values()
            .filter(|held| !held.aborted)
            .map(|held| held.confirmed + window)
            .min()
    }

    fn fence_unconfirmed(&mut self) {
        let window = self.lease_window();
        let now = Instant::now();
        let expired: Vec<WorkRef> = self
            .held
            .iter()
            .filter(|(_, held)| !held.aborted && held.confirmed + window <= now)
            .map(|(work, _)| *work)
            .collect();
        for work in expired {
            tracing::warn!(
                %work,
                window = ?window,
                "neither a heartbeat the broker confirmed nor a server's renewal held this work's lease in time: stopping it so that it never runs twice"
            );
            if let Some(held) = self.held.get_mut(&work) {
                held.aborted = true;
                held.stop.abort();
            }
        }
    }

    fn send_heartbeat(&mut self) {
        let config = &self.context.config;
        let running: Vec<WorkRef> = self
            .held
            .iter()
            .filter(|(_, held)| !held.aborted)
            .map(|(work, _)| *work)
            .collect();
        let envelope = self
            .context
            .publisher
            .envelope(Message::Heartbeat(Heartbeat {
                worker: config.id.clone(),
                team: config.serving_team().map(str::to_owned),
                tags: config.tags.clone(),
                exclusive: config.exclusive_tags,
                slots: config.slots,
                check_slots: Some(config.check_slots),
                running: running.clone(),
                draining: self.draining,
                version: config.version.clone(),
                hostname: config.hostname.clone(),
                sealing_key: Some(self.context.key.public_text()),
            }));
        self.sent_heartbeats.push_back(SentHeartbeat {
            id: envelope.msg_id.clone(),
            at: Instant::now(),
            running,
        });
        if self.sent_heartbeats.len() > REMEMBERED_HEARTBEATS {
            self.sent_heartbeats.pop_front();
        }
        // A heartbeat still being published is enough: the next one is due soon.
        if self.heartbeats.try_send(envelope).is_err() {
            tracing::debug!("a heartbeat is still being published; skipping one");
        }
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}
