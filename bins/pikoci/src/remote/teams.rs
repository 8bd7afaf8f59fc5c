//! `pikoci teams list|create|delete|members|set-member|remove-member|worker-token`.

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
    /// List a team's members and their roles.
    Members {
        /// The team (default: --team, or the target's).
        team: Option<String>,
    },
    /// Add a user to a team with a role, or change the member's role.
    SetMember {
        /// The user.
        user: String,
        /// read (see), write (run: trigger, cancel, pause, pin), maintain (change: pipelines,
        /// secrets, approvals) or admin (members, deleting the team).
        role: String,
    },
    /// Remove a user from a team (the user's team tokens for it are deleted).
    RemoveMember {
        /// The user.
        user: String,
    },
    /// Print the team's worker token, for workers that serve this team only (a team admin's
    /// login session); --regenerate makes a new one, and the team's workers holding the old
    /// one are refused from then on.
    WorkerToken {
        /// The team (default: --team, or the target's).
        team: Option<String>,
        /// Make a new token.
        #[arg(long)]
        regenerate: bool,
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
            TeamsCommand::Members { team } => members(&session, team).await,
            TeamsCommand::WorkerToken { team, regenerate } => {
                super::worker_tokens::team_worker_token(&session, team, regenerate).await
            }
            TeamsCommand::SetMember { user, role } => {
                let answer = session
                    .client
                    .put(
                        &session.team_path(&["members", &user]),
                        &json!({ "role": role }),
                    )
                    .await
                    .with_context(|| {
                        format!("cannot make {user} a member of team {}", session.team)
                    })?;
                session.done(
                    &answer.data,
                    &format!(
                        "{user} is a member of team {} with role {role}",
                        session.team
                    ),
                )
            }
            TeamsCommand::RemoveMember { user } => {
                let answer = session
                    .client
                    .delete(&session.team_path(&["members", &user]))
                    .await
                    .with_context(|| format!("cannot remove {user} from team {}", session.team))?;
                session.done(
                    &answer.data,
                    &format!("removed {user} from team {}", session.team),
                )
            }
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

async fn members(session: &Session, team: Option<String>) -> anyhow::Result<Exit> {
    let team = team.unwrap_or_else(|| session.team.clone());
    let answer = session
        .client
        .get(&pikoci_client::path(&["teams", &team, "members"]))
        .await
        .with_context(|| format!("cannot list the members of team {team}"))?;
    if session.json {
        session.print_json(&answer.data)?;
        return Ok(Exit::Ok);
    }
    let mut rows = vec![header(&["USER", "ROLE"])];
    for member in answer.data.as_array().into_iter().flatten() {
        rows.push(vec![
            member["user"].as_str().unwrap_or_default().to_owned(),
            member["role"].as_str().unwrap_or_default().to_owned(),
        ]);
    }
    session.print(&render(&rows))?;
    Ok(Exit::Ok)
}
