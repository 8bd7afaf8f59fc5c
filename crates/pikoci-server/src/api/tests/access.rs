//! The authorization matrix: every operation of the OpenAPI document, called by every kind of
//! caller, answers as the route's rule in `access::RULES` says. A route without a rule, or a
//! rule without a route, fails here.

use std::collections::BTreeSet;

use axum::http::{Method, StatusCode};
use chrono::Utc;
use pikoci_core::store::{NewApiToken, NewUser, Role};
use serde_json::json;

use super::{TestApi, session};
use crate::api::access::{Access, RULES, rule};
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
    /// A session of a global admin (not a member of `main`).
    GlobalAdmin,
    /// A personal token of a global admin.
    GlobalAdminToken,
    /// A session of a global admin who must change the password first.
    MustChange,
}

const EVERYONE: [Who; 19] = [
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
    Who::GlobalAdmin,
    Who::GlobalAdminToken,
    Who::MustChange,
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
        Who::Anonymous | Who::NotBearer | Who::Garbage | Who::UnknownToken | Who::ExpiredToken => {
            return Unauthenticated;
        }
        Who::MustChange if !BEFORE_PASSWORD_CHANGE.contains(&(method, path)) => {
            return MustChangePassword;
        }
        Who::Outsider | Who::OtherTeamAdmin => None,
        Who::Member(role) | Who::PersonalToken(role) => Some(role),
        Who::TeamToken(owner, token) => Some(owner.min(token)),
        Who::GlobalAdmin | Who::GlobalAdminToken | Who::MustChange => Some(Role::Admin),
    };
    let session = matches!(
        who,
        Who::Outsider | Who::OtherTeamAdmin | Who::Member(_) | Who::GlobalAdmin | Who::MustChange
    );
    let global_admin = matches!(
        who,
        Who::GlobalAdmin | Who::GlobalAdminToken | Who::MustChange
    );
    let team_token = matches!(who, Who::TeamToken(..));
    let allowed = match access {
        Access::Anyone => true,
        Access::User => !team_token,
        Access::Session => session,
        Access::GlobalAdmin => global_admin && !team_token,
        Access::GlobalAdminSession => global_admin && session,
        Access::Team(needed) => team_role.is_some_and(|role| role >= needed),
        Access::TeamSession(needed) => session && team_role.is_some_and(|role| role >= needed),
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
                _ => {
                    let admin = matches!(
                        who,
                        Who::GlobalAdmin | Who::GlobalAdminToken | Who::MustChange
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
