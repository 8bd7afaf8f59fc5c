//! Resolution through the registry with real processes: pipelines loaded from HCL, `get`
//! commands run by the `ProcessRunner`, files and environment read for real.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use pikoci_config::{HttpFetcher, SourceFile, Vars};
use pikoci_core::Pipeline;
use pikoci_core::engine::{BuildControl, BuildSpec, Engine, Status};
use pikoci_core::secrets::{ResolveError, ResolvedSecrets, resolve, used_by_job, used_by_resource};
use pikoci_core::testing::Recorder;
use pikoci_runner::ProcessRunner;
use pikoci_secrets::{EnvLookup, EnvSource, ExecSource, FileSource, Registry};

fn load(hcl: &str) -> Pipeline {
    let file = SourceFile::new("p.hcl", hcl.to_owned());
    match pikoci_config::load(&file, &Vars::new(), &HttpFetcher::default()) {
        Ok(loaded) => loaded.pipeline,
        Err(diagnostics) => panic!("{}", diagnostics.render(false)),
    }
}

fn registry(pipeline: &Pipeline, dir: &Path) -> Registry {
    let env: EnvLookup = Arc::new(|name: &str| match name {
        "CI_TOKEN" => Some("env-token-value".to_owned()),
        _ => None,
    });
    Registry::builtins()
        .with_exec(ExecSource::new(
            Arc::new(ProcessRunner::new()),
            pipeline.runner_types.clone(),
            dir.join("work"),
        ))
        .with_file(FileSource::with_base(dir))
        .with_env(EnvSource::new(env))
}

async fn resolve_all(pipeline: &Pipeline, dir: &Path) -> Result<ResolvedSecrets, ResolveError> {
    let names: Vec<&str> = pipeline.variables.iter().map(|v| v.name.as_str()).collect();
    resolve(pipeline, names, &registry(pipeline, dir)).await
}

/// Why resolving every variable of the pipeline `hcl` fails.
async fn resolution_error(hcl: &str, dir: &Path) -> String {
    let pipeline = load(hcl);
    resolve_all(&pipeline, dir).await.unwrap_err().to_string()
}

/// Variable name → resolved value.
fn by_name(pipeline: &Pipeline, resolved: &ResolvedSecrets) -> BTreeMap<String, String> {
    pipeline
        .variables
        .iter()
        .filter_map(|v| match &v.value {
            pikoci_core::VariableValue::Secret(secret) => resolved
                .get(&secret.placeholder())
                .map(|value| (v.name.clone(), value.value.expose().to_owned())),
            _ => None,
        })
        .collect()
}

fn variable(name: &str, secret_type: &str, path: &str, key: &str) -> String {
    format!(
        "variable \"{name}\" {{\n  type = string\n  secret \"{secret_type}\" {{\n    path = \"{path}\"\n    key = \"{key}\"\n  }}\n}}\n"
    )
}

#[tokio::test]
async fn get_commands_print_secrets_in_every_format() {
    let dir = tempfile::tempdir().unwrap();
    let hcl = String::new()
        + r#"
secret_type "lastline" {
  region = "eu-1"
  get "exec" {
    path = "/bin/sh"
    args = ["-ec", "echo progress >&2; echo 'not json'; printf '{\"path\":\"%s\",\"region\":\"%s\"}\n' \"$param_path\" \"$param_region\""]
  }
}
secret_type "yamls" {
  format = "yaml"
  get "shell" { cmd = "printf 'user: bob\\npass: \"p: w\"\\n'" }
}
secret_type "envs" {
  path = "/etc/anything.env"
  get "shell" { cmd = "printf 'A=1\\nexport B=\"two\"\\n'" }
}
secret_type "raws" {
  format = "raw"
  get "shell" { cmd = "printf 'line1\\nline2\\n'" }
}
secret_type "overridden" {
  get "exec" {
    path = "printf"
    args = ["{\"k\":\"%s\"}\n", "from override"]
  }
  runner "shell" {}
}
"# + &variable("p", "lastline", "rel/dir", "path")
        + &variable("r", "lastline", "rel/dir", "region")
        + &variable("pass", "yamls", "", "pass")
        + &variable("b", "envs", "", "B")
        + &variable("content", "raws", "", "content")
        + &variable("o", "overridden", "", "k");
    let pipeline = load(&hcl);
    let resolved = resolve_all(&pipeline, dir.path()).await.unwrap();
    let cwd = std::env::current_dir().unwrap();
    assert_eq!(
        by_name(&pipeline, &resolved),
        BTreeMap::from([
            ("p".into(), cwd.join("rel/dir").display().to_string()),
            ("r".into(), "eu-1".into()),
            ("pass".into(), "p: w".into()),
            ("b".into(), "two".into()),
            ("content".into(), "line1\nline2".into()),
            ("o".into(), "from override".into()),
        ])
    );
}

#[tokio::test]
async fn a_failing_get_command_reports_its_standard_error_only() {
    let dir = tempfile::tempdir().unwrap();
    let hcl = String::from(
        r#"
secret_type "broken" {
  get "shell" { cmd = "echo '{\"k\":\"printed-secret\"}'; echo 'vault: connection refused' >&2; exit 3" }
}
"#,
    ) + &variable("v", "broken", "a/b", "k");
    let error = resolution_error(&hcl, dir.path()).await;
    let cwd = std::env::current_dir().unwrap().display().to_string();
    assert_eq!(
        error,
        format!(
            "secret for variable \"v\": failed to fetch secret from \"broken\" at \"a/b\": vault: connection refused\nexit status 3"
        )
    );
    assert!(!error.contains("printed-secret") && !error.contains(&cwd));
}

#[tokio::test]
async fn builtins_and_sourced_blocks_read_files_and_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("creds.json"),
        "{\"user\": \"alice\", \"pw\": \"s3cr3t!\"}",
    )
    .unwrap();
    std::fs::write(dir.path().join("other.yml"), "key: from-yaml\n").unwrap();
    let hcl = String::from(
        r#"
secret_type "creds" {
  source = "pikoci://file"
  path   = "creds.json"
}
secret_type "env" {
  source = "pikoci://env"
  prefix = "CI_"
}
"#,
    ) + &variable("user", "creds", "", "user")
        + &variable("pw", "creds", "", "pw")
        + &variable("token", "env", "", "TOKEN")
        + "variable \"yaml\" {\n  type = string\n  secret \"file\" {\n    path = \"other.yml\"\n    key = \"content\"\n  }\n}\n";
    let pipeline = load(&hcl);
    let resolved = resolve_all(&pipeline, dir.path()).await.unwrap();
    assert_eq!(
        by_name(&pipeline, &resolved),
        BTreeMap::from([
            ("pw".into(), "s3cr3t!".into()),
            ("token".into(), "env-token-value".into()),
            ("user".into(), "alice".into()),
            // The builtin file type without a configured path or format reads raw.
            ("yaml".into(), "key: from-yaml".into()),
        ])
    );
}

#[tokio::test]
async fn missing_values_and_the_store_outside_a_server_are_explained() {
    let dir = tempfile::tempdir().unwrap();
    let hcl = variable("unset", "env", "", "NOT_SET") + &variable("stored", "pikoci", "", "TOKEN");
    let pipeline = load(&hcl);
    let error = resolve_all(&pipeline, dir.path())
        .await
        .unwrap_err()
        .to_string();
    assert_eq!(
        error,
        "secret for variable \"unset\": key \"NOT_SET\" not found in response\n\
         secret for variable \"stored\": failed to fetch secret from \"pikoci\" at \"\": \
         the built-in store \"pikoci\" is on the server: its values reach only builds and checks the server runs"
    );
}

#[tokio::test]
async fn a_task_printing_a_resolved_secret_shows_stars() {
    let dir = tempfile::tempdir().unwrap();
    let pem = "-----BEGIN KEY-----\nAAAABBBBCCCC\nDDDDEEEEFFFF\n-----END KEY-----\n";
    std::fs::write(dir.path().join("key.pem"), pem).unwrap();
    std::fs::write(dir.path().join("s.env"), "PW=hunter22\n").unwrap();
    let hcl = r#"
secret_type "files" {
  source = "pikoci://file"
  format = "env"
}
variable "pw" {
  type = string
  secret "files" {
    path = "s.env"
    key  = "PW"
  }
}
variable "key" {
  type = string
  secret "file" {
    path = "key.pem"
    key  = "content"
  }
}
job "show" {
  task "print" {
    run "shell" {
      cmd = "echo \"pw=$PW\"; printf '%s' \"$KEY\"; echo; printf 'partial %s' \"$PW\"; exit 1"
      PW  = var.pw
      KEY = var.key
    }
  }
}
"#;
    let pipeline = load(hcl);
    let used = used_by_job(&pipeline, "show");
    let resolved = resolve(
        &pipeline,
        used.iter().map(String::as_str),
        &registry(&pipeline, dir.path()),
    )
    .await
    .unwrap();
    let sink = Arc::new(Recorder::default());
    let engine = Engine::new(Arc::new(ProcessRunner::new()), sink.clone());
    let spec = BuildSpec {
        pipeline: Arc::new(pipeline),
        job: "show".to_owned(),
        team: "main".to_owned(),
        pipeline_name: "local".to_owned(),
        build_number: "1".to_owned(),
        inputs: BTreeMap::new(),
        versions: BTreeMap::new(),
        secrets: resolved.clone(),
        local: None,
        work_root: dir.path().join("builds"),
        cache_root: None,
    };
    let result = engine.run(spec, BuildControl::default()).await;
    assert_eq!(result.status, Status::Failed);
    let lines = sink.transcript().join("\n");
    for leaked in ["hunter22", "AAAABBBBCCCC", "DDDDEEEEFFFF", "BEGIN KEY"] {
        assert!(!lines.contains(leaked), "{leaked} leaked in:\n{lines}");
    }
    assert!(lines.contains("pw=***"), "{lines}");
    // The last line, written without a newline, is masked too.
    assert!(lines.contains("partial ***"), "{lines}");
    assert!(lines.contains("***\n***\n***\n***"), "{lines}");
}

#[test]
fn usage_follows_the_job_and_its_resources() {
    let hcl = r#"
variable "used" {
  type = string
  secret "pikoci" { key = "A" }
}
variable "in_resource" {
  type = string
  secret "pikoci" { key = "B" }
}
variable "unused" {
  type = string
  secret "pikoci" { key = "C" }
}
resource "fs" "src" {
  params {
    path = var.in_resource
  }
}
resource "fs" "other" {
  params {
    path = var.unused
  }
}
job "build" {
  get "fs" "src" {}
  task "t" {
    run "shell" { cmd = "echo ${var.used}" }
  }
}
job "other" {
  get "fs" "other" {}
}
"#;
    let pipeline = load(hcl);
    assert_eq!(used_by_job(&pipeline, "build"), vec!["used", "in_resource"]);
    assert_eq!(used_by_job(&pipeline, "other"), vec!["unused"]);
    assert!(used_by_job(&pipeline, "nope").is_empty());
    let other = pipeline.resources[1].reference();
    assert_eq!(used_by_resource(&pipeline, &other), vec!["unused"]);
}

#[tokio::test]
async fn a_get_command_printing_more_than_the_limit_is_stopped() {
    let dir = tempfile::tempdir().unwrap();
    // 2 MiB on standard error, then a valid answer: the limit counts both streams.
    let hcl = String::from(
        r#"
secret_type "chatty" {
  get "shell" { cmd = "head -c 2097152 /dev/zero | tr '\\0' 'x' | fold -w 1000 >&2; echo '{\"k\":\"v\"}'" }
}
"#,
    ) + &variable("v", "chatty", "a/b", "k");
    let error = resolution_error(&hcl, dir.path()).await;
    assert_eq!(
        error,
        "secret for variable \"v\": failed to fetch secret from \"chatty\" at \"a/b\": the get command of secret type \"chatty\" printed more than 1 MiB (standard output and error together) and was stopped: print only the secret data"
    );
    assert_eq!(pikoci_secrets::MAX_OUTPUT, 1024 * 1024);
}

#[test]
fn store_keys_are_the_entries_the_work_reads_with_their_dependencies() {
    let pipeline = load(
        r#"
secret_type "vault" {
  source  = "pikoci://vault"
  address = "http://127.0.0.1:9"
  token   = var.vault_token
}
variable "vault_token" {
  type = string
  secret "pikoci" { key = "VAULT_TOKEN" }
}
variable "db" {
  type = string
  secret "vault" {
    path = "secret/db"
    key  = "password"
  }
}
variable "region" {
  type = string
  secret "pikoci" { key = "REGION" }
}
variable "name" {
  type = string
  secret "env" { key = "ENTRY_NAME" }
}
variable "dynamic" {
  type = string
  secret "pikoci" { key = var.name }
}
variable "other_job" {
  type = string
  secret "pikoci" { key = "OTHER" }
}
job "deploy" {
  task "t" {
    run "exec" {
      path = "echo"
      args = [var.db, var.region, var.dynamic]
    }
  }
}
job "other" {
  task "t" {
    run "exec" {
      path = "echo"
      args = [var.other_job]
    }
  }
}
"#,
    );
    // `db` needs the Vault token from the store; `dynamic`'s key is known only once `name` is resolved; `other_job` is another job's.
    assert_eq!(
        pikoci_secrets::store_keys(&pipeline, &used_by_job(&pipeline, "deploy")),
        ["REGION", "VAULT_TOKEN"]
    );
    assert_eq!(
        pikoci_secrets::store_keys(&pipeline, &used_by_job(&pipeline, "other")),
        ["OTHER"]
    );
}
