//! Resources, versions, pins and webhook tokens.

use axum::http::{Method, StatusCode};
use pikoci_core::store::{NewVersion, ResourceVersion, StoredResource};
use serde_json::{Value, json};

use super::{TestApi, at};

const RESOURCE: &str = "/api/v1/teams/main/pipelines/demo/resources/cron.tick";

async fn resource(api: &TestApi) -> StoredResource {
    let team = api.store().team("main").await.expect("team");
    let pipeline = api.store().pipeline(team.id, "demo").await.expect("demo");
    api.store()
        .resources(pipeline.id)
        .await
        .expect("resources")
        .remove(0)
}

/// Stores versions `{"n": "0"}` … `{"n": "<count - 1>"}`, oldest first.
async fn versions(api: &TestApi, count: u32) -> Vec<ResourceVersion> {
    let resource = resource(api).await;
    let new: Vec<NewVersion> = (0..count)
        .map(|n| NewVersion {
            version: json!({"n": n.to_string()}),
            metadata: json!([{"name": "n", "value": n}]),
        })
        .collect();
    api.store()
        .create_versions(resource.id, &new, at(5))
        .await
        .expect("versions")
}

#[tokio::test]
async fn resources_are_listed_and_shown_with_their_webhook_token() {
    let api = TestApi::with_pipeline().await;
    let list = api
        .get("/api/v1/teams/main/pipelines/demo/resources")
        .await
        .data();
    assert_eq!(list.as_array().map(Vec::len), Some(1));
    let listed = &list[0];
    assert_eq!(listed["type"], "cron");
    assert_eq!(listed["name"], "tick");
    assert_eq!(listed["canonical"], "cron.tick");
    assert_eq!(listed["check_interval"], "@every 1m");
    assert_eq!(listed["pinned_version_id"], Value::Null);
    assert_eq!(listed["last_check"], Value::Null);
    assert!(
        listed["next_check_at"].is_string(),
        "a new resource is due for a check"
    );
    assert!(listed.get("webhook_token").is_none());

    let shown = api.get(RESOURCE).await.data();
    let stored = resource(&api).await;
    assert_eq!(shown["webhook_token"], stored.webhook_token);
    assert_eq!(shown["id"], stored.id.0);

    for (path, status, code) in [
        ("cron.nope", StatusCode::NOT_FOUND, "not_found"),
        ("git.tick", StatusCode::NOT_FOUND, "not_found"),
        ("crontick", StatusCode::BAD_REQUEST, "invalid_input"),
    ] {
        api.get(&format!(
            "/api/v1/teams/main/pipelines/demo/resources/{path}"
        ))
        .await
        .error(status, code);
    }
}

#[tokio::test]
async fn versions_are_paged_newest_first() {
    let api = TestApi::with_pipeline().await;
    let stored = versions(&api, 5).await;
    let page = api
        .get(&format!("{RESOURCE}/versions?limit=2"))
        .await
        .json();
    let data = page["data"].as_array().expect("versions");
    assert_eq!(data.len(), 2);
    assert_eq!(data[0]["id"], stored[4].id.0);
    assert_eq!(data[0]["version"], json!({"n": "4"}));
    assert_eq!(data[0]["metadata"], json!([{"name": "n", "value": 4}]));
    assert_eq!(data[0]["resource"], "cron.tick");
    assert_eq!(data[0]["pinned"], false);
    assert_eq!(data[0]["created_at"], "2026-01-01T00:00:05.000Z");
    assert_eq!(page["meta"]["has_more"], true);
    let before = page["meta"]["next_before"].as_i64().expect("next_before");
    let rest = api
        .get(&format!("{RESOURCE}/versions?before={before}"))
        .await
        .json();
    let ids: Vec<Value> = rest["data"]
        .as_array()
        .expect("versions")
        .iter()
        .map(|v| v["id"].clone())
        .collect();
    assert_eq!(ids, [stored[2].id.0, stored[1].id.0, stored[0].id.0]);
    assert_eq!(
        rest["meta"],
        json!({"has_more": false, "next_before": null})
    );
}

#[tokio::test]
async fn a_resource_is_pinned_and_unpinned() {
    let api = TestApi::with_pipeline().await;
    let stored = versions(&api, 2).await;
    let pinned = api
        .post(
            &format!("{RESOURCE}/pin"),
            json!({"version_id": stored[0].id.0, "comment": "  the next one breaks the build \n"}),
        )
        .await
        .data();
    assert_eq!(pinned["pinned_version_id"], stored[0].id.0);
    assert_eq!(pinned["pin_comment"], "the next one breaks the build");
    assert_eq!(pinned["pinned_by"], "root");
    assert!(pinned["pinned_at"].is_string(), "{pinned}");
    let listed = api.get(&format!("{RESOURCE}/versions")).await.data();
    assert_eq!(listed[1]["pinned"], true);
    assert_eq!(listed[0]["pinned"], false);

    let message = api
        .post(&format!("{RESOURCE}/pin"), json!({"version_id": 999}))
        .await
        .error(StatusCode::NOT_FOUND, "not_found");
    assert!(message.contains("has no version 999"), "{message}");
    api.post(&format!("{RESOURCE}/pin"), json!({}))
        .await
        .error(StatusCode::BAD_REQUEST, "invalid_input");
    let message = api
        .post(
            &format!("{RESOURCE}/pin"),
            json!({"version_id": stored[1].id.0, "comment": "x".repeat(1001)}),
        )
        .await
        .error(StatusCode::BAD_REQUEST, "invalid_input");
    assert!(
        message.contains("\"comment\" has 1001 characters"),
        "{message}"
    );
    assert_eq!(
        resource(&api).await.pinned_version(),
        Some(stored[0].id),
        "a refused pin changes nothing"
    );

    let unpinned = api
        .post(&format!("{RESOURCE}/unpin"), json!({"comment": "fixed"}))
        .await
        .data();
    assert_eq!(unpinned["pinned_version_id"], Value::Null);
    assert_eq!(unpinned["pin_comment"], Value::Null);
    assert_eq!(unpinned["pinned_by"], Value::Null);
    // Unpinning takes no body too, and an unpinned resource stays unpinned.
    let again = api
        .call(Method::POST, &format!("{RESOURCE}/unpin"), None)
        .await
        .data();
    assert_eq!(again["pinned_version_id"], Value::Null);
    let audit = api
        .get("/api/v1/teams/main/audit?action=resource.unpinned")
        .await
        .data();
    let comments: Vec<&Value> = audit
        .as_array()
        .expect("entries")
        .iter()
        .map(|entry| &entry["details"]["comment"])
        .collect();
    assert!(comments.contains(&&json!("fixed")), "{audit}");
}

#[tokio::test]
async fn a_version_of_another_resource_cannot_be_pinned() {
    let api = TestApi::with_pipeline().await;
    let text = "resource \"cron\" \"other\" { check_interval = \"@every 1m\" }\njob \"a\" {\n  \
                get \"cron\" \"other\" {}\n}\n";
    let set = api
        .server
        .set_pipeline("main", "second", "second.hcl", text, Value::Null)
        .await
        .expect("second pipeline");
    let other = api
        .store()
        .resources(set.outcome.pipeline.id)
        .await
        .expect("resources")
        .remove(0);
    let foreign = api
        .store()
        .create_versions(
            other.id,
            &[NewVersion {
                version: json!({"n": "x"}),
                metadata: Value::Null,
            }],
            at(5),
        )
        .await
        .expect("version")
        .remove(0);
    api.post(
        &format!("{RESOURCE}/pin"),
        json!({"version_id": foreign.id.0}),
    )
    .await
    .error(StatusCode::BAD_REQUEST, "invalid_input");
}

#[tokio::test]
async fn a_webhook_token_is_regenerated() {
    let api = TestApi::with_pipeline().await;
    let old = resource(&api).await.webhook_token;
    let answer = api
        .post(&format!("{RESOURCE}/webhook_token"), json!({}))
        .await
        .data();
    let token = answer["token"].as_str().expect("token").to_owned();
    assert_ne!(token, old);
    assert_eq!(resource(&api).await.webhook_token, token);
    assert_eq!(api.get(RESOURCE).await.data()["webhook_token"], token);
}

#[tokio::test]
async fn a_version_added_by_hand_triggers_what_a_checked_one_would() {
    let api = TestApi::with_pipeline().await;
    let versions = format!("{RESOURCE}/versions");
    let added = api
        .post(&versions, json!({"version": {"ref": "4f1c2a9"}}))
        .await;
    assert_eq!(added.status, StatusCode::CREATED, "{}", added.text);
    let added = added.data();
    assert_eq!(added["version"], json!({"ref": "4f1c2a9"}));
    // Job `build` gets the resource with `trigger = true`: it has a build of that version.
    let builds = api
        .get("/api/v1/teams/main/pipelines/demo/jobs/build/builds")
        .await
        .data();
    assert_eq!(builds.as_array().map(Vec::len), Some(1), "{builds:#}");
    // The same version again is no news, and triggers nothing.
    let again = api
        .post(&versions, json!({"version": {"ref": "4f1c2a9"}}))
        .await;
    assert_eq!(again.status, StatusCode::OK, "{}", again.text);
    assert_eq!(again.data()["id"], added["id"]);
    let builds = api
        .get("/api/v1/teams/main/pipelines/demo/jobs/build/builds")
        .await
        .data();
    assert_eq!(builds.as_array().map(Vec::len), Some(1));
    for (body, problem) in [
        (json!({"version": {}}), "empty"),
        (json!({"version": {"ref": 3}}), "not a string"),
        (json!({"version": {"": "x"}}), "empty name"),
        (
            json!({"version": {"ref": "x".repeat(5000)}}),
            "over 4096 bytes",
        ),
        (
            json!({"version": (0..65).map(|n| (n.to_string(), json!("x"))).collect::<serde_json::Map<_, _>>()}),
            "at most 64",
        ),
    ] {
        let message = api
            .post(&versions, body)
            .await
            .error(StatusCode::BAD_REQUEST, "invalid_input");
        assert!(message.contains(problem), "{message}");
    }
}

#[tokio::test]
async fn an_older_version_is_built_again_by_the_jobs_it_triggers() {
    let api = TestApi::with_pipeline().await;
    let stored = versions(&api, 2).await;
    let old = stored[0].id.0;
    let built = api
        .post(&format!("{RESOURCE}/versions/{old}/trigger"), json!({}))
        .await;
    assert_eq!(built.status, StatusCode::CREATED, "{}", built.text);
    let built = built.data();
    // Job `build` gets cron.tick with `trigger = true`; `deploy` only with `passed`.
    assert_eq!(built.as_array().map(Vec::len), Some(1), "{built:#}");
    assert_eq!(built[0]["job"], "build");
    let detail = api
        .get("/api/v1/teams/main/pipelines/demo/jobs/build/builds/1")
        .await
        .data();
    assert_eq!(detail["trigger"]["version_id"], old, "{detail:#}");

    // Not the resource's version, a pin to another one, a paused job: refused, with why.
    api.post(&format!("{RESOURCE}/versions/999999/trigger"), json!({}))
        .await
        .error(StatusCode::NOT_FOUND, "not_found");
    api.post(
        &format!("{RESOURCE}/pin"),
        json!({"version_id": stored[1].id.0}),
    )
    .await
    .data();
    let pinned = api
        .post(&format!("{RESOURCE}/versions/{old}/trigger"), json!({}))
        .await
        .error(StatusCode::CONFLICT, "conflict");
    assert!(pinned.contains("is pinned to version"), "{pinned}");
    api.post(&format!("{RESOURCE}/unpin"), json!({}))
        .await
        .data();
    api.post(
        "/api/v1/teams/main/pipelines/demo/jobs/build/pause",
        json!({}),
    )
    .await
    .data();
    let paused = api
        .post(&format!("{RESOURCE}/versions/{old}/trigger"), json!({}))
        .await
        .error(StatusCode::CONFLICT, "conflict");
    assert!(paused.contains("job \"build\" is paused"), "{paused}");
}

#[tokio::test]
async fn the_builds_that_used_a_version_are_listed() {
    let api = TestApi::with_pipeline().await;
    let stored = versions(&api, 2).await;
    let (old, new) = (stored[0].id.0, stored[1].id.0);
    api.post(&format!("{RESOURCE}/versions/{old}/trigger"), json!({}))
        .await
        .data();
    let used = api
        .get(&format!("{RESOURCE}/versions/{old}/builds"))
        .await
        .json();
    assert_eq!(used["data"].as_array().map(Vec::len), Some(1), "{used:#}");
    assert_eq!(used["data"][0]["job"], "build");
    assert_eq!(used["meta"]["has_more"], false);
    let unused = api
        .get(&format!("{RESOURCE}/versions/{new}/builds"))
        .await
        .data();
    assert_eq!(unused, json!([]));
    api.get(&format!("{RESOURCE}/versions/999999/builds"))
        .await
        .error(StatusCode::NOT_FOUND, "not_found");
}
