//! The three provider APIs: which endpoint lists commits, pull (merge) requests and tags, and
//! how to read their answers.

use serde::Deserialize;
use serde::de::DeserializeOwned;

use super::api::ApiClient;
use pikoci_core::engine::NativeCheckError;
use pikoci_core::percent::encode;

use super::remote::Provider;

/// An open pull (or merge) request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PullRequest {
    /// The number shown to users (GitLab's `iid`), as in `refs/pull/<n>/head`.
    pub(crate) number: u64,
    /// The commit at the head of its source branch.
    pub(crate) head: String,
    /// The branch it targets.
    pub(crate) base: String,
}

/// A tag and the commit it points to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Tag {
    pub(crate) name: String,
    pub(crate) commit: String,
}

/// A repository as one provider's API sees it.
#[derive(Debug)]
pub(crate) struct Repository<'a> {
    pub(crate) api: &'a ApiClient,
    pub(crate) provider: Provider,
    /// `owner/repo`, or GitLab's full project path.
    pub(crate) name: String,
}

impl Repository<'_> {
    /// The API path of the repository.
    fn root(&self) -> String {
        match self.provider {
            Provider::GitLab => format!("/projects/{}", encode(&self.name)),
            Provider::GitHub | Provider::Gitea => {
                let (owner, repo) = self.name.split_once('/').unwrap_or((&self.name, ""));
                format!("/repos/{}/{}", encode(owner), encode(repo))
            }
        }
    }

    /// The newest commit of `branch` (of the default branch when `None`).
    pub(crate) async fn newest_commit(
        &self,
        branch: Option<&str>,
    ) -> Result<Option<String>, NativeCheckError> {
        let root = self.root();
        let (path, branch_key) = match self.provider {
            Provider::GitHub => (format!("{root}/commits?per_page=1"), "sha"),
            Provider::GitLab => (format!("{root}/repository/commits?per_page=1"), "ref_name"),
            Provider::Gitea => (
                format!("{root}/commits?limit=1&stat=false&verification=false&files=false"),
                "sha",
            ),
        };
        let path = match branch {
            Some(branch) => format!("{path}&{branch_key}={}", encode(branch)),
            None => path,
        };
        let body = self.api.get(&path).await?;
        let serde_json::Value::Array(items) = body else {
            return Err(self.unexpected(&path, "a JSON array of commits"));
        };
        let Some(first) = items.into_iter().next() else {
            return Ok(None);
        };
        let sha = match self.provider {
            Provider::GitLab => first.get("id"),
            Provider::GitHub | Provider::Gitea => first.get("sha"),
        };
        match sha.and_then(serde_json::Value::as_str) {
            Some(sha) => Ok(Some(sha.to_owned())),
            None => Err(self.unexpected(&path, "a commit with its id")),
        }
    }

    /// Every open pull (merge) request.
    pub(crate) async fn open_pull_requests(&self) -> Result<Vec<PullRequest>, NativeCheckError> {
        let root = self.root();
        match self.provider {
            Provider::GitHub | Provider::Gitea => {
                let path = match self.provider {
                    Provider::GitHub => format!("{root}/pulls?state=open&per_page=100"),
                    _ => format!("{root}/pulls?state=open&limit=50"),
                };
                let pulls: Vec<Pull> = self.items(&path).await?;
                Ok(pulls
                    .into_iter()
                    .map(|p| PullRequest {
                        number: p.number,
                        head: p.head.sha,
                        base: p.base.branch,
                    })
                    .collect())
            }
            Provider::GitLab => {
                let path = format!("{root}/merge_requests?state=opened&per_page=100");
                let requests: Vec<MergeRequest> = self.items(&path).await?;
                // A merge request whose source branch is gone has no head to build.
                Ok(requests
                    .into_iter()
                    .filter_map(|m| {
                        Some(PullRequest {
                            number: m.iid,
                            head: m.sha?,
                            base: m.target_branch,
                        })
                    })
                    .collect())
            }
        }
    }

    /// Every tag, in the order the API lists them.
    pub(crate) async fn tags(&self) -> Result<Vec<Tag>, NativeCheckError> {
        let root = self.root();
        let path = match self.provider {
            Provider::GitHub => format!("{root}/tags?per_page=100"),
            Provider::GitLab => format!("{root}/repository/tags?per_page=100"),
            Provider::Gitea => format!("{root}/tags?limit=50"),
        };
        let tags: Vec<ApiTag> = self.items(&path).await?;
        Ok(tags
            .into_iter()
            .filter_map(|t| {
                let commit = t.commit?;
                Some(Tag {
                    name: t.name,
                    commit: commit.sha.or(commit.id)?,
                })
            })
            .collect())
    }

    async fn items<T: DeserializeOwned>(&self, path: &str) -> Result<Vec<T>, NativeCheckError> {
        self.api
            .list(path)
            .await?
            .into_iter()
            .map(|item| {
                serde_json::from_value(item).map_err(|err| {
                    NativeCheckError::internal(format!(
                        "{} API: unexpected item in the answer to GET {}: {err}",
                        self.provider,
                        self.api.url(path)
                    ))
                })
            })
            .collect()
    }

    fn unexpected(&self, path: &str, wanted: &str) -> NativeCheckError {
        NativeCheckError::internal(format!(
            "{} API: GET {} did not return {wanted}",
            self.provider,
            self.api.url(path)
        ))
    }
}

/// A GitHub or Gitea pull request (the fields used).
#[derive(Debug, Deserialize)]
struct Pull {
    number: u64,
    head: Branch,
    base: Branch,
}

#[derive(Debug, Deserialize)]
struct Branch {
    sha: String,
    #[serde(rename = "ref")]
    branch: String,
}

/// A GitLab merge request (the fields used).
#[derive(Debug, Deserialize)]
struct MergeRequest {
    iid: u64,
    sha: Option<String>,
    target_branch: String,
}

/// A tag of any of the three: GitHub and Gitea name the commit `sha`, GitLab `id`.
#[derive(Debug, Deserialize)]
struct ApiTag {
    name: String,
    commit: Option<TagCommit>,
}

#[derive(Debug, Deserialize)]
struct TagCommit {
    sha: Option<String>,
    id: Option<String>,
}
