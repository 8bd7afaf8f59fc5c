//! Where store entries are kept: the [`SecretTable`] port and its in-memory implementation.

use std::collections::BTreeMap;
use std::sync::Mutex;

use pikoci_core::secrets::SecretError;

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

    /// What an encrypted value of entry `name` is bound to: it cannot be decrypted under
    /// another scope or name.
    pub(super) fn context(&self, name: &str) -> Vec<u8> {
        let text = match self {
            Scope::Team { team } => format!("team\0{team}\0\0{name}"),
            Scope::Pipeline { team, pipeline } => format!("pipeline\0{team}\0{pipeline}\0{name}"),
        };
        text.into_bytes()
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

/// Keeps store entries (the server implements it on its database).
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

/// A [`SecretTable`] in memory.
#[derive(Debug, Default)]
pub struct MemoryTable {
    entries: Mutex<BTreeMap<(Scope, String), StoredValue>>,
}

impl MemoryTable {
    /// An empty table.
    pub fn new() -> MemoryTable {
        MemoryTable::default()
    }

    fn entries(&self) -> std::sync::MutexGuard<'_, BTreeMap<(Scope, String), StoredValue>> {
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }
}

#[async_trait::async_trait]
impl SecretTable for MemoryTable {
    async fn put(&self, entry: StoredEntry) -> Result<(), SecretError> {
        self.entries()
            .insert((entry.scope, entry.name), entry.value);
        Ok(())
    }

    async fn get(&self, scope: &Scope, name: &str) -> Result<Option<StoredEntry>, SecretError> {
        Ok(self
            .entries()
            .get(&(scope.clone(), name.to_owned()))
            .map(|value| StoredEntry {
                scope: scope.clone(),
                name: name.to_owned(),
                value: value.clone(),
            }))
    }

    async fn list(&self, scope: &Scope) -> Result<Vec<StoredEntry>, SecretError> {
        Ok(self
            .entries()
            .iter()
            .filter(|((s, _), _)| s == scope)
            .map(|((scope, name), value)| StoredEntry {
                scope: scope.clone(),
                name: name.clone(),
                value: value.clone(),
            })
            .collect())
    }

    async fn delete(&self, scope: &Scope, name: &str) -> Result<bool, SecretError> {
        Ok(self
            .entries()
            .remove(&(scope.clone(), name.to_owned()))
            .is_some())
    }
}
