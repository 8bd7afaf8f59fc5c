//! A small async client for the Vault HTTP API: dropping a request's future cancels it.

use std::time::Duration;

use pikoci_core::ErrorKind;
use pikoci_core::secrets::{Secret, SecretError};
use pikoci_http::reqwest;
use pikoci_http::{
    BodyError, ClientConfig, ClientError, describe, error_kind, read_capped, secret_header,
};
use serde_json::Value;

/// The largest answer read (a KV secret is far smaller).
const MAX_ANSWER: u64 = 10 * 1024 * 1024;

/// An answer of the API: its status and JSON body (`Null` when the body is empty). `Debug`
/// shows the status only: the body holds secret data and tokens.
pub(super) struct Answer {
    pub(super) status: u16,
    pub(super) body: Value,
}

impl std::fmt::Debug for Answer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Answer")
            .field("status", &self.status)
            .finish_non_exhaustive()
    }
}

impl Answer {
    /// The `errors` Vault lists in a failed answer, joined.
    pub(super) fn errors(&self) -> String {
        let listed: Vec<String> = self
            .body
            .get("errors")
            .and_then(Value::as_array)
            .map(|errors| {
                errors
                    .iter()
                    .filter_map(Value::as_str)
                    .map(|e| e.trim().replace("\n\t", " ").replace('\n', " "))
                    .filter(|e| !e.is_empty())
                    .collect()
            })
            .unwrap_or_default();
        listed.join("; ")
    }

    /// The error for a failed answer to a request about `what`.
    pub(super) fn failure(&self, what: &str) -> SecretError {
        let errors = self.errors();
        let detail = if errors.is_empty() {
            format!("HTTP {}", self.status)
        } else {
            format!("HTTP {}: {errors}", self.status)
        };
        match self.status {
            404 => SecretError::new(
                ErrorKind::NotFound,
                format!("no secret at {what} ({detail})"),
            ),
            401 | 403 => SecretError::new(
                ErrorKind::PermissionDenied,
                format!(
                    "Vault refused to read {what} ({detail}): check the token (or AppRole) and that its policy allows reading this path"
                ),
            ),
            _ => SecretError::new(
                ErrorKind::Internal,
                format!("Vault failed to read {what} ({detail})"),
            ),
        }
    }
}

/// A connection to one Vault server.
pub(super) struct Client {
    http: reqwest::Client,
    address: String,
    token: Option<Secret>,
    namespace: Option<String>,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("address", &self.address)
            .field("namespace", &self.namespace)
            .finish_non_exhaustive()
    }
}

/// The error of a client for Vault at `address` that could not be configured.
pub(super) fn unprepared(address: &str, err: ClientError) -> SecretError {
    SecretError::new(
        ErrorKind::Internal,
        format!("cannot prepare requests to Vault at {address}"),
    )
    .with_source(err)
}

impl Client {
    /// A client for the server at `address`; redirects are followed on that server only,
    /// since every request carries the token.
    pub(super) fn new(
        address: &str,
        namespace: Option<String>,
        timeout: Duration,
    ) -> Result<Client, SecretError> {
        let http = ClientConfig::new(timeout)
            .build()
            .map_err(|err| unprepared(address, err))?;
        Ok(Client {
            http,
            address: address.trim_end_matches('/').to_owned(),
            token: None,
            namespace,
        })
    }

    /// Sends the token with every later request.
    pub(super) fn set_token(&mut self, token: Secret) {
        self.token = Some(token);
    }

    /// `GET /v1/<path>`.
    pub(super) async fn get(&self, path: &str) -> Result<Answer, SecretError> {
        let request = self.http.get(self.url(path));
        let request = match &self.token {
            Some(token) => {
                let value = secret_header(token.expose()).map_err(|_| {
                    SecretError::new(
                        ErrorKind::InvalidInput,
                        format!(
                            "the Vault token for {} holds characters not allowed in an HTTP \
                             header (such as a line break); check how the token is set",
                            self.address
                        ),
                    )
                })?;
                request.header("X-Vault-Token", value)
            }
            None => request,
        };
        self.answer(self.with_namespace(request)).await
    }

    /// `POST /v1/<path>` with a JSON body.
    pub(super) async fn post(&self, path: &str, body: &Value) -> Result<Answer, SecretError> {
        let request = self
            .http
            .post(self.url(path))
            .header("Content-Type", "application/json")
            .body(body.to_string());
        self.answer(self.with_namespace(request)).await
    }

    fn with_namespace(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.namespace {
            Some(namespace) => request.header("X-Vault-Namespace", namespace),
            None => request,
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}/v1/{}", self.address, path.trim_start_matches('/'))
    }

    async fn answer(&self, request: reqwest::RequestBuilder) -> Result<Answer, SecretError> {
        let response = request.send().await.map_err(|err| {
            let address = &self.address;
            let kind = error_kind(&err);
            let message = match kind {
                ErrorKind::Timeout => format!("Vault at {address} did not answer in time"),
                _ => format!("cannot reach Vault at {address}"),
            };
            SecretError::new(kind, message).with_source(describe(&err))
        })?;
        let status = response.status().as_u16();
        let bytes = read_capped(response, MAX_ANSWER).await.map_err(|err| {
            let what = format!("failed to read the answer of Vault at {}", self.address);
            match err {
                BodyError::TooLarge { .. } => SecretError::new(ErrorKind::Internal, what),
                BodyError::Read(_) => SecretError::new(ErrorKind::Unavailable, what),
            }
            .with_source(err)
        })?;
        let text = String::from_utf8_lossy(&bytes);
        let body = if text.trim().is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).map_err(|err| {
                SecretError::new(
                    ErrorKind::Internal,
                    format!(
                        "Vault at {} answered HTTP {status} with a body that is not JSON (is the address a Vault server?)",
                        self.address
                    ),
                )
                .with_source(err)
            })?
        };
        Ok(Answer { status, body })
    }
}
