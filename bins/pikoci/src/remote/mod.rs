//! The commands that talk to a server: `login`, `target`, `pipelines`, `jobs`, `builds`,
//! `resources`, `triggers`, `workers`.
//!
//! Which server: `--server URL` (or `PIKOCI_SERVER`, with `PIKOCI_TOKEN`) for one command,
//! else `--target NAME` (or `PIKOCI_TARGET`), else the current target saved by `pikoci login`
//! in `$XDG_CONFIG_HOME/pikoci/targets.toml` (`targets.rs`).
//!
//! Output: a table or a few lines for people; `--json` prints the API's `data` as it came, for
//! programs. Exit statuses are [`Exit`].

pub(crate) mod accounts;
pub(crate) mod audit;
pub(crate) mod builds;
mod files;
pub(crate) mod pipelines;
mod prompt;
pub(crate) mod resources;
pub(crate) mod secrets;
pub(crate) mod sso;
pub(crate) mod state;
mod table;
pub(crate) mod targets;
pub(crate) mod teams;
pub(crate) mod worker_tokens;

use std::process::ExitCode;

use anyhow::Context;
use pikoci_client::{Client, ClientError};
use pikoci_core::secrets::Secret;
use serde_json::Value;

use crate::output;

pub(crate) use builds::{BuildsArgs, JobsArgs};
pub(crate) use pipelines::PipelinesArgs;
pub(crate) use resources::{ResourcesArgs, TriggersArgs, WorkersArgs};

/// Exit statuses of the commands that talk to a server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Exit {
    /// 0: done; a watched build succeeded (or finished with a warning).
    Ok = 0,
    /// 1: the server refused the request (a name that does not exist, an invalid pipeline),
    /// or a watched build failed.
    Failed = 1,
    /// 2: the command line is wrong, or no server is configured.
    Usage = 2,
    /// 3: the server could not be reached, or failed (5xx): trying again later may work.
    Unavailable = 3,
    /// 4: a watched build was cancelled (or rejected).
    Cancelled = 4,
    /// 5: a watched build errored: something around it failed, not its steps.
    Errored = 5,
}

impl From<Exit> for ExitCode {
    fn from(exit: Exit) -> ExitCode {
        ExitCode::from(exit as u8)
    }
}

impl Exit {
    /// The exit status for a finished build's status.
    pub(crate) fn of_build(status: &str) -> Exit {
        match status {
            "succeeded" | "warning" => Exit::Ok,
            "cancelled" => Exit::Cancelled,
            "errored" => Exit::Errored,
            _ => Exit::Failed,
        }
    }
}

/// The flags every command that talks to a server takes.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct Remote {
    /// The saved server to talk to (see `pikoci target`); the current one when not given.
    #[arg(
        long,
        short = 't',
        global = true,
        env = "PIKOCI_TARGET",
        value_name = "NAME",
        conflicts_with = "server"
    )]
    target: Option<String>,

    /// Talk to this server instead of a saved one, e.g. http://127.0.0.1:8080 (with the
    /// token in PIKOCI_TOKEN, if it needs one).
    #[arg(long, global = true, env = "PIKOCI_SERVER", value_name = "URL")]
    server: Option<String>,

    /// The team (default: the target's, else `main`).
    #[arg(long, global = true, env = "PIKOCI_TEAM", value_name = "NAME")]
    team: Option<String>,

    /// Print the API's JSON (`data`) instead of a table: for scripts.
    #[arg(long, global = true)]
    json: bool,

    /// Print without colours (also when NO_COLOR is set or stdout is not a terminal).
    #[arg(long, global = true)]
    no_color: bool,
}

/// A connection to a server, with how to print.
pub(crate) struct Session {
    pub(crate) client: Client,
    pub(crate) team: String,
    pub(crate) json: bool,
    pub(crate) color: bool,
}

impl Session {
    /// Connects as the flags say.
    async fn open(remote: &Remote) -> anyhow::Result<Session> {
        let (server, token, team) = match &remote.server {
            Some(server) => {
                let token = std::env::var("PIKOCI_TOKEN")
                    .ok()
                    .filter(|t| !t.is_empty())
                    .map(Secret::new);
                (server.clone(), token, None)
            }
            None => {
                let targets = targets::Targets::load()?;
                let (_, target) = targets.chosen(remote.target.as_deref())?;
                (
                    target.server.clone(),
                    target.token.clone().map(Secret::new),
                    target.team.clone(),
                )
            }
        };
        let client = Client::new(&server, token).await.map_err(usage)?;
        Ok(Session {
            client,
            team: remote
                .team
                .clone()
                .or(team)
                .unwrap_or_else(|| "main".to_owned()),
            json: remote.json,
            color: crate::stdout_color(remote.no_color),
        })
    }

    /// `/teams/{team}` followed by `rest`, each part encoded.
    pub(crate) fn team_path(&self, rest: &[&str]) -> String {
        let mut segments = vec!["teams", self.team.as_str()];
        segments.extend_from_slice(rest);
        pikoci_client::path(&segments)
    }

    /// Prints `data` as JSON.
    pub(crate) fn print_json(&self, data: &Value) -> anyhow::Result<()> {
        let text = serde_json::to_string_pretty(data).context("cannot format the JSON")?;
        output::stdout(&format!("{text}\n"))
    }

    /// Prints `text` for people (a table, a few lines): on stdout, or on stderr with `--json`,
    /// whose stdout holds JSON only.
    pub(crate) fn print(&self, text: &str) -> anyhow::Result<()> {
        if self.json {
            output::stderr(text)
        } else {
            output::stdout(text)
        }
    }

    /// What a command did: `data` as JSON with `--json`, else `message` (a line) for people.
    pub(crate) fn done(&self, data: &Value, message: &str) -> anyhow::Result<Exit> {
        if self.json {
            self.print_json(data)?;
        } else {
            self.print(&format!("{message}\n"))?;
        }
        Ok(Exit::Ok)
    }

    /// Prints one JSON value on one line (a stream of them: `--json` with `--watch`).
    pub(crate) fn print_json_line(&self, value: &Value) -> anyhow::Result<()> {
        output::stdout(&format!("{value}\n"))
    }

    /// `text` in `colour` (an ANSI code) when colours are on.
    pub(crate) fn paint(&self, text: &str, colour: &str) -> String {
        if self.color && !colour.is_empty() {
            format!("\x1b[{colour}m{text}\x1b[0m")
        } else {
            text.to_owned()
        }
    }

    /// A build status, coloured by what it means.
    pub(crate) fn status(&self, status: &str) -> String {
        let colour = match status {
            "succeeded" => "32",
            "failed" | "errored" => "31",
            "warning" => "33",
            "pending" | "assigned" | "started" | "waiting_for_approval" => "36",
            "cancelled" | "skipped" => "90",
            _ => "",
        };
        self.paint(status, colour)
    }
}

/// A JSON string as it is, anything else as JSON (for tables).
pub(crate) fn text(value: &Value) -> String {
    value
        .as_str()
        .map_or_else(|| value.to_string(), str::to_owned)
}

/// A command line that is wrong: exit 2.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub(crate) struct UsageError(pub(crate) String);

fn usage(error: impl std::fmt::Display) -> anyhow::Error {
    UsageError(error.to_string()).into()
}

/// Runs a command that talks to a server: a runtime, the session, the command, and its
/// errors printed as messages with their exit status.
pub(crate) fn run<F, Fut>(remote: &Remote, command: F) -> ExitCode
where
    F: FnOnce(Session) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<Exit>>,
{
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => return report(&anyhow::anyhow!("cannot start the async runtime: {err}")),
    };
    let result = runtime.block_on(async {
        let session = Session::open(remote).await?;
        command(session).await
    });
    match result {
        Ok(exit) => exit.into(),
        Err(err) => report(&err),
    }
}

/// Prints an error the way a person can act on it; its exit status.
pub(crate) fn report(err: &anyhow::Error) -> ExitCode {
    let (message, exit) = describe(err);
    let _ = output::stderr(&format!("error: {message}\n"));
    exit.into()
}

fn describe(err: &anyhow::Error) -> (String, Exit) {
    if let Some(usage) = err.downcast_ref::<UsageError>() {
        return (usage.0.clone(), Exit::Usage);
    }
    let Some(client) = err.chain().find_map(|e| e.downcast_ref::<ClientError>()) else {
        return (format!("{err:#}"), Exit::Failed);
    };
    // What the command was doing (its context), then what the server said.
    let outer = err.to_string();
    let context = if outer == client.to_string() {
        String::new()
    } else {
        format!("{outer}: ")
    };
    let exit = if client.is_unavailable() {
        Exit::Unavailable
    } else if matches!(
        client,
        ClientError::InvalidServer(_) | ClientError::Redirected { .. } | ClientError::InvalidToken
    ) {
        Exit::Usage
    } else {
        Exit::Failed
    };
    let mut message = format!("{context}{client}");
    if let ClientError::Unreachable { .. } = client {
        message.push_str(
            "\n  is the server running? Check the address with `pikoci target`, or pass --server",
        );
    }
    if let ClientError::Api {
        code,
        details: Some(details),
        ..
    } = client
        && code == "invalid_pipeline"
    {
        message.push('\n');
        message.push_str(&pipelines::render_diagnostics(details));
    }
    (message, exit)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn errors_have_the_exit_status_of_their_kind() {
        let refused = anyhow::Error::new(ClientError::Api {
            status: 404,
            code: "not_found".into(),
            message: "no pipeline \"x\" in team \"main\"".into(),
            details: None,
        })
        .context("cannot pause pipeline x");
        let (message, exit) = describe(&refused);
        assert_eq!(
            message,
            "cannot pause pipeline x: no pipeline \"x\" in team \"main\""
        );
        assert_eq!(exit, Exit::Failed);
        let unreachable = anyhow::Error::new(ClientError::Unreachable {
            server: "http://127.0.0.1:9".into(),
            reason: "connection refused".into(),
        });
        let (message, exit) = describe(&unreachable);
        assert!(message.contains("is the server running?"), "{message}");
        assert_eq!(exit, Exit::Unavailable);
        assert_eq!(describe(&usage("no target")).1, Exit::Usage);
        let moved = anyhow::Error::new(ClientError::Redirected {
            server: "http://ci.example.com".into(),
            location: "https://ci.example.com".into(),
        });
        let (message, exit) = describe(&moved);
        assert!(message.contains("use that address instead"), "{message}");
        assert_eq!(exit, Exit::Usage);
        assert_eq!(Exit::of_build("succeeded"), Exit::Ok);
        assert_eq!(Exit::of_build("warning"), Exit::Ok);
        assert_eq!(Exit::of_build("failed"), Exit::Failed);
        assert_eq!(Exit::of_build("cancelled"), Exit::Cancelled);
        assert_eq!(Exit::of_build("errored"), Exit::Errored);
    }
}
