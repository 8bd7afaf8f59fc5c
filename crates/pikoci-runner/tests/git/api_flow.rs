//! The limits of the provider API check: its errors, which resources it takes, which HTTPS
//! servers it trusts, and a whole `get` through the engine (API check, then clone).

use std::collections::BTreeMap;

use pikoci_core::ErrorKind;
use pikoci_http::testing::SilentServer;
use pikoci_runner::native::GitChecks;
use serde_json::json;

use super::api::{TOKEN, api, check, check_as, fixture, ok, targets};
use super::http::{Response, Server, TlsProxy, git_http_backend};
use super::support::{Upstream, build, free_port};

#[tokio::test]
async fn errors_say_what_failed_and_never_show_the_token() {
    let server = api(vec![
        (
            "/repos/octo-org/app/commits?per_page=1".to_owned(),
            Response::json(401, fixture("github/401.json")),
        ),
        (
            "/projects/platform%2Fapp/repository/commits?per_page=1".to_owned(),
            Response::json(404, fixture("gitlab/404.json")),
        ),
    ]);
    let url = server.url();
    let github = [
        ("url", "https://github.com/octo-org/app.git"),
        ("token", TOKEN),
        ("api_url", url.as_str()),
    ];
    let gitlab = [
        ("url", "https://gitlab.com/platform/app"),
        ("token", TOKEN),
        ("api_url", url.as_str()),
    ];
    let closed = format!("http://127.0.0.1:{}", free_port());
    let unreachable = [
        ("url", "https://gitlab.com/platform/app"),
        ("token", TOKEN),
        ("api_url", closed.as_str()),
    ];
    let credentials = format!("https://oauth2:{TOKEN}@github.com/app.git");
    let not_a_repository = [("url", credentials.as_str()), ("token", TOKEN)];

    let errors = [
        check(&github, None).await.unwrap_err(),
        check(&gitlab, None).await.unwrap_err(),
        check(&unreachable, None).await.unwrap_err(),
        check(&not_a_repository, None).await.unwrap_err(),
    ];

    let expected = [
        format!(
            "GitHub API: GET {url}/repos/octo-org/app/commits?per_page=1 returned 401 \
             Unauthorized (\"Bad credentials\"): the token was rejected; check that it is valid \
             and has not expired"
        ),
        format!(
            "GitLab API: GET {url}/projects/platform%2Fapp/repository/commits?per_page=1 \
             returned 404 Not Found (\"404 Project Not Found\"): no such repository or branch, \
             or the token cannot see it; check url, branch and provider (or api_url)"
        ),
        format!(
            "GitLab API: GET {closed}/projects/platform%2Fapp/repository/commits?per_page=1 failed: "
        ),
        "\"https://oauth2:***@github.com/app.git\" does not name a GitHub repository (owner/name)"
            .to_owned(),
    ];
    for (error, expected) in errors.iter().zip(&expected) {
        assert!(
            error.starts_with(expected.as_str()),
            "{error}\n  expected: {expected}"
        );
        assert!(!error.contains(TOKEN), "{error}");
    }
    // The kinds tell the server what to do: a refused token or a missing repository is the
    // user's to fix (retrying will not help), an unreachable API may come back.
    let mut kinds = Vec::new();
    for params in [
        &github[..],
        &gitlab[..],
        &unreachable[..],
        &not_a_repository[..],
    ] {
        let error = check_as(&GitChecks::new(), "", "git", params, None)
            .await
            .expect("the API check handles this resource")
            .unwrap_err();
        kinds.push(error.kind());
    }
    assert_eq!(
        kinds,
        [
            ErrorKind::PermissionDenied,
            ErrorKind::NotFound,
            ErrorKind::Unavailable,
            ErrorKind::InvalidInput,
        ]
    );
}

#[tokio::test]
async fn only_the_builtin_type_with_a_token_and_a_provider_is_checked_natively() {
    let github = ("url", "https://github.com/octo-org/app.git");
    let inline = "resource_type \"git\" {\n  params = [\"url\", \"token\"]\n  \
                  check \"exec\" {\n    path = \"/bin/true\"\n  }\n}\n";
    let sourced = "resource_type \"my-git\" {\n  source = \"pikoci://git\"\n}\n";
    let closed = format!("http://127.0.0.1:{}", free_port());

    let checks = GitChecks::new();

    let no_token = check_as(&checks, "", "git", &[github], None).await;
    let with_token = [github, ("token", TOKEN)];
    let own_type = check_as(&checks, inline, "git", &with_token, None).await;
    let self_hosted = [("url", "https://git.example.com/o/app"), ("token", TOKEN)];
    let unknown_host = check_as(&checks, "", "git", &self_hosted, None).await;
    let params = [github, ("token", TOKEN), ("api_url", closed.as_str())];
    let renamed = check_as(&checks, sourced, "my-git", &params, None).await;

    assert!(no_token.is_none());
    assert!(
        own_type.is_none(),
        "a pipeline's own git type runs its own check"
    );
    assert!(
        unknown_host.is_none(),
        "without provider, git ls-remote does the check"
    );
    let renamed = renamed.expect("a type sourced from pikoci://git is the builtin");
    assert!(renamed.unwrap_err().to_string().contains(&closed));
}

#[tokio::test]
async fn dropping_a_check_closes_its_connection() {
    let mut server = SilentServer::start();
    let url = format!("{}/pikoci/app.git", server.base_url());
    let params = [
        ("url", url.as_str()),
        ("token", TOKEN),
        ("provider", "gitea"),
    ];
    tokio::select! {
        result = check(&params, None) => panic!("an unanswered check finished: {result:?}"),
        () = server.request_received() => {}
    }
    // The check was dropped with the select: its connection is closed now, not when the
    // request timeout would have ended a blocking request.
    let head = server.head_after_hang_up().await.unwrap();
    assert!(
        head.starts_with("GET /api/v1/repos/pikoci/app/commits?"),
        "{head}"
    );
}

#[tokio::test]
async fn an_https_api_is_trusted_only_with_its_certificate_authority() {
    let root = tempfile::tempdir().unwrap();
    let commits =
        "/api/v1/repos/pikoci/app/commits?limit=1&stat=false&verification=false&files=false";
    let server = api(vec![ok(commits, "gitea/commits.json")]);
    let proxy = TlsProxy::start(root.path(), server.port());
    let url = format!("https://127.0.0.1:{}/pikoci/app.git", proxy.port);
    let params = [
        ("url", url.as_str()),
        ("token", TOKEN),
        ("provider", "gitea"),
    ];
    let trusting = GitChecks::new().with_ca_file(&proxy.ca_file).unwrap();

    let untrusted = check_as(&GitChecks::new(), "", "git", &params, None).await;
    let trusted = check_as(&trusting, "", "git", &params, None).await;

    let error = untrusted.unwrap().unwrap_err();
    assert_eq!(error.kind(), ErrorKind::Unavailable);
    let error = error.to_string();
    let api_url = format!("https://127.0.0.1:{}{commits}", proxy.port);
    assert!(
        error.starts_with(&format!("Gitea API: GET {api_url} failed: ")),
        "{error}"
    );
    assert!(error.contains("certificate"), "{error}");
    assert_eq!(
        trusted.unwrap().unwrap(),
        [json!({ "ref": "7b1e3cd30c3f2a9e4b8a1e35c1c1f0d9a6a4d2e8" })]
    );
    let served = server.requests();
    assert_eq!(
        targets(&served),
        [commits],
        "only the trusted check reached the server"
    );
}

#[tokio::test]
async fn a_get_uses_the_api_check_then_clones_the_commit_it_found() {
    let root = tempfile::tempdir().unwrap();
    let upstream = Upstream::create(root.path());
    let head = upstream.head("main");
    // The recorded answer, its commit swapped for the test repository's.
    let commits =
        fixture("gitea/commits.json").replace("7b1e3cd30c3f2a9e4b8a1e35c1c1f0d9a6a4d2e8", &head);
    let srv = upstream.srv.clone();
    let server = Server::start(move |request| {
        if request
            .target
            .starts_with("/api/v1/repos/pikoci/app/commits?")
        {
            return Response::json(200, commits.clone());
        }
        let mut git_request = request.clone();
        git_request.target = request.target.replacen("/pikoci/", "/", 1);
        git_http_backend(&srv, &git_request, None)
    });
    let hcl = format!(
        r#"
resource "git" "app" {{
  params {{
    url      = "{url}/pikoci/app.git"
    token    = "{TOKEN}"
    provider = "gitea"
  }}
}}

job "build" {{
  get "git" "app" {{}}

  task "show" {{
    run "exec" {{
      path = "/bin/sh"
      args = ["-ec", "cat app/README"]
    }}
  }}
}}
"#,
        url = server.url()
    );

    let run = build(&hcl, "build", root.path(), BTreeMap::new()).await;

    run.assert_succeeded();
    assert_eq!(run.events.used(), [json!({ "ref": head })]);
    let output = run.events.output();
    assert!(
        output.contains("checking git.app for its newest version"),
        "{output}"
    );
    assert!(output.contains("hello"), "{output}");
    let api_calls: Vec<_> = server
        .requests()
        .into_iter()
        .filter(|r| r.target.starts_with("/api/"))
        .collect();
    assert_eq!(api_calls.len(), 1, "{api_calls:#?}");
    let token_header = format!("token {TOKEN}");
    assert_eq!(
        api_calls[0].header("Authorization"),
        Some(token_header.as_str())
    );
}
