//! `GET /api/v1/openapi.json`: the document describes every route the router has, and only
//! those, and it is a well-formed OpenAPI 3.1 document.

use std::collections::BTreeSet;

use axum::http::{Method, StatusCode};
use serde_json::Value;

use super::TestApi;

/// The methods a route may have (HEAD answers wherever GET does, and is not listed).
const METHODS: [Method; 5] = [
    Method::GET,
    Method::POST,
    Method::PUT,
    Method::DELETE,
    Method::PATCH,
];

/// The path patterns of a router, read from its `Debug` output (axum lists them as
/// `RouteId(n): "/path"`), without axum's own nesting helpers.
fn router_paths(router: &axum::Router<crate::Server>) -> BTreeSet<String> {
    let debug = format!("{router:?}");
    // The fallback router's paths (`/`, `/{*rest}`) are axum's catch-alls, not routes.
    let (routes, _) = debug
        .split_once("fallback_router")
        .expect("a Router's Debug output has its fallback router");
    routes
        .split("RouteId(")
        .skip(1)
        .filter_map(|part| {
            let rest = part.split_once("): \"")?.1;
            Some(rest.split_once('"')?.0.to_owned())
        })
        .filter(|path| path.starts_with('/') && !path.contains("__private__"))
        .collect()
}

/// A concrete path for a pattern: every parameter replaced by a value that names nothing.
fn concrete(pattern: &str) -> String {
    pattern
        .split('/')
        .map(|segment| {
            if segment == "{bn}" {
                "1"
            } else if segment.starts_with('{') {
                "nothing"
            } else {
                segment
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

/// The `(method, path)` pairs of the document.
fn documented(document: &Value) -> BTreeSet<(String, String)> {
    let mut operations = BTreeSet::new();
    for (path, item) in document["paths"].as_object().expect("paths") {
        for method in item.as_object().expect("path item").keys() {
            operations.insert((method.to_uppercase(), path.clone()));
        }
    }
    operations
}

#[tokio::test]
async fn the_document_describes_every_route_and_only_them() {
    let api = TestApi::new().await;
    let document = api.get("/api/v1/openapi.json").await.json();
    let documented = documented(&document);

    let (router, _) = super::super::described().split_for_parts();
    let paths = router_paths(&router);
    // Guards the reading of axum's Debug output: were its format to change, no path would be
    // found, and the comparison below would be empty on the router's side.
    assert!(
        paths.len() >= 30,
        "only {} route paths were read from the router's Debug output: {paths:?}",
        paths.len()
    );
    let mut routed = BTreeSet::new();
    for pattern in &paths {
        for method in METHODS {
            let answer = api.call(method.clone(), &concrete(pattern), None).await;
            let refused = answer.status == StatusCode::METHOD_NOT_ALLOWED
                && answer.json()["error"]["code"] == "method_not_allowed";
            if !refused {
                routed.insert((method.to_string(), pattern.clone()));
            }
        }
    }
    let undocumented: Vec<_> = routed.difference(&documented).collect();
    assert!(
        undocumented.is_empty(),
        "routes the OpenAPI document does not describe (add them with `routes!` and a \
         `#[utoipa::path]`): {undocumented:?}"
    );
    let unrouted: Vec<_> = documented.difference(&routed).collect();
    assert!(
        unrouted.is_empty(),
        "operations in the document that the router does not answer: {unrouted:?}"
    );
}

/// Every `$ref` in `value`.
fn refs<'a>(value: &'a Value, found: &mut Vec<&'a str>) {
    match value {
        Value::Object(map) => {
            for (key, value) in map {
                match (key.as_str(), value) {
                    ("$ref", Value::String(target)) => found.push(target),
                    _ => refs(value, found),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|item| refs(item, found)),
        _ => {}
    }
}

#[tokio::test]
async fn the_document_is_openapi_3_1_with_errors_and_no_dangling_reference() {
    let api = TestApi::new().await;
    let answer = api.get("/api/v1/openapi.json").await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(
        answer.response_headers["content-type"], "application/json",
        "{:?}",
        answer.response_headers
    );
    let document = answer.json();
    assert!(
        document["openapi"]
            .as_str()
            .is_some_and(|version| version.starts_with("3.1.")),
        "{}",
        document["openapi"]
    );
    assert_eq!(document["info"]["title"], "PikoCI");
    let mut ids = BTreeSet::new();
    for (path, item) in document["paths"].as_object().expect("paths") {
        for (method, operation) in item.as_object().expect("item") {
            let id = operation["operationId"].as_str().expect("an operationId");
            assert!(ids.insert(id), "operationId {id} is used twice");
            let summary = operation["summary"].as_str().expect("a summary");
            assert!(
                summary.starts_with(char::is_uppercase),
                "{method} {path}: {summary}"
            );
            let responses = operation["responses"].as_object().expect("responses");
            assert!(
                responses.keys().any(|status| status.starts_with('2')),
                "{method} {path} describes no success"
            );
            for status in ["400", "404", "500", "503"] {
                let error = &responses[status]["content"]["application/json"]["schema"]["$ref"];
                assert_eq!(
                    error, "#/components/schemas/Error",
                    "{method} {path} {status}"
                );
            }
            if method != "get" {
                assert!(responses.contains_key("409"), "{method} {path} has no 409");
            }
            assert!(
                operation["tags"].as_array().is_some_and(|t| t.len() == 1),
                "{method} {path} has no tag"
            );
        }
    }
    let schemas = document["components"]["schemas"]
        .as_object()
        .expect("schemas");
    for name in [
        "Error",
        "Build",
        "Pipeline",
        "Job",
        "Resource",
        "Diagnostic",
    ] {
        assert!(schemas.contains_key(name), "no schema {name}");
    }
    let mut found = Vec::new();
    refs(&document, &mut found);
    assert!(!found.is_empty());
    for target in found {
        let name = target
            .strip_prefix("#/components/schemas/")
            .unwrap_or_else(|| panic!("a reference outside the schemas: {target}"));
        assert!(schemas.contains_key(name), "dangling reference {target}");
    }
    // The parameters of a path are all described, in the path.
    let build = &document["paths"]["/api/v1/teams/{tc}/pipelines/{pc}/jobs/{jn}/builds/{bn}"];
    let names: Vec<&str> = build["get"]["parameters"]
        .as_array()
        .expect("parameters")
        .iter()
        .map(|p| p["name"].as_str().expect("name"))
        .collect();
    assert_eq!(names, ["tc", "pc", "jn", "bn"]);
}

/// `docs/openapi.json` is the document as served, for readers and tools without a server: run
/// with `UPDATE_EXPECT=1` to rewrite it after changing the API.
#[tokio::test]
async fn docs_hold_the_current_document() {
    let api = TestApi::new().await;
    let served = api.get("/api/v1/openapi.json").await.text;
    expect_test::expect_file!["../../../../../docs/openapi.json"].assert_eq(&served);
}
