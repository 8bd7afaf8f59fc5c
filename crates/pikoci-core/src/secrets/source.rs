//! The [`SecretSource`] port and its request and error types.

use std::fmt;
use std::sync::Arc;

use super::SecretValues;
use crate::SecretType;

/// Fetches secrets for secret types. One call serves every key wanted from one path of one
/// secret type; the resolver groups variables so that each (type, path) is fetched once.
///
/// Implementations (exec-based `secret_type` blocks, Vault, file, env, the store `pikoci`, and
/// the registry that picks among them) live in `pikoci-secrets`.
#[async_trait::async_trait]
pub trait SecretSource: Send + Sync + fmt::Debug {
    /// Fetches the secret at `request.path` and returns its values by key. It may return more
    /// keys than asked for; the keys asked for that are missing are reported by the resolver.
    async fn fetch(&self, request: &SecretRequest) -> Result<SecretValues, SecretError>;
}

/// One fetch: a path of a secret type and the keys wanted from it. Placeholders of other
/// variables are already replaced by their values, so `Debug` shows only the type name.
#[derive(Clone, PartialEq, Eq)]
pub struct SecretRequest {
    /// The secret type's name (the label of `secret "<type>"`).
    pub secret_type: String,
    /// The type's definition from the pipeline (`None` for the store `pikoci`, which needs no
    /// block), with placeholders in its configuration, command and runner override replaced.
    pub definition: Option<SecretType>,
    /// The variable's `path` (may be empty).
    pub path: String,
    /// The keys wanted, sorted and without duplicates.
    pub keys: Vec<String>,
}

impl SecretRequest {
    /// A configuration attribute of the type (`address`, `format`, ...), if set.
    pub fn config(&self, name: &str) -> Option<&str> {
        self.definition
            .as_ref()
            .and_then(|d| d.config.get(name))
            .map(String::as_str)
    }
}

impl fmt::Debug for SecretRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The path, keys and configuration may hold other secrets' values.
        f.debug_struct("SecretRequest")
            .field("secret_type", &self.secret_type)
            .finish_non_exhaustive()
    }
}

/// What went wrong, for callers that react differently (retry, tell the user to log in, ...).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SecretErrorKind {
    /// Nothing at that path, no such key, an unset environment variable, a missing file.
    NotFound,
    /// The credentials were refused, or do not allow reading that path.
    Denied,
    /// The backend could not be reached (connection refused, timeout, no such host).
    Unreachable,
    /// The secret type is configured wrongly (no address, an unknown format, ...).
    Config,
    /// The backend answered something that cannot be read (not JSON, not a map of strings).
    InvalidResponse,
    /// The type's `get` command failed.
    CommandFailed,
    /// No implementation exists for the secret type here.
    Unsupported,
    /// Secrets depend on each other in a circle, or through too long a chain.
    Dependency,
}

/// A failure to fetch or resolve a secret. The message never holds a secret value (sources
/// make sure of it for what they write, the resolver masks what it adds).
#[derive(Debug, Clone, thiserror::Error)]
#[error("{message}")]
pub struct SecretError {
    kind: SecretErrorKind,
    message: String,
    #[source]
    source: Option<Arc<dyn std::error::Error + Send + Sync>>,
}

impl SecretError {
    /// An error of `kind` saying `message` (lowercase, no trailing period, no secret values).
    pub fn new(kind: SecretErrorKind, message: impl Into<String>) -> SecretError {
        SecretError {
            kind,
            message: message.into(),
            source: None,
        }
    }

    /// The same error, caused by `source`.
    pub fn with_source(
        mut self,
        source: impl std::error::Error + Send + Sync + 'static,
    ) -> SecretError {
        self.source = Some(Arc::new(source));
        self
    }

    /// What went wrong.
    pub fn kind(&self) -> SecretErrorKind {
        self.kind
    }

    /// The message, without its causes.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The message followed by every cause, `: `-separated.
    pub fn full_message(&self) -> String {
        let mut text = self.message.clone();
        let mut cause: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(self);
        while let Some(error) = cause {
            text.push_str(": ");
            text.push_str(&error.to_string());
            cause = error.source();
        }
        text
    }
}
