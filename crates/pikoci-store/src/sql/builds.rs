//! Builds: numbering, retries, conditional status transitions and steps.

use chrono::{DateTime, Utc};
use pikoci_core::store::audit::actions;
use pikoci_core::store::{
    Build, BuildFilter, BuildId, BuildNumber, BuildStatus, BuildStep, BuildTransition,
    BuildVersion, JobId, NewBuild, PipelineId, StepStatus, StoreError, StoreResult, TeamId,
    VersionUse,
};
use sea_orm::sea_query::{Expr, ExprTrait, Query};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseTransaction,
    EntityTrait, IntoActiveModel, QueryFilter, QueryOrder, QuerySelect,
};

use super::audit_log::{self, Change};
use super::convert::{self, int, ms, to_json};
use super::{SqlStore, limit, retrying};
use crate::entity::{build, build_step, build_version, job, pipeline};
use crate::error::Context;

pub(super) async fn create(store: &SqlStore, new: &NewBuild) -> StoreResult<Build> {
    if !matches!(
        new.status,
        BuildStatus::Pending | BuildStatus::WaitingForApproval
    ) {
        return Err(StoreError::invalid_input(format!(
            "a new build must be pending or waiting_for_approval, not {}",
            new.status
        )));
    }
    let inputs = to_json(&new.inputs, "build inputs")?;
    let key = new.once_per_versions.then(|| versions_key(&new.versions));
    // A second server inserting the same automatic build at the same moment hits the unique
    // key; the run again finds the first one's build.
    retrying(true, || async {
        let txn = store.begin().await?;
        let job_id = new.job_id;
        if let Some(key) = &key {
            let existing = build::Entity::find()
                .filter(build::Column::JobId.eq(job_id.0))
                .filter(build::Column::VersionsKey.eq(key.as_str()))
                .one(&txn)
                .await
                .context(|| format!("failed to look for an automatic build of job {job_id}"))?;
            if let Some(existing) = existing {
                txn.rollback()
                    .await
                    .context(|| format!("failed to create a build of job {job_id}"))?;
                return convert::build(existing);
            }
        }
        let number = next_number(&txn, job_id).await?;
        let row = insert(
            &txn,
            job_id,
            BuildNumber::new(number),
            None,
            new.status,
            &inputs,
            new,
        )
        .await?;
        super::versions::insert_build_versions(&txn, BuildId(row.id), &new.versions).await?;
        if !new.once_per_versions {
            super::pipelines::audit_job(
                &txn,
                job_id,
                pikoci_core::store::audit::actions::JOB_TRIGGERED,
                serde_json::json!({ "build": number }),
                new.created_at,
            )
            .await?;
        }
        txn.commit()
            .await
            .context(|| format!("failed to create a build of job {job_id}"))?;
        convert::build(row)
    })
    .await
}

/// Takes the job's next build number (the row update also serializes concurrent creators).
async fn next_number(txn: &DatabaseTransaction, job_id: JobId) -> StoreResult<u32> {
    let context = || format!("failed to number a build of job {job_id}");
    let bumped = job::Entity::update_many()
        .col_expr(
            job::Column::NextBuildNumber,
            Expr::col(job::Column::NextBuildNumber).add(1),
        )
        .filter(job::Column::Id.eq(job_id.0))
        .exec(txn)
        .await
        .context(context)?;
    if bumped.rows_affected == 0 {
        return Err(StoreError::not_found(format!(
            "job {job_id} does not exist"
        )));
    }
    let next: Option<i32> = job::Entity::find_by_id(job_id.0)
        .select_only()
        .column(job::Column::NextBuildNumber)
        .into_tuple()
        .one(txn)
        .await
        .context(context)?;
    Ok(convert::uint(next.unwrap_or(1) - 1))
}

async fn insert(
    txn: &DatabaseTransaction,
    job_id: JobId,
    number: BuildNumber,
    retry_of: Option<BuildId>,
    status: BuildStatus,
    inputs: &str,
    new: &NewBuild,
) -> StoreResult<build::Model> {
    let context = || format!("failed to create a build of job {job_id}");
    let pipeline_id: Option<i64> = job::Entity::find_by_id(job_id.0)
        .select_only()
        .column(job::Column::PipelineId)
        .into_tuple()
        .one(txn)
        .await
        .context(context)?;
    let pipeline_id =
        pipeline_id.ok_or_else(|| StoreError::not_found(format!("job {job_id} does not exist")))?;
    let team_id: Option<i64> = pipeline::Entity::find_by_id(pipeline_id)
        .select_only()
        .column(pipeline::Column::TeamId)
        .into_tuple()
        .one(txn)
        .await
        .context(context)?;
    build::ActiveModel {
        job_id: Set(job_id.0),
        pipeline_id: Set(pipeline_id),
        team_id: Set(team_id.unwrap_or_default()),
        number: Set(int(number.number, "build number")?),
        retry: Set(int(number.retry, "retry number")?),
        retries: Set(0),
        retry_of: Set(retry_of.map(|b| b.0)),
        status: Set(status.as_str().to_owned()),
        inputs: Set(inputs.to_owned()),
        error: Set(None),
        trigger_resource_id: Set(new.trigger.map(|t| t.resource_id.0)),
        trigger_version_id: Set(new.trigger.map(|t| t.version_id.0)),
        attempt: Set(0),
        worker_id: Set(None),
        lease_expires_at: Set(None),
        requeues: Set(0),
        created_at: Set(ms(new.created_at)),
        started_at: Set(None),
        finished_at: Set(None),
        cancel_deadline: Set(None),
        versions_key: Set(new.once_per_versions.then(|| versions_key(&new.versions))),
        ..Default::default()
    }
    .insert(txn)
    .await
    .context(context)
}

pub(super) async fn retry(store: &SqlStore, of: BuildId, at: DateTime<Utc>) -> StoreResult<Build> {
    retrying(false, || async {
        let txn = store.begin().await?;
        let context = || format!("failed to retry build {of}");
        let original = load(&txn, of).await?;
        if !original.status.is_finished() {
            return Err(StoreError::invalid_input(format!(
                "build {of} is {}: only finished builds can be retried",
                original.status
            )));
        }
        let job = super::pipelines::job_row(&txn, original.job_id).await?;
        if job.disable_retry {
            return Err(StoreError::invalid_input(format!(
                "job \"{}\" has disable_retry: its builds cannot be retried",
                job.name
            )));
        }
        // A retry of `3.1` is `3.2`: the counter lives on the original build.
        let root = original.retry_of.unwrap_or(original.id);
        let bumped = build::Entity::update_many()
            .col_expr(
                build::Column::Retries,
                Expr::col(build::Column::Retries).add(1),
            )
            .filter(build::Column::Id.eq(root.0))
            .exec(&txn)
            .await
            .context(context)?;
        if bumped.rows_affected == 0 {
            return Err(StoreError::not_found(format!(
                "build {root}, the original of build {of}, no longer exists"
            )));
        }
        let root_row = build::Entity::find_by_id(root.0)
            .one(&txn)
            .await
            .context(context)?
            .ok_or_else(|| StoreError::not_found(format!("build {root} does not exist")))?;
        let number = BuildNumber {
            number: convert::uint(root_row.number),
            retry: convert::uint(root_row.retries),
        };
        let new = NewBuild {
            job_id: original.job_id,
            status: BuildStatus::Pending,
            inputs: original.inputs.clone(),
            trigger: original.trigger,
            // Recorded below, with the new build's id.
            versions: Vec::new(),
            once_per_versions: false,
            created_at: at,
        };
        let inputs = to_json(&new.inputs, "build inputs")?;
        let row = insert(
            &txn,
            original.job_id,
            number,
            Some(root),
            new.status,
            &inputs,
            &new,
        )
        .await?;
        // The retry uses the versions the original's gets used, recorded with it.
        let used: Vec<BuildVersion> = super::versions::load_build_versions(&txn, of)
            .await?
            .into_iter()
            .filter(|v| v.usage == VersionUse::Get)
            .collect();
        super::versions::insert_build_versions(&txn, BuildId(row.id), &used).await?;
        let retry = convert::build(row)?;
        audit_build(
            &txn,
            &original,
            actions::JOB_RETRIED,
            serde_json::json!({ "retry": retry.number.to_string() }),
            at,
        )
        .await?;
        txn.commit().await.context(context)?;
        Ok(retry)
    })
    .await
}

/// The key of an automatic build's get versions (see `NewBuild::once_per_versions`).
fn versions_key(versions: &[BuildVersion]) -> String {
    let mut used: Vec<String> = versions
        .iter()
        .filter(|v| v.usage == VersionUse::Get)
        .map(|v| format!("{}:{}", v.resource_id.0, v.version_id.0))
        .collect();
    used.sort();
    used.dedup();
    convert::digest(&used.join(","))
}

/// Loads a build through any connection.
pub(super) async fn load<C: ConnectionTrait>(db: &C, id: BuildId) -> StoreResult<Build> {
    let row = build::Entity::find_by_id(id.0)
        .one(db)
        .await
        .context(|| format!("failed to load build {id}"))?
        .ok_or_else(|| StoreError::not_found(format!("build {id} does not exist")))?;
    convert::build(row)
}

pub(super) async fn by_id(store: &SqlStore, id: BuildId) -> StoreResult<Build> {
    load(store.db(), id).await
}

pub(super) async fn by_number(
    store: &SqlStore,
    job: JobId,
    number: BuildNumber,
) -> StoreResult<Build> {
    let row = build::Entity::find()
        .filter(build::Column::JobId.eq(job.0))
        .filter(build::Column::Number.eq(int(number.number, "build number")?))
        .filter(build::Column::Retry.eq(int(number.retry, "retry number")?))
        .one(store.db())
        .await
        .context(|| format!("failed to load build {number} of job {job}"))?
        .ok_or_else(|| StoreError::not_found(format!("job {job} has no build {number}")))?;
    convert::build(row)
}

pub(super) async fn list(store: &SqlStore, filter: &BuildFilter) -> StoreResult<Vec<Build>> {
    let mut query = build::Entity::find();
    if let Some(job) = filter.job_id {
        query = query.filter(build::Column::JobId.eq(job.0));
    }
    if let Some(pipeline) = filter.pipeline_id {
        query = query.filter(build::Column::PipelineId.eq(pipeline.0));
    }
    if !filter.statuses.is_empty() {
        query =
            query.filter(build::Column::Status.is_in(filter.statuses.iter().map(|s| s.as_str())));
    }
    if let Some(before) = filter.before {
        query = query.filter(build::Column::Id.lt(before.0));
    }
    if let Some(since) = filter.since {
        query = query.filter(build::Column::CreatedAt.gte(ms(since)));
    }
    if let Some(version) = filter.used_version {
        query = query.filter(
            build::Column::Id.in_subquery(
                Query::select()
                    .column(build_version::Column::BuildId)
                    .from(build_version::Entity)
                    .and_where(build_version::Column::VersionId.eq(version.0))
                    .to_owned(),
            ),
        );
    }
    query
        .order_by_desc(build::Column::Id)
        .limit(limit(filter.limit))
        .all(store.db())
        .await
        .context(|| "failed to list builds")?
        .into_iter()
        .map(convert::build)
        .collect()
}

pub(super) async fn transition(store: &SqlStore, t: &BuildTransition) -> StoreResult<Build> {
    // What a user does is recorded with it, in one transaction; what workers report (most
    // transitions) takes none.
    match t.action {
        Some(action) if audit_log::acting() => {
            let txn = store.begin().await?;
            let build = transition_in(&txn, t).await?;
            let details = match (&t.error, t.to) {
                (Some(error), BuildStatus::Cancelled) => serde_json::json!({ "reason": error }),
                _ => serde_json::json!({}),
            };
            // A warning keeps the run's times: the entry is stamped now.
            let at = if t.to == BuildStatus::Warning {
                Utc::now()
            } else {
                t.at
            };
            audit_build(&txn, &build, action, details, at).await?;
            txn.commit()
                .await
                .context(|| format!("failed to move build {} to {}", t.build_id, t.to))?;
            Ok(build)
        }
        _ => transition_in(store.db(), t).await,
    }
}

/// Records what a user did with `build` in its team's audit log, when someone acts: a
/// `job.*` action names the job (and the build in `details.build`), a `build.*` action the
/// build (`pipeline/job/number`).
pub(super) async fn audit_build<C: ConnectionTrait>(
    txn: &C,
    build: &Build,
    action: &str,
    mut details: serde_json::Value,
    at: DateTime<Utc>,
) -> StoreResult<()> {
    if !audit_log::acting() {
        return Ok(());
    }
    let number = build.number.to_string();
    if action.starts_with("job.") {
        if let Some(map) = details.as_object_mut() {
            map.insert("build".to_owned(), serde_json::Value::String(number));
        }
        return super::pipelines::audit_job(txn, build.job_id, action, details, at).await;
    }
    let job = super::pipelines::job_row(txn, build.job_id).await?;
    let pipeline = super::pipelines::pipeline_row(txn, PipelineId(job.pipeline_id)).await?;
    audit_log::record(
        txn,
        Change {
            team: TeamId(pipeline.team_id),
            action,
            target_type: "build",
            target_name: &format!("{}/{}/{number}", pipeline.name, job.name),
            pipeline: Some(&pipeline.name),
            details,
            at,
        },
    )
    .await
}

async fn transition_in<C: ConnectionTrait>(db: &C, t: &BuildTransition) -> StoreResult<Build> {
    if t.from.is_empty() {
        return Err(StoreError::invalid_input(
            "a build transition needs at least one status to move from",
        ));
    }
    let mut update = build::Entity::update_many()
        .col_expr(build::Column::Status, Expr::value(t.to.as_str()))
        .filter(build::Column::Id.eq(t.build_id.0))
        .filter(build::Column::Status.is_in(t.from.iter().map(|s| s.as_str())));
    if let Some(attempt) = t.attempt {
        update = update.filter(build::Column::Attempt.eq(int(attempt, "attempt")?));
    }
    if let Some(error) = &t.error {
        update = update.col_expr(build::Column::Error, Expr::value(error.clone()));
    }
    if t.to == BuildStatus::Started {
        update = update.col_expr(build::Column::StartedAt, Expr::value(ms(t.at)));
    }
    if t.to.is_finished() {
        update = update.col_expr(build::Column::FinishedAt, Expr::value(ms(t.at)));
    }
    if t.to.is_finished() || t.to == BuildStatus::Pending {
        update = update.col_expr(
            build::Column::LeaseExpiresAt,
            Expr::value(Option::<i64>::None),
        );
    }
    let changed = update
        .exec(db)
        .await
        .context(|| format!("failed to move build {} to {}", t.build_id, t.to))?;
    let build = load(db, t.build_id).await?;
    if changed.rows_affected == 1 {
        return Ok(build);
    }
    let expected: Vec<&str> = t.from.iter().map(|s| s.as_str()).collect();
    Err(StoreError::conflict(format!(
        "build {} is {} at attempt {}, not {}{}: it was not moved to {}",
        t.build_id,
        build.status,
        build.dispatch.attempt,
        expected.join(" or "),
        t.attempt
            .map(|a| format!(" at attempt {a}"))
            .unwrap_or_default(),
        t.to
    )))
}

pub(super) async fn record_step(
    store: &SqlStore,
    build_id: BuildId,
    step: &BuildStep,
) -> StoreResult<()> {
    let attempt = int(step.attempt, "attempt")?;
    let index = int(step.step, "step index")?;
    let parent = step
        .parent
        .map(|parent| int(parent, "parent step index"))
        .transpose()?;
    retrying(true, || async {
        let txn = store.begin().await?;
        let context = || format!("failed to record step {} of build {build_id}", step.step);
        let build = load(&txn, build_id).await?;
        if build.dispatch.attempt != step.attempt {
            return Err(StoreError::conflict(format!(
                "build {build_id} is at attempt {}, not {}: step {} was not recorded",
                build.dispatch.attempt, step.attempt, step.step
            )));
        }
        let existing = build_step::Entity::find()
            .filter(build_step::Column::BuildId.eq(build_id.0))
            .filter(build_step::Column::Attempt.eq(attempt))
            .filter(build_step::Column::Step.eq(index))
            .one(&txn)
            .await
            .context(context)?;
        match existing {
            Some(row) => {
                let merged = merge_step(&row, step);
                if merged != row {
                    let mut active = row.into_active_model();
                    active.name = Set(merged.name);
                    active.kind = Set(merged.kind);
                    active.status = Set(merged.status);
                    active.started_at = Set(merged.started_at);
                    active.finished_at = Set(merged.finished_at);
                    active.parent = Set(merged.parent);
                    active.update(&txn).await.context(context)?;
                }
            }
            None => {
                build_step::ActiveModel {
                    build_id: Set(build_id.0),
                    attempt: Set(attempt),
                    step: Set(index),
                    name: Set(step.name.clone()),
                    kind: Set(step.kind.clone()),
                    status: Set(step.status.as_str().to_owned()),
                    started_at: Set(step.started_at.map(ms)),
                    finished_at: Set(step.finished_at.map(ms)),
                    parent: Set(parent),
                    ..Default::default()
                }
                .insert(&txn)
                .await
                .context(context)?;
            }
        }
        txn.commit().await.context(context)
    })
    .await
}

/// What a stored step becomes with a new report: a finished step keeps its first final
/// status and finish time (a redelivered or late `started` never moves it back), missing
/// times, names, kinds and parents are filled in.
fn merge_step(row: &build_step::Model, step: &BuildStep) -> build_step::Model {
    let finished = row.status != StepStatus::Started.as_str();
    let keep_or = |stored: &String, new: &String| {
        if new.is_empty() {
            stored.clone()
        } else if stored.is_empty() || !finished {
            new.clone()
        } else {
            stored.clone()
        }
    };
    let mut merged = row.clone();
    merged.name = keep_or(&row.name, &step.name);
    merged.kind = keep_or(&row.kind, &step.kind);
    merged.started_at = row.started_at.or(step.started_at.map(ms));
    merged.parent = row
        .parent
        .or_else(|| step.parent.and_then(|parent| i32::try_from(parent).ok()));
    if !finished {
        merged.status = step.status.as_str().to_owned();
        merged.finished_at = step.finished_at.map(ms).or(row.finished_at);
    }
    merged
}

pub(super) async fn steps(store: &SqlStore, build_id: BuildId) -> StoreResult<Vec<BuildStep>> {
    build_step::Entity::find()
        .filter(build_step::Column::BuildId.eq(build_id.0))
        .order_by_asc(build_step::Column::Attempt)
        .order_by_asc(build_step::Column::Step)
        .all(store.db())
        .await
        .context(|| format!("failed to load the steps of build {build_id}"))?
        .into_iter()
        .map(convert::step)
        .collect()
}
