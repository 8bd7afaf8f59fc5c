//! `GET /live?page=<path>&hash=<hash>`: the live part of a page, followed over Server-Sent
//! Events.
//!
//! A live page (the dashboard, a pipeline, a job, the workers) marks its live part with
//! `<!--live-->` and `<!--/live-->` inside an element with `data-live`; [`super::render`] puts
//! the part's [`fingerprint`] in that element's `data-live-hash`. The page's script opens this
//! stream while the tab is visible, and the stream renders the page again, as the visitor (with
//! the visitor's cookie, through the UI's own router, so with the same authorization as the
//! page), when something may have changed:
//!
//! - at once (at most once a second) when this server changes something live pages show
//!   ([`crate::Server::page_changes`]): a build created or changing state, a pause, a new
//!   worker, any change made through the API;
//! - every [`TICK`] otherwise, for changes made by another server and for times that age.
//!
//! # Events
//!
//! - `update`: the part's new HTML, sent only when it differs from what the visitor has, with
//!   its fingerprint as the event's `id` (a browser that reconnects sends it back as
//!   `Last-Event-ID`, which takes the place of `hash`).
//! - `gone`: `{"status"}` when the page no longer answers for good (401, 403, 404 or 410: the
//!   session ended, the pipeline was deleted, access was taken away); the stream ends and the
//!   script loads the page again, which shows why. Any other failure (the store down for a
//!   moment) sends nothing, and the next change or tick tries again.
//!
//! Nothing is sent while nothing changes, except the comments that keep the connection open.
//! The stream ends when the server stops; the browser reconnects. At most
//! [`LIVE_RENDERS`](crate::state::LIVE_RENDERS) pages
//! are rendered at once by all the streams of a server: many open pages wait their turn
//! rather than crowd out the rest of the server.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, Request, StatusCode, header};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures::Stream;
use serde::Deserialize;
use sha2::{Digest, Sha256};
use tokio::sync::{Semaphore, watch};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt as _;
use tracing::Instrument as _;

use super::UiState;
use crate::api::InProcess;

/// How often a stream renders its page when this server changed nothing.
pub(crate) const TICK: Duration = Duration::from_secs(5);

/// The least time between two renders of one stream.
const MIN_GAP: Duration = Duration::from_secs(1);

/// The largest page a stream renders (a pipeline of 200 jobs is about 300 KiB).
const MAX_PAGE: usize = 16 * 1024 * 1024;

/// Where a live part starts and ends in a page.
const START: &str = "<!--live-->";
const END: &str = "<!--/live-->";

/// The placeholder [`super::render`] fills with the live part's fingerprint.
pub(crate) const HASH_SLOT: &str = "data-live-hash=\"\"";

/// The query of `GET /live`.
#[derive(Debug, Deserialize)]
pub(crate) struct LiveQuery {
    /// The page's path and query, as the browser shows it.
    page: String,
    /// The fingerprint of the part the visitor has (from `data-live-hash`).
    #[serde(default)]
    hash: String,
}

/// The live part of `html`, between its markers.
pub(crate) fn region(html: &str) -> Option<&str> {
    let start = html.find(START)? + START.len();
    let end = start + html[start..].find(END)?;
    Some(&html[start..end])
}

/// A short fingerprint of a live part: the same part gives the same fingerprint on every
/// server of the same release.
pub(crate) fn fingerprint(part: &str) -> String {
    let digest = Sha256::digest(part.as_bytes());
    digest[..12].iter().map(|b| format!("{b:02x}")).collect()
}

/// Why a page's path cannot be followed, if it cannot.
fn refusal(page: &str) -> Option<&'static str> {
    if !page.starts_with('/') || page.starts_with("//") || page.contains('\\') {
        return Some("\"page\" must be a path on this server, such as /teams/main/pipelines/ci");
    }
    if page.len() > 4096 {
        return Some("\"page\" is longer than 4,096 bytes");
    }
    if page.parse::<axum::http::Uri>().is_err() {
        return Some("\"page\" is not a valid path and query");
    }
    let path = page.split(['?', '#']).next().unwrap_or_default();
    if ["/api/", "/assets/", "/live", "/login"]
        .iter()
        .any(|prefix| path.starts_with(prefix))
    {
        return Some("\"page\" must be a page of the web UI");
    }
    None
}

/// The handler.
pub(crate) async fn live(
    State(state): State<UiState>,
    Query(query): Query<LiveQuery>,
    headers: HeaderMap,
) -> Response {
    if let Some(problem) = refusal(&query.page) {
        return (StatusCode::BAD_REQUEST, problem).into_response();
    }
    let sent = headers
        .get("last-event-id")
        .and_then(|id| id.to_str().ok())
        .map_or(query.hash, str::to_owned);
    let mut passed = HeaderMap::new();
    for name in [header::COOKIE, header::HOST] {
        for value in headers.get_all(&name) {
            passed.append(name.clone(), value.clone());
        }
    }
    let stream = LiveStream {
        changes: state.server.page_changes(),
        stopping: state.server.stopping(),
        renders: state.server.live_renders(),
        pages: super::router(state.server, state.api),
        page: query.page,
        headers: passed,
        sent,
        rendered_at: None,
        ended: false,
    };
    Sse::new(stream.into_stream())
        .keep_alive(KeepAlive::default())
        .into_response()
}

/// One stream.
struct LiveStream {
    changes: watch::Receiver<u64>,
    stopping: CancellationToken,
    renders: Arc<Semaphore>,
    /// The UI's router, which renders the page.
    pages: Router,
    page: String,
    /// The visitor's cookie and the host the page was asked from.
    headers: HeaderMap,
    /// The fingerprint of the part the visitor has.
    sent: String,
    rendered_at: Option<Instant>,
    ended: bool,
}

/// A page rendered again.
enum Rendered {
    Part(String),
    /// The page answers no more, for good.
    Gone(StatusCode),
    /// The page could not be rendered this time.
    Failed,
}

impl LiveStream {
    fn into_stream(self) -> impl Stream<Item = Result<Event, Infallible>> {
        futures::stream::unfold(self, |mut stream| async move {
            let event = stream.next().await?;
            Some((Ok(event), stream))
        })
    }

    /// The next event, once there is one; `None` when the stream is over.
    async fn next(&mut self) -> Option<Event> {
        loop {
            if self.ended {
                return None;
            }
            self.wait().await?;
            match self.render().await {
                Rendered::Part(part) => {
                    let hash = fingerprint(&part);
                    if hash != self.sent {
                        // An event's data ends a line at `\r` as at `\n`: the browser would
                        // see two line ends for each `\r\n`.
                        let part = part.replace("\r\n", "\n").replace('\r', "\n");
                        let event = Event::default().event("update").id(&hash).data(part);
                        self.sent = hash;
                        return Some(event);
                    }
                }
                Rendered::Gone(status) => {
                    self.ended = true;
                    let data = serde_json::json!({ "status": status.as_u16() }).to_string();
                    return Some(Event::default().event("gone").data(data));
                }
                Rendered::Failed => {}
            }
        }
    }

    /// Waits until the page should be rendered: at once the first time (something may have
    /// changed since the page was loaded), then on a change or a tick, never sooner than
    /// [`MIN_GAP`] after the last render. `None` when the server stops.
    async fn wait(&mut self) -> Option<()> {
        let Some(last) = self.rendered_at else {
            self.changes.borrow_and_update();
            self.rendered_at = Some(Instant::now());
            return Some(());
        };
        tokio::select! {
            () = self.stopping.cancelled() => return None,
            changed = self.changes.changed() => changed.ok()?,
            () = tokio::time::sleep_until(last + TICK) => {}
        }
        tokio::select! {
            () = self.stopping.cancelled() => return None,
            () = tokio::time::sleep_until(last + MIN_GAP) => {}
        }
        // Changes made until now are in the render that follows.
        self.changes.borrow_and_update();
        self.rendered_at = Some(Instant::now());
        Some(())
    }

    /// Renders the page as the visitor, and cuts out its live part.
    async fn render(&self) -> Rendered {
        let Ok(_turn) = self.renders.acquire().await else {
            return Rendered::Failed;
        };
        let mut request = Request::get(&self.page).extension(InProcess);
        for (name, value) in &self.headers {
            request = request.header(name, value);
        }
        // A part, for the UI: a page that needs a login answers 401, not the login page.
        let Ok(request) = request.header("hx-request", "true").body(Body::empty()) else {
            return Rendered::Failed;
        };
        // What the render logs says which page it was for.
        let span = tracing::error_span!("live", page = %self.page);
        let Ok(response) = self.pages.clone().oneshot(request).instrument(span).await;
        match response.status() {
            StatusCode::OK => {}
            status @ (StatusCode::UNAUTHORIZED
            | StatusCode::FORBIDDEN
            | StatusCode::NOT_FOUND
            | StatusCode::GONE) => return Rendered::Gone(status),
            status => {
                tracing::debug!(
                    page = %self.page, %status,
                    "a live page failed; the next change or tick tries again"
                );
                return Rendered::Failed;
            }
        }
        let html = match axum::body::to_bytes(response.into_body(), MAX_PAGE).await {
            Ok(bytes) => String::from_utf8_lossy(&bytes).into_owned(),
            Err(error) => {
                tracing::warn!(page = %self.page, %error, "a live page could not be read");
                return Rendered::Failed;
            }
        };
        match region(&html) {
            Some(part) => Rendered::Part(part.to_owned()),
            // Not a live page.
            None => Rendered::Gone(StatusCode::NOT_FOUND),
        }
    }
}
