//! A `pikoci server` (or `pikoci worker`) process for the end-to-end tests, and a small JSON
//! client of its API.

use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::{Lines, pikoci};

/// How long a test waits for a build or a process: a deadline against a hang, not a measure.
pub(crate) const PATIENCE: Duration = Duration::from_secs(120);

/// A running `pikoci server`, killed when dropped.
pub(crate) struct ServerProcess {
    child: Child,
    /// Its log (stderr), read on a thread.
    pub(crate) log: Lines,
    /// `http://127.0.0.1:PORT`.
    pub(crate) base: String,
    client: reqwest::Client,
}

impl ServerProcess {
    /// Starts `pikoci server` with `args` on a free port and waits until it listens.
    pub(crate) fn start(args: &[&str]) -> ServerProcess {
        let mut command = pikoci();
        command
            .arg("server")
            .args(["--port", "0", "--log-format", "text"])
            .args(args)
            .env("RUST_LOG", "info")
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
        ServerProcess {
            child,
            log,
            base,
            client,
        }
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
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {path}: {e}"))
            .text()
            .await
            .unwrap_or_else(|e| panic!("GET {path}: {e}"))
    }

    /// The raw response of `GET /api/v1{path}` with extra headers (SSE).
    pub(crate) async fn stream(&self, path: &str, headers: &[(&str, &str)]) -> reqwest::Response {
        let mut request = self.client.get(format!("{}/api/v1{path}", self.base));
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
                let state = body["data"]["status"].as_str().unwrap_or_default().to_owned();
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
            assert!(Instant::now() < deadline, "{path} never got there: {status} {body:#}");
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

async fn read(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    let text = response.text().await.unwrap_or_default();
    let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (status, body)
}
