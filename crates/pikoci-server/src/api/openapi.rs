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

/// The document's fixed parts: what the API is and its tags ([`Conventions`] adds the rest).
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
        (name = "accounts", description = "Logging in, the caller's profile and password, API tokens."),
        (name = "users", description = "Users (global admins only)."),
        (name = "sso", description = "Single sign-on: logging in with an identity provider, linked identities, and the providers and login settings (global admins)."),
        (name = "teams", description = "Teams own pipelines and secrets; members have a role in them."),
        (name = "pipelines", description = "Setting, reading, pausing and exposing pipelines."),
        (name = "jobs", description = "Jobs, pausing them, triggering them by hand."),
        (name = "builds", description = "Builds, their logs and live events, and acting on them."),
        (name = "resources", description = "Resources, their versions, checks, pins and webhooks."),
        (name = "secrets", description = "Entries of the built-in secret store `pikoci`."),
        (name = "triggers", description = "A team's trigger streams, read by its `trigger` resources."),
        (name = "system", description = "Workers, health, readiness, metrics and this document."),
        (name = "admin", description = "The whole state at once: export and import."),
    )
)]
pub(crate) struct ApiDoc;

/// The conventions every operation follows, applied to the whole document once every route is
/// in it: its id is `<tag>_<handler>`, and it lists the error answers it can give, with the
/// one error schema. Each error is listed where it can happen: 400 where there are parameters
/// or a body, 404 where the path names something, 409 where something changes, 413 where a
/// body is read, 500 and 503 wherever the store is read.
pub(crate) struct Conventions;

/// Operations that read no store, and answer whatever happens.
const STORELESS: [&str; 3] = ["system_healthz", "system_document", "system_version"];

impl Modify for Conventions {
    fn modify(&self, openapi: &mut openapi::OpenApi) {
        let components = openapi
            .components
            .get_or_insert_with(openapi::Components::new);
        components
            .schemas
            .insert(ErrorBody::name().into_owned(), ErrorBody::schema());
        components.add_security_scheme(
            "bearer",
            openapi::security::SecurityScheme::Http(
                openapi::security::HttpBuilder::new()
                    .scheme(openapi::security::HttpAuthScheme::Bearer)
                    .description(Some(
                        "A session token (`pks_...`, from `POST /api/v1/login`) or an API token \
                         (`pko_...`).",
                    ))
                    .build(),
            ),
        );
        for (path, item) in &mut openapi.paths.paths {
            for (method, changes, operation) in operations(item) {
                name(operation);
                let access = super::access::rule(method, path);
                let signed = access.is_some_and(|access| access != super::access::Access::Anyone);
                if signed {
                    let mut security = vec![openapi::security::SecurityRequirement::new(
                        "bearer",
                        Vec::<String>::new(),
                    )];
                    // Anyone reads a public pipeline: the token is optional there.
                    if access == Some(super::access::Access::ReadOrPublic) {
                        security.push(openapi::security::SecurityRequirement::default());
                    }
                    operation.security = Some(security);
                }
                let parameters = operation.parameters.as_deref().unwrap_or_default();
                let names_something = parameters
                    .iter()
                    .any(|p| {
                        matches!(p, RefOr::T(p) if p.parameter_in == openapi::path::ParameterIn::Path)
                    });
                let body = operation.request_body.is_some();
                let reads_store = operation
                    .operation_id
                    .as_deref()
                    .is_none_or(|id| !STORELESS.contains(&id));
                let errors = [
                    (!parameters.is_empty() || body, "400", INVALID),
                    (names_something, "404", NOT_FOUND),
                    (changes, "409", CONFLICT),
                    (signed, "401", UNAUTHENTICATED),
                    (signed, "403", FORBIDDEN),
                    (body, "413", TOO_LARGE),
                    (reads_store, "500", INTERNAL),
                    (reads_store, "503", UNAVAILABLE),
                ];
                for (applies, status, description) in errors {
                    if applies {
                        operation
                            .responses
                            .responses
                            .entry(status.to_owned())
                            .or_insert_with(|| error_response(description));
                    }
                }
            }
        }
    }
}

const INVALID: &str =
    "The request does not fit: a path, query or body the message explains (`invalid_input`).";
const NOT_FOUND: &str =
    "The team, pipeline, job, build or resource named does not exist (`not_found`).";
const CONFLICT: &str = "The state of what is named does not allow this now (`conflict`): the \
                        message says why (a build already finished, a name taken...).";
const UNAUTHENTICATED: &str = "No usable credential: log in and send the token as \
                               `Authorization: Bearer <token>` (`unauthenticated`).";
const FORBIDDEN: &str = "The caller may not do this (`forbidden`: the message names the role \
                         needed), or must change the password first \
                         (`password_change_required`).";
const TOO_LARGE: &str = "The body is larger than the server reads (`invalid_input`).";
const INTERNAL: &str = "The server failed (`internal`); its log has the request's id.";
const UNAVAILABLE: &str =
    "The database or the broker does not answer (`unavailable`, `timeout`); try again.";

/// Makes an operation's id unique: `<tag>_<handler>` (`builds_list`, `jobs_trigger`).
fn name(operation: &mut Operation) {
    if let (Some(tag), Some(id)) = (
        operation.tags.as_ref().and_then(|tags| tags.first()),
        operation.operation_id.as_mut(),
    ) {
        *id = format!("{tag}_{id}");
    }
}

/// The operations of a path, each with whether it changes something.
fn operations(
    item: &mut openapi::PathItem,
) -> impl Iterator<Item = (&'static str, bool, &mut Operation)> {
    [
        ("GET", false, item.get.as_mut()),
        ("PUT", true, item.put.as_mut()),
        ("POST", true, item.post.as_mut()),
        ("DELETE", true, item.delete.as_mut()),
        ("PATCH", true, item.patch.as_mut()),
        ("HEAD", false, item.head.as_mut()),
        ("OPTIONS", false, item.options.as_mut()),
        ("TRACE", false, item.trace.as_mut()),
    ]
    .into_iter()
    .filter_map(|(method, changes, operation)| Some((method, changes, operation?)))
}

/// An error answer: the error body, described.
fn error_response(description: &str) -> RefOr<openapi::Response> {
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
            .expect("a document of strings and maps serialises")
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
