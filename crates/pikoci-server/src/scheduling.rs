//! Creating builds: the versions each `get` uses are decided when a build is created (and
//! recorded, so that retries reuse them and the assignment reads them), automatic triggers from
//! new versions, and the `passed` evaluation when an upstream build succeeds.
//!
//! A `get`'s version is, in order: the resource's pinned version; the version that triggered
//! the build, for its resource; for a `get` with `passed`, the newest version that went through
//! every upstream job; otherwise the resource's newest version.

use std::collections::{BTreeMap, HashMap};

use chrono::SecondsFormat;
use pikoci_core::TriggerKind;
use pikoci_core::model::GetStep;
use pikoci_core::store::{
    Build, BuildFilter, BuildStatus, BuildTransition, BuildTrigger, BuildVersion, JobId, NewBuild,
    NewVersion, PassedQuery, ResourceVersion, StoreResult, StoredJob, StoredPipeline,
    StoredResource, VersionId, VersionUse,
};

use crate::Server;

/// What stops a build from being created: problems for the person who asked (inputs, gets
/// without a version), or a store failure.
#[derive(Debug)]
pub(crate) enum CreateError {
    /// Every problem, one message each.
    Problems(Vec<String>),
    /// The store failed.
    Store(pikoci_core::store::StoreError),
}

impl From<pikoci_core::store::StoreError> for CreateError {
    fn from(err: pikoci_core::store::StoreError) -> CreateError {
        CreateError::Store(err)
    }
}

/// A build to create.
pub(crate) struct BuildRequest<'a> {
    pub(crate) pipeline: &'a StoredPipeline,
    pub(crate) job: &'a StoredJob,
    pub(crate) trigger: Option<BuildTrigger>,
    pub(crate) inputs: BTreeMap<String, String>,
    /// Made by a trigger or `passed`, not by a person: at most one such build per set of
    /// versions.
    pub(crate) automatic: bool,
}

/// The distinct gets of a job, by resource (two gets of one resource use one version).
pub(crate) fn distinct_gets(job: &StoredJob) -> Vec<&GetStep> {
    let mut gets: Vec<&GetStep> = Vec::new();
    for get in job.model.gets() {
        if !gets.iter().any(|g| g.resource == get.resource) {
            gets.push(get);
        }
    }
    gets
}

impl Server {
    /// The version `get` of `job` uses (`Err` says why there is none).
    pub(crate) async fn resolve_get(
        &self,
        pipeline: &StoredPipeline,
        get: &GetStep,
        trigger: Option<BuildTrigger>,
        jobs: &[StoredJob],
    ) -> StoreResult<Result<(StoredResource, VersionId), String>> {
        let store = &self.inner.store;
        let resource = match store.resource(pipeline.id, &get.resource).await {
            Ok(resource) => resource,
            Err(err) if err.kind() == pikoci_core::ErrorKind::NotFound => {
                return Ok(Err(format!(
                    "resource {} does not exist in pipeline \"{}\"",
                    get.resource, pipeline.name
                )));
            }
            Err(err) => return Err(err),
        };
        if let Some(pinned) = resource.pinned_version() {
            return Ok(Ok((resource, pinned)));
        }
        if let Some(trigger) = trigger.filter(|t| t.resource_id == resource.id) {
            return Ok(Ok((resource, trigger.version_id)));
        }
        if !get.passed.is_empty() {
            let upstream: Vec<JobId> = jobs
                .iter()
                .filter(|job| get.passed.contains(&job.name))
                .map(|job| job.id)
                .collect();
            let passed = if upstream.is_empty() {
                Vec::new()
            } else {
                store
                    .passed_versions(&PassedQuery {
                        resource_id: resource.id,
                        upstream_jobs: upstream,
                        not_built_by: None,
                        limit: 1,
                    })
                    .await?
            };
            return Ok(match passed.first() {
                Some(version) => Ok((resource, version.id)),
                None => Err(format!(
                    "no version of resource {} has passed {} yet",
                    get.resource,
                    describe_jobs(&get.passed)
                )),
            });
        }
        Ok(match store.latest_version(resource.id).await? {
            Some(version) => Ok((resource, version.id)),
            None => {
                let why = no_version_yet(&resource);
                Err(why)
            }
        })
    }

    /// The versions of every get of a build, or every problem.
    async fn resolve_versions(
        &self,
        pipeline: &StoredPipeline,
        job: &StoredJob,
        trigger: Option<BuildTrigger>,
    ) -> StoreResult<Result<Vec<BuildVersion>, Vec<String>>> {
        let gets = distinct_gets(job);
        let jobs = if gets.iter().any(|g| !g.passed.is_empty()) {
            self.inner.store.jobs(pipeline.id).await?
        } else {
            Vec::new()
        };
        let mut versions = Vec::new();
        let mut problems = Vec::new();
        for get in gets {
            match self.resolve_get(pipeline, get, trigger, &jobs).await? {
                Ok((resource, version_id)) => versions.push(BuildVersion {
                    resource_id: resource.id,
                    version_id,
                    step_name: get.resource.name.clone(),
                    usage: VersionUse::Get,
                }),
                Err(problem) => problems.push(problem),
            }
        }
        Ok(if problems.is_empty() {
            Ok(versions)
        } else {
            Err(problems)
        })
    }

    /// Creates a build (pending, or waiting for approval when the job has an `approve`
    /// block) with its versions decided and recorded.
    pub(crate) async fn create_build(
        &self,
        request: BuildRequest<'_>,
    ) -> Result<Build, CreateError> {
        let BuildRequest {
            pipeline,
            job,
            trigger,
            inputs,
            automatic,
        } = request;
        let versions = match self.resolve_versions(pipeline, job, trigger).await? {
            Ok(versions) => versions,
            Err(problems) => return Err(CreateError::Problems(problems)),
        };
        let status = if job.model.approval.is_some() {
            BuildStatus::WaitingForApproval
        } else {
            BuildStatus::Pending
        };
        let inputs = if inputs.is_empty() {
            serde_json::Value::Null
        } else {
            serde_json::Value::Object(
                inputs
                    .into_iter()
                    .map(|(k, v)| (k, serde_json::Value::String(v)))
                    .collect(),
            )
        };
        let store = &self.inner.store;
        let now = self.now();
        let build = store
            .create_build(NewBuild {
                job_id: job.id,
                status,
                inputs,
                trigger,
                versions,
                once_per_versions: automatic,
                created_at: now,
            })
            .await?;
        if build.created_at != now {
            // Another server (or an earlier delivery) built these versions already.
            tracing::debug!(build = %build.id, job = %job.name, "an automatic build of these versions exists");
            return Ok(build);
        }
        tracing::info!(build = %build.id, job = %job.name, number = %build.number, status = %build.status, "build created");
        if job.model.interruptible {
            self.interrupt_older(&build).await?;
        }
        self.wake_dispatcher();
        self.inner.runtime.changed();
        Ok(build)
    }

    /// Cancels the unfinished builds of the job older than `build` (`interruptible`).
    async fn interrupt_older(&self, build: &Build) -> StoreResult<()> {
        let older = self
            .inner
            .store
            .list_builds(&BuildFilter {
                job_id: Some(build.job_id),
                statuses: vec![
                    BuildStatus::Pending,
                    BuildStatus::WaitingForApproval,
                    BuildStatus::Assigned,
                    BuildStatus::Started,
                ],
                before: Some(build.id),
                limit: 0,
                ..BuildFilter::default()
            })
            .await?;
        for old in older {
            let reason = format!("interrupted by build {} of the same job", build.number);
            if let Err(err) = self.cancel(old.id, Some(reason)).await {
                tracing::warn!(build = %old.id, error = %err, "failed to interrupt an older build");
            }
        }
        Ok(())
    }

    /// Builds triggered by new versions of `resource` (from a check or a put): one build of
    /// every unpaused job of the unpaused pipeline with a `get` of it with `trigger = true` and
    /// no `passed`, for the newest of the versions.
    pub(crate) async fn trigger_from_versions(
        &self,
        resource: &StoredResource,
        created: &[ResourceVersion],
    ) -> StoreResult<()> {
        let Some(newest) = created.iter().max_by_key(|v| v.id) else {
            return Ok(());
        };
        if resource.pinned_version().is_some() {
            tracing::debug!(resource = %resource.canonical(), "new versions of a pinned resource trigger nothing");
            return Ok(());
        }
        let store = &self.inner.store;
        let pipeline = store.pipeline_by_id(resource.pipeline_id).await?;
        if pipeline.paused {
            return Ok(());
        }
        let reference = resource.model.reference();
        for job in store.jobs(pipeline.id).await? {
            if job.paused || !triggers_on(&job, &reference) {
                continue;
            }
            let trigger = BuildTrigger {
                resource_id: resource.id,
                version_id: newest.id,
            };
            self.automatic_build(&pipeline, &job, trigger).await?;
        }
        Ok(())
    }

    /// A build of `job` made by `trigger`, its inputs at their defaults; none (with a log line)
    /// when the defaults do not resolve or a get has no version yet.
    async fn automatic_build(
        &self,
        pipeline: &StoredPipeline,
        job: &StoredJob,
        trigger: BuildTrigger,
    ) -> StoreResult<()> {
        let inputs = match job
            .model
            .resolve_inputs(&BTreeMap::new(), TriggerKind::Automatic)
        {
            Ok(inputs) => inputs,
            Err(problems) => {
                tracing::warn!(job = %job.name, problems = ?problems, "the inputs' defaults do not resolve: no automatic build");
                return Ok(());
            }
        };
        let request = BuildRequest {
            pipeline,
            job,
            trigger: Some(trigger),
            inputs,
            automatic: true,
        };
        match self.create_build(request).await {
            Ok(_) => Ok(()),
            Err(CreateError::Problems(problems)) => {
                tracing::debug!(job = %job.name, problems = ?problems, "not every get has a version yet: no automatic build");
                Ok(())
            }
            Err(CreateError::Store(err)) => Err(err),
        }
    }

    /// Builds that new versions should have triggered and did not: the server failed (or
    /// crashed) between storing a check's versions and creating their builds, and the
    /// redelivered check found the versions already known. Run on the slow tick, for versions
    /// older than [`CATCH_UP_AFTER`] (the direct path has long created their builds, so two
    /// servers never race on a fresh version).
    ///
    /// A job with a `trigger = true` get (no `passed`) of a resource gets a build for the
    /// resource's newest version when it has started no build since that version appeared (and
    /// the version appeared while the job existed): exactly the build the direct path makes.
    pub(crate) async fn catch_up_triggers(&self) -> StoreResult<()> {
        let store = &self.inner.store;
        let settled = self.now() - chrono::Duration::from_std(CATCH_UP_AFTER).unwrap_or_default();
        for team in store.list_teams().await? {
            for pipeline in store.list_pipelines(team.id).await? {
                if pipeline.paused {
                    continue;
                }
                let jobs = store.jobs(pipeline.id).await?;
                for resource in store.resources(pipeline.id).await? {
                    if resource.pinned_version().is_some() {
                        continue;
                    }
                    let Some(newest) = store.latest_version(resource.id).await? else {
                        continue;
                    };
                    if newest.created_at > settled {
                        continue;
                    }
                    let reference = resource.model.reference();
                    for job in &jobs {
                        if job.paused
                            || !triggers_on(job, &reference)
                            || job.created_at > newest.created_at
                        {
                            continue;
                        }
                        let latest = store
                            .list_builds(&BuildFilter {
                                job_id: Some(job.id),
                                limit: 1,
                                ..BuildFilter::default()
                            })
                            .await?;
                        if latest
                            .first()
                            .is_some_and(|b| b.created_at >= newest.created_at)
                        {
                            continue;
                        }
                        tracing::warn!(job = %job.name, resource = %resource.canonical(), version = %newest.id, "a new version had not triggered its build: building it now");
                        let trigger = BuildTrigger {
                            resource_id: resource.id,
                            version_id: newest.id,
                        };
                        self.automatic_build(&pipeline, job, trigger).await?;
                    }
                }
            }
        }
        Ok(())
    }

    /// After a build of `upstream` succeeded: the jobs with a `get ... { passed = [upstream],
    /// trigger = true }` whose passed versions are ready get a build.
    pub(crate) async fn evaluate_downstream(&self, upstream: &Build) -> StoreResult<()> {
        let store = &self.inner.store;
        let pipeline = store.pipeline_by_id(upstream.pipeline_id).await?;
        let jobs = store.jobs(pipeline.id).await?;
        let Some(name) = jobs
            .iter()
            .find(|j| j.id == upstream.job_id)
            .map(|j| j.name.clone())
        else {
            return Ok(());
        };
        for job in &jobs {
            let downstream = job
                .model
                .gets()
                .any(|g| g.trigger && g.passed.contains(&name));
            if downstream {
                self.evaluate_passed(&pipeline, job, &jobs).await?;
            }
        }
        Ok(())
    }

    /// Every job with passed triggers of every pipeline (the periodic evaluation that catches
    /// what an immediate one missed).
    pub(crate) async fn evaluate_all_passed(&self) -> StoreResult<()> {
        let store = &self.inner.store;
        for team in store.list_teams().await? {
            for pipeline in store.list_pipelines(team.id).await? {
                if pipeline.paused {
                    continue;
                }
                let jobs = store.jobs(pipeline.id).await?;
                for job in &jobs {
                    if job.model.gets().any(|g| g.trigger && !g.passed.is_empty()) {
                        self.evaluate_passed(&pipeline, job, &jobs).await?;
                    }
                }
            }
        }
        Ok(())
    }

    /// Creates a build of `job` when every `get` with `passed` and `trigger` has a ready
    /// version: the newest version that went through every upstream job, not built by this job
    /// yet (or the pin, when it went through them). Only the newest version counts, so a new
    /// job builds the newest passed version, never the backlog. Nothing happens while the job
    /// has a pending build.
    async fn evaluate_passed(
        &self,
        pipeline: &StoredPipeline,
        job: &StoredJob,
        jobs: &[StoredJob],
    ) -> StoreResult<()> {
        if pipeline.paused || job.paused {
            return Ok(());
        }
        let store = &self.inner.store;
        let waiting = store
            .list_builds(&BuildFilter {
                job_id: Some(job.id),
                statuses: vec![BuildStatus::Pending, BuildStatus::WaitingForApproval],
                limit: 1,
                ..BuildFilter::default()
            })
            .await?;
        if !waiting.is_empty() {
            return Ok(());
        }
        let ids: HashMap<&str, JobId> = jobs.iter().map(|j| (j.name.as_str(), j.id)).collect();
        let mut trigger = None;
        for get in distinct_gets(job)
            .into_iter()
            .filter(|g| g.trigger && !g.passed.is_empty())
        {
            let upstream: Vec<JobId> = get
                .passed
                .iter()
                .filter_map(|name| ids.get(name.as_str()).copied())
                .collect();
            if upstream.is_empty() {
                return Ok(());
            }
            let resource = store.resource(pipeline.id, &get.resource).await?;
            let query = |not_built_by, limit| PassedQuery {
                resource_id: resource.id,
                upstream_jobs: upstream.clone(),
                not_built_by,
                limit,
            };
            let ready = match resource.pinned_version() {
                Some(pinned) => store
                    .passed_versions(&query(Some(job.id), 0))
                    .await?
                    .into_iter()
                    .find(|v| v.id == pinned),
                None => {
                    let newest = store.passed_versions(&query(None, 1)).await?;
                    let unbuilt = store.passed_versions(&query(Some(job.id), 1)).await?;
                    match (newest.first(), unbuilt.first()) {
                        (Some(newest), Some(unbuilt)) if newest.id == unbuilt.id => {
                            Some(unbuilt.clone())
                        }
                        _ => None,
                    }
                }
            };
            let Some(ready) = ready else {
                return Ok(());
            };
            trigger.get_or_insert(BuildTrigger {
                resource_id: resource.id,
                version_id: ready.id,
            });
        }
        let Some(trigger) = trigger else {
            return Ok(());
        };
        self.automatic_build(pipeline, job, trigger).await
    }

    /// Marks a build that cannot run `errored` (conditional: only from `from`).
    pub(crate) async fn error_build(
        &self,
        build: &Build,
        from: BuildStatus,
        error: String,
    ) -> StoreResult<()> {
        tracing::warn!(build = %build.id, %error, "build errored");
        let moved = self
            .inner
            .store
            .transition_build(&BuildTransition {
                action: None,
                build_id: build.id,
                from: vec![from],
                to: BuildStatus::Errored,
                attempt: Some(build.dispatch.attempt),
                error: Some(error),
                at: self.now(),
            })
            .await;
        match moved {
            Ok(_) => Ok(()),
            Err(err) if err.kind() == pikoci_core::ErrorKind::Conflict => Ok(()),
            Err(err) => Err(err),
        }
    }
}

/// `job "a"` or `jobs "a", "b"`.
/// How old a version must be before [`Server::catch_up_triggers`] looks at it.
pub(crate) const CATCH_UP_AFTER: std::time::Duration = std::time::Duration::from_secs(30);

/// The versions a check or a put printed that can be stored (JSON objects), and whether some
/// were left out.
pub(crate) fn storable_versions(versions: &[serde_json::Value]) -> (Vec<NewVersion>, bool) {
    let objects: Vec<NewVersion> = versions
        .iter()
        .filter(|v| v.is_object())
        .map(|version| NewVersion {
            version: version.clone(),
            metadata: serde_json::Value::Null,
        })
        .collect();
    let left_out = objects.len() != versions.len();
    (objects, left_out)
}

/// Whether a new version of the resource `reference` starts a build of `job`: the job gets it
/// with `trigger = true` and no `passed`.
pub(crate) fn triggers_on(job: &StoredJob, reference: &pikoci_core::model::ResourceRef) -> bool {
    job.model
        .gets()
        .any(|g| g.resource == *reference && g.trigger && g.passed.is_empty())
}

fn describe_jobs(names: &[String]) -> String {
    let quoted: Vec<String> = names.iter().map(|n| format!("\"{n}\"")).collect();
    if quoted.len() == 1 {
        format!("job {}", quoted[0])
    } else {
        format!("jobs {}", quoted.join(", "))
    }
}

/// Why a resource has no version, and when it will.
fn no_version_yet(resource: &StoredResource) -> String {
    let name = resource.canonical();
    if resource.check_lease.is_some() {
        return format!("resource {name} has no version yet; its first check is running now");
    }
    if let Some(error) = resource.last_check.as_ref().and_then(|c| c.error.as_ref()) {
        return format!("resource {name} has no version yet; its last check failed: {error}");
    }
    let which = if resource.last_check.is_some() {
        "next"
    } else {
        "first"
    };
    match resource.next_check_at {
        Some(at) => format!(
            "resource {name} has no version yet; its {which} check runs at {}",
            at.to_rfc3339_opts(SecondsFormat::Secs, true)
        ),
        None => format!("resource {name} has no version yet and no check is scheduled"),
    }
}
