//! `pikoci teams list|create|delete`.

use anyhow::Context;
use pikoci_client::model::Team;
use serde_json::json;

use super::pipelines::{confirm, header};
use super::table::{self, render};
use super::{Exit, Remote, Session};

/// `pikoci teams ...`.
#[derive(Debug, clap::Args)]
pub(crate) struct TeamsArgs {
    #[command(flatten)]
    remote: Remote,

    #[command(subcommand)]
    command: TeamsCommand,
}

#[derive(Debug, clap::Subcommand)]
enum TeamsCommand {
    /// List the server's teams.
    List,
    /// Create a team.
    Create {
        /// Its name: lowercase letters, digits, '-' and '_'.
        name: String,
    },
    /// Delete a team with its pipelines, builds, logs, secrets and trigger streams.
    Delete {
        /// The team.
        name: String,
        /// Delete without asking.
        #[arg(long, short = 'y')]
        yes: bool,
    },
}

/// Runs `pikoci teams`.
pub(crate) fn run(args: TeamsArgs) -> std::process::ExitCode {
    super::run(&args.remote, |session| async move {
        match args.command {
            TeamsCommand::List => list(&session).await,
            TeamsCommand::Create { name } => create(&session, &name).await,
            TeamsCommand::Delete { name, yes } => delete(&session, &name, yes).await,
        }
    })
}

async fn list(session: &Session) -> anyhow::Result<Exit> {
    let answer = session
        .client
        .get_all("/teams")
        .await
        .context("cannot list the teams")?;
    if session.json {
        session.print_json(&answer.data)?;
        return Ok(Exit::Ok);
    }
    let teams: Vec<Team> = answer.parse()?;
    let mut rows = vec![header(&["TEAM", "CREATED"])];
    for team in &teams {
        rows.push(vec![team.name.clone(), table::time(Some(&team.created_at))]);
    }
    session.print(&render(&rows))?;
    Ok(Exit::Ok)
}

async fn create(session: &Session, name: &str) -> anyhow::Result<Exit> {
    let answer = session
        .client
        .post("/teams", &json!({ "name": name }))
        .await
        .with_context(|| format!("cannot create team {name}"))?;
    session.done(&answer.data, &format!("created team {name}"))
}

async fn delete(session: &Session, name: &str, yes: bool) -> anyhow::Result<Exit> {
    if !yes
        && !confirm(
            &format!("delete team {name} with all its pipelines, builds, logs and secrets?"),
            "--yes to delete without asking",
        )?
    {
        session.print("nothing was deleted\n")?;
        return Ok(Exit::Failed);
    }
    let answer = session
        .client
        .delete(&pikoci_client::path(&["teams", name]))
        .await
        .with_context(|| format!("cannot delete team {name}"))?;
    session.done(&answer.data, &format!("deleted team {name}"))
}
