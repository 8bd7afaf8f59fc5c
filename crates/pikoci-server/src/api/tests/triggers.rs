//! Trigger streams, the pipeline graph and the short pending-reason route.

use axum::http::{StatusCode, header};
use serde_json::json;

use super::TestApi;

const STREAM: &str = "/api/v1/teams/main/triggers/deploy";

#[tokio::test]
async fn trigger_events_are_fired_and_paged_oldest_first() {
    let api = TestApi::new().await;
    for n in 1..=3 {
        let answer = api
            .post(STREAM, json!({"version": {"release": format!("v{n}")}}))
            .await;
        assert_eq!(answer.status, StatusCode::CREATED, "{}", answer.text);
        let event = answer.data();
        assert_eq!(event["trigger"], "deploy");
        // No resource of the team reads it: the caller is told.
        assert_eq!(event["readers"], 0);
        assert_eq!(event["version"], json!({"release": format!("v{n}")}));
    }
    // An empty body fires an event with no values.
    assert_eq!(
        api.post(STREAM, json!({})).await.status,
        StatusCode::CREATED
    );

    let page = api.get(&format!("{STREAM}?limit=2")).await.json();
    let releases: Vec<_> = page["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["version"]["release"].clone())
        .collect();
    assert_eq!(releases, [json!("v1"), json!("v2")]);
    assert_eq!(page["meta"]["has_more"], true);
    let after = page["meta"]["next_after"].as_i64().unwrap();
    let rest = api.get(&format!("{STREAM}?after={after}")).await.json();
    assert_eq!(rest["data"].as_array().map(Vec::len), Some(2));
    assert_eq!(rest["data"][0]["version"]["release"], "v3");
    assert_eq!(rest["meta"], json!({"has_more": false, "next_after": null}));
    // Another stream is another stream.
    let other = api.get("/api/v1/teams/main/triggers/other").await.data();
    assert_eq!(other, json!([]));
}

#[tokio::test]
async fn a_trigger_version_maps_names_to_strings() {
    let api = TestApi::new().await;
    let message = api
        .post(STREAM, json!({"version": {"build": 3}}))
        .await
        .error(StatusCode::BAD_REQUEST, "invalid_input");
    assert!(message.contains("\"build\" is not a string"), "{message}");
    for (version, expected) in [
        (json!({"": "x"}), "an empty name"),
        (json!({"trigger_build": "7"}), "reserved"),
        (json!({"ref": "a\u{0}b"}), "NUL"),
    ] {
        let message = api
            .post(STREAM, json!({ "version": version }))
            .await
            .error(StatusCode::BAD_REQUEST, "invalid_input");
        assert!(message.contains(expected), "{message}");
    }
    let message = api
        .post("/api/v1/teams/main/triggers/Not.A.Name", json!({}))
        .await
        .error(StatusCode::BAD_REQUEST, "invalid_input");
    assert!(message.contains("cannot name a trigger"), "{message}");
    api.get("/api/v1/teams/main/triggers/Not.A.Name")
        .await
        .error(StatusCode::BAD_REQUEST, "invalid_input");
    api.post("/api/v1/teams/nope/triggers/deploy", json!({}))
        .await
        .error(StatusCode::NOT_FOUND, "not_found");
}

#[tokio::test]
async fn the_graph_shows_resources_jobs_and_what_feeds_what() {
    let api = TestApi::with_pipeline().await;
    let answer = api.get("/api/v1/teams/main/pipelines/demo/image.dot").await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    assert_eq!(
        answer.response_headers[header::CONTENT_TYPE],
        "text/vnd.graphviz; charset=utf-8"
    );
    let dot = answer.text;
    assert!(dot.starts_with("digraph \"demo\" {"), "{dot}");
    for line in [
        "\"resource cron.tick\" [shape=ellipse, label=\"cron.tick\"];",
        "\"job build\" [shape=box",
        // build gets the resource and triggers on it; deploy takes what passed build.
        "\"resource cron.tick\" -> \"job build\" [style=solid];",
        "\"job build\" -> \"job deploy\" [style=dashed, label=\"cron.tick\"];",
    ] {
        assert!(dot.contains(line), "{line} in\n{dot}");
    }
    assert!(dot.trim_end().ends_with('}'), "{dot}");
}

#[tokio::test]
async fn the_pending_reason_has_its_own_route() {
    let api = TestApi::with_pipeline().await;
    let job = api.job_id("build").await;
    api.pending_build(job).await;
    let reason = api
        .get("/api/v1/teams/main/pipelines/demo/jobs/build/builds/1/pending_reason")
        .await
        .data();
    assert_eq!(reason["status"], "pending");
    // Not tried by a dispatcher yet (none runs in these tests): no reason.
    assert_eq!(reason["pending_reason"], json!(null));
    api.get("/api/v1/teams/main/pipelines/demo/jobs/build/builds/9/pending_reason")
        .await
        .error(StatusCode::NOT_FOUND, "not_found");
}
