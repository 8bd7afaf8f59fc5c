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
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use pikoci_core::store::Role;

use super::error::ApiError;
use crate::Server;
use crate::auth::{AuthFailure, Caller, Credential};

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
}

/// The routes a user who must change the password may call (by login session).
const BEFORE_PASSWORD_CHANGE: &[(&str, &str)] = &[
    ("GET", "/api/v1/profile"),
    ("POST", "/api/v1/profile/password"),
    ("POST", "/api/v1/logout"),
];

use Access::{Anyone, GlobalAdmin, GlobalAdminSession, Session, Team, TeamSession, User};
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
    ("GET", "/api/v1/teams/{tc}/pipelines/{pc}", Team(Read)),
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
    (
        "GET",
        "/api/v1/teams/{tc}/pipelines/{pc}/image.dot",
        Team(Read),
    ),
    (
        "GET",
        "/api/v1/teams/{tc}/pipelines/{pc}/builds",
        Team(Read),
    ),
    // ---- jobs and builds ----
    ("GET", "/api/v1/teams/{tc}/pipelines/{pc}/jobs", Team(Read)),
    (
        "GET",
        "/api/v1/teams/{tc}/pipelines/{pc}/jobs/{jn}",
        Team(Read),
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
        Team(Read),
    ),
    (
        "GET",
        "/api/v1/teams/{tc}/pipelines/{pc}/jobs/{jn}/builds/{bn}",
        Team(Read),
    ),
    (
        "GET",
        "/api/v1/teams/{tc}/pipelines/{pc}/jobs/{jn}/builds/{bn}/pending_reason",
        Team(Read),
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
        Team(Read),
    ),
    (
        "GET",
        "/api/v1/teams/{tc}/pipelines/{pc}/resources/{rc}",
        Team(Read),
    ),
    (
        "GET",
        "/api/v1/teams/{tc}/pipelines/{pc}/resources/{rc}/versions",
        Team(Read),
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
        Team(Read),
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
    // The export holds every team's pipelines, password hashes and sealed secrets.
    ("GET", "/api/v1/admin/export", GlobalAdmin),
    ("POST", "/api/v1/admin/import", GlobalAdmin),
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
fn bearer(request: &Request) -> Option<Result<&str, &'static str>> {
    let value = request.headers().get(header::AUTHORIZATION)?;
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
    let caller = match bearer(&request) {
        None => Caller::Anonymous,
        Some(Err(why)) => return unauthenticated(why),
        Some(Ok(token)) => match server.authenticate(token).await {
            Ok(caller) => caller,
            Err(AuthFailure::Refused(refusal)) => return unauthenticated(refusal.0),
            Err(AuthFailure::Server(error)) => return ApiError::from(error).into_response(),
        },
    };
    let Some(account) = caller.account() else {
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
    let needs_session = "this needs a login session, not an API token: log in with a password";
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
        Team(needed) | TeamSession(needed) => {
            let (mut parts, body) = request.into_parts();
            let team = RawPathParams::from_request_parts(&mut parts, &())
                .await
                .ok()
                .and_then(|params| {
                    params
                        .iter()
                        .find(|(name, _)| *name == "tc")
                        .map(|(_, value)| value.to_owned())
                });
            let request = Request::from_parts(parts, body);
            let Some(team) = team else {
                return ApiError::invalid("the team in the path cannot be read").into_response();
            };
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
    request.extensions_mut().insert(caller);
    next.run(request).await
}
