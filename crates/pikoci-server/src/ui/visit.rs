//! A visit: who asks for a page, and the API read with that visitor's credentials.

use axum::body::Body;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderMap, Request, StatusCode, header};
use std::sync::{Arc, Mutex};

use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use percent_encoding::{AsciiSet, CONTROLS};
use pikoci_core::store::Role;
use serde::Deserialize;
use serde::de::DeserializeOwned;
use tower::ServiceExt as _;

use super::{Frame, PageError, UiState};

/// What is percent-encoded in the `next` path of `/login?next=`: it keeps its slashes, so
/// that it reads as the path it is (values of other queries use `pikoci_core::percent`).
pub(crate) const QUERY: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'#')
    .add(b'%')
    .add(b'&')
    .add(b'+')
    .add(b'<')
    .add(b'=')
    .add(b'>')
    .add(b'?')
    .add(b'`')
    .add(b'{')
    .add(b'}');

/// The largest API answer a page reads (a 100,000-line log in JSON is about 10 MiB).
const MAX_ANSWER: usize = 64 * 1024 * 1024;

/// `Set-Cookie` values a page's answer carries (see [`pass_cookies`]).
#[derive(Debug, Clone, Default)]
pub(crate) struct CookieJar(Arc<Mutex<Vec<HeaderValue>>>);

impl CookieJar {
    fn add(&self, cookies: Vec<HeaderValue>) {
        if let Ok(mut jar) = self.0.lock() {
            jar.extend(cookies);
        }
    }
}

/// Gives each page request a [`CookieJar`], and its cookies to the answer. A request for a
/// part of a page (htmx's and the pages' scripts, with `HX-Request`) that needs a login gets
/// a 401 rather than the login page, which would take the part's place.
pub(crate) async fn pass_cookies(mut request: axum::extract::Request, next: Next) -> Response {
    let jar = CookieJar::default();
    request.extensions_mut().insert(jar.clone());
    let part = request.headers().contains_key("hx-request");
    let mut response = next.run(request).await;
    if part
        && response.status().is_redirection()
        && response
            .headers()
            .get(header::LOCATION)
            .and_then(|l| l.to_str().ok())
            .is_some_and(|l| l.starts_with("/login"))
    {
        response = (StatusCode::UNAUTHORIZED, "log in again").into_response();
    }
    if let Ok(mut cookies) = jar.0.lock() {
        for cookie in cookies.drain(..) {
            response.headers_mut().append(header::SET_COOKIE, cookie);
        }
    }
    response
}

/// The logged-in visitor.
#[derive(Debug, Clone)]
pub(crate) struct Me {
    pub(crate) name: String,
    pub(crate) admin: bool,
    /// The visitor's role in each team.
    pub(crate) teams: Vec<(String, Role)>,
}

/// A request for a page: the visitor, and the credentials the API is read with.
pub(crate) struct Visit {
    state: UiState,
    /// The headers passed on to the API: the cookie and the host (the API's `Origin` check
    /// and links use it).
    headers: HeaderMap,
    /// The page's path and query, to come back to after logging in.
    pub(crate) here: String,
    /// `None` for anonymous visitors.
    pub(crate) me: Option<Me>,
}

#[derive(Deserialize)]
struct Envelope<T> {
    data: T,
    #[serde(default)]
    meta: serde_json::Value,
}

#[derive(Deserialize)]
struct ErrorEnvelope {
    error: ErrorBody,
}

#[derive(Deserialize)]
struct ErrorBody {
    code: String,
    message: String,
}

#[derive(Deserialize)]
struct Profile {
    user: ProfileUser,
    teams: Vec<ProfileTeam>,
}

#[derive(Deserialize)]
struct ProfileUser {
    name: String,
    admin: bool,
    must_change_password: bool,
}

#[derive(Deserialize)]
struct ProfileTeam {
    team: String,
    role: Role,
}

impl FromRequestParts<UiState> for Visit {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &UiState) -> Result<Visit, Response> {
        let mut headers = HeaderMap::new();
        for name in [header::COOKIE, header::HOST] {
            for value in parts.headers.get_all(&name) {
                headers.append(name.clone(), value.clone());
            }
        }
        let here = parts
            .uri
            .path_and_query()
            .map_or_else(|| parts.uri.path().to_owned(), |pq| pq.as_str().to_owned());
        let mut visit = Visit {
            state: state.clone(),
            headers,
            here,
            me: None,
        };
        if crate::api::sso::cookie(&parts.headers, crate::auth::SESSION_COOKIE).is_none() {
            return Ok(visit);
        }
        let answer = visit.call("/api/v1/profile").await.map_err(|error| {
            PageError::failed(StatusCode::INTERNAL_SERVER_ERROR, error).into_response()
        })?;
        match answer.status {
            status if status.is_success() => {
                let profile: Envelope<Profile> =
                    serde_json::from_slice(&answer.body).map_err(|error| {
                        PageError::failed(
                            StatusCode::INTERNAL_SERVER_ERROR,
                            format!("the profile could not be read: {error}"),
                        )
                        .into_response()
                    })?;
                let profile = profile.data;
                if profile.user.must_change_password && parts.uri.path() != "/profile/password" {
                    return Err(PageError::ChangePassword.into_response());
                }
                visit.me = Some(Me {
                    name: profile.user.name,
                    admin: profile.user.admin,
                    teams: profile
                        .teams
                        .into_iter()
                        .map(|team| (team.team, team.role))
                        .collect(),
                });
                Ok(visit)
            }
            // A session that ended (logged out elsewhere, expired): the visit goes on
            // anonymously (its API reads send no cookie), and the page's answer deletes the
            // cookie as the API's 401 did.
            StatusCode::UNAUTHORIZED => {
                if let Some(jar) = parts.extensions.get::<CookieJar>() {
                    jar.add(answer.set_cookies);
                }
                visit.headers.remove(header::COOKIE);
                Ok(visit)
            }
            status => Err(PageError::failed(status, answer.message()).into_response()),
        }
    }
}

/// An API answer.
struct Answer {
    status: StatusCode,
    set_cookies: Vec<axum::http::HeaderValue>,
    body: axum::body::Bytes,
}

impl Answer {
    /// The message of an error answer.
    fn message(&self) -> String {
        serde_json::from_slice::<ErrorEnvelope>(&self.body).map_or_else(
            |_| String::from_utf8_lossy(&self.body).into_owned(),
            |error| error.error.message,
        )
    }
}

impl Visit {
    /// The visitor's role in `team`: global admins have every role.
    pub(crate) fn role_in(&self, team: &str) -> Option<Role> {
        let me = self.me.as_ref()?;
        if me.admin {
            return Some(Role::Admin);
        }
        me.teams
            .iter()
            .find(|(name, _)| name == team)
            .map(|(_, role)| *role)
    }

    /// Whether the visitor has at least `role` in `team`.
    pub(crate) fn may(&self, team: &str, role: Role) -> bool {
        self.role_in(team).is_some_and(|have| have >= role)
    }

    /// The frame of a page titled `title`.
    pub(crate) fn frame(&self, title: impl Into<String>, crumbs: Vec<(String, String)>) -> Frame {
        Frame {
            title: title.into(),
            user: self.me.as_ref().map(|me| me.name.clone()),
            crumbs,
        }
    }

    /// `GET path` of the API, as the visitor.
    async fn call(&self, path: &str) -> Result<Answer, String> {
        let mut request = Request::get(path).extension(crate::api::InProcess);
        if let Some(headers) = request.headers_mut() {
            headers.extend(self.headers.clone());
        }
        let request = request
            .body(Body::empty())
            .map_err(|error| format!("the API request {path} cannot be made: {error}"))?;
        let response = self
            .state
            .api
            .clone()
            .oneshot(request)
            .await
            .map_err(|error| format!("the API failed on {path}: {error}"))?;
        let status = response.status();
        let set_cookies = response
            .headers()
            .get_all(header::SET_COOKIE)
            .iter()
            .cloned()
            .collect();
        let body = axum::body::to_bytes(response.into_body(), MAX_ANSWER)
            .await
            .map_err(|error| format!("the API's answer to {path} could not be read: {error}"))?;
        Ok(Answer {
            status,
            set_cookies,
            body,
        })
    }

    /// The `data` of the API's answer to `GET path`, and its `meta` (`null` when none).
    pub(crate) async fn read<T: DeserializeOwned>(
        &self,
        path: &str,
    ) -> Result<(T, serde_json::Value), PageError> {
        let answer = self
            .call(path)
            .await
            .map_err(|error| PageError::failed(StatusCode::INTERNAL_SERVER_ERROR, error))?;
        if !answer.status.is_success() {
            let code = serde_json::from_slice::<ErrorEnvelope>(&answer.body)
                .map(|error| error.error.code)
                .unwrap_or_default();
            return Err(match (answer.status, code.as_str()) {
                (StatusCode::UNAUTHORIZED, _) => PageError::LogIn {
                    next: self.here.clone(),
                },
                (StatusCode::FORBIDDEN, "password_change_required") => PageError::ChangePassword,
                (StatusCode::FORBIDDEN, _) if self.me.is_none() => PageError::LogIn {
                    next: self.here.clone(),
                },
                (status, _) => PageError::failed(status, answer.message()),
            });
        }
        let envelope: Envelope<T> = serde_json::from_slice(&answer.body).map_err(|error| {
            PageError::failed(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("the API's answer to {path} could not be read (a bug): {error}"),
            )
        })?;
        Ok((envelope.data, envelope.meta))
    }

    /// The `data` of the API's answer to `GET path`.
    pub(crate) async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, PageError> {
        Ok(self.read(path).await?.0)
    }

    /// The address users reach the server at (links shown to copy, the `Origin` of forms).
    pub(crate) fn base_url(&self) -> String {
        crate::api::sso::base_url(&self.state.server, &self.headers)
    }
}
