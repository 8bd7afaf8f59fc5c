//! Resources: the diff of a pipeline update, webhook tokens, pins, and check claims and
//! leases.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use pikoci_core::model::{Pipeline, ResourceRef};
use pikoci_core::schedule::CheckInterval;
use pikoci_core::store::audit::{self, actions};
use pikoci_core::store::{
    ChangeSet, CheckClaim, CheckRecord, ClaimedCheck, MAX_PIN_COMMENT, PipelineId, ResourceId,
    RunningCheck, StoreError, StoreResult, StoredResource, TeamId, TeamScope, VersionId,
};
use sea_orm::sea_query::{Expr, ExprTrait, Query};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, Condition, ConnectionTrait,
    DatabaseTransaction, EntityTrait, IntoActiveModel, QueryFilter, QueryOrder, QuerySelect,
};

use super::SqlStore;
use super::convert::{self, from_json, ms, to_json, to_model_json, uint};
use super::pipelines::Failure;
use crate::entity::{resource, resource_version};
use crate::error::Context;

/// How many due checks a claim looks at, at least (twice the number asked for when that is
/// more).
const CHECK_CANDIDATES: u64 = 50;

/// A new webhook token: 192 random bits from a CSPRNG, as hex.
pub(super) fn new_webhook_token() -> String {
    let mut bytes = [0u8; 24];
    rand::fill(&mut bytes);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Replaces a pipeline's resources with the model's, keeping the state of those whose type
/// and name did not change.
pub(super) async fn set_all(
    txn: &DatabaseTransaction,
    pipeline_id: i64,
    model: &Pipeline,
    at: DateTime<Utc>,
) -> Result<ChangeSet, Failure> {
    let mut old: HashMap<(String, String), resource::Model> = resource::Entity::find()
        .filter(resource::Column::PipelineId.eq(pipeline_id))
        .all(txn)
        .await?
        .into_iter()
        .map(|row| ((row.type_name.clone(), row.name.clone()), row))
        .collect();
    let mut changes = ChangeSet::default();
    for (position, res) in model.resources.iter().enumerate() {
        let position = i32::try_from(position).unwrap_or(i32::MAX);
        let interval = res.check_interval.spec().to_owned();
        let definition = to_model_json(res, "resource")?;
        let tags = to_json(&res.tags, "resource tags")?;
        match old.remove(&(res.type_name.clone(), res.name.clone())) {
            Some(row) => {
                let interval_changed = row.check_interval != interval;
                let mut row = row.into_active_model();
                row.position = Set(position);
                row.model = Set(definition);
                row.tags = Set(tags);
                if interval_changed {
                    row.check_interval = Set(interval);
                    row.next_check_at = Set(Some(ms(at)));
                }
                row.update(txn).await?;
                changes.updated.push(res.canonical());
            }
            None => {
                resource::ActiveModel {
                    pipeline_id: Set(pipeline_id),
                    type_name: Set(res.type_name.clone()),
                    name: Set(res.name.clone()),
                    position: Set(position),
                    model: Set(definition),
                    check_interval: Set(interval),
                    tags: Set(tags),
                    webhook_token: Set(new_webhook_token()),
                    next_check_at: Set(Some(ms(at))),
                    pinned_version_id: Set(None),
                    pin_comment: Set(None),
                    pinned_by: Set(None),
                    pinned_at: Set(None),
                    last_check_finished_at: Set(None),
                    last_check_error: Set(None),
                    last_check_log: Set(None),
                    check_attempt: Set(0),
                    check_worker_id: Set(None),
                    check_lease_expires_at: Set(None),
                    created_at: Set(ms(at)),
                    ..Default::default()
                }
                .insert(txn)
                .await?;
                changes.added.push(res.canonical());
            }
        }
    }
    if !old.is_empty() {
        let ids: Vec<i64> = old.values().map(|row| row.id).collect();
        resource::Entity::delete_many()
            .filter(resource::Column::Id.is_in(ids))
            .exec(txn)
            .await?;
        changes.removed = old
            .into_keys()
            .map(|(type_name, name)| format!("{type_name}.{name}"))
            .collect();
        changes.removed.sort();
    }
    Ok(changes)
}

pub(super) async fn list(
    store: &SqlStore,
    pipeline: PipelineId,
) -> StoreResult<Vec<StoredResource>> {
    resource::Entity::find()
        .filter(resource::Column::PipelineId.eq(pipeline.0))
        .order_by_asc(resource::Column::Position)
        .all(store.db())
        .await
        .context(|| format!("failed to list the resources of pipeline {pipeline}"))?
        .into_iter()
        .map(convert::resource)
        .collect()
}

pub(super) async fn by_name(
    store: &SqlStore,
    pipeline: PipelineId,
    reference: &ResourceRef,
) -> StoreResult<StoredResource> {
    let row = resource::Entity::find()
        .filter(resource::Column::PipelineId.eq(pipeline.0))
        .filter(resource::Column::TypeName.eq(reference.type_name.as_str()))
        .filter(resource::Column::Name.eq(reference.name.as_str()))
        .one(store.db())
        .await
        .context(|| format!("failed to load resource {reference}"))?
        .ok_or_else(|| {
            StoreError::not_found(format!(
                "resource {reference} does not exist in pipeline {pipeline}"
            ))
        })?;
    convert::resource(row)
}

pub(super) async fn by_id(store: &SqlStore, id: ResourceId) -> StoreResult<StoredResource> {
    let row = resource::Entity::find_by_id(id.0)
        .one(store.db())
        .await
        .context(|| format!("failed to load resource {id}"))?
        .ok_or_else(|| StoreError::not_found(format!("resource {id} does not exist")))?;
    convert::resource(row)
}

pub(super) async fn by_webhook_token(store: &SqlStore, token: &str) -> StoreResult<StoredResource> {
    let row = resource::Entity::find()
        .filter(resource::Column::WebhookToken.eq(token))
        .one(store.db())
        .await
        .context(|| "failed to look up a webhook token")?
        .ok_or_else(|| StoreError::not_found("no resource has this webhook token"))?;
    convert::resource(row)
}

/// Runs a one-row update of a resource; `NotFound` when the resource does not exist.
async fn update_one<C: ConnectionTrait>(
    db: &C,
    id: ResourceId,
    what: &str,
    update: sea_orm::UpdateMany<resource::Entity>,
) -> StoreResult<()> {
    let updated = update
        .filter(resource::Column::Id.eq(id.0))
        .exec(db)
        .await
        .context(|| format!("failed to {what} of resource {id}"))?;
    if updated.rows_affected == 0 {
        return Err(StoreError::not_found(format!(
            "resource {id} does not exist"
        )));
    }
    Ok(())
}

pub(super) async fn regenerate_webhook_token(
    store: &SqlStore,
    id: ResourceId,
) -> StoreResult<String> {
    let token = new_webhook_token();
    let update = resource::Entity::update_many()
        .col_expr(resource::Column::WebhookToken, Expr::value(token.clone()));
    update_one(store.db(), id, "replace the webhook token", update).await?;
    Ok(token)
}

pub(super) async fn request_check(
    store: &SqlStore,
    id: ResourceId,
    at: DateTime<Utc>,
) -> StoreResult<()> {
    let update = resource::Entity::update_many()
        .col_expr(resource::Column::NextCheckAt, Expr::value(ms(at)));
    if !super::audit_log::acting() {
        return update_one(store.db(), id, "schedule a check", update).await;
    }
    let txn = store.begin().await?;
    update_one(&txn, id, "schedule a check", update).await?;
    audit_resource(
        &txn,
        id,
        actions::RESOURCE_CHECK_TRIGGERED,
        serde_json::json!({}),
        at,
    )
    .await?;
    txn.commit()
        .await
        .context(|| format!("failed to schedule a check of resource {id}"))
}

/// Records what a user did with resource `id` in its team's audit log, when someone acts.
async fn audit_resource<C: ConnectionTrait>(
    txn: &C,
    id: ResourceId,
    action: &str,
    details: serde_json::Value,
    at: DateTime<Utc>,
) -> StoreResult<()> {
    if !super::audit_log::acting() {
        return Ok(());
    }
    let row = resource::Entity::find_by_id(id.0)
        .one(txn)
        .await
        .context(|| format!("failed to load resource {id}"))?
        .ok_or_else(|| StoreError::not_found(format!("resource {id} does not exist")))?;
    let pipeline = super::pipelines::pipeline_row(txn, PipelineId(row.pipeline_id)).await?;
    super::audit_log::record(
        txn,
        super::audit_log::Change {
            team: TeamId(pipeline.team_id),
            action,
            target_type: "resource",
            target_name: &format!("{}/{}.{}", pipeline.name, row.type_name, row.name),
            pipeline: Some(&pipeline.name),
            details,
            at,
        },
    )
    .await
}

pub(super) async fn pin_version(
    store: &SqlStore,
    id: ResourceId,
    version: Option<VersionId>,
    comment: &str,
) -> StoreResult<()> {
    let length = comment.chars().count();
    if length > MAX_PIN_COMMENT {
        return Err(StoreError::invalid_input(format!(
            "the comment has {length} characters, more than the {MAX_PIN_COMMENT} a pin keeps: \
             shorten it"
        )));
    }
    if let Some(version) = version {
        let found = resource_version::Entity::find_by_id(version.0)
            .one(store.db())
            .await
            .context(|| format!("failed to load version {version}"))?;
        match found {
            Some(row) if row.resource_id == id.0 => {}
            Some(_) => {
                return Err(StoreError::invalid_input(format!(
                    "version {version} is not a version of resource {id}"
                )));
            }
            None => {
                return Err(StoreError::not_found(format!(
                    "version {version} does not exist"
                )));
            }
        }
    }
    let at = Utc::now();
    let pinned = version.is_some();
    let update = resource::Entity::update_many()
        .col_expr(
            resource::Column::PinnedVersionId,
            Expr::value(version.map(|v| v.0)),
        )
        .col_expr(
            resource::Column::PinComment,
            Expr::value(pinned.then(|| comment.to_owned())),
        )
        .col_expr(
            resource::Column::PinnedBy,
            Expr::value(pinned.then(audit::actor).flatten()),
        )
        .col_expr(
            resource::Column::PinnedAt,
            Expr::value(pinned.then(|| ms(at))),
        );
    let txn = store.begin().await?;
    update_one(&txn, id, "pin a version", update).await?;
    let (action, details) = match version {
        Some(version) => (
            actions::RESOURCE_PINNED,
            serde_json::json!({ "version": version.0, "comment": comment }),
        ),
        None => (
            actions::RESOURCE_UNPINNED,
            serde_json::json!({ "comment": comment }),
        ),
    };
    audit_resource(&txn, id, action, details, at).await?;
    txn.commit()
        .await
        .context(|| format!("failed to pin a version of resource {id}"))
}

/// Due: no check in flight and `next_check_at <= now`, or (`lapsed`) a check whose lease
/// lapsed.
fn due(now: i64, lapsed_before: Option<i64>) -> Condition {
    let idle = Condition::all()
        .add(resource::Column::CheckLeaseExpiresAt.is_null())
        .add(resource::Column::NextCheckAt.lte(now));
    match lapsed_before {
        Some(lapsed_before) => Condition::any()
            .add(idle)
            .add(resource::Column::CheckLeaseExpiresAt.lt(lapsed_before)),
        None => idle,
    }
}

/// Restricts a query on a table with a `pipeline_id` column to the pipelines of some teams.
pub(super) fn team_condition<C: ColumnTrait>(pipeline_column: C, teams: &TeamScope) -> Condition {
    let pipelines_of = |negate: bool, teams: Vec<i64>| {
        let mut query = Query::select();
        query
            .column(crate::entity::pipeline::Column::Id)
            .from(crate::entity::pipeline::Entity);
        if negate {
            query.and_where(crate::entity::pipeline::Column::TeamId.is_not_in(teams));
        } else {
            query.and_where(crate::entity::pipeline::Column::TeamId.is_in(teams));
        }
        pipeline_column.in_subquery(query)
    };
    match teams {
        TeamScope::All => Condition::all(),
        TeamScope::Only(team) => Condition::all().add(pipelines_of(false, vec![team.0])),
        TeamScope::AllExcept(teams) if teams.is_empty() => Condition::all(),
        TeamScope::AllExcept(teams) => {
            Condition::all().add(pipelines_of(true, teams.iter().map(|t| t.0).collect()))
        }
    }
}

/// How a resource without tags stores them.
const NO_TAGS: &str = "[]";

pub(super) async fn claim_due_checks(
    store: &SqlStore,
    claim: &CheckClaim,
    limit: usize,
) -> StoreResult<Vec<ClaimedCheck>> {
    if limit == 0 {
        return Ok(Vec::new());
    }
    let now = ms(claim.now);
    let due = || due(now, claim.lapsed_before.map(ms));
    // Resources this worker can never check must not fill the window of candidates: untagged
    // ones for an exclusive worker, tagged ones for a worker without tags. (Other tag mismatches
    // are left out below.)
    let mut query = resource::Entity::find()
        .filter(due())
        .filter(team_condition(resource::Column::PipelineId, &claim.teams));
    if claim.exclusive {
        query = query.filter(resource::Column::Tags.ne(NO_TAGS));
    }
    if claim.worker_tags.is_empty() {
        query = query.filter(resource::Column::Tags.eq(NO_TAGS));
    }
    let asked = u64::try_from(limit).unwrap_or(u64::MAX);
    let window = Ord::max(CHECK_CANDIDATES, asked.saturating_mul(2));
    let candidates = query
        .order_by_asc(resource::Column::NextCheckAt)
        .order_by_asc(resource::Column::Id)
        .limit(window)
        .all(store.db())
        .await
        .context(|| "failed to look for due checks")?;
    // Each claim is a conditional update of its own row, so that another server claiming at
    // the same time takes a check or leaves it, never both.
    let mut claimed_ids: Vec<(i64, u32)> = Vec::new();
    for row in candidates {
        if claimed_ids.len() == limit {
            break;
        }
        let tags: Vec<String> = from_json(&row.tags, "resource tags")?;
        if !tags.iter().all(|tag| claim.worker_tags.contains(tag))
            || (claim.exclusive && tags.is_empty())
        {
            continue;
        }
        let next = next_check(&row, claim.now);
        let claimed = resource::Entity::update_many()
            .col_expr(
                resource::Column::CheckAttempt,
                Expr::col(resource::Column::CheckAttempt).add(1),
            )
            .col_expr(
                resource::Column::CheckWorkerId,
                Expr::value(claim.worker_id.clone()),
            )
            .col_expr(
                resource::Column::CheckLeaseExpiresAt,
                Expr::value(ms(claim.lease_until)),
            )
            .col_expr(resource::Column::NextCheckAt, Expr::value(ms(next)))
            .filter(resource::Column::Id.eq(row.id))
            .filter(resource::Column::CheckAttempt.eq(row.check_attempt))
            .filter(due())
            .exec(store.db())
            .await
            .context(|| format!("failed to claim the check of resource {}", row.id))?;
        if claimed.rows_affected == 1 {
            claimed_ids.push((row.id, uint(row.check_attempt) + 1));
        }
    }
    if claimed_ids.is_empty() {
        return Ok(Vec::new());
    }
    // The claimed rows as they are now, in one read, returned in the order claimed.
    let mut rows: HashMap<i64, resource::Model> = resource::Entity::find()
        .filter(resource::Column::Id.is_in(claimed_ids.iter().map(|(id, _)| *id)))
        .all(store.db())
        .await
        .context(|| "failed to load the claimed checks")?
        .into_iter()
        .map(|row| (row.id, row))
        .collect();
    // A resource deleted since its claim (its pipeline was set without it) is left out.
    claimed_ids
        .into_iter()
        .filter_map(|(id, attempt)| {
            let row = rows.remove(&id)?;
            Some(convert::resource(row).map(|resource| ClaimedCheck { resource, attempt }))
        })
        .collect()
}

/// When a check claimed at `now` is due next: one interval after the time it was due, so that
/// the time a check waited for its claim does not push every later check back (a resource
/// checked `@every 10s` is checked six times a minute, not a little less); one interval after
/// `now` when that is already past (the check was late by a whole interval, or is claimed
/// again after its lease lapsed).
fn next_check(row: &resource::Model, now: DateTime<Utc>) -> DateTime<Utc> {
    let Ok(interval) = CheckInterval::parse(&row.check_interval) else {
        return now + chrono::Duration::minutes(1);
    };
    let due = row
        .next_check_at
        .map(convert::time)
        .filter(|due| *due <= now);
    match due.map(|due| interval.next_after(due)) {
        Some(next) if next > now => next,
        _ => interval.next_after(now),
    }
}

pub(super) async fn renew_check_leases(
    store: &SqlStore,
    worker_id: &str,
    running: &[RunningCheck],
    until: DateTime<Utc>,
) -> StoreResult<Vec<RunningCheck>> {
    let mut renewed = Vec::new();
    for check in running {
        let attempt = convert::int(check.attempt, "check attempt")?;
        let updated = resource::Entity::update_many()
            .col_expr(
                resource::Column::CheckLeaseExpiresAt,
                Expr::value(ms(until)),
            )
            .filter(resource::Column::Id.eq(check.resource_id.0))
            .filter(resource::Column::CheckAttempt.eq(attempt))
            .filter(resource::Column::CheckWorkerId.eq(worker_id))
            .filter(resource::Column::CheckLeaseExpiresAt.is_not_null())
            .exec(store.db())
            .await
            .context(|| {
                format!(
                    "failed to renew the lease of the check of resource {}",
                    check.resource_id
                )
            })?;
        if updated.rows_affected == 1 {
            renewed.push(*check);
        }
    }
    Ok(renewed)
}

pub(super) async fn finish_check(
    store: &SqlStore,
    id: ResourceId,
    attempt: u32,
    outcome: &CheckRecord,
) -> StoreResult<()> {
    let attempt_i32 = convert::int(attempt, "check attempt")?;
    let finished = resource::Entity::update_many()
        .col_expr(
            resource::Column::LastCheckFinishedAt,
            Expr::value(ms(outcome.finished_at)),
        )
        .col_expr(
            resource::Column::LastCheckError,
            Expr::value(outcome.error.clone()),
        )
        .col_expr(
            resource::Column::LastCheckLog,
            Expr::value(outcome.log.clone()),
        )
        .col_expr(
            resource::Column::CheckWorkerId,
            Expr::value(Option::<String>::None),
        )
        .col_expr(
            resource::Column::CheckLeaseExpiresAt,
            Expr::value(Option::<i64>::None),
        )
        .filter(resource::Column::Id.eq(id.0))
        .filter(resource::Column::CheckAttempt.eq(attempt_i32))
        .filter(resource::Column::CheckLeaseExpiresAt.is_not_null())
        .exec(store.db())
        .await
        .context(|| format!("failed to record the check of resource {id}"))?;
    if finished.rows_affected == 1 {
        return Ok(());
    }
    by_id(store, id).await?;
    Err(StoreError::conflict(format!(
        "the check of resource {id} at attempt {attempt} is no longer held (it finished or was \
         claimed again after its lease lapsed)"
    )))
}
