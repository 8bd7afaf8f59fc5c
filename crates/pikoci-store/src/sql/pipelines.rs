//! Pipelines and jobs: the one-transaction update that diffs jobs and resources by name.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use pikoci_core::model::Pipeline;
use pikoci_core::name::is_canonical;
use pikoci_core::store::audit::actions;
use pikoci_core::store::{
    ChangeSet, JobId, PipelineId, PipelineSpec, SetPipelineOutcome, StoreError, StoreResult,
    StoredJob, StoredPipeline, TeamId,
};
use sea_orm::sea_query::Expr;
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, ConnectionTrait, DatabaseTransaction,
    EntityTrait, IntoActiveModel, QueryFilter, QueryOrder,
};
use serde::Serialize;

use super::audit_log::{self, Change};
use super::convert::{self, int, ms, to_json, to_model_json};
use super::{SqlStore, retrying};
use crate::entity::{job, job_serial_group, job_tag, pipeline, pipeline_type, team};
use crate::error::{Class, Context, classify, db_error};

/// The model's parts, serialized once before the transaction (it may run more than once).
struct Prepared {
    vars: String,
    model: String,
    jobs: Vec<PreparedJob>,
    types: Vec<(&'static str, String, String)>,
}

struct PreparedJob {
    name: String,
    concurrency: i32,
    serial_groups: String,
    tags: String,
    /// The tags and serial groups again, each once, for their own rows.
    tag_rows: Vec<String>,
    group_rows: Vec<String>,
    disable_retry: bool,
    model: String,
}

pub(super) async fn set(
    store: &SqlStore,
    team: TeamId,
    spec: &PipelineSpec,
    at: DateTime<Utc>,
) -> StoreResult<SetPipelineOutcome> {
    if !is_canonical(&spec.name) {
        return Err(StoreError::invalid_input(format!(
            "invalid pipeline name \"{}\": use a-z, 0-9, '-' and '_' (at most 255 bytes)",
            spec.name
        )));
    }
    let prepared = prepare(spec)?;
    retrying(false, || async {
        let txn = store.begin().await?;
        let outcome = set_in(&txn, team, spec, &prepared, at).await?;
        txn.commit()
            .await
            .context(|| format!("failed to save pipeline \"{}\"", spec.name))?;
        Ok(outcome)
    })
    .await
}

fn prepare(spec: &PipelineSpec) -> StoreResult<Prepared> {
    let model: &Pipeline = &spec.model;
    let mut jobs = Vec::with_capacity(model.jobs.len());
    for job in &model.jobs {
        jobs.push(PreparedJob {
            name: job.name.clone(),
            concurrency: int(job.concurrency, "job concurrency")?,
            serial_groups: to_json(&job.serial_groups, "serial groups")?,
            tags: to_json(&job.tags, "job tags")?,
            tag_rows: distinct(&job.tags),
            group_rows: distinct(&job.serial_groups),
            disable_retry: job.disable_retry,
            model: to_model_json(job, "job")?,
        });
    }
    let mut types = Vec::new();
    fn add<T: Serialize>(
        out: &mut Vec<(&'static str, String, String)>,
        kind: &'static str,
        items: &[T],
        name: impl Fn(&T) -> String,
    ) -> StoreResult<()> {
        for item in items {
            out.push((kind, name(item), to_model_json(item, kind)?));
        }
        Ok(())
    }
    add(&mut types, "resource_type", &model.resource_types, |t| {
        t.name.clone()
    })?;
    add(&mut types, "runner_type", &model.runner_types, |t| {
        t.name.clone()
    })?;
    add(&mut types, "secret_type", &model.secret_types, |t| {
        t.name.clone()
    })?;
    add(&mut types, "service_type", &model.service_types, |t| {
        t.name.clone()
    })?;
    add(
        &mut types,
        "notification_type",
        &model.notification_types,
        |t| t.name.clone(),
    )?;
    add(&mut types, "notification", &model.notifications, |n| {
        format!("{}.{}", n.type_name, n.name)
    })?;
    Ok(Prepared {
        vars: to_json(&spec.vars, "pipeline vars")?,
        model: to_model_json(model, "pipeline model")?,
        jobs,
        types,
    })
}

async fn set_in(
    txn: &DatabaseTransaction,
    team: TeamId,
    spec: &PipelineSpec,
    prepared: &Prepared,
    at: DateTime<Utc>,
) -> StoreResult<SetPipelineOutcome> {
    let name = &spec.name;
    let duplicate = |what: &str, err| match classify(&err) {
        Class::Duplicate => StoreError::invalid_input(format!(
            "pipeline \"{name}\" has two {what} with the same name"
        )),
        _ => db_error(
            format!("failed to save the {what} of pipeline \"{name}\""),
            err,
        ),
    };
    team::Entity::find_by_id(team.0)
        .one(txn)
        .await
        .context(|| format!("failed to load team {team}"))?
        .ok_or_else(|| StoreError::not_found(format!("team {team} does not exist")))?;
    let existing = pipeline::Entity::find()
        .filter(pipeline::Column::TeamId.eq(team.0))
        .filter(pipeline::Column::Name.eq(name.as_str()))
        .one(txn)
        .await
        .context(|| format!("failed to load pipeline \"{name}\""))?;
    let created = existing.is_none();
    // Setting the same pipeline again changes nothing, and is not recorded (the model too: a
    // remote definition or a function's value may change it with the same file).
    let same_vars = |stored: &str| {
        serde_json::from_str::<serde_json::Value>(stored).ok()
            == serde_json::from_str::<serde_json::Value>(&prepared.vars).ok()
    };
    let changed = existing.as_ref().is_none_or(|row| {
        row.config != spec.config || row.model != prepared.model || !same_vars(&row.vars)
    });
    let row = match existing {
        Some(row) => {
            let mut row = row.into_active_model();
            row.config = Set(spec.config.clone());
            row.vars = Set(prepared.vars.clone());
            row.model = Set(prepared.model.clone());
            row.updated_at = Set(ms(at));
            row.update(txn)
                .await
                .context(|| format!("failed to update pipeline \"{name}\""))?
        }
        None => pipeline::ActiveModel {
            team_id: Set(team.0),
            name: Set(name.clone()),
            config: Set(spec.config.clone()),
            vars: Set(prepared.vars.clone()),
            model: Set(prepared.model.clone()),
            paused: Set(false),
            public: Set(false),
            dispatch_seq: Set(0),
            created_at: Set(ms(at)),
            updated_at: Set(ms(at)),
            ..Default::default()
        }
        .insert(txn)
        .await
        .map_err(|err| match classify(&err) {
            Class::Duplicate => {
                StoreError::conflict(format!("pipeline \"{name}\" was created concurrently"))
            }
            _ => db_error(format!("failed to create pipeline \"{name}\""), err),
        })?,
    };
    let pipeline_id = row.id;
    let jobs = set_jobs(txn, pipeline_id, row.paused, prepared, at)
        .await
        .map_err(|err| err.map(|err| duplicate("jobs", err)))
        .map_err(flatten)?;
    let resources = super::resources::set_all(txn, pipeline_id, &spec.model, at)
        .await
        .map_err(|err| err.map(|err| duplicate("resources", err)))
        .map_err(flatten)?;
    pipeline_type::Entity::delete_many()
        .filter(pipeline_type::Column::PipelineId.eq(pipeline_id))
        .exec(txn)
        .await
        .context(|| format!("failed to replace the types of pipeline \"{name}\""))?;
    if !prepared.types.is_empty() {
        let rows =
            prepared
                .types
                .iter()
                .map(|(kind, type_name, definition)| pipeline_type::ActiveModel {
                    pipeline_id: Set(pipeline_id),
                    kind: Set((*kind).to_owned()),
                    name: Set(type_name.clone()),
                    definition: Set(definition.clone()),
                    ..Default::default()
                });
        pipeline_type::Entity::insert_many(rows)
            .exec_without_returning(txn)
            .await
            .map_err(|err| duplicate("types", err))?;
    }
    if changed {
        let action = if created {
            actions::PIPELINE_CREATED
        } else {
            actions::PIPELINE_UPDATED
        };
        audit_pipeline(txn, &row, action, "pipeline", &row.name, at).await?;
    }
    Ok(SetPipelineOutcome {
        pipeline: convert::pipeline(row)?,
        created,
        jobs,
        resources,
    })
}

/// Either a database error still to be classified, or a finished `StoreError`.
pub(super) enum Failure {
    /// A database error.
    Db(sea_orm::DbErr),
    /// Anything else.
    Store(StoreError),
}

impl Failure {
    fn map(self, f: impl FnOnce(sea_orm::DbErr) -> StoreError) -> Failure {
        match self {
            Failure::Db(err) => Failure::Store(f(err)),
            other => other,
        }
    }
}

impl From<StoreError> for Failure {
    fn from(err: StoreError) -> Failure {
        Failure::Store(err)
    }
}

impl From<sea_orm::DbErr> for Failure {
    fn from(err: sea_orm::DbErr) -> Failure {
        Failure::Db(err)
    }
}

fn flatten(failure: Failure) -> StoreError {
    match failure {
        Failure::Store(err) => err,
        Failure::Db(err) => db_error("failed to save the pipeline", err),
    }
}

async fn set_jobs(
    txn: &DatabaseTransaction,
    pipeline_id: i64,
    paused: bool,
    prepared: &Prepared,
    at: DateTime<Utc>,
) -> Result<ChangeSet, Failure> {
    let mut old: HashMap<String, job::Model> = job::Entity::find()
        .filter(job::Column::PipelineId.eq(pipeline_id))
        .all(txn)
        .await?
        .into_iter()
        .map(|row| (row.name.clone(), row))
        .collect();
    let mut changes = ChangeSet::default();
    for (position, job) in prepared.jobs.iter().enumerate() {
        let position = i32::try_from(position).unwrap_or(i32::MAX);
        match old.remove(&job.name) {
            Some(row) => {
                let id = row.id;
                let mut row = row.into_active_model();
                row.position = Set(position);
                row.concurrency = Set(job.concurrency);
                row.serial_groups = Set(job.serial_groups.clone());
                row.tags = Set(job.tags.clone());
                row.disable_retry = Set(job.disable_retry);
                row.model = Set(job.model.clone());
                row.update(txn).await?;
                // Rewritten every time, so that setting the pipeline again mends rows a server
                // of an older version (without them) left out.
                set_job_rows(txn, id, pipeline_id, job, true).await?;
                changes.updated.push(job.name.clone());
            }
            None => {
                let inserted = job::ActiveModel {
                    pipeline_id: Set(pipeline_id),
                    name: Set(job.name.clone()),
                    position: Set(position),
                    paused: Set(paused),
                    concurrency: Set(job.concurrency),
                    serial_groups: Set(job.serial_groups.clone()),
                    tags: Set(job.tags.clone()),
                    disable_retry: Set(job.disable_retry),
                    model: Set(job.model.clone()),
                    next_build_number: Set(1),
                    created_at: Set(ms(at)),
                    ..Default::default()
                }
                .insert(txn)
                .await?;
                set_job_rows(txn, inserted.id, pipeline_id, job, false).await?;
                changes.added.push(job.name.clone());
            }
        }
    }
    if !old.is_empty() {
        let ids: Vec<i64> = old.values().map(|row| row.id).collect();
        job::Entity::delete_many()
            .filter(job::Column::Id.is_in(ids))
            .exec(txn)
            .await?;
        changes.removed = old.into_keys().collect();
        changes.removed.sort();
    }
    Ok(changes)
}

/// Writes a job's tag and serial group rows (what the claim matches), replacing the old ones.
async fn set_job_rows(
    txn: &DatabaseTransaction,
    job_id: i64,
    pipeline_id: i64,
    job: &PreparedJob,
    replace: bool,
) -> Result<(), Failure> {
    if replace {
        job_tag::Entity::delete_many()
            .filter(job_tag::Column::JobId.eq(job_id))
            .exec(txn)
            .await?;
        job_serial_group::Entity::delete_many()
            .filter(job_serial_group::Column::JobId.eq(job_id))
            .exec(txn)
            .await?;
    }
    if !job.tag_rows.is_empty() {
        job_tag::Entity::insert_many(job.tag_rows.iter().map(|tag| job_tag::ActiveModel {
            job_id: Set(job_id),
            tag: Set(tag.clone()),
            ..Default::default()
        }))
        .exec(txn)
        .await?;
    }
    if !job.group_rows.is_empty() {
        job_serial_group::Entity::insert_many(job.group_rows.iter().map(|name| {
            job_serial_group::ActiveModel {
                job_id: Set(job_id),
                pipeline_id: Set(pipeline_id),
                name: Set(name.clone()),
                ..Default::default()
            }
        }))
        .exec(txn)
        .await?;
    }
    Ok(())
}

/// The names, sorted, each once.
fn distinct(names: &[String]) -> Vec<String> {
    let mut names = names.to_vec();
    names.sort();
    names.dedup();
    names
}

pub(super) async fn by_name(
    store: &SqlStore,
    team: TeamId,
    name: &str,
) -> StoreResult<StoredPipeline> {
    let row = pipeline::Entity::find()
        .filter(pipeline::Column::TeamId.eq(team.0))
        .filter(pipeline::Column::Name.eq(name))
        .one(store.db())
        .await
        .context(|| format!("failed to load pipeline \"{name}\""))?
        .ok_or_else(|| {
            StoreError::not_found(format!("pipeline \"{name}\" does not exist in team {team}"))
        })?;
    convert::pipeline(row)
}

pub(super) async fn by_id(store: &SqlStore, id: PipelineId) -> StoreResult<StoredPipeline> {
    let row = pipeline::Entity::find_by_id(id.0)
        .one(store.db())
        .await
        .context(|| format!("failed to load pipeline {id}"))?
        .ok_or_else(|| StoreError::not_found(format!("pipeline {id} does not exist")))?;
    convert::pipeline(row)
}

pub(super) async fn list(store: &SqlStore, team: TeamId) -> StoreResult<Vec<StoredPipeline>> {
    pipeline::Entity::find()
        .filter(pipeline::Column::TeamId.eq(team.0))
        .order_by_asc(pipeline::Column::Name)
        .all(store.db())
        .await
        .context(|| format!("failed to list the pipelines of team {team}"))?
        .into_iter()
        .map(convert::pipeline)
        .collect()
}

pub(super) async fn delete(store: &SqlStore, id: PipelineId) -> StoreResult<()> {
    let context = || format!("failed to delete pipeline {id}");
    let txn = store.begin().await?;
    let row = pipeline_row(&txn, id).await?;
    pipeline::Entity::delete_by_id(id.0)
        .exec(&txn)
        .await
        .context(context)?;
    audit_pipeline(
        &txn,
        &row,
        actions::PIPELINE_DELETED,
        "pipeline",
        &row.name,
        Utc::now(),
    )
    .await?;
    txn.commit().await.context(context)
}

/// A pipeline's row, through any connection.
pub(super) async fn pipeline_row<C: ConnectionTrait>(
    db: &C,
    id: PipelineId,
) -> StoreResult<pipeline::Model> {
    pipeline::Entity::find_by_id(id.0)
        .one(db)
        .await
        .context(|| format!("failed to load pipeline {id}"))?
        .ok_or_else(|| StoreError::not_found(format!("pipeline {id} does not exist")))
}

/// Records a change of `pipeline` (or of `target_name` in it) in its team's audit log.
async fn audit_pipeline<C: ConnectionTrait>(
    txn: &C,
    pipeline: &pipeline::Model,
    action: &str,
    target_type: &str,
    target_name: &str,
    at: DateTime<Utc>,
) -> StoreResult<()> {
    audit_log::record(
        txn,
        Change {
            team: TeamId(pipeline.team_id),
            action,
            target_type,
            target_name,
            pipeline: Some(&pipeline.name),
            details: serde_json::json!({}),
            at,
        },
    )
    .await
}

pub(super) async fn set_paused(store: &SqlStore, id: PipelineId, paused: bool) -> StoreResult<()> {
    let txn = store.begin().await?;
    let updated = pipeline::Entity::update_many()
        .col_expr(pipeline::Column::Paused, Expr::value(paused))
        .filter(pipeline::Column::Id.eq(id.0))
        .exec(&txn)
        .await
        .context(|| format!("failed to pause pipeline {id}"))?;
    if updated.rows_affected == 0 {
        return Err(StoreError::not_found(format!(
            "pipeline {id} does not exist"
        )));
    }
    job::Entity::update_many()
        .col_expr(job::Column::Paused, Expr::value(paused))
        .filter(job::Column::PipelineId.eq(id.0))
        .exec(&txn)
        .await
        .context(|| format!("failed to pause the jobs of pipeline {id}"))?;
    let row = pipeline_row(&txn, id).await?;
    let action = if paused {
        actions::PIPELINE_PAUSED
    } else {
        actions::PIPELINE_UNPAUSED
    };
    audit_pipeline(&txn, &row, action, "pipeline", &row.name, Utc::now()).await?;
    txn.commit()
        .await
        .context(|| format!("failed to pause pipeline {id}"))
}

pub(super) async fn set_public(store: &SqlStore, id: PipelineId, public: bool) -> StoreResult<()> {
    let context = || format!("failed to change the visibility of pipeline {id}");
    let txn = store.begin().await?;
    // Only a change is recorded: the update matches a pipeline that is not that way yet.
    let updated = pipeline::Entity::update_many()
        .col_expr(pipeline::Column::Public, Expr::value(public))
        .filter(pipeline::Column::Id.eq(id.0))
        .filter(pipeline::Column::Public.ne(public))
        .exec(&txn)
        .await
        .context(context)?;
    let row = pipeline_row(&txn, id).await?;
    if updated.rows_affected == 0 {
        return Ok(());
    }
    let action = if public {
        actions::PIPELINE_EXPOSED
    } else {
        actions::PIPELINE_HIDDEN
    };
    audit_pipeline(&txn, &row, action, "pipeline", &row.name, Utc::now()).await?;
    txn.commit().await.context(context)
}

pub(super) async fn jobs(store: &SqlStore, pipeline: PipelineId) -> StoreResult<Vec<StoredJob>> {
    job::Entity::find()
        .filter(job::Column::PipelineId.eq(pipeline.0))
        .order_by_asc(job::Column::Position)
        .all(store.db())
        .await
        .context(|| format!("failed to list the jobs of pipeline {pipeline}"))?
        .into_iter()
        .map(convert::job)
        .collect()
}

pub(super) async fn job_by_name(
    store: &SqlStore,
    pipeline: PipelineId,
    name: &str,
) -> StoreResult<StoredJob> {
    let row = job::Entity::find()
        .filter(job::Column::PipelineId.eq(pipeline.0))
        .filter(job::Column::Name.eq(name))
        .one(store.db())
        .await
        .context(|| format!("failed to load job \"{name}\""))?
        .ok_or_else(|| {
            StoreError::not_found(format!(
                "job \"{name}\" does not exist in pipeline {pipeline}"
            ))
        })?;
    convert::job(row)
}

pub(super) async fn job_by_id(store: &SqlStore, id: JobId) -> StoreResult<StoredJob> {
    convert::job(job_row(store.db(), id).await?)
}

/// A job's row, through any connection.
pub(super) async fn job_row<C: ConnectionTrait>(db: &C, id: JobId) -> StoreResult<job::Model> {
    job::Entity::find_by_id(id.0)
        .one(db)
        .await
        .context(|| format!("failed to load job {id}"))?
        .ok_or_else(|| StoreError::not_found(format!("job {id} does not exist")))
}

pub(super) async fn set_job_paused(store: &SqlStore, id: JobId, paused: bool) -> StoreResult<()> {
    let context = || format!("failed to pause job {id}");
    let txn = store.begin().await?;
    let updated = job::Entity::update_many()
        .col_expr(job::Column::Paused, Expr::value(paused))
        .filter(job::Column::Id.eq(id.0))
        .exec(&txn)
        .await
        .context(context)?;
    if updated.rows_affected == 0 {
        return Err(StoreError::not_found(format!("job {id} does not exist")));
    }
    let action = if paused {
        actions::JOB_PAUSED
    } else {
        actions::JOB_UNPAUSED
    };
    audit_job(&txn, id, action, serde_json::json!({}), Utc::now()).await?;
    txn.commit().await.context(context)
}

/// Records a change of job `id` in its team's audit log, when someone acts.
pub(super) async fn audit_job<C: ConnectionTrait>(
    txn: &C,
    id: JobId,
    action: &str,
    details: serde_json::Value,
    at: DateTime<Utc>,
) -> StoreResult<()> {
    if !audit_log::acting() {
        return Ok(());
    }
    let job = job_row(txn, id).await?;
    let pipeline = pipeline_row(txn, PipelineId(job.pipeline_id)).await?;
    audit_log::record(
        txn,
        Change {
            team: TeamId(pipeline.team_id),
            action,
            target_type: "job",
            target_name: &format!("{}/{}", pipeline.name, job.name),
            pipeline: Some(&pipeline.name),
            details,
            at,
        },
    )
    .await
}
