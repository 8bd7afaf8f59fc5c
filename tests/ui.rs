//! The web UI in a real headless Chromium (`cargo xtask it ui`), against a real `pikoci
//! server` with its worker: log in, look at the pipeline, see it and the dashboard follow a
//! pause live, trigger a job with an input and watch its coloured log arrive live, open a
//! 100,000-line log and search it, pin a version with a comment, approve a build, and see the
//! pipeline anonymously once it is public. Every step saves a screenshot under
//! `PIKOCI_SCREENSHOTS` (the target directory's `ui-screenshots/`).

mod support;

use serde_json::{Value, json};
use support::server::{ADMIN_PASSWORD, ServerProcess};
use support::webdriver::{Browser, Driver};

const PIPELINE: &str = r#"
resource "cron" "tick" {
  check_interval = "@every 1h"
}

job "colours" {
  get "cron" "tick" {}
  input "greeting" {
    type    = "string"
    default = "hello"
  }
  task "paint" {
    run "shell" {
      cmd = "printf '\\033[1;31mred %s\\033[0m\\n' \"$INPUT_greeting\"; sleep 3; printf '\\033[38;5;208morange\\033[0m done\\n'"
    }
  }
}

job "long" {
  task "print" {
    run "shell" {
      cmd = "seq 1 100000 | sed 's/^/line /'"
    }
  }
}

job "gate" {
  approve "ship it" {}
  get "cron" "tick" {
    passed = ["colours"]
  }
  task "ship" {
    run "shell" {
      cmd = "echo shipped"
    }
  }
}
"#;

const DEMO: &str = "/teams/main/pipelines/demo";

/// A script's first statement: `paint`, the step of that name on a build page.
const PAINT: &str = "const paint = Array.from(document.querySelectorAll('details.step')).find(d => d.querySelector('.name').textContent === 'paint');";

/// Whether an element matching `css` holds `text`, as a script for [`Browser::wait_for`].
const HOLDS: &str = "return Array.from(document.querySelectorAll(arguments[0])).some(e => e.textContent.includes(arguments[1]));";

async fn log_in(browser: &Browser, base: &str) {
    browser.goto(&format!("{base}/login?next={DEMO}")).await;
    browser.fill("input[name=username]", "admin").await;
    browser.fill("input[name=password]", ADMIN_PASSWORD).await;
    browser.screenshot("login").await;
    browser
        .click("form[action='/login'] button[type=submit]")
        .await;
    browser
        .wait_for(
            "the pipeline page",
            "return document.querySelector('svg.graph')",
            json!([]),
        )
        .await;
}

/// The page open in `browser` follows the pipeline paused then unpaused through the API,
/// without loading again: `paused` (a JavaScript expression) holds while it is paused and not
/// after, and `ready` holds throughout.
async fn follows_a_pause(browser: &Browser, server: &ServerProcess, paused: &str, ready: &str) {
    browser.run("window.notReloaded = true;", json!([])).await;
    for (action, shown, expected) in [("pause", "paused", true), ("unpause", "running", false)] {
        let (status, answer) = server
            .post(&format!("/teams/main/pipelines/demo/{action}"), json!({}))
            .await;
        assert_eq!(status, 200, "{answer}");
        let check =
            format!("return window.notReloaded && !!({paused}) === {expected} && !!({ready});");
        browser
            .wait_for(
                &format!("the pipeline shown {shown}, live"),
                &check,
                json!([]),
            )
            .await;
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_web_ui_in_a_browser() {
    let work = tempfile::tempdir().expect("a work directory");
    let config = work.path().join("demo.hcl");
    std::fs::write(&config, PIPELINE).expect("the pipeline file");
    // SQLite in a file, as a small real deployment keeps its state (`mem` is exercised by
    // every other end-to-end test).
    let db = work.path().join("ui.db");
    let server = ServerProcess::start(&[
        "--db-system",
        "sqlite",
        "--db-name",
        db.to_str().expect("a UTF-8 path"),
        "--pubsub-system",
        "mem",
        "--run-worker",
        "--work-dir",
        work.path().to_str().expect("a UTF-8 path"),
        "--pipeline-config",
        config.to_str().expect("a UTF-8 path"),
        "--pipeline-name",
        "demo",
    ]);
    let base = server.base.clone();
    let driver = Driver::start().await;
    let browser = driver.browser(1280, 900).await;

    // Log in, and land on the page asked for.
    log_in(&browser, &base).await;
    assert!(browser.url().await.ends_with(DEMO));
    let nodes = browser
        .run(
            "return document.querySelectorAll('svg.graph .node').length",
            json!([]),
        )
        .await;
    assert_eq!(nodes, json!(4), "a resource and three jobs");
    browser.screenshot("pipeline").await;
    // The pipeline follows the server live: paused through the API, it says so, with its
    // graph drawn anew and ready to pan and zoom.
    follows_a_pause(
        &browser,
        &server,
        "document.querySelector('.page-head .tag.warn')",
        "document.querySelector('svg.graph[data-ready]')",
    )
    .await;
    browser.goto(&format!("{base}{DEMO}?view=list")).await;
    browser
        .wait_for("the list view", HOLDS, json!(["table.list td", "colours"]))
        .await;
    browser.screenshot("pipeline-list").await;
    browser.goto(&format!("{base}/")).await;
    browser
        .wait_for("the dashboard", HOLDS, json!([".card h3", "demo"]))
        .await;
    browser.screenshot("dashboard").await;

    // The dashboard follows the server live (Server-Sent Events), without loading again.
    follows_a_pause(
        &browser,
        &server,
        "document.querySelector('.card.paused .tag')",
        "true",
    )
    .await;

    // The editor: a typo is shown at its line as it is typed; fixed, the file is saved.
    browser.goto(&format!("{base}{DEMO}/edit")).await;
    browser
        .wait_for(
            "the saved file to validate",
            HOLDS,
            json!(["#verdict", "Valid"]),
        )
        .await;
    let typo = PIPELINE.replacen("check_interval", "check_intervall", 1);
    browser.fill("#source", &typo).await;
    let place = browser
        .wait_for(
            "the typo's diagnostic",
            "const d = Array.from(document.querySelectorAll('#diagnostics li.error')).find(li => li.textContent.includes('check_intervall')); return d && d.querySelector('.place').textContent;",
            json!([]),
        )
        .await;
    let line = 1 + PIPELINE[..PIPELINE.find("check_interval").expect("the attribute")]
        .matches('\n')
        .count();
    assert_eq!(
        place,
        json!(format!("line {line}:3")),
        "the diagnostic's place"
    );
    let marked = browser
        .run(
            "return Array.from(document.querySelectorAll('.gutter .error'), s => s.textContent)",
            json!([]),
        )
        .await;
    assert_eq!(
        marked,
        json!([line.to_string()]),
        "the gutter marks the line"
    );
    browser.click("#show-diff").await;
    browser
        .wait_for(
            "the change",
            HOLDS,
            json!(["#diff .added", "check_intervall"]),
        )
        .await;
    browser.screenshot("editor-error").await;
    let fixed = format!(
        "{PIPELINE}\njob \"extra\" {{\n  task \"hi\" {{\n    run \"shell\" {{\n      cmd = \"echo hi\"\n    }}\n  }}\n}}\n"
    );
    browser.fill("#source", &fixed).await;
    browser
        .wait_for(
            "the fixed file to validate",
            HOLDS,
            json!(["#verdict", "Valid"]),
        )
        .await;
    browser.screenshot("editor").await;
    browser.click("#save").await;
    browser
        .wait_for(
            "the saved pipeline's graph with the new job",
            "return document.querySelector('svg.graph [data-id=\"job extra\"]')",
            json!([]),
        )
        .await;
    let (_, saved) = server.get("/teams/main/pipelines/demo").await;
    assert!(
        saved["data"]["config"]
            .as_str()
            .unwrap_or_default()
            .contains("job \"extra\"")
    );

    // Trigger a job with an input; its log arrives live, in colour.
    browser.goto(&format!("{base}{DEMO}/jobs/colours")).await;
    browser.fill("#input-greeting", "world").await;
    browser.click("form.trigger button[type=submit]").await;
    browser
        .wait_for(
            "the first line, red and bold",
            &format!("{PAINT} const s = paint && paint.querySelector('.log span.b.fg1'); return s && s.textContent.includes('red world');"),
            json!([]),
        )
        .await;
    assert!(browser.url().await.contains("/jobs/colours/builds/1"));
    let orange_yet = browser
        .run(
            &format!("{PAINT} return paint.querySelector('.log').textContent.includes('orange')"),
            json!([]),
        )
        .await;
    browser.screenshot("build-running").await;
    browser
        .wait_for(
            "the second line, in colour 208, added while the page is open",
            &format!("{PAINT} const s = Array.from(paint.querySelectorAll('.log span')).find(e => e.textContent === 'orange'); return s && s.getAttribute('style');"),
            json!([]),
        )
        .await;
    assert_eq!(orange_yet, json!(false), "the second line came later, live");
    browser
        .wait_for(
            "the build to succeed",
            HOLDS,
            json!(["#build-head .badge", "succeeded"]),
        )
        .await;
    browser.screenshot("build").await;

    // A 100,000-line log opens at its end; the search finds a line and opens the log there.
    let (status, build) = server
        .post("/teams/main/pipelines/demo/jobs/long/trigger", json!({}))
        .await;
    assert_eq!(status, 201, "{build}");
    server
        .wait_finished("/teams/main/pipelines/demo/jobs/long/builds/1")
        .await;
    browser
        .goto(&format!("{base}{DEMO}/jobs/long/builds/1"))
        .await;
    browser.click("#step-0 > summary").await;
    browser
        .wait_for(
            "the log's last line",
            "return document.getElementById('s0-L100000')",
            json!([]),
        )
        .await;
    let shown = browser
        .run(
            "return document.querySelectorAll('#step-0 .log .line').length",
            json!([]),
        )
        .await;
    assert_eq!(shown, json!(1000), "one page of lines");
    browser.fill("#find-0", "line 77777").await;
    browser
        .wait_for(
            "the search's result",
            HOLDS,
            json!(["#step-0 .log-results .found", "1 line holds"]),
        )
        .await;
    browser.click("#step-0 .log-results a.ln").await;
    browser
        .wait_for(
            "line 77777, marked",
            "const l = document.getElementById('s0-L77777'); return l && l.classList.contains('target');",
            json!([]),
        )
        .await;
    browser.screenshot("long-log").await;

    // Pin a version of the resource.
    server
        .wait_until(
            "/teams/main/pipelines/demo/resources/cron.tick/versions",
            |page: &Value| {
                page["data"]
                    .as_array()
                    .is_some_and(|versions| !versions.is_empty())
            },
        )
        .await;
    browser
        .goto(&format!("{base}{DEMO}/resources/cron.tick"))
        .await;
    browser.click(".version details.pin-version summary").await;
    browser
        .fill(
            ".version details.pin-version input[name=comment]",
            "hold: the next tick breaks the deploy",
        )
        .await;
    browser
        .click(".version details.pin-version button[type=submit]")
        .await;
    browser
        .wait_for(
            "the pinned version",
            HOLDS,
            json!([".version.pinned .tag", "pinned"]),
        )
        .await;
    browser
        .wait_for(
            "the pin's comment and author",
            HOLDS,
            json!([".pin-note", "by admin"]),
        )
        .await;
    browser.screenshot("resource").await;
    let (_, resource) = server
        .get("/teams/main/pipelines/demo/resources/cron.tick")
        .await;
    assert!(
        resource["data"]["pinned_version_id"].is_number(),
        "{resource}"
    );
    assert_eq!(
        resource["data"]["pin_comment"], "hold: the next tick breaks the deploy",
        "{resource}"
    );

    // Approve a build that waits for it.
    let (status, gate) = server
        .post("/teams/main/pipelines/demo/jobs/gate/trigger", json!({}))
        .await;
    assert_eq!(status, 201, "{gate}");
    assert_eq!(gate["data"]["status"], "waiting_for_approval");
    browser
        .goto(&format!("{base}{DEMO}/jobs/gate/builds/1"))
        .await;
    browser.screenshot("approval").await;
    browser.click("form[data-api$='/approve'] button").await;
    let done = server
        .wait_finished("/teams/main/pipelines/demo/jobs/gate/builds/1")
        .await;
    assert_eq!(done["status"], "succeeded", "{done}");

    // The pages around the pipelines.
    browser.goto(&format!("{base}/workers")).await;
    browser
        .wait_for(
            "the server's worker",
            HOLDS,
            json!(["#workers td", "running"]),
        )
        .await;
    browser.screenshot("workers").await;
    browser.goto(&format!("{base}/teams/main?tab=audit")).await;
    browser
        .wait_for(
            "the approval in the audit log",
            HOLDS,
            json!(["table.list code", "build.approved"]),
        )
        .await;
    browser.screenshot("audit").await;
    browser.goto(&format!("{base}/profile")).await;
    browser.fill("input[name=name]", "laptop").await;
    browser
        .click("form[data-then^='show:'] button[type=submit]")
        .await;
    let token = browser
        .wait_for(
            "the new token",
            "const t = document.getElementById('new-token-value'); return t && t.value;",
            json!([]),
        )
        .await;
    assert!(
        token.as_str().is_some_and(|t| t.starts_with("pko_")),
        "{token}"
    );
    browser.screenshot("profile").await;

    // Public: an anonymous visitor sees the pipeline, and nothing to press.
    let (status, _) = server
        .post("/teams/main/pipelines/demo/expose", json!({}))
        .await;
    assert_eq!(status, 200);
    browser.forget_cookies().await;
    browser.goto(&format!("{base}{DEMO}")).await;
    browser
        .wait_for(
            "the public graph",
            "return document.querySelector('svg.graph .node')",
            json!([]),
        )
        .await;
    let actions = browser
        .run(
            "return document.querySelectorAll('form[data-api]').length",
            json!([]),
        )
        .await;
    assert_eq!(actions, json!(0), "no action for anonymous visitors");
    browser.screenshot("public-pipeline").await;
    browser
        .goto(&format!("{base}{DEMO}/jobs/colours/builds/1"))
        .await;
    browser
        .wait_for(
            "the public build",
            HOLDS,
            json!(["main p", "Logs are shown to the team's members."]),
        )
        .await;

    // A phone: the build page fits 360 pixels.
    let phone = driver.browser(360, 740).await;
    log_in(&phone, &base).await;
    phone
        .goto(&format!("{base}{DEMO}/jobs/colours/builds/1"))
        .await;
    phone.find("details.step").await;
    let overflow = phone
        .run(
            "return document.documentElement.scrollWidth - document.documentElement.clientWidth",
            json!([]),
        )
        .await;
    assert_eq!(overflow, json!(0), "nothing wider than the screen");
    phone.screenshot("phone-build").await;
}
