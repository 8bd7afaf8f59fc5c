//! A client of a PikoCI server's HTTP API: requests under `/api/v1`, the API's errors as
//! [`ClientError::Api`] with the server's message, the shapes the API answers with
//! ([`model`]), and a build followed live over Server-Sent Events that resumes after a dropped
//! connection ([`EventStream`]).
//!
//! The document the API is described by is `docs/openapi.json` (served at
//! `/api/v1/openapi.json`); this crate is the `pikoci` command's client of it, usable by other
//! tools.

#![cfg_attr(not(test), warn(unused_crate_dependencies))]

mod events;
pub mod model;

use std::time::Duration;

use pikoci_core::secrets::Secret;
use pikoci_http::reqwest::{self, Method, StatusCode, header};
use serde::de::DeserializeOwned;
use serde_json::Value;

pub use events::{BuildEvent, EventStream};

/// How long a request may take, answer included.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// The largest answer read (a log is read as text in pages by the server, but a client reads
/// the whole of it).
const MAX_ANSWER_BYTES: u64 = 256 * 1024 * 1024;

/// The page size asked by [`Client::get_all`]: the largest the server gives.
const PAGE_ALL: u32 = 500;

/// A client of one server.
#[derive(Clone)]
pub struct Client {
    /// `http://host:port`, without a trailing slash.
    server: String,
    token: Option<Secret>,
    http: reqwest::Client,
    /// For event streams: no overall timeout (a build may run for hours), the stream's own
    /// idle timeout instead.
    streams: reqwest::Client,
}

impl std::fmt::Debug for Client {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Client")
            .field("server", &self.server)
            .field("token", &self.token.as_ref().map(|_| "<redacted>"))
            .finish_non_exhaustive()
    }
}

/// A successful answer: `data`, and `meta` for pages.
#[derive(Debug, Clone)]
pub struct Answer {
    /// The HTTP status (200, 201).
    pub status: u16,
    /// `data`.
    pub data: Value,
    /// `meta` of a page.
    pub meta: Option<Value>,
}

impl Answer {
    /// `data` as `T`.
    pub fn parse<T: DeserializeOwned>(&self) -> Result<T, ClientError> {
        serde_json::from_value(self.data.clone()).map_err(|error| ClientError::Unexpected {
            status: None,
            detail: format!("its answer does not have the expected shape: {error}"),
        })
    }
}

/// Why a request did not succeed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The server refused or failed the request, and said why.
    #[error("{message}")]
    Api {
        /// The HTTP status.
        status: u16,
        /// The API's error code (`not_found`, `invalid_pipeline`, ...).
        code: String,
        /// The server's message.
        message: String,
        /// More, by code (the diagnostics of an `invalid_pipeline`).
        details: Option<Value>,
    },
    /// No answer: the server could not be reached, or did not answer in time.
    #[error("cannot reach the PikoCI server at {server}: {reason}")]
    Unreachable {
        /// The server's address.
        server: String,
        /// What failed.
        reason: String,
    },
    /// An answer that is not the API's: another program on that address, a proxy's page, a
    /// shape this client does not know.
    #[error("the server answered something that is not PikoCI's API: {detail}")]
    Unexpected {
        /// The HTTP status, when the answer had one that was not a success.
        status: Option<u16>,
        /// What was wrong with it.
        detail: String,
    },
    /// The server sends the request elsewhere (`http://` to `https://`, another host): the
    /// client does not follow it with a token, so the address to use is that one.
    #[error(
        "the server at {server} redirects to {location}: use that address instead (--server, or `pikoci login` again)"
    )]
    Redirected {
        /// The address asked.
        server: String,
        /// Where it redirects.
        location: String,
    },
    /// The server address is not an `http://` or `https://` URL without credentials, query
    /// or fragment.
    #[error(
        "invalid server address \"{0}\": give a URL such as http://127.0.0.1:8080 or https://ci.example.com (no user, password or query: a token goes in with `pikoci login --token-stdin`)"
    )]
    InvalidServer(String),
    /// The token cannot be sent: it holds a character an HTTP header cannot carry.
    #[error(
        "the token holds a character an HTTP header cannot carry (a line break?): log in again with the token as it was given"
    )]
    InvalidToken,
    /// The HTTP client could not be built (TLS configuration).
    #[error(transparent)]
    Http(#[from] pikoci_http::ClientError),
}

impl ClientError {
    /// Whether the request never got an answer from the API, or the server failed it (5xx):
    /// worth trying again later, unlike a refusal.
    pub fn is_unavailable(&self) -> bool {
        match self {
            ClientError::Api { status, .. } => *status >= 500,
            ClientError::Unexpected { status, .. } => status.is_some_and(|s| s >= 500),
            ClientError::Unreachable { .. } => true,
            ClientError::InvalidServer(_)
            | ClientError::Redirected { .. }
            | ClientError::InvalidToken
            | ClientError::Http(_) => false,
        }
    }

    /// The API's error code, when the server answered with one.
    pub fn code(&self) -> Option<&str> {
        match self {
            ClientError::Api { code, .. } => Some(code),
            _ => None,
        }
    }
}

/// A path under `/api/v1` from its segments, each percent-encoded: `path(&["teams", team])`.
pub fn path(segments: &[&str]) -> String {
    let mut path = String::new();
    for segment in segments {
        path.push('/');
        encode_into(&mut path, segment);
    }
    path
}

/// Appends `text` percent-encoded (everything but letters, digits and `-._~`).
fn encode_into(out: &mut String, text: &str) {
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
}

/// `?name=value&...`, encoded; empty without parameters.
fn query_string(query: &[(&str, String)]) -> String {
    let mut out = String::new();
    for (index, (name, value)) in query.iter().enumerate() {
        out.push(if index == 0 { '?' } else { '&' });
        encode_into(&mut out, name);
        out.push('=');
        encode_into(&mut out, value);
    }
    out
}

impl Client {
    /// A client of the server at `server` (`http://host:port`), sending `token` when given.
    pub async fn new(server: &str, token: Option<Secret>) -> Result<Client, ClientError> {
        let server = server.trim().trim_end_matches('/');
        let parsed = reqwest::Url::parse(server).ok().filter(|url| {
            ["http", "https"].contains(&url.scheme())
                && url.host_str().is_some_and(|h| !h.is_empty())
        });
        let Some(url) = parsed else {
            return Err(ClientError::InvalidServer(server.to_owned()));
        };
        // Credentials would be shown wherever the address is (and must not be echoed here
        // either); a query or fragment would break every URL built on it.
        if !url.username().is_empty() || url.password().is_some() {
            let mut shown = url.clone();
            let _ = shown.set_username("");
            let _ = shown.set_password(None);
            return Err(ClientError::InvalidServer(format!(
                "{} with credentials",
                shown.as_str().trim_end_matches('/')
            )));
        }
        if url.query().is_some() || url.fragment().is_some() {
            return Err(ClientError::InvalidServer(server.to_owned()));
        }
        let http = pikoci_http::ClientConfig::new(REQUEST_TIMEOUT)
            .build_async()
            .await?;
        let streams = pikoci_http::ClientConfig::new(Duration::from_secs(7 * 24 * 3600))
            .build_async()
            .await?;
        Ok(Client {
            server: server.to_owned(),
            token,
            http,
            streams,
        })
    }

    /// The server's address.
    pub fn server(&self) -> &str {
        &self.server
    }

    /// `GET /api/v1{path}`.
    pub async fn get(&self, path: &str) -> Result<Answer, ClientError> {
        self.call(Method::GET, path, &[], None).await
    }

    /// `GET /api/v1{path}?{query}`.
    pub async fn get_with(
        &self,
        path: &str,
        query: &[(&str, String)],
    ) -> Result<Answer, ClientError> {
        self.call(Method::GET, path, query, None).await
    }

    /// `GET /api/v1{path}` of a list paged by name (teams, pipelines, jobs, resources,
    /// secrets, workers): every page, following `meta.next_after`, as one answer whose `data`
    /// is the whole list.
    pub async fn get_all(&self, path: &str) -> Result<Answer, ClientError> {
        let mut items = Vec::new();
        let mut after: Option<String> = None;
        loop {
            let mut query = vec![("limit", PAGE_ALL.to_string())];
            query.extend(after.take().map(|after| ("after", after)));
            let answer = self.call(Method::GET, path, &query, None).await?;
            let Value::Array(page) = answer.data else {
                return Err(ClientError::Unexpected {
                    status: None,
                    detail: format!("a list was expected from {path}"),
                });
            };
            items.extend(page);
            after = answer
                .meta
                .as_ref()
                .and_then(|meta| meta.get("next_after"))
                .and_then(Value::as_str)
                .map(str::to_owned);
            if after.is_none() {
                return Ok(Answer {
                    status: answer.status,
                    data: Value::Array(items),
                    meta: None,
                });
            }
        }
    }

    /// `POST /api/v1{path}` with a JSON body.
    pub async fn post(&self, path: &str, body: &Value) -> Result<Answer, ClientError> {
        self.call(Method::POST, path, &[], Some(body)).await
    }

    /// `PUT /api/v1{path}` with a JSON body.
    pub async fn put(&self, path: &str, body: &Value) -> Result<Answer, ClientError> {
        self.call(Method::PUT, path, &[], Some(body)).await
    }

    /// `DELETE /api/v1{path}`.
    pub async fn delete(&self, path: &str) -> Result<Answer, ClientError> {
        self.call(Method::DELETE, path, &[], None).await
    }

    /// `GET /api/v1{path}?{query}` answered with text (a build's log).
    pub async fn text(&self, path: &str, query: &[(&str, String)]) -> Result<String, ClientError> {
        let response = self.send(Method::GET, path, query, None).await?;
        let status = response.status();
        self.refuse_redirect(&response)?;
        let bytes = self.body(response).await?;
        if !status.is_success() {
            return Err(api_error(status, &bytes));
        }
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    }

    /// `GET /api/v1{path}` read as it arrives, without a size limit or an overall timeout: a
    /// build's report, the server's export. An error status is an error here, before any of
    /// the body is read.
    pub async fn download(&self, path: &str) -> Result<Download, ClientError> {
        let response = self
            .request(&self.streams, Method::GET, path)?
            .send()
            .await
            .map_err(|error| self.unreachable(&error))?;
        let status = response.status();
        self.refuse_redirect(&response)?;
        if !status.is_success() {
            let bytes = self.body(response).await?;
            return Err(api_error(status, &bytes));
        }
        Ok(Download {
            server: self.server.clone(),
            response,
        })
    }

    /// Follows a build live: the events of `GET /api/v1{path}/events`, resumed after a
    /// dropped connection.
    pub fn events(&self, build_path: &str) -> EventStream {
        EventStream::new(self.clone(), format!("{build_path}/events"))
    }

    async fn call(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&Value>,
    ) -> Result<Answer, ClientError> {
        let response = self.send(method, path, query, body).await?;
        self.answer(response).await
    }

    /// `POST /api/v1{path}` with `file` as its body, sent as it is read, without an overall
    /// timeout (an import).
    pub async fn upload(&self, path: &str, file: tokio::fs::File) -> Result<Answer, ClientError> {
        let response = self
            .request(&self.streams, Method::POST, path)?
            .header(header::CONTENT_TYPE, "application/octet-stream")
            .body(reqwest::Body::from(file))
            .send()
            .await
            .map_err(|error| self.unreachable(&error))?;
        self.answer(response).await
    }

    /// The API's answer: its `data` and `meta`, or its error.
    async fn answer(&self, response: reqwest::Response) -> Result<Answer, ClientError> {
        let status = response.status();
        self.refuse_redirect(&response)?;
        let bytes = self.body(response).await?;
        if !status.is_success() {
            return Err(api_error(status, &bytes));
        }
        let mut json: Value =
            serde_json::from_slice(&bytes).map_err(|error| ClientError::Unexpected {
                status: None,
                detail: format!("{status} with a body that is not JSON ({error})"),
            })?;
        let Some(data) = json.get_mut("data").map(Value::take) else {
            return Err(ClientError::Unexpected {
                status: None,
                detail: format!("{status} without \"data\""),
            });
        };
        Ok(Answer {
            status: status.as_u16(),
            data,
            meta: json.get_mut("meta").map(Value::take),
        })
    }

    /// Sends a request; an error when no answer came.
    async fn send(
        &self,
        method: Method,
        path: &str,
        query: &[(&str, String)],
        body: Option<&Value>,
    ) -> Result<reqwest::Response, ClientError> {
        let request = self.request(
            &self.http,
            method,
            &format!("{path}{}", query_string(query)),
        )?;
        let request = match body {
            Some(body) => request
                .header(header::CONTENT_TYPE, "application/json")
                .body(body.to_string()),
            None => request,
        };
        request
            .send()
            .await
            .map_err(|error| self.unreachable(&error))
    }

    /// A request to `/api/v1{path}` with the token.
    fn request(
        &self,
        http: &reqwest::Client,
        method: Method,
        path: &str,
    ) -> Result<reqwest::RequestBuilder, ClientError> {
        let mut request = http.request(method, format!("{}/api/v1{path}", self.server));
        if let Some(token) = &self.token {
            let value = pikoci_http::secret_header(&format!("Bearer {}", token.expose()))
                .map_err(|_| ClientError::InvalidToken)?;
            request = request.header(header::AUTHORIZATION, value);
        }
        Ok(request)
    }

    /// A redirect the HTTP client did not follow (to another origin: the token stays here).
    fn refuse_redirect(&self, response: &reqwest::Response) -> Result<(), ClientError> {
        if !response.status().is_redirection() {
            return Ok(());
        }
        let location = response
            .headers()
            .get(header::LOCATION)
            .and_then(|value| value.to_str().ok())
            .unwrap_or("an address it does not give");
        // The API's base, not the route asked.
        let location = location
            .find("/api/v1")
            .map_or(location, |at| &location[..at])
            .to_owned();
        Err(ClientError::Redirected {
            server: self.server.clone(),
            location,
        })
    }

    async fn body(&self, response: reqwest::Response) -> Result<Vec<u8>, ClientError> {
        pikoci_http::read_capped(response, MAX_ANSWER_BYTES)
            .await
            .map_err(|error| ClientError::Unreachable {
                server: self.server.clone(),
                reason: format!("the answer could not be read: {error}"),
            })
    }

    fn unreachable(&self, error: &reqwest::Error) -> ClientError {
        ClientError::Unreachable {
            server: self.server.clone(),
            reason: pikoci_http::describe(error),
        }
    }
}

/// A body being downloaded, a piece at a time.
#[derive(Debug)]
pub struct Download {
    server: String,
    response: reqwest::Response,
}

impl Download {
    /// The file name the server suggests (`Content-Disposition: attachment; filename="…"`),
    /// without any directory.
    pub fn file_name(&self) -> Option<String> {
        let value = self
            .response
            .headers()
            .get(header::CONTENT_DISPOSITION)?
            .to_str()
            .ok()?;
        let name = value.split(';').map(str::trim).find_map(|part| {
            part.strip_prefix("filename=")
                .map(|name| name.trim_matches('"').to_owned())
        })?;
        let name = name.rsplit(['/', '\\']).next().unwrap_or_default();
        (!name.is_empty() && name != "." && name != "..").then(|| name.to_owned())
    }

    /// The next piece of the body; `None` at its end.
    pub async fn chunk(&mut self) -> Result<Option<bytes::Bytes>, ClientError> {
        self.response
            .chunk()
            .await
            .map_err(|error| ClientError::Unreachable {
                server: self.server.clone(),
                reason: format!("the download was cut: {}", pikoci_http::describe(&error)),
            })
    }
}

/// The error of a non-success answer: the API's, or a description of what came instead.
fn api_error(status: StatusCode, bytes: &[u8]) -> ClientError {
    let body: Option<Value> = serde_json::from_slice(bytes).ok();
    let error = body
        .as_ref()
        .and_then(|body| body.get("error"))
        .filter(|error| error.is_object());
    match error {
        Some(error) => ClientError::Api {
            status: status.as_u16(),
            code: error["code"].as_str().unwrap_or("unknown").to_owned(),
            message: error["message"]
                .as_str()
                .map_or_else(|| format!("the server answered {status}"), str::to_owned),
            details: error.get("details").cloned(),
        },
        None => {
            let text = String::from_utf8_lossy(bytes);
            let text = text.trim();
            ClientError::Unexpected {
                status: Some(status.as_u16()),
                detail: if text.is_empty() {
                    format!("{status} with no body")
                } else {
                    let mut start: String = text.chars().take(200).collect();
                    if start.len() < text.len() {
                        start.push('…');
                    }
                    format!("{status}: {start}")
                },
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn segments_are_encoded() {
        assert_eq!(path(&["teams", "main"]), "/teams/main");
        assert_eq!(
            path(&["jobs", "unit tests/a", "3.1"]),
            "/jobs/unit%20tests%2Fa/3.1"
        );
        assert_eq!(
            query_string(&[
                ("status", "failed,errored".to_owned()),
                ("limit", "5".to_owned())
            ]),
            "?status=failed%2Cerrored&limit=5"
        );
    }

    #[test]
    fn errors_keep_the_server_message_or_say_what_came() {
        let error = api_error(
            StatusCode::NOT_FOUND,
            br#"{"error": {"code": "not_found", "message": "no pipeline \"x\""}}"#,
        );
        assert_eq!(error.to_string(), "no pipeline \"x\"");
        assert_eq!(error.code(), Some("not_found"));
        assert!(!error.is_unavailable());
        let error = api_error(StatusCode::BAD_GATEWAY, b"<html>bad gateway</html>");
        assert_eq!(
            error.to_string(),
            "the server answered something that is not PikoCI's API: 502 Bad Gateway: <html>bad gateway</html>"
        );
        assert!(error.is_unavailable());
    }

    #[tokio::test]
    async fn a_server_address_must_be_a_url() {
        for bad in [
            "localhost:8080",
            "ftp://x",
            "http://",
            "",
            "https://user:secret@ci.example.com",
            "http://ci?x=1",
        ] {
            let error = Client::new(bad, None).await.unwrap_err();
            assert!(matches!(error, ClientError::InvalidServer(_)), "{bad}");
        }
        let client = Client::new("http://127.0.0.1:8080/", None).await.unwrap();
        assert_eq!(client.server(), "http://127.0.0.1:8080");
    }
}
