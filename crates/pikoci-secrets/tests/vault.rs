//! The `vault` secret type against a real Vault API server (OpenBao), started by
//! `cargo xtask it secrets`, which also writes the fixtures below. Needs
//! `PIKOCI_TEST_VAULT_ADDR`, `PIKOCI_TEST_VAULT_TOKEN` (root), `PIKOCI_TEST_VAULT_ROLE_ID`,
//! `PIKOCI_TEST_VAULT_SECRET_ID` and `PIKOCI_TEST_PIKOCI_BIN` (the `pikoci` binary); fails when
//! they are missing.
//!
//! Fixtures: KV v2 at `secret/`: `secret/pikoci-it/db` = {user: ci-user, password: v2-hunter22};
//! KV v1 at `kv1/`: `kv1/pikoci-it/app` = {token: v1-token-77}; AppRole `pikoci-it` whose
//! policy reads both.

use std::collections::BTreeMap;
use std::process::{Command, Output};
use std::sync::Arc;

use pikoci_config::{HttpFetcher, SourceFile, Vars};
use pikoci_core::ErrorKind;
use pikoci_core::secrets::{ResolveError, resolve};
use pikoci_core::{Pipeline, VariableValue};
use pikoci_secrets::{EnvLookup, Registry, VaultSource};

fn env(name: &str) -> String {
    match std::env::var(name) {
        Ok(value) if !value.is_empty() => value,
        _ => panic!("{name} is not set: run these tests with `cargo xtask it secrets`"),
    }
}

fn load(hcl: &str) -> Pipeline {
    let file = SourceFile::new("p.hcl", hcl.to_owned());
    match pikoci_config::load(&file, &Vars::new(), &HttpFetcher::default()) {
        Ok(loaded) => loaded.pipeline,
        Err(diagnostics) => panic!("{}", diagnostics.render(false)),
    }
}

/// A `vault` secret type block with these extra attributes, and one variable per
/// (name, path, key).
fn pipeline(config: &[(&str, &str)], variables: &[(&str, &str, &str)]) -> Pipeline {
    let mut hcl = String::from("secret_type \"vault\" {\n  source = \"pikoci://vault\"\n");
    for (key, value) in config {
        hcl.push_str(&format!("  {key} = \"{value}\"\n"));
    }
    hcl.push_str("}\n");
    for (name, path, key) in variables {
        hcl.push_str(&format!(
            "variable \"{name}\" {{\n  type = string\n  secret \"vault\" {{\n    path = \"{path}\"\n    key = \"{key}\"\n  }}\n}}\n"
        ));
    }
    load(&hcl)
}

/// Resolves every variable with a registry whose environment has no VAULT_* defaults.
async fn resolve_all(pipeline: &Pipeline) -> Result<BTreeMap<String, String>, ResolveError> {
    let no_env: EnvLookup = Arc::new(|_: &str| None);
    let registry = Registry::builtins().with_vault(VaultSource::new(no_env));
    let names: Vec<&str> = pipeline.variables.iter().map(|v| v.name.as_str()).collect();
    let resolved = resolve(pipeline, names, &registry).await?;
    Ok(pipeline
        .variables
        .iter()
        .filter_map(|v| match &v.value {
            VariableValue::Secret(secret) => resolved
                .get(&secret.placeholder())
                .map(|value| (v.name.clone(), value.value.expose().to_owned())),
            _ => None,
        })
        .collect())
}

fn expected(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect()
}

#[tokio::test]
async fn kv_version_2_with_a_token_in_every_path_form() {
    let address = env("PIKOCI_TEST_VAULT_ADDR");
    let token = env("PIKOCI_TEST_VAULT_TOKEN");
    let values = resolve_all(&pipeline(
        &[("address", &address), ("token", &token)],
        &[
            ("user", "secret/pikoci-it/db", "user"),
            ("password", "secret/pikoci-it/db", "password"),
            ("api_form", "secret/data/pikoci-it/db", "password"),
        ],
    ))
    .await
    .unwrap();
    assert_eq!(
        values,
        expected(&[
            ("api_form", "v2-hunter22"),
            ("password", "v2-hunter22"),
            ("user", "ci-user")
        ])
    );
    // A configured mount, with the path inside it, with and without the version.
    for version in ["2", "auto"] {
        let values = resolve_all(&pipeline(
            &[
                ("address", &address),
                ("token", &token),
                ("kv_version", version),
                ("mount", "secret"),
            ],
            &[("password", "pikoci-it/db", "password")],
        ))
        .await
        .unwrap();
        assert_eq!(
            values,
            expected(&[("password", "v2-hunter22")]),
            "kv_version {version}"
        );
    }
}

#[tokio::test]
async fn kv_version_1_with_a_token() {
    let address = env("PIKOCI_TEST_VAULT_ADDR");
    let token = env("PIKOCI_TEST_VAULT_TOKEN");
    for version in ["auto", "1"] {
        let values = resolve_all(&pipeline(
            &[
                ("address", &address),
                ("token", &token),
                ("kv_version", version),
            ],
            &[("app_token", "kv1/pikoci-it/app", "token")],
        ))
        .await
        .unwrap();
        assert_eq!(
            values,
            expected(&[("app_token", "v1-token-77")]),
            "kv_version {version}"
        );
    }
}

#[tokio::test]
async fn approle_login_reads_both_versions() {
    let address = env("PIKOCI_TEST_VAULT_ADDR");
    let role_id = env("PIKOCI_TEST_VAULT_ROLE_ID");
    let secret_id = env("PIKOCI_TEST_VAULT_SECRET_ID");
    let config = [
        ("address", address.as_str()),
        ("auth_method", "approle"),
        ("role_id", role_id.as_str()),
        ("secret_id", secret_id.as_str()),
    ];
    let values = resolve_all(&pipeline(
        &config,
        &[
            ("password", "secret/pikoci-it/db", "password"),
            ("app_token", "kv1/pikoci-it/app", "token"),
        ],
    ))
    .await
    .unwrap();
    assert_eq!(
        values,
        expected(&[("app_token", "v1-token-77"), ("password", "v2-hunter22")])
    );
    let mut wrong = config;
    wrong[3] = ("secret_id", "00000000-0000-0000-0000-000000000000");
    let error = resolve_all(&pipeline(
        &wrong,
        &[("password", "secret/pikoci-it/db", "password")],
    ))
    .await
    .unwrap_err();
    assert_eq!(error.failures[0].error.kind(), ErrorKind::PermissionDenied);
    assert!(
        error
            .to_string()
            .contains("AppRole login failed (HTTP 400: invalid role or secret ID)"),
        "{error}"
    );
}

#[tokio::test]
async fn wrong_tokens_missing_secrets_and_missing_keys_are_told_apart() {
    let address = env("PIKOCI_TEST_VAULT_ADDR");
    let token = env("PIKOCI_TEST_VAULT_TOKEN");
    let error = resolve_all(&pipeline(
        &[("address", &address), ("token", "wrong-token-123")],
        &[("password", "secret/pikoci-it/db", "password")],
    ))
    .await
    .unwrap_err();
    assert_eq!(error.failures[0].error.kind(), ErrorKind::PermissionDenied);
    let message = error.to_string();
    assert!(
        message.starts_with(
            "secret for variable \"password\": failed to fetch secret from \"vault\" at \"secret/pikoci-it/db\": Vault refused to read"
        ),
        "{message}"
    );
    assert!(
        message.contains("permission denied") && !message.contains("wrong-token-123"),
        "{message}"
    );
    let error = resolve_all(&pipeline(
        &[("address", &address), ("token", &token)],
        &[
            ("nothing", "secret/pikoci-it/nothing", "x"),
            ("nokey", "secret/pikoci-it/db", "nokey"),
        ],
    ))
    .await
    .unwrap_err();
    assert_eq!(
        error.to_string(),
        "secret for variable \"nothing\": failed to fetch secret from \"vault\" at \"secret/pikoci-it/nothing\": \
         no secret at secret/pikoci-it/nothing (HTTP 404)\n\
         secret for variable \"nokey\": key \"nokey\" not found in response"
    );
}

const JOB: &str = r#"
variable "password" {
  type = string
  secret "vault" {
    path = "secret/pikoci-it/db"
    key  = "password"
  }
}
job "deploy" {
  task "print" {
    run "shell" { cmd = "echo password=${var.password}; echo done" }
  }
}
"#;

/// `pikoci run` of [`JOB`] with `VAULT_ADDR` and `VAULT_TOKEN` set to these.
fn run_job(token: &str) -> Output {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("p.hcl"), JOB).unwrap();
    Command::new(env("PIKOCI_TEST_PIKOCI_BIN"))
        .args(["run", "-p", "p.hcl", "-j", "deploy", "--work-dir"])
        .arg(dir.path().join("work"))
        .current_dir(dir.path())
        .env("VAULT_ADDR", env("PIKOCI_TEST_VAULT_ADDR"))
        .env("VAULT_TOKEN", token)
        .env_remove("PIKOCI_VARS")
        .output()
        .expect("the pikoci binary runs")
}

#[test]
fn pikoci_run_masks_a_vault_secret_printed_by_a_task() {
    let out = run_job(&env("PIKOCI_TEST_VAULT_TOKEN"));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("password=***"), "{stdout}");
    assert!(!stdout.contains("v2-hunter22"), "{stdout}");
}

#[test]
fn pikoci_run_with_a_wrong_token_fails_and_says_why() {
    let out = run_job("wrong-token-123");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains(
            "password (secret \"vault\", key \"password\"): failed to fetch secret from \"vault\" at \"secret/pikoci-it/db\": \
             Vault refused to read secret/pikoci-it/db (HTTP 403: permission denied)"
        ),
        "{stderr}"
    );
    assert!(!stderr.contains("wrong-token-123"), "{stderr}");
}
