//! Who is asking: users and their credentials.
//!
//! - **Sessions** (`pks_` + 64 hex digits) come from a login with a password and last
//!   [`ServerConfig::session_lifetime`](crate::ServerConfig). A logout ends one; a password
//!   change ends every other session of the user, an admin's reset all of them.
//! - **API tokens** (`pko_` + 64 hex digits) are made by a logged-in user. A personal token acts
//!   as its owner; a team token acts in one team only, with the lower of its role and its
//!   owner's current role there, and nowhere else.
//!
//! Both are random 256-bit values of which the store keeps only the SHA-256 ([`TokenHash`]).
//! What each route requires is the table of `api/access.rs`.

pub(crate) mod limit;
pub mod password;
pub(crate) mod sso;

use std::net::IpAddr;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use pikoci_core::ErrorKind;
use pikoci_core::secrets::Secret;
use pikoci_core::store::{
    AccountStore, ApiTokenId, Membership, NewSession, NewUser, PasswordChange, Role, TokenHash,
    User,
};
use sha2::Digest as _;

use crate::{Server, ServerError, ServerResult};

/// The prefix of session tokens.
pub const SESSION_PREFIX: &str = "pks_";
/// The cookie that carries a login session in a browser (set by single sign-on and, later, the
/// web UI's login): accepted like a bearer session token.
pub const SESSION_COOKIE: &str = "pikoci_session";
/// The prefix of API tokens.
pub const API_TOKEN_PREFIX: &str = "pko_";
/// The user every server has from its first start.
pub const INITIAL_ADMIN: &str = "admin";
/// How many characters of an API token are kept to tell it apart (`pko_` and 8 hex digits).
const SHOWN_PREFIX: usize = 12;

/// A new random token with `prefix`: 256 bits in hex.
pub(crate) fn new_token(prefix: &str) -> Secret {
    let mut bytes = [0u8; 32];
    rand::fill(&mut bytes);
    let mut token = String::with_capacity(prefix.len() + 64);
    token.push_str(prefix);
    for byte in bytes {
        token.push_str(&format!("{byte:02x}"));
    }
    Secret::new(token)
}

/// What the store keeps of a token.
pub(crate) fn token_hash(token: &str) -> TokenHash {
    let digest = sha2::Sha256::digest(token.as_bytes());
    TokenHash(digest.iter().map(|byte| format!("{byte:02x}")).collect())
}

/// Whether `token` has the shape of a token with `prefix`.
fn well_formed(token: &str, prefix: &str) -> bool {
    token.len() == prefix.len() + 64
        && token.starts_with(prefix)
        && token[prefix.len()..]
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// How a request proved who it is.
#[derive(Debug, Clone)]
pub(crate) enum Credential {
    /// A login session.
    Session(TokenHash),
    /// A personal API token.
    PersonalToken,
    /// A team API token: this team only, with at most this role.
    TeamToken { team_name: String, role: Role },
}

impl Credential {
    /// `session`, `personal_token` or `team_token`.
    pub(crate) fn kind(&self) -> &'static str {
        match self {
            Credential::Session(_) => "session",
            Credential::PersonalToken => "personal_token",
            Credential::TeamToken { .. } => "team_token",
        }
    }
}

/// A user with the credential of the request and the user's teams as stored now.
#[derive(Debug, Clone)]
pub(crate) struct Account {
    pub(crate) user: User,
    pub(crate) memberships: Vec<Membership>,
    pub(crate) credential: Credential,
}

impl Account {
    /// What the request may do in `team`: the user's role there (admin for a global admin),
    /// lowered to a team token's role, and nothing in other teams for a team token.
    pub(crate) fn role_in(&self, team: &str) -> Option<Role> {
        let own = if self.user.admin {
            Some(Role::Admin)
        } else {
            self.memberships
                .iter()
                .find(|m| m.team_name == team)
                .map(|m| m.role)
        };
        match &self.credential {
            Credential::TeamToken {
                team_name, role, ..
            } => {
                if team_name == team {
                    own.map(|own| own.min(*role))
                } else {
                    None
                }
            }
            _ => own,
        }
    }

    /// The teams the request may see, `None` for all of them.
    pub(crate) fn visible_teams(&self) -> Option<Vec<String>> {
        let all = self.user.admin && !matches!(self.credential, Credential::TeamToken { .. });
        (!all).then(|| {
            self.memberships
                .iter()
                .map(|m| m.team_name.clone())
                .filter(|team| self.role_in(team).is_some())
                .collect()
        })
    }
}

/// Who is asking.
#[derive(Debug, Clone)]
pub(crate) enum Caller {
    /// No credential.
    Anonymous,
    /// A user.
    Account(Box<Account>),
}

impl Caller {
    /// The account, if any.
    pub(crate) fn account(&self) -> Option<&Account> {
        match self {
            Caller::Anonymous => None,
            Caller::Account(account) => Some(account),
        }
    }

    /// The user's name, for the records of what was done (approvals, logs).
    pub(crate) fn name(&self) -> &str {
        self.account()
            .map_or("anonymous", |account| account.user.name.as_str())
    }
}

/// Why a credential was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Refusal(pub(crate) String);

/// What a login made.
#[derive(Debug)]
pub(crate) struct LoggedIn {
    pub(crate) user: User,
    pub(crate) token: Secret,
    pub(crate) expires_at: DateTime<Utc>,
}

/// Why a login failed.
#[derive(Debug)]
pub(crate) enum LoginError {
    /// The name or the password is wrong (which one is not said).
    Wrong,
    /// Too many failures: try again later.
    Limited(limit::Refused),
    /// Login with a password is turned off.
    Disabled,
    /// The store failed.
    Server(ServerError),
}

impl Server {
    /// The accounts.
    pub fn accounts(&self) -> &Arc<dyn AccountStore> {
        &self.inner.accounts
    }

    /// The caller a bearer token names. `Ok(None)` is never returned for a token: a token that
    /// is unknown, expired or revoked is refused, so that a client learns its credential
    /// stopped working rather than being served as anonymous.
    pub(crate) async fn authenticate(&self, token: &str) -> Result<Caller, AuthFailure> {
        let now = self.now();
        if well_formed(token, SESSION_PREFIX) {
            let hash = token_hash(token);
            let session = match self.accounts().session(&hash).await {
                Ok(session) => session,
                Err(error) if error.kind() == ErrorKind::NotFound => {
                    return Err(AuthFailure::Refused(Refusal(
                        "the session is unknown or ended (logged out, or the password changed): \
                         log in again"
                            .to_owned(),
                    )));
                }
                Err(error) => return Err(AuthFailure::Server(error.into())),
            };
            if session.expires_at <= now {
                return Err(AuthFailure::Refused(Refusal(format!(
                    "the session expired at {}: log in again",
                    session
                        .expires_at
                        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                ))));
            }
            return self
                .account(session.user, Credential::Session(hash))
                .await
                .map_err(AuthFailure::Server);
        }
        if well_formed(token, API_TOKEN_PREFIX) {
            let (api_token, user) = match self.accounts().api_token(&token_hash(token)).await {
                Ok(found) => found,
                Err(error) if error.kind() == ErrorKind::NotFound => {
                    return Err(AuthFailure::Refused(Refusal(
                        "the API token is unknown or was deleted: create a new one".to_owned(),
                    )));
                }
                Err(error) => return Err(AuthFailure::Server(error.into())),
            };
            if let Some(expires_at) = api_token.expires_at
                && expires_at <= now
            {
                return Err(AuthFailure::Refused(Refusal(format!(
                    "the API token \"{}\" expired at {}: create a new one",
                    api_token.name,
                    expires_at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
                ))));
            }
            self.touch_token(api_token.id, api_token.last_used_at, now)
                .await;
            let credential = match api_token.team {
                Some((_, team_name, role)) => Credential::TeamToken { team_name, role },
                None => Credential::PersonalToken,
            };
            return self
                .account(user, credential)
                .await
                .map_err(AuthFailure::Server);
        }
        Err(AuthFailure::Refused(Refusal(format!(
            "the bearer token is not a PikoCI token (a session token starts with {SESSION_PREFIX}, \
             an API token with {API_TOKEN_PREFIX}): log in with `pikoci login`"
        ))))
    }

    async fn account(&self, user: User, credential: Credential) -> ServerResult<Caller> {
        let memberships = self.accounts().memberships(user.id).await?;
        Ok(Caller::Account(Box::new(Account {
            user,
            memberships,
            credential,
        })))
    }

    /// Records a token's use, at most once a minute per token (a failure is logged: it loses
    /// only the time of a use).
    async fn touch_token(&self, id: ApiTokenId, last: Option<DateTime<Utc>>, now: DateTime<Utc>) {
        if last.is_some_and(|last| now - last < chrono::Duration::minutes(1)) {
            return;
        }
        if let Err(error) = self.accounts().touch_api_token(id, now).await {
            tracing::warn!(%error, token = %id, "cannot record the use of an API token");
        }
    }

    /// Checks a password and opens a session.
    pub(crate) async fn login(
        &self,
        name: &str,
        password: Secret,
        address: Option<IpAddr>,
    ) -> Result<LoggedIn, LoginError> {
        match self.accounts().local_login().await {
            Ok(true) => {}
            Ok(false) => return Err(LoginError::Disabled),
            Err(error) => return Err(LoginError::Server(error.into())),
        }
        let limits = &self.inner.login_limits;
        // A name that cannot exist is refused like a wrong password (as slowly), counted for
        // its address only, and never logged nor looked up.
        let possible = pikoci_core::name::is_canonical(name);
        limits
            .attempt(possible.then_some(name), address, std::time::Instant::now())
            .map_err(LoginError::Limited)?;
        if !possible {
            password::verify(password, None).await;
            return Err(LoginError::Wrong);
        }
        let found = match self.accounts().login(name).await {
            Ok(found) => Some(found),
            Err(error) if error.kind() == ErrorKind::NotFound => None,
            Err(error) => return Err(LoginError::Server(error.into())),
        };
        let (user, hash) = match found {
            Some((user, hash)) => (Some(user), hash),
            None => (None, None),
        };
        let matches = password::verify(password, hash).await;
        let Some(user) = user.filter(|_| matches) else {
            tracing::info!(user = name, address = ?address, "failed login");
            return Err(LoginError::Wrong);
        };
        limits.succeeded(name, address);
        let logged_in = self.open_session(user).await.map_err(LoginError::Server)?;
        tracing::info!(user = %logged_in.user.name, "logged in");
        Ok(logged_in)
    }

    /// Opens a login session for `user` (who proved who they are).
    pub(crate) async fn open_session(&self, user: User) -> ServerResult<LoggedIn> {
        let now = self.now();
        let token = new_token(SESSION_PREFIX);
        let expires_at = now
            + chrono::Duration::from_std(self.config().session_lifetime)
                .unwrap_or(chrono::Duration::days(30));
        let stored = async {
            // Expired sessions of everyone go at each login: no loop needed for them.
            self.accounts().delete_expired_sessions(now).await?;
            self.accounts()
                .create_session(NewSession {
                    user: user.id,
                    token_hash: token_hash(token.expose()),
                    created_at: now,
                    expires_at,
                })
                .await
        };
        stored.await?;
        Ok(LoggedIn {
            user,
            token,
            expires_at,
        })
    }

    /// Creates the users of the configuration that are missing (`--users name:HASH`), then
    /// `admin` with a generated password when no user is a global admin.
    ///
    /// Users named there are created when missing (`admin` as a global admin), and left
    /// as they are when they exist, except the first-start `admin` while its generated password
    /// was never changed: the operator's hash replaces it. Returns the generated password of a
    /// first-start `admin`, to be shown once to whoever started the server.
    pub async fn ensure_users(&self) -> ServerResult<Option<Secret>> {
        let now = self.now();
        for (name, hash) in &self.config().users {
            password::check_hash(hash.expose()).map_err(|why| {
                ServerError::new(
                    ErrorKind::InvalidInput,
                    format!("--users entry for \"{name}\": {why}"),
                )
            })?;
            match self.accounts().user(name).await {
                Ok(user) => {
                    if user.name == INITIAL_ADMIN && user.admin && user.must_change_password {
                        self.accounts()
                            .set_password(PasswordChange {
                                user: user.id,
                                password_hash: hash.clone(),
                                must_change_password: false,
                                keep_session: None,
                                revoke_tokens: false,
                            })
                            .await?;
                        tracing::info!(user = %name, "password set from --users");
                    }
                }
                Err(error) if error.kind() == ErrorKind::NotFound => {
                    self.accounts()
                        .create_user(
                            NewUser {
                                name: name.clone(),
                                full_name: String::new(),
                                password_hash: Some(hash.clone()),
                                admin: name == INITIAL_ADMIN,
                                must_change_password: false,
                            },
                            now,
                        )
                        .await?;
                    tracing::info!(user = %name, "user created from --users");
                }
                Err(error) => return Err(error.into()),
            }
        }
        // A server always has a global admin: without one (a first start, `--users` without
        // `admin`, an import of an export made before users existed), `admin` is made.
        let users = self.accounts().list_users().await?;
        if users.iter().any(|user| user.admin) {
            return Ok(None);
        }
        if users.iter().any(|user| user.name == INITIAL_ADMIN) {
            // Not made a global admin behind anyone's back: said, and left to the operator.
            tracing::error!(
                "no user is a global admin, and user admin exists but is not one: nobody can \
                 manage users; make admin a global admin in the database, or import a state \
                 that has one"
            );
            return Ok(None);
        }
        let password = new_password();
        let hash = password::hash(password.clone()).await;
        self.accounts()
            .create_user(
                NewUser {
                    name: INITIAL_ADMIN.to_owned(),
                    full_name: "Administrator".to_owned(),
                    password_hash: Some(hash),
                    admin: true,
                    must_change_password: true,
                },
                now,
            )
            .await?;
        Ok(Some(password))
    }
}

/// Shows the generated password of the first-start `admin` to whoever runs the server, on
/// standard error and not in the log: it is a credential, though one that works only until it
/// is changed, which its first login requires.
#[allow(clippy::print_stderr)]
pub fn announce_initial_admin(password: &Secret) {
    tracing::warn!(
        user = INITIAL_ADMIN,
        "created user admin with a generated password, printed on standard error; it must be \
         changed at the first login (or set one with --users admin:HASH, from `pikoci \
         user-password`)"
    );
    eprintln!(
        "\n    The first user is \"{INITIAL_ADMIN}\", with password: {}\n    Log in (`pikoci login \
         --server URL --username {INITIAL_ADMIN}`) and choose a new one.\n",
        password.expose()
    );
}

/// A random password of 20 letters and digits (about 116 bits), easy to copy.
pub(crate) fn new_password() -> Secret {
    const ALPHABET: &[u8] = b"abcdefghijkmnopqrstuvwxyzABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    // Bytes at or above the largest multiple of the alphabet's size are drawn again, so that
    // every character is as likely.
    let limit = 256 - 256 % ALPHABET.len();
    let mut password = String::with_capacity(20);
    while password.len() < 20 {
        let mut bytes = [0u8; 32];
        rand::fill(&mut bytes);
        for byte in bytes.into_iter().map(usize::from).filter(|b| *b < limit) {
            if password.len() < 20 {
                password.push(char::from(ALPHABET[byte % ALPHABET.len()]));
            }
        }
    }
    Secret::new(password)
}

/// The part of an API token kept to tell it apart.
pub(crate) fn shown_prefix(token: &Secret) -> &str {
    &token.expose()[..SHOWN_PREFIX]
}

/// Why a request's credential cannot be used.
#[derive(Debug)]
pub(crate) enum AuthFailure {
    /// The credential is refused: 401.
    Refused(Refusal),
    /// The store failed.
    Server(ServerError),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_random_prefixed_hex() {
        let a = new_token(API_TOKEN_PREFIX);
        let b = new_token(API_TOKEN_PREFIX);
        assert_ne!(a, b);
        assert_eq!(a.expose().len(), 68);
        assert!(well_formed(a.expose(), API_TOKEN_PREFIX));
        assert!(!well_formed(a.expose(), SESSION_PREFIX));
        assert!(!well_formed(&a.expose()[..67], API_TOKEN_PREFIX));
        assert!(!well_formed(&a.expose().to_uppercase(), API_TOKEN_PREFIX));
        assert_eq!(token_hash(a.expose()).0.len(), 64);
        assert_ne!(token_hash(a.expose()), token_hash(b.expose()));
        assert_eq!(&a.expose()[..SHOWN_PREFIX], shown_prefix(&a));
    }

    #[test]
    fn generated_passwords_are_long_enough() {
        let password = new_password();
        assert_eq!(password.expose().len(), 20);
        assert_eq!(password::check_new(password.expose()), Ok(()));
        assert_ne!(password, new_password());
    }
}
