//! Records of workers (from their heartbeats) and of trigger events.

use chrono::{DateTime, Utc};

use super::{TeamId, TriggerEventId};

/// What a worker says about itself every few seconds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerHeartbeat {
    /// The worker's unique id.
    pub worker_id: String,
    /// The team it serves (`None`: a global worker).
    pub team_id: Option<TeamId>,
    /// Its tags.
    pub tags: Vec<String>,
    /// It runs only jobs with tags, all of them among its own (`--exclusive-tags`).
    pub exclusive: bool,
    /// It takes no new work (shutting down).
    pub draining: bool,
    /// How many builds it runs at once.
    pub slots: u32,
    /// How many builds it runs now.
    pub running: u32,
    /// Its PikoCI version.
    pub version: String,
    /// Its host name.
    pub hostname: String,
    /// The public key it seals store values to (`None`: a worker that predates sealing).
    pub sealing_key: Option<String>,
    /// When the heartbeat was sent.
    pub at: DateTime<Utc>,
}

/// A worker as the registry knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Worker {
    /// The worker's unique id.
    pub worker_id: String,
    /// The team it serves (`None`: a global worker).
    pub team_id: Option<TeamId>,
    /// Its tags.
    pub tags: Vec<String>,
    /// It runs only jobs with tags, all of them among its own.
    pub exclusive: bool,
    /// It said at its last heartbeat that it takes no new work.
    pub draining: bool,
    /// How many builds it runs at once.
    pub slots: u32,
    /// How many builds it ran at its last heartbeat.
    pub running: u32,
    /// Its PikoCI version.
    pub version: String,
    /// Its host name.
    pub hostname: String,
    /// The public key its last heartbeat announced for sealing store values.
    pub sealing_key: Option<String>,
    /// Its first heartbeat.
    pub first_seen_at: DateTime<Utc>,
    /// Its last heartbeat.
    pub last_heartbeat_at: DateTime<Utc>,
}

/// An event on a team's trigger stream (what a `put` to a `trigger` resource creates, and what
/// checks of `trigger` resources with the same canonical name read).
#[derive(Debug, Clone, PartialEq)]
pub struct TriggerEvent {
    /// The id; a larger id is a newer event.
    pub id: TriggerEventId,
    /// The team.
    pub team_id: TeamId,
    /// The stream: the resource's canonical name (`trigger.deploy`).
    pub resource: String,
    /// The version the event carries (a JSON object).
    pub version: serde_json::Value,
    /// When it was created.
    pub created_at: DateTime<Utc>,
}
