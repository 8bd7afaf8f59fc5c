//! Resource checks the engine can do itself instead of running the type's `check` command
//! (the builtin `git` type's provider APIs, for example: no `curl` or `jq` needed on the
//! worker).

use std::collections::BTreeMap;

use crate::{Resource, ResourceType};

/// What a check needs to know. `Debug` shows the names of the parameters, not their values.
#[derive(Clone)]
pub struct CheckRequest<'a> {
    /// The resource.
    pub resource: &'a Resource,
    /// Its type.
    pub resource_type: &'a ResourceType,
    /// The parameters the type accepts, as `param_<key>` (secrets substituted).
    pub params: &'a BTreeMap<String, String>,
    /// The newest version known so far (`None` on the first check).
    pub newest: Option<&'a serde_json::Value>,
}

crate::error::port_error!(
    /// Why a native check failed: a kind, a message naming the resource's provider or param, and
    /// an optional source. The message never holds the resource's secrets.
    NativeCheckError
);

impl std::fmt::Debug for CheckRequest<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CheckRequest")
            .field("resource", &self.resource.canonical())
            .field("resource_type", &self.resource_type.name)
            .field("params", &self.params.keys().collect::<Vec<_>>())
            .field("newest", &self.newest)
            .finish()
    }
}

/// Checks some resources natively.
#[async_trait::async_trait]
pub trait NativeChecks: Send + Sync + std::fmt::Debug {
    /// `None` when this resource is not handled natively (its `check` command runs instead);
    /// otherwise the versions found, oldest first, or why the check failed.
    async fn check(
        &self,
        request: CheckRequest<'_>,
    ) -> Option<Result<Vec<serde_json::Value>, NativeCheckError>>;
}
