//! Who may call each route: one table, [`RULES`], read by the [`authorize`] layer on every
//! matched route before its handler runs. A route missing from the table is refused (500, so
//! that the omission is found at once), and the authorization matrix test
//! (`tests/access.rs`) fails for it.
//!
//! Answers: 401 `unauthenticated` (with `WWW-Authenticate: Bearer`) when a route needs a user
//! and the request has no usable credential; 403 `forbidden` when the user may not do this;
//! 403 `password_change_required` while a user must choose a new password (only the routes
//! that do that are served).

use axum::extract::{FromRequestParts, MatchedPath, RawPathParams, Request, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use pikoci_core::store::{Role, audit};

use super::error::ApiError;
use crate::Server;
use crate::auth::{AuthFailure, Caller, Credential, SESSION_COOKIE};

/// What a route requires.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Access {
    /// Anyone, without a credential (health, version, login, webhooks whose token is in the
    /// path, the OpenAPI document, metrics).
    Anyone,
    /// A user, by session or personal token: things about the user (profile, teams listed).
    /// Team tokens are refused: they act in their team only.
    User,
    /// A user by login session only, not an API token (managing API tokens, changing one's
    /// password, logging out): a leaked token cannot make more tokens or lock its owner out.
    Session,
    /// At least this role in the team of the path's `{tc}` (global admins have every role).
    Team(Role),
    /// The same, by login session only: granting roles is never done with a token, so a
    /// leaked token cannot give a lasting foothold to another account.
    TeamSession(Role),
    /// A global admin, by session or personal token.
    GlobalAdmin,
    /// A global admin by login session only (creating, changing and deleting users).
    GlobalAdminSession,
    /// Role `read` in the path's team, or anyone when the path's pipeline `{pc}` is public:
    /// then the answer is the members' view without [`PRIVATE_FIELDS`].
    ReadOrPublic,
}

/// What the public view of a public pipeline leaves out of the members' view, at any depth:
/// the pipeline's file and variables, the inputs of manual builds (values, names, defaults,
/// options), the output of checks, error messages (they may quote a check's output or name a
/// secret and its path), versions and their metadata (a trigger resource's versions name the
/// team's private pipelines), the workers (a worker's id is its topic on the broker), and
/// webhook tokens. Error answers (4xx, 5xx) are passed as they are.
pub(crate) const PRIVATE_FIELDS: &[&str] = &[
    "config",
    "vars",
    "inputs",
    "log",
    "error",
    "version",
    "metadata",
    "worker",
    "webhook_token",
];

/// The largest answer the public view rewrites (a page of 500 builds is far below it).
const MAX_PUBLIC_BODY: usize = 16 * 1024 * 1024;

/// The routes a user who must change the password may call (by login session).
const BEFORE_PASSWORD_CHANGE: &[(&str, &str)] = &[
    ("GET", "/api/v1/profile"),
    ("POST", "/api/v1/profile/password"),
    ("POST", "/api/v1/logout"),
];

use Access::{
    Anyone, GlobalAdmin, GlobalAdminSession, ReadOrPublic, Session, Team, TeamSession, User,
};
use Role::{Admin, Maintain, Read, Write};

/// Every route: method, pattern (as the router matches it) and what it requires.
pub(crate) const RULES: &[(&str, &str, Access)] = &[
    // ---- outside /api/v1, and public routes ----
    ("GET", "/healthz", Anyone),
    ("GET", "/readyz", Anyone),
    // Names and counts only (teams, pipelines, jobs, routes); no secret.
    ("GET", "/metrics", Anyone),
    ("GET", "/api/v1/version", Anyone),
    ("GET", "/api/v1/openapi.json", Anyone),
    // The token in the path is the credential.
    ("POST", "/api/v1/webhooks/{token}", Anyone),
    ("POST", "/api/v1/login", Anyone),
    // ---- single sign-on: the flow checks its own cookies; linking needs a session ----
    ("GET", "/api/v1/auth/methods", Anyone),
    ("GET", "/api/v1/auth/sso/{provider}", Anyone),
    ("GET", "/api/v1/auth/sso/{provider}/callback", Anyone),
    ("POST", "/api/v1/auth/sso/complete-profile", Anyone),
    ("GET", "/api/v1/profile/identities", User),
    ("POST", "/api/v1/profile/identities/{provider}", Session),
    ("DELETE", "/api/v1/profile/identities/{provider}", Session),
    ("GET", "/api/v1/users/{user}/identities", GlobalAdmin),
    (
        "PUT",
        "/api/v1/users/{user}/identities/{provider}",
        GlobalAdminSession,
    ),
    (
        "DELETE",
        "/api/v1/users/{user}/identities/{provider}",
        GlobalAdminSession,
    ),
    ("GET", "/api/v1/admin/auth-providers", GlobalAdmin),
    (
        "GET",
        "/api/v1/admin/auth-providers/{provider}",
        GlobalAdmin,
    ),
    (
        "PUT",
        "/api/v1/admin/auth-providers/{provider}",
        GlobalAdminSession,
    ),
    (
        "DELETE",
        "/api/v1/admin/auth-providers/{provider}",
        GlobalAdminSession,
    ),
    ("GET", "/api/v1/admin/auth-settings", GlobalAdmin),
    ("PUT", "/api/v1/admin/auth-settings", GlobalAdminSession),
    // ---- the user's own account ----
    ("POST", "/api/v1/logout", Session),
    ("GET", "/api/v1/profile", User),
    ("PUT", "/api/v1/profile", User),
    ("POST", "/api/v1/profile/password", Session),
    ("GET", "/api/v1/api-tokens", Session),
    ("POST", "/api/v1/api-tokens", Session),
    ("DELETE", "/api/v1/api-tokens/{id}", Session),
    // ---- users (global admins) ----
    ("GET", "/api/v1/users", GlobalAdmin),
    ("POST", "/api/v1/users", GlobalAdminSession),
    ("GET", "/api/v1/users/{user}", GlobalAdmin),
    ("PUT", "/api/v1/users/{user}", GlobalAdminSession),
    ("DELETE", "/api/v1/users/{user}", GlobalAdminSession),
    // ---- teams ----
    // The teams the user is a member of (all of them for a global admin).
    ("GET", "/api/v1/teams", User),
    ("POST", "/api/v1/teams", GlobalAdmin),
    ("GET", "/api/v1/teams/{tc}", Team(Read)),
    ("DELETE", "/api/v1/teams/{tc}", Team(Admin)),
    ("GET", "/api/v1/teams/{tc}/members", Team(Read)),
    ("GET", "/api/v1/teams/{tc}/audit", Team(Read)),
    (
        "PUT",
        "/api/v1/teams/{tc}/members/{user}",
        TeamSession(Admin),
    ),
    (
        "DELETE",
        "/api/v1/teams/{tc}/members/{user}",
        TeamSession(Admin),
    ),
    // ---- worker tokens: a worker gets builds and their secrets ----
    ("GET", "/api/v1/worker-token", GlobalAdminSession),
    ("GET", "/api/v1/teams/{tc}/worker-token", TeamSession(Admin)),
    (
        "POST",
        "/api/v1/teams/{tc}/worker-token",
        TeamSession(Admin),
    ),
    // ---- secrets (names only are ever read) ----
    ("GET", "/api/v1/teams/{tc}/secrets", Team(Read)),
    ("POST", "/api/v1/teams/{tc}/secrets", Team(Maintain)),
    (
        "DELETE",
        "/api/v1/teams/{tc}/secrets/{name}",
        Team(Maintain),
    ),
    (
        "GET",
        "/api/v1/teams/{tc}/pipelines/{pc}/secrets",
        Team(Read),
    ),
    (
        "POST",
        "/api/v1/teams/{tc}/pipelines/{pc}/secrets",
        Team(Maintain),
    ),
    (
        "DELETE",
        "/api/v1/teams/{tc}/pipelines/{pc}/secrets/{name}",
        Team(Maintain),
    ),
    // ---- trigger streams ----
    ("GET", "/api/v1/teams/{tc}/triggers/{name}", Team(Read)),
    ("POST", "/api/v1/teams/{tc}/triggers/{name}", Team(Maintain)),
    // ---- pipelines ----
    ("GET", "/api/v1/teams/{tc}/pipelines", Team(Read)),
    ("POST", "/api/v1/teams/{tc}/pipelines", Team(Maintain)),
    ("GET", "/api/v1/teams/{tc}/pipelines/{pc}", ReadOrPublic),
    ("PUT", "/api/v1/teams/{tc}/pipelines/{pc}", Team(Maintain)),
    (
        "DELETE",
        "/api/v1/teams/{tc}/pipelines/{pc}",
        Team(Maintain),
    ),
    (
        "POST",
        "/api/v1/teams/{tc}/pipelines/{pc}/pause",
        Team(Write),
    ),
    (
        "POST",
        "/api/v1/teams/{tc}/pipelines/{pc}/unpause",
        Team(Write),
    ),
    (
        "POST",
        "/api/v1/teams/{tc}/pipelines/{pc}/expose",
        Team(Maintain),
    ),
    (
        "POST",
        "/api/v1/teams/{tc}/pipelines/{pc}/hide",
        Team(Maintain),
    ),
    // Validating may fetch the file's `source` URLs, as setting it does: those who may set.
    (
        "POST",
        "/api/v1/teams/{tc}/pipelines/{pc}/validate",
        Team(Maintain),
    ),
    (
        "GET",
        "/api/v1/teams/{tc}/pipelines/{pc}/image.dot",
        ReadOrPublic,
    ),
    (
        "GET",
        "/api/v1/teams/{tc}/pipelines/{pc}/builds",
        ReadOrPublic,
    ),
    // ---- jobs and builds ----
    (
        "GET",
        "/api/v1/teams/{tc}/pipelines/{pc}/jobs",
        ReadOrPublic,
    ),
    (
        "GET",
        "/api/v1/teams/{tc}/pipelines/{pc}/jobs/{jn}",
        ReadOrPublic,
    ),
    (
        "POST",
        "/api/v1/teams/{tc}/pipelines/{pc}/jobs/{jn}/pause",
        Team(Write),
    ),
    (
        "POST",
        "/api/v1/teams/{tc}/pipelines/{pc}/jobs/{jn}/unpause",
        Team(Write),
    ),
    (
        "POST",
        "/api/v1/teams/{tc}/pipelines/{pc}/jobs/{jn}/trigger",
        Team(Write),
    ),
    (
        "GET",
        "/api/v1/teams/{tc}/pipelines/{pc}/jobs/{jn}/builds",
        ReadOrPublic,
    ),
    (
        "GET",
        "/api/v1/teams/{tc}/pipelines/{pc}/jobs/{jn}/builds/{bn}",
        ReadOrPublic,
    ),
    (
        "GET",
        "/api/v1/teams/{tc}/pipelines/{pc}/jobs/{jn}/builds/{bn}/pending_reason",
        ReadOrPublic,
    ),
    (
        "POST",
        "/api/v1/teams/{tc}/pipelines/{pc}/jobs/{jn}/builds/{bn}/cancel",
        Team(Write),
    ),
    (
        "POST",
        "/api/v1/teams/{tc}/pipelines/{pc}/jobs/{jn}/builds/{bn}/retry",
        Team(Write),
    ),
    (
        "POST",
        "/api/v1/teams/{tc}/pipelines/{pc}/jobs/{jn}/builds/{bn}/warning",
        Team(Maintain),
    ),
    // An approval is a decision about what reaches production: maintainers.
    (
        "POST",
        "/api/v1/teams/{tc}/pipelines/{pc}/jobs/{jn}/builds/{bn}/approve",
        Team(Maintain),
    ),
    (
        "POST",
        "/api/v1/teams/{tc}/pipelines/{pc}/jobs/{jn}/builds/{bn}/reject",
        Team(Maintain),
    ),
    (
        "GET",
        "/api/v1/teams/{tc}/pipelines/{pc}/jobs/{jn}/builds/{bn}/logs",
        Team(Read),
    ),
    (
        "GET",
        "/api/v1/teams/{tc}/pipelines/{pc}/jobs/{jn}/builds/{bn}/report",
        Team(Read),
    ),
    (
        "GET",
        "/api/v1/teams/{tc}/pipelines/{pc}/jobs/{jn}/builds/{bn}/events",
        Team(Read),
    ),
    // ---- resources ----
    (
        "GET",
        "/api/v1/teams/{tc}/pipelines/{pc}/resources",
        ReadOrPublic,
    ),
    (
        "GET",
        "/api/v1/teams/{tc}/pipelines/{pc}/resources/{rc}",
        ReadOrPublic,
    ),
    (
        "GET",
        "/api/v1/teams/{tc}/pipelines/{pc}/resources/{rc}/versions",
        ReadOrPublic,
    ),
    (
        "POST",
        "/api/v1/teams/{tc}/pipelines/{pc}/resources/{rc}/versions",
        Team(Maintain),
    ),
    (
        "POST",
        "/api/v1/teams/{tc}/pipelines/{pc}/resources/{rc}/versions/{id}/trigger",
        Team(Write),
    ),
    (
        "GET",
        "/api/v1/teams/{tc}/pipelines/{pc}/resources/{rc}/versions/{id}/builds",
        ReadOrPublic,
    ),
    (
        "POST",
        "/api/v1/teams/{tc}/pipelines/{pc}/resources/{rc}/check",
        Team(Write),
    ),
    (
        "POST",
        "/api/v1/teams/{tc}/pipelines/{pc}/resources/{rc}/pin",
        Team(Write),
    ),
    (
        "POST",
        "/api/v1/teams/{tc}/pipelines/{pc}/resources/{rc}/unpin",
        Team(Write),
    ),
    // Returns the new token, a credential: maintainers (who see it on the resource too).
    (
        "POST",
        "/api/v1/teams/{tc}/pipelines/{pc}/resources/{rc}/webhook_token",
        Team(Maintain),
    ),
    // ---- workers and the server ----
    // Global workers and those of the user's teams (the health counts every worker).
    ("GET", "/api/v1/workers", User),
    ("GET", "/api/v1/workers/health", User),
    ("POST", "/api/v1/workers/prune", GlobalAdmin),
    ("DELETE", "/api/v1/workers/{id}", GlobalAdmin),
    // The export holds every team's pipelines, password hashes and sealed secrets, and an
    // import replaces the users: by session only, like every change of accounts.
    ("GET", "/api/v1/admin/export", GlobalAdminSession),
    ("POST", "/api/v1/admin/import", GlobalAdminSession),
];

/// What `method` on the route `pattern` requires; `None` for a route missing from [`RULES`].
/// `HEAD` is served by the `GET` handler, and needs what `GET` does.
pub(crate) fn rule(method: &str, pattern: &str) -> Option<Access> {
    let method = if method == "HEAD" { "GET" } else { method };
    RULES
        .iter()
        .find(|(m, p, _)| *m == method && *p == pattern)
        .map(|(_, _, access)| *access)
}

/// 401 `unauthenticated`, with the challenge of bearer tokens.
pub(crate) fn unauthenticated(message: impl Into<String>) -> Response {
    let mut response =
        ApiError::new(StatusCode::UNAUTHORIZED, "unauthenticated", message).into_response();
    response
        .headers_mut()
        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
    response
}

fn forbidden(message: impl Into<String>) -> Response {
    ApiError::new(StatusCode::FORBIDDEN, "forbidden", message).into_response()
}

/// The bearer token of a request: `None` without an `Authorization` header.
fn bearer(headers: &HeaderMap) -> Option<Result<&str, &'static str>> {
    let value = headers.get(header::AUTHORIZATION)?;
    let Ok(text) = value.to_str() else {
        return Some(Err("the Authorization header is not text"));
    };
    let token = text
        .strip_prefix("Bearer ")
        .or_else(|| text.strip_prefix("bearer "))
        .map(str::trim);
    Some(token.filter(|t| !t.is_empty()).ok_or(
        "the Authorization header is not `Bearer <token>`: send a session or API token as \
         `Authorization: Bearer <token>`",
    ))
}

/// Who sent `headers`: the user of the bearer token, or else of the session cookie
/// (`pikoci_session`); anonymous without either. A credential that does not work is refused
/// (401), not taken as anonymous.
async fn caller_of(server: &Server, headers: &HeaderMap) -> Result<Caller, Response> {
    let (token, from_cookie) = match bearer(headers) {
        Some(Err(why)) => return Err(unauthenticated(why)),
        Some(Ok(token)) => (token, false),
        None => match super::sso::cookie(headers, SESSION_COOKIE) {
            Some(token) => (token, true),
            None => return Ok(Caller::Anonymous),
        },
    };
    match server.authenticate(token).await {
        Ok(caller) => Ok(caller),
        Err(AuthFailure::Refused(refusal)) => {
            let mut response = unauthenticated(refusal.0);
            // A cookie the page's scripts cannot delete (`HttpOnly`) would stick until it
            // expires: it goes with the refusal.
            if from_cookie {
                response.headers_mut().append(
                    header::SET_COOKIE,
                    super::sso::set_cookie(server, SESSION_COOKIE, "", "/", 0),
                );
            }
            Err(response)
        }
        Err(AuthFailure::Server(error)) => Err(ApiError::from(error).into_response()),
    }
}

/// A request that changes something with the session cookie as its credential must come
/// from PikoCI's own pages: its `Origin` must be the server's address (see
/// [`super::sso::base_url`]). A browser sends the cookie with requests other sites make;
/// they cannot set `Origin` (nor an `Authorization` header).
fn cross_site(server: &Server, method: &str, headers: &HeaderMap) -> Option<Response> {
    if matches!(method, "GET" | "HEAD" | "OPTIONS")
        || headers.contains_key(header::AUTHORIZATION)
        || super::sso::cookie(headers, SESSION_COOKIE).is_none()
    {
        return None;
    }
    let expected = super::sso::base_url(server, headers);
    let origin = headers
        .get(header::ORIGIN)
        .and_then(|origin| origin.to_str().ok());
    if origin == Some(expected.as_str()) {
        return None;
    }
    let from = origin.map_or_else(|| "no Origin".to_owned(), |o| format!("Origin {o}"));
    Some(forbidden(format!(
        "a change made with the session cookie must come from this server's pages (Origin \
         {expected}), and this request has {from}: other clients send the session as \
         `Authorization: Bearer <token>`"
    )))
}

/// Checks the caller against the route's rule, and hands the caller to the handler (as a
/// request extension).
pub(crate) async fn authorize(
    State(server): State<Server>,
    matched: MatchedPath,
    request: Request,
    next: Next,
) -> Response {
    let method = match request.method().as_str() {
        "HEAD" => "GET".to_owned(),
        method => method.to_owned(),
    };
    let pattern = matched.as_str();
    let Some(access) = rule(&method, pattern) else {
        tracing::error!(%method, route = pattern, "a route has no access rule: refused");
        return ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "this route has no access rule (a bug): it is refused until it has one",
        )
        .into_response();
    };
    if access == Anyone {
        let mut request = request;
        request.extensions_mut().insert(Caller::Anonymous);
        return next.run(request).await;
    }
    if let Some(refused) = cross_site(&server, &method, request.headers()) {
        return refused;
    }
    let caller = match caller_of(&server, request.headers()).await {
        Ok(caller) => caller,
        Err(refused) => return refused,
    };
    let Some(account) = caller.account() else {
        if access == ReadOrPublic {
            let (mut parts, body) = request.into_parts();
            let path = path_params(&mut parts).await;
            let request = Request::from_parts(parts, body);
            if let Some((team, Some(pipeline))) = &path
                && is_public(&server, team, pipeline).await
            {
                return public_view(caller, request, next).await;
            }
        }
        return unauthenticated(
            "log in first: send a session or API token as `Authorization: Bearer <token>` \
             (`pikoci login` saves one for the command line)",
        );
    };
    if account.user.must_change_password
        && !BEFORE_PASSWORD_CHANGE.contains(&(method.as_str(), pattern))
    {
        return ApiError::new(
            StatusCode::FORBIDDEN,
            "password_change_required",
            format!(
                "user \"{}\" must choose a new password first: POST /api/v1/profile/password \
                 (`pikoci password`)",
                account.user.name
            ),
        )
        .into_response();
    }
    let team_token = matches!(account.credential, Credential::TeamToken { .. });
    let session = matches!(account.credential, Credential::Session(_));
    let needs_session =
        "this needs a login session, not an API token: log in (`pikoci login`, or single sign-on)";
    let refusal = match access {
        Anyone => None,
        GlobalAdminSession | TeamSession(_) if !session => Some(needs_session.to_owned()),
        User | GlobalAdmin if team_token => Some(
            "a team API token acts in its team only: use a login session or a personal token"
                .to_owned(),
        ),
        User => None,
        Session if !session => Some(needs_session.to_owned()),
        Session => None,
        GlobalAdmin | GlobalAdminSession if !account.user.admin => Some(format!(
            "only global admins may do this, and user \"{}\" is not one",
            account.user.name
        )),
        GlobalAdmin | GlobalAdminSession => None,
        Team(_) | TeamSession(_) | ReadOrPublic => {
            let needed = match access {
                Team(needed) | TeamSession(needed) => needed,
                _ => Read,
            };
            let (mut parts, body) = request.into_parts();
            let path = path_params(&mut parts).await;
            let request = Request::from_parts(parts, body);
            let Some((team, pipeline)) = path else {
                return ApiError::invalid("the team in the path cannot be read").into_response();
            };
            if access == ReadOrPublic
                && account.role_in(&team).is_none_or(|role| role < needed)
                && let Some(pipeline) = &pipeline
                && is_public(&server, &team, pipeline).await
            {
                return public_view(caller, request, next).await;
            }
            let refusal = match account.role_in(&team) {
                Some(role) if role >= needed => None,
                Some(role) => Some(format!(
                    "this needs role {needed} in team \"{team}\", and {} has {role}",
                    who(account)
                )),
                None => Some(format!(
                    "this needs role {needed} in team \"{team}\", and {} is not a member of it",
                    who(account)
                )),
            };
            return finish(refusal, caller, request, next).await;
        }
    };
    finish(refusal, caller, request, next).await
}

/// The path's team (`{tc}`) and pipeline (`{pc}`), percent-decoded; `None` when the team
/// cannot be read.
async fn path_params(parts: &mut axum::http::request::Parts) -> Option<(String, Option<String>)> {
    let params = RawPathParams::from_request_parts(parts, &()).await.ok()?;
    let find = |key: &str| {
        params
            .iter()
            .find(|(name, _)| *name == key)
            .map(|(_, value)| value.to_owned())
    };
    Some((find("tc")?, find("pc")))
}

/// Whether the pipeline exists and is public (a store error counts as not public).
async fn is_public(server: &Server, team: &str, pipeline: &str) -> bool {
    let Ok(team) = server.store().team(team).await else {
        return false;
    };
    server
        .store()
        .pipeline(team.id, pipeline)
        .await
        .is_ok_and(|pipeline| pipeline.public)
}

/// Serves a public pipeline's route to someone without a role in its team: the members' answer
/// without [`PRIVATE_FIELDS`].
async fn public_view(caller: Caller, mut request: Request, next: Next) -> Response {
    request.extensions_mut().insert(caller);
    let response = next.run(request).await;
    // Error answers are passed as they are (an error body is no member's data).
    let json = response.status().is_success()
        && response
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .is_some_and(|value| value.starts_with("application/json"));
    if !json {
        return response;
    }
    let (mut parts, body) = response.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, MAX_PUBLIC_BODY).await else {
        return ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "the answer is too large for the public view",
        )
        .into_response();
    };
    let Ok(mut value) = serde_json::from_slice::<serde_json::Value>(&bytes) else {
        return ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "the answer cannot be read for the public view",
        )
        .into_response();
    };
    strip_private(&mut value);
    parts.headers.remove(header::CONTENT_LENGTH);
    Response::from_parts(parts, axum::body::Body::from(value.to_string()))
}

/// Removes [`PRIVATE_FIELDS`] from every object in `value`.
pub(crate) fn strip_private(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::Object(map) => {
            map.retain(|key, _| !PRIVATE_FIELDS.contains(&key.as_str()));
            map.values_mut().for_each(strip_private);
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(strip_private),
        _ => {}
    }
}

/// The caller, as a refusal names it.
fn who(account: &crate::auth::Account) -> String {
    match &account.credential {
        Credential::TeamToken { team_name, .. } => format!(
            "the team token of user \"{}\" (for team \"{team_name}\")",
            account.user.name
        ),
        _ => format!("user \"{}\"", account.user.name),
    }
}

async fn finish(
    refusal: Option<String>,
    caller: Caller,
    mut request: Request,
    next: Next,
) -> Response {
    if let Some(refusal) = refusal {
        return forbidden(refusal);
    }
    // What the request changes is recorded in the audit log under the caller's name.
    let actor = caller.account().map(|account| account.user.name.clone());
    request.extensions_mut().insert(caller);
    match actor {
        Some(actor) => audit::acting_as(actor, next.run(request)).await,
        None => next.run(request).await,
    }
}
