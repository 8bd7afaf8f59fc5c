//! Secrets: the [`SecretSource`] port that secret types implement (in `pikoci-secrets`), the
//! [`Secret`] string that never shows itself, the [`SecretTable`] port of the built-in store, and the resolution of a pipeline's secret-bound
//! variables into the placeholder → value map the engine substitutes.
//!
//! Resolution happens once per build (and once per resource check): the variables that are
//! needed, plus every variable they depend on, are ordered into layers (a variable's `path`,
//! `key`, or its secret type's configuration may hold another variable's placeholder), each
//! layer is fetched with one request per (secret type, path), and resolved values are
//! substituted into the next layer. See `docs/secrets.md`.

mod graph;
mod resolve;
mod secret;
mod source;
mod table;
mod usage;

pub use graph::with_dependencies;
pub use resolve::{ResolveError, ResolveFailure, ResolvedSecrets, resolve};
pub use secret::{Secret, SecretKind, SecretValue, SecretValues};
pub use source::{SecretError, SecretRequest, SecretSource};
pub use table::{Scope, SecretTable, StoredEntry, StoredValue};
pub use usage::{substitute, used_by_job, used_by_resource};

/// The longest chain of secrets depending on secrets that is resolved.
pub const MAX_DEPTH: usize = 10;

#[cfg(test)]
mod tests;
