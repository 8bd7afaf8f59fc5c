//! An async client for the providers' JSON APIs: authentication headers, pagination through
//! `Link` headers, and errors that say which request failed and why. Dropping a request's
//! future cancels it.

use pikoci_core::ErrorKind;
use pikoci_core::engine::NativeCheckError;
use pikoci_http::reqwest;
use pikoci_http::{describe, error_kind, read_capped, secret_header};

use super::remote::Provider;

/// The largest response body read (a page of 100 pull requests is far smaller).
const MAX_BODY: u64 = 16 * 1024 * 1024;

/// The most pages one listing follows (10 000 tags on GitHub).
const MAX_PAGES: usize = 100;

/// One provider API, authenticated with a token.
#[derive(Debug)]
pub(crate) struct ApiClient {
    http: reqwest::Client,
    provider: Provider,
    base: String,
    token: String,
}

impl ApiClient {
    /// A client for `provider`'s API at `base` over `http` (which must follow redirects on
    /// the same server only: every request carries the token).
    pub(crate) fn new(http: reqwest::Client, provider: Provider, base: &str, token: &str) -> Self {
        ApiClient {
            http,
            provider,
            base: base.trim_end_matches('/').to_owned(),
            token: token.to_owned(),
        }
    }

    /// The full URL of an API path.
    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// The JSON body of `GET <base><path>`.
    pub(crate) async fn get(&self, path: &str) -> Result<serde_json::Value, NativeCheckError> {
        self.fetch(&self.url(path)).await.map(|(body, _)| body)
    }

    /// Every item of a listing (`GET <base><path>` returning a JSON array), following the
    /// `rel="next"` links of the `Link` header.
    pub(crate) async fn list(
        &self,
        path: &str,
    ) -> Result<Vec<serde_json::Value>, NativeCheckError> {
        let mut url = self.url(path);
        let mut items = Vec::new();
        for _ in 0..MAX_PAGES {
            let (body, next) = self.fetch(&url).await?;
            match body {
                serde_json::Value::Array(page) => items.extend(page),
                other => {
                    return Err(NativeCheckError::internal(format!(
                        "{} API: GET {url} returned {}, not a JSON array",
                        self.provider,
                        kind_of(&other)
                    )));
                }
            }
            match next {
                Some(next) if origin(&next) == origin(&self.base) => url = next,
                // The token must not be sent anywhere else.
                Some(next) => {
                    return Err(NativeCheckError::internal(format!(
                        "{} API: GET {url} links its next page to another server ({next}); \
                         not following it",
                        self.provider
                    )));
                }
                None => break,
            }
        }
        Ok(items)
    }

    async fn fetch(
        &self,
        url: &str,
    ) -> Result<(serde_json::Value, Option<String>), NativeCheckError> {
        let provider = self.provider;
        let request = self.http.get(url);
        let request = match provider {
            Provider::GitHub => request
                .header("Accept", "application/vnd.github+json")
                .header("X-GitHub-Api-Version", "2022-11-28")
                .header("Authorization", self.token_header("Bearer ")?),
            Provider::GitLab => request
                .header("Accept", "application/json")
                .header("PRIVATE-TOKEN", self.token_header("")?),
            Provider::Gitea => request
                .header("Accept", "application/json")
                .header("Authorization", self.token_header("token ")?),
        };
        let response = request.send().await.map_err(|err| {
            NativeCheckError::new(
                error_kind(&err),
                format!("{provider} API: GET {url} failed: {}", describe(&err)),
            )
        })?;
        let status = response.status();
        let next = response
            .headers()
            .get("link")
            .and_then(|v| v.to_str().ok())
            .and_then(next_link);
        let bytes = read_capped(response, MAX_BODY).await.map_err(|err| {
            NativeCheckError::new(
                ErrorKind::Unavailable,
                format!("{provider} API: GET {url}: cannot read the response: {err}"),
            )
        })?;
        let text = String::from_utf8_lossy(&bytes);
        if !status.is_success() {
            let mut message = format!(
                "{provider} API: GET {url} returned {} {}",
                status.as_u16(),
                status.canonical_reason().unwrap_or("")
            );
            if let Some(said) = provider_message(&text) {
                message.push_str(&format!(" (\"{said}\")"));
            }
            if let Some(hint) = hint(status.as_u16()) {
                message.push_str(": ");
                message.push_str(hint);
            }
            return Err(NativeCheckError::new(status_kind(status.as_u16()), message));
        }
        let body = serde_json::from_str(&text).map_err(|err| {
            NativeCheckError::internal(format!(
                "{provider} API: GET {url} returned a body that is not JSON: {err}"
            ))
        })?;
        Ok((body, next))
    }

    /// The token after `prefix`, as a header value hidden from `Debug` output.
    fn token_header(&self, prefix: &str) -> Result<reqwest::header::HeaderValue, NativeCheckError> {
        secret_header(&format!("{prefix}{}", self.token)).map_err(|_| {
            NativeCheckError::invalid_input(format!(
                "{} API: the token holds characters not allowed in an HTTP header (such as a \
                 line break); check how the token is set",
                self.provider
            ))
        })
    }
}

/// What a failed request's status means for the caller: a refused token is fixed by the user,
/// a server error or a rate limit may pass.
fn status_kind(status: u16) -> ErrorKind {
    match status {
        401 | 403 => ErrorKind::PermissionDenied,
        404 => ErrorKind::NotFound,
        408 | 429 | 500..=599 => ErrorKind::Unavailable,
        _ => ErrorKind::InvalidInput,
    }
}

/// What to do about a failed request, by status.
fn hint(status: u16) -> Option<&'static str> {
    match status {
        401 => Some("the token was rejected; check that it is valid and has not expired"),
        403 => Some(
            "the token may not read this repository (missing scope or permission), \
             or the API rate limit was reached",
        ),
        404 => Some(
            "no such repository or branch, or the token cannot see it; \
             check url, branch and provider (or api_url)",
        ),
        _ => None,
    }
}

/// The explanation in an error body: `message` (all three providers) or `error`
/// (GitLab's OAuth errors), else the start of a non-JSON body.
fn provider_message(body: &str) -> Option<String> {
    let text = match serde_json::from_str::<serde_json::Value>(body) {
        Ok(json) => match json.get("message").or_else(|| json.get("error")) {
            Some(serde_json::Value::String(text)) => text.clone(),
            Some(other) => other.to_string(),
            None => return None,
        },
        Err(_) => body.trim().chars().take(200).collect(),
    };
    (!text.is_empty()).then_some(text)
}

/// The target of the `rel="next"` link of a `Link` header.
fn next_link(header: &str) -> Option<String> {
    header.split(',').find_map(|link| {
        let (target, params) = link.split_once(';')?;
        let target = target.trim().strip_prefix('<')?.strip_suffix('>')?;
        let is_next = params.split(';').any(|param| {
            param
                .trim()
                .strip_prefix("rel=")
                .map(|rel| {
                    rel.trim_matches('"')
                        .split_whitespace()
                        .any(|r| r == "next")
                })
                .unwrap_or(false)
        });
        is_next.then(|| target.to_owned())
    })
}

/// `scheme://authority` of a URL, lowercased.
fn origin(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let authority = rest.split(['/', '?', '#']).next().unwrap_or("");
    format!("{scheme}://{authority}").to_ascii_lowercase()
}

fn kind_of(value: &serde_json::Value) -> &'static str {
    match value {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "a boolean",
        serde_json::Value::Number(_) => "a number",
        serde_json::Value::String(_) => "a string",
        serde_json::Value::Array(_) => "an array",
        serde_json::Value::Object(_) => "an object",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_next_page_link() {
        let github = "<https://api.github.com/repositories/1/tags?page=2>; rel=\"next\", \
                      <https://api.github.com/repositories/1/tags?page=5>; rel=\"last\"";
        assert_eq!(
            next_link(github).as_deref(),
            Some("https://api.github.com/repositories/1/tags?page=2")
        );
        let last_page = "<https://x/a?page=1>; rel=\"first\", <https://x/a?page=4>; rel=\"prev\"";
        assert_eq!(next_link(last_page), None);
        assert_eq!(next_link("garbage"), None);
    }

    #[test]
    fn compares_origins() {
        assert_eq!(
            origin("https://API.github.com/x?y"),
            "https://api.github.com"
        );
        assert_ne!(
            origin("http://127.0.0.1:1/a"),
            origin("http://127.0.0.1:2/a")
        );
    }

    #[test]
    fn extracts_what_the_provider_said() {
        let github =
            r#"{"message":"Bad credentials","documentation_url":"https://docs.github.com/rest"}"#;
        assert_eq!(provider_message(github).as_deref(), Some("Bad credentials"));
        assert_eq!(
            provider_message(r#"{"error":"invalid_token"}"#).as_deref(),
            Some("invalid_token")
        );
        assert_eq!(
            provider_message("<html>Bad Gateway</html>").as_deref(),
            Some("<html>Bad Gateway</html>")
        );
        assert_eq!(provider_message(""), None);
    }
}
