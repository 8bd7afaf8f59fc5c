//! Why each pending build is not running yet, as the dispatcher sees it after a round. Kept in
//! memory ([`Server::pending_reason`](crate::Server::pending_reason)); recomputed every round.

use std::collections::HashMap;

use pikoci_core::store::{
    Build, BuildFilter, BuildId, BuildStatus, JobId, PipelineId, StoreResult, StoredJob,
    StoredPipeline, TeamScope,
};

use crate::Server;
use crate::dispatch::Candidate;
use crate::state::lock;

/// How many pending builds get a reason per round.
const MAX_EXPLAINED: u32 = 500;

/// Whether a worker may run a build of `job` of team `team`.
fn serves(candidate: &Candidate, job: &StoredJob, team: pikoci_core::store::TeamId) -> bool {
    let team_ok = match &candidate.teams {
        TeamScope::All => true,
        TeamScope::Only(only) => *only == team,
        TeamScope::AllExcept(others) => !others.contains(&team),
    };
    let tags = &job.model.tags;
    team_ok
        && tags.iter().all(|t| candidate.worker.tags.contains(t))
        && !(candidate.worker.exclusive && tags.is_empty())
}

impl Server {
    pub(crate) async fn record_reasons(
        &self,
        candidates: &[Candidate],
        active: &[Build],
    ) -> StoreResult<()> {
        let store = &self.inner.store;
        let pending = store
            .list_builds(&BuildFilter {
                statuses: vec![BuildStatus::Pending, BuildStatus::WaitingForApproval],
                limit: MAX_EXPLAINED,
                ..BuildFilter::default()
            })
            .await?;
        let mut pipelines: HashMap<PipelineId, StoredPipeline> = HashMap::new();
        let mut jobs: HashMap<PipelineId, Vec<StoredJob>> = HashMap::new();
        let mut by_job: HashMap<JobId, String> = HashMap::new();
        let mut reasons: HashMap<BuildId, String> = HashMap::new();
        let previous = lock(&self.inner.runtime.reasons).clone();
        for build in &pending {
            if build.status == BuildStatus::WaitingForApproval {
                reasons.insert(build.id, "waiting for approval".into());
                continue;
            }
            if let Some(reason) = by_job.get(&build.job_id) {
                reasons.insert(build.id, reason.clone());
                continue;
            }
            if let std::collections::hash_map::Entry::Vacant(entry) =
                pipelines.entry(build.pipeline_id)
            {
                entry.insert(store.pipeline_by_id(build.pipeline_id).await?);
                jobs.insert(build.pipeline_id, store.jobs(build.pipeline_id).await?);
            }
            let (Some(pipeline), Some(siblings)) = (
                pipelines.get(&build.pipeline_id),
                jobs.get(&build.pipeline_id),
            ) else {
                continue;
            };
            let Some(job) = siblings.iter().find(|j| j.id == build.job_id) else {
                continue;
            };
            let mut reason = explain(pipeline, job, siblings, build, candidates, active);
            // A worker's refusal stays visible until something else explains the wait.
            if reason == WAITING_FOR_SLOT
                && let Some(previous) = previous.get(&build.id)
                && previous.contains("rejected it")
            {
                reason = previous.clone();
            }
            by_job.insert(build.job_id, reason.clone());
            reasons.insert(build.id, reason);
        }
        *lock(&self.inner.runtime.reasons) = reasons;
        Ok(())
    }
}

const WAITING_FOR_SLOT: &str = "waiting for a free worker slot";

/// The first reason that holds, in the order the claim checks them.
fn explain(
    pipeline: &StoredPipeline,
    job: &StoredJob,
    siblings: &[StoredJob],
    build: &Build,
    candidates: &[Candidate],
    active: &[Build],
) -> String {
    if pipeline.paused {
        return "pipeline paused".into();
    }
    if job.paused {
        return "job paused".into();
    }
    if !candidates.iter().any(|c| serves(c, job, build.team_id)) {
        let tags = &job.model.tags;
        return if tags.is_empty() {
            "no live worker for this team".into()
        } else {
            format!("no live worker with tags [{}]", tags.join(", "))
        };
    }
    if job.model.concurrency > 0 {
        let running: Vec<String> = active
            .iter()
            .filter(|b| b.job_id == job.id)
            .map(|b| b.number.to_string())
            .collect();
        if running.len() >= job.model.concurrency as usize {
            let list = if running.len() == 1 {
                format!("build {} running", running[0])
            } else {
                format!("builds {} running", running.join(", "))
            };
            return format!(
                "concurrency limit {} reached ({list})",
                job.model.concurrency
            );
        }
    }
    for group in &job.model.serial_groups {
        for other in siblings
            .iter()
            .filter(|j| j.id != job.id && j.model.serial_groups.contains(group))
        {
            if let Some(holder) = active.iter().find(|b| b.job_id == other.id) {
                return format!(
                    "serial group \"{group}\" held by job {} build {}",
                    other.name, holder.number
                );
            }
        }
    }
    WAITING_FOR_SLOT.into()
}
