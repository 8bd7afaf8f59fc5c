//! The web UI's pages over HTTP: status, key content, and what each role sees and does not
//! see. The browser tests (`cargo xtask it ui`) drive the same pages in Chromium.

use axum::body::Body;
use axum::http::{Method, Request, StatusCode, header};
use pikoci_core::secrets::Secret;
use pikoci_core::store::{BuildStatus, Role, StepStatus};
use serde_json::json;

use super::{Answer, TestApi, read};

/// `GET path` as a browser with the session cookie `session` (none: anonymous).
pub(super) async fn page(api: &TestApi, session: Option<&str>, path: &str) -> Answer {
    let mut request = Request::get(path).header(header::HOST, "ci.example:8080");
    if let Some(session) = session {
        request = request.header(header::COOKIE, format!("pikoci_session={session}"));
    }
    read(
        api.router_oneshot(request.body(Body::empty()).expect("request"))
            .await,
    )
    .await
}

fn location(answer: &Answer) -> &str {
    answer
        .response_headers
        .get(header::LOCATION)
        .and_then(|l| l.to_str().ok())
        .unwrap_or_else(|| panic!("no Location ({}): {}", answer.status, answer.text))
}

/// A member of `main` with `role`, and its session.
pub(super) async fn member(api: &TestApi, name: &str, role: Role) -> String {
    api.user(name, Some(role)).await
}

pub(super) const DEMO: &str = "/teams/main/pipelines/demo";

#[tokio::test]
async fn pages_send_anonymous_visitors_to_log_in_and_back() {
    let api = TestApi::with_pipeline().await;
    let answer = page(&api, None, "/").await;
    assert_eq!(answer.status, StatusCode::SEE_OTHER);
    assert_eq!(location(&answer), "/login?next=/");
    let answer = page(&api, None, &format!("{DEMO}/jobs/build")).await;
    assert_eq!(answer.status, StatusCode::SEE_OTHER);
    assert_eq!(
        location(&answer),
        "/login?next=/teams/main/pipelines/demo/jobs/build"
    );
    let login = page(&api, None, "/login?next=/teams/main").await;
    assert_eq!(login.status, StatusCode::OK);
    assert!(
        login
            .text
            .contains("<form method=\"post\" action=\"/login\">")
    );
    assert!(login.text.contains("name=\"next\" value=\"/teams/main\""));
    // A first login by single sign-on lands on `/` and goes on to the form that creates the
    // account.
    let answer = page(
        &api,
        None,
        "/?sso=complete-profile&provider=corp&username=ann",
    )
    .await;
    assert_eq!(
        location(&answer),
        "/login?sso=complete-profile&provider=corp&username=ann"
    );
    let form = page(
        &api,
        None,
        "/login?sso=complete-profile&provider=corp&username=ann",
    )
    .await;
    assert!(
        form.text
            .contains("data-api=\"/api/v1/auth/sso/complete-profile\"")
    );
    assert!(form.text.contains("value=\"ann\""));
    // A logged-in visitor goes on at once.
    let answer = page(&api, Some(&api.admin), "/login?next=/teams/main").await;
    assert_eq!(location(&answer), "/teams/main");
}

/// `POST /login` as a browser sends the form.
async fn submit_login(api: &TestApi, origin: Option<&str>, form: &str) -> Answer {
    let mut request = Request::post("/login")
        .header(header::HOST, "ci.example:8080")
        .header(header::CONTENT_TYPE, "application/x-www-form-urlencoded");
    if let Some(origin) = origin {
        request = request.header(header::ORIGIN, origin);
    }
    read(
        api.router_oneshot(request.body(Body::from(form.to_owned())).expect("request"))
            .await,
    )
    .await
}

#[tokio::test]
async fn logging_in_by_the_form_sets_the_session_cookie() {
    let api = TestApi::with_pipeline().await;
    api.post(
        "/api/v1/users",
        json!({"name": "alice", "password_hash": crate::auth::password::hash_blocking(&Secret::new("alice-password")).expose()}),
    )
    .await
    .data();
    let origin = Some("http://ci.example:8080");
    let wrong = submit_login(&api, origin, "username=alice&password=nope&next=%2Fx").await;
    assert_eq!(wrong.status, StatusCode::UNAUTHORIZED);
    assert!(wrong.text.contains("Wrong user name or password."));
    assert!(wrong.text.contains("value=\"alice\""), "the name is kept");
    assert!(!wrong.response_headers.contains_key(header::SET_COOKIE));
    // From another site: refused before the password is even checked.
    let forged = submit_login(
        &api,
        Some("https://evil.example"),
        "username=alice&password=alice-password",
    )
    .await;
    assert_eq!(forged.status, StatusCode::FORBIDDEN);
    assert!(
        forged.text.contains("Origin https://evil.example"),
        "{}",
        forged.text
    );
    // Without any header that says where it comes from: refused too.
    let unknown = submit_login(&api, None, "username=alice&password=alice-password").await;
    assert_eq!(unknown.status, StatusCode::FORBIDDEN);
    assert!(unknown.text.contains("neither Origin nor Sec-Fetch-Site"));
    let answer = submit_login(
        &api,
        origin,
        "username=alice&password=alice-password&next=%2Fteams%2Fmain%2Fpipelines%2Fdemo",
    )
    .await;
    assert_eq!(answer.status, StatusCode::SEE_OTHER, "{}", answer.text);
    assert_eq!(location(&answer), DEMO);
    let cookie = answer.response_headers[header::SET_COOKIE]
        .to_str()
        .expect("text");
    assert!(cookie.starts_with("pikoci_session=pks_"), "{cookie}");
    assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"));
    // The cookie opens the pages.
    let session = cookie
        .trim_start_matches("pikoci_session=")
        .split(';')
        .next()
        .expect("value");
    let home = page(&api, Some(session), "/").await;
    assert_eq!(home.status, StatusCode::OK);
    assert!(home.text.contains(">alice</a>"));
    // `next` never leaves the server.
    let answer = submit_login(
        &api,
        origin,
        "username=alice&password=alice-password&next=%2F%2Fevil.example",
    )
    .await;
    assert_eq!(location(&answer), "/");
}

#[tokio::test]
async fn a_stale_session_cookie_is_dropped_and_a_new_password_comes_first() {
    let api = TestApi::with_pipeline().await;
    // The page is served as to an anonymous visitor, and deletes the cookie.
    let answer = page(&api, Some("pks_0000"), "/login").await;
    assert_eq!(answer.status, StatusCode::OK);
    assert!(answer.text.contains("Log in to PikoCI"));
    let cookie = answer.response_headers[header::SET_COOKIE]
        .to_str()
        .expect("text");
    assert!(cookie.contains("Max-Age=0"), "{cookie}");
    // A page that needs a login sends there, once.
    let answer = page(&api, Some("pks_0000"), DEMO).await;
    assert_eq!(location(&answer), "/login?next=/teams/main/pipelines/demo");
    // Other cookies of the host (a proxy's, another app's) are not a session.
    let request = Request::get("/login")
        .header(header::HOST, "ci.example:8080")
        .header(header::COOKIE, "sticky=abc; other=1")
        .body(Body::empty())
        .expect("request");
    let answer = read(api.router_oneshot(request).await).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert!(!answer.response_headers.contains_key(header::SET_COOKIE));
    // A user whose password an admin set must choose a new one first.
    api.post(
        "/api/v1/users",
        json!({"name": "carol", "password": "given-by-admin"}),
    )
    .await
    .data();
    let carol = api.server.accounts().user("carol").await.expect("carol");
    assert!(carol.must_change_password);
    let session = super::session(&api.server, &carol).await;
    let answer = page(&api, Some(&session), DEMO).await;
    assert_eq!(location(&answer), "/profile/password");
    let form = page(&api, Some(&session), "/profile/password").await;
    assert_eq!(form.status, StatusCode::OK);
    assert!(form.text.contains("You must choose a new password"));
    assert!(form.text.contains("data-api=\"/api/v1/profile/password\""));
}

#[tokio::test]
async fn the_dashboard_shows_the_pipelines_of_the_visitors_teams() {
    let api = TestApi::with_pipeline().await;
    let reader = member(&api, "rita", Role::Read).await;
    let answer = page(&api, Some(&reader), "/").await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    assert!(answer.text.contains("href=\"/teams/main/pipelines/demo\""));
    assert!(
        answer
            .text
            .contains("href=\"/teams/main/pipelines/demo/jobs/deploy\"")
    );
    assert!(answer.text.contains("class=\"chip s-none\""));
    assert_eq!(answer.response_headers[header::CACHE_CONTROL], "no-store");
    // Someone of no team sees none of it.
    let loner = api.user("lone", None).await;
    let answer = page(&api, Some(&loner), "/").await;
    assert!(answer.text.contains("not a member of any team"));
    assert!(!answer.text.contains("demo"));
}

#[tokio::test]
async fn the_pipeline_page_draws_the_graph_and_offers_what_the_role_allows() {
    let api = TestApi::with_pipeline().await;
    let reader = member(&api, "rita", Role::Read).await;
    let writer = member(&api, "will", Role::Write).await;
    let maintainer = member(&api, "mia", Role::Maintain).await;
    let answer = page(&api, Some(&reader), DEMO).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    let text = &answer.text;
    assert!(text.contains("<svg class=\"graph\""));
    assert!(text.contains("data-id=\"resource cron.tick\""));
    assert!(text.contains("data-id=\"job build\""));
    assert!(text.contains("data-id=\"job deploy\""));
    // cron.tick (node 0) -> build (1) -> deploy (2).
    assert!(text.contains("data-from=\"0\" data-to=\"1\""), "{text}");
    assert!(text.contains("data-from=\"1\" data-to=\"2\""));
    assert!(!text.contains("/pause\""));
    assert!(!text.contains("/expose\""));
    let text = page(&api, Some(&writer), DEMO).await.text;
    assert!(text.contains("data-api=\"/api/v1/teams/main/pipelines/demo/pause\""));
    assert!(!text.contains("/expose\""));
    let text = page(&api, Some(&maintainer), DEMO).await.text;
    assert!(text.contains("data-api=\"/api/v1/teams/main/pipelines/demo/expose\""));
    // The list view.
    let list = page(&api, Some(&reader), &format!("{DEMO}?view=list"))
        .await
        .text;
    assert!(list.contains("<table class=\"list\">"));
    assert!(list.contains("href=\"/teams/main/pipelines/demo/jobs/build\""));
    assert!(list.contains("no build yet"));
    // Someone of another team: the API's refusal, as a page.
    let outsider = api.user("otto", None).await;
    let answer = page(&api, Some(&outsider), DEMO).await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN);
    assert!(
        answer.text.contains("not a member of it"),
        "{}",
        answer.text
    );
    let answer = page(&api, Some(&reader), "/teams/main/pipelines/nope").await;
    assert_eq!(answer.status, StatusCode::NOT_FOUND);
}

#[tokio::test]
async fn the_job_page_lists_builds_with_filters_and_a_form_for_the_inputs() {
    let api = TestApi::with_pipeline().await;
    let reader = member(&api, "rita", Role::Read).await;
    let writer = member(&api, "will", Role::Write).await;
    let job = api.job_id("deploy").await;
    api.pending_build(job).await;
    let deploy = format!("{DEMO}/jobs/deploy");
    let text = page(&api, Some(&writer), &deploy).await.text;
    assert!(text.contains("data-api=\"/api/v1/teams/main/pipelines/demo/jobs/deploy/trigger\""));
    assert!(text.contains("name=\"input_values.environment\""));
    assert!(text.contains("<option value=\"staging\" selected>"));
    assert!(text.contains("<option value=\"production\">"));
    assert!(text.contains("href=\"/teams/main/pipelines/demo/jobs/deploy/builds/1\""));
    let text = page(&api, Some(&reader), &deploy).await.text;
    assert!(!text.contains("/trigger\""));
    assert!(!text.contains("/pause\""));
    assert!(text.contains("builds/1\""));
    let text = page(&api, Some(&reader), &format!("{deploy}?status=failed"))
        .await
        .text;
    assert!(text.contains("No build matches these filters."));
    assert!(!text.contains("builds/1\""));
    let text = page(&api, Some(&reader), &format!("{deploy}?since=2999-01-01"))
        .await
        .text;
    assert!(text.contains("No build matches these filters."));
}

#[tokio::test]
async fn the_build_page_shows_steps_and_logs_with_colours_lines_and_search() {
    let api = TestApi::with_pipeline().await;
    let reader = member(&api, "rita", Role::Read).await;
    let maintainer = member(&api, "mia", Role::Maintain).await;
    let build = api.started_build(api.job_id("build").await).await;
    api.step(&build, 1, "compile", StepStatus::Started).await;
    api.chunks(
        &build,
        &[
            (1, 0, "plain\n\u{1b}[1;31mred failure\u{1b}[0m\n"),
            (1, 1, "\u{1b}[38;2;1;2;3mtrue\u{1b}[0m <b>\n"),
        ],
    )
    .await;
    let here = format!("{DEMO}/jobs/build/builds/1");
    let answer = page(&api, Some(&reader), &here).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    let text = &answer.text;
    assert!(text.contains("id=\"step-0\""));
    assert!(text.contains("id=\"step-1\""));
    assert!(text.contains("data-running=\"true\""));
    assert!(text.contains(&format!("data-log=\"{here}/steps/1/log?attempt=1\"")));
    assert!(text.contains("download="), "the raw log");
    assert!(!text.contains("/cancel\""), "a reader cannot cancel");
    let text = page(&api, Some(&maintainer), &here).await.text;
    assert!(text.contains("/cancel\""));
    // The log of step 1.
    let log = page(
        &api,
        Some(&reader),
        &format!("{here}/steps/1/log?attempt=1"),
    )
    .await;
    assert_eq!(log.status, StatusCode::OK, "{}", log.text);
    assert!(log.text.contains("id=\"s1-L2\""));
    assert!(
        log.text
            .contains("<span class=\"b fg1\">red failure</span>")
    );
    assert!(
        log.text
            .contains("<span style=\"color:#010203\">true</span> &lt;b&gt;")
    );
    assert!(log.text.contains("<time>"));
    assert!(!log.text.contains("plain\n"), "lines are elements");
    // Lines after the second (following).
    let after = page(
        &api,
        Some(&reader),
        &format!("{here}/steps/1/log?attempt=1&after=2"),
    )
    .await;
    assert!(after.text.contains("id=\"s1-L3\""));
    assert!(!after.text.contains("id=\"s1-L2\""));
    let found = page(
        &api,
        Some(&reader),
        &format!("{here}/steps/1/log?attempt=1&q=FAIL"),
    )
    .await;
    assert!(found.text.contains("1 line holds"));
    assert!(found.text.contains("href=\"#s1-L2\""));
    assert!(found.text.contains("red <mark>fail</mark>ure"));
}

#[tokio::test]
async fn a_long_log_opens_at_its_last_page() {
    let api = TestApi::with_pipeline().await;
    let build = api.started_build(api.job_id("build").await).await;
    let text: String = (1..=100_000).map(|n| format!("line {n}\n")).collect();
    api.chunks(&build, &[(0, 0, &text)]).await;
    api.chunks(&build, &[(1, 0, &"x\n".repeat(1001))]).await;
    let url = format!("{DEMO}/jobs/build/builds/1/steps/0/log?attempt=1");
    // A log of 1,001 lines opens at its last 1,000, the first one a click away.
    let short = format!("{DEMO}/jobs/build/builds/1/steps/1/log?attempt=1");
    let log = page(&api, Some(&api.admin), &short).await;
    assert_eq!(log.text.matches("class=\"line\"").count(), 1000);
    assert!(log.text.contains("id=\"s1-L2\"") && log.text.contains("id=\"s1-L1001\""));
    assert!(log.text.contains("Show lines 1–1<"), "{}", &log.text[..600]);
    assert!(log.text.contains("before=2\""));
    let first = page(&api, Some(&api.admin), &format!("{short}&before=2")).await;
    assert_eq!(first.text.matches("class=\"line\"").count(), 1);
    assert!(first.text.contains("id=\"s1-L1\""));
    assert!(!first.text.contains("Show lines"));
    // Numbers out of range are no error.
    for query in [
        "line=18446744073709551615",
        "before=18446744073709551615",
        "after=18446744073709551615",
        "line=0",
    ] {
        let answer = page(&api, Some(&api.admin), &format!("{short}&{query}")).await;
        assert_eq!(answer.status, StatusCode::OK, "{query}");
    }
    // An emptied search field clears the results.
    let cleared = page(&api, Some(&api.admin), &format!("{short}&q=")).await;
    assert_eq!(cleared.status, StatusCode::OK);
    assert_eq!(cleared.text, "");
    let log = page(&api, Some(&api.admin), &url).await;
    assert_eq!(log.status, StatusCode::OK);
    assert_eq!(log.text.matches("class=\"line\"").count(), 1000);
    assert!(log.text.contains("id=\"s0-L100000\""));
    assert!(log.text.contains("Show lines 98001–99000"));
    assert!(log.text.contains("data-total=\"100000\""));
    let at = page(&api, Some(&api.admin), &format!("{url}&line=5000")).await;
    assert!(at.text.contains("id=\"s0-L4001\"") && at.text.contains("id=\"s0-L5000\""));
    assert!(!at.text.contains("id=\"s0-L5001\""));
}

#[tokio::test]
async fn approvals_and_retries_are_offered_to_those_who_may() {
    let api = TestApi::with_pipeline().await;
    let writer = member(&api, "will", Role::Write).await;
    let maintainer = member(&api, "mia", Role::Maintain).await;
    let build = api.pending_build(api.job_id("deploy").await).await;
    api.transition(
        &build,
        BuildStatus::Pending,
        BuildStatus::WaitingForApproval,
        11,
    )
    .await;
    let here = format!("{DEMO}/jobs/deploy/builds/1");
    let text = page(&api, Some(&maintainer), &here).await.text;
    assert!(text.contains(&format!("data-api=\"/api/v1{here}/approve\"")));
    assert!(text.contains(&format!("data-api=\"/api/v1{here}/reject\"")));
    assert!(text.contains("name=\"message\""));
    let text = page(&api, Some(&writer), &here).await.text;
    assert!(!text.contains("/approve\""));
    assert!(text.contains("/cancel\""));
    api.transition(
        &build,
        BuildStatus::WaitingForApproval,
        BuildStatus::Cancelled,
        12,
    )
    .await;
    let text = page(&api, Some(&writer), &here).await.text;
    assert!(text.contains("/retry\""));
    assert!(!text.contains("/cancel\""));
}

#[tokio::test]
async fn the_resource_page_shows_versions_and_the_webhook_to_maintainers_only() {
    let api = TestApi::with_pipeline().await;
    let reader = member(&api, "rita", Role::Read).await;
    let writer = member(&api, "will", Role::Write).await;
    let maintainer = member(&api, "mia", Role::Maintain).await;
    let resource = "/api/v1/teams/main/pipelines/demo/resources/cron.tick";
    api.post(
        &format!("{resource}/versions"),
        json!({"version": {"time": "t1"}}),
    )
    .await
    .data();
    let here = format!("{DEMO}/resources/cron.tick");
    let text = page(&api, Some(&maintainer), &here).await.text;
    assert!(text.contains("time: t1"));
    assert!(
        text.contains("http://ci.example:8080/api/v1/webhooks/"),
        "{text}"
    );
    assert!(text.contains(&format!("data-api=\"{resource}/pin\"")));
    let text = page(&api, Some(&writer), &here).await.text;
    assert!(text.contains("/pin\""));
    assert!(text.contains("/check\""));
    assert!(!text.contains("/webhooks/"));
    let text = page(&api, Some(&reader), &here).await.text;
    assert!(text.contains("time: t1"));
    assert!(!text.contains("/pin\""));
    assert!(!text.contains("/check\""));

    // A pin shows its version, author, time and comment (escaped) to everyone who sees the
    // resource, and the unpin form to writers only.
    let versions = api.get(&format!("{resource}/versions")).await.data();
    api.call_as(
        Some(&writer),
        Method::POST,
        &format!("{resource}/pin"),
        Some(json!({"version_id": versions[0]["id"], "comment": "hold <b>t1</b>"})),
    )
    .await
    .data();
    let text = page(&api, Some(&reader), &here).await.text;
    assert!(text.contains("<strong>Pinned</strong> to"), "{text}");
    assert!(text.contains("by will on "), "{text}");
    assert!(text.contains("hold &#60;b&#62;t1&#60;/b&#62;"), "{text}");
    assert!(!text.contains("hold <b>"));
    assert!(!text.contains("/unpin\""));
    let text = page(&api, Some(&writer), &here).await.text;
    assert!(text.contains(&format!("data-api=\"{resource}/unpin\"")));
}

#[tokio::test]
async fn anonymous_visitors_see_public_pipelines_without_actions_or_logs() {
    let api = TestApi::with_pipeline().await;
    let build = api.started_build(api.job_id("build").await).await;
    api.chunks(&build, &[(0, 0, "secret-ish output\n")]).await;
    assert_eq!(page(&api, None, DEMO).await.status, StatusCode::SEE_OTHER);
    api.call(
        Method::POST,
        "/api/v1/teams/main/pipelines/demo/expose",
        None,
    )
    .await
    .data();
    let answer = page(&api, None, DEMO).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    assert!(answer.text.contains("data-id=\"job build\""));
    assert!(!answer.text.contains("data-api="));
    assert!(answer.text.contains("href=\"/login\""));
    let here = format!("{DEMO}/jobs/build/builds/1");
    let answer = page(&api, None, &here).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert!(
        answer
            .text
            .contains("Logs are shown to the team's members.")
    );
    assert!(!answer.text.contains("data-log="));
    assert!(!answer.text.contains("data-api=\"/api"));
    assert!(!answer.text.contains("data-events="));
    let log = page(&api, None, &format!("{here}/steps/0/log")).await;
    assert_eq!(log.status, StatusCode::SEE_OTHER);
    // Asked for by a script (or htmx): a 401 rather than the login page.
    let request = Request::get(format!("{here}/steps/0/log"))
        .header("hx-request", "true")
        .body(Body::empty())
        .expect("request");
    let answer = read(api.router_oneshot(request).await).await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED);
    assert!(!answer.text.contains("secret-ish"));
    let resource = page(&api, None, &format!("{DEMO}/resources/cron.tick")).await;
    assert_eq!(resource.status, StatusCode::OK);
    assert!(!resource.text.contains("/webhooks/"));
}

#[tokio::test]
async fn assets_are_cached_for_a_year_and_pages_never() {
    let api = TestApi::new().await;
    let login = page(&api, None, "/login").await;
    let css = login
        .text
        .split("href=\"")
        .find_map(|rest| {
            rest.split('"')
                .next()
                .filter(|href| href.ends_with("app.css"))
        })
        .expect("the stylesheet's URL")
        .to_owned();
    let answer = page(&api, None, &css).await;
    assert_eq!(answer.status, StatusCode::OK);
    assert_eq!(
        answer.response_headers[header::CACHE_CONTROL],
        "public, max-age=31536000, immutable"
    );
    assert!(
        answer.response_headers[header::CONTENT_TYPE]
            .to_str()
            .expect("text")
            .starts_with("text/css")
    );
    let old = page(&api, None, "/assets/000000000000/app.css").await;
    assert_eq!(old.status, StatusCode::OK);
    assert_eq!(old.response_headers[header::CACHE_CONTROL], "no-cache");
    let htmx = page(&api, None, "/assets/x/htmx.min.js").await;
    assert!(htmx.text.contains("htmx"));
    assert_eq!(
        page(&api, None, "/assets/x/nope.js").await.status,
        StatusCode::NOT_FOUND
    );
    assert_eq!(login.response_headers[header::CACHE_CONTROL], "no-store");
    assert_eq!(login.response_headers[header::X_FRAME_OPTIONS], "DENY");
    // The API's paths are still the API's.
    let answer = page(&api, None, "/api/v1/nope").await;
    assert_eq!(answer.json()["error"]["code"], "not_found");
}

#[tokio::test]
async fn the_editor_validates_as_the_server_would_and_only_for_maintainers() {
    let api = TestApi::with_pipeline().await;
    let writer = member(&api, "will", Role::Write).await;
    let maintainer = member(&api, "mia", Role::Maintain).await;
    let editor = format!("{DEMO}/edit");
    let answer = page(&api, Some(&maintainer), &editor).await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    assert!(answer.text.contains("<textarea id=\"source\""));
    // The file, escaped in the page.
    assert!(
        answer.text.contains("check_interval = &#34;@every 1m&#34;"),
        "{}",
        answer.text
    );
    assert!(
        answer
            .text
            .contains("data-validate=\"/api/v1/teams/main/pipelines/demo/validate\"")
    );
    let answer = page(&api, Some(&writer), &editor).await;
    assert_eq!(answer.status, StatusCode::FORBIDDEN);
    assert!(answer.text.contains("needs role maintain"));
    assert!(
        !page(&api, Some(&writer), DEMO)
            .await
            .text
            .contains("/edit\"")
    );
    assert!(
        page(&api, Some(&maintainer), DEMO)
            .await
            .text
            .contains("/edit\"")
    );
    // The API the editor calls: a typo is located at its line; nothing is stored.
    let validate = "/api/v1/teams/main/pipelines/demo/validate";
    let typo = super::PIPELINE.replace("check_interval", "check_intervall");
    let answer = api.post(validate, json!({"config": typo})).await.data();
    assert_eq!(answer["valid"], false, "{answer}");
    let error = &answer["errors"][0];
    assert_eq!(error["line"], 3, "{answer}");
    assert!(
        error["message"]
            .as_str()
            .unwrap_or_default()
            .contains("check_intervall"),
        "{answer}"
    );
    let answer = api
        .post(validate, json!({"config": super::PIPELINE}))
        .await
        .data();
    assert_eq!(answer, json!({"valid": true, "errors": [], "warnings": []}));
    let stored = api.get("/api/v1/teams/main/pipelines/demo").await.data();
    assert!(
        !stored["config"]
            .as_str()
            .unwrap_or_default()
            .contains("intervall")
    );
    // A pipeline that does not exist yet validates too; writers may not.
    let answer = api
        .post(
            "/api/v1/teams/main/pipelines/new-one/validate",
            json!({"config": "job \"a\" {}"}),
        )
        .await
        .data();
    assert_eq!(answer["valid"], true, "{answer}");
    let refused = api
        .call_as(
            Some(&writer),
            Method::POST,
            validate,
            Some(json!({"config": "job \"a\" {}"})),
        )
        .await;
    refused.error(StatusCode::FORBIDDEN, "forbidden");
}

#[tokio::test]
async fn the_profile_lists_api_tokens_without_their_values() {
    let api = TestApi::with_pipeline().await;
    let reader = member(&api, "rita", Role::Read).await;
    let created = api
        .call_as(
            Some(&reader),
            Method::POST,
            "/api/v1/api-tokens",
            Some(json!({"name": "laptop"})),
        )
        .await
        .data();
    let value = created["token"].as_str().expect("the token").to_owned();
    let answer = page(&api, Some(&reader), "/profile").await;
    assert_eq!(answer.status, StatusCode::OK, "{}", answer.text);
    assert!(answer.text.contains(">laptop<"));
    assert!(answer.text.contains("acts as you"));
    assert!(
        !answer.text.contains(&value),
        "a token's value is shown once, at creation"
    );
    assert!(answer.text.contains("data-api=\"/api/v1/api-tokens\""));
    assert!(answer.text.contains("(you: read)"));
    assert_eq!(
        page(&api, None, "/profile").await.status,
        StatusCode::SEE_OTHER
    );
}

#[tokio::test]
async fn workers_and_team_pages_show_what_each_role_may_see_and_do() {
    let api = TestApi::with_pipeline().await;
    let reader = member(&api, "rita", Role::Read).await;
    let maintainer = member(&api, "mia", Role::Maintain).await;
    // Workers: everyone logged in sees them; global admins may forget them.
    let text = page(&api, Some(&reader), "/workers").await.text;
    assert!(text.contains("No worker has registered"), "{text}");
    assert!(!text.contains("/api/v1/workers/prune"));
    let text = page(&api, Some(&api.admin), "/workers").await.text;
    assert!(text.contains("data-api=\"/api/v1/workers/prune\""));
    // Members: team admins set roles; others read them.
    let text = page(&api, Some(&reader), "/teams/main").await.text;
    assert!(
        text.contains("<td>rita</td>") && text.contains("<td>read</td>"),
        "{text}"
    );
    assert!(!text.contains("data-method=\"PUT\""));
    let text = page(&api, Some(&api.admin), "/teams/main").await.text;
    assert!(text.contains("data-api=\"/api/v1/teams/main/members/mia\" data-method=\"PUT\""));
    assert!(text.contains("<option value=\"maintain\" selected>"));
    // Secrets: names, never values; maintainers set and delete.
    api.post(
        "/api/v1/teams/main/secrets",
        json!({"name": "deploy-key", "value": "hunter2-value"}),
    )
    .await
    .data();
    let text = page(&api, Some(&reader), "/teams/main?tab=secrets")
        .await
        .text;
    assert!(text.contains("<code>deploy-key</code>"), "{text}");
    assert!(!text.contains("hunter2"));
    assert!(!text.contains("data-method=\"DELETE\""));
    // A name that is not a plain path segment is encoded in the URL of its delete button.
    api.post(
        "/api/v1/teams/main/secrets",
        json!({"name": "a/../b?c", "value": "v"}),
    )
    .await
    .data();
    api.post(
        "/api/v1/teams/main/secrets",
        json!({"name": "..", "value": "v"}),
    )
    .await
    .error(StatusCode::BAD_REQUEST, "invalid_input");
    let text = page(&api, Some(&maintainer), "/teams/main?tab=secrets")
        .await
        .text;
    assert!(
        text.contains("data-api=\"/api/v1/teams/main/secrets/a%2F..%2Fb%3Fc\""),
        "{text}"
    );
    assert!(
        text.contains("data-api=\"/api/v1/teams/main/secrets/deploy-key\" data-method=\"DELETE\"")
    );
    assert!(!text.contains("hunter2"));
    // The audit log, with its filters.
    api.call_as(
        Some(&maintainer),
        Method::POST,
        "/api/v1/teams/main/pipelines/demo/pause",
        None,
    )
    .await
    .data();
    let text = page(&api, Some(&reader), "/teams/main?tab=audit")
        .await
        .text;
    assert!(text.contains("<code>pipeline.paused</code>"), "{text}");
    assert!(text.contains("<td>mia</td>"));
    assert!(text.contains("<code>secret.created</code>"));
    let text = page(&api, Some(&reader), "/teams/main?tab=audit&user=mia")
        .await
        .text;
    assert!(text.contains("pipeline.paused"));
    assert!(!text.contains("secret.created"));
    let text = page(
        &api,
        Some(&reader),
        "/teams/main?tab=audit&action=nothing.done",
    )
    .await
    .text;
    assert!(text.contains("No entry matches these filters."));
    // Someone of another team sees none of it.
    let outsider = api.user("otto", None).await;
    assert_eq!(
        page(&api, Some(&outsider), "/teams/main").await.status,
        StatusCode::FORBIDDEN
    );
}
