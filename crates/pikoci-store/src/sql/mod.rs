//! `SqlStore`: the `Store` on sea-orm, one implementation for every backend. Each concern lives
//! in its own module as functions taking the store; this module holds the connection, the
//! transaction and retry rules, and the trait implementation that routes to those functions.

mod accounts;
mod approvals;
mod audit_log;
mod builds;
mod convert;
mod dispatch;
mod logs;
mod monitoring;
mod pipelines;
mod resources;
mod secrets;
mod sso;
mod teams;
mod transfer;
mod triggers;
mod versions;
mod workers;

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use pikoci_core::model::ResourceRef;
use pikoci_core::secrets::Secret;
use pikoci_core::store::*;
use sea_orm::{
    DatabaseConnection, DatabaseTransaction, DbBackend, IsolationLevel, SqliteTransactionMode,
    TransactionOptions, TransactionTrait,
};
use sea_orm_migration::MigratorTrait;

use crate::Backend;
use crate::error::{Class, Context, class_of};
use crate::migration::{MigrationLock, Migrator};

/// How many times an operation that hit a deadlock or a busy database is tried.
const ATTEMPTS: u32 = 8;

/// The limit used when a caller passes 0.
const DEFAULT_LIMIT: u64 = 100;

/// A `Store` on a SQL database: in-memory SQLite, a SQLite file, PostgreSQL or MySQL/MariaDB.
#[derive(Clone)]
pub struct SqlStore {
    db: DatabaseConnection,
    backend: Backend,
    counters: Arc<Counters>,
}

/// What a store (and its clones) did: the statements, counted as the connection reports
/// them, and the builds it finished.
#[derive(Debug, Default)]
struct Counters {
    statements: AtomicU64,
    failed: AtomicU64,
    /// By the position of the status in [`BuildStatus::ALL`].
    finished: [AtomicU64; BuildStatus::ALL.len()],
}

impl Counters {
    fn count(&self, failed: bool) {
        self.statements.fetch_add(1, Ordering::Relaxed);
        if failed {
            self.failed.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Counts a build this store moved to `status`, when that finishes it.
    fn moved_to(&self, status: BuildStatus) {
        if !status.is_finished() {
            return;
        }
        if let Some(i) = BuildStatus::ALL.iter().position(|s| *s == status) {
            self.finished[i].fetch_add(1, Ordering::Relaxed);
        }
    }
}

impl std::fmt::Debug for SqlStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The connection pool says nothing useful in logs; the backend does.
        f.debug_struct("SqlStore")
            .field("backend", &self.backend)
            .finish_non_exhaustive()
    }
}

impl SqlStore {
    /// Opens the database `url` names (see [`Backend::from_url`]), creating a missing
    /// PostgreSQL or MySQL database or SQLite file, and brings its schema up to date.
    pub async fn connect(url: &str) -> StoreResult<SqlStore> {
        let store = SqlStore::open(url).await?;
        store.migrate().await?;
        Ok(store)
    }

    /// Opens the database `url` names as [`SqlStore::connect`] does, without migrating it: call
    /// [`SqlStore::migrate`] before using it (to learn which migrations it applied).
    pub async fn open(url: &str) -> StoreResult<SqlStore> {
        let (backend, mut db) = crate::connect::open(url).await?;
        let counters = Arc::new(Counters::default());
        let seen = Arc::clone(&counters);
        db.set_metric_callback(move |statement| seen.count(statement.failed));
        Ok(SqlStore {
            db,
            backend,
            counters,
        })
    }

    /// Counts a statement sent around the connection (and so not seen by its callback).
    pub(crate) fn count_statement(&self, failed: bool) {
        self.counters.count(failed);
    }

    /// The database system.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// Applies the migrations the database does not have yet; returns their names (empty when
    /// the schema was up to date).
    ///
    /// One server at a time migrates a PostgreSQL or MySQL database: others started at the
    /// same moment wait for it (up to 10 minutes), then find nothing left to do.
    pub async fn migrate(&self) -> StoreResult<Vec<String>> {
        let lock = MigrationLock::take(&self.db, self.backend).await?;
        let migrated = async {
            let pending = Migrator::get_pending_migrations(&self.db)
                .await
                .context(|| "failed to read the applied migrations")?;
            Migrator::up(&self.db, None)
                .await
                .context(|| "failed to migrate the database schema")?;
            Ok(pending.iter().map(|m| m.name().to_owned()).collect())
        }
        .await;
        lock.release().await;
        migrated
    }

    /// The names of the migrations applied to the database, in order.
    pub async fn applied_migrations(&self) -> StoreResult<Vec<String>> {
        let applied = Migrator::get_applied_migrations(&self.db)
            .await
            .context(|| "failed to read the applied migrations")?;
        Ok(applied.iter().map(|m| m.name().to_owned()).collect())
    }

    /// The names of every migration this build knows, in order.
    pub fn known_migrations() -> Vec<String> {
        Migrator::migrations()
            .iter()
            .map(|m| m.name().to_owned())
            .collect()
    }

    /// Closes the connections.
    pub async fn close(self) -> StoreResult<()> {
        self.db
            .close()
            .await
            .context(|| "failed to close the database")
    }

    pub(crate) fn db(&self) -> &DatabaseConnection {
        &self.db
    }

    /// Starts a write transaction: `BEGIN IMMEDIATE` on SQLite (so two writers queue on the
    /// busy timeout instead of failing on lock upgrade), `READ COMMITTED` elsewhere (so every
    /// statement after a row lock sees the latest committed rows).
    pub(crate) async fn begin(&self) -> StoreResult<DatabaseTransaction> {
        let options = match self.db.get_database_backend() {
            DbBackend::Sqlite => TransactionOptions {
                sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
                ..TransactionOptions::default()
            },
            _ => TransactionOptions {
                isolation_level: Some(IsolationLevel::ReadCommitted),
                ..TransactionOptions::default()
            },
        };
        self.db
            .begin_with_options(options)
            .await
            .context(|| "failed to start a transaction")
    }
}

/// Runs `op` again while it fails with a deadlock or busy database (and, with
/// `duplicates_too`, a unique-key race that a fresh run resolves), with a growing pause.
pub(crate) async fn retrying<T, F, Fut>(duplicates_too: bool, mut op: F) -> StoreResult<T>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = StoreResult<T>>,
{
    let mut pause = Duration::from_millis(2);
    for _ in 1..ATTEMPTS {
        match op().await {
            Err(err)
                if matches!(class_of(&err), Some(Class::Transient))
                    || (duplicates_too && class_of(&err) == Some(Class::Duplicate)) =>
            {
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_millis(200));
            }
            other => return other,
        }
    }
    op().await
}

/// The row limit for a caller's `limit` (0 means the default).
pub(crate) fn limit(limit: u32) -> u64 {
    if limit == 0 {
        DEFAULT_LIMIT
    } else {
        u64::from(limit)
    }
}

#[async_trait]
impl Store for SqlStore {
    async fn create_team(&self, name: &str, at: DateTime<Utc>) -> StoreResult<Team> {
        teams::create(self, name, at).await
    }

    async fn team(&self, name: &str) -> StoreResult<Team> {
        teams::by_name(self, name).await
    }

    async fn team_by_id(&self, id: TeamId) -> StoreResult<Team> {
        teams::by_id(self, id).await
    }

    async fn list_teams(&self) -> StoreResult<Vec<Team>> {
        teams::list(self).await
    }

    async fn delete_team(&self, id: TeamId) -> StoreResult<()> {
        teams::delete(self, id).await
    }

    async fn set_pipeline(
        &self,
        team: TeamId,
        spec: PipelineSpec,
        at: DateTime<Utc>,
    ) -> StoreResult<SetPipelineOutcome> {
        pipelines::set(self, team, &spec, at).await
    }

    async fn pipeline(&self, team: TeamId, name: &str) -> StoreResult<StoredPipeline> {
        pipelines::by_name(self, team, name).await
    }

    async fn pipeline_by_id(&self, id: PipelineId) -> StoreResult<StoredPipeline> {
        pipelines::by_id(self, id).await
    }

    async fn list_pipelines(&self, team: TeamId) -> StoreResult<Vec<StoredPipeline>> {
        pipelines::list(self, team).await
    }

    async fn delete_pipeline(&self, id: PipelineId) -> StoreResult<()> {
        pipelines::delete(self, id).await
    }

    async fn set_pipeline_paused(&self, id: PipelineId, paused: bool) -> StoreResult<()> {
        pipelines::set_paused(self, id, paused).await
    }

    async fn set_pipeline_public(&self, id: PipelineId, public: bool) -> StoreResult<()> {
        pipelines::set_public(self, id, public).await
    }

    async fn export(&self, path: &std::path::Path) -> StoreResult<TransferSummary> {
        transfer::export(self, path).await
    }

    async fn import(&self, path: &std::path::Path, replace: bool) -> StoreResult<TransferSummary> {
        transfer::import(self, path, replace).await
    }

    async fn rename_pipeline(
        &self,
        id: PipelineId,
        name: &str,
        resealed: &[ResealedSecret],
    ) -> StoreResult<StoredPipeline> {
        secrets::rename_pipeline(self, id, name, resealed).await
    }

    async fn jobs(&self, pipeline: PipelineId) -> StoreResult<Vec<StoredJob>> {
        pipelines::jobs(self, pipeline).await
    }

    async fn job(&self, pipeline: PipelineId, name: &str) -> StoreResult<StoredJob> {
        pipelines::job_by_name(self, pipeline, name).await
    }

    async fn job_by_id(&self, id: JobId) -> StoreResult<StoredJob> {
        pipelines::job_by_id(self, id).await
    }

    async fn set_job_paused(&self, id: JobId, paused: bool) -> StoreResult<()> {
        pipelines::set_job_paused(self, id, paused).await
    }

    async fn resources(&self, pipeline: PipelineId) -> StoreResult<Vec<StoredResource>> {
        resources::list(self, pipeline).await
    }

    async fn resource(
        &self,
        pipeline: PipelineId,
        resource: &ResourceRef,
    ) -> StoreResult<StoredResource> {
        resources::by_name(self, pipeline, resource).await
    }

    async fn resource_by_id(&self, id: ResourceId) -> StoreResult<StoredResource> {
        resources::by_id(self, id).await
    }

    async fn resource_by_webhook_token(&self, token: &str) -> StoreResult<StoredResource> {
        resources::by_webhook_token(self, token).await
    }

    async fn regenerate_webhook_token(&self, id: ResourceId) -> StoreResult<String> {
        resources::regenerate_webhook_token(self, id).await
    }

    async fn request_check(&self, id: ResourceId, at: DateTime<Utc>) -> StoreResult<()> {
        resources::request_check(self, id, at).await
    }

    async fn claim_due_checks(
        &self,
        claim: &CheckClaim,
        limit: usize,
    ) -> StoreResult<Vec<ClaimedCheck>> {
        resources::claim_due_checks(self, claim, limit).await
    }

    async fn renew_check_leases(
        &self,
        worker_id: &str,
        running: &[RunningCheck],
        until: DateTime<Utc>,
    ) -> StoreResult<Vec<RunningCheck>> {
        resources::renew_check_leases(self, worker_id, running, until).await
    }

    async fn finish_check(
        &self,
        id: ResourceId,
        attempt: u32,
        outcome: CheckRecord,
    ) -> StoreResult<()> {
        resources::finish_check(self, id, attempt, &outcome).await
    }

    async fn pin_version(
        &self,
        id: ResourceId,
        version: Option<VersionId>,
        comment: &str,
    ) -> StoreResult<()> {
        resources::pin_version(self, id, version, comment).await
    }

    async fn create_versions(
        &self,
        resource: ResourceId,
        versions: &[NewVersion],
        at: DateTime<Utc>,
    ) -> StoreResult<Vec<ResourceVersion>> {
        versions::create(self, resource, versions, at).await
    }

    async fn versions(
        &self,
        resource: ResourceId,
        before: Option<VersionId>,
        limit: u32,
    ) -> StoreResult<Vec<ResourceVersion>> {
        versions::list(self, resource, before, limit).await
    }

    async fn version_by_id(&self, id: VersionId) -> StoreResult<ResourceVersion> {
        versions::by_id(self, id).await
    }

    async fn latest_version(&self, resource: ResourceId) -> StoreResult<Option<ResourceVersion>> {
        Ok(versions::list(self, resource, None, 1).await?.pop())
    }

    async fn find_version(
        &self,
        resource: ResourceId,
        version: &serde_json::Value,
    ) -> StoreResult<Option<ResourceVersion>> {
        versions::find(self, resource, version).await
    }

    async fn passed_versions(&self, query: &PassedQuery) -> StoreResult<Vec<ResourceVersion>> {
        versions::passed(self, query).await
    }

    async fn create_build(&self, build: NewBuild) -> StoreResult<Build> {
        builds::create(self, &build).await
    }

    async fn retry_build(&self, of: BuildId, at: DateTime<Utc>) -> StoreResult<Build> {
        builds::retry(self, of, at).await
    }

    async fn build(&self, id: BuildId) -> StoreResult<Build> {
        builds::by_id(self, id).await
    }

    async fn build_by_number(&self, job: JobId, number: BuildNumber) -> StoreResult<Build> {
        builds::by_number(self, job, number).await
    }

    async fn list_builds(&self, filter: &BuildFilter) -> StoreResult<Vec<Build>> {
        builds::list(self, filter).await
    }

    async fn transition_build(&self, transition: &BuildTransition) -> StoreResult<Build> {
        let build = builds::transition(self, transition).await?;
        self.counters.moved_to(build.status);
        Ok(build)
    }

    async fn claim_next_pending(&self, request: &ClaimRequest) -> StoreResult<Option<Build>> {
        dispatch::claim_next_pending(self, request).await
    }

    async fn renew_leases(
        &self,
        worker_id: &str,
        running: &[RunningBuild],
        until: DateTime<Utc>,
    ) -> StoreResult<Vec<BuildId>> {
        dispatch::renew_leases(self, worker_id, running, until).await
    }

    async fn requeue_expired(
        &self,
        lapsed_before: DateTime<Utc>,
        now: DateTime<Utc>,
        max_requeues: u32,
    ) -> StoreResult<Vec<RequeuedBuild>> {
        let requeued = dispatch::requeue_expired(self, lapsed_before, now, max_requeues).await?;
        for build in &requeued {
            self.counters.moved_to(build.status);
        }
        Ok(requeued)
    }

    async fn request_cancel(
        &self,
        build: BuildId,
        attempt: u32,
        deadline: DateTime<Utc>,
    ) -> StoreResult<Build> {
        let build = dispatch::request_cancel(self, build, attempt, deadline).await?;
        self.counters.moved_to(build.status);
        Ok(build)
    }

    async fn overdue_cancels(&self, now: DateTime<Utc>, limit: u32) -> StoreResult<Vec<Build>> {
        dispatch::overdue_cancels(self, now, limit).await
    }

    async fn record_step(&self, build: BuildId, step: &BuildStep) -> StoreResult<()> {
        builds::record_step(self, build, step).await
    }

    async fn build_steps(&self, build: BuildId) -> StoreResult<Vec<BuildStep>> {
        builds::steps(self, build).await
    }

    async fn record_build_versions(
        &self,
        build: BuildId,
        versions: &[BuildVersion],
    ) -> StoreResult<()> {
        versions::record_build_versions(self, build, versions).await
    }

    async fn build_versions(&self, build: BuildId) -> StoreResult<Vec<BuildVersion>> {
        versions::build_versions(self, build).await
    }

    async fn record_approval(
        &self,
        build: BuildId,
        voter: &str,
        at: DateTime<Utc>,
    ) -> StoreResult<Vec<ApprovalVote>> {
        approvals::record(self, build, voter, at).await
    }

    async fn approval_votes(&self, build: BuildId) -> StoreResult<Vec<ApprovalVote>> {
        approvals::list(self, build).await
    }

    async fn append_log_chunks(&self, chunks: &[NewLogChunk]) -> StoreResult<()> {
        logs::append(self, chunks).await
    }

    async fn read_log(
        &self,
        build: BuildId,
        after: Option<LogCursor>,
        limit: u32,
    ) -> StoreResult<Vec<LogChunk>> {
        logs::read(self, build, after, limit).await
    }

    async fn read_attempt_log(
        &self,
        build: BuildId,
        attempt: u32,
        from: LogPosition,
        limit: u32,
    ) -> StoreResult<Vec<LogChunk>> {
        logs::read_attempt(self, build, attempt, from, limit).await
    }

    async fn log_chunk_counts(
        &self,
        build: BuildId,
        attempt: u32,
    ) -> StoreResult<std::collections::BTreeMap<u32, u64>> {
        logs::chunk_counts(self, build, attempt).await
    }

    async fn delete_logs_before(&self, cutoff: DateTime<Utc>) -> StoreResult<u64> {
        logs::delete_logs_before(self, cutoff).await
    }

    async fn delete_builds_before(&self, cutoff: DateTime<Utc>) -> StoreResult<u64> {
        logs::delete_builds_before(self, cutoff).await
    }

    async fn record_heartbeat(&self, heartbeat: &WorkerHeartbeat) -> StoreResult<Worker> {
        workers::record_heartbeat(self, heartbeat).await
    }

    async fn workers(&self) -> StoreResult<Vec<Worker>> {
        workers::list(self).await
    }

    async fn worker(&self, worker_id: &str) -> StoreResult<Worker> {
        workers::one(self, worker_id).await
    }

    async fn worker_key(&self, scope: WorkerKeyScope) -> StoreResult<Option<Secret>> {
        workers::key(self, scope).await
    }

    async fn create_worker_key(
        &self,
        scope: WorkerKeyScope,
        value: &Secret,
        at: DateTime<Utc>,
    ) -> StoreResult<Secret> {
        workers::create_key(self, scope, value, at).await
    }

    async fn replace_worker_key(
        &self,
        scope: WorkerKeyScope,
        value: &Secret,
        at: DateTime<Utc>,
    ) -> StoreResult<()> {
        workers::replace_key(self, scope, value, at, false).await
    }

    async fn regenerate_worker_key(
        &self,
        scope: WorkerKeyScope,
        value: &Secret,
        at: DateTime<Utc>,
    ) -> StoreResult<()> {
        workers::replace_key(self, scope, value, at, true).await
    }

    async fn audit_entries(
        &self,
        team: TeamId,
        query: &audit::AuditQuery,
    ) -> StoreResult<Vec<audit::AuditEntry>> {
        audit_log::entries(self, team, query).await
    }

    async fn delete_worker(&self, worker_id: &str) -> StoreResult<bool> {
        workers::delete(self, worker_id).await
    }

    async fn delete_workers_before(&self, cutoff: DateTime<Utc>) -> StoreResult<Vec<String>> {
        workers::delete_before(self, cutoff).await
    }

    async fn create_trigger_event(
        &self,
        team: TeamId,
        resource: &str,
        version: &serde_json::Value,
        at: DateTime<Utc>,
    ) -> StoreResult<TriggerEvent> {
        triggers::create(self, team, resource, version, at).await
    }

    async fn create_trigger_event_once(
        &self,
        team: TeamId,
        resource: &str,
        version: &serde_json::Value,
        key: &str,
        at: DateTime<Utc>,
    ) -> StoreResult<TriggerEvent> {
        triggers::create_once(self, team, resource, version, key, at).await
    }

    async fn trigger_events(
        &self,
        team: TeamId,
        resource: &str,
        after: Option<TriggerEventId>,
        limit: u32,
    ) -> StoreResult<Vec<TriggerEvent>> {
        triggers::list(self, team, resource, after, limit).await
    }

    async fn gauges(&self, now: DateTime<Utc>) -> StoreResult<StoreGauges> {
        monitoring::gauges(self, now).await
    }

    fn statistics(&self) -> StoreStatistics {
        StoreStatistics {
            statements: self.counters.statements.load(Ordering::Relaxed),
            failed: self.counters.failed.load(Ordering::Relaxed),
            finished: BuildStatus::ALL
                .iter()
                .zip(&self.counters.finished)
                .map(|(status, count)| (*status, count.load(Ordering::Relaxed)))
                .filter(|(_, count)| *count > 0)
                .collect(),
        }
    }
}
