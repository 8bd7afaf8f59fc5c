//! The `AccountStore` port: who may use a server. Users with their password hashes, team
//! memberships with a role, login sessions and API tokens.
//!
//! Sessions and API tokens are stored by the SHA-256 of their value only ([`TokenHash`]): the
//! store never holds a credential that works as it is. Password hashes (argon2id or bcrypt, in
//! their PHC or modular-crypt strings) are read only through [`AccountStore::login`], so that a
//! [`User`] can be shown and logged without them.

use std::fmt;
use std::str::FromStr;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{ApiTokenId, StoreResult, TeamId, UserId};
use crate::secrets::Secret;

/// What a member may do in a team, from least to most. Each role may do everything the ones
/// before it may.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// See pipelines, builds, logs, resources, secret names, members.
    Read,
    /// Also run things: trigger, cancel and retry builds, pause and unpause, check, pin.
    Write,
    /// Also change things: set, rename and delete pipelines, secrets, versions by hand,
    /// trigger events, approvals, webhook tokens.
    Maintain,
    /// Also the team itself: members and their roles, deleting the team.
    Admin,
}

impl Role {
    /// Every role, from least to most.
    pub const ALL: [Role; 4] = [Role::Read, Role::Write, Role::Maintain, Role::Admin];

    /// The name used in the API and the database.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Read => "read",
            Role::Write => "write",
            Role::Maintain => "maintain",
            Role::Admin => "admin",
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Role {
    type Err = String;

    fn from_str(text: &str) -> Result<Role, String> {
        Role::ALL
            .into_iter()
            .find(|role| role.as_str() == text)
            .ok_or_else(|| {
                format!(
                    "unknown role \"{}\": use read, write, maintain or admin",
                    text.escape_debug()
                )
            })
    }
}

/// A user, without credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// The id.
    pub id: UserId,
    /// The login name: a canonical name (`a-z`, `0-9`, `-`, `_`).
    pub name: String,
    /// The name shown beside it (may be empty).
    pub full_name: String,
    /// A global admin: every team with role admin, and the users, teams and server routes.
    pub admin: bool,
    /// The password was set by someone else (first start, an admin's reset): the user must
    /// choose one before doing anything else.
    pub must_change_password: bool,
    /// The user has a password (a user without one cannot log in with a password).
    pub has_password: bool,
    /// When the user was created.
    pub created_at: DateTime<Utc>,
}

/// A user to create.
#[derive(Debug, Clone)]
pub struct NewUser {
    /// The login name.
    pub name: String,
    /// The name shown beside it.
    pub full_name: String,
    /// The password hash (argon2id PHC string or bcrypt); `None` for no password.
    pub password_hash: Option<Secret>,
    /// A global admin.
    pub admin: bool,
    /// The password must be changed at the next login.
    pub must_change_password: bool,
}

/// Changes to a user; `None` leaves a field as it is.
#[derive(Debug, Clone, Default)]
pub struct UserUpdate {
    /// A new login name.
    pub name: Option<String>,
    /// A new full name.
    pub full_name: Option<String>,
    /// Make or unmake a global admin (the last one is kept).
    pub admin: Option<bool>,
}

/// A new password hash for a user.
#[derive(Debug, Clone)]
pub struct PasswordChange {
    /// The user.
    pub user: UserId,
    /// The new hash.
    pub password_hash: Secret,
    /// Whether it must be changed at the next login (an admin's reset).
    pub must_change_password: bool,
    /// The one session kept (the one that changed its own password); every other session of
    /// the user is deleted, and so are the user's API tokens when `revoke_tokens` is set.
    pub keep_session: Option<TokenHash>,
    /// Delete the user's API tokens too (an admin's reset: the account may be compromised).
    pub revoke_tokens: bool,
}

/// A user's role in a team.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Membership {
    /// The team.
    pub team_id: TeamId,
    /// The team's name.
    pub team_name: String,
    /// The user.
    pub user_id: UserId,
    /// The user's name.
    pub user_name: String,
    /// The role.
    pub role: Role,
}

/// The SHA-256 of a session or API token, in lowercase hex: what the store keeps of it.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct TokenHash(pub String);

impl fmt::Debug for TokenHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // A hash is not a credential, but it is enough to find one in the database: keep it
        // out of logs anyway.
        f.write_str("TokenHash(<redacted>)")
    }
}

/// A login session.
#[derive(Debug, Clone)]
pub struct NewSession {
    /// The user.
    pub user: UserId,
    /// The hash of its token.
    pub token_hash: TokenHash,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it stops working.
    pub expires_at: DateTime<Utc>,
}

/// A stored session, with its user.
#[derive(Debug, Clone)]
pub struct Session {
    /// The user, as stored now.
    pub user: User,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it stops working.
    pub expires_at: DateTime<Utc>,
}

/// An API token to create.
#[derive(Debug, Clone)]
pub struct NewApiToken {
    /// The owner.
    pub user: UserId,
    /// Its name, unique among the owner's tokens.
    pub name: String,
    /// The hash of its value.
    pub token_hash: TokenHash,
    /// The first characters of its value (`pko_1a2b3c4d`), to tell tokens apart in lists.
    pub prefix: String,
    /// A team token: this team only, with at most this role. `None`: a personal token, which
    /// acts as its owner.
    pub team: Option<(TeamId, Role)>,
    /// When it stops working (`None`: never).
    pub expires_at: Option<DateTime<Utc>>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
}

/// A stored API token (never its value).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiToken {
    /// The id.
    pub id: ApiTokenId,
    /// The owner.
    pub user_id: UserId,
    /// Its name.
    pub name: String,
    /// The first characters of its value.
    pub prefix: String,
    /// A team token's team (id and name) and role.
    pub team: Option<(TeamId, String, Role)>,
    /// When it stops working.
    pub expires_at: Option<DateTime<Utc>>,
    /// When it was last used (updated at most once a minute).
    pub last_used_at: Option<DateTime<Utc>>,
    /// When it was created.
    pub created_at: DateTime<Utc>,
}

/// Users, memberships, sessions and API tokens. Object-safe: hold it as
/// `Arc<dyn AccountStore>`.
#[async_trait]
pub trait AccountStore: Send + Sync + fmt::Debug {
    // ---- users ----

    /// Creates a user; `Conflict` if the name is taken, `InvalidInput` if it is not canonical.
    async fn create_user(&self, user: NewUser, at: DateTime<Utc>) -> StoreResult<User>;

    /// The user with this name.
    async fn user(&self, name: &str) -> StoreResult<User>;

    /// The user with this name and the hash of its password (`None`: it has none).
    async fn login(&self, name: &str) -> StoreResult<(User, Option<Secret>)>;

    /// Every user, by name.
    async fn list_users(&self) -> StoreResult<Vec<User>>;

    /// How many users there are.
    async fn count_users(&self) -> StoreResult<u64>;

    /// Changes a user; `Conflict` for a name that is taken or for unmaking the last global
    /// admin.
    async fn update_user(&self, user: UserId, update: UserUpdate) -> StoreResult<User>;

    /// Sets a user's password hash and deletes the user's other sessions, in one transaction.
    async fn set_password(&self, change: PasswordChange) -> StoreResult<()>;

    /// Deletes a user with its memberships, sessions and tokens; `Conflict` for the last
    /// global admin.
    async fn delete_user(&self, user: UserId) -> StoreResult<()>;

    // ---- memberships ----

    /// The teams a user is a member of, by team name.
    async fn memberships(&self, user: UserId) -> StoreResult<Vec<Membership>>;

    /// The members of a team, by user name.
    async fn team_members(&self, team: TeamId) -> StoreResult<Vec<Membership>>;

    /// Adds a member or changes a member's role; `Conflict` when that would leave a team that
    /// has admins with none.
    async fn set_member(
        &self,
        team: TeamId,
        user: UserId,
        role: Role,
        at: DateTime<Utc>,
    ) -> StoreResult<Membership>;

    /// Removes a member and the member's team tokens for that team; `Conflict` when that would
    /// leave a team that has admins with none, `NotFound` for a user who is not a member.
    async fn remove_member(&self, team: TeamId, user: UserId) -> StoreResult<()>;

    // ---- sessions ----

    /// Stores a session.
    async fn create_session(&self, session: NewSession) -> StoreResult<()>;

    /// The session with this token hash, with its user; `NotFound` when there is none (expired
    /// sessions are found: the caller compares `expires_at`).
    async fn session(&self, token: &TokenHash) -> StoreResult<Session>;

    /// Deletes a session (a logout); deleting one that does not exist is not an error.
    async fn delete_session(&self, token: &TokenHash) -> StoreResult<()>;

    /// Deletes the sessions that expired before `now`; returns how many.
    async fn delete_expired_sessions(&self, now: DateTime<Utc>) -> StoreResult<u64>;

    // ---- API tokens ----

    /// Stores an API token; `Conflict` when its owner has one with the same name.
    async fn create_api_token(&self, token: NewApiToken) -> StoreResult<ApiToken>;

    /// The API token with this hash, with its owner; `NotFound` when there is none.
    async fn api_token(&self, token: &TokenHash) -> StoreResult<(ApiToken, User)>;

    /// A user's API tokens, by name.
    async fn list_api_tokens(&self, user: UserId) -> StoreResult<Vec<ApiToken>>;

    /// Deletes one of a user's API tokens; `NotFound` when the user has no token with this id.
    async fn delete_api_token(&self, user: UserId, token: ApiTokenId) -> StoreResult<()>;

    /// Records that a token was used at `at`.
    async fn touch_api_token(&self, token: ApiTokenId, at: DateTime<Utc>) -> StoreResult<()>;

    // ---- single sign-on ----

    /// The identity providers, by name.
    async fn auth_providers(&self) -> StoreResult<Vec<AuthProvider>>;

    /// The provider with this name; `NotFound` when there is none.
    async fn auth_provider(&self, name: &str) -> StoreResult<AuthProvider>;

    /// Creates or replaces the provider named `provider.name` (its `created_at` is kept when it
    /// exists); whether it was created. `Conflict` when disabling it would leave nobody able
    /// to log in (see [`AccountStore::set_local_login`]).
    async fn put_auth_provider(
        &self,
        provider: &AuthProvider,
        at: DateTime<Utc>,
    ) -> StoreResult<bool>;

    /// Deletes a provider and every identity linked through it; `NotFound` when there is none,
    /// `Conflict` when that would leave no global admin able to log in (other users who logged
    /// in only through it are locked out: the admin's decision).
    async fn delete_auth_provider(&self, name: &str) -> StoreResult<()>;

    /// The identities linked to a user, by provider.
    async fn identities(&self, user: UserId) -> StoreResult<Vec<Identity>>;

    /// The user an identity is linked to, if any.
    async fn identity_user(&self, provider: &str, subject: &str) -> StoreResult<Option<User>>;

    /// Links an identity to a user (again: no change) and returns the user; `Conflict` when it
    /// is linked to another user, or the user has another identity at this provider;
    /// `NotFound` for an unknown provider or user.
    async fn link_identity(
        &self,
        user: UserId,
        provider: &str,
        subject: &str,
        at: DateTime<Utc>,
    ) -> StoreResult<User>;

    /// Creates a user and links an identity to it, in one transaction (a first login by single
    /// sign-on); `Conflict` when the name is taken or the identity linked already.
    async fn create_user_with_identity(
        &self,
        user: NewUser,
        provider: &str,
        subject: &str,
        at: DateTime<Utc>,
    ) -> StoreResult<User>;

    /// Unlinks a user's identity at `provider`; `NotFound` when there is none, `Conflict` when
    /// the user would have no way left to log in (no password while local login is on, and no
    /// other identity at an enabled provider).
    async fn unlink_identity(&self, user: UserId, provider: &str) -> StoreResult<()>;

    /// Deletes a user's identity at `provider` whether or not the user keeps a way in (a global
    /// admin's decision: an identity that is not the user's, an account being recovered);
    /// `NotFound` when there is none, `Conflict` when no global admin could log in after it.
    async fn delete_identity(&self, user: UserId, provider: &str) -> StoreResult<()>;

    /// Whether users may log in with a password (true until turned off).
    async fn local_login(&self) -> StoreResult<bool>;

    /// Turns login with a password on or off; turning it off is a `Conflict` unless a global
    /// admin has an identity at an enabled provider (someone must be able to turn it back on).
    async fn set_local_login(&self, enabled: bool, at: DateTime<Utc>) -> StoreResult<()>;
}

/// An identity provider for single sign-on, as stored. Its kind and what its fields mean are
/// the server's (`oidc`, `oauth2`, `github`); the client secret is kept as the server gave it
/// (sealed with the secret store's master key when there is one).
#[derive(Clone, PartialEq, Eq)]
pub struct AuthProvider {
    /// The name in URLs: a canonical name.
    pub name: String,
    /// The name on the login page.
    pub display_name: String,
    /// `oidc`, `oauth2` or `github`.
    pub kind: String,
    /// The issuer, for OpenID Connect discovery.
    pub issuer_url: Option<String>,
    /// The authorization endpoint (plain OAuth2).
    pub auth_url: Option<String>,
    /// The token endpoint (plain OAuth2).
    pub token_url: Option<String>,
    /// The endpoint that says who the user is (plain OAuth2).
    pub userinfo_url: Option<String>,
    /// The scopes asked for.
    pub scopes: Vec<String>,
    /// The client id at the provider.
    pub client_id: String,
    /// The client secret as the server stored it; empty for none.
    pub client_secret: Secret,
    /// The claim that suggests a user name at the first login.
    pub username_claim: String,
    /// The claim that identifies the user at the provider (plain OAuth2; `sub` for OIDC).
    pub subject_claim: String,
    /// Offered on the login page and accepted.
    pub enabled: bool,
    /// A first login of an identity nobody has may create a user (else only identities
    /// linked to existing users log in).
    pub allow_signup: bool,
    /// When it was created.
    pub created_at: DateTime<Utc>,
    /// When it was last changed.
    pub updated_at: DateTime<Utc>,
}

impl fmt::Debug for AuthProvider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AuthProvider")
            .field("name", &self.name)
            .field("kind", &self.kind)
            .field("client_id", &self.client_id)
            .field("enabled", &self.enabled)
            .finish_non_exhaustive()
    }
}

/// An identity at a provider, linked to a user.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    /// The provider's name.
    pub provider: String,
    /// Who the user is at the provider (`sub`, or the provider's user id).
    pub subject: String,
    /// When it was linked.
    pub created_at: DateTime<Utc>,
}

/// Whose worker key: see `pikoci_core::protocol::auth`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum WorkerKeyScope {
    /// The servers' own key (signs what servers say to each other).
    Server,
    /// The global worker token's.
    Global,
    /// A team's worker token's (deleted with the team).
    Team(TeamId),
}

impl fmt::Display for WorkerKeyScope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WorkerKeyScope::Server => f.write_str("server"),
            WorkerKeyScope::Global => f.write_str("global"),
            WorkerKeyScope::Team(team) => write!(f, "team:{team}"),
        }
    }
}
