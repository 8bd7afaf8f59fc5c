//! From a pipeline to the secret values one piece of work needs: the one path shared by
//! `pikoci run` and the worker.
//!
//! Only the secret-bound variables the work uses are looked up (a job's steps, hooks, resources
//! and types; a check's resource and its type), through the secret types this machine can reach
//! itself: `vault`, `file`, `env`, and types with a `get` command (run with the given
//! [`Runner`], in a work directory of their own that is removed afterwards). The built-in store
//! `pikoci` is on the server: a worker reads the values the server sealed to it
//! ([`SecretLookup::with_store`]); without them (`pikoci run`) a variable bound to it fails with
//! a message saying so.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use pikoci_core::engine::Runner;
use pikoci_core::secrets::{ResolveError, ResolveFailure, ResolvedSecrets, SecretSource};
use pikoci_core::{Pipeline, VariableValue};
use pikoci_secrets::{ExecSource, Registry};
use tokio_util::sync::CancellationToken;

/// How secrets are looked up on this machine: the runner for secret types' `get` commands, the
/// directory their work directories go in, and what stops a lookup.
#[derive(Debug, Clone)]
pub struct SecretLookup {
    runner: Arc<dyn Runner>,
    work_root: PathBuf,
    cancel: CancellationToken,
    store: Option<Arc<dyn SecretSource>>,
}

impl SecretLookup {
    /// Runs `get` commands with `runner`, in a fresh directory under `work_root`.
    pub fn new(runner: Arc<dyn Runner>, work_root: impl Into<PathBuf>) -> SecretLookup {
        SecretLookup {
            runner,
            work_root: work_root.into(),
            cancel: CancellationToken::new(),
            store: None,
        }
    }

    /// Answers `secret "pikoci"` from `store` (on a worker, the values the server sealed to
    /// it).
    pub fn with_store(mut self, store: Arc<dyn SecretSource>) -> SecretLookup {
        self.store = Some(store);
        self
    }

    /// Kills running `get` commands when `cancel` fires (the lookup then fails).
    pub fn with_cancel(mut self, cancel: CancellationToken) -> SecretLookup {
        self.cancel = cancel;
        self
    }
}

/// Why the secrets of a job or a check could not be looked up: one line per variable that has
/// no value, naming its secret type and key. Never holds a secret value (failures come masked).
#[derive(Debug, Clone)]
pub struct SecretLookupError {
    /// `job "deploy"` or `resource "git.app"`.
    subject: String,
    /// What the reader can do, shown after the subject.
    hint: Option<String>,
    /// One line per failure, indented.
    lines: Vec<String>,
}

impl SecretLookupError {
    /// The same error, saying what the reader can do about it (`pikoci run` tells about
    /// `--var`).
    pub fn with_hint(mut self, hint: impl Into<String>) -> SecretLookupError {
        self.hint = Some(hint.into());
        self
    }

    /// One line per failure (`from_vault (secret "vault", key "password"): ...`).
    pub fn failures(&self) -> impl Iterator<Item = &str> {
        self.lines.iter().map(|line| line.trim_start())
    }
}

impl fmt::Display for SecretLookupError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "cannot look up the secrets {} uses", self.subject)?;
        if let Some(hint) = &self.hint {
            write!(f, "; {hint}")?;
        }
        write!(f, ":\n{}", self.lines.join("\n"))
    }
}

impl std::error::Error for SecretLookupError {}

/// Resolves the secret-bound variables job `job` of `pipeline` uses (a variable given a value
/// is no longer secret-bound, so nothing is looked up for it). Returns what the engine
/// substitutes and masks.
pub async fn resolve_for_job(
    pipeline: &Pipeline,
    job: &str,
    lookup: &SecretLookup,
) -> Result<ResolvedSecrets, SecretLookupError> {
    let used = pikoci_core::secrets::used_by_job(pipeline, job);
    resolve_used(pipeline, &used, lookup)
        .await
        .map_err(|error| describe(pipeline, format!("job \"{job}\""), &error))
}

/// Resolves the secret-bound variables a check of `resource` (`type.name`) uses: its
/// parameters, its type and the runner types. Nothing for a resource the pipeline does not
/// have (the check itself says it is missing).
pub async fn resolve_for_check(
    pipeline: &Pipeline,
    resource: &str,
    lookup: &SecretLookup,
) -> Result<ResolvedSecrets, SecretLookupError> {
    let Some(reference) = pipeline
        .resources
        .iter()
        .find(|r| r.canonical() == resource)
        .map(|r| r.reference())
    else {
        return Ok(ResolvedSecrets::default());
    };
    let used = pikoci_core::secrets::used_by_resource(pipeline, &reference);
    resolve_used(pipeline, &used, lookup)
        .await
        .map_err(|error| describe(pipeline, format!("resource \"{resource}\""), &error))
}

async fn resolve_used(
    pipeline: &Pipeline,
    used: &[String],
    lookup: &SecretLookup,
) -> Result<ResolvedSecrets, ResolveError> {
    if used.is_empty() {
        return Ok(ResolvedSecrets::default());
    }
    let workdir = ScratchDir::new(&lookup.work_root);
    let mut registry = Registry::builtins().with_exec(
        ExecSource::new(
            lookup.runner.clone(),
            pipeline.runner_types.clone(),
            workdir.path(),
        )
        .with_cancel(lookup.cancel.clone()),
    );
    if let Some(store) = &lookup.store {
        registry = registry.with_store(store.clone());
    }
    pikoci_core::secrets::resolve(pipeline, used.iter().map(String::as_str), &registry).await
}

/// The error naming each failing variable with its secret type and key.
fn describe(pipeline: &Pipeline, subject: String, error: &ResolveError) -> SecretLookupError {
    let line = |failure: &ResolveFailure| {
        let binding = failure.variable.as_ref().and_then(|name| {
            pipeline
                .variables
                .iter()
                .find(|v| &v.name == name)
                .and_then(|v| match &v.value {
                    VariableValue::Secret(secret) => Some(format!(
                        "{name} (secret \"{}\", key \"{}\")",
                        secret.secret_type, secret.key
                    )),
                    _ => None,
                })
        });
        match binding {
            Some(binding) => format!("  {binding}: {}", failure.error),
            None => format!("  {}", failure.error),
        }
    };
    SecretLookupError {
        subject,
        hint: None,
        lines: error.failures.iter().map(line).collect(),
    }
}

/// A work directory for `get` commands, removed when dropped (also when the lookup is
/// abandoned half-way).
struct ScratchDir(PathBuf);

impl ScratchDir {
    fn new(root: &Path) -> ScratchDir {
        ScratchDir(root.join(format!("secrets-{}", uuid::Uuid::now_v7().simple())))
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        // Absent when no `get` command ran: nothing to remove.
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use pikoci_core::ErrorKind;
    use pikoci_core::secrets::SecretError;

    #[test]
    fn the_message_names_each_variable_its_secret_type_and_key() {
        let error = SecretLookupError {
            subject: "job \"deploy\"".to_owned(),
            hint: None,
            lines: vec![
                "  token (secret \"vault\", key \"t\"): unreachable".to_owned(),
                "  a cycle".to_owned(),
            ],
        };
        assert_eq!(
            error.to_string(),
            "cannot look up the secrets job \"deploy\" uses:\n  token (secret \"vault\", key \"t\"): unreachable\n  a cycle"
        );
        assert_eq!(
            error
                .clone()
                .with_hint("give --var")
                .to_string()
                .lines()
                .next(),
            Some("cannot look up the secrets job \"deploy\" uses; give --var:")
        );
        assert_eq!(
            error.failures().collect::<Vec<_>>(),
            [
                "token (secret \"vault\", key \"t\"): unreachable",
                "a cycle"
            ]
        );
        let resolve = ResolveError::from(SecretError::new(ErrorKind::Internal, "a cycle"));
        let described = describe(&Pipeline::default(), "x".to_owned(), &resolve);
        assert_eq!(described.failures().collect::<Vec<_>>(), ["a cycle"]);
    }
}
