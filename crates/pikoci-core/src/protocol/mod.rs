//! The messages servers and workers exchange over the broker: one versioned JSON envelope per
//! message, defined here and nowhere else.
//!
//! ```json
//! {"v": 1, "type": "heartbeat", "msg_id": "…", "sender": "worker-a", "boot_id": "…",
//!  "sent_at_ms": 1764640000000, …the message's own fields…}
//! ```
//!
//! These wire types are deliberately separate from the engine's [`Event`](crate::engine::Event)s
//! and from the store's rows: either can change without changing what a worker of another
//! release understands. Timestamps are integer milliseconds since the Unix epoch.
//!
//! A consumer decodes with [`decode`]: a message of an unknown type, or from a newer protocol
//! version, comes back as [`Decoded::Unknown`] or [`Decoded::Newer`], to be logged and acked,
//! never a crash or a redelivery loop.

pub mod auth;
mod snapshot;

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub use snapshot::{BuildSnapshot, CheckSnapshot};

use crate::store::{BuildId, ResourceId};

/// The protocol version this release speaks. A message with a higher `v` is refused.
pub const VERSION: u32 = 1;

/// The largest message any transport carries (NATS' default `max_payload`, the smallest limit
/// of the four brokers), signature header included. Senders check it before publishing.
pub const MAX_MESSAGE_BYTES: usize = 1024 * 1024;

/// Topic and group names.
pub mod topics {
    /// Worker → servers: everything about running work. Group [`SERVER_GROUP`].
    pub const EVENTS: &str = "pikoci.events";
    /// Worker → servers: heartbeats only, so that a flood of logs never delays one into a false
    /// "worker lost". Group [`SERVER_GROUP`].
    pub const HEARTBEATS: &str = "pikoci.heartbeats";
    /// Server → every worker (fan-out: one group per worker).
    pub const BROADCAST: &str = "pikoci.broadcast";
    /// The group servers consume [`EVENTS`] and [`HEARTBEATS`] in: each message is handled by
    /// one server.
    pub const SERVER_GROUP: &str = "pikoci-server";

    /// The inbox of one worker: assignments, cancels, lease replies.
    pub fn worker(worker_id: &str) -> String {
        format!("pikoci.worker.{worker_id}")
    }

    /// The group a worker reads its inbox and [`BROADCAST`] in.
    pub fn worker_group(worker_id: &str) -> String {
        format!("pikoci-worker-{worker_id}")
    }
}

/// Checks a worker id: 1 to 64 ASCII letters, digits and `-`, so that it can name a topic on
/// every broker. Returns what is wrong.
pub fn check_worker_id(id: &str) -> Result<(), String> {
    if id.is_empty() || id.len() > 64 {
        return Err(format!(
            "a worker name must be 1 to 64 characters long, not {}",
            id.len()
        ));
    }
    if let Some(bad) = id
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '-'))
    {
        return Err(format!(
            "worker name \"{id}\" contains {bad:?}: use ASCII letters, digits and '-'"
        ));
    }
    Ok(())
}

/// One message with its envelope.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope {
    /// The protocol version the sender speaks ([`VERSION`]).
    pub v: u32,
    /// A unique id of this message (for logs and deduplication).
    pub msg_id: String,
    /// Who sent it: a worker id, or `server-<id>`.
    pub sender: String,
    /// A unique id of the sender's process: changes when the sender restarts.
    pub boot_id: String,
    /// When it was sent, in milliseconds since the Unix epoch.
    pub sent_at_ms: i64,
    /// The message.
    #[serde(flatten)]
    pub message: Message,
}

impl Envelope {
    /// The message's bytes, or why it cannot be sent (too large for the brokers).
    pub fn encode(&self) -> Result<Vec<u8>, ProtocolError> {
        let bytes = serde_json::to_vec(self).map_err(|e| ProtocolError::Encode(e.to_string()))?;
        if bytes.len() > MAX_MESSAGE_BYTES - auth::MAX_HEADER_BYTES {
            return Err(ProtocolError::TooLarge {
                type_name: self.message.type_name(),
                size: bytes.len(),
            });
        }
        Ok(bytes)
    }
}

/// What a consumer got.
#[derive(Debug, Clone, PartialEq)]
pub enum Decoded {
    /// A message this release understands.
    Message(Box<Envelope>),
    /// A message of a type this release does not know (from a newer sender speaking the same
    /// version): log it and ack it.
    Unknown {
        /// Its `type`.
        type_name: String,
        /// Its `sender`.
        sender: String,
    },
    /// A message from a newer protocol version: refused (logged and acked).
    Newer {
        /// Its `v`.
        version: u32,
        /// Its `type`.
        type_name: String,
        /// Its `sender`.
        sender: String,
    },
}

/// Why bytes are not a message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtocolError {
    /// Not a JSON object with `v` and `type`, or a known type with wrong fields.
    #[error("malformed message: {0}")]
    Malformed(String),
    /// Could not be serialized (a bug).
    #[error("cannot encode a message: {0}")]
    Encode(String),
    /// Larger than [`MAX_MESSAGE_BYTES`].
    #[error(
        "a \"{type_name}\" message would be {size} bytes, over the {MAX_MESSAGE_BYTES}-byte limit of the brokers"
    )]
    TooLarge {
        /// The message's type.
        type_name: &'static str,
        /// Its encoded size.
        size: usize,
    },
}

/// Decodes a message: see [`Decoded`].
pub fn decode(bytes: &[u8]) -> Result<Decoded, ProtocolError> {
    #[derive(Deserialize)]
    struct Head {
        v: u32,
        #[serde(rename = "type")]
        type_name: String,
        #[serde(default)]
        sender: String,
    }
    let value: serde_json::Value =
        serde_json::from_slice(bytes).map_err(|e| ProtocolError::Malformed(e.to_string()))?;
    let head = Head::deserialize(&value).map_err(|e| ProtocolError::Malformed(e.to_string()))?;
    if head.v > VERSION {
        return Ok(Decoded::Newer {
            version: head.v,
            type_name: head.type_name,
            sender: head.sender,
        });
    }
    if !Message::TYPES.contains(&head.type_name.as_str()) {
        return Ok(Decoded::Unknown {
            type_name: head.type_name,
            sender: head.sender,
        });
    }
    let envelope = Envelope::deserialize(value)
        .map_err(|e| ProtocolError::Malformed(format!("\"{}\" message: {e}", head.type_name)))?;
    Ok(Decoded::Message(Box::new(envelope)))
}

/// One attempt of one build: what every build message is about. Messages for any other attempt
/// than the build's current one are stale (fencing).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct BuildRef {
    /// The build.
    pub build_id: BuildId,
    /// The attempt (fencing token).
    pub attempt: u32,
}

/// One attempt of one resource check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct CheckRef {
    /// The resource.
    pub resource_id: ResourceId,
    /// The attempt (fencing token).
    pub attempt: u32,
}

/// A piece of work a worker holds: a build or a check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum WorkRef {
    /// A build.
    Build(BuildRef),
    /// A resource check.
    Check(CheckRef),
}

impl std::fmt::Display for WorkRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            WorkRef::Build(b) => write!(f, "build {} (attempt {})", b.build_id, b.attempt),
            WorkRef::Check(c) => write!(
                f,
                "check of resource {} (attempt {})",
                c.resource_id, c.attempt
            ),
        }
    }
}

/// How a step or a build ended, on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// It worked.
    Succeeded,
    /// It failed.
    Failed,
    /// It failed, but failure is allowed.
    Warning,
    /// It was cancelled.
    Cancelled,
    /// It did not run.
    Skipped,
    /// It could not run at all (bad snapshot, secrets not found, ...).
    Errored,
}

impl From<crate::engine::Status> for Outcome {
    fn from(status: crate::engine::Status) -> Outcome {
        use crate::engine::Status;
        match status {
            Status::Succeeded => Outcome::Succeeded,
            Status::Failed => Outcome::Failed,
            Status::Warning => Outcome::Warning,
            Status::Cancelled => Outcome::Cancelled,
            Status::Skipped => Outcome::Skipped,
        }
    }
}

/// Every message. Server → worker: [`Message::Assign`], [`Message::AssignCheck`],
/// [`Message::Cancel`], [`Message::Abort`], [`Message::Leases`]. Server → servers:
/// [`Message::Probe`]. Worker → server: the rest.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Message {
    /// Run this build attempt (answer [`Message::Accepted`] or [`Message::Rejected`]).
    Assign(Box<Assign>),
    /// Run this check attempt.
    AssignCheck(Box<AssignCheck>),
    /// Cancel a build: stop the step, run `on_cancel` and `ensure`, stop services, report
    /// `cancelled`.
    Cancel {
        /// The build attempt.
        build: BuildRef,
    },
    /// Stop this work now, without hooks, and report nothing more about it: it is no longer
    /// yours (a stale attempt, a lease that lapsed, a cancel that took too long).
    Abort {
        /// The work.
        work: WorkRef,
        /// Why, for the worker's log.
        reason: String,
    },
    /// The server's answer to a heartbeat: the leases it renewed and the work that is no
    /// longer the worker's.
    Leases {
        /// The heartbeat this answers (its `msg_id`).
        heartbeat: String,
        /// When the renewed leases lapse, in ms since the epoch.
        until_ms: i64,
        /// Work whose lease was renewed.
        renewed: Vec<WorkRef>,
        /// Work the worker reported that is not its own any more: stop it.
        lost: Vec<WorkRef>,
    },
    /// A worker is alive (every 5 s on [`topics::HEARTBEATS`]).
    Heartbeat(Heartbeat),
    /// A server's mark in [`topics::HEARTBEATS`] (every second), to learn how far the
    /// heartbeats have been read: the server that reads it has read every heartbeat the broker
    /// took before it, so a lease that lapsed before the probe was sent ([`Envelope::sent_at_ms`])
    /// lapsed with no heartbeat left to renew it. Servers only take back leases that lapsed
    /// before the last probe they read.
    Probe {},
    /// The worker took the work and starts it.
    Accepted {
        /// The work.
        work: WorkRef,
    },
    /// The worker will not run the work (no free slot, draining, bad snapshot).
    Rejected {
        /// The work.
        work: WorkRef,
        /// Why.
        reason: String,
    },
    /// A step started.
    StepStarted {
        /// The build attempt.
        build: BuildRef,
        /// The step's index in the build.
        step: u32,
        /// The enclosing step, if any.
        parent: Option<u32>,
        /// The step type (`get`, `task`, ...).
        kind: String,
        /// The display name.
        name: String,
        /// When it started.
        at_ms: i64,
    },
    /// Lines of a step's output (a batch: flushed every 250 ms or 64 KiB).
    Log {
        /// The build attempt.
        build: BuildRef,
        /// The step.
        step: u32,
        /// The batch's number within the step, from 0: with `build` and `step`, the key that
        /// makes a redelivered batch harmless.
        seq: u64,
        /// The lines, each ending with `\n`, secrets masked.
        text: String,
        /// When the batch was flushed.
        at_ms: i64,
    },
    /// A step finished (sent after its last log batch).
    StepFinished {
        /// The build attempt.
        build: BuildRef,
        /// The step.
        step: u32,
        /// How it ended.
        outcome: Outcome,
        /// Why it failed, if it did.
        error: Option<String>,
        /// When it finished.
        at_ms: i64,
    },
    /// A `get` used this version.
    VersionUsed {
        /// The build attempt.
        build: BuildRef,
        /// The resource, `type.name`.
        resource: String,
        /// The version.
        version: serde_json::Value,
    },
    /// A `put` produced these versions, oldest first.
    VersionsProduced {
        /// The build attempt.
        build: BuildRef,
        /// The resource, `type.name`.
        resource: String,
        /// The versions.
        versions: Vec<serde_json::Value>,
    },
    /// A `put` to a `trigger` resource.
    TriggerEvent {
        /// The build attempt.
        build: BuildRef,
        /// The resource, `trigger.<name>`.
        resource: String,
        /// The put's params: the event's version.
        params: BTreeMap<String, String>,
    },
    /// The build ended (sent after everything else about it).
    BuildFinished {
        /// The build attempt.
        build: BuildRef,
        /// How it ended.
        outcome: Outcome,
        /// Why it failed, if it did.
        error: Option<String>,
        /// When it ended.
        at_ms: i64,
        /// How many `log` messages the worker queued for this attempt: the server waits for
        /// them all before it marks the build finished (one may arrive after this message, when
        /// a server that had taken it died and the broker gives it back later). `None` from a
        /// worker older than this field.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        log_chunks: Option<u64>,
    },
    /// A check ended.
    CheckFinished {
        /// The check attempt.
        check: CheckRef,
        /// The versions found, oldest first (empty when it failed).
        versions: Vec<serde_json::Value>,
        /// Why it failed, if it did.
        error: Option<String>,
        /// Its output, secrets masked (at most 64 KiB, the end kept).
        log: String,
        /// When it ended.
        at_ms: i64,
    },
}

impl Message {
    /// Every `type` this release knows.
    pub const TYPES: [&'static str; 17] = [
        "assign",
        "assign_check",
        "cancel",
        "abort",
        "leases",
        "heartbeat",
        "probe",
        "accepted",
        "rejected",
        "step_started",
        "log",
        "step_finished",
        "version_used",
        "versions_produced",
        "trigger_event",
        "build_finished",
        "check_finished",
    ];

    /// The `type` of this message.
    pub fn type_name(&self) -> &'static str {
        match self {
            Message::Assign(_) => "assign",
            Message::AssignCheck(_) => "assign_check",
            Message::Cancel { .. } => "cancel",
            Message::Abort { .. } => "abort",
            Message::Leases { .. } => "leases",
            Message::Heartbeat(_) => "heartbeat",
            Message::Probe {} => "probe",
            Message::Accepted { .. } => "accepted",
            Message::Rejected { .. } => "rejected",
            Message::StepStarted { .. } => "step_started",
            Message::Log { .. } => "log",
            Message::StepFinished { .. } => "step_finished",
            Message::VersionUsed { .. } => "version_used",
            Message::VersionsProduced { .. } => "versions_produced",
            Message::TriggerEvent { .. } => "trigger_event",
            Message::BuildFinished { .. } => "build_finished",
            Message::CheckFinished { .. } => "check_finished",
        }
    }

    /// The work this message is about, if any.
    pub fn work(&self) -> Option<WorkRef> {
        match self {
            Message::Assign(assign) => Some(WorkRef::Build(assign.build)),
            Message::AssignCheck(assign) => Some(WorkRef::Check(assign.check)),
            Message::Cancel { build }
            | Message::StepStarted { build, .. }
            | Message::Log { build, .. }
            | Message::StepFinished { build, .. }
            | Message::VersionUsed { build, .. }
            | Message::VersionsProduced { build, .. }
            | Message::TriggerEvent { build, .. }
            | Message::BuildFinished { build, .. } => Some(WorkRef::Build(*build)),
            Message::CheckFinished { check, .. } => Some(WorkRef::Check(*check)),
            Message::Abort { work, .. }
            | Message::Accepted { work }
            | Message::Rejected { work, .. } => Some(*work),
            Message::Leases { .. } | Message::Heartbeat(_) | Message::Probe {} => None,
        }
    }
}

/// Run a build.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Assign {
    /// The build attempt.
    pub build: BuildRef,
    /// When the assignment lapses unless the worker accepts it and keeps heartbeating.
    pub lease_until_ms: i64,
    /// Everything the worker needs to run it.
    pub snapshot: BuildSnapshot,
    /// The entries of the server's store the build reads, sealed to the worker's key (absent
    /// when it reads none, and in assignments of servers that predate it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub store_values: Option<SealedSecrets>,
}

/// Run a resource check.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AssignCheck {
    /// The check attempt.
    pub check: CheckRef,
    /// When the claim lapses.
    pub lease_until_ms: i64,
    /// Everything the worker needs to run it.
    pub snapshot: CheckSnapshot,
    /// The entries of the server's store the check reads, sealed to the worker's key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub store_values: Option<SealedSecrets>,
}

/// A worker's heartbeat.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Heartbeat {
    /// The worker's id (its topic is [`topics::worker`] of it).
    pub worker: String,
    /// The team it serves (`None`: every team).
    pub team: Option<String>,
    /// Its tags.
    pub tags: Vec<String>,
    /// Whether it runs only jobs with tags, all of them among its own (`--exclusive-tags`).
    /// Absent (`false`) in heartbeats of workers that predate it.
    #[serde(default)]
    pub exclusive: bool,
    /// How many builds it runs at once.
    pub slots: u32,
    /// How many checks it runs at once, besides its builds. Absent in heartbeats of workers
    /// that predate it, which run 4.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub check_slots: Option<u32>,
    /// The work it runs now.
    pub running: Vec<WorkRef>,
    /// Whether it is draining (takes no new work).
    pub draining: bool,
    /// Its PikoCI version.
    pub version: String,
    /// Its host name.
    pub hostname: String,
    /// The public half of the key pair it made at start (X25519, base64), which the server
    /// seals store values to. Absent in heartbeats of workers that predate it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sealing_key: Option<String>,
}

/// Values of the server's store sealed to the worker an assignment goes to: opaque text here
/// (`pikoci_secrets::sealed` makes and opens it). `Debug` shows its length only.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SealedSecrets(String);

impl SealedSecrets {
    /// Wraps sealed text.
    pub fn new(text: impl Into<String>) -> SealedSecrets {
        SealedSecrets(text.into())
    }

    /// The sealed text.
    pub fn as_text(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for SealedSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SealedSecrets({} bytes)", self.0.len())
    }
}

/// Milliseconds since the Unix epoch of a time.
pub fn to_ms(at: chrono::DateTime<chrono::Utc>) -> i64 {
    at.timestamp_millis()
}

/// The time of milliseconds since the Unix epoch (the epoch itself when out of range).
pub fn from_ms(ms: i64) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::from_timestamp_millis(ms).unwrap_or_default()
}

#[cfg(test)]
mod tests;
