//! Export and import of the whole state. The exchange format is a SQLite database with every
//! migration applied: the file `--db-system sqlite` opens as it is, and that any SQLite tool
//! reads. Tables are copied row by row through their entities, ids kept, parents first, so the
//! same code moves state between any two of the four systems.
//!
//! The `workers` table is left out both ways: it is a registry of live processes, rebuilt by
//! their heartbeats, not state to restore. So is `sessions`: an import ends every login
//! session (the user ids they name are the export's now), while API tokens, stored as hashes
//! like sessions, come with their users. Nor is `worker_keys`: they are this server's keys on
//! its broker, which its workers hold; an import keeps the servers' and the global one and
//! drops the teams' (their workers need the new teams' tokens).

use std::path::Path;

use pikoci_core::ErrorKind;
use pikoci_core::store::{BuildStatus, StoreError, StoreResult, TableCount, TransferSummary};
use sea_orm::sea_query::Query;
use sea_orm::{
    AccessMode, ColumnTrait, ConnectionTrait, DbBackend, DbErr, EntityName, EntityTrait,
    IntoActiveModel, Iterable, ModelTrait, PaginatorTrait, PrimaryKeyToColumn, QueryFilter,
    QueryOrder, QuerySelect, SqliteTransactionMode, TransactionOptions, TransactionTrait,
};

use super::SqlStore;
use crate::entity::*;
use crate::error::Context;

/// Rows read and written at once: small enough for the largest rows (log chunks, secret
/// values) to stay well under MySQL's packet limit.
const PAGE: u64 = 100;

/// Calls `$each!(entity)` for every table copied, parents before children.
macro_rules! for_each_table {
    ($each:ident) => {
        $each!(team);
        $each!(user);
        $each!(team_member);
        $each!(api_token);
        $each!(auth_provider);
        $each!(user_identity);
        $each!(setting);
        $each!(pipeline);
        $each!(pipeline_type);
        $each!(job);
        $each!(job_tag);
        $each!(job_serial_group);
        $each!(resource);
        $each!(resource_version);
        $each!(build);
        $each!(build_step);
        $each!(build_version);
        $each!(approval_vote);
        $each!(log_chunk);
        $each!(trigger_event);
        $each!(team_secret);
        $each!(pipeline_secret);
        $each!(audit_entry);
    };
}

/// The names of the tables copied, parents first.
pub(crate) fn tables() -> Vec<&'static str> {
    let mut names = Vec::new();
    macro_rules! name {
        ($entity:ident) => {
            names.push($entity::Entity.table_name());
        };
    }
    for_each_table!(name);
    names
}

/// Copies every table from `from` to `to`, which holds none of their rows.
async fn copy_all(
    from: &impl ConnectionTrait,
    to: &impl ConnectionTrait,
) -> Result<TransferSummary, DbErr> {
    let mut tables = Vec::new();
    macro_rules! copy {
        ($entity:ident) => {
            tables.push(TableCount {
                table: $entity::Entity.table_name().to_owned(),
                rows: copy_table::<$entity::Entity>(from, to).await?,
            });
        };
    }
    for_each_table!(copy);
    Ok(TransferSummary { tables })
}

/// Copies the rows of `E` a page at a time, in the order of its primary key (every copied
/// table has a 64-bit `id`).
async fn copy_table<E>(from: &impl ConnectionTrait, to: &impl ConnectionTrait) -> Result<u64, DbErr>
where
    E: EntityTrait,
    E::Model: IntoActiveModel<E::ActiveModel>,
{
    let Some(key) = E::PrimaryKey::iter()
        .next()
        .map(PrimaryKeyToColumn::into_column)
    else {
        return Err(DbErr::Custom(format!(
            "table {} has no primary key to copy it in order",
            E::default().table_name()
        )));
    };
    let mut copied = 0u64;
    let mut last = None;
    loop {
        let mut page = E::find().order_by_asc(key).limit(PAGE);
        if let Some(last) = last.take() {
            page = page.filter(key.gt::<sea_orm::Value>(last));
        }
        let rows = page.all(from).await?;
        let count = rows.len() as u64;
        let Some(tail) = rows.last() else { break };
        last = Some(tail.get(key));
        E::insert_many(rows.into_iter().map(IntoActiveModel::into_active_model))
            .exec_without_returning(to)
            .await?;
        copied += count;
        if count < PAGE {
            break;
        }
    }
    Ok(copied)
}

/// The URL of the SQLite file at `path`.
fn sqlite_url(path: &Path) -> StoreResult<String> {
    // The driver reads the URL's query and fragment, and decodes `%XX` in the path.
    let text = path
        .to_str()
        .filter(|p| !p.contains(['?', '#', '%']))
        .ok_or_else(|| {
            StoreError::invalid_input(format!(
                "the path {} cannot name a SQLite database: use one of UTF-8 without '?', '#' \
                 or '%'",
                path.display()
            ))
        })?;
    Ok(format!("sqlite://{text}"))
}

/// Writes the whole state into a new SQLite database at `path` (which must not exist). The
/// rows are read in one read-only transaction: a consistent snapshot on PostgreSQL, MySQL and
/// SQLite files (an in-memory store, on its one connection, waits meanwhile).
pub(super) async fn export(store: &SqlStore, path: &Path) -> StoreResult<TransferSummary> {
    if path.exists() {
        return Err(StoreError::new(
            ErrorKind::Conflict,
            format!("{} exists already: export into a new file", path.display()),
        ));
    }
    let target = SqlStore::connect(&sqlite_url(path)?).await?;
    let context = || format!("failed to export into {}", path.display());
    let options = match store.db().get_database_backend() {
        DbBackend::Sqlite => TransactionOptions {
            sqlite_transaction_mode: Some(SqliteTransactionMode::Deferred),
            ..TransactionOptions::default()
        },
        _ => TransactionOptions {
            isolation_level: Some(sea_orm::IsolationLevel::RepeatableRead),
            access_mode: Some(AccessMode::ReadOnly),
            ..TransactionOptions::default()
        },
    };
    let copied = async {
        let snapshot = store
            .db()
            .begin_with_options(options)
            .await
            .context(context)?;
        let into = target.begin().await?;
        // The new file's migrations wrote their first rows (the settings): the copy replaces
        // them.
        into.execute(&Query::delete().from_table(setting::Entity).to_owned())
            .await
            .context(context)?;
        let summary = copy_all(&snapshot, &into).await.context(context)?;
        into.commit().await.context(context)?;
        snapshot.rollback().await.context(context)?;
        Ok::<_, StoreError>(summary)
    }
    .await;
    // The export's own error, if any, is the one to report.
    let closed = target.close().await;
    let summary = copied?;
    closed?;
    Ok(summary)
}

/// Replaces the whole state (but the workers' registry) by the one exported into the SQLite
/// database at `path`, in one transaction. An export made before later migrations is migrated
/// first (the file changes); one made by a newer PikoCI is refused. Without `replace`, a store
/// that holds anything but empty teams is left alone (`Conflict`).
pub(super) async fn import(
    store: &SqlStore,
    path: &Path,
    replace: bool,
) -> StoreResult<TransferSummary> {
    let mut magic = [0u8; 16];
    let is_sqlite = std::fs::File::open(path)
        .and_then(|mut file| std::io::Read::read_exact(&mut file, &mut magic))
        .is_ok()
        && &magic == b"SQLite format 3\0";
    if !is_sqlite {
        return Err(StoreError::invalid_input(
            "the file is not a PikoCI export (a SQLite database, as `pikoci export` writes it)",
        ));
    }
    let url = sqlite_url(path)?;
    check_export(&url).await?;
    let source = SqlStore::open(&url).await?;
    let imported = async {
        let context = || "failed to import the export".to_owned();
        let txn = store.begin().await?;
        let running = build::Entity::find()
            .filter(build::Column::Status.is_in([
                BuildStatus::Assigned.as_str(),
                BuildStatus::Started.as_str(),
            ]))
            .count(&txn)
            .await
            .context(context)?;
        if running > 0 {
            return Err(StoreError::conflict(format!(
                "{running} build{} running on this server: an import replaces them while their \
                 workers would still report on them, so wait for them or cancel them, then import",
                if running == 1 { " is" } else { "s are" }
            )));
        }
        if !replace {
            let held = holdings(&txn).await.context(context)?;
            if !held.is_empty() {
                return Err(StoreError::conflict(format!(
                    "this server already holds {}, and an import replaces the whole state",
                    held.join(", ")
                )));
            }
        }
        // Past the refusals: the file's schema may change now (opening it may already have
        // put it in WAL mode, which an export is in anyway).
        source.migrate().await?;
        txn.execute(&Query::delete().from_table(session::Entity).to_owned())
            .await
            .context(context)?;
        // Team keys go with the teams they sign for (the servers' and the global one stay).
        txn.execute(
            &Query::delete()
                .from_table(worker_key::Entity)
                .and_where(worker_key::Column::TeamId.is_not_null())
                .to_owned(),
        )
        .await
        .context(context)?;
        for table in tables().into_iter().rev() {
            txn.execute(&Query::delete().from_table(table).to_owned())
                .await
                .context(context)?;
        }
        let summary = copy_all(source.db(), &txn).await.context(context)?;
        if store.db().get_database_backend() == DbBackend::Postgres {
            for table in tables() {
                // The next id after the largest imported one.
                let statement = format!(
                    "SELECT setval(pg_get_serial_sequence('\"{table}\"', 'id'), \
                     COALESCE((SELECT MAX(id) FROM \"{table}\"), 0) + 1, false)"
                );
                txn.execute_unprepared(&statement).await.context(context)?;
            }
        }
        txn.commit().await.context(context)?;
        Ok::<_, StoreError>(summary)
    }
    .await;
    // The import's own error, if any, is the one to report.
    let closed = source.close().await;
    let summary = imported?;
    closed?;
    Ok(summary)
}

/// Refuses a file that is not a PikoCI export, or one made by a newer PikoCI, without writing
/// to it: it is opened read-only, and its record of migrations is read as it is (asking the
/// migrator would create the record in any SQLite file).
async fn check_export(url: &str) -> StoreResult<()> {
    let not_export = |why: &str| {
        StoreError::invalid_input(format!(
            "the file is not a PikoCI export ({why}): give a file `pikoci export` wrote"
        ))
    };
    let mut options = sea_orm::ConnectOptions::new(format!("{url}?mode=ro"));
    options.max_connections(1).sqlx_logging(false);
    let source = sea_orm::Database::connect(options)
        .await
        .map_err(|_| not_export("it cannot be opened as a SQLite database"))?;
    let checked = read_record(&source, not_export).await;
    // A failed close of a read-only connection loses nothing.
    let _ = source.close().await;
    checked
}

/// The checks of [`check_export`] on its open connection.
async fn read_record(
    source: &sea_orm::DatabaseConnection,
    not_export: impl Fn(&str) -> StoreError,
) -> StoreResult<()> {
    let record = source
        .query_all_raw(sea_orm::Statement::from_string(
            DbBackend::Sqlite,
            "SELECT name FROM sqlite_master WHERE type = 'table' AND name = 'pikoci_migrations'",
        ))
        .await
        .map_err(|_| not_export("it cannot be read as a SQLite database"))?;
    if record.is_empty() {
        return Err(not_export("it has no record of PikoCI's migrations"));
    }
    let rows = source
        .query_all_raw(sea_orm::Statement::from_string(
            DbBackend::Sqlite,
            "SELECT version FROM pikoci_migrations",
        ))
        .await
        .map_err(|_| not_export("its record of migrations cannot be read"))?;
    let applied: Vec<String> = rows
        .iter()
        .filter_map(|row| row.try_get::<String>("", "version").ok())
        .collect();
    let known = SqlStore::known_migrations();
    if !known.first().is_some_and(|first| applied.contains(first)) {
        return Err(not_export("PikoCI's first migration is not in it"));
    }
    if let Some(newer) = applied.iter().find(|name| !known.contains(name)) {
        return Err(StoreError::invalid_input(format!(
            "the export was made by a newer PikoCI (it has migration {newer}, which this server \
             does not know): upgrade this server, then import it"
        )));
    }
    Ok(())
}

/// What a store holds besides empty teams, as `3 pipelines, 1 team secret`; empty when it
/// holds nothing an import would lose.
async fn holdings(db: &impl ConnectionTrait) -> Result<Vec<String>, DbErr> {
    let mut held = Vec::new();
    for (count, one, many) in [
        (
            pipeline::Entity::find().count(db).await?,
            "pipeline",
            "pipelines",
        ),
        (
            trigger_event::Entity::find().count(db).await?,
            "trigger event",
            "trigger events",
        ),
        (
            team_secret::Entity::find().count(db).await?,
            "team secret",
            "team secrets",
        ),
        (
            team_member::Entity::find().count(db).await?,
            "team member",
            "team members",
        ),
        (
            api_token::Entity::find().count(db).await?,
            "API token",
            "API tokens",
        ),
        (
            // A new server has its first user; more are something an import would lose.
            user::Entity::find().count(db).await?.saturating_sub(1),
            "user besides the first",
            "users besides the first",
        ),
    ] {
        if count > 0 {
            held.push(format!("{count} {}", if count == 1 { one } else { many }));
        }
    }
    Ok(held)
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use sea_orm::{ConnectionTrait, EntityName, EntityTrait, Iterable};

    use super::super::SqlStore;
    use crate::entity::*;

    /// The entities name every column of their tables: a column added by a migration but not to
    /// its entity would be lost by an export.
    #[tokio::test]
    async fn entities_cover_every_column_of_the_copied_tables() {
        let store = SqlStore::connect("mem").await.expect("store");
        macro_rules! check {
            ($entity:ident) => {
                let table = $entity::Entity.table_name();
                let rows = store
                    .db()
                    .query_all_raw(sea_orm::Statement::from_string(
                        sea_orm::DbBackend::Sqlite,
                        format!("SELECT name FROM pragma_table_info('{table}')"),
                    ))
                    .await
                    .expect("table info");
                let in_table: BTreeSet<String> = rows
                    .iter()
                    .map(|row| row.try_get::<String>("", "name").expect("name"))
                    .collect();
                let in_entity: BTreeSet<String> = <$entity::Entity as EntityTrait>::Column::iter()
                    .map(|column| sea_orm::IdenStatic::as_str(&column).to_owned())
                    .collect();
                assert!(!in_table.is_empty(), "table {table} is missing");
                assert_eq!(in_table, in_entity, "the columns of {table}");
            };
        }
        for_each_table!(check);
        // Every table but the workers' registry, the login sessions, the worker keys and the
        // migrations' record
        // (which each store keeps for itself).
        let rows = store
            .db()
            .query_all_raw(sea_orm::Statement::from_string(
                sea_orm::DbBackend::Sqlite,
                "SELECT name FROM sqlite_master WHERE type = 'table' \
                 AND name NOT LIKE 'sqlite_%' AND name NOT IN ('workers', 'sessions', 'worker_keys', 'pikoci_migrations')",
            ))
            .await
            .expect("tables");
        let all: BTreeSet<String> = rows
            .iter()
            .map(|row| row.try_get::<String>("", "name").expect("name"))
            .collect();
        let copied: BTreeSet<String> = super::tables().into_iter().map(str::to_owned).collect();
        assert_eq!(all, copied, "the tables an export copies");
    }
}
