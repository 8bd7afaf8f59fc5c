//! `cargo xtask bench ui`: the web UI's two heaviest pages in headless Chromium, measured by
//! the browser's own timings (Navigation Timing, Paint Timing, Resource Timing):
//!
//! - the pipeline page of a pipeline of 200 jobs (the graph laid out by the server): time to
//!   the first contentful paint, to `DOMContentLoaded` and to `load`, and the page's weight
//!   (the document and its assets, as transferred and decoded);
//! - the build page of a build whose step printed 100,000 lines: the same, then the time from
//!   opening the step to its last line on screen, and the weight of the log it fetched.
//!
//! Each page is opened [`ROUNDS`] times after logging in, so with the assets in the browser's
//! cache (they are served as immutable for a year): what a user sees once any page was open.
//! The median, lowest and highest are reported, never asserted. The server is the release
//! `pikoci` with its embedded worker, in memory.

// A command-line report: printing is its job.
#![allow(clippy::print_stdout, clippy::print_stderr)]

#[path = "../../../tests/support/mod.rs"]
#[allow(unreachable_pub)]
mod support;

use std::fmt::Write as _;

use serde_json::{Value, json};
use support::server::{ADMIN_PASSWORD, ServerProcess};
use support::webdriver::{Browser, Driver};

/// Times each page is opened.
const ROUNDS: usize = 5;
/// Jobs of the big pipeline.
const JOBS: usize = 200;

/// A pipeline of [`JOBS`] jobs in 20 stages of 10: each job of a stage gets the resource
/// `passed` two jobs of the stage before, and one job prints 100,000 lines.
fn pipeline() -> String {
    let mut text =
        String::from("resource \"cron\" \"tick\" {\n  check_interval = \"@every 1h\"\n}\n");
    for n in 0..JOBS {
        let (stage, slot) = (n / 10, n % 10);
        let _ = writeln!(text, "job \"s{stage:02}-j{slot}\" {{");
        if stage == 0 {
            text.push_str("  get \"cron\" \"tick\" {}\n");
        } else {
            let a = format!("s{:02}-j{slot}", stage - 1);
            let b = format!("s{:02}-j{}", stage - 1, (slot + 1) % 10);
            let _ = writeln!(
                text,
                "  get \"cron\" \"tick\" {{\n    passed = [\"{a}\", \"{b}\"]\n  }}"
            );
        }
        text.push_str("  task \"t\" {\n    run \"exec\" {\n      path = \"true\"\n    }\n  }\n}\n");
    }
    text.push_str(
        "job \"long\" {\n  task \"print\" {\n    run \"shell\" {\n      cmd = \"seq 1 100000 | sed 's/^/line /'\"\n    }\n  }\n}\n",
    );
    text
}

/// What the browser measured of the page it shows.
const TIMINGS: &str = r"
const nav = performance.getEntriesByType('navigation')[0];
const paint = performance.getEntriesByName('first-contentful-paint')[0];
const resources = performance.getEntriesByType('resource');
const sum = (key) => resources.reduce((total, r) => total + (r[key] || 0), 0);
return {
  fcp: paint ? paint.startTime : null,
  dcl: nav.domContentLoadedEventEnd,
  load: nav.loadEventEnd,
  doc_transfer: nav.transferSize,
  doc_decoded: nav.decodedBodySize,
  assets_transfer: sum('transferSize'),
  assets_decoded: sum('decodedBodySize'),
  requests: resources.length + 1,
};";

/// `median (lowest to highest)` of the measures that are numbers.
fn spread(values: &[f64]) -> String {
    let mut values: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
    if values.is_empty() {
        return "not measured".to_owned();
    }
    values.sort_by(f64::total_cmp);
    format!(
        "{:>6.1} ms ({:.1} to {:.1})",
        values[values.len() / 2],
        values[0],
        values[values.len() - 1]
    )
}

fn kib(bytes: f64) -> String {
    format!("{:.1} KiB", bytes / 1024.0)
}

/// Opens `url` [`ROUNDS`] times and reports its timings; the last round's measures.
async fn measure(browser: &Browser, name: &str, url: &str) -> Vec<Value> {
    let mut rounds = Vec::with_capacity(ROUNDS);
    for _ in 0..ROUNDS {
        browser.goto(url).await;
        browser
            .wait_for(
                "the page's load",
                "return performance.getEntriesByType('navigation')[0].loadEventEnd > 0",
                json!([]),
            )
            .await;
        rounds.push(browser.run(TIMINGS, json!([])).await);
    }
    let pick = |key: &str| -> Vec<f64> {
        rounds
            .iter()
            .map(|r| r[key].as_f64().unwrap_or(f64::NAN))
            .collect()
    };
    let last = &rounds[rounds.len() - 1];
    println!("{name}");
    for (key, label) in [
        ("fcp", "first contentful paint"),
        ("dcl", "DOMContentLoaded"),
        ("load", "load"),
    ] {
        println!("  {label:<24} {}", spread(&pick(key)));
    }
    println!(
        "  weight                   the page {} ({} as sent); its {} assets {} (from the cache)",
        kib(last["doc_decoded"].as_f64().unwrap_or(0.0)),
        kib(last["doc_transfer"].as_f64().unwrap_or(0.0)),
        last["requests"].as_u64().unwrap_or(1) - 1,
        kib(last["assets_decoded"].as_f64().unwrap_or(0.0)),
    );
    rounds
}

#[tokio::main]
async fn main() {
    let work = tempfile::tempdir().expect("a work directory");
    let config = work.path().join("big.hcl");
    std::fs::write(&config, pipeline()).expect("the pipeline file");
    let server = ServerProcess::start(&[
        "--db-system",
        "mem",
        "--pubsub-system",
        "mem",
        "--run-worker",
        "--work-dir",
        work.path().to_str().expect("a UTF-8 path"),
        "--pipeline-config",
        config.to_str().expect("a UTF-8 path"),
    ]);
    let (status, body) = server
        .post("/teams/main/pipelines/big/jobs/long/trigger", json!({}))
        .await;
    assert_eq!(status, 201, "{body}");
    let done = server
        .wait_finished("/teams/main/pipelines/big/jobs/long/builds/1")
        .await;
    assert_eq!(done["status"], "succeeded", "{done}");
    let base = server.base.clone();

    let driver = Driver::start().await;
    let browser = driver.browser(1280, 900).await;
    browser.goto(&format!("{base}/login")).await;
    browser.fill("input[name=username]", "admin").await;
    browser.fill("input[name=password]", ADMIN_PASSWORD).await;
    browser
        .click("form[action='/login'] button[type=submit]")
        .await;
    browser
        .wait_for(
            "the dashboard",
            "return location.pathname === '/'",
            json!([]),
        )
        .await;

    println!("web UI in headless Chromium, {ROUNDS} visits per page: median (lowest to highest)\n");
    let pipeline = format!("{base}/teams/main/pipelines/big");
    measure(
        &browser,
        &format!("pipeline page, {JOBS} jobs (graph)"),
        &pipeline,
    )
    .await;
    let nodes = browser
        .run(
            "return document.querySelectorAll('svg.graph .node').length",
            json!([]),
        )
        .await;
    println!("  nodes drawn              {nodes}");
    measure(
        &browser,
        &format!("pipeline page, {JOBS} jobs (list)"),
        &format!("{pipeline}?view=list"),
    )
    .await;

    let build = format!("{pipeline}/jobs/long/builds/1");
    measure(
        &browser,
        "build page, a step of 100,000 lines (closed)",
        &build,
    )
    .await;
    // Opening the step: the time to its last line on screen, measured in the page.
    let mut opened = Vec::with_capacity(ROUNDS);
    let mut fetched = 0.0;
    for _ in 0..ROUNDS {
        browser.goto(&build).await;
        browser.find("#step-0 > summary").await;
        browser
            .run(
                "window.pikociOpened = null;
                 const started = performance.now();
                 new MutationObserver((_, observer) => {
                   if (document.getElementById('s0-L100000')) { window.pikociOpened = performance.now() - started; observer.disconnect(); }
                 }).observe(document.getElementById('step-0'), { childList: true, subtree: true });
                 document.querySelector('#step-0 > summary').click();",
                json!([]),
            )
            .await;
        let took = browser
            .wait_for(
                "the log's last line",
                "return window.pikociOpened",
                json!([]),
            )
            .await;
        opened.push(took.as_f64().unwrap_or(f64::NAN));
        fetched = browser
            .run(
                "const log = performance.getEntriesByType('resource').filter(r => r.name.includes('/steps/0/log')); return log.length ? log[log.length - 1].decodedBodySize : 0;",
                json!([]),
            )
            .await
            .as_f64()
            .unwrap_or(0.0);
    }
    let lines = browser
        .run(
            "return document.querySelectorAll('#step-0 .log .line').length",
            json!([]),
        )
        .await;
    println!("build page, opening the step of 100,000 lines");
    println!("  to its last line shown   {}", spread(&opened));
    println!(
        "  log fetched              {} for {lines} lines (the last page of 1,000)",
        kib(fetched)
    );
    drop(browser);
    drop(driver);
    server.stop();
}
