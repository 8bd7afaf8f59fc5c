//! What a worker is told when it starts, how it is stopped, and how it fails.

use std::path::PathBuf;
use std::time::Duration;

use pikoci_core::broker::BrokerError;
use pikoci_core::protocol::auth::{KeyScope, MacKey};
use tokio_util::sync::CancellationToken;

/// How often a worker says it is alive, by default.
pub const DEFAULT_HEARTBEAT_INTERVAL: Duration = Duration::from_secs(5);

/// How long the server keeps a silent worker's work, by default (three heartbeats).
pub const DEFAULT_LEASE_TIMEOUT: Duration = Duration::from_secs(15);

/// How many checks a worker runs at once besides its builds, by default. Checks are mostly
/// short commands that wait on the network (`git ls-remote`, an HTTP request).
pub const DEFAULT_CHECK_SLOTS: u32 = 16;

/// A worker's settings.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// Its id, unique among the workers of one server (checked with
    /// [`pikoci_core::protocol::check_worker_id`]); names its topic.
    pub id: String,
    /// The team it serves (`None`: every team, or the team of a team's worker token).
    pub team: Option<String>,
    /// Its worker token: what it publishes is signed with it, and what it reads must be.
    pub token: MacKey,
    /// Its tags.
    pub tags: Vec<String>,
    /// Whether it runs only jobs whose tags are all among its own (needs at least one tag).
    pub exclusive_tags: bool,
    /// How many builds it runs at once (at least 1). Checks do not take these slots.
    pub slots: u32,
    /// How many checks it runs at once besides its builds (at least 1;
    /// [`DEFAULT_CHECK_SLOTS`]). Its heartbeats tell the servers.
    pub check_slots: u32,
    /// Where build, check and secret work directories are made (and removed), and where
    /// resource caches live (`<work_dir>/cache`).
    pub work_dir: PathBuf,
    /// How often it publishes a heartbeat ([`DEFAULT_HEARTBEAT_INTERVAL`]).
    pub heartbeat_interval: Duration,
    /// How long the server keeps its leases without a heartbeat ([`DEFAULT_LEASE_TIMEOUT`]).
    /// Work whose lease no server confirmed for `lease_timeout - heartbeat_interval` is stopped
    /// by the worker itself, so that it never runs twice.
    pub lease_timeout: Duration,
    /// Its PikoCI version, sent in heartbeats.
    pub version: String,
    /// Its host name, sent in heartbeats.
    pub hostname: String,
}

impl WorkerConfig {
    /// Checks the settings; returns what is wrong and how to fix it.
    pub(crate) fn check(&self) -> Result<(), WorkerError> {
        let invalid = |message: String| Err(WorkerError::InvalidConfig(message));
        if let Err(problem) = pikoci_core::protocol::check_worker_id(&self.id) {
            return invalid(problem);
        }
        match (self.token.scope(), &self.team) {
            (KeyScope::Team(token_team), Some(team)) if token_team != team => {
                return invalid(format!(
                    "the worker token is team \"{token_team}\"'s, but the worker is told to serve team \"{team}\": give it team \"{team}\"'s token (`pikoci teams worker-token {team}`), or drop the team"
                ));
            }
            (KeyScope::Global, Some(team)) => {
                return invalid(format!(
                    "the global worker token serves every team: to serve team \"{team}\" only, give the worker team \"{team}\"'s worker token (`pikoci teams worker-token {team}`)"
                ));
            }
            (KeyScope::Server, _) => {
                return invalid("the servers' key is not a worker token".to_owned());
            }
            _ => {}
        }
        if self.slots == 0 {
            return invalid("a worker needs at least 1 slot".to_owned());
        }
        if self.check_slots == 0 {
            return invalid("a worker needs at least 1 check slot".to_owned());
        }
        if self.exclusive_tags && self.tags.is_empty() {
            return invalid(
                "exclusive tags need at least one tag: give the worker tags, or drop exclusive tags"
                    .to_owned(),
            );
        }
        if self.heartbeat_interval.is_zero() {
            return invalid("the heartbeat interval must be longer than 0".to_owned());
        }
        if self.lease_timeout <= self.heartbeat_interval {
            return invalid(format!(
                "the lease timeout ({:?}) must be longer than the heartbeat interval ({:?}); \
                 the default is three heartbeats",
                self.lease_timeout, self.heartbeat_interval
            ));
        }
        Ok(())
    }

    /// The team it serves: the one it is told, or its token's (`None`: every team).
    pub fn serving_team(&self) -> Option<&str> {
        self.team.as_deref().or(self.token.scope().team())
    }
}

/// Stops a running worker.
#[derive(Debug, Clone, Default)]
pub struct WorkerStop {
    /// Stop taking work, finish the work running, then return.
    pub drain: CancellationToken,
    /// Abort the work running (no hooks, nothing more reported: the server requeues it) and
    /// return.
    pub now: CancellationToken,
}

/// Why a worker cannot start or run.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    /// The settings are wrong.
    #[error("invalid worker settings: {0}")]
    InvalidConfig(String),
    /// The work directory cannot be made.
    #[error("cannot create the work directory {}: {source}", path.display())]
    WorkDir {
        /// The directory.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// The broker refused or lost a subscription the worker needs.
    #[error("{what}: {source}")]
    Broker {
        /// What failed (`cannot subscribe to topic "pikoci.worker.a"`).
        what: String,
        /// The broker's error.
        source: BrokerError,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> WorkerConfig {
        WorkerConfig {
            id: "box-1".to_owned(),
            team: None,
            token: MacKey::new(KeyScope::Global, [1; 32]),
            tags: Vec::new(),
            exclusive_tags: false,
            slots: 1,
            check_slots: DEFAULT_CHECK_SLOTS,
            work_dir: PathBuf::from("/tmp"),
            heartbeat_interval: DEFAULT_HEARTBEAT_INTERVAL,
            lease_timeout: DEFAULT_LEASE_TIMEOUT,
            version: "0.1.0".to_owned(),
            hostname: "h".to_owned(),
        }
    }

    #[test]
    fn bad_settings_say_what_to_change() {
        assert!(config().check().is_ok());
        type Change = fn(&mut WorkerConfig);
        let cases: [(Change, &str); 8] = [
            (
                |c| c.team = Some("web".into()),
                "the global worker token serves every team",
            ),
            (
                |c| {
                    c.token = MacKey::new(KeyScope::Team("web".into()), [1; 32]);
                    c.team = Some("api".into());
                },
                "the worker token is team \"web\"'s, but the worker is told to serve team \"api\"",
            ),
            (|c| c.id = "a.b".to_owned(), "contains '.'"),
            (|c| c.slots = 0, "at least 1 slot"),
            (|c| c.check_slots = 0, "at least 1 check slot"),
            (
                |c| c.exclusive_tags = true,
                "exclusive tags need at least one tag",
            ),
            (
                |c| c.heartbeat_interval = Duration::ZERO,
                "heartbeat interval must be longer than 0",
            ),
            (
                |c| c.lease_timeout = Duration::from_secs(5),
                "lease timeout (5s) must be longer than the heartbeat interval (5s)",
            ),
        ];
        for (change, expected) in cases {
            let mut config = config();
            change(&mut config);
            let error = config.check().unwrap_err().to_string();
            assert!(error.contains(expected), "{error}");
        }
    }
}
