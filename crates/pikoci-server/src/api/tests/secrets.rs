//! The secret store's routes.

use axum::http::{Method, StatusCode};
use serde_json::json;

use super::TestApi;

const TEAM: &str = "/api/v1/teams/main/secrets";
const PIPELINE: &str = "/api/v1/teams/main/pipelines/demo/secrets";

#[tokio::test]
async fn entries_are_set_listed_without_secret_values_and_deleted() {
    let api = TestApi::with_pipeline().await;
    let created = api
        .post(TEAM, json!({"name": "TOKEN", "value": "team-token-value"}))
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    assert_eq!(created.data(), json!({"name": "TOKEN", "kind": "secret"}));
    let plain = api
        .post(
            TEAM,
            json!({"name": "REGION", "value": "eu-west-1", "kind": "plain"}),
        )
        .await;
    assert_eq!(
        plain.data(),
        json!({"name": "REGION", "kind": "plain", "value": "eu-west-1"})
    );
    let replaced = api
        .post(
            TEAM,
            json!({"name": "TOKEN", "value": "another-value", "kind": "secret"}),
        )
        .await;
    assert_eq!(replaced.status, StatusCode::OK, "{}", replaced.text);
    let listed = api.get(TEAM).await;
    assert!(!listed.text.contains("team-token-value"), "{}", listed.text);
    assert!(!listed.text.contains("another-value"), "{}", listed.text);
    assert_eq!(
        listed.data(),
        json!([
            {"name": "REGION", "kind": "plain", "value": "eu-west-1"},
            {"name": "TOKEN", "kind": "secret"},
        ])
    );
    // A pipeline's entries are its own; the team's stay apart.
    let own = api
        .post(
            PIPELINE,
            json!({"name": "TOKEN", "value": "pipeline-value"}),
        )
        .await;
    assert_eq!(own.status, StatusCode::CREATED, "{}", own.text);
    assert_eq!(
        api.get(PIPELINE).await.data(),
        json!([{"name": "TOKEN", "kind": "secret"}])
    );
    let looked_up = api
        .server
        .secrets()
        .lookup("main", "demo", "TOKEN")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(looked_up.value.expose(), "pipeline-value");

    let deleted = api
        .call(Method::DELETE, &format!("{PIPELINE}/TOKEN"), None)
        .await;
    assert_eq!(deleted.data(), json!({"deleted": "TOKEN"}));
    let again = api
        .call(Method::DELETE, &format!("{PIPELINE}/TOKEN"), None)
        .await;
    let message = again.error(StatusCode::NOT_FOUND, "not_found");
    assert_eq!(message, "there is no secret \"TOKEN\" here");
    api.call(Method::DELETE, &format!("{TEAM}/REGION"), None)
        .await
        .data();
    assert_eq!(
        api.get(TEAM).await.data(),
        json!([{"name": "TOKEN", "kind": "secret"}])
    );
}

#[tokio::test]
async fn a_kind_never_changes_and_bad_requests_say_why() {
    let api = TestApi::with_pipeline().await;
    api.post(TEAM, json!({"name": "TOKEN", "value": "abcdef"}))
        .await
        .data();
    let refused = api
        .post(
            TEAM,
            json!({"name": "TOKEN", "value": "abcdef", "kind": "plain"}),
        )
        .await;
    let message = refused.error(StatusCode::CONFLICT, "conflict");
    assert_eq!(
        message,
        "\"TOKEN\" is a secret entry and cannot become plain: delete it first, then set it again"
    );
    assert!(!refused.text.contains("abcdef"));
    let message = api
        .post(TEAM, json!({"name": "X", "value": "v", "kind": "hidden"}))
        .await
        .error(StatusCode::BAD_REQUEST, "invalid_input");
    assert!(message.starts_with("unknown kind \"hidden\""), "{message}");
    let message = api
        .post(TEAM, json!({"name": "", "value": "v"}))
        .await
        .error(StatusCode::BAD_REQUEST, "invalid_input");
    assert!(message.starts_with("invalid secret name"), "{message}");
    let message = api
        .post(TEAM, json!({"name": "X", "value": "v", "scope": "team"}))
        .await
        .error(StatusCode::BAD_REQUEST, "invalid_input");
    assert!(message.contains("unknown field `scope`"), "{message}");
    let message = api
        .post(
            "/api/v1/teams/main/pipelines/ghost/secrets",
            json!({"name": "X", "value": "v"}),
        )
        .await
        .error(StatusCode::NOT_FOUND, "not_found");
    assert_eq!(message, "team \"main\" has no pipeline \"ghost\"");
    api.get("/api/v1/teams/ghost/secrets")
        .await
        .error(StatusCode::NOT_FOUND, "not_found");
}

#[tokio::test]
async fn without_a_key_secret_entries_are_refused_and_plain_ones_work() {
    let api = TestApi::with_secret_key(None).await;
    let refused = api
        .post(TEAM, json!({"name": "TOKEN", "value": "abcdef"}))
        .await;
    let message = refused.error(StatusCode::NOT_IMPLEMENTED, "unsupported");
    assert!(
        message.starts_with("secret storage is not configured: set PIKOCI_SECRET_KEY"),
        "{message}"
    );
    api.post(
        TEAM,
        json!({"name": "REGION", "value": "eu", "kind": "plain"}),
    )
    .await
    .data();
    assert_eq!(
        api.get(TEAM).await.data(),
        json!([{"name": "REGION", "kind": "plain", "value": "eu"}])
    );
}
