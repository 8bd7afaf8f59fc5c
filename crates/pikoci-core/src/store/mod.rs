//! The `Store` port: the server's ground truth (teams, pipelines, resources and their versions,
//! builds and their dispatch state, logs, workers, trigger events).
//!
//! The trait is shaped by use cases, not tables: a pipeline is set with all its jobs, resources
//! and types in one transaction; `create_versions` deduplicates; every `claim_*` and status change
//! is a conditional update that is safe with several servers on one database and fails with a
//! [`ErrorKind::Conflict`] when another actor got there first. Records are plain Rust; no
//! database type appears here. Implementations live in `pikoci-store`.
//!
//! Times are passed in by the caller (the server's clock), which keeps the store deterministic
//! under test; they are stored with millisecond precision. A `limit` of 0 means the store's
//! default page size (100).

mod account;
pub mod audit;
mod build;
mod error;
mod ids;
mod log;
mod monitoring;
mod pipeline;
mod worker;

pub use account::*;
pub use build::*;
pub use error::*;
pub use ids::*;
pub use log::*;
pub use monitoring::*;
pub use pipeline::*;
pub use worker::*;

use std::fmt::Debug;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::model::ResourceRef;

/// The server's persistent state. Object-safe: hold it as `Arc<dyn Store>`.
#[async_trait]
pub trait Store: Send + Sync + Debug {
    // ---- teams ----

    /// Creates a team; `Conflict` if the name is taken, `InvalidInput` if it is not canonical.
    async fn create_team(&self, name: &str, at: DateTime<Utc>) -> StoreResult<Team>;

    /// The team with this name.
    async fn team(&self, name: &str) -> StoreResult<Team>;

    /// The team with this id.
    async fn team_by_id(&self, id: TeamId) -> StoreResult<Team>;

    /// Every team, by name.
    async fn list_teams(&self) -> StoreResult<Vec<Team>>;

    /// Deletes a team with everything it owns.
    async fn delete_team(&self, id: TeamId) -> StoreResult<()>;

    // ---- pipelines and jobs ----

    /// Creates or updates a pipeline with its jobs, resources and types, in one transaction (a
    /// failed update leaves the old pipeline as it was). Jobs and resources are matched by name:
    /// kept ones keep their id, builds, versions, paused flag, webhook token, pin and, when
    /// `check_interval` did not change, `next_check_at`; new resources are due for a check at
    /// `at`; missing ones are deleted. The pipeline's paused and public flags are unchanged.
    async fn set_pipeline(
        &self,
        team: TeamId,
        spec: PipelineSpec,
        at: DateTime<Utc>,
    ) -> StoreResult<SetPipelineOutcome>;

    /// The pipeline with this name in this team.
    async fn pipeline(&self, team: TeamId, name: &str) -> StoreResult<StoredPipeline>;

    /// The pipeline with this id.
    async fn pipeline_by_id(&self, id: PipelineId) -> StoreResult<StoredPipeline>;

    /// The team's pipelines, by name.
    async fn list_pipelines(&self, team: TeamId) -> StoreResult<Vec<StoredPipeline>>;

    /// Deletes a pipeline with its jobs, builds, logs, resources and versions.
    async fn delete_pipeline(&self, id: PipelineId) -> StoreResult<()>;

    /// Pauses or unpauses a pipeline and sets every one of its jobs' paused flags the same way.
    async fn set_pipeline_paused(&self, id: PipelineId, paused: bool) -> StoreResult<()>;

    /// Makes a pipeline public or private.
    async fn set_pipeline_public(&self, id: PipelineId, public: bool) -> StoreResult<()>;

    /// Writes the whole state (every table but the workers' registry) into a new SQLite
    /// database at `path`, with every migration applied: the file a `sqlite` store opens as it
    /// is. Rows are read from one consistent snapshot. `Conflict` when `path` exists.
    async fn export(&self, path: &std::path::Path) -> StoreResult<TransferSummary>;

    /// Replaces the whole state (but the workers' registry) by the export at `path`, in one
    /// transaction: ids, builds, logs, versions and sealed secrets as they were. `InvalidInput`
    /// when the file is not an export, or was made by a newer version; without `replace`,
    /// `Conflict` when this store holds more than empty teams.
    async fn import(&self, path: &std::path::Path, replace: bool) -> StoreResult<TransferSummary>;

    /// Renames a pipeline and, in the same transaction, replaces the values of its `secret`
    /// entries (sealed with the pipeline's name as associated data) by `resealed`. `resealed`
    /// must hold every such entry as it is stored now (`old`), or the rename is a `Conflict`:
    /// an entry set meanwhile would stay sealed to the old name. `Conflict` when the team has
    /// a pipeline of that name; `InvalidInput` when the name is not canonical.
    async fn rename_pipeline(
        &self,
        id: PipelineId,
        name: &str,
        resealed: &[ResealedSecret],
    ) -> StoreResult<StoredPipeline>;

    /// The pipeline's jobs, in declaration order.
    async fn jobs(&self, pipeline: PipelineId) -> StoreResult<Vec<StoredJob>>;

    /// The job with this name in this pipeline.
    async fn job(&self, pipeline: PipelineId, name: &str) -> StoreResult<StoredJob>;

    /// The job with this id.
    async fn job_by_id(&self, id: JobId) -> StoreResult<StoredJob>;

    /// Pauses or unpauses one job.
    async fn set_job_paused(&self, id: JobId, paused: bool) -> StoreResult<()>;

    // ---- resources and versions ----

    /// The pipeline's resources, in declaration order.
    async fn resources(&self, pipeline: PipelineId) -> StoreResult<Vec<StoredResource>>;

    /// The resource with this type and name in this pipeline.
    async fn resource(
        &self,
        pipeline: PipelineId,
        resource: &ResourceRef,
    ) -> StoreResult<StoredResource>;

    /// The resource with this id.
    async fn resource_by_id(&self, id: ResourceId) -> StoreResult<StoredResource>;

    /// The resource whose webhook token this is.
    async fn resource_by_webhook_token(&self, token: &str) -> StoreResult<StoredResource>;

    /// Replaces a resource's webhook token with a new random one (at least 128 bits) and
    /// returns it; the old one stops working.
    async fn regenerate_webhook_token(&self, id: ResourceId) -> StoreResult<String>;

    /// Makes a resource's check due at `at` (webhooks, "check now").
    async fn request_check(&self, id: ResourceId, at: DateTime<Utc>) -> StoreResult<()>;

    /// Claims up to `limit` of the most overdue checks this worker may run, most overdue first:
    /// resources with `next_check_at <= now` and no check in flight, or whose check lease
    /// lapsed before [`CheckClaim::lapsed_before`]. Moves each one's `next_check_at` one
    /// `check_interval` past the time it was due (past `now` when that is already behind), so that
    /// waiting for a claim does not push later checks back, and bumps its check attempt. Claimers
    /// racing for the same check get it once. An empty list: nothing is due for this worker.
    async fn claim_due_checks(
        &self,
        claim: &CheckClaim,
        limit: usize,
    ) -> StoreResult<Vec<ClaimedCheck>>;

    /// Extends the leases of the checks a worker still runs (at the attempts it runs) until
    /// `until` and returns the ones renewed; the others are no longer the worker's.
    async fn renew_check_leases(
        &self,
        worker_id: &str,
        running: &[RunningCheck],
        until: DateTime<Utc>,
    ) -> StoreResult<Vec<RunningCheck>>;

    /// Records the outcome of a check and releases it; `Conflict` if `attempt` is not the
    /// current check attempt (the check was claimed again after its lease lapsed).
    async fn finish_check(
        &self,
        id: ResourceId,
        attempt: u32,
        outcome: CheckRecord,
    ) -> StoreResult<()>;

    /// Pins a resource to one of its versions, or unpins it (`None`). `comment` says why (it may
    /// be empty, and has at most [`MAX_PIN_COMMENT`] characters): a pin keeps it, with who
    /// pinned ([`audit::actor`]) and when; the audit log records it for both.
    async fn pin_version(
        &self,
        id: ResourceId,
        version: Option<VersionId>,
        comment: &str,
    ) -> StoreResult<()>;

    /// Stores the versions a check or put found, oldest first, and returns the ones that were
    /// not known yet, in the order given. Versions equal as JSON objects (whatever their key
    /// order) are the same version; duplicates within `versions` count once.
    async fn create_versions(
        &self,
        resource: ResourceId,
        versions: &[NewVersion],
        at: DateTime<Utc>,
    ) -> StoreResult<Vec<ResourceVersion>>;

    /// A resource's versions, newest first, older than `before` when given.
    async fn versions(
        &self,
        resource: ResourceId,
        before: Option<VersionId>,
        limit: u32,
    ) -> StoreResult<Vec<ResourceVersion>>;

    /// The version with this id.
    async fn version_by_id(&self, id: VersionId) -> StoreResult<ResourceVersion>;

    /// A resource's newest version.
    async fn latest_version(&self, resource: ResourceId) -> StoreResult<Option<ResourceVersion>>;

    /// The stored version of a resource equal to `version` as a JSON object (whatever its key
    /// order), if there is one.
    async fn find_version(
        &self,
        resource: ResourceId,
        version: &serde_json::Value,
    ) -> StoreResult<Option<ResourceVersion>>;

    /// Versions that went through every upstream job (see [`PassedQuery`]), newest first.
    async fn passed_versions(&self, query: &PassedQuery) -> StoreResult<Vec<ResourceVersion>>;

    // ---- builds ----

    /// Creates a build with the job's next number (`1`, `2`, ...).
    async fn create_build(&self, build: NewBuild) -> StoreResult<Build>;

    /// Creates a pending retry of a finished build: `N.1`, then `N.2` (a retry of `N.1` is
    /// `N.2` too). It keeps the original's inputs and trigger, and records the versions the
    /// original's gets used for it, in the same transaction. `InvalidInput` when the build is
    /// not finished or its job has `disable_retry`.
    async fn retry_build(&self, of: BuildId, at: DateTime<Utc>) -> StoreResult<Build>;

    /// The build with this id.
    async fn build(&self, id: BuildId) -> StoreResult<Build>;

    /// The build with this number in this job.
    async fn build_by_number(&self, job: JobId, number: BuildNumber) -> StoreResult<Build>;

    /// Builds matching a filter, newest first.
    async fn list_builds(&self, filter: &BuildFilter) -> StoreResult<Vec<Build>>;

    /// Changes a build's status if it is still where the caller thinks it is; `Conflict`
    /// otherwise (nothing changes), `NotFound` when the build does not exist.
    async fn transition_build(&self, transition: &BuildTransition) -> StoreResult<Build>;

    /// Claims the oldest pending build this worker may run, skipping paused jobs and pipelines,
    /// jobs at their `concurrency`, and jobs with a serial group that has an active build. The
    /// build becomes `assigned` to the worker with its attempt bumped and a lease until
    /// `lease_until`. Safe with several servers: no build is ever claimed twice.
    async fn claim_next_pending(&self, request: &ClaimRequest) -> StoreResult<Option<Build>>;

    /// Extends the leases of the builds a worker still runs (at the attempts it runs) and
    /// returns the ones renewed; the others are no longer the worker's.
    async fn renew_leases(
        &self,
        worker_id: &str,
        running: &[RunningBuild],
        until: DateTime<Utc>,
    ) -> StoreResult<Vec<BuildId>>;

    /// Takes back assigned or started builds whose lease lapsed before `lapsed_before`: back
    /// to `pending` when they were requeued fewer than `max_requeues` times, `errored`
    /// otherwise (finished at `now`), and `cancelled` when a cancel was asked of the lost
    /// worker (see [`Store::request_cancel`]).
    async fn requeue_expired(
        &self,
        lapsed_before: DateTime<Utc>,
        now: DateTime<Utc>,
        max_requeues: u32,
    ) -> StoreResult<Vec<RequeuedBuild>>;

    /// Records that the worker running `build` at `attempt` was asked to cancel it and must
    /// report it finished by `deadline`; a deadline set before is kept. `Conflict` when the
    /// build is no longer held by a worker at that attempt. The deadline lives in the store, so
    /// a server that restarts still forces the cancel when it passes.
    async fn request_cancel(
        &self,
        build: BuildId,
        attempt: u32,
        deadline: DateTime<Utc>,
    ) -> StoreResult<Build>;

    /// Builds still held by a worker whose cancel deadline is not after `now`, oldest first, at
    /// most `limit`.
    async fn overdue_cancels(&self, now: DateTime<Utc>, limit: u32) -> StoreResult<Vec<Build>>;

    /// Records a step's state (insert or update by `(attempt, step)`); `Conflict` when
    /// `step.attempt` is not the build's current attempt. A step's status never goes back:
    /// once a step has a final status it keeps the first one it got, and a late `started`
    /// (events arrive out of order) only fills in what is missing (start time, name, kind).
    /// An empty `name` or `kind` keeps the stored one.
    async fn record_step(&self, build: BuildId, step: &BuildStep) -> StoreResult<()>;

    /// The steps of every attempt of a build, by attempt then step.
    async fn build_steps(&self, build: BuildId) -> StoreResult<Vec<BuildStep>>;

    /// Records versions a build used; recording the same one twice is harmless.
    async fn record_build_versions(
        &self,
        build: BuildId,
        versions: &[BuildVersion],
    ) -> StoreResult<()>;

    /// The versions a build used, in the order recorded.
    async fn build_versions(&self, build: BuildId) -> StoreResult<Vec<BuildVersion>>;

    /// Records `voter`'s approval of a build waiting for approval and returns every vote so
    /// far, oldest first; a second vote of the same voter changes nothing. `Conflict` when the
    /// build is not waiting for approval.
    async fn record_approval(
        &self,
        build: BuildId,
        voter: &str,
        at: DateTime<Utc>,
    ) -> StoreResult<Vec<ApprovalVote>>;

    /// The approvals of a build, oldest first.
    async fn approval_votes(&self, build: BuildId) -> StoreResult<Vec<ApprovalVote>>;

    // ---- logs and retention ----

    /// Stores log chunks (compressed); a chunk whose key is already stored is ignored.
    async fn append_log_chunks(&self, chunks: &[NewLogChunk]) -> StoreResult<()>;

    /// A build's log chunks after `after` (from the start when `None`), in cursor order.
    async fn read_log(
        &self,
        build: BuildId,
        after: Option<LogCursor>,
        limit: u32,
    ) -> StoreResult<Vec<LogChunk>>;

    /// Up to `limit` chunks of one attempt's log, from `from` on (included), in [`LogPosition`]
    /// order: the order its text reads. Reading on from [`LogPosition::after`] the last chunk
    /// pages through the attempt without holding it whole.
    async fn read_attempt_log(
        &self,
        build: BuildId,
        attempt: u32,
        from: LogPosition,
        limit: u32,
    ) -> StoreResult<Vec<LogChunk>>;

    /// How many chunks each step of one attempt's log has stored (steps without any are left
    /// out): whether the chunks a worker reports sending have all arrived.
    async fn log_chunk_counts(
        &self,
        build: BuildId,
        attempt: u32,
    ) -> StoreResult<std::collections::BTreeMap<u32, u64>>;

    /// Deletes the logs of builds that finished before `cutoff`; returns the chunks deleted.
    async fn delete_logs_before(&self, cutoff: DateTime<Utc>) -> StoreResult<u64>;

    /// Deletes builds that finished before `cutoff`, with their steps, versions used and
    /// logs; returns the builds deleted.
    async fn delete_builds_before(&self, cutoff: DateTime<Utc>) -> StoreResult<u64>;

    // ---- the audit log ----
    //
    // Implementations record the changes of [`audit::actions`] under [`audit::actor`], which
    // is the calling task's: a wrapper that moves calls to another task carries it along
    // (`audit::acting_as`), or the changes go unrecorded.

    /// A team's audit log entries that `query` selects, newest first (see [`audit`]).
    async fn audit_entries(
        &self,
        team: TeamId,
        query: &audit::AuditQuery,
    ) -> StoreResult<Vec<audit::AuditEntry>>;

    // ---- workers and trigger events ----

    /// Records a heartbeat, registering the worker on its first one.
    async fn record_heartbeat(&self, heartbeat: &WorkerHeartbeat) -> StoreResult<Worker>;

    /// Every registered worker, by id.
    async fn workers(&self) -> StoreResult<Vec<Worker>>;

    /// One registered worker; `NotFound` when it is not registered.
    async fn worker(&self, worker_id: &str) -> StoreResult<Worker>;

    /// The stored key of `scope`, if one was made. The value is the server's to read: the store
    /// keeps it as given (sealed when the server has a master key).
    async fn worker_key(
        &self,
        scope: WorkerKeyScope,
    ) -> StoreResult<Option<crate::secrets::Secret>>;

    /// Stores `value` as the key of `scope` unless one is stored; returns the stored one (the
    /// value of another server that came first, when one did).
    async fn create_worker_key(
        &self,
        scope: WorkerKeyScope,
        value: &crate::secrets::Secret,
        at: DateTime<Utc>,
    ) -> StoreResult<crate::secrets::Secret>;

    /// Stores `value` as the key of `scope`, replacing the one stored (the same key sealed
    /// anew, or the one `--worker-token` sets).
    async fn replace_worker_key(
        &self,
        scope: WorkerKeyScope,
        value: &crate::secrets::Secret,
        at: DateTime<Utc>,
    ) -> StoreResult<()>;

    /// Like [`Store::replace_worker_key`], for a token made anew: recorded in the team's audit
    /// log (`worker_token.regenerated`) when someone acts.
    async fn regenerate_worker_key(
        &self,
        scope: WorkerKeyScope,
        value: &crate::secrets::Secret,
        at: DateTime<Utc>,
    ) -> StoreResult<()>;

    /// Forgets one worker (it registers again with its next heartbeat); whether it was known.
    async fn delete_worker(&self, worker_id: &str) -> StoreResult<bool>;

    /// Forgets workers silent since before `cutoff`; returns their ids.
    async fn delete_workers_before(&self, cutoff: DateTime<Utc>) -> StoreResult<Vec<String>>;

    /// Appends an event to a team's trigger stream for `resource` (a canonical name).
    async fn create_trigger_event(
        &self,
        team: TeamId,
        resource: &str,
        version: &serde_json::Value,
        at: DateTime<Utc>,
    ) -> StoreResult<TriggerEvent>;

    /// Like [`Store::create_trigger_event`], once per `key`: when the team's stream already
    /// has an event added with this key (a redelivered message), that event is returned and
    /// nothing is added.
    async fn create_trigger_event_once(
        &self,
        team: TeamId,
        resource: &str,
        version: &serde_json::Value,
        key: &str,
        at: DateTime<Utc>,
    ) -> StoreResult<TriggerEvent>;

    /// Events of a team's trigger stream after `after` (from the start when `None`), oldest
    /// first.
    async fn trigger_events(
        &self,
        team: TeamId,
        resource: &str,
        after: Option<TriggerEventId>,
        limit: u32,
    ) -> StoreResult<Vec<TriggerEvent>>;

    // ---- monitoring ----

    /// What `/metrics` reports from the database at `now`: builds by job and status, the
    /// oldest pending build, the checks due, running and lagging.
    async fn gauges(&self, now: DateTime<Utc>) -> StoreResult<StoreGauges>;

    /// The statements run since the store was opened, and how many failed.
    fn statistics(&self) -> StoreStatistics;
}
