//! The build event stream (Server-Sent Events): catch-up, order, resumption, and following a
//! build live (with wake-ups sent by the test instead of the service).

use std::collections::BTreeMap;
use std::time::Duration;

use axum::body::Body;
use axum::http::{Request, StatusCode, header};
use axum::response::IntoResponse;
use axum::response::sse::Sse;
use http_body_util::BodyExt;
use pikoci_core::store::{Build, BuildId, BuildStatus, StepStatus};
use serde_json::{Value, json};
use tokio::sync::broadcast;

use super::super::events::{BuildEvents, OwnedPlace, Position};
use super::{TestApi, read};

const EVENTS: &str = "/api/v1/teams/main/pipelines/demo/jobs/build/builds/1/events";

/// One parsed event.
#[derive(Debug, Clone, PartialEq)]
struct Sent {
    name: String,
    id: Option<String>,
    data: Value,
}

/// Parses an event stream's text (keep-alive comments skipped).
fn parse(text: &str) -> Vec<Sent> {
    text.split("\n\n")
        .filter_map(|block| {
            let (mut name, mut id, mut data) = (None, None, String::new());
            for line in block.lines() {
                if let Some(value) = line.strip_prefix("event: ") {
                    name = Some(value.to_owned());
                } else if let Some(value) = line.strip_prefix("id: ") {
                    id = Some(value.to_owned());
                } else if let Some(value) = line.strip_prefix("data: ") {
                    data.push_str(value);
                }
            }
            let name = name?;
            let data = serde_json::from_str(&data)
                .unwrap_or_else(|error| panic!("event data is not JSON ({error}): {data}"));
            Some(Sent { name, id, data })
        })
        .collect()
}

/// `(step, seq, text)` of the log events.
fn logs(events: &[Sent]) -> Vec<(u64, u64, String)> {
    events
        .iter()
        .filter(|e| e.name == "log")
        .map(|e| {
            (
                e.data["step"].as_u64().expect("step"),
                e.data["seq"].as_u64().expect("seq"),
                e.data["text"].as_str().expect("text").to_owned(),
            )
        })
        .collect()
}

/// Asserts that each step's chunks come in seq order from 0, once each.
fn assert_in_order(logs: &[(u64, u64, String)]) {
    let mut next: BTreeMap<u64, u64> = BTreeMap::new();
    for (step, seq, _) in logs {
        let expected = next.entry(*step).or_default();
        assert_eq!(seq, expected, "step {step} out of order: {logs:?}");
        *expected += 1;
    }
}

/// A finished build of job `build` whose chunks were stored out of order.
async fn finished_build(api: &TestApi) -> Build {
    let build = api.started_build(api.job_id("build").await).await;
    api.chunks(
        &build,
        &[
            (0, 0, "tick 0\n"),
            (1, 1, "compile 1\n"),
            (0, 2, "tick 2\n"),
            (1, 0, "compile 0\n"),
            (0, 1, "tick 1\n"),
            (1, 2, "compile 2\n"),
            (0, 3, "tick 3\n"),
        ],
    )
    .await;
    api.step(&build, 1, "compile", StepStatus::Failed).await;
    api.transition(&build, BuildStatus::Started, BuildStatus::Failed, 40)
        .await
}

async fn stream(api: &TestApi, last_event_id: Option<&str>) -> (StatusCode, String) {
    let mut request = Request::get(EVENTS);
    if let Some(id) = last_event_id {
        request = request.header("last-event-id", id);
    }
    let response = api
        .send(request.body(Body::empty()).expect("request"))
        .await;
    let answer = read(response).await;
    if answer.status == StatusCode::OK {
        assert_eq!(
            answer.response_headers[header::CONTENT_TYPE],
            "text/event-stream"
        );
    }
    (answer.status, answer.text)
}

#[tokio::test]
async fn a_finished_build_is_caught_up_in_order_then_ended() {
    let api = TestApi::with_pipeline().await;
    finished_build(&api).await;
    let (status, text) = stream(&api, None).await;
    assert_eq!(status, StatusCode::OK, "{text}");
    let events = parse(&text);
    assert_eq!(events[0].name, "status");
    assert_eq!(events[0].id, None);
    assert_eq!(events[0].data["status"], "failed");
    assert_eq!(events[0].data["steps"][1]["status"], "failed");
    let last = events.last().expect("events");
    assert_eq!(last.name, "end");
    assert_eq!(last.data, json!({"status": "failed"}));
    let logs = logs(&events);
    assert_eq!(logs.len(), 7);
    assert_in_order(&logs);
    let tick: String = logs
        .iter()
        .filter(|(step, _, _)| *step == 0)
        .map(|(_, _, text)| text.as_str())
        .collect();
    assert_eq!(tick, "tick 0\ntick 1\ntick 2\ntick 3\n");
    assert!(
        events
            .iter()
            .filter(|e| e.name == "log")
            .all(|e| e.id.is_some())
    );
    assert_eq!(events.iter().filter(|e| e.name == "status").count(), 1);
}

#[tokio::test]
async fn a_stream_resumes_after_any_event_without_loss_or_repeat() {
    let api = TestApi::with_pipeline().await;
    finished_build(&api).await;
    let all = parse(&stream(&api, None).await.1);
    let all_logs = logs(&all);
    let ids: Vec<String> = all.iter().filter_map(|e| e.id.clone()).collect();
    assert_eq!(ids.len(), all_logs.len());
    for (index, id) in ids.iter().enumerate() {
        let (status, text) = stream(&api, Some(id)).await;
        assert_eq!(status, StatusCode::OK, "{text}");
        let resumed = parse(&text);
        assert_eq!(
            resumed[0].name, "status",
            "a resumed stream starts with the status"
        );
        assert_eq!(resumed.last().map(|e| e.name.as_str()), Some("end"));
        let mut seen = all_logs[..=index].to_vec();
        seen.extend(logs(&resumed));
        assert_in_order(&seen);
        let mut sorted = seen.clone();
        sorted.sort();
        let mut expected = all_logs.clone();
        expected.sort();
        assert_eq!(sorted, expected, "resumed after {id}");
    }
}

#[tokio::test]
async fn a_bad_last_event_id_is_refused() {
    let api = TestApi::with_pipeline().await;
    finished_build(&api).await;
    for id in ["x", "3/1.0", "3/1.0.2/1.0.3", "-/a.b.c"] {
        let (status, text) = stream(&api, Some(id)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{id}: {text}");
        assert!(text.contains("invalid Last-Event-ID"), "{text}");
    }
}

#[test]
fn positions_round_trip_through_event_ids() {
    for id in ["-", "12", "12/1.0.3", "-/1.0.3/1.2.1/2.0.7"] {
        assert_eq!(Position::parse(id).expect(id).id(), id);
    }
    assert!(Position::parse("").is_err());
}

/// Reads events one by one from a stream that stays open.
struct Reader {
    body: Body,
    buffer: String,
}

impl Reader {
    fn new(events: BuildEvents) -> Reader {
        Reader {
            body: Sse::new(events.into_stream()).into_response().into_body(),
            buffer: String::new(),
        }
    }

    /// The next event; `None` when the stream closed.
    async fn next(&mut self) -> Option<Sent> {
        loop {
            if let Some(end) = self.buffer.find("\n\n") {
                let block: String = self.buffer.drain(..end + 2).collect();
                if let Some(event) = parse(&block).pop() {
                    return Some(event);
                }
                continue;
            }
            let frame = tokio::time::timeout(Duration::from_secs(20), self.body.frame())
                .await
                .expect("an event within 20 s")?
                .expect("frame");
            if let Ok(data) = frame.into_data() {
                self.buffer.push_str(&String::from_utf8_lossy(&data));
            }
        }
    }
}

/// A stream of `build`'s events woken by `updates`, reading every 50 ms or when woken.
fn live(
    api: &TestApi,
    build: &Build,
    updates: broadcast::Receiver<BuildId>,
    gap_grace: Duration,
) -> Reader {
    let place = OwnedPlace {
        team: "main".to_owned(),
        pipeline: "demo".to_owned(),
        job: "build".to_owned(),
        resources: Vec::new(),
    };
    let events = BuildEvents::new(
        api.server.clone(),
        build.id,
        place,
        Position::default(),
        Box::new(move |_: &crate::Server| updates),
    )
    .with_timings(Duration::from_millis(50), gap_grace);
    Reader::new(events)
}

#[tokio::test]
async fn a_running_build_is_followed_live_and_held_back_chunks_wait_for_their_turn() {
    let api = TestApi::with_pipeline().await;
    let build = api.started_build(api.job_id("build").await).await;
    let (wake, updates) = broadcast::channel(16);
    let mut reader = live(&api, &build, updates, Duration::from_secs(600));
    let status = reader.next().await.expect("status");
    assert_eq!(
        (status.name.as_str(), &status.data["status"]),
        ("status", &json!("started"))
    );

    api.chunks(&build, &[(0, 0, "a\n")]).await;
    wake.send(build.id).expect("wake");
    let first = reader.next().await.expect("log");
    assert_eq!(first.data["text"], "a\n");

    // Seq 2 arrives before seq 1: nothing is sent until seq 1 is stored.
    api.chunks(&build, &[(0, 2, "c\n")]).await;
    wake.send(build.id).expect("wake");
    api.step(&build, 1, "compile", StepStatus::Started).await;
    let status = reader.next().await.expect("status");
    assert_eq!(
        status.name, "status",
        "the new step is announced, seq 2 is held: {status:?}"
    );
    assert_eq!(status.data["steps"][1]["name"], "compile");
    api.chunks(&build, &[(0, 1, "b\n")]).await;
    wake.send(build.id).expect("wake");
    let second = reader.next().await.expect("log");
    let third = reader.next().await.expect("log");
    assert_eq!(
        (&second.data["seq"], &third.data["seq"]),
        (&json!(1), &json!(2))
    );
    assert_eq!(third.data["text"], "c\n");

    api.step(&build, 1, "compile", StepStatus::Succeeded).await;
    api.transition(&build, BuildStatus::Started, BuildStatus::Succeeded, 40)
        .await;
    wake.send(build.id).expect("wake");
    let status = reader.next().await.expect("status");
    assert_eq!(status.data["status"], "succeeded");
    let end = reader.next().await.expect("end");
    assert_eq!(end.name, "end");
    assert!(reader.next().await.is_none(), "the stream closes after end");
}

#[tokio::test]
async fn a_gap_that_never_fills_is_skipped_after_the_grace() {
    let api = TestApi::with_pipeline().await;
    let build = api.started_build(api.job_id("build").await).await;
    api.chunks(&build, &[(0, 0, "a\n"), (0, 2, "c\n")]).await;
    let build = api
        .transition(&build, BuildStatus::Started, BuildStatus::Succeeded, 40)
        .await;
    // The updates channel closes at once: the stream goes on with its tick alone.
    let (_, updates) = broadcast::channel(1);
    let mut reader = live(&api, &build, updates, Duration::from_millis(200));
    let mut names = Vec::new();
    let mut texts = Vec::new();
    while let Some(event) = reader.next().await {
        if event.name == "log" {
            texts.push(event.data["text"].as_str().unwrap_or_default().to_owned());
        }
        names.push(event.name);
    }
    assert_eq!(names, ["status", "log", "log", "end"]);
    assert_eq!(texts, ["a\n", "c\n"]);
}
