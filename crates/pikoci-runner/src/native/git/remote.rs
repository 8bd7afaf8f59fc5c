//! What the check needs to know about a repository URL: its host, its path, which provider
//! serves it and where that provider's API lives.

use std::fmt;

/// A git hosting provider with an API the check knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Provider {
    GitHub,
    GitLab,
    /// Gitea and Forgejo (Forgejo keeps Gitea's API).
    Gitea,
}

impl Provider {
    /// Parses the `provider` param.
    pub(crate) fn parse(name: &str) -> Result<Provider, String> {
        match name.trim().to_ascii_lowercase().as_str() {
            "github" => Ok(Provider::GitHub),
            "gitlab" => Ok(Provider::GitLab),
            "gitea" | "forgejo" => Ok(Provider::Gitea),
            other => Err(format!(
                "unknown provider \"{other}\": use github, gitlab, gitea or forgejo"
            )),
        }
    }

    /// The provider of the public instances recognised by their host name.
    pub(crate) fn detect(host: &str) -> Option<Provider> {
        match host.to_ascii_lowercase().as_str() {
            "github.com" | "www.github.com" => Some(Provider::GitHub),
            "gitlab.com" | "www.gitlab.com" => Some(Provider::GitLab),
            "codeberg.org" => Some(Provider::Gitea),
            _ => None,
        }
    }
}

impl fmt::Display for Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Provider::GitHub => "GitHub",
            Provider::GitLab => "GitLab",
            Provider::Gitea => "Gitea",
        })
    }
}

/// A repository URL taken apart (`https://`, `http://`, `ssh://`, `git://` or `user@host:path`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Remote {
    /// `http` or `https` for web URLs; `None` for ssh, git and scp-like URLs.
    pub(crate) web_scheme: Option<String>,
    /// The host name, without user or port.
    pub(crate) host: String,
    /// The port, only for web URLs (an ssh port says nothing about the API's).
    pub(crate) port: Option<u16>,
    /// The path segments, the last one without `.git`.
    pub(crate) segments: Vec<String>,
}

impl Remote {
    /// Parses `url`; `None` for local paths, `file://` and anything unrecognised.
    pub(crate) fn parse(url: &str) -> Option<Remote> {
        let url = url.trim();
        let (scheme, rest) = match url.split_once("://") {
            Some((scheme, rest)) => (Some(scheme.to_ascii_lowercase()), rest),
            None => (None, url),
        };
        let (authority, path) = match scheme.as_deref() {
            Some("http" | "https" | "ssh" | "git" | "git+ssh" | "ssh+git") => {
                rest.split_once('/').unwrap_or((rest, ""))
            }
            Some(_) => return None,
            // scp-like `user@host:path`: a colon before any slash.
            None => {
                let (authority, path) = rest.split_once(':')?;
                if authority.is_empty() || authority.contains('/') {
                    return None;
                }
                (authority, path)
            }
        };
        let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
        let (host, port) = split_port(host_port)?;
        if host.is_empty() {
            return None;
        }
        let web_scheme = scheme.filter(|s| s == "http" || s == "https");
        let mut segments: Vec<String> = path
            .split(['?', '#'])
            .next()
            .unwrap_or("")
            .split('/')
            .filter(|s| !s.is_empty() && *s != "~")
            .map(str::to_owned)
            .collect();
        if let Some(last) = segments.last_mut()
            && let Some(stripped) = last.strip_suffix(".git")
        {
            *last = stripped.to_owned();
        }
        segments.retain(|s| !s.is_empty());
        Some(Remote {
            port: if web_scheme.is_some() { port } else { None },
            web_scheme,
            host: host.to_owned(),
            segments,
        })
    }

    /// The web address of the server: the URL's own scheme and port for http(s) URLs,
    /// `https://host` for the others.
    fn web_root(&self) -> String {
        let scheme = self.web_scheme.as_deref().unwrap_or("https");
        match self.port {
            Some(port) => format!("{scheme}://{}:{port}", self.host),
            None => format!("{scheme}://{}", self.host),
        }
    }

    /// The API base URL of `provider` for this repository, derived from the URL.
    pub(crate) fn api_base(&self, provider: Provider) -> String {
        match provider {
            Provider::GitHub if Provider::detect(&self.host) == Some(Provider::GitHub) => {
                "https://api.github.com".to_owned()
            }
            // GitHub Enterprise Server.
            Provider::GitHub => format!("{}/api/v3", self.web_root()),
            Provider::GitLab => format!("{}/api/v4", self.web_root()),
            // Gitea may be served under a sub-path: what precedes owner/repo.
            Provider::Gitea => {
                let prefix_len = self.segments.len().saturating_sub(2);
                let mut base = self.web_root();
                for segment in &self.segments[..prefix_len] {
                    base.push('/');
                    base.push_str(segment);
                }
                base.push_str("/api/v1");
                base
            }
        }
    }

    /// How `provider`'s API names this repository: `owner/repo` (GitHub, Gitea) or the full
    /// project path (GitLab), minus `api_prefix`, the path a server is installed under.
    pub(crate) fn repository(&self, provider: Provider, api_prefix: &[String]) -> Option<String> {
        let segments = match provider {
            Provider::GitHub | Provider::Gitea => {
                &self.segments[self.segments.len().saturating_sub(2)..]
            }
            Provider::GitLab => match self.segments.strip_prefix(api_prefix) {
                Some(rest) if !api_prefix.is_empty() => rest,
                _ => &self.segments[..],
            },
        };
        (segments.len() >= 2).then(|| segments.join("/"))
    }
}

fn split_port(host_port: &str) -> Option<(&str, Option<u16>)> {
    // A bracketed IPv6 address keeps its brackets (it is used in URLs as is).
    if host_port.starts_with('[') {
        let end = host_port.find(']')?;
        let (host, rest) = host_port.split_at(end + 1);
        let port = rest.strip_prefix(':').and_then(|p| p.parse().ok());
        return Some((host, port));
    }
    match host_port.rsplit_once(':') {
        Some((host, port)) => Some((host, port.parse().ok())),
        None => Some((host_port, None)),
    }
}

/// The path of an API base URL before the provider's API root (`/gitlab` in
/// `https://host/gitlab/api/v4`), as segments.
pub(crate) fn api_prefix(api_base: &str) -> Vec<String> {
    let path = api_base
        .split_once("://")
        .map_or("", |(_, rest)| rest.split_once('/').map_or("", |(_, p)| p));
    let segments: Vec<String> = path
        .split('/')
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect();
    match segments.iter().position(|s| s == "api") {
        Some(at) => segments[..at].to_vec(),
        None => segments,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn remote(url: &str) -> Remote {
        Remote::parse(url).unwrap_or_else(|| panic!("{url} did not parse"))
    }

    #[test]
    fn parses_the_url_forms_git_accepts() {
        let https = remote("https://oauth2:secret@github.com/octo/app.git");
        assert_eq!(https.host, "github.com");
        assert_eq!(https.segments, ["octo", "app"]);
        assert_eq!(https.web_scheme.as_deref(), Some("https"));

        let ssh = remote("ssh://git@gitlab.example.com:2222/group/sub/app.git");
        assert_eq!(ssh.host, "gitlab.example.com");
        assert_eq!(ssh.port, None, "an ssh port is not the API's port");
        assert_eq!(ssh.segments, ["group", "sub", "app"]);

        let scp = remote("git@github.com:octo/app.git");
        assert_eq!((scp.host.as_str(), scp.segments.len()), ("github.com", 2));

        let http = remote("http://127.0.0.1:3000/forge/owner/app/");
        assert_eq!(http.port, Some(3000));
        assert_eq!(http.segments, ["forge", "owner", "app"]);

        assert_eq!(Remote::parse("file:///srv/git/app.git"), None);
        assert_eq!(Remote::parse("/srv/git/app.git"), None);
        assert_eq!(Remote::parse("../app"), None);
    }

    #[test]
    fn derives_each_providers_api_base() {
        let cases = [
            (
                "https://github.com/o/r.git",
                Provider::GitHub,
                "https://api.github.com",
            ),
            (
                "git@github.com:o/r.git",
                Provider::GitHub,
                "https://api.github.com",
            ),
            (
                "https://ghe.example.com/o/r",
                Provider::GitHub,
                "https://ghe.example.com/api/v3",
            ),
            (
                "https://gitlab.com/g/s/r.git",
                Provider::GitLab,
                "https://gitlab.com/api/v4",
            ),
            (
                "ssh://git@gl.example.com:22/g/r",
                Provider::GitLab,
                "https://gl.example.com/api/v4",
            ),
            (
                "http://127.0.0.1:3000/o/r.git",
                Provider::Gitea,
                "http://127.0.0.1:3000/api/v1",
            ),
            (
                "https://example.com/forge/o/r",
                Provider::Gitea,
                "https://example.com/forge/api/v1",
            ),
        ];
        for (url, provider, base) in cases {
            assert_eq!(remote(url).api_base(provider), base, "{url}");
        }
    }

    #[test]
    fn names_the_repository_as_each_api_does() {
        let nested = remote("https://example.com/gitlab/group/sub/app.git");
        assert_eq!(
            nested.repository(Provider::GitLab, &[]).as_deref(),
            Some("gitlab/group/sub/app")
        );
        let prefix = api_prefix("https://example.com/gitlab/api/v4");
        assert_eq!(prefix, ["gitlab"]);
        assert_eq!(
            nested.repository(Provider::GitLab, &prefix).as_deref(),
            Some("group/sub/app")
        );
        assert_eq!(
            nested.repository(Provider::Gitea, &[]).as_deref(),
            Some("sub/app")
        );
        assert_eq!(
            remote("https://github.com/app").repository(Provider::GitHub, &[]),
            None
        );
    }

    #[test]
    fn detects_public_hosts_and_parses_provider_names() {
        assert_eq!(Provider::detect("GitHub.com"), Some(Provider::GitHub));
        assert_eq!(Provider::detect("gitlab.com"), Some(Provider::GitLab));
        assert_eq!(Provider::detect("git.example.com"), None);
        assert_eq!(Provider::parse("Forgejo"), Ok(Provider::Gitea));
        assert!(
            Provider::parse("bitbucket")
                .unwrap_err()
                .contains("github, gitlab")
        );
    }
}
