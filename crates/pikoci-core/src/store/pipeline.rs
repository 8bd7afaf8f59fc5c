//! Records of teams, pipelines, jobs, resources and resource versions.

use super::{JobId, PipelineId, ResourceId, TeamId, VersionId};
use crate::model::{Job, Pipeline, Resource};
use chrono::{DateTime, Utc};

/// A team: the unit that owns pipelines, trigger streams and (later) members and secrets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Team {
    /// The id.
    pub id: TeamId,
    /// The canonical name (`main`).
    pub name: String,
    /// When the team was created.
    pub created_at: DateTime<Utc>,
}

/// What a user sets: a pipeline's text, its variables and the model `pikoci-config` made of them.
#[derive(Debug, Clone, PartialEq)]
pub struct PipelineSpec {
    /// The canonical pipeline name, unique within its team.
    pub name: String,
    /// The pipeline file as the user wrote it.
    pub config: String,
    /// The variables given with it (a JSON object: the vars file merged with `--var`s).
    pub vars: serde_json::Value,
    /// The validated model.
    pub model: Pipeline,
}

/// A stored pipeline.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredPipeline {
    /// The id.
    pub id: PipelineId,
    /// The owning team.
    pub team_id: TeamId,
    /// The canonical name.
    pub name: String,
    /// The pipeline file as last set.
    pub config: String,
    /// The variables given with it.
    pub vars: serde_json::Value,
    /// The validated model.
    pub model: Pipeline,
    /// Paused pipelines start no builds (checks go on).
    pub paused: bool,
    /// Public pipelines are visible without logging in.
    pub public: bool,
    /// When the pipeline was first set.
    pub created_at: DateTime<Utc>,
    /// When the pipeline was last set.
    pub updated_at: DateTime<Utc>,
}

/// The names added, updated and removed by a pipeline update, for jobs or resources.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ChangeSet {
    /// Names that did not exist before.
    pub added: Vec<String>,
    /// Names that existed and were kept (their state preserved, their definition replaced).
    pub updated: Vec<String>,
    /// Names that no longer exist (their builds or versions are gone with them).
    pub removed: Vec<String>,
}

/// What [`Store::set_pipeline`](super::Store::set_pipeline) did.
#[derive(Debug, Clone, PartialEq)]
pub struct SetPipelineOutcome {
    /// The pipeline as stored now.
    pub pipeline: StoredPipeline,
    /// Whether the pipeline was created (rather than updated).
    pub created: bool,
    /// Jobs by name.
    pub jobs: ChangeSet,
    /// Resources by canonical name (`type.name`).
    pub resources: ChangeSet,
}

/// A stored job: its definition from the model plus the state that outlives pipeline updates.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredJob {
    /// The id, kept while the job's name stays in the pipeline.
    pub id: JobId,
    /// The pipeline.
    pub pipeline_id: PipelineId,
    /// The (instance) name.
    pub name: String,
    /// Position in the pipeline (declaration order).
    pub position: u32,
    /// Paused jobs start no builds; kept across pipeline updates.
    pub paused: bool,
    /// The definition.
    pub model: Job,
    /// When the job first appeared in the pipeline (the baseline for `passed`: versions older
    /// than a job are not replayed into it).
    pub created_at: DateTime<Utc>,
}

/// A stored resource: its definition plus its check state, token and pin.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredResource {
    /// The id, kept while the resource's type and name stay in the pipeline.
    pub id: ResourceId,
    /// The pipeline.
    pub pipeline_id: PipelineId,
    /// The definition.
    pub model: Resource,
    /// The secret part of `POST /api/v1/webhooks/{token}`; kept across pipeline updates.
    pub webhook_token: String,
    /// When the next automatic check is due (`None`: never).
    pub next_check_at: Option<DateTime<Utc>>,
    /// The version builds are pinned to, with who pinned it, when and why.
    pub pin: Option<Pin>,
    /// The outcome of the last finished check.
    pub last_check: Option<CheckRecord>,
    /// The check in flight, if one was claimed and not finished.
    pub check_lease: Option<CheckLease>,
    /// When the resource first appeared in the pipeline.
    pub created_at: DateTime<Utc>,
}

impl StoredResource {
    /// The canonical name, `<type>.<name>`.
    pub fn canonical(&self) -> String {
        self.model.canonical()
    }

    /// The version builds are pinned to.
    pub fn pinned_version(&self) -> Option<VersionId> {
        self.pin.as_ref().map(|pin| pin.version)
    }
}

/// A resource's pin: builds get this version until the resource is unpinned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pin {
    /// The version.
    pub version: VersionId,
    /// Why it is pinned, as whoever pinned it wrote (may be empty).
    pub comment: String,
    /// Who pinned it (`None`: pinned before pins recorded it).
    pub by: Option<String>,
    /// When (`None`: pinned before pins recorded it).
    pub at: Option<DateTime<Utc>>,
}

/// The longest pin comment, in characters.
pub const MAX_PIN_COMMENT: usize = 1000;

/// The outcome of a finished check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckRecord {
    /// When the check finished.
    pub finished_at: DateTime<Utc>,
    /// Why the check failed (`None`: it succeeded).
    pub error: Option<String>,
    /// The check's output.
    pub log: String,
}

/// A check that a worker holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckLease {
    /// The fencing epoch: bumped by every claim; only the holder of the current one may finish.
    pub attempt: u32,
    /// The worker running the check.
    pub worker_id: String,
    /// When the claim lapses and the check may be claimed again.
    pub expires_at: DateTime<Utc>,
}

/// A request for a due resource check, on behalf of one worker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckClaim {
    /// The worker that will run the check.
    pub worker_id: String,
    /// The worker's tags: only resources whose tags are all among them qualify.
    pub worker_tags: Vec<String>,
    /// The worker runs only work with tags (`--exclusive-tags`): resources without tags do not
    /// qualify.
    pub exclusive: bool,
    /// Which teams' resources qualify.
    pub teams: TeamScope,
    /// The current time: checks with `next_check_at <= now` are due.
    pub now: DateTime<Utc>,
    /// Checks whose lease lapsed before this time (their worker went silent) may be claimed
    /// again; `None` leaves every lapsed check to its worker (a server that just started, or
    /// that has not read the heartbeats that may renew them).
    pub lapsed_before: Option<DateTime<Utc>>,
    /// When the claim lapses if the worker does not confirm and renew it.
    pub lease_until: DateTime<Utc>,
}

/// A check a worker reports as running, in a heartbeat.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RunningCheck {
    /// The resource checked.
    pub resource_id: ResourceId,
    /// The check attempt the worker runs.
    pub attempt: u32,
}

/// A claimed check.
#[derive(Debug, Clone, PartialEq)]
pub struct ClaimedCheck {
    /// The resource, with `check_lease` set and `next_check_at` moved to the next interval.
    pub resource: StoredResource,
    /// The fencing epoch to give back to [`Store::finish_check`](super::Store::finish_check).
    pub attempt: u32,
}

/// Which teams' work a claim may take.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum TeamScope {
    /// Every team.
    #[default]
    All,
    /// Only this team (a team-scoped worker).
    Only(TeamId),
    /// Every team but these (a global worker, skipping teams that have their own workers).
    AllExcept(Vec<TeamId>),
}

/// A version reported by a check or a put.
#[derive(Debug, Clone, PartialEq)]
pub struct NewVersion {
    /// The version: a JSON object (`{"ref": "abc123"}`). Key order does not matter.
    pub version: serde_json::Value,
    /// Metadata shown to users (a JSON array or object; `null` for none).
    pub metadata: serde_json::Value,
}

/// A pipeline `secret` entry's value sealed again for the pipeline's new name (see
/// [`Store::rename_pipeline`](super::Store::rename_pipeline)).
#[derive(Clone, PartialEq, Eq)]
pub struct ResealedSecret {
    /// The entry's name.
    pub name: String,
    /// The value as stored now, sealed to the old name.
    pub old: Vec<u8>,
    /// The value sealed to the new name.
    pub new: Vec<u8>,
}

impl std::fmt::Debug for ResealedSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ResealedSecret")
            .field("name", &self.name)
            .field("old", &format_args!("{} bytes", self.old.len()))
            .field("new", &format_args!("{} bytes", self.new.len()))
            .finish()
    }
}

/// What an export or an import copied: the rows of each table, parents first.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TransferSummary {
    /// Each table copied.
    pub tables: Vec<TableCount>,
}

impl TransferSummary {
    /// The rows of `table`, 0 when it was not copied.
    pub fn rows(&self, table: &str) -> u64 {
        self.tables
            .iter()
            .find(|t| t.table == table)
            .map_or(0, |t| t.rows)
    }
}

/// The rows copied of one table.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TableCount {
    /// The table's name.
    pub table: String,
    /// Its rows.
    pub rows: u64,
}

/// A stored resource version.
#[derive(Debug, Clone, PartialEq)]
pub struct ResourceVersion {
    /// The id; a larger id is a newer version.
    pub id: VersionId,
    /// The resource.
    pub resource_id: ResourceId,
    /// The version, with its keys in sorted order.
    pub version: serde_json::Value,
    /// The metadata given when the version was first found.
    pub metadata: serde_json::Value,
    /// When the version was first found.
    pub created_at: DateTime<Utc>,
}

/// A question for the `passed` evaluator: which versions of a resource went through jobs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PassedQuery {
    /// The resource.
    pub resource_id: ResourceId,
    /// The upstream jobs: a version qualifies when every one of them used it (get or put) in a
    /// `succeeded` or `warning` build. Must not be empty.
    pub upstream_jobs: Vec<JobId>,
    /// Leave out versions this job already built (used or was triggered with, any status).
    pub not_built_by: Option<JobId>,
    /// At most this many versions, newest first (0: the default page size, 100).
    pub limit: u32,
}
