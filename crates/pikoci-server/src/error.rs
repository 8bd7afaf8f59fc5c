//! The errors of the service layer, with the kind the API turns into a status code.

use pikoci_core::ErrorKind;
use pikoci_core::store::StoreError;

/// What went wrong, for the person who asked: a kind and a message (and, for a pipeline that
/// does not validate, its diagnostics).
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct ServerError {
    /// The kind (`NotFound` becomes 404, `InvalidInput` 400, `Conflict` 409, ...).
    pub kind: ErrorKind,
    /// What is wrong, what to do.
    pub message: String,
    /// For a pipeline that does not validate: every diagnostic, rendered without colour.
    pub diagnostics: Option<Vec<pikoci_config::Diagnostic>>,
}

/// The result of every service operation.
pub type ServerResult<T> = Result<T, ServerError>;

impl ServerError {
    /// An error of this kind.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> ServerError {
        ServerError {
            kind,
            message: message.into(),
            diagnostics: None,
        }
    }
}

impl From<StoreError> for ServerError {
    fn from(error: StoreError) -> ServerError {
        ServerError::new(error.kind(), error.to_string())
    }
}
