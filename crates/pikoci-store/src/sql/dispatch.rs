//! Dispatch: claiming pending builds (concurrency, serial groups, paused flags), leases and the
//! requeue of builds whose worker went silent. Every change is a conditional update; a claim also
//! locks its pipeline's row, so two servers never both see a free slot and both take it.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use pikoci_core::store::{
    Build, BuildId, BuildStatus, ClaimRequest, RequeuedBuild, RunningBuild, StoreResult,
};
use sea_orm::sea_query::{Expr, ExprTrait, Query};
use sea_orm::{
    ColumnTrait, DatabaseTransaction, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder,
    QuerySelect,
};

use super::convert::{self, from_json, int, ms};
use super::resources::team_condition;
use super::{SqlStore, retrying};
use crate::entity::{build, job, pipeline};
use crate::error::Context;

/// How many jobs with pending builds are looked at per claim.
const JOB_CANDIDATES: u64 = 200;

const PENDING: &str = "pending";
const ACTIVE: [&str; 2] = ["assigned", "started"];

pub(super) async fn claim_next_pending(
    store: &SqlStore,
    request: &ClaimRequest,
) -> StoreResult<Option<Build>> {
    // The oldest pending build of every unpaused job, oldest first.
    let unpaused_pipelines = Query::select()
        .column(pipeline::Column::Id)
        .from(pipeline::Entity)
        .and_where(pipeline::Column::Paused.eq(false))
        .to_owned();
    let unpaused_jobs = Query::select()
        .column(job::Column::Id)
        .from(job::Entity)
        .and_where(job::Column::Paused.eq(false))
        .and_where(job::Column::PipelineId.in_subquery(unpaused_pipelines))
        .to_owned();
    let candidates: Vec<(i64, i64)> = build::Entity::find()
        .select_only()
        .column(build::Column::JobId)
        .column_as(build::Column::Id.min(), "first")
        .filter(build::Column::Status.eq(PENDING))
        .filter(build::Column::JobId.in_subquery(unpaused_jobs))
        .filter(team_condition(build::Column::PipelineId, &request.teams))
        .group_by(build::Column::JobId)
        .order_by_asc(Expr::col("first"))
        .limit(JOB_CANDIDATES)
        .into_tuple()
        .all(store.db())
        .await
        .context(|| "failed to look for pending builds")?;
    if candidates.is_empty() {
        return Ok(None);
    }
    let jobs: HashMap<i64, job::Model> = job::Entity::find()
        .filter(job::Column::Id.is_in(candidates.iter().map(|(job, _)| *job)))
        .all(store.db())
        .await
        .context(|| "failed to load the jobs of pending builds")?
        .into_iter()
        .map(|row| (row.id, row))
        .collect();
    for (job_id, _) in candidates {
        let Some(job) = jobs.get(&job_id) else {
            continue;
        };
        let tags: Vec<String> = from_json(&job.tags, "job tags")?;
        if !tags.iter().all(|tag| request.worker_tags.contains(tag))
            || (request.exclusive && tags.is_empty())
        {
            continue;
        }
        let claimed = retrying(false, || async {
            let txn = store.begin().await?;
            let claimed = claim_in_job(&txn, job, request).await?;
            if claimed.is_some() {
                txn.commit()
                    .await
                    .context(|| format!("failed to claim a build of job {job_id}"))?;
            } else {
                txn.rollback()
                    .await
                    .context(|| format!("failed to claim a build of job {job_id}"))?;
            }
            Ok(claimed)
        })
        .await?;
        if let Some(build) = claimed {
            return Ok(Some(convert::build(build)?));
        }
    }
    Ok(None)
}

/// Claims the job's oldest pending build if the job may start one now.
async fn claim_in_job(
    txn: &DatabaseTransaction,
    job: &job::Model,
    request: &ClaimRequest,
) -> StoreResult<Option<build::Model>> {
    let context = || format!("failed to claim a build of job {}", job.id);
    // Lock the pipeline row: claims in one pipeline queue here, and whatever they read after
    // it (READ COMMITTED, or SQLite's single writer) is current.
    pipeline::Entity::update_many()
        .col_expr(
            pipeline::Column::DispatchSeq,
            Expr::col(pipeline::Column::DispatchSeq).add(1),
        )
        .filter(pipeline::Column::Id.eq(job.pipeline_id))
        .exec(txn)
        .await
        .context(context)?;
    let paused: Option<(bool,)> = pipeline::Entity::find_by_id(job.pipeline_id)
        .select_only()
        .column(pipeline::Column::Paused)
        .into_tuple()
        .one(txn)
        .await
        .context(context)?;
    let Some(current) = job::Entity::find_by_id(job.id)
        .one(txn)
        .await
        .context(context)?
    else {
        return Ok(None);
    };
    if current.paused || paused.is_none_or(|(paused,)| paused) {
        return Ok(None);
    }
    if current.concurrency > 0 {
        let active = active_builds(txn, &[current.id]).await?;
        if active >= u64::try_from(current.concurrency).unwrap_or(0) {
            return Ok(None);
        }
    }
    let groups: Vec<String> = from_json(&current.serial_groups, "serial groups")?;
    if !groups.is_empty() {
        let siblings: Vec<(i64, String)> = job::Entity::find()
            .select_only()
            .column(job::Column::Id)
            .column(job::Column::SerialGroups)
            .filter(job::Column::PipelineId.eq(current.pipeline_id))
            .into_tuple()
            .all(txn)
            .await
            .context(context)?;
        let mut sharing = Vec::new();
        for (id, their_groups) in siblings {
            let their_groups: Vec<String> = from_json(&their_groups, "serial groups")?;
            if their_groups.iter().any(|g| groups.contains(g)) {
                sharing.push(id);
            }
        }
        if active_builds(txn, &sharing).await? > 0 {
            return Ok(None);
        }
    }
    let Some(oldest) = build::Entity::find()
        .filter(build::Column::JobId.eq(current.id))
        .filter(build::Column::Status.eq(PENDING))
        .order_by_asc(build::Column::Id)
        .one(txn)
        .await
        .context(context)?
    else {
        return Ok(None);
    };
    let claimed = build::Entity::update_many()
        .col_expr(
            build::Column::Status,
            Expr::value(BuildStatus::Assigned.as_str()),
        )
        .col_expr(
            build::Column::Attempt,
            Expr::col(build::Column::Attempt).add(1),
        )
        .col_expr(
            build::Column::WorkerId,
            Expr::value(request.worker_id.clone()),
        )
        .col_expr(
            build::Column::LeaseExpiresAt,
            Expr::value(ms(request.lease_until)),
        )
        .filter(build::Column::Id.eq(oldest.id))
        .filter(build::Column::Status.eq(PENDING))
        .exec(txn)
        .await
        .context(context)?;
    if claimed.rows_affected != 1 {
        return Ok(None);
    }
    build::Entity::find_by_id(oldest.id)
        .one(txn)
        .await
        .context(context)
}

/// How many builds of these jobs hold a worker slot.
async fn active_builds(txn: &DatabaseTransaction, jobs: &[i64]) -> StoreResult<u64> {
    build::Entity::find()
        .filter(build::Column::JobId.is_in(jobs.iter().copied()))
        .filter(build::Column::Status.is_in(ACTIVE))
        .count(txn)
        .await
        .context(|| "failed to count running builds")
}

pub(super) async fn renew_leases(
    store: &SqlStore,
    worker_id: &str,
    running: &[RunningBuild],
    until: DateTime<Utc>,
) -> StoreResult<Vec<BuildId>> {
    let mut renewed = Vec::new();
    for build in running {
        let updated = build::Entity::update_many()
            .col_expr(build::Column::LeaseExpiresAt, Expr::value(ms(until)))
            .filter(build::Column::Id.eq(build.build_id.0))
            .filter(build::Column::Attempt.eq(int(build.attempt, "attempt")?))
            .filter(build::Column::WorkerId.eq(worker_id))
            .filter(build::Column::Status.is_in(ACTIVE))
            .exec(store.db())
            .await
            .context(|| format!("failed to renew the lease of build {}", build.build_id))?;
        if updated.rows_affected == 1 {
            renewed.push(build.build_id);
        }
    }
    Ok(renewed)
}

pub(super) async fn requeue_expired(
    store: &SqlStore,
    now: DateTime<Utc>,
    max_requeues: u32,
) -> StoreResult<Vec<RequeuedBuild>> {
    let now_ms = ms(now);
    let expired = build::Entity::find()
        .filter(build::Column::Status.is_in(ACTIVE))
        .filter(build::Column::LeaseExpiresAt.lt(now_ms))
        .order_by_asc(build::Column::Id)
        .all(store.db())
        .await
        .context(|| "failed to look for builds whose lease lapsed")?;
    let mut requeued = Vec::new();
    for row in expired {
        let requeues = convert::uint(row.requeues);
        let back = requeues < max_requeues;
        let status = if back {
            BuildStatus::Pending
        } else {
            BuildStatus::Errored
        };
        // Bumping the attempt fences off the lost worker: its late events carry the old one.
        let mut update = build::Entity::update_many()
            .col_expr(build::Column::Status, Expr::value(status.as_str()))
            .col_expr(
                build::Column::Attempt,
                Expr::col(build::Column::Attempt).add(1),
            )
            .col_expr(
                build::Column::LeaseExpiresAt,
                Expr::value(Option::<i64>::None),
            )
            .filter(build::Column::Id.eq(row.id))
            .filter(build::Column::Attempt.eq(row.attempt))
            .filter(build::Column::Status.is_in(ACTIVE))
            .filter(build::Column::LeaseExpiresAt.lt(now_ms));
        update = if back {
            update
                .col_expr(
                    build::Column::Requeues,
                    Expr::col(build::Column::Requeues).add(1),
                )
                .col_expr(build::Column::WorkerId, Expr::value(Option::<String>::None))
        } else {
            update
                .col_expr(build::Column::FinishedAt, Expr::value(now_ms))
                .col_expr(
                    build::Column::Error,
                    Expr::value(format!(
                        "the build lost its worker {} times (the limit is {max_requeues})",
                        requeues + 1
                    )),
                )
        };
        let changed = update
            .exec(store.db())
            .await
            .context(|| format!("failed to requeue build {}", row.id))?;
        if changed.rows_affected == 1 {
            requeued.push(RequeuedBuild {
                build_id: BuildId(row.id),
                attempt: convert::uint(row.attempt),
                worker_id: row.worker_id,
                status,
            });
        }
    }
    Ok(requeued)
}
