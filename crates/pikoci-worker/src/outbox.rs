//! Publishing: the envelope every message of this worker gets, publishing that retries, and the
//! outbox of one piece of work, which keeps its messages in order and batches its logs.
//!
//! Each piece of work has one outbox: an unbounded channel feeding one task, so the engine's
//! [`EventSink::emit`] never waits for the broker, and messages about one build reach the broker
//! in the order they happened. The task takes what comes in (logs batched, each message encoded
//! in its envelope) into a [`Queue`] while it publishes the queue's oldest message, retried with
//! backoff while the broker refuses it. The queue holds at most [`OUTBOX_MEMORY_BYTES`] in
//! memory and appends the rest to a spill file under `<work_dir>/outbox` (see `spill`), removed
//! when the outbox ends: a slow or absent broker costs disk, not memory, and drops nothing. A
//! spill that fails stops the build, which then ends `errored`, naming the file and the error.
//! Nothing survives the process: a worker that starts removes the spill files left behind.

use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use pikoci_core::broker::Broker;
use pikoci_core::engine::{Event, EventSink};
use pikoci_core::protocol::auth::MacKey;
use pikoci_core::protocol::{Envelope, Message, Outcome, VERSION, WorkRef, topics};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::work::WorkStop;
use batch::LogBatcher;
use queue::Queue;
use spill::{SpillError, spill_dir};

mod batch;
mod queue;
mod spill;
#[cfg(test)]
mod tests;

/// The most bytes of messages an outbox holds in memory; the rest waits in its spill file.
pub const OUTBOX_MEMORY_BYTES: usize = 1024 * 1024;

/// Log lines of a step are published at least this often.
pub(crate) const LOG_FLUSH_INTERVAL: Duration = Duration::from_millis(250);

/// A step's log batch is published once it holds this many bytes.
pub(crate) const LOG_BATCH_BYTES: usize = 64 * 1024;

/// The first wait after a refused publish; doubled on each refusal up to [`MAX_BACKOFF`].
const FIRST_BACKOFF: Duration = Duration::from_millis(100);

/// The longest wait between two attempts to publish a message.
const MAX_BACKOFF: Duration = Duration::from_secs(5);

/// Publishes messages as this worker.
#[derive(Debug, Clone)]
pub(crate) struct Publisher {
    broker: Arc<dyn Broker>,
    worker: Arc<str>,
    boot_id: Arc<str>,
    token: Arc<MacKey>,
}

impl Publisher {
    pub(crate) fn new(
        broker: Arc<dyn Broker>,
        worker: &str,
        boot_id: &str,
        token: MacKey,
    ) -> Publisher {
        Publisher {
            broker,
            worker: worker.into(),
            boot_id: boot_id.into(),
            token: Arc::new(token),
        }
    }

    /// `message` in this worker's envelope, with a new id and the current time.
    pub(crate) fn envelope(&self, message: Message) -> Envelope {
        Envelope {
            v: VERSION,
            msg_id: uuid::Uuid::now_v7().to_string(),
            sender: self.worker.to_string(),
            boot_id: self.boot_id.to_string(),
            sent_at_ms: now_ms(),
            message,
        }
    }

    /// Publishes `envelope` once; the error says what failed.
    pub(crate) async fn publish_once(
        &self,
        topic: &str,
        envelope: &Envelope,
    ) -> Result<(), String> {
        let bytes = self
            .token
            .encode(topic, envelope)
            .map_err(|e| e.to_string())?;
        self.broker
            .publish(topic, bytes)
            .await
            .map_err(|e| e.full_message())
    }

    /// Publishes `message` on `topic`, retrying with backoff until the broker takes it. Returns
    /// `false` when `stop` fired first (the message is then dropped). A message that cannot be
    /// encoded (a bug, or too large) is logged and dropped: retrying would not help.
    pub(crate) async fn publish(
        &self,
        topic: &str,
        message: Message,
        stop: &CancellationToken,
    ) -> bool {
        match self.encode(topic, message) {
            Some(bytes) => self.publish_encoded(topic, bytes, stop).await,
            None => true,
        }
    }

    /// `message` in its envelope, encoded and signed for `topic`; `None` (logged) when it
    /// cannot be sent.
    fn encode(&self, topic: &str, message: Message) -> Option<Vec<u8>> {
        let type_name = message.type_name();
        self.token
            .encode(topic, &self.envelope(message))
            .inspect_err(|error| {
                tracing::error!(kind = type_name, %error, "dropping a message that cannot be sent");
            })
            .ok()
    }

    /// Publishes an encoded message like [`Publisher::publish`].
    async fn publish_encoded(&self, topic: &str, bytes: Vec<u8>, stop: &CancellationToken) -> bool {
        let mut backoff = FIRST_BACKOFF;
        loop {
            if stop.is_cancelled() {
                return false;
            }
            let attempt = tokio::select! {
                () = stop.cancelled() => return false,
                attempt = self.broker.publish(topic, bytes.clone()) => attempt,
            };
            match attempt {
                Ok(()) => return true,
                Err(error) => {
                    tracing::warn!(
                        topic,
                        error = %error.full_message(),
                        retry_in = ?backoff,
                        "the broker refused a message; retrying"
                    );
                    tokio::select! {
                        () = stop.cancelled() => return false,
                        () = tokio::time::sleep(backoff) => {}
                    }
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
    }
}

/// Milliseconds since the Unix epoch, now.
pub(crate) fn now_ms() -> i64 {
    to_ms(SystemTime::now())
}

/// `at` in milliseconds since the Unix epoch.
pub(crate) fn to_ms(at: SystemTime) -> i64 {
    at.duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}

/// What goes through an outbox.
#[derive(Debug)]
enum Item {
    /// A message, sent as it is.
    Message(Message),
    /// An engine event of a build, converted (logs batched); stamped when it was emitted.
    Event(Event, SystemTime),
}

/// The ordered outbox of one piece of work. Dropping every handle (the outbox and its build
/// sinks) flushes what is left and ends the publishing task.
#[derive(Debug, Clone)]
pub(crate) struct Outbox {
    items: mpsc::UnboundedSender<Item>,
    silence: CancellationToken,
}

impl Outbox {
    /// An outbox for `work`, spilling under `work_dir`, published by a task of `tracker`, which
    /// returns once everything sent is published (or `stop.silence` fired: then the rest is
    /// dropped). A spill that fails fires `stop.cancel` of a build.
    pub(crate) fn start(
        publisher: Publisher,
        work: WorkRef,
        stop: &WorkStop,
        work_dir: &Path,
        tracker: &TaskTracker,
    ) -> (Outbox, tokio::task::JoinHandle<()>) {
        let label = match work {
            WorkRef::Build(b) => format!("build-{}-{}", b.build_id, b.attempt),
            WorkRef::Check(c) => format!("check-{}-{}", c.resource_id, c.attempt),
        };
        let queue = Queue::new(OUTBOX_MEMORY_BYTES, spill_dir(work_dir), label);
        Outbox::start_with(publisher, work, stop, queue, tracker)
    }

    fn start_with(
        publisher: Publisher,
        work: WorkRef,
        stop: &WorkStop,
        queue: Queue,
        tracker: &TaskTracker,
    ) -> (Outbox, tokio::task::JoinHandle<()>) {
        let (items, received) = mpsc::unbounded_channel();
        let task = tracker.spawn(publish_in_order(
            publisher,
            work,
            received,
            stop.clone(),
            queue,
        ));
        let silence = stop.silence.clone();
        (Outbox { items, silence }, task)
    }

    /// Queues `message`.
    pub(crate) fn send(&self, message: Message) {
        if !self.silence.is_cancelled() {
            // Fails only once the task ended, that is once the work was silenced.
            let _ = self.items.send(Item::Message(message));
        }
    }

    /// An event sink feeding this outbox, for a build's engine.
    pub(crate) fn build_sink(&self) -> BuildSink {
        BuildSink {
            outbox: self.clone(),
        }
    }
}

/// Removes the spill files a worker that stopped or died left under `work_dir`; logs what it
/// did, or why it could not (that is not fatal: the files only take disk space).
pub(crate) fn remove_leftover_spills(work_dir: &Path) {
    let dir = spill_dir(work_dir);
    match spill::remove_leftovers(&dir) {
        Ok(0) => {}
        Ok(removed) => {
            tracing::info!(dir = %dir.display(), removed, "removed outbox spill files left by an earlier run")
        }
        Err(error) => {
            tracing::warn!(%error, "cannot remove outbox spill files left by an earlier run")
        }
    }
}

/// The engine's sink for a build: queues events without waiting.
#[derive(Debug)]
pub(crate) struct BuildSink {
    outbox: Outbox,
}

impl EventSink for BuildSink {
    fn emit(&self, event: Event) {
        if !self.outbox.silence.is_cancelled() {
            let _ = self
                .outbox
                .items
                .send(Item::Event(event, SystemTime::now()));
        }
    }
}

/// A message being published.
type Sending<'a> = Pin<Box<dyn Future<Output = bool> + Send + 'a>>;

/// The task of one outbox: takes in what is sent while it publishes the oldest message queued.
async fn publish_in_order(
    publisher: Publisher,
    work: WorkRef,
    mut received: mpsc::UnboundedReceiver<Item>,
    stop: WorkStop,
    mut queue: Queue,
) {
    let gauge = queue.gauge();
    let mut intake = Intake {
        publisher: &publisher,
        work,
        batcher: match work {
            WorkRef::Build(build) => Some(LogBatcher::new(build)),
            WorkRef::Check(_) => None,
        },
        stop: &stop,
        failure: None,
        end_queued: false,
        logs_queued: 0,
    };
    let mut flush = tokio::time::interval(LOG_FLUSH_INTERVAL);
    flush.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut sending: Option<Sending<'_>> = None;
    let mut open = true;
    loop {
        if sending.is_none() {
            match queue.front().await {
                Ok(Some(bytes)) => {
                    let publish = publisher.publish_encoded(topics::EVENTS, bytes, &stop.silence);
                    sending = Some(Box::pin(publish));
                }
                Ok(None) if !open => break,
                Ok(None) => {}
                Err(error) => {
                    intake.on_lost(error, &mut queue).await;
                    continue;
                }
            }
        }
        // The tick goes first: a flood of events never delays a flush. Publishing goes before
        // taking in, which never waits for it.
        let messages = tokio::select! {
            biased;
            () = stop.silence.cancelled() => break,
            _ = flush.tick() => intake.flush(),
            published = in_flight(&mut sending) => {
                sending = None;
                if !published {
                    break;
                }
                queue.pop();
                continue;
            }
            item = received.recv(), if open => match item {
                Some(item) => intake.convert(item),
                None => {
                    open = false;
                    intake.flush()
                }
            },
        };
        intake.queue(messages, &mut queue).await;
    }
    if gauge.spilled() > 0 {
        tracing::info!(%work, spilled_bytes = gauge.spilled(), peak_memory_bytes = gauge.peak_memory(), "outbox done; its spill file is removed");
    }
}

/// Waits for the message being published, if any.
async fn in_flight(sending: &mut Option<Sending<'_>>) -> bool {
    match sending {
        Some(publish) => publish.await,
        None => std::future::pending().await,
    }
}

/// What an outbox's task takes in: items become encoded messages in its queue.
struct Intake<'a> {
    publisher: &'a Publisher,
    work: WorkRef,
    batcher: Option<LogBatcher>,
    stop: &'a WorkStop,
    /// Why the build's messages could not all be kept: its end says so.
    failure: Option<String>,
    /// Whether the build's `build_finished` was queued.
    end_queued: bool,
    /// The `log` messages queued so far: `build_finished` tells the server to wait for them.
    logs_queued: u64,
}

impl Intake<'_> {
    fn convert(&mut self, item: Item) -> Vec<Message> {
        match item {
            Item::Message(message) => vec![message],
            Item::Event(event, at) => match self.batcher.as_mut() {
                Some(batcher) => batcher.on_event(event, at),
                None => Vec::new(),
            },
        }
    }

    fn flush(&mut self) -> Vec<Message> {
        self.batcher
            .as_mut()
            .map(|batcher| batcher.flush_all(SystemTime::now()))
            .unwrap_or_default()
    }

    async fn queue(&mut self, messages: Vec<Message>, queue: &mut Queue) {
        for mut message in messages {
            let log = matches!(message, Message::Log { .. });
            if let Message::BuildFinished {
                outcome,
                error,
                log_chunks,
                ..
            } = &mut message
            {
                self.end_queued = true;
                *log_chunks = Some(self.logs_queued);
                if let Some(failure) = &self.failure {
                    *outcome = Outcome::Errored;
                    *error = Some(failure.clone());
                    // Messages were lost: the count would keep the server waiting in vain.
                    *log_chunks = None;
                }
            }
            let Some(bytes) = self.publisher.encode(topics::EVENTS, message) else {
                continue;
            };
            match queue.push(bytes).await {
                Ok(()) => self.logs_queued += u64::from(log),
                Err(error) => self.fail(&error),
            }
        }
    }

    /// The spill failed: the build is stopped (its end will say why), so that its output does
    /// not grow the worker's memory without bound.
    fn fail(&mut self, error: &SpillError) {
        tracing::error!(work = %self.work, %error, "the outbox cannot spill to disk");
        if let WorkRef::Build(_) = self.work
            && self.failure.is_none()
        {
            self.failure = Some(format!(
                "{error}; the build was stopped so that its output would not fill the worker's \
                 memory while the broker is behind: check the disk of the worker's work directory"
            ));
            self.stop.cancel.cancel();
        }
    }

    /// Messages in the spill were lost: when the build's end may have been among them, a new
    /// one says so. (Frames read before the damage may still be queued, so an empty queue is
    /// no sign; a second end is harmless, the server takes the first.)
    async fn on_lost(&mut self, error: SpillError, queue: &mut Queue) {
        self.fail(&error);
        if let WorkRef::Build(build) = self.work
            && self.end_queued
        {
            let end = Message::BuildFinished {
                build,
                outcome: Outcome::Errored,
                error: None,
                at_ms: now_ms(),
                log_chunks: None,
            };
            self.queue(vec![end], queue).await;
        }
    }
}
