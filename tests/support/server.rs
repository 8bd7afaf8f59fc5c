//! A `pikoci server` (or `pikoci worker`) process for the end-to-end tests, and a small JSON
//! client of its API.

use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use serde_json::json;

use super::git::GitServer;
use super::{Lines, pikoci};

/// How long a test waits for a build or a process: a deadline against a hang, not a measure.
pub(crate) const PATIENCE: Duration = Duration::from_secs(120);

/// The password of user `admin` on every test server ([`ADMIN_HASH`]).
pub(crate) const ADMIN_PASSWORD: &str = "pikoci-test-password";
/// `pikoci user-password -u admin` of [`ADMIN_PASSWORD`].
pub(crate) const ADMIN_USER: &str = "admin:$argon2id$v=19$m=19456,t=2,p=1$MYXxEEzrlLKvTfr+hNm0rw$ndBER7yFEmwvjbnVnICcXdgvw6YOyy02mCsJJATqRLY";
/// The global worker token of the servers and workers these tests start (as `pikoci
/// worker-token` makes one).
pub(crate) const WORKER_TOKEN: &str =
    "pkw_5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed5eed";

/// A running `pikoci server`, killed when dropped.
pub(crate) struct ServerProcess {
    child: Child,
    /// Its log (stderr), read on a thread.
    pub(crate) log: Lines,
    /// `http://127.0.0.1:PORT`.
    pub(crate) base: String,
    client: reqwest::Client,
    /// A session of `admin`, sent with every request.
    pub(crate) token: String,
}

impl ServerProcess {
    /// Starts `pikoci server` with `args` (and user `admin`, [`ADMIN_PASSWORD`]) on a free port,
    /// waits until it listens, and logs in as `admin`.
    pub(crate) fn start(args: &[&str]) -> ServerProcess {
        ServerProcess::start_with_env(args, &[])
    }

    /// Like [`ServerProcess::start`], with more environment variables (`RUST_LOG` among them,
    /// which is `info` otherwise).
    pub(crate) fn start_with_env(args: &[&str], env: &[(&str, &str)]) -> ServerProcess {
        let mut command = pikoci();
        command
            .arg("server")
            .args(["--port", "0", "--log-format", "text", "--users", ADMIN_USER])
            .args(args)
            .env("PIKOCI_WORKER_TOKEN", WORKER_TOKEN)
            .env("RUST_LOG", "info")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = command.spawn().expect("pikoci server starts");
        let mut log = Lines::new(child.stderr.take().expect("stderr is piped"));
        let seen = log.wait_for("listening on http://", &mut child).to_owned();
        let base = seen
            .split("listening on ")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .expect("the listening line names the address")
            .to_owned();
        let client = pikoci_http::ClientConfig::new(Duration::from_secs(30))
            .build()
            .expect("an HTTP client");
        let token = log_in(&client, &base);
        ServerProcess {
            child,
            log,
            base,
            client,
            token,
        }
    }

    /// Logs in as `admin` again (an import ends every session).
    pub(crate) fn log_in_again(&mut self) {
        self.token = log_in(&self.client, &self.base);
    }

    /// The process id.
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// `GET /api/v1{path}`: the status and the JSON body.
    pub(crate) async fn get(&self, path: &str) -> (u16, Value) {
        let response = self
            .client
            .get(format!("{}/api/v1{path}", self.base))
            .bearer_auth(&self.token)
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {path}: {e}"));
        read(response).await
    }

    /// `POST /api/v1{path}` with a JSON body: the status and the JSON body.
    pub(crate) async fn post(&self, path: &str, body: Value) -> (u16, Value) {
        let response = self
            .client
            .post(format!("{}/api/v1{path}", self.base))
            .bearer_auth(&self.token)
            .header("content-type", "application/json")
            .body(body.to_string())
            .send()
            .await
            .unwrap_or_else(|e| panic!("POST {path}: {e}"));
        read(response).await
    }

    /// `GET` of a text route (logs).
    pub(crate) async fn text(&self, path: &str) -> String {
        self.client
            .get(format!("{}/api/v1{path}", self.base))
            .bearer_auth(&self.token)
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {path}: {e}"))
            .text()
            .await
            .unwrap_or_else(|e| panic!("GET {path}: {e}"))
    }

    /// The value of the unlabelled sample `name` at `GET /metrics`.
    #[allow(dead_code)] // the benchmarks'
    pub(crate) async fn metric(&self, name: &str) -> f64 {
        let text = self
            .client
            .get(format!("{}/metrics", self.base))
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .unwrap_or_else(|e| panic!("GET /metrics: {e}"))
            .text()
            .await
            .unwrap_or_else(|e| panic!("GET /metrics: {e}"));
        text.lines()
            .find_map(|line| line.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or_else(|| panic!("no {name} in the metrics:\n{text}"))
    }

    /// The raw response of `GET /api/v1{path}` with extra headers (SSE).
    pub(crate) async fn stream(&self, path: &str, headers: &[(&str, &str)]) -> reqwest::Response {
        let mut request = self
            .client
            .get(format!("{}/api/v1{path}", self.base))
            .bearer_auth(&self.token);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        request
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {path}: {e}"))
    }

    /// Polls a build (`.../builds/N`) until it is finished; returns it.
    pub(crate) async fn wait_finished(&self, build_path: &str) -> Value {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let (status, body) = self.get(build_path).await;
            if status == 200 {
                let state = body["data"]["status"]
                    .as_str()
                    .unwrap_or_default()
                    .to_owned();
                if ["succeeded", "failed", "errored", "cancelled", "warning"]
                    .contains(&state.as_str())
                {
                    return body["data"].clone();
                }
            }
            assert!(
                Instant::now() < deadline,
                "build {build_path} did not finish: {status} {body:#}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Polls `path` until `done` holds for its JSON body; returns the body.
    pub(crate) async fn wait_until(&self, path: &str, done: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + PATIENCE;
        loop {
            let (status, body) = self.get(path).await;
            if status == 200 && done(&body) {
                return body;
            }
            assert!(
                Instant::now() < deadline,
                "{path} never got there: {status} {body:#}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Sends SIGTERM and waits for the process to exit; returns its log after the signal.
    pub(crate) fn stop(mut self) -> String {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        let rest = self.log.rest(&mut self.child);
        let _ = self.child.wait();
        rest
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Logs in as `admin` (on a thread of its own: callers may be inside a runtime or not).
fn log_in(client: &reqwest::Client, base: &str) -> String {
    let client = client.clone();
    let url = format!("{base}/api/v1/login");
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        runtime.block_on(async {
            let response = client
                .post(&url)
                .header("content-type", "application/json")
                .body(json!({"username": "admin", "password": ADMIN_PASSWORD}).to_string())
                .send()
                .await
                .unwrap_or_else(|e| panic!("POST {url}: {e}"));
            let (status, body) = read(response).await;
            assert_eq!(status, 200, "login as admin: {body}");
            body["data"]["token"]
                .as_str()
                .expect("a session token")
                .to_owned()
        })
    })
    .join()
    .expect("the login thread")
}

/// A running `pikoci worker`, killed when dropped.
pub(crate) struct WorkerProcess {
    child: Child,
    /// Its log (stderr), read on a thread.
    pub(crate) log: Lines,
}

impl WorkerProcess {
    /// Starts `pikoci worker` with `args` and waits until it runs.
    pub(crate) fn start(args: &[&str]) -> WorkerProcess {
        let mut command = pikoci();
        command
            .arg("worker")
            .args(["--log-format", "text"])
            .args(args)
            .env("PIKOCI_WORKER_TOKEN", WORKER_TOKEN)
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = command.spawn().expect("pikoci worker starts");
        let mut log = Lines::new(child.stderr.take().expect("stderr is piped"));
        log.wait_for("worker started", &mut child);
        WorkerProcess { child, log }
    }

    /// The process id.
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Kills it with SIGKILL and reaps it.
    pub(crate) fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for WorkerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn read(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    let text = response.text().await.unwrap_or_default();
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, body)
}

/// The pipeline of the scenario: `test` runs on every commit, `deploy` after it (`passed`) and
/// by hand with an input.
pub(crate) fn pipeline(url: &str) -> String {
    format!(
        r#"
resource "git" "app" {{
  check_interval = "@every 1h"
  params {{
    url    = "{url}"
    branch = "main"
  }}
}}

job "test" {{
  get "git" "app" {{ trigger = true }}
  task "unit" {{
    run "shell" {{
      cmd = "cat app/README; i=1; while [ $i -le 300 ]; do echo line $i; i=$((i+1)); done"
    }}
  }}
}}

job "deploy" {{
  input "target" {{
    type    = "string"
    default = "staging"
  }}
  get "git" "app" {{
    trigger = true
    passed  = ["test"]
  }}
  task "ship" {{
    run "shell" {{ cmd = "echo deploying $(cat app/README) to $INPUT_target" }}
  }}
}}
"#
    )
}

const JOBS: &str = "/teams/main/pipelines/demo/jobs";

/// The scenario every deployment shape runs.
pub(crate) async fn scenario(server: &ServerProcess, git: &GitServer) {
    // The first check runs at start: build 1 of `test`, then `deploy` because it passed.
    let first = server.wait_finished(&format!("{JOBS}/test/builds/1")).await;
    assert_eq!(first["status"], "succeeded", "{first:#}");
    let log = server.text(&format!("{JOBS}/test/builds/1/logs")).await;
    assert!(log.contains("version 1"), "{log}");
    let lines: Vec<&str> = log.lines().filter(|l| l.starts_with("line ")).collect();
    let expected: Vec<String> = (1..=300).map(|i| format!("line {i}")).collect();
    assert_eq!(lines, expected, "every line, once, in order");
    let deployed = server
        .wait_finished(&format!("{JOBS}/deploy/builds/1"))
        .await;
    assert_eq!(deployed["status"], "succeeded", "{deployed:#}");
    let log = server.text(&format!("{JOBS}/deploy/builds/1/logs")).await;
    assert!(log.contains("deploying version 1 to staging"), "{log}");

    // A commit and the webhook: build 2 of `test`, then of `deploy`.
    git.commit("README", "version 2\n");
    let (status, resource) = server
        .get("/teams/main/pipelines/demo/resources/git.app")
        .await;
    assert_eq!(status, 200, "{resource:#}");
    let token = resource["data"]["webhook_token"]
        .as_str()
        .expect("the resource shows its webhook token")
        .to_owned();
    let (status, body) = server.post(&format!("/webhooks/{token}"), json!({})).await;
    assert_eq!(status, 200, "{body:#}");
    let second = server.wait_finished(&format!("{JOBS}/test/builds/2")).await;
    assert_eq!(second["status"], "succeeded", "{second:#}");
    let log = server.text(&format!("{JOBS}/test/builds/2/logs")).await;
    assert!(log.contains("version 2"), "{log}");
    let deployed = server
        .wait_finished(&format!("{JOBS}/deploy/builds/2"))
        .await;
    assert_eq!(deployed["status"], "succeeded", "{deployed:#}");

    // A manual trigger with an input.
    let (status, body) = server
        .post(
            &format!("{JOBS}/deploy/trigger"),
            json!({"input_values": {"target": "production"}}),
        )
        .await;
    assert_eq!(status, 201, "{body:#}");
    let number = body["data"]["number"].as_str().unwrap().to_owned();
    let manual = server
        .wait_finished(&format!("{JOBS}/deploy/builds/{number}"))
        .await;
    assert_eq!(manual["status"], "succeeded", "{manual:#}");
    let log = server
        .text(&format!("{JOBS}/deploy/builds/{number}/logs"))
        .await;
    assert!(log.contains("deploying version 2 to production"), "{log}");

    // A retry of build 1 uses build 1's version, not the newest.
    let (status, body) = server
        .post(&format!("{JOBS}/test/builds/1/retry"), json!({}))
        .await;
    assert_eq!(status, 201, "{body:#}");
    assert_eq!(body["data"]["number"], "1.1");
    let retry = server
        .wait_finished(&format!("{JOBS}/test/builds/1.1"))
        .await;
    assert_eq!(retry["status"], "succeeded", "{retry:#}");
    let log = server.text(&format!("{JOBS}/test/builds/1.1/logs")).await;
    assert!(log.contains("version 1"), "{log}");
}
