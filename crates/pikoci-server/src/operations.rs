//! What people ask of builds: manual triggers, cancels, retries, approvals.

use std::collections::BTreeMap;

use pikoci_core::ErrorKind;
use pikoci_core::TriggerKind;
use pikoci_core::protocol::{BuildRef, Message, WorkRef};
use pikoci_core::store::audit::actions;
use pikoci_core::store::{
    Build, BuildId, BuildStatus, BuildTransition, BuildTrigger, JobId, StoredResource, VersionId,
};

use crate::scheduling::{BuildRequest, CreateError, distinct_gets, triggers_on};
use crate::state::lock;
use crate::{Server, ServerError, ServerResult};

impl Server {
    /// `trigger_job`: a manual build, with every problem of its inputs and versions listed.
    pub(crate) async fn trigger_manually(
        &self,
        job_id: JobId,
        given: BTreeMap<String, String>,
    ) -> ServerResult<Build> {
        let store = &self.inner.store;
        let job = store.job_by_id(job_id).await?;
        let pipeline = store.pipeline_by_id(job.pipeline_id).await?;
        if pipeline.paused {
            return Err(ServerError::new(
                ErrorKind::Conflict,
                format!(
                    "pipeline \"{}\" is paused: unpause it to trigger job \"{}\"",
                    pipeline.name, job.name
                ),
            ));
        }
        if job.paused {
            return Err(ServerError::new(
                ErrorKind::Conflict,
                format!(
                    "job \"{}\" is paused: unpause it to trigger builds",
                    job.name
                ),
            ));
        }
        let mut problems = Vec::new();
        let inputs = match job.model.resolve_inputs(&given, TriggerKind::Manual) {
            Ok(inputs) => inputs,
            Err(found) => {
                problems.extend(found);
                BTreeMap::new()
            }
        };
        // A manual build's trigger is the pin of its first get, when there is one.
        let mut trigger = None;
        if let Some(first) = distinct_gets(&job).first()
            && let Ok(resource) = store.resource(pipeline.id, &first.resource).await
        {
            trigger = resource.pinned_version().map(|version_id| BuildTrigger {
                resource_id: resource.id,
                version_id,
            });
        }
        let request = BuildRequest {
            pipeline: &pipeline,
            job: &job,
            trigger,
            inputs,
            automatic: false,
        };
        let created = if problems.is_empty() {
            self.create_build(request).await
        } else {
            // Still look at the versions, to list their problems too.
            match self.check_versions(request).await {
                Ok(()) => Err(CreateError::Problems(Vec::new())),
                Err(err) => Err(err),
            }
        };
        match created {
            Ok(build) => Ok(build),
            Err(CreateError::Problems(more)) => {
                problems.extend(more);
                let list: Vec<String> = problems.iter().map(|p| format!("- {p}")).collect();
                Err(ServerError::new(
                    ErrorKind::InvalidInput,
                    format!("cannot trigger job \"{}\":\n{}", job.name, list.join("\n")),
                ))
            }
            Err(CreateError::Store(err)) => Err(err.into()),
        }
    }

    /// `trigger_version`: builds, with `version`, of the jobs a new version of `resource`
    /// triggers (each with a `get` of it with `trigger = true` and no `passed`), as manual
    /// builds: to build an older version again. The builds made, and why the other jobs made
    /// none; `Conflict` with the reasons when none was made.
    pub(crate) async fn trigger_with_version(
        &self,
        resource: &StoredResource,
        version: VersionId,
    ) -> ServerResult<(Vec<Build>, Vec<String>)> {
        let store = &self.inner.store;
        let name = resource.canonical();
        let found = match store.version_by_id(version).await {
            Ok(found) if found.resource_id == resource.id => found,
            Ok(_) => return Err(no_such_version(&name, version)),
            Err(err) if err.kind() == ErrorKind::NotFound => {
                return Err(no_such_version(&name, version));
            }
            Err(err) => return Err(err.into()),
        };
        if let Some(pinned) = resource
            .pinned_version()
            .filter(|pinned| *pinned != found.id)
        {
            return Err(ServerError::new(
                ErrorKind::Conflict,
                format!(
                    "resource {name} is pinned to version {pinned}: unpin it, or pin version {} \
                     instead",
                    found.id
                ),
            ));
        }
        let pipeline = store.pipeline_by_id(resource.pipeline_id).await?;
        if pipeline.paused {
            return Err(ServerError::new(
                ErrorKind::Conflict,
                format!("pipeline \"{}\" is paused: unpause it first", pipeline.name),
            ));
        }
        let reference = resource.model.reference();
        let mut problems = Vec::new();
        let mut builds = Vec::new();
        for job in store.jobs(pipeline.id).await? {
            if !triggers_on(&job, &reference) {
                continue;
            }
            if job.paused {
                problems.push(format!("job \"{}\" is paused", job.name));
                continue;
            }
            let inputs = match job
                .model
                .resolve_inputs(&BTreeMap::new(), TriggerKind::Manual)
            {
                Ok(inputs) => inputs,
                Err(found) => {
                    problems.extend(found.iter().map(|p| format!("job \"{}\": {p}", job.name)));
                    continue;
                }
            };
            let request = BuildRequest {
                pipeline: &pipeline,
                job: &job,
                trigger: Some(BuildTrigger {
                    resource_id: resource.id,
                    version_id: found.id,
                }),
                inputs,
                automatic: false,
            };
            match self.create_build(request).await {
                Ok(build) => builds.push(build),
                Err(CreateError::Problems(more)) => {
                    problems.extend(more.iter().map(|p| format!("job \"{}\": {p}", job.name)));
                }
                Err(CreateError::Store(err)) => return Err(err.into()),
            }
        }
        if builds.is_empty() {
            let why = if problems.is_empty() {
                format!(
                    "no job of pipeline \"{}\" gets resource {name} with `trigger = true` (and \
                     no `passed`)",
                    pipeline.name
                )
            } else {
                let list: Vec<String> = problems.iter().map(|p| format!("- {p}")).collect();
                list.join("\n")
            };
            return Err(ServerError::new(
                ErrorKind::Conflict,
                format!("version {} of {name} triggered nothing:\n{why}", found.id),
            ));
        }
        tracing::info!(resource = %name, version = %found.id, builds = builds.len(), skipped = ?problems, "version triggered by hand");
        self.wake_dispatcher();
        Ok((builds, problems))
    }

    /// The problems of a build's versions, without creating it.
    async fn check_versions(&self, request: BuildRequest<'_>) -> Result<(), CreateError> {
        let jobs = self.inner.store.jobs(request.pipeline.id).await?;
        let mut problems = Vec::new();
        for get in distinct_gets(request.job) {
            if let Err(problem) = self
                .resolve_get(request.pipeline, get, request.trigger, &jobs)
                .await?
            {
                problems.push(problem);
            }
        }
        if problems.is_empty() {
            Ok(())
        } else {
            Err(CreateError::Problems(problems))
        }
    }

    /// Cancels a build: a pending or waiting one (or one assigned and not confirmed yet) at
    /// once, a running one through its worker, which has `cancel_grace` to report it.
    pub(crate) async fn cancel(&self, id: BuildId, reason: Option<String>) -> ServerResult<Build> {
        let store = &self.inner.store;
        // A status that changes under us is read again (a few times, then it is a conflict).
        for _ in 0..5 {
            let build = store.build(id).await?;
            let attempt = build.dispatch.attempt;
            match build.status {
                BuildStatus::Pending | BuildStatus::WaitingForApproval | BuildStatus::Assigned => {
                    let moved = store
                        .transition_build(&BuildTransition {
                            action: Some(actions::JOB_CANCELLED),
                            build_id: id,
                            from: vec![build.status],
                            to: BuildStatus::Cancelled,
                            attempt: Some(attempt),
                            error: reason.clone(),
                            at: self.now(),
                        })
                        .await;
                    match moved {
                        Ok(cancelled) => {
                            lock(&self.inner.runtime.reasons).remove(&id);
                            if let Some(worker) = &build.dispatch.worker_id
                                && build.status == BuildStatus::Assigned
                            {
                                let work = WorkRef::Build(BuildRef {
                                    build_id: id,
                                    attempt,
                                });
                                self.abort(worker, work, "the build was cancelled".into())
                                    .await;
                            }
                            tracing::info!(build = %id, "build cancelled");
                            self.wake_dispatcher();
                            return Ok(cancelled);
                        }
                        Err(err) if err.kind() == ErrorKind::Conflict => continue,
                        Err(err) => return Err(err.into()),
                    }
                }
                BuildStatus::Started => {
                    let Some(worker) = build.dispatch.worker_id.clone() else {
                        return Err(ServerError::new(
                            ErrorKind::Internal,
                            format!("build {id} is started but has no worker"),
                        ));
                    };
                    let grace = chrono::Duration::from_std(self.inner.config.cancel_grace)
                        .unwrap_or_default();
                    let deadline = self.now() + grace;
                    let asked = match store.request_cancel(id, attempt, deadline).await {
                        Ok(asked) => asked,
                        Err(err) if err.kind() == ErrorKind::Conflict => continue,
                        Err(err) => return Err(err.into()),
                    };
                    tracing::info!(build = %id, %worker, "asking a worker to cancel a build");
                    let build_ref = BuildRef {
                        build_id: id,
                        attempt,
                    };
                    self.send_or_warn(&worker, Message::Cancel { build: build_ref })
                        .await;
                    return Ok(asked);
                }
                status => {
                    return Err(ServerError::new(
                        ErrorKind::Conflict,
                        format!(
                            "build {} already finished ({status}): nothing to cancel",
                            build.number
                        ),
                    ));
                }
            }
        }
        Err(ServerError::new(
            ErrorKind::Conflict,
            format!("build {id} kept changing while it was being cancelled: try again"),
        ))
    }

    /// A retry of a finished build, with the versions its gets used.
    pub(crate) async fn retry(&self, id: BuildId) -> ServerResult<Build> {
        let store = &self.inner.store;
        let retry = store.retry_build(id, self.now()).await?;
        tracing::info!(build = %retry.id, of = %id, number = %retry.number, "build retried");
        self.wake_dispatcher();
        Ok(retry)
    }

    /// Marks a failed build as a warning: its status becomes `warning` (its times, steps and
    /// log stay those of the failed run), so the jobs downstream take it as passed; they are
    /// looked at again at once.
    pub(crate) async fn mark_warning(&self, id: BuildId) -> ServerResult<Build> {
        let store = &self.inner.store;
        let build = store.build(id).await?;
        if build.status != BuildStatus::Failed {
            return Err(ServerError::new(
                ErrorKind::Conflict,
                format!(
                    "build {} is {}: only a failed build can be marked as a warning",
                    build.number,
                    build.status.as_str()
                ),
            ));
        }
        let marked = store
            .transition_build(&BuildTransition {
                action: Some(actions::BUILD_MARKED_WARNING),
                build_id: id,
                from: vec![BuildStatus::Failed],
                to: BuildStatus::Warning,
                attempt: None,
                error: None,
                // Its times stay those of the run.
                at: build.finished_at.unwrap_or_else(|| self.now()),
            })
            .await?;
        tracing::info!(build = %id, number = %marked.number, "failed build marked as a warning");
        // The mark is made: the periodic evaluation of `passed` catches up on a failure here.
        if let Err(error) = self.evaluate_downstream(&marked).await {
            tracing::warn!(build = %id, error = %error, "the jobs downstream of a build marked as a warning could not be looked at now: they will be on the next round");
        }
        self.wake_dispatcher();
        Ok(marked)
    }

    /// Records an approval; the build becomes pending with enough distinct approvers.
    pub(crate) async fn approve(&self, id: BuildId, user: &str) -> ServerResult<Build> {
        let store = &self.inner.store;
        let build = store.build(id).await?;
        if build.status != BuildStatus::WaitingForApproval {
            return Err(not_waiting(&build));
        }
        let job = store.job_by_id(build.job_id).await?;
        let needed = job
            .model
            .approval
            .as_ref()
            .map_or(1, |approval| approval.approvals.max(1));
        let votes = match store.record_approval(id, user, self.now()).await {
            Ok(votes) => votes,
            Err(err) if err.kind() == ErrorKind::Conflict => {
                return Err(not_waiting(&store.build(id).await?));
            }
            Err(err) => return Err(err.into()),
        };
        if (votes.len() as u64) < u64::from(needed) {
            tracing::info!(build = %id, user, votes = votes.len(), needed, "approval recorded");
            return Ok(store.build(id).await?);
        }
        let moved = store
            .transition_build(&BuildTransition {
                action: None,
                build_id: id,
                from: vec![BuildStatus::WaitingForApproval],
                to: BuildStatus::Pending,
                attempt: None,
                error: None,
                at: self.now(),
            })
            .await;
        match moved {
            Ok(build) => {
                tracing::info!(build = %id, user, "build approved");
                self.wake_dispatcher();
                Ok(build)
            }
            // Approved by another vote at the same time.
            Err(err) if err.kind() == ErrorKind::Conflict => Ok(store.build(id).await?),
            Err(err) => Err(err.into()),
        }
    }

    /// Rejects a build waiting for approval: cancelled, with who and why.
    pub(crate) async fn reject(
        &self,
        id: BuildId,
        user: &str,
        reason: &str,
    ) -> ServerResult<Build> {
        let store = &self.inner.store;
        let error = if reason.trim().is_empty() {
            format!("rejected by {user}")
        } else {
            format!("rejected by {user}: {}", reason.trim())
        };
        let moved = store
            .transition_build(&BuildTransition {
                action: Some(actions::BUILD_REJECTED),
                build_id: id,
                from: vec![BuildStatus::WaitingForApproval],
                to: BuildStatus::Cancelled,
                attempt: None,
                error: Some(error),
                at: self.now(),
            })
            .await;
        match moved {
            Ok(build) => {
                tracing::info!(build = %id, user, "build rejected");
                Ok(build)
            }
            Err(err) if err.kind() == ErrorKind::Conflict => {
                Err(not_waiting(&store.build(id).await?))
            }
            Err(err) => Err(err.into()),
        }
    }
}

fn not_waiting(build: &Build) -> ServerError {
    ServerError::new(
        ErrorKind::Conflict,
        format!(
            "build {} is {}, not waiting for approval",
            build.number, build.status
        ),
    )
}

/// The error of a version that is not the resource's.
fn no_such_version(resource: &str, version: VersionId) -> ServerError {
    ServerError::new(
        ErrorKind::NotFound,
        format!(
            "resource {resource} has no version {version} (`…/resources/{resource}/versions` lists them)"
        ),
    )
}
