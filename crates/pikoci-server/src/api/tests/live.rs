//! Live pages (`GET /live`): a page's part sent again over Server-Sent Events when, and only
//! when, it changes; streams that end when the page stops answering or the server stops.

use std::time::Duration;

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use pikoci_core::store::Role;

use super::TestApi;
use super::ui::{DEMO, member, page};

/// Reads a live page's events (`GET /live`) one by one.
struct LiveReader {
    body: Body,
    buffer: String,
}

impl LiveReader {
    async fn open(api: &TestApi, session: Option<&str>, query: &str) -> LiveReader {
        let mut request =
            Request::get(format!("/live?{query}")).header(header::HOST, "ci.example:8080");
        if let Some(session) = session {
            request = request.header(header::COOKIE, format!("pikoci_session={session}"));
        }
        let response = api
            .router_oneshot(request.body(Body::empty()).expect("request"))
            .await;
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(
            response.headers()[header::CONTENT_TYPE],
            "text/event-stream"
        );
        LiveReader {
            body: response.into_body(),
            buffer: String::new(),
        }
    }

    /// The next event as `(name, id, data)` within `wait`; `None` when none came.
    async fn next(&mut self, wait: std::time::Duration) -> Option<(String, String, String)> {
        use http_body_util::BodyExt as _;
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                let (mut name, mut id, mut data) = (None, String::new(), Vec::new());
                for line in block.lines() {
                    if let Some(value) = line.strip_prefix("event: ") {
                        name = Some(value.to_owned());
                    } else if let Some(value) = line.strip_prefix("id: ") {
                        id = value.to_owned();
                    } else if let Some(value) = line.strip_prefix("data: ") {
                        data.push(value);
                    } else if line == "data:" {
                        data.push("");
                    }
                }
                match name {
                    Some(name) => return Some((name, id, data.join("\n"))),
                    // A keep-alive comment.
                    None => continue,
                }
            }
            let frame = tokio::time::timeout_at(deadline, self.body.frame())
                .await
                .ok()?
                .expect("the stream ended")
                .expect("frame");
            if let Ok(data) = frame.into_data() {
                self.buffer.push_str(&String::from_utf8_lossy(&data));
            }
        }
    }
}

/// The `data-live-hash` a page was rendered with.
fn live_hash(text: &str) -> String {
    let at = text.find("data-live-hash=\"").expect("a live page") + "data-live-hash=\"".len();
    text[at..at + 24].to_owned()
}

#[tokio::test]
async fn live_pages_are_sent_again_only_when_they_change() {
    let api = TestApi::with_pipeline().await;
    let writer = member(&api, "will", Role::Write).await;
    let text = page(&api, Some(&writer), DEMO).await.text;
    let hash = live_hash(&text);
    assert!(hash.bytes().all(|b| b.is_ascii_hexdigit()), "{hash}");
    assert!(!text.contains("hx-trigger=\"every"), "no polling left");

    // What the visitor has is not sent again.
    let mut live = LiveReader::open(&api, Some(&writer), &format!("page={DEMO}&hash={hash}")).await;
    assert_eq!(live.next(Duration::from_millis(300)).await, None);

    // A change made through the API is sent at once, with its new fingerprint.
    let mut changes = api.server.page_changes();
    changes.borrow_and_update();
    api.call_as(
        Some(&writer),
        Method::POST,
        "/api/v1/teams/main/pipelines/demo/pause",
        None,
    )
    .await
    .data();
    assert!(
        changes.has_changed().expect("the server runs"),
        "the pause wakes live pages"
    );
    let (name, id, part) = live
        .next(Duration::from_millis(4500))
        .await
        .expect("an update within 4.5 s (before the 5 s tick)");
    assert_eq!(name, "update");
    assert!(part.contains("paused"), "{part}");
    assert!(part.contains("/unpause\""), "{part}");
    assert!(!part.contains("<!--live-->"), "{part}");
    let text = page(&api, Some(&writer), DEMO).await.text;
    assert_eq!(
        id,
        live_hash(&text),
        "the event's id is the page's fingerprint"
    );

    // A stream with an old fingerprint, or none, gets the part at once.
    let mut fresh =
        LiveReader::open(&api, Some(&writer), &format!("page={DEMO}&hash={hash}")).await;
    let (name, _, again) = fresh
        .next(Duration::from_secs(10))
        .await
        .expect("an update");
    assert_eq!((name.as_str(), again.as_str()), ("update", part.as_str()));

    // The dashboard, a job and the workers are live too.
    for path in ["/", &format!("{DEMO}/jobs/build"), "/workers"] {
        let text = page(&api, Some(&writer), path).await.text;
        assert!(text.contains("<!--live-->"), "{path}: {text}");
        let hash = live_hash(&text);
        let mut live =
            LiveReader::open(&api, Some(&writer), &format!("page={path}&hash={hash}")).await;
        assert_eq!(live.next(Duration::from_millis(200)).await, None, "{path}");
    }
}

#[tokio::test]
async fn a_live_page_that_stops_answering_ends_its_stream() {
    let api = TestApi::with_pipeline().await;
    // The pipeline is private: an anonymous stream is told, and ends.
    let mut live = LiveReader::open(&api, None, &format!("page={DEMO}")).await;
    let (name, _, data) = live.next(Duration::from_secs(10)).await.expect("gone");
    assert_eq!((name.as_str(), data.as_str()), ("gone", "{\"status\":401}"));

    // A session that ends ends its stream.
    let writer = member(&api, "will", Role::Write).await;
    let mut live = LiveReader::open(&api, Some(&writer), &format!("page={DEMO}")).await;
    assert_eq!(
        live.next(Duration::from_secs(10)).await.map(|e| e.0),
        Some("update".to_owned())
    );
    api.call_as(Some(&writer), Method::POST, "/api/v1/logout", None)
        .await;
    api.call(
        Method::POST,
        "/api/v1/teams/main/pipelines/demo/pause",
        None,
    )
    .await
    .data();
    let (name, _, data) = live.next(Duration::from_secs(10)).await.expect("gone");
    assert_eq!((name.as_str(), data.as_str()), ("gone", "{\"status\":401}"));

    // Only pages of the UI are followed.
    for page in [
        "//evil.example/",
        "https://evil.example/",
        "/a b",
        "/api/v1/teams",
        "/live?page=/",
        "/assets/x",
    ] {
        let answer = super::read(
            api.router_oneshot(
                Request::get(format!("/live?page={}", pikoci_core::percent::encode(page)))
                    .body(Body::empty())
                    .expect("request"),
            )
            .await,
        )
        .await;
        assert_eq!(answer.status, StatusCode::BAD_REQUEST, "{page}");
    }
}

#[tokio::test]
async fn a_reconnecting_browser_gets_what_changed_since_its_last_event() {
    let api = TestApi::with_pipeline().await;
    let writer = member(&api, "will", Role::Write).await;
    let current = live_hash(&page(&api, Some(&writer), DEMO).await.text);
    // The browser's `Last-Event-ID` (what it got last) wins over the page's own `hash`.
    let open = |last: &str| {
        Request::get(format!("/live?page={DEMO}&hash=0123456789abcdef01234567"))
            .header(header::HOST, "ci.example:8080")
            .header(header::COOKIE, format!("pikoci_session={writer}"))
            .header("last-event-id", last)
            .body(Body::empty())
            .expect("request")
    };
    let mut live = LiveReader {
        body: api.router_oneshot(open(&current)).await.into_body(),
        buffer: String::new(),
    };
    assert_eq!(live.next(Duration::from_millis(300)).await, None);
    let mut live = LiveReader {
        body: api.router_oneshot(open("stale")).await.into_body(),
        buffer: String::new(),
    };
    let (name, id, _) = live.next(Duration::from_secs(10)).await.expect("an update");
    assert_eq!((name.as_str(), id.as_str()), ("update", current.as_str()));
}

#[tokio::test]
async fn a_deleted_pipeline_and_a_stopping_server_end_their_streams() {
    use http_body_util::BodyExt as _;
    let api = TestApi::with_pipeline().await;
    let writer = member(&api, "will", Role::Write).await;
    let hash = live_hash(&page(&api, Some(&writer), "/").await.text);
    let mut dashboard = LiveReader::open(&api, Some(&writer), &format!("page=/&hash={hash}")).await;
    let mut pipeline = LiveReader::open(&api, Some(&writer), &format!("page={DEMO}")).await;
    assert_eq!(
        pipeline.next(Duration::from_secs(10)).await.map(|e| e.0),
        Some("update".to_owned())
    );
    api.call(Method::DELETE, "/api/v1/teams/main/pipelines/demo", None)
        .await
        .data();
    let (name, _, data) = pipeline.next(Duration::from_secs(10)).await.expect("gone");
    assert_eq!((name.as_str(), data.as_str()), ("gone", "{\"status\":404}"));
    // The dashboard shows the pipeline gone.
    let (name, _, part) = dashboard
        .next(Duration::from_secs(10))
        .await
        .expect("an update");
    assert_eq!(name, "update");
    assert!(!part.contains(DEMO), "{part}");

    api.server.stopping().cancel();
    let end = tokio::time::timeout(Duration::from_secs(10), dashboard.body.frame())
        .await
        .expect("the stream ends within 10 s");
    assert!(end.is_none(), "no more events once the server stops");
}

#[tokio::test]
async fn a_dispatch_round_that_changes_nothing_wakes_no_page() {
    let api = TestApi::with_pipeline().await;
    let mut changes = api.server.page_changes();
    // A pending build and no worker: the first round says why it waits.
    api.pending_build(api.job_id("build").await).await;
    changes.borrow_and_update();
    api.server.dispatch_round(false).await.expect("a round");
    assert!(
        changes.has_changed().expect("the server runs"),
        "a new reason to wait shows"
    );
    changes.borrow_and_update();
    for _ in 0..3 {
        api.server.dispatch_round(false).await.expect("a round");
    }
    assert!(
        !changes.has_changed().expect("the server runs"),
        "the same rounds again change nothing pages show"
    );
}

#[test]
fn changes_pages_cannot_show_wake_none() {
    use crate::api::shown_live;
    for route in [
        "/api/v1/teams/{tc}/pipelines/{pc}/pause",
        "/api/v1/teams/{tc}/pipelines/{pc}/jobs/{jn}/trigger",
        "/api/v1/teams/{tc}/pipelines/{pc}/resources/{rc}/pin",
        "/api/v1/teams/{tc}/pipelines/{pc}",
        "/api/v1/teams/{tc}/members/{user}",
        "/api/v1/admin/import",
    ] {
        assert!(shown_live(route), "{route}");
    }
    for route in [
        "/login",
        "/api/v1/logout",
        "/api/v1/api-tokens/{id}",
        "/api/v1/profile/password",
        "/api/v1/webhooks/{token}",
        "/api/v1/teams/{tc}/pipelines/{pc}/validate",
        "/api/v1/teams/{tc}/pipelines/{pc}/resources/{rc}/check",
        "/api/v1/teams/{tc}/pipelines/{pc}/resources/{rc}/webhook_token",
        "/api/v1/teams/{tc}/worker-token",
        "/api/v1/teams/{tc}/secrets/{name}",
    ] {
        assert!(!shown_live(route), "{route}");
    }
}
