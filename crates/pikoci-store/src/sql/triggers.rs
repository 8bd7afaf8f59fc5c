//! Trigger events: team-scoped streams, one per resource canonical name.

use chrono::{DateTime, Utc};
use pikoci_core::store::{StoreError, StoreResult, TeamId, TriggerEvent, TriggerEventId};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect,
};

use super::convert::{canonical_json, digest, from_json, ms, time, to_json};
use super::{SqlStore, limit, retrying};
use crate::entity::trigger_event;
use crate::error::Context;

fn event(row: trigger_event::Model) -> StoreResult<TriggerEvent> {
    Ok(TriggerEvent {
        id: TriggerEventId(row.id),
        team_id: TeamId(row.team_id),
        version: from_json(&row.version, "trigger event version")?,
        resource: row.resource,
        created_at: time(row.created_at),
    })
}

fn check_event(resource: &str, version: &serde_json::Value) -> StoreResult<()> {
    if resource.is_empty() || resource.len() > 511 {
        return Err(StoreError::invalid_input(format!(
            "invalid trigger stream name \"{resource}\": it must have 1 to 511 bytes"
        )));
    }
    if !version.is_object() {
        return Err(StoreError::invalid_input(format!(
            "the version of a trigger event must be a JSON object, not {version}"
        )));
    }
    Ok(())
}

async fn insert(
    store: &SqlStore,
    team: TeamId,
    resource: &str,
    version: &serde_json::Value,
    dedupe_key: Option<String>,
    at: DateTime<Utc>,
) -> StoreResult<TriggerEvent> {
    let row = trigger_event::ActiveModel {
        team_id: Set(team.0),
        resource: Set(resource.to_owned()),
        version: Set(to_json(&canonical_json(version), "trigger event version")?),
        created_at: Set(ms(at)),
        dedupe_key: Set(dedupe_key),
        ..Default::default()
    }
    .insert(store.db())
    .await
    .context(|| {
        format!("failed to add an event to trigger stream \"{resource}\" of team {team}")
    })?;
    event(row)
}

pub(super) async fn create(
    store: &SqlStore,
    team: TeamId,
    resource: &str,
    version: &serde_json::Value,
    at: DateTime<Utc>,
) -> StoreResult<TriggerEvent> {
    check_event(resource, version)?;
    insert(store, team, resource, version, None, at).await
}

pub(super) async fn create_once(
    store: &SqlStore,
    team: TeamId,
    resource: &str,
    version: &serde_json::Value,
    key: &str,
    at: DateTime<Utc>,
) -> StoreResult<TriggerEvent> {
    check_event(resource, version)?;
    // The key is hashed so that any caller's key fits the indexed column.
    let dedupe_key = digest(key);
    // A unique-key violation means another server added the event between our read and our
    // insert: the next round finds it.
    retrying(true, || async {
        let existing = trigger_event::Entity::find()
            .filter(trigger_event::Column::TeamId.eq(team.0))
            .filter(trigger_event::Column::DedupeKey.eq(dedupe_key.as_str()))
            .one(store.db())
            .await
            .context(|| format!("failed to read trigger stream \"{resource}\" of team {team}"))?;
        match existing {
            Some(row) => event(row),
            None => insert(store, team, resource, version, Some(dedupe_key.clone()), at).await,
        }
    })
    .await
}

pub(super) async fn list(
    store: &SqlStore,
    team: TeamId,
    resource: &str,
    after: Option<TriggerEventId>,
    max: u32,
) -> StoreResult<Vec<TriggerEvent>> {
    let mut query = trigger_event::Entity::find()
        .filter(trigger_event::Column::TeamId.eq(team.0))
        .filter(trigger_event::Column::Resource.eq(resource));
    if let Some(after) = after {
        query = query.filter(trigger_event::Column::Id.gt(after.0));
    }
    query
        .order_by_asc(trigger_event::Column::Id)
        .limit(limit(max))
        .all(store.db())
        .await
        .context(|| format!("failed to read trigger stream \"{resource}\" of team {team}"))?
        .into_iter()
        .map(event)
        .collect()
}
