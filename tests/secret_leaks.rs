//! Secrets never leak: a server with the secret store on SQLite holds a team secret and a
//! pipeline secret, runs builds that print them and fail with them on their command line, and
//! then every answer of every `GET` route of its OpenAPI document (live streams included), the
//! answers of what the test asked, the export, the database's files and the server's own log
//! (at level `debug`) are searched for the values and for the master key. The build's log must
//! show the masks, so that the builds did print the values.

mod support;

use std::time::Duration;

use serde_json::{Value, json};
use support::server::ServerProcess;

/// The values searched for: none may appear anywhere.
const TEAM_SECRET: &str = "tEaM-s3cret-7d1f0a9c";
const PIPELINE_SECRET: &str = "p1peLine-s3cret-44b2e6";
const MASTER_KEY: &str = "leak-test-master-key-0123456789abcdef0123";

const PIPELINE: &str = r#"
variable "token" {
  type = string
  secret "pikoci" { key = "TOKEN" }
}
variable "region" {
  type = string
  secret "pikoci" { key = "REGION" }
}
job "print" {
  task "echo" {
    run "exec" {
      path = "sh"
      args = ["-c", "echo token=$0 region=$1; echo \"$0\" >&2", var.token, var.region]
    }
  }
}
job "fail" {
  task "refuse" {
    run "exec" {
      path = "sh"
      args = ["-c", "echo failing with $0; exit 3", var.token]
    }
  }
}
"#;

/// Fails naming where a value was found.
fn assert_clean(place: &str, text: &str) {
    for (name, value) in [
        ("the team secret", TEAM_SECRET),
        ("the pipeline secret", PIPELINE_SECRET),
        ("the master key", MASTER_KEY),
    ] {
        if let Some(at) = text.find(value) {
            let from = text[..at]
                .char_indices()
                .rev()
                .nth(200)
                .map_or(0, |(i, _)| i);
            let to = (at + value.len() + 200).min(text.len());
            panic!(
                "{name} is in {place}:\n…{}…",
                text.get(from..to).unwrap_or(&text[at..])
            );
        }
    }
}

/// Searches raw bytes (files, the export) as text.
fn assert_clean_bytes(place: &str, bytes: &[u8]) {
    assert_clean(place, &String::from_utf8_lossy(bytes));
}

struct Client {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl Client {
    /// `GET` of any route, as raw bytes (a live stream: what it sends in two seconds).
    async fn get(&self, path: &str) -> (u16, Vec<u8>) {
        let response = self
            .http
            .get(format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {path}: {e}"));
        let status = response.status().as_u16();
        let mut body = Vec::new();
        let mut response = response;
        let until = tokio::time::Instant::now() + Duration::from_secs(2);
        loop {
            match tokio::time::timeout_at(until, response.chunk()).await {
                Ok(Ok(Some(chunk))) => body.extend_from_slice(&chunk),
                Ok(Ok(None)) | Err(_) => break,
                Ok(Err(e)) => panic!("GET {path}: {e}"),
            }
        }
        (status, body)
    }
}

/// Every `GET` path of the document, with its parameters filled in for this test's pipeline
/// (once for each job).
fn get_paths(document: &Value) -> Vec<String> {
    let mut paths = Vec::new();
    for (path, item) in document["paths"].as_object().expect("paths") {
        if item.get("get").is_none() {
            continue;
        }
        for job in ["print", "fail"] {
            let filled = path
                .replace("{tc}", "main")
                .replace("{pc}", "leak")
                .replace("{jn}", job)
                .replace("{bn}", "1")
                .replace("{user}", "admin")
                .replace("{name}", "TOKEN");
            // The rest (ids, resources, versions, webhook tokens) do not exist here: their
            // refusals are searched too.
            let filled = filled
                .split('/')
                .map(|part| if part.starts_with('{') { "1" } else { part })
                .collect::<Vec<_>>()
                .join("/");
            if !paths.contains(&filled) {
                paths.push(filled);
            }
        }
    }
    paths
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn secrets_appear_in_no_answer_file_or_log() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("pikoci.db");
    let db = db.to_str().unwrap();
    let mut server = ServerProcess::start_with_env(
        &["--db-system", "sqlite", "--db-name", db],
        &[("PIKOCI_SECRET_KEY", MASTER_KEY), ("RUST_LOG", "debug")],
    );
    let mut answers = String::new();
    let mut post = async |path: &str, body: Value| {
        let (status, answer) = server.post(path, body).await;
        assert!((200..300).contains(&status), "{path}: {status} {answer:#}");
        answers.push_str(&answer.to_string());
    };
    post(
        "/teams/main/secrets",
        json!({"name": "TOKEN", "value": TEAM_SECRET, "kind": "secret"}),
    )
    .await;
    post(
        "/teams/main/pipelines",
        json!({"name": "leak", "config": PIPELINE}),
    )
    .await;
    post(
        "/teams/main/pipelines/leak/secrets",
        json!({"name": "REGION", "value": PIPELINE_SECRET, "kind": "secret"}),
    )
    .await;
    for job in ["print", "fail"] {
        post(
            &format!("/teams/main/pipelines/leak/jobs/{job}/trigger"),
            json!({}),
        )
        .await;
    }
    assert_clean("the answers to the test's requests", &answers);

    let jobs = "/teams/main/pipelines/leak/jobs";
    let printed = server
        .wait_finished(&format!("{jobs}/print/builds/1"))
        .await;
    assert_eq!(printed["status"], "succeeded", "{printed:#}");
    let failed = server.wait_finished(&format!("{jobs}/fail/builds/1")).await;
    assert_eq!(failed["status"], "failed", "{failed:#}");
    // The builds did print the values: masked.
    let log = server.text(&format!("{jobs}/print/builds/1/logs")).await;
    assert!(log.contains("token=*** region=***"), "{log}");
    let log = server.text(&format!("{jobs}/fail/builds/1/logs")).await;
    assert!(log.contains("failing with ***"), "{log}");

    let client = Client {
        http: pikoci_http::ClientConfig::new(Duration::from_secs(30))
            .build()
            .expect("an HTTP client"),
        base: server.base.clone(),
        token: server.token.clone(),
    };
    let (status, document) = client.get("/api/v1/openapi.json").await;
    assert_eq!(status, 200);
    let document: Value = serde_json::from_slice(&document).expect("the document");
    let paths = get_paths(&document);
    assert!(paths.len() > 40, "{paths:?}");
    let mut served = 0;
    for path in &paths {
        let (status, body) = client.get(path).await;
        served += usize::from(status == 200);
        assert_clean_bytes(&format!("GET {path} ({status})"), &body);
    }
    // Most routes answered with something to search, not only refusals.
    assert!(served > paths.len() / 2, "{served} of {}", paths.len());
    for path in ["/metrics", "/healthz", "/readyz"] {
        let (_, body) = client.get(path).await;
        assert_clean_bytes(path, &body);
    }

    let (status, export) = client.get("/api/v1/admin/export").await;
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&export));
    assert!(export.starts_with(b"SQLite format 3"), "an export");
    assert_clean_bytes("the export", &export);

    let seen = server.log.so_far().to_owned();
    let rest = server.stop();
    let log = format!("{seen}{rest}");
    assert!(log.contains("DEBUG"), "the server logged at level debug");
    assert_clean("the server's log", &log);
    // Every file of the database, write-ahead log included, once the server stopped.
    for entry in std::fs::read_dir(dir.path()).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            assert_clean_bytes(&path.display().to_string(), &std::fs::read(&path).unwrap());
        }
    }
}
