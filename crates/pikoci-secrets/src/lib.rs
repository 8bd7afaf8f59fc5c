//! The [`SecretSource`](pikoci_core::secrets::SecretSource) implementations: secret types with
//! a `get` command ([`ExecSource`]), the builtins `vault` ([`VaultSource`], over the Vault HTTP
//! API), `file` and `env`, the built-in store `pikoci` ([`SecretStore`], encrypted at rest), and
//! the [`Registry`] that picks one per secret type.
//!
//! Resolution itself (dependencies between secrets, grouping, errors) is
//! [`pikoci_core::secrets::resolve`]; give it a [`Registry`].

#![cfg_attr(not(test), warn(unused_crate_dependencies))]

mod exec;
pub mod format;
mod local;
mod registry;
pub mod sealed;
mod store;
mod vault;

pub use exec::{DEFAULT_TIMEOUT, ExecSource, MAX_OUTPUT};
pub use local::{EnvLookup, EnvSource, FileSource, process_env};
pub use pikoci_core::secrets::{Scope, SecretTable, StoredEntry, StoredValue};
pub use registry::{Registry, STORE, store_keys};
pub use store::{
    Cipher, EntryInfo, KEY_VARIABLE, MAX_VALUE_LEN, MIN_KEY_LEN, MemoryTable, SecretStore,
    StoreSource,
};
pub use vault::VaultSource;
