//! The in-memory [`SecretTable`] (the port itself is `pikoci_core::secrets::SecretTable`).

use std::collections::BTreeMap;
use std::sync::Mutex;

use pikoci_core::secrets::{Scope, SecretError, SecretTable, StoredEntry, StoredValue};

/// What an encrypted value of entry `name` of `scope` is bound to: it cannot be decrypted
/// under another scope or name.
pub(super) fn context(scope: &Scope, name: &str) -> Vec<u8> {
    let text = match scope {
        Scope::Team { team } => format!("team\0{team}\0\0{name}"),
        Scope::Pipeline { team, pipeline } => format!("pipeline\0{team}\0{pipeline}\0{name}"),
    };
    text.into_bytes()
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
