//! The [`SecretTable`] port: where the entries of the built-in store `pikoci` are kept (the
//! store's rules and encryption are `pikoci_secrets::SecretStore`; the server's database
//! implements the table, `pikoci_secrets::MemoryTable` keeps it in memory).

use super::SecretError;

/// Who an entry belongs to.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Scope {
    /// Every pipeline of a team.
    Team {
        /// The team's canonical name.
        team: String,
    },
    /// One pipeline (shadows the team's entry of the same name).
    Pipeline {
        /// The team's canonical name.
        team: String,
        /// The pipeline's canonical name.
        pipeline: String,
    },
}

impl Scope {
    /// A team scope.
    pub fn team(team: &str) -> Scope {
        Scope::Team {
            team: team.to_owned(),
        }
    }

    /// A pipeline scope.
    pub fn pipeline(team: &str, pipeline: &str) -> Scope {
        Scope::Pipeline {
            team: team.to_owned(),
            pipeline: pipeline.to_owned(),
        }
    }
}

/// A stored value.
#[derive(Clone, PartialEq, Eq)]
pub enum StoredValue {
    /// A `secret` entry: version byte, nonce, AES-256-GCM ciphertext and tag.
    Sealed(Vec<u8>),
    /// A `plain` entry, as is.
    Plain(String),
}

impl std::fmt::Debug for StoredValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            StoredValue::Sealed(bytes) => write!(f, "Sealed({} bytes)", bytes.len()),
            StoredValue::Plain(value) => f.debug_tuple("Plain").field(value).finish(),
        }
    }
}

/// One row of the table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEntry {
    /// Who it belongs to.
    pub scope: Scope,
    /// Its name.
    pub name: String,
    /// Its value.
    pub value: StoredValue,
}

/// Keeps store entries. A scope whose team or pipeline does not exist holds nothing; putting
/// an entry there fails with `NotFound`.
#[async_trait::async_trait]
pub trait SecretTable: Send + Sync + std::fmt::Debug {
    /// Creates or replaces the entry with the same scope and name.
    async fn put(&self, entry: StoredEntry) -> Result<(), SecretError>;
    /// The entry `name` of `scope`.
    async fn get(&self, scope: &Scope, name: &str) -> Result<Option<StoredEntry>, SecretError>;
    /// Every entry of `scope`.
    async fn list(&self, scope: &Scope) -> Result<Vec<StoredEntry>, SecretError>;
    /// Deletes the entry `name` of `scope`; whether it existed.
    async fn delete(&self, scope: &Scope, name: &str) -> Result<bool, SecretError>;
}
