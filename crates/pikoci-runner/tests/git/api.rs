//! The worker's provider API checks (`GitChecks`) against recorded GitHub, GitLab and
//! Gitea/Forgejo responses (`tests/data/git-api/`) served on loopback: request paths,
//! authentication headers, the three modes, the first-check rule, provider detection, pagination.

use std::collections::BTreeMap;

use pikoci_core::ResourceRef;
use pikoci_core::engine::env::filter_params;
use pikoci_core::engine::{CheckRequest, NativeCheckError, NativeChecks};
use pikoci_runner::native::GitChecks;
use serde_json::{Value, json};

use super::http::{Request, Response, Server};
use super::support::pipeline;

pub(crate) const TOKEN: &str = "ghp_rEc0rDeDt0KeNf0rPiKoCiTeStS";

pub(crate) fn fixture(name: &str) -> String {
    let path = format!("{}/tests/data/git-api/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// A server answering `routes` (path and query, exactly) and 404 to anything else.
pub(crate) fn api(routes: Vec<(String, Response)>) -> Server {
    let routes: BTreeMap<String, Response> = routes.into_iter().collect();
    Server::start(move |request| {
        routes
            .get(&request.target)
            .cloned()
            .unwrap_or_else(|| Response::json(404, r#"{"message":"Not Found"}"#))
    })
}

pub(crate) fn ok(path: &str, fixture_name: &str) -> (String, Response) {
    (path.to_owned(), Response::json(200, fixture(fixture_name)))
}

/// Runs the native check of resource `<type_name>.app` with `params`, in a pipeline that also
/// holds `declarations`.
pub(crate) async fn check_as(
    checks: &GitChecks,
    declarations: &str,
    type_name: &str,
    params: &[(&str, &str)],
    newest: Option<Value>,
) -> Option<Result<Vec<Value>, NativeCheckError>> {
    let lines: String = params
        .iter()
        .map(|(k, v)| format!("    {k} = \"{v}\"\n"))
        .collect();
    let hcl = format!(
        "{declarations}\nresource \"{type_name}\" \"app\" {{\n  params {{\n{lines}  }}\n}}\n\n\
         job \"j\" {{\n  get \"{type_name}\" \"app\" {{}}\n}}\n"
    );
    let pipeline = pipeline(&hcl);
    let reference = ResourceRef {
        type_name: type_name.to_owned(),
        name: "app".to_owned(),
    };
    let resource = pipeline.resource(&reference).unwrap();
    let resource_type = pipeline.resource_type(type_name).unwrap();
    let (accepted, warnings) = filter_params(
        &resource.params,
        &resource_type.params,
        "resource_type",
        type_name,
    );
    assert!(warnings.is_empty(), "{warnings:?}");
    let request = CheckRequest {
        resource,
        resource_type,
        params: &accepted,
        newest: newest.as_ref(),
    };
    checks.check(request).await
}

pub(crate) async fn check(
    params: &[(&str, &str)],
    newest: Option<Value>,
) -> Result<Vec<Value>, String> {
    check_as(&GitChecks::new(), "", "git", params, newest)
        .await
        .expect("the API check handles this resource")
        .map_err(|error| error.to_string())
}

pub(crate) fn targets(requests: &[Request]) -> Vec<&str> {
    requests.iter().map(|r| r.target.as_str()).collect()
}

#[tokio::test]
async fn github_commits_with_the_provider_detected_from_the_url() {
    let commits = "/repos/octo-org/app/commits?per_page=1";
    let server = api(vec![
        ok(&format!("{commits}&sha=main"), "github/commits.json"),
        ok(commits, "github/commits.json"),
    ]);
    let url = server.url();
    let base = [
        ("url", "https://github.com/octo-org/app.git"),
        ("token", TOKEN),
        ("api_url", url.as_str()),
    ];
    let head = json!([{ "ref": "25e2d2f855baff23f146db3620870365494c7005" }]);

    let on_main = check(&[&base[..], &[("branch", "main")]].concat(), None).await;
    let on_default = check(&base, None).await;

    assert_eq!(Value::from(on_main.unwrap()), head);
    assert_eq!(Value::from(on_default.unwrap()), head);
    let requests = server.requests();
    let sha_main = format!("{commits}&sha=main");
    assert_eq!(targets(&requests), [sha_main.as_str(), commits]);
    for request in &requests {
        assert_eq!(request.method, "GET");
        let bearer = format!("Bearer {TOKEN}");
        assert_eq!(request.header("Authorization"), Some(bearer.as_str()));
        assert_eq!(
            request.header("Accept"),
            Some("application/vnd.github+json")
        );
        assert_eq!(request.header("X-GitHub-Api-Version"), Some("2022-11-28"));
    }
}

#[tokio::test]
async fn github_pull_requests_newest_alone_on_the_first_check() {
    let pulls = "/repos/octo-org/app/pulls?state=open&per_page=100";
    let server = api(vec![ok(pulls, "github/pulls.json")]);
    let url = server.url();
    let params = [
        ("url", "git@github.com:octo-org/app.git"),
        ("token", TOKEN),
        ("pr", "true"),
        ("api_url", url.as_str()),
    ];
    let seen = Some(json!({ "ref": "fcc412303e958f4b71aa676a6a41041d3623d2f7", "pr": 41 }));
    let with_branch = |branch| [&params[..], &[("branch", branch)]].concat();

    let first = check(&params, None).await.unwrap();
    let later = check(&params, seen.clone()).await.unwrap();
    let to_main = check(&with_branch("main"), seen).await.unwrap();
    let to_release = check(&with_branch("release-1.x"), None).await.unwrap();

    assert_eq!(
        first,
        [json!({ "ref": "c6e6ba826ee8cd95440f64cfb95db3f047fee009", "pr": 45 })]
    );
    let prs = |v: &[Value]| {
        v.iter()
            .map(|v| v["pr"].as_u64().unwrap())
            .collect::<Vec<_>>()
    };
    assert_eq!(prs(&later), [41, 44, 45]);
    assert_eq!(later[1]["ref"], "dea4982c9336f362b2f86f21ee46ecdfa14e3fd0");
    assert_eq!(prs(&to_main), [41, 45]);
    assert_eq!(prs(&to_release), [44]);
    assert!(server.requests().iter().all(|r| r.target == pulls));
}

#[tokio::test]
async fn github_tags_across_pages_in_version_order() {
    let first_page = "/repos/octo-org/app/tags?per_page=100";
    let second_page = "/repositories/647892035/tags?per_page=100&page=2";
    // The Link header names the server itself, as seen in the request's Host header.
    let server = Server::start(move |request| {
        let host = request.header("Host").unwrap_or_default();
        match request.target.as_str() {
            target if target == first_page => {
                let mut page = Response::json(200, fixture("github/tags-1.json"));
                let next = format!("http://{host}{second_page}");
                page.headers.push((
                    "Link".into(),
                    format!("<{next}>; rel=\"next\", <{next}>; rel=\"last\""),
                ));
                page
            }
            target if target == second_page => Response::json(200, fixture("github/tags-2.json")),
            _ => Response::json(404, r#"{"message":"Not Found"}"#),
        }
    });
    let url = server.url();
    let params = [
        ("url", "https://github.com/octo-org/app"),
        ("token", TOKEN),
        ("tag", "true"),
        ("api_url", url.as_str()),
    ];
    let seen = |tag: &str| Some(json!({ "ref": "x", "tag": tag }));

    let first = check(&params, None).await;
    let after_1_9 = check(&params, seen("v1.9.0")).await.unwrap();
    let after_newest = check(&params, seen("v2.0.0")).await.unwrap();

    assert_eq!(
        first.unwrap(),
        [json!({ "ref": "d8a8221321fd7f0ab55168292a26b4eed9c5cb2c", "tag": "v2.0.0" })]
    );
    assert_eq!(
        after_1_9,
        [
            json!({ "ref": "58c36c67291994c3973e3e46e86fb75543525d15", "tag": "v1.10.0" }),
            json!({ "ref": "d8a8221321fd7f0ab55168292a26b4eed9c5cb2c", "tag": "v2.0.0" }),
        ]
    );
    assert!(after_newest.is_empty());
    let requests = server.requests();
    assert_eq!(targets(&requests)[..2], [first_page, second_page]);
    let bearer = format!("Bearer {TOKEN}");
    assert!(
        requests
            .iter()
            .all(|r| r.header("Authorization") == Some(bearer.as_str()))
    );
}

#[tokio::test]
async fn github_points_the_next_page_elsewhere_and_is_not_followed() {
    let first_page = "/repos/octo-org/app/tags?per_page=100";
    let mut page = Response::json(200, fixture("github/tags-1.json"));
    page.headers.push((
        "Link".into(),
        "<https://elsewhere.example.com/tags?page=2>; rel=\"next\"".into(),
    ));
    let server = api(vec![(first_page.to_owned(), page)]);
    let url = server.url();
    let params = [
        ("url", "https://github.com/octo-org/app"),
        ("token", TOKEN),
        ("tag", "true"),
        ("api_url", url.as_str()),
    ];

    let error = check(&params, None).await.unwrap_err();

    assert!(error.contains("another server"), "{error}");
    assert!(error.contains("not following it"), "{error}");
}

#[tokio::test]
async fn gitlab_commits_merge_requests_and_tags() {
    let project = "/api/v4/projects/platform%2Ftools%2Fapp";
    let server = api(vec![
        ok(
            &format!("{project}/repository/commits?per_page=1&ref_name=main"),
            "gitlab/commits.json",
        ),
        ok(
            &format!("{project}/merge_requests?state=opened&per_page=100"),
            "gitlab/merge_requests.json",
        ),
        ok(
            &format!("{project}/repository/tags?per_page=100"),
            "gitlab/tags.json",
        ),
    ]);
    let api_url = format!("{}/api/v4", server.url());
    let params = [
        ("url", "https://gitlab.com/platform/tools/app.git"),
        ("token", TOKEN),
        ("api_url", api_url.as_str()),
    ];
    let with = |key, value| [&params[..], &[(key, value)]].concat();

    let commit = check(&with("branch", "main"), None).await.unwrap();
    let first_mr = check(&with("pr", "true"), None).await.unwrap();
    let later_mrs = check(&with("pr", "true"), Some(json!({ "ref": "x", "pr": 9 }))).await;
    let tag = check(&with("tag", "true"), None).await.unwrap();

    assert_eq!(
        commit,
        [json!({ "ref": "d1029c5b98f2115abf9899d639f9be0865cd1585" })]
    );
    // !13 has no head yet (GitLab is still computing it): it waits for a later check.
    assert_eq!(
        first_mr,
        [json!({ "ref": "88c57e3d54208db0660751f7850f5a799ba54651", "pr": 12 })]
    );
    let iids: Vec<_> = later_mrs.unwrap().iter().map(|v| v["pr"].clone()).collect();
    assert_eq!(iids, [json!(9), json!(12)]);
    // An annotated tag: the version names its commit, not the tag object (`target`).
    assert_eq!(
        tag,
        [json!({ "ref": "dbfe2825fd1f1e282482e2f1c8ca03df83920c0f", "tag": "v3.1.0" })]
    );
    for request in server.requests() {
        assert_eq!(request.header("PRIVATE-TOKEN"), Some(TOKEN));
        assert_eq!(request.header("Authorization"), None);
        assert!(request.target.starts_with(project), "{}", request.target);
    }
}

#[tokio::test]
async fn forgejo_on_a_self_hosted_server_derives_the_api_from_the_url() {
    let repo = "/api/v1/repos/pikoci/app";
    let server = api(vec![
        ok(
            &format!("{repo}/commits?limit=1&stat=false&verification=false&files=false&sha=main"),
            "gitea/commits.json",
        ),
        ok(
            &format!("{repo}/pulls?state=open&limit=50"),
            "gitea/pulls.json",
        ),
        ok(&format!("{repo}/tags?limit=50"), "gitea/tags.json"),
    ]);
    let url = format!("{}/pikoci/app.git", server.url());
    let params = [
        ("url", url.as_str()),
        ("token", TOKEN),
        ("provider", "forgejo"),
    ];
    let with = |key, value| [&params[..], &[(key, value)]].concat();

    let commit = check(&with("branch", "main"), None).await.unwrap();
    let prs = check(&with("pr", "true"), Some(json!({ "ref": "x", "pr": 3 }))).await;
    let tag = check(&with("tag", "true"), None).await.unwrap();

    assert_eq!(
        commit,
        [json!({ "ref": "7b1e3cd30c3f2a9e4b8a1e35c1c1f0d9a6a4d2e8" })]
    );
    assert_eq!(
        prs.unwrap(),
        [
            json!({ "ref": "7162b4195f082b4d79a2b0ef7802280567f4624a", "pr": 3 }),
            json!({ "ref": "5ddb3f78f6beeb9138805ed48d1a36c894538246", "pr": 8 }),
        ]
    );
    // In version order 0.10.0-rc.1 comes after 0.4.0, whatever order the API lists them in.
    assert_eq!(
        tag,
        [json!({ "ref": "0bdb90fb53225f5cef2decdcdf0cece314a988e8", "tag": "v0.10.0-rc.1" })]
    );
    let token_header = format!("token {TOKEN}");
    for request in server.requests() {
        assert_eq!(request.header("Authorization"), Some(token_header.as_str()));
    }
}
