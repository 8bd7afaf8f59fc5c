//! Records of builds: numbers, statuses, dispatch state, steps and the versions they used.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{BuildId, JobId, PipelineId, ResourceId, TeamId, TeamScope, VersionId};

/// Where a build is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BuildStatus {
    /// Created, waiting for a worker.
    Pending,
    /// Held by an `approve` gate until someone approves or rejects it.
    WaitingForApproval,
    /// Claimed for a worker that has not confirmed yet.
    Assigned,
    /// Running on a worker.
    Started,
    /// Every step succeeded.
    Succeeded,
    /// A step failed.
    Failed,
    /// Cancelled by a user, a newer build of an `interruptible` job, or a rejected approval.
    Cancelled,
    /// Failed, but the job has `allow_failure`.
    Warning,
    /// Could not run at all (lost its worker too often, bad snapshot, ...).
    Errored,
}

impl BuildStatus {
    /// Every status, in the order above.
    pub const ALL: [BuildStatus; 9] = [
        BuildStatus::Pending,
        BuildStatus::WaitingForApproval,
        BuildStatus::Assigned,
        BuildStatus::Started,
        BuildStatus::Succeeded,
        BuildStatus::Failed,
        BuildStatus::Cancelled,
        BuildStatus::Warning,
        BuildStatus::Errored,
    ];

    /// The name stored and shown (`waiting_for_approval`).
    pub fn as_str(self) -> &'static str {
        match self {
            BuildStatus::Pending => "pending",
            BuildStatus::WaitingForApproval => "waiting_for_approval",
            BuildStatus::Assigned => "assigned",
            BuildStatus::Started => "started",
            BuildStatus::Succeeded => "succeeded",
            BuildStatus::Failed => "failed",
            BuildStatus::Cancelled => "cancelled",
            BuildStatus::Warning => "warning",
            BuildStatus::Errored => "errored",
        }
    }

    /// Parses a stored name.
    pub fn parse(name: &str) -> Option<BuildStatus> {
        BuildStatus::ALL.into_iter().find(|s| s.as_str() == name)
    }

    /// Whether the build is over (no transition leaves these statuses).
    pub fn is_finished(self) -> bool {
        matches!(
            self,
            BuildStatus::Succeeded
                | BuildStatus::Failed
                | BuildStatus::Cancelled
                | BuildStatus::Warning
                | BuildStatus::Errored
        )
    }

    /// Whether the build holds a worker slot (counts against `concurrency` and serial groups).
    pub fn is_active(self) -> bool {
        matches!(self, BuildStatus::Assigned | BuildStatus::Started)
    }
}

impl fmt::Display for BuildStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A build's number within its job: `3`, or `3.1`, `3.2` for retries of build 3.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct BuildNumber {
    /// The main sequence number (from 1).
    pub number: u32,
    /// The retry number (0 for the original build).
    pub retry: u32,
}

impl BuildNumber {
    /// The original build number `number`.
    pub fn new(number: u32) -> BuildNumber {
        BuildNumber { number, retry: 0 }
    }

    /// Whether this is a retry (`N.M`).
    pub fn is_retry(self) -> bool {
        self.retry > 0
    }
}

impl fmt::Display for BuildNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.retry == 0 {
            write!(f, "{}", self.number)
        } else {
            write!(f, "{}.{}", self.number, self.retry)
        }
    }
}

impl FromStr for BuildNumber {
    type Err = String;

    fn from_str(text: &str) -> Result<BuildNumber, String> {
        let invalid = || format!("invalid build number \"{text}\" (expected N or N.M)");
        let parse = |part: &str| {
            if part.is_empty() || !part.bytes().all(|b| b.is_ascii_digit()) {
                return Err(invalid());
            }
            part.parse::<u32>().map_err(|_| invalid())
        };
        let (number, retry) = match text.split_once('.') {
            Some((number, retry)) => (parse(number)?, parse(retry)?),
            None => (parse(text)?, 0),
        };
        if number == 0 || (text.contains('.') && retry == 0) {
            return Err(invalid());
        }
        Ok(BuildNumber { number, retry })
    }
}

/// The version that made a build: the trigger of an automatic build, the pin of a manual one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BuildTrigger {
    /// The resource.
    pub resource_id: ResourceId,
    /// The version.
    pub version_id: VersionId,
}

/// A build to create.
#[derive(Debug, Clone, PartialEq)]
pub struct NewBuild {
    /// The job.
    pub job_id: JobId,
    /// `Pending` or `WaitingForApproval`.
    pub status: BuildStatus,
    /// Values of the job's inputs (a JSON object; `null` for none).
    pub inputs: serde_json::Value,
    /// The version that made the build.
    pub trigger: Option<BuildTrigger>,
    /// The versions its gets will use, recorded with the build (in the same transaction).
    pub versions: Vec<BuildVersion>,
    /// An automatic build (a trigger, `passed`): when the job already has an automatic build of
    /// the same `get` versions, that build is returned and none is created, so two servers (or
    /// a redelivered event) evaluating the same trigger create one build.
    pub once_per_versions: bool,
    /// When the build was created.
    pub created_at: DateTime<Utc>,
}

/// The dispatch state of a build (see the architecture, "dispatch with leases and fencing").
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Dispatch {
    /// The fencing epoch: 0 until the first claim, bumped by every claim. Events that carry
    /// another attempt are stale.
    pub attempt: u32,
    /// The worker holding the build.
    pub worker_id: Option<String>,
    /// When the worker's claim lapses unless renewed.
    pub lease_expires_at: Option<DateTime<Utc>>,
    /// How many times the build went back to `pending` after losing its worker.
    pub requeues: u32,
    /// When a cancel was asked of the worker: the time by which it must report the build
    /// finished, or the server marks it cancelled itself.
    pub cancel_deadline: Option<DateTime<Utc>>,
}

/// A stored build.
#[derive(Debug, Clone, PartialEq)]
pub struct Build {
    /// The id.
    pub id: BuildId,
    /// The job.
    pub job_id: JobId,
    /// The job's pipeline.
    pub pipeline_id: PipelineId,
    /// The pipeline's team.
    pub team_id: TeamId,
    /// The number within the job.
    pub number: BuildNumber,
    /// For retries: the original build (`3` for `3.2`).
    pub retry_of: Option<BuildId>,
    /// The status.
    pub status: BuildStatus,
    /// Values of the job's inputs.
    pub inputs: serde_json::Value,
    /// Why the build failed or errored, as shown to users.
    pub error: Option<String>,
    /// The version that made the build.
    pub trigger: Option<BuildTrigger>,
    /// Dispatch state.
    pub dispatch: Dispatch,
    /// When the build was created.
    pub created_at: DateTime<Utc>,
    /// When a worker started it (the latest attempt).
    pub started_at: Option<DateTime<Utc>>,
    /// When it finished.
    pub finished_at: Option<DateTime<Utc>>,
}

/// Which builds [`Store::list_builds`](super::Store::list_builds) returns, newest first.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BuildFilter {
    /// Only this job's builds.
    pub job_id: Option<JobId>,
    /// Only this pipeline's builds.
    pub pipeline_id: Option<PipelineId>,
    /// Only builds in one of these statuses (empty: any).
    pub statuses: Vec<BuildStatus>,
    /// Only builds older than this one (for paging).
    pub before: Option<BuildId>,
    /// Only builds created at or after this time.
    pub since: Option<DateTime<Utc>>,
    /// Only builds that used this version (a `get` of it, or a `put` that reported it).
    pub used_version: Option<VersionId>,
    /// At most this many (0: the default page size, 100).
    pub limit: u32,
}

/// A request for the oldest startable pending build, on behalf of one worker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClaimRequest {
    /// The worker that will run the build.
    pub worker_id: String,
    /// The worker's tags: only jobs whose tags are all among them qualify.
    pub worker_tags: Vec<String>,
    /// Which teams' builds qualify.
    pub teams: TeamScope,
    /// The worker runs only jobs with tags (`--exclusive-tags`): jobs without tags do not
    /// qualify.
    pub exclusive: bool,
    /// When the claim lapses if the worker does not confirm and renew it.
    pub lease_until: DateTime<Utc>,
}

/// A conditional status change: it happens only if the build is still in one of `from` (and at
/// `attempt`, when given); otherwise it fails with a `Conflict` error and changes nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildTransition {
    /// The build.
    pub build_id: BuildId,
    /// The statuses the build may be in.
    pub from: Vec<BuildStatus>,
    /// The new status.
    pub to: BuildStatus,
    /// The attempt the caller acts for (events from workers); `None` for users and the server.
    pub attempt: Option<u32>,
    /// The error to record (kept as it was when `None`).
    pub error: Option<String>,
    /// When it happened: recorded as `started_at` for `started`, `finished_at` for final states.
    pub at: DateTime<Utc>,
    /// What a user does with it, for the audit log ([`actions`](super::audit::actions):
    /// `job.cancelled`, `build.rejected`, `build.marked_warning`): recorded in the
    /// transition's transaction when someone acts. `None` for what workers and the server do.
    pub action: Option<&'static str>,
}

/// A build a worker reports as running, in a heartbeat.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunningBuild {
    /// The build.
    pub build_id: BuildId,
    /// The attempt the worker runs.
    pub attempt: u32,
}

/// A build whose lease lapsed and that [`Store::requeue_expired`](super::Store::requeue_expired)
/// took back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequeuedBuild {
    /// The build.
    pub build_id: BuildId,
    /// The attempt that was lost.
    pub attempt: u32,
    /// The worker that lost it.
    pub worker_id: Option<String>,
    /// `Pending` (it will run again), `Errored` (it was requeued too often) or `Cancelled` (a
    /// cancel was waiting for the lost worker).
    pub status: BuildStatus,
}

/// The status of a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepStatus {
    /// Running.
    Started,
    /// Finished well.
    Succeeded,
    /// Finished badly.
    Failed,
    /// Killed by a cancel or timeout.
    Cancelled,
    /// Failed with `allow_failure`.
    Warning,
    /// Could not run.
    Errored,
    /// Not run (an unselected `if` branch).
    Skipped,
}

impl StepStatus {
    /// Every status, in the order above.
    pub const ALL: [StepStatus; 7] = [
        StepStatus::Started,
        StepStatus::Succeeded,
        StepStatus::Failed,
        StepStatus::Cancelled,
        StepStatus::Warning,
        StepStatus::Errored,
        StepStatus::Skipped,
    ];

    /// The name stored and shown.
    pub fn as_str(self) -> &'static str {
        match self {
            StepStatus::Started => "started",
            StepStatus::Succeeded => "succeeded",
            StepStatus::Failed => "failed",
            StepStatus::Cancelled => "cancelled",
            StepStatus::Warning => "warning",
            StepStatus::Errored => "errored",
            StepStatus::Skipped => "skipped",
        }
    }

    /// Parses a stored name.
    pub fn parse(name: &str) -> Option<StepStatus> {
        StepStatus::ALL.into_iter().find(|s| s.as_str() == name)
    }
}

impl fmt::Display for StepStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One step of one attempt of a build, as the worker reported it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildStep {
    /// The build attempt the step belongs to.
    pub attempt: u32,
    /// The step's index in the build (assigned by the engine; also keys its log chunks).
    pub step: u32,
    /// The display name (`repo`, `unit-tests`).
    pub name: String,
    /// The step type (`get`, `task`, `put`, ...).
    pub kind: String,
    /// The status.
    pub status: StepStatus,
    /// When the step started.
    pub started_at: Option<DateTime<Utc>>,
    /// When the step finished.
    pub finished_at: Option<DateTime<Utc>>,
    /// The index of the enclosing step (`in_parallel`, `if`, a hook's step), if any; the first
    /// report that knows it (the step's start) sets it for good.
    pub parent: Option<u32>,
}

impl BuildStep {
    /// How long the step ran, once it finished.
    pub fn duration(&self) -> Option<chrono::Duration> {
        Some(self.finished_at? - self.started_at?)
    }
}

/// How a build used a version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum VersionUse {
    /// Fetched by a `get` step.
    Get,
    /// Produced by a `put` step.
    Put,
}

impl VersionUse {
    /// The name stored.
    pub fn as_str(self) -> &'static str {
        match self {
            VersionUse::Get => "get",
            VersionUse::Put => "put",
        }
    }
}

/// A version a build used (what `passed` looks at).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BuildVersion {
    /// The resource.
    pub resource_id: ResourceId,
    /// The version.
    pub version_id: VersionId,
    /// The step's display name.
    pub step_name: String,
    /// Get or put.
    pub usage: VersionUse,
}

/// One person's approval of a build waiting for approval.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApprovalVote {
    /// Who approved.
    pub voter: String,
    /// When.
    pub at: DateTime<Utc>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn build_numbers_round_trip() {
        for text in ["1", "3.1", "12.10"] {
            assert_eq!(text.parse::<BuildNumber>().unwrap().to_string(), text);
        }
        assert_eq!(
            "3.2".parse::<BuildNumber>(),
            Ok(BuildNumber {
                number: 3,
                retry: 2
            })
        );
        for bad in ["", "0", "3.", ".1", "3.0", "3.1.1", "-1", "a", "1 "] {
            assert!(bad.parse::<BuildNumber>().is_err(), "{bad:?} parsed");
        }
        assert!(BuildNumber::new(3) < "3.1".parse().unwrap());
    }

    #[test]
    fn statuses_round_trip_and_classify() {
        for status in BuildStatus::ALL {
            assert_eq!(BuildStatus::parse(status.as_str()), Some(status));
            assert!(!(status.is_active() && status.is_finished()));
        }
        for status in StepStatus::ALL {
            assert_eq!(StepStatus::parse(status.as_str()), Some(status));
        }
        assert_eq!(BuildStatus::parse("running"), None);
        assert!(BuildStatus::Started.is_active());
        assert!(BuildStatus::Warning.is_finished());
        assert!(!BuildStatus::WaitingForApproval.is_active());
    }
}
