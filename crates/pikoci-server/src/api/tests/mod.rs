//! Router tests, without a socket: requests go through `tower::ServiceExt::oneshot`.
//!
//! Routes whose handlers call the service operations that this crate implements elsewhere
//! (trigger, cancel, retry, approve, reject, check, webhook, `/readyz`, the pending reason of
//! a pending build, following a running build) are tested with the service.

mod access;
mod accounts;
mod admin;
mod builds;
mod events;
mod live;
mod metrics;
mod openapi;
mod pipelines;
mod resources;
mod secrets;
mod triggers;
mod ui;

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use axum::response::Response;
use chrono::{DateTime, Utc};
use http_body_util::BodyExt;
use pikoci_core::store::{
    Build, BuildStatus, BuildStep, BuildTransition, ClaimRequest, JobId, NewBuild, NewLogChunk,
    StepStatus, Store, TeamScope,
};
use serde_json::{Value, json};
use tower::ServiceExt;

use crate::{Clock, Server, ServerConfig};

/// A pipeline with a resource, two jobs (the second after the first) and a job with inputs.
pub(super) const PIPELINE: &str = r#"
resource "cron" "tick" {
  check_interval = "@every 1m"
}
job "build" {
  get "cron" "tick" {
    trigger = true
  }
  task "compile" {
    run "exec" {
      path = "echo"
      args = ["compiling"]
    }
  }
}
job "deploy" {
  get "cron" "tick" {
    passed = ["build"]
  }
  input "environment" {
    type    = "string"
    options = ["staging", "production"]
    default = "staging"
  }
}
"#;

/// A server on an in-memory store, and its router.
pub(super) struct TestApi {
    pub(super) server: Server,
    router: Router,
    /// A session of user `root`, a global admin: what [`TestApi::call`] sends.
    pub(super) admin: String,
}

/// A session token of `user`, stored without a login (no password hashing in tests).
pub(super) async fn session(server: &Server, user: &pikoci_core::store::User) -> String {
    let token = crate::auth::new_token(crate::auth::SESSION_PREFIX);
    server
        .accounts()
        .create_session(pikoci_core::store::NewSession {
            user: user.id,
            token_hash: crate::auth::token_hash(token.expose()),
            created_at: Utc::now(),
            expires_at: Utc::now() + chrono::Duration::hours(1),
        })
        .await
        .expect("session");
    token.into_exposed()
}

/// An answer: status, headers and body.
pub(super) struct Answer {
    pub(super) status: StatusCode,
    pub(super) response_headers: axum::http::HeaderMap,
    pub(super) text: String,
}

impl Answer {
    /// The body as JSON.
    pub(super) fn json(&self) -> Value {
        serde_json::from_str(&self.text)
            .unwrap_or_else(|error| panic!("not JSON ({error}): {}", self.text))
    }

    /// `data` of a success body.
    pub(super) fn data(&self) -> Value {
        assert!(
            self.status.is_success(),
            "expected success, got {}: {}",
            self.status,
            self.text
        );
        self.json()["data"].clone()
    }

    /// Asserts the error shape and code, and returns the message.
    pub(super) fn error(&self, status: StatusCode, code: &str) -> String {
        assert_eq!(self.status, status, "{}", self.text);
        let json = self.json();
        assert_eq!(json["error"]["code"], code, "{json}");
        json["error"]["message"]
            .as_str()
            .unwrap_or_else(|| panic!("no message: {json}"))
            .to_owned()
    }
}

impl TestApi {
    /// A fresh server with team `main`.
    pub(super) async fn new() -> TestApi {
        TestApi::with_secret_key(Some("0123456789abcdef0123456789abcdef")).await
    }

    /// A fresh server with team `main`, whose secret store has `key` (none: plain entries
    /// only).
    pub(super) async fn with_secret_key(key: Option<&str>) -> TestApi {
        let sql = Arc::new(pikoci_store::connect("mem").await.expect("mem"));
        let cipher = key.map(|key| {
            pikoci_secrets::Cipher::new(&pikoci_core::secrets::Secret::new(key)).expect("key")
        });
        let server = Server::new(
            sql.clone(),
            sql.clone(),
            Arc::new(pikoci_pubsub::MemBroker::new()),
            pikoci_secrets::SecretStore::new(sql, cipher),
            ServerConfig::default(),
            Clock::new(),
        );
        server.ensure_team("main").await.expect("team");
        let root = server
            .accounts()
            .create_user(
                pikoci_core::store::NewUser {
                    name: "root".to_owned(),
                    full_name: String::new(),
                    password_hash: None,
                    admin: true,
                    must_change_password: false,
                },
                Utc::now(),
            )
            .await
            .expect("user");
        let admin = session(&server, &root).await;
        TestApi {
            router: super::router(server.clone()),
            server,
            admin,
        }
    }

    /// A new session of `root` (after an import ended the old one).
    pub(super) async fn log_in_again(&mut self) {
        let root = self.server.accounts().user("root").await.expect("root");
        self.admin = session(&self.server, &root).await;
    }

    /// Creates user `name` (no password), a member of `main` with `role` when given, and
    /// returns a session token of it.
    pub(super) async fn user(&self, name: &str, role: Option<pikoci_core::store::Role>) -> String {
        let user = self
            .server
            .accounts()
            .create_user(
                pikoci_core::store::NewUser {
                    name: name.to_owned(),
                    full_name: String::new(),
                    password_hash: None,
                    admin: false,
                    must_change_password: false,
                },
                Utc::now(),
            )
            .await
            .expect("user");
        if let Some(role) = role {
            let team = self.store().team("main").await.expect("main");
            self.server
                .accounts()
                .set_member(team.id, user.id, role, Utc::now())
                .await
                .expect("member");
        }
        session(&self.server, &user).await
    }

    /// The same with pipeline `demo` ([`PIPELINE`]) set.
    pub(super) async fn with_pipeline() -> TestApi {
        let api = TestApi::new().await;
        api.server
            .set_pipeline("main", "demo", "demo.hcl", PIPELINE, Value::Null)
            .await
            .expect("pipeline");
        api
    }

    pub(super) fn store(&self) -> &Arc<dyn Store> {
        self.server.store()
    }

    /// Sends a request.
    pub(super) async fn send(&self, mut request: Request<Body>) -> Response {
        if !request.headers().contains_key(header::AUTHORIZATION) {
            let value = format!("Bearer {}", self.admin).parse().expect("header");
            request.headers_mut().insert(header::AUTHORIZATION, value);
        }
        self.router
            .clone()
            .oneshot(request)
            .await
            .expect("the router is infallible")
    }

    /// Sends a request as it is (without credentials unless it has some).
    pub(super) async fn router_oneshot(&self, request: Request<Body>) -> Response {
        self.router
            .clone()
            .oneshot(request)
            .await
            .expect("the router is infallible")
    }

    /// Sends a request as the global admin `root` and reads the whole answer.
    pub(super) async fn call(&self, method: Method, path: &str, body: Option<Value>) -> Answer {
        self.call_as(Some(&self.admin), method, path, body).await
    }

    /// Sends a request with `token` (none: anonymously) and reads the whole answer.
    pub(super) async fn call_as(
        &self,
        token: Option<&str>,
        method: Method,
        path: &str,
        body: Option<Value>,
    ) -> Answer {
        let mut request = Request::builder().method(method).uri(path);
        if let Some(token) = token {
            request = request.header(header::AUTHORIZATION, format!("Bearer {token}"));
        }
        let body = match body {
            Some(json) => {
                request = request.header(header::CONTENT_TYPE, "application/json");
                Body::from(json.to_string())
            }
            None => Body::empty(),
        };
        read(
            self.router_oneshot(request.body(body).expect("request"))
                .await,
        )
        .await
    }

    pub(super) async fn get(&self, path: &str) -> Answer {
        self.call(Method::GET, path, None).await
    }

    pub(super) async fn post(&self, path: &str, body: Value) -> Answer {
        self.call(Method::POST, path, Some(body)).await
    }

    /// The id of a job of pipeline `demo`.
    pub(super) async fn job_id(&self, name: &str) -> JobId {
        let team = self.store().team("main").await.expect("team");
        let pipeline = self.store().pipeline(team.id, "demo").await.expect("demo");
        self.store().job(pipeline.id, name).await.expect("job").id
    }

    /// A pending build of `job`.
    pub(super) async fn pending_build(&self, job: JobId) -> Build {
        self.store()
            .create_build(NewBuild {
                job_id: job,
                status: BuildStatus::Pending,
                inputs: json!({"environment": "staging"}),
                trigger: None,
                versions: Vec::new(),
                once_per_versions: false,
                created_at: at(10),
            })
            .await
            .expect("build")
    }

    /// A build of `job` claimed by worker `w1` and started (attempt 1), with one step.
    pub(super) async fn started_build(&self, job: JobId) -> Build {
        self.pending_build(job).await;
        let claimed = self
            .store()
            .claim_next_pending(&ClaimRequest {
                worker_id: "w1".to_owned(),
                worker_tags: Vec::new(),
                teams: TeamScope::All,
                exclusive: false,
                lease_until: at(1000),
            })
            .await
            .expect("claim")
            .expect("a pending build");
        let build = self
            .transition(&claimed, BuildStatus::Assigned, BuildStatus::Started, 20)
            .await;
        self.step(&build, 0, "tick", StepStatus::Succeeded).await;
        build
    }

    /// Records step `index` of attempt 1.
    pub(super) async fn step(&self, build: &Build, index: u32, name: &str, status: StepStatus) {
        self.store()
            .record_step(
                build.id,
                &BuildStep {
                    attempt: 1,
                    step: index,
                    name: name.to_owned(),
                    kind: "get".to_owned(),
                    status,
                    started_at: Some(at(20)),
                    finished_at: (status != StepStatus::Started).then(|| at(22)),
                    parent: None,
                },
            )
            .await
            .expect("step");
    }

    /// Moves a build on.
    pub(super) async fn transition(
        &self,
        build: &Build,
        from: BuildStatus,
        to: BuildStatus,
        secs: i64,
    ) -> Build {
        self.store()
            .transition_build(&BuildTransition {
                action: None,
                build_id: build.id,
                from: vec![from],
                to,
                attempt: None,
                error: None,
                at: at(secs),
            })
            .await
            .expect("transition")
    }

    /// Stores chunks `(step, seq, text)` of attempt 1, one call each (in the order given).
    pub(super) async fn chunks(&self, build: &Build, chunks: &[(u32, u64, &str)]) {
        for (step, seq, text) in chunks {
            self.store()
                .append_log_chunks(&[NewLogChunk {
                    build_id: build.id,
                    attempt: 1,
                    step: *step,
                    seq: *seq,
                    data: text.as_bytes().to_vec(),
                    created_at: at(21),
                }])
                .await
                .expect("chunk");
        }
    }
}

/// Reads a whole answer.
pub(super) async fn read(response: Response) -> Answer {
    let status = response.status();
    let response_headers = response.headers().clone();
    let bytes = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes();
    Answer {
        status,
        response_headers,
        text: String::from_utf8_lossy(&bytes).into_owned(),
    }
}

/// A fixed time, `secs` after 2026-01-01T00:00:00Z.
pub(super) fn at(secs: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(1_767_225_600 + secs, 0).expect("time")
}

#[tokio::test]
async fn healthz_answers_ok_and_nothing_is_cached() {
    let api = TestApi::new().await;
    let answer = api.get("/healthz").await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(answer.json(), json!({"status": "ok"}));
    assert_eq!(answer.response_headers[header::CACHE_CONTROL], "no-store");
}

#[tokio::test]
async fn unknown_paths_and_methods_have_the_error_shape() {
    let api = TestApi::new().await;
    for path in [
        "/nope",
        "/api/v1/nope",
        "/api/v1/teams/main/nope",
        "/api/v2/teams",
    ] {
        let message = api
            .get(path)
            .await
            .error(StatusCode::NOT_FOUND, "not_found");
        assert!(message.contains(path), "{message}");
    }
    let answer = api.call(Method::DELETE, "/api/v1/teams", None).await;
    let message = answer.error(StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed");
    assert!(message.contains("DELETE"), "{message}");
}

#[tokio::test]
async fn bodies_of_the_wrong_shape_are_400_with_the_reason() {
    let api = TestApi::new().await;
    let message = api
        .post("/api/v1/teams", json!({"name": 3}))
        .await
        .error(StatusCode::BAD_REQUEST, "invalid_input");
    assert!(message.contains("invalid type: integer `3`"), "{message}");
    let message = api
        .post("/api/v1/teams", json!({"nam": "x"}))
        .await
        .error(StatusCode::BAD_REQUEST, "invalid_input");
    assert!(message.contains("unknown field `nam`"), "{message}");
    let request = Request::post("/api/v1/teams")
        .header(header::CONTENT_TYPE, "application/json")
        .body(Body::from("{not json"))
        .expect("request");
    let message = read(api.send(request).await)
        .await
        .error(StatusCode::BAD_REQUEST, "invalid_input");
    assert!(message.starts_with("invalid JSON body"), "{message}");
    // An array is not an object, even where every field is optional.
    let message = api
        .post("/api/v1/teams/main/triggers/deploy", json!([]))
        .await
        .error(StatusCode::BAD_REQUEST, "invalid_input");
    assert!(message.contains("must be a JSON object"), "{message}");
    // Path and query parameters that do not fit.
    let message = api
        .get("/api/v1/teams/main/pipelines/demo/jobs/build/builds/x.1")
        .await
        .error(StatusCode::BAD_REQUEST, "invalid_input");
    assert!(message.contains("invalid build number"), "{message}");
}

#[tokio::test]
async fn a_json_body_without_content_type_is_accepted() {
    let api = TestApi::new().await;
    let request = Request::post("/api/v1/teams")
        .body(Body::from(r#"{"name": "ops"}"#))
        .expect("request");
    let answer = read(api.send(request).await).await;
    assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.text);
    assert_eq!(answer.data()["name"], "ops");
}

#[tokio::test]
async fn teams_are_listed_created_and_checked() {
    let api = TestApi::new().await;
    let created = api.post("/api/v1/teams", json!({"name": "ops"})).await;
    assert_eq!(created.status, StatusCode::CREATED);
    let team = created.data();
    assert_eq!(team["name"], "ops");
    assert!(team["id"].is_i64());
    assert!(
        team["created_at"]
            .as_str()
            .is_some_and(|t| t.ends_with('Z'))
    );
    let names: Vec<Value> = api
        .get("/api/v1/teams")
        .await
        .data()
        .as_array()
        .expect("list")
        .iter()
        .map(|t| t["name"].clone())
        .collect();
    assert_eq!(names, [json!("main"), json!("ops")]);
    api.post("/api/v1/teams", json!({"name": "ops"}))
        .await
        .error(StatusCode::CONFLICT, "conflict");
    api.post("/api/v1/teams", json!({"name": "Not Canonical"}))
        .await
        .error(StatusCode::BAD_REQUEST, "invalid_input");
    api.post("/api/v1/teams", json!({}))
        .await
        .error(StatusCode::BAD_REQUEST, "invalid_input");
}

#[tokio::test]
async fn workers_are_running_or_lost_by_their_last_heartbeat() {
    let api = TestApi::new().await;
    let now = api.server.clock().now();
    let team = api.store().team("main").await.expect("team");
    for (id, team_id, seconds_ago) in [("w-fresh", Some(team.id), 2), ("w-old", None, 60)] {
        api.store()
            .record_heartbeat(&pikoci_core::store::WorkerHeartbeat {
                worker_id: id.to_owned(),
                team_id,
                tags: vec!["linux".to_owned()],
                exclusive: false,
                draining: false,
                slots: 4,
                running: 1,
                version: "0.1.0".to_owned(),
                hostname: "host".to_owned(),
                sealing_key: None,
                at: now - chrono::Duration::seconds(seconds_ago),
            })
            .await
            .expect("heartbeat");
    }
    let workers = api.get("/api/v1/workers").await.data();
    assert_eq!(workers[0]["id"], "w-fresh");
    assert_eq!(workers[0]["state"], "running");
    assert_eq!(workers[0]["team"], "main");
    assert_eq!(workers[0]["tags"], json!(["linux"]));
    assert_eq!(workers[1]["id"], "w-old");
    assert_eq!(workers[1]["state"], "lost");
    assert_eq!(workers[1]["team"], Value::Null);
    assert_eq!(
        api.get("/api/v1/workers/health").await.data(),
        json!({"healthy": true, "running": 1, "draining": 0, "lost": 1, "free_slots": 3})
    );
    // Pruning forgets the lost one only.
    let pruned = api.post("/api/v1/workers/prune", json!({})).await.data();
    assert_eq!(pruned, json!({"pruned": ["w-old"]}));
    let workers = api.get("/api/v1/workers").await.data();
    assert_eq!(workers.as_array().map(Vec::len), Some(1));
    assert_eq!(workers[0]["id"], "w-fresh");
    let pruned = api.post("/api/v1/workers/prune", json!({})).await.data();
    assert_eq!(pruned, json!({"pruned": []}));
    // One worker is forgotten by its name, alive or not.
    let deleted = api
        .call(Method::DELETE, "/api/v1/workers/w-fresh", None)
        .await
        .data();
    assert_eq!(deleted, json!({"deleted": "w-fresh"}));
    let message = api
        .call(Method::DELETE, "/api/v1/workers/w-fresh", None)
        .await
        .error(StatusCode::NOT_FOUND, "not_found");
    assert!(message.contains("no worker \"w-fresh\""), "{message}");
}

#[tokio::test]
async fn the_version_is_the_servers() {
    let api = TestApi::new().await;
    assert_eq!(
        api.get("/api/v1/version").await.data(),
        json!({"version": env!("CARGO_PKG_VERSION")})
    );
}

#[tokio::test]
async fn a_team_is_read_and_deleted_with_what_it_owns() {
    let api = TestApi::new().await;
    let team = api.get("/api/v1/teams/main").await.data();
    assert_eq!(team["name"], "main");
    api.get("/api/v1/teams/nope")
        .await
        .error(StatusCode::NOT_FOUND, "not_found");
    // Team main is kept.
    let message = api
        .call(Method::DELETE, "/api/v1/teams/main", None)
        .await
        .error(StatusCode::CONFLICT, "conflict");
    assert!(message.contains("team main is kept"), "{message}");

    api.post("/api/v1/teams", json!({"name": "web"}))
        .await
        .data();
    api.server
        .set_pipeline("web", "site", "site.hcl", PIPELINE, Value::Null)
        .await
        .expect("pipeline");
    let team = api.store().team("web").await.expect("team");
    let pipeline = api.store().pipeline(team.id, "site").await.expect("site");
    let job = api.store().job(pipeline.id, "build").await.expect("job").id;
    // A team with a build running is kept until it ends.
    let build = api.started_build(job).await;
    let message = api
        .call(Method::DELETE, "/api/v1/teams/web", None)
        .await
        .error(StatusCode::CONFLICT, "conflict");
    assert!(message.contains("has a build running"), "{message}");
    api.transition(&build, BuildStatus::Started, BuildStatus::Succeeded, 60)
        .await;
    let deleted = api
        .call(Method::DELETE, "/api/v1/teams/web", None)
        .await
        .data();
    assert_eq!(deleted, json!({"deleted": "web"}));
    api.get("/api/v1/teams/web/pipelines/site")
        .await
        .error(StatusCode::NOT_FOUND, "not_found");
    let names: Vec<Value> = api
        .get("/api/v1/teams")
        .await
        .data()
        .as_array()
        .expect("teams")
        .iter()
        .map(|t| t["name"].clone())
        .collect();
    assert_eq!(names, [json!("main")]);
}

#[tokio::test]
async fn workers_are_unhealthy_without_a_running_worker_with_a_free_slot() {
    let api = TestApi::new().await;
    assert_eq!(
        api.get("/api/v1/workers/health").await.data(),
        json!({"healthy": false, "running": 0, "draining": 0, "lost": 0, "free_slots": 0})
    );
    let now = api.server.clock().now();
    for (id, draining, running) in [("w-busy", false, 2), ("w-leaving", true, 0)] {
        api.store()
            .record_heartbeat(&pikoci_core::store::WorkerHeartbeat {
                worker_id: id.to_owned(),
                team_id: None,
                tags: Vec::new(),
                exclusive: false,
                draining,
                slots: 2,
                running,
                version: "0.1.0".to_owned(),
                hostname: "host".to_owned(),
                sealing_key: None,
                at: now,
            })
            .await
            .expect("heartbeat");
    }
    assert_eq!(
        api.get("/api/v1/workers/health").await.data(),
        json!({"healthy": false, "running": 1, "draining": 1, "lost": 0, "free_slots": 0})
    );
}
