//! End-to-end tests of secrets in `pikoci run`: the real binary looks secrets up through their
//! secret types (files, the environment, `get` commands), masks them, and lets `--var` replace
//! them. Vault is covered by `cargo xtask it secrets` (crates/pikoci-secrets/tests/vault.rs).

mod support;

use std::path::Path;
use std::process::Output;

use support::text;

fn pikoci(args: &[&str], dir: &Path) -> Output {
    support::pikoci()
        .args(args)
        .arg("--work-dir")
        .arg(dir.join("work"))
        .current_dir(dir)
        .env("E2E_SECRET_TOKEN", "env-secret-42")
        .output()
        .expect("the pikoci binary runs")
}

const PIPELINE: &str = r#"
secret_type "vault" {
  source  = "pikoci://vault"
  address = "http://127.0.0.1:9"
  token   = var.vault_token
}
secret_type "script" {
  get "shell" {
    cmd = "touch script-ran; echo '{\"answer\":\"script-secret-7\"}'"
  }
}
variable "vault_token" {
  type = string
  secret "env" {
    key = "E2E_SECRET_TOKEN"
  }
}
variable "from_file" {
  type = string
  secret "file" {
    path = "creds.txt"
    key  = "content"
  }
}
variable "from_script" {
  type = string
  secret "script" {
    key = "answer"
  }
}
variable "from_vault" {
  type = string
  secret "vault" {
    path = "secret/ci"
    key  = "password"
  }
}
job "local" {
  task "print" {
    run "shell" {
      cmd = "echo file=${var.from_file} env=${var.vault_token} script=${var.from_script}"
    }
  }
}
job "remote" {
  task "print" {
    run "shell" { cmd = "echo vault=${var.from_vault}" }
  }
}
"#;

fn setup() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("p.hcl"), PIPELINE).unwrap();
    std::fs::write(dir.path().join("creds.txt"), "file-secret-9\n").unwrap();
    dir
}

#[test]
fn secrets_are_looked_up_and_masked() {
    let dir = setup();
    let out = pikoci(&["run", "-p", "p.hcl", "-j", "local"], dir.path());
    let stdout = text(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}\n{}",
        text(&out.stderr)
    );
    assert!(stdout.contains("file=*** env=*** script=***"), "{stdout}");
    for value in ["file-secret-9", "env-secret-42", "script-secret-7"] {
        assert!(!stdout.contains(value), "{value} leaked:\n{stdout}");
    }
    // The get command ran in a work directory of its own, removed afterwards.
    let leftovers: Vec<_> = std::fs::read_dir(dir.path().join("work"))
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name != "cache")
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn var_overrides_are_used_without_contacting_the_secret_type() {
    let dir = setup();
    let out = pikoci(
        &[
            "run",
            "-p",
            "p.hcl",
            "-j",
            "local",
            "--var",
            "from_script=given-value",
        ],
        dir.path(),
    );
    let stdout = text(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}\n{}",
        text(&out.stderr)
    );
    // A --var value is not a secret: it is shown.
    assert!(stdout.contains("script=given-value"), "{stdout}");
    assert!(
        !dir.path().join("script-ran").exists()
            && std::fs::read_dir(dir.path().join("work"))
                .unwrap()
                .all(|e| !e.unwrap().path().join("script-ran").exists()),
        "the get command ran"
    );
    // Vault is unreachable, but a --var value means it is never asked.
    let out = pikoci(
        &[
            "run",
            "-p",
            "p.hcl",
            "-j",
            "remote",
            "--var",
            "from_vault=pw",
        ],
        dir.path(),
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("vault=pw"));
}

#[test]
fn a_secret_that_cannot_be_looked_up_stops_the_run_with_exit_2() {
    let dir = setup();
    let out = pikoci(&["run", "-p", "p.hcl", "-j", "remote"], dir.path());
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(
            "cannot look up the secrets job \"remote\" uses; give a variable's value with --var NAME=VALUE to skip its lookup:\n  \
             from_vault (secret \"vault\", key \"password\"): failed to fetch secret from \"vault\" at \"secret/ci\": cannot reach Vault at http://127.0.0.1:9"
        ),
        "{stderr}"
    );
    // The token, which came from the environment, is not in the message.
    assert!(!stderr.contains("env-secret-42"), "{stderr}");
    assert!(text(&out.stdout).is_empty());
}

#[test]
fn a_local_run_looks_up_only_the_secrets_it_uses() {
    // The `pikoci` store is never reachable from a laptop: asking for any of these would fail.
    // The job uses only `greeting`; `git.src` is copied from a directory, not cloned.
    let dir = tempfile::tempdir().unwrap();
    let pipeline = r#"
notification_type "slack" {
  source = "pikoci://slack"
}
variable "webhook" {
  type = string
  secret "pikoci" { key = "slack_webhook" }
}
variable "push_token" {
  type = string
  secret "pikoci" { key = "push_token" }
}
variable "greeting" {
  type = string
  secret "env" { key = "E2E_SECRET_TOKEN" }
}
notification "slack" "alerts" {
  params { webhook_url = var.webhook }
  on = ["all"]
}
variable "type_token" {
  type = string
  secret "pikoci" { key = "type_token" }
}
variable "db_password" {
  type = string
  secret "pikoci" { key = "db_password" }
}
resource_type "private" {
  check "shell" { cmd = "echo ${var.type_token}" }
}
resource "private" "unused" {}
service_type "db" {
  start "shell" { cmd = "echo ${var.db_password}" }
  stop "shell" { cmd = "true" }
}
variable "git_token" {
  type = string
  secret "pikoci" { key = "git_token" }
}
resource "git" "src" {
  params {
    url   = "https://example.invalid/app.git"
    token = var.git_token
  }
}
resource "trigger" "deploy" {}
job "other" {
  get "private" "unused" {}
  service "db" {}
}
job "a" {
  get "git" "src" {}
  task "t" {
    run "shell" { cmd = "echo greeting=${var.greeting}" }
  }
  put "trigger" "deploy" {
    params { token = var.push_token }
  }
  notify "slack" "alerts" {}
  ensure {
    notify "slack" "alerts" {}
  }
}
"#;
    std::fs::write(dir.path().join("p.hcl"), pipeline).unwrap();
    std::fs::create_dir(dir.path().join("src")).unwrap();
    let out = pikoci(
        &[
            "run",
            "-p",
            "p.hcl",
            "-j",
            "a",
            "--no-color",
            "--resource",
            "git.src=src",
        ],
        dir.path(),
    );
    let stdout = text(&out.stdout);
    assert_eq!(out.status.code(), Some(0), "{stdout}{}", text(&out.stderr));
    assert!(stdout.contains("greeting=***"), "{stdout}");
}

#[test]
fn a_local_run_refuses_store_secrets_and_points_to_var() {
    let dir = tempfile::tempdir().unwrap();
    let pipeline = r#"
variable "token" {
  type = string
  secret "pikoci" { key = "TOKEN" }
}
job "a" {
  task "t" {
    run "shell" { cmd = "echo token=${var.token}" }
  }
}
"#;
    std::fs::write(dir.path().join("p.hcl"), pipeline).unwrap();
    let out = pikoci(&["run", "-p", "p.hcl", "-j", "a", "--no-color"], dir.path());
    let stderr = text(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(
            "give a variable's value with --var NAME=VALUE to skip its lookup:\n  \
             token (secret \"pikoci\", key \"TOKEN\"): failed to fetch secret from \"pikoci\" \
             at \"\": the built-in store \"pikoci\" is on the server: its values reach only \
             builds and checks the server runs"
        ),
        "{stderr}"
    );
    let out = pikoci(
        &[
            "run",
            "-p",
            "p.hcl",
            "-j",
            "a",
            "--no-color",
            "--var",
            "token=given",
        ],
        dir.path(),
    );
    assert_eq!(out.status.code(), Some(0), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("token=given"));
}
