//! The entries of the built-in secret store: `SecretTable` on `team_secrets` and
//! `pipeline_secrets`. The two tables have the same columns apart from their owner, so one set
//! of statements serves both. Values arrive already encrypted (`secret`) or as they are
//! (`plain`); this module never sees a key.

use chrono::Utc;
use pikoci_core::name::is_canonical;
use pikoci_core::secrets::{Scope, SecretError, SecretTable, StoredEntry, StoredValue};
use pikoci_core::store::audit::actions::{PIPELINE_RENAMED, SECRET_CREATED, SECRET_DELETED};
use pikoci_core::store::{
    PipelineId, ResealedSecret, StoreError, StoreResult, StoredPipeline, TeamId,
};
use sea_orm::ActiveValue::Set;
use sea_orm::sea_query::{Expr, ExprTrait, OnConflict, Query};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, EntityTrait, IntoActiveModel, QueryFilter,
    QuerySelect,
};

use super::SqlStore;
use super::audit_log::{self, Change};
use super::convert::{self, ms, time};
use crate::entity::{pipeline, team};
use crate::error::{Class, Context, classify, db_error};

const SECRET: &str = "secret";
const PLAIN: &str = "plain";

/// The table and row that own the entries of a scope.
struct Owner {
    table: &'static str,
    column: &'static str,
    id: i64,
    /// The team, whose audit log records changes.
    team_id: i64,
}

/// The owner of `scope`'s entries, `None` when its team or pipeline does not exist. With
/// `lock`, a pipeline's row is locked until the end of the transaction `db` is in: a write
/// then cannot interleave with a rename (see [`rename_pipeline`]).
async fn owner<C: ConnectionTrait>(
    db: &C,
    scope: &Scope,
    lock: bool,
) -> StoreResult<Option<Owner>> {
    let team_name = match scope {
        Scope::Team { team } | Scope::Pipeline { team, .. } => team,
    };
    let context = || {
        format!(
            "failed to look up the owner of secrets of {}",
            describe(scope)
        )
    };
    let team_id: Option<i64> = team::Entity::find()
        .select_only()
        .column(team::Column::Id)
        .filter(team::Column::Name.eq(team_name.as_str()))
        .into_tuple()
        .one(db)
        .await
        .context(context)?;
    let Some(team_id) = team_id else {
        return Ok(None);
    };
    let Scope::Pipeline { pipeline: name, .. } = scope else {
        return Ok(Some(Owner {
            table: "team_secrets",
            column: "team_id",
            id: team_id,
            team_id,
        }));
    };
    let mut query = pipeline::Entity::find()
        .select_only()
        .column(pipeline::Column::Id)
        .filter(pipeline::Column::TeamId.eq(team_id))
        .filter(pipeline::Column::Name.eq(name.as_str()));
    if lock {
        query = query.lock_exclusive();
    }
    let pipeline_id: Option<i64> = query.into_tuple().one(db).await.context(context)?;
    Ok(pipeline_id.map(|id| Owner {
        table: "pipeline_secrets",
        column: "pipeline_id",
        id,
        team_id,
    }))
}

fn describe(scope: &Scope) -> String {
    match scope {
        Scope::Team { team } => format!("team \"{team}\""),
        Scope::Pipeline { team, pipeline } => format!("pipeline \"{pipeline}\" of team \"{team}\""),
    }
}

/// A row's kind and bytes as a stored value.
fn stored_value(kind: &str, bytes: Vec<u8>) -> StoreResult<StoredValue> {
    match kind {
        SECRET => Ok(StoredValue::Sealed(bytes)),
        PLAIN => String::from_utf8(bytes)
            .map(StoredValue::Plain)
            .map_err(|_| StoreError::internal("a plain secret entry in the database is not UTF-8")),
        other => Err(StoreError::internal(format!(
            "a secret entry in the database has the unknown kind \"{other}\""
        ))),
    }
}

async fn put(store: &SqlStore, entry: StoredEntry) -> StoreResult<()> {
    let txn = store.begin().await?;
    let Some(owner) = owner(&txn, &entry.scope, true).await? else {
        return Err(StoreError::not_found(format!(
            "{} does not exist",
            describe(&entry.scope)
        )));
    };
    let (kind, bytes) = match entry.value {
        StoredValue::Sealed(bytes) => (SECRET, bytes),
        StoredValue::Plain(text) => (PLAIN, text.into_bytes()),
    };
    let now = ms(Utc::now());
    let context = || format!("failed to store the secret \"{}\"", entry.name);
    let insert = Query::insert()
        .into_table(owner.table)
        .columns([
            owner.column,
            "name",
            "kind",
            "value",
            "created_at",
            "updated_at",
        ])
        .values([
            owner.id.into(),
            entry.name.as_str().into(),
            kind.into(),
            bytes.into(),
            now.into(),
            now.into(),
        ])
        .map_err(|err| StoreError::internal(format!("{}: {err}", context())))?
        .on_conflict(
            OnConflict::columns([owner.column, "name"])
                .update_columns(["kind", "value", "updated_at"])
                .to_owned(),
        )
        .to_owned();
    txn.execute(&insert).await.context(context)?;
    audit_secret(&txn, &owner, &entry.scope, &entry.name, SECRET_CREATED).await?;
    txn.commit().await.context(context)
}

/// Records a change of entry `name` in the team's audit log (its name only).
async fn audit_secret<C: ConnectionTrait>(
    txn: &C,
    owner: &Owner,
    scope: &Scope,
    name: &str,
    action: &str,
) -> StoreResult<()> {
    let (target, pipeline) = match scope {
        Scope::Team { .. } => (name.to_owned(), None),
        Scope::Pipeline { pipeline, .. } => (format!("{pipeline}/{name}"), Some(pipeline.as_str())),
    };
    audit_log::record(
        txn,
        Change {
            team: TeamId(owner.team_id),
            action,
            target_type: "secret",
            target_name: &target,
            pipeline,
            details: serde_json::json!({}),
            at: Utc::now(),
        },
    )
    .await
}

async fn select(
    store: &SqlStore,
    scope: &Scope,
    name: Option<&str>,
) -> StoreResult<Vec<StoredEntry>> {
    let Some(owner) = owner(store.db(), scope, false).await? else {
        return Ok(Vec::new());
    };
    let mut query = Query::select();
    query
        .columns(["name", "kind", "value"])
        .from(owner.table)
        .and_where(Expr::col(owner.column).eq(owner.id))
        .order_by("name", sea_orm::Order::Asc);
    if let Some(name) = name {
        query.and_where(Expr::col("name").eq(name));
    }
    let context = || format!("failed to read the secrets of {}", describe(scope));
    let rows = store.db().query_all(&query).await.context(context)?;
    let mut entries = Vec::with_capacity(rows.len());
    for row in rows {
        let name: String = row.try_get("", "name").context(context)?;
        let kind: String = row.try_get("", "kind").context(context)?;
        let value: Vec<u8> = row.try_get("", "value").context(context)?;
        entries.push(StoredEntry {
            scope: scope.clone(),
            name,
            value: stored_value(&kind, value)?,
        });
    }
    Ok(entries)
}

async fn delete(store: &SqlStore, scope: &Scope, name: &str) -> StoreResult<bool> {
    let context = || format!("failed to delete the secret \"{name}\"");
    let txn = store.begin().await?;
    let Some(owner) = owner(&txn, scope, false).await? else {
        return Ok(false);
    };
    let delete = Query::delete()
        .from_table(owner.table)
        .and_where(Expr::col(owner.column).eq(owner.id))
        .and_where(Expr::col("name").eq(name))
        .to_owned();
    let deleted = txn.execute(&delete).await.context(context)?;
    if deleted.rows_affected() > 0 {
        audit_secret(&txn, &owner, scope, name, SECRET_DELETED).await?;
    }
    txn.commit().await.context(context)?;
    Ok(deleted.rows_affected() > 0)
}

/// Renames pipeline `id` to `name` and re-seals its `secret` entries, in one transaction (see
/// [`Store::rename_pipeline`](pikoci_core::store::Store::rename_pipeline)). The pipeline's row
/// is locked first: a secret written concurrently either went in before (and is among the
/// entries compared with `resealed`) or looks for the old name after, and finds no pipeline.
pub(super) async fn rename_pipeline(
    store: &SqlStore,
    id: PipelineId,
    name: &str,
    resealed: &[ResealedSecret],
) -> StoreResult<StoredPipeline> {
    if !is_canonical(name) {
        return Err(StoreError::invalid_input(format!(
            "invalid pipeline name \"{}\": use a-z, 0-9, '-' and '_' (at most 255 bytes)",
            name.escape_debug()
        )));
    }
    let context = || format!("failed to rename pipeline {id} to \"{name}\"");
    let txn = store.begin().await?;
    let row = pipeline::Entity::find_by_id(id.0)
        .lock_exclusive()
        .one(&txn)
        .await
        .context(context)?
        .ok_or_else(|| StoreError::not_found(format!("pipeline {id} does not exist")))?;
    let old = row.name.clone();
    if old == name {
        return convert::pipeline(row);
    }
    let taken = pipeline::Entity::find()
        .filter(pipeline::Column::TeamId.eq(row.team_id))
        .filter(pipeline::Column::Name.eq(name))
        .one(&txn)
        .await
        .context(context)?;
    if taken.is_some() {
        return Err(StoreError::conflict(format!(
            "the team already has a pipeline \"{name}\": choose another name, or delete that one first"
        )));
    }
    let select = Query::select()
        .columns(["name", "value"])
        .from("pipeline_secrets")
        .and_where(Expr::col("pipeline_id").eq(id.0))
        .and_where(Expr::col("kind").eq(SECRET))
        .to_owned();
    let stored = txn.query_all(&select).await.context(context)?;
    let mut stored: std::collections::BTreeMap<String, Vec<u8>> = stored
        .into_iter()
        .map(|row| Ok((row.try_get("", "name")?, row.try_get("", "value")?)))
        .collect::<Result<_, sea_orm::DbErr>>()
        .context(context)?;
    for entry in resealed {
        if stored.remove(&entry.name).as_ref() != Some(&entry.old) {
            return Err(changed(&old));
        }
    }
    if !stored.is_empty() {
        return Err(changed(&old));
    }
    let now = ms(Utc::now());
    for entry in resealed {
        let update = Query::update()
            .table("pipeline_secrets")
            .value("value", entry.new.clone())
            .value("updated_at", now)
            .and_where(Expr::col("pipeline_id").eq(id.0))
            .and_where(Expr::col("name").eq(entry.name.as_str()))
            .to_owned();
        txn.execute(&update).await.context(context)?;
    }
    let mut row = row.into_active_model();
    row.name = Set(name.to_owned());
    row.updated_at = Set(now);
    let row = row.update(&txn).await.map_err(|err| match classify(&err) {
        Class::Duplicate => StoreError::conflict(format!(
            "the team already has a pipeline \"{name}\": choose another name, or delete that one first"
        )),
        _ => db_error(context(), err),
    })?;
    audit_log::record(
        &txn,
        Change {
            team: TeamId(row.team_id),
            action: PIPELINE_RENAMED,
            target_type: "pipeline",
            target_name: name,
            pipeline: Some(name),
            details: serde_json::json!({ "from": old }),
            at: time(now),
        },
    )
    .await?;
    txn.commit().await.context(context)?;
    convert::pipeline(row)
}

/// The conflict of a rename whose secrets changed after they were sealed again.
fn changed(pipeline: &str) -> StoreError {
    StoreError::conflict(format!(
        "the secrets of pipeline \"{pipeline}\" changed while it was being renamed: rename it again"
    ))
}

/// A store failure as the secret store reports it (same kind, same message).
fn secret_error(err: StoreError) -> SecretError {
    SecretError::new(err.kind(), err.full_message())
}

#[async_trait::async_trait]
impl SecretTable for SqlStore {
    async fn put(&self, entry: StoredEntry) -> Result<(), SecretError> {
        put(self, entry).await.map_err(secret_error)
    }

    async fn get(&self, scope: &Scope, name: &str) -> Result<Option<StoredEntry>, SecretError> {
        select(self, scope, Some(name))
            .await
            .map(|entries| entries.into_iter().next())
            .map_err(secret_error)
    }

    async fn list(&self, scope: &Scope) -> Result<Vec<StoredEntry>, SecretError> {
        select(self, scope, None).await.map_err(secret_error)
    }

    async fn delete(&self, scope: &Scope, name: &str) -> Result<bool, SecretError> {
        delete(self, scope, name).await.map_err(secret_error)
    }
}
