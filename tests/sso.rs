//! Single sign-on end to end, against a real OpenID provider: `oidc-provider` (Node.js) on
//! loopback, started from `tests/oidc/provider.mjs`, and `pikoci server` in memory.
//!
//! The test plays the browser. It starts a sign-in at PikoCI, follows the redirect to the
//! provider, answers the provider's development login form (any login, any password) and its
//! consent form, and comes back to PikoCI's callback with the code, carrying PikoCI's cookies
//! and the provider's in two separate jars, as a browser would. It covers OpenID Connect (first
//! sign-in and the profile to complete, a returning identity, forged and replayed callbacks),
//! linking and unlinking identities, turning password login off, and plain OAuth2.
//!
//! Needs `node` (20 or later) and the provider's packages: `npm ci --prefix tests/oidc`.
//!
//! Requests are plain HTTP/1.1 on a `TcpStream`, not reqwest: every redirect must be seen (a
//! client that follows same-origin ones would lose the provider's cookies and PikoCI's), and
//! reqwest cannot be built here without the TLS setup of `pikoci_http`, which follows them.

mod support;

use std::fmt;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use support::Lines;
use support::server::{ADMIN_PASSWORD, ServerProcess};

/// The one client registered at the provider.
const CLIENT_ID: &str = "pikoci";
/// Its secret: it must never appear in an answer of PikoCI or in its log.
const CLIENT_SECRET: &str = "oidc-client-s3cret-5b7e21";
/// How long one request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);

// ---- the tests ----

/// OpenID Connect: the provider registered, a first sign-in that asks for the profile, a
/// returning sign-in, and callbacks that must not sign anybody in.
#[test]
fn oidc_first_and_returning_sign_in_and_forged_callbacks() {
    let mut world = World::start();

    // (a) The provider, registered by the admin; its secret is never shown.
    world.register_oidc();

    // (b) The login page's methods, without a session.
    let methods = world
        .api("GET", "/api/v1/auth/methods", As::Nobody, None)
        .expect(200, "GET /auth/methods")
        .json();
    assert_eq!(methods["data"]["local_login"], true, "{methods:#}");
    let listed = methods["data"]["providers"]
        .as_array()
        .and_then(|providers| providers.iter().find(|p| p["name"] == "idp"))
        .unwrap_or_else(|| panic!("GET /auth/methods does not list idp: {methods:#}"));
    assert_eq!(listed["display_name"], "Test IdP", "{methods:#}");
    assert_eq!(listed["kind"], "oidc", "{methods:#}");
    assert_eq!(listed["login_url"], "/api/v1/auth/sso/idp", "{methods:#}");

    // (c) A new identity: carol. The authorization request is an OpenID Connect one, with
    // PKCE, a state and a nonce, and PikoCI's callback as the redirect URI.
    let mut carol = Jar::default();
    let flow = world.start_flow("idp", None, "carol", &mut carol);
    let request = Query::of(&flow.authorization);
    for (name, expected) in [
        ("response_type", "code"),
        ("client_id", CLIENT_ID),
        ("code_challenge_method", "S256"),
    ] {
        assert_eq!(
            request.get(name),
            Some(expected),
            "the authorization request's {name}: {}",
            flow.authorization
        );
    }
    for name in ["state", "nonce", "code_challenge"] {
        assert!(
            request.get(name).is_some_and(|value| !value.is_empty()),
            "the authorization request has no {name}: {}",
            flow.authorization
        );
    }
    let scope = request.get("scope").unwrap_or_default();
    for wanted in ["openid", "profile", "email"] {
        assert!(
            scope.split(' ').any(|s| s == wanted),
            "the authorization request's scope {scope:?} lacks {wanted}: {}",
            flow.authorization
        );
    }
    let profile_cookie = world.complete_profile_redirect(&flow, "carol");

    let done = world
        .api(
            "POST",
            "/api/v1/auth/sso/complete-profile",
            As::Cookie(&profile_cookie),
            Some(json!({"username": "carol", "full_name": "Carol"})),
        )
        .expect(200, "POST /auth/sso/complete-profile as carol");
    let body = done.json();
    assert_eq!(body["data"]["user"]["name"], "carol", "{done}");
    assert_eq!(body["data"]["user"]["full_name"], "Carol", "{done}");
    assert_eq!(body["data"]["user"]["admin"], false, "{done}");
    assert_eq!(body["data"]["user"]["has_password"], false, "{done}");
    let carol_token = body["data"]["token"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(carol_token.starts_with("pks_"), "no session token: {done}");
    let cookie = session_cookie(&done, "complete-profile as carol");
    assert_eq!(
        cookie, carol_token,
        "the session cookie is not the session returned: {done}"
    );
    world.assert_signed_in(As::Bearer(&carol_token), "carol", "carol's token");
    world.assert_signed_in(
        As::Cookie(&format!("pikoci_session={carol_token}")),
        "carol",
        "carol's session cookie",
    );
    let identities = world.identities(&carol_token);
    assert_eq!(identities.len(), 1, "carol's identities: {identities:#?}");
    assert_eq!(identities[0]["provider"], "idp", "{identities:#?}");

    // The profile cookie cannot make a second user of the same identity.
    let again = world.api(
        "POST",
        "/api/v1/auth/sso/complete-profile",
        As::Cookie(&profile_cookie),
        Some(json!({"username": "carol2", "full_name": "Carol again"})),
    );
    assert!(
        (400..500).contains(&again.status),
        "a second user from one identity (complete-profile replayed):\n{again}"
    );
    assert_no_session(&again, "complete-profile replayed");

    // (d) carol again, with the provider's cookies of her first sign-in: it may skip its
    // login form, its consent form or both (the walk answers whatever comes). PikoCI knows
    // the identity and signs her in at once.
    let token = world.sso_login("idp", "carol", &mut carol);
    world.assert_signed_in(
        As::Cookie(&format!("pikoci_session={token}")),
        "carol",
        "carol's second sign-in",
    );

    // (e) A forged state, and no state cookie: 400, nobody signed in.
    let flow = world.start_flow("idp", None, "carol", &mut carol);
    let forged = with_param(&flow.callback, "state", "forged-state");
    let answer = send("GET", &forged, &[("Cookie", flow.cookie.clone())], None);
    world.assert_refused(&answer, 400, "the callback with a forged state");
    let answer = send("GET", &flow.callback, &[], None);
    world.assert_refused(&answer, 400, "the callback without the pikoci_sso cookie");

    // A callback replayed (same code, same cookie): the first signs in, the second does not.
    let flow = world.start_flow("idp", None, "carol", &mut carol);
    let first = world.callback(&flow).expect(303, "the callback");
    assert_eq!(first.location(), "/", "{first}");
    session_cookie(&first, "the callback");
    let replayed = world.callback(&flow);
    assert!(
        replayed.status >= 400,
        "a replayed callback was accepted:\n{replayed}"
    );
    assert_no_session(&replayed, "the replayed callback");

    // The client secret is not in the server's log either.
    let log = world.server.log.so_far();
    assert!(
        !log.contains(CLIENT_SECRET),
        "the client secret is in the server's log:\n{log}"
    );
}

/// Linking identities to an existing user, unlinking them (never locking anybody out), and
/// turning password login off and on again.
#[test]
fn linking_unlinking_and_password_login_off() {
    let world = World::start();
    world.register_oidc();
    let admin = world.server.token.clone();
    let mut carol = Jar::default();
    let carol_token = world.first_login("idp", "carol", &mut carol);

    // (f) The admin cannot link carol's identity: it is hers. 409, nobody signed in.
    let flow = world.start_flow("idp", Some(&admin), "carol", &mut carol);
    let answer = world.callback(&flow);
    world.assert_refused(&answer, 409, "linking carol's identity to admin");

    // The admin links dave's identity to themselves.
    let mut dave = Jar::default();
    world.link("idp", &admin, "dave", &mut dave);
    let identities = world.identities(&admin);
    assert!(
        identities.iter().any(|i| i["provider"] == "idp"),
        "admin's identities after linking: {identities:#?}"
    );
    // Signing in as dave is signing in as admin.
    let session = world.sso_login("idp", "dave", &mut dave);
    world.assert_signed_in(
        As::Cookie(&format!("pikoci_session={session}")),
        "admin",
        "the sign-in as dave",
    );

    // (g) carol has no password: her only identity cannot go.
    let answer = world.api(
        "DELETE",
        "/api/v1/profile/identities/idp",
        As::Bearer(&carol_token),
        None,
    );
    world.assert_refused(&answer, 409, "carol unlinking her only way in");
    assert_eq!(world.identities(&carol_token).len(), 1);
    // The admin has a password: theirs can.
    world
        .api(
            "DELETE",
            "/api/v1/profile/identities/idp",
            As::Bearer(&admin),
            None,
        )
        .expect(200, "admin unlinking idp");
    let identities = world.identities(&admin);
    assert!(
        identities.is_empty(),
        "admin's identities after unlinking: {identities:#?}"
    );

    // (h) Password login cannot be turned off while no global admin could sign in otherwise.
    let local_off = Some(json!({"local_login": false}));
    let answer = world.api(
        "PUT",
        "/api/v1/admin/auth-settings",
        As::Bearer(&admin),
        local_off.clone(),
    );
    world.assert_refused(
        &answer,
        409,
        "turning password login off with no admin identity",
    );

    // With the admin linked again, it can.
    world.link("idp", &admin, "dave", &mut dave);
    world
        .api(
            "PUT",
            "/api/v1/admin/auth-settings",
            As::Bearer(&admin),
            local_off,
        )
        .expect(200, "turning password login off");
    let login = json!({"username": "admin", "password": ADMIN_PASSWORD});
    world
        .api("POST", "/api/v1/login", As::Nobody, Some(login.clone()))
        .expect(403, "a password login while it is off");
    let methods = world
        .api("GET", "/api/v1/auth/methods", As::Nobody, None)
        .expect(200, "GET /auth/methods")
        .json();
    assert_eq!(methods["data"]["local_login"], false, "{methods:#}");

    // Single sign-on still works, and an admin signed in that way turns passwords back on.
    let session = world.sso_login("idp", "dave", &mut dave);
    world.assert_signed_in(As::Bearer(&session), "admin", "the sign-in as dave");
    world
        .api(
            "PUT",
            "/api/v1/admin/auth-settings",
            As::Bearer(&session),
            Some(json!({"local_login": true})),
        )
        .expect(
            200,
            "turning password login on again (admin signed in as dave)",
        );
    let body = world
        .api("POST", "/api/v1/login", As::Nobody, Some(login))
        .expect(200, "a password login once it is on again")
        .json();
    assert_eq!(body["data"]["user"]["name"], "admin", "{body:#}");
}

/// Plain OAuth2: the endpoints given by hand, the user read from the userinfo endpoint's JSON,
/// the client secret sent in the form body.
#[test]
fn plain_oauth2_sign_in() {
    let world = World::start();
    let discovery = &world.provider.discovery;
    let endpoint = |name: &str| {
        discovery[name]
            .as_str()
            .unwrap_or_else(|| panic!("no {name} in the discovery document: {discovery:#}"))
            .to_owned()
    };
    let body = json!({
        "kind": "oauth2",
        "display_name": "Plain OAuth2",
        "auth_url": endpoint("authorization_endpoint"),
        "token_url": endpoint("token_endpoint"),
        "userinfo_url": endpoint("userinfo_endpoint"),
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "scopes": ["openid", "profile", "email"],
        "username_claim": "preferred_username",
        "subject_claim": "sub",
    });
    // A plain OAuth2 provider (GitHub's kind) creates no user by default: anyone with an
    // account there could sign up. The first login of an unknown identity is refused.
    let put = world
        .api(
            "PUT",
            "/api/v1/admin/auth-providers/plain",
            As::Bearer(&world.server.token),
            Some(body.clone()),
        )
        .expect(201, "PUT /admin/auth-providers/plain (no signup)");
    assert_eq!(put.json()["data"]["allow_signup"], false, "{put}");
    let mut stranger = Jar::default();
    let flow = world.start_flow("plain", None, "stranger", &mut stranger);
    let refused = world.callback(&flow);
    world.assert_refused(
        &refused,
        403,
        "the first login of a stranger without signup",
    );
    assert_no_session(&refused, "the first login of a stranger without signup");
    let mut body = body;
    body["allow_signup"] = json!(true);
    let put = world
        .api(
            "PUT",
            "/api/v1/admin/auth-providers/plain",
            As::Bearer(&world.server.token),
            Some(body),
        )
        .expect(200, "PUT /admin/auth-providers/plain (signup allowed)");
    assert_eq!(put.json()["data"]["allow_signup"], true, "{put}");
    assert_no_secret(&put, "PUT /admin/auth-providers/plain");
    let methods = world
        .api("GET", "/api/v1/auth/methods", As::Nobody, None)
        .expect(200, "GET /auth/methods")
        .json();
    let listed = methods["data"]["providers"]
        .as_array()
        .and_then(|providers| providers.iter().find(|p| p["name"] == "plain"))
        .unwrap_or_else(|| panic!("GET /auth/methods does not list plain: {methods:#}"));
    assert_eq!(listed["kind"], "oauth2", "{methods:#}");
    assert_eq!(listed["login_url"], "/api/v1/auth/sso/plain", "{methods:#}");

    let mut erin = Jar::default();
    let token = world.first_login("plain", "erin", &mut erin);
    world.assert_signed_in(As::Bearer(&token), "erin", "erin's token");
    let identities = world.identities(&token);
    assert!(
        identities.len() == 1 && identities[0]["provider"] == "plain",
        "erin's identities: {identities:#?}"
    );
    // And erin again: known, signed in at once.
    let session = world.sso_login("plain", "erin", &mut erin);
    world.assert_signed_in(
        As::Cookie(&format!("pikoci_session={session}")),
        "erin",
        "erin's second sign-in",
    );
}

// ---- PikoCI and the provider ----

/// A `pikoci server` in memory and the OpenID provider whose client calls back to it.
struct World {
    server: ServerProcess,
    provider: OidcProvider,
}

/// Who a request to PikoCI is made as.
#[derive(Clone, Copy)]
enum As<'a> {
    /// Nobody: no credential.
    Nobody,
    /// `Authorization: Bearer <token>`.
    Bearer(&'a str),
    /// `Cookie: <name=value>`, as a browser sends it.
    Cookie(&'a str),
}

/// One sign-in in the browser, up to the provider's redirect back to PikoCI.
struct Flow {
    /// `pikoci_sso=…`: the cookie PikoCI set when the sign-in started, to send to its callback.
    cookie: String,
    /// The authorization request PikoCI redirected to.
    authorization: String,
    /// The provider's redirect to PikoCI's callback, with `code` and `state`.
    callback: String,
}

impl World {
    /// Starts PikoCI first (the provider must know its callback URLs), then the provider.
    fn start() -> World {
        let server = ServerProcess::start(&["--db-system", "mem", "--pubsub-system", "mem"]);
        let callbacks = ["idp", "plain"].map(|name| callback_url(&server.base, name));
        let provider = OidcProvider::start(&callbacks);
        World { server, provider }
    }

    /// A request to PikoCI (`path` from `/api/v1`).
    fn api(&self, method: &str, path: &str, who: As<'_>, body: Option<Value>) -> Answer {
        let mut headers = Vec::new();
        match who {
            As::Nobody => {}
            As::Bearer(token) => headers.push(("Authorization", format!("Bearer {token}"))),
            As::Cookie(cookie) => headers.push(("Cookie", cookie.to_owned())),
        }
        let body = body.map(|value| Body {
            content_type: "application/json",
            content: value.to_string(),
        });
        send(
            method,
            &format!("{}{path}", self.server.base),
            &headers,
            body,
        )
    }

    /// (a) `PUT /admin/auth-providers/idp`: the provider by OpenID Connect discovery. Then
    /// `GET` shows it with its callback URL and without its secret.
    fn register_oidc(&self) {
        let admin = As::Bearer(&self.server.token);
        let put = self
            .api(
                "PUT",
                "/api/v1/admin/auth-providers/idp",
                admin,
                Some(json!({
                    "kind": "oidc",
                    "display_name": "Test IdP",
                    "issuer_url": self.provider.issuer,
                    "client_id": CLIENT_ID,
                    "client_secret": CLIENT_SECRET,
                    "scopes": ["openid", "profile", "email"],
                    // A provider only our people log in to: its users may sign up.
                    "allow_signup": true,
                })),
            )
            .expect(201, "PUT /admin/auth-providers/idp");
        assert_no_secret(&put, "PUT /admin/auth-providers/idp");
        let got = self
            .api("GET", "/api/v1/admin/auth-providers/idp", admin, None)
            .expect(200, "GET /admin/auth-providers/idp");
        assert_no_secret(&got, "GET /admin/auth-providers/idp");
        let body = got.json();
        assert_eq!(body["data"]["has_client_secret"], true, "{got}");
        assert_eq!(
            body["data"]["callback_url"],
            callback_url(&self.server.base, "idp"),
            "the callback URL the provider was registered with: {got}"
        );
    }

    /// Starts a sign-in at PikoCI (`GET /auth/sso/{provider}`; or, when `link_as` gives a
    /// session token, the linking of an identity, `POST /profile/identities/{provider}`),
    /// follows it to the provider and through its forms as `user`, and stops at the
    /// provider's redirect to the callback (not followed).
    fn start_flow(&self, provider: &str, link_as: Option<&str>, user: &str, jar: &mut Jar) -> Flow {
        let (start, authorization, step) = match link_as {
            Some(token) => {
                let path = format!("/api/v1/profile/identities/{provider}");
                let step = format!("POST {path} (the start of linking {user}'s identity)");
                let start = self
                    .api("POST", &path, As::Bearer(token), None)
                    .expect(200, &step);
                let url = start.json()["data"]["url"]
                    .as_str()
                    .unwrap_or_else(|| panic!("{step}: no data.url:\n{start}"))
                    .to_owned();
                (start, url, step)
            }
            None => {
                let path = format!("/api/v1/auth/sso/{provider}");
                let step = format!("GET {path} (the start of {user}'s sign-in)");
                let start = self.api("GET", &path, As::Nobody, None).expect(303, &step);
                let url = start.location().to_owned();
                (start, url, step)
            }
        };
        let endpoint = self.provider.authorization_endpoint();
        assert!(
            authorization.starts_with(&format!("{endpoint}?")),
            "{step}: not a redirect to the provider's authorization endpoint {endpoint}:\n{start}"
        );
        let request = Query::of(&authorization);
        let callback = callback_url(&self.server.base, provider);
        assert_eq!(
            request.get("redirect_uri"),
            Some(callback.as_str()),
            "{step}: the redirect URI is not the callback URL:\n{start}"
        );
        assert!(
            request.get("state").is_some_and(|state| !state.is_empty()),
            "{step}: no state in the authorization request:\n{start}"
        );
        let set = start
            .set_cookie("pikoci_sso")
            .unwrap_or_else(|| panic!("{step}: no pikoci_sso cookie:\n{start}"));
        assert!(
            set.attribute("httponly").is_some(),
            "{step}: the pikoci_sso cookie is not HttpOnly:\n{start}"
        );
        // The provider's redirect back is a navigation from another site: a `Strict` cookie
        // would not come with it, and every sign-in would fail in a browser.
        assert!(
            !set.attribute("samesite")
                .is_some_and(|value| value.eq_ignore_ascii_case("strict")),
            "{step}: the pikoci_sso cookie is SameSite=Strict, which a browser does not send to \
             the callback:\n{start}"
        );
        let cookie = format!("pikoci_sso={}", set.value);

        let redirect = walk_provider(&self.provider.issuer, jar, &authorization, user);
        assert!(
            redirect.starts_with(&format!("{callback}?")),
            "the provider redirected {user} elsewhere than the callback {callback}: {redirect}"
        );
        let back = Query::of(&redirect);
        assert!(
            back.get("code").is_some() && back.get("state") == request.get("state"),
            "the provider's redirect has no code or another state: {redirect}"
        );
        Flow {
            cookie,
            authorization,
            callback: redirect,
        }
    }

    /// The browser's `GET` of the callback, with the cookie set at the start.
    fn callback(&self, flow: &Flow) -> Answer {
        send(
            "GET",
            &flow.callback,
            &[("Cookie", flow.cookie.clone())],
            None,
        )
    }

    /// The callback of a first sign-in of `user` (whose claims the provider makes from the
    /// login): 303 to the page that completes the profile, with the suggested name, full name
    /// and email, and no session yet. Returns `pikoci_sso_profile=…`.
    fn complete_profile_redirect(&self, flow: &Flow, user: &str) -> String {
        let step = format!("the callback of {user}'s first sign-in");
        let answer = self.callback(flow).expect(303, &step);
        let location = answer.location();
        let (path, _) = location.split_once('?').unwrap_or((location, ""));
        let query = Query::of(location);
        assert!(
            path == "/" && query.get("sso") == Some("complete-profile"),
            "{step}: not a redirect to /?sso=complete-profile:\n{answer}"
        );
        let full_name = format!("User {user}");
        let email = format!("{user}@example.com");
        for (name, expected) in [
            ("username", user),
            ("full_name", full_name.as_str()),
            ("email", email.as_str()),
        ] {
            assert_eq!(
                query.get(name),
                Some(expected),
                "{step}: the suggested {name}:\n{answer}"
            );
        }
        assert_no_session(&answer, &step);
        let set = answer
            .set_cookie("pikoci_sso_profile")
            .unwrap_or_else(|| panic!("{step}: no pikoci_sso_profile cookie:\n{answer}"));
        assert!(
            set.attribute("httponly").is_some(),
            "{step}: the pikoci_sso_profile cookie is not HttpOnly:\n{answer}"
        );
        format!("pikoci_sso_profile={}", set.value)
    }

    /// A first sign-in of `user` to the end: the profile completed with the suggested name
    /// and `Full <user>`. Returns the session token.
    fn first_login(&self, provider: &str, user: &str, jar: &mut Jar) -> String {
        let flow = self.start_flow(provider, None, user, jar);
        let profile = self.complete_profile_redirect(&flow, user);
        let step = format!("POST /auth/sso/complete-profile as {user}");
        let done = self
            .api(
                "POST",
                "/api/v1/auth/sso/complete-profile",
                As::Cookie(&profile),
                Some(json!({"username": user, "full_name": format!("Full {user}")})),
            )
            .expect(200, &step);
        let body = done.json();
        assert_eq!(body["data"]["user"]["name"], user, "{step}:\n{done}");
        let token = body["data"]["token"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        assert!(
            token.starts_with("pks_"),
            "{step}: no session token:\n{done}"
        );
        session_cookie(&done, &step);
        token
    }

    /// A sign-in of a known identity: the callback answers 303 to `/` with a session cookie.
    /// Returns the session token.
    fn sso_login(&self, provider: &str, user: &str, jar: &mut Jar) -> String {
        let flow = self.start_flow(provider, None, user, jar);
        let step = format!("the callback of {user}'s sign-in at {provider}");
        let answer = self.callback(&flow).expect(303, &step);
        assert_eq!(answer.location(), "/", "{step}:\n{answer}");
        session_cookie(&answer, &step)
    }

    /// Links `user`'s identity at `provider` to the owner of `token`: the callback answers 303
    /// to `/?sso=linked&provider=…`.
    fn link(&self, provider: &str, token: &str, user: &str, jar: &mut Jar) {
        let flow = self.start_flow(provider, Some(token), user, jar);
        let step = format!("the callback linking {user}'s identity at {provider}");
        let answer = self.callback(&flow).expect(303, &step);
        let location = answer.location();
        let query = Query::of(location);
        assert!(
            location.starts_with("/?")
                && query.get("sso") == Some("linked")
                && query.get("provider") == Some(provider),
            "{step}: not a redirect to /?sso=linked&provider={provider}:\n{answer}"
        );
    }

    /// `GET /profile` as `who` says `name`.
    fn assert_signed_in(&self, who: As<'_>, name: &str, what: &str) {
        let answer = self
            .api("GET", "/api/v1/profile", who, None)
            .expect(200, &format!("GET /profile with {what}"));
        assert_eq!(
            answer.json()["data"]["user"]["name"],
            name,
            "GET /profile with {what}:\n{answer}"
        );
    }

    /// The identities of the owner of `token` (`GET /profile/identities`).
    fn identities(&self, token: &str) -> Vec<Value> {
        let answer = self
            .api("GET", "/api/v1/profile/identities", As::Bearer(token), None)
            .expect(200, "GET /profile/identities");
        answer.json()["data"]
            .as_array()
            .unwrap_or_else(|| panic!("GET /profile/identities: no list in data:\n{answer}"))
            .clone()
    }

    /// `answer` is the API's error (`{"error": {"code", …}}`) with `status`, and signs nobody
    /// in.
    fn assert_refused(&self, answer: &Answer, status: u16, what: &str) {
        assert_eq!(
            answer.status, status,
            "{what}: expected {status}:\n{answer}"
        );
        assert!(
            answer.json()["error"]["code"].is_string(),
            "{what}: not an API error:\n{answer}"
        );
        assert_no_session(answer, what);
    }
}

/// PikoCI's callback URL for `provider`.
fn callback_url(base: &str, provider: &str) -> String {
    format!("{base}/api/v1/auth/sso/{provider}/callback")
}

/// The session cookie `answer` sets (`pikoci_session=pks_…`, HttpOnly): its value.
#[track_caller]
fn session_cookie(answer: &Answer, step: &str) -> String {
    let set = answer
        .set_cookie("pikoci_session")
        .filter(|set| !set.removes())
        .unwrap_or_else(|| panic!("{step}: no pikoci_session cookie:\n{answer}"));
    assert!(
        set.value.starts_with("pks_"),
        "{step}: the pikoci_session cookie is not a session token:\n{answer}"
    );
    assert!(
        set.attribute("httponly").is_some(),
        "{step}: the pikoci_session cookie is not HttpOnly:\n{answer}"
    );
    set.value
}

/// `answer` sets no session cookie (clearing one is fine).
#[track_caller]
fn assert_no_session(answer: &Answer, step: &str) {
    assert!(
        answer
            .set_cookie("pikoci_session")
            .is_none_or(|set| set.removes()),
        "{step}: a session cookie was set:\n{answer}"
    );
}

/// `answer` does not show the client secret.
#[track_caller]
fn assert_no_secret(answer: &Answer, step: &str) {
    assert!(
        !answer.body.contains(CLIENT_SECRET),
        "{step}: the client secret is in the answer:\n{answer}"
    );
}

/// The OpenID provider: `node tests/oidc/provider.mjs`, killed when dropped.
struct OidcProvider {
    child: Child,
    /// `http://127.0.0.1:PORT`.
    issuer: String,
    /// Its `/.well-known/openid-configuration`.
    discovery: Value,
    /// Its output, read on threads (a full pipe would stop it).
    _stdout: Lines,
    _stderr: Lines,
}

impl OidcProvider {
    /// Starts the provider on a free port with one client (`CLIENT_ID`, `CLIENT_SECRET`) whose
    /// redirect URIs are `redirect_uris`, and reads its discovery document. Fails with what to
    /// install when `node` or the provider's packages are missing.
    fn start(redirect_uris: &[String]) -> OidcProvider {
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/oidc/provider.mjs");
        let node = Command::new("node").arg("--version").output();
        assert!(
            node.as_ref().is_ok_and(|output| output.status.success()),
            "these tests need Node.js (`node`, 20 or later) for the OpenID provider \
             tests/oidc/provider.mjs: {node:?}"
        );
        let packages = Path::new(script)
            .with_file_name("node_modules")
            .join("oidc-provider");
        assert!(
            packages.is_dir(),
            "{} is missing: run `npm ci --prefix tests/oidc` (the OpenID provider's packages)",
            packages.display()
        );
        let mut child = Command::new("node")
            .arg(script)
            .env("OIDC_PORT", "0")
            .env("OIDC_CLIENT_ID", CLIENT_ID)
            .env("OIDC_CLIENT_SECRET", CLIENT_SECRET)
            .env("OIDC_REDIRECT_URIS", redirect_uris.join(","))
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("node {script}: {e}"));
        let mut stdout = Lines::new(child.stdout.take().expect("stdout is piped"));
        let mut stderr = Lines::new(child.stderr.take().expect("stderr is piped"));
        let deadline = Instant::now() + Duration::from_secs(60);
        let issuer = loop {
            let listening = stdout
                .so_far()
                .lines()
                .find_map(|line| line.strip_prefix("oidc-provider listening on "))
                .map(str::to_owned);
            if let Some(issuer) = listening {
                break issuer;
            }
            if let Ok(Some(status)) = child.try_wait() {
                panic!(
                    "the OpenID provider exited ({status}) before listening:\n{}{}",
                    stdout.so_far(),
                    stderr.rest(&mut child)
                );
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                panic!(
                    "the OpenID provider did not listen within a minute:\n{}{}",
                    stdout.so_far(),
                    stderr.so_far()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let mut provider = OidcProvider {
            child,
            issuer,
            discovery: Value::Null,
            _stdout: stdout,
            _stderr: stderr,
        };
        let url = format!("{}/.well-known/openid-configuration", provider.issuer);
        provider.discovery = send("GET", &url, &[], None)
            .expect(200, "the provider's discovery document")
            .json();
        provider
    }

    /// The authorization endpoint of the discovery document.
    fn authorization_endpoint(&self) -> &str {
        self.discovery["authorization_endpoint"]
            .as_str()
            .unwrap_or_else(|| panic!("no authorization_endpoint: {:#}", self.discovery))
    }
}

impl Drop for OidcProvider {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

// ---- the browser at the provider ----

/// Plays the browser at the provider from `url` (its authorization endpoint) as `user`:
/// follows its redirects, and answers its two development forms — the login form (hidden
/// `prompt=login`; posted with `login=<user>&password=x`, any password is accepted) and the
/// consent form (hidden `prompt=consent`) — until it redirects away from itself. Returns that
/// redirect: the client's redirect URI with `code`, `state` and `iss`.
///
/// The provider's cookies stay in `jar`. Its path is `/auth` → 303 `/interaction/{uid}` (login
/// form) → `POST /interaction/{uid}` → 303 `/auth/{uid}` → 303 `/interaction/{uid2}` (consent
/// form) → `POST /interaction/{uid2}` → 303 `/auth/{uid2}` → 303 to the redirect URI. With a
/// jar that signed in before, it may skip the login, the consent, or both.
fn walk_provider(issuer: &str, jar: &mut Jar, url: &str, user: &str) -> String {
    let mut method = "GET";
    let mut url = url.to_owned();
    let mut body: Option<Body> = None;
    for _ in 0..16 {
        let mut headers = Vec::new();
        if let Some(cookies) = jar.header() {
            headers.push(("Cookie", cookies));
        }
        let answer = send(method, &url, &headers, body.take());
        jar.keep(&answer);
        match answer.status {
            302 | 303 => {
                let location = absolute(issuer, answer.location());
                if !location.starts_with(&format!("{issuer}/")) {
                    return location;
                }
                method = "GET";
                url = location;
            }
            200 => {
                let form = Form::find(&answer.body).unwrap_or_else(|| {
                    panic!("the provider's page (as {user}) has no form:\n{answer}")
                });
                let mut fields = form.hidden.clone();
                match form.field("prompt") {
                    Some("login") => {
                        fields.push(("login".to_owned(), user.to_owned()));
                        fields.push(("password".to_owned(), "x".to_owned()));
                    }
                    Some("consent") => {}
                    other => panic!(
                        "the provider's page (as {user}) is neither its login nor its consent \
                         form (prompt {other:?}):\n{answer}"
                    ),
                }
                method = "POST";
                url = absolute(issuer, &form.action);
                body = Some(Body {
                    content_type: "application/x-www-form-urlencoded",
                    content: form_encode(&fields),
                });
            }
            _ => panic!("the provider refused (as {user}):\n{answer}"),
        }
    }
    panic!("the provider never redirected {user} back (16 steps from {url})")
}

/// `location` made absolute against `origin` when it is a path.
fn absolute(origin: &str, location: &str) -> String {
    if location.starts_with('/') {
        format!("{origin}{location}")
    } else {
        location.to_owned()
    }
}

/// An HTML form: where it is posted and its hidden fields.
struct Form {
    action: String,
    hidden: Vec<(String, String)>,
}

impl Form {
    /// The first `<form … action="…">` of `html` and its `<input type="hidden" name="…"
    /// value="…">` fields; `None` when the page has no form.
    fn find(html: &str) -> Option<Form> {
        let start = html.find("<form")?;
        let open = &html[start..start + html[start..].find('>')?];
        let action = attribute(open, "action")?;
        let inside = &html[start + open.len()..];
        let inside = &inside[..inside.find("</form>").unwrap_or(inside.len())];
        let mut hidden = Vec::new();
        let mut rest = inside;
        while let Some(at) = rest.find("<input") {
            let tag = &rest[at..];
            let tag = &tag[..tag.find('>').unwrap_or(tag.len())];
            if attribute(tag, "type").as_deref() == Some("hidden")
                && let (Some(name), Some(value)) = (attribute(tag, "name"), attribute(tag, "value"))
            {
                hidden.push((name, value));
            }
            rest = &rest[at + tag.len()..];
        }
        Some(Form { action, hidden })
    }

    /// The value of a hidden field.
    fn field(&self, name: &str) -> Option<&str> {
        self.hidden
            .iter()
            .find(|(field, _)| field == name)
            .map(|(_, value)| value.as_str())
    }
}

/// The value of `name="…"` in an HTML tag, unescaped.
fn attribute(tag: &str, name: &str) -> Option<String> {
    let needle = format!(" {name}=\"");
    let start = tag.find(&needle)? + needle.len();
    let end = start + tag[start..].find('"')?;
    Some(
        tag[start..end]
            .replace("&quot;", "\"")
            .replace("&#39;", "'")
            .replace("&lt;", "<")
            .replace("&gt;", ">")
            .replace("&amp;", "&"),
    )
}

// ---- HTTP ----

/// The cookies a browser keeps for one site, by name. Paths are not kept: the provider sets
/// each name for one path at a time (a new interaction's cookie replaces the last one's), and
/// a cookie it sets empty or expired is dropped.
#[derive(Default)]
struct Jar(Vec<(String, String)>);

impl Jar {
    /// Keeps the cookies `answer` sets, in order, and drops those it clears.
    fn keep(&mut self, answer: &Answer) {
        for cookie in answer.set_cookies() {
            self.0.retain(|(name, _)| *name != cookie.name);
            if !cookie.removes() {
                self.0.push((cookie.name, cookie.value));
            }
        }
    }

    /// The `Cookie` header: every cookie kept, if any.
    fn header(&self) -> Option<String> {
        (!self.0.is_empty()).then(|| {
            self.0
                .iter()
                .map(|(name, value)| format!("{name}={value}"))
                .collect::<Vec<_>>()
                .join("; ")
        })
    }
}

/// A `Set-Cookie` header.
#[derive(Debug)]
struct SetCookie {
    name: String,
    value: String,
    /// Lowercase names, values as sent (`httponly` has an empty one).
    attributes: Vec<(String, String)>,
}

impl SetCookie {
    fn parse(header: &str) -> SetCookie {
        let mut parts = header.split(';');
        let (name, value) = parts
            .next()
            .unwrap_or_default()
            .split_once('=')
            .unwrap_or((header, ""));
        let attributes = parts
            .map(|part| {
                let (name, value) = part.split_once('=').unwrap_or((part, ""));
                (name.trim().to_ascii_lowercase(), value.trim().to_owned())
            })
            .collect();
        SetCookie {
            name: name.trim().to_owned(),
            value: value.trim().to_owned(),
            attributes,
        }
    }

    fn attribute(&self, name: &str) -> Option<&str> {
        self.attributes
            .iter()
            .find(|(attribute, _)| attribute == name)
            .map(|(_, value)| value.as_str())
    }

    /// Whether it clears the cookie: empty, `Max-Age=0` or less, or expired in 1970.
    fn removes(&self) -> bool {
        self.value.is_empty()
            || self
                .attribute("max-age")
                .and_then(|age| age.parse::<i64>().ok())
                .is_some_and(|age| age <= 0)
            || self
                .attribute("expires")
                .is_some_and(|date| date.contains("1970"))
    }
}

/// A request body.
struct Body {
    content_type: &'static str,
    content: String,
}

/// An HTTP answer.
struct Answer {
    /// What was asked: `GET http://…`.
    request: String,
    status: u16,
    /// Lowercase names, in the order received.
    headers: Vec<(String, String)>,
    body: String,
}

impl Answer {
    /// Fails the test, showing `step`, the request and the whole answer, unless the status is
    /// `status`.
    #[track_caller]
    fn expect(self, status: u16, step: &str) -> Answer {
        assert_eq!(self.status, status, "{step}: expected {status}:\n{self}");
        self
    }

    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(header, _)| header == name)
            .map(|(_, value)| value.as_str())
    }

    /// The `Location` header; fails the test without one.
    #[track_caller]
    fn location(&self) -> &str {
        self.header("location")
            .unwrap_or_else(|| panic!("no Location header:\n{self}"))
    }

    /// Every `Set-Cookie`, in order.
    fn set_cookies(&self) -> Vec<SetCookie> {
        self.headers
            .iter()
            .filter(|(name, _)| name == "set-cookie")
            .map(|(_, value)| SetCookie::parse(value))
            .collect()
    }

    /// The last `Set-Cookie` of cookie `name`.
    fn set_cookie(&self, name: &str) -> Option<SetCookie> {
        self.set_cookies()
            .into_iter()
            .rev()
            .find(|cookie| cookie.name == name)
    }

    /// The body as JSON; fails the test when it is not.
    #[track_caller]
    fn json(&self) -> Value {
        serde_json::from_str(&self.body)
            .unwrap_or_else(|e| panic!("the answer is not JSON ({e}):\n{self}"))
    }
}

/// The request, the status, the headers that matter here and the body (an HTML page as its
/// text, without its styles and tags).
impl fmt::Display for Answer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{} → {}", self.request, self.status)?;
        for (name, value) in &self.headers {
            if ["location", "set-cookie", "content-type"].contains(&name.as_str()) {
                writeln!(f, "{name}: {value}")?;
            }
        }
        let html = self
            .header("content-type")
            .is_some_and(|kind| kind.starts_with("text/html"));
        if html {
            write!(f, "{}", html_text(&self.body))
        } else {
            write!(f, "{}", self.body)
        }
    }
}

/// The text of an HTML page: `<style>` blocks and tags removed, blank space collapsed.
fn html_text(html: &str) -> String {
    let mut text = String::new();
    let mut rest = html;
    while let Some(start) = rest.find("<style") {
        text.push_str(&rest[..start]);
        rest = rest[start..]
            .find("</style>")
            .map_or("", |end| &rest[start + end + "</style>".len()..]);
    }
    text.push_str(rest);
    let mut plain = String::new();
    let mut in_tag = false;
    for c in text.chars() {
        match c {
            '<' => {
                in_tag = true;
                plain.push(' ');
            }
            '>' => in_tag = false,
            _ if !in_tag => plain.push(c),
            _ => {}
        }
    }
    plain.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// One HTTP/1.1 request on its own connection (`Connection: close`) to an `http://` URL.
fn send(method: &str, url: &str, headers: &[(&str, String)], body: Option<Body>) -> Answer {
    let request = format!("{method} {url}");
    let rest = url
        .strip_prefix("http://")
        .unwrap_or_else(|| panic!("{request}: only http:// URLs are sent here"));
    let (authority, target) = rest
        .find(['/', '?'])
        .map_or((rest, "/"), |at| (&rest[..at], &rest[at..]));
    let mut head = format!(
        "{method} {target} HTTP/1.1\r\nHost: {authority}\r\nConnection: close\r\n\
         User-Agent: pikoci-e2e-sso\r\n"
    );
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    let content = match &body {
        Some(body) => {
            head.push_str(&format!("Content-Type: {}\r\n", body.content_type));
            body.content.as_str()
        }
        None => "",
    };
    if body.is_some() || method != "GET" {
        head.push_str(&format!("Content-Length: {}\r\n", content.len()));
    }
    head.push_str("\r\n");

    let mut stream =
        TcpStream::connect(authority).unwrap_or_else(|e| panic!("{request}: cannot connect: {e}"));
    stream.set_read_timeout(Some(REQUEST_TIMEOUT)).unwrap();
    stream.set_write_timeout(Some(REQUEST_TIMEOUT)).unwrap();
    stream
        .write_all(head.as_bytes())
        .and_then(|()| stream.write_all(content.as_bytes()))
        .unwrap_or_else(|e| panic!("{request}: cannot send: {e}"));
    let mut raw = Vec::new();
    stream
        .read_to_end(&mut raw)
        .unwrap_or_else(|e| panic!("{request}: no whole answer: {e}"));

    let split = find(&raw, b"\r\n\r\n").unwrap_or_else(|| {
        panic!(
            "{request}: not an HTTP answer: {}",
            String::from_utf8_lossy(&raw)
        )
    });
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .and_then(|line| line.split_whitespace().nth(1))
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("{request}: no status line in {head:?}"));
    let headers: Vec<(String, String)> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(name, value)| (name.trim().to_ascii_lowercase(), value.trim().to_owned()))
        .collect();
    let mut payload = raw[split + 4..].to_vec();
    let header = |name: &str| {
        headers
            .iter()
            .find(|(header, _)| header == name)
            .map(|(_, value)| value.to_ascii_lowercase())
    };
    if header("transfer-encoding").is_some_and(|coding| coding.contains("chunked")) {
        payload = dechunk(&payload);
    } else if let Some(length) = header("content-length").and_then(|n| n.parse().ok()) {
        payload.truncate(length);
    }
    Answer {
        request,
        status,
        headers,
        body: String::from_utf8_lossy(&payload).into_owned(),
    }
}

/// Where `needle` first is in `bytes`.
fn find(bytes: &[u8], needle: &[u8]) -> Option<usize> {
    bytes
        .windows(needle.len())
        .position(|window| window == needle)
}

/// A chunked body, joined.
fn dechunk(mut bytes: &[u8]) -> Vec<u8> {
    let mut body = Vec::new();
    while let Some(end) = find(bytes, b"\r\n") {
        let line = String::from_utf8_lossy(&bytes[..end]);
        let size = line
            .split(';')
            .next()
            .and_then(|size| usize::from_str_radix(size.trim(), 16).ok())
            .unwrap_or(0);
        bytes = &bytes[end + 2..];
        if size == 0 {
            break;
        }
        body.extend_from_slice(&bytes[..size.min(bytes.len())]);
        bytes = bytes.get(size + 2..).unwrap_or_default();
    }
    body
}

/// `application/x-www-form-urlencoded` of `fields`.
fn form_encode(fields: &[(String, String)]) -> String {
    fields
        .iter()
        .map(|(name, value)| format!("{}={}", encode(name), encode(value)))
        .collect::<Vec<_>>()
        .join("&")
}

/// Percent-encodes everything but the unreserved characters.
fn encode(value: &str) -> String {
    let mut encoded = String::new();
    for byte in value.bytes() {
        match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                encoded.push(char::from(byte));
            }
            _ => encoded.push_str(&format!("%{byte:02X}")),
        }
    }
    encoded
}

/// Percent-decodes a query's name or value (`+` is a space).
fn decode(value: &str) -> String {
    let bytes = value.as_bytes();
    let mut decoded = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        match bytes[at] {
            b'+' => {
                decoded.push(b' ');
                at += 1;
            }
            b'%' => match value
                .get(at + 1..at + 3)
                .and_then(|hex| u8::from_str_radix(hex, 16).ok())
            {
                Some(byte) => {
                    decoded.push(byte);
                    at += 3;
                }
                None => {
                    decoded.push(b'%');
                    at += 1;
                }
            },
            byte => {
                decoded.push(byte);
                at += 1;
            }
        }
    }
    String::from_utf8_lossy(&decoded).into_owned()
}

/// The query of a URL (or a path with a query), decoded.
struct Query(Vec<(String, String)>);

impl Query {
    fn of(url: &str) -> Query {
        let query = url.split_once('?').map_or("", |(_, query)| query);
        let query = query.split_once('#').map_or(query, |(query, _)| query);
        Query(
            query
                .split('&')
                .filter(|pair| !pair.is_empty())
                .map(|pair| {
                    let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
                    (decode(name), decode(value))
                })
                .collect(),
        )
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    }
}

/// `url` with query parameter `name` set to `value` (its other parameters kept, in order).
fn with_param(url: &str, name: &str, value: &str) -> String {
    let (base, query) = url.split_once('?').unwrap_or((url, ""));
    let pairs: Vec<String> = query
        .split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            if pair.split_once('=').map_or(pair, |(key, _)| key) == name {
                format!("{name}={}", encode(value))
            } else {
                pair.to_owned()
            }
        })
        .collect();
    format!("{base}?{}", pairs.join("&"))
}
