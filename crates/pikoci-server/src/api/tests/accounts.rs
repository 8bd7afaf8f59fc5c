//! Logging in, passwords, sessions, API tokens, users and team members.

use axum::http::{Method, StatusCode};
use pikoci_core::secrets::Secret;
use pikoci_core::store::Role;
use serde_json::{Value, json};

use super::TestApi;

/// Creates user `name` with `password` (through the API, as the global admin `root`), who
/// must change it at the first login.
async fn with_password(api: &TestApi, name: &str, password: &str) {
    let created = api
        .post("/api/v1/users", json!({"name": name, "password": password}))
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    assert_eq!(created.data()["must_change_password"], true);
}

async fn login(api: &TestApi, name: &str, password: &str) -> super::Answer {
    api.call_as(
        None,
        Method::POST,
        "/api/v1/login",
        Some(json!({"username": name, "password": password})),
    )
    .await
}

async fn as_user(
    api: &TestApi,
    token: &str,
    method: Method,
    path: &str,
    body: Option<Value>,
) -> super::Answer {
    api.call_as(Some(token), method, path, body).await
}

#[tokio::test]
async fn a_new_user_logs_in_must_change_the_password_and_then_works() {
    let api = TestApi::with_pipeline().await;
    with_password(&api, "alice", "first-password").await;

    let wrong = login(&api, "alice", "wrong-password").await;
    assert_eq!(
        wrong.error(StatusCode::UNAUTHORIZED, "unauthenticated"),
        "wrong user name or password"
    );
    let unknown = login(&api, "nobody", "first-password").await;
    assert_eq!(
        unknown.error(StatusCode::UNAUTHORIZED, "unauthenticated"),
        "wrong user name or password",
        "an unknown name answers as a wrong password"
    );

    let logged_in = login(&api, "alice", "first-password").await.data();
    let token = logged_in["token"].as_str().unwrap().to_owned();
    assert!(token.starts_with("pks_") && token.len() == 68, "{token}");
    assert_eq!(logged_in["user"]["must_change_password"], true);

    // Until the password changes, only the profile, the password and logging out are served.
    let refused = as_user(&api, &token, Method::GET, "/api/v1/teams", None).await;
    let message = refused.error(StatusCode::FORBIDDEN, "password_change_required");
    assert!(message.contains("alice"), "{message}");
    let profile = as_user(&api, &token, Method::GET, "/api/v1/profile", None)
        .await
        .data();
    assert_eq!(profile["user"]["name"], "alice");
    assert_eq!(profile["credential"], "session");

    let short = as_user(
        &api,
        &token,
        Method::POST,
        "/api/v1/profile/password",
        Some(json!({"current_password": "first-password", "new_password": "short"})),
    )
    .await;
    assert!(
        short
            .error(StatusCode::BAD_REQUEST, "invalid_input")
            .contains("at least 8")
    );
    let wrong_current = as_user(
        &api,
        &token,
        Method::POST,
        "/api/v1/profile/password",
        Some(json!({"current_password": "not-it", "new_password": "second-password"})),
    )
    .await;
    assert!(
        wrong_current
            .error(StatusCode::BAD_REQUEST, "invalid_input")
            .contains("current password is wrong")
    );
    let changed = as_user(
        &api,
        &token,
        Method::POST,
        "/api/v1/profile/password",
        Some(json!({"current_password": "first-password", "new_password": "second-password"})),
    )
    .await
    .data();
    assert_eq!(changed["must_change_password"], false);

    // Now served (alice is in no team: she sees none).
    let teams = as_user(&api, &token, Method::GET, "/api/v1/teams", None)
        .await
        .data();
    assert_eq!(teams, json!([]));
    // The old password no longer works, the new one does.
    login(&api, "alice", "first-password")
        .await
        .error(StatusCode::UNAUTHORIZED, "unauthenticated");
    login(&api, "alice", "second-password").await.data();
}

#[tokio::test]
async fn a_password_change_ends_the_other_sessions_and_logout_ends_this_one() {
    let api = TestApi::new().await;
    api.post(
        "/api/v1/users",
        json!({"name": "bob", "password_hash": crate::auth::password::hash_blocking(&Secret::new("bob-password")).expose()}),
    )
    .await
    .data();
    let laptop = login(&api, "bob", "bob-password").await.data()["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let phone = login(&api, "bob", "bob-password").await.data()["token"]
        .as_str()
        .unwrap()
        .to_owned();
    as_user(
        &api,
        &laptop,
        Method::POST,
        "/api/v1/profile/password",
        Some(json!({"current_password": "bob-password", "new_password": "bob-password-2"})),
    )
    .await
    .data();
    let ended = as_user(&api, &phone, Method::GET, "/api/v1/profile", None).await;
    assert!(
        ended
            .error(StatusCode::UNAUTHORIZED, "unauthenticated")
            .contains("log in again")
    );
    as_user(&api, &laptop, Method::GET, "/api/v1/profile", None)
        .await
        .data();
    as_user(&api, &laptop, Method::POST, "/api/v1/logout", None)
        .await
        .data();
    as_user(&api, &laptop, Method::GET, "/api/v1/profile", None)
        .await
        .error(StatusCode::UNAUTHORIZED, "unauthenticated");
}

#[tokio::test]
async fn failed_logins_are_limited_per_user_with_retry_after() {
    let api = TestApi::new().await;
    with_password(&api, "carol", "carol-password").await;
    for _ in 0..crate::auth::limit::PER_USER_AND_ADDRESS {
        login(&api, "carol", "guess-guess")
            .await
            .error(StatusCode::UNAUTHORIZED, "unauthenticated");
    }
    // Even the right password is refused now, with when to try again.
    let limited = login(&api, "carol", "carol-password").await;
    let message = limited.error(StatusCode::TOO_MANY_REQUESTS, "too_many_requests");
    assert!(message.contains("for this user"), "{message}");
    let retry: u64 = limited.response_headers["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=300).contains(&retry), "{retry}");
}

#[tokio::test]
async fn api_tokens_act_as_their_owner_or_within_their_team() {
    let api = TestApi::with_pipeline().await;
    let maintainer = api.user("mia", Some(Role::Maintain)).await;

    // A personal token: acts as mia.
    let created = as_user(
        &api,
        &maintainer,
        Method::POST,
        "/api/v1/api-tokens",
        Some(json!({"name": "ci"})),
    )
    .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    let personal = created.data()["token"].as_str().unwrap().to_owned();
    assert!(personal.starts_with("pko_") && personal.len() == 68);
    let profile = as_user(&api, &personal, Method::GET, "/api/v1/profile", None)
        .await
        .data();
    assert_eq!(profile["credential"], "personal_token");
    as_user(
        &api,
        &personal,
        Method::POST,
        "/api/v1/teams/main/pipelines/demo/jobs/build/pause",
        None,
    )
    .await
    .data();

    // The same name again is a conflict naming it.
    let again = as_user(
        &api,
        &maintainer,
        Method::POST,
        "/api/v1/api-tokens",
        Some(json!({"name": "ci"})),
    )
    .await;
    assert!(
        again
            .error(StatusCode::CONFLICT, "conflict")
            .contains("\"ci\"")
    );

    // A token cannot make tokens.
    as_user(&api, &personal, Method::GET, "/api/v1/api-tokens", None)
        .await
        .error(StatusCode::FORBIDDEN, "forbidden");

    // A team token above the owner's role is refused; a read token reads but does not act.
    let above = as_user(
        &api,
        &maintainer,
        Method::POST,
        "/api/v1/api-tokens",
        Some(json!({"name": "too-much", "team": "main", "role": "admin"})),
    )
    .await;
    assert!(
        above
            .error(StatusCode::FORBIDDEN, "forbidden")
            .contains("maintain")
    );
    let reader = as_user(
        &api,
        &maintainer,
        Method::POST,
        "/api/v1/api-tokens",
        Some(json!({"name": "dashboard", "team": "main", "role": "read"})),
    )
    .await
    .data();
    assert_eq!(reader["team"], "main");
    assert_eq!(reader["role"], "read");
    let reader = reader["token"].as_str().unwrap().to_owned();
    as_user(
        &api,
        &reader,
        Method::GET,
        "/api/v1/teams/main/pipelines",
        None,
    )
    .await
    .data();
    let refused = as_user(
        &api,
        &reader,
        Method::POST,
        "/api/v1/teams/main/pipelines/demo/pause",
        None,
    )
    .await;
    assert!(
        refused
            .error(StatusCode::FORBIDDEN, "forbidden")
            .contains("role write")
    );
    as_user(&api, &reader, Method::GET, "/api/v1/profile", None)
        .await
        .error(StatusCode::FORBIDDEN, "forbidden");

    // Lowering mia's role lowers her personal token at once; removing her from the team
    // deletes her team token.
    let team = api.store().team("main").await.unwrap();
    let mia = api.server.accounts().user("mia").await.unwrap();
    api.server
        .accounts()
        .set_member(team.id, mia.id, Role::Read, chrono::Utc::now())
        .await
        .unwrap();
    as_user(
        &api,
        &personal,
        Method::POST,
        "/api/v1/teams/main/pipelines/demo/pause",
        None,
    )
    .await
    .error(StatusCode::FORBIDDEN, "forbidden");
    api.call(Method::DELETE, "/api/v1/teams/main/members/mia", None)
        .await
        .data();
    as_user(
        &api,
        &reader,
        Method::GET,
        "/api/v1/teams/main/pipelines",
        None,
    )
    .await
    .error(StatusCode::UNAUTHORIZED, "unauthenticated");

    // Listing shows names and prefixes, never values; deleting one ends it.
    let listed = as_user(&api, &maintainer, Method::GET, "/api/v1/api-tokens", None)
        .await
        .data();
    assert_eq!(listed.as_array().unwrap().len(), 1, "{listed}");
    assert_eq!(listed[0]["name"], "ci");
    assert_eq!(listed[0]["prefix"], &personal[..12]);
    assert!(listed[0].get("token").is_none());
    assert!(!listed[0]["last_used_at"].is_null(), "used above: {listed}");
    let id = listed[0]["id"].as_i64().unwrap();
    as_user(
        &api,
        &maintainer,
        Method::DELETE,
        &format!("/api/v1/api-tokens/{id}"),
        None,
    )
    .await
    .data();
    as_user(&api, &personal, Method::GET, "/api/v1/profile", None)
        .await
        .error(StatusCode::UNAUTHORIZED, "unauthenticated");
}

#[tokio::test]
async fn teams_keep_an_admin_and_the_server_a_global_admin() {
    let api = TestApi::new().await;
    api.user("ann", None).await;
    api.user("ben", None).await;
    let set = |user: &'static str, role: &'static str| {
        let api = &api;
        async move {
            api.call(
                Method::PUT,
                &format!("/api/v1/teams/main/members/{user}"),
                Some(json!({"role": role})),
            )
            .await
        }
    };
    assert_eq!(set("ann", "admin").await.data()["role"], "admin");
    let last = set("ann", "read").await;
    assert!(
        last.error(StatusCode::CONFLICT, "conflict")
            .contains("no admins")
    );
    api.call(Method::DELETE, "/api/v1/teams/main/members/ann", None)
        .await
        .error(StatusCode::CONFLICT, "conflict");
    set("ben", "admin").await.data();
    set("ann", "read").await.data();
    let members = api.get("/api/v1/teams/main/members").await.data();
    assert_eq!(
        members,
        json!([
            {"team": "main", "user": "ann", "role": "read"},
            {"team": "main", "user": "ben", "role": "admin"},
        ])
    );
    set("ann", "owner")
        .await
        .error(StatusCode::BAD_REQUEST, "invalid_input");

    // `root` is the only global admin.
    let demote = api
        .call(
            Method::PUT,
            "/api/v1/users/root",
            Some(json!({"admin": false})),
        )
        .await;
    assert!(
        demote
            .error(StatusCode::CONFLICT, "conflict")
            .contains("last global admin")
    );
    api.call(Method::DELETE, "/api/v1/users/root", None)
        .await
        .error(StatusCode::CONFLICT, "conflict");
    api.call(
        Method::PUT,
        "/api/v1/users/ann",
        Some(json!({"admin": true})),
    )
    .await
    .data();
    api.call(
        Method::PUT,
        "/api/v1/users/root",
        Some(json!({"admin": false})),
    )
    .await
    .data();
}

#[tokio::test]
async fn a_reset_password_ends_every_session_and_token_of_the_user() {
    let api = TestApi::new().await;
    let session = api.user("dan", Some(Role::Write)).await;
    let token = as_user(
        &api,
        &session,
        Method::POST,
        "/api/v1/api-tokens",
        Some(json!({"name": "x"})),
    )
    .await
    .data()["token"]
        .as_str()
        .unwrap()
        .to_owned();
    let reset = api
        .call(
            Method::PUT,
            "/api/v1/users/dan",
            Some(json!({"password": "temporary-1"})),
        )
        .await
        .data();
    assert_eq!(reset["must_change_password"], true);
    for credential in [&session, &token] {
        as_user(&api, credential, Method::GET, "/api/v1/profile", None)
            .await
            .error(StatusCode::UNAUTHORIZED, "unauthenticated");
    }
    login(&api, "dan", "temporary-1").await.data();
}

#[tokio::test]
async fn webhook_tokens_are_shown_to_maintainers_only() {
    let api = TestApi::with_pipeline().await;
    let writer = api.user("wes", Some(Role::Write)).await;
    let maintainer = api.user("max", Some(Role::Maintain)).await;
    let path = "/api/v1/teams/main/pipelines/demo/resources/cron.tick";
    let seen = as_user(&api, &writer, Method::GET, path, None).await.data();
    assert!(seen.get("webhook_token").is_none(), "{seen}");
    let pinned = as_user(&api, &writer, Method::POST, &format!("{path}/unpin"), None)
        .await
        .data();
    assert!(pinned.get("webhook_token").is_none(), "{pinned}");
    let seen = as_user(&api, &maintainer, Method::GET, path, None)
        .await
        .data();
    assert!(seen["webhook_token"].is_string(), "{seen}");
}

#[tokio::test]
async fn users_see_their_teams_and_creators_administer_new_ones() {
    let api = TestApi::new().await;
    api.post("/api/v1/teams", json!({"name": "platform"}))
        .await
        .data();
    let members = api.get("/api/v1/teams/platform/members").await.data();
    assert_eq!(
        members,
        json!([{"team": "platform", "user": "root", "role": "admin"}])
    );
    let reader = api.user("rey", Some(Role::Read)).await;
    let teams = as_user(&api, &reader, Method::GET, "/api/v1/teams", None)
        .await
        .data();
    let names: Vec<_> = teams
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].clone())
        .collect();
    assert_eq!(names, vec![json!("main")]);
    let all = api.get("/api/v1/teams").await.data();
    assert_eq!(all.as_array().unwrap().len(), 2, "{all}");
    as_user(&api, &reader, Method::GET, "/api/v1/teams/platform", None)
        .await
        .error(StatusCode::FORBIDDEN, "forbidden");
}

#[tokio::test]
async fn approvals_are_recorded_under_the_callers_name() {
    let api = TestApi::new().await;
    let maintainer = api.user("amy", Some(Role::Maintain)).await;
    api.server
        .set_pipeline(
            "main",
            "gated",
            "gated.hcl",
            r#"
job "deploy" {
  approve "production" {
    approvals = 1
  }
}
"#,
            Value::Null,
        )
        .await
        .expect("pipeline");
    let build = api
        .post(
            "/api/v1/teams/main/pipelines/gated/jobs/deploy/trigger",
            json!({}),
        )
        .await
        .data();
    assert_eq!(build["status"], "waiting_for_approval", "{build}");
    let approved = as_user(
        &api,
        &maintainer,
        Method::POST,
        "/api/v1/teams/main/pipelines/gated/jobs/deploy/builds/1/approve",
        Some(json!({})),
    )
    .await;
    assert_eq!(approved.status, StatusCode::OK, "{}", approved.text);
    let team = api.store().team("main").await.unwrap();
    let pipeline = api.store().pipeline(team.id, "gated").await.unwrap();
    let job = api.store().job(pipeline.id, "deploy").await.unwrap();
    let build = api
        .store()
        .build_by_number(job.id, "1".parse().unwrap())
        .await
        .unwrap();
    let voters = api.store().approval_votes(build.id).await.unwrap();
    assert!(voters.iter().any(|vote| vote.voter == "amy"), "{voters:?}");
}

/// The session cookie: it authenticates like a bearer session; a change made with it needs
/// this server's `Origin` (another site cannot make a browser send one); a bearer token is not
/// checked so; and a cookie that no longer works is deleted with the refusal.
#[tokio::test]
async fn the_session_cookie_works_and_its_changes_need_this_servers_origin() {
    use axum::body::Body;
    use axum::http::{Request, header};

    let api = TestApi::new().await;
    let cookie = format!("pikoci_session={}", api.admin);
    let request = |method: Method, path: &str, origin: Option<&str>, cookie: &str| {
        let mut request = Request::builder()
            .method(method)
            .uri(path)
            .header(header::HOST, "127.0.0.1:8080")
            .header(header::COOKIE, cookie)
            .header(header::CONTENT_TYPE, "application/json");
        if let Some(origin) = origin {
            request = request.header(header::ORIGIN, origin);
        }
        request.body(Body::from("{}")).expect("request")
    };
    let status = |response: axum::response::Response| response.status();
    // Reading with the cookie: no Origin needed.
    let profile = api
        .router_oneshot(request(Method::GET, "/api/v1/profile", None, &cookie))
        .await;
    assert_eq!(status(profile), StatusCode::OK);
    // A change without Origin, or from another site: refused.
    for origin in [
        None,
        Some("https://evil.example.com"),
        Some("http://127.0.0.1:9999"),
    ] {
        let answer = super::read(
            api.router_oneshot(request(Method::POST, "/api/v1/teams", origin, &cookie))
                .await,
        )
        .await;
        assert_eq!(
            answer.status,
            StatusCode::FORBIDDEN,
            "{origin:?}: {}",
            answer.text
        );
        assert!(
            answer.text.contains("this server's pages"),
            "{}",
            answer.text
        );
    }
    // From the server's own address: done.
    let created = api
        .router_oneshot(request(
            Method::PUT,
            "/api/v1/profile",
            Some("http://127.0.0.1:8080"),
            &cookie,
        ))
        .await;
    assert_eq!(status(created), StatusCode::OK);
    // A bearer token is no cookie: no Origin asked for, even with a cookie beside it.
    let mut bearer = request(
        Method::PUT,
        "/api/v1/profile",
        None,
        "pikoci_session=pks_stale",
    );
    bearer.headers_mut().insert(
        header::AUTHORIZATION,
        format!("Bearer {}", api.admin).parse().expect("header"),
    );
    assert_eq!(status(api.router_oneshot(bearer).await), StatusCode::OK);
    // A cookie that no longer works: 401, and the cookie goes.
    let stale = format!("pikoci_session=pks_{}", "0".repeat(64));
    let answer = super::read(
        api.router_oneshot(request(Method::GET, "/api/v1/profile", None, &stale))
            .await,
    )
    .await;
    assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{}", answer.text);
    let deleted = answer
        .response_headers
        .get(header::SET_COOKIE)
        .and_then(|value| value.to_str().ok())
        .unwrap_or_default();
    assert!(
        deleted.starts_with("pikoci_session=;") && deleted.contains("Max-Age=0"),
        "{deleted}"
    );
}

/// Identity providers and users' identities over the routes: a provider's defaults (no
/// sign-up), its secret never answered, an admin linking and unlinking another user's
/// identity, and no change of what identities mean while some are linked.
#[tokio::test]
async fn admins_manage_providers_and_users_identities() {
    let api = TestApi::new().await;
    let body = json!({
        "kind": "oauth2",
        "auth_url": "https://idp.example.com/authorize",
        "token_url": "https://idp.example.com/token",
        "userinfo_url": "https://idp.example.com/me",
        "client_id": "pikoci",
        "client_secret": "oauth-client-s3cret",
    });
    let created = api
        .call(
            Method::PUT,
            "/api/v1/admin/auth-providers/corp",
            Some(body.clone()),
        )
        .await;
    assert_eq!(created.status, StatusCode::CREATED, "{}", created.text);
    let view = created.json();
    assert_eq!(view["data"]["allow_signup"], false, "{view:#}");
    assert_eq!(view["data"]["has_client_secret"], true, "{view:#}");
    assert!(
        !created.text.contains("oauth-client-s3cret"),
        "{}",
        created.text
    );
    api.user("dora", None).await;
    let identity = "/api/v1/users/dora/identities/corp";
    let linked = api
        .call(Method::PUT, identity, Some(json!({"subject": "u-42"})))
        .await;
    assert_eq!(linked.status, StatusCode::OK, "{}", linked.text);
    let listed = api.get("/api/v1/users/dora/identities").await.json();
    assert_eq!(listed["data"][0]["subject"], "u-42", "{listed:#}");
    // Another issuer would make u-42 someone else: refused while it is linked.
    let mut moved = body.clone();
    moved["userinfo_url"] = json!("https://other.example.com/me");
    let refused = api
        .call(
            Method::PUT,
            "/api/v1/admin/auth-providers/corp",
            Some(moved),
        )
        .await;
    assert_eq!(refused.status, StatusCode::CONFLICT, "{}", refused.text);
    // The same provider again keeps its secret and its (off) sign-up.
    let mut again = body;
    again
        .as_object_mut()
        .expect("object")
        .remove("client_secret");
    let kept = api
        .call(
            Method::PUT,
            "/api/v1/admin/auth-providers/corp",
            Some(again),
        )
        .await;
    assert_eq!(kept.status, StatusCode::OK, "{}", kept.text);
    assert_eq!(kept.json()["data"]["has_client_secret"], true);
    let removed = api.call(Method::DELETE, identity, None).await;
    assert_eq!(removed.status, StatusCode::OK, "{}", removed.text);
    let listed = api.get("/api/v1/users/dora/identities").await.json();
    assert_eq!(listed["data"], json!([]), "{listed:#}");
}
