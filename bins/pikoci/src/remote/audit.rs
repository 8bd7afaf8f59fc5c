//! `pikoci audit`: a team's audit log.

use anyhow::Context;

use super::pipelines::header;
use super::table::{self, render};
use super::{Exit, Remote};

/// `pikoci audit [filters]`.
#[derive(Debug, clap::Args)]
pub(crate) struct AuditArgs {
    #[command(flatten)]
    remote: Remote,

    /// Entries by this user only (`system`: the server's own configuration).
    #[arg(long)]
    user: Option<String>,
    /// Entries not by this user.
    #[arg(long)]
    exclude_user: Option<String>,
    /// This action only (`pipeline.paused`, `member.role_changed`, ...).
    #[arg(long)]
    action: Option<String>,
    /// Not this action.
    #[arg(long)]
    exclude_action: Option<String>,
    /// About this pipeline only.
    #[arg(long)]
    pipeline: Option<String>,
    /// At or after this time (RFC 3339: 2026-12-03T08:00:00Z).
    #[arg(long, value_name = "TIME")]
    since: Option<String>,
    /// Before this time (RFC 3339).
    #[arg(long, value_name = "TIME")]
    until: Option<String>,
    /// Entries older than this id: the next page.
    #[arg(long, value_name = "ID")]
    before: Option<i64>,
    /// How many (1 to 500).
    #[arg(long, default_value_t = 50)]
    limit: u32,
}

/// Runs `pikoci audit`: the team's entries, newest first.
pub(crate) fn run(args: AuditArgs) -> std::process::ExitCode {
    super::run(&args.remote, |session| async move {
        let mut query = vec![("limit", args.limit.to_string())];
        let filters = [
            ("user", &args.user),
            ("exclude_user", &args.exclude_user),
            ("action", &args.action),
            ("exclude_action", &args.exclude_action),
            ("pipeline", &args.pipeline),
            ("since", &args.since),
            ("until", &args.until),
        ];
        for (name, value) in filters {
            if let Some(value) = value {
                query.push((name, value.clone()));
            }
        }
        query.extend(args.before.map(|before| ("before", before.to_string())));
        let answer = session
            .client
            .get_with(&session.team_path(&["audit"]), &query)
            .await
            .with_context(|| format!("cannot read the audit log of team {}", session.team))?;
        if session.json {
            session.print_json(&answer.data)?;
            return Ok(Exit::Ok);
        }
        let entries = answer.data.as_array().cloned().unwrap_or_default();
        if entries.is_empty() {
            session.print(&format!("no entry of team {} matches\n", session.team))?;
            return Ok(Exit::Ok);
        }
        let mut rows = vec![header(&[
            "ID", "WHEN", "WHO", "ACTION", "TARGET", "DETAILS",
        ])];
        for entry in &entries {
            let details = match &entry["details"] {
                serde_json::Value::Object(map) if map.is_empty() => String::new(),
                other => other.to_string(),
            };
            rows.push(vec![
                entry["id"].to_string(),
                table::time(entry["created_at"].as_str()),
                entry["actor"].as_str().unwrap_or_default().to_owned(),
                entry["action"].as_str().unwrap_or_default().to_owned(),
                entry["target_name"].as_str().unwrap_or_default().to_owned(),
                details,
            ]);
        }
        let mut out = render(&rows);
        if let Some(meta) = answer.meta.as_ref().filter(|meta| meta["has_more"] == true) {
            out.push_str(&format!(
                "(older entries not shown: --before {} shows the next page)\n",
                meta["oldest_id"]
            ));
        }
        session.print(&out)?;
        Ok(Exit::Ok)
    })
}
