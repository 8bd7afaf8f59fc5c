//! `pikoci secrets list|set|delete`: entries of the server's secret store `pikoci`, a team's or
//! one pipeline's. A `secret` value is read from a hidden prompt or standard input, never from
//! the command line (which other users of the machine see, and the shell keeps).

use anyhow::Context;
use serde_json::{Value, json};

use super::pipelines::{confirm, header};
use super::table::render;
use super::{Exit, Remote, Session, prompt, text};

/// `pikoci secrets ...`.
#[derive(Debug, clap::Args)]
pub(crate) struct SecretsArgs {
    #[command(flatten)]
    remote: Remote,

    /// The entries of this pipeline (which shadow the team's of the same name), instead of
    /// the team's.
    #[arg(long, short = 'p', global = true, value_name = "PIPELINE")]
    pipeline: Option<String>,

    #[command(subcommand)]
    command: SecretsCommand,
}

#[derive(Debug, clap::Subcommand)]
enum SecretsCommand {
    /// List the entries: names and kinds (and the values of `plain` ones).
    List,
    /// Set an entry. A `secret` value is asked for (hidden) or read from standard input
    /// (--stdin); a `plain` one (--plain) may be given with --value.
    Set {
        /// The entry's name, as pipelines read it (`key = "NAME"`).
        name: String,
        /// A plain entry: a visible setting, not a secret (never masked in logs).
        #[arg(long)]
        plain: bool,
        /// The value of a --plain entry.
        #[arg(long, requires = "plain", value_name = "VALUE")]
        value: Option<String>,
        /// Read the value from standard input, all of it (a key file), less one final line
        /// break.
        #[arg(long, conflicts_with = "value")]
        stdin: bool,
    },
    /// Delete an entry.
    Delete {
        /// The entry's name.
        name: String,
        /// Delete without asking.
        #[arg(long, short = 'y')]
        yes: bool,
    },
}

/// Runs `pikoci secrets`.
pub(crate) fn run(args: SecretsArgs) -> std::process::ExitCode {
    super::run(&args.remote, |session| async move {
        let base = match &args.pipeline {
            Some(pipeline) => session.team_path(&["pipelines", pipeline, "secrets"]),
            None => session.team_path(&["secrets"]),
        };
        let owner = match &args.pipeline {
            Some(pipeline) => format!("pipeline {pipeline}"),
            None => format!("team {}", session.team),
        };
        match args.command {
            SecretsCommand::List => list(&session, &base, &owner).await,
            SecretsCommand::Set {
                name,
                plain,
                value,
                stdin,
            } => {
                let value = match value {
                    Some(value) => value,
                    None => prompt::value(&format!("Value of {name}: "), stdin, "--stdin")
                        .map_err(|error| {
                            if plain {
                                error
                            } else {
                                error.context(
                                    "a secret's value is never taken from the command line",
                                )
                            }
                        })?
                        .into_exposed(),
                };
                let kind = if plain { "plain" } else { "secret" };
                let answer = session
                    .client
                    .post(&base, &json!({"name": name, "value": value, "kind": kind}))
                    .await
                    .with_context(|| format!("cannot set {name} of {owner}"))?;
                session.done(&answer.data, &format!("set {kind} {name} of {owner}"))
            }
            SecretsCommand::Delete { name, yes } => {
                if !yes
                    && !confirm(
                        &format!("delete {name} of {owner}?"),
                        "--yes to delete without asking",
                    )?
                {
                    session.print("nothing was deleted\n")?;
                    return Ok(Exit::Failed);
                }
                let path = format!("{base}{}", pikoci_client::path(&[&name]));
                let answer = session
                    .client
                    .delete(&path)
                    .await
                    .with_context(|| format!("cannot delete {name} of {owner}"))?;
                session.done(&answer.data, &format!("deleted {name} of {owner}"))
            }
        }
    })
}

async fn list(session: &Session, base: &str, owner: &str) -> anyhow::Result<Exit> {
    let answer = session
        .client
        .get_all(base)
        .await
        .with_context(|| format!("cannot list the secrets of {owner}"))?;
    if session.json {
        session.print_json(&answer.data)?;
        return Ok(Exit::Ok);
    }
    let entries = answer.data.as_array().cloned().unwrap_or_default();
    if entries.is_empty() {
        session.print(&format!("{owner} has no entries in the secret store\n"))?;
        return Ok(Exit::Ok);
    }
    let mut rows = vec![header(&["NAME", "KIND", "VALUE"])];
    for entry in &entries {
        rows.push(vec![
            text(&entry["name"]),
            text(&entry["kind"]),
            match &entry["value"] {
                Value::Null => "***".to_owned(),
                value => text(value),
            },
        ]);
    }
    session.print(&render(&rows))?;
    Ok(Exit::Ok)
}
