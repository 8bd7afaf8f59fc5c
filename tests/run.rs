//! End-to-end tests of `pikoci run`: the real binary running real processes.

mod support;

use std::path::Path;
use std::process::{Output, Stdio};

use support::{Lines, repo, text, write};

fn pikoci(args: &[&str], work: &Path) -> Output {
    support::pikoci()
        .args(args)
        .arg("--work-dir")
        .arg(work)
        .output()
        .expect("the pikoci binary runs")
}

#[test]
fn the_example_job_runs_and_reports_each_step() {
    let work = tempfile::tempdir().unwrap();
    let out = pikoci(
        &["run", "-p", &repo("examples/hello.hcl"), "-j", "test"],
        work.path(),
    );
    assert_eq!(
        out.status.code(),
        Some(0),
        "stderr: {}\nstdout: {}",
        text(&out.stderr),
        text(&out.stdout)
    );
    let stdout = text(&out.stdout);
    for needle in [
        "==> [get] every-hour",
        "checking cron.every-hour for its newest version",
        "==> [task] greet",
        "hello from build 1",
        "==> [task] celebrate",
        "all good",
        "build finished: succeeded",
        "Summary",
        "✓ job \"test\" succeeded in",
    ] {
        assert!(stdout.contains(needle), "missing {needle:?} in:\n{stdout}");
    }
    assert!(
        !stdout.contains('\u{1b}'),
        "no colours when piped:\n{stdout}"
    );
    // The work directory of the build is removed; the resource cache root stays.
    let leftovers: Vec<_> = std::fs::read_dir(work.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert!(
        leftovers.iter().all(|name| name == "cache"),
        "{leftovers:?}"
    );
}

#[test]
fn a_failing_build_exits_1_and_says_why() {
    let dir = tempfile::tempdir().unwrap();
    let pipeline = write(
        dir.path(),
        "fail.hcl",
        "job \"a\" {\n  task \"boom\" {\n    run \"shell\" { cmd = \"echo about to fail; exit 3\" }\n  }\n  task \"never\" {\n    run \"shell\" { cmd = \"echo never\" }\n  }\n  on_failure \"shell\" { cmd = \"echo failure hook: $BUILD_STATUS\" }\n}\n",
    );
    let out = pikoci(&["run", "-p", &pipeline, "-j", "a"], dir.path());
    assert_eq!(out.status.code(), Some(1));
    let stdout = text(&out.stdout);
    assert!(stdout.contains("about to fail"), "{stdout}");
    assert!(stdout.contains("exit status 3"), "{stdout}");
    assert!(stdout.contains("failure hook: failed"), "{stdout}");
    assert!(!stdout.contains("==> [task] never"), "{stdout}");
    assert!(stdout.contains("✗ job \"a\" failed"), "{stdout}");
}

#[test]
fn usage_errors_exit_2_and_list_what_exists() {
    let work = tempfile::tempdir().unwrap();
    let hello = repo("examples/hello.hcl");
    let out = pikoci(&["run", "-p", &hello], work.path());
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr)
            .contains("no job given: use --job NAME\nthe jobs are: test, matrix--amd64-linux"),
        "{}",
        text(&out.stderr)
    );
    let out = pikoci(&["run", "-p", &hello, "-j", "tset"], work.path());
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("job \"tset\" not found in pipeline (did you mean \"test\"?)")
    );
    let out = pikoci(
        &[
            "run",
            "-p",
            &hello,
            "-j",
            "test",
            "--resource",
            "git.app=/tmp",
        ],
        work.path(),
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("resource \"git.app\" not found in pipeline (use type.name format, e.g. git.my-repo); the resources are: cron.every-hour"));
    let broken = write(
        work.path(),
        "broken.hcl",
        "job \"a\" {\n  tsk \"x\" {}\n}\n",
    );
    let out = pikoci(&["run", "-p", &broken, "-j", "a"], work.path());
    assert_eq!(out.status.code(), Some(2));
    assert!(text(&out.stderr).contains("did you mean \"task\"?"));
}

#[test]
fn inputs_secrets_and_local_resources() {
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("src");
    std::fs::create_dir(&source).unwrap();
    std::fs::write(source.join("README"), "local copy\n").unwrap();
    let pipeline = write(
        dir.path(),
        "p.hcl",
        r#"variable "token" {
  type = string
  secret "vault" {
    path = "secret/ci"
    key  = "token"
  }
}
resource "git" "app" {
  params {
    url  = "https://example.invalid/app.git"
    name = "app"
  }
}
job "deploy" {
  input "target" {
    type    = "string"
    options = ["staging", "production"]
  }
  get "git" "app" {}
  task "show" {
    run "shell" { cmd = "cat app/README; echo target=$INPUT_target token=${var.token}" }
  }
}
"#,
    );
    let resource = format!("git.app={}", source.display());
    let out = pikoci(
        &[
            "run",
            "-p",
            &pipeline,
            "-j",
            "deploy",
            "--resource",
            &resource,
        ],
        dir.path(),
    );
    assert_eq!(out.status.code(), Some(2));
    let stderr = text(&out.stderr);
    assert!(
        stderr.contains("required input \"target\" of job \"deploy\" has no value"),
        "{stderr}"
    );
    let out = pikoci(
        &[
            "run",
            "-p",
            &pipeline,
            "-j",
            "deploy",
            "--resource",
            &resource,
            "--input",
            "target=qa",
        ],
        dir.path(),
    );
    assert!(text(&out.stderr).contains("\"qa\" is not in options (staging, production)"));
    let args = [
        "run",
        "-p",
        &pipeline,
        "-j",
        "deploy",
        "--resource",
        &resource,
        "--input",
        "target=staging",
    ];
    let out = pikoci(&args, dir.path());
    assert_eq!(out.status.code(), Some(2));
    assert!(
        text(&out.stderr).contains("token (secret \"vault\", key \"token\")"),
        "{}",
        text(&out.stderr)
    );
    let mut with_token = args.to_vec();
    with_token.extend(["--var", "token=t0k3n"]);
    let out = pikoci(&with_token, dir.path());
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}\n{}",
        text(&out.stdout),
        text(&out.stderr)
    );
    let stdout = text(&out.stdout);
    assert!(
        stdout.contains("using local resource override:"),
        "{stdout}"
    );
    assert!(stdout.contains("local copy"), "{stdout}");
    assert!(stdout.contains("target=staging token=t0k3n"), "{stdout}");
}

#[test]
fn ctrl_c_cancels_the_step_and_still_runs_cancel_hooks() {
    let dir = tempfile::tempdir().unwrap();
    let pipeline = write(
        dir.path(),
        "slow.hcl",
        "job \"a\" {\n  task \"slow\" {\n    run \"shell\" { cmd = \"echo sleeping; sleep 300\" }\n    on_cancel \"shell\" { cmd = \"echo step cancel hook\" }\n  }\n  on_cancel \"shell\" { cmd = \"echo job cancel hook: $BUILD_STATUS\" }\n  ensure \"shell\" { cmd = \"echo ensure ran\" }\n}\n",
    );
    let mut child = support::pikoci()
        .args(["run", "-p", &pipeline, "-j", "a", "--work-dir"])
        .arg(dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = Lines::new(child.stdout.take().unwrap());
    let seen = stdout.wait_for("sleeping", &mut child).to_owned();
    let status = std::process::Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    let rest = stdout.rest(&mut child);
    let exit = child.wait().unwrap();
    assert_eq!(exit.code(), Some(1), "{seen}{rest}");
    for needle in [
        "step cancel hook",
        "job cancel hook: cancelled",
        "ensure ran",
        "⊘ job \"a\" cancelled",
    ] {
        assert!(rest.contains(needle), "missing {needle:?} in:\n{rest}");
    }
}

#[test]
fn every_example_runs_as_documented() {
    // (file, job, exit code, lines that must appear)
    let cases: &[(&str, &str, i32, &[&str])] = &[
        (
            "examples/hello.hcl",
            "test",
            0,
            &["hello from build 1", "all good"],
        ),
        (
            "examples/hello.hcl",
            "matrix--arm64-darwin",
            0,
            &["building for darwin/arm64"],
        ),
        (
            "examples/parallel.hcl",
            "release",
            0,
            &[
                "linting 1.4.2",
                "testing 1.4.2",
                "publishing 1.4.2",
                "released: succeeded",
                "- branch",
            ],
        ),
        (
            "examples/parallel.hcl",
            "flaky",
            0,
            &[
                "--- attempt 2/2 ---",
                "the task failed twice",
                "finished with warning",
                "! job \"flaky\" warning",
            ],
        ),
    ];
    for (file, job, code, needles) in cases {
        let work = tempfile::tempdir().unwrap();
        let out = pikoci(&["run", "-p", &repo(file), "-j", job], work.path());
        let stdout = text(&out.stdout);
        assert_eq!(
            out.status.code(),
            Some(*code),
            "{file} {job}:\n{stdout}\n{}",
            text(&out.stderr)
        );
        for needle in *needles {
            assert!(
                stdout.contains(needle),
                "{file} {job}: missing {needle:?} in:\n{stdout}"
            );
        }
    }
}

#[test]
fn steps_never_see_the_worker_configuration() {
    let dir = tempfile::tempdir().unwrap();
    let pipeline = write(
        dir.path(),
        "env.hcl",
        r#"
secret_type "cloud" {
  get "shell" {
    cmd = "test -z \"$PIKOCI_SECRET_KEY$PIKOCI_DB_URL\" && test \"$E2E_CLOUD_TOKEN\" = cloud-cred && echo '{\"k\":\"fetched-by-get\"}'"
  }
}
runner_type "leaky" {
  run {
    path = "/bin/echo"
    args = ["template=[$PIKOCI_SECRET_KEY][$E2E_CLOUD_TOKEN]"]
  }
}
variable "fetched" {
  type = string
  secret "cloud" { key = "k" }
}
job "a" {
  task "look" {
    run "shell" {
      cmd = "echo key=[$PIKOCI_SECRET_KEY] db=[$PIKOCI_DB_URL] cloud=[$E2E_CLOUD_TOKEN] home=[$HOME] fetched=[${var.fetched}]"
    }
  }
  task "template" {
    run "leaky" {}
  }
}
"#,
    );
    let out = support::pikoci()
        .args(["run", "-p", &pipeline, "-j", "a", "--work-dir"])
        .arg(dir.path().join("work"))
        .env_remove("PIKOCI_VARS")
        .env("PIKOCI_SECRET_KEY", "worker-key-0123456789abcdef0123456789")
        .env("PIKOCI_DB_URL", "postgres://ci:db-password@db/pikoci")
        .env("E2E_CLOUD_TOKEN", "cloud-cred")
        .env("HOME", "/home/e2e")
        .output()
        .expect("the pikoci binary runs");
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", text(&out.stderr));
    // The get command had the machine's credentials but not the worker's configuration, and
    // the step has neither (HOME is on the allow-list).
    assert!(
        stdout.contains("key=[] db=[] cloud=[] home=[/home/e2e] fetched=[***]"),
        "{stdout}"
    );
    assert!(stdout.contains("template=[][]"), "{stdout}");
    for leaked in ["worker-key", "db-password", "cloud-cred"] {
        assert!(!stdout.contains(leaked), "{leaked} leaked:\n{stdout}");
    }
}

#[test]
fn a_bad_resource_directory_is_refused_before_any_step_runs() {
    let dir = tempfile::tempdir().unwrap();
    let pipeline = write(
        dir.path(),
        "p.hcl",
        "resource \"fs\" \"data\" {\n  params { path = \"/nonexistent\" }\n}\njob \"a\" {\n  task \"first\" {\n    run \"shell\" { cmd = \"echo first step ran\" }\n  }\n  get \"fs\" \"data\" {}\n}\n",
    );
    let file = write(dir.path(), "a-file", "not a directory");
    let missing = dir.path().join("missing").display().to_string();
    for (path, problem) in [(&file, "is not a directory"), (&missing, "does not exist")] {
        let resource = format!("fs.data={path}");
        let out = pikoci(
            &["run", "-p", &pipeline, "-j", "a", "--resource", &resource],
            &dir.path().join("work"),
        );
        assert_eq!(out.status.code(), Some(2));
        let stderr = text(&out.stderr);
        assert!(
            stderr.contains(&format!("--resource fs.data: {path} {problem}")),
            "{stderr}"
        );
        assert!(!text(&out.stdout).contains("first step ran"));
    }
}

#[test]
fn an_artifact_override_lands_in_its_dir_param() {
    let dir = tempfile::tempdir().unwrap();
    let source = dir.path().join("built");
    std::fs::create_dir(&source).unwrap();
    std::fs::write(source.join("app.bin"), "binary\n").unwrap();
    let pipeline = write(
        dir.path(),
        "p.hcl",
        "resource \"artifact\" \"out\" {\n  params { dir = \"dist\" }\n}\njob \"a\" {\n  get \"artifact\" \"out\" {}\n  task \"show\" {\n    run \"shell\" { cmd = \"cat dist/app.bin\" }\n  }\n}\n",
    );
    let resource = format!("artifact.out={}", source.display());
    let out = pikoci(
        &["run", "-p", &pipeline, "-j", "a", "--resource", &resource],
        &dir.path().join("work"),
    );
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", text(&out.stderr));
    assert!(stdout.contains("-> dist"), "{stdout}");
    assert!(stdout.contains("binary"), "{stdout}");
}

#[test]
fn an_approval_is_skipped_with_a_line_saying_so() {
    let dir = tempfile::tempdir().unwrap();
    let pipeline = write(
        dir.path(),
        "p.hcl",
        "job \"a\" {\n  approve \"deploy to production\" {}\n  task \"t\" {\n    run \"shell\" { cmd = \"echo deployed\" }\n  }\n}\n",
    );
    let out = pikoci(
        &["run", "-p", &pipeline, "-j", "a"],
        &dir.path().join("work"),
    );
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", text(&out.stderr));
    let note = stdout
        .find("skipping approval \"deploy to production\" (local execution)")
        .expect(&stdout);
    assert!(note < stdout.find("deployed").unwrap(), "{stdout}");
}

#[test]
fn help_shows_the_usage_the_flags_allow_and_no_environment_values() {
    let out = support::pikoci()
        .args(["run", "--help"])
        .env("PIKOCI_VARS", "/home/me/private-vars.json")
        .env("PIKOCI_WORK_DIR", "/home/me/private-work")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(0));
    let help = text(&out.stdout);
    assert!(
        help.contains("Usage: pikoci run --pipeline-config <FILE> [--job <NAME>] [OPTIONS]"),
        "{help}"
    );
    assert!(help.contains("[env: PIKOCI_VARS]"), "{help}");
    assert!(!help.contains("private"), "{help}");
    assert!(help.contains("The value is converted"), "{help}");
    let out = support::pikoci()
        .args(["validate", "--help"])
        .env("PIKOCI_VARS", "/home/me/private-vars.json")
        .output()
        .unwrap();
    assert!(!text(&out.stdout).contains("private"));
}
