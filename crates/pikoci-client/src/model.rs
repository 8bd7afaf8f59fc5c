//! The shapes the API answers with, as a client reads them: the fields a client shows or acts
//! on, each optional part defaulted, unknown fields ignored (a newer server may add some). The
//! whole description is the OpenAPI document, `docs/openapi.json`.

use pikoci_core::store::BuildStatus;
use serde::Deserialize;
use serde_json::Value;

/// A team.
#[derive(Debug, Clone, Deserialize)]
pub struct Team {
    /// Its name.
    pub name: String,
    /// When it was created (RFC 3339).
    pub created_at: String,
}

/// A pipeline: its jobs with their latest builds; the detailed view adds its file, vars and
/// resources.
#[derive(Debug, Clone, Deserialize)]
pub struct Pipeline {
    /// Its team.
    pub team: String,
    /// Its name.
    pub name: String,
    /// Every job paused.
    pub paused: bool,
    /// Visible outside its team.
    pub public: bool,
    /// Last set.
    pub updated_at: String,
    /// Its jobs.
    #[serde(default)]
    pub jobs: Vec<JobSummary>,
    /// The file as set (detailed view).
    #[serde(default)]
    pub config: Option<String>,
    /// The vars as set (detailed view).
    #[serde(default)]
    pub vars: Option<Value>,
    /// Its resources (detailed view).
    #[serde(default)]
    pub resources: Option<Vec<Resource>>,
}

/// A job in a pipeline's views.
#[derive(Debug, Clone, Deserialize)]
pub struct JobSummary {
    /// Its name.
    pub name: String,
    /// Paused: starts no builds.
    pub paused: bool,
    /// Its newest build.
    #[serde(default)]
    pub latest_build: Option<Build>,
}

/// A job.
#[derive(Debug, Clone, Deserialize)]
pub struct Job {
    /// Its pipeline.
    pub pipeline: String,
    /// Its name.
    pub name: String,
    /// Paused.
    pub paused: bool,
    /// Worker tags it needs.
    #[serde(default)]
    pub tags: Vec<String>,
    /// The inputs a manual trigger takes.
    #[serde(default)]
    pub inputs: Vec<Input>,
    /// Its newest build.
    #[serde(default)]
    pub latest_build: Option<Build>,
}

/// An input of a job.
#[derive(Debug, Clone, Deserialize)]
pub struct Input {
    /// Its name.
    pub name: String,
    /// `string`, `number` or `bool`.
    #[serde(rename = "type")]
    pub value_type: String,
    /// Its default.
    #[serde(default)]
    pub default: Option<String>,
}

/// A build; the detailed view adds its steps and, while pending, why.
#[derive(Debug, Clone, Deserialize)]
pub struct Build {
    /// Its team.
    pub team: String,
    /// Its pipeline.
    pub pipeline: String,
    /// Its job.
    pub job: String,
    /// `3`, or `3.1` for a retry.
    pub number: String,
    /// `pending`, `started`, `succeeded`, `failed`...
    pub status: String,
    /// Why it errored or was cancelled.
    #[serde(default)]
    pub error: Option<String>,
    /// The attempt (from 1).
    #[serde(default)]
    pub attempt: u32,
    /// The worker running it.
    #[serde(default)]
    pub worker: Option<String>,
    /// While a cancel waits for the worker: when the server marks the build cancelled itself.
    #[serde(default)]
    pub cancel_deadline: Option<String>,
    /// Created (RFC 3339).
    pub created_at: String,
    /// Started.
    #[serde(default)]
    pub started_at: Option<String>,
    /// Finished.
    #[serde(default)]
    pub finished_at: Option<String>,
    /// From start to finish.
    #[serde(default)]
    pub duration_ms: Option<i64>,
    /// The steps of every attempt (detailed view).
    #[serde(default)]
    pub steps: Option<Vec<Step>>,
    /// Why a pending build does not run yet (detailed view).
    #[serde(default)]
    pub pending_reason: Option<String>,
}

impl Build {
    /// Whether it will not change any more.
    pub fn is_finished(&self) -> bool {
        BuildStatus::parse(&self.status).is_some_and(BuildStatus::is_finished)
    }
}

/// A step of one attempt.
#[derive(Debug, Clone, Deserialize)]
pub struct Step {
    /// The attempt.
    pub attempt: u32,
    /// Its index in the attempt: the `step` of its log chunks.
    pub index: u32,
    /// The enclosing step.
    #[serde(default)]
    pub parent: Option<u32>,
    /// Its name.
    pub name: String,
    /// `get`, `task`, `put`...
    #[serde(rename = "type")]
    pub kind: String,
    /// `started`, `succeeded`, `failed`, `skipped`...
    pub status: String,
    /// How long it ran.
    #[serde(default)]
    pub duration_ms: Option<i64>,
}

/// A resource.
#[derive(Debug, Clone, Deserialize)]
pub struct Resource {
    /// `type.name`.
    pub canonical: String,
    /// The check schedule.
    pub check_interval: String,
    /// The version builds are pinned to.
    #[serde(default)]
    pub pinned_version_id: Option<i64>,
    /// Why it is pinned (empty: no comment).
    #[serde(default)]
    pub pin_comment: Option<String>,
    /// Who pinned it.
    #[serde(default)]
    pub pinned_by: Option<String>,
    /// When.
    #[serde(default)]
    pub pinned_at: Option<String>,
    /// The next check.
    #[serde(default)]
    pub next_check_at: Option<String>,
    /// The last check.
    #[serde(default)]
    pub last_check: Option<Check>,
    /// The webhook token (detailed view).
    #[serde(default)]
    pub webhook_token: Option<String>,
}

/// A finished check.
#[derive(Debug, Clone, Deserialize)]
pub struct Check {
    /// When.
    pub finished_at: String,
    /// Whether it worked.
    pub succeeded: bool,
    /// Why not.
    #[serde(default)]
    pub error: Option<String>,
}

/// A version of a resource.
#[derive(Debug, Clone, Deserialize)]
pub struct Version {
    /// Its id (to pin it).
    pub id: i64,
    /// The version.
    pub version: Value,
    /// Found at.
    pub created_at: String,
    /// Builds are pinned to it.
    pub pinned: bool,
}

/// A worker.
#[derive(Debug, Clone, Deserialize)]
pub struct Worker {
    /// Its id.
    pub id: String,
    /// Its team (none: global).
    #[serde(default)]
    pub team: Option<String>,
    /// Its tags.
    #[serde(default)]
    pub tags: Vec<String>,
    /// Build slots.
    pub slots: u32,
    /// Builds running.
    pub running: u32,
    /// Its host.
    pub hostname: String,
    /// Its version.
    pub version: String,
    /// `running`, `draining` or `lost`.
    pub state: String,
    /// Its last heartbeat.
    pub last_heartbeat_at: String,
}

/// What setting a pipeline did.
#[derive(Debug, Clone, Deserialize)]
pub struct PipelineSet {
    /// The pipeline now.
    pub pipeline: Pipeline,
    /// It did not exist.
    pub created: bool,
    /// Jobs added, updated, removed.
    pub jobs: Changes,
    /// Resources added, updated, removed.
    pub resources: Changes,
    /// Warnings about the file.
    #[serde(default)]
    pub warnings: Vec<Diagnostic>,
}

/// Names added, updated and removed.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Changes {
    /// Added.
    pub added: Vec<String>,
    /// Changed.
    pub updated: Vec<String>,
    /// Removed.
    pub removed: Vec<String>,
}

/// A problem with a pipeline file, located.
#[derive(Debug, Clone, Deserialize)]
pub struct Diagnostic {
    /// `error` or `warning`.
    pub severity: String,
    /// What is wrong.
    pub message: String,
    /// What to do.
    #[serde(default)]
    pub help: Option<String>,
    /// The file.
    #[serde(default)]
    pub file: Option<String>,
    /// The line, from 1.
    #[serde(default)]
    pub line: Option<usize>,
    /// The column, from 1.
    #[serde(default)]
    pub column: Option<usize>,
}

/// One chunk of a step's output.
#[derive(Debug, Clone, Deserialize)]
pub struct LogChunk {
    /// The attempt.
    pub attempt: u32,
    /// The step's index.
    pub step: u32,
    /// Its place among the step's chunks.
    pub seq: u64,
    /// Whole lines.
    pub text: String,
}

/// The `meta` of a page.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct PageMeta {
    /// More items follow.
    pub has_more: bool,
    /// `?before=` for the next page.
    #[serde(default)]
    pub next_before: Option<i64>,
}

/// What an import copied (`POST /admin/import`).
#[derive(Debug, Clone, Deserialize)]
pub struct Transfer {
    /// Each table, parents first.
    pub tables: Vec<TransferTable>,
}

/// The rows copied of one table.
#[derive(Debug, Clone, Deserialize)]
pub struct TransferTable {
    /// The table.
    pub table: String,
    /// Its rows.
    pub rows: u64,
}
