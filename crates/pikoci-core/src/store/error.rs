//! The error every `Store` method returns: a kind callers branch on, a message for people, and an
//! opaque source for logs.

use std::error::Error;
use std::fmt;

/// What went wrong, in terms a caller can act on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StoreErrorKind {
    /// The row asked for does not exist (HTTP 404).
    NotFound,
    /// Another actor changed the row first, or a unique name is taken (HTTP 409).
    Conflict,
    /// The database cannot be reached or refused the connection; retrying later may work.
    Unavailable,
    /// The database did not answer in time (pool exhausted, lock wait).
    Timeout,
    /// The request itself is wrong (bad name, wrong status, malformed value) (HTTP 422).
    InvalidInput,
    /// This backend cannot do what was asked (or was compiled out).
    Unsupported,
    /// A bug or a broken invariant: corrupt row, failed serialization.
    Internal,
}

impl StoreErrorKind {
    /// A short snake_case name, as used in API error codes.
    pub fn as_str(self) -> &'static str {
        match self {
            StoreErrorKind::NotFound => "not_found",
            StoreErrorKind::Conflict => "conflict",
            StoreErrorKind::Unavailable => "unavailable",
            StoreErrorKind::Timeout => "timeout",
            StoreErrorKind::InvalidInput => "invalid_input",
            StoreErrorKind::Unsupported => "unsupported",
            StoreErrorKind::Internal => "internal",
        }
    }
}

impl fmt::Display for StoreErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An error from a [`Store`](super::Store): a kind, a message naming the thing that failed, and
/// an optional source. The source never exposes a database driver's types (implementations wrap
/// driver errors into their own opaque type before attaching them).
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct StoreError {
    kind: StoreErrorKind,
    message: String,
    #[source]
    source: Option<Box<dyn Error + Send + Sync + 'static>>,
}

impl StoreError {
    /// An error of this kind with this message (lowercase, no trailing period).
    pub fn new(kind: StoreErrorKind, message: impl Into<String>) -> StoreError {
        StoreError {
            kind,
            message: message.into(),
            source: None,
        }
    }

    /// A [`StoreErrorKind::NotFound`] error.
    pub fn not_found(message: impl Into<String>) -> StoreError {
        StoreError::new(StoreErrorKind::NotFound, message)
    }

    /// A [`StoreErrorKind::Conflict`] error.
    pub fn conflict(message: impl Into<String>) -> StoreError {
        StoreError::new(StoreErrorKind::Conflict, message)
    }

    /// A [`StoreErrorKind::InvalidInput`] error.
    pub fn invalid_input(message: impl Into<String>) -> StoreError {
        StoreError::new(StoreErrorKind::InvalidInput, message)
    }

    /// A [`StoreErrorKind::Internal`] error.
    pub fn internal(message: impl Into<String>) -> StoreError {
        StoreError::new(StoreErrorKind::Internal, message)
    }

    /// Attaches the underlying cause.
    pub fn with_source(
        mut self,
        source: impl Into<Box<dyn Error + Send + Sync + 'static>>,
    ) -> Self {
        self.source = Some(source.into());
        self
    }

    /// What went wrong.
    pub fn kind(&self) -> StoreErrorKind {
        self.kind
    }

    /// The message, without the source.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// Whether this is a [`StoreErrorKind::NotFound`] error.
    pub fn is_not_found(&self) -> bool {
        self.kind == StoreErrorKind::NotFound
    }

    /// Whether this is a [`StoreErrorKind::Conflict`] error.
    pub fn is_conflict(&self) -> bool {
        self.kind == StoreErrorKind::Conflict
    }
}

/// The result of every `Store` method.
pub type StoreResult<T> = Result<T, StoreError>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn message_and_source_are_kept_apart() {
        let err = StoreError::conflict("build 7 was claimed by another server")
            .with_source(std::io::Error::other("driver detail"));
        assert_eq!(err.kind(), StoreErrorKind::Conflict);
        assert!(err.is_conflict());
        assert!(!err.is_not_found());
        assert_eq!(err.to_string(), "build 7 was claimed by another server");
        assert_eq!(
            err.source().map(ToString::to_string).as_deref(),
            Some("driver detail")
        );
        assert_eq!(StoreErrorKind::InvalidInput.to_string(), "invalid_input");
    }
}
