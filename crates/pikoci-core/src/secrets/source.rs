//! The [`SecretSource`] port and its request and error types.

use std::fmt;

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

crate::error::port_error!(
    /// A failure to fetch or resolve a secret, with an [`ErrorKind`](crate::error::ErrorKind).
    /// The message never holds a secret value (sources make sure of it for what they write, the
    /// resolver masks what it adds).
    SecretError
);
