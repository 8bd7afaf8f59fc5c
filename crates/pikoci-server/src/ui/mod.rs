//! The web UI: HTML pages rendered by the server from templates checked at compile time
//! (askama, `templates/`), with the assets embedded in the binary (`assets/`).
//!
//! # How a page reads and acts
//!
//! A page is a client of the JSON API, in process: its handler reads what it shows through the
//! API's router with the visitor's own credentials ([`visit::Visit`]), so a page can never show
//! what the API would refuse that visitor, and anonymous visitors of a public pipeline get the
//! API's public view. Actions (pause, trigger, cancel, pin, ...) are sent by the browser to the
//! API itself (`assets/app.js`), with the session cookie, which the API accepts from the
//! server's own pages (`Origin`). So there is one authorization, one audit log and one
//! behaviour, and the pages add only presentation.
//!
//! The exception is logging in: `POST /login` takes a form and sets the session cookie, which
//! the API's `POST /api/v1/login` does not (it answers a token).
//!
//! # Routes
//!
//! | route | page |
//! |---|---|
//! | `GET/POST /login` | local login and single sign-on |
//! | `GET /profile/password` | choosing a new password |
//! | `GET /profile` | the visitor's API tokens and linked accounts |
//! | `GET /workers` | the workers |
//! | `GET /teams/{tc}?tab=` | a team's members, audit log and secrets |
//! | `GET /` | dashboard: every pipeline of the visitor's teams |
//! | `GET /teams/{tc}/pipelines/{pc}` | the pipeline: graph (`?view=list`: list) |
//! | `GET /teams/{tc}/pipelines/{pc}/edit` | the pipeline's file in an editor that validates it |
//! | `GET …/jobs/{jn}` | a job: its builds, trigger, pause |
//! | `GET …/jobs/{jn}/builds/{bn}` | a build: steps and logs |
//! | `GET …/builds/{bn}/steps/{step}/log` | a page of a step's log (HTML fragment) |
//! | `GET …/resources/{rc}` | a resource: versions, pin, check |
//! | `GET /assets/{hash}/{file}` | embedded assets, cached for a year |
//! | `GET /live?page=` | a live page's changes, over Server-Sent Events ([`live`]) |

mod admin;
mod ansi;
mod assets;
mod graph;
mod live;
mod login;
mod logs;
mod pages;
mod visit;

use askama::Template;
use axum::Router;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::get;

use crate::Server;
pub(crate) use visit::Visit;

/// What the UI's handlers share: the server, and the API router they read through.
#[derive(Clone)]
pub(crate) struct UiState {
    pub(crate) server: Server,
    pub(crate) api: Router,
}

/// The UI's routes; every other path is answered by `api`.
pub(crate) fn router(server: Server, api: Router) -> Router {
    let state = UiState {
        server: server.clone(),
        api: api.clone(),
    };
    Router::new()
        .route("/", get(pages::dashboard))
        .route("/login", get(login::page).post(login::submit))
        .route("/profile/password", get(login::password_page))
        .route("/profile", get(admin::profile))
        .route("/workers", get(admin::workers))
        .route("/teams/{tc}", get(admin::team))
        .route("/teams/{tc}/pipelines/{pc}", get(pages::pipeline))
        .route("/teams/{tc}/pipelines/{pc}/edit", get(pages::editor))
        .route("/teams/{tc}/pipelines/{pc}/jobs/{jn}", get(pages::job))
        .route(
            "/teams/{tc}/pipelines/{pc}/jobs/{jn}/builds/{bn}",
            get(pages::build),
        )
        .route(
            "/teams/{tc}/pipelines/{pc}/jobs/{jn}/builds/{bn}/steps/{step}/log",
            get(logs::step_log),
        )
        .route(
            "/teams/{tc}/pipelines/{pc}/resources/{rc}",
            get(pages::resource),
        )
        .route("/assets/{hash}/{file}", get(assets::serve))
        .route("/live", get(live::live))
        .route_layer(axum::middleware::from_fn(visit::pass_cookies))
        .route_layer(axum::middleware::from_fn(crate::api::label_route))
        .route_layer(axum::middleware::from_fn_with_state(
            server,
            crate::api::count_request,
        ))
        .with_state(state)
        .fallback_service(api)
}

/// The common frame of every page: who is visiting, and the page's title.
pub(crate) struct Frame {
    /// The page's title (the tab's name).
    pub(crate) title: String,
    /// The logged-in user's name; `None` for anonymous visitors.
    pub(crate) user: Option<String>,
    /// Where the page's path leads back to: `(label, href)` from the dashboard down.
    pub(crate) crumbs: Vec<(String, String)>,
}

impl Frame {
    /// The asset URL of `file` (with the hash of every asset, so that a new release is fetched
    /// at once and an old one is cached for good).
    pub(crate) fn asset(&self, file: &str) -> String {
        assets::url(file)
    }
}

/// An answer that is not the page: a redirect (to log in, to choose a password) or an error
/// page.
#[derive(Debug)]
pub(crate) enum PageError {
    /// The visitor must log in first: to `/login?next=<the page>`.
    LogIn { next: String },
    /// The visitor must choose a new password first.
    ChangePassword,
    /// Anything else: the API's status and message.
    Failed { status: StatusCode, message: String },
}

impl PageError {
    pub(crate) fn failed(status: StatusCode, message: impl Into<String>) -> PageError {
        PageError::Failed {
            status,
            message: message.into(),
        }
    }
}

/// The error page.
#[derive(Template)]
#[template(path = "error.html")]
struct ErrorPage<'a> {
    frame: Frame,
    status: u16,
    reason: &'a str,
    message: &'a str,
}

impl IntoResponse for PageError {
    fn into_response(self) -> Response {
        match self {
            PageError::LogIn { next } => {
                let next = percent_encoding::utf8_percent_encode(&next, visit::QUERY).to_string();
                Redirect::to(&format!("/login?next={next}")).into_response()
            }
            PageError::ChangePassword => Redirect::to("/profile/password").into_response(),
            PageError::Failed { status, message } => {
                let page = ErrorPage {
                    frame: Frame {
                        title: status.canonical_reason().unwrap_or("Error").to_owned(),
                        user: None,
                        crumbs: Vec::new(),
                    },
                    status: status.as_u16(),
                    reason: status.canonical_reason().unwrap_or("Error"),
                    message: &message,
                };
                (status, render(&page)).into_response()
            }
        }
    }
}

/// A page's HTML, or a 500 page when a template fails (it only fails when a value's `Display`
/// does).
pub(crate) fn render(page: &impl Template) -> Response {
    match page.render() {
        Ok(mut html) => {
            // A live page says which version of its live part it shows (see `live`).
            if let Some(at) = html.find(live::HASH_SLOT)
                && let Some(part) = live::region(&html)
            {
                let filled = format!("data-live-hash=\"{}\"", live::fingerprint(part));
                html.replace_range(at..at + live::HASH_SLOT.len(), &filled);
            }
            let mut response = Html(html).into_response();
            let headers = response.headers_mut();
            headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
            // No other site may frame a page (and have its buttons clicked unseen).
            headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
            headers.insert(
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static("frame-ancestors 'none'"),
            );
            response
        }
        Err(error) => {
            tracing::error!(%error, "a page could not be rendered");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                Html("<!doctype html><title>Error</title><p>This page could not be rendered (a bug): the server's log says why.</p>"),
            )
                .into_response()
        }
    }
}

/// Percent-encodes one path segment.
pub(crate) fn segment(text: &str) -> String {
    pikoci_core::percent::encode(text)
}
