//! The builtin `git` resource type's provider API checks (D13: the worker needs only `git`).
//!
//! With a `token` and a known provider, the check asks the provider's API instead of running
//! the type's `check` script: GitHub, GitLab and Gitea/Forgejo, for the newest commit of a
//! branch, the open pull (merge) requests (`pr = "true"`), or the tags (`tag = "true"`).
//! Everything else (no token, an unknown host without `provider`, another type) is left to the
//! script, which uses `git ls-remote`.

mod api;
mod provider;
mod remote;
mod versions;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use pikoci_core::engine::{CheckRequest, NativeCheckError, NativeChecks};
use pikoci_core::{Origin, ResourceType};
use pikoci_http::{CaCertificates, ClientConfig, Roots, reqwest};
use tokio::sync::OnceCell;

use api::ApiClient;
use provider::Repository;
use remote::{Provider, Remote};

/// The `source` of the builtin git type.
const GIT_SOURCE: &str = "pikoci://git";

/// How long one API request may take by default.
const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// Checks resources of the builtin `git` type through the providers' APIs when they have a
/// `token` (see the module documentation); returns `None` for every other resource.
///
/// HTTPS servers are trusted when the machine's CA bundle (`SSL_CERT_FILE`, else the system
/// bundle) or [`GitChecks::with_ca_file`] vouches for them.
///
/// One HTTP client serves every check (and the clones of this value), so connections to a
/// provider are reused between checks; it is built on the first check.
#[derive(Debug, Clone)]
pub struct GitChecks {
    timeout: Duration,
    roots: Roots,
    client: Arc<OnceCell<reqwest::Client>>,
}

impl Default for GitChecks {
    fn default() -> Self {
        GitChecks::new()
    }
}

impl GitChecks {
    /// Checks with the default timeout of 30 seconds per API request.
    pub fn new() -> GitChecks {
        GitChecks {
            timeout: DEFAULT_TIMEOUT,
            roots: Roots::System,
            client: Arc::default(),
        }
    }

    /// Trusts exactly the certificate authorities in the PEM file at `path` instead of the
    /// machine's.
    pub fn with_ca_file(mut self, path: &Path) -> Result<GitChecks, String> {
        let certificates = CaCertificates::from_pem_file(path).map_err(|err| err.to_string())?;
        self.roots = Roots::Only(certificates);
        self.client = Arc::default();
        Ok(self)
    }

    /// Gives up on an API request after `timeout` (connecting: at most 10 seconds of it).
    pub fn with_timeout(mut self, timeout: Duration) -> GitChecks {
        self.timeout = timeout;
        self.client = Arc::default();
        self
    }

    /// The client every check uses, built on first use (reading the machine's certificate
    /// authorities off the runtime when they are trusted).
    async fn client(&self) -> Result<&reqwest::Client, NativeCheckError> {
        self.client
            .get_or_try_init(|| async {
                ClientConfig::new(self.timeout)
                    .with_roots(self.roots.clone())
                    .build_async()
                    .await
                    .map_err(|err| NativeCheckError::invalid_input(format!("git API: {err}")))
            })
            .await
    }
}

#[async_trait::async_trait]
impl NativeChecks for GitChecks {
    async fn check(
        &self,
        request: CheckRequest<'_>,
    ) -> Option<Result<Vec<serde_json::Value>, NativeCheckError>> {
        if !is_builtin_git(request.resource_type) {
            return None;
        }
        let check = match ApiCheck::plan(request.params, request.newest) {
            Ok(Some(check)) => check,
            Ok(None) => return None,
            Err(error) => return Some(Err(NativeCheckError::invalid_input(error))),
        };
        let client = match self.client().await {
            Ok(client) => client.clone(),
            Err(error) => return Some(Err(error)),
        };
        // Dropping this future (a cancelled check) cancels the request in flight.
        Some(check.run(client).await.map_err(|error| {
            NativeCheckError::new(error.kind(), mask(error.message(), &check.token))
        }))
    }
}

/// Whether `resource_type` is the builtin git type, used directly or through its source.
fn is_builtin_git(resource_type: &ResourceType) -> bool {
    match &resource_type.origin {
        Origin::Builtin => resource_type.name == "git",
        Origin::Source { url } => url == GIT_SOURCE,
        Origin::Inline => false,
    }
}

/// What the check lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// The newest commit of the branch.
    Commits,
    /// The open pull (merge) requests.
    PullRequests,
    /// The tags.
    Tags,
}

/// One API check, decided from the resource's params before any request is made. `Debug`
/// leaves the token out.
struct ApiCheck {
    provider: Provider,
    api_base: String,
    repository: String,
    token: String,
    branch: Option<String>,
    mode: Mode,
    newest: Option<serde_json::Value>,
}

impl std::fmt::Debug for ApiCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiCheck")
            .field("provider", &self.provider)
            .field("api_base", &self.api_base)
            .field("repository", &self.repository)
            .field("branch", &self.branch)
            .field("mode", &self.mode)
            .field("newest", &self.newest)
            .finish_non_exhaustive()
    }
}

impl ApiCheck {
    /// `Ok(None)` when the check is not one for the API: no token, no url, or a provider that
    /// is neither given nor recognised from the host.
    fn plan(
        params: &BTreeMap<String, String>,
        newest: Option<&serde_json::Value>,
    ) -> Result<Option<ApiCheck>, String> {
        let param = |name: &str| {
            params
                .get(&format!("param_{name}"))
                .map(|v| v.trim())
                .filter(|v| !v.is_empty())
        };
        let (Some(token), Some(url)) = (param("token"), param("url")) else {
            return Ok(None);
        };
        let mode = match (is_true(param("pr")), is_true(param("tag"))) {
            (true, true) => {
                return Err("the pr and tag params cannot both be \"true\": \
                            choose pull requests or tags"
                    .to_owned());
            }
            (true, false) => Mode::PullRequests,
            (false, true) => Mode::Tags,
            (false, false) => Mode::Commits,
        };
        let remote = Remote::parse(url);
        let provider = match param("provider") {
            Some(name) => Provider::parse(name)?,
            None => match remote.as_ref().and_then(|r| Provider::detect(&r.host)) {
                Some(provider) => provider,
                None => return Ok(None),
            },
        };
        let shown = pikoci_core::redact::url(url);
        let Some(remote) = remote else {
            return Err(format!(
                "cannot tell where the {provider} API of \"{shown}\" is: \
                 set the api_url param (for example https://git.example.com/api/v1)"
            ));
        };
        let api_base = match param("api_url") {
            Some(api_url) if api_url.starts_with("http://") || api_url.starts_with("https://") => {
                api_url.trim_end_matches('/').to_owned()
            }
            Some(api_url) => {
                return Err(format!(
                    "the api_url param must be an http:// or https:// URL, not \"{}\"",
                    pikoci_core::redact::url(api_url)
                ));
            }
            None => remote.api_base(provider),
        };
        let repository = remote
            .repository(provider, &remote::api_prefix(&api_base))
            .ok_or_else(|| {
                format!("\"{shown}\" does not name a {provider} repository (owner/name)")
            })?;
        let branch = param("branch").map(|b| b.strip_prefix("refs/heads/").unwrap_or(b).to_owned());
        Ok(Some(ApiCheck {
            provider,
            api_base,
            repository,
            token: token.to_owned(),
            branch,
            mode,
            newest: newest.cloned(),
        }))
    }

    /// Makes the requests and turns the answers into versions.
    async fn run(&self, http: reqwest::Client) -> Result<Vec<serde_json::Value>, NativeCheckError> {
        let api = ApiClient::new(http, self.provider, &self.api_base, &self.token);
        let repository = Repository {
            api: &api,
            provider: self.provider,
            name: self.repository.clone(),
        };
        let branch = self.branch.as_deref();
        match self.mode {
            Mode::Commits => match repository.newest_commit(branch).await? {
                Some(sha) => Ok(versions::commit(&sha)),
                None => Err(NativeCheckError::not_found(format!(
                    "{} API: no commits found on {} of {}",
                    self.provider,
                    branch.map_or("the default branch".to_owned(), |b| format!(
                        "branch \"{b}\""
                    )),
                    self.repository
                ))),
            },
            Mode::PullRequests => Ok(versions::pull_requests(
                repository.open_pull_requests().await?,
                branch,
                self.newest.is_none(),
            )),
            Mode::Tags => {
                let newest_tag = self
                    .newest
                    .as_ref()
                    .and_then(|v| v.get("tag"))
                    .and_then(serde_json::Value::as_str);
                Ok(versions::tags(repository.tags().await?, newest_tag))
            }
        }
    }
}

/// The truth values the type's scripts accept.
fn is_true(value: Option<&str>) -> bool {
    matches!(value, Some("true" | "True" | "TRUE" | "yes" | "1"))
}

/// `text` with every occurrence of `token` replaced by `***`.
fn mask(text: &str, token: &str) -> String {
    if token.is_empty() {
        text.to_owned()
    } else {
        text.replace(token, "***")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (format!("param_{k}"), (*v).to_owned()))
            .collect()
    }

    fn plan(pairs: &[(&str, &str)]) -> Result<Option<ApiCheck>, String> {
        ApiCheck::plan(&params(pairs), None)
    }

    #[test]
    fn leaves_checks_without_a_token_or_a_provider_to_the_script() {
        assert!(
            plan(&[("url", "https://github.com/o/r")])
                .unwrap()
                .is_none()
        );
        assert!(
            plan(&[("url", "https://github.com/o/r"), ("token", " ")])
                .unwrap()
                .is_none()
        );
        let self_hosted = [("url", "https://git.example.com/o/r"), ("token", "t")];
        assert!(plan(&self_hosted).unwrap().is_none());
        assert!(
            plan(&[("url", "/srv/app.git"), ("token", "t")])
                .unwrap()
                .is_none()
        );
    }

    #[test]
    fn debug_output_never_shows_the_token() {
        let check = plan(&[
            ("url", "https://github.com/o/r"),
            ("token", "ghp_very-secret-token"),
        ])
        .unwrap()
        .expect("an API check");
        let text = format!("{check:?}");
        assert!(text.contains("o/r"), "{text}");
        assert!(!text.contains("ghp_very-secret-token"), "{text}");
    }

    #[test]
    fn plans_the_api_check_from_the_params() {
        let check = plan(&[
            ("url", "git@gitlab.com:group/sub/app.git"),
            ("token", "t"),
            ("branch", "refs/heads/main"),
            ("tag", "yes"),
        ])
        .unwrap()
        .unwrap();
        assert_eq!(check.provider, Provider::GitLab);
        assert_eq!(check.api_base, "https://gitlab.com/api/v4");
        assert_eq!(check.repository, "group/sub/app");
        assert_eq!(check.branch.as_deref(), Some("main"));
        assert_eq!(check.mode, Mode::Tags);

        let forgejo = plan(&[
            ("url", "https://example.com/o/app"),
            ("token", "t"),
            ("provider", "forgejo"),
            ("api_url", "https://api.example.com/api/v1/"),
        ])
        .unwrap()
        .unwrap();
        assert_eq!(forgejo.provider, Provider::Gitea);
        assert_eq!(forgejo.api_base, "https://api.example.com/api/v1");
    }

    #[test]
    fn rejects_contradictory_or_unusable_params() {
        let both = plan(&[
            ("url", "https://github.com/o/r"),
            ("token", "t"),
            ("pr", "true"),
            ("tag", "true"),
        ]);
        assert!(both.unwrap_err().contains("cannot both"));
        let unknown = plan(&[
            ("url", "https://x/o/r"),
            ("token", "t"),
            ("provider", "svn"),
        ]);
        assert!(unknown.unwrap_err().contains("unknown provider \"svn\""));
        let local = plan(&[
            ("url", "file:///srv/r"),
            ("token", "t"),
            ("provider", "gitea"),
        ]);
        assert!(local.unwrap_err().contains("set the api_url param"));
        let single = plan(&[("url", "https://github.com/r"), ("token", "t")]);
        assert!(
            single
                .unwrap_err()
                .contains("does not name a GitHub repository")
        );
    }

    #[test]
    fn masks_the_token() {
        assert_eq!(mask("bad token s3cret!", "s3cret"), "bad token ***!");
        assert_eq!(mask("nothing", ""), "nothing");
    }
}
