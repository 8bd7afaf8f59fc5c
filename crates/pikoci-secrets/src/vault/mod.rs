//! The builtin `vault` secret type over the Vault / OpenBao HTTP API (no `vault` CLI, no `jq`):
//! KV version 1 and 2 (asked of the mount, or guessed from the answer), token and AppRole
//! authentication, namespaces.

mod client;

use std::time::Duration;

use pikoci_core::ErrorKind;
use pikoci_core::secrets::{
    Secret, SecretError, SecretRequest, SecretSource, SecretValue, SecretValues,
};
use pikoci_http::Roots;
use serde_json::Value;

use crate::local::{EnvLookup, process_env};
use client::Client;

/// How long one HTTP request to Vault may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

/// Reads secrets from Vault or OpenBao. Configuration comes from the secret type's attributes
/// (`address`, `token`, `auth_method`, `role_id`, `secret_id`, `mount`, `kv_version`,
/// `namespace`), with `VAULT_ADDR` and `VAULT_TOKEN` of the worker as defaults.
#[derive(Clone)]
pub struct VaultSource {
    env: EnvLookup,
    timeout: Duration,
}

impl std::fmt::Debug for VaultSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("VaultSource")
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl Default for VaultSource {
    fn default() -> VaultSource {
        VaultSource::new(process_env())
    }
}

impl VaultSource {
    /// A source taking `VAULT_ADDR` and `VAULT_TOKEN` defaults from `env`.
    pub fn new(env: EnvLookup) -> VaultSource {
        VaultSource {
            env,
            timeout: REQUEST_TIMEOUT,
        }
    }
}

/// How to authenticate.
enum Auth {
    Token(Secret),
    AppRole { role_id: Secret, secret_id: Secret },
}

/// The settings of one fetch.
struct Settings {
    address: String,
    auth: Auth,
    mount: Option<String>,
    kv_version: Option<u8>,
    namespace: Option<String>,
}

impl VaultSource {
    fn settings(&self, request: &SecretRequest) -> Result<Settings, SecretError> {
        let name = &request.secret_type;
        let config = |key: &str| {
            request
                .config(key)
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .map(str::to_owned)
        };
        let env = |key: &str| (self.env)(key).filter(|v| !v.trim().is_empty());
        let missing = |what: &str| {
            SecretError::new(
                ErrorKind::InvalidInput,
                format!("secret type \"{name}\" needs {what}"),
            )
        };
        let address = config("address")
            .or_else(|| env("VAULT_ADDR"))
            .ok_or_else(|| {
                missing("an address: set address, or the VAULT_ADDR environment variable")
            })?;
        let auth = match config("auth_method").as_deref().unwrap_or("token") {
            "token" => Auth::Token(Secret::new(
                config("token")
                    .or_else(|| env("VAULT_TOKEN"))
                    .ok_or_else(|| {
                        missing("a token: set token, or the VAULT_TOKEN environment variable")
                    })?,
            )),
            "approle" => Auth::AppRole {
                role_id: Secret::new(
                    config("role_id")
                        .ok_or_else(|| missing("role_id for auth_method \"approle\""))?,
                ),
                secret_id: Secret::new(
                    config("secret_id")
                        .ok_or_else(|| missing("secret_id for auth_method \"approle\""))?,
                ),
            },
            other => {
                return Err(SecretError::new(
                    ErrorKind::InvalidInput,
                    format!(
                        "secret type \"{name}\": unknown auth_method \"{other}\", use \"token\" or \"approle\""
                    ),
                ));
            }
        };
        let kv_version = match config("kv_version").as_deref().unwrap_or("auto") {
            "auto" => None,
            "1" => Some(1),
            "2" => Some(2),
            other => {
                return Err(SecretError::new(
                    ErrorKind::InvalidInput,
                    format!(
                        "secret type \"{name}\": unknown kv_version \"{other}\", use \"1\", \"2\" or \"auto\""
                    ),
                ));
            }
        };
        Ok(Settings {
            address,
            auth,
            mount: config("mount").map(|m| m.trim_matches('/').to_owned()),
            kv_version,
            namespace: config("namespace"),
        })
    }
}

#[async_trait::async_trait]
impl SecretSource for VaultSource {
    async fn fetch(&self, request: &SecretRequest) -> Result<SecretValues, SecretError> {
        let settings = self.settings(request)?;
        let path = request.path.trim().trim_matches('/').to_owned();
        if path.is_empty() {
            return Err(SecretError::new(
                ErrorKind::InvalidInput,
                "the variable's secret block needs a path, such as \"secret/data/ci/db\"",
            ));
        }
        read(&settings, &path, self.timeout).await
    }
}

/// Logs in if needed, finds the mount and its KV version, reads the secret.
/// Dropping the future cancels the request in flight.
async fn read(
    settings: &Settings,
    path: &str,
    timeout: Duration,
) -> Result<SecretValues, SecretError> {
    Roots::System
        .load()
        .await
        .map_err(|err| client::unprepared(&settings.address, err))?;
    let mut client = Client::new(&settings.address, settings.namespace.clone(), timeout)?;
    let token = match &settings.auth {
        Auth::Token(token) => token.clone(),
        Auth::AppRole { role_id, secret_id } => login(&client, role_id, secret_id).await?,
    };
    client.set_token(token);
    let (mount, rest) = split(settings.mount.as_deref(), path);
    let full = if rest.is_empty() {
        mount.clone()
    } else {
        format!("{mount}/{rest}")
    };
    let (mount, rest, version) = match settings.kv_version {
        Some(version) => (mount, rest, Some(version)),
        // Vault knows the mount (which may hold slashes) and its version.
        None => match detect(&client, &full).await {
            Some((detected, version)) => match full.strip_prefix(detected.as_str()) {
                Some(inside) if inside.is_empty() || inside.starts_with('/') => (
                    detected,
                    inside.trim_start_matches('/').to_owned(),
                    Some(version),
                ),
                _ => (mount, rest, Some(version)),
            },
            None => (mount, rest, None),
        },
    };
    values(kv_read(&client, &mount, &rest, version).await?)
}

/// AppRole login: the token it gives.
async fn login(
    client: &Client,
    role_id: &Secret,
    secret_id: &Secret,
) -> Result<Secret, SecretError> {
    let body = serde_json::json!({
        "role_id": role_id.expose(),
        "secret_id": secret_id.expose(),
    });
    let answer = client.post("auth/approle/login", &body).await?;
    if answer.status != 200 {
        let errors = answer.errors();
        return Err(SecretError::new(
            ErrorKind::PermissionDenied,
            format!(
                "AppRole login failed (HTTP {}{}{}): check role_id and secret_id",
                answer.status,
                if errors.is_empty() { "" } else { ": " },
                errors
            ),
        ));
    }
    answer
        .body
        .pointer("/auth/client_token")
        .and_then(Value::as_str)
        .map(Secret::from)
        .ok_or_else(|| {
            SecretError::new(
                ErrorKind::Internal,
                "AppRole login answered without a client token",
            )
        })
}

/// The mount and the path inside it: the configured mount, else the first path segment.
fn split(mount: Option<&str>, path: &str) -> (String, String) {
    match mount {
        Some(mount) => {
            let rest = path
                .strip_prefix(mount)
                .filter(|r| r.is_empty() || r.starts_with('/'))
                .unwrap_or(path);
            (mount.to_owned(), rest.trim_start_matches('/').to_owned())
        }
        None => match path.split_once('/') {
            Some((mount, rest)) => (mount.to_owned(), rest.to_owned()),
            None => (path.to_owned(), String::new()),
        },
    }
}

/// Asks Vault which mount holds `path` and its KV version (`None` when the token may not ask).
async fn detect(client: &Client, path: &str) -> Option<(String, u8)> {
    let answer = client
        .get(&format!("sys/internal/ui/mounts/{path}"))
        .await
        .ok()?;
    if answer.status != 200 {
        return None;
    }
    let data = answer.body.get("data")?;
    let mount = data.get("path")?.as_str()?.trim_matches('/').to_owned();
    let version = match data.pointer("/options/version").and_then(Value::as_str) {
        Some("2") => 2,
        _ => 1,
    };
    Some((mount, version))
}

/// Reads a KV secret; with an unknown version, tries version 2 then 1, and takes `.data.data`
/// or `.data` by the shape of the answer.
async fn kv_read(
    client: &Client,
    mount: &str,
    rest: &str,
    version: Option<u8>,
) -> Result<serde_json::Map<String, Value>, SecretError> {
    let shown = if rest.is_empty() {
        mount.to_owned()
    } else {
        format!("{mount}/{rest}")
    };
    let v2_path = match rest.strip_prefix("data/") {
        Some(_) => format!("{mount}/{rest}"),
        None => format!("{mount}/data/{rest}"),
    };
    let answer = match version {
        Some(2) => client.get(&v2_path).await?,
        Some(_) => client.get(&shown).await?,
        None => {
            let answer = client.get(&v2_path).await?;
            if (answer.status == 404 || answer.status == 403) && !rest.starts_with("data/") {
                client.get(&shown).await?
            } else {
                answer
            }
        }
    };
    if answer.status != 200 {
        return Err(answer.failure(&shown));
    }
    let data = answer.body.get("data");
    let is_v2 = match version {
        Some(v) => v == 2,
        None => data.is_some_and(|d| d.get("metadata").is_some() && d.get("data").is_some()),
    };
    let data = if is_v2 {
        data.and_then(|d| d.get("data"))
    } else {
        data
    };
    match data {
        Some(Value::Object(map)) => Ok(map.clone()),
        // KV v2 answers `data: null` for a deleted version.
        _ => Err(SecretError::new(
            ErrorKind::NotFound,
            format!("no secret data at {shown} (deleted, or not a KV secret)"),
        )),
    }
}

/// Vault's fields as strings: text as is, numbers and booleans as their text, anything
/// else as compact JSON.
fn values(map: serde_json::Map<String, Value>) -> Result<SecretValues, SecretError> {
    Ok(map
        .into_iter()
        .filter(|(_, v)| !v.is_null())
        .map(|(key, value)| {
            let text = match value {
                Value::String(text) => text,
                other => other.to_string(),
            };
            (key, SecretValue::secret(text))
        })
        .collect())
}

#[cfg(test)]
mod tests;
