//! The worker registry, upserted from heartbeats.

use chrono::{DateTime, Utc};
use pikoci_core::secrets::Secret;
use pikoci_core::store::{StoreError, StoreResult, Worker, WorkerHeartbeat, WorkerKeyScope};
use sea_orm::sea_query::OnConflict;
use sea_orm::{ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};

use super::SqlStore;
use super::audit_log::{self, Change};
use super::convert::{self, int, ms, to_json};
use crate::entity::{team, worker, worker_key};
use crate::error::{Class, Context, classify, db_error};

pub(super) async fn record_heartbeat(
    store: &SqlStore,
    hb: &WorkerHeartbeat,
) -> StoreResult<Worker> {
    if hb.sealing_key.as_ref().is_some_and(|key| key.len() > 64) {
        return Err(StoreError::invalid_input(format!(
            "worker \"{}\" announced a sealing key of over 64 bytes",
            hb.worker_id
        )));
    }
    if hb.worker_id.is_empty() || hb.worker_id.len() > 255 {
        return Err(StoreError::invalid_input(format!(
            "invalid worker id \"{}\": it must have 1 to 255 bytes",
            hb.worker_id
        )));
    }
    let context = || {
        format!(
            "failed to record a heartbeat of worker \"{}\"",
            hb.worker_id
        )
    };
    let row = worker::ActiveModel {
        worker_id: Set(hb.worker_id.clone()),
        team_id: Set(hb.team_id.map(|t| t.0)),
        tags: Set(to_json(&hb.tags, "worker tags")?),
        slots: Set(int(hb.slots, "slots")?),
        running: Set(int(hb.running, "running builds")?),
        version: Set(hb.version.clone()),
        hostname: Set(hb.hostname.clone()),
        first_seen_at: Set(ms(hb.at)),
        last_heartbeat_at: Set(ms(hb.at)),
        exclusive: Set(hb.exclusive),
        draining: Set(hb.draining),
        sealing_key: Set(hb.sealing_key.clone()),
    };
    worker::Entity::insert(row)
        .on_conflict(
            OnConflict::column(worker::Column::WorkerId)
                .update_columns([
                    worker::Column::TeamId,
                    worker::Column::Tags,
                    worker::Column::Slots,
                    worker::Column::Running,
                    worker::Column::Version,
                    worker::Column::Hostname,
                    worker::Column::LastHeartbeatAt,
                    worker::Column::Exclusive,
                    worker::Column::Draining,
                    worker::Column::SealingKey,
                ])
                .to_owned(),
        )
        .exec_without_returning(store.db())
        .await
        .context(context)?;
    let row = worker::Entity::find_by_id(hb.worker_id.clone())
        .one(store.db())
        .await
        .context(context)?
        .ok_or_else(|| StoreError::internal(context()))?;
    convert::worker(row)
}

pub(super) async fn list(store: &SqlStore) -> StoreResult<Vec<Worker>> {
    worker::Entity::find()
        .order_by_asc(worker::Column::WorkerId)
        .all(store.db())
        .await
        .context(|| "failed to list workers")?
        .into_iter()
        .map(convert::worker)
        .collect()
}

pub(super) async fn one(store: &SqlStore, worker_id: &str) -> StoreResult<Worker> {
    let row = worker::Entity::find_by_id(worker_id.to_owned())
        .one(store.db())
        .await
        .context(|| format!("failed to load worker \"{worker_id}\""))?
        .ok_or_else(|| {
            StoreError::not_found(format!("worker \"{worker_id}\" is not registered"))
        })?;
    convert::worker(row)
}

pub(super) async fn delete(store: &SqlStore, worker_id: &str) -> StoreResult<bool> {
    let deleted = worker::Entity::delete_many()
        .filter(worker::Column::WorkerId.eq(worker_id))
        .exec(store.db())
        .await
        .context(|| format!("failed to forget worker \"{worker_id}\""))?;
    Ok(deleted.rows_affected > 0)
}

pub(super) async fn delete_before(
    store: &SqlStore,
    cutoff: DateTime<Utc>,
) -> StoreResult<Vec<String>> {
    let cutoff = ms(cutoff);
    let context = || "failed to forget silent workers";
    let silent: Vec<String> = worker::Entity::find()
        .select_only()
        .column(worker::Column::WorkerId)
        .filter(worker::Column::LastHeartbeatAt.lt(cutoff))
        .order_by_asc(worker::Column::WorkerId)
        .into_tuple()
        .all(store.db())
        .await
        .context(context)?;
    let mut forgotten = Vec::with_capacity(silent.len());
    for id in silent {
        // Conditional: a worker that spoke up since the query above stays.
        let deleted = worker::Entity::delete_many()
            .filter(worker::Column::WorkerId.eq(id.as_str()))
            .filter(worker::Column::LastHeartbeatAt.lt(cutoff))
            .exec(store.db())
            .await
            .context(context)?;
        if deleted.rows_affected == 1 {
            forgotten.push(id);
        }
    }
    Ok(forgotten)
}

pub(super) async fn key(store: &SqlStore, scope: WorkerKeyScope) -> StoreResult<Option<Secret>> {
    Ok(worker_key::Entity::find()
        .filter(worker_key::Column::Scope.eq(scope.to_string()))
        .one(store.db())
        .await
        .context(|| format!("failed to load the worker key of scope {scope}"))?
        .map(|row| Secret::new(row.value)))
}

pub(super) async fn create_key(
    store: &SqlStore,
    scope: WorkerKeyScope,
    value: &Secret,
    at: DateTime<Utc>,
) -> StoreResult<Secret> {
    let row = worker_key_row(scope, value, at);
    worker_key::Entity::insert(row)
        .on_conflict(
            OnConflict::column(worker_key::Column::Scope)
                .do_nothing_on([worker_key::Column::Id])
                .to_owned(),
        )
        .exec_without_returning(store.db())
        .await
        .context(|| format!("failed to store the worker key of scope {scope}"))?;
    key(store, scope).await?.ok_or_else(|| {
        StoreError::not_found(format!(
            "the worker key of scope {scope} is gone (its team was deleted)"
        ))
    })
}

/// Replaces the key of `scope`; `regenerated`: a team's token made anew by someone, recorded
/// in the team's audit log in the same transaction.
pub(super) async fn replace_key(
    store: &SqlStore,
    scope: WorkerKeyScope,
    value: &Secret,
    at: DateTime<Utc>,
    regenerated: bool,
) -> StoreResult<()> {
    let row = worker_key_row(scope, value, at);
    let txn = store.begin().await?;
    worker_key::Entity::insert(row)
        .on_conflict(
            OnConflict::column(worker_key::Column::Scope)
                .update_columns([worker_key::Column::Value, worker_key::Column::UpdatedAt])
                .to_owned(),
        )
        .exec_without_returning(&txn)
        .await
        .map_err(|err| match classify(&err) {
            Class::MissingParent => StoreError::not_found(format!(
                "cannot store the worker key of scope {scope}: its team does not exist"
            )),
            _ => db_error(
                format!("failed to store the worker key of scope {scope}"),
                err,
            ),
        })?;
    if regenerated && let WorkerKeyScope::Team(team) = scope {
        let name: Option<String> = team::Entity::find_by_id(team.0)
            .select_only()
            .column(team::Column::Name)
            .into_tuple()
            .one(&txn)
            .await
            .context(|| format!("failed to load team {team}"))?;
        audit_log::record(
            &txn,
            Change {
                team,
                action: pikoci_core::store::audit::actions::WORKER_TOKEN_REGENERATED,
                target_type: "worker_token",
                target_name: name.as_deref().unwrap_or_default(),
                pipeline: None,
                details: serde_json::json!({}),
                at,
            },
        )
        .await?;
    }
    txn.commit()
        .await
        .context(|| format!("failed to store the worker key of scope {scope}"))
}

fn worker_key_row(
    scope: WorkerKeyScope,
    value: &Secret,
    at: DateTime<Utc>,
) -> worker_key::ActiveModel {
    worker_key::ActiveModel {
        scope: Set(scope.to_string()),
        team_id: Set(match scope {
            WorkerKeyScope::Team(team) => Some(team.0),
            WorkerKeyScope::Server | WorkerKeyScope::Global => None,
        }),
        value: Set(value.expose().to_owned()),
        created_at: Set(ms(at)),
        updated_at: Set(ms(at)),
        ..Default::default()
    }
}
