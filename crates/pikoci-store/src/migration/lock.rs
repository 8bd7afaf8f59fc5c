//! One server at a time migrates a database: servers started at the same moment on a new
//! database would otherwise run the same migration twice, and the second fails half way
//! (`table already exists`). PostgreSQL takes a session advisory lock, MySQL and MariaDB a
//! named lock (`GET_LOCK`), each on one connection held for the whole migration; the others
//! wait for it, then find nothing left to do. SQLite has one writer per file and `mem` one
//! process: they take no lock.

use std::time::Duration;

use pikoci_core::ErrorKind;
use pikoci_core::store::{StoreError, StoreResult};
use sea_orm::sqlx::pool::PoolConnection;
use sea_orm::sqlx::{MySql, Postgres};
use sea_orm::{DatabaseConnection, DbErr, RuntimeErr};

use crate::Backend;
use crate::error::Context;

/// The PostgreSQL advisory lock key: "pikoci" in ASCII.
const POSTGRES_KEY: i64 = 0x7069_6b6f_6369;

/// The MySQL lock's name, as SQL. Named locks are server-wide: the name holds the database's,
/// hashed to fit the 64 characters a name may have.
macro_rules! mysql_lock_name {
    () => {
        "CONCAT('pikoci_migrate_', SHA1(DATABASE()))"
    };
}

/// How long a server waits for another one's migration.
const PATIENCE: Duration = Duration::from_secs(600);

/// The lock, held until [`MigrationLock::release`].
pub(crate) enum MigrationLock {
    /// SQLite and `mem`.
    None,
    Postgres(PoolConnection<Postgres>),
    Mysql(PoolConnection<MySql>),
}

impl MigrationLock {
    /// Takes the lock on the database `db` is connected to, waiting for a server that holds it.
    pub(crate) async fn take(db: &DatabaseConnection, backend: Backend) -> StoreResult<Self> {
        let waited_too_long = || {
            StoreError::new(
                ErrorKind::Timeout,
                format!(
                    "another server has been migrating this database for over {} minutes; if none \
                 is, a session of a stopped server may still hold the lock: end it and start \
                 again",
                    PATIENCE.as_secs() / 60
                ),
            )
        };
        match backend {
            Backend::Mem | Backend::Sqlite => Ok(MigrationLock::None),
            Backend::Postgres => {
                let mut conn = pinned(db.get_postgres_connection_pool()).await?;
                let statement = format!("SET lock_timeout = '{}s'", PATIENCE.as_secs());
                sea_orm::sqlx::raw_sql(sea_orm::sqlx::AssertSqlSafe(statement))
                    .execute(&mut *conn)
                    .await
                    .map_err(db_err)
                    .context(|| "failed to set the wait for the migration lock")?;
                let locked = sea_orm::sqlx::query("SELECT pg_advisory_lock($1)")
                    .bind(POSTGRES_KEY)
                    .execute(&mut *conn)
                    .await;
                // Back to the server's default for whatever uses this connection next.
                let _ = sea_orm::sqlx::raw_sql("RESET lock_timeout")
                    .execute(&mut *conn)
                    .await;
                match locked {
                    Ok(_) => Ok(MigrationLock::Postgres(conn)),
                    // lock_not_available: the wait ran out.
                    Err(err)
                        if err.as_database_error().and_then(|e| e.code()).as_deref()
                            == Some("55P03") =>
                    {
                        Err(waited_too_long())
                    }
                    Err(err) => Err(db_err(err)).context(|| "failed to lock the migrations"),
                }
            }
            Backend::Mysql => {
                let mut conn = pinned(db.get_mysql_connection_pool()).await?;
                let locked: Option<i64> = sea_orm::sqlx::query_scalar(concat!(
                    "SELECT GET_LOCK(",
                    mysql_lock_name!(),
                    ", ?)"
                ))
                .bind(PATIENCE.as_secs() as i64)
                .fetch_one(&mut *conn)
                .await
                .map_err(db_err)
                .context(|| "failed to lock the migrations")?;
                match locked {
                    Some(1) => Ok(MigrationLock::Mysql(conn)),
                    Some(_) => Err(waited_too_long()),
                    None => Err(StoreError::internal(
                        "the database refused the migration lock (GET_LOCK gave NULL)",
                    )),
                }
            }
        }
    }

    /// Lets the lock go. A connection that cannot say so is closed, which lets it go too.
    pub(crate) async fn release(self) {
        match self {
            MigrationLock::None => {}
            MigrationLock::Postgres(mut conn) => {
                let unlocked = sea_orm::sqlx::query("SELECT pg_advisory_unlock($1)")
                    .bind(POSTGRES_KEY)
                    .execute(&mut *conn)
                    .await;
                if unlocked.is_err() {
                    let _ = conn.close().await;
                }
            }
            MigrationLock::Mysql(mut conn) => {
                let unlocked =
                    sea_orm::sqlx::query(concat!("SELECT RELEASE_LOCK(", mysql_lock_name!(), ")"))
                        .execute(&mut *conn)
                        .await;
                if unlocked.is_err() {
                    let _ = conn.close().await;
                }
            }
        }
    }
}

/// A connection of `pool` of its own: the lock belongs to the session that took it.
async fn pinned<DB: sea_orm::sqlx::Database>(
    pool: &sea_orm::sqlx::Pool<DB>,
) -> StoreResult<sea_orm::sqlx::pool::PoolConnection<DB>> {
    pool.acquire()
        .await
        .map_err(db_err)
        .context(|| "failed to get a connection to lock the migrations")
}

/// A driver error as the store's errors take it.
fn db_err(err: sea_orm::sqlx::Error) -> DbErr {
    DbErr::Query(RuntimeErr::SqlxError(err.into()))
}
