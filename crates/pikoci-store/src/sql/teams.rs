//! Teams.

use chrono::{DateTime, Utc};
use pikoci_core::name::is_canonical;
use pikoci_core::store::{StoreError, StoreResult, Team, TeamId};
use sea_orm::{
    ActiveModelTrait, ActiveValue::Set, ColumnTrait, EntityTrait, QueryFilter, QueryOrder,
};

use super::SqlStore;
use super::convert::{self, ms};
use crate::entity::team;
use crate::error::{Class, Context, classify, db_error};

pub(super) async fn create(store: &SqlStore, name: &str, at: DateTime<Utc>) -> StoreResult<Team> {
    if !is_canonical(name) {
        return Err(StoreError::invalid_input(format!(
            "invalid team name \"{name}\": use a-z, 0-9, '-' and '_' (at most 255 bytes)"
        )));
    }
    let row = team::ActiveModel {
        name: Set(name.to_owned()),
        created_at: Set(ms(at)),
        ..Default::default()
    };
    match row.insert(store.db()).await {
        Ok(row) => Ok(convert::team(row)),
        Err(err) if classify(&err) == Class::Duplicate => Err(StoreError::conflict(format!(
            "team \"{name}\" already exists"
        ))),
        Err(err) => Err(db_error(format!("failed to create team \"{name}\""), err)),
    }
}

pub(super) async fn by_name(store: &SqlStore, name: &str) -> StoreResult<Team> {
    team::Entity::find()
        .filter(team::Column::Name.eq(name))
        .one(store.db())
        .await
        .context(|| format!("failed to load team \"{name}\""))?
        .map(convert::team)
        .ok_or_else(|| StoreError::not_found(format!("team \"{name}\" does not exist")))
}

pub(super) async fn by_id(store: &SqlStore, id: TeamId) -> StoreResult<Team> {
    team::Entity::find_by_id(id.0)
        .one(store.db())
        .await
        .context(|| format!("failed to load team {id}"))?
        .map(convert::team)
        .ok_or_else(|| StoreError::not_found(format!("team {id} does not exist")))
}

pub(super) async fn list(store: &SqlStore) -> StoreResult<Vec<Team>> {
    Ok(team::Entity::find()
        .order_by_asc(team::Column::Name)
        .all(store.db())
        .await
        .context(|| "failed to list teams")?
        .into_iter()
        .map(convert::team)
        .collect())
}

pub(super) async fn delete(store: &SqlStore, id: TeamId) -> StoreResult<()> {
    let deleted = team::Entity::delete_by_id(id.0)
        .exec(store.db())
        .await
        .context(|| format!("failed to delete team {id}"))?;
    if deleted.rows_affected == 0 {
        return Err(StoreError::not_found(format!("team {id} does not exist")));
    }
    Ok(())
}
