//! The one error model of the ports: every port (`Store`, `Broker`, `SecretSource`, `Runner`,
//! `NativeChecks`) has its own error type, and each of them carries an [`ErrorKind`] callers
//! branch on, a message for people, and an opaque source for logs.
//!
//! The kinds are those of the architecture plus [`ErrorKind::PermissionDenied`], which secret
//! backends need (a refused token is something the user fixes, not something to retry).

use std::fmt;

/// What went wrong, in terms a caller can act on. The same set for every port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The thing asked for does not exist: a row, a topic, a secret path or key, a file (HTTP 404).
    NotFound,
    /// Another actor changed the thing first, or a unique name is taken (HTTP 409).
    Conflict,
    /// The credentials were refused, or do not allow this operation (HTTP 403).
    PermissionDenied,
    /// The backend cannot be reached, refused the connection, is closed, or a command it relies on
    /// failed; retrying later may work (HTTP 503).
    Unavailable,
    /// The backend did not answer in time (pool exhausted, lock wait, request or command timeout).
    Timeout,
    /// The request or configuration is wrong: a bad name, URL or value, a secret type configured
    /// wrongly, secrets that depend on each other in a circle (HTTP 422).
    InvalidInput,
    /// This backend or build cannot do what was asked (or the feature was compiled out).
    Unsupported,
    /// A bug, a broken invariant, or an answer that cannot be read: a corrupt row, an unexpected
    /// reply from a broker or secret backend, a failed serialization (HTTP 500).
    Internal,
}

impl ErrorKind {
    /// A short snake_case name, as used in API error codes and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorKind::NotFound => "not_found",
            ErrorKind::Conflict => "conflict",
            ErrorKind::PermissionDenied => "permission_denied",
            ErrorKind::Unavailable => "unavailable",
            ErrorKind::Timeout => "timeout",
            ErrorKind::InvalidInput => "invalid_input",
            ErrorKind::Unsupported => "unsupported",
            ErrorKind::Internal => "internal",
        }
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The opaque cause of a port error. Shared so that port errors are `Clone` (a secret fetched
/// once can fail several variables with the same error).
pub type ErrorSource = std::sync::Arc<dyn std::error::Error + Send + Sync + 'static>;

/// Defines a port's error type: a kind, a message naming the thing that failed, and an optional
/// source, with the same methods for every port. Two errors are equal when their kinds and
/// messages are (sources are not compared).
macro_rules! port_error {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(Debug, Clone)]
        pub struct $name {
            kind: $crate::error::ErrorKind,
            message: String,
            source: Option<$crate::error::ErrorSource>,
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(&self.message)
            }
        }

        impl std::error::Error for $name {
            // The source itself, not the `Arc` around it: callers downcast it to their own
            // error types (the store reads its database error class back this way).
            fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
                self.source
                    .as_deref()
                    .map(|source| source as &(dyn std::error::Error + 'static))
            }
        }

        impl $name {
            /// An error of `kind`; `message` names the thing that failed (lowercase, no trailing
            /// period, no secret value).
            pub fn new(kind: $crate::error::ErrorKind, message: impl Into<String>) -> $name {
                $name {
                    kind,
                    message: message.into(),
                    source: None,
                }
            }

            /// A [`NotFound`]($crate::error::ErrorKind::NotFound) error.
            pub fn not_found(message: impl Into<String>) -> $name {
                $name::new($crate::error::ErrorKind::NotFound, message)
            }

            /// A [`Conflict`]($crate::error::ErrorKind::Conflict) error.
            pub fn conflict(message: impl Into<String>) -> $name {
                $name::new($crate::error::ErrorKind::Conflict, message)
            }

            /// An [`InvalidInput`]($crate::error::ErrorKind::InvalidInput) error.
            pub fn invalid_input(message: impl Into<String>) -> $name {
                $name::new($crate::error::ErrorKind::InvalidInput, message)
            }

            /// An [`Internal`]($crate::error::ErrorKind::Internal) error.
            pub fn internal(message: impl Into<String>) -> $name {
                $name::new($crate::error::ErrorKind::Internal, message)
            }

            /// The same error, caused by `source`.
            #[must_use]
            pub fn with_source(
                mut self,
                source: impl Into<Box<dyn std::error::Error + Send + Sync + 'static>>,
            ) -> $name {
                self.source = Some(std::sync::Arc::from(source.into()));
                self
            }

            /// What went wrong.
            pub fn kind(&self) -> $crate::error::ErrorKind {
                self.kind
            }

            /// The message, without its causes.
            pub fn message(&self) -> &str {
                &self.message
            }

            /// The message followed by every cause, `: `-separated.
            pub fn full_message(&self) -> String {
                let mut text = self.message.clone();
                let mut cause = std::error::Error::source(self);
                while let Some(error) = cause {
                    text.push_str(": ");
                    text.push_str(&error.to_string());
                    cause = error.source();
                }
                text
            }

            /// Whether this is a [`NotFound`]($crate::error::ErrorKind::NotFound) error.
            pub fn is_not_found(&self) -> bool {
                self.kind == $crate::error::ErrorKind::NotFound
            }

            /// Whether this is a [`Conflict`]($crate::error::ErrorKind::Conflict) error.
            pub fn is_conflict(&self) -> bool {
                self.kind == $crate::error::ErrorKind::Conflict
            }
        }

        impl PartialEq for $name {
            fn eq(&self, other: &$name) -> bool {
                self.kind == other.kind && self.message == other.message
            }
        }

        impl Eq for $name {}
    };
}

pub(crate) use port_error;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::StoreError as TestError;

    #[test]
    fn message_and_source_are_kept_apart() {
        let err = TestError::conflict("build 7 was claimed by another server")
            .with_source(std::io::Error::other("driver detail"));
        assert_eq!(err.kind(), ErrorKind::Conflict);
        assert!(err.is_conflict());
        assert!(!err.is_not_found());
        assert_eq!(err.to_string(), "build 7 was claimed by another server");
        assert_eq!(
            std::error::Error::source(&err)
                .map(ToString::to_string)
                .as_deref(),
            Some("driver detail")
        );
        assert_eq!(
            err.full_message(),
            "build 7 was claimed by another server: driver detail"
        );
    }

    #[derive(Debug, thiserror::Error)]
    #[error("driver detail")]
    struct Driver;

    #[test]
    fn the_source_can_be_downcast() {
        let err = TestError::internal("x").with_source(Driver);
        let source = std::error::Error::source(&err).unwrap();
        assert!(source.downcast_ref::<Driver>().is_some());
    }

    #[test]
    fn kinds_have_one_snake_case_name() {
        assert_eq!(ErrorKind::InvalidInput.to_string(), "invalid_input");
        assert_eq!(ErrorKind::PermissionDenied.as_str(), "permission_denied");
    }

    #[test]
    fn errors_compare_by_kind_and_message() {
        let a = TestError::not_found("x").with_source("one");
        assert_eq!(a, TestError::not_found("x").with_source("two"));
        assert_ne!(a, TestError::internal("x"));
    }
}
