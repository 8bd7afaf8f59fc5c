//! The entries of the built-in secret store: `SecretTable` on `team_secrets` and
//! `pipeline_secrets`. The two tables have the same columns apart from their owner, so one set
//! of statements serves both. Values arrive already encrypted (`secret`) or as they are
//! (`plain`); this module never sees a key.

use chrono::Utc;
use pikoci_core::secrets::{Scope, SecretError, SecretTable, StoredEntry, StoredValue};
use pikoci_core::store::{StoreError, StoreResult};
use sea_orm::sea_query::{Expr, ExprTrait, OnConflict, Query};
use sea_orm::{ColumnTrait, ConnectionTrait, EntityTrait, QueryFilter, QuerySelect};

use super::SqlStore;
use super::convert::ms;
use crate::entity::{pipeline, team};
use crate::error::Context;

const SECRET: &str = "secret";
const PLAIN: &str = "plain";

/// The table and row that own the entries of a scope.
struct Owner {
    table: &'static str,
    column: &'static str,
    id: i64,
}

/// The owner of `scope`'s entries, `None` when its team or pipeline does not exist.
async fn owner(store: &SqlStore, scope: &Scope) -> StoreResult<Option<Owner>> {
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
        .one(store.db())
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
        }));
    };
    let pipeline_id: Option<i64> = pipeline::Entity::find()
        .select_only()
        .column(pipeline::Column::Id)
        .filter(pipeline::Column::TeamId.eq(team_id))
        .filter(pipeline::Column::Name.eq(name.as_str()))
        .into_tuple()
        .one(store.db())
        .await
        .context(context)?;
    Ok(pipeline_id.map(|id| Owner {
        table: "pipeline_secrets",
        column: "pipeline_id",
        id,
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
    let Some(owner) = owner(store, &entry.scope).await? else {
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
    store.db().execute(&insert).await.context(context)?;
    Ok(())
}

async fn select(
    store: &SqlStore,
    scope: &Scope,
    name: Option<&str>,
) -> StoreResult<Vec<StoredEntry>> {
    let Some(owner) = owner(store, scope).await? else {
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
    let Some(owner) = owner(store, scope).await? else {
        return Ok(false);
    };
    let delete = Query::delete()
        .from_table(owner.table)
        .and_where(Expr::col(owner.column).eq(owner.id))
        .and_where(Expr::col("name").eq(name))
        .to_owned();
    let deleted = store
        .db()
        .execute(&delete)
        .await
        .context(|| format!("failed to delete the secret \"{name}\""))?;
    Ok(deleted.rows_affected() > 0)
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
