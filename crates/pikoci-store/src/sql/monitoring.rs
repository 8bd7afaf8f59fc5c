//! What `/metrics` reads from the database at each scrape: small aggregate queries, each
//! answered from an index.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use pikoci_core::store::{
    BuildStatus, CHECK_LAG, CheckGauges, JobBuildCount, StoreGauges, StoreResult,
};
use sea_orm::sea_query::Query;
use sea_orm::{ColumnTrait, Condition, EntityTrait, QueryFilter, QuerySelect, Select};

use super::SqlStore;
use super::convert::{ms, time};
use crate::entity::{build, job, pipeline, resource, team};
use crate::error::Context;

pub(super) async fn gauges(store: &SqlStore, now: DateTime<Utc>) -> StoreResult<StoreGauges> {
    Ok(StoreGauges {
        builds: build_counts(store).await?,
        oldest_pending: oldest_pending(store).await?,
        checks: checks(store, now).await?,
    })
}

/// The builds that are not finished, by job and status, named by team, pipeline and job. Read
/// off the index on `(status, job_id, id)`: the finished builds, as many as history holds, are
/// not read.
async fn build_counts(store: &SqlStore) -> StoreResult<Vec<JobBuildCount>> {
    let context = || "failed to count the builds by job and status";
    let active: Vec<&str> = BuildStatus::ALL
        .iter()
        .filter(|status| !status.is_finished())
        .map(|status| status.as_str())
        .collect();
    let counts: Vec<(String, i64, i64)> = build::Entity::find()
        .select_only()
        .column(build::Column::Status)
        .column(build::Column::JobId)
        .column_as(build::Column::Id.count(), "builds")
        .filter(build::Column::Status.is_in(active))
        .group_by(build::Column::Status)
        .group_by(build::Column::JobId)
        .into_tuple()
        .all(store.db())
        .await
        .context(context)?;
    let teams: HashMap<i64, String> = team::Entity::find()
        .select_only()
        .column(team::Column::Id)
        .column(team::Column::Name)
        .into_tuple()
        .all(store.db())
        .await
        .context(context)?
        .into_iter()
        .collect();
    let pipelines = names::<pipeline::Entity>(
        store,
        [
            pipeline::Column::Id,
            pipeline::Column::TeamId,
            pipeline::Column::Name,
        ],
    )
    .await?;
    let jobs = names::<job::Entity>(
        store,
        [job::Column::Id, job::Column::PipelineId, job::Column::Name],
    )
    .await?;
    // A build whose job, pipeline or team is gone while the scrape reads (deleted in between)
    // is left out rather than reported under no name.
    Ok(counts
        .into_iter()
        .filter_map(|(status, job_id, count)| {
            let (pipeline_id, job) = jobs.get(&job_id)?;
            let (team_id, pipeline) = pipelines.get(pipeline_id)?;
            Some(JobBuildCount {
                team: teams.get(team_id)?.clone(),
                pipeline: pipeline.clone(),
                job: job.clone(),
                status: BuildStatus::parse(&status)?,
                count: u64::try_from(count).unwrap_or(0),
            })
        })
        .collect())
}

/// Every row of `E` by id, with its owner's id and its name (`[id, owner, name]` columns).
async fn names<E: EntityTrait>(
    store: &SqlStore,
    [id, owner, name]: [E::Column; 3],
) -> StoreResult<HashMap<i64, (i64, String)>> {
    let rows: Vec<(i64, i64, String)> = E::find()
        .select_only()
        .column(id)
        .column(owner)
        .column(name)
        .into_tuple()
        .all(store.db())
        .await
        .context(|| "failed to read the names of builds' jobs")?;
    Ok(rows
        .into_iter()
        .map(|(id, owner, name)| (id, (owner, name)))
        .collect())
}

/// When the oldest pending build whose job and pipeline are not paused was created.
async fn oldest_pending(store: &SqlStore) -> StoreResult<Option<DateTime<Utc>>> {
    let running_jobs = Query::select()
        .column(job::Column::Id)
        .from(job::Entity)
        .and_where(job::Column::Paused.eq(false))
        .to_owned();
    let running_pipelines = Query::select()
        .column(pipeline::Column::Id)
        .from(pipeline::Entity)
        .and_where(pipeline::Column::Paused.eq(false))
        .to_owned();
    let oldest: Option<Option<i64>> = build::Entity::find()
        .select_only()
        .column_as(build::Column::CreatedAt.min(), "oldest")
        .filter(build::Column::Status.eq(BuildStatus::Pending.as_str()))
        .filter(build::Column::JobId.in_subquery(running_jobs))
        .filter(build::Column::PipelineId.in_subquery(running_pipelines))
        .into_tuple()
        .one(store.db())
        .await
        .context(|| "failed to find the oldest pending build")?;
    Ok(oldest.flatten().map(time))
}

/// The checks due, running and lagging at `now`, by the rules of the check claim.
async fn checks(store: &SqlStore, now: DateTime<Utc>) -> StoreResult<CheckGauges> {
    let now_ms = ms(now);
    let lag_ms = i64::try_from(CHECK_LAG.as_millis()).unwrap_or(i64::MAX);
    // Idle and due since `since`, or claimed by a worker whose lease lapsed before it (a claim
    // moves `next_check_at` an interval on, so a lapsed lease says since when it is due).
    let due_since = |since: i64| {
        Condition::any()
            .add(
                Condition::all()
                    .add(resource::Column::CheckLeaseExpiresAt.is_null())
                    .add(resource::Column::NextCheckAt.lte(since)),
            )
            .add(resource::Column::CheckLeaseExpiresAt.lt(since))
    };
    let running = Condition::all().add(resource::Column::CheckLeaseExpiresAt.gte(now_ms));
    Ok(CheckGauges {
        due: count(store, resource::Entity::find().filter(due_since(now_ms))).await?,
        running: count(store, resource::Entity::find().filter(running)).await?,
        lagging: count(
            store,
            resource::Entity::find().filter(due_since(now_ms.saturating_sub(lag_ms))),
        )
        .await?,
    })
}

/// How many resources `query` finds.
async fn count(store: &SqlStore, query: Select<resource::Entity>) -> StoreResult<u64> {
    let count: Option<i64> = query
        .select_only()
        .column_as(resource::Column::Id.count(), "resources")
        .into_tuple()
        .one(store.db())
        .await
        .context(|| "failed to count the resources' checks")?;
    Ok(count
        .and_then(|count| u64::try_from(count).ok())
        .unwrap_or(0))
}
