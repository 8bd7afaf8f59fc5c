//! The authorization matrix: every operation of the OpenAPI document, called by every kind of
//! caller, answers as the route's rule in `access::RULES` says. A route without a rule, or a
//! rule without a route, fails here.

use std::collections::BTreeSet;

use axum::http::{Method, StatusCode};
use chrono::Utc;
use pikoci_core::store::{NewApiToken, NewUser, Role};
use serde_json::json;

use super::{TestApi, session};
use crate::api::access::{Access, PRIVATE_FIELDS, RULES, rule};
use crate::auth::{API_TOKEN_PREFIX, new_token, token_hash};

/// A kind of caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Who {
    /// No `Authorization` header.
    Anonymous,
    /// `Authorization: Basic ...`.
    NotBearer,
    /// A bearer token that is no PikoCI token.
    Garbage,
    /// A well-formed API token that does not exist.
    UnknownToken,
    /// An API token that expired.
    ExpiredToken,
    /// A session of a user with no role in team `main`.
    Outsider,
    /// A session of a member of `main` with this role.
    Member(Role),
    /// A personal API token of a member of `main` with this role.
    PersonalToken(Role),
    /// A team API token for `main` with the second role, of a member whose role there is the
    /// first.
    TeamToken(Role, Role),
    /// A session of an admin of another team, in no role in `main`.
    OtherTeamAdmin,
    /// A team token (role admin, for `main`) of a global admin who is not a member of `main`.
    GlobalAdminTeamToken,
    /// A session of a global admin (not a member of `main`).
    GlobalAdmin,
    /// A personal token of a global admin.
    GlobalAdminToken,
    /// A session of a global admin who must change the password first.
    MustChange,
    /// The global worker token: workers use the broker, never the API.
    GlobalWorkerToken,
    /// Team `main`'s worker token.
    TeamWorkerToken,
}

const EVERYONE: [Who; 22] = [
    Who::Anonymous,
    Who::NotBearer,
    Who::Garbage,
    Who::UnknownToken,
    Who::ExpiredToken,
    Who::Outsider,
    Who::Member(Role::Read),
    Who::Member(Role::Write),
    Who::Member(Role::Maintain),
    Who::Member(Role::Admin),
    Who::PersonalToken(Role::Read),
    Who::PersonalToken(Role::Maintain),
    Who::TeamToken(Role::Admin, Role::Admin),
    Who::TeamToken(Role::Admin, Role::Write),
    Who::TeamToken(Role::Read, Role::Write),
    Who::OtherTeamAdmin,
    Who::GlobalAdminTeamToken,
    Who::GlobalAdmin,
    Who::GlobalAdminToken,
    Who::MustChange,
    Who::GlobalWorkerToken,
    Who::TeamWorkerToken,
];

/// What a caller gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Outcome {
    /// Past the access layer: whatever the handler answers, but never 401 or 403.
    Served,
    /// 401 `unauthenticated`.
    Unauthenticated,
    /// 403 `forbidden`.
    Forbidden,
    /// 403 `password_change_required`.
    MustChangePassword,
}

/// The routes a user who must change the password may still call.
const BEFORE_PASSWORD_CHANGE: [(&str, &str); 3] = [
    ("GET", "/api/v1/profile"),
    ("POST", "/api/v1/profile/password"),
    ("POST", "/api/v1/logout"),
];

/// What `who` must get from a route that requires `access`, written out from the rules of
/// `docs/security.md`.
fn expected(access: Access, who: Who, method: &str, path: &str) -> Outcome {
    use Outcome::*;
    if access == Access::Anyone {
        return Served;
    }
    let team_role = match who {
        Who::Anonymous
        | Who::NotBearer
        | Who::Garbage
        | Who::UnknownToken
        | Who::ExpiredToken
        | Who::GlobalWorkerToken
        | Who::TeamWorkerToken => {
            return Unauthenticated;
        }
        Who::MustChange if !BEFORE_PASSWORD_CHANGE.contains(&(method, path)) => {
            return MustChangePassword;
        }
        Who::Outsider | Who::OtherTeamAdmin => None,
        Who::Member(role) | Who::PersonalToken(role) => Some(role),
        Who::TeamToken(owner, token) => Some(owner.min(token)),
        Who::GlobalAdmin | Who::GlobalAdminToken | Who::GlobalAdminTeamToken | Who::MustChange => {
            Some(Role::Admin)
        }
    };
    let session = matches!(
        who,
        Who::Outsider | Who::OtherTeamAdmin | Who::Member(_) | Who::GlobalAdmin | Who::MustChange
    );
    let global_admin = matches!(
        who,
        Who::GlobalAdmin | Who::GlobalAdminToken | Who::GlobalAdminTeamToken | Who::MustChange
    );
    let team_token = matches!(who, Who::TeamToken(..) | Who::GlobalAdminTeamToken);
    let allowed = match access {
        Access::Anyone => true,
        Access::User => !team_token,
        Access::Session => session,
        Access::GlobalAdmin => global_admin && !team_token,
        Access::GlobalAdminSession => global_admin && session,
        Access::Team(needed) => team_role.is_some_and(|role| role >= needed),
        Access::TeamSession(needed) => session && team_role.is_some_and(|role| role >= needed),
        // `demo` is not public here (see below for a public pipeline).
        Access::ReadOrPublic => team_role.is_some(),
    };
    if allowed { Served } else { Forbidden }
}

/// Every operation of the OpenAPI document: method and path.
fn operations() -> Vec<(String, String)> {
    let document = serde_json::to_value(super::super::described().into_openapi())
        .expect("the document serialises");
    let mut operations = Vec::new();
    for (path, item) in document["paths"].as_object().expect("paths") {
        for method in item.as_object().expect("path item").keys() {
            if ["get", "put", "post", "delete", "patch"].contains(&method.as_str()) {
                operations.push((method.to_uppercase(), path.clone()));
            }
        }
    }
    operations
}

/// The routes whose rule is pinned here, beside `RULES`: weakening one of them fails this test
/// as well as changing the table.
const PINNED: &[(&str, &str, Access)] = &[
    ("POST", "/api/v1/users", Access::GlobalAdminSession),
    ("PUT", "/api/v1/users/{user}", Access::GlobalAdminSession),
    ("DELETE", "/api/v1/users/{user}", Access::GlobalAdminSession),
    ("GET", "/api/v1/users", Access::GlobalAdmin),
    (
        "PUT",
        "/api/v1/teams/{tc}/members/{user}",
        Access::TeamSession(Role::Admin),
    ),
    (
        "DELETE",
        "/api/v1/teams/{tc}/members/{user}",
        Access::TeamSession(Role::Admin),
    ),
    ("GET", "/api/v1/worker-token", Access::GlobalAdminSession),
    (
        "GET",
        "/api/v1/teams/{tc}/worker-token",
        Access::TeamSession(Role::Admin),
    ),
    (
        "POST",
        "/api/v1/teams/{tc}/worker-token",
        Access::TeamSession(Role::Admin),
    ),
    ("GET", "/api/v1/api-tokens", Access::Session),
    ("POST", "/api/v1/api-tokens", Access::Session),
    ("DELETE", "/api/v1/api-tokens/{id}", Access::Session),
    ("POST", "/api/v1/profile/password", Access::Session),
    ("POST", "/api/v1/logout", Access::Session),
    ("GET", "/api/v1/admin/export", Access::GlobalAdminSession),
    ("POST", "/api/v1/admin/import", Access::GlobalAdminSession),
    ("POST", "/api/v1/teams", Access::GlobalAdmin),
    ("DELETE", "/api/v1/teams/{tc}", Access::Team(Role::Admin)),
    (
        "POST",
        "/api/v1/teams/{tc}/secrets",
        Access::Team(Role::Maintain),
    ),
    (
        "GET",
        "/api/v1/teams/{tc}/pipelines/{pc}/jobs/{jn}/builds/{bn}/logs",
        Access::Team(Role::Read),
    ),
    (
        "POST",
        "/api/v1/teams/{tc}/pipelines/{pc}/resources/{rc}/webhook_token",
        Access::Team(Role::Maintain),
    ),
];

#[test]
fn sensitive_routes_keep_their_rules() {
    for (method, path, access) in PINNED {
        assert_eq!(rule(method, path), Some(*access), "{method} {path}");
    }
}

#[test]
fn every_route_has_one_rule_and_every_rule_a_route() {
    let operations = operations();
    let missing: Vec<_> = operations
        .iter()
        .filter(|(method, path)| rule(method, path).is_none())
        .collect();
    assert!(
        missing.is_empty(),
        "routes without a rule in access::RULES: {missing:?}"
    );
    let routes: BTreeSet<_> = operations
        .iter()
        .map(|(m, p)| (m.as_str(), p.as_str()))
        .collect();
    let mut seen = BTreeSet::new();
    for (method, path, _) in RULES {
        assert!(
            routes.contains(&(*method, *path)),
            "access::RULES has {method} {path}, which is no route"
        );
        assert!(seen.insert((method, path)), "two rules for {method} {path}");
    }
}

/// The callers' credentials on a fresh server.
struct Callers {
    api: TestApi,
    tokens: Vec<(Who, Option<String>)>,
}

impl Callers {
    async fn new() -> Callers {
        let api = TestApi::with_pipeline().await;
        let accounts = api.server.accounts().clone();
        let team = api.store().team("main").await.expect("main");
        let other = api
            .store()
            .create_team("other", Utc::now())
            .await
            .expect("other");
        let now = Utc::now();
        let mut tokens = Vec::new();
        let mut n = 0;
        for who in EVERYONE {
            n += 1;
            let name = format!("user{n}");
            let token = match who {
                Who::Anonymous => None,
                Who::NotBearer => Some("Basic dXNlcjpwYXNz".to_owned()),
                Who::Garbage => Some("Bearer nonsense".to_owned()),
                Who::UnknownToken => Some(format!("Bearer {}{}", API_TOKEN_PREFIX, "0".repeat(64))),
                Who::GlobalWorkerToken => Some(format!(
                    "Bearer {}",
                    api.server
                        .worker_token(None)
                        .await
                        .expect("global")
                        .expose()
                )),
                Who::TeamWorkerToken => Some(format!(
                    "Bearer {}",
                    api.server
                        .worker_token(Some(team.id))
                        .await
                        .expect("team")
                        .expose()
                )),
                _ => {
                    let admin = matches!(
                        who,
                        Who::GlobalAdmin
                            | Who::GlobalAdminToken
                            | Who::GlobalAdminTeamToken
                            | Who::MustChange
                    );
                    let user = accounts
                        .create_user(
                            NewUser {
                                name,
                                full_name: String::new(),
                                password_hash: None,
                                admin,
                                must_change_password: who == Who::MustChange,
                            },
                            now,
                        )
                        .await
                        .expect("user");
                    let role = match who {
                        Who::Member(role) | Who::PersonalToken(role) | Who::TeamToken(role, _) => {
                            Some(role)
                        }
                        Who::ExpiredToken => Some(Role::Admin),
                        _ => None,
                    };
                    if let Some(role) = role {
                        accounts
                            .set_member(team.id, user.id, role, now)
                            .await
                            .expect("member");
                    }
                    if who == Who::OtherTeamAdmin {
                        accounts
                            .set_member(other.id, user.id, Role::Admin, now)
                            .await
                            .expect("member");
                    }
                    let token = match who {
                        Who::PersonalToken(_)
                        | Who::TeamToken(..)
                        | Who::GlobalAdminTeamToken
                        | Who::ExpiredToken
                        | Who::GlobalAdminToken => {
                            let token = new_token(API_TOKEN_PREFIX);
                            accounts
                                .create_api_token(NewApiToken {
                                    user: user.id,
                                    name: "t".to_owned(),
                                    token_hash: token_hash(token.expose()),
                                    prefix: token.expose()[..12].to_owned(),
                                    team: match who {
                                        Who::TeamToken(_, role) => Some((team.id, role)),
                                        Who::GlobalAdminTeamToken => Some((team.id, Role::Admin)),
                                        _ => None,
                                    },
                                    expires_at: (who == Who::ExpiredToken)
                                        .then(|| now - chrono::Duration::seconds(1)),
                                    created_at: now,
                                })
                                .await
                                .expect("token");
                            token.into_exposed()
                        }
                        _ => session(&api.server, &user).await,
                    };
                    Some(format!("Bearer {token}"))
                }
            };
            tokens.push((who, token));
        }
        Callers { api, tokens }
    }
}

/// A request path for a route: its parameters filled with things of the fixture (or things
/// that do not exist: the access layer answers before the handler looks).
fn fill(path: &str) -> String {
    path.replace("{tc}", "main")
        .replace("{pc}", "demo")
        .replace("{jn}", "build")
        .replace("{bn}", "1")
        .replace("{rc}", "cron.tick")
        .replace("{id}", "1")
        .replace("{name}", "stream")
        .replace("{token}", "no-such-token")
        .replace("{user}", "user7")
}

#[tokio::test]
async fn every_route_answers_every_caller_as_its_rule_says() {
    let mut checked = 0;
    for (method, path) in operations() {
        let access = rule(&method, &path).expect("a rule (checked by the test above)");
        // A fresh server per route: what one caller changes does not affect the next.
        let callers = Callers::new().await;
        // Those who are refused first: a refusal changes nothing.
        let mut order = callers.tokens.clone();
        order.sort_by_key(|(who, _)| expected(access, *who, &method, &path) == Outcome::Served);
        let mut calls: Vec<(Who, Option<String>, &str)> = order
            .iter()
            .map(|(who, header)| (*who, header.clone(), method.as_str()))
            .collect();
        // HEAD is served by the GET handler, and needs what GET does.
        if method == "GET" {
            calls.extend(
                order
                    .iter()
                    .filter(|(who, _)| matches!(who, Who::Anonymous | Who::Member(Role::Read)))
                    .map(|(who, header)| (*who, header.clone(), "HEAD")),
            );
        }
        for (who, header, sent) in calls {
            let want = expected(access, who, &method, &path);
            let mut request = axum::http::Request::builder()
                .method(Method::from_bytes(sent.as_bytes()).expect("method"))
                .uri(fill(&path))
                .header("content-type", "application/json");
            if let Some(header) = &header {
                request = request.header("authorization", header);
            }
            let request = request
                .body(axum::body::Body::from(json!({}).to_string()))
                .expect("request");
            let answer = super::read(callers.api.router_oneshot(request).await).await;
            let head = sent == "HEAD";
            let code = || answer.json()["error"]["code"].as_str().map(str::to_owned);
            let context = format!(
                "{sent} {path} as {who:?}: {} {}",
                answer.status, answer.text
            );
            match want {
                Outcome::Served => assert!(
                    answer.status != StatusCode::UNAUTHORIZED
                        && answer.status != StatusCode::FORBIDDEN
                        && answer.status != StatusCode::INTERNAL_SERVER_ERROR,
                    "expected to be served: {context}"
                ),
                Outcome::Unauthenticated => {
                    assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{context}");
                    if !head {
                        assert_eq!(code().as_deref(), Some("unauthenticated"), "{context}");
                    }
                    assert_eq!(
                        answer
                            .response_headers
                            .get("www-authenticate")
                            .map(|v| v.as_bytes()),
                        Some(&b"Bearer"[..]),
                        "{context}"
                    );
                }
                Outcome::Forbidden => {
                    assert_eq!(answer.status, StatusCode::FORBIDDEN, "{context}");
                    if !head {
                        assert_eq!(code().as_deref(), Some("forbidden"), "{context}");
                    }
                }
                Outcome::MustChangePassword => {
                    assert_eq!(answer.status, StatusCode::FORBIDDEN, "{context}");
                    if !head {
                        assert_eq!(
                            code().as_deref(),
                            Some("password_change_required"),
                            "{context}"
                        );
                    }
                }
            }
            checked += 1;
        }
    }
    assert!(checked > 1000, "only {checked} calls made");
}

/// Whether `value` holds one of the private fields anywhere.
fn private_field(value: &serde_json::Value) -> Option<String> {
    match value {
        serde_json::Value::Object(map) => map.iter().find_map(|(key, value)| {
            if PRIVATE_FIELDS.contains(&key.as_str()) {
                Some(key.clone())
            } else {
                private_field(value)
            }
        }),
        serde_json::Value::Array(items) => items.iter().find_map(private_field),
        _ => None,
    }
}

#[tokio::test]
async fn a_public_pipeline_is_read_by_anyone_without_its_private_parts() {
    let api = TestApi::with_pipeline().await;
    // A build with inputs, and the pipeline made public.
    api.pending_build(api.job_id("deploy").await).await;
    api.post("/api/v1/teams/main/pipelines/demo/expose", json!({}))
        .await
        .data();
    let visitor = api.user("visitor", None).await;
    let mut public = 0;
    for (method, path) in operations() {
        let access = rule(&method, &path).expect("a rule");
        let uri = fill(&path).replace("/jobs/build/", "/jobs/deploy/");
        for token in [None, Some(visitor.as_str())] {
            if token.is_some()
                && !matches!(
                    access,
                    Access::ReadOrPublic | Access::Team(_) | Access::TeamSession(_)
                )
            {
                continue;
            }
            let method = Method::from_bytes(method.as_bytes()).expect("method");
            let answer = api
                .call_as(token, method.clone(), &uri, Some(json!({})))
                .await;
            let context = format!(
                "{method} {uri} as {token:?}: {} {}",
                answer.status, answer.text
            );
            match access {
                Access::Anyone => {}
                Access::ReadOrPublic => {
                    // Served (a version that does not exist is a 404 all the same).
                    assert!(
                        answer.status.is_success() || answer.status == StatusCode::NOT_FOUND,
                        "{context}"
                    );
                    if answer.status.is_success() && answer.text.starts_with('{') {
                        assert_eq!(private_field(&answer.json()), None, "{context}");
                        public += 1;
                    }
                }
                _ if token.is_none() => {
                    assert_eq!(answer.status, StatusCode::UNAUTHORIZED, "{context}");
                }
                // The visitor's own account (profile, tokens, logout) is not about the pipeline.
                Access::Team(_) | Access::TeamSession(_) => {
                    assert_eq!(answer.status, StatusCode::FORBIDDEN, "{context}");
                }
                _ => {}
            }
        }
    }
    assert!(public >= 16, "{public} public reads");
    // Members see it all; visitors see the jobs and builds, not the file.
    let full = api.get("/api/v1/teams/main/pipelines/demo").await.data();
    assert!(
        full["config"].is_string() && full["vars"].is_object(),
        "{full}"
    );
    let seen = api
        .call_as(None, Method::GET, "/api/v1/teams/main/pipelines/demo", None)
        .await
        .data();
    assert_eq!(seen["name"], "demo");
    assert_eq!(seen["jobs"].as_array().map(Vec::len), Some(2), "{seen}");
    assert!(
        seen.get("config").is_none() && seen.get("vars").is_none(),
        "{seen}"
    );
    let build = api
        .call_as(
            None,
            Method::GET,
            "/api/v1/teams/main/pipelines/demo/jobs/deploy/builds/1",
            None,
        )
        .await
        .data();
    assert_eq!(build["status"], "pending");
    assert!(build.get("inputs").is_none(), "{build}");
    // Logs stay private; a pipeline made private again is closed at once.
    api.call_as(
        None,
        Method::GET,
        "/api/v1/teams/main/pipelines/demo/jobs/deploy/builds/1/logs",
        None,
    )
    .await
    .error(StatusCode::UNAUTHORIZED, "unauthenticated");
    api.post("/api/v1/teams/main/pipelines/demo/hide", json!({}))
        .await
        .data();
    api.call_as(None, Method::GET, "/api/v1/teams/main/pipelines/demo", None)
        .await
        .error(StatusCode::UNAUTHORIZED, "unauthenticated");
}
