//! The OpenAPI 3.1 document of the API, served at `GET /api/v1/openapi.json`.
//!
//! It is generated from the handlers: each has a `#[utoipa::path]` that names its route, its
//! parameters, its body and its answers, and the router is built from those same attributes
//! (`super::described`). The shapes come from the types that are serialised (`ToSchema`).
//! The error answers every route can give (400, 404, 500, 503) are added here to every
//! operation, with the one error shape.

use std::sync::OnceLock;

use axum::http::header;
use axum::response::IntoResponse;
use utoipa::openapi::path::Operation;
use utoipa::openapi::{self, RefOr, ResponseBuilder};
use utoipa::{Modify, OpenApi, PartialSchema, ToSchema};

use super::error::ErrorBody;

/// The document's fixed parts: what the API is, its tags, and the common error answers.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "PikoCI",
        description = "The API of a PikoCI server: teams, pipelines, jobs, builds and their logs, \
                       resources and their versions, secrets, workers.\n\n\
                       Successes are `{\"data\": ...}` (pages add `\"meta\"`); errors are \
                       `{\"error\": {\"code\", \"message\", \"details\"?}}` with the status of \
                       the code. Answers are never cached (`Cache-Control: no-store`). Each \
                       answer carries an `X-Request-Id` that names the request in the \
                       server's logs (a client may send its own).",
        license(name = "Apache-2.0"),
    ),
    tags(
        (name = "teams", description = "Teams own pipelines and secrets."),
        (name = "pipelines", description = "Setting, reading, pausing and exposing pipelines."),
        (name = "jobs", description = "Jobs, pausing them, triggering them by hand."),
        (name = "builds", description = "Builds, their logs and live events, and acting on them."),
        (name = "resources", description = "Resources, their versions, checks, pins and webhooks."),
        (name = "secrets", description = "Entries of the built-in secret store `pikoci`."),
        (name = "system", description = "Workers, health, readiness, metrics and this document."),
    )
)]
pub(crate) struct ApiDoc;

/// Names the operations, and adds the error answers every operation can give and the error
/// schema they use: applied to the whole document once every route is in it.
pub(crate) struct CommonErrors;

impl Modify for CommonErrors {
    fn modify(&self, openapi: &mut openapi::OpenApi) {
        let components = openapi
            .components
            .get_or_insert_with(openapi::Components::new);
        components
            .schemas
            .insert(ErrorBody::name().into_owned(), ErrorBody::schema());
        let errors = [
            (
                "400",
                "The request does not fit: a path, query or body the message explains \
                 (`invalid_input`).",
            ),
            (
                "404",
                "The team, pipeline, job, build or resource named does not exist (`not_found`).",
            ),
            (
                "500",
                "The server failed (`internal`); its log has the request's id.",
            ),
            (
                "503",
                "The database or the broker does not answer (`unavailable`, `timeout`); try \
                 again.",
            ),
        ];
        for item in openapi.paths.paths.values_mut() {
            for operation in operations(item) {
                name(operation);
                for (status, description) in errors {
                    operation
                        .responses
                        .responses
                        .entry(status.to_owned())
                        .or_insert_with(|| error_response(description));
                }
            }
            // Whatever changes something can find it in a state that does not allow it.
            for operation in [
                &mut item.post,
                &mut item.put,
                &mut item.delete,
                &mut item.patch,
            ]
            .into_iter()
            .flatten()
            {
                operation
                    .responses
                    .responses
                    .entry("409".to_owned())
                    .or_insert_with(|| error_response(CONFLICT));
            }
        }
    }
}

/// What a 409 means where an operation does not say more.
const CONFLICT: &str = "The state of what is named does not allow this now (`conflict`): the \
                        message says why (a build already finished, a name taken...).";

/// Makes an operation's id unique: `<tag>_<handler>` (`builds_list`, `jobs_trigger`).
fn name(operation: &mut Operation) {
    if let (Some(tag), Some(id)) = (
        operation.tags.as_ref().and_then(|tags| tags.first()),
        operation.operation_id.as_mut(),
    ) {
        *id = format!("{tag}_{id}");
    }
}

/// The operations of a path.
fn operations(item: &mut openapi::PathItem) -> impl Iterator<Item = &mut Operation> {
    [
        item.get.as_mut(),
        item.put.as_mut(),
        item.post.as_mut(),
        item.delete.as_mut(),
        item.patch.as_mut(),
        item.head.as_mut(),
        item.options.as_mut(),
        item.trace.as_mut(),
    ]
    .into_iter()
    .flatten()
}

/// An error answer: the error body, described.
pub(crate) fn error_response(description: &str) -> RefOr<openapi::Response> {
    ResponseBuilder::new()
        .description(description)
        .content(
            "application/json",
            openapi::content::ContentBuilder::new()
                .schema(Some(RefOr::Ref(openapi::Ref::from_schema_name(
                    ErrorBody::name(),
                ))))
                .build(),
        )
        .into()
}

/// The document as JSON, made once.
fn json() -> &'static str {
    static DOCUMENT: OnceLock<String> = OnceLock::new();
    DOCUMENT.get_or_init(|| {
        super::described()
            .into_openapi()
            .to_pretty_json()
            // A document of strings and maps always serialises.
            .unwrap_or_else(|error| format!("{{\"error\": \"{error}\"}}"))
    })
}

/// `GET /api/v1/openapi.json`: this document.
#[utoipa::path(
    get,
    path = "/openapi.json",
    tag = "system",
    summary = "This OpenAPI document",
    responses((status = 200, description = "The OpenAPI 3.1 document of this API.", content_type = "application/json", body = Object)),
)]
pub(crate) async fn document() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json")], json())
}
