//! What one server keeps in memory between loops: the dispatcher's wake-up, the log
//! notifications, the reasons pending builds wait, checks in flight per worker, the health of
//! the event consumers, and the builds whose end waits for their log chunks.
//!
//! None of it is needed for correctness across servers (the store is the ground truth, cancel
//! deadlines included); it is lost on restart, and reasons are recomputed on the next dispatch
//! round.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use chrono::{DateTime, Utc};
use pikoci_core::protocol::{BuildRef, CheckRef, WorkRef};
use pikoci_core::store::BuildId;
use tokio::sync::{Notify, Semaphore, broadcast, watch};
use tokio_util::sync::CancellationToken;

/// Locks a mutex, going on after a panic elsewhere: every critical section is a few map
/// operations that cannot leave the map half-updated.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// How many `(work, worker)` pairs already told to abort are remembered (so a lost worker's
/// flood of log events gets one `abort`, not one per event).
const ABORTED_MEMORY: usize = 4096;

/// How many `build_finished` may wait for their log chunks at once: half the broker's default
/// prefetch (16), so that the deliveries they hold never stop the consumer from receiving the
/// chunks they wait for.
pub(crate) const MAX_WAITING_FINISHES: usize = 8;

/// How many live pages the streams of one server render at once: many open pages wait their
/// turn rather than crowd out the rest of the server.
pub(crate) const LIVE_RENDERS: usize = 4;

/// The two consumers whose health [`Runtime::requeue_allowed`] depends on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Consumer {
    /// `pikoci.events`.
    Events,
    /// `pikoci.heartbeats`.
    Heartbeats,
}

#[derive(Debug, Default)]
struct Health {
    events: bool,
    heartbeats: bool,
    /// Since when both consumers have been healthy without a break.
    healthy_since: Option<DateTime<Utc>>,
}

/// The in-memory state of one server.
#[derive(Debug)]
pub(crate) struct Runtime {
    /// A unique id of this server process (`boot_id` of what it publishes).
    pub(crate) boot_id: String,
    /// Wakes the dispatcher (a stored permit: a wake-up during a round is not lost).
    pub(crate) wake: Notify,
    /// Build ids whose log chunks this server stored.
    pub(crate) logs: broadcast::Sender<BuildId>,
    /// Counts the changes this server made that live pages show (builds, jobs, pipelines,
    /// resources, workers coming): a page's stream renders again when it moves.
    pub(crate) changes: watch::Sender<u64>,
    /// Cancelled when the server stops: live pages' streams end (their browsers reconnect to
    /// another server, or to this one once it is back).
    pub(crate) stopping: CancellationToken,
    /// Turns to render a live page (see `ui::live`).
    pub(crate) live_renders: Arc<Semaphore>,
    /// Why each pending build is not running, as the last dispatch round saw it.
    pub(crate) reasons: Mutex<HashMap<BuildId, String>>,
    /// How many checks each worker runs at once, as its latest heartbeat read here says.
    pub(crate) check_slots: Mutex<HashMap<String, usize>>,
    /// Checks sent to each worker and not finished yet, with when they were sent.
    pub(crate) checks: Mutex<HashMap<String, HashMap<CheckRef, DateTime<Utc>>>>,
    /// Workers that rejected work, left out of dispatch until the time given.
    pub(crate) cooldown: Mutex<HashMap<String, DateTime<Utc>>>,
    /// Stale work each sender was already told to abort.
    aborted: Mutex<HashSet<(WorkRef, String)>>,
    /// Failed handlings of a message, by `msg_id` (a message that keeps failing is dropped).
    pub(crate) failures: Mutex<HashMap<String, u32>>,
    health: Mutex<Health>,
    /// When the newest probe of this server that it read back from `pikoci.heartbeats` was
    /// sent (see [`Runtime::read_probe`]).
    heartbeats_read: Mutex<Option<DateTime<Utc>>>,
    /// Builds whose lease lapsed and whose worker this server told to abort them, with when.
    pub(crate) revoked: Mutex<HashMap<BuildRef, DateTime<Utc>>>,
    /// Permits to hold a `build_finished` until the build's log chunks are stored: each one
    /// held keeps a delivery unsettled, which the broker counts against the consumer's
    /// prefetch (see [`MAX_WAITING_FINISHES`]).
    pub(crate) waiting_finishes: Arc<Semaphore>,
}

impl Runtime {
    /// A fresh state.
    pub(crate) fn new() -> Runtime {
        Runtime {
            boot_id: uuid::Uuid::now_v7().to_string(),
            wake: Notify::new(),
            logs: broadcast::channel(1024).0,
            changes: watch::channel(0).0,
            stopping: CancellationToken::new(),
            live_renders: Arc::new(Semaphore::new(LIVE_RENDERS)),
            reasons: Mutex::new(HashMap::new()),
            check_slots: Mutex::new(HashMap::new()),
            checks: Mutex::new(HashMap::new()),
            cooldown: Mutex::new(HashMap::new()),
            aborted: Mutex::new(HashSet::new()),
            failures: Mutex::new(HashMap::new()),
            health: Mutex::new(Health::default()),
            heartbeats_read: Mutex::new(None),
            revoked: Mutex::new(HashMap::new()),
            waiting_finishes: Arc::new(Semaphore::new(MAX_WAITING_FINISHES)),
        }
    }

    /// Records whether a consumer works (it is subscribed and its last message was handled).
    pub(crate) fn set_health(&self, consumer: Consumer, ok: bool, now: DateTime<Utc>) {
        let mut health = lock(&self.health);
        match consumer {
            Consumer::Events => health.events = ok,
            Consumer::Heartbeats => health.heartbeats = ok,
        }
        if health.events && health.heartbeats {
            health.healthy_since.get_or_insert(now);
        } else {
            health.healthy_since = None;
        }
    }

    /// Whether both consumers are subscribed and healthy.
    pub(crate) fn consumers_healthy(&self) -> bool {
        let health = lock(&self.health);
        health.events && health.heartbeats
    }

    /// Whether lapsed leases may be taken back: the consumers have been healthy for `grace`
    /// (so that workers had time to heartbeat since the server started or recovered).
    pub(crate) fn requeue_allowed(&self, now: DateTime<Utc>, grace: std::time::Duration) -> bool {
        let grace = chrono::Duration::from_std(grace).unwrap_or(chrono::Duration::MAX);
        lock(&self.health)
            .healthy_since
            .is_some_and(|since| now - since >= grace)
    }

    /// Records one of this server's probes read back from `pikoci.heartbeats`, sent at
    /// `sent_at`: the heartbeats the broker took before it were delivered first (to this
    /// server, or to another of the group).
    pub(crate) fn read_probe(&self, sent_at: DateTime<Utc>) {
        let mut read = lock(&self.heartbeats_read);
        if read.is_none_or(|until| until < sent_at) {
            *read = Some(sent_at);
        }
    }

    /// The time before which a lapsed lease may be taken back: `now`, or earlier when the
    /// heartbeats are not read up to now (a worker's heartbeat may wait in the broker, unread,
    /// to renew it). `None` until this server read a probe.
    pub(crate) fn lapsed_before(&self, now: DateTime<Utc>) -> Option<DateTime<Utc>> {
        lock(&self.heartbeats_read).map(|read| read.min(now))
    }

    /// Whether `sender` should be told to abort `work` (the first time only).
    pub(crate) fn first_abort(&self, work: WorkRef, sender: &str) -> bool {
        let mut aborted = lock(&self.aborted);
        if aborted.len() >= ABORTED_MEMORY {
            aborted.clear();
        }
        aborted.insert((work, sender.to_owned()))
    }

    /// Wakes the dispatcher.
    pub(crate) fn poke(&self) {
        self.wake.notify_one();
    }

    /// Tells live pages that something they show changed.
    pub(crate) fn changed(&self) {
        self.changes
            .send_modify(|count| *count = count.wrapping_add(1));
    }
}
