//! Logging in (a password, or single sign-on) and choosing a new password.

use std::net::SocketAddr;

use askama::Template;
use axum::Form;
use axum::extract::{ConnectInfo, Extension, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use pikoci_core::secrets::Secret;
use serde::Deserialize;

use super::{Frame, PageError, UiState, Visit, render};
use crate::auth::LoginError;

#[derive(Debug, Deserialize)]
struct Methods {
    local_login: bool,
    providers: Vec<Provider>,
}

#[derive(Debug, Deserialize)]
struct Provider {
    display_name: String,
    login_url: String,
}

#[derive(Template)]
#[template(path = "login.html")]
struct LoginPage {
    frame: Frame,
    local_login: bool,
    /// Single sign-on: (button text, URL).
    providers: Vec<(String, String)>,
    next: String,
    username: String,
    error: String,
    /// A first login by single sign-on: the form that creates the account.
    complete_profile: Option<CompleteProfile>,
}

struct CompleteProfile {
    provider: String,
    username: String,
    full_name: String,
    email: String,
}

#[derive(Debug, Default, Deserialize)]
pub(crate) struct LoginQuery {
    next: Option<String>,
    sso: Option<String>,
    provider: Option<String>,
    username: Option<String>,
    full_name: Option<String>,
    email: Option<String>,
}

/// Where to go after logging in: a path of this server only (`/…`, not `//host`, and only
/// visible ASCII: browsers drop tabs and newlines from URLs, so `/\t/host` would be `//host`).
fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(next)
            if next.starts_with('/')
                && !next.starts_with("//")
                && !next.contains('\\')
                && next.bytes().all(|b| b.is_ascii_graphic()) =>
        {
            next.to_owned()
        }
        _ => "/".to_owned(),
    }
}

async fn login_page(
    visit: &Visit,
    next: String,
    username: String,
    error: String,
    complete_profile: Option<CompleteProfile>,
) -> Result<LoginPage, PageError> {
    let methods: Methods = visit.get("/api/v1/auth/methods").await?;
    Ok(LoginPage {
        frame: visit.frame("Log in", Vec::new()),
        local_login: methods.local_login,
        providers: methods
            .providers
            .into_iter()
            .map(|p| (p.display_name, p.login_url))
            .collect(),
        next,
        username,
        error,
        complete_profile,
    })
}

/// `GET /login?next=`: the login form and the single sign-on buttons; after a first login by
/// single sign-on (`?sso=complete-profile&…`), the form that creates the account.
pub(crate) async fn page(
    visit: Visit,
    Query(query): Query<LoginQuery>,
) -> Result<Response, PageError> {
    let next = safe_next(query.next.as_deref());
    if visit.me.is_some() {
        return Ok(Redirect::to(&next).into_response());
    }
    let complete_profile =
        (query.sso.as_deref() == Some("complete-profile")).then(|| CompleteProfile {
            provider: query.provider.clone().unwrap_or_default(),
            username: query.username.clone().unwrap_or_default(),
            full_name: query.full_name.clone().unwrap_or_default(),
            email: query.email.clone().unwrap_or_default(),
        });
    let page = login_page(&visit, next, String::new(), String::new(), complete_profile).await?;
    Ok(render(&page))
}

#[derive(Deserialize)]
pub(crate) struct LoginForm {
    username: String,
    password: String,
    #[serde(default)]
    next: Option<String>,
}

/// `POST /login` (a form): logs in and sets the session cookie, then goes to `next`; shows
/// the form again with what went wrong otherwise. The form must come from this server's pages
/// (`Origin`), so that another site cannot log a browser in as someone else.
pub(crate) async fn submit(
    State(state): State<UiState>,
    visit: Visit,
    headers: HeaderMap,
    connect: Option<Extension<ConnectInfo<SocketAddr>>>,
    Form(form): Form<LoginForm>,
) -> Result<Response, PageError> {
    let server = &state.server;
    let expected = visit.base_url();
    // The form must say it comes from this server's page: `Origin` (every current browser
    // sends it with a form's POST), or else `Sec-Fetch-Site` of the same origin.
    let origin = headers.get(header::ORIGIN).and_then(|o| o.to_str().ok());
    let site = headers
        .get("sec-fetch-site")
        .and_then(|site| site.to_str().ok());
    let ours = match origin {
        Some(origin) => origin == expected && site != Some("cross-site"),
        None => matches!(site, Some("same-origin" | "none")),
    };
    if !ours {
        return Err(PageError::failed(
            StatusCode::FORBIDDEN,
            format!(
                "this login form was not sent from this server's page (it has {}): log in \
                 from {expected}/login",
                match (origin, site) {
                    (Some(origin), _) => format!("Origin {origin}"),
                    (None, Some(site)) => format!("Sec-Fetch-Site {site}"),
                    (None, None) => "neither Origin nor Sec-Fetch-Site".to_owned(),
                }
            ),
        ));
    }
    let next = safe_next(form.next.as_deref());
    let address = connect.map(|Extension(ConnectInfo(address))| address.ip());
    let (status, error) = match server
        .login(&form.username, Secret::new(form.password), address)
        .await
    {
        Ok(logged_in) => {
            let mut response = Redirect::to(&next).into_response();
            response.headers_mut().append(
                header::SET_COOKIE,
                crate::api::sso::session_cookie(server, &logged_in),
            );
            return Ok(response);
        }
        Err(LoginError::Wrong) => (
            StatusCode::UNAUTHORIZED,
            "Wrong user name or password.".to_owned(),
        ),
        Err(LoginError::Disabled) => (
            StatusCode::FORBIDDEN,
            "Logging in with a password is turned off on this server: use single sign-on."
                .to_owned(),
        ),
        Err(LoginError::Limited(refused)) => (
            StatusCode::TOO_MANY_REQUESTS,
            format!(
                "Too many failed logins: try again in {} s.",
                refused.retry_after.as_secs().max(1)
            ),
        ),
        Err(LoginError::Server(error)) => {
            tracing::error!(%error, "a login failed on the server's side");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                "The server could not check the password right now: try again in a moment."
                    .to_owned(),
            )
        }
    };
    let page = login_page(&visit, next, form.username, error, None).await?;
    Ok((status, render(&page)).into_response())
}

#[derive(Template)]
#[template(path = "password.html")]
struct PasswordPage {
    frame: Frame,
    forced: bool,
}

/// `GET /profile/password`: choosing a new password (the only page a user who must change it
/// can open).
pub(crate) async fn password_page(visit: Visit) -> Result<Response, PageError> {
    if visit.me.is_none() {
        return Err(PageError::LogIn {
            next: "/profile/password".to_owned(),
        });
    }
    #[derive(Deserialize)]
    struct Profile {
        user: User,
    }
    #[derive(Deserialize)]
    struct User {
        must_change_password: bool,
    }
    let profile: Profile = visit.get("/api/v1/profile").await?;
    Ok(render(&PasswordPage {
        frame: visit.frame("Choose a new password", Vec::new()),
        forced: profile.user.must_change_password,
    }))
}

#[cfg(test)]
mod tests {
    use super::safe_next;

    #[test]
    fn next_stays_on_this_server() {
        assert_eq!(
            safe_next(Some("/teams/a/pipelines/b")),
            "/teams/a/pipelines/b"
        );
        assert_eq!(safe_next(Some("//evil.example/x")), "/");
        assert_eq!(safe_next(Some("https://evil.example")), "/");
        assert_eq!(safe_next(Some("/\\evil.example")), "/");
        assert_eq!(safe_next(Some("/\t/evil.example")), "/");
        assert_eq!(safe_next(Some("/\n/evil.example")), "/");
        assert_eq!(safe_next(Some("/ /x")), "/");
        assert_eq!(safe_next(None), "/");
    }
}
