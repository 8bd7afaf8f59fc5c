//! Logging in and out, the caller's profile and password, API tokens, users (global admins)
//! and team members.

use std::net::SocketAddr;

use axum::Json;
use axum::extract::connect_info::ConnectInfo;
use axum::extract::{Extension, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use pikoci_core::ErrorKind;
use pikoci_core::secrets::Secret;
use pikoci_core::store::{
    ApiToken, ApiTokenId, Membership, NewApiToken, NewUser, PasswordChange, Role, Team, User,
    UserUpdate,
};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::error::{ApiError, ApiResult, ErrorBody};
use super::extract::{ApiJson, ApiPath};
use super::scope::{self, TeamPath};
use super::views::time;
use super::{Data, data};
use crate::Server;
use crate::auth::{
    self, API_TOKEN_PREFIX, Caller, Credential, LoginError, password, shown_prefix, token_hash,
};

/// A user: `{"name", "full_name", "admin", "must_change_password", "has_password",
/// "created_at"}`.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = User)]
pub(crate) struct UserView {
    name: String,
    full_name: String,
    /// A global admin.
    admin: bool,
    /// The user must choose a new password before doing anything else.
    must_change_password: bool,
    /// The user can log in with a password.
    has_password: bool,
    created_at: String,
}

impl UserView {
    fn new(user: &User) -> UserView {
        UserView {
            name: user.name.clone(),
            full_name: user.full_name.clone(),
            admin: user.admin,
            must_change_password: user.must_change_password,
            has_password: user.has_password,
            created_at: time(user.created_at),
        }
    }
}

/// A user's role in a team: `{"team", "user", "role"}`.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Membership)]
pub(crate) struct MembershipView {
    team: String,
    user: String,
    /// `read`, `write`, `maintain` or `admin`.
    #[schema(pattern = "^(read|write|maintain|admin)$")]
    role: String,
}

impl MembershipView {
    fn new(membership: &Membership) -> MembershipView {
        MembershipView {
            team: membership.team_name.clone(),
            user: membership.user_name.clone(),
            role: membership.role.as_str().to_owned(),
        }
    }
}

// ---- login ----

/// `{"username", "password"}`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct LoginBody {
    username: String,
    #[schema(format = Password)]
    password: String,
}

impl std::fmt::Debug for LoginBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoginBody")
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

/// A new session: `{"user", "token", "expires_at"}`. The token is shown this once.
#[derive(Serialize, ToSchema)]
#[schema(as = LoggedIn)]
pub(crate) struct LoggedInView {
    user: UserView,
    /// `pks_` and 64 hex digits: send it as `Authorization: Bearer <token>`.
    token: String,
    expires_at: String,
}

/// `POST /login` `{"username", "password"}`: a session token. 401 for a wrong name or
/// password (which one is not said), 429 with `Retry-After` after too many failures.
#[utoipa::path(post, path = "/login", tag = "accounts", summary = "Log in with a password",
    request_body = LoginBody,
    responses(
        (status = 200, description = "A session: its token is shown this once.", body = Data<LoggedInView>),
        (status = 401, description = "Wrong user name or password (`unauthenticated`).", body = ErrorBody<'_>),
        (status = 429, description = "Too many failed logins for this user or from this address (`too_many_requests`); `Retry-After` says when to try again.", body = ErrorBody<'_>),
    ))]
pub(crate) async fn login(
    State(server): State<Server>,
    connect: Option<Extension<ConnectInfo<SocketAddr>>>,
    ApiJson(body): ApiJson<LoginBody>,
) -> Response {
    let address = connect.map(|Extension(ConnectInfo(address))| address.ip());
    let password = Secret::new(body.password);
    match server.login(&body.username, password, address).await {
        Ok(logged_in) => data(LoggedInView::new(logged_in)).into_response(),
        Err(LoginError::Disabled) => ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "login with a password is turned off on this server: log in with single sign-on \
             (GET /api/v1/auth/methods lists the providers)",
        )
        .into_response(),
        Err(LoginError::Wrong) => super::access::unauthenticated("wrong user name or password"),
        Err(LoginError::Limited(refused)) => {
            let seconds = refused.retry_after.as_secs().max(1);
            ApiError::too_many(
                format!(
                    "too many failed logins {}: try again in {seconds} s",
                    if refused.by == "user" {
                        "for this user"
                    } else {
                        "from this address"
                    }
                ),
                seconds,
            )
            .into_response()
        }
        Err(LoginError::Server(error)) => ApiError::from(error).into_response(),
    }
}

impl LoggedInView {
    pub(crate) fn new(logged_in: crate::auth::LoggedIn) -> LoggedInView {
        LoggedInView {
            user: UserView::new(&logged_in.user),
            token: logged_in.token.into_exposed(),
            expires_at: time(logged_in.expires_at),
        }
    }
}

impl std::fmt::Debug for LoggedInView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LoggedInView")
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

impl std::fmt::Debug for CreatedTokenView {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CreatedTokenView")
            .field("view", &self.view)
            .finish_non_exhaustive()
    }
}

/// `POST /logout`: ends the session the request is made with (and deletes the session
/// cookie).
#[utoipa::path(post, path = "/logout", tag = "accounts", summary = "End this session",
    responses((status = 200, description = "The session ended.", body = Data<Done>)))]
pub(crate) async fn logout(
    State(server): State<Server>,
    Extension(caller): Extension<Caller>,
) -> ApiResult<Response> {
    let account = signed_in(&caller)?;
    if let Credential::Session(hash) = &account.credential {
        server.accounts().delete_session(hash).await?;
    }
    let mut response = data(Done::yes()).into_response();
    response.headers_mut().append(
        axum::http::header::SET_COOKIE,
        super::sso::set_cookie(&server, auth::SESSION_COOKIE, "", "/", 0),
    );
    Ok(response)
}

/// `{"done": true}`.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct Done {
    done: bool,
}

impl Done {
    /// `{"done": true}`.
    pub(crate) fn yes() -> Done {
        Done { done: true }
    }
}

// ---- profile ----

/// The caller: `{"user", "teams": [Membership], "credential"}`.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = Profile)]
pub(crate) struct ProfileView {
    user: UserView,
    /// The teams the user is a member of (a global admin has every role in every team).
    teams: Vec<MembershipView>,
    /// How the request proved who it is: `session`, `personal_token` or `team_token`.
    credential: &'static str,
}

/// `GET /profile`: who the caller is.
#[utoipa::path(get, path = "/profile", tag = "accounts", summary = "Who am I",
    responses((status = 200, description = "The user, the user's teams and the credential used.", body = Data<ProfileView>)))]
pub(crate) async fn profile(
    Extension(caller): Extension<Caller>,
) -> ApiResult<Json<Data<ProfileView>>> {
    let account = signed_in(&caller)?;
    Ok(data(ProfileView {
        user: UserView::new(&account.user),
        teams: account
            .memberships
            .iter()
            .map(MembershipView::new)
            .collect(),
        credential: account.credential.kind(),
    }))
}

/// `{"full_name"?}`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct ProfileBody {
    /// The name shown beside the user name.
    #[serde(default)]
    full_name: Option<String>,
}

/// `PUT /profile` `{"full_name"?}`: the user, changed.
#[utoipa::path(put, path = "/profile", tag = "accounts", summary = "Change my full name",
    request_body(content = Option<ProfileBody>, description = "May be empty (nothing changes)."),
    responses((status = 200, description = "The user.", body = Data<UserView>)))]
pub(crate) async fn update_profile(
    State(server): State<Server>,
    Extension(caller): Extension<Caller>,
    ApiJson(body): ApiJson<ProfileBody>,
) -> ApiResult<Json<Data<UserView>>> {
    let account = signed_in(&caller)?;
    let user = server
        .accounts()
        .update_user(
            account.user.id,
            UserUpdate {
                full_name: body.full_name,
                ..UserUpdate::default()
            },
        )
        .await?;
    Ok(data(UserView::new(&user)))
}

/// `{"current_password", "new_password"}`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct PasswordBody {
    #[schema(format = Password)]
    current_password: String,
    /// At least 8 characters.
    #[schema(format = Password)]
    new_password: String,
}

impl std::fmt::Debug for PasswordBody {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PasswordBody(<redacted>)")
    }
}

/// `POST /profile/password` `{"current_password", "new_password"}`: every other session of the
/// user ends; this one goes on.
#[utoipa::path(post, path = "/profile/password", tag = "accounts", summary = "Change my password",
    request_body = PasswordBody,
    responses(
        (status = 200, description = "The password changed; the user's other sessions ended.", body = Data<UserView>),
        (status = 400, description = "The current password is wrong, or the new one is too short (`invalid_input`).", body = ErrorBody<'_>),
        (status = 429, description = "Too many wrong current passwords (`too_many_requests`).", body = ErrorBody<'_>),
    ))]
pub(crate) async fn change_password(
    State(server): State<Server>,
    Extension(caller): Extension<Caller>,
    connect: Option<Extension<ConnectInfo<SocketAddr>>>,
    ApiJson(body): ApiJson<PasswordBody>,
) -> ApiResult<Json<Data<UserView>>> {
    let account = signed_in(&caller)?;
    let Credential::Session(session) = &account.credential else {
        return Err(ApiError::invalid(
            "a password is changed in a login session",
        ));
    };
    let (user, hash) = server.accounts().login(&account.user.name).await?;
    if hash.is_some() && body.current_password.is_empty() {
        return Err(ApiError::invalid("the current password is required"));
    }
    if hash.is_some() {
        // Guessing the current password through a stolen session is a login attempt too.
        let address = connect.map(|Extension(ConnectInfo(address))| address.ip());
        server
            .inner
            .login_limits
            .attempt(Some(&user.name), address, std::time::Instant::now())
            .map_err(|refused| {
                let seconds = refused.retry_after.as_secs().max(1);
                ApiError::too_many(
                    format!("too many attempts with a wrong password: try again in {seconds} s"),
                    seconds,
                )
            })?;
        if !password::verify(Secret::new(body.current_password), hash).await {
            return Err(ApiError::invalid("the current password is wrong"));
        }
        server.inner.login_limits.succeeded(&user.name, address);
    }
    password::check_new(&body.new_password).map_err(ApiError::invalid)?;
    let new_hash = password::hash(Secret::new(body.new_password)).await;
    server
        .accounts()
        .set_password(PasswordChange {
            user: user.id,
            password_hash: new_hash,
            must_change_password: false,
            keep_session: Some(session.clone()),
            revoke_tokens: false,
        })
        .await?;
    tracing::info!(user = %user.name, "password changed; other sessions ended");
    let user = server.accounts().user(&user.name).await?;
    Ok(data(UserView::new(&user)))
}

// ---- API tokens ----

/// An API token (never its value): `{"id", "name", "prefix", "team"?, "role"?, "expires_at"?,
/// "last_used_at"?, "created_at"}`.
#[derive(Debug, Serialize, ToSchema)]
#[schema(as = ApiToken)]
pub(crate) struct TokenView {
    id: i64,
    name: String,
    /// The token's first characters, to tell it apart.
    prefix: String,
    /// A team token's team; absent for a personal token.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    team: Option<String>,
    /// A team token's role.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    role: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    expires_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(nullable = false)]
    last_used_at: Option<String>,
    created_at: String,
}

impl TokenView {
    fn new(token: &ApiToken) -> TokenView {
        TokenView {
            id: token.id.0,
            name: token.name.clone(),
            prefix: token.prefix.clone(),
            team: token.team.as_ref().map(|(_, name, _)| name.clone()),
            role: token
                .team
                .as_ref()
                .map(|(_, _, role)| role.as_str().to_owned()),
            expires_at: token.expires_at.map(time),
            last_used_at: token.last_used_at.map(time),
            created_at: time(token.created_at),
        }
    }
}

/// `GET /api-tokens`: the caller's API tokens.
#[utoipa::path(get, path = "/api-tokens", tag = "accounts", summary = "List my API tokens",
    responses((status = 200, description = "The tokens, by name (never their values).", body = Data<Vec<TokenView>>)))]
pub(crate) async fn list_tokens(
    State(server): State<Server>,
    Extension(caller): Extension<Caller>,
) -> ApiResult<Json<Data<Vec<TokenView>>>> {
    let account = signed_in(&caller)?;
    let tokens = server.accounts().list_api_tokens(account.user.id).await?;
    Ok(data(tokens.iter().map(TokenView::new).collect()))
}

/// `{"name", "team"?, "role"?, "expires_at"?}`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateToken {
    /// Unique among the user's tokens.
    name: String,
    /// A team token: this team only. Without it, a personal token that acts as the user.
    #[serde(default)]
    team: Option<String>,
    /// A team token's role, at most the user's own there (default `read`).
    #[serde(default)]
    #[schema(pattern = "^(read|write|maintain|admin)$")]
    role: Option<String>,
    /// When it stops working (RFC 3339); never without it.
    #[serde(default)]
    expires_at: Option<String>,
}

/// A new API token: the token's fields and `"token"`, its value, shown this once.
#[derive(Serialize, ToSchema)]
#[schema(as = CreatedApiToken)]
pub(crate) struct CreatedTokenView {
    #[serde(flatten)]
    view: TokenView,
    /// `pko_` and 64 hex digits: send it as `Authorization: Bearer <token>`.
    token: String,
}

/// `POST /api-tokens` `{"name", "team"?, "role"?, "expires_at"?}`: 201 with the token, whose
/// value is shown this once.
#[utoipa::path(post, path = "/api-tokens", tag = "accounts", summary = "Create an API token",
    request_body = CreateToken,
    responses(
        (status = 201, description = "The token, with its value shown this once.", body = Data<CreatedTokenView>),
        (status = 409, description = "The user has a token with this name (`conflict`).", body = ErrorBody<'_>),
    ))]
pub(crate) async fn create_token(
    State(server): State<Server>,
    Extension(caller): Extension<Caller>,
    ApiJson(body): ApiJson<CreateToken>,
) -> ApiResult<(StatusCode, Json<Data<CreatedTokenView>>)> {
    let account = signed_in(&caller)?;
    let now = server.clock().now();
    let expires_at = body
        .expires_at
        .as_deref()
        .map(|text| {
            DateTime::parse_from_rfc3339(text)
                .map(|at| at.with_timezone(&Utc))
                .map_err(|error| {
                    ApiError::invalid(format!(
                        "invalid expires_at \"{}\": {error}; give an RFC 3339 time such as \
                         2027-01-31T00:00:00Z",
                        text.escape_debug()
                    ))
                })
        })
        .transpose()?;
    if expires_at.is_some_and(|at| at <= now) {
        return Err(ApiError::invalid("expires_at is in the past"));
    }
    let team = match (&body.team, &body.role) {
        (None, Some(_)) => {
            return Err(ApiError::invalid(
                "a role is for a team token: give the team too, or leave out the role for a \
                 personal token",
            ));
        }
        (None, None) => None,
        (Some(name), role) => {
            let role: Role = role
                .as_deref()
                .unwrap_or("read")
                .parse()
                .map_err(ApiError::invalid)?;
            // The role first: whether a team the caller is not in exists is not said.
            match account.role_in(name) {
                Some(own) if own >= role => {}
                Some(own) => {
                    return Err(ApiError::new(
                        StatusCode::FORBIDDEN,
                        "forbidden",
                        format!(
                            "a token cannot do more than its owner: your role in team \"{}\" \
                             is {own}, below {role}",
                            name.escape_debug()
                        ),
                    ));
                }
                None => {
                    return Err(ApiError::new(
                        StatusCode::FORBIDDEN,
                        "forbidden",
                        format!("you are not a member of team \"{}\"", name.escape_debug()),
                    ));
                }
            }
            let team = scope::team(&server, name).await?;
            Some((team.id, role))
        }
    };
    let token = auth::new_token(API_TOKEN_PREFIX);
    let stored = server
        .accounts()
        .create_api_token(NewApiToken {
            user: account.user.id,
            name: body.name,
            token_hash: token_hash(token.expose()),
            prefix: shown_prefix(&token).to_owned(),
            team,
            expires_at,
            created_at: now,
        })
        .await?;
    tracing::info!(user = %account.user.name, token = %stored.name, "API token created");
    Ok((
        StatusCode::CREATED,
        data(CreatedTokenView {
            view: TokenView::new(&stored),
            token: token.into_exposed(),
        }),
    ))
}

/// `/api-tokens/{id}`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub(crate) struct TokenPath {
    /// The token's id.
    id: i64,
}

/// `DELETE /api-tokens/{id}`: the token stops working at once.
#[utoipa::path(delete, path = "/api-tokens/{id}", tag = "accounts", summary = "Delete one of my API tokens",
    params(TokenPath),
    responses((status = 200, description = "The token, deleted.", body = Data<Done>)))]
pub(crate) async fn delete_token(
    State(server): State<Server>,
    Extension(caller): Extension<Caller>,
    ApiPath(path): ApiPath<TokenPath>,
) -> ApiResult<Json<Data<Done>>> {
    let account = signed_in(&caller)?;
    server
        .accounts()
        .delete_api_token(account.user.id, ApiTokenId(path.id))
        .await?;
    Ok(data(Done::yes()))
}

// ---- users ----

/// `GET /users`: every user.
#[utoipa::path(get, path = "/users", tag = "users", summary = "List the users",
    responses((status = 200, description = "The users, by name.", body = Data<Vec<UserView>>)))]
pub(crate) async fn list_users(
    State(server): State<Server>,
) -> ApiResult<Json<Data<Vec<UserView>>>> {
    let users = server.accounts().list_users().await?;
    Ok(data(users.iter().map(UserView::new).collect()))
}

/// `{"name", "full_name"?, "password"? | "password_hash"?, "admin"?}`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct CreateUser {
    /// The login name: a-z, 0-9, `-` and `_`.
    #[schema(pattern = "^[a-z0-9]([a-z0-9_-]{0,253}[a-z0-9])?$", example = "alice")]
    name: String,
    #[serde(default)]
    full_name: Option<String>,
    /// A first password (at least 8 characters), which the user must change at the first
    /// login.
    #[serde(default)]
    #[schema(format = Password)]
    password: Option<String>,
    /// Or a hash the user chose (`pikoci user-password`): argon2id or bcrypt.
    #[serde(default)]
    password_hash: Option<String>,
    /// A global admin.
    #[serde(default)]
    admin: bool,
}

impl std::fmt::Debug for CreateUser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CreateUser")
            .field("name", &self.name)
            .field("admin", &self.admin)
            .finish_non_exhaustive()
    }
}

/// `POST /users`: 201 with the user.
#[utoipa::path(post, path = "/users", tag = "users", summary = "Create a user",
    request_body = CreateUser,
    responses(
        (status = 201, description = "The user.", body = Data<UserView>),
        (status = 409, description = "A user has this name (`conflict`).", body = ErrorBody<'_>),
    ))]
pub(crate) async fn create_user(
    State(server): State<Server>,
    Extension(caller): Extension<Caller>,
    ApiJson(body): ApiJson<CreateUser>,
) -> ApiResult<(StatusCode, Json<Data<UserView>>)> {
    let (password_hash, must_change) = match (body.password, body.password_hash) {
        (Some(_), Some(_)) => {
            return Err(ApiError::invalid(
                "give a password or a password_hash, not both",
            ));
        }
        (Some(password), None) => {
            password::check_new(&password).map_err(ApiError::invalid)?;
            (Some(password::hash(Secret::new(password)).await), true)
        }
        (None, Some(hash)) => {
            password::check_hash(&hash).map_err(ApiError::invalid)?;
            (Some(Secret::new(hash)), false)
        }
        (None, None) => (None, false),
    };
    let user = server
        .accounts()
        .create_user(
            NewUser {
                name: body.name,
                full_name: body.full_name.unwrap_or_default(),
                password_hash,
                admin: body.admin,
                must_change_password: must_change,
            },
            server.clock().now(),
        )
        .await?;
    tracing::info!(user = %user.name, by = caller.name(), admin = user.admin, "user created");
    Ok((StatusCode::CREATED, data(UserView::new(&user))))
}

/// `/users/{user}`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub(crate) struct UserPath {
    /// The user's name.
    #[param(example = "alice")]
    user: String,
}

impl UserPath {
    pub(crate) fn name(&self) -> &str {
        &self.user
    }
}

/// `GET /users/{user}`: the user with the user's teams.
#[utoipa::path(get, path = "/users/{user}", tag = "users", summary = "Get a user",
    params(UserPath),
    responses((status = 200, description = "The user and the user's teams.", body = Data<UserDetail>)))]
pub(crate) async fn get_user(
    State(server): State<Server>,
    ApiPath(path): ApiPath<UserPath>,
) -> ApiResult<Json<Data<UserDetail>>> {
    let user = server.accounts().user(&path.user).await?;
    let teams = server.accounts().memberships(user.id).await?;
    Ok(data(UserDetail {
        user: UserView::new(&user),
        teams: teams.iter().map(MembershipView::new).collect(),
    }))
}

/// `{"user", "teams": [Membership]}`.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct UserDetail {
    user: UserView,
    teams: Vec<MembershipView>,
}

/// `{"name"?, "full_name"?, "admin"?, "password"?}`.
#[derive(Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct UpdateUser {
    /// A new login name.
    #[serde(default)]
    #[schema(pattern = "^[a-z0-9]([a-z0-9_-]{0,253}[a-z0-9])?$")]
    name: Option<String>,
    #[serde(default)]
    full_name: Option<String>,
    /// Make or unmake a global admin (the last one is kept).
    #[serde(default)]
    admin: Option<bool>,
    /// A password reset: the user must change it at the next login, and every session and
    /// API token of the user ends.
    #[serde(default)]
    #[schema(format = Password)]
    password: Option<String>,
}

impl std::fmt::Debug for UpdateUser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UpdateUser")
            .field("name", &self.name)
            .field("admin", &self.admin)
            .finish_non_exhaustive()
    }
}

/// `PUT /users/{user}`: the user, changed.
#[utoipa::path(put, path = "/users/{user}", tag = "users", summary = "Change a user, or reset a password",
    params(UserPath),
    request_body(content = Option<UpdateUser>, description = "May be empty (nothing changes)."),
    responses(
        (status = 200, description = "The user.", body = Data<UserView>),
        (status = 409, description = "The name is taken, or this would leave no global admin (`conflict`).", body = ErrorBody<'_>),
    ))]
pub(crate) async fn update_user(
    State(server): State<Server>,
    Extension(caller): Extension<Caller>,
    ApiPath(path): ApiPath<UserPath>,
    ApiJson(body): ApiJson<UpdateUser>,
) -> ApiResult<Json<Data<UserView>>> {
    let user = server.accounts().user(&path.user).await?;
    let reset = match &body.password {
        Some(password) => {
            password::check_new(password).map_err(ApiError::invalid)?;
            Some(password::hash(Secret::new(password.clone())).await)
        }
        None => None,
    };
    let mut user = server
        .accounts()
        .update_user(
            user.id,
            UserUpdate {
                name: body.name,
                full_name: body.full_name,
                admin: body.admin,
            },
        )
        .await?;
    if let Some(hash) = reset {
        server
            .accounts()
            .set_password(PasswordChange {
                user: user.id,
                password_hash: hash,
                must_change_password: true,
                keep_session: None,
                revoke_tokens: true,
            })
            .await?;
        tracing::info!(user = %user.name, by = caller.name(), "password reset; sessions and API tokens ended");
        user = server.accounts().user(&user.name).await?;
    }
    Ok(data(UserView::new(&user)))
}

/// `DELETE /users/{user}`: the user with the user's sessions, tokens and memberships.
#[utoipa::path(delete, path = "/users/{user}", tag = "users", summary = "Delete a user",
    params(UserPath),
    responses(
        (status = 200, description = "The user, deleted.", body = Data<Done>),
        (status = 409, description = "The last global admin is kept (`conflict`).", body = ErrorBody<'_>),
    ))]
pub(crate) async fn delete_user(
    State(server): State<Server>,
    Extension(caller): Extension<Caller>,
    ApiPath(path): ApiPath<UserPath>,
) -> ApiResult<Json<Data<Done>>> {
    let user = server.accounts().user(&path.user).await?;
    server.accounts().delete_user(user.id).await?;
    tracing::info!(user = %user.name, by = caller.name(), "user deleted");
    Ok(data(Done::yes()))
}

// ---- team members ----

/// `GET /teams/{tc}/members`: the team's members and their roles.
#[utoipa::path(get, path = "/teams/{tc}/members", tag = "teams", summary = "List a team's members",
    params(TeamPath),
    responses((status = 200, description = "The members, by user name.", body = Data<Vec<MembershipView>>)))]
pub(crate) async fn members(
    State(server): State<Server>,
    ApiPath(path): ApiPath<TeamPath>,
) -> ApiResult<Json<Data<Vec<MembershipView>>>> {
    let team = scope::team(&server, &path.tc).await?;
    let members = server.accounts().team_members(team.id).await?;
    Ok(data(members.iter().map(MembershipView::new).collect()))
}

/// `/teams/{tc}/members/{user}`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Path)]
pub(crate) struct MemberPath {
    /// The team's name.
    #[param(pattern = "^[a-z0-9]([a-z0-9_-]{0,253}[a-z0-9])?$", example = "main")]
    tc: String,
    /// The user's name.
    #[param(example = "alice")]
    user: String,
}

/// `{"role"}`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct MemberBody {
    /// `read`, `write`, `maintain` or `admin`.
    #[schema(pattern = "^(read|write|maintain|admin)$", example = "maintain")]
    role: String,
}

/// `PUT /teams/{tc}/members/{user}` `{"role"}`: adds the user to the team, or changes the
/// member's role.
#[utoipa::path(put, path = "/teams/{tc}/members/{user}", tag = "teams", summary = "Add a member or change a member's role",
    params(MemberPath), request_body = MemberBody,
    responses(
        (status = 200, description = "The membership.", body = Data<MembershipView>),
        (status = 409, description = "This would leave the team with no admins (`conflict`).", body = ErrorBody<'_>),
    ))]
pub(crate) async fn set_member(
    State(server): State<Server>,
    Extension(caller): Extension<Caller>,
    ApiPath(path): ApiPath<MemberPath>,
    ApiJson(body): ApiJson<MemberBody>,
) -> ApiResult<Json<Data<MembershipView>>> {
    let role: Role = body.role.parse().map_err(ApiError::invalid)?;
    let (team, user) = member_scope(&server, &path).await?;
    let membership = server
        .accounts()
        .set_member(team.id, user.id, role, server.clock().now())
        .await?;
    tracing::info!(team = %team.name, user = %user.name, role = %role, by = caller.name(), "member set");
    Ok(data(MembershipView::new(&membership)))
}

/// `DELETE /teams/{tc}/members/{user}`: the user leaves the team, with the user's team
/// tokens for it.
#[utoipa::path(delete, path = "/teams/{tc}/members/{user}", tag = "teams", summary = "Remove a member",
    params(MemberPath),
    responses(
        (status = 200, description = "The member, removed.", body = Data<Done>),
        (status = 409, description = "This would leave the team with no admins (`conflict`).", body = ErrorBody<'_>),
    ))]
pub(crate) async fn remove_member(
    State(server): State<Server>,
    Extension(caller): Extension<Caller>,
    ApiPath(path): ApiPath<MemberPath>,
) -> ApiResult<Json<Data<Done>>> {
    let (team, user) = member_scope(&server, &path).await?;
    server
        .accounts()
        .remove_member(team.id, user.id)
        .await
        .map_err(|error| {
            if error.kind() == ErrorKind::NotFound {
                ApiError::not_found(format!(
                    "user \"{}\" is not a member of team \"{}\"",
                    user.name, team.name
                ))
            } else {
                ApiError::from(error)
            }
        })?;
    tracing::info!(team = %team.name, user = %user.name, by = caller.name(), "member removed");
    Ok(data(Done::yes()))
}

/// The team and the user of a member's path.
async fn member_scope(server: &Server, path: &MemberPath) -> ApiResult<(Team, User)> {
    let team = scope::team(server, &path.tc).await?;
    let user = server.accounts().user(&path.user).await?;
    Ok((team, user))
}

/// The account of a caller the access layer let through.
pub(super) fn signed_in(caller: &Caller) -> ApiResult<&auth::Account> {
    caller
        .account()
        .ok_or_else(|| ApiError::new(StatusCode::UNAUTHORIZED, "unauthenticated", "log in first"))
}
