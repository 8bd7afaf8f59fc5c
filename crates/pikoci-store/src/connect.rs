//! Opening a database by URL: picking the backend, tuning SQLite, creating a missing PostgreSQL
//! or MySQL database, and running the migrations.

use std::str::FromStr;
use std::time::Duration;

use pikoci_core::ErrorKind;
use pikoci_core::redact;
use pikoci_core::store::{StoreError, StoreResult};
use sea_orm::sqlx::mysql::{MySqlConnectOptions, MySqlDatabaseError};
use sea_orm::sqlx::postgres::PgConnectOptions;
use sea_orm::sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous};
use sea_orm::{ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DbErr, RuntimeErr};

use crate::error::{Context, DatabaseError};

/// How long a SQLite writer waits for another writer before giving up.
const SQLITE_BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// How long to wait for a PostgreSQL or MySQL server to accept a connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The database system behind a store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// SQLite in memory: gone when the process exits.
    Mem,
    /// A SQLite file, in WAL mode.
    Sqlite,
    /// PostgreSQL.
    Postgres,
    /// MySQL or MariaDB.
    Mysql,
}

impl Backend {
    /// The backend a URL names: `mem`, `sqlite::memory:`, `sqlite://PATH`, `postgres://...`
    /// (or `postgresql://`), `mysql://...` (or `mariadb://`).
    pub fn from_url(url: &str) -> StoreResult<Backend> {
        let url = url.trim();
        if matches!(url, "mem" | "sqlite::memory:" | "sqlite://:memory:") {
            Ok(Backend::Mem)
        } else if url.starts_with("sqlite:") {
            Ok(Backend::Sqlite)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Ok(Backend::Postgres)
        } else if url.starts_with("mysql://") || url.starts_with("mariadb://") {
            Ok(Backend::Mysql)
        } else {
            Err(StoreError::invalid_input(format!(
                "unsupported database URL \"{}\": use mem, sqlite://PATH, postgres://USER@HOST/NAME \
                 or mysql://USER@HOST/NAME",
                redact::url(url)
            )))
        }
    }

    /// The `--db-system` name.
    pub fn as_str(self) -> &'static str {
        match self {
            Backend::Mem => "mem",
            Backend::Sqlite => "sqlite",
            Backend::Postgres => "postgres",
            Backend::Mysql => "mysql",
        }
    }
}

/// Opens the database a URL names, creating it if it is a missing PostgreSQL or MySQL database
/// (or a missing SQLite file), without running migrations.
pub(crate) async fn open(url: &str) -> StoreResult<(Backend, DatabaseConnection)> {
    let backend = Backend::from_url(url)?;
    let url = url.trim();
    let db = match backend {
        Backend::Mem => open_mem().await?,
        Backend::Sqlite => open_sqlite(url).await?,
        Backend::Postgres => open_server(url, backend).await?,
        Backend::Mysql => open_server(&url.replacen("mariadb://", "mysql://", 1), backend).await?,
    };
    Ok((backend, db))
}

async fn open_mem() -> StoreResult<DatabaseConnection> {
    // One connection that never closes: an in-memory database lives as long as its connection.
    // Nothing may await between taking it from the pool and handing it over: a request
    // cancelled there (a client gone) would drop it, and the pool would open a new, empty
    // database in its place. So the pool does not ping it first (sqlx's `test_before_acquire`,
    // whose documentation names this case).
    let mut options = ConnectOptions::new("sqlite::memory:");
    options
        .max_connections(1)
        .min_connections(1)
        .test_before_acquire(false)
        .idle_timeout(None)
        .max_lifetime(None)
        .sqlx_logging(false)
        .map_sqlx_sqlite_opts(|o| o.foreign_keys(true));
    Database::connect(options)
        .await
        .context(|| "failed to open the in-memory database")
}

async fn open_sqlite(url: &str) -> StoreResult<DatabaseConnection> {
    let parsed = SqliteConnectOptions::from_str(url).map_err(|err| {
        StoreError::invalid_input(format!("invalid SQLite URL \"{url}\""))
            .with_source(DatabaseError::new(err.to_string()))
    })?;
    if let Some(dir) = parsed.get_filename().parent()
        && !dir.as_os_str().is_empty()
    {
        std::fs::create_dir_all(dir).map_err(|err| {
            StoreError::new(
                ErrorKind::Unavailable,
                format!(
                    "failed to create the directory {} for the database",
                    dir.display()
                ),
            )
            .with_source(err)
        })?;
    }
    let mut options = ConnectOptions::new(url);
    options
        .max_connections(4)
        .sqlx_logging(false)
        .map_sqlx_sqlite_opts(|o| {
            o.create_if_missing(true)
                .foreign_keys(true)
                .journal_mode(SqliteJournalMode::Wal)
                .synchronous(SqliteSynchronous::Normal)
                .busy_timeout(SQLITE_BUSY_TIMEOUT)
        });
    Database::connect(options)
        .await
        .context(|| format!("failed to open the SQLite database {url}"))
}

fn server_options(url: &str) -> ConnectOptions {
    let mut options = ConnectOptions::new(url);
    options
        .max_connections(10)
        .connect_timeout(CONNECT_TIMEOUT)
        .acquire_timeout(CONNECT_TIMEOUT)
        .sqlx_logging(false);
    options
}

async fn open_server(url: &str, backend: Backend) -> StoreResult<DatabaseConnection> {
    let unreachable = |err: DbErr| {
        StoreError::new(
            ErrorKind::Unavailable,
            format!(
                "failed to connect to the {} database {}",
                backend.as_str(),
                redact::url(url)
            ),
        )
        .with_source(DatabaseError::new(err.to_string()))
    };
    match Database::connect(server_options(url)).await {
        Ok(db) => Ok(db),
        Err(err) if is_missing_database(&err) => {
            create_database(url, backend).await?;
            Database::connect(server_options(url))
                .await
                .map_err(unreachable)
        }
        Err(err) => Err(unreachable(err)),
    }
}

/// Whether connecting failed because the database does not exist.
fn is_missing_database(err: &DbErr) -> bool {
    let (DbErr::Conn(RuntimeErr::SqlxError(e)) | DbErr::Query(RuntimeErr::SqlxError(e))) = err
    else {
        return false;
    };
    let Some(db) = e.as_database_error() else {
        return false;
    };
    // PostgreSQL: invalid_catalog_name; MySQL/MariaDB: ER_BAD_DB_ERROR.
    db.code().as_deref() == Some("3D000")
        || db
            .try_downcast_ref::<MySqlDatabaseError>()
            .is_some_and(|e| e.number() == 1049)
}

/// Creates the database a PostgreSQL or MySQL URL names, connecting to the server without it.
async fn create_database(url: &str, backend: Backend) -> StoreResult<()> {
    let invalid = |err: &dyn std::fmt::Display| {
        StoreError::invalid_input(format!("invalid database URL {}", redact::url(url)))
            .with_source(DatabaseError::new(err.to_string()))
    };
    let mut options = server_options(url);
    let (name, statement) = match backend {
        Backend::Postgres => {
            let parsed = PgConnectOptions::from_str(url).map_err(|e| invalid(&e))?;
            let name = parsed.get_database().unwrap_or_default().to_owned();
            options.map_sqlx_postgres_opts(|o| o.database("postgres"));
            let statement = format!("CREATE DATABASE \"{name}\"");
            (name, statement)
        }
        _ => {
            let parsed = MySqlConnectOptions::from_str(url).map_err(|e| invalid(&e))?;
            let name = parsed.get_database().unwrap_or_default().to_owned();
            options.map_sqlx_mysql_opts(|o| o.database(""));
            let statement = format!(
                "CREATE DATABASE IF NOT EXISTS `{name}` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin"
            );
            (name, statement)
        }
    };
    if !is_safe_database_name(&name) {
        return Err(StoreError::invalid_input(format!(
            "cannot create the database \"{name}\": use letters, digits, '_' and '-' only, or \
             create it yourself"
        )));
    }
    let server = Database::connect(options).await.map_err(|err| {
        StoreError::new(
            ErrorKind::Unavailable,
            format!(
                "failed to connect to the {} server at {} to create the database \"{name}\"",
                backend.as_str(),
                redact::url(url)
            ),
        )
        .with_source(DatabaseError::new(err.to_string()))
    })?;
    let created = server.execute_unprepared(&statement).await;
    let _ = server.close().await;
    match created {
        Ok(_) => Ok(()),
        // Another process created it between our two attempts: PostgreSQL says
        // duplicate_database, or unique_violation on its catalog when both create it at once.
        Err(err)
            if err.to_string().contains("already exists")
                || crate::error::classify(&err) == crate::error::Class::Duplicate =>
        {
            Ok(())
        }
        Err(err) => Err(crate::error::db_error(
            format!("failed to create the database \"{name}\""),
            err,
        )),
    }
}

fn is_safe_database_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Store calls cancelled at any point (their requests gone) leave the in-memory database
    /// as it was: its one connection is never dropped for a new, empty one.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn cancelled_calls_keep_the_in_memory_database() {
        use pikoci_core::store::Store as _;
        let store = std::sync::Arc::new(crate::connect("mem").await.expect("mem"));
        store
            .create_team("kept", chrono::Utc::now())
            .await
            .expect("a team");
        let mut calls = Vec::new();
        for n in 0..400u64 {
            let store = store.clone();
            calls.push(tokio::spawn(async move {
                let _ = tokio::time::timeout(
                    std::time::Duration::from_micros(n % 40),
                    store.list_teams(),
                )
                .await;
            }));
        }
        for call in calls {
            call.await.expect("a call");
        }
        let teams = store.list_teams().await.expect("the teams");
        assert!(teams.iter().any(|team| team.name == "kept"), "{teams:?}");
    }

    #[test]
    fn urls_pick_backends() {
        assert_eq!(Backend::from_url("mem").unwrap(), Backend::Mem);
        assert_eq!(Backend::from_url("sqlite::memory:").unwrap(), Backend::Mem);
        assert_eq!(
            Backend::from_url("sqlite:///tmp/x.db").unwrap(),
            Backend::Sqlite
        );
        assert_eq!(Backend::from_url("sqlite://x.db").unwrap(), Backend::Sqlite);
        assert_eq!(
            Backend::from_url("postgres://u@h/d").unwrap(),
            Backend::Postgres
        );
        assert_eq!(
            Backend::from_url("postgresql://u@h/d").unwrap(),
            Backend::Postgres
        );
        assert_eq!(Backend::from_url("mysql://u@h/d").unwrap(), Backend::Mysql);
        assert_eq!(
            Backend::from_url("mariadb://u@h/d").unwrap(),
            Backend::Mysql
        );
        let err = Backend::from_url("redis://u:secret@h").unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidInput);
        assert!(err.to_string().contains("redis://u:***@h"), "{err}");
        assert!(!err.to_string().contains("secret"));
    }

    #[test]
    fn only_plain_database_names_are_created() {
        assert!(is_safe_database_name("pikoci_it_12-ab"));
        assert!(!is_safe_database_name(""));
        assert!(!is_safe_database_name("x\"; DROP TABLE y"));
        assert!(!is_safe_database_name("a`b"));
    }
}
