//! The real store, with every call run on a blocking thread: tokio does not move paused time
//! forward while a blocking task runs, so a query in flight never lets virtual time (and the
//! database pool's own timeouts) race ahead.

use std::future::Future;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use pikoci_core::model::ResourceRef;
use pikoci_core::store::*;
use pikoci_store::SqlStore;

/// `SqlStore` on SQLite in memory, called from blocking threads.
#[derive(Debug, Clone)]
pub(crate) struct BlockingStore(SqlStore);

impl BlockingStore {
    /// A fresh, migrated in-memory database.
    pub(crate) async fn open() -> BlockingStore {
        let store = run(async { pikoci_store::connect("mem").await })
            .await
            .expect("in-memory store");
        BlockingStore(store)
    }

    /// The store's accounts (not wrapped: no test blocks on them).
    pub(crate) fn accounts(&self) -> Arc<dyn pikoci_core::store::AccountStore> {
        Arc::new(self.0.clone())
    }
}

async fn run<T: Send + 'static>(work: impl Future<Output = T> + Send + 'static) -> T {
    let handle = tokio::runtime::Handle::current();
    // The audit log's actor is the calling task's: it goes along to the blocking thread.
    let actor = pikoci_core::store::audit::actor();
    tokio::task::spawn_blocking(move || {
        handle.block_on(async move {
            match actor {
                Some(actor) => pikoci_core::store::audit::acting_as(actor, work).await,
                None => work.await,
            }
        })
    })
    .await
    .expect("a store call panicked")
}

#[async_trait]
impl Store for BlockingStore {
    async fn create_team(&self, name: &str, at: DateTime<Utc>) -> StoreResult<Team> {
        let s = self.0.clone();
        let name = name.to_owned();
        run(async move { s.create_team(&name, at).await }).await
    }

    async fn team(&self, name: &str) -> StoreResult<Team> {
        let s = self.0.clone();
        let name = name.to_owned();
        run(async move { s.team(&name).await }).await
    }

    async fn team_by_id(&self, id: TeamId) -> StoreResult<Team> {
        let s = self.0.clone();
        run(async move { s.team_by_id(id).await }).await
    }

    async fn list_teams(&self) -> StoreResult<Vec<Team>> {
        let s = self.0.clone();
        run(async move { s.list_teams().await }).await
    }

    async fn delete_team(&self, id: TeamId) -> StoreResult<()> {
        let s = self.0.clone();
        run(async move { s.delete_team(id).await }).await
    }

    async fn set_pipeline(
        &self,
        team: TeamId,
        spec: PipelineSpec,
        at: DateTime<Utc>,
    ) -> StoreResult<SetPipelineOutcome> {
        let s = self.0.clone();
        run(async move { s.set_pipeline(team, spec, at).await }).await
    }

    async fn export(&self, path: &std::path::Path) -> StoreResult<TransferSummary> {
        let s = self.0.clone();
        let path = path.to_owned();
        run(async move { s.export(&path).await }).await
    }

    async fn import(&self, path: &std::path::Path, replace: bool) -> StoreResult<TransferSummary> {
        let s = self.0.clone();
        let path = path.to_owned();
        run(async move { s.import(&path, replace).await }).await
    }

    async fn rename_pipeline(
        &self,
        id: PipelineId,
        name: &str,
        resealed: &[ResealedSecret],
    ) -> StoreResult<StoredPipeline> {
        let s = self.0.clone();
        let name = name.to_owned();
        let resealed = resealed.to_vec();
        run(async move { s.rename_pipeline(id, &name, &resealed).await }).await
    }

    async fn pipeline(&self, team: TeamId, name: &str) -> StoreResult<StoredPipeline> {
        let s = self.0.clone();
        let name = name.to_owned();
        run(async move { s.pipeline(team, &name).await }).await
    }

    async fn pipeline_by_id(&self, id: PipelineId) -> StoreResult<StoredPipeline> {
        let s = self.0.clone();
        run(async move { s.pipeline_by_id(id).await }).await
    }

    async fn list_pipelines(&self, team: TeamId) -> StoreResult<Vec<StoredPipeline>> {
        let s = self.0.clone();
        run(async move { s.list_pipelines(team).await }).await
    }

    async fn delete_pipeline(&self, id: PipelineId) -> StoreResult<()> {
        let s = self.0.clone();
        run(async move { s.delete_pipeline(id).await }).await
    }

    async fn set_pipeline_paused(&self, id: PipelineId, paused: bool) -> StoreResult<()> {
        let s = self.0.clone();
        run(async move { s.set_pipeline_paused(id, paused).await }).await
    }

    async fn set_pipeline_public(&self, id: PipelineId, public: bool) -> StoreResult<()> {
        let s = self.0.clone();
        run(async move { s.set_pipeline_public(id, public).await }).await
    }

    async fn jobs(&self, pipeline: PipelineId) -> StoreResult<Vec<StoredJob>> {
        let s = self.0.clone();
        run(async move { s.jobs(pipeline).await }).await
    }

    async fn job(&self, pipeline: PipelineId, name: &str) -> StoreResult<StoredJob> {
        let s = self.0.clone();
        let name = name.to_owned();
        run(async move { s.job(pipeline, &name).await }).await
    }

    async fn job_by_id(&self, id: JobId) -> StoreResult<StoredJob> {
        let s = self.0.clone();
        run(async move { s.job_by_id(id).await }).await
    }

    async fn set_job_paused(&self, id: JobId, paused: bool) -> StoreResult<()> {
        let s = self.0.clone();
        run(async move { s.set_job_paused(id, paused).await }).await
    }

    async fn resources(&self, pipeline: PipelineId) -> StoreResult<Vec<StoredResource>> {
        let s = self.0.clone();
        run(async move { s.resources(pipeline).await }).await
    }

    async fn resource(
        &self,
        pipeline: PipelineId,
        resource: &ResourceRef,
    ) -> StoreResult<StoredResource> {
        let s = self.0.clone();
        let resource = resource.clone();
        run(async move { s.resource(pipeline, &resource).await }).await
    }

    async fn resource_by_id(&self, id: ResourceId) -> StoreResult<StoredResource> {
        let s = self.0.clone();
        run(async move { s.resource_by_id(id).await }).await
    }

    async fn resource_by_webhook_token(&self, token: &str) -> StoreResult<StoredResource> {
        let s = self.0.clone();
        let token = token.to_owned();
        run(async move { s.resource_by_webhook_token(&token).await }).await
    }

    async fn regenerate_webhook_token(&self, id: ResourceId) -> StoreResult<String> {
        let s = self.0.clone();
        run(async move { s.regenerate_webhook_token(id).await }).await
    }

    async fn request_check(&self, id: ResourceId, at: DateTime<Utc>) -> StoreResult<()> {
        let s = self.0.clone();
        run(async move { s.request_check(id, at).await }).await
    }

    async fn claim_due_checks(
        &self,
        claim: &CheckClaim,
        limit: usize,
    ) -> StoreResult<Vec<ClaimedCheck>> {
        let s = self.0.clone();
        let claim = claim.clone();
        run(async move { s.claim_due_checks(&claim, limit).await }).await
    }

    async fn renew_check_leases(
        &self,
        worker_id: &str,
        running: &[RunningCheck],
        until: DateTime<Utc>,
    ) -> StoreResult<Vec<RunningCheck>> {
        let s = self.0.clone();
        let worker_id = worker_id.to_owned();
        let running = running.to_vec();
        run(async move { s.renew_check_leases(&worker_id, &running, until).await }).await
    }

    async fn finish_check(
        &self,
        id: ResourceId,
        attempt: u32,
        outcome: CheckRecord,
    ) -> StoreResult<()> {
        let s = self.0.clone();
        run(async move { s.finish_check(id, attempt, outcome).await }).await
    }

    async fn pin_version(
        &self,
        id: ResourceId,
        version: Option<VersionId>,
        comment: &str,
    ) -> StoreResult<()> {
        let comment = comment.to_owned();
        let s = self.0.clone();
        run(async move { s.pin_version(id, version, &comment).await }).await
    }

    async fn create_versions(
        &self,
        resource: ResourceId,
        versions: &[NewVersion],
        at: DateTime<Utc>,
    ) -> StoreResult<Vec<ResourceVersion>> {
        let s = self.0.clone();
        let versions = versions.to_vec();
        run(async move { s.create_versions(resource, &versions, at).await }).await
    }

    async fn versions(
        &self,
        resource: ResourceId,
        before: Option<VersionId>,
        limit: u32,
    ) -> StoreResult<Vec<ResourceVersion>> {
        let s = self.0.clone();
        run(async move { s.versions(resource, before, limit).await }).await
    }

    async fn version_by_id(&self, id: VersionId) -> StoreResult<ResourceVersion> {
        let s = self.0.clone();
        run(async move { s.version_by_id(id).await }).await
    }

    async fn latest_version(&self, resource: ResourceId) -> StoreResult<Option<ResourceVersion>> {
        let s = self.0.clone();
        run(async move { s.latest_version(resource).await }).await
    }

    async fn find_version(
        &self,
        resource: ResourceId,
        version: &serde_json::Value,
    ) -> StoreResult<Option<ResourceVersion>> {
        let s = self.0.clone();
        let version = version.clone();
        run(async move { s.find_version(resource, &version).await }).await
    }

    async fn passed_versions(&self, query: &PassedQuery) -> StoreResult<Vec<ResourceVersion>> {
        let s = self.0.clone();
        let query = query.clone();
        run(async move { s.passed_versions(&query).await }).await
    }

    async fn create_build(&self, build: NewBuild) -> StoreResult<Build> {
        let s = self.0.clone();
        run(async move { s.create_build(build).await }).await
    }

    async fn retry_build(&self, of: BuildId, at: DateTime<Utc>) -> StoreResult<Build> {
        let s = self.0.clone();
        run(async move { s.retry_build(of, at).await }).await
    }

    async fn build(&self, id: BuildId) -> StoreResult<Build> {
        let s = self.0.clone();
        run(async move { s.build(id).await }).await
    }

    async fn build_by_number(&self, job: JobId, number: BuildNumber) -> StoreResult<Build> {
        let s = self.0.clone();
        run(async move { s.build_by_number(job, number).await }).await
    }

    async fn list_builds(&self, filter: &BuildFilter) -> StoreResult<Vec<Build>> {
        let s = self.0.clone();
        let filter = filter.clone();
        run(async move { s.list_builds(&filter).await }).await
    }

    async fn transition_build(&self, transition: &BuildTransition) -> StoreResult<Build> {
        let s = self.0.clone();
        let transition = transition.clone();
        run(async move { s.transition_build(&transition).await }).await
    }

    async fn claim_next_pending(&self, request: &ClaimRequest) -> StoreResult<Option<Build>> {
        let s = self.0.clone();
        let request = request.clone();
        run(async move { s.claim_next_pending(&request).await }).await
    }

    async fn renew_leases(
        &self,
        worker_id: &str,
        running: &[RunningBuild],
        until: DateTime<Utc>,
    ) -> StoreResult<Vec<BuildId>> {
        let s = self.0.clone();
        let worker_id = worker_id.to_owned();
        let running = running.to_vec();
        run(async move { s.renew_leases(&worker_id, &running, until).await }).await
    }

    async fn request_cancel(
        &self,
        build: BuildId,
        attempt: u32,
        deadline: DateTime<Utc>,
    ) -> StoreResult<Build> {
        let s = self.0.clone();
        run(async move { s.request_cancel(build, attempt, deadline).await }).await
    }

    async fn overdue_cancels(&self, now: DateTime<Utc>, limit: u32) -> StoreResult<Vec<Build>> {
        let s = self.0.clone();
        run(async move { s.overdue_cancels(now, limit).await }).await
    }

    async fn requeue_expired(
        &self,
        lapsed_before: DateTime<Utc>,
        now: DateTime<Utc>,
        max_requeues: u32,
    ) -> StoreResult<Vec<RequeuedBuild>> {
        let s = self.0.clone();
        run(async move { s.requeue_expired(lapsed_before, now, max_requeues).await }).await
    }

    async fn record_step(&self, build: BuildId, step: &BuildStep) -> StoreResult<()> {
        let s = self.0.clone();
        let step = step.clone();
        run(async move { s.record_step(build, &step).await }).await
    }

    async fn build_steps(&self, build: BuildId) -> StoreResult<Vec<BuildStep>> {
        let s = self.0.clone();
        run(async move { s.build_steps(build).await }).await
    }

    async fn record_build_versions(
        &self,
        build: BuildId,
        versions: &[BuildVersion],
    ) -> StoreResult<()> {
        let s = self.0.clone();
        let versions = versions.to_vec();
        run(async move { s.record_build_versions(build, &versions).await }).await
    }

    async fn build_versions(&self, build: BuildId) -> StoreResult<Vec<BuildVersion>> {
        let s = self.0.clone();
        run(async move { s.build_versions(build).await }).await
    }

    async fn record_approval(
        &self,
        build: BuildId,
        voter: &str,
        at: DateTime<Utc>,
    ) -> StoreResult<Vec<ApprovalVote>> {
        let s = self.0.clone();
        let voter = voter.to_owned();
        run(async move { s.record_approval(build, &voter, at).await }).await
    }

    async fn approval_votes(&self, build: BuildId) -> StoreResult<Vec<ApprovalVote>> {
        let s = self.0.clone();
        run(async move { s.approval_votes(build).await }).await
    }

    async fn append_log_chunks(&self, chunks: &[NewLogChunk]) -> StoreResult<()> {
        let s = self.0.clone();
        let chunks = chunks.to_vec();
        run(async move { s.append_log_chunks(&chunks).await }).await
    }

    async fn read_log(
        &self,
        build: BuildId,
        after: Option<LogCursor>,
        limit: u32,
    ) -> StoreResult<Vec<LogChunk>> {
        let s = self.0.clone();
        run(async move { s.read_log(build, after, limit).await }).await
    }

    async fn read_attempt_log(
        &self,
        build: BuildId,
        attempt: u32,
        from: LogPosition,
        limit: u32,
    ) -> StoreResult<Vec<LogChunk>> {
        let s = self.0.clone();
        run(async move { s.read_attempt_log(build, attempt, from, limit).await }).await
    }

    async fn log_chunk_counts(
        &self,
        build: BuildId,
        attempt: u32,
    ) -> StoreResult<std::collections::BTreeMap<u32, u64>> {
        let s = self.0.clone();
        run(async move { s.log_chunk_counts(build, attempt).await }).await
    }

    async fn delete_logs_before(&self, cutoff: DateTime<Utc>) -> StoreResult<u64> {
        let s = self.0.clone();
        run(async move { s.delete_logs_before(cutoff).await }).await
    }

    async fn delete_builds_before(&self, cutoff: DateTime<Utc>) -> StoreResult<u64> {
        let s = self.0.clone();
        run(async move { s.delete_builds_before(cutoff).await }).await
    }

    async fn record_heartbeat(&self, heartbeat: &WorkerHeartbeat) -> StoreResult<Worker> {
        let s = self.0.clone();
        let heartbeat = heartbeat.clone();
        run(async move { s.record_heartbeat(&heartbeat).await }).await
    }

    async fn workers(&self) -> StoreResult<Vec<Worker>> {
        let s = self.0.clone();
        run(async move { s.workers().await }).await
    }

    async fn worker(&self, worker_id: &str) -> StoreResult<Worker> {
        let s = self.0.clone();
        let worker_id = worker_id.to_owned();
        run(async move { s.worker(&worker_id).await }).await
    }

    async fn worker_key(
        &self,
        scope: WorkerKeyScope,
    ) -> StoreResult<Option<pikoci_core::secrets::Secret>> {
        let s = self.0.clone();
        run(async move { s.worker_key(scope).await }).await
    }

    async fn create_worker_key(
        &self,
        scope: WorkerKeyScope,
        value: &pikoci_core::secrets::Secret,
        at: DateTime<Utc>,
    ) -> StoreResult<pikoci_core::secrets::Secret> {
        let s = self.0.clone();
        let value = value.clone();
        run(async move { s.create_worker_key(scope, &value, at).await }).await
    }

    async fn replace_worker_key(
        &self,
        scope: WorkerKeyScope,
        value: &pikoci_core::secrets::Secret,
        at: DateTime<Utc>,
    ) -> StoreResult<()> {
        let s = self.0.clone();
        let value = value.clone();
        run(async move { s.replace_worker_key(scope, &value, at).await }).await
    }

    async fn regenerate_worker_key(
        &self,
        scope: WorkerKeyScope,
        value: &pikoci_core::secrets::Secret,
        at: DateTime<Utc>,
    ) -> StoreResult<()> {
        let s = self.0.clone();
        let value = value.clone();
        run(async move { s.regenerate_worker_key(scope, &value, at).await }).await
    }

    async fn audit_entries(
        &self,
        team: TeamId,
        query: &audit::AuditQuery,
    ) -> StoreResult<Vec<audit::AuditEntry>> {
        let s = self.0.clone();
        let query = query.clone();
        run(async move { s.audit_entries(team, &query).await }).await
    }

    async fn delete_worker(&self, worker_id: &str) -> StoreResult<bool> {
        let s = self.0.clone();
        let worker_id = worker_id.to_owned();
        run(async move { s.delete_worker(&worker_id).await }).await
    }

    async fn delete_workers_before(&self, cutoff: DateTime<Utc>) -> StoreResult<Vec<String>> {
        let s = self.0.clone();
        run(async move { s.delete_workers_before(cutoff).await }).await
    }

    async fn create_trigger_event(
        &self,
        team: TeamId,
        resource: &str,
        version: &serde_json::Value,
        at: DateTime<Utc>,
    ) -> StoreResult<TriggerEvent> {
        let s = self.0.clone();
        let resource = resource.to_owned();
        let version = version.clone();
        run(async move { s.create_trigger_event(team, &resource, &version, at).await }).await
    }

    async fn create_trigger_event_once(
        &self,
        team: TeamId,
        resource: &str,
        version: &serde_json::Value,
        key: &str,
        at: DateTime<Utc>,
    ) -> StoreResult<TriggerEvent> {
        let s = self.0.clone();
        let resource = resource.to_owned();
        let version = version.clone();
        let key = key.to_owned();
        run(async move {
            s.create_trigger_event_once(team, &resource, &version, &key, at)
                .await
        })
        .await
    }

    async fn trigger_events(
        &self,
        team: TeamId,
        resource: &str,
        after: Option<TriggerEventId>,
        limit: u32,
    ) -> StoreResult<Vec<TriggerEvent>> {
        let s = self.0.clone();
        let resource = resource.to_owned();
        run(async move { s.trigger_events(team, &resource, after, limit).await }).await
    }

    async fn gauges(&self, now: DateTime<Utc>) -> StoreResult<StoreGauges> {
        let s = self.0.clone();
        run(async move { s.gauges(now).await }).await
    }

    fn statistics(&self) -> StoreStatistics {
        self.0.statistics()
    }
}

#[async_trait]
impl pikoci_core::secrets::SecretTable for BlockingStore {
    async fn put(
        &self,
        entry: pikoci_core::secrets::StoredEntry,
    ) -> Result<(), pikoci_core::secrets::SecretError> {
        let s = self.0.clone();
        run(async move { s.put(entry).await }).await
    }

    async fn get(
        &self,
        scope: &pikoci_core::secrets::Scope,
        name: &str,
    ) -> Result<Option<pikoci_core::secrets::StoredEntry>, pikoci_core::secrets::SecretError> {
        let (s, scope, name) = (self.0.clone(), scope.clone(), name.to_owned());
        run(async move { s.get(&scope, &name).await }).await
    }

    async fn list(
        &self,
        scope: &pikoci_core::secrets::Scope,
    ) -> Result<Vec<pikoci_core::secrets::StoredEntry>, pikoci_core::secrets::SecretError> {
        let (s, scope) = (self.0.clone(), scope.clone());
        run(async move { s.list(&scope).await }).await
    }

    async fn delete(
        &self,
        scope: &pikoci_core::secrets::Scope,
        name: &str,
    ) -> Result<bool, pikoci_core::secrets::SecretError> {
        let (s, scope, name) = (self.0.clone(), scope.clone(), name.to_owned());
        run(async move { s.delete(&scope, &name).await }).await
    }
}
