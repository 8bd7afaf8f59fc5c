//! The audit log (`audit_log`): entries written by the changes they record, in their
//! transaction, when someone acts ([`pikoci_core::store::audit::acting_as`]); read a page at a
//! time by id.

use chrono::{DateTime, Utc};
use pikoci_core::store::audit::{self, AuditEntry, AuditQuery};
use pikoci_core::store::{AuditId, StoreResult, TeamId};
use sea_orm::ActiveValue::Set;
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QueryOrder, QuerySelect};

use super::SqlStore;
use super::convert::{ms, time};
use crate::entity::audit_entry;
use crate::error::{Context, corrupt};

/// The most entries one read returns: the API's largest page and the one more it reads to tell
/// whether there are more.
const MAX_READ: u32 = 501;

/// What a change is, for its entry.
pub(super) struct Change<'a> {
    pub(super) team: TeamId,
    pub(super) action: &'a str,
    pub(super) target_type: &'a str,
    pub(super) target_name: &'a str,
    pub(super) pipeline: Option<&'a str>,
    pub(super) details: serde_json::Value,
    pub(super) at: DateTime<Utc>,
}

/// Whether someone acts: changes are recorded.
pub(super) fn acting() -> bool {
    audit::actor().is_some()
}

/// Records `change` in `txn` (the change's own transaction) when someone acts; nothing
/// otherwise.
pub(super) async fn record<C: ConnectionTrait>(txn: &C, change: Change<'_>) -> StoreResult<()> {
    let Some(actor) = audit::actor() else {
        return Ok(());
    };
    let details = serde_json::to_string(&change.details)
        .map_err(|err| corrupt("failed to write an audit entry's details", err))?;
    audit_entry::Entity::insert(audit_entry::ActiveModel {
        team_id: Set(change.team.0),
        actor: Set(actor),
        action: Set(change.action.to_owned()),
        target_type: Set(change.target_type.to_owned()),
        target_name: Set(change.target_name.to_owned()),
        pipeline: Set(change.pipeline.map(str::to_owned)),
        details: Set(details),
        created_at: Set(ms(change.at)),
        ..Default::default()
    })
    .exec_without_returning(txn)
    .await
    .context(|| format!("failed to record {} in the audit log", change.action))?;
    Ok(())
}

pub(super) async fn entries(
    store: &SqlStore,
    team: TeamId,
    query: &AuditQuery,
) -> StoreResult<Vec<AuditEntry>> {
    use audit_entry::Column;
    let limit = match query.limit {
        0 => 100,
        n => n.min(MAX_READ),
    };
    let mut select = audit_entry::Entity::find().filter(Column::TeamId.eq(team.0));
    if let Some(user) = &query.user {
        select = select.filter(Column::Actor.eq(user.as_str()));
    }
    if let Some(user) = &query.exclude_user {
        select = select.filter(Column::Actor.ne(user.as_str()));
    }
    if let Some(action) = &query.action {
        select = select.filter(Column::Action.eq(action.as_str()));
    }
    if let Some(action) = &query.exclude_action {
        select = select.filter(Column::Action.ne(action.as_str()));
    }
    if let Some(pipeline) = &query.pipeline {
        select = select.filter(Column::Pipeline.eq(pipeline.as_str()));
    }
    if let Some(since) = query.since {
        select = select.filter(Column::CreatedAt.gte(ms(since)));
    }
    if let Some(until) = query.until {
        select = select.filter(Column::CreatedAt.lt(ms(until)));
    }
    if let Some(before) = query.before {
        select = select.filter(Column::Id.lt(before.0));
    }
    let rows = match query.after {
        // The oldest newer ones, then newest first like every page.
        Some(after) => {
            let mut rows = select
                .filter(Column::Id.gt(after.0))
                .order_by_asc(Column::Id)
                .limit(u64::from(limit))
                .all(store.db())
                .await
                .context(|| format!("failed to read the audit log of team {team}"))?;
            rows.reverse();
            rows
        }
        None => select
            .order_by_desc(Column::Id)
            .limit(u64::from(limit))
            .all(store.db())
            .await
            .context(|| format!("failed to read the audit log of team {team}"))?,
    };
    rows.into_iter().map(to_entry).collect()
}

fn to_entry(row: audit_entry::Model) -> StoreResult<AuditEntry> {
    Ok(AuditEntry {
        id: AuditId(row.id),
        details: serde_json::from_str(&row.details).map_err(|err| {
            corrupt(
                format!("failed to read the details of audit entry {}", row.id),
                err,
            )
        })?,
        actor: row.actor,
        action: row.action,
        target_type: row.target_type,
        target_name: row.target_name,
        pipeline: row.pipeline,
        created_at: time(row.created_at),
    })
}
