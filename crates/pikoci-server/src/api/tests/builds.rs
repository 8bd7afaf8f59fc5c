//! Builds and their logs.

use axum::http::{StatusCode, header};
use pikoci_core::store::{BuildStatus, StepStatus};
use serde_json::{Value, json};

use super::TestApi;

const BUILDS: &str = "/api/v1/teams/main/pipelines/demo/jobs/build/builds";

#[tokio::test]
async fn builds_are_listed_newest_first_in_pages_and_by_status() {
    let api = TestApi::with_pipeline().await;
    let job = api.job_id("build").await;
    let first = api.started_build(job).await;
    api.transition(&first, BuildStatus::Started, BuildStatus::Succeeded, 30)
        .await;
    let second = api.started_build(job).await;
    api.transition(&second, BuildStatus::Started, BuildStatus::Failed, 30)
        .await;
    api.pending_build(job).await;

    let page = api.get(BUILDS).await;
    let json = page.json();
    let numbers: Vec<Value> = json["data"]
        .as_array()
        .expect("list")
        .iter()
        .map(|b| b["number"].clone())
        .collect();
    assert_eq!(numbers, [json!("3"), json!("2"), json!("1")]);
    assert_eq!(
        json["meta"],
        json!({"has_more": false, "next_before": null})
    );
    assert!(
        json["data"][0].get("steps").is_none(),
        "summaries have no steps"
    );

    let page = api.get(&format!("{BUILDS}?limit=2")).await.json();
    assert_eq!(page["data"].as_array().map(Vec::len), Some(2));
    assert_eq!(page["meta"]["has_more"], true);
    let before = page["meta"]["next_before"].as_i64().expect("next_before");
    assert_eq!(before, second.id.0);
    let rest = api
        .get(&format!("{BUILDS}?limit=2&before={before}"))
        .await
        .json();
    assert_eq!(rest["data"][0]["number"], "1");
    assert_eq!(rest["meta"]["has_more"], false);

    let done = api
        .get(&format!("{BUILDS}?status=succeeded,failed"))
        .await
        .data();
    assert_eq!(done.as_array().map(Vec::len), Some(2));
    let message = api
        .get(&format!("{BUILDS}?status=running"))
        .await
        .error(StatusCode::BAD_REQUEST, "invalid_input");
    assert!(
        message.contains("unknown build status \"running\""),
        "{message}"
    );
    for query in ["limit=0", "limit=501", "limit=x", "colour=red"] {
        api.get(&format!("{BUILDS}?{query}"))
            .await
            .error(StatusCode::BAD_REQUEST, "invalid_input");
    }
}

#[tokio::test]
async fn a_build_shows_its_steps_of_every_attempt() {
    let api = TestApi::with_pipeline().await;
    let build = api.started_build(api.job_id("build").await).await;
    api.step(&build, 1, "compile", StepStatus::Started).await;
    let view = api.get(&format!("{BUILDS}/1")).await.data();
    assert_eq!(view["id"], build.id.0);
    assert_eq!(view["team"], "main");
    assert_eq!(view["pipeline"], "demo");
    assert_eq!(view["job"], "build");
    assert_eq!(view["number"], "1");
    assert_eq!(view["retry_of"], Value::Null);
    assert_eq!(view["status"], "started");
    assert_eq!(view["attempt"], 1);
    assert_eq!(view["worker"], "w1");
    assert_eq!(view["inputs"], json!({"environment": "staging"}));
    assert_eq!(view["started_at"], "2026-01-01T00:00:20.000Z");
    assert_eq!(view["duration_ms"], Value::Null);
    assert_eq!(view["versions"], json!([]));
    assert!(view.get("pending_reason").is_none());
    let steps = view["steps"].as_array().expect("steps");
    assert_eq!(steps.len(), 2);
    assert_eq!(
        steps[0],
        json!({
            "attempt": 1, "index": 0, "parent": null, "name": "tick", "type": "get",
            "status": "succeeded",
            "started_at": "2026-01-01T00:00:20.000Z", "finished_at": "2026-01-01T00:00:22.000Z",
            "duration_ms": 2000
        })
    );
    assert_eq!(steps[1]["status"], "started");

    let finished = api
        .transition(&build, BuildStatus::Started, BuildStatus::Succeeded, 50)
        .await;
    let view = api.get(&format!("{BUILDS}/1")).await.data();
    assert_eq!(view["status"], "succeeded");
    assert_eq!(view["duration_ms"], 30_000);
    assert_eq!(finished.number.to_string(), "1");

    let retry = api
        .store()
        .retry_build(build.id, super::at(60))
        .await
        .expect("retry");
    assert_eq!(retry.number.to_string(), "1.1");
    // (A pending build would show its pending reason, which the dispatcher gives.)
    api.transition(&retry, BuildStatus::Pending, BuildStatus::Cancelled, 61)
        .await;
    let view = api.get(&format!("{BUILDS}/1.1")).await.data();
    assert_eq!(view["retry_of"], "1");
    assert_eq!(view["status"], "cancelled");
    assert_eq!(view["steps"], json!([]));

    api.get(&format!("{BUILDS}/9"))
        .await
        .error(StatusCode::NOT_FOUND, "not_found");
}

#[tokio::test]
async fn logs_come_as_text_or_json_in_step_and_seq_order() {
    let api = TestApi::with_pipeline().await;
    let build = api.started_build(api.job_id("build").await).await;
    // Stored out of order, as a redelivery can do.
    api.chunks(
        &build,
        &[
            (1, 0, "compile 1\n"),
            (0, 1, "tick 2\n"),
            (0, 0, "tick 1\n"),
            (1, 1, "compile 2\n"),
        ],
    )
    .await;
    let text = api.get(&format!("{BUILDS}/1/logs")).await;
    assert_eq!(text.status, StatusCode::OK);
    assert_eq!(
        text.response_headers[header::CONTENT_TYPE],
        "text/plain; charset=utf-8"
    );
    assert_eq!(text.text, "tick 1\ntick 2\ncompile 1\ncompile 2\n");

    let json = api
        .get(&format!("{BUILDS}/1/logs?format=json"))
        .await
        .json();
    assert_eq!(json["meta"], json!({"attempt": 1}));
    assert_eq!(
        json["data"][1],
        json!({"attempt": 1, "step": 0, "seq": 1, "text": "tick 2\n", "created_at": "2026-01-01T00:00:21.000Z"})
    );
    assert_eq!(json["data"].as_array().map(Vec::len), Some(4));

    let other = api.get(&format!("{BUILDS}/1/logs?attempt=2")).await;
    assert_eq!(other.text, "");
    let empty = api
        .get(&format!("{BUILDS}/1/logs?attempt=2&format=json"))
        .await
        .json();
    assert_eq!(empty, json!({"data": [], "meta": {"attempt": 2}}));
    api.get(&format!("{BUILDS}/1/logs?format=html"))
        .await
        .error(StatusCode::BAD_REQUEST, "invalid_input");
}

#[tokio::test]
async fn long_logs_are_sent_whole_and_in_order_page_after_page() {
    let api = TestApi::with_pipeline().await;
    let build = api.started_build(api.job_id("build").await).await;
    // Three steps of 450 chunks (several store pages each), stored newest step first and
    // each step's chunks in reverse.
    let lines: Vec<(u32, u64, String)> = (0..3u32)
        .rev()
        .flat_map(|step| {
            (0..450u64)
                .rev()
                .map(move |seq| (step, seq, format!("{step}:{seq}\n")))
        })
        .collect();
    let chunks: Vec<(u32, u64, &str)> = lines
        .iter()
        .map(|(step, seq, text)| (*step, *seq, text.as_str()))
        .collect();
    api.chunks(&build, &chunks).await;
    let expected: String = (0..3u32)
        .flat_map(|step| (0..450u64).map(move |seq| format!("{step}:{seq}\n")))
        .collect();
    let text = api.get(&format!("{BUILDS}/1/logs")).await;
    assert_eq!(text.status, StatusCode::OK);
    assert!(text.text == expected, "the log is not whole and in order");

    let json = api
        .get(&format!("{BUILDS}/1/logs?format=json"))
        .await
        .json();
    let data = json["data"].as_array().expect("chunks");
    assert_eq!(data.len(), 1350);
    let joined: String = data
        .iter()
        .map(|chunk| chunk["text"].as_str().expect("text"))
        .collect();
    assert!(joined == expected, "the JSON log is not whole and in order");
    assert_eq!(json["meta"], json!({"attempt": 1}));
}

#[tokio::test]
async fn a_report_holds_the_build_and_the_output_of_every_attempt() {
    use pikoci_core::store::{ClaimRequest, NewLogChunk, TeamScope};

    let api = TestApi::with_pipeline().await;
    let build = api.started_build(api.job_id("build").await).await;
    api.chunks(&build, &[(0, 0, "first try\n")]).await;
    // The worker is lost: its lease lapses, the build runs again as attempt 2.
    api.store()
        .requeue_expired(super::at(2000), super::at(2000), 3)
        .await
        .expect("requeue");
    let again = api
        .store()
        .claim_next_pending(&ClaimRequest {
            worker_id: "w2".to_owned(),
            worker_tags: Vec::new(),
            teams: TeamScope::All,
            exclusive: false,
            lease_until: super::at(9000),
        })
        .await
        .expect("claim")
        .expect("the requeued build");
    // (Attempts in between, without output, are in the report as nothing.)
    let attempt = again.dispatch.attempt;
    assert!(attempt > 1, "{again:?}");
    for (step, seq, text) in [(1, 0, "second try\n"), (0, 0, "ticked\n")] {
        api.store()
            .append_log_chunks(&[NewLogChunk {
                build_id: build.id,
                attempt,
                step,
                seq,
                data: text.as_bytes().to_vec(),
                created_at: super::at(2001),
            }])
            .await
            .expect("chunk");
    }

    let report = api.get(&format!("{BUILDS}/1/report")).await;
    assert_eq!(report.status, StatusCode::OK);
    assert_eq!(
        report.response_headers[header::CONTENT_DISPOSITION],
        "attachment; filename=\"build-report-1.json\""
    );
    assert_eq!(
        report.response_headers[header::CONTENT_TYPE],
        "application/json"
    );
    let report = report.json();
    assert_eq!(report["pikoci_version"], env!("CARGO_PKG_VERSION"));
    assert!(
        report["generated_at"]
            .as_str()
            .is_some_and(|t| t.ends_with('Z'))
    );
    assert_eq!(report["build"]["number"], "1");
    assert_eq!(report["build"]["attempt"], attempt);
    assert_eq!(report["build"]["worker"], "w2");
    assert_eq!(report["build"]["steps"][0]["name"], "tick");
    let logs: Vec<(u32, u64, &str)> = report["logs"]
        .as_array()
        .expect("logs")
        .iter()
        .map(|chunk| {
            (
                u32::try_from(chunk["attempt"].as_u64().expect("attempt")).expect("an attempt"),
                chunk["step"].as_u64().expect("step"),
                chunk["text"].as_str().expect("text"),
            )
        })
        .collect();
    assert_eq!(
        logs,
        [
            (1, 0, "first try\n"),
            (attempt, 0, "ticked\n"),
            (attempt, 1, "second try\n")
        ]
    );

    // A build without output has an empty list, and an unknown build is a 404.
    api.pending_build(api.job_id("build").await).await;
    let quiet = api.get(&format!("{BUILDS}/2/report")).await.json();
    assert_eq!(quiet["logs"], json!([]));
    assert_eq!(quiet["build"]["status"], "pending");
    api.get(&format!("{BUILDS}/9/report"))
        .await
        .error(StatusCode::NOT_FOUND, "not_found");
}

#[tokio::test]
async fn a_pipelines_builds_are_listed_by_job_and_time() {
    let api = TestApi::with_pipeline().await;
    let build = api.job_id("build").await;
    let deploy = api.job_id("deploy").await;
    api.pending_build(build).await;
    api.pending_build(deploy).await;
    const PIPELINE_BUILDS: &str = "/api/v1/teams/main/pipelines/demo/builds";
    let all = api.get(PIPELINE_BUILDS).await.data();
    let jobs: Vec<&str> = all
        .as_array()
        .unwrap()
        .iter()
        .map(|b| b["job"].as_str().unwrap())
        .collect();
    assert_eq!(jobs, ["deploy", "build"]);
    let of_deploy = api
        .get(&format!("{PIPELINE_BUILDS}?job=deploy"))
        .await
        .data();
    assert_eq!(of_deploy.as_array().map(Vec::len), Some(1));
    assert_eq!(of_deploy[0]["job"], "deploy");
    api.get(&format!("{PIPELINE_BUILDS}?job=nope"))
        .await
        .error(StatusCode::NOT_FOUND, "not_found");
    // The builds were created at 00:00:10 on the test clock's day.
    let created = all[0]["created_at"].as_str().unwrap().to_owned();
    let since = |at: &str| format!("{PIPELINE_BUILDS}?since={}", at.replace('+', "%2B"));
    assert_eq!(
        api.get(&since(&created))
            .await
            .data()
            .as_array()
            .map(Vec::len),
        Some(2)
    );
    assert_eq!(
        api.get(&since("2999-01-01T00:00:00Z")).await.data(),
        json!([])
    );
    let message = api
        .get(&format!("{PIPELINE_BUILDS}?since=yesterday"))
        .await
        .error(StatusCode::BAD_REQUEST, "invalid_input");
    assert!(message.contains("RFC 3339"), "{message}");
    let message = api
        .get(&format!("{BUILDS}?job=deploy"))
        .await
        .error(StatusCode::BAD_REQUEST, "invalid_input");
    assert!(message.contains("one job's already"), "{message}");
}

#[tokio::test]
async fn a_failed_build_is_marked_as_a_warning() {
    let api = TestApi::with_pipeline().await;
    let build = api.started_build(api.job_id("build").await).await;
    let warning = format!("{BUILDS}/1/warning");
    let message = api
        .post(&warning, json!({}))
        .await
        .error(StatusCode::CONFLICT, "conflict");
    assert!(message.contains("only a failed build"), "{message}");
    let failed = api
        .transition(&build, BuildStatus::Started, BuildStatus::Failed, 40)
        .await;
    let marked = api.post(&warning, json!({})).await.data();
    assert_eq!(marked["status"], "warning");
    let view = api.get(&format!("{BUILDS}/1")).await.data();
    assert_eq!(view["status"], "warning");
    // Its times are those of its run.
    assert_eq!(
        api.store()
            .build(build.id)
            .await
            .expect("build")
            .finished_at,
        failed.finished_at
    );
}
