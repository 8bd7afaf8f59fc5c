//! Trigger events: team-scoped streams, one per resource canonical name.

use chrono::{DateTime, Utc};
use pikoci_core::store::{StoreError, StoreResult, TeamId, TriggerEvent, TriggerEventId};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect,
};

use super::convert::{canonical_json, from_json, ms, time, to_json};
use super::{SqlStore, limit};
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

pub(super) async fn create(
    store: &SqlStore,
    team: TeamId,
    resource: &str,
    version: &serde_json::Value,
    at: DateTime<Utc>,
) -> StoreResult<TriggerEvent> {
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
    let row = trigger_event::ActiveModel {
        team_id: Set(team.0),
        resource: Set(resource.to_owned()),
        version: Set(to_json(&canonical_json(version), "trigger event version")?),
        created_at: Set(ms(at)),
        ..Default::default()
    }
    .insert(store.db())
    .await
    .context(|| {
        format!("failed to add an event to trigger stream \"{resource}\" of team {team}")
    })?;
    event(row)
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
