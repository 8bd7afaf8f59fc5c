//! Resolution: layer by layer, one fetch per (secret type, path), values substituted into the
//! next layer's paths, keys and secret type definitions.

use std::collections::BTreeMap;
use std::fmt;

use super::graph::{self, Node};
use super::{
    SecretError, SecretKind, SecretRequest, SecretSource, SecretValue, SecretValues, substitute,
};
use crate::ErrorKind;
use crate::engine::mask::Masker;
use crate::{Command, Pipeline, RunnerOverride, SecretType};

/// The resolved values, by placeholder.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResolvedSecrets {
    values: BTreeMap<String, SecretValue>,
}

impl ResolvedSecrets {
    /// Placeholder → value, the map the engine substitutes (`BuildSpec::secrets`).
    pub fn placeholders(&self) -> BTreeMap<String, String> {
        self.values
            .iter()
            .map(|(placeholder, value)| (placeholder.clone(), value.value.expose().to_owned()))
            .collect()
    }

    /// The values to mask in output: every value except `plain` store entries.
    pub fn masked_values(&self) -> Vec<String> {
        self.values
            .values()
            .filter(|v| v.kind == SecretKind::Secret)
            .map(|v| v.value.expose().to_owned())
            .collect()
    }

    /// Adds (or replaces) the value standing for `placeholder`.
    pub fn insert(&mut self, placeholder: impl Into<String>, value: SecretValue) {
        self.values.insert(placeholder.into(), value);
    }

    /// The value standing for `placeholder`.
    pub fn get(&self, placeholder: &str) -> Option<&SecretValue> {
        self.values.get(placeholder)
    }

    /// How many placeholders are resolved.
    pub fn len(&self) -> usize {
        self.values.len()
    }

    /// Whether nothing was resolved.
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }
}

/// Why resolution failed: one entry per variable that could not be resolved (or one entry
/// without a variable for a problem of the dependency graph).
#[derive(Debug, Clone)]
pub struct ResolveError {
    /// The failures, in declaration order of their variables.
    pub failures: Vec<ResolveFailure>,
}

/// One failure.
#[derive(Debug, Clone)]
pub struct ResolveFailure {
    /// The variable that has no value, if the failure is about one.
    pub variable: Option<String>,
    /// Why (already masked).
    pub error: SecretError,
}

impl fmt::Display for ResolveFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.variable {
            Some(variable) => write!(f, "secret for variable \"{variable}\": {}", self.error),
            None => write!(f, "{}", self.error),
        }
    }
}

impl fmt::Display for ResolveError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, failure) in self.failures.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{failure}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ResolveError {}

impl From<SecretError> for ResolveError {
    fn from(error: SecretError) -> ResolveError {
        ResolveError {
            failures: vec![ResolveFailure {
                variable: None,
                error,
            }],
        }
    }
}

/// Resolves the secret-bound variables named in `wanted` (names of other variables are
/// ignored) and every secret-bound variable they depend on, fetching through `source`.
///
/// Fetches of one layer run concurrently. A layer with failures stops the resolution: every
/// failure of that layer is reported.
pub async fn resolve<'a>(
    pipeline: &Pipeline,
    wanted: impl IntoIterator<Item = &'a str>,
    source: &dyn SecretSource,
) -> Result<ResolvedSecrets, ResolveError> {
    let nodes = graph::nodes(pipeline);
    let selected = graph::closure(&nodes, wanted);
    let layers = graph::layers(&nodes, &selected)?;
    let mut resolved = ResolvedSecrets::default();
    // The same values, exposed, for substitution.
    let mut exposed: BTreeMap<String, String> = BTreeMap::new();
    for layer in layers {
        let groups = group(pipeline, &nodes, &layer, &exposed);
        let fetches = groups.iter().map(|group| source.fetch(&group.request));
        let results = futures::future::join_all(fetches).await;
        let mut failures = Vec::new();
        let masker = Masker::new(exposed.values().cloned());
        for (group, result) in groups.iter().zip(results) {
            for (node, key) in &group.members {
                let node = &nodes[*node];
                match pick(&group.request, key, &result) {
                    Ok(value) => {
                        exposed.insert(node.placeholder.clone(), value.value.expose().to_owned());
                        resolved.values.insert(node.placeholder.clone(), value);
                    }
                    Err(error) => failures.push(ResolveFailure {
                        variable: Some(node.name.clone()),
                        error: SecretError::new(error.kind(), masker.mask(&error.full_message())),
                    }),
                }
            }
        }
        if !failures.is_empty() {
            failures.sort_by_key(|f| {
                nodes
                    .iter()
                    .position(|n| Some(&n.name) == f.variable.as_ref())
            });
            return Err(ResolveError { failures });
        }
    }
    Ok(resolved)
}

/// The variables of one layer that share a (type, path), and the one request serving them.
struct Group {
    request: SecretRequest,
    /// Node index and key (placeholders substituted) of each variable served.
    members: Vec<(usize, String)>,
}

fn group(
    pipeline: &Pipeline,
    nodes: &[Node],
    layer: &[usize],
    exposed: &BTreeMap<String, String>,
) -> Vec<Group> {
    let mut groups: BTreeMap<(String, String), Group> = BTreeMap::new();
    for &index in layer {
        let secret = &nodes[index].secret;
        let path = substitute(&secret.path, exposed);
        let key = substitute(&secret.key, exposed);
        let group = groups
            .entry((secret.secret_type.clone(), path.clone()))
            .or_insert_with(|| Group {
                request: SecretRequest {
                    secret_type: secret.secret_type.clone(),
                    definition: pipeline
                        .secret_type(&secret.secret_type)
                        .map(|d| substitute_definition(d, exposed)),
                    path,
                    keys: Vec::new(),
                },
                members: Vec::new(),
            });
        if !group.request.keys.contains(&key) {
            group.request.keys.push(key.clone());
            group.request.keys.sort();
        }
        group.members.push((index, key));
    }
    groups.into_values().collect()
}

/// The value of `key` in a fetch result, or the error that says why there is none.
fn pick(
    request: &SecretRequest,
    key: &str,
    result: &Result<SecretValues, SecretError>,
) -> Result<SecretValue, SecretError> {
    match result {
        Ok(values) => values.get(key).cloned().ok_or_else(|| {
            SecretError::new(
                ErrorKind::NotFound,
                format!("key \"{key}\" not found in response"),
            )
        }),
        Err(error) => Err(SecretError::new(
            error.kind(),
            format!(
                "failed to fetch secret from \"{}\" at \"{}\": {}",
                request.secret_type,
                request.path,
                error.full_message()
            ),
        )),
    }
}

/// A secret type with placeholders replaced in its configuration, command and runner override.
fn substitute_definition(definition: &SecretType, values: &BTreeMap<String, String>) -> SecretType {
    let params = |params: &crate::Params| {
        params
            .iter()
            .map(|(k, v)| (k.clone(), substitute(v, values)))
            .collect()
    };
    let args = |args: &[String]| args.iter().map(|a| substitute(a, values)).collect();
    SecretType {
        config: params(&definition.config),
        get: definition.get.as_ref().map(|get| Command {
            runner: get.runner.clone(),
            args: args(&get.args),
            params: params(&get.params),
        }),
        runner_override: definition
            .runner_override
            .as_ref()
            .map(|runner| RunnerOverride {
                runner: runner.runner.clone(),
                args: args(&runner.args),
                params: params(&runner.params),
            }),
        ..definition.clone()
    }
}
