//! `GET /api/v1/openapi.json`: the document describes every route the router has, and only
//! those, and it is a well-formed OpenAPI 3.1 document.

use std::collections::BTreeSet;

use axum::http::{Method, StatusCode};
use serde_json::Value;

use super::TestApi;

/// The keys of a path item that are operations.
const HTTP_METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "patch", "head", "options", "trace",
];

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
fn router_paths(router: &axum::Router) -> BTreeSet<String> {
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
            if HTTP_METHODS.contains(&method.as_str()) {
                operations.insert((method.to_uppercase(), path.clone()));
            }
        }
    }
    operations
}

#[tokio::test]
async fn the_document_describes_every_route_and_only_them() {
    let api = TestApi::new().await;
    let document = api.get("/api/v1/openapi.json").await.json();
    let documented = documented(&document);

    // The API's router that is served (the web UI's pages, routed in front of it, are not
    // API), with everything `api_router` adds to the described routes.
    let paths = router_paths(&super::super::api_router(api.server.clone()));
    let documented_paths: BTreeSet<&String> = documented.iter().map(|(_, path)| path).collect();
    assert_eq!(
        paths.iter().collect::<BTreeSet<_>>(),
        documented_paths,
        "the router's paths (read from axum's Debug output, `RouteId(n): \"/path\"`; if that \
         format changed, fix `router_paths`) differ from the document's"
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
            // Success: an answer, or (single sign-on's flow) a redirect of the browser.
            let success = |status: &str| status.starts_with('2') || status.starts_with('3');
            assert!(
                responses.keys().any(|status| success(status)),
                "{method} {path} describes no success"
            );
            for (status, answer) in responses {
                if !success(status) {
                    let error = &answer["content"]["application/json"]["schema"]["$ref"];
                    assert_eq!(
                        error, "#/components/schemas/Error",
                        "{method} {path} {status}"
                    );
                }
            }
            // A path that names something can name nothing; what changes can conflict.
            assert_eq!(
                responses.contains_key("404"),
                path.contains('{'),
                "{method} {path}"
            );
            assert_eq!(
                responses.contains_key("409"),
                method != "get",
                "{method} {path}"
            );
            assert_eq!(
                responses.contains_key("413"),
                operation.get("requestBody").is_some(),
                "{method} {path}"
            );
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

/// A field the server always sends may be `null`, but it is there: a schema of an answer that
/// allows `null` lists the property as required (only fields left out when empty are
/// optional, and those are never `null`). Request bodies are left out: there, optional means
/// optional.
#[tokio::test]
async fn answers_list_the_fields_they_always_send() {
    let api = TestApi::new().await;
    let document = api.get("/api/v1/openapi.json").await.json();
    let mut requests = Vec::new();
    for item in document["paths"].as_object().expect("paths").values() {
        for operation in item.as_object().expect("item").values() {
            refs(&operation["requestBody"], &mut requests);
        }
    }
    let schemas = document["components"]["schemas"]
        .as_object()
        .expect("schemas");
    let mut checked = 0;
    for (name, schema) in schemas {
        if requests.iter().any(|r| r.ends_with(&format!("/{name}"))) {
            continue;
        }
        let Some(properties) = schema["properties"].as_object() else {
            continue;
        };
        let required: Vec<&str> = schema["required"]
            .as_array()
            .map(|r| r.iter().filter_map(Value::as_str).collect())
            .unwrap_or_default();
        for (property, shape) in properties {
            let nullable = shape["type"]
                .as_array()
                .is_some_and(|types| types.iter().any(|t| t == "null"))
                || shape["oneOf"]
                    .as_array()
                    .is_some_and(|options| options.iter().any(|o| o["type"] == "null"));
            assert!(
                !nullable || required.contains(&property.as_str()),
                "{name}.{property} may be null but is not required: add \
                 #[schema(required = true)] (always sent) or skip it when empty with \
                 #[schema(nullable = false)]"
            );
            checked += 1;
        }
    }
    assert!(checked > 100, "only {checked} properties checked");
}
