//! Accounts: `pikoci whoami`, `logout`, `password`, `tokens`, `users`, and the offline
//! `pikoci user-password`.

use std::process::ExitCode;

use anyhow::Context;
use pikoci_core::secrets::Secret;
use serde_json::{Value, json};

use super::pipelines::{confirm, header};
use super::table::{self, render};
use super::{Exit, Remote, UsageError, prompt, text};
use crate::output;

/// The flags of commands that take only the server flags.
#[derive(Debug, clap::Args)]
pub(crate) struct RemoteOnly {
    #[command(flatten)]
    remote: Remote,
}

/// `pikoci whoami`: the user, the user's teams and roles.
pub(crate) fn whoami(args: RemoteOnly) -> ExitCode {
    super::run(&args.remote, |session| async move {
        let answer = session
            .client
            .get("/profile")
            .await
            .context("cannot read who you are")?;
        if session.json {
            session.print_json(&answer.data)?;
            return Ok(Exit::Ok);
        }
        let user = &answer.data["user"];
        let mut out = format!(
            "{}{} on {} ({})\n",
            text(&user["name"]),
            if user["admin"] == true {
                ", a global admin,"
            } else {
                ""
            },
            session.client.server(),
            text(&answer.data["credential"]).replace('_', " ")
        );
        for team in answer.data["teams"].as_array().into_iter().flatten() {
            out.push_str(&format!(
                "  {}: {}\n",
                text(&team["team"]),
                text(&team["role"])
            ));
        }
        if user["must_change_password"] == true {
            out.push_str("you must choose a new password: run `pikoci password`\n");
        }
        session.print(&out)?;
        Ok(Exit::Ok)
    })
}

/// `pikoci logout`: ends the session on the server and forgets its token.
pub(crate) fn logout(args: RemoteOnly) -> ExitCode {
    let remote = args.remote.clone();
    super::run(&args.remote, |session| async move {
        let ended = session.client.post("/logout", &json!({})).await;
        if remote.server.is_none() {
            let mut targets = super::targets::Targets::load()?;
            let name = targets.forget_token(remote.target.as_deref())?;
            targets.save()?;
            session.print(&format!("forgot the token of target \"{name}\"\n"))?;
        }
        ended.context("cannot end the session on the server")?;
        session.print("logged out\n")?;
        Ok(Exit::Ok)
    })
}

/// The flags of `pikoci password`.
#[derive(Debug, clap::Args)]
pub(crate) struct PasswordArgs {
    #[command(flatten)]
    remote: Remote,

    /// Read the current password, then the new one, from two lines of standard input.
    #[arg(long)]
    password_stdin: bool,
}

/// `pikoci password`: changes your password (your other sessions end).
pub(crate) fn password(args: PasswordArgs) -> ExitCode {
    super::run(&args.remote, |session| async move {
        let current = prompt::secret(
            "Current password: ",
            args.password_stdin,
            "--password-stdin",
        )?;
        let new = prompt::new_password(args.password_stdin, "--password-stdin")?;
        let answer = session
            .client
            .post(
                "/profile/password",
                &json!({"current_password": current.expose(), "new_password": new.expose()}),
            )
            .await
            .context("cannot change the password")?;
        session.done(&answer.data, "password changed; your other sessions ended")
    })
}

/// `pikoci tokens ...`: your API tokens.
#[derive(Debug, clap::Args)]
pub(crate) struct TokensArgs {
    #[command(flatten)]
    remote: Remote,

    #[command(subcommand)]
    command: TokensCommand,
}

#[derive(Debug, clap::Subcommand)]
enum TokensCommand {
    /// List your API tokens (names and first characters, never the values).
    List,
    /// Create an API token and print it (this once): a personal one acts as you, a team one
    /// (--for-team) in that team only with at most --role.
    Create {
        /// Its name, unique among your tokens.
        name: String,
        /// Make a team token for this team.
        #[arg(long, value_name = "TEAM")]
        for_team: Option<String>,
        /// A team token's role: read, write, maintain or admin (at most your own).
        #[arg(long, default_value = "read", requires = "for_team")]
        role: String,
        /// When it stops working, as an RFC 3339 time (2027-01-31T00:00:00Z) or a duration
        /// from now (90d).
        #[arg(long, value_name = "WHEN")]
        expires: Option<String>,
    },
    /// Delete an API token: it stops working at once.
    Delete {
        /// Its id (`pikoci tokens list`).
        id: i64,
    },
}

/// Runs `pikoci tokens`.
pub(crate) fn tokens(args: TokensArgs) -> ExitCode {
    super::run(&args.remote, |session| async move {
        match args.command {
            TokensCommand::List => {
                let answer = session
                    .client
                    .get("/api-tokens")
                    .await
                    .context("cannot list your API tokens")?;
                if session.json {
                    session.print_json(&answer.data)?;
                    return Ok(Exit::Ok);
                }
                let mut rows = vec![header(&[
                    "ID",
                    "NAME",
                    "PREFIX",
                    "TEAM",
                    "ROLE",
                    "EXPIRES",
                    "LAST USED",
                ])];
                for token in answer.data.as_array().into_iter().flatten() {
                    rows.push(vec![
                        token["id"].to_string(),
                        text(&token["name"]),
                        text(&token["prefix"]),
                        or_dash(&token["team"]),
                        or_dash(&token["role"]),
                        table::time(token["expires_at"].as_str()),
                        table::time(token["last_used_at"].as_str()),
                    ]);
                }
                session.print(&render(&rows))?;
                Ok(Exit::Ok)
            }
            TokensCommand::Create {
                name,
                for_team,
                role,
                expires,
            } => {
                let expires_at = expires.as_deref().map(expiry).transpose()?;
                let mut body = json!({"name": name});
                if let Some(team) = &for_team {
                    body["team"] = json!(team);
                    body["role"] = json!(role);
                }
                if let Some(at) = expires_at {
                    body["expires_at"] = json!(at);
                }
                let answer = session
                    .client
                    .post("/api-tokens", &body)
                    .await
                    .with_context(|| format!("cannot create API token {name}"))?;
                if session.json {
                    session.print_json(&answer.data)?;
                } else {
                    // The value alone on stdout, for `pikoci tokens create x | ...`.
                    output::stderr(&format!(
                        "created API token \"{name}\"; it is shown this once, keep it secret:\n"
                    ))?;
                    output::stdout(&format!("{}\n", text(&answer.data["token"])))?;
                }
                Ok(Exit::Ok)
            }
            TokensCommand::Delete { id } => {
                let answer = session
                    .client
                    .delete(&pikoci_client::path(&["api-tokens", &id.to_string()]))
                    .await
                    .with_context(|| format!("cannot delete API token {id}"))?;
                session.done(&answer.data, &format!("deleted API token {id}"))
            }
        }
    })
}

/// An RFC 3339 time as it is, or a duration from now turned into one.
fn expiry(text: &str) -> anyhow::Result<String> {
    if chrono::DateTime::parse_from_rfc3339(text).is_ok() {
        return Ok(text.to_owned());
    }
    let duration = crate::worker::parse_duration(text).map_err(|why| {
        UsageError(format!(
            "invalid --expires \"{text}\": give an RFC 3339 time (2027-01-31T00:00:00Z) or a \
             duration (90d): {why}"
        ))
    })?;
    let duration = chrono::Duration::from_std(duration)
        .map_err(|_| UsageError(format!("--expires {text} is too far away")))?;
    Ok((chrono::Utc::now() + duration).to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
}

fn or_dash(value: &Value) -> String {
    if value.is_null() {
        "-".to_owned()
    } else {
        text(value)
    }
}

/// `pikoci users ...`: the server's users (global admins).
#[derive(Debug, clap::Args)]
pub(crate) struct UsersArgs {
    #[command(flatten)]
    remote: Remote,

    #[command(subcommand)]
    command: UsersCommand,
}

#[derive(Debug, clap::Subcommand)]
enum UsersCommand {
    /// List the users.
    List,
    /// Create a user with a first password (asked for), which the user must change at the
    /// first login.
    Create {
        /// The login name: lowercase letters, digits, '-' and '_'.
        name: String,
        /// The name shown beside it.
        #[arg(long)]
        full_name: Option<String>,
        /// Make the user a global admin.
        #[arg(long)]
        admin: bool,
        /// Read the first password from standard input.
        #[arg(long)]
        password_stdin: bool,
    },
    /// Make a user a global admin, or not (--revoke).
    SetAdmin {
        /// The user.
        name: String,
        /// Take the global admin role away.
        #[arg(long)]
        revoke: bool,
    },
    /// Set a new password (asked for) that the user must change at the next login; every
    /// session and API token of the user ends.
    ResetPassword {
        /// The user.
        name: String,
        /// Read the password from standard input.
        #[arg(long)]
        password_stdin: bool,
    },
    /// Delete a user with the user's sessions, tokens and memberships.
    Delete {
        /// The user.
        name: String,
        /// Delete without asking.
        #[arg(long, short = 'y')]
        yes: bool,
    },
}

/// Runs `pikoci users`.
pub(crate) fn users(args: UsersArgs) -> ExitCode {
    super::run(&args.remote, |session| async move {
        match args.command {
            UsersCommand::List => {
                let answer = session
                    .client
                    .get("/users")
                    .await
                    .context("cannot list the users")?;
                if session.json {
                    session.print_json(&answer.data)?;
                    return Ok(Exit::Ok);
                }
                let mut rows = vec![header(&["USER", "FULL NAME", "ADMIN", "CREATED"])];
                for user in answer.data.as_array().into_iter().flatten() {
                    rows.push(vec![
                        text(&user["name"]),
                        text(&user["full_name"]),
                        if user["admin"] == true { "yes" } else { "no" }.to_owned(),
                        table::time(user["created_at"].as_str()),
                    ]);
                }
                session.print(&render(&rows))?;
                Ok(Exit::Ok)
            }
            UsersCommand::Create {
                name,
                full_name,
                admin,
                password_stdin,
            } => {
                let password = if password_stdin {
                    prompt::secret("", true, "--password-stdin")?
                } else {
                    prompt::new_password(false, "--password-stdin")?
                };
                let answer = session
                    .client
                    .post(
                        "/users",
                        &json!({
                            "name": name,
                            "full_name": full_name,
                            "admin": admin,
                            "password": password.expose(),
                        }),
                    )
                    .await
                    .with_context(|| format!("cannot create user {name}"))?;
                session.done(
                    &answer.data,
                    &format!(
                        "created user {name}, who must change the password at the first login"
                    ),
                )
            }
            UsersCommand::SetAdmin { name, revoke } => {
                let answer = session
                    .client
                    .put(
                        &pikoci_client::path(&["users", &name]),
                        &json!({"admin": !revoke}),
                    )
                    .await
                    .with_context(|| format!("cannot change user {name}"))?;
                session.done(
                    &answer.data,
                    &if revoke {
                        format!("{name} is no longer a global admin")
                    } else {
                        format!("{name} is now a global admin")
                    },
                )
            }
            UsersCommand::ResetPassword {
                name,
                password_stdin,
            } => {
                let password = prompt::new_password(password_stdin, "--password-stdin")?;
                let answer = session
                    .client
                    .put(
                        &pikoci_client::path(&["users", &name]),
                        &json!({"password": password.expose()}),
                    )
                    .await
                    .with_context(|| format!("cannot reset the password of {name}"))?;
                session.done(
                    &answer.data,
                    &format!(
                        "reset the password of {name}, who must change it at the next login; \
                         every session and API token of {name} ended"
                    ),
                )
            }
            UsersCommand::Delete { name, yes } => {
                if !yes
                    && !confirm(
                        &format!("delete user {name}?"),
                        "--yes to delete without asking",
                    )?
                {
                    session.print("nothing was deleted\n")?;
                    return Ok(Exit::Failed);
                }
                let answer = session
                    .client
                    .delete(&pikoci_client::path(&["users", &name]))
                    .await
                    .with_context(|| format!("cannot delete user {name}"))?;
                session.done(&answer.data, &format!("deleted user {name}"))
            }
        }
    })
}

/// The flags of `pikoci user-password`.
#[derive(Debug, clap::Args)]
pub(crate) struct UserPasswordArgs {
    /// Print `USER:HASH`, the form `pikoci server --users` takes; without it, the hash alone.
    #[arg(long, short = 'u', value_name = "USER")]
    username: Option<String>,

    /// Read the password from standard input instead of asking for it.
    #[arg(long)]
    password_stdin: bool,
}

/// `pikoci user-password`: hashes a password (argon2id) for `pikoci server --users`, without
/// a server.
pub(crate) fn user_password(args: UserPasswordArgs) -> ExitCode {
    let result = (|| -> anyhow::Result<Exit> {
        let password = prompt::new_password(args.password_stdin, "--password-stdin")?;
        pikoci_server::auth::password::check_new(password.expose()).map_err(UsageError)?;
        let hash = pikoci_server::auth::password::hash_blocking(&Secret::new(password.expose()));
        let line = match &args.username {
            Some(user) => format!("{user}:{}\n", hash.expose()),
            None => format!("{}\n", hash.expose()),
        };
        output::stdout(&line)?;
        Ok(Exit::Ok)
    })();
    match result {
        Ok(exit) => exit.into(),
        Err(err) => super::report(&err),
    }
}
