//! `pikoci export` and `pikoci import`: a server's whole state as a file, and back.

use std::path::PathBuf;

use anyhow::Context;
use pikoci_client::model::Transfer;

use super::files::{self, Saved};
use super::pipelines::confirm;
use super::table::render;
use super::{Exit, Remote, Session};
use crate::output;

/// `pikoci export`.
#[derive(Debug, clap::Args)]
pub(crate) struct ExportArgs {
    #[command(flatten)]
    remote: Remote,

    /// Where to write it (`-` for standard output); pikoci.db in the current directory by
    /// default.
    #[arg(long, short = 'o', value_name = "FILE")]
    output: Option<PathBuf>,

    /// Replace the file when it exists.
    #[arg(long)]
    force: bool,
}

/// `pikoci import`.
#[derive(Debug, clap::Args)]
pub(crate) struct ImportArgs {
    #[command(flatten)]
    remote: Remote,

    /// The file `pikoci export` wrote.
    file: PathBuf,

    /// Replace what the server holds (its pipelines, builds, secrets...); without it, a server
    /// that holds pipelines refuses the import.
    #[arg(long)]
    replace: bool,

    /// With --replace, do not ask first.
    #[arg(long, short = 'y')]
    yes: bool,
}

/// Runs `pikoci export`.
pub(crate) fn export(args: ExportArgs) -> std::process::ExitCode {
    super::run(&args.remote, |session| async move {
        let download = session
            .client
            .download("/admin/export")
            .await
            .context("cannot export the server's state")?;
        let (saved, bytes) = files::save(download, args.output.as_deref(), "pikoci.db", args.force)
            .await
            .context("cannot save the export")?;
        if let Saved::File(file) = saved {
            output::stderr(&format!(
                "exported the state of {} to {} ({})\n",
                session.client.server(),
                file.display(),
                files::size(bytes)
            ))?;
        }
        Ok(Exit::Ok)
    })
}

/// Runs `pikoci import`.
pub(crate) fn import(args: ImportArgs) -> std::process::ExitCode {
    super::run(&args.remote, |session| async move {
        let file = tokio::fs::File::open(&args.file)
            .await
            .with_context(|| format!("cannot open {}", args.file.display()))?;
        if args.replace
            && !args.yes
            && !confirm(
                &format!(
                    "replace everything {} holds (pipelines, builds, logs, secrets) by {}?",
                    session.client.server(),
                    args.file.display()
                ),
                "--yes to replace without asking",
            )?
        {
            session.print("nothing was imported\n")?;
            return Ok(Exit::Failed);
        }
        let answer = session
            .client
            .upload(&format!("/admin/import?replace={}", args.replace), file)
            .await
            .with_context(|| format!("cannot import {}", args.file.display()))?;
        if session.json {
            session.print_json(&answer.data)?;
            return Ok(Exit::Ok);
        }
        let transfer: Transfer = answer.parse()?;
        print_tables(&session, &transfer)?;
        Ok(Exit::Ok)
    })
}

fn print_tables(session: &Session, transfer: &Transfer) -> anyhow::Result<()> {
    let mut rows = vec![super::pipelines::header(&["TABLE", "ROWS"])];
    for table in &transfer.tables {
        rows.push(vec![table.table.clone(), table.rows.to_string()]);
    }
    session.print(&render(&rows))?;
    session.print(&format!("imported into {}\n", session.client.server()))?;
    Ok(())
}
