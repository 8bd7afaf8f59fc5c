//! Export and import of the whole state.

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use http_body_util::BodyExt;
use serde_json::json;

use super::{TestApi, read};

/// `GET /admin/export`: the file's bytes.
async fn export(api: &TestApi) -> Vec<u8> {
    let response = api
        .send(
            Request::get("/api/v1/admin/export")
                .body(Body::empty())
                .expect("request"),
        )
        .await;
    assert_eq!(response.status(), StatusCode::OK);
    assert_eq!(
        response.headers()[header::CONTENT_DISPOSITION],
        "attachment; filename=\"pikoci.db\""
    );
    let length: usize = response.headers()[header::CONTENT_LENGTH]
        .to_str()
        .expect("length")
        .parse()
        .expect("a number");
    let bytes = response
        .into_body()
        .collect()
        .await
        .expect("body")
        .to_bytes()
        .to_vec();
    assert_eq!(bytes.len(), length);
    assert!(bytes.starts_with(b"SQLite format 3\0"));
    bytes
}

async fn import(api: &TestApi, query: &str, file: Vec<u8>) -> super::Answer {
    let request = Request::builder()
        .method(Method::POST)
        .uri(format!("/api/v1/admin/import{query}"))
        .header(header::CONTENT_TYPE, "application/octet-stream")
        .body(Body::from(file))
        .expect("request");
    read(api.send(request).await).await
}

#[tokio::test]
async fn an_export_imports_into_a_fresh_server_with_everything_back() {
    let api = TestApi::with_pipeline().await;
    api.pending_build(api.job_id("build").await).await;
    let secret = api
        .post(
            "/api/v1/teams/main/pipelines/demo/secrets",
            json!({"name": "TOKEN", "value": "exported-token"}),
        )
        .await;
    assert_eq!(secret.status, StatusCode::CREATED, "{}", secret.text);
    let file = export(&api).await;

    // A fresh server with the same key: the pipeline, its builds and its secrets are back.
    let mut fresh = TestApi::new().await;
    // A user besides the first is something an import would lose: it must be asked for.
    fresh.user("extra", None).await;
    let message = import(&fresh, "", file.clone())
        .await
        .error(StatusCode::CONFLICT, "conflict");
    assert!(message.contains("1 user besides the first"), "{message}");
    let imported = import(&fresh, "?replace=true", file.clone()).await.data();
    // An import ends every session: the users are the export's now.
    fresh
        .get("/api/v1/profile")
        .await
        .error(StatusCode::UNAUTHORIZED, "unauthenticated");
    fresh.log_in_again().await;
    let tables = imported["tables"].as_array().expect("tables");
    assert_eq!(tables[0], json!({"table": "teams", "rows": 1}));
    assert!(
        tables.contains(&json!({"table": "builds", "rows": 1})),
        "{imported:#}"
    );
    let builds = fresh
        .get("/api/v1/teams/main/pipelines/demo/jobs/build/builds")
        .await
        .data();
    assert_eq!(builds[0]["number"], "1");
    let token = fresh
        .server
        .secrets()
        .lookup("main", "demo", "TOKEN")
        .await
        .expect("lookup")
        .expect("the entry");
    assert_eq!(token.value.expose(), "exported-token");

    // Now it holds a pipeline: replacing it must be asked for.
    let message = import(&fresh, "", file.clone())
        .await
        .error(StatusCode::CONFLICT, "conflict");
    assert!(message.contains("replace=true"), "{message}");
    import(&fresh, "?replace=true", file).await.data();
    fresh.log_in_again().await;
    // What is not an export is refused, and changes nothing.
    let message = import(&fresh, "?replace=true", b"hello".to_vec())
        .await
        .error(StatusCode::BAD_REQUEST, "invalid_input");
    assert!(message.contains("not a PikoCI export"), "{message}");
    fresh.get("/api/v1/teams/main/pipelines/demo").await.data();
}
