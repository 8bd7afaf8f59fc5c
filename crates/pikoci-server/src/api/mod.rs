//! The HTTP API: `/api/v1/...` (JSON), `/healthz` and `/readyz`.
//!
//! # Conventions
//!
//! - Success: `{"data": ...}` (lists of pages add `"meta": {"has_more", "next_before"}`), 200,
//!   or 201 when something was created (a team, a pipeline, a build).
//! - Errors: `{"error": {"code", "message", "details"?}}` with the status of the code:
//!   `invalid_input` 400 (a body, query or path that does not fit, with the reason),
//!   `not_found` 404 (unknown paths too), `method_not_allowed` 405, `conflict` 409,
//!   `invalid_pipeline` 422 (details: the pipeline's diagnostics, each
//!   `{"severity", "message", "help"?, "file", "line"?, "column"?, "span"?}`),
//!   `unavailable`/`timeout` 503, `internal` 500.
//! - Bodies are JSON; the `Content-Type` is not required. Unknown fields are refused, so a
//!   typo is an error rather than a silently ignored setting.
//! - Paths: `{tc}` team, `{pc}` pipeline, `{jn}` job, `{bn}` build number (`3`, `3.1`), `{rc}`
//!   resource as `type.name`. The shapes of the payloads are documented on the types of
//!   `api/views.rs`.
//! - Responses carry `Cache-Control: no-store`.
//! - Every route but health, metrics, version, the document, login and webhooks needs
//!   `Authorization: Bearer <session or API token>`; `access.rs` says what each one needs
//!   (401 `unauthenticated`, 403 `forbidden` or `password_change_required` otherwise).
//!
//! # Routes (under `/api/v1`)
//!
//! | route | |
//! |---|---|
//! | `POST /login`, `POST /logout` | sessions (`accounts.rs`) |
//! | `GET/PUT /profile`, `POST /profile/password` | the caller |
//! | `GET/POST /api-tokens`, `DELETE /api-tokens/{id}` | the caller's API tokens |
//! | `GET/POST /users`, `GET/PUT/DELETE /users/{user}` | users (global admins) |
//! | `GET /teams/{tc}/members`, `PUT/DELETE /teams/{tc}/members/{user}` | members and roles |
//! | `GET /teams/{tc}/audit` | the team's audit log, newest first (`audit.rs`) |
//! | `GET /worker-token`, `GET/POST /teams/{tc}/worker-token` | worker tokens: read; a team's: regenerate (`worker_tokens.rs`) |
//! | `GET/POST /teams` | teams; `POST {"name"}` |
//! | `GET/DELETE /teams/{tc}` | a team; deleting it deletes everything it owns |
//! | `GET/POST /teams/{tc}/pipelines` | pipelines; `POST {"name", "config" or "config_base64", "vars"?, "public"?, "file_name"?}` sets one |
//! | `GET/PUT/DELETE /teams/{tc}/pipelines/{pc}` | `PUT {"name"}` renames |
//! | `GET/POST /teams/{tc}/secrets`, `DELETE …/secrets/{name}` | the store `pikoci`; `POST {"name", "value", "kind"?}`; the same under `…/{pc}/secrets` |
//! | `POST …/{pc}/pause`, `unpause`, `expose`, `hide` | |
//! | `POST …/{pc}/validate` | `{"config", "vars"?}`: validates without setting (`{"valid", "errors", "warnings"}`) |
//! | `GET …/{pc}/jobs`, `GET …/jobs/{jn}` | jobs with their latest build |
//! | `POST …/jobs/{jn}/pause`, `unpause`, `trigger` | `trigger {"input_values"?}` |
//! | `GET …/jobs/{jn}/builds` | `?before=&limit=&status=&since=` |
//! | `GET …/{pc}/builds` | the pipeline's builds; `?job=` and the same filters |
//! | `GET …/builds/{bn}`, `POST …/cancel`, `retry`, `approve`, `reject`, `warning` | |
//! | `GET …/builds/{bn}/logs`, `GET …/builds/{bn}/events` | text or JSON; Server-Sent Events (`api/events.rs`) |
//! | `GET …/builds/{bn}/report` | the build and every attempt's output, as a JSON download |
//! | `GET …/{pc}/resources`, `GET …/resources/{rc}` | |
//! | `GET …/resources/{rc}/versions` | `?before=&limit=`; `POST {"version"}` adds one by hand |
//! | `POST …/resources/{rc}/versions/{id}/trigger` | builds a version again |
//! | `GET …/resources/{rc}/versions/{id}/builds` | the builds that used a version |
//! | `POST …/resources/{rc}/check`, `pin {"version_id"}`, `unpin`, `webhook_token` | |
//! | `POST /webhooks/{token}` | any body |
//! | `GET /workers`, `GET /workers/health` | workers; whether one can take work now |
//! | `POST /workers/prune` | forgets the lost workers |
//! | `DELETE /workers/{id}` | forgets one worker |
//! | `GET/POST /teams/{tc}/triggers/{name}` | a trigger stream's events; `POST {"version"?}` fires one |
//! | `GET …/{pc}/image.dot` | the pipeline as a Graphviz graph |
//! | `GET …/builds/{bn}/pending_reason` | `{"status", "pending_reason"}` |
//! | `GET /admin/export`, `POST /admin/import?replace=` | the whole state as a SQLite file, and back (`admin.rs`) |
//! | `GET /version` | `{"version"}` |
//! | `GET /openapi.json` | the OpenAPI 3.1 document of all this (`openapi.rs`) |
//!
//! Outside `/api/v1`: `GET /healthz`, `GET /readyz`, and `GET /metrics` (Prometheus's text
//! format, `metrics.rs`).

mod access;
mod accounts;
mod admin;
mod audit;
mod builds;
mod error;
mod events;
mod extract;
mod graph;
mod jobs;
mod openapi;
mod paging;
mod pipelines;
mod resources;
mod scope;
mod secrets;
pub(crate) mod sso;
mod system;
mod teams;
mod triggers;
mod views;
mod worker_tokens;

#[cfg(test)]
mod tests;

use axum::Json;
use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::Response;
use serde::Serialize;
use utoipa::{Modify as _, OpenApi as _, ToSchema};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::Server;
use error::{ApiError, ApiResult};

/// The largest request body: a pipeline file of [`pikoci_config::MAX_SOURCE_BYTES`] in base64,
/// with room for its vars.
const MAX_BODY_BYTES: usize = pikoci_config::MAX_SOURCE_BYTES * 2;

/// The router of everything the server answers over HTTP, on `server`: the web UI's pages
/// (`crate::ui`), and the API behind them.
pub fn router(server: Server) -> Router {
    let api = api_router(server.clone());
    crate::ui::router(server, api)
}

/// The router of the API alone.
pub(crate) fn api_router(server: Server) -> Router {
    let (routes, _) = described().split_for_parts();
    routes
        // Labels the routes above only: the fallbacks set after it (unknown paths, and known
        // paths with another method) count as `unmatched`.
        .route_layer(axum::middleware::from_fn_with_state(
            server.clone(),
            access::authorize,
        ))
        .route_layer(axum::middleware::from_fn(label_route))
        .fallback(system::not_found)
        .method_not_allowed_fallback(system::method_not_allowed)
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(axum::middleware::map_response(no_store))
        .layer(axum::middleware::from_fn_with_state(
            server.clone(),
            count_request,
        ))
        .with_state(server)
}

/// Every route with its description: each is added from a handler's `#[utoipa::path]`, which
/// gives both the route and its part of the OpenAPI document, so that the two cannot differ
/// (`tests/openapi.rs` checks that no route was added another way). One `routes!` per path:
/// the macro routes every handler it is given on every path among them.
pub(crate) fn described() -> OpenApiRouter<Server> {
    let api = OpenApiRouter::new()
        .routes(routes!(accounts::login))
        .routes(routes!(accounts::logout))
        .routes(routes!(accounts::profile, accounts::update_profile))
        .routes(routes!(accounts::change_password))
        .routes(routes!(sso::methods))
        .routes(routes!(sso::start))
        .routes(routes!(sso::callback))
        .routes(routes!(sso::complete_profile))
        .routes(routes!(sso::identities))
        .routes(routes!(sso::link, sso::unlink))
        .routes(routes!(sso::list_providers))
        .routes(routes!(sso::user_identities))
        .routes(routes!(sso::put_user_identity, sso::delete_user_identity))
        .routes(routes!(
            sso::get_provider,
            sso::put_provider,
            sso::delete_provider
        ))
        .routes(routes!(sso::get_settings, sso::put_settings))
        .routes(routes!(accounts::list_tokens, accounts::create_token))
        .routes(routes!(accounts::delete_token))
        .routes(routes!(accounts::list_users, accounts::create_user))
        .routes(routes!(
            accounts::get_user,
            accounts::update_user,
            accounts::delete_user
        ))
        .routes(routes!(accounts::members))
        .routes(routes!(accounts::set_member, accounts::remove_member))
        .routes(routes!(worker_tokens::global))
        .routes(routes!(audit::audit_log))
        .routes(routes!(worker_tokens::team, worker_tokens::regenerate_team))
        .routes(routes!(teams::list, teams::create))
        .routes(routes!(teams::get, teams::delete))
        .routes(routes!(secrets::list_team, secrets::set_team))
        .routes(routes!(secrets::delete_team))
        .routes(routes!(triggers::fire, triggers::list))
        .routes(routes!(secrets::list_pipeline, secrets::set_pipeline))
        .routes(routes!(secrets::delete_pipeline))
        .routes(routes!(pipelines::list, pipelines::create))
        .routes(routes!(
            pipelines::get,
            pipelines::update,
            pipelines::delete
        ))
        .routes(routes!(pipelines::pause))
        .routes(routes!(pipelines::unpause))
        .routes(routes!(pipelines::expose))
        .routes(routes!(pipelines::hide))
        .routes(routes!(pipelines::validate))
        .routes(routes!(graph::dot))
        .routes(routes!(jobs::list))
        .routes(routes!(jobs::get))
        .routes(routes!(jobs::pause))
        .routes(routes!(jobs::unpause))
        .routes(routes!(jobs::trigger))
        .routes(routes!(builds::list))
        .routes(routes!(builds::list_pipeline))
        .routes(routes!(builds::get))
        .routes(routes!(builds::pending_reason))
        .routes(routes!(builds::cancel))
        .routes(routes!(builds::retry))
        .routes(routes!(builds::mark_warning))
        .routes(routes!(builds::approve))
        .routes(routes!(builds::reject))
        .routes(routes!(builds::logs))
        .routes(routes!(builds::report))
        .routes(routes!(events::build_events))
        .routes(routes!(resources::list))
        .routes(routes!(resources::get))
        .routes(routes!(resources::versions, resources::add_version))
        .routes(routes!(resources::trigger_version))
        .routes(routes!(builds::list_version))
        .routes(routes!(resources::check))
        .routes(routes!(resources::pin))
        .routes(routes!(resources::unpin))
        .routes(routes!(resources::regenerate_webhook_token))
        .routes(routes!(resources::webhook))
        .routes(routes!(system::workers))
        .routes(routes!(system::workers_health))
        .routes(routes!(system::prune_workers))
        .routes(routes!(system::delete_worker))
        .routes(routes!(admin::export))
        .routes(routes!(admin::import))
        .routes(routes!(system::version))
        .routes(routes!(openapi::document));
    let mut described = OpenApiRouter::with_openapi(openapi::ApiDoc::openapi())
        .nest("/api/v1", api)
        .routes(routes!(system::healthz))
        .routes(routes!(system::readyz))
        .routes(routes!(system::metrics));
    openapi::Conventions.modify(described.get_openapi_mut());
    described
}

/// The route pattern that answered a request, carried on its response to [`count_request`].
#[derive(Debug, Clone)]
struct RouteLabel(MatchedPath);

/// Labels the responses of known routes with their pattern.
pub(crate) async fn label_route(matched: MatchedPath, request: Request, next: Next) -> Response {
    let route = RouteLabel(matched);
    let mut response = next.run(request).await;
    response.extensions_mut().insert(route);
    response
}

/// Runs every request in a `request` span with its id (the client's `X-Request-Id` when it
/// sent a usable one, else a new one, returned in the answer's `X-Request-Id`), and counts it
/// in the metrics by method, route (`unmatched` for unknown paths and methods) and status,
/// with the time to the response's head.
pub(crate) async fn count_request(
    State(server): State<Server>,
    request: Request,
    next: Next,
) -> Response {
    use tracing::Instrument;
    // Part of a request already counted.
    if request.extensions().get::<InProcess>().is_some() {
        return next.run(request).await;
    }
    let started = std::time::Instant::now();
    let method = request.method().clone();
    let id = request
        .headers()
        .get(REQUEST_ID)
        .and_then(|id| id.to_str().ok())
        .filter(|id| {
            (1..=64).contains(&id.len())
                && id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
        })
        .map_or_else(|| uuid::Uuid::now_v7().to_string(), str::to_owned);
    // Not the path: a webhook's holds its token. At error level, so that the id is on every
    // line a request logs, whatever the log level.
    let span = tracing::error_span!("request", id = %id, method = %method);
    let mut response = next.run(request).instrument(span).await;
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(REQUEST_ID, value);
    }
    let route = response
        .extensions()
        .get::<RouteLabel>()
        .map_or("unmatched", |route| route.0.as_str());
    let took = started.elapsed();
    let status = response.status().as_u16();
    tracing::debug!(request = %id, %method, route, status, took_ms = took.as_millis(), "answered");
    server
        .inner
        .metrics
        .http_request(method.as_str(), route, status, took);
    // A change someone made (pause, expose, trigger, pin...): live pages show it at once.
    if !method.is_safe() && response.status().is_success() && shown_live(route) {
        server.inner.runtime.changed();
    }
    response
}

/// Whether a change through `route` may show on a live page: not a validation, a check asked
/// for, a webhook, nor what concerns sessions, tokens, the profile or secrets.
fn shown_live(route: &str) -> bool {
    const UNSEEN: [&str; 7] = [
        "/login",
        "/api/v1/login",
        "/api/v1/logout",
        "/api/v1/api-tokens",
        "/api/v1/profile",
        "/api/v1/auth/",
        "/api/v1/webhooks/",
    ];
    const UNSEEN_LAST: [&str; 4] = ["/validate", "/check", "/worker-token", "/webhook_token"];
    !(UNSEEN.iter().any(|prefix| route.starts_with(prefix))
        || UNSEEN_LAST.iter().any(|suffix| route.ends_with(suffix))
        || route.contains("/secrets"))
}

/// Marks a request the server makes to its own router (a page reading the API, a live page
/// rendered again): it is part of the request that caused it, and not counted apart.
#[derive(Debug, Clone, Copy)]
pub(crate) struct InProcess;

/// The header that names a request in the server's logs.
const REQUEST_ID: &str = "x-request-id";

/// API answers describe the state of the moment: never cached.
async fn no_store(mut response: Response) -> Response {
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// `{"data": ...}`.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Data<T> {
    data: T,
}

/// `{"data": ..., "meta": ...}`.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Page<T, M = views::PageMeta> {
    data: T,
    meta: M,
}

/// A success body.
pub(crate) fn data<T>(data: T) -> Json<Data<T>> {
    Json(Data { data })
}

/// The page size of lists.
const DEFAULT_PAGE: u32 = 50;
/// The largest page size.
const MAX_PAGE: u32 = 500;

/// Cuts `items`, read with `limit + 1`, to a page of `limit`: whether more follow, and then
/// the cursor of the next page (the id of the page's last item).
pub(crate) fn cut_page<T>(
    items: &mut Vec<T>,
    limit: u32,
    id: impl Fn(&T) -> i64,
) -> (bool, Option<i64>) {
    let has_more = items.len() > limit as usize;
    items.truncate(limit as usize);
    let next = if has_more { items.last().map(id) } else { None };
    (has_more, next)
}

/// `?limit=`: 1 to 500, 50 when not given.
pub(crate) fn page_limit(limit: Option<u32>) -> ApiResult<u32> {
    match limit {
        None => Ok(DEFAULT_PAGE),
        Some(limit) if (1..=MAX_PAGE).contains(&limit) => Ok(limit),
        Some(limit) => Err(ApiError::invalid(format!(
            "limit {limit} is out of range: use 1 to {MAX_PAGE}"
        ))),
    }
}
