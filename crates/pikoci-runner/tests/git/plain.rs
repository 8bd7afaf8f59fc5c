//! The plain-git path of the builtin `git` type (its HCL scripts: `git ls-remote`, clone with
//! the cache mirror, push) against repositories served by `git daemon`.

use std::collections::BTreeMap;

use serde_json::json;

use super::support::{GitDaemon, Upstream, build, git};

/// A pipeline with resource `git.app` (params given as HCL lines) and a job `build` that gets
/// it and runs `script` in a task named `show`.
fn get_then_task(params: &str, script: &str) -> String {
    format!(
        r#"
resource "git" "app" {{
  params {{
    {params}
  }}
}}

job "build" {{
  get "git" "app" {{}}

  task "show" {{
    run "exec" {{
      path = "/bin/sh"
      args = ["-ec", "{script}"]
    }}
  }}
}}
"#
    )
}

#[tokio::test]
async fn a_local_get_clones_the_newest_commit_for_the_next_task() {
    let root = tempfile::tempdir().unwrap();
    let upstream = Upstream::create(root.path());
    let daemon = GitDaemon::start(&upstream.srv);
    let head = upstream.head("main");
    let hcl = get_then_task(
        &format!("url = \"{}\"", daemon.url("app.git")),
        "cat app/README; echo; git -C app rev-parse HEAD",
    );

    let run = build(&hcl, "build", root.path(), BTreeMap::new()).await;

    run.assert_succeeded();
    assert_eq!(run.events.used(), [json!({ "ref": head })]);
    let output = run.events.output();
    assert!(
        output.contains("checking git.app for its newest version"),
        "{output}"
    );
    assert!(output.contains(&format!("app: {head} first")), "{output}");
    assert!(output.contains("hello"), "{output}");
    assert!(output.contains(&head), "{output}");
}

#[tokio::test]
async fn a_second_build_updates_and_uses_the_cache_mirror() {
    let root = tempfile::tempdir().unwrap();
    let upstream = Upstream::create(root.path());
    let daemon = GitDaemon::start(&upstream.srv);
    let hcl = get_then_task(
        &format!("url = \"{}\"", daemon.url("app.git")),
        "cat app/README; echo; test ! -e app/.git/objects/info/alternates && echo independent",
    );
    let first = build(&hcl, "build", root.path(), BTreeMap::new()).await;
    first.assert_succeeded();
    let mirror = root.path().join("cache/main/demo/git.app/repo");
    assert_eq!(git(&mirror, &["rev-parse", "--is-bare-repository"]), "true");
    assert_eq!(git(&mirror, &["rev-parse", "main"]), upstream.head("main"));
    // Shows below that the second build updates this mirror instead of making a new one.
    std::fs::write(mirror.join("pikoci-test-marker"), "").unwrap();

    let second_head = upstream.commit("main", "README", "hello again", "second");
    let second = build(&hcl, "build", root.path(), BTreeMap::new()).await;

    second.assert_succeeded();
    assert_eq!(second.events.used(), [json!({ "ref": second_head })]);
    let output = second.events.output();
    assert!(output.contains("hello again"), "{output}");
    assert!(
        output.contains("independent"),
        "the clone still needs the cache:\n{output}"
    );
    assert!(!output.contains("could not update the cache"), "{output}");
    assert!(
        mirror.join("pikoci-test-marker").exists(),
        "the mirror was recreated"
    );
    assert_eq!(git(&mirror, &["rev-parse", "main"]), second_head);
}

#[tokio::test]
async fn the_branch_param_selects_what_is_checked_and_cloned() {
    let root = tempfile::tempdir().unwrap();
    let upstream = Upstream::create(root.path());
    let feature = upstream.commit("feature", "FEATURE", "on feature", "feature work");
    upstream.commit("main", "README", "main moved on", "main work");
    let daemon = GitDaemon::start(&upstream.srv);
    let hcl = get_then_task(
        &format!(
            "url = \"{}\"\n    branch = \"feature\"",
            daemon.url("app.git")
        ),
        "cat app/FEATURE; echo; git -C app rev-parse --abbrev-ref HEAD",
    );

    let run = build(&hcl, "build", root.path(), BTreeMap::new()).await;

    run.assert_succeeded();
    assert_ne!(feature, upstream.head("main"));
    assert_eq!(run.events.used(), [json!({ "ref": feature })]);
    let output = run.events.output();
    assert!(output.contains("on feature"), "{output}");
    assert!(output.lines().any(|l| l == "feature"), "{output}");
}

#[tokio::test]
async fn tag_mode_gets_the_newest_tag_in_version_order() {
    let root = tempfile::tempdir().unwrap();
    let upstream = Upstream::create(root.path());
    upstream.tag("main", "v1.9.0");
    let newest = upstream.commit("main", "README", "ten", "ten");
    upstream.tag("main", "v1.10.0");
    upstream.commit("main", "README", "two", "two");
    upstream.tag("main", "v1.2.0");
    let daemon = GitDaemon::start(&upstream.srv);
    let hcl = get_then_task(
        &format!("url = \"{}\"\n    tag = \"true\"", daemon.url("app.git")),
        "git -C app describe --tags --exact-match; cat app/README",
    );

    let run = build(&hcl, "build", root.path(), BTreeMap::new()).await;

    run.assert_succeeded();
    // Annotated tags: the version names the commit, not the tag object.
    assert_eq!(
        run.events.used(),
        [json!({ "ref": newest, "tag": "v1.10.0" })]
    );
    let output = run.events.output();
    assert!(output.lines().any(|l| l == "v1.10.0"), "{output}");
    assert!(output.contains("ten"), "{output}");
}

#[tokio::test]
async fn a_put_pushes_the_commit_a_task_made_and_reports_it() {
    let root = tempfile::tempdir().unwrap();
    let upstream = Upstream::create(root.path());
    let daemon = GitDaemon::start(&upstream.srv);
    let before = upstream.head("main");
    let hcl = format!(
        r#"
resource "git" "app" {{
  params {{
    url = "{url}"
  }}
}}

job "release" {{
  get "git" "app" {{}}

  task "change" {{
    run "exec" {{
      path = "/bin/sh"
      args = ["-ec", "cd app && echo changed > CHANGE && git add CHANGE && git -c user.name=ci -c user.email=ci@example.com commit -q -m change"]
    }}
  }}

  put "git" "app" {{
    tag = "v1.0.0"
  }}
}}
"#,
        url = daemon.url("app.git")
    );
    // A worker-style build: the version to get is given, and puts run.
    let versions = BTreeMap::from([("git.app".to_owned(), json!({ "ref": before }))]);

    let run = build(&hcl, "release", root.path(), versions).await;

    run.assert_succeeded();
    let after = upstream.head("main");
    assert_ne!(after, before, "nothing was pushed");
    assert_eq!(
        git(&upstream.bare, &["log", "-1", "--format=%s", "main"]),
        "change"
    );
    assert_eq!(git(&upstream.bare, &["rev-parse", "main~1"]), before);
    assert_eq!(
        git(&upstream.bare, &["rev-parse", "v1.0.0^{commit}"]),
        after
    );
    assert_eq!(run.events.produced(), [json!({ "ref": after })]);
    let output = run.events.output();
    assert!(
        output.contains(&format!("[{{\"ref\":\"{after}\"}}]")),
        "the put did not print the new version:\n{output}"
    );
}
