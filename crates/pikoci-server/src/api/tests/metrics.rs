//! `GET /metrics`: Prometheus's text format, with the state read from the store and the
//! requests counted by route.

use std::collections::BTreeMap;

use axum::http::{StatusCode, header};
use chrono::Utc;
use pikoci_core::store::WorkerHeartbeat;

use super::TestApi;

/// One sample of the text format: `name{label="value",...} value`.
#[derive(Debug)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// Parses the text format (version 0.0.4), failing on a line that does not fit it or on a
/// sample of a family with no `# TYPE`.
fn parse(text: &str) -> Vec<Sample> {
    let mut types: BTreeMap<String, String> = BTreeMap::new();
    let mut samples = Vec::new();
    for line in text.lines().filter(|line| !line.is_empty()) {
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect("# TYPE name kind");
            assert!(
                ["counter", "gauge", "histogram", "summary", "untyped"].contains(&kind),
                "unknown type in {line:?}"
            );
            types.insert(name.to_owned(), kind.to_owned());
            continue;
        }
        if line.starts_with("# HELP ") {
            continue;
        }
        assert!(
            !line.starts_with('#'),
            "a comment that is neither HELP nor TYPE: {line:?}"
        );
        let (series, value) = line.rsplit_once(' ').expect("a sample has a value");
        let value: f64 = value
            .parse()
            .unwrap_or_else(|_| panic!("not a number in {line:?}"));
        let (name, labels) = match series.split_once('{') {
            Some((name, labels)) => (name, labels.strip_suffix('}').expect("labels end with }")),
            None => (series, ""),
        };
        let labels = labels
            .split("\",")
            .filter(|pair| !pair.is_empty())
            .map(|pair| {
                let (key, value) = pair.split_once("=\"").expect("label=\"value\"");
                (key.to_owned(), value.trim_end_matches('"').to_owned())
            })
            .collect();
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|suffix| {
                name.strip_suffix(suffix)
                    .filter(|family| types.get(*family).is_some_and(|kind| kind == "histogram"))
            })
            .unwrap_or(name);
        assert!(types.contains_key(family), "{name} has no # TYPE before it");
        assert!(
            name.starts_with("pikoci_"),
            "{name} lacks the pikoci_ prefix"
        );
        samples.push(Sample {
            name: name.to_owned(),
            labels,
            value,
        });
    }
    samples
}

/// The value of the sample `name` with exactly `labels`.
fn value(samples: &[Sample], name: &str, labels: &[(&str, &str)]) -> f64 {
    let labels: BTreeMap<String, String> = labels
        .iter()
        .map(|(key, value)| ((*key).to_owned(), (*value).to_owned()))
        .collect();
    samples
        .iter()
        .find(|sample| sample.name == name && sample.labels == labels)
        .unwrap_or_else(|| panic!("no {name} {labels:?} in {samples:#?}"))
        .value
}

#[tokio::test]
async fn metrics_report_the_state_and_the_requests_in_prometheus_text() {
    let api = TestApi::with_pipeline().await;
    // Started first: its claim takes the oldest pending build.
    api.started_build(api.job_id("build").await).await;
    api.pending_build(api.job_id("deploy").await).await;
    for (worker, draining) in [("w1", false), ("w2", true)] {
        api.store()
            .record_heartbeat(&WorkerHeartbeat {
                worker_id: worker.to_owned(),
                team_id: None,
                tags: Vec::new(),
                exclusive: false,
                draining,
                slots: 2,
                running: 0,
                version: "test".to_owned(),
                hostname: "here".to_owned(),
                sealing_key: None,
                at: Utc::now(),
            })
            .await
            .expect("heartbeat");
    }
    assert_eq!(api.get("/api/v1/teams").await.status, StatusCode::OK);
    assert_eq!(
        api.get("/api/v1/teams/main/pipelines/nope").await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(api.get("/no/such/path").await.status, StatusCode::NOT_FOUND);
    let wrong_method = api
        .call(axum::http::Method::DELETE, "/api/v1/teams", None)
        .await;
    assert_eq!(wrong_method.status, StatusCode::METHOD_NOT_ALLOWED);

    let answer = api.get("/metrics").await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    assert_eq!(
        answer.response_headers[header::CONTENT_TYPE],
        "text/plain; version=0.0.4; charset=utf-8"
    );
    let samples = parse(&answer.text);

    let builds = |job, status| {
        value(
            &samples,
            "pikoci_builds",
            &[
                ("team", "main"),
                ("pipeline", "demo"),
                ("job", job),
                ("status", status),
            ],
        )
    };
    assert_eq!(builds("deploy", "pending"), 1.0);
    assert_eq!(builds("build", "started"), 1.0);
    assert_eq!(value(&samples, "pikoci_builds_pending", &[]), 1.0);
    // The test builds were created on 2026-01-01.
    assert!(value(&samples, "pikoci_oldest_pending_build_age_seconds", &[]) > 86_400.0);
    assert_eq!(
        value(&samples, "pikoci_workers", &[("state", "running")]),
        1.0
    );
    assert_eq!(
        value(&samples, "pikoci_workers", &[("state", "draining")]),
        1.0
    );
    assert_eq!(value(&samples, "pikoci_workers", &[("state", "lost")]), 0.0);
    let checks: f64 = ["due", "running"]
        .iter()
        .map(|state| value(&samples, "pikoci_checks", &[("state", state)]))
        .sum();
    assert_eq!(
        checks, 1.0,
        "the pipeline's one resource is due or being checked"
    );
    value(&samples, "pikoci_checks_lagging", &[]);
    assert_eq!(value(&samples, "pikoci_database_up", &[]), 1.0);
    // The started build has not finished: nothing counted yet.
    assert!(
        !samples
            .iter()
            .any(|sample| sample.name == "pikoci_builds_finished_total")
    );

    let requests = |route, status| {
        value(
            &samples,
            "pikoci_http_requests_total",
            &[("method", "GET"), ("route", route), ("status", status)],
        )
    };
    assert_eq!(requests("/api/v1/teams", "200"), 1.0);
    assert_eq!(requests("/api/v1/teams/{tc}/pipelines/{pc}", "404"), 1.0);
    assert_eq!(requests("unmatched", "404"), 1.0);
    assert_eq!(
        value(
            &samples,
            "pikoci_http_requests_total",
            &[
                ("method", "DELETE"),
                ("route", "unmatched"),
                ("status", "405")
            ]
        ),
        1.0
    );
    assert_eq!(
        value(
            &samples,
            "pikoci_http_request_duration_seconds_count",
            &[("method", "GET"), ("route", "/api/v1/teams")]
        ),
        1.0
    );
    assert!(value(&samples, "pikoci_database_statements_total", &[]) > 0.0);
    assert_eq!(value(&samples, "pikoci_database_errors_total", &[]), 0.0);
    assert_eq!(value(&samples, "pikoci_log_ingested_bytes_total", &[]), 0.0);

    // The scrape itself is counted, and a second one sees it.
    let again = parse(&api.get("/metrics").await.text);
    assert_eq!(
        value(
            &again,
            "pikoci_http_requests_total",
            &[("method", "GET"), ("route", "/metrics"), ("status", "200")]
        ),
        1.0
    );
}
