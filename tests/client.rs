//! The `pikoci` client against a real `pikoci server`, as a user runs it: log in, set a
//! pipeline (seeing the diff first), trigger with `--watch` and see the exit status follow the
//! build, retry, read logs, pin a version, and the errors a user meets.

mod support;

use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Output, Stdio};

use serde_json::Value;
use support::server::ServerProcess;

const PIPELINE: &str = r#"
resource "cron" "tick" {
  check_interval = "@every 1h"
}

resource "trigger" "release" {}

job "on-release" {
  get "trigger" "release" {
    trigger = true
  }
  task "announce" {
    run "shell" {
      cmd = "echo releasing"
    }
  }
}

job "ok" {
  task "greet" {
    run "shell" {
      cmd = "echo hello from ok"
    }
  }
}

job "fails" {
  task "break" {
    run "shell" {
      cmd = "echo about to fail; exit 3"
    }
  }
}
"#;

/// `pikoci ARGS` with its own config directory (the saved targets).
fn client(config: &Path, args: &[&str]) -> Output {
    client_with(config, args, &[], None)
}

/// The same with environment variables and standard input.
fn client_with(config: &Path, args: &[&str], env: &[(&str, &str)], stdin: Option<&str>) -> Output {
    use std::io::Write as _;
    let mut child = support::pikoci()
        .env("XDG_CONFIG_HOME", config)
        .envs(env.iter().copied())
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("pikoci runs");
    if let Some(input) = stdin {
        let mut pipe = child.stdin.take().expect("stdin is piped");
        pipe.write_all(input.as_bytes()).expect("stdin");
    }
    child.wait_with_output().expect("pikoci runs")
}

/// Asserts the exit status; stdout.
fn expect(output: &Output, code: i32) -> String {
    let stdout = support::text(&output.stdout);
    let stderr = support::text(&output.stderr);
    assert_eq!(
        output.status.code(),
        Some(code),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
    stdout
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_user_drives_a_server_from_the_terminal() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("config");
    let file = support::write(dir.path(), "demo.hcl", PIPELINE);
    let work = dir.path().join("work");
    let server = ServerProcess::start(&[
        "--db-system",
        "mem",
        "--pubsub-system",
        "mem",
        "--run-worker",
        "--work-dir",
        work.to_str().unwrap(),
        "--secret-key",
        "client-test-only-0123456789abcdef",
    ]);
    let cli = |args: &[&str]| client(&config, args);

    // Without credentials, the server refuses, and nothing is saved.
    let anonymous = cli(&["login", "--server", &server.base, "--name", "local"]);
    expect(&anonymous, 1);
    assert!(
        support::text(&anonymous.stderr).contains("log in first"),
        "{}",
        support::text(&anonymous.stderr)
    );
    let wrong = client_with(
        &config,
        &[
            "login",
            "--server",
            &server.base,
            "-u",
            "admin",
            "--password-stdin",
        ],
        &[],
        Some("not-the-password\n"),
    );
    expect(&wrong, 1);
    assert!(support::text(&wrong.stderr).contains("wrong user name or password"));
    // Logging in saves the server and the session, readable by their owner only.
    let out = expect(
        &client_with(
            &config,
            &[
                "login",
                "--server",
                &server.base,
                "--name",
                "local",
                "--username",
                "admin",
                "--password-stdin",
            ],
            &[],
            Some(&format!("{}\n", support::server::ADMIN_PASSWORD)),
        ),
        0,
    );
    assert!(out.contains("saved"), "{out}");
    let out = expect(&cli(&["whoami"]), 0);
    assert!(
        out.contains("admin, a global admin,") && out.contains("session"),
        "{out}"
    );
    let targets = config.join("pikoci/targets.toml");
    let mode = std::fs::metadata(&targets).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "{mode:o}");
    let out = expect(&cli(&["target"]), 0);
    assert!(out.contains("local") && out.contains(&server.base), "{out}");

    // A dry run shows what would change and sets nothing.
    let out = expect(&cli(&["pipelines", "set", "demo", &file, "--dry-run"]), 0);
    for line in ["+ ok", "+ fails", "+ cron.tick", "dry run"] {
        assert!(out.contains(line), "{line:?} in {out}");
    }
    // The builtin types every pipeline has are no news.
    assert!(!out.contains("runner types"), "{out}");
    let (_, pipelines) = server.get("/teams/main/pipelines").await;
    assert_eq!(pipelines["data"], Value::Array(Vec::new()));
    // Without a terminal to ask, nothing is applied without --yes.
    let refused = cli(&["pipelines", "set", "demo", &file]);
    expect(&refused, 2);
    assert!(support::text(&refused.stderr).contains("--yes"));
    let out = expect(&cli(&["pipelines", "set", "demo", &file, "--yes"]), 0);
    assert!(out.contains("pipeline demo created"), "{out}");
    let out = expect(&cli(&["pipelines", "set", "demo", &file, "--yes"]), 0);
    assert!(out.contains("nothing to change"), "{out}");
    // A public pipeline is read by anyone, without a token, and not its file.
    let anonymous = |args: &[&str]| {
        let mut all = args.to_vec();
        all.extend_from_slice(&["--server", server.base.as_str()]);
        client_with(
            &dir.path().join("nobody"),
            &all,
            &[("PIKOCI_TOKEN", "")],
            None,
        )
    };
    expect(&anonymous(&["pipelines", "get", "demo"]), 1);
    expect(&cli(&["pipelines", "expose", "demo"]), 0);
    let out = expect(&anonymous(&["pipelines", "get", "demo"]), 0);
    assert!(out.contains("public") && out.contains("fails"), "{out}");
    let out = expect(&anonymous(&["pipelines", "get", "demo", "--json"]), 0);
    assert!(
        !out.contains("echo hello from ok") && !out.contains("\"config\""),
        "{out}"
    );
    expect(&anonymous(&["pipelines", "pause", "demo"]), 1);
    expect(&cli(&["pipelines", "hide", "demo"]), 0);
    expect(&anonymous(&["pipelines", "get", "demo"]), 1);
    // A change shows as one.
    let changed = support::write(
        dir.path(),
        "changed.hcl",
        &PIPELINE.replace("echo hello from ok", "echo hello again"),
    );
    let out = expect(
        &cli(&["pipelines", "set", "demo", &changed, "--dry-run"]),
        0,
    );
    assert!(out.contains("~ ok") && !out.contains("fails"), "{out}");
    // An invalid file is refused here, with its diagnostics.
    let invalid = support::write(
        dir.path(),
        "invalid.hcl",
        "job \"a\" {\n  tsk \"x\" {}\n}\n",
    );
    let refused = cli(&["pipelines", "set", "demo", &invalid, "--yes"]);
    expect(&refused, 1);
    assert!(
        support::text(&refused.stderr).contains("invalid.hcl:2:3"),
        "{}",
        support::text(&refused.stderr)
    );

    let out = expect(&cli(&["pipelines", "list"]), 0);
    assert!(out.contains("demo"), "{out}");

    // --watch follows the build and exits with its status.
    let out = expect(&cli(&["jobs", "trigger", "demo/ok", "--watch"]), 0);
    assert!(out.contains("hello from ok"), "{out}");
    assert!(out.contains("build demo/ok/1 succeeded"), "{out}");
    let out = expect(&cli(&["jobs", "trigger", "demo/fails", "--watch"]), 1);
    assert!(out.contains("about to fail"), "{out}");
    assert!(out.contains("build demo/fails/1 failed"), "{out}");
    // A retry runs as N.1, followed the same way.
    let out = expect(&cli(&["builds", "retry", "demo/fails/1", "--watch"]), 1);
    assert!(out.contains("started build demo/fails/1.1"), "{out}");
    let out = expect(&cli(&["builds", "watch", "demo/ok/1"]), 0);
    assert!(out.contains("hello from ok"), "{out}");
    // With --json, stdout is JSON only: one event per line, the end last.
    let out = expect(
        &cli(&["jobs", "trigger", "demo/ok", "--watch", "--json"]),
        0,
    );
    let events: Vec<Value> = out
        .lines()
        .map(|line| serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line:?}")))
        .collect();
    assert!(
        events.iter().any(|e| e["event"] == "log"
            && e["text"]
                .as_str()
                .is_some_and(|t| t.contains("hello from ok"))),
        "{out}"
    );
    assert_eq!(
        events.last(),
        Some(&serde_json::json!({"event": "end", "status": "succeeded"}))
    );

    // Lists for programs and for people.
    let out = expect(&cli(&["builds", "list", "demo/fails", "--json"]), 0);
    let builds: Value = serde_json::from_str(&out).unwrap();
    let numbers: Vec<&str> = builds
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["number"].as_str().unwrap())
        .collect();
    assert_eq!(numbers, ["1.1", "1"]);
    // Nothing to set is said in JSON too.
    let out = expect(
        &cli(&["pipelines", "set", "demo", &file, "--yes", "--json"]),
        0,
    );
    let nothing: Value = serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e}: {out}"));
    assert_eq!(nothing["applied"], false);
    let out = expect(&cli(&["builds", "list", "demo/fails"]), 0);
    assert!(out.contains("BUILD") && out.contains("failed"), "{out}");
    let out = expect(&cli(&["builds", "logs", "demo/fails/1", "--failed"]), 0);
    assert!(
        out.contains("break") && out.contains("about to fail"),
        "{out}"
    );
    let out = expect(&cli(&["builds", "get", "demo/ok/1"]), 0);
    assert!(out.contains("greet") && out.contains("succeeded"), "{out}");

    // Check a resource, pin a version, unpin.
    expect(&cli(&["resources", "check", "demo/cron.tick"]), 0);
    server
        .wait_until(
            "/teams/main/pipelines/demo/resources/cron.tick/versions",
            |page| page["data"].as_array().is_some_and(|v| !v.is_empty()),
        )
        .await;
    let out = expect(
        &cli(&["resources", "versions", "demo/cron.tick", "--json"]),
        0,
    );
    let versions: Value = serde_json::from_str(&out).unwrap();
    let id = versions[0]["id"].as_i64().unwrap().to_string();
    let out = expect(
        &cli(&[
            "resources",
            "pin",
            "demo/cron.tick",
            &id,
            "--comment",
            "until the fix lands",
        ]),
        0,
    );
    assert!(
        out.contains(&format!("pinned to version {id}: until the fix lands")),
        "{out}"
    );
    let (_, resource) = server
        .get("/teams/main/pipelines/demo/resources/cron.tick")
        .await;
    assert_eq!(resource["data"]["pinned_version_id"].to_string(), id);
    assert_eq!(resource["data"]["pin_comment"], "until the fix lands");
    expect(
        &cli(&["resources", "unpin", "demo/cron.tick", "--comment", "fixed"]),
        0,
    );
    let (_, resource) = server
        .get("/teams/main/pipelines/demo/resources/cron.tick")
        .await;
    assert_eq!(resource["data"]["pin_comment"], Value::Null);
    let out = expect(&cli(&["resources", "webhook-url", "demo/cron.tick"]), 0);
    assert!(
        out.starts_with(&format!("{}/api/v1/webhooks/", server.base)),
        "{out}"
    );

    // Firing a trigger makes a version of the team's trigger resources of that name, which
    // triggers their jobs.
    let out = expect(
        &cli(&["triggers", "fire", "release", "--value", "version=1.2"]),
        0,
    );
    assert!(out.contains("fired trigger release"), "{out}");
    let build = server
        .wait_finished("/teams/main/pipelines/demo/jobs/on-release/builds/1")
        .await;
    assert_eq!(build["status"], "succeeded", "{build:#}");
    let out = expect(&cli(&["triggers", "list", "release"]), 0);
    assert!(out.contains("\"version\":\"1.2\""), "{out}");

    let out = expect(&cli(&["workers", "list"]), 0);
    assert!(out.contains("running"), "{out}");
    // The embedded worker is alive: nothing to forget.
    let out = expect(&cli(&["workers", "prune"]), 0);
    assert!(out.contains("nothing to forget"), "{out}");

    // A build's report: the build and its output, saved as a file.
    let report = dir.path().join("report.json");
    let report_arg = report.to_str().unwrap();
    let saved = cli(&["builds", "report", "demo/fails/1", "-o", report_arg]);
    expect(&saved, 0);
    assert!(support::text(&saved.stderr).contains("saved the report of build demo/fails/1"));
    let written: Value = serde_json::from_slice(&std::fs::read(&report).unwrap()).unwrap();
    assert_eq!(written["build"]["status"], "failed");
    assert!(
        written["logs"]
            .as_array()
            .unwrap()
            .iter()
            .any(|chunk| chunk["text"].as_str().unwrap().contains("about to fail")),
        "{written:#}"
    );
    let kept = cli(&["builds", "report", "demo/fails/1", "-o", report_arg]);
    expect(&kept, 1);
    assert!(support::text(&kept.stderr).contains("--force"));
    expect(
        &cli(&[
            "builds",
            "report",
            "demo/fails/1",
            "-o",
            report_arg,
            "--force",
        ]),
        0,
    );

    // A failed build accepted as a warning; a version added by hand; a team made and deleted.
    let out = expect(&cli(&["builds", "mark-warning", "demo/fails/1"]), 0);
    assert!(out.contains("build demo/fails/1 is warning"), "{out}");
    let out = expect(
        &cli(&["resources", "add-version", "demo/cron.tick", "time=by-hand"]),
        0,
    );
    assert!(out.contains("added version"), "{out}");
    let out = expect(
        &cli(&["resources", "add-version", "demo/cron.tick", "time=by-hand"]),
        0,
    );
    assert!(out.contains("has this version already"), "{out}");
    // A trigger resource's versions come from its stream only.
    let refused = cli(&["resources", "add-version", "demo/trigger.release", "v=1"]);
    expect(&refused, 1);
    assert!(
        support::text(&refused.stderr).contains("fire the trigger instead"),
        "{}",
        support::text(&refused.stderr)
    );
    let out = expect(
        &cli(&["resources", "versions", "demo/cron.tick", "--json"]),
        0,
    );
    let newest: Value = serde_json::from_str(&out).unwrap();
    let by_hand = newest[0]["id"].as_i64().unwrap().to_string();
    let out = expect(
        &cli(&["resources", "version-builds", "demo/cron.tick", &by_hand]),
        0,
    );
    assert!(out.contains("has no builds here"), "{out}");
    expect(&cli(&["teams", "create", "scratch"]), 0);
    let out = expect(&cli(&["teams", "list"]), 0);
    assert!(out.contains("scratch") && out.contains("main"), "{out}");
    expect(&cli(&["teams", "delete", "scratch"]), 2);
    expect(&cli(&["teams", "delete", "scratch", "--yes"]), 0);

    // A renamed pipeline keeps its builds.
    let out = expect(&cli(&["pipelines", "rename", "demo", "demo-2"]), 0);
    assert!(out.contains("renamed pipeline demo to demo-2"), "{out}");
    let out = expect(&cli(&["builds", "list", "demo-2/fails", "--json"]), 0);
    let renamed: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(renamed.as_array().map(Vec::len), Some(2), "{renamed:#}");
    assert_eq!(renamed[0]["number"], "1.1");
    assert_eq!(renamed[0]["pipeline"], "demo-2");
    expect(&cli(&["pipelines", "rename", "demo-2", "demo"]), 0);

    // Secrets: values from standard input, never from the command line.
    let set = client_with(
        &config,
        &["secrets", "set", "DEPLOY_KEY", "--stdin"],
        &[],
        Some("s3cr3t-value\n"),
    );
    expect(&set, 0);
    expect(
        &cli(&[
            "secrets",
            "set",
            "REGION",
            "--plain",
            "--value",
            "eu-west-1",
        ]),
        0,
    );
    let no_terminal = cli(&["secrets", "set", "OTHER"]);
    expect(&no_terminal, 2);
    assert!(
        support::text(&no_terminal.stderr).contains("--stdin"),
        "{}",
        support::text(&no_terminal.stderr)
    );
    expect(&cli(&["secrets", "set", "X", "--value", "v"]), 2);
    // Values span lines (key files): all of standard input is the value.
    expect(
        &client_with(
            &config,
            &[
                "secrets",
                "set",
                "NOTE",
                "--plain",
                "--stdin",
                "--pipeline",
                "demo",
            ],
            &[],
            Some("first line\nsecond line\n"),
        ),
        0,
    );
    let out = expect(
        &cli(&["secrets", "list", "--pipeline", "demo", "--json"]),
        0,
    );
    let notes: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(notes[0]["value"], "first line\nsecond line", "{notes}");
    let out = expect(&cli(&["secrets", "list"]), 0);
    assert!(
        out.contains("DEPLOY_KEY") && out.contains("***") && out.contains("eu-west-1"),
        "{out}"
    );
    assert!(!out.contains("s3cr3t-value"), "{out}");
    expect(
        &cli(&[
            "secrets",
            "set",
            "DEPLOY_KEY",
            "--pipeline",
            "demo",
            "--stdin",
        ]),
        2,
    );
    expect(&cli(&["secrets", "delete", "REGION", "--yes"]), 0);

    // Worker tokens: one made here, the server's global one, a team's and a new one of it.
    let made = expect(&cli(&["worker-token"]), 0);
    assert!(
        made.trim().starts_with("pkw_") && made.trim().len() == 68,
        "{made}"
    );
    let global = expect(&cli(&["worker-token", "--show"]), 0);
    assert_eq!(global.trim(), support::server::WORKER_TOKEN);
    let team = expect(&cli(&["teams", "worker-token"]), 0);
    assert!(team.starts_with("pkw_main."), "{team}");
    assert_eq!(expect(&cli(&["teams", "worker-token", "main"]), 0), team);
    let renewed = expect(&cli(&["teams", "worker-token", "--regenerate"]), 0);
    assert!(
        renewed.starts_with("pkw_main.") && renewed != team,
        "{renewed}"
    );

    // Single sign-on: a GitHub provider with its secret from stdin, never shown again.
    let set = client_with(
        &config,
        &[
            "sso",
            "set",
            "github",
            "--kind",
            "github",
            "--client-id",
            "Iv1.abc",
            "--client-secret-stdin",
        ],
        &[],
        Some("gh-client-s3cret\n"),
    );
    let out = expect(&set, 0);
    assert!(
        out.contains("/api/v1/auth/sso/github/callback") && !out.contains("gh-client-s3cret"),
        "{out}"
    );
    let out = expect(&cli(&["sso", "providers"]), 0);
    assert!(out.contains("github") && out.contains("Iv1.abc"), "{out}");
    assert!(!out.contains("gh-client-s3cret"), "{out}");
    let out = expect(&cli(&["sso", "local-login"]), 0);
    assert!(out.contains("local login is on"), "{out}");
    // Nobody could log in with passwords off: refused, and said why.
    let refused = cli(&["sso", "local-login", "off"]);
    assert_ne!(refused.status.code(), Some(0));
    let why = String::from_utf8_lossy(&refused.stderr);
    assert!(why.contains("no global admin could log in"), "{why}");
    assert!(expect(&cli(&["sso", "identities"]), 0).contains("no identity"));
    expect(&cli(&["sso", "delete", "github", "--yes"]), 0);
    assert!(expect(&cli(&["sso", "providers"]), 0).contains("no identity provider"));

    // The audit log says who did that, newest first.
    let out = expect(&cli(&["audit", "--limit", "3"]), 0);
    let first = out.lines().nth(1).unwrap_or_default();
    assert!(
        first.contains("worker_token.regenerated") && first.contains("admin"),
        "{out}"
    );
    assert!(out.contains("--before"), "more than one page: {out}");
    let out = expect(&cli(&["audit", "--action", "secret.deleted"]), 0);
    assert!(out.contains("REGION"), "{out}");

    // Accounts: a user with a first password, a member of main who must change it.
    let created = client_with(
        &config,
        &["users", "create", "bob", "--password-stdin"],
        &[],
        Some("bob-first-pass\n"),
    );
    expect(&created, 0);
    expect(&cli(&["teams", "set-member", "bob", "write"]), 0);
    let out = expect(&cli(&["teams", "members"]), 0);
    assert!(out.contains("bob") && out.contains("write"), "{out}");
    let bob_config = dir.path().join("bob");
    let bob = |args: &[&str], stdin: Option<&str>| client_with(&bob_config, args, &[], stdin);
    let out = expect(
        &bob(
            &[
                "login",
                "--server",
                &server.base,
                "-u",
                "bob",
                "--password-stdin",
            ],
            Some("bob-first-pass\n"),
        ),
        0,
    );
    assert!(out.contains("pikoci password"), "{out}");
    let blocked = bob(&["pipelines", "list"], None);
    expect(&blocked, 1);
    assert!(support::text(&blocked.stderr).contains("new password"));
    expect(
        &bob(
            &["password", "--password-stdin"],
            Some("bob-first-pass\nbob-second-pass\n"),
        ),
        0,
    );
    let out = expect(&bob(&["whoami"], None), 0);
    assert!(out.contains("main: write"), "{out}");
    // bob runs builds but does not change pipelines.
    let refused = bob(&["pipelines", "delete", "demo", "--yes"], None);
    expect(&refused, 1);
    assert!(
        support::text(&refused.stderr).contains("role maintain"),
        "{}",
        support::text(&refused.stderr)
    );
    // A read-only team token for a script, through PIKOCI_TOKEN.
    let token = expect(
        &bob(
            &[
                "tokens",
                "create",
                "dashboard",
                "--for-team",
                "main",
                "--expires",
                "30d",
            ],
            None,
        ),
        0,
    )
    .trim()
    .to_owned();
    assert!(token.starts_with("pko_") && token.len() == 68, "{token}");
    let out = expect(
        &client_with(
            &bob_config,
            &["pipelines", "list", "--server", &server.base],
            &[("PIKOCI_TOKEN", &token)],
            None,
        ),
        0,
    );
    assert!(out.contains("demo"), "{out}");
    let out = expect(&bob(&["tokens", "list"], None), 0);
    assert!(
        out.contains("dashboard") && out.contains(&token[..12]),
        "{out}"
    );
    expect(&bob(&["logout"], None), 0);
    expect(&bob(&["whoami"], None), 1);
    let out = expect(&cli(&["users", "list"]), 0);
    assert!(out.contains("bob"), "{out}");
    expect(&cli(&["users", "delete", "bob", "--yes"]), 0);
    let hashed = expect(
        &client_with(
            &config,
            &["user-password", "-u", "carol", "--password-stdin"],
            &[],
            Some("carol-password\n"),
        ),
        0,
    );
    assert!(hashed.starts_with("carol:$argon2id$"), "{hashed}");

    // Export, then import into a fresh server: everything is back.
    let export = dir.path().join("state.db");
    let saved = cli(&["export", "-o", export.to_str().unwrap()]);
    expect(&saved, 0);
    assert!(support::text(&saved.stderr).contains("exported the state of"));
    let mut fresh = ServerProcess::start(&["--db-system", "mem", "--pubsub-system", "mem"]);
    let base = fresh.base.clone();
    let import = |token: &str, extra: &[&str]| {
        let mut args = vec![
            "import",
            export.to_str().unwrap(),
            "--server",
            base.as_str(),
        ];
        args.extend_from_slice(extra);
        client_with(&config, &args, &[("PIKOCI_TOKEN", token)], None)
    };
    let out = expect(&import(&fresh.token.clone(), &[]), 0);
    // The import ended every session: the users are the export's now (the same admin).
    let (status, _) = fresh.get("/profile").await;
    assert_eq!(status, 401);
    fresh.log_in_again();
    assert!(
        out.contains("log_chunks") && out.contains("imported into"),
        "{out}"
    );
    let (_, before) = server.get("/teams/main/pipelines/demo").await;
    let (_, after) = fresh.get("/teams/main/pipelines/demo").await;
    assert_eq!(after["data"]["config"], before["data"]["config"]);
    for path in [
        "/teams/main/pipelines/demo/jobs/fails/builds",
        "/teams/main/pipelines/demo/resources/cron.tick/versions",
        "/teams/main/triggers/release",
    ] {
        let (_, before) = server.get(path).await;
        let (status, after) = fresh.get(path).await;
        assert_eq!(status, 200, "{path}: {after:#}");
        assert_eq!(after["data"], before["data"], "{path}");
    }
    let out = expect(
        &client_with(
            &config,
            &["builds", "logs", "demo/fails/1", "--server", &fresh.base],
            &[("PIKOCI_TOKEN", &fresh.token)],
            None,
        ),
        0,
    );
    assert!(out.contains("about to fail"), "{out}");
    // The fresh server now holds pipelines: another import must say it replaces them.
    let token = fresh.token.clone();
    let refused = import(&token, &[]);
    expect(&refused, 1);
    assert!(
        support::text(&refused.stderr).contains("--replace"),
        "{}",
        support::text(&refused.stderr)
    );
    expect(&import(&token, &["--replace"]), 2);
    expect(&import(&token, &["--replace", "--yes"]), 0);
    fresh.stop();

    // Errors say what is wrong, with the status of their kind.
    let missing = cli(&["pipelines", "get", "nope"]);
    expect(&missing, 1);
    assert!(
        support::text(&missing.stderr).contains("no pipeline \"nope\""),
        "{}",
        support::text(&missing.stderr)
    );
    let bad_name = cli(&["builds", "get", "demo-ok-1"]);
    expect(&bad_name, 2);
    assert!(support::text(&bad_name.stderr).contains("PIPELINE/JOB/NUMBER"));
    let away = cli(&["pipelines", "list", "--server", "http://127.0.0.1:1"]);
    expect(&away, 3);
    assert!(
        support::text(&away.stderr).contains("cannot reach the PikoCI server"),
        "{}",
        support::text(&away.stderr)
    );
    let no_target = client(&dir.path().join("empty"), &["pipelines", "list"]);
    expect(&no_target, 2);
    assert!(support::text(&no_target.stderr).contains("pikoci login"));

    let out = expect(&cli(&["completions", "bash"]), 0);
    assert!(out.contains("pikoci") && out.contains("pipelines"), "{out}");
    server.stop();
}
