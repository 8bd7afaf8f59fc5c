//! Single sign-on over the API: the login methods, the flow's redirect and callback, the first
//! login's profile, a user's linked identities, and the providers and local login for global
//! admins. The flow itself is `crate::auth::sso`.
//!
//! The callback ends in the browser: it answers `303 See Other` to the web UI (`/`), with the
//! new session in the `pikoci_session` cookie (`HttpOnly`, `SameSite=Lax`; `Secure` when
//! `--external-url` is `https`), or to `/?sso=complete-profile&…` for a first login, or
//! `/?sso=linked&provider=…` after linking. Errors are answered as the API's JSON errors.

use axum::Json;
use axum::extract::{Extension, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use pikoci_core::secrets::Secret;
use pikoci_core::store::AuthProvider;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::accounts::LoggedInView;
use super::error::{ApiError, ApiResult, ErrorBody};
use super::extract::{ApiJson, ApiPath, ApiQuery};
use super::views::time;
use super::{Data, data};
use crate::Server;
use crate::auth::sso::{self, COOKIE_PATH, FLOW_COOKIE, FLOW_LIFETIME, Kind, PROFILE_COOKIE};
use crate::auth::{Caller, Credential, SESSION_COOKIE};

/// The address single sign-on sends the provider back to: `--external-url`; without it,
/// `http://` and the request's `Host` for a loopback address only (a test, a laptop): a
/// provider that matches redirect URIs loosely would send codes to any `Host` a request names.
fn sso_base(server: &Server, headers: &HeaderMap) -> ApiResult<String> {
    if server.config().external_url.is_some() {
        return Ok(base_url(server, headers));
    }
    let host = headers
        .get(header::HOST)
        .and_then(|host| host.to_str().ok())
        .unwrap_or_default();
    if loopback(host) {
        Ok(base_url(server, headers))
    } else {
        Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "single sign-on needs the server's address: start it with --external-url \
             (PIKOCI_EXTERNAL_URL), such as https://ci.example.com",
        ))
    }
}

/// Whether a `Host` header names a loopback address (with or without a port).
fn loopback(host: &str) -> bool {
    let name = match host.rsplit_once(':') {
        Some((name, port)) if !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) => name,
        _ => host,
    };
    matches!(name, "127.0.0.1" | "localhost" | "[::1]")
}

/// The address users reach the server at: `--external-url`, or `http://` and the request's
/// `Host`.
pub(crate) fn base_url(server: &Server, headers: &HeaderMap) -> String {
    if let Some(url) = &server.config().external_url {
        return url.clone();
    }
    let host = headers
        .get(header::HOST)
        .and_then(|host| host.to_str().ok())
        .unwrap_or("localhost");
    format!("http://{host}")
}

/// Whether cookies must be sent over `https` only.
fn secure(server: &Server) -> bool {
    server
        .config()
        .external_url
        .as_deref()
        .is_some_and(|url| url.starts_with("https://"))
}

/// A `Set-Cookie` value: `HttpOnly`, `SameSite=Lax`, `Secure` behind `https`; `max_age` 0
/// deletes it.
pub(crate) fn set_cookie(
    server: &Server,
    name: &str,
    value: &str,
    path: &str,
    max_age: u64,
) -> HeaderValue {
    let secure = if secure(server) { "; Secure" } else { "" };
    let mut header = HeaderValue::from_str(&format!(
        "{name}={value}; Path={path}; Max-Age={max_age}; HttpOnly; SameSite=Lax{secure}"
    ))
    .unwrap_or_else(|_| HeaderValue::from_static("pikoci_invalid=; Max-Age=0"));
    header.set_sensitive(true);
    header
}

/// The session cookie of a new login session.
pub(crate) fn session_cookie(server: &Server, logged_in: &crate::auth::LoggedIn) -> HeaderValue {
    let seconds = (logged_in.expires_at - server.now()).num_seconds().max(0);
    set_cookie(
        server,
        SESSION_COOKIE,
        logged_in.token.expose(),
        "/",
        u64::try_from(seconds).unwrap_or(0),
    )
}

/// The value of cookie `name` in the request, if sent.
pub(crate) fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|value| value.to_str().ok())
        .flat_map(|value| value.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(key, _)| *key == name)
        .map(|(_, value)| value.trim())
        .filter(|value| !value.is_empty())
}

fn see_other(location: &str) -> Response {
    let mut response = StatusCode::SEE_OTHER.into_response();
    if let Ok(value) = HeaderValue::from_str(location) {
        response.headers_mut().insert(header::LOCATION, value);
    }
    response
}

/// A query string of `pairs`.
fn query(pairs: &[(&str, &str)]) -> String {
    let mut query = openidconnect::url::form_urlencoded::Serializer::new(String::new());
    for (name, value) in pairs {
        query.append_pair(name, value);
    }
    query.finish()
}

// ---- login methods ----

/// A provider offered on the login page.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct LoginProviderView {
    name: String,
    display_name: String,
    /// `oidc`, `oauth2` or `github`.
    kind: String,
    /// Where the login page sends the browser to log in with it.
    login_url: String,
}

/// `{"local_login", "providers"}`.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct LoginMethodsView {
    /// Whether users may log in with a password.
    local_login: bool,
    /// The enabled providers, by name.
    providers: Vec<LoginProviderView>,
}

/// `GET /auth/methods`: how users may log in.
#[utoipa::path(get, path = "/auth/methods", tag = "sso", summary = "How users may log in",
    responses((status = 200, description = "Whether a password is accepted, and the enabled identity providers.", body = Data<LoginMethodsView>)))]
pub(crate) async fn methods(
    State(server): State<Server>,
) -> ApiResult<Json<Data<LoginMethodsView>>> {
    let local_login = server.accounts().local_login().await?;
    let providers = server
        .accounts()
        .auth_providers()
        .await?
        .into_iter()
        .filter(|provider| provider.enabled)
        .map(|provider| LoginProviderView {
            login_url: format!("{COOKIE_PATH}/{}", provider.name),
            name: provider.name,
            display_name: provider.display_name,
            kind: provider.kind,
        })
        .collect();
    Ok(data(LoginMethodsView {
        local_login,
        providers,
    }))
}

// ---- the flow ----

/// `{provider}`: an identity provider's name.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub(crate) struct ProviderPath {
    /// The provider's name.
    provider: String,
}

/// `GET /auth/sso/{provider}`: sends the browser to the provider to log in.
#[utoipa::path(get, path = "/auth/sso/{provider}", tag = "sso", summary = "Log in with an identity provider",
    params(ProviderPath),
    responses(
        (status = 303, description = "To the provider; the flow's cookie `pikoci_sso` is set for 10 minutes."),
    ))]
pub(crate) async fn start(
    State(server): State<Server>,
    headers: HeaderMap,
    ApiPath(path): ApiPath<ProviderPath>,
) -> Response {
    // An unknown provider is 404 whatever the address.
    if let Err(error) = server.accounts().auth_provider(&path.provider).await {
        return ApiError::from(error).into_response();
    }
    let base = match sso_base(&server, &headers) {
        Ok(base) => base,
        Err(error) => return error.into_response(),
    };
    match server.sso_start(&path.provider, None, &base).await {
        Ok((url, flow)) => {
            let mut response = see_other(&url);
            response
                .headers_mut()
                .insert(header::SET_COOKIE, flow_cookie(&server, &flow));
            response
        }
        Err(error) => ApiError::from(error).into_response(),
    }
}

fn flow_cookie(server: &Server, flow: &str) -> HeaderValue {
    set_cookie(
        server,
        FLOW_COOKIE,
        flow,
        COOKIE_PATH,
        FLOW_LIFETIME.as_secs(),
    )
}

/// `{"url"}`: where to send the browser.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct LinkView {
    /// The provider's login page, for this flow.
    url: String,
}

/// `POST /profile/identities/{provider}`: starts linking an identity at the provider to the
/// caller. A `POST` with a login session, so that another site cannot start it in a
/// logged-in browser (and link its own identity); the browser then goes to `url` with the
/// flow's cookie, and comes back to the callback.
#[utoipa::path(post, path = "/profile/identities/{provider}", tag = "sso", summary = "Link an identity",
    params(ProviderPath),
    responses(
        (status = 200, description = "Where to send the browser; the flow's cookie `pikoci_sso` is set for 10 minutes.", body = Data<LinkView>),
    ))]
pub(crate) async fn link(
    State(server): State<Server>,
    headers: HeaderMap,
    Extension(caller): Extension<Caller>,
    ApiPath(path): ApiPath<ProviderPath>,
) -> ApiResult<Response> {
    let account = super::accounts::signed_in(&caller)?;
    let Credential::Session(session) = &account.credential else {
        return Err(ApiError::invalid(
            "an identity is linked in a login session",
        ));
    };
    server.accounts().auth_provider(&path.provider).await?;
    let base = sso_base(&server, &headers)?;
    let (url, flow) = server
        .sso_start(
            &path.provider,
            Some((account.user.id, session.clone())),
            &base,
        )
        .await?;
    let mut response = data(LinkView { url }).into_response();
    response
        .headers_mut()
        .insert(header::SET_COOKIE, flow_cookie(&server, &flow));
    Ok(response)
}

/// What the provider sends back.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct CallbackQuery {
    /// The authorization code.
    code: Option<String>,
    /// The flow's state, checked against its cookie.
    state: Option<String>,
    /// The provider's error, when the user refused or it failed.
    error: Option<String>,
    /// Its explanation.
    error_description: Option<String>,
}

/// `GET /auth/sso/{provider}/callback`: where the provider sends the browser back.
#[utoipa::path(get, path = "/auth/sso/{provider}/callback", tag = "sso", summary = "Come back from an identity provider",
    params(ProviderPath, CallbackQuery),
    responses(
        (status = 303, description = "Logged in (to `/`, with the `pikoci_session` cookie), a first login (to `/?sso=complete-profile&username=…&full_name=…&email=…`, with the `pikoci_sso_profile` cookie), or linked (to `/?sso=linked&provider=…`)."),
        (status = 400, description = "The flow's cookie is missing, stale or not this flow's, or the provider refused (`invalid_input`).", body = ErrorBody<'_>),
        (status = 503, description = "The provider could not be reached, or answered something that does not verify (`unavailable`).", body = ErrorBody<'_>),
    ))]
pub(crate) async fn callback(
    State(server): State<Server>,
    headers: HeaderMap,
    ApiPath(path): ApiPath<ProviderPath>,
    ApiQuery(answer): ApiQuery<CallbackQuery>,
) -> Response {
    if let Some(error) = &answer.error {
        let why = answer.error_description.as_deref().unwrap_or(error);
        return ApiError::invalid(format!(
            "identity provider \"{}\" did not log you in: {why}",
            path.provider
        ))
        .into_response();
    }
    let (Some(code), Some(state)) = (&answer.code, &answer.state) else {
        return ApiError::invalid("the provider's answer has no code or state").into_response();
    };
    let outcome = server
        .sso_callback(&path.provider, cookie(&headers, FLOW_COOKIE), code, state)
        .await;
    let mut response = match outcome {
        Ok(sso::Outcome::LoggedIn(logged_in)) => {
            let mut response = see_other("/");
            response
                .headers_mut()
                .append(header::SET_COOKIE, session_cookie(&server, &logged_in));
            response
        }
        Ok(sso::Outcome::NewIdentity { claims, cookie }) => {
            let suggested = query(&[
                ("sso", "complete-profile"),
                ("provider", &path.provider),
                ("username", claims.username.as_deref().unwrap_or_default()),
                ("full_name", claims.full_name.as_deref().unwrap_or_default()),
                ("email", claims.email.as_deref().unwrap_or_default()),
            ]);
            let mut response = see_other(&format!("/?{suggested}"));
            response.headers_mut().append(
                header::SET_COOKIE,
                set_cookie(
                    &server,
                    PROFILE_COOKIE,
                    &cookie,
                    COOKIE_PATH,
                    FLOW_LIFETIME.as_secs(),
                ),
            );
            response
        }
        Ok(sso::Outcome::Linked) => see_other(&format!(
            "/?{}",
            query(&[("sso", "linked"), ("provider", &path.provider)])
        )),
        Err(error) => ApiError::from(error).into_response(),
    };
    // The flow is over, whatever happened: its cookie goes.
    response.headers_mut().append(
        header::SET_COOKIE,
        set_cookie(&server, FLOW_COOKIE, "", COOKIE_PATH, 0),
    );
    response
}

/// `{"username", "full_name"?}`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CompleteProfileBody {
    /// The new user's name (a-z, 0-9, '-', '_').
    username: String,
    #[serde(default)]
    full_name: String,
}

/// `POST /auth/sso/complete-profile`: creates the user of a first login by single sign-on
/// (kept in the `pikoci_sso_profile` cookie) with the name chosen, and logs in.
#[utoipa::path(post, path = "/auth/sso/complete-profile", tag = "sso", summary = "Complete a first login",
    request_body = CompleteProfileBody,
    responses(
        (status = 200, description = "The user, created and logged in (the session is in the body and the `pikoci_session` cookie).", body = Data<LoggedInView>),
        (status = 400, description = "No first login in this browser, or it is stale (`invalid_input`).", body = ErrorBody<'_>),
        (status = 409, description = "The name is taken, or the identity was linked meanwhile (`conflict`).", body = ErrorBody<'_>),
    ))]
pub(crate) async fn complete_profile(
    State(server): State<Server>,
    headers: HeaderMap,
    ApiJson(body): ApiJson<CompleteProfileBody>,
) -> Response {
    let done = server
        .sso_complete_profile(
            cookie(&headers, PROFILE_COOKIE),
            &body.username,
            &body.full_name,
        )
        .await;
    match done {
        Ok(logged_in) => {
            let session = session_cookie(&server, &logged_in);
            let mut response = data(LoggedInView::new(logged_in)).into_response();
            response.headers_mut().append(header::SET_COOKIE, session);
            response.headers_mut().append(
                header::SET_COOKIE,
                set_cookie(&server, PROFILE_COOKIE, "", COOKIE_PATH, 0),
            );
            response
        }
        Err(error) => ApiError::from(error).into_response(),
    }
}

// ---- the user's identities ----

/// An identity linked to the user: `{"provider", "subject", "created_at"}`.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Identity)]
pub(crate) struct IdentityView {
    provider: String,
    /// Who the user is at the provider.
    subject: String,
    created_at: String,
}

/// `GET /profile/identities`: the identities linked to the caller.
#[utoipa::path(get, path = "/profile/identities", tag = "sso", summary = "List my linked identities",
    responses((status = 200, description = "The identities, by provider.", body = Data<Vec<IdentityView>>)))]
pub(crate) async fn identities(
    State(server): State<Server>,
    Extension(caller): Extension<Caller>,
) -> ApiResult<Json<Data<Vec<IdentityView>>>> {
    let account = super::accounts::signed_in(&caller)?;
    identity_views(&server, account.user.id).await
}

/// `DELETE /profile/identities/{provider}`: unlinks the caller's identity there, unless the
/// caller would have no way left to log in.
#[utoipa::path(delete, path = "/profile/identities/{provider}", tag = "sso", summary = "Unlink one of my identities",
    params(ProviderPath),
    responses(
        (status = 200, description = "Unlinked.", body = Data<super::accounts::Done>),
        (status = 409, description = "The user would be locked out: set a password or link another identity first (`conflict`).", body = ErrorBody<'_>),
    ))]
pub(crate) async fn unlink(
    State(server): State<Server>,
    Extension(caller): Extension<Caller>,
    ApiPath(path): ApiPath<ProviderPath>,
) -> ApiResult<Json<Data<super::accounts::Done>>> {
    let account = super::accounts::signed_in(&caller)?;
    server
        .accounts()
        .unlink_identity(account.user.id, &path.provider)
        .await?;
    tracing::info!(user = %account.user.name, provider = %path.provider, "identity unlinked");
    Ok(data(super::accounts::Done::yes()))
}

/// `{user}` and `{provider}`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub(crate) struct UserProviderPath {
    /// The user's name.
    user: String,
    /// The provider's name.
    provider: String,
}

/// `GET /users/{user}/identities`: the identities linked to a user (global admins).
#[utoipa::path(get, path = "/users/{user}/identities", tag = "sso", summary = "List a user's linked identities",
    params(super::accounts::UserPath),
    responses((status = 200, description = "The identities, by provider.", body = Data<Vec<IdentityView>>)))]
pub(crate) async fn user_identities(
    State(server): State<Server>,
    ApiPath(path): ApiPath<super::accounts::UserPath>,
) -> ApiResult<Json<Data<Vec<IdentityView>>>> {
    let user = server.accounts().user(path.name()).await?;
    identity_views(&server, user.id).await
}

async fn identity_views(
    server: &Server,
    user: pikoci_core::store::UserId,
) -> ApiResult<Json<Data<Vec<IdentityView>>>> {
    let identities = server.accounts().identities(user).await?;
    Ok(data(
        identities
            .into_iter()
            .map(|identity| IdentityView {
                provider: identity.provider,
                subject: identity.subject,
                created_at: time(identity.created_at),
            })
            .collect(),
    ))
}

/// `{"subject"}`: who the user is at the provider.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct SubjectBody {
    /// The identity's subject: `sub` at an OpenID Connect provider, the numeric user id at
    /// GitHub.
    subject: String,
}

/// `PUT /users/{user}/identities/{provider}` `{"subject"}`: links an identity to a user
/// (global admins, by session): how users join when passwords are off and the provider creates
/// no user.
#[utoipa::path(put, path = "/users/{user}/identities/{provider}", tag = "sso", summary = "Link an identity to a user",
    params(UserProviderPath),
    request_body = SubjectBody,
    responses(
        (status = 200, description = "Linked (or it was).", body = Data<super::accounts::Done>),
        (status = 409, description = "The identity is another user's, or the user has another one at this provider (`conflict`).", body = ErrorBody<'_>),
    ))]
pub(crate) async fn put_user_identity(
    State(server): State<Server>,
    Extension(caller): Extension<Caller>,
    ApiPath(path): ApiPath<UserProviderPath>,
    ApiJson(body): ApiJson<SubjectBody>,
) -> ApiResult<Json<Data<super::accounts::Done>>> {
    let user = server.accounts().user(&path.user).await?;
    server
        .accounts()
        .link_identity(user.id, &path.provider, body.subject.trim(), server.now())
        .await?;
    tracing::info!(user = %user.name, provider = %path.provider, by = caller.name(), "identity linked by an admin");
    Ok(data(super::accounts::Done::yes()))
}

/// `DELETE /users/{user}/identities/{provider}`: unlinks a user's identity (global admins, by
/// session), even when it was the user's only way in: an identity that is not the user's, an
/// account being taken back.
#[utoipa::path(delete, path = "/users/{user}/identities/{provider}", tag = "sso", summary = "Unlink a user's identity",
    params(UserProviderPath),
    responses(
        (status = 200, description = "Unlinked.", body = Data<super::accounts::Done>),
        (status = 409, description = "No global admin could log in after it (`conflict`).", body = ErrorBody<'_>),
    ))]
pub(crate) async fn delete_user_identity(
    State(server): State<Server>,
    Extension(caller): Extension<Caller>,
    ApiPath(path): ApiPath<UserProviderPath>,
) -> ApiResult<Json<Data<super::accounts::Done>>> {
    let user = server.accounts().user(&path.user).await?;
    server
        .accounts()
        .delete_identity(user.id, &path.provider)
        .await?;
    tracing::info!(user = %user.name, provider = %path.provider, by = caller.name(), "identity unlinked by an admin");
    Ok(data(super::accounts::Done::yes()))
}

// ---- providers (global admins) ----

/// A provider as global admins see it (its client secret never).
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = AuthProvider)]
pub(crate) struct ProviderView {
    name: String,
    display_name: String,
    /// `oidc`, `oauth2` or `github`.
    kind: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    issuer_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    auth_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    token_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    userinfo_url: Option<String>,
    scopes: Vec<String>,
    client_id: String,
    /// Whether a client secret is set (it is never shown).
    has_client_secret: bool,
    username_claim: String,
    subject_claim: String,
    enabled: bool,
    /// Whether a first login of an identity nobody has creates a user.
    allow_signup: bool,
    /// The redirect URL to register at the provider.
    callback_url: String,
    created_at: String,
    updated_at: String,
}

fn provider_view(provider: AuthProvider, base: &str) -> ProviderView {
    ProviderView {
        callback_url: Server::callback_url(base, &provider.name),
        has_client_secret: !provider.client_secret.expose().is_empty(),
        name: provider.name,
        display_name: provider.display_name,
        kind: provider.kind,
        issuer_url: provider.issuer_url,
        auth_url: provider.auth_url,
        token_url: provider.token_url,
        userinfo_url: provider.userinfo_url,
        scopes: provider.scopes,
        client_id: provider.client_id,
        username_claim: provider.username_claim,
        subject_claim: provider.subject_claim,
        enabled: provider.enabled,
        allow_signup: provider.allow_signup,
        created_at: time(provider.created_at),
        updated_at: time(provider.updated_at),
    }
}

/// `GET /admin/auth-providers`: every identity provider.
#[utoipa::path(get, path = "/admin/auth-providers", tag = "sso", summary = "List the identity providers",
    responses((status = 200, description = "The providers, by name.", body = Data<Vec<ProviderView>>)))]
pub(crate) async fn list_providers(
    State(server): State<Server>,
    headers: HeaderMap,
) -> ApiResult<Json<Data<Vec<ProviderView>>>> {
    let base = base_url(&server, &headers);
    let providers = server.accounts().auth_providers().await?;
    Ok(data(
        providers
            .into_iter()
            .map(|provider| provider_view(provider, &base))
            .collect(),
    ))
}

/// `GET /admin/auth-providers/{provider}`.
#[utoipa::path(get, path = "/admin/auth-providers/{provider}", tag = "sso", summary = "Get an identity provider",
    params(ProviderPath),
    responses((status = 200, description = "The provider.", body = Data<ProviderView>)))]
pub(crate) async fn get_provider(
    State(server): State<Server>,
    headers: HeaderMap,
    ApiPath(path): ApiPath<ProviderPath>,
) -> ApiResult<Json<Data<ProviderView>>> {
    let provider = server.accounts().auth_provider(&path.provider).await?;
    Ok(data(provider_view(provider, &base_url(&server, &headers))))
}

/// An identity provider to create or replace. `kind` `github` needs only the client id and
/// secret; `oidc` needs `issuer_url`; `oauth2` needs `auth_url`, `token_url` and
/// `userinfo_url`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ProviderBody {
    /// `oidc`, `oauth2` or `github`.
    kind: String,
    /// The name on the login page (default: the provider's name).
    #[serde(default)]
    display_name: Option<String>,
    #[serde(default)]
    issuer_url: Option<String>,
    #[serde(default)]
    auth_url: Option<String>,
    #[serde(default)]
    token_url: Option<String>,
    #[serde(default)]
    userinfo_url: Option<String>,
    /// Default: `openid profile email` (OIDC), `read:user user:email` (GitHub), none (OAuth2).
    #[serde(default)]
    scopes: Option<Vec<String>>,
    client_id: String,
    /// Kept when left out of a replacement; `""` removes it (a public client).
    #[serde(default)]
    #[schema(format = Password)]
    client_secret: Option<String>,
    /// The claim that suggests the user name at a first login (default `preferred_username`,
    /// GitHub `login`).
    #[serde(default)]
    username_claim: Option<String>,
    /// The claim that identifies the user (plain OAuth2; default `sub`, GitHub `id`).
    #[serde(default)]
    subject_claim: Option<String>,
    /// Default: as it was, or true.
    #[serde(default)]
    enabled: Option<bool>,
    /// Whether a first login of an identity nobody has creates a user (who then chooses a
    /// name). Default: as it was when the kind stays, else false: at a public provider
    /// (GitHub, Google, GitLab.com) anyone could sign up. Turn it on for a provider that only
    /// your people can log in to.
    #[serde(default)]
    allow_signup: Option<bool>,
}

impl std::fmt::Debug for ProviderBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProviderBody")
            .field("kind", &self.kind)
            .field("client_id", &self.client_id)
            .finish_non_exhaustive()
    }
}

/// `url` when it is an `http(s)` URL; the field's name in the error otherwise.
fn check_url(field: &str, url: Option<String>, needed: bool) -> ApiResult<Option<String>> {
    let url = url
        .map(|url| url.trim().to_owned())
        .filter(|u| !u.is_empty());
    match url {
        None if needed => Err(ApiError::invalid(format!(
            "{field} is required for this kind"
        ))),
        None => Ok(None),
        Some(url) => match openidconnect::url::Url::parse(&url) {
            Ok(parsed) if ["http", "https"].contains(&parsed.scheme()) => Ok(Some(url)),
            _ => Err(ApiError::invalid(format!(
                "{field} \"{url}\" is not an http(s) URL"
            ))),
        },
    }
}

/// `PUT /admin/auth-providers/{provider}`: creates or replaces an identity provider.
#[utoipa::path(put, path = "/admin/auth-providers/{provider}", tag = "sso", summary = "Create or replace an identity provider",
    params(ProviderPath),
    request_body = ProviderBody,
    responses(
        (status = 201, description = "The provider, created.", body = Data<ProviderView>),
        (status = 200, description = "The provider, replaced.", body = Data<ProviderView>),
        (status = 409, description = "Disabling it would leave no global admin able to log in while local login is off (`conflict`).", body = ErrorBody<'_>),
    ))]
pub(crate) async fn put_provider(
    State(server): State<Server>,
    headers: HeaderMap,
    Extension(caller): Extension<Caller>,
    ApiPath(path): ApiPath<ProviderPath>,
    ApiJson(body): ApiJson<ProviderBody>,
) -> ApiResult<Response> {
    let Some(kind) = Kind::parse(&body.kind) else {
        return Err(ApiError::invalid(format!(
            "unknown kind \"{}\": use oidc, oauth2 or github",
            body.kind
        )));
    };
    if !pikoci_core::name::is_canonical(&path.provider) {
        return Err(ApiError::invalid(format!(
            "invalid provider name \"{}\": use a-z, 0-9, '-' and '_'",
            path.provider
        )));
    }
    if body.client_id.trim().is_empty() {
        return Err(ApiError::invalid("client_id is required"));
    }
    let oidc = kind == Kind::Oidc;
    let oauth2 = kind == Kind::OAuth2;
    let issuer_url = check_url("issuer_url", body.issuer_url, oidc)?;
    let auth_url = check_url("auth_url", body.auth_url, oauth2)?;
    let token_url = check_url("token_url", body.token_url, oauth2)?;
    let userinfo_url = check_url("userinfo_url", body.userinfo_url, oauth2)?;
    let github = kind == Kind::GitHub;
    let default_scopes: &[&str] = match kind {
        Kind::Oidc => &["openid", "profile", "email"],
        Kind::GitHub => sso::github::SCOPES,
        Kind::OAuth2 => &[],
    };
    let existing = match server.accounts().auth_provider(&path.provider).await {
        Ok(existing) => Some(existing),
        Err(error) if error.kind() == pikoci_core::ErrorKind::NotFound => None,
        Err(error) => return Err(error.into()),
    };
    let client_secret = match body.client_secret {
        Some(secret) => server.seal_client_secret(&Secret::new(secret))?,
        None => existing
            .as_ref()
            .map_or_else(|| Secret::new(String::new()), |p| p.client_secret.clone()),
    };
    let now = server.now();
    let provider = AuthProvider {
        display_name: body
            .display_name
            .filter(|name| !name.trim().is_empty())
            .unwrap_or_else(|| path.provider.clone()),
        name: path.provider.clone(),
        kind: kind.as_str().to_owned(),
        issuer_url,
        auth_url: auth_url.or_else(|| github.then(|| sso::github::AUTH_URL.to_owned())),
        token_url: token_url.or_else(|| github.then(|| sso::github::TOKEN_URL.to_owned())),
        userinfo_url: userinfo_url.or_else(|| github.then(|| sso::github::USERINFO_URL.to_owned())),
        scopes: body
            .scopes
            .unwrap_or_else(|| default_scopes.iter().map(|s| (*s).to_owned()).collect()),
        client_id: body.client_id.trim().to_owned(),
        client_secret,
        username_claim: body.username_claim.unwrap_or_else(|| {
            if github {
                sso::github::USERNAME_CLAIM
            } else {
                "preferred_username"
            }
            .to_owned()
        }),
        subject_claim: body.subject_claim.unwrap_or_else(|| {
            if github {
                sso::github::SUBJECT_CLAIM
            } else {
                "sub"
            }
            .to_owned()
        }),
        enabled: body
            .enabled
            .unwrap_or_else(|| existing.as_ref().is_none_or(|p| p.enabled)),
        allow_signup: body.allow_signup.unwrap_or_else(|| {
            existing
                .as_ref()
                .is_some_and(|p| p.allow_signup && p.kind == kind.as_str())
        }),
        created_at: now,
        updated_at: now,
    };
    let created = server.accounts().put_auth_provider(&provider, now).await?;
    tracing::info!(provider = %provider.name, by = caller.name(), created, "identity provider set");
    let stored = server.accounts().auth_provider(&provider.name).await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((
        status,
        data(provider_view(stored, &base_url(&server, &headers))),
    )
        .into_response())
}

/// `DELETE /admin/auth-providers/{provider}`: deletes a provider and the identities linked
/// through it.
#[utoipa::path(delete, path = "/admin/auth-providers/{provider}", tag = "sso", summary = "Delete an identity provider",
    params(ProviderPath),
    responses(
        (status = 200, description = "Deleted, with its identities.", body = Data<super::accounts::Done>),
        (status = 409, description = "No global admin could log in after it (`conflict`).", body = ErrorBody<'_>),
    ))]
pub(crate) async fn delete_provider(
    State(server): State<Server>,
    Extension(caller): Extension<Caller>,
    ApiPath(path): ApiPath<ProviderPath>,
) -> ApiResult<Json<Data<super::accounts::Done>>> {
    server
        .accounts()
        .delete_auth_provider(&path.provider)
        .await?;
    tracing::info!(provider = %path.provider, by = caller.name(), "identity provider deleted");
    Ok(data(super::accounts::Done::yes()))
}

/// `{"local_login"}`.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct AuthSettings {
    /// Whether users may log in with a password.
    local_login: bool,
}

/// `GET /admin/auth-settings`.
#[utoipa::path(get, path = "/admin/auth-settings", tag = "sso", summary = "Get the login settings",
    responses((status = 200, description = "The settings.", body = Data<AuthSettings>)))]
pub(crate) async fn get_settings(
    State(server): State<Server>,
) -> ApiResult<Json<Data<AuthSettings>>> {
    Ok(data(AuthSettings {
        local_login: server.accounts().local_login().await?,
    }))
}

/// `PUT /admin/auth-settings` `{"local_login"}`: turns login with a password on or off.
#[utoipa::path(put, path = "/admin/auth-settings", tag = "sso", summary = "Change the login settings",
    request_body = AuthSettings,
    responses(
        (status = 200, description = "The settings, changed.", body = Data<AuthSettings>),
        (status = 409, description = "Turning local login off while no global admin has an identity at an enabled provider (`conflict`).", body = ErrorBody<'_>),
    ))]
pub(crate) async fn put_settings(
    State(server): State<Server>,
    Extension(caller): Extension<Caller>,
    ApiJson(body): ApiJson<AuthSettings>,
) -> ApiResult<Json<Data<AuthSettings>>> {
    server
        .accounts()
        .set_local_login(body.local_login, server.now())
        .await?;
    tracing::info!(
        local_login = body.local_login,
        by = caller.name(),
        "login settings changed"
    );
    Ok(data(body))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_loopback_hosts_stand_for_the_external_url() {
        for host in [
            "127.0.0.1",
            "127.0.0.1:8080",
            "localhost:1",
            "[::1]",
            "[::1]:8080",
        ] {
            assert!(loopback(host), "{host}");
        }
        for host in [
            "",
            "ci.example.com",
            "localhost.evil.com",
            "localhost.evil.com:80",
            "127.0.0.1.evil.com",
            "evil.com:127.0.0.1",
            "localhost:",
            "[::1]x",
        ] {
            assert!(!loopback(host), "{host}");
        }
    }

    #[test]
    fn cookies_are_found_by_name() {
        let mut headers = HeaderMap::new();
        headers.append(
            header::COOKIE,
            HeaderValue::from_static("a=1; pikoci_session=pks_x ; b="),
        );
        headers.append(header::COOKIE, HeaderValue::from_static("c=3"));
        assert_eq!(cookie(&headers, "pikoci_session"), Some("pks_x"));
        assert_eq!(cookie(&headers, "c"), Some("3"));
        assert_eq!(cookie(&headers, "b"), None);
        assert_eq!(cookie(&headers, "d"), None);
    }
}
