//! The built-in store `pikoci`: team- and pipeline-scoped entries (a pipeline entry shadows
//! the team entry of the same name), of kind `secret` (encrypted at rest, masked in output) or
//! `plain` (stored and shown as is). The table behind it is the port
//! [`SecretTable`](pikoci_core::secrets::SecretTable): [`MemoryTable`] here; the server keeps it
//! in its database.

mod cipher;
mod table;

use std::sync::Arc;

use pikoci_core::ErrorKind;
use pikoci_core::secrets::{
    Scope, Secret, SecretError, SecretKind, SecretRequest, SecretSource, SecretTable, SecretValue,
    SecretValues, StoredEntry, StoredValue,
};
use pikoci_core::store::ResealedSecret;

pub use cipher::{Cipher, KEY_VARIABLE, MIN_KEY_LEN};
pub use table::MemoryTable;
use table::context;

/// The longest entry name.
const MAX_NAME_LEN: usize = 256;

/// The largest value, in bytes (a PEM key or a token file fits; a build carries every value it
/// uses, in a message of at most 1 MiB).
pub const MAX_VALUE_LEN: usize = 64 * 1024;

/// An entry as listed: secret values are never listed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntryInfo {
    /// The entry's name.
    pub name: String,
    /// `secret` or `plain`.
    pub kind: SecretKind,
    /// The value, for `plain` entries only.
    pub plain_value: Option<String>,
}

/// The store: lookup rules and encryption over a [`SecretTable`].
#[derive(Debug, Clone)]
pub struct SecretStore {
    table: Arc<dyn SecretTable>,
    cipher: Option<Cipher>,
}

impl SecretStore {
    /// A store over `table`. Without a cipher (no `PIKOCI_SECRET_KEY`), `plain` entries still
    /// work and `secret` entries are refused.
    pub fn new(table: Arc<dyn SecretTable>, cipher: Option<Cipher>) -> SecretStore {
        SecretStore { table, cipher }
    }

    fn cipher(&self) -> Result<&Cipher, SecretError> {
        self.cipher.as_ref().ok_or_else(|| {
            SecretError::new(
                ErrorKind::Unsupported,
                format!(
                    "secret storage is not configured: set {KEY_VARIABLE} to a random key of at least {MIN_KEY_LEN} characters"
                ),
            )
        })
    }

    /// The cipher of the master key, when one is configured: the server seals other things it
    /// keeps with it (the keys of worker tokens).
    pub fn master_cipher(&self) -> Option<&Cipher> {
        self.cipher.as_ref()
    }

    /// Whether `secret` entries can be stored and read (a key is configured).
    pub fn has_key(&self) -> bool {
        self.cipher.is_some()
    }

    /// Sets (creates or replaces) an entry; whether it was created. An existing entry keeps
    /// its kind: changing it is refused with `Conflict` (a `secret` made `plain` would show its
    /// value).
    pub async fn set(
        &self,
        scope: &Scope,
        name: &str,
        kind: SecretKind,
        value: &Secret,
    ) -> Result<bool, SecretError> {
        check_name(name)?;
        if value.expose().len() > MAX_VALUE_LEN {
            return Err(SecretError::new(
                ErrorKind::InvalidInput,
                format!("the value of \"{name}\" is over {MAX_VALUE_LEN} bytes"),
            ));
        }
        let value = match kind {
            SecretKind::Secret => {
                StoredValue::Sealed(self.cipher()?.seal(value, &context(scope, name))?)
            }
            SecretKind::Plain => StoredValue::Plain(value.expose().to_owned()),
        };
        let existing = self.table.get(scope, name).await?;
        if let Some(existing) = &existing {
            let existing = kind_of(&existing.value);
            if existing != kind {
                return Err(SecretError::new(
                    ErrorKind::Conflict,
                    format!(
                        "\"{name}\" is a {} entry and cannot become {}: delete it first, then set it again",
                        existing.as_str(),
                        kind.as_str()
                    ),
                ));
            }
        }
        self.table
            .put(StoredEntry {
                scope: scope.clone(),
                name: name.to_owned(),
                value,
            })
            .await?;
        Ok(existing.is_none())
    }

    /// The value of `name` for a pipeline: the pipeline's entry, else the team's.
    pub async fn lookup(
        &self,
        team: &str,
        pipeline: &str,
        name: &str,
    ) -> Result<Option<SecretValue>, SecretError> {
        for scope in [Scope::pipeline(team, pipeline), Scope::team(team)] {
            if let Some(entry) = self.table.get(&scope, name).await? {
                return self.open(&entry).map(Some);
            }
        }
        Ok(None)
    }

    /// The entries of one scope, by name, without secret values.
    pub async fn list(&self, scope: &Scope) -> Result<Vec<EntryInfo>, SecretError> {
        let mut entries: Vec<EntryInfo> = self
            .table
            .list(scope)
            .await?
            .into_iter()
            .map(|entry| match entry.value {
                StoredValue::Sealed(_) => EntryInfo {
                    name: entry.name,
                    kind: SecretKind::Secret,
                    plain_value: None,
                },
                StoredValue::Plain(value) => EntryInfo {
                    name: entry.name,
                    kind: SecretKind::Plain,
                    plain_value: Some(value),
                },
            })
            .collect();
        entries.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(entries)
    }

    /// The `secret` entries of pipeline `old` of `team`, each sealed again for the pipeline's
    /// new name `new` (the name is part of what a value is sealed to), for
    /// [`Store::rename_pipeline`](pikoci_core::store::Store::rename_pipeline). Without a key,
    /// a pipeline that has such entries cannot be renamed.
    pub async fn reseal_for_rename(
        &self,
        team: &str,
        old: &str,
        new: &str,
    ) -> Result<Vec<ResealedSecret>, SecretError> {
        let from = Scope::pipeline(team, old);
        let to = Scope::pipeline(team, new);
        let mut resealed = Vec::new();
        for entry in self.table.list(&from).await? {
            let StoredValue::Sealed(sealed) = entry.value else {
                continue;
            };
            let cipher = self.cipher().map_err(|err| {
                SecretError::new(
                    err.kind(),
                    format!(
                        "pipeline \"{old}\" has secret entries, sealed to its name, and they cannot be sealed to the new one: {err}"
                    ),
                )
            })?;
            let value = cipher.open(&sealed, &context(&from, &entry.name))?;
            let new = cipher.seal(&value, &context(&to, &entry.name))?;
            resealed.push(ResealedSecret {
                name: entry.name,
                old: sealed,
                new,
            });
        }
        Ok(resealed)
    }

    /// Deletes an entry; whether it existed.
    pub async fn delete(&self, scope: &Scope, name: &str) -> Result<bool, SecretError> {
        self.table.delete(scope, name).await
    }

    fn open(&self, entry: &StoredEntry) -> Result<SecretValue, SecretError> {
        match &entry.value {
            StoredValue::Plain(value) => Ok(SecretValue::plain(value.clone())),
            StoredValue::Sealed(sealed) => Ok(SecretValue {
                value: self
                    .cipher()?
                    .open(sealed, &context(&entry.scope, &entry.name))?,
                kind: SecretKind::Secret,
            }),
        }
    }
}

fn kind_of(value: &StoredValue) -> SecretKind {
    match value {
        StoredValue::Sealed(_) => SecretKind::Secret,
        StoredValue::Plain(_) => SecretKind::Plain,
    }
}

fn check_name(name: &str) -> Result<(), SecretError> {
    if name.trim().is_empty() || name.len() > MAX_NAME_LEN || name.chars().any(char::is_control) {
        return Err(SecretError::new(
            ErrorKind::InvalidInput,
            format!(
                "invalid secret name: use 1 to {MAX_NAME_LEN} characters without control characters"
            ),
        ));
    }
    // As the last segment of a URL (`…/secrets/{name}`), `.` and `..` would name another path.
    if name == "." || name == ".." {
        return Err(SecretError::new(
            ErrorKind::InvalidInput,
            format!("invalid secret name \"{name}\": `.` and `..` cannot be names"),
        ));
    }
    Ok(())
}

/// The store `pikoci` as a secret source for one pipeline: each key is an entry name (the
/// variable's `path` is not used). Entries that do not exist are left out of the answer.
#[derive(Debug, Clone)]
pub struct StoreSource {
    store: Arc<SecretStore>,
    team: String,
    pipeline: String,
}

impl StoreSource {
    /// Reads `store` for `pipeline` of `team` (canonical names).
    pub fn new(
        store: Arc<SecretStore>,
        team: impl Into<String>,
        pipeline: impl Into<String>,
    ) -> StoreSource {
        StoreSource {
            store,
            team: team.into(),
            pipeline: pipeline.into(),
        }
    }
}

#[async_trait::async_trait]
impl SecretSource for StoreSource {
    async fn fetch(&self, request: &SecretRequest) -> Result<SecretValues, SecretError> {
        let mut values = SecretValues::new();
        for key in &request.keys {
            if let Some(value) = self.store.lookup(&self.team, &self.pipeline, key).await? {
                values.insert(key.clone(), value);
            }
        }
        Ok(values)
    }
}

#[cfg(test)]
mod tests;
