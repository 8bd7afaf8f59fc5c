//! Picks the implementation of each secret type (decision D11): a declared block with a `get`
//! command runs it; otherwise the builtin named by the block's `source = "pikoci://<name>"` or
//! by its name (`vault`, `file`, `env`); the store `pikoci` needs no block.

use std::sync::Arc;

use pikoci_core::ErrorKind;
use pikoci_core::secrets::{
    SecretError, SecretRequest, SecretSource, SecretValues, with_dependencies,
};
use pikoci_core::{Origin, Pipeline, SecretRef, SecretType, VariableValue};

use crate::{EnvSource, ExecSource, FileSource, VaultSource};

/// The name of the built-in store.
pub const STORE: &str = "pikoci";

/// Every implementation, dispatching each request to the one its secret type uses.
#[derive(Debug, Clone)]
pub struct Registry {
    exec: Option<ExecSource>,
    vault: VaultSource,
    file: FileSource,
    env: EnvSource,
    store: Option<Arc<dyn SecretSource>>,
}

impl Registry {
    /// The builtins, reading this process's environment and working directory. Secret types
    /// with a `get` command need [`Registry::with_exec`]; `secret "pikoci"` needs
    /// [`Registry::with_store`] (without it, the error says the store is on the server).
    pub fn builtins() -> Registry {
        Registry {
            exec: None,
            vault: VaultSource::default(),
            file: FileSource::new(),
            env: EnvSource::default(),
            store: None,
        }
    }

    /// Runs secret types' `get` commands with `exec`.
    pub fn with_exec(mut self, exec: ExecSource) -> Registry {
        self.exec = Some(exec);
        self
    }

    /// Serves `secret "pikoci"` from `store`: a [`crate::StoreSource`] for the build's pipeline
    /// on the server, the [`crate::sealed::StoreValues`] the server sealed to a worker there.
    pub fn with_store(mut self, store: Arc<dyn SecretSource>) -> Registry {
        self.store = Some(store);
        self
    }

    /// Uses `vault` for the builtin `vault` type.
    pub fn with_vault(mut self, vault: VaultSource) -> Registry {
        self.vault = vault;
        self
    }

    /// Uses `file` for the builtin `file` type.
    pub fn with_file(mut self, file: FileSource) -> Registry {
        self.file = file;
        self
    }

    /// Uses `env` for the builtin `env` type.
    pub fn with_env(mut self, env: EnvSource) -> Registry {
        self.env = env;
        self
    }

    /// The implementation serving `secret_type` with this `definition`.
    fn pick(
        &self,
        secret_type: &str,
        definition: Option<&SecretType>,
    ) -> Result<&dyn SecretSource, SecretError> {
        match builtin_name(secret_type, definition) {
            Some(builtin) => self.builtin(secret_type, builtin),
            None => match &self.exec {
                Some(exec) => Ok(exec),
                None => Err(SecretError::new(
                    ErrorKind::Unsupported,
                    format!(
                        "secret type \"{secret_type}\" has a get command, and nothing here can run commands"
                    ),
                )),
            },
        }
    }

    fn builtin(&self, secret_type: &str, builtin: &str) -> Result<&dyn SecretSource, SecretError> {
        match builtin {
            "vault" => Ok(&self.vault),
            "file" => Ok(&self.file),
            "env" => Ok(&self.env),
            STORE => self.store.as_deref().ok_or_else(|| {
                SecretError::new(
                    ErrorKind::Unsupported,
                    "the built-in store \"pikoci\" is on the server: its values reach only builds and checks the server runs",
                )
            }),
            _ => Err(SecretError::new(
                ErrorKind::Unsupported,
                format!(
                    "secret type \"{secret_type}\" has no get command and is not a builtin (vault, file, env, pikoci)"
                ),
            )),
        }
    }
}

/// The builtin serving `secret_type` (`vault`, `file`, `env`, [`STORE`], or an unknown name),
/// or `None` when its definition has a `get` command.
fn builtin_name<'a>(secret_type: &'a str, definition: Option<&'a SecretType>) -> Option<&'a str> {
    let Some(definition) = definition else {
        return Some(secret_type);
    };
    if definition.get.is_some() {
        return None;
    }
    Some(match &definition.origin {
        Origin::Source { url } => url.strip_prefix("pikoci://").unwrap_or(secret_type),
        Origin::Inline | Origin::Builtin => secret_type,
    })
}

/// The entries of the store that resolving `variables` of `pipeline` reads (with every
/// variable they depend on): the keys of the variables bound to [`STORE`], sorted. A key that
/// holds another secret's placeholder is left out: it is known only once that secret is
/// resolved, on the worker.
pub fn store_keys(pipeline: &Pipeline, variables: &[String]) -> Vec<String> {
    let mut keys: Vec<String> = with_dependencies(pipeline, variables.iter().map(String::as_str))
        .iter()
        .filter_map(|name| pipeline.variables.iter().find(|v| &v.name == name))
        .filter_map(|variable| match &variable.value {
            VariableValue::Secret(secret) => Some(secret),
            _ => None,
        })
        .filter(|secret| {
            builtin_name(
                &secret.secret_type,
                pipeline.secret_type(&secret.secret_type),
            ) == Some(STORE)
                && !secret.key.contains(SecretRef::PLACEHOLDER_PREFIX)
        })
        .map(|secret| secret.key.clone())
        .collect();
    keys.sort();
    keys.dedup();
    keys
}

#[async_trait::async_trait]
impl SecretSource for Registry {
    async fn fetch(&self, request: &SecretRequest) -> Result<SecretValues, SecretError> {
        self.pick(&request.secret_type, request.definition.as_ref())?
            .fetch(request)
            .await
    }
}
