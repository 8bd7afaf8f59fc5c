//! Single sign-on: logging in through an identity provider, with OpenID Connect (discovery
//! from the issuer, the ID token's signature, issuer, audience, expiry and nonce checked) or
//! plain OAuth2 (GitHub and the like: the user is whoever the provider's user endpoint says).
//!
//! A login is the authorization-code flow with PKCE (S256). What it must remember between the
//! redirect to the provider and the way back (the `state`, the nonce, the PKCE verifier, the
//! provider, and the user who is linking an identity, if any) travels in a cookie signed with
//! the servers' key, bound to the browser that started the flow and valid for 10 minutes: any
//! server of the database finishes what another started, and nothing is stored until a user
//! logs in. The callback's `state` must equal the cookie's, so a callback that a browser did not
//! start is refused (login CSRF).
//!
//! A first login of an identity nobody has yet does not create a user at once: its claims go
//! into a second signed cookie, and the user chooses a name (`complete-profile`).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use base64::Engine as _;
use openidconnect::core::{CoreAuthenticationFlow, CoreClient, CoreProviderMetadata};
use openidconnect::{
    AuthorizationCode, ClientId, ClientSecret, CsrfToken, HttpRequest, HttpResponse, IssuerUrl,
    Nonce, OAuth2TokenResponse, PkceCodeChallenge, PkceCodeVerifier, RedirectUrl, Scope,
    TokenResponse,
};
use pikoci_core::ErrorKind;
use pikoci_core::protocol::auth::{KeyScope, MacKey, Signed};
use pikoci_core::secrets::Secret;
use pikoci_core::store::{AuthProvider, NewUser, TokenHash, UserId};
use pikoci_http::reqwest;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::LoggedIn;
use crate::state::lock;
use crate::{Server, ServerError, ServerResult};

/// The cookie of a flow under way.
pub(crate) const FLOW_COOKIE: &str = "pikoci_sso";
/// The cookie of a first login waiting for its user to choose a name.
pub(crate) const PROFILE_COOKIE: &str = "pikoci_sso_profile";
/// The path both cookies are sent to.
pub(crate) const COOKIE_PATH: &str = "/api/v1/auth/sso";
/// How long a flow (and a first login's profile) may take.
pub(crate) const FLOW_LIFETIME: Duration = Duration::from_secs(600);
/// How long a provider's discovery document is kept.
const DISCOVERY_TTL: Duration = Duration::from_secs(600);
/// The largest answer read from a provider's user endpoint.
const MAX_USERINFO_BYTES: u64 = 1024 * 1024;
/// The context of what the store keeps of a client secret.
const SECRET_CONTEXT: &str = "pikoci sso client secret";
/// The "topics" the cookies are signed for, so that one cannot stand for the other.
const FLOW_TOPIC: &str = "pikoci.sso.flow";
const PROFILE_TOPIC: &str = "pikoci.sso.profile";

/// What kind of provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// OpenID Connect, configured by discovery from its issuer.
    Oidc,
    /// Plain OAuth2: authorization, token and user endpoints given.
    OAuth2,
    /// GitHub (or GitHub Enterprise with the URLs given): plain OAuth2 with GitHub's defaults.
    GitHub,
}

impl Kind {
    pub(crate) fn parse(text: &str) -> Option<Kind> {
        match text {
            "oidc" => Some(Kind::Oidc),
            "oauth2" => Some(Kind::OAuth2),
            "github" => Some(Kind::GitHub),
            _ => None,
        }
    }

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Kind::Oidc => "oidc",
            Kind::OAuth2 => "oauth2",
            Kind::GitHub => "github",
        }
    }
}

/// GitHub's endpoints and the claims of its user endpoint.
pub(crate) mod github {
    pub(crate) const AUTH_URL: &str = "https://github.com/login/oauth/authorize";
    pub(crate) const TOKEN_URL: &str = "https://github.com/login/oauth/access_token";
    pub(crate) const USERINFO_URL: &str = "https://api.github.com/user";
    pub(crate) const SCOPES: &[&str] = &["read:user", "user:email"];
    pub(crate) const USERNAME_CLAIM: &str = "login";
    /// GitHub's numeric user id: stays when the user renames the account.
    pub(crate) const SUBJECT_CLAIM: &str = "id";
}

/// Who the provider says the user is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Claims {
    /// The identity at the provider (`sub`, or the configured claim).
    pub(crate) subject: String,
    /// A user name to suggest (the configured claim), made canonical when it can be.
    pub(crate) username: Option<String>,
    pub(crate) full_name: Option<String>,
    pub(crate) email: Option<String>,
}

/// What a flow's cookie holds.
#[derive(Serialize, Deserialize)]
struct Flow {
    provider: String,
    state: String,
    nonce: String,
    verifier: String,
    /// The callback URL sent to the provider, sent again with the code.
    redirect: String,
    /// The user linking an identity and the hash of the session that started it (which must
    /// still be open at the callback), or `None` for a login.
    link: Option<(i64, String)>,
    /// Seconds since the epoch.
    expires: i64,
}

/// What a first login's cookie holds.
#[derive(Serialize, Deserialize)]
pub(crate) struct Profile {
    pub(crate) provider: String,
    pub(crate) claims: Claims,
    expires: i64,
}

/// How a callback ended.
#[derive(Debug)]
pub(crate) enum Outcome {
    /// A known identity: its user is logged in.
    LoggedIn(LoggedIn),
    /// An identity nobody has: the cookie that keeps it until the user chooses a name.
    NewIdentity { claims: Claims, cookie: String },
    /// The identity was linked to the user who started the flow.
    Linked,
}

/// Discovery documents read from the providers, by issuer.
#[derive(Debug, Default)]
pub(crate) struct DiscoveryCache {
    documents: std::sync::Mutex<HashMap<String, (CoreProviderMetadata, Instant)>>,
}

/// Why a flow failed, as the caller is told.
fn refused(message: impl Into<String>) -> ServerError {
    ServerError::new(ErrorKind::InvalidInput, message)
}

fn provider_failed(provider: &str, what: &str, error: impl std::fmt::Display) -> ServerError {
    ServerError::new(
        ErrorKind::Unavailable,
        format!("identity provider \"{provider}\" {what}: {error}"),
    )
}

/// `error` and its sources, on one line.
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let line = cause.to_string();
        if !text.contains(&line) {
            text.push_str(": ");
            text.push_str(&line);
        }
        source = cause.source();
    }
    text
}

fn now_secs() -> i64 {
    chrono::Utc::now().timestamp()
}

impl Server {
    /// What the store keeps of a client secret (sealed with the master key when there is one).
    pub(crate) fn seal_client_secret(&self, secret: &Secret) -> ServerResult<Secret> {
        if secret.expose().is_empty() {
            return Ok(Secret::new(String::new()));
        }
        self.seal_for_store(secret, SECRET_CONTEXT)
    }

    fn client_secret(&self, provider: &AuthProvider) -> ServerResult<Option<Secret>> {
        if provider.client_secret.expose().is_empty() {
            return Ok(None);
        }
        let what = format!("client secret of identity provider \"{}\"", provider.name);
        self.open_from_store(&provider.client_secret, SECRET_CONTEXT, &what)
            .map(Some)
    }

    /// The URL the provider sends users back to: `<base>/api/v1/auth/sso/<name>/callback`.
    pub(crate) fn callback_url(base: &str, provider: &str) -> String {
        format!("{base}{COOKIE_PATH}/{provider}/callback")
    }

    async fn cookie_key(&self) -> ServerResult<MacKey> {
        self.key(&KeyScope::Server).await?.ok_or_else(|| {
            ServerError::new(
                ErrorKind::Internal,
                "the servers' key is missing: restart the server to make it",
            )
        })
    }

    async fn sign_cookie<T: Serialize>(&self, topic: &str, value: &T) -> ServerResult<String> {
        let body = serde_json::to_vec(value)
            .map_err(|err| ServerError::new(ErrorKind::Internal, err.to_string()))?;
        let sealed = self.cookie_key().await?.seal(topic, &body);
        Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sealed))
    }

    /// The value of a cookie this server (or another of the database) signed for `topic`;
    /// `None` when it is not one.
    async fn open_cookie<T: DeserializeOwned>(&self, topic: &str, cookie: &str) -> Option<T> {
        let bytes = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(cookie)
            .ok()?;
        let key = self.cookie_key().await.ok()?;
        let signed = Signed::read(&bytes).ok()?;
        let body = signed.verify(&key, topic).ok()?;
        serde_json::from_slice(body).ok()
    }

    fn sso_http(&self) -> ServerResult<reqwest::Client> {
        pikoci_http::ClientConfig::new(Duration::from_secs(15))
            .build()
            .map_err(|err| ServerError::new(ErrorKind::Internal, err.to_string()))
    }

    /// The provider named `name`, refused when unknown or disabled.
    async fn enabled_provider(&self, name: &str) -> ServerResult<(AuthProvider, Kind)> {
        let provider = self.accounts().auth_provider(name).await?;
        if !provider.enabled {
            return Err(ServerError::new(
                ErrorKind::NotFound,
                format!("identity provider \"{name}\" is disabled"),
            ));
        }
        let kind = Kind::parse(&provider.kind).ok_or_else(|| {
            ServerError::new(
                ErrorKind::Internal,
                format!(
                    "identity provider \"{name}\" has an unknown kind \"{}\": set it again",
                    provider.kind
                ),
            )
        })?;
        Ok((provider, kind))
    }

    async fn discovery(
        &self,
        provider: &AuthProvider,
        http: &reqwest::Client,
    ) -> ServerResult<CoreProviderMetadata> {
        let issuer = provider.issuer_url.clone().unwrap_or_default();
        if let Some((document, read)) = lock(&self.inner.discovery.documents).get(&issuer)
            && read.elapsed() < DISCOVERY_TTL
        {
            return Ok(document.clone());
        }
        let issuer_url = IssuerUrl::new(issuer.clone()).map_err(|err| {
            refused(format!(
                "identity provider \"{}\" has an invalid issuer URL: {err}",
                provider.name
            ))
        })?;
        let document = CoreProviderMetadata::discover_async(issuer_url, &Http(http.clone()))
            .await
            .map_err(|err| {
                provider_failed(
                    &provider.name,
                    &format!("could not be discovered at {issuer}"),
                    chain(&err),
                )
            })?;
        lock(&self.inner.discovery.documents).insert(issuer, (document.clone(), Instant::now()));
        Ok(document)
    }

    /// Starts a login (or, with `link`, the linking of an identity to that user) at provider
    /// `name`: the provider's URL to send the browser to, and the flow's cookie.
    pub(crate) async fn sso_start(
        &self,
        name: &str,
        link: Option<(UserId, TokenHash)>,
        base: &str,
    ) -> ServerResult<(String, String)> {
        let (provider, kind) = self.enabled_provider(name).await?;
        let redirect = Self::callback_url(base, &provider.name);
        let (challenge, verifier) = PkceCodeChallenge::new_random_sha256();
        let (url, state, nonce) = match kind {
            Kind::Oidc => {
                let http = self.sso_http()?;
                let document = self.discovery(&provider, &http).await?;
                let client = CoreClient::from_provider_metadata(
                    document,
                    ClientId::new(provider.client_id.clone()),
                    None,
                )
                .set_redirect_uri(redirect_url(&redirect)?);
                let mut request = client.authorize_url(
                    CoreAuthenticationFlow::AuthorizationCode,
                    CsrfToken::new_random,
                    Nonce::new_random,
                );
                // `openid` is always asked for.
                for scope in provider.scopes.iter().filter(|s| s.as_str() != "openid") {
                    request = request.add_scope(Scope::new(scope.clone()));
                }
                let (url, state, nonce) = request.set_pkce_challenge(challenge).url();
                (
                    url.to_string(),
                    state.secret().clone(),
                    nonce.secret().clone(),
                )
            }
            Kind::OAuth2 | Kind::GitHub => {
                let auth_url = provider.auth_url.as_deref().unwrap_or(github::AUTH_URL);
                let mut url = openidconnect::url::Url::parse(auth_url).map_err(|err| {
                    refused(format!(
                        "identity provider \"{}\" has an invalid authorization URL: {err}",
                        provider.name
                    ))
                })?;
                let state = CsrfToken::new_random().secret().clone();
                url.query_pairs_mut()
                    .append_pair("response_type", "code")
                    .append_pair("client_id", &provider.client_id)
                    .append_pair("redirect_uri", &redirect)
                    .append_pair("scope", &provider.scopes.join(" "))
                    .append_pair("state", &state)
                    .append_pair("code_challenge", challenge.as_str())
                    .append_pair("code_challenge_method", "S256");
                (url.to_string(), state, String::new())
            }
        };
        let flow = Flow {
            provider: provider.name.clone(),
            state,
            nonce,
            verifier: verifier.secret().clone(),
            redirect,
            link: link.map(|(user, session)| (user.0, session.0)),
            expires: now_secs() + FLOW_LIFETIME.as_secs() as i64,
        };
        let cookie = self.sign_cookie(FLOW_TOPIC, &flow).await?;
        Ok((url, cookie))
    }

    /// Finishes a flow at its callback: checks the `state` against the flow's cookie,
    /// exchanges the code, reads who the user is, and logs in, links, or keeps a new
    /// identity for its profile.
    pub(crate) async fn sso_callback(
        &self,
        name: &str,
        cookie: Option<&str>,
        code: &str,
        state: &str,
    ) -> ServerResult<Outcome> {
        let Some(cookie) = cookie else {
            return Err(refused(
                "this login was not started in this browser (its cookie is missing): start it \
                 again from the login page",
            ));
        };
        let Some(flow) = self.open_cookie::<Flow>(FLOW_TOPIC, cookie).await else {
            return Err(refused(
                "this login's cookie is not one of this server's: start the login again",
            ));
        };
        if flow.expires < now_secs() {
            return Err(refused(
                "this login took more than 10 minutes: start it again",
            ));
        }
        if flow.provider != name || !constant_time_eq(flow.state.as_bytes(), state.as_bytes()) {
            return Err(refused(
                "the provider's answer does not belong to the login this browser started \
                 (state mismatch): start the login again",
            ));
        }
        let (provider, kind) = self.enabled_provider(name).await?;
        // A link needs its session still open, as its user's: a logout or a revoked session
        // stops it.
        if let Some((user, session)) = &flow.link {
            let open = match self.accounts().session(&TokenHash(session.clone())).await {
                Ok(found) => found.user.id.0 == *user && found.expires_at > self.now(),
                Err(error) if error.kind() == ErrorKind::NotFound => false,
                Err(error) => return Err(error.into()),
            };
            if !open {
                return Err(ServerError::new(
                    ErrorKind::PermissionDenied,
                    "the session that started linking this identity has ended: log in and link \
                     it again",
                ));
            }
        }
        let redirect = flow.redirect.clone();
        let claims = match kind {
            Kind::Oidc => self.oidc_claims(&provider, &flow, code, &redirect).await?,
            Kind::OAuth2 | Kind::GitHub => {
                self.oauth2_claims(&provider, kind, &flow, code, &redirect)
                    .await?
            }
        };
        let at = self.now();
        if let Some((user, _)) = flow.link {
            let user = self
                .accounts()
                .link_identity(UserId(user), &provider.name, &claims.subject, at)
                .await?;
            tracing::info!(user = %user.name, provider = %provider.name, "identity linked");
            return Ok(Outcome::Linked);
        }
        match self
            .accounts()
            .identity_user(&provider.name, &claims.subject)
            .await?
        {
            Some(user) => {
                let logged_in = self.open_session(user).await?;
                tracing::info!(user = %logged_in.user.name, provider = %provider.name, "logged in by single sign-on");
                Ok(Outcome::LoggedIn(logged_in))
            }
            None if !provider.allow_signup => Err(ServerError::new(
                ErrorKind::PermissionDenied,
                format!(
                    "no PikoCI user is linked to this identity at \"{}\", and the provider does \
                     not create users: ask an admin for an account, log in to it, and link the \
                     identity (POST /api/v1/profile/identities/{})",
                    provider.name, provider.name
                ),
            )),
            None => {
                let profile = Profile {
                    provider: provider.name.clone(),
                    claims: claims.clone(),
                    expires: now_secs() + FLOW_LIFETIME.as_secs() as i64,
                };
                let cookie = self.sign_cookie(PROFILE_TOPIC, &profile).await?;
                Ok(Outcome::NewIdentity { claims, cookie })
            }
        }
    }

    async fn oidc_claims(
        &self,
        provider: &AuthProvider,
        flow: &Flow,
        code: &str,
        redirect: &str,
    ) -> ServerResult<Claims> {
        let http = self.sso_http()?;
        let document = self.discovery(provider, &http).await?;
        let client = CoreClient::from_provider_metadata(
            document,
            ClientId::new(provider.client_id.clone()),
            self.client_secret(provider)?
                .map(|secret| ClientSecret::new(secret.into_exposed())),
        )
        .set_redirect_uri(redirect_url(redirect)?);
        let tokens = client
            .exchange_code(AuthorizationCode::new(code.to_owned()))
            .map_err(|err| provider_failed(&provider.name, "has no token endpoint", err))?
            .set_pkce_verifier(PkceCodeVerifier::new(flow.verifier.clone()))
            .request_async(&Http(http.clone()))
            .await
            .map_err(|err| {
                provider_failed(&provider.name, "refused the login's code", chain(&err))
            })?;
        let id_token = tokens.id_token().ok_or_else(|| {
            provider_failed(
                &provider.name,
                "answered without an ID token",
                "is it an OpenID Connect provider? (use kind oauth2 otherwise)",
            )
        })?;
        let verified = id_token
            .claims(&client.id_token_verifier(), &Nonce::new(flow.nonce.clone()))
            .map_err(|err| {
                provider_failed(&provider.name, "sent an ID token that does not verify", err)
            })?;
        let subject = verified.subject().to_string();
        let mut claims = Claims {
            subject: subject.clone(),
            username: verified.preferred_username().map(|name| name.to_string()),
            full_name: verified
                .name()
                .and_then(|name| name.get(None))
                .map(|name| name.to_string()),
            email: verified.email().map(|email| email.to_string()),
        };
        // The user endpoint says more than most ID tokens; its `sub` must be the token's.
        if let Some(endpoint) = client.user_info_url() {
            let info = userinfo(
                &http,
                &provider.name,
                endpoint.as_str(),
                tokens.access_token().secret(),
            )
            .await?;
            if info.get("sub").and_then(claim_text).as_deref() != Some(subject.as_str()) {
                return Err(provider_failed(
                    &provider.name,
                    "answered for another user at its user endpoint",
                    "the `sub` differs from the ID token's",
                ));
            }
            merge(&mut claims, &info, &provider.username_claim);
        }
        claims.username = claims.username.map(|name| suggest_name(&name));
        Ok(claims)
    }

    async fn oauth2_claims(
        &self,
        provider: &AuthProvider,
        kind: Kind,
        flow: &Flow,
        code: &str,
        redirect: &str,
    ) -> ServerResult<Claims> {
        let http = self.sso_http()?;
        let token_url = provider.token_url.as_deref().unwrap_or(github::TOKEN_URL);
        let mut form = vec![
            ("grant_type", "authorization_code".to_owned()),
            ("code", code.to_owned()),
            ("redirect_uri", redirect.to_owned()),
            ("client_id", provider.client_id.clone()),
            ("code_verifier", flow.verifier.clone()),
        ];
        if let Some(secret) = self.client_secret(provider)? {
            form.push(("client_secret", secret.into_exposed()));
        }
        let body = form
            .iter()
            .fold(
                openidconnect::url::form_urlencoded::Serializer::new(String::new()),
                |mut body, (name, value)| {
                    body.append_pair(name, value);
                    body
                },
            )
            .finish();
        let response = http
            .post(token_url)
            .header("accept", "application/json")
            .header("content-type", "application/x-www-form-urlencoded")
            .body(body)
            .send()
            .await
            .map_err(|err| {
                provider_failed(
                    &provider.name,
                    "could not be reached at its token endpoint",
                    pikoci_http::describe(&err),
                )
            })?;
        let status = response.status();
        let bytes = pikoci_http::read_capped(response, MAX_USERINFO_BYTES)
            .await
            .map_err(|err| provider_failed(&provider.name, "sent an unreadable token", err))?;
        let answer: serde_json::Value = serde_json::from_slice(&bytes).unwrap_or_default();
        let Some(access_token) = answer.get("access_token").and_then(|t| t.as_str()) else {
            let why = answer
                .get("error_description")
                .or_else(|| answer.get("error"))
                .and_then(|e| e.as_str())
                .unwrap_or("no access token in its answer");
            return Err(provider_failed(
                &provider.name,
                &format!("refused the login's code ({status})"),
                why,
            ));
        };
        let endpoint = provider
            .userinfo_url
            .as_deref()
            .unwrap_or(github::USERINFO_URL);
        let info = userinfo(&http, &provider.name, endpoint, access_token).await?;
        let subject_claim = match provider.subject_claim.as_str() {
            "" if kind == Kind::GitHub => github::SUBJECT_CLAIM,
            "" => "sub",
            claim => claim,
        };
        let Some(subject) = info.get(subject_claim).and_then(claim_text) else {
            return Err(provider_failed(
                &provider.name,
                "did not say who the user is",
                format!("its user endpoint has no \"{subject_claim}\""),
            ));
        };
        let mut claims = Claims {
            subject,
            username: None,
            full_name: None,
            email: None,
        };
        merge(&mut claims, &info, &provider.username_claim);
        claims.username = claims.username.map(|name| suggest_name(&name));
        Ok(claims)
    }

    /// Creates the user of a first login with the name its user chose, links the identity
    /// kept in the profile cookie, and logs in.
    pub(crate) async fn sso_complete_profile(
        &self,
        cookie: Option<&str>,
        username: &str,
        full_name: &str,
    ) -> ServerResult<LoggedIn> {
        let Some(cookie) = cookie else {
            return Err(refused(
                "there is no first login to complete in this browser (its cookie is missing): \
                 log in with the provider again",
            ));
        };
        let Some(profile) = self.open_cookie::<Profile>(PROFILE_TOPIC, cookie).await else {
            return Err(refused(
                "this first login's cookie is not one of this server's: log in with the \
                 provider again",
            ));
        };
        if profile.expires < now_secs() {
            return Err(refused(
                "this first login took more than 10 minutes: log in with the provider again",
            ));
        }
        // The provider may have been disabled meanwhile, or stopped creating users (a copy of
        // the cookie lives its 10 minutes).
        let (provider, _) = self.enabled_provider(&profile.provider).await?;
        if !provider.allow_signup {
            return Err(ServerError::new(
                ErrorKind::PermissionDenied,
                format!(
                    "identity provider \"{}\" does not create users: ask an admin for an account",
                    provider.name
                ),
            ));
        }
        let user = self
            .accounts()
            .create_user_with_identity(
                NewUser {
                    name: username.to_owned(),
                    full_name: full_name.to_owned(),
                    password_hash: None,
                    admin: false,
                    must_change_password: false,
                },
                &profile.provider,
                &profile.claims.subject,
                self.now(),
            )
            .await?;
        tracing::info!(user = %user.name, provider = %profile.provider, "user created by single sign-on");
        self.open_session(user).await
    }
}

fn redirect_url(url: &str) -> ServerResult<RedirectUrl> {
    RedirectUrl::new(url.to_owned()).map_err(|err| {
        ServerError::new(
            ErrorKind::InvalidInput,
            format!("the callback URL {url} is not a URL ({err}): check --external-url"),
        )
    })
}

/// The OpenID library's HTTP client: the server's.
struct Http(reqwest::Client);

impl<'c> openidconnect::AsyncHttpClient<'c> for Http {
    type Error = openidconnect::HttpClientError<reqwest::Error>;
    type Future = std::pin::Pin<
        Box<dyn std::future::Future<Output = Result<HttpResponse, Self::Error>> + Send + 'c>,
    >;

    fn call(&'c self, request: HttpRequest) -> Self::Future {
        Box::pin(send(&self.0, request))
    }
}

/// One request of the OpenID library, through the server's HTTP client.
async fn send(
    http: &reqwest::Client,
    request: HttpRequest,
) -> Result<HttpResponse, openidconnect::HttpClientError<reqwest::Error>> {
    let (parts, body) = request.into_parts();
    let response = http
        .request(parts.method, parts.uri.to_string())
        .headers(parts.headers)
        .body(body)
        .send()
        .await
        .map_err(Box::new)?;
    let mut answer = openidconnect::http::Response::builder().status(response.status());
    for (name, value) in response.headers() {
        answer = answer.header(name, value);
    }
    let body = pikoci_http::read_capped(response, MAX_USERINFO_BYTES)
        .await
        .map_err(|err| openidconnect::HttpClientError::Other(err.to_string()))?;
    Ok(answer.body(body)?)
}

/// The JSON object a provider's user endpoint answers with an access token.
async fn userinfo(
    http: &reqwest::Client,
    provider: &str,
    endpoint: &str,
    access_token: &str,
) -> ServerResult<serde_json::Map<String, serde_json::Value>> {
    let bearer = pikoci_http::secret_header(&format!("Bearer {access_token}")).map_err(|_| {
        provider_failed(
            provider,
            "sent an access token that cannot be used",
            "it is not text",
        )
    })?;
    let response = http
        .get(endpoint)
        .header("authorization", bearer)
        .header("accept", "application/json")
        .send()
        .await
        .map_err(|err| {
            provider_failed(
                provider,
                "could not be reached at its user endpoint",
                pikoci_http::describe(&err),
            )
        })?;
    let status = response.status();
    if !status.is_success() {
        return Err(provider_failed(
            provider,
            "refused to say who the user is",
            format!("its user endpoint answered {status}"),
        ));
    }
    let bytes = pikoci_http::read_capped(response, MAX_USERINFO_BYTES)
        .await
        .map_err(|err| provider_failed(provider, "sent an unreadable user", err))?;
    match serde_json::from_slice(&bytes) {
        Ok(serde_json::Value::Object(map)) => Ok(map),
        _ => Err(provider_failed(
            provider,
            "sent an unreadable user",
            "its user endpoint did not answer a JSON object (a signed JWT answer is not supported)",
        )),
    }
}

/// A claim's value as text (numbers too: GitHub's ids).
fn claim_text(value: &serde_json::Value) -> Option<String> {
    match value {
        serde_json::Value::String(text) if !text.is_empty() => Some(text.clone()),
        serde_json::Value::Number(number) => Some(number.to_string()),
        _ => None,
    }
}

/// Fills what `claims` lacks from the user endpoint's answer.
fn merge(
    claims: &mut Claims,
    info: &serde_json::Map<String, serde_json::Value>,
    username_claim: &str,
) {
    let username_claim = if username_claim.is_empty() {
        "preferred_username"
    } else {
        username_claim
    };
    if let Some(name) = info.get(username_claim).and_then(claim_text) {
        claims.username = Some(name);
    }
    if claims.full_name.is_none() {
        claims.full_name = info.get("name").and_then(claim_text);
    }
    if claims.email.is_none() {
        claims.email = info.get("email").and_then(claim_text);
    }
}

/// A user name made from what a provider suggests: lowercase, with `-` for anything PikoCI
/// names do not allow, at most 64 bytes.
pub(crate) fn suggest_name(name: &str) -> String {
    let mut out = String::new();
    for c in name.chars().flat_map(char::to_lowercase) {
        let c = if c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_' || c == '-' {
            c
        } else {
            '-'
        };
        if !(c == '-' && out.ends_with('-')) {
            out.push(c);
        }
        if out.len() >= 64 {
            break;
        }
    }
    out.trim_matches('-').to_owned()
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggested_names_are_canonical() {
        assert_eq!(suggest_name("Carol.Smith@Example"), "carol-smith-example");
        assert_eq!(suggest_name("  Zoë  "), "zo");
        assert_eq!(suggest_name("octo_cat-1"), "octo_cat-1");
        assert!(pikoci_core::name::is_canonical(&suggest_name("Octo Cat")));
    }

    #[test]
    fn claims_are_read_as_text_and_merged() {
        let info = serde_json::json!({"login": "octo", "id": 42, "name": "Octo Cat", "email": ""});
        let info = info.as_object().unwrap().clone();
        let mut claims = Claims {
            subject: claim_text(&info["id"]).unwrap(),
            username: None,
            full_name: None,
            email: Some("kept@example.com".into()),
        };
        merge(&mut claims, &info, "login");
        assert_eq!(claims.subject, "42");
        assert_eq!(claims.username.as_deref(), Some("octo"));
        assert_eq!(claims.full_name.as_deref(), Some("Octo Cat"));
        assert_eq!(claims.email.as_deref(), Some("kept@example.com"));
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"ab"));
    }
}
