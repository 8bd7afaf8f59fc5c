//! Pipelines and jobs.

use axum::http::{Method, StatusCode};
use base64::Engine as _;
use serde_json::{Value, json};

use super::{PIPELINE, TestApi};

#[tokio::test]
async fn a_pipeline_is_set_then_updated_keeping_its_ids() {
    let api = TestApi::new().await;
    let body = json!({"name": "demo", "config": PIPELINE});
    let created = api.post("/api/v1/teams/main/pipelines", body.clone()).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    let set = created.data();
    assert_eq!(set["created"], true);
    assert_eq!(set["jobs"]["added"], json!(["build", "deploy"]));
    assert_eq!(set["resources"]["added"], json!(["cron.tick"]));
    assert_eq!(set["warnings"], json!([]));
    let pipeline = &set["pipeline"];
    assert_eq!(pipeline["name"], "demo");
    assert_eq!(pipeline["team"], "main");
    assert_eq!(pipeline["config"], PIPELINE);
    assert_eq!(pipeline["vars"], json!({}));
    assert_eq!(pipeline["paused"], false);
    assert_eq!(pipeline["jobs"][0]["name"], "build");
    assert_eq!(pipeline["jobs"][0]["latest_build"], Value::Null);
    assert_eq!(pipeline["resources"][0]["canonical"], "cron.tick");
    assert!(pipeline["resources"][0].get("webhook_token").is_none());
    let job_id = api.job_id("build").await;

    let again = api.post("/api/v1/teams/main/pipelines", body).await;
    assert_eq!(again.status, StatusCode::OK, "{}", again.text);
    let set = again.data();
    assert_eq!(set["created"], false);
    assert_eq!(set["jobs"]["updated"], json!(["build", "deploy"]));
    assert_eq!(set["pipeline"]["id"], pipeline["id"]);
    assert_eq!(api.job_id("build").await, job_id);

    let listed = api.get("/api/v1/teams/main/pipelines").await.data();
    assert_eq!(listed.as_array().map(Vec::len), Some(1));
    assert_eq!(listed[0]["name"], "demo");
    assert_eq!(listed[0]["jobs"][1]["name"], "deploy");
    assert!(listed[0].get("config").is_none(), "{listed}");
    let got = api.get("/api/v1/teams/main/pipelines/demo").await.data();
    assert_eq!(got["config"], PIPELINE);
    assert_eq!(got["id"], pipeline["id"]);
}

#[tokio::test]
async fn config_base64_vars_public_and_file_name_are_taken() {
    let api = TestApi::new().await;
    let text = r#"
variable "greeting" {
  type = string
}
job "hello" {
  task "say" {
    run "exec" {
      path = "echo"
      args = [var.greeting]
    }
  }
}
"#;
    let encoded = base64::engine::general_purpose::STANDARD.encode(text);
    let body = json!({
        "name": "hello", "config_base64": encoded, "vars": {"greeting": "hi"}, "public": true
    });
    let set = api.post("/api/v1/teams/main/pipelines", body).await.data();
    assert_eq!(set["pipeline"]["config"], text);
    assert_eq!(set["pipeline"]["vars"], json!({"greeting": "hi"}));
    assert_eq!(set["pipeline"]["public"], true);

    // Without the variable: its diagnostic names the file given.
    let body = json!({"name": "hello", "config": text, "file_name": "ci/hello.hcl"});
    let answer = api.post("/api/v1/teams/main/pipelines", body).await;
    answer.error(StatusCode::UNPROCESSABLE_ENTITY, "invalid_pipeline");
    assert_eq!(answer.json()["error"]["details"][0]["file"], "ci/hello.hcl");

    for (body, expected) in [
        (json!({"config": text}), "needs a \"name\""),
        (json!({"name": "x"}), "needs its file"),
        (
            json!({"name": "x", "config": text, "config_base64": encoded}),
            "not both",
        ),
        (
            json!({"name": "x", "config_base64": "%%%"}),
            "not valid base64",
        ),
        (json!({"name": "x", "config_base64": "/w=="}), "UTF-8"),
        (
            json!({"name": "x", "config": text, "vars": [1]}),
            "JSON object",
        ),
        (
            json!({"name": "Bad Name", "config": text}),
            "invalid pipeline name",
        ),
    ] {
        let message = api
            .post("/api/v1/teams/main/pipelines", body.clone())
            .await
            .error(StatusCode::BAD_REQUEST, "invalid_input");
        assert!(message.contains(expected), "{body}: {message}");
    }
    api.post(
        "/api/v1/teams/nobody/pipelines",
        json!({"name": "x", "config": text}),
    )
    .await
    .error(StatusCode::NOT_FOUND, "not_found");
}

#[tokio::test]
async fn an_invalid_pipeline_is_422_with_located_diagnostics() {
    let api = TestApi::new().await;
    let text = "job \"a\" {\n  get \"cron\" \"missing\" {}\n  bogus = 1\n}\n";
    let answer = api
        .post(
            "/api/v1/teams/main/pipelines",
            json!({"name": "demo", "config": text}),
        )
        .await;
    let message = answer.error(StatusCode::UNPROCESSABLE_ENTITY, "invalid_pipeline");
    assert!(
        message.starts_with("demo.hcl is not a valid pipeline: "),
        "{message}"
    );
    let details = answer.json()["error"]["details"].clone();
    let details = details.as_array().expect("details");
    assert!(!details.is_empty());
    for diagnostic in details {
        assert_eq!(diagnostic["file"], "demo.hcl");
        assert!(diagnostic["message"].is_string());
        assert!(["error", "warning"].contains(&diagnostic["severity"].as_str().unwrap_or("")));
    }
    let bogus = details
        .iter()
        .find(|d| d["message"].as_str().is_some_and(|m| m.contains("bogus")))
        .unwrap_or_else(|| panic!("no diagnostic about bogus: {details:?}"));
    assert_eq!(bogus["line"], 3);
    assert_eq!(bogus["column"], 3);
    // Nothing was stored.
    api.get("/api/v1/teams/main/pipelines/demo")
        .await
        .error(StatusCode::NOT_FOUND, "not_found");
}

#[tokio::test]
async fn warnings_of_a_valid_pipeline_are_returned() {
    let api = TestApi::new().await;
    let text = "resource \"cron\" \"tick\" { check_interval = \"@every 1m\" }\njob \"a\" {\n  \
                get \"cron\" \"tick\" { secrets = { vault = \"x\" } }\n}\n";
    let set = api
        .post(
            "/api/v1/teams/main/pipelines",
            json!({"name": "w", "config": text}),
        )
        .await
        .data();
    let warnings = set["warnings"].as_array().expect("warnings");
    assert_eq!(warnings.len(), 1, "{warnings:?}");
    assert_eq!(warnings[0]["severity"], "warning");
    assert_eq!(warnings[0]["line"], 3);
    assert_eq!(warnings[0]["file"], "w.hcl");
}

#[tokio::test]
async fn put_changes_vars_or_the_public_flag() {
    let api = TestApi::with_pipeline().await;
    let path = "/api/v1/teams/main/pipelines/demo";
    let answer = api
        .call(Method::PUT, path, Some(json!({"public": true})))
        .await;
    let set = answer.data();
    assert_eq!(set["pipeline"]["public"], true);
    assert_eq!(set["jobs"]["updated"], json!([]));
    assert_eq!(set["pipeline"]["config"], PIPELINE);

    let smaller = "job \"build\" {}\n";
    let set = api
        .call(
            Method::PUT,
            path,
            Some(json!({"config": smaller, "name": "demo"})),
        )
        .await
        .data();
    assert_eq!(set["jobs"]["removed"], json!(["deploy"]));
    assert_eq!(set["jobs"]["updated"], json!(["build"]));
    assert_eq!(set["pipeline"]["public"], true);

    api.call(
        Method::PUT,
        "/api/v1/teams/main/pipelines/nope",
        Some(json!({"public": true})),
    )
    .await
    .error(StatusCode::NOT_FOUND, "not_found");
    api.call(Method::PUT, path, Some(json!({"config": "job {"})))
        .await
        .error(StatusCode::UNPROCESSABLE_ENTITY, "invalid_pipeline");
}

#[tokio::test]
async fn a_renamed_pipeline_keeps_its_builds_and_secrets() {
    let api = TestApi::with_pipeline().await;
    let old = "/api/v1/teams/main/pipelines/demo";
    api.pending_build(api.job_id("build").await).await;
    let secret = api
        .post(
            &format!("{old}/secrets"),
            json!({"name": "TOKEN", "value": "pipeline-token"}),
        )
        .await;
    assert_eq!(secret.status, StatusCode::CREATED, "{}", secret.text);
    api.post(
        &format!("{old}/secrets"),
        json!({"name": "REGION", "value": "eu", "kind": "plain"}),
    )
    .await;

    let renamed = api
        .call(
            Method::PUT,
            old,
            Some(json!({"name": "demo-2", "public": true})),
        )
        .await;
    assert_eq!(renamed.status, StatusCode::OK, "{}", renamed.text);
    let renamed = renamed.data();
    assert_eq!(renamed["pipeline"]["name"], "demo-2");
    assert_eq!(renamed["pipeline"]["public"], true);
    api.get(old).await.error(StatusCode::NOT_FOUND, "not_found");
    let new = "/api/v1/teams/main/pipelines/demo-2";
    let builds = api.get(&format!("{new}/jobs/build/builds")).await.data();
    assert_eq!(builds[0]["number"], "1");
    assert_eq!(builds[0]["pipeline"], "demo-2");
    // The secret was sealed again to the new name: it opens under it.
    let token = api
        .server
        .secrets()
        .lookup("main", "demo-2", "TOKEN")
        .await
        .expect("lookup")
        .expect("the entry");
    assert_eq!(token.value.expose(), "pipeline-token");
    assert_eq!(
        api.get(&format!("{new}/secrets")).await.data(),
        json!([
            {"name": "REGION", "kind": "plain", "value": "eu"},
            {"name": "TOKEN", "kind": "secret"},
        ])
    );

    // A new file and a new name at once: both, or (file invalid) neither.
    api.call(
        Method::PUT,
        new,
        Some(json!({"name": "demo-3", "config": "job {"})),
    )
    .await
    .error(StatusCode::UNPROCESSABLE_ENTITY, "invalid_pipeline");
    assert_eq!(api.get(new).await.data()["name"], "demo-2");
    let both = api
        .call(
            Method::PUT,
            new,
            Some(json!({"name": "demo-3", "config": "job \"build\" {}\n"})),
        )
        .await
        .data();
    assert_eq!(both["pipeline"]["name"], "demo-3");
    assert_eq!(both["jobs"]["removed"], json!(["deploy"]));
    let new = "/api/v1/teams/main/pipelines/demo-3";

    // A taken name is a conflict before anything changes; an invalid one is a 400.
    api.post(
        "/api/v1/teams/main/pipelines",
        json!({"name": "other", "config": "job \"x\" {}\n"}),
    )
    .await;
    let taken = api
        .call(
            Method::PUT,
            new,
            Some(json!({"name": "other", "config": PIPELINE})),
        )
        .await
        .error(StatusCode::CONFLICT, "conflict");
    assert!(
        taken.contains("already has a pipeline \"other\""),
        "{taken}"
    );
    assert_eq!(api.get(new).await.data()["config"], "job \"build\" {}\n");
    let invalid = api
        .call(
            Method::PUT,
            new,
            Some(json!({"name": "Not Valid", "config": PIPELINE})),
        )
        .await
        .error(StatusCode::BAD_REQUEST, "invalid_input");
    assert!(invalid.contains("invalid pipeline name"), "{invalid}");
    assert_eq!(api.get(new).await.data()["config"], "job \"build\" {}\n");
}

#[tokio::test]
async fn pipelines_are_paused_exposed_and_deleted() {
    let api = TestApi::with_pipeline().await;
    let base = "/api/v1/teams/main/pipelines/demo";
    let paused = api.post(&format!("{base}/pause"), json!({})).await.data();
    assert_eq!(paused["paused"], true);
    assert!(
        paused["jobs"]
            .as_array()
            .expect("jobs")
            .iter()
            .all(|j| j["paused"] == true)
    );
    let unpaused = api.post(&format!("{base}/unpause"), json!({})).await.data();
    assert_eq!(unpaused["paused"], false);
    assert_eq!(
        api.post(&format!("{base}/expose"), json!({})).await.data()["public"],
        true
    );
    assert_eq!(
        api.post(&format!("{base}/hide"), json!({})).await.data()["public"],
        false
    );

    let deleted = api.call(Method::DELETE, base, None).await.data();
    assert_eq!(deleted, json!({"deleted": "demo"}));
    let message = api
        .get(base)
        .await
        .error(StatusCode::NOT_FOUND, "not_found");
    assert_eq!(message, "team \"main\" has no pipeline \"demo\"");
    api.post(&format!("{base}/pause"), json!({}))
        .await
        .error(StatusCode::NOT_FOUND, "not_found");
}

#[tokio::test]
async fn jobs_are_listed_with_their_settings_and_latest_build() {
    let api = TestApi::with_pipeline().await;
    let build = api.started_build(api.job_id("build").await).await;
    let jobs = api
        .get("/api/v1/teams/main/pipelines/demo/jobs")
        .await
        .data();
    assert_eq!(jobs.as_array().map(Vec::len), Some(2));
    let first = &jobs[0];
    assert_eq!(first["name"], "build");
    assert_eq!(first["position"], 0);
    assert_eq!(
        first["gets"],
        json!([{"resource": "cron.tick", "trigger": true, "passed": []}])
    );
    assert_eq!(first["latest_build"]["number"], "1");
    assert_eq!(first["latest_build"]["status"], "started");
    assert_eq!(first["latest_build"]["id"], build.id.0);
    let deploy = api
        .get("/api/v1/teams/main/pipelines/demo/jobs/deploy")
        .await
        .data();
    assert_eq!(deploy["latest_build"], Value::Null);
    assert_eq!(deploy["gets"][0]["passed"], json!(["build"]));
    assert_eq!(
        deploy["inputs"],
        json!([{
            "name": "environment", "type": "string", "description": null,
            "default": "staging", "options": ["staging", "production"], "multiple": false
        }])
    );
    let message = api
        .get("/api/v1/teams/main/pipelines/demo/jobs/nope")
        .await
        .error(StatusCode::NOT_FOUND, "not_found");
    assert_eq!(message, "pipeline \"demo\" has no job \"nope\"");
}

#[tokio::test]
async fn jobs_are_paused_and_unpaused() {
    let api = TestApi::with_pipeline().await;
    let base = "/api/v1/teams/main/pipelines/demo/jobs/deploy";
    assert_eq!(
        api.post(&format!("{base}/pause"), json!({})).await.data()["paused"],
        true
    );
    let job = api.get(base).await.data();
    assert_eq!(job["paused"], true);
    let pipeline = api.get("/api/v1/teams/main/pipelines/demo").await.data();
    assert_eq!(pipeline["jobs"][0]["paused"], false);
    assert_eq!(pipeline["jobs"][1]["paused"], true);
    assert_eq!(
        api.post(&format!("{base}/unpause"), json!({})).await.data()["paused"],
        false
    );
}

#[tokio::test]
async fn trigger_input_values_of_the_wrong_type_are_refused_before_the_service() {
    let api = TestApi::with_pipeline().await;
    let message = api
        .post(
            "/api/v1/teams/main/pipelines/demo/jobs/deploy/trigger",
            json!({"input_values": {"environment": ["staging"]}}),
        )
        .await
        .error(StatusCode::BAD_REQUEST, "invalid_input");
    assert!(message.contains("\"environment\" is an array"), "{message}");
}

#[tokio::test]
async fn short_lists_come_in_pages_after_a_name() {
    let api = TestApi::with_pipeline().await;
    for name in ["zeta", "alpha", "beta"] {
        let created = api.post("/api/v1/teams", json!({ "name": name })).await;
        assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    }
    let first = api.get("/api/v1/teams?limit=2").await.json();
    let names = |page: &Value| -> Vec<String> {
        page["data"]
            .as_array()
            .expect("a list")
            .iter()
            .map(|item| item["name"].as_str().expect("a name").to_owned())
            .collect()
    };
    assert_eq!(names(&first), ["alpha", "beta"]);
    assert_eq!(
        first["meta"],
        json!({"has_more": true, "next_after": "beta"})
    );
    let rest = api.get("/api/v1/teams?limit=2&after=beta").await.json();
    assert_eq!(names(&rest), ["main", "zeta"]);
    assert_eq!(rest["meta"], json!({"has_more": false, "next_after": null}));
    // A name that is not there still places the page.
    let after_gone = api.get("/api/v1/teams?after=gamma").await.json();
    assert_eq!(names(&after_gone), ["main", "zeta"]);

    // Jobs keep the file's order; a page after a job that is gone cannot be placed.
    let jobs = "/api/v1/teams/main/pipelines/demo/jobs";
    let page = api.get(&format!("{jobs}?limit=1")).await.json();
    assert_eq!(names(&page), ["build"]);
    assert_eq!(page["meta"]["next_after"], "build");
    let page = api.get(&format!("{jobs}?limit=1&after=build")).await.json();
    assert_eq!(names(&page), ["deploy"]);
    assert_eq!(page["meta"]["has_more"], false);
    let message = api
        .get(&format!("{jobs}?after=gone"))
        .await
        .error(StatusCode::BAD_REQUEST, "invalid_input");
    assert!(message.contains("list again from the start"), "{message}");
    api.get("/api/v1/teams?limit=0")
        .await
        .error(StatusCode::BAD_REQUEST, "invalid_input");
    api.get("/api/v1/teams?page=2")
        .await
        .error(StatusCode::BAD_REQUEST, "invalid_input");
    // Resources are named `type.name`.
    let resources = api
        .get("/api/v1/teams/main/pipelines/demo/resources?limit=1")
        .await
        .json();
    assert_eq!(resources["meta"]["has_more"], false, "{resources:#}");
}

#[tokio::test]
async fn the_audit_log_records_builds_resources_and_visibility_over_the_routes() {
    let api = TestApi::new().await;
    let body = json!({"name": "demo", "config": PIPELINE});
    let created = api.post("/api/v1/teams/main/pipelines", body).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    let base = "/api/v1/teams/main/pipelines/demo";
    // Made by the server on its own: not recorded.
    let build = api.pending_build(api.job_id("build").await).await;
    assert_eq!(build.number.to_string(), "1");
    for path in [
        format!("{base}/expose"),
        format!("{base}/hide"),
        format!("{base}/resources/cron.tick/check"),
        format!("{base}/jobs/build/builds/1/cancel"),
    ] {
        let done = api.post(&path, json!({})).await;
        assert!(done.status.is_success(), "{path}: {}", done.text);
    }
    let log = api.get("/api/v1/teams/main/audit").await.json();
    let seen: Vec<(&str, &str)> = log["data"]
        .as_array()
        .expect("entries")
        .iter()
        .map(|e| {
            (
                e["action"].as_str().unwrap_or_default(),
                e["target_name"].as_str().unwrap_or_default(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            ("job.cancelled", "demo/build"),
            ("resource.check_triggered", "demo/cron.tick"),
            ("pipeline.hidden", "demo"),
            ("pipeline.exposed", "demo"),
            ("pipeline.created", "demo"),
        ],
        "{log:#}"
    );
    assert_eq!(log["data"][0]["details"]["build"], "1");
    assert_eq!(log["data"][0]["actor"], "root");
}

#[tokio::test]
async fn the_audit_log_says_who_did_what_newest_first_a_page_at_a_time() {
    let api = TestApi::new().await;
    let body = json!({"name": "demo", "config": PIPELINE});
    let created = api.post("/api/v1/teams/main/pipelines", body).await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    let paused = api
        .post("/api/v1/teams/main/pipelines/demo/pause", json!({}))
        .await;
    assert_eq!(paused.status, StatusCode::OK, "{}", paused.text);
    let secret = api
        .post(
            "/api/v1/teams/main/secrets",
            json!({"name": "TOKEN", "value": "s3cret-value", "kind": "plain"}),
        )
        .await;
    assert!(secret.status.is_success(), "{}", secret.text);
    api.user("bob", None).await;
    for role in ["write", "maintain"] {
        let set = api
            .call(
                Method::PUT,
                "/api/v1/teams/main/members/bob",
                Some(json!({ "role": role })),
            )
            .await;
        assert!(set.status.is_success(), "{}", set.text);
    }
    let removed = api
        .call(Method::DELETE, "/api/v1/teams/main/members/bob", None)
        .await;
    assert!(removed.status.is_success(), "{}", removed.text);
    let regenerated = api.post("/api/v1/teams/main/worker-token", json!({})).await;
    assert!(regenerated.status.is_success(), "{}", regenerated.text);

    let log = api.get("/api/v1/teams/main/audit").await;
    assert_eq!(log.status, StatusCode::OK, "{}", log.text);
    let body = log.json();
    let actions: Vec<&str> = body["data"]
        .as_array()
        .expect("entries")
        .iter()
        .map(|e| e["action"].as_str().unwrap_or_default())
        .collect();
    assert_eq!(
        actions,
        [
            "worker_token.regenerated",
            "member.removed",
            "member.role_changed",
            "member.added",
            "secret.created",
            "pipeline.paused",
            "pipeline.created"
        ]
    );
    assert_eq!(
        body["data"][2]["details"],
        json!({"from": "write", "to": "maintain"})
    );
    assert_eq!(body["data"][1]["target_name"], "bob");
    assert!(
        body["data"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["actor"] == "root")
    );
    assert!(!log.text.contains("s3cret-value"), "{}", log.text);
    assert_eq!(body["meta"]["has_more"], false);

    let page = api.get("/api/v1/teams/main/audit?limit=1").await.json();
    assert_eq!(page["data"].as_array().map(Vec::len), Some(1));
    assert_eq!(page["meta"]["has_more"], true);
    let oldest = page["meta"]["oldest_id"].as_i64().expect("an id");
    let next = api
        .get(&format!("/api/v1/teams/main/audit?limit=5&before={oldest}"))
        .await
        .json();
    assert_eq!(next["data"][0]["action"], "member.removed");
    let filtered = api
        .get("/api/v1/teams/main/audit?action=pipeline.paused&pipeline=demo&user=root")
        .await
        .json();
    assert_eq!(filtered["data"].as_array().map(Vec::len), Some(1));
    let none = api
        .get("/api/v1/teams/main/audit?exclude_user=root")
        .await
        .json();
    assert_eq!(none["data"], json!([]));
    assert!(none.get("meta").is_none(), "{none}");
    let bad = api.get("/api/v1/teams/main/audit?since=yesterday").await;
    assert_eq!(bad.status, StatusCode::BAD_REQUEST, "{}", bad.text);
}
