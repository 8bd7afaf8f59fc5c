//! The token param put into `https://` URLs by the type's scripts, against `git http-backend`
//! behind a TLS front that demands `oauth2:<token>` by HTTP basic auth.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use base64::Engine as _;
use serde_json::json;

use super::http::{Response, Server, TlsProxy, git_http_backend};
use super::support::{Upstream, build, git};

const TOKEN: &str = "glpat-s3cr3t-t0ken";

/// The `Authorization` header of `oauth2:<TOKEN>`.
fn basic_auth() -> String {
    let credentials = format!("oauth2:{TOKEN}");
    format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(credentials)
    )
}

/// A git server that serves `srv` only to requests authenticated as `oauth2:<TOKEN>`.
fn authenticated_git_server(srv: &Path) -> Server {
    let srv = Arc::new(srv.to_path_buf());
    let expected = basic_auth();
    Server::start(move |request| {
        if request.header("Authorization") == Some(expected.as_str()) {
            git_http_backend(&srv, request, Some("oauth2"))
        } else {
            let mut response = Response::json(401, r#"{"message":"401 Unauthorized"}"#);
            response
                .headers
                .push(("WWW-Authenticate".into(), "Basic realm=\"git\"".into()));
            response
        }
    })
}

/// The builtin git type with its commands moved to the `shell` runner, which passes
/// `GIT_SSL_CAINFO` so that git trusts the test certificate (how a user adds a private CA).
fn pipeline(url: &str, ca_file: &Path) -> String {
    format!(
        r#"
resource_type "git" {{
  source = "pikoci://git"

  runner "shell" {{
    GIT_SSL_CAINFO = "{ca}"
  }}
}}

resource "git" "app" {{
  params {{
    url   = "{url}"
    token = "{TOKEN}"
  }}
}}

job "read" {{
  get "git" "app" {{}}

  task "show" {{
    run "exec" {{
      path = "/bin/sh"
      args = ["-ec", "cat app/README; echo; git -C app remote get-url origin; if grep -rq {TOKEN} app/.git; then echo token-left-behind; fi"]
    }}
  }}
}}

job "release" {{
  get "git" "app" {{}}

  task "change" {{
    run "exec" {{
      path = "/bin/sh"
      args = ["-ec", "cd app && echo v2 > README && git -c user.name=ci -c user.email=ci@example.com commit -qam v2"]
    }}
  }}

  put "git" "app" {{}}
}}
"#,
        ca = ca_file.display()
    )
}

#[tokio::test]
async fn the_token_authenticates_check_clone_and_push_over_https() {
    let root = tempfile::tempdir().unwrap();
    let upstream = Upstream::create(root.path());
    let server = authenticated_git_server(&upstream.srv);
    let tls_dir = root.path().join("tls");
    std::fs::create_dir_all(&tls_dir).unwrap();
    let proxy = TlsProxy::start(&tls_dir, server.port());
    let url = format!("https://127.0.0.1:{}/app.git", proxy.port);
    let hcl = pipeline(&url, &proxy.ca_file);
    let first = upstream.head("main");

    let read = build(&hcl, "read", root.path(), BTreeMap::new()).await;

    read.assert_succeeded();
    assert_eq!(read.events.used(), [json!({ "ref": first })]);
    let output = read.events.output();
    assert!(output.contains("hello"), "{output}");
    assert!(
        output.lines().any(|l| l == url),
        "origin is not the plain URL:\n{output}"
    );
    assert!(!output.contains("token-left-behind"), "{output}");

    let versions = BTreeMap::from([("git.app".to_owned(), json!({ "ref": first }))]);
    let release = build(&hcl, "release", root.path(), versions).await;

    release.assert_succeeded();
    let pushed = upstream.head("main");
    assert_eq!(git(&upstream.bare, &["show", "main:README"]), "v2");
    assert_eq!(release.events.produced(), [json!({ "ref": pushed })]);

    let mirror = root.path().join("cache/main/demo/git.app/repo");
    assert_eq!(
        git(&mirror, &["rev-parse", "main"]),
        first,
        "the mirror was not used"
    );
    assert_no_file_holds_the_token(&root.path().join("cache"));

    let requests = server.requests();
    let expected = basic_auth();
    let authorized: Vec<_> = requests
        .iter()
        .filter(|r| r.header("Authorization") == Some(expected.as_str()))
        .collect();
    let served = |needle: &str| authorized.iter().any(|r| r.target.contains(needle));
    assert!(served("service=git-upload-pack"), "{requests:#?}");
    assert!(served("/git-upload-pack"), "{requests:#?}");
    assert!(
        served("/git-receive-pack"),
        "no authenticated push: {requests:#?}"
    );
}

#[tokio::test]
async fn without_the_token_the_check_fails_at_once_instead_of_asking_for_a_password() {
    let root = tempfile::tempdir().unwrap();
    let upstream = Upstream::create(root.path());
    let server = authenticated_git_server(&upstream.srv);
    let tls_dir = root.path().join("tls");
    std::fs::create_dir_all(&tls_dir).unwrap();
    let proxy = TlsProxy::start(&tls_dir, server.port());
    let url = format!("https://127.0.0.1:{}/app.git", proxy.port);
    let hcl = pipeline(&url, &proxy.ca_file).replace(&format!("token = \"{TOKEN}\""), "");

    let read = build(&hcl, "read", root.path(), BTreeMap::new()).await;

    assert_eq!(read.status, pikoci_core::engine::Status::Failed);
    let output = read.events.output();
    assert!(output.contains("terminal prompts disabled"), "{output}");
}

/// The cache (the bare mirror) keeps no copy of the token, in any file.
fn assert_no_file_holds_the_token(dir: &Path) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            assert_no_file_holds_the_token(&path);
        } else {
            let bytes = std::fs::read(&path).unwrap();
            let text = String::from_utf8_lossy(&bytes);
            assert!(!text.contains(TOKEN), "{} holds the token", path.display());
        }
    }
}
