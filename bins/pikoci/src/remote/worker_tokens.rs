//! `pikoci worker-token` and `pikoci teams worker-token`: the tokens workers hold.

use anyhow::Context;
use serde_json::json;

use super::{Exit, Remote, Session};
use crate::output;

/// The flags of `pikoci worker-token`.
#[derive(Debug, clap::Args)]
pub(crate) struct WorkerTokenArgs {
    #[command(flatten)]
    remote: Remote,

    /// Print the server's global worker token (a global admin's login session). It changes
    /// only with the server's --worker-token.
    #[arg(long)]
    show: bool,
}

/// `pikoci worker-token`: a new global worker token for `pikoci server --worker-token` and its
/// workers, made here without a server; or, with `--show`, the server's.
pub(crate) fn worker_token(args: WorkerTokenArgs) -> std::process::ExitCode {
    if !args.show {
        let token = pikoci_server::new_global_worker_token();
        return match output::stdout(&format!("{}\n", token.expose())) {
            Ok(()) => std::process::ExitCode::SUCCESS,
            Err(err) => super::report(&err),
        };
    }
    super::run(&args.remote, |session| async move {
        let answer = session
            .client
            .get("/worker-token")
            .await
            .context("cannot read the global worker token")?;
        print_token(&session, &answer.data)
    })
}

/// `pikoci teams worker-token [TEAM] [--regenerate]`.
pub(crate) async fn team_worker_token(
    session: &Session,
    team: Option<String>,
    regenerate: bool,
) -> anyhow::Result<Exit> {
    let team = team.unwrap_or_else(|| session.team.clone());
    let path = pikoci_client::path(&["teams", &team, "worker-token"]);
    let answer = if regenerate {
        session.client.post(&path, &json!({})).await
    } else {
        session.client.get(&path).await
    }
    .with_context(|| format!("cannot read the worker token of team {team}"))?;
    print_token(session, &answer.data)
}

/// The token alone on a line (for `PIKOCI_WORKER_TOKEN=$(...)`), or the JSON with `--json`.
fn print_token(session: &Session, data: &serde_json::Value) -> anyhow::Result<Exit> {
    if session.json {
        session.print_json(data)?;
    } else {
        let token = data["token"]
            .as_str()
            .context("the server's answer has no token")?;
        session.print(&format!("{token}\n"))?;
    }
    Ok(Exit::Ok)
}
