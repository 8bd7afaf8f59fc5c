//! `pikoci sso providers|set|delete|local-login|identities|unlink`: single sign-on's identity
//! providers (global admins), the login setting, and the caller's linked identities.

use anyhow::Context;
use serde_json::{Value, json};

use super::pipelines::{confirm, header};
use super::table::{self, render};
use super::{Exit, Remote, Session};

/// `pikoci sso ...`.
#[derive(Debug, clap::Args)]
pub(crate) struct SsoArgs {
    #[command(flatten)]
    remote: Remote,

    #[command(subcommand)]
    command: SsoCommand,
}

#[derive(Debug, clap::Subcommand)]
enum SsoCommand {
    /// List the identity providers, with the callback URL to register at each.
    Providers,
    /// Create or replace an identity provider (its client secret is read from standard input
    /// with --client-secret-stdin, or asked for, hidden, with --client-secret; left as it is
    /// otherwise).
    Set(Box<SetArgs>),
    /// Delete an identity provider and every identity linked through it.
    Delete {
        /// The provider.
        name: String,
        /// Delete without asking.
        #[arg(long, short = 'y')]
        yes: bool,
    },
    /// Print whether users may log in with a password; `on` or `off` changes it (off needs a
    /// global admin with an identity at an enabled provider).
    LocalLogin {
        /// `on` or `off`.
        #[arg(value_parser = ["on", "off"])]
        state: Option<String>,
    },
    /// List the identities linked to you.
    Identities,
    /// Unlink your identity at a provider (refused when you would have no way left to log
    /// in).
    Unlink {
        /// The provider.
        provider: String,
    },
}

/// The flags of `pikoci sso set`.
#[derive(Debug, clap::Args)]
struct SetArgs {
    /// Its name in URLs: lowercase letters, digits, '-' and '_'.
    name: String,
    /// oidc (discovery from --issuer-url), oauth2 (--auth-url, --token-url,
    /// --userinfo-url) or github.
    #[arg(long)]
    kind: String,
    /// The name on the login page.
    #[arg(long)]
    display_name: Option<String>,
    /// The OpenID Connect issuer, such as https://sso.example.com/realms/ci.
    #[arg(long)]
    issuer_url: Option<String>,
    /// The authorization endpoint (oauth2).
    #[arg(long)]
    auth_url: Option<String>,
    /// The token endpoint (oauth2).
    #[arg(long)]
    token_url: Option<String>,
    /// The endpoint that says who the user is (oauth2).
    #[arg(long)]
    userinfo_url: Option<String>,
    /// A scope to ask for (repeat it); the kind's defaults without it.
    #[arg(long = "scope", value_name = "SCOPE")]
    scopes: Vec<String>,
    /// The client id registered at the provider.
    #[arg(long)]
    client_id: String,
    /// Ask for the client secret (hidden).
    #[arg(long)]
    client_secret: bool,
    /// Read the client secret from standard input.
    #[arg(long)]
    client_secret_stdin: bool,
    /// The claim that suggests a user name at a first login.
    #[arg(long)]
    username_claim: Option<String>,
    /// The claim that identifies users (oauth2).
    #[arg(long)]
    subject_claim: Option<String>,
    /// Whether logins through it are accepted (default: as it was, or true).
    #[arg(long, value_name = "BOOL")]
    enabled: Option<bool>,
    /// Whether the first login of an identity nobody has creates a user (default: as it
    /// was when the kind stays, else false: at a public provider anyone could sign up).
    #[arg(long, value_name = "BOOL")]
    allow_signup: Option<bool>,
}

/// Runs `pikoci sso`.
pub(crate) fn run(args: SsoArgs) -> std::process::ExitCode {
    super::run(&args.remote, |session| async move {
        match args.command {
            SsoCommand::Providers => providers(&session).await,
            SsoCommand::Set(set) => {
                let SetArgs {
                    name,
                    kind,
                    display_name,
                    issuer_url,
                    auth_url,
                    token_url,
                    userinfo_url,
                    scopes,
                    client_id,
                    client_secret,
                    client_secret_stdin,
                    username_claim,
                    subject_claim,
                    enabled,
                    allow_signup,
                } = *set;
                let mut body = json!({
                    "kind": kind,
                    "client_id": client_id,
                });
                if let Some(enabled) = enabled {
                    body["enabled"] = Value::Bool(enabled);
                }
                let optional = [
                    ("display_name", display_name),
                    ("issuer_url", issuer_url),
                    ("auth_url", auth_url),
                    ("token_url", token_url),
                    ("userinfo_url", userinfo_url),
                    ("username_claim", username_claim),
                    ("subject_claim", subject_claim),
                ];
                for (field, value) in optional {
                    if let Some(value) = value {
                        body[field] = Value::String(value);
                    }
                }
                if let Some(allow) = allow_signup {
                    body["allow_signup"] = Value::Bool(allow);
                }
                if !scopes.is_empty() {
                    body["scopes"] = json!(scopes);
                }
                if client_secret || client_secret_stdin {
                    let secret = super::prompt::secret(
                        "client secret: ",
                        client_secret_stdin,
                        "--client-secret-stdin",
                    )?;
                    body["client_secret"] = Value::String(secret.into_exposed());
                }
                let answer = session
                    .client
                    .put(&format!("/admin/auth-providers/{name}"), &body)
                    .await
                    .with_context(|| format!("cannot set identity provider {name}"))?;
                let callback = answer.data["callback_url"].as_str().unwrap_or_default();
                session.done(
                    &answer.data,
                    &format!(
                        "identity provider {name} is set; register this redirect URL at the \
                         provider: {callback}"
                    ),
                )
            }
            SsoCommand::Delete { name, yes } => {
                if !yes
                    && !confirm(
                        &format!(
                            "delete identity provider {name} and the identities linked through it?"
                        ),
                        "--yes to delete without asking",
                    )?
                {
                    return Ok(Exit::Ok);
                }
                let answer = session
                    .client
                    .delete(&format!("/admin/auth-providers/{name}"))
                    .await
                    .with_context(|| format!("cannot delete identity provider {name}"))?;
                session.done(&answer.data, &format!("deleted identity provider {name}"))
            }
            SsoCommand::LocalLogin { state } => local_login(&session, state).await,
            SsoCommand::Identities => identities(&session).await,
            SsoCommand::Unlink { provider } => {
                let answer = session
                    .client
                    .delete(&format!("/profile/identities/{provider}"))
                    .await
                    .with_context(|| format!("cannot unlink your identity at {provider}"))?;
                session.done(
                    &answer.data,
                    &format!("unlinked your identity at {provider}"),
                )
            }
        }
    })
}

async fn providers(session: &Session) -> anyhow::Result<Exit> {
    let answer = session
        .client
        .get("/admin/auth-providers")
        .await
        .context("cannot list the identity providers")?;
    if session.json {
        session.print_json(&answer.data)?;
        return Ok(Exit::Ok);
    }
    let providers = answer.data.as_array().cloned().unwrap_or_default();
    if providers.is_empty() {
        session.print("no identity provider (`pikoci sso set` adds one)\n")?;
        return Ok(Exit::Ok);
    }
    let mut rows = vec![header(&[
        "NAME",
        "KIND",
        "ENABLED",
        "CLIENT",
        "CALLBACK URL",
    ])];
    for provider in &providers {
        let text = |field: &str| provider[field].as_str().unwrap_or_default().to_owned();
        rows.push(vec![
            text("name"),
            text("kind"),
            provider["enabled"].to_string(),
            text("client_id"),
            text("callback_url"),
        ]);
    }
    session.print(&render(&rows))?;
    Ok(Exit::Ok)
}

async fn local_login(session: &Session, state: Option<String>) -> anyhow::Result<Exit> {
    let answer = match state {
        None => session
            .client
            .get("/admin/auth-settings")
            .await
            .context("cannot read the login settings")?,
        Some(state) => session
            .client
            .put(
                "/admin/auth-settings",
                &json!({ "local_login": state == "on" }),
            )
            .await
            .with_context(|| format!("cannot turn local login {state}"))?,
    };
    let on = answer.data["local_login"] == true;
    session.done(
        &answer.data,
        if on {
            "local login is on: users may log in with a password"
        } else {
            "local login is off: users log in with single sign-on only"
        },
    )
}

async fn identities(session: &Session) -> anyhow::Result<Exit> {
    let answer = session
        .client
        .get("/profile/identities")
        .await
        .context("cannot list your identities")?;
    if session.json {
        session.print_json(&answer.data)?;
        return Ok(Exit::Ok);
    }
    let identities = answer.data.as_array().cloned().unwrap_or_default();
    if identities.is_empty() {
        session.print("no identity is linked to you\n")?;
        return Ok(Exit::Ok);
    }
    let mut rows = vec![header(&["PROVIDER", "SUBJECT", "LINKED"])];
    for identity in &identities {
        rows.push(vec![
            identity["provider"].as_str().unwrap_or_default().to_owned(),
            identity["subject"].as_str().unwrap_or_default().to_owned(),
            table::time(identity["created_at"].as_str()),
        ]);
    }
    session.print(&render(&rows))?;
    Ok(Exit::Ok)
}
