//! Turning sea-orm errors into `StoreError`s: a kind from what the database said, the context
//! from the caller, and the driver's message as an opaque source (no driver type crosses the
//! `Store` trait).

use pikoci_core::ErrorKind;
use pikoci_core::store::StoreError;
use sea_orm::{DbErr, RuntimeErr, SqlErr};

/// The text of a database error, without its type, and how it was classified.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub(crate) struct DatabaseError {
    message: String,
    class: Class,
}

impl DatabaseError {
    /// An error with this text.
    pub(crate) fn new(message: String) -> DatabaseError {
        DatabaseError {
            message,
            class: Class::Other,
        }
    }
}

/// How the database error behind a `StoreError` was classified, if there is one.
pub(crate) fn class_of(err: &StoreError) -> Option<Class> {
    std::error::Error::source(err)?
        .downcast_ref::<DatabaseError>()
        .map(|e| e.class)
}

/// How a database error should be treated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Class {
    /// A unique key already has this value.
    Duplicate,
    /// A row refers to a row that does not exist.
    MissingParent,
    /// A deadlock, serialization failure or busy database: running the transaction again may
    /// succeed.
    Transient,
    /// No connection could be made or kept.
    Unreachable,
    /// Waiting for a connection or a lock took too long.
    TooSlow,
    /// Anything else.
    Other,
}

/// Classifies a database error.
pub(crate) fn classify(err: &DbErr) -> Class {
    match err.sql_err() {
        Some(SqlErr::UniqueConstraintViolation(_)) => return Class::Duplicate,
        Some(SqlErr::ForeignKeyConstraintViolation(_)) => return Class::MissingParent,
        _ => {}
    }
    match err {
        DbErr::ConnectionAcquire(_) => Class::TooSlow,
        DbErr::Conn(_) => Class::Unreachable,
        DbErr::Exec(RuntimeErr::SqlxError(e)) | DbErr::Query(RuntimeErr::SqlxError(e)) => {
            classify_sqlx(e)
        }
        _ => Class::Other,
    }
}

fn classify_sqlx(err: &sea_orm::sqlx::Error) -> Class {
    use sea_orm::sqlx::Error;
    match err {
        Error::Io(_) | Error::Tls(_) | Error::PoolClosed | Error::WorkerCrashed => {
            Class::Unreachable
        }
        Error::PoolTimedOut => Class::TooSlow,
        Error::Database(db) => match db.code().as_deref() {
            // PostgreSQL: serialization failure, deadlock.
            Some("40001" | "40P01") => Class::Transient,
            // PostgreSQL: lock not available, query cancelled by statement timeout.
            Some("55P03" | "57014") => Class::TooSlow,
            // MySQL/MariaDB: deadlock (SQLSTATE 40001, error 1213).
            Some("1213") => Class::Transient,
            // MySQL/MariaDB: lock wait timeout.
            Some("1205" | "HY000") if db.message().contains("Lock wait timeout") => Class::TooSlow,
            // SQLite: SQLITE_BUSY, SQLITE_LOCKED and their extended codes.
            Some(code) if is_sqlite_busy(code) => Class::Transient,
            _ => Class::Other,
        },
        _ => Class::Other,
    }
}

fn is_sqlite_busy(code: &str) -> bool {
    code.parse::<u32>()
        .is_ok_and(|code| matches!(code & 0xff, 5 | 6) && code < 4096)
}

/// Wraps a database error into a `StoreError` whose message says what was being done.
pub(crate) fn db_error(context: impl Into<String>, err: DbErr) -> StoreError {
    let class = classify(&err);
    let kind = match class {
        Class::Duplicate | Class::Transient => ErrorKind::Conflict,
        Class::MissingParent => ErrorKind::NotFound,
        Class::Unreachable => ErrorKind::Unavailable,
        Class::TooSlow => ErrorKind::Timeout,
        Class::Other => match err {
            DbErr::RecordNotFound(_) => ErrorKind::NotFound,
            _ => ErrorKind::Internal,
        },
    };
    StoreError::new(kind, context).with_source(DatabaseError {
        message: err.to_string(),
        class,
    })
}

/// A `StoreError` for a value that could not be (de)serialized.
pub(crate) fn corrupt(context: impl Into<String>, err: impl std::fmt::Display) -> StoreError {
    StoreError::new(ErrorKind::Internal, context).with_source(DatabaseError::new(err.to_string()))
}

/// Adds context to database errors (`.context(|| format!("failed to ..."))`).
pub(crate) trait Context<T> {
    /// Maps the error with a message made on demand.
    fn context<F, S>(self, message: F) -> Result<T, StoreError>
    where
        F: FnOnce() -> S,
        S: Into<String>;
}

impl<T> Context<T> for Result<T, DbErr> {
    fn context<F, S>(self, message: F) -> Result<T, StoreError>
    where
        F: FnOnce() -> S,
        S: Into<String>,
    {
        self.map_err(|err| db_error(message(), err))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_busy_codes_are_transient() {
        assert!(is_sqlite_busy("5"));
        assert!(is_sqlite_busy("517")); // SQLITE_BUSY_SNAPSHOT
        assert!(is_sqlite_busy("6"));
        assert!(!is_sqlite_busy("2067")); // SQLITE_CONSTRAINT_UNIQUE
        assert!(!is_sqlite_busy("40001"));
        assert!(!is_sqlite_busy("HY000"));
    }

    #[test]
    fn errors_keep_their_context_and_hide_the_driver() {
        let err = db_error(
            "failed to load team 3",
            DbErr::Conn(RuntimeErr::Internal("connection refused".into())),
        );
        assert_eq!(err.kind(), ErrorKind::Unavailable);
        // The retry loop reads the class back through the source.
        assert_eq!(class_of(&err), Some(Class::Unreachable));
        assert_eq!(err.to_string(), "failed to load team 3");
        let source = std::error::Error::source(&err).unwrap();
        assert!(source.to_string().contains("connection refused"));
        assert!(source.downcast_ref::<DbErr>().is_none());
        assert_eq!(
            db_error("x", DbErr::RecordNotFound("gone".into())).kind(),
            ErrorKind::NotFound
        );
    }
}
